//! Root-only tests of pod networking: real bridges, veth pairs, addresses and routes in real
//! sandboxes. Each test process uses a bridge and CIDR of its own (`bt<pid>`,
//! `10.199.<n>.0/24`), never the daemon's `berth0`, and deletes them when done, even after a
//! failed test. Like the other root test binaries it has its own `main`: the runtime
//! re-executes it as the sandbox shim.
//!
//! Run: `cargo test -p berth-runtime --test network [-- FILTER]` as root.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use berth_runtime::container::{LinuxRuntime, RuntimeConfig};
use berth_runtime::network::{self, Ipam, NetworkConfig, NetworkError};
use berth_runtime::sandbox::{Sandbox, SandboxConfig, SandboxError, SandboxNetwork};
use berth_runtime::syscall::LinuxSyscall;
use nix::sched::CloneFlags;

struct Fixture {
    dir: tempfile::TempDir,
    bridges: std::sync::Mutex<Vec<String>>,
}

impl Fixture {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
            bridges: Default::default(),
        }
    }

    /// A runtime below its own subdirectory with the bridge `bt<pid><suffix>` and `cidr`.
    fn runtime(&self, suffix: &str, cidr: &str) -> LinuxRuntime {
        self.runtime_in(&format!("rt{suffix}"), suffix, cidr)
    }

    /// A runtime with its state in `dir/<base>`, on the bridge `bt<pid><suffix>`.
    fn runtime_in(&self, base: &str, suffix: &str, cidr: &str) -> LinuxRuntime {
        let base = self.dir.path().join(base);
        let mut config = RuntimeConfig::new(base.join("root"), base.join("run"));
        config.shim_exe = std::env::current_exe().expect("current_exe");
        config.network = NetworkConfig {
            bridge: format!("bt{}{suffix}", std::process::id()),
            cidr: cidr.parse().expect("cidr"),
        };
        self.bridges
            .lock()
            .unwrap()
            .push(config.network.bridge.clone());
        LinuxRuntime::new(config, Arc::new(LinuxSyscall))
    }

    fn sandbox<'a>(
        &self,
        runtime: &'a LinuxRuntime,
        name: &str,
        network: SandboxNetwork,
    ) -> Result<SandboxGuard<'a>, SandboxError> {
        let sandbox = runtime.create_sandbox(SandboxConfig {
            id: format!("net-{name}-{}", std::process::id()),
            hostname: name.into(),
            network,
            labels: BTreeMap::new(),
        })?;
        Ok(SandboxGuard { runtime, sandbox })
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for bridge in self.bridges.lock().unwrap().iter() {
            if let Err(err) = network::delete_bridge(bridge) {
                eprintln!("cleanup of bridge {bridge}: {err}");
            }
        }
    }
}

struct SandboxGuard<'a> {
    runtime: &'a LinuxRuntime,
    sandbox: Sandbox,
}

impl SandboxGuard<'_> {
    fn id(&self) -> &str {
        &self.sandbox.config.id
    }

    fn ip(&self) -> Ipv4Addr {
        match self.sandbox.ip {
            Some(IpAddr::V4(ip)) => ip,
            other => panic!("sandbox {} has no IPv4 address: {other:?}", self.id()),
        }
    }

    fn host_veth(&self) -> String {
        let config = self.runtime.config();
        network::host_veth_name(&config.network, &config.root, self.id())
    }
}

impl Drop for SandboxGuard<'_> {
    fn drop(&mut self) {
        if let Err(err) = self.runtime.delete_sandbox(&self.sandbox.config.id) {
            eprintln!("cleanup of sandbox {}: {err}", self.sandbox.config.id);
        }
    }
}

/// A third octet for this process's /24, so parallel test processes rarely share a subnet.
fn octet() -> u32 {
    20 + std::process::id() % 200
}

/// Run `f` on a thread inside the network namespace pinned at `netns`.
fn in_netns<T: Send>(netns: &Path, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let file = std::fs::File::open(netns).expect("open netns");
                nix::sched::setns(file.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .join()
            .expect("netns thread")
    })
}

