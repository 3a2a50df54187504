//! `create`: lay out the container's directories and config, spawn its shim and wait until the
//! init is set up and waiting for `start` (or report why it could not be).

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use super::config::ContainerConfig;
use super::{
    ContainerId, LinuxRuntime, Result, RuntimeConfig, RuntimeError, container_dir, state_dir,
};
use crate::shim::zygote::HelperFds;
use crate::shim::{SHIM_MARKER, SYNC_FD, ShimArgs, ShimReports, SyncMessage};

/// How the shim runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct CreateOptions {
    /// The shim forks away into its own session; the caller does not wait for it. What the
    /// agent and `berth run -d` use.
    pub detach: bool,
    /// The shim also copies the output to its own stdout/stderr, inherited from the caller
    /// (`berth run` in the foreground).
    pub attach: bool,
    /// Start the process as soon as it is set up instead of waiting for
    /// [`LinuxRuntime::start`]: `berth run`, which has nothing to do in between. No exec fifo
    /// is made and the container is Running when `create` returns.
    pub start: bool,
}

/// A created container.
#[derive(Debug)]
pub struct Created {
    pub id: ContainerId,
    /// Host pid of the init: waiting for `start`, or with [`CreateOptions::start`] already the
    /// user's process (or about to exec it).
    pub init_pid: i32,
    /// The shim when not detached: the caller's child, which exits with the container's exit
    /// code (0-255) once it has recorded the exit.
    pub shim: Option<ShimProcess>,
    /// When not detached, the shim's later reports: [`SyncMessage::Exited`] as soon as the exit
    /// is recorded, before the shim deletes the cgroup (and, with auto-remove, the files).
    pub reports: Option<ShimReports>,
}

/// A foreground shim, the caller's child: spawned (a re-executed berth) or forked from a
/// single-threaded caller. Both run the same shim code.
#[derive(Debug)]
pub enum ShimProcess {
    Spawned(Child),
    Forked(Pid),
    Zygote(crate::shim::zygote::ZygoteChild),
}

impl ShimProcess {
    pub fn pid(&self) -> Pid {
        match self {
            ShimProcess::Spawned(child) => Pid::from_raw(child.id() as i32),
            ShimProcess::Forked(pid) => *pid,
            ShimProcess::Zygote(child) => child.pid(),
        }
    }

    /// Wait for the shim to exit (reaping it).
    pub fn wait(&mut self) -> std::io::Result<ExitStatus> {
        match self {
            ShimProcess::Spawned(child) => child.wait(),
            ShimProcess::Zygote(child) => child.wait(),
            ShimProcess::Forked(pid) => loop {
                match waitpid(*pid, None) {
                    Ok(WaitStatus::Exited(_, code)) => return Ok(ExitStatus::from_raw(code << 8)),
                    Ok(WaitStatus::Signaled(_, signal, _)) => {
                        return Ok(ExitStatus::from_raw(signal as i32));
                    }
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(e.into()),
                }
            },
        }
    }
}

fn io_err(id: &ContainerId, path: &Path) -> impl Fn(std::io::Error) -> RuntimeError {
    let (id, path) = (id.to_string(), path.to_path_buf());
    move |source| RuntimeError::Io {
        id: id.clone(),
        path: path.clone(),
        source,
    }
}

