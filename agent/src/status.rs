//! Pod status as the kubelet computes it, from what the agent observed of each container: pure
//! functions, no I/O.
//!
//! The agent's view of one container is a [`ContainerPhase`] with explicit transitions:
//!
//! ```text
//!            Started                    Exited
//!  Waiting ───────────► Running ───────────────────► Terminated
//!   │  ▲ (ContainerCreating,                           │   │
//!   │  │  PodInitializing,      restart pending        │   │ restarted at once
//!   │  └─ CrashLoopBackOff, ... ◄──────────────────────┘   │ (no backoff)
//!   │                                                      ▼
//!   └── start failed (Exited) ──► Terminated          Running
//! ```
//!
//! From those, [`pod_status`] derives the container statuses (state, lastState, restartCount,
//! ready, started), the pod phase (the kubelet's `getPhase`) and the conditions `PodScheduled`,
//! `Initialized`, `ContainersReady` and `Ready`, keeping a condition's `lastTransitionTime` while
//! its status does not change.

use std::{fmt, net::IpAddr};

use berth_api::{
    Time,
    core_v1::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
        ContainerStatus, PodCondition, PodConditionType, PodIp, PodPhase, PodSpec, PodStatus,
        RestartPolicy,
    },
    meta::ConditionStatus,
};
use jiff::Timestamp;

use crate::runtime::{ContainerId, ExitInfo};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    #[error("container {container:?}: cannot go from {from} to {to}")]
    Transition {
        container: String,
        from: &'static str,
        to: &'static str,
    },
}

pub type Result<T, E = StatusError> = std::result::Result<T, E>;

/// Why a container is not running yet (the kubelet's waiting reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitingReason {
    /// Not created yet (the pod has no init containers).
    ContainerCreating,
    /// Not created yet, behind init containers.
    PodInitializing,
    /// Waiting out its restart backoff.
    CrashLoopBackOff,
    ErrImagePull,
    ImagePullBackOff,
    CreateContainerError,
    RunContainerError,
}

impl WaitingReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ContainerCreating => "ContainerCreating",
            Self::PodInitializing => "PodInitializing",
            Self::CrashLoopBackOff => "CrashLoopBackOff",
            Self::ErrImagePull => "ErrImagePull",
            Self::ImagePullBackOff => "ImagePullBackOff",
            Self::CreateContainerError => "CreateContainerError",
            Self::RunContainerError => "RunContainerError",
        }
    }
}

impl fmt::Display for WaitingReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one container is, as the agent sees it (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerPhase {
    Waiting {
        reason: WaitingReason,
        message: Option<String>,
    },
    Running {
        started_at: Timestamp,
    },
    Terminated(ExitInfo),
}

/// What moves a [`ContainerPhase`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerEvent {
    Started {
        at: Timestamp,
    },
    Exited(ExitInfo),
    Waiting {
        reason: WaitingReason,
        message: Option<String>,
    },
}

impl ContainerPhase {
    fn name(&self) -> &'static str {
        match self {
            Self::Waiting { .. } => "Waiting",
            Self::Running { .. } => "Running",
            Self::Terminated(_) => "Terminated",
        }
    }

    /// The phase after `event`; a running container can only exit, and an exited one cannot exit
    /// again.
    pub fn apply(&self, container: &str, event: ContainerEvent) -> Result<Self> {
        let next = match event {
            ContainerEvent::Started { at } => Self::Running { started_at: at },
            ContainerEvent::Exited(exit) => Self::Terminated(exit),
            ContainerEvent::Waiting { reason, message } => Self::Waiting { reason, message },
        };
        let allowed = matches!(
            (self, &next),
            (Self::Waiting { .. }, _)
                | (Self::Running { .. }, Self::Terminated(_))
                | (
                    Self::Terminated(_),
                    Self::Waiting { .. } | Self::Running { .. }
                )
        );
        if allowed {
            Ok(next)
        } else {
            Err(StatusError::Transition {
                container: container.to_owned(),
                from: self.name(),
                to: next.name(),
            })
        }
    }
}

/// What the agent knows of one container of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedContainer {
    pub name: String,
    pub image: String,
    /// The resolved image (digest), once pulled.
    pub image_id: String,
    /// The current (or last) instance.
    pub container_id: Option<ContainerId>,
    pub phase: ContainerPhase,
    /// How the previous instance ended (Kubernetes' `lastState`).
    pub last_exit: Option<ExitInfo>,
    pub restart_count: u32,
    /// The readiness probe's result (true when it has none).
    pub ready: bool,
    /// The startup probe succeeded (true when it has none).
    pub started: bool,
}

