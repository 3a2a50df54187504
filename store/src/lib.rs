//! berth's store: every object of the cluster, durable and watchable, in one file under
//! `--root` (`RedbStore::open(root.join("store.redb"))`).
//!
//! # Semantics (Kubernetes', as the API server gives them over etcd)
//! - **Identity.** Objects are keyed by (kind, namespace, name) and stored as JSON. On create the
//!   store assigns `uid` (UUID v4), `creationTimestamp`, `generation: 1`, and fills `name` from
//!   `generateName`.
//! - **resourceVersion** is one global counter, like etcd's revision: every change gets the next
//!   number (also each change of a batch), written as a decimal string. A list answers the
//!   revision it was read at.
//! - **generation** grows when the desired state (anything but `metadata` and `status`) changes,
//!   and when deletion starts; never on status or metadata-only changes.
//! - **Optimistic concurrency.** `update` needs the resourceVersion that was read; a stale one is
//!   [`Error::Conflict`] (409) naming the object and both versions. `apply` (what `berth apply`
//!   does) creates or replaces whatever the version; [`RedbStore::guaranteed_update`] rereads and
//!   retries on conflict. Writes that change nothing are not written and send no event.
//! - **Status** is a subresource: `update`/`apply` keep the stored `status`, `update_status`
//!   changes nothing else.
//! - **Deletion.** An object with finalizers gets a `deletionTimestamp` (a MODIFIED event) and
//!   goes (DELETED) when an update removes the last finalizer. A Pod the agent has started is
//!   deleted gracefully: it gets a `deletionTimestamp` and `deletionGracePeriodSeconds`, and goes
//!   when the agent, having stopped its containers, deletes it with grace 0
//!   ([`DeleteOptions`], [`RedbStore::delete_with`]). Cascading deletion is the
//!   controller's garbage collector; [`RedbStore::dependents`] gives it an owner's dependents.
//! - **Namespaces** are checked here, not in the API layer: a namespaced object can only be
//!   created in an existing namespace that is not terminating. Only the store can check that in
//!   the same transaction as the create (a batch may create a namespace and its objects; a
//!   concurrent delete of the namespace cannot slip in between). `default` is created on open.
//!   Deleting a namespace does not delete its objects: that is the namespace controller's job,
//!   as in Kubernetes. Validation of the objects themselves is the API layer's
//!   (`berth_api::validation`), before they reach the store.
//! - **Watch.** [`RedbStore::watch`] streams ADDED/MODIFIED/DELETED events in resourceVersion
//!   order across kinds, from now, from a resourceVersion (replayed from the change log), or
//!   from the current state; see [`watch`] for `Gone` (410).
//!
//! # Durability
//! Every write is one redb transaction committed with `Durability::Immediate` (fsync before the
//! call returns), and a [`batch`](RedbStore::batch) of creates/updates/deletes is one transaction
//! too, so `kill -9` at any moment loses nothing acknowledged and never leaves half a
//! `berth apply -f DIR` behind. redb is copy-on-write: a crash leaves the last committed tree
//! intact, and opening repairs the allocator state.
//!
//! # Why redb
//! redb is pure Rust (no C library or build script to cross-compile into our one static
//! binary, unlike SQLite through rusqlite), small, ACID with crash-safe copy-on-write B-trees,
//! and keeps everything in one file. Its model, one writer and many snapshot readers, is
//! exactly a single-node daemon's: we serialize writes anyway to hand out resourceVersions in
//! order, and reads never block on them. We need no SQL: the access paths are a key, a key
//! prefix (kind and namespace) and a revision range, which are B-tree ranges.
//!
//! # Scale and indexes
//! Lists are prefix scans of (kind, namespace) and filter labels in memory: at a single node's
//! scale (thousands of objects) that is cheaper than keeping label indexes consistent. Owner
//! references get an index (owner uid → dependents) because the garbage collector asks for an
//! owner's dependents on every delete, and a list-and-filter would decode every object of every
//! kind each time; the index costs one B-tree insert per reference, in the same transaction.
//!
//! # Concurrency
//! redb is synchronous: every call runs on tokio's blocking pool. Writers take one lock around
//! transaction, commit and publishing of events, which keeps the live feed in resourceVersion
//! order; readers take redb snapshots and do not wait for writers.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use berth_store::{RedbStore, WatchFilter, WatchStart, StreamExt, EventType};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = RedbStore::open(dir.path().join("store.redb")).unwrap();
//! let deployment = berth_api::testing::deployment("web").build();
//! let created = store.create(deployment).await.unwrap();
//! assert_eq!(created.metadata().generation, Some(1));
//!
//! let list = store.list("Deployment", Some("default"), None).await.unwrap();
//! assert_eq!(list.items, vec![created.clone()]);
//! let mut watch = store
//!     .watch(WatchFilter::kind("Deployment"), WatchStart::After(list.resource_version))
//!     .await
//!     .unwrap();
//! store.delete(&created.key(), Default::default()).await.unwrap();
//! let event = watch.next().await.unwrap().unwrap();
//! assert_eq!(event.event_type, EventType::Deleted);
//! # });
//! ```

mod codec;
mod core;
pub mod error;
mod store;
pub mod watch;

pub use crate::core::{
    Compaction, DEFAULT_GRACE_PERIOD_SECONDS, DeleteOptions, Op, Options, Outcome, Preconditions,
};
pub use error::{Error, GoneCause, Result};
pub use store::{List, RedbStore, key_of};
pub use tokio_stream::{Stream, StreamExt};
pub use watch::{EventType, Watch, WatchEvent, WatchFilter, WatchStart};
