//! The synchronous heart of the store: one redb database, one write transaction per request or
//! batch, and the live feed that write commits publish to. Everything here blocks; `RedbStore`
//! runs it on tokio's blocking pool.
//!
//! Tables:
//! - `objects`: `Kind\0namespace\0name` → the object as JSON.
//! - `changes`: resourceVersion → `{"type": ..., "object": ...}`, the change log watches replay.
//! - `meta`: `revision` (the last resourceVersion handed out), `compacted` (the change log holds
//!   every change after it).
//! - `dependents`: owner uid → keys of the objects whose `ownerReferences` name it.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use berth_api::{LabelSelector, Object, ObjectKey, ObjectMeta, Time};
use redb::{
    Database, Durability, MultimapTable, MultimapTableDefinition, ReadTransaction,
    ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction,
};
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::broadcast;

use crate::{
    codec::{self, encode_key},
    error::{Error, GoneCause, Result},
    watch::{EventType, WatchEvent, WatchFilter, WatchStart},
};

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const CHANGES: TableDefinition<u64, &[u8]> = TableDefinition::new("changes");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const DEPENDENTS: MultimapTableDefinition<&str, &str> = MultimapTableDefinition::new("dependents");
const REVISION: &str = "revision";
const COMPACTED: &str = "compacted";

/// Tuning of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// How many of the latest changes the change log keeps for watches that resume from an older
    /// resourceVersion; older ones are compacted away and asking for them is `Gone` (410).
    pub retained_events: u64,
    /// How many live events a watcher may fall behind before it is cut off with `Gone`.
    pub feed_capacity: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            retained_events: 10_000,
            feed_capacity: 1024,
        }
    }
}

/// One change in a [`batch`](crate::RedbStore::batch).
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Create; `AlreadyExists` if the object exists.
    Create(Object),
    /// Replace the desired state; the object must carry the stored resourceVersion.
    Update(Object),
    /// Create or replace the desired state; a resourceVersion, if given, is a precondition.
    Apply(Object),
    /// Replace `status` only; a resourceVersion, if given, is a precondition.
    UpdateStatus(Object),
    /// Delete (or mark for deletion while finalizers remain, or while a started pod terminates)
    /// with the default grace period: what a `DELETE` without options does.
    Delete {
        key: ObjectKey,
        preconditions: Preconditions,
    },
    /// Delete with explicit [`DeleteOptions`] (a grace period).
    DeleteWith {
        key: ObjectKey,
        options: DeleteOptions,
    },
}

/// Kubernetes' `DeleteOptions`: preconditions and the grace period of a pod's termination.
///
/// A Pod the agent has started (it has a status whose phase is neither `Succeeded` nor `Failed`)
/// is not removed by a delete: it gets a `deletionTimestamp` (now + the grace period) and a
/// `deletionGracePeriodSeconds`, and the agent, once it has stopped the containers, deletes it
/// with a grace period of 0. The grace period is `grace_period_seconds`, else the pod's
/// `terminationGracePeriodSeconds`, else 30; a later delete with a shorter one shortens it, a
/// longer one changes nothing. A grace period of 0, a pod that never started and a terminated one
/// go at once. Other kinds ignore the grace period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    pub preconditions: Preconditions,
    /// Seconds the pod's containers get to stop; `None` is the pod's own.
    pub grace_period_seconds: Option<i64>,
}

/// Kubernetes' default `terminationGracePeriodSeconds`.
pub const DEFAULT_GRACE_PERIOD_SECONDS: i64 = 30;

/// Conditions a delete checks first (Kubernetes `DeleteOptions.preconditions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Created(Object),
    Updated(Object),
    /// Nothing changed, so nothing was written and no event sent (the stored object).
    Unchanged(Object),
    /// The object has finalizers: it now carries a `deletionTimestamp` and stays until they are
    /// removed.
    Terminating(Object),
    /// The object is gone; this is its last state, with the resourceVersion of the deletion.
    Deleted(Object),
}

impl Outcome {
    pub fn object(&self) -> &Object {
        match self {
            Self::Created(o)
            | Self::Updated(o)
            | Self::Unchanged(o)
            | Self::Terminating(o)
            | Self::Deleted(o) => o,
        }
    }

    pub fn into_object(self) -> Object {
        match self {
            Self::Created(o)
            | Self::Updated(o)
            | Self::Unchanged(o)
            | Self::Terminating(o)
            | Self::Deleted(o) => o,
        }
    }
}

/// The result of a compaction of the change log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compaction {
    /// The change log now holds every change after this resourceVersion.
    pub compacted: u64,
    /// How many changes were dropped.
    pub removed: u64,
}

/// How a write is merged with the stored object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Merge {
    /// `update`: desired state from the caller, status kept; resourceVersion required.
    Update,
    /// `apply`: as `Update`, but the resourceVersion is optional.
    Apply,
    /// `update_status`: status from the caller, everything else kept.
    Status,
}

/// The change log record of one resourceVersion.
#[derive(Serialize)]
struct ChangeRecordRef<'a> {
    #[serde(rename = "type")]
    event_type: EventType,
    object: &'a Object,
}

