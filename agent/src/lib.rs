//! berth's node agent (kubelet-like): pod workers, probes, restart/backoff and status.
//!
//! The agent sees the container runtime only through a `ContainerRuntime` trait; see the issue
//! "Agent: run pods on the built-in runtime".
