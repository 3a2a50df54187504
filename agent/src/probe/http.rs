//! `httpGet` probes over HTTP/1.1 with hyper, as the kubelet's `pkg/probe/http` does them:
//!
//! - `GET http://host:port/path`, host defaulting to the pod IP, port by number or port name;
//! - `Host: host:port` unless `httpHeaders` names another, `User-Agent: berth-probe/<version>` and
//!   `Accept: */*` unless overridden, `Connection: close` (the kubelet disables keep-alives);
//! - 200–299 is success; 300–399 too (the kubelet's "Warning": a redirect it did not follow);
//!   anything else fails with `HTTP probe failed with statuscode: N`;
//! - redirects to the same host name are followed (at most 10), redirects to another host are
//!   not: their 3xx answer is the result;
//! - the timeout covers the whole exchange, redirects and body included; at most
//!   [`MAX_OUTPUT`] bytes of the body are read, a longer body is not an error.
//!
//! `HTTPS` probes use TLS (rustls) without verifying the server's certificate, as the kubelet
//! does (`InsecureSkipVerify`): a probe checks health, not identity. The handshake's signatures
//! are still checked against the certificate presented.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use berth_api::core_v1::{HttpGetAction, UriScheme};
use bytes::Bytes;
use http::{
    HeaderMap, HeaderName, HeaderValue, Request, StatusCode,
    header::{ACCEPT, CONNECTION, HOST, LOCATION, USER_AGENT},
    uri::PathAndQuery,
};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::{
    ClientConfig, DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature},
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{
    MAX_OUTPUT, Outcome, ProbeError, ProbeTarget, Result, authority, output_text, seconds,
};

/// Go's `http.Client` gives up after this many redirects.
const MAX_REDIRECTS: usize = 10;

/// Where one request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Url {
    https: bool,
    host: String,
    port: u16,
    path: PathAndQuery,
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(
            f,
            "{scheme}://{}{}",
            authority(&self.host, self.port),
            self.path
        )
    }
}

/// Runs an `httpGet` probe against `target`.
pub async fn probe(
    action: &HttpGetAction,
    target: &ProbeTarget,
    timeout: Duration,
    user_agent: &str,
) -> Result<Outcome> {
    let url = Url {
        https: action.scheme == Some(UriScheme::Https),
        host: target.host(action.host.as_deref())?,
        port: target.resolve_port(&action.port)?,
        path: parse_path(action.path.as_deref().unwrap_or(""))?,
    };
    let headers = request_headers(action, &url, user_agent)?;
    let started = url.to_string();
    match tokio::time::timeout(timeout, get_following_redirects(url, headers)).await {
        Err(_) => Ok(Outcome::failure(format!(
            "Get {started:?}: timeout after {} (Client.Timeout exceeded)",
            seconds(timeout)
        ))),
        Ok(Err(message)) => Ok(Outcome::failure(message)),
        Ok(Ok((status, body))) => {
            let body = output_text(&body);
            Ok(if status.is_success() {
                Outcome::success(body)
            } else if status.is_redirection() {
                Outcome::success(format!("Probe terminated redirects, Response body: {body}"))
            } else {
                Outcome::failure(format!(
                    "HTTP probe failed with statuscode: {}",
                    status.as_u16()
                ))
            })
        }
    }
}

fn parse_path(path: &str) -> Result<PathAndQuery> {
    let absolute = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    absolute
        .parse()
        .map_err(|err: http::uri::InvalidUri| ProbeError::InvalidPath {
            path: path.to_owned(),
            reason: err.to_string(),
        })
}

/// The defaults, then the probe's `httpHeaders` (the first of a name replaces the default, later
/// ones add values, as Go's `http.Header` does).
fn request_headers(action: &HttpGetAction, url: &Url, user_agent: &str) -> Result<HeaderMap> {
    let invalid = |name: &str, reason: String| ProbeError::InvalidHeader {
        name: name.to_owned(),
        reason,
    };
    let mut headers = HeaderMap::new();
    let host = HeaderValue::from_str(&authority(&url.host, url.port))
        .map_err(|e| invalid("Host", e.to_string()))?;
    headers.insert(HOST, host);
    headers.insert(
        USER_AGENT,
        HeaderValue::from_str(user_agent).map_err(|e| invalid("User-Agent", e.to_string()))?,
    );
    headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
    let mut seen = Vec::new();
    for header in &action.http_headers {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|e| invalid(&header.name, e.to_string()))?;
        let value = HeaderValue::from_str(&header.value)
            .map_err(|e| invalid(&header.name, e.to_string()))?;
        if seen.contains(&name) {
            headers.append(name, value);
        } else {
            seen.push(name.clone());
            headers.insert(name, value);
        }
    }
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    Ok(headers)
}

