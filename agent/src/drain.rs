//! Draining a terminating pod's traffic before its containers are stopped.
//!
//! Kubernetes takes a deleted pod out of its Services' endpoints *while* the kubelet runs its
//! preStop hooks and SIGTERM, so for a moment kube-proxy still sends new connections to a pod
//! that is shutting down (the reason for the folk remedy of a `sleep` in preStop). On one node
//! berth can close that window: before it stops anything, the agent waits until the node's
//! Service data path no longer sends new connections to the pod's address, at most
//! [`DRAIN_WAIT`] (and never longer than the pod's grace period). Established connections are
//! not touched; they finish within the grace period as before.
//!
//! The agent knows nothing of Services; the daemon hands it the proxy's view through
//! [`TrafficDrain`].

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;

/// The longest a terminating pod waits for the Service data path to let go of it. The
/// endpoints controller and the proxy each react to the deletion within milliseconds; this
/// bounds the wait when either is stuck.
pub const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// What sends connections to pods on this node (the Service proxy).
#[async_trait]
pub trait TrafficDrain: Send + Sync {
    /// Resolves once no new connection is sent to `ip` any more (at once when none ever was).
    async fn drained(&self, ip: IpAddr);
}

/// No Service data path: nothing to wait for.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTraffic;

#[async_trait]
impl TrafficDrain for NoTraffic {
    async fn drained(&self, _ip: IpAddr) {}
}
