//! `berth container ls|inspect|logs|exec|stop|kill|rm`: work on containers from their state on
//! disk, from any process.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use berth_runtime::container::kill::parse_signal;
use berth_runtime::container::{
    ContainerInfo, ExecConfig, ExecIo, LinuxRuntime, RuntimeError, Status,
};
use berth_runtime::logs::{ReadOptions, read_logs};
use jiff::Timestamp;

use super::run::runtime;
use crate::cli::{ContainerCommand, ExecArgs, GlobalArgs};

pub fn run(global: &GlobalArgs, command: ContainerCommand) -> anyhow::Result<ExitCode> {
    let runtime = runtime(global);
    match command {
        ContainerCommand::Ls { quiet } => list(&runtime, quiet),
        ContainerCommand::Inspect { container } => {
            let id = runtime.resolve(&container)?;
            let info = runtime.inspect(&id)?;
            println!("{}", serde_json::to_string_pretty(&info)?);
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Logs {
            follow,
            timestamps,
            tail,
            container,
        } => {
            let id = runtime.resolve(&container)?;
            let path = runtime.container_dir(&id).join("container.log");
            let options = ReadOptions {
                tail,
                timestamps,
                follow,
                include_rotated: true,
            };
            let mut reader =
                read_logs(&path, options).with_context(|| format!("logs of {container}"))?;
            if follow {
                let run_dir = global.run_dir.clone();
                let root = global.root.clone();
                let id = id.clone();
                reader = reader.stop_when(move || {
                    let runtime = LinuxRuntime::new(
                        berth_runtime::container::RuntimeConfig::new(root.clone(), run_dir.clone()),
                        std::sync::Arc::new(berth_runtime::syscall::LinuxSyscall),
                    );
                    runtime
                        .state(&id)
                        .map(|s| s.status == Status::Stopped)
                        .unwrap_or(true)
                });
            }
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            reader.copy_to(&mut out)?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Stop { time, container } => {
            let id = runtime.resolve(&container)?;
            runtime.stop(&id, Duration::from_secs(time), None)?;
            println!("{container}");
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Kill { signal, container } => {
            let Some(signal) = parse_signal(&signal) else {
                bail!("invalid signal {signal:?}: expected a name (TERM, SIGKILL) or a number");
            };
            let id = runtime.resolve(&container)?;
            runtime.kill(&id, signal)?;
            println!("{container}");
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Exec(args) => exec(&runtime, args),
        ContainerCommand::Rm { force, containers } => {
            let mut failed = false;
            for container in containers {
                match runtime
                    .resolve(&container)
                    .and_then(|id| runtime.delete(&id, force))
                {
                    Ok(()) => println!("{container}"),
                    Err(err) => {
                        eprintln!(
                            "berth: {}",
                            anyhow::Error::from(err)
                                .chain()
                                .map(|e| e.to_string())
                                .collect::<Vec<_>>()
                                .join(": ")
                        );
                        failed = true;
                    }
                }
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

/// `berth container exec`: output streams to ours; the exit code is the command's, or docker's
/// 126/127 when it cannot be started.
fn exec(runtime: &LinuxRuntime, args: ExecArgs) -> anyhow::Result<ExitCode> {
    let ExecArgs {
        env,
        workdir,
        timeout,
        container,
        command,
    } = args;
    let id = &runtime.resolve(&container)?;
    let mut config = ExecConfig::new(command);
    if !env.is_empty() {
        let mut all = runtime.load_config(id)?.process.env;
        all.extend(env);
        config.env = Some(all);
    }
    config.cwd = workdir;
    config.timeout = timeout.map(Duration::from_secs);
    match runtime.exec(id, config, ExecIo::Inherit) {
        Ok(output) => {
            if output.timed_out {
                eprintln!(
                    "berth: exec in {id}: killed after the {}s timeout",
                    timeout.unwrap_or(0)
                );
            }
            Ok(ExitCode::from(output.status.code.clamp(0, 255) as u8))
        }
        Err(err @ RuntimeError::Exec { .. }) => {
            eprintln!("berth: {err}");
            Ok(ExitCode::from(err.exit_code().clamp(0, 255) as u8))
        }
        Err(err) => Err(err.into()),
    }
}

fn list(runtime: &LinuxRuntime, quiet: bool) -> anyhow::Result<ExitCode> {
    let mut containers = runtime.list()?;
    containers.reverse(); // newest first, as docker
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if quiet {
        for info in &containers {
            writeln!(out, "{}", info.config.id.short())?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let now = Timestamp::now();
    let rows: Vec<[String; 6]> = containers.iter().map(|info| row(info, now)).collect();
    let header = [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "NAMES",
    ]
    .map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for r in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        writeln!(out, "{}", line.join("   ").trim_end())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn row(info: &ContainerInfo, now: Timestamp) -> [String; 6] {
    let config = &info.config;
    let mut command = format!("\"{}\"", config.process.args.join(" "));
    if command.chars().count() > 22 {
        command = format!("{}…\"", command.chars().take(20).collect::<String>());
    }
    let image = config
        .image
        .as_ref()
        .map(|i| i.name.clone())
        .unwrap_or_default();
    let (created, status) = match &info.state {
        None => (String::new(), "Unknown".to_string()),
        Some(state) => {
            let created = format!("{} ago", human_duration(now, state.created_at));
            let status = match state.status {
                Status::Created => "Created".to_string(),
                Status::Running => {
                    format!(
                        "Up {}",
                        human_duration(now, state.started_at.unwrap_or(state.created_at))
                    )
                }
                Status::Stopped => format!(
                    "Exited ({}) {} ago",
                    state.exit_code.unwrap_or(255),
                    human_duration(now, state.finished_at.unwrap_or(state.created_at))
                ),
            };
            (created, status)
        }
    };
    [
        config.id.short().to_string(),
        image,
        command,
        created,
        status,
        config.name.clone(),
    ]
}

/// docker's `units.HumanDuration`.
pub fn human_duration(now: Timestamp, then: Timestamp) -> String {
    let seconds = now.duration_since(then).as_secs().max(0);
    let minutes = seconds / 60;
    let hours = minutes / 60;
    match seconds {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_docker() {
        let now: Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        let ago = |s: i64| now - jiff::SignedDuration::from_secs(s);
        assert_eq!(human_duration(now, ago(0)), "Less than a second");
        assert_eq!(human_duration(now, ago(3)), "3 seconds");
        assert_eq!(human_duration(now, ago(70)), "About a minute");
        assert_eq!(human_duration(now, ago(600)), "10 minutes");
        assert_eq!(human_duration(now, ago(3 * 3600)), "3 hours");
        assert_eq!(human_duration(now, ago(3 * 86400)), "3 days");
    }
}
