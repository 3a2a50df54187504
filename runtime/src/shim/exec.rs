//! The exec shim: a fresh single-threaded process that puts one more process into a running
//! container and relays its output. See [`crate::container::exec`] for the phases.
//!
//! As runc's setns init and crun's exec: every namespace file of the container's init is
//! opened before any is joined (after joining the mount namespace `/proc` is the container's),
//! the pid namespace is joined by the shim itself (it only applies to children), and the forked
//! child waits until the shim has moved it into the container's cgroup before it joins the
//! cgroup namespace and the rest, then hardens itself exactly as the init does.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::CloneFlags;
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};
use serde::{Deserialize, Serialize};

use crate::cgroup::{self, CgroupPath};
use crate::container::config::ContainerConfig;
use crate::container::exec::ExecConfig;
use crate::container::state::ExitStatus;
use crate::process::fork::{fork_into_cgroup, open_cgroup};
use crate::process::init::{StatusMessage, apply_rlimits, reset_signals};
use crate::process::{
    CapabilityPlan, InitError, apply_identity, complete_env, find_executable, home_of,
    parse_capabilities,
};
use crate::syscall::{LinuxSyscall, Syscall, SyscallError};

/// What the runtime tells the exec shim, as JSON in `argv[2]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecArgs {
    /// The container's id, for messages.
    pub id: String,
    /// The container's config.json (capabilities, seccomp, user, env, rlimits).
    pub config_path: PathBuf,
    /// The container's init and its start time (so a recycled pid is never entered).
    pub init_pid: i32,
    pub init_start_time: u64,
    pub cgroup_root: PathBuf,
    /// The host's cgroup layout, as the runtime detected it.
    pub cgroup_layout: crate::cgroup::Layout,
    pub cgroup_path: CgroupPath,
    /// Bytes kept per stream; everything is relayed when `None`.
    pub output_limit: Option<usize>,
    pub exec: ExecConfig,
}

/// What the exec shim reports on [`super::SYNC_FD`], one line each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecReport {
    /// The process was exec'd; its host pid.
    Started { pid: i32 },
    /// The process could not be started: docker's exit code and why.
    Failed { code: i32, message: String },
    /// The timeout expired; the process was killed.
    TimedOut,
}

impl ExecReport {
    pub fn encode(&self) -> String {
        match self {
            ExecReport::Started { pid } => format!("P{pid}\n"),
            ExecReport::Failed { code, message } => {
                format!("E{code}\t{}\n", message.replace('\n', " "))
            }
            ExecReport::TimedOut => "T\n".into(),
        }
    }

    pub fn decode(line: &str) -> Option<Self> {
        let line = line.trim_end_matches('\n');
        if line == "T" {
            return Some(ExecReport::TimedOut);
        }
        if let Some(pid) = line.strip_prefix('P') {
            return Some(ExecReport::Started {
                pid: pid.parse().ok()?,
            });
        }
        let (code, message) = line.strip_prefix('E')?.split_once('\t')?;
        Some(ExecReport::Failed {
            code: code.parse().ok()?,
            message: message.to_string(),
        })
    }
}

/// The namespaces entered, in the order the child joins them; pid is joined by the shim.
/// Mount goes last among those the child joins: after it, paths are the container's.
pub const JOIN_ORDER: [(&str, CloneFlags); 6] = [
    ("pid", CloneFlags::CLONE_NEWPID),
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// Open `<proc>/<pid>/ns/*` for every namespace the process does not already share with us.
pub fn open_namespaces(
    proc_root: &Path,
    pid: i32,
) -> Result<Vec<(OwnedFd, CloneFlags)>, SyscallError> {
    let mut out = Vec::new();
    for (name, flag) in JOIN_ORDER {
        let theirs = proc_root.join(format!("{pid}/ns/{name}"));
        let ours = proc_root.join(format!("self/ns/{name}"));
        let fd = nix::fcntl::open(&theirs, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| SyscallError::path("open", &theirs, e))?;
        let same = match (nix::sys::stat::fstat(&fd), ours.metadata()) {
            (Ok(a), Ok(b)) => a.st_dev == b.dev() && a.st_ino == b.ino(),
            _ => false,
        };
        if !same {
            out.push((fd, flag));
        }
    }
    Ok(out)
}

/// Entry point; returns the exit code (the process's, 128+signal when killed).
pub(super) fn run(args: ExecArgs) -> i32 {
    // SAFETY: ignoring SIGPIPE installs no handler; a closed reader must not kill the shim.
    let _ = unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigIgn) };
    // SAFETY: the runtime placed our end of the report pipe at SYNC_FD for this process alone.
    let report_fd = unsafe { OwnedFd::from_raw_fd(super::SYNC_FD) };
    let _ = nix::fcntl::fcntl(
        &report_fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    let report = |r: &ExecReport| {
        let _ = write_all(report_fd.as_fd(), r.encode().as_bytes());
    };
    let syscall = LinuxSyscall;
    match start(&syscall, &args) {
        Ok(child) => {
            report(&ExecReport::Started {
                pid: child.pid.as_raw(),
            });
            let (code, timed_out) = child.relay(&args);
            if timed_out {
                report(&ExecReport::TimedOut);
            }
            code
        }
        Err(err) => {
            let code = err.exit_code();
            report(&ExecReport::Failed {
                code,
                message: err.message(),
            });
            code
        }
    }
}

