//! The proxy on loopback, without root: cluster IPs and node addresses are `127.x.y.z`
//! addresses (local already, so [`NoAddresses`]), the endpoints two tokio echo servers that
//! first send their name. Services and Endpoints are written to an in-memory store and reach the
//! proxy through the real [`Catalog`].

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use berth_api::{
    ObjectMeta,
    core_v1::{
        EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Event, Service, ServicePort,
        ServiceSpec, ServiceType,
    },
};
use berth_proxy::{Catalog, NoAddresses, Proxy, ProxyConfig};
use berth_store::{Options, RedbStore};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// A loopback network of our own (`127.N.M.0/24`), so that tests running at the same time on
/// this machine do not meet.
fn network(test: u8) -> [u8; 3] {
    let pid = std::process::id();
    [127, (pid % 200) as u8 + 20, test]
}

fn ip(net: [u8; 3], host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(net[0], net[1], net[2], host))
}

/// A port free on every address of `ips`.
async fn free_port(ips: &[IpAddr]) -> u16 {
    'search: loop {
        let probe = TcpListener::bind((ips[0], 0)).await.unwrap();
        let port = probe.local_addr().unwrap().port();
        let mut held = vec![probe];
        for ip in &ips[1..] {
            match TcpListener::bind((*ip, port)).await {
                Ok(listener) => held.push(listener),
                Err(_) => continue 'search,
            }
        }
        return port;
    }
}

/// An echo server that first writes its `name` and a newline.
async fn named_echo(address: SocketAddr, name: &'static str) -> tokio::task::JoinHandle<()> {
    let listener = TcpListener::bind(address).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                stream
                    .write_all(format!("{name}\n").as_bytes())
                    .await
                    .unwrap();
                let (mut reader, mut writer) = stream.split();
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
            });
        }
    })
}

/// Connects and reads the backend's name.
async fn connect(address: SocketAddr) -> std::io::Result<(TcpStream, String)> {
    let mut stream = TcpStream::connect(address).await?;
    let mut name = Vec::new();
    loop {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if byte[0] == b'\n' {
            break;
        }
        name.push(byte[0]);
    }
    Ok((stream, String::from_utf8(name).unwrap()))
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

fn service(name: &str, cluster_ip: IpAddr, port: u16) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..ObjectMeta::default()
        },
        spec: ServiceSpec {
            cluster_ip: Some(cluster_ip.to_string()),
            ports: vec![ServicePort {
                name: Some("echo".into()),
                port: i32::from(port),
                ..ServicePort::default()
            }],
            ..ServiceSpec::default()
        },
        ..Service::default()
    }
}

fn endpoints(name: &str, ips: &[IpAddr], port: u16) -> Endpoints {
    Endpoints {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..ObjectMeta::default()
        },
        subsets: vec![EndpointSubset {
            addresses: ips
                .iter()
                .map(|ip| EndpointAddress {
                    ip: ip.to_string(),
                    ..EndpointAddress::default()
                })
                .collect(),
            ports: vec![EndpointPort {
                name: Some("echo".into()),
                port: i32::from(port),
                protocol: None,
            }],
            ..EndpointSubset::default()
        }],
        ..Endpoints::default()
    }
}

fn start_proxy(store: &RedbStore, node_address: IpAddr) -> tokio::task::JoinHandle<()> {
    let proxy = Proxy::new(ProxyConfig::new(Arc::new(NoAddresses)).with_node_address(node_address));
    let catalog = Catalog::spawn(store.clone());
    tokio::spawn(proxy.run(store.clone(), catalog, std::future::pending()))
}

