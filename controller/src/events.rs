//! The Events TTL collector: an Event last seen longer ago than the TTL is deleted, as
//! Kubernetes' API server expires events after `--event-ttl` (one hour by default).
//!
//! Kubernetes gets this from etcd leases; berth's store has none, so the collector lists the
//! Events every [`EventTtl::period`] and deletes the expired ones. An Event's age is taken from
//! its `lastTimestamp`, else its `firstTimestamp`, else its `metadata.creationTimestamp` (which
//! the store always sets). Each delete carries the Event's uid and resourceVersion as
//! preconditions: an Event recorded again meanwhile (its count and lastTimestamp bumped) is
//! kept, and one deleted meanwhile is not an error.
//!
//! A pass is reported to the [`Context`]'s observer under the label `Event`, like a reconcile.

use std::{sync::Arc, time::Duration};

use berth_api::{Resource, Time, core_v1::Event};
use berth_store::Preconditions;

use crate::Context;

/// The metrics label of the collector's passes.
pub const LABEL: &str = "Event";

/// How long Events live and how often expired ones are looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTtl {
    /// Events last seen longer ago than this are deleted (Kubernetes' `--event-ttl`).
    pub ttl: Duration,
    /// Time between two passes.
    pub period: Duration,
}

impl Default for EventTtl {
    /// One hour, checked every minute.
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(3600),
            period: Duration::from_secs(60),
        }
    }
}

/// Why a pass could not list or delete Events.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("event TTL: cannot list the Events")]
    List {
        #[source]
        source: Box<berth_store::Error>,
    },
    #[error("event TTL: cannot delete Event {namespace}/{name}")]
    Delete {
        namespace: String,
        name: String,
        #[source]
        source: Box<berth_store::Error>,
    },
}

pub type Result<T, E = EventsError> = std::result::Result<T, E>;

/// When `event` was last seen: `lastTimestamp`, `firstTimestamp` or its creation.
pub fn last_seen(event: &Event) -> Option<&Time> {
    event
        .last_timestamp
        .as_ref()
        .or(event.first_timestamp.as_ref())
        .or(event.metadata.creation_timestamp.as_ref())
}

/// One pass: deletes every Event last seen more than `ttl` before the context's clock says now.
/// The number of Events deleted.
pub async fn collect(ctx: &Context, ttl: Duration) -> Result<usize> {
    let events = ctx
        .store
        .list_as::<Event>(None, None)
        .await
        .map_err(|source| EventsError::List {
            source: Box::new(source),
        })?;
    let now = ctx.clock.timestamp();
    let mut deleted = 0;
    for event in &events.items {
        let Some(seen) = last_seen(event) else {
            continue;
        };
        let age = now.duration_since(seen.0);
        if Duration::try_from(age).is_ok_and(|age| age > ttl) {
            let meta = &event.metadata;
            let key = berth_store::key_of::<Event>(meta.namespace.as_deref(), meta.name());
            let preconditions = Preconditions {
                uid: meta.uid.clone(),
                resource_version: meta.resource_version.clone(),
            };
            match ctx.store.delete(&key, preconditions).await {
                Ok(_) => deleted += 1,
                // Recorded again or deleted since the list: not expired, or already gone.
                Err(err) if err.is_conflict() || err.is_not_found() => {}
                Err(source) => {
                    return Err(EventsError::Delete {
                        namespace: meta.namespace.clone().unwrap_or_default(),
                        name: meta.name().to_owned(),
                        source: Box::new(source),
                    });
                }
            }
        }
    }
    Ok(deleted)
}

/// Runs a pass every `config.period` (the first at once) until the task is aborted.
pub async fn run(ctx: Arc<Context>, config: EventTtl) {
    let mut ticks = tokio::time::interval(config.period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let began = tokio::time::Instant::now();
        let result = collect(&ctx, config.ttl).await;
        if let Some(observer) = &ctx.observer {
            observer.reconciled(LABEL, began.elapsed(), result.is_err());
        }
        match result {
            Ok(0) => {}
            Ok(deleted) => tracing::debug!(deleted, kind = Event::KIND, "expired events deleted"),
            Err(err) => tracing::warn!(error = %err, "event TTL pass failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use berth_api::{core_v1::ObjectReference, meta::ObjectMeta};
    use berth_store::{Options, RedbStore};

    use super::*;
    use crate::{Clock, Observer};

    fn event(name: &str, last: Option<&str>) -> Event {
        Event {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                name: Some("web-1".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            reason: Some("Started".into()),
            last_timestamp: last.map(|t| Time(t.parse().unwrap())),
            ..Default::default()
        }
    }

    async fn names(store: &RedbStore) -> Vec<String> {
        let list = store.list_as::<Event>(None, None).await.unwrap();
        list.items
            .iter()
            .map(|e| e.metadata.name().to_owned())
            .collect()
    }

    #[derive(Debug, Default)]
    struct Recording(Mutex<Vec<(&'static str, bool)>>);

    impl Observer for Recording {
        fn reconciled(&self, kind: &'static str, _took: Duration, failed: bool) {
            self.0.lock().unwrap().push((kind, failed));
        }
        fn queue_depth(&self, _kind: &'static str, _depth: usize) {}
    }

    #[tokio::test(start_paused = true)]
    async fn deletes_events_last_seen_before_the_ttl_only() {
        let store = RedbStore::open_in_memory(Options::default()).unwrap();
        let now: jiff::Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        let ctx = Context::new(store.clone(), Clock::starting_at(now));
        store
            .create(event("old", Some("2026-01-01T10:59:00Z")))
            .await
            .unwrap();
        store
            .create(event("recent", Some("2026-01-01T11:30:00Z")))
            .await
            .unwrap();
        // No timestamps of its own: its creation (the real wall clock, after `now`) counts.
        store.create(event("untimed", None)).await.unwrap();

        let deleted = collect(&ctx, Duration::from_secs(3600)).await.unwrap();
        assert_eq!(deleted, 1);
        assert_eq!(names(&store).await, ["recent", "untimed"]);

        // Half an hour later "recent" is older than an hour too.
        tokio::time::advance(Duration::from_secs(1801)).await;
        assert_eq!(collect(&ctx, Duration::from_secs(3600)).await.unwrap(), 1);
        assert_eq!(names(&store).await, ["untimed"]);
    }

    #[tokio::test(start_paused = true)]
    async fn run_collects_periodically_and_reports_each_pass() {
        let store = RedbStore::open_in_memory(Options::default()).unwrap();
        let now: jiff::Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        let recording = Arc::new(Recording::default());
        let ctx = Context::new(store.clone(), Clock::starting_at(now))
            .with_observer(Arc::clone(&recording) as Arc<dyn Observer>);
        store
            .create(event("soon", Some("2026-01-01T11:59:30Z")))
            .await
            .unwrap();
        let config = EventTtl {
            ttl: Duration::from_secs(60),
            period: Duration::from_secs(10),
        };
        let task = tokio::spawn(run(Arc::new(ctx), config));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(names(&store).await, ["soon"], "30s old, TTL 60s");
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(
            names(&store).await,
            ["soon"],
            "exactly 60s old at the pass at 30s"
        );
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(names(&store).await.is_empty(), "70s old at the pass at 40s");
        task.abort();
        let passes = recording.0.lock().unwrap().clone();
        assert_eq!(
            passes.len(),
            5,
            "passes at 0, 10, 20, 30 and 40s: {passes:?}"
        );
        assert!(
            passes
                .iter()
                .all(|&(kind, failed)| kind == LABEL && !failed)
        );
    }
}
