//! The Service controller: gives each Service its cluster IP and node ports, as Kubernetes'
//! API server allocators do.
//!
//! - **Cluster IP.** A `ClusterIP` or `NodePort` Service without `spec.clusterIP` gets a free
//!   address of the service network ([`ServiceNetwork`], `10.74.0.0/16` by default; never the
//!   network address, the gateway `.0.1` or the broadcast address), written to `clusterIP` and
//!   `clusterIPs`. `clusterIP: None` makes a headless Service, which keeps no address. A
//!   user-given address is kept when no other Service holds it; when one does, the Service gets
//!   a Warning event (`ClusterIPAlreadyAllocated`) and no address: the older Service (creation
//!   time, then namespace and name; see [`holds_cluster_ip`]) keeps it, and the proxy serves
//!   only the holder.
//! - **Node ports.** Each port of a `NodePort` Service without `nodePort` gets a free one of
//!   30000–32767. An explicit `nodePort` that another, older Service already uses is a Warning
//!   event (`NodePortAlreadyAllocated`) naming both Services. A Service that is no longer of type
//!   `NodePort` loses its node ports.
//!
//! # Why there is no allocation state
//! Kubernetes keeps allocation bitmaps in etcd and repairs them periodically. Here the Services in
//! the store are the only record: every reconcile lists them, picks from what is free, and writes
//! the Service with the resourceVersion it read (a precondition: a concurrent change is a 409 and
//! the reconcile runs again). Allocations of this controller are serialised by one lock held from
//! the list to the write, so two Services reconciled at once cannot pick the same address; the
//! lock holds no data, so nothing leaks and a restart recomputes everything from the store. The
//! only other writers of these fields are users, whose explicit values are checked as above.
//! The start of the search is derived from the Service's uid, so a freed address is not handed
//! straight to the next Service while clients may still cache it.

use std::{
    collections::{BTreeMap, HashSet},
    hash::{Hash, Hasher},
    net::Ipv4Addr,
    ops::RangeInclusive,
    sync::Arc,
};

use berth_api::{
    Object, ObjectMeta, Resource,
    core_v1::{Event, EventSource, EventType, ObjectReference, Service, ServiceType},
};
use berth_store::{EventType as WatchEventType, RedbStore, WatchEvent};
use tokio::sync::Mutex;
use tracing::instrument;

use crate::{Action, Clock, Context, Controller};

/// The component name written into the events of this controller.
const COMPONENT: &str = "service-controller";

/// Why a Service could not be reconciled.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("Service {namespace}/{name}: cannot {operation}")]
    Store {
        namespace: String,
        name: String,
        operation: &'static str,
        #[source]
        source: berth_store::Error,
    },
    #[error("Service {namespace}/{name}: no free {what} left in {range} (every one is allocated)")]
    Exhausted {
        namespace: String,
        name: String,
        what: &'static str,
        range: String,
    },
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// The address range of cluster IPs and the node port range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceNetwork {
    /// The network address of the service CIDR (`10.74.0.0`).
    pub network: Ipv4Addr,
    /// Its prefix length (`16`), at most 30.
    pub prefix_len: u8,
    /// `30000..=32767` by default.
    pub node_ports: RangeInclusive<i32>,
}

impl Default for ServiceNetwork {
    fn default() -> Self {
        Self {
            network: Ipv4Addr::new(10, 74, 0, 0),
            prefix_len: 16,
            node_ports: 30000..=32767,
        }
    }
}

impl ServiceNetwork {
    /// The first and last address handed out: the network address, the gateway (`network + 1`)
    /// and the broadcast address are left out.
    fn host_range(&self) -> (u32, u32) {
        let prefix = u32::from(self.prefix_len.min(30));
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        let network = u32::from(self.network) & mask;
        let broadcast = network | !mask;
        (network + 2, broadcast - 1)
    }

    /// Whether `ip` lies in the service CIDR.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let (first, last) = self.host_range();
        (first - 2..=last + 1).contains(&u32::from(ip))
    }

    fn cidr(&self) -> String {
        format!("{}/{}", self.network, self.prefix_len)
    }
}

