//! A pod's volumes on the host, as the kubelet lays them out, and the bind mounts of a
//! container's `volumeMounts` over them.
//!
//! # Layout
//! ```text
//! <dir>/<pod uid>/volumes/
//!   kubernetes.io~empty-dir/<volume>     directory (0777), or a tmpfs when `medium: Memory`
//!   kubernetes.io~configmap/<volume>     atomically written files, see below
//!   kubernetes.io~secret/<volume>        the same, on a tmpfs (secrets never touch the disk)
//! ```
//! With a pod `securityContext.fsGroup`, emptyDir directories belong to that group (mode 02777)
//! and configMap/secret files too, group-readable, as the kubelet's `SetVolumeOwnership` makes
//! them. The `sizeLimit` of a disk-backed emptyDir is not enforced (the kubelet evicts the pod;
//! berth has no eviction yet); on a `Memory` one it is the tmpfs size.
//!
//! A `hostPath` volume has no directory of its own: its path is the host path, checked (and for
//! `DirectoryOrCreate`/`FileOrCreate` created) as its `type` says, and never deleted.
//!
//! # ConfigMap and Secret volumes
//! They are written as the kubelet's `AtomicWriter` writes them, so a container never sees half
//! an update:
//! ```text
//! <volume>/..2026_11_23_01_02_03.123456789/   the files of one version (with their modes)
//! <volume>/..data -> ..2026_11_23_01_02_03.123456789
//! <volume>/<key> -> ..data/<key>              one symlink per top-level name
//! ```
//! An update writes a fresh timestamped directory, points a `..data_tmp` symlink at it and renames
//! that over `..data` (one atomic `rename`), adds the symlinks of new names, then removes the old
//! version and the symlinks of names that disappeared. Nothing is written when the content (data
//! and modes) is unchanged. ConfigMap and Secret volumes are always mounted read-only, as
//! Kubernetes does. A `subPath` mount of such a volume binds one resolved file, so it keeps the
//! content it had when the container started: Kubernetes does not update subPath mounts either.
//!
//! # subPath
//! A `subPath` is relative and has no `..` component. It is resolved inside the volume component
//! by component; a symlink is followed only while it stays inside the volume (an absolute target
//! must name a path under the volume's host path), and a symlink that leads out of it is an
//! error. Missing components are created as directories with the volume root's mode, as the
//! kubelet does. The check and the container's bind mount are two steps: a container of the same
//! pod that swaps a checked directory for a symlink between them is not prevented (the kubelet
//! closes that window by binding an `O_PATH` fd; berth does not yet).
//!
//! # Removal
//! [`Volumes::remove`] unmounts the pod's tmpfs volumes, then deletes `<dir>/<pod uid>` without
//! following symlinks and without crossing into another filesystem (a mount it could not undo is
//! an error, not a deletion of whatever is mounted there). It is idempotent.
//!
//! All filesystem work runs on tokio's blocking pool, serialized by one lock per [`Volumes`], so
//! a `refresh` never races a `prepare` or `remove` of the same pod.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_api::core_v1::{
    Container, EmptyDirVolumeSource, HostPathType, KeyToPath, Pod, StorageMedium, Volume,
    VolumeSource,
};
use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};

use super::spec::{ConfigSource, ObjectKind, SourceError};
use crate::runtime::Mount;

/// Plugin directory of `emptyDir` volumes.
pub const EMPTY_DIR_PLUGIN: &str = "kubernetes.io~empty-dir";
/// Plugin directory of `configMap` volumes.
pub const CONFIG_MAP_PLUGIN: &str = "kubernetes.io~configmap";
/// Plugin directory of `secret` volumes.
pub const SECRET_PLUGIN: &str = "kubernetes.io~secret";

/// The symlink naming the current version of an atomically written volume.
const DATA_LINK: &str = "..data";
const DATA_LINK_TMP: &str = "..data_tmp";
/// Kubernetes' default `defaultMode` of configMap and secret volumes.
const DEFAULT_FILE_MODE: u32 = 0o644;
/// Symlinks followed while resolving a subPath before giving up (Linux's own limit).
const MAX_SYMLINKS: u32 = 40;

/// Errors preparing or mounting volumes; shown in the pod's events.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume {volume:?}: {message}")]
    Invalid { volume: String, message: String },
    #[error("volume {volume:?}: reading its source")]
    Source {
        volume: String,
        #[source]
        source: SourceError,
    },
    #[error("volume {volume:?}: {operation} {path}")]
    Io {
        volume: String,
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "volume {volume:?}: {kind} {namespace}/{name} not found (and the volume is not optional)"
    )]
    MissingObject {
        volume: String,
        kind: ObjectKind,
        namespace: String,
        name: String,
    },
    #[error(
        "volume {volume:?}: key {key:?} of items not found in {kind} {namespace}/{name} (and the volume is not optional)"
    )]
    MissingKey {
        volume: String,
        kind: ObjectKind,
        namespace: String,
        name: String,
        key: String,
    },
    #[error("volume {volume:?}: hostPath type check failed: {path} {found}, expected {expected}")]
    HostPathType {
        volume: String,
        path: PathBuf,
        expected: &'static str,
        found: String,
    },
    #[error("volume {volume:?}: invalid path {path:?}: {message}")]
    InvalidPath {
        volume: String,
        path: String,
        message: &'static str,
    },
    #[error("volume {volume:?}: subPath {sub_path:?}: {message}")]
    SubPath {
        volume: String,
        sub_path: String,
        message: String,
    },
    #[error("pod {uid}: removing its volumes: {operation} {path}")]
    Remove {
        uid: String,
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pod uid {uid:?} cannot name a directory (expected a non-empty name without '/')")]
    PodUid { uid: String },
    #[error("pod {uid}: volume work did not finish")]
    Blocking {
        uid: String,
        #[source]
        source: tokio::task::JoinError,
    },
}

type Result<T, E = VolumeError> = std::result::Result<T, E>;

/// The volumes of every pod on this node, under one directory.
#[derive(Debug, Clone)]
pub struct Volumes {
    dir: PathBuf,
    /// Secret volumes on a tmpfs (the kubelet's behaviour, needs root); otherwise on disk.
    secrets_in_memory: bool,
    /// Serializes the filesystem work of every pod (see the module doc).
    lock: Arc<Mutex<()>>,
}

/// One pod's prepared volumes: volume name → host path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodVolumes {
    pub paths: BTreeMap<String, PathBuf>,
    /// Volumes every mount of which is read-only whatever the `volumeMount` says (configMap and
    /// secret volumes).
    pub read_only: BTreeSet<String>,
}

/// What one volume needs on the host, decided before any filesystem work.
#[derive(Debug)]
enum Plan {
    EmptyDir {
        memory: bool,
        size_bytes: Option<u64>,
        fs_group: Option<u32>,
    },
    HostPath {
        path: PathBuf,
        type_: HostPathType,
    },
    Projected {
        plugin: &'static str,
        /// On a tmpfs (secrets).
        memory: bool,
        payload: Payload,
        fs_group: Option<u32>,
    },
}

/// The files of a configMap or secret volume: relative path → content and mode.
type Payload = BTreeMap<PathBuf, FileData>;

