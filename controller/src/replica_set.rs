//! The ReplicaSet reconciler: keep `spec.replicas` pods of the template running.
//!
//! Each run, from whatever the store holds: claim the pods (adopt orphans that match the
//! selector, release owned pods that no longer match), create missing pods from the template
//! (`<replicaset>-<5 random characters>`, as `generateName` does), delete excess pods in
//! Kubernetes' `ActivePods` order (unscheduled, pending, not ready, recently ready, restarted,
//! newest first), and write the observed counts to the status. Pods being deleted or terminated
//! do not count.

use std::{sync::Arc, time::Duration};

use berth_api::{
    Object, ObjectMeta, Resource,
    apps_v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus},
    core_v1::Pod,
    meta::{ConditionStatus, LabelSelector},
};
use berth_store::{DeleteOptions, Op, Preconditions, RedbStore};
use tracing::instrument;

use crate::{
    Action, Context,
    pods::{self, controller_of, controller_reference},
};

/// Why a ReplicaSet could not be reconciled.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaSetError {
    #[error("ReplicaSet {namespace}/{name}: cannot {operation}")]
    Store {
        namespace: String,
        name: String,
        operation: &'static str,
        #[source]
        source: berth_store::Error,
    },
    #[error(
        "ReplicaSet {namespace}/{name}: spec.selector and spec.template are required to manage pods"
    )]
    Incomplete { namespace: String, name: String },
}

pub type Result<T, E = ReplicaSetError> = std::result::Result<T, E>;

/// Pods are created in batches of 1, 2, 4, ... so that a failing template fails fast.
const SLOW_START_INITIAL_BATCH: usize = 1;

fn namespace_of(meta: &ObjectMeta) -> String {
    meta.namespace
        .clone()
        .unwrap_or_else(|| berth_api::DEFAULT_NAMESPACE.to_owned())
}

/// Reconciles one ReplicaSet; see the module documentation.
#[instrument(skip_all, fields(replica_set = %rs.metadata.name()))]
pub async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = namespace_of(&rs.metadata);
    let name = rs.metadata.name().to_owned();
    let store_error = |operation: &'static str| {
        let (namespace, name) = (namespace.clone(), name.clone());
        move |source| ReplicaSetError::Store {
            namespace,
            name,
            operation,
            source,
        }
    };
    let (Some(selector), Some(template)) = (&rs.spec.selector, &rs.spec.template) else {
        return Err(ReplicaSetError::Incomplete { namespace, name });
    };
    let pods = ctx
        .store
        .list_as::<Pod>(Some(&namespace), None)
        .await
        .map_err(store_error("list pods"))?
        .items;
    let mut owned = claim_pods(&ctx.store, &rs, selector, pods)
        .await
        .map_err(store_error("adopt or release pods"))?;
    owned.retain(pods::is_active);

    let mut failure = None;
    if rs.metadata.deletion_timestamp.is_none() {
        let desired = usize::try_from(rs.spec.replicas.unwrap_or(1).max(0)).unwrap_or(0);
        if owned.len() < desired {
            let missing = desired - owned.len();
            let (created, error) =
                create_pods(&ctx.store, &rs, template, owned.len(), missing).await;
            owned.extend(created);
            failure = error.map(store_error("create pods"));
        } else if owned.len() > desired {
            let excess = owned.len() - desired;
            owned.sort_by(pods::deletion_order);
            let doomed: Vec<Pod> = owned.drain(..excess).collect();
            for pod in doomed {
                if let Err(err) = delete_pod(&ctx.store, &pod).await {
                    owned.push(pod);
                    failure = Some(store_error("delete pods")(err));
                    break;
                }
                tracing::debug!(pod = %pod.metadata.name(), "deleted excess pod");
            }
        }
    }

    let min_ready_seconds = rs.spec.min_ready_seconds.unwrap_or(0);
    let status = calculate_status(&rs, &owned, min_ready_seconds, &ctx, failure.as_ref());
    update_status(&ctx.store, &rs, status)
        .await
        .map_err(store_error("update the status"))?;
    if let Some(err) = failure {
        return Err(err);
    }
    Ok(next_availability(&owned, min_ready_seconds, &ctx))
}

