//! End to end, as root: the real `berth daemon` running real containers, driven by the real CLI.
//!
//! - a Deployment scales up and down, rolls out a new template, is rolled back and deleted, and
//!   the runtime's containers follow every step;
//! - `kill -9` of the daemon leaves containers running, a new daemon re-adopts them (same
//!   containers, same restart counts), and a rollout interrupted by the crash converges with no
//!   duplicate or orphaned container;
//! - `--manifests DIR` applies files, rejects a bad one without touching anything, and prunes
//!   what a file no longer holds or a removed file created.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{Env, daemon::Daemon};

const WAIT: Duration = Duration::from_secs(90);

/// A Deployment of `replicas` pods whose container exits cleanly on SIGTERM and is Ready once
/// it has written /tmp/ready (an exec readiness probe).
fn app(replicas: u32, version: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: app
  strategy:
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  template:
    metadata:
      labels:
        app: app
    spec:
      terminationGracePeriodSeconds: 5
      containers:
        - name: main
          image: busybox
          command: ["sh", "-c", "trap 'exit 0' TERM; touch /tmp/ready; while :; do sleep 1; done"]
          env:
            - name: VERSION
              value: "{version}"
          readinessProbe:
            exec:
              command: ["cat", "/tmp/ready"]
            periodSeconds: 1
"#
    )
}

fn items(list: &Value) -> Vec<Value> {
    list["items"].as_array().cloned().unwrap_or_default()
}

