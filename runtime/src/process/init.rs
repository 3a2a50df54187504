//! The container init: runs in the child the shim forks, already in the new pid namespace, and
//! ends in `execve` of the user's process or `_exit` after reporting why it could not.
//!
//! It unshares its namespaces and makes the overlay's `upper` and `work` directories while the
//! shim makes the cgroup, then moves itself into the cgroup ([`crate::cgroup::join_self`],
//! before it unshares its cgroup namespace). It talks to
//! the shim over the CLOEXEC `status` pipe ([`StatusMessage`]: `Ready`, `Started` or an error;
//! end of file after `Started` means the exec succeeded). Unless told to start at once it waits
//! for `start` on a fifo whose read end the shim opened for it.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::CloneFlags;
use nix::sys::resource::Resource;
use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};

use super::{CapabilityPlan, InitError, apply_identity, complete_env, find_executable, home_of};
use crate::cgroup::CgroupVersion;
use crate::container::config::{ContainerConfig, NamespaceMode, Rlimit};
use crate::rootfs::{Rootfs, RootfsPlan};
use crate::syscall::{RlimitValue, Syscall, SyscallError};

/// A message on the status pipe, child to shim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusMessage {
    /// Set up; waiting for start.
    Ready,
    /// Start was given; exec follows (end of file on the pipe means it succeeded).
    Started,
    /// Could not start: docker's exit code and the message.
    Failed { code: i32, message: String },
}

impl StatusMessage {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            StatusMessage::Ready => b"R".to_vec(),
            StatusMessage::Started => b"S".to_vec(),
            StatusMessage::Failed { code, message } => format!("E{code}\t{message}").into_bytes(),
        }
    }

    /// Decode what one read returned: one-byte messages may arrive together, a failure is
    /// always the last message.
    pub fn decode_all(mut bytes: &[u8]) -> Vec<Self> {
        let mut out = Vec::new();
        while let Some(first) = bytes.first() {
            if matches!(first, b'R' | b'S') {
                out.extend(Self::decode(&bytes[..1]));
                bytes = &bytes[1..];
            } else {
                out.extend(Self::decode(bytes));
                break;
            }
        }
        out
    }

    /// Decode one message; `None` for anything that is not one.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        match bytes.split_first()? {
            (b'R', []) => Some(StatusMessage::Ready),
            (b'S', []) => Some(StatusMessage::Started),
            (b'E', rest) => {
                let text = String::from_utf8_lossy(rest);
                let (code, message) = text.split_once('\t')?;
                Some(StatusMessage::Failed {
                    code: code.parse().ok()?,
                    message: message.to_string(),
                })
            }
            _ => None,
        }
    }
}

/// Everything the init needs; fds are the child's copies.
#[derive(Debug)]
pub struct InitContext<'a> {
    pub config: &'a ContainerConfig,
    /// Empty directory the overlay is mounted on (in this process's mount namespace only).
    pub rootfs: PathBuf,
    /// The overlay's writable layer and work directory, made here.
    pub upper: PathBuf,
    pub work: PathBuf,
    /// Namespaces to join (opened by the shim), other than pid which the shim joins.
    pub joins: Vec<(OwnedFd, CloneFlags)>,
    /// Readable once the shim has made the cgroup: a [`CgroupReady`], then end of file (end of
    /// file alone: it could not make it).
    pub cgroup_ready: OwnedFd,
    pub status: OwnedFd,
    /// Read end of the exec fifo to wait on for `start`; `None` to exec right after set-up.
    pub start_fifo: Option<OwnedFd>,
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// What the shim tells the init once the container's cgroup exists: where to join it and what
/// to mount at `/sys/fs/cgroup`. Found out by the shim after the fork, while the init unshares.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CgroupReady {
    pub version: CgroupVersion,
    /// [`crate::cgroup::CgroupManager::hierarchy_dirs`] of the container's cgroup.
    pub dirs: Vec<(String, PathBuf)>,
    /// [`crate::cgroup::CgroupManager::join_files`] of the container's cgroup.
    pub join: Vec<PathBuf>,
}

