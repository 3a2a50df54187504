//! The userspace service proxy, as kube-proxy's old `userspace` mode: one listener per Service
//! port, and each accepted connection copied to one of the Service's ready endpoints. With a
//! [`KernelServices`] data path that works, cluster IPs and node ports listening on every
//! address (unless `node_ports_in_kernel` is off) are left to it, their rules replaced as a
//! whole on every change. [`Drain`] tells when an address no longer gets new connections
//! either way.
//!
//! - **Listeners.** For every TCP port of a `ClusterIP`/`NodePort` Service that holds its
//!   cluster IP (see `berth_controller::service::holds_cluster_ip`), a listener on
//!   `clusterIP:port` (the address made local through [`ClusterAddresses`]); for `NodePort`
//!   Services also one on `node_address:nodePort` (`0.0.0.0` by default). The set of listeners
//!   is recomputed from the [`Catalog`] on every change: new ones are bound, gone ones closed
//!   (their established connections continue), and cluster IPs no listener uses are removed.
//!   A port that cannot be bound is a Warning event (`PortBindFailed`) on the Service, once per
//!   address; binding is tried again on the next change and every 10 s.
//! - **Balancing.** Each Service port has one list of backends (the ready addresses of its
//!   Endpoints with the endpoint port of the same name), shared by its listeners and replaced as
//!   a whole when the Endpoints change: new connections use the new list, established ones keep
//!   theirs. A connection goes to the next backend in round-robin order; when a backend refuses
//!   (or does not answer within `connect_timeout`) the next one is tried, each at most once.
//!   Without any backend the client connection is closed.
//! - **Copying** is `tokio::io::copy_bidirectional`; half-closes are passed on.
//!
//! UDP Service ports are not proxied yet.
//!
//! The same loop publishes the pods' host ports ([`crate::hostport`]).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    future::Future,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{
        Arc, RwLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use berth_api::core_v1::{EventType, Protocol, ServiceType};
use berth_controller::{Clock, service as services};
use berth_store::RedbStore;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};

use crate::{
    addresses::ClusterAddresses,
    catalog::{Catalog, ServiceName, Snapshot},
    hostport::HostPorts,
};

const COMPONENT: &str = "berth-proxy";

/// How often addresses that could not be bound are tried again without a change.
const BIND_RETRY: Duration = Duration::from_secs(10);

/// One TCP port of a Service on its cluster IP and its ready endpoints: what a kernel data path
/// translates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRule {
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    /// The node port of a `NodePort` Service, on every local address.
    pub node_port: Option<u16>,
    pub endpoints: Vec<std::net::SocketAddrV4>,
}

/// A kernel data path for cluster IPs (nf_tables DNAT in the daemon): `sync` replaces every
/// rule at once; an empty list removes them all. While it works, cluster IPs get no userspace
/// listener; when it fails, the proxy falls back to listening on them.
pub trait KernelServices: Send + Sync {
    fn sync(&self, rules: &[ClusterRule]) -> std::io::Result<()>;
}

/// Where the proxy listens and how it makes cluster IPs local.
#[derive(Clone)]
pub struct ProxyConfig {
    /// Address of node-port listeners: `0.0.0.0` (every address of the node) by default.
    pub node_address: IpAddr,
    pub addresses: Arc<dyn ClusterAddresses>,
    /// How long to wait for a backend to accept before trying the next.
    pub connect_timeout: Duration,
    /// Translate cluster IPs in the kernel instead of proxying them.
    pub kernel: Option<Arc<dyn KernelServices>>,
    /// Node ports in the kernel too (when they listen on every address); on by default. Off,
    /// they are proxied in userspace, which retries the next endpoint when one refuses.
    pub node_ports_in_kernel: bool,
}

impl ProxyConfig {
    pub fn new(addresses: Arc<dyn ClusterAddresses>) -> Self {
        Self {
            node_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            addresses,
            connect_timeout: Duration::from_secs(3),
            kernel: None,
            node_ports_in_kernel: true,
        }
    }

