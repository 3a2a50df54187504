//! The pod worker: one task per pod that runs its containers through the [`ContainerRuntime`],
//! restarts them per `restartPolicy` with CrashLoopBackOff ([`RestartTracker`]), acts on probe
//! results, runs lifecycle hooks, and publishes the pod's status and Kubernetes-style events.
//!
//! The pod's life as the worker drives it ([`PodStage`]):
//!
//! ```text
//!  Creating ──sandbox──► Initializing ──all init containers succeeded──► Running
//!     │                      │ init failed, restartPolicy Never                │
//!     │                      ▼                                                 │
//!     │                   Finished (Failed) ◄── every container terminal ──────┘
//!     │                      │                  (Never / OnFailure: Succeeded or Failed)
//!     └──────── terminate ───┴──────────────────────────► Terminating ──► Terminated
//! ```
//! A container in `Running` exits → [`RestartTracker::on_exit`] → restarted at once, after its
//! backoff (`CrashLoopBackOff`), or left terminated. A liveness or startup probe failure stops the
//! container (grace: the probe's `terminationGracePeriodSeconds`, else the pod's) and its exit
//! takes the same path. Readiness only toggles `ready`.
//!
//! [`PodWorker::adopt`] starts a worker over what an earlier agent left in the runtime (berth
//! restarted; see [`Adoption`]): it reuses the pod's sandbox, follows the running instances
//! (waits on them, probes them), takes an instance that exited while nobody watched as an exit
//! (restart per policy, `restartCount` continued from the instance's
//! [`labels::RESTART_COUNT`] or the stored status), and deletes older exited instances.
//! [`PodWorker::abandon`] is the other half: it stops the worker and leaves the containers.
//!
//! [`PodWorker::terminate`] runs each running container's preStop hook (counted against the
//! grace period), stops it (SIGTERM, SIGKILL once the rest of the grace is up), deletes every
//! container and then the sandbox. It is idempotent.

use crate::drain::{DRAIN_WAIT, TrafficDrain};
use crate::error_chain;
use std::{collections::BTreeMap, sync::Arc, time::Duration};

use berth_api::{
    Time,
    core_v1::{Container, LifecycleHandler, Pod, PodStatus, Probe, RestartPolicy},
};
use jiff::Timestamp;
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
    time::Instant,
};
use tracing::{Instrument, debug, info, info_span, warn};

use super::spec::{ConfigSource, SpecContext, SpecError, container_spec};
use crate::{
    probe::{
        ContainerProbes, ContainerProbesSpec, Health, ProbeError, ProbeKind, ProbeResult,
        ProbeTarget, Prober, http,
    },
    restart::{BackoffConfig, Decision, GoDuration, RestartTracker},
    runtime::{
        ContainerId, ContainerInfo, ContainerRuntime, ContainerState, DnsConfig, ExitInfo,
        RuntimeError, SandboxInfo, SandboxSpec, labels,
    },
    status::{
        ContainerEvent, ContainerPhase, ObservedContainer, ObservedPod, WaitingReason, pod_status,
    },
};

/// Kubernetes' default `terminationGracePeriodSeconds`.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// Errors of a pod worker's steps; each is reported as an event and logged where handled.
#[derive(Debug, thiserror::Error)]
pub enum PodWorkerError {
    #[error("pod {pod}: creating the sandbox failed")]
    Sandbox {
        pod: String,
        #[source]
        source: RuntimeError,
    },
    #[error("pod {pod}: preparing volumes")]
    Volumes {
        pod: String,
        #[source]
        source: super::volumes::VolumeError,
    },
    #[error("pod {pod}: building container {container:?}")]
    Spec {
        pod: String,
        container: String,
        #[source]
        source: SpecError,
    },
    #[error("pod {pod}: container {container:?}: {operation} failed")]
    Runtime {
        pod: String,
        container: String,
        operation: &'static str,
        #[source]
        source: RuntimeError,
    },
    #[error(
        "{hook} hook of container {container:?} failed: command {argv:?} exited with {exit_code}: {output}"
    )]
    HookExit {
        hook: &'static str,
        container: String,
        argv: Vec<String>,
        exit_code: i32,
        output: String,
    },
    #[error("{hook} hook of container {container:?} failed: {output}")]
    HookHttp {
        hook: &'static str,
        container: String,
        output: String,
    },
    #[error("{hook} hook of container {container:?} could not run")]
    HookRun {
        hook: &'static str,
        container: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub type Result<T, E = PodWorkerError> = std::result::Result<T, E>;

/// Wall-clock time derived from tokio's clock, so that paused-time tests control timestamps.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin_wall: Timestamp,
    origin: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::starting_at(Timestamp::now())
    }
}

impl Clock {
    pub fn starting_at(wall: Timestamp) -> Self {
        Self {
            origin_wall: wall,
            origin: Instant::now(),
        }
    }

    pub fn timestamp(&self) -> Timestamp {
        let elapsed = jiff::SignedDuration::try_from(self.origin.elapsed())
            .unwrap_or(jiff::SignedDuration::MAX);
        self.origin_wall
            .checked_add(elapsed)
            .unwrap_or(Timestamp::MAX)
    }
}

/// What every pod worker shares.
#[derive(Clone)]
pub struct WorkerContext {
    pub runtime: Arc<dyn ContainerRuntime>,
    pub prober: Prober,
    pub config: Arc<dyn ConfigSource>,
    /// The daemon's backoff; pods may override it by annotation.
    pub backoff: BackoffConfig,
    pub clock: Clock,
    /// The node's pids limit per container.
    pub pids_limit: Option<u64>,
    /// Where pods' volumes are prepared.
    pub volumes: Arc<super::volumes::Volumes>,
    /// The Service data path a terminating pod waits to be out of ([`crate::drain`]).
    pub drain: Arc<dyn TrafficDrain>,
}

/// `Normal` or `Warning`, as Kubernetes events are typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// A Kubernetes-style event about the pod (`Created`, `Started`, `Killing`, `Unhealthy`,
/// `BackOff`, `Pulled`, `Failed`, `FailedPostStartHook`, `FailedPreStopHook`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEvent {
    pub type_: EventType,
    pub reason: &'static str,
    pub message: String,
    /// `spec.containers{name}` in Kubernetes' `involvedObject.fieldPath`; `None` for the pod.
    pub container: Option<String>,
    pub at: Timestamp,
}

/// Where the pod is in the worker's life (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodStage {
    Creating,
    Initializing,
    Running,
    Finished,
    Terminating,
    Terminated,
}

