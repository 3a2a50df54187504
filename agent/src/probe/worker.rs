//! Probe workers: one task per probe of a running container instance, as the kubelet's
//! `prober/worker.go`, publishing result *transitions* on a channel like its results manager.
//!
//! Each worker probes at once, then every `periodSeconds`; ticks before `initialDelaySeconds`
//! (counted from the container's start) are skipped. A result counts once `successThreshold`
//! successes or `failureThreshold` failures happened in a row; runs that could not probe at all
//! ([`super::ProbeError`]) are thrown away. Liveness and readiness do not probe until the startup
//! probe has succeeded (or at once when there is none), and probe as soon as that happens.
//!
//! The published result of one worker:
//!
//! ```text
//!            successThreshold successes                failureThreshold failures
//!  initial ─────────────────────────────► Success ◄────────────────────────────► Failure
//!  (liveness: Success, readiness: Failure, startup: Unknown)
//!
//!  startup  Success → started: the startup worker ends, liveness and readiness begin
//!  liveness/startup Failure → on hold: no more probes; the pod worker restarts the container,
//!                             which gets new workers
//! ```
//! Workers end when [`ContainerProbes::stop`] is called or the [`ContainerProbes`] is dropped,
//! i.e. when the container stops.

use std::{net::IpAddr, sync::Arc, time::Duration};

use berth_api::core_v1::{Container, Probe};
use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
    time::{Instant, MissedTickBehavior},
};
use tracing::{Instrument, debug, info, info_span, warn};

use super::{Health, ProbeKind, ProbeTarget, Prober, RunResult, handler_type};
use crate::runtime::ContainerId;

/// A probe's schedule and thresholds, Kubernetes' defaults applied to unset (or non-positive)
/// fields: initialDelaySeconds 0, periodSeconds 10, timeoutSeconds 1, successThreshold 1,
/// failureThreshold 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeTiming {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl ProbeTiming {
    pub fn from_probe(probe: &Probe) -> Self {
        let positive = |value: Option<i32>, default: u32| match value {
            Some(n) if n > 0 => n as u32,
            _ => default,
        };
        Self {
            initial_delay: Duration::from_secs(u64::from(positive(probe.initial_delay_seconds, 0))),
            period: Duration::from_secs(u64::from(positive(probe.period_seconds, 10))),
            timeout: Duration::from_secs(u64::from(positive(probe.timeout_seconds, 1))),
            success_threshold: positive(probe.success_threshold, 1),
            failure_threshold: positive(probe.failure_threshold, 3),
        }
    }
}

/// A change of a probe's result for one container instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    pub pod_uid: String,
    pub container: String,
    /// The instance probed: results of an earlier instance are stale.
    pub container_id: ContainerId,
    pub kind: ProbeKind,
    pub health: Health,
    /// The output of the probe run that decided it.
    pub output: String,
}

/// What the probe workers of one container instance need to know.
#[derive(Debug, Clone)]
pub struct ContainerProbesSpec {
    pub pod_uid: String,
    /// The container as the pod declares it: probes and ports.
    pub container: Container,
    pub container_id: ContainerId,
    pub pod_ip: Option<IpAddr>,
    /// When the instance started (initial delays count from here).
    pub started_at: Instant,
}