    pub fn with_kernel_data_path(mut self, kernel: Arc<dyn KernelServices>) -> Self {
        self.kernel = Some(kernel);
        self
    }

    pub fn with_node_address(mut self, node_address: IpAddr) -> Self {
        self.node_address = node_address;
        self
    }
}

/// A Service port: (namespace, name) and the port's name.
type PortKey = (ServiceName, Option<String>);

/// The backends of one Service port and its round-robin position.
#[derive(Debug, Default)]
pub(crate) struct Backends {
    current: RwLock<Arc<Vec<SocketAddr>>>,
    next: AtomicUsize,
}

impl Backends {
    fn snapshot(&self) -> Arc<Vec<SocketAddr>> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn replace(&self, backends: Vec<SocketAddr>) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if **current != backends {
            *current = Arc::new(backends);
        }
    }
}

struct Listener {
    port: PortKey,
    task: JoinHandle<()>,
}

/// What a listener should exist for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wanted {
    port: PortKey,
    cluster_ip: bool,
}

/// The proxy; see the module documentation.
pub struct Proxy {
    config: ProxyConfig,
    listeners: HashMap<SocketAddr, Listener>,
    backends: HashMap<PortKey, Arc<Backends>>,
    /// Cluster IPs made local, to remove when unused.
    local_ips: HashSet<IpAddr>,
    /// Addresses whose bind failed and was reported, with the port they were for.
    reported: HashMap<SocketAddr, PortKey>,
    host_ports: HostPorts,
    /// The rules the kernel data path holds, when its last sync worked.
    kernel_rules: Option<Vec<ClusterRule>>,
    kernel_failure_logged: bool,
    /// The endpoint addresses new connections may go to now, for [`Drain`].
    in_effect: watch::Sender<Arc<HashSet<IpAddr>>>,
}

/// Tells when the proxy no longer sends new connections to an address: what a terminating
/// pod waits for before its containers are stopped (`berth_agent::drain`).
#[derive(Clone)]
pub struct Drain {
    in_effect: watch::Receiver<Arc<HashSet<IpAddr>>>,
}

impl Drain {
    /// Resolves once no Service port of the proxy (listener or kernel rule) has `ip` among its
    /// backends: at once when it has none, and when the proxy has stopped.
    pub async fn drained(&self, ip: IpAddr) {
        let mut in_effect = self.in_effect.clone();
        let _ = in_effect.wait_for(|ips| !ips.contains(&ip)).await;
    }
}

impl Proxy {
    pub fn new(config: ProxyConfig) -> Self {
        Self {
            config,
            listeners: HashMap::new(),
            backends: HashMap::new(),
            local_ips: HashSet::new(),
            reported: HashMap::new(),
            host_ports: HostPorts::default(),
            kernel_rules: None,
            kernel_failure_logged: false,
            in_effect: watch::Sender::new(Arc::default()),
        }
    }

    /// A handle that tells when an address no longer receives new connections.
    pub fn drain(&self) -> Drain {
        Drain {
            in_effect: self.in_effect.subscribe(),
        }
    }

    /// Follows `catalog` until `shutdown` completes, then closes every listener and removes the
    /// cluster IPs it added. `store` receives the Warning events.
    pub async fn run(
        mut self,
        store: RedbStore,
        catalog: Catalog,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        let clock = Clock::new();
        let mut changes = catalog.subscribe();
        tokio::pin!(shutdown);
        loop {
            let snapshot = changes.borrow_and_update().clone();
            if snapshot.synced {
                self.sync(&snapshot, &store, &clock).await;
            }
            let retry = !self.reported.is_empty() || self.host_ports.needs_retry();
            tokio::select! {
                () = &mut shutdown => break,
                changed = changes.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                // Ports that could not be bound are tried again now and then.
                () = tokio::time::sleep(BIND_RETRY), if retry => {}
            }
        }
        self.sync(&Snapshot::default(), &store, &clock).await;
        self.host_ports.close().await;
    }

