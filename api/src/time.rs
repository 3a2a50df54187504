//! `metav1.Time`: an RFC 3339 timestamp, serialized at second precision in UTC as Kubernetes does.

use std::{borrow::Cow, fmt, str::FromStr};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A point in time (Kubernetes `metav1.Time`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub jiff::Timestamp);

impl Time {
    pub fn now() -> Self {
        Self(jiff::Timestamp::now())
    }
}

impl From<jiff::Timestamp> for Time {
    fn from(value: jiff::Timestamp) -> Self {
        Self(value)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.strftime("%Y-%m-%dT%H:%M:%SZ"))
    }
}

impl FromStr for Time {
    type Err = jiff::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Time;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp such as 2024-05-01T12:00:00Z")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Time, E> {
                v.parse()
                    .map_err(|err| E::custom(format_args!("invalid timestamp {v:?}: {err}")))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

impl JsonSchema for Time {
    fn schema_name() -> Cow<'static, str> {
        "Time".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "format": "date-time" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_at_second_precision() {
        let t: Time = "2024-05-01T12:00:00.123456Z".parse().unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2024-05-01T12:00:00Z\""
        );
        let offset: Time = serde_json::from_str("\"2024-05-01T14:00:00+02:00\"").unwrap();
        assert_eq!(offset.to_string(), "2024-05-01T12:00:00Z");
        assert!(serde_json::from_str::<Time>("\"yesterday\"").is_err());
    }
}
