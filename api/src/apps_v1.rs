//! `apps/v1`: Deployment and ReplicaSet.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    core_v1::PodTemplateSpec,
    intstr::{IntOrString, IntOrStringError},
    meta::{ApiVersion, ConditionStatus, Kind, LabelSelector, ObjectMeta},
    time::Time,
};

fn is_zero(value: &i32) -> bool {
    *value == 0
}

/// Declares a set of identical pods and rolls out changes to them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Deployment {
    pub api_version: ApiVersion<Deployment>,
    pub kind: Kind<Deployment>,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: DeploymentSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DeploymentStatus>,
}
crate::impl_resource!(
    Deployment,
    "apps/v1",
    "Deployment",
    "deployments",
    namespaced
);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentSpec {
    /// Desired number of pods; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Required; must match the template's labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    pub template: PodTemplateSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<DeploymentStrategy>,
    /// Seconds a new pod must be ready before it counts as available; default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
    /// Old ReplicaSets kept for rollback; default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Seconds without progress before the rollout is reported failed; default 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentStrategy {
    /// `RollingUpdate` (default) or `Recreate`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<DeploymentStrategyType>,
    /// Only with `type: RollingUpdate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdateDeployment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeploymentStrategyType {
    /// Kill every old pod before creating new ones.
    Recreate,
    /// Replace pods gradually, bounded by maxSurge and maxUnavailable.
    RollingUpdate,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollingUpdateDeployment {
    /// Pods that may be unavailable during the update: a number or a percentage of the
    /// desired replicas, rounded down; default 25%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Pods that may be created above the desired replicas: a number or a percentage, rounded
    /// up; default 25%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
}

/// The default of both `maxSurge` and `maxUnavailable`.
pub const DEFAULT_ROLLING_UPDATE_PERCENT: &str = "25%";

impl RollingUpdateDeployment {
    /// Kubernetes' `ResolveFenceposts`: `(max surge, max unavailable)` in pods for `replicas`.
    /// maxSurge rounds up and maxUnavailable rounds down; when both come to 0, maxUnavailable
    /// becomes 1 so that the rollout can progress.
    pub fn resolve_fenceposts(&self, replicas: i32) -> Result<(i32, i32), IntOrStringError> {
        let default = IntOrString::from(DEFAULT_ROLLING_UPDATE_PERCENT);
        let surge = self
            .max_surge
            .as_ref()
            .unwrap_or(&default)
            .scaled_value(replicas, true)?;
        let unavailable = self
            .max_unavailable
            .as_ref()
            .unwrap_or(&default)
            .scaled_value(replicas, false)?;
        if surge == 0 && unavailable == 0 {
            return Ok((0, 1));
        }
        Ok((surge, unavailable))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pods targeted by the deployment (old and new).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub replicas: i32,
    /// Pods of the current template.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub updated_replicas: i32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ready_replicas: i32,
    /// Ready for at least minReadySeconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub available_replicas: i32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unavailable_replicas: i32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<DeploymentCondition>,
    /// Bumped when the hash of a new ReplicaSet's name collides with an existing one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentCondition {
    #[serde(rename = "type")]
    pub type_: DeploymentConditionType,
    pub status: ConditionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// E.g. `NewReplicaSetAvailable`, `ProgressDeadlineExceeded`, `MinimumReplicasAvailable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeploymentConditionType {
    Available,
    Progressing,
    ReplicaFailure,
}

/// Keeps a number of identical pods running; owned by a Deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaSet {
    pub api_version: ApiVersion<ReplicaSet>,
    pub kind: Kind<ReplicaSet>,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ReplicaSetSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ReplicaSetStatus>,
}
crate::impl_resource!(
    ReplicaSet,
    "apps/v1",
    "ReplicaSet",
    "replicasets",
    namespaced
);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaSetSpec {
    /// Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
    /// Required; must match the template's labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PodTemplateSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaSetStatus {
    #[serde(default)]
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fully_labeled_replicas: i32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ready_replicas: i32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub available_replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ReplicaSetCondition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaSetCondition {
    /// E.g. `ReplicaFailure`.
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rolling(
        surge: Option<IntOrString>,
        unavailable: Option<IntOrString>,
    ) -> RollingUpdateDeployment {
        RollingUpdateDeployment {
            max_surge: surge,
            max_unavailable: unavailable,
        }
    }

    #[test]
    fn fenceposts_default_to_25_percent_with_kubernetes_rounding() {
        let defaults = rolling(None, None);
        assert_eq!(defaults.resolve_fenceposts(10).unwrap(), (3, 2));
        assert_eq!(defaults.resolve_fenceposts(4).unwrap(), (1, 1));
        assert_eq!(defaults.resolve_fenceposts(3).unwrap(), (1, 0));
        // 25% of 1 is 0.25: surge rounds up to 1, unavailable down to 0.
        assert_eq!(defaults.resolve_fenceposts(1).unwrap(), (1, 0));
    }

    #[test]
    fn fenceposts_both_zero_make_unavailable_one() {
        assert_eq!(
            rolling(Some(0.into()), Some(0.into()))
                .resolve_fenceposts(5)
                .unwrap(),
            (0, 1)
        );
        assert_eq!(
            rolling(Some("0%".into()), Some("10%".into()))
                .resolve_fenceposts(3)
                .unwrap(),
            (0, 1)
        );
        assert_eq!(
            rolling(Some(0.into()), None).resolve_fenceposts(0).unwrap(),
            (0, 1)
        );
    }

    #[test]
    fn fenceposts_integers_are_taken_as_is() {
        assert_eq!(
            rolling(Some(2.into()), Some(1.into()))
                .resolve_fenceposts(3)
                .unwrap(),
            (2, 1)
        );
        assert!(
            rolling(Some("two".into()), None)
                .resolve_fenceposts(3)
                .is_err()
        );
    }
}
