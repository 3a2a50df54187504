//! `berth top pods [-n NS | -A]` and `berth top nodes`: CPU and memory usage, as `kubectl top`
//! prints it (`NAME  CPU(cores)  MEMORY(bytes)`, `12m`, `34Mi`).
//!
//! There is no metrics API to ask: the numbers come from the daemon's own `/metrics` (the
//! cAdvisor-named `container_*` series), scraped twice [`SAMPLE_INTERVAL`] apart through the
//! ordinary client. CPU is the rate of `container_cpu_usage_seconds_total` between the two
//! scrapes (kubectl top shows a rate too), memory `container_memory_working_set_bytes` of the
//! second; a pod's usage is the sum of its containers'.
//!
//! `top nodes` shows the one node: the host's usage read from `/proc` (the CLI runs on the node)
//! over the same second — CPU from the non-idle time in `/proc/stat`, memory as
//! `MemTotal - MemAvailable` of `/proc/meminfo` — with its share of the node's CPUs and memory,
//! and the pods' total next to it.

use std::{
    collections::BTreeMap,
    path::Path,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use http::Method;
use http_body_util::BodyExt;

use super::objects::{block_on, connect};
use crate::{
    cli::{GlobalArgs, TopCommand, TopPodsArgs},
    client::Client,
};

/// Time between the two scrapes a CPU rate is computed from.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

const CPU_SERIES: &str = "container_cpu_usage_seconds_total";
const MEMORY_SERIES: &str = "container_memory_working_set_bytes";

pub fn run(global: &GlobalArgs, command: TopCommand) -> anyhow::Result<ExitCode> {
    let client = connect(global)?;
    block_on(async move {
        match command {
            TopCommand::Pods(args) => top_pods(&client, &args).await,
            TopCommand::Nodes => top_nodes(&client).await,
        }
    })
}

async fn top_pods(client: &Client, args: &TopPodsArgs) -> anyhow::Result<ExitCode> {
    let usage = pod_usage(client).await?;
    let namespace = (!args.all_namespaces).then_some(args.namespace.namespace.as_str());
    let rows: Vec<_> = usage
        .iter()
        .filter(|((ns, _), _)| namespace.is_none_or(|wanted| ns == wanted))
        .collect();
    if rows.is_empty() {
        match namespace {
            Some(ns) => eprintln!("No resources found in {ns} namespace."),
            None => eprintln!("No resources found"),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Vec::with_capacity(rows.len() + 1);
    let header = ["NAME", "CPU(cores)", "MEMORY(bytes)"];
    let mut head: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    if namespace.is_none() {
        head.insert(0, "NAMESPACE".to_owned());
    }
    table.push(head);
    for ((ns, pod), usage) in rows {
        let mut row = vec![pod.clone(), cores(usage.cpu), mebibytes(usage.memory)];
        if namespace.is_none() {
            row.insert(0, ns.clone());
        }
        table.push(row);
    }
    print!("{}", render(&table));
    Ok(ExitCode::SUCCESS)
}

async fn top_nodes(client: &Client) -> anyhow::Result<ExitCode> {
    let proc = Path::new("/proc");
    let cpu_before = read_cpu_times(proc)?;
    let before = scrape(client).await?;
    let began = Instant::now();
    tokio::time::sleep(SAMPLE_INTERVAL).await;
    let cpu_after = read_cpu_times(proc)?;
    let after = scrape(client).await?;
    let pods = usage_between(&before, &after, began.elapsed());
    let memory = read_meminfo(proc)?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());

    let node_cpu = cpu_after.busy_share(&cpu_before) * cpus as f64;
    let node_memory = memory.working_set();
    let pods_cpu: f64 = pods.values().map(|u| u.cpu).sum();
    let pods_memory: f64 = pods.values().map(|u| u.memory).sum();
    let table = vec![
        [
            "NAME",
            "CPU(cores)",
            "CPU(%)",
            "MEMORY(bytes)",
            "MEMORY(%)",
            "PODS-CPU(cores)",
            "PODS-MEMORY(bytes)",
        ]
        .map(str::to_owned)
        .to_vec(),
        vec![
            berth_agent::node::NodeConfig::default().name,
            cores(node_cpu),
            percent(node_cpu, cpus as f64),
            mebibytes(node_memory),
            percent(node_memory, memory.total),
            cores(pods_cpu),
            mebibytes(pods_memory),
        ],
    ];
    print!("{}", render(&table));
    Ok(ExitCode::SUCCESS)
}

/// CPU (cores) and working set (bytes) of one pod or the node.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub cpu: f64,
    pub memory: f64,
}

/// Usage per `(namespace, pod)` over [`SAMPLE_INTERVAL`].
async fn pod_usage(client: &Client) -> anyhow::Result<BTreeMap<(String, String), Usage>> {
    let before = scrape(client).await?;
    let began = Instant::now();
    tokio::time::sleep(SAMPLE_INTERVAL).await;
    let after = scrape(client).await?;
    Ok(usage_between(&before, &after, began.elapsed()))
}

async fn scrape(client: &Client) -> anyhow::Result<Vec<Sample>> {
    let response = client.send(Method::GET, "/metrics", None).await?;
    let body = response
        .into_body()
        .collect()
        .await
        .context("reading the daemon's /metrics")?
        .to_bytes();
    let text = std::str::from_utf8(&body).context("the daemon's /metrics is not UTF-8")?;
    Ok(parse_samples(text))
}

/// Per pod: CPU as the rate of its containers' CPU time between `before` and `after`, `elapsed`
/// apart; memory as their working set in `after`. Containers that are not in both scrapes (just
/// started, or restarted: their counter went down) count no CPU; series of containers that
/// belong to no pod (`berth run`) are left out.
pub fn usage_between(
    before: &[Sample],
    after: &[Sample],
    elapsed: Duration,
) -> BTreeMap<(String, String), Usage> {
    let seconds = elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
    let cpu_before: BTreeMap<_, _> = before
        .iter()
        .filter(|s| s.name == CPU_SERIES)
        .map(|s| (container_key(s), s.value))
        .collect();
    let mut pods: BTreeMap<(String, String), Usage> = BTreeMap::new();
    for sample in after {
        let Some(pod) = pod_key(sample) else {
            continue;
        };
        if sample.name == CPU_SERIES {
            let entry = pods.entry(pod).or_default();
            if let Some(earlier) = cpu_before.get(&container_key(sample))
                && sample.value >= *earlier
            {
                entry.cpu += (sample.value - earlier) / seconds;
            }
        } else if sample.name == MEMORY_SERIES {
            pods.entry(pod).or_default().memory += sample.value;
        }
    }
    pods
}

fn label<'a>(sample: &'a Sample, name: &str) -> &'a str {
    sample
        .labels
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

