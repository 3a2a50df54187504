//! `import`: an OCI image layout (directory, or tar archive optionally gzip/zstd compressed) into
//! the store.
//!
//! Follows `index.json` → (nested indexes) → the manifest for this host's platform → config and
//! layers. Every blob is checked against its descriptor's size and digest, and every layer's
//! uncompressed stream against the config's `rootfs.diff_ids`. Work happens in a staging
//! directory under `tmp/`; see the module docs of [`super`] for how it is committed.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{FlockArg, OFlag, RenameFlags, renameat2};
use nix::sys::stat::Mode;
use oci_spec::image::{Arch, Descriptor, ImageConfiguration, ImageIndex, ImageManifest, Os};
use tempfile::TempDir;

use super::digest::{Digest, HashingReader, is_lower_hex};
use super::index::{self, IndexEntry};
use super::reference::{Reference, TaggedName};
use super::unpack;
use super::{
    ImageError, ImageStore, ImportedImage, Result, descriptor_digest, parse_json, read_verified,
};

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const CONFIG_TYPES: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];
const LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];
/// Full image name as containerd writes it (`ref.name` then only holds the tag).
const CONTAINERD_NAME: &str = "io.containerd.image.name";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// `linux/<GOARCH>` of this host.
pub(super) fn host_platform() -> String {
    format!("linux/{}", Arch::default())
}

/// A manifest picked from the layout, with the name it is to get.
struct Candidate {
    name: Option<TaggedName>,
    digest: Digest,
    media_type: String,
    size: u64,
    bytes: Vec<u8>,
}

/// An OCI image layout directory being imported.
pub(super) struct Layout {
    pub(super) dir: PathBuf,
    /// What the user named (the archive file, or the directory): used in error messages.
    pub(super) shown: PathBuf,
}

impl Layout {
    fn blob(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    fn error_path(&self, digest: &Digest) -> PathBuf {
        if self.dir == self.shown {
            self.blob(digest)
        } else {
            self.shown.join(format!("blobs/sha256/{}", digest.hex()))
        }
    }

    fn read_json(&self, desc: &Descriptor, limit: u64) -> Result<(Digest, Vec<u8>)> {
        let digest = descriptor_digest(&self.shown, desc)?;
        let bytes = read_verified(
            &self.blob(&digest),
            &digest,
            Some(desc.size()),
            limit,
            "a JSON blob",
        )
        .map_err(|err| self.rename_path(err, &digest))?;
        Ok((digest, bytes))
    }

    /// Errors name the blob inside the user's archive rather than our staging copy.
    fn rename_path(&self, err: ImageError, digest: &Digest) -> ImageError {
        let shown = self.error_path(digest);
        match err {
            ImageError::Read { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                ImageError::NotALayout {
                    path: self.shown.clone(),
                    reason: format!("blob {digest} is missing"),
                }
            }
            ImageError::Read { source, .. } => ImageError::Read {
                path: shown,
                source,
            },
            ImageError::BlobSize {
                digest,
                expected,
                actual,
                ..
            } => ImageError::BlobSize {
                path: shown,
                digest,
                expected,
                actual,
            },
            ImageError::BlobDigest {
                expected, actual, ..
            } => ImageError::BlobDigest {
                path: shown,
                expected,
                actual,
            },
            ImageError::BlobTooLarge {
                digest,
                size,
                limit,
                what,
                ..
            } => ImageError::BlobTooLarge {
                path: shown,
                digest,
                size,
                limit,
                what,
            },
            other => other,
        }
    }
}

fn is_host(platform: &oci_spec::image::Platform) -> bool {
    *platform.os() == Os::Linux && *platform.architecture() == Arch::default()
}

/// Blobs and layers staged by one import, committed together.
pub(super) struct Staging {
    pub(super) dir: TempDir,
    blobs: Vec<Digest>,
    layers: Vec<Digest>,
}

impl Staging {
    fn blob(&self, digest: &Digest) -> PathBuf {
        self.dir.path().join("blobs").join(digest.hex())
    }

