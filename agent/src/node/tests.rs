//! The node over an in-memory store and the scripted [`FakeRuntime`], in paused tokio time.

use std::future::Future;

use berth_api::{
    ObjectKey,
    core_v1::{Container, Event, PodConditionType, RestartPolicy},
    meta::ConditionStatus,
};
use berth_store::{Options, Outcome};
use tokio::{sync::oneshot, task::JoinHandle};

use super::*;
use crate::{
    pod::{Clock, Volumes, spec::FakeConfigSource},
    probe::Prober,
    restart::BackoffConfig,
    runtime::ContainerRuntime,
    testing::{FakeRuntime, Op, Run, Script},
};

const S: Duration = Duration::from_secs(1);

fn pod(name: &str) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = Some(name.into());
    pod.metadata.namespace = Some("default".into());
    pod.spec.restart_policy = Some(RestartPolicy::Always);
    pod.spec.containers = vec![Container {
        name: "app".into(),
        image: Some("busybox".into()),
        command: vec!["/bin/app".into()],
        ..Default::default()
    }];
    pod
}

fn ctx(rt: &FakeRuntime) -> WorkerContext {
    let runtime: Arc<dyn ContainerRuntime> = Arc::new(rt.clone());
    WorkerContext {
        runtime: runtime.clone(),
        prober: Prober::new(runtime),
        config: Arc::new(FakeConfigSource::default()),
        backoff: BackoffConfig::default(),
        clock: Clock::starting_at("2026-01-01T00:00:00Z".parse().unwrap()),
        pids_limit: None,
        volumes: Arc::new(Volumes::new(std::env::temp_dir().join("berth-node-tests"))),
        drain: Arc::new(crate::drain::NoTraffic),
    }
}

/// A running node and the way to stop it.
struct Running {
    task: JoinHandle<()>,
    shutdown: oneshot::Sender<()>,
}

impl Running {
    fn start(store: &RedbStore, rt: &FakeRuntime) -> Self {
        let node = Node::new(store.clone(), ctx(rt), NodeConfig::default());
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(node.run(async move {
            let _ = stop.await;
        }));
        Self { task, shutdown }
    }

    /// Drops the node's future, as a crash of berth would end it.
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    async fn stop(self) {
        let _ = self.shutdown.send(());
        self.task.await.unwrap();
    }
}

fn store() -> RedbStore {
    RedbStore::open_in_memory(Options::default()).unwrap()
}

fn key(name: &str) -> ObjectKey {
    berth_store::key_of::<Pod>(None, name)
}

/// Polls `check` every 100ms (of paused time) until it gives a value.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..3000 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn get_pod(store: &RedbStore, name: &str) -> Option<Pod> {
    store.get_as::<Pod>(None, name).await.ok()
}

async fn running_and_ready(store: &RedbStore, name: &str) -> Pod {
    eventually("the pod to be Running and Ready", || async {
        let pod = get_pod(store, name).await?;
        let status = pod.status.as_ref()?;
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == PodConditionType::Ready && c.status == ConditionStatus::True);
        (status.phase == Some(PodPhase::Running) && ready).then_some(pod)
    })
    .await
}

fn container_id(pod: &Pod) -> String {
    pod.status.as_ref().unwrap().container_statuses[0]
        .container_id
        .clone()
        .unwrap()
}

fn restart_count(pod: &Pod) -> i32 {
    pod.status.as_ref().unwrap().container_statuses[0].restart_count
}

fn starts(rt: &FakeRuntime) -> usize {
    rt.calls()
        .iter()
        .filter(|call| matches!(call.op, Op::Start { .. }))
        .count()
}

