//! The shim's work, from cgroup creation to the recorded exit. See the module doc of
//! [`crate::shim`] for the phases.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::CloneFlags;
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::stat::Mode;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use super::{ShimArgs, SyncMessage};
use crate::cgroup::{self, CgroupError, CgroupManager};
use crate::container::RuntimeError;
use crate::container::config::{ContainerConfig, NamespaceMode};
use crate::container::state::{ExitStatus, State, StateError};
use crate::logs::{CriLogWriter, LogError, Stream};
use crate::process::fork::{fork_into_cgroup, open_cgroup};
use crate::process::init::{self, InitContext, StatusMessage};
use crate::syscall::{LinuxSyscall, Syscall, SyscallError};

/// Why the shim could not set the container up.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("cannot read container config {path}")]
    Config {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("container {id}: cgroup setup")]
    Cgroup {
        id: String,
        #[source]
        source: CgroupError,
    },
    #[error("container {id}: {what}")]
    Kernel {
        id: String,
        what: &'static str,
        #[source]
        source: SyscallError,
    },
    #[error("container log")]
    Log(#[source] LogError),
    #[error("{message}")]
    Init { code: i32, message: String },
    #[error("container state")]
    State(#[source] StateError),
}

impl ShimError {
    fn exit_code(&self) -> i32 {
        match self {
            ShimError::Init { code, .. } => *code,
            _ => 125,
        }
    }

    fn message(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(err) = source {
            text.push_str(": ");
            text.push_str(&err.to_string());
            source = err.source();
        }
        text
    }
}

/// Signals the shim proxies to the container's init.
const FORWARDED: [Signal; 6] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

fn kernel<'i>(id: &'i str, what: &'static str) -> impl Fn(SyscallError) -> ShimError + 'i {
    move |source| ShimError::Kernel {
        id: id.to_string(),
        what,
        source,
    }
}

fn errno<'t>(call: &'static str, target: &'t str) -> impl Fn(Errno) -> SyscallError + 't {
    move |e| SyscallError::new(call, target, e)
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

/// Whether this process has a single thread, so that a forked child may run ordinary Rust
/// code. Asked of the kernel at each call: a thread started since would make it false. The link
/// count of `/proc/self/task` is 2 plus the number of threads (one `statx`, where reading
/// `/proc/self/status` makes the kernel format all of it).
pub(crate) fn single_threaded() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/task").is_ok_and(|task| task.nlink() == 3)
}

/// Run the shim in a child forked from this process instead of a re-executed binary: it saves
/// the exec and the dynamic relocation of berth's binary. The child gets what a spawned shim
/// gets: stdin (and unless `attach` stdout/stderr) on /dev/null, `sync` at [`super::SYNC_FD`],
/// no other descriptor, an empty signal mask. The caller must be single-threaded
/// ([`single_threaded`]); the child exits with the shim's exit code and never returns.
pub(crate) fn fork(
    args: &ShimArgs,
    config: &ContainerConfig,
    sync: &OwnedFd,
) -> Result<Pid, Errno> {
    let null = nix::fcntl::open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())?;
    // SAFETY: the caller checked that this process is single-threaded, so the child may run
    // ordinary code; it never returns into the caller's frames (it ends in _exit).
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            // Copies above the standard fds and SYNC_FD first, so no dup2 below overwrites a
            // source; close_range drops them again.
            // SAFETY: fcntl(F_DUPFD_CLOEXEC) only creates descriptors in this child.
            let (sync, null) = unsafe {
                (
                    libc::fcntl(sync.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10),
                    libc::fcntl(null.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10),
                )
            };
            let mut moves = vec![(sync, super::SYNC_FD), (null, 0)];
            if !args.attach {
                moves.extend([(null, 1), (null, 2)]);
            }
            for (source, target) in moves {
                // SAFETY: dup2 between descriptors of this child; it also clears CLOEXEC.
                if source < 0 || unsafe { libc::dup2(source, target) } < 0 {
                    // SAFETY: _exit ends the child without running the caller's cleanup.
                    unsafe { libc::_exit(125) }
                }
            }
            // SAFETY: closes this child's copies of the caller's descriptors (lock files,
            // signalfds, pipes) so that none lives on in the shim.
            let closed = unsafe {
                libc::syscall(
                    libc::SYS_close_range,
                    (super::SYNC_FD + 1) as u32,
                    u32::MAX,
                    0u32,
                )
            };
            if closed < 0 {
                // SAFETY: as above; the caller sees the shim lost.
                unsafe { libc::_exit(125) }
            }
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
            let code = run(args.clone(), Some(config.clone()));
            // SAFETY: _exit skips the caller's atexit handlers and buffered stdout, which
            // belong to the parent.
            unsafe { libc::_exit(code) }
        }
    }
}

