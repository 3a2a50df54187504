//! Workload state as kube-state-metrics exposes it: `kube_deployment_*`, `kube_replicaset_*`,
//! `kube_pod_*`, with its metric names, HELP texts and labels, so that existing dashboards and
//! alerts (kubernetes-mixin's `KubePodCrashLooping`, `KubeDeploymentReplicasMismatch`, ...) work
//! unchanged against berth.
//!
//! # Data flow
//! ```text
//! RedbStore --list + watch--> StateMetrics::run --> cache (Deployments, ReplicaSets, Pods)
//!                                                       |
//!                         GET /metrics --> collect() ---+--> families built fresh
//! ```
//! [`StateMetrics::run`] keeps an in-memory copy of the three kinds, one reflector per kind as
//! client-go's: list, replace that kind's part of the cache, then watch from the list's
//! resourceVersion. When the watch ends with `Gone` (410: the watcher lagged or the change log was
//! compacted) it relists. A relist *replaces* the kind's cache, so an object deleted while the
//! watch was down disappears too; re-watching with `WatchStart::InitialState` alone would only
//! send ADDED events and leave such objects behind forever.
//!
//! `collect()` builds every family from the cache at scrape time instead of keeping
//! `GaugeVec`s: a deleted Pod's series vanish with it, and the number of series stays bounded by
//! the number of live objects (see `family.rs`).
//!
//! # Series
//! As kube-state-metrics v2: an object's labels are `namespace` plus `deployment`, `replicaset` or
//! `pod` (and the pod's `uid`); container series add `container`. Series whose source field is
//! absent are not emitted (a Pod without a phase has no `kube_pod_status_phase`, one without a
//! `Ready` condition no `kube_pod_status_ready`), again as kube-state-metrics does.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use berth_api::Object;
use berth_api::apps_v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetStatus};
use berth_api::core_v1::{ContainerStatus, Pod, PodConditionType, PodPhase, PodStatus};
use berth_api::meta::ConditionStatus;
use berth_api::time::Time;
use berth_store::{EventType, RedbStore, StreamExt, WatchFilter, WatchStart};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;

use crate::family::{FamilySpec, bool_value, descs};

/// How long a reflector waits before relisting after an error that is not `Gone`.
const RETRY_DELAY: Duration = Duration::from_secs(1);

const DEPLOYMENT: &[&str] = &["namespace", "deployment"];
const REPLICASET: &[&str] = &["namespace", "replicaset"];
const POD: &[&str] = &["namespace", "pod", "uid"];
const CONTAINER: &[&str] = &["namespace", "pod", "uid", "container"];

