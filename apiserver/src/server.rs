//! The server: [`ApiState`] (what every request needs), [`routes`]/[`tcp_routes`] (the warp
//! filter, tested in-process with `warp::test`), and [`serve_unix`]/[`serve_tcp`] with graceful
//! shutdown.
//!
//! All requests go through one filter that reads method, path, query, headers and body and
//! dispatches on the resolved path ([`crate::route`]). One entry point keeps authentication,
//! the body limit, the request metrics and the rendering of errors as `Status` objects in one
//! place, instead of repeating them on dozens of per-path filters.
//!
//! # Shutdown
//! When the shutdown future completes, the listener stops accepting, the state's shutdown flag
//! is raised so that watch streams and followed logs end (they would otherwise keep their
//! connections open forever), and in-flight requests are let finish (hyper's graceful
//! shutdown).

use std::{
    collections::HashMap,
    future::Future,
    net::SocketAddr,
    os::unix::fs::{FileTypeExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use berth_store::RedbStore;
use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, Method, StatusCode, header};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use serde::Serialize;
use warp::{Filter, Reply};

use crate::{
    BODY_LIMIT,
    error::ApiError,
    handlers,
    node::Node,
    route::{self, Target},
};

/// The response type of every route.
pub type Response = warp::reply::Response;

/// Why the server could not be set up or started.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot register the API metrics")]
    Metrics(#[source] prometheus::Error),
    #[error("the TCP listener {addr} needs a bearer token (--token) and none was given")]
    NoToken { addr: String },
    #[error("cannot create the socket directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} exists and is not a socket: refusing to replace it")]
    NotASocket { path: PathBuf },
    #[error("{path}: another berth daemon is serving on this socket")]
    AlreadyServing { path: PathBuf },
    #[error("cannot remove the stale socket {path}")]
    RemoveStale {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen on {address}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set mode 0600 on the socket {path}")]
    Permissions {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Clone)]
struct Metrics {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl Metrics {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "berth_api_requests_total",
                "API requests by route template, method and HTTP code",
            ),
            &["route", "method", "code"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "berth_api_request_duration_seconds",
                "Time to the response head of API requests by route template and method",
            ),
            &["route", "method"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        Ok(Self { requests, duration })
    }
}

struct Inner {
    store: RedbStore,
    node: Arc<dyn Node>,
    registry: Registry,
    metrics: Metrics,
    token: Option<String>,
    ready: AtomicBool,
    shutdown: tokio::sync::watch::Sender<bool>,
}

/// What every request needs: the store, the node, metrics, the token and readiness. Cheap to
/// clone; clones share everything.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("store", &self.inner.store)
            .field("token", &self.inner.token.as_ref().map(|_| "<redacted>"))
            .field("ready", &self.is_ready())
            .finish_non_exhaustive()
    }
}

/// Builds an [`ApiState`]: `ApiState::builder(store, node).token(t).build()?`.
pub struct ApiStateBuilder {
    store: RedbStore,
    node: Arc<dyn Node>,
    registry: Option<Registry>,
    token: Option<String>,
    ready: bool,
}

impl ApiStateBuilder {
    /// The registry `/metrics` serves and the API metrics are registered in (a new one if not
    /// given).
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// The bearer token the TCP listener requires.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Whether `/readyz` answers 200 from the start (default: not until
    /// [`ApiState::set_ready`]).
    pub fn ready(mut self, ready: bool) -> Self {
        self.ready = ready;
        self
    }

    /// Registers the API metrics; fails if they are already registered in the registry.
    pub fn build(self) -> Result<ApiState, ServeError> {
        let registry = self.registry.unwrap_or_default();
        let metrics = Metrics::register(&registry).map_err(ServeError::Metrics)?;
        Ok(ApiState {
            inner: Arc::new(Inner {
                store: self.store,
                node: self.node,
                registry,
                metrics,
                token: self.token.filter(|t| !t.is_empty()),
                ready: AtomicBool::new(self.ready),
                shutdown: tokio::sync::watch::channel(false).0,
            }),
        })
    }
}

impl ApiState {
    pub fn builder(store: RedbStore, node: Arc<dyn Node>) -> ApiStateBuilder {
        ApiStateBuilder {
            store,
            node,
            registry: None,
            token: None,
            ready: false,
        }
    }

    pub fn store(&self) -> &RedbStore {
        &self.inner.store
    }

    pub fn node(&self) -> &Arc<dyn Node> {
        &self.inner.node
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// `/readyz` answers 200 once the daemon marks the API ready (the store is open, the
    /// controllers run), 503 before.
    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::SeqCst)
    }

    /// Ends every watch stream and followed log, now and for later requests (done by the
    /// `serve_*` functions when their shutdown future completes).
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Completes when [`begin_shutdown`](Self::begin_shutdown) has been called.
    pub(crate) fn shutting_down(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut receiver = self.inner.shutdown.subscribe();
        async move {
            // An error means the sender is gone: the state is dropped, so stop too.
            let _ = receiver.wait_for(|down| *down).await;
        }
    }
}