#[derive(serde::Deserialize)]
struct ChangeRecord {
    #[serde(rename = "type")]
    event_type: EventType,
    object: Object,
}

/// What only the committing writer touches: the last resourceVersion and the live feed, kept
/// under one lock so that events are published in resourceVersion order and a watch subscribes
/// at an exact revision.
struct Writer {
    revision: u64,
    feed: broadcast::Sender<Arc<WatchEvent>>,
}

pub(crate) struct Core {
    db: Database,
    path: PathBuf,
    options: Options,
    writer: Mutex<Writer>,
    /// Single ops waiting for the writer: whoever takes it commits all of them at once.
    pending: Mutex<Vec<Pending>>,
    /// `Writer::revision`, readable without waiting for a write in progress.
    published: AtomicU64,
}

/// A single op waiting for a group commit, and where its outcome goes.
struct Pending {
    op: Op,
    done: std::sync::mpsc::SyncSender<Result<Outcome>>,
}

/// Wraps a redb error with the database path and what was being done.
fn db<E: Into<redb::Error>>(path: &Path, operation: &'static str) -> impl FnOnce(E) -> Error {
    move |source| Error::Database {
        path: path.to_owned(),
        operation,
        source: Box::new(source.into()),
    }
}

fn decode<T: DeserializeOwned>(path: &Path, record: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| Error::Corrupt {
        path: path.to_owned(),
        record: record.replace('\0', "/"),
        source,
    })
}

/// Parses a resourceVersion given by a caller.
fn parse_resource_version(key: &ObjectKey, value: &str) -> Result<u64> {
    value.parse().map_err(|_| Error::Invalid {
        key: key.clone(),
        field: "metadata.resourceVersion",
        value: value.to_owned(),
        expected: "a resourceVersion handed out by the store (a decimal number)",
    })
}

fn resource_version_of(object: &Object) -> Option<&str> {
    object
        .metadata()
        .resource_version
        .as_deref()
        .filter(|rv| !rv.is_empty())
}

fn owner_uids(meta: &ObjectMeta) -> Vec<&str> {
    meta.owner_references
        .iter()
        .map(|r| r.uid.as_str())
        .collect()
}

/// `generateName` suffix: five characters from Kubernetes' alphabet (no vowels, no look-alikes).
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4().as_bytes()[..5]
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

