//! Reading, writing and parsing cgroup control files, shared by v1 and v2.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{CgroupError, Result};

/// How often waits poll the kernel.
pub(super) const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How many times an `rmdir` that fails with EBUSY is retried.
const RMDIR_ATTEMPTS: u32 = 10;

/// Write `value` to an existing control file in one `write(2)` (the kernel parses each write on
/// its own). Never creates the file: a missing control file means a missing controller.
pub(super) fn write(path: &Path, value: &str) -> Result<()> {
    let result = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut file| file.write_all(value.as_bytes()));
    result.map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_owned(),
        source,
    })
}

/// Write each of `values` to an existing control file with a `write(2)` of its own, through one
/// open descriptor (a kernel file takes one rule per write; a plain file ends up with all of
/// them, one per line).
pub(super) fn write_each(path: &Path, values: &[String]) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|source| CgroupError::Write {
            path: path.to_path_buf(),
            value: values.join("\n"),
            source,
        })?;
    for value in values {
        file.write_all(format!("{value}\n").as_bytes())
            .map_err(|source| CgroupError::Write {
                path: path.to_path_buf(),
                value: value.clone(),
                source,
            })?;
    }
    Ok(())
}

pub(super) fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Like [`read`], but a missing file is `None` (an optional kernel feature).
pub(super) fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(content) => Ok(Some(content)),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

pub(super) fn parse_error(path: &Path, content: &str) -> CgroupError {
    CgroupError::Parse {
        path: path.to_path_buf(),
        content: content.to_owned(),
    }
}

pub(super) fn parse_u64(path: &Path, content: &str) -> Result<u64> {
    content
        .trim()
        .parse()
        .map_err(|_| parse_error(path, content))
}

pub(super) fn read_u64(path: &Path) -> Result<u64> {
    parse_u64(path, &read(path)?)
}

/// Parse a v2 limit: `max` is no limit.
pub(super) fn parse_max(path: &Path, content: &str) -> Result<Option<u64>> {
    match content.trim() {
        "max" => Ok(None),
        _ => parse_u64(path, content).map(Some),
    }
}

/// The value of `key` in a flat keyed file (`key value` per line: memory.stat, cpu.stat,
/// memory.events, memory.oom_control). `Ok(None)` when the key is absent.
pub(super) fn keyed_u64(path: &Path, content: &str, key: &str) -> Result<Option<u64>> {
    for line in content.lines() {
        let mut parts = line.split_whitespace();
        if parts.next() == Some(key) {
            let value = parts.next().ok_or_else(|| parse_error(path, line))?;
            return value.parse().map(Some).map_err(|_| parse_error(path, line));
        }
    }
    Ok(None)
}

/// `avg10` of the `some` line of a PSI file (`some avg10=0.12 avg60=… avg300=… total=…`).
pub(super) fn psi_some_avg10(path: &Path, content: &str) -> Result<Option<f64>> {
    let Some(line) = content.lines().find(|line| line.starts_with("some ")) else {
        return Ok(None);
    };
    let value = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("avg10="))
        .ok_or_else(|| parse_error(path, line))?;
    value.parse().map(Some).map_err(|_| parse_error(path, line))
}

/// The pids listed in a `cgroup.procs` file.
pub(super) fn read_pids(procs: &Path) -> Result<Vec<Pid>> {
    let content = read(procs)?;
    content
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            line.trim()
                .parse()
                .map(Pid::from_raw)
                .map_err(|_| parse_error(procs, line))
        })
        .collect()
}

/// The outcome of a round of killing the tasks of cgroup `dir` (`true`: it is empty), where
/// an error counts as done if `dir` is gone: a container's shim deletes its cgroup once the
/// last task exited, which can happen between a kill's reading of the task list and its
/// writing to the freezer (an `rm -f` racing the shim's own teardown).
pub(super) fn done_unless_gone(dir: &Path, round: Result<bool>) -> Result<bool> {
    match round {
        Err(err) if dir.exists() => Err(err),
        Err(err) => {
            tracing::debug!(cgroup = %dir.display(), %err, "cgroup deleted during the kill");
            Ok(true)
        }
        ok => ok,
    }
}

