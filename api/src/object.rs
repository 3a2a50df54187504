//! `Object`: any supported kind, dispatched on `apiVersion` and `kind`.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, de};

use crate::{
    apps_v1::{Deployment, ReplicaSet},
    autoscaling_v2::HorizontalPodAutoscaler,
    core_v1::{ConfigMap, Endpoints, Event, Namespace, Pod, Secret, Service},
    meta::{ObjectMeta, Resource},
};

/// A kind berth knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindInfo {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
}

impl KindInfo {
    const fn of<R: Resource>() -> Self {
        Self {
            api_version: R::API_VERSION,
            kind: R::KIND,
            plural: R::PLURAL,
            namespaced: R::NAMESPACED,
        }
    }

    /// kubectl's name for objects of this kind: `deployment.apps`, `service`.
    pub fn resource_name(&self) -> String {
        let kind = self.kind.to_ascii_lowercase();
        match self.api_version.rsplit_once('/') {
            Some((group, _)) => format!("{kind}.{group}"),
            None => kind,
        }
    }
}

impl fmt::Display for KindInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.api_version, self.kind)
    }
}

/// Every kind berth accepts, in the order objects are applied (namespaces and configuration
/// before the workloads that use them).
pub const KINDS: &[KindInfo] = &[
    KindInfo::of::<Namespace>(),
    KindInfo::of::<ConfigMap>(),
    KindInfo::of::<Secret>(),
    KindInfo::of::<Service>(),
    KindInfo::of::<Pod>(),
    KindInfo::of::<ReplicaSet>(),
    KindInfo::of::<Deployment>(),
    KindInfo::of::<HorizontalPodAutoscaler>(),
    KindInfo::of::<Endpoints>(),
    KindInfo::of::<Event>(),
];

/// Looks a kind up by name, case-insensitively (`deployment`, `Deployment`).
pub fn find_kind(kind: &str) -> Option<&'static KindInfo> {
    KINDS.iter().find(|k| k.kind.eq_ignore_ascii_case(kind))
}

/// Why `apiVersion`/`kind` do not name a supported kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KindError {
    #[error("missing required field `apiVersion`")]
    MissingApiVersion,
    #[error("missing required field `kind`")]
    MissingKind,
    #[error(
        "berth does not support apiVersion {api_version:?} for kind {kind:?}: use apiVersion {expected:?}"
    )]
    WrongApiVersion {
        api_version: String,
        kind: String,
        expected: &'static str,
    },
    #[error(
        "berth does not support kind {kind:?} (apiVersion {api_version:?}); supported kinds: {}",
        supported_kinds()
    )]
    Unsupported { api_version: String, kind: String },
}

/// `v1 Namespace, v1 ConfigMap, ...`
pub fn supported_kinds() -> String {
    KINDS
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Resolves `apiVersion` and `kind` to a supported kind.
pub fn resolve_kind(api_version: &str, kind: &str) -> Result<&'static KindInfo, KindError> {
    match KINDS.iter().find(|k| k.kind == kind) {
        Some(info) if info.api_version == api_version => Ok(info),
        Some(info) => Err(KindError::WrongApiVersion {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            expected: info.api_version,
        }),
        None => Err(KindError::Unsupported {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        }),
    }
}

/// Identifies an object: kind, namespace (for namespaced kinds) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: &'static str,
    pub namespace: Option<String>,
    pub name: String,
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {namespace}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// Any object of a supported kind.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
#[allow(clippy::large_enum_variant)]
pub enum Object {
    Namespace(Namespace),
    ConfigMap(ConfigMap),
    Secret(Secret),
    Service(Service),
    Pod(Pod),
    ReplicaSet(ReplicaSet),
    Deployment(Deployment),
    HorizontalPodAutoscaler(HorizontalPodAutoscaler),
    Endpoints(Endpoints),
    Event(Event),
}

/// Runs `$body` with `$inner` bound to the object inside any variant.
macro_rules! with_inner {
    ($object:expr, $inner:ident => $body:expr) => {
        match $object {
            Object::Namespace($inner) => $body,
            Object::ConfigMap($inner) => $body,
            Object::Secret($inner) => $body,
            Object::Service($inner) => $body,
            Object::Pod($inner) => $body,
            Object::ReplicaSet($inner) => $body,
            Object::Deployment($inner) => $body,
            Object::HorizontalPodAutoscaler($inner) => $body,
            Object::Endpoints($inner) => $body,
            Object::Event($inner) => $body,
        }
    };
}
pub(crate) use with_inner;

fn info_of<R: Resource>(_: &R) -> &'static KindInfo {
    KINDS
        .iter()
        .find(|k| k.kind == R::KIND)
        .expect("every Object variant is listed in KINDS")
}

