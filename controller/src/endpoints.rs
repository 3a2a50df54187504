//! The Endpoints controller: for each Service with a selector, an `Endpoints` object of the same
//! name listing the pods behind it, as Kubernetes' endpoints controller keeps it.
//!
//! - Pods that match the selector and have an IP are listed, Ready ones in `addresses` and the
//!   others in `notReadyAddresses` (all in `addresses` with `publishNotReadyAddresses`), each
//!   with a `targetRef` to the pod.
//! - Pods being deleted (`deletionTimestamp` set) and terminated pods are left out. Graceful
//!   deletion sets the timestamp before the agent runs `preStop` and sends SIGTERM, so a
//!   terminating pod leaves the Endpoints (and the proxy's rotation) before it stops serving.
//! - Ports are resolved per pod: `targetPort` by number, or by the name of one of the pod's
//!   container ports (a pod without that port is left out of that Service port). Pods with the
//!   same resolved ports share a subset.
//! - The Endpoints is owned by its Service (the garbage collector deletes it with the
//!   Service) and written only when it changes.
//!
//! Triggers: every change of a Service, of its Endpoints (so a deleted or edited one is put
//! back), and of a pod, which is mapped to the Services whose selector matches its labels and to
//! the Services whose Endpoints list it (a pod whose labels changed must leave those).

use std::{collections::BTreeMap, sync::Arc};

use berth_api::{
    IntOrString, Object, ObjectKey, ObjectMeta, Resource,
    core_v1::{
        EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, PodPhase,
        Protocol, Service, ServicePort,
    },
};
use berth_store::{RedbStore, WatchEvent};
use tracing::instrument;

use crate::{
    Action, Context, Controller,
    pods::{self, controller_reference},
};

/// Why a Service's Endpoints could not be written.
#[derive(Debug, thiserror::Error)]
pub enum EndpointsError {
    #[error("Endpoints {namespace}/{name}: cannot {operation}")]
    Store {
        namespace: String,
        name: String,
        operation: &'static str,
        #[source]
        source: berth_store::Error,
    },
}

pub type Result<T, E = EndpointsError> = std::result::Result<T, E>;

/// The Endpoints controller: reconciles Services, triggered by Services, their Endpoints and pods.
pub fn controller(store: RedbStore) -> Controller<Service> {
    let lookup = store.clone();
    Controller::new(store)
        .owns(<Endpoints as Resource>::KIND)
        .watches(move |event: WatchEvent| {
            let lookup = lookup.clone();
            async move { services_of_pod(&lookup, event).await }
        })
}

/// The Services a pod change concerns: those selecting it now, and those listing it now.
async fn services_of_pod(store: &RedbStore, event: WatchEvent) -> Vec<ObjectKey> {
    let Object::Pod(pod) = &event.object else {
        return Vec::new();
    };
    let namespace = namespace_of(&pod.metadata);
    let services = match store.list_as::<Service>(Some(&namespace), None).await {
        Ok(list) => list.items,
        Err(err) => {
            tracing::warn!(?err, namespace = %namespace, "cannot list services for a pod");
            return Vec::new();
        }
    };
    let endpoints = match store.list_as::<Endpoints>(Some(&namespace), None).await {
        Ok(list) => list.items,
        Err(err) => {
            tracing::warn!(?err, namespace = %namespace, "cannot list endpoints for a pod");
            return Vec::new();
        }
    };
    let pod_name = pod.metadata.name();
    let listing = endpoints.iter().filter(|e| {
        e.subsets
            .iter()
            .flat_map(|s| s.addresses.iter().chain(&s.not_ready_addresses))
            .any(|a| {
                a.target_ref
                    .as_ref()
                    .is_some_and(|r| r.name.as_deref() == Some(pod_name))
            })
    });
    let mut keys: Vec<ObjectKey> = services
        .iter()
        .filter(|s| selects(s, &pod.metadata))
        .map(|s| s.metadata.name().to_owned())
        .chain(listing.map(|e| e.metadata.name().to_owned()))
        .map(|name| berth_store::key_of::<Service>(Some(&namespace), &name))
        .collect();
    keys.sort_by(|a, b| a.name.cmp(&b.name));
    keys.dedup();
    keys
}