impl CgroupReady {
    pub fn encode(&self) -> Vec<u8> {
        // Plain data of our own making: serialising it cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// Namespaces the init unshares itself (pid is the shim's job, before fork).
pub fn unshare_flags(config: &ContainerConfig) -> CloneFlags {
    let ns = &config.namespaces;
    let mut flags = CloneFlags::CLONE_NEWNS;
    for (mode, flag) in [
        (&ns.uts, CloneFlags::CLONE_NEWUTS),
        (&ns.ipc, CloneFlags::CLONE_NEWIPC),
        (&ns.network, CloneFlags::CLONE_NEWNET),
        (&ns.cgroup, CloneFlags::CLONE_NEWCGROUP),
    ] {
        if *mode == NamespaceMode::New {
            flags |= flag;
        }
    }
    flags
}

/// Set the process's resource limits (the init's and an exec'd process's alike).
pub(crate) fn apply_rlimits(syscall: &dyn Syscall, rlimits: &[Rlimit]) -> Result<(), InitError> {
    for limit in rlimits {
        let resource = parse_rlimit(&limit.kind).ok_or_else(|| InitError::Rlimit {
            name: limit.kind.clone(),
            source: None,
        })?;
        syscall
            .setrlimit(RlimitValue {
                resource,
                soft: limit.soft,
                hard: limit.hard,
            })
            .map_err(|e| InitError::Rlimit {
                name: limit.kind.clone(),
                source: Some(e),
            })?;
    }
    Ok(())
}

pub(crate) fn parse_rlimit(name: &str) -> Option<Resource> {
    Some(match name.trim_start_matches("RLIMIT_") {
        "AS" => Resource::RLIMIT_AS,
        "CORE" => Resource::RLIMIT_CORE,
        "CPU" => Resource::RLIMIT_CPU,
        "DATA" => Resource::RLIMIT_DATA,
        "FSIZE" => Resource::RLIMIT_FSIZE,
        "LOCKS" => Resource::RLIMIT_LOCKS,
        "MEMLOCK" => Resource::RLIMIT_MEMLOCK,
        "MSGQUEUE" => Resource::RLIMIT_MSGQUEUE,
        "NICE" => Resource::RLIMIT_NICE,
        "NOFILE" => Resource::RLIMIT_NOFILE,
        "NPROC" => Resource::RLIMIT_NPROC,
        "RSS" => Resource::RLIMIT_RSS,
        "RTPRIO" => Resource::RLIMIT_RTPRIO,
        "SIGPENDING" => Resource::RLIMIT_SIGPENDING,
        "STACK" => Resource::RLIMIT_STACK,
        _ => return None,
    })
}

fn write_all(fd: &OwnedFd, bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        match nix::unistd::write(fd, rest) {
            Ok(n) => rest = &rest[n..],
            Err(Errno::EINTR) => {}
            Err(_) => return,
        }
    }
}

/// Run the init. Never returns: execs the user's process or exits after reporting.
pub fn run(syscall: &dyn Syscall, ctx: InitContext<'_>) -> ! {
    let status = match ctx.status.try_clone() {
        Ok(fd) => fd,
        // SAFETY: _exit is async-signal-safe and ends this forked child at once.
        Err(_) => unsafe { libc::_exit(125) },
    };
    let Err(err) = setup_and_exec(syscall, ctx);
    let message = StatusMessage::Failed {
        code: err.exit_code(),
        message: err.message(),
    };
    write_all(&status, &message.encode());
    // SAFETY: _exit skips atexit handlers and stdio flushing that belong to the shim.
    unsafe { libc::_exit(err.exit_code()) }
}

fn setup_and_exec(
    syscall: &dyn Syscall,
    ctx: InitContext<'_>,
) -> Result<std::convert::Infallible, InitError> {
    let config = ctx.config;
    // Until it execs, this process is berth's binary inside the container's pid namespace: not
    // dumpable, its /proc files (`exe` above all, the way to the host's binary) are out of
    // reach of the container's processes, which lack CAP_SYS_PTRACE. `execve` restores it.
    let _ = nix::sys::prctl::set_dumpable(false);
    // Signals the shim blocked for its signalfd must not stay blocked in the container.
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // SAFETY: umask only changes this process's file creation mask.
    unsafe { libc::umask(0) };

    for (fd, target) in [(&ctx.stdin, 0), (&ctx.stdout, 1), (&ctx.stderr, 2)] {
        // SAFETY: dup2 onto a standard fd this process owns; the source is a valid fd.
        let rc = unsafe { libc::dup2(fd.as_raw_fd(), target) };
        Errno::result(rc).map_err(|e| InitError::Sync(SyscallError::new("dup2", target, e)))?;
    }

    // Own session: the terminal's signals reach berth, which forwards them.
    let _ = nix::unistd::setsid();

    // Namespaces first, while the shim makes the cgroup on the other CPU; their kernel memory
    // is charged to the shim's cgroup, as with runc and crun, whose clone makes them.
    for (fd, flags) in &ctx.joins {
        syscall
            .setns(fd.as_fd(), *flags)
            .map_err(InitError::Namespace)?;
    }
    drop(ctx.joins);
    let flags = unshare_flags(config);
    syscall
        .unshare(flags - CloneFlags::CLONE_NEWCGROUP)
        .map_err(InitError::Namespace)?;
    if config.namespaces.network == NamespaceMode::New {
        syscall.set_loopback_up().map_err(InitError::Namespace)?;
    }
    let hostname = config.effective_hostname();
    if config.namespaces.uts == NamespaceMode::New {
        syscall
            .sethostname(&hostname)
            .map_err(InitError::Hostname)?;
    }
    apply_rlimits(syscall, &config.process.rlimits)?;
    // The writable layer: its root is the container's `/`, hence 0755.
    for dir in [&ctx.upper, &ctx.work] {
        syscall.mkdir_all(dir, 0o755).map_err(|source| {
            InitError::Rootfs(crate::rootfs::RootfsError::Prepare {
                path: dir.clone(),
                source,
            })
        })?;
    }

    // Then into the container's cgroup, before the cgroup namespace (rooted where the process
    // is) and before anything the container's limits should cover.
    let cgroup = wait_for_cgroup(ctx.cgroup_ready)?;
    crate::cgroup::join_self(&cgroup.join).map_err(InitError::Cgroup)?;
    if flags.contains(CloneFlags::CLONE_NEWCGROUP) {
        syscall
            .unshare(CloneFlags::CLONE_NEWCGROUP)
            .map_err(InitError::Namespace)?;
    }

    let plan = RootfsPlan {
        rootfs: &ctx.rootfs,
        layers: &config.rootfs.layers,
        upper: &ctx.upper,
        work: &ctx.work,
        readonly: config.rootfs.readonly,
        mounts: &config.mounts,
        cgroup_version: cgroup.version,
        cgroup_dirs: &cgroup.dirs,
        masked_paths: &config.masked_paths,
        readonly_paths: &config.readonly_paths,
    };
    let rootfs = Rootfs::new(syscall);
    rootfs.prepare(&plan).map_err(InitError::Rootfs)?;
    rootfs.pivot(&ctx.rootfs).map_err(InitError::Rootfs)?;
    rootfs.harden(&plan).map_err(InitError::Rootfs)?;

    // From here on every path is inside the container.
    let user = &config.process.user;
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let env = complete_env(
        &config.process.env,
        &hostname,
        home_of(&passwd, user.uid),
        user.uid,
    );
    let command = config
        .process
        .args
        .first()
        .map(String::as_str)
        .unwrap_or_default();
    let executable = find_executable(Path::new("/"), command, &env)?;

    let cwd = &config.process.cwd;
    let cwd_err = |source| InitError::Cwd {
        path: cwd.clone(),
        source,
    };
    if !cwd.exists() {
        syscall.mkdir_all(cwd, 0o755).map_err(cwd_err)?;
    }
    let caps = super::parse_capabilities(&config.process.capabilities)?;
    let filter = config
        .process
        .seccomp
        .then(super::seccomp::default_filter)
        .flatten();
    let nnp = config.process.no_new_privileges;
    if let (Some(filter), false) = (&filter, nnp) {
        // Without no_new_privs only CAP_SYS_ADMIN may install a filter: before the caps go.
        syscall.set_seccomp(filter).map_err(InitError::Seccomp)?;
    }
    apply_identity(syscall, user, &CapabilityPlan::new(caps))?;
    syscall.chdir(cwd).map_err(cwd_err)?;
    if nnp {
        syscall
            .set_no_new_privs()
            .map_err(InitError::Capabilities)?;
        if let Some(filter) = &filter {
            syscall.set_seccomp(filter).map_err(InitError::Seccomp)?;
        }
    }

    let to_c = |s: &[u8]| CString::new(s).unwrap_or_default();
    let path = to_c(executable.as_os_str().as_bytes());
    let args: Vec<CString> = config
        .process
        .args
        .iter()
        .map(|a| to_c(a.as_bytes()))
        .collect();
    let envp: Vec<CString> = env.iter().map(|e| to_c(e.as_bytes())).collect();

    if let Some(fifo) = ctx.start_fifo {
        write_all(&ctx.status, &StatusMessage::Ready.encode());
        wait_for_start(&fifo)?;
    }
    write_all(&ctx.status, &StatusMessage::Started.encode());

    reset_signals();
    // SAFETY: umask only changes this process's file creation mask.
    unsafe { libc::umask(0o022) };
    // No fd of berth's may reach the user's process: mark everything above stderr CLOEXEC.
    // SAFETY: close_range with CLOEXEC only sets flags on this process's descriptors.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    Errno::result(rc).map_err(|e| InitError::Sync(SyscallError::new("close_range", 3, e)))?;

    let errno = nix::unistd::execve(&path, &args, &envp).unwrap_err();
    Err(InitError::Exec {
        command: command.to_string(),
        errno,
    })
}

/// Block until the shim says the cgroup exists and where it is. End of file without that means
/// it could not make it: the shim reports that and kills this process, so the error here is
/// only a fallback.
fn wait_for_cgroup(ready: OwnedFd) -> Result<CgroupReady, InitError> {
    use std::io::Read;
    let mut bytes = Vec::with_capacity(1024);
    let read = std::fs::File::from(ready).read_to_end(&mut bytes);
    let errno = match read {
        Ok(_) => match CgroupReady::decode(&bytes) {
            Some(ready) => return Ok(ready),
            None => Errno::EPIPE,
        },
        Err(e) => Errno::from_raw(e.raw_os_error().unwrap_or(0)),
    };
    Err(InitError::Sync(SyscallError::new(
        "read",
        "cgroup ready",
        errno,
    )))
}

/// Block until `start` writes a byte into the fifo. A fifo with no writer yet does not poll
/// readable (Linux reports hangup only after a writer came and went).
fn wait_for_start(fifo: &OwnedFd) -> Result<(), InitError> {
    let start_err = |e| InitError::Start(SyscallError::new("wait", "start fifo", e));
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(start_err(e)),
        }
        let mut byte = [0u8; 1];
        match nix::unistd::read(fifo, &mut byte) {
            Ok(1) => return Ok(()),
            // A writer came and went without a byte: the start was abandoned.
            Ok(_) => return Err(start_err(Errno::ECANCELED)),
            Err(Errno::EINTR | Errno::EAGAIN) => {}
            Err(e) => return Err(start_err(e)),
        }
    }
}