impl Core {
    pub(crate) fn open(path: &Path, options: Options) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        let database = Database::builder()
            .create(path)
            .map_err(db(path, "open the database"))?;
        Self::new(database, path.to_owned(), options)
    }

    /// A store that lives in memory only, with the same semantics (for tests and dry runs).
    pub(crate) fn in_memory(options: Options) -> Result<Self> {
        let path = PathBuf::from("<memory>");
        let database = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(db(&path, "create the database"))?;
        Self::new(database, path, options)
    }

    fn new(database: Database, path: PathBuf, options: Options) -> Result<Self> {
        let (feed, _) = broadcast::channel(options.feed_capacity.max(1));
        let core = Self {
            db: database,
            path,
            options,
            writer: Mutex::new(Writer { revision: 0, feed }),
            pending: Mutex::new(Vec::new()),
            published: AtomicU64::new(0),
        };
        let revision = core.initialize()?;
        core.lock_writer().revision = revision;
        core.published.store(revision, Ordering::Release);
        tracing::info!(path = %core.path.display(), revision, "store opened");
        Ok(core)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Creates the tables and the `default` namespace if missing; returns the last revision.
    fn initialize(&self) -> Result<u64> {
        let txn = self.begin_write()?;
        let revision = {
            let mut tx = Txn::open(&txn, &self.path)?;
            let default = ObjectKey {
                kind: "Namespace",
                namespace: None,
                name: berth_api::DEFAULT_NAMESPACE.to_owned(),
            };
            if tx.load(&default)?.is_none() {
                let namespace: Object = serde_json::from_value(serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": berth_api::DEFAULT_NAMESPACE},
                }))
                .map_err(|source| Error::Encode {
                    key: default.clone(),
                    source,
                })?;
                tx.create(namespace)?;
            }
            tx.finish()?;
            tx.revision
        };
        txn.commit().map_err(db(&self.path, "commit"))?;
        Ok(revision)
    }

    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        // The writer's state is only changed after a successful commit, so it is consistent even
        // if a holder panicked.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn begin_write(&self) -> Result<WriteTransaction> {
        let mut txn = self
            .db
            .begin_write()
            .map_err(db(&self.path, "begin a write transaction"))?;
        txn.set_durability(Durability::Immediate)
            .map_err(db(&self.path, "set durability"))?;
        Ok(txn)
    }

    fn begin_read(&self) -> Result<ReadTransaction> {
        self.db
            .begin_read()
            .map_err(db(&self.path, "begin a read transaction"))
    }

    /// The last resourceVersion handed out.
    pub(crate) fn revision(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    /// Applies `ops` in one transaction: all of them, durably, or none. Events are published
    /// after the commit, in resourceVersion order.
    pub(crate) fn write(&self, ops: Vec<Op>) -> Result<Vec<Outcome>> {
        let mut writer = self.lock_writer();
        self.write_locked(&mut writer, ops)
    }

    /// Applies one op, durably. Concurrent single ops share a transaction and its fsync (group
    /// commit): each caller queues its op and waits for the writer; whoever gets it commits
    /// every op queued by then, so the callers behind it find their outcome ready. An op that
    /// fails its checks (a conflict, a missing object) fails alone: the checks come before any
    /// write, so it leaves nothing in the shared transaction.
    pub(crate) fn write_one(&self, op: Op) -> Result<Outcome> {
        let (done, outcome) = std::sync::mpsc::sync_channel(1);
        self.lock_pending().push(Pending { op, done });
        let mut writer = self.lock_writer();
        // A writer before us may have committed ours already; it answers before letting go.
        if let Ok(result) = outcome.try_recv() {
            return result;
        }
        let group = std::mem::take(&mut *self.lock_pending());
        self.commit_group(&mut writer, group);
        drop(writer);
        outcome.recv().unwrap_or_else(|_| {
            unreachable!("an op queued before taking the writer is answered by then")
        })
    }

    fn lock_pending(&self) -> MutexGuard<'_, Vec<Pending>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Commits `group` in one transaction and answers each op. Should the transaction itself
    /// fail (a database error), each op is retried alone so that it gets its own error.
    fn commit_group(&self, writer: &mut MutexGuard<'_, Writer>, group: Vec<Pending>) {
        if group.is_empty() {
            return;
        }
        if group.len() == 1 {
            let Pending { op, done } = group.into_iter().next().expect("one");
            let result = self.write_locked(writer, vec![op]).map(|mut o| o.remove(0));
            let _ = done.send(result);
            return;
        }
        match self.apply_group(writer, group.iter().map(|p| p.op.clone()).collect()) {
            Ok(results) => {
                for (pending, result) in group.into_iter().zip(results) {
                    let _ = pending.done.send(result);
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, ops = group.len(), "group commit failed; retrying each op");
                for Pending { op, done: pending } in group {
                    let result = self.write_locked(writer, vec![op]).map(|mut o| o.remove(0));
                    let _ = pending.send(result);
                }
            }
        }
    }

    /// One transaction over independent ops: the outer error is the transaction's, the inner
    /// ones each op's own.
    fn apply_group(
        &self,
        writer: &mut MutexGuard<'_, Writer>,
        ops: Vec<Op>,
    ) -> Result<Vec<Result<Outcome>>> {
        self.transact(writer, |tx| {
            let mut results = Vec::with_capacity(ops.len());
            for op in ops {
                match tx.apply(op) {
                    Err(err) if err.is_storage() => return Err(err),
                    result => results.push(result),
                }
            }
            Ok(results)
        })
    }

    fn write_locked(
        &self,
        writer: &mut MutexGuard<'_, Writer>,
        ops: Vec<Op>,
    ) -> Result<Vec<Outcome>> {
        self.transact(writer, |tx| {
            ops.into_iter().map(|op| tx.apply(op)).collect()
        })
    }

    /// One write transaction around `apply`: committed (and its events published) when it
    /// changed something, aborted when it changed nothing or failed.
    fn transact<T>(
        &self,
        writer: &mut MutexGuard<'_, Writer>,
        apply: impl FnOnce(&mut Txn<'_>) -> Result<T>,
    ) -> Result<T> {
        let txn = self.begin_write()?;
        let (value, events, revision) = {
            let mut tx = Txn::open(&txn, &self.path)?;
            let value = apply(&mut tx)?;
            tx.finish()?;
            (value, std::mem::take(&mut tx.events), tx.revision)
        };
        if events.is_empty() {
            txn.abort().map_err(db(&self.path, "abort"))?;
            return Ok(value);
        }
        txn.commit().map_err(db(&self.path, "commit"))?;
        self.publish(writer, revision, events);
        Ok(value)
    }

    /// After a commit: the new revision, and its events to the live feed in order.
    fn publish(&self, writer: &mut MutexGuard<'_, Writer>, revision: u64, events: Vec<WatchEvent>) {
        writer.revision = revision;
        self.published.store(revision, Ordering::Release);
        tracing::trace!(revision, changes = events.len(), "committed");
        for event in events {
            // No receiver is not an error: nobody watches.
            let _ = writer.feed.send(Arc::new(event));
        }
    }

    pub(crate) fn get(&self, key: &ObjectKey) -> Result<Object> {
        self.get_as(key)
    }

    /// Reads the object at `key` as `T` (an `Object` or a concrete kind).
    pub(crate) fn get_as<T: DeserializeOwned>(&self, key: &ObjectKey) -> Result<T> {
        let txn = self.begin_read()?;
        let objects = txn
            .open_table(OBJECTS)
            .map_err(db(&self.path, "open objects"))?;
        let raw = encode_key(key);
        let bytes = objects
            .get(raw.as_str())
            .map_err(db(&self.path, "read an object"))?
            .ok_or_else(|| Error::NotFound { key: key.clone() })?;
        decode(&self.path, &raw, bytes.value())
    }

    /// Objects of `kind` (in `namespace`, matching `selector`) and the revision they were read at.
    pub(crate) fn list_as<T: DeserializeOwned>(
        &self,
        kind: &str,
        namespace: Option<&str>,
        selector: Option<&LabelSelector>,
        labels: impl Fn(&T) -> &BTreeMap<String, String>,
    ) -> Result<(Vec<T>, u64)> {
        let info = codec::kind_info(kind)?;
        let txn = self.begin_read()?;
        let revision = read_meta(&txn, &self.path, REVISION)?;
        let objects = txn
            .open_table(OBJECTS)
            .map_err(db(&self.path, "open objects"))?;
        let namespace = namespace.filter(|_| info.namespaced);
        let (start, end) = codec::prefix_range(info.kind, namespace);
        let mut items = Vec::new();
        for entry in objects
            .range(start.as_str()..end.as_str())
            .map_err(db(&self.path, "list objects"))?
        {
            let (raw, bytes) = entry.map_err(db(&self.path, "list objects"))?;
            let item: T = decode(&self.path, raw.value(), bytes.value())?;
            if selector.is_none_or(|s| s.matches(labels(&item))) {
                items.push(item);
            }
        }
        Ok((items, revision))
    }

    /// Objects whose `ownerReferences` name `owner_uid`.
    pub(crate) fn dependents(&self, owner_uid: &str) -> Result<Vec<Object>> {
        let txn = self.begin_read()?;
        let dependents = txn
            .open_multimap_table(DEPENDENTS)
            .map_err(db(&self.path, "open dependents"))?;
        let objects = txn
            .open_table(OBJECTS)
            .map_err(db(&self.path, "open objects"))?;
        let mut found = Vec::new();
        for raw in dependents
            .get(owner_uid)
            .map_err(db(&self.path, "read dependents"))?
        {
            let raw = raw.map_err(db(&self.path, "read dependents"))?;
            if let Some(bytes) = objects
                .get(raw.value())
                .map_err(db(&self.path, "read an object"))?
            {
                found.push(decode(&self.path, raw.value(), bytes.value())?);
            }
        }
        Ok(found)
    }

    /// Subscribes to the live feed at the current revision and reads what the watch must replay
    /// first. Returns the replayed events, the receiver, and the revision the receiver starts
    /// after.
    pub(crate) fn subscribe(
        &self,
        filter: &WatchFilter,
        start: WatchStart,
    ) -> Result<(Vec<WatchEvent>, broadcast::Receiver<Arc<WatchEvent>>, u64)> {
        // Under the writer lock nothing is half-committed: the receiver gets exactly the events
        // after `current`, and the read snapshot is exactly the state at `current`.
        let (receiver, current, txn) = {
            let writer = self.lock_writer();
            (writer.feed.subscribe(), writer.revision, self.begin_read()?)
        };
        let replay = match start {
            WatchStart::Now => Vec::new(),
            WatchStart::After(from) => self.replay_changes(&txn, filter, from, current)?,
            WatchStart::InitialState => self.initial_state(&txn, filter)?,
        };
        Ok((replay, receiver, current))
    }

    fn replay_changes(
        &self,
        txn: &ReadTransaction,
        filter: &WatchFilter,
        from: u64,
        current: u64,
    ) -> Result<Vec<WatchEvent>> {
        let compacted = read_meta(txn, &self.path, COMPACTED)?;
        if from < compacted {
            return Err(Error::Gone {
                resource_version: from,
                cause: GoneCause::Compacted { compacted },
            });
        }
        let changes = txn
            .open_table(CHANGES)
            .map_err(db(&self.path, "open changes"))?;
        let mut events = Vec::new();
        if from >= current {
            return Ok(events);
        }
        for entry in changes
            .range(from + 1..=current)
            .map_err(db(&self.path, "read changes"))?
        {
            let (rv, bytes) = entry.map_err(db(&self.path, "read changes"))?;
            let rv = rv.value();
            let record: ChangeRecord = decode(&self.path, &rv.to_string(), bytes.value())?;
            if filter.matches(&record.object) {
                events.push(WatchEvent {
                    event_type: record.event_type,
                    object: record.object,
                    resource_version: rv,
                });
            }
        }
        Ok(events)
    }

    fn initial_state(
        &self,
        txn: &ReadTransaction,
        filter: &WatchFilter,
    ) -> Result<Vec<WatchEvent>> {
        let objects = txn
            .open_table(OBJECTS)
            .map_err(db(&self.path, "open objects"))?;
        let (start, end) = match filter.kind {
            Some(kind) => codec::prefix_range(kind, filter.namespace.as_deref()),
            None => (String::new(), String::from("\u{10FFFF}")),
        };
        let mut events = Vec::new();
        for entry in objects
            .range(start.as_str()..end.as_str())
            .map_err(db(&self.path, "list objects"))?
        {
            let (raw, bytes) = entry.map_err(db(&self.path, "list objects"))?;
            let object: Object = decode(&self.path, raw.value(), bytes.value())?;
            if filter.matches(&object) {
                let resource_version = resource_version_of(&object)
                    .and_then(|rv| rv.parse().ok())
                    .unwrap_or_default();
                events.push(WatchEvent {
                    event_type: EventType::Added,
                    object,
                    resource_version,
                });
            }
        }
        Ok(events)
    }

    /// Drops the changes older than the last `retained_events` from the change log.
    pub(crate) fn compact(&self) -> Result<Compaction> {
        let txn = self.begin_write()?;
        let compaction = {
            let mut meta = txn.open_table(META).map_err(db(&self.path, "open meta"))?;
            let revision = get_meta(&meta, &self.path, REVISION)?;
            let compacted = get_meta(&meta, &self.path, COMPACTED)?;
            let cutoff = revision.saturating_sub(self.options.retained_events);
            if cutoff <= compacted {
                Compaction {
                    compacted,
                    removed: 0,
                }
            } else {
                let mut changes = txn
                    .open_table(CHANGES)
                    .map_err(db(&self.path, "open changes"))?;
                let mut removed = 0;
                changes
                    .retain_in(..=cutoff, |_, _| {
                        removed += 1;
                        false
                    })
                    .map_err(db(&self.path, "compact changes"))?;
                meta.insert(COMPACTED, cutoff)
                    .map_err(db(&self.path, "write meta"))?;
                Compaction {
                    compacted: cutoff,
                    removed,
                }
            }
        };
        if compaction.removed == 0 {
            txn.abort().map_err(db(&self.path, "abort"))?;
        } else {
            txn.commit().map_err(db(&self.path, "commit"))?;
        }
        Ok(compaction)
    }
}

fn read_meta(txn: &ReadTransaction, path: &Path, name: &str) -> Result<u64> {
    let meta = txn.open_table(META).map_err(db(path, "open meta"))?;
    get_meta(&meta, path, name)
}

fn get_meta(meta: &impl ReadableTable<&'static str, u64>, path: &Path, name: &str) -> Result<u64> {
    Ok(meta
        .get(name)
        .map_err(db(path, "read meta"))?
        .map(|v| v.value())
        .unwrap_or_default())
}

/// One write transaction's tables plus the revisions and events it produced so far.
struct Txn<'t> {
    path: &'t Path,
    objects: Table<'t, &'static str, &'static [u8]>,
    changes: Table<'t, u64, &'static [u8]>,
    meta: Table<'t, &'static str, u64>,
    dependents: MultimapTable<'t, &'static str, &'static str>,
    revision: u64,
    events: Vec<WatchEvent>,
    now: Time,
}