/// Why the process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Setup(#[from] InitError),
    /// The child reported it (after the namespaces were joined).
    #[error("{message}")]
    Process { code: i32, message: String },
    #[error("container {0} is not running")]
    NotRunning(String),
}

impl ExecError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ExecError::Setup(e) => e.exit_code(),
            ExecError::Process { code, .. } => *code,
            ExecError::NotRunning(_) => 125,
        }
    }

    pub fn message(&self) -> String {
        match self {
            ExecError::Setup(e) => e.message(),
            ExecError::Process { message, .. } => message.clone(),
            ExecError::NotRunning(_) => self.to_string(),
        }
    }
}

/// The exec'd process as the shim sees it.
struct Child {
    pid: Pid,
    pidfd: OwnedFd,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    /// Signals the shim forwards to the process (Ctrl-C on `berth exec`, an agent's stop).
    signals: SignalFd,
}

/// Signals forwarded to the exec'd process.
const FORWARDED: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

fn kernel(call: &'static str, target: &'static str) -> impl Fn(Errno) -> InitError {
    move |e| InitError::Sync(SyscallError::new(call, target, e))
}

fn start(syscall: &dyn Syscall, args: &ExecArgs) -> Result<Child, ExecError> {
    let config: ContainerConfig = std::fs::read(&args.config_path)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|_| Errno::EINVAL))
        .map_err(|e| InitError::Sync(SyscallError::path("read", &args.config_path, e)))?;
    let not_running = || ExecError::NotRunning(args.id.clone());
    let joins = open_namespaces(Path::new("/proc"), args.init_pid).map_err(|e| {
        if e.errno == Errno::ENOENT {
            not_running()
        } else {
            ExecError::Setup(InitError::Namespace(e))
        }
    })?;
    // The files are open: if the init is still the one the runtime saw, they are its.
    if crate::container::process_start_time(args.init_pid) != Some(args.init_start_time) {
        return Err(not_running());
    }
    let cgroups = cgroup::manager(args.cgroup_layout.clone());
    let bad_cgroup = |_| {
        InitError::Sync(SyscallError::path(
            "cgroup",
            &args.cgroup_root,
            Errno::EINVAL,
        ))
    };
    let mut cgroup_join = cgroups.join_files(&args.cgroup_path).map_err(bad_cgroup)?;
    // On v2 the process is cloned straight into the container's cgroup (`process::fork`).
    let placement = match cgroups
        .placement_dir(&args.cgroup_path)
        .map_err(bad_cgroup)?
    {
        Some(dir) => Some(open_cgroup(&dir).map_err(|e| {
            if e == Errno::ENOENT {
                not_running()
            } else {
                ExecError::Setup(InitError::Sync(SyscallError::path("open", &dir, e)))
            }
        })?),
        None => None,
    };

    let (pid_joins, joins): (Vec<_>, Vec<_>) = joins
        .into_iter()
        .partition(|(_, flag)| *flag == CloneFlags::CLONE_NEWPID);
    for (fd, flag) in &pid_joins {
        syscall
            .setns(fd.as_fd(), *flag)
            .map_err(InitError::Namespace)?;
    }
    drop(pid_joins);

    // Blocked before the fork so none is lost; the child unblocks them all.
    let mut mask = SigSet::empty();
    FORWARDED.iter().for_each(|s| mask.add(*s));
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
        .map_err(kernel("sigprocmask", "forwarded signals"))?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(kernel("signalfd", "forwarded signals"))?;
    let pipe = |what| nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(kernel("pipe2", what));
    let status = pipe("status")?;
    let stdout = pipe("stdout")?;
    let stderr = pipe("stderr")?;
    let stdin: OwnedFd = File::open("/dev/null")
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
        .map_err(kernel("open", "/dev/null"))?
        .into();

    // SAFETY: the exec shim is single-threaded, so the child may run ordinary code after fork.
    let (fork, placed) = unsafe { fork_into_cgroup(placement.as_ref().map(|fd| fd.as_fd())) }
        .map_err(kernel("fork", "exec"))?;
    drop(placement);
    if placed {
        cgroup_join.clear();
    }
    let pid = match fork {
        ForkResult::Child => {
            drop((status.0, stdout.0, stderr.0, signals));
            let ctx = ChildContext {
                config: &config,
                exec: &args.exec,
                root: Path::new("/"),
                joins,
                cgroup_join,
                stdin,
                stdout: stdout.1,
                stderr: stderr.1,
            };
            let Err(err) = setup_and_exec(syscall, ctx);
            let message = StatusMessage::Failed {
                code: err.exit_code(),
                message: err.message(),
            };
            let _ = write_all(status.1.as_fd(), &message.encode());
            // SAFETY: _exit skips atexit handlers and stdio flushing that belong to the shim.
            unsafe { libc::_exit(err.exit_code()) }
        }
        ForkResult::Parent { child } => child,
    };
    drop((status.1, stdout.1, stderr.1, stdin, joins));

    let abort = |err: InitError| {
        let err = ExecError::from(err);
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
        err
    };
    let pidfd = syscall
        .pidfd_open(pid)
        .map_err(InitError::Sync)
        .map_err(abort)?;

    // The status pipe is CLOEXEC in the child: end of file without a message means exec'd.
    let mut buf = [0u8; 4096];
    let mut text = Vec::new();
    loop {
        match nix::unistd::read(&status.0, &mut buf) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    if let Some(StatusMessage::Failed { code, message }) = StatusMessage::decode(&text) {
        let _ = waitpid(pid, None);
        return Err(ExecError::Process { code, message });
    }
    Ok(Child {
        pid,
        pidfd,
        stdout: Some(stdout.0),
        stderr: Some(stderr.0),
        signals,
    })
}

