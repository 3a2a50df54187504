//! The API in-process (`warp::test`) and over real sockets in a tempdir, on an in-memory store
//! and a fake node.

use std::{
    os::unix::fs::PermissionsExt,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use berth_api::core_v1::Pod;
use berth_apiserver::{
    ApiState, BODY_LIMIT, ExecOutput, LogOptions, Node, NodeError,
    apply::{ApplyAction, ApplyRequest, ApplyResponse, ManifestFile},
    routes, serve_tcp_listener, serve_unix, tcp_routes,
};
use berth_store::{Options, RedbStore};
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Logs are `"<container> line N\n"`; exec echoes the command and records the calls.
#[derive(Default)]
struct FakeNode {
    calls: Mutex<Vec<String>>,
}

#[async_trait]
impl Node for FakeNode {
    async fn logs(
        &self,
        pod: &Pod,
        container: &str,
        options: &LogOptions,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>, NodeError> {
        self.calls.lock().unwrap().push(format!(
            "logs {}/{container} tail={:?}",
            pod.metadata.name(),
            options.tail_lines
        ));
        let lines: Vec<std::io::Result<Bytes>> = (1..=3)
            .map(|n| Ok(Bytes::from(format!("{container} line {n}\n"))))
            .collect();
        Ok(stream::iter(lines).boxed())
    }

    async fn exec(
        &self,
        pod: &Pod,
        container: &str,
        command: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecOutput, NodeError> {
        self.calls.lock().unwrap().push(format!(
            "exec {}/{container} {command:?} {}s",
            pod.metadata.name(),
            timeout.as_secs()
        ));
        if command[0] == "missing" {
            return Err(NodeError::NotFound(format!(
                "container {container} is not running"
            )));
        }
        Ok(ExecOutput {
            exit_code: 3,
            stdout: command.join(" "),
            stderr: String::new(),
        })
    }
}

fn state_with(store: RedbStore, token: Option<&str>) -> (ApiState, Arc<FakeNode>) {
    let node = Arc::new(FakeNode::default());
    let mut builder = ApiState::builder(store, node.clone());
    if let Some(token) = token {
        builder = builder.token(token);
    }
    (builder.build().unwrap(), node)
}

fn state() -> ApiState {
    state_with(RedbStore::open_in_memory(Options::default()).unwrap(), None).0
}

struct Answer {
    code: u16,
    body: Value,
    text: String,
}

async fn call(state: &ApiState, method: &str, path: &str, body: Option<Value>) -> Answer {
    let mut request = warp::test::request().method(method).path(path);
    if let Some(body) = body {
        let content_type = if method == "PATCH" {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        request = request
            .header("content-type", content_type)
            .body(serde_json::to_vec(&body).unwrap());
    }
    let response = request.reply(&routes(state.clone())).await;
    let text = String::from_utf8_lossy(response.body()).into_owned();
    Answer {
        code: response.status().as_u16(),
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

fn config_map(name: &str, labels: Value, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": data})
}

fn pod(name: &str, containers: &[&str]) -> Value {
    let containers: Vec<Value> = containers
        .iter()
        .map(|c| json!({"name": c, "image": "busybox:1.36"}))
        .collect();
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": containers}})
}

fn deployment(name: &str, replicas: i32, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": image}]}
            }
        }
    })
}

const CONFIG_MAPS: &str = "/api/v1/namespaces/default/configmaps";

#[tokio::test]
async fn crud_round_trip_with_resource_versions_and_conflicts() {
    let state = state();
    let created = call(
        &state,
        "POST",
        CONFIG_MAPS,
        Some(config_map("cfg", json!({}), json!({"a": "1"}))),
    )
    .await;
    assert_eq!(created.code, 201, "{}", created.text);
    let first_version = created.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(created.body["metadata"]["uid"].is_string());

    let read = call(&state, "GET", &format!("{CONFIG_MAPS}/cfg"), None).await;
    assert_eq!(read.code, 200);
    assert_eq!(read.body, created.body);

    let mut changed = read.body.clone();
    changed["data"]["a"] = json!("2");
    let updated = call(
        &state,
        "PUT",
        &format!("{CONFIG_MAPS}/cfg"),
        Some(changed.clone()),
    )
    .await;
    assert_eq!(updated.code, 200, "{}", updated.text);
    assert_eq!(updated.body["data"]["a"], "2");
    assert_ne!(updated.body["metadata"]["resourceVersion"], first_version);

    // The version read before the update is stale now.
    changed["data"]["a"] = json!("3");
    let stale = call(&state, "PUT", &format!("{CONFIG_MAPS}/cfg"), Some(changed)).await;
    assert_eq!(stale.code, 409, "{}", stale.text);
    assert_eq!(stale.body["kind"], "Status");
    assert_eq!(stale.body["reason"], "Conflict");
    assert!(stale.text.contains(&first_version), "{}", stale.text);

    let patched = call(
        &state,
        "PATCH",
        &format!("{CONFIG_MAPS}/cfg"),
        Some(json!({"data": {"a": null, "b": "x"}})),
    )
    .await;
    assert_eq!(patched.code, 200, "{}", patched.text);
    assert_eq!(patched.body["data"], json!({"b": "x"}));

    let duplicate = call(
        &state,
        "POST",
        CONFIG_MAPS,
        Some(config_map("cfg", json!({}), json!({}))),
    )
    .await;
    assert_eq!(
        (duplicate.code, duplicate.body["reason"].as_str()),
        (409, Some("AlreadyExists"))
    );

    let deleted = call(&state, "DELETE", &format!("{CONFIG_MAPS}/cfg"), None).await;
    assert_eq!(deleted.code, 200, "{}", deleted.text);
    let gone = call(&state, "GET", &format!("{CONFIG_MAPS}/cfg"), None).await;
    assert_eq!(gone.code, 404);
    assert_eq!(gone.body["kind"], "Status");
    assert_eq!(gone.body["reason"], "NotFound");
    assert_eq!(gone.body["details"]["name"], "cfg");
}

#[tokio::test]
async fn bad_requests_are_status_objects() {
    let state = state();
    let invalid = call(
        &state,
        "POST",
        "/api/v1/namespaces/default/pods",
        Some(pod("p", &[])),
    )
    .await;
    assert_eq!(invalid.code, 422, "{}", invalid.text);
    assert_eq!(invalid.body["reason"], "Invalid");
    assert_eq!(
        invalid.body["details"]["causes"][0]["field"],
        "spec.containers"
    );

    let unknown = call(&state, "GET", "/api/v1/namespaces/default/widgets", None).await;
    assert_eq!(unknown.code, 404);
    assert_eq!(unknown.body["kind"], "Status");
    assert!(unknown.text.contains("widgets"), "{}", unknown.text);

    let response = warp::test::request()
        .method("POST")
        .path(CONFIG_MAPS)
        .body("{\"metadata\": {\"name\": \"x\",}")
        .reply(&routes(state.clone()))
        .await;
    assert_eq!(response.status(), 400);
    let text = String::from_utf8_lossy(response.body());
    assert!(text.contains("line 1, column"), "{text}");

    let mut other_namespace = config_map("cfg", json!({}), json!({}));
    other_namespace["metadata"]["namespace"] = json!("team");
    let mismatch = call(&state, "POST", CONFIG_MAPS, Some(other_namespace)).await;
    assert_eq!(mismatch.code, 400, "{}", mismatch.text);
    assert!(mismatch.text.contains("\\\"team\\\""), "{}", mismatch.text);

    let wrong_kind = call(&state, "POST", CONFIG_MAPS, Some(pod("p", &["c"]))).await;
    assert_eq!(wrong_kind.code, 400, "{}", wrong_kind.text);

    let unknown_field = call(
        &state,
        "POST",
        CONFIG_MAPS,
        Some(json!({"metadata": {"name": "x"}, "dta": {}})),
    )
    .await;
    assert_eq!(unknown_field.code, 400, "{}", unknown_field.text);
    assert!(unknown_field.text.contains("dta"), "{}", unknown_field.text);

    let not_allowed = call(&state, "DELETE", CONFIG_MAPS, None).await;
    assert_eq!(not_allowed.code, 405);

    let no_namespace = call(
        &state,
        "POST",
        "/api/v1/namespaces/nowhere/configmaps",
        Some(config_map("x", json!({}), json!({}))),
    )
    .await;
    assert_eq!(no_namespace.code, 404, "{}", no_namespace.text);

    let wrong_patch_type = warp::test::request()
        .method("PATCH")
        .path(&format!("{CONFIG_MAPS}/x"))
        .header("content-type", "application/json-patch+json")
        .body("[]")
        .reply(&routes(state.clone()))
        .await;
    assert_eq!(wrong_patch_type.status(), 415);
}

#[tokio::test]
async fn lists_filter_by_label_and_field_selectors() {
    let state = state();
    for (name, tier) in [("a", "web"), ("b", "db"), ("c", "web")] {
        let answer = call(
            &state,
            "POST",
            CONFIG_MAPS,
            Some(config_map(name, json!({"tier": tier}), json!({}))),
        )
        .await;
        assert_eq!(answer.code, 201);
    }
    let namespace = call(
        &state,
        "POST",
        "/api/v1/namespaces",
        Some(json!({"metadata": {"name": "team"}})),
    )
    .await;
    assert_eq!(namespace.code, 201, "{}", namespace.text);
    let other = call(
        &state,
        "POST",
        "/api/v1/namespaces/team/configmaps",
        Some(config_map("d", json!({"tier": "web"}), json!({}))),
    )
    .await;
    assert_eq!(other.code, 201, "{}", other.text);

    let names = |answer: &Answer| -> Vec<String> {
        answer.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = call(&state, "GET", CONFIG_MAPS, None).await;
    assert_eq!(all.body["kind"], "ConfigMapList");
    assert_eq!(all.body["apiVersion"], "v1");
    assert!(all.body["metadata"]["resourceVersion"].is_string());
    assert_eq!(names(&all), ["a", "b", "c"]);

    let web = call(
        &state,
        "GET",
        &format!("{CONFIG_MAPS}?labelSelector=tier%3Dweb"),
        None,
    )
    .await;
    assert_eq!(names(&web), ["a", "c"]);
    let not_web = call(
        &state,
        "GET",
        &format!("{CONFIG_MAPS}?labelSelector=tier+notin+(web)"),
        None,
    )
    .await;
    assert_eq!(names(&not_web), ["b"]);
    let by_name = call(
        &state,
        "GET",
        &format!("{CONFIG_MAPS}?fieldSelector=metadata.name!%3Da&labelSelector=tier%3Dweb"),
        None,
    )
    .await;
    assert_eq!(names(&by_name), ["c"]);
    let everywhere = call(
        &state,
        "GET",
        "/api/v1/configmaps?labelSelector=tier=web",
        None,
    )
    .await;
    assert_eq!(names(&everywhere), ["a", "c", "d"]);
    let team = call(
        &state,
        "GET",
        "/api/v1/configmaps?fieldSelector=metadata.namespace=team",
        None,
    )
    .await;
    assert_eq!(names(&team), ["d"]);
    let unsupported = call(
        &state,
        "GET",
        &format!("{CONFIG_MAPS}?fieldSelector=data.x=1"),
        None,
    )
    .await;
    assert_eq!(unsupported.code, 400);
    assert!(
        unsupported.text.contains("metadata.name"),
        "{}",
        unsupported.text
    );
}

/// A minimal HTTP/1.1 client over a unix socket: the response head and the body so far.
async fn send_raw(
    stream: &mut tokio::net::UnixStream,
    method: &str,
    path: &str,
    body: Option<&Value>,
) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: berth\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
}

/// Reads until `count` watch event lines have arrived; returns them parsed.
async fn read_events(
    stream: &mut tokio::net::UnixStream,
    buffer: &mut Vec<u8>,
    count: usize,
) -> Vec<Value> {
    loop {
        let text = String::from_utf8_lossy(buffer).into_owned();
        let events: Vec<Value> = text
            .split(['\r', '\n'])
            .filter(|l| l.starts_with("{\"type\""))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if events.len() >= count {
            return events;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("watch events within 10s")
            .unwrap();
        assert!(n > 0, "the stream ended after {text:?}");
        buffer.extend_from_slice(&chunk[..n]);
    }
}

async fn unix_request(
    socket: &std::path::Path,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> String {
    let mut stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    send_raw(&mut stream, method, path, body.as_ref()).await;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn watch_streams_events_over_the_unix_socket_and_ends_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("run/berth.sock");
    let state = state();
    state
        .store()
        .create(berth_api::core_v1::ConfigMap {
            metadata: berth_api::ObjectMeta {
                name: Some("before".into()),
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_unix(socket.clone(), state.clone(), async move {
        let _ = stopped.await;
    }));
    for _ in 0..100 {
        if socket.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let mut watch = tokio::net::UnixStream::connect(&socket).await.unwrap();
    send_raw(
        &mut watch,
        "GET",
        &format!("{CONFIG_MAPS}?watch=true&labelSelector=app%3Dweb"),
        None,
    )
    .await;
    // The initial state (filtered: `before` has no labels) is empty; then live events.
    let created = unix_request(
        &socket,
        "POST",
        CONFIG_MAPS,
        Some(config_map("cfg", json!({"app": "web"}), json!({}))),
    )
    .await;
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    unix_request(
        &socket,
        "POST",
        CONFIG_MAPS,
        Some(config_map("other", json!({"app": "db"}), json!({}))),
    )
    .await;
    let patched = unix_request(&socket, "PATCH", &format!("{CONFIG_MAPS}/cfg"), None).await;
    assert!(patched.starts_with("HTTP/1.1 415"), "{patched}");
    let current = state
        .store()
        .get(&berth_api::ObjectKey {
            kind: "ConfigMap",
            namespace: Some("default".into()),
            name: "cfg".into(),
        })
        .await
        .unwrap();
    let mut changed = serde_json::to_value(&current).unwrap();
    changed["data"] = json!({"k": "v"});
    let updated = unix_request(&socket, "PUT", &format!("{CONFIG_MAPS}/cfg"), Some(changed)).await;
    assert!(updated.starts_with("HTTP/1.1 200"), "{updated}");
    unix_request(&socket, "DELETE", &format!("{CONFIG_MAPS}/cfg"), None).await;

    let mut buffer = Vec::new();
    let events = read_events(&mut watch, &mut buffer, 3).await;
    let summary: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["object"]["metadata"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("ADDED".into(), "cfg".into()),
            ("MODIFIED".into(), "cfg".into()),
            ("DELETED".into(), "cfg".into())
        ]
    );
    let head = String::from_utf8_lossy(&buffer);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );

    // A second daemon on the same socket is refused.
    let second = serve_unix(socket.clone(), state.clone(), async {}).await;
    assert!(
        second
            .unwrap_err()
            .to_string()
            .contains("another berth daemon")
    );

    // Shutdown ends the watch stream and the server.
    stop.send(()).unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), watch.read_to_end(&mut rest))
        .await
        .expect("the watch ends on shutdown")
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn stale_sockets_are_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("berth.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let state = state();
    let server = tokio::spawn(serve_unix(socket.clone(), state, async {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let health = unix_request(&socket, "GET", "/healthz", None).await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    server.await.unwrap().unwrap();
    // A file that is not a socket is never removed.
    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, "data").unwrap();
    let refused = serve_unix(
        file.clone(),
        state_with(RedbStore::open_in_memory(Options::default()).unwrap(), None).0,
        async {},
    )
    .await;
    assert!(refused.unwrap_err().to_string().contains("not a socket"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "data");
}

#[tokio::test]
async fn watch_from_a_compacted_resource_version_is_an_error_event() {
    let store = RedbStore::open_in_memory(Options {
        retained_events: 1,
        ..Options::default()
    })
    .unwrap();
    let (state, _) = state_with(store, None);
    for name in ["a", "b", "c"] {
        call(
            &state,
            "POST",
            CONFIG_MAPS,
            Some(config_map(name, json!({}), json!({}))),
        )
        .await;
    }
    state.store().compact().await.unwrap();
    let answer = call(
        &state,
        "GET",
        &format!("{CONFIG_MAPS}?watch=true&resourceVersion=1"),
        None,
    )
    .await;
    assert_eq!(answer.code, 200);
    let lines: Vec<&str> = answer.text.lines().collect();
    assert_eq!(lines.len(), 1, "{}", answer.text);
    let event: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(event["type"], "ERROR");
    assert_eq!(event["object"]["code"], 410);
    assert_eq!(event["object"]["reason"], "Expired");

    let bad = call(
        &state,
        "GET",
        &format!("{CONFIG_MAPS}?watch=true&resourceVersion=x"),
        None,
    )
    .await;
    assert_eq!(bad.code, 400);

    // Without a resourceVersion: the current state, then (here) the end at shutdown.
    let watcher = {
        let state = state.clone();
        tokio::spawn(
            async move { call(&state, "GET", &format!("{CONFIG_MAPS}?watch=1"), None).await },
        )
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    state.begin_shutdown();
    let answer = tokio::time::timeout(Duration::from_secs(10), watcher)
        .await
        .unwrap()
        .unwrap();
    let types: Vec<String> = answer
        .text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(types, ["ADDED", "ADDED", "ADDED"]);
    // timeoutSeconds ends the stream on its own.
    let state = state_with(RedbStore::open_in_memory(Options::default()).unwrap(), None).0;
    call(
        &state,
        "POST",
        CONFIG_MAPS,
        Some(config_map("a", json!({}), json!({}))),
    )
    .await;
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        call(
            &state,
            "GET",
            &format!("{CONFIG_MAPS}?watch=true&timeoutSeconds=1&fieldSelector=metadata.name%3Da"),
            None,
        ),
    )
    .await
    .expect("the watch ends after timeoutSeconds");
    assert_eq!(answer.text.lines().count(), 1, "{}", answer.text);
}

fn file(path: &str, content: &str) -> ManifestFile {
    ManifestFile {
        path: path.into(),
        content: content.into(),
    }
}

async fn apply_http(state: &ApiState, query: &str, request: &ApplyRequest) -> Answer {
    call(
        state,
        "POST",
        &format!("/apis/berth.dev/v1/apply{query}"),
        Some(serde_json::to_value(request).unwrap()),
    )
    .await
}

fn actions(response: &ApplyResponse) -> Vec<(String, ApplyAction)> {
    response
        .items
        .iter()
        .map(|i| (format!("{}/{}", i.kind, i.name), i.action))
        .collect()
}

const WEB: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: team}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: busybox:1.36}]
---
apiVersion: v1
kind: Namespace
metadata: {name: team}
";

#[tokio::test]
async fn apply_creates_configures_leaves_unchanged_and_prunes() {
    let state = state();
    let config = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: '1'}\n";
    let request = ApplyRequest {
        files: vec![file("web.yaml", WEB), file("cfg.yaml", config)],
        source_prefix: Some("/etc/berth".into()),
        prune_scopes: vec!["/etc/berth".into()],
    };
    let answer = apply_http(&state, "", &request).await;
    assert_eq!(answer.code, 200, "{}", answer.text);
    let response: ApplyResponse = serde_json::from_value(answer.body).unwrap();
    // Namespaces first, whatever the file order.
    assert_eq!(
        actions(&response),
        [
            ("Namespace/team".into(), ApplyAction::Created),
            ("ConfigMap/cfg".into(), ApplyAction::Created),
            ("Deployment/web".into(), ApplyAction::Created),
        ]
    );
    let stored = call(
        &state,
        "GET",
        "/api/v1/namespaces/default/configmaps/cfg",
        None,
    )
    .await;
    assert_eq!(
        stored.body["metadata"]["annotations"]["berth.dev/source"],
        "/etc/berth/cfg.yaml"
    );

    let again = berth_apiserver::apply::apply(state.store(), request.clone(), false, true)
        .await
        .unwrap();
    assert!(
        again
            .items
            .iter()
            .all(|i| i.action == ApplyAction::Unchanged),
        "{again:?}"
    );

    // The config map changes, the deployment's file is gone: configured and pruned.
    let changed = ApplyRequest {
        files: vec![file("cfg.yaml", &config.replace("'1'", "'2'"))],
        ..request.clone()
    };
    let dry = apply_http(&state, "?dryRun=All&prune=true", &changed).await;
    let dry: ApplyResponse = serde_json::from_value(dry.body).unwrap();
    assert!(dry.dry_run);
    assert_eq!(
        actions(&dry),
        [
            ("ConfigMap/cfg".into(), ApplyAction::Configured),
            ("Deployment/web".into(), ApplyAction::Pruned),
            ("Namespace/team".into(), ApplyAction::Pruned),
        ]
    );
    // The dry run wrote nothing.
    let web = call(
        &state,
        "GET",
        "/apis/apps/v1/namespaces/team/deployments/web",
        None,
    )
    .await;
    assert_eq!(web.code, 200);
    let cfg = call(
        &state,
        "GET",
        "/api/v1/namespaces/default/configmaps/cfg",
        None,
    )
    .await;
    assert_eq!(cfg.body["data"]["a"], "1");

    let answer = apply_http(&state, "?prune=true", &changed).await;
    let response: ApplyResponse = serde_json::from_value(answer.body).unwrap();
    assert_eq!(actions(&response), actions(&dry));
    let web = call(
        &state,
        "GET",
        "/apis/apps/v1/namespaces/team/deployments/web",
        None,
    )
    .await;
    assert_eq!(web.code, 404);
    let cfg = call(
        &state,
        "GET",
        "/api/v1/namespaces/default/configmaps/cfg",
        None,
    )
    .await;
    assert_eq!(cfg.body["data"]["a"], "2");
}

#[tokio::test]
async fn apply_is_all_or_nothing_and_names_file_document_and_field() {
    let state = state();
    let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: broken}\nspec:\n  replicas: -1\n  selector: {matchLabels: {app: b}}\n  template:\n    metadata: {labels: {app: b}}\n    spec:\n      containers: [{name: b, image: busybox}]\n";
    let request = ApplyRequest {
        files: vec![
            file(
                "a.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
            ),
            file("b.yaml", WEB),
            file("c.yaml", bad),
        ],
        ..ApplyRequest::default()
    };
    let answer = apply_http(&state, "", &request).await;
    assert_eq!(answer.code, 422, "{}", answer.text);
    let causes = answer.body["details"]["causes"].as_array().unwrap();
    assert_eq!(causes.len(), 1, "{causes:?}");
    assert_eq!(causes[0]["field"], "spec.replicas");
    let message = causes[0]["message"].as_str().unwrap();
    assert!(message.starts_with("c.yaml: document 2"), "{message}");
    assert!(message.contains("spec.replicas"), "{message}");
    for path in [
        "/api/v1/namespaces/default/configmaps/a",
        "/api/v1/namespaces/team",
        "/api/v1/namespaces/default/configmaps/fine",
    ] {
        assert_eq!(
            call(&state, "GET", path, None).await.code,
            404,
            "{path} was written"
        );
    }
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let state = state();
    let created = call(
        &state,
        "POST",
        &format!("{CONFIG_MAPS}?dryRun=All"),
        Some(config_map("cfg", json!({}), json!({}))),
    )
    .await;
    assert_eq!(created.code, 201, "{}", created.text);
    assert_eq!(created.body["metadata"]["namespace"], "default");
    assert_eq!(
        call(&state, "GET", &format!("{CONFIG_MAPS}/cfg"), None)
            .await
            .code,
        404
    );
    let invalid = call(
        &state,
        "POST",
        "/api/v1/namespaces/default/pods?dryRun=All",
        Some(pod("p", &[])),
    )
    .await;
    assert_eq!(invalid.code, 422);
    let stored = call(
        &state,
        "POST",
        CONFIG_MAPS,
        Some(config_map("cfg", json!({}), json!({"a": "1"}))),
    )
    .await;
    let mut changed = stored.body.clone();
    changed["data"]["a"] = json!("2");
    let dry_put = call(
        &state,
        "PUT",
        &format!("{CONFIG_MAPS}/cfg?dryRun=All"),
        Some(changed.clone()),
    )
    .await;
    assert_eq!(dry_put.code, 200, "{}", dry_put.text);
    assert_eq!(dry_put.body["data"]["a"], "2");
    let dry_patch = call(
        &state,
        "PATCH",
        &format!("{CONFIG_MAPS}/cfg?dryRun=All"),
        Some(json!({"data": {"a": "3"}})),
    )
    .await;
    assert_eq!(dry_patch.body["data"]["a"], "3");
    let dry_delete = call(
        &state,
        "DELETE",
        &format!("{CONFIG_MAPS}/cfg?dryRun=All"),
        None,
    )
    .await;
    assert_eq!(dry_delete.code, 200);
    let unchanged = call(&state, "GET", &format!("{CONFIG_MAPS}/cfg"), None).await;
    assert_eq!(unchanged.body, stored.body);
    changed["metadata"]["resourceVersion"] = json!("0");
    let stale = call(
        &state,
        "PUT",
        &format!("{CONFIG_MAPS}/cfg?dryRun=All"),
        Some(changed),
    )
    .await;
    assert_eq!(stale.code, 409, "{}", stale.text);
}

#[tokio::test]
async fn scale_subresource_reads_and_writes_replicas() {
    let state = state();
    let path = "/apis/apps/v1/namespaces/default/deployments";
    let created = call(
        &state,
        "POST",
        path,
        Some(deployment("web", 2, "busybox:1.36")),
    )
    .await;
    assert_eq!(created.code, 201, "{}", created.text);

    let scale = call(&state, "GET", &format!("{path}/web/scale"), None).await;
    assert_eq!(scale.code, 200, "{}", scale.text);
    assert_eq!(scale.body["kind"], "Scale");
    assert_eq!(scale.body["apiVersion"], "autoscaling/v1");
    assert_eq!(scale.body["spec"]["replicas"], 2);
    assert_eq!(scale.body["status"]["replicas"], 0);
    assert_eq!(scale.body["status"]["selector"], "app=web");

    let mut put = scale.body.clone();
    put["spec"]["replicas"] = json!(5);
    let scaled = call(
        &state,
        "PUT",
        &format!("{path}/web/scale"),
        Some(put.clone()),
    )
    .await;
    assert_eq!(scaled.code, 200, "{}", scaled.text);
    assert_eq!(scaled.body["spec"]["replicas"], 5);
    // The Scale read before is stale now.
    let stale = call(&state, "PUT", &format!("{path}/web/scale"), Some(put)).await;
    assert_eq!(stale.code, 409, "{}", stale.text);

    let patched = call(
        &state,
        "PATCH",
        &format!("{path}/web/scale"),
        Some(json!({"spec": {"replicas": 1}})),
    )
    .await;
    assert_eq!(patched.code, 200, "{}", patched.text);
    let web = call(&state, "GET", &format!("{path}/web"), None).await;
    assert_eq!(web.body["spec"]["replicas"], 1);

    let negative = call(
        &state,
        "PATCH",
        &format!("{path}/web/scale"),
        Some(json!({"spec": {"replicas": -2}})),
    )
    .await;
    assert_eq!(negative.code, 422, "{}", negative.text);
    assert_eq!(
        negative.body["details"]["causes"][0]["field"],
        "spec.replicas"
    );

    let no_scale = call(
        &state,
        "GET",
        "/api/v1/namespaces/default/pods/p/scale",
        None,
    )
    .await;
    assert_eq!(no_scale.code, 404);
}

#[tokio::test]
async fn status_subresource_changes_only_status() {
    let state = state();
    let path = "/apis/apps/v1/namespaces/default/deployments";
    let created = call(
        &state,
        "POST",
        path,
        Some(deployment("web", 2, "busybox:1.36")),
    )
    .await;
    let mut with_status = created.body.clone();
    with_status["status"] = json!({"replicas": 2, "readyReplicas": 1});
    with_status["spec"]["replicas"] = json!(9);
    let written = call(
        &state,
        "PUT",
        &format!("{path}/web/status"),
        Some(with_status),
    )
    .await;
    assert_eq!(written.code, 200, "{}", written.text);
    assert_eq!(written.body["status"]["replicas"], 2);
    assert_eq!(written.body["spec"]["replicas"], 2);
}

#[tokio::test]
async fn rollback_restores_an_older_template() {
    let state = state();
    let path = "/apis/apps/v1/namespaces/default/deployments";
    let created = call(&state, "POST", path, Some(deployment("web", 1, "web:2"))).await;
    assert_eq!(created.code, 201, "{}", created.text);
    let uid = created.body["metadata"]["uid"].as_str().unwrap();
    for (revision, image) in [("1", "web:1"), ("2", "web:2")] {
        let rs = json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {
                "name": format!("web-{revision}"),
                "labels": {"app": "web", "pod-template-hash": revision},
                "annotations": {"deployment.kubernetes.io/revision": revision},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": uid, "controller": true}]
            },
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "web", "pod-template-hash": revision}},
                "template": {
                    "metadata": {"labels": {"app": "web", "pod-template-hash": revision}},
                    "spec": {"containers": [{"name": "web", "image": image}]}
                }
            }
        });
        let answer = call(
            &state,
            "POST",
            "/apis/apps/v1/namespaces/default/replicasets",
            Some(rs),
        )
        .await;
        assert_eq!(answer.code, 201, "{}", answer.text);
    }
    let rolled = call(
        &state,
        "POST",
        &format!("{path}/web/rollback"),
        Some(json!({"toRevision": 0})),
    )
    .await;
    assert_eq!(rolled.code, 200, "{}", rolled.text);
    assert_eq!(
        rolled.body["spec"]["template"]["spec"]["containers"][0]["image"],
        "web:1"
    );
    assert!(
        rolled.body["spec"]["template"]["metadata"]["labels"]
            .get("pod-template-hash")
            .is_none()
    );

    let missing = call(
        &state,
        "POST",
        &format!("{path}/web/rollback"),
        Some(json!({"toRevision": 7})),
    )
    .await;
    assert_eq!(missing.code, 404, "{}", missing.text);
    let no_deployment = call(
        &state,
        "POST",
        &format!("{path}/nope/rollback"),
        Some(json!({})),
    )
    .await;
    assert_eq!(no_deployment.code, 404, "{}", no_deployment.text);
}

