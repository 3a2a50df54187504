//! The container runtime as the agent sees it: a capability trait, in the agent's own words.
//!
//! The agent never names the built-in runtime's types; it asks a [`ContainerRuntime`] (as Nomad's
//! client asks a `DriverPlugin`), so its logic runs against [`crate::testing::FakeRuntime`] in
//! tests and against the real runtime through an adapter in the daemon.
//!
//! Like CRI, a pod is two steps: [`ContainerRuntime::create_sandbox`] makes the namespaces the
//! pod's containers share (network, IPC, UTS: one IP, one hostname, one loopback), then each
//! container is created *into* that sandbox ([`ContainerSpec::sandbox`]). The trait is otherwise
//! pod-agnostic: pod identity travels as [`labels`], which is also how the agent finds its
//! containers again after a restart ([`ContainerRuntime::list`]).
//!
//! A container's life as the runtime reports it ([`ContainerState`]):
//!
//! ```text
//!   create ──► Created ──start──► Running ──(exit | stop | kill)──► Exited ──delete──► (gone)
//!                 │                                                   ▲
//!                 └──────────────── start fails ──────────────────────┘
//! ```
//! A restart is never a transition of the same container: the agent creates a new one, as the
//! kubelet does, so each run has its own id, exit status and logs.

use std::{collections::BTreeMap, fmt, net::IpAddr, path::PathBuf, time::Duration};

use async_trait::async_trait;
use jiff::Timestamp;

/// Label keys the agent puts on every container and sandbox it creates (kubelet's
/// `io.kubernetes.pod.uid` and friends), so that it can re-adopt them after a restart.
pub mod labels {
    pub const POD_UID: &str = "berth.dev/pod-uid";
    pub const POD_NAME: &str = "berth.dev/pod-name";
    pub const POD_NAMESPACE: &str = "berth.dev/pod-namespace";
    pub const CONTAINER_NAME: &str = "berth.dev/container-name";
    /// How many times the container had been restarted when this instance was created.
    pub const RESTART_COUNT: &str = "berth.dev/restart-count";
}

/// Errors a [`ContainerRuntime`] reports.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("container {id} not found")]
    ContainerNotFound { id: ContainerId },
    #[error("sandbox {id} not found")]
    SandboxNotFound { id: SandboxId },
    #[error("cannot {operation} container {id}: it is {state}")]
    InvalidState {
        id: ContainerId,
        operation: &'static str,
        state: ContainerState,
    },
    #[error("creating container {name:?} from image {image:?} failed: {message}")]
    Create {
        name: String,
        image: String,
        message: String,
    },
    /// The process could not be started (bad executable, missing working directory, ...): the
    /// kubelet's `StartError`.
    #[error("starting container {id} failed: {message}")]
    Start { id: ContainerId, message: String },
    #[error("exec {argv:?} in container {id} did not finish within {timeout:?}")]
    ExecTimedOut {
        id: ContainerId,
        argv: Vec<String>,
        timeout: Duration,
    },
    #[error("exec {argv:?} in container {id} failed: {message}")]
    Exec {
        id: ContainerId,
        argv: Vec<String>,
        message: String,
    },
    /// An error of the runtime implementation itself (I/O, cgroups, namespaces, ...).
    #[error("runtime failed to {operation} {target}")]
    Backend {
        operation: &'static str,
        target: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// The runtime's id of a container (opaque to the agent).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId(pub String);

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The runtime's id of a pod sandbox (opaque to the agent).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SandboxId(pub String);

impl fmt::Display for SandboxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A signal number, as the kernel numbers them on Linux.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(pub i32);

impl Signal {
    pub const HUP: Self = Self(1);
    pub const INT: Self = Self(2);
    pub const QUIT: Self = Self(3);
    pub const KILL: Self = Self(9);
    pub const USR1: Self = Self(10);
    pub const USR2: Self = Self(12);
    pub const TERM: Self = Self(15);

    /// Parses `SIGTERM`, `TERM` or a number (Kubernetes' `lifecycle.stopSignal` and image
    /// `StopSignal` spell signals this way).
    pub fn parse(name: &str) -> Option<Self> {
        if let Ok(number) = name.parse::<i32>() {
            return (1..=64).contains(&number).then_some(Self(number));
        }
        let bare = name.strip_prefix("SIG").unwrap_or(name);
        Some(match bare {
            "HUP" => Self::HUP,
            "INT" => Self::INT,
            "QUIT" => Self::QUIT,
            "KILL" => Self::KILL,
            "USR1" => Self::USR1,
            "USR2" => Self::USR2,
            "TERM" => Self::TERM,
            _ => return None,
        })
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "signal {}", self.0)
    }
}

