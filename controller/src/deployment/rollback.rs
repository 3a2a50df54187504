//! Rollback (`berth rollout undo [--to-revision N]`), as Kubernetes' rollback.go: the
//! Deployment's template becomes an old ReplicaSet's (minus its pod-template-hash label); the
//! next reconcile then finds that ReplicaSet as the new one and gives it the next revision.

use berth_api::{
    Object,
    apps_v1::{Deployment, ReplicaSet},
};
use berth_store::RedbStore;

use super::util::revision;
use crate::{hash::POD_TEMPLATE_HASH_LABEL, pods::controller_of};

/// Why a rollback could not be done.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("Deployment {deployment}: no revision to roll back to (it has no older revision)")]
    NoPreviousRevision { deployment: String },
    #[error("Deployment {deployment}: revision {revision} not found")]
    RevisionNotFound { deployment: String, revision: i64 },
    #[error("Deployment {deployment}: revision {revision} has no pod template")]
    NoTemplate { deployment: String, revision: i64 },
    #[error("cannot roll back Deployment {deployment}")]
    Store {
        deployment: String,
        #[source]
        source: Box<berth_store::Error>,
    },
}

/// The Deployment with the template of revision `to_revision` of `replica_sets` (its own), or
/// of the previous revision when `None` (or 0). Annotations the ReplicaSet carries (but the
/// revision ones) are copied back, as Kubernetes does. Pure: the caller writes it.
pub fn rollback(
    deployment: &Deployment,
    replica_sets: &[ReplicaSet],
    to_revision: Option<i64>,
) -> Result<Deployment, RollbackError> {
    let name = deployment.metadata.name().to_owned();
    let uid = deployment.metadata.uid.as_deref();
    let mut owned: Vec<&ReplicaSet> = replica_sets
        .iter()
        .filter(|rs| uid.is_none() || controller_of(&rs.metadata).map(|o| o.uid.as_str()) == uid)
        .collect();
    owned.sort_by_key(|rs| revision(&rs.metadata));
    let revision_wanted = match to_revision.filter(|r| *r != 0) {
        Some(r) => r,
        None => {
            // The second-newest revision (Kubernetes' LastRevision).
            let mut revisions: Vec<i64> = owned.iter().map(|rs| revision(&rs.metadata)).collect();
            revisions.dedup();
            let n = revisions.len();
            if n < 2 {
                return Err(RollbackError::NoPreviousRevision { deployment: name });
            }
            revisions[n - 2]
        }
    };
    let rs = owned
        .iter()
        .find(|rs| revision(&rs.metadata) == revision_wanted)
        .ok_or_else(|| RollbackError::RevisionNotFound {
            deployment: name.clone(),
            revision: revision_wanted,
        })?;
    let mut template = rs.spec.template.clone().ok_or(RollbackError::NoTemplate {
        deployment: name,
        revision: revision_wanted,
    })?;
    template.metadata.labels.remove(POD_TEMPLATE_HASH_LABEL);
    let mut rolled_back = deployment.clone();
    rolled_back.spec.template = template;
    for (key, value) in &rs.metadata.annotations {
        if !key.starts_with("deployment.kubernetes.io/") {
            rolled_back
                .metadata
                .annotations
                .insert(key.clone(), value.clone());
        }
    }
    Ok(rolled_back)
}

/// Reads the Deployment and its ReplicaSets, rolls back and writes the Deployment (retrying on
/// conflicts). What the API and CLI call for `rollout undo`.
pub async fn rollback_in_store(
    store: &RedbStore,
    namespace: &str,
    name: &str,
    to_revision: Option<i64>,
) -> Result<Deployment, RollbackError> {
    let store_error = |source| RollbackError::Store {
        deployment: format!("{namespace}/{name}"),
        source,
    };
    let store_error_boxed = |source| store_error(Box::new(source));
    let replica_sets = store
        .list_as::<ReplicaSet>(Some(namespace), None)
        .await
        .map_err(store_error_boxed)?
        .items;
    let key = berth_store::key_of::<Deployment>(Some(namespace), name);
    let written = store
        .guaranteed_update(&key, |object| {
            let Object::Deployment(d) = object else {
                return Ok(None);
            };
            let rolled_back = rollback(&d, &replica_sets, to_revision)?;
            Ok((rolled_back != d).then(|| rolled_back.into()))
        })
        .await
        .map_err(|err| match err {
            RollbackError::Store { source, .. } => store_error(source),
            other => other,
        })?;
    match written {
        Object::Deployment(d) => Ok(d),
        other => Err(store_error_boxed(berth_store::Error::NotFound {
            key: other.key(),
        })),
    }
}

/// For [`RedbStore::guaranteed_update`]; `rollback_in_store` names the Deployment.
impl From<berth_store::Error> for RollbackError {
    fn from(source: berth_store::Error) -> Self {
        Self::Store {
            deployment: String::new(),
            source: Box::new(source),
        }
    }
}
