//! Containers: configuration, state and the operations on them, one file per operation.
//!
//! [`LinuxRuntime`] is the runtime's public face; the agent wraps it in its `ContainerRuntime`
//! trait. Layout on disk:
//!
//! ```text
//! <root>/containers/<id>/config.json     ContainerConfig (incl. image manifest digest)
//! <root>/containers/<id>/container.log   CRI-format output (rotated to .1, .2 …)
//! <root>/containers/<id>/{upper,work}   the overlay's writable layer
//! <root>/names/<name> -> <id>            reservation of a name given explicitly (atomic symlink)
//! <run_dir>/containers/<id>/state.json   State, written by the shim
//! <run_dir>/containers/<id>/exec.fifo    start handshake, gone once started
//! <run_dir>/mnt                          empty: where every init mounts its overlay
//! <root>/trash/<id>, <run_dir>/trash/<id> a removed container's directories, renamed out of
//!                                        every listing at once and deleted just after
//! ```
//! Each init mounts its overlay on `<run_dir>/mnt` inside its own private mount namespace (then
//! pivots into it), so one empty directory serves every container and the host never sees the
//! mounts.
//! Container phases are described in [`state`].

pub mod attach;
pub mod config;
pub mod create;
pub mod delete;
pub mod exec;
pub mod kill;
pub mod list;
pub mod start;
pub mod state;
pub mod stop;
pub mod user;
pub mod wait;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::cgroup::{self, CgroupError, CgroupManager, CgroupPath};
use crate::syscall::{Syscall, SyscallError};

pub use attach::SignalProxy;
pub use config::{ContainerConfig, ContainerId};
pub use create::{CreateOptions, Created, ShimProcess};
pub use exec::{ExecConfig, ExecIo, ExecOutput};
pub use list::ContainerInfo;
pub use state::{ExitStatus, Reason, State, StateError, Status};
pub use user::{UserError, resolve_user};

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// Where the runtime keeps things and which host files it reads; all parameters so tests use
/// tempdirs.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Persistent state (`/var/lib/berth`).
    pub root: PathBuf,
    /// Runtime state lost at reboot (`/run/berth`).
    pub run_dir: PathBuf,
    /// `/sys/fs/cgroup`.
    pub cgroup_root: PathBuf,
    /// `/proc/self/mountinfo`.
    pub mountinfo_path: PathBuf,
    /// Parent of every container's cgroup (`/berth`).
    pub cgroup_parent: PathBuf,
    /// The binary re-executed as shim; must call [`crate::shim::run_if_shim`] first thing.
    pub shim_exe: PathBuf,
    /// Pod networking of sandboxes with a network namespace of their own: the host bridge
    /// and the pod CIDR (`berth0`, `10.73.0.0/16`).
    pub network: crate::network::NetworkConfig,
}

impl RuntimeConfig {
    /// Host defaults below `root` and `run_dir`, with this binary as the shim.
    pub fn new(root: PathBuf, run_dir: PathBuf) -> Self {
        Self {
            root,
            run_dir,
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            mountinfo_path: PathBuf::from("/proc/self/mountinfo"),
            cgroup_parent: PathBuf::from("/berth"),
            shim_exe: PathBuf::from("/proc/self/exe"),
            network: crate::network::NetworkConfig::default(),
        }
    }
}

