//! Server-side apply of manifest files: what `berth apply -f` and `berth daemon --manifests`
//! both do.

use serde::{Deserialize, Serialize};

/// Label/annotation recording the manifest file an object came from, for pruning.
pub const SOURCE_ANNOTATION: &str = "berth.dev/source";

/// One manifest file: its name (for error messages and the source annotation) and its text
/// (one or more YAML or JSON documents).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    /// As the user named it (`examples/web.yaml`), or an absolute path.
    pub path: String,
    pub content: String,
}

/// `POST /apis/berth.dev/v1/apply`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyRequest {
    pub files: Vec<ManifestFile>,
    /// Every applied object gets `berth.dev/source: <source of its file>`; the source of a file
    /// is `source_prefix` joined with its path when set, else the path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_prefix: Option<String>,
    /// With `prune=true`: objects whose source annotation equals one of these scopes or lies
    /// under one (path-component prefix) and that this request does not contain are deleted, in
    /// the same batch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prune_scopes: Vec<String>,
}

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyAction {
    Created,
    Configured,
    Unchanged,
    Pruned,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedObject {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub action: ApplyAction,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyResponse {
    pub items: Vec<AppliedObject>,
    pub dry_run: bool,
}
