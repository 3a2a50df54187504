//! The cluster DNS: what CoreDNS's `kubernetes` plugin answers for Services, and a forwarder for
//! the rest.
//!
//! - `NAME.NAMESPACE.svc.cluster.local` (and `NAME.NAMESPACE.svc`): `A` records with the
//!   Service's cluster IP, or for a headless Service the IPs of its ready endpoints. A pod's
//!   search path (`NAMESPACE.svc.cluster.local svc.cluster.local cluster.local`) makes the short
//!   forms `NAME` and `NAME.NAMESPACE` resolve on the client side. Other types of an existing
//!   name get an empty answer (NODATA), as do `NAMESPACE.svc.cluster.local`,
//!   `svc.cluster.local` and `cluster.local`; any other name in `cluster.local` is NXDOMAIN.
//! - Everything else is forwarded over UDP to the host's resolvers (`nameserver` lines of
//!   `/etc/resolv.conf`, without our own address), each tried in turn; none configured is
//!   REFUSED, none answering is SERVFAIL.
//! - Answers are computed from the [`Catalog`] at query time, so they follow Service and
//!   Endpoints changes at once; their TTL is short (5 s) for the same reason.
//!
//! UDP and TCP (two-byte length prefix, several queries per connection) are served on the same
//! address. UDP answers larger than 512 bytes (or the client's EDNS payload size) are truncated
//! so that the client retries over TCP.
//!
//! Only message encoding comes from `hickory-proto`; serving is this small loop rather than
//! `hickory-server`'s authority machinery, which would need a catalog of zones kept in sync
//! with the store, where the answer here is one lookup in the current snapshot.

use std::{
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    path::Path,
    sync::Arc,
    time::Duration,
};

use berth_controller::service as services;
use hickory_proto::{
    op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode},
    rr::{RData, Record, RecordType, rdata::A},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, UdpSocket},
};

use crate::catalog::{Catalog, Snapshot};

/// Where the DNS listens and where it forwards.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    pub listen: SocketAddr,
    /// The cluster domain, `cluster.local`.
    pub domain: String,
    pub upstreams: Vec<SocketAddr>,
    pub ttl: u32,
    /// How long to wait for one upstream.
    pub forward_timeout: Duration,
}

impl DnsConfig {
    /// Listens on `listen` and forwards nowhere (non-cluster names are REFUSED).
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            domain: "cluster.local".to_owned(),
            upstreams: Vec::new(),
            ttl: 5,
            forward_timeout: Duration::from_secs(2),
        }
    }

    /// Listens on `listen` and forwards to the resolvers of `/etc/resolv.conf`.
    pub fn from_resolv_conf(listen: SocketAddr) -> Self {
        let upstreams = read_resolv_conf(Path::new("/etc/resolv.conf"))
            .unwrap_or_default()
            .into_iter()
            .filter(|upstream| *upstream != listen)
            .collect();
        Self {
            upstreams,
            ..Self::new(listen)
        }
    }
}

/// The `nameserver` addresses of a resolv.conf, port 53.
pub fn read_resolv_conf(path: &Path) -> io::Result<Vec<SocketAddr>> {
    Ok(parse_resolv_conf(&std::fs::read_to_string(path)?))
}

pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next())?
        })
        .filter_map(|address| address.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The DNS server, bound; [`Dns::run`] serves.
pub struct Dns {
    config: Arc<DnsConfig>,
    catalog: Catalog,
    udp: Arc<UdpSocket>,
    tcp: TcpListener,
}

impl Dns {
    /// Binds UDP and TCP on `config.listen` (port 0 picks one port for both).
    pub async fn bind(config: DnsConfig, catalog: Catalog) -> io::Result<Self> {
        let udp = UdpSocket::bind(config.listen).await?;
        let tcp = TcpListener::bind(udp.local_addr()?).await?;
        Ok(Self {
            config: Arc::new(config),
            catalog,
            udp: Arc::new(udp),
            tcp,
        })
    }

    /// The bound address (UDP and TCP).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let mut buffer = vec![0u8; 65535];
        let mut connections = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                received = self.udp.recv_from(&mut buffer) => match received {
                    Ok((len, peer)) => {
                        let query = buffer[..len].to_vec();
                        let (config, catalog, udp) =
                            (Arc::clone(&self.config), self.catalog.clone(), Arc::clone(&self.udp));
                        connections.spawn(async move {
                            if let Some(answer) = answer(&config, &catalog, &query, true).await
                                && let Err(err) = udp.send_to(&answer, peer).await
                            {
                                tracing::debug!(%peer, error = %err, "cannot send a DNS answer");
                            }
                        });
                    }
                    Err(err) => tracing::debug!(error = %err, "DNS receive failed"),
                },
                accepted = self.tcp.accept() => match accepted {
                    Ok((stream, _)) => {
                        let (config, catalog) = (Arc::clone(&self.config), self.catalog.clone());
                        connections.spawn(serve_tcp(stream, config, catalog));
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "DNS accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    }
}

async fn serve_tcp(mut stream: TcpStream, config: Arc<DnsConfig>, catalog: Catalog) {
    const IDLE: Duration = Duration::from_secs(10);
    loop {
        let Ok(Ok(len)) = tokio::time::timeout(IDLE, stream.read_u16()).await else {
            return;
        };
        let mut query = vec![0u8; usize::from(len)];
        if stream.read_exact(&mut query).await.is_err() {
            return;
        }
        let Some(answer) = answer(&config, &catalog, &query, false).await else {
            return;
        };
        let Ok(len) = u16::try_from(answer.len()) else {
            return;
        };
        if stream.write_u16(len).await.is_err() || stream.write_all(&answer).await.is_err() {
            return;
        }
    }
}

/// The answer to the raw query `query`; `None` when it is not worth one (not a query).
async fn answer(config: &DnsConfig, catalog: &Catalog, query: &[u8], udp: bool) -> Option<Vec<u8>> {
    let request = match Message::from_vec(query) {
        Ok(request) => request,
        Err(err) => {
            tracing::debug!(error = %err, "undecodable DNS message");
            let id = u16::from_be_bytes([*query.first()?, *query.get(1)?]);
            return Message::error_msg(id, OpCode::Query, ResponseCode::FormErr)
                .to_vec()
                .ok();
        }
    };
    if request.metadata.message_type != MessageType::Query {
        return None;
    }
    let local = {
        let snapshot = catalog.current();
        resolve(config, &snapshot, &request)
    };
    let response = match local {
        Some(response) => response,
        None => return Some(forward(config, &request, query).await),
    };
    let limit = if udp {
        request
            .edns
            .as_ref()
            .map_or(512, |e| e.max_payload().max(512))
    } else {
        u16::MAX
    };
    let bytes = response.to_vec().ok()?;
    if bytes.len() > usize::from(limit) {
        return response.truncate().to_vec().ok();
    }
    Some(bytes)
}

/// The local answer to `request`, or `None` when the name is not ours (forward it).
fn resolve(config: &DnsConfig, snapshot: &Snapshot, request: &Message) -> Option<Message> {
    let query = request.queries.first()?;
    let name = query.name().to_ascii().to_ascii_lowercase();
    let name = name.trim_end_matches('.');
    let labels: Vec<&str> = name.split('.').collect();
    let domain: Vec<&str> = config.domain.split('.').collect();

    let in_domain =
        labels.len() >= domain.len() && labels[labels.len() - domain.len()..] == domain[..];
    let relative: &[&str] = if in_domain {
        &labels[..labels.len() - domain.len()]
    } else if labels.len() == 3 && labels[2] == "svc" {
        // NAME.NAMESPACE.svc
        &labels[..]
    } else {
        return None;
    };

    let mut response = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
    response.metadata = Metadata::response_from_request(&request.metadata);
    response.metadata.authoritative = true;
    response.metadata.recursion_available = true;
    response.queries = request.queries.clone();
    if request.edns.is_some() {
        response.edns = Some(Edns::new());
    }

    let exists = match relative {
        [] | ["svc"] => true,
        [namespace, "svc"] => snapshot.services.keys().any(|(ns, _)| ns == namespace),
        [service, namespace, "svc"] => {
            let key = ((*namespace).to_owned(), (*service).to_owned());
            match snapshot.services.get(&key) {
                None => false,
                Some(service) => {
                    if query.query_type() == RecordType::A {
                        let ips: Vec<IpAddr> = if services::is_headless(service) {
                            snapshot.ready_ips(&key)
                        } else {
                            services::cluster_ip(service)
                                .and_then(|ip| ip.parse().ok())
                                .into_iter()
                                .collect()
                        };
                        for ip in ips {
                            if let IpAddr::V4(ip) = ip {
                                response.answers.push(Record::from_rdata(
                                    query.name().clone(),
                                    config.ttl,
                                    RData::A(A(ip)),
                                ));
                            }
                        }
                    }
                    true
                }
            }
        }
        _ => false,
    };
    if !exists {
        response.metadata.response_code = ResponseCode::NXDomain;
    }
    Some(response)
}

/// Forwards the raw `query` to each upstream in turn; SERVFAIL when none answers, REFUSED when
/// there are none.
async fn forward(config: &DnsConfig, request: &Message, query: &[u8]) -> Vec<u8> {
    let id = request.metadata.id;
    let failure = |code| {
        let mut response = Message::error_msg(id, request.metadata.op_code, code);
        response.metadata.recursion_desired = request.metadata.recursion_desired;
        response.metadata.recursion_available = true;
        response.queries = request.queries.clone();
        response.to_vec().unwrap_or_default()
    };
    if config.upstreams.is_empty() {
        return failure(ResponseCode::Refused);
    }
    for upstream in &config.upstreams {
        match ask(*upstream, query, id, config.forward_timeout).await {
            Ok(answer) => return answer,
            Err(err) => tracing::debug!(%upstream, error = %err, "upstream resolver failed"),
        }
    }
    failure(ResponseCode::ServFail)
}

async fn ask(
    upstream: SocketAddr,
    query: &[u8],
    id: u16,
    timeout: Duration,
) -> io::Result<Vec<u8>> {
    let local: SocketAddr = if upstream.is_ipv4() {
        "0.0.0.0:0".parse().map_err(io::Error::other)?
    } else {
        "[::]:0".parse().map_err(io::Error::other)?
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buffer = vec![0u8; 65535];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let len = tokio::time::timeout_at(deadline, socket.recv(&mut buffer))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer"))??;
        // Ignore stray datagrams that do not answer this query.
        if len >= 2 && u16::from_be_bytes([buffer[0], buffer[1]]) == id {
            buffer.truncate(len);
            return Ok(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers_are_read_on_port_53() {
        let text = "# comment\nsearch example.org\nnameserver 192.0.2.1\nnameserver ::1\nnameserver bogus\noptions ndots:5\n";
        assert_eq!(
            parse_resolv_conf(text),
            vec![
                "192.0.2.1:53".parse::<SocketAddr>().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
    }
}