fn pod_key(sample: &Sample) -> Option<(String, String)> {
    let (namespace, pod) = (label(sample, "namespace"), label(sample, "pod"));
    (!namespace.is_empty() && !pod.is_empty()).then(|| (namespace.to_owned(), pod.to_owned()))
}

fn container_key(sample: &Sample) -> (String, String, String, String) {
    (
        label(sample, "namespace").to_owned(),
        label(sample, "pod").to_owned(),
        label(sample, "container").to_owned(),
        label(sample, "id").to_owned(),
    )
}

/// One line of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// The samples of a Prometheus text exposition; comments and lines that do not parse are skipped
/// (a scrape is read for the few series `top` needs, not validated).
pub fn parse_samples(text: &str) -> Vec<Sample> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inside) = rest.strip_prefix('{') {
        let mut chars = inside.char_indices().peekable();
        let end = loop {
            // Skip separators, then either `}` or `name="value"`.
            while let Some((_, c)) = chars.peek().copied() {
                if c == ',' || c.is_whitespace() {
                    chars.next();
                } else {
                    break;
                }
            }
            let (start, c) = chars.next()?;
            if c == '}' {
                break start + 1;
            }
            let eq = inside[start..].find('=')? + start;
            let key = inside[start..eq].trim().to_owned();
            while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                chars.next();
            }
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()?.1 {
                    '"' => break,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    other => value.push(other),
                }
            }
            labels.push((key, value));
        };
        rest = &inside[end..];
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Cumulative CPU times of `/proc/stat`'s `cpu` line, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    pub busy: u64,
    pub total: u64,
}

