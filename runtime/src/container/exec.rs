//! `exec`: run another process in a running container, as `docker exec` and exec probes do.
//!
//! The runtime never forks: it starts a fresh single-threaded exec shim (our own binary with
//! [`crate::shim::EXEC_MARKER`]) that opens every namespace of the container's init, joins its
//! pid namespace, forks the process, places it in the container's cgroup, lets it join the
//! other namespaces and harden itself as the init did (capabilities, no_new_privs, seccomp,
//! user), then relays its output and exits with its exit code.
//!
//! ```text
//!  exec ──spawn shim──► Joining ──fork, cgroup──► Hardening ──execve──► Running
//!     Running ──exits──► code (128+signal when killed)      Running ──timeout──► SIGKILL
//!  any setup step fails ──► "E<code>\t<message>" on the shim's report fd ──► RuntimeError::Exec
//! ```
//! The exec'd process lives in the container's pid namespace and cgroup: when the container
//! stops, the kernel (pid namespace teardown) and the shim's cgroup kill take it along.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::fcntl::OFlag;
use serde::{Deserialize, Serialize};

use super::config::User;
use super::{ContainerId, ExitStatus, LinuxRuntime, Result, RuntimeError, Status};
use crate::shim::exec::{ExecArgs, ExecReport};
use crate::shim::{EXEC_MARKER, SYNC_FD};
use crate::syscall::SyscallError;

/// What kubelet keeps of an exec probe's output, per stream.
pub const PROBE_OUTPUT_LIMIT: usize = 10 * 1024;

/// The process to run in the container. `None` fields take the container's own value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecConfig {
    pub args: Vec<String>,
    /// KEY=VALUE; the container's environment when `None`.
    #[serde(default)]
    pub env: Option<Vec<String>>,
    /// Working directory inside the container; it must exist.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    #[serde(default)]
    pub user: Option<User>,
    /// Terminals are not supported: must be false.
    #[serde(default)]
    pub tty: bool,
    /// Kill the process (SIGKILL) when it runs longer.
    #[serde(default)]
    pub timeout: Option<Duration>,
}