impl<'t> Txn<'t> {
    fn open(txn: &'t WriteTransaction, path: &'t Path) -> Result<Self> {
        let meta = txn.open_table(META).map_err(db(path, "open meta"))?;
        let revision = get_meta(&meta, path, REVISION)?;
        Ok(Self {
            path,
            objects: txn.open_table(OBJECTS).map_err(db(path, "open objects"))?,
            changes: txn.open_table(CHANGES).map_err(db(path, "open changes"))?,
            dependents: txn
                .open_multimap_table(DEPENDENTS)
                .map_err(db(path, "open dependents"))?,
            meta,
            revision,
            events: Vec::new(),
            now: now_in_seconds(),
        })
    }

    /// Records the last resourceVersion handed out.
    fn finish(&mut self) -> Result<()> {
        self.meta
            .insert(REVISION, self.revision)
            .map_err(db(self.path, "write meta"))?;
        Ok(())
    }

    fn apply(&mut self, op: Op) -> Result<Outcome> {
        match op {
            Op::Create(object) => self.create(object),
            Op::Update(object) => self.update(object, Merge::Update),
            Op::Apply(object) => {
                let key = object.key();
                if self.load(&key)?.is_some() {
                    self.update(object, Merge::Apply)
                } else {
                    let mut object = object;
                    object.metadata_mut().resource_version = None;
                    self.create(object)
                }
            }
            Op::UpdateStatus(object) => self.update(object, Merge::Status),
            Op::Delete { key, preconditions } => self.delete(
                &key,
                &DeleteOptions {
                    preconditions,
                    grace_period_seconds: None,
                },
            ),
            Op::DeleteWith { key, options } => self.delete(&key, &options),
        }
    }

