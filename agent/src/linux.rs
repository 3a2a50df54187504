//! [`LinuxContainerRuntime`]: the agent's [`ContainerRuntime`] over berth's built-in runtime
//! ([`berth_runtime::container::LinuxRuntime`]) and image store.
//!
//! The built-in runtime is synchronous; every call that touches the disk or the kernel runs on
//! tokio's blocking pool. [`ContainerRuntime::wait`] does not poll: the runtime hands out a
//! pidfd of the container's shim, readable once the exit is recorded, which is registered with
//! tokio's reactor ([`AsyncFd`]); dropping the future deregisters and closes it.
//!
//! Containers are created detached (their shims outlive the agent) and carry the agent's labels
//! plus two of this adapter's own ([`NAME_LABEL`], [`SANDBOX_LABEL`]), so that a new instance
//! over the same directories finds them again ([`ContainerRuntime::list`]) and tells them from
//! containers `berth run` made. Pods stay on this side: the runtime only sees sandboxes,
//! namespaces and labels.
//!
//! Each sandbox gets its own `resolv.conf` (the pod's `DnsConfig` with the node's cluster DNS,
//! else the host's) and `hosts` (localhost, the pod's address and hostname, extra hosts) in its
//! directory, bind-mounted over the image's in every container that joins it, as the kubelet
//! and Docker do; a container that mounts its own at those paths keeps it.
//!
//! Gaps: terminals (`tty`) are not supported.

use crate::error_chain;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use berth_runtime::cgroup::{CpuQuota, Devices, Resources as CgroupResources};
use berth_runtime::container::config::{
    ImageRef, Mount as RuntimeMount, MountKind, User as RuntimeUser,
};
use berth_runtime::container::exec::PROBE_OUTPUT_LIMIT;
use berth_runtime::container::{
    self as rt, ContainerConfig, CreateOptions, ExecConfig, ExecIo, LinuxRuntime, State, Status,
};
use berth_runtime::image::ImageStore;
use berth_runtime::process::all_capability_names;
use berth_runtime::sandbox::{SandboxConfig, SandboxError, SandboxNetwork};
use jiff::Timestamp;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::runtime::{
    ContainerId, ContainerInfo, ContainerRuntime, ContainerSpec, ContainerState, ContainerStats,
    ExecResult, ExitInfo, LabelFilter, Result, RuntimeError, SandboxId, SandboxInfo, SandboxSpec,
    Security, Signal,
};

/// Label holding the container's name in its pod (the runtime's own name must be unique on the
/// host, so it is the id).
pub const NAME_LABEL: &str = "berth.dev/agent.container-name";
/// Label holding the id of the sandbox the container joined.
pub const SANDBOX_LABEL: &str = "berth.dev/agent.sandbox";

/// How long to wait for a container after SIGKILL before reporting it stuck.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// CFS period for CPU limits, as the kubelet uses (100ms).
const CPU_PERIOD_US: u64 = 100_000;

/// The agent's container runtime on Linux: berth's built-in runtime and image store.
#[derive(Debug, Clone)]
pub struct LinuxContainerRuntime {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    runtime: LinuxRuntime,
    images: ImageStore,
    /// The node's cluster DNS, the nameserver of pods whose `DnsConfig` names none.
    cluster_dns: Option<IpAddr>,
}

/// The files every container of a sandbox shares, kept in the sandbox's directory and
/// bind-mounted over the image's: the resolver configuration and the hosts table.
const SANDBOX_FILES: [(&str, &str); 2] =
    [("resolv.conf", "/etc/resolv.conf"), ("hosts", "/etc/hosts")];

impl LinuxContainerRuntime {
    pub fn new(runtime: LinuxRuntime, images: ImageStore) -> Self {
        Self {
            inner: Arc::new(Inner {
                runtime,
                images,
                cluster_dns: None,
            }),
        }
    }

