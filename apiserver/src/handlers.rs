//! The handlers: one per (target, method). Objects are handled in their JSON form at the edges
//! (merge patches, field selectors, scale) and as typed [`Object`]s for defaulting, validation
//! and the store.

use std::time::Duration;

use berth_api::{ApplyDefaults, KindInfo, Object, ObjectKey, core_v1::Pod};
use berth_store::{Outcome, Preconditions};
use http::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{
    apply::{self, ApplyRequest},
    error::ApiError,
    route::{self, Sub, Target},
    selector::{self, FieldSelector, Selectors},
    server::{self, ApiState, Request, Response, json_response, text_response},
    watch,
};

/// The `Content-Type` of RFC 7386 merge patches.
pub const MERGE_PATCH: &str = "application/merge-patch+json";

/// How long an exec may run when the request names no `timeoutSeconds`.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(300);

pub(crate) async fn dispatch(
    state: &ApiState,
    target: Target,
    request: Request,
) -> Result<Response, ApiError> {
    let method = request.method.clone();
    match (target, &method) {
        (Target::Healthz, &Method::GET) => Ok(text_response(200, "ok")),
        (Target::Readyz, &Method::GET) if state.is_ready() => Ok(text_response(200, "ok")),
        (Target::Readyz, &Method::GET) => Ok(text_response(503, "not ready")),
        (Target::Version, &Method::GET) => Ok(json_response(200, &version())),
        (Target::Metrics, &Method::GET) => metrics(state),
        (Target::Apply, &Method::POST) => {
            let apply_request: ApplyRequest = decode(&request.body, "ApplyRequest")?;
            let response = apply::apply(
                state.store(),
                apply_request,
                request.dry_run()?,
                request.flag("prune")?,
            )
            .await?;
            Ok(json_response(200, &response))
        }
        (Target::Collection { kind, namespace }, &Method::GET) => {
            if request.flag("watch")? {
                watch::watch(state, kind, namespace, &request).await
            } else {
                list(state, kind, namespace, &request).await
            }
        }
        (Target::Collection { kind, namespace }, &Method::POST) => {
            create(state, kind, namespace, &request).await
        }
        (
            Target::Item {
                kind,
                namespace,
                name,
            },
            m,
        ) => {
            let key = key(kind, namespace, name);
            match *m {
                Method::GET => Ok(json_response(200, &state.store().get(&key).await?)),
                Method::PUT => replace(state, kind, key, &request, Write::Spec).await,
                Method::PATCH => patch(state, kind, key, &request, Write::Spec).await,
                Method::DELETE => delete(state, key, &request).await,
                _ => Err(method_not_allowed(&method, &request.path)),
            }
        }
        (
            Target::Subresource {
                kind,
                namespace,
                name,
                sub,
            },
            m,
        ) => {
            let key = key(kind, namespace, name);
            match (sub, m.clone()) {
                (Sub::Status, Method::GET) => {
                    Ok(json_response(200, &state.store().get(&key).await?))
                }
                (Sub::Status, Method::PUT) => {
                    replace(state, kind, key, &request, Write::Status).await
                }
                (Sub::Status, Method::PATCH) => {
                    patch(state, kind, key, &request, Write::Status).await
                }
                (Sub::Scale, Method::GET) => {
                    let object = state.store().get(&key).await?;
                    Ok(json_response(200, &scale_of(&object)?))
                }
                (Sub::Scale, Method::PUT | Method::PATCH) => {
                    write_scale(state, kind, key, &request).await
                }
                (Sub::Rollback, Method::POST) => rollback(state, key, &request).await,
                (Sub::Log, Method::GET) => logs(state, key, &request).await,
                (Sub::Exec, Method::POST) => exec(state, key, &request).await,
                _ => Err(method_not_allowed(&method, &request.path)),
            }
        }
        _ => Err(method_not_allowed(&method, &request.path)),
    }
}

fn method_not_allowed(method: &Method, path: &str) -> ApiError {
    ApiError::new(
        405,
        "MethodNotAllowed",
        format!("the server does not allow method {method} on {path}"),
    )
}