impl ObservedContainer {
    /// A container that has not been created yet.
    pub fn waiting(name: &str, image: &str, reason: WaitingReason) -> Self {
        Self {
            name: name.to_owned(),
            image: image.to_owned(),
            image_id: String::new(),
            container_id: None,
            phase: ContainerPhase::Waiting {
                reason,
                message: None,
            },
            last_exit: None,
            restart_count: 0,
            ready: false,
            started: false,
        }
    }
}

/// What the agent observed of a pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedPod {
    pub init_containers: Vec<ObservedContainer>,
    pub containers: Vec<ObservedContainer>,
    pub pod_ip: Option<IpAddr>,
    pub host_ip: Option<IpAddr>,
    /// When the agent accepted the pod.
    pub start_time: Option<Timestamp>,
}

/// The id as Kubernetes shows it, with the runtime's scheme (`containerd://...`): `berth://...`.
fn container_id_uri(id: &ContainerId) -> String {
    format!("berth://{id}")
}

fn terminated(exit: &ExitInfo, container_id: Option<&ContainerId>) -> ContainerStateTerminated {
    let reason = if exit.oom_killed {
        "OOMKilled"
    } else if exit.exit_code == 0 {
        "Completed"
    } else {
        "Error"
    };
    ContainerStateTerminated {
        exit_code: exit.exit_code,
        signal: exit.signal.map(|s| s.0),
        reason: Some(reason.to_owned()),
        message: None,
        started_at: Some(Time(exit.started_at)),
        finished_at: Some(Time(exit.finished_at)),
        container_id: container_id.map(container_id_uri),
    }
}

/// The Kubernetes status of one container.
pub fn container_status(observed: &ObservedContainer) -> ContainerStatus {
    let running = matches!(observed.phase, ContainerPhase::Running { .. });
    let state = match &observed.phase {
        ContainerPhase::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.as_str().to_owned()),
                message: message.clone(),
            }),
            ..Default::default()
        },
        ContainerPhase::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(*started_at)),
            }),
            ..Default::default()
        },
        ContainerPhase::Terminated(exit) => ContainerState {
            terminated: Some(terminated(exit, observed.container_id.as_ref())),
            ..Default::default()
        },
    };
    ContainerStatus {
        name: observed.name.clone(),
        state: Some(state),
        last_state: observed.last_exit.as_ref().map(|exit| ContainerState {
            terminated: Some(terminated(exit, None)),
            ..Default::default()
        }),
        ready: running && observed.ready,
        started: Some(running && observed.started),
        restart_count: i32::try_from(observed.restart_count).unwrap_or(i32::MAX),
        image: observed.image.clone(),
        image_id: observed.image_id.clone(),
        container_id: observed.container_id.as_ref().map(container_id_uri),
    }
}

/// Statuses for the spec's containers in spec order; containers not observed yet are waiting
/// (`PodInitializing` when the pod has init containers, else `ContainerCreating`).
fn statuses(
    names: impl Iterator<Item = (String, String)>,
    observed: &[ObservedContainer],
    default_reason: WaitingReason,
) -> Vec<ContainerStatus> {
    names
        .map(
            |(name, image)| match observed.iter().find(|o| o.name == name) {
                Some(found) => container_status(found),
                None => {
                    container_status(&ObservedContainer::waiting(&name, &image, default_reason))
                }
            },
        )
        .collect()
}

fn state_of(status: &ContainerStatus) -> (bool, Option<i32>, bool) {
    let state = status.state.as_ref();
    let running = state.is_some_and(|s| s.running.is_some());
    let exit = state
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code);
    let waiting = state.is_some_and(|s| s.waiting.is_some());
    (running, exit, waiting)
}

fn last_exit_code(status: &ContainerStatus) -> Option<i32> {
    status
        .last_state
        .as_ref()?
        .terminated
        .as_ref()
        .map(|t| t.exit_code)
}

