//! berth's Prometheus metrics, named as the tools people already have dashboards for name them.
//!
//! - [`StateMetrics`]: workload state as kube-state-metrics exposes it (`kube_deployment_*`,
//!   `kube_replicaset_*`, `kube_pod_*`), built from an in-memory mirror of the store that
//!   [`StateMetrics::run`] keeps with list and watch.
//! - [`ContainerMetrics`]: container resource usage as cAdvisor exposes it (`container_*`), read
//!   at scrape time through a [`ContainerStatsSource`]; [`LinuxContainerStats`] reads the
//!   runtime's cgroups.
//! - [`register_process_and_build_info`] and [`DaemonMetrics`]: berth's own (`process_*`,
//!   `berth_*`).
//!
//! The two mirroring collectors build their families fresh at every scrape (see `family.rs`), so
//! series of deleted objects and removed containers disappear at once. Label values are escaped
//! by the `prometheus` crate's text encoder.
//!
//! Wiring, in the daemon:
//! ```no_run
//! # async fn daemon(store: berth_store::RedbStore,
//! #     runtime: std::sync::Arc<berth_runtime::container::LinuxRuntime>) -> prometheus::Result<()> {
//! use berth_metrics::{ContainerMetrics, DaemonMetrics, LinuxContainerStats, StateMetrics};
//!
//! let registry = prometheus::Registry::new();
//! berth_metrics::register_process_and_build_info(&registry)?;
//! let daemon = DaemonMetrics::register(&registry)?; // handed to controller, agent, store
//! registry.register(Box::new(ContainerMetrics::new(LinuxContainerStats::new(runtime))?))?;
//! let state = StateMetrics::new()?;
//! registry.register(Box::new(state.clone()))?;
//! tokio::spawn(state.run(store, std::future::pending()));
//! // GET /metrics: prometheus::TextEncoder::new().encode_to_string(&registry.gather())
//! # Ok(()) }
//! ```

pub mod container;
pub mod daemon;
mod family;
pub mod linux;
pub mod state;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use container::{
    ContainerMetrics, ContainerSample, ContainerStatsSource, Pressure, PressureTotals,
};
pub use daemon::{DaemonMetrics, VERSION, register_process_and_build_info};
pub use linux::LinuxContainerStats;
pub use state::StateMetrics;
