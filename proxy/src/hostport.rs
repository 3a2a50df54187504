//! Host ports: a container's `ports[].hostPort` published on the node, as Kubernetes' hostport
//! CNI plugin or `podman run -p` do, by the same userspace copying as Service ports.
//!
//! - **What is published.** For every pod of the [`Catalog`](crate::Catalog) that is `Running`
//!   with an IP ([`HostPortPod`]), each TCP `hostPort` is a listener on `hostIP:hostPort`
//!   (`0.0.0.0` without `hostIP`) whose one backend is `podIP:containerPort`. The listener is
//!   closed when the pod stops running, changes IP or is deleted; established connections go on.
//!   UDP and SCTP host ports are not published (as UDP Service ports are not proxied).
//! - **Clashes** are Warning events `FailedHostPort` on the pod that does not get the port,
//!   naming the address and the holder, once per pod and address:
//!   - two pods asking for the same address: the pod that already holds it keeps it, otherwise
//!     the older pod (creation time, then namespace/name) gets it;
//!   - the address cannot be bound (another process, a Service listener, or a wildcard/specific
//!     address overlap): the event names our own listener on that port when there is one, the
//!     kernel's error otherwise. Binding is tried again on the next change and every 10 s, as
//!     for Service ports.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::SocketAddr,
    sync::Arc,
    time::Duration,
};

use berth_api::{
    Resource,
    core_v1::{EventType, ObjectReference, Pod, Protocol},
};
use berth_controller::{Clock, service as services};
use berth_store::RedbStore;
use tokio::{net::TcpListener, task::JoinHandle};

use crate::{
    catalog::{HostPortPod, ServiceName, Snapshot},
    proxy::{Backends, accept},
};

const COMPONENT: &str = "berth-proxy";

/// The event reason of a host port that a pod did not get.
pub const FAILED_HOST_PORT: &str = "FailedHostPort";

/// Who asks for a host address: the pod, its uid, the container and the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Claim {
    pod: ServiceName,
    uid: Option<String>,
    container: String,
    backend: SocketAddr,
}

impl Claim {
    fn describe(&self) -> String {
        format!(
            "pod {}/{} (container {:?}, {})",
            self.pod.0, self.pod.1, self.container, self.backend
        )
    }

    fn reference(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some(Pod::API_VERSION.to_owned()),
            kind: Some(Pod::KIND.to_owned()),
            namespace: Some(self.pod.0.clone()),
            name: Some(self.pod.1.clone()),
            uid: self.uid.clone(),
            ..ObjectReference::default()
        }
    }
}

struct HostListener {
    claim: Claim,
    task: JoinHandle<()>,
}

/// The host-port listeners of the proxy.
#[derive(Default)]
pub(crate) struct HostPorts {
    listeners: HashMap<SocketAddr, HostListener>,
    /// (address, pod uid) pairs whose clash was reported; kept while the clash lasts.
    reported: HashSet<(SocketAddr, Option<String>)>,
    /// Addresses whose bind failed: tried again on a timer.
    failed: HashSet<SocketAddr>,
}

impl HostPorts {
    /// Whether a bind failed and should be tried again without a change.
    pub(crate) fn needs_retry(&self) -> bool {
        !self.failed.is_empty()
    }

    /// Brings the listeners in line with the pods of `snapshot`. `service_listeners` are the
    /// addresses the Service proxy listens on, to name the holder of a port that cannot be bound.
    pub(crate) async fn sync(
        &mut self,
        snapshot: &Snapshot,
        service_listeners: &BTreeMap<SocketAddr, String>,
        store: &RedbStore,
        clock: &Clock,
        connect_timeout: Duration,
    ) {
        let (winners, losers) = self.claims(&snapshot.host_ports);

        let closed: Vec<SocketAddr> = self
            .listeners
            .iter()
            .filter(|(address, listener)| winners.get(*address) != Some(&listener.claim))
            .map(|(address, _)| *address)
            .collect();
        for address in closed {
            if let Some(listener) = self.listeners.remove(&address) {
                listener.task.abort();
                let _ = listener.task.await;
                tracing::debug!(%address, pod = %listener.claim.pod.1, "closed host port");
            }
        }
        self.failed.retain(|address| winners.contains_key(address));

        let mut still_reported = HashSet::new();
        for (address, claim, holder) in &losers {
            let key = (*address, claim.uid.clone());
            if !self.reported.contains(&key) {
                let message = format!(
                    "hostPort {address} (TCP) of container {:?} is not published: held by {}",
                    claim.container,
                    holder.describe()
                );
                report(store, clock, claim, &message).await;
            }
            still_reported.insert(key);
        }

        for (address, claim) in &winners {
            if self.listeners.contains_key(address) {
                continue;
            }
            match TcpListener::bind(address).await {
                Ok(listener) => {
                    tracing::debug!(%address, pod = %claim.pod.1, backend = %claim.backend, "publishing host port");
                    self.failed.remove(address);
                    let backends = Arc::new(Backends::default());
                    backends.replace(vec![claim.backend]);
                    let task = tokio::spawn(accept(listener, backends, connect_timeout));
                    self.listeners.insert(
                        *address,
                        HostListener {
                            claim: claim.clone(),
                            task,
                        },
                    );
                }
                Err(err) => {
                    self.failed.insert(*address);
                    let key = (*address, claim.uid.clone());
                    if !self.reported.contains(&key) {
                        let holder = self.holder_of(*address, service_listeners);
                        let message = format!(
                            "hostPort {address} (TCP) of container {:?} is not published: {}: {err}",
                            claim.container,
                            holder
                                .as_deref()
                                .unwrap_or("the port is in use on the node"),
                        );
                        tracing::warn!(%address, pod = %claim.pod.1, error = %err, "cannot publish a host port");
                        report(store, clock, claim, &message).await;
                    }
                    still_reported.insert(key);
                }
            }
        }
        self.reported = still_reported;
    }