/// Failed reconciles are retried with exponential backoff.
pub fn error_policy(_rs: Arc<ReplicaSet>, _err: &ReplicaSetError, _ctx: Arc<Context>) -> Action {
    Action::backoff()
}

/// Requeues when the next ready pod becomes available (minReadySeconds), else waits.
pub(crate) fn next_availability(pods: &[Pod], min_ready_seconds: i32, ctx: &Context) -> Action {
    pods.iter()
        .filter(|p| !pods::is_available(p, min_ready_seconds, &ctx.clock))
        .filter_map(|p| pods::available_at(p, min_ready_seconds))
        .min()
        .map_or_else(Action::await_change, |at| {
            Action::requeue(ctx.clock.until(at).max(Duration::from_millis(1)))
        })
}

/// The pods the ReplicaSet controls after adopting orphans that match its selector and releasing
/// its pods that no longer do (Kubernetes' `ClaimPods`).
async fn claim_pods(
    store: &RedbStore,
    rs: &ReplicaSet,
    selector: &LabelSelector,
    pods: Vec<Pod>,
) -> berth_store::Result<Vec<Pod>> {
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let mut owned = Vec::new();
    for pod in pods {
        let matches = selector.matches(&pod.metadata.labels);
        match controller_of(&pod.metadata) {
            Some(owner) if owner.uid == uid => {
                if matches {
                    owned.push(pod);
                } else {
                    release(store, &pod, &uid).await?;
                }
            }
            Some(_) => {}
            None if matches
                && pods::is_active(&pod)
                && rs.metadata.deletion_timestamp.is_none() =>
            {
                if let Some(adopted) = adopt(store, rs, &pod).await? {
                    owned.push(adopted);
                }
            }
            None => {}
        }
    }
    Ok(owned)
}

async fn adopt(store: &RedbStore, rs: &ReplicaSet, pod: &Pod) -> berth_store::Result<Option<Pod>> {
    let reference = controller_reference(ReplicaSet::API_VERSION, ReplicaSet::KIND, &rs.metadata);
    let key = Object::from(pod.clone()).key();
    Ok(match pods::adopt(store, &key, &reference).await? {
        Some(Object::Pod(pod)) => {
            tracing::debug!(pod = %pod.metadata.name(), "adopted pod");
            Some(pod)
        }
        _ => None,
    })
}

async fn release(store: &RedbStore, pod: &Pod, owner_uid: &str) -> berth_store::Result<()> {
    let key = Object::from(pod.clone()).key();
    let result: berth_store::Result<Object> = store
        .guaranteed_update(&key, |object| {
            let Object::Pod(mut pod) = object else {
                return Ok(None);
            };
            let before = pod.metadata.owner_references.len();
            pod.metadata.owner_references.retain(|r| r.uid != owner_uid);
            Ok((pod.metadata.owner_references.len() != before).then(|| pod.into()))
        })
        .await;
    match result {
        Ok(_) => {
            tracing::debug!(pod = %pod.metadata.name(), "released pod");
            Ok(())
        }
        Err(err) if err.is_not_found() => Ok(()),
        Err(err) => Err(err),
    }
}

/// A new pod of `rs` from its template (named by the store from `generateName`).
pub fn pod_from_template(rs: &ReplicaSet, template: &berth_api::core_v1::PodTemplateSpec) -> Pod {
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.metadata.name())),
            namespace: Some(namespace_of(&rs.metadata)),
            labels: template.metadata.labels.clone(),
            annotations: template.metadata.annotations.clone(),
            owner_references: vec![controller_reference(
                ReplicaSet::API_VERSION,
                ReplicaSet::KIND,
                &rs.metadata,
            )],
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        ..Pod::default()
    }
}

