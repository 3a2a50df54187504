//! `start`: release an init waiting in Created through its exec fifo.

use std::io::Write;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::{ContainerId, LinuxRuntime, Result, RuntimeError, Status};
use crate::syscall::SyscallError;

impl LinuxRuntime {
    /// Let the init exec the user's process. Returns once the init has the signal; the shim
    /// records Running (and the start time) a moment later.
    #[tracing::instrument(skip(self), fields(container = %id))]
    pub fn start(&self, id: &ContainerId) -> Result<()> {
        let state = self.state(id)?;
        if state.status != Status::Created {
            return Err(RuntimeError::WrongStatus {
                id: id.clone(),
                status: state.status,
                expected: "created",
            });
        }
        let fifo = self.state_dir(id).join("exec.fifo");
        // Non-blocking open for writing fails with ENXIO when no reader is left, i.e. the init
        // died: no hanging on a dead container.
        let fd = nix::fcntl::open(
            &fifo,
            OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::ENXIO | Errno::ENOENT => RuntimeError::WrongStatus {
                id: id.clone(),
                status: Status::Stopped,
                expected: "created",
            },
            e => RuntimeError::Kernel {
                id: id.to_string(),
                source: SyscallError::path("open", &fifo, e),
            },
        })?;
        let mut file = std::fs::File::from(fd);
        file.write_all(&[0]).map_err(|source| RuntimeError::Io {
            id: id.to_string(),
            path: fifo.clone(),
            source,
        })?;
        drop(file);
        let _ = std::fs::remove_file(&fifo);
        Ok(())
    }
}