    /// Who of ours listens on the port of `address` (same port, overlapping address).
    fn holder_of(
        &self,
        address: SocketAddr,
        service_listeners: &BTreeMap<SocketAddr, String>,
    ) -> Option<String> {
        let overlaps = |other: &SocketAddr| {
            other.port() == address.port()
                && (other.ip() == address.ip()
                    || other.ip().is_unspecified()
                    || address.ip().is_unspecified())
        };
        self.listeners
            .iter()
            .find(|(other, _)| overlaps(other))
            .map(|(other, listener)| format!("held by {} on {other}", listener.claim.describe()))
            .or_else(|| {
                service_listeners
                    .iter()
                    .find(|(other, _)| overlaps(other))
                    .map(|(other, service)| format!("held by Service {service} on {other}"))
            })
    }

    /// For every published address the claim that gets it, and the claims that lose to another
    /// (with the winner).
    #[allow(clippy::type_complexity)]
    fn claims(
        &self,
        pods: &BTreeMap<ServiceName, HostPortPod>,
    ) -> (BTreeMap<SocketAddr, Claim>, Vec<(SocketAddr, Claim, Claim)>) {
        let mut ordered: Vec<(&ServiceName, &HostPortPod)> =
            pods.iter().filter(|(_, pod)| pod.ip.is_some()).collect();
        ordered.sort_by(|(a_name, a), (b_name, b)| {
            (a.created.is_none(), a.created, a_name).cmp(&(b.created.is_none(), b.created, b_name))
        });
        let mut wanted: BTreeMap<SocketAddr, Vec<Claim>> = BTreeMap::new();
        for (name, pod) in ordered {
            let Some(ip) = pod.ip else { continue };
            for port in &pod.ports {
                if port.protocol != Protocol::Tcp {
                    continue;
                }
                let claim = Claim {
                    pod: name.clone(),
                    uid: pod.uid.clone(),
                    container: port.container.clone(),
                    backend: SocketAddr::new(ip, port.container_port),
                };
                let claims = wanted
                    .entry(SocketAddr::new(port.host_ip, port.host_port))
                    .or_default();
                // One pod asking twice for an address (two containers) is one claim.
                if !claims
                    .iter()
                    .any(|c| c.pod == claim.pod && c.uid == claim.uid)
                {
                    claims.push(claim);
                }
            }
        }
        let mut winners = BTreeMap::new();
        let mut losers = Vec::new();
        for (address, mut claims) in wanted {
            let holder = self
                .listeners
                .get(&address)
                .and_then(|held| claims.iter().position(|c| *c == held.claim))
                .unwrap_or(0);
            let winner = claims.remove(holder);
            for claim in claims {
                losers.push((address, claim, winner.clone()));
            }
            winners.insert(address, winner);
        }
        (winners, losers)
    }

    /// Closes every listener.
    pub(crate) async fn close(&mut self) {
        for (_, listener) in self.listeners.drain() {
            listener.task.abort();
            let _ = listener.task.await;
        }
        self.reported.clear();
        self.failed.clear();
    }
}

impl Drop for HostPorts {
    fn drop(&mut self) {
        for listener in self.listeners.values() {
            listener.task.abort();
        }
    }
}

async fn report(store: &RedbStore, clock: &Clock, claim: &Claim, message: &str) {
    services::record_event(
        store,
        clock,
        claim.reference(),
        EventType::Warning,
        FAILED_HOST_PORT,
        message,
        COMPONENT,
    )
    .await;
}
