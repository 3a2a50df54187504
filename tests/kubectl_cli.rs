//! The kubectl-style client commands driven through the real binary against a fake daemon: a
//! warp server on a unix socket (or TCP) in a tempdir that records every request (method, path,
//! query, headers, body) and answers what each test scripts. No root needed.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::{Arc, Mutex},
};

use berth_api::{
    apps_v1::{Deployment, DeploymentStatus},
    testing,
};
use bytes::Bytes;
use warp::{Filter, http::Response};

/// One request the fake daemon received.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    query: String,
    content_type: String,
    authorization: String,
    body: String,
}

impl Recorded {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|err| panic!("{err}: {}", self.body))
    }
}

/// A scripted answer: HTTP code and body.
type Answer = (u16, String);

type Router = Arc<dyn Fn(&Recorded) -> Option<Answer> + Send + Sync>;

struct Fake {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    requests: Arc<Mutex<Vec<Recorded>>>,
    tcp: Option<String>,
}

fn status(code: u16, reason: &str, message: &str) -> Answer {
    (
        code,
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": message, "reason": reason, "code": code})
        .to_string(),
    )
}

impl Fake {
    /// A fake daemon answering with `route` (a 404 Status for what it does not know).
    fn start(route: impl Fn(&Recorded) -> Option<Answer> + Send + Sync + 'static) -> Self {
        Self::start_with(Arc::new(route), false)
    }

    fn start_with(route: Router, tcp: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("berth.sock");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let routes = warp::method()
            .and(warp::path::full())
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and(warp::header::optional::<String>("content-type"))
            .and(warp::header::optional::<String>("authorization"))
            .and(warp::body::bytes())
            .map(
                move |method: warp::http::Method,
                      path: warp::path::FullPath,
                      query: String,
                      content_type: Option<String>,
                      authorization: Option<String>,
                      body: Bytes| {
                    let request = Recorded {
                        method: method.to_string(),
                        path: path.as_str().to_owned(),
                        query,
                        content_type: content_type.unwrap_or_default(),
                        authorization: authorization.unwrap_or_default(),
                        body: String::from_utf8_lossy(&body).into_owned(),
                    };
                    recorded.lock().unwrap().push(request.clone());
                    let (code, body) =
                        route(&request).unwrap_or_else(|| status(404, "NotFound", "not scripted"));
                    Response::builder()
                        .status(code)
                        .header("content-type", "application/json")
                        .body(body)
                        .unwrap()
                },
            );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut address = None;
        if tcp {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            address = Some(format!("http://{}", listener.local_addr().unwrap()));
            std::thread::spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    warp::serve(routes).incoming(listener).run().await;
                });
            });
        } else {
            let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
            listener.set_nonblocking(true).unwrap();
            std::thread::spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::UnixListener::from_std(listener).unwrap();
                    warp::serve(routes).incoming(listener).run().await;
                });
            });
        }
        Self {
            _dir: dir,
            socket,
            requests,
            tcp: address,
        }
    }

    fn berth(&self, args: &[&str]) -> Output {
        self.berth_in(args, Path::new(env!("CARGO_MANIFEST_DIR")))
    }

    fn berth_in(&self, args: &[&str], dir: &Path) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_berth"));
        command
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .current_dir(dir)
            .env_remove("BERTH_SERVER")
            .env_remove("BERTH_TOKEN")
            .env_remove("BERTH_SOCKET")
            .stdin(Stdio::null());
        if let Some(server) = &self.tcp {
            command.arg("--server").arg(server);
        }
        command.output().expect("run berth")
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

fn deployment_json(resource_version: &str) -> serde_json::Value {
    let mut d = testing::deployment("web").with_replicas(3).build();
    d.metadata.namespace = Some("default".into());
    d.metadata.uid = Some("uid-web".into());
    d.metadata.resource_version = Some(resource_version.into());
    serde_json::to_value(d).unwrap()
}

const WEB: &str = "/apis/apps/v1/namespaces/default/deployments/web";

