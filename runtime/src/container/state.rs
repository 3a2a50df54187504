//! The observed state of a container, `<run_dir>/containers/<id>/state.json`, written atomically
//! (temporary file + rename) by the shim, the one process that watches the container.
//!
//! ```text
//!   create ──► Created ──start──► Running ──init exits──► Stopped ──delete──► (gone)
//!                 │                  │                       ▲
//!                 │                  └──exec fails───────────┤
//!                 └──────killed before start─────────────────┘
//! ```
//! A Created or Running state whose shim is gone (killed, host crash) reads as Stopped with
//! reason `ShimDied` (see [`State::reconcile`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::config::ContainerId;

/// Phase of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Init is set up and waits for `start` before exec.
    Created,
    /// The user's process runs.
    Running,
    /// The init exited; the exit fields are set.
    Stopped,
}

impl Status {
    /// Whether `self -> next` is a transition the diagram allows.
    pub fn can_become(self, next: Status) -> bool {
        matches!(
            (self, next),
            (Status::Created, Status::Running)
                | (Status::Created, Status::Stopped)
                | (Status::Running, Status::Stopped)
        )
    }
}

/// Why a container stopped, in Kubernetes' words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    /// Exit code 0.
    Completed,
    /// Non-zero exit or killed by a signal.
    Error,
    /// The cgroup's OOM killer killed a process of the container.
    #[serde(rename = "OOMKilled")]
    OomKilled,
    /// The process could not be started (setup or exec failure).
    StartError,
    /// The shim disappeared without recording an exit.
    ShimDied,
}

/// How a container's init ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// Shell convention: the exit code, or 128+signal when killed (137 on OOM kill).
    pub code: i32,
    /// The signal that killed the init, if any.
    pub signal: Option<i32>,
    pub oom_killed: bool,
}

impl ExitStatus {
    /// Map a wait status to docker's exit code. An OOM kill reads as SIGKILL (137) even when
    /// the init itself was not the victim but exited because of it, as docker reports.
    pub fn from_wait(status: nix::sys::wait::WaitStatus, oom_killed: bool) -> Self {
        use nix::sys::wait::WaitStatus;
        let (code, signal) = match status {
            WaitStatus::Exited(_, code) => (code, None),
            WaitStatus::Signaled(_, sig, _) => (128 + sig as i32, Some(sig as i32)),
            _ => (255, None),
        };
        if oom_killed && signal == Some(libc::SIGKILL) {
            return Self {
                code: 137,
                signal,
                oom_killed,
            };
        }
        Self {
            code,
            signal,
            oom_killed,
        }
    }

    pub fn reason(&self) -> Reason {
        if self.oom_killed {
            Reason::OomKilled
        } else if self.code == 0 {
            Reason::Completed
        } else {
            Reason::Error
        }
    }
}

/// Contents of `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub id: ContainerId,
    pub status: Status,
    /// Host pid of the container's init.
    pub init_pid: Option<i32>,
    /// Pid of the supervising shim and its start time (clock ticks since boot, field 22 of
    /// /proc/<pid>/stat) so a recycled pid is never mistaken for it.
    pub shim_pid: i32,
    pub shim_start_time: u64,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub exit_code: Option<i32>,
    pub exit_signal: Option<i32>,
    #[serde(default)]
    pub oom_killed: bool,
    pub reason: Option<Reason>,
    /// Start error text (e.g. `exec "/bin/nope": No such file or directory (os error 2)`).
    pub error: Option<String>,
}

/// Errors reading or writing a state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot write state {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read state {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid state file {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("container {id}: {from:?} cannot become {to:?}")]
    Transition {
        id: ContainerId,
        from: Status,
        to: Status,
    },
}

impl State {
    pub fn created(id: ContainerId, shim_pid: i32, shim_start_time: u64, init_pid: i32) -> Self {
        Self {
            id,
            status: Status::Created,
            init_pid: Some(init_pid),
            shim_pid,
            shim_start_time,
            created_at: Timestamp::now(),
            started_at: None,
            finished_at: None,
            exit_code: None,
            exit_signal: None,
            oom_killed: false,
            reason: None,
            error: None,
        }
    }

    /// Move to `next`, refusing transitions the diagram does not have.
    pub fn transition(&mut self, next: Status) -> Result<(), StateError> {
        if !self.status.can_become(next) {
            return Err(StateError::Transition {
                id: self.id.clone(),
                from: self.status,
                to: next,
            });
        }
        self.status = next;
        match next {
            Status::Running => self.started_at = Some(Timestamp::now()),
            Status::Stopped => self.finished_at = Some(Timestamp::now()),
            Status::Created => {}
        }
        Ok(())
    }

