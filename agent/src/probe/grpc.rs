//! `grpc` probes: the standard health protocol (`grpc.health.v1.Health/Check`), answered
//! `SERVING` for success, as the kubelet's `pkg/probe/grpc` does it (plaintext HTTP/2, pod IP).
//!
//! Why `h2` and a hand-written message instead of tonic and prost: the probe makes one unary
//! call whose request has a single string field (`service = 1`) and whose response has a single
//! enum field (`status = 1`). Encoding that is a tag byte, a length and the bytes; decoding it is a
//! varint walk that skips unknown fields. gRPC's framing on top of HTTP/2 is a 5-byte prefix
//! (compressed flag, big-endian length) and a `grpc-status` trailer (or header, for a
//! trailers-only answer). A code generator, a protobuf runtime and a tower stack would be far
//! more code than this, for one call; `h2` is already in the tree under hyper.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use h2::client::SendRequest;
use http::{HeaderMap, Request};
use tokio::net::TcpStream;

use super::{Outcome, authority, seconds};

/// The health service's path.
const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";
/// A health answer is a few bytes; refuse to buffer more than this.
const MAX_RESPONSE: usize = 64 * 1024;

/// `HealthCheckResponse.ServingStatus`.
fn serving_status_name(status: u64) -> String {
    match status {
        0 => "UNKNOWN".into(),
        1 => "SERVING".into(),
        2 => "NOT_SERVING".into(),
        3 => "SERVICE_UNKNOWN".into(),
        other => other.to_string(),
    }
}

/// gRPC status codes as Go's `codes.Code` prints them.
fn code_name(code: u32) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    NAMES
        .get(code as usize)
        .map_or_else(|| format!("Code({code})"), |name| (*name).to_owned())
}

const DEADLINE_EXCEEDED: u32 = 4;
const UNIMPLEMENTED: u32 = 12;

/// How a Check call ended.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    /// `grpc-status: 0` and the response's serving status.
    Status(u64),
    /// A non-OK `grpc-status`.
    Error { code: u32, message: String },
}

/// Checks `service` ("" for the server as a whole) at `host:port`. The connection and the call
/// each get `timeout`, as in the kubelet.
pub async fn probe(
    host: &str,
    port: u16,
    service: &str,
    timeout: Duration,
    user_agent: &str,
) -> Outcome {
    let address = authority(host, port);
    let connect = async {
        let stream = TcpStream::connect(&address)
            .await
            .map_err(|e| e.to_string())?;
        h2::client::handshake(stream)
            .await
            .map_err(|e| e.to_string())
    };
    let (client, connection) = match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(connected)) => connected,
        Ok(Err(err)) => {
            return Outcome::failure(format!(
                "timeout: failed to connect service {address:?} within {}: {err}",
                seconds(timeout)
            ));
        }
        Err(_) => {
            return Outcome::failure(format!(
                "timeout: failed to connect service {address:?} within {}: i/o timeout",
                seconds(timeout)
            ));
        }
    };
    let call = async {
        let mut call = std::pin::pin!(check(client, &address, service, timeout, user_agent));
        let mut connection = std::pin::pin!(connection);
        tokio::select! {
            reply = &mut call => reply,
            closed = &mut connection => match closed {
                Ok(()) => call.await,
                Err(err) => Err(err.to_string()),
            },
        }
    };
    let deadline_exceeded = || {
        Outcome::failure(format!(
            "timeout: health rpc did not complete within {}",
            seconds(timeout)
        ))
    };
    match tokio::time::timeout(timeout, call).await {
        Err(_) => deadline_exceeded(),
        Ok(Err(err)) => Outcome::failure(format!("error: health rpc probe failed: {err}")),
        Ok(Ok(Reply::Status(1))) => Outcome::success("service healthy"),
        Ok(Ok(Reply::Status(other))) => Outcome::failure(format!(
            "service unhealthy (responded with {:?})",
            serving_status_name(other)
        )),
        Ok(Ok(Reply::Error {
            code: UNIMPLEMENTED,
            message,
        })) => Outcome::failure(format!(
            "this server does not implement the grpc health protocol (grpc.health.v1.Health): \
             rpc error: code = Unimplemented desc = {message}"
        )),
        Ok(Ok(Reply::Error {
            code: DEADLINE_EXCEEDED,
            ..
        })) => deadline_exceeded(),
        Ok(Ok(Reply::Error { code, message })) => Outcome::failure(format!(
            "error: health rpc probe failed: rpc error: code = {} desc = {message}",
            code_name(code)
        )),
    }
}

