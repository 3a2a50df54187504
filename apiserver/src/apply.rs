//! Server-side apply of manifest files: what `berth apply -f` and `berth daemon --manifests`
//! both do.
//!
//! Every file of a request is parsed, defaulted and validated first, and all the problems of
//! all the files are answered at once (422, one cause per problem naming file, document and
//! field); nothing is written then. Otherwise the whole request is one store batch (creates and
//! updates as apply ops, then the prunes), so it is applied entirely or not at all: a half
//! applied directory never runs.
//!
//! Objects are applied in [`KINDS`] order (namespaces, then configmaps and secrets, services,
//! then workloads) so that what a workload uses exists first; prunes delete in the reverse
//! order. Each object is annotated with [`SOURCE_ANNOTATION`], the file it came from, which is
//! what pruning goes by.

use std::collections::{BTreeSet, HashMap};

use berth_api::{
    KINDS, Object, ObjectKey,
    parse::{Parsed, Source, parse_str},
};
use berth_store::{Op, Outcome, Preconditions, RedbStore};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

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

/// The source annotation of objects from `path`: `prefix/path`, or `path`.
fn source_of(prefix: Option<&str>, path: &str) -> String {
    match prefix.filter(|p| !p.is_empty()) {
        Some(prefix) => std::path::Path::new(prefix)
            .join(path)
            .display()
            .to_string(),
        None => path.to_owned(),
    }
}

/// Whether `source` is `scope` or lies under it (whole path components).
pub fn in_scope(source: &str, scope: &str) -> bool {
    if scope.is_empty() {
        // An empty scope would prune everything ever applied: it selects nothing.
        return false;
    }
    let scope = scope.trim_end_matches('/');
    if scope.is_empty() {
        return source.starts_with('/');
    }
    source == scope
        || source
            .strip_prefix(scope)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn rank(kind: &str) -> usize {
    KINDS
        .iter()
        .position(|k| k.kind == kind)
        .unwrap_or(KINDS.len())
}

/// The desired state of an object as apply compares it: without what the server sets and
/// without status.
fn desired_state(object: &Object) -> Result<serde_json::Value, ApiError> {
    let mut value = crate::handlers::to_value(object)?;
    if let Some(fields) = value.as_object_mut() {
        fields.remove("status");
        if let Some(metadata) = fields.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            for server_set in [
                "uid",
                "resourceVersion",
                "generation",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "ownerReferences",
                "finalizers",
            ] {
                metadata.remove(server_set);
            }
        }
    }
    Ok(value)
}

fn applied(object: &Object, action: ApplyAction) -> AppliedObject {
    AppliedObject {
        api_version: object.api_version().to_owned(),
        kind: object.kind().to_owned(),
        namespace: object.metadata().namespace.clone(),
        name: object.name().to_owned(),
        action,
    }
}

/// Applies `request` to `store` (see the module documentation); with `dry_run` everything is
/// checked and the answer says what would happen, but nothing is written. With `prune`,
/// objects whose source lies in `request.prune_scopes` and that the request does not contain
/// are deleted in the same batch.
pub async fn apply(
    store: &RedbStore,
    request: ApplyRequest,
    dry_run: bool,
    prune: bool,
) -> Result<ApplyResponse, ApiError> {
    let mut parsed = Parsed::default();
    let mut sources = HashMap::new();
    for file in &request.files {
        sources.insert(
            file.path.clone(),
            source_of(request.source_prefix.as_deref(), &file.path),
        );
        parsed.extend(parse_str(Source::Named(file.path.clone()), &file.content));
    }
    parsed.default_and_validate();
    let documents = parsed
        .into_result()
        .map_err(|errors| ApiError::invalid_manifests(&errors))?;

    let mut objects: Vec<Object> = documents
        .into_iter()
        .map(|document| {
            let file = document.location.source.to_string();
            let mut object = document.object;
            let source = sources.get(&file).cloned().unwrap_or(file);
            object
                .metadata_mut()
                .annotations
                .insert(SOURCE_ANNOTATION.to_owned(), source);
            object
        })
        .collect();
    objects.sort_by_key(|o| rank(o.kind()));

    let mut actions = Vec::with_capacity(objects.len());
    for object in &objects {
        let action = match store.get(&object.key()).await {
            Ok(current) if desired_state(&current)? == desired_state(object)? => {
                ApplyAction::Unchanged
            }
            Ok(_) => ApplyAction::Configured,
            Err(err) if err.is_not_found() => ApplyAction::Created,
            Err(err) => return Err(err.into()),
        };
        actions.push(action);
    }

    let keys: BTreeSet<ObjectKey> = objects.iter().map(Object::key).collect();
    let mut prunes = Vec::new();
    if prune && !request.prune_scopes.is_empty() {
        for kind in KINDS.iter().rev() {
            for object in store.list(kind.kind, None, None).await?.items {
                let in_scopes = object
                    .metadata()
                    .annotations
                    .get(SOURCE_ANNOTATION)
                    .is_some_and(|source| {
                        request
                            .prune_scopes
                            .iter()
                            .any(|scope| in_scope(source, scope))
                    });
                if in_scopes
                    && !keys.contains(&object.key())
                    && object.metadata().deletion_timestamp.is_none()
                {
                    prunes.push(object);
                }
            }
        }
    }

    if !dry_run {
        let mut ops: Vec<Op> = objects.iter().cloned().map(Op::Apply).collect();
        ops.extend(prunes.iter().map(|object| Op::Delete {
            key: object.key(),
            // Never prune an object recreated since it was listed.
            preconditions: Preconditions {
                uid: object.metadata().uid.clone(),
                resource_version: None,
            },
        }));
        if !ops.is_empty() {
            let outcomes = store.batch(ops).await?;
            for (action, outcome) in actions.iter_mut().zip(&outcomes) {
                *action = match outcome {
                    Outcome::Created(_) => ApplyAction::Created,
                    Outcome::Unchanged(_) => ApplyAction::Unchanged,
                    Outcome::Updated(_) | Outcome::Terminating(_) | Outcome::Deleted(_) => {
                        ApplyAction::Configured
                    }
                };
            }
            tracing::info!(
                objects = objects.len(),
                pruned = prunes.len(),
                "manifests applied"
            );
        }
    }

    let mut items: Vec<AppliedObject> = objects
        .iter()
        .zip(actions)
        .map(|(object, action)| applied(object, action))
        .collect();
    items.extend(prunes.iter().map(|o| applied(o, ApplyAction::Pruned)));
    Ok(ApplyResponse { items, dry_run })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_whole_path_components() {
        assert!(in_scope("manifests/web.yaml", "manifests"));
        assert!(in_scope("manifests/web.yaml", "manifests/"));
        assert!(in_scope("manifests/web.yaml", "manifests/web.yaml"));
        assert!(!in_scope("manifests-old/web.yaml", "manifests"));
        assert!(!in_scope("other/web.yaml", "manifests"));
        assert_eq!(
            source_of(Some("/etc/berth"), "web.yaml"),
            "/etc/berth/web.yaml"
        );
        assert_eq!(source_of(None, "web.yaml"), "web.yaml");
    }
}
