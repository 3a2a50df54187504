//! Control groups, v1 and v2, behind one [`CgroupManager`] trait.
//!
//! INTERFACE CONTRACT (shared by the container and cgroup modules; change only together).
//!
//! * [`detect`] reads `/proc/self/mountinfo` ([`mountinfo`]) and picks the layout: `<root>` itself
//!   a cgroup2 mount means v2 ([`LinuxCgroupV2`]); otherwise the v1 controller mounts below
//!   `<root>` are used ([`LinuxCgroupV1`]). A hybrid host (v1 controllers plus a cgroup2 mount at
//!   `<root>/unified`) is v1: the unified mount is ignored.
//! * v1 joins every mounted v1 controller hierarchy (co-mounts such as `cpu,cpuacct` share one
//!   directory), including cpuset, whose `cpuset.cpus`/`cpuset.mems` are copied from the parent
//!   into every new level as runc does, so a container sees its own cpuset cgroup.
//! * v2 enables `cpu`, `memory` and `pids` in `cgroup.subtree_control` of every ancestor, from the
//!   root down, as far as `cgroup.controllers` offers them.
//! * Memory limits disable swap: v1 writes `memory.memsw.limit_in_bytes` equal to the limit, v2
//!   writes `memory.swap.max` = 0 (both only when the kernel accounts swap).
//! * OOM kills are read from the kernel's `oom_kill` counter (v1 `memory.oom_control`, kernel
//!   4.13 and later; v2 `memory.events`). `memory.failcnt` is NOT used: it counts how often usage
//!   hit the limit (and was reclaimed), not kills. On v1 kernels older than 4.13 the counter is
//!   absent and reads as 0.
//! * Named v1 hierarchies (`name=systemd`) are not joined; `hierarchy_dirs` lists controller
//!   hierarchies only.
//! * Device access: [`Resources::devices`] (see [`devices`]). v1 writes the allow list to the
//!   `devices` hierarchy at every `create`; v2 attaches an eBPF device program to a cgroup that
//!   has none yet ([`devices::DeviceFilter`], injected so fake trees record it).

pub mod devices;
mod files;
pub mod mountinfo;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod v1;
mod v2;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

pub use devices::{DeviceFilter, DeviceFilterError, Devices, LinuxDeviceFilter};
pub use v1::LinuxCgroupV1;
pub use v2::LinuxCgroupV2;

/// How long `signal_all(SIGKILL)` and `delete` wait for a cgroup to empty by default.
pub const DEFAULT_KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// The v1 controllers berth recognises in mount options; anything else (`rw`, `name=systemd`,
/// `clone_children`, ...) is a mount option, not a controller.
pub const V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

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

impl CgroupPath {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self(path.into())
    }

    /// The path relative to a hierarchy root, refusing `..` (a cgroup path can never leave the
    /// hierarchy) and the root itself (berth never manages the root cgroup).
    pub fn relative(&self) -> Result<PathBuf> {
        let mut out = PathBuf::new();
        for component in self.0.components() {
            match component {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(part) => out.push(part),
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(CgroupError::InvalidPath {
                        path: self.0.clone(),
                        reason: "must not contain `..`",
                    });
                }
            }
        }
        if out.as_os_str().is_empty() {
            return Err(CgroupError::InvalidPath {
                path: self.0.clone(),
                reason: "must name a cgroup below the hierarchy root",
            });
        }
        Ok(out)
    }
}

impl std::fmt::Display for CgroupPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.display().fmt(f)
    }
}

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
    /// Which devices the processes may make and open; applied by `create` only.
    #[serde(default)]
    pub devices: Devices,
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
    #[error("invalid cgroup path {path}: {reason}")]
    InvalidPath { path: PathBuf, reason: &'static str },
    #[error("controller {controller} is not available for cgroup {path}")]
    ControllerMissing { controller: String, path: PathBuf },
    #[error("cannot restrict the devices of cgroup {path}")]
    Devices {
        path: PathBuf,
        #[source]
        source: DeviceFilterError,
    },
    #[error("cannot send {signal} to pid {pid} of cgroup {path}")]
    Signal {
        path: PathBuf,
        pid: i32,
        signal: Signal,
        #[source]
        source: nix::errno::Errno,
    },
}

