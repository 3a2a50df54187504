//! Service controller + Endpoints controller + proxy + DNS together, on loopback and without
//! root: the service network is a `127.N.5.0/24` of this test's own, so the cluster IP the
//! controller allocates is local already. Pods are store objects whose IPs are those of two echo
//! servers; their readiness and deletion are written as the agent would.
//!
//! What it shows: a Service gets an address, its ready pods become its endpoints, the proxy and
//! the DNS answer for it, and a pod that starts terminating receives no new connections.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use berth_api::{
    Object, Time,
    core_v1::{Pod, PodCondition, PodConditionType, PodPhase, PodStatus, Service},
    meta::ConditionStatus,
    testing,
};
use berth_controller::{
    Clock, Context, endpoints,
    service::{self, Allocator, ServiceNetwork},
};
use berth_proxy::{Catalog, Dns, DnsConfig, NoAddresses, Proxy, ProxyConfig};
use berth_store::{Options, RedbStore};
use hickory_proto::{
    op::{Message, MessageType, OpCode, Query},
    rr::{Name, RData, RecordType},
};
use tokio::{
    io::AsyncReadExt,
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream, UdpSocket},
};

fn net() -> [u8; 2] {
    [127, (std::process::id() % 200) as u8 + 20]
}

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

async fn backend_name(address: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect(address).await.ok()?;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut byte))
        .await
        .ok()?
        .is_ok()
    {
        if byte[0] == b'\n' {
            return String::from_utf8(line).ok();
        }
        line.push(byte[0]);
    }
    None
}

async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..500 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn create_ready_pod(store: &RedbStore, name: &str, ip: IpAddr, port: u16) {
    let container = testing::container("app", "busybox")
        .with_port("http", i32::from(port))
        .build();
    let mut pod = testing::pod(name).with_containers(vec![container]).build();
    pod.metadata.labels = [("app".to_owned(), "web".to_owned())].into();
    let created = store.create(pod).await.unwrap();
    let Object::Pod(mut pod) = created else {
        unreachable!("a pod was created")
    };
    pod.status = Some(PodStatus {
        phase: Some(PodPhase::Running),
        pod_ip: Some(ip.to_string()),
        conditions: vec![PodCondition {
            type_: PodConditionType::Ready,
            status: ConditionStatus::True,
            last_probe_time: None,
            last_transition_time: Some(Time::now()),
            reason: None,
            message: None,
        }],
        ..PodStatus::default()
    });
    store.update_status(pod).await.unwrap();
}

async fn resolve(dns: SocketAddr, name: &str) -> Vec<Ipv4Addr> {
    let mut query = Message::new(7, MessageType::Query, OpCode::Query);
    query
        .queries
        .push(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&query.to_vec().unwrap(), dns).await.unwrap();
    let mut buffer = vec![0u8; 4096];
    let (len, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buffer))
        .await
        .unwrap()
        .unwrap();
    Message::from_vec(&buffer[..len])
        .unwrap()
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_service_from_allocation_to_traffic_and_a_terminating_pod() {
    let [a, b] = net();
    let store = RedbStore::open_in_memory(Options::default()).unwrap();
    let ctx = Context::new(store.clone(), Clock::new());
    let network = ServiceNetwork {
        network: Ipv4Addr::new(a, b, 5, 0),
        prefix_len: 24,
        node_ports: 30000..=32767,
    };
    let allocator = Arc::new(Allocator::new(ctx.clone(), network));
    let services = tokio::spawn(service::controller(store.clone()).run(
        service::reconcile,
        service::error_policy,
        allocator,
    ));
    let endpoint_controller = tokio::spawn(endpoints::controller(store.clone()).run(
        endpoints::reconcile,
        endpoints::error_policy,
        Arc::new(ctx),
    ));
    let catalog = Catalog::spawn(store.clone());
    let proxy = Proxy::new(ProxyConfig::new(Arc::new(NoAddresses)));
    let proxy = tokio::spawn(proxy.run(store.clone(), catalog.clone(), std::future::pending()));
    let dns = Dns::bind(DnsConfig::new("127.0.0.1:0".parse().unwrap()), catalog)
        .await
        .unwrap();
    let dns_address = dns.local_addr().unwrap();
    let dns = tokio::spawn(dns.run(std::future::pending()));

    // Two pods serving on the same port at their own addresses.
    let (one, two) = (
        IpAddr::V4(Ipv4Addr::new(a, b, 6, 10)),
        IpAddr::V4(Ipv4Addr::new(a, b, 6, 11)),
    );
    let port = {
        let probe = TcpListener::bind((one, 0)).await.unwrap();
        probe.local_addr().unwrap().port()
    };
    named_echo(SocketAddr::new(one, port), "one").await;
    named_echo(SocketAddr::new(two, port), "two").await;
    create_ready_pod(&store, "one", one, port).await;
    create_ready_pod(&store, "two", two, port).await;
    // Port 80 of the cluster IP: free, since the address is ours alone.
    store
        .create(testing::service("web", 80).build())
        .await
        .unwrap();

    let cluster_ip = eventually("a cluster IP is allocated", || async {
        let web: Service = store.get_as(Some("default"), "web").await.ok()?;
        service::cluster_ip(&web)?.parse::<IpAddr>().ok()
    })
    .await;
    let IpAddr::V4(cluster_v4) = cluster_ip else {
        panic!("an IPv4 cluster IP")
    };
    assert_eq!(&cluster_v4.octets()[..3], &[a, b, 5]);
    let address = SocketAddr::new(cluster_ip, 80);

    let names = eventually("both pods receive connections", || async {
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(backend_name(address).await?);
        }
        (seen.contains(&"one".to_owned()) && seen.contains(&"two".to_owned())).then_some(seen)
    })
    .await;
    assert_eq!(names.len(), 4);
    assert_eq!(
        resolve(dns_address, "web.default.svc.cluster.local.").await,
        vec![cluster_v4]
    );

    // Pod `one` starts graceful deletion (a finalizer holds it, as the agent's stop would):
    // it leaves the endpoints, and new connections go to `two` only.
    let key = berth_store::key_of::<Pod>(Some("default"), "one");
    store
        .guaranteed_update(&key, |object| {
            let Object::Pod(mut pod) = object else {
                return Ok::<_, berth_store::Error>(None);
            };
            pod.metadata.finalizers.push("test/hold".into());
            Ok(Some(pod.into()))
        })
        .await
        .unwrap();
    store.delete(&key, Default::default()).await.unwrap();
    eventually("the terminating pod gets no new connections", || async {
        let mut all_two = true;
        for _ in 0..4 {
            all_two &= backend_name(address).await.as_deref() == Some("two");
        }
        all_two.then_some(())
    })
    .await;

    for task in [services, endpoint_controller, proxy, dns] {
        task.abort();
    }
}
