//! Content-addressed OCI image store.
//!
//! INTERFACE CONTRACT used by the container module and the CLI (change only together):
//! - `ImageStore::open(root: &Path) -> Result<ImageStore>` with layout under `<root>/images/`.
//! - `ImageStore::resolve(&self, reference: &str) -> Result<ResolvedImage>` by name[:tag]
//!   (default tag `latest`), by full `sha256:…` digest or a unique hex prefix.
//! - `ResolvedImage { name: Option<String>, manifest_digest: Digest, config: ImageConfig,
//!   layers: Vec<PathBuf> }` with `layers` the unpacked read-only layer directories, lowest first,
//!   ready to be used as overlayfs lowerdirs, and `ImageConfig { entrypoint, cmd, env,
//!   working_dir, user, stop_signal, labels }` from the OCI image config.
//! - `ImageStore::remove(&self, reference: &str, in_use: &dyn Fn(&Digest) -> bool)` refuses when
//!   `in_use(manifest_digest)` is true.
//!
//! # Layout of `<root>/images/`
//! ```text
//! oci-layout, index.json     the store is itself an OCI image layout; index.json lists one
//!                            manifest descriptor per `name:tag` (ref.name annotation) and one per
//!                            untagged image
//! blobs/sha256/<hex>         verified blobs: manifests, configs, compressed layers
//! layers/sha256/<diff-id>/   each layer unpacked once (overlayfs whiteout form), shared read-only
//! tmp/                       per-operation staging, same filesystem, emptied by garbage collection
//! index.lock, gc.lock        flock files
//! ```
//!
//! # Consistency
//! An import stages everything (copied blobs, unpacked layers) in its own directory under `tmp/`
//! and verifies every digest and size there; only then are blobs and layers renamed into place
//! (layers after a `syncfs`, with `RENAME_NOREPLACE`, so a crash never leaves a half layer under
//! its final name), and the index is updated last. A failed import removes its staging directory
//! and leaves the store as it was. Imports hold `gc.lock` shared; removal and garbage collection
//! hold it exclusively, so collection never deletes what a running import is about to reference.
//! The index is updated under `index.lock` (see [`index`]).

mod build;
pub mod digest;
mod import;
mod index;
pub mod reference;
pub mod unpack;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::{ImageConfiguration, ImageManifest};
use serde::Serialize;

pub use build::BuildOptions;
pub use digest::{Digest, DigestError};
pub use index::IndexError;
/// Timestamps of image configs (`created`), re-exported so callers need no jiff dependency.
pub use jiff::Timestamp;
pub use reference::{Reference, ReferenceError, TaggedName};
pub use unpack::{Reason, UnpackError};

use index::IndexEntry;

