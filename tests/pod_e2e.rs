//! End to end, as root: one pod's life in the real `berth daemon` with real containers, driven
//! by the real CLI. What the agent's unit tests show with a fake runtime and paused time, shown
//! here against real processes, real probes over the pod network and real cgroups:
//!
//! - a crashing container restarts with a growing CrashLoopBackOff (restart count, last exit
//!   code, `CrashLoopBackOff` waiting reason, `BackOff` events, growing gaps between starts);
//! - liveness probes (httpGet, exec, tcpSocket) restart a container within period × threshold,
//!   and a passing one never does; a readiness probe toggles Ready without a restart;
//! - a preStop hook runs before SIGTERM reaches the container;
//! - a memory limit makes the kernel's OOM killer end the container, seen as `OOMKilled`;
//! - init containers run in order before the app, and the pod is `Initialized`;
//! - `berth logs --previous` shows the crashed instance's output;
//! - `kill -9` of the daemon leaves the containers running and the next daemon adopts them with
//!   their ids and restart counts, and counts on from there.
//!
//! Every test starts its own daemon. They are run one at a time ([`serial`]): the daemons of one
//! test process share its bridge and pod range (`support::daemon::bridge`).

mod support;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Env, daemon::Daemon};

const WAIT: Duration = Duration::from_secs(60);

/// One test at a time in this process (see the module doc).
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A pod manifest: `spec` is the YAML of the pod's spec, indented by two spaces.
fn pod(name: &str, spec: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

fn get_pod(d: &Daemon, name: &str) -> Value {
    d.json(&["get", "pod", name])
}

/// The status of the pod's container `container`.
fn container_status(pod: &Value, container: &str) -> Value {
    pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["name"] == container))
        .cloned()
        .unwrap_or(Value::Null)
}

fn restart_count(d: &Daemon, pod: &str, container: &str) -> i64 {
    container_status(&get_pod(d, pod), container)["restartCount"]
        .as_i64()
        .unwrap_or(0)
}

/// The status (`"True"`, `"False"`) of the pod's condition `kind`, if it has it.
fn condition(pod: &Value, kind: &str) -> Option<String> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)?["status"]
        .as_str()
        .map(str::to_owned)
}

fn ready(d: &Daemon, pod: &str) -> Option<String> {
    condition(&get_pod(d, pod), "Ready")
}

fn wait_ready(d: &Daemon, pod: &str) {
    d.wait_for(&format!("pod {pod} Ready"), WAIT, || {
        (ready(d, pod).as_deref() == Some("True")).then_some(())
    });
}

/// The events about pod `pod` as (reason, message).
fn events(d: &Daemon, pod: &str) -> Vec<(String, String)> {
    d.json(&["get", "events"])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| e["involvedObject"]["name"] == pod)
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_owned(),
                e["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn has_event(d: &Daemon, pod: &str, reason: &str, message_part: &str) -> bool {
    events(d, pod)
        .iter()
        .any(|(r, m)| r == reason && m.contains(message_part))
}