/// Creates up to `count` pods in slow-start batches, each batch one store transaction (one
/// commit for 32 pods rather than 32), and stops at the first failed batch. Before each batch it
/// reads the ReplicaSet again and creates no more than `have` plus the pods created need to
/// reach its current replicas: a Deployment scaling it down meanwhile is not overrun.
async fn create_pods(
    store: &RedbStore,
    rs: &ReplicaSet,
    template: &berth_api::core_v1::PodTemplateSpec,
    have: usize,
    count: usize,
) -> (Vec<Pod>, Option<berth_store::Error>) {
    let namespace = namespace_of(&rs.metadata);
    let mut created = Vec::new();
    let mut batch = SLOW_START_INITIAL_BATCH;
    while created.len() < count {
        let desired = match store
            .get_as::<ReplicaSet>(Some(&namespace), rs.metadata.name())
            .await
        {
            Ok(current) if current.metadata.uid == rs.metadata.uid => {
                usize::try_from(current.spec.replicas.unwrap_or(1).max(0)).unwrap_or(0)
            }
            Ok(_) => return (created, None),
            Err(err) if err.is_not_found() => return (created, None),
            Err(err) => return (created, Some(err)),
        };
        let allowed = desired.saturating_sub(have + created.len());
        let this_batch = batch.min(count - created.len()).min(allowed);
        if this_batch == 0 {
            return (created, None);
        }
        let ops = (0..this_batch)
            .map(|_| Op::Create(pod_from_template(rs, template).into()))
            .collect();
        match store.batch(ops).await {
            Ok(outcomes) => {
                for outcome in outcomes {
                    if let Object::Pod(pod) = outcome.into_object() {
                        tracing::debug!(pod = %pod.metadata.name(), "created pod");
                        created.push(pod);
                    }
                }
            }
            Err(err) => return (created, Some(err)),
        }
        batch *= 2;
    }
    (created, None)
}

/// Deletes an excess pod gracefully (with its own `terminationGracePeriodSeconds`, as Kubernetes'
/// ReplicaSet controller does): a running pod stays, with a `deletionTimestamp`, until the agent
/// has stopped it.
async fn delete_pod(store: &RedbStore, pod: &Pod) -> berth_store::Result<()> {
    let key = Object::from(pod.clone()).key();
    let options = DeleteOptions {
        preconditions: Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        },
        grace_period_seconds: None,
    };
    match store.delete_with(&key, options).await {
        Ok(_) => Ok(()),
        Err(err) if err.is_not_found() => Ok(()),
        Err(err) => Err(err),
    }
}

/// `error: cause: cause`, for a condition's message.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn calculate_status(
    rs: &ReplicaSet,
    pods: &[Pod],
    min_ready_seconds: i32,
    ctx: &Context,
    failure: Option<&ReplicaSetError>,
) -> ReplicaSetStatus {
    let template_labels = rs
        .spec
        .template
        .as_ref()
        .map(|t| t.metadata.labels.clone())
        .unwrap_or_default();
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(pods.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    let mut conditions: Vec<ReplicaSetCondition> = rs
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let existing = conditions.iter().position(|c| c.type_ == "ReplicaFailure");
    match (failure, existing) {
        (Some(err), None) => conditions.push(ReplicaSetCondition {
            type_: "ReplicaFailure".to_owned(),
            status: ConditionStatus::True,
            last_transition_time: Some(ctx.clock.now()),
            reason: Some("FailedCreate".to_owned()),
            message: Some(error_chain(err)),
        }),
        (None, Some(index)) => {
            conditions.remove(index);
        }
        _ => {}
    }
    ReplicaSetStatus {
        replicas: count(&|_| true),
        fully_labeled_replicas: count(&|p| {
            template_labels
                .iter()
                .all(|(k, v)| p.metadata.labels.get(k) == Some(v))
        }),
        ready_replicas: count(&pods::is_ready),
        available_replicas: count(&|p| pods::is_available(p, min_ready_seconds, &ctx.clock)),
        observed_generation: rs.metadata.generation,
        conditions,
    }
}

async fn update_status(
    store: &RedbStore,
    rs: &ReplicaSet,
    status: ReplicaSetStatus,
) -> berth_store::Result<()> {
    if rs.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let key = Object::from(rs.clone()).key();
    let uid = rs.metadata.uid.clone();
    let result: berth_store::Result<Object> = store
        .guaranteed_update_status(&key, |object| {
            let Object::ReplicaSet(mut current) = object else {
                return Ok(None);
            };
            if current.metadata.uid != uid || current.status.as_ref() == Some(&status) {
                return Ok(None);
            }
            current.status = Some(status.clone());
            Ok(Some(current.into()))
        })
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(err) if err.is_not_found() => Ok(()),
        Err(err) => Err(err),
    }
}