/// Errors of container operations; each names the container.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    InvalidId(#[from] config::InvalidId),
    #[error("no such container: {0}")]
    NotFound(String),
    #[error("container reference {query:?} is ambiguous: {matches:?}")]
    Ambiguous { query: String, matches: Vec<String> },
    #[error("container {0} already exists")]
    AlreadyExists(ContainerId),
    #[error("the container name {name:?} is already in use by container {id}")]
    NameInUse { name: String, id: String },
    #[error("container {id}: {path}")]
    Io {
        id: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("container {id}: invalid {path}")]
    Json {
        id: String,
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("container {id}: cannot start shim {exe}")]
    Spawn {
        id: ContainerId,
        exe: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The container could not be created; `code` is docker's exit code for it (125-127).
    #[error("{message}")]
    Create {
        id: ContainerId,
        code: i32,
        message: String,
    },
    /// A process could not be exec'd in the container; `code` is docker's (125-127).
    #[error("{message}")]
    Exec {
        id: ContainerId,
        code: i32,
        message: String,
    },
    #[error("container {0}: shim exited without reporting")]
    ShimLost(ContainerId),
    #[error("container {id} is {status:?}, not {expected}")]
    WrongStatus {
        id: ContainerId,
        status: Status,
        expected: &'static str,
    },
    #[error("container {0} is running: stop it first or force the removal")]
    Running(ContainerId),
    #[error("container {id}: still running after {waited:?}")]
    Timeout {
        id: ContainerId,
        waited: std::time::Duration,
    },
    #[error(transparent)]
    State(#[from] StateError),
    #[error("container {id}: cgroup")]
    Cgroup {
        id: String,
        #[source]
        source: CgroupError,
    },
    #[error("container {id}")]
    Kernel {
        id: String,
        #[source]
        source: SyscallError,
    },
    #[error("{original}; cleanup also failed: {cleanup}")]
    Cleanup {
        original: Box<RuntimeError>,
        cleanup: Box<RuntimeError>,
    },
}

impl RuntimeError {
    /// docker's exit code for a failure to run a container: 125-127 for create errors, 125
    /// otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            RuntimeError::Create { code, .. } | RuntimeError::Exec { code, .. } => *code,
            RuntimeError::Cleanup { original, .. } => original.exit_code(),
            _ => 125,
        }
    }
}

/// The built-in runtime on this host.
#[derive(Debug)]
pub struct LinuxRuntime {
    config: RuntimeConfig,
    pub(crate) syscall: Arc<dyn Syscall>,
    cgroups: OnceLock<Box<dyn CgroupManager>>,
    zygote: Option<Arc<crate::shim::zygote::Zygote>>,
}

impl LinuxRuntime {
    pub fn new(config: RuntimeConfig, syscall: Arc<dyn Syscall>) -> Self {
        Self {
            config,
            syscall,
            cgroups: OnceLock::new(),
            zygote: None,
        }
    }

    /// Fork detached shims and sandbox shims from `zygote` instead of spawning berth's binary
    /// for each: what a long-lived multi-threaded caller (the daemon) wants.
    pub fn with_zygote(mut self, zygote: Arc<crate::shim::zygote::Zygote>) -> Self {
        self.zygote = Some(zygote);
        self
    }