#[tokio::test]
async fn tcp_routes_need_the_token_but_health_and_metrics_do_not() {
    let (state, _) = state_with(
        RedbStore::open_in_memory(Options::default()).unwrap(),
        Some("s3cret"),
    );
    let filter = tcp_routes(state.clone());
    let denied = warp::test::request().path(CONFIG_MAPS).reply(&filter).await;
    assert_eq!(denied.status(), 401);
    let status: Value = serde_json::from_slice(denied.body()).unwrap();
    assert_eq!(status["reason"], "Unauthorized");
    let wrong = warp::test::request()
        .path(CONFIG_MAPS)
        .header("authorization", "Bearer s3cre")
        .reply(&filter)
        .await;
    assert_eq!(wrong.status(), 401);
    // An unknown path tells nothing either.
    let unknown = warp::test::request()
        .path("/api/v1/widgets")
        .reply(&filter)
        .await;
    assert_eq!(unknown.status(), 401);
    let allowed = warp::test::request()
        .path(CONFIG_MAPS)
        .header("authorization", "Bearer s3cret")
        .reply(&filter)
        .await;
    assert_eq!(allowed.status(), 200);
    for open in ["/healthz", "/metrics"] {
        let answer = warp::test::request().path(open).reply(&filter).await;
        assert_eq!(answer.status(), 200, "{open}");
    }
    assert_eq!(
        warp::test::request()
            .path("/readyz")
            .reply(&filter)
            .await
            .status(),
        503
    );
    state.set_ready(true);
    assert_eq!(
        warp::test::request()
            .path("/readyz")
            .reply(&filter)
            .await
            .status(),
        200
    );

    // Over a real TCP socket; a server without a token refuses to start.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_tcp_listener(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /api/v1/namespaces HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();

    let no_token = state_with(RedbStore::open_in_memory(Options::default()).unwrap(), None).0;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused = serve_tcp_listener(listener, no_token, async {}).await;
    assert!(refused.unwrap_err().to_string().contains("token"));
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused() {
    let state = state();
    let big = vec![b' '; usize::try_from(BODY_LIMIT).unwrap() + 1];
    let response = warp::test::request()
        .method("POST")
        .path(CONFIG_MAPS)
        .body(big)
        .reply(&routes(state))
        .await;
    assert_eq!(response.status(), 413);
    let status: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(status["reason"], "RequestEntityTooLarge");
}

#[tokio::test]
async fn logs_and_exec_go_through_the_node() {
    let (state, node) = state_with(RedbStore::open_in_memory(Options::default()).unwrap(), None);
    let pods = "/api/v1/namespaces/default/pods";
    assert_eq!(
        call(&state, "POST", pods, Some(pod("one", &["app"])))
            .await
            .code,
        201
    );
    assert_eq!(
        call(&state, "POST", pods, Some(pod("two", &["app", "sidecar"])))
            .await
            .code,
        201
    );

    let logs = call(&state, "GET", &format!("{pods}/one/log?tailLines=5"), None).await;
    assert_eq!(logs.code, 200);
    assert_eq!(logs.text, "app line 1\napp line 2\napp line 3\n");

    let ambiguous = call(&state, "GET", &format!("{pods}/two/log"), None).await;
    assert_eq!(ambiguous.code, 400);
    assert!(
        ambiguous.text.contains("[app sidecar]"),
        "{}",
        ambiguous.text
    );
    let wrong = call(&state, "GET", &format!("{pods}/two/log?container=db"), None).await;
    assert_eq!(wrong.code, 400);
    assert!(
        wrong.text.contains("container db is not valid for pod two"),
        "{}",
        wrong.text
    );
    let sidecar = call(
        &state,
        "GET",
        &format!("{pods}/two/log?container=sidecar"),
        None,
    )
    .await;
    assert_eq!(
        sidecar.text,
        "sidecar line 1\nsidecar line 2\nsidecar line 3\n"
    );

    let exec = call(
        &state,
        "POST",
        &format!("{pods}/two/exec?container=sidecar"),
        Some(json!({"command": ["echo", "hi"], "timeoutSeconds": 7})),
    )
    .await;
    assert_eq!(exec.code, 200, "{}", exec.text);
    assert_eq!(
        exec.body,
        json!({"exitCode": 3, "stdout": "echo hi", "stderr": ""})
    );
    let failed = call(
        &state,
        "POST",
        &format!("{pods}/one/exec"),
        Some(json!({"command": ["missing"]})),
    )
    .await;
    assert_eq!(failed.code, 404, "{}", failed.text);
    let empty = call(
        &state,
        "POST",
        &format!("{pods}/one/exec"),
        Some(json!({"command": []})),
    )
    .await;
    assert_eq!(empty.code, 400);
    let no_pod = call(&state, "GET", &format!("{pods}/nope/log"), None).await;
    assert_eq!(no_pod.code, 404);

    assert_eq!(
        *node.calls.lock().unwrap(),
        [
            "logs one/app tail=Some(5)",
            "logs two/sidecar tail=None",
            "exec two/sidecar [\"echo\", \"hi\"] 7s",
            "exec one/app [\"missing\"] 300s",
        ]
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let state = state();
    call(&state, "GET", &format!("{CONFIG_MAPS}/a"), None).await;
    call(&state, "GET", &format!("{CONFIG_MAPS}/b"), None).await;
    let metrics = call(&state, "GET", "/metrics", None).await;
    assert_eq!(metrics.code, 200);
    assert!(
        metrics.text.contains(
            "berth_api_requests_total{code=\"404\",method=\"GET\",route=\"/api/v1/namespaces/{namespace}/configmaps/{name}\"} 2"
        ),
        "{}",
        metrics.text
    );
    assert!(
        metrics
            .text
            .contains("berth_api_request_duration_seconds_bucket")
    );
    assert!(!metrics.text.contains("configmaps/a"));
    let version = call(&state, "GET", "/version", None).await;
    assert_eq!(version.body["berthVersion"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn namespaces_are_cluster_scoped_and_deletes_honour_preconditions() {
    let state = state();
    let created = call(
        &state,
        "POST",
        "/api/v1/namespaces",
        Some(json!({"metadata": {"name": "team"}})),
    )
    .await;
    assert_eq!(created.code, 201, "{}", created.text);
    let listed = call(&state, "GET", "/api/v1/namespaces", None).await;
    assert_eq!(listed.body["kind"], "NamespaceList");
    let precondition = call(
        &state,
        "DELETE",
        "/api/v1/namespaces/team",
        Some(json!({"preconditions": {"uid": "not-the-uid"}})),
    )
    .await;
    assert_eq!(precondition.code, 409, "{}", precondition.text);
    let policy = call(
        &state,
        "DELETE",
        "/api/v1/namespaces/team?propagationPolicy=Orphan",
        None,
    )
    .await;
    assert_eq!(policy.code, 400);
    let deleted = call(&state, "DELETE", "/api/v1/namespaces/team", None).await;
    assert!(
        deleted.code == 200 || deleted.code == 202,
        "{}",
        deleted.text
    );
}

#[tokio::test]
async fn events_select_by_involved_object_and_hpas_live_under_autoscaling_v2() {
    let state = state();
    let events = "/api/v1/namespaces/default/events";
    for (name, pod) in [("e1", "web-1"), ("e2", "web-2"), ("e3", "web-1")] {
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name},
            "involvedObject": {"kind": "Pod", "name": pod, "namespace": "default"},
            "reason": "Started", "message": "started", "type": "Normal"
        });
        let answer = call(&state, "POST", events, Some(event)).await;
        assert_eq!(answer.code, 201, "{}", answer.text);
    }
    let selected = call(
        &state,
        "GET",
        &format!("{events}?fieldSelector=involvedObject.kind%3DPod,involvedObject.name%3Dweb-1"),
        None,
    )
    .await;
    assert_eq!(selected.code, 200, "{}", selected.text);
    let names: Vec<&str> = selected.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["e1", "e3"]);

    let hpas = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers";
    let hpa = json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 4
        }
    });
    let created = call(&state, "POST", hpas, Some(hpa)).await;
    assert_eq!(created.code, 201, "{}", created.text);
    let listed = call(&state, "GET", hpas, None).await;
    assert_eq!(listed.body["kind"], "HorizontalPodAutoscalerList");
    assert_eq!(listed.body["apiVersion"], "autoscaling/v2");
    let wrong_group = call(
        &state,
        "GET",
        "/apis/apps/v1/namespaces/default/horizontalpodautoscalers",
        None,
    )
    .await;
    assert_eq!(wrong_group.code, 404);
}

