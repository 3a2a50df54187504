//! Container resource usage as cAdvisor (the kubelet's `/metrics/cadvisor`) exposes it:
//! `container_cpu_usage_seconds_total`, `container_memory_working_set_bytes`, ... with the labels
//! `namespace`, `pod`, `container`, `image` and `id`, so that `kubectl top`-style dashboards and
//! the usual alerts (`container_memory_working_set_bytes / container_spec_memory_limit_bytes`)
//! work against berth.
//!
//! The numbers are read at scrape time through a [`ContainerStatsSource`]: the Linux one
//! ([`crate::LinuxContainerStats`]) reads each running container's cgroup, tests use
//! `testing::FakeContainerStats`. Nothing is cached, so a removed container's series vanish at
//! the next scrape.
//!
//! Pressure stall information (PSI) is exposed as cAdvisor does, as
//! `container_pressure_{cpu,memory,io}_{waiting,stalled}_seconds_total` (the kernel's `some` and
//! `full` totals), only for containers whose source reports it: cgroup v2 kernels with PSI
//! enabled. On cgroup v1 there is none and the families are omitted.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;

use crate::family::{FamilySpec, descs};

/// One container's usage at the time of the scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerSample {
    /// The pod's namespace; empty for containers not made by the agent (`berth run`).
    pub namespace: String,
    /// The pod's name; empty for containers not made by the agent.
    pub pod: String,
    /// The container's name in the pod spec, or the container's own name for `berth run`.
    pub container: String,
    /// The image reference the container was created from.
    pub image: String,
    /// cAdvisor's `id`: the container's cgroup path (`/berth/<container id>`).
    pub id: String,
    /// CPU time consumed since the container started, in seconds.
    pub cpu_usage_seconds: f64,
    pub memory_usage_bytes: u64,
    /// Usage minus inactive file cache: what the OOM killer and eviction look at.
    pub memory_working_set_bytes: u64,
    /// `None` when the memory is not limited.
    pub memory_limit_bytes: Option<u64>,
    /// OOM kills in the container's cgroup.
    pub oom_events: u64,
    /// Tasks (processes and threads) in the container's cgroup.
    pub pids: u64,
    /// PSI totals, where the kernel has them.
    pub pressure: Pressure,
}

/// Pressure stall totals of one cgroup, per resource; `None` where the kernel has no PSI file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pressure {
    pub cpu: Option<PressureTotals>,
    pub memory: Option<PressureTotals>,
    pub io: Option<PressureTotals>,
}

/// The cumulative `total=` values of one PSI file, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PressureTotals {
    /// `some`: time at least one task was stalled on the resource.
    pub waiting_seconds: f64,
    /// `full`: time all non-idle tasks were stalled at once; absent from `cpu.pressure` before
    /// Linux 5.13.
    pub stalled_seconds: Option<f64>,
}

/// Where [`ContainerMetrics`] reads usage from at each scrape.
pub trait ContainerStatsSource: Send + Sync {
    /// The containers that are running now, with their current usage. A container that cannot
    /// be read (it stopped during the scrape) is left out, not an error: a scrape must not fail
    /// because one container went away.
    fn containers(&self) -> Vec<ContainerSample>;
}

const LABELS: &[&str] = &["namespace", "pod", "container", "image", "id"];