    pub(crate) fn zygote(&self) -> Option<&crate::shim::zygote::Zygote> {
        self.zygote.as_deref()
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    pub fn container_dir(&self, id: &ContainerId) -> PathBuf {
        container_dir(&self.config.root, id)
    }

    pub fn state_dir(&self, id: &ContainerId) -> PathBuf {
        state_dir(&self.config.run_dir, id)
    }

    pub fn cgroup_path(&self, id: &ContainerId) -> CgroupPath {
        CgroupPath(self.config.cgroup_parent.join(id.as_str()))
    }

    /// The cgroup manager, detected on first use (not on `berth run`'s hot path).
    fn cgroups(&self, id: &ContainerId) -> Result<&dyn CgroupManager> {
        if let Some(manager) = self.cgroups.get() {
            return Ok(manager.as_ref());
        }
        let manager = cgroup::detect(&self.config.cgroup_root, &self.config.mountinfo_path)
            .map_err(|source| RuntimeError::Cgroup {
                id: id.to_string(),
                source,
            })?;
        Ok(self.cgroups.get_or_init(|| manager).as_ref())
    }

    pub fn load_config(&self, id: &ContainerId) -> Result<ContainerConfig> {
        let path = self.container_dir(id).join("config.json");
        let bytes = std::fs::read(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                RuntimeError::NotFound(id.to_string())
            } else {
                RuntimeError::Io {
                    id: id.to_string(),
                    path: path.clone(),
                    source,
                }
            }
        })?;
        serde_json::from_slice(&bytes).map_err(|source| RuntimeError::Json {
            id: id.to_string(),
            path,
            source,
        })
    }

    /// The container's state, corrected when its shim died without recording the end.
    pub fn state(&self, id: &ContainerId) -> Result<State> {
        let dir = self.state_dir(id);
        let mut state = State::load(&dir).map_err(|err| match err {
            StateError::Read { ref source, .. }
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                RuntimeError::NotFound(id.to_string())
            }
            other => RuntimeError::State(other),
        })?;
        let alive = process_start_time(state.shim_pid) == Some(state.shim_start_time);
        state.reconcile(alive);
        // As runc: once `start` has consumed the exec fifo the container runs, even if the
        // shim has not recorded it yet.
        if state.status == Status::Created && !dir.join("exec.fifo").exists() {
            state.status = Status::Running;
        }
        Ok(state)
    }

    /// A pidfd of the shim: it becomes readable when the container has exited and its exit is
    /// recorded (the shim lives exactly as long). The async agent registers it with its reactor
    /// instead of polling. `None` when the shim is already gone.
    pub fn exit_fd(&self, id: &ContainerId) -> Result<Option<OwnedFd>> {
        let state = self.state(id)?;
        if state.status == Status::Stopped {
            return Ok(None);
        }
        match self
            .syscall
            .pidfd_open(nix::unistd::Pid::from_raw(state.shim_pid))
        {
            // The pid may have been reused between reading the state and opening the pidfd:
            // the start time must still be the shim's.
            Ok(fd) if process_start_time(state.shim_pid) == Some(state.shim_start_time) => {
                Ok(Some(fd))
            }
            Ok(_) => Ok(None),
            Err(e) if e.errno == nix::errno::Errno::ESRCH => Ok(None),
            Err(source) => Err(RuntimeError::Kernel {
                id: id.to_string(),
                source,
            }),
        }
    }

    /// Find a container by full id, name or unique id prefix.
    pub fn resolve(&self, query: &str) -> Result<ContainerId> {
        if query.is_empty() {
            return Err(RuntimeError::NotFound(String::new()));
        }
        if let Ok(id) = query.parse::<ContainerId>()
            && self.container_dir(&id).join("config.json").exists()
        {
            return Ok(id);
        }
        if let Ok(target) = std::fs::read_link(self.config.root.join("names").join(query))
            && let Some(id) = target.to_str().and_then(|t| t.parse::<ContainerId>().ok())
            && self.container_dir(&id).exists()
        {
            return Ok(id);
        }
        let ids = self.ids()?;
        let matches: Vec<&ContainerId> = ids
            .iter()
            .filter(|id| id.as_str().starts_with(query))
            .collect();
        match matches[..] {
            [id] => Ok(id.clone()),
            [] => Err(RuntimeError::NotFound(query.to_string())),
            _ => Err(RuntimeError::Ambiguous {
                query: query.to_string(),
                matches: matches.iter().map(|id| id.short().to_string()).collect(),
            }),
        }
    }

    /// Ids of every container on disk.
    pub fn ids(&self) -> Result<Vec<ContainerId>> {
        let dir = self.config.root.join("containers");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(RuntimeError::Io {
                    id: String::new(),
                    path: dir,
                    source,
                });
            }
        };
        let mut ids: Vec<ContainerId> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok()?.parse().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

pub(crate) fn container_dir(root: &Path, id: &ContainerId) -> PathBuf {
    root.join("containers").join(id.as_str())
}

/// The directory every container's init mounts its root filesystem on, in its own mount
/// namespace.
pub(crate) fn mount_point(run_dir: &Path) -> PathBuf {
    run_dir.join("mnt")
}

pub(crate) fn state_dir(run_dir: &Path, id: &ContainerId) -> PathBuf {
    run_dir.join("containers").join(id.as_str())
}

