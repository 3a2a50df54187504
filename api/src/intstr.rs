//! `IntOrString`: an integer or a string such as a named port (`http`) or a percentage (`25%`).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntOrStringError {
    #[error("invalid value {value:?}: expected an integer or a percentage such as \"25%\"")]
    NotAPercentage { value: String },
    #[error("invalid percentage {value:?}: expected an integer followed by %")]
    BadPercentage {
        value: String,
        #[source]
        source: std::num::ParseIntError,
    },
}

pub type Result<T, E = IntOrStringError> = std::result::Result<T, E>;

/// An integer or a string, as Kubernetes' `intstr.IntOrString`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i32),
    String(String),
}

impl IntOrString {
    /// The percentage, when this is a string ending in `%` (`Some(Err)` when it does not parse).
    pub fn percent(&self) -> Option<Result<i32>> {
        match self {
            Self::Int(_) => None,
            Self::String(s) => s.strip_suffix('%').map(|digits| {
                digits
                    .parse()
                    .map_err(|source| IntOrStringError::BadPercentage {
                        value: s.clone(),
                        source,
                    })
            }),
        }
    }

    /// Kubernetes' `GetScaledValueFromIntOrPercent`: an integer is returned as is; a percentage is
    /// scaled by `total` and rounded up (`round_up`) or down. Any other string is an error.
    pub fn scaled_value(&self, total: i32, round_up: bool) -> Result<i32> {
        match self {
            Self::Int(value) => Ok(*value),
            Self::String(s) => {
                let percent = self
                    .percent()
                    .ok_or_else(|| IntOrStringError::NotAPercentage { value: s.clone() })??;
                let product = i64::from(percent) * i64::from(total);
                let scaled = if round_up {
                    product.div_euclid(100) + i64::from(product.rem_euclid(100) != 0)
                } else {
                    product.div_euclid(100)
                };
                Ok(scaled.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
            }
        }
    }
}

impl Default for IntOrString {
    fn default() -> Self {
        Self::Int(0)
    }
}

impl From<i32> for IntOrString {
    fn from(value: i32) -> Self {
        Self::Int(value)
    }
}

impl From<&str> for IntOrString {
    fn from(value: &str) -> Self {
        Self::String(value.to_owned())
    }
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(v) => write!(f, "{v}"),
            Self::String(s) => f.write_str(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn scales_like_kubernetes() {
        let p = IntOrString::from("25%");
        assert_eq!(p.scaled_value(10, true).unwrap(), 3);
        assert_eq!(p.scaled_value(10, false).unwrap(), 2);
        assert_eq!(p.scaled_value(4, true).unwrap(), 1);
        assert_eq!(p.scaled_value(1, false).unwrap(), 0);
        assert_eq!(IntOrString::Int(7).scaled_value(100, false).unwrap(), 7);
        assert_eq!(IntOrString::from("100%").scaled_value(3, false).unwrap(), 3);
        assert_eq!(IntOrString::from("0%").scaled_value(3, true).unwrap(), 0);
    }

    #[test]
    fn rejects_non_percent_strings() {
        assert!(matches!(
            IntOrString::from("http").scaled_value(3, true),
            Err(IntOrStringError::NotAPercentage { .. })
        ));
        assert!(matches!(
            IntOrString::from("x%").scaled_value(3, true),
            Err(IntOrStringError::BadPercentage { .. })
        ));
        assert!(IntOrString::from("5").scaled_value(3, true).is_err());
    }

    #[test]
    fn serde_untagged() {
        let int: IntOrString = serde_json::from_str("8080").unwrap();
        assert_eq!(int, IntOrString::Int(8080));
        let name: IntOrString = serde_json::from_str("\"http\"").unwrap();
        assert_eq!(name, IntOrString::from("http"));
        assert_eq!(
            serde_json::to_string(&IntOrString::from("25%")).unwrap(),
            "\"25%\""
        );
    }

    proptest! {
        #[test]
        fn percent_matches_integer_arithmetic(percent in 0i32..=1000, total in 0i32..100_000) {
            let value = IntOrString::String(format!("{percent}%"));
            let exact = f64::from(percent) * f64::from(total) / 100.0;
            prop_assert_eq!(value.scaled_value(total, true).unwrap(), exact.ceil() as i32);
            prop_assert_eq!(value.scaled_value(total, false).unwrap(), exact.floor() as i32);
        }

        #[test]
        fn round_up_is_at_least_round_down(percent in 0i32..=100, total in 0i32..10_000) {
            let value = IntOrString::String(format!("{percent}%"));
            let up = value.scaled_value(total, true).unwrap();
            let down = value.scaled_value(total, false).unwrap();
            prop_assert!(up >= down && up - down <= 1);
        }

        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC{0,12}", total in any::<i32>()) {
            let _ = IntOrString::String(s).scaled_value(total, true);
        }
    }
}