    /// Record the exit of the init.
    pub fn record_exit(&mut self, exit: ExitStatus) -> Result<(), StateError> {
        self.transition(Status::Stopped)?;
        self.exit_code = Some(exit.code);
        self.exit_signal = exit.signal;
        self.oom_killed = exit.oom_killed;
        self.reason = Some(exit.reason());
        Ok(())
    }

    /// Record a failure to start the process.
    pub fn record_start_error(&mut self, code: i32, message: String) -> Result<(), StateError> {
        self.transition(Status::Stopped)?;
        self.exit_code = Some(code);
        self.reason = Some(Reason::StartError);
        self.error = Some(message);
        Ok(())
    }

    /// The exit, once stopped.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        (self.status == Status::Stopped).then(|| ExitStatus {
            code: self.exit_code.unwrap_or(255),
            signal: self.exit_signal,
            oom_killed: self.oom_killed,
        })
    }

    /// Correct a state whose shim died without recording the end: it reads as Stopped.
    pub fn reconcile(&mut self, shim_alive: bool) {
        if self.status != Status::Stopped && !shim_alive {
            self.status = Status::Stopped;
            self.exit_code = Some(255);
            self.reason = Some(Reason::ShimDied);
        }
    }

    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("state.json")
    }

    /// Write atomically: a reader sees the old or the new state, never half of one. No fsync:
    /// the file lives on tmpfs and does not outlive a reboot anyway.
    pub fn save(&self, state_dir: &Path) -> Result<(), StateError> {
        let path = Self::path(state_dir);
        let tmp = state_dir.join(".state.json.tmp");
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
            file.write_all(&json)?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|source| StateError::Write { path, source })
    }

    pub fn load(state_dir: &Path) -> Result<Self, StateError> {
        let path = Self::path(state_dir);
        let bytes = std::fs::read(&path).map_err(|source| StateError::Read {
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| StateError::Parse { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use nix::sys::wait::WaitStatus;
    use nix::unistd::Pid;

    #[test]
    fn exit_codes_follow_docker() {
        let pid = Pid::from_raw(1);
        let exited = ExitStatus::from_wait(WaitStatus::Exited(pid, 3), false);
        assert_eq!(
            (exited.code, exited.signal, exited.reason()),
            (3, None, Reason::Error)
        );
        let ok = ExitStatus::from_wait(WaitStatus::Exited(pid, 0), false);
        assert_eq!(ok.reason(), Reason::Completed);
        let killed =
            ExitStatus::from_wait(WaitStatus::Signaled(pid, Signal::SIGKILL, false), false);
        assert_eq!((killed.code, killed.signal), (137, Some(9)));
        let termed =
            ExitStatus::from_wait(WaitStatus::Signaled(pid, Signal::SIGTERM, false), false);
        assert_eq!(termed.code, 143);
        let oom = ExitStatus::from_wait(WaitStatus::Signaled(pid, Signal::SIGKILL, false), true);
        assert_eq!((oom.code, oom.reason()), (137, Reason::OomKilled));
    }

    #[test]
    fn transitions_follow_the_diagram() {
        let mut state = State::created("c".parse().unwrap(), 10, 99, 11);
        assert!(state.transition(Status::Created).is_err());
        state.transition(Status::Running).unwrap();
        assert!(state.started_at.is_some());
        assert!(state.transition(Status::Running).is_err());
        state
            .record_exit(ExitStatus {
                code: 143,
                signal: Some(15),
                oom_killed: false,
            })
            .unwrap();
        assert_eq!(state.exit_status().unwrap().code, 143);
        assert!(state.transition(Status::Running).is_err());

        let mut never_started = State::created("d".parse().unwrap(), 10, 99, 11);
        never_started
            .record_start_error(127, "exec \"nope\"".into())
            .unwrap();
        assert_eq!(never_started.reason, Some(Reason::StartError));
    }

    #[test]
    fn state_saves_atomically_and_reconciles_a_dead_shim() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::created("c".parse().unwrap(), 10, 99, 11);
        state.transition(Status::Running).unwrap();
        state.save(dir.path()).unwrap();
        let loaded = State::load(dir.path()).unwrap();
        assert_eq!(loaded, state);
        assert!(!dir.path().join(".state.json.tmp").exists());
        let text = std::fs::read_to_string(State::path(dir.path())).unwrap();
        assert!(text.contains(r#""status":"running""#), "{text}");

        let mut orphan = loaded;
        orphan.reconcile(true);
        assert_eq!(orphan.status, Status::Running);
        orphan.reconcile(false);
        assert_eq!(
            (orphan.status, orphan.reason),
            (Status::Stopped, Some(Reason::ShimDied))
        );
    }
}