#[test]
fn apply_sends_every_file_with_absolute_paths_and_prints_kubectl_lines() {
    let fake = Fake::start(|r| {
        (r.path == "/apis/berth.dev/v1/apply").then(|| {
            (
                200,
                serde_json::json!({"dryRun": false, "items": [
                    {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "default", "name": "web", "action": "created"},
                    {"apiVersion": "v1", "kind": "Service", "namespace": "default", "name": "web", "action": "unchanged"},
                    {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "default", "name": "old", "action": "pruned"}]})
                .to_string(),
            )
        })
    });
    let work = tempfile::tempdir().unwrap();
    let manifests = work.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/web.yaml"),
        manifests.join("web.yaml"),
    )
    .unwrap();
    std::fs::create_dir(manifests.join("nested")).unwrap();
    std::fs::write(manifests.join("nested/ignored.yaml"), "not: [valid").unwrap();

    let out = fake.berth_in(&["apply", "-f", "manifests", "--prune"], work.path());
    assert_ok(&out);
    assert_eq!(
        text(&out.stdout),
        "deployment.apps/web created\nservice/web unchanged\nconfigmap/old pruned\n"
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.query, "prune=true");
    assert_eq!(request.content_type, "application/json");
    let body = request.json();
    let root = std::fs::canonicalize(work.path()).unwrap();
    let files = body["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "subdirectories need -R: {body}");
    let path = files[0]["path"].as_str().unwrap();
    assert!(Path::new(path).is_absolute(), "{path}");
    assert!(path.ends_with("manifests/web.yaml"), "{path}");
    assert!(
        files[0]["content"]
            .as_str()
            .unwrap()
            .contains("kind: Deployment")
    );
    let scope = body["pruneScopes"][0].as_str().unwrap();
    assert!(
        scope.ends_with("/manifests") && Path::new(scope).is_absolute(),
        "{scope}"
    );
    let _ = root;

    // A server dry run says so, and stdin is `stdin`.
    let fake = Fake::start(|r| {
        (r.path == "/apis/berth.dev/v1/apply").then(|| {
            (
                200,
                serde_json::json!({"dryRun": true, "items": [
                    {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "action": "configured"}]})
                .to_string(),
            )
        })
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--socket")
        .arg(&fake.socket)
        .args(["apply", "--dry-run=server", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            &std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/web.yaml"))
                .unwrap(),
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_ok(&out);
    assert_eq!(
        text(&out.stdout),
        "deployment.apps/web configured (dry run)\n"
    );
    let request = &fake.requests()[0];
    assert_eq!(request.query, "dryRun=All");
    assert_eq!(request.json()["files"][0]["path"], "stdin");
}

#[test]
fn apply_shows_the_daemons_status_with_field_causes() {
    let fake = Fake::start(|_| {
        Some((
            422,
            serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "Invalid", "code": 422,
                "message": "Deployment.apps \"web\" is invalid",
                "details": {"name": "web", "kind": "Deployment", "causes": [
                    {"field": "spec.template.spec.containers[0].image", "message": "Required value", "reason": "FieldValueRequired"}]}})
            .to_string(),
        ))
    });
    let out = fake.berth(&["apply", "-f", "examples/web.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "berth: Error from server (Invalid): Deployment.apps \"web\" is invalid\n  \
         * spec.template.spec.containers[0].image: Required value\n"
    );
}

#[test]
fn a_missing_daemon_says_how_to_start_it() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nope.sock");
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--socket")
        .arg(&socket)
        .args(["get", "pods"])
        .env_remove("BERTH_SERVER")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "berth: cannot connect to the berth daemon at {}: no such file or directory; is it \
             running? Start it with: berth daemon\n",
            socket.display()
        )
    );
}

