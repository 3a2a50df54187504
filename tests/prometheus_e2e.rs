//! End to end, as root: a real Prometheus scrapes a real `berth daemon` every second.
//!
//! - the daemon serves `/metrics` on its TCP listener without the bearer token;
//! - a Deployment of two busybox pods that burn CPU (limited to 100m) becomes
//!   `kube_deployment_status_replicas_available == 2` in Prometheus, and their
//!   `container_cpu_usage_seconds_total` is there and grows;
//! - berth's own instruments are observed by the real code paths (reconciles, probes, container
//!   starts), and `promtool check metrics` finds nothing to say about the exposition;
//! - `berth top pods` and `berth top nodes` show the burning pods.
//!
//! Prometheus and promtool come from Debian's `prometheus` package (scripts/test.sh installs it).
//! Without them the test is skipped with a note, unless `CI` is set: then it fails.

mod support;

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use support::{Env, daemon::Daemon};

const WAIT: Duration = Duration::from_secs(90);

const BURN: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: burn
spec:
  replicas: 2
  selector:
    matchLabels:
      app: burn
  template:
    metadata:
      labels:
        app: burn
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: spin
          image: busybox
          command: ["sh", "-c", "while :; do :; done"]
          resources:
            limits:
              cpu: 100m
          readinessProbe:
            exec:
              command: ["true"]
            periodSeconds: 1
"#;

