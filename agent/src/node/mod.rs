//! The node loop (the kubelet's `syncLoop` over berth's store): one [`PodWorker`] per pod in the
//! store, their statuses and events written back, graceful deletion finished, ConfigMap and Secret
//! changes pushed into the volumes of the pods that mount them, and whatever an earlier agent left
//! in the runtime adopted or cleaned up.
//!
//! # The loop
//! [`Node::run`] lists the pods and watches from the list's resourceVersion (the list is the
//! watch's initial state, and a point to compare with: a pod the node runs that is not in a new
//! list was deleted while the watch was down). A watch that ends with `Gone` (410) is followed by
//! a new list and watch, as Kubernetes reflectors do. For each pod:
//!
//! ```text
//!   new pod ──────────────────────────────► worker (PodWorker::spawn / adopt)
//!   terminal phase, no worker ────────────► left as it is (nothing left to run)
//!   deletionTimestamp ──► worker.terminate(deletionGracePeriodSeconds) ──► delete (grace 0, uid)
//!   DELETED (went at once) ──► worker.terminate ──► forgotten
//! ```
//! Statuses and events go to the store through one publisher task per pod ([`publish`]).
//!
//! # Restarts of berth
//! The node can stop at any moment (its future dropped, the process killed) without stopping a
//! container: workers are abandoned, not terminated, and containers are detached from the agent.
//! On start, before it runs any pod, the node lists the runtime's containers and sandboxes by the
//! pod uid label ([`labels::POD_UID`]): a pod in the store that has some is adopted
//! ([`PodWorker::adopt`]); the containers and sandboxes of a pod that is gone (deleted while berth
//! was down) are stopped and deleted and its volumes removed. A pod that is terminating keeps
//! terminating: its leftovers are stopped with its grace period and it is deleted.
//!
//! Gaps: a second delete with a shorter grace period does not shorten a termination already
//! under way (the worker takes the first); events are not rate-limited beyond the correlation.

mod publish;
mod source;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use berth_api::{
    Object,
    core_v1::{Pod, PodPhase, PodStatus},
};
use berth_store::{
    DeleteOptions, EventType as WatchEventType, Preconditions, RedbStore, StreamExt, WatchFilter,
    WatchStart,
};
use tokio::{
    sync::{Semaphore, mpsc, watch},
    task::JoinSet,
};
use tracing::{Instrument, debug, info, info_span, warn};

pub use publish::COMPONENT;
pub use source::StoreConfigSource;

use crate::{
    pod::{PodStage, PodWorker, WorkerContext, worker::Adoption},
    runtime::{ContainerState, LabelFilter, RuntimeError, labels},
};

/// How the node runs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node's name: `source.host` and `reportingInstance` of its events.
    pub name: String,
    /// How many pods write their status or events at the same time.
    pub status_writers: usize,
    /// Grace period for the containers of pods deleted while berth was down.
    pub orphan_grace: Duration,
    /// Wait before listing or watching again after the store or the runtime failed.
    pub retry_after: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            name: "berth".into(),
            status_writers: 8,
            orphan_grace: crate::pod::worker::DEFAULT_GRACE,
            retry_after: Duration::from_secs(1),
        }
    }
}

/// Why a step of the node failed; logged where handled, then retried.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("listing pods in the store")]
    ListPods(#[source] berth_store::Error),
    #[error("watching {kind} objects in the store")]
    Watch {
        kind: &'static str,
        #[source]
        source: berth_store::Error,
    },
    #[error("listing the runtime's {what}")]
    Inventory {
        what: &'static str,
        #[source]
        source: RuntimeError,
    },
}

/// The kubelet-like loop over the store; see the module doc.
pub struct Node {
    store: RedbStore,
    ctx: WorkerContext,
    config: NodeConfig,
}

/// One pod the node knows. A terminated pod is forgotten once its termination has finished and
/// the store has reported it gone, so that late events about it start nothing.
struct Entry {
    pod: Pod,
    worker: Option<Arc<PodWorker>>,
    /// Termination (or clean-up) is under way.
    terminating: bool,
    /// Termination has finished.
    finished: bool,
    /// The store no longer has the pod.
    gone: bool,
}