/// The pids in `cgroup.procs` of `dir` and of every cgroup below it. A cgroup that disappears
/// while it is being listed contributes nothing.
pub(super) fn subtree_pids(dir: &Path) -> Result<Vec<Pid>> {
    let mut pids = Vec::new();
    for cgroup in subtree_post_order(dir)? {
        match read_pids(&cgroup.join("cgroup.procs")) {
            Ok(found) => pids.extend(found),
            Err(CgroupError::Read { source, .. }) if source.kind() == ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
    }
    Ok(pids)
}

/// Send `signal` to every process of the cgroup `dir` and its descendants; a pid that already
/// exited is fine. Returns how many were signalled.
pub(super) fn signal_subtree(dir: &Path, signal: Signal) -> Result<usize> {
    let mut sent = 0;
    for pid in subtree_pids(dir)? {
        match kill(pid, signal) {
            Ok(()) => sent += 1,
            Err(Errno::ESRCH) => {}
            Err(source) => {
                return Err(CgroupError::Signal {
                    path: dir.to_path_buf(),
                    pid: pid.as_raw(),
                    signal,
                    source,
                });
            }
        }
    }
    Ok(sent)
}

/// Poll `done` until it says yes or `timeout` passes; returns whether it said yes.
pub(super) fn wait_until(
    timeout: Duration,
    mut done: impl FnMut() -> Result<bool>,
) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if done()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Create `dir` if missing (its parent must exist).
pub(super) fn create_dir(dir: &Path) -> Result<()> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(CgroupError::Create {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Every cgroup directory at and below `dir`, children before their parents. Empty when `dir`
/// does not exist.
pub(super) fn subtree_post_order(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CgroupError::Read {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| CgroupError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir {
            out.extend(subtree_post_order(&entry.path())?);
        }
    }
    out.push(dir.to_path_buf());
    Ok(out)
}

/// `rmdir` each of `dirs` in order, as long as each is an empty leaf; missing is fine. `false`
/// at the first one that still has tasks or child cgroups (EBUSY, ENOTEMPTY): that one and
/// those after it are left for a full walk.
pub(super) fn remove_empty_leaves(dirs: &[PathBuf]) -> Result<bool> {
    for dir in dirs {
        match std::fs::remove_dir(dir) {
            Ok(()) => {}
            Err(err) if err.kind() == ErrorKind::NotFound => {}
            Err(err) if matches!(err.raw_os_error(), Some(libc::EBUSY | libc::ENOTEMPTY)) => {
                return Ok(false);
            }
            Err(source) => {
                return Err(CgroupError::Remove {
                    path: dir.clone(),
                    source,
                });
            }
        }
    }
    Ok(true)
}

/// `rmdir` a cgroup directory: missing is fine; EBUSY (a task still exiting) is retried a few
/// times with short sleeps.
pub(super) fn remove_dir(dir: &Path) -> Result<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(()),
            Err(err) if err.raw_os_error() == Some(libc::EBUSY) && attempt < RMDIR_ATTEMPTS => {
                tracing::debug!(path = %dir.display(), attempt, "cgroup busy, retrying rmdir");
                std::thread::sleep(POLL_INTERVAL * attempt);
            }
            Err(source) => {
                return Err(CgroupError::Remove {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("/fake/file")
    }

    #[test]
    fn a_failed_kill_round_is_done_only_when_the_cgroup_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let failed = || Err(write_error(&dir.path().join("freezer.state")));
        assert!(done_unless_gone(dir.path(), failed()).is_err());
        assert!(!done_unless_gone(dir.path(), Ok(false)).unwrap());
        assert!(done_unless_gone(dir.path(), Ok(true)).unwrap());
        let gone = dir.path().join("gone");
        assert!(done_unless_gone(&gone, failed()).unwrap());
        assert!(!done_unless_gone(&gone, Ok(false)).unwrap());
    }

    fn write_error(path: &Path) -> CgroupError {
        CgroupError::Write {
            path: path.to_path_buf(),
            value: "FROZEN".to_owned(),
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        }
    }

    #[test]
    fn parses_max_and_numbers() {
        assert_eq!(parse_max(p(), "max\n").unwrap(), None);
        assert_eq!(parse_max(p(), "16777216\n").unwrap(), Some(16 << 20));
        assert!(matches!(
            parse_max(p(), "lots"),
            Err(CgroupError::Parse { .. })
        ));
    }

    #[test]
    fn reads_keyed_values() {
        let content = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed_u64(p(), content, "oom_kill").unwrap(), Some(3));
        assert_eq!(keyed_u64(p(), content, "oom").unwrap(), None);
        assert!(keyed_u64(p(), "oom_kill x\n", "oom_kill").is_err());
    }

    #[test]
    fn parses_psi() {
        let content = "some avg10=1.50 avg60=3.02 avg300=2.67 total=15463344\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(psi_some_avg10(p(), content).unwrap(), Some(1.5));
        assert_eq!(psi_some_avg10(p(), "").unwrap(), None);
        assert!(psi_some_avg10(p(), "some avg60=1.0\n").is_err());
        assert!(psi_some_avg10(p(), "some avg10=abc\n").is_err());
    }
}