fn selects(service: &Service, pod: &ObjectMeta) -> bool {
    !service.spec.selector.is_empty()
        && service
            .spec
            .selector
            .iter()
            .all(|(k, v)| pod.labels.get(k) == Some(v))
}

fn namespace_of(meta: &ObjectMeta) -> String {
    meta.namespace
        .clone()
        .unwrap_or_else(|| berth_api::DEFAULT_NAMESPACE.to_owned())
}

/// Reconciles the Endpoints of one Service; see the module documentation.
#[instrument(skip_all, fields(service = %service.metadata.name()))]
pub async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Action> {
    // Services without a selector have user-managed Endpoints; a deleted Service's go with it.
    if service.spec.selector.is_empty() || service.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = namespace_of(&service.metadata);
    let name = service.metadata.name().to_owned();
    let store_error = |operation: &'static str| {
        let (namespace, name) = (namespace.clone(), name.clone());
        move |source| EndpointsError::Store {
            namespace,
            name,
            operation,
            source,
        }
    };
    let pods: Vec<Pod> = ctx
        .store
        .list_as::<Pod>(Some(&namespace), None)
        .await
        .map_err(store_error("list pods"))?
        .items
        .into_iter()
        .filter(|pod| selects(&service, &pod.metadata))
        .collect();
    let subsets = subsets_for(&service, &pods);
    let owner = controller_reference(Service::API_VERSION, Service::KIND, &service.metadata);
    match ctx.store.get_as::<Endpoints>(Some(&namespace), &name).await {
        Ok(existing) => {
            let mut updated = existing.clone();
            updated.subsets = subsets;
            updated.metadata.labels = service.metadata.labels.clone();
            updated
                .metadata
                .owner_references
                .retain(|r| r.controller != Some(true));
            updated.metadata.owner_references.push(owner);
            if updated != existing {
                ctx.store
                    .update(updated)
                    .await
                    .map_err(store_error("update"))?;
                tracing::debug!("updated endpoints");
            }
        }
        Err(err) if err.is_not_found() => {
            let endpoints = Endpoints {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(namespace.clone()),
                    labels: service.metadata.labels.clone(),
                    owner_references: vec![owner],
                    ..ObjectMeta::default()
                },
                subsets,
                ..Endpoints::default()
            };
            ctx.store
                .create(endpoints)
                .await
                .map_err(store_error("create"))?;
            tracing::debug!("created endpoints");
        }
        Err(err) => return Err(store_error("read")(err)),
    }
    Ok(Action::await_change())
}

/// Failed reconciles (conflicts included) are retried with exponential backoff.
pub fn error_policy(_service: Arc<Service>, _err: &EndpointsError, _ctx: Arc<Context>) -> Action {
    Action::backoff()
}

/// The subsets of `service`'s Endpoints given the pods its selector matches; see the module
/// documentation. Deterministic: subsets ordered by ports, addresses by IP then pod name.
pub fn subsets_for(service: &Service, pods: &[Pod]) -> Vec<EndpointSubset> {
    let publish_not_ready = service.spec.publish_not_ready_addresses == Some(true);
    // Keyed by the ports, as (name, port, protocol) so that they sort.
    type PortsKey = Vec<(Option<String>, i32, Protocol)>;
    let mut groups: BTreeMap<PortsKey, EndpointSubset> = BTreeMap::new();
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some()
            || matches!(
                pod.status.as_ref().and_then(|s| s.phase),
                Some(PodPhase::Succeeded | PodPhase::Failed)
            )
        {
            continue;
        }
        let Some(ip) = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .filter(|ip| !ip.is_empty())
        else {
            continue;
        };
        let ports: PortsKey = service
            .spec
            .ports
            .iter()
            .filter_map(|port| {
                let protocol = port.protocol.unwrap_or(Protocol::Tcp);
                resolve_target_port(port, pod).map(|number| (port.name.clone(), number, protocol))
            })
            .collect();
        if ports.is_empty() && !service.spec.ports.is_empty() {
            continue;
        }
        let address = EndpointAddress {
            ip: ip.to_owned(),
            hostname: pod
                .spec
                .hostname
                .clone()
                .filter(|_| pod.spec.subdomain.as_deref() == Some(service.metadata.name())),
            node_name: pod.spec.node_name.clone(),
            target_ref: Some(ObjectReference {
                api_version: Some(Pod::API_VERSION.to_owned()),
                kind: Some(Pod::KIND.to_owned()),
                namespace: Some(namespace_of(&pod.metadata)),
                name: Some(pod.metadata.name().to_owned()),
                uid: pod.metadata.uid.clone(),
                ..ObjectReference::default()
            }),
        };
        let subset = groups.entry(ports).or_default();
        if publish_not_ready || pods::is_ready(pod) {
            subset.addresses.push(address);
        } else {
            subset.not_ready_addresses.push(address);
        }
    }
    groups
        .into_iter()
        .map(|(ports, mut subset)| {
            subset.ports = ports
                .into_iter()
                .map(|(name, port, protocol)| EndpointPort {
                    name,
                    port,
                    protocol: Some(protocol),
                })
                .collect();
            let order = |a: &EndpointAddress, b: &EndpointAddress| {
                let ip = |x: &EndpointAddress| x.ip.parse::<std::net::IpAddr>().ok();
                ip(a)
                    .cmp(&ip(b))
                    .then_with(|| a.ip.cmp(&b.ip))
                    .then_with(|| {
                        let name = |x: &EndpointAddress| {
                            x.target_ref.as_ref().and_then(|r| r.name.clone())
                        };
                        name(a).cmp(&name(b))
                    })
            };
            subset.addresses.sort_by(order);
            subset.not_ready_addresses.sort_by(order);
            subset
        })
        .collect()
}