fn key(kind: &'static KindInfo, namespace: Option<String>, name: String) -> ObjectKey {
    ObjectKey {
        kind: kind.kind,
        namespace,
        name,
    }
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": "0",
        "gitVersion": concat!("v", env!("CARGO_PKG_VERSION")),
        "berthVersion": env!("CARGO_PKG_VERSION"),
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

fn metrics(state: &ApiState) -> Result<Response, ApiError> {
    use prometheus::Encoder;
    let encoder = prometheus::TextEncoder::new();
    let mut buffer = Vec::new();
    encoder
        .encode(&state.registry().gather(), &mut buffer)
        .map_err(|err| ApiError::internal(format!("cannot encode the metrics: {err}")))?;
    let mut response = Response::new(buffer.into());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// Parses a JSON body; a syntax error is a 400 naming the line and column.
pub(crate) fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "the request body is empty: expected a JSON object",
        ));
    }
    serde_json::from_slice(body).map_err(|err| {
        ApiError::bad_request(format!(
            "the request body is not valid JSON: {err} (line {}, column {})",
            err.line(),
            err.column()
        ))
    })
}

/// Decodes a JSON body into `T`, naming the field that does not fit.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<T, ApiError> {
    let value = parse_json(body)?;
    serde_path_to_error::deserialize(value).map_err(|err| {
        let field = err.path().to_string();
        ApiError::bad_request(format!("{what}: {field}: {}", err.inner())).with_causes(vec![
            crate::error::StatusCause {
                reason: "FieldValueInvalid".into(),
                message: err.inner().to_string(),
                field,
            },
        ])
    })
}

/// Turns the JSON form of an object into a defaulted, validated [`Object`] of `kind` at the
/// path's namespace and name: what every write does before the store.
pub(crate) fn prepare(
    kind: &'static KindInfo,
    namespace: Option<&str>,
    name: Option<&str>,
    mut value: Value,
) -> Result<Object, ApiError> {
    let Some(fields) = value.as_object_mut() else {
        return Err(ApiError::bad_request(format!(
            "expected a {} object, found {}",
            kind.kind,
            json_type(&value)
        )));
    };
    for (field, expected) in [("apiVersion", kind.api_version), ("kind", kind.kind)] {
        match fields.get(field) {
            None | Some(Value::Null) => {
                fields.insert(field.into(), Value::String(expected.into()));
            }
            Some(Value::String(given)) if given == expected => {}
            Some(given) => {
                return Err(ApiError::bad_request(format!(
                    "{field}: the body is {given}, but this path takes {expected:?} ({} {})",
                    kind.api_version, kind.kind
                )));
            }
        }
    }
    let metadata = fields
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(metadata) = metadata.as_object_mut() else {
        return Err(ApiError::bad_request("metadata: expected an object"));
    };
    if !kind.namespaced {
        // As Kubernetes: a namespace on a cluster-scoped object means nothing.
        metadata.remove("namespace");
    } else {
        match (metadata.get("namespace").and_then(Value::as_str), namespace) {
            (Some(body), Some(path)) if !body.is_empty() && body != path => {
                return Err(ApiError::bad_request(format!(
                    "the namespace of the object ({body:?}) does not match the namespace of the path ({path:?})"
                )));
            }
            (_, Some(path)) => {
                metadata.insert("namespace".into(), Value::String(path.into()));
            }
            (_, None) => {}
        }
    }
    if let Some(path_name) = name {
        match metadata.get("name").and_then(Value::as_str) {
            Some(body) if body != path_name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body:?}) does not match the name of the path ({path_name:?})"
                )));
            }
            Some(_) => {}
            None => {
                metadata.insert("name".into(), Value::String(path_name.into()));
            }
        }
    }
    let display_name = metadata
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut track = serde_path_to_error::Track::new();
    let mut object = Object::deserialize_as(
        kind,
        serde_path_to_error::Deserializer::new(value, &mut track),
    )
    .map_err(|err| {
        let field = track.path().to_string();
        ApiError::bad_request(format!("{} {display_name:?}: {field}: {err}", kind.kind))
            .about(kind.kind, &display_name)
            .with_causes(vec![crate::error::StatusCause {
                reason: "FieldValueInvalid".into(),
                message: err.to_string(),
                field,
            }])
    })?;
    object.apply_defaults();
    let errors = berth_api::validation::validate(&object);
    if !errors.is_empty() {
        return Err(ApiError::invalid(kind.kind, object.name(), &errors));
    }
    Ok(object)
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn to_value(object: &Object) -> Result<Value, ApiError> {
    serde_json::to_value(object)
        .map_err(|err| ApiError::internal(format!("cannot encode {}: {err}", object.key())))
}

