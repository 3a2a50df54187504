//! Deployment arithmetic as Kubernetes' `deployment/util` has it: defaults, fenceposts,
//! annotations, revisions, how far a new ReplicaSet may grow, and proportional scaling.

use std::collections::BTreeMap;

use berth_api::{
    ObjectMeta,
    apps_v1::{Deployment, DeploymentStrategyType, ReplicaSet, RollingUpdateDeployment},
    intstr::IntOrStringError,
};

/// The revision of a ReplicaSet (and of the Deployment: its newest).
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// The Deployment's replicas when the ReplicaSet was last scaled (proportional scaling).
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's replicas plus maxSurge when the ReplicaSet was last scaled.
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";

use berth_api::defaults::{DEFAULT_PROGRESS_DEADLINE_SECONDS, DEFAULT_REVISION_HISTORY_LIMIT};

/// `spec.replicas`, default 1.
pub fn replicas(d: &Deployment) -> i32 {
    d.spec.replicas.unwrap_or(1).max(0)
}

pub fn is_rolling(d: &Deployment) -> bool {
    d.spec
        .strategy
        .as_ref()
        .and_then(|s| s.type_)
        .unwrap_or(DeploymentStrategyType::RollingUpdate)
        == DeploymentStrategyType::RollingUpdate
}

pub fn revision_history_limit(d: &Deployment) -> usize {
    usize::try_from(
        d.spec
            .revision_history_limit
            .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT),
    )
    .unwrap_or(0)
}

/// `progressDeadlineSeconds`, default 600; `None` when it is "infinite" (`i32::MAX`).
pub fn progress_deadline(d: &Deployment) -> Option<i64> {
    let seconds = d
        .spec
        .progress_deadline_seconds
        .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS);
    (seconds != i32::MAX).then_some(i64::from(seconds))
}

pub fn is_paused(d: &Deployment) -> bool {
    d.spec.paused.unwrap_or(false)
}

pub fn min_ready_seconds(d: &Deployment) -> i32 {
    d.spec.min_ready_seconds.unwrap_or(0)
}

/// `(maxSurge, maxUnavailable)` in pods: Kubernetes' `MaxSurge` and `MaxUnavailable` (0 and 0
/// for Recreate; maxUnavailable never above the replicas).
pub fn fenceposts(d: &Deployment) -> Result<(i32, i32), IntOrStringError> {
    if !is_rolling(d) {
        return Ok((0, 0));
    }
    let default = RollingUpdateDeployment::default();
    let rolling = d
        .spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .unwrap_or(&default);
    let replicas = replicas(d);
    let (surge, unavailable) = rolling.resolve_fenceposts(replicas)?;
    let unavailable = if replicas == 0 {
        0
    } else {
        unavailable.min(replicas)
    };
    Ok((surge.max(0), unavailable.max(0)))
}

/// A revision annotation's value; 0 when missing or not a number.
pub fn revision(meta: &ObjectMeta) -> i64 {
    meta.annotations
        .get(REVISION_ANNOTATION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn annotation_i32(meta: &ObjectMeta, key: &str) -> Option<i32> {
    meta.annotations.get(key).and_then(|v| v.parse().ok())
}

pub fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation_i32(&rs.metadata, DESIRED_REPLICAS_ANNOTATION)
}

pub fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation_i32(&rs.metadata, MAX_REPLICAS_ANNOTATION)
}

/// Annotations of the Deployment that its ReplicaSets do not copy.
fn is_copied(key: &str) -> bool {
    !key.starts_with("deployment.kubernetes.io/")
        && key != "kubectl.kubernetes.io/last-applied-configuration"
}

/// Sets desired-replicas and max-replicas; whether anything changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = &mut rs.metadata.annotations;
    let mut changed = false;
    for (key, value) in [
        (DESIRED_REPLICAS_ANNOTATION, desired),
        (MAX_REPLICAS_ANNOTATION, max),
    ] {
        let value = value.to_string();
        if annotations.get(key) != Some(&value) {
            annotations.insert(key.to_owned(), value);
            changed = true;
        }
    }
    changed
}

/// Kubernetes' `SetNewReplicaSetAnnotations`: copies the Deployment's annotations, raises the
/// revision to `new_revision`, and for a ReplicaSet being created sets the replicas
/// annotations. Whether anything changed.
pub fn set_new_replica_set_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
    max_surge: i32,
) -> bool {
    let mut changed = copy_annotations(&d.metadata.annotations, &mut rs.metadata.annotations);
    if revision(&rs.metadata) < new_revision {
        rs.metadata
            .annotations
            .insert(REVISION_ANNOTATION.to_owned(), new_revision.to_string());
        changed = true;
    }
    if !exists {
        changed |= set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge);
    }
    changed
}

fn copy_annotations(from: &BTreeMap<String, String>, to: &mut BTreeMap<String, String>) -> bool {
    let mut changed = false;
    for (key, value) in from.iter().filter(|(k, _)| is_copied(k)) {
        if to.get(key) != Some(value) {
            to.insert(key.clone(), value.clone());
            changed = true;
        }
    }
    changed
}

