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
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse().ok()
}

impl LinuxRuntime {
    /// Send `signal` to the container's init. Note that a PID 1 without a handler for a signal
    /// ignores it (SIGKILL excepted), as in docker.
    #[tracing::instrument(skip(self), fields(container = %id))]
    pub fn kill(&self, id: &ContainerId, signal: Signal) -> Result<()> {
        let not_running = |status| RuntimeError::WrongStatus {
            id: id.clone(),
            status,
            expected: "running",
        };
        let state = self.state(id)?;
        let (Some(init), true) = (state.init_pid, state.status != Status::Stopped) else {
            return Err(not_running(state.status));
        };
        let pidfd = match self.syscall.pidfd_open(Pid::from_raw(init)) {
            Ok(fd) => fd,
            Err(e) if e.errno == Errno::ESRCH => return Err(not_running(Status::Stopped)),
            Err(source) => {
                return Err(RuntimeError::Kernel {
                    id: id.to_string(),
                    source,
                });
            }
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
                _ => RuntimeError::Kernel {
                    id: id.to_string(),
                    source,
                },
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
            Err(source) => Err(RuntimeError::Cgroup {
                id: id.to_string(),
                source,
            }),
        }
    }

    fn cgroup_exists(&self, id: &ContainerId) -> bool {
        self.cgroups(id).is_ok_and(|c| {
            c.hierarchy_dirs(&self.cgroup_path(id))
                .iter()
                .any(|(_, dir)| dir.exists())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::container::{ExitStatus, Reason, RuntimeConfig, State};
    use crate::syscall::{Call, RecordingSyscall};

    #[test]
    fn signals_parse_by_name_and_number() {
        assert_eq!(parse_signal("KILL"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("sigterm"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("hup"), Some(Signal::SIGHUP));
        assert_eq!(parse_signal("9"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("NOPE"), None);
        assert_eq!(parse_signal("999"), None);
        assert_eq!(
            parent_of(std::process::id() as i32),
            Some(nix::unistd::getppid().as_raw())
        );
    }

    /// A runtime over a tempdir whose container has `state` on disk; signals are recorded,
    /// not sent.
    fn runtime_with(
        state: Option<State>,
    ) -> (tempfile::TempDir, LinuxRuntime, Arc<RecordingSyscall>) {
        let dir = tempfile::tempdir().unwrap();
        let syscall = Arc::new(RecordingSyscall::new());
        let config = RuntimeConfig::new(dir.path().join("root"), dir.path().join("run"));
        let runtime = LinuxRuntime::new(config, syscall.clone());
        if let Some(state) = state {
            let state_dir = runtime.state_dir(&state.id);
            std::fs::create_dir_all(&state_dir).unwrap();
            state.save(&state_dir).unwrap();
        }
        (dir, runtime, syscall)
    }

    #[test]
    fn kill_signals_the_init_through_a_pidfd_only_while_it_runs() {
        // This test process plays the init and its parent plays the shim.
        let id: ContainerId = "c".parse().unwrap();
        let me = std::process::id() as i32;
        let parent = nix::unistd::getppid().as_raw();
        let parent_start = crate::container::process_start_time(parent).unwrap();
        let mut state = State::created(id.clone(), parent, parent_start, me);
        state.transition(Status::Running).unwrap();

        let (_dir, runtime, syscall) = runtime_with(Some(state.clone()));
        runtime.kill(&id, Signal::SIGTERM).unwrap();
        assert_eq!(
            syscall.calls(),
            [
                Call::PidfdOpen(Pid::from_raw(me)),
                Call::PidfdSendSignal(Signal::SIGTERM)
            ]
        );

        // A pid whose parent is not the shim is a stranger: never signalled.
        let mut stranger = state.clone();
        stranger.init_pid = Some(parent);
        let (_dir, runtime, syscall) = runtime_with(Some(stranger));
        assert!(matches!(
            runtime.kill(&id, Signal::SIGKILL),
            Err(RuntimeError::WrongStatus { .. })
        ));
        assert!(
            !syscall
                .calls()
                .contains(&Call::PidfdSendSignal(Signal::SIGKILL))
        );

        // Stopped: refused before any kernel call.
        state
            .record_exit(ExitStatus {
                code: 0,
                signal: None,
                oom_killed: false,
            })
            .unwrap();
        let (_dir, runtime, syscall) = runtime_with(Some(state));
        assert!(matches!(
            runtime.kill(&id, Signal::SIGKILL),
            Err(RuntimeError::WrongStatus {
                status: Status::Stopped,
                ..
            })
        ));
        assert!(syscall.calls().is_empty());

        // Unknown container.
        let (_dir, runtime, _) = runtime_with(None);
        assert!(matches!(
            runtime.kill(&id, Signal::SIGKILL),
            Err(RuntimeError::NotFound(_))
        ));
    }

    #[test]
    fn a_dead_shim_reads_as_stopped_and_is_never_signalled() {
        let id: ContainerId = "c".parse().unwrap();
        // The start time cannot match this pid's: its shim is gone.
        let mut state = State::created(id.clone(), std::process::id() as i32, 1, 1);
        state.transition(Status::Running).unwrap();
        let (_dir, runtime, syscall) = runtime_with(Some(state));
        let seen = runtime.state(&id).unwrap();
        assert_eq!(
            (seen.status, seen.reason),
            (Status::Stopped, Some(Reason::ShimDied))
        );
        assert!(runtime.exit_fd(&id).unwrap().is_none());
        assert!(matches!(
            runtime.kill(&id, Signal::SIGKILL),
            Err(RuntimeError::WrongStatus { .. })
        ));
        assert!(syscall.calls().is_empty());
    }
}
