//! Watches: a change feed by resourceVersion, as Kubernetes' `?watch=true`.
//!
//! A watch first replays what it was asked to catch up on, read from one consistent snapshot:
//! nothing ([`WatchStart::Now`]), the persisted change log after a resourceVersion
//! ([`WatchStart::After`]), or the current objects as synthetic ADDED events
//! ([`WatchStart::InitialState`], what the API answers a watch without a resourceVersion). It then
//! streams the live events that commits broadcast, which it subscribed to at exactly the
//! snapshot's revision, so nothing is missed or seen twice.
//!
//! Two ways a watch cannot go on, both `Gone` (410) so that the client relists and watches from
//! the list's resourceVersion, as Kubernetes reflectors do:
//! - the resourceVersion asked for is older than the compacted change log (an error of
//!   [`RedbStore::watch`](crate::RedbStore::watch));
//! - the watcher fell more than the feed's capacity behind: the stream yields one `Gone` error and
//!   ends, rather than silently skipping events.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use berth_api::Object;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_stream::{
    Stream,
    wrappers::{BroadcastStream, errors::BroadcastStreamRecvError},
};

use crate::error::{Error, GoneCause, Result};

/// `ADDED`, `MODIFIED` or `DELETED`, as in Kubernetes watch events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One change. Serializes as Kubernetes' watch event: `{"type": "ADDED", "object": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WatchEvent {
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// The object after the change; for DELETED its last state, with the deletion's
    /// resourceVersion.
    pub object: Object,
    /// The resourceVersion of the change (of the object, for synthetic initial ADDED events).
    #[serde(skip)]
    pub resource_version: u64,
}

/// Which objects a watch sees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchFilter {
    /// A kind (`Pod`), or every kind.
    pub kind: Option<&'static str>,
    /// A namespace, or every namespace (and cluster-scoped objects).
    pub namespace: Option<String>,
    /// One object's name (`kubectl get pod web --watch`), or every name.
    pub name: Option<String>,
}

impl WatchFilter {
    /// Every object of every kind.
    pub fn all() -> Self {
        Self::default()
    }

    /// Objects of `kind` in every namespace.
    pub fn kind(kind: &'static str) -> Self {
        Self {
            kind: Some(kind),
            ..Self::default()
        }
    }

    /// Restricts the filter to `namespace`.
    pub fn in_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Restricts the filter to the object named `name`.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub fn matches(&self, object: &Object) -> bool {
        self.kind.is_none_or(|kind| object.kind() == kind)
            && self
                .name
                .as_deref()
                .is_none_or(|name| object.name() == name)
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| object.metadata().namespace.as_deref() == Some(ns))
    }
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchStart {
    /// Only changes after the current revision.
    Now,
    /// Every change after this resourceVersion (typically a list's), replayed from the change
    /// log; `Gone` if it has been compacted.
    After(u64),
    /// ADDED for every current object, then the changes after the current revision.
    InitialState,
}

/// A stream of [`WatchEvent`]s; see the module documentation. Ends when the store is dropped,
/// or after yielding a `Gone` error.
pub struct Watch {
    replay: std::vec::IntoIter<WatchEvent>,
    live: BroadcastStream<Arc<WatchEvent>>,
    filter: WatchFilter,
    /// Whether the replayed events are changes in resourceVersion order (not initial state).
    replaying_changes: bool,
    /// The revision the live feed was subscribed at: the replay ends there.
    subscribed_at: u64,
    /// The resourceVersion the watch has seen every change up to.
    seen: u64,
    finished: bool,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("filter", &self.filter)
            .field("resource_version", &self.seen)
            .field("replay_pending", &self.replay.len())
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Watch {
    pub(crate) fn new(
        replay: Vec<WatchEvent>,
        live: broadcast::Receiver<Arc<WatchEvent>>,
        filter: WatchFilter,
        start: WatchStart,
        subscribed_at: u64,
    ) -> Self {
        let (seen, replaying_changes) = match start {
            WatchStart::Now => (subscribed_at, false),
            WatchStart::After(from) => (from, true),
            WatchStart::InitialState => (0, false),
        };
        Self {
            replay: replay.into_iter(),
            live: BroadcastStream::new(live),
            filter,
            replaying_changes,
            subscribed_at,
            seen,
            finished: false,
        }
    }

    /// The resourceVersion up to which this watch has delivered (or filtered out) every change;
    /// a new watch started after it misses nothing.
    pub fn resource_version(&self) -> u64 {
        self.seen
    }
}

impl Stream for Watch {
    type Item = Result<WatchEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
        }
        if let Some(event) = this.replay.next() {
            if this.replaying_changes {
                this.seen = event.resource_version;
            }
            return Poll::Ready(Some(Ok(event)));
        }
        this.seen = this.seen.max(this.subscribed_at);
        loop {
            match ready!(Pin::new(&mut this.live).poll_next(cx)) {
                None => {
                    this.finished = true;
                    return Poll::Ready(None);
                }
                Some(Err(BroadcastStreamRecvError::Lagged(missed))) => {
                    this.finished = true;
                    tracing::debug!(resource_version = this.seen, missed, "watcher lagged");
                    return Poll::Ready(Some(Err(Error::Gone {
                        resource_version: this.seen,
                        cause: GoneCause::Lagged { missed },
                    })));
                }
                Some(Ok(event)) => {
                    if event.resource_version <= this.seen {
                        continue;
                    }
                    this.seen = event.resource_version;
                    if this.filter.matches(&event.object) {
                        return Poll::Ready(Some(Ok(WatchEvent::clone(&event))));
                    }
                }
            }
        }
    }
}