enum Command {
    Terminate { grace: Option<Duration> },
}

/// What an earlier agent left of a pod: found by the pod uid label ([`labels::POD_UID`]) after a
/// restart of berth, and the status it last wrote.
#[derive(Debug, Clone, Default)]
pub struct Adoption {
    /// The pod's sandboxes (normally one; extra ones from an interrupted creation are deleted).
    pub sandboxes: Vec<SandboxInfo>,
    /// Every instance of the pod's containers, running or exited.
    pub containers: Vec<ContainerInfo>,
    /// The pod's status in the store (restart counts, start time, image ids).
    pub status: Option<PodStatus>,
}

/// A handle on a running pod worker.
pub struct PodWorker {
    commands: mpsc::UnboundedSender<Command>,
    stage: watch::Receiver<PodStage>,
    task: JoinHandle<()>,
}

impl PodWorker {
    /// Starts running `pod`: statuses go to `status_tx` on every change, events to `events`.
    pub fn spawn(
        pod: Pod,
        ctx: WorkerContext,
        status_tx: watch::Sender<PodStatus>,
        events: mpsc::UnboundedSender<PodEvent>,
    ) -> Self {
        Self::start(pod, ctx, status_tx, events, None)
    }

    /// Starts running `pod` over what an earlier agent left of it (see the module doc): its
    /// sandbox and running containers are kept, exits seen while nobody watched restart per
    /// policy.
    pub fn adopt(
        pod: Pod,
        ctx: WorkerContext,
        status_tx: watch::Sender<PodStatus>,
        events: mpsc::UnboundedSender<PodEvent>,
        adoption: Adoption,
    ) -> Self {
        Self::start(pod, ctx, status_tx, events, Some(adoption))
    }

    fn start(
        pod: Pod,
        ctx: WorkerContext,
        status_tx: watch::Sender<PodStatus>,
        events: mpsc::UnboundedSender<PodEvent>,
        adoption: Option<Adoption>,
    ) -> Self {
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (stage_tx, stage) = watch::channel(PodStage::Creating);
        let name = pod_name(&pod);
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let span = info_span!("pod", pod = %name, uid = %uid);
        let mut run = Run::new(pod, ctx, status_tx, events, stage_tx);
        if let Some(adoption) = adoption {
            if let Some(start) = adoption.status.as_ref().and_then(|s| s.start_time) {
                run.observed.start_time = Some(start.0);
            }
            run.adoption = Some(adoption);
        }
        let task = tokio::spawn(run.run(commands_rx).instrument(span));
        Self {
            commands,
            stage,
            task,
        }
    }

    pub fn stage(&self) -> PodStage {
        *self.stage.borrow()
    }

    /// Stops the pod (preStop hooks, then SIGTERM, SIGKILL after `grace` — the pod's
    /// `terminationGracePeriodSeconds` when `None`), deletes its containers and sandbox, and
    /// returns once that is done. Calling it again (or concurrently) just waits for the end.
    pub async fn terminate(&self, grace: Option<Duration>) {
        let _ = self.commands.send(Command::Terminate { grace });
        let mut stage = self.stage.clone();
        let _ = stage.wait_for(|s| *s == PodStage::Terminated).await;
    }

    /// Whether the worker's task has ended (after termination).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the worker and leaves the pod's containers and sandbox as they are, for a later
    /// agent to [`adopt`](Self::adopt) (berth stopping without stopping its pods). Probes stop
    /// with it; containers keep running.
    pub fn abandon(&self) {
        self.task.abort();
    }
}

fn pod_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name()
    )
}

enum Msg {
    Exited {
        name: String,
        id: ContainerId,
        exit: std::result::Result<ExitInfo, RuntimeError>,
    },
    RestartDue {
        name: String,
    },
    StartFailed {
        index: usize,
        exit: ExitInfo,
    },
}

/// One app container: its restart state and current instance.
struct Slot {
    container: Container,
    tracker: RestartTracker,
    current: Option<ContainerId>,
    probes: Option<ContainerProbes>,
    /// The exit waiting for its restart (becomes `lastState`).
    pending_exit: Option<ExitInfo>,
}

struct Run {
    pod: Pod,
    ctx: WorkerContext,
    name: String,
    uid: String,
    grace: Duration,
    backoff: BackoffConfig,
    status_tx: watch::Sender<PodStatus>,
    events: mpsc::UnboundedSender<PodEvent>,
    stage: watch::Sender<PodStage>,
    observed: ObservedPod,
    sandbox: Option<SandboxInfo>,
    /// The pod's volumes, prepared once the sandbox exists.
    volumes: super::volumes::PodVolumes,
    slots: Vec<Slot>,
    /// Every container instance created and not deleted yet.
    instances: Vec<ContainerId>,
    /// The last exited instance of each container (init or not, by name), kept while its
    /// successor runs so that `logs --previous` can read it, as the kubelet keeps one.
    previous: BTreeMap<(bool, String), ContainerId>,
    msgs_tx: mpsc::UnboundedSender<Msg>,
    msgs: mpsc::UnboundedReceiver<Msg>,
    probes_tx: mpsc::UnboundedSender<ProbeResult>,
    probes: mpsc::UnboundedReceiver<ProbeResult>,
    /// What an earlier agent left, taken when the pod starts.
    adoption: Option<Adoption>,
}

/// The result of waiting for something while a terminate request may come.
enum Interrupted<T> {
    Done(T),
    Terminate(Option<Duration>),
}

async fn interruptible<T>(
    commands: &mut mpsc::UnboundedReceiver<Command>,
    future: impl Future<Output = T>,
) -> Interrupted<T> {
    tokio::select! {
        command = commands.recv() => match command {
            Some(Command::Terminate { grace }) => Interrupted::Terminate(grace),
            // Every handle is gone: nobody can stop the pod any more, so stop it now.
            None => Interrupted::Terminate(None),
        },
        value = future => Interrupted::Done(value),
    }
}