#[tokio::test(start_paused = true)]
async fn a_created_pod_becomes_running_and_ready_in_the_store() {
    let store = store();
    let rt = FakeRuntime::new();
    let node = Running::start(&store, &rt);
    store.create(pod("web")).await.unwrap();
    let running = running_and_ready(&store, "web").await;
    let status = running.status.unwrap();
    assert!(status.start_time.is_some());
    assert!(status.pod_ip.is_some());
    assert!(status.container_statuses[0].ready);
    node.stop().await;
    // Stopping the node leaves the pod running.
    let containers = rt.list(&LabelFilter::default()).await.unwrap();
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].state, ContainerState::Running);
}

#[tokio::test(start_paused = true)]
async fn deletion_is_graceful_and_the_agent_finishes_it() {
    let store = store();
    let rt = FakeRuntime::new();
    rt.script("app", Script::new().ignoring_stop_signal());
    let _node = Running::start(&store, &rt);
    let mut web = pod("web");
    web.spec.termination_grace_period_seconds = Some(10);
    store.create(web).await.unwrap();
    running_and_ready(&store, "web").await;

    let t0 = tokio::time::Instant::now();
    let outcome = store
        .delete(&key("web"), Preconditions::default())
        .await
        .unwrap();
    let Outcome::Terminating(Object::Pod(terminating)) = outcome else {
        panic!("a running pod is deleted gracefully, got {outcome:?}");
    };
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(10));
    assert!(
        get_pod(&store, "web").await.is_some(),
        "stays while it stops"
    );
    eventually("the pod to be gone", || async {
        get_pod(&store, "web").await.is_none().then_some(())
    })
    .await;
    assert!(
        t0.elapsed() >= 10 * S,
        "the container ignored SIGTERM: SIGKILL after the grace period, took {:?}",
        t0.elapsed()
    );
    let stops: Vec<Duration> = rt
        .calls()
        .iter()
        .filter_map(|call| match &call.op {
            Op::Stop { grace, .. } => Some(*grace),
            _ => None,
        })
        .collect();
    assert_eq!(stops.first(), Some(&(10 * S)));
    assert!(rt.list(&LabelFilter::default()).await.unwrap().is_empty());
    assert!(
        rt.list_sandboxes(&LabelFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(start_paused = true)]
async fn a_repeated_event_bumps_its_count() {
    let store = store();
    let rt = FakeRuntime::new();
    rt.script("app", Script::new().then(Run::Exit { after: S, code: 1 }));
    let _node = Running::start(&store, &rt);
    let created = store.create(pod("web")).await.unwrap();
    let uid = created.metadata().uid.clone().unwrap();
    let started = eventually("three starts in one event", || async {
        let events = store.list_as::<Event>(Some("default"), None).await.ok()?;
        let started: Vec<Event> = events
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("Started"))
            .collect();
        (started.len() == 1 && started[0].count >= Some(3)).then(|| started[0].clone())
    })
    .await;
    let involved = &started.involved_object;
    assert_eq!(involved.kind.as_deref(), Some("Pod"));
    assert_eq!(involved.name.as_deref(), Some("web"));
    assert_eq!(involved.namespace.as_deref(), Some("default"));
    assert_eq!(involved.uid.as_deref(), Some(uid.as_str()));
    assert_eq!(involved.field_path.as_deref(), Some("spec.containers{app}"));
    assert_eq!(started.message.as_deref(), Some("Started container app"));
    assert_eq!(
        started.source.as_ref().unwrap().component.as_deref(),
        Some(COMPONENT)
    );
    assert_eq!(started.reporting_component.as_deref(), Some(COMPONENT));
    assert!(started.metadata.name().starts_with("web."));
    assert!(started.last_timestamp > started.first_timestamp);
    let back_off = store
        .list_as::<Event>(Some("default"), None)
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|e| e.reason.as_deref() == Some("BackOff"))
        .expect("a BackOff event");
    assert_eq!(back_off.type_, Some(berth_api::core_v1::EventType::Warning));
}

