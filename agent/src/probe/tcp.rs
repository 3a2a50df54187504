//! `tcpSocket` probes: success when a TCP connection is established within the timeout.

use std::time::Duration;

use tokio::net::TcpStream;

use super::{Outcome, authority, seconds};

/// Connects to `host:port` and closes the connection at once, as the kubelet does.
pub async fn probe(host: &str, port: u16, timeout: Duration) -> Outcome {
    let address = authority(host, port);
    match tokio::time::timeout(timeout, TcpStream::connect(&address)).await {
        Ok(Ok(stream)) => {
            drop(stream);
            Outcome::success("")
        }
        Ok(Err(err)) => Outcome::failure(format!("dial tcp {address}: {err}")),
        Err(_) => Outcome::failure(format!(
            "dial tcp {address}: i/o timeout after {}",
            seconds(timeout)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::Health;

    #[tokio::test]
    async fn open_port_succeeds_closed_port_fails() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(
            probe("127.0.0.1", port, Duration::from_secs(1))
                .await
                .health,
            Health::Success
        );
        drop(listener);
        let closed = probe("127.0.0.1", port, Duration::from_secs(1)).await;
        assert_eq!(closed.health, Health::Failure);
        assert!(
            closed
                .output
                .starts_with(&format!("dial tcp 127.0.0.1:{port}: ")),
            "{}",
            closed.output
        );
    }
}
