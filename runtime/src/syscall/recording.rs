//! [`RecordingSyscall`]: a [`Syscall`] that records every call instead of making it, and fails
//! the calls a test tells it to fail.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use caps::{CapSet, Capability, CapsHashSet};
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Pid, Uid};

use super::{Result, RlimitValue, Syscall, SyscallError};

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Mount {
        source: Option<PathBuf>,
        target: PathBuf,
        fstype: Option<String>,
        flags: MsFlags,
        data: Option<String>,
    },
    Umount2 {
        target: PathBuf,
        flags: MntFlags,
    },
    ReadonlyTree(PathBuf),
    PivotRoot {
        new_root: PathBuf,
        put_old: PathBuf,
    },
    Chdir(PathBuf),
    MkdirAll {
        path: PathBuf,
        mode: u32,
    },
    CreateFile(PathBuf),
    Mknod {
        path: PathBuf,
        kind: SFlag,
        perm: Mode,
        dev: u64,
    },
    Symlink {
        target: PathBuf,
        link: PathBuf,
    },
    Sethostname(String),
    Unshare(CloneFlags),
    Setns {
        fd: i32,
        flags: CloneFlags,
    },
    LoopbackUp,
    SetIds {
        uid: Uid,
        gid: Gid,
        groups: Vec<Gid>,
    },
    KeepCaps(bool),
    DropBounding(Capability),
    /// `set` is "bounding", "permitted", "effective", "inheritable" or "ambient".
    SetCapabilities {
        set: &'static str,
        caps: Vec<Capability>,
    },
    NoNewPrivs,
    /// A seccomp filter of this many instructions.
    Seccomp(usize),
    Setrlimit(RlimitValue),
    PidfdOpen(Pid),
    PidfdSendSignal(Signal),
}

impl Call {
    /// The target path of a mount-like call, for terse assertions.
    pub fn target(&self) -> Option<&Path> {
        match self {
            Call::Mount { target, .. } | Call::Umount2 { target, .. } => Some(target),
            Call::MkdirAll { path, .. } | Call::Mknod { path, .. } | Call::CreateFile(path) => {
                Some(path)
            }
            Call::Symlink { link, .. } => Some(link),
            Call::Chdir(p) => Some(p),
            _ => None,
        }
    }
}

/// Records calls; fails those matching a registered `(call name, target)` with an errno.
#[derive(Debug, Default)]
pub struct RecordingSyscall {
    calls: Mutex<Vec<Call>>,
    failures: Mutex<Vec<(&'static str, PathBuf, Errno)>>,
}

impl RecordingSyscall {
    pub fn new() -> Self {
        Self::default()
    }

    /// Make the next `call` (e.g. "mount") whose target is `target` fail with `errno` (once).
    pub fn fail(&self, call: &'static str, target: impl Into<PathBuf>, errno: Errno) {
        self.failures
            .lock()
            .unwrap()
            .push((call, target.into(), errno));
    }

    /// The calls made so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn record(&self, name: &'static str, target: &Path, call: Call) -> Result<()> {
        self.calls.lock().unwrap().push(call);
        let mut failures = self.failures.lock().unwrap();
        match failures
            .iter()
            .position(|(c, t, _)| *c == name && t == target)
        {
            Some(i) => Err(SyscallError::path(name, target, failures.remove(i).2)),
            None => Ok(()),
        }
    }
}

