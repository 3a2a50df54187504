//! HTTP client of the daemon's API (the contract is in `berth_apiserver`'s crate docs).
//!
//! One HTTP/1.1 connection per request, over the daemon's unix socket (no authentication: the
//! socket is root-only) or over TCP with a bearer token. A request is short (a GET, a PUT) or a
//! stream (watch events, logs) read line by line or chunk by chunk. Every error the daemon
//! answers is a Kubernetes `Status`, shown as kubectl shows it:
//! `Error from server (NotFound): deployments.apps "web" not found`.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// Where the daemon listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The unix socket (`/run/berth/berth.sock`).
    Unix(PathBuf),
    /// `--server http://HOST:PORT`, with the bearer token when one was given.
    Tcp {
        authority: String,
        token: Option<String>,
    },
}

impl Endpoint {
    /// `http://HOST:PORT[/]` → a TCP endpoint.
    pub fn tcp(url: &str, token: Option<String>) -> Result<Self> {
        let authority = url
            .strip_prefix("http://")
            .map(|rest| rest.trim_end_matches('/'))
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
            .ok_or_else(|| ClientError::BadServer {
                url: url.to_owned(),
            })?;
        Ok(Self::Tcp {
            authority: authority.to_owned(),
            token,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "{}", path.display()),
            Self::Tcp { authority, .. } => write!(f, "http://{authority}"),
        }
    }
}

/// A cause of an `Invalid` status: one field path and what is wrong with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCause {
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusDetails {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub causes: Vec<StatusCause>,
}

/// Kubernetes' `Status`: the body of every error answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub code: u16,
    #[serde(default)]
    pub details: Option<StatusDetails>,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason.as_deref().filter(|r| !r.is_empty()) {
            Some(reason) => write!(f, "Error from server ({reason}): {}", self.message)?,
            None => write!(f, "Error from server: {}", self.message)?,
        }
        // Causes the message does not already spell out, one per line with its field path.
        let causes = self.details.iter().flat_map(|d| &d.causes);
        for cause in causes {
            let field = cause.field.as_deref().unwrap_or_default();
            let message = cause.message.as_deref().unwrap_or_default();
            let line = match field {
                "" => message.to_owned(),
                field => format!("{field}: {message}"),
            };
            if !line.is_empty() && !self.message.contains(&line) {
                write!(f, "\n  * {line}")?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot connect to the berth daemon at {}: {reason}; is it running? Start it with: berth daemon",
        socket.display()
    )]
    NotRunning {
        socket: PathBuf,
        reason: &'static str,
    },
    #[error(
        "cannot connect to the berth daemon at {}: permission denied; the socket is root-only \
         (mode 0600): run berth with sudo",
        socket.display()
    )]
    PermissionDenied { socket: PathBuf },
    #[error("cannot connect to the berth daemon at {endpoint}")]
    Connect {
        endpoint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--server {url:?}: expected http://HOST:PORT")]
    BadServer { url: String },
    #[error("{method} {path}: the connection to the berth daemon failed")]
    Http {
        method: Method,
        path: String,
        #[source]
        source: hyper::Error,
    },
    #[error("{method} {path}: invalid request")]
    Request {
        method: Method,
        path: String,
        #[source]
        source: http::Error,
    },
    #[error("{status}")]
    Status { status: Box<Status> },
    #[error("{method} {path}: the daemon answered {code} with a body that is not a Status: {body}")]
    Unexpected {
        method: Method,
        path: String,
        code: StatusCode,
        body: String,
    },
    #[error("{what}: cannot decode the daemon's answer")]
    Decode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what}: cannot encode the request")]
    Encode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

impl ClientError {
    /// The Status the daemon answered, if this is one.
    pub fn status(&self) -> Option<&Status> {
        match self {
            Self::Status { status } => Some(status),
            _ => None,
        }
    }

    /// Whether the daemon answered with this HTTP code.
    pub fn is_code(&self, code: u16) -> bool {
        self.status().is_some_and(|s| s.code == code)
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// A request body and its content type.
pub struct Body {
    pub content_type: &'static str,
    pub bytes: Bytes,
}

impl Body {
    pub fn json(what: &str, value: &impl Serialize) -> Result<Self> {
        let bytes = serde_json::to_vec(value).map_err(|source| ClientError::Encode {
            what: what.to_owned(),
            source,
        })?;
        Ok(Self {
            content_type: "application/json",
            bytes: bytes.into(),
        })
    }

    pub fn merge_patch(value: &serde_json::Value) -> Self {
        Self {
            content_type: "application/merge-patch+json",
            bytes: value.to_string().into(),
        }
    }
}

/// A client of one daemon.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Endpoint,
}

impl Client {
    pub fn new(endpoint: Endpoint) -> Self {
        Self { endpoint }
    }

