//! The container's root filesystem, set up by its init inside a fresh mount namespace.
//!
//! ```text
//!  Host view ──propagation rslave──► Prepared (overlay + /proc /dev /sys cgroup, binds)
//!            ──pivot_root(".", ".") + detach old root──► Pivoted
//!            ──masked / read-only paths, read-only root──► Hardened
//! ```
//! Mount targets below the new root are resolved with [`secure_join`] so a symlink in an image
//! cannot point a mount at the host. All calls go through [`Syscall`], so the sequence is tested
//! with [`crate::syscall::RecordingSyscall`].

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};

use crate::cgroup::CgroupVersion;
use crate::container::config::{Mount, MountKind};
use crate::syscall::{Syscall, SyscallError, secure_join};

pub type Result<T, E = RootfsError> = std::result::Result<T, E>;

/// A failed step of the root filesystem setup, naming the path inside the container.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("mount {what} at {target}")]
    Mount {
        what: String,
        target: PathBuf,
        #[source]
        source: SyscallError,
    },
    #[error("prepare {path}")]
    Prepare {
        path: PathBuf,
        #[source]
        source: SyscallError,
    },
    #[error("pivot_root to {rootfs}")]
    Pivot {
        rootfs: PathBuf,
        #[source]
        source: SyscallError,
    },
    #[error("container has no image layer")]
    NoLayers,
}

/// The kernel's limit on mount option data is one page; beyond it containerd's trick of
/// relative lower dirs from a common parent applies.
const MOUNT_DATA_MAX: usize = 4095;

/// Everything the rootfs setup needs, with host paths for the overlay and bind sources.
#[derive(Debug, Clone)]
pub struct RootfsPlan<'a> {
    /// Empty directory the overlay is mounted on; becomes `/`.
    pub rootfs: &'a Path,
    /// Read-only layers, lowest first.
    pub layers: &'a [PathBuf],
    pub upper: &'a Path,
    pub work: &'a Path,
    pub readonly: bool,
    pub mounts: &'a [Mount],
    pub cgroup_version: CgroupVersion,
    /// On v1: (hierarchy name, host directory of the container's cgroup) pairs.
    pub cgroup_dirs: &'a [(String, PathBuf)],
    pub masked_paths: &'a [PathBuf],
    pub readonly_paths: &'a [PathBuf],
}

/// Overlay mount data for `layers` (lowest first). Returns the directory to chdir to when the
/// lower dirs are given relative to it because the absolute form would not fit in a page.
pub fn overlay_data(layers: &[PathBuf], upper: &Path, work: &Path) -> (Option<PathBuf>, String) {
    // `volatile`: the writable layer dies with the container, so overlayfs need not sync the
    // upper filesystem on unmount (a full ext4 sync that cost tens of milliseconds per run).
    let tail = format!(
        ",upperdir={},workdir={},volatile",
        upper.display(),
        work.display()
    );
    let top_first = || layers.iter().rev();
    let absolute: Vec<String> = top_first().map(|l| l.display().to_string()).collect();
    let data = format!("lowerdir={}{tail}", absolute.join(":"));
    if data.len() <= MOUNT_DATA_MAX {
        return (None, data);
    }
    let parent = common_parent(layers);
    let relative: Vec<String> = top_first()
        .map(|l| l.strip_prefix(&parent).unwrap_or(l).display().to_string())
        .collect();
    (
        Some(parent),
        format!("lowerdir={}{tail}", relative.join(":")),
    )
}

