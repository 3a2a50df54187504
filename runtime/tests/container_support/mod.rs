//! Shared by the root-only container test binaries (`container`, `exec_sandbox`). They run with
//! `harness = false` so that the test binary itself can act as berth's shim, with
//! `berth_runtime::testing`'s runner.

use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    config.network = berth_runtime::testing::test_network();
    LinuxRuntime::new(config, Arc::new(LinuxSyscall))
}

pub use berth_runtime::testing::run_tests as run;