    fn load(&self, key: &ObjectKey) -> Result<Option<Object>> {
        let raw = encode_key(key);
        let Some(bytes) = self
            .objects
            .get(raw.as_str())
            .map_err(db(self.path, "read an object"))?
        else {
            return Ok(None);
        };
        decode(self.path, &raw, bytes.value()).map(Some)
    }

    fn next_revision(&mut self) -> u64 {
        self.revision += 1;
        self.revision
    }

    fn create(&mut self, mut object: Object) -> Result<Outcome> {
        let info = object.info();
        {
            let meta = object.metadata_mut();
            meta.namespace = if info.namespaced {
                Some(
                    meta.namespace
                        .take()
                        .unwrap_or_else(|| berth_api::DEFAULT_NAMESPACE.to_owned()),
                )
            } else {
                None
            };
        }
        if object.name().is_empty() {
            let prefix = object.metadata().generate_name.clone().unwrap_or_default();
            if prefix.is_empty() {
                return Err(Error::Invalid {
                    key: object.key(),
                    field: "metadata.name",
                    value: String::new(),
                    expected: "a name, or a generateName prefix",
                });
            }
            // A clash is rare (27^5 suffixes); pick again as Kubernetes clients do on conflict.
            for _ in 0..16 {
                object.metadata_mut().name = Some(format!("{prefix}{}", random_suffix()));
                if self.load(&object.key())?.is_none() {
                    break;
                }
            }
        }
        let key = object.key();
        if let Some(rv) = resource_version_of(&object) {
            return Err(Error::Invalid {
                key,
                field: "metadata.resourceVersion",
                value: rv.to_owned(),
                expected: "no resourceVersion: it must not be set on create",
            });
        }
        if let Some(namespace) = &key.namespace {
            self.check_namespace(&key, namespace)?;
        }
        if self.load(&key)?.is_some() {
            return Err(Error::AlreadyExists { key });
        }
        let rv = self.next_revision();
        let meta = object.metadata_mut();
        meta.uid = Some(uuid::Uuid::new_v4().to_string());
        meta.creation_timestamp = Some(self.now);
        meta.generation = Some(1);
        meta.resource_version = Some(rv.to_string());
        meta.deletion_timestamp = None;
        meta.deletion_grace_period_seconds = None;
        self.put(&key, &object, &[])?;
        self.record(EventType::Added, &object, rv)?;
        Ok(Outcome::Created(object))
    }

