//! The real [`Syscall`] implementation: nix, libc and the `caps` crate.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use caps::{CapSet, Capability, CapsHashSet};
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{Gid, Pid, Uid};

use super::{Result, RlimitValue, Syscall, SyscallError};

/// Calls the kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxSyscall;

fn caps_errno(err: &caps::errors::CapsError) -> Errno {
    // The caps crate keeps only a message; the usual cause of a failure is missing privilege.
    let _ = err;
    match Errno::last() {
        Errno::UnknownErrno => Errno::EPERM,
        errno => errno,
    }
}

impl Syscall for LinuxSyscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<()> {
        nix::mount::mount(source, target, fstype, flags, data)
            .map_err(|e| SyscallError::path("mount", target, e))
    }

    fn make_tree_readonly(&self, target: &Path) -> Result<()> {
        /// `struct mount_attr`, version 0.
        #[repr(C)]
        struct MountAttr {
            attr_set: u64,
            attr_clr: u64,
            propagation: u64,
            userns_fd: u64,
        }
        const AT_RECURSIVE: libc::c_uint = 0x8000;
        const MOUNT_ATTR_RDONLY: u64 = 0x1;
        const MOUNT_ATTR_NOSUID: u64 = 0x2;
        const MOUNT_ATTR_NODEV: u64 = 0x4;
        const MOUNT_ATTR_NOEXEC: u64 = 0x8;
        let path = std::ffi::CString::new(target.as_os_str().as_bytes())
            .map_err(|_| SyscallError::path("mount_setattr", target, Errno::EINVAL))?;
        let attr = MountAttr {
            attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        // SAFETY: a NUL-terminated path and a mount_attr of the size passed, both alive for the
        // call; the kernel only reads them.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                libc::AT_FDCWD,
                path.as_ptr(),
                AT_RECURSIVE,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        };
        Errno::result(rc)
            .map(drop)
            .map_err(|e| SyscallError::path("mount_setattr", target, e))
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> Result<()> {
        nix::mount::umount2(target, flags).map_err(|e| SyscallError::path("umount2", target, e))
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> Result<()> {
        nix::unistd::pivot_root(new_root, put_old)
            .map_err(|e| SyscallError::path("pivot_root", new_root, e))
    }

    fn chdir(&self, path: &Path) -> Result<()> {
        nix::unistd::chdir(path).map_err(|e| SyscallError::path("chdir", path, e))
    }

    fn mkdir_all(&self, path: &Path, mode: u32) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(path)
            .map_err(|e| {
                SyscallError::path(
                    "mkdir",
                    path,
                    Errno::from_raw(e.raw_os_error().unwrap_or(0)),
                )
            })
    }

    fn create_file(&self, path: &Path) -> Result<()> {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(SyscallError::path(
                "create",
                path,
                Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            )),
        }
    }

    fn mknod(&self, path: &Path, kind: SFlag, perm: Mode, dev: u64) -> Result<()> {
        nix::sys::stat::mknod(path, kind, perm, dev)
            .map_err(|e| SyscallError::path("mknod", path, e))?;
        // mknod applies the umask; the nodes must be exactly `perm`.
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            path,
            perm,
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| SyscallError::path("chmod", path, e))
    }

    fn symlink(&self, target: &Path, link: &Path) -> Result<()> {
        std::os::unix::fs::symlink(target, link).map_err(|e| {
            SyscallError::path(
                "symlink",
                link,
                Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            )
        })
    }

    fn sethostname(&self, name: &str) -> Result<()> {
        nix::unistd::sethostname(name).map_err(|e| SyscallError::new("sethostname", name, e))
    }

    fn unshare(&self, flags: CloneFlags) -> Result<()> {
        nix::sched::unshare(flags)
            .map_err(|e| SyscallError::new("unshare", format!("{flags:?}"), e))
    }

    fn setns(&self, fd: BorrowedFd<'_>, flags: CloneFlags) -> Result<()> {
        nix::sched::setns(fd, flags)
            .map_err(|e| SyscallError::new("setns", format!("{flags:?}"), e))
    }

    fn set_loopback_up(&self) -> Result<()> {
        // SAFETY: socket(2) with constant arguments returns a new fd or -1.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        let fd = Errno::result(fd).map_err(|e| SyscallError::new("socket", "lo", e))?;
        // SAFETY: the fd was just returned by the kernel and is owned by nobody else.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: ifreq is plain old data; all-zero is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        // SAFETY: `req` is a valid ifreq naming "lo"; SIOCGIFFLAGS fills ifru_flags.
        let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
        Errno::result(rc).map_err(|e| SyscallError::new("ioctl(SIOCGIFFLAGS)", "lo", e))?;
        // SAFETY: the union's flags member was just written by the kernel.
        unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
        // SAFETY: `req` is a valid ifreq; SIOCSIFFLAGS only reads it.
        let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) };
        Errno::result(rc)
            .map(drop)
            .map_err(|e| SyscallError::new("ioctl(SIOCSIFFLAGS)", "lo", e))
    }

    fn set_ids(&self, uid: Uid, gid: Gid, groups: &[Gid]) -> Result<()> {
        nix::unistd::setgroups(groups).map_err(|e| SyscallError::new("setgroups", gid, e))?;
        nix::unistd::setresgid(gid, gid, gid)
            .map_err(|e| SyscallError::new("setresgid", gid, e))?;
        nix::unistd::setresuid(uid, uid, uid).map_err(|e| SyscallError::new("setresuid", uid, e))
    }

    fn set_keep_caps(&self, keep: bool) -> Result<()> {
        nix::sys::prctl::set_keepcaps(keep)
            .map_err(|e| SyscallError::new("prctl", "PR_SET_KEEPCAPS", e))
    }

    fn drop_bounding(&self, cap: Capability) -> Result<()> {
        caps::drop(None, CapSet::Bounding, cap)
            .map_err(|e| SyscallError::new("capset(bounding)", cap, caps_errno(&e)))
    }

    fn set_capabilities(&self, set: CapSet, caps: &CapsHashSet) -> Result<()> {
        // An empty ambient set is one PR_CAP_AMBIENT_CLEAR_ALL, not a lower per capability.
        let result = if matches!(set, CapSet::Ambient) && caps.is_empty() {
            caps::clear(None, set)
        } else {
            caps::set(None, set, caps)
        };
        result.map_err(|e| SyscallError::new("capset", format!("{set:?}"), caps_errno(&e)))
    }

    fn set_no_new_privs(&self) -> Result<()> {
        nix::sys::prctl::set_no_new_privs()
            .map_err(|e| SyscallError::new("prctl", "PR_SET_NO_NEW_PRIVS", e))
    }

    fn set_seccomp(&self, filter: &[libc::sock_filter]) -> Result<()> {
        let program = libc::sock_fprog {
            len: filter.len() as libc::c_ushort,
            filter: filter.as_ptr().cast_mut(),
        };
        // SAFETY: `program` points at `filter`, which outlives the call; the kernel copies it.
        let rc = unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                &program as *const libc::sock_fprog,
            )
        };
        Errno::result(rc)
            .map(drop)
            .map_err(|e| SyscallError::new("prctl", "PR_SET_SECCOMP", e))
    }

    fn setrlimit(&self, limit: RlimitValue) -> Result<()> {
        nix::sys::resource::setrlimit(limit.resource, limit.soft, limit.hard)
            .map_err(|e| SyscallError::new("setrlimit", format!("{:?}", limit.resource), e))
    }

    fn pidfd_open(&self, pid: Pid) -> Result<OwnedFd> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
        let fd = Errno::result(fd).map_err(|e| SyscallError::new("pidfd_open", pid, e))?;
        // SAFETY: the kernel just returned this fd to us; nobody else owns it. pidfds are
        // always close-on-exec.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }

    fn pidfd_send_signal(&self, pidfd: BorrowedFd<'_>, signal: Signal) -> Result<()> {
        // SAFETY: the fd is a valid pidfd borrowed for the call; no siginfo is passed.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd.as_raw_fd(),
                signal as libc::c_int,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        Errno::result(rc)
            .map(drop)
            .map_err(|e| SyscallError::new("pidfd_send_signal", signal, e))
    }
}
