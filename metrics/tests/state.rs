//! `StateMetrics` over an in-memory store: exact kube-state-metrics series for Deployments,
//! ReplicaSets and Pods, series of deleted objects vanishing, and the relist after a watch falls
//! behind.

mod support;

use berth_api::apps_v1::{DeploymentStatus, ReplicaSetStatus};
use berth_api::core_v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, Pod, PodCondition, PodConditionType, PodPhase, PodStatus,
};
use berth_api::meta::{ConditionStatus, OwnerReference};
use berth_api::{Object, Time, testing};
use berth_metrics::StateMetrics;
use berth_store::{DeleteOptions, Op, Options, RedbStore, key_of};
use support::{eventually, promtool_check, scrape, series};

fn start(store: &RedbStore) -> (StateMetrics, tokio::sync::oneshot::Sender<()>) {
    let metrics = StateMetrics::new().expect("descs");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(metrics.clone().run(store.clone(), async {
        let _ = stopped.await;
    }));
    (metrics, stop)
}

fn pod_in(name: &str, namespace: &str) -> Pod {
    let mut pod = testing::pod(name)
        .with_containers(vec![
            testing::container("app", "busybox:1.36").build(),
            testing::container("sidecar", "busybox:1.36").build(),
        ])
        .build();
    pod.metadata.namespace = Some(namespace.to_owned());
    pod
}

fn time(text: &str) -> Time {
    text.parse().expect("timestamp")
}

fn uid(object: &Object) -> String {
    object.metadata().uid.clone().expect("uid")
}

#[tokio::test]
async fn deployment_and_replica_set_series_are_exact() {
    let store = RedbStore::open_in_memory(Options::default()).unwrap();
    let (metrics, _stop) = start(&store);

    let mut deployment = testing::deployment("web").with_replicas(3).build();
    deployment.spec.paused = Some(true);
    let created = store.create(deployment).await.unwrap();
    let Object::Deployment(mut deployment) = created else {
        panic!("not a deployment")
    };
    deployment.spec.replicas = Some(4);
    let Object::Deployment(mut deployment) = store.update(deployment).await.unwrap() else {
        panic!("not a deployment")
    };
    deployment.status = Some(DeploymentStatus {
        observed_generation: Some(1),
        replicas: 3,
        updated_replicas: 2,
        ready_replicas: 1,
        available_replicas: 1,
        unavailable_replicas: 2,
        ..DeploymentStatus::default()
    });
    store.update_status(deployment).await.unwrap();

    let mut replica_set = testing::replica_set("web-5d8f", 3);
    replica_set.status = None;
    let Object::ReplicaSet(mut replica_set) = store.create(replica_set).await.unwrap() else {
        panic!("not a replica set")
    };
    replica_set.status = Some(ReplicaSetStatus {
        replicas: 3,
        ready_replicas: 2,
        ..ReplicaSetStatus::default()
    });
    store.update_status(replica_set).await.unwrap();

    let text = eventually(
        || scrape(metrics.clone()),
        |text| {
            text.contains("kube_deployment_status_replicas_unavailable{")
                && text.contains("kube_replicaset_status_ready_replicas{namespace=\"default\",replicaset=\"web-5d8f\"} 2")
        },
    )
    .await;

    let web = "{namespace=\"default\",deployment=\"web\"}";
    for (name, value) in [
        ("kube_deployment_spec_replicas", 4),
        ("kube_deployment_status_replicas", 3),
        ("kube_deployment_status_replicas_updated", 2),
        ("kube_deployment_status_replicas_ready", 1),
        ("kube_deployment_status_replicas_available", 1),
        ("kube_deployment_status_replicas_unavailable", 2),
        ("kube_deployment_metadata_generation", 2),
        ("kube_deployment_status_observed_generation", 1),
        ("kube_deployment_spec_paused", 1),
    ] {
        assert_eq!(
            series(&text, name),
            vec![format!("{name}{web} {value}")],
            "{name} in:\n{text}"
        );
    }
    let rs = "{namespace=\"default\",replicaset=\"web-5d8f\"}";
    for (name, value) in [
        ("kube_replicaset_spec_replicas", 3),
        ("kube_replicaset_status_replicas", 3),
        ("kube_replicaset_status_ready_replicas", 2),
    ] {
        assert_eq!(series(&text, name), vec![format!("{name}{rs} {value}")]);
    }
    assert!(text.contains(
        "# HELP kube_deployment_spec_replicas Number of desired pods for a deployment.\n\
         # TYPE kube_deployment_spec_replicas gauge\n"
    ));
    promtool_check(&text);
}