    /// Brings listeners, backends and local addresses in line with `snapshot`.
    async fn sync(&mut self, snapshot: &Snapshot, store: &RedbStore, clock: &Clock) {
        let wanted = self.wanted(snapshot);

        // Backends of every wanted port.
        let ports: HashSet<&PortKey> = wanted.values().map(|w| &w.port).collect();
        self.backends.retain(|port, _| ports.contains(port));
        for port in ports {
            let backends = backends_of(snapshot, port);
            self.backends
                .entry(port.clone())
                .or_default()
                .replace(backends);
        }

        // Cluster IPs (and node ports) in the kernel, if it can; else they get listeners below.
        let in_kernel = self.sync_kernel(&wanted).await;
        // Listeners use the new backends from the next connection on, the kernel from its sync.
        let in_effect: HashSet<IpAddr> = self
            .backends
            .values()
            .flat_map(|backends| {
                backends
                    .snapshot()
                    .iter()
                    .map(SocketAddr::ip)
                    .collect::<Vec<_>>()
            })
            .collect();
        self.in_effect.send_if_modified(|current| {
            let changed = **current != in_effect;
            if changed {
                *current = Arc::new(in_effect);
            }
            changed
        });

        // Close what is no longer wanted (established connections are tasks of their own).
        let closed: Vec<SocketAddr> = self
            .listeners
            .iter()
            .filter(|(address, listener)| {
                wanted
                    .get(*address)
                    .is_none_or(|w| w.port != listener.port || in_kernel.contains(*address))
            })
            .map(|(address, _)| *address)
            .collect();
        for address in closed {
            if let Some(listener) = self.listeners.remove(&address) {
                listener.task.abort();
                // Wait until the socket is closed, so that it can be bound again at once.
                let _ = listener.task.await;
                tracing::debug!(%address, "closed service listener");
            }
        }
        self.reported
            .retain(|address, port| wanted.get(address).is_some_and(|w| &w.port == port));

        // Cluster IPs first, then the listeners on them.
        let wanted_ips: HashSet<IpAddr> = wanted
            .iter()
            .filter(|(_, w)| w.cluster_ip)
            .map(|(address, _)| address.ip())
            .collect();
        for ip in &wanted_ips {
            if self.local_ips.insert(*ip)
                && let Err(err) = self.config.addresses.add(*ip).await
            {
                tracing::warn!(%ip, error = %err, "cannot make the cluster IP local");
            }
        }
        for (address, want) in &wanted {
            if self.listeners.contains_key(address) || in_kernel.contains(address) {
                continue;
            }
            let Some(backends) = self.backends.get(&want.port).cloned() else {
                continue;
            };
            match TcpListener::bind(address).await {
                Ok(listener) => {
                    tracing::debug!(%address, service = %want.port.0.1, "listening");
                    self.reported.remove(address);
                    let timeout = self.config.connect_timeout;
                    let task = tokio::spawn(accept(listener, backends, timeout));
                    self.listeners.insert(
                        *address,
                        Listener {
                            port: want.port.clone(),
                            task,
                        },
                    );
                }
                Err(err) => {
                    if self.reported.insert(*address, want.port.clone()).is_none() {
                        report_bind_failure(store, clock, snapshot, &want.port, *address, &err)
                            .await;
                    }
                }
            }
        }
        let unused: Vec<IpAddr> = self
            .local_ips
            .iter()
            .filter(|ip| !wanted_ips.contains(ip))
            .copied()
            .collect();
        for ip in unused {
            self.local_ips.remove(&ip);
            if let Err(err) = self.config.addresses.remove(ip).await {
                tracing::warn!(%ip, error = %err, "cannot remove the cluster IP");
            }
        }

        let service_listeners: BTreeMap<SocketAddr, String> = self
            .listeners
            .iter()
            .map(|(address, listener)| {
                let (namespace, name) = &listener.port.0;
                (*address, format!("{namespace}/{name}"))
            })
            .collect();
        self.host_ports
            .sync(
                snapshot,
                &service_listeners,
                store,
                clock,
                self.config.connect_timeout,
            )
            .await;
    }