fn common_parent(paths: &[PathBuf]) -> PathBuf {
    let mut parent = paths
        .first()
        .and_then(|p| p.parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    while !paths.iter().all(|p| p.starts_with(&parent)) {
        if !parent.pop() {
            break;
        }
    }
    parent
}

/// The nosuid/nodev/noexec flags of the mount `source` is on. A read-only bind remount sets the
/// mount's flags to exactly the ones given, so without these it would clear them (a `nosuid`
/// tmpfs volume would become suid-capable inside the container); runc keeps them the same way.
/// A source that cannot be inspected adds none (the bind mount itself then reports the error).
fn kept_mount_flags(source: &Path) -> MsFlags {
    use nix::sys::statvfs::{FsFlags, statvfs};
    let Ok(stat) = statvfs(source) else {
        return MsFlags::empty();
    };
    let mut flags = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
    ] {
        if stat.flags().contains(fs) {
            flags |= ms;
        }
    }
    flags
}

/// Performs the setup with an injected [`Syscall`].
pub struct Rootfs<'s> {
    syscall: &'s dyn Syscall,
}

const NODEV_NOSUID_NOEXEC: MsFlags = MsFlags::MS_NODEV
    .union(MsFlags::MS_NOSUID)
    .union(MsFlags::MS_NOEXEC);

impl<'s> Rootfs<'s> {
    pub fn new(syscall: &'s dyn Syscall) -> Self {
        Self { syscall }
    }