    /// Sends a request and answers the response of a 2xx; any other code becomes
    /// [`ClientError::Status`] (or [`ClientError::Unexpected`] when the body is not a Status).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Body>,
    ) -> Result<Response<Incoming>> {
        let mut sender = self.connect(&method, path).await?;
        let mut builder = Request::builder().method(method.clone()).uri(path);
        builder = match &self.endpoint {
            Endpoint::Unix(_) => builder.header(header::HOST, "localhost"),
            Endpoint::Tcp { authority, token } => {
                let builder = builder.header(header::HOST, authority.as_str());
                match token {
                    Some(token) => builder.header(header::AUTHORIZATION, format!("Bearer {token}")),
                    None => builder,
                }
            }
        };
        builder = builder.header(header::ACCEPT, "application/json");
        let request = match body {
            Some(body) => builder
                .header(header::CONTENT_TYPE, body.content_type)
                .body(Full::new(body.bytes)),
            None => builder.body(Full::new(Bytes::new())),
        }
        .map_err(|source| ClientError::Request {
            method: method.clone(),
            path: path.to_owned(),
            source,
        })?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|source| ClientError::Http {
                method: method.clone(),
                path: path.to_owned(),
                source,
            })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let code = response.status();
        let body = read_body(response, &method, path).await?;
        match serde_json::from_slice::<Status>(&body) {
            Ok(mut status) if !status.message.is_empty() => {
                if status.code == 0 {
                    status.code = code.as_u16();
                }
                Err(ClientError::Status {
                    status: Box::new(status),
                })
            }
            _ => Err(ClientError::Unexpected {
                method,
                path: path.to_owned(),
                code,
                body: String::from_utf8_lossy(&body).trim().to_owned(),
            }),
        }
    }

    async fn connect(
        &self,
        method: &Method,
        path: &str,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
        let http_error = |source| ClientError::Http {
            method: method.clone(),
            path: path.to_owned(),
            source,
        };
        match &self.endpoint {
            Endpoint::Unix(socket) => {
                let stream = tokio::net::UnixStream::connect(socket)
                    .await
                    .map_err(|err| connect_error(socket, err))?;
                let (sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .map_err(http_error)?;
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::debug!(?err, "connection to the daemon ended");
                    }
                });
                Ok(sender)
            }
            Endpoint::Tcp { authority, .. } => {
                let stream = tokio::net::TcpStream::connect(authority.as_str())
                    .await
                    .map_err(|source| ClientError::Connect {
                        endpoint: self.endpoint.to_string(),
                        source,
                    })?;
                let (sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .map_err(http_error)?;
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::debug!(?err, "connection to the daemon ended");
                    }
                });
                Ok(sender)
            }
        }
    }

    /// Sends a request and decodes the JSON answer.
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Body>,
    ) -> Result<T> {
        let response = self.send(method.clone(), path, body).await?;
        let bytes = read_body(response, &method, path).await?;
        serde_json::from_slice(&bytes).map_err(|source| ClientError::Decode {
            what: format!("{method} {path}"),
            source,
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.json(Method::GET, path, None).await
    }

    /// Opens a stream (watch, followed logs).
    pub async fn stream(&self, path: &str) -> Result<Chunks> {
        let response = self.send(Method::GET, path, None).await?;
        Ok(Chunks {
            body: response.into_body(),
            buffer: BytesMut::new(),
            what: format!("GET {path}"),
        })
    }
}

fn connect_error(socket: &Path, err: std::io::Error) -> ClientError {
    match err.kind() {
        std::io::ErrorKind::NotFound => ClientError::NotRunning {
            socket: socket.to_owned(),
            reason: "no such file or directory",
        },
        std::io::ErrorKind::ConnectionRefused => ClientError::NotRunning {
            socket: socket.to_owned(),
            reason: "connection refused",
        },
        std::io::ErrorKind::PermissionDenied => ClientError::PermissionDenied {
            socket: socket.to_owned(),
        },
        _ => ClientError::Connect {
            endpoint: socket.display().to_string(),
            source: err,
        },
    }
}

async fn read_body(response: Response<Incoming>, method: &Method, path: &str) -> Result<Bytes> {
    response
        .into_body()
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|source| ClientError::Http {
            method: method.clone(),
            path: path.to_owned(),
            source,
        })
}

/// The body of a streamed answer, read as it arrives.
pub struct Chunks {
    body: Incoming,
    buffer: BytesMut,
    what: String,
}