#[test]
fn scale_patches_the_scale_subresource() {
    let fake = Fake::start(|r| {
        (r.path == format!("{WEB}/scale")).then(|| (200, r#"{"spec":{"replicas":5}}"#.into()))
    });
    let out = fake.berth(&["scale", "deployment/web", "--replicas", "5"]);
    assert_ok(&out);
    assert_eq!(text(&out.stdout), "deployment.apps/web scaled\n");
    let out = fake.berth(&["scale", "-n", "default", "deploy", "web", "--replicas=0"]);
    assert_ok(&out);
    let requests = fake.requests();
    assert_eq!(requests[0].method, "PATCH");
    assert_eq!(requests[0].content_type, "application/merge-patch+json");
    assert_eq!(
        requests[0].json(),
        serde_json::json!({"spec": {"replicas": 5}})
    );
    assert_eq!(
        requests[1].json(),
        serde_json::json!({"spec": {"replicas": 0}})
    );
    let wrong = fake.berth(&["scale", "svc/web", "--replicas", "1"]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(text(&wrong.stderr).contains("not on Service"));
}

#[test]
fn rollout_undo_restart_pause_and_resume() {
    let fake =
        Fake::start(|r| (r.path.starts_with(WEB)).then(|| (200, deployment_json("7").to_string())));
    let undo = fake.berth(&["rollout", "undo", "deployment/web", "--to-revision", "2"]);
    assert_ok(&undo);
    assert_eq!(text(&undo.stdout), "deployment.apps/web rolled back\n");
    assert_ok(&fake.berth(&["rollout", "undo", "deploy/web"]));
    let restart = fake.berth(&["rollout", "restart", "deployment/web"]);
    assert_ok(&restart);
    assert_eq!(text(&restart.stdout), "deployment.apps/web restarted\n");
    assert_ok(&fake.berth(&["rollout", "pause", "deployment", "web"]));
    assert_ok(&fake.berth(&["rollout", "resume", "deployment/web"]));

    let requests = fake.requests();
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("POST", format!("{WEB}/rollback").as_str())
    );
    assert_eq!(requests[0].json(), serde_json::json!({"toRevision": 2}));
    assert_eq!(requests[1].json(), serde_json::json!({"toRevision": 0}));
    assert_eq!(
        (requests[2].method.as_str(), requests[2].path.as_str()),
        ("PATCH", WEB)
    );
    assert_eq!(requests[2].content_type, "application/merge-patch+json");
    let restarted_at = requests[2].json()["spec"]["template"]["metadata"]["annotations"]
        ["kubectl.kubernetes.io/restartedAt"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        restarted_at.parse::<berth_api::time::Time>().is_ok(),
        "{restarted_at}"
    );
    assert_eq!(
        requests[3].json(),
        serde_json::json!({"spec": {"paused": true}})
    );
    assert_eq!(
        requests[4].json(),
        serde_json::json!({"spec": {"paused": false}})
    );
}

#[test]
fn set_image_puts_the_read_version_and_retries_a_conflict() {
    let puts = Arc::new(Mutex::new(0));
    let counter = puts.clone();
    let fake = Fake::start(move |r| match r.method.as_str() {
        "GET" if r.path == WEB => {
            let version = 5 + *counter.lock().unwrap();
            Some((200, deployment_json(&version.to_string()).to_string()))
        }
        "PUT" if r.path == WEB => {
            let mut count = counter.lock().unwrap();
            *count += 1;
            Some(if *count == 1 {
                status(409, "Conflict", "the object has been modified")
            } else {
                (200, r.body.clone())
            })
        }
        _ => None,
    });
    let out = fake.berth(&["set", "image", "deployment/web", "web=busybox:1.37"]);
    assert_ok(&out);
    assert_eq!(text(&out.stdout), "deployment.apps/web image updated\n");
    let requests = fake.requests();
    let methods: Vec<&str> = requests.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["GET", "PUT", "GET", "PUT"]);
    let first = requests[1].json();
    assert_eq!(first["metadata"]["resourceVersion"], "5");
    let last = requests[3].json();
    assert_eq!(last["metadata"]["resourceVersion"], "6");
    assert_eq!(
        last["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox:1.37"
    );

    let missing = fake.berth(&["set", "image", "deployment/web", "nope=busybox"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("unable to find container named \"nope\""),
        "{}",
        text(&missing.stderr)
    );
}

#[test]
fn delete_by_name_reports_each_and_fails_for_a_missing_one() {
    let fake = Fake::start(|r| {
        (r.method == "DELETE" && r.path == "/api/v1/namespaces/prod/pods/a")
            .then(|| (200, "{}".into()))
            .or_else(|| {
                (r.method == "DELETE").then(|| status(404, "NotFound", "pods \"b\" not found"))
            })
    });
    let out = fake.berth(&["delete", "pod", "a", "b", "-n", "prod", "--now"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "pod \"a\" deleted\n");
    assert_eq!(
        text(&out.stderr),
        "Error from server (NotFound): pods \"b\" not found\n"
    );
    let requests = fake.requests();
    assert_eq!(requests[0].query, "gracePeriodSeconds=1");
    assert_eq!(requests[1].path, "/api/v1/namespaces/prod/pods/b");

    let fake = Fake::start(|r| (r.method == "DELETE").then(|| (200, "{}".into())));
    let out = fake.berth(&["delete", "-f", "examples/web.yaml", "--grace-period", "5"]);
    assert_ok(&out);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("deployment.apps \"web\" deleted"),
        "{stdout}"
    );
    assert!(stdout.contains("service \"web\" deleted"), "{stdout}");
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.query == "gracePeriodSeconds=5")
    );
}

fn pod_list() -> String {
    let mut pod = testing::pod("web-1").build();
    pod.metadata.namespace = Some("default".into());
    let mut item = serde_json::to_value(pod).unwrap();
    // Lists may leave out apiVersion and kind of their items.
    item.as_object_mut().unwrap().remove("kind");
    serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "12"}, "items": [item]})
        .to_string()
}

