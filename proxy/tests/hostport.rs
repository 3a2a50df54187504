//! Host ports on loopback, without root: "pods" are Pod objects in an in-memory store whose
//! `podIP` is a `127.x.y.z` address with a tokio echo server on the container port; the real
//! [`Catalog`] and [`Proxy`] publish their `hostPort`s.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use berth_api::{
    ObjectMeta,
    core_v1::{Container, ContainerPort, Event, Pod, PodPhase, PodSpec, PodStatus},
};
use berth_proxy::{Catalog, NoAddresses, Proxy, ProxyConfig};
use berth_store::{DeleteOptions, Options, RedbStore};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// A loopback network of our own (`127.N.M.0/24`, apart from the proxy tests' ones).
fn network(test: u8) -> [u8; 3] {
    let pid = std::process::id();
    [127, (pid % 200) as u8 + 20, 100 + test]
}

fn ip(net: [u8; 3], host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(net[0], net[1], net[2], host))
}

async fn free_port(ip: IpAddr) -> u16 {
    TcpListener::bind((ip, 0))
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An echo server that first writes its `name` and a newline.
async fn named_echo(address: SocketAddr, name: &'static str) {
    let listener = TcpListener::bind(address).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = stream.write_all(format!("{name}\n").as_bytes()).await;
                let (mut reader, mut writer) = stream.split();
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
            });
        }
    });
}

/// Connects and reads the backend's name (the echo servers' first line).
async fn name_at(address: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(address).await?;
    let mut name = Vec::new();
    loop {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        if n == 0 || byte[0] == b'\n' {
            break;
        }
        name.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&name).into_owned())
}

/// Retries `check` for up to 5 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

fn pod(name: &str, host_ip: IpAddr, host_port: u16, container_port: u16) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..ObjectMeta::default()
        },
        spec: PodSpec {
            containers: vec![Container {
                name: "web".into(),
                image: Some("busybox".into()),
                ports: vec![ContainerPort {
                    container_port: i32::from(container_port),
                    host_port: Some(i32::from(host_port)),
                    host_ip: Some(host_ip.to_string()),
                    ..ContainerPort::default()
                }],
                ..Container::default()
            }],
            ..PodSpec::default()
        },
        ..Pod::default()
    }
}

/// Creates `pod` and sets its status to `phase` with `pod_ip`.
async fn run_pod(store: &RedbStore, pod: Pod, pod_ip: IpAddr) {
    let name = pod.metadata.name.clone().unwrap();
    store.create(pod).await.unwrap();
    let created: Pod = store.get_as(Some("default"), &name).await.unwrap();
    set_phase(store, created, PodPhase::Running, pod_ip).await;
}

async fn set_phase(store: &RedbStore, mut pod: Pod, phase: PodPhase, pod_ip: IpAddr) {
    pod.status = Some(PodStatus {
        phase: Some(phase),
        pod_ip: Some(pod_ip.to_string()),
        ..PodStatus::default()
    });
    store.update_status(pod).await.unwrap();
}

async fn host_port_events(store: &RedbStore, pod: &str) -> Vec<String> {
    store
        .list_as::<Event>(Some("default"), None)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some("FailedHostPort")
                && e.involved_object.name.as_deref() == Some(pod)
                && e.involved_object.kind.as_deref() == Some("Pod")
        })
        .filter_map(|e| e.message)
        .collect()
}

#[tokio::test]
async fn host_ports_follow_pods_and_clashes_are_events() {
    let net = network(1);
    let (host, first_ip, second_ip) = (ip(net, 1), ip(net, 10), ip(net, 11));
    let container_port = free_port(first_ip).await;
    named_echo(SocketAddr::new(first_ip, container_port), "first").await;
    named_echo(SocketAddr::new(second_ip, container_port), "second").await;
    let host_port = free_port(host).await;
    let address = SocketAddr::new(host, host_port);

    let store = RedbStore::open_in_memory(Options::default()).unwrap();
    let proxy = Proxy::new(ProxyConfig::new(Arc::new(NoAddresses)));
    let catalog = Catalog::spawn(store.clone());
    let task = tokio::spawn(proxy.run(store.clone(), catalog, std::future::pending()));

    // A pending pod publishes nothing; once running, its host port reaches its container port.
    store
        .create(pod("first", host, host_port, container_port))
        .await
        .unwrap();
    let first: Pod = store.get_as(Some("default"), "first").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(TcpStream::connect(address).await.is_err());
    set_phase(&store, first, PodPhase::Running, first_ip).await;
    eventually("the first pod's host port answers", || async {
        name_at(address).await.is_ok_and(|name| name == "first")
    })
    .await;

    // A second pod asking for the same address gets a Warning naming the holder.
    run_pod(
        &store,
        pod("second", host, host_port, container_port),
        second_ip,
    )
    .await;
    eventually("the clash is reported on the second pod", || async {
        host_port_events(&store, "second")
            .await
            .iter()
            .any(|m| m.contains(&address.to_string()) && m.contains("pod default/first"))
    })
    .await;
    assert_eq!(name_at(address).await.unwrap(), "first");
    assert!(host_port_events(&store, "first").await.is_empty());

    // When the holder goes, the other pod gets the port.
    store
        .delete_with(
            &berth_store::key_of::<Pod>(Some("default"), "first"),
            DeleteOptions {
                grace_period_seconds: Some(0),
                ..DeleteOptions::default()
            },
        )
        .await
        .unwrap();
    eventually("the second pod's host port answers", || async {
        name_at(address).await.is_ok_and(|name| name == "second")
    })
    .await;

    // A pod that stops running no longer publishes.
    let second: Pod = store.get_as(Some("default"), "second").await.unwrap();
    set_phase(&store, second, PodPhase::Succeeded, second_ip).await;
    eventually("the listener is closed", || async {
        TcpStream::connect(address).await.is_err()
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn a_port_in_use_on_the_host_is_an_event() {
    let net = network(2);
    let (host, pod_ip) = (ip(net, 1), ip(net, 10));
    let container_port = free_port(pod_ip).await;
    named_echo(SocketAddr::new(pod_ip, container_port), "web").await;
    let squatter = TcpListener::bind((host, 0)).await.unwrap();
    let taken = squatter.local_addr().unwrap().port();

    let store = RedbStore::open_in_memory(Options::default()).unwrap();
    let proxy = Proxy::new(ProxyConfig::new(Arc::new(NoAddresses)));
    let catalog = Catalog::spawn(store.clone());
    let task = tokio::spawn(proxy.run(store.clone(), catalog, std::future::pending()));
    run_pod(&store, pod("web", host, taken, container_port), pod_ip).await;
    eventually("the bind failure is reported", || async {
        host_port_events(&store, "web")
            .await
            .iter()
            .any(|m| m.contains(&format!("{host}:{taken}")) && m.contains("in use"))
    })
    .await;
    task.abort();
    drop(squatter);
}
