//! The garbage collector: an object whose owners are all gone is deleted (Kubernetes'
//! background cascading deletion), so deleting a Deployment deletes its ReplicaSets, and
//! those their pods.
//!
//! It reconciles dependents, not owners: an owner's DELETED event enqueues its dependents (from
//! the store's owner index, [`RedbStore::dependents`](berth_store::RedbStore::dependents)), and
//! every object with owner references is looked at when it is added or changed, so orphans
//! left while the daemon was down, or created by a reconcile that raced with a delete, go too.
//! An owner counts as present only if an object of its kind and name exists with its uid. An
//! object with some owners gone and some present loses the references to the gone ones. Owner
//! kinds berth does not know are taken as present: nothing is deleted on a guess.

use std::sync::Arc;

use berth_api::{Object, ObjectKey, meta::OwnerReference};
use berth_store::{EventType, Preconditions, RedbStore, WatchEvent};
use tracing::instrument;

use crate::{Action, Context, Controller};

/// Why an object's owners could not be checked or the object collected.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("garbage collector: cannot {operation} {key}")]
    Store {
        key: ObjectKey,
        operation: &'static str,
        #[source]
        source: Box<berth_store::Error>,
    },
}

pub type Result<T, E = GcError> = std::result::Result<T, E>;

/// The garbage collector as a [`Controller`] over every kind.
pub fn controller(store: RedbStore) -> Controller<Object> {
    let index = store.clone();
    Controller::new(store).watches(move |event: WatchEvent| {
        let index = index.clone();
        async move { keys_to_check(&index, event).await }
    })
}

/// The objects to look at after `event`: the dependents of a deleted object; the object itself
/// when it has owners.
async fn keys_to_check(store: &RedbStore, event: WatchEvent) -> Vec<ObjectKey> {
    match event.event_type {
        EventType::Deleted => {
            let Some(uid) = event.object.metadata().uid.as_deref() else {
                return Vec::new();
            };
            match store.dependents(uid).await {
                Ok(dependents) => dependents.iter().map(Object::key).collect(),
                Err(err) => {
                    tracing::warn!(owner = %event.object.key(), ?err, "cannot list dependents");
                    Vec::new()
                }
            }
        }
        EventType::Added | EventType::Modified => {
            if event.object.metadata().owner_references.is_empty() {
                Vec::new()
            } else {
                vec![event.object.key()]
            }
        }
    }
}

/// Deletes `object` if all its owners are gone, or drops its references to gone owners.
#[instrument(skip_all, fields(object = %object.key()))]
pub async fn reconcile(object: Arc<Object>, ctx: Arc<Context>) -> Result<Action> {
    let references = &object.metadata().owner_references;
    if references.is_empty() || object.metadata().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let key = object.key();
    let mut gone = Vec::new();
    for reference in references {
        if !owner_exists(&ctx.store, &object, reference).await? {
            gone.push(reference.uid.clone());
        }
    }
    if gone.is_empty() {
        return Ok(Action::await_change());
    }
    let uid = object.metadata().uid.clone();
    if gone.len() == references.len() {
        let preconditions = Preconditions {
            uid: uid.clone(),
            resource_version: None,
        };
        match ctx.store.delete(&key, preconditions).await {
            Ok(_) => tracing::info!(owners = ?gone, "deleted object whose owners are gone"),
            Err(err) if err.is_not_found() => {}
            Err(err) if err.status_code() == 409 => {}
            Err(err) => {
                return Err(GcError::Store {
                    key,
                    operation: "delete",
                    source: Box::new(err),
                });
            }
        }
        return Ok(Action::await_change());
    }
    let result: berth_store::Result<Object> = ctx
        .store
        .guaranteed_update(&key, |mut current: Object| {
            if current.metadata().uid != uid {
                return Ok(None);
            }
            current
                .metadata_mut()
                .owner_references
                .retain(|r| !gone.contains(&r.uid));
            Ok(Some(current))
        })
        .await;
    match result {
        Ok(_) => Ok(Action::await_change()),
        Err(err) if err.is_not_found() => Ok(Action::await_change()),
        Err(err) => Err(GcError::Store {
            key,
            operation: "remove owner references from",
            source: Box::new(err),
        }),
    }
}

pub fn error_policy(_object: Arc<Object>, _err: &GcError, _ctx: Arc<Context>) -> Action {
    Action::backoff()
}

async fn owner_exists(
    store: &RedbStore,
    dependent: &Object,
    reference: &OwnerReference,
) -> Result<bool> {
    let Some(info) = berth_api::object::find_kind(&reference.kind) else {
        return Ok(true);
    };
    let key = ObjectKey {
        kind: info.kind,
        namespace: if info.namespaced {
            Some(
                dependent
                    .metadata()
                    .namespace
                    .clone()
                    .unwrap_or_else(|| berth_api::DEFAULT_NAMESPACE.to_owned()),
            )
        } else {
            None
        },
        name: reference.name.clone(),
    };
    match store.get(&key).await {
        Ok(owner) => Ok(owner.metadata().uid.as_deref() == Some(reference.uid.as_str())),
        Err(err) if err.is_not_found() => Ok(false),
        Err(err) => Err(GcError::Store {
            key,
            operation: "read owner",
            source: Box::new(err),
        }),
    }
}
