//! The shim: one small single-threaded process per container, started by re-executing berth's
//! own binary with a hidden first argument. It is the container init's parent (and a child
//! subreaper), owns the cgroup, pumps output into the log, records the exit and, with
//! auto-remove, deletes the container.
//!
//! ```text
//!  Spawned ──(detach: fork, setsid)──► fork init ──cgroup made, init told──► log opened
//!     (and with `start` the state directory made, while the init mounts) ──► WaitingReady
//!     WaitingReady ──init "R"──► Created (state.json, runtime told "C<pid>")
//!     WaitingReady ──init "S"──► Running (with `start`: no fifo, no Created state saved)
//!     WaitingReady ──init "E"──► runtime told "E<code>\t<msg>" ──► exit
//!     Created ──init "S"──► Running ──init exits──► Draining ──pipes closed──► Stopped
//!     Stopped ──exit recorded (auto-remove: directories renamed to the trash)──► foreground
//!         caller told "X<code>" ──► mount namespace let go, cgroup and trash deleted ──► exit
//! ```
//! The shim holds the container's mount namespace from the start on, so that its teardown
//! happens after the caller is told, not in the init's exit.
//! The runtime creates the shim with [`std::process::Command`] (safe from a multi-threaded
//! parent); only the shim, which never starts a thread, forks. A caller that is itself
//! single-threaded at that moment (`berth run` in the foreground, checked at run time) forks
//! the shim instead, saving the exec; the same [`supervise::run`] follows either way.

pub mod exec;
mod memory;
pub(crate) mod supervise;
pub mod zygote;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::cgroup::CgroupPath;

/// `argv[1]` that turns the berth binary into a shim.
pub const SHIM_MARKER: &str = "__berth-shim";

/// `argv[1]` that turns the berth binary into an exec shim ([`exec`]).
pub const EXEC_MARKER: &str = "__berth-exec";

/// The fd the shim reports creation on (the runtime dup2s its pipe there).
pub const SYNC_FD: i32 = 3;

/// What the runtime tells the shim, as JSON in `argv[2]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimArgs {
    /// `<root>/containers/<id>`: config.json, rootfs, upper, work, container.log.
    pub container_dir: PathBuf,
    /// `<run_dir>/containers/<id>`: state.json, exec.fifo.
    pub state_dir: PathBuf,
    /// `<root>` and `<run_dir>`, for auto-remove.
    pub root: PathBuf,
    pub run_dir: PathBuf,
    pub cgroup_root: PathBuf,
    /// The host's cgroup layout, as the runtime detected it; `None` for the shim to detect it
    /// (a one-shot caller such as `berth run`, which has not: the shim does it in parallel
    /// with the init's set-up).
    pub cgroup_layout: Option<crate::cgroup::Layout>,
    pub cgroup_path: CgroupPath,
    /// Fork away and start a new session so the container outlives its creator.
    pub detach: bool,
    /// Also copy the container's output to the shim's own stdout/stderr (`berth run` in the
    /// foreground).
    pub attach: bool,
    /// Exec the user's process right after set-up, without the exec fifo
    /// ([`crate::container::CreateOptions::start`]).
    #[serde(default)]
    pub start: bool,
}

/// What the shim reports on [`SYNC_FD`], one line each: `Created` or `Failed` once set up, and
/// to a caller that waits in the foreground `Exited` once the exit is recorded (with
/// auto-remove: once the container is gone from every listing), before the cgroup and files
/// are deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncMessage {
    Created { init_pid: i32 },
    Failed { code: i32, message: String },
    Exited { code: i32 },
}

impl SyncMessage {
    pub fn encode(&self) -> String {
        match self {
            SyncMessage::Created { init_pid } => format!("C{init_pid}\n"),
            SyncMessage::Failed { code, message } => {
                format!("E{code}\t{}\n", message.replace('\n', " "))
            }
            SyncMessage::Exited { code } => format!("X{code}\n"),
        }
    }

    pub fn decode(line: &str) -> Option<Self> {
        let line = line.trim_end_matches('\n');
        if let Some(pid) = line.strip_prefix('C') {
            return Some(SyncMessage::Created {
                init_pid: pid.parse().ok()?,
            });
        }
        if let Some(code) = line.strip_prefix('X') {
            return Some(SyncMessage::Exited {
                code: code.parse().ok()?,
            });
        }
        let (code, message) = line.strip_prefix('E')?.split_once('\t')?;
        Some(SyncMessage::Failed {
            code: code.parse().ok()?,
            message: message.to_string(),
        })
    }
}