/// Entry point; returns the shim's exit code (the container's). `config` is the container's
/// configuration when the caller has it at hand (a forked shim), else it is read from
/// `config.json`.
pub(super) fn run(args: ShimArgs, config: Option<ContainerConfig>) -> i32 {
    // SAFETY: ignoring SIGPIPE installs no handler; a closed terminal must not kill the shim.
    let _ = unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigIgn) };
    // SAFETY: the runtime placed our end of the sync pipe at SYNC_FD for this process alone.
    let sync = unsafe { OwnedFd::from_raw_fd(super::SYNC_FD) };
    let _ = nix::fcntl::fcntl(
        &sync,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );

    if args.detach {
        // SAFETY: the shim is single-threaded; the parent only calls _exit.
        match unsafe { nix::unistd::fork() } {
            Ok(ForkResult::Parent { .. }) => {
                // SAFETY: _exit ends the intermediate process without running any cleanup.
                unsafe { libc::_exit(0) }
            }
            Ok(ForkResult::Child) => {}
            Err(e) => {
                report(
                    &sync,
                    &SyncMessage::Failed {
                        code: 125,
                        message: format!("fork shim: {e}"),
                    },
                );
                return 125;
            }
        }
    }
    // A session of its own: the terminal's signals reach `berth run`, not the shim.
    let _ = nix::unistd::setsid();
    let _ = nix::sys::prctl::set_child_subreaper(true);

    let syscall = LinuxSyscall;
    let mut shim = match Shim::start(&syscall, &args, config, sync) {
        Ok(shim) => shim,
        Err(code) => return code,
    };
    shim.supervise()
}

fn report(sync: &OwnedFd, message: &SyncMessage) {
    let _ = write_all(sync.as_fd(), message.encode().as_bytes());
}

/// A running shim after the init reported ready.
struct Shim<'a> {
    args: &'a ShimArgs,
    config: ContainerConfig,
    cgroups: Box<dyn CgroupManager>,
    syscall: &'a dyn Syscall,
    state: State,
    init: Pid,
    pidfd: Option<OwnedFd>,
    status: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    signals: SignalFd,
    log: CriLogWriter,
    start_failure: Option<(i32, String)>,
    /// The foreground caller's report pipe, told the exit code as soon as it is recorded.
    sync: Option<OwnedFd>,
    /// The container's mount namespace, let go of after the exit is reported.
    mount_ns: Option<OwnedFd>,
}

/// The parent's and the child's ends of the pipes the init needs (read end first).
struct Pipes {
    status: (OwnedFd, OwnedFd),
    stdout: (OwnedFd, OwnedFd),
    stderr: (OwnedFd, OwnedFd),
    /// Shim to init: the cgroup exists (one byte; end of file without it: it could not be made).
    cgroup_ready: (OwnedFd, OwnedFd),
}