/// The service controller's context: the store, the clock, the ranges and the allocation lock.
#[derive(Debug)]
pub struct Allocator {
    pub ctx: Context,
    pub network: ServiceNetwork,
    lock: Mutex<()>,
}

impl Allocator {
    pub fn new(ctx: Context, network: ServiceNetwork) -> Self {
        Self {
            ctx,
            network,
            lock: Mutex::new(()),
        }
    }
}

/// The Service controller: every change of a Service reconciles it, and a deleted Service's
/// contenders (Services claiming its cluster IP or one of its node ports) are reconciled again:
/// one of them may now hold the address.
pub fn controller(store: RedbStore) -> Controller<Service> {
    let lookup = store.clone();
    Controller::new(store).watches(move |event: WatchEvent| {
        let lookup = lookup.clone();
        async move {
            let Object::Service(gone) = &event.object else {
                return Vec::new();
            };
            if event.event_type != WatchEventType::Deleted {
                return Vec::new();
            }
            let services = match lookup.list_as::<Service>(None, None).await {
                Ok(list) => list.items,
                Err(err) => {
                    tracing::warn!(?err, "cannot list services after a deletion");
                    return Vec::new();
                }
            };
            let node_ports: HashSet<i32> =
                gone.spec.ports.iter().filter_map(|p| p.node_port).collect();
            services
                .iter()
                .filter(|s| {
                    (cluster_ip(s).is_some() && cluster_ip(s) == cluster_ip(gone))
                        || s.spec
                            .ports
                            .iter()
                            .any(|p| p.node_port.is_some_and(|n| node_ports.contains(&n)))
                })
                .map(|s| {
                    berth_store::key_of::<Service>(
                        s.metadata.namespace.as_deref(),
                        s.metadata.name(),
                    )
                })
                .collect()
        }
    })
}

/// A Service's cluster IP as written, if it is an address (not empty, not `None`).
pub fn cluster_ip(service: &Service) -> Option<&str> {
    service
        .spec
        .cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty() && *ip != "None")
}

/// Whether `service` is headless (`clusterIP: None`).
pub fn is_headless(service: &Service) -> bool {
    service.spec.cluster_ip.as_deref() == Some("None")
}

/// The order in which Services hold a contested address or node port: the oldest first.
fn seniority(meta: &ObjectMeta) -> (Option<berth_api::Time>, &str, &str) {
    (
        meta.creation_timestamp,
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name(),
    )
}

fn same_object(a: &ObjectMeta, b: &ObjectMeta) -> bool {
    a.namespace == b.namespace && a.name == b.name
}

/// The Service among `services` that holds `service`'s cluster IP when several claim it (the
/// oldest), or `None` when `service` holds it itself (or has none).
pub fn cluster_ip_holder<'a>(service: &Service, services: &'a [Service]) -> Option<&'a Service> {
    let ip = cluster_ip(service)?;
    services
        .iter()
        .filter(|other| !same_object(&other.metadata, &service.metadata))
        .filter(|other| cluster_ip(other) == Some(ip))
        .filter(|other| seniority(&other.metadata) < seniority(&service.metadata))
        .min_by(|a, b| seniority(&a.metadata).cmp(&seniority(&b.metadata)))
}

/// Whether `service` may use its cluster IP: it has one and no older Service claims it too.
pub fn holds_cluster_ip(service: &Service, services: &[Service]) -> bool {
    cluster_ip(service).is_some() && cluster_ip_holder(service, services).is_none()
}

fn namespace_of(meta: &ObjectMeta) -> String {
    meta.namespace
        .clone()
        .unwrap_or_else(|| berth_api::DEFAULT_NAMESPACE.to_owned())
}

fn full_name(meta: &ObjectMeta) -> String {
    format!("{}/{}", namespace_of(meta), meta.name())
}

fn start_offset(uid: Option<&str>, salt: &str, size: u64) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    uid.hash(&mut hasher);
    salt.hash(&mut hasher);
    hasher.finish() % size.max(1)
}

/// A warning to record once the allocation lock is released, about the Service that loses a
/// contested address (which may be another than the one reconciled: with creation times equal to
/// the second, the loser may have been reconciled before the holder existed).
struct Warning {
    involved: ObjectReference,
    reason: &'static str,
    message: String,
}

