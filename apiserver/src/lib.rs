//! berth's HTTP API (warp 0.4): Kubernetes' REST paths over the store, watch streams,
//! server-side apply of multi-document manifests, pod logs and exec, health and metrics.
//!
//! # The contract (what the CLI and any HTTP client rely on)
//! JSON in and out (`application/json`); errors are a Kubernetes `Status` object
//! (`{"kind":"Status","apiVersion":"v1","status":"Failure","message","reason","code","details":{"name","kind","causes":[{"field","message","reason"}]}}`)
//! with the HTTP code of the store error (404 NotFound, 409 Conflict/AlreadyExists,
//! 410 Gone/Expired, 422 Invalid with one cause per field path, 400 BadRequest, 401
//! Unauthorized, 413 RequestEntityTooLarge, 415, 500).
//!
//! Resource paths, for every kind berth knows (core `v1`: namespaces, pods, services,
//! configmaps, secrets, endpoints, events; `apps/v1`: deployments, replicasets;
//! `autoscaling/v2`: horizontalpodautoscalers):
//! - `GET    /api/v1/namespaces/{ns}/{plural}` list (`labelSelector`, `fieldSelector` on
//!   `metadata.name`, `metadata.namespace`, `involvedObject.{kind,name,namespace,uid}` for
//!   events, `status.phase` for pods), `GET /api/v1/{plural}` lists across namespaces. A list is
//!   `{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion"},"items":[...]}`.
//! - `?watch=true[&resourceVersion=N]` on a list path streams newline-delimited JSON watch events
//!   `{"type":"ADDED|MODIFIED|DELETED|ERROR","object":{...}}` (chunked, one per line) until the
//!   client goes; without `resourceVersion` it starts with ADDED events of the current state.
//! - `POST` on a list path creates; `GET|PUT|DELETE` on `.../{plural}/{name}`; `PATCH` with
//!   `application/merge-patch+json` (RFC 7386); `PUT .../{name}/status`;
//!   `GET|PUT|PATCH .../deployments|replicasets/{name}/scale` (an `autoscaling/v1` `Scale`).
//!   Cluster-scoped namespaces: `/api/v1/namespaces[/{name}]`. `apps/v1` kinds live under
//!   `/apis/apps/v1/...`, HPAs under `/apis/autoscaling/v2/...`.
//! - `DELETE` takes `?gracePeriodSeconds=N` (pods) and `?propagationPolicy=` (`Background`, the
//!   default; the garbage collector cascades).
//! - `?dryRun=All` on writes validates and answers without storing.
//!
//! berth's own endpoints:
//! - `POST /apis/berth.dev/v1/apply[?dryRun=All][&prune=true]`: server-side apply of an
//!   [`apply::ApplyRequest`] (JSON). Every file is parsed and validated
//!   ([`berth_api::parse::parse_and_validate`]) before anything is written; the whole request is
//!   one store batch, so it is applied entirely or not at all. Answers an
//!   [`apply::ApplyResponse`].
//! - `POST /apis/apps/v1/namespaces/{ns}/deployments/{name}/rollback` with
//!   `{"toRevision": N}` (0 = previous): `berth rollout undo`.
//! - `GET /api/v1/namespaces/{ns}/pods/{name}/log?container=&follow=&previous=&tailLines=&timestamps=`:
//!   `text/plain`, streamed while `follow=true`.
//! - `POST /api/v1/namespaces/{ns}/pods/{name}/exec?container=` with
//!   `{"command":[...],"timeoutSeconds":N}`: answers `{"exitCode","stdout","stderr"}`.
//! - `GET /healthz`, `GET /readyz` (`ok`), `GET /metrics` (Prometheus text format), `GET /version`.
//!
//! Authentication: the unix socket (mode 0600) needs none; the TCP listener needs
//! `Authorization: Bearer <token>` on everything except `/healthz`, `/readyz` and `/metrics`.
//! Request bodies are limited ([`BODY_LIMIT`]).

pub mod apply;
mod node;

pub use node::{ExecOutput, LogOptions, Node, NodeError};

/// Largest request body accepted (413 beyond it).
pub const BODY_LIMIT: u64 = 8 << 20;