static DEPLOYMENT_SPEC_REPLICAS: FamilySpec = FamilySpec::gauge(
    "kube_deployment_spec_replicas",
    "Number of desired pods for a deployment.",
    DEPLOYMENT,
);
static DEPLOYMENT_STATUS_REPLICAS: FamilySpec = FamilySpec::gauge(
    "kube_deployment_status_replicas",
    "The number of replicas per deployment.",
    DEPLOYMENT,
);
static DEPLOYMENT_STATUS_REPLICAS_UPDATED: FamilySpec = FamilySpec::gauge(
    "kube_deployment_status_replicas_updated",
    "The number of updated replicas per deployment.",
    DEPLOYMENT,
);
static DEPLOYMENT_STATUS_REPLICAS_READY: FamilySpec = FamilySpec::gauge(
    "kube_deployment_status_replicas_ready",
    "The number of ready replicas per deployment.",
    DEPLOYMENT,
);
static DEPLOYMENT_STATUS_REPLICAS_AVAILABLE: FamilySpec = FamilySpec::gauge(
    "kube_deployment_status_replicas_available",
    "The number of available replicas per deployment.",
    DEPLOYMENT,
);
static DEPLOYMENT_STATUS_REPLICAS_UNAVAILABLE: FamilySpec = FamilySpec::gauge(
    "kube_deployment_status_replicas_unavailable",
    "The number of unavailable replicas per deployment.",
    DEPLOYMENT,
);
static DEPLOYMENT_METADATA_GENERATION: FamilySpec = FamilySpec::gauge(
    "kube_deployment_metadata_generation",
    "Sequence number representing a specific generation of the desired state.",
    DEPLOYMENT,
);
static DEPLOYMENT_STATUS_OBSERVED_GENERATION: FamilySpec = FamilySpec::gauge(
    "kube_deployment_status_observed_generation",
    "The generation observed by the deployment controller.",
    DEPLOYMENT,
);
static DEPLOYMENT_SPEC_PAUSED: FamilySpec = FamilySpec::gauge(
    "kube_deployment_spec_paused",
    "Whether the deployment is paused and will not be processed by the deployment controller.",
    DEPLOYMENT,
);
static REPLICASET_SPEC_REPLICAS: FamilySpec = FamilySpec::gauge(
    "kube_replicaset_spec_replicas",
    "Number of desired pods for a ReplicaSet.",
    REPLICASET,
);
static REPLICASET_STATUS_REPLICAS: FamilySpec = FamilySpec::gauge(
    "kube_replicaset_status_replicas",
    "The number of replicas per ReplicaSet.",
    REPLICASET,
);
static REPLICASET_STATUS_READY_REPLICAS: FamilySpec = FamilySpec::gauge(
    "kube_replicaset_status_ready_replicas",
    "The number of ready replicas per ReplicaSet.",
    REPLICASET,
);
static POD_STATUS_PHASE: FamilySpec = FamilySpec::gauge(
    "kube_pod_status_phase",
    "The pods current phase.",
    &["namespace", "pod", "uid", "phase"],
);
static POD_STATUS_READY: FamilySpec = FamilySpec::gauge(
    "kube_pod_status_ready",
    "Describes whether the pod is ready to serve requests.",
    &["namespace", "pod", "uid", "condition"],
);
static POD_CONTAINER_STATUS_READY: FamilySpec = FamilySpec::gauge(
    "kube_pod_container_status_ready",
    "Describes whether the containers readiness check succeeded.",
    CONTAINER,
);
static POD_CONTAINER_STATUS_RESTARTS_TOTAL: FamilySpec = FamilySpec::counter(
    "kube_pod_container_status_restarts_total",
    "The number of container restarts per container.",
    CONTAINER,
);
static POD_CONTAINER_STATUS_RUNNING: FamilySpec = FamilySpec::gauge(
    "kube_pod_container_status_running",
    "Describes whether the container is currently in running state.",
    CONTAINER,
);
static POD_CONTAINER_STATUS_WAITING: FamilySpec = FamilySpec::gauge(
    "kube_pod_container_status_waiting",
    "Describes whether the container is currently in waiting state.",
    CONTAINER,
);
static POD_CONTAINER_STATUS_WAITING_REASON: FamilySpec = FamilySpec::gauge(
    "kube_pod_container_status_waiting_reason",
    "Describes the reason the container is currently in waiting state.",
    &["namespace", "pod", "uid", "container", "reason"],
);
static POD_CONTAINER_STATUS_TERMINATED: FamilySpec = FamilySpec::gauge(
    "kube_pod_container_status_terminated",
    "Describes whether the container is currently in terminated state.",
    CONTAINER,
);
static POD_CONTAINER_STATUS_LAST_TERMINATED_REASON: FamilySpec = FamilySpec::gauge(
    "kube_pod_container_status_last_terminated_reason",
    "Describes the last reason the container was in terminated state.",
    &["namespace", "pod", "uid", "container", "reason"],
);
static POD_INFO: FamilySpec = FamilySpec::gauge(
    "kube_pod_info",
    "Information about pod.",
    &[
        "namespace",
        "pod",
        "uid",
        "host_ip",
        "pod_ip",
        "node",
        "created_by_kind",
        "created_by_name",
        "host_network",
    ],
);
static POD_START_TIME: FamilySpec = FamilySpec::gauge(
    "kube_pod_start_time",
    "Start time in unix timestamp for a pod.",
    POD,
);
static POD_DELETION_TIMESTAMP: FamilySpec = FamilySpec::gauge(
    "kube_pod_deletion_timestamp",
    "Unix deletion timestamp",
    POD,
);