fn pod_version(pod: &Value) -> String {
    pod["spec"]["containers"][0]["env"][0]["value"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The deployment is complete: every replica updated, ready and available, no old pods.
fn rolled_out(d: &Daemon, replicas: i64, version: &str) -> Option<()> {
    let dep = d.json(&["get", "deployment", "app"]);
    let status = &dep["status"];
    let settled = status["observedGeneration"] == dep["metadata"]["generation"]
        && status["replicas"].as_i64() == Some(replicas)
        && status["updatedReplicas"].as_i64() == Some(replicas)
        && status["readyReplicas"].as_i64() == Some(replicas)
        && status["availableReplicas"].as_i64() == Some(replicas);
    let pods = items(&d.json(&["get", "pods", "-l", "app=app"]));
    let live = pods.len() == replicas as usize
        && pods.iter().all(|p| {
            p["metadata"]["deletionTimestamp"].is_null()
                && p["status"]["phase"] == "Running"
                && pod_version(p) == version
        });
    (settled && live).then_some(())
}

/// Running containers equal the pods' current container ids: nothing orphaned, nothing missing.
fn containers_match_pods(d: &Daemon) -> Option<()> {
    let pods = items(&d.json(&["get", "pods", "-l", "app=app"]));
    let mut wanted: Vec<String> = pods
        .iter()
        .filter_map(|p| p["status"]["containerStatuses"][0]["containerID"].as_str())
        .map(|id| {
            id.rsplit("://")
                .next()
                .unwrap_or(id)
                .chars()
                .take(12)
                .collect()
        })
        .collect();
    let mut running = d.running_containers();
    wanted.sort();
    running.sort();
    (wanted.len() == pods.len() && wanted == running).then_some(())
}

#[test]
fn deployment_scales_rolls_out_rolls_back_and_deletes() {
    let Some(env) = Env::new() else { return };
    let d = Daemon::start(&env, &[]);
    d.apply("app.yaml", &app(3, "1"));
    d.wait_for("3 ready replicas", WAIT, || rolled_out(&d, 3, "1"));
    d.wait_for("3 containers", WAIT, || containers_match_pods(&d));

    d.ok(&["scale", "deployment/app", "--replicas", "5"]);
    d.wait_for("5 ready replicas", WAIT, || rolled_out(&d, 5, "1"));
    d.wait_for("5 containers", WAIT, || containers_match_pods(&d));

    d.ok(&["scale", "deployment/app", "--replicas", "1"]);
    d.wait_for("1 replica", WAIT, || rolled_out(&d, 1, "1"));
    d.wait_for("1 container", WAIT, || containers_match_pods(&d));

    d.ok(&["scale", "deployment/app", "--replicas", "3"]);
    d.wait_for("3 ready replicas", WAIT, || rolled_out(&d, 3, "1"));

    // A new template: the rollout completes and the old ReplicaSet ends at 0.
    d.apply("app.yaml", &app(3, "2"));
    d.ok(&["rollout", "status", "deployment/app", "--timeout", "120s"]);
    d.wait_for("version 2 everywhere", WAIT, || rolled_out(&d, 3, "2"));
    let sets = items(&d.json(&["get", "replicasets", "-l", "app=app"]));
    assert_eq!(sets.len(), 2, "{sets:#?}");
    assert_eq!(
        sets.iter()
            .filter(|rs| rs["spec"]["replicas"].as_i64() == Some(0))
            .count(),
        1,
        "the old ReplicaSet is scaled to 0: {sets:#?}"
    );
    d.wait_for("containers of version 2", WAIT, || {
        containers_match_pods(&d)
    });

    let history = d.ok(&["rollout", "history", "deployment/app"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");
    d.ok(&["rollout", "undo", "deployment/app"]);
    d.ok(&["rollout", "status", "deployment/app", "--timeout", "120s"]);
    d.wait_for("version 1 again", WAIT, || rolled_out(&d, 3, "1"));

    d.ok(&["delete", "deployment", "app"]);
    d.wait_for("everything deleted", WAIT, || {
        let pods = items(&d.json(&["get", "pods", "-A"]));
        let sets = items(&d.json(&["get", "replicasets", "-A"]));
        (pods.is_empty() && sets.is_empty() && d.running_containers().is_empty()).then_some(())
    });
}

#[test]
fn daemon_crash_keeps_containers_and_an_interrupted_rollout_converges() {
    let Some(env) = Env::new() else { return };
    let mut d = Daemon::start(&env, &[]);
    d.apply("app.yaml", &app(3, "1"));
    d.wait_for("3 ready replicas", WAIT, || rolled_out(&d, 3, "1"));
    d.wait_for("3 containers", WAIT, || containers_match_pods(&d));
    let before = items(&d.json(&["get", "pods", "-l", "app=app"]));
    let mut containers = d.running_containers();
    containers.sort();

    d.kill();
    let mut still = d.running_containers();
    still.sort();
    assert_eq!(
        still, containers,
        "kill -9 of the daemon stops no container"
    );

    d.restart();
    std::thread::sleep(Duration::from_secs(3));
    let after = items(&d.json(&["get", "pods", "-l", "app=app"]));
    let uids = |pods: &[Value]| {
        let mut uids: Vec<String> = pods
            .iter()
            .map(|p| p["metadata"]["uid"].as_str().unwrap().to_owned())
            .collect();
        uids.sort();
        uids
    };
    assert_eq!(uids(&after), uids(&before), "the same pods");
    for pod in &after {
        assert_eq!(
            pod["status"]["containerStatuses"][0]["restartCount"], 0,
            "re-adopted, not restarted: {pod:#}"
        );
    }
    let mut adopted = d.running_containers();
    adopted.sort();
    assert_eq!(adopted, containers, "the same containers, re-adopted");

    // Crash in the middle of a rollout; the next daemon finishes it.
    d.apply("app.yaml", &app(3, "2"));
    std::thread::sleep(Duration::from_millis(1500));
    d.kill();
    d.restart();
    d.ok(&["rollout", "status", "deployment/app", "--timeout", "120s"]);
    d.wait_for("version 2 everywhere", WAIT, || rolled_out(&d, 3, "2"));
    d.wait_for("no duplicate or orphaned container", WAIT, || {
        containers_match_pods(&d)
    });

    // A clean stop leaves the containers too.
    let status = d.stop();
    assert!(status.success(), "SIGTERM: {status}");
    assert_eq!(d.running_containers().len(), 3);
}

#[test]
fn manifest_directory_applies_rejects_and_prunes() {
    let Some(env) = Env::new() else { return };
    let dir = env.root().with_file_name("manifests");
    std::fs::create_dir_all(&dir).unwrap();
    let config = |extra: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: fast\n{extra}"
        )
    };
    let second = "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n  a: b\n";
    std::fs::write(dir.join("config.yaml"), config(second)).unwrap();
    let d = Daemon::start(&env, &["--manifests", dir.to_str().unwrap()]);
    let names = || {
        let mut names: Vec<String> = items(&d.json(&["get", "configmaps"]))
            .iter()
            .map(|c| c["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    d.wait_for("both configmaps", WAIT, || {
        (names() == ["extra", "settings"]).then_some(())
    });

    // A bad file changes nothing and is reported as an event.
    std::fs::write(
        dir.join("bad.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_Valid\ndata:\n  x: y\n",
    )
    .unwrap();
    d.wait_for("a FailedApply event", WAIT, || {
        let events = items(&d.json(&["get", "events"]));
        events
            .iter()
            .any(|e| {
                e["reason"] == "FailedApply"
                    && e["message"].as_str().unwrap_or("").contains("bad.yaml")
            })
            .then_some(())
    });
    assert_eq!(names(), ["extra", "settings"]);

    // Removing an object from a file prunes it; removing the file prunes the rest.
    std::fs::write(dir.join("config.yaml"), config("")).unwrap();
    d.wait_for("extra pruned", WAIT, || {
        (names() == ["settings"]).then_some(())
    });
    std::fs::remove_file(dir.join("config.yaml")).unwrap();
    d.wait_for("settings pruned", WAIT, || names().is_empty().then_some(()));
}