#[tokio::test]
async fn pod_series_are_exact_and_vanish_with_the_pod() {
    let store = RedbStore::open_in_memory(Options::default()).unwrap();
    let (metrics, _stop) = start(&store);

    let mut pod = pod_in("web-1", "default");
    pod.spec.node_name = Some("node-a".to_owned());
    pod.metadata.owner_references = vec![OwnerReference {
        api_version: "apps/v1".to_owned(),
        kind: "ReplicaSet".to_owned(),
        name: "web-5d8f".to_owned(),
        uid: "rs-uid".to_owned(),
        controller: Some(true),
        block_owner_deletion: None,
    }];
    let created = store.create(pod).await.unwrap();
    let uid = uid(&created);
    let Object::Pod(mut pod) = created else {
        panic!("not a pod")
    };
    pod.status = Some(PodStatus {
        phase: Some(PodPhase::Running),
        conditions: vec![PodCondition {
            type_: PodConditionType::Ready,
            status: ConditionStatus::False,
            last_probe_time: None,
            last_transition_time: None,
            reason: None,
            message: None,
        }],
        host_ip: Some("10.0.0.1".to_owned()),
        pod_ip: Some("10.88.0.5".to_owned()),
        start_time: Some(time("2026-01-02T03:04:05Z")),
        container_statuses: vec![
            ContainerStatus {
                name: "app".to_owned(),
                state: Some(ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some("CrashLoopBackOff".to_owned()),
                        message: None,
                    }),
                    ..ContainerState::default()
                }),
                last_state: Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: 137,
                        reason: Some("OOMKilled".to_owned()),
                        ..ContainerStateTerminated::default()
                    }),
                    ..ContainerState::default()
                }),
                ready: false,
                restart_count: 5,
                image: "busybox:1.36".to_owned(),
                ..ContainerStatus::default()
            },
            ContainerStatus {
                name: "sidecar".to_owned(),
                state: Some(ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(time("2026-01-02T03:04:06Z")),
                    }),
                    ..ContainerState::default()
                }),
                ready: true,
                image: "busybox:1.36".to_owned(),
                ..ContainerStatus::default()
            },
        ],
        ..PodStatus::default()
    });
    store.update_status(pod).await.unwrap();

    let text = eventually(
        || scrape(metrics.clone()),
        |text| text.contains("kube_pod_container_status_last_terminated_reason{"),
    )
    .await;

    let p = format!("namespace=\"default\",pod=\"web-1\",uid=\"{uid}\"");
    let expect = |name: &str, lines: &[String]| {
        assert_eq!(series(&text, name), lines, "{name} in:\n{text}");
    };
    expect(
        "kube_pod_status_phase",
        &[
            format!("kube_pod_status_phase{{{p},phase=\"Failed\"}} 0"),
            format!("kube_pod_status_phase{{{p},phase=\"Pending\"}} 0"),
            format!("kube_pod_status_phase{{{p},phase=\"Running\"}} 1"),
            format!("kube_pod_status_phase{{{p},phase=\"Succeeded\"}} 0"),
            format!("kube_pod_status_phase{{{p},phase=\"Unknown\"}} 0"),
        ],
    );
    expect(
        "kube_pod_status_ready",
        &[
            format!("kube_pod_status_ready{{{p},condition=\"false\"}} 1"),
            format!("kube_pod_status_ready{{{p},condition=\"true\"}} 0"),
            format!("kube_pod_status_ready{{{p},condition=\"unknown\"}} 0"),
        ],
    );
    let app = format!("{p},container=\"app\"");
    let sidecar = format!("{p},container=\"sidecar\"");
    for (name, app_value, sidecar_value) in [
        ("kube_pod_container_status_ready", 0, 1),
        ("kube_pod_container_status_restarts_total", 5, 0),
        ("kube_pod_container_status_running", 0, 1),
        ("kube_pod_container_status_waiting", 1, 0),
        ("kube_pod_container_status_terminated", 0, 0),
    ] {
        expect(
            name,
            &[
                format!("{name}{{{app}}} {app_value}"),
                format!("{name}{{{sidecar}}} {sidecar_value}"),
            ],
        );
    }
    expect(
        "kube_pod_container_status_waiting_reason",
        &[format!(
            "kube_pod_container_status_waiting_reason{{{app},reason=\"CrashLoopBackOff\"}} 1"
        )],
    );
    expect(
        "kube_pod_container_status_last_terminated_reason",
        &[format!(
            "kube_pod_container_status_last_terminated_reason{{{app},reason=\"OOMKilled\"}} 1"
        )],
    );
    expect(
        "kube_pod_info",
        &[format!(
            "kube_pod_info{{{p},host_ip=\"10.0.0.1\",pod_ip=\"10.88.0.5\",node=\"node-a\",\
             created_by_kind=\"ReplicaSet\",created_by_name=\"web-5d8f\",host_network=\"false\"}} 1"
        )],
    );
    expect(
        "kube_pod_start_time",
        &[format!("kube_pod_start_time{{{p}}} 1767323045")],
    );
    expect("kube_pod_deletion_timestamp", &[]);
    assert!(text.contains("# TYPE kube_pod_container_status_restarts_total counter\n"));
    promtool_check(&text);

    // A started pod is deleted gracefully: first a deletionTimestamp...
    let key = key_of::<Pod>(Some("default"), "web-1");
    store.delete(&key, Default::default()).await.unwrap();
    let text = eventually(
        || scrape(metrics.clone()),
        |text| !series(text, "kube_pod_deletion_timestamp").is_empty(),
    )
    .await;
    let deleted_at = series(&text, "kube_pod_deletion_timestamp");
    let seconds: f64 = deleted_at[0]
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .expect("a value");
    assert!(seconds > 1.7e9, "a unix timestamp: {deleted_at:?}");

    // ... then, deleted with grace 0, every series of the pod is gone at once.
    store
        .delete_with(
            &key,
            DeleteOptions {
                grace_period_seconds: Some(0),
                ..DeleteOptions::default()
            },
        )
        .await
        .unwrap();
    let text = eventually(|| scrape(metrics.clone()), |text| !text.contains("web-1")).await;
    assert!(!text.contains("kube_pod_"), "no pod series left:\n{text}");
}