/// GETs `url`, following same-host redirects; returns the final status and body (or the error
/// text the kubelet would show).
async fn get_following_redirects(
    mut url: Url,
    mut headers: HeaderMap,
) -> Result<(StatusCode, Vec<u8>), String> {
    let original_host = url.host.clone();
    for _ in 0..=MAX_REDIRECTS {
        let (status, location, body) = get(&url, &headers).await?;
        let Some(location) = location.filter(|_| is_followed_redirect(status)) else {
            return Ok((status, body));
        };
        let next = resolve_location(&url, &location).ok_or_else(|| {
            format!(
                "Get {:?}: failed to parse Location header {location:?}",
                url.to_string()
            )
        })?;
        if next.host != original_host {
            // Another host: the 3xx is the answer.
            return Ok((status, body));
        }
        if next.host != url.host || next.port != url.port {
            let host = HeaderValue::from_str(&authority(&next.host, next.port))
                .map_err(|e| e.to_string())?;
            headers.insert(HOST, host);
        }
        url = next;
    }
    Err(format!(
        "Get {:?}: stopped after {MAX_REDIRECTS} redirects",
        url.to_string()
    ))
}

fn is_followed_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// Resolves a `Location` header against the URL that answered with it.
fn resolve_location(base: &Url, location: &str) -> Option<Url> {
    let absolute = if let Some(rest) = location.strip_prefix("//") {
        Some(format!("http://{rest}"))
    } else if location.starts_with("http://") || location.starts_with("https://") {
        Some(location.to_owned())
    } else {
        None
    };
    if let Some(absolute) = absolute {
        let uri: http::Uri = absolute.parse().ok()?;
        let https = uri.scheme_str() == Some("https");
        let host = uri
            .host()?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        return Some(Url {
            https,
            host,
            port,
            path,
        });
    }
    let path = if location.starts_with('/') {
        location.to_owned()
    } else {
        let dir = base.path.path().rsplit_once('/').map_or("", |(dir, _)| dir);
        format!("{dir}/{location}")
    };
    Some(Url {
        path: path.parse().ok()?,
        ..base.clone()
    })
}

/// One GET on a fresh connection: status, `Location`, and at most [`MAX_OUTPUT`] bytes of body.
async fn get(
    url: &Url,
    headers: &HeaderMap,
) -> Result<(StatusCode, Option<String>, Vec<u8>), String> {
    let failed = |err: &dyn std::fmt::Display| format!("Get {:?}: {err}", url.to_string());
    let address = authority(&url.host, url.port);
    let stream = TcpStream::connect(&address)
        .await
        .map_err(|err| failed(&format!("dial tcp {address}: {err}")))?;
    if !url.https {
        return exchange(TokioIo::new(stream), url, headers).await;
    }
    let name = ServerName::try_from(url.host.clone()).map_err(|err| failed(&err))?;
    let tls = TlsConnector::from(tls_config())
        .connect(name, stream)
        .await
        .map_err(|err| failed(&format!("tls handshake with {address}: {err}")))?;
    exchange(TokioIo::new(tls), url, headers).await
}

/// The GET itself, over a connected (and maybe TLS) stream.
async fn exchange<T>(
    io: T,
    url: &Url,
    headers: &HeaderMap,
) -> Result<(StatusCode, Option<String>, Vec<u8>), String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let failed = |err: &dyn std::fmt::Display| format!("Get {:?}: {err}", url.to_string());
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|err| failed(&err))?;
    let mut request = Request::get(url.path.clone())
        .body(Empty::<Bytes>::new())
        .map_err(|err| failed(&err))?;
    *request.headers_mut() = headers.clone();
    let exchange = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|err| failed(&err))?;
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = response.into_body();
        let mut read = Vec::new();
        while read.len() < MAX_OUTPUT {
            match body.frame().await {
                None => break,
                Some(Err(err)) => return Err(failed(&err)),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        read.extend_from_slice(&data);
                    }
                }
            }
        }
        read.truncate(MAX_OUTPUT);
        Ok((status, location, read))
    };
    // Drive the connection and the exchange together, so that a timeout drops both.
    let mut exchange = std::pin::pin!(exchange);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = &mut exchange => result,
        closed = &mut connection => match closed {
            Ok(()) => exchange.await,
            Err(err) => Err(failed(&err)),
        },
    }
}