    fn check_namespace(&self, key: &ObjectKey, namespace: &str) -> Result<()> {
        let namespace_key = ObjectKey {
            kind: "Namespace",
            namespace: None,
            name: namespace.to_owned(),
        };
        match self.load(&namespace_key)? {
            None => Err(Error::NamespaceNotFound {
                key: key.clone(),
                namespace: namespace.to_owned(),
            }),
            Some(ns) if ns.metadata().deletion_timestamp.is_some() => {
                Err(Error::NamespaceTerminating {
                    key: key.clone(),
                    namespace: namespace.to_owned(),
                })
            }
            Some(_) => Ok(()),
        }
    }

    fn update(&mut self, incoming: Object, merge: Merge) -> Result<Outcome> {
        let key = incoming.key();
        let existing = self
            .load(&key)?
            .ok_or_else(|| Error::NotFound { key: key.clone() })?;
        let actual = existing
            .metadata()
            .resource_version
            .clone()
            .unwrap_or_default();
        match resource_version_of(&incoming) {
            Some(given) if given != actual => {
                parse_resource_version(&key, given)?;
                return Err(Error::Conflict {
                    key,
                    expected: given.to_owned(),
                    actual,
                });
            }
            Some(_) => {}
            None if merge == Merge::Update => {
                return Err(Error::Invalid {
                    key,
                    field: "metadata.resourceVersion",
                    value: String::new(),
                    expected: "the resourceVersion of the object read: it must be specified for an update",
                });
            }
            None => {}
        }
        let kind = existing.kind();
        let old_value = codec::to_value(&existing)?;
        let new_value = match merge {
            Merge::Status => {
                if !codec::has_status(kind) {
                    return Err(Error::NoStatus { kind });
                }
                codec::with_status_of(old_value.clone(), &codec::to_value(&incoming)?)
            }
            Merge::Update | Merge::Apply => {
                let mut value = codec::to_value(&incoming)?;
                codec::keep_allocated(kind, &mut value, &old_value);
                if codec::has_status(kind) {
                    codec::with_status_of(value, &old_value)
                } else {
                    value
                }
            }
        };
        let spec_changed = codec::desired_state(&new_value) != codec::desired_state(&old_value);
        let mut updated = codec::from_value(existing.info(), &key, new_value)?;
        {
            let old = existing.metadata();
            let meta = updated.metadata_mut();
            meta.namespace.clone_from(&key.namespace);
            meta.uid.clone_from(&old.uid);
            meta.creation_timestamp = old.creation_timestamp;
            meta.deletion_timestamp = old.deletion_timestamp;
            meta.deletion_grace_period_seconds = old.deletion_grace_period_seconds;
            meta.resource_version.clone_from(&old.resource_version);
            meta.generation = Some(old.generation.unwrap_or(1) + i64::from(spec_changed));
        }
        if updated == existing {
            return Ok(Outcome::Unchanged(existing));
        }
        // A pod still within its grace period stays until the agent deletes it with grace 0.
        if updated.metadata().deletion_timestamp.is_some()
            && updated.metadata().finalizers.is_empty()
            && updated
                .metadata()
                .deletion_grace_period_seconds
                .unwrap_or(0)
                == 0
        {
            return self.remove(&key, updated, &existing);
        }
        let rv = self.next_revision();
        updated.metadata_mut().resource_version = Some(rv.to_string());
        self.put(&key, &updated, &owner_uids(existing.metadata()))?;
        self.record(EventType::Modified, &updated, rv)?;
        Ok(Outcome::Updated(updated))
    }