/// What the pod's containers share; created once per pod, before its containers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxSpec {
    /// `namespace/name` of the pod, for logs and the runtime's own bookkeeping.
    pub name: String,
    /// The UTS namespace's hostname (the pod's `hostname` or name).
    pub hostname: String,
    /// Share the host's network namespace instead of creating one (`hostNetwork: true`).
    pub host_network: bool,
    /// Lines of the sandbox's `/etc/hosts` beyond localhost (`ip name...`).
    pub extra_hosts: Vec<(IpAddr, Vec<String>)>,
    /// The `/etc/resolv.conf` of the pod's containers; `None` gives them the host's.
    pub dns: Option<DnsConfig>,
    pub labels: BTreeMap<String, String>,
}

/// A pod's resolver configuration (Kubernetes' `ClusterFirst` policy: the cluster DNS and the
/// namespace's search path).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsConfig {
    /// Empty: the node's cluster DNS (the runtime knows its address).
    pub nameservers: Vec<IpAddr>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// A sandbox as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxInfo {
    pub id: SandboxId,
    /// The pod's IP; `None` with `hostNetwork` or before networking is set up.
    pub ip: Option<IpAddr>,
    pub labels: BTreeMap<String, String>,
}

/// The agent's request for one container: everything already resolved (image reference,
/// argv from image entrypoint/cmd and the pod's command/args, `$(VAR)` expansion, volumes as host
/// paths).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerSpec {
    /// The container's name in its pod.
    pub name: String,
    pub image: String,
    /// The full argv; `argv[0]` is the executable.
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub user: Option<User>,
    pub mounts: Vec<Mount>,
    pub resources: Resources,
    pub labels: BTreeMap<String, String>,
    /// The sandbox whose namespaces (network, IPC, UTS) the container joins; `None` runs it in
    /// namespaces of its own.
    pub sandbox: Option<SandboxId>,
    /// Sent by [`ContainerRuntime::stop`] unless the caller names another.
    pub stop_signal: Option<Signal>,
    pub tty: bool,
    /// Privileges of the process (Kubernetes' `securityContext`).
    pub security: Security,
}

/// What the container's process may do beyond an unprivileged default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    /// All capabilities, all devices, no seccomp or read-only paths (`privileged: true`).
    pub privileged: bool,
    pub read_only_root_filesystem: bool,
    /// Capabilities added to the runtime's default set (`NET_ADMIN`, without `CAP_`).
    pub capabilities_add: Vec<String>,
    /// Capabilities dropped from it (`ALL` drops every one).
    pub capabilities_drop: Vec<String>,
    /// `allowPrivilegeEscalation: false` sets `no_new_privs`.
    pub no_new_privileges: bool,
}

/// The identity a container's process runs as.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub supplemental_groups: Vec<u32>,
}

/// A bind mount of a host path (a volume the agent prepared) into the container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mount {
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
}

/// Cgroup limits, already converted from Kubernetes quantities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU limit in millicores (`cpu.max`); `None` is unlimited.
    pub cpu_limit_millis: Option<u64>,
    /// CPU request in millicores (`cpu.weight`).
    pub cpu_request_millis: Option<u64>,
    /// Memory limit in bytes (`memory.max`); `None` is unlimited.
    pub memory_limit_bytes: Option<u64>,
    pub pids_limit: Option<u64>,
}

/// How a container's process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitInfo {
    /// The exit status; `128 + n` when killed by signal `n`, as shells and CRI report it.
    pub exit_code: i32,
    /// The signal that killed the process, if one did.
    pub signal: Option<Signal>,
    /// The kernel's OOM killer ended it (the cgroup's `memory.events` `oom_kill` grew).
    pub oom_killed: bool,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
}

impl ExitInfo {
    /// Exit code 0, not killed: Kubernetes' "Completed". Anything else is a failure.
    pub fn succeeded(&self) -> bool {
        self.exit_code == 0 && self.signal.is_none() && !self.oom_killed
    }
}

/// Where a container is in its life (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Exited(ExitInfo),
}

impl fmt::Display for ContainerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Created => f.write_str("created"),
            Self::Running => f.write_str("running"),
            Self::Exited(exit) => write!(f, "exited with code {}", exit.exit_code),
        }
    }
}

