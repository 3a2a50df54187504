//! berth's own metrics: the process, the build, and [`DaemonMetrics`], the instruments the
//! controller, agent and store observe.
//!
//! `DaemonMetrics` is created once by the daemon and handed (cloned: every field is a cheap
//! handle on the same series) to the parts that observe it. Which code observes what:
//!
//! | metric | labels | observed by |
//! |---|---|---|
//! | `berth_reconcile_duration_seconds` | `kind` (`Deployment`, `ReplicaSet`, `Pod`) | the controller's work loop, around each `reconcile(obj, ctx)` call |
//! | `berth_reconcile_errors_total` | `kind` | the controller's work loop, when `reconcile` returns an error (before `error_policy`) |
//! | `berth_workqueue_depth` | `kind` | the controller's work queue, set on every add and pop |
//! | `berth_probe_total` | `type` (`http`, `tcp`, `grpc`, `exec`), `probe` (`liveness`, `readiness`, `startup`), `result` (`successful`, `failed`, `unknown`, as the kubelet's `prober_probe_total`) | the agent's prober, once per probe run |
//! | `berth_probe_duration_seconds` | `type` | the agent's prober, around each probe run |
//! | `berth_container_start_duration_seconds` | | the pod worker, from `create` to a successful `start` of a container |
//! | `berth_store_write_duration_seconds` | `op` (`create`, `update`, `update_status`, `apply`, `delete`, `batch`) | the store, around each write transaction (commit and fsync included) |
//!
//! Label values are a small fixed set (kinds, probe types, results, operations): never object
//! names, which would make the number of series grow with the cluster's history.
//!
//! The controller and the agent do not know prometheus: each defines an observer trait
//! ([`berth_controller::Observer`], [`berth_agent::probe::Observer`]) that `DaemonMetrics`
//! implements here; the daemon hands it to `berth_controller::Context::with_observer` and
//! `berth_agent::probe::Prober::observed_by`.

use std::time::Duration;

use berth_agent::probe::{ProbeKind, RunResult};
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    exponential_buckets,
};

/// The version berth was built from, as `berth_build_info{version}` reports it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Registers the `process_*` metrics of this process (CPU seconds, resident and virtual memory,
/// open and max fds, start time, threads) and `berth_build_info{version="..."} 1`.
pub fn register_process_and_build_info(registry: &Registry) -> prometheus::Result<()> {
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    let build_info = IntGaugeVec::new(
        Opts::new(
            "berth_build_info",
            "A metric with a constant '1' value labeled by the version from which berth was built.",
        ),
        &["version"],
    )?;
    build_info.with_label_values(&[VERSION]).set(1);
    registry.register(Box::new(build_info))
}

/// Instruments for the controller, agent and store; see the module documentation for which code
/// observes each. Cloning gives handles on the same series.
#[derive(Debug, Clone)]
pub struct DaemonMetrics {
    /// `berth_reconcile_duration_seconds{kind}`.
    pub reconcile_duration_seconds: HistogramVec,
    /// `berth_reconcile_errors_total{kind}`.
    pub reconcile_errors_total: IntCounterVec,
    /// `berth_workqueue_depth{kind}`.
    pub workqueue_depth: IntGaugeVec,
    /// `berth_probe_total{type,probe,result}`.
    pub probe_total: IntCounterVec,
    /// `berth_probe_duration_seconds{type}`.
    pub probe_duration_seconds: HistogramVec,
    /// `berth_container_start_duration_seconds`.
    pub container_start_duration_seconds: Histogram,
    /// `berth_store_write_duration_seconds{op}`.
    pub store_write_duration_seconds: HistogramVec,
}

