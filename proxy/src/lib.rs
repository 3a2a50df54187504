//! berth's service data plane: a userspace proxy for cluster IPs and node ports, and the cluster
//! DNS, both fed from one watch of Services and Endpoints (and of the pods that publish host
//! ports).
//!
//! ```text
//!  store ──watch──▶ Catalog ──▶ Proxy: clusterIP:port, node:nodePort ──▶ ready endpoints
//!                          └──▶ Dns:   NAME.NAMESPACE.svc.cluster.local ──▶ A records
//! ```
//!
//! - [`catalog`]: the current Services and Endpoints, kept from a store watch and published to
//!   every consumer on each change.
//! - [`proxy`]: [`Proxy`] listens on each Service port (cluster IP and node port) and copies
//!   each accepted connection to a ready endpoint chosen round-robin.
//! - [`addresses`]: how cluster IPs become local addresses: the `berth-svc` dummy link
//!   ([`DummyLink`], rtnetlink), or nothing ([`NoAddresses`], for loopback addresses in tests).
//! - [`hostport`]: pods' `hostPort`s published on the node by the same proxy loop, clashes
//!   reported as `FailedHostPort` events on the pod.
//! - [`dns`]: [`Dns`], A records for Services, NXDOMAIN inside `cluster.local`, everything else
//!   forwarded to the host's resolvers.
//!
//! Why a userspace proxy rather than iptables/IPVS rules: berth runs without the kernel's
//! netfilter tooling, the proxy sees each connection (connection-refused retries on the next
//! endpoint, which DNAT cannot do), and its cost on one node is a copy per byte that the
//! benchmark in `benches/throughput.rs` measures.
//!
//! Wiring in the daemon:
//!
//! ```no_run
//! # async fn daemon(store: berth_store::RedbStore) -> std::io::Result<()> {
//! use std::sync::Arc;
//! use berth_proxy::{Catalog, Dns, DnsConfig, DummyLink, Proxy, ProxyConfig};
//!
//! let catalog = Catalog::spawn(store.clone());
//! let proxy = Proxy::new(ProxyConfig::new(Arc::new(DummyLink::default())));
//! let dns = Dns::bind(DnsConfig::from_resolv_conf("10.73.0.1:53".parse().unwrap()), catalog.clone()).await?;
//! let (stop, stopped) = tokio::sync::watch::channel(false);
//! let shutdown = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
//!     let _ = stopped.wait_for(|stop| *stop).await;
//! };
//! tokio::spawn(proxy.run(store, catalog, shutdown(stopped.clone())));
//! tokio::spawn(dns.run(shutdown(stopped)));
//! // ... on shutdown:
//! let _ = stop.send(true);
//! # Ok(()) }
//! ```

pub mod addresses;
pub mod catalog;
pub mod dns;
pub mod hostport;
pub mod proxy;

pub use addresses::{AddressError, ClusterAddresses, DummyLink, NoAddresses};
pub use catalog::{Catalog, HostPort, HostPortPod, Snapshot};
pub use dns::{Dns, DnsConfig};
pub use proxy::{Proxy, ProxyConfig};
