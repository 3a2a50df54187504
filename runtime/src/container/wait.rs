//! `wait`: block until the container has exited and its exit is recorded, without polling
//! files: the shim's pidfd becomes readable when the shim exits, which it does right after
//! writing the final state.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::{ContainerId, ExitStatus, LinuxRuntime, Result, RuntimeError};
use crate::syscall::SyscallError;

impl LinuxRuntime {
    /// Wait for the container to exit. An auto-removed container is gone afterwards: then
    /// [`RuntimeError::NotFound`].
    pub fn wait(&self, id: &ContainerId) -> Result<ExitStatus> {
        match self.wait_timeout(id, None)? {
            Some(status) => Ok(status),
            None => Err(RuntimeError::Timeout {
                id: id.clone(),
                waited: Duration::MAX,
            }),
        }
    }

    /// Wait at most `timeout` (forever with `None`); `Ok(None)` if it is still running.
    pub fn wait_timeout(
        &self,
        id: &ContainerId,
        timeout: Option<Duration>,
    ) -> Result<Option<ExitStatus>> {
        if let Some(fd) = self.exit_fd(id)? {
            let deadline = timeout.map(|t| Instant::now() + t);
            loop {
                let wait = match deadline {
                    None => PollTimeout::NONE,
                    Some(deadline) => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32)
                            .unwrap_or(PollTimeout::MAX)
                    }
                };
                let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, wait) {
                    Ok(0) => return Ok(None),
                    Ok(_) => break,
                    Err(Errno::EINTR) => continue,
                    Err(e) => {
                        return Err(RuntimeError::Kernel {
                            id: id.to_string(),
                            source: SyscallError::new("poll", "shim pidfd", e),
                        });
                    }
                }
            }
        }
        Ok(self.state(id)?.exit_status())
    }
}
