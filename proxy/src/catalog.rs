//! The catalog: every Service and Endpoints of the store, and the pods that publish host ports,
//! kept current from one watch and published through a `tokio::sync::watch` channel, so that the
//! proxy and the DNS see each change at once and share one stream of the store.
//!
//! Pods are kept only as [`HostPortPod`]s, and only when a container declares a `hostPort`: the
//! snapshot is cloned on each change, and the common pod without host ports neither grows it
//! nor wakes its consumers.
//!
//! Start-up (and restart after the store answers `Gone`) lists Services, Endpoints and Pods,
//! publishes that state, and watches from the oldest of the lists' revisions. Replayed events older than
//! what a list already gave are recognised by the object's resourceVersion and ignored, so the
//! snapshot never goes back in time.

use std::{collections::BTreeMap, net::IpAddr, time::Duration};

use berth_api::{
    Object, ObjectMeta, Time,
    core_v1::{Endpoints, Pod, PodPhase, Protocol, Service},
};
use berth_store::{EventType, RedbStore, StreamExt, WatchFilter, WatchStart};
use tokio::sync::watch;

/// (namespace, name) of a Service and of its Endpoints.
pub type ServiceName = (String, String);

/// The Services and Endpoints at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub services: BTreeMap<ServiceName, Service>,
    pub endpoints: BTreeMap<ServiceName, Endpoints>,
    /// Pods with at least one `hostPort`, by (namespace, name).
    pub host_ports: BTreeMap<ServiceName, HostPortPod>,
    /// False until the first list has been read.
    pub synced: bool,
}

impl Snapshot {
    /// The IPs of the ready addresses of a Service's Endpoints, in order, without duplicates.
    pub fn ready_ips(&self, name: &ServiceName) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = self
            .endpoints
            .get(name)
            .into_iter()
            .flat_map(|e| &e.subsets)
            .flat_map(|s| &s.addresses)
            .filter_map(|a| a.ip.parse().ok())
            .collect();
        ips.sort();
        ips.dedup();
        ips
    }

    /// Every Service, for rules that compare Services (who holds a contested cluster IP).
    pub fn all_services(&self) -> Vec<Service> {
        self.services.values().cloned().collect()
    }
}

/// A pod that declares host ports, reduced to what publishing them needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPortPod {
    pub uid: Option<String>,
    pub created: Option<Time>,
    /// The pod's IP while it is `Running`; `None` before, after, and without an IP.
    pub ip: Option<IpAddr>,
    pub ports: Vec<HostPort>,
    resource_version: u64,
}

/// One `ports[]` entry of a container with a `hostPort`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub container: String,
    /// `hostIP`, `0.0.0.0` when not given.
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl HostPortPod {
    /// The host ports of `pod`; `None` when it declares none (or none that is valid).
    pub fn of(pod: &Pod) -> Option<Self> {
        let ports: Vec<HostPort> = pod
            .spec
            .containers
            .iter()
            .flat_map(|container| {
                container.ports.iter().filter_map(move |port| {
                    let host_port = u16::try_from(port.host_port?).ok().filter(|p| *p != 0)?;
                    let host_ip = match port.host_ip.as_deref().filter(|ip| !ip.is_empty()) {
                        Some(ip) => ip.parse().ok()?,
                        None => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                    };
                    Some(HostPort {
                        container: container.name.clone(),
                        host_ip,
                        host_port,
                        container_port: u16::try_from(port.container_port).ok()?,
                        protocol: port.protocol.unwrap_or(Protocol::Tcp),
                    })
                })
            })
            .collect();
        if ports.is_empty() {
            return None;
        }
        let status = pod.status.as_ref();
        let ip = status
            .filter(|status| status.phase == Some(PodPhase::Running))
            .and_then(|status| status.pod_ip.as_deref())
            .and_then(|ip| ip.parse().ok());
        Some(Self {
            uid: pod.metadata.uid.clone(),
            created: pod.metadata.creation_timestamp,
            ip,
            ports,
            resource_version: parse_version(pod.metadata.resource_version.as_deref()),
        })
    }
}

fn name_of(meta: &ObjectMeta) -> ServiceName {
    (
        meta.namespace
            .clone()
            .unwrap_or_else(|| berth_api::DEFAULT_NAMESPACE.to_owned()),
        meta.name().to_owned(),
    )
}

fn version_of(object: &Object) -> u64 {
    parse_version(object.metadata().resource_version.as_deref())
}

/// A handle on the published snapshots; cheap to clone.
#[derive(Debug, Clone)]
pub struct Catalog {
    receiver: watch::Receiver<Snapshot>,
}

