//! Sandboxes: named sets of network, IPC and UTS namespaces that live without a process, for
//! containers to join (a pod's containers share them; each keeps its own mount and pid view).
//! The runtime knows nothing of pods.
//!
//! As `ip netns add`: a single-threaded shim (our binary with [`SANDBOX_MARKER`]) unshares the
//! namespaces, sets the hostname, brings loopback up and bind-mounts its `/proc/self/ns/*`
//! onto files in the sandbox directory; the bind mounts keep the namespaces alive after it
//! exits. Layout:
//!
//! ```text
//! <run_dir>/sandboxes/<id>/               bind mount of itself, shared (see below)
//! <run_dir>/sandboxes/<id>/{net,ipc,uts}  nsfs bind mounts (no net with host networking)
//! <run_dir>/sandboxes/<id>/sandbox.json   Sandbox, written last: its presence means complete
//! ```
//! Mount propagation: like iproute2, which makes `/run/netns` a shared bind mount of itself,
//! the sandbox directory is made a shared mount of itself before the namespace files are
//! mounted under it. Mount namespaces created later (a container init's before it pivots,
//! or any unrelated service's) then hold peer copies, and the `umount2(MNT_DETACH)` of
//! [`LinuxRuntime::delete_sandbox`] propagates to them, so no stray copy pins the namespace.
//! A private directory would leave such copies behind; making the shared mount per sandbox
//! (not the whole `sandboxes/`) leaves nothing mounted once the last sandbox is gone.
//!
//! ```text
//!  create: mkdir ──shim: unshare, hostname, lo up, bind mounts──► pod network ──► sandbox.json
//!  delete: pod network ──► umount2 each ns file, the directory ──► rm -r  (any step may be missing)
//! ```
//!
//! Pod network: a sandbox with [`SandboxNetwork::New`] gets an address from the pod CIDR and
//! a veth pair to the host bridge ([`crate::network`]); its address is recorded in the
//! [`Sandbox`]. [`LinuxRuntime::reconcile_network`] releases what sandboxes that vanished in
//! a crash left behind.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};

use crate::container::LinuxRuntime;
use crate::container::config::{ContainerId, NamespaceMode, Namespaces};
use crate::network::{self, NetworkError, ReconcileReport};
use crate::syscall::{LinuxSyscall, Syscall, SyscallError};

/// How long deleting a sandbox waits for the kernel's teardown of its network namespace to
/// delete the veth pair before deleting it directly (see [`network::detach_unpinned`]).
/// Teardown of several namespaces at once measured 37 ms here.
pub const NETNS_TEARDOWN_GRACE: Duration = Duration::from_secs(2);

/// `argv[1]` that turns the berth binary into a sandbox shim.
pub const SANDBOX_MARKER: &str = "__berth-sandbox";

pub type Result<T, E = SandboxError> = std::result::Result<T, E>;

/// The sandbox's network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxNetwork {
    /// A network namespace of its own with loopback up.
    #[default]
    New,
    /// The host's network (hostNetwork): containers keep the host's namespace.
    Host,
}

/// What to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxConfig {
    /// `[A-Za-z0-9][A-Za-z0-9_.-]{0,127}`, as a container id.
    pub id: String,
    pub hostname: String,
    #[serde(default)]
    pub network: SandboxNetwork,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A created sandbox and the namespace files containers join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    pub config: SandboxConfig,
    /// `None` with [`SandboxNetwork::Host`].
    pub net: Option<PathBuf>,
    pub ipc: PathBuf,
    pub uts: PathBuf,
    /// The pod address on `eth0`; `None` with host networking (and in records written
    /// before pod networking existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// The prefix length of [`Sandbox::ip`] on `eth0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_len: Option<u8>,
    /// The default route's gateway (the bridge's address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

impl Sandbox {
    /// Make a container join this sandbox's namespaces.
    pub fn join(&self, namespaces: &mut Namespaces) {
        namespaces.network = match &self.net {
            Some(path) => NamespaceMode::Join(path.clone()),
            None => NamespaceMode::Host,
        };
        namespaces.ipc = NamespaceMode::Join(self.ipc.clone());
        namespaces.uts = NamespaceMode::Join(self.uts.clone());
    }
}