/// Every family this collector exposes, in the order `collect()` returns them.
static FAMILIES: &[&FamilySpec] = &[
    &DEPLOYMENT_SPEC_REPLICAS,
    &DEPLOYMENT_STATUS_REPLICAS,
    &DEPLOYMENT_STATUS_REPLICAS_UPDATED,
    &DEPLOYMENT_STATUS_REPLICAS_READY,
    &DEPLOYMENT_STATUS_REPLICAS_AVAILABLE,
    &DEPLOYMENT_STATUS_REPLICAS_UNAVAILABLE,
    &DEPLOYMENT_METADATA_GENERATION,
    &DEPLOYMENT_STATUS_OBSERVED_GENERATION,
    &DEPLOYMENT_SPEC_PAUSED,
    &REPLICASET_SPEC_REPLICAS,
    &REPLICASET_STATUS_REPLICAS,
    &REPLICASET_STATUS_READY_REPLICAS,
    &POD_STATUS_PHASE,
    &POD_STATUS_READY,
    &POD_CONTAINER_STATUS_READY,
    &POD_CONTAINER_STATUS_RESTARTS_TOTAL,
    &POD_CONTAINER_STATUS_RUNNING,
    &POD_CONTAINER_STATUS_WAITING,
    &POD_CONTAINER_STATUS_WAITING_REASON,
    &POD_CONTAINER_STATUS_TERMINATED,
    &POD_CONTAINER_STATUS_LAST_TERMINATED_REASON,
    &POD_INFO,
    &POD_START_TIME,
    &POD_DELETION_TIMESTAMP,
];

/// (namespace, name): the cache key of a namespaced object.
type Key = (String, String);

/// The objects the families are built from, each kind keyed by namespace and name.
#[derive(Debug, Default)]
struct Cache {
    deployments: BTreeMap<Key, Deployment>,
    replica_sets: BTreeMap<Key, ReplicaSet>,
    pods: BTreeMap<Key, Pod>,
}

/// The three kinds the cache mirrors; each has its own reflector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Deployment,
    ReplicaSet,
    Pod,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::Pod => "Pod",
        }
    }
}

impl Cache {
    /// Replaces everything of `kind` with `objects` (a fresh list).
    fn replace(&mut self, kind: Kind, objects: Vec<Object>) {
        match kind {
            Kind::Deployment => self.deployments.clear(),
            Kind::ReplicaSet => self.replica_sets.clear(),
            Kind::Pod => self.pods.clear(),
        }
        for object in objects {
            self.upsert(object);
        }
    }

    fn upsert(&mut self, object: Object) {
        let key = key(&object);
        match object {
            Object::Deployment(deployment) => {
                self.deployments.insert(key, deployment);
            }
            Object::ReplicaSet(replica_set) => {
                self.replica_sets.insert(key, replica_set);
            }
            Object::Pod(pod) => {
                self.pods.insert(key, pod);
            }
            _ => {}
        }
    }

    fn remove(&mut self, object: &Object) {
        let key = key(object);
        match object {
            Object::Deployment(_) => {
                self.deployments.remove(&key);
            }
            Object::ReplicaSet(_) => {
                self.replica_sets.remove(&key);
            }
            Object::Pod(_) => {
                self.pods.remove(&key);
            }
            _ => {}
        }
    }
}

fn key(object: &Object) -> Key {
    let meta = object.metadata();
    (
        meta.namespace.clone().unwrap_or_default(),
        object.name().to_owned(),
    )
}

