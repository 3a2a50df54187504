//! The cluster DNS over real UDP and TCP sockets on 127.0.0.1, fed from an in-memory store
//! through the real [`Catalog`]. No upstream is configured (this machine has no outside
//! network), so names outside the cluster domain are REFUSED.

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::Duration,
};

use berth_api::{
    ObjectMeta,
    core_v1::{EndpointAddress, EndpointSubset, Endpoints, Service, ServicePort, ServiceSpec},
};
use berth_proxy::{Catalog, Dns, DnsConfig};
use berth_store::{Options, RedbStore};
use hickory_proto::{
    op::{Message, MessageType, OpCode, Query, ResponseCode},
    rr::{Name, RData, RecordType},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpStream, UdpSocket},
};

fn service(name: &str, cluster_ip: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..ObjectMeta::default()
        },
        spec: ServiceSpec {
            cluster_ip: Some(cluster_ip.into()),
            ports: vec![ServicePort {
                port: 80,
                ..ServicePort::default()
            }],
            ..ServiceSpec::default()
        },
        ..Service::default()
    }
}

fn query_message(name: &str, record_type: RecordType) -> Message {
    let mut message = Message::new(0x4242, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message
        .queries
        .push(Query::query(Name::from_ascii(name).unwrap(), record_type));
    message
}

async fn ask_udp(server: SocketAddr, name: &str, record_type: RecordType) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let query = query_message(name, record_type).to_vec().unwrap();
    socket.send_to(&query, server).await.unwrap();
    let mut buffer = vec![0u8; 4096];
    let (len, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buffer))
        .await
        .expect("an answer within 5s")
        .unwrap();
    let answer = Message::from_vec(&buffer[..len]).unwrap();
    assert_eq!(answer.metadata.id, 0x4242);
    assert_eq!(answer.metadata.message_type, MessageType::Response);
    answer
}

async fn ask_tcp(server: SocketAddr, name: &str) -> Message {
    let mut stream = TcpStream::connect(server).await.unwrap();
    let query = query_message(name, RecordType::A).to_vec().unwrap();
    stream
        .write_u16(u16::try_from(query.len()).unwrap())
        .await
        .unwrap();
    stream.write_all(&query).await.unwrap();
    let len = stream.read_u16().await.unwrap();
    let mut buffer = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buffer).await.unwrap();
    Message::from_vec(&buffer).unwrap()
}

fn addresses(answer: &Message) -> Vec<Ipv4Addr> {
    let mut ips: Vec<Ipv4Addr> = answer
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect();
    ips.sort();
    ips
}

async fn start(store: &RedbStore) -> SocketAddr {
    let catalog = Catalog::spawn(store.clone());
    let dns = Dns::bind(DnsConfig::new("127.0.0.1:0".parse().unwrap()), catalog)
        .await
        .unwrap();
    let address = dns.local_addr().unwrap();
    tokio::spawn(dns.run(std::future::pending()));
    address
}

#[tokio::test]
async fn answers_services_headless_services_and_nxdomain() {
    let store = RedbStore::open_in_memory(Options::default()).unwrap();
    store.create(service("web", "10.74.0.10")).await.unwrap();
    store.create(service("db", "None")).await.unwrap();
    store
        .create(Endpoints {
            metadata: ObjectMeta {
                name: Some("db".into()),
                namespace: Some("default".into()),
                ..ObjectMeta::default()
            },
            subsets: vec![EndpointSubset {
                addresses: ["10.73.0.6", "10.73.0.5"]
                    .iter()
                    .map(|ip| EndpointAddress {
                        ip: (*ip).into(),
                        ..EndpointAddress::default()
                    })
                    .collect(),
                not_ready_addresses: vec![EndpointAddress {
                    ip: "10.73.0.7".into(),
                    ..EndpointAddress::default()
                }],
                ports: Vec::new(),
            }],
            ..Endpoints::default()
        })
        .await
        .unwrap();
    let server = start(&store).await;

    // The catalog syncs right after start; wait for it.
    let mut answer = ask_udp(server, "web.default.svc.cluster.local.", RecordType::A).await;
    for _ in 0..100 {
        if answer.metadata.response_code == ResponseCode::NoError {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        answer = ask_udp(server, "web.default.svc.cluster.local.", RecordType::A).await;
    }
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(answer.metadata.authoritative);
    assert_eq!(addresses(&answer), vec![Ipv4Addr::new(10, 74, 0, 10)]);

    // Upper case and the short `svc` form.
    let answer = ask_udp(server, "WEB.default.svc.", RecordType::A).await;
    assert_eq!(addresses(&answer), vec![Ipv4Addr::new(10, 74, 0, 10)]);

    // Headless: the ready endpoints only.
    let answer = ask_udp(server, "db.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(
        addresses(&answer),
        vec![Ipv4Addr::new(10, 73, 0, 5), Ipv4Addr::new(10, 73, 0, 6)]
    );

    // An existing name without AAAA data: NODATA, not NXDOMAIN.
    let answer = ask_udp(server, "web.default.svc.cluster.local.", RecordType::AAAA).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(answer.answers.is_empty());

    for missing in [
        "nope.default.svc.cluster.local.",
        "web.other.svc.cluster.local.",
        "something.cluster.local.",
    ] {
        let answer = ask_udp(server, missing, RecordType::A).await;
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::NXDomain,
            "{missing}"
        );
    }

    // Outside the cluster domain, with no resolver to forward to.
    let answer = ask_udp(server, "example.com.", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::Refused);

    // TCP.
    let answer = ask_tcp(server, "web.default.svc.cluster.local.").await;
    assert_eq!(addresses(&answer), vec![Ipv4Addr::new(10, 74, 0, 10)]);
}

#[tokio::test]
async fn answers_follow_service_changes() {
    let store = RedbStore::open_in_memory(Options::default()).unwrap();
    let server = start(&store).await;
    let name = "late.default.svc.cluster.local.";
    assert_eq!(
        ask_udp(server, name, RecordType::A)
            .await
            .metadata
            .response_code,
        ResponseCode::NXDomain
    );
    store.create(service("late", "10.74.1.1")).await.unwrap();
    let mut found = Vec::new();
    for _ in 0..100 {
        found = addresses(&ask_udp(server, name, RecordType::A).await);
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(found, vec![Ipv4Addr::new(10, 74, 1, 1)]);
    store
        .delete(
            &berth_store::key_of::<Service>(Some("default"), "late"),
            Default::default(),
        )
        .await
        .unwrap();
    let mut code = ResponseCode::NoError;
    for _ in 0..100 {
        code = ask_udp(server, name, RecordType::A)
            .await
            .metadata
            .response_code;
        if code == ResponseCode::NXDomain {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(code, ResponseCode::NXDomain);
}