#[tokio::test]
async fn a_lagging_watch_relists_and_drops_objects_deleted_meanwhile() {
    // A feed of 2 events: a batch of 6 changes leaves the watchers behind (Gone), and the
    // DELETED event of `old` is among the ones they never see.
    let store = RedbStore::open_in_memory(Options {
        feed_capacity: 2,
        ..Options::default()
    })
    .unwrap();
    store.create(pod_in("old", "default")).await.unwrap();
    let (metrics, _stop) = start(&store);
    eventually(
        || scrape(metrics.clone()),
        |text| text.contains("pod=\"old\""),
    )
    .await;

    let mut ops = vec![Op::Delete {
        key: key_of::<Pod>(Some("default"), "old"),
        preconditions: Default::default(),
    }];
    for i in 0..5 {
        ops.push(Op::Create(pod_in(&format!("new-{i}"), "default").into()));
    }
    // Written from another thread while this (current-thread) runtime is blocked, so the
    // reflectors cannot read a single event before the feed overflows.
    let writer = store.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(writer.batch(ops)).expect("batch");
    })
    .join()
    .expect("writer thread");

    let text = eventually(
        || scrape(metrics.clone()),
        |text| series(text, "kube_pod_info").len() == 5,
    )
    .await;
    assert!(!text.contains("pod=\"old\""), "old is gone:\n{text}");
    for i in 0..5 {
        assert!(
            text.contains(&format!("pod=\"new-{i}\"")),
            "new-{i} in:\n{text}"
        );
    }
}

#[tokio::test]
async fn the_reflectors_stop_on_shutdown() {
    let store = RedbStore::open_in_memory(Options::default()).unwrap();
    let metrics = StateMetrics::new().unwrap();
    let task = tokio::spawn(metrics.run(store.clone(), async {}));
    tokio::time::timeout(std::time::Duration::from_secs(5), task)
        .await
        .expect("run returns once shutdown completes")
        .unwrap();
}
