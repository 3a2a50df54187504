//! `build`: a root filesystem directory becomes a single-layer OCI image.
//!
//! The layer tar is deterministic: entries sorted by name, numeric owners, modes (setuid/sgid/
//! sticky included), mtimes, symlinks, hardlinks (same inode → link to the first path) and
//! extended attributes (PAX `SCHILY.xattr.*`) kept, empty user/group names, gzip without a
//! timestamp. The same directory therefore always gives the same layer digest. The result is
//! written as an OCI layout in a staging directory and imported like any other layout, so built
//! images pass through the same verification and unpacking.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};
use nix::fcntl::FlockArg;
use oci_spec::image::Arch;
use serde_json::json;

use super::digest::{Digest, HashingWriter};
use super::import::Layout;
use super::index::REF_NAME_ANNOTATION;
use super::reference::Reference;
use super::{ImageError, ImageStore, ImportedImage, Result};

/// What `image build` makes an image from.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub rootfs_dir: PathBuf,
    /// `name[:tag]`.
    pub tag: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=VALUE` entries.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// The config's `created` time; none leaves it out (fully reproducible image digest).
    pub created: Option<jiff::Timestamp>,
}

impl ImageStore {
    /// Builds a single-layer image from `options.rootfs_dir` and tags it `options.tag`.
    pub fn build(&self, options: BuildOptions) -> Result<ImportedImage> {
        let tag = Reference::parse_tagged(&options.tag)?;
        for entry in &options.env {
            if entry.split_once('=').is_none_or(|(k, _)| k.is_empty()) {
                return Err(ImageError::BadEnv {
                    entry: entry.clone(),
                });
            }
        }
        let root = &options.rootfs_dir;
        let meta = fs::symlink_metadata(root).map_err(|source| ImageError::Read {
            path: root.clone(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(ImageError::NotADirectory { path: root.clone() });
        }
        let _gc = self.lock_gc(FlockArg::LockShared)?;
        let staging = self.new_staging()?;
        let layout_dir = staging.dir.path().join("layout");
        let blobs = layout_dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(|source| ImageError::Write {
            path: blobs.clone(),
            source,
        })?;

        let layer_tmp = blobs.join("layer.tmp");
        let (diff_id, layer_digest, layer_size) = write_layer(root, &layer_tmp)?;
        let layer_path = blobs.join(layer_digest.hex());
        fs::rename(&layer_tmp, &layer_path).map_err(|source| ImageError::Write {
            path: layer_path,
            source,
        })?;

        let mut config = serde_json::Map::new();
        let mut put = |key: &str, value: serde_json::Value| {
            config.insert(key.to_owned(), value);
        };
        if !options.entrypoint.is_empty() {
            put("Entrypoint", json!(options.entrypoint));
        }
        if !options.cmd.is_empty() {
            put("Cmd", json!(options.cmd));
        }
        if !options.env.is_empty() {
            put("Env", json!(options.env));
        }
        if let Some(dir) = &options.working_dir {
            put("WorkingDir", json!(dir));
        }
        if let Some(user) = &options.user {
            put("User", json!(user));
        }
        if !options.labels.is_empty() {
            put("Labels", json!(options.labels));
        }
        let mut image_config = json!({
            "architecture": Arch::default().to_string(),
            "os": "linux",
            "config": config,
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
            "history": [{ "created_by": "berth image build" }],
        });
        if let Some(created) = options.created {
            let created = created.to_string();
            image_config["created"] = json!(created);
            image_config["history"][0]["created"] = json!(created);
        }
        let config_bytes = serde_json::to_vec(&image_config).expect("JSON values serialise");
        let config_digest = write_blob(&blobs, &config_bytes)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_bytes.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer_digest,
                "size": layer_size,
            }],
        });
        let manifest_bytes = serde_json::to_vec(&manifest).expect("JSON values serialise");
        let manifest_digest = write_blob(&blobs, &manifest_bytes)?;
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest_bytes.len(),
                "annotations": { REF_NAME_ANNOTATION: tag.to_string() },
            }],
        });
        write_file(
            &layout_dir.join("index.json"),
            &serde_json::to_vec(&index).expect("JSON values serialise"),
        )?;
        write_file(
            &layout_dir.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;

        let layout = Layout {
            dir: layout_dir,
            shown: root.clone(),
        };
        let mut images = self.import_layout(&layout, Some(tag), staging)?;
        Ok(images.remove(0))
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).map_err(|source| ImageError::Write {
        path: path.to_owned(),
        source,
    })
}

fn write_blob(blobs: &Path, bytes: &[u8]) -> Result<Digest> {
    let digest = Digest::of(bytes);
    write_file(&blobs.join(digest.hex()), bytes)?;
    Ok(digest)
}

/// Writes the gzip-compressed layer tar of `root` to `out`; returns diff id, blob digest, size.
fn write_layer(root: &Path, out: &Path) -> Result<(Digest, Digest, u64)> {
    let write_err = |source| ImageError::Write {
        path: out.to_owned(),
        source,
    };
    let file = File::create_new(out).map_err(write_err)?;
    let compressed = HashingWriter::new(io::BufWriter::new(file));
    // Level 1: builds are local and often repeated; the digest stays deterministic.
    let gzip = GzBuilder::new().write(compressed, Compression::fast());
    let mut builder = tar::Builder::new(HashingWriter::new(gzip));
    let mut links = HashMap::new();
    append_dir(&mut builder, root, Path::new(""), &mut links, out)?;
    let uncompressed = builder.into_inner().map_err(write_err)?;
    let (gzip, diff_id, _) = uncompressed.finish();
    let compressed = gzip.finish().map_err(write_err)?;
    let (buffered, digest, size) = compressed.finish();
    let file = buffered
        .into_inner()
        .map_err(|e| write_err(e.into_error()))?;
    file.sync_all().map_err(write_err)?;
    Ok((diff_id, digest, size))
}

type Builder =
    tar::Builder<HashingWriter<flate2::write::GzEncoder<HashingWriter<io::BufWriter<File>>>>>;

fn append_dir(
    builder: &mut Builder,
    dir: &Path,
    rel: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
    out: &Path,
) -> Result<()> {
    let read_err = |path: &Path, source| ImageError::Read {
        path: path.to_owned(),
        source,
    };
    let write_err = |source| ImageError::Write {
        path: out.to_owned(),
        source,
    };
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| read_err(dir, e))? {
        names.push(entry.map_err(|e| read_err(dir, e))?.file_name());
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let path = dir.join(&name);
        let rel = rel.join(&name);
        let meta = fs::symlink_metadata(&path).map_err(|e| read_err(&path, e))?;
        let file_type = meta.file_type();
        if file_type.is_char_device() || file_type.is_block_device() {
            let kind = if file_type.is_char_device() {
                "character"
            } else {
                "block"
            };
            return Err(ImageError::BuildDevice { path, kind });
        }
        if file_type.is_socket() {
            tracing::warn!(path = %path.display(), "skipping socket: tar cannot hold it");
            continue;
        }
        append_xattrs(builder, &path, out)?;
        let mut header = tar::Header::new_gnu();
        header.set_mode(meta.mode() & 0o7777);
        header.set_uid(meta.uid().into());
        header.set_gid(meta.gid().into());
        header.set_mtime(meta.mtime().max(0) as u64);
        header.set_size(0);
        if file_type.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            let mut dir_name = rel.as_os_str().to_owned();
            dir_name.push("/");
            builder
                .append_data(&mut header, Path::new(&dir_name), io::empty())
                .map_err(write_err)?;
            append_dir(builder, &path, &rel, links, out)?;
        } else if file_type.is_symlink() {
            header.set_entry_type(tar::EntryType::Symlink);
            let target = fs::read_link(&path).map_err(|e| read_err(&path, e))?;
            builder
                .append_link(&mut header, &rel, &target)
                .map_err(write_err)?;
        } else if file_type.is_fifo() {
            header.set_entry_type(tar::EntryType::Fifo);
            builder
                .append_data(&mut header, &rel, io::empty())
                .map_err(write_err)?;
        } else {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = links.get(&key) {
                    header.set_entry_type(tar::EntryType::Link);
                    builder
                        .append_link(&mut header, &rel, first)
                        .map_err(write_err)?;
                    continue;
                }
                links.insert(key, rel.clone());
            }
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(meta.len());
            let file = File::open(&path).map_err(|e| read_err(&path, e))?;
            builder
                .append_data(&mut header, &rel, file)
                .map_err(write_err)?;
        }
    }
    Ok(())
}

/// Extended attributes of `path` as a PAX header before its entry (sorted, for determinism;
/// overlayfs-private and SELinux labels of the build host are left out).
fn append_xattrs(builder: &mut Builder, path: &Path, out: &Path) -> Result<()> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(err) if err.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(()),
        Err(source) => {
            return Err(ImageError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut attrs = Vec::new();
    for name in names {
        let bytes = name.as_bytes();
        if bytes.starts_with(b"trusted.overlay.") || bytes == b"security.selinux" {
            continue;
        }
        let Ok(key) = std::str::from_utf8(bytes) else {
            continue;
        };
        if let Some(value) = xattr::get(path, &name).map_err(|source| ImageError::Read {
            path: path.to_owned(),
            source,
        })? {
            attrs.push((format!("SCHILY.xattr.{key}"), value));
        }
    }
    if attrs.is_empty() {
        return Ok(());
    }
    attrs.sort();
    builder
        .append_pax_extensions(attrs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
        .map_err(|source| ImageError::Write {
            path: out.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn sample_rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        fs::create_dir_all(p.join("bin")).unwrap();
        fs::create_dir_all(p.join("tmp")).unwrap();
        fs::set_permissions(p.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
        fs::write(p.join("bin/tool"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(p.join("bin/tool"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::hard_link(p.join("bin/tool"), p.join("bin/tool2")).unwrap();
        symlink("tool", p.join("bin/sh")).unwrap();
        dir
    }

    #[test]
    fn layer_tar_is_deterministic_and_sorted() {
        let rootfs = sample_rootfs();
        let out = tempfile::tempdir().unwrap();
        let a = write_layer(rootfs.path(), &out.path().join("a")).unwrap();
        let b = write_layer(rootfs.path(), &out.path().join("b")).unwrap();
        assert_eq!(a, b);
        let bytes = fs::read(out.path().join("a")).unwrap();
        assert_eq!(Digest::of(&bytes), a.1);
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        let entries: Vec<(String, tar::EntryType, u32)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.entry_type(),
                    h.mode().unwrap(),
                )
            })
            .collect();
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["bin/", "bin/sh", "bin/tool", "bin/tool2", "tmp/"]);
        assert_eq!(entries[1].1, tar::EntryType::Symlink);
        assert_eq!(
            (entries[2].1, entries[2].2),
            (tar::EntryType::Regular, 0o4755)
        );
        assert_eq!(entries[3].1, tar::EntryType::Link);
        assert_eq!(entries[4].2, 0o1777);
    }
}