pub type Result<T, E = ImageError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("creating image store directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("removing {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("moving {from} to {to}")]
    Rename {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("flushing {path} to disk")]
    Sync {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("image {reference:?} not found")]
    NotFound { reference: String },
    #[error("image reference {reference:?} is ambiguous: it matches {matches}")]
    Ambiguous { reference: String, matches: String },
    #[error("image {image} ({digest}) is in use by a container; remove the container first")]
    InUse { image: String, digest: Digest },
    #[error("{path}: not a valid {what}")]
    Json {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: bad digest in a descriptor")]
    BadDigest {
        path: PathBuf,
        #[source]
        source: DigestError,
    },
    #[error("blob {path}: digest mismatch, expected {expected}, content hashes to {actual}")]
    BlobDigest {
        path: PathBuf,
        expected: Digest,
        actual: Digest,
    },
    #[error(
        "blob {path} ({digest}): size mismatch, descriptor says {expected} bytes, blob has {actual}"
    )]
    BlobSize {
        path: PathBuf,
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("blob {path} ({digest}) is {size} bytes, over the limit of {limit} for {what}")]
    BlobTooLarge {
        path: PathBuf,
        digest: Digest,
        size: u64,
        limit: u64,
        what: &'static str,
    },
    #[error("{path}: not an OCI image layout: {reason}")]
    NotALayout { path: PathBuf, reason: String },
    #[error("{path}: {what} {digest} has unsupported media type {media_type:?}")]
    MediaType {
        path: PathBuf,
        what: &'static str,
        digest: Digest,
        media_type: String,
    },
    #[error("{path}: image indexes nest deeper than {max} levels")]
    IndexTooDeep { path: PathBuf, max: usize },
    #[error("{path}: no image for {wanted}; the layout has {available}")]
    NoMatchingImage {
        path: PathBuf,
        wanted: String,
        available: String,
    },
    #[error("{path}: image {digest} is for {image_platform}, this host is {host}")]
    WrongPlatform {
        path: PathBuf,
        digest: Digest,
        image_platform: String,
        host: String,
    },
    #[error("{path}: the layout has {count} images ({names}); --tag can name only one")]
    TagNeedsOneImage {
        path: PathBuf,
        count: usize,
        names: String,
    },
    #[error("{path}: ref name {name:?} is not a valid image name (use --tag)")]
    BadRefName {
        path: PathBuf,
        name: String,
        #[source]
        source: ReferenceError,
    },
    #[error(
        "{path}: config {config} lists {diff_ids} layer diff ids (rootfs.type {rootfs_type:?}) \
         but manifest {manifest} has {layers} layers"
    )]
    LayerCount {
        path: PathBuf,
        config: Digest,
        manifest: Digest,
        rootfs_type: String,
        diff_ids: usize,
        layers: usize,
    },
    #[error(
        "layer blob {path}: uncompressed content hashes to {actual}, config says diff id {expected}"
    )]
    DiffId {
        path: PathBuf,
        expected: Digest,
        actual: Digest,
    },
    #[error("layer blob {path}: decompressing")]
    Decompress {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("layer blob {path} (diff id {diff_id}): unpacking")]
    Unpack {
        path: PathBuf,
        diff_id: Digest,
        #[source]
        source: UnpackError,
    },
    #[error("image archive {path}: entry {entry:?}")]
    Archive {
        path: PathBuf,
        entry: String,
        #[source]
        source: io::Error,
    },
    #[error("image {digest}: layer {diff_id} is missing from {path}; the store is damaged")]
    LayerMissing {
        digest: Digest,
        diff_id: Digest,
        path: PathBuf,
    },
    #[error("build: environment entry {entry:?} is not KEY=VALUE")]
    BadEnv { entry: String },
    #[error("build: {path} is a {kind} device; devices cannot be put in an image")]
    BuildDevice { path: PathBuf, kind: &'static str },
    #[error("build: {path} is not a directory")]
    NotADirectory { path: PathBuf },
}

/// Limits that stop hostile or broken images early.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest manifest, index or config blob.
    pub max_json_bytes: u64,
    /// Largest uncompressed layer (a decompression bomb stops here).
    pub max_layer_bytes: u64,
    /// Most entries in one layer.
    pub max_layer_entries: u64,
    /// Largest uncompressed image archive.
    pub max_archive_bytes: u64,
    /// Deepest nesting of image indexes.
    pub max_index_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_json_bytes: 4 << 20,
            max_layer_bytes: 64 << 30,
            max_layer_entries: 4_000_000,
            max_archive_bytes: 256 << 30,
            max_index_depth: 4,
        }
    }
}

/// Execution defaults from the image config (`config` object of the OCI image configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub stop_signal: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// `port/proto` keys, e.g. `80/tcp`.
    pub exposed_ports: BTreeSet<String>,
}

/// An image ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// `name:tag` when the image has one.
    pub name: Option<String>,
    pub manifest_digest: Digest,
    pub config_digest: Digest,
    pub config: ImageConfig,
    /// Unpacked read-only layer directories, LOWEST FIRST. overlayfs wants its `lowerdir=`
    /// option highest first, so reverse them when joining with `:`. A layer repeated in the
    /// image appears once, at its highest position (equivalent for overlayfs, which refuses
    /// the same lowerdir twice).
    pub layers: Vec<PathBuf>,
}