fn selectors(kind: &KindInfo, request: &Request) -> Result<Selectors, ApiError> {
    Ok(Selectors {
        labels: request
            .query("labelSelector")
            .filter(|s| !s.trim().is_empty())
            .map(selector::parse_label_selector)
            .transpose()?,
        fields: FieldSelector::parse(kind, request.query("fieldSelector").unwrap_or_default())?,
    })
}

pub(crate) fn list_selectors(kind: &KindInfo, request: &Request) -> Result<Selectors, ApiError> {
    selectors(kind, request)
}

async fn list(
    state: &ApiState,
    kind: &'static KindInfo,
    namespace: Option<String>,
    request: &Request,
) -> Result<Response, ApiError> {
    let selectors = selectors(kind, request)?;
    let list = state
        .store()
        .list(kind.kind, namespace.as_deref(), selectors.labels.as_ref())
        .await?;
    let mut items = Vec::with_capacity(list.items.len());
    for object in &list.items {
        let value = to_value(object)?;
        if selectors.fields.is_empty() || selectors.fields.matches(&value) {
            items.push(value);
        }
    }
    Ok(json_response(
        200,
        &json!({
            "kind": route::list_kind(kind),
            "apiVersion": kind.api_version,
            "metadata": {"resourceVersion": list.resource_version.to_string()},
            "items": items,
        }),
    ))
}

async fn create(
    state: &ApiState,
    kind: &'static KindInfo,
    namespace: Option<String>,
    request: &Request,
) -> Result<Response, ApiError> {
    if kind.namespaced && namespace.is_none() {
        return Err(ApiError::bad_request(format!(
            "{} are created under {}/namespaces/{{namespace}}/{}",
            kind.plural,
            route::prefix(kind),
            kind.plural
        )));
    }
    let object = prepare(kind, namespace.as_deref(), None, parse_json(&request.body)?)?;
    if request.dry_run()? {
        if object.metadata().resource_version.is_some() {
            return Err(ApiError::new(
                422,
                "Invalid",
                format!(
                    "{}: metadata.resourceVersion must not be set on create",
                    object.key()
                ),
            ));
        }
        return Ok(json_response(201, &object));
    }
    let created = state.store().create(object).await?;
    Ok(json_response(201, &created))
}

/// Which part of an object a PUT or PATCH writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    Spec,
    Status,
}

async fn replace(
    state: &ApiState,
    kind: &'static KindInfo,
    key: ObjectKey,
    request: &Request,
    write: Write,
) -> Result<Response, ApiError> {
    let mut object = prepare(
        kind,
        key.namespace.as_deref(),
        Some(&key.name),
        parse_json(&request.body)?,
    )?;
    let dry_run = request.dry_run()?;
    if object.metadata().resource_version.is_none() || dry_run {
        let current = state.store().get(&key).await?;
        let stored = current.metadata().resource_version.clone();
        match object.metadata().resource_version.clone() {
            // An unconditional PUT: the version read now is the precondition.
            None => object.metadata_mut().resource_version = stored,
            Some(given) if Some(&given) != stored.as_ref() => {
                return Err(berth_store::Error::Conflict {
                    key,
                    expected: given,
                    actual: stored.unwrap_or_default(),
                }
                .into());
            }
            Some(_) => {}
        }
    }
    if dry_run {
        return Ok(json_response(200, &object));
    }
    let written = match write {
        Write::Spec => state.store().update(object).await?,
        Write::Status => state.store().update_status(object).await?,
    };
    Ok(json_response(200, &written))
}

/// RFC 7386: objects merge recursively, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target_fields) = target {
        for (name, value) in patch_fields {
            if value.is_null() {
                target_fields.remove(name);
            } else {
                merge_patch(
                    target_fields.entry(name.clone()).or_insert(Value::Null),
                    value,
                );
            }
        }
    }
}

fn check_merge_patch(request: &Request) -> Result<Value, ApiError> {
    let content_type = request.content_type();
    if content_type != MERGE_PATCH {
        return Err(ApiError::unsupported_media_type(format!(
            "PATCH content type {content_type:?} is not supported: use {MERGE_PATCH:?} (RFC 7386)"
        )));
    }
    let patch = parse_json(&request.body)?;
    if !patch.is_object() {
        return Err(ApiError::bad_request(format!(
            "a merge patch must be a JSON object, found {}",
            json_type(&patch)
        )));
    }
    Ok(patch)
}

