//! berth's reconcilers: Deployment -> ReplicaSet -> Pod, scale and rollout.
//!
//! The controller makes no syscalls; it reaches the store and the agent through handles.