/// One row of `image ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageSummary {
    pub name: Option<String>,
    pub manifest_digest: Digest,
    /// Uncompressed size of all layers.
    pub size: u64,
    pub created: Option<jiff::Timestamp>,
}

/// `image inspect`: the stored manifest and config as they are, plus where things live.
#[derive(Debug, Clone, Serialize)]
pub struct ImageDetails {
    pub names: Vec<String>,
    pub manifest_digest: Digest,
    pub config_digest: Digest,
    pub size: u64,
    pub created: Option<jiff::Timestamp>,
    pub layers: Vec<PathBuf>,
    pub manifest: serde_json::Value,
    pub config: serde_json::Value,
}

/// What `remove` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removal {
    /// Tags removed.
    pub untagged: Vec<String>,
    /// The manifest deleted, when no tag is left on it.
    pub deleted: Option<Digest>,
    pub garbage: GarbageStats,
}

/// What garbage collection deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GarbageStats {
    pub blobs: usize,
    pub layers: usize,
}

/// One image added by `import` or `build`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedImage {
    pub name: Option<String>,
    pub manifest_digest: Digest,
    pub layers_unpacked: usize,
    pub layers_reused: usize,
}

/// The image store under `<root>/images/`.
#[derive(Debug, Clone)]
pub struct ImageStore {
    dir: PathBuf,
    limits: Limits,
}

impl ImageStore {
    /// Opens (creating if needed) the store under `<root>/images/`.
    pub fn open(root: &Path) -> Result<ImageStore> {
        Self::open_with_limits(root, Limits::default())
    }

    /// The store under `<root>/images/` for looking images up only ([`ImageStore::resolve`],
    /// [`ImageStore::list`], [`ImageStore::inspect`]): nothing is created, so a missing store
    /// is an empty one. `berth run` starts this way.
    pub fn open_read_only(root: &Path) -> ImageStore {
        ImageStore {
            dir: root.join("images"),
            limits: Limits::default(),
        }
    }

    pub fn open_with_limits(root: &Path, limits: Limits) -> Result<ImageStore> {
        let store = ImageStore {
            dir: root.join("images"),
            limits,
        };
        for dir in [
            store.dir.join("blobs/sha256"),
            store.layers_dir(),
            store.tmp_dir(),
        ] {
            fs::create_dir_all(&dir)
                .map_err(|source| ImageError::CreateDir { path: dir, source })?;
        }
        let layout = store.dir.join("oci-layout");
        if !layout.exists() {
            index::write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        for lock in [store.index_lock(), store.gc_lock()] {
            fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock)
                .map_err(|source| ImageError::Write { path: lock, source })?;
        }
        Ok(store)
    }

