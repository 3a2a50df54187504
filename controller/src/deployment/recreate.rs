//! Recreate (pkg/controller/deployment/recreate.go): scale every old ReplicaSet to zero, wait
//! until their pods are gone, then scale the new one up. Old and new pods never overlap.

use super::{Result, Rollout, progress};
use crate::Action;

impl Rollout<'_> {
    pub(super) async fn rollout_recreate(&mut self) -> Result<Action> {
        self.sync_new_replica_set(false).await?;
        let mut scaled_down = false;
        for index in self.old_indices() {
            if self.owned[index].replicas() > 0 {
                scaled_down |= self.scale_to(index, 0).await?;
            }
        }
        if scaled_down || self.old_pods_running() {
            // Old pods terminate gracefully and their deletion changes no ReplicaSet (their
            // status stopped counting them when deletion began): look again shortly.
            let action = self.sync_rollout_status().await?;
            return Ok(action.min(Action::requeue(std::time::Duration::from_secs(1))));
        }
        if self.new.is_none() {
            self.sync_new_replica_set(true).await?;
        }
        if let Some(index) = self.new {
            let replicas = self.replicas();
            self.scale_to(index, replicas).await?;
        }
        let status = self.peek_status();
        if progress::is_complete(&self.d, &status) {
            self.cleanup().await?;
        }
        self.sync_rollout_status().await
    }

    /// Whether any pod of an old ReplicaSet still exists, terminating ones included.
    fn old_pods_running(&self) -> bool {
        self.old_indices()
            .iter()
            .any(|&i| !self.owned[i].pods.is_empty())
    }
}
