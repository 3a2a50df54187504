//! A single-node cluster in a test: an in-memory store, the controllers and a FakeKubelet,
//! on paused tokio time.

#![allow(dead_code)]

use std::{future::Future, time::Duration};

use berth_api::{
    ApplyDefaults, Object,
    apps_v1::{
        Deployment, DeploymentStrategy, DeploymentStrategyType, ReplicaSet, RollingUpdateDeployment,
    },
    core_v1::Pod,
    intstr::IntOrString,
};
use berth_controller::{Clock, Context, pods, testing::FakeKubelet};
use berth_store::{Options, RedbStore};
use tokio::task::JoinHandle;

pub struct Cluster {
    pub store: RedbStore,
    pub clock: Clock,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Cluster {
    /// A store, the controllers, and a kubelet configured by `kubelet`.
    pub async fn start(kubelet: impl FnOnce(FakeKubelet) -> FakeKubelet) -> Self {
        let cluster = Self::store_only();
        cluster.with_controllers(kubelet)
    }

    /// Only the store: put objects in before the controllers start.
    pub fn store_only() -> Self {
        Self::from_store(RedbStore::open_in_memory(Options::default()).unwrap())
    }

    pub fn from_store(store: RedbStore) -> Self {
        Self {
            store,
            clock: Clock::new(),
            tasks: Vec::new(),
        }
    }

    pub fn with_controllers(mut self, kubelet: impl FnOnce(FakeKubelet) -> FakeKubelet) -> Self {
        let ctx = Context::new(self.store.clone(), self.clock);
        self.tasks.push(tokio::spawn(berth_controller::run(ctx)));
        let kubelet = kubelet(FakeKubelet::new(self.store.clone(), self.clock));
        self.tasks.push(tokio::spawn(kubelet.run()));
        self
    }

    pub async fn pods(&self) -> Vec<Pod> {
        self.store.list_as::<Pod>(None, None).await.unwrap().items
    }

    pub async fn replica_sets(&self) -> Vec<ReplicaSet> {
        let mut items = self
            .store
            .list_as::<ReplicaSet>(None, None)
            .await
            .unwrap()
            .items;
        items.sort_by_key(|rs| berth_controller::deployment::util::revision(&rs.metadata));
        items
    }

    pub async fn deployment(&self, name: &str) -> Deployment {
        self.store
            .get_as::<Deployment>(Some("default"), name)
            .await
            .unwrap()
    }

    /// Changes the Deployment's spec as `change` says.
    pub async fn edit(&self, name: &str, change: impl Fn(&mut Deployment)) {
        let key = berth_store::key_of::<Deployment>(Some("default"), name);
        self.store
            .guaranteed_update(&key, |object| {
                let Object::Deployment(mut d) = object else {
                    unreachable!()
                };
                change(&mut d);
                Ok::<_, berth_store::Error>(Some(d.into()))
            })
            .await
            .unwrap();
    }

    /// Polls `check` every 100ms of (paused) time until it holds; panics after `limit`.
    pub async fn eventually<F, Fut>(&self, limit: Duration, what: &str, check: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = bool>,
    {
        assert!(
            self.wait(limit, check).await,
            "timed out after {limit:?} waiting for {what}"
        );
    }

    /// Polls `check` every 100ms of (paused) time until it holds (true) or `limit` passes.
    pub async fn wait<F, Fut>(&self, limit: Duration, check: F) -> bool
    where
        F: Fn() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if check().await {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the Deployment's rollout is complete: every pod of the current template, all
    /// available, status up to date.
    pub async fn rollout_complete(&self, name: &str) -> bool {
        let d = self.deployment(name).await;
        let replicas = d.spec.replicas.unwrap_or(1);
        let Some(status) = &d.status else {
            return false;
        };
        let image = d.spec.template.spec.containers[0].image.clone();
        let selector = d.spec.selector.clone().unwrap_or_default();
        let mut pods = self.pods().await;
        pods.retain(|p| selector.matches(&p.metadata.labels));
        let min_ready = d.spec.min_ready_seconds.unwrap_or(0);
        let current = pods
            .iter()
            .filter(|p| p.spec.containers[0].image == image)
            .filter(|p| pods::is_available(p, min_ready, &self.clock))
            .count();
        status.observed_generation == d.metadata.generation
            && status.updated_replicas == replicas
            && status.replicas == replicas
            && status.available_replicas == replicas
            && pods.len() == usize::try_from(replicas).unwrap()
            && current == pods.len()
    }
}

/// A defaulted Deployment `name` of `replicas` running `image`.
pub fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    let mut d = berth_api::testing::deployment(name)
        .with_replicas(replicas)
        .build();
    d.spec.template.spec.containers[0].image = Some(image.to_owned());
    d.apply_defaults();
    d
}

pub fn rolling(d: &mut Deployment, surge: IntOrString, unavailable: IntOrString) {
    d.spec.strategy = Some(DeploymentStrategy {
        type_: Some(DeploymentStrategyType::RollingUpdate),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(surge),
            max_unavailable: Some(unavailable),
        }),
    });
}

pub fn recreate(d: &mut Deployment) {
    d.spec.strategy = Some(DeploymentStrategy {
        type_: Some(DeploymentStrategyType::Recreate),
        rolling_update: None,
    });
}

pub fn image_of(pod: &Pod) -> &str {
    pod.spec.containers[0].image.as_deref().unwrap_or_default()
}

pub fn set_image(d: &mut Deployment, image: &str) {
    d.spec.template.spec.containers[0].image = Some(image.to_owned());
}