/// Reconciles one Service; see the module documentation.
#[instrument(skip_all, fields(service = %service.metadata.name()))]
pub async fn reconcile(service: Arc<Service>, allocator: Arc<Allocator>) -> Result<Action> {
    if service.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = namespace_of(&service.metadata);
    let name = service.metadata.name().to_owned();
    let store = &allocator.ctx.store;
    let store_error = |operation: &'static str| {
        let (namespace, name) = (namespace.clone(), name.clone());
        move |source| ServiceError::Store {
            namespace,
            name,
            operation,
            source,
        }
    };
    let mut warnings = Vec::new();
    {
        let _allocating = allocator.lock.lock().await;
        let services = store
            .list_as::<Service>(None, None)
            .await
            .map_err(store_error("list services"))?
            .items;
        // Work on the stored version: the one the precondition of the update is about.
        let Some(current) = services
            .iter()
            .find(|s| same_object(&s.metadata, &service.metadata))
        else {
            return Ok(Action::await_change());
        };
        let mut updated = current.clone();
        assign_cluster_ip(&mut updated, &services, &allocator.network, &mut warnings)
            .map_err(|what| exhausted(&namespace, &name, what, allocator.network.cidr()))?;
        assign_node_ports(&mut updated, &services, &allocator.network, &mut warnings).map_err(
            |what| {
                let range = allocator.network.node_ports.clone();
                exhausted(
                    &namespace,
                    &name,
                    what,
                    format!("{}-{}", range.start(), range.end()),
                )
            },
        )?;
        if updated.spec != current.spec {
            store
                .update(updated)
                .await
                .map_err(store_error("write the allocated addresses"))?;
            tracing::debug!("allocated service addresses");
        }
    }
    for warning in warnings {
        record_event(
            store,
            &allocator.ctx.clock,
            warning.involved,
            EventType::Warning,
            warning.reason,
            &warning.message,
            COMPONENT,
        )
        .await;
    }
    Ok(Action::await_change())
}

fn exhausted(namespace: &str, name: &str, what: &'static str, range: String) -> ServiceError {
    ServiceError::Exhausted {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        what,
        range,
    }
}

/// Failed reconciles (conflicts included) are retried with exponential backoff.
pub fn error_policy(_service: Arc<Service>, _err: &ServiceError, _ctx: Arc<Allocator>) -> Action {
    Action::backoff()
}

/// Fills `clusterIP`/`clusterIPs`; `Err` names what ran out.
fn assign_cluster_ip(
    service: &mut Service,
    services: &[Service],
    network: &ServiceNetwork,
    warnings: &mut Vec<Warning>,
) -> Result<(), &'static str> {
    if is_headless(service) {
        if service.spec.cluster_ips.is_empty() {
            service.spec.cluster_ips = vec!["None".to_owned()];
        }
        return Ok(());
    }
    if let Some(ip) = cluster_ip(service) {
        // Every Service claiming the address but the oldest gets a warning naming it.
        let claimants: Vec<&Service> = services
            .iter()
            .filter(|other| cluster_ip(other) == Some(ip))
            .collect();
        let holder = claimants
            .iter()
            .min_by(|a, b| seniority(&a.metadata).cmp(&seniority(&b.metadata)))
            .copied();
        if let Some(holder) = holder {
            let losers = claimants
                .iter()
                .filter(|c| !same_object(&c.metadata, &holder.metadata));
            for loser in losers {
                warnings.push(Warning {
                    involved: object_reference(loser),
                    reason: "ClusterIPAlreadyAllocated",
                    message: format!(
                        "spec.clusterIP {ip} of Service {} is already allocated to Service {}; \
                         this Service gets no address until it is changed or the other goes",
                        full_name(&loser.metadata),
                        full_name(&holder.metadata),
                    ),
                });
            }
        }
        let holder = cluster_ip_holder(service, services);
        if holder.is_none() && service.spec.cluster_ips.is_empty() {
            service.spec.cluster_ips = vec![ip.to_owned()];
        }
        return Ok(());
    }
    let used: HashSet<u32> = services
        .iter()
        .filter(|s| !same_object(&s.metadata, &service.metadata))
        .filter_map(cluster_ip)
        .filter_map(|ip| ip.parse::<Ipv4Addr>().ok())
        .map(u32::from)
        .collect();
    let (first, last) = network.host_range();
    let size = u64::from(last - first) + 1;
    let offset = start_offset(service.metadata.uid.as_deref(), "clusterIP", size);
    let free = (0..size)
        .map(|i| first + u32::try_from((offset + i) % size).unwrap_or(0))
        .find(|candidate| !used.contains(candidate))
        .ok_or("cluster IP")?;
    let ip = Ipv4Addr::from(free).to_string();
    service.spec.cluster_ip = Some(ip.clone());
    service.spec.cluster_ips = vec![ip];
    Ok(())
}