impl ExecConfig {
    pub fn new(args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            args: args.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// Where the process's output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecIo {
    /// Collected into [`ExecOutput`], at most `limit` bytes per stream (the rest is read and
    /// dropped), as for probes.
    Capture { limit: usize },
    /// Streamed to this process's stdout and stderr (`berth exec`).
    Inherit,
}

/// How the exec'd process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub status: ExitStatus,
    /// The timeout expired and the process was killed.
    pub timed_out: bool,
    /// The process's pid on the host.
    pub pid: Option<i32>,
    /// Captured output (empty with [`ExecIo::Inherit`]).
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl LinuxRuntime {
    /// Run `config` in the running container `id` and wait for it. Setup failures (no such
    /// executable: 127, not executable: 126, other: 125) are [`RuntimeError::Exec`]; a
    /// process that ran reports its own exit in [`ExecOutput::status`].
    #[tracing::instrument(skip(self, config), fields(container = %id))]
    pub fn exec(&self, id: &ContainerId, config: ExecConfig, io: ExecIo) -> Result<ExecOutput> {
        let exec_err = |code, message: String| RuntimeError::Exec {
            id: id.clone(),
            code,
            message,
        };
        if config.tty {
            return Err(exec_err(
                125,
                "exec with a terminal is not supported".into(),
            ));
        }
        if config.args.is_empty() {
            return Err(exec_err(125, "exec: no command given".into()));
        }
        let state = self.state(id)?;
        let init_pid = match (state.status, state.init_pid) {
            (Status::Running, Some(pid)) => pid,
            (status, _) => {
                return Err(RuntimeError::WrongStatus {
                    id: id.clone(),
                    status,
                    expected: "running",
                });
            }
        };
        let init_start_time =
            super::process_start_time(init_pid).ok_or_else(|| RuntimeError::WrongStatus {
                id: id.clone(),
                status: Status::Stopped,
                expected: "running",
            })?;
        let args = ExecArgs {
            id: id.to_string(),
            config_path: self.container_dir(id).join("config.json"),
            init_pid,
            init_start_time,
            cgroup_root: self.config.cgroup_root.clone(),
            cgroup_layout: self.cgroups(id)?.layout(),
            cgroup_path: self.cgroup_path(id),
            output_limit: match io {
                ExecIo::Capture { limit } => Some(limit),
                ExecIo::Inherit => None,
            },
            exec: config,
        };
        let json = serde_json::to_string(&args).map_err(|source| RuntimeError::Json {
            id: id.to_string(),
            path: self.config.shim_exe.clone(),
            source,
        })?;
        let (report_read, report_write) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| RuntimeError::Kernel {
                id: id.to_string(),
                source: SyscallError::new("pipe2", "exec report", e),
            })?;

        let spawn_err = |source| RuntimeError::Spawn {
            id: id.clone(),
            exe: self.config.shim_exe.clone(),
            source,
        };
        let output = match (self.zygote(), &io) {
            // Probes exec often: forked by the zygote, not by this (multi-threaded) process.
            (Some(zygote), ExecIo::Capture { .. }) => {
                run_in_zygote(zygote, &json, report_write).map_err(spawn_err)?
            }
            _ => {
                let mut command = Command::new(&self.config.shim_exe);
                command.arg(EXEC_MARKER).arg(json).stdin(Stdio::null());
                if matches!(io, ExecIo::Capture { .. }) {
                    command.stdout(Stdio::piped()).stderr(Stdio::piped());
                }
                let raw = report_write.as_raw_fd();
                // SAFETY: runs between fork and exec of the shim and only calls dup2, which is
                // async-signal-safe; dup2 also clears CLOEXEC on the new descriptor.
                unsafe {
                    command.pre_exec(move || {
                        if libc::dup2(raw, SYNC_FD) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
                let child = command.spawn().map_err(spawn_err)?;
                drop(report_write);
                // Reads stdout and stderr together (poll, no thread) until the shim exits; the
                // shim bounds what it writes.
                child.wait_with_output().map_err(spawn_err)?
            }
        };
        let reports = read_reports(report_read);

        let mut pid = None;
        let mut timed_out = false;
        for report in reports {
            match report {
                ExecReport::Started { pid: p } => pid = Some(p),
                ExecReport::TimedOut => timed_out = true,
                ExecReport::Failed { code, message } => return Err(exec_err(code, message)),
            }
        }
        if pid.is_none() {
            return Err(exec_err(
                125,
                format!(
                    "exec shim exited without starting the process ({})",
                    output.status
                ),
            ));
        }
        Ok(ExecOutput {
            status: exit_status_of(output.status),
            timed_out,
            pid,
            stdout: output.stdout,
            stderr: output.stderr,
        })
    }
}

/// The exec shim forked by the zygote, as `Command::output` would run it: stdout and stderr
/// collected (stderr on a second thread), its exit status waited for.
fn run_in_zygote(
    zygote: &crate::shim::zygote::Zygote,
    json: &str,
    report: OwnedFd,
) -> std::io::Result<std::process::Output> {
    use std::os::fd::AsFd;
    let null = std::fs::File::open("/dev/null")?;
    let (stdout_read, stdout_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let (stderr_read, stderr_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let fds = crate::shim::zygote::HelperFds {
        stdin: null.as_fd(),
        stdout: stdout_write.as_fd(),
        stderr: stderr_write.as_fd(),
        sync: Some(report.as_fd()),
    };
    let mut child = zygote.spawn(EXEC_MARKER, json, fds)?;
    drop((stdout_write, stderr_write, report));
    let (stdout, stderr) = std::thread::scope(|scope| {
        let stderr = scope.spawn(move || {
            let mut bytes = Vec::new();
            std::fs::File::from(stderr_read)
                .read_to_end(&mut bytes)
                .map(|_| bytes)
        });
        let mut stdout = Vec::new();
        let read = std::fs::File::from(stdout_read).read_to_end(&mut stdout);
        let stderr = stderr
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("stderr reader panicked")));
        (read.map(|_| stdout), stderr)
    });
    let status = child.wait()?;
    Ok(std::process::Output {
        status,
        stdout: stdout?,
        stderr: stderr?,
    })
}

/// The shim exits with the process's code (128+signal when it was killed); a shim killed
/// itself reads the same way.
fn exit_status_of(status: std::process::ExitStatus) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    let (code, signal) = match (status.code(), status.signal()) {
        (Some(code), _) if code > 128 && code < 128 + 65 => (code, Some(code - 128)),
        (Some(code), _) => (code, None),
        (None, Some(sig)) => (128 + sig, Some(sig)),
        (None, None) => (255, None),
    };
    ExitStatus {
        code,
        signal,
        oom_killed: false,
    }
}

/// Every report line the shim wrote on its report fd.
fn read_reports(fd: OwnedFd) -> Vec<ExecReport> {
    let mut text = Vec::new();
    let _ = std::fs::File::from(fd).read_to_end(&mut text);
    String::from_utf8_lossy(&text)
        .lines()
        .filter_map(ExecReport::decode)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn shim_exit_maps_to_docker_codes() {
        let exited = |code: i32| std::process::ExitStatus::from_raw(code << 8);
        assert_eq!(exit_status_of(exited(0)).code, 0);
        assert_eq!(exit_status_of(exited(3)).signal, None);
        let killed = exit_status_of(exited(137));
        assert_eq!((killed.code, killed.signal), (137, Some(9)));
        let shim_killed = exit_status_of(std::process::ExitStatus::from_raw(libc::SIGTERM));
        assert_eq!((shim_killed.code, shim_killed.signal), (143, Some(15)));
    }

    #[test]
    fn exec_config_defaults_to_the_containers_values() {
        let config: ExecConfig = serde_json::from_str(r#"{"args":["ls"]}"#).unwrap();
        assert_eq!(config, ExecConfig::new(["ls"]));
        assert_eq!(config.env, None);
        assert!(!config.tty);
        let timed = ExecConfig::new(["sleep", "9"]).with_timeout(Duration::from_millis(1500));
        let back: ExecConfig =
            serde_json::from_str(&serde_json::to_string(&timed).unwrap()).unwrap();
        assert_eq!(back.timeout, Some(Duration::from_millis(1500)));
    }

    #[test]
    fn exec_into_a_missing_or_stopped_container_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = LinuxRuntime::new(
            super::super::RuntimeConfig::new(dir.path().join("root"), dir.path().join("run")),
            std::sync::Arc::new(crate::syscall::RecordingSyscall::new()),
        );
        let id: ContainerId = "c1".parse().unwrap();
        assert!(matches!(
            runtime.exec(&id, ExecConfig::new(["ls"]), ExecIo::Inherit),
            Err(RuntimeError::NotFound(_))
        ));
        let state_dir = runtime.state_dir(&id);
        std::fs::create_dir_all(&state_dir).unwrap();
        let mut state = super::super::State::created(id.clone(), i32::MAX, 1, i32::MAX - 1);
        state.transition(Status::Stopped).unwrap();
        state.save(&state_dir).unwrap();
        let err = runtime
            .exec(&id, ExecConfig::new(["ls"]), ExecIo::Inherit)
            .unwrap_err();
        assert!(
            matches!(
                err,
                RuntimeError::WrongStatus {
                    expected: "running",
                    ..
                }
            ),
            "{err}"
        );
        let tty = ExecConfig {
            tty: true,
            ..ExecConfig::new(["sh"])
        };
        assert!(matches!(
            runtime.exec(&id, tty, ExecIo::Inherit),
            Err(RuntimeError::Exec { code: 125, .. })
        ));
    }
}
