//! `resource.Quantity`: a fixed-point number with a unit suffix, parsed exactly as Kubernetes does.
//!
//! Grammar (Kubernetes `k8s.io/apimachinery/pkg/api/resource`):
//! `<quantity> ::= <sign><digits><suffix>`, where the number may have a fraction (`0.5`, `.5`,
//! `1.`) and the suffix is binary (`Ki Mi Gi Ti Pi Ei`), decimal SI (`n u m "" k M G T P E`) or a
//! decimal exponent (`e3`, `E-2`). Values are kept in nano units, rounded away from zero to the
//! nearest nano as Kubernetes does, and the original text is kept for serialization.

use std::{borrow::Cow, cmp::Ordering, fmt, str::FromStr};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// The regular expression Kubernetes quotes when a quantity does not parse.
pub const QUANTITY_REGEX: &str = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$";

/// Largest magnitude kept, in nano units (about 1.7e29 whole units).
const MAX_NANOS: u128 = i128::MAX as u128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantity is empty")]
    Empty,
    #[error("quantity {value:?} must match the regular expression '{QUANTITY_REGEX}'")]
    Format { value: String },
    #[error(
        "quantity {value:?} has unknown suffix {suffix:?} (expected one of Ki Mi Gi Ti Pi Ei, n u m k M G T P E, or an exponent like e3)"
    )]
    Suffix { value: String, suffix: String },
}

pub type Result<T, E = QuantityError> = std::result::Result<T, E>;

/// A Kubernetes quantity such as `500m`, `0.5`, `128Mi` or `1e3`.
///
/// Equality and ordering compare values (`1Gi == 1073741824`), not text.
#[derive(Clone)]
pub struct Quantity {
    text: String,
    /// Signed value in nano units (1e-9), rounded away from zero, saturating.
    nanos: i128,
}

impl Quantity {
    /// Parses a quantity with Kubernetes' grammar.
    pub fn parse(text: &str) -> Result<Self> {
        let nanos = parse_nanos(text)?;
        Ok(Self {
            text: text.to_owned(),
            nanos,
        })
    }

    /// The text the quantity was written as.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The exact value in nano units (1e-9), rounded away from zero to a whole nano.
    pub fn as_nanos(&self) -> i128 {
        self.nanos
    }

    /// The value in thousandths, rounded up (away from zero) like Kubernetes' `MilliValue()`;
    /// saturates at the bounds of `i64`.
    pub fn to_milli(&self) -> i64 {
        scale_round_up(self.nanos, 1_000_000)
    }

    /// The value in whole units (bytes for memory, cores for CPU), rounded up (away from zero)
    /// like Kubernetes' `Value()`; saturates at the bounds of `i64`.
    pub fn value(&self) -> i64 {
        scale_round_up(self.nanos, 1_000_000_000)
    }

    /// Alias of [`Quantity::value`] for memory quantities.
    pub fn to_bytes(&self) -> i64 {
        self.value()
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }
}

