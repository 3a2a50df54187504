//! `kill`: signal the container's init (through a pidfd, so a recycled pid is never hit), or
//! every process of its cgroup.

use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::{ContainerId, LinuxRuntime, Result, RuntimeError, Status};

/// Parent pid of `pid` (field 4 of /proc/<pid>/stat).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].split(' ').nth(1)?.parse().ok()
}

/// Parse a signal given as a name (`TERM`, `SIGTERM`, `term`) or a number.
pub fn parse_signal(text: &str) -> Option<Signal> {
    if let Ok(number) = text.parse::<i32>() {
        return Signal::try_from(number).ok();
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    name.parse().ok()
}

impl LinuxRuntime {
    /// Send `signal` to the container's init. Note that a PID 1 without a handler for a signal
    /// ignores it (SIGKILL excepted), as in docker.
    #[tracing::instrument(skip(self), fields(container = %id))]
    pub fn kill(&self, id: &ContainerId, signal: Signal) -> Result<()> {
        let not_running = |status| RuntimeError::WrongStatus { id: id.clone(), status, expected: "running" };
        let state = self.state(id)?;
        let (Some(init), true) = (state.init_pid, state.status != Status::Stopped) else {
            return Err(not_running(state.status));
        };
        let pidfd = match self.syscall.pidfd_open(Pid::from_raw(init)) {
            Ok(fd) => fd,
            Err(e) if e.errno == Errno::ESRCH => return Err(not_running(Status::Stopped)),
            Err(source) => return Err(RuntimeError::Kernel { id: id.to_string(), source }),
        };
        // The pidfd pins the process; make sure it is still the shim's child, not a stranger
        // that got the pid after the init was reaped.
        if parent_of(init) != Some(state.shim_pid) {
            return Err(not_running(Status::Stopped));
        }
        self.syscall
            .pidfd_send_signal(pidfd.as_fd(), signal)
            .map_err(|source| match source.errno {
                Errno::ESRCH => not_running(Status::Stopped),
                _ => RuntimeError::Kernel { id: id.to_string(), source },
            })
    }

    /// Send `signal` to every process in the container's cgroup. A container that has just
    /// stopped (its shim removed the cgroup) is not an error.
    pub fn kill_all(&self, id: &ContainerId, signal: Signal) -> Result<()> {
        let cgroups = self.cgroups(id)?;
        match cgroups.signal_all(&self.cgroup_path(id), signal) {
            Ok(()) => Ok(()),
            Err(_) if self.state(id).is_ok_and(|s| s.status == Status::Stopped) => Ok(()),
            Err(_) if !self.cgroup_exists(id) => Ok(()),
            Err(source) => Err(RuntimeError::Cgroup { id: id.to_string(), source }),
        }
    }

    fn cgroup_exists(&self, id: &ContainerId) -> bool {
        self.cgroups(id).is_ok_and(|c| c.hierarchy_dirs(&self.cgroup_path(id)).iter().any(|(_, dir)| dir.exists()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name_and_number() {
        assert_eq!(parse_signal("KILL"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("sigterm"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("hup"), Some(Signal::SIGHUP));
        assert_eq!(parse_signal("9"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("NOPE"), None);
        assert_eq!(parse_signal("999"), None);
        assert_eq!(parent_of(std::process::id() as i32), Some(nix::unistd::getppid().as_raw()));
    }
}