impl Entry {
    fn new(pod: Pod, worker: Option<Arc<PodWorker>>, terminating: bool) -> Self {
        Self {
            pod,
            worker,
            terminating,
            finished: false,
            gone: false,
        }
    }
}

/// Every pod the node runs; abandons the workers when dropped (the node stopping), so that
/// their containers keep running for the next agent.
#[derive(Default)]
struct Pods(HashMap<String, Entry>);

impl Drop for Pods {
    fn drop(&mut self) {
        for entry in self.0.values() {
            if let Some(worker) = &entry.worker {
                worker.abandon();
            }
        }
    }
}

/// What the loop works with besides the pods.
struct State {
    pods: Pods,
    /// What an earlier agent left, by pod uid, until the pod is adopted or cleaned up.
    inventory: HashMap<String, Adoption>,
    /// Publishers, terminations and clean-ups; aborted when the node stops.
    tasks: JoinSet<()>,
    /// Uids whose termination has finished.
    done_tx: mpsc::UnboundedSender<String>,
    done: mpsc::UnboundedReceiver<String>,
    writers: Arc<Semaphore>,
}

impl Node {
    /// A node over `store` running pods with `ctx` (its runtime, prober, config source, volumes,
    /// clock and backoff).
    pub fn new(store: RedbStore, ctx: WorkerContext, config: NodeConfig) -> Self {
        Self { store, ctx, config }
    }