/// Creates, limits, measures and destroys cgroups. Implemented by `v1::LinuxCgroupV1`,
/// `v2::LinuxCgroupV2`; both take their filesystem root as a parameter so tests run against a
/// fake cgroupfs tree in a tempdir.
pub trait CgroupManager: Send + Sync + std::fmt::Debug {
    fn version(&self) -> CgroupVersion;
    /// The layout this manager drives ([`manager`] rebuilds it).
    fn layout(&self) -> Layout;
    /// Create the cgroup (and its parents), apply `resources` and put its device allow list in
    /// force. Idempotent.
    fn create(&self, path: &CgroupPath, resources: &Resources) -> Result<()>;
    /// Change the limits of an existing cgroup.
    fn update(&self, path: &CgroupPath, resources: &Resources) -> Result<()>;
    /// Move process `pid` into the cgroup (in every hierarchy on v1).
    fn add_process(&self, path: &CgroupPath, pid: Pid) -> Result<()>;
    /// The files a single-threaded process writes `0` to, one after the other, to move itself
    /// into the cgroup ([`join_self`]). On v1 they are the `tasks` files: moving the calling
    /// thread alone lets the kernel skip its global threadgroup lock, whose RCU grace period
    /// makes every `cgroup.procs` write of a pid cost 5–8 ms on an idle host (0.05 ms this way).
    /// On v2, `cgroup.procs`: the fallback for a process not cloned into the cgroup
    /// ([`placement_dir`](Self::placement_dir)).
    fn join_files(&self, path: &CgroupPath) -> Result<Vec<PathBuf>>;
    /// The directory a child can be cloned straight into (`clone3(CLONE_INTO_CGROUP)`, v2
    /// only), sparing it the [`join_files`](Self::join_files) write and the grace period a
    /// `cgroup.procs` write waits for. `None` on v1.
    fn placement_dir(&self, path: &CgroupPath) -> Result<Option<PathBuf>> {
        let _ = path;
        Ok(None)
    }
    /// Make the cgroup's directory, without limits or device filter yet, for a child to be
    /// cloned into ([`placement_dir`](Self::placement_dir)); [`create`](Self::create) must
    /// follow before the child runs anything the cgroup should hold in. A shim does the slow
    /// part of `create` (loading the v2 device program) while the init it just cloned sets up
    /// its namespaces. `None` on v1, where nothing is made.
    fn create_for_placement(&self, path: &CgroupPath) -> Result<Option<PathBuf>> {
        let _ = path;
        Ok(None)
    }
    /// Processes currently in the cgroup itself (not in cgroups nested below it).
    fn pids(&self, path: &CgroupPath) -> Result<Vec<Pid>>;
    /// Send `signal` to every process in the cgroup and in the cgroups nested below it (freezing
    /// it first for SIGKILL so no fork escapes, and waiting until all are gone; v2 uses
    /// cgroup.kill where available).
    fn signal_all(&self, path: &CgroupPath, signal: Signal) -> Result<()>;
    /// Usage counters.
    fn stats(&self, path: &CgroupPath) -> Result<Stats>;
    /// Kill whatever is left and remove the cgroup in every hierarchy. Idempotent: a cgroup that
    /// does not exist is not an error.
    fn delete(&self, path: &CgroupPath) -> Result<()>;
    /// Directories the container's init must see as its cgroup (used to mount /sys/fs/cgroup
    /// inside the container): on v1 one per mounted hierarchy, on v2 the single one.
    /// On v1 the name is the mount directory's name (`cpu,cpuacct`, `memory`, ...); on v2 it is
    /// the empty string (the hierarchy is mounted at `/sys/fs/cgroup` itself).
    fn hierarchy_dirs(&self, path: &CgroupPath) -> Vec<(String, PathBuf)>;
    /// Whether the OOM killer killed a task of this cgroup since it was created (the kernel's
    /// `oom_kill` counter is non-zero; see the module documentation for what that relies on).
    fn saw_oom_kill(&self, path: &CgroupPath) -> Result<bool> {
        Ok(self.stats(path)?.oom_kill_count > 0)
    }
}

