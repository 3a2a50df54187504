//! [`RedbStore`]: the async handle the daemon, controller, agent and API share.

use std::{path::Path, sync::Arc, time::Duration};

use berth_api::{LabelSelector, Object, ObjectKey, Resource};
use serde::de::DeserializeOwned;

use crate::{
    core::{Compaction, Core, DeleteOptions, Op, Options, Outcome, Preconditions},
    error::{Error, Result},
    watch::{Watch, WatchFilter, WatchStart},
};

/// Objects of one kind and the resourceVersion of the snapshot they were read from: watch
/// with [`WatchStart::After`] it to see every later change.
#[derive(Debug, Clone, PartialEq)]
pub struct List<T> {
    pub items: Vec<T>,
    pub resource_version: u64,
}

/// A handle on the store; cheap to clone, every clone is the same store.
///
/// Every method runs its (blocking) redb transaction on tokio's blocking pool, so it must be
/// called inside a tokio runtime.
#[derive(Clone)]
pub struct RedbStore {
    core: Arc<Core>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.core.path())
            .finish_non_exhaustive()
    }
}

/// The key of the object of kind `R` named `name` in `namespace` (`default` when `None`; ignored
/// for cluster-scoped kinds).
pub fn key_of<R: Resource>(namespace: Option<&str>, name: &str) -> ObjectKey {
    ObjectKey {
        kind: R::KIND,
        namespace: R::NAMESPACED
            .then(|| namespace.unwrap_or(berth_api::DEFAULT_NAMESPACE).to_owned()),
        name: name.to_owned(),
    }
}