impl Syscall for RecordingSyscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()> {
        let call = Call::Mount {
            source: source.map(Path::to_path_buf),
            target: target.to_path_buf(),
            fstype: fstype.map(str::to_string),
            flags,
            data: data.map(str::to_string),
        };
        self.record("mount", target, call)
    }

    fn make_tree_readonly(&self, target: &Path) -> Result<()> {
        self.record(
            "mount_setattr",
            target,
            Call::ReadonlyTree(target.to_path_buf()),
        )
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> Result<()> {
        self.record(
            "umount2",
            target,
            Call::Umount2 {
                target: target.to_path_buf(),
                flags,
            },
        )
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<()> {
        let call = Call::PivotRoot {
            new_root: new_root.into(),
            put_old: put_old.into(),
        };
        self.record("pivot_root", new_root, call)
    }

    fn chdir(&self, path: &Path) -> Result<()> {
        self.record("chdir", path, Call::Chdir(path.into()))
    }

    fn mkdir_all(&self, path: &Path, mode: u32) -> Result<()> {
        self.record(
            "mkdir",
            path,
            Call::MkdirAll {
                path: path.into(),
                mode,
            },
        )
    }

    fn create_file(&self, path: &Path) -> Result<()> {
        self.record("create", path, Call::CreateFile(path.into()))
    }

    fn mknod(&self, path: &Path, kind: SFlag, perm: Mode, dev: u64) -> Result<()> {
        self.record(
            "mknod",
            path,
            Call::Mknod {
                path: path.into(),
                kind,
                perm,
                dev,
            },
        )
    }

    fn symlink(&self, target: &Path, link: &Path) -> Result<()> {
        self.record(
            "symlink",
            link,
            Call::Symlink {
                target: target.into(),
                link: link.into(),
            },
        )
    }

    fn sethostname(&self, name: &str) -> Result<()> {
        self.record(
            "sethostname",
            Path::new(name),
            Call::Sethostname(name.into()),
        )
    }

    fn unshare(&self, flags: CloneFlags) -> Result<()> {
        self.record("unshare", Path::new(""), Call::Unshare(flags))
    }

    fn setns(&self, fd: BorrowedFd<'_>, flags: CloneFlags) -> Result<()> {
        self.record(
            "setns",
            Path::new(""),
            Call::Setns {
                fd: fd.as_raw_fd(),
                flags,
            },
        )
    }

    fn set_loopback_up(&self) -> Result<()> {
        self.record("loopback", Path::new("lo"), Call::LoopbackUp)
    }

    fn set_ids(&self, uid: Uid, gid: Gid, groups: &[Gid]) -> Result<()> {
        self.record(
            "set_ids",
            Path::new(""),
            Call::SetIds {
                uid,
                gid,
                groups: groups.to_vec(),
            },
        )
    }

    fn set_keep_caps(&self, keep: bool) -> Result<()> {
        self.record("keepcaps", Path::new(""), Call::KeepCaps(keep))
    }

    fn drop_bounding(&self, cap: Capability) -> Result<()> {
        self.record("drop_bounding", Path::new(""), Call::DropBounding(cap))
    }

    fn set_capabilities(&self, set: CapSet, caps: &CapsHashSet) -> Result<()> {
        let mut caps: Vec<Capability> = caps.iter().copied().collect();
        caps.sort_by_key(|c| c.index());
        let set = match set {
            CapSet::Ambient => "ambient",
            CapSet::Bounding => "bounding",
            CapSet::Effective => "effective",
            CapSet::Inheritable => "inheritable",
            CapSet::Permitted => "permitted",
        };
        self.record("capset", Path::new(""), Call::SetCapabilities { set, caps })
    }

    fn set_no_new_privs(&self) -> Result<()> {
        self.record("no_new_privs", Path::new(""), Call::NoNewPrivs)
    }

    fn set_seccomp(&self, filter: &[libc::sock_filter]) -> Result<()> {
        self.record("seccomp", Path::new(""), Call::Seccomp(filter.len()))
    }

    fn setrlimit(&self, limit: RlimitValue) -> Result<()> {
        self.record("setrlimit", Path::new(""), Call::Setrlimit(limit))
    }

    fn pidfd_open(&self, pid: Pid) -> Result<OwnedFd> {
        self.record("pidfd_open", Path::new(""), Call::PidfdOpen(pid))?;
        // A real, harmless fd stands in for the pidfd.
        std::fs::File::open("/dev/null")
            .map(OwnedFd::from)
            .map_err(|_| SyscallError::new("pidfd_open", pid, Errno::EBADF))
    }

    fn pidfd_send_signal(&self, _pidfd: BorrowedFd<'_>, signal: Signal) -> Result<()> {
        self.record(
            "pidfd_send_signal",
            Path::new(""),
            Call::PidfdSendSignal(signal),
        )
    }
}