/// Reserve the id (and an explicitly given name) and write `config.json`: what must exist
/// before the shim starts. The rest comes from the shim and the init while the other sets up
/// (see [`crate::shim`]): the overlay's `upper` and `work` from the init, the log and (with
/// [`CreateOptions::start`]) the state directory from the shim. On failure nothing is left
/// behind.
pub(crate) fn write_files(
    runtime: &RuntimeConfig,
    config: &ContainerConfig,
    options: CreateOptions,
) -> Result<()> {
    let id = &config.id;
    let containers = runtime.root.join("containers");
    std::fs::create_dir_all(&containers).map_err(io_err(id, &containers))?;
    let mount_point = super::mount_point(&runtime.run_dir);
    std::fs::create_dir_all(&mount_point).map_err(io_err(id, &mount_point))?;
    let dir = container_dir(&runtime.root, id);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(RuntimeError::AlreadyExists(id.clone()));
        }
        Err(e) => return Err(io_err(id, &dir)(e)),
    }
    let result = reserve_name(runtime, config).and_then(|()| {
        let path = dir.join("config.json");
        let json = serde_json::to_vec_pretty(config).map_err(|source| RuntimeError::Json {
            id: id.to_string(),
            path: path.clone(),
            source,
        })?;
        std::fs::write(&path, json).map_err(io_err(id, &path))?;
        if options.start {
            return Ok(());
        }
        // The exec fifo the shim makes before the init exists lives here.
        let run = state_dir(&runtime.run_dir, id);
        std::fs::create_dir_all(&run).map_err(io_err(id, &run))
    });
    if let Err(original) = result {
        return Err(
            match super::delete::remove_files(&runtime.root, &runtime.run_dir, config) {
                Ok(()) => original,
                Err(cleanup) => RuntimeError::Cleanup {
                    original: Box::new(original),
                    cleanup: Box::new(cleanup),
                },
            },
        );
    }
    Ok(())
}

/// `<root>/names/<name>` is a symlink to the id; creating it is the atomic reservation. A link
/// left by a container that no longer exists is taken over. A generated name (the id's short
/// form) needs no link: it is unique with the id, and lookups find it as an id prefix; a name
/// given explicitly may not be another container's generated one.
fn reserve_name(runtime: &RuntimeConfig, config: &ContainerConfig) -> Result<()> {
    let id = &config.id;
    if config.name == id.short() {
        return Ok(());
    }
    if let Some(owner) = generated_name_owner(runtime, &config.name) {
        return Err(RuntimeError::NameInUse {
            name: config.name.clone(),
            id: owner,
        });
    }
    let names = runtime.root.join("names");
    std::fs::create_dir_all(&names).map_err(io_err(id, &names))?;
    let link = names.join(&config.name);
    for _ in 0..2 {
        match std::os::unix::fs::symlink(id.as_str(), &link) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let owner = std::fs::read_link(&link).unwrap_or_default();
                let owner = owner.to_string_lossy().into_owned();
                if owner == id.as_str() {
                    return Ok(());
                }
                if runtime
                    .root
                    .join("containers")
                    .join(&owner)
                    .join("config.json")
                    .exists()
                {
                    return Err(RuntimeError::NameInUse {
                        name: config.name.clone(),
                        id: owner,
                    });
                }
                let _ = std::fs::remove_file(&link);
            }
            Err(e) => return Err(io_err(id, &link)(e)),
        }
    }
    Err(RuntimeError::NameInUse {
        name: config.name.clone(),
        id: String::new(),
    })
}

/// The id of a container whose generated name is `name`, if any. Generated names are the
/// first 12 characters of an id, so only such names are looked for.
fn generated_name_owner(runtime: &RuntimeConfig, name: &str) -> Option<String> {
    if name.len() != 12 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let entries = std::fs::read_dir(runtime.root.join("containers")).ok()?;
    entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|owner| owner.starts_with(name))
        .find(|owner| {
            let config = std::fs::read(
                runtime
                    .root
                    .join("containers")
                    .join(owner)
                    .join("config.json"),
            );
            config
                .ok()
                .and_then(|bytes| serde_json::from_slice::<ContainerConfig>(&bytes).ok())
                .is_some_and(|config| config.name == name)
        })
}

impl LinuxRuntime {
    /// Create the container: its init is set up (namespaces, rootfs, user, capabilities) and
    /// waits for [`LinuxRuntime::start`].
    #[tracing::instrument(skip_all, fields(container = %config.id))]
    pub fn create(&self, config: ContainerConfig, options: CreateOptions) -> Result<Created> {
        if config.name.is_empty() || config.name.contains('/') {
            return Err(RuntimeError::Create {
                id: config.id.clone(),
                code: 125,
                message: format!("invalid container name {:?}", config.name),
            });
        }
        write_files(&self.config, &config, options)?;
        match self.spawn_shim(&config, options) {
            Ok(created) => Ok(created),
            Err(original) => {
                let cleanup =
                    super::delete::remove_files(&self.config.root, &self.config.run_dir, &config);
                Err(match cleanup {
                    Ok(()) => original,
                    Err(cleanup) => RuntimeError::Cleanup {
                        original: Box::new(original),
                        cleanup: Box::new(cleanup),
                    },
                })
            }
        }
    }