/// The resourceVersion a patch carries: a precondition.
fn patch_precondition(key: &ObjectKey, patch: &Value, current: &Object) -> Result<(), ApiError> {
    let wanted = patch
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str);
    let stored = current
        .metadata()
        .resource_version
        .as_deref()
        .unwrap_or_default();
    match wanted {
        Some(wanted) if wanted != stored => Err(berth_store::Error::Conflict {
            key: key.clone(),
            expected: wanted.to_owned(),
            actual: stored.to_owned(),
        }
        .into()),
        _ => Ok(()),
    }
}

fn patched(
    kind: &'static KindInfo,
    key: &ObjectKey,
    patch: &Value,
    current: &Object,
) -> Result<Object, ApiError> {
    patch_precondition(key, patch, current)?;
    let mut value = to_value(current)?;
    merge_patch(&mut value, patch);
    prepare(kind, key.namespace.as_deref(), Some(&key.name), value)
}

async fn patch(
    state: &ApiState,
    kind: &'static KindInfo,
    key: ObjectKey,
    request: &Request,
    write: Write,
) -> Result<Response, ApiError> {
    let patch = check_merge_patch(request)?;
    if request.dry_run()? {
        let current = state.store().get(&key).await?;
        return Ok(json_response(200, &patched(kind, &key, &patch, &current)?));
    }
    let change = |current: Object| patched(kind, &key, &patch, &current).map(Some);
    let written = match write {
        Write::Spec => state.store().guaranteed_update(&key, change).await?,
        Write::Status => state.store().guaranteed_update_status(&key, change).await?,
    };
    Ok(json_response(200, &written))
}

/// The body `DELETE` may carry (`metav1.DeleteOptions`, the parts berth honours).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteOptions {
    #[serde(default)]
    grace_period_seconds: Option<i64>,
    #[serde(default)]
    propagation_policy: Option<String>,
    #[serde(default)]
    preconditions: Option<DeletePreconditions>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeletePreconditions {
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
}

async fn delete(state: &ApiState, key: ObjectKey, request: &Request) -> Result<Response, ApiError> {
    let options: DeleteOptions = if request.body.is_empty() {
        DeleteOptions::default()
    } else {
        decode(&request.body, "DeleteOptions")?
    };
    let grace = match request.query("gracePeriodSeconds") {
        Some(text) => Some(text.parse::<i64>().ok().filter(|g| *g >= 0).ok_or_else(|| {
            ApiError::bad_request(format!(
                "query parameter gracePeriodSeconds={text:?}: expected a whole number of seconds >= 0"
            ))
        })?),
        None => options.grace_period_seconds,
    };
    let policy = request
        .query("propagationPolicy")
        .map(str::to_owned)
        .or(options.propagation_policy);
    if let Some(policy) = policy.as_deref().filter(|p| *p != "Background") {
        return Err(ApiError::bad_request(format!(
            "propagationPolicy {policy:?} is not supported: berth deletes dependents in the background (Background)"
        )));
    }
    let preconditions = options
        .preconditions
        .map(|p| Preconditions {
            uid: p.uid,
            resource_version: p.resource_version,
        })
        .unwrap_or_default();
    if request.dry_run()? {
        return Ok(json_response(200, &state.store().get(&key).await?));
    }
    // A started pod terminates gracefully: it keeps a deletionTimestamp until the agent has
    // stopped its containers within the grace period (the store's graceful deletion).
    let options = berth_store::DeleteOptions {
        preconditions,
        grace_period_seconds: grace,
    };
    match state.store().delete_with(&key, options).await? {
        Outcome::Terminating(object) => Ok(json_response(202, &object)),
        outcome => Ok(json_response(200, outcome.object())),
    }
}