    fn delete(&mut self, key: &ObjectKey, options: &DeleteOptions) -> Result<Outcome> {
        let preconditions = &options.preconditions;
        let existing = self
            .load(key)?
            .ok_or_else(|| Error::NotFound { key: key.clone() })?;
        if key.kind == "Namespace" && key.name == berth_api::DEFAULT_NAMESPACE {
            return Err(Error::Forbidden {
                key: key.clone(),
                reason: "the default namespace cannot be deleted",
            });
        }
        let meta = existing.metadata();
        if let Some(uid) = &preconditions.uid
            && meta.uid.as_ref() != Some(uid)
        {
            return Err(Error::UidPrecondition {
                key: key.clone(),
                expected: uid.clone(),
                actual: meta.uid.clone().unwrap_or_default(),
            });
        }
        if let Some(rv) = &preconditions.resource_version
            && meta.resource_version.as_ref() != Some(rv)
        {
            return Err(Error::Conflict {
                key: key.clone(),
                expected: rv.clone(),
                actual: meta.resource_version.clone().unwrap_or_default(),
            });
        }
        if let Some(grace) = options.grace_period_seconds
            && grace < 0
        {
            return Err(Error::Invalid {
                key: key.clone(),
                field: "gracePeriodSeconds",
                value: grace.to_string(),
                expected: "a number of seconds, 0 or more",
            });
        }
        if let Some(grace) = graceful_period(&existing, options.grace_period_seconds) {
            return self.terminate_gracefully(key, existing, grace);
        }
        if meta.finalizers.is_empty() {
            let last = existing.clone();
            return self.remove(key, last, &existing);
        }
        if meta.deletion_timestamp.is_some() {
            if meta.deletion_grace_period_seconds.unwrap_or(0) == 0 {
                return Ok(Outcome::Terminating(existing));
            }
            // Cut a grace period short: the object goes once its finalizers are removed.
            let mut terminating = existing.clone();
            let rv = self.next_revision();
            let meta = terminating.metadata_mut();
            meta.deletion_grace_period_seconds = Some(0);
            meta.resource_version = Some(rv.to_string());
            self.put(key, &terminating, &owner_uids(existing.metadata()))?;
            self.record(EventType::Modified, &terminating, rv)?;
            return Ok(Outcome::Terminating(terminating));
        }
        let mut terminating = existing.clone();
        let rv = self.next_revision();
        let meta = terminating.metadata_mut();
        meta.deletion_timestamp = Some(self.now);
        meta.deletion_grace_period_seconds = Some(0);
        // Kubernetes bumps the generation when deletion starts: controllers see a new desire.
        meta.generation = Some(meta.generation.unwrap_or(1) + 1);
        meta.resource_version = Some(rv.to_string());
        self.put(key, &terminating, &owner_uids(existing.metadata()))?;
        self.record(EventType::Modified, &terminating, rv)?;
        Ok(Outcome::Terminating(terminating))
    }

    /// Marks a started pod for deletion `grace` seconds from now (see [`DeleteOptions`]); a
    /// deadline already earlier stays.
    fn terminate_gracefully(
        &mut self,
        key: &ObjectKey,
        existing: Object,
        grace: i64,
    ) -> Result<Outcome> {
        let deadline = Time(
            self.now
                .0
                .checked_add(jiff::SignedDuration::from_secs(grace))
                .unwrap_or(jiff::Timestamp::MAX),
        );
        let old = existing.metadata();
        if old
            .deletion_timestamp
            .is_some_and(|current| current <= deadline)
        {
            return Ok(Outcome::Terminating(existing));
        }
        let first = old.deletion_timestamp.is_none();
        let mut terminating = existing.clone();
        let rv = self.next_revision();
        let meta = terminating.metadata_mut();
        meta.deletion_timestamp = Some(deadline);
        meta.deletion_grace_period_seconds = Some(grace);
        if first {
            meta.generation = Some(meta.generation.unwrap_or(1) + 1);
        }
        meta.resource_version = Some(rv.to_string());
        self.put(key, &terminating, &owner_uids(existing.metadata()))?;
        self.record(EventType::Modified, &terminating, rv)?;
        Ok(Outcome::Terminating(terminating))
    }

    /// Removes the object at `key`; `last` is the state reported in the DELETED event.
    fn remove(&mut self, key: &ObjectKey, mut last: Object, existing: &Object) -> Result<Outcome> {
        let raw = encode_key(key);
        self.objects
            .remove(raw.as_str())
            .map_err(db(self.path, "delete an object"))?;
        for owner in owner_uids(existing.metadata()) {
            self.dependents
                .remove(owner, raw.as_str())
                .map_err(db(self.path, "write dependents"))?;
        }
        let rv = self.next_revision();
        last.metadata_mut().resource_version = Some(rv.to_string());
        self.record(EventType::Deleted, &last, rv)?;
        Ok(Outcome::Deleted(last))
    }

    /// Writes `object` at `key` and moves its dependents-index entries from `old_owners`.
    fn put(&mut self, key: &ObjectKey, object: &Object, old_owners: &[&str]) -> Result<()> {
        let raw = encode_key(key);
        let bytes = codec::encode_object(object)?;
        self.objects
            .insert(raw.as_str(), bytes.as_slice())
            .map_err(db(self.path, "write an object"))?;
        let new_owners = owner_uids(object.metadata());
        for owner in old_owners.iter().filter(|o| !new_owners.contains(o)) {
            self.dependents
                .remove(*owner, raw.as_str())
                .map_err(db(self.path, "write dependents"))?;
        }
        for owner in new_owners {
            self.dependents
                .insert(owner, raw.as_str())
                .map_err(db(self.path, "write dependents"))?;
        }
        Ok(())
    }