#[test]
fn get_prints_tables_names_and_selects() {
    let fake = Fake::start(|r| match r.path.as_str() {
        "/api/v1/namespaces/default/pods" => Some((200, pod_list())),
        "/api/v1/pods" => Some((200, pod_list())),
        "/api/v1/namespaces/default/pods/gone" => {
            Some(status(404, "NotFound", "pods \"gone\" not found"))
        }
        _ => None,
    });
    let out = fake.berth(&[
        "get",
        "po",
        "-l",
        "app=web",
        "--field-selector",
        "status.phase=Running",
    ]);
    assert_ok(&out);
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("NAME    READY   STATUS    RESTARTS   AGE"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("web-1   0/1     Pending   0          "),
        "{stdout}"
    );
    assert_eq!(
        fake.requests()[0].query,
        "labelSelector=app%3Dweb&fieldSelector=status.phase%3DRunning"
    );

    let all = fake.berth(&["get", "pods", "-A", "--no-headers"]);
    assert_ok(&all);
    assert!(
        text(&all.stdout).starts_with("default   web-1   0/1"),
        "{}",
        text(&all.stdout)
    );

    let names = fake.berth(&["get", "pods", "-o", "name"]);
    assert_eq!(text(&names.stdout), "pod/web-1\n");

    let missing = fake.berth(&["get", "pod", "gone"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        text(&missing.stderr),
        "Error from server (NotFound): pods \"gone\" not found\n"
    );
}

#[test]
fn get_watch_prints_a_row_per_event() {
    let fake = Fake::start(|r| match (r.path.as_str(), r.query.as_str()) {
        ("/api/v1/namespaces/default/pods", "") => Some((200, pod_list())),
        ("/api/v1/namespaces/default/pods", "watch=true&resourceVersion=12") => {
            let mut pod = testing::pod("web-1").build();
            pod.metadata.deletion_timestamp = Some("2024-01-01T00:00:00Z".parse().unwrap());
            let event = serde_json::json!({"type": "MODIFIED", "object": pod});
            Some((200, format!("{event}\n")))
        }
        _ => None,
    });
    let out = fake.berth(&["get", "pods", "-w"]);
    assert_ok(&out);
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[2].starts_with("web-1   0/1     Terminating   0"),
        "{stdout}"
    );
}