impl Run {
    fn new(
        pod: Pod,
        ctx: WorkerContext,
        status_tx: watch::Sender<PodStatus>,
        events: mpsc::UnboundedSender<PodEvent>,
        stage: watch::Sender<PodStage>,
    ) -> Self {
        let (msgs_tx, msgs) = mpsc::unbounded_channel();
        let (probes_tx, probes) = mpsc::unbounded_channel();
        let name = pod_name(&pod);
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let grace = pod
            .spec
            .termination_grace_period_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(DEFAULT_GRACE, Duration::from_secs);
        let policy = pod.spec.restart_policy.unwrap_or(RestartPolicy::Always);
        let mut pending = Vec::new();
        let backoff = match ctx.backoff.with_annotations(&pod.metadata.annotations) {
            Ok(backoff) => backoff,
            Err(err) => {
                warn!(error = %err, "ignoring the pod's backoff annotations");
                pending.push((
                    EventType::Warning,
                    "InvalidBackoff",
                    format!("ignoring backoff annotations: {err}"),
                ));
                ctx.backoff
            }
        };
        let slots = pod
            .spec
            .containers
            .iter()
            .map(|container| Slot {
                container: container.clone(),
                tracker: RestartTracker::new(policy, backoff),
                current: None,
                probes: None,
                pending_exit: None,
            })
            .collect();
        let run = Self {
            observed: ObservedPod {
                start_time: Some(ctx.clock.timestamp()),
                ..ObservedPod::default()
            },
            pod,
            ctx,
            name,
            uid,
            grace,
            backoff,
            status_tx,
            events,
            stage,
            sandbox: None,
            volumes: super::volumes::PodVolumes::default(),
            slots,
            instances: Vec::new(),
            previous: BTreeMap::new(),
            msgs_tx,
            msgs,
            probes_tx,
            probes,
            adoption: None,
        };
        for (type_, reason, message) in pending {
            run.event(type_, reason, None, message);
        }
        run
    }

    fn event(
        &self,
        type_: EventType,
        reason: &'static str,
        container: Option<&str>,
        message: String,
    ) {
        debug!(reason, container, %message, "event");
        let _ = self.events.send(PodEvent {
            type_,
            reason,
            message,
            container: container.map(str::to_owned),
            at: self.ctx.clock.timestamp(),
        });
    }

    fn publish(&self) {
        let previous = self.status_tx.borrow().clone();
        let now = Time(self.ctx.clock.timestamp());
        let status = pod_status(&self.pod.spec, &self.observed, Some(&previous), now);
        self.status_tx.send_if_modified(|current| {
            if *current == status {
                false
            } else {
                *current = status;
                true
            }
        });
    }

    fn set_stage(&self, stage: PodStage) {
        self.stage.send_replace(stage);
    }

    /// The observed entry of a container, created when first seen.
    fn observed(&mut self, init: bool, container: &Container) -> &mut ObservedContainer {
        let list = if init {
            &mut self.observed.init_containers
        } else {
            &mut self.observed.containers
        };
        let index = match list.iter().position(|o| o.name == container.name) {
            Some(index) => index,
            None => {
                list.push(ObservedContainer::waiting(
                    &container.name,
                    container.image.as_deref().unwrap_or_default(),
                    WaitingReason::ContainerCreating,
                ));
                list.len() - 1
            }
        };
        &mut list[index]
    }

