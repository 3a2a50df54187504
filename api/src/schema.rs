//! JSON Schema (draft 2020-12) of the manifests, for editors (yaml-language-server) and tools.

use schemars::{JsonSchema, Schema, generate::SchemaSettings, transform::RecursiveTransform};

use crate::{
    apps_v1::{Deployment, ReplicaSet},
    autoscaling_v2::HorizontalPodAutoscaler,
    core_v1::{ConfigMap, Endpoints, Event, Namespace, Pod, Secret, Service},
    object::{Object, find_kind, supported_kinds},
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("berth has no kind {kind:?}; supported kinds: {}", supported_kinds())]
    UnknownKind { kind: String },
}

pub type Result<T, E = SchemaError> = std::result::Result<T, E>;

/// Drops `default` values that are objects or lists: schemars derives them from
/// `#[serde(default)]` (e.g. an empty pod template), which only clutters editors' hovers.
fn drop_structured_defaults(schema: &mut Schema) {
    if schema
        .get("default")
        .is_some_and(|d| d.is_object() || d.is_array())
    {
        schema.remove("default");
    }
}

fn schema_of<T: JsonSchema>(title: &str) -> Schema {
    let mut settings = SchemaSettings::draft2020_12();
    settings
        .transforms
        .push(Box::new(RecursiveTransform(drop_structured_defaults)));
    let mut schema = settings.into_generator().into_root_schema_for::<T>();
    schema.insert("title".to_owned(), title.into());
    schema
}

/// The schema of every kind: any one document must match one kind, chosen by apiVersion/kind.
pub fn all_kinds() -> Schema {
    let mut schema = schema_of::<Object>("berth manifest");
    schema.insert(
        "description".to_owned(),
        format!(
            "One Kubernetes-compatible object berth accepts: {}.",
            supported_kinds()
        )
        .into(),
    );
    schema
}

/// The schema of one kind, named case-insensitively (`Deployment`, `deployment`).
pub fn for_kind(kind: &str) -> Result<Schema> {
    let info = find_kind(kind).ok_or_else(|| SchemaError::UnknownKind {
        kind: kind.to_owned(),
    })?;
    let title = format!("{} {}", info.api_version, info.kind);
    Ok(match info.kind {
        "Namespace" => schema_of::<Namespace>(&title),
        "ConfigMap" => schema_of::<ConfigMap>(&title),
        "Secret" => schema_of::<Secret>(&title),
        "Service" => schema_of::<Service>(&title),
        "Pod" => schema_of::<Pod>(&title),
        "ReplicaSet" => schema_of::<ReplicaSet>(&title),
        "Deployment" => schema_of::<Deployment>(&title),
        "HorizontalPodAutoscaler" => schema_of::<HorizontalPodAutoscaler>(&title),
        "Endpoints" => schema_of::<Endpoints>(&title),
        "Event" => schema_of::<Event>(&title),
        other => unreachable!("kind {other} is in KINDS but has no schema"),
    })
}

/// Pretty JSON text of a schema, with a trailing newline (the form checked in under `schema/`).
pub fn to_pretty_json(schema: &Schema) -> String {
    let mut text = serde_json::to_string_pretty(schema).expect("a schema is plain JSON");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::KINDS;

    #[test]
    fn every_kind_has_a_schema_pinning_api_version_and_kind() {
        for info in KINDS {
            let schema = for_kind(info.kind).unwrap();
            let json = schema.as_value();
            assert_eq!(json["properties"]["kind"]["const"], info.kind, "{info}");
            assert_eq!(
                json["properties"]["apiVersion"]["const"], info.api_version,
                "{info}"
            );
            assert_eq!(
                json["$schema"],
                "https://json-schema.org/draft/2020-12/schema"
            );
        }
        assert!(
            for_kind("Job")
                .unwrap_err()
                .to_string()
                .contains("apps/v1 Deployment")
        );
    }

    #[test]
    fn all_kinds_is_a_union() {
        let schema = all_kinds();
        let variants = schema.as_value()["anyOf"]
            .as_array()
            .expect("anyOf over kinds");
        assert_eq!(variants.len(), KINDS.len());
    }
}