    /// Runs until `shutdown` completes (or the store closes). Stopping leaves every container
    /// running; dropping the future does the same.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let span = info_span!("node", node = %self.config.name);
        self.run_inner(shutdown).instrument(span).await;
    }

    async fn run_inner(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let (done_tx, done) = mpsc::unbounded_channel();
        let mut state = State {
            pods: Pods::default(),
            inventory: HashMap::new(),
            tasks: JoinSet::new(),
            done_tx,
            done,
            writers: Arc::new(Semaphore::new(self.config.status_writers.max(1))),
        };
        tokio::select! {
            () = &mut shutdown => return,
            () = self.take_inventory(&mut state) => {}
        }
        let mut first = true;
        loop {
            let closed = tokio::select! {
                () = &mut shutdown => return,
                closed = self.list_and_watch(&mut state, &mut first) => closed,
            };
            if closed {
                info!("the store closed; the node stops");
                return;
            }
        }
    }

    /// Lists the runtime's containers and sandboxes by pod uid (retried until it works: running
    /// pods without knowing what exists would start their containers twice).
    async fn take_inventory(&self, state: &mut State) {
        loop {
            match self.inventory().await {
                Ok(inventory) => {
                    info!(pods = inventory.len(), "found pods of an earlier agent");
                    state.inventory = inventory;
                    return;
                }
                Err(err) => {
                    warn!(error = %crate::error_chain(&err), "taking the runtime's inventory");
                    tokio::time::sleep(self.config.retry_after).await;
                }
            }
        }
    }

    async fn inventory(&self) -> Result<HashMap<String, Adoption>, NodeError> {
        let runtime = &self.ctx.runtime;
        let all = LabelFilter::default();
        let containers = runtime
            .list(&all)
            .await
            .map_err(|source| NodeError::Inventory {
                what: "containers",
                source,
            })?;
        let sandboxes =
            runtime
                .list_sandboxes(&all)
                .await
                .map_err(|source| NodeError::Inventory {
                    what: "sandboxes",
                    source,
                })?;
        let mut inventory: HashMap<String, Adoption> = HashMap::new();
        for container in containers {
            if let Some(uid) = container.labels.get(labels::POD_UID) {
                inventory
                    .entry(uid.clone())
                    .or_default()
                    .containers
                    .push(container);
            }
        }
        for sandbox in sandboxes {
            if let Some(uid) = sandbox.labels.get(labels::POD_UID) {
                inventory
                    .entry(uid.clone())
                    .or_default()
                    .sandboxes
                    .push(sandbox);
            }
        }
        Ok(inventory)
    }

    /// One list and the watch after it; `true` when the store has closed.
    async fn list_and_watch(&self, state: &mut State, first: &mut bool) -> bool {
        let (pods, mut pod_watch, mut config_maps, mut secrets) = match self.open().await {
            Ok(opened) => opened,
            Err(err) => {
                warn!(error = %crate::error_chain(&err), "listing and watching the store");
                tokio::time::sleep(self.config.retry_after).await;
                return false;
            }
        };
        self.sync(state, pods, std::mem::take(first));
        loop {
            tokio::select! {
                event = pod_watch.next() => match event {
                    None => return true,
                    Some(Err(err)) => {
                        debug!(error = %err, "pod watch ended; listing again");
                        return false;
                    }
                    Some(Ok(event)) => {
                        let Object::Pod(pod) = event.object else { continue };
                        if event.event_type == WatchEventType::Deleted {
                            self.deleted(state, pod);
                        } else {
                            self.observe(state, pod);
                        }
                    }
                },
                event = config_maps.next() => match event {
                    None => return true,
                    Some(Err(_)) => return false,
                    Some(Ok(event)) => self.config_changed(state, &event.object),
                },
                event = secrets.next() => match event {
                    None => return true,
                    Some(Err(_)) => return false,
                    Some(Ok(event)) => self.config_changed(state, &event.object),
                },
                Some(uid) = state.done.recv() => {
                    debug!(uid = %uid, "pod finished");
                    if let Some(entry) = state.pods.0.get_mut(&uid) {
                        entry.finished = true;
                        if entry.gone {
                            state.pods.0.remove(&uid);
                        }
                    }
                }
                Some(finished) = state.tasks.join_next(), if !state.tasks.is_empty() => {
                    if let Err(err) = finished
                        && err.is_panic()
                    {
                        warn!(error = %err, "a node task panicked");
                    }
                }
            }
        }
    }

    async fn open(
        &self,
    ) -> Result<
        (
            Vec<Pod>,
            berth_store::Watch,
            berth_store::Watch,
            berth_store::Watch,
        ),
        NodeError,
    > {
        let watch = |kind: &'static str, start| async move {
            self.store
                .watch(WatchFilter::kind(kind), start)
                .await
                .map_err(|source| NodeError::Watch { kind, source })
        };
        // ConfigMaps and Secrets from now: the pods' volumes are fresh when they are prepared.
        let config_maps = watch("ConfigMap", WatchStart::Now).await?;
        let secrets = watch("Secret", WatchStart::Now).await?;
        let list = self
            .store
            .list_as::<Pod>(None, None)
            .await
            .map_err(NodeError::ListPods)?;
        let pods = watch("Pod", WatchStart::After(list.resource_version)).await?;
        Ok((list.items, pods, config_maps, secrets))
    }

    /// Brings the node in line with a fresh list: pods no longer listed were deleted; after the
    /// first list, what an earlier agent left of pods that are gone is cleaned up.
    fn sync(&self, state: &mut State, pods: Vec<Pod>, first: bool) {
        let listed: HashSet<String> = pods.iter().filter_map(|p| p.metadata.uid.clone()).collect();
        let vanished: Vec<Pod> = state
            .pods
            .0
            .iter()
            .filter(|(uid, _)| !listed.contains(*uid))
            .map(|(_, entry)| entry.pod.clone())
            .collect();
        for pod in vanished {
            self.deleted(state, pod);
        }
        for pod in pods {
            self.observe(state, pod);
        }
        if first {
            let orphans: Vec<String> = state
                .inventory
                .keys()
                .filter(|uid| !listed.contains(*uid))
                .cloned()
                .collect();
            for uid in orphans {
                info!(uid = %uid, "cleaning up the containers of a pod deleted while berth was down");
                self.clean_up(state, uid, self.config.orphan_grace, None);
            }
        }
    }

    /// A pod was added or changed.
    fn observe(&self, state: &mut State, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let deleting = pod.metadata.deletion_timestamp.is_some();
        let grace = grace_of(&pod);
        if let Some(entry) = state.pods.0.get_mut(&uid) {
            entry.pod = pod.clone();
            if deleting && !entry.terminating {
                entry.terminating = true;
                if let Some(worker) = entry.worker.clone() {
                    let store = self.store.clone();
                    let done = state.done_tx.clone();
                    let span = pod_span(&pod);
                    state.tasks.spawn(
                        async move {
                            info!(grace = ?grace, "pod deleted: terminating it");
                            worker.terminate(grace).await;
                            finish_deletion(&store, &pod).await;
                            let _ = done.send(uid);
                        }
                        .instrument(span),
                    );
                }
            }
            return;
        }
        if deleting {
            // Nothing of it runs here (it was left by an earlier agent, or never started).
            state
                .pods
                .0
                .insert(uid.clone(), Entry::new(pod.clone(), None, true));
            let grace = grace.unwrap_or(self.config.orphan_grace);
            self.clean_up(state, uid, grace, Some(pod));
            return;
        }
        let terminal = pod
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .is_some_and(|phase| matches!(phase, PodPhase::Succeeded | PodPhase::Failed));
        let leftovers = state.inventory.get(&uid);
        let still_running = leftovers.is_some_and(|found| {
            found
                .containers
                .iter()
                .any(|c| !matches!(c.state, ContainerState::Exited(_)))
        });
        if terminal && !still_running {
            debug!(pod = %pod.metadata.name(), "terminal pod: nothing to run");
            return;
        }
        self.start(state, uid, pod);
    }

    /// Starts (or adopts) the worker of a pod.
    fn start(&self, state: &mut State, uid: String, pod: Pod) {
        let (status_tx, status_rx) = watch::channel(PodStatus::default());
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let worker = match state.inventory.remove(&uid) {
            Some(mut adoption) => {
                adoption.status = pod.status.clone();
                info!(
                    pod = %pod.metadata.name(),
                    uid = %uid,
                    containers = adoption.containers.len(),
                    "adopting the pod"
                );
                PodWorker::adopt(
                    pod.clone(),
                    self.ctx.clone(),
                    status_tx,
                    events_tx,
                    adoption,
                )
            }
            None => PodWorker::spawn(pod.clone(), self.ctx.clone(), status_tx, events_tx),
        };
        let reference = publish::PodRef::of(&pod, &self.config.name);
        state.tasks.spawn(publish::publish(
            self.store.clone(),
            reference,
            status_rx,
            events_rx,
            state.writers.clone(),
        ));
        state
            .pods
            .0
            .insert(uid, Entry::new(pod, Some(Arc::new(worker)), false));
    }

    /// A pod is gone from the store (deleted at once, or while the watch was down).
    fn deleted(&self, state: &mut State, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let grace = grace_of(&pod);
        match state.pods.0.get_mut(&uid) {
            Some(entry) if !entry.terminating => {
                entry.terminating = true;
                entry.gone = true;
                if let Some(worker) = entry.worker.clone() {
                    let done = state.done_tx.clone();
                    let span = pod_span(&pod);
                    state.tasks.spawn(
                        async move {
                            info!("pod deleted: terminating it");
                            worker.terminate(grace).await;
                            let _ = done.send(uid);
                        }
                        .instrument(span),
                    );
                }
            }
            // Already terminating: forgotten once its termination has finished.
            Some(entry) => {
                entry.gone = true;
                if entry.finished {
                    state.pods.0.remove(&uid);
                }
            }
            None => {
                if state.inventory.contains_key(&uid) {
                    let grace = grace.unwrap_or(self.config.orphan_grace);
                    self.clean_up(state, uid, grace, None);
                }
            }
        }
    }

    /// Stops and deletes whatever the runtime has of pod `uid`, removes its volumes and, when
    /// `pod` is given, deletes it from the store.
    fn clean_up(&self, state: &mut State, uid: String, grace: Duration, pod: Option<Pod>) {
        state.inventory.remove(&uid);
        let ctx = self.ctx.clone();
        let store = self.store.clone();
        let done = state.done_tx.clone();
        let span = info_span!("pod", uid = %uid);
        state.tasks.spawn(
            async move {
                clean_up(&ctx, &uid, grace).await;
                if let Some(pod) = pod {
                    finish_deletion(&store, &pod).await;
                    let _ = done.send(uid);
                }
            }
            .instrument(span),
        );
    }

    /// A ConfigMap or Secret changed: refresh the volumes of the running pods that mount it.
    fn config_changed(&self, state: &mut State, object: &Object) {
        let (namespace, name) = (
            object
                .metadata()
                .namespace
                .clone()
                .unwrap_or_else(|| berth_api::DEFAULT_NAMESPACE.to_owned()),
            object.name().to_owned(),
        );
        let is_secret = matches!(object, Object::Secret(_));
        for entry in state.pods.0.values() {
            let Some(worker) = &entry.worker else {
                continue;
            };
            if entry.terminating
                || matches!(worker.stage(), PodStage::Terminating | PodStage::Terminated)
            {
                continue;
            }
            let pod = &entry.pod;
            let pod_namespace = pod
                .metadata
                .namespace
                .as_deref()
                .unwrap_or(berth_api::DEFAULT_NAMESPACE);
            if pod_namespace != namespace {
                continue;
            }
            let mounts = pod.spec.volumes.iter().any(|volume| {
                if is_secret {
                    volume
                        .secret
                        .as_ref()
                        .and_then(|s| s.secret_name.as_deref())
                        == Some(name.as_str())
                } else {
                    volume.config_map.as_ref().map(|c| c.name.as_str()) == Some(name.as_str())
                }
            });
            if !mounts {
                continue;
            }
            let ctx = self.ctx.clone();
            let pod = pod.clone();
            let span = pod_span(&pod);
            let name = name.clone();
            state.tasks.spawn(
                async move {
                    debug!(source = %name, "refreshing volumes");
                    if let Err(err) = ctx.volumes.refresh(&pod, ctx.config.as_ref()).await {
                        warn!(error = %crate::error_chain(&err), "refreshing the pod's volumes");
                    }
                }
                .instrument(span),
            );
        }
    }
}