    /// Pods with cluster DNS (`ClusterFirst`) resolve through `address` (the daemon's DNS).
    pub fn with_cluster_dns(runtime: LinuxRuntime, images: ImageStore, address: IpAddr) -> Self {
        Self {
            inner: Arc::new(Inner {
                runtime,
                images,
                cluster_dns: Some(address),
            }),
        }
    }

    /// The wrapped runtime (for the daemon's own views, e.g. logs).
    pub fn runtime(&self) -> &LinuxRuntime {
        &self.inner.runtime
    }

    /// Run `f` on the blocking pool with the runtime and image store.
    async fn blocking<T, F>(&self, operation: &'static str, target: String, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|source| RuntimeError::Backend {
                operation,
                target,
                source: Box::new(source),
            })?
    }

    /// Waits until the container's shim has recorded its exit, or `limit` passed (`None`).
    async fn wait_for_exit(
        &self,
        id: &ContainerId,
        limit: Option<Duration>,
    ) -> Result<Option<ExitInfo>> {
        let runtime_id = parse_id(id)?;
        let key = id.clone();
        let fd: Option<OwnedFd> = self
            .blocking("wait for", id.to_string(), move |inner| {
                inner
                    .runtime
                    .exit_fd(&runtime_id)
                    .map_err(|err| container_error(err, &key, "wait for"))
            })
            .await?;
        if let Some(fd) = fd {
            // `register_with_interest` is the same call marked unsafe, and unsafe code is not
            // allowed outside the runtime crate. Its contract (the fd stays open and the same
            // for the AsyncFd's life) holds by construction: the AsyncFd owns the `OwnedFd`.
            #[allow(deprecated)]
            let fd = AsyncFd::with_interest(fd, Interest::READABLE).map_err(|source| {
                RuntimeError::Backend {
                    operation: "wait for",
                    target: id.to_string(),
                    source: Box::new(source),
                }
            })?;
            let readable = fd.readable();
            let ready = match limit {
                None => readable.await,
                Some(limit) => match tokio::time::timeout(limit, readable).await {
                    Ok(ready) => ready,
                    Err(_elapsed) => return Ok(None),
                },
            };
            // The guard stays unused: the shim's exit is final, there is nothing to re-arm.
            let _exited = ready.map_err(|source| RuntimeError::Backend {
                operation: "wait for",
                target: id.to_string(),
                source: Box::new(source),
            })?;
        }
        let runtime_id = parse_id(id)?;
        let key = id.clone();
        self.blocking("wait for", id.to_string(), move |inner| {
            let state = inner
                .runtime
                .state(&runtime_id)
                .map_err(|err| container_error(err, &key, "wait for"))?;
            Ok(exit_info(&state))
        })
        .await
    }
}

#[async_trait]
impl ContainerRuntime for LinuxContainerRuntime {
    async fn create_sandbox(&self, spec: SandboxSpec) -> Result<SandboxInfo> {
        let id = rt::ContainerId::generate().to_string();
        let config = SandboxConfig {
            id: id.clone(),
            hostname: spec.hostname.clone(),
            network: if spec.host_network {
                SandboxNetwork::Host
            } else {
                SandboxNetwork::New
            },
            labels: spec.labels.clone(),
        };
        let sandbox = self
            .blocking("create sandbox", spec.name.clone(), move |inner| {
                let sandbox = inner.runtime.create_sandbox(config).map_err(|source| {
                    RuntimeError::Backend {
                        operation: "create sandbox",
                        target: spec.name.clone(),
                        source: Box::new(source),
                    }
                })?;
                let dir = inner.runtime.sandbox_dir(&sandbox.config.id);
                if let Err(source) = write_sandbox_files(&dir, &spec, sandbox.ip, inner.cluster_dns)
                {
                    let _ = inner.runtime.delete_sandbox(&sandbox.config.id);
                    return Err(RuntimeError::Backend {
                        operation: "write resolv.conf and hosts of sandbox",
                        target: spec.name,
                        source: Box::new(source),
                    });
                }
                Ok(sandbox)
            })
            .await?;
        Ok(SandboxInfo {
            id: SandboxId(sandbox.config.id),
            ip: sandbox.ip,
            labels: sandbox.config.labels,
        })
    }