    /// Moves a container's phase, logging (not failing on) a transition status.rs refuses.
    fn transition(&mut self, init: bool, container: &Container, event: ContainerEvent) {
        let observed = self.observed(init, container);
        match observed.phase.apply(&container.name, event) {
            Ok(next) => observed.phase = next,
            Err(err) => warn!(error = %err, "unexpected container transition"),
        }
    }

    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        // An adopted pod keeps its stored status until its containers are adopted: no flap
        // through Pending while berth restarts.
        if self.adoption.is_none() {
            self.publish();
        }
        let grace = match self.run_pod(&mut commands).await {
            Interrupted::Terminate(grace) => grace,
            Interrupted::Done(()) => None,
        };
        self.terminate(grace.unwrap_or(self.grace)).await;
    }

    /// Runs the pod until a terminate request comes.
    async fn run_pod(
        &mut self,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> Interrupted<()> {
        let adoption = self.adoption.take();
        if let Some(adoption) = &adoption {
            self.adopt_sandbox(adoption).await;
        }
        // The sandbox and the volumes, retried with backoff.
        let mut delay = self.backoff.initial;
        loop {
            let set_up = match self.sandbox {
                None => self.create_sandbox().await,
                Some(_) => Ok(()),
            };
            let set_up = match set_up {
                Ok(()) => self.prepare_volumes().await,
                Err(err) => Err(err),
            };
            match set_up {
                Ok(()) => break,
                Err(err) => {
                    warn!(error = %err, "sandbox");
                    let reason = match err {
                        PodWorkerError::Volumes { .. } => "FailedMount",
                        _ => "FailedCreatePodSandBox",
                    };
                    self.event(EventType::Warning, reason, None, error_chain(&err));
                    if let Interrupted::Terminate(grace) =
                        interruptible(commands, tokio::time::sleep(delay)).await
                    {
                        return Interrupted::Terminate(grace);
                    }
                    delay = delay.saturating_mul(2).min(self.backoff.max);
                }
            }
        }
        if let Some(adoption) = adoption
            && self.adopt_containers(adoption).await
        {
            self.set_stage(PodStage::Running);
        } else {
            self.set_stage(PodStage::Initializing);
        }
        if *self.stage.borrow() == PodStage::Initializing
            && let Interrupted::Terminate(grace) = self.run_init_containers(commands).await
        {
            return Interrupted::Terminate(grace);
        }
        if *self.stage.borrow() == PodStage::Initializing {
            self.set_stage(PodStage::Running);
            for index in 0..self.slots.len() {
                self.start_app(index).await;
            }
        } else if *self.stage.borrow() == PodStage::Running {
            // Adopted: the containers without an instance to follow start now.
            for index in 0..self.slots.len() {
                let slot = &self.slots[index];
                if slot.current.is_none() && slot.pending_exit.is_none() {
                    self.start_app(index).await;
                }
            }
        }
        loop {
            tokio::select! {
                command = commands.recv() => {
                    let grace = match command {
                        Some(Command::Terminate { grace }) => grace,
                        None => None,
                    };
                    return Interrupted::Terminate(grace);
                }
                Some(msg) = self.msgs.recv() => self.handle(msg).await,
                Some(result) = self.probes.recv() => self.handle_probe(result).await,
            }
        }
    }

    async fn prepare_volumes(&mut self) -> Result<()> {
        self.volumes = self
            .ctx
            .volumes
            .prepare(&self.pod, self.ctx.config.as_ref())
            .await
            .map_err(|source| PodWorkerError::Volumes {
                pod: self.name.clone(),
                source,
            })?;
        Ok(())
    }

    async fn create_sandbox(&mut self) -> Result<()> {
        let spec = &self.pod.spec;
        let meta = &self.pod.metadata;
        let sandbox_labels: BTreeMap<String, String> = [
            (labels::POD_UID, self.uid.clone()),
            (labels::POD_NAME, meta.name().to_owned()),
            (
                labels::POD_NAMESPACE,
                meta.namespace.clone().unwrap_or_else(|| "default".into()),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let host_network = spec.host_network.unwrap_or(false);
        let namespace = meta.namespace.as_deref().unwrap_or("default");
        // ClusterFirst, the Kubernetes default: Services resolve by name; a pod on the host's
        // network keeps the host's resolver.
        let dns = (!host_network).then(|| DnsConfig {
            nameservers: Vec::new(),
            searches: vec![
                format!("{namespace}.svc.cluster.local"),
                "svc.cluster.local".into(),
                "cluster.local".into(),
            ],
            options: vec!["ndots:5".into()],
        });
        let sandbox = SandboxSpec {
            name: self.name.clone(),
            hostname: spec
                .hostname
                .clone()
                .unwrap_or_else(|| meta.name().to_owned()),
            host_network,
            extra_hosts: Vec::new(),
            dns,
            labels: sandbox_labels,
        };
        let info = self
            .ctx
            .runtime
            .create_sandbox(sandbox)
            .await
            .map_err(|source| PodWorkerError::Sandbox {
                pod: self.name.clone(),
                source,
            })?;
        info!(sandbox = %info.id, ip = ?info.ip, "sandbox created");
        self.observed.pod_ip = info.ip;
        self.sandbox = Some(info);
        self.publish();
        Ok(())
    }

    /// A container could not be created: a `Failed` event and the `CreateContainerError`
    /// waiting reason, as the kubelet reports it.
    fn create_failed(&mut self, init: bool, container: &Container, err: &PodWorkerError) {
        let message = error_chain(err);
        self.event(
            EventType::Warning,
            "Failed",
            Some(&container.name),
            format!("Error: {message}"),
        );
        self.transition(
            init,
            container,
            ContainerEvent::Waiting {
                reason: WaitingReason::CreateContainerError,
                message: Some(message),
            },
        );
        self.publish();
    }

    /// Creates and starts one instance of `container`; reports why it could not.
    async fn start_instance(
        &mut self,
        init: bool,
        container: &Container,
        restart_count: u32,
    ) -> std::result::Result<(ContainerId, Instant), ExitInfo> {
        let sandbox = self.sandbox.clone().expect("sandbox created first");
        let spec_ctx = SpecContext {
            pod: &self.pod,
            sandbox: &sandbox.id,
            pod_ip: sandbox.ip,
            restart_count,
            pids_limit: self.ctx.pids_limit,
            volumes: &self.volumes,
        };
        let name = container.name.as_str();
        let failed_at = |clock: &Clock| {
            let now = clock.timestamp();
            ExitInfo {
                // What CRI reports for a container that never ran (the kubelet's StartError).
                exit_code: 128,
                signal: None,
                oom_killed: false,
                started_at: now,
                finished_at: now,
            }
        };
        let (spec, image) =
            match container_spec(container, &spec_ctx, self.ctx.config.as_ref()).await {
                Ok(found) => found,
                Err(source) => {
                    let err = PodWorkerError::Spec {
                        pod: self.name.clone(),
                        container: name.to_owned(),
                        source,
                    };
                    warn!(error = %err, container = name, "cannot build the container");
                    self.create_failed(init, container, &err);
                    return Err(failed_at(&self.ctx.clock));
                }
            };
        self.event(
            EventType::Normal,
            "Pulled",
            Some(name),
            format!(
                "Container image {:?} already present on machine",
                spec.image
            ),
        );
        self.observed(init, container).image_id = image.image_id;
        let creating = Instant::now();
        let id = match self.ctx.runtime.create(spec).await {
            Ok(id) => id,
            Err(source) => {
                let err = self.runtime_error(name, "create", source);
                self.create_failed(init, container, &err);
                return Err(failed_at(&self.ctx.clock));
            }
        };
        self.instances.push(id.clone());
        self.observed(init, container).container_id = Some(id.clone());
        self.event(
            EventType::Normal,
            "Created",
            Some(name),
            format!("Created container {name}"),
        );
        if let Err(source) = self.ctx.runtime.start(&id).await {
            let err = self.runtime_error(name, "start", source);
            warn!(error = %err, "start");
            self.event(
                EventType::Warning,
                "Failed",
                Some(name),
                format!("Error: {}", error_chain(&err)),
            );
            let exit = failed_at(&self.ctx.clock);
            self.transition(init, container, ContainerEvent::Exited(exit.clone()));
            self.publish();
            return Err(exit);
        }
        let started = Instant::now();
        if let Some(observer) = self.ctx.prober.observer() {
            observer.container_started(started.duration_since(creating));
        }
        self.event(
            EventType::Normal,
            "Started",
            Some(name),
            format!("Started container {name}"),
        );
        let at = self.ctx.clock.timestamp();
        self.transition(init, container, ContainerEvent::Started { at });
        let observed = self.observed(init, container);
        observed.restart_count = restart_count;
        observed.ready = container.readiness_probe.is_none();
        observed.started = container.startup_probe.is_none();
        self.publish();
        Ok((id, started))
    }

    fn runtime_error(
        &self,
        container: &str,
        operation: &'static str,
        source: RuntimeError,
    ) -> PodWorkerError {
        PodWorkerError::Runtime {
            pod: self.name.clone(),
            container: container.to_owned(),
            operation,
            source,
        }
    }

    /// Runs the init containers in order, each to success; a failed one is restarted with
    /// backoff unless the policy is `Never`, which fails the pod.
    async fn run_init_containers(
        &mut self,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> Interrupted<()> {
        let policy = match self.pod.spec.restart_policy {
            Some(RestartPolicy::Never) => RestartPolicy::Never,
            _ => RestartPolicy::OnFailure,
        };
        for container in self.pod.spec.init_containers.clone() {
            let mut tracker = RestartTracker::new(policy, self.backoff);
            let mut last_exit: Option<ExitInfo> = None;
            loop {
                let exit = match self
                    .start_instance(true, &container, tracker.restart_count())
                    .await
                {
                    Ok((id, _)) => {
                        if let Some(exit) = last_exit.take() {
                            self.observed(true, &container).last_exit = Some(exit);
                            self.publish();
                        }
                        if let Some(hook) = container
                            .lifecycle
                            .as_ref()
                            .and_then(|l| l.post_start.clone())
                        {
                            self.post_start(&container, &id, &hook).await;
                        }
                        let runtime = self.ctx.runtime.clone();
                        match interruptible(commands, runtime.wait(&id)).await {
                            Interrupted::Terminate(grace) => return Interrupted::Terminate(grace),
                            Interrupted::Done(Ok(exit)) => {
                                self.transition(
                                    true,
                                    &container,
                                    ContainerEvent::Exited(exit.clone()),
                                );
                                self.observed(true, &container).ready = exit.succeeded();
                                self.publish();
                                exit
                            }
                            Interrupted::Done(Err(source)) => {
                                let err = self.runtime_error(&container.name, "wait", source);
                                warn!(error = %err, "init container vanished");
                                ExitInfo {
                                    exit_code: 128,
                                    signal: None,
                                    oom_killed: false,
                                    started_at: self.ctx.clock.timestamp(),
                                    finished_at: self.ctx.clock.timestamp(),
                                }
                            }
                        }
                    }
                    Err(exit) => exit,
                };
                match tracker.on_exit(&exit, Instant::now()) {
                    Decision::Stay(_) if exit.succeeded() => break,
                    Decision::Stay(_) => {
                        info!(container = %container.name, "init container failed; pod failed");
                        self.set_stage(PodStage::Finished);
                        self.publish();
                        return Interrupted::Done(());
                    }
                    Decision::Restart { after } => {
                        last_exit = Some(exit);
                        if !after.is_zero() {
                            self.back_off(true, &container, &tracker);
                            if let Interrupted::Terminate(grace) =
                                interruptible(commands, tokio::time::sleep(after)).await
                            {
                                return Interrupted::Terminate(grace);
                            }
                        }
                        tracker.on_restart(Instant::now());
                        self.delete_exited(&container.name, true).await;
                    }
                }
            }
        }
        Interrupted::Done(())
    }

    /// Marks a container as waiting out its backoff and says so in an event.
    fn back_off(&mut self, init: bool, container: &Container, tracker: &RestartTracker) {
        let Some(back_off) = tracker.back_off(Instant::now()) else {
            return;
        };
        let pod = format!(
            "{}_{}({})",
            self.pod.metadata.name(),
            self.pod.metadata.namespace.as_deref().unwrap_or("default"),
            self.uid
        );
        let message = back_off.message(&container.name, &pod);
        self.event(
            EventType::Warning,
            "BackOff",
            Some(&container.name),
            format!(
                "Back-off restarting failed container {} in pod {pod}",
                container.name
            ),
        );
        self.transition(
            init,
            container,
            ContainerEvent::Waiting {
                reason: WaitingReason::CrashLoopBackOff,
                message: Some(message),
            },
        );
        self.publish();
    }

    /// Before a new instance of a container is created: the instance that just exited becomes
    /// the kept previous one (for `logs --previous`) and the one kept before it is deleted.
    async fn delete_exited(&mut self, name: &str, init: bool) {
        let list = if init {
            &self.observed.init_containers
        } else {
            &self.observed.containers
        };
        let Some(exited) = list
            .iter()
            .find(|o| o.name == name)
            .and_then(|o| o.container_id.clone())
        else {
            return;
        };
        let Some(older) = self
            .previous
            .insert((init, name.to_owned()), exited.clone())
        else {
            return;
        };
        if older == exited {
            return;
        }
        match self.ctx.runtime.delete(&older).await {
            Ok(()) => self.instances.retain(|i| *i != older),
            Err(err) => warn!(error = %err, container = name, "deleting an old exited instance"),
        }
    }

    async fn start_app(&mut self, index: usize) {
        let container = self.slots[index].container.clone();
        let restart_count = self.slots[index].tracker.restart_count();
        match self.start_instance(false, &container, restart_count).await {
            Ok((id, started_at)) => {
                let slot = &mut self.slots[index];
                slot.current = Some(id.clone());
                if let Some(exit) = slot.pending_exit.take() {
                    self.observed(false, &container).last_exit = Some(exit);
                    self.publish();
                }
                self.follow(index, &id, started_at);
                if let Some(hook) = container
                    .lifecycle
                    .as_ref()
                    .and_then(|l| l.post_start.clone())
                {
                    self.post_start(&container, &id, &hook).await;
                }
            }
            // Through the loop, so that a start failing again and again is not a recursion.
            Err(exit) => {
                let _ = self.msgs_tx.send(Msg::StartFailed { index, exit });
            }
        }
    }

    /// Waits for the running instance `id` of app container `index` (its exit comes back as a
    /// message) and starts its probes.
    fn follow(&mut self, index: usize, id: &ContainerId, started_at: Instant) {
        let container = self.slots[index].container.clone();
        let runtime = self.ctx.runtime.clone();
        let msgs = self.msgs_tx.clone();
        let name = container.name.clone();
        let wait_id = id.clone();
        tokio::spawn(async move {
            let exit = runtime.wait(&wait_id).await;
            let _ = msgs.send(Msg::Exited {
                name,
                id: wait_id,
                exit,
            });
        });
        let has_probes = container.liveness_probe.is_some()
            || container.readiness_probe.is_some()
            || container.startup_probe.is_some();
        if has_probes {
            let probes = ContainerProbes::spawn(
                self.ctx.prober.clone(),
                ContainerProbesSpec {
                    pod_uid: self.uid.clone(),
                    container: container.clone(),
                    container_id: id.clone(),
                    pod_ip: self.observed.pod_ip,
                    started_at,
                },
                self.probes_tx.clone(),
            );
            self.slots[index].probes = Some(probes);
        }
    }

    /// Takes over the sandbox an earlier agent created: the one the newest containers joined,
    /// else the first; the others (left by an interrupted creation) are deleted.
    async fn adopt_sandbox(&mut self, adoption: &Adoption) {
        let wanted = adoption
            .containers
            .iter()
            .max_by_key(|c| c.created_at)
            .and_then(|c| c.sandbox.clone());
        let chosen = wanted
            .and_then(|id| adoption.sandboxes.iter().find(|s| s.id == id))
            .or_else(|| adoption.sandboxes.first())
            .cloned();
        for sandbox in &adoption.sandboxes {
            if Some(&sandbox.id) != chosen.as_ref().map(|c| &c.id) {
                info!(sandbox = %sandbox.id, "deleting a sandbox left over from an earlier agent");
                if let Err(err) = self.ctx.runtime.delete_sandbox(&sandbox.id).await {
                    warn!(error = %err, sandbox = %sandbox.id, "deleting a left-over sandbox");
                }
            }
        }
        if let Some(sandbox) = chosen {
            info!(sandbox = %sandbox.id, "adopted the sandbox");
            self.observed.pod_ip = sandbox.ip;
            self.sandbox = Some(sandbox);
        }
    }

    /// Takes over the containers an earlier agent created in the adopted sandbox; whether the
    /// pod's app containers had started (then the init containers are done).
    async fn adopt_containers(&mut self, adoption: Adoption) -> bool {
        let Some(sandbox) = self.sandbox.as_ref().map(|s| s.id.clone()) else {
            self.delete_instances(adoption.containers).await;
            return false;
        };
        let (usable, stale): (Vec<_>, Vec<_>) = adoption
            .containers
            .into_iter()
            .partition(|c| c.sandbox.as_ref() == Some(&sandbox));
        self.delete_instances(stale).await;
        let name_of = |c: &ContainerInfo| {
            c.labels
                .get(labels::CONTAINER_NAME)
                .cloned()
                .unwrap_or_else(|| c.name.clone())
        };
        let mut apps: Vec<Vec<ContainerInfo>> = vec![Vec::new(); self.slots.len()];
        let mut inits: Vec<Vec<ContainerInfo>> =
            vec![Vec::new(); self.pod.spec.init_containers.len()];
        let mut unknown = Vec::new();
        for info in usable {
            let name = name_of(&info);
            if let Some(index) = self.slots.iter().position(|s| s.container.name == name) {
                apps[index].push(info);
            } else if let Some(index) = self
                .pod
                .spec
                .init_containers
                .iter()
                .position(|c| c.name == name)
            {
                inits[index].push(info);
            } else {
                unknown.push(info);
            }
        }
        self.delete_instances(unknown).await;
        if apps.iter().all(Vec::is_empty) {
            // The init containers had not finished: they run again from the first.
            self.delete_instances(inits.into_iter().flatten().collect())
                .await;
            return false;
        }
        let stored = adoption.status.unwrap_or_default();
        for (container, mut instances) in
            self.pod.spec.init_containers.clone().into_iter().zip(inits)
        {
            instances.sort_by_key(|c| c.created_at);
            let Some(latest) = instances.pop() else {
                continue;
            };
            self.delete_instances(instances).await;
            self.instances.push(latest.id.clone());
            self.observed(true, &container).container_id = Some(latest.id.clone());
            if let ContainerState::Exited(exit) = latest.state {
                self.transition(
                    true,
                    &container,
                    ContainerEvent::Started {
                        at: exit.started_at,
                    },
                );
                self.transition(true, &container, ContainerEvent::Exited(exit.clone()));
                self.observed(true, &container).ready = exit.succeeded();
            }
        }
        let policy = self
            .pod
            .spec
            .restart_policy
            .unwrap_or(RestartPolicy::Always);
        for (index, mut instances) in apps.into_iter().enumerate() {
            instances.sort_by_key(|c| (c.created_at, restart_label(c)));
            let Some(latest) = instances.pop() else {
                continue;
            };
            let container = self.slots[index].container.clone();
            // The instance before the latest, if it exited, stays for `logs --previous` and
            // says how it ended (`lastState`); anything older goes.
            let kept = match instances.pop() {
                Some(previous) => match &previous.state {
                    ContainerState::Exited(exit) => Some((previous.id.clone(), exit.clone())),
                    _ => {
                        instances.push(previous);
                        None
                    }
                },
                None => None,
            };
            self.delete_instances(instances).await;
            let last_exit = match kept {
                Some((id, exit)) => {
                    self.instances.push(id.clone());
                    self.previous.insert((false, container.name.clone()), id);
                    Some(exit)
                }
                None => stored
                    .container_statuses
                    .iter()
                    .find(|s| s.name == container.name)
                    .and_then(|s| s.last_state.as_ref()?.terminated.as_ref())
                    .map(stored_exit),
            };
            self.observed(false, &container).last_exit = last_exit;
            let stored_count = stored
                .container_statuses
                .iter()
                .find(|s| s.name == container.name)
                .map(|s| u32::try_from(s.restart_count).unwrap_or(0));
            let restart_count = restart_label(&latest).max(stored_count.unwrap_or(0));
            self.slots[index].tracker =
                RestartTracker::adopted(policy, self.backoff, restart_count);
            if let Some(status) = stored
                .container_statuses
                .iter()
                .find(|s| s.name == container.name && !s.image_id.is_empty())
            {
                self.observed(false, &container).image_id = status.image_id.clone();
            }
            match latest.state {
                ContainerState::Created => {
                    // Created but never started: start a fresh one.
                    self.delete_instances(vec![latest]).await;
                }
                ContainerState::Running => {
                    info!(container = %container.name, id = %latest.id, restart_count, "adopted a running container");
                    let at = latest.started_at.unwrap_or(latest.created_at);
                    self.instances.push(latest.id.clone());
                    self.slots[index].current = Some(latest.id.clone());
                    // Readiness as last reported for this very instance, until its probe
                    // says otherwise.
                    let was_ready = stored.container_statuses.iter().any(|s| {
                        s.name == container.name
                            && s.ready
                            && s.container_id.as_deref()
                                == Some(format!("berth://{}", latest.id).as_str())
                    });
                    let observed = self.observed(false, &container);
                    observed.container_id = Some(latest.id.clone());
                    observed.restart_count = restart_count;
                    observed.ready = container.readiness_probe.is_none() || was_ready;
                    observed.started = true;
                    self.transition(false, &container, ContainerEvent::Started { at });
                    self.follow(index, &latest.id, Instant::now());
                }
                ContainerState::Exited(exit) => {
                    info!(container = %container.name, id = %latest.id, exit_code = exit.exit_code, "container exited while the agent was down");
                    self.instances.push(latest.id.clone());
                    self.slots[index].current = Some(latest.id.clone());
                    let observed = self.observed(false, &container);
                    observed.container_id = Some(latest.id.clone());
                    observed.restart_count = restart_count;
                    self.transition(
                        false,
                        &container,
                        ContainerEvent::Started {
                            at: exit.started_at,
                        },
                    );
                    self.transition(false, &container, ContainerEvent::Exited(exit.clone()));
                    // The restart policy decides in the worker's loop, as for any exit.
                    let _ = self.msgs_tx.send(Msg::StartFailed { index, exit });
                }
            }
        }
        self.publish();
        true
    }

    /// Stops (at once) and deletes instances the pod does not need any more.
    async fn delete_instances(&mut self, instances: Vec<ContainerInfo>) {
        for info in instances {
            if info.state == ContainerState::Running
                && let Err(err) = self.ctx.runtime.stop(&info.id, Duration::ZERO, None).await
            {
                warn!(error = %err, container = %info.id, "stopping a left-over container");
            }
            match self.ctx.runtime.delete(&info.id).await {
                Ok(()) => self.instances.retain(|id| *id != info.id),
                Err(err) => {
                    warn!(error = %err, container = %info.id, "deleting a left-over container")
                }
            }
        }
    }

    /// Runs a postStart hook; a failure kills the container, as the kubelet does.
    async fn post_start(
        &mut self,
        container: &Container,
        id: &ContainerId,
        hook: &LifecycleHandler,
    ) {
        if let Err(err) = self
            .run_hook("PostStart", container, id, hook, self.grace)
            .await
        {
            warn!(error = %err, "postStart hook failed");
            self.event(
                EventType::Warning,
                "FailedPostStartHook",
                Some(&container.name),
                error_chain(&err),
            );
            self.event(
                EventType::Normal,
                "Killing",
                Some(&container.name),
                format!(
                    "FailedPostStartHook: Container {} failed post-start hook, will be killed",
                    container.name
                ),
            );
            if let Err(err) = self.ctx.runtime.stop(id, self.grace, None).await {
                warn!(error = %err, "stopping after a failed postStart hook");
            }
        }
    }

    async fn run_hook(
        &self,
        hook: &'static str,
        container: &Container,
        id: &ContainerId,
        handler: &LifecycleHandler,
        timeout: Duration,
    ) -> Result<()> {
        let name = container.name.clone();
        if let Some(exec) = &handler.exec {
            let result = self
                .ctx
                .runtime
                .exec(id, &exec.command, timeout)
                .await
                .map_err(|source| PodWorkerError::HookRun {
                    hook,
                    container: name.clone(),
                    source: Box::new(source),
                })?;
            if result.exit_code != 0 {
                return Err(PodWorkerError::HookExit {
                    hook,
                    container: name,
                    argv: exec.command.clone(),
                    exit_code: result.exit_code,
                    output: String::from_utf8_lossy(&result.stdout).into_owned(),
                });
            }
            return Ok(());
        }
        if let Some(action) = &handler.http_get {
            let target = ProbeTarget {
                container: name.clone(),
                container_id: id.clone(),
                ports: container.ports.clone(),
                pod_ip: self.observed.pod_ip,
                env: Vec::new(),
            };
            let outcome = http::probe(action, &target, timeout, self.ctx.prober.user_agent())
                .await
                .map_err(|source: ProbeError| PodWorkerError::HookRun {
                    hook,
                    container: name.clone(),
                    source: Box::new(source),
                })?;
            if outcome.health != Health::Success {
                return Err(PodWorkerError::HookHttp {
                    hook,
                    container: name,
                    output: outcome.output,
                });
            }
            return Ok(());
        }
        if let Some(sleep) = &handler.sleep {
            let seconds = Duration::from_secs(u64::try_from(sleep.seconds).unwrap_or(0));
            tokio::time::sleep(seconds.min(timeout)).await;
        }
        Ok(())
    }

    async fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Exited { name, id, exit } => {
                let Some(index) = self.slot_of(&name, &id) else {
                    return;
                };
                let exit = exit.unwrap_or_else(|err| {
                    warn!(error = %err, container = %name, "waiting for the container failed");
                    let now = self.ctx.clock.timestamp();
                    ExitInfo {
                        exit_code: 128,
                        signal: None,
                        oom_killed: false,
                        started_at: now,
                        finished_at: now,
                    }
                });
                if let Some(probes) = self.slots[index].probes.take() {
                    probes.stop().await;
                }
                let container = self.slots[index].container.clone();
                self.transition(false, &container, ContainerEvent::Exited(exit.clone()));
                self.observed(false, &container).ready = false;
                self.publish();
                self.on_exit(index, exit).await;
            }
            Msg::StartFailed { index, exit } => self.on_exit(index, exit).await,
            Msg::RestartDue { name } => {
                if let Some(index) = self.slots.iter().position(|s| s.container.name == name) {
                    self.restart(index).await;
                }
            }
        }
    }

    fn slot_of(&self, name: &str, id: &ContainerId) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.container.name == name && s.current.as_ref() == Some(id))
    }

    /// Applies the restart policy to an exit of app container `index`.
    async fn on_exit(&mut self, index: usize, exit: ExitInfo) {
        let container = self.slots[index].container.clone();
        let decision = self.slots[index].tracker.on_exit(&exit, Instant::now());
        debug!(container = %container.name, ?decision, exit_code = exit.exit_code, "exited");
        match decision {
            Decision::Restart { after } => {
                self.slots[index].pending_exit = Some(exit);
                if after.is_zero() {
                    self.restart(index).await;
                } else {
                    let tracker = self.slots[index].tracker.clone();
                    self.back_off(false, &container, &tracker);
                    let msgs = self.msgs_tx.clone();
                    let name = container.name.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        let _ = msgs.send(Msg::RestartDue { name });
                    });
                }
            }
            Decision::Stay(terminal) => {
                info!(container = %container.name, ?terminal, "container stays terminated");
                self.slots[index].current = None;
                let all_done = self.slots.iter().all(|s| s.current.is_none());
                if all_done {
                    self.set_stage(PodStage::Finished);
                }
                self.publish();
            }
        }
    }

    async fn restart(&mut self, index: usize) {
        self.slots[index].tracker.on_restart(Instant::now());
        let name = self.slots[index].container.name.clone();
        self.delete_exited(&name, false).await;
        self.start_app(index).await;
    }

    async fn handle_probe(&mut self, result: ProbeResult) {
        let Some(index) = self.slot_of(&result.container, &result.container_id) else {
            return;
        };
        let container = self.slots[index].container.clone();
        let observed = self.observed(false, &container);
        match (result.kind, result.health) {
            (ProbeKind::Readiness, health) => {
                observed.ready = health == Health::Success;
                if health == Health::Failure {
                    self.unhealthy(&container.name, result.kind, &result.output);
                }
            }
            (ProbeKind::Startup, Health::Success) => observed.started = true,
            (kind @ (ProbeKind::Liveness | ProbeKind::Startup), Health::Failure) => {
                self.unhealthy(&container.name, kind, &result.output);
                let probe = match kind {
                    ProbeKind::Liveness => container.liveness_probe.as_ref(),
                    _ => container.startup_probe.as_ref(),
                };
                let grace = probe_grace(probe).unwrap_or(self.grace);
                self.event(
                    EventType::Normal,
                    "Killing",
                    Some(&container.name),
                    format!(
                        "Container {} failed {kind} probe, will be restarted",
                        container.name
                    ),
                );
                let runtime = self.ctx.runtime.clone();
                let id = result.container_id.clone();
                // The exit comes back through the container's wait task.
                tokio::spawn(
                    async move {
                        if let Err(err) = runtime.stop(&id, grace, None).await {
                            warn!(error = %err, "stopping an unhealthy container");
                        }
                    }
                    .in_current_span(),
                );
            }
            _ => {}
        }
        self.publish();
    }

    fn unhealthy(&self, container: &str, kind: ProbeKind, output: &str) {
        let kind = match kind {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        };
        self.event(
            EventType::Warning,
            "Unhealthy",
            Some(container),
            format!("{kind} probe failed: {output}"),
        );
    }

    /// Stops every container (preStop first, within `grace`), deletes them and the sandbox.
    async fn terminate(&mut self, grace: Duration) {
        self.set_stage(PodStage::Terminating);
        info!(grace = %GoDuration(grace), "terminating");
        for slot in &mut self.slots {
            if let Some(probes) = slot.probes.take() {
                probes.stop().await;
            }
        }
        // The wait counts against the grace period, as the preStop hooks do.
        let grace = grace.saturating_sub(self.drain(grace).await);
        let mut stops = Vec::new();
        for index in 0..self.slots.len() {
            let container = self.slots[index].container.clone();
            let Some(id) = self.slots[index].current.clone() else {
                continue;
            };
            let running = self.observed.containers.iter().any(|o| {
                o.name == container.name && matches!(o.phase, ContainerPhase::Running { .. })
            });
            if !running {
                // Exited and waiting out its backoff: nothing to stop.
                continue;
            }
            self.event(
                EventType::Normal,
                "Killing",
                Some(&container.name),
                format!("Stopping container {}", container.name),
            );
            let pre_stop = container
                .lifecycle
                .as_ref()
                .and_then(|l| l.pre_stop.clone());
            stops.push(self.stop_one(container, id, pre_stop, grace));
        }
        let exits = join_all(stops).await;
        for (container, exit) in exits {
            if let Some(exit) = exit {
                self.transition(false, &container, ContainerEvent::Exited(exit));
                self.observed(false, &container).ready = false;
            }
        }
        for slot in &mut self.slots {
            slot.current = None;
        }
        for id in std::mem::take(&mut self.instances) {
            // An init container interrupted mid-run is still running (stopping an exited
            // container is a no-op).
            if let Err(err) = self.ctx.runtime.stop(&id, grace, None).await {
                warn!(error = %err, container = %id, "stopping container");
            }
            if let Err(err) = self.ctx.runtime.delete(&id).await {
                warn!(error = %err, container = %id, "deleting container");
            }
        }
        if let Some(sandbox) = self.sandbox.take()
            && let Err(err) = self.ctx.runtime.delete_sandbox(&sandbox.id).await
        {
            warn!(error = %err, sandbox = %sandbox.id, "deleting sandbox");
        }
        if let Err(err) = self.ctx.volumes.remove(&self.uid).await {
            warn!(error = %err, "removing volumes");
        }
        self.publish();
        self.set_stage(PodStage::Terminated);
    }

    /// Waits (bounded by [`DRAIN_WAIT`] and `grace`) until the Service data path sends no new
    /// connection to the pod's address, so that none reaches a container being stopped.
    /// Returns how long it waited.
    async fn drain(&self, grace: Duration) -> Duration {
        let Some(ip) = self.sandbox.as_ref().and_then(|sandbox| sandbox.ip) else {
            return Duration::ZERO;
        };
        let begun = tokio::time::Instant::now();
        let limit = grace.min(DRAIN_WAIT);
        if tokio::time::timeout(limit, self.ctx.drain.drained(ip))
            .await
            .is_err()
        {
            warn!(%ip, waited = %GoDuration(limit), "Services still route to the pod; stopping it anyway");
        }
        begun.elapsed()
    }

    /// preStop, then stop with what is left of the grace period; the exit once stopped.
    async fn stop_one(
        &self,
        container: Container,
        id: ContainerId,
        pre_stop: Option<LifecycleHandler>,
        grace: Duration,
    ) -> (Container, Option<ExitInfo>) {
        let begun = Instant::now();
        if let Some(hook) = &pre_stop {
            let hook_run = self.run_hook("PreStop", &container, &id, hook, grace);
            match tokio::time::timeout(grace, hook_run).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => self.event(
                    EventType::Warning,
                    "FailedPreStopHook",
                    Some(&container.name),
                    error_chain(&err),
                ),
                Err(_) => self.event(
                    EventType::Warning,
                    "FailedPreStopHook",
                    Some(&container.name),
                    format!(
                        "PreStop hook of container {} did not finish within {}",
                        container.name,
                        GoDuration(grace)
                    ),
                ),
            }
        }
        let remaining = grace.saturating_sub(begun.elapsed());
        if let Err(err) = self.ctx.runtime.stop(&id, remaining, None).await {
            warn!(error = %err, container = %container.name, "stop");
        }
        let exit = self.ctx.runtime.wait(&id).await.ok();
        (container, exit)
    }
}

/// How a stored `lastState.terminated` ended, as the worker records exits.
fn stored_exit(terminated: &berth_api::core_v1::ContainerStateTerminated) -> ExitInfo {
    let at = |time: &Option<Time>| time.map_or(jiff::Timestamp::UNIX_EPOCH, |t| t.0);
    ExitInfo {
        exit_code: terminated.exit_code,
        signal: terminated
            .signal
            .map(crate::runtime::Signal)
            .filter(|s| s.0 > 0),
        oom_killed: terminated.reason.as_deref() == Some("OOMKilled"),
        started_at: at(&terminated.started_at),
        finished_at: at(&terminated.finished_at),
    }
}

/// Polls futures concurrently and returns their outputs in order (containers of a pod stop in
/// parallel, as the kubelet stops them).
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("all ready")).collect()
}

/// The restart count an instance was created with ([`labels::RESTART_COUNT`]; 0 without one).
fn restart_label(info: &ContainerInfo) -> u32 {
    info.labels
        .get(labels::RESTART_COUNT)
        .and_then(|count| count.parse().ok())
        .unwrap_or(0)
}

fn probe_grace(probe: Option<&Probe>) -> Option<Duration> {
    probe?
        .termination_grace_period_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests;