/// The kube-state-metrics collector. Cheap to clone; every clone shares one cache, so the daemon
/// registers one clone and runs another:
///
/// ```no_run
/// # async fn daemon(store: berth_store::RedbStore, registry: prometheus::Registry) -> prometheus::Result<()> {
/// let state = berth_metrics::StateMetrics::new()?;
/// registry.register(Box::new(state.clone()))?;
/// tokio::spawn(state.run(store, std::future::pending()));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct StateMetrics {
    cache: Arc<RwLock<Cache>>,
    descs: Arc<Vec<Desc>>,
}

impl StateMetrics {
    /// An empty collector; [`run`](Self::run) fills it.
    pub fn new() -> prometheus::Result<Self> {
        Ok(Self {
            cache: Arc::default(),
            descs: Arc::new(descs(FAMILIES)?),
        })
    }

    /// Mirrors Deployments, ReplicaSets and Pods of `store` into the cache until `shutdown`
    /// completes (this task holds a handle on the store, so its watches do not end before).
    /// Never fails: errors are logged and the kind relisted.
    pub async fn run(self, store: RedbStore, shutdown: impl Future<Output = ()>) {
        let reflectors = async {
            tokio::join!(
                self.reflect(&store, Kind::Deployment),
                self.reflect(&store, Kind::ReplicaSet),
                self.reflect(&store, Kind::Pod),
            )
        };
        tokio::select! {
            () = shutdown => {}
            _ = reflectors => {}
        }
    }

    /// One kind's list-and-watch loop; returns only if the store's feed ends.
    async fn reflect(&self, store: &RedbStore, kind: Kind) {
        loop {
            let list = match store.list(kind.name(), None, None).await {
                Ok(list) => list,
                Err(err) => {
                    tracing::warn!(kind = kind.name(), ?err, "metrics: cannot list, retrying");
                    tokio::time::sleep(RETRY_DELAY).await;
                    continue;
                }
            };
            self.write().replace(kind, list.items);
            let mut watch = match store
                .watch(
                    WatchFilter::kind(kind.name()),
                    WatchStart::After(list.resource_version),
                )
                .await
            {
                Ok(watch) => watch,
                Err(err) => {
                    // Gone: compacted between the list and the watch; relist at once.
                    if err.status_code() != 410 {
                        tracing::warn!(kind = kind.name(), ?err, "metrics: cannot watch");
                        tokio::time::sleep(RETRY_DELAY).await;
                    }
                    continue;
                }
            };
            loop {
                match watch.next().await {
                    None => return,
                    Some(Ok(event)) => {
                        let mut cache = self.write();
                        match event.event_type {
                            EventType::Added | EventType::Modified => cache.upsert(event.object),
                            EventType::Deleted => cache.remove(&event.object),
                        }
                    }
                    Some(Err(err)) => {
                        tracing::debug!(
                            kind = kind.name(),
                            ?err,
                            "metrics: watch ended, relisting"
                        );
                        break;
                    }
                }
            }
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        // A panic while holding the lock cannot leave a half-applied change: every change is
        // one map insert or remove.
        self.cache.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Collector for StateMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::with_capacity(FAMILIES.len());
        collect_deployments(cache.deployments.values(), &mut out);
        collect_replica_sets(cache.replica_sets.values(), &mut out);
        collect_pods(cache.pods.values(), &mut out);
        out
    }
}

fn count(value: i32) -> f64 {
    f64::from(value)
}

fn generation(value: Option<i64>) -> f64 {
    // Generations are small counters; f64 represents them exactly up to 2^53.
    value.unwrap_or(0) as f64
}

fn unix_seconds(time: &Time) -> f64 {
    time.0.as_second() as f64
}

fn collect_deployments<'a>(
    deployments: impl Iterator<Item = &'a Deployment>,
    out: &mut Vec<MetricFamily>,
) {
    let mut spec_replicas = DEPLOYMENT_SPEC_REPLICAS.start();
    let mut replicas = DEPLOYMENT_STATUS_REPLICAS.start();
    let mut updated = DEPLOYMENT_STATUS_REPLICAS_UPDATED.start();
    let mut ready = DEPLOYMENT_STATUS_REPLICAS_READY.start();
    let mut available = DEPLOYMENT_STATUS_REPLICAS_AVAILABLE.start();
    let mut unavailable = DEPLOYMENT_STATUS_REPLICAS_UNAVAILABLE.start();
    let mut metadata_generation = DEPLOYMENT_METADATA_GENERATION.start();
    let mut observed_generation = DEPLOYMENT_STATUS_OBSERVED_GENERATION.start();
    let mut paused = DEPLOYMENT_SPEC_PAUSED.start();
    let no_status = DeploymentStatus::default();
    for deployment in deployments {
        let labels = [
            deployment.metadata.namespace.as_deref().unwrap_or_default(),
            deployment.metadata.name(),
        ];
        let status = deployment.status.as_ref().unwrap_or(&no_status);
        if let Some(desired) = deployment.spec.replicas {
            spec_replicas.push(&labels, count(desired));
        }
        replicas.push(&labels, count(status.replicas));
        updated.push(&labels, count(status.updated_replicas));
        ready.push(&labels, count(status.ready_replicas));
        available.push(&labels, count(status.available_replicas));
        unavailable.push(&labels, count(status.unavailable_replicas));
        metadata_generation.push(&labels, generation(deployment.metadata.generation));
        observed_generation.push(&labels, generation(status.observed_generation));
        paused.push(&labels, bool_value(deployment.spec.paused.unwrap_or(false)));
    }
    out.extend([
        spec_replicas.finish(),
        replicas.finish(),
        updated.finish(),
        ready.finish(),
        available.finish(),
        unavailable.finish(),
        metadata_generation.finish(),
        observed_generation.finish(),
        paused.finish(),
    ]);
}

