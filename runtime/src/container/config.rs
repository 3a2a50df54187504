//! [`ContainerConfig`]: the runtime's own container specification. It knows nothing of pods or
//! YAML: the agent and `berth run` translate their input into it. Stored as
//! `<root>/containers/<id>/config.json`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::cgroup::Resources;
use crate::logs::LogOptions;

/// A container id: 1–128 characters of `[A-Za-z0-9_.-]`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContainerId(String);

/// Why a string is not a valid [`ContainerId`].
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid container id {0:?}: expected 1-128 characters of [A-Za-z0-9_.-] starting with a letter or digit"
)]
pub struct InvalidId(pub String);

impl ContainerId {
    /// A fresh random id of 64 hex digits, as docker's.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        let random = std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
        if let Err(err) = random {
            // Only without /dev/urandom; fall back on time and pid.
            tracing::warn!(?err, "getrandom failed");
            let seed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            bytes[..16].copy_from_slice(&seed.to_le_bytes());
            bytes[16..20].copy_from_slice(&std::process::id().to_le_bytes());
        }
        Self(hex::encode(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 characters, as `docker ps` shows them and the default hostname.
    pub fn short(&self) -> &str {
        &self.0[..self.0.len().min(12)]
    }
}

impl TryFrom<String> for ContainerId {
    type Error = InvalidId;
    fn try_from(s: String) -> Result<Self, InvalidId> {
        let valid = !s.is_empty()
            && s.len() <= 128
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if valid {
            Ok(Self(s))
        } else {
            Err(InvalidId(s))
        }
    }
}

impl std::str::FromStr for ContainerId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, InvalidId> {
        Self::try_from(s.to_string())
    }
}

impl From<ContainerId> for String {
    fn from(id: ContainerId) -> String {
        id.0
    }
}

impl std::fmt::Display for ContainerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The image a container was made from, so `image rm` can refuse while it is in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    pub name: String,
    pub manifest_digest: String,
}

/// The full specification of one container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerConfig {
    pub id: ContainerId,
    /// Unique human name (docker's `--name`); defaults to the id.
    pub name: String,
    /// Free-form tags (the agent records pod and container names here).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub image: Option<ImageRef>,
    pub rootfs: RootfsConfig,
    pub process: ProcessConfig,
    /// Defaults to the short id.
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub namespaces: Namespaces,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    #[serde(default)]
    pub resources: Resources,
    /// Rotation of `container.log`.
    #[serde(default)]
    pub log: LogOptions,
    /// Signal `stop` sends first (number), SIGTERM by default.
    #[serde(default = "default_stop_signal")]
    pub stop_signal: i32,
    /// Files get /dev/null bound over them, directories an empty read-only tmpfs.
    #[serde(default = "default_masked_paths")]
    pub masked_paths: Vec<PathBuf>,
    /// Bound onto themselves read-only.
    #[serde(default = "default_readonly_paths")]
    pub readonly_paths: Vec<PathBuf>,
    /// Remove everything once the container exits (`--rm`).
    #[serde(default)]
    pub auto_remove: bool,
}

fn default_stop_signal() -> i32 {
    libc::SIGTERM
}

/// Docker's default masked paths.
pub fn default_masked_paths() -> Vec<PathBuf> {
    [
        "/proc/asound",
        "/proc/acpi",
        "/proc/interrupts",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect()
}

/// Docker's default read-only paths.
pub fn default_readonly_paths() -> Vec<PathBuf> {
    [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect()
}

/// Docker's 14 default capabilities (CapEff 0x00000000a80425fb).
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The root filesystem: read-only image layers under a per-container writable overlay layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootfsConfig {
    /// Unpacked layer directories, lowest first.
    pub layers: Vec<PathBuf>,
    #[serde(default)]
    pub readonly: bool,
}

/// What runs as the container's PID 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessConfig {
    pub args: Vec<String>,
    /// KEY=VALUE; PATH, HOME and HOSTNAME are added when missing.
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default = "default_cwd")]
    pub cwd: PathBuf,
    #[serde(default)]
    pub user: User,
    /// Capability names (`CAP_CHOWN`); bounding, permitted and effective sets.
    #[serde(default = "default_capabilities")]
    pub capabilities: Vec<String>,
    #[serde(default = "yes")]
    pub no_new_privileges: bool,
    /// berth's default seccomp filter ([`crate::process::seccomp`]); off is docker's
    /// `seccomp=unconfined`.
    #[serde(default = "yes")]
    pub seccomp: bool,
    #[serde(default)]
    pub rlimits: Vec<Rlimit>,
}

fn default_cwd() -> PathBuf {
    PathBuf::from("/")
}

