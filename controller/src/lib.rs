//! berth's reconcilers: the garbage collector and Deployment -> ReplicaSet -> Pod, scale and
//! rollout, as Kubernetes' kube-controller-manager runs them.
//!
//! - [`runtime`]: [`Controller`], the watch → work queue → reconcile loop with [`Action`]s and
//!   per-key [`Backoff`].
//! - [`service`] (cluster IPs and node ports) and [`endpoints`] (the ready pods behind each
//!   Service).
//! - [`replica_set`], [`deployment`], [`gc`]: the reconcilers, each a level-triggered
//!   `reconcile(object, ctx) -> Result<Action>` with an `error_policy`;
//!   [`deployment::rollback()`] is what `berth rollout undo` calls.
//! - [`events`]: deletes Events older than a TTL (one hour, Kubernetes' `--event-ttl`).
//! - [`pods`] (readiness, availability, deletion order) and [`hash`] (`pod-template-hash`).
//! - `testing` (feature `testing`): a `FakeKubelet` for tests with paused time.
//!
//! The controller makes no syscalls; it reaches the store only through the handle in its
//! [`Context`], and its notion of time is the injected [`Clock`] (tokio time).
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use berth_controller::{Clock, Context};
//! use berth_store::{Options, RedbStore};
//!
//! let store = RedbStore::open_in_memory(Options::default()).unwrap();
//! let controllers = tokio::spawn(berth_controller::run(Context::new(store.clone(), Clock::new())));
//! // ... serve the API; on shutdown:
//! controllers.abort();
//! # });
//! ```

pub mod clock;
pub mod deployment;
pub mod endpoints;
pub mod events;
pub mod gc;
pub mod hash;
pub mod pods;
pub mod replica_set;
pub mod runtime;
pub mod service;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use clock::Clock;
pub use runtime::{Action, Backoff, Controller, Observer};

use std::sync::Arc;

use berth_api::{
    Resource,
    apps_v1::{Deployment, ReplicaSet},
    core_v1::Pod,
};
use berth_store::RedbStore;

/// What every reconciler is given: the store and the clock; and what [`run`] reports its
/// controllers' work to, if anything.
#[derive(Debug, Clone)]
pub struct Context {
    pub store: RedbStore,
    pub clock: Clock,
    /// Reconcile durations, errors and queue depths of every controller [`run`] starts.
    pub observer: Option<Arc<dyn Observer>>,
}

impl Context {
    pub fn new(store: RedbStore, clock: Clock) -> Self {
        Self {
            store,
            clock,
            observer: None,
        }
    }

    /// The same context, reporting to `observer` (the daemon's metrics).
    pub fn with_observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }
}

/// Runs the garbage collector, the ReplicaSet, Deployment, Service and Endpoints controllers and
/// the Events TTL collector; spawn it and abort the task to stop them. Their metrics labels are
/// `ReplicaSet`, `Deployment`, `Service`, `Endpoints` and `Object` (the garbage collector).
pub async fn run(ctx: Context) {
    let ctx = Arc::new(ctx);
    let observer = ctx.observer.clone();
    let replica_sets = Controller::<ReplicaSet>::new(ctx.store.clone())
        .owns(<Pod as Resource>::KIND)
        .adopts(<Pod as Resource>::KIND, |rs| rs.spec.selector.as_ref())
        .observed_by(observer.clone())
        .run(
            replica_set::reconcile,
            replica_set::error_policy,
            Arc::clone(&ctx),
        );
    let deployments = Controller::<Deployment>::new(ctx.store.clone())
        .owns(<ReplicaSet as Resource>::KIND)
        .adopts(<ReplicaSet as Resource>::KIND, |d| d.spec.selector.as_ref())
        .observed_by(observer.clone())
        .run(
            deployment::reconcile,
            deployment::error_policy,
            Arc::clone(&ctx),
        );
    let allocator = Arc::new(service::Allocator::new(
        (*ctx).clone(),
        service::ServiceNetwork::default(),
    ));
    let services = service::controller(ctx.store.clone())
        .observed_by(observer.clone())
        .run(service::reconcile, service::error_policy, allocator);
    let endpoints = endpoints::controller(ctx.store.clone())
        .labelled("Endpoints")
        .observed_by(observer.clone())
        .run(
            endpoints::reconcile,
            endpoints::error_policy,
            Arc::clone(&ctx),
        );
    let event_ttl = events::run(Arc::clone(&ctx), events::EventTtl::default());
    let collector = gc::controller(ctx.store.clone()).observed_by(observer).run(
        gc::reconcile,
        gc::error_policy,
        ctx,
    );
    tokio::join!(
        replica_sets,
        deployments,
        services,
        endpoints,
        collector,
        event_ttl
    );
}