fn collect_replica_sets<'a>(
    replica_sets: impl Iterator<Item = &'a ReplicaSet>,
    out: &mut Vec<MetricFamily>,
) {
    let mut spec_replicas = REPLICASET_SPEC_REPLICAS.start();
    let mut replicas = REPLICASET_STATUS_REPLICAS.start();
    let mut ready = REPLICASET_STATUS_READY_REPLICAS.start();
    let no_status = ReplicaSetStatus::default();
    for replica_set in replica_sets {
        let labels = [
            replica_set
                .metadata
                .namespace
                .as_deref()
                .unwrap_or_default(),
            replica_set.metadata.name(),
        ];
        if let Some(desired) = replica_set.spec.replicas {
            spec_replicas.push(&labels, count(desired));
        }
        let status = replica_set.status.as_ref().unwrap_or(&no_status);
        replicas.push(&labels, count(status.replicas));
        ready.push(&labels, count(status.ready_replicas));
    }
    out.extend([spec_replicas.finish(), replicas.finish(), ready.finish()]);
}

const PHASES: [(PodPhase, &str); 5] = [
    (PodPhase::Pending, "Pending"),
    (PodPhase::Running, "Running"),
    (PodPhase::Succeeded, "Succeeded"),
    (PodPhase::Failed, "Failed"),
    (PodPhase::Unknown, "Unknown"),
];

const CONDITION_STATUSES: [(ConditionStatus, &str); 3] = [
    (ConditionStatus::True, "true"),
    (ConditionStatus::False, "false"),
    (ConditionStatus::Unknown, "unknown"),
];