#[tokio::test]
async fn round_robin_endpoint_removal_and_refused_endpoints() {
    let net = network(1);
    let (cluster, a, b, dead) = (ip(net, 1), ip(net, 10), ip(net, 11), ip(net, 12));
    let backend_port = free_port(&[a, b, dead]).await;
    let service_port = free_port(&[cluster]).await;
    named_echo(SocketAddr::new(a, backend_port), "a").await;
    named_echo(SocketAddr::new(b, backend_port), "b").await;

    let store = RedbStore::open_in_memory(Options::default()).unwrap();
    store
        .create(service("echo", cluster, service_port))
        .await
        .unwrap();
    store
        .create(endpoints("echo", &[a, b], backend_port))
        .await
        .unwrap();
    let proxy = start_proxy(&store, ip(net, 2));
    let address = SocketAddr::new(cluster, service_port);
    eventually("the proxy listens", || async {
        connect(address).await.is_ok()
    })
    .await;

    // Round robin: consecutive connections alternate.
    let mut names = Vec::new();
    for _ in 0..4 {
        names.push(connect(address).await.unwrap().1);
    }
    assert!(
        names.windows(2).all(|w| w[0] != w[1]),
        "not round robin: {names:?}"
    );

    // An established connection to `a` outlives a's removal from the endpoints.
    let mut established = loop {
        let (stream, name) = connect(address).await.unwrap();
        if name == "a" {
            break stream;
        }
    };
    let stored: Endpoints = store.get_as(Some("default"), "echo").await.unwrap();
    let mut changed = endpoints("echo", &[b], backend_port);
    changed.metadata = stored.metadata;
    store.update(changed).await.unwrap();
    eventually("new connections avoid the removed endpoint", || async {
        let mut all_b = true;
        for _ in 0..3 {
            all_b &= connect(address).await.is_ok_and(|(_, name)| name == "b");
        }
        all_b
    })
    .await;
    established.write_all(b"still here\n").await.unwrap();
    let mut echoed = [0u8; 11];
    established.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"still here\n");

    // An endpoint that refuses is skipped: every connection still reaches a live one.
    let stored: Endpoints = store.get_as(Some("default"), "echo").await.unwrap();
    let mut changed = endpoints("echo", &[dead, b], backend_port);
    changed.metadata = stored.metadata;
    store.update(changed).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..4 {
        assert_eq!(connect(address).await.unwrap().1, "b");
    }

    // The listener closes when the Service goes.
    store
        .delete(
            &berth_store::key_of::<Service>(Some("default"), "echo"),
            Default::default(),
        )
        .await
        .unwrap();
    eventually("the listener is closed", || async {
        TcpStream::connect(address).await.is_err()
    })
    .await;
    proxy.abort();
}

#[tokio::test]
async fn node_ports_and_bind_failures() {
    let net = network(2);
    let (cluster, node, a) = (ip(net, 1), ip(net, 2), ip(net, 10));
    let backend_port = free_port(&[a]).await;
    let service_port = free_port(&[cluster]).await;
    let node_port = free_port(&[node]).await;
    named_echo(SocketAddr::new(a, backend_port), "a").await;

    let store = RedbStore::open_in_memory(Options::default()).unwrap();
    let mut web = service("web", cluster, service_port);
    web.spec.type_ = Some(ServiceType::NodePort);
    web.spec.ports[0].node_port = Some(i32::from(node_port));
    store.create(web).await.unwrap();
    store
        .create(endpoints("web", &[a], backend_port))
        .await
        .unwrap();
    // Something else holds the port of this one.
    let blocked_ip = ip(net, 3);
    let squatter = TcpListener::bind((blocked_ip, 0)).await.unwrap();
    let taken = squatter.local_addr().unwrap().port();
    store
        .create(service("blocked", blocked_ip, taken))
        .await
        .unwrap();

    let proxy = start_proxy(&store, node);
    let node_address = SocketAddr::new(node, node_port);
    eventually("the node port answers", || async {
        connect(node_address).await.is_ok()
    })
    .await;
    assert_eq!(connect(node_address).await.unwrap().1, "a");
    assert_eq!(
        connect(SocketAddr::new(cluster, service_port))
            .await
            .unwrap()
            .1,
        "a"
    );

    eventually("the bind failure is reported", || async {
        store
            .list_as::<Event>(Some("default"), None)
            .await
            .unwrap()
            .items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("PortBindFailed")
                    && e.involved_object.name.as_deref() == Some("blocked")
                    && e.message
                        .as_deref()
                        .is_some_and(|m| m.contains(&format!("{blocked_ip}:{taken}")))
            })
    })
    .await;
    drop(squatter);
    proxy.abort();
}

/// A kernel data path that records what it was given and works while `working` is set.
#[derive(Default)]
struct FakeKernel {
    synced: std::sync::Mutex<Vec<Vec<berth_proxy::ClusterRule>>>,
    working: std::sync::atomic::AtomicBool,
}

impl berth_proxy::KernelServices for FakeKernel {
    fn sync(&self, rules: &[berth_proxy::ClusterRule]) -> std::io::Result<()> {
        if !self.working.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::other("no nf_tables here"));
        }
        self.synced.lock().unwrap().push(rules.to_vec());
        Ok(())
    }
}

