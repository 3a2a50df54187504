//! Forking a child straight into a cgroup v2 directory.
//!
//! A process that moves itself into a cgroup by writing to `cgroup.procs` makes the kernel
//! take its global threadgroup lock for writing, which first waits for an RCU grace period:
//! 8–16 ms measured on a 2-core VM, more than the rest of a container start. On v1 berth
//! avoids the lock by moving the single thread through `tasks`; v2 has no such file for
//! domain cgroups, but `clone3(CLONE_INTO_CGROUP)` creates the child in the cgroup already,
//! as crun does. A container's create-to-started on v2 went from 25 ms to 5–6 ms this way
//! (one start every 300 ms; back to back, when the lock's grace period is still fresh,
//! from 6–7 ms to 3–5 ms).

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::{ForkResult, Pid};

/// `CLONE_INTO_CGROUP` (Linux 5.7). libc's constant is an overflowing `c_int`.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Open a cgroup v2 directory for [`fork_into_cgroup`].
pub(crate) fn open_cgroup(dir: &Path) -> Result<OwnedFd, Errno> {
    nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// `fork(2)`; with `cgroup` (a cgroup v2 directory), `clone3(CLONE_INTO_CGROUP)` so the child
/// starts in that cgroup. Returns whether it did: `false` when no cgroup was asked for or the
/// kernel refused the clone3 (older than 5.7, a seccomp profile that hides clone3, a cgroup
/// that cannot take processes), in which case a plain fork was made and the child must join
/// the cgroup itself (and meets the real error there, if any).
///
/// # Safety
/// As `fork(2)`: the caller must be single-threaded if the child is to run anything but
/// async-signal-safe code. The child returns into the caller's frames, as with fork; unlike
/// glibc's `fork`, clone3 runs no `pthread_atfork` handlers, which a single-threaded caller
/// (holding no lock) does not need.
pub(crate) unsafe fn fork_into_cgroup(
    cgroup: Option<BorrowedFd<'_>>,
) -> Result<(ForkResult, bool), Errno> {
    if let Some(cgroup) = cgroup {
        let args = libc::clone_args {
            flags: CLONE_INTO_CGROUP,
            pidfd: 0,
            child_tid: 0,
            parent_tid: 0,
            exit_signal: libc::SIGCHLD as u64,
            stack: 0,
            stack_size: 0,
            tls: 0,
            set_tid: 0,
            set_tid_size: 0,
            cgroup: cgroup.as_raw_fd() as u64,
        };
        // SAFETY: clone3 without CLONE_VM and without a stack duplicates the process like
        // fork: the child continues on its own copy of this stack, returning 0 here. `args`
        // lives across the call and its size is passed with it.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const libc::clone_args,
                std::mem::size_of::<libc::clone_args>(),
            )
        };
        match rc {
            0 => return Ok((ForkResult::Child, true)),
            pid if pid > 0 => {
                return Ok((
                    ForkResult::Parent {
                        child: Pid::from_raw(pid as i32),
                    },
                    true,
                ));
            }
            _ => {
                tracing::debug!(error = %Errno::last(), "clone3 into the cgroup refused; forking");
            }
        }
    }
    // SAFETY: the caller upholds fork's contract (see above).
    unsafe { nix::unistd::fork() }.map(|result| (result, false))
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn without_a_cgroup_it_is_a_plain_fork() {
        // SAFETY: the child only calls _exit.
        let (result, placed) = unsafe { fork_into_cgroup(None) }.unwrap();
        let ForkResult::Parent { child } = result else {
            // SAFETY: _exit ends the child without running the test harness's code.
            unsafe { libc::_exit(0) }
        };
        assert!(!placed);
        let status = nix::sys::wait::waitpid(child, None).unwrap();
        assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
    }

    /// Needs root and a cgroup2 mount (a hybrid host's `/sys/fs/cgroup/unified` will do);
    /// skips itself otherwise.
    #[test]
    fn the_child_is_born_in_the_cgroup() {
        let Some(mount) = crate::testing::cgroup2_mount() else {
            eprintln!("skipped: no cgroup2 mount");
            return;
        };
        let name = format!("berth-fork-test-{}", std::process::id());
        let dir = mount.join(&name);
        if std::fs::create_dir(&dir).is_err() {
            eprintln!("skipped: cannot make a cgroup (not root?)");
            return;
        }
        let cgroup = open_cgroup(&dir).unwrap();
        // Made before the fork: the test harness is multi-threaded, so the child may not
        // allocate.
        let want = format!("0::/{name}\n").into_bytes();
        let mut buf = [0u8; 4096];
        // SAFETY: the child only makes async-signal-safe calls (open, read, _exit) and
        // compares bytes; it never returns into the harness.
        let (result, placed) = unsafe { fork_into_cgroup(Some(cgroup.as_fd())) }.unwrap();
        let ForkResult::Parent { child } = result else {
            // SAFETY: open/read/_exit are async-signal-safe; the path is a C string literal
            // and `buf` is this child's own copy.
            let ok = unsafe {
                let fd = libc::open(c"/proc/self/cgroup".as_ptr(), libc::O_RDONLY);
                let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
                n > 0 && buf[..n as usize].windows(want.len()).any(|w| w == want)
            };
            // SAFETY: as above.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        };
        let status = nix::sys::wait::waitpid(child, None).unwrap();
        let _ = std::fs::remove_dir(&dir);
        assert!(placed, "clone3 into {} refused", dir.display());
        assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
    }

    #[test]
    fn a_descriptor_that_is_no_cgroup_falls_back_to_fork() {
        let file = std::fs::File::open("/dev/null").unwrap();
        let fd = std::os::fd::AsFd::as_fd(&file);
        // SAFETY: the child only calls _exit.
        let (result, placed) = unsafe { fork_into_cgroup(Some(fd)) }.unwrap();
        let ForkResult::Parent { child } = result else {
            // SAFETY: as above.
            unsafe { libc::_exit(0) }
        };
        assert!(!placed);
        let status = nix::sys::wait::waitpid(child, None).unwrap();
        assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
    }
}
