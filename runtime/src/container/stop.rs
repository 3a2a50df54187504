//! `stop`: the stop signal, a grace period, then SIGKILL to the whole cgroup.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::{ContainerId, ExitStatus, LinuxRuntime, Result, RuntimeError, Status};

/// How long to wait for the shim after SIGKILL before giving up.
const KILL_WAIT: Duration = Duration::from_secs(10);

impl LinuxRuntime {
    /// Stop the container: `signal` (default: its stop signal), up to `grace` for it to exit,
    /// then SIGKILL for every process of the cgroup. Returns the recorded exit, or `None` for
    /// an auto-removed container (gone once stopped).
    #[tracing::instrument(skip(self), fields(container = %id))]
    pub fn stop(
        &self,
        id: &ContainerId,
        grace: Duration,
        signal: Option<Signal>,
    ) -> Result<Option<ExitStatus>> {
        let config = self.load_config(id)?;
        let signal = signal
            .or_else(|| Signal::try_from(config.stop_signal).ok())
            .unwrap_or(Signal::SIGTERM);
        let gone = |r: Result<Option<ExitStatus>>| match r {
            Err(RuntimeError::NotFound(_)) if config.auto_remove => Ok(None),
            other => other,
        };
        match self.kill(id, signal) {
            Ok(()) => {}
            Err(RuntimeError::WrongStatus {
                status: Status::Stopped,
                ..
            }) => {
                return gone(self.wait_timeout(id, Some(KILL_WAIT)));
            }
            Err(RuntimeError::NotFound(_)) if config.auto_remove => return Ok(None),
            Err(err) => return Err(err),
        }
        if let Some(status) = gone(self.wait_timeout(id, Some(grace)))? {
            return Ok(Some(status));
        }
        if config.auto_remove && self.state(id).is_err() {
            return Ok(None);
        }
        tracing::info!(grace = ?grace, "container ignored the stop signal; killing it");
        self.kill_all(id, Signal::SIGKILL)?;
        match gone(self.wait_timeout(id, Some(KILL_WAIT)))? {
            Some(status) => Ok(Some(status)),
            None if config.auto_remove && self.state(id).is_err() => Ok(None),
            None => Err(RuntimeError::Timeout {
                id: id.clone(),
                waited: grace + KILL_WAIT,
            }),
        }
    }
}