/// Connect to `to`, say `hello`, return the answer.
fn talk(to: SocketAddr, hello: &str) -> String {
    let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect to {to}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(hello.as_bytes()).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn address_files(ipam: &Ipam) -> Vec<(Ipv4Addr, String)> {
    ipam.allocations().expect("allocations")
}

fn sandboxes_get_addresses_reach_each_other_and_release_them(fx: &Fixture) {
    let n = octet();
    let runtime = fx.runtime("", &format!("10.199.{n}.0/24"));
    let cidr = runtime.config().network.cidr;
    let ipam = Ipam::new(&runtime.config().root, cidr);
    let a = fx
        .sandbox(&runtime, "a", SandboxNetwork::New)
        .expect("sandbox a");
    let b = fx
        .sandbox(&runtime, "b", SandboxNetwork::New)
        .expect("sandbox b");
    let host = fx
        .sandbox(&runtime, "h", SandboxNetwork::Host)
        .expect("host sandbox");

    // Distinct addresses in the CIDR, never the gateway; recorded on disk with their owner.
    assert!(cidr.contains(a.ip()) && cidr.contains(b.ip()));
    assert_ne!(a.ip(), b.ip());
    assert_ne!(a.ip(), cidr.gateway());
    assert_eq!(a.sandbox.prefix_len, Some(24));
    assert_eq!(a.sandbox.gateway, Some(IpAddr::V4(cidr.gateway())));
    assert_eq!(runtime.sandbox(a.id()).unwrap(), a.sandbox);
    assert_eq!(host.sandbox.ip, None);
    assert_eq!(
        address_files(&ipam),
        [(a.ip(), a.id().to_string()), (b.ip(), b.id().to_string())]
    );
    assert!(network::link_exists(&runtime.config().network.bridge).unwrap());
    assert!(network::link_exists(&a.host_veth()).unwrap());
    assert!(network::link_exists(&b.host_veth()).unwrap());

    // Inside: eth0, no leftover temporary peer name.
    let a_net = a.sandbox.net.clone().unwrap();
    let b_net = b.sandbox.net.clone().unwrap();
    assert!(in_netns(&a_net, || network::link_exists("eth0").unwrap()));

    // A listener inside B answers A (through the bridge) and the host (through the gateway).
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let b_ip = b.ip();
    std::thread::scope(|scope| {
        let server = scope.spawn(|| {
            in_netns(&b_net, move || {
                let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("bind in b");
                port_tx.send(listener.local_addr().unwrap().port()).unwrap();
                let mut peers = Vec::new();
                for _ in 0..2 {
                    let (mut stream, peer) = listener.accept().expect("accept in b");
                    let mut hello = String::new();
                    stream.read_to_string(&mut hello).unwrap();
                    stream
                        .write_all(format!("b heard {hello}").as_bytes())
                        .unwrap();
                    peers.push(peer.ip());
                }
                peers
            })
        });
        let port = port_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("listener port");
        let to = SocketAddr::from((b_ip, port));
        let from_a = in_netns(&a_net, || talk(to, "a"));
        assert_eq!(from_a, "b heard a");
        assert_eq!(talk(to, "host"), "b heard host");
        let peers = server.join().expect("server thread");
        assert_eq!(
            peers,
            [IpAddr::V4(a.ip()), IpAddr::V4(cidr.gateway())],
            "A connects from its own address, the host from the gateway"
        );
    });

    // Deleting releases the addresses and removes the host veths.
    let (a_veth, b_veth) = (a.host_veth(), b.host_veth());
    drop((a, b, host));
    assert!(address_files(&ipam).is_empty());
    assert!(!network::link_exists(&a_veth).unwrap());
    assert!(!network::link_exists(&b_veth).unwrap());
}

/// Deleting a sandbox leaves its veth pair to the kernel's teardown of the namespace; when
/// something still holds the namespace open, the pair is deleted directly after the grace,
/// and in both cases the address goes back only once the pair is gone.
fn deleting_a_sandbox_removes_its_pair_whether_or_not_the_namespace_dies(fx: &Fixture) {
    let n = octet();
    let cidr = format!("10.196.{n}.0/24");
    let runtime = fx.runtime("d", &cidr);
    let ipam = Ipam::new(&runtime.config().root, runtime.config().network.cidr);

    let dying = fx
        .sandbox(&runtime, "dying", SandboxNetwork::New)
        .expect("dying");
    let veth = dying.host_veth();
    drop(dying);
    assert!(!network::link_exists(&veth).unwrap());
    assert!(address_files(&ipam).is_empty());

    let held = fx
        .sandbox(&runtime, "held", SandboxNetwork::New)
        .expect("held");
    let veth = held.host_veth();
    let net = held.sandbox.net.clone().expect("own netns");
    // An open fd keeps the namespace, and with it the pair, alive past the unmount.
    let holder = std::fs::File::open(&net).expect("open netns");
    let started = std::time::Instant::now();
    drop(held);
    assert!(
        started.elapsed() >= berth_runtime::sandbox::NETNS_TEARDOWN_GRACE,
        "waited for the teardown first"
    );
    assert!(!network::link_exists(&veth).unwrap());
    assert!(address_files(&ipam).is_empty());
    drop(holder);
}

/// Lines of the host's conntrack table that mention `ip`.
fn conntrack_entries(ip: Ipv4Addr) -> Vec<String> {
    let table = std::fs::read_to_string("/proc/net/nf_conntrack").unwrap_or_default();
    let (src, dst) = (format!("src={ip} "), format!("dst={ip} "));
    table
        .lines()
        .filter(|line| line.contains(&src) || line.contains(&dst))
        .map(str::to_owned)
        .collect()
}

/// Releasing a pod's address also forgets the conntrack entries that lead to it and were
/// never closed, so that a client reusing a source port is not sent to the dead pod.
fn deleting_a_sandbox_forgets_its_conntrack_entries(fx: &Fixture) {
    if !Path::new("/proc/net/nf_conntrack").exists() {
        eprintln!("skipped: no /proc/net/nf_conntrack");
        return;
    }
    let n = octet();
    let cidr = format!("10.196.{n}.0/24");
    let runtime = fx.runtime("c", &cidr);
    // As the daemon does at start: the bridge with its masquerade table, whose nat hook is
    // what turns connection tracking on in the host's namespace (without any such table the
    // kernel tracks nothing and there would be no entry to forget).
    network::ensure_bridge(&runtime.config().network).expect("ensure_bridge");
    let pod = fx
        .sandbox(&runtime, "ct", SandboxNetwork::New)
        .expect("sandbox");
    let ip = pod.ip();
    let net = pod.sandbox.net.clone().expect("own netns");
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    // The pod accepts one connection and goes away without the client ever closing it: its
    // entry is left half-closed, as a pod killed mid-connection leaves it.
    let server = std::thread::spawn(move || {
        in_netns(&net, move || {
            let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("bind");
            port_tx.send(listener.local_addr().unwrap().port()).unwrap();
            let (stream, _) = listener.accept().expect("accept");
            drop(stream);
        })
    });
    let port = port_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("listener port");
    let client = TcpStream::connect_timeout(&SocketAddr::from((ip, port)), Duration::from_secs(5))
        .expect("connect");
    server.join().expect("server thread");
    let open: Vec<String> = conntrack_entries(ip)
        .into_iter()
        .filter(|line| !line.contains("TIME_WAIT") && !line.contains(" CLOSE "))
        .collect();
    assert!(
        !open.is_empty(),
        "the connection left an open conntrack entry"
    );
    drop(pod);
    let left: Vec<String> = conntrack_entries(ip)
        .into_iter()
        .filter(|line| !line.contains("TIME_WAIT") && !line.contains(" CLOSE "))
        .collect();
    assert_eq!(left, Vec::<String>::new());
    drop(client);
}

fn reconcile_cleans_up_after_a_crash(fx: &Fixture) {
    let n = octet();
    let runtime = fx.runtime("c", &format!("10.198.{n}.0/24"));
    let ipam = Ipam::new(&runtime.config().root, runtime.config().network.cidr);
    let alive = fx
        .sandbox(&runtime, "alive", SandboxNetwork::New)
        .expect("alive");
    let crashed = fx
        .sandbox(&runtime, "crashed", SandboxNetwork::New)
        .expect("crashed");
    let (id, ip, veth) = (crashed.id().to_string(), crashed.ip(), crashed.host_veth());
    // The crash: the sandbox directory vanishes behind the runtime's back while something
    // (here an open fd) still holds the namespace, so its veth stays on the host.
    let dir = runtime.sandbox_dir(&id);
    let holder = std::fs::File::open(dir.join("net")).expect("open net");
    berth_runtime::sandbox::unmount_namespaces(&LinuxSyscall, &dir).expect("unmount");
    std::fs::remove_dir_all(&dir).expect("remove sandbox dir");
    std::mem::forget(crashed); // its guard would clean up what reconcile must find
    assert!(address_files(&ipam).contains(&(ip, id.clone())));
    assert!(network::link_exists(&veth).unwrap());

    let report = runtime.reconcile_network().expect("reconcile");
    assert_eq!(report.released, [(ip, id.clone())]);
    assert_eq!(report.deleted_links, std::slice::from_ref(&veth));
    assert_eq!(address_files(&ipam), [(alive.ip(), alive.id().to_string())]);
    assert!(!network::link_exists(&veth).unwrap());
    assert!(
        network::link_exists(&alive.host_veth()).unwrap(),
        "live sandboxes are kept"
    );
    drop(holder);

    // Nothing left: a second pass finds nothing to do.
    let again = runtime.reconcile_network().expect("reconcile again");
    assert_eq!(again, Default::default());
}

fn a_full_range_fails_clearly_and_leaves_nothing_behind(fx: &Fixture) {
    let n = octet();
    let runtime = fx.runtime("s", &format!("10.197.{n}.0/30"));
    let cidr = runtime.config().network.cidr;
    let ipam = Ipam::new(&runtime.config().root, cidr);
    let first = fx
        .sandbox(&runtime, "first", SandboxNetwork::New)
        .expect("first");
    assert_eq!(u32::from(first.ip()), u32::from(cidr.network()) + 2);

    let err = match fx.sandbox(&runtime, "second", SandboxNetwork::New) {
        Ok(guard) => panic!(
            "a /30 has one pod address, yet {} got {:?}",
            guard.id(),
            guard.sandbox.ip
        ),
        Err(err) => err,
    };
    assert!(
        matches!(
            &err,
            SandboxError::Network {
                source: NetworkError::Exhausted { in_use: 1, .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("pod network"), "{err}");
    let second = format!("net-second-{}", std::process::id());
    assert!(!runtime.sandbox_dir(&second).exists());
    assert_eq!(address_files(&ipam), [(first.ip(), first.id().to_string())]);
    let second_veth =
        network::host_veth_name(&runtime.config().network, &runtime.config().root, &second);
    assert!(!network::link_exists(&second_veth).unwrap());

    // Once the first is gone its address serves again.
    let first_ip = first.ip();
    drop(first);
    let again = fx
        .sandbox(&runtime, "second", SandboxNetwork::New)
        .expect("second");
    assert_eq!(again.ip(), first_ip);
}

fn a_failed_attach_removes_its_veth_and_address_and_spares_other_runtimes(fx: &Fixture) {
    let n = octet();
    let cidr = format!("10.196.{n}.0/24");
    let runtime = fx.runtime("f", &cidr);
    let config = &runtime.config().network;
    let root = &runtime.config().root;
    let ipam = Ipam::new(root, config.cidr);
    let kept = fx
        .sandbox(&runtime, "kept", SandboxNetwork::New)
        .expect("kept");

    // A "namespace" that is a plain file: the kernel refuses the veth pair whose sandbox end
    // would be born there, and the address taken for it goes back.
    let not_a_netns = fx.dir.path().join("not-a-netns");
    std::fs::write(&not_a_netns, "").unwrap();
    let err = network::attach(config, root, "doomed", &not_a_netns).unwrap_err();
    assert!(err.to_string().contains("create veth pair"), "{err}");
    assert!(!network::link_exists(&network::host_veth_name(config, root, "doomed")).unwrap());
    assert_eq!(address_files(&ipam), [(kept.ip(), kept.id().to_string())]);
    // Detaching what is not there is fine.
    network::detach(config, root, "doomed").unwrap();

    // An interface of the bridge's name that is no bridge is refused, nothing allocated.
    let lo = NetworkConfig {
        bridge: "lo".into(),
        cidr: config.cidr,
    };
    let err = network::attach(&lo, root, "on-lo", &not_a_netns).unwrap_err();
    assert!(
        matches!(err, NetworkError::NotABridge(ref name) if name == "lo"),
        "{err}"
    );
    assert_eq!(address_files(&ipam).len(), 1);

    // Another runtime on the same bridge (a daemon and a test, say) neither takes nor
    // cleans up this one's links, even for a sandbox of the same id.
    let other = fx.runtime_in("rt-other", "f", &cidr);
    let report = other.reconcile_network().expect("reconcile other");
    assert_eq!(report, Default::default());
    assert!(network::link_exists(&kept.host_veth()).unwrap());
    network::detach(&other.config().network, &other.config().root, kept.id()).unwrap();
    assert!(network::link_exists(&kept.host_veth()).unwrap());
    assert_eq!(address_files(&ipam).len(), 1);
}

/// Accept one connection in the network namespace `netns` from a listener on any address;
/// returns the port (through `port_tx`) and then the peer address the listener saw.
fn accept_one(netns: &Path, port_tx: std::sync::mpsc::Sender<u16>) -> IpAddr {
    in_netns(netns, move || {
        let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("bind outside");
        port_tx.send(listener.local_addr().unwrap().port()).unwrap();
        // Bounded, so a connection that never arrives fails the test instead of hanging it.
        listener.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let (mut stream, peer) = loop {
            match listener.accept() {
                Ok(accepted) => break accepted,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "no connection from the pod within 10 s"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("accept outside: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut hello = String::new();
        stream.read_to_string(&mut hello).unwrap();
        stream.write_all(b"outside heard ").unwrap();
        stream.write_all(hello.as_bytes()).unwrap();
        peer.ip()
    })
}

/// The address a listener in `outside` sees when `pod` connects to it.
fn peer_seen_outside(pod: &SandboxGuard, outside: &SandboxGuard) -> IpAddr {
    let pod_net = pod.sandbox.net.clone().unwrap();
    let outside_net = outside.sandbox.net.clone().unwrap();
    let outside_ip = outside.ip();
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        let server = scope.spawn(|| accept_one(&outside_net, port_tx));
        let port = port_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("listener port");
        let answer = in_netns(&pod_net, || {
            talk(SocketAddr::from((outside_ip, port)), "pod")
        });
        assert_eq!(answer, "outside heard pod");
        server.join().expect("server thread")
    })
}

/// "The internet" is a sandbox of a second runtime on a bridge and CIDR of its own; the
/// host routes between the two bridges, and nothing leaves the machine. With the first
/// bridge's masquerade installed the outside sees the host's address on its own network
/// (its gateway), not the pod's; without it, the pod's.
fn egress_is_masqueraded_to_the_host_address_and_removable(fx: &Fixture) {
    let n = octet();
    // Ranges and bridges no other test of this process uses (their bridges live until the
    // fixture is dropped, and a second route to the same /24 would shadow ours).
    let pods = fx.runtime("m", &format!("10.195.{n}.0/24"));
    let internet = fx.runtime("i", &format!("10.194.{n}.0/24"));
    let config = pods.config().network.clone();
    network::ensure_bridge(&config).expect("ensure_bridge with masquerade");
    // Idempotent: a second run replaces the table instead of adding a second rule.
    network::ensure_bridge(&config).expect("ensure_bridge again");
    assert_eq!(
        network::masquerade_table(&config.bridge),
        format!("berth_{}", config.bridge)
    );

    let pod = fx
        .sandbox(&pods, "p", SandboxNetwork::New)
        .expect("pod sandbox");
    let outside = fx
        .sandbox(&internet, "o", SandboxNetwork::New)
        .expect("outside sandbox");
    let outside_gateway = internet.config().network.cidr.gateway();

    assert_eq!(
        peer_seen_outside(&pod, &outside),
        IpAddr::V4(outside_gateway),
        "egress from {} leaves as the host's address on the outside network",
        pod.ip()
    );

    // Removing the table (twice: idempotent) turns the masquerade off: the outside then
    // sees the pod's own address (it routes back through the host).
    network::remove_masquerade(&config.bridge).expect("remove masquerade");
    network::remove_masquerade(&config.bridge).expect("remove masquerade again");
    assert_eq!(peer_seen_outside(&pod, &outside), IpAddr::V4(pod.ip()));

    // The outside bridge never got a table: masquerade follows `ensure_bridge`, per bridge.
    // Reinstalling works after a removal, and `delete_bridge` (the fixture's cleanup)
    // removes the table with the bridge.
    network::ensure_masquerade(&config).expect("reinstall");
    assert_eq!(
        peer_seen_outside(&pod, &outside),
        IpAddr::V4(outside_gateway)
    );
}

fn main() {
    berth_runtime::shim::run_if_shim();
    type Test = fn(&Fixture);
    let tests: &[(&str, Test)] = &[
        (
            "sandboxes_get_addresses_reach_each_other_and_release_them",
            sandboxes_get_addresses_reach_each_other_and_release_them,
        ),
        (
            "deleting_a_sandbox_removes_its_pair_whether_or_not_the_namespace_dies",
            deleting_a_sandbox_removes_its_pair_whether_or_not_the_namespace_dies,
        ),
        (
            "deleting_a_sandbox_forgets_its_conntrack_entries",
            deleting_a_sandbox_forgets_its_conntrack_entries,
        ),
        (
            "reconcile_cleans_up_after_a_crash",
            reconcile_cleans_up_after_a_crash,
        ),
        (
            "a_full_range_fails_clearly_and_leaves_nothing_behind",
            a_full_range_fails_clearly_and_leaves_nothing_behind,
        ),
        (
            "a_failed_attach_removes_its_veth_and_address_and_spares_other_runtimes",
            a_failed_attach_removes_its_veth_and_address_and_spares_other_runtimes,
        ),
        (
            "egress_is_masqueraded_to_the_host_address_and_removable",
            egress_is_masqueraded_to_the_host_address_and_removable,
        ),
    ];
    berth_runtime::testing::run_tests(tests, Fixture::new);
}
