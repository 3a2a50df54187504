//! How objects are laid out in the database: keys, JSON values, and the parts of an object the
//! store reasons about (desired state vs. `status`).

use berth_api::{KINDS, KindInfo, Object, ObjectKey};
use serde_json::Value;

use crate::error::{Error, Result};

/// Kinds with a `status` subresource: `update` keeps their stored status, `update_status` changes
/// nothing else.
const STATUS_KINDS: &[&str] = &[
    "Namespace",
    "Service",
    "Pod",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
];

pub(crate) fn has_status(kind: &str) -> bool {
    STATUS_KINDS.contains(&kind)
}

/// The kind berth stores under `kind` (exact name, `Deployment`).
pub(crate) fn kind_info(kind: &str) -> Result<&'static KindInfo> {
    KINDS
        .iter()
        .find(|k| k.kind == kind)
        .ok_or_else(|| Error::UnknownKind {
            kind: kind.to_owned(),
        })
}

/// `Kind\0namespace\0name`; the namespace is empty for cluster-scoped kinds. Names and namespaces
/// are DNS labels/subdomains, so `\0` never occurs in them and the key orders by kind, then
/// namespace, then name: a list is one range scan.
pub(crate) fn encode_key(key: &ObjectKey) -> String {
    format!(
        "{}\0{}\0{}",
        key.kind,
        key.namespace.as_deref().unwrap_or_default(),
        key.name
    )
}

/// The key range `[start, end)` holding every object of `kind`, or of `kind` in `namespace`.
pub(crate) fn prefix_range(kind: &str, namespace: Option<&str>) -> (String, String) {
    match namespace {
        Some(namespace) => (
            format!("{kind}\0{namespace}\0"),
            format!("{kind}\0{namespace}\u{1}"),
        ),
        None => (format!("{kind}\0"), format!("{kind}\u{1}")),
    }
}

pub(crate) fn encode_object(object: &Object) -> Result<Vec<u8>> {
    serde_json::to_vec(object).map_err(|source| Error::Encode {
        key: object.key(),
        source,
    })
}

pub(crate) fn to_value(object: &Object) -> Result<Value> {
    serde_json::to_value(object).map_err(|source| Error::Encode {
        key: object.key(),
        source,
    })
}

pub(crate) fn from_value(info: &KindInfo, key: &ObjectKey, value: Value) -> Result<Object> {
    Object::deserialize_as(info, value).map_err(|source| Error::Encode {
        key: key.clone(),
        source,
    })
}

/// The desired state: everything but `metadata` and `status`. A change to it bumps `generation`.
pub(crate) fn desired_state(value: &Value) -> Value {
    let mut value = value.clone();
    if let Some(map) = value.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    value
}

/// `target` with its `status` replaced by the one of `source` (removed if `source` has none).
pub(crate) fn with_status_of(mut target: Value, source: &Value) -> Value {
    if let Some(map) = target.as_object_mut() {
        match source.get("status") {
            Some(status) => map.insert("status".to_owned(), status.clone()),
            None => map.remove("status"),
        };
    }
    target
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_by_kind_namespace_name() {
        let pod = ObjectKey {
            kind: "Pod",
            namespace: Some("team".into()),
            name: "web-1".into(),
        };
        let namespace = ObjectKey {
            kind: "Namespace",
            namespace: None,
            name: "team".into(),
        };
        assert_eq!(encode_key(&pod), "Pod\0team\0web-1");
        assert_eq!(encode_key(&namespace), "Namespace\0\0team");
        let (start, end) = prefix_range("Pod", Some("team"));
        let encoded = encode_key(&pod);
        assert!(start.as_str() <= encoded.as_str() && encoded.as_str() < end.as_str());
        let other_namespace = encode_key(&ObjectKey {
            kind: "Pod",
            namespace: Some("team-b".into()),
            name: "a".into(),
        });
        assert!(other_namespace.as_str() >= end.as_str());
        let (start, end) = prefix_range("Pod", None);
        assert!(
            start.as_str() <= other_namespace.as_str() && other_namespace.as_str() < end.as_str()
        );
        assert!(
            encode_key(&ObjectKey {
                kind: "PodX",
                namespace: None,
                name: String::new()
            }) >= end
        );
    }

    #[test]
    fn desired_state_ignores_metadata_and_status() {
        let a = serde_json::json!({"kind": "Pod", "metadata": {"labels": {"a": "1"}}, "spec": {"x": 1}, "status": {"phase": "Running"}});
        let b = serde_json::json!({"kind": "Pod", "metadata": {}, "spec": {"x": 1}});
        assert_eq!(desired_state(&a), desired_state(&b));
        let swapped = with_status_of(b.clone(), &a);
        assert_eq!(swapped["status"]["phase"], "Running");
        assert_eq!(with_status_of(a, &b).get("status"), None);
    }
}
