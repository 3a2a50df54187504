//! The Deployment reconciler: one ReplicaSet per template revision, rolled out as Kubernetes'
//! deployment controller does (pkg/controller/deployment).
//!
//! Each run starts from what the store holds:
//! 1. claim the ReplicaSets (adopt orphans that match the selector, release owned ones that no
//!    longer do) and read their pods;
//! 2. paused, or `replicas` changed mid-rollout (a ReplicaSet's desired-replicas annotation
//!    differs): only scale (proportionally across the ReplicaSets) and, if
//!    paused, clean up old revisions;
//! 3. otherwise roll out by the strategy: RollingUpdate (maxSurge, maxUnavailable, minReadySeconds
//!    at every step) or Recreate (old pods gone before new ones start);
//! 4. write the status (counts and the Available and Progressing conditions, with Kubernetes'
//!    reasons and messages) and requeue for the progress deadline or a pod becoming available.
//!
//! The new ReplicaSet is `<deployment>-<pod-template-hash>`; a name clash with another template
//! bumps `status.collisionCount` and the hash. Its pods are counted from the store, not from
//! the ReplicaSets' (possibly stale) status, and a ReplicaSet counts as the larger of its
//! replicas and its live pods for maxSurge, and as the smaller of its replicas and its
//! available pods for maxUnavailable: the bounds hold while the ReplicaSet controller is still
//! catching up with a scale.

mod progress;
mod recreate;
pub mod rollback;
mod rolling;
pub mod util;

use std::{collections::HashMap, sync::Arc};

use berth_api::{
    Object, ObjectKey, ObjectMeta, Resource,
    apps_v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec},
    core_v1::Pod,
    intstr::IntOrStringError,
};
use berth_store::{Preconditions, RedbStore};
use tracing::instrument;

pub use self::rollback::{RollbackError, rollback, rollback_in_store};
use self::util::{
    desired_replicas_annotation, fenceposts, is_paused, is_rolling, replicas, revision,
    set_new_replica_set_annotations, set_replicas_annotations,
};
use crate::{
    Action, Context,
    hash::{POD_TEMPLATE_HASH_LABEL, compute_hash, equal_ignore_hash},
    pods::{self, controller_of, controller_reference},
};

/// Why a Deployment could not be reconciled.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    #[error("Deployment {namespace}/{name}: cannot {operation}")]
    Store {
        namespace: String,
        name: String,
        operation: &'static str,
        #[source]
        source: berth_store::Error,
    },
    #[error("Deployment {namespace}/{name}: spec.selector is required and must not be empty")]
    NoSelector { namespace: String, name: String },
    #[error("Deployment {namespace}/{name}: spec.strategy.rollingUpdate")]
    Fenceposts {
        namespace: String,
        name: String,
        #[source]
        source: IntOrStringError,
    },
    #[error(
        "Deployment {namespace}/{name}: ReplicaSet {replica_set} exists with another template; collisionCount is now {collision_count}"
    )]
    HashCollision {
        namespace: String,
        name: String,
        replica_set: String,
        collision_count: i32,
    },
}

pub type Result<T, E = DeploymentError> = std::result::Result<T, E>;

/// Reconciles one Deployment; see the module documentation.
#[instrument(skip_all, fields(deployment = %deployment.metadata.name()))]
pub async fn reconcile(deployment: Arc<Deployment>, ctx: Arc<Context>) -> Result<Action> {
    let mut rollout = Rollout::load(&ctx, Deployment::clone(&deployment)).await?;
    if rollout.d.metadata.deletion_timestamp.is_some() {
        rollout.sync_status().await?;
        return Ok(Action::await_change());
    }
    rollout.check_paused_conditions();
    if is_paused(&rollout.d) || rollout.is_scaling_event() {
        return rollout.sync().await;
    }
    if is_rolling(&rollout.d) {
        rollout.rollout_rolling().await
    } else {
        rollout.rollout_recreate().await
    }
}

/// Failed reconciles are retried with exponential backoff.
pub fn error_policy(_d: Arc<Deployment>, _err: &DeploymentError, _ctx: Arc<Context>) -> Action {
    Action::backoff()
}

/// A ReplicaSet of the Deployment and its pods (those it controls and that have not
/// terminated).
#[derive(Debug, Clone)]
struct Owned {
    rs: ReplicaSet,
    pods: Vec<Pod>,
}

impl Owned {
    fn name(&self) -> &str {
        self.rs.metadata.name()
    }

