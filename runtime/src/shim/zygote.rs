//! The zygote: one small single-threaded process, started once by a multi-threaded caller (the
//! daemon), that forks the per-container helpers (the shim, the sandbox shim) on request.
//!
//! Spawning a helper straight from the daemon costs a fork of a large multi-threaded process
//! (its page tables copied, and every later write of the daemon a copy-on-write fault with a TLB
//! shootdown across CPUs) and an exec of berth's binary (mapping and relocating it, about 1 ms
//! and 0.7 MB of private memory per helper). A fork of the zygote costs neither: it is small,
//! single-threaded, and its children share its relocated pages.
//!
//! ```text
//!  daemon ──SOCK_SEQPACKET──► zygote ──fork──► helper (shim: forks the detached shim, exits)
//!    request: "<marker>\0<json>" + fds [stdin, stdout, stderr, report, (sync)]
//!    report pipe: "p<pid>\n" after the fork, "x<code>\n" or "s<signal>\n" once it is reaped
//! ```
//! The helper runs exactly what a re-exec with the same marker would
//! ([`super::dispatch`]), with the same standard fds and the sync pipe on [`SYNC_FD`]. The
//! zygote exits when the caller's end of the socket closes; helpers it forked live on.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, IoSlice, IoSliceMut, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use super::SYNC_FD;

/// `argv[1]` that turns the berth binary into the zygote.
pub const ZYGOTE_MARKER: &str = "__berth-zygote";

/// The fd the zygote receives its socket on.
const SOCKET_FD: RawFd = 3;
/// The largest request: the JSON arguments of a helper are well under this.
const MAX_REQUEST: usize = 64 * 1024;
/// stdin, stdout, stderr, report and the optional sync pipe.
const MAX_FDS: usize = 5;

/// The standard fds and the sync pipe a helper gets.
#[derive(Debug, Clone, Copy)]
pub struct HelperFds<'a> {
    pub stdin: BorrowedFd<'a>,
    pub stdout: BorrowedFd<'a>,
    pub stderr: BorrowedFd<'a>,
    /// Becomes the helper's [`SYNC_FD`].
    pub sync: Option<BorrowedFd<'a>>,
}

/// The caller's handle on the zygote: started on first use, restarted if it died.
#[derive(Debug)]
pub struct Zygote {
    exe: PathBuf,
    conn: Mutex<Option<Connection>>,
}

#[derive(Debug)]
struct Connection {
    /// `None` only while dropping.
    socket: Option<OwnedFd>,
    process: Child,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Closing the socket ends the zygote; then reap it.
        drop(self.socket.take());
        let _ = self.process.wait();
    }
}

/// A helper forked by the zygote.
#[derive(Debug)]
pub struct ZygoteChild {
    pid: Pid,
    report: File,
}

impl ZygoteChild {
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Wait until the helper exits (the zygote reaps it and reports how).
    pub fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let mut reader = BufReader::new(&self.report);
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Err(std::io::Error::other(
                    "the zygote ended before the helper did",
                ));
            }
            if let Some(status) = parse_exit(line.trim_end()) {
                return Ok(status);
            }
        }
    }
}

fn parse_exit(line: &str) -> Option<ExitStatus> {
    if let Some(code) = line.strip_prefix('x') {
        return Some(ExitStatus::from_raw(code.parse::<i32>().ok()? << 8));
    }
    Some(ExitStatus::from_raw(line.strip_prefix('s')?.parse().ok()?))
}

impl Zygote {
    /// A zygote that runs `exe` (berth's binary, which must call [`super::run_if_shim`] first
    /// thing) with [`ZYGOTE_MARKER`] when first needed.
    pub fn new(exe: impl Into<PathBuf>) -> Self {
        Self {
            exe: exe.into(),
            conn: Mutex::new(None),
        }
    }

