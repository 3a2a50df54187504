//! `berth daemon`: the store, the controllers, the node agent and the API in one process.
//!
//! ```text
//!  manifests dir ─┐            ┌── controllers (Deployment → ReplicaSet → Pod, GC)
//!  CLI / HTTP ────┴─► API ─► store ◄─┤
//!                                    └── agent (Pod → containers via the built-in runtime)
//! ```
//! Start-up order: open the store (`<root>/store.redb`), start the controllers, start the agent
//! (which re-adopts the containers of a previous run before it reports ready), apply the
//! manifest directory, then serve the API on the unix socket (and TCP when asked). `/readyz`
//! turns 200 once all of that is up.
//!
//! Shutdown (SIGTERM or SIGINT): stop accepting API requests, end watches, stop the controllers
//! and the agent's loops — but leave every container running, as the kubelet does: the next
//! daemon re-adopts them. Pods are stopped by deleting them, not by stopping berth.

mod manifests;
mod node_api;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use berth_agent::{
    linux::LinuxContainerRuntime,
    node::{Node, NodeConfig, StoreConfigSource},
    pod::{Clock, Volumes, WorkerContext},
    probe::Prober,
    restart::BackoffConfig,
    runtime::ContainerRuntime,
};
use berth_apiserver::{ApiState, serve_tcp, serve_unix};
use berth_metrics::{ContainerMetrics, LinuxContainerStats, StateMetrics};
use berth_proxy::{
    Catalog, ClusterRule, Dns, DnsConfig, DummyLink, KernelServices, Proxy, ProxyConfig,
};
use berth_runtime::{
    container::{LinuxRuntime, RuntimeConfig},
    image::ImageStore,
    network::NetworkConfig,
    shim::zygote::Zygote,
    syscall::LinuxSyscall,
};
use berth_store::RedbStore;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::cli::{DaemonArgs, GlobalArgs};

pub use manifests::ManifestDir;

/// Everything `berth daemon` is told.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub root: PathBuf,
    pub run_dir: PathBuf,
    pub socket: PathBuf,
    pub listen: Option<SocketAddr>,
    pub token_file: Option<PathBuf>,
    pub manifests: Option<PathBuf>,
    pub backoff: BackoffConfig,
    pub network: NetworkConfig,
}

impl DaemonConfig {
    pub fn new(global: &GlobalArgs, args: DaemonArgs) -> anyhow::Result<Self> {
        let backoff = BackoffConfig::new(args.backoff_initial, args.backoff_max)
            .context("--backoff-initial/--backoff-max")?;
        let cidr = args
            .pod_cidr
            .parse()
            .map_err(|err| anyhow::anyhow!("--pod-cidr: {err}"))?;
        Ok(Self {
            root: global.root.clone(),
            run_dir: global.run_dir.clone(),
            socket: global.socket.clone(),
            listen: args.listen,
            token_file: global.token_file.clone(),
            manifests: args.manifests,
            backoff,
            network: NetworkConfig {
                bridge: args.bridge,
                cidr,
            },
        })
    }
}

/// The pids limit of every container (Kubernetes' `podPidsLimit`, podman's default is 2048):
/// a fork bomb in one container cannot exhaust the host's pids.
const PIDS_LIMIT: u64 = 4096;