/// Whether a request must carry the bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// The unix socket: its mode (0600) is the access control.
    None,
    /// TCP: `Authorization: Bearer <token>` on everything but health and metrics.
    Bearer,
}

/// The routes as served on the unix socket (no authentication).
pub fn routes(
    state: ApiState,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    filter(state, Auth::None)
}

/// The routes as served on TCP: every path but `/healthz`, `/readyz` and `/metrics` needs
/// `Authorization: Bearer <token>` (always refused when the state has no token).
pub fn tcp_routes(
    state: ApiState,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    filter(state, Auth::Bearer)
}

fn filter(
    state: ApiState,
    auth: Auth,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::any()
        .map(move || state.clone())
        .and(warp::method())
        .and(warp::path::full())
        .and(raw_query)
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(
            move |state: ApiState,
                  method: Method,
                  path: warp::path::FullPath,
                  query: String,
                  headers: HeaderMap,
                  body| {
                handle(
                    state,
                    auth,
                    method,
                    path.as_str().to_owned(),
                    query,
                    headers,
                    body,
                )
            },
        )
}

/// A parsed request, as the handlers see it.
pub(crate) struct Request {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: HashMap<String, String>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Request {
    pub(crate) fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// A boolean query parameter: `true`/`1` or `false`/`0`; anything else is a 400.
    pub(crate) fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.query(name) {
            None | Some("" | "false" | "0") => Ok(false),
            Some("true" | "1") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "query parameter {name}={other:?}: expected true or false"
            ))),
        }
    }

    /// `?dryRun=All` (the only value Kubernetes accepts).
    pub(crate) fn dry_run(&self) -> Result<bool, ApiError> {
        match self.query("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "query parameter dryRun={other:?}: the only supported value is All"
            ))),
        }
    }

    pub(crate) fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim())
            .unwrap_or_default()
    }
}

#[allow(clippy::too_many_arguments)]
async fn handle<S, B>(
    state: ApiState,
    auth: Auth,
    method: Method,
    path: String,
    raw_query: String,
    headers: HeaderMap,
    body: S,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>> + Send + Unpin,
    B: Buf,
{
    let started = Instant::now();
    let target = route::resolve(&path);
    let template = target
        .as_ref()
        .map(Target::template)
        .unwrap_or_else(|_| "unknown".to_owned());
    let response = match respond(
        &state,
        auth,
        method.clone(),
        path,
        raw_query,
        headers,
        body,
        target,
    )
    .await
    {
        Ok(response) => response,
        Err(err) => error_response(&err),
    };
    tracing::debug!(
        method = %method,
        route = %template,
        code = response.status().as_u16(),
        "API request"
    );
    let metrics = &state.inner.metrics;
    metrics
        .requests
        .with_label_values(&[
            template.as_str(),
            method.as_str(),
            response.status().as_str(),
        ])
        .inc();
    metrics
        .duration
        .with_label_values(&[template.as_str(), method.as_str()])
        .observe(started.elapsed().as_secs_f64());
    response
}

#[allow(clippy::too_many_arguments)]
async fn respond<S, B>(
    state: &ApiState,
    auth: Auth,
    method: Method,
    path: String,
    raw_query: String,
    headers: HeaderMap,
    body: S,
    target: Result<Target, ApiError>,
) -> Result<Response, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Send + Unpin,
    B: Buf,
{
    let open = matches!(
        target,
        Ok(Target::Healthz | Target::Readyz | Target::Metrics)
    );
    if auth == Auth::Bearer && !open && !authorized(state.inner.token.as_deref(), &headers) {
        return Err(ApiError::unauthorized());
    }
    let target = target?;
    let body = read_body(&headers, body).await?;
    let request = Request {
        method,
        path,
        query: parse_query(&raw_query)?,
        headers,
        body,
    };
    handlers::dispatch(state, target, request).await
}

/// Compares the bearer token in constant time (for equal lengths).
fn authorized(token: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(token) = token else {
        return false;
    };
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    let mut difference = u8::from(a.len() != b.len());
    for (i, byte) in b.iter().enumerate() {
        difference |= byte ^ a.get(i).copied().unwrap_or(!byte);
    }
    difference == 0
}

async fn read_body<S, B>(headers: &HeaderMap, mut body: S) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Send + Unpin,
    B: Buf,
{
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT) {
        return Err(ApiError::too_large(BODY_LIMIT));
    }
    let mut buffer = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk
            .map_err(|err| ApiError::bad_request(format!("cannot read the request body: {err}")))?;
        if buffer.len() as u64 + chunk.remaining() as u64 > BODY_LIMIT {
            return Err(ApiError::too_large(BODY_LIMIT));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            buffer.extend_from_slice(part);
            chunk.advance(n);
        }
    }
    Ok(buffer.freeze())
}

