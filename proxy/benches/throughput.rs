//! Throughput and latency of the service proxy against a direct connection, on loopback.
//!
//! `cargo bench -p berth-proxy` (no root: cluster IPs are loopback addresses). Two measurements,
//! each direct to a tokio echo server and through the proxy:
//! - **throughput**: one connection sends 256 MiB in 64 KiB writes while reading the echo back;
//! - **latency**: 20 000 sequential 64-byte request/response round trips on one connection, and
//!   the time to open a connection and do one round trip (new connection per request, as HTTP/1.0
//!   clients do), 2 000 times.
//!
//! For an end-to-end figure with real pods: run `busybox httpd` behind a Service and compare
//! `wrk -c 32 -d 10s http://CLUSTER_IP/` with `wrk ... http://POD_IP/` from the host.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use berth_api::core_v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service, ServicePort, ServiceSpec,
};
use berth_proxy::{Catalog, NoAddresses, Proxy, ProxyConfig, Snapshot};
use berth_store::{Options, RedbStore};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut reader, mut writer) = stream.split();
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
            });
        }
    });
    address
}

async fn throughput(target: SocketAddr) -> f64 {
    const TOTAL: usize = 256 << 20;
    let stream = TcpStream::connect(target).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let started = Instant::now();
    let sender = tokio::spawn(async move {
        let chunk = vec![7u8; 64 << 10];
        let mut sent = 0;
        while sent < TOTAL {
            writer.write_all(&chunk).await.unwrap();
            sent += chunk.len();
        }
        writer.shutdown().await.unwrap();
    });
    let mut buffer = vec![0u8; 64 << 10];
    let mut received = 0;
    while received < TOTAL {
        let n = reader.read(&mut buffer).await.unwrap();
        assert!(n > 0, "echo ended early");
        received += n;
    }
    sender.await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    (TOTAL as f64 / (1 << 20) as f64) / seconds
}

async fn round_trips(target: SocketAddr) -> Duration {
    const COUNT: u32 = 20_000;
    let mut stream = TcpStream::connect(target).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let request = [1u8; 64];
    let mut response = [0u8; 64];
    let started = Instant::now();
    for _ in 0..COUNT {
        stream.write_all(&request).await.unwrap();
        stream.read_exact(&mut response).await.unwrap();
    }
    started.elapsed() / COUNT
}

async fn connects(target: SocketAddr) -> Duration {
    const COUNT: u32 = 2_000;
    let request = [1u8; 64];
    let mut response = [0u8; 64];
    let started = Instant::now();
    for _ in 0..COUNT {
        let mut stream = TcpStream::connect(target).await.unwrap();
        stream.set_nodelay(true).unwrap();
        stream.write_all(&request).await.unwrap();
        stream.read_exact(&mut response).await.unwrap();
    }
    started.elapsed() / COUNT
}

fn snapshot(cluster_ip: &str, port: u16, backend: SocketAddr) -> Snapshot {
    let service = Service {
        metadata: berth_api::ObjectMeta {
            name: Some("bench".into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: ServiceSpec {
            cluster_ip: Some(cluster_ip.into()),
            ports: vec![ServicePort {
                port: i32::from(port),
                ..Default::default()
            }],
            ..Default::default()
        },
        ..Default::default()
    };
    let endpoints = Endpoints {
        subsets: vec![EndpointSubset {
            addresses: vec![EndpointAddress {
                ip: backend.ip().to_string(),
                ..Default::default()
            }],
            ports: vec![EndpointPort {
                port: i32::from(backend.port()),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let key = ("default".to_owned(), "bench".to_owned());
    let mut snapshot = Snapshot {
        synced: true,
        ..Snapshot::default()
    };
    snapshot.services.insert(key.clone(), service);
    snapshot.endpoints.insert(key, endpoints);
    snapshot
}

fn main() {
    // `cargo bench` passes `--bench`; test runners (`cargo test --benches`, nextest) list or run
    // bench targets without it: there is nothing to test here, so list nothing and run nothing.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let backend = echo_server().await;
        let cluster_ip = "127.0.0.77";
        let port = {
            let probe = TcpListener::bind((cluster_ip, 0)).await.unwrap();
            probe.local_addr().unwrap().port()
        };
        let (catalog, _sender) = Catalog::fixed(snapshot(cluster_ip, port, backend));
        let store = RedbStore::open_in_memory(Options::default()).unwrap();
        let proxy = Proxy::new(ProxyConfig::new(Arc::new(NoAddresses)));
        tokio::spawn(proxy.run(store, catalog, std::future::pending()));
        let proxied: SocketAddr = format!("{cluster_ip}:{port}").parse().unwrap();
        for _ in 0..100 {
            if TcpStream::connect(proxied).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for (label, target) in [("direct", backend), ("proxied", proxied)] {
            println!(
                "{label:8} throughput {:8.1} MiB/s",
                throughput(target).await
            );
            println!("{label:8} round trip {:8.1?}", round_trips(target).await);
            println!("{label:8} connect+rt {:8.1?}", connects(target).await);
        }
    });
}