impl CpuTimes {
    /// The share (0..=1) of the CPUs' time between `earlier` and `self` that was busy.
    pub fn busy_share(&self, earlier: &CpuTimes) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0.0;
        }
        self.busy.saturating_sub(earlier.busy) as f64 / total as f64
    }
}

/// Reads `<proc>/stat`: busy is everything but idle and iowait (as `top` counts it); guest time
/// is already part of user time and not counted twice.
pub fn read_cpu_times(proc: &Path) -> anyhow::Result<CpuTimes> {
    let path = proc.join("stat");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    parse_cpu_times(&text).with_context(|| {
        format!(
            "{}: no `cpu` line of at least four numbers (user nice system idle)",
            path.display()
        )
    })
}

fn parse_cpu_times(text: &str) -> Option<CpuTimes> {
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some("cpu"))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    if fields.len() < 4 {
        return None;
    }
    // user nice system idle iowait irq softirq steal guest guest_nice
    let counted = &fields[..fields.len().min(8)];
    let total: u64 = counted.iter().sum();
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    Some(CpuTimes {
        busy: total - idle,
        total,
    })
}

/// `MemTotal` and `MemAvailable` of `/proc/meminfo`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemInfo {
    pub total: f64,
    pub available: f64,
}

impl MemInfo {
    /// Memory in use, as the kubelet's node working set approximates it.
    pub fn working_set(&self) -> f64 {
        (self.total - self.available).max(0.0)
    }
}

pub fn read_meminfo(proc: &Path) -> anyhow::Result<MemInfo> {
    let path = proc.join("meminfo");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    parse_meminfo(&text).with_context(|| {
        format!(
            "{}: expected `MemTotal:` and `MemAvailable:` lines in kB",
            path.display()
        )
    })
}

fn parse_meminfo(text: &str) -> Option<MemInfo> {
    let field = |name: &str| {
        text.lines().find_map(|line| {
            let value = line.strip_prefix(name)?.strip_prefix(':')?;
            let kib: f64 = value.trim().trim_end_matches("kB").trim().parse().ok()?;
            Some(kib * 1024.0)
        })
    };
    Some(MemInfo {
        total: field("MemTotal")?,
        available: field("MemAvailable")?,
    })
}

/// Millicores as kubectl prints them: `12m`.
pub fn cores(cores: f64) -> String {
    format!("{}m", (cores * 1000.0).round().max(0.0) as u64)
}

/// Bytes in whole mebibytes as kubectl prints them: `34Mi`.
pub fn mebibytes(bytes: f64) -> String {
    format!("{}Mi", (bytes.max(0.0) / (1024.0 * 1024.0)) as u64)
}

fn percent(part: f64, whole: f64) -> String {
    if whole <= 0.0 {
        return "<unknown>".to_owned();
    }
    format!("{}%", (part / whole * 100.0).round() as u64)
}

/// Left-aligned columns three spaces apart, as kubectl's tabwriter prints them.
fn render(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}   ", width = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: &str = r#"# HELP container_cpu_usage_seconds_total Cumulative cpu time consumed in seconds.
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{namespace="default",pod="web-1",container="app",image="busybox",id="a1"} 10.0
container_cpu_usage_seconds_total{namespace="default",pod="web-1",container="side",image="busybox",id="a2"} 1
container_cpu_usage_seconds_total{namespace="team",pod="db-0",container="db",image="pg",id="b1"} 5
container_cpu_usage_seconds_total{namespace="",pod="",container="adhoc",image="x",id="c1"} 3
container_memory_working_set_bytes{namespace="default",pod="web-1",container="app",image="busybox",id="a1"} 1048576
"#;

    const SECOND: &str = r#"container_cpu_usage_seconds_total{namespace="default",pod="web-1",container="app",image="busybox",id="a1"} 10.1