/// Fills the `nodePort` of each port of a `NodePort` Service; `Err` names what ran out.
fn assign_node_ports(
    service: &mut Service,
    services: &[Service],
    network: &ServiceNetwork,
    warnings: &mut Vec<Warning>,
) -> Result<(), &'static str> {
    if service.spec.type_ != Some(ServiceType::NodePort) {
        for port in &mut service.spec.ports {
            port.node_port = None;
        }
        return Ok(());
    }
    // Node ports of other Services, with the Service holding each (the oldest).
    let mut held: BTreeMap<i32, &Service> = BTreeMap::new();
    for other in services
        .iter()
        .filter(|s| !same_object(&s.metadata, &service.metadata))
        .filter(|s| s.spec.type_ == Some(ServiceType::NodePort))
    {
        for port in other.spec.ports.iter().filter_map(|p| p.node_port) {
            let entry = held.entry(port).or_insert(other);
            if seniority(&other.metadata) < seniority(&entry.metadata) {
                *entry = other;
            }
        }
    }
    let mut used: HashSet<i32> = held.keys().copied().collect();
    for port in service.spec.ports.iter().filter_map(|p| p.node_port) {
        used.insert(port);
        if let Some(other) = held.get(&port) {
            let (loser, winner) = if seniority(&other.metadata) < seniority(&service.metadata) {
                (&*service, *other)
            } else {
                (*other, &*service)
            };
            warnings.push(Warning {
                involved: object_reference(loser),
                reason: "NodePortAlreadyAllocated",
                message: format!(
                    "spec.ports[].nodePort {port} of Service {} is already allocated to \
                     Service {}",
                    full_name(&loser.metadata),
                    full_name(&winner.metadata)
                ),
            });
        }
    }
    let range = network.node_ports.clone();
    let size = u64::try_from(range.end() - range.start() + 1).unwrap_or(0);
    for index in 0..service.spec.ports.len() {
        if service.spec.ports[index].node_port.is_some() {
            continue;
        }
        let salt = format!("nodePort{index}");
        let offset = start_offset(service.metadata.uid.as_deref(), &salt, size);
        let free = (0..size)
            .map(|i| range.start() + i32::try_from((offset + i) % size).unwrap_or(0))
            .find(|candidate| !used.contains(candidate))
            .ok_or("node port")?;
        used.insert(free);
        service.spec.ports[index].node_port = Some(free);
    }
    Ok(())
}

/// A reference to `service` for events and endpoints.
pub fn object_reference(service: &Service) -> ObjectReference {
    ObjectReference {
        api_version: Some(Service::API_VERSION.to_owned()),
        kind: Some(Service::KIND.to_owned()),
        namespace: Some(namespace_of(&service.metadata)),
        name: Some(service.metadata.name().to_owned()),
        uid: service.metadata.uid.clone(),
        ..ObjectReference::default()
    }
}