impl DaemonMetrics {
    /// Creates the instruments and registers them in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self {
            reconcile_duration_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "berth_reconcile_duration_seconds",
                    "Time one reconcile of an object took, by kind.",
                ),
                &["kind"],
            )?,
            reconcile_errors_total: IntCounterVec::new(
                Opts::new(
                    "berth_reconcile_errors_total",
                    "Reconciles that returned an error, by kind.",
                ),
                &["kind"],
            )?,
            workqueue_depth: IntGaugeVec::new(
                Opts::new(
                    "berth_workqueue_depth",
                    "Objects waiting in the controller's work queue, by kind.",
                ),
                &["kind"],
            )?,
            probe_total: IntCounterVec::new(
                Opts::new(
                    "berth_probe_total",
                    "Container probes run, by handler type, probe and result.",
                ),
                &["type", "probe", "result"],
            )?,
            probe_duration_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "berth_probe_duration_seconds",
                    "Time one container probe took, by handler type.",
                ),
                &["type"],
            )?,
            // 10ms to ~20s: image layers are already unpacked, but a cold overlay mount and
            // namespace setup take tens of milliseconds, a slow hook seconds.
            container_start_duration_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "berth_container_start_duration_seconds",
                    "Time from creating a container to its successful start.",
                )
                .buckets(exponential_buckets(0.01, 2.0, 12)?),
            )?,
            // 0.5ms to ~4s: every write is a transaction committed with fsync.
            store_write_duration_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "berth_store_write_duration_seconds",
                    "Time one store write transaction took, commit and fsync included, by operation.",
                )
                .buckets(exponential_buckets(0.0005, 2.0, 14)?),
                &["op"],
            )?,
        };
        registry.register(Box::new(metrics.reconcile_duration_seconds.clone()))?;
        registry.register(Box::new(metrics.reconcile_errors_total.clone()))?;
        registry.register(Box::new(metrics.workqueue_depth.clone()))?;
        registry.register(Box::new(metrics.probe_total.clone()))?;
        registry.register(Box::new(metrics.probe_duration_seconds.clone()))?;
        registry.register(Box::new(metrics.container_start_duration_seconds.clone()))?;
        registry.register(Box::new(metrics.store_write_duration_seconds.clone()))?;
        Ok(metrics)
    }
}

impl berth_controller::Observer for DaemonMetrics {
    fn reconciled(&self, kind: &'static str, took: Duration, failed: bool) {
        self.reconcile_duration_seconds
            .with_label_values(&[kind])
            .observe(took.as_secs_f64());
        if failed {
            self.reconcile_errors_total.with_label_values(&[kind]).inc();
        }
    }

    fn queue_depth(&self, kind: &'static str, depth: usize) {
        self.workqueue_depth
            .with_label_values(&[kind])
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }
}

impl berth_agent::probe::Observer for DaemonMetrics {
    fn probed(&self, handler: &'static str, probe: ProbeKind, result: RunResult, took: Duration) {
        self.probe_total
            .with_label_values(&[handler, probe.as_str(), result.as_str()])
            .inc();
        self.probe_duration_seconds
            .with_label_values(&[handler])
            .observe(took.as_secs_f64());
    }

    fn container_started(&self, took: Duration) {
        self.container_start_duration_seconds
            .observe(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use berth_agent::probe::Observer as _;
    use berth_controller::Observer as _;
    use prometheus::{Encoder, TextEncoder};

    use super::*;

    fn text(registry: &Registry) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn observations_land_in_their_series() {
        let registry = Registry::new();
        let metrics = DaemonMetrics::register(&registry).unwrap();
        metrics.reconciled("Deployment", Duration::from_millis(3), false);
        metrics.reconciled("Deployment", Duration::from_millis(5), true);
        metrics.queue_depth("ReplicaSet", 4);
        metrics.probed(
            "http",
            ProbeKind::Readiness,
            RunResult::Failed,
            Duration::from_millis(20),
        );
        metrics.container_started(Duration::from_millis(40));
        let text = text(&registry);
        for line in [
            "berth_reconcile_duration_seconds_count{kind=\"Deployment\"} 2",
            "berth_reconcile_errors_total{kind=\"Deployment\"} 1",
            "berth_workqueue_depth{kind=\"ReplicaSet\"} 4",
            "berth_probe_total{probe=\"readiness\",result=\"failed\",type=\"http\"} 1",
            "berth_probe_duration_seconds_count{type=\"http\"} 1",
            "berth_container_start_duration_seconds_bucket{le=\"0.04\"} 1",
            "berth_container_start_duration_seconds_bucket{le=\"0.02\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
        }
    }
}