/// A container as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: ContainerId,
    pub name: String,
    pub image: String,
    pub state: ContainerState,
    /// The init process on the host, while running.
    pub pid: Option<u32>,
    pub sandbox: Option<SandboxId>,
    pub labels: BTreeMap<String, String>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
}

/// The result of a command run in a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecResult {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Resource usage of a running container, from its cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerStats {
    pub cpu_usage: Duration,
    pub memory_usage_bytes: u64,
    pub memory_limit_bytes: Option<u64>,
    pub pids: u64,
}

/// Containers whose labels include every pair of the filter (an empty filter matches all).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelFilter(pub BTreeMap<String, String>);

impl LabelFilter {
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
    }
}

/// What the agent needs of a container runtime. Every method is idempotent where Kubernetes
/// needs it to be: stopping an exited container and deleting a missing one succeed.
#[async_trait]
pub trait ContainerRuntime: Send + Sync + 'static {
    /// Creates the shared namespaces of a pod (CRI's `RunPodSandbox`).
    async fn create_sandbox(&self, spec: SandboxSpec) -> Result<SandboxInfo>;
    /// Tears down a sandbox whose containers are all deleted; a missing sandbox is not an error.
    async fn delete_sandbox(&self, id: &SandboxId) -> Result<()>;
    /// Every sandbox whose labels match (how the agent finds its pods' sandboxes again after a
    /// restart).
    async fn list_sandboxes(&self, filter: &LabelFilter) -> Result<Vec<SandboxInfo>>;
    /// Creates a container without starting it.
    async fn create(&self, spec: ContainerSpec) -> Result<ContainerId>;
    async fn start(&self, id: &ContainerId) -> Result<()>;
    /// Waits for the container to exit. Cancel-safe: dropping the future only stops waiting.
    async fn wait(&self, id: &ContainerId) -> Result<ExitInfo>;
    /// Sends `signal` (the spec's stop signal, else SIGTERM, when `None`), waits up to `grace`,
    /// then SIGKILLs; returns once the container has exited.
    async fn stop(&self, id: &ContainerId, grace: Duration, signal: Option<Signal>) -> Result<()>;
    /// Sends `signal` to the container's init process and returns at once.
    async fn kill(&self, id: &ContainerId, signal: Signal) -> Result<()>;
    /// Removes a container that is not running; a missing container is not an error.
    async fn delete(&self, id: &ContainerId) -> Result<()>;
    async fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo>;
    /// Every container whose labels match.
    async fn list(&self, filter: &LabelFilter) -> Result<Vec<ContainerInfo>>;
    /// Runs `argv` in the container's namespaces and cgroup; gives up with
    /// [`RuntimeError::ExecTimedOut`] (and kills the command) after `timeout`.
    async fn exec(
        &self,
        id: &ContainerId,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecResult>;
    async fn stats(&self, id: &ContainerId) -> Result<ContainerStats>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_signals_like_kubernetes_spells_them() {
        assert_eq!(Signal::parse("SIGTERM"), Some(Signal::TERM));
        assert_eq!(Signal::parse("KILL"), Some(Signal::KILL));
        assert_eq!(Signal::parse("10"), Some(Signal::USR1));
        assert_eq!(Signal::parse("SIGNOPE"), None);
        assert_eq!(Signal::parse("0"), None);
        assert_eq!(Signal::parse("65"), None);
    }

    #[test]
    fn label_filter_needs_every_pair() {
        let labels: BTreeMap<String, String> =
            [(labels::POD_UID, "u1"), (labels::CONTAINER_NAME, "web")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        assert!(LabelFilter::default().matches(&labels));
        assert!(LabelFilter::new([(labels::POD_UID, "u1")]).matches(&labels));
        assert!(
            !LabelFilter::new([(labels::POD_UID, "u1"), (labels::CONTAINER_NAME, "db")])
                .matches(&labels)
        );
        assert!(!LabelFilter::new([(labels::POD_NAME, "u1")]).matches(&labels));
    }

    #[test]
    fn only_a_clean_exit_succeeds() {
        let at = Timestamp::UNIX_EPOCH;
        let exit = |exit_code, signal, oom_killed| ExitInfo {
            exit_code,
            signal,
            oom_killed,
            started_at: at,
            finished_at: at,
        };
        assert!(exit(0, None, false).succeeded());
        assert!(!exit(1, None, false).succeeded());
        assert!(!exit(137, Some(Signal::KILL), false).succeeded());
        assert!(!exit(0, None, true).succeeded());
    }
}