    /// `<root>/images`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    fn layers_dir(&self) -> PathBuf {
        self.dir.join("layers/sha256")
    }

    fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.layers_dir().join(diff_id.hex())
    }

    fn tmp_dir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join("index.json")
    }

    fn index_lock(&self) -> PathBuf {
        self.dir.join("index.lock")
    }

    fn gc_lock(&self) -> PathBuf {
        self.dir.join("gc.lock")
    }

    fn lock_gc(&self, kind: FlockArg) -> Result<Flock<File>> {
        Ok(index::lock(&self.gc_lock(), kind)?)
    }

    fn entries(&self) -> Result<Vec<IndexEntry>> {
        Ok(index::load(&self.index_path())?)
    }

    /// Finds the image a reference names: its tag (if it was named by one) and manifest digest.
    fn find(entries: &[IndexEntry], reference: &str) -> Result<(Option<TaggedName>, Digest)> {
        let not_found = || ImageError::NotFound {
            reference: reference.to_owned(),
        };
        let first_name = |digest: &Digest| {
            entries
                .iter()
                .find(|e| &e.manifest == digest)
                .and_then(|e| e.name.clone())
        };
        let by_prefix = |prefix: &str| {
            let matches: BTreeSet<&Digest> = entries
                .iter()
                .map(|e| &e.manifest)
                .filter(|d| d.hex().starts_with(prefix))
                .collect();
            match matches.len() {
                0 => Err(not_found()),
                1 => {
                    let digest = (*matches.first().expect("one match")).clone();
                    Ok((first_name(&digest), digest))
                }
                _ => Err(ImageError::Ambiguous {
                    reference: reference.to_owned(),
                    matches: matches
                        .iter()
                        .map(|d| d.short())
                        .collect::<Vec<_>>()
                        .join(", "),
                }),
            }
        };
        match Reference::parse(reference)? {
            Reference::Tagged { name, tag, prefix } => {
                let wanted = TaggedName { name, tag };
                match entries.iter().find(|e| e.name.as_ref() == Some(&wanted)) {
                    Some(e) => Ok((Some(wanted), e.manifest.clone())),
                    None => match prefix {
                        Some(prefix) => by_prefix(&prefix),
                        None => Err(not_found()),
                    },
                }
            }
            Reference::Digest { name, digest } => {
                if !entries.iter().any(|e| e.manifest == digest) {
                    return Err(not_found());
                }
                let named = name.and_then(|n| {
                    entries
                        .iter()
                        .find(|e| {
                            e.manifest == digest && e.name.as_ref().is_some_and(|t| t.name == n)
                        })
                        .and_then(|e| e.name.clone())
                });
                Ok((named.or_else(|| first_name(&digest)), digest))
            }
            Reference::Prefix(prefix) => by_prefix(&prefix),
        }
    }

    /// Reads a blob of the store, verifying its digest (JSON blobs only; they are small).
    fn read_json_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        read_verified(
            &self.blob_path(digest),
            digest,
            None,
            self.limits.max_json_bytes,
            "a JSON blob",
        )
    }

    fn load_manifest(&self, digest: &Digest) -> Result<(Vec<u8>, ImageManifest)> {
        let bytes = self.read_json_blob(digest)?;
        let manifest = parse_json(&bytes, &self.blob_path(digest), "image manifest")?;
        Ok((bytes, manifest))
    }

    fn load_config(
        &self,
        manifest: &ImageManifest,
    ) -> Result<(Digest, Vec<u8>, ImageConfiguration)> {
        let path = self.dir.join("index.json");
        let digest = descriptor_digest(&path, manifest.config())?;
        let bytes = self.read_json_blob(&digest)?;
        let config = parse_json(&bytes, &self.blob_path(&digest), "image config")?;
        Ok((digest, bytes, config))
    }

    /// Layer directories of an image, lowest first, each present once (at its highest use).
    fn layer_dirs(
        &self,
        manifest_digest: &Digest,
        config: &ImageConfiguration,
    ) -> Result<Vec<PathBuf>> {
        let index_path = self.index_path();
        let mut diff_ids = Vec::new();
        for diff_id in config.rootfs().diff_ids() {
            let diff_id = Digest::parse(diff_id).map_err(|source| ImageError::BadDigest {
                path: index_path.clone(),
                source,
            })?;
            diff_ids.push(diff_id);
        }
        let mut seen = HashSet::new();
        let mut layers = Vec::new();
        for diff_id in diff_ids.iter().rev() {
            if !seen.insert(diff_id.clone()) {
                continue;
            }
            let path = self.layer_path(diff_id);
            if !path.is_dir() {
                return Err(ImageError::LayerMissing {
                    digest: manifest_digest.clone(),
                    diff_id: diff_id.clone(),
                    path,
                });
            }
            layers.push(path);
        }
        layers.reverse();
        Ok(layers)
    }

    /// Resolves a reference to a runnable image.
    pub fn resolve(&self, reference: &str) -> Result<ResolvedImage> {
        let (name, manifest_digest) = Self::find(&self.entries()?, reference)?;
        let (_, manifest) = self.load_manifest(&manifest_digest)?;
        let (config_digest, _, image_config) = self.load_config(&manifest)?;
        let layers = self.layer_dirs(&manifest_digest, &image_config)?;
        Ok(ResolvedImage {
            name: name.map(|n| n.to_string()),
            manifest_digest,
            config_digest,
            config: image_config_of(&image_config),
            layers,
        })
    }

    /// All images, one row per tag plus one per untagged image, sorted by name.
    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        let mut out = Vec::new();
        for entry in self.entries()? {
            let (_, manifest) = self.load_manifest(&entry.manifest)?;
            let (_, _, config) = self.load_config(&manifest)?;
            let size = entry
                .unpacked_size
                .unwrap_or_else(|| manifest.layers().iter().map(|l| l.size()).sum());
            out.push(ImageSummary {
                name: entry.name.map(|n| n.to_string()),
                manifest_digest: entry.manifest,
                size,
                created: created_of(&config),
            });
        }
        out.sort_by(|a, b| (a.name.is_none(), &a.name).cmp(&(b.name.is_none(), &b.name)));
        Ok(out)
    }

    /// The stored manifest and config of an image, verbatim, with its names and layer paths.
    pub fn inspect(&self, reference: &str) -> Result<ImageDetails> {
        let entries = self.entries()?;
        let (_, manifest_digest) = Self::find(&entries, reference)?;
        let (manifest_bytes, manifest) = self.load_manifest(&manifest_digest)?;
        let (config_digest, config_bytes, config) = self.load_config(&manifest)?;
        let layers = self.layer_dirs(&manifest_digest, &config)?;
        let ours: Vec<&IndexEntry> = entries
            .iter()
            .filter(|e| e.manifest == manifest_digest)
            .collect();
        let size = ours
            .iter()
            .find_map(|e| e.unpacked_size)
            .unwrap_or_else(|| manifest.layers().iter().map(|l| l.size()).sum());
        Ok(ImageDetails {
            names: ours
                .iter()
                .filter_map(|e| e.name.as_ref().map(|n| n.to_string()))
                .collect(),
            manifest: parse_json(
                &manifest_bytes,
                &self.blob_path(&manifest_digest),
                "image manifest",
            )?,
            config: parse_json(
                &config_bytes,
                &self.blob_path(&config_digest),
                "image config",
            )?,
            manifest_digest,
            config_digest,
            size,
            created: created_of(&config),
            layers,
        })
    }

    /// Removes a tag, or an image with all its tags when named by digest. The image itself (and
    /// the blobs and layers no other image uses) goes when no tag is left on it; that is refused
    /// while `in_use(manifest_digest)`. Removing one of several tags of an image only untags it.
    pub fn remove(&self, reference: &str, in_use: &dyn Fn(&Digest) -> bool) -> Result<Removal> {
        let _gc = self.lock_gc(FlockArg::LockExclusive)?;
        let mut removal = index::update(&self.index_path(), &self.index_lock(), |entries| {
            let (name, digest) = Self::find(entries, reference)?;
            let names_of_image = entries.iter().filter(|e| e.manifest == digest).count();
            // Named by one of its tags (not by digest or digest prefix)?
            let by_tag = match Reference::parse(reference)? {
                Reference::Tagged { name, tag, .. } => {
                    let wanted = TaggedName { name, tag };
                    entries.iter().any(|e| e.name.as_ref() == Some(&wanted))
                }
                _ => false,
            };
            if by_tag && names_of_image > 1 {
                let name = name.expect("by_tag implies a name");
                entries.retain(|e| e.name.as_ref() != Some(&name));
                return Ok(Removal {
                    untagged: vec![name.to_string()],
                    ..Removal::default()
                });
            }
            if in_use(&digest) {
                let image = name.map_or_else(|| digest.to_string(), |n| n.to_string());
                return Err(ImageError::InUse { image, digest });
            }
            let untagged = entries
                .iter()
                .filter(|e| e.manifest == digest)
                .filter_map(|e| e.name.as_ref().map(|n| n.to_string()))
                .collect();
            entries.retain(|e| e.manifest != digest);
            Ok::<_, ImageError>(Removal {
                untagged,
                deleted: Some(digest),
                ..Removal::default()
            })
        })?;
        if removal.deleted.is_some() {
            removal.garbage = self.collect_garbage_locked()?;
        }
        Ok(removal)
    }

    /// Deletes blobs and layers no image references, and stale staging directories.
    pub fn collect_garbage(&self) -> Result<GarbageStats> {
        let _gc = self.lock_gc(FlockArg::LockExclusive)?;
        self.collect_garbage_locked()
    }

    fn collect_garbage_locked(&self) -> Result<GarbageStats> {
        let mut blobs = HashSet::new();
        let mut layers = HashSet::new();
        let index_path = self.index_path();
        for entry in self.entries()? {
            if !blobs.insert(entry.manifest.hex().to_owned()) {
                continue;
            }
            let (_, manifest) = self.load_manifest(&entry.manifest)?;
            blobs.insert(
                descriptor_digest(&index_path, manifest.config())?
                    .hex()
                    .to_owned(),
            );
            for layer in manifest.layers() {
                blobs.insert(descriptor_digest(&index_path, layer)?.hex().to_owned());
            }
            let (_, _, config) = self.load_config(&manifest)?;
            for diff_id in config.rootfs().diff_ids() {
                if let Some(hex) = diff_id.strip_prefix("sha256:") {
                    layers.insert(hex.to_owned());
                }
            }
        }
        let mut stats = GarbageStats::default();
        for (dir, keep, is_layer) in [
            (self.dir.join("blobs/sha256"), &blobs, false),
            (self.layers_dir(), &layers, true),
        ] {
            for name in read_dir_names(&dir)? {
                if keep.contains(&name) {
                    continue;
                }
                let path = dir.join(&name);
                if is_layer {
                    // Out of its final name first, so a crash mid-delete leaves no half layer.
                    let doomed = self.tmp_dir().join(format!("gc-{name}"));
                    fs::rename(&path, &doomed).map_err(|source| ImageError::Remove {
                        path: path.clone(),
                        source,
                    })?;
                    fs::remove_dir_all(&doomed).map_err(|source| ImageError::Remove {
                        path: doomed,
                        source,
                    })?;
                    stats.layers += 1;
                } else {
                    fs::remove_file(&path).map_err(|source| ImageError::Remove { path, source })?;
                    stats.blobs += 1;
                }
                tracing::debug!(path = %dir.join(&name).display(), "garbage collected");
            }
        }
        // Nothing is importing (we hold gc.lock exclusively): whatever is in tmp/ is stale.
        for name in read_dir_names(&self.tmp_dir())? {
            let path = self.tmp_dir().join(name);
            let result = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            result.map_err(|source| ImageError::Remove { path, source })?;
        }
        Ok(stats)
    }
}

