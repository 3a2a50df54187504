//! Foreground containers (`berth run` without `-d`): the caller waits for its shim child and
//! proxies its own termination signals to the container, as docker's sig-proxy does.
//!
//! Install the [`SignalProxy`] before `create` so that a Ctrl-C during setup is queued and
//! delivered to the container instead of killing the caller half way.

use std::os::fd::AsFd;
use std::os::unix::process::ExitStatusExt;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::{ContainerId, LinuxRuntime, Result, RuntimeError, ShimProcess};
use crate::shim::{ShimReports, SyncMessage};
use crate::syscall::SyscallError;

const PROXIED: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Blocks the proxied signals of this (single-threaded) process and receives them on a
/// signalfd. The shim gets a clean signal mask: `std::process::Command` resets a spawned one's,
/// a forked one resets its own.
#[derive(Debug)]
pub struct SignalProxy {
    fd: SignalFd,
    previous: SigSet,
}

impl SignalProxy {
    pub fn install() -> Result<Self> {
        let kernel = |call, e| RuntimeError::Kernel {
            id: String::new(),
            source: SyscallError::new(call, "signal proxy", e),
        };
        let mut mask = SigSet::empty();
        PROXIED.iter().for_each(|s| mask.add(*s));
        let mut previous = SigSet::empty();
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut previous))
            .map_err(|e| kernel("sigprocmask", e))?;
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(|e| kernel("signalfd", e))?;
        Ok(Self { fd, previous })
    }

    /// Forward signals to container `id` until its exit is known; return the container's exit
    /// code. That is as soon as the shim reports it on `reports` (its exit recorded, or with
    /// auto-remove the container gone from every listing), while the shim goes on deleting the
    /// cgroup and files; or, if it never does, when the shim exits with the code.
    pub fn wait(
        &self,
        runtime: &LinuxRuntime,
        id: &ContainerId,
        mut shim: ShimProcess,
        mut reports: Option<ShimReports>,
    ) -> Result<i32> {
        let kernel = |source| RuntimeError::Kernel {
            id: id.to_string(),
            source,
        };
        let pidfd = runtime.syscall.pidfd_open(shim.pid()).map_err(kernel)?;
        loop {
            let mut fds = vec![
                PollFd::new(pidfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.fd.as_fd(), PollFlags::POLLIN),
            ];
            if let Some(reports) = &reports {
                fds.push(PollFd::new(reports.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(kernel(SyscallError::new("poll", "shim", e))),
            }
            let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
            let shim_done = ready(&fds[0]);
            let reported = fds.get(2).is_some_and(ready);
            drop(fds);
            if reported && let Some(open) = &mut reports {
                match open.next_report() {
                    Some(SyncMessage::Exited { code }) => return Ok(code),
                    Some(_) => {}
                    // The shim closed its end without a report: its exit code will tell.
                    None => reports = None,
                }
            }
            while let Ok(Some(info)) = self.fd.read_signal() {
                if let Ok(signal) = Signal::try_from(info.ssi_signo as i32) {
                    tracing::debug!(?signal, "forwarding signal to the container");
                    if let Err(err) = runtime.kill(id, signal) {
                        tracing::debug!(%err, "signal not delivered");
                    }
                }
            }
            if shim_done {
                break;
            }
        }
        let status = shim.wait().map_err(|source| RuntimeError::Io {
            id: id.to_string(),
            path: runtime.config.shim_exe.clone(),
            source,
        })?;
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    }
}

impl Drop for SignalProxy {
    fn drop(&mut self) {
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&self.previous), None);
    }
}