fn pod_span(pod: &Pod) -> tracing::Span {
    info_span!(
        "pod",
        pod = %format!(
            "{}/{}",
            pod.metadata.namespace.as_deref().unwrap_or(berth_api::DEFAULT_NAMESPACE),
            pod.metadata.name()
        ),
        uid = %pod.metadata.uid.as_deref().unwrap_or_default(),
    )
}

/// The grace period the deletion of `pod` asked for.
fn grace_of(pod: &Pod) -> Option<Duration> {
    pod.metadata
        .deletion_grace_period_seconds
        .and_then(|seconds| u64::try_from(seconds).ok())
        .map(Duration::from_secs)
}

/// Deletes a pod whose termination is over (grace 0; the same pod only).
async fn finish_deletion(store: &RedbStore, pod: &Pod) {
    let key = Object::from(pod.clone()).key();
    let options = DeleteOptions {
        preconditions: Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        },
        grace_period_seconds: Some(0),
    };
    match store.delete_with(&key, options).await {
        Ok(_) => info!(pod = %key, "pod deleted"),
        Err(err) if err.is_not_found() => {}
        Err(berth_store::Error::UidPrecondition { .. }) => {}
        Err(err) => {
            warn!(pod = %key, error = %crate::error_chain(&err), "deleting the terminated pod")
        }
    }
}

