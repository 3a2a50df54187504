//! Deployment status: the counts, the Available and Progressing conditions with Kubernetes'
//! reasons and messages, and the progress deadline (pkg/controller/deployment/progress.go,
//! sync.go `calculateStatus`).

use std::time::Duration;

use berth_api::{
    Object,
    apps_v1::{DeploymentCondition, DeploymentConditionType, DeploymentStatus},
    meta::ConditionStatus,
};

use super::{DeploymentError, Result, Rollout, util};
use crate::{Action, Clock, replica_set::next_availability};

pub const PROGRESSING: DeploymentConditionType = DeploymentConditionType::Progressing;
pub const AVAILABLE: DeploymentConditionType = DeploymentConditionType::Available;

pub const NEW_RS_REASON: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS_REASON: &str = "FoundNewReplicaSet";
pub const RS_UPDATED_REASON: &str = "ReplicaSetUpdated";
pub const NEW_RS_AVAILABLE_REASON: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT_REASON: &str = "ProgressDeadlineExceeded";
pub const FAILED_RS_CREATE_REASON: &str = "ReplicaSetCreateError";
pub const PAUSED_REASON: &str = "DeploymentPaused";
pub const RESUMED_REASON: &str = "DeploymentResumed";
pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

pub fn new_condition(
    type_: DeploymentConditionType,
    status: ConditionStatus,
    reason: &str,
    message: String,
    clock: &Clock,
) -> DeploymentCondition {
    let now = clock.now();
    DeploymentCondition {
        type_,
        status,
        last_update_time: Some(now),
        last_transition_time: Some(now),
        reason: Some(reason.to_owned()),
        message: Some(message),
    }
}

pub fn condition(
    status: &DeploymentStatus,
    type_: DeploymentConditionType,
) -> Option<&DeploymentCondition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

fn reason_of(status: &DeploymentStatus, type_: DeploymentConditionType) -> Option<&str> {
    condition(status, type_).and_then(|c| c.reason.as_deref())
}

/// Kubernetes' `SetDeploymentCondition`: no change for the same status and reason; the
/// transition time is kept while the status stays the same.
pub fn set_condition(status: &mut DeploymentStatus, mut new: DeploymentCondition) {
    if let Some(current) = condition(status, new.type_) {
        if current.status == new.status && current.reason == new.reason {
            return;
        }
        if current.status == new.status {
            new.last_transition_time = current.last_transition_time;
        }
    }
    remove_condition(status, new.type_);
    status.conditions.push(new);
}

pub fn remove_condition(status: &mut DeploymentStatus, type_: DeploymentConditionType) {
    status.conditions.retain(|c| c.type_ != type_);
}

/// Kubernetes' `DeploymentComplete`: every replica updated and available, nothing else left,
/// and the newest spec observed.
pub fn is_complete(d: &berth_api::apps_v1::Deployment, status: &DeploymentStatus) -> bool {
    let replicas = util::replicas(d);
    status.updated_replicas == replicas
        && status.replicas == replicas
        && status.available_replicas == replicas
        && status.observed_generation >= d.metadata.generation
}

/// Kubernetes' `DeploymentProgressing`: more updated, ready or available pods, or fewer old.
fn is_progressing(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    new.updated_replicas > old.updated_replicas
        || new.ready_replicas > old.ready_replicas
        || new.replicas - new.updated_replicas < old.replicas - old.updated_replicas
        || new.available_replicas > old.available_replicas
}

fn quoted(name: &str) -> String {
    format!("{name:?}")
}