#[tokio::test]
async fn started_pods_are_deleted_gracefully() {
    let state = state();
    let pods = "/api/v1/namespaces/default/pods";
    let created = call(&state, "POST", pods, Some(pod("web", &["app"]))).await;
    assert_eq!(created.code, 201, "{}", created.text);
    let mut running = created.body.clone();
    running["status"] = json!({"phase": "Running"});
    let status = call(&state, "PUT", &format!("{pods}/web/status"), Some(running)).await;
    assert_eq!(status.code, 200, "{}", status.text);

    let bad_grace = call(
        &state,
        "DELETE",
        &format!("{pods}/web?gracePeriodSeconds=-1"),
        None,
    )
    .await;
    assert_eq!(bad_grace.code, 400);
    let deleting = call(
        &state,
        "DELETE",
        &format!("{pods}/web?gracePeriodSeconds=10"),
        None,
    )
    .await;
    assert_eq!(deleting.code, 202, "{}", deleting.text);
    assert_eq!(deleting.body["metadata"]["deletionGracePeriodSeconds"], 10);
    assert!(deleting.body["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(
        call(&state, "GET", &format!("{pods}/web"), None).await.code,
        200
    );

    // What the agent does once the containers have stopped.
    let gone = call(
        &state,
        "DELETE",
        &format!("{pods}/web?gracePeriodSeconds=0"),
        None,
    )
    .await;
    assert_eq!(gone.code, 200, "{}", gone.text);
    assert_eq!(
        call(&state, "GET", &format!("{pods}/web"), None).await.code,
        404
    );
}
