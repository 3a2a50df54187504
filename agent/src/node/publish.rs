//! What a pod worker reports, written to the store: its `PodStatus` (the status subresource) and
//! its events (Kubernetes `v1 Event` objects).
//!
//! One publisher task per pod. Statuses come through a `watch` channel, so a burst of changes
//! while a write is in flight collapses into the latest one, and each pod has at most one write
//! in flight; a node-wide semaphore bounds how many pods write at once, so a hundred pods
//! starting together queue instead of piling up on the store. A status equal to the stored one
//! is not written. Events are correlated as Kubernetes' `EventCorrelator` does: the same
//! (involved object, reason, message, type) again bumps `count` and `lastTimestamp` of the event
//! written before instead of creating another object.

use std::{collections::HashMap, sync::Arc};

use berth_api::{
    Object, ObjectKey, Time,
    core_v1::{Event, EventSource, EventType as ApiEventType, ObjectReference, Pod, PodStatus},
};
use berth_store::RedbStore;
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{debug, warn};

use crate::pod::{EventType, PodEvent};

/// `source.component` and `reportingComponent` of the agent's events.
pub const COMPONENT: &str = "berth-agent";

/// Who the events are about and where they go.
#[derive(Debug, Clone)]
pub(super) struct PodRef {
    pub key: ObjectKey,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub init_containers: Vec<String>,
    /// The node's name (`source.host`, `reportingInstance`).
    pub node: String,
}

impl PodRef {
    pub fn of(pod: &Pod, node: &str) -> Self {
        let key = Object::from(pod.clone()).key();
        Self {
            namespace: key
                .namespace
                .clone()
                .unwrap_or_else(|| berth_api::DEFAULT_NAMESPACE.to_owned()),
            name: key.name.clone(),
            key,
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            init_containers: pod
                .spec
                .init_containers
                .iter()
                .map(|c| c.name.clone())
                .collect(),
            node: node.to_owned(),
        }
    }

    /// `spec.containers{web}` (or `spec.initContainers{...}`) for an event about a container.
    fn field_path(&self, container: Option<&str>) -> Option<String> {
        let container = container?;
        Some(if self.init_containers.iter().any(|c| c == container) {
            format!("spec.initContainers{{{container}}}")
        } else {
            format!("spec.containers{{{container}}}")
        })
    }
}