#[tokio::test(start_paused = true)]
async fn a_new_node_adopts_a_running_container_without_restarting_it() {
    let store = store();
    let rt = FakeRuntime::new();
    let first = Running::start(&store, &rt);
    let mut web = pod("web");
    web.spec.containers[0].readiness_probe = Some(berth_api::core_v1::Probe {
        exec: Some(berth_api::core_v1::ExecAction {
            command: vec!["check".into()],
        }),
        initial_delay_seconds: Some(5),
        period_seconds: Some(10),
        ..Default::default()
    });
    store.create(web).await.unwrap();
    let before = running_and_ready(&store, "web").await;
    first.kill().await;
    assert_eq!(starts(&rt), 1);

    let mut changes = store
        .watch(WatchFilter::kind("Pod"), WatchStart::Now)
        .await
        .unwrap();
    let _second = Running::start(&store, &rt);
    tokio::time::sleep(30 * S).await;
    let after = running_and_ready(&store, "web").await;
    // The restart of berth does not make the pod flap through Pending or unready.
    while let Ok(Some(Ok(event))) =
        tokio::time::timeout(Duration::from_millis(10), changes.next()).await
    {
        let Object::Pod(seen) = event.object else {
            continue;
        };
        let status = seen.status.unwrap();
        assert_eq!(status.phase, Some(PodPhase::Running), "{status:?}");
        assert!(status.container_statuses[0].ready, "{status:?}");
    }
    assert_eq!(starts(&rt), 1, "the container was not started again");
    assert_eq!(container_id(&after), container_id(&before));
    assert_eq!(restart_count(&after), 0);
    let sandbox_creations = rt
        .calls()
        .iter()
        .filter(|call| matches!(call.op, Op::CreateSandbox { .. }))
        .count();
    assert_eq!(sandbox_creations, 1, "the sandbox is reused");
    assert_eq!(
        after.status.as_ref().unwrap().start_time,
        before.status.as_ref().unwrap().start_time
    );
    // The adopted container is followed: deleting the pod stops it.
    store
        .delete(&key("web"), Preconditions::default())
        .await
        .unwrap();
    eventually("the pod to be gone", || async {
        get_pod(&store, "web").await.is_none().then_some(())
    })
    .await;
    assert!(rt.list(&LabelFilter::default()).await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_exit_while_the_agent_was_down_restarts_the_container() {
    let store = store();
    let rt = FakeRuntime::new();
    rt.script(
        "app",
        Script::new()
            .then(Run::Exit {
                after: 20 * S,
                code: 3,
            })
            .then(Run::Forever),
    );
    let first = Running::start(&store, &rt);
    store.create(pod("web")).await.unwrap();
    let before = running_and_ready(&store, "web").await;
    first.kill().await;
    tokio::time::sleep(40 * S).await;
    let exited = rt.list(&LabelFilter::default()).await.unwrap();
    assert!(matches!(exited[0].state, ContainerState::Exited(_)));

    let _second = Running::start(&store, &rt);
    let after = eventually("the restarted container", || async {
        let pod = get_pod(&store, "web").await?;
        (pod.status
            .as_ref()?
            .container_statuses
            .first()?
            .restart_count
            == 1
            && pod.status.as_ref()?.phase == Some(PodPhase::Running)
            && pod.status.as_ref()?.container_statuses[0]
                .state
                .as_ref()?
                .running
                .is_some())
        .then_some(pod)
    })
    .await;
    assert_ne!(container_id(&after), container_id(&before));
    let last = after.status.as_ref().unwrap().container_statuses[0]
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("lastState.terminated");
    assert_eq!(last.exit_code, 3);
    // The exited instance stays (for `logs --previous`) beside the new one.
    let mut left = rt.list(&LabelFilter::default()).await.unwrap();
    left.sort_by_key(|c| c.labels[labels::RESTART_COUNT].clone());
    assert_eq!(left.len(), 2);
    assert_eq!(left[0].labels[labels::RESTART_COUNT], "0");
    assert_eq!(left[1].labels[labels::RESTART_COUNT], "1");
}

#[tokio::test(start_paused = true)]
async fn containers_of_a_pod_deleted_while_down_are_cleaned_up() {
    let store = store();
    let rt = FakeRuntime::new();
    let first = Running::start(&store, &rt);
    store.create(pod("gone")).await.unwrap();
    store.create(pod("stays")).await.unwrap();
    running_and_ready(&store, "gone").await;
    let stays = running_and_ready(&store, "stays").await;
    first.kill().await;
    // Forced: nobody is there to finish a graceful deletion.
    store
        .delete_with(
            &key("gone"),
            DeleteOptions {
                grace_period_seconds: Some(0),
                ..DeleteOptions::default()
            },
        )
        .await
        .unwrap();

    let _second = Running::start(&store, &rt);
    let stays_uid = stays.metadata.uid.clone().unwrap();
    eventually("only the remaining pod's containers", || async {
        let containers = rt.list(&LabelFilter::default()).await.ok()?;
        let sandboxes = rt.list_sandboxes(&LabelFilter::default()).await.ok()?;
        let only_stays = |labels: &std::collections::BTreeMap<String, String>| {
            labels.get(labels::POD_UID) == Some(&stays_uid)
        };
        (containers.len() == 1
            && containers.iter().all(|c| only_stays(&c.labels))
            && sandboxes.len() == 1
            && sandboxes.iter().all(|s| only_stays(&s.labels)))
        .then_some(())
    })
    .await;
    assert_eq!(
        starts(&rt),
        2,
        "the remaining pod was adopted, not restarted"
    );
}

#[tokio::test(start_paused = true)]
async fn a_pod_deleted_gracefully_while_down_is_stopped_and_deleted() {
    let store = store();
    let rt = FakeRuntime::new();
    let first = Running::start(&store, &rt);
    store.create(pod("web")).await.unwrap();
    running_and_ready(&store, "web").await;
    first.kill().await;
    let outcome = store
        .delete(&key("web"), Preconditions::default())
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Terminating(_)));

    let _second = Running::start(&store, &rt);
    eventually("the pod to be gone", || async {
        get_pod(&store, "web").await.is_none().then_some(())
    })
    .await;
    assert!(rt.list(&LabelFilter::default()).await.unwrap().is_empty());
    assert!(
        rt.list_sandboxes(&LabelFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(start_paused = true)]
async fn a_hundred_pods_start_at_once() {
    let store = store();
    let rt = FakeRuntime::new();
    let _node = Running::start(&store, &rt);
    let ops = (0..100)
        .map(|i| berth_store::Op::Create(pod(&format!("web-{i}")).into()))
        .collect();
    store.batch(ops).await.unwrap();
    eventually("every pod Running and Ready", || async {
        let pods = store.list_as::<Pod>(None, None).await.ok()?;
        let ready = pods
            .items
            .iter()
            .filter(|pod| {
                pod.status.as_ref().is_some_and(|s| {
                    s.phase == Some(PodPhase::Running)
                        && s.container_statuses.iter().all(|c| c.ready)
                })
            })
            .count();
        (ready == 100).then_some(())
    })
    .await;
    assert_eq!(starts(&rt), 100);
}

#[tokio::test(start_paused = true)]
async fn terminal_pods_stay_as_they_are() {
    let store = store();
    let rt = FakeRuntime::new();
    let mut done = pod("done");
    done.spec.restart_policy = Some(RestartPolicy::Never);
    let created = store.create(done).await.unwrap();
    let Object::Pod(mut created) = created else {
        unreachable!()
    };
    created.status = Some(PodStatus {
        phase: Some(PodPhase::Succeeded),
        ..PodStatus::default()
    });
    store.update_status(created).await.unwrap();
    let _node = Running::start(&store, &rt);
    tokio::time::sleep(10 * S).await;
    assert_eq!(starts(&rt), 0);
    // A terminal pod goes at once.
    let outcome = store
        .delete(&key("done"), Preconditions::default())
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Deleted(_)));
}