/// Give the user's process default signal dispositions and an empty mask. `execve` resets
/// the signals with handlers itself; ignored ones stay ignored unless reset: SIGPIPE (by Rust's
/// runtime and the shim) and whatever the caller's environment ignored, real-time signals
/// included (as `nohup` does SIGHUP). They are read from `/proc/self/status` (`SigIgn`) in one
/// go rather than asked about one signal at a time.
pub(crate) fn reset_signals() {
    let ignored = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let mask = status.lines().find_map(|l| l.strip_prefix("SigIgn:"))?;
            u64::from_str_radix(mask.trim(), 16).ok()
        })
        // Unknown: reset every signal.
        .unwrap_or(u64::MAX);
    for signal in 1..=64 {
        if ignored & (1 << (signal - 1)) == 0 || signal == libc::SIGKILL || signal == libc::SIGSTOP
        {
            continue;
        }
        set_default_disposition(signal);
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// `rt_sigaction(signal, SIG_DFL)` as a raw syscall: libc's wrapper refuses the real-time
/// signals it keeps for itself (32 and 33), which the container must not inherit ignored either.
fn set_default_disposition(signal: i32) {
    /// The kernel's `struct sigaction` (not libc's, whose mask is larger).
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: u64,
        restorer: usize,
        mask: u64,
    }
    let action = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: installs the default disposition (no handler code) from a valid struct whose size
    // matches the mask size passed; the old action is not asked for.
    let _ = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            signal,
            &action as *const KernelSigaction,
            std::ptr::null_mut::<KernelSigaction>(),
            std::mem::size_of::<u64>(),
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_messages_round_trip() {
        for msg in [
            StatusMessage::Ready,
            StatusMessage::Started,
            StatusMessage::Failed {
                code: 127,
                message: "exec \"x\":\tnot found".into(),
            },
        ] {
            assert_eq!(StatusMessage::decode(&msg.encode()), Some(msg));
        }
        assert_eq!(StatusMessage::decode(b""), None);
        assert_eq!(StatusMessage::decode(b"Ex\tmsg"), None);
        assert_eq!(StatusMessage::decode(b"RR"), None);
        assert_eq!(
            StatusMessage::decode_all(b"SE127\tno"),
            [
                StatusMessage::Started,
                StatusMessage::Failed {
                    code: 127,
                    message: "no".into()
                }
            ]
        );
        assert_eq!(
            StatusMessage::decode_all(b"RS"),
            [StatusMessage::Ready, StatusMessage::Started]
        );
    }

    #[test]
    fn the_cgroup_handoff_round_trips_and_rejects_a_truncated_message() {
        let ready = CgroupReady {
            version: CgroupVersion::V1,
            dirs: vec![(
                "cpu,cpuacct".into(),
                "/sys/fs/cgroup/cpu,cpuacct/berth/c".into(),
            )],
            join: vec!["/sys/fs/cgroup/cpu,cpuacct/berth/c/tasks".into()],
        };
        let bytes = ready.encode();
        assert_eq!(CgroupReady::decode(&bytes), Some(ready));
        assert_eq!(CgroupReady::decode(&bytes[..bytes.len() / 2]), None);
        assert_eq!(CgroupReady::decode(b""), None);
    }

    #[test]
    fn unshare_flags_follow_the_namespace_modes() {
        let mut config =
            ContainerConfig::new("c".parse().unwrap(), vec!["/l".into()], vec!["sh".into()]);
        let all = CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWNET
            | CloneFlags::CLONE_NEWCGROUP;
        assert_eq!(unshare_flags(&config), all);
        config.namespaces.network = NamespaceMode::Host;
        config.namespaces.ipc = NamespaceMode::Join("/proc/1/ns/ipc".into());
        assert_eq!(
            unshare_flags(&config),
            all - CloneFlags::CLONE_NEWNET - CloneFlags::CLONE_NEWIPC
        );
        assert_eq!(parse_rlimit("RLIMIT_NOFILE"), Some(Resource::RLIMIT_NOFILE));
        assert_eq!(parse_rlimit("RLIMIT_BOGUS"), None);
    }
}