/// The probe workers of one running container instance.
pub struct ContainerProbes {
    stop: watch::Sender<bool>,
    started: watch::Receiver<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl ContainerProbes {
    /// Spawns a worker per probe the container declares; transitions go to `results`.
    pub fn spawn(
        prober: Prober,
        spec: ContainerProbesSpec,
        results: mpsc::UnboundedSender<ProbeResult>,
    ) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let has_startup = spec.container.startup_probe.is_some();
        let (started_tx, started) = watch::channel(!has_startup);
        let started_tx = Arc::new(started_tx);
        let target = ProbeTarget {
            container: spec.container.name.clone(),
            container_id: spec.container_id.clone(),
            ports: spec.container.ports.clone(),
            pod_ip: spec.pod_ip,
            env: spec
                .container
                .env
                .iter()
                .filter_map(|var| Some((var.name.clone(), var.value.clone()?)))
                .collect(),
        };
        let probes = [
            (ProbeKind::Startup, &spec.container.startup_probe),
            (ProbeKind::Liveness, &spec.container.liveness_probe),
            (ProbeKind::Readiness, &spec.container.readiness_probe),
        ];
        let tasks = probes
            .into_iter()
            .filter_map(|(kind, probe)| probe.as_ref().map(|probe| (kind, probe.clone())))
            .map(|(kind, probe)| {
                let mut timing = ProbeTiming::from_probe(&probe);
                if kind != ProbeKind::Readiness {
                    // Validation requires 1 for liveness and startup probes.
                    timing.success_threshold = 1;
                }
                let worker = Worker {
                    kind,
                    probe,
                    timing,
                    target: target.clone(),
                    prober: prober.clone(),
                    results: results.clone(),
                    pod_uid: spec.pod_uid.clone(),
                    started_at: spec.started_at,
                    stop: stop_rx.clone(),
                    started: started.clone(),
                    started_tx: started_tx.clone(),
                };
                let span = info_span!(
                    "probe",
                    pod = %spec.pod_uid,
                    container = %spec.container.name,
                    container_id = %spec.container_id,
                    probe = %kind,
                );
                tokio::spawn(worker.run().instrument(span))
            })
            .collect();
        Self {
            stop,
            started,
            tasks,
        }
    }

    /// The container has started: its startup probe succeeded, or it has none.
    pub fn started(&self) -> bool {
        *self.started.borrow()
    }

    /// Stops every worker (interrupting probes in flight) and waits for them to end.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        for task in self.tasks {
            if let Err(err) = task.await
                && err.is_panic()
            {
                std::panic::resume_unwind(err.into_panic());
            }
        }
    }
}

struct Worker {
    kind: ProbeKind,
    probe: Probe,
    timing: ProbeTiming,
    target: ProbeTarget,
    prober: Prober,
    results: mpsc::UnboundedSender<ProbeResult>,
    pod_uid: String,
    started_at: Instant,
    stop: watch::Receiver<bool>,
    started: watch::Receiver<bool>,
    started_tx: Arc<watch::Sender<bool>>,
}

