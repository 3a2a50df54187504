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

/// What the server allocated that an update or apply leaving it out keeps, as Kubernetes'
/// Service storage does (`patchAllocatedValues`): a Service's `clusterIP`/`clusterIPs` while it
/// still is of a type with a cluster IP, and the `nodePort` of each port (matched by port and
/// protocol) while it still is of a type with node ports. Re-applying a manifest that never
/// named them must not take a Service's address away, not even for the moment until the
/// Service controller would give it back: for that moment its traffic has nowhere to go.
pub(crate) fn keep_allocated(kind: &str, new: &mut Value, old: &Value) {
    if kind != "Service" {
        return;
    }
    let (Some(new_spec), Some(old_spec)) = (
        new.get_mut("spec").and_then(Value::as_object_mut),
        old.get("spec").and_then(Value::as_object),
    ) else {
        return;
    };
    let service_type = new_spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_owned();
    let unset = |value: Option<&Value>| match value {
        None | Some(Value::Null) => true,
        Some(Value::String(text)) => text.is_empty(),
        Some(Value::Array(items)) => items.is_empty(),
        Some(_) => false,
    };
    if service_type != "ExternalName" && unset(new_spec.get("clusterIP")) {
        for field in ["clusterIP", "clusterIPs"] {
            if let Some(value) = old_spec.get(field).filter(|v| !unset(Some(v))) {
                new_spec.insert(field.to_owned(), value.clone());
            }
        }
    }
    if !matches!(service_type.as_str(), "NodePort" | "LoadBalancer") {
        return;
    }
    let port_key = |port: &Value| {
        (
            port.get("port").and_then(Value::as_i64),
            port.get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("TCP")
                .to_owned(),
        )
    };
    let old_ports = old_spec.get("ports").and_then(Value::as_array);
    let Some(new_ports) = new_spec.get_mut("ports").and_then(Value::as_array_mut) else {
        return;
    };
    for port in new_ports.iter_mut() {
        if !unset(port.get("nodePort")) && port.get("nodePort") != Some(&Value::from(0)) {
            continue;
        }
        let key = port_key(port);
        let kept = old_ports
            .into_iter()
            .flatten()
            .find(|old| port_key(old) == key)
            .and_then(|old| old.get("nodePort"))
            .filter(|node_port| node_port.as_i64().is_some_and(|n| n > 0));
        if let (Some(node_port), Some(fields)) = (kept, port.as_object_mut()) {
            fields.insert("nodePort".to_owned(), node_port.clone());
        }
    }
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

    #[test]
    fn services_keep_what_the_server_allocated_unless_given_or_no_longer_theirs() {
        let old = serde_json::json!({"spec": {
            "type": "NodePort",
            "clusterIP": "10.74.0.9",
            "clusterIPs": ["10.74.0.9"],
            "ports": [
                {"port": 80, "nodePort": 30080},
                {"port": 53, "protocol": "UDP", "nodePort": 30053},
            ],
        }});
        // Left out: kept, each node port by port and protocol.
        let mut new = serde_json::json!({"spec": {
            "type": "NodePort",
            "ports": [{"port": 53, "protocol": "UDP"}, {"port": 80}, {"port": 81}],
        }});
        keep_allocated("Service", &mut new, &old);
        assert_eq!(new["spec"]["clusterIP"], "10.74.0.9");
        assert_eq!(new["spec"]["clusterIPs"], serde_json::json!(["10.74.0.9"]));
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30053);
        assert_eq!(new["spec"]["ports"][1]["nodePort"], 30080);
        assert!(new["spec"]["ports"][2].get("nodePort").is_none());

        // Given: the user's values win.
        let mut new = serde_json::json!({"spec": {
            "type": "NodePort", "clusterIP": "10.74.0.7",
            "ports": [{"port": 80, "nodePort": 30099}],
        }});
        keep_allocated("Service", &mut new, &old);
        assert_eq!(new["spec"]["clusterIP"], "10.74.0.7");
        assert!(new["spec"].get("clusterIPs").is_none());
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30099);

        // No longer a NodePort: the address stays, the node ports go.
        let mut new = serde_json::json!({"spec": {"ports": [{"port": 80}]}});
        keep_allocated("Service", &mut new, &old);
        assert_eq!(new["spec"]["clusterIP"], "10.74.0.9");
        assert!(new["spec"]["ports"][0].get("nodePort").is_none());

        // ExternalName has no address; other kinds are left alone.
        let mut new = serde_json::json!({"spec": {"type": "ExternalName", "externalName": "x"}});
        keep_allocated("Service", &mut new, &old);
        assert!(new["spec"].get("clusterIP").is_none());
        let mut new = serde_json::json!({"spec": {"ports": [{"port": 80}]}});
        keep_allocated("Endpoints", &mut new, &old);
        assert!(new["spec"].get("clusterIP").is_none());
    }
}