/// Move the calling process into a cgroup by writing `0` to each of `files`
/// ([`CgroupManager::join_files`]). The caller must be single-threaded: on v1 only the calling
/// thread moves. Used by a freshly forked container init or exec'd process, before it runs
/// anything else.
pub fn join_self(files: &[PathBuf]) -> std::result::Result<(), crate::syscall::SyscallError> {
    for file in files {
        let fd = nix::fcntl::open(
            file.as_path(),
            nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| crate::syscall::SyscallError::path("open", file, e))?;
        nix::unistd::write(&fd, b"0")
            .map_err(|e| crate::syscall::SyscallError::path("write", file, e))?;
    }
    Ok(())
}

/// The cgroup layout found in mountinfo.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Layout {
    /// v1 (or hybrid): controller name -> mount point. Co-mounted controllers map to the same
    /// directory.
    V1 { mounts: BTreeMap<String, PathBuf> },
    /// Unified hierarchy mounted at `root`.
    V2 { root: PathBuf },
}

/// Detect the host's layout from `mountinfo` (normally `/proc/self/mountinfo`) and return the
/// matching manager rooted at `cgroup_root` (normally `/sys/fs/cgroup`).
///
/// A hybrid host (v1 controllers plus a v2 mount at `<root>/unified` that holds no controller
/// berth needs) is driven as v1; only a host whose `<root>` itself is cgroup2 is driven as v2.
pub fn detect(cgroup_root: &Path, mountinfo: &Path) -> Result<Box<dyn CgroupManager>> {
    let content = files::read(mountinfo)?;
    let layout = detect_layout(cgroup_root, &content)?;
    tracing::debug!(root = %cgroup_root.display(), ?layout, "detected cgroup layout");
    Ok(manager(layout))
}

