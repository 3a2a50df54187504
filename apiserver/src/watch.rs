//! `?watch=true`: the store's watch as newline-delimited JSON watch events, one chunk per
//! event.
//!
//! A task pumps the store's [`berth_store::Watch`] into the response body through a small
//! channel, so that the stream ends on any of: the client going (the channel closes), the
//! server shutting down, or the watch ending. When the store says `Gone` (the resourceVersion
//! was compacted away, or the watcher fell behind), the stream carries one `ERROR` event with
//! a 410 `Status` and ends, as Kubernetes does: clients relist and watch again.
//!
//! `timeoutSeconds` ends the stream after that long, as Kubernetes does; clients watch again
//! from the last resourceVersion they saw.
//!
//! Label and field selectors filter the events, and, as in Kubernetes, an object that starts
//! matching is ADDED and one that stops matching is DELETED for the watcher ([`Matching`]).
//! A watch that resumes from a resourceVersion does not know which objects matched before
//! it started: a change of such an object that still matches is MODIFIED, one that no longer
//! matches is not sent.

use std::{collections::HashSet, time::Duration};

use berth_api::{KindInfo, ObjectKey};
use berth_store::{EventType, StreamExt, WatchFilter, WatchStart};
use bytes::Bytes;
use serde_json::json;

use crate::{
    error::ApiError,
    handlers::{list_selectors, to_value},
    server::{ApiState, Request, Response, stream_response},
};

/// How many encoded events may wait for a slow client before the pump waits.
const BUFFER: usize = 64;

pub(crate) async fn watch(
    state: &ApiState,
    kind: &'static KindInfo,
    namespace: Option<String>,
    request: &Request,
) -> Result<Response, ApiError> {
    let selectors = list_selectors(kind, request)?;
    let start = match request.query("resourceVersion") {
        None | Some("" | "0") => WatchStart::InitialState,
        Some(text) => WatchStart::After(text.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "query parameter resourceVersion={text:?}: expected a resourceVersion (a whole number) from a list or an object"
            ))
        })?),
    };
    let timeout = request
        .query("timeoutSeconds")
        .map(|text| {
            text.parse::<u64>().map(Duration::from_secs).map_err(|_| {
                ApiError::bad_request(format!(
                    "query parameter timeoutSeconds={text:?}: expected a whole number of seconds"
                ))
            })
        })
        .transpose()?;
    let mut filter = WatchFilter::kind(kind.kind);
    if let Some(namespace) = namespace {
        filter = filter.in_namespace(namespace);
    }
    if let Some(name) = selectors.fields.name() {
        filter = filter.named(name);
    }
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(BUFFER);
    let mut events = match state.store().watch(filter, start).await {
        Ok(events) => events,
        Err(err @ berth_store::Error::Gone { .. }) => {
            let line = error_line(&ApiError::from(err));
            // The channel has room: this send cannot wait.
            let _ = sender.try_send(Ok(line));
            return Ok(stream_response("application/json", receiver));
        }
        Err(err) => return Err(err.into()),
    };
    let shutdown = state.shutting_down();
    let mut seen = Matching::new(
        selectors.labels.is_some() || !selectors.fields.is_empty(),
        start == WatchStart::InitialState,
    );
    tokio::spawn(async move {
        tokio::pin!(shutdown);
        let expired = async move {
            match timeout {
                Some(timeout) => tokio::time::sleep(timeout).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(expired);
        loop {
            let event = tokio::select! {
                () = &mut shutdown => break,
                () = &mut expired => break,
                () = sender.closed() => break,
                event = events.next() => event,
            };
            let line = match event {
                None => break,
                Some(Err(err)) => {
                    let _ = sender.send(Ok(error_line(&ApiError::from(err)))).await;
                    break;
                }
                Some(Ok(event)) => {
                    let object = match to_value(&event.object) {
                        Ok(object) => object,
                        Err(err) => {
                            let _ = sender.send(Ok(error_line(&err))).await;
                            break;
                        }
                    };
                    let matches = selectors.matches(&event.object.metadata().labels, &object);
                    let Some(event_type) =
                        seen.translate(event.object.key(), event.event_type, matches)
                    else {
                        continue;
                    };
                    encode_line(&json!({"type": event_type, "object": object}))
                }
            };
            if sender.send(Ok(line)).await.is_err() {
                break;
            }
        }
        tracing::debug!("watch stream ended");
    });
    Ok(stream_response("application/json", receiver))
}

fn encode_line(value: &serde_json::Value) -> Bytes {
    let mut line = value.to_string().into_bytes();
    line.push(b'\n');
    Bytes::from(line)
}

fn error_line(err: &ApiError) -> Bytes {
    encode_line(&json!({"type": "ERROR", "object": err.status()}))
}

/// Which objects a selective watch has told its client about, to turn changes across the
/// selector's boundary into ADDED and DELETED events.
struct Matching {
    selective: bool,
    /// Whether every object the client knows was sent by this watch (it started with the
    /// current state): then a matching object not sent before is new to the client.
    complete: bool,
    sent: HashSet<ObjectKey>,
}

impl Matching {
    fn new(selective: bool, complete: bool) -> Self {
        Self {
            selective,
            complete,
            sent: HashSet::new(),
        }
    }

    /// The event to send for a change of `key`, which `matches` the selectors or not; `None`
    /// to send nothing.
    fn translate(&mut self, key: ObjectKey, event: EventType, matches: bool) -> Option<EventType> {
        if !self.selective {
            return Some(event);
        }
        let known = self.sent.contains(&key);
        match (event, matches, known) {
            (EventType::Deleted, _, true) => {
                self.sent.remove(&key);
                Some(EventType::Deleted)
            }
            (EventType::Deleted, true, false) => Some(EventType::Deleted),
            (EventType::Deleted, false, false) => None,
            (_, false, true) => {
                self.sent.remove(&key);
                Some(EventType::Deleted)
            }
            (_, false, false) => None,
            (EventType::Added, true, _) => {
                self.sent.insert(key);
                Some(EventType::Added)
            }
            (EventType::Modified, true, known) => {
                self.sent.insert(key);
                Some(if known || !self.complete {
                    EventType::Modified
                } else {
                    EventType::Added
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ObjectKey {
        ObjectKey {
            kind: "Pod",
            namespace: Some("default".into()),
            name: name.into(),
        }
    }

    #[test]
    fn crossing_the_selector_is_added_or_deleted() {
        let mut m = Matching::new(true, true);
        assert_eq!(m.translate(key("a"), EventType::Added, false), None);
        assert_eq!(
            m.translate(key("a"), EventType::Modified, true),
            Some(EventType::Added)
        );
        assert_eq!(
            m.translate(key("a"), EventType::Modified, true),
            Some(EventType::Modified)
        );
        assert_eq!(
            m.translate(key("a"), EventType::Modified, false),
            Some(EventType::Deleted)
        );
        assert_eq!(m.translate(key("a"), EventType::Deleted, false), None);
        assert_eq!(
            m.translate(key("b"), EventType::Added, true),
            Some(EventType::Added)
        );
        assert_eq!(
            m.translate(key("b"), EventType::Deleted, true),
            Some(EventType::Deleted)
        );

        let mut resumed = Matching::new(true, false);
        assert_eq!(
            resumed.translate(key("c"), EventType::Modified, true),
            Some(EventType::Modified)
        );
        let mut everything = Matching::new(false, true);
        assert_eq!(
            everything.translate(key("d"), EventType::Modified, false),
            Some(EventType::Modified)
        );
    }
}