/// One unary `Check` call on an established HTTP/2 connection.
async fn check(
    client: SendRequest<Bytes>,
    address: &str,
    service: &str,
    timeout: Duration,
    user_agent: &str,
) -> Result<Reply, String> {
    let request = Request::post(format!("http://{address}{CHECK_PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", user_agent)
        .header("grpc-timeout", format!("{}m", timeout.as_millis().max(1)))
        .body(())
        .map_err(|e| e.to_string())?;
    let mut client = client.ready().await.map_err(|e| e.to_string())?;
    let (response, mut send) = client
        .send_request(request, false)
        .map_err(|e| e.to_string())?;
    send.send_data(encode_request(service), true)
        .map_err(|e| e.to_string())?;
    let response = response.await.map_err(|e| e.to_string())?;
    let (head, mut body) = response.into_parts();
    if head.status != http::StatusCode::OK {
        return Err(format!(
            "unexpected HTTP status code {} from the server",
            head.status.as_u16()
        ));
    }
    // A trailers-only answer carries the status in its headers.
    if let Some(reply) = status_of(&head.headers) {
        return reply;
    }
    let mut message = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        let _ = body.flow_control().release_capacity(chunk.len());
        message.extend_from_slice(&chunk);
        if message.len() > MAX_RESPONSE {
            return Err(format!("health response larger than {MAX_RESPONSE} bytes"));
        }
    }
    let trailers = body
        .trailers()
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    match status_of(&trailers) {
        Some(Ok(Reply::Status(_))) => decode_response(&message).map(Reply::Status),
        Some(other) => other,
        None => Err("server closed the stream without sending trailers".into()),
    }
}

/// The `grpc-status`/`grpc-message` pair of a header block, if it has one.
fn status_of(headers: &HeaderMap) -> Option<Result<Reply, String>> {
    let code = headers.get("grpc-status")?;
    let code = match code.to_str().ok().and_then(|c| c.parse::<u32>().ok()) {
        Some(code) => code,
        None => return Some(Err(format!("malformed grpc-status {code:?}"))),
    };
    if code == 0 {
        return Some(Ok(Reply::Status(0)));
    }
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .unwrap_or("")
        .to_owned();
    Some(Ok(Reply::Error { code, message }))
}

/// A length-prefixed `HealthCheckRequest { string service = 1; }`.
fn encode_request(service: &str) -> Bytes {
    let mut message = BytesMut::new();
    if !service.is_empty() {
        message.put_u8(0x0a); // field 1, wire type 2 (length-delimited)
        put_varint(&mut message, service.len() as u64);
        message.put_slice(service.as_bytes());
    }
    let mut framed = BytesMut::with_capacity(5 + message.len());
    framed.put_u8(0); // not compressed
    framed.put_u32(message.len() as u32);
    framed.put_slice(&message);
    framed.freeze()
}