fn scale_round_up(nanos: i128, per_unit: i128) -> i64 {
    let magnitude = nanos.unsigned_abs().div_ceil(per_unit as u128);
    let signed = if nanos < 0 {
        -(magnitude.min(i128::MAX as u128) as i128)
    } else {
        magnitude.min(i128::MAX as u128) as i128
    };
    signed.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

enum Suffix {
    Decimal(i32),
    Binary(u32),
}

fn parse_suffix(suffix: &str) -> Option<Suffix> {
    Some(match suffix {
        "" => Suffix::Decimal(0),
        "n" => Suffix::Decimal(-9),
        "u" => Suffix::Decimal(-6),
        "m" => Suffix::Decimal(-3),
        "k" => Suffix::Decimal(3),
        "M" => Suffix::Decimal(6),
        "G" => Suffix::Decimal(9),
        "T" => Suffix::Decimal(12),
        "P" => Suffix::Decimal(15),
        "E" => Suffix::Decimal(18),
        "Ki" => Suffix::Binary(10),
        "Mi" => Suffix::Binary(20),
        "Gi" => Suffix::Binary(30),
        "Ti" => Suffix::Binary(40),
        "Pi" => Suffix::Binary(50),
        "Ei" => Suffix::Binary(60),
        _ => {
            let exponent = suffix.strip_prefix(['e', 'E'])?;
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // Kubernetes reads the exponent as an int32; beyond ±1000 the value saturates or
            // rounds to the smallest unit anyway.
            let value: i32 = exponent.parse().ok()?;
            Suffix::Decimal(value.clamp(-1000, 1000))
        }
    })
}

fn parse_nanos(text: &str) -> Result<i128> {
    if text.is_empty() {
        return Err(QuantityError::Empty);
    }
    let format_error = || QuantityError::Format {
        value: text.to_owned(),
    };
    let bytes = text.as_bytes();
    let mut pos = 0;
    let negative = match bytes[0] {
        b'-' => {
            pos = 1;
            true
        }
        b'+' => {
            pos = 1;
            false
        }
        _ => false,
    };
    let int_start = pos;
    while pos < bytes.len() && bytes[pos].is_ascii_digit() {
        pos += 1;
    }
    let int_digits = &text[int_start..pos];
    let mut frac_digits = "";
    if pos < bytes.len() && bytes[pos] == b'.' {
        pos += 1;
        let frac_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        frac_digits = &text[frac_start..pos];
    }
    if int_digits.is_empty() && frac_digits.is_empty() {
        return Err(format_error());
    }
    // The suffix: letters from the suffix alphabet, then an optional signed integer.
    let suffix_start = pos;
    while pos < bytes.len() && b"eEinumkKMGTP".contains(&bytes[pos]) {
        pos += 1;
    }
    if pos < bytes.len() && (bytes[pos] == b'+' || bytes[pos] == b'-') {
        pos += 1;
    }
    while pos < bytes.len() && bytes[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos != bytes.len() {
        let rest = &text[suffix_start..];
        if rest.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(QuantityError::Suffix {
                value: text.to_owned(),
                suffix: rest.to_owned(),
            });
        }
        return Err(format_error());
    }
    let suffix = &text[suffix_start..];
    let Some(suffix) = parse_suffix(suffix) else {
        return Err(QuantityError::Suffix {
            value: text.to_owned(),
            suffix: suffix.to_owned(),
        });
    };

    // Mantissa digits as an integer; digits that do not fit are dropped and remembered ("sticky")
    // so that rounding up stays correct.
    let mut mantissa: u128 = 0;
    let mut exponent10: i64 = 9; // nano units
    let mut sticky = false;
    let mut truncated = false;
    let mut overflow_int = false;
    for d in int_digits.bytes() {
        let next = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(d - b'0')));
        match next {
            Some(m) if !truncated && m <= MAX_NANOS => mantissa = m,
            _ => {
                // Integer part too long: keep the scale by raising the exponent instead.
                truncated = true;
                overflow_int = true;
                exponent10 += 1;
                sticky |= d != b'0';
            }
        }
    }
    for d in frac_digits.bytes() {
        let next = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(d - b'0')));
        match next {
            Some(m) if !truncated && m <= MAX_NANOS => {
                mantissa = m;
                exponent10 -= 1;
            }
            _ => {
                truncated = true;
                sticky |= d != b'0';
            }
        }
    }
    let mut binary_shift = 0u32;
    match suffix {
        Suffix::Decimal(e) => exponent10 += i64::from(e),
        Suffix::Binary(shift) => binary_shift = shift,
    }
    let saturate = |v: Option<u128>| v.filter(|v| *v <= MAX_NANOS).unwrap_or(MAX_NANOS);
    let mut value = mantissa;
    if binary_shift > 0 {
        value = saturate(value.checked_mul(1u128 << binary_shift));
    }
    if exponent10 >= 0 {
        for _ in 0..exponent10 {
            if value == 0 || value == MAX_NANOS {
                break;
            }
            value = saturate(value.checked_mul(10));
        }
    } else {
        for _ in 0..(-exponent10) {
            if value == 0 {
                break;
            }
            sticky |= !value.is_multiple_of(10);
            value /= 10;
        }
    }
    if sticky && value < MAX_NANOS && (mantissa != 0 || overflow_int) {
        value += 1;
    }
    let value = value as i128;
    Ok(if negative { -value } else { value })
}