    fn layer(&self, diff_id: &Digest) -> PathBuf {
        self.dir.path().join("layers").join(diff_id.hex())
    }
}

impl ImageStore {
    /// Imports every image of an OCI layout (directory or archive) for this host's platform.
    /// `tag` names the image (the layout must then hold exactly one); otherwise each image is
    /// named from its `io.containerd.image.name` or `org.opencontainers.image.ref.name`
    /// annotation, verbatim with the tag defaulted (`latest` alone becomes `latest:latest`), or
    /// stored untagged.
    pub fn import(&self, path: &Path, tag: Option<&str>) -> Result<Vec<ImportedImage>> {
        let tag = tag.map(Reference::parse_tagged).transpose()?;
        let _gc = self.lock_gc(FlockArg::LockShared)?;
        let staging = self.new_staging()?;
        let meta = fs::metadata(path).map_err(|source| ImageError::Read {
            path: path.to_owned(),
            source,
        })?;
        let layout = if meta.is_dir() {
            Layout {
                dir: path.to_owned(),
                shown: path.to_owned(),
            }
        } else {
            let dir = staging.dir.path().join("layout");
            self.extract_archive(path, &dir)?;
            Layout {
                dir,
                shown: path.to_owned(),
            }
        };
        self.import_layout(&layout, tag, staging)
    }

    pub(super) fn new_staging(&self) -> Result<Staging> {
        let tmp = self.tmp_dir();
        let dir = tempfile::Builder::new()
            .prefix("import-")
            .tempdir_in(&tmp)
            .map_err(|source| ImageError::Write {
                path: tmp.clone(),
                source,
            })?;
        for sub in ["blobs", "layers"] {
            let p = dir.path().join(sub);
            fs::create_dir(&p).map_err(|source| ImageError::Write { path: p, source })?;
        }
        Ok(Staging {
            dir,
            blobs: Vec::new(),
            layers: Vec::new(),
        })
    }