    fn mount(
        &self,
        what: &str,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()> {
        self.syscall
            .mount(source, target, fstype, flags, data)
            .map_err(|source| RootfsError::Mount {
                what: what.to_string(),
                target: target.to_path_buf(),
                source,
            })
    }

    fn mkdir(&self, path: &Path, mode: u32) -> Result<()> {
        self.syscall
            .mkdir_all(path, mode)
            .map_err(|source| RootfsError::Prepare {
                path: path.to_path_buf(),
                source,
            })
    }

    /// Everything before pivot_root: propagation, overlay, kernel filesystems, extra mounts.
    pub fn prepare(&self, plan: &RootfsPlan<'_>) -> Result<()> {
        // Nothing mounted from here on may propagate back to the host.
        let root = Path::new("/");
        self.mount(
            "propagation",
            None,
            root,
            None,
            MsFlags::MS_REC | MsFlags::MS_SLAVE,
            None,
        )?;

        if plan.layers.is_empty() {
            return Err(RootfsError::NoLayers);
        }
        let (chdir, data) = overlay_data(plan.layers, plan.upper, plan.work);
        if let Some(dir) = &chdir {
            self.syscall
                .chdir(dir)
                .map_err(|source| RootfsError::Prepare {
                    path: dir.clone(),
                    source,
                })?;
        }
        let overlay = Path::new("overlay");
        self.mount(
            "overlay",
            Some(overlay),
            plan.rootfs,
            Some("overlay"),
            MsFlags::empty(),
            Some(&data),
        )?;

        let rootfs = plan.rootfs;
        let target = |p: &str| secure_join(rootfs, Path::new(p));

        let proc_dir = target("/proc");
        self.mkdir(&proc_dir, 0o555)?;
        self.mount(
            "proc",
            Some(Path::new("proc")),
            &proc_dir,
            Some("proc"),
            NODEV_NOSUID_NOEXEC,
            None,
        )?;

        self.prepare_dev(rootfs)?;

        let sys = target("/sys");
        self.mkdir(&sys, 0o555)?;
        let sys_flags = NODEV_NOSUID_NOEXEC | MsFlags::MS_RDONLY;
        self.mount(
            "sysfs",
            Some(Path::new("sysfs")),
            &sys,
            Some("sysfs"),
            sys_flags,
            None,
        )?;
        self.prepare_cgroup(plan, &sys.join("fs/cgroup"))?;

        for mount in plan.mounts {
            self.mount_extra(rootfs, mount)?;
        }
        Ok(())
    }

    fn prepare_dev(&self, rootfs: &Path) -> Result<()> {
        let dev = secure_join(rootfs, Path::new("/dev"));
        self.mkdir(&dev, 0o755)?;
        let tmpfs = Some(Path::new("tmpfs"));
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME;
        self.mount(
            "tmpfs",
            tmpfs,
            &dev,
            Some("tmpfs"),
            flags,
            Some("mode=755,size=65536k"),
        )?;
        for (name, major, minor) in [
            ("null", 1, 3),
            ("zero", 1, 5),
            ("full", 1, 7),
            ("random", 1, 8),
            ("urandom", 1, 9),
            ("tty", 5, 0),
        ] {
            let path = dev.join(name);
            let mode = Mode::from_bits_truncate(0o666);
            self.syscall
                .mknod(
                    &path,
                    SFlag::S_IFCHR,
                    mode,
                    nix::sys::stat::makedev(major, minor),
                )
                .map_err(|source| RootfsError::Prepare { path, source })?;
        }
        let pts = dev.join("pts");
        self.mkdir(&pts, 0o755)?;
        let pts_data = "newinstance,ptmxmode=0666,mode=0620,gid=5";
        let pts_flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
        self.mount(
            "devpts",
            Some(Path::new("devpts")),
            &pts,
            Some("devpts"),
            pts_flags,
            Some(pts_data),
        )?;
        let shm = dev.join("shm");
        self.mkdir(&shm, 0o1777)?;
        self.mount(
            "tmpfs",
            tmpfs,
            &shm,
            Some("tmpfs"),
            NODEV_NOSUID_NOEXEC,
            Some("mode=1777,size=65536k"),
        )?;
        let mqueue = dev.join("mqueue");
        self.mkdir(&mqueue, 0o755)?;
        self.mount(
            "mqueue",
            Some(Path::new("mqueue")),
            &mqueue,
            Some("mqueue"),
            NODEV_NOSUID_NOEXEC,
            None,
        )?;
        for (link, target) in [
            ("ptmx", "pts/ptmx"),
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
            ("core", "/proc/kcore"),
        ] {
            let path = dev.join(link);
            self.syscall
                .symlink(Path::new(target), &path)
                .map_err(|source| RootfsError::Prepare { path, source })?;
        }
        Ok(())
    }

    fn prepare_cgroup(&self, plan: &RootfsPlan<'_>, target: &Path) -> Result<()> {
        let ro = NODEV_NOSUID_NOEXEC | MsFlags::MS_RDONLY;
        match plan.cgroup_version {
            CgroupVersion::V2 => self.mount(
                "cgroup2",
                Some(Path::new("cgroup2")),
                target,
                Some("cgroup2"),
                ro,
                None,
            ),
            CgroupVersion::V1 => {
                let tmpfs = Some(Path::new("tmpfs"));
                self.mount(
                    "tmpfs",
                    tmpfs,
                    target,
                    Some("tmpfs"),
                    NODEV_NOSUID_NOEXEC,
                    Some("mode=755"),
                )?;
                for (name, host_dir) in plan.cgroup_dirs {
                    let dir = target.join(name);
                    self.mkdir(&dir, 0o755)?;
                    self.mount(
                        "cgroup",
                        Some(host_dir),
                        &dir,
                        None,
                        MsFlags::MS_BIND | MsFlags::MS_REC,
                        None,
                    )?;
                }
                // The tmpfs and every hierarchy below it read-only at once; before Linux 5.12,
                // one remount each.
                match self.syscall.make_tree_readonly(target) {
                    Ok(()) => return Ok(()),
                    Err(e) if e.errno == Errno::ENOSYS => {}
                    Err(source) => {
                        return Err(RootfsError::Mount {
                            what: "cgroup (read-only)".into(),
                            target: target.to_path_buf(),
                            source,
                        });
                    }
                }
                let bind_ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | ro;
                for (name, _) in plan.cgroup_dirs {
                    let dir = target.join(name);
                    self.mount("cgroup (read-only)", None, &dir, None, bind_ro, None)?;
                }
                let remount = MsFlags::MS_REMOUNT | ro;
                self.mount(
                    "tmpfs (read-only)",
                    tmpfs,
                    target,
                    Some("tmpfs"),
                    remount,
                    Some("mode=755"),
                )
            }
        }
    }

    fn mount_extra(&self, rootfs: &Path, mount: &Mount) -> Result<()> {
        let target = secure_join(rootfs, &mount.destination);
        match &mount.kind {
            MountKind::Bind { source, readonly } => {
                if std::fs::metadata(source).is_ok_and(|m| !m.is_dir()) {
                    if let Some(parent) = target.parent() {
                        self.mkdir(parent, 0o755)?;
                    }
                    self.syscall
                        .create_file(&target)
                        .map_err(|source| RootfsError::Prepare {
                            path: target.clone(),
                            source,
                        })?;
                } else {
                    self.mkdir(&target, 0o755)?;
                }
                let what = source.display().to_string();
                let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
                self.mount(&what, Some(source), &target, None, bind, None)?;
                if *readonly {
                    let flags = MsFlags::MS_BIND
                        | MsFlags::MS_REMOUNT
                        | MsFlags::MS_RDONLY
                        | kept_mount_flags(source);
                    self.mount(&what, None, &target, None, flags, None)?;
                }
                Ok(())
            }
            MountKind::Tmpfs { size_bytes, mode } => {
                self.mkdir(&target, 0o755)?;
                let mut data = format!("mode={mode:o}");
                if let Some(size) = size_bytes {
                    data.push_str(&format!(",size={size}"));
                }
                let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
                self.mount(
                    "tmpfs",
                    Some(Path::new("tmpfs")),
                    &target,
                    Some("tmpfs"),
                    flags,
                    Some(&data),
                )
            }
        }
    }

    /// Make `rootfs` the root and detach the old one (runc's `pivot_root(".", ".")`, which needs
    /// no directory for the old root).
    pub fn pivot(&self, rootfs: &Path) -> Result<()> {
        let err = |source| RootfsError::Pivot {
            rootfs: rootfs.to_path_buf(),
            source,
        };
        let dot = Path::new(".");
        self.syscall.chdir(rootfs).map_err(err)?;
        self.syscall.pivot_root(dot, dot).map_err(err)?;
        // The old root is now stacked on "."; keep its unmount from propagating, then detach it.
        self.syscall
            .mount(None, dot, None, MsFlags::MS_SLAVE | MsFlags::MS_REC, None)
            .map_err(err)?;
        self.syscall
            .umount2(dot, MntFlags::MNT_DETACH)
            .map_err(err)?;
        self.syscall.chdir(Path::new("/")).map_err(err)
    }

    /// After pivot_root: masked and read-only paths, then the read-only root if asked.
    pub fn harden(&self, plan: &RootfsPlan<'_>) -> Result<()> {
        for path in plan.masked_paths {
            self.mask(path)?;
        }
        for path in plan.readonly_paths {
            self.make_readonly(path)?;
        }
        if plan.readonly {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            self.mount("root (read-only)", None, Path::new("/"), None, flags, None)?;
        }
        Ok(())
    }

    /// Files get /dev/null bound over them; a directory refuses that with ENOTDIR and gets an
    /// empty read-only tmpfs instead; a path that does not exist needs no masking.
    fn mask(&self, path: &Path) -> Result<()> {
        let null = Path::new("/dev/null");
        match self
            .syscall
            .mount(Some(null), path, None, MsFlags::MS_BIND, None)
        {
            Ok(()) => Ok(()),
            Err(e) if e.errno == Errno::ENOENT => Ok(()),
            Err(e) if e.errno == Errno::ENOTDIR => {
                let tmpfs = Some(Path::new("tmpfs"));
                self.mount(
                    "empty tmpfs",
                    tmpfs,
                    path,
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY,
                    Some("size=0"),
                )
            }
            Err(source) => Err(RootfsError::Mount {
                what: "/dev/null".into(),
                target: path.into(),
                source,
            }),
        }
    }

    fn make_readonly(&self, path: &Path) -> Result<()> {
        match self.syscall.mount(
            Some(path),
            path,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        ) {
            Ok(()) => {}
            Err(e) if e.errno == Errno::ENOENT => return Ok(()),
            Err(source) => {
                return Err(RootfsError::Mount {
                    what: "bind".into(),
                    target: path.into(),
                    source,
                });
            }
        }
        let flags =
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | NODEV_NOSUID_NOEXEC;
        self.mount("read-only remount", None, path, None, flags, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::config::{default_masked_paths, default_readonly_paths};
    use crate::syscall::{Call, RecordingSyscall};

    fn mount_targets(calls: &[Call]) -> Vec<(String, Option<String>)> {
        calls
            .iter()
            .filter_map(|c| match c {
                Call::Mount { target, fstype, .. } => {
                    Some((target.display().to_string(), fstype.clone()))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn read_only_binds_keep_the_source_mounts_nosuid_nodev_noexec() {
        // Every mount point of this host, its flags as the mount table states them (the last
        // entry of a path is the mount on top).
        let table = std::fs::read_to_string("/proc/self/mounts").unwrap();
        let mut tops = std::collections::BTreeMap::new();
        for line in table.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if let [_, target, _, options, ..] = fields[..]
                && !target.contains('\\')
            {
                tops.insert(target.to_owned(), options.to_owned());
            }
        }
        let mut checked = 0;
        for (target, options) in &tops {
            let mut expected = MsFlags::empty();
            for (option, flag) in [
                ("nosuid", MsFlags::MS_NOSUID),
                ("nodev", MsFlags::MS_NODEV),
                ("noexec", MsFlags::MS_NOEXEC),
            ] {
                if options.split(',').any(|o| o == option) {
                    expected |= flag;
                }
            }
            assert_eq!(
                kept_mount_flags(Path::new(target)),
                expected,
                "{target}: {options}"
            );
            checked += 1;
        }
        assert!(checked > 0, "no mount point to check in {table}");
        assert_eq!(
            kept_mount_flags(Path::new("/no/such/source")),
            MsFlags::empty()
        );
    }

    #[test]
    fn overlay_lists_layers_top_first_and_shortens_long_data() {
        let layers: Vec<PathBuf> = vec!["/l/a".into(), "/l/b".into(), "/l/c".into()];
        let (chdir, data) = overlay_data(&layers, Path::new("/c/upper"), Path::new("/c/work"));
        assert_eq!(chdir, None);
        assert_eq!(
            data,
            "lowerdir=/l/c:/l/b:/l/a,upperdir=/c/upper,workdir=/c/work,volatile"
        );

        let many: Vec<PathBuf> = (0..50)
            .map(|i| PathBuf::from(format!("/var/lib/berth/images/layers/sha256/{i:064}")))
            .collect();
        let (chdir, data) = overlay_data(&many, Path::new("/u"), Path::new("/w"));
        assert_eq!(
            chdir,
            Some(PathBuf::from("/var/lib/berth/images/layers/sha256"))
        );
        assert!(data.len() <= MOUNT_DATA_MAX, "{}", data.len());
        assert!(data.starts_with(&format!("lowerdir={:064}:", 49)));
    }

    #[test]
    fn prepare_mounts_in_order_inside_the_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        // A hostile image: /data points at the host's /etc.
        std::os::unix::fs::symlink("/etc", rootfs.join("data")).unwrap();
        let layers = vec![dir.path().join("layer")];
        let mounts = vec![
            Mount {
                destination: "/data/x".into(),
                kind: MountKind::Bind {
                    source: dir.path().into(),
                    readonly: true,
                },
            },
            Mount {
                destination: "/scratch".into(),
                kind: MountKind::Tmpfs {
                    size_bytes: Some(1024),
                    mode: 0o755,
                },
            },
        ];
        let cgroup_dirs = vec![(
            "memory".to_string(),
            PathBuf::from("/sys/fs/cgroup/memory/berth/c"),
        )];
        let plan = RootfsPlan {
            rootfs: &rootfs,
            layers: &layers,
            upper: Path::new("/c/upper"),
            work: Path::new("/c/work"),
            readonly: true,
            mounts: &mounts,
            cgroup_version: CgroupVersion::V1,
            cgroup_dirs: &cgroup_dirs,
            masked_paths: &[],
            readonly_paths: &[],
        };
        let syscall = RecordingSyscall::new();
        Rootfs::new(&syscall).prepare(&plan).unwrap();
        let calls = syscall.calls();
        let r = rootfs.display();
        let expected: Vec<(String, Option<String>)> = [
            ("/".to_string(), None),
            (format!("{r}"), Some("overlay")),
            (format!("{r}/proc"), Some("proc")),
            (format!("{r}/dev"), Some("tmpfs")),
            (format!("{r}/dev/pts"), Some("devpts")),
            (format!("{r}/dev/shm"), Some("tmpfs")),
            (format!("{r}/dev/mqueue"), Some("mqueue")),
            (format!("{r}/sys"), Some("sysfs")),
            (format!("{r}/sys/fs/cgroup"), Some("tmpfs")),
            (format!("{r}/sys/fs/cgroup/memory"), None),
            (format!("{r}/etc/x"), None),
            (format!("{r}/etc/x"), None),
            (format!("{r}/scratch"), Some("tmpfs")),
        ]
        .into_iter()
        .map(|(t, f)| (t, f.map(str::to_string)))
        .collect();
        assert_eq!(mount_targets(&calls), expected);
        // The cgroup tree is made read-only in one call, after its binds.
        let cgroup_tree = rootfs.join("sys/fs/cgroup");
        let readonly_at = calls
            .iter()
            .position(|c| matches!(c, Call::ReadonlyTree(p) if *p == cgroup_tree))
            .expect("cgroup tree made read-only");
        let bound_at = calls
            .iter()
            .position(|c| c.target() == Some(&cgroup_tree.join("memory")))
            .unwrap();
        assert!(bound_at < readonly_at);

        // Before Linux 5.12 (no mount_setattr), one read-only remount each.
        let old_kernel = RecordingSyscall::new();
        old_kernel.fail("mount_setattr", &cgroup_tree, Errno::ENOSYS);
        Rootfs::new(&old_kernel).prepare(&plan).unwrap();
        let remounts: Vec<String> = old_kernel
            .calls()
            .iter()
            .filter_map(|c| match c {
                Call::Mount { target, flags, .. }
                    if flags.contains(MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY) =>
                {
                    Some(target.display().to_string())
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            remounts[..2],
            [
                format!("{r}/sys/fs/cgroup/memory"),
                format!("{r}/sys/fs/cgroup")
            ]
        );

        // The propagation change comes first and is recursive and slave.
        assert!(
            matches!(&calls[0], Call::Mount { flags, .. } if *flags == MsFlags::MS_REC | MsFlags::MS_SLAVE)
        );
        // Six device nodes, world read-write.
        let nodes: Vec<_> = calls
            .iter()
            .filter(|c| matches!(c, Call::Mknod { .. }))
            .collect();
        assert_eq!(nodes.len(), 6);
        assert!(
            nodes
                .iter()
                .all(|c| matches!(c, Call::Mknod { perm, .. } if perm.bits() == 0o666))
        );
        // /sys is read-only, the bind mount is remounted read-only.
        assert!(
            calls
                .iter()
                .any(|c| matches!(c, Call::Mount { fstype: Some(t), flags, .. }
            if t == "sysfs" && flags.contains(MsFlags::MS_RDONLY)))
        );
        assert!(calls.iter().any(|c| matches!(c, Call::Mount { target, flags, .. }
            if target.ends_with("etc/x") && flags.contains(MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY))));
        assert!(calls.contains(&Call::Symlink {
            target: "pts/ptmx".into(),
            link: rootfs.join("dev/ptmx")
        }));
    }

    #[test]
    fn masked_paths_bind_null_on_files_tmpfs_on_dirs_and_skip_missing() {
        let syscall = RecordingSyscall::new();
        syscall.fail("mount", "/proc/acpi", Errno::ENOTDIR);
        syscall.fail("mount", "/proc/timer_stats", Errno::ENOENT);
        syscall.fail("mount", "/proc/fs", Errno::ENOENT);
        let masked = default_masked_paths();
        let readonly = default_readonly_paths();
        let plan = RootfsPlan {
            rootfs: Path::new("/unused"),
            layers: &[],
            upper: Path::new("/u"),
            work: Path::new("/w"),
            readonly: false,
            mounts: &[],
            cgroup_version: CgroupVersion::V2,
            cgroup_dirs: &[],
            masked_paths: &masked,
            readonly_paths: &readonly,
        };
        Rootfs::new(&syscall).harden(&plan).unwrap();
        let calls = syscall.calls();
        let mounts_at = |p: &str| -> Vec<&Call> {
            calls
                .iter()
                .filter(|c| c.target() == Some(Path::new(p)))
                .collect()
        };
        assert!(
            matches!(mounts_at("/proc/kcore")[..], [Call::Mount { source: Some(s), flags, .. }]
            if s == Path::new("/dev/null") && *flags == MsFlags::MS_BIND)
        );
        assert!(
            matches!(mounts_at("/proc/acpi")[..], [_, Call::Mount { fstype: Some(t), flags, .. }]
            if t == "tmpfs" && flags.contains(MsFlags::MS_RDONLY))
        );
        assert_eq!(mounts_at("/proc/timer_stats").len(), 1);
        assert!(
            matches!(mounts_at("/proc/sys")[..], [Call::Mount { flags: bind, .. }, Call::Mount { flags: remount, .. }]
            if bind.contains(MsFlags::MS_BIND) && remount.contains(MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY))
        );
        assert_eq!(
            mounts_at("/proc/fs").len(),
            1,
            "missing read-only path is skipped"
        );
        assert!(mounts_at("/").is_empty(), "root stays writable");
    }

    #[test]
    fn mask_failure_other_than_missing_is_an_error() {
        let syscall = RecordingSyscall::new();
        syscall.fail("mount", "/proc/kcore", Errno::EPERM);
        let masked = vec![PathBuf::from("/proc/kcore")];
        let plan = RootfsPlan {
            rootfs: Path::new("/"),
            layers: &[],
            upper: Path::new("/u"),
            work: Path::new("/w"),
            readonly: false,
            mounts: &[],
            cgroup_version: CgroupVersion::V2,
            cgroup_dirs: &[],
            masked_paths: &masked,
            readonly_paths: &[],
        };
        let err = Rootfs::new(&syscall).harden(&plan).unwrap_err();
        assert!(err.to_string().contains("/proc/kcore"), "{err}");
    }

    #[test]
    fn pivot_uses_dot_dot_and_detaches_the_old_root() {
        let syscall = RecordingSyscall::new();
        Rootfs::new(&syscall).pivot(Path::new("/c/rootfs")).unwrap();
        let calls = syscall.calls();
        assert_eq!(calls[0], Call::Chdir("/c/rootfs".into()));
        assert_eq!(
            calls[1],
            Call::PivotRoot {
                new_root: ".".into(),
                put_old: ".".into()
            }
        );
        assert_eq!(
            calls[3],
            Call::Umount2 {
                target: ".".into(),
                flags: MntFlags::MNT_DETACH
            }
        );
        assert_eq!(calls[4], Call::Chdir("/".into()));
    }
}
