//! Every kernel call the container init and the runtime make, behind the [`Syscall`] trait.
//!
//! [`LinuxSyscall`] calls the kernel through nix; [`RecordingSyscall`] (feature `testing`) records
//! each call so the mount sequence, capability handling and signalling can be tested without
//! root. Callers receive the implementation explicitly (`Rootfs::new(&syscall)`); nothing
//! switches on `cfg!(test)`.

mod linux;
#[cfg(any(test, feature = "testing"))]
mod recording;

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use caps::{CapSet, Capability, CapsHashSet};
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Pid, Uid};

pub use linux::LinuxSyscall;
#[cfg(any(test, feature = "testing"))]
pub use recording::{Call, RecordingSyscall};

pub type Result<T, E = SyscallError> = std::result::Result<T, E>;

/// A failed kernel call: which call, on what, and the errno.
#[derive(Debug, thiserror::Error)]
#[error("{call} {target}")]
pub struct SyscallError {
    /// The call, e.g. `mount`, `pivot_root`.
    pub call: &'static str,
    /// What it acted on (a path, a pid, a capability), for the message.
    pub target: String,
    #[source]
    pub errno: Errno,
}

impl SyscallError {
    pub fn new(call: &'static str, target: impl std::fmt::Display, errno: Errno) -> Self {
        Self {
            call,
            target: target.to_string(),
            errno,
        }
    }

    pub fn path(call: &'static str, path: &Path, errno: Errno) -> Self {
        Self::new(call, path.display(), errno)
    }
}

/// A resource limit (`setrlimit`) by its kernel number (`RLIMIT_NOFILE` …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RlimitValue {
    pub resource: nix::sys::resource::Resource,
    pub soft: u64,
    pub hard: u64,
}

/// The kernel operations berth needs, one method per call so a fake can record them.
pub trait Syscall: Send + Sync + std::fmt::Debug {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()>;
    /// Make the mount at `target` and every mount below it read-only, nosuid, nodev and
    /// noexec in one call (`mount_setattr(2)` with `AT_RECURSIVE`, Linux 5.12). ENOSYS on
    /// older kernels: the caller remounts one by one.
    fn make_tree_readonly(&self, target: &Path) -> Result<()>;
    fn umount2(&self, target: &Path, flags: MntFlags) -> Result<()>;
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<()>;
    fn chdir(&self, path: &Path) -> Result<()>;
    /// `mkdir -p` with `mode` for the directories it creates.
    fn mkdir_all(&self, path: &Path, mode: u32) -> Result<()>;
    /// Create an empty regular file if nothing exists at `path` (a bind-mount target).
    fn create_file(&self, path: &Path) -> Result<()>;
    fn mknod(&self, path: &Path, kind: SFlag, perm: Mode, dev: u64) -> Result<()>;
    fn symlink(&self, target: &Path, link: &Path) -> Result<()>;
    fn sethostname(&self, name: &str) -> Result<()>;
    fn unshare(&self, flags: CloneFlags) -> Result<()>;
    fn setns(&self, fd: BorrowedFd<'_>, flags: CloneFlags) -> Result<()>;
    /// Bring the loopback interface of the current network namespace up.
    fn set_loopback_up(&self) -> Result<()>;
    /// setgroups, setresgid, setresuid, in that order.
    fn set_ids(&self, uid: Uid, gid: Gid, groups: &[Gid]) -> Result<()>;
    /// PR_SET_KEEPCAPS, so permitted capabilities survive the switch away from uid 0.
    fn set_keep_caps(&self, keep: bool) -> Result<()>;
    /// Remove `cap` from the bounding set.
    fn drop_bounding(&self, cap: Capability) -> Result<()>;
    /// Replace one capability set (permitted, effective, inheritable, ambient).
    fn set_capabilities(&self, set: CapSet, caps: &CapsHashSet) -> Result<()>;
    fn set_no_new_privs(&self) -> Result<()>;
    /// Install a seccomp filter (classic BPF) for this thread and its descendants.
    fn set_seccomp(&self, filter: &[libc::sock_filter]) -> Result<()>;
    fn setrlimit(&self, limit: RlimitValue) -> Result<()>;
    /// A pidfd for `pid` (pidfd_open).
    fn pidfd_open(&self, pid: Pid) -> Result<OwnedFd>;
    /// Send `signal` through a pidfd, immune to pid reuse.
    fn pidfd_send_signal(&self, pidfd: BorrowedFd<'_>, signal: Signal) -> Result<()>;
}

/// Join `path` below `root` the way the kernel would resolve it after `chroot(root)`: symlinks
/// are followed but `..` and absolute link targets never leave `root` (filepath-securejoin's
/// rule). Components that do not exist are appended as they are.
pub fn secure_join(root: &Path, path: &Path) -> PathBuf {
    use std::path::Component;
    let mut resolved = PathBuf::new(); // relative to root
    let mut pending: Vec<std::ffi::OsString> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        match std::fs::symlink_metadata(root.join(&candidate)) {
            Ok(meta) if meta.file_type().is_symlink() && links < 255 => {
                links += 1;
                let Ok(target) = std::fs::read_link(root.join(&candidate)) else {
                    resolved = candidate;
                    continue;
                };
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => pending.push(n.to_os_string()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => resolved = candidate,
        }
    }
    root.join(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_join_keeps_symlinks_inside_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../..", root.join("usr/up")).unwrap();
        std::os::unix::fs::symlink("lib", root.join("usr/rel")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();

        assert_eq!(
            secure_join(root, Path::new("/abs/passwd")),
            root.join("etc/passwd")
        );
        assert_eq!(
            secure_join(root, Path::new("/usr/up/etc")),
            root.join("etc")
        );
        assert_eq!(secure_join(root, Path::new("/../../x")), root.join("x"));
        assert_eq!(
            secure_join(root, Path::new("usr/rel/x")),
            root.join("usr/lib/x")
        );
        assert_eq!(
            secure_join(root, Path::new("/missing/a")),
            root.join("missing/a")
        );
        // A symlink loop ends after the hop limit instead of spinning.
        assert!(secure_join(root, Path::new("/loop")).starts_with(root));
    }
}