impl<'a> Shim<'a> {
    /// Set everything up and fork the init; report the outcome on `sync`. On failure the
    /// error has been reported and the cgroup removed; the exit code is returned.
    fn start(
        syscall: &'a dyn Syscall,
        args: &'a ShimArgs,
        config: Option<ContainerConfig>,
        sync: OwnedFd,
    ) -> Result<Self, i32> {
        let mut cgroups = None;
        match Self::try_start(syscall, args, config, &mut cgroups) {
            Ok(mut shim) => {
                report(
                    &sync,
                    &SyncMessage::Created {
                        init_pid: shim.init.as_raw(),
                    },
                );
                // A caller in the foreground waits for the exit on the same pipe.
                if !args.detach {
                    shim.sync = Some(sync);
                }
                Ok(shim)
            }
            Err(err) => {
                let code = err.exit_code();
                report(
                    &sync,
                    &SyncMessage::Failed {
                        code,
                        message: err.message(),
                    },
                );
                if let Some(cgroups) = cgroups {
                    let _ = cgroups.delete(&args.cgroup_path);
                }
                Err(code)
            }
        }
    }

    fn try_start(
        syscall: &'a dyn Syscall,
        args: &'a ShimArgs,
        config: Option<ContainerConfig>,
        cgroups_out: &mut Option<Box<dyn CgroupManager>>,
    ) -> Result<Self, ShimError> {
        let config = match config {
            Some(config) => config,
            None => {
                let config_path = args.container_dir.join("config.json");
                std::fs::read(&config_path)
                    .and_then(|bytes| serde_json::from_slice(&bytes).map_err(std::io::Error::other))
                    .map_err(|source| ShimError::Config {
                        path: config_path,
                        source,
                    })?
            }
        };
        let id = config.id.to_string();

        let cgroup_err = |source| ShimError::Cgroup {
            id: id.clone(),
            source,
        };
        let pipe = |what| {
            nix::unistd::pipe2(OFlag::O_CLOEXEC)
                .map_err(errno("pipe2", what))
                .map_err(kernel(&id, "pipes"))
        };
        let pipes = Pipes {
            status: pipe("status")?,
            stdout: pipe("stdout")?,
            stderr: pipe("stderr")?,
            cgroup_ready: pipe("cgroup")?,
        };
        let stdin: OwnedFd = File::open("/dev/null")
            .map_err(|e| {
                SyscallError::new(
                    "open",
                    "/dev/null",
                    Errno::from_raw(e.raw_os_error().unwrap_or(0)),
                )
            })
            .map_err(kernel(&id, "stdin"))?
            .into();

        let start_fifo = if args.start {
            None
        } else {
            Some(open_start_fifo(&args.state_dir).map_err(kernel(&id, "start fifo"))?)
        };

        let joins = open_joins(&config).map_err(kernel(&id, "namespaces"))?;
        match &config.namespaces.pid {
            NamespaceMode::New => syscall
                .unshare(CloneFlags::CLONE_NEWPID)
                .map_err(kernel(&id, "pid namespace"))?,
            NamespaceMode::Join(path) => {
                let fd = open_ns(path).map_err(kernel(&id, "pid namespace"))?;
                syscall
                    .setns(fd.as_fd(), CloneFlags::CLONE_NEWPID)
                    .map_err(kernel(&id, "pid namespace"))?;
            }
            NamespaceMode::Host => {}
        }

        // Block the forwarded signals so they arrive on the signalfd; the init unblocks them.
        let mut mask = SigSet::empty();
        FORWARDED.iter().for_each(|s| mask.add(*s));
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
            .map_err(errno("sigprocmask", "forwarded signals"))
            .map_err(kernel(&id, "signals"))?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(errno("signalfd", "forwarded signals"))
            .map_err(kernel(&id, "signals"))?;

        // The cgroup is made after the fork, while the init unshares its namespaces and makes
        // the overlay directories. On v2, its directory is made first and the init cloned
        // straight into it, which spares the init the grace period of a `cgroup.procs` write
        // (`process::fork`). On v1 the layout is detected after the fork too, unless the
        // runtime knew it already (`berth run` does not).
        let known = match args.cgroup_layout.clone() {
            Some(layout) => Some(cgroup::manager(layout)),
            None if cgroup::root_is_unified(&args.cgroup_root) => Some(
                cgroup::detect(&args.cgroup_root, Path::new("/proc/self/mountinfo"))
                    .map_err(cgroup_err)?,
            ),
            None => None,
        };
        let mut placement = None;
        if let Some(cgroups) = known {
            let cgroups = cgroups_out.insert(cgroups);
            if let Some(dir) = cgroups
                .create_for_placement(&args.cgroup_path)
                .map_err(cgroup_err)?
            {
                let fd = open_cgroup(&dir)
                    .map_err(|e| kernel(&id, "cgroup")(SyscallError::path("open", &dir, e)))?;
                placement = Some(fd);
            }
        }

        // SAFETY: the shim is single-threaded, so the child may run ordinary code after fork.
        let (fork, placed) = unsafe { fork_into_cgroup(placement.as_ref().map(|fd| fd.as_fd())) }
            .map_err(errno("fork", "init"))
            .map_err(kernel(&id, "fork"))?;
        let init = match fork {
            ForkResult::Child => {
                drop((
                    pipes.status.0,
                    pipes.stdout.0,
                    pipes.stderr.0,
                    pipes.cgroup_ready.1,
                    signals,
                    placement,
                ));
                let ctx = InitContext {
                    config: &config,
                    rootfs: crate::container::mount_point(&args.run_dir),
                    upper: args.container_dir.join("upper"),
                    work: args.container_dir.join("work"),
                    joins,
                    cgroup_ready: pipes.cgroup_ready.0,
                    status: pipes.status.1,
                    start_fifo,
                    stdin,
                    stdout: pipes.stdout.1,
                    stderr: pipes.stderr.1,
                };
                init::run(syscall, ctx)
            }
            ForkResult::Parent { child } => child,
        };
        drop((
            pipes.status.1,
            pipes.stdout.1,
            pipes.stderr.1,
            start_fifo,
            stdin,
            joins,
            pipes.cgroup_ready.0,
            placement,
        ));

        // A failure kills the init before it joins; otherwise it is told where to join (nowhere
        // when it was born in the cgroup) and what to mount (`cgroup_ready`).
        let cgroups = match cgroups_out.take() {
            Some(cgroups) => cgroups,
            None => match cgroup::detect(&args.cgroup_root, Path::new("/proc/self/mountinfo")) {
                Ok(cgroups) => cgroups,
                Err(source) => return Err(abandon(init, cgroup_err(source))),
            },
        };
        let cgroups = cgroups_out.insert(cgroups);
        let ready = (|| {
            let join = if placed {
                Vec::new()
            } else {
                cgroups.join_files(&args.cgroup_path)?
            };
            cgroups.create(&args.cgroup_path, &config.resources)?;
            Ok(init::CgroupReady {
                version: cgroups.version(),
                dirs: cgroups.hierarchy_dirs(&args.cgroup_path),
                join,
            })
        })();
        let ready = match ready {
            Ok(ready) => ready,
            Err(source) => return Err(abandon(init, cgroup_err(source))),
        };
        let _ = write_all(pipes.cgroup_ready.1.as_fd(), &ready.encode());
        drop(pipes.cgroup_ready.1);

        // While the init mounts its root filesystem: the log (output waits in the pipes) and,
        // started at once, the state directory (otherwise the caller made it for the fifo).
        let log_path = args.container_dir.join("container.log");
        let log = match CriLogWriter::open(log_path, config.log) {
            Ok(log) => log,
            Err(err) => return Err(abandon(init, ShimError::Log(err))),
        };
        if args.start
            && let Err(err) = std::fs::create_dir_all(&args.state_dir)
        {
            let source = SyscallError::path(
                "mkdir",
                &args.state_dir,
                Errno::from_raw(err.raw_os_error().unwrap_or(0)),
            );
            return Err(abandon(init, kernel(&id, "state directory")(source)));
        }

        // Ready (waiting for start), or Started at once with `start`. Anything after Started
        // in the same read (an exec failure) is kept for the exit.
        let mut messages = read_messages(&pipes.status.0).into_iter();
        let started = match messages.next() {
            Some(StatusMessage::Ready) => false,
            Some(StatusMessage::Started) if args.start => true,
            Some(StatusMessage::Failed { code, message }) => {
                return Err(abandon(init, ShimError::Init { code, message }));
            }
            _ => {
                return Err(abandon(
                    init,
                    ShimError::Init {
                        code: 125,
                        message: "container init exited during setup".into(),
                    },
                ));
            }
        };
        let start_failure = messages.find_map(|message| match message {
            StatusMessage::Failed { code, message } => Some((code, message)),
            _ => None,
        });

        let pidfd = syscall.pidfd_open(init).map_err(kernel(&id, "pidfd"))?;
        // Holding the container's mount namespace keeps its teardown (unmounting every mount
        // and an expedited RCU grace period) out of the init's exit: it happens when this shim
        // lets go, after the exit is reported. Best effort: without it, the exit pays for it.
        let mount_ns = nix::fcntl::open(
            format!("/proc/{init}/ns/mnt").as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok();
        let (shim_pid, start_time) = crate::container::self_identity();
        let mut state = State::created(config.id.clone(), shim_pid, start_time, init.as_raw());
        if started {
            // Straight to Running: one state write, no Created in between.
            state
                .transition(crate::container::state::Status::Running)
                .map_err(ShimError::State)?;
        }
        state.save(&args.state_dir).map_err(ShimError::State)?;
        if started && args.detach {
            super::memory::release_clean_file_pages();
        }
        let cgroups = cgroups_out.take().expect("set above");
        Ok(Shim {
            args,
            config,
            cgroups,
            syscall,
            state,
            init,
            pidfd: Some(pidfd),
            status: Some(pipes.status.0),
            stdout: Some(pipes.stdout.0),
            stderr: Some(pipes.stderr.0),
            signals,
            log,
            start_failure,
            sync: None,
            mount_ns,
        })
    }

    /// Pump output, forward signals, record the start and the exit. Returns the exit code.
    fn supervise(&mut self) -> i32 {
        let mut exit: Option<WaitStatus> = None;
        let mut buf = [0u8; 8192];
        loop {
            if exit.is_some()
                && self.stdout.is_none()
                && self.stderr.is_none()
                && self.status.is_none()
            {
                break;
            }
            // Once the init is gone, whatever still holds the pipes gets a short grace.
            let timeout = if exit.is_some() {
                PollTimeout::from(2000u16)
            } else {
                PollTimeout::NONE
            };
            let sources: [Option<BorrowedFd<'_>>; 5] = [
                self.status.as_ref().map(|f| f.as_fd()),
                self.stdout.as_ref().map(|f| f.as_fd()),
                self.stderr.as_ref().map(|f| f.as_fd()),
                self.pidfd.as_ref().map(|f| f.as_fd()),
                Some(self.signals.as_fd()),
            ];
            let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(5);
            let mut which = Vec::with_capacity(5);
            for (i, fd) in sources.iter().enumerate() {
                if let Some(fd) = fd {
                    fds.push(PollFd::new(*fd, PollFlags::POLLIN));
                    which.push(i);
                }
            }
            match poll(&mut fds, timeout) {
                Ok(0) => break,
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    eprintln!("berth shim: poll: {e}");
                    break;
                }
            }
            let ready: Vec<usize> = fds
                .iter()
                .zip(&which)
                .filter(|(fd, _)| fd.revents().is_some_and(|r| !r.is_empty()))
                .map(|(_, i)| *i)
                .collect();
            drop(fds);
            for source in ready {
                match source {
                    0 => self.on_status(),
                    1 => self.on_output(Stream::Stdout, &mut buf),
                    2 => self.on_output(Stream::Stderr, &mut buf),
                    3 => {
                        exit = waitpid(self.init, None).ok();
                        self.pidfd = None;
                        // Anything left in the cgroup dies with the init. With a private pid
                        // namespace the kernel has killed the rest and waited for them to exit
                        // before the init's exit shows on the pidfd: nothing to look for.
                        let path = &self.args.cgroup_path;
                        let private_pids = self.config.namespaces.pid == NamespaceMode::New;
                        let left = !private_pids
                            && self
                                .cgroups
                                .pids(path)
                                .map(|p| !p.is_empty())
                                .unwrap_or(true);
                        if left && let Err(err) = self.cgroups.signal_all(path, Signal::SIGKILL) {
                            eprintln!("berth shim: kill leftovers: {err}");
                        }
                    }
                    _ => self.on_signal(),
                }
            }
        }
        self.finish(exit)
    }