impl Rollout<'_> {
    /// Kubernetes' `calculateStatus`, from the pods the store holds.
    fn calculate_status(&self) -> DeploymentStatus {
        let min_ready = self.min_ready_seconds();
        let available: i32 = self
            .owned
            .iter()
            .map(|o| o.available(min_ready, self.ctx))
            .sum();
        let total_replicas: i32 = self.owned.iter().map(|o| o.replicas()).sum();
        let mut status = DeploymentStatus {
            observed_generation: self.d.metadata.generation,
            replicas: self.owned.iter().map(|o| o.active_count()).sum(),
            updated_replicas: self.new_rs().map_or(0, |o| o.active_count()),
            ready_replicas: self.owned.iter().map(|o| o.ready()).sum(),
            available_replicas: available,
            unavailable_replicas: (total_replicas - available).max(0),
            conditions: self.status.conditions.clone(),
            collision_count: self.status.collision_count,
        };
        let condition = if available >= self.replicas() - self.max_unavailable {
            new_condition(
                AVAILABLE,
                ConditionStatus::True,
                MINIMUM_REPLICAS_AVAILABLE,
                "Deployment has minimum availability.".to_owned(),
                &self.ctx.clock,
            )
        } else {
            new_condition(
                AVAILABLE,
                ConditionStatus::False,
                MINIMUM_REPLICAS_UNAVAILABLE,
                "Deployment does not have minimum availability.".to_owned(),
                &self.ctx.clock,
            )
        };
        set_condition(&mut status, condition);
        status
    }

    /// The status with fresh counts and the conditions built so far.
    pub(super) fn status_with_counts(&self) -> DeploymentStatus {
        self.calculate_status()
    }

    /// Kubernetes' `getReplicaFailures`: the ReplicaFailure condition of the new ReplicaSet, else
    /// of an old one, as a Deployment condition.
    fn replica_failure(&self) -> Option<DeploymentCondition> {
        let new = self.new.into_iter();
        let old = self.old_indices().into_iter();
        new.chain(old).find_map(|i| {
            let status = self.owned[i].rs.status.as_ref()?;
            let failure = status
                .conditions
                .iter()
                .find(|c| c.type_ == "ReplicaFailure" && c.status == ConditionStatus::True)?;
            Some(DeploymentCondition {
                type_: DeploymentConditionType::ReplicaFailure,
                status: failure.status,
                last_update_time: failure.last_transition_time,
                last_transition_time: failure.last_transition_time,
                reason: failure.reason.clone(),
                message: failure.message.clone(),
            })
        })
    }

    /// Kubernetes' `checkPausedConditions`: Progressing is Unknown while paused.
    pub(super) fn check_paused_conditions(&mut self) {
        if util::progress_deadline(&self.d).is_none() {
            return;
        }
        let paused_condition = reason_of(&self.status, PROGRESSING) == Some(PAUSED_REASON);
        let paused = util::is_paused(&self.d);
        let (reason, message) = match (paused, paused_condition) {
            (true, false) => (PAUSED_REASON, "Deployment is paused"),
            (false, true) => (RESUMED_REASON, "Deployment is resumed"),
            _ => return,
        };
        let condition = new_condition(
            PROGRESSING,
            ConditionStatus::Unknown,
            reason,
            message.to_owned(),
            &self.ctx.clock,
        );
        set_condition(&mut self.status, condition);
    }

    /// Kubernetes' `syncDeploymentStatus`: the counts, without judging progress.
    pub(super) async fn sync_status(&mut self) -> Result<Action> {
        self.status = self.calculate_status();
        self.write_status().await?;
        Ok(self.availability_requeue())
    }

    /// Kubernetes' `syncRolloutStatus`: the counts and the Progressing condition, then a
    /// requeue for the progress deadline or the next pod to become available.
    pub(super) async fn sync_rollout_status(&mut self) -> Result<Action> {
        let old = self.d.status.clone().unwrap_or_default();
        let mut status = self.calculate_status();
        let deadline = util::progress_deadline(&self.d);
        let new_name = quoted(self.new_rs().map_or("", |o| o.name()));
        match deadline {
            None => remove_condition(&mut status, PROGRESSING),
            Some(_) => {
                let current = condition(&status, PROGRESSING).cloned();
                let complete_before = status.replicas == status.updated_replicas
                    && current.as_ref().and_then(|c| c.reason.as_deref())
                        == Some(NEW_RS_AVAILABLE_REASON);
                if !complete_before {
                    if is_complete(&self.d, &status) {
                        let condition = new_condition(
                            PROGRESSING,
                            ConditionStatus::True,
                            NEW_RS_AVAILABLE_REASON,
                            format!("ReplicaSet {new_name} has successfully progressed."),
                            &self.ctx.clock,
                        );
                        set_condition(&mut status, condition);
                    } else if is_progressing(&old, &status) {
                        let mut condition = new_condition(
                            PROGRESSING,
                            ConditionStatus::True,
                            RS_UPDATED_REASON,
                            format!("ReplicaSet {new_name} is progressing."),
                            &self.ctx.clock,
                        );
                        if let Some(current) = current {
                            if current.status == ConditionStatus::True {
                                condition.last_transition_time = current.last_transition_time;
                            }
                            remove_condition(&mut status, PROGRESSING);
                        }
                        set_condition(&mut status, condition);
                    } else if self.timed_out(&status) {
                        let condition = new_condition(
                            PROGRESSING,
                            ConditionStatus::False,
                            TIMED_OUT_REASON,
                            format!("ReplicaSet {new_name} has timed out progressing."),
                            &self.ctx.clock,
                        );
                        set_condition(&mut status, condition);
                    }
                }
            }
        }
        match self.replica_failure() {
            Some(failure) => set_condition(&mut status, failure),
            None => remove_condition(&mut status, DeploymentConditionType::ReplicaFailure),
        }
        self.status = status;
        self.write_status().await?;
        Ok(self.stuck_requeue().min(self.availability_requeue()))
    }

    /// Kubernetes' `DeploymentTimedOut`: no progress for progressDeadlineSeconds since the
    /// Progressing condition's last update.
    fn timed_out(&self, status: &DeploymentStatus) -> bool {
        let Some(deadline) = util::progress_deadline(&self.d) else {
            return false;
        };
        let Some(current) = condition(status, PROGRESSING) else {
            return false;
        };
        match current.reason.as_deref() {
            Some(NEW_RS_AVAILABLE_REASON) => false,
            Some(TIMED_OUT_REASON) => true,
            _ => current
                .last_update_time
                .is_some_and(|from| self.ctx.clock.seconds_since(from) > deadline as f64),
        }
    }

    /// Kubernetes' `requeueStuckDeployment`: a rollout in progress is looked at again when its
    /// progress deadline passes.
    fn stuck_requeue(&self) -> Action {
        let Some(deadline) = util::progress_deadline(&self.d) else {
            return Action::await_change();
        };
        let Some(current) = condition(&self.status, PROGRESSING) else {
            return Action::await_change();
        };
        if current.status != ConditionStatus::True
            || current.reason.as_deref() != Some(RS_UPDATED_REASON)
            || is_complete(&self.d, &self.status)
        {
            return Action::await_change();
        }
        let Some(from) = current.last_update_time else {
            return Action::await_change();
        };
        let at = from.0 + jiff::SignedDuration::from_secs(deadline);
        // Just after the deadline: timing out needs strictly more than the deadline.
        Action::requeue(self.ctx.clock.until(at) + Duration::from_millis(100))
    }

    fn availability_requeue(&self) -> Action {
        let pods: Vec<_> = self
            .owned
            .iter()
            .flat_map(|o| o.active().cloned())
            .collect();
        next_availability(&pods, self.min_ready_seconds(), self.ctx)
    }

    /// Writes the status built so far if it differs from the stored one.
    pub(super) async fn write_status(&mut self) -> Result<()> {
        if self.d.status.as_ref() == Some(&self.status) {
            return Ok(());
        }
        let status = self.status.clone();
        let uid = self.d.metadata.uid.clone();
        let result: berth_store::Result<Object> = self
            .store()
            .guaranteed_update_status(&self.key(), |object| {
                let Object::Deployment(mut d) = object else {
                    return Ok(None);
                };
                if d.metadata.uid != uid || d.status.as_ref() == Some(&status) {
                    return Ok(None);
                }
                d.status = Some(status.clone());
                Ok(Some(d.into()))
            })
            .await;
        match result {
            Ok(Object::Deployment(d)) => {
                self.d.status = d.status;
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(err) if err.is_not_found() => Ok(()),
            Err(err) => Err::<(), DeploymentError>(self.store_error("update the status")(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn set_condition_keeps_the_transition_time_of_an_unchanged_status() {
        let clock = Clock::new();
        let mut status = DeploymentStatus::default();
        let first = new_condition(
            PROGRESSING,
            ConditionStatus::True,
            NEW_RS_REASON,
            "Created".into(),
            &clock,
        );
        set_condition(&mut status, first.clone());
        tokio::time::advance(Duration::from_secs(5)).await;
        let same = new_condition(
            PROGRESSING,
            ConditionStatus::True,
            NEW_RS_REASON,
            "Created".into(),
            &clock,
        );
        set_condition(&mut status, same);
        assert_eq!(
            status.conditions,
            vec![first.clone()],
            "same reason: no change"
        );
        let updated = new_condition(
            PROGRESSING,
            ConditionStatus::True,
            RS_UPDATED_REASON,
            "progressing".into(),
            &clock,
        );
        set_condition(&mut status, updated.clone());
        assert_eq!(status.conditions.len(), 1);
        assert_eq!(
            status.conditions[0].last_transition_time,
            first.last_transition_time
        );
        assert_eq!(
            status.conditions[0].last_update_time,
            updated.last_update_time
        );
        let failed = new_condition(
            PROGRESSING,
            ConditionStatus::False,
            TIMED_OUT_REASON,
            "timed out".into(),
            &clock,
        );
        set_condition(&mut status, failed.clone());
        assert_eq!(status.conditions, vec![failed]);
    }

    #[test]
    fn progress_is_any_step_forward() {
        let old = DeploymentStatus {
            replicas: 4,
            updated_replicas: 1,
            ready_replicas: 3,
            available_replicas: 3,
            ..DeploymentStatus::default()
        };
        assert!(!is_progressing(&old, &old));
        let more_updated = DeploymentStatus {
            updated_replicas: 2,
            replicas: 5,
            ..old.clone()
        };
        assert!(is_progressing(&old, &more_updated));
        let fewer_old = DeploymentStatus {
            replicas: 3,
            ..old.clone()
        };
        assert!(is_progressing(&old, &fewer_old));
        let less_ready = DeploymentStatus {
            ready_replicas: 2,
            ..old.clone()
        };
        assert!(!is_progressing(&old, &less_ready));
    }
}
