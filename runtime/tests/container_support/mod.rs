//! Shared by the root-only container test binaries (`container`, `exec_sandbox`). They run with
//! `harness = false` so that the test binary itself can act as berth's shim, with
//! `berth_runtime::testing`'s runner.

pub use berth_runtime::testing::busybox_rootfs;
pub use berth_runtime::testing::run_tests as run;
pub use berth_runtime::testing::test_runtime as runtime;