/// Whether a cgroup2 file system is at (or above) `cgroup_root`: one `statfs`, against
/// [`detect`]'s read of mountinfo. A shim asks it to decide whether to detect the layout
/// before forking the init (v2, whose init is cloned into its cgroup) or after (v1).
pub fn root_is_unified(cgroup_root: &Path) -> bool {
    nix::sys::statfs::statfs(cgroup_root)
        .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// The manager of a layout detected earlier (a shim gets the runtime's, rather than reading
/// mountinfo again: with many pods it holds hundreds of lines).
pub fn manager(layout: Layout) -> Box<dyn CgroupManager> {
    match layout {
        Layout::V1 { mounts } => Box::new(LinuxCgroupV1::new(mounts)),
        Layout::V2 { root } => Box::new(LinuxCgroupV2::new(root)),
    }
}

/// Work out the layout from the text of a mountinfo file (see [`detect`]).
pub fn detect_layout(cgroup_root: &Path, mountinfo: &str) -> Result<Layout> {
    let mounts = mountinfo::parse(mountinfo);
    // The last mount on a mount point shadows earlier ones.
    if let Some(top) = mounts.iter().rev().find(|m| m.mount_point == cgroup_root)
        && top.fs_type == "cgroup2"
    {
        return Ok(Layout::V2 {
            root: cgroup_root.to_path_buf(),
        });
    }
    let mut controllers = BTreeMap::new();
    for mount in mounts
        .iter()
        .filter(|m| m.fs_type == "cgroup" && m.mount_point.starts_with(cgroup_root))
    {
        for option in mount
            .super_options
            .split(',')
            .chain(mount.mount_options.split(','))
        {
            if V1_CONTROLLERS.contains(&option) {
                controllers
                    .entry(option.to_owned())
                    .or_insert_with(|| mount.mount_point.clone());
            }
        }
    }
    if controllers.is_empty() {
        return Err(CgroupError::NotFound {
            root: cgroup_root.to_path_buf(),
            reason: "neither a cgroup2 mount at the root nor cgroup v1 controller mounts below it"
                .to_owned(),
        });
    }
    Ok(Layout::V1 {
        mounts: controllers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> &'static Path {
        Path::new("/sys/fs/cgroup")
    }

    #[test]
    fn only_a_cgroup2_file_system_is_a_unified_root() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!root_is_unified(dir.path()));
        assert!(!root_is_unified(&dir.path().join("missing")));
        // This machine: a hybrid host's v2 mount, or a pure v2 host's root.
        let content = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for mount in mountinfo::parse(&content) {
            if mount.mount_point.starts_with("/sys/fs/cgroup") {
                assert_eq!(
                    root_is_unified(&mount.mount_point),
                    mount.fs_type == "cgroup2",
                    "{}",
                    mount.mount_point.display()
                );
            }
        }
    }

    #[test]
    fn hybrid_host_is_v1_and_ignores_the_unified_mount() {
        let layout = detect_layout(root(), include_str!("testdata/mountinfo-hybrid")).unwrap();
        let Layout::V1 { mounts } = layout else {
            panic!("expected v1, got {layout:?}");
        };
        let expected: BTreeMap<String, PathBuf> = [
            "blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb", "memory", "pids",
        ]
        .into_iter()
        .map(|c| (c.to_owned(), root().join(c)))
        .collect();
        assert_eq!(mounts, expected);
    }

    #[test]
    fn co_mounted_controllers_share_a_directory() {
        let layout = detect_layout(root(), include_str!("testdata/mountinfo-v1-comount")).unwrap();
        let Layout::V1 { mounts } = layout else {
            panic!("expected v1, got {layout:?}");
        };
        let comount = root().join("cpu,cpuacct");
        assert_eq!(mounts["cpu"], comount);
        assert_eq!(mounts["cpuacct"], comount);
        assert_eq!(mounts["net_prio"], root().join("net_cls,net_prio"));
        assert_eq!(mounts["cpuset"], root().join("cpuset"));
        // name=systemd and mount options are not controllers.
        assert!(
            !mounts
                .keys()
                .any(|k| k.contains("systemd") || k == "rw" || k == "xattr")
        );

        let manager = LinuxCgroupV1::new(mounts);
        let dirs = manager.hierarchy_dirs(&CgroupPath::new("/berth/c1"));
        assert!(dirs.contains(&("cpu,cpuacct".to_owned(), comount.join("berth/c1"))));
        // One entry per hierarchy, not per controller.
        assert_eq!(dirs.len(), 8);
    }

    #[test]
    fn pure_v2_host_is_v2() {
        let layout = detect_layout(root(), include_str!("testdata/mountinfo-v2")).unwrap();
        assert_eq!(
            layout,
            Layout::V2 {
                root: root().to_path_buf()
            }
        );
    }

    #[test]
    fn no_cgroup_mount_is_an_error() {
        let err =
            detect_layout(root(), "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n").unwrap_err();
        assert!(matches!(err, CgroupError::NotFound { .. }), "{err}");
        // Mounts outside the given root do not count.
        let err = detect_layout(
            Path::new("/elsewhere"),
            include_str!("testdata/mountinfo-hybrid"),
        )
        .unwrap_err();
        assert!(matches!(err, CgroupError::NotFound { .. }), "{err}");
    }

    #[test]
    fn detect_reads_the_mountinfo_file() {
        let dir = tempfile::tempdir().unwrap();
        let mountinfo = dir.path().join("mountinfo");
        std::fs::write(&mountinfo, include_str!("testdata/mountinfo-v2")).unwrap();
        let manager = detect(root(), &mountinfo).unwrap();
        assert_eq!(manager.version(), CgroupVersion::V2);
        assert_eq!(
            manager.hierarchy_dirs(&CgroupPath::new("/berth/c1")),
            vec![(String::new(), root().join("berth/c1"))]
        );
        let missing = detect(root(), &dir.path().join("absent")).unwrap_err();
        assert!(matches!(missing, CgroupError::Read { .. }), "{missing}");
    }

    #[test]
    fn cgroup_paths_stay_inside_the_hierarchy() {
        assert_eq!(
            CgroupPath::new("/berth/./c1").relative().unwrap(),
            PathBuf::from("berth/c1")
        );
        assert_eq!(
            CgroupPath::new("berth/c1").relative().unwrap(),
            PathBuf::from("berth/c1")
        );
        for bad in ["/berth/../../etc", "/", ""] {
            let err = CgroupPath::new(bad).relative().unwrap_err();
            assert!(
                matches!(err, CgroupError::InvalidPath { .. }),
                "{bad}: {err}"
            );
        }
    }
}