fn collect_pods<'a>(pods: impl Iterator<Item = &'a Pod>, out: &mut Vec<MetricFamily>) {
    let mut phase = POD_STATUS_PHASE.start();
    let mut ready = POD_STATUS_READY.start();
    let mut container_ready = POD_CONTAINER_STATUS_READY.start();
    let mut restarts = POD_CONTAINER_STATUS_RESTARTS_TOTAL.start();
    let mut running = POD_CONTAINER_STATUS_RUNNING.start();
    let mut waiting = POD_CONTAINER_STATUS_WAITING.start();
    let mut waiting_reason = POD_CONTAINER_STATUS_WAITING_REASON.start();
    let mut terminated = POD_CONTAINER_STATUS_TERMINATED.start();
    let mut last_terminated_reason = POD_CONTAINER_STATUS_LAST_TERMINATED_REASON.start();
    let mut info = POD_INFO.start();
    let mut start_time = POD_START_TIME.start();
    let mut deletion = POD_DELETION_TIMESTAMP.start();
    let no_status = PodStatus::default();
    for pod in pods {
        let meta = &pod.metadata;
        let namespace = meta.namespace.as_deref().unwrap_or_default();
        let name = meta.name();
        let uid = meta.uid.as_deref().unwrap_or_default();
        let labels = [namespace, name, uid];
        let status = pod.status.as_ref().unwrap_or(&no_status);

        if let Some(current) = status.phase {
            for (candidate, label) in PHASES {
                phase.push(
                    &[namespace, name, uid, label],
                    bool_value(candidate == current),
                );
            }
        }
        if let Some(condition) = status
            .conditions
            .iter()
            .find(|c| c.type_ == PodConditionType::Ready)
        {
            for (candidate, label) in CONDITION_STATUSES {
                ready.push(
                    &[namespace, name, uid, label],
                    bool_value(candidate == condition.status),
                );
            }
        }
        for container in &status.container_statuses {
            let labels = [namespace, name, uid, container.name.as_str()];
            let ContainerFlags {
                running: is_running,
                waiting: waiting_for,
                terminated: is_terminated,
            } = ContainerFlags::of(container);
            container_ready.push(&labels, bool_value(container.ready));
            restarts.push(&labels, count(container.restart_count));
            running.push(&labels, bool_value(is_running));
            waiting.push(&labels, bool_value(waiting_for.is_some()));
            if let Some(Some(reason)) = waiting_for {
                waiting_reason.push(&[namespace, name, uid, &container.name, reason], 1.0);
            }
            terminated.push(&labels, bool_value(is_terminated));
            if let Some(reason) = container
                .last_state
                .as_ref()
                .and_then(|state| state.terminated.as_ref())
                .and_then(|terminated| terminated.reason.as_deref())
            {
                last_terminated_reason.push(&[namespace, name, uid, &container.name, reason], 1.0);
            }
        }

        let owner = meta
            .owner_references
            .iter()
            .find(|owner| owner.controller == Some(true))
            .or(meta.owner_references.first());
        let host_network = pod.spec.host_network.unwrap_or(false).to_string();
        info.push(
            &[
                namespace,
                name,
                uid,
                status.host_ip.as_deref().unwrap_or_default(),
                status.pod_ip.as_deref().unwrap_or_default(),
                pod.spec.node_name.as_deref().unwrap_or_default(),
                owner.map(|o| o.kind.as_str()).unwrap_or_default(),
                owner.map(|o| o.name.as_str()).unwrap_or_default(),
                &host_network,
            ],
            1.0,
        );
        if let Some(started) = &status.start_time {
            start_time.push(&labels, unix_seconds(started));
        }
        if let Some(deleted) = &meta.deletion_timestamp {
            deletion.push(&labels, unix_seconds(deleted));
        }
    }
    out.extend([
        phase.finish(),
        ready.finish(),
        container_ready.finish(),
        restarts.finish(),
        running.finish(),
        waiting.finish(),
        waiting_reason.finish(),
        terminated.finish(),
        last_terminated_reason.finish(),
        info.finish(),
        start_time.finish(),
        deletion.finish(),
    ]);
}

/// Which state a container status is in. `waiting` is `Some(reason)` when waiting.
struct ContainerFlags<'a> {
    running: bool,
    waiting: Option<Option<&'a str>>,
    terminated: bool,
}

impl<'a> ContainerFlags<'a> {
    fn of(status: &'a ContainerStatus) -> Self {
        let state = status.state.as_ref();
        Self {
            running: state.is_some_and(|s| s.running.is_some()),
            waiting: state
                .and_then(|s| s.waiting.as_ref())
                .map(|waiting| waiting.reason.as_deref().filter(|r| !r.is_empty())),
            terminated: state.is_some_and(|s| s.terminated.is_some()),
        }
    }
}