#[test]
fn get_watch_lists_again_after_410_gone() {
    let lists = Arc::new(Mutex::new(0));
    let fake = Fake::start(move |r| match (r.path.as_str(), r.query.as_str()) {
        ("/api/v1/namespaces/default/pods", "") => {
            let mut count = lists.lock().unwrap();
            *count += 1;
            Some((
                200,
                pod_list().replace("\"12\"", &format!("\"{}\"", 11 + *count)),
            ))
        }
        ("/api/v1/namespaces/default/pods", "watch=true&resourceVersion=12") => {
            let gone = status(410, "Expired", "too old resource version: 12");
            let event = format!("{{\"type\":\"ERROR\",\"object\":{}}}\n", gone.1);
            Some((200, event))
        }
        ("/api/v1/namespaces/default/pods", "watch=true&resourceVersion=13") => {
            let pod = testing::pod("web-2").build();
            let event = serde_json::json!({"type": "ADDED", "object": pod});
            Some((200, format!("{event}\n")))
        }
        _ => None,
    });
    let out = fake.berth(&["get", "pods", "--watch"]);
    assert_ok(&out);
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[2].starts_with("web-2   0/1"), "{stdout}");
}

#[test]
fn rollout_status_follows_the_watch_until_done() {
    let waiting = {
        let mut d: Deployment = serde_json::from_value(deployment_json("3")).unwrap();
        d.metadata.generation = Some(2);
        d.status = Some(DeploymentStatus {
            observed_generation: Some(2),
            replicas: 3,
            updated_replicas: 3,
            available_replicas: 1,
            ..DeploymentStatus::default()
        });
        d
    };
    let mut done = waiting.clone();
    if let Some(status) = done.status.as_mut() {
        status.available_replicas = 3;
    }
    let events: VecDeque<String> = [waiting.clone(), done]
        .into_iter()
        .map(|d| serde_json::json!({"type": "MODIFIED", "object": d}).to_string())
        .collect();
    let stream = events.into_iter().collect::<Vec<_>>().join("\n") + "\n";
    let first = serde_json::to_string(&waiting).unwrap();
    let fake = Fake::start(move |r| match r.path.as_str() {
        p if p == WEB => Some((200, first.clone())),
        "/apis/apps/v1/namespaces/default/deployments" => {
            assert_eq!(
                r.query,
                "watch=true&resourceVersion=3&fieldSelector=metadata.name%3Dweb"
            );
            Some((200, stream.clone()))
        }
        _ => None,
    });
    let out = fake.berth(&["rollout", "status", "deployment/web", "--timeout", "30s"]);
    assert_ok(&out);
    assert_eq!(
        text(&out.stdout),
        "Waiting for deployment \"web\" rollout to finish: 1 of 3 updated replicas are available...\n\
         deployment \"web\" successfully rolled out\n"
    );
}

#[test]
fn exec_and_logs_through_the_daemon() {
    let fake = Fake::start(|r| match r.path.as_str() {
        "/api/v1/namespaces/default/pods/web-1/exec" => Some((
            200,
            r#"{"exitCode":3,"stdout":"hi\n","stderr":"oops\n"}"#.into(),
        )),
        "/api/v1/namespaces/default/pods/web-1/log" => Some((200, "line 1\nline 2\n".into())),
        _ => None,
    });
    let out = fake.berth(&[
        "exec",
        "web-1",
        "-c",
        "web",
        "--",
        "sh",
        "-c",
        "echo hi; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hi\n");
    assert_eq!(text(&out.stderr), "oops\n");
    let logs = fake.berth(&["logs", "web-1", "--tail", "2", "--timestamps", "-f"]);
    assert_ok(&logs);
    assert_eq!(text(&logs.stdout), "line 1\nline 2\n");
    let requests = fake.requests();
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].query, "container=web");
    assert_eq!(
        requests[0].json(),
        serde_json::json!({"command": ["sh", "-c", "echo hi; exit 3"]})
    );
    assert_eq!(requests[1].query, "follow=true&tailLines=2&timestamps=true");
}

#[test]
fn tcp_server_sends_the_bearer_token() {
    let fake = Fake::start_with(
        Arc::new(|r: &Recorded| {
            (r.path == "/api/v1/namespaces/default/pods").then(|| (200, pod_list()))
        }),
        true,
    );
    let token = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token.path(), "s3cret\n").unwrap();
    let out = fake.berth(&[
        "get",
        "pods",
        "--token-file",
        token.path().to_str().unwrap(),
    ]);
    assert_ok(&out);
    assert_eq!(fake.requests()[0].authorization, "Bearer s3cret");
}