    fn record(&mut self, event_type: EventType, object: &Object, rv: u64) -> Result<()> {
        let bytes =
            serde_json::to_vec(&ChangeRecordRef { event_type, object }).map_err(|source| {
                Error::Encode {
                    key: object.key(),
                    source,
                }
            })?;
        self.changes
            .insert(rv, bytes.as_slice())
            .map_err(db(self.path, "write the change log"))?;
        self.events.push(WatchEvent {
            event_type,
            object: object.clone(),
            resource_version: rv,
        });
        Ok(())
    }
}

/// The grace period a delete gives `object`: `Some` (more than 0 seconds) for a pod the agent
/// has started and not finished, `None` when it goes at once.
fn graceful_period(object: &Object, requested: Option<i64>) -> Option<i64> {
    use berth_api::core_v1::PodPhase;
    let Object::Pod(pod) = object else {
        return None;
    };
    let started = pod
        .status
        .as_ref()
        .and_then(|status| status.phase)
        .is_some_and(|phase| !matches!(phase, PodPhase::Succeeded | PodPhase::Failed));
    if !started {
        return None;
    }
    let grace = requested
        .or(pod.spec.termination_grace_period_seconds)
        .unwrap_or(DEFAULT_GRACE_PERIOD_SECONDS);
    (grace > 0).then_some(grace)
}

/// The current time at the precision objects are stored with (seconds, as Kubernetes), so that
/// what a write returns equals what a later read gives.
fn now_in_seconds() -> Time {
    let now = jiff::Timestamp::now();
    Time(jiff::Timestamp::from_second(now.as_second()).unwrap_or(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_map(name: &str, data: &str) -> Object {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"},
            "data": {"k": data},
        }))
        .unwrap()
    }

    #[test]
    fn concurrent_single_writes_commit_together_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let core = Arc::new(Core::open(&path, Options::default()).unwrap());
        let mut feed = core.lock_writer().feed.subscribe();
        let first = core
            .write_one(Op::Create(config_map("shared", "0")))
            .unwrap();
        let stale = first.into_object();

        let threads: Vec<_> = (0..32)
            .map(|i| {
                let core = Arc::clone(&core);
                let stale = stale.clone();
                std::thread::spawn(move || {
                    if i % 4 == 0 {
                        // All carry the same resourceVersion: one update wins, the rest conflict.
                        let mut update = stale;
                        if let Object::ConfigMap(cm) = &mut update {
                            cm.data = [("k".to_string(), format!("v{i}"))].into();
                        }
                        core.write_one(Op::Update(update))
                    } else {
                        core.write_one(Op::Create(config_map(&format!("cm-{i}"), "x")))
                    }
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();

        let created = results
            .iter()
            .filter(|r| matches!(r, Ok(Outcome::Created(_))));
        assert_eq!(created.count(), 24);
        let updated = results
            .iter()
            .filter(|r| matches!(r, Ok(Outcome::Updated(_))));
        assert_eq!(updated.count(), 1, "{results:?}");
        let conflicts = results
            .iter()
            .filter(|r| matches!(r, Err(Error::Conflict { .. })));
        assert_eq!(conflicts.count(), 7);

        // Every success has its own resourceVersion, and the feed carries them in order.
        let mut versions: Vec<u64> = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|o| {
                o.clone()
                    .into_object()
                    .metadata()
                    .resource_version
                    .clone()
                    .unwrap()
            })
            .map(|rv| rv.parse().unwrap())
            .collect();
        versions.sort_unstable();
        versions.dedup();
        assert_eq!(versions.len(), 25);
        let mut seen = Vec::new();
        while let Ok(event) = feed.try_recv() {
            seen.push(event.object.metadata().resource_version.clone().unwrap());
        }
        let seen: Vec<u64> = seen.iter().map(|rv| rv.parse().unwrap()).collect();
        assert_eq!(seen.len(), 26, "the first create and the 25 writes");
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        assert_eq!(core.revision(), *seen.last().unwrap());
        for i in (0..32).filter(|i| i % 4 != 0) {
            let key = ObjectKey {
                kind: "ConfigMap",
                namespace: Some("default".into()),
                name: format!("cm-{i}"),
            };
            core.get(&key).unwrap();
        }
    }

    #[test]
    fn a_corrupt_record_is_reported_with_its_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let core = Core::open(&path, Options::default()).unwrap();
        let txn = core.begin_write().unwrap();
        txn.open_table(OBJECTS)
            .unwrap()
            .insert("ConfigMap\0default\0bad", b"{not json".as_slice())
            .unwrap();
        txn.commit().unwrap();

        let key = ObjectKey {
            kind: "ConfigMap",
            namespace: Some("default".into()),
            name: "bad".into(),
        };
        let err = core.get(&key).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "store {}: stored record \"ConfigMap/default/bad\" is corrupt",
                path.display()
            )
        );
        assert_eq!(err.status_code(), 500);
        assert!(std::error::Error::source(&err).is_some());
        let listed = core.list_as::<Object>("ConfigMap", None, None, |o| &o.metadata().labels);
        assert!(matches!(listed, Err(Error::Corrupt { .. })));
    }
}
