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

//!
//! # Refinements of the contract (added while implementing it)
//! - Errors of a request body: malformed JSON is a 400 naming line and column; a body that does
//!   not fit the kind (unknown field, wrong type) is a 400 with the field path as the cause; a
//!   valid shape that fails validation is a 422 with one cause per field path. `apiVersion` and
//!   `kind` may be left out of a body (the path names them); when given they must match the
//!   path (400), as must `metadata.namespace` and, on PUT/PATCH, `metadata.name`.
//! - `PUT` without `metadata.resourceVersion` is an unconditional update; with one, a stale
//!   version is a 409. A merge patch may carry `metadata.resourceVersion` as a precondition.
//!   `PATCH` takes `application/merge-patch+json` only (415 otherwise). `PATCH .../status`
//!   merge-patches the status.
//! - `POST` on a list path of a namespaced kind needs the namespaced path (400 on
//!   `/api/v1/pods`). A method a path does not take is a 405 `Status`.
//! - `DELETE` answers the object: 200 when it is gone, 202 while it terminates
//!   (`deletionTimestamp` set: finalizers remain, or a started pod is stopped gracefully within
//!   `gracePeriodSeconds`, else its `terminationGracePeriodSeconds`; `gracePeriodSeconds=0`
//!   removes it at once, as the agent does once its containers stopped). `propagationPolicy` other than `Background` is a 400. A body
//!   with `{"preconditions":{"uid","resourceVersion"}}` is honoured.
//! - Watch: `resourceVersion=0` or none starts with the current state; an unparsable one is a
//!   400. `fieldSelector=metadata.name=X` watches one object. With selectors, an object that
//!   starts matching is ADDED and one that stops matching is DELETED (as Kubernetes).
//!   `timeoutSeconds=N` ends the stream after N seconds. `limit`/`continue` are not supported:
//!   a list answers every object.
//! - Field selectors: `metadata.name`, `metadata.namespace` for every kind; pods also
//!   `status.phase`, `spec.nodeName`, `spec.restartPolicy`, `status.podIP`; events
//!   `involvedObject.{kind,name,namespace,uid,apiVersion,fieldPath}`, `reason`, `type`;
//!   secrets `type`; namespaces `status.phase`. Others are a 400 listing the supported ones.
//! - Scale: `status.selector` is the label selector in its string form (`app=web`). The PUT
//!   body is a `Scale`; its `metadata.resourceVersion`, when given, is a precondition.
//! - Rollback answers the Deployment as written; a revision that does not exist is a 404, no
//!   older revision is a 400. An empty body means `{"toRevision":0}`.
//! - Logs and exec: the container is the pod's only one, or the one named by `container=`
//!   (init containers may be named); otherwise a 400 listing the pod's containers. Exec
//!   without `timeoutSeconds` may run [`handlers::DEFAULT_EXEC_TIMEOUT`].
//! - Apply: answers 422 with one cause per problem of any file (message = `file: document N
//!   (line L): Kind "name": field: ...`, field = the field path), and nothing is written. With
//!   `?prune=true` but no `pruneScopes`, nothing is pruned. The objects are answered in the
//!   order applied, the pruned ones last. The library call is [`apply::apply`].
//! - `/version` answers `{"major","minor","gitVersion","berthVersion","platform"}`; `/readyz`
//!   answers `ok` (200) once [`ApiState::set_ready`] was called, `not ready` (503) before.
//! - Metrics: `berth_api_requests_total{route,method,code}` and
//!   `berth_api_request_duration_seconds{route,method}`, `route` being the path template
//!   (`/api/v1/namespaces/{namespace}/pods/{name}`) or `unknown`.
//!
//! # Library API
//! [`ApiState::builder`]`(store, node)` (`.token(..)`, `.registry(..)`, `.ready(..)`,
//! `.build()`), [`routes`] (the unix socket's filter), [`tcp_routes`] (with the bearer token),
//! [`serve_unix`], [`serve_tcp`], [`serve_tcp_listener`], [`apply::apply`].

pub mod apply;
mod error;
pub mod handlers;
mod node;
mod route;
mod selector;
mod server;
mod watch;

pub use error::{ApiError, Status, StatusCause, StatusDetails};
pub use node::{ExecOutput, LogOptions, Node, NodeError};
pub use server::{
    ApiState, ApiStateBuilder, Response, ServeError, routes, serve_tcp, serve_tcp_listener,
    serve_unix, tcp_routes,
};

/// Largest request body accepted (413 beyond it).
pub const BODY_LIMIT: u64 = 8 << 20;
