//! The store's `index.json`: which manifests are images and under which `name:tag`.
//!
//! It is an OCI image index (the store directory is itself a valid OCI image layout): one manifest
//! descriptor per tag with the `org.opencontainers.image.ref.name` annotation holding `name:tag`,
//! and one descriptor without it per untagged image. Writers take an exclusive `flock` on
//! `index.lock` around read-modify-write and replace the file atomically (temp file, fsync,
//! rename, fsync of the directory), so readers need no lock and concurrent imports never lose
//! each other's tags.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::digest::Digest;
use super::reference::TaggedName;

pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// Sum of the uncompressed layer sizes, recorded at import for `image ls`.
pub const SIZE_ANNOTATION: &str = "io.berth.image.unpacked-size";
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("reading image index {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("image index {path} is not valid JSON of an OCI image index")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("image index {path}: entry {digest} has an invalid ref name {name:?}")]
    BadName {
        path: PathBuf,
        digest: Digest,
        name: String,
    },
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("locking {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
}

/// One image entry: a manifest, optionally under a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub name: Option<TaggedName>,
    pub manifest: Digest,
    pub media_type: String,
    pub size: u64,
    /// Uncompressed size of all layers, when known.
    pub unpacked_size: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciIndex {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<OciDescriptor>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciDescriptor {
    media_type: String,
    digest: Digest,
    size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

/// Reads the index at `path`; a missing file is an empty index.
pub fn load(path: &Path) -> Result<Vec<IndexEntry>, IndexError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(IndexError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let index: OciIndex = serde_json::from_slice(&bytes).map_err(|source| IndexError::Parse {
        path: path.to_owned(),
        source,
    })?;
    index
        .manifests
        .into_iter()
        .map(|d| {
            let name = match d.annotations.get(REF_NAME_ANNOTATION) {
                Some(name) => Some(super::reference::Reference::parse_tagged(name).map_err(
                    |_| IndexError::BadName {
                        path: path.to_owned(),
                        digest: d.digest.clone(),
                        name: name.clone(),
                    },
                )?),
                None => None,
            };
            let unpacked_size = d
                .annotations
                .get(SIZE_ANNOTATION)
                .and_then(|s| s.parse().ok());
            Ok(IndexEntry {
                name,
                manifest: d.digest,
                media_type: d.media_type,
                size: d.size,
                unpacked_size,
            })
        })
        .collect()
}

fn serialize(entries: &[IndexEntry]) -> Vec<u8> {
    let index = OciIndex {
        schema_version: 2,
        media_type: Some(INDEX_MEDIA_TYPE.to_owned()),
        manifests: entries
            .iter()
            .map(|e| {
                let mut annotations = BTreeMap::new();
                if let Some(name) = &e.name {
                    annotations.insert(REF_NAME_ANNOTATION.to_owned(), name.to_string());
                }
                if let Some(size) = e.unpacked_size {
                    annotations.insert(SIZE_ANNOTATION.to_owned(), size.to_string());
                }
                OciDescriptor {
                    media_type: e.media_type.clone(),
                    digest: e.manifest.clone(),
                    size: e.size,
                    annotations,
                }
            })
            .collect(),
    };
    let mut bytes = serde_json::to_vec_pretty(&index).expect("an index always serialises");
    bytes.push(b'\n');
    bytes
}

/// Takes an exclusive lock on `lock_path`, applies `change` to the entries of `index_path` and
/// writes them back atomically if `change` succeeds. The lock is released on return.
pub fn update<T, E>(
    index_path: &Path,
    lock_path: &Path,
    change: impl FnOnce(&mut Vec<IndexEntry>) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<IndexError>,
{
    let _lock = lock(lock_path, FlockArg::LockExclusive)?;
    let mut entries = load(index_path)?;
    let before = entries.clone();
    let out = change(&mut entries)?;
    if entries != before {
        write_atomic(index_path, &serialize(&entries))?;
    }
    Ok(out)
}

/// Opens (creating) `path` and takes a `flock` of the given kind, held until the guard drops.
pub fn lock(path: &Path, kind: FlockArg) -> Result<Flock<File>, IndexError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|source| IndexError::Write {
            path: path.to_owned(),
            source,
        })?;
    Flock::lock(file, kind).map_err(|(_, source)| IndexError::Lock {
        path: path.to_owned(),
        source,
    })
}

/// Replaces `path` with `bytes` so that a reader or a crash sees the old or the new content,
/// never a mix: write a temp file in the same directory, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), IndexError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let write_err = |source| IndexError::Write {
        path: path.to_owned(),
        source,
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(write_err)?;
    tmp.write_all(bytes).map_err(write_err)?;
    tmp.as_file().sync_all().map_err(write_err)?;
    tmp.persist(path).map_err(|err| write_err(err.error))?;
    sync_dir(dir).map_err(write_err)
}

/// fsyncs a directory so a rename into it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    fn entry(name: Option<&str>, data: &[u8]) -> IndexEntry {
        IndexEntry {
            name: name.map(|n| super::super::reference::Reference::parse_tagged(n).unwrap()),
            manifest: Digest::of(data),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: data.len() as u64,
            unpacked_size: Some(42),
        }
    }

    #[test]
    fn missing_index_is_empty_and_round_trips_as_an_oci_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        assert!(load(&path).unwrap().is_empty());
        let entries = vec![entry(Some("busybox:latest"), b"a"), entry(None, b"b")];
        write_atomic(&path, &serialize(&entries)).unwrap();
        assert_eq!(load(&path).unwrap(), entries);
        let json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["schemaVersion"], 2);
        assert_eq!(
            json["manifests"][0]["annotations"][REF_NAME_ANNOTATION],
            "busybox:latest"
        );
        assert!(json["manifests"][1].get("annotations").unwrap()[REF_NAME_ANNOTATION].is_null());
        // No temp files left next to it.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn corrupt_index_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        fs::write(&path, b"{not json").unwrap();
        let err = load(&path).unwrap_err();
        assert!(matches!(err, IndexError::Parse { .. }));
        assert!(err.to_string().contains("index.json"), "{err}");
    }

    #[test]
    fn failed_change_leaves_the_index_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        let lock_path = dir.path().join("index.lock");
        update::<_, IndexError>(&path, &lock_path, |e| {
            e.push(entry(Some("a:1"), b"a"));
            Ok(())
        })
        .unwrap();
        let before = fs::read(&path).unwrap();
        let res: Result<(), IndexError> = update(&path, &lock_path, |e| {
            e.clear();
            Err(IndexError::BadName {
                path: path.clone(),
                digest: Digest::of(b""),
                name: "x".into(),
            })
        });
        assert!(res.is_err());
        assert_eq!(fs::read(&path).unwrap(), before);
    }

    #[test]
    fn concurrent_updates_do_not_lose_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = Arc::new(dir.path().join("index.json"));
        let lock_path = Arc::new(dir.path().join("index.lock"));
        let threads = 8;
        let barrier = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (path, lock_path, barrier) = (path.clone(), lock_path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    for j in 0..10 {
                        update::<_, IndexError>(&path, &lock_path, |e| {
                            let name = format!("img{i}:t{j}");
                            e.push(entry(Some(&name), name.as_bytes()));
                            Ok(())
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(load(&path).unwrap().len(), threads * 10);
    }
}