static CPU_USAGE: FamilySpec = FamilySpec::counter(
    "container_cpu_usage_seconds_total",
    "Cumulative cpu time consumed in seconds.",
    LABELS,
);
static MEMORY_USAGE: FamilySpec = FamilySpec::gauge(
    "container_memory_usage_bytes",
    "Current memory usage in bytes, including all memory regardless of when it was accessed",
    LABELS,
);
static MEMORY_WORKING_SET: FamilySpec = FamilySpec::gauge(
    "container_memory_working_set_bytes",
    "Current working set in bytes.",
    LABELS,
);
static MEMORY_LIMIT: FamilySpec = FamilySpec::gauge(
    "container_spec_memory_limit_bytes",
    "Memory limit for the container.",
    LABELS,
);
static OOM_EVENTS: FamilySpec = FamilySpec::counter(
    "container_oom_events_total",
    "Count of out of memory events observed for the container",
    LABELS,
);
static PROCESSES: FamilySpec = FamilySpec::gauge(
    "container_processes",
    "Number of processes running inside the container.",
    LABELS,
);
static CPU_WAITING: FamilySpec = FamilySpec::counter(
    "container_pressure_cpu_waiting_seconds_total",
    "Total time duration tasks in the container have waited due to CPU pressure.",
    LABELS,
);
static CPU_STALLED: FamilySpec = FamilySpec::counter(
    "container_pressure_cpu_stalled_seconds_total",
    "Total time duration no tasks in the container could make progress due to CPU congestion.",
    LABELS,
);
static MEMORY_WAITING: FamilySpec = FamilySpec::counter(
    "container_pressure_memory_waiting_seconds_total",
    "Total time duration tasks in the container have waited due to memory pressure.",
    LABELS,
);
static MEMORY_STALLED: FamilySpec = FamilySpec::counter(
    "container_pressure_memory_stalled_seconds_total",
    "Total time duration no tasks in the container could make progress due to memory congestion.",
    LABELS,
);
static IO_WAITING: FamilySpec = FamilySpec::counter(
    "container_pressure_io_waiting_seconds_total",
    "Total time duration tasks in the container have waited due to IO pressure.",
    LABELS,
);
static IO_STALLED: FamilySpec = FamilySpec::counter(
    "container_pressure_io_stalled_seconds_total",
    "Total time duration no tasks in the container could make progress due to IO congestion.",
    LABELS,
);

static FAMILIES: &[&FamilySpec] = &[
    &CPU_USAGE,
    &MEMORY_USAGE,
    &MEMORY_WORKING_SET,
    &MEMORY_LIMIT,
    &OOM_EVENTS,
    &PROCESSES,
    &CPU_WAITING,
    &CPU_STALLED,
    &MEMORY_WAITING,
    &MEMORY_STALLED,
    &IO_WAITING,
    &IO_STALLED,
];

/// The cAdvisor-named collector over a [`ContainerStatsSource`].
pub struct ContainerMetrics<S> {
    source: S,
    descs: Vec<Desc>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for ContainerMetrics<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerMetrics")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl<S: ContainerStatsSource> ContainerMetrics<S> {
    pub fn new(source: S) -> prometheus::Result<Self> {
        Ok(Self {
            source,
            descs: descs(FAMILIES)?,
        })
    }
}

/// Bytes and counts as Prometheus' float samples (exact up to 2^53, far beyond real values).
fn float(value: u64) -> f64 {
    value as f64
}

impl<S: ContainerStatsSource> Collector for ContainerMetrics<S> {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut cpu = CPU_USAGE.start();
        let mut memory = MEMORY_USAGE.start();
        let mut working_set = MEMORY_WORKING_SET.start();
        let mut limit = MEMORY_LIMIT.start();
        let mut oom = OOM_EVENTS.start();
        let mut processes = PROCESSES.start();
        let mut pressure = [
            (CPU_WAITING.start(), CPU_STALLED.start()),
            (MEMORY_WAITING.start(), MEMORY_STALLED.start()),
            (IO_WAITING.start(), IO_STALLED.start()),
        ];
        for sample in self.source.containers() {
            let labels = [
                sample.namespace.as_str(),
                &sample.pod,
                &sample.container,
                &sample.image,
                &sample.id,
            ];
            cpu.push(&labels, sample.cpu_usage_seconds);
            memory.push(&labels, float(sample.memory_usage_bytes));
            working_set.push(&labels, float(sample.memory_working_set_bytes));
            // cAdvisor reports an unlimited container's limit as 0.
            limit.push(&labels, float(sample.memory_limit_bytes.unwrap_or(0)));
            oom.push(&labels, float(sample.oom_events));
            processes.push(&labels, float(sample.pids));
            let totals = [
                sample.pressure.cpu,
                sample.pressure.memory,
                sample.pressure.io,
            ];
            for ((waiting, stalled), totals) in pressure.iter_mut().zip(totals) {
                let Some(totals) = totals else { continue };
                waiting.push(&labels, totals.waiting_seconds);
                if let Some(seconds) = totals.stalled_seconds {
                    stalled.push(&labels, seconds);
                }
            }
        }
        let mut out = vec![
            cpu.finish(),
            memory.finish(),
            working_set.finish(),
            limit.finish(),
            oom.finish(),
            processes.finish(),
        ];
        for (waiting, stalled) in pressure {
            out.push(waiting.finish());
            out.push(stalled.finish());
        }
        out
    }
}