fn yes() -> bool {
    true
}

fn default_capabilities() -> Vec<String> {
    DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect()
}

/// Numeric identity of the process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub additional_gids: Vec<u32>,
}

/// One resource limit, named as in the OCI spec (`RLIMIT_NOFILE`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    #[serde(rename = "type")]
    pub kind: String,
    pub soft: u64,
    pub hard: u64,
}

/// How the container gets one kind of namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceMode {
    /// A fresh namespace of its own.
    #[default]
    New,
    /// The host's (berth's) namespace.
    Host,
    /// An existing namespace, e.g. `/proc/<pid>/ns/net` of a pod's first container.
    Join(PathBuf),
}

/// Namespaces other than mount (always new). `network: New` is "none": loopback only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespaces {
    #[serde(default)]
    pub pid: NamespaceMode,
    #[serde(default)]
    pub network: NamespaceMode,
    #[serde(default)]
    pub ipc: NamespaceMode,
    #[serde(default)]
    pub uts: NamespaceMode,
    #[serde(default)]
    pub cgroup: NamespaceMode,
}

/// An extra mount in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Absolute path inside the container.
    pub destination: PathBuf,
    pub kind: MountKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// Bind mount of a host file or directory (recursive).
    Bind {
        source: PathBuf,
        #[serde(default)]
        readonly: bool,
    },
    /// A fresh tmpfs.
    Tmpfs {
        #[serde(default)]
        size_bytes: Option<u64>,
        #[serde(default = "tmpfs_mode")]
        mode: u32,
    },
}

fn tmpfs_mode() -> u32 {
    0o1777
}

impl ContainerConfig {
    /// A container with docker's defaults (14 capabilities, masked and read-only paths, new
    /// namespaces, no-new-privileges) running `args` on `layers` (lowest first).
    pub fn new(id: ContainerId, layers: Vec<PathBuf>, args: Vec<String>) -> Self {
        Self {
            name: id.to_string(),
            id,
            labels: BTreeMap::new(),
            image: None,
            rootfs: RootfsConfig {
                layers,
                readonly: false,
            },
            process: ProcessConfig {
                args,
                env: Vec::new(),
                cwd: default_cwd(),
                user: User::default(),
                capabilities: default_capabilities(),
                no_new_privileges: true,
                seccomp: true,
                rlimits: Vec::new(),
            },
            hostname: None,
            namespaces: Namespaces::default(),
            mounts: Vec::new(),
            resources: Resources::default(),
            log: LogOptions::default(),
            stop_signal: default_stop_signal(),
            masked_paths: default_masked_paths(),
            readonly_paths: default_readonly_paths(),
            auto_remove: false,
        }
    }

    /// The hostname the container gets.
    pub fn effective_hostname(&self) -> String {
        self.hostname
            .clone()
            .unwrap_or_else(|| self.id.short().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated() {
        assert!("abc-1.2_3".parse::<ContainerId>().is_ok());
        assert!("".parse::<ContainerId>().is_err());
        assert!("-x".parse::<ContainerId>().is_err());
        assert!("a/b".parse::<ContainerId>().is_err());
        assert!("a".repeat(129).parse::<ContainerId>().is_err());
        let id = ContainerId::generate();
        assert_eq!(id.as_str().len(), 64);
        assert_eq!(id.short().len(), 12);
        assert_ne!(id, ContainerId::generate());
    }

    #[test]
    fn config_round_trips_and_defaults_apply() {
        let mut config = ContainerConfig::new(
            "c1".parse().unwrap(),
            vec!["/layers/a".into()],
            vec!["/bin/true".into()],
        );
        config.namespaces.network = NamespaceMode::Join("/proc/42/ns/net".into());
        config.mounts.push(Mount {
            destination: "/data".into(),
            kind: MountKind::Bind {
                source: "/srv".into(),
                readonly: true,
            },
        });
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(
            serde_json::from_str::<ContainerConfig>(&json).unwrap(),
            config
        );

        // A minimal document gets docker's defaults.
        let minimal: ContainerConfig = serde_json::from_str(
            r#"{"id":"c2","name":"n","rootfs":{"layers":["/l"]},"process":{"args":["sh"]}}"#,
        )
        .unwrap();
        assert_eq!(minimal.process.capabilities.len(), 14);
        assert!(minimal.process.no_new_privileges && minimal.process.seccomp);
        assert_eq!(minimal.stop_signal, libc::SIGTERM);
        assert_eq!(minimal.masked_paths, default_masked_paths());
        assert_eq!(minimal.namespaces.network, NamespaceMode::New);
        assert_eq!(minimal.effective_hostname(), "c2");
    }
}