/// A proxy over `store` with a working fake kernel data path: the kernel, the proxy's drain,
/// the sender that stops it and its task.
fn start_kernel_proxy(
    store: &RedbStore,
) -> (
    Arc<FakeKernel>,
    berth_proxy::Drain,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let kernel = Arc::new(FakeKernel::default());
    kernel
        .working
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let proxy =
        Proxy::new(ProxyConfig::new(Arc::new(NoAddresses)).with_kernel_data_path(kernel.clone()));
    let drain = proxy.drain();
    let catalog = Catalog::spawn(store.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(proxy.run(store.clone(), catalog, async {
        let _ = stopped.await;
    }));
    (kernel, drain, stop, task)
}

#[tokio::test]
async fn cluster_ips_go_to_the_kernel_data_path_and_back_to_listeners_when_it_fails() {
    let net = network(3);
    let (cluster, a) = (ip(net, 1), ip(net, 10));
    let backend_port = free_port(&[a]).await;
    let service_port = free_port(&[cluster]).await;
    named_echo(SocketAddr::new(a, backend_port), "a").await;

    let store = RedbStore::open_in_memory(Options::default()).unwrap();
    store
        .create(service("echo", cluster, service_port))
        .await
        .unwrap();
    store
        .create(endpoints("echo", &[a], backend_port))
        .await
        .unwrap();
    let (kernel, _, stop, task) = start_kernel_proxy(&store);

    let (IpAddr::V4(cluster4), IpAddr::V4(a4)) = (cluster, a) else {
        unreachable!()
    };
    let expected = vec![berth_proxy::ClusterRule {
        cluster_ip: cluster4,
        port: service_port,
        node_port: None,
        endpoints: vec![std::net::SocketAddrV4::new(a4, backend_port)],
    }];
    eventually("the kernel gets the Service's rule", || async {
        kernel.synced.lock().unwrap().last() == Some(&expected)
    })
    .await;
    // The kernel carries the cluster IP: no userspace listener on it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let address = SocketAddr::new(cluster, service_port);
    assert!(TcpStream::connect(address).await.is_err());

    // The endpoint leaves: the rule loses it.
    let stored: Endpoints = store.get_as(Some("default"), "echo").await.unwrap();
    let mut changed = endpoints("echo", &[], backend_port);
    changed.metadata = stored.metadata;
    store.update(changed).await.unwrap();
    eventually("the rule has no endpoint", || async {
        kernel
            .synced
            .lock()
            .unwrap()
            .last()
            .is_some_and(|rules| rules.len() == 1 && rules[0].endpoints.is_empty())
    })
    .await;

    // The kernel stops working: the proxy listens on the cluster IP itself.
    kernel
        .working
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let stored: Endpoints = store.get_as(Some("default"), "echo").await.unwrap();
    let mut changed = endpoints("echo", &[a], backend_port);
    changed.metadata = stored.metadata;
    store.update(changed).await.unwrap();
    eventually("the proxy listens on the cluster IP", || async {
        connect(address).await.is_ok_and(|(_, name)| name == "a")
    })
    .await;

    // Shutdown removes the kernel's rules (it works again by then).
    kernel
        .working
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = stop.send(());
    task.await.unwrap();
    assert_eq!(
        kernel.synced.lock().unwrap().last(),
        Some(&Vec::new()),
        "the last sync empties the kernel's rules"
    );
}

#[tokio::test]
async fn drain_resolves_once_no_service_sends_new_connections_to_the_address() {
    let net = network(4);
    let (cluster, a, b) = (ip(net, 1), ip(net, 10), ip(net, 11));
    let store = RedbStore::open_in_memory(Options::default()).unwrap();
    store.create(service("web", cluster, 8080)).await.unwrap();
    store.create(endpoints("web", &[a, b], 8000)).await.unwrap();
    let (kernel, drain, stop, task) = start_kernel_proxy(&store);
    eventually("the kernel gets both endpoints", || async {
        kernel
            .synced
            .lock()
            .unwrap()
            .last()
            .is_some_and(|rules| rules.len() == 1 && rules[0].endpoints.len() == 2)
    })
    .await;

    // An address no Service sends to is drained at once; an endpoint is not.
    let never = ip(net, 99);
    tokio::time::timeout(Duration::from_secs(1), drain.drained(never))
        .await
        .expect("an address that never was an endpoint is drained at once");
    let waiting = tokio::spawn({
        let drain = drain.clone();
        async move { drain.drained(a).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "a is still an endpoint");

    // The Endpoints lose a: drained resolves, and by then the kernel's rule has only b.
    let stored: Endpoints = store.get_as(Some("default"), "web").await.unwrap();
    let mut changed = endpoints("web", &[b], 8000);
    changed.metadata = stored.metadata;
    store.update(changed).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("drained after the endpoint left")
        .unwrap();
    let rules = kernel.synced.lock().unwrap().last().cloned().unwrap();
    let IpAddr::V4(b4) = b else { unreachable!() };
    assert_eq!(rules[0].endpoints, [std::net::SocketAddrV4::new(b4, 8000)]);

    // A stopped proxy sends nothing anywhere.
    let _ = stop.send(());
    task.await.unwrap();
    tokio::time::timeout(Duration::from_secs(1), drain.drained(b))
        .await
        .expect("drained once the proxy stopped");
}
