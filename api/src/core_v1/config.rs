//! `v1` ConfigMap and Secret: configuration data pods consume as files or environment variables.

use std::{borrow::Cow, collections::BTreeMap, fmt};

use base64::Engine as _;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use crate::meta::{ApiVersion, Kind, ObjectMeta};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigMap {
    pub api_version: ApiVersion<ConfigMap>,
    pub kind: Kind<ConfigMap>,
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// UTF-8 values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    /// Binary values, base64 on the wire.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub binary_data: BTreeMap<String, ByteString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}
crate::impl_resource!(ConfigMap, "v1", "ConfigMap", "configmaps", namespaced);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Secret {
    pub api_version: ApiVersion<Secret>,
    pub kind: Kind<Secret>,
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Values, base64 on the wire and decoded in memory.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, ByteString>,
    /// Write-only plain-text values, merged into `data` by defaulting.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub string_data: BTreeMap<String, String>,
    /// Default `Opaque`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}
crate::impl_resource!(Secret, "v1", "Secret", "secrets", namespaced);

/// Bytes, base64-encoded (standard alphabet, padded) on the wire.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct ByteString(pub Vec<u8>);

impl fmt::Debug for ByteString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ByteString({} bytes)", self.0.len())
    }
}

impl From<&[u8]> for ByteString {
    fn from(value: &[u8]) -> Self {
        Self(value.to_vec())
    }
}

impl Serialize for ByteString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for ByteString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map(Self)
            .map_err(|err| {
                de::Error::custom(format_args!(
                    "expected base64 (standard alphabet, padded): {}",
                    describe(&err)
                ))
            })
    }
}

fn describe(err: &base64::DecodeError) -> String {
    match err {
        base64::DecodeError::InvalidByte(offset, byte) => {
            format!(
                "invalid character {:?} at offset {offset}",
                char::from(*byte)
            )
        }
        base64::DecodeError::InvalidLength(length) => format!("invalid length {length}"),
        base64::DecodeError::InvalidLastSymbol(offset, byte) => {
            format!(
                "invalid last character {:?} at offset {offset}",
                char::from(*byte)
            )
        }
        base64::DecodeError::InvalidPadding => "invalid padding".to_owned(),
    }
}

impl JsonSchema for ByteString {
    fn schema_name() -> Cow<'static, str> {
        "ByteString".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "contentEncoding": "base64", "format": "byte" })
    }
}
