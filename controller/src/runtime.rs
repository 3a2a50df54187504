//! The controller runtime: watch the store, map changes to object keys, and reconcile each key
//! from a de-duplicating work queue, as kube-runtime's `Controller` does.
//!
//! - **Triggers.** One watch of every kind, started with [`WatchStart::InitialState`] so that
//!   every existing object is reconciled once at startup, and restarted the same way (a relist)
//!   when the store answers `Gone`. Each event goes through the controller's mappers: its own
//!   kind's events name the object; [`Controller::owns`] maps a dependent's events to its
//!   controlling owner (a Pod to its ReplicaSet, a ReplicaSet to its Deployment);
//!   [`Controller::watches`] takes any other mapping.
//! - **Queue.** A key is queued at most once; a key is never reconciled twice at the same time:
//!   a trigger that arrives while it runs makes it run once more afterwards.
//! - **Requeue.** The reconciler's [`Action`] (or, on error, its `error_policy`'s) says whether
//!   to wait for the next change, run again after a delay, or back off exponentially per key.
//!   Timers use tokio's clock, so tests with paused time drive them.
//!
//! - **Metrics.** A controller given an [`Observer`] ([`Controller::observed_by`]) reports the
//!   duration and failure of every reconcile and its queue's depth on every add and pop, under
//!   its metrics label ([`Controller::labelled`]; by default its kind). The observer is a trait
//!   so that this crate does not depend on a metrics library: the daemon passes berth-metrics'
//!   `DaemonMetrics`.
//!
//! Reconcilers are never told why they run: a key whose object is gone is simply dropped, and
//! the next reconcile starts from whatever the store holds.

use std::{
    collections::{BTreeSet, HashMap, HashSet, VecDeque},
    future::Future,
    pin::Pin,
    sync::Arc,
    time::Duration,
};

use berth_api::{
    LabelSelector, Object, ObjectKey, Resource,
    apps_v1::{Deployment, ReplicaSet},
    core_v1::{Pod, Service},
};
use berth_store::{EventType, RedbStore, StreamExt, Watch, WatchEvent, WatchFilter, WatchStart};
use serde::de::DeserializeOwned;
use tokio::{task::JoinSet, time::Instant};

/// What to do with a key after a reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    requeue: Requeue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Requeue {
    Never,
    After(Duration),
    Backoff,
}

impl Action {
    /// Run again only when something the controller watches changes.
    pub fn await_change() -> Self {
        Self {
            requeue: Requeue::Never,
        }
    }

    /// Run again after `after` (or earlier, on a change).
    pub fn requeue(after: Duration) -> Self {
        Self {
            requeue: Requeue::After(after),
        }
    }

    /// Run again after a per-key delay that doubles with every consecutive failure
    /// ([`Backoff`]); what an `error_policy` usually answers.
    pub fn backoff() -> Self {
        Self {
            requeue: Requeue::Backoff,
        }
    }

    /// The delay of [`Action::requeue`], if any.
    pub fn requeue_after(&self) -> Option<Duration> {
        match self.requeue {
            Requeue::After(after) => Some(after),
            Requeue::Never | Requeue::Backoff => None,
        }
    }

    /// The earlier of two actions: the one that runs again first.
    pub fn min(self, other: Self) -> Self {
        match (self.requeue, other.requeue) {
            (Requeue::Never, _) => other,
            (_, Requeue::Never) => self,
            (Requeue::After(a), Requeue::After(b)) => Self::requeue(a.min(b)),
            (Requeue::Backoff, _) | (_, Requeue::Backoff) => Self::backoff(),
        }
    }
}

/// Exponential backoff of failing keys: `initial`, doubling per consecutive failure, up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The delay after `failures` consecutive failures (1 for the first).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.initial.saturating_mul(1 << doublings).min(self.max)
    }
}