/// Errors of sandbox operations; each names the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "invalid sandbox id {0:?}: expected 1-128 characters of [A-Za-z0-9_.-] starting with a letter or digit"
    )]
    InvalidId(String),
    #[error("sandbox {0} already exists")]
    AlreadyExists(String),
    #[error("no such sandbox: {0}")]
    NotFound(String),
    #[error("sandbox {id}: {path}")]
    Io {
        id: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sandbox {id}: invalid {path}")]
    Json {
        id: String,
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("sandbox {id}: cannot start shim {exe}")]
    Spawn {
        id: String,
        exe: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sandbox {id}: {message}")]
    Setup { id: String, message: String },
    #[error("sandbox {id}: pod network")]
    Network {
        id: String,
        #[source]
        source: NetworkError,
    },
    #[error("sandbox {id}")]
    Kernel {
        id: String,
        #[source]
        source: SyscallError,
    },
    #[error("{original}; cleanup also failed: {cleanup}")]
    Cleanup {
        original: Box<SandboxError>,
        cleanup: Box<SandboxError>,
    },
}

/// The namespace files of a sandbox directory, with their clone flags.
fn kinds(network: SandboxNetwork) -> Vec<(&'static str, CloneFlags)> {
    let mut kinds = Vec::with_capacity(3);
    if network == SandboxNetwork::New {
        kinds.push(("net", CloneFlags::CLONE_NEWNET));
    }
    kinds.push(("ipc", CloneFlags::CLONE_NEWIPC));
    kinds.push(("uts", CloneFlags::CLONE_NEWUTS));
    kinds
}

/// In the namespaces to keep: make `dir` a shared mount of itself, then bind each
/// `/proc/self/ns/<kind>` onto `dir/<kind>`.
pub fn mount_namespaces(
    syscall: &dyn Syscall,
    dir: &Path,
    network: SandboxNetwork,
) -> Result<(), SyscallError> {
    syscall.mount(Some(dir), dir, None, MsFlags::MS_BIND, None)?;
    syscall.mount(None, dir, None, MsFlags::MS_SHARED, None)?;
    for (kind, _) in kinds(network) {
        let target = dir.join(kind);
        syscall.create_file(&target)?;
        let source = PathBuf::from(format!("/proc/self/ns/{kind}"));
        syscall.mount(Some(&source), &target, None, MsFlags::MS_BIND, None)?;
    }
    Ok(())
}

/// Undo [`mount_namespaces`] as far as it got: lazily unmount every namespace file and the
/// directory; what is not mounted (EINVAL) or missing (ENOENT) is fine.
pub fn unmount_namespaces(syscall: &dyn Syscall, dir: &Path) -> Result<(), SyscallError> {
    let targets = ["net", "ipc", "uts"].map(|k| dir.join(k));
    for target in targets.iter().map(PathBuf::as_path).chain([dir]) {
        match syscall.umount2(target, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(e) if matches!(e.errno, Errno::EINVAL | Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What the runtime tells the sandbox shim, as JSON in `argv[2]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxShimArgs {
    pub dir: PathBuf,
    pub hostname: String,
    pub network: SandboxNetwork,
}

/// The shim: create the namespaces and pin them. Returns its exit code; the reason for a
/// failure goes to stderr.
pub(crate) fn run_shim(args: SandboxShimArgs) -> i32 {
    match set_up(&LinuxSyscall, &args) {
        Ok(()) => 0,
        Err(err) => {
            let mut text = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(e) = source {
                text.push_str(": ");
                text.push_str(&e.to_string());
                source = e.source();
            }
            eprintln!("{text}");
            1
        }
    }
}

/// The shim's kernel calls, in order.
pub fn set_up(syscall: &dyn Syscall, args: &SandboxShimArgs) -> Result<(), SyscallError> {
    let flags = kinds(args.network)
        .into_iter()
        .fold(CloneFlags::empty(), |all, (_, f)| all | f);
    syscall.unshare(flags)?;
    if args.network == SandboxNetwork::New {
        syscall.set_loopback_up()?;
    }
    syscall.sethostname(&args.hostname)?;
    mount_namespaces(syscall, &args.dir, args.network)
}

fn valid_id(id: &str) -> Result<()> {
    id.parse::<ContainerId>()
        .map(drop)
        .map_err(|_| SandboxError::InvalidId(id.to_string()))
}

impl LinuxRuntime {
    pub fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.config().run_dir.join("sandboxes").join(id)
    }

    /// Create the sandbox's namespaces. On failure whatever was made is removed again.
    #[tracing::instrument(skip(self, config), fields(sandbox = %config.id))]
    pub fn create_sandbox(&self, config: SandboxConfig) -> Result<Sandbox> {
        valid_id(&config.id)?;
        let id = config.id.clone();
        let dir = self.sandbox_dir(&id);
        let io = |path: &Path| {
            let (id, path) = (id.clone(), path.to_path_buf());
            move |source| SandboxError::Io { id, path, source }
        };
        std::fs::create_dir_all(dir.parent().expect("below run_dir"))
            .map_err(io(dir.parent().expect("below run_dir")))?;
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(SandboxError::AlreadyExists(id));
            }
            Err(e) => return Err(io(&dir)(e)),
        }
        let outcome = self.pin_namespaces(&config, &dir);
        let outcome = outcome.and_then(|sandbox| self.attach_network(sandbox));
        let outcome = outcome.and_then(|sandbox| {
            let path = dir.join("sandbox.json");
            let json =
                serde_json::to_vec_pretty(&sandbox).map_err(|source| SandboxError::Json {
                    id: id.clone(),
                    path: path.clone(),
                    source,
                })?;
            let tmp = dir.join(".sandbox.json.tmp");
            std::fs::write(&tmp, json).map_err(io(&tmp))?;
            std::fs::rename(&tmp, &path).map_err(io(&path))?;
            Ok(sandbox)
        });
        outcome.map_err(|original| match self.delete_sandbox(&id) {
            Ok(()) => original,
            Err(cleanup) => SandboxError::Cleanup {
                original: Box::new(original),
                cleanup: Box::new(cleanup),
            },
        })
    }

    fn pin_namespaces(&self, config: &SandboxConfig, dir: &Path) -> Result<Sandbox> {
        let id = config.id.clone();
        let args = SandboxShimArgs {
            dir: dir.to_path_buf(),
            hostname: config.hostname.clone(),
            network: config.network,
        };
        let json = serde_json::to_string(&args).map_err(|source| SandboxError::Json {
            id: id.clone(),
            path: self.config().shim_exe.clone(),
            source,
        })?;
        let spawn_err = |source| SandboxError::Spawn {
            id: id.clone(),
            exe: self.config().shim_exe.clone(),
            source,
        };
        let output = match self.zygote() {
            Some(zygote) => run_in_zygote(zygote, &json).map_err(spawn_err)?,
            None => Command::new(&self.config().shim_exe)
                .arg(SANDBOX_MARKER)
                .arg(json)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .map_err(spawn_err)?,
        };
        if !output.status.success() {
            let message = String::from_utf8_lossy(&output.stderr).trim().to_string();
            return Err(SandboxError::Setup {
                id,
                message: if message.is_empty() {
                    format!("sandbox shim failed ({})", output.status)
                } else {
                    message
                },
            });
        }
        Ok(Sandbox {
            config: config.clone(),
            net: (config.network == SandboxNetwork::New).then(|| dir.join("net")),
            ipc: dir.join("ipc"),
            uts: dir.join("uts"),
            ip: None,
            prefix_len: None,
            gateway: None,
        })
    }

    /// Give a sandbox with a namespace of its own its pod address and veth.
    fn attach_network(&self, mut sandbox: Sandbox) -> Result<Sandbox> {
        let Some(netns) = &sandbox.net else {
            return Ok(sandbox);
        };
        let id = &sandbox.config.id;
        let attachment = network::attach(&self.config().network, &self.config().root, id, netns)
            .map_err(|source| SandboxError::Network {
                id: id.clone(),
                source,
            })?;
        sandbox.ip = Some(attachment.ip.into());
        sandbox.prefix_len = Some(attachment.prefix_len);
        sandbox.gateway = Some(attachment.gateway.into());
        Ok(sandbox)
    }

    /// Release the pod network of the sandbox `id` unless `record` says it uses the host's
    /// (a half-created sandbox has no record: release whatever there may be). Called once
    /// the namespaces are unpinned, so the kernel's teardown of the namespace takes the veth
    /// pair with it.
    fn detach_network(&self, id: &str, record: Option<&Sandbox>) -> Result<()> {
        if record.is_some_and(|sandbox| sandbox.net.is_none()) {
            return Ok(());
        }
        network::detach_unpinned(
            &self.config().network,
            &self.config().root,
            id,
            NETNS_TEARDOWN_GRACE,
        )
        .map_err(|source| SandboxError::Network {
            id: id.to_string(),
            source,
        })
    }

    /// Release the addresses and delete the host veths of sandboxes that no longer exist
    /// (after a crash or a reboot, which empties the run directory). Call it at daemon start,
    /// before sandboxes are created: a sandbox is alive while its directory exists.
    #[tracing::instrument(skip(self))]
    pub fn reconcile_network(&self) -> network::Result<ReconcileReport> {
        let root = self.config().run_dir.join("sandboxes");
        let live: BTreeSet<String> = match std::fs::read_dir(&root) {
            Ok(entries) => entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|name| valid_id(name).is_ok())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(source) => return Err(NetworkError::Io { path: root, source }),
        };
        network::reconcile(&self.config().network, &self.config().root, &live)
    }

    /// Unmount the namespaces, release the pod network and remove the directory. Idempotent;
    /// copes with a sandbox whose creation never finished. Containers still in the
    /// namespaces keep them alive (and the veth pair: it is then deleted directly after
    /// [`NETNS_TEARDOWN_GRACE`]).
    #[tracing::instrument(skip(self), fields(sandbox = %id))]
    pub fn delete_sandbox(&self, id: &str) -> Result<()> {
        valid_id(id)?;
        let dir = self.sandbox_dir(id);
        if std::fs::symlink_metadata(&dir).is_err() {
            return Ok(());
        }
        let record = self.sandbox(id).ok();
        unmount_namespaces(self.syscall.as_ref(), &dir).map_err(|source| SandboxError::Kernel {
            id: id.to_string(),
            source,
        })?;
        self.detach_network(id, record.as_ref())?;
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(SandboxError::Io {
                id: id.to_string(),
                path: dir,
                source,
            }),
        }
    }

    /// The sandbox `id` as recorded on disk.
    pub fn sandbox(&self, id: &str) -> Result<Sandbox> {
        valid_id(id)?;
        let path = self.sandbox_dir(id).join("sandbox.json");
        let bytes = std::fs::read(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => SandboxError::NotFound(id.to_string()),
            _ => SandboxError::Io {
                id: id.to_string(),
                path: path.clone(),
                source,
            },
        })?;
        serde_json::from_slice(&bytes).map_err(|source| SandboxError::Json {
            id: id.to_string(),
            path,
            source,
        })
    }

    /// Every complete sandbox on this host, sorted by id, for re-adoption after a restart.
    /// Half-created ones (no sandbox.json) are left out; delete them by id.
    pub fn list_sandboxes(&self) -> Result<Vec<Sandbox>> {
        let root = self.config().run_dir.join("sandboxes");
        let entries = match std::fs::read_dir(&root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(SandboxError::Io {
                    id: String::new(),
                    path: root,
                    source,
                });
            }
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| valid_id(name).is_ok())
            .collect();
        ids.sort();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match self.sandbox(&id) {
                Ok(sandbox) => out.push(sandbox),
                Err(SandboxError::NotFound(_)) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(out)
    }
}

/// The sandbox shim forked by the zygote, as [`Command::output`] would run it: its stderr
/// collected, its exit status waited for.
fn run_in_zygote(
    zygote: &crate::shim::zygote::Zygote,
    json: &str,
) -> std::io::Result<std::process::Output> {
    use std::io::Read;
    use std::os::fd::AsFd;
    let null = std::fs::File::open("/dev/null")?;
    let (stderr_read, stderr_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let fds = crate::shim::zygote::HelperFds {
        stdin: null.as_fd(),
        stdout: null.as_fd(),
        stderr: stderr_write.as_fd(),
        sync: None,
    };
    let mut child = zygote.spawn(SANDBOX_MARKER, json, fds)?;
    drop(stderr_write);
    let mut stderr = Vec::new();
    std::fs::File::from(stderr_read).read_to_end(&mut stderr)?;
    let status = child.wait()?;
    Ok(std::process::Output {
        status,
        stdout: Vec::new(),
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::RuntimeConfig;
    use crate::syscall::{Call, RecordingSyscall};
    use std::sync::Arc;

    fn runtime(dir: &Path) -> (LinuxRuntime, Arc<RecordingSyscall>) {
        let syscall = Arc::new(RecordingSyscall::new());
        let runtime = LinuxRuntime::new(
            RuntimeConfig::new(dir.join("root"), dir.join("run")),
            syscall.clone(),
        );
        (runtime, syscall)
    }

    #[test]
    fn shim_unshares_names_brings_lo_up_and_pins_on_a_shared_self_bind() {
        let syscall = RecordingSyscall::new();
        let dir = PathBuf::from("/run/berth/sandboxes/p1");
        let args = SandboxShimArgs {
            dir: dir.clone(),
            hostname: "web-0".into(),
            network: SandboxNetwork::New,
        };
        set_up(&syscall, &args).unwrap();
        let calls = syscall.calls();
        assert_eq!(
            calls[0],
            Call::Unshare(
                CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS
            )
        );
        assert_eq!(calls[1], Call::LoopbackUp);
        assert_eq!(calls[2], Call::Sethostname("web-0".into()));
        let targets: Vec<&Path> = calls[3..].iter().filter_map(Call::target).collect();
        assert_eq!(
            targets,
            [
                dir.as_path(),
                dir.as_path(),
                &dir.join("net"),
                &dir.join("net"),
                &dir.join("ipc"),
                &dir.join("ipc"),
                &dir.join("uts"),
                &dir.join("uts"),
            ]
        );
        assert!(matches!(
            &calls[4],
            Call::Mount { flags, .. } if *flags == MsFlags::MS_SHARED
        ));

        let host = RecordingSyscall::new();
        let args = SandboxShimArgs {
            network: SandboxNetwork::Host,
            ..args
        };
        set_up(&host, &args).unwrap();
        let calls = host.calls();
        assert_eq!(
            calls[0],
            Call::Unshare(CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS)
        );
        assert!(!calls.contains(&Call::LoopbackUp));
        assert!(!calls.iter().any(|c| c.target() == Some(&dir.join("net"))));
    }

    #[test]
    fn delete_is_idempotent_and_copes_with_a_half_created_sandbox() {
        let tmp = tempfile::tempdir().unwrap();
        let (runtime, syscall) = runtime(tmp.path());
        // Never created: nothing to do, nothing called.
        runtime.delete_sandbox("p1").unwrap();
        assert!(syscall.calls().is_empty());

        // Half-created: the directory and one file, nothing mounted.
        let dir = runtime.sandbox_dir("p1");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("net"), "").unwrap();
        syscall.fail("umount2", dir.join("net"), Errno::EINVAL);
        syscall.fail("umount2", dir.join("ipc"), Errno::ENOENT);
        runtime.delete_sandbox("p1").unwrap();
        assert!(!dir.exists());
        let targets: Vec<PathBuf> = syscall
            .calls()
            .iter()
            .filter_map(|c| c.target().map(Path::to_path_buf))
            .collect();
        assert_eq!(
            targets,
            [
                dir.join("net"),
                dir.join("ipc"),
                dir.join("uts"),
                dir.clone()
            ]
        );
        assert!(syscall.calls().iter().all(|c| matches!(
            c,
            Call::Umount2 { flags, .. } if *flags == MntFlags::MNT_DETACH
        )));

        // A real unmount failure is reported and the directory kept.
        std::fs::create_dir_all(&dir).unwrap();
        syscall.fail("umount2", dir.join("uts"), Errno::EPERM);
        let err = runtime.delete_sandbox("p1").unwrap_err();
        assert!(
            matches!(err, SandboxError::Kernel { ref id, .. } if id == "p1"),
            "{err}"
        );
        assert!(dir.exists());
        assert!(matches!(
            runtime.delete_sandbox("../etc"),
            Err(SandboxError::InvalidId(_))
        ));
    }

    #[test]
    fn list_returns_complete_sandboxes_and_join_sets_the_namespaces() {
        let tmp = tempfile::tempdir().unwrap();
        let (runtime, _) = runtime(tmp.path());
        assert!(runtime.list_sandboxes().unwrap().is_empty());
        let sandbox = Sandbox {
            config: SandboxConfig {
                id: "p2".into(),
                hostname: "h".into(),
                network: SandboxNetwork::New,
                labels: BTreeMap::from([("pod".into(), "web-0".into())]),
            },
            net: Some(runtime.sandbox_dir("p2").join("net")),
            ipc: runtime.sandbox_dir("p2").join("ipc"),
            uts: runtime.sandbox_dir("p2").join("uts"),
            ip: Some(IpAddr::from([10, 73, 0, 2])),
            prefix_len: Some(16),
            gateway: Some(IpAddr::from([10, 73, 0, 1])),
        };
        std::fs::create_dir_all(runtime.sandbox_dir("p2")).unwrap();
        std::fs::write(
            runtime.sandbox_dir("p2").join("sandbox.json"),
            serde_json::to_vec(&sandbox).unwrap(),
        )
        .unwrap();
        std::fs::create_dir_all(runtime.sandbox_dir("p1")).unwrap(); // half-created
        assert_eq!(
            runtime.list_sandboxes().unwrap(),
            std::slice::from_ref(&sandbox)
        );
        assert_eq!(runtime.sandbox("p2").unwrap(), sandbox);
        assert!(matches!(
            runtime.sandbox("p1"),
            Err(SandboxError::NotFound(_))
        ));

        let mut namespaces = Namespaces::default();
        sandbox.join(&mut namespaces);
        assert_eq!(
            namespaces.network,
            NamespaceMode::Join(runtime.sandbox_dir("p2").join("net"))
        );
        assert_eq!(namespaces.pid, NamespaceMode::New);
        let host = Sandbox {
            net: None,
            ..sandbox
        };
        host.join(&mut namespaces);
        assert_eq!(namespaces.network, NamespaceMode::Host);
        assert!(matches!(namespaces.uts, NamespaceMode::Join(_)));
    }

    #[test]
    fn records_from_before_pod_networking_load_without_an_address() {
        let old = r#"{"config":{"id":"p3","hostname":"h","network":"new","labels":{}},
            "net":"/run/berth/sandboxes/p3/net","ipc":"/run/berth/sandboxes/p3/ipc",
            "uts":"/run/berth/sandboxes/p3/uts"}"#;
        let sandbox: Sandbox = serde_json::from_str(old).unwrap();
        assert_eq!(
            (sandbox.ip, sandbox.prefix_len, sandbox.gateway),
            (None, None, None)
        );
        let json = serde_json::to_string(&sandbox).unwrap();
        assert!(!json.contains("\"ip\""), "{json}");
    }

    #[test]
    fn create_refuses_bad_and_taken_ids() {
        let tmp = tempfile::tempdir().unwrap();
        let (runtime, _) = runtime(tmp.path());
        let config = |id: &str| SandboxConfig {
            id: id.into(),
            hostname: "h".into(),
            network: SandboxNetwork::New,
            labels: BTreeMap::new(),
        };
        assert!(matches!(
            runtime.create_sandbox(config("a/b")),
            Err(SandboxError::InvalidId(_))
        ));
        std::fs::create_dir_all(runtime.sandbox_dir("taken")).unwrap();
        assert!(matches!(
            runtime.create_sandbox(config("taken")),
            Err(SandboxError::AlreadyExists(_))
        ));
        assert!(
            runtime.sandbox_dir("taken").exists(),
            "not someone else's to remove"
        );
    }
}