    async fn list_sandboxes(&self, filter: &LabelFilter) -> Result<Vec<SandboxInfo>> {
        let filter = filter.clone();
        self.blocking("list", "sandboxes".into(), move |inner| {
            let all = inner
                .runtime
                .list_sandboxes()
                .map_err(|source| RuntimeError::Backend {
                    operation: "list",
                    target: "sandboxes".into(),
                    source: Box::new(source),
                })?;
            Ok(all
                .into_iter()
                .filter(|sandbox| filter.matches(&sandbox.config.labels))
                .map(|sandbox| SandboxInfo {
                    id: SandboxId(sandbox.config.id),
                    ip: sandbox.ip,
                    labels: sandbox.config.labels,
                })
                .collect())
        })
        .await
    }

    async fn delete_sandbox(&self, id: &SandboxId) -> Result<()> {
        let id = id.clone();
        self.blocking("delete sandbox", id.to_string(), move |inner| {
            inner
                .runtime
                .delete_sandbox(&id.0)
                .map_err(|source| sandbox_error(source, &id, "delete sandbox"))
        })
        .await
    }

    async fn create(&self, spec: ContainerSpec) -> Result<ContainerId> {
        let name = spec.name.clone();
        self.blocking("create", name, move |inner| create(inner, spec))
            .await
    }

    async fn start(&self, id: &ContainerId) -> Result<()> {
        let runtime_id = parse_id(id)?;
        let key = id.clone();
        self.blocking("start", id.to_string(), move |inner| {
            inner.runtime.start(&runtime_id).map_err(|err| match err {
                rt::RuntimeError::NotFound(_) | rt::RuntimeError::WrongStatus { .. } => {
                    container_error(err, &key, "start")
                }
                other => RuntimeError::Start {
                    id: key.clone(),
                    message: error_chain(&other),
                },
            })
        })
        .await
    }

    async fn wait(&self, id: &ContainerId) -> Result<ExitInfo> {
        match self.wait_for_exit(id, None).await? {
            Some(exit) => Ok(exit),
            None => Err(RuntimeError::InvalidState {
                id: id.clone(),
                operation: "wait for",
                state: ContainerState::Running,
            }),
        }
    }

    async fn stop(&self, id: &ContainerId, grace: Duration, signal: Option<Signal>) -> Result<()> {
        let runtime_id = parse_id(id)?;
        let key = id.clone();
        let signal = match signal {
            Some(signal) => Some(nix_signal(signal)?),
            None => None,
        };
        let sent = self
            .blocking("stop", id.to_string(), move |inner| {
                let config = inner
                    .runtime
                    .load_config(&runtime_id)
                    .map_err(|err| container_error(err, &key, "stop"))?;
                let signal = signal
                    .or_else(|| nix::sys::signal::Signal::try_from(config.stop_signal).ok())
                    .unwrap_or(nix::sys::signal::Signal::SIGTERM);
                match inner.runtime.kill(&runtime_id, signal) {
                    Ok(()) => Ok(true),
                    Err(rt::RuntimeError::WrongStatus {
                        status: Status::Stopped,
                        ..
                    }) => Ok(false),
                    Err(err) => Err(container_error(err, &key, "stop")),
                }
            })
            .await?;
        if sent && self.wait_for_exit(id, Some(grace)).await?.is_some() {
            return Ok(());
        }
        if sent {
            tracing::info!(container = %id, ?grace, "container ignored the stop signal; killing it");
        }
        let runtime_id = parse_id(id)?;
        let key = id.clone();
        self.blocking("stop", id.to_string(), move |inner| {
            inner
                .runtime
                .kill_all(&runtime_id, nix::sys::signal::Signal::SIGKILL)
                .map_err(|err| container_error(err, &key, "stop"))
        })
        .await?;
        match self.wait_for_exit(id, Some(KILL_WAIT)).await? {
            Some(_) => Ok(()),
            None => Err(RuntimeError::Backend {
                operation: "stop",
                target: id.to_string(),
                source: format!("still running {KILL_WAIT:?} after SIGKILL").into(),
            }),
        }
    }

