//! Shared helpers of the image store integration tests: a busybox root filesystem, OCI layouts
//! written by hand (so tests can make them hostile), and store snapshots.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_runtime::image::Digest;
use serde_json::json;

/// Lays out a busybox root filesystem in `dir` with the repository's script.
pub fn busybox_rootfs(dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/busybox-rootfs.sh");
    run(Command::new("bash").arg(script).arg(dir));
}

/// Runs a command and panics with its output when it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every path under `root` (relative), for "left no trace" checks.
pub fn snapshot(root: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(base).unwrap().to_owned());
            if fs::symlink_metadata(&path).unwrap().is_dir() {
                walk(base, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compress {
    None,
    Gzip,
    Zstd,
}

/// Ways to spoil a layout after writing it correctly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    None,
    /// Flip a byte of the first layer blob (its digest no longer matches).
    LayerByte,
    /// Descriptor size of the first layer off by one.
    LayerSize,
    /// Config lists a wrong diff id for the first layer.
    DiffId,
    /// The first layer blob is cut in half (and described with its truncated digest).
    TruncateLayer,
}

/// A tar built entry by entry; names are written raw so they can be hostile.
pub struct TarBuilder(tar::Builder<Vec<u8>>);

impl Default for TarBuilder {
    fn default() -> Self {
        TarBuilder(tar::Builder::new(Vec::new()))
    }
}

impl TarBuilder {
    pub fn entry(
        mut self,
        name: &str,
        kind: tar::EntryType,
        link: Option<&str>,
        data: &[u8],
    ) -> Self {
        let mut header = tar::Header::new_gnu();
        let gnu = header.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_entry_type(kind);
        header.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_600_000_000);
        header.set_size(data.len() as u64);
        header.set_cksum();
        self.0.append(&header, data).unwrap();
        self
    }

    pub fn file(self, name: &str, data: &[u8]) -> Self {
        self.entry(name, tar::EntryType::Regular, None, data)
    }

    pub fn dir(self, name: &str) -> Self {
        self.entry(name, tar::EntryType::Directory, None, b"")
    }

    pub fn device(mut self, name: &str, kind: tar::EntryType, major: u32, minor: u32) -> Self {
        let mut header = tar::Header::new_gnu();
        header.set_path(name).unwrap();
        header.set_entry_type(kind);
        header.set_device_major(major).unwrap();
        header.set_device_minor(minor).unwrap();
        header.set_mode(0o666);
        header.set_size(0);
        header.set_cksum();
        self.0.append(&header, &[][..]).unwrap();
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn compress(data: &[u8], how: Compress) -> Vec<u8> {
    match how {
        Compress::None => data.to_vec(),
        Compress::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(data).unwrap();
            enc.finish().unwrap()
        }
        Compress::Zstd => {
            ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
        }
    }
}

fn put_blob(dir: &Path, bytes: &[u8]) -> Digest {
    let digest = Digest::of(bytes);
    fs::write(dir.join("blobs/sha256").join(digest.hex()), bytes).unwrap();
    digest
}

/// Writes an OCI layout at `dir` with one image made of `layers` (uncompressed tars), named
/// `ref_name`; returns the manifest digest.
pub fn write_layout(
    dir: &Path,
    layers: &[Vec<u8>],
    how: Compress,
    ref_name: Option<&str>,
    tamper: Tamper,
) -> Digest {
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let media = match how {
        Compress::None => "application/vnd.oci.image.layer.v1.tar",
        Compress::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Compress::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
    };
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let mut blob = compress(layer, how);
        if i == 0 && tamper == Tamper::TruncateLayer {
            blob.truncate(blob.len() / 2);
        }
        let digest = put_blob(dir, &blob);
        let mut size = blob.len() as u64;
        if i == 0 && tamper == Tamper::LayerByte {
            let path = dir.join("blobs/sha256").join(digest.hex());
            let mut bytes = fs::read(&path).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 0xff;
            fs::write(&path, bytes).unwrap();
        }
        if i == 0 && tamper == Tamper::LayerSize {
            size += 1;
        }
        descriptors.push(json!({"mediaType": media, "digest": digest, "size": size}));
        let diff_id = if i == 0 && tamper == Tamper::DiffId {
            Digest::of(b"not this")
        } else {
            Digest::of(layer)
        };
        diff_ids.push(diff_id);
    }
    let arch = oci_spec::image::Arch::default().to_string();
    let config = serde_json::to_vec(&json!({
        "architecture": arch,
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "Labels": {"a": "b"}, "ExposedPorts": {"80/tcp": {}}, "StopSignal": "SIGQUIT"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let config_digest = put_blob(dir, &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": descriptors,
    }))
    .unwrap();
    let manifest_digest = put_blob(dir, &manifest);
    let mut annotations = BTreeMap::new();
    if let Some(name) = ref_name {
        annotations.insert("org.opencontainers.image.ref.name", name);
    }
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": annotations,
        }],
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    manifest_digest
}

/// Packs a layout directory into a tar archive (an `oci-archive`).
pub fn archive_layout(layout: &Path, out: &Path) {
    let mut builder = tar::Builder::new(fs::File::create(out).unwrap());
    builder.append_dir_all(".", layout).unwrap();
    builder.finish().unwrap();
}
