//! Root-only: `LinuxContainerStats` over real containers on a busybox rootfs, read from their
//! cgroups (v1 or v2, whichever the host has). This binary has its own `main`: the runtime
//! re-executes it as the shim, so the first thing it does is `run_if_shim`. Each container is
//! removed by a guard even when its test panics, and the cgroup parent at the end.
//!
//! Run: `cargo test -p berth-metrics --test linux_stats` as root (skipped otherwise).

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_metrics::linux::labels;
use berth_metrics::{ContainerMetrics, ContainerSample, ContainerStatsSource, LinuxContainerStats};
use berth_runtime::cgroup::Resources;
use berth_runtime::container::{
    ContainerConfig, ContainerId, CreateOptions, LinuxRuntime, RuntimeConfig, RuntimeError,
};
use berth_runtime::syscall::LinuxSyscall;
use support::{promtool_check, scrape, series};

const CGROUP_PARENT: &str = "/berth-metrics-test";

struct Fixture {
    _dir: tempfile::TempDir,
    rootfs: PathBuf,
    runtime: Arc<LinuxRuntime>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let rootfs = dir.path().join("busybox");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/busybox-rootfs.sh");
        let status = std::process::Command::new(script)
            .arg(&rootfs)
            .status()
            .expect("busybox-rootfs.sh");
        assert!(status.success(), "busybox-rootfs.sh failed");
        let mut config = RuntimeConfig::new(dir.path().join("root"), dir.path().join("run"));
        config.shim_exe = std::env::current_exe().expect("current_exe");
        config.cgroup_parent = PathBuf::from(CGROUP_PARENT);
        let runtime = Arc::new(LinuxRuntime::new(config, Arc::new(LinuxSyscall)));
        Self {
            _dir: dir,
            rootfs,
            runtime,
        }
    }

    fn config(&self, name: &str, args: &[&str]) -> ContainerConfig {
        let id: ContainerId = format!("m-{name}-{}", std::process::id())
            .parse()
            .expect("container id");
        ContainerConfig::new(
            id,
            vec![self.rootfs.clone()],
            args.iter().map(|s| s.to_string()).collect(),
        )
    }

    /// Creates and starts `config`; the guard removes the container.
    fn start(&self, config: ContainerConfig) -> Guard<'_> {
        let id = config.id.clone();
        self.runtime
            .create(
                config,
                CreateOptions {
                    detach: true,
                    attach: false,
                    start: false,
                },
            )
            .expect("create");
        let guard = Guard {
            runtime: &self.runtime,
            id,
        };
        self.runtime.start(&guard.id).expect("start");
        guard
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // The containers' cgroups are gone with them; their parent is left in every hierarchy.
        let root = &self.runtime.config().cgroup_root;
        let parent = CGROUP_PARENT.trim_start_matches('/');
        let mut dirs = vec![root.join(parent)];
        if let Ok(entries) = std::fs::read_dir(root) {
            dirs.extend(entries.filter_map(|e| Some(e.ok()?.path().join(parent))));
        }
        for dir in dirs.iter().filter(|dir| dir.is_dir()) {
            if let Err(err) = std::fs::remove_dir(dir) {
                eprintln!("cleanup of {}: {err}", dir.display());
            }
        }
    }
}

/// Removes the container (forcefully) when dropped, even on panic.
struct Guard<'a> {
    runtime: &'a LinuxRuntime,
    id: ContainerId,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        match self.runtime.delete(&self.id, true) {
            Ok(()) | Err(RuntimeError::NotFound(_)) => {}
            Err(err) => eprintln!("cleanup of {}: {err}", self.id),
        }
    }
}

fn sample_of(samples: &[ContainerSample], id: &str) -> Option<ContainerSample> {
    samples.iter().find(|s| s.id == id).cloned()
}

fn pod_and_plain_containers_are_read_from_their_cgroups(fx: &Fixture) {
    // Burn some CPU, then idle.
    let busy = "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; touch /tmp/done; sleep 60";
    let mut config = fx.config("pod", &["sh", "-c", busy]);
    config.labels = [
        (labels::POD_NAMESPACE, "team"),
        (labels::POD_NAME, "web-1"),
        (labels::CONTAINER_NAME, "app"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    config.resources = Resources {
        memory_limit: Some(64 << 20),
        ..Resources::default()
    };
    let pod = fx.start(config);
    let plain = fx.start(fx.config("plain", &["sleep", "60"]));
    let pod_id = fx.runtime.cgroup_path(&pod.id).to_string();
    let plain_id = fx.runtime.cgroup_path(&plain.id).to_string();

    let source = LinuxContainerStats::new(Arc::clone(&fx.runtime));
    // Wait until the loop has used measurable CPU.
    let deadline = Instant::now() + Duration::from_secs(20);
    let pod_sample = loop {
        let sample = sample_of(&source.containers(), &pod_id).expect("the pod's container");
        if sample.cpu_usage_seconds > 0.01 || Instant::now() > deadline {
            break sample;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        (
            pod_sample.namespace.as_str(),
            pod_sample.pod.as_str(),
            pod_sample.container.as_str()
        ),
        ("team", "web-1", "app")
    );
    assert_eq!(pod_sample.memory_limit_bytes, Some(64 << 20));
    assert!(pod_sample.cpu_usage_seconds > 0.01, "cpu: {pod_sample:?}");
    assert!(pod_sample.memory_usage_bytes > 0, "{pod_sample:?}");
    assert!(
        pod_sample.memory_working_set_bytes <= pod_sample.memory_usage_bytes,
        "{pod_sample:?}"
    );
    assert!(pod_sample.pids >= 1, "{pod_sample:?}");
    assert_eq!(pod_sample.oom_events, 0);

    let plain_sample = sample_of(&source.containers(), &plain_id).expect("the plain container");
    assert_eq!(
        (
            plain_sample.namespace.as_str(),
            plain_sample.pod.as_str(),
            plain_sample.container.as_str()
        ),
        ("", "", plain.id.as_str())
    );
    assert_eq!(plain_sample.memory_limit_bytes, None);
    assert_eq!(plain_sample.pids, 1);

    let text = scrape(ContainerMetrics::new(source).expect("descs"));
    let limits = series(&text, "container_spec_memory_limit_bytes");
    assert!(
        limits.contains(&format!(
            "container_spec_memory_limit_bytes{{namespace=\"team\",pod=\"web-1\",container=\"app\",image=\"\",id=\"{pod_id}\"}} 67108864"
        )),
        "{text}"
    );
    assert!(
        limits.contains(&format!(
            "container_spec_memory_limit_bytes{{namespace=\"\",pod=\"\",container=\"{}\",image=\"\",id=\"{plain_id}\"}} 0",
            plain.id
        )),
        "{text}"
    );
    promtool_check(&text);

    // A removed container is gone from the next scrape.
    drop(plain);
    let source = LinuxContainerStats::new(Arc::clone(&fx.runtime));
    let samples = source.containers();
    assert!(sample_of(&samples, &plain_id).is_none(), "{samples:?}");
    assert!(sample_of(&samples, &pod_id).is_some(), "{samples:?}");
}

fn main() {
    berth_runtime::shim::run_if_shim();
    if !nix::unistd::geteuid().is_root() {
        eprintln!("linux_stats tests need root; skipped");
        return;
    }
    let tests: &[berth_runtime::testing::Test<Fixture>] = &[(
        "pod_and_plain_containers_are_read_from_their_cgroups",
        pod_and_plain_containers_are_read_from_their_cgroups,
    )];
    berth_runtime::testing::run_tests(tests, Fixture::new);
}