/// A directory of the test's tempdir, mounted into pods as a hostPath volume.
fn host_dir(env: &Env, name: &str) -> std::path::PathBuf {
    let dir = env.root().with_file_name(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The host's uptime in seconds from the lines a container appended from `/proc/uptime`
/// (not namespaced, so host and containers share the clock).
fn uptimes(text: &str) -> Vec<f64> {
    text.lines()
        .filter_map(|line| line.split_whitespace().next()?.parse().ok())
        .collect()
}

#[test]
fn crashing_container_restarts_with_growing_backoff() {
    let _serial = serial();
    let Some(env) = Env::new() else { return };
    let d = Daemon::start(&env, &[]);
    let data = host_dir(&env, "crash-data");
    d.apply(
        "crash.yaml",
        &pod(
            "crash",
            &format!(
                r#"  containers:
    - name: main
      image: busybox
      command: ["sh", "-c", "cat /proc/uptime >> /data/starts; exit 3"]
      volumeMounts:
        - name: data
          mountPath: /data
  volumes:
    - name: data
      hostPath:
        path: {}
"#,
                data.display()
            ),
        ),
    );

    let mut saw_back_off = false;
    d.wait_for("4 restarts", WAIT, || {
        let status = container_status(&get_pod(&d, "crash"), "main");
        saw_back_off |= status["state"]["waiting"]["reason"] == "CrashLoopBackOff";
        (status["restartCount"].as_i64().unwrap_or(0) >= 4).then_some(())
    });
    // Catch the waiting reason if every poll above happened to land while it was running.
    d.wait_for("the CrashLoopBackOff waiting reason", WAIT, || {
        let status = container_status(&get_pod(&d, "crash"), "main");
        saw_back_off |= status["state"]["waiting"]["reason"] == "CrashLoopBackOff";
        saw_back_off.then_some(())
    });
    let status = container_status(&get_pod(&d, "crash"), "main");
    assert_eq!(
        status["lastState"]["terminated"]["exitCode"], 3,
        "the last exit code: {status:#}"
    );
    assert_eq!(status["lastState"]["terminated"]["reason"], "Error");
    d.wait_for("a BackOff event", WAIT, || {
        has_event(&d, "crash", "BackOff", "").then_some(())
    });

    // Backoff 1s/2s: the first exit restarts at once, then 1s, then 2s (the cap).
    let starts = uptimes(&read(&data.join("starts")));
    assert!(starts.len() >= 4, "starts: {starts:?}");
    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps[1] >= 0.8 && gaps[1] > gaps[0],
        "the second restart waits about 1s, longer than the first: {gaps:?}"
    );
    assert!(
        gaps[2] >= 1.6 && gaps[2] > gaps[1],
        "the third restart waits about 2s, longer than the second: {gaps:?}"
    );
    assert!(gaps[2] < 10.0, "the cap is 2s: {gaps:?}");
}

/// busybox httpd serving /www on port 8080 (index.html written at each start). As PID 1 it
/// ignores SIGTERM, so its pods take a short grace period: the kill comes after it.
const HTTPD: &str = r#"["sh", "-c", "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www"]"#;

#[test]
fn http_liveness_failure_restarts_the_container() {
    let _serial = serial();
    let Some(env) = Env::new() else { return };
    let d = Daemon::start(&env, &[]);
    d.apply(
        "web.yaml",
        &pod(
            "web",
            &format!(
                r#"  terminationGracePeriodSeconds: 2
  containers:
    - name: web
      image: busybox
      command: {HTTPD}
      livenessProbe:
        httpGet:
          path: /index.html
          port: 8080
        periodSeconds: 1
        failureThreshold: 2
"#
            ),
        ),
    );
    wait_ready(&d, "web");
    // Let the probe pass a few times first: a healthy container is not restarted.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(restart_count(&d, "web", "web"), 0);
    let ip = get_pod(&d, "web")["status"]["podIP"]
        .as_str()
        .expect("a pod IP")
        .to_owned();
    let (_, body) = http_get(&ip, 8080, "/index.html");
    assert!(
        body.contains("hello"),
        "served directly to the host: {body}"
    );

    d.ok(&["exec", "web", "--", "rm", "/www/index.html"]);
    let broken = Instant::now();
    d.wait_for("the restart", WAIT, || {
        (restart_count(&d, "web", "web") == 1).then_some(())
    });
    // period 1s × threshold 2 = 2s, plus the stop and the new start.
    let took = broken.elapsed();
    assert!(took < Duration::from_secs(15), "restarted after {took:?}");
    assert!(
        has_event(&d, "web", "Unhealthy", "Liveness probe failed"),
        "{:#?}",
        events(&d, "web")
    );
    assert!(
        has_event(&d, "web", "Killing", ""),
        "{:#?}",
        events(&d, "web")
    );
    // The new instance serves the file again and stays.
    wait_ready(&d, "web");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(restart_count(&d, "web", "web"), 1);
}

/// A minimal HTTP/1.0 GET: (status line, body).
fn http_get(ip: &str, port: u16, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(
        &format!("{ip}:{port}").parse().unwrap(),
        Duration::from_secs(5),
    )
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.lines().next().unwrap_or_default().to_owned();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Waits until TERM (exits 0), as a long-running app.
const IDLE: &str = "trap 'exit 0' TERM; while :; do sleep 1; done";

#[test]
fn readiness_toggles_ready_without_restarting() {
    let _serial = serial();
    let Some(env) = Env::new() else { return };
    let d = Daemon::start(&env, &[]);
    d.apply(
        "ready.yaml",
        &pod(
            "toggle",
            &format!(
                r#"  containers:
    - name: main
      image: busybox
      command: ["sh", "-c", "touch /tmp/ready; {IDLE}"]
      readinessProbe:
        exec:
          command: ["cat", "/tmp/ready"]
        periodSeconds: 1
"#
            ),
        ),
    );
    wait_ready(&d, "toggle");

    d.ok(&["exec", "toggle", "--", "rm", "/tmp/ready"]);
    d.wait_for("Ready=False", WAIT, || {
        (ready(&d, "toggle").as_deref() == Some("False")).then_some(())
    });
    let status = container_status(&get_pod(&d, "toggle"), "main");
    assert_eq!(status["ready"], false, "{status:#}");
    assert!(status["state"]["running"].is_object(), "{status:#}");
    assert_eq!(status["restartCount"], 0, "{status:#}");

    d.ok(&["exec", "toggle", "--", "touch", "/tmp/ready"]);
    wait_ready(&d, "toggle");
    assert_eq!(restart_count(&d, "toggle", "main"), 0);
}

#[test]
fn exec_and_tcp_liveness_probes() {
    let _serial = serial();
    let Some(env) = Env::new() else { return };
    let d = Daemon::start(&env, &[]);
    let probe = |kind: &str| {
        format!(
            "      livenessProbe:\n{kind}\n        periodSeconds: 1\n        failureThreshold: 2\n"
        )
    };
    let tcp = |port: u16| format!("        tcpSocket:\n          port: {port}");
    let exec = |path: &str| format!("        exec:\n          command: [\"cat\", \"{path}\"]");
    let container = |command: &str, liveness: String| {
        format!(
            "  terminationGracePeriodSeconds: 2\n  containers:\n    - name: main\n      image: busybox\n      command: {command}\n{liveness}"
        )
    };
    let idle = format!(r#"["sh", "-c", "touch /tmp/alive; {IDLE}"]"#);
    // Passing: tcpSocket on httpd's port, exec of a file that exists.
    d.apply(
        "tcp-ok.yaml",
        &pod("tcp-ok", &container(HTTPD, probe(&tcp(8080)))),
    );
    d.apply(
        "exec-ok.yaml",
        &pod("exec-ok", &container(&idle, probe(&exec("/tmp/alive")))),
    );
    // Failing: tcpSocket on a port nothing listens on, exec of a file that never exists.
    d.apply(
        "tcp-bad.yaml",
        &pod("tcp-bad", &container(HTTPD, probe(&tcp(9999)))),
    );
    d.apply(
        "exec-bad.yaml",
        &pod("exec-bad", &container(&idle, probe(&exec("/tmp/none")))),
    );

    for name in ["tcp-bad", "exec-bad"] {
        d.wait_for(&format!("{name} restarted"), WAIT, || {
            (restart_count(&d, name, "main") >= 1).then_some(())
        });
        assert!(
            has_event(&d, name, "Unhealthy", "Liveness probe failed"),
            "{name}: {:#?}",
            events(&d, name)
        );
    }
    for name in ["tcp-ok", "exec-ok"] {
        wait_ready(&d, name);
    }
    // By now the failing ones have been restarted; the passing ones have been probed for
    // several periods and never restarted.
    std::thread::sleep(Duration::from_secs(4));
    for name in ["tcp-ok", "exec-ok"] {
        assert_eq!(restart_count(&d, name, "main"), 0, "{name}");
        assert!(
            !has_event(&d, name, "Unhealthy", ""),
            "{name}: {:#?}",
            events(&d, name)
        );
    }
}

#[test]
fn pre_stop_hook_runs_before_sigterm() {
    let _serial = serial();
    let Some(env) = Env::new() else { return };
    let d = Daemon::start(&env, &[]);
    let data = host_dir(&env, "hook-data");
    d.apply(
        "hook.yaml",
        &pod(
            "hook",
            &format!(
                r#"  terminationGracePeriodSeconds: 10
  containers:
    - name: main
      image: busybox
      command:
        - sh
        - -c
        - |
          trap '{{ echo term; cat /data/prestop; }} > /data/term; exit 0' TERM
          while :; do sleep 1; done
      lifecycle:
        preStop:
          exec:
            command: ["sh", "-c", "echo prestop-ran > /data/prestop"]
      volumeMounts:
        - name: data
          mountPath: /data
  volumes:
    - name: data
      hostPath:
        path: {}
"#,
                data.display()
            ),
        ),
    );
    wait_ready(&d, "hook");
    d.ok(&["delete", "pod", "hook"]);
    d.wait_for("the pod gone", WAIT, || {
        let out = d.berth(&["get", "pod", "hook"]);
        (!out.status.success()).then_some(())
    });
    let pre_stop = read(&data.join("prestop"));
    let term = read(&data.join("term"));
    assert_eq!(pre_stop, "prestop-ran\n", "the preStop hook ran");
    assert_eq!(
        term, "term\nprestop-ran\n",
        "the TERM trap ran after the hook had written its marker"
    );
    d.wait_for("no container left", WAIT, || {
        d.running_containers().is_empty().then_some(())
    });
}

#[test]
fn memory_limit_ends_in_oom_killed() {
    let _serial = serial();
    let Some(env) = Env::new() else { return };
    let d = Daemon::start(&env, &[]);
    // The shell holds 64 MiB in a variable, over the 16 MiB limit.
    d.apply(
        "oom.yaml",
        &pod(
            "oom",
            r#"  restartPolicy: Never
  containers:
    - name: main
      image: busybox
      command: ["sh", "-c", "x=$(head -c 64m /dev/zero | tr '\\0' a); sleep 1; echo survived"]
      resources:
        limits:
          memory: 16Mi
"#,
        ),
    );
    let status = d.wait_for("the container terminated", WAIT, || {
        let pod = get_pod(&d, "oom");
        let status = container_status(&pod, "main");
        status["state"]["terminated"]
            .is_object()
            .then_some((pod, status))
    });
    let (pod, status) = status;
    let terminated = &status["state"]["terminated"];
    assert_eq!(terminated["reason"], "OOMKilled", "{status:#}");
    assert_eq!(terminated["exitCode"], 137, "{status:#}");
    assert_eq!(pod["status"]["phase"], "Failed", "{pod:#}");
    let logs = d.ok(&["logs", "oom"]);
    assert!(!logs.contains("survived"), "{logs}");
}

#[test]
fn init_containers_run_in_order_before_the_app() {
    let _serial = serial();
    let Some(env) = Env::new() else { return };
    let d = Daemon::start(&env, &[]);
    d.apply(
        "init.yaml",
        &pod(
            "init",
            &format!(
                r#"  initContainers:
    - name: first
      image: busybox
      command: ["sh", "-c", "sleep 1; echo first >> /shared/order"]
      volumeMounts:
        - name: shared
          mountPath: /shared
    - name: second
      image: busybox
      command: ["sh", "-c", "echo second >> /shared/order"]
      volumeMounts:
        - name: shared
          mountPath: /shared
  containers:
    - name: app
      image: busybox
      command: ["sh", "-c", "cat /shared/order; {IDLE}"]
      volumeMounts:
        - name: shared
          mountPath: /shared
  volumes:
    - name: shared
      emptyDir: {{}}
"#
            ),
        ),
    );
    wait_ready(&d, "init");
    let pod = get_pod(&d, "init");
    assert_eq!(
        condition(&pod, "Initialized").as_deref(),
        Some("True"),
        "{pod:#}"
    );
    let inits = pod["status"]["initContainerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(inits.len(), 2, "{pod:#}");
    for init in &inits {
        assert_eq!(init["state"]["terminated"]["exitCode"], 0, "{init:#}");
        assert_eq!(
            init["state"]["terminated"]["reason"], "Completed",
            "{init:#}"
        );
    }
    let logs = d.wait_for("the app's output", WAIT, || {
        let logs = d.ok(&["logs", "init", "-c", "app"]);
        (!logs.is_empty()).then_some(logs)
    });
    assert_eq!(logs, "first\nsecond\n");
}

#[test]
fn logs_previous_shows_the_crashed_instance() {
    let _serial = serial();
    let Some(env) = Env::new() else { return };
    let d = Daemon::start(&env, &[]);
    d.apply(
        "prev.yaml",
        &pod(
            "prev",
            r#"  containers:
    - name: main
      image: busybox
      command:
        - sh
        - -c
        - |
          echo "instance $(cat /proc/uptime)"
          while [ ! -e /tmp/crash ]; do sleep 0.2; done
          echo crashing
          exit 1
"#,
        ),
    );
    wait_ready(&d, "prev");
    let first = d.wait_for("the first instance's output", WAIT, || {
        let logs = d.ok(&["logs", "prev"]);
        logs.contains("instance").then_some(logs)
    });
    d.ok(&["exec", "prev", "--", "touch", "/tmp/crash"]);
    d.wait_for("the restart", WAIT, || {
        let status = container_status(&get_pod(&d, "prev"), "main");
        (status["restartCount"] == 1 && status["state"]["running"].is_object()).then_some(())
    });
    let current = d.wait_for("the second instance's output", WAIT, || {
        let logs = d.ok(&["logs", "prev"]);
        logs.contains("instance").then_some(logs)
    });
    let previous = d.ok(&["logs", "prev", "--previous"]);
    assert_eq!(
        previous,
        format!("{first}crashing\n"),
        "the crashed instance's whole log"
    );
    assert!(!current.contains("crashing"), "{current}");
    assert_ne!(current, first, "a new instance with its own log");
}

/// A pod whose container exits 2 when told to (`touch /tmp/crash`; /tmp is the instance's own),
/// told once: running again with restart count 1. Its status.
fn crashed_once(d: &Daemon) -> Value {
    d.apply(
        "adopt.yaml",
        &pod(
            "adopt",
            r#"  containers:
    - name: main
      image: busybox
      command: ["sh", "-c", "trap 'exit 0' TERM; while [ ! -e /tmp/crash ]; do sleep 0.2; done; exit 2"]
"#,
        ),
    );
    wait_ready(d, "adopt");
    d.ok(&["exec", "adopt", "--", "touch", "/tmp/crash"]);
    d.wait_for("restart 1", WAIT, || running_again(d, 1))
}

/// The status of `adopt`'s container once it runs, is ready and has restarted `count` times.
fn running_again(d: &Daemon, count: i64) -> Option<Value> {
    let status = container_status(&get_pod(d, "adopt"), "main");
    (status["restartCount"] == count
        && status["state"]["running"].is_object()
        && status["ready"] == true)
        .then_some(status)
}

#[test]
fn daemon_crash_keeps_containers_and_restart_counts() {
    let _serial = serial();
    let Some(env) = Env::new() else { return };
    let mut d = Daemon::start(&env, &[]);
    let before = crashed_once(&d);
    let id = before["containerID"].as_str().unwrap().to_owned();
    let containers = d.running_containers();
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert!(
        id.trim_start_matches("berth://")
            .starts_with(&containers[0]),
        "{id} is {containers:?}"
    );

    d.kill();
    assert_eq!(
        d.running_containers(),
        containers,
        "kill -9 stops no container"
    );
    d.restart();
    // Give the new daemon time to adopt (and to wrongly restart, if it would).
    std::thread::sleep(Duration::from_secs(3));
    let adopted = d.wait_for("adopted and running", WAIT, || running_again(&d, 1));
    assert_eq!(
        adopted["containerID"],
        id.as_str(),
        "the same container: {adopted:#}"
    );
    assert_eq!(d.running_containers(), containers);

    // A crash after the restart counts on from 1.
    d.ok(&["exec", "adopt", "--", "touch", "/tmp/crash"]);
    let after = d.wait_for("restart 2", WAIT, || running_again(&d, 2));
    assert_ne!(
        after["containerID"],
        id.as_str(),
        "a new instance: {after:#}"
    );
    assert_eq!(after["lastState"]["terminated"]["exitCode"], 2, "{after:#}");
}

#[test]
fn daemon_crash_keeps_the_last_state() {
    let _serial = serial();
    let Some(env) = Env::new() else { return };
    let mut d = Daemon::start(&env, &[]);
    let before = crashed_once(&d);
    assert_eq!(
        before["lastState"]["terminated"]["exitCode"], 2,
        "{before:#}"
    );
    d.kill();
    d.restart();
    std::thread::sleep(Duration::from_secs(3));
    let adopted = d.wait_for("adopted and running", WAIT, || running_again(&d, 1));
    assert_eq!(
        adopted["lastState"], before["lastState"],
        "the last exit is remembered: {adopted:#}"
    );
}
