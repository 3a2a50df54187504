//! berth's node agent (kubelet-like): pod workers, probes, restart/backoff and status.
//!
//! The agent sees the container runtime only through the [`runtime::ContainerRuntime`] trait;
//! its decisions are plain logic with an injected clock ([`restart`]), probes run through
//! [`probe`], and [`status`] turns container states into a Kubernetes `PodStatus`.

#[cfg(target_os = "linux")]
pub mod linux;
pub mod pod;
pub mod probe;
pub mod restart;
pub mod runtime;
pub mod status;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
