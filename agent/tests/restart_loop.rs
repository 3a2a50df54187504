//! The agent's foundations together, in paused time: the scripted runtime, the restart tracker
//! and the probe workers, driven by a minimal container loop (the pod worker will own this loop).

use std::{sync::Arc, time::Duration};

use berth_agent::{
    probe::{ContainerProbes, ContainerProbesSpec, Health, ProbeKind, Prober},
    restart::{BackoffConfig, Decision, RestartTracker},
    runtime::{ContainerRuntime, ContainerSpec},
    testing::{ExecScript, FakeRuntime, Run, Script},
};
use berth_api::core_v1::{Container, ExecAction, Probe, RestartPolicy};
use tokio::{sync::mpsc, time::Instant};

/// Runs container "app" until `runs` instances have started: waits for each exit (or kills the
/// container when its liveness probe fails), asks the tracker, sleeps the backoff, restarts.
async fn run_app(rt: &FakeRuntime, container: Container, runs: usize) -> Vec<u64> {
    let t0 = Instant::now();
    let mut tracker = RestartTracker::new(RestartPolicy::Always, BackoffConfig::default());
    let prober = Prober::new(Arc::new(rt.clone()));
    let (results_tx, mut results) = mpsc::unbounded_channel();
    for run in 0..runs {
        let spec = ContainerSpec {
            name: "app".into(),
            image: "img".into(),
            ..Default::default()
        };
        let id = rt.create(spec).await.unwrap();
        rt.start(&id).await.unwrap();
        if run > 0 {
            tracker.on_restart(Instant::now());
        }
        if run + 1 == runs {
            break;
        }
        let probes = ContainerProbes::spawn(
            prober.clone(),
            ContainerProbesSpec {
                pod_uid: "uid".into(),
                container: container.clone(),
                container_id: id.clone(),
                pod_ip: None,
                started_at: Instant::now(),
            },
            results_tx.clone(),
        );
        let exit = tokio::select! {
            exit = rt.wait(&id) => exit.unwrap(),
            Some(result) = results.recv() => {
                assert_eq!((result.kind, result.health), (ProbeKind::Liveness, Health::Failure));
                rt.stop(&id, Duration::from_secs(30), None).await.unwrap();
                rt.wait(&id).await.unwrap()
            }
        };
        probes.stop().await;
        rt.delete(&id).await.unwrap();
        match tracker.on_exit(&exit, Instant::now()) {
            Decision::Restart { after } => tokio::time::sleep(after).await,
            Decision::Stay(terminal) => panic!("Always never stays: {terminal:?}"),
        }
    }
    rt.start_times("app")
        .into_iter()
        .map(|at| (at - t0).as_secs())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn crashing_container_restarts_with_kubelet_backoff() {
    let rt = FakeRuntime::new();
    rt.script(
        "app",
        Script::new().then(Run::Exit {
            after: Duration::from_secs(1),
            code: 1,
        }),
    );
    let starts = run_app(
        &rt,
        Container {
            name: "app".into(),
            ..Default::default()
        },
        9,
    )
    .await;
    // Immediate first restart, then 10 s, 20 s, 40 s, 80 s, 160 s, 300 s, 300 s after each exit.
    assert_eq!(starts, vec![0, 1, 12, 33, 74, 155, 316, 617, 918]);
}

#[tokio::test(start_paused = true)]
async fn failing_liveness_probe_restarts_the_container() {
    let rt = FakeRuntime::new();
    // Two good probes, then failures for good (the sequence is shared by every instance).
    rt.script(
        "app",
        Script::new()
            .command_execs("live", 2, ExecScript::ok())
            .command_exec("live", ExecScript::fail(1, "x")),
    );
    let liveness = Probe {
        exec: Some(ExecAction {
            command: vec!["live".into()],
        }),
        period_seconds: Some(10),
        ..Default::default()
    };
    let container = Container {
        name: "app".into(),
        liveness_probe: Some(liveness),
        ..Default::default()
    };
    let starts = run_app(&rt, container, 4).await;
    // Instance 1 fails its probes at 20, 30, 40; later ones at 0, 10, 20 after their start.
    assert_eq!(starts, vec![0, 40, 70, 110]);
}