impl RedbStore {
    /// Opens (creating if needed) the database file at `path`, typically `<root>/store.redb`.
    /// Blocks: call it before serving, or from `spawn_blocking`. Fails if another process has the
    /// file open.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, Options::default())
    }

    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<Self> {
        Ok(Self {
            core: Arc::new(Core::open(path.as_ref(), options)?),
        })
    }

    /// A store in memory only: the same semantics without a file or fsync, for tests of the
    /// controller, agent and API, and for dry runs.
    pub fn open_in_memory(options: Options) -> Result<Self> {
        Ok(Self {
            core: Arc::new(Core::in_memory(options)?),
        })
    }

    /// The database file (`<memory>` for an in-memory store).
    pub fn path(&self) -> &Path {
        self.core.path()
    }

    /// The last resourceVersion handed out.
    pub fn resource_version(&self) -> u64 {
        self.core.revision()
    }

    async fn blocking<T, F>(&self, operation: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Core) -> Result<T> + Send + 'static,
    {
        let core = Arc::clone(&self.core);
        tokio::task::spawn_blocking(move || f(&core))
            .await
            .map_err(|source| Error::Task { operation, source })?
    }

    pub async fn get(&self, key: &ObjectKey) -> Result<Object> {
        let key = key.clone();
        self.blocking("get", move |core| core.get(&key)).await
    }

    /// `get_as::<Deployment>(Some("team"), "web")`.
    pub async fn get_as<R>(&self, namespace: Option<&str>, name: &str) -> Result<R>
    where
        R: Resource + DeserializeOwned + Send + 'static,
    {
        let key = key_of::<R>(namespace, name);
        self.blocking("get", move |core| core.get_as(&key)).await
    }

    /// Objects of `kind` (`Pod`) in `namespace` (every namespace when `None`) whose labels match
    /// `selector`.
    pub async fn list(
        &self,
        kind: &str,
        namespace: Option<&str>,
        selector: Option<&LabelSelector>,
    ) -> Result<List<Object>> {
        let (kind, namespace, selector) = (
            kind.to_owned(),
            namespace.map(str::to_owned),
            selector.cloned(),
        );
        self.blocking("list", move |core| {
            core.list_as::<Object>(&kind, namespace.as_deref(), selector.as_ref(), |o| {
                &o.metadata().labels
            })
        })
        .await
        .map(|(items, resource_version)| List {
            items,
            resource_version,
        })
    }

    /// `list_as::<Pod>(Some("default"), Some(&selector))`.
    pub async fn list_as<R>(
        &self,
        namespace: Option<&str>,
        selector: Option<&LabelSelector>,
    ) -> Result<List<R>>
    where
        R: Resource + DeserializeOwned + Send + 'static,
    {
        let (namespace, selector) = (namespace.map(str::to_owned), selector.cloned());
        self.blocking("list", move |core| {
            core.list_as::<R>(R::KIND, namespace.as_deref(), selector.as_ref(), |o| {
                &o.metadata().labels
            })
        })
        .await
        .map(|(items, resource_version)| List {
            items,
            resource_version,
        })
    }

    /// Applies every op in one durable transaction, or none of them (the first failure is
    /// returned). This is what `berth apply -f DIR` uses.
    pub async fn batch(&self, ops: Vec<Op>) -> Result<Vec<Outcome>> {
        let count = ops.len();
        let outcomes = self.blocking("batch", move |core| core.write(ops)).await?;
        tracing::debug!(ops = count, "batch committed");
        Ok(outcomes)
    }

    async fn write_one(&self, op: Op) -> Result<Outcome> {
        self.blocking("write", move |core| core.write_one(op)).await
    }

    /// Creates `object`: assigns uid, creationTimestamp, generation 1 and a resourceVersion.
    pub async fn create(&self, object: impl Into<Object>) -> Result<Object> {
        Ok(self
            .write_one(Op::Create(object.into()))
            .await?
            .into_object())
    }

    /// Replaces the desired state (everything but `status`) of an object read before: its
    /// resourceVersion must be the stored one, else `Conflict`.
    pub async fn update(&self, object: impl Into<Object>) -> Result<Object> {
        Ok(self
            .write_one(Op::Update(object.into()))
            .await?
            .into_object())
    }

    /// Creates the object, or replaces its desired state whatever its resourceVersion (a given
    /// resourceVersion is still a precondition): what `berth apply` does per object.
    pub async fn apply(&self, object: impl Into<Object>) -> Result<Outcome> {
        self.write_one(Op::Apply(object.into())).await
    }

    /// Replaces `status` only (Kubernetes' `/status` subresource); generation and spec are
    /// untouched. A resourceVersion, if given, is a precondition.
    pub async fn update_status(&self, object: impl Into<Object>) -> Result<Object> {
        Ok(self
            .write_one(Op::UpdateStatus(object.into()))
            .await?
            .into_object())
    }

    /// Deletes the object, or, while it has finalizers, sets its `deletionTimestamp`: it goes
    /// when an update removes the last finalizer. A pod the agent has started terminates
    /// gracefully with its own grace period (see [`DeleteOptions`]).
    pub async fn delete(&self, key: &ObjectKey, preconditions: Preconditions) -> Result<Outcome> {
        self.write_one(Op::Delete {
            key: key.clone(),
            preconditions,
        })
        .await
    }

    /// Deletes the object with explicit options: a started pod gets a `deletionTimestamp` and
    /// goes when the agent has stopped it and deletes it with a grace period of 0 (Kubernetes'
    /// graceful deletion; see [`DeleteOptions`]).
    pub async fn delete_with(&self, key: &ObjectKey, options: DeleteOptions) -> Result<Outcome> {
        self.write_one(Op::DeleteWith {
            key: key.clone(),
            options,
        })
        .await
    }

    /// Reads the object, lets `change` compute the new one from it, and writes it with the
    /// resourceVersion read; on a conflict reads again and retries (apiserver's
    /// GuaranteedUpdate). `change` returns `None` to leave the object as it is. Its desired state
    /// is written as with [`update`](Self::update); status is kept.
    pub async fn guaranteed_update<F, E>(&self, key: &ObjectKey, change: F) -> Result<Object, E>
    where
        F: FnMut(Object) -> Result<Option<Object>, E>,
        E: From<Error>,
    {
        self.retry_on_conflict(key, change, Op::Update).await
    }

    /// As [`guaranteed_update`](Self::guaranteed_update), writing `status` only.
    pub async fn guaranteed_update_status<F, E>(
        &self,
        key: &ObjectKey,
        change: F,
    ) -> Result<Object, E>
    where
        F: FnMut(Object) -> Result<Option<Object>, E>,
        E: From<Error>,
    {
        self.retry_on_conflict(key, change, Op::UpdateStatus).await
    }

    async fn retry_on_conflict<F, E>(
        &self,
        key: &ObjectKey,
        mut change: F,
        op: fn(Object) -> Op,
    ) -> Result<Object, E>
    where
        F: FnMut(Object) -> Result<Option<Object>, E>,
        E: From<Error>,
    {
        loop {
            let current = self.get(key).await?;
            let read_version = current.metadata().resource_version.clone();
            let Some(mut desired) = change(current.clone())? else {
                return Ok(current);
            };
            if desired.key() != *key {
                return Err(Error::Invalid {
                    key: key.clone(),
                    field: "metadata.name",
                    value: desired.key().to_string(),
                    expected: "the object read: a guaranteed update cannot rename or move it",
                }
                .into());
            }
            desired.metadata_mut().resource_version = read_version;
            match self.write_one(op(desired)).await {
                Ok(outcome) => return Ok(outcome.into_object()),
                Err(err) if err.is_conflict() => {
                    tracing::debug!(key = %key, "conflict, reading again");
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// The objects whose `ownerReferences` name `owner_uid`, for the garbage collector.
    pub async fn dependents(&self, owner_uid: &str) -> Result<Vec<Object>> {
        let owner_uid = owner_uid.to_owned();
        self.blocking("dependents", move |core| core.dependents(&owner_uid))
            .await
    }

    /// Watches the objects `filter` selects from `start`; see [`crate::watch`].
    pub async fn watch(&self, filter: WatchFilter, start: WatchStart) -> Result<Watch> {
        let subscribe_filter = filter.clone();
        let (replay, receiver, revision) = self
            .blocking("watch", move |core| {
                core.subscribe(&subscribe_filter, start)
            })
            .await?;
        Ok(Watch::new(replay, receiver, filter, start, revision))
    }

    /// Drops the change log entries older than the retained ones (`Options::retained_events`).
    pub async fn compact(&self) -> Result<Compaction> {
        self.blocking("compact", Core::compact).await
    }

    /// Compacts the change log every `period`, forever: spawn it and abort it on shutdown.
    pub async fn run_compaction(&self, period: Duration) {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            match self.compact().await {
                Ok(Compaction { compacted, removed }) if removed > 0 => {
                    tracing::debug!(compacted, removed, "change log compacted");
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(?err, "change log compaction failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use berth_api::core_v1::{Pod, PodPhase, PodStatus};

    use super::*;
    use crate::{Outcome, StreamExt, watch::EventType};

    fn store() -> RedbStore {
        RedbStore::open_in_memory(Options::default()).unwrap()
    }

    fn pod(name: &str, grace: Option<i64>) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod.spec.termination_grace_period_seconds = grace;
        pod
    }

    /// Creates `pod` and, with `phase`, writes a status as the agent would.
    async fn create(store: &RedbStore, pod: Pod, phase: Option<PodPhase>) -> Object {
        let created = store.create(pod).await.unwrap();
        let Some(phase) = phase else {
            return created;
        };
        let Object::Pod(mut pod) = created else {
            unreachable!()
        };
        pod.status = Some(PodStatus {
            phase: Some(phase),
            ..PodStatus::default()
        });
        store.update_status(pod).await.unwrap()
    }

    fn grace_options(uid: Option<String>, grace: Option<i64>) -> DeleteOptions {
        DeleteOptions {
            preconditions: Preconditions {
                uid,
                resource_version: None,
            },
            grace_period_seconds: grace,
        }
    }

    #[tokio::test]
    async fn a_started_pod_terminates_gracefully_until_deleted_with_grace_zero() {
        let store = store();
        let running = create(&store, pod("web", Some(20)), Some(PodPhase::Running)).await;
        let key = running.key();
        let uid = running.metadata().uid.clone();
        let mut watch = store
            .watch(crate::WatchFilter::kind("Pod"), crate::WatchStart::Now)
            .await
            .unwrap();

        let outcome = store.delete(&key, Preconditions::default()).await.unwrap();
        let Outcome::Terminating(terminating) = outcome else {
            panic!("expected Terminating, got {outcome:?}");
        };
        let meta = terminating.metadata();
        assert_eq!(meta.deletion_grace_period_seconds, Some(20));
        let created_at = meta.creation_timestamp.unwrap().0;
        let deadline = meta.deletion_timestamp.unwrap().0;
        assert!(deadline >= created_at + jiff::SignedDuration::from_secs(20));
        assert_eq!(
            meta.generation,
            Some(2),
            "deletion starting bumps the generation"
        );
        let event = watch.next().await.unwrap().unwrap();
        assert_eq!(event.event_type, EventType::Modified);

        // Status writes during termination do not delete it.
        let Object::Pod(mut stopping) = store.get(&key).await.unwrap() else {
            unreachable!()
        };
        stopping.status.as_mut().unwrap().message = Some("stopping".into());
        store.update_status(stopping).await.unwrap();
        assert!(store.get(&key).await.is_ok());

        // A longer grace period changes nothing; a shorter one moves the deadline closer.
        let longer = store
            .delete_with(&key, grace_options(None, Some(60)))
            .await
            .unwrap();
        assert_eq!(
            longer.object().metadata().deletion_grace_period_seconds,
            Some(20)
        );
        let shorter = store
            .delete_with(&key, grace_options(None, Some(5)))
            .await
            .unwrap();
        let meta = shorter.object().metadata();
        assert_eq!(meta.deletion_grace_period_seconds, Some(5));
        assert!(meta.deletion_timestamp.unwrap().0 < deadline);
        assert_eq!(meta.generation, Some(2), "only the first delete bumps it");

        // The agent, done stopping it, deletes it for good (the same pod only).
        let wrong_uid = store
            .delete_with(&key, grace_options(Some("other".into()), Some(0)))
            .await
            .unwrap_err();
        assert!(matches!(wrong_uid, crate::Error::UidPrecondition { .. }));
        let gone = store
            .delete_with(&key, grace_options(uid, Some(0)))
            .await
            .unwrap();
        assert!(matches!(gone, Outcome::Deleted(_)));
        assert!(store.get(&key).await.unwrap_err().is_not_found());
    }

    #[tokio::test]
    async fn pods_not_started_terminal_or_forced_go_at_once() {
        let store = store();
        for (name, phase, grace) in [
            ("never-started", None, None),
            ("succeeded", Some(PodPhase::Succeeded), None),
            ("failed", Some(PodPhase::Failed), None),
            ("forced", Some(PodPhase::Running), Some(0)),
        ] {
            let created = create(&store, pod(name, None), phase).await;
            let outcome = store
                .delete_with(&created.key(), grace_options(None, grace))
                .await
                .unwrap();
            assert!(
                matches!(outcome, Outcome::Deleted(_)),
                "{name}: {outcome:?}"
            );
        }
        // Pending (containers being created) is started: graceful, with the default 30s.
        let pending = create(&store, pod("pending", None), Some(PodPhase::Pending)).await;
        let outcome = store
            .delete(&pending.key(), Preconditions::default())
            .await
            .unwrap();
        assert_eq!(
            outcome.object().metadata().deletion_grace_period_seconds,
            Some(crate::DEFAULT_GRACE_PERIOD_SECONDS)
        );
        let negative = store
            .delete_with(&pending.key(), grace_options(None, Some(-1)))
            .await
            .unwrap_err();
        assert!(
            negative.to_string().contains("gracePeriodSeconds"),
            "{negative}"
        );
    }

    #[tokio::test]
    async fn finalizers_still_hold_a_pod_after_its_grace_period() {
        let store = store();
        let mut held = pod("held", Some(10));
        held.metadata.finalizers = vec!["example.com/hold".into()];
        let running = create(&store, held, Some(PodPhase::Running)).await;
        let key = running.key();
        store.delete(&key, Preconditions::default()).await.unwrap();
        // Grace 0 with a finalizer left: it stays, with the grace cut to 0.
        let outcome = store
            .delete_with(&key, grace_options(None, Some(0)))
            .await
            .unwrap();
        let Outcome::Terminating(terminating) = outcome else {
            panic!("expected Terminating, got {outcome:?}");
        };
        assert_eq!(
            terminating.metadata().deletion_grace_period_seconds,
            Some(0)
        );
        let mut released = terminating;
        released.metadata_mut().finalizers.clear();
        let outcome = store.apply(released).await.unwrap();
        assert!(matches!(outcome, Outcome::Deleted(_)), "{outcome:?}");
    }
}
