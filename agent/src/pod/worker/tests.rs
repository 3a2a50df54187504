//! The pod worker against the scripted [`FakeRuntime`], in paused tokio time.

use berth_api::core_v1::{
    ContainerStatus, ExecAction, Lifecycle, PodConditionType, PodPhase, SleepAction,
};

use super::*;
use crate::drain::NoTraffic;
use crate::pod::volumes::Volumes;
use crate::{
    pod::spec::FakeConfigSource,
    testing::{ExecScript, FakeRuntime, Op, Run as Script_, Script},
};

const S: Duration = Duration::from_secs(1);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn container(name: &str) -> Container {
    Container {
        name: name.into(),
        image: Some("busybox".into()),
        command: vec!["/bin/app".into()],
        ..Default::default()
    }
}

fn exec_probe(command: &str, period: i32, failure_threshold: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: vec![command.into()],
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failure_threshold),
        ..Default::default()
    }
}

fn exec_hook(command: &str) -> LifecycleHandler {
    LifecycleHandler {
        exec: Some(ExecAction {
            command: vec![command.into()],
        }),
        ..Default::default()
    }
}

fn pod(policy: RestartPolicy, init: Vec<Container>, containers: Vec<Container>) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = Some("web".into());
    pod.metadata.namespace = Some("default".into());
    pod.metadata.uid = Some("uid-1".into());
    pod.spec.restart_policy = Some(policy);
    pod.spec.init_containers = init;
    pod.spec.containers = containers;
    pod
}

fn exits(code: i32, after: Duration) -> Script {
    Script::new().then(Script_::Exit { after, code })
}

struct Harness {
    rt: FakeRuntime,
    worker: PodWorker,
    status: watch::Receiver<PodStatus>,
    events: mpsc::UnboundedReceiver<PodEvent>,
    t0: Instant,
}

impl Harness {
    fn start(rt: &FakeRuntime, pod: Pod) -> Self {
        Self::start_with(rt, pod, None)
    }

    /// Starts the worker, adopting what `adoption` found when given.
    fn start_with(rt: &FakeRuntime, pod: Pod, adoption: Option<Adoption>) -> Self {
        Self::start_full(rt, pod, adoption, Arc::new(NoTraffic))
    }

    fn start_full(
        rt: &FakeRuntime,
        pod: Pod,
        adoption: Option<Adoption>,
        drain: Arc<dyn TrafficDrain>,
    ) -> Self {
        let runtime: Arc<dyn ContainerRuntime> = Arc::new(rt.clone());
        let ctx = WorkerContext {
            runtime: runtime.clone(),
            prober: Prober::new(runtime),
            config: Arc::new(FakeConfigSource::default()),
            backoff: BackoffConfig::default(),
            clock: Clock::starting_at("2026-01-01T00:00:00Z".parse().unwrap()),
            pids_limit: None,
            volumes: Arc::new(Volumes::new(
                std::env::temp_dir().join("berth-worker-tests"),
            )),
            drain,
        };
        let (status_tx, status) = watch::channel(PodStatus::default());
        let (events_tx, events) = mpsc::unbounded_channel();
        let t0 = Instant::now();
        let worker = match adoption {
            Some(adoption) => PodWorker::adopt(pod, ctx, status_tx, events_tx, adoption),
            None => PodWorker::spawn(pod, ctx, status_tx, events_tx),
        };
        Self {
            rt: rt.clone(),
            worker,
            status,
            events,
            t0,
        }
    }

    /// When containers named `name` started, in seconds since the worker was spawned.
    fn starts(&self, name: &str) -> Vec<u64> {
        self.rt
            .start_times(name)
            .into_iter()
            .map(|at| (at - self.t0).as_secs())
            .collect()
    }

    fn phase(&self) -> Option<PodPhase> {
        self.status.borrow().phase
    }

