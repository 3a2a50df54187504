//! Object metadata shared by every kind (`metav1.ObjectMeta`, `TypeMeta`, label selectors).

use std::{borrow::Cow, collections::BTreeMap, fmt, marker::PhantomData};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::time::Time;

/// A top-level kind: its `apiVersion`, `kind` and metadata.
pub trait Resource {
    /// `apiVersion`, e.g. `apps/v1` or `v1`.
    const API_VERSION: &'static str;
    /// `kind`, e.g. `Deployment`.
    const KIND: &'static str;
    /// Lower-case plural used in resource names (`deployments`).
    const PLURAL: &'static str;
    /// Whether objects of this kind live in a namespace.
    const NAMESPACED: bool;

    fn metadata(&self) -> &ObjectMeta;
    fn metadata_mut(&mut self) -> &mut ObjectMeta;

    /// The API group (`apps`), empty for the core group.
    fn group() -> &'static str {
        Self::API_VERSION
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }
}

/// The `apiVersion` field of a kind: always serialized as `R::API_VERSION`, and rejected on input
/// when it differs.
pub struct ApiVersion<R>(PhantomData<fn() -> R>);

/// The `kind` field of a kind: always serialized as `R::KIND`.
pub struct Kind<R>(PhantomData<fn() -> R>);

macro_rules! type_marker {
    ($marker:ident, $constant:ident, $what:literal) => {
        impl<R> Default for $marker<R> {
            fn default() -> Self {
                Self(PhantomData)
            }
        }
        impl<R> Clone for $marker<R> {
            fn clone(&self) -> Self {
                Self(PhantomData)
            }
        }
        impl<R> PartialEq for $marker<R> {
            fn eq(&self, _: &Self) -> bool {
                true
            }
        }
        impl<R> Eq for $marker<R> {}
        impl<R: Resource> fmt::Debug for $marker<R> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(R::$constant)
            }
        }
        impl<R: Resource> Serialize for $marker<R> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(R::$constant)
            }
        }
        impl<'de, R: Resource> Deserialize<'de> for $marker<R> {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                if value == R::$constant {
                    Ok(Self(PhantomData))
                } else {
                    Err(de::Error::invalid_value(de::Unexpected::Str(&value), &R::$constant))
                }
            }
        }
        impl<R: Resource> JsonSchema for $marker<R> {
            fn inline_schema() -> bool {
                true
            }
            fn schema_name() -> Cow<'static, str> {
                format!("{}{}", R::KIND, $what).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "type": "string", "const": R::$constant })
            }
        }
    };
}

type_marker!(ApiVersion, API_VERSION, "ApiVersion");
type_marker!(Kind, KIND, "Kind");

/// Metadata every object has (`metav1.ObjectMeta`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    /// Unique within a namespace for the kind. Required unless `generateName` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Prefix from which the server generates a unique name when `name` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_name: Option<String>,
    /// Namespace of namespaced kinds; defaults to `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Set by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Sequence number of the desired state; set by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Opaque version for optimistic concurrency; set by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_grace_period_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<OwnerReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
}

impl ObjectMeta {
    /// The name, or `""` when unset.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }
}

/// Points at the object that owns this one (e.g. the ReplicaSet of a Pod).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OwnerReference {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_owner_deletion: Option<bool>,
}

/// A label query (`metav1.LabelSelector`): all `matchLabels` and all `matchExpressions` must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

impl LabelSelector {
    /// Whether the selector selects nothing special, i.e. matches everything.
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Whether `labels` satisfy every requirement of the selector.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: LabelSelectorOperator,
    /// Required for `In`/`NotIn`, empty for `Exists`/`DoesNotExist`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

impl LabelSelectorRequirement {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            LabelSelectorOperator::In => value.is_some_and(|v| self.values.contains(v)),
            LabelSelectorOperator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            LabelSelectorOperator::Exists => value.is_some(),
            LabelSelectorOperator::DoesNotExist => value.is_none(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum LabelSelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// `True`, `False` or `Unknown`, the status of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn selector_matches_labels_and_expressions() {
        let selector = LabelSelector {
            match_labels: labels(&[("app", "web")]),
            match_expressions: vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: LabelSelectorOperator::In,
                    values: vec!["frontend".into(), "edge".into()],
                },
                LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: LabelSelectorOperator::DoesNotExist,
                    values: vec![],
                },
            ],
        };
        assert!(selector.matches(&labels(&[("app", "web"), ("tier", "edge")])));
        assert!(!selector.matches(&labels(&[("app", "web"), ("tier", "backend")])));
        assert!(!selector.matches(&labels(&[
            ("app", "web"),
            ("tier", "edge"),
            ("canary", "1")
        ])));
        assert!(!selector.matches(&labels(&[("tier", "edge")])));
        assert!(LabelSelector::default().matches(&labels(&[])));
    }
}
