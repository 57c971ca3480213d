//! The monitoring window. Model Monitor gives each execution the period it covers as `start_time`
//! and `end_time` (RFC 3339) and warns that `dataset_source` may hold captures from outside it
//! (capture files are grouped by the hour they were written in), so a record counts only when its
//! `eventMetadata.inferenceTime` lies in `[start, end)`: consecutive windows never count a record
//! twice. Timestamps are read here (date, `T`, time, optional fraction, `Z` or an offset), and
//! broken into UTC calendar fields for `serve`'s data capture, which writes these times and files
//! them by hour; two fields a run did not justify a date-time dependency.

use std::fmt;
use std::str::FromStr;

/// A point in time: microseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    micros: i64,
}

const MICROS_PER_SECOND: i64 = 1_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

impl Timestamp {
    /// Reads `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`. Whitespace is ignored anywhere: the Model
    /// Monitor documentation shows `2019-12-01T16: 20: 00Z`. Fractions beyond microseconds are cut.
    pub fn parse(text: &str) -> Result<Timestamp, String> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        parse_compact(&compact)
            .ok_or_else(|| format!("{text:?} is not an RFC 3339 timestamp such as 2026-12-04T01:00:00Z"))
    }

    pub fn from_unix_micros(micros: i64) -> Self {
        Self { micros }
    }

    pub fn unix_micros(self) -> i64 {
        self.micros
    }

    /// A system clock reading (`SystemTime::now()`), to the microsecond.
    pub fn from_system_time(time: std::time::SystemTime) -> Self {
        let micros = match time.duration_since(std::time::UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_micros()).map_or(i64::MIN, |m| -m),
        };
        Self { micros }
    }

    /// The calendar date and time of day in UTC.
    pub fn utc(self) -> UtcDateTime {
        let seconds = self.micros.div_euclid(MICROS_PER_SECOND);
        let (days, second_of_day) = (
            seconds.div_euclid(SECONDS_PER_DAY),
            seconds.rem_euclid(SECONDS_PER_DAY),
        );
        let (year, month, day) = civil_from_days(days);
        UtcDateTime {
            year,
            month,
            day,
            hour: second_of_day / 3600,
            minute: second_of_day / 60 % 60,
            second: second_of_day % 60,
            micros: self.micros.rem_euclid(MICROS_PER_SECOND),
        }
    }

    /// This time without its fraction of a second.
    pub fn whole_seconds(self) -> Self {
        Self {
            micros: self.micros - self.micros.rem_euclid(MICROS_PER_SECOND),
        }
    }
}

/// A [`Timestamp`]'s calendar fields in UTC (proleptic Gregorian; `micros` within the second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcDateTime {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
    pub micros: i64,
}

impl FromStr for Timestamp {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Self::parse(text)
    }
}

/// RFC 3339 in UTC: `2026-12-04T01:02:03Z`, with `.ffffff` when the time has a fraction.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let UtcDateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            micros,
        } = self.utc();
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}"
        )?;
        if micros != 0 {
            write!(f, ".{micros:06}")?;
        }
        f.write_str("Z")
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The period a monitoring run covers; an unset bound is open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Window {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<Timestamp>,
}

impl Window {
    /// No bound: every record counts, whatever its time.
    pub fn is_unbounded(&self) -> bool {
        self.start.is_none() && self.end.is_none()
    }

    /// `start <= time < end`, for the bounds that are set.
    pub fn contains(&self, time: Timestamp) -> bool {
        self.start.is_none_or(|start| start <= time) && self.end.is_none_or(|end| time < end)
    }
}