    fn on_status(&mut self) {
        let Some(fd) = &self.status else { return };
        let messages = read_messages(fd);
        if messages.is_empty() {
            // End of file: the init exec'd (after "S") or died.
            self.status = None;
        }
        for message in messages {
            match message {
                StatusMessage::Ready => {}
                StatusMessage::Started => self.mark_running(),
                StatusMessage::Failed { code, message } => {
                    self.start_failure = Some((code, message))
                }
            }
        }
    }

    fn on_output(&mut self, stream: Stream, buf: &mut [u8]) {
        let slot = match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        let Some(fd) = slot else { return };
        match nix::unistd::read(&*fd, buf) {
            Ok(0) | Err(Errno::EBADF) => *slot = None,
            Ok(n) => {
                if let Err(err) = self.log.write(stream, &buf[..n]) {
                    eprintln!("berth shim: log: {err}");
                }
                if self.args.attach {
                    let out = match stream {
                        Stream::Stdout => 1,
                        Stream::Stderr => 2,
                    };
                    // SAFETY: fds 1 and 2 stay open for the shim's whole life.
                    let _ = write_all(unsafe { BorrowedFd::borrow_raw(out) }, &buf[..n]);
                }
            }
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(_) => *slot = None,
        }
    }

    fn on_signal(&mut self) {
        while let Ok(Some(info)) = self.signals.read_signal() {
            let Ok(signal) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            if let Some(pidfd) = &self.pidfd {
                let _ = self.syscall.pidfd_send_signal(pidfd.as_fd(), signal);
            }
        }
    }

