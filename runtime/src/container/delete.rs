//! `delete`: remove a stopped container (or, forced, kill it first): cgroup, writable layer,
//! logs, state and name. Idempotent, and copes with a create that never finished.

use std::path::{Path, PathBuf};
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

/// Where a removed container's directories wait to be deleted: `<root>/trash` and
/// `<run_dir>/trash`, on the same filesystems, so that moving them there is one rename each.
pub(crate) fn trash_dir(base: &Path) -> PathBuf {
    base.join("trash")
}

/// A removed container's directories, renamed out of sight by [`retire`]: nothing lists,
/// resolves or counts the container any more (its name is free, its image no longer in use),
/// but its writable layer, log and state are still to be deleted, by [`Retired::remove`].
#[derive(Debug)]
#[must_use = "the retired directories are still on disk"]
pub(crate) struct Retired {
    dirs: Vec<PathBuf>,
}

impl Retired {
    /// Delete the retired directories.
    pub(crate) fn remove(self) -> std::io::Result<()> {
        for dir in &self.dirs {
            match std::fs::remove_dir_all(dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Remove the container from every listing at once, leaving the slow part (deleting its
/// directories: several `rmdir`s, each freeing blocks) to [`Retired::remove`]. On failure
/// nothing has moved that [`remove_files`] would not find.
pub(crate) fn retire(root: &Path, run_dir: &Path, config: &ContainerConfig) -> Result<Retired> {
    let id = &config.id;
    let io = |path: &Path| {
        let (id, path) = (id.to_string(), path.to_path_buf());
        move |source| RuntimeError::Io { id, path, source }
    };
    let link = root.join("names").join(&config.name);
    if std::fs::read_link(&link).is_ok_and(|target| target == Path::new(id.as_str())) {
        match std::fs::remove_file(&link) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&link)(e)),
            _ => {}
        }
    }
    let mut retired = Retired { dirs: Vec::new() };
    for (base, dir) in [
        (root, container_dir(root, id)),
        (run_dir, state_dir(run_dir, id)),
    ] {
        let trash = trash_dir(base);
        match std::fs::create_dir(&trash) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&trash).map_err(io(&trash))?
            }
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(io(&trash)(e));
            }
            _ => {}
        }
        let target = trash.join(id.as_str());
        match std::fs::rename(&dir, &target) {
            Ok(()) => retired.dirs.push(target),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&dir)(e)),
        }
    }
    Ok(retired)
}

/// Delete what shims that died half way left in the trash: entries renamed there longer than
/// `min_age` ago (a live shim deletes its own within milliseconds), with the cgroup named
/// after each below `cgroup_parent`.
pub(crate) fn sweep_trash(
    root: &Path,
    run_dir: &Path,
    cgroups: &dyn crate::cgroup::CgroupManager,
    cgroup_parent: &Path,
    min_age: Duration,
) {
    use std::os::unix::fs::MetadataExt;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    for base in [root, run_dir] {
        let Ok(entries) = std::fs::read_dir(trash_dir(base)) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            // Renaming updates the ctime: it is when the entry came to the trash.
            let trashed = Duration::from_secs(meta.ctime().max(0) as u64);
            if now.saturating_sub(trashed) < min_age {
                continue;
            }
            let cgroup = crate::cgroup::CgroupPath::new(cgroup_parent.join(entry.file_name()));
            if let Err(err) = cgroups.delete(&cgroup) {
                tracing::warn!(%cgroup, %err, "cannot delete the cgroup of a trashed container");
            }
            if let Err(err) = std::fs::remove_dir_all(entry.path()) {
                tracing::warn!(path = %entry.path().display(), %err, "cannot empty the trash");
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::cgroup::testing::FakeCgroupFs;
    use crate::cgroup::{CgroupPath, LinuxCgroupV1};
    use crate::container::create::write_files;
    use crate::container::{CreateOptions, RuntimeConfig};
    use crate::syscall::RecordingSyscall;

    #[test]
    fn a_retired_container_is_gone_at_once_and_its_files_after_remove() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = LinuxRuntime::new(
            RuntimeConfig::new(dir.path().join("root"), dir.path().join("run")),
            Arc::new(RecordingSyscall::new()),
        );
        let mut config = ContainerConfig::new(
            "abc123".parse().unwrap(),
            vec!["/l".into()],
            vec!["sh".into()],
        );
        config.name = "web".into();
        write_files(&runtime.config, &config, CreateOptions::default()).unwrap();
        std::fs::create_dir(runtime.container_dir(&config.id).join("upper")).unwrap();

        let retired = retire(&runtime.config.root, &runtime.config.run_dir, &config).unwrap();
        assert!(matches!(
            runtime.resolve("web"),
            Err(RuntimeError::NotFound(_))
        ));
        assert!(runtime.ids().unwrap().is_empty());
        assert!(!runtime.state_dir(&config.id).exists());
        let trashed = dir.path().join("root/trash/abc123");
        assert!(
            trashed.join("upper").is_dir(),
            "the files wait in the trash"
        );

        retired.remove().unwrap();
        assert!(!trashed.exists());
        assert!(!dir.path().join("run/trash/abc123").exists());
        assert!(leftovers(&runtime.config.root, &runtime.config.run_dir, &config.id).is_empty());
    }

    #[test]
    fn the_sweep_deletes_only_what_has_waited_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let (root, run) = (dir.path().join("root"), dir.path().join("run"));
        let cgroup_root = dir.path().join("cgroup");
        std::fs::create_dir(&cgroup_root).unwrap();
        let fake = FakeCgroupFs::v1(&cgroup_root, &[&["memory"]]);
        let cgroups = LinuxCgroupV1::new(fake.v1_mounts());
        fake.add_cgroup(&CgroupPath::new("/berth/old"), &[]);
        for name in ["old", "young"] {
            std::fs::create_dir_all(trash_dir(&root).join(name).join("upper")).unwrap();
        }
        std::fs::create_dir_all(trash_dir(&run).join("old")).unwrap();

        // Nothing has waited an hour.
        sweep_trash(
            &root,
            &run,
            &cgroups,
            Path::new("/berth"),
            Duration::from_secs(3600),
        );
        assert!(trash_dir(&root).join("old").exists());

        sweep_trash(&root, &run, &cgroups, Path::new("/berth"), Duration::ZERO);
        assert!(!trash_dir(&root).join("old").exists());
        assert!(!trash_dir(&root).join("young").exists());
        assert!(!trash_dir(&run).join("old").exists());
    }
}