/// The pod's phase from its container statuses, as the kubelet's `getPhase` decides it.
pub fn pod_phase(
    spec: &PodSpec,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
) -> PodPhase {
    let policy = spec.restart_policy.unwrap_or(RestartPolicy::Always);
    let find = |list: &[ContainerStatus], name: &str| list.iter().find(|s| s.name == name).cloned();
    let (mut pending_init, mut failed_init) = (0, 0);
    for container in &spec.init_containers {
        let Some(status) = find(init_statuses, &container.name) else {
            pending_init += 1;
            continue;
        };
        match state_of(&status) {
            (true, _, _) => pending_init += 1,
            (_, Some(code), _) => failed_init += usize::from(code != 0),
            (_, _, true) => match last_exit_code(&status) {
                Some(code) => failed_init += usize::from(code != 0),
                None => pending_init += 1,
            },
            _ => pending_init += 1,
        }
    }
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for container in &spec.containers {
        let Some(status) = find(statuses, &container.name) else {
            unknown += 1;
            continue;
        };
        match state_of(&status) {
            (true, _, _) => running += 1,
            (_, Some(code), _) => {
                stopped += 1;
                succeeded += usize::from(code == 0);
            }
            (_, _, true) if last_exit_code(&status).is_some() => stopped += 1,
            (_, _, true) => waiting += 1,
            _ => unknown += 1,
        }
    }
    if failed_init > 0 && policy == RestartPolicy::Never {
        return PodPhase::Failed;
    }
    if pending_init > 0 || waiting > 0 {
        return PodPhase::Pending;
    }
    if running > 0 && unknown == 0 {
        return PodPhase::Running;
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        return match policy {
            // Every container is restarting.
            RestartPolicy::Always => PodPhase::Running,
            _ if stopped == succeeded => PodPhase::Succeeded,
            RestartPolicy::Never => PodPhase::Failed,
            // OnFailure: a failed container is restarting.
            RestartPolicy::OnFailure => PodPhase::Running,
        };
    }
    PodPhase::Pending
}

/// Go prints a `[]string` as `[a b]`.
fn go_list(names: &[String]) -> String {
    format!("[{}]", names.join(" "))
}

/// A condition with no times yet: `status`, `reason`, `message`.
fn condition(
    type_: PodConditionType,
    status: ConditionStatus,
    reason: Option<&str>,
    message: Option<String>,
) -> PodCondition {
    PodCondition {
        type_,
        status,
        last_probe_time: None,
        last_transition_time: None,
        reason: reason.map(str::to_owned),
        message,
    }
}

fn initialized_condition(
    spec: &PodSpec,
    phase: PodPhase,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
) -> PodCondition {
    let (mut unknown, mut incomplete) = (Vec::new(), Vec::new());
    for container in &spec.init_containers {
        match init_statuses.iter().find(|s| s.name == container.name) {
            Some(status) if state_of(status).1 == Some(0) => {}
            Some(_) => incomplete.push(container.name.clone()),
            None => unknown.push(container.name.clone()),
        }
    }
    let initialized = |reason| {
        condition(
            PodConditionType::Initialized,
            ConditionStatus::True,
            reason,
            None,
        )
    };
    if phase == PodPhase::Succeeded && unknown.is_empty() {
        return initialized(Some("PodCompleted"));
    }
    // A regular container that has run means the pod was initialized before.
    let regular_started = statuses.iter().any(|s| {
        let (running, exit, _) = state_of(s);
        running || exit.is_some() || last_exit_code(s).is_some()
    });
    if regular_started {
        return initialized(None);
    }
    let mut messages = Vec::new();
    if !unknown.is_empty() {
        messages.push(format!(
            "containers with unknown status: {}",
            go_list(&unknown)
        ));
    }
    if !incomplete.is_empty() {
        messages.push(format!(
            "containers with incomplete status: {}",
            go_list(&incomplete)
        ));
    }
    if messages.is_empty() {
        return initialized(None);
    }
    condition(
        PodConditionType::Initialized,
        ConditionStatus::False,
        Some("ContainersNotInitialized"),
        Some(messages.join(", ")),
    )
}

