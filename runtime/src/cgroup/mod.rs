//! Control groups, v1 and v2, behind one [`CgroupManager`] trait.
//!
//! INTERFACE CONTRACT (shared by the container and cgroup modules; change only together).

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// Which cgroup hierarchy layout the host uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CgroupVersion {
    /// Legacy or hybrid: one hierarchy per controller under `<root>/<controller>`.
    V1,
    /// Unified hierarchy mounted at `<root>`.
    V2,
}

/// A cgroup's path relative to the hierarchy root(s), e.g. `/berth/3f2a…`. Never starts with the
/// mount point; always absolute within the hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct CgroupPath(pub PathBuf);

/// CPU bandwidth limit: `quota` of CPU time every `period` (CFS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct CpuQuota {
    pub quota_us: u64,
    pub period_us: u64,
}

/// Limits applied when a cgroup is created. `None` leaves the kernel default.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Resources {
    /// Hard memory limit in bytes (v1 memory.limit_in_bytes, v2 memory.max). Swap is limited to
    /// the same amount so the limit cannot be escaped through swap.
    pub memory_limit: Option<u64>,
    /// CFS bandwidth (v1 cpu.cfs_quota_us/cfs_period_us, v2 cpu.max).
    pub cpu_quota: Option<CpuQuota>,
    /// Relative weight in v1 `cpu.shares` units (2..=262144, default 1024); converted to
    /// `cpu.weight` on v2 with the formula runc/crun use.
    pub cpu_shares: Option<u64>,
    /// Maximum number of tasks (pids.max).
    pub pids_limit: Option<u64>,
}

/// Usage counters read from the cgroup, in the units cAdvisor reports.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Total CPU time consumed, nanoseconds.
    pub cpu_usage_ns: u64,
    /// Memory usage in bytes (v1 memory.usage_in_bytes, v2 memory.current).
    pub memory_usage_bytes: u64,
    /// Working set: usage minus inactive file cache, as cAdvisor computes it.
    pub memory_working_set_bytes: u64,
    /// The memory limit in force, if any.
    pub memory_limit_bytes: Option<u64>,
    /// How many times the OOM killer killed a task of this cgroup.
    pub oom_kill_count: u64,
    /// Number of tasks currently in the cgroup.
    pub pids_current: u64,
    /// Memory pressure (PSI `some avg10`), where the kernel provides it (v2 only).
    pub memory_pressure_some_avg10: Option<f64>,
    /// CPU pressure (PSI `some avg10`), where the kernel provides it (v2 only).
    pub cpu_pressure_some_avg10: Option<f64>,
}

pub type Result<T, E = CgroupError> = std::result::Result<T, E>;

/// Errors of this module; every variant names the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no usable cgroup hierarchy under {root}: {reason}")]
    NotFound { root: PathBuf, reason: String },
    #[error("cannot create cgroup {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {value:?} to {path}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unexpected content in {path}: {content:?}")]
    Parse { path: PathBuf, content: String },
    #[error("cannot remove cgroup {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("processes of cgroup {path} survived SIGKILL for {waited:?}")]
    KillTimeout { path: PathBuf, waited: Duration },
}

/// Creates, limits, measures and destroys cgroups. Implemented by `v1::LinuxCgroupV1`,
/// `v2::LinuxCgroupV2`; both take their filesystem root as a parameter so tests run against a
/// fake cgroupfs tree in a tempdir.
pub trait CgroupManager: Send + Sync + std::fmt::Debug {
    fn version(&self) -> CgroupVersion;
    /// Create the cgroup (and its parents) and apply `resources`. Idempotent.
    fn create(&self, path: &CgroupPath, resources: &Resources) -> Result<()>;
    /// Change the limits of an existing cgroup.
    fn update(&self, path: &CgroupPath, resources: &Resources) -> Result<()>;
    /// Move process `pid` into the cgroup (in every hierarchy on v1).
    fn add_process(&self, path: &CgroupPath, pid: Pid) -> Result<()>;
    /// Processes currently in the cgroup.
    fn pids(&self, path: &CgroupPath) -> Result<Vec<Pid>>;
    /// Send `signal` to every process in the cgroup (freezing it first for SIGKILL so no fork
    /// escapes; v2 uses cgroup.kill where available).
    fn signal_all(&self, path: &CgroupPath, signal: Signal) -> Result<()>;
    /// Usage counters.
    fn stats(&self, path: &CgroupPath) -> Result<Stats>;
    /// Kill whatever is left and remove the cgroup in every hierarchy. Idempotent: a cgroup that
    /// does not exist is not an error.
    fn delete(&self, path: &CgroupPath) -> Result<()>;
    /// Directories the container's init must see as its cgroup (used to mount /sys/fs/cgroup
    /// inside the container): on v1 one per mounted hierarchy, on v2 the single one.
    fn hierarchy_dirs(&self, path: &CgroupPath) -> Vec<(String, PathBuf)>;
}

/// Detect the host's layout from `mountinfo` (normally `/proc/self/mountinfo`) and return the
/// matching manager rooted at `cgroup_root` (normally `/sys/fs/cgroup`).
///
/// A hybrid host (v1 controllers plus a v2 mount at `<root>/unified` that holds no controller
/// berth needs) is driven as v1; only a host whose `<root>` itself is cgroup2 is driven as v2.
pub fn detect(cgroup_root: &Path, mountinfo: &Path) -> Result<Box<dyn CgroupManager>> {
    let _ = (cgroup_root, mountinfo);
    unimplemented!("cgroup helper implements this")
}