    /// Hands the cluster IPs of `wanted` (with their node ports, when node ports listen on every
    /// address) and their backends to the kernel data path; the addresses it now carries.
    async fn sync_kernel(&mut self, wanted: &BTreeMap<SocketAddr, Wanted>) -> HashSet<SocketAddr> {
        let Some(kernel) = self.config.kernel.clone() else {
            return HashSet::new();
        };
        let all_addresses =
            self.config.node_ports_in_kernel && self.config.node_address.is_unspecified();
        let mut carried = HashSet::new();
        let mut rules: Vec<ClusterRule> = Vec::new();
        for (address, want) in wanted.iter().filter(|(_, want)| want.cluster_ip) {
            let SocketAddr::V4(v4) = address else {
                continue;
            };
            let Some(backends) = self.backends.get(&want.port).map(|b| b.snapshot()) else {
                continue;
            };
            let node_port = wanted
                .iter()
                .find(|(a, w)| all_addresses && !w.cluster_ip && w.port == want.port && a.is_ipv4())
                .map(|(a, _)| *a);
            carried.insert(*address);
            carried.extend(node_port);
            rules.push(ClusterRule {
                cluster_ip: *v4.ip(),
                port: v4.port(),
                node_port: node_port.map(|a| a.port()),
                endpoints: backends
                    .iter()
                    .filter_map(|b| match b {
                        SocketAddr::V4(b) => Some(*b),
                        SocketAddr::V6(_) => None,
                    })
                    .collect(),
            });
        }
        rules.sort_by_key(|r| (r.cluster_ip, r.port));
        if self.kernel_rules.as_ref() == Some(&rules) {
            return carried;
        }
        let applied = rules.clone();
        let result = tokio::task::spawn_blocking(move || kernel.sync(&applied)).await;
        match result {
            Ok(Ok(())) => {
                if self.kernel_rules.is_none() {
                    tracing::info!("Service addresses translated in the kernel (nf_tables DNAT)");
                }
                tracing::debug!(rules = rules.len(), "kernel service rules replaced");
                self.kernel_rules = Some(rules);
                carried
            }
            Ok(Err(err)) => {
                if self.kernel_rules.is_some() || !self.reported_kernel_failure() {
                    tracing::warn!(error = %err, "no kernel data path for Services; proxying them");
                }
                self.kernel_rules = None;
                HashSet::new()
            }
            Err(err) => {
                tracing::warn!(error = %err, "kernel service sync did not complete");
                self.kernel_rules = None;
                HashSet::new()
            }
        }
    }

    /// Whether a failure of the kernel data path was logged already (once per proxy is enough).
    fn reported_kernel_failure(&mut self) -> bool {
        std::mem::replace(&mut self.kernel_failure_logged, true)
    }

    /// The listeners `snapshot` asks for, by address.
    fn wanted(&self, snapshot: &Snapshot) -> BTreeMap<SocketAddr, Wanted> {
        let all = snapshot.all_services();
        let mut wanted = BTreeMap::new();
        for (name, service) in &snapshot.services {
            if service.metadata.deletion_timestamp.is_some() || services::is_headless(service) {
                continue;
            }
            let cluster_ip = services::holds_cluster_ip(service, &all)
                .then(|| services::cluster_ip(service))
                .flatten()
                .and_then(|ip| ip.parse::<IpAddr>().ok());
            let node_port = service.spec.type_ == Some(ServiceType::NodePort);
            for port in &service.spec.ports {
                if port.protocol.unwrap_or(Protocol::Tcp) != Protocol::Tcp {
                    continue;
                }
                let key: PortKey = (name.clone(), port.name.clone());
                if let (Some(ip), Ok(number)) = (cluster_ip, u16::try_from(port.port)) {
                    wanted.insert(
                        SocketAddr::new(ip, number),
                        Wanted {
                            port: key.clone(),
                            cluster_ip: true,
                        },
                    );
                }
                if node_port
                    && let Some(number) = port.node_port.and_then(|p| u16::try_from(p).ok())
                {
                    wanted
                        .entry(SocketAddr::new(self.config.node_address, number))
                        .or_insert(Wanted {
                            port: key,
                            cluster_ip: false,
                        });
                }
            }
        }
        wanted
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for listener in self.listeners.values() {
            listener.task.abort();
        }
    }
}