/// The TLS client configuration of HTTPS probes, built once: ring, HTTP/1.1 by ALPN, and
/// [`SkipCertificateVerification`].
fn tls_config() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("the ring provider supports rustls' default protocol versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(SkipCertificateVerification(provider)))
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        })
        .clone()
}

/// Accepts any server certificate (Go's `InsecureSkipVerify`, which the kubelet's HTTPS probes
/// use), while still checking that the handshake was signed by the certificate's key.
#[derive(Debug)]
struct SkipCertificateVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for SkipCertificateVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use berth_api::{
        IntOrString,
        core_v1::{ContainerPort, HttpHeader},
    };
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;
    use crate::{probe::Health, runtime::ContainerId};

    /// A request as the test server saw it: request line and lower-cased headers.
    #[derive(Debug, Clone)]
    struct Seen {
        line: String,
        headers: Vec<(String, String)>,
    }

    impl Seen {
        fn header(&self, name: &str) -> Vec<&str> {
            self.headers
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect()
        }
    }

    type Responder = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

    /// A tiny HTTP/1.1 server on 127.0.0.1: answers each request with `respond(path)` (a full
    /// response head and body) and closes the connection; `None` never answers.
    async fn serve(
        respond: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> (u16, Arc<Mutex<Vec<Seen>>>) {
        serve_with(None, Arc::new(respond)).await
    }

    /// [`serve`] over TLS with a fresh self-signed certificate for `localhost`.
    async fn serve_tls(
        respond: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> (u16, Arc<Mutex<Vec<Seen>>>) {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        serve_with(Some(acceptor), Arc::new(respond)).await
    }

    async fn serve_with(
        tls: Option<tokio_rustls::TlsAcceptor>,
        respond: Responder,
    ) -> (u16, Arc<Mutex<Vec<Seen>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (log, respond, tls) = (log.clone(), respond.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        None => answer(stream, log, respond).await,
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                answer(stream, log, respond).await;
                            }
                        }
                    }
                });
            }
        });
        (port, seen)
    }

    /// Reads one request head from `stream`, logs it and answers it.
    async fn answer<S>(mut stream: S, log: Arc<Mutex<Vec<Seen>>>, respond: Responder)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let mut request = Vec::new();
        let mut buf = [0; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let text = String::from_utf8_lossy(&request).into_owned();
        let mut lines = text.split("\r\n");
        let line = lines.next().unwrap_or_default().to_owned();
        let headers = lines
            .filter_map(|l| l.split_once(": "))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
            .collect();
        let path = line.split(' ').nth(1).unwrap_or_default().to_owned();
        log.lock().unwrap().push(Seen { line, headers });
        match respond(&path) {
            Some(response) => {
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
            None => std::future::pending::<()>().await,
        }
    }

    fn response(status: &str, extra: &str, body: &str) -> Option<String> {
        Some(format!(
            "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
    }

    fn target() -> ProbeTarget {
        ProbeTarget {
            container: "web".into(),
            container_id: ContainerId("web-1".into()),
            ports: vec![ContainerPort {
                name: Some("http".into()),
                container_port: 1,
                ..Default::default()
            }],
            pod_ip: Some("127.0.0.1".parse().unwrap()),
            env: Vec::new(),
        }
    }

    fn action(port: u16, path: &str) -> HttpGetAction {
        HttpGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(i32::from(port)),
            ..Default::default()
        }
    }

    const TIMEOUT: Duration = Duration::from_secs(2);

    #[tokio::test]
    async fn success_sends_kubelet_like_headers() {
        let (port, seen) = serve(|_| response("200 OK", "", "fine")).await;
        let mut get = action(port, "healthz?full=1");
        get.http_headers = vec![
            HttpHeader {
                name: "X-Probe".into(),
                value: "a".into(),
            },
            HttpHeader {
                name: "X-Probe".into(),
                value: "b".into(),
            },
        ];
        let outcome = probe(&get, &target(), TIMEOUT, "berth-probe/0.1.0")
            .await
            .unwrap();
        assert_eq!(outcome, Outcome::success("fine"));
        let seen = seen.lock().unwrap()[0].clone();
        assert_eq!(seen.line, "GET /healthz?full=1 HTTP/1.1");
        assert_eq!(
            seen.header("host"),
            vec![format!("127.0.0.1:{port}").as_str()]
        );
        assert_eq!(seen.header("user-agent"), vec!["berth-probe/0.1.0"]);
        assert_eq!(seen.header("accept"), vec!["*/*"]);
        assert_eq!(seen.header("connection"), vec!["close"]);
        assert_eq!(seen.header("x-probe"), vec!["a", "b"]);
    }

    #[tokio::test]
    async fn host_and_user_agent_headers_can_be_overridden() {
        let (port, seen) = serve(|_| response("204 No Content", "", "")).await;
        let mut get = action(port, "/");
        get.http_headers = vec![
            HttpHeader {
                name: "Host".into(),
                value: "example.test".into(),
            },
            HttpHeader {
                name: "User-Agent".into(),
                value: "custom".into(),
            },
        ];
        assert_eq!(
            probe(&get, &target(), TIMEOUT, "berth-probe/0.1.0")
                .await
                .unwrap()
                .health,
            Health::Success
        );
        let seen = seen.lock().unwrap()[0].clone();
        assert_eq!(seen.header("host"), vec!["example.test"]);
        assert_eq!(seen.header("user-agent"), vec!["custom"]);
    }

    #[tokio::test]
    async fn status_codes_decide() {
        let (port, _) = serve(|path| match path {
            "/500" => response("500 Internal Server Error", "", "boom"),
            "/404" => response("404 Not Found", "", ""),
            "/399" => response("399 Whatever", "", ""),
            "/200" => response("200 OK", "", ""),
            _ => response("400 Bad Request", "", ""),
        })
        .await;
        let cases = [
            (
                "/500",
                Outcome::failure("HTTP probe failed with statuscode: 500"),
            ),
            (
                "/404",
                Outcome::failure("HTTP probe failed with statuscode: 404"),
            ),
            (
                "/400",
                Outcome::failure("HTTP probe failed with statuscode: 400"),
            ),
            (
                "/399",
                Outcome::success("Probe terminated redirects, Response body: "),
            ),
            ("/200", Outcome::success("")),
        ];
        for (path, expected) in cases {
            assert_eq!(
                probe(&action(port, path), &target(), TIMEOUT, "ua")
                    .await
                    .unwrap(),
                expected,
                "{path}"
            );
        }
    }

    #[tokio::test]
    async fn same_host_redirects_are_followed_other_hosts_are_not() {
        let (port, seen) = serve(|path| match path {
            "/old" => response("302 Found", "Location: /new\r\n", ""),
            "/new" => response("200 OK", "", "moved here"),
            "/to-broken" => response("301 Moved Permanently", "Location: broken\r\n", ""),
            "/broken" => response("503 Service Unavailable", "", ""),
            "/away" => response(
                "302 Found",
                "Location: http://elsewhere.invalid/x\r\n",
                "bye",
            ),
            "/loop" => response("307 Temporary Redirect", "Location: /loop\r\n", ""),
            _ => response("404 Not Found", "", ""),
        })
        .await;
        let run = |path: &'static str| async move {
            probe(&action(port, path), &target(), TIMEOUT, "ua")
                .await
                .unwrap()
        };
        assert_eq!(run("/old").await, Outcome::success("moved here"));
        assert_eq!(
            run("/to-broken").await,
            Outcome::failure("HTTP probe failed with statuscode: 503")
        );
        assert_eq!(
            run("/away").await,
            Outcome::success("Probe terminated redirects, Response body: bye")
        );
        let looped = run("/loop").await;
        assert_eq!(looped.health, Health::Failure);
        assert!(
            looped.output.ends_with("stopped after 10 redirects"),
            "{}",
            looped.output
        );
        let paths: Vec<String> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.line.clone())
            .collect();
        assert!(
            !paths.iter().any(|p| p.contains("/x ")),
            "never went to the other host: {paths:?}"
        );
        assert_eq!(
            paths.iter().filter(|p| p.starts_with("GET /loop ")).count(),
            11
        );
    }

    #[tokio::test]
    async fn timeout_covers_a_silent_server() {
        let (port, _) = serve(|_| None).await;
        let started = std::time::Instant::now();
        let outcome = probe(
            &action(port, "/"),
            &target(),
            Duration::from_millis(200),
            "ua",
        )
        .await
        .unwrap();
        assert_eq!(outcome.health, Health::Failure);
        assert!(
            outcome.output.contains("timeout after 200ms"),
            "{}",
            outcome.output
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn body_is_read_at_most_10_kib() {
        let (port, _) = serve(|_| response("200 OK", "", &"x".repeat(64 * 1024))).await;
        let outcome = probe(&action(port, "/"), &target(), TIMEOUT, "ua")
            .await
            .unwrap();
        assert_eq!(outcome.health, Health::Success);
        assert_eq!(outcome.output.len(), MAX_OUTPUT);
    }

    #[tokio::test]
    async fn named_port_and_refused_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let free_port = listener.local_addr().unwrap().port();
        drop(listener);
        let mut t = target();
        t.ports[0].container_port = i32::from(free_port);
        let get = HttpGetAction {
            port: "http".into(),
            ..Default::default()
        };
        let refused = probe(&get, &t, TIMEOUT, "ua").await.unwrap();
        assert_eq!(refused.health, Health::Failure);
        assert!(
            refused
                .output
                .contains(&format!("dial tcp 127.0.0.1:{free_port}")),
            "{}",
            refused.output
        );
        let unknown = HttpGetAction {
            port: "admin".into(),
            ..Default::default()
        };
        assert!(matches!(
            probe(&unknown, &t, TIMEOUT, "ua").await,
            Err(ProbeError::UnknownPortName { .. })
        ));
    }

    #[tokio::test]
    async fn https_skips_certificate_verification() {
        // The certificate names localhost and is signed by nobody; the probe goes to 127.0.0.1.
        let (port, seen) = serve_tls(|path| match path {
            "/healthz" => response("200 OK", "", "secure"),
            "/old" => response("301 Moved Permanently", "Location: /healthz\r\n", ""),
            _ => response("500 Internal Server Error", "", ""),
        })
        .await;
        let https = |path: &str| HttpGetAction {
            scheme: Some(UriScheme::Https),
            ..action(port, path)
        };
        let outcome = probe(&https("/healthz"), &target(), TIMEOUT, "ua")
            .await
            .unwrap();
        assert_eq!(outcome, Outcome::success("secure"));
        let redirected = probe(&https("/old"), &target(), TIMEOUT, "ua")
            .await
            .unwrap();
        assert_eq!(
            redirected,
            Outcome::success("secure"),
            "same-host redirect kept https"
        );
        let failing = probe(&https("/other"), &target(), TIMEOUT, "ua")
            .await
            .unwrap();
        assert_eq!(failing.health, Health::Failure);
        assert_eq!(seen.lock().unwrap().len(), 4);

        // Plain HTTP to the TLS port fails rather than hangs.
        let plain = probe(&action(port, "/healthz"), &target(), TIMEOUT, "ua")
            .await
            .unwrap();
        assert_eq!(plain.health, Health::Failure);
    }

    #[test]
    fn resolves_locations() {
        let base = Url {
            https: false,
            host: "10.0.0.1".into(),
            port: 8080,
            path: "/a/b?q=1".parse().unwrap(),
        };
        let path = |l: &str| resolve_location(&base, l).map(|u| u.to_string());
        assert_eq!(path("/c").as_deref(), Some("http://10.0.0.1:8080/c"));
        assert_eq!(
            path("c?d=2").as_deref(),
            Some("http://10.0.0.1:8080/a/c?d=2")
        );
        assert_eq!(
            path("http://h.test/x").as_deref(),
            Some("http://h.test:80/x")
        );
        assert_eq!(path("//h.test:81").as_deref(), Some("http://h.test:81/"));
        assert_eq!(
            path("https://h.test/").as_deref(),
            Some("https://h.test:443/")
        );
        assert_eq!(path("http://[::1]:9/").as_deref(), Some("http://[::1]:9/"));
    }
}