container_cpu_usage_seconds_total{namespace="default",pod="web-1",container="side",image="busybox",id="a2"} 1.012
container_cpu_usage_seconds_total{namespace="team",pod="db-0",container="db",image="pg",id="b9"} 0.5
container_cpu_usage_seconds_total{namespace="",pod="",container="adhoc",image="x",id="c1"} 4
container_memory_working_set_bytes{namespace="default",pod="web-1",container="app",image="busybox",id="a1"} 35651584
container_memory_working_set_bytes{namespace="default",pod="web-1",container="side",image="busybox",id="a2"} 1048576
container_memory_working_set_bytes{namespace="team",pod="db-0",container="db",image="pg",id="b9"} 2097152
"#;

    #[test]
    fn parses_names_escaped_labels_and_values() {
        let samples =
            parse_samples("# c\nup 1\nm{a=\"x\\\"y\\\\z\",b=\"line\\nnext\",} 2.5e3 1700000000\n");
        assert_eq!(
            samples,
            [
                Sample {
                    name: "up".into(),
                    labels: vec![],
                    value: 1.0
                },
                Sample {
                    name: "m".into(),
                    labels: vec![
                        ("a".into(), "x\"y\\z".into()),
                        ("b".into(), "line\nnext".into())
                    ],
                    value: 2500.0
                },
            ]
        );
        assert!(parse_samples("broken{a=\"x} 1\n").is_empty());
    }

    #[test]
    fn cpu_is_a_rate_per_pod_and_memory_the_latest_working_set() {
        let usage = usage_between(
            &parse_samples(FIRST),
            &parse_samples(SECOND),
            Duration::from_secs(2),
        );
        let web = usage[&("default".to_owned(), "web-1".to_owned())];
        assert!((web.cpu - 0.056).abs() < 1e-9, "{web:?}");
        assert_eq!(cores(web.cpu), "56m");
        assert_eq!(mebibytes(web.memory), "35Mi");
        // A restarted container (new id) has no rate yet.
        let db = usage[&("team".to_owned(), "db-0".to_owned())];
        assert_eq!(
            (cores(db.cpu).as_str(), mebibytes(db.memory).as_str()),
            ("0m", "2Mi")
        );
        assert_eq!(usage.len(), 2, "containers outside pods are left out");
    }

    #[test]
    fn reads_the_hosts_cpu_and_memory() {
        let before = parse_cpu_times("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n").unwrap();
        let after = parse_cpu_times("cpu  200 0 100 1600 100 0 0 0 0 0\n").unwrap();
        assert_eq!(
            before,
            CpuTimes {
                busy: 150,
                total: 1000
            }
        );
        assert!((after.busy_share(&before) - 0.15).abs() < 1e-9);
        assert!(parse_cpu_times("intr 1 2\n").is_none());

        let memory =
            parse_meminfo("MemTotal:       2048 kB\nMemFree: 10 kB\nMemAvailable:   512 kB\n")
                .unwrap();
        assert_eq!(memory.working_set(), 1536.0 * 1024.0);
        assert_eq!(percent(memory.working_set(), memory.total), "75%");
        assert!(parse_meminfo("MemTotal: 1 kB\n").is_none());
    }

    #[test]
    fn renders_kubectl_columns() {
        let rows = vec![
            vec!["NAME".into(), "CPU(cores)".into(), "MEMORY(bytes)".into()],
            vec!["web-1".into(), "56m".into(), "35Mi".into()],
        ];
        assert_eq!(
            render(&rows),
            "NAME    CPU(cores)   MEMORY(bytes)\nweb-1   56m          35Mi\n"
        );
    }
}
