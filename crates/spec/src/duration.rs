//! Durations as deploy.yaml writes them: `90s`, `30m`, `1h`, `1h30m`, `2d`.
//!
//! The grammar is deliberately small: one or more `<whole number><unit>` parts with the units `d`,
//! `h`, `m`, `s`, each at most once and from largest to smallest, no spaces. Common other spellings
//! (`30min`, `1 hour`, `1.5h`) are rejected with the exact replacement as a hint.

use std::time::Duration;

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("the duration is empty")]
    Empty,
    #[error("`{0}` has no unit")]
    MissingUnit(String),
    #[error("unknown unit `{unit}` in `{text}`")]
    UnknownUnit { text: String, unit: String },
    #[error("`{0}` is not a duration")]
    Malformed(String),
    #[error("`{0}` has a fraction; durations are whole numbers of units")]
    Fraction(String),
    #[error("`{0}` repeats a unit or lists units out of order (largest first: d, h, m, s)")]
    Order(String),
    #[error("`{0}` is too long")]
    Overflow(String),
}

const UNITS: [(char, u64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

impl DurationError {
    /// How to write it instead (a corrected duration when one can be worked out).
    pub fn hint(&self) -> String {
        let fixed = match self {
            DurationError::MissingUnit(t) => {
                return format!("add a unit: `{t}s`, `{t}m` or `{t}h`");
            }
            DurationError::UnknownUnit { text, .. } | DurationError::Malformed(text) => respell(text),
            DurationError::Fraction(text) => respell(text),
            DurationError::Order(text) => respell(text),
            DurationError::Empty | DurationError::Overflow(_) => None,
        };
        match fixed {
            Some(f) => format!("write `{f}`"),
            None => "write a duration such as `90s`, `30m`, `1h` or `1h30m` (units d, h, m, s)".into(),
        }
    }
}

/// Parses a deploy.yaml duration.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.trim().is_empty() {
        return Err(DurationError::Empty);
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DurationError::MissingUnit(text.to_string()));
    }
    let mut total: u64 = 0;
    let mut rest = text;
    let mut last_unit = None::<usize>;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(if rest.starts_with('.') {
                DurationError::Fraction(text.to_string())
            } else {
                DurationError::Malformed(text.to_string())
            });
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| DurationError::Overflow(text.into()))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        if unit.is_empty() {
            return Err(match rest.chars().next() {
                Some('.') => DurationError::Fraction(text.to_string()),
                Some(_) => DurationError::Malformed(text.to_string()),
                None => DurationError::MissingUnit(text.to_string()),
            });
        }
        let Some(index) = UNITS
            .iter()
            .position(|(u, _)| unit.len() == 1 && unit.starts_with(*u))
        else {
            return Err(DurationError::UnknownUnit {
                text: text.to_string(),
                unit: unit.to_string(),
            });
        };
        if last_unit.is_some_and(|last| index <= last) {
            return Err(DurationError::Order(text.to_string()));
        }
        last_unit = Some(index);
        let seconds = number
            .checked_mul(UNITS[index].1)
            .ok_or_else(|| DurationError::Overflow(text.into()))?;
        total = total
            .checked_add(seconds)
            .ok_or_else(|| DurationError::Overflow(text.into()))?;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs(total))
}

/// Formats a duration in the same grammar, largest units first: `1h30m`, `90s` → `1m30s`, `0s`.
/// Sub-second parts are dropped.
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in UNITS {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// Reads a loosely written duration (`1 hour 30 min`, `1.5h`, `30m1h`) and writes it in our grammar.
fn respell(text: &str) -> Option<String> {
    let mut total = 0f64;
    let mut rest = text.trim();
    let mut any = false;
    while !rest.is_empty() {
        let num_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = rest[num_len..].trim_start();
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = rest[..unit_len].to_ascii_lowercase();
        let size = match unit.as_str() {
            "d" | "day" | "days" => 86_400.0,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3_600.0,
            "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
            "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
            _ => return None,
        };
        total += number * size;
        any = true;
        rest = rest[unit_len..].trim_start_matches([' ', ',']);
    }
    let secs = total.round();
    (any && (1.0..1e12).contains(&secs)).then(|| format_duration(Duration::from_secs(secs as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> u64 {
        parse_duration(s).unwrap().as_secs()
    }

    #[test]
    fn parses_whole_units_largest_first() {
        assert_eq!(secs("90s"), 90);
        assert_eq!(secs("30m"), 1_800);
        assert_eq!(secs("1h"), 3_600);
        assert_eq!(secs("1h30m"), 5_400);
        assert_eq!(secs("2d"), 172_800);
        assert_eq!(secs("1d2h3m4s"), 93_784);
        assert_eq!(secs("0s"), 0);
    }

    #[test]
    fn rejects_what_it_does_not_understand_with_a_fix() {
        let cases = [
            (
                "",
                "write a duration such as `90s`, `30m`, `1h` or `1h30m` (units d, h, m, s)",
            ),
            ("30", "add a unit: `30s`, `30m` or `30h`"),
            ("30min", "write `30m`"),
            ("1 hour", "write `1h`"),
            ("1.5h", "write `1h30m`"),
            ("30m1h", "write `1h30m`"),
            ("1h1h", "write `2h`"),
            (
                "90ms",
                "write a duration such as `90s`, `30m`, `1h` or `1h30m` (units d, h, m, s)",
            ),
            (
                "-5m",
                "write a duration such as `90s`, `30m`, `1h` or `1h30m` (units d, h, m, s)",
            ),
            (
                "soon",
                "write a duration such as `90s`, `30m`, `1h` or `1h30m` (units d, h, m, s)",
            ),
        ];
        for (text, hint) in cases {
            let err = parse_duration(text).unwrap_err();
            assert_eq!(err.hint(), hint, "{text}: {err}");
        }
        assert!(matches!(
            parse_duration("99999999999999999999d"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse_duration("999999999999999999d"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn formats_round_trip() {
        for s in ["45s", "30m", "1h", "1h30m", "2d", "1d2h3m4s", "28d"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }
}
