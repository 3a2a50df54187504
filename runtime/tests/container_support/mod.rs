//! Shared by the root-only container test binaries (`container`, `exec_sandbox`). They run with
//! `harness = false` so that the test binary itself can act as berth's shim; `run` is the small
//! libtest-compatible runner they use instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use berth_runtime::container::{LinuxRuntime, RuntimeConfig};
use berth_runtime::syscall::LinuxSyscall;

/// Lay out a busybox root filesystem in `dir/busybox` with the project's script.
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

/// A runtime rooted in `dir` whose shim is this test binary, with cgroups under `cgroup_parent`.
pub fn runtime(dir: &Path, cgroup_parent: &str) -> LinuxRuntime {
    let mut config = RuntimeConfig::new(dir.join("root"), dir.join("run"));
    config.shim_exe = std::env::current_exe().expect("current_exe");
    config.cgroup_parent = PathBuf::from(cgroup_parent);
    LinuxRuntime::new(config, Arc::new(LinuxSyscall))
}

/// A named test taking the shared fixture.
pub type Test<F> = (&'static str, fn(&F));

/// Run `tests` against one fixture, understanding the libtest command line that cargo test and
/// nextest use: `--list [--ignored]` lists, positional filters select (by substring, or whole
/// name with `--exact`). Exits 1 when a test failed.
pub fn run<F>(tests: &[Test<F>], fixture: impl FnOnce() -> F) {
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
    if !failed.is_empty() {
        println!("failed: {failed:?}");
        std::process::exit(1);
    }
}