/// `a=1&b=x%20y` → map; `+` is a space.
pub(crate) fn parse_query(raw: &str) -> Result<HashMap<String, String>, ApiError> {
    let mut query = HashMap::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        query.insert(percent_decode(key)?, percent_decode(value)?);
    }
    Ok(query)
}

fn percent_decode(text: &str) -> Result<String, ApiError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "query string {text:?}: invalid percent-encoding at byte {i}"
                        ))
                    })?;
                out.push(hex);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| ApiError::bad_request(format!("query string {text:?} is not UTF-8")))
}

/// A JSON response.
pub(crate) fn json_response(code: u16, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = Response::new(body.into());
            *response.status_mut() =
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(err) => error_response(&ApiError::internal(format!(
            "cannot encode the response: {err}"
        ))),
    }
}

pub(crate) fn text_response(code: u16, text: impl Into<String>) -> Response {
    let mut response = Response::new(text.into().into());
    *response.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

pub(crate) fn error_response(err: &ApiError) -> Response {
    json_response(err.code, &err.status())
}

/// A streamed response whose chunks come from `receiver` (one chunk per event, flushed as
/// sent).
pub(crate) fn stream_response(
    content_type: &'static str,
    receiver: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> Response {
    let stream = tokio_stream::wrappers::ReceiverStream::new(receiver);
    let mut response = warp::reply::stream(stream).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

/// Serves the API on a unix socket at `path` until `shutdown` completes. Creates the parent
/// directory, removes a stale socket (but refuses when a daemon answers on it) and makes the
/// socket mode 0600: its permissions are the access control.
pub async fn serve_unix(
    path: impl AsRef<Path>,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let path = path.as_ref().to_path_buf();
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| ServeError::CreateDir {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    if let Ok(metadata) = std::fs::symlink_metadata(&path) {
        if !metadata.file_type().is_socket() {
            return Err(ServeError::NotASocket { path });
        }
        if tokio::net::UnixStream::connect(&path).await.is_ok() {
            return Err(ServeError::AlreadyServing { path });
        }
        std::fs::remove_file(&path).map_err(|source| ServeError::RemoveStale {
            path: path.clone(),
            source,
        })?;
        tracing::info!(path = %path.display(), "removed a stale socket");
    }
    let listener = tokio::net::UnixListener::bind(&path).map_err(|source| ServeError::Bind {
        address: path.display().to_string(),
        source,
    })?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        ServeError::Permissions {
            path: path.clone(),
            source,
        }
    })?;
    tracing::info!(path = %path.display(), "API listening on the unix socket");
    let signal_state = state.clone();
    warp::serve(routes(state))
        .incoming(listener)
        .graceful(async move {
            shutdown.await;
            signal_state.begin_shutdown();
        })
        .run()
        .await;
    if let Err(err) = std::fs::remove_file(&path) {
        tracing::debug!(path = %path.display(), ?err, "socket already removed");
    }
    Ok(())
}

/// Binds `addr` and serves the API on TCP (bearer token required) until `shutdown` completes.
pub async fn serve_tcp(
    addr: SocketAddr,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    if state.inner.token.is_none() {
        return Err(ServeError::NoToken {
            addr: addr.to_string(),
        });
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            address: addr.to_string(),
            source,
        })?;
    serve_tcp_listener(listener, state, shutdown).await
}

/// As [`serve_tcp`] on a listener the caller bound (tests bind port 0).
pub async fn serve_tcp_listener(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "<tcp>".into());
    if state.inner.token.is_none() {
        return Err(ServeError::NoToken { addr: address });
    }
    tracing::info!(%address, "API listening on TCP");
    let signal_state = state.clone();
    warp::serve(tcp_routes(state))
        .incoming(listener)
        .graceful(async move {
            shutdown.await;
            signal_state.begin_shutdown();
        })
        .run()
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_decoded() {
        let q = parse_query("labelSelector=app%3Dweb%2Ctier+in+(a)&watch=true&x").unwrap();
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert_eq!(q["watch"], "true");
        assert_eq!(q["x"], "");
        assert_eq!(parse_query("a=%zz").unwrap_err().code, 400);
    }

    #[test]
    fn tokens_compare_whole() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Bearer secret".parse().unwrap());
        assert!(authorized(Some("secret"), &headers));
        assert!(!authorized(Some("secret2"), &headers));
        assert!(!authorized(Some("secre"), &headers));
        assert!(!authorized(None, &headers));
        assert!(!authorized(Some("secret"), &HeaderMap::new()));
    }
}