/// Start time of `pid` in clock ticks since boot (field 22 of /proc/<pid>/stat).
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// This process's pid and start time.
pub(crate) fn self_identity() -> (i32, u64) {
    let pid = std::process::id() as i32;
    (pid, process_start_time(pid).unwrap_or(0))
}

/// Manifest digests of the images some container on disk was created from, so `image rm`
/// can refuse to remove them.
pub fn images_in_use(root: &Path) -> std::collections::BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir(root.join("containers")) else {
        return Default::default();
    };
    entries
        .filter_map(|e| {
            let bytes = std::fs::read(e.ok()?.path().join("config.json")).ok()?;
            let config: ContainerConfig = serde_json::from_slice(&bytes).ok()?;
            Some(config.image?.manifest_digest)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_parses_names_with_spaces() {
        let (pid, start) = self_identity();
        assert!(start > 0);
        assert_eq!(process_start_time(pid), Some(start));
        assert_eq!(process_start_time(i32::MAX), None);
    }

    #[test]
    fn resolve_by_id_name_and_prefix_and_images_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = LinuxRuntime::new(
            RuntimeConfig::new(dir.path().join("root"), dir.path().join("run")),
            Arc::new(crate::syscall::RecordingSyscall::new()),
        );
        for (id, name) in [("abc123", "web"), ("abd456", "db")] {
            let id: ContainerId = id.parse().unwrap();
            let mut config = ContainerConfig::new(id.clone(), vec!["/l".into()], vec!["sh".into()]);
            config.name = name.into();
            config.image = Some(config::ImageRef {
                name: "busybox".into(),
                manifest_digest: format!("sha256:{name}"),
            });
            create::write_files(&runtime.config, &config, CreateOptions::default()).unwrap();
        }
        assert_eq!(runtime.resolve("abc123").unwrap().as_str(), "abc123");
        assert_eq!(runtime.resolve("db").unwrap().as_str(), "abd456");
        assert_eq!(runtime.resolve("abc").unwrap().as_str(), "abc123");
        assert!(matches!(
            runtime.resolve("ab"),
            Err(RuntimeError::Ambiguous { .. })
        ));
        assert!(matches!(
            runtime.resolve("zzz"),
            Err(RuntimeError::NotFound(_))
        ));
        assert!(matches!(
            runtime.resolve(""),
            Err(RuntimeError::NotFound(_))
        ));

        let in_use = images_in_use(&dir.path().join("root"));
        assert_eq!(
            in_use.into_iter().collect::<Vec<_>>(),
            ["sha256:db", "sha256:web"]
        );

        // A second container may not take a name in use.
        let mut clash =
            ContainerConfig::new("x1".parse().unwrap(), vec!["/l".into()], vec!["sh".into()]);
        clash.name = "web".into();
        assert!(matches!(
            create::write_files(&runtime.config, &clash, CreateOptions::default()),
            Err(RuntimeError::NameInUse { .. })
        ));
        assert!(
            !runtime.container_dir(&clash.id).exists(),
            "a refused create leaves nothing"
        );

        // A generated name (the id's short form) has no link and is found as an id prefix; an
        // explicit name may not take it.
        let generated: ContainerId = "0123456789abcdef0123".parse().unwrap();
        let mut config =
            ContainerConfig::new(generated.clone(), vec!["/l".into()], vec!["sh".into()]);
        config.name = generated.short().to_string();
        create::write_files(&runtime.config, &config, CreateOptions::default()).unwrap();
        assert!(!dir.path().join("root/names/0123456789ab").exists());
        assert_eq!(runtime.resolve("0123456789ab").unwrap(), generated);
        let mut taker = ContainerConfig::new(
            "fedcba".parse().unwrap(),
            vec!["/l".into()],
            vec!["sh".into()],
        );
        taker.name = "0123456789ab".into();
        assert!(matches!(
            create::write_files(&runtime.config, &taker, CreateOptions::default()),
            Err(RuntimeError::NameInUse { id, .. }) if id == generated.as_str()
        ));
    }
}
