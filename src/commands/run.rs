//! `berth run`: resolve the image, merge its config with the flags (Kubernetes' override rules),
//! create and start the container; in the foreground stream its output, proxy signals and exit
//! with its exit code, detached print its id.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use berth_runtime::cgroup::{CpuQuota, Devices, Resources};
use berth_runtime::container::config::{ImageRef, NamespaceMode};
use berth_runtime::container::{
    ContainerConfig, ContainerId, CreateOptions, LinuxRuntime, RuntimeConfig, RuntimeError,
    SignalProxy,
};
use berth_runtime::image::{ImageConfig, ImageStore, ResolvedImage};
use berth_runtime::syscall::LinuxSyscall;

use crate::cli::{GlobalArgs, NetworkMode, RunArgs};

/// The runtime for the CLI's `--root`/`--run-dir`.
pub fn runtime(global: &GlobalArgs) -> LinuxRuntime {
    LinuxRuntime::new(
        RuntimeConfig::new(global.root.clone(), global.run_dir.clone()),
        Arc::new(LinuxSyscall),
    )
}

pub fn run(global: &GlobalArgs, args: RunArgs) -> anyhow::Result<ExitCode> {
    // Failures before the container exists exit 125, as docker's.
    let prepared = ImageStore::open_read_only(&global.root)
        .resolve(&args.image)
        .with_context(|| format!("image {:?}", args.image))
        .and_then(|image| container_config(&args, &image));
    let config = match prepared {
        Ok(config) => config,
        Err(err) => {
            eprintln!("berth: {err:#}");
            return Ok(ExitCode::from(125));
        }
    };
    let id = config.id.clone();
    let runtime = runtime(global);

    // Nothing happens between create and start here: the process starts as soon as it is set
    // up, without the exec fifo handshake (the agent keeps the two steps apart).
    if args.detach {
        let options = CreateOptions {
            detach: true,
            attach: false,
            start: true,
        };
        if let Err(err) = runtime.create(config, options) {
            return Ok(fail(&err));
        }
        println!("{id}");
        return Ok(ExitCode::SUCCESS);
    }

    // Before create: a Ctrl-C from now on is forwarded to the container.
    let proxy = SignalProxy::install()?;
    let options = CreateOptions {
        detach: false,
        attach: true,
        start: true,
    };
    let created = match runtime.create(config, options) {
        Ok(created) => created,
        Err(err) => return Ok(fail(&err)),
    };
    let shim = created.shim.context("foreground shim missing")?;
    let code = proxy.wait(&runtime, &id, shim, created.reports)?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

fn fail(err: &RuntimeError) -> ExitCode {
    eprintln!("berth: {}", error_chain(err));
    ExitCode::from(err.exit_code().clamp(0, 255) as u8)
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The container's command by Kubernetes' rules: `command` (entrypoint) replaces the image's
/// Entrypoint and drops its Cmd; `args` replace the Cmd.
pub fn merge_command(
    image: &ImageConfig,
    entrypoint: Option<&str>,
    args: &[String],
) -> anyhow::Result<Vec<String>> {
    let mut command = match entrypoint {
        Some(entrypoint) => vec![entrypoint.to_string()],
        None => image.entrypoint.clone(),
    };
    if !args.is_empty() {
        command.extend(args.iter().cloned());
    } else if entrypoint.is_none() {
        command.extend(image.cmd.iter().cloned());
    }
    if command.is_empty() || command[0].is_empty() {
        bail!("no command specified: the image has no Entrypoint or Cmd and none was given");
    }
    Ok(command)
}

/// Image env first, then `-e` (same key replaces; `-e KEY` takes berth's own value, as docker).
pub fn merge_env(image: &[String], flags: &[String]) -> Vec<String> {
    let mut env: Vec<String> = image.to_vec();
    for flag in flags {
        let entry = match flag.split_once('=') {
            Some(_) => flag.clone(),
            None => match std::env::var(flag) {
                Ok(value) => format!("{flag}={value}"),
                Err(_) => continue,
            },
        };
        let key = entry
            .split_once('=')
            .map(|(k, _)| k.to_string())
            .unwrap_or_default();
        env.retain(|e| e.split_once('=').map(|(k, _)| k) != Some(key.as_str()));
        env.push(entry);
    }
    env
}

/// Bytes from `64Mi` (Kubernetes), `64m`/`64M`/`1g` (docker: binary units, so `M` is MiB
/// here, not Kubernetes' 10^6) or plain bytes.
pub fn parse_memory(text: &str) -> anyhow::Result<u64> {
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .with_context(|| format!("invalid memory size {text:?}"))?;
    let multiplier: u64 = match unit {
        "" | "b" | "B" => 1,
        "k" | "K" | "Ki" | "kb" | "KB" => 1 << 10,
        "m" | "M" | "Mi" | "mb" | "MB" => 1 << 20,
        "g" | "G" | "Gi" | "gb" | "GB" => 1 << 30,
        "Ti" | "t" | "T" => 1 << 40,
        _ => bail!("invalid memory size {text:?}: expected a number with b, k, m, g, Ki, Mi or Gi"),
    };
    let bytes = (number * multiplier as f64).round() as u64;
    if bytes < 6 * 1024 * 1024 {
        bail!("memory limit {text:?} is below the minimum of 6MiB");
    }
    Ok(bytes)
}

/// CFS quota for `0.5` cores or `500m` millicores (period 100ms, as docker).
pub fn parse_cpus(text: &str) -> anyhow::Result<CpuQuota> {
    let cores: f64 = match text.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().map(|m| m / 1000.0),
        None => text.parse::<f64>(),
    }
    .with_context(|| {
        format!("invalid --cpus {text:?}: expected cores (0.5) or millicores (500m)")
    })?;
    if !cores.is_finite() || cores <= 0.0 || cores > 1024.0 {
        bail!("invalid --cpus {text:?}: must be above 0");
    }
    let period_us = 100_000;
    Ok(CpuQuota {
        quota_us: ((cores * period_us as f64).round() as u64).max(1000),
        period_us,
    })
}

/// Capability names after `--cap-drop` then `--cap-add` (`ALL` allowed in both), as docker.
pub fn merge_capabilities(defaults: &[String], add: &[String], drop: &[String]) -> Vec<String> {
    let canonical = |c: &str| {
        let upper = c.to_ascii_uppercase();
        if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        }
    };
    let mut caps: Vec<String> = defaults.to_vec();
    if drop.iter().any(|d| d.eq_ignore_ascii_case("ALL")) {
        caps.clear();
    } else {
        let drop: Vec<String> = drop.iter().map(|d| canonical(d)).collect();
        caps.retain(|c| !drop.contains(c));
    }
    if add.iter().any(|a| a.eq_ignore_ascii_case("ALL")) {
        return berth_runtime::process::all_capability_names();
    }
    for cap in add.iter().map(|a| canonical(a)) {
        if !caps.contains(&cap) {
            caps.push(cap);
        }
    }
    caps
}

