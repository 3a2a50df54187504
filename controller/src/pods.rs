//! What the controllers read from pods: activity, readiness, availability, and the order in
//! which a ReplicaSet deletes excess pods (Kubernetes' `ActivePods` ranking).

use std::cmp::Ordering;

use berth_api::{
    Object, ObjectKey, Time,
    core_v1::{Pod, PodConditionType, PodPhase},
    meta::{ConditionStatus, ObjectMeta, OwnerReference},
};
use berth_store::RedbStore;

use crate::Clock;

/// A pod that counts towards its owner's replicas: not terminated and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && !matches!(phase(pod), Some(PodPhase::Succeeded | PodPhase::Failed))
}

fn phase(pod: &Pod) -> Option<PodPhase> {
    pod.status.as_ref().and_then(|s| s.phase)
}

/// When the pod last became Ready, if it is Ready now.
pub fn ready_since(pod: &Pod) -> Option<Option<Time>> {
    let condition = pod
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == PodConditionType::Ready)?;
    (condition.status == ConditionStatus::True).then_some(condition.last_transition_time)
}

pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Kubernetes' `IsPodAvailable`: Ready, and for longer than `min_ready_seconds`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, clock: &Clock) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(since)) => clock.seconds_since(since) > f64::from(min_ready_seconds),
    }
}

/// When a Ready pod that is not yet available becomes available.
pub fn available_at(pod: &Pod, min_ready_seconds: i32) -> Option<jiff::Timestamp> {
    if min_ready_seconds <= 0 {
        return None;
    }
    let since = ready_since(pod)??;
    // Availability needs strictly more than minReadySeconds: look again just after.
    since
        .0
        .checked_add(jiff::SignedDuration::from_secs(i64::from(
            min_ready_seconds,
        )))
        .ok()
        .and_then(|at| at.checked_add(jiff::SignedDuration::from_millis(1)).ok())
}

fn restart_count(pod: &Pod) -> i32 {
    pod.status.as_ref().map_or(0, |s| {
        s.container_statuses
            .iter()
            .map(|c| c.restart_count)
            .max()
            .unwrap_or(0)
    })
}

fn phase_rank(pod: &Pod) -> u8 {
    match phase(pod) {
        None | Some(PodPhase::Pending) => 0,
        Some(PodPhase::Unknown) => 1,
        Some(PodPhase::Running) => 2,
        Some(PodPhase::Succeeded | PodPhase::Failed) => 3,
    }
}

/// Kubernetes' `ActivePods` order: `Less` means `a` is deleted before `b`. Unscheduled before
/// scheduled, Pending before Unknown before Running, not Ready before Ready, Ready for less time
/// before Ready for longer, more restarts before fewer, newer before older.
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    let unscheduled = |p: &Pod| p.spec.node_name.as_deref().unwrap_or_default().is_empty();
    unscheduled(b)
        .cmp(&unscheduled(a))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        .then_with(
            || match (ready_since(a).flatten(), ready_since(b).flatten()) {
                // More recently ready first.
                (Some(a), Some(b)) => b.cmp(&a),
                _ => Ordering::Equal,
            },
        )
        .then_with(|| restart_count(b).cmp(&restart_count(a)))
        .then_with(|| {
            // Newer first.
            b.metadata
                .creation_timestamp
                .cmp(&a.metadata.creation_timestamp)
        })
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// The owner reference with `controller: true`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .find(|r| r.controller == Some(true))
}