/// The caller's end of a shim's [`SYNC_FD`] pipe, read one report at a time.
#[derive(Debug)]
pub struct ShimReports {
    file: std::fs::File,
    pending: Vec<u8>,
}

impl ShimReports {
    pub fn new(fd: std::os::fd::OwnedFd) -> Self {
        Self {
            file: fd.into(),
            pending: Vec::with_capacity(64),
        }
    }

    /// The next report, blocking until it arrives; `None` once the shim closed its end (or
    /// wrote something that is not a report).
    pub fn next_report(&mut self) -> Option<SyncMessage> {
        use std::io::Read;
        let mut buf = [0u8; 512];
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                return SyncMessage::decode(&String::from_utf8_lossy(&line));
            }
            match self.file.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
    }
}

impl std::os::fd::AsFd for ShimReports {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// When this process was started as a shim, run it and exit; otherwise return at once. Must be
/// the first thing `main` does, before any thread exists.
pub fn run_if_shim() {
    let mut args = std::env::args_os();
    let Some(marker) = args.nth(1) else { return };
    let Some(marker) = marker.to_str().map(str::to_owned) else {
        return;
    };
    if marker == zygote::ZYGOTE_MARKER {
        std::process::exit(zygote::serve());
    }
    if ![SHIM_MARKER, EXEC_MARKER, crate::sandbox::SANDBOX_MARKER].contains(&marker.as_str()) {
        return;
    }
    let Some(json) = args.next() else {
        eprintln!("berth {marker}: invalid arguments");
        std::process::exit(125)
    };
    let code = dispatch(&marker, json.as_encoded_bytes()).unwrap_or(125);
    std::process::exit(code)
}

/// Run the helper `marker` names with its JSON arguments and return its exit code; `None` for
/// an unknown marker. The caller is single-threaded (a fresh exec or a zygote's child).
pub(crate) fn dispatch(marker: &str, json: &[u8]) -> Option<i32> {
    let invalid = |what: &str, err: serde_json::Error| {
        eprintln!("berth {what}: invalid arguments: {err}");
        125
    };
    Some(match marker {
        SHIM_MARKER => match serde_json::from_slice::<ShimArgs>(json) {
            Ok(shim_args) => supervise::run(shim_args, None),
            Err(err) => invalid("shim", err),
        },
        EXEC_MARKER => match serde_json::from_slice(json) {
            Ok(exec_args) => exec::run(exec_args),
            Err(err) => invalid("exec", err),
        },
        crate::sandbox::SANDBOX_MARKER => match serde_json::from_slice(json) {
            Ok(sandbox_args) => crate::sandbox::run_shim(sandbox_args),
            Err(err) => invalid("sandbox", err),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_read_one_line_at_a_time() {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        // Two reports in one write, as a fast container's shim may send them.
        nix::unistd::write(&write, b"C42\nX3\n").unwrap();
        drop(write);
        let mut reports = ShimReports::new(read);
        assert_eq!(
            reports.next_report(),
            Some(SyncMessage::Created { init_pid: 42 })
        );
        assert_eq!(reports.next_report(), Some(SyncMessage::Exited { code: 3 }));
        assert_eq!(reports.next_report(), None);
    }

    #[test]
    fn sync_messages_round_trip() {
        for msg in [
            SyncMessage::Exited { code: 137 },
            SyncMessage::Created { init_pid: 4242 },
            SyncMessage::Failed {
                code: 127,
                message: "exec: \"x\": not found".into(),
            },
        ] {
            assert_eq!(SyncMessage::decode(&msg.encode()), Some(msg));
        }
        let multi = SyncMessage::Failed {
            code: 1,
            message: "a\nb".into(),
        };
        assert_eq!(
            SyncMessage::decode(&multi.encode()),
            Some(SyncMessage::Failed {
                code: 1,
                message: "a b".into()
            })
        );
        assert_eq!(SyncMessage::decode("Z1"), None);
        assert_eq!(SyncMessage::decode("Xabc"), None);
        assert_eq!(SyncMessage::decode("Cabc"), None);
    }
}
