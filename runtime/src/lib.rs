//! berth's built-in container runtime: OCI images, overlay root filesystems, namespaces, cgroups
//! and process supervision.
//!
//! The runtime knows nothing of pods or YAML. Its kernel calls go through the [`syscall::Syscall`]
//! trait so its logic can be tested without root.
#![allow(unsafe_code)] // The one crate where unsafe is allowed; every block carries a `// SAFETY:`.

pub mod cgroup;
pub mod container;
pub mod image;
pub mod logs;
pub mod network;
pub mod process;
pub mod rootfs;
pub mod sandbox;
pub mod shim;
pub mod syscall;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