/// `prometheus` and `promtool` are on the PATH; if not, skip (or fail when `CI` is set).
fn tools_present() -> bool {
    let missing: Vec<&str> = ["prometheus", "promtool"]
        .into_iter()
        .filter(|tool| {
            Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_err()
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI is set and {missing:?} missing: install Debian's `prometheus` package (scripts/test.sh does)"
    );
    eprintln!("{missing:?} not installed (Debian package `prometheus`); skipped");
    false
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP/1.0 GET (no chunked answers): the status code and the body.
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, body.to_owned()))
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A running Prometheus, killed when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Prometheus {
    fn start(dir: &Path, target_port: u16) -> Self {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: berth\n    static_configs:\n      - targets: [\"127.0.0.1:{target_port}\"]\n"
            ),
        )
        .unwrap();
        let data = dir.join("tsdb");
        std::fs::create_dir_all(&data).unwrap();
        let port = free_port();
        let log = dir.join("prometheus.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("starting prometheus");
        let mut prometheus = Self { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = http_get(port, "/-/ready") {
                return prometheus;
            }
            if let Some(status) = prometheus.child.try_wait().unwrap() {
                panic!("prometheus exited with {status}:\n{}", prometheus.log());
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready after 30s:\n{}",
                prometheus.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The instant vector of `query` as (labels, value) pairs.
    fn query(&self, query: &str) -> Vec<(Value, f64)> {
        let path = format!("/api/v1/query?query={}", percent_encode(query));
        let (code, body) = http_get(self.port, &path).unwrap();
        assert_eq!(code, 200, "{query}: {body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["status"], "success", "{query}: {body}");
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|series| {
                let value = series["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN);
                (series["metric"].clone(), value)
            })
            .collect()
    }

    /// The one value of `query`, if it has exactly one series.
    fn scalar(&self, query: &str) -> Option<f64> {
        match self.query(query).as_slice() {
            [(_, value)] => Some(*value),
            _ => None,
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("prometheus log:\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the first exposition line that starts with `series` (name and labels).
fn exposed(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn prometheus_scrapes_workload_state_container_usage_and_berths_own_metrics() {
    if !tools_present() {
        return;
    }
    let Some(env) = Env::new() else { return };
    let token = env.root().with_file_name("token");
    std::fs::write(&token, "prometheus-e2e-token-0123456789abcdef\n").unwrap();
    let api_port = free_port();
    let listen = format!("127.0.0.1:{api_port}");
    let d = Daemon::start(
        &env,
        &["--listen", &listen, "--token-file", token.to_str().unwrap()],
    );

    // /metrics is open on TCP; the API is not.
    let (code, _) = http_get(api_port, "/metrics").unwrap();
    assert_eq!(code, 200, "/metrics without a token");
    let (code, _) = http_get(api_port, "/api/v1/namespaces").unwrap();
    assert_eq!(code, 401, "the API without a token");

    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start(dir.path(), api_port);
    d.apply("burn.yaml", BURN);

    let available =
        r#"kube_deployment_status_replicas_available{namespace="default",deployment="burn"}"#;
    d.wait_for("Prometheus to see 2 available replicas", WAIT, || {
        (prometheus.scalar(available) == Some(2.0)).then_some(())
    });

    let cpu = r#"container_cpu_usage_seconds_total{namespace="default",pod=~"burn-.*"}"#;
    let series = d.wait_for("CPU series of both pods in Prometheus", WAIT, || {
        let series = prometheus.query(cpu);
        let pods: std::collections::BTreeSet<String> = series
            .iter()
            .filter_map(|(labels, _)| labels["pod"].as_str().map(str::to_owned))
            .collect();
        (pods.len() == 2).then_some(series)
    });
    for (labels, _) in &series {
        assert_eq!(labels["container"], "spin", "{labels}");
        assert_eq!(labels["job"], "berth", "{labels}");
    }
    let total = format!("sum({cpu})");
    let first = prometheus.scalar(&total).expect("a CPU sum");
    std::thread::sleep(Duration::from_secs(4));
    let second = prometheus.scalar(&total).expect("a CPU sum");
    assert!(
        second > first,
        "CPU time of the burning pods did not grow: {first} then {second}"
    );
    // Two containers capped at 100m each cannot use more than 0.2 cores; leave room for the
    // scrapes' timing.
    let rate = prometheus
        .scalar(&format!("sum(rate({cpu}[5s]))"))
        .unwrap_or(0.0);
    assert!(rate > 0.0 && rate < 0.4, "CPU rate {rate} of 2 x 100m");

    // berth's own instruments, observed by the real code paths.
    let (code, text) = http_get(api_port, "/metrics").unwrap();
    assert_eq!(code, 200);
    for (series, at_least) in [
        (
            r#"berth_reconcile_duration_seconds_count{kind="Deployment"}"#,
            1.0,
        ),
        (
            r#"berth_reconcile_duration_seconds_count{kind="ReplicaSet"}"#,
            1.0,
        ),
        (r#"berth_workqueue_depth{kind="Deployment"}"#, 0.0),
        (
            r#"berth_probe_total{probe="readiness",result="successful",type="exec"}"#,
            2.0,
        ),
        (r#"berth_probe_duration_seconds_count{type="exec"}"#, 2.0),
        ("berth_container_start_duration_seconds_count", 2.0),
    ] {
        let value = exposed(&text, series);
        assert!(
            value.is_some_and(|v| v >= at_least),
            "{series} = {value:?}, expected at least {at_least}"
        );
    }

    // promtool has nothing to say about the exposition.
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics ({}):\n{said}",
        out.status
    );

    // `berth top` over the same daemon.
    let top = d.ok(&["top", "pods"]);
    let rows: Vec<&str> = top.lines().collect();
    assert_eq!(
        rows[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "CPU(cores)", "MEMORY(bytes)"],
        "{top}"
    );
    let burning: Vec<Vec<&str>> = rows[1..]
        .iter()
        .map(|row| row.split_whitespace().collect())
        .filter(|cells: &Vec<&str>| cells[0].starts_with("burn-"))
        .collect();
    assert_eq!(burning.len(), 2, "{top}");
    for cells in &burning {
        let millicores: u64 = cells[1].trim_end_matches('m').parse().unwrap();
        assert!(
            (10..=200).contains(&millicores),
            "a pod capped at 100m burning: {top}"
        );
        assert!(cells[2].ends_with("Mi"), "{top}");
    }
    let all = d.ok(&["top", "pods", "-A"]);
    assert!(all.starts_with("NAMESPACE"), "{all}");
    assert!(
        all.lines().filter(|l| l.starts_with("default ")).count() >= 2,
        "{all}"
    );

    let nodes = d.ok(&["top", "nodes"]);
    let node: Vec<&str> = nodes.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(node[0], "berth", "{nodes}");
    let node_cpu: u64 = node[1].trim_end_matches('m').parse().unwrap();
    let pods_cpu: u64 = node[5].trim_end_matches('m').parse().unwrap();
    assert!(pods_cpu >= 20, "two burning pods: {nodes}");
    assert!(
        node_cpu + 20 >= pods_cpu,
        "the host includes its pods: {nodes}"
    );

    drop(prometheus);
    d.ok(&["delete", "deployment", "burn"]);
}
