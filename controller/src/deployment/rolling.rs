//! RollingUpdate (pkg/controller/deployment/rolling.go): grow the new ReplicaSet while all pods
//! stay within replicas + maxSurge, shrink the old ones while the available pods stay at least
//! replicas - maxUnavailable, unhealthy old replicas first.

use super::{Result, Rollout, progress};
use crate::Action;

impl Rollout<'_> {
    pub(super) async fn rollout_rolling(&mut self) -> Result<Action> {
        self.sync_new_replica_set(true).await?;
        if self.reconcile_new_replica_set().await? {
            return self.sync_rollout_status().await;
        }
        if self.reconcile_old_replica_sets().await? {
            return self.sync_rollout_status().await;
        }
        let status = self.peek_status();
        if progress::is_complete(&self.d, &status) {
            self.cleanup().await?;
        }
        self.sync_rollout_status().await
    }

    /// The counts of the status as they are now (for `is_complete`).
    pub(super) fn peek_status(&self) -> berth_api::apps_v1::DeploymentStatus {
        let mut status = self.status.clone();
        status.observed_generation = self.d.metadata.generation;
        status.replicas = self.owned.iter().map(|o| o.active_count()).sum();
        status.updated_replicas = self.new_rs().map_or(0, |o| o.active_count());
        status.available_replicas = self
            .owned
            .iter()
            .map(|o| o.available(self.min_ready_seconds(), self.ctx))
            .sum();
        status
    }

    /// Scales the new ReplicaSet up within maxSurge (or down to the replicas); whether it did.
    async fn reconcile_new_replica_set(&mut self) -> Result<bool> {
        let Some(index) = self.new else {
            return Ok(false);
        };
        let replicas = self.replicas();
        let new_replicas = self.owned[index].replicas();
        if new_replicas == replicas {
            return Ok(false);
        }
        if new_replicas > replicas {
            return self.scale_to(index, replicas).await;
        }
        let current: i32 = self.owned.iter().map(|o| o.pod_bound()).sum();
        let target =
            super::util::new_rs_new_replicas(replicas, self.max_surge, current, new_replicas);
        self.scale_to(index, target).await
    }

    /// Scales old ReplicaSets down as far as availability allows; whether any was.
    async fn reconcile_old_replica_sets(&mut self) -> Result<bool> {
        let old = self.old_indices();
        let old_replicas: i32 = old.iter().map(|&i| self.owned[i].replicas()).sum();
        if old_replicas == 0 {
            return Ok(false);
        }
        let min_ready = self.min_ready_seconds();
        let all_replicas: i32 = self.owned.iter().map(|o| o.replicas()).sum();
        let min_available = self.replicas() - self.max_unavailable;
        let new_unavailable = self
            .new_rs()
            .map_or(0, |o| o.replicas() - o.kept_available(min_ready, self.ctx));
        let max_scaled_down = all_replicas - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok(false);
        }
        let cleaned = self
            .cleanup_unhealthy_replicas(&old, max_scaled_down)
            .await?;
        let scaled = self
            .scale_down_old_replica_sets(&old, min_available)
            .await?;
        Ok(cleaned + scaled > 0)
    }

    /// Removes old replicas that are not available (they add nothing to availability), at most
    /// `max_cleanup`, oldest ReplicaSet first.
    async fn cleanup_unhealthy_replicas(&mut self, old: &[usize], max_cleanup: i32) -> Result<i32> {
        let min_ready = self.min_ready_seconds();
        let mut total = 0;
        for &index in old {
            if total >= max_cleanup {
                break;
            }
            let o = &self.owned[index];
            let replicas = o.replicas();
            let unhealthy = replicas - o.kept_available(min_ready, self.ctx);
            if replicas == 0 || unhealthy <= 0 {
                continue;
            }
            let scaled_down = unhealthy.min(max_cleanup - total);
            self.scale_to(index, replicas - scaled_down).await?;
            total += scaled_down;
        }
        Ok(total)
    }

    /// Scales old ReplicaSets down, oldest first, while the available pods that will remain stay
    /// at least `min_available`.
    async fn scale_down_old_replica_sets(
        &mut self,
        old: &[usize],
        min_available: i32,
    ) -> Result<i32> {
        let min_ready = self.min_ready_seconds();
        let available: i32 = self
            .owned
            .iter()
            .map(|o| o.kept_available(min_ready, self.ctx))
            .sum();
        if available <= min_available {
            return Ok(0);
        }
        let allowed = available - min_available;
        let mut total = 0;
        for &index in old {
            if total >= allowed {
                break;
            }
            let replicas = self.owned[index].replicas();
            if replicas == 0 {
                continue;
            }
            let scaled_down = replicas.min(allowed - total);
            self.scale_to(index, replicas - scaled_down).await?;
            total += scaled_down;
        }
        Ok(total)
    }
}