fn put_varint(buf: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        buf.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

fn take_varint(buf: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf
            .split_first()
            .ok_or("truncated varint in health response")?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint longer than 10 bytes in health response".into())
}

fn skip(buf: &mut &[u8], n: usize) -> Result<(), String> {
    if buf.len() < n {
        return Err("truncated field in health response".into());
    }
    *buf = &buf[n..];
    Ok(())
}

/// The `status` (field 1) of a length-prefixed `HealthCheckResponse`; 0 (UNKNOWN) when absent,
/// as proto3 omits default values. Unknown fields are skipped.
fn decode_response(framed: &[u8]) -> Result<u64, String> {
    let (prefix, rest) = framed
        .split_at_checked(5)
        .ok_or("health response shorter than its 5-byte prefix")?;
    if prefix[0] != 0 {
        return Err("health response is compressed, which was not asked for".into());
    }
    let length = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    let mut message = rest
        .get(..length)
        .ok_or("health response shorter than its declared length")?;
    let mut status = 0;
    while !message.is_empty() {
        let key = take_varint(&mut message)?;
        match (key >> 3, key & 7) {
            (1, 0) => status = take_varint(&mut message)?,
            (_, 0) => {
                take_varint(&mut message)?;
            }
            (_, 1) => skip(&mut message, 8)?,
            (_, 2) => {
                let n = take_varint(&mut message)?;
                skip(&mut message, usize::try_from(n).map_err(|e| e.to_string())?)?;
            }
            (_, 5) => skip(&mut message, 4)?,
            (field, wire) => {
                return Err(format!(
                    "unsupported wire type {wire} of field {field} in health response"
                ));
            }
        }
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use http::{HeaderValue, Response};
    use tokio::net::TcpListener;

    use super::*;
    use crate::probe::Health;

    /// How the test server answers a Check.
    #[derive(Clone)]
    enum Answer {
        Status(u8),
        TrailersOnly(u32, &'static str),
        Silence,
    }

    /// An h2c server on 127.0.0.1 answering every call with `answer`; records request bodies and
    /// paths.
    async fn serve(answer: Answer) -> (u16, Arc<Mutex<Vec<(String, Vec<u8>)>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (log, answer) = (log.clone(), answer.clone());
                tokio::spawn(async move {
                    let Ok(mut connection) = h2::server::handshake(socket).await else {
                        return;
                    };
                    while let Some(Ok((request, mut respond))) = connection.accept().await {
                        let path = request.uri().path().to_owned();
                        let mut body = request.into_body();
                        let mut data = Vec::new();
                        while let Some(Ok(chunk)) = body.data().await {
                            let _ = body.flow_control().release_capacity(chunk.len());
                            data.extend_from_slice(&chunk);
                        }
                        log.lock().unwrap().push((path, data));
                        let head = || {
                            Response::builder()
                                .status(200)
                                .header("content-type", "application/grpc")
                        };
                        match answer {
                            Answer::Status(status) => {
                                let mut send = respond
                                    .send_response(head().body(()).unwrap(), false)
                                    .unwrap();
                                let frame: &[u8] = if status == 0 {
                                    &[0, 0, 0, 0, 0]
                                } else {
                                    &[0, 0, 0, 0, 2, 0x08, status]
                                };
                                send.send_data(Bytes::copy_from_slice(frame), false)
                                    .unwrap();
                                let mut trailers = HeaderMap::new();
                                trailers.insert("grpc-status", HeaderValue::from_static("0"));
                                send.send_trailers(trailers).unwrap();
                            }
                            Answer::TrailersOnly(code, message) => {
                                let response = head()
                                    .header("grpc-status", code.to_string())
                                    .header("grpc-message", message);
                                respond
                                    .send_response(response.body(()).unwrap(), true)
                                    .unwrap();
                            }
                            Answer::Silence => std::future::pending::<()>().await,
                        }
                    }
                });
            }
        });
        (port, seen)
    }

    const TIMEOUT: Duration = Duration::from_secs(2);

    #[tokio::test]
    async fn serving_is_success_and_the_service_name_is_sent() {
        let (port, seen) = serve(Answer::Status(1)).await;
        assert_eq!(
            probe("127.0.0.1", port, "db", TIMEOUT, "ua").await.health,
            Health::Success
        );
        assert_eq!(
            probe("127.0.0.1", port, "", TIMEOUT, "ua").await.health,
            Health::Success
        );
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen[0],
            (
                CHECK_PATH.to_owned(),
                vec![0, 0, 0, 0, 4, 0x0a, 2, b'd', b'b']
            )
        );
        assert_eq!(seen[1].1, vec![0, 0, 0, 0, 0]);
    }

    #[tokio::test]
    async fn other_statuses_and_errors_fail_with_kubelet_messages() {
        let cases = [
            (
                Answer::Status(2),
                "service unhealthy (responded with \"NOT_SERVING\")".to_owned(),
            ),
            (
                Answer::Status(0),
                "service unhealthy (responded with \"UNKNOWN\")".to_owned(),
            ),
            (
                Answer::TrailersOnly(12, "unknown service grpc.health.v1.Health"),
                "this server does not implement the grpc health protocol (grpc.health.v1.Health): \
                 rpc error: code = Unimplemented desc = unknown service grpc.health.v1.Health"
                    .to_owned(),
            ),
            (
                Answer::TrailersOnly(5, "unknown service"),
                "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service"
                    .to_owned(),
            ),
        ];
        for (answer, expected) in cases {
            let (port, _) = serve(answer).await;
            assert_eq!(
                probe("127.0.0.1", port, "db", TIMEOUT, "ua").await,
                Outcome::failure(expected)
            );
        }
    }

    #[tokio::test]
    async fn refused_and_silent_servers_fail_within_the_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed = listener.local_addr().unwrap().port();
        drop(listener);
        let refused = probe("127.0.0.1", closed, "", TIMEOUT, "ua").await;
        assert_eq!(refused.health, Health::Failure);
        assert!(
            refused
                .output
                .starts_with("timeout: failed to connect service"),
            "{}",
            refused.output
        );

        let (port, _) = serve(Answer::Silence).await;
        let silent = probe("127.0.0.1", port, "", Duration::from_millis(200), "ua").await;
        assert_eq!(
            silent,
            Outcome::failure("timeout: health rpc did not complete within 200ms")
        );
    }

    #[test]
    fn decodes_responses_skipping_unknown_fields() {
        assert_eq!(decode_response(&[0, 0, 0, 0, 2, 0x08, 1]), Ok(1));
        assert_eq!(decode_response(&[0, 0, 0, 0, 0]), Ok(0));
        // Field 2 (length-delimited "hi"), field 3 (fixed32), then status 2.
        assert_eq!(
            decode_response(&[
                0, 0, 0, 0, 11, 0x12, 2, b'h', b'i', 0x1d, 1, 2, 3, 4, 0x08, 2
            ]),
            Ok(2)
        );
        assert!(decode_response(&[0, 0, 0]).is_err());
        assert!(decode_response(&[1, 0, 0, 0, 0]).is_err());
        assert!(decode_response(&[0, 0, 0, 0, 3, 0x08, 1]).is_err());
        assert!(decode_response(&[0, 0, 0, 0, 2, 0x08, 0x80]).is_err());
        let long = "s".repeat(200);
        let encoded = encode_request(&long);
        assert_eq!(&encoded[5..8], &[0x0a, 0xc8, 0x01]);
        assert_eq!(encoded.len(), 5 + 3 + 200);
    }
}