    fn replicas(&self) -> i32 {
        self.rs.spec.replicas.unwrap_or(1)
    }

    fn active(&self) -> impl Iterator<Item = &Pod> {
        self.pods.iter().filter(|p| pods::is_active(p))
    }

    fn active_count(&self) -> i32 {
        count(self.active())
    }

    fn ready(&self) -> i32 {
        count(self.active().filter(|p| pods::is_ready(p)))
    }

    fn available(&self, min_ready_seconds: i32, ctx: &Context) -> i32 {
        count(
            self.active()
                .filter(|p| pods::is_available(p, min_ready_seconds, &ctx.clock)),
        )
    }

    /// Available pods that stay when the ReplicaSet converges (it deletes unavailable first).
    fn kept_available(&self, min_ready_seconds: i32, ctx: &Context) -> i32 {
        self.available(min_ready_seconds, ctx).min(self.replicas())
    }

    /// Pods it has or will have: the larger of its replicas and its live pods.
    fn pod_bound(&self) -> i32 {
        self.replicas().max(self.active_count())
    }
}

fn count<'a>(pods: impl Iterator<Item = &'a Pod>) -> i32 {
    i32::try_from(pods.count()).unwrap_or(i32::MAX)
}

/// Oldest first. Creation timestamps have second precision: within a second the older
/// revision comes first.
fn creation_order(a: &ReplicaSet, b: &ReplicaSet) -> std::cmp::Ordering {
    a.metadata
        .creation_timestamp
        .cmp(&b.metadata.creation_timestamp)
        .then_with(|| revision(&a.metadata).cmp(&revision(&b.metadata)))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

fn namespace_of(meta: &ObjectMeta) -> String {
    meta.namespace
        .clone()
        .unwrap_or_else(|| berth_api::DEFAULT_NAMESPACE.to_owned())
}

/// One reconcile's view of a Deployment: the Deployment, the status being built, and its
/// ReplicaSets (oldest first) with their pods.
struct Rollout<'a> {
    ctx: &'a Context,
    d: Deployment,
    status: DeploymentStatus,
    owned: Vec<Owned>,
    /// Index in `owned` of the ReplicaSet of the current template.
    new: Option<usize>,
    max_surge: i32,
    max_unavailable: i32,
}