impl Object {
    pub fn info(&self) -> &'static KindInfo {
        with_inner!(self, o => info_of(o))
    }

    pub fn kind(&self) -> &'static str {
        self.info().kind
    }

    pub fn api_version(&self) -> &'static str {
        self.info().api_version
    }

    pub fn metadata(&self) -> &ObjectMeta {
        with_inner!(self, o => o.metadata())
    }

    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        with_inner!(self, o => o.metadata_mut())
    }

    pub fn name(&self) -> &str {
        self.metadata().name()
    }

    /// The object's key; the namespace is `default` when unset for namespaced kinds.
    pub fn key(&self) -> ObjectKey {
        let info = self.info();
        ObjectKey {
            kind: info.kind,
            namespace: info.namespaced.then(|| {
                self.metadata()
                    .namespace
                    .clone()
                    .unwrap_or_else(|| crate::DEFAULT_NAMESPACE.to_owned())
            }),
            name: self.name().to_owned(),
        }
    }

    /// Deserializes an object of the kind named by `info` from any serde deserializer.
    pub fn deserialize_as<'de, D: Deserializer<'de>>(
        info: &KindInfo,
        deserializer: D,
    ) -> Result<Self, D::Error> {
        Ok(match info.kind {
            "Namespace" => Self::Namespace(Deserialize::deserialize(deserializer)?),
            "ConfigMap" => Self::ConfigMap(Deserialize::deserialize(deserializer)?),
            "Secret" => Self::Secret(Deserialize::deserialize(deserializer)?),
            "Service" => Self::Service(Deserialize::deserialize(deserializer)?),
            "Pod" => Self::Pod(Deserialize::deserialize(deserializer)?),
            "ReplicaSet" => Self::ReplicaSet(Deserialize::deserialize(deserializer)?),
            "Deployment" => Self::Deployment(Deserialize::deserialize(deserializer)?),
            "HorizontalPodAutoscaler" => {
                Self::HorizontalPodAutoscaler(Deserialize::deserialize(deserializer)?)
            }
            "Endpoints" => Self::Endpoints(Deserialize::deserialize(deserializer)?),
            "Event" => Self::Event(Deserialize::deserialize(deserializer)?),
            other => unreachable!("kind {other} is in KINDS but not in Object"),
        })
    }
}

macro_rules! from_kind {
    ($($variant:ident),*) => {$(
        impl From<$variant> for Object {
            fn from(value: $variant) -> Self {
                Self::$variant(value)
            }
        }
    )*};
}
from_kind!(
    Namespace,
    ConfigMap,
    Secret,
    Service,
    Pod,
    ReplicaSet,
    Deployment,
    HorizontalPodAutoscaler,
    Endpoints,
    Event
);

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        let field = |name: &str| {
            value
                .get(name)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let api_version =
            field("apiVersion").ok_or_else(|| de::Error::custom(KindError::MissingApiVersion))?;
        let kind = field("kind").ok_or_else(|| de::Error::custom(KindError::MissingKind))?;
        let info = resolve_kind(&api_version, &kind).map_err(de::Error::custom)?;
        Self::deserialize_as(info, value).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_kinds_and_names_the_right_api_version() {
        assert_eq!(
            resolve_kind("apps/v1", "Deployment").unwrap().plural,
            "deployments"
        );
        assert_eq!(
            resolve_kind("extensions/v1beta1", "Deployment").unwrap_err(),
            KindError::WrongApiVersion {
                api_version: "extensions/v1beta1".into(),
                kind: "Deployment".into(),
                expected: "apps/v1"
            }
        );
        let unsupported = resolve_kind("batch/v1", "Job").unwrap_err().to_string();
        assert!(
            unsupported.contains("\"Job\"") && unsupported.contains("apps/v1 Deployment"),
            "{unsupported}"
        );
        assert_eq!(
            find_kind("deployment").unwrap().resource_name(),
            "deployment.apps"
        );
        assert_eq!(find_kind("Service").unwrap().resource_name(), "service");
    }

    #[test]
    fn object_deserializes_by_kind_and_has_a_key() {
        let object: Object = serde_json::from_str(
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cfg"},"data":{"a":"b"}}"#,
        )
        .unwrap();
        assert_eq!(object.kind(), "ConfigMap");
        assert_eq!(object.key().to_string(), "ConfigMap default/cfg");
        let namespace: Object = serde_json::from_str(
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team"}}"#,
        )
        .unwrap();
        assert_eq!(
            namespace.key(),
            ObjectKey {
                kind: "Namespace",
                namespace: None,
                name: "team".into()
            }
        );
        assert!(
            serde_json::from_str::<Object>(r#"{"apiVersion":"batch/v1","kind":"Job"}"#).is_err()
        );
    }
}
