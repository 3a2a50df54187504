//! Durations in Go's `time.ParseDuration` syntax (`300ms`, `1.5s`, `1h30m`), used by annotations.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error(
        "invalid duration {value:?}: expected a sequence of numbers with units (ns, us, ms, s, m, h), e.g. 1h30m or 300ms"
    )]
    Format { value: String },
    #[error(
        "invalid duration {value:?}: unknown unit {unit:?} (expected ns, us, µs, ms, s, m or h)"
    )]
    Unit { value: String, unit: String },
    #[error("invalid duration {value:?}: negative durations are not allowed here")]
    Negative { value: String },
    #[error("invalid duration {value:?}: too large")]
    Overflow { value: String },
}

pub type Result<T, E = DurationError> = std::result::Result<T, E>;

/// Parses a duration as Go's `time.ParseDuration` does (without negative values).
pub fn parse_duration(value: &str) -> Result<Duration> {
    let format_error = || DurationError::Format {
        value: value.to_owned(),
    };
    let mut rest = value;
    if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    } else if rest.starts_with('-') {
        return Err(DurationError::Negative {
            value: value.to_owned(),
        });
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(format_error());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(format_error());
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format_error()),
            other => {
                return Err(DurationError::Unit {
                    value: value.to_owned(),
                    unit: other.to_owned(),
                });
            }
        };
        let overflow = || DurationError::Overflow {
            value: value.to_owned(),
        };
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| overflow())?
        };
        let mut nanos = whole.checked_mul(unit_nanos).ok_or_else(overflow)?;
        // Fractions are truncated to whole nanoseconds, as Go does.
        let mut scale = unit_nanos;
        for d in frac_part.bytes() {
            if scale < 10 {
                break;
            }
            scale /= 10;
            nanos += u128::from(d - b'0') * scale;
        }
        total = total.checked_add(nanos).ok_or_else(overflow)?;
        rest = after;
    }
    // Go's Duration is an int64 of nanoseconds.
    if total > i64::MAX as u128 {
        return Err(DurationError::Overflow {
            value: value.to_owned(),
        });
    }
    Ok(Duration::from_nanos(total as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_examples() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(
            parse_duration("2h45m30.5s").unwrap(),
            Duration::from_millis(9_930_500)
        );
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("10us").unwrap(), Duration::from_micros(10));
        assert_eq!(parse_duration("10µs").unwrap(), Duration::from_micros(10));
        assert_eq!(parse_duration(".5m").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("+5s").unwrap(), Duration::from_secs(5));
    }

    #[test]
    fn rejects_bad_durations() {
        for bad in [
            "",
            "1",
            "s",
            "1.5",
            "1d",
            "1h 30m",
            "-1s",
            ".s",
            "1x",
            "9999999999999h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(
            parse_duration("1d").unwrap_err(),
            DurationError::Unit {
                value: "1d".into(),
                unit: "d".into()
            }
        );
    }
}