#[derive(Debug, Clone, PartialEq, Eq)]
struct FileData {
    data: Vec<u8>,
    mode: u32,
    /// The pod's `fsGroup`, owning group of the file.
    gid: Option<u32>,
}

impl Volumes {
    /// Volumes live under `dir` (the daemon passes `<root>/pods`). Secret volumes are tmpfs
    /// mounts, which needs root; see [`Self::with_secrets_on_disk`].
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            secrets_in_memory: true,
            lock: Arc::default(),
        }
    }

    /// Secret volumes as plain directories instead of tmpfs mounts (tests without root).
    pub fn with_secrets_on_disk(mut self) -> Self {
        self.secrets_in_memory = false;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/<pod uid>`.
    pub fn pod_dir(&self, pod_uid: &str) -> Result<PathBuf> {
        let mut parts = Path::new(pod_uid).components();
        match (parts.next(), parts.next()) {
            (Some(Component::Normal(name)), None) if name == pod_uid => Ok(self.dir.join(name)),
            _ => Err(VolumeError::PodUid {
                uid: pod_uid.to_owned(),
            }),
        }
    }

    /// Creates (or, for a re-adopted pod, finds) every volume of `pod` on the host: emptyDir
    /// contents and tmpfs mounts that exist are kept, configMap and secret volumes are brought up
    /// to date.
    pub async fn prepare(&self, pod: &Pod, source: &dyn ConfigSource) -> Result<PodVolumes> {
        if pod.spec.volumes.is_empty() {
            return Ok(PodVolumes::default());
        }
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let pod_dir = self.pod_dir(&uid)?;
        let mut plans = Vec::with_capacity(pod.spec.volumes.len());
        for volume in &pod.spec.volumes {
            let plan = self.plan(pod, volume, source).await?;
            plans.push((volume.name.clone(), plan));
        }
        let lock = self.lock.clone();
        blocking(&uid, move || {
            let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            let mut prepared = PodVolumes::default();
            for (name, plan) in plans {
                if matches!(plan, Plan::Projected { .. }) {
                    prepared.read_only.insert(name.clone());
                }
                let path = set_up(&pod_dir, &name, plan)?;
                prepared.paths.insert(name, path);
            }
            Ok(prepared)
        })
        .await
    }

    /// Rewrites the pod's configMap and secret volumes from their current objects (atomically,
    /// as the kubelet does); called when one of them changes. Volumes not prepared (yet, or any
    /// more) are left alone; an unchanged object writes nothing; a non-optional object that is
    /// gone is an error and the volume keeps its last content.
    pub async fn refresh(&self, pod: &Pod, source: &dyn ConfigSource) -> Result<()> {
        let projected: Vec<&Volume> = pod
            .spec
            .volumes
            .iter()
            .filter(|v| v.config_map.is_some() || v.secret.is_some())
            .collect();
        if projected.is_empty() {
            return Ok(());
        }
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let pod_dir = self.pod_dir(&uid)?;
        // Each volume on its own: one missing object does not hold back the others' updates.
        let mut first_error = None;
        let mut plans = Vec::with_capacity(projected.len());
        for volume in projected {
            match self.plan(pod, volume, source).await {
                Ok(plan) => plans.push((volume.name.clone(), plan)),
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        let lock = self.lock.clone();
        let written = blocking(&uid, move || {
            let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            let mut first_error = None;
            for (name, plan) in plans {
                let Plan::Projected {
                    plugin,
                    payload,
                    fs_group,
                    memory,
                } = plan
                else {
                    continue;
                };
                let dir = volume_dir(&pod_dir, plugin, &name);
                // A secret's tmpfs that is gone (the host rebooted) is for `prepare` to mount:
                // its data never goes to the disk below.
                let ready = dir.is_dir() && (!memory || is_mount_point(&dir).unwrap_or(false));
                if ready && let Err(err) = write_atomically(&name, &dir, &payload, fs_group) {
                    first_error.get_or_insert(err);
                }
            }
            first_error.map_or(Ok(()), Err)
        })
        .await;
        match first_error {
            Some(err) => Err(err),
            None => written,
        }
    }

    /// Removes every volume of the pod with this uid (emptyDir contents go with it; hostPath
    /// sources are never touched): unmounts its tmpfs volumes, then deletes its directory. A
    /// pod without a directory is already removed.
    pub async fn remove(&self, pod_uid: &str) -> Result<()> {
        let pod_dir = self.pod_dir(pod_uid)?;
        let lock = self.lock.clone();
        let uid = pod_uid.to_owned();
        blocking(pod_uid, move || {
            let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            remove_pod_dir(&uid, &pod_dir)
        })
        .await
    }

    /// Decides what `volume` needs, reading its ConfigMap or Secret.
    async fn plan(&self, pod: &Pod, volume: &Volume, source: &dyn ConfigSource) -> Result<Plan> {
        let name = &volume.name;
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let fs_group = fs_group(pod);
        let Some(kind) = volume.source() else {
            return Err(VolumeError::Invalid {
                volume: name.clone(),
                message: "must set exactly one of emptyDir, hostPath, configMap or secret (the volume types berth supports)".into(),
            });
        };
        Ok(match kind {
            VolumeSource::EmptyDir(empty_dir) => empty_dir_plan(name, empty_dir, fs_group)?,
            VolumeSource::HostPath(host_path) => Plan::HostPath {
                path: PathBuf::from(&host_path.path),
                type_: host_path.type_.unwrap_or(HostPathType::Unset),
            },
            VolumeSource::ConfigMap(config_map) => {
                let data = source
                    .config_map(namespace, &config_map.name)
                    .await
                    .map_err(|source| VolumeError::Source {
                        volume: name.clone(),
                        source,
                    })?;
                let object = Object {
                    volume: name,
                    kind: ObjectKind::ConfigMap,
                    namespace,
                    name: &config_map.name,
                };
                Plan::Projected {
                    plugin: CONFIG_MAP_PLUGIN,
                    memory: false,
                    payload: with_fs_group(
                        object.payload(
                            data,
                            &config_map.items,
                            config_map.default_mode,
                            config_map.optional == Some(true),
                        )?,
                        fs_group,
                    ),
                    fs_group,
                }
            }
            VolumeSource::Secret(secret) => {
                let secret_name = secret.secret_name.as_deref().unwrap_or_default();
                if secret_name.is_empty() {
                    return Err(VolumeError::Invalid {
                        volume: name.clone(),
                        message: "secret.secretName is required".into(),
                    });
                }
                let data = source
                    .secret(namespace, secret_name)
                    .await
                    .map_err(|source| VolumeError::Source {
                        volume: name.clone(),
                        source,
                    })?;
                let object = Object {
                    volume: name,
                    kind: ObjectKind::Secret,
                    namespace,
                    name: secret_name,
                };
                Plan::Projected {
                    plugin: SECRET_PLUGIN,
                    memory: self.secrets_in_memory,
                    payload: with_fs_group(
                        object.payload(
                            data,
                            &secret.items,
                            secret.default_mode,
                            secret.optional == Some(true),
                        )?,
                        fs_group,
                    ),
                    fs_group,
                }
            }
        })
    }
}

async fn blocking<T: Send + 'static>(
    uid: &str,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|source| VolumeError::Blocking {
            uid: uid.to_owned(),
            source,
        })?
}

/// The pod's `securityContext.fsGroup`, when it is a valid gid.
fn fs_group(pod: &Pod) -> Option<u32> {
    let group = pod.spec.security_context.as_ref()?.fs_group?;
    u32::try_from(group).ok()
}

/// With an `fsGroup`, files belong to that group and are group-readable, as the kubelet makes
/// them (its `SetVolumeOwnership` for read-only volumes).
fn with_fs_group(mut payload: Payload, fs_group: Option<u32>) -> Payload {
    if let Some(gid) = fs_group {
        for file in payload.values_mut() {
            file.mode |= 0o440;
            file.gid = Some(gid);
        }
    }
    payload
}

fn empty_dir_plan(
    volume: &str,
    empty_dir: &EmptyDirVolumeSource,
    fs_group: Option<u32>,
) -> Result<Plan> {
    let memory = empty_dir.medium == Some(StorageMedium::Memory);
    let size_bytes = match &empty_dir.size_limit {
        Some(limit) if limit.is_negative() => {
            return Err(VolumeError::Invalid {
                volume: volume.to_owned(),
                message: format!(
                    "emptyDir.sizeLimit {:?} must not be negative",
                    limit.as_str()
                ),
            });
        }
        // tmpfs reads `size=0` as unlimited; Kubernetes reads a zero limit the same way.
        Some(limit) => u64::try_from(limit.to_bytes()).ok().filter(|b| *b > 0),
        None => None,
    };
    Ok(Plan::EmptyDir {
        memory,
        size_bytes,
        fs_group,
    })
}

/// The ConfigMap or Secret a volume projects, for its payload and its errors.
struct Object<'a> {
    volume: &'a str,
    kind: ObjectKind,
    namespace: &'a str,
    name: &'a str,
}

impl Object<'_> {
    /// The files of the volume: every key (or the `items`), with `defaultMode` or the item's mode.
    fn payload(
        &self,
        data: Option<BTreeMap<String, String>>,
        items: &[KeyToPath],
        default_mode: Option<i32>,
        optional: bool,
    ) -> Result<Payload> {
        let default_mode = self.mode(default_mode)?;
        let Some(data) = data else {
            if optional {
                return Ok(Payload::new());
            }
            return Err(VolumeError::MissingObject {
                volume: self.volume.to_owned(),
                kind: self.kind,
                namespace: self.namespace.to_owned(),
                name: self.name.to_owned(),
            });
        };
        let mut payload = Payload::new();
        if items.is_empty() {
            for (key, value) in data {
                let path = self.relative_path(&key)?;
                payload.insert(
                    path,
                    FileData {
                        data: value.into_bytes(),
                        mode: default_mode,
                        gid: None,
                    },
                );
            }
            return Ok(payload);
        }
        for item in items {
            let Some(value) = data.get(&item.key) else {
                if optional {
                    continue;
                }
                return Err(VolumeError::MissingKey {
                    volume: self.volume.to_owned(),
                    kind: self.kind,
                    namespace: self.namespace.to_owned(),
                    name: self.name.to_owned(),
                    key: item.key.clone(),
                });
            };
            let path = self.relative_path(&item.path)?;
            let mode = match item.mode {
                Some(_) => self.mode(item.mode)?,
                None => default_mode,
            };
            payload.insert(
                path,
                FileData {
                    data: value.clone().into_bytes(),
                    mode,
                    gid: None,
                },
            );
        }
        Ok(payload)
    }

    fn mode(&self, mode: Option<i32>) -> Result<u32> {
        match mode {
            None => Ok(DEFAULT_FILE_MODE),
            Some(m) => u32::try_from(m)
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or_else(|| VolumeError::Invalid {
                    volume: self.volume.to_owned(),
                    message: format!("file mode {m} is not between 0 and 0777 (octal)"),
                }),
        }
    }

    fn relative_path(&self, path: &str) -> Result<PathBuf> {
        check_relative_path(path, true).map_err(|message| VolumeError::InvalidPath {
            volume: self.volume.to_owned(),
            path: path.to_owned(),
            message,
        })
    }
}

/// A relative path of normal components (the kubelet's `validatePath`); with `no_dot_dot_prefix`
/// the first component may not start with `..` either, so it cannot shadow `..data`.
fn check_relative_path(path: &str, no_dot_dot_prefix: bool) -> Result<PathBuf, &'static str> {
    if path.is_empty() {
        return Err("must not be empty");
    }
    if path.starts_with('/') {
        return Err("must be a relative path");
    }
    if path.split('/').any(|c| c == "..") {
        return Err("must not contain a '..' component");
    }
    if no_dot_dot_prefix && path.starts_with("..") {
        return Err("must not start with '..'");
    }
    let clean: PathBuf = Path::new(path)
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    if clean.as_os_str().is_empty() {
        return Err("must name a file, not the volume itself");
    }
    Ok(clean)
}

fn volume_dir(pod_dir: &Path, plugin: &str, volume: &str) -> PathBuf {
    pod_dir.join("volumes").join(plugin).join(volume)
}

fn io_error(
    volume: &str,
    operation: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> VolumeError {
    let volume = volume.to_owned();
    let path = path.to_path_buf();
    move |source| VolumeError::Io {
        volume,
        operation,
        path,
        source,
    }
}

fn remove_error(
    uid: &str,
    operation: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> VolumeError {
    let uid = uid.to_owned();
    let path = path.to_path_buf();
    move |source| VolumeError::Remove {
        uid,
        operation,
        path,
        source,
    }
}

fn errno_error(
    volume: &str,
    operation: &'static str,
    path: &Path,
) -> impl FnOnce(Errno) -> VolumeError {
    let io = io_error(volume, operation, path);
    move |errno| io(std::io::Error::from(errno))
}

/// Creates one volume on the host and returns the path its mounts bind.
fn set_up(pod_dir: &Path, name: &str, plan: Plan) -> Result<PathBuf> {
    match plan {
        Plan::EmptyDir {
            memory,
            size_bytes,
            fs_group,
        } => {
            let dir = volume_dir(pod_dir, EMPTY_DIR_PLUGIN, name);
            make_dir(name, &dir)?;
            if memory {
                let mut options = "mode=0777".to_owned();
                if let Some(size) = size_bytes {
                    options.push_str(&format!(",size={size}"));
                }
                mount_tmpfs(name, &dir, &options)?;
            }
            // World-writable as Kubernetes makes it, so non-root containers can use it; with an
            // fsGroup, owned by that group and setgid so new files inherit it.
            match fs_group {
                None => set_mode(name, &dir, 0o777)?,
                Some(gid) => {
                    std::os::unix::fs::lchown(&dir, None, Some(gid)).map_err(io_error(
                        name,
                        "changing the group of",
                        &dir,
                    ))?;
                    set_mode(name, &dir, 0o2777)?;
                }
            }
            Ok(dir)
        }
        Plan::HostPath { path, type_ } => {
            check_host_path(name, &path, type_)?;
            Ok(path)
        }
        Plan::Projected {
            plugin,
            memory,
            payload,
            fs_group,
        } => {
            let dir = volume_dir(pod_dir, plugin, name);
            make_dir(name, &dir)?;
            if memory {
                mount_tmpfs(name, &dir, "mode=0755")?;
            }
            write_atomically(name, &dir, &payload, fs_group)?;
            Ok(dir)
        }
    }
}

fn make_dir(volume: &str, dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(io_error(volume, "creating directory", dir))
}

fn set_mode(volume: &str, path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_error(
        volume,
        "setting the mode of",
        path,
    ))
}

/// Whether `dir` is the root of a filesystem other than its parent's (a mount point we made).
fn is_mount_point(dir: &Path) -> std::io::Result<bool> {
    let own = std::fs::symlink_metadata(dir)?;
    let parent = std::fs::symlink_metadata(dir.join(".."))?;
    Ok(own.dev() != parent.dev() || own.ino() == parent.ino())
}

/// Mounts a tmpfs on `dir` unless one is there already (a re-adopted pod keeps its data).
fn mount_tmpfs(volume: &str, dir: &Path, options: &str) -> Result<()> {
    if is_mount_point(dir).map_err(io_error(volume, "checking mount point", dir))? {
        return Ok(());
    }
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(options),
    )
    .map_err(errno_error(volume, "mounting tmpfs on", dir))
}

fn check_host_path(volume: &str, path: &Path, type_: HostPathType) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let mismatch = |expected: &'static str, found: String| VolumeError::HostPathType {
        volume: volume.to_owned(),
        path: path.to_path_buf(),
        expected,
        found,
    };
    let describe = |meta: &std::fs::Metadata| {
        let t = meta.file_type();
        let what = if t.is_dir() {
            "a directory"
        } else if t.is_file() {
            "a regular file"
        } else if t.is_socket() {
            "a socket"
        } else if t.is_char_device() {
            "a character device"
        } else if t.is_block_device() {
            "a block device"
        } else if t.is_fifo() {
            "a fifo"
        } else {
            "something else"
        };
        format!("is {what}")
    };
    let stat = |path: &Path| match std::fs::metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(volume, "inspecting hostPath", path)(e)),
    };
    let (expected, ok): (&'static str, fn(&std::fs::FileType) -> bool) = match type_ {
        HostPathType::Unset => return Ok(()),
        HostPathType::DirectoryOrCreate => {
            if stat(path)?.is_none() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(path)
                    .map_err(io_error(volume, "creating hostPath directory", path))?;
            }
            ("a directory", |t| t.is_dir())
        }
        HostPathType::Directory => ("a directory", |t| t.is_dir()),
        HostPathType::FileOrCreate => {
            if stat(path)?.is_none() {
                // As in Kubernetes the parent must exist: only the file is created.
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o644)
                    .open(path)
                    .map_err(io_error(volume, "creating hostPath file", path))?;
            }
            ("a regular file", |t| t.is_file())
        }
        HostPathType::File => ("a regular file", |t| t.is_file()),
        HostPathType::Socket => ("a socket", |t| t.is_socket()),
        HostPathType::CharDevice => ("a character device", |t| t.is_char_device()),
        HostPathType::BlockDevice => ("a block device", |t| t.is_block_device()),
    };
    match stat(path)? {
        None => Err(mismatch(expected, "does not exist".into())),
        Some(meta) if ok(&meta.file_type()) => Ok(()),
        Some(meta) => Err(mismatch(expected, describe(&meta))),
    }
}

/// The files under `dir` (not following symlinks), relative path → content, mode and (when an
/// `fs_group` is wanted) group.
fn read_payload(volume: &str, dir: &Path, fs_group: Option<u32>) -> Result<Payload> {
    fn walk(
        volume: &str,
        root: &Path,
        dir: &Path,
        fs_group: Option<u32>,
        payload: &mut Payload,
    ) -> Result<()> {
        let entries = std::fs::read_dir(dir).map_err(io_error(volume, "reading", dir))?;
        for entry in entries {
            let path = entry.map_err(io_error(volume, "reading", dir))?.path();
            let meta =
                std::fs::symlink_metadata(&path).map_err(io_error(volume, "inspecting", &path))?;
            if meta.is_dir() {
                walk(volume, root, &path, fs_group, payload)?;
            } else {
                let data = if meta.is_file() {
                    std::fs::read(&path).map_err(io_error(volume, "reading", &path))?
                } else {
                    // Not something we write: makes the comparison fail, so it is rewritten.
                    Vec::new()
                };
                let relative = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
                let mode = if meta.is_file() {
                    meta.mode() & 0o777
                } else {
                    u32::MAX
                };
                let gid = fs_group.map(|_| meta.gid());
                payload.insert(relative, FileData { data, mode, gid });
            }
        }
        Ok(())
    }
    let mut payload = Payload::new();
    walk(volume, dir, dir, fs_group, &mut payload)?;
    Ok(payload)
}

/// The first component of every path of the payload: the volume's user-visible names.
fn top_level(payload: &Payload) -> BTreeSet<PathBuf> {
    payload
        .keys()
        .filter_map(|p| p.components().next())
        .map(|c| PathBuf::from(c.as_os_str()))
        .collect()
}

/// The user-visible names of `dir`: everything but `..`-prefixed entries.
fn visible_names(volume: &str, dir: &Path) -> Result<BTreeSet<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(io_error(volume, "reading", dir))?;
    let mut names = BTreeSet::new();
    for entry in entries {
        let name = entry.map_err(io_error(volume, "reading", dir))?.file_name();
        if !name.to_string_lossy().starts_with("..") {
            names.insert(PathBuf::from(name));
        }
    }
    Ok(names)
}

/// Writes `payload` into the volume `dir` as the kubelet's AtomicWriter does (see the module
/// doc). Returns whether anything was written.
fn write_atomically(
    volume: &str,
    dir: &Path,
    payload: &Payload,
    fs_group: Option<u32>,
) -> Result<bool> {
    let data_link = dir.join(DATA_LINK);
    let current = match std::fs::read_link(&data_link) {
        Ok(target) => Some(target),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error(volume, "reading symlink", &data_link)(e)),
    };
    let wanted_names = top_level(payload);
    let old_names = visible_names(volume, dir)?;
    if let Some(current) = current.as_ref().filter(|c| dir.join(c).is_dir()) {
        let unchanged = read_payload(volume, &dir.join(current), fs_group)? == *payload
            && old_names == wanted_names
            && wanted_names.iter().all(|n| is_data_link(&dir.join(n), n));
        if unchanged {
            return Ok(false);
        }
    }

    // 1. The new version in a fresh timestamped directory.
    let version = create_version_dir(volume, dir)?;
    let version_dir = dir.join(&version);
    for (path, file) in payload {
        let target = version_dir.join(path);
        if let Some(parent) = target.parent() {
            make_dir(volume, parent)?;
        }
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(file.mode)
            .open(&target)
            .map_err(io_error(volume, "creating", &target))?;
        out.write_all(&file.data)
            .map_err(io_error(volume, "writing", &target))?;
        if let Some(gid) = file.gid {
            std::os::unix::fs::lchown(&target, None, Some(gid)).map_err(io_error(
                volume,
                "changing the group of",
                &target,
            ))?;
        }
        // The umask may have cleared bits the mode asks for.
        set_mode(volume, &target, file.mode)?;
    }

    // 2. `..data` swapped to it in one rename.
    let tmp_link = dir.join(DATA_LINK_TMP);
    match std::fs::remove_file(&tmp_link) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(volume, "removing", &tmp_link)(e)),
    }
    std::os::unix::fs::symlink(&version, &tmp_link).map_err(io_error(
        volume,
        "creating symlink",
        &tmp_link,
    ))?;
    std::fs::rename(&tmp_link, &data_link).map_err(io_error(volume, "renaming", &tmp_link))?;

    // 3. Symlinks of new names through `..data`.
    for name in &wanted_names {
        let link = dir.join(name);
        if is_data_link(&link, name) {
            continue;
        }
        match std::fs::symlink_metadata(&link) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Ok(meta) if meta.file_type().is_symlink() => {
                std::fs::remove_file(&link).map_err(io_error(volume, "removing", &link))?;
            }
            Ok(_) => {
                return Err(VolumeError::InvalidPath {
                    volume: volume.to_owned(),
                    path: name.display().to_string(),
                    message: "a file or directory that is not ours is in the way of its symlink",
                });
            }
            Err(e) => return Err(io_error(volume, "inspecting", &link)(e)),
        }
        std::os::unix::fs::symlink(Path::new(DATA_LINK).join(name), &link).map_err(io_error(
            volume,
            "creating symlink",
            &link,
        ))?;
    }

    // 4. The old versions (and any left by an interrupted write), then names that are gone.
    let entries = std::fs::read_dir(dir).map_err(io_error(volume, "reading", dir))?;
    for entry in entries {
        let name = entry.map_err(io_error(volume, "reading", dir))?.file_name();
        let text = name.to_string_lossy();
        if text.starts_with("..") && text != DATA_LINK && *name != *version.as_os_str() {
            let path = dir.join(&name);
            let meta =
                std::fs::symlink_metadata(&path).map_err(io_error(volume, "inspecting", &path))?;
            if meta.is_dir() {
                std::fs::remove_dir_all(&path).map_err(io_error(volume, "removing", &path))?;
            }
        }
    }
    for name in old_names.difference(&wanted_names) {
        let link = dir.join(name);
        let is_symlink = std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink());
        if is_symlink {
            std::fs::remove_file(&link).map_err(io_error(volume, "removing", &link))?;
        }
    }
    Ok(true)
}

/// Whether `link` is the symlink `..data/<name>`.
fn is_data_link(link: &Path, name: &Path) -> bool {
    std::fs::read_link(link).is_ok_and(|t| t == Path::new(DATA_LINK).join(name))
}

/// Creates `..<UTC timestamp>.<nanoseconds>` in `dir` and returns its name.
fn create_version_dir(volume: &str, dir: &Path) -> Result<PathBuf> {
    let now = jiff::Timestamp::now();
    let base = format!(
        "..{}.{:09}",
        now.strftime("%Y_%m_%d_%H_%M_%S"),
        now.subsec_nanosecond()
    );
    let mut attempt = 0u32;
    loop {
        let name = if attempt == 0 {
            PathBuf::from(&base)
        } else {
            PathBuf::from(format!("{base}_{attempt}"))
        };
        let path = dir.join(&name);
        match std::fs::DirBuilder::new().mode(0o755).create(&path) {
            Ok(()) => return Ok(name),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1;
            }
            Err(e) => return Err(io_error(volume, "creating directory", &path)(e)),
        }
    }
}

/// Unmounts the pod's tmpfs volumes and deletes its directory (see the module doc).
fn remove_pod_dir(uid: &str, pod_dir: &Path) -> Result<()> {
    let root = match std::fs::symlink_metadata(pod_dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(remove_error(uid, "inspecting", pod_dir)(e)),
    };
    if !root.is_dir() {
        return Err(remove_error(uid, "removing (not a directory)", pod_dir)(
            std::io::Error::from(std::io::ErrorKind::NotADirectory),
        ));
    }
    for plugin in [EMPTY_DIR_PLUGIN, SECRET_PLUGIN] {
        let plugin_dir = pod_dir.join("volumes").join(plugin);
        let Ok(entries) = std::fs::read_dir(&plugin_dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            let volume = entry.file_name().to_string_lossy().into_owned();
            while is_mount_point(&dir).unwrap_or(false) {
                match nix::mount::umount2(&dir, MntFlags::empty()) {
                    Ok(()) => {}
                    // Still used by a process we do not know of: detach it so the directory
                    // can go; the memory is freed when that process lets go.
                    Err(Errno::EBUSY) => nix::mount::umount2(&dir, MntFlags::MNT_DETACH)
                        .map_err(errno_error(&volume, "unmounting", &dir))?,
                    Err(Errno::EINVAL) => break,
                    Err(errno) => return Err(errno_error(&volume, "unmounting", &dir)(errno)),
                }
            }
        }
    }
    remove_tree(uid, pod_dir, root.dev())
}

/// Deletes `path` without following symlinks or entering another filesystem.
fn remove_tree(uid: &str, path: &Path, dev: u64) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(remove_error(uid, "inspecting", path)(e)),
    };
    if !meta.is_dir() {
        return std::fs::remove_file(path).map_err(remove_error(uid, "removing", path));
    }
    if meta.dev() != dev {
        return Err(remove_error(uid, "removing (still a mount point)", path)(
            std::io::Error::from(Errno::EBUSY),
        ));
    }
    let entries = std::fs::read_dir(path).map_err(remove_error(uid, "reading", path))?;
    for entry in entries {
        let entry = entry.map_err(remove_error(uid, "reading", path))?;
        remove_tree(uid, &entry.path(), dev)?;
    }
    match std::fs::remove_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(remove_error(uid, "removing", path)(e)),
    }
}

/// The bind mounts of `container`'s `volumeMounts` (readOnly, subPath) over `volumes`.
pub fn mounts(container: &Container, volumes: &PodVolumes) -> Result<Vec<Mount>> {
    container
        .volume_mounts
        .iter()
        .map(|m| {
            let source = volumes
                .paths
                .get(&m.name)
                .ok_or_else(|| VolumeError::Invalid {
                    volume: m.name.clone(),
                    message: format!(
                        "no such volume in the pod (volumes: {})",
                        volumes
                            .paths
                            .keys()
                            .map(String::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })?;
            if !m.mount_path.starts_with('/') {
                return Err(VolumeError::Invalid {
                    volume: m.name.clone(),
                    message: format!("mountPath {:?} must be an absolute path", m.mount_path),
                });
            }
            let source = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                Some(sub_path) => resolve_sub_path(&m.name, source, sub_path)?,
                None => source.clone(),
            };
            Ok(Mount {
                source,
                destination: m.mount_path.clone(),
                read_only: m.read_only.unwrap_or(false) || volumes.read_only.contains(&m.name),
            })
        })
        .collect()
}

/// The host path of `sub_path` inside the volume at `root` (see the module doc).
fn resolve_sub_path(volume: &str, root: &Path, sub_path: &str) -> Result<PathBuf> {
    let error = |message: String| VolumeError::SubPath {
        volume: volume.to_owned(),
        sub_path: sub_path.to_owned(),
        message,
    };
    check_relative_path(sub_path, false).map_err(|m| error(m.into()))?;
    let root_meta = std::fs::symlink_metadata(root)
        .map_err(|e| error(format!("the volume at {} is unusable: {e}", root.display())))?;
    if !root_meta.is_dir() {
        return Err(error(format!(
            "the volume at {} is not a directory",
            root.display()
        )));
    }
    let dir_mode = root_meta.mode() & 0o7777;
    let mut pending: Vec<std::ffi::OsString> = Path::new(sub_path)
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            _ => None,
        })
        .collect();
    let mut resolved = root.to_path_buf();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            if resolved == root {
                return Err(error("a symlink in it leads out of the volume".into()));
            }
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        match std::fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(error("too many levels of symlinks".into()));
                }
                let target = std::fs::read_link(&candidate)
                    .map_err(|e| error(format!("reading symlink {}: {e}", candidate.display())))?;
                let relative = if target.is_absolute() {
                    match target.strip_prefix(root) {
                        Ok(inside) => {
                            resolved = root.to_path_buf();
                            inside.to_path_buf()
                        }
                        Err(_) => {
                            return Err(error(format!(
                                "symlink {} points out of the volume to {}",
                                candidate.display(),
                                target.display()
                            )));
                        }
                    }
                } else {
                    target
                };
                for c in relative.components().rev() {
                    match c {
                        Component::Normal(n) => pending.push(n.to_os_string()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            Ok(_) => resolved = candidate,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .mode(dir_mode)
                    .create(&candidate)
                    .map_err(|e| error(format!("creating {}: {e}", candidate.display())))?;
                // The umask may have cleared bits of the volume's mode.
                std::fs::set_permissions(&candidate, std::fs::Permissions::from_mode(dir_mode))
                    .map_err(|e| error(format!("chmod {}: {e}", candidate.display())))?;
                resolved = candidate;
            }
            Err(e) => {
                return Err(error(format!("inspecting {}: {e}", candidate.display())));
            }
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use berth_api::core_v1::{
        ConfigMapVolumeSource, HostPathVolumeSource, SecretVolumeSource, VolumeMount,
    };

    use super::*;
    use crate::pod::spec::FakeConfigSource;

    fn pod(volumes: Vec<Volume>) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web".into());
        pod.metadata.namespace = Some("shop".into());
        pod.metadata.uid = Some("uid-1".into());
        pod.spec.volumes = volumes;
        pod
    }

    fn config_map_volume(name: &str, config_map: &str, items: Vec<KeyToPath>) -> Volume {
        Volume {
            name: name.into(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map.into(),
                items,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn item(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
        KeyToPath {
            key: key.into(),
            path: path.into(),
            mode,
        }
    }

    fn host_path(name: &str, path: &Path, type_: HostPathType) -> Volume {
        Volume {
            name: name.into(),
            host_path: Some(HostPathVolumeSource {
                path: path.display().to_string(),
                type_: Some(type_),
            }),
            ..Default::default()
        }
    }

    fn volume_mount(name: &str, path: &str, sub_path: Option<&str>) -> VolumeMount {
        VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            read_only: None,
            sub_path: sub_path.map(str::to_owned),
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().mode() & 0o777
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    #[tokio::test]
    async fn empty_dir_is_kept_for_a_readopted_pod_and_removed_with_the_pod() {
        let tmp = tempfile::tempdir().unwrap();
        let volumes = Volumes::new(tmp.path());
        let pod = pod(vec![Volume {
            name: "scratch".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        }]);
        let source = FakeConfigSource::default();
        let prepared = volumes.prepare(&pod, &source).await.unwrap();
        let dir = tmp
            .path()
            .join("uid-1/volumes/kubernetes.io~empty-dir/scratch");
        assert_eq!(prepared.paths["scratch"], dir);
        assert!(prepared.read_only.is_empty());
        assert_eq!(mode(&dir), 0o777);
        std::fs::write(dir.join("keep"), "x").unwrap();
        // A re-adopted pod finds its data again.
        let again = volumes.prepare(&pod, &source).await.unwrap();
        assert_eq!(again, prepared);
        assert_eq!(read(&dir.join("keep")), "x");

        volumes.remove("uid-1").await.unwrap();
        assert!(!tmp.path().join("uid-1").exists());
        volumes.remove("uid-1").await.unwrap();
        assert!(matches!(
            volumes.remove("../etc").await,
            Err(VolumeError::PodUid { .. })
        ));
    }

    #[tokio::test]
    async fn remove_does_not_follow_symlinks_out_of_the_pod() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("precious"), "x").unwrap();
        let volumes = Volumes::new(tmp.path().join("pods"));
        let pod = pod(vec![Volume {
            name: "scratch".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        }]);
        let prepared = volumes
            .prepare(&pod, &FakeConfigSource::default())
            .await
            .unwrap();
        // What a container could leave in its emptyDir.
        std::os::unix::fs::symlink(&outside, prepared.paths["scratch"].join("link")).unwrap();
        volumes.remove("uid-1").await.unwrap();
        assert_eq!(read(&outside.join("precious")), "x");
        assert!(!tmp.path().join("pods/uid-1").exists());
    }

    #[tokio::test]
    async fn config_map_volume_is_written_atomically_through_data_link() {
        let tmp = tempfile::tempdir().unwrap();
        let volumes = Volumes::new(tmp.path());
        let mut volume = config_map_volume("config", "cfg", vec![]);
        volume.config_map.as_mut().unwrap().default_mode = Some(0o600);
        let pod = pod(vec![volume]);
        let source =
            FakeConfigSource::default().with_config_map("shop", "cfg", &[("a", "1"), ("b", "2")]);
        let prepared = volumes.prepare(&pod, &source).await.unwrap();
        let dir = tmp
            .path()
            .join("uid-1/volumes/kubernetes.io~configmap/config");
        assert_eq!(prepared.paths["config"], dir);
        assert!(prepared.read_only.contains("config"));
        assert_eq!(read(&dir.join("a")), "1");
        assert_eq!(read(&dir.join("b")), "2");
        assert_eq!(mode(&dir.join("a")), 0o600);
        assert_eq!(
            std::fs::read_link(dir.join("a")).unwrap(),
            Path::new("..data/a")
        );
        let version = std::fs::read_link(dir.join("..data")).unwrap();
        assert!(version.to_string_lossy().starts_with("..20"), "{version:?}");

        // Unchanged: nothing is written, the version stays.
        volumes.refresh(&pod, &source).await.unwrap();
        assert_eq!(std::fs::read_link(dir.join("..data")).unwrap(), version);

        // A volume whose object is gone keeps its content and reports it; the others still
        // get their updates.
        let mut two = pod.clone();
        two.spec.volumes.push(Volume {
            name: "creds".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some("db".into()),
                ..Default::default()
            }),
            ..Default::default()
        });
        let both = source.clone().with_secret("shop", "db", &[("k", "v")]);
        let prepared = Volumes::new(tmp.path())
            .with_secrets_on_disk()
            .prepare(&two, &both)
            .await
            .unwrap();
        let creds = prepared.paths["creds"].clone();
        let only_config_map =
            FakeConfigSource::default().with_config_map("shop", "cfg", &[("a", "1"), ("b", "3")]);
        let err = Volumes::new(tmp.path())
            .with_secrets_on_disk()
            .refresh(&two, &only_config_map)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, VolumeError::MissingObject { volume, .. } if volume == "creds"),
            "{err}"
        );
        assert_eq!(read(&dir.join("b")), "3");
        assert_eq!(read(&creds.join("k")), "v");
        let version = std::fs::read_link(dir.join("..data")).unwrap();

        // Changed: a new version, the old one gone, a removed key's symlink gone.
        let source =
            FakeConfigSource::default().with_config_map("shop", "cfg", &[("a", "10"), ("c", "3")]);
        volumes.refresh(&pod, &source).await.unwrap();
        let new_version = std::fs::read_link(dir.join("..data")).unwrap();
        assert_ne!(new_version, version);
        assert!(!dir.join(&version).exists());
        assert_eq!(read(&dir.join("a")), "10");
        assert_eq!(read(&dir.join("c")), "3");
        assert!(std::fs::symlink_metadata(dir.join("b")).is_err());
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                new_version.display().to_string(),
                "..data".into(),
                "a".into(),
                "c".into()
            ]
        );
    }

    #[tokio::test]
    async fn items_choose_keys_paths_and_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let volumes = Volumes::new(tmp.path());
        let pod = pod(vec![config_map_volume(
            "config",
            "cfg",
            vec![
                item("a", "nested/dir/a.conf", Some(0o400)),
                item("b", "b.txt", None),
            ],
        )]);
        let source = FakeConfigSource::default().with_config_map(
            "shop",
            "cfg",
            &[("a", "1"), ("b", "2"), ("c", "3")],
        );
        let dir = volumes.prepare(&pod, &source).await.unwrap().paths["config"].clone();
        assert_eq!(read(&dir.join("nested/dir/a.conf")), "1");
        assert_eq!(mode(&dir.join("nested/dir/a.conf")), 0o400);
        assert_eq!(mode(&dir.join("b.txt")), 0o644);
        assert_eq!(
            std::fs::read_link(dir.join("nested")).unwrap(),
            Path::new("..data/nested")
        );
        assert!(!dir.join("c").exists());
    }

    #[tokio::test]
    async fn missing_objects_and_keys_fail_unless_optional() {
        let tmp = tempfile::tempdir().unwrap();
        let volumes = Volumes::new(tmp.path()).with_secrets_on_disk();
        let source = FakeConfigSource::default().with_config_map("shop", "cfg", &[("a", "1")]);

        let missing = pod(vec![config_map_volume("config", "nope", vec![])]);
        let err = volumes.prepare(&missing, &source).await.unwrap_err();
        assert!(
            matches!(&err, VolumeError::MissingObject { volume, name, kind: ObjectKind::ConfigMap, .. } if volume == "config" && name == "nope"),
            "{err}"
        );
        let missing_key = pod(vec![config_map_volume(
            "config",
            "cfg",
            vec![item("x", "x", None)],
        )]);
        let err = volumes.prepare(&missing_key, &source).await.unwrap_err();
        assert!(
            matches!(&err, VolumeError::MissingKey { key, .. } if key == "x"),
            "{err}"
        );

        let mut optional = missing.clone();
        optional.spec.volumes[0]
            .config_map
            .as_mut()
            .unwrap()
            .optional = Some(true);
        let dir = volumes.prepare(&optional, &source).await.unwrap().paths["config"].clone();
        assert!(dir.join("..data").exists());
        assert_eq!(visible_names("config", &dir).unwrap(), BTreeSet::new());

        let mut optional_key = missing_key.clone();
        optional_key.spec.volumes[0]
            .config_map
            .as_mut()
            .unwrap()
            .optional = Some(true);
        let dir = volumes.prepare(&optional_key, &source).await.unwrap().paths["config"].clone();
        assert_eq!(visible_names("config", &dir).unwrap(), BTreeSet::new());

        let secret = pod(vec![Volume {
            name: "creds".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some("gone".into()),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        let err = volumes.prepare(&secret, &source).await.unwrap_err();
        assert!(
            matches!(
                &err,
                VolumeError::MissingObject {
                    kind: ObjectKind::Secret,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn secret_volume_holds_decoded_values() {
        let tmp = tempfile::tempdir().unwrap();
        let volumes = Volumes::new(tmp.path()).with_secrets_on_disk();
        let pod = pod(vec![Volume {
            name: "creds".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some("db".into()),
                default_mode: Some(0o640),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        let source = FakeConfigSource::default().with_secret("shop", "db", &[("password", "s3")]);
        let prepared = volumes.prepare(&pod, &source).await.unwrap();
        let dir = tmp.path().join("uid-1/volumes/kubernetes.io~secret/creds");
        assert_eq!(prepared.paths["creds"], dir);
        assert_eq!(read(&dir.join("password")), "s3");
        assert_eq!(mode(&dir.join("password")), 0o640);
    }

    #[tokio::test]
    async fn fs_group_owns_files_and_empty_dirs() {
        // Root may give files any group; anyone else only one of their own.
        let gid = if nix::unistd::geteuid().is_root() {
            4321
        } else {
            nix::unistd::getegid().as_raw()
        };
        let tmp = tempfile::tempdir().unwrap();
        let volumes = Volumes::new(tmp.path()).with_secrets_on_disk();
        let mut pod = pod(vec![
            Volume {
                name: "creds".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some("db".into()),
                    default_mode: Some(0o400),
                    ..Default::default()
                }),
                ..Default::default()
            },
            Volume {
                name: "scratch".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            },
        ]);
        pod.spec.security_context = Some(berth_api::core_v1::PodSecurityContext {
            fs_group: Some(i64::from(gid)),
            ..Default::default()
        });
        let source = FakeConfigSource::default().with_secret("shop", "db", &[("password", "s3")]);
        let prepared = volumes.prepare(&pod, &source).await.unwrap();
        let password = prepared.paths["creds"].join("password");
        assert_eq!(std::fs::metadata(&password).unwrap().gid(), gid);
        assert_eq!(mode(&password), 0o440);
        let scratch = &prepared.paths["scratch"];
        assert_eq!(std::fs::metadata(scratch).unwrap().gid(), gid);
        assert_eq!(std::fs::metadata(scratch).unwrap().mode() & 0o7777, 0o2777);
        // Group and mode are part of the content: an unchanged secret writes nothing.
        let data = prepared.paths["creds"].join("..data");
        let version = std::fs::read_link(&data).unwrap();
        volumes.refresh(&pod, &source).await.unwrap();
        assert_eq!(std::fs::read_link(&data).unwrap(), version);
    }

    #[tokio::test]
    async fn item_paths_must_stay_inside_the_volume() {
        let tmp = tempfile::tempdir().unwrap();
        let volumes = Volumes::new(tmp.path());
        let source = FakeConfigSource::default().with_config_map("shop", "cfg", &[("a", "1")]);
        for bad in ["../a", "/etc/a", "x/../../a", "..data", ""] {
            let pod = pod(vec![config_map_volume(
                "config",
                "cfg",
                vec![item("a", bad, None)],
            )]);
            let err = volumes.prepare(&pod, &source).await.unwrap_err();
            assert!(
                matches!(&err, VolumeError::InvalidPath { path, .. } if path == bad),
                "{bad:?}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn host_path_types_are_checked_and_created() {
        let tmp = tempfile::tempdir().unwrap();
        let volumes = Volumes::new(tmp.path().join("pods"));
        let source = FakeConfigSource::default();
        let file = tmp.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let dir = tmp.path().join("dir");
        std::fs::create_dir(&dir).unwrap();
        let socket_path = tmp.path().join("sock");
        let _socket = std::os::unix::net::UnixListener::bind(&socket_path).unwrap();

        let ok = [
            (file.clone(), HostPathType::File),
            (file.clone(), HostPathType::FileOrCreate),
            (dir.clone(), HostPathType::Directory),
            (dir.clone(), HostPathType::DirectoryOrCreate),
            (socket_path.clone(), HostPathType::Socket),
            (PathBuf::from("/dev/null"), HostPathType::CharDevice),
            (tmp.path().join("anything"), HostPathType::Unset),
        ];
        for (path, type_) in ok {
            let pod = pod(vec![host_path("host", &path, type_)]);
            let prepared = volumes.prepare(&pod, &source).await.unwrap();
            assert_eq!(prepared.paths["host"], path, "{type_:?}");
        }

        let bad = [
            (dir.clone(), HostPathType::File, "is a directory"),
            (file.clone(), HostPathType::Directory, "is a regular file"),
            (
                file.clone(),
                HostPathType::DirectoryOrCreate,
                "is a regular file",
            ),
            (
                tmp.path().join("missing"),
                HostPathType::Directory,
                "does not exist",
            ),
            (file.clone(), HostPathType::Socket, "is a regular file"),
            (file.clone(), HostPathType::BlockDevice, "is a regular file"),
            (
                PathBuf::from("/dev/null"),
                HostPathType::BlockDevice,
                "is a character device",
            ),
        ];
        for (path, type_, found_text) in bad {
            let pod = pod(vec![host_path("host", &path, type_)]);
            let err = volumes.prepare(&pod, &source).await.unwrap_err();
            assert!(
                matches!(&err, VolumeError::HostPathType { volume, path: p, found, .. }
                    if volume == "host" && *p == path && found == found_text),
                "{type_:?} {}: {err}",
                path.display()
            );
        }

        // The OrCreate types create what is missing: directories with parents, files only in an
        // existing directory.
        let new_dir = tmp.path().join("new/deep/dir");
        let pod1 = pod(vec![host_path(
            "host",
            &new_dir,
            HostPathType::DirectoryOrCreate,
        )]);
        volumes.prepare(&pod1, &source).await.unwrap();
        assert!(new_dir.is_dir());
        assert_eq!(mode(&new_dir), 0o755);
        let new_file = tmp.path().join("new/file");
        let pod2 = pod(vec![host_path(
            "host",
            &new_file,
            HostPathType::FileOrCreate,
        )]);
        volumes.prepare(&pod2, &source).await.unwrap();
        assert!(new_file.is_file());
        assert_eq!(mode(&new_file), 0o644);
        let orphan = tmp.path().join("no/parent/file");
        let pod3 = pod(vec![host_path("host", &orphan, HostPathType::FileOrCreate)]);
        let err = volumes.prepare(&pod3, &source).await.unwrap_err();
        assert!(
            matches!(&err, VolumeError::Io { volume, .. } if volume == "host"),
            "{err}"
        );

        // Removing the pod never touches hostPath sources.
        volumes.remove("uid-1").await.unwrap();
        assert!(new_dir.is_dir() && new_file.is_file() && file.is_file());
    }

    #[tokio::test]
    async fn mounts_resolve_sub_paths_inside_the_volume() {
        let tmp = tempfile::tempdir().unwrap();
        let volumes = Volumes::new(tmp.path().join("pods"));
        let pod = pod(vec![
            Volume {
                name: "scratch".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            },
            config_map_volume("config", "cfg", vec![]),
        ]);
        let source = FakeConfigSource::default().with_config_map("shop", "cfg", &[("a", "1")]);
        let prepared = volumes.prepare(&pod, &source).await.unwrap();
        let scratch = prepared.paths["scratch"].clone();
        let config = prepared.paths["config"].clone();
        std::fs::create_dir(scratch.join("real")).unwrap();
        std::os::unix::fs::symlink("real", scratch.join("inside")).unwrap();
        std::os::unix::fs::symlink("../../../../..", scratch.join("up")).unwrap();
        std::os::unix::fs::symlink("/etc", scratch.join("abs")).unwrap();

        let mut container = Container {
            name: "app".into(),
            volume_mounts: vec![
                volume_mount("scratch", "/data", None),
                volume_mount("scratch", "/new", Some("made/here")),
                volume_mount("scratch", "/linked", Some("inside")),
                volume_mount("config", "/etc/a.conf", Some("a")),
            ],
            ..Default::default()
        };
        container.volume_mounts[0].read_only = Some(true);
        let mounts = mounts(&container, &prepared).unwrap();
        assert_eq!(
            mounts,
            [
                Mount {
                    source: scratch.clone(),
                    destination: "/data".into(),
                    read_only: true,
                },
                Mount {
                    source: scratch.join("made/here"),
                    destination: "/new".into(),
                    read_only: false,
                },
                Mount {
                    source: scratch.join("real"),
                    destination: "/linked".into(),
                    read_only: false,
                },
                Mount {
                    // Through `a -> ..data/a -> ..<version>/a`, always read-only.
                    source: config
                        .join(std::fs::read_link(config.join("..data")).unwrap())
                        .join("a"),
                    destination: "/etc/a.conf".into(),
                    read_only: true,
                },
            ]
        );
        assert!(scratch.join("made/here").is_dir());
        assert_eq!(mode(&scratch.join("made")), 0o777);

        for (sub_path, text) in [
            ("up/etc", "leads out of the volume"),
            ("abs", "points out of the volume"),
            ("../x", "'..'"),
            ("/etc", "relative"),
        ] {
            let container = Container {
                name: "app".into(),
                volume_mounts: vec![volume_mount("scratch", "/x", Some(sub_path))],
                ..Default::default()
            };
            let err = super::mounts(&container, &prepared).unwrap_err();
            assert!(
                matches!(&err, VolumeError::SubPath { message, .. } if message.contains(text)),
                "{sub_path}: {err}"
            );
        }

        let unknown = Container {
            name: "app".into(),
            volume_mounts: vec![volume_mount("nope", "/x", None)],
            ..Default::default()
        };
        let err = super::mounts(&unknown, &prepared).unwrap_err();
        assert_eq!(
            err.to_string(),
            "volume \"nope\": no such volume in the pod (volumes: config, scratch)"
        );
        let relative = Container {
            name: "app".into(),
            volume_mounts: vec![volume_mount("scratch", "data", None)],
            ..Default::default()
        };
        assert!(matches!(
            super::mounts(&relative, &prepared),
            Err(VolumeError::Invalid { .. })
        ));
    }

    #[tokio::test]
    async fn pods_without_volumes_need_no_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let volumes = Volumes::new(tmp.path().join("pods"));
        let mut pod = pod(vec![]);
        pod.metadata.uid = None;
        let prepared = volumes
            .prepare(&pod, &FakeConfigSource::default())
            .await
            .unwrap();
        assert_eq!(prepared, PodVolumes::default());
        assert!(!tmp.path().join("pods").exists());
    }

    #[tokio::test]
    async fn a_volume_without_a_source_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let volumes = Volumes::new(tmp.path());
        let pod = pod(vec![Volume {
            name: "nothing".into(),
            ..Default::default()
        }]);
        let err = volumes
            .prepare(&pod, &FakeConfigSource::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, VolumeError::Invalid { volume, .. } if volume == "nothing"),
            "{err}"
        );
    }
}