/// Stops (within `grace`) and deletes every container and sandbox of pod `uid`, and removes its
/// volumes.
async fn clean_up(ctx: &WorkerContext, uid: &str, grace: Duration) {
    let filter = LabelFilter::new([(labels::POD_UID, uid)]);
    let runtime = &ctx.runtime;
    match runtime.list(&filter).await {
        Ok(containers) => {
            for container in containers {
                if !matches!(container.state, ContainerState::Exited(_))
                    && let Err(err) = runtime.stop(&container.id, grace, None).await
                {
                    warn!(container = %container.id, error = %crate::error_chain(&err), "stopping a container");
                }
                if let Err(err) = runtime.delete(&container.id).await {
                    warn!(container = %container.id, error = %crate::error_chain(&err), "deleting a container");
                }
            }
        }
        Err(err) => warn!(error = %crate::error_chain(&err), "listing the pod's containers"),
    }
    match runtime.list_sandboxes(&filter).await {
        Ok(sandboxes) => {
            for sandbox in sandboxes {
                if let Err(err) = runtime.delete_sandbox(&sandbox.id).await {
                    warn!(sandbox = %sandbox.id, error = %crate::error_chain(&err), "deleting a sandbox");
                }
            }
        }
        Err(err) => warn!(error = %crate::error_chain(&err), "listing the pod's sandboxes"),
    }
    if let Err(err) = ctx.volumes.remove(uid).await {
        warn!(error = %crate::error_chain(&err), "removing the pod's volumes");
    }
}

#[cfg(test)]
mod tests;
