//! berth's service data plane: cluster IPs translated in the kernel (nf_tables DNAT, through
//! [`KernelServices`]) or else proxied in userspace, node ports proxied, and the cluster DNS, all
//! fed from one watch of Services and Endpoints (and of the pods that publish host ports).
//!
//! ```text
//!  store ──watch──▶ Catalog ──▶ Proxy: clusterIP:port, node:nodePort ──▶ ready endpoints
//!                          └──▶ Dns:   NAME.NAMESPACE.svc.cluster.local ──▶ A records
//! ```
//!
//! - [`catalog`]: the current Services and Endpoints, kept from a store watch and published to
//!   every consumer on each change.
//! - [`proxy`]: [`Proxy`] hands cluster IPs and node ports to the [`KernelServices`] data path
//!   when it has one that works, listens on the rest and copies each accepted connection to a
//!   ready endpoint chosen round-robin; its [`Drain`] tells a terminating pod when no new
//!   connection goes to it any more.
//! - [`addresses`]: how cluster IPs become local addresses: the `berth-svc` dummy link
//!   ([`DummyLink`], rtnetlink), or nothing ([`NoAddresses`], for loopback addresses in tests).
//! - [`hostport`]: pods' `hostPort`s published on the node by the same proxy loop, clashes
//!   reported as `FailedHostPort` events on the pod.
//! - [`dns`]: [`Dns`], A records for Services, NXDOMAIN inside `cluster.local`, everything else
//!   forwarded to the host's resolvers.
//!
//! Why the kernel for Service addresses: measured side by side (`bench/service.sh`, 16
//! concurrent short HTTP connections, 2 cores), the userspace copy reached 0.41–0.65× a direct
//! connection's throughput, the DNAT path 0.95–0.99×. DNAT cannot retry another endpoint the
//! way the proxy did when one refuses, so a pod being deleted first waits for [`Drain`] (the
//! agent does that before its preStop hooks and SIGTERM). The proxy stays for host ports, for
//! node ports bound to one address, and as the fallback when the kernel refuses the nf_tables
//! table.
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
pub use proxy::{ClusterRule, Drain, KernelServices, Proxy, ProxyConfig};