fn containers_ready_condition(
    spec: &PodSpec,
    phase: PodPhase,
    statuses: &[ContainerStatus],
) -> PodCondition {
    let ready = PodConditionType::ContainersReady;
    let (mut unknown, mut unready) = (Vec::new(), Vec::new());
    for container in &spec.containers {
        match statuses.iter().find(|s| s.name == container.name) {
            Some(status) if status.ready => {}
            Some(_) => unready.push(container.name.clone()),
            None => unknown.push(container.name.clone()),
        }
    }
    if phase == PodPhase::Succeeded && unknown.is_empty() {
        return condition(ready, ConditionStatus::False, Some("PodCompleted"), None);
    }
    if phase == PodPhase::Failed {
        return condition(ready, ConditionStatus::False, Some("PodFailed"), None);
    }
    let mut messages = Vec::new();
    if !unknown.is_empty() {
        messages.push(format!(
            "containers with unknown status: {}",
            go_list(&unknown)
        ));
    }
    if !unready.is_empty() {
        messages.push(format!(
            "containers with unready status: {}",
            go_list(&unready)
        ));
    }
    if messages.is_empty() {
        return condition(ready, ConditionStatus::True, None, None);
    }
    condition(
        ready,
        ConditionStatus::False,
        Some("ContainersNotReady"),
        Some(messages.join(", ")),
    )
}

/// Sets each condition's `lastTransitionTime`: kept from `previous` while the status is the
/// same, `now` otherwise.
fn stamp(
    mut conditions: Vec<PodCondition>,
    previous: Option<&PodStatus>,
    now: Time,
) -> Vec<PodCondition> {
    for condition in &mut conditions {
        let before = previous
            .into_iter()
            .flat_map(|p| &p.conditions)
            .find(|c| c.type_ == condition.type_);
        condition.last_transition_time = match before {
            Some(before) if before.status == condition.status => {
                before.last_transition_time.or(Some(now))
            }
            _ => Some(now),
        };
    }
    conditions
}