/// A shutdown signal every part of the daemon can wait on.
#[derive(Clone)]
struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    async fn wait(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(config: DaemonConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("berth-daemon")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: DaemonConfig) -> anyhow::Result<()> {
    let token = match &config.token_file {
        Some(path) => Some(read_token(path)?),
        None => None,
    };
    if config.listen.is_some() && token.is_none() {
        anyhow::bail!(
            "--listen needs --token-file: the TCP API requires a bearer token (only the unix socket is open without one)"
        );
    }
    for dir in [&config.root, &config.run_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let store = RedbStore::open(config.root.join("store.redb"))
        .with_context(|| format!("opening the store under {}", config.root.display()))?;

    // The runtime; addresses and veths of sandboxes that vanished while berth was down are
    // released before any pod is adopted or started.
    let images = ImageStore::open(&config.root)
        .with_context(|| format!("opening the image store under {}", config.root.display()))?;
    let mut runtime_config = RuntimeConfig::new(config.root.clone(), config.run_dir.clone());
    runtime_config.network = config.network.clone();
    // Shims and sandbox shims are forked by one small single-threaded zygote rather than by
    // this multi-threaded process (see berth_runtime::shim::zygote).
    let zygote = Arc::new(Zygote::new(runtime_config.shim_exe.clone()));
    let linux =
        LinuxRuntime::new(runtime_config.clone(), Arc::new(LinuxSyscall)).with_zygote(zygote);
    match linux.reconcile_network() {
        Ok(report) => info!(?report, "pod network reconciled"),
        Err(err) => warn!(error = %err, "reconciling the pod network"),
    }
    match berth_runtime::network::ensure_bridge(&config.network) {
        Ok(()) => {}
        // Pods still reach each other and the host; only the way out is missing.
        Err(err @ berth_runtime::network::NetworkError::Nftables { .. }) => warn!(
            error = %err,
            "no egress masquerade for pods (the kernel lacks nf_tables NAT?)"
        ),
        Err(err) => {
            return Err(anyhow::Error::new(err).context(format!(
                "setting up the pod network (bridge {}, {})",
                config.network.bridge, config.network.cidr
            )));
        }
    }
    let dns_addr = SocketAddr::new(config.network.cidr.gateway().into(), 53);
    let containers = LinuxContainerRuntime::with_cluster_dns(linux, images.clone(), dns_addr.ip());
    let runtime: Arc<dyn ContainerRuntime> = Arc::new(containers.clone());

    let (stop_tx, stop_rx) = watch::channel(false);
    let shutdown = Shutdown(stop_rx);
    let mut tasks = tokio::task::JoinSet::new();

    // Metrics: workload state from the store, usage from the containers' cgroups.
    let registry = prometheus::Registry::new();
    berth_metrics::register_process_and_build_info(&registry).context("registering metrics")?;
    // berth's own instruments, observed by the controllers, the pod workers and the probers.
    let daemon_metrics = Arc::new(
        berth_metrics::DaemonMetrics::register(&registry).context("registering daemon metrics")?,
    );
    let state_metrics = StateMetrics::new().context("state metrics")?;
    registry
        .register(Box::new(state_metrics.clone()))
        .context("registering state metrics")?;
    let stats = LinuxContainerStats::new(Arc::new(LinuxRuntime::new(
        runtime_config,
        Arc::new(LinuxSyscall),
    )));
    registry
        .register(Box::new(
            ContainerMetrics::new(stats).context("container metrics")?,
        ))
        .context("registering container metrics")?;
    tasks.spawn(state_metrics.run(store.clone(), shutdown.clone().wait()));

    let compaction = store.clone();
    tasks.spawn(until(shutdown.clone(), async move {
        compaction.run_compaction(Duration::from_secs(300)).await
    }));
    tasks.spawn(until(
        shutdown.clone(),
        berth_controller::run(
            berth_controller::Context::new(store.clone(), berth_controller::Clock::new())
                .with_observer(Arc::clone(&daemon_metrics) as Arc<dyn berth_controller::Observer>),
        ),
    ));

    // Services: cluster IPs and node ports translated to ready endpoints by the kernel
    // (nf_tables DNAT), and cluster DNS on the pods' gateway. Terminating pods wait for the
    // proxy to let go of them before they are stopped.
    let catalog = Catalog::spawn(store.clone());
    let kernel = Arc::new(NftServices {
        bridge: config.network.bridge.clone(),
        cidr: config.network.cidr,
    });
    let proxy =
        Proxy::new(ProxyConfig::new(Arc::new(DummyLink::default())).with_kernel_data_path(kernel));
    let drain = Arc::new(ProxyDrain(proxy.drain()));
    tasks.spawn(proxy.run(store.clone(), catalog.clone(), shutdown.clone().wait()));
    match Dns::bind(DnsConfig::from_resolv_conf(dns_addr), catalog).await {
        Ok(dns) => {
            tasks.spawn(dns.run(shutdown.clone().wait()));
        }
        Err(err) => warn!(address = %dns_addr, error = %err, "cluster DNS not available"),
    }

    let worker_context = WorkerContext {
        runtime: Arc::clone(&runtime),
        prober: Prober::new(Arc::clone(&runtime)).observed_by(daemon_metrics),
        config: Arc::new(StoreConfigSource::new(store.clone(), images)),
        backoff: config.backoff,
        clock: Clock::default(),
        pids_limit: Some(PIDS_LIMIT),
        volumes: Arc::new(Volumes::new(config.root.join("pods"))),
        drain,
    };
    let node = Node::new(store.clone(), worker_context, NodeConfig::default());
    tasks.spawn(node.run(shutdown.clone().wait()));

    if let Some(dir) = &config.manifests {
        let mut manifests = ManifestDir::new(dir, store.clone())?;
        // The first pass before the API answers, so that `berth get` right after start sees it.
        let report = manifests.sync().await;
        for (file, error) in &report.failed {
            warn!(file = %file.display(), %error, "manifest not applied");
        }
        tasks.spawn(manifests.run(shutdown.clone().wait()));
    }

    let mut api = ApiState::builder(store.clone(), node_api::node(containers)).registry(registry);
    if let Some(token) = &token {
        api = api.token(token.clone());
    }
    let api = api.build().context("setting up the API")?;
    let mut servers = tokio::task::JoinSet::new();
    {
        let (socket, api, shutdown) = (config.socket.clone(), api.clone(), shutdown.clone());
        servers.spawn(async move {
            serve_unix(&socket, api, shutdown.wait())
                .await
                .with_context(|| format!("serving the API on {}", socket.display()))
        });
    }
    if let Some(addr) = config.listen {
        let (api, shutdown) = (api.clone(), shutdown.clone());
        servers.spawn(async move {
            serve_tcp(addr, api, shutdown.wait())
                .await
                .with_context(|| format!("serving the API on {addr}"))
        });
    }
    api.set_ready(true);
    info!(socket = %config.socket.display(), listen = ?config.listen, "berth daemon ready");

    let failed = tokio::select! {
        () = wait_for_signal() => None,
        Some(result) = servers.join_next() => match result {
            Ok(Ok(())) => None,
            Ok(Err(err)) => Some(err),
            Err(err) => Some(anyhow::anyhow!("API server task: {err}")),
        },
    };
    info!("shutting down; containers keep running");
    api.set_ready(false);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while servers.join_next().await.is_some() {}
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!("some tasks did not stop within 10s; leaving them");
    }
    match failed {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// Runs `task` until the shutdown signal.
async fn until(shutdown: Shutdown, task: impl Future<Output = ()>) {
    tokio::select! {
        () = shutdown.wait() => {}
        () = task => {}
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        warn!("cannot install signal handlers; stop the daemon with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM"),
        _ = int.recv() => info!("SIGINT"),
    }
}

fn read_token(path: &std::path::Path) -> anyhow::Result<String> {
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("reading the token file {}", path.display()))?;
    let token = token.trim().to_owned();
    anyhow::ensure!(
        token.len() >= 16,
        "the token in {} is too short: use at least 16 characters (e.g. `head -c 32 /dev/urandom | base64`)",
        path.display()
    );
    Ok(token)
}

/// The agent's view of the Service proxy: when a terminating pod's address gets no new
/// connections any more.
struct ProxyDrain(berth_proxy::Drain);

#[async_trait::async_trait]
impl berth_agent::drain::TrafficDrain for ProxyDrain {
    async fn drained(&self, ip: std::net::IpAddr) {
        self.0.drained(ip).await;
    }
}

/// The Services' kernel data path: an nf_tables table per bridge
/// ([`berth_runtime::network::sync_services`]).
struct NftServices {
    bridge: String,
    cidr: berth_runtime::network::PodCidr,
}

impl KernelServices for NftServices {
    fn sync(&self, rules: &[ClusterRule]) -> std::io::Result<()> {
        let rules: Vec<berth_runtime::network::ServiceRule> = rules
            .iter()
            .map(|r| berth_runtime::network::ServiceRule {
                cluster_ip: r.cluster_ip,
                port: r.port,
                node_port: r.node_port,
                endpoints: r.endpoints.clone(),
            })
            .collect();
        berth_runtime::network::sync_services(&self.bridge, self.cidr, &rules)
            .map_err(std::io::Error::other)
    }
}
