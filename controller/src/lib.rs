//! berth's reconcilers: the garbage collector and Deployment -> ReplicaSet -> Pod, scale and
//! rollout, as Kubernetes' kube-controller-manager runs them.
//!
//! The controller makes no syscalls; it reaches the store only through the handle in its
//! [`Context`], and its notion of time is the injected [`Clock`].

pub mod clock;
pub mod deployment;
pub mod gc;
pub mod hash;
pub mod pods;
pub mod replica_set;
pub mod runtime;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use clock::Clock;
pub use runtime::{Action, Backoff, Controller};

use std::sync::Arc;

use berth_api::{
    Resource,
    apps_v1::{Deployment, ReplicaSet},
    core_v1::Pod,
};
use berth_store::RedbStore;

/// What every reconciler is given: the store and the clock.
#[derive(Debug, Clone)]
pub struct Context {
    pub store: RedbStore,
    pub clock: Clock,
}

impl Context {
    pub fn new(store: RedbStore, clock: Clock) -> Self {
        Self { store, clock }
    }
}

/// Runs the garbage collector and the ReplicaSet and Deployment controllers until the store's
/// watches end; abort the task to stop them sooner.
pub async fn run(ctx: Context) {
    let ctx = Arc::new(ctx);
    let replica_sets = Controller::<ReplicaSet>::new(ctx.store.clone())
        .owns(<Pod as Resource>::KIND)
        .run(
            replica_set::reconcile,
            replica_set::error_policy,
            Arc::clone(&ctx),
        );
    let deployments = Controller::<Deployment>::new(ctx.store.clone())
        .owns(<ReplicaSet as Resource>::KIND)
        .run(
            deployment::reconcile,
            deployment::error_policy,
            Arc::clone(&ctx),
        );
    let collector = gc::controller(ctx.store.clone()).run(gc::reconcile, gc::error_policy, ctx);
    tokio::join!(replica_sets, deployments, collector);
}