/// The ready endpoints of a Service port: addresses of subsets whose port of that name is TCP.
fn backends_of(snapshot: &Snapshot, (service, port_name): &PortKey) -> Vec<SocketAddr> {
    let mut backends: Vec<SocketAddr> = snapshot
        .endpoints
        .get(service)
        .into_iter()
        .flat_map(|e| &e.subsets)
        .flat_map(|subset| {
            let port = subset.ports.iter().find(|p| {
                &p.name == port_name && p.protocol.unwrap_or(Protocol::Tcp) == Protocol::Tcp
            });
            let port = port.and_then(|p| u16::try_from(p.port).ok());
            subset.addresses.iter().filter_map(move |address| {
                let ip = address.ip.parse::<IpAddr>().ok()?;
                Some(SocketAddr::new(ip, port?))
            })
        })
        .collect();
    backends.sort();
    backends.dedup();
    backends
}

async fn report_bind_failure(
    store: &RedbStore,
    clock: &Clock,
    snapshot: &Snapshot,
    port: &PortKey,
    address: SocketAddr,
    err: &std::io::Error,
) {
    tracing::warn!(%address, service = %port.0.1, error = %err, "cannot listen for a service");
    let Some(service) = snapshot.services.get(&port.0) else {
        return;
    };
    let message = format!(
        "cannot listen on {address} for port {} of Service {}/{}: {err}",
        port.1.as_deref().unwrap_or("(unnamed)"),
        port.0.0,
        port.0.1
    );
    services::record_event(
        store,
        clock,
        services::object_reference(service),
        EventType::Warning,
        "PortBindFailed",
        &message,
        COMPONENT,
    )
    .await;
}

pub(crate) async fn accept(
    listener: TcpListener,
    backends: Arc<Backends>,
    connect_timeout: Duration,
) {
    loop {
        match listener.accept().await {
            Ok((client, peer)) => {
                let backends = Arc::clone(&backends);
                tokio::spawn(async move {
                    if let Err(err) = relay(client, &backends, connect_timeout).await {
                        tracing::debug!(%peer, error = %err, "proxied connection ended");
                    }
                });
            }
            Err(err) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::warn!(error = %err, "accepting a service connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Connects to the next backend that accepts, then copies bytes both ways until both sides
/// are done.
async fn relay(
    mut client: TcpStream,
    backends: &Backends,
    connect_timeout: Duration,
) -> std::io::Result<()> {
    let list = backends.snapshot();
    if list.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotConnected,
            "the service has no ready endpoints",
        ));
    }
    let start = backends.next.fetch_add(1, Ordering::Relaxed);
    let mut last_error = None;
    for offset in 0..list.len() {
        let backend = list[(start + offset) % list.len()];
        match tokio::time::timeout(connect_timeout, TcpStream::connect(backend)).await {
            Ok(Ok(mut upstream)) => {
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
                return Ok(());
            }
            Ok(Err(err)) => {
                tracing::debug!(%backend, error = %err, "endpoint refused, trying the next");
                last_error = Some(err);
            }
            Err(_) => {
                tracing::debug!(%backend, "endpoint did not answer, trying the next");
                last_error = Some(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connecting to {backend} timed out"),
                ));
            }
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::ErrorKind::NotConnected.into()))
}
