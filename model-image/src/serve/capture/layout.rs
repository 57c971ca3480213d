//! Where SageMaker data capture files go below the variant's folder: one folder per UTC hour of the
//! inference, `yyyy/mm/dd/hh/`, holding files named after the time of their first record and a random
//! UUID, `<mm>-<ss>-<mmm>-<uuid>.jsonl` (minute, second, millisecond), e.g.
//! `AllTraffic/2026/12/04/01/02-03-456-8f45e35c-fa44-40d2-8ed3-1bcab3a596f3.jsonl`.

use std::path::{Path, PathBuf};

use crate::monitor::capture::CAPTURE_EXTENSION;
use crate::monitor::window::Timestamp;

/// A UTC hour: the folder of every record timed in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Hour {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
}

impl Hour {
    /// The hour `time` falls in.
    pub(super) fn of(time: Timestamp) -> Self {
        let utc = time.utc();
        Self {
            year: utc.year,
            month: utc.month,
            day: utc.day,
            hour: utc.hour,
        }
    }

    /// `dir/yyyy/mm/dd/hh`.
    pub(super) fn folder(self, dir: &Path) -> PathBuf {
        dir.join(format!("{:04}", self.year))
            .join(format!("{:02}", self.month))
            .join(format!("{:02}", self.day))
            .join(format!("{:02}", self.hour))
    }
}

/// The name of a file whose first record is timed `time`: `<mm>-<ss>-<mmm>-<uuid>.jsonl`.
pub(super) fn file_name(time: Timestamp, uuid: &str) -> String {
    let utc = time.utc();
    format!(
        "{:02}-{:02}-{:03}-{uuid}.{CAPTURE_EXTENSION}",
        utc.minute,
        utc.second,
        utc.micros / 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        Timestamp::parse(text).unwrap()
    }

    #[test]
    fn files_go_in_the_folder_of_their_utc_hour() {
        let dir = Path::new("bucket/capture/iot/AllTraffic");
        assert_eq!(
            Hour::of(at("2026-12-04T01:02:03.456Z")).folder(dir),
            Path::new("bucket/capture/iot/AllTraffic/2026/12/04/01")
        );
        assert_eq!(
            Hour::of(at("2026-12-04T01:30:00+02:00")).folder(dir),
            dir.join("2026/12/03/23")
        );
        assert_eq!(
            Hour::of(at("2026-12-04T01:00:00Z")),
            Hour::of(at("2026-12-04T01:59:59.999Z"))
        );
        assert_ne!(
            Hour::of(at("2026-12-04T01:59:59.999Z")),
            Hour::of(at("2026-12-04T02:00:00Z"))
        );
    }

    #[test]
    fn a_file_is_named_after_its_first_record_to_the_millisecond() {
        let uuid = "8f45e35c-fa44-40d2-8ed3-1bcab3a596f3";
        assert_eq!(
            file_name(at("2026-12-04T01:02:03.456789Z"), uuid),
            "02-03-456-8f45e35c-fa44-40d2-8ed3-1bcab3a596f3.jsonl"
        );
        assert_eq!(
            file_name(at("2026-12-04T01:00:00Z"), uuid),
            "00-00-000-8f45e35c-fa44-40d2-8ed3-1bcab3a596f3.jsonl"
        );
    }
}