impl Chunks {
    async fn next_data(&mut self) -> Result<Option<Bytes>> {
        loop {
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(source)) => {
                    return Err(ClientError::Http {
                        method: Method::GET,
                        path: self.what.trim_start_matches("GET ").to_owned(),
                        source,
                    });
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// The next chunk of bytes as the daemon sent it; `None` at the end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        if !self.buffer.is_empty() {
            return Ok(Some(self.buffer.split().freeze()));
        }
        self.next_data().await
    }

    /// The next line, without its newline; `None` at the end (a last line without a newline
    /// is still answered).
    pub async fn next_line(&mut self) -> Result<Option<Bytes>> {
        loop {
            if let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
                let line = self.buffer.split_to(end + 1);
                return Ok(Some(line.freeze().slice(..end)));
            }
            match self.next_data().await? {
                Some(data) => self.buffer.extend_from_slice(&data),
                None if self.buffer.is_empty() => return Ok(None),
                None => return Ok(Some(self.buffer.split().freeze())),
            }
        }
    }

    /// The next watch event (`{"type", "object"}`), skipping blank keep-alive lines.
    pub async fn next_event<T: DeserializeOwned>(&mut self) -> Result<Option<WatchEvent<T>>> {
        loop {
            let Some(line) = self.next_line().await? else {
                return Ok(None);
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let raw: RawWatchEvent =
                serde_json::from_slice(&line).map_err(|source| ClientError::Decode {
                    what: self.what.clone(),
                    source,
                })?;
            if raw.type_ == "ERROR" {
                let status: Status =
                    serde_json::from_value(raw.object).map_err(|source| ClientError::Decode {
                        what: self.what.clone(),
                        source,
                    })?;
                return Err(ClientError::Status {
                    status: Box::new(status),
                });
            }
            let object =
                serde_json::from_value(raw.object).map_err(|source| ClientError::Decode {
                    what: self.what.clone(),
                    source,
                })?;
            return Ok(Some(WatchEvent {
                type_: raw.type_,
                object,
            }));
        }
    }
}

#[derive(Deserialize)]
struct RawWatchEvent {
    #[serde(rename = "type")]
    type_: String,
    object: serde_json::Value,
}

/// One event of a watch stream.
#[derive(Debug, Clone)]
pub struct WatchEvent<T> {
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub type_: String,
    pub object: T,
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `path?k=v&...` with the values encoded; pairs with an empty value are left out.
pub fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    let query: Vec<String> = pairs
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| format!("{key}={}", encode_query_value(value)))
        .collect();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_shows_reason_message_and_causes_not_in_the_message() {
        let status: Status = serde_json::from_str(
            r#"{"kind":"Status","apiVersion":"v1","status":"Failure","code":422,"reason":"Invalid",
                "message":"Deployment \"web\" is invalid: spec.replicas: must be >= 0",
                "details":{"name":"web","kind":"Deployment","causes":[
                  {"field":"spec.replicas","message":"must be >= 0","reason":"FieldValueInvalid"},
                  {"field":"spec.template.spec.containers[0].image","message":"Required value"}]}}"#,
        )
        .unwrap();
        assert_eq!(
            status.to_string(),
            "Error from server (Invalid): Deployment \"web\" is invalid: spec.replicas: must be >= 0\n  \
             * spec.template.spec.containers[0].image: Required value"
        );
    }

    #[test]
    fn query_values_are_encoded_and_empty_ones_dropped() {
        assert_eq!(
            with_query(
                "/api/v1/pods",
                &[("labelSelector", "app=web,tier!=db"), ("fieldSelector", "")]
            ),
            "/api/v1/pods?labelSelector=app%3Dweb%2Ctier%21%3Ddb"
        );
        assert_eq!(with_query("/x", &[]), "/x");
    }

    #[test]
    fn server_urls_need_http_host_and_port() {
        assert_eq!(
            Endpoint::tcp("http://127.0.0.1:6443/", None).unwrap(),
            Endpoint::Tcp {
                authority: "127.0.0.1:6443".into(),
                token: None
            }
        );
        for bad in ["https://h:1", "127.0.0.1:1", "http://", "http://h:1/api"] {
            assert!(
                matches!(Endpoint::tcp(bad, None), Err(ClientError::BadServer { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_missing_or_forbidden_socket_says_what_to_do() {
        let socket = Path::new("/run/berth/berth.sock");
        let missing = connect_error(socket, std::io::ErrorKind::NotFound.into());
        assert_eq!(
            missing.to_string(),
            "cannot connect to the berth daemon at /run/berth/berth.sock: no such file or \
             directory; is it running? Start it with: berth daemon"
        );
        let denied = connect_error(socket, std::io::ErrorKind::PermissionDenied.into());
        assert!(denied.to_string().contains("root-only (mode 0600)"));
        assert!(denied.to_string().contains("sudo"));
    }
}
