//! The shim: one small single-threaded process per container, started by re-executing berth's
//! own binary with a hidden first argument. It is the container init's parent (and a child
//! subreaper), owns the cgroup, pumps output into the log, records the exit and, with
//! auto-remove, deletes the container.
//!
//! ```text
//!  Spawned ──(detach: fork, setsid)──► CgroupReady ──fork init──► WaitingReady
//!     WaitingReady ──init "R"──► Created (state.json, runtime told "C<pid>")
//!     WaitingReady ──init "E"──► runtime told "E<code>\t<msg>" ──► exit
//!     Created ──init "S"──► Running ──init exits──► Draining ──pipes closed──► Stopped ──► exit
//! ```
//! The runtime creates the shim with [`std::process::Command`] (safe from a multi-threaded
//! parent); only the shim, which never starts a thread, forks.

mod supervise;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::cgroup::CgroupPath;

/// `argv[1]` that turns the berth binary into a shim.
pub const SHIM_MARKER: &str = "__berth-shim";

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
    pub mountinfo: PathBuf,
    pub cgroup_path: CgroupPath,
    /// Fork away and start a new session so the container outlives its creator.
    pub detach: bool,
    /// Also copy the container's output to the shim's own stdout/stderr (`berth run` in the
    /// foreground).
    pub attach: bool,
}

/// What the shim reports on [`SYNC_FD`], one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncMessage {
    Created { init_pid: i32 },
    Failed { code: i32, message: String },
}

impl SyncMessage {
    pub fn encode(&self) -> String {
        match self {
            SyncMessage::Created { init_pid } => format!("C{init_pid}\n"),
            SyncMessage::Failed { code, message } => {
                format!("E{code}\t{}\n", message.replace('\n', " "))
            }
        }
    }

    pub fn decode(line: &str) -> Option<Self> {
        let line = line.trim_end_matches('\n');
        if let Some(pid) = line.strip_prefix('C') {
            return Some(SyncMessage::Created {
                init_pid: pid.parse().ok()?,
            });
        }
        let (code, message) = line.strip_prefix('E')?.split_once('\t')?;
        Some(SyncMessage::Failed {
            code: code.parse().ok()?,
            message: message.to_string(),
        })
    }
}

/// When this process was started as a shim, run it and exit; otherwise return at once. Must be
/// the first thing `main` does, before any thread exists.
pub fn run_if_shim() {
    let mut args = std::env::args_os();
    if args.nth(1).as_deref() != Some(std::ffi::OsStr::new(SHIM_MARKER)) {
        return;
    }
    let code = match args
        .next()
        .map(|a| serde_json::from_slice::<ShimArgs>(a.as_encoded_bytes()))
    {
        Some(Ok(shim_args)) => supervise::run(shim_args),
        _ => {
            eprintln!("berth shim: invalid arguments");
            125
        }
    };
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_messages_round_trip() {
        for msg in [
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
        assert_eq!(SyncMessage::decode("X1"), None);
        assert_eq!(SyncMessage::decode("Cabc"), None);
    }
}
