//! berth's node agent (kubelet-like): pod workers, probes, restart/backoff and status.
//!
//! The agent sees the container runtime only through the [`runtime::ContainerRuntime`] trait;
//! its decisions are plain logic with an injected clock ([`restart`]), probes run through
//! [`probe`], and [`status`] turns container states into a Kubernetes `PodStatus`. [`node`] is
//! the loop over the store that runs a worker per pod and writes their statuses and events back.

pub mod drain;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod node;
pub mod pod;
pub mod probe;
pub mod restart;
pub mod runtime;
pub mod status;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

/// An error and its sources on one line, `: `-separated, for event messages and the runtime
/// trait's message-carrying variants.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