    fn mark_running(&mut self) {
        if self.state.status == crate::container::state::Status::Created {
            let _ = self
                .state
                .transition(crate::container::state::Status::Running);
            if let Err(err) = self.state.save(&self.args.state_dir) {
                eprintln!("berth shim: {err}");
            }
            // Set up and started: from here a detached shim only supervises, maybe for months
            // (a foreground one ends with `berth run`; reading smaps would only cost it time).
            if self.args.detach {
                super::memory::release_clean_file_pages();
            }
        }
    }

    fn finish(&mut self, exit: Option<WaitStatus>) -> i32 {
        // `start` consumed the fifo but the init died before it could say "S" (killed right
        // after start): it was started all the same.
        if !self.args.state_dir.join("exec.fifo").exists() {
            self.mark_running();
        }
        let _ = self.log.flush_partial();
        reap_orphans();
        let path = &self.args.cgroup_path;
        let oom = self.cgroups.saw_oom_kill(path).unwrap_or(false);
        let code = if let Some((code, message)) = self.start_failure.take() {
            if self.args.attach {
                eprintln!("berth: {message}");
            }
            let _ = self.state.record_start_error(code, message);
            code
        } else {
            let status = ExitStatus::from_wait(exit.unwrap_or(WaitStatus::StillAlive), oom);
            let _ = self.state.record_exit(status);
            status.code
        };

        // First what a caller told of the exit may rely on: the exit recorded or, with
        // auto-remove, the container gone from every listing (its directories renamed away).
        let mut retired = None;
        if self.config.auto_remove {
            let _ = std::fs::remove_file(self.args.state_dir.join("exec.fifo"));
            match crate::container::delete::retire(
                &self.args.root,
                &self.args.run_dir,
                &self.config,
            ) {
                Ok(dirs) => retired = Some(dirs),
                Err(err) => eprintln!("berth shim: auto-remove: {err}"),
            }
        } else if let Err(err) = self.state.save(&self.args.state_dir) {
            eprintln!("berth shim: {err}");
        }
        if let Some(sync) = self.sync.take() {
            report(&sync, &SyncMessage::Exited { code });
        }

        // Then the slow part, which nobody waits for but this shim's own exit.
        drop(self.mount_ns.take());
        if let Err(err) = self.cgroups.delete(path) {
            eprintln!("berth shim: remove cgroup: {err}");
        }
        if self.config.auto_remove {
            let removed = match retired {
                Some(dirs) => dirs.remove().map_err(|source| RuntimeError::Io {
                    id: self.config.id.to_string(),
                    path: crate::container::delete::trash_dir(&self.args.root),
                    source,
                }),
                None => crate::container::delete::remove_files(
                    &self.args.root,
                    &self.args.run_dir,
                    &self.config,
                ),
            };
            if let Err(err) = removed {
                eprintln!("berth shim: auto-remove: {err}");
            }
            let parent = path.0.parent().unwrap_or(Path::new("/"));
            crate::container::delete::sweep_trash(
                &self.args.root,
                &self.args.run_dir,
                self.cgroups.as_ref(),
                parent,
                TRASH_MIN_AGE,
            );
        }
        code
    }
}