impl<'a> Rollout<'a> {
    async fn load(ctx: &'a Context, d: Deployment) -> Result<Self> {
        let namespace = namespace_of(&d.metadata);
        let name = d.metadata.name().to_owned();
        let selector = d
            .spec
            .selector
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| DeploymentError::NoSelector {
                namespace: namespace.clone(),
                name: name.clone(),
            })?;
        let (max_surge, max_unavailable) =
            fenceposts(&d).map_err(|source| DeploymentError::Fenceposts {
                namespace: namespace.clone(),
                name: name.clone(),
                source,
            })?;
        let mut rollout = Self {
            ctx,
            status: d.status.clone().unwrap_or_default(),
            d,
            owned: Vec::new(),
            new: None,
            max_surge,
            max_unavailable,
        };
        let replica_sets = ctx
            .store
            .list_as::<ReplicaSet>(Some(&namespace), None)
            .await
            .map_err(rollout.store_error("list replica sets"))?
            .items;
        let uid = rollout.d.metadata.uid.clone().unwrap_or_default();
        let mut mine = Vec::new();
        for rs in replica_sets {
            let matches = selector.matches(&rs.metadata.labels);
            match controller_of(&rs.metadata) {
                Some(owner) if owner.uid == uid => {
                    if matches {
                        mine.push(rs);
                    } else {
                        rollout.release(&rs).await?;
                    }
                }
                None if matches
                    && rs.metadata.deletion_timestamp.is_none()
                    && rollout.d.metadata.deletion_timestamp.is_none() =>
                {
                    if let Some(adopted) = rollout.adopt(&rs).await? {
                        mine.push(adopted);
                    }
                }
                _ => {}
            }
        }
        mine.sort_by(creation_order);
        let pods = ctx
            .store
            .list_as::<Pod>(Some(&namespace), None)
            .await
            .map_err(rollout.store_error("list pods"))?
            .items;
        let mut by_owner: HashMap<String, Vec<Pod>> = HashMap::new();
        for pod in pods {
            if matches!(
                pod.status.as_ref().and_then(|s| s.phase),
                Some(
                    berth_api::core_v1::PodPhase::Succeeded | berth_api::core_v1::PodPhase::Failed
                )
            ) {
                continue;
            }
            if let Some(owner) = controller_of(&pod.metadata) {
                by_owner.entry(owner.uid.clone()).or_default().push(pod);
            }
        }
        rollout.owned = mine
            .into_iter()
            .map(|rs| {
                let pods = rs
                    .metadata
                    .uid
                    .as_ref()
                    .and_then(|uid| by_owner.remove(uid))
                    .unwrap_or_default();
                Owned { rs, pods }
            })
            .collect();
        rollout.new = rollout.owned.iter().position(|o| {
            equal_ignore_hash(
                o.rs.spec.template.as_ref().unwrap_or(&Default::default()),
                &rollout.d.spec.template,
            )
        });
        Ok(rollout)
    }

    fn namespace(&self) -> String {
        namespace_of(&self.d.metadata)
    }

    fn store(&self) -> &RedbStore {
        &self.ctx.store
    }

    fn store_error(
        &self,
        operation: &'static str,
    ) -> impl FnOnce(berth_store::Error) -> DeploymentError + use<> {
        let (namespace, name) = (self.namespace(), self.d.metadata.name().to_owned());
        move |source| DeploymentError::Store {
            namespace,
            name,
            operation,
            source,
        }
    }

    fn min_ready_seconds(&self) -> i32 {
        util::min_ready_seconds(&self.d)
    }

    fn replicas(&self) -> i32 {
        replicas(&self.d)
    }

    fn new_rs(&self) -> Option<&Owned> {
        self.new.map(|i| &self.owned[i])
    }

    fn old_indices(&self) -> Vec<usize> {
        (0..self.owned.len())
            .filter(|i| Some(*i) != self.new)
            .collect()
    }

    fn controller_reference(&self) -> berth_api::meta::OwnerReference {
        controller_reference(Deployment::API_VERSION, Deployment::KIND, &self.d.metadata)
    }

    async fn adopt(&self, rs: &ReplicaSet) -> Result<Option<ReplicaSet>> {
        let key = Object::from(rs.clone()).key();
        match crate::pods::adopt(self.store(), &key, &self.controller_reference()).await {
            Ok(Some(Object::ReplicaSet(rs))) => {
                tracing::debug!(replica_set = %rs.metadata.name(), "adopted replica set");
                Ok(Some(rs))
            }
            Ok(_) => Ok(None),
            Err(err) => Err(self.store_error("adopt a replica set")(err)),
        }
    }

    async fn release(&self, rs: &ReplicaSet) -> Result<()> {
        let uid = self.d.metadata.uid.clone().unwrap_or_default();
        let result: berth_store::Result<Object> = self
            .store()
            .guaranteed_update(&Object::from(rs.clone()).key(), |object| {
                let Object::ReplicaSet(mut rs) = object else {
                    return Ok(None);
                };
                let before = rs.metadata.owner_references.len();
                rs.metadata.owner_references.retain(|r| r.uid != uid);
                Ok((rs.metadata.owner_references.len() != before).then(|| rs.into()))
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if err.is_not_found() => Ok(()),
            Err(err) => Err(self.store_error("release a replica set")(err)),
        }
    }

    /// Whether `replicas` changed since some active ReplicaSet was last scaled.
    fn is_scaling_event(&self) -> bool {
        let replicas = self.replicas();
        self.owned
            .iter()
            .filter(|o| o.replicas() > 0)
            .any(|o| desired_replicas_annotation(&o.rs).is_some_and(|d| d != replicas))
    }

    /// Scales one ReplicaSet to `replicas` and stamps the replicas annotations; whether it
    /// changed.
    async fn scale_to(&mut self, index: usize, replicas: i32) -> Result<bool> {
        let desired = self.replicas();
        let max = desired + self.max_surge;
        let mut target = self.owned[index].rs.clone();
        let mut changed = target.spec.replicas != Some(replicas);
        target.spec.replicas = Some(replicas);
        changed |= set_replicas_annotations(&mut target, desired, max);
        if !changed {
            return Ok(false);
        }
        let uid = target.metadata.uid.clone();
        let result: berth_store::Result<Object> = self
            .store()
            .guaranteed_update(&Object::from(target.clone()).key(), |object| {
                let Object::ReplicaSet(mut current) = object else {
                    return Ok(None);
                };
                if current.metadata.uid != uid {
                    return Ok(None);
                }
                current.spec.replicas = Some(replicas);
                set_replicas_annotations(&mut current, desired, max);
                Ok(Some(current.into()))
            })
            .await;
        match result {
            Ok(Object::ReplicaSet(updated)) => {
                tracing::info!(
                    replica_set = %updated.metadata.name(),
                    from = self.owned[index].replicas(),
                    to = replicas,
                    "scaled replica set"
                );
                self.owned[index].rs = updated;
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(err) => Err(self.store_error("scale a replica set")(err)),
        }
    }

    /// Kubernetes' `getNewReplicaSet`: syncs the revision of the ReplicaSet of the current
    /// template, or creates it when `create` and there is none.
    async fn sync_new_replica_set(&mut self, create: bool) -> Result<()> {
        let new_revision = self
            .old_indices()
            .iter()
            .map(|&i| revision(&self.owned[i].rs.metadata))
            .max()
            .unwrap_or(0)
            + 1;
        if let Some(index) = self.new {
            let mut updated = self.owned[index].rs.clone();
            let mut changed = set_new_replica_set_annotations(
                &self.d,
                &mut updated,
                new_revision,
                true,
                self.max_surge,
            );
            if updated.spec.min_ready_seconds != self.d.spec.min_ready_seconds {
                updated.spec.min_ready_seconds = self.d.spec.min_ready_seconds;
                changed = true;
            }
            if changed {
                self.update_new_replica_set(index, new_revision).await?;
            }
            let name = self.owned[index].name().to_owned();
            self.set_deployment_revision(revision(&self.owned[index].rs.metadata))
                .await?;
            if progress::condition(&self.status, progress::PROGRESSING).is_none()
                && util::progress_deadline(&self.d).is_some()
            {
                let condition = progress::new_condition(
                    progress::PROGRESSING,
                    berth_api::meta::ConditionStatus::True,
                    progress::FOUND_NEW_RS_REASON,
                    format!("Found new replica set {name:?}"),
                    &self.ctx.clock,
                );
                progress::set_condition(&mut self.status, condition);
            }
            return Ok(());
        }
        if !create {
            return Ok(());
        }
        self.create_new_replica_set(new_revision).await
    }

    async fn create_new_replica_set(&mut self, new_revision: i64) -> Result<()> {
        let hash = compute_hash(&self.d.spec.template, self.status.collision_count);
        let mut template = self.d.spec.template.clone();
        template
            .metadata
            .labels
            .insert(POD_TEMPLATE_HASH_LABEL.to_owned(), hash.clone());
        let mut selector = self.d.spec.selector.clone().unwrap_or_default();
        selector
            .match_labels
            .insert(POD_TEMPLATE_HASH_LABEL.to_owned(), hash.clone());
        let name = format!("{}-{hash}", self.d.metadata.name());
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(self.namespace()),
                labels: template.metadata.labels.clone(),
                owner_references: vec![self.controller_reference()],
                ..ObjectMeta::default()
            },
            spec: ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: self.d.spec.min_ready_seconds,
                selector: Some(selector),
                template: Some(template),
            },
            ..ReplicaSet::default()
        };
        let current: i32 = self.owned.iter().map(Owned::pod_bound).sum();
        let replicas = if is_rolling(&self.d) {
            util::new_rs_new_replicas(self.replicas(), self.max_surge, current, 0)
        } else {
            self.replicas()
        };
        rs.spec.replicas = Some(replicas);
        set_new_replica_set_annotations(&self.d, &mut rs, new_revision, false, self.max_surge);
        let created = match self.store().create(rs).await {
            Ok(Object::ReplicaSet(created)) => {
                tracing::info!(replica_set = %name, replicas, "created new replica set");
                let condition = progress::new_condition(
                    progress::PROGRESSING,
                    berth_api::meta::ConditionStatus::True,
                    progress::NEW_RS_REASON,
                    format!("Created new replica set {name:?}"),
                    &self.ctx.clock,
                );
                if util::progress_deadline(&self.d).is_some() {
                    progress::set_condition(&mut self.status, condition);
                }
                created
            }
            Ok(_) => return Ok(()),
            Err(berth_store::Error::AlreadyExists { .. }) => {
                let existing = self
                    .store()
                    .get_as::<ReplicaSet>(Some(&self.namespace()), &name)
                    .await
                    .map_err(self.store_error("read the new replica set"))?;
                let ours = controller_of(&existing.metadata)
                    .is_some_and(|o| Some(&o.uid) == self.d.metadata.uid.as_ref());
                let same = existing
                    .spec
                    .template
                    .as_ref()
                    .is_some_and(|t| equal_ignore_hash(t, &self.d.spec.template));
                if !(ours && same) {
                    let collision_count = self.status.collision_count.unwrap_or(0) + 1;
                    self.status.collision_count = Some(collision_count);
                    self.write_status().await?;
                    return Err(DeploymentError::HashCollision {
                        namespace: self.namespace(),
                        name: self.d.metadata.name().to_owned(),
                        replica_set: name,
                        collision_count,
                    });
                }
                existing
            }
            Err(err) => {
                if util::progress_deadline(&self.d).is_some() {
                    let condition = progress::new_condition(
                        progress::PROGRESSING,
                        berth_api::meta::ConditionStatus::False,
                        progress::FAILED_RS_CREATE_REASON,
                        format!("Failed to create new replica set {name:?}: {err}"),
                        &self.ctx.clock,
                    );
                    progress::set_condition(&mut self.status, condition);
                    self.status = self.status_with_counts();
                    self.write_status().await?;
                }
                return Err(self.store_error("create the new replica set")(err));
            }
        };
        let revision = revision(&created.metadata);
        self.owned.push(Owned {
            rs: created,
            pods: Vec::new(),
        });
        self.new = Some(self.owned.len() - 1);
        self.set_deployment_revision(revision).await
    }

    /// Writes the revision, copied annotations and minReadySeconds of the new ReplicaSet.
    async fn update_new_replica_set(&mut self, index: usize, new_revision: i64) -> Result<()> {
        let uid = self.owned[index].rs.metadata.uid.clone();
        let (d, max_surge) = (&self.d, self.max_surge);
        let result: berth_store::Result<Object> = self
            .ctx
            .store
            .guaranteed_update(
                &Object::from(self.owned[index].rs.clone()).key(),
                |object| {
                    let Object::ReplicaSet(mut current) = object else {
                        return Ok(None);
                    };
                    if current.metadata.uid != uid {
                        return Ok(None);
                    }
                    let mut changed = set_new_replica_set_annotations(
                        d,
                        &mut current,
                        new_revision,
                        true,
                        max_surge,
                    );
                    if current.spec.min_ready_seconds != d.spec.min_ready_seconds {
                        current.spec.min_ready_seconds = d.spec.min_ready_seconds;
                        changed = true;
                    }
                    Ok(changed.then(|| current.into()))
                },
            )
            .await;
        match result {
            Ok(Object::ReplicaSet(rs)) => {
                self.owned[index].rs = rs;
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(err) => Err(self.store_error("update the new replica set")(err)),
        }
    }

    /// Kubernetes' `SetDeploymentRevision`: the Deployment's revision annotation is its newest
    /// ReplicaSet's.
    async fn set_deployment_revision(&mut self, revision: i64) -> Result<()> {
        let value = revision.to_string();
        if self.d.metadata.annotations.get(util::REVISION_ANNOTATION) == Some(&value) {
            return Ok(());
        }
        let uid = self.d.metadata.uid.clone();
        let written = self
            .store()
            .guaranteed_update(&Object::from(self.d.clone()).key(), |object| {
                let Object::Deployment(mut d) = object else {
                    return Ok(None);
                };
                if d.metadata.uid != uid
                    || d.metadata.annotations.get(util::REVISION_ANNOTATION) == Some(&value)
                {
                    return Ok(None);
                }
                d.metadata
                    .annotations
                    .insert(util::REVISION_ANNOTATION.to_owned(), value.clone());
                Ok(Some(d.into()))
            })
            .await
            .map_err(self.store_error("set the revision annotation"))?;
        if let Object::Deployment(d) = written {
            self.d.metadata = d.metadata;
        }
        Ok(())
    }

    /// Kubernetes' `scale`: brings the ReplicaSets to the Deployment's replicas, proportionally
    /// across them when more than one is active (a mid-rollout scaling).
    async fn scale(&mut self) -> Result<()> {
        let replicas = self.replicas();
        if let Some(index) = self.active_or_latest() {
            self.scale_to(index, replicas).await?;
            return Ok(());
        }
        if self.is_new_saturated() {
            for index in self.old_indices() {
                if self.owned[index].replicas() > 0 {
                    self.scale_to(index, 0).await?;
                }
            }
            return Ok(());
        }
        if !is_rolling(&self.d) {
            return Ok(());
        }
        let mut active: Vec<usize> = (0..self.owned.len())
            .filter(|&i| self.owned[i].replicas() > 0)
            .collect();
        let total: i32 = active.iter().map(|&i| self.owned[i].replicas()).sum();
        let allowed = if replicas > 0 {
            replicas + self.max_surge
        } else {
            0
        };
        let to_add = allowed - total;
        // Largest first; on a tie newer first when adding, older first when removing.
        active.sort_by(|&a, &b| {
            let size = self.owned[b].replicas().cmp(&self.owned[a].replicas());
            let age = creation_order(&self.owned[a].rs, &self.owned[b].rs);
            size.then(if to_add > 0 { age.reverse() } else { age })
        });
        let status_replicas = self.status.replicas;
        let mut added = 0;
        let mut sizes = Vec::with_capacity(active.len());
        for &i in &active {
            let rs_replicas = self.owned[i].replicas();
            let size = if to_add == 0 {
                rs_replicas
            } else {
                let fraction = util::replica_set_fraction(
                    rs_replicas,
                    util::max_replicas_annotation(&self.owned[i].rs),
                    replicas,
                    self.max_surge,
                    status_replicas,
                );
                let proportion = util::proportion(fraction, rs_replicas, to_add, added);
                added += proportion;
                rs_replicas + proportion
            };
            sizes.push(size);
        }
        if let Some(first) = sizes.first_mut()
            && to_add != 0
        {
            *first = (*first + to_add - added).max(0);
        }
        for (&i, size) in active.iter().zip(sizes) {
            self.scale_to(i, size).await?;
        }
        Ok(())
    }

    /// Kubernetes' `FindActiveOrLatest`: the only ReplicaSet with replicas, or the newest when
    /// none has any; `None` when several have.
    fn active_or_latest(&self) -> Option<usize> {
        let active: Vec<usize> = (0..self.owned.len())
            .filter(|&i| self.owned[i].replicas() > 0)
            .collect();
        match active.as_slice() {
            [] => self.new.or_else(|| self.owned.len().checked_sub(1)),
            [one] => Some(*one),
            _ => None,
        }
    }

    /// The new ReplicaSet has all the replicas, all available.
    fn is_new_saturated(&self) -> bool {
        let replicas = self.replicas();
        self.new_rs().is_some_and(|new| {
            new.replicas() == replicas
                && desired_replicas_annotation(&new.rs) == Some(replicas)
                && new.kept_available(self.min_ready_seconds(), self.ctx) == replicas
        })
    }

    /// Paused or scaling: scale, clean up old revisions if paused, write the status.
    async fn sync(&mut self) -> Result<Action> {
        self.sync_new_replica_set(false).await?;
        self.scale().await?;
        if is_paused(&self.d) {
            self.cleanup().await?;
        }
        self.sync_status().await
    }

    /// Kubernetes' `cleanupDeployment`: keeps `revisionHistoryLimit` old ReplicaSets that are
    /// scaled to zero and deletes the older ones.
    async fn cleanup(&mut self) -> Result<()> {
        let limit = util::revision_history_limit(&self.d);
        let mut cleanable: Vec<usize> = self
            .old_indices()
            .into_iter()
            .filter(|&i| {
                let o = &self.owned[i];
                o.replicas() == 0
                    && o.active_count() == 0
                    && o.rs.metadata.deletion_timestamp.is_none()
                    && o.rs.metadata.generation
                        <= o.rs.status.as_ref().and_then(|s| s.observed_generation)
            })
            .collect();
        if cleanable.len() <= limit {
            return Ok(());
        }
        cleanable.sort_by(|&a, &b| {
            revision(&self.owned[a].rs.metadata)
                .cmp(&revision(&self.owned[b].rs.metadata))
                .then_with(|| creation_order(&self.owned[a].rs, &self.owned[b].rs))
        });
        let doomed: Vec<usize> = cleanable[..cleanable.len() - limit].to_vec();
        for &index in &doomed {
            let rs = &self.owned[index].rs;
            let key = Object::from(rs.clone()).key();
            let preconditions = Preconditions {
                uid: rs.metadata.uid.clone(),
                resource_version: None,
            };
            match self.store().delete(&key, preconditions).await {
                Ok(_) => tracing::info!(replica_set = %key.name, "deleted old replica set"),
                Err(err) if err.is_not_found() => {}
                Err(err) => return Err(self.store_error("delete an old replica set")(err)),
            }
        }
        let new_name = self.new_rs().map(|o| o.name().to_owned());
        let mut index = 0;
        self.owned.retain(|_| {
            let keep = !doomed.contains(&index);
            index += 1;
            keep
        });
        self.new = new_name.and_then(|n| self.owned.iter().position(|o| o.name() == n));
        Ok(())
    }

    fn key(&self) -> ObjectKey {
        Object::from(self.d.clone()).key()
    }
}
