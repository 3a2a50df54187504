//! Store errors, each naming the object (kind, namespace, name) or the database file involved, and
//! mapped to the HTTP status the Kubernetes API server would answer with.

use std::path::PathBuf;

use berth_api::ObjectKey;

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 404: the object does not exist.
    #[error("{key} not found")]
    NotFound { key: ObjectKey },

    /// 409: create of an object that already exists.
    #[error("{key} already exists")]
    AlreadyExists { key: ObjectKey },

    /// 409: the caller's `resourceVersion` is stale (optimistic concurrency).
    #[error(
        "operation cannot be fulfilled on {key}: the object has been modified (resourceVersion {expected} was given, the stored one is {actual}); read the latest version and try again"
    )]
    Conflict {
        key: ObjectKey,
        expected: String,
        actual: String,
    },

    /// 409: a delete precondition on the uid does not hold (the object was recreated).
    #[error(
        "precondition failed for {key}: uid in precondition is {expected}, uid of the object is {actual}"
    )]
    UidPrecondition {
        key: ObjectKey,
        expected: String,
        actual: String,
    },

    /// 404: a namespaced object names a namespace that does not exist.
    #[error("cannot create {key}: namespace {namespace:?} not found")]
    NamespaceNotFound { key: ObjectKey, namespace: String },

    /// 403: objects cannot be created in a namespace that is being deleted.
    #[error("cannot create {key}: namespace {namespace:?} is being terminated")]
    NamespaceTerminating { key: ObjectKey, namespace: String },

    /// 403: the operation is never allowed on this object.
    #[error("{key}: {reason}")]
    Forbidden {
        key: ObjectKey,
        reason: &'static str,
    },

    /// 422: the request is malformed for the store (no name, a resourceVersion on create, ...).
    #[error("{key}: {field}: invalid value {value:?}: {expected}")]
    Invalid {
        key: ObjectKey,
        field: &'static str,
        value: String,
        expected: &'static str,
    },

    /// 404: `kind` is not one berth stores.
    #[error(
        "kind {kind:?} is not stored by berth; supported kinds: {}",
        berth_api::object::supported_kinds()
    )]
    UnknownKind { kind: String },

    /// 404: the kind has no `status` subresource.
    #[error("kind {kind} has no status subresource")]
    NoStatus { kind: &'static str },

    /// 410: the events after `resource_version` are no longer available; relist and watch again.
    #[error("too old resource version: {resource_version} ({cause})")]
    Gone {
        resource_version: u64,
        cause: GoneCause,
    },

    /// 500: the directory holding the database file could not be created.
    #[error("cannot create the store directory {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// 500: the database file could not be opened, read or written.
    #[error("store {path}: {operation}")]
    Database {
        path: PathBuf,
        operation: &'static str,
        #[source]
        source: Box<redb::Error>,
    },

    /// 500: a stored object or change could not be decoded.
    #[error("store {path}: stored record {record:?} is corrupt")]
    Corrupt {
        path: PathBuf,
        record: String,
        #[source]
        source: serde_json::Error,
    },

    /// 500: an object could not be encoded.
    #[error("cannot encode {key}")]
    Encode {
        key: ObjectKey,
        #[source]
        source: serde_json::Error,
    },

    /// 500: the blocking task running a store operation panicked or was cancelled.
    #[error("store operation {operation} did not complete")]
    Task {
        operation: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
}

/// Why a watch cannot resume from a resource version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoneCause {
    /// The change log has been compacted up to and including `compacted`.
    Compacted { compacted: u64 },
    /// The watcher fell behind the live feed and `missed` events were dropped for it.
    Lagged { missed: u64 },
}

impl std::fmt::Display for GoneCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Compacted { compacted } => {
                write!(f, "the change log starts after {compacted}")
            }
            Self::Lagged { missed } => {
                write!(f, "the watcher fell behind and missed {missed} events")
            }
        }
    }
}

impl Error {
    /// The database itself failed (not the request): reading, writing or encoding.
    pub fn is_storage(&self) -> bool {
        matches!(
            self,
            Self::Io { .. } | Self::Database { .. } | Self::Corrupt { .. } | Self::Encode { .. }
        )
    }

    /// The HTTP status code the Kubernetes API server answers for this error.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::NotFound { .. }
            | Self::NamespaceNotFound { .. }
            | Self::UnknownKind { .. }
            | Self::NoStatus { .. } => 404,
            Self::AlreadyExists { .. } | Self::Conflict { .. } | Self::UidPrecondition { .. } => {
                409
            }
            Self::NamespaceTerminating { .. } | Self::Forbidden { .. } => 403,
            Self::Invalid { .. } => 422,
            Self::Gone { .. } => 410,
            Self::Io { .. }
            | Self::Database { .. }
            | Self::Corrupt { .. }
            | Self::Encode { .. }
            | Self::Task { .. } => 500,
        }
    }

    /// The Kubernetes `Status.reason` for this error (`NotFound`, `Conflict`, `Expired`, ...).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotFound { .. }
            | Self::NamespaceNotFound { .. }
            | Self::UnknownKind { .. }
            | Self::NoStatus { .. } => "NotFound",
            Self::AlreadyExists { .. } => "AlreadyExists",
            Self::Conflict { .. } | Self::UidPrecondition { .. } => "Conflict",
            Self::NamespaceTerminating { .. } | Self::Forbidden { .. } => "Forbidden",
            Self::Invalid { .. } => "Invalid",
            Self::Gone { .. } => "Expired",
            Self::Io { .. }
            | Self::Database { .. }
            | Self::Corrupt { .. }
            | Self::Encode { .. }
            | Self::Task { .. } => "InternalError",
        }
    }

    /// Whether retrying with a fresh read may succeed (a stale `resourceVersion`).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