impl Child {
    /// Relay output until the process exits and its pipes close (or a short grace has
    /// passed); kill it when the timeout expires. Returns its exit code and whether it timed
    /// out.
    fn relay(mut self, args: &ExecArgs) -> (i32, bool) {
        let deadline = args.exec.timeout.map(|t| Instant::now() + t);
        let mut limit = OutputLimit::new(args.output_limit);
        let mut exit: Option<WaitStatus> = None;
        let mut drain_until: Option<Instant> = None;
        let mut timed_out = false;
        let mut buf = [0u8; 8192];
        loop {
            if exit.is_some() && self.stdout.is_none() && self.stderr.is_none() {
                break;
            }
            let now = Instant::now();
            let wake = match (exit, deadline, drain_until) {
                (Some(_), _, until) => until,
                (None, deadline, _) => deadline,
            };
            let timeout = match wake {
                None => PollTimeout::NONE,
                Some(at) => {
                    let ms = at.saturating_duration_since(now).as_millis().min(60_000) as u16;
                    PollTimeout::from(ms)
                }
            };
            let sources: [Option<BorrowedFd<'_>>; 4] = [
                self.stdout.as_ref().map(|f| f.as_fd()),
                self.stderr.as_ref().map(|f| f.as_fd()),
                exit.is_none().then(|| self.pidfd.as_fd()),
                exit.is_none().then(|| self.signals.as_fd()),
            ];
            let mut fds = Vec::with_capacity(4);
            let mut which = Vec::with_capacity(4);
            for (i, fd) in sources.iter().enumerate() {
                if let Some(fd) = fd {
                    fds.push(PollFd::new(*fd, PollFlags::POLLIN));
                    which.push(i);
                }
            }
            let ready: Vec<usize> = match poll(&mut fds, timeout) {
                Ok(_) => fds
                    .iter()
                    .zip(&which)
                    .filter(|(fd, _)| fd.revents().is_some_and(|r| !r.is_empty()))
                    .map(|(_, i)| *i)
                    .collect(),
                Err(Errno::EINTR) => continue,
                Err(_) => break,
            };
            drop(fds);
            for source in ready {
                match source {
                    0 => read_into(&mut self.stdout, 1, &mut limit.stdout, &mut buf),
                    1 => read_into(&mut self.stderr, 2, &mut limit.stderr, &mut buf),
                    3 => self.forward_signals(),
                    _ => {
                        exit = waitpid(self.pid, None).ok();
                        // A background child may hold the pipes: a short grace, then go.
                        drain_until = Some(Instant::now() + Duration::from_millis(500));
                    }
                }
            }
            let now = Instant::now();
            if exit.is_none() && deadline.is_some_and(|d| now >= d) {
                // The whole process group: the process is a session leader (not yet reaped, so
                // its pid is not reused) and background children of a shell go with it.
                let _ = nix::sys::signal::killpg(self.pid, Signal::SIGKILL);
                let _ = LinuxSyscall.pidfd_send_signal(self.pidfd.as_fd(), Signal::SIGKILL);
                exit = waitpid(self.pid, None).ok();
                drain_until = Some(now + Duration::from_millis(200));
                timed_out = true;
            }
            if exit.is_some() && drain_until.is_some_and(|d| now >= d) {
                break;
            }
        }
        let status = ExitStatus::from_wait(exit.unwrap_or(WaitStatus::StillAlive), false);
        (status.code, timed_out)
    }
}