/// Records an event about `involved` (in its namespace), as `kubectl describe` shows them. The
/// same reason and message for the same object bump the `count` of one event instead of adding
/// another, so a condition seen on every reconcile does not flood the store. Failures are logged,
/// not returned: an event is never worth failing a reconcile for.
pub async fn record_event(
    store: &RedbStore,
    clock: &Clock,
    involved: ObjectReference,
    type_: EventType,
    reason: &str,
    message: &str,
    component: &str,
) {
    let namespace = involved
        .namespace
        .clone()
        .unwrap_or_else(|| berth_api::DEFAULT_NAMESPACE.to_owned());
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (&involved.uid, reason, message).hash(&mut hasher);
    let name = format!(
        "{}.{:016x}",
        involved.name.as_deref().unwrap_or("unnamed"),
        hasher.finish()
    );
    let now = clock.now();
    let key = berth_store::key_of::<Event>(Some(&namespace), &name);
    let bumped = store
        .guaranteed_update(&key, |object| {
            let berth_api::Object::Event(mut event) = object else {
                return Ok::<_, berth_store::Error>(None);
            };
            event.count = Some(event.count.unwrap_or(1).saturating_add(1));
            event.last_timestamp = Some(now);
            Ok(Some(event.into()))
        })
        .await;
    match bumped {
        Ok(_) => return,
        Err(err) if err.is_not_found() => {}
        Err(err) => {
            tracing::warn!(event = %key, ?err, "cannot update an event");
            return;
        }
    }
    let event = Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace),
            ..ObjectMeta::default()
        },
        involved_object: involved,
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        source: Some(EventSource {
            component: Some(component.to_owned()),
            host: None,
        }),
        first_timestamp: Some(now),
        last_timestamp: Some(now),
        count: Some(1),
        type_: Some(type_),
        reporting_component: Some(component.to_owned()),
        ..Event::default()
    };
    if let Err(err) = store.create(event).await {
        tracing::warn!(event = %key, ?err, "cannot record an event");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use berth_api::testing;
    use berth_store::{Options, RedbStore};

    use super::*;

    fn started() -> (RedbStore, tokio::task::JoinHandle<()>) {
        let store = RedbStore::open_in_memory(Options::default()).unwrap();
        let allocator = Arc::new(Allocator::new(
            Context::new(store.clone(), Clock::new()),
            ServiceNetwork::default(),
        ));
        let task = tokio::spawn(controller(store.clone()).run(reconcile, error_policy, allocator));
        (store, task)
    }

    async fn settle() {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn service(store: &RedbStore, name: &str) -> Service {
        store
            .get_as::<Service>(Some("default"), name)
            .await
            .unwrap()
    }

    async fn warnings(store: &RedbStore) -> Vec<Event> {
        store
            .list_as::<Event>(Some("default"), None)
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.type_ == Some(EventType::Warning))
            .collect()
    }

    #[test]
    fn the_host_range_leaves_out_network_gateway_and_broadcast() {
        let network = ServiceNetwork::default();
        let (first, last) = network.host_range();
        assert_eq!(Ipv4Addr::from(first), Ipv4Addr::new(10, 74, 0, 2));
        assert_eq!(Ipv4Addr::from(last), Ipv4Addr::new(10, 74, 255, 254));
        assert!(network.contains(Ipv4Addr::new(10, 74, 3, 4)));
        assert!(!network.contains(Ipv4Addr::new(10, 75, 0, 1)));
    }

    #[tokio::test(start_paused = true)]
    async fn allocates_unique_cluster_ips_in_the_service_cidr() {
        let (store, task) = started();
        for i in 0..20 {
            store
                .create(testing::service(&format!("web{i}"), 80).build())
                .await
                .unwrap();
        }
        let mut headless = testing::service("headless", 80).build();
        headless.spec.cluster_ip = Some("None".into());
        store.create(headless).await.unwrap();
        settle().await;
        let mut seen = HashSet::new();
        let network = ServiceNetwork::default();
        for i in 0..20 {
            let svc = service(&store, &format!("web{i}")).await;
            let ip: Ipv4Addr = cluster_ip(&svc).expect("a cluster IP").parse().unwrap();
            assert!(network.contains(ip), "{ip} is outside 10.74.0.0/16");
            assert_ne!(
                ip,
                Ipv4Addr::new(10, 74, 0, 1),
                "the gateway is never handed out"
            );
            assert_eq!(svc.spec.cluster_ips, vec![ip.to_string()]);
            assert!(seen.insert(ip), "{ip} handed out twice");
        }
        let headless = service(&store, "headless").await;
        assert_eq!(headless.spec.cluster_ip.as_deref(), Some("None"));
        assert_eq!(headless.spec.cluster_ips, vec!["None".to_owned()]);
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn keeps_a_free_explicit_cluster_ip_and_warns_about_a_taken_one() {
        let (store, task) = started();
        let mut first = testing::service("first", 80).build();
        first.spec.cluster_ip = Some("10.74.9.9".into());
        store.create(first).await.unwrap();
        settle().await;
        let mut second = testing::service("second", 80).build();
        second.spec.cluster_ip = Some("10.74.9.9".into());
        store.create(second).await.unwrap();
        settle().await;

        let first = service(&store, "first").await;
        assert_eq!(first.spec.cluster_ips, vec!["10.74.9.9".to_owned()]);
        let second = service(&store, "second").await;
        assert!(
            second.spec.cluster_ips.is_empty(),
            "the loser gets no address"
        );
        let all = vec![first.clone(), second.clone()];
        assert!(holds_cluster_ip(&first, &all));
        assert!(!holds_cluster_ip(&second, &all));
        let warnings = warnings(&store).await;
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(
            warnings[0].reason.as_deref(),
            Some("ClusterIPAlreadyAllocated")
        );
        assert_eq!(warnings[0].involved_object.name.as_deref(), Some("second"));
        let message = warnings[0].message.as_deref().unwrap();
        assert!(message.contains("default/first"), "{message}");

        // When the holder goes, the other Service gets the address.
        store
            .delete(
                &berth_store::key_of::<Service>(Some("default"), "first"),
                Default::default(),
            )
            .await
            .unwrap();
        settle().await;
        let second = service(&store, "second").await;
        assert_eq!(second.spec.cluster_ips, vec!["10.74.9.9".to_owned()]);
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn allocates_unique_node_ports_and_reports_an_explicit_clash() {
        let (store, task) = started();
        store
            .create(
                testing::service("explicit", 80)
                    .with_node_port(30080)
                    .build(),
            )
            .await
            .unwrap();
        settle().await;
        let mut multi = testing::service("multi", 80).build();
        multi.spec.type_ = Some(ServiceType::NodePort);
        multi.spec.ports.push(berth_api::core_v1::ServicePort {
            name: Some("metrics".into()),
            port: 9090,
            ..Default::default()
        });
        store.create(multi).await.unwrap();
        store
            .create(testing::service("clash", 81).with_node_port(30080).build())
            .await
            .unwrap();
        settle().await;

        let explicit = service(&store, "explicit").await;
        assert_eq!(explicit.spec.ports[0].node_port, Some(30080));
        let multi = service(&store, "multi").await;
        let ports: Vec<i32> = multi
            .spec
            .ports
            .iter()
            .map(|p| p.node_port.unwrap())
            .collect();
        assert_eq!(ports.len(), 2);
        assert_ne!(ports[0], ports[1]);
        for port in &ports {
            assert!((30000..=32767).contains(port));
            assert_ne!(
                *port, 30080,
                "an explicit node port is never handed out again"
            );
        }
        let warnings = warnings(&store).await;
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(
            warnings[0].reason.as_deref(),
            Some("NodePortAlreadyAllocated")
        );
        let message = warnings[0].message.as_deref().unwrap();
        assert!(
            message.contains("default/clash") && message.contains("default/explicit"),
            "{message}"
        );
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_allocations_never_collide_in_a_tiny_range() {
        let store = RedbStore::open_in_memory(Options::default()).unwrap();
        // A /29 has 5 addresses to hand out (.2 to .6).
        let network = ServiceNetwork {
            network: Ipv4Addr::new(10, 74, 0, 0),
            prefix_len: 29,
            node_ports: 30000..=30004,
        };
        let allocator = Arc::new(Allocator::new(
            Context::new(store.clone(), Clock::new()),
            network,
        ));
        let task = tokio::spawn(controller(store.clone()).run(reconcile, error_policy, allocator));
        for i in 0..6 {
            store
                .create(testing::service(&format!("s{i}"), 80).build())
                .await
                .unwrap();
        }
        settle().await;
        let services = store.list_as::<Service>(None, None).await.unwrap().items;
        let ips: Vec<&str> = services.iter().filter_map(cluster_ip).collect();
        assert_eq!(ips.len(), 5, "only five addresses fit: {ips:?}");
        let unique: HashSet<&&str> = ips.iter().collect();
        assert_eq!(unique.len(), 5, "{ips:?}");
        task.abort();
    }
}