    async fn kill(&self, id: &ContainerId, signal: Signal) -> Result<()> {
        let runtime_id = parse_id(id)?;
        let key = id.clone();
        let signal = nix_signal(signal)?;
        self.blocking("kill", id.to_string(), move |inner| {
            inner
                .runtime
                .kill(&runtime_id, signal)
                .map_err(|err| container_error(err, &key, "kill"))
        })
        .await
    }

    async fn delete(&self, id: &ContainerId) -> Result<()> {
        let Ok(runtime_id) = id.0.parse::<rt::ContainerId>() else {
            return Ok(());
        };
        let key = id.clone();
        self.blocking("delete", id.to_string(), move |inner| {
            // A container that was created but never started is not running: it may go.
            let force = inner
                .runtime
                .state(&runtime_id)
                .is_ok_and(|state| state.status == Status::Created);
            match inner.runtime.delete(&runtime_id, force) {
                Ok(()) | Err(rt::RuntimeError::NotFound(_)) => Ok(()),
                Err(rt::RuntimeError::Running(_)) => Err(RuntimeError::InvalidState {
                    id: key,
                    operation: "delete",
                    state: ContainerState::Running,
                }),
                Err(err) => Err(container_error(err, &key, "delete")),
            }
        })
        .await
    }

    async fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo> {
        let runtime_id = parse_id(id)?;
        let key = id.clone();
        self.blocking("inspect", id.to_string(), move |inner| {
            let info = inner
                .runtime
                .inspect(&runtime_id)
                .map_err(|err| container_error(err, &key, "inspect"))?;
            Ok(container_info(info))
        })
        .await
    }

    async fn list(&self, filter: &LabelFilter) -> Result<Vec<ContainerInfo>> {
        let filter = filter.clone();
        self.blocking("list", "containers".into(), move |inner| {
            let all = inner
                .runtime
                .list()
                .map_err(|source| RuntimeError::Backend {
                    operation: "list",
                    target: "containers".into(),
                    source: Box::new(source),
                })?;
            Ok(all
                .into_iter()
                // Only the agent's containers: `berth run`'s have no name label.
                .filter(|info| info.config.labels.contains_key(NAME_LABEL))
                .map(container_info)
                .filter(|info| filter.matches(&info.labels))
                .collect())
        })
        .await
    }