/// Writes `pod`'s statuses and events until the worker is gone (both channels closed); stops
/// writing statuses once the pod is gone or replaced by another with the same name.
pub(super) async fn publish(
    store: RedbStore,
    pod: PodRef,
    mut statuses: watch::Receiver<PodStatus>,
    mut events: mpsc::UnboundedReceiver<PodEvent>,
    writers: Arc<Semaphore>,
) {
    let mut written: Option<PodStatus> = None;
    let mut status_open = true;
    let mut events_open = true;
    let mut correlator = Correlator::default();
    while status_open || events_open {
        tokio::select! {
            biased;
            event = events.recv(), if events_open => match event {
                Some(event) => {
                    let _permit = writers.acquire().await;
                    correlator.record(&store, &pod, event).await;
                }
                None => events_open = false,
            },
            changed = statuses.changed(), if status_open => {
                if changed.is_err() {
                    status_open = false;
                    continue;
                }
                let status = statuses.borrow_and_update().clone();
                if written.as_ref() == Some(&status) {
                    continue;
                }
                let _permit = writers.acquire().await;
                match write_status(&store, &pod, &status).await {
                    Ok(true) => written = Some(status),
                    Ok(false) => {
                        debug!(pod = %pod.key, "pod gone: no more status writes");
                        status_open = false;
                    }
                    Err(err) => {
                        warn!(pod = %pod.key, error = %crate::error_chain(&err), "writing the pod's status");
                        // Tried again with the next change, or now if none comes.
                        statuses.mark_changed();
                        drop(_permit);
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        }
    }
}

/// Writes `status` to the pod if it still exists (with the same uid) and differs; whether the
/// pod is still there.
async fn write_status(
    store: &RedbStore,
    pod: &PodRef,
    status: &PodStatus,
) -> berth_store::Result<bool> {
    let mut gone = false;
    let result = store
        .guaranteed_update_status(&pod.key, |object| {
            let Object::Pod(mut current) = object else {
                gone = true;
                return Ok(None);
            };
            if current.metadata.uid.as_deref() != Some(pod.uid.as_str()) {
                gone = true;
                return Ok(None);
            }
            if current.status.as_ref() == Some(status) {
                return Ok(None);
            }
            current.status = Some(status.clone());
            Ok::<_, berth_store::Error>(Some(current.into()))
        })
        .await;
    match result {
        Ok(_) => Ok(!gone),
        Err(err) if err.is_not_found() => Ok(false),
        Err(err) => Err(err),
    }
}

/// The events written for one pod, by what makes them the same event.
#[derive(Default)]
struct Correlator {
    seen: HashMap<(Option<String>, &'static str, String, bool), String>,
    sequence: u64,
}

impl Correlator {
    async fn record(&mut self, store: &RedbStore, pod: &PodRef, event: PodEvent) {
        let field_path = pod.field_path(event.container.as_deref());
        let warning = event.type_ == EventType::Warning;
        let key = (
            field_path.clone(),
            event.reason,
            event.message.clone(),
            warning,
        );
        let at = Time(event.at);
        if let Some(name) = self.seen.get(&key) {
            let event_key = berth_store::key_of::<Event>(Some(&pod.namespace), name);
            let bumped = store
                .guaranteed_update(&event_key, |object| {
                    let Object::Event(mut existing) = object else {
                        return Ok(None);
                    };
                    existing.count = Some(existing.count.unwrap_or(1).saturating_add(1));
                    existing.last_timestamp = Some(at);
                    Ok::<_, berth_store::Error>(Some(existing.into()))
                })
                .await;
            match bumped {
                Ok(_) => return,
                // Deleted meanwhile: write it anew.
                Err(err) if err.is_not_found() => {}
                Err(err) => {
                    warn!(event = %event_key, error = %crate::error_chain(&err), "updating an event");
                    return;
                }
            }
        }
        for _ in 0..8 {
            self.sequence += 1;
            let nanos = u64::try_from(event.at.as_nanosecond()).unwrap_or(0);
            let name = format!("{}.{:x}", pod.name, nanos.wrapping_add(self.sequence));
            let object = Event {
                metadata: berth_api::ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(pod.namespace.clone()),
                    ..Default::default()
                },
                involved_object: ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    namespace: Some(pod.namespace.clone()),
                    name: Some(pod.name.clone()),
                    uid: Some(pod.uid.clone()),
                    field_path: field_path.clone(),
                    ..Default::default()
                },
                reason: Some(event.reason.to_owned()),
                message: Some(event.message.clone()),
                source: Some(EventSource {
                    component: Some(COMPONENT.into()),
                    host: Some(pod.node.clone()),
                }),
                first_timestamp: Some(at),
                last_timestamp: Some(at),
                count: Some(1),
                type_: Some(if warning {
                    ApiEventType::Warning
                } else {
                    ApiEventType::Normal
                }),
                reporting_component: Some(COMPONENT.into()),
                reporting_instance: Some(pod.node.clone()),
                ..Default::default()
            };
            match store.create(object).await {
                Ok(_) => {
                    self.seen.insert(key, name);
                    return;
                }
                Err(berth_store::Error::AlreadyExists { .. }) => continue,
                Err(err) => {
                    // A namespace being deleted refuses new events: nothing to do about it.
                    debug!(pod = %pod.key, reason = event.reason, error = %crate::error_chain(&err), "writing an event");
                    return;
                }
            }
        }
    }
}