    fn container(&self, name: &str) -> ContainerStatus {
        self.status
            .borrow()
            .container_statuses
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("no status for {name}"))
    }

    fn events(&mut self) -> Vec<(&'static str, String)> {
        let mut events = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            events.push((event.reason, event.message));
        }
        events
    }

    fn reasons(&mut self) -> Vec<&'static str> {
        self.events()
            .into_iter()
            .map(|(reason, _)| reason)
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn init_containers_run_in_order_and_block_app_start() {
    let rt = FakeRuntime::new();
    rt.script("init-a", exits(0, secs(5)));
    rt.script("init-b", exits(0, secs(3)));
    let mut h = Harness::start(
        &rt,
        pod(
            RestartPolicy::Always,
            vec![container("init-a"), container("init-b")],
            vec![container("app")],
        ),
    );
    tokio::time::sleep(secs(4)).await;
    assert_eq!(h.phase(), Some(PodPhase::Pending));
    assert!(h.starts("app").is_empty());
    let waiting = h.container("app").state.unwrap().waiting.unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("PodInitializing"));
    tokio::time::sleep(secs(10)).await;
    assert_eq!(h.starts("init-a"), [0]);
    assert_eq!(h.starts("init-b"), [5]);
    assert_eq!(h.starts("app"), [8]);
    assert_eq!(h.phase(), Some(PodPhase::Running));
    let initialized = h
        .status
        .borrow()
        .conditions
        .iter()
        .find(|c| c.type_ == PodConditionType::Initialized)
        .map(|c| c.status);
    assert_eq!(initialized, Some(berth_api::meta::ConditionStatus::True));
    // The sandbox comes first, and every container joins it.
    let calls = rt.calls();
    assert!(matches!(&calls[0].op, Op::CreateSandbox { name } if name == "default/web"));
    let reasons = h.reasons();
    for expected in ["Pulled", "Created", "Started"] {
        assert_eq!(
            reasons.iter().filter(|r| **r == expected).count(),
            3,
            "{expected} in {reasons:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_crashing_container_restarts_with_growing_backoff() {
    let rt = FakeRuntime::new();
    rt.script("app", exits(1, S));
    let mut h = Harness::start(
        &rt,
        pod(RestartPolicy::Always, vec![], vec![container("app")]),
    );
    tokio::time::sleep(secs(80)).await;
    // Exits at 1, 2, 13, 34, 75: restarts at once, then after 10, 20, 40 s.
    assert_eq!(h.starts("app"), [0, 1, 12, 33, 74]);
    let status = h.container("app");
    assert_eq!(status.restart_count, 4);
    let waiting = status.state.unwrap().waiting.unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
    assert!(
        waiting
            .message
            .unwrap()
            .starts_with("back-off 1m20s restarting failed container=app"),
    );
    let last = status.last_state.unwrap().terminated.unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
    assert_eq!(h.phase(), Some(PodPhase::Running));
    let backoffs = h.reasons().iter().filter(|r| **r == "BackOff").count();
    assert_eq!(backoffs, 4);
}

#[tokio::test(start_paused = true)]
async fn backoff_follows_the_pod_annotations() {
    let rt = FakeRuntime::new();
    rt.script("app", exits(1, S));
    let mut pod = pod(RestartPolicy::OnFailure, vec![], vec![container("app")]);
    pod.metadata.annotations = [
        (
            crate::restart::BACKOFF_INITIAL_ANNOTATION.to_owned(),
            "1s".to_owned(),
        ),
        (
            crate::restart::BACKOFF_MAX_ANNOTATION.to_owned(),
            "4s".to_owned(),
        ),
    ]
    .into();
    let h = Harness::start(&rt, pod);
    tokio::time::sleep(Duration::from_millis(16_500)).await;
    // Exits at 1, 2, 4, 7, 12: restarts at once, then after 1, 2, 4, 4 s.
    assert_eq!(h.starts("app"), [0, 1, 3, 6, 11, 16]);
}

#[tokio::test(start_paused = true)]
async fn restart_policies_decide_the_final_phase() {
    let cases = [
        (RestartPolicy::OnFailure, 0, PodPhase::Succeeded),
        (RestartPolicy::Never, 0, PodPhase::Succeeded),
        (RestartPolicy::Never, 3, PodPhase::Failed),
    ];
    for (policy, code, phase) in cases {
        let rt = FakeRuntime::new();
        rt.script("app", exits(code, secs(2)));
        let h = Harness::start(&rt, pod(policy, vec![], vec![container("app")]));
        tokio::time::sleep(secs(60)).await;
        assert_eq!(h.starts("app"), [0], "{policy:?} exit {code}");
        assert_eq!(h.phase(), Some(phase), "{policy:?} exit {code}");
        assert_eq!(h.worker.stage(), PodStage::Finished);
        let terminated = h.container("app").state.unwrap().terminated.unwrap();
        assert_eq!(terminated.exit_code, code);
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_init_container_follows_the_restart_policy() {
    // Never: the pod fails and the app never starts.
    let rt = FakeRuntime::new();
    rt.script("init", exits(1, S));
    let h = Harness::start(
        &rt,
        pod(
            RestartPolicy::Never,
            vec![container("init")],
            vec![container("app")],
        ),
    );
    tokio::time::sleep(secs(30)).await;
    assert_eq!(h.starts("init"), [0]);
    assert!(h.starts("app").is_empty());
    assert_eq!(h.phase(), Some(PodPhase::Failed));

    // Always: the init container is restarted with backoff until it succeeds.
    let rt = FakeRuntime::new();
    rt.script(
        "init",
        exits(1, S)
            .then(Script_::Exit { after: S, code: 1 })
            .then(Script_::Exit { after: S, code: 0 }),
    );
    let h = Harness::start(
        &rt,
        pod(
            RestartPolicy::Always,
            vec![container("init")],
            vec![container("app")],
        ),
    );
    tokio::time::sleep(secs(30)).await;
    assert_eq!(h.starts("init"), [0, 1, 12]);
    assert_eq!(h.starts("app"), [13]);
    assert_eq!(h.phase(), Some(PodPhase::Running));
}

#[tokio::test(start_paused = true)]
async fn liveness_failure_kills_and_restarts_with_the_probe_grace() {
    let rt = FakeRuntime::new();
    rt.script(
        "app",
        Script::new().command_exec("live", ExecScript::fail(1, "dead")),
    );
    let mut app = container("app");
    let mut probe = exec_probe("live", 5, 3);
    probe.termination_grace_period_seconds = Some(7);
    app.liveness_probe = Some(probe);
    let mut h = Harness::start(&rt, pod(RestartPolicy::Always, vec![], vec![app]));
    tokio::time::sleep(Duration::from_millis(12_500)).await;
    // Probes at 0, 5, 10 fail: killed at 10 (periodSeconds × failureThreshold), restarted at once.
    assert_eq!(h.starts("app"), [0, 10]);
    let stops: Vec<_> = rt
        .calls()
        .into_iter()
        .filter_map(|call| match call.op {
            Op::Stop { grace, .. } => Some(((call.at - h.t0).as_secs(), grace)),
            _ => None,
        })
        .collect();
    assert_eq!(stops, [(10, secs(7))]);
    let status = h.container("app");
    assert_eq!(status.restart_count, 1);
    let last = status.last_state.unwrap().terminated.unwrap();
    assert_eq!(
        (last.exit_code, last.reason.as_deref()),
        (143, Some("Error"))
    );
    assert!(status.state.unwrap().running.is_some());
    let events = h.events();
    assert!(events.contains(&("Unhealthy", "Liveness probe failed: dead".into())));
    assert!(events.contains(&(
        "Killing",
        "Container app failed liveness probe, will be restarted".into()
    )));
}

#[tokio::test(start_paused = true)]
async fn readiness_toggles_ready_without_restarts() {
    let rt = FakeRuntime::new();
    rt.script(
        "app",
        Script::new()
            .command_exec("ready", ExecScript::ok())
            .command_exec("ready", ExecScript::fail(1, "busy"))
            .command_exec("ready", ExecScript::ok()),
    );
    let mut app = container("app");
    app.readiness_probe = Some(exec_probe("ready", 5, 1));
    let h = Harness::start(&rt, pod(RestartPolicy::Always, vec![], vec![app]));
    let ready = |h: &Harness| {
        let condition = h
            .status
            .borrow()
            .conditions
            .iter()
            .find(|c| c.type_ == PodConditionType::Ready)
            .map(|c| c.status);
        (h.container("app").ready, condition)
    };
    use berth_api::meta::ConditionStatus::{False, True};
    tokio::time::sleep(S).await;
    assert_eq!(ready(&h), (true, Some(True)));
    tokio::time::sleep(secs(5)).await;
    assert_eq!(ready(&h), (false, Some(False)));
    tokio::time::sleep(secs(5)).await;
    assert_eq!(ready(&h), (true, Some(True)));
    assert_eq!(h.starts("app"), [0]);
    assert_eq!(h.container("app").restart_count, 0);
}

#[tokio::test(start_paused = true)]
async fn the_startup_probe_gates_liveness() {
    let rt = FakeRuntime::new();
    rt.script(
        "app",
        Script::new()
            .command_execs("started", 2, ExecScript::fail(1, "not yet"))
            .command_exec("started", ExecScript::ok())
            .command_exec("live", ExecScript::fail(1, "dead")),
    );
    let mut app = container("app");
    app.startup_probe = Some(exec_probe("started", 5, 10));
    app.liveness_probe = Some(exec_probe("live", 1, 1));
    let h = Harness::start(&rt, pod(RestartPolicy::Always, vec![], vec![app]));
    tokio::time::sleep(secs(6)).await;
    assert_eq!(h.container("app").started, Some(false));
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    let live_execs: Vec<u64> = rt
        .calls()
        .into_iter()
        .filter(|call| matches!(&call.op, Op::Exec { argv, .. } if argv == &["live"]))
        .map(|call| (call.at - h.t0).as_secs())
        .collect();
    // The startup probe succeeds at 10; only then does liveness probe (and fail at once; the
    // restarted instance passes its startup probe at once and fails liveness again).
    assert!(!live_execs.is_empty());
    assert!(live_execs.iter().all(|at| *at == 10), "{live_execs:?}");
    assert_eq!(h.starts("app"), [0, 10]);
}

#[tokio::test(start_paused = true)]
async fn pre_stop_runs_first_and_counts_against_the_grace_period() {
    let rt = FakeRuntime::new();
    rt.script("app", Script::new().ignoring_stop_signal());
    let mut app = container("app");
    app.lifecycle = Some(Lifecycle {
        pre_stop: Some(LifecycleHandler {
            sleep: Some(SleepAction { seconds: 4 }),
            ..Default::default()
        }),
        post_start: None,
    });
    let mut side = container("side");
    side.lifecycle = Some(Lifecycle {
        pre_stop: Some(exec_hook("drain")),
        post_start: None,
    });
    let mut pod = pod(RestartPolicy::Always, vec![], vec![app, side]);
    pod.spec.termination_grace_period_seconds = Some(10);
    let mut h = Harness::start(&rt, pod);
    tokio::time::sleep(secs(3)).await;
    let begun = Instant::now();
    h.worker.terminate(None).await;
    // The stubborn container gets the 6 s left after its 4 s preStop, then SIGKILL.
    assert_eq!(Instant::now() - begun, secs(10));
    let calls = rt.calls();
    let stop_grace = |name: &str| {
        calls
            .iter()
            .find_map(|call| match &call.op {
                Op::Stop { name: n, grace, .. } if n == name => {
                    Some(((call.at - begun).as_secs(), *grace))
                }
                _ => None,
            })
            .unwrap()
    };
    assert_eq!(stop_grace("app"), (4, secs(6)));
    assert_eq!(stop_grace("side"), (0, secs(10)));
    let drain = calls
        .iter()
        .position(|c| matches!(&c.op, Op::Exec { argv, .. } if argv == &["drain"]))
        .unwrap();
    let side_stop = calls
        .iter()
        .position(|c| matches!(&c.op, Op::Stop { name, .. } if name == "side"))
        .unwrap();
    assert!(drain < side_stop);
    let terminated = h.container("app").state.unwrap().terminated.unwrap();
    assert_eq!(terminated.exit_code, 137);
    assert_eq!(h.reasons().iter().filter(|r| **r == "Killing").count(), 2);
}

/// A Service data path that lets go of an address after `after`, or never (`None`); records
/// which addresses it was asked about.
struct SlowDrain {
    after: Option<Duration>,
    asked: std::sync::Mutex<Vec<std::net::IpAddr>>,
}

#[async_trait::async_trait]
impl TrafficDrain for SlowDrain {
    async fn drained(&self, ip: std::net::IpAddr) {
        self.asked.lock().unwrap().push(ip);
        match self.after {
            Some(after) => tokio::time::sleep(after).await,
            None => std::future::pending().await,
        }
    }
}

/// When (since `begun`) the container `name` was first asked to stop or run a hook.
fn first_stop_or_hook(rt: &FakeRuntime, begun: Instant) -> Duration {
    rt.calls()
        .iter()
        .find(|call| call.at >= begun && matches!(&call.op, Op::Stop { .. } | Op::Exec { .. }))
        .map(|call| call.at - begun)
        .expect("a stop or a hook")
}

#[tokio::test(start_paused = true)]
async fn termination_waits_for_the_service_data_path_to_let_go_of_the_pod_first() {
    let mut app = container("app");
    app.lifecycle = Some(Lifecycle {
        pre_stop: Some(exec_hook("drain")),
        post_start: None,
    });
    let mut pod = pod(RestartPolicy::Always, vec![], vec![app]);
    pod.spec.termination_grace_period_seconds = Some(10);

    // The data path lets go after 1 s: the preStop hook (and SIGTERM) only then.
    let rt = FakeRuntime::new();
    let drain = Arc::new(SlowDrain {
        after: Some(secs(1)),
        asked: Default::default(),
    });
    let h = Harness::start_full(&rt, pod.clone(), None, drain.clone());
    tokio::time::sleep(secs(3)).await;
    let begun = Instant::now();
    h.worker.terminate(None).await;
    assert_eq!(first_stop_or_hook(&rt, begun), secs(1));
    let ip = h.status.borrow().pod_ip.clone().expect("pod IP");
    let asked = drain.asked.lock().unwrap().clone();
    assert_eq!(asked, [ip.parse::<std::net::IpAddr>().unwrap()]);

    // A data path that never lets go holds the pod back DRAIN_WAIT at most...
    let rt = FakeRuntime::new();
    let stuck = Arc::new(SlowDrain {
        after: None,
        asked: Default::default(),
    });
    let h = Harness::start_full(&rt, pod.clone(), None, stuck.clone());
    tokio::time::sleep(secs(3)).await;
    let begun = Instant::now();
    h.worker.terminate(None).await;
    assert_eq!(first_stop_or_hook(&rt, begun), DRAIN_WAIT);
    assert_eq!(h.worker.stage(), PodStage::Terminated);
    // The wait counted against the grace period: the stop got the 8 s left.
    let stop_grace = rt.calls().iter().find_map(|call| match &call.op {
        Op::Stop { grace, .. } if call.at >= begun => Some(*grace),
        _ => None,
    });
    assert_eq!(stop_grace, Some(secs(8)));

    // ... and never longer than the grace period.
    let rt = FakeRuntime::new();
    let h = Harness::start_full(&rt, pod, None, stuck);
    tokio::time::sleep(secs(3)).await;
    let begun = Instant::now();
    h.worker.terminate(Some(Duration::from_millis(500))).await;
    assert_eq!(first_stop_or_hook(&rt, begun), Duration::from_millis(500));
}

#[tokio::test(start_paused = true)]
async fn a_failing_post_start_hook_kills_the_container() {
    let rt = FakeRuntime::new();
    rt.script(
        "app",
        Script::new().command_exec("hook", ExecScript::fail(2, "no")),
    );
    let mut app = container("app");
    app.lifecycle = Some(Lifecycle {
        post_start: Some(exec_hook("hook")),
        pre_stop: None,
    });
    let mut h = Harness::start(&rt, pod(RestartPolicy::Never, vec![], vec![app]));
    tokio::time::sleep(secs(5)).await;
    assert_eq!(h.starts("app"), [0]);
    assert_eq!(h.phase(), Some(PodPhase::Failed));
    let terminated = h.container("app").state.unwrap().terminated.unwrap();
    assert_eq!(terminated.exit_code, 143);
    let events = h.events();
    let failed = events
        .iter()
        .find(|(reason, _)| *reason == "FailedPostStartHook")
        .expect("FailedPostStartHook event");
    assert!(failed.1.contains("exited with 2: no"), "{}", failed.1);
}

#[tokio::test(start_paused = true)]
async fn terminate_is_idempotent_and_deletes_everything() {
    let rt = FakeRuntime::new();
    rt.script("init", exits(0, S));
    let h = Harness::start(
        &rt,
        pod(
            RestartPolicy::Always,
            vec![container("init")],
            vec![container("a"), container("b")],
        ),
    );
    tokio::time::sleep(secs(5)).await;
    let before = h.status.borrow().clone();
    h.worker.terminate(Some(secs(2))).await;
    assert_ne!(*h.status.borrow(), before, "the final status is published");
    h.worker.terminate(None).await;
    assert_eq!(h.worker.stage(), PodStage::Terminated);
    tokio::task::yield_now().await;
    assert!(h.worker.is_finished());
    let calls = rt.calls();
    let count = |f: &dyn Fn(&Op) -> bool| calls.iter().filter(|c| f(&c.op)).count();
    assert_eq!(count(&|op| matches!(op, Op::DeleteSandbox { .. })), 1);
    // Both app containers and the init container are deleted, the sandbox last.
    assert_eq!(count(&|op| matches!(op, Op::Delete { .. })), 3);
    assert!(matches!(calls.last().unwrap().op, Op::DeleteSandbox { .. }));
    assert!(rt.list(&Default::default()).await.unwrap().is_empty());
    for name in ["a", "b"] {
        let terminated = h.container(name).state.unwrap().terminated.unwrap();
        assert_eq!(terminated.exit_code, 143);
    }
}

#[tokio::test(start_paused = true)]
async fn terminate_during_backoff_and_host_network() {
    let rt = FakeRuntime::new();
    rt.script("app", exits(1, S));
    let mut pod = pod(RestartPolicy::Always, vec![], vec![container("app")]);
    pod.spec.host_network = Some(true);
    let h = Harness::start(&rt, pod);
    tokio::time::sleep(secs(5)).await;
    assert_eq!(h.starts("app"), [0, 1]);
    h.worker.terminate(None).await;
    tokio::time::sleep(secs(60)).await;
    // No restart after termination, and no pod IP with hostNetwork.
    assert_eq!(h.starts("app"), [0, 1]);
    assert_eq!(h.status.borrow().pod_ip, None);
    assert!(rt.list(&Default::default()).await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn terminate_stops_a_running_init_container() {
    let rt = FakeRuntime::new();
    let h = Harness::start(
        &rt,
        pod(
            RestartPolicy::Always,
            vec![container("init")],
            vec![container("app")],
        ),
    );
    tokio::time::sleep(secs(3)).await;
    assert_eq!(h.starts("init"), [0]);
    h.worker.terminate(None).await;
    assert!(h.starts("app").is_empty());
    let calls = rt.calls();
    assert!(rt.list(&Default::default()).await.unwrap().is_empty());
    assert!(
        calls
            .iter()
            .any(|c| matches!(&c.op, Op::Stop { name, .. } if name == "init"))
    );
    assert!(matches!(calls.last().unwrap().op, Op::DeleteSandbox { .. }));
}

#[tokio::test(start_paused = true)]
async fn a_container_that_cannot_be_built_waits_and_reports_why() {
    let rt = FakeRuntime::new();
    let mut app = container("app");
    app.env = vec![berth_api::core_v1::EnvVar {
        name: "MODE".into(),
        value: None,
        value_from: Some(berth_api::core_v1::EnvVarSource {
            config_map_key_ref: Some(berth_api::core_v1::KeySelector {
                name: "missing".into(),
                key: "mode".into(),
                optional: None,
            }),
            ..Default::default()
        }),
    }];
    let mut h = Harness::start(&rt, pod(RestartPolicy::Never, vec![], vec![app]));
    tokio::time::sleep(secs(30)).await;
    assert!(h.starts("app").is_empty());
    let waiting = h.container("app").state.unwrap().waiting.unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("CreateContainerError"));
    assert!(
        waiting
            .message
            .unwrap()
            .contains("configmap default/missing not found")
    );
    assert_eq!(h.phase(), Some(PodPhase::Pending));
    let events = h.events();
    assert!(
        events
            .iter()
            .any(|(reason, message)| *reason == "Failed" && message.contains("missing")),
        "{events:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_start_error_is_retried_with_backoff() {
    let rt = FakeRuntime::new();
    rt.script(
        "app",
        Script::new()
            .then(Script_::FailStart {
                message: "exec: not found".into(),
            })
            .then(Script_::FailStart {
                message: "exec: not found".into(),
            })
            .then(Script_::Forever),
    );
    let mut h = Harness::start(
        &rt,
        pod(RestartPolicy::Always, vec![], vec![container("app")]),
    );
    tokio::time::sleep(secs(15)).await;
    assert_eq!(h.starts("app"), [0, 0, 10]);
    assert!(h.container("app").state.unwrap().running.is_some());
    let events = h.events();
    assert!(
        events
            .iter()
            .any(|(reason, message)| *reason == "Failed" && message.contains("exec: not found")),
        "{events:?}"
    );
}

/// What an earlier agent left of pod `uid-1`: its sandbox and `app` instances created with
/// restart counts 0.. (all but the last run until they exit).
async fn left_behind(rt: &FakeRuntime, instances: u32) -> (Adoption, Vec<ContainerId>) {
    let pod_labels: BTreeMap<String, String> = [
        (labels::POD_UID, "uid-1"),
        (labels::POD_NAME, "web"),
        (labels::POD_NAMESPACE, "default"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let sandbox = rt
        .create_sandbox(SandboxSpec {
            dns: None,
            name: "default/web".into(),
            labels: pod_labels.clone(),
            ..SandboxSpec::default()
        })
        .await
        .unwrap();
    let mut ids = Vec::new();
    for count in 0..instances {
        let mut labels = pod_labels.clone();
        labels.insert(labels::CONTAINER_NAME.into(), "app".into());
        labels.insert(labels::RESTART_COUNT.into(), count.to_string());
        let id = rt
            .create(crate::runtime::ContainerSpec {
                name: "app".into(),
                image: "busybox".into(),
                argv: vec!["/bin/app".into()],
                labels,
                sandbox: Some(sandbox.id.clone()),
                ..Default::default()
            })
            .await
            .unwrap();
        rt.start(&id).await.unwrap();
        if count + 1 < instances {
            rt.wait(&id).await.unwrap();
        }
        ids.push(id);
    }
    let filter = crate::runtime::LabelFilter::new([(labels::POD_UID, "uid-1")]);
    let adoption = Adoption {
        sandboxes: rt.list_sandboxes(&filter).await.unwrap(),
        containers: rt.list(&filter).await.unwrap(),
        status: None,
    };
    (adoption, ids)
}

#[tokio::test(start_paused = true)]
async fn adoption_keeps_the_running_instance_and_the_last_exited_one() {
    let rt = FakeRuntime::new();
    rt.script(
        "app",
        exits(1, S)
            .then(Script_::Exit { after: S, code: 1 })
            .then(Script_::Forever),
    );
    let (adoption, ids) = left_behind(&rt, 3).await;
    let calls_before = rt.calls().len();
    let h = Harness::start_with(
        &rt,
        pod(RestartPolicy::Always, vec![], vec![container("app")]),
        Some(adoption),
    );
    tokio::time::sleep(secs(5)).await;
    let after: Vec<Op> = rt.calls()[calls_before..]
        .iter()
        .map(|call| call.op.clone())
        .collect();
    assert!(
        !after
            .iter()
            .any(|op| matches!(op, Op::Start { .. } | Op::CreateSandbox { .. })),
        "nothing started or created again: {after:?}"
    );
    let filter = crate::runtime::LabelFilter::new([(labels::POD_UID, "uid-1")]);
    let left: Vec<ContainerId> = rt
        .list(&filter)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(
        left,
        vec![ids[1].clone(), ids[2].clone()],
        "the running instance and the one before it (for `logs --previous`) stay, older ones go"
    );
    let status = h.container("app");
    assert_eq!(status.restart_count, 2);
    assert_eq!(status.container_id, Some(format!("berth://{}", ids[2])));
    assert!(status.state.unwrap().running.is_some());
    assert!(status.ready);
    assert_eq!(h.phase(), Some(PodPhase::Running));
    h.worker.terminate(None).await;
    assert!(rt.list(&filter).await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn adoption_restarts_an_instance_that_exited_meanwhile() {
    let rt = FakeRuntime::new();
    rt.script("app", exits(7, S).then(Script_::Forever));
    let (adoption, ids) = left_behind(&rt, 1).await;
    rt.wait(&ids[0]).await.unwrap();
    let h = Harness::start_with(
        &rt,
        pod(RestartPolicy::Always, vec![], vec![container("app")]),
        Some(adoption),
    );
    tokio::time::sleep(secs(5)).await;
    let status = h.container("app");
    assert_eq!(status.restart_count, 1);
    assert!(status.state.unwrap().running.is_some());
    let last = status.last_state.unwrap().terminated.unwrap();
    assert_eq!(last.exit_code, 7);
    let filter = crate::runtime::LabelFilter::new([(labels::POD_UID, "uid-1")]);
    // The exited instance stays beside its successor, for `logs --previous`.
    let mut left = rt.list(&filter).await.unwrap();
    left.sort_by_key(|c| c.labels[labels::RESTART_COUNT].clone());
    assert_eq!(left.len(), 2);
    assert_eq!(left[0].id, ids[0]);
    assert_eq!(left[1].labels[labels::RESTART_COUNT], "1");
}