/// The pod's status from what the agent observed. `previous` is the status last reported (its
/// conditions' transition times are kept), `now` stamps the conditions that changed.
pub fn pod_status(
    spec: &PodSpec,
    observed: &ObservedPod,
    previous: Option<&PodStatus>,
    now: Time,
) -> PodStatus {
    let default_reason = if spec.init_containers.is_empty() {
        WaitingReason::ContainerCreating
    } else {
        WaitingReason::PodInitializing
    };
    let init_statuses = statuses(
        spec.init_containers
            .iter()
            .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default())),
        &observed.init_containers,
        default_reason,
    );
    let mut container_statuses = statuses(
        spec.containers
            .iter()
            .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default())),
        &observed.containers,
        default_reason,
    );
    let phase = pod_phase(spec, &init_statuses, &container_statuses);
    let containers_ready = containers_ready_condition(spec, phase, &container_statuses);
    let ready = PodCondition {
        type_: PodConditionType::Ready,
        ..containers_ready.clone()
    };
    let conditions = vec![
        condition(
            PodConditionType::PodScheduled,
            ConditionStatus::True,
            None,
            None,
        ),
        initialized_condition(spec, phase, &init_statuses, &container_statuses),
        containers_ready,
        ready,
    ];
    // The kubelet sorts regular container statuses by name; init containers keep spec order.
    container_statuses.sort_by(|a, b| a.name.cmp(&b.name));
    PodStatus {
        phase: Some(phase),
        conditions: stamp(conditions, previous, now),
        message: None,
        reason: None,
        host_ip: observed.host_ip.map(|ip| ip.to_string()),
        pod_ip: observed.pod_ip.map(|ip| ip.to_string()),
        pod_ips: observed
            .pod_ip
            .map(|ip| PodIp { ip: ip.to_string() })
            .into_iter()
            .collect(),
        start_time: observed.start_time.map(Time),
        init_container_statuses: init_statuses,
        container_statuses,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use berth_api::core_v1::Container;

    use super::*;
    use crate::{runtime::Signal, testing::exit_info};

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn spec(policy: RestartPolicy, init: &[&str], containers: &[&str]) -> PodSpec {
        let container = |name: &&str| Container {
            name: (*name).to_owned(),
            image: Some("img".into()),
            ..Default::default()
        };
        PodSpec {
            init_containers: init.iter().map(container).collect(),
            containers: containers.iter().map(container).collect(),
            restart_policy: Some(policy),
            ..Default::default()
        }
    }

    /// A container in a described state: `waiting`, `running`, `ready`, `exit:N`, `oom`,
    /// `backoff:N` (CrashLoopBackOff after exiting with N).
    fn observed(name: &str, state: &str) -> ObservedContainer {
        let mut c = ObservedContainer::waiting(name, "img", WaitingReason::ContainerCreating);
        c.container_id = Some(ContainerId(format!("{name}-1")));
        let exit = |code: i32| exit_info(code, Duration::from_secs(5));
        match state.split_once(':') {
            None if state == "waiting" => c.container_id = None,
            None if state == "running" || state == "ready" => {
                c.phase = ContainerPhase::Running { started_at: at(0) };
                c.started = true;
                c.ready = state == "ready";
            }
            None if state == "oom" => {
                let mut info = exit(137);
                info.oom_killed = true;
                info.signal = Some(Signal::KILL);
                c.phase = ContainerPhase::Terminated(info);
            }
            Some(("exit", code)) => {
                c.phase = ContainerPhase::Terminated(exit(code.parse().unwrap()))
            }
            Some(("backoff", code)) => {
                c.phase = ContainerPhase::Waiting {
                    reason: WaitingReason::CrashLoopBackOff,
                    message: Some("back-off 10s".into()),
                };
                c.last_exit = Some(exit(code.parse().unwrap()));
                c.restart_count = 1;
            }
            _ => panic!("unknown state {state}"),
        }
        c
    }

    fn pod(init: &[(&str, &str)], containers: &[(&str, &str)]) -> ObservedPod {
        ObservedPod {
            init_containers: init.iter().map(|(n, s)| observed(n, s)).collect(),
            containers: containers.iter().map(|(n, s)| observed(n, s)).collect(),
            pod_ip: Some("10.88.0.2".parse().unwrap()),
            host_ip: None,
            start_time: Some(at(0)),
        }
    }

    #[test]
    fn phase_follows_the_kubelet() {
        use PodPhase::*;
        use RestartPolicy::*;
        type Case<'a> = (
            RestartPolicy,
            &'a [(&'a str, &'a str)],
            &'a [(&'a str, &'a str)],
            PodPhase,
        );
        let cases: &[Case] = &[
            (Always, &[], &[("a", "waiting")], Pending),
            (Always, &[], &[("a", "running"), ("b", "waiting")], Pending),
            (Always, &[], &[("a", "running"), ("b", "exit:0")], Running),
            (Always, &[], &[("a", "exit:0"), ("b", "exit:1")], Running),
            (Always, &[], &[("a", "backoff:1")], Running),
            (
                OnFailure,
                &[],
                &[("a", "exit:0"), ("b", "exit:0")],
                Succeeded,
            ),
            (
                OnFailure,
                &[],
                &[("a", "exit:0"), ("b", "backoff:1")],
                Running,
            ),
            (OnFailure, &[], &[("a", "exit:0"), ("b", "exit:2")], Running),
            (Never, &[], &[("a", "exit:0"), ("b", "exit:0")], Succeeded),
            (Never, &[], &[("a", "exit:0"), ("b", "exit:1")], Failed),
            (Never, &[], &[("a", "oom")], Failed),
            (Never, &[], &[("a", "running"), ("b", "exit:1")], Running),
            // Init containers.
            (Always, &[("i", "waiting")], &[("a", "waiting")], Pending),
            (Always, &[("i", "running")], &[("a", "waiting")], Pending),
            (Always, &[("i", "exit:0")], &[("a", "running")], Running),
            (Always, &[("i", "backoff:1")], &[("a", "waiting")], Pending),
            (Never, &[("i", "exit:1")], &[("a", "waiting")], Failed),
            (OnFailure, &[("i", "exit:1")], &[("a", "waiting")], Pending),
        ];
        for (policy, init, containers, expected) in cases {
            let names =
                |list: &[(&str, &str)]| list.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>();
            let init_names = names(init);
            let names = names(containers);
            let init_refs: Vec<&str> = init_names.iter().map(String::as_str).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let status = pod_status(
                &spec(*policy, &init_refs, &refs),
                &pod(init, containers),
                None,
                Time(at(1)),
            );
            assert_eq!(
                status.phase,
                Some(*expected),
                "{policy:?} init={init:?} containers={containers:?}"
            );
        }
    }

    #[test]
    fn unobserved_containers_are_creating_or_initializing() {
        let status = pod_status(
            &spec(RestartPolicy::Always, &[], &["b", "a"]),
            &ObservedPod::default(),
            None,
            Time(at(1)),
        );
        let reasons: Vec<_> = status
            .container_statuses
            .iter()
            .map(|s| {
                (
                    s.name.as_str(),
                    s.state
                        .as_ref()
                        .unwrap()
                        .waiting
                        .as_ref()
                        .unwrap()
                        .reason
                        .as_deref()
                        .unwrap(),
                )
            })
            .collect();
        assert_eq!(
            reasons,
            vec![("a", "ContainerCreating"), ("b", "ContainerCreating")],
            "sorted by name"
        );
        assert_eq!(status.phase, Some(PodPhase::Pending));

        let status = pod_status(
            &spec(RestartPolicy::Always, &["init"], &["a"]),
            &ObservedPod::default(),
            None,
            Time(at(1)),
        );
        for s in status
            .init_container_statuses
            .iter()
            .chain(&status.container_statuses)
        {
            assert_eq!(
                s.state
                    .as_ref()
                    .unwrap()
                    .waiting
                    .as_ref()
                    .unwrap()
                    .reason
                    .as_deref(),
                Some("PodInitializing")
            );
        }
    }

    #[test]
    fn container_status_reasons_and_last_state() {
        let terminated = |state: &str| {
            let status = container_status(&observed("a", state));
            status.state.unwrap().terminated.unwrap()
        };
        assert_eq!(terminated("exit:0").reason.as_deref(), Some("Completed"));
        assert_eq!(terminated("exit:3").reason.as_deref(), Some("Error"));
        let oom = terminated("oom");
        assert_eq!(
            (oom.reason.as_deref(), oom.exit_code, oom.signal),
            (Some("OOMKilled"), 137, Some(9))
        );
        assert_eq!(oom.container_id.as_deref(), Some("berth://a-1"));
        assert_eq!(
            oom.finished_at,
            Some(Time(
                Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_secs(5)
            ))
        );

        let backoff = container_status(&observed("a", "backoff:1"));
        let waiting = backoff.state.unwrap().waiting.unwrap();
        assert_eq!(
            (waiting.reason.as_deref(), waiting.message.as_deref()),
            (Some("CrashLoopBackOff"), Some("back-off 10s"))
        );
        let last = backoff.last_state.unwrap().terminated.unwrap();
        assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
        assert_eq!(
            (backoff.restart_count, backoff.ready, backoff.started),
            (1, false, Some(false))
        );

        let ready = container_status(&observed("a", "ready"));
        assert_eq!((ready.ready, ready.started), (true, Some(true)));
        assert_eq!(
            ready.state.unwrap().running.unwrap().started_at,
            Some(Time(at(0)))
        );
        // Ready is only reported while running.
        let mut stale = observed("a", "exit:0");
        stale.ready = true;
        assert!(!container_status(&stale).ready);
    }

    #[test]
    fn conditions_follow_the_kubelet() {
        use ConditionStatus::{False, True};
        type Case<'a> = (
            RestartPolicy,
            &'a [(&'a str, &'a str)],
            &'a [(&'a str, &'a str)],
            [(ConditionStatus, Option<&'a str>, Option<&'a str>); 3],
        );
        let cases: &[Case] = &[
            (
                RestartPolicy::Always,
                &[],
                &[("a", "ready"), ("b", "ready")],
                [(True, None, None), (True, None, None), (True, None, None)],
            ),
            (
                RestartPolicy::Always,
                &[],
                &[("a", "ready"), ("b", "running")],
                [
                    (True, None, None),
                    (
                        False,
                        Some("ContainersNotReady"),
                        Some("containers with unready status: [b]"),
                    ),
                    (
                        False,
                        Some("ContainersNotReady"),
                        Some("containers with unready status: [b]"),
                    ),
                ],
            ),
            (
                RestartPolicy::Always,
                &[("i1", "exit:0"), ("i2", "running")],
                &[],
                [
                    (
                        False,
                        Some("ContainersNotInitialized"),
                        Some("containers with incomplete status: [i2]"),
                    ),
                    (
                        False,
                        Some("ContainersNotReady"),
                        Some("containers with unready status: [a]"),
                    ),
                    (
                        False,
                        Some("ContainersNotReady"),
                        Some("containers with unready status: [a]"),
                    ),
                ],
            ),
            (
                RestartPolicy::Never,
                &[("i", "exit:0")],
                &[("a", "exit:0")],
                [
                    (True, Some("PodCompleted"), None),
                    (False, Some("PodCompleted"), None),
                    (False, Some("PodCompleted"), None),
                ],
            ),
            (
                RestartPolicy::Never,
                &[],
                &[("a", "exit:1")],
                [
                    (True, None, None),
                    (False, Some("PodFailed"), None),
                    (False, Some("PodFailed"), None),
                ],
            ),
        ];
        for (policy, init, containers, expected) in cases {
            let init_names: Vec<&str> = init.iter().map(|(n, _)| *n).collect();
            let mut names: Vec<&str> = containers.iter().map(|(n, _)| *n).collect();
            if names.is_empty() {
                names.push("a");
            }
            let status = pod_status(
                &spec(*policy, &init_names, &names),
                &pod(init, containers),
                None,
                Time(at(1)),
            );
            let got: Vec<_> = status
                .conditions
                .iter()
                .map(|c| (c.type_, c.status, c.reason.as_deref(), c.message.as_deref()))
                .collect();
            assert_eq!(got[0], (PodConditionType::PodScheduled, True, None, None));
            let kinds = [
                PodConditionType::Initialized,
                PodConditionType::ContainersReady,
                PodConditionType::Ready,
            ];
            for ((kind, (status, reason, message)), got) in
                kinds.iter().zip(expected).zip(&got[1..])
            {
                assert_eq!(
                    got,
                    &(*kind, *status, *reason, *message),
                    "{policy:?} {init:?} {containers:?}"
                );
            }
        }
    }

    #[test]
    fn transition_times_are_kept_while_the_status_holds() {
        let spec = spec(RestartPolicy::Always, &[], &["a"]);
        let first = pod_status(&spec, &pod(&[], &[("a", "running")]), None, Time(at(1)));
        assert!(
            first
                .conditions
                .iter()
                .all(|c| c.last_transition_time == Some(Time(at(1))))
        );
        let second = pod_status(
            &spec,
            &pod(&[], &[("a", "ready")]),
            Some(&first),
            Time(at(2)),
        );
        let time_of = |s: &PodStatus, t: PodConditionType| {
            s.conditions
                .iter()
                .find(|c| c.type_ == t)
                .unwrap()
                .last_transition_time
        };
        assert_eq!(
            time_of(&second, PodConditionType::PodScheduled),
            Some(Time(at(1)))
        );
        assert_eq!(
            time_of(&second, PodConditionType::Initialized),
            Some(Time(at(1)))
        );
        assert_eq!(
            time_of(&second, PodConditionType::ContainersReady),
            Some(Time(at(2)))
        );
        assert_eq!(time_of(&second, PodConditionType::Ready), Some(Time(at(2))));
        assert_eq!(second.pod_ip.as_deref(), Some("10.88.0.2"));
        assert_eq!(
            second.pod_ips,
            vec![PodIp {
                ip: "10.88.0.2".into()
            }]
        );
        assert_eq!(second.start_time, Some(Time(at(0))));
    }

    #[test]
    fn container_phase_transitions() {
        let waiting = ContainerPhase::Waiting {
            reason: WaitingReason::ContainerCreating,
            message: None,
        };
        let running = waiting
            .apply("a", ContainerEvent::Started { at: at(0) })
            .unwrap();
        assert_eq!(running, ContainerPhase::Running { started_at: at(0) });
        assert!(
            running
                .apply("a", ContainerEvent::Started { at: at(1) })
                .is_err()
        );
        let backoff = ContainerEvent::Waiting {
            reason: WaitingReason::CrashLoopBackOff,
            message: None,
        };
        assert_eq!(
            running.apply("a", backoff.clone()).unwrap_err(),
            StatusError::Transition {
                container: "a".into(),
                from: "Running",
                to: "Waiting"
            }
        );
        let exited = running
            .apply("a", ContainerEvent::Exited(exit_info(1, Duration::ZERO)))
            .unwrap();
        assert!(
            exited
                .apply("a", ContainerEvent::Exited(exit_info(1, Duration::ZERO)))
                .is_err()
        );
        assert!(matches!(
            exited.apply("a", backoff).unwrap(),
            ContainerPhase::Waiting {
                reason: WaitingReason::CrashLoopBackOff,
                ..
            }
        ));
        assert!(matches!(
            exited
                .apply("a", ContainerEvent::Started { at: at(2) })
                .unwrap(),
            ContainerPhase::Running { .. }
        ));
        // A start that fails goes from Waiting straight to Terminated.
        assert!(matches!(
            waiting
                .apply("a", ContainerEvent::Exited(exit_info(128, Duration::ZERO)))
                .unwrap(),
            ContainerPhase::Terminated(_)
        ));
    }
}
