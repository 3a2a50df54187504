//! End to end, as root: a busybox httpd pod with `hostPort: 18181` in the real `berth daemon`
//! answers on `127.0.0.1:18181` (the proxy publishes it on `0.0.0.0`); a second pod asking for
//! the same host port gets a `FailedHostPort` Warning naming the holder; deleting the first pod
//! hands the port to the second. The page the first pod serves is its
//! `HOSTPORT_SVC_SERVICE_HOST`, so the test also shows the kubelet-style service environment of
//! a Service that existed when the container started.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use support::{Env, daemon::Daemon};

const WAIT: Duration = Duration::from_secs(120);
const HOST_PORT: u16 = 18181;

const SERVICE: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: hostport-svc
spec:
  selector:
    app: nothing
  ports:
    - name: http
      port: 8080
"#;

fn pod(name: &str, page: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: httpd
      image: busybox
      command: ["sh", "-c", "mkdir -p /www && echo {page} > /www/index.html && exec httpd -f -p 8080 -h /www"]
      ports:
        - containerPort: 8080
          hostPort: {HOST_PORT}
"#
    )
}

/// The body of `GET /`, when the answer is a 200.
fn get(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    if !response.starts_with("HTTP/1.0 200") && !response.starts_with("HTTP/1.1 200") {
        return None;
    }
    let (_, body) = response.split_once("\r\n\r\n")?;
    Some(body.trim().to_owned())
}

fn phase(d: &Daemon, pod: &str) -> String {
    d.json(&["get", "pod", pod])["status"]["phase"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Messages of the `FailedHostPort` events about `pod`.
fn host_port_warnings(d: &Daemon, pod: &str) -> Vec<String> {
    d.json(&["get", "events"])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| {
            e["involvedObject"]["name"] == pod
                && e["reason"] == "FailedHostPort"
                && e["type"] == "Warning"
        })
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn host_port_reaches_the_pod_and_a_clash_is_a_warning() {
    let Some(env) = Env::new() else { return };
    let d = Daemon::start(&env, &[]);
    d.apply("service.yaml", SERVICE);
    let cluster_ip = d.wait_for("the Service's cluster IP", WAIT, || {
        d.json(&["get", "service", "hostport-svc"])["spec"]["clusterIP"]
            .as_str()
            .filter(|ip| !ip.is_empty())
            .map(str::to_owned)
    });

    d.apply("first.yaml", &pod("first", "$HOSTPORT_SVC_SERVICE_HOST"));
    let addr: SocketAddr = format!("127.0.0.1:{HOST_PORT}").parse().unwrap();
    let page = d.wait_for("the host port answering", WAIT, || get(addr));
    assert_eq!(page, cluster_ip, "the page is the Service's env var");

    d.apply("second.yaml", &pod("second", "second"));
    d.wait_for("the second pod Running", WAIT, || {
        (phase(&d, "second") == "Running").then_some(())
    });
    let warnings = d.wait_for("the FailedHostPort warning", WAIT, || {
        let warnings = host_port_warnings(&d, "second");
        (!warnings.is_empty()).then_some(warnings)
    });
    assert!(
        warnings
            .iter()
            .any(|m| m.contains(&HOST_PORT.to_string()) && m.contains("default/first")),
        "the warning names the port and the holder: {warnings:?}"
    );
    assert_eq!(get(addr).as_deref(), Some(cluster_ip.as_str()));
    assert!(host_port_warnings(&d, "first").is_empty());

    // The holder goes: the port follows to the other pod.
    d.ok(&["delete", "pod", "first"]);
    let page = d.wait_for("the second pod behind the host port", WAIT, || {
        get(addr).filter(|page| page == "second")
    });
    assert_eq!(page, "second");
}
