//! `list`, `inspect` and `stats`: read-only views of containers on disk.

use serde::Serialize;

use super::config::ContainerConfig;
use super::{ContainerId, LinuxRuntime, Result, RuntimeError, State, Status};
use crate::cgroup::Stats;

/// A container's configuration and observed state (`None` when creation did not get as far
/// as the shim, or the run directory was lost at reboot).
#[derive(Debug, Clone, Serialize)]
pub struct ContainerInfo {
    pub config: ContainerConfig,
    pub state: Option<State>,
}

impl LinuxRuntime {
    pub fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo> {
        let config = self.load_config(id)?;
        let state = match self.state(id) {
            Ok(state) => Some(state),
            Err(RuntimeError::NotFound(_)) => None,
            Err(err) => return Err(err),
        };
        Ok(ContainerInfo { config, state })
    }

    /// Every container on disk, oldest first. Containers removed while listing are skipped.
    pub fn list(&self) -> Result<Vec<ContainerInfo>> {
        let mut all = Vec::new();
        for id in self.ids()? {
            match self.inspect(&id) {
                Ok(info) => all.push(info),
                Err(RuntimeError::NotFound(_)) => {}
                Err(err) => return Err(err),
            }
        }
        all.sort_by_key(|info| info.state.as_ref().map(|s| s.created_at));
        Ok(all)
    }

    /// Usage counters of a created or running container.
    pub fn stats(&self, id: &ContainerId) -> Result<Stats> {
        let state = self.state(id)?;
        if state.status == Status::Stopped {
            return Err(RuntimeError::WrongStatus {
                id: id.clone(),
                status: state.status,
                expected: "running",
            });
        }
        self.cgroups(id)?
            .stats(&self.cgroup_path(id))
            .map_err(|source| RuntimeError::Cgroup {
                id: id.to_string(),
                source,
            })
    }
}