/// How many replicas a ReplicaSet should have after proportional scaling of a Deployment whose
/// replicas changed mid-rollout, relative to its current `rs_replicas` (Kubernetes'
/// `getReplicaSetFraction`): its share of the new maximum, per the max it was scaled for.
pub fn replica_set_fraction(
    rs_replicas: i32,
    annotated_max: Option<i32>,
    deployment_replicas: i32,
    max_surge: i32,
    status_replicas: i32,
) -> i32 {
    if deployment_replicas == 0 {
        return -rs_replicas;
    }
    let allowed = deployment_replicas + max_surge;
    let annotated = annotated_max.unwrap_or(status_replicas);
    if annotated == 0 {
        return 0;
    }
    let size = f64::from(rs_replicas) * f64::from(allowed) / f64::from(annotated);
    // Go's math.Round: halves away from zero, as f64::round.
    size.round() as i32 - rs_replicas
}

/// Kubernetes' `getProportion`: the fraction, bounded by what is left to add (or remove).
pub fn proportion(fraction: i32, rs_replicas: i32, to_add: i32, added: i32) -> i32 {
    if rs_replicas == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// Kubernetes' `NewRSNewReplicas` for RollingUpdate: the new ReplicaSet grows to the desired
/// replicas but the pods of all ReplicaSets stay within replicas + maxSurge. `current_pods`
/// counts, per ReplicaSet, the larger of its replicas and its live pods, so that pods a
/// scaled-down ReplicaSet has not deleted yet still count.
pub fn new_rs_new_replicas(
    deployment_replicas: i32,
    max_surge: i32,
    current_pods: i32,
    new_rs_replicas: i32,
) -> i32 {
    let max_total = deployment_replicas + max_surge;
    if current_pods >= max_total {
        return new_rs_replicas;
    }
    let scale_up = (max_total - current_pods).min(deployment_replicas - new_rs_replicas);
    new_rs_replicas + scale_up.max(0)
}

#[cfg(test)]
mod tests {
    use berth_api::apps_v1::DeploymentStrategy;

    use super::*;

    fn deployment(replicas: i32, surge: &str, unavailable: &str) -> Deployment {
        let mut d = berth_api::testing::deployment("web")
            .with_replicas(replicas)
            .build();
        d.spec.strategy = Some(DeploymentStrategy {
            type_: Some(DeploymentStrategyType::RollingUpdate),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(surge.into()),
                max_unavailable: Some(unavailable.into()),
            }),
        });
        d
    }

    #[test]
    fn fenceposts_cap_unavailable_and_recreate_has_none() {
        assert_eq!(fenceposts(&deployment(10, "25%", "25%")).unwrap(), (3, 2));
        assert_eq!(fenceposts(&deployment(2, "0%", "300%")).unwrap(), (0, 2));
        assert_eq!(fenceposts(&deployment(0, "50%", "50%")).unwrap(), (0, 0));
        let mut recreate = deployment(3, "1", "1");
        recreate.spec.strategy.as_mut().unwrap().type_ = Some(DeploymentStrategyType::Recreate);
        assert_eq!(fenceposts(&recreate).unwrap(), (0, 0));
        assert!(fenceposts(&deployment(3, "x", "1")).is_err());
    }

    #[test]
    fn new_replica_set_grows_within_the_surge() {
        // 10 replicas, surge 3: 10 old pods, new may have 3.
        assert_eq!(new_rs_new_replicas(10, 3, 10, 0), 3);
        // At the maximum already: no growth.
        assert_eq!(new_rs_new_replicas(10, 3, 13, 3), 3);
        // Never beyond the desired replicas.
        assert_eq!(new_rs_new_replicas(10, 3, 9, 9), 10);
        assert_eq!(new_rs_new_replicas(1, 0, 1, 0), 0);
    }

    #[test]
    fn proportional_scaling_follows_kubernetes() {
        // A Deployment of 10 (surge 3 → max 13) scaled to 15 (surge 4 → max 19) mid-rollout with
        // RSs of 8 and 5: the 8 gets round(8*19/13)-8 = 4, the 5 gets round(5*19/13)-5 = 2.
        assert_eq!(replica_set_fraction(8, Some(13), 15, 4, 13), 4);
        assert_eq!(replica_set_fraction(5, Some(13), 15, 4, 13), 2);
        assert_eq!(proportion(4, 8, 6, 0), 4);
        assert_eq!(proportion(2, 5, 6, 4), 2);
        assert_eq!(proportion(5, 5, 6, 4), 2, "bounded by what is left");
        // Scaling down to 0 removes everything.
        assert_eq!(replica_set_fraction(5, Some(13), 0, 0, 13), -5);
        assert_eq!(proportion(-5, 5, -13, -8), -5);
        assert_eq!(proportion(-5, 5, -13, -10), -3);
        assert_eq!(proportion(3, 0, 6, 0), 0);
    }

    #[test]
    fn annotations_are_copied_and_the_revision_only_rises() {
        let mut d = deployment(4, "1", "0");
        d.metadata.annotations = BTreeMap::from([
            ("team".to_owned(), "a".to_owned()),
            (REVISION_ANNOTATION.to_owned(), "9".to_owned()),
        ]);
        let mut rs = berth_api::testing::replica_set("web-x", 0);
        assert!(set_new_replica_set_annotations(&d, &mut rs, 3, false, 1));
        assert_eq!(rs.metadata.annotations["team"], "a");
        assert_eq!(revision(&rs.metadata), 3);
        assert_eq!(desired_replicas_annotation(&rs), Some(4));
        assert_eq!(max_replicas_annotation(&rs), Some(5));
        assert!(!set_new_replica_set_annotations(&d, &mut rs, 2, true, 1));
        assert_eq!(revision(&rs.metadata), 3);
        assert!(set_new_replica_set_annotations(&d, &mut rs, 4, true, 1));
        assert_eq!(revision(&rs.metadata), 4);
    }
}
