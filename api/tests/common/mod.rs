//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("api/ is inside the repository")
        .to_owned()
}

pub fn fixtures(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind)
}

/// Manifest files under `dir`, sorted.
pub fn manifest_files(dir: &Path) -> Vec<PathBuf> {
    let files = berth_api::load::manifest_files(dir).expect("readable fixture directory");
    assert!(!files.is_empty(), "no manifests in {}", dir.display());
    files
}

/// Every manifest berth must accept: examples/ and tests/fixtures/valid/.
pub fn accepted_files() -> Vec<PathBuf> {
    let mut files = manifest_files(&repo_root().join("examples"));
    files.extend(manifest_files(&fixtures("valid")));
    files
}

/// A path relative to the repository, with `/` separators, for stable messages.
pub fn display_path(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}