/// How long a trash entry must have been there before another shim deletes it for the one that
/// put it there (and died).
const TRASH_MIN_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// Kill an init that failed set-up (or vanished) and reap it; returns `err` for the caller.
fn abandon(init: Pid, err: ShimError) -> ShimError {
    let _ = nix::sys::signal::kill(init, Signal::SIGKILL);
    let _ = waitpid(init, None);
    err
}

/// Make `exec.fifo` in the state directory and open its read end for the init, which waits
/// on it for `start`.
fn open_start_fifo(state_dir: &Path) -> Result<OwnedFd, SyscallError> {
    let fifo = state_dir.join("exec.fifo");
    let _ = std::fs::remove_file(&fifo);
    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600))
        .map_err(|e| SyscallError::path("mkfifo", &fifo, e))?;
    nix::fcntl::open(
        &fifo,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SyscallError::path("open", &fifo, e))
}

/// Read the status messages available; empty at end of file.
fn read_messages(fd: &OwnedFd) -> Vec<StatusMessage> {
    let mut buf = [0u8; 4096];
    loop {
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => return Vec::new(),
            Ok(n) => return StatusMessage::decode_all(&buf[..n]),
            Err(Errno::EINTR) => {}
            Err(_) => return Vec::new(),
        }
    }
}

/// Reap every child that has exited (orphans reparented to the shim as subreaper).
fn reap_orphans() {
    while let Ok(status) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

fn open_ns(path: &Path) -> Result<OwnedFd, SyscallError> {
    nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| SyscallError::path("open", path, e))
}

fn open_joins(config: &ContainerConfig) -> Result<Vec<(OwnedFd, CloneFlags)>, SyscallError> {
    let ns = &config.namespaces;
    let mut joins = Vec::new();
    for (mode, flag) in [
        (&ns.network, CloneFlags::CLONE_NEWNET),
        (&ns.ipc, CloneFlags::CLONE_NEWIPC),
        (&ns.uts, CloneFlags::CLONE_NEWUTS),
        (&ns.cgroup, CloneFlags::CLONE_NEWCGROUP),
    ] {
        if let NamespaceMode::Join(path) = mode {
            joins.push((open_ns(path)?, flag));
        }
    }
    Ok(joins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_thread_rules_out_forking_the_shim() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || rx.recv());
        assert!(!single_threaded());
        drop(tx);
        let _ = thread.join();
    }
}