/// What a controller's work loop reports, for metrics. `kind` is the controller's label
/// ([`Controller::labelled`]): a small fixed set, never an object's name.
pub trait Observer: Send + Sync + std::fmt::Debug + 'static {
    /// One reconcile (reading the object included) took `took`; `failed` if it returned an
    /// error (observed before the error policy runs).
    fn reconciled(&self, kind: &'static str, took: Duration, failed: bool);

    /// The number of keys waiting in the work queue (ready or timed), after an add or a pop.
    fn queue_depth(&self, kind: &'static str, depth: usize);
}

/// A kind a controller reconciles, read from the store as an [`Object`].
pub trait Reconciled: Send + Sync + Sized + 'static {
    /// The kind whose events enqueue their own key; `None` for a controller of every kind (the
    /// garbage collector) that is triggered by its mappers only.
    const KIND: Option<&'static str>;

    fn from_object(object: Object) -> Option<Self>;
}

impl Reconciled for Object {
    const KIND: Option<&'static str> = None;
    fn from_object(object: Object) -> Option<Self> {
        Some(object)
    }
}

macro_rules! reconciled {
    ($ty:ident) => {
        impl Reconciled for $ty {
            const KIND: Option<&'static str> = Some(<$ty as Resource>::KIND);
            fn from_object(object: Object) -> Option<Self> {
                match object {
                    Object::$ty(inner) => Some(inner),
                    _ => None,
                }
            }
        }
    };
}
reconciled!(Deployment);
reconciled!(ReplicaSet);
reconciled!(Pod);
reconciled!(Service);

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Mapper = Box<dyn Fn(WatchEvent) -> BoxFuture<Vec<ObjectKey>> + Send + Sync>;

/// Watches the store and reconciles objects of kind `K`; see the module documentation.
pub struct Controller<K> {
    store: RedbStore,
    mappers: Vec<Mapper>,
    backoff: Backoff,
    observer: Option<Arc<dyn Observer>>,
    label: &'static str,
    _kind: std::marker::PhantomData<fn() -> K>,
}

impl<K: Reconciled> Controller<K> {
    /// A controller of `K`: every change of an object of kind `K` enqueues its key.
    pub fn new(store: RedbStore) -> Self {
        let mut controller = Self {
            store,
            mappers: Vec::new(),
            backoff: Backoff::default(),
            observer: None,
            label: K::KIND.unwrap_or("Object"),
            _kind: std::marker::PhantomData,
        };
        if let Some(kind) = K::KIND {
            controller = controller.watches(move |event: WatchEvent| async move {
                if event.object.kind() == kind {
                    vec![event.object.key()]
                } else {
                    Vec::new()
                }
            });
        }
        controller
    }

    /// Also reconcile the controlling owner (of kind `K`) of any `kind` object that changes.
    pub fn owns(self, kind: &'static str) -> Self {
        let owner_kind = K::KIND;
        self.watches(move |event: WatchEvent| async move {
            if event.object.kind() != kind {
                return Vec::new();
            }
            owner_kind
                .and_then(|owner_kind| controller_key(&event.object, owner_kind))
                .into_iter()
                .collect()
        })
    }