impl Child {
    fn forward_signals(&mut self) {
        while let Ok(Some(info)) = self.signals.read_signal() {
            if let Ok(signal) = Signal::try_from(info.ssi_signo as i32) {
                let _ = LinuxSyscall.pidfd_send_signal(self.pidfd.as_fd(), signal);
            }
        }
    }
}

/// Bytes each stream may still relay.
struct OutputLimit {
    stdout: Option<usize>,
    stderr: Option<usize>,
}

impl OutputLimit {
    fn new(limit: Option<usize>) -> Self {
        Self {
            stdout: limit,
            stderr: limit,
        }
    }
}

/// Read what `slot` has and write at most `left` bytes of it to `out` (all with `None`).
fn read_into(slot: &mut Option<OwnedFd>, out: i32, left: &mut Option<usize>, buf: &mut [u8]) {
    let Some(fd) = slot else { return };
    match nix::unistd::read(&*fd, buf) {
        Ok(0) => *slot = None,
        Ok(n) => {
            let keep = left.map_or(n, |l| l.min(n));
            if let Some(l) = left {
                *l -= keep;
            }
            if keep > 0 {
                // SAFETY: fds 1 and 2 stay open for the shim's whole life.
                let _ = write_all(unsafe { BorrowedFd::borrow_raw(out) }, &buf[..keep]);
            }
        }
        Err(Errno::EINTR | Errno::EAGAIN) => {}
        Err(_) => *slot = None,
    }
}

fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> Result<(), Errno> {
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Everything the exec'd child needs; fds are the child's copies.
pub struct ChildContext<'a> {
    pub config: &'a ContainerConfig,
    pub exec: &'a ExecConfig,
    /// `/`, once in the container's mount namespace; a tempdir in tests.
    pub root: &'a Path,
    pub joins: Vec<(OwnedFd, CloneFlags)>,
    /// [`crate::cgroup::CgroupManager::join_files`] of the container's cgroup.
    pub cgroup_join: Vec<PathBuf>,
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// The process after exec, as resolved inside the container.
#[derive(Debug)]
pub struct Prepared {
    pub path: CString,
    pub args: Vec<CString>,
    pub env: Vec<CString>,
}

/// Join the namespaces and take the container's identity and restrictions; the kernel
/// calls go through `syscall`. Order as the init's: seccomp before the capabilities go when
/// no_new_privs is off, else after no_new_privs.
pub fn enter_and_harden(
    syscall: &dyn Syscall,
    config: &ContainerConfig,
    exec: &ExecConfig,
    root: &Path,
    joins: &[(OwnedFd, CloneFlags)],
) -> Result<Prepared, InitError> {
    for (fd, flag) in joins {
        syscall
            .setns(fd.as_fd(), *flag)
            .map_err(InitError::Namespace)?;
    }
    apply_rlimits(syscall, &config.process.rlimits)?;
    let user = exec.user.as_ref().unwrap_or(&config.process.user);
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| config.effective_hostname());
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap_or_default();
    let base_env = exec.env.as_ref().unwrap_or(&config.process.env);
    let env = complete_env(base_env, &hostname, home_of(&passwd, user.uid), user.uid);
    let command = exec.args.first().map(String::as_str).unwrap_or_default();
    let executable = find_executable(root, command, &env)?;
    let cwd = exec.cwd.as_ref().unwrap_or(&config.process.cwd);

    let caps = parse_capabilities(&config.process.capabilities)?;
    let filter = config
        .process
        .seccomp
        .then(crate::process::seccomp::default_filter)
        .flatten();
    let nnp = config.process.no_new_privileges;
    if let (Some(filter), false) = (&filter, nnp) {
        syscall.set_seccomp(filter).map_err(InitError::Seccomp)?;
    }
    apply_identity(syscall, user, &CapabilityPlan::new(caps))?;
    syscall.chdir(cwd).map_err(|source| InitError::Cwd {
        path: cwd.clone(),
        source,
    })?;
    if nnp {
        syscall
            .set_no_new_privs()
            .map_err(InitError::Capabilities)?;
        if let Some(filter) = &filter {
            syscall.set_seccomp(filter).map_err(InitError::Seccomp)?;
        }
    }
    let to_c = |s: &[u8]| CString::new(s).unwrap_or_default();
    Ok(Prepared {
        path: to_c(executable.as_os_str().as_bytes()),
        args: exec.args.iter().map(|a| to_c(a.as_bytes())).collect(),
        env: env.iter().map(|e| to_c(e.as_bytes())).collect(),
    })
}