fn container_config(args: &RunArgs, image: &ResolvedImage) -> anyhow::Result<ContainerConfig> {
    let id = ContainerId::generate();
    let command = merge_command(&image.config, args.entrypoint.as_deref(), &args.args)?;
    let mut config = ContainerConfig::new(id.clone(), image.layers.clone(), command);
    config.name = match &args.name {
        Some(name) => name.clone(),
        None => id.short().to_string(),
    };
    config.image = Some(ImageRef {
        name: image.name.clone().unwrap_or_else(|| args.image.clone()),
        manifest_digest: image.manifest_digest.to_string(),
    });
    config.labels = image.config.labels.clone();
    config.rootfs.readonly = args.read_only;
    config.process.env = merge_env(&image.config.env, &args.env);
    config.process.cwd = match (&args.workdir, &image.config.working_dir) {
        (Some(dir), _) => dir.clone(),
        (None, Some(dir)) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from("/"),
    };
    if !config.process.cwd.is_absolute() {
        bail!(
            "the working directory {:?} is invalid, it needs to be an absolute path",
            config.process.cwd
        );
    }
    let user = args
        .user
        .as_deref()
        .or(image.config.user.as_deref())
        .filter(|u| !u.is_empty());
    if let Some(user) = user {
        config.process.user = berth_runtime::container::resolve_user(user, &image.layers)
            .with_context(|| format!("image {}: user {user:?}", args.image))?;
    }
    config.process.capabilities =
        merge_capabilities(&config.process.capabilities, &args.cap_add, &args.cap_drop);
    config.hostname = args.hostname.clone();
    config.namespaces.network = match args.network {
        NetworkMode::None => NamespaceMode::New,
        NetworkMode::Host => NamespaceMode::Host,
    };
    if let Some(signal) = image.config.stop_signal.as_deref()
        && let Some(signal) = berth_runtime::container::kill::parse_signal(signal)
    {
        config.stop_signal = signal as i32;
    }
    config.resources = Resources {
        memory_limit: args.memory.as_deref().map(parse_memory).transpose()?,
        cpu_quota: args.cpus.as_deref().map(parse_cpus).transpose()?,
        cpu_shares: args.cpu_shares,
        pids_limit: args.pids_limit.filter(|n| *n > 0).map(|n| n as u64),
        devices: Devices::Standard,
    };
    if args.privileged {
        config.resources.devices = Devices::All;
        config.process.capabilities = berth_runtime::process::all_capability_names();
        config.process.seccomp = false;
        config.process.no_new_privileges = false;
        config.masked_paths.clear();
        config.readonly_paths.clear();
    }
    config.auto_remove = args.rm;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(entrypoint: &[&str], cmd: &[&str]) -> ImageConfig {
        ImageConfig {
            entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_follows_kubernetes_override_rules() {
        let img = image(&["/entry"], &["--default"]);
        assert_eq!(
            merge_command(&img, None, &[]).unwrap(),
            ["/entry", "--default"]
        );
        assert_eq!(
            merge_command(&img, None, &strings(&["x"])).unwrap(),
            ["/entry", "x"]
        );
        assert_eq!(
            merge_command(&img, Some("/bin/sh"), &[]).unwrap(),
            ["/bin/sh"]
        );
        assert_eq!(
            merge_command(&img, Some("/bin/sh"), &strings(&["-c", "true"])).unwrap(),
            ["/bin/sh", "-c", "true"]
        );
        let cmd_only = image(&[], &["sh"]);
        assert_eq!(
            merge_command(&cmd_only, None, &strings(&["echo", "hi"])).unwrap(),
            ["echo", "hi"]
        );
        assert!(merge_command(&image(&[], &[]), None, &[]).is_err());
    }

    #[test]
    fn env_flags_override_image_env() {
        let env = merge_env(&strings(&["PATH=/bin", "A=1"]), &strings(&["A=2", "B=3"]));
        assert_eq!(env, ["PATH=/bin", "A=2", "B=3"]);
    }

    #[test]
    fn sizes_and_cpus_parse_in_both_notations() {
        assert_eq!(parse_memory("64Mi").unwrap(), 64 << 20);
        assert_eq!(parse_memory("64m").unwrap(), 64 << 20);
        assert_eq!(parse_memory("1g").unwrap(), 1 << 30);
        assert_eq!(parse_memory("10485760").unwrap(), 10 << 20);
        assert!(parse_memory("1k").is_err(), "below the minimum");
        assert!(parse_memory("12x").is_err());
        assert_eq!(
            parse_cpus("0.5").unwrap(),
            CpuQuota {
                quota_us: 50_000,
                period_us: 100_000
            }
        );
        assert_eq!(
            parse_cpus("500m").unwrap(),
            CpuQuota {
                quota_us: 50_000,
                period_us: 100_000
            }
        );
        assert_eq!(parse_cpus("2").unwrap().quota_us, 200_000);
        assert!(parse_cpus("0").is_err());
        assert!(parse_cpus("lots").is_err());
    }

    #[test]
    fn capabilities_drop_then_add() {
        let defaults = strings(&["CAP_CHOWN", "CAP_KILL"]);
        assert_eq!(
            merge_capabilities(&defaults, &strings(&["net_admin"]), &strings(&["kill"])),
            ["CAP_CHOWN", "CAP_NET_ADMIN"]
        );
        assert_eq!(
            merge_capabilities(&defaults, &strings(&["CAP_KILL"]), &strings(&["ALL"])),
            ["CAP_KILL"]
        );
        assert!(merge_capabilities(&defaults, &strings(&["ALL"]), &[]).len() > 30);
    }
}