    /// Fork a helper that runs as `exe <marker> <json>` would, with `fds`. Restarts the zygote
    /// once if it is gone.
    pub fn spawn(
        &self,
        marker: &str,
        json: &str,
        fds: HelperFds<'_>,
    ) -> std::io::Result<ZygoteChild> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        for attempt in 0..2 {
            if conn.is_none() {
                *conn = Some(self.start()?);
            }
            let socket = conn
                .as_ref()
                .and_then(|c| c.socket.as_ref())
                .map(|s| s.as_fd())
                .expect("set above");
            match request(socket, marker, json, fds) {
                Ok(child) => return Ok(child),
                Err(err) if attempt == 0 => {
                    tracing::debug!(%err, "zygote gone; starting a new one");
                    *conn = None;
                }
                Err(err) => return Err(err),
            }
        }
        unreachable!("the second attempt returns")
    }

    fn start(&self) -> std::io::Result<Connection> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        let raw = theirs.as_raw_fd();
        let mut command = Command::new(&self.exe);
        command
            .arg(ZYGOTE_MARKER)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        // SAFETY: runs between fork and exec and only calls dup2, which is async-signal-safe;
        // dup2 also clears CLOEXEC on the new descriptor.
        unsafe {
            command.pre_exec(move || {
                if libc::dup2(raw, SOCKET_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let process = command.spawn()?;
        drop(theirs);
        Ok(Connection {
            socket: Some(ours),
            process,
        })
    }
}

/// One request: send it, then read the helper's pid from the report pipe.
fn request(
    socket: BorrowedFd<'_>,
    marker: &str,
    json: &str,
    fds: HelperFds<'_>,
) -> std::io::Result<ZygoteChild> {
    let (report_read, report_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let mut message = Vec::with_capacity(marker.len() + 1 + json.len());
    message.extend_from_slice(marker.as_bytes());
    message.push(0);
    message.extend_from_slice(json.as_bytes());
    let mut raw = vec![
        fds.stdin.as_raw_fd(),
        fds.stdout.as_raw_fd(),
        fds.stderr.as_raw_fd(),
        report_write.as_raw_fd(),
    ];
    raw.extend(fds.sync.map(|fd| fd.as_raw_fd()));
    let rights = [ControlMessage::ScmRights(&raw)];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(&message)],
        &rights,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    drop(report_write);

    let mut report = File::from(report_read);
    let mut first = Vec::with_capacity(16);
    let mut byte = [0u8; 1];
    while !first.ends_with(b"\n") {
        match report.read(&mut byte) {
            Ok(0) => return Err(std::io::Error::other("the zygote did not fork the helper")),
            Ok(_) => first.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let line = String::from_utf8_lossy(&first);
    let pid = line
        .trim_end()
        .strip_prefix('p')
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("zygote: {}", line.trim_end())))?;
    Ok(ZygoteChild {
        pid: Pid::from_raw(pid),
        report,
    })
}

/// The zygote's main loop. Returns when the caller's end of the socket closes.
pub(super) fn serve() -> i32 {
    // Whatever the caller leaked to us is not ours to keep open.
    close_from(SOCKET_FD as u32 + 1);
    let _ = nix::sys::prctl::set_name(c"berth-zygote");
    // SAFETY: the caller put the socket on SOCKET_FD (Zygote::start) and nothing else owns it.
    let socket = unsafe { OwnedFd::from_raw_fd(SOCKET_FD) };
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    let Ok(old_mask) = sigprocmask_swap(&mask) else {
        return 125;
    };
    let Ok(children) = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
    else {
        return 125;
    };
    let mut reports: HashMap<Pid, OwnedFd> = HashMap::new();
    let mut buf = vec![0u8; MAX_REQUEST];
    // What starting up touched is not needed to fork.
    super::memory::release_clean_file_pages();
    loop {
        let mut polled = [
            PollFd::new(socket.as_fd(), PollFlags::POLLIN),
            PollFd::new(children.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut polled, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return 125,
        }
        let request_ready = polled[0].any().unwrap_or(false);
        let child_ready = polled[1].any().unwrap_or(false);
        if child_ready {
            while let Ok(Some(_)) = children.read_signal() {}
            reap(&mut reports);
        }
        if request_ready {
            match receive(&socket, &mut buf) {
                Ok(Some((len, fds))) => fork_helper(
                    &buf[..len],
                    fds,
                    &socket,
                    &children,
                    &old_mask,
                    &mut reports,
                ),
                Ok(None) => return 0,
                Err(Errno::EINTR | Errno::EAGAIN) => {}
                Err(_) => return 0,
            }
        }
    }
}

fn sigprocmask_swap(mask: &SigSet) -> Result<SigSet, Errno> {
    let mut old = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(mask), Some(&mut old))?;
    Ok(old)
}

/// One request: its bytes' length and its fds; `None` at end of file.
fn receive(socket: &OwnedFd, buf: &mut [u8]) -> Result<Option<(usize, Vec<OwnedFd>)>, Errno> {
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            // SAFETY: SCM_RIGHTS fds are new descriptors of this process, owned by no one else.
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    let len = msg.bytes;
    if len == 0 && fds.is_empty() {
        return Ok(None);
    }
    Ok(Some((len, fds)))
}

fn fork_helper(
    request: &[u8],
    mut fds: Vec<OwnedFd>,
    socket: &OwnedFd,
    children: &SignalFd,
    old_mask: &SigSet,
    reports: &mut HashMap<Pid, OwnedFd>,
) {
    if fds.len() < 4 {
        return; // Malformed: dropping the fds closes the report pipe, the caller sees an error.
    }
    let sync = (fds.len() > 4).then(|| fds.remove(4));
    let report = fds.remove(3);
    let (marker, json) = match request.iter().position(|b| *b == 0) {
        Some(at) => (&request[..at], &request[at + 1..]),
        None => {
            let _ = nix::unistd::write(&report, b"emalformed request\n");
            return;
        }
    };
    // SAFETY: the zygote is single-threaded, so the child may run ordinary code after fork.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(old_mask), None);
            drop(report);
            let _ = (socket, children); // Closed with everything else below.
            for (fd, target) in fds.iter().zip([0, 1, 2]) {
                // SAFETY: dup2 onto a standard fd of this process from a valid received fd.
                if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
                    // SAFETY: _exit ends the forked child at once.
                    unsafe { libc::_exit(125) }
                }
            }
            if let Some(sync) = &sync {
                // SAFETY: as above; SYNC_FD was the socket, closed above.
                if unsafe { libc::dup2(sync.as_raw_fd(), SYNC_FD) } < 0 {
                    // SAFETY: _exit ends the forked child at once.
                    unsafe { libc::_exit(125) }
                }
            }
            let keep = if sync.is_some() { SYNC_FD } else { 2 };
            // Nothing of the zygote's may stay open in the helper: the other helpers' report
            // pipes (their callers wait for end of file), the socket, the received fds.
            close_from(keep as u32 + 1);
            std::mem::forget((fds, sync));
            let marker = String::from_utf8_lossy(marker);
            // `ps` shows the zygote's command line for its children: the name tells them apart.
            let name = match marker.as_ref() {
                super::SHIM_MARKER => c"berth-shim",
                super::EXEC_MARKER => c"berth-exec",
                _ => c"berth-helper",
            };
            let _ = nix::sys::prctl::set_name(name);
            let code = super::dispatch(&marker, json).unwrap_or(125);
            std::process::exit(code)
        }
        Ok(ForkResult::Parent { child }) => {
            let _ = nix::unistd::write(&report, format!("p{child}\n").as_bytes());
            reports.insert(child, report);
        }
        Err(e) => {
            let _ = nix::unistd::write(&report, format!("efork: {e}\n").as_bytes());
        }
    }
}

/// Close every fd from `first` up.
fn close_from(first: u32) {
    // SAFETY: close_range only closes this process's descriptors; the callers own none of
    // them any more (or forget their handles).
    unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0) };
}

/// Reap every exited helper and report its status.
fn reap(reports: &mut HashMap<Pid, OwnedFd>) {
    loop {
        let (pid, line) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid, format!("x{code}\n")),
            Ok(WaitStatus::Signaled(pid, signal, _)) => (pid, format!("s{}\n", signal as i32)),
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => continue,
        };
        if let Some(report) = reports.remove(&pid) {
            let _ = nix::unistd::write(&report, line.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_reports_parse() {
        assert_eq!(parse_exit("x0").map(|s| s.code()), Some(Some(0)));
        assert_eq!(parse_exit("x125").map(|s| s.code()), Some(Some(125)));
        assert_eq!(parse_exit("s9").map(|s| s.signal()), Some(Some(9)));
        assert_eq!(parse_exit("p42"), None);
        assert_eq!(parse_exit("xabc"), None);
    }
}