/// The pod's port for a Service port: the number, or the container port with that name (and
/// protocol); `None` when the pod has no such named port.
pub fn resolve_target_port(port: &ServicePort, pod: &Pod) -> Option<i32> {
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(number)) => Some(*number),
        Some(IntOrString::String(name)) => {
            let protocol = port.protocol.unwrap_or(Protocol::Tcp);
            pod.spec
                .containers
                .iter()
                .flat_map(|c| &c.ports)
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.unwrap_or(Protocol::Tcp) == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use berth_api::{
        Time,
        core_v1::{PodCondition, PodConditionType, PodStatus},
        meta::ConditionStatus,
        testing,
    };
    use berth_store::{Options, RedbStore};

    use super::*;
    use crate::Clock;

    fn pod(name: &str, app: &str, ip: Option<&str>, ready: bool, http_port: Option<i32>) -> Pod {
        let mut container = testing::container("app", "busybox");
        if let Some(port) = http_port {
            container = container.with_port("http", port);
        }
        let mut pod = testing::pod(name)
            .with_containers(vec![container.build()])
            .build();
        pod.metadata.labels = [("app".to_owned(), app.to_owned())].into();
        pod.status = Some(PodStatus {
            phase: Some(PodPhase::Running),
            pod_ip: ip.map(str::to_owned),
            conditions: vec![PodCondition {
                type_: PodConditionType::Ready,
                status: if ready {
                    ConditionStatus::True
                } else {
                    ConditionStatus::False
                },
                last_probe_time: None,
                last_transition_time: Some(Time::now()),
                reason: None,
                message: None,
            }],
            ..PodStatus::default()
        });
        pod
    }

    fn ips(addresses: &[EndpointAddress]) -> Vec<&str> {
        addresses.iter().map(|a| a.ip.as_str()).collect()
    }

    #[test]
    fn ready_and_not_ready_pods_go_to_their_lists_with_named_ports_resolved() {
        let service = testing::service("web", 80).build();
        let mut terminating = pod("gone", "web", Some("10.73.0.9"), true, Some(8080));
        terminating.metadata.deletion_timestamp = Some(Time::now());
        let pods = vec![
            pod("b", "web", Some("10.73.0.3"), true, Some(8080)),
            pod("a", "web", Some("10.73.0.2"), true, Some(8080)),
            pod("slow", "web", Some("10.73.0.4"), false, Some(8080)),
            pod("noip", "web", None, true, Some(8080)),
            pod("noport", "web", Some("10.73.0.5"), true, None),
            pod("other", "web", Some("10.73.0.6"), true, Some(9090)),
            terminating,
        ];
        let subsets = subsets_for(&service, &pods);
        assert_eq!(subsets.len(), 2, "{subsets:#?}");
        assert_eq!(ips(&subsets[0].addresses), vec!["10.73.0.2", "10.73.0.3"]);
        assert_eq!(ips(&subsets[0].not_ready_addresses), vec!["10.73.0.4"]);
        assert_eq!(subsets[0].ports[0].port, 8080);
        assert_eq!(subsets[0].ports[0].name.as_deref(), Some("http"));
        assert_eq!(ips(&subsets[1].addresses), vec!["10.73.0.6"]);
        assert_eq!(subsets[1].ports[0].port, 9090);
        let target = subsets[0].addresses[0].target_ref.as_ref().unwrap();
        assert_eq!(target.kind.as_deref(), Some("Pod"));
        assert_eq!(target.name.as_deref(), Some("a"));
    }

    #[test]
    fn numeric_target_ports_and_publish_not_ready() {
        let mut service = testing::service("web", 80).build();
        service.spec.ports[0].target_port = Some(IntOrString::Int(8000));
        service.spec.publish_not_ready_addresses = Some(true);
        let pods = vec![pod("a", "web", Some("10.73.0.2"), false, None)];
        let subsets = subsets_for(&service, &pods);
        assert_eq!(ips(&subsets[0].addresses), vec!["10.73.0.2"]);
        assert_eq!(subsets[0].ports[0].port, 8000);
    }

    async fn settle() {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn endpoints(store: &RedbStore) -> Endpoints {
        store
            .get_as::<Endpoints>(Some("default"), "web")
            .await
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn endpoints_follow_readiness_deletion_and_labels() {
        let store = RedbStore::open_in_memory(Options::default()).unwrap();
        let ctx = Arc::new(Context::new(store.clone(), Clock::new()));
        let task = tokio::spawn(controller(store.clone()).run(reconcile, error_policy, ctx));
        let service = store
            .create(testing::service("web", 80).build())
            .await
            .unwrap();
        store
            .create(pod("a", "web", Some("10.73.0.2"), true, Some(8080)))
            .await
            .unwrap();
        store
            .create(pod("b", "web", Some("10.73.0.3"), false, Some(8080)))
            .await
            .unwrap();
        settle().await;
        let first = endpoints(&store).await;
        assert_eq!(ips(&first.subsets[0].addresses), vec!["10.73.0.2"]);
        assert_eq!(
            ips(&first.subsets[0].not_ready_addresses),
            vec!["10.73.0.3"]
        );
        let owner = &first.metadata.owner_references[0];
        assert_eq!(owner.kind, "Service");
        assert_eq!(owner.uid, service.metadata().uid.clone().unwrap());

        // b becomes Ready.
        let mut b: Pod = store.get_as(Some("default"), "b").await.unwrap();
        b.status.as_mut().unwrap().conditions[0].status = ConditionStatus::True;
        store.update_status(b).await.unwrap();
        settle().await;
        let second = endpoints(&store).await;
        assert_eq!(
            ips(&second.subsets[0].addresses),
            vec!["10.73.0.2", "10.73.0.3"]
        );
        assert!(second.subsets[0].not_ready_addresses.is_empty());

        // A change that does not matter writes nothing.
        let mut a: Pod = store.get_as(Some("default"), "a").await.unwrap();
        a.metadata
            .annotations
            .insert("touched".into(), "yes".into());
        store.update(a).await.unwrap();
        settle().await;
        assert_eq!(
            endpoints(&store).await.metadata.resource_version,
            second.metadata.resource_version
        );

        // a starts terminating: it leaves at once. b's labels change: it leaves too.
        let mut a: Pod = store.get_as(Some("default"), "a").await.unwrap();
        a.metadata.finalizers.push("test/hold".into());
        store.update(a.clone()).await.unwrap();
        store
            .delete(&Object::from(a).key(), Default::default())
            .await
            .unwrap();
        let mut b: Pod = store.get_as(Some("default"), "b").await.unwrap();
        b.metadata.labels.insert("app".into(), "other".into());
        store.update(b).await.unwrap();
        settle().await;
        assert!(endpoints(&store).await.subsets.is_empty());

        // A deleted Endpoints is put back.
        store
            .delete(
                &berth_store::key_of::<Endpoints>(Some("default"), "web"),
                Default::default(),
            )
            .await
            .unwrap();
        settle().await;
        endpoints(&store).await;
        task.abort();
    }
}