impl Worker {
    async fn run(mut self) {
        let gated = self.kind != ProbeKind::Startup;
        let mut current = self.kind.initial();
        // The last raw result and how many times in a row it came.
        let mut last: Option<Health> = None;
        let mut run = 0u32;
        // Gated probes run at once when the startup probe succeeds (the kubelet triggers readiness
        // then; liveness here too, so that both start from the same moment).
        let mut trigger_on_start = gated && !*self.started.borrow();
        let mut ticks = tokio::time::interval(self.timing.period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = self.stop.changed() => return,
                _ = ticks.tick() => {}
                _ = self.started.wait_for(|started| *started), if trigger_on_start => {
                    trigger_on_start = false;
                    ticks.reset();
                }
            }
            if gated && !*self.started.borrow() {
                continue;
            }
            trigger_on_start = false;
            if Instant::now().saturating_duration_since(self.started_at) < self.timing.initial_delay
            {
                continue;
            }
            let began = Instant::now();
            let outcome = tokio::select! {
                biased;
                _ = self.stop.changed() => return,
                outcome = self.prober.probe(&self.probe, &self.target) => outcome,
            };
            if let Some(observer) = self.prober.observer() {
                let handler = handler_type(&self.probe);
                observer.probed(handler, self.kind, RunResult::of(&outcome), began.elapsed());
            }
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(err) => {
                    warn!(error = %err, "probe errored; result thrown away");
                    continue;
                }
            };
            debug!(health = ?outcome.health, output = %outcome.output, "probed");
            if last == Some(outcome.health) {
                run += 1;
            } else {
                last = Some(outcome.health);
                run = 1;
            }
            let threshold = match outcome.health {
                Health::Success => self.timing.success_threshold,
                Health::Failure | Health::Unknown => self.timing.failure_threshold,
            };
            if run < threshold {
                continue;
            }
            if outcome.health != current {
                current = outcome.health;
                info!(health = ?current, output = %outcome.output, "probe result changed");
                let _ = self.results.send(ProbeResult {
                    pod_uid: self.pod_uid.clone(),
                    container: self.target.container.clone(),
                    container_id: self.target.container_id.clone(),
                    kind: self.kind,
                    health: current,
                    output: outcome.output,
                });
            }
            match (self.kind, current) {
                (ProbeKind::Startup, Health::Success) => {
                    self.started_tx.send_replace(true);
                    return;
                }
                (ProbeKind::Startup | ProbeKind::Liveness, Health::Failure) => {
                    // On hold until the container is replaced.
                    let _ = self.stop.changed().await;
                    return;
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use berth_api::core_v1::ExecAction;

    use super::*;
    use crate::{
        runtime::{ContainerRuntime, ContainerSpec},
        testing::{ExecScript, FakeRuntime, Op, Script},
    };

    fn exec_probe(command: &str, period: i32) -> Probe {
        Probe {
            exec: Some(ExecAction {
                command: vec![command.to_owned()],
            }),
            period_seconds: Some(period),
            ..Default::default()
        }
    }

    struct Harness {
        rt: FakeRuntime,
        t0: Instant,
        probes: ContainerProbes,
        results: mpsc::UnboundedReceiver<ProbeResult>,
    }

    impl Harness {
        /// Starts container "app" scripted with `script` and its probe workers.
        async fn start(script: Script, container: Container) -> Self {
            let rt = FakeRuntime::new();
            rt.script("app", script);
            let id = rt
                .create(ContainerSpec {
                    name: "app".into(),
                    image: "img".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            rt.start(&id).await.unwrap();
            let t0 = Instant::now();
            let (tx, results) = mpsc::unbounded_channel();
            let spec = ContainerProbesSpec {
                pod_uid: "uid-1".into(),
                container: Container {
                    name: "app".into(),
                    ..container
                },
                container_id: id,
                pod_ip: None,
                started_at: t0,
            };
            let probes = ContainerProbes::spawn(Prober::new(Arc::new(rt.clone())), spec, tx);
            Self {
                rt,
                t0,
                probes,
                results,
            }
        }

        /// Results received until `until` seconds after the start, with the second they came.
        async fn results_until(&mut self, until: u64) -> Vec<(u64, ProbeKind, Health)> {
            let deadline = self.t0 + Duration::from_secs(until);
            let mut got = Vec::new();
            while let Ok(Some(result)) =
                tokio::time::timeout_at(deadline, self.results.recv()).await
            {
                got.push((self.t0.elapsed().as_secs(), result.kind, result.health));
            }
            got
        }

        fn exec_times(&self, command: &str) -> Vec<u64> {
            exec_times(&self.rt, self.t0, command)
        }
    }

    /// Seconds after `t0` at which `command` was exec'd.
    fn exec_times(rt: &FakeRuntime, t0: Instant, command: &str) -> Vec<u64> {
        rt.calls()
            .into_iter()
            .filter(|call| matches!(&call.op, Op::Exec { argv, .. } if argv[0] == command))
            .map(|call| (call.at - t0).as_secs())
            .collect()
    }

    #[test]
    fn timing_defaults_are_kubernetes_defaults() {
        let defaults = ProbeTiming::from_probe(&Probe::default());
        assert_eq!(
            defaults,
            ProbeTiming {
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(10),
                timeout: Duration::from_secs(1),
                success_threshold: 1,
                failure_threshold: 3,
            }
        );
        let zeroes = Probe {
            period_seconds: Some(0),
            failure_threshold: Some(-1),
            ..Default::default()
        };
        assert_eq!(ProbeTiming::from_probe(&zeroes), defaults);
        let set = Probe {
            initial_delay_seconds: Some(5),
            period_seconds: Some(3),
            timeout_seconds: Some(2),
            success_threshold: Some(2),
            failure_threshold: Some(7),
            ..Default::default()
        };
        let timing = ProbeTiming::from_probe(&set);
        assert_eq!(
            (
                timing.initial_delay.as_secs(),
                timing.period.as_secs(),
                timing.timeout.as_secs()
            ),
            (5, 3, 2)
        );
        assert_eq!((timing.success_threshold, timing.failure_threshold), (2, 7));
    }

    #[tokio::test(start_paused = true)]
    async fn liveness_reports_failure_at_the_third_failed_probe_then_holds() {
        // Probes at 0, 10, 20 succeed; from 30 on they fail.
        let script = Script::new()
            .command_execs("live", 3, ExecScript::ok())
            .command_exec("live", ExecScript::fail(1, "dead"));
        let container = Container {
            liveness_probe: Some(exec_probe("live", 10)),
            ..Default::default()
        };
        let mut h = Harness::start(script, container).await;
        assert_eq!(
            h.results_until(200).await,
            vec![(50, ProbeKind::Liveness, Health::Failure)]
        );
        assert_eq!(
            h.exec_times("live"),
            vec![0, 10, 20, 30, 40, 50],
            "no probes while on hold"
        );
        h.probes.stop().await;
    }

    #[derive(Default)]
    struct Recording {
        probes: std::sync::Mutex<Vec<(&'static str, ProbeKind, RunResult)>>,
    }

    impl super::super::Observer for Recording {
        fn probed(
            &self,
            handler: &'static str,
            probe: ProbeKind,
            result: RunResult,
            _took: Duration,
        ) {
            self.probes.lock().unwrap().push((handler, probe, result));
        }
        fn container_started(&self, _took: Duration) {}
    }

    #[tokio::test(start_paused = true)]
    async fn every_probe_run_is_reported_with_its_result() {
        let script = Script::new()
            .command_execs("ready", 2, ExecScript::ok())
            .command_exec("ready", ExecScript::fail(1, "busy"));
        let rt = FakeRuntime::new();
        rt.script("app", script);
        let id = rt
            .create(ContainerSpec {
                name: "app".into(),
                image: "img".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        rt.start(&id).await.unwrap();
        let recording = Arc::new(Recording::default());
        let prober = Prober::new(Arc::new(rt.clone()))
            .observed_by(Arc::clone(&recording) as Arc<dyn super::super::Observer>);
        let (tx, _results) = mpsc::unbounded_channel();
        let spec = ContainerProbesSpec {
            pod_uid: "uid-1".into(),
            container: Container {
                name: "app".into(),
                readiness_probe: Some(exec_probe("ready", 10)),
                ..Default::default()
            },
            container_id: id,
            pod_ip: None,
            started_at: Instant::now(),
        };
        let probes = ContainerProbes::spawn(prober, spec, tx);
        tokio::time::sleep(Duration::from_secs(25)).await;
        probes.stop().await;
        let ready = ProbeKind::Readiness;
        assert_eq!(
            *recording.probes.lock().unwrap(),
            [
                ("exec", ready, RunResult::Successful),
                ("exec", ready, RunResult::Successful),
                ("exec", ready, RunResult::Failed),
            ],
            "runs at 0, 10 and 20s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_honours_initial_delay_and_both_thresholds() {
        let script = Script::new()
            .command_execs("ready", 2, ExecScript::ok())
            .command_exec("ready", ExecScript::fail(1, "busy"))
            .command_exec("ready", ExecScript::ok())
            .command_exec("ready", ExecScript::ok());
        let probe = Probe {
            initial_delay_seconds: Some(15),
            success_threshold: Some(2),
            failure_threshold: Some(1),
            ..exec_probe("ready", 10)
        };
        let container = Container {
            readiness_probe: Some(probe),
            ..Default::default()
        };
        let mut h = Harness::start(script, container).await;
        assert!(h.probes.started(), "no startup probe: started at once");
        assert_eq!(
            h.results_until(65).await,
            vec![
                (30, ProbeKind::Readiness, Health::Success),
                (40, ProbeKind::Readiness, Health::Failure),
                (60, ProbeKind::Readiness, Health::Success),
            ]
        );
        // Ticks at 0 and 10 are inside the 15 s initial delay.
        assert_eq!(h.exec_times("ready"), vec![20, 30, 40, 50, 60]);
        h.probes.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn startup_gates_liveness_and_readiness() {
        let script = Script::new()
            .command_execs("startup", 2, ExecScript::fail(1, "starting"))
            .command_exec("startup", ExecScript::ok());
        let container = Container {
            startup_probe: Some(Probe {
                failure_threshold: Some(30),
                ..exec_probe("startup", 5)
            }),
            liveness_probe: Some(exec_probe("live", 10)),
            readiness_probe: Some(exec_probe("ready", 10)),
            ..Default::default()
        };
        let mut h = Harness::start(script, container).await;
        assert!(!h.probes.started());
        assert_eq!(
            h.results_until(35).await,
            vec![
                (10, ProbeKind::Startup, Health::Success),
                (10, ProbeKind::Readiness, Health::Success)
            ]
        );
        assert!(h.probes.started());
        assert_eq!(
            h.exec_times("startup"),
            vec![0, 5, 10],
            "the startup probe ends once it succeeded"
        );
        assert_eq!(
            h.exec_times("ready"),
            vec![10, 20, 30],
            "readiness runs at once after startup"
        );
        assert_eq!(
            h.exec_times("live"),
            vec![10, 20, 30],
            "liveness waits for startup"
        );
        h.probes.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn failed_startup_holds_everything() {
        let script = Script::new().command_exec("startup", ExecScript::fail(1, "never"));
        let container = Container {
            startup_probe: Some(Probe {
                failure_threshold: Some(3),
                ..exec_probe("startup", 5)
            }),
            liveness_probe: Some(exec_probe("live", 10)),
            ..Default::default()
        };
        let mut h = Harness::start(script, container).await;
        assert_eq!(
            h.results_until(100).await,
            vec![(10, ProbeKind::Startup, Health::Failure)]
        );
        assert_eq!(h.exec_times("startup"), vec![0, 5, 10]);
        assert!(h.exec_times("live").is_empty());
        assert!(!h.probes.started());
        h.probes.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn errored_probes_are_thrown_away() {
        let script = Script::new()
            .command_exec("live", ExecScript::fail(1, "a"))
            .command_exec(
                "live",
                ExecScript::Fail {
                    message: "runtime hiccup".into(),
                },
            )
            .command_exec("live", ExecScript::fail(1, "b"))
            .command_exec("live", ExecScript::fail(1, "c"));
        let container = Container {
            liveness_probe: Some(exec_probe("live", 10)),
            ..Default::default()
        };
        let mut h = Harness::start(script, container).await;
        let result = tokio::time::timeout(Duration::from_secs(100), h.results.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            h.t0.elapsed(),
            Duration::from_secs(30),
            "the errored run at 10 s does not count"
        );
        assert_eq!(
            (result.kind, result.health, result.output.as_str()),
            (ProbeKind::Liveness, Health::Failure, "c")
        );
        assert_eq!(
            (result.pod_uid.as_str(), result.container.as_str()),
            ("uid-1", "app")
        );
        h.probes.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn stop_ends_workers_even_mid_probe() {
        let script = Script::new().command_exec("ready", ExecScript::Hang);
        let probe = Probe {
            timeout_seconds: Some(60),
            ..exec_probe("ready", 10)
        };
        let container = Container {
            readiness_probe: Some(probe),
            ..Default::default()
        };
        let Harness { rt, t0, probes, .. } = Harness::start(script, container).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let stopping = Instant::now();
        probes.stop().await;
        assert_eq!(
            stopping.elapsed(),
            Duration::ZERO,
            "the hanging exec was interrupted"
        );
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert_eq!(exec_times(&rt, t0, "ready"), vec![0]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_container_without_probes_has_started_and_no_workers() {
        let h = Harness::start(Script::new(), Container::default()).await;
        assert!(h.probes.started());
        assert!(h.probes.tasks.is_empty());
        h.probes.stop().await;
    }
}