impl Catalog {
    /// Starts keeping the catalog of `store`; the task ends when every handle is dropped.
    pub fn spawn(store: RedbStore) -> Self {
        let (sender, receiver) = watch::channel(Snapshot::default());
        tokio::spawn(async move {
            tokio::select! {
                () = keep(store, &sender) => {}
                () = sender.closed() => {}
            }
        });
        Self { receiver }
    }

    /// A catalog that never changes: for tests of consumers.
    pub fn fixed(snapshot: Snapshot) -> (Self, watch::Sender<Snapshot>) {
        let (sender, receiver) = watch::channel(snapshot);
        (Self { receiver }, sender)
    }

    /// The current snapshot (held briefly: writers wait while it is borrowed).
    pub fn current(&self) -> watch::Ref<'_, Snapshot> {
        self.receiver.borrow()
    }

    /// A receiver that wakes on every change.
    pub fn subscribe(&self) -> watch::Receiver<Snapshot> {
        self.receiver.clone()
    }
}

async fn keep(store: RedbStore, sender: &watch::Sender<Snapshot>) {
    let mut failures = 0u32;
    loop {
        match follow(&store, sender).await {
            Ok(()) => return,
            Err(err) => {
                failures = failures.saturating_add(1);
                tracing::debug!(?err, "service catalog watch interrupted, relisting");
                let delay = Duration::from_millis(100) * failures.min(50);
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Lists, publishes, and applies watch events until the watch fails (`Err`) or the store
/// closes (`Ok`).
async fn follow(store: &RedbStore, sender: &watch::Sender<Snapshot>) -> berth_store::Result<()> {
    let services = store.list_as::<Service>(None, None).await?;
    let endpoints = store.list_as::<Endpoints>(None, None).await?;
    let pods = store.list_as::<Pod>(None, None).await?;
    let start = services
        .resource_version
        .min(endpoints.resource_version)
        .min(pods.resource_version);
    let mut snapshot = Snapshot {
        synced: true,
        ..Snapshot::default()
    };
    for service in services.items {
        snapshot
            .services
            .insert(name_of(&service.metadata), service);
    }
    for endpoints in endpoints.items {
        snapshot
            .endpoints
            .insert(name_of(&endpoints.metadata), endpoints);
    }
    for pod in pods.items {
        if let Some(host_ports) = HostPortPod::of(&pod) {
            snapshot
                .host_ports
                .insert(name_of(&pod.metadata), host_ports);
        }
    }
    sender.send_replace(snapshot);
    let mut watch = store
        .watch(WatchFilter::all(), WatchStart::After(start))
        .await?;
    while let Some(event) = watch.next().await {
        let event = event?;
        let name = name_of(event.object.metadata());
        let version = version_of(&event.object);
        let deleted = event.event_type == EventType::Deleted;
        sender.send_if_modified(|snapshot| match event.object {
            Object::Service(service) => {
                apply(&mut snapshot.services, name, service, version, deleted)
            }
            Object::Endpoints(endpoints) => {
                apply(&mut snapshot.endpoints, name, endpoints, version, deleted)
            }
            Object::Pod(pod) => match HostPortPod::of(&pod) {
                Some(host_ports) => {
                    apply(&mut snapshot.host_ports, name, host_ports, version, deleted)
                }
                // Only a pod the map holds can matter (host ports cannot be removed from a pod's
                // spec, so this is a deletion replayed or raced).
                None => snapshot.host_ports.remove(&name).is_some(),
            },
            _ => false,
        });
    }
    Ok(())
}

/// Applies one event to a map; false when it is older than what the map holds.
fn apply<T: HasVersion>(
    map: &mut BTreeMap<ServiceName, T>,
    name: ServiceName,
    object: T,
    version: u64,
    deleted: bool,
) -> bool {
    let known = map.get(&name).map(HasVersion::version);
    if known.is_some_and(|known| known > version || (known == version && !deleted)) {
        return false;
    }
    if deleted {
        map.remove(&name).is_some()
    } else {
        map.insert(name, object);
        true
    }
}

trait HasVersion {
    fn version(&self) -> u64;
}

impl HasVersion for Service {
    fn version(&self) -> u64 {
        parse_version(self.metadata.resource_version.as_deref())
    }
}

impl HasVersion for HostPortPod {
    fn version(&self) -> u64 {
        self.resource_version
    }
}

impl HasVersion for Endpoints {
    fn version(&self) -> u64 {
        parse_version(self.metadata.resource_version.as_deref())
    }
}

fn parse_version(version: Option<&str>) -> u64 {
    version.and_then(|v| v.parse().ok()).unwrap_or(0)
}