fn setup_and_exec(
    syscall: &dyn Syscall,
    ctx: ChildContext<'_>,
) -> Result<std::convert::Infallible, InitError> {
    // Berth's binary about to enter the container: not dumpable, as the init (see there).
    let _ = nix::sys::prctl::set_dumpable(false);
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    for (fd, target) in [(&ctx.stdin, 0), (&ctx.stdout, 1), (&ctx.stderr, 2)] {
        // SAFETY: dup2 onto a standard fd this process owns; the source is a valid fd.
        let rc = unsafe { libc::dup2(fd.as_raw_fd(), target) };
        Errno::result(rc).map_err(|e| InitError::Sync(SyscallError::new("dup2", target, e)))?;
    }
    // Into the container's cgroup (every v1 hierarchy) before it runs anything else.
    crate::cgroup::join_self(&ctx.cgroup_join).map_err(InitError::Cgroup)?;
    let _ = nix::unistd::setsid();
    let prepared = enter_and_harden(syscall, ctx.config, ctx.exec, ctx.root, &ctx.joins)?;
    drop(ctx.joins);

    reset_signals();
    // SAFETY: umask only changes this process's file creation mask.
    unsafe { libc::umask(0o022) };
    // No fd of berth's may reach the exec'd process: everything above stderr CLOEXEC.
    // SAFETY: close_range with CLOEXEC only sets flags on this process's descriptors.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    Errno::result(rc).map_err(kernel("close_range", "3.."))?;
    // Should the shim die (SIGKILL), the process goes too instead of running on unseen. Set
    // last: changing credentials clears it.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(kernel("prctl", "pdeathsig"))?;
    let errno = nix::unistd::execve(&prepared.path, &prepared.args, &prepared.env).unwrap_err();
    Err(InitError::Exec {
        command: ctx.exec.args.first().cloned().unwrap_or_default(),
        errno,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::config::User;
    use crate::syscall::{Call, RecordingSyscall};

    #[test]
    fn reports_round_trip() {
        for report in [
            ExecReport::Started { pid: 77 },
            ExecReport::TimedOut,
            ExecReport::Failed {
                code: 127,
                message: "exec: \"nope\": executable file not found in $PATH".into(),
            },
        ] {
            assert_eq!(ExecReport::decode(&report.encode()), Some(report));
        }
        assert_eq!(ExecReport::decode("Px"), None);
        assert_eq!(ExecReport::decode("X"), None);
    }

    #[test]
    fn namespaces_we_share_are_not_joined() {
        // Our own process shares every namespace with itself: nothing to join.
        let own = open_namespaces(Path::new("/proc"), std::process::id() as i32).unwrap();
        assert!(own.is_empty());
        let missing = open_namespaces(Path::new("/proc"), i32::MAX).unwrap_err();
        assert_eq!(missing.errno, Errno::ENOENT);
    }

    fn rootfs() -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("bin/sh"), "").unwrap();
        std::fs::set_permissions(
            dir.path().join("bin/sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        dir
    }

    #[test]
    fn exec_joins_first_then_hardens_like_the_init() {
        let root = rootfs();
        let syscall = RecordingSyscall::new();
        let mut config =
            ContainerConfig::new("c".parse().unwrap(), vec!["/l".into()], vec!["top".into()]);
        config.process.env = vec!["A=1".into()];
        let joins: Vec<(OwnedFd, CloneFlags)> = [CloneFlags::CLONE_NEWNET, CloneFlags::CLONE_NEWNS]
            .into_iter()
            .map(|f| (File::open("/dev/null").unwrap().into(), f))
            .collect();
        let exec = ExecConfig {
            user: Some(User {
                uid: 33,
                gid: 33,
                additional_gids: vec![],
            }),
            cwd: Some("/tmp".into()),
            ..ExecConfig::new(["sh", "-c", "id"])
        };
        let prepared = enter_and_harden(&syscall, &config, &exec, root.path(), &joins).unwrap();
        assert_eq!(prepared.path.to_str().unwrap(), "/bin/sh");
        assert_eq!(prepared.args.len(), 3);
        let env: Vec<&str> = prepared.env.iter().map(|e| e.to_str().unwrap()).collect();
        assert!(env.contains(&"A=1"), "container env by default: {env:?}");
        assert!(env.contains(&"HOME=/var/www"), "{env:?}");

        let calls = syscall.calls();
        let setns: Vec<usize> = calls
            .iter()
            .enumerate()
            .filter(|(_, c)| matches!(c, Call::Setns { .. }))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(setns, [0, 1], "namespaces first: {calls:?}");
        let position = |want: &dyn Fn(&Call) -> bool| calls.iter().position(want).unwrap();
        let ids = position(&|c| matches!(c, Call::SetIds { .. }));
        let nnp = position(&|c| matches!(c, Call::NoNewPrivs));
        let seccomp = position(&|c| matches!(c, Call::Seccomp(_)));
        let chdir = position(&|c| matches!(c, Call::Chdir(p) if p == Path::new("/tmp")));
        assert!(ids < chdir && chdir < nnp && nnp < seccomp, "{calls:?}");
        assert!(matches!(
            &calls[ids],
            Call::SetIds { uid, .. } if uid.as_raw() == 33
        ));
        assert!(calls.iter().any(|c| matches!(c, Call::DropBounding(_))));
    }

    #[test]
    fn missing_executable_is_docker_127_and_nothing_is_dropped_yet() {
        let root = rootfs();
        let syscall = RecordingSyscall::new();
        let config =
            ContainerConfig::new("c".parse().unwrap(), vec!["/l".into()], vec!["top".into()]);
        let err = enter_and_harden(
            &syscall,
            &config,
            &ExecConfig::new(["nope"]),
            root.path(),
            &[],
        )
        .unwrap_err();
        assert_eq!(err.exit_code(), 127);
        assert_eq!(
            err.message(),
            "exec: \"nope\": executable file not found in $PATH"
        );
        assert!(syscall.calls().is_empty());
    }

    #[test]
    fn output_is_bounded_per_stream() {
        let mut left = Some(4);
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        write_all(write.as_fd(), b"abcdef").unwrap();
        let mut slot = Some(read);
        let mut buf = [0u8; 16];
        // Relayed to our stderr: the first four bytes only.
        read_into(&mut slot, 2, &mut left, &mut buf);
        assert_eq!(left, Some(0));
        drop(write);
        read_into(&mut slot, 2, &mut left, &mut buf);
        assert!(slot.is_none(), "end of file closes the stream");
    }
}
