//! Root-only test of the node loop with real containers: a pod started through [`Node`] over a
//! real store survives the node being dropped (the new node adopts the same running container),
//! and deleting the pod stops and removes its containers and sandbox. The binary has its own
//! `main` so the runtime can re-execute it as its shims; the fixture removes every container and
//! sandbox left in its directories, even when the test fails.
//!
//! Run: `cargo test -p berth-agent --test node` as root.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_agent::linux::LinuxContainerRuntime;
use berth_agent::node::{Node, NodeConfig, StoreConfigSource};
use berth_agent::pod::{Clock, Volumes, WorkerContext};
use berth_agent::probe::Prober;
use berth_agent::restart::BackoffConfig;
use berth_agent::runtime::{ContainerRuntime, ContainerState, LabelFilter, labels};
use berth_api::core_v1::{Container, Pod, PodConditionType, PodPhase, RestartPolicy};
use berth_api::meta::ConditionStatus;
use berth_runtime::container::LinuxRuntime;
use berth_runtime::image::{BuildOptions, ImageStore};
use berth_store::{Preconditions, RedbStore};
use tokio::task::JoinHandle;

const IMAGE: &str = "busybox:node-test";

struct Fixture {
    dir: tempfile::TempDir,
    tokio: tokio::runtime::Runtime,
    /// The synchronous runtime the cleanup uses.
    cleanup: LinuxRuntime,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let rootfs = berth_runtime::testing::busybox_rootfs(dir.path());
        let images = ImageStore::open(&dir.path().join("images")).expect("image store");
        images
            .build(BuildOptions {
                rootfs_dir: rootfs,
                tag: IMAGE.into(),
                cmd: vec!["sh".into()],
                env: vec!["PATH=/bin".into()],
                ..BuildOptions::default()
            })
            .expect("build image");
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let cleanup = linux_runtime(dir.path());
        Self {
            dir,
            tokio,
            cleanup,
        }
    }

    fn images(&self) -> ImageStore {
        ImageStore::open(&self.dir.path().join("images")).expect("image store")
    }

    /// What a (re)starting daemon builds: a fresh runtime adapter over the same directories.
    fn context(&self, store: &RedbStore) -> WorkerContext {
        let runtime: Arc<dyn ContainerRuntime> = Arc::new(LinuxContainerRuntime::new(
            linux_runtime(self.dir.path()),
            self.images(),
        ));
        WorkerContext {
            runtime: runtime.clone(),
            prober: Prober::new(runtime),
            config: Arc::new(StoreConfigSource::new(store.clone(), self.images())),
            backoff: BackoffConfig::default(),
            clock: Clock::default(),
            pids_limit: None,
            volumes: Arc::new(Volumes::new(self.dir.path().join("pods"))),
            drain: Arc::new(berth_agent::drain::NoTraffic),
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Ok(containers) = self.cleanup.list() {
            for info in containers {
                let _ = self.cleanup.delete(&info.config.id, true);
            }
        }
        if let Ok(sandboxes) = self.cleanup.list_sandboxes() {
            for sandbox in sandboxes {
                let _ = self.cleanup.delete_sandbox(&sandbox.config.id);
            }
        }
    }
}

fn linux_runtime(dir: &Path) -> LinuxRuntime {
    berth_runtime::testing::test_runtime(dir, "/berth-test-node")
}

fn start_node(fixture: &Fixture, store: &RedbStore) -> JoinHandle<()> {
    let node = Node::new(
        store.clone(),
        fixture.context(store),
        NodeConfig {
            name: "test-node".into(),
            ..NodeConfig::default()
        },
    );
    tokio::spawn(node.run(std::future::pending()))
}

/// Polls `check` every 100ms for up to 30s.
async fn eventually<T, Fut>(what: &str, mut check: impl FnMut() -> Fut) -> T
where
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn running_pod(store: &RedbStore) -> Pod {
    eventually("the pod to run and be ready", || async {
        let pod = store.get_as::<Pod>(None, "web").await.ok()?;
        let status = pod.status.as_ref()?;
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == PodConditionType::Ready && c.status == ConditionStatus::True);
        (status.phase == Some(PodPhase::Running) && ready).then_some(pod)
    })
    .await
}

fn container_status(pod: &Pod) -> (String, i32) {
    let status = &pod.status.as_ref().expect("status").container_statuses[0];
    (
        status.container_id.clone().expect("container id"),
        status.restart_count,
    )
}

fn a_restarted_node_adopts_the_running_pod_and_deletion_cleans_up(fixture: &Fixture) {
    fixture.tokio.block_on(async {
        let store = RedbStore::open(fixture.dir.path().join("store.redb")).expect("store");
        let mut pod = Pod::default();
        pod.metadata.name = Some("web".into());
        pod.spec.restart_policy = Some(RestartPolicy::Always);
        pod.spec.termination_grace_period_seconds = Some(5);
        pod.spec.containers = vec![Container {
            name: "app".into(),
            image: Some(IMAGE.into()),
            command: vec![
                "sh".into(),
                "-c".into(),
                "trap 'exit 0' TERM; while true; do sleep 1; done".into(),
            ],
            ..Container::default()
        }];
        let created = store.create(pod).await.expect("create the pod");
        let uid = created.metadata().uid.clone().expect("uid");

        let first = start_node(fixture, &store);
        let before = running_pod(&store).await;
        first.abort();
        let _ = first.await;

        let second = start_node(fixture, &store);
        // Time for the new node to adopt (and, were it wrong, to restart) the container.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = running_pod(&store).await;
        assert_eq!(container_status(&after), container_status(&before));
        let runtime = fixture.context(&store).runtime;
        let by_uid = LabelFilter::new([(labels::POD_UID, uid.as_str())]);
        let containers = runtime.list(&by_uid).await.expect("list containers");
        assert_eq!(containers.len(), 1, "no second instance: {containers:?}");
        assert_eq!(containers[0].state, ContainerState::Running);
        assert_eq!(
            format!("berth://{}", containers[0].id),
            container_status(&after).0
        );
        let sandboxes = runtime
            .list_sandboxes(&by_uid)
            .await
            .expect("list sandboxes");
        assert_eq!(sandboxes.len(), 1, "the sandbox is reused: {sandboxes:?}");
        assert_eq!(containers[0].sandbox.as_ref(), Some(&sandboxes[0].id));

        store
            .delete(&created.key(), Preconditions::default())
            .await
            .expect("delete the pod");
        eventually("the pod to be gone", || async {
            store
                .get_as::<Pod>(None, "web")
                .await
                .err()
                .filter(|err| err.is_not_found())
                .map(|_| ())
        })
        .await;
        assert!(runtime.list(&by_uid).await.expect("list").is_empty());
        assert!(
            runtime
                .list_sandboxes(&by_uid)
                .await
                .expect("list sandboxes")
                .is_empty()
        );
        second.abort();
    });
}

type Test = berth_runtime::testing::Test<Fixture>;

const TESTS: &[Test] = &[(
    "a_restarted_node_adopts_the_running_pod_and_deletion_cleans_up",
    a_restarted_node_adopts_the_running_pod_and_deletion_cleans_up,
)];

fn main() {
    berth_runtime::shim::run_if_shim();
    berth_runtime::testing::run_tests(TESTS, Fixture::new);
}