    /// Imports from a layout directory; the caller holds `gc.lock` shared.
    pub(super) fn import_layout(
        &self,
        layout: &Layout,
        tag: Option<TaggedName>,
        mut staging: Staging,
    ) -> Result<Vec<ImportedImage>> {
        let mut candidates = self.select(layout, tag.is_none())?;
        if let Some(tag) = tag {
            let distinct: HashSet<&Digest> = candidates.iter().map(|c| &c.digest).collect();
            if distinct.len() > 1 {
                return Err(ImageError::TagNeedsOneImage {
                    path: layout.shown.clone(),
                    count: distinct.len(),
                    names: candidates
                        .iter()
                        .map(|c| {
                            c.name
                                .as_ref()
                                .map_or_else(|| c.digest.short().to_owned(), |n| n.to_string())
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            candidates.truncate(1);
            candidates[0].name = Some(tag);
        }
        let mut prepared = Vec::new();
        for candidate in &candidates {
            prepared.push(self.stage_image(layout, candidate, &mut staging)?);
        }
        self.commit(&staging)?;
        index::update(&self.index_path(), &self.index_lock(), |entries| {
            for (entry, _) in &prepared {
                add_entry(entries, entry.clone());
            }
            Ok::<_, ImageError>(())
        })?;
        for (entry, image) in &prepared {
            tracing::info!(
                image = image.name.as_deref().unwrap_or("<none>"),
                digest = %entry.manifest,
                layers_unpacked = image.layers_unpacked,
                layers_reused = image.layers_reused,
                "image imported"
            );
        }
        Ok(prepared.into_iter().map(|(_, image)| image).collect())
    }

    /// The manifests to import: one per top-level entry of `index.json`, following nested
    /// indexes to this host's platform.
    fn select(&self, layout: &Layout, use_names: bool) -> Result<Vec<Candidate>> {
        let not_layout = |reason: &str| ImageError::NotALayout {
            path: layout.shown.clone(),
            reason: reason.to_owned(),
        };
        let marker = layout.dir.join("oci-layout");
        let marker_bytes = match fs::read(&marker) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(not_layout("no oci-layout file"));
            }
            Err(source) => {
                return Err(ImageError::Read {
                    path: marker,
                    source,
                });
            }
        };
        let version: serde_json::Value = parse_json(
            &marker_bytes,
            &layout.shown.join("oci-layout"),
            "oci-layout file",
        )?;
        if version["imageLayoutVersion"] != "1.0.0" {
            return Err(not_layout(
                "oci-layout does not declare imageLayoutVersion 1.0.0",
            ));
        }
        let index_path = layout.dir.join("index.json");
        let index_bytes = match File::open(&index_path) {
            Ok(f) => {
                let mut bytes = Vec::new();
                f.take(self.limits.max_json_bytes + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|source| ImageError::Read {
                        path: index_path.clone(),
                        source,
                    })?;
                bytes
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(not_layout("no index.json"));
            }
            Err(source) => {
                return Err(ImageError::Read {
                    path: index_path,
                    source,
                });
            }
        };
        let index: ImageIndex = parse_json(
            &index_bytes,
            &layout.shown.join("index.json"),
            "OCI image index",
        )?;
        let mut out: Vec<Candidate> = Vec::new();
        let mut skipped = Vec::new();
        for desc in index.manifests() {
            let annotations = desc.annotations().clone().unwrap_or_default();
            let name =
                match annotations
                    .get(CONTAINERD_NAME)
                    .or_else(|| annotations.get(REF_NAME))
                {
                    // With --tag the annotation is not used, so a bad one does not matter.
                    Some(_) if !use_names => None,
                    Some(n) => Some(Reference::parse_tagged(n).map_err(|source| {
                        ImageError::BadRefName {
                            path: layout.shown.clone(),
                            name: n.clone(),
                            source,
                        }
                    })?),
                    None => None,
                };
            if let Some(c) = self.follow(layout, desc, 0, name, &mut skipped)?
                && !out.iter().any(|o| o.digest == c.digest && o.name == c.name)
            {
                out.push(c);
            }
        }
        if out.is_empty() {
            return Err(ImageError::NoMatchingImage {
                path: layout.shown.clone(),
                wanted: host_platform(),
                available: if skipped.is_empty() {
                    "no images".to_owned()
                } else {
                    skipped.join(", ")
                },
            });
        }
        Ok(out)
    }

    fn follow(
        &self,
        layout: &Layout,
        desc: &Descriptor,
        depth: usize,
        name: Option<TaggedName>,
        skipped: &mut Vec<String>,
    ) -> Result<Option<Candidate>> {
        if let Some(platform) = desc.platform()
            && !is_host(platform)
        {
            skipped.push(format!("{}/{}", platform.os(), platform.architecture()));
            return Ok(None);
        }
        let media_type = desc.media_type().to_string();
        match media_type.as_str() {
            OCI_INDEX | DOCKER_LIST => {
                if depth >= self.limits.max_index_depth {
                    return Err(ImageError::IndexTooDeep {
                        path: layout.shown.clone(),
                        max: self.limits.max_index_depth,
                    });
                }
                let (digest, bytes) = layout.read_json(desc, self.limits.max_json_bytes)?;
                let index: ImageIndex =
                    parse_json(&bytes, &layout.error_path(&digest), "image index")?;
                for child in index.manifests() {
                    if child
                        .annotations()
                        .as_ref()
                        .is_some_and(|a| a.contains_key("vnd.docker.reference.type"))
                    {
                        continue; // BuildKit attestations, not images.
                    }
                    if let Some(c) = self.follow(layout, child, depth + 1, name.clone(), skipped)? {
                        return Ok(Some(c));
                    }
                }
                Ok(None)
            }
            OCI_MANIFEST | DOCKER_MANIFEST => {
                let (digest, bytes) = layout.read_json(desc, self.limits.max_json_bytes)?;
                Ok(Some(Candidate {
                    name,
                    digest,
                    media_type,
                    size: desc.size(),
                    bytes,
                }))
            }
            other => {
                skipped.push(format!("{other} {}", desc.digest()));
                tracing::warn!(media_type = other, digest = %desc.digest(), "skipping index entry that is not an image");
                Ok(None)
            }
        }
    }

    /// Stages the config, layers and manifest of one image; returns its index entry.
    fn stage_image(
        &self,
        layout: &Layout,
        candidate: &Candidate,
        staging: &mut Staging,
    ) -> Result<(IndexEntry, ImportedImage)> {
        let manifest_path = layout.error_path(&candidate.digest);
        let manifest: ImageManifest =
            parse_json(&candidate.bytes, &manifest_path, "image manifest")?;
        let config_desc = manifest.config();
        let config_digest = descriptor_digest(&manifest_path, config_desc)?;
        let config_type = config_desc.media_type().to_string();
        if !CONFIG_TYPES.contains(&config_type.as_str()) {
            return Err(ImageError::MediaType {
                path: manifest_path,
                what: "config",
                digest: config_digest,
                media_type: config_type,
            });
        }
        let (_, config_bytes) = layout.read_json(config_desc, self.limits.max_json_bytes)?;
        let config_path = layout.error_path(&config_digest);
        let config: ImageConfiguration = parse_json(&config_bytes, &config_path, "image config")?;
        let image_platform = format!("{}/{}", config.os(), config.architecture());
        if image_platform != host_platform() {
            return Err(ImageError::WrongPlatform {
                path: layout.shown.clone(),
                digest: candidate.digest.clone(),
                image_platform,
                host: host_platform(),
            });
        }
        let rootfs = config.rootfs();
        if rootfs.typ() != "layers" || rootfs.diff_ids().len() != manifest.layers().len() {
            return Err(ImageError::LayerCount {
                path: config_path,
                config: config_digest,
                manifest: candidate.digest.clone(),
                rootfs_type: rootfs.typ().clone(),
                diff_ids: rootfs.diff_ids().len(),
                layers: manifest.layers().len(),
            });
        }

        let mut image = ImportedImage {
            name: candidate.name.as_ref().map(ToString::to_string),
            manifest_digest: candidate.digest.clone(),
            layers_unpacked: 0,
            layers_reused: 0,
        };
        let mut unpacked_size = 0;
        for (desc, diff_id) in manifest.layers().iter().zip(rootfs.diff_ids()) {
            let digest = descriptor_digest(&manifest_path, desc)?;
            let diff_id = Digest::parse(diff_id).map_err(|source| ImageError::BadDigest {
                path: config_path.clone(),
                source,
            })?;
            let media_type = desc.media_type().to_string();
            if !LAYER_TYPES.contains(&media_type.as_str()) {
                return Err(ImageError::MediaType {
                    path: manifest_path,
                    what: "layer",
                    digest,
                    media_type,
                });
            }
            let blob = self.stage_blob_file(layout, &digest, desc.size(), staging)?;
            let shown = layout.error_path(&digest);
            let size = if self.layer_path(&diff_id).is_dir() || staging.layers.contains(&diff_id) {
                image.layers_reused += 1;
                self.verify_diff_id(&blob, &shown, &diff_id)?
            } else {
                image.layers_unpacked += 1;
                let size = self.unpack_layer(&blob, &shown, &staging.layer(&diff_id), &diff_id)?;
                staging.layers.push(diff_id);
                size
            };
            unpacked_size += size;
        }
        self.stage_blob_bytes(&config_digest, &config_bytes, staging)?;
        self.stage_blob_bytes(&candidate.digest, &candidate.bytes, staging)?;
        let entry = IndexEntry {
            name: candidate.name.clone(),
            manifest: candidate.digest.clone(),
            media_type: candidate.media_type.clone(),
            size: candidate.size,
            unpacked_size: Some(unpacked_size),
        };
        Ok((entry, image))
    }

    /// Makes sure a (possibly large) blob is in the store or staged, copying and verifying it
    /// from the layout if needed; returns where it is.
    fn stage_blob_file(
        &self,
        layout: &Layout,
        digest: &Digest,
        size: u64,
        staging: &mut Staging,
    ) -> Result<PathBuf> {
        let stored = self.blob_path(digest);
        if stored.is_file() {
            return Ok(stored);
        }
        let staged = staging.blob(digest);
        if staging.blobs.contains(digest) {
            return Ok(staged);
        }
        let source = layout.blob(digest);
        let shown = layout.error_path(digest);
        let input = File::open(&source).map_err(|err| {
            layout.rename_path(
                ImageError::Read {
                    path: source.clone(),
                    source: err,
                },
                digest,
            )
        })?;
        let actual_size = input
            .metadata()
            .map_err(|source| ImageError::Read {
                path: shown.clone(),
                source,
            })?
            .len();
        if actual_size != size {
            return Err(ImageError::BlobSize {
                path: shown,
                digest: digest.clone(),
                expected: size,
                actual: actual_size,
            });
        }
        let write_err = |source| ImageError::Write {
            path: staged.clone(),
            source,
        };
        let mut output = File::create_new(&staged).map_err(write_err)?;
        let mut reader = HashingReader::with_limit(input, size);
        io::copy(&mut reader, &mut output).map_err(|source| ImageError::Read {
            path: shown.clone(),
            source,
        })?;
        let (actual, _) = reader.finish().map_err(|source| ImageError::Read {
            path: shown.clone(),
            source,
        })?;
        if &actual != digest {
            return Err(ImageError::BlobDigest {
                path: shown,
                expected: digest.clone(),
                actual,
            });
        }
        output.sync_all().map_err(write_err)?;
        staging.blobs.push(digest.clone());
        Ok(staged)
    }

    fn stage_blob_bytes(&self, digest: &Digest, bytes: &[u8], staging: &mut Staging) -> Result<()> {
        if self.blob_path(digest).is_file() || staging.blobs.contains(digest) {
            return Ok(());
        }
        let staged = staging.blob(digest);
        let write_err = |source| ImageError::Write {
            path: staged.clone(),
            source,
        };
        let mut file = File::create_new(&staged).map_err(write_err)?;
        file.write_all(bytes).map_err(write_err)?;
        file.sync_all().map_err(write_err)?;
        staging.blobs.push(digest.clone());
        Ok(())
    }

    /// The uncompressed stream of the layer blob at `blob` (`shown` is its name for errors).
    fn layer_stream(&self, blob: &Path, shown: &Path) -> Result<HashingReader<Box<dyn Read>>> {
        let file = File::open(blob).map_err(|source| ImageError::Read {
            path: shown.to_owned(),
            source,
        })?;
        let stream = unpack::decompress(file).map_err(|source| ImageError::Decompress {
            path: shown.to_owned(),
            source,
        })?;
        Ok(HashingReader::with_limit(
            stream,
            self.limits.max_layer_bytes,
        ))
    }

    /// Hashes the uncompressed stream of a layer already unpacked (the blob/diff-id pairing is
    /// still this image's claim to check). Returns the uncompressed size.
    fn verify_diff_id(&self, blob: &Path, shown: &Path, diff_id: &Digest) -> Result<u64> {
        let (actual, size) =
            self.layer_stream(blob, shown)?
                .finish()
                .map_err(|source| ImageError::Decompress {
                    path: shown.to_owned(),
                    source,
                })?;
        if &actual != diff_id {
            return Err(ImageError::DiffId {
                path: shown.to_owned(),
                expected: diff_id.clone(),
                actual,
            });
        }
        Ok(size)
    }

    /// Unpacks a layer blob into `dest` (created here) and checks its diff id. Returns the
    /// uncompressed size.
    fn unpack_layer(
        &self,
        blob: &Path,
        shown: &Path,
        dest: &Path,
        diff_id: &Digest,
    ) -> Result<u64> {
        // 0755 whatever the umask; the layer's `./` entry, if any, sets its own mode.
        fs::create_dir(dest)
            .and_then(|()| fs::set_permissions(dest, fs::Permissions::from_mode(0o755)))
            .map_err(|source| ImageError::Write {
                path: dest.to_owned(),
                source,
            })?;
        let stream = self.layer_stream(blob, shown)?;
        let (stats, stream) =
            unpack::unpack(stream, dest, self.limits.max_layer_entries).map_err(|source| {
                ImageError::Unpack {
                    path: shown.to_owned(),
                    diff_id: diff_id.clone(),
                    source,
                }
            })?;
        let (actual, size) = stream.finish().map_err(|source| ImageError::Decompress {
            path: shown.to_owned(),
            source,
        })?;
        if &actual != diff_id {
            return Err(ImageError::DiffId {
                path: shown.to_owned(),
                expected: diff_id.clone(),
                actual,
            });
        }
        tracing::debug!(%diff_id, entries = stats.entries, whiteouts = stats.whiteouts, opaque = stats.opaque_dirs, "layer unpacked");
        Ok(size)
    }

    /// Moves staged blobs and layers to their final names (layers only after everything they
    /// contain is on disk, and never over an existing layer).
    fn commit(&self, staging: &Staging) -> Result<()> {
        let blobs_dir = self.dir.join("blobs/sha256");
        for digest in &staging.blobs {
            let (from, to) = (staging.blob(digest), self.blob_path(digest));
            // Same content whoever wins, so replacing is harmless.
            fs::rename(&from, &to).map_err(|source| ImageError::Rename {
                from,
                to,
                source: Errno::from_raw(source.raw_os_error().unwrap_or(0)),
            })?;
        }
        index::sync_dir(&blobs_dir).map_err(|source| ImageError::Write {
            path: blobs_dir.clone(),
            source,
        })?;
        if staging.layers.is_empty() {
            return Ok(());
        }
        let staged_layers = staging.dir.path().join("layers");
        let dir = nix::fcntl::open(
            &staged_layers,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|source| ImageError::Sync {
            path: staged_layers.clone(),
            source,
        })?;
        nix::unistd::syncfs(dir.as_fd()).map_err(|source| ImageError::Sync {
            path: staged_layers.clone(),
            source,
        })?;
        for diff_id in &staging.layers {
            let (from, to) = (staging.layer(diff_id), self.layer_path(diff_id));
            match renameat2(
                nix::fcntl::AT_FDCWD,
                &from,
                nix::fcntl::AT_FDCWD,
                &to,
                RenameFlags::RENAME_NOREPLACE,
            ) {
                // Another import committed the same layer meanwhile: keep theirs.
                Ok(()) | Err(Errno::EEXIST | Errno::ENOTEMPTY) => {}
                Err(source) => return Err(ImageError::Rename { from, to, source }),
            }
        }
        let layers_dir = self.layers_dir();
        index::sync_dir(&layers_dir).map_err(|source| ImageError::Write {
            path: layers_dir,
            source,
        })
    }

    /// Copies the layout part of an image archive (`oci-layout`, `index.json`, `blobs/sha256/*`)
    /// into `dest`. Entry names are checked strictly, so nothing else is ever written.
    fn extract_archive(&self, archive: &Path, dest: &Path) -> Result<()> {
        let entry_err = |entry: &str, source| ImageError::Archive {
            path: archive.to_owned(),
            entry: entry.to_owned(),
            source,
        };
        let file = File::open(archive).map_err(|source| ImageError::Read {
            path: archive.to_owned(),
            source,
        })?;
        // A plain tar, or one compressed with gzip or zstd.
        let stream = unpack::decompress(file).map_err(|source| ImageError::Read {
            path: archive.to_owned(),
            source,
        })?;
        let stream = HashingReader::with_limit(stream, self.limits.max_archive_bytes);
        let blobs = dest.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(|source| ImageError::Write {
            path: blobs.clone(),
            source,
        })?;
        let mut tar = tar::Archive::new(stream);
        let mut seen_any = false;
        let mut previous: Option<String> = None;
        for entry in tar.entries().map_err(|source| entry_err("", source))? {
            let mut entry = match (entry, &previous) {
                (Ok(entry), _) => entry,
                (Err(_), None) => {
                    return Err(ImageError::NotALayout {
                        path: archive.to_owned(),
                        reason: "neither a directory nor a tar archive (plain, gzip or zstd)"
                            .to_owned(),
                    });
                }
                (Err(source), Some(prev)) => {
                    return Err(entry_err(&format!("(the one after {prev})"), source));
                }
            };
            let raw = entry.path_bytes().into_owned();
            let name = String::from_utf8_lossy(&raw).into_owned();
            previous = Some(name.clone());
            if !matches!(
                entry.header().entry_type(),
                tar::EntryType::Regular | tar::EntryType::Continuous
            ) {
                continue;
            }
            let parts: Vec<&str> = name
                .split('/')
                .filter(|p| !p.is_empty() && *p != ".")
                .collect();
            let target = match parts.as_slice() {
                ["oci-layout"] => dest.join("oci-layout"),
                ["index.json"] => dest.join("index.json"),
                ["blobs", "sha256", hex] if hex.len() == 64 && is_lower_hex(hex) => blobs.join(hex),
                _ => {
                    tracing::debug!(entry = %name, "ignoring archive entry outside the OCI layout");
                    continue;
                }
            };
            seen_any = true;
            let mut out = File::create(&target).map_err(|source| ImageError::Write {
                path: target.clone(),
                source,
            })?;
            io::copy(&mut entry, &mut out).map_err(|source| entry_err(&name, source))?;
        }
        if !seen_any {
            return Err(ImageError::NotALayout {
                path: archive.to_owned(),
                reason: "the archive holds no oci-layout, index.json or blobs".to_owned(),
            });
        }
        Ok(())
    }
}

/// Adds an image to the index: a tag moves to the new image (the image it leaves keeps an
/// untagged entry if nothing else names it, like docker's dangling images), an untagged import
/// of an image already listed changes nothing.
fn add_entry(entries: &mut Vec<IndexEntry>, entry: IndexEntry) {
    match &entry.name {
        Some(name) => {
            if let Some(pos) = entries.iter().position(|e| e.name.as_ref() == Some(name)) {
                let old = entries.remove(pos);
                if old.manifest != entry.manifest
                    && !entries.iter().any(|e| e.manifest == old.manifest)
                {
                    entries.push(IndexEntry { name: None, ..old });
                }
            }
            entries.retain(|e| !(e.name.is_none() && e.manifest == entry.manifest));
            entries.push(entry);
        }
        None => {
            if !entries.iter().any(|e| e.manifest == entry.manifest) {
                entries.push(entry);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: Option<&str>, data: &[u8]) -> IndexEntry {
        IndexEntry {
            name: name.map(|n| Reference::parse_tagged(n).unwrap()),
            manifest: Digest::of(data),
            media_type: OCI_MANIFEST.into(),
            size: 1,
            unpacked_size: None,
        }
    }

    #[test]
    fn retagging_leaves_the_old_image_dangling_and_untagged_entries_merge() {
        let mut entries = Vec::new();
        add_entry(&mut entries, entry(Some("app:1"), b"old"));
        add_entry(&mut entries, entry(Some("app:1"), b"new"));
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0], entry(None, b"old"));
        assert_eq!(entries[1], entry(Some("app:1"), b"new"));
        // Untagged import of a known image: no change.
        add_entry(&mut entries, entry(None, b"new"));
        assert_eq!(entries.len(), 2);
        // Tagging a dangling image replaces its untagged entry.
        add_entry(&mut entries, entry(Some("app:0"), b"old"));
        assert_eq!(
            entries,
            vec![entry(Some("app:1"), b"new"), entry(Some("app:0"), b"old")]
        );
        // Same tag, same image: still one entry.
        add_entry(&mut entries, entry(Some("app:0"), b"old"));
        assert_eq!(entries.len(), 2);
    }

    #[test]
    fn host_platform_is_linux_goarch() {
        let p = host_platform();
        assert!(p.starts_with("linux/"));
        if cfg!(target_arch = "x86_64") {
            assert_eq!(p, "linux/amd64");
        }
    }
}