fn read_dir_names(dir: &Path) -> Result<Vec<String>> {
    let read_err = |source| ImageError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_err)? {
        names.push(
            entry
                .map_err(read_err)?
                .file_name()
                .to_string_lossy()
                .into_owned(),
        );
    }
    Ok(names)
}

/// Reads a whole (small) blob and checks its size (when `size` is given) and digest.
fn read_verified(
    path: &Path,
    digest: &Digest,
    size: Option<u64>,
    limit: u64,
    what: &'static str,
) -> Result<Vec<u8>> {
    let read_err = |source| ImageError::Read {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let actual_size = file.metadata().map_err(read_err)?.len();
    if let Some(expected) = size
        && expected != actual_size
    {
        return Err(ImageError::BlobSize {
            path: path.to_owned(),
            digest: digest.clone(),
            expected,
            actual: actual_size,
        });
    }
    if actual_size > limit {
        return Err(ImageError::BlobTooLarge {
            path: path.to_owned(),
            digest: digest.clone(),
            size: actual_size,
            limit,
            what,
        });
    }
    let mut bytes = Vec::with_capacity(actual_size as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    let actual = Digest::of(&bytes);
    if &actual != digest {
        return Err(ImageError::BlobDigest {
            path: path.to_owned(),
            expected: digest.clone(),
            actual,
        });
    }
    Ok(bytes)
}

fn parse_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    path: &Path,
    what: &'static str,
) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| ImageError::Json {
        path: path.to_owned(),
        what,
        source,
    })
}