impl FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Quantity({:?})", self.text)
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity such as 500m, 0.5, 1, 128Mi or 1e3")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Quantity, E> {
                Quantity::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Quantity, E> {
                if !v.is_finite() {
                    return Err(E::invalid_value(de::Unexpected::Float(v), &self));
                }
                self.visit_str(&v.to_string())
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> Cow<'static, str> {
        "Quantity".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A Kubernetes quantity: a number with an optional suffix (binary Ki Mi Gi Ti Pi Ei, decimal n u m k M G T P E, or exponent e3), e.g. 500m, 0.5, 128Mi.",
            "anyOf": [
                { "type": "string", "pattern": QUANTITY_REGEX },
                { "type": "number" }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn kubernetes_documented_memory_examples_are_equal_or_close() {
        // From the Kubernetes docs "Resource units in Kubernetes".
        assert_eq!(q("128974848").value(), 128_974_848);
        assert_eq!(q("129e6").value(), 129_000_000);
        assert_eq!(q("129M").value(), 129_000_000);
        assert_eq!(q("128974848000m").value(), 128_974_848);
        assert_eq!(q("123Mi").value(), 128_974_848);
        assert_eq!(q("128974848"), q("123Mi"));
        assert_eq!(q("129e6"), q("129M"));
        assert_eq!(q("128974848000m"), q("128974848"));
    }

    #[test]
    fn cpu_examples() {
        assert_eq!(q("500m").to_milli(), 500);
        assert_eq!(q("0.5").to_milli(), 500);
        assert_eq!(q(".5").to_milli(), 500);
        assert_eq!(q("1").to_milli(), 1000);
        assert_eq!(q("1.").to_milli(), 1000);
        assert_eq!(q("+2").to_milli(), 2000);
        assert_eq!(q("0.1").to_milli(), 100);
        assert_eq!(q("100m"), q("0.1"));
    }

    #[test]
    fn binary_and_exponent_suffixes() {
        assert_eq!(q("2Gi").value(), 2 * 1024 * 1024 * 1024);
        assert_eq!(q("1Ki").value(), 1024);
        assert_eq!(q("1Ei").value(), 1 << 60);
        assert_eq!(q("1e3").value(), 1000);
        assert_eq!(q("1E3").value(), 1000);
        assert_eq!(q("1e-3").to_milli(), 1);
        assert_eq!(q("1E").value(), 1_000_000_000_000_000_000);
        assert_eq!(q("1.5Gi").value(), 1_610_612_736);
        assert_eq!(q("12n").as_nanos(), 12);
        assert_eq!(q("7u").as_nanos(), 7000);
    }

    #[test]
    fn rounding_is_up_like_kubernetes() {
        // MilliValue() and Value() round up (away from zero).
        assert_eq!(q("1n").to_milli(), 1);
        assert_eq!(q("1n").value(), 1);
        assert_eq!(q("1500m").value(), 2);
        assert_eq!(q("-1500m").value(), -2);
        assert_eq!(q("0.0001").to_milli(), 1);
        // Parsing rounds fractions below one nano up to one nano.
        assert_eq!(q("0.0000000001").as_nanos(), 1);
        assert_eq!(q("0").value(), 0);
        assert!(q("0m").is_zero());
    }

    #[test]
    fn signs() {
        assert!(q("-1").is_negative());
        assert_eq!(q("-500m").to_milli(), -500);
        assert_eq!(q("-0"), q("0"));
    }

    #[test]
    fn huge_values_saturate() {
        assert_eq!(q("9e99").value(), i64::MAX);
        assert_eq!(q("-9e99").value(), i64::MIN);
        assert_eq!(
            q("99999999999999999999999999999999999999999999999").value(),
            i64::MAX
        );
        assert_eq!(q("1e-999").as_nanos(), 1);
        assert_eq!(q("1e2147483647").value(), i64::MAX);
        assert!(
            Quantity::parse("1e2147483648").is_err(),
            "exponents are int32 as in Kubernetes"
        );
        assert_eq!(q("0e999").as_nanos(), 0);
    }

    #[test]
    fn invalid_quantities() {
        for bad in [
            "", "1.2.3", "Mi", "1Mb", "-", "+", ".", "1 ", " 1", "1i", "1K", "0.1mi", "aoeu",
            ".5i", "-3.01e-", "1e", "1+1.0M", "1.1.M", "1MM", "--1", "1e3.5", "0x10",
        ] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} should not parse");
        }
        assert_eq!(
            Quantity::parse("1Mb").unwrap_err(),
            QuantityError::Suffix {
                value: "1Mb".into(),
                suffix: "Mb".into()
            }
        );
    }

    #[test]
    fn keeps_text_for_serialization() {
        let value: Quantity = serde_json::from_str("\"0.5\"").unwrap();
        assert_eq!(serde_json::to_string(&value).unwrap(), "\"0.5\"");
        let number: Quantity = serde_json::from_str("2").unwrap();
        assert_eq!(number.as_str(), "2");
        let float: Quantity = serde_json::from_str("0.25").unwrap();
        assert_eq!(float.to_milli(), 250);
    }

    proptest! {
        #[test]
        fn millis_written_with_m_suffix_round_trip(milli in -1_000_000_000i64..1_000_000_000) {
            let parsed = q(&format!("{milli}m"));
            prop_assert_eq!(parsed.to_milli(), milli);
        }

        #[test]
        fn decimal_and_milli_forms_agree(whole in 0u32..100_000, frac in 0u32..1000) {
            let decimal = q(&format!("{whole}.{frac:03}"));
            let milli = q(&format!("{}m", u64::from(whole) * 1000 + u64::from(frac)));
            prop_assert_eq!(decimal, milli);
        }

        #[test]
        fn binary_suffixes_multiply(n in 0i64..1_000_000, shift in 1u32..4) {
            let suffix = ["Ki", "Mi", "Gi"][(shift - 1) as usize];
            prop_assert_eq!(q(&format!("{n}{suffix}")).value(), n << (10 * shift));
        }

        #[test]
        fn parser_never_panics(s in "\\PC{0,24}") {
            let _ = Quantity::parse(&s);
        }

        #[test]
        fn parser_never_panics_on_quantity_like_text(s in "[-+]?[0-9.]{0,40}[eEinumkKMGTP]{0,2}[-+]?[0-9]{0,5}") {
            if let Ok(parsed) = Quantity::parse(&s) {
                let _ = (parsed.to_milli(), parsed.value());
            }
        }
    }
}
