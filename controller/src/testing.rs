//! Test doubles (feature `testing`): a [`FakeKubelet`] that plays the agent's part, so the
//! controllers can be tested against a real (in-memory) store with paused tokio time.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use berth_api::{
    Object,
    core_v1::{
        ContainerState, ContainerStateRunning, ContainerStatus, Pod, PodCondition,
        PodConditionType, PodPhase, PodStatus,
    },
    meta::ConditionStatus,
};
use berth_store::{
    DeleteOptions, EventType, Preconditions, RedbStore, StreamExt, WatchFilter, WatchStart,
};
use tokio::task::JoinSet;

use crate::Clock;

/// When a pod's containers become Ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// This long after they start.
    After(Duration),
    /// Never: the pod runs but its readiness probe keeps failing.
    Never,
}

/// Watches pods and, on a schedule driven by tokio time, makes new pods Running after
/// `start_after` and Ready after their image's [`Readiness`]; removes the finalizers of pods
/// being deleted and finishes their graceful deletion at once (as an agent whose containers
/// stop on SIGTERM does), so that they go.
#[derive(Debug, Clone)]
pub struct FakeKubelet {
    store: RedbStore,
    clock: Clock,
    start_after: Duration,
    readiness: Readiness,
    by_image: HashMap<String, Readiness>,
}

impl FakeKubelet {
    /// Pods start after 1s and are Ready 2s later.
    pub fn new(store: RedbStore, clock: Clock) -> Self {
        Self {
            store,
            clock,
            start_after: Duration::from_secs(1),
            readiness: Readiness::After(Duration::from_secs(2)),
            by_image: HashMap::new(),
        }
    }

    pub fn start_after(mut self, delay: Duration) -> Self {
        self.start_after = delay;
        self
    }

    /// Readiness of pods whose images have no readiness of their own.
    pub fn ready_after(mut self, readiness: Readiness) -> Self {
        self.readiness = readiness;
        self
    }

    /// Readiness of pods with a container running `image`.
    pub fn image(mut self, image: &str, readiness: Readiness) -> Self {
        self.by_image.insert(image.to_owned(), readiness);
        self
    }

    fn readiness_of(&self, pod: &Pod) -> Readiness {
        pod.spec
            .containers
            .iter()
            .find_map(|c| c.image.as_ref().and_then(|i| self.by_image.get(i)))
            .copied()
            .unwrap_or(self.readiness)
    }

    /// Runs until the store's change feed closes: spawn it and abort the task to stop it.
    /// Watches again from the current state when the watch falls behind.
    pub async fn run(self) {
        let mut lifecycles = JoinSet::new();
        let mut started: HashSet<Option<String>> = HashSet::new();
        loop {
            let Ok(mut watch) = self
                .store
                .watch(WatchFilter::kind("Pod"), WatchStart::InitialState)
                .await
            else {
                return;
            };
            loop {
                match watch.next().await {
                    None => return,
                    Some(Err(_)) => break,
                    Some(Ok(event)) => {
                        let Object::Pod(pod) = event.object else {
                            continue;
                        };
                        if pod.metadata.deletion_timestamp.is_some() {
                            if event.event_type != EventType::Deleted {
                                remove_finalizers(&self.store, &pod).await;
                                finish_deletion(&self.store, &pod).await;
                            }
                        } else if event.event_type != EventType::Deleted
                            && pod.status.is_none()
                            && started.insert(pod.metadata.uid.clone())
                        {
                            let kubelet = self.clone();
                            lifecycles.spawn(async move { kubelet.live(pod).await });
                        }
                    }
                }
                while lifecycles.try_join_next().is_some() {}
            }
        }
    }

    async fn live(self, pod: Pod) {
        tokio::time::sleep(self.start_after).await;
        let started = self.clock.now();
        let readiness = self.readiness_of(&pod);
        let ok = self
            .set_status(&pod, |status, pod| {
                if status.phase.is_some() {
                    return;
                }
                status.phase = Some(PodPhase::Running);
                status.start_time = Some(started);
                status.pod_ip = Some("10.88.0.2".to_owned());
                status.conditions = vec![
                    condition(PodConditionType::PodScheduled, true, started),
                    condition(PodConditionType::Initialized, true, started),
                    condition(PodConditionType::ContainersReady, false, started),
                    condition(PodConditionType::Ready, false, started),
                ];
                status.container_statuses = pod
                    .spec
                    .containers
                    .iter()
                    .map(|c| ContainerStatus {
                        name: c.name.clone(),
                        state: Some(ContainerState {
                            running: Some(ContainerStateRunning {
                                started_at: Some(started),
                            }),
                            ..ContainerState::default()
                        }),
                        ready: false,
                        started: Some(true),
                        image: c.image.clone().unwrap_or_default(),
                        ..ContainerStatus::default()
                    })
                    .collect();
            })
            .await;
        let Readiness::After(delay) = readiness else {
            return;
        };
        if !ok {
            return;
        }
        tokio::time::sleep(delay).await;
        let ready = self.clock.now();
        self.set_status(&pod, |status, _| {
            for c in &mut status.conditions {
                if matches!(
                    c.type_,
                    PodConditionType::Ready | PodConditionType::ContainersReady
                ) {
                    c.status = ConditionStatus::True;
                    c.last_transition_time = Some(ready);
                }
            }
            for c in &mut status.container_statuses {
                c.ready = true;
            }
        })
        .await;
    }

    /// Changes the status of `pod` if it still exists (the same pod); whether it did.
    async fn set_status(&self, pod: &Pod, change: impl Fn(&mut PodStatus, &Pod)) -> bool {
        let key = Object::from(pod.clone()).key();
        let uid = pod.metadata.uid.clone();
        self.store
            .guaranteed_update_status(&key, |object| {
                let Object::Pod(mut current) = object else {
                    return Ok(None);
                };
                if current.metadata.uid != uid || current.metadata.deletion_timestamp.is_some() {
                    return Ok(None);
                }
                let mut status = current.status.clone().unwrap_or_default();
                change(&mut status, &current);
                current.status = Some(status);
                Ok::<_, berth_store::Error>(Some(current.into()))
            })
            .await
            .is_ok()
    }
}

fn condition(type_: PodConditionType, status: bool, at: berth_api::Time) -> PodCondition {
    PodCondition {
        type_,
        status: if status {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        },
        last_probe_time: None,
        last_transition_time: Some(at),
        reason: None,
        message: None,
    }
}

/// The agent's part of a graceful deletion: the pod's containers are stopped, so it goes (grace
/// 0, the same pod only).
async fn finish_deletion(store: &RedbStore, pod: &Pod) {
    if pod.metadata.deletion_grace_period_seconds.unwrap_or(0) == 0 {
        return;
    }
    let key = Object::from(pod.clone()).key();
    let options = DeleteOptions {
        preconditions: Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        },
        grace_period_seconds: Some(0),
    };
    if let Err(err) = store.delete_with(&key, options).await
        && !err.is_not_found()
    {
        tracing::debug!(pod = %key, ?err, "finishing a graceful deletion");
    }
}

async fn remove_finalizers(store: &RedbStore, pod: &Pod) {
    let key = Object::from(pod.clone()).key();
    let _ = store
        .guaranteed_update(&key, |mut object: Object| {
            if object.metadata().finalizers.is_empty() {
                return Ok::<_, berth_store::Error>(None);
            }
            object.metadata_mut().finalizers.clear();
            Ok(Some(object))
        })
        .await;
}
