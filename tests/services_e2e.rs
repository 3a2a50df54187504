//! Traffic follows readiness: an HTTP load generator hits a NodePort Service of a 4-replica busybox
//! httpd Deployment continuously through a rolling update, a scale from 4 to 1 and back to 4, and
//! the kill of one pod's container. No request may fail in the update and the scale-down; after
//! the kill, requests resume within one readiness period. Prints the request count, errors and
//! p99 of each phase.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use support::{Env, daemon::Daemon};

const WAIT: Duration = Duration::from_secs(120);
/// Not the examples' 30080: the examples test may run at the same time.
const NODE_PORT: u16 = 30181;

fn web(version: &str, replicas: u32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: web
  strategy:
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 10
      containers:
        - name: httpd
          image: busybox
          command: ["sh", "-c", "mkdir -p /www && echo {version} > /www/index.html && exec httpd -f -p 8080 -h /www"]
          ports:
            - name: http
              containerPort: 8080
          readinessProbe:
            httpGet:
              path: /
              port: http
            periodSeconds: 1
          lifecycle:
            preStop:
              exec:
                command: ["sleep", "2"]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector:
    app: web
  ports:
    - port: 8181
      targetPort: http
      nodePort: {NODE_PORT}
"#
    )
}

/// One GET; `Ok(latency)` for a 200.
fn request(addr: SocketAddr) -> Result<Duration, String> {
    let began = Instant::now();
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    if response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200") {
        Ok(began.elapsed())
    } else {
        Err(response
            .lines()
            .next()
            .unwrap_or("empty response")
            .to_owned())
    }
}

/// Results of a load phase.
#[derive(Default)]
struct Load {
    ok: Vec<(Instant, Duration)>,
    errors: Vec<(Instant, String)>,
}

impl Load {
    fn p99(&self) -> Duration {
        let mut latencies: Vec<Duration> = self.ok.iter().map(|(_, l)| *l).collect();
        latencies.sort();
        latencies
            .get(latencies.len().saturating_sub(1) * 99 / 100)
            .copied()
            .unwrap_or_default()
    }

    fn report(&self, phase: &str) {
        println!(
            "{phase}: {} requests, {} errors, p99 {:?}{}",
            self.ok.len() + self.errors.len(),
            self.errors.len(),
            self.p99(),
            self.errors
                .first()
                .map(|(_, e)| format!(" (first error: {e})"))
                .unwrap_or_default()
        );
    }
}

/// Runs `phase` while 4 client threads send requests back to back.
fn under_load(addr: SocketAddr, phase: impl FnOnce()) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut load = Load::default();
                while !stop.load(Ordering::Relaxed) {
                    match request(addr) {
                        Ok(latency) => load.ok.push((Instant::now(), latency)),
                        Err(error) => load.errors.push((Instant::now(), error)),
                    }
                }
                load
            })
        })
        .collect();
    phase();
    stop.store(true, Ordering::Relaxed);
    let mut all = Load::default();
    for client in clients {
        let load = client.join().unwrap();
        all.ok.extend(load.ok);
        all.errors.extend(load.errors);
    }
    all
}

fn ready_replicas(d: &Daemon) -> i64 {
    d.json(&["get", "deployment", "web"])["status"]["readyReplicas"]
        .as_i64()
        .unwrap_or(0)
}

fn pods(d: &Daemon) -> usize {
    d.json(&["get", "pods", "-l", "app=web"])["items"]
        .as_array()
        .map_or(0, Vec::len)
}

#[test]
fn no_request_fails_through_rollout_scale_down_and_pod_kill() {
    let Some(env) = Env::new() else { return };
    let d = Daemon::start(&env, &[]);
    d.apply("web.yaml", &web("v1", 4));
    d.ok(&["rollout", "status", "deployment/web", "--timeout", "120s"]);
    let addr: SocketAddr = format!("127.0.0.1:{NODE_PORT}").parse().unwrap();
    d.wait_for("the Service answering", WAIT, || request(addr).ok());

    let rollout = under_load(addr, || {
        d.apply("web.yaml", &web("v2", 4));
        d.ok(&["rollout", "status", "deployment/web", "--timeout", "120s"]);
        // Old pods finish terminating (preStop, SIGTERM) under load too.
        d.wait_for("4 pods", WAIT, || (pods(&d) == 4).then_some(()));
    });
    rollout.report("rolling update");
    assert!(
        rollout.errors.is_empty(),
        "failed requests during the rolling update"
    );
    assert!(rollout.ok.len() > 100, "the load generator ran");

    let scale = under_load(addr, || {
        d.ok(&["scale", "deployment/web", "--replicas", "1"]);
        d.wait_for("1 pod", WAIT, || (pods(&d) == 1).then_some(()));
        d.ok(&["scale", "deployment/web", "--replicas", "4"]);
        d.wait_for("4 ready", WAIT, || (ready_replicas(&d) == 4).then_some(()));
    });
    scale.report("scale 4 -> 1 -> 4");
    assert!(scale.errors.is_empty(), "failed requests while scaling");

    // Kill one pod's container from the host (SIGKILL of its init, as an OOM kill would).
    let pod = d.json(&["get", "pods", "-l", "app=web"])["items"][0].clone();
    let id = pod["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap()
        .rsplit("://")
        .next()
        .unwrap()
        .to_owned();
    let inspect: serde_json::Value =
        serde_json::from_slice(&env.berth(&["container", "inspect", &id]).stdout).unwrap();
    let pid = inspect["state"]["init_pid"]
        .as_i64()
        .expect("the container's init pid in inspect");
    let mut killed_at = Instant::now();
    let kill = under_load(addr, || {
        thread::sleep(Duration::from_millis(500));
        killed_at = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        thread::sleep(Duration::from_secs(3));
    });
    kill.report("kill of one pod");
    let resumed = kill
        .ok
        .iter()
        .filter(|(at, _)| *at > killed_at)
        .map(|(at, _)| at.duration_since(killed_at))
        .min()
        .expect("requests after the kill");
    println!("first success after the kill: {resumed:?}");
    assert!(
        resumed <= Duration::from_secs(1),
        "requests resume within one readiness period (1s), took {resumed:?}"
    );
    let late_errors = kill
        .errors
        .iter()
        .filter(|(at, _)| at.duration_since(killed_at) > Duration::from_secs(1))
        .count();
    assert_eq!(late_errors, 0, "no errors after one readiness period");
}