/// The `autoscaling/v1` `Scale` of a Deployment or ReplicaSet.
fn scale_of(object: &Object) -> Result<Value, ApiError> {
    let (replicas, status_replicas, selector) = match object {
        Object::Deployment(d) => (
            d.spec.replicas.unwrap_or(1),
            d.status.as_ref().map(|s| s.replicas).unwrap_or(0),
            d.spec.selector.as_ref(),
        ),
        Object::ReplicaSet(rs) => (
            rs.spec.replicas.unwrap_or(1),
            rs.status.as_ref().map(|s| s.replicas).unwrap_or(0),
            rs.spec.selector.as_ref(),
        ),
        other => {
            return Err(ApiError::not_found(format!(
                "{} has no scale subresource",
                other.key()
            )));
        }
    };
    let metadata = object.metadata();
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": metadata.name(),
            "namespace": metadata.namespace,
            "uid": metadata.uid,
            "resourceVersion": metadata.resource_version,
            "creationTimestamp": metadata.creation_timestamp,
        },
        "spec": {"replicas": replicas},
        "status": {
            "replicas": status_replicas,
            "selector": selector.map(selector::label_selector_string).unwrap_or_default(),
        },
    }))
}

fn replicas_of_scale(scale: &Value) -> Result<i32, ApiError> {
    let invalid = |detail: &str| {
        ApiError::new(422, "Invalid", format!("Scale: spec.replicas: {detail}")).with_causes(vec![
            crate::error::StatusCause {
                reason: "FieldValueInvalid".into(),
                message: detail.to_owned(),
                field: "spec.replicas".into(),
            },
        ])
    };
    let replicas = scale
        .pointer("/spec/replicas")
        .ok_or_else(|| invalid("Required value: the number of replicas wanted"))?;
    replicas
        .as_i64()
        .and_then(|n| i32::try_from(n).ok())
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            invalid(&format!(
                "Invalid value: {replicas}: must be a whole number >= 0"
            ))
        })
}

fn set_replicas(object: Object, replicas: i32) -> Object {
    match object {
        Object::Deployment(mut d) => {
            d.spec.replicas = Some(replicas);
            Object::Deployment(d)
        }
        Object::ReplicaSet(mut rs) => {
            rs.spec.replicas = Some(replicas);
            Object::ReplicaSet(rs)
        }
        other => other,
    }
}

async fn write_scale(
    state: &ApiState,
    kind: &'static KindInfo,
    key: ObjectKey,
    request: &Request,
) -> Result<Response, ApiError> {
    let body = if request.method == Method::PATCH {
        check_merge_patch(request)?
    } else {
        parse_json(&request.body)?
    };
    if let Some(name) = body.pointer("/metadata/name").and_then(Value::as_str)
        && name != key.name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the Scale ({name:?}) does not match the name of the path ({:?})",
            key.name
        )));
    }
    let is_patch = request.method == Method::PATCH;
    let scaled = |current: Object| -> Result<Object, ApiError> {
        patch_precondition(&key, &body, &current)?;
        let scale = if is_patch {
            let mut scale = scale_of(&current)?;
            merge_patch(&mut scale, &body);
            scale
        } else {
            body.clone()
        };
        let replicas = replicas_of_scale(&scale)?;
        // Validated as it will be written.
        let value = to_value(&set_replicas(current, replicas))?;
        prepare(kind, key.namespace.as_deref(), Some(&key.name), value)
    };
    if request.dry_run()? {
        let current = state.store().get(&key).await?;
        return Ok(json_response(200, &scale_of(&scaled(current)?)?));
    }
    let written = state
        .store()
        .guaranteed_update(&key, |current| scaled(current).map(Some))
        .await?;
    Ok(json_response(200, &scale_of(&written)?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RollbackRequest {
    #[serde(default)]
    to_revision: i64,
}

async fn rollback(
    state: &ApiState,
    key: ObjectKey,
    request: &Request,
) -> Result<Response, ApiError> {
    let body: RollbackRequest = if request.body.is_empty() {
        RollbackRequest::default()
    } else {
        decode(&request.body, "rollback request")?
    };
    if body.to_revision < 0 {
        return Err(ApiError::bad_request(format!(
            "toRevision: {} is invalid: expected a revision >= 0 (0 = the previous one)",
            body.to_revision
        )));
    }
    let namespace = key
        .namespace
        .as_deref()
        .unwrap_or(berth_api::DEFAULT_NAMESPACE);
    let deployment = berth_controller::deployment::rollback_in_store(
        state.store(),
        namespace,
        &key.name,
        Some(body.to_revision),
    )
    .await?;
    Ok(json_response(200, &deployment))
}

/// The container a log or exec request is about: the named one, or the pod's only one.
fn choose_container(pod: &Pod, named: Option<&str>) -> Result<String, ApiError> {
    let containers: Vec<&str> = pod
        .spec
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let init: Vec<&str> = pod
        .spec
        .init_containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let pod_name = pod.metadata.name();
    let choices = || {
        let mut text = format!("choose one of: [{}]", containers.join(" "));
        if !init.is_empty() {
            text.push_str(&format!(
                " or one of the init containers: [{}]",
                init.join(" ")
            ));
        }
        text
    };
    match named.filter(|n| !n.is_empty()) {
        Some(name) if containers.contains(&name) || init.contains(&name) => Ok(name.to_owned()),
        Some(name) => Err(ApiError::bad_request(format!(
            "container {name} is not valid for pod {pod_name}: {}",
            choices()
        ))),
        None => match containers.as_slice() {
            [only] => Ok((*only).to_owned()),
            _ => Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {pod_name}, {}",
                choices()
            ))),
        },
    }
}