/// An owner reference that makes `owner` the controller of an object.
pub fn controller_reference(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        name: owner.name().to_owned(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Make `reference` the controller of the object at `key` unless another owner already controls
/// it (Kubernetes' ControllerRef adoption). The object when it is now ours; `None` when it is
/// gone or controlled by someone else.
pub async fn adopt(
    store: &RedbStore,
    key: &ObjectKey,
    reference: &OwnerReference,
) -> berth_store::Result<Option<Object>> {
    let result: berth_store::Result<Object> = store
        .guaranteed_update(key, |mut object| {
            if controller_of(object.metadata()).is_some() {
                return Ok(None);
            }
            object
                .metadata_mut()
                .owner_references
                .push(reference.clone());
            Ok(Some(object))
        })
        .await;
    match result {
        Ok(object) if controller_of(object.metadata()).is_some_and(|o| o.uid == reference.uid) => {
            Ok(Some(object))
        }
        Ok(_) => Ok(None),
        Err(err) if err.is_not_found() => Ok(None),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use berth_api::core_v1::{ContainerStatus, PodCondition, PodStatus};

    use super::*;

    fn at(second: i64) -> Time {
        Time(jiff::Timestamp::from_second(1_700_000_000 + second).unwrap())
    }

    fn pod(name: &str, phase: Option<PodPhase>, ready_at: Option<i64>) -> Pod {
        let mut pod = berth_api::testing::pod(name).build();
        pod.spec.node_name = Some("node".into());
        pod.metadata.creation_timestamp = Some(at(0));
        pod.status = Some(PodStatus {
            phase,
            conditions: ready_at
                .map(|second| PodCondition {
                    type_: PodConditionType::Ready,
                    status: ConditionStatus::True,
                    last_probe_time: None,
                    last_transition_time: Some(at(second)),
                    reason: None,
                    message: None,
                })
                .into_iter()
                .collect(),
            ..PodStatus::default()
        });
        pod
    }

    fn ranked(mut pods: Vec<Pod>) -> Vec<String> {
        pods.sort_by(deletion_order);
        pods.into_iter().map(|p| p.metadata.name.unwrap()).collect()
    }

    #[test]
    fn deletes_unscheduled_pending_and_unready_first() {
        let mut unscheduled = pod("unscheduled", Some(PodPhase::Running), Some(1));
        unscheduled.spec.node_name = None;
        let pods = vec![
            pod("ready-long", Some(PodPhase::Running), Some(1)),
            pod("running-unready", Some(PodPhase::Running), None),
            pod("ready-recent", Some(PodPhase::Running), Some(50)),
            pod("pending", Some(PodPhase::Pending), None),
            pod("unknown", Some(PodPhase::Unknown), None),
            unscheduled,
        ];
        assert_eq!(
            ranked(pods),
            [
                "unscheduled",
                "pending",
                "unknown",
                "running-unready",
                "ready-recent",
                "ready-long"
            ]
        );
    }

    #[test]
    fn then_more_restarts_then_newer_first() {
        let mut restarted = pod("restarted", Some(PodPhase::Running), Some(1));
        restarted.status.as_mut().unwrap().container_statuses = vec![ContainerStatus {
            name: "main".into(),
            restart_count: 3,
            ..ContainerStatus::default()
        }];
        let mut newer = pod("newer", Some(PodPhase::Running), Some(1));
        newer.metadata.creation_timestamp = Some(at(10));
        let older = pod("older", Some(PodPhase::Running), Some(1));
        assert_eq!(
            ranked(vec![older, newer, restarted]),
            ["restarted", "newer", "older"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn availability_needs_more_than_min_ready_seconds() {
        let clock = Clock::starting_at(at(10).0);
        let ready = pod("p", Some(PodPhase::Running), Some(5));
        assert!(is_available(&ready, 0, &clock));
        assert!(is_available(&ready, 4, &clock));
        assert!(!is_available(&ready, 5, &clock));
        assert!(!is_available(
            &pod("q", Some(PodPhase::Running), None),
            0,
            &clock
        ));
        assert_eq!(
            available_at(&ready, 5).unwrap(),
            at(10).0 + jiff::SignedDuration::from_millis(1)
        );
        let mut deleted = ready.clone();
        deleted.metadata.deletion_timestamp = Some(at(9));
        assert!(is_active(&ready) && !is_active(&deleted));
    }
}
