//! Every file in `examples/` applied to a real daemon and checked for what its header promises:
//! the web Deployment answers through its NodePort and cluster IP, the crashing worker
//! restarts with CrashLoopBackOff, the ConfigMap shows up as files and env, the rolling-update
//! Deployment rolls out, and the two apps in their namespace talk by Service name (cluster DNS
//! and the Service proxy).
//!
//! One test, sequential: the web example's NodePort (30080) is a host-wide resource.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::{Env, daemon::Daemon};

const WAIT: Duration = Duration::from_secs(120);

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
        .display()
        .to_string()
}

/// `GET /` over HTTP/1.0; the body, if the server answered 200.
fn http_get(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200")
        .then(|| body.to_owned())
        .or_else(|| head.starts_with("HTTP/1.1 200").then(|| body.to_owned()))
}

fn first_pod(d: &Daemon, namespace: &str, selector: &str) -> Option<Value> {
    d.json(&["get", "pods", "-n", namespace, "-l", selector])["items"]
        .as_array()?
        .first()
        .cloned()
}

#[test]
fn every_example_runs_as_its_header_says() {
    let Some(env) = Env::new() else { return };
    env.tag_image("berth.local/busybox:latest");
    let d = Daemon::start(&env, &[]);

    // web.yaml: 3 ready replicas behind a NodePort Service.
    d.ok(&["apply", "-f", &example("web.yaml")]);
    d.ok(&["rollout", "status", "deployment/web", "--timeout", "120s"]);
    let node_port: SocketAddr = "127.0.0.1:30080".parse().unwrap();
    let body = d.wait_for("web through the NodePort", WAIT, || http_get(node_port));
    assert!(body.starts_with("hello from web-"), "{body}");
    let service = d.json(&["get", "service", "web"]);
    let cluster_ip = service["spec"]["clusterIP"].as_str().unwrap().to_owned();
    let through_cluster_ip: SocketAddr = format!("{cluster_ip}:80").parse().unwrap();
    d.wait_for("web through the cluster IP", WAIT, || {
        http_get(through_cluster_ip)
    });
    let endpoints = d.json(&["get", "endpoints", "web"]);
    let ready = endpoints["subsets"][0]["addresses"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(ready, 3, "{endpoints:#}");

    // crashloop.yaml: restarts with a growing backoff.
    d.ok(&["apply", "-f", &example("crashloop.yaml")]);
    d.wait_for("two restarts of the crashing worker", WAIT, || {
        let pod = first_pod(&d, "default", "app=crashloop")?;
        let status = &pod["status"]["containerStatuses"][0];
        (status["restartCount"].as_i64()? >= 2).then_some(())
    });
    let events = d.ok(&["get", "events"]);
    assert!(events.contains("BackOff"), "{events}");

    // configmap-volume.yaml: keys as files, one as env.
    d.ok(&["apply", "-f", &example("configmap-volume.yaml")]);
    let logs = d.wait_for("the config reader's output", WAIT, || {
        let out = d.berth(&["logs", "config-reader"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("level=debug").then_some(text)
    });
    assert!(logs.contains("greeting=hello"), "{logs}");
    let page = d.ok(&["exec", "config-reader", "--", "cat", "/var/www/index.html"]);
    assert!(page.contains("served from a ConfigMap"), "{page}");
    let write = d.berth(&["exec", "config-reader", "--", "touch", "/etc/app/x"]);
    assert!(!write.status.success(), "the ConfigMap volume is read-only");

    // rolling-update.yaml: rolls out.
    d.ok(&["apply", "-f", &example("rolling-update.yaml")]);
    d.ok(&["rollout", "status", "deployment/api", "--timeout", "120s"]);

    // two-apps-namespace.yaml: the frontend reaches the backend by Service name.
    d.ok(&["apply", "-f", &example("two-apps-namespace.yaml")]);
    d.ok(&[
        "rollout",
        "status",
        "-n",
        "shop",
        "deployment/backend",
        "--timeout",
        "120s",
    ]);
    d.wait_for("the frontend reaching the backend by name", WAIT, || {
        let out = d.berth(&["logs", "-n", "shop", "deployment/frontend"]);
        String::from_utf8_lossy(&out.stdout)
            .contains("backend-")
            .then_some(())
    });

    // Everything goes with the files that made it.
    for file in [
        "web.yaml",
        "crashloop.yaml",
        "configmap-volume.yaml",
        "rolling-update.yaml",
        "two-apps-namespace.yaml",
    ] {
        d.ok(&["delete", "-f", &example(file)]);
    }
    d.wait_for("no pods left", WAIT, || {
        let pods = d.json(&["get", "pods", "-A"]);
        pods["items"]
            .as_array()
            .is_some_and(Vec::is_empty)
            .then_some(())
    });
}