    fn spawn_shim(&self, config: &ContainerConfig, options: CreateOptions) -> Result<Created> {
        let id = &config.id;
        // In a single-threaded caller (`berth run` in the foreground) the shim is forked: no
        // exec of berth's binary. A detached shim is spawned even then: a forked one would keep
        // the caller's heap for the container's lifetime. The daemon is multi-threaded.
        let forked = !options.detach && crate::shim::supervise::single_threaded();
        let args = ShimArgs {
            container_dir: self.container_dir(id),
            state_dir: self.state_dir(id),
            root: self.config.root.clone(),
            run_dir: self.config.run_dir.clone(),
            cgroup_root: self.config.cgroup_root.clone(),
            // A forked shim finds out itself, after forking the init, unless known already.
            cgroup_layout: if forked {
                self.cgroups.get().map(|cgroups| cgroups.layout())
            } else {
                Some(self.cgroups(id)?.layout())
            },
            cgroup_path: self.cgroup_path(id),
            detach: options.detach,
            attach: options.attach && !options.detach,
            start: options.start,
        };
        let (sync_read, sync_write) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| RuntimeError::Kernel {
                id: id.to_string(),
                source: crate::syscall::SyscallError::new("pipe2", "sync", e),
            })?;

        if forked {
            let child = crate::shim::supervise::fork(&args, config, &sync_write).map_err(|e| {
                RuntimeError::Kernel {
                    id: id.to_string(),
                    source: crate::syscall::SyscallError::new("fork", "shim", e),
                }
            })?;
            drop(sync_write);
            return self.created(
                id,
                ShimReports::new(sync_read),
                ShimProcess::Forked(child),
                options,
            );
        }

        let json = serde_json::to_string(&args).map_err(|source| RuntimeError::Json {
            id: id.to_string(),
            path: self.config.shim_exe.clone(),
            source,
        })?;
        if let (Some(zygote), false) = (self.zygote(), args.attach) {
            let null = File::open("/dev/null").map_err(io_err(id, Path::new("/dev/null")))?;
            let fds = HelperFds {
                stdin: null.as_fd(),
                stdout: null.as_fd(),
                stderr: null.as_fd(),
                sync: Some(sync_write.as_fd()),
            };
            match zygote.spawn(SHIM_MARKER, &json, fds) {
                Ok(child) => {
                    drop(sync_write);
                    return self.created(
                        id,
                        ShimReports::new(sync_read),
                        ShimProcess::Zygote(child),
                        options,
                    );
                }
                Err(err) => tracing::warn!(%err, "zygote unavailable; spawning the shim"),
            }
        }
        let mut command = Command::new(&self.config.shim_exe);
        command.arg(SHIM_MARKER).arg(json).stdin(Stdio::null());
        if !args.attach {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let raw = sync_write.as_raw_fd();
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
        let child = command.spawn().map_err(|source| RuntimeError::Spawn {
            id: id.clone(),
            exe: self.config.shim_exe.clone(),
            source,
        })?;
        drop(sync_write);
        self.created(
            id,
            ShimReports::new(sync_read),
            ShimProcess::Spawned(child),
            options,
        )
    }

    /// The outcome of create from the shim's report.
    fn created(
        &self,
        id: &ContainerId,
        mut reports: ShimReports,
        mut child: ShimProcess,
        options: CreateOptions,
    ) -> Result<Created> {
        if options.detach {
            // The first shim process forks the real one and exits at once.
            let _ = child.wait();
        }
        match reports.next_report() {
            Some(SyncMessage::Created { init_pid }) => Ok(Created {
                id: id.clone(),
                init_pid,
                shim: (!options.detach).then_some(child),
                reports: (!options.detach).then_some(reports),
            }),
            Some(SyncMessage::Failed { code, message }) => {
                if !options.detach {
                    let _ = child.wait();
                }
                Err(RuntimeError::Create {
                    id: id.clone(),
                    code,
                    message,
                })
            }
            Some(SyncMessage::Exited { .. }) | None => {
                if !options.detach {
                    let _ = child.wait();
                }
                Err(RuntimeError::ShimLost(id.clone()))
            }
        }
    }
}
