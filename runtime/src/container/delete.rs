//! `delete`: remove a stopped container (or, forced, kill it first): cgroup, writable layer,
//! logs, state and name. Idempotent, and copes with a create that never finished.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::config::ContainerConfig;
use super::{ContainerId, LinuxRuntime, Result, RuntimeError, Status, container_dir, state_dir};

/// Remove the files of a container: its name link (if still its own), its directory under
/// `root` and its state directory under `run_dir`. Missing pieces are fine.
pub(crate) fn remove_files(root: &Path, run_dir: &Path, config: &ContainerConfig) -> Result<()> {
    let id = &config.id;
    let io = |path: &Path| {
        let (id, path) = (id.to_string(), path.to_path_buf());
        move |source| RuntimeError::Io { id, path, source }
    };
    let ignore_missing = |r: std::io::Result<()>| match r {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    };
    let link = root.join("names").join(&config.name);
    if std::fs::read_link(&link).is_ok_and(|target| target == Path::new(id.as_str())) {
        ignore_missing(std::fs::remove_file(&link)).map_err(io(&link))?;
    }
    let dir = container_dir(root, id);
    ignore_missing(std::fs::remove_dir_all(&dir)).map_err(io(&dir))?;
    let run = state_dir(run_dir, id);
    ignore_missing(std::fs::remove_dir_all(&run)).map_err(io(&run))
}

impl LinuxRuntime {
    /// Delete the container. A running one is refused unless `force`, which kills it.
    #[tracing::instrument(skip(self), fields(container = %id))]
    pub fn delete(&self, id: &ContainerId, force: bool) -> Result<()> {
        let config = self.load_config(id)?;
        match self.state(id) {
            Ok(state) if state.status != Status::Stopped => {
                if !force {
                    return Err(RuntimeError::Running(id.clone()));
                }
                let _ = self.kill(id, Signal::SIGKILL);
                self.kill_all(id, Signal::SIGKILL)?;
                match self.wait_timeout(id, Some(Duration::from_secs(10))) {
                    Ok(Some(_)) | Err(RuntimeError::NotFound(_)) => {}
                    Ok(None) => {
                        return Err(RuntimeError::Timeout {
                            id: id.clone(),
                            waited: Duration::from_secs(10),
                        });
                    }
                    Err(err) => return Err(err),
                }
            }
            // Stopped, or never got as far as a state file.
            Ok(_) | Err(RuntimeError::NotFound(_)) | Err(RuntimeError::State(_)) => {}
            Err(err) => return Err(err),
        }
        let cgroups = self.cgroups(id)?;
        let cgroup = cgroups
            .delete(&self.cgroup_path(id))
            .map_err(|source| RuntimeError::Cgroup {
                id: id.to_string(),
                source,
            });
        let files = remove_files(&self.config.root, &self.config.run_dir, &config);
        match (cgroup, files) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
            (Err(original), Err(cleanup)) => Err(RuntimeError::Cleanup {
                original: Box::new(original),
                cleanup: Box::new(cleanup),
            }),
        }
    }
}

/// Whether `id` has anything left on disk (for tests and `rm` reporting).
pub fn leftovers(root: &Path, run_dir: &Path, id: &ContainerId) -> Vec<std::path::PathBuf> {
    [container_dir(root, id), state_dir(run_dir, id)]
        .into_iter()
        .filter(|p| p.exists())
        .collect()
}
