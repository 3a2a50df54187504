//! Test support for other crates (feature `testing`): a runner for root-only test binaries that
//! start real containers.
//!
//! Such a binary is built with `harness = false` so that it can itself be re-executed as berth's
//! shim: its `main` calls [`crate::shim::run_if_shim`] first, then [`run_tests`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::container::{LinuxRuntime, RuntimeConfig};
use crate::syscall::LinuxSyscall;

/// Lays out a busybox root filesystem in `dir/busybox` with the project's script.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    let rootfs = dir.join("busybox");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/busybox-rootfs.sh");
    let status = std::process::Command::new(script)
        .arg(&rootfs)
        .status()
        .expect("busybox-rootfs.sh");
    assert!(status.success(), "busybox-rootfs.sh failed");
    rootfs
}

/// The host's cgroup2 mount: `/sys/fs/cgroup` on a pure v2 host, `/sys/fs/cgroup/unified`
/// on a hybrid one (no controllers there, but real cgroups: procs, kill, freeze, placement).
/// `None` when there is none.
pub fn cgroup2_mount() -> Option<PathBuf> {
    let content = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    crate::cgroup::mountinfo::parse(&content)
        .into_iter()
        .rev()
        .find(|m| m.fs_type == "cgroup2" && m.mount_point.starts_with("/sys/fs/cgroup"))
        .map(|m| m.mount_point)
}

/// A runtime rooted in `dir` whose shim is the running test binary, with cgroups under
/// `cgroup_parent` and this process's own pod network ([`test_network`]).
pub fn test_runtime(dir: &Path, cgroup_parent: &str) -> LinuxRuntime {
    let mut config = RuntimeConfig::new(dir.join("root"), dir.join("run"));
    config.shim_exe = std::env::current_exe().expect("current_exe");
    config.cgroup_parent = PathBuf::from(cgroup_parent);
    config.network = test_network();
    LinuxRuntime::new(config, Arc::new(LinuxSyscall))
}

/// The pod network of this test process: its own bridge (`bt<pid>`) and a /24 of its own in
/// `10.196.0.0/16`, so that tests never share a bridge or an address range with a daemon or
/// with each other; [`run_tests`] deletes the bridge at the end.
pub fn test_network() -> crate::network::NetworkConfig {
    let pid = std::process::id();
    crate::network::NetworkConfig {
        bridge: format!("bt{pid}"),
        cidr: crate::network::PodCidr::new(
            std::net::Ipv4Addr::new(10, 196, (pid % 250) as u8, 0),
            24,
        )
        .expect("a valid /24"),
    }
}

/// A named test taking the shared fixture.
pub type Test<F> = (&'static str, fn(&F));

/// Run `tests` against one fixture, understanding the libtest command line that cargo test and
/// nextest use: `--list [--ignored]` lists, positional filters select (by substring, or whole
/// name with `--exact`). The fixture is dropped (its cleanup runs) before the process exits 1
/// when a test failed.
pub fn run_tests<F>(tests: &[Test<F>], fixture: impl FnOnce() -> F) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    if flag("--list") {
        if !flag("--ignored") {
            tests.iter().for_each(|(name, _)| println!("{name}: test"));
        }
        return;
    }
    let filters: Vec<&String> = args
        .iter()
        .filter(|a| !a.starts_with('-') && a.as_str() != "terse")
        .collect();
    let selected = |name: &str| {
        filters.is_empty()
            || filters.iter().any(|f| {
                if flag("--exact") {
                    name == f.as_str()
                } else {
                    name.contains(f.as_str())
                }
            })
    };
    let fixture = fixture();
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, test) in tests {
        if !selected(name) {
            continue;
        }
        ran += 1;
        let began = Instant::now();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(&fixture)));
        let verdict = if outcome.is_ok() { "ok" } else { "FAILED" };
        println!("test {name} ... {verdict} ({:?})", began.elapsed());
        if outcome.is_err() {
            failed.push(*name);
        }
    }
    println!(
        "\ntest result: {} passed; {} failed",
        ran - failed.len(),
        failed.len()
    );
    drop(fixture); // `exit` would skip its cleanup
    // Tests that made sandboxes attached them to this process's own bridge.
    if let Err(err) = crate::network::delete_bridge(&test_network().bridge) {
        println!("deleting the test bridge: {err}");
    }
    if !failed.is_empty() {
        println!("failed: {failed:?}");
        std::process::exit(1);
    }
}