fn descriptor_digest(path: &Path, descriptor: &oci_spec::image::Descriptor) -> Result<Digest> {
    Digest::parse(descriptor.digest().as_ref()).map_err(|source| ImageError::BadDigest {
        path: path.to_owned(),
        source,
    })
}

fn created_of(config: &ImageConfiguration) -> Option<jiff::Timestamp> {
    config.created().as_deref().and_then(|c| c.parse().ok())
}

fn image_config_of(config: &ImageConfiguration) -> ImageConfig {
    let Some(c) = config.config() else {
        return ImageConfig::default();
    };
    ImageConfig {
        entrypoint: c.entrypoint().clone().unwrap_or_default(),
        cmd: c.cmd().clone().unwrap_or_default(),
        env: c.env().clone().unwrap_or_default(),
        working_dir: c.working_dir().clone().filter(|w| !w.is_empty()),
        user: c.user().clone().filter(|u| !u.is_empty()),
        stop_signal: c.stop_signal().clone().filter(|s| !s.is_empty()),
        labels: c.labels().clone().unwrap_or_default().into_iter().collect(),
        exposed_ports: c
            .exposed_ports()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: Option<&str>, digest: &Digest) -> IndexEntry {
        IndexEntry {
            name: name.map(|n| Reference::parse_tagged(n).unwrap()),
            manifest: digest.clone(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: 1,
            unpacked_size: None,
        }
    }

    #[test]
    fn find_by_name_digest_and_prefix() {
        let a = Digest::parse(&format!("sha256:abcdef{}", "0".repeat(58))).unwrap();
        let b = Digest::parse(&format!("sha256:abcd99{}", "1".repeat(58))).unwrap();
        let entries = vec![
            entry(Some("busybox:latest"), &a),
            entry(Some("busybox:1"), &a),
            entry(None, &b),
        ];
        let (name, d) = ImageStore::find(&entries, "busybox").unwrap();
        assert_eq!(
            (name.unwrap().to_string(), d.clone()),
            ("busybox:latest".to_owned(), a.clone())
        );
        assert_eq!(ImageStore::find(&entries, "busybox:1").unwrap().1, a);
        assert_eq!(ImageStore::find(&entries, a.as_str()).unwrap().1, a);
        assert_eq!(ImageStore::find(&entries, "abcdef").unwrap().1, a);
        assert_eq!(
            ImageStore::find(&entries, "sha256:abcd99").unwrap(),
            (None, b.clone())
        );
        assert!(matches!(
            ImageStore::find(&entries, "abcd"),
            Err(ImageError::NotFound { .. })
        ));
        assert_eq!(
            ImageStore::find(&entries, "abcd99").unwrap(),
            (None, b.clone())
        );
        let err = ImageStore::find(&entries, "sha256:abcd").unwrap_err();
        assert!(
            matches!(err, ImageError::Reference(_)),
            "too short a prefix: {err}"
        );
        assert!(matches!(
            ImageStore::find(&entries, "abcdaa"),
            Err(ImageError::NotFound { .. })
        ));
        let c = Digest::parse(&format!("sha256:abcdef{}", "2".repeat(58))).unwrap();
        let entries = vec![entry(None, &a), entry(None, &c)];
        let err = ImageStore::find(&entries, "abcdef").unwrap_err();
        assert!(matches!(err, ImageError::Ambiguous { .. }), "{err}");
        assert!(err.to_string().contains("abcdef000000"), "{err}");
        assert!(matches!(
            ImageStore::find(&entries, "nope"),
            Err(ImageError::NotFound { .. })
        ));
    }

    #[test]
    fn open_creates_the_layout_and_is_idempotent() {
        let root = tempfile::tempdir().unwrap();
        let store = ImageStore::open(root.path()).unwrap();
        for p in [
            "blobs/sha256",
            "layers/sha256",
            "tmp",
            "oci-layout",
            "index.lock",
            "gc.lock",
        ] {
            assert!(store.dir().join(p).exists(), "{p}");
        }
        ImageStore::open(root.path()).unwrap();
        assert!(store.list().unwrap().is_empty());
        assert!(matches!(
            store.resolve("busybox"),
            Err(ImageError::NotFound { .. })
        ));
    }
}