    /// Also reconcile, for every change of an orphan `kind` object (one without a controlling
    /// owner), the objects of kind `K` in its namespace whose selector matches its labels: they
    /// may adopt it (Kubernetes' `getPodReplicaSets`, `getDeploymentsForReplicaSet`).
    pub fn adopts(self, kind: &'static str, selector_of: fn(&K) -> Option<&LabelSelector>) -> Self
    where
        K: Resource + DeserializeOwned,
    {
        let store = self.store.clone();
        self.watches(move |event: WatchEvent| {
            let store = store.clone();
            async move {
                let object = &event.object;
                if object.kind() != kind
                    || event.event_type == EventType::Deleted
                    || object
                        .metadata()
                        .owner_references
                        .iter()
                        .any(|r| r.controller == Some(true))
                {
                    return Vec::new();
                }
                let namespace = object.metadata().namespace.as_deref();
                let owners = match store.list_as::<K>(namespace, None).await {
                    Ok(list) => list.items,
                    Err(err) => {
                        tracing::warn!(
                            ?err,
                            kind = <K as Resource>::KIND,
                            "cannot list possible owners"
                        );
                        return Vec::new();
                    }
                };
                owners
                    .into_iter()
                    .filter(|owner| {
                        selector_of(owner)
                            .is_some_and(|s| !s.is_empty() && s.matches(&object.metadata().labels))
                    })
                    .map(|owner| {
                        berth_store::key_of::<K>(
                            owner.metadata().namespace.as_deref(),
                            owner.metadata().name(),
                        )
                    })
                    .collect()
            }
        })
    }

    /// Also reconcile the keys `mapper` names for each change.
    pub fn watches<F, Fut>(mut self, mapper: F) -> Self
    where
        F: Fn(WatchEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<ObjectKey>> + Send + 'static,
    {
        self.mappers
            .push(Box::new(move |event| Box::pin(mapper(event))));
        self
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Reports reconciles and queue depth to `observer` (see the module documentation).
    pub fn observed_by(mut self, observer: Option<Arc<dyn Observer>>) -> Self {
        self.observer = observer;
        self
    }

    /// The `kind` label this controller's metrics carry: by default the kind it reconciles
    /// (`Object` for a controller of every kind); two controllers of one kind need two labels.
    pub fn labelled(mut self, label: &'static str) -> Self {
        self.label = label;
        self
    }

    fn report_depth(&self, queue: &Queue) {
        if let Some(observer) = &self.observer {
            observer.queue_depth(self.label, queue.depth());
        }
    }

    /// Runs until the store's change feed closes, which does not happen while the controller
    /// holds its handle: spawn it and abort the task to stop it.
    pub async fn run<C, E, R, RFut, P>(self, reconcile: R, error_policy: P, ctx: Arc<C>)
    where
        C: Send + Sync + 'static,
        E: std::error::Error + Send + Sync + 'static,
        R: Fn(Arc<K>, Arc<C>) -> RFut + Send + Sync + 'static,
        RFut: Future<Output = Result<Action, E>> + Send + 'static,
        P: Fn(Arc<K>, &E, Arc<C>) -> Action + Send + Sync + 'static,
    {
        let reconcile = Arc::new(reconcile);
        let error_policy = Arc::new(error_policy);
        let mut queue = Queue::default();
        let mut failures: HashMap<ObjectKey, u32> = HashMap::new();
        let mut running: JoinSet<Result<Action, Action>> = JoinSet::new();
        let mut tasks: HashMap<tokio::task::Id, ObjectKey> = HashMap::new();
        let mut watch: Option<Watch> = None;
        let mut watch_failures = 0;
        loop {
            if watch.is_none() {
                match self
                    .store
                    .watch(WatchFilter::all(), WatchStart::InitialState)
                    .await
                {
                    Ok(started) => {
                        watch = Some(started);
                        watch_failures = 0;
                    }
                    Err(err) => {
                        watch_failures += 1;
                        tracing::warn!(?err, "cannot watch the store, retrying");
                        tokio::time::sleep(self.backoff.delay(watch_failures)).await;
                        continue;
                    }
                }
            }
            while let Some(key) = queue.pop() {
                self.report_depth(&queue);
                let (store, reconcile, error_policy, ctx) = (
                    self.store.clone(),
                    Arc::clone(&reconcile),
                    Arc::clone(&error_policy),
                    Arc::clone(&ctx),
                );
                let (observer, label) = (self.observer.clone(), self.label);
                let task_key = key.clone();
                let task = running.spawn(async move {
                    let began = Instant::now();
                    let outcome = run_one::<K, C, E, _, _, _>(
                        &store,
                        &task_key,
                        &*reconcile,
                        &*error_policy,
                        ctx,
                    )
                    .await;
                    if let Some(observer) = observer {
                        observer.reconciled(label, began.elapsed(), outcome.is_err());
                    }
                    outcome
                });
                tasks.insert(task.id(), key);
            }
            let deadline = queue.next_deadline();
            let Some(current) = watch.as_mut() else {
                continue;
            };
            tokio::select! {
                event = current.next() => match event {
                    Some(Ok(event)) => {
                        for mapper in &self.mappers {
                            for key in mapper(event.clone()).await {
                                queue.add(key);
                            }
                        }
                        self.report_depth(&queue);
                    }
                    Some(Err(err)) => {
                        tracing::debug!(?err, "watch interrupted, relisting");
                        watch = None;
                    }
                    None => {
                        tracing::debug!("store closed, controller stopping");
                        return;
                    }
                },
                Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                    let (id, outcome) = match done {
                        Ok((id, outcome)) => (id, outcome),
                        Err(err) => {
                            // A reconcile that panics is retried like one that fails.
                            tracing::error!(?err, "reconcile panicked");
                            (err.id(), Err(Action::backoff()))
                        }
                    };
                    let Some(key) = tasks.remove(&id) else {
                        continue;
                    };
                    let action = match outcome {
                        Ok(action) => {
                            failures.remove(&key);
                            action
                        }
                        Err(action) => action,
                    };
                    let requeue_at = match action.requeue {
                        Requeue::Never => None,
                        Requeue::After(after) => Some(Instant::now() + after),
                        Requeue::Backoff => {
                            let count = failures.entry(key.clone()).or_default();
                            *count += 1;
                            Some(Instant::now() + self.backoff.delay(*count))
                        }
                    };
                    queue.done(&key, requeue_at);
                    self.report_depth(&queue);
                }
                () = sleep_until(deadline), if deadline.is_some() => {
                    queue.fire_due(Instant::now());
                    self.report_depth(&queue);
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline).await;
    }
}

/// Reads the object and reconciles it: `Ok(action)` on success, `Err(action)` (the error
/// policy's) on failure.
async fn run_one<K, C, E, R, RFut, P>(
    store: &RedbStore,
    key: &ObjectKey,
    reconcile: &R,
    error_policy: &P,
    ctx: Arc<C>,
) -> Result<Action, Action>
where
    K: Reconciled,
    E: std::error::Error + Send + Sync + 'static,
    R: Fn(Arc<K>, Arc<C>) -> RFut,
    RFut: Future<Output = Result<Action, E>>,
    P: Fn(Arc<K>, &E, Arc<C>) -> Action,
{
    let object = match store.get(key).await {
        Ok(object) => object,
        Err(err) if err.is_not_found() => return Ok(Action::await_change()),
        Err(err) => {
            tracing::warn!(key = %key, ?err, "cannot read the object to reconcile");
            return Err(Action::backoff());
        }
    };
    let Some(object) = K::from_object(object).map(Arc::new) else {
        return Ok(Action::await_change());
    };
    match reconcile(Arc::clone(&object), Arc::clone(&ctx)).await {
        Ok(action) => Ok(action),
        Err(err) => {
            tracing::warn!(key = %key, error = %err, "reconcile failed");
            Err(error_policy(object, &err, ctx))
        }
    }
}

/// The key of `object`'s controlling owner if it is of kind `owner_kind`.
pub fn controller_key(object: &Object, owner_kind: &str) -> Option<ObjectKey> {
    let owner = object
        .metadata()
        .owner_references
        .iter()
        .find(|r| r.controller == Some(true))?;
    let info = berth_api::object::find_kind(owner_kind)?;
    (owner.kind == info.kind).then(|| ObjectKey {
        kind: info.kind,
        namespace: info
            .namespaced
            .then(|| object.metadata().namespace.clone())
            .flatten(),
        name: owner.name.clone(),
    })
}

/// The work queue: ready keys in order, without duplicates; keys being reconciled; and timers.
#[derive(Debug, Default)]
struct Queue {
    ready: VecDeque<ObjectKey>,
    queued: HashSet<ObjectKey>,
    running: HashSet<ObjectKey>,
    /// Keys triggered while they were running: they run again when done.
    rerun: HashSet<ObjectKey>,
    timers: BTreeSet<(Instant, ObjectKey)>,
    due: HashMap<ObjectKey, Instant>,
}

impl Queue {
    /// Queues `key` to run as soon as possible (once, however often it is added).
    fn add(&mut self, key: ObjectKey) {
        if let Some(at) = self.due.remove(&key) {
            self.timers.remove(&(at, key.clone()));
        }
        if self.running.contains(&key) {
            self.rerun.insert(key);
        } else if self.queued.insert(key.clone()) {
            self.ready.push_back(key);
        }
    }

    /// Queues `key` to run at `at`, unless it is already due earlier.
    fn schedule(&mut self, key: ObjectKey, at: Instant) {
        if self.queued.contains(&key) || self.rerun.contains(&key) {
            return;
        }
        if let Some(&existing) = self.due.get(&key) {
            if existing <= at {
                return;
            }
            self.timers.remove(&(existing, key.clone()));
        }
        self.due.insert(key.clone(), at);
        self.timers.insert((at, key));
    }

    /// The next key to run, now marked running.
    fn pop(&mut self) -> Option<ObjectKey> {
        let key = self.ready.pop_front()?;
        self.queued.remove(&key);
        self.running.insert(key.clone());
        Some(key)
    }

    /// `key` finished; it runs again now if triggered meanwhile, else at `requeue_at`.
    fn done(&mut self, key: &ObjectKey, requeue_at: Option<Instant>) {
        self.running.remove(key);
        if self.rerun.remove(key) {
            self.add(key.clone());
        } else if let Some(at) = requeue_at {
            self.schedule(key.clone(), at);
        }
    }

    /// Keys waiting to run: ready now, or on a timer (running keys are not waiting).
    fn depth(&self) -> usize {
        self.ready.len() + self.timers.len()
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// Moves every key whose timer is due at `now` to the ready queue.
    fn fire_due(&mut self, now: Instant) {
        while let Some((at, key)) = self.timers.first().cloned() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            self.due.remove(&key);
            self.add(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ObjectKey {
        ObjectKey {
            kind: "Deployment",
            namespace: Some("default".into()),
            name: name.into(),
        }
    }

    #[test]
    fn queue_deduplicates_and_keeps_order() {
        let mut queue = Queue::default();
        queue.add(key("a"));
        queue.add(key("b"));
        queue.add(key("a"));
        assert_eq!(queue.pop(), Some(key("a")));
        assert_eq!(queue.pop(), Some(key("b")));
        assert_eq!(queue.pop(), None);
    }

    #[test]
    fn a_running_key_is_not_popped_again_but_reruns_after() {
        let mut queue = Queue::default();
        queue.add(key("a"));
        assert_eq!(queue.pop(), Some(key("a")));
        queue.add(key("a"));
        queue.add(key("a"));
        assert_eq!(queue.pop(), None, "a is running");
        queue.done(&key("a"), None);
        assert_eq!(queue.pop(), Some(key("a")));
        queue.done(&key("a"), None);
        assert_eq!(queue.pop(), None, "one rerun for many triggers");
    }

    #[tokio::test(start_paused = true)]
    async fn timers_fire_at_their_deadline_and_keep_the_earliest() {
        let mut queue = Queue::default();
        let now = Instant::now();
        queue.add(key("a"));
        assert_eq!(queue.pop(), Some(key("a")));
        queue.done(&key("a"), Some(now + Duration::from_secs(10)));
        queue.schedule(key("a"), now + Duration::from_secs(5));
        queue.schedule(key("a"), now + Duration::from_secs(7));
        assert_eq!(queue.next_deadline(), Some(now + Duration::from_secs(5)));
        queue.fire_due(now + Duration::from_secs(4));
        assert_eq!(queue.pop(), None);
        queue.fire_due(now + Duration::from_secs(5));
        assert_eq!(queue.pop(), Some(key("a")));
        assert_eq!(queue.next_deadline(), None);
    }

    #[test]
    fn an_immediate_trigger_replaces_a_timer() {
        let mut queue = Queue::default();
        queue.schedule(key("a"), Instant::now() + Duration::from_secs(60));
        queue.add(key("a"));
        assert_eq!(queue.next_deadline(), None);
        assert_eq!(queue.pop(), Some(key("a")));
    }

    #[derive(Debug, Default)]
    struct Recording {
        reconciles: std::sync::Mutex<Vec<(&'static str, bool)>>,
        depths: std::sync::Mutex<Vec<(&'static str, usize)>>,
    }

    impl Observer for Recording {
        fn reconciled(&self, kind: &'static str, _took: Duration, failed: bool) {
            self.reconciles.lock().unwrap().push((kind, failed));
        }
        fn queue_depth(&self, kind: &'static str, depth: usize) {
            self.depths.lock().unwrap().push((kind, depth));
        }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("deployment {0} refused")]
    struct Refused(String);

    #[tokio::test]
    async fn reports_each_reconcile_its_failure_and_the_queue_depth() {
        let store =
            berth_store::RedbStore::open_in_memory(berth_store::Options::default()).unwrap();
        for name in ["good", "bad"] {
            store
                .create(berth_api::testing::deployment(name).build())
                .await
                .unwrap();
        }
        let recording = Arc::new(Recording::default());
        let controller = Controller::<Deployment>::new(store.clone())
            .labelled("Deployments")
            .observed_by(Some(Arc::clone(&recording) as Arc<dyn Observer>));
        let task = tokio::spawn(controller.run(
            |d: Arc<Deployment>, _: Arc<()>| async move {
                match d.metadata.name() {
                    "bad" => Err(Refused(d.metadata.name().to_owned())),
                    _ => Ok(Action::await_change()),
                }
            },
            |_, _, _| Action::await_change(),
            Arc::new(()),
        ));
        for _ in 0..500 {
            let reconciled = recording.reconciles.lock().unwrap().len();
            let idle = recording.depths.lock().unwrap().last().map(|d| d.1) == Some(0);
            if reconciled >= 2 && idle {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        task.abort();
        let mut reconciles = recording.reconciles.lock().unwrap().clone();
        reconciles.sort();
        assert_eq!(
            reconciles,
            [("Deployments", false), ("Deployments", true)],
            "one success (good) and one failure (bad)"
        );
        let depths = recording.depths.lock().unwrap().clone();
        assert!(depths.iter().all(|(kind, _)| *kind == "Deployments"));
        assert!(depths.iter().any(|&(_, depth)| depth >= 1), "{depths:?}");
        assert_eq!(depths.last().map(|d| d.1), Some(0), "{depths:?}");
    }

    #[test]
    fn depth_counts_ready_and_timed_keys_not_running_ones() {
        let mut queue = Queue::default();
        queue.add(key("a"));
        queue.add(key("b"));
        assert_eq!(queue.depth(), 2);
        assert_eq!(queue.pop(), Some(key("a")));
        assert_eq!(queue.depth(), 1);
        queue.done(&key("a"), Some(Instant::now() + Duration::from_secs(5)));
        assert_eq!(queue.depth(), 2);
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        assert_eq!(backoff.delay(1), Duration::from_millis(100));
        assert_eq!(backoff.delay(2), Duration::from_millis(200));
        assert_eq!(backoff.delay(4), Duration::from_millis(800));
        assert_eq!(backoff.delay(5), Duration::from_secs(1));
        assert_eq!(backoff.delay(100), Duration::from_secs(1));
    }

    #[test]
    fn actions_combine_to_the_earliest() {
        let soon = Action::requeue(Duration::from_secs(1));
        let later = Action::requeue(Duration::from_secs(9));
        assert_eq!(soon.min(later), soon);
        assert_eq!(Action::await_change().min(later), later);
        assert_eq!(later.min(Action::await_change()), later);
        assert_eq!(soon.requeue_after(), Some(Duration::from_secs(1)));
    }

    #[test]
    fn controller_key_follows_the_controlling_owner_only() {
        let mut rs = berth_api::testing::replica_set("web-abc", 1);
        rs.metadata.namespace = Some("team".into());
        rs.metadata.owner_references = vec![berth_api::meta::OwnerReference {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "web".into(),
            uid: "u1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }];
        let object = Object::from(rs.clone());
        assert_eq!(
            controller_key(&object, "Deployment"),
            Some(ObjectKey {
                kind: "Deployment",
                namespace: Some("team".into()),
                name: "web".into()
            })
        );
        assert_eq!(controller_key(&object, "ReplicaSet"), None);
        rs.metadata.owner_references[0].controller = None;
        assert_eq!(controller_key(&Object::from(rs), "Deployment"), None);
    }
}