async fn get_pod(state: &ApiState, key: &ObjectKey) -> Result<Pod, ApiError> {
    match state.store().get(key).await? {
        Object::Pod(pod) => Ok(pod),
        other => Err(ApiError::not_found(format!("{} is not a pod", other.key()))),
    }
}

async fn logs(state: &ApiState, key: ObjectKey, request: &Request) -> Result<Response, ApiError> {
    let tail_lines = request
        .query("tailLines")
        .map(|t| {
            t.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "query parameter tailLines={t:?}: expected a whole number >= 0"
                ))
            })
        })
        .transpose()?;
    let pod = get_pod(state, &key).await?;
    let container = choose_container(&pod, request.query("container"))?;
    let options = crate::LogOptions {
        container: Some(container.clone()),
        follow: request.flag("follow")?,
        previous: request.flag("previous")?,
        tail_lines,
        timestamps: request.flag("timestamps")?,
    };
    let mut stream = state.node().logs(&pod, &container, &options).await?;
    let (sender, receiver) = tokio::sync::mpsc::channel(16);
    let shutdown = state.shutting_down();
    tokio::spawn(async move {
        use futures_util::StreamExt;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                () = sender.closed() => break,
                chunk = stream.next() => match chunk {
                    Some(chunk) => {
                        if sender.send(chunk).await.is_err() {
                            break;
                        }
                    }
                    None => break,
                },
            }
        }
    });
    Ok(server::stream_response(
        "text/plain; charset=utf-8",
        receiver,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExecRequest {
    command: Vec<String>,
    #[serde(default)]
    timeout_seconds: Option<u64>,
}

async fn exec(state: &ApiState, key: ObjectKey, request: &Request) -> Result<Response, ApiError> {
    let body: ExecRequest = decode(&request.body, "exec request")?;
    if body.command.is_empty() {
        return Err(ApiError::bad_request(
            "command: Required value: the command to run, e.g. [\"sh\", \"-c\", \"...\"]",
        ));
    }
    let pod = get_pod(state, &key).await?;
    let container = choose_container(&pod, request.query("container"))?;
    let timeout = body
        .timeout_seconds
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_EXEC_TIMEOUT);
    let output = state
        .node()
        .exec(&pod, &container, body.command, timeout)
        .await?;
    Ok(json_response(200, &output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        // The examples of RFC 7386 section 3.
        let mut target = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut target, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(target, json!({"a": "z", "c": {"d": "e"}}));
        let mut target = json!({"a": ["b"]});
        merge_patch(&mut target, &json!({"a": "c"}));
        assert_eq!(target, json!({"a": "c"}));
        let mut target = json!({"a": "foo"});
        merge_patch(&mut target, &json!({"a": {"bb": {"ccc": null}}}));
        assert_eq!(target, json!({"a": {"bb": {}}}));
        let mut target = json!({"e": null});
        merge_patch(&mut target, &json!({"a": 1}));
        assert_eq!(target, json!({"e": null, "a": 1}));
    }

    #[test]
    fn the_container_is_the_only_one_or_a_valid_name() {
        let pod = berth_api::testing::pod("p").build();
        let only = pod.spec.containers[0].name.clone();
        assert_eq!(choose_container(&pod, None).unwrap(), only);
        let err = choose_container(&pod, Some("nope")).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message.contains(&format!("[{only}]")),
            "{}",
            err.message
        );
    }
}