fn parse_compact(text: &str) -> Option<Timestamp> {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = bytes.get(range)?;
        part.iter().all(u8::is_ascii_digit).then(|| {
            part.iter()
                .fold(0i64, |value, digit| value * 10 + i64::from(digit - b'0'))
        })
    };
    let separator = |at: usize, allowed: &[u8]| bytes.get(at).is_some_and(|b| allowed.contains(b));
    if !(separator(4, b"-")
        && separator(7, b"-")
        && separator(10, b"Tt")
        && separator(13, b":")
        && separator(16, b":"))
    {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    // 60 is a leap second, which RFC 3339 allows.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut fraction_micros = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let length = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if length == 0 {
            return None;
        }
        fraction_micros = fraction[..length]
            .bytes()
            .chain(std::iter::repeat(b'0'))
            .take(6)
            .fold(0i64, |value, digit| value * 10 + i64::from(digit - b'0'));
        rest = &fraction[length..];
    }
    let offset_seconds = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let number = |a: u8, b: u8| {
                (a.is_ascii_digit() && b.is_ascii_digit())
                    .then(|| i64::from(a - b'0') * 10 + i64::from(b - b'0'))
            };
            let (hours, minutes) = (number(*h1, *h2)?, number(*m1, *m2)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = hours * 3600 + minutes * 60;
            if *sign == b'+' { offset } else { -offset }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second
        - offset_seconds;
    Some(Timestamp {
        micros: seconds * MICROS_PER_SECOND + fraction_micros,
    })
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day count since 1970-01-01 (Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    #[test]
    fn reads_capture_times_with_and_without_fractions_and_offsets() {
        assert_eq!(at("1970-01-01T00:00:00Z").unix_micros(), 0);
        assert_eq!(
            at("2026-12-04T01:02:03Z").unix_micros(),
            1_796_346_123 * MICROS_PER_SECOND
        );
        assert_eq!(
            at("2026-12-04T01:02:03.5Z").unix_micros() - at("2026-12-04T01:02:03Z").unix_micros(),
            500_000
        );
        assert_eq!(at("2026-12-04T02:02:03+01:00"), at("2026-12-04T01:02:03Z"));
        assert_eq!(at("2026-12-03T23:32:03-01:30"), at("2026-12-04T01:02:03Z"));
        // The spelling of Model Monitor's documentation.
        assert_eq!(at("2019-12-01T16: 20: 00Z"), at("2019-12-01T16:20:00Z"));
        assert_eq!(at("2024-02-29T12:00:00Z").to_string(), "2024-02-29T12:00:00Z");
        assert_eq!(
            at("2026-12-04T01:02:03.250Z").to_string(),
            "2026-12-04T01:02:03.250000Z"
        );
        assert_eq!(at("1969-12-31T23:59:59Z").unix_micros(), -MICROS_PER_SECOND);
    }

    #[test]
    fn display_round_trips_over_centuries() {
        for text in [
            "1900-03-01T00:00:00Z",
            "2000-02-29T23:59:59Z",
            "2100-12-31T12:34:56Z",
            "1601-01-01T00:00:00Z",
        ] {
            assert_eq!(at(text).to_string(), text);
        }
    }

    #[test]
    fn gives_the_utc_fields_of_a_clock_reading() {
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_796_346_123_456_789);
        let stamp = Timestamp::from_system_time(time);
        assert_eq!(stamp, at("2026-12-04T01:02:03.456789Z"));
        assert_eq!(
            stamp.utc(),
            UtcDateTime {
                year: 2026,
                month: 12,
                day: 4,
                hour: 1,
                minute: 2,
                second: 3,
                micros: 456_789
            }
        );
        assert_eq!(stamp.whole_seconds().to_string(), "2026-12-04T01:02:03Z");
        let before = std::time::UNIX_EPOCH - std::time::Duration::from_micros(1_500_000);
        assert_eq!(
            Timestamp::from_system_time(before).to_string(),
            "1969-12-31T23:59:58.500000Z"
        );
    }

    #[test]
    fn refuses_what_is_not_a_timestamp() {
        for text in [
            "",
            "2026-12-04",
            "2026-12-04 01:02:03Z",
            "2026-12-04T01:02:03",
            "2026-13-04T01:02:03Z",
            "2026-02-29T01:02:03Z",
            "2026-12-04T24:00:00Z",
            "2026-12-04T01:02:03.Z",
            "2026-12-04T01:02:03+0100",
            "yesterday",
        ] {
            assert!(Timestamp::parse(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn a_window_holds_its_start_and_not_its_end() {
        let window = Window {
            start: Some(at("2026-12-04T01:00:00Z")),
            end: Some(at("2026-12-04T02:00:00Z")),
        };
        assert!(window.contains(at("2026-12-04T01:00:00Z")));
        assert!(window.contains(at("2026-12-04T01:59:59.999Z")));
        assert!(!window.contains(at("2026-12-04T02:00:00Z")));
        assert!(!window.contains(at("2026-12-04T00:59:59Z")));
        assert!(!window.is_unbounded());
        let open = Window::default();
        assert!(open.is_unbounded() && open.contains(at("1970-01-01T00:00:00Z")));
    }
}