    async fn exec(
        &self,
        id: &ContainerId,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecResult> {
        let runtime_id = parse_id(id)?;
        let key = id.clone();
        let argv = argv.to_vec();
        self.blocking("exec in", id.to_string(), move |inner| {
            let config = ExecConfig::new(argv.clone()).with_timeout(timeout);
            let io = ExecIo::Capture {
                limit: PROBE_OUTPUT_LIMIT,
            };
            let output = inner
                .runtime
                .exec(&runtime_id, config, io)
                .map_err(|err| match err {
                    rt::RuntimeError::Exec { message, .. } => RuntimeError::Exec {
                        id: key.clone(),
                        argv: argv.clone(),
                        message,
                    },
                    other => container_error(other, &key, "exec in"),
                })?;
            if output.timed_out {
                return Err(RuntimeError::ExecTimedOut {
                    id: key,
                    argv,
                    timeout,
                });
            }
            Ok(ExecResult {
                exit_code: output.status.code,
                stdout: output.stdout,
                stderr: output.stderr,
            })
        })
        .await
    }

    async fn stats(&self, id: &ContainerId) -> Result<ContainerStats> {
        let runtime_id = parse_id(id)?;
        let key = id.clone();
        self.blocking("read stats of", id.to_string(), move |inner| {
            let stats = inner
                .runtime
                .stats(&runtime_id)
                .map_err(|err| container_error(err, &key, "read stats of"))?;
            Ok(ContainerStats {
                cpu_usage: Duration::from_nanos(stats.cpu_usage_ns),
                memory_usage_bytes: stats.memory_usage_bytes,
                memory_limit_bytes: stats.memory_limit_bytes,
                pids: stats.pids_current,
            })
        })
        .await
    }
}

/// Resolve the image, translate the spec and create the container (detached, so it outlives
/// the agent).
fn create(inner: &Inner, spec: ContainerSpec) -> Result<ContainerId> {
    let create_err = |message: String| RuntimeError::Create {
        name: spec.name.clone(),
        image: spec.image.clone(),
        message,
    };
    let image = inner
        .images
        .resolve(&spec.image)
        .map_err(|err| create_err(error_chain(&err)))?;
    let sandbox = match &spec.sandbox {
        Some(id) => Some(
            inner
                .runtime
                .sandbox(&id.0)
                .map_err(|err| sandbox_error(err, id, "join sandbox"))?,
        ),
        None => None,
    };
    let argv = if spec.argv.is_empty() {
        // Nothing resolved by the caller: the image's entrypoint and cmd, as Kubernetes runs a
        // container without command and args.
        image
            .config
            .entrypoint
            .iter()
            .chain(&image.config.cmd)
            .cloned()
            .collect()
    } else {
        spec.argv.clone()
    };
    if argv.is_empty() {
        return Err(create_err(
            "no command: the spec has no argv and the image no entrypoint or cmd".into(),
        ));
    }
    let user = match (&spec.user, &image.config.user) {
        (Some(user), _) => RuntimeUser {
            uid: user.uid,
            gid: user.gid,
            additional_gids: user.supplemental_groups.clone(),
        },
        (None, Some(user)) if !user.is_empty() => {
            berth_runtime::container::resolve_user(user, &image.layers)
                .map_err(|err| create_err(err.to_string()))?
        }
        (None, _) => RuntimeUser::default(),
    };
    let stop_signal = spec
        .stop_signal
        .or_else(|| image.config.stop_signal.as_deref().and_then(Signal::parse))
        .unwrap_or(Signal::TERM);
    if spec.tty {
        tracing::warn!(container = %spec.name, "terminals are not supported; running without one");
    }

    let id = rt::ContainerId::generate();
    let mut config = ContainerConfig::new(id.clone(), image.layers.clone(), argv);
    config.image = Some(ImageRef {
        name: spec.image.clone(),
        manifest_digest: image.manifest_digest.as_str().to_string(),
    });
    config.process.env = merge_env(&image.config.env, &spec.env);
    config.process.cwd = spec
        .working_dir
        .clone()
        .or_else(|| image.config.working_dir.clone())
        .filter(|dir| !dir.is_empty())
        .unwrap_or_else(|| "/".into())
        .into();
    config.process.user = user;
    config.stop_signal = stop_signal.0;
    config.mounts = spec
        .mounts
        .iter()
        .map(|mount| RuntimeMount {
            destination: mount.destination.clone().into(),
            kind: MountKind::Bind {
                source: mount.source.clone(),
                readonly: mount.read_only,
            },
        })
        .collect();
    config.resources = cgroup_resources(&spec.resources);
    apply_security(&mut config, &spec.security);
    config.labels = spec.labels.clone();
    config.labels.insert(NAME_LABEL.into(), spec.name.clone());
    if let Some(sandbox) = &sandbox {
        let dir = inner.runtime.sandbox_dir(&sandbox.config.id);
        for (file, destination) in SANDBOX_FILES {
            let source = dir.join(file);
            let shadowed = spec.mounts.iter().any(|m| m.destination == destination);
            if !shadowed && source.exists() {
                config.mounts.push(RuntimeMount {
                    destination: destination.into(),
                    kind: MountKind::Bind {
                        source,
                        readonly: false,
                    },
                });
            }
        }
        sandbox.join(&mut config.namespaces);
        // The pod's hostname (its UTS namespace is the sandbox's) is also $HOSTNAME.
        config.hostname = Some(sandbox.config.hostname.clone());
        config
            .labels
            .insert(SANDBOX_LABEL.into(), sandbox.config.id.clone());
    }
    let options = CreateOptions {
        detach: true,
        attach: false,
        start: false,
    };
    inner
        .runtime
        .create(config, options)
        .map_err(|err| create_err(error_chain(&err)))?;
    Ok(ContainerId(id.to_string()))
}

/// The image's environment with the spec's entries overriding by name, image order first.
/// Writes the sandbox's `resolv.conf` (the pod's `DnsConfig`, else the host's) and `hosts`
/// (localhost, the pod's address and hostname, extra hosts; the host's with host networking).
fn write_sandbox_files(
    dir: &std::path::Path,
    spec: &SandboxSpec,
    ip: Option<IpAddr>,
    cluster_dns: Option<IpAddr>,
) -> std::io::Result<()> {
    let host_resolv = || std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv = match &spec.dns {
        Some(dns) => {
            let nameservers: Vec<IpAddr> = if dns.nameservers.is_empty() {
                cluster_dns.into_iter().collect()
            } else {
                dns.nameservers.clone()
            };
            if nameservers.is_empty() {
                // No cluster DNS on this node: the host's resolvers, the pod's search path.
                let mut text: String = host_resolv()
                    .lines()
                    .filter(|l| l.trim_start().starts_with("nameserver"))
                    .map(|l| format!("{l}\n"))
                    .collect();
                if !dns.searches.is_empty() {
                    text.push_str(&format!("search {}\n", dns.searches.join(" ")));
                }
                text
            } else {
                let mut text: String = nameservers
                    .iter()
                    .map(|ns| format!("nameserver {ns}\n"))
                    .collect();
                if !dns.searches.is_empty() {
                    text.push_str(&format!("search {}\n", dns.searches.join(" ")));
                }
                if !dns.options.is_empty() {
                    text.push_str(&format!("options {}\n", dns.options.join(" ")));
                }
                text
            }
        }
        None => host_resolv(),
    };
    let hosts = if spec.host_network {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        let mut text =
            String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        if let Some(ip) = ip {
            text.push_str(&format!("{ip}\t{}\n", spec.hostname));
        }
        for (ip, names) in &spec.extra_hosts {
            text.push_str(&format!("{ip}\t{}\n", names.join(" ")));
        }
        text
    };
    std::fs::write(dir.join("resolv.conf"), resolv)?;
    std::fs::write(dir.join("hosts"), hosts)
}

fn merge_env(image: &[String], spec: &[(String, String)]) -> Vec<String> {
    let mut env: Vec<(String, String)> = image
        .iter()
        .filter_map(|entry| entry.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (key, value) in spec {
        match env.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.clone(),
            None => env.push((key.clone(), value.clone())),
        }
    }
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Kubernetes' `securityContext` on the runtime's docker-like defaults: privileged lifts every
/// restriction; otherwise capabilities are dropped then added (`ALL` allowed in both), and
/// `no_new_privs` is set only when privilege escalation is refused, as the kubelet does.
fn apply_security(config: &mut ContainerConfig, security: &Security) {
    config.rootfs.readonly = security.read_only_root_filesystem;
    if security.privileged {
        config.resources.devices = Devices::All;
        config.process.capabilities = all_capability_names();
        config.process.seccomp = false;
        config.process.no_new_privileges = false;
        config.masked_paths.clear();
        config.readonly_paths.clear();
        return;
    }
    config.process.no_new_privileges = security.no_new_privileges;
    let canonical = |name: &str| {
        let upper = name.to_ascii_uppercase();
        if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        }
    };
    let is_all = |name: &String| name.eq_ignore_ascii_case("ALL");
    let caps = &mut config.process.capabilities;
    if security.capabilities_drop.iter().any(is_all) {
        caps.clear();
    } else {
        let drop: Vec<String> = security
            .capabilities_drop
            .iter()
            .map(|c| canonical(c))
            .collect();
        caps.retain(|c| !drop.contains(c));
    }
    if security.capabilities_add.iter().any(is_all) {
        *caps = all_capability_names();
        return;
    }
    for cap in security.capabilities_add.iter().map(|c| canonical(c)) {
        if !caps.contains(&cap) {
            caps.push(cap);
        }
    }
}

/// Kubernetes' conversions: a CPU limit is a CFS quota per 100ms period, a CPU request a weight
/// in `cpu.shares` units (1024 per core, at least 2).
fn cgroup_resources(resources: &crate::runtime::Resources) -> CgroupResources {
    CgroupResources {
        memory_limit: resources.memory_limit_bytes,
        cpu_quota: resources.cpu_limit_millis.map(|millis| CpuQuota {
            quota_us: (millis * CPU_PERIOD_US / 1000).max(1000),
            period_us: CPU_PERIOD_US,
        }),
        cpu_shares: resources
            .cpu_request_millis
            .map(|millis| (millis * 1024 / 1000).clamp(2, 262_144)),
        pids_limit: resources.pids_limit,
        devices: Devices::Standard,
    }
}

/// The recorded exit of a stopped container.
fn exit_info(state: &State) -> Option<ExitInfo> {
    let exit = state.exit_status()?;
    let finished_at = state.finished_at.unwrap_or_else(Timestamp::now);
    Some(ExitInfo {
        exit_code: exit.code,
        signal: exit.signal.map(Signal),
        oom_killed: exit.oom_killed,
        started_at: state.started_at.unwrap_or(finished_at),
        finished_at,
    })
}

fn container_state(state: Option<&State>) -> ContainerState {
    match state {
        Some(state) => match state.status {
            Status::Created => ContainerState::Created,
            Status::Running => ContainerState::Running,
            Status::Stopped => exit_info(state)
                .map(ContainerState::Exited)
                .unwrap_or(ContainerState::Created),
        },
        // Creation never reached the shim, or the run directory was lost at reboot: the
        // container is gone as far as processes go.
        None => ContainerState::Exited(ExitInfo {
            exit_code: 255,
            signal: None,
            oom_killed: false,
            started_at: Timestamp::UNIX_EPOCH,
            finished_at: Timestamp::UNIX_EPOCH,
        }),
    }
}

fn container_info(info: rt::ContainerInfo) -> ContainerInfo {
    let mut labels: BTreeMap<String, String> = info.config.labels;
    let name = labels.remove(NAME_LABEL).unwrap_or(info.config.name);
    let sandbox = labels.remove(SANDBOX_LABEL).map(SandboxId);
    let state = container_state(info.state.as_ref());
    let live = matches!(state, ContainerState::Created | ContainerState::Running);
    ContainerInfo {
        id: ContainerId(info.config.id.to_string()),
        name,
        image: info
            .config
            .image
            .map(|image| image.name)
            .unwrap_or_default(),
        pid: info
            .state
            .as_ref()
            .filter(|_| live)
            .and_then(|s| s.init_pid)
            .and_then(|pid| u32::try_from(pid).ok()),
        created_at: info
            .state
            .as_ref()
            .map(|s| s.created_at)
            .unwrap_or(Timestamp::UNIX_EPOCH),
        started_at: info.state.as_ref().and_then(|s| s.started_at),
        state,
        sandbox,
        labels,
    }
}

fn parse_id(id: &ContainerId) -> Result<rt::ContainerId> {
    id.0.parse()
        .map_err(|_| RuntimeError::ContainerNotFound { id: id.clone() })
}

fn nix_signal(signal: Signal) -> Result<nix::sys::signal::Signal> {
    nix::sys::signal::Signal::try_from(signal.0).map_err(|source| RuntimeError::Backend {
        operation: "send",
        target: signal.to_string(),
        source: Box::new(source),
    })
}

/// The runtime's error in the agent's words: missing containers and wrong states are the
/// trait's own variants, the rest is the backend's.
fn container_error(
    err: rt::RuntimeError,
    id: &ContainerId,
    operation: &'static str,
) -> RuntimeError {
    match err {
        rt::RuntimeError::NotFound(_) | rt::RuntimeError::InvalidId(_) => {
            RuntimeError::ContainerNotFound { id: id.clone() }
        }
        rt::RuntimeError::WrongStatus { status, .. } => RuntimeError::InvalidState {
            id: id.clone(),
            operation,
            state: match status {
                Status::Created => ContainerState::Created,
                Status::Running => ContainerState::Running,
                Status::Stopped => ContainerState::Exited(ExitInfo {
                    exit_code: 0,
                    signal: None,
                    oom_killed: false,
                    started_at: Timestamp::UNIX_EPOCH,
                    finished_at: Timestamp::UNIX_EPOCH,
                }),
            },
        },
        other => RuntimeError::Backend {
            operation,
            target: format!("container {id}"),
            source: Box::new(other),
        },
    }
}

fn sandbox_error(err: SandboxError, id: &SandboxId, operation: &'static str) -> RuntimeError {
    match err {
        SandboxError::NotFound(_) | SandboxError::InvalidId(_) => {
            RuntimeError::SandboxNotFound { id: id.clone() }
        }
        other => RuntimeError::Backend {
            operation,
            target: format!("sandbox {id}"),
            source: Box::new(other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_env_overrides_the_image_by_name() {
        let image = ["PATH=/bin".to_string(), "A=1".to_string()];
        let spec = [
            ("A".to_string(), "2".to_string()),
            ("B".to_string(), "x=y".to_string()),
        ];
        assert_eq!(merge_env(&image, &spec), ["PATH=/bin", "A=2", "B=x=y"]);
    }

    #[test]
    fn security_context_maps_onto_the_docker_defaults() {
        let config = |security: Security| {
            let mut config = ContainerConfig::new(
                "c1".parse().unwrap(),
                vec!["/layer".into()],
                vec!["sh".into()],
            );
            apply_security(&mut config, &security);
            config
        };
        let default = config(Security::default());
        assert_eq!(default.process.capabilities.len(), 14);
        assert!(!default.process.no_new_privileges && !default.rootfs.readonly);
        assert!(default.process.seccomp);

        let locked = config(Security {
            read_only_root_filesystem: true,
            capabilities_drop: vec!["ALL".into()],
            capabilities_add: vec!["net_bind_service".into()],
            no_new_privileges: true,
            ..Security::default()
        });
        assert_eq!(locked.process.capabilities, ["CAP_NET_BIND_SERVICE"]);
        assert!(locked.process.no_new_privileges && locked.rootfs.readonly);

        let tweaked = config(Security {
            capabilities_drop: vec!["CAP_CHOWN".into(), "kill".into()],
            capabilities_add: vec!["NET_ADMIN".into(), "CHOWN".into()],
            ..Security::default()
        });
        let caps = &tweaked.process.capabilities;
        assert!(!caps.contains(&"CAP_KILL".to_string()));
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(caps.contains(&"CAP_CHOWN".to_string()));
        assert_eq!(tweaked.resources.devices, Devices::Standard);

        let privileged = config(Security {
            privileged: true,
            ..Security::default()
        });
        assert_eq!(privileged.process.capabilities, all_capability_names());
        assert!(!privileged.process.seccomp && privileged.masked_paths.is_empty());
        assert_eq!(privileged.resources.devices, Devices::All);
    }

    #[test]
    fn cpu_and_memory_convert_like_the_kubelet() {
        let resources = cgroup_resources(&crate::runtime::Resources {
            cpu_limit_millis: Some(250),
            cpu_request_millis: Some(100),
            memory_limit_bytes: Some(64 << 20),
            pids_limit: Some(100),
        });
        assert_eq!(
            resources.cpu_quota,
            Some(CpuQuota {
                quota_us: 25_000,
                period_us: 100_000
            })
        );
        assert_eq!(resources.cpu_shares, Some(102));
        assert_eq!(resources.memory_limit, Some(64 << 20));
        assert_eq!(resources.pids_limit, Some(100));
        let tiny = cgroup_resources(&crate::runtime::Resources {
            cpu_request_millis: Some(1),
            ..Default::default()
        });
        assert_eq!(tiny.cpu_shares, Some(2));
    }
}
