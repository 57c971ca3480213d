//! SageMaker data capture files: every `*.jsonl` file below a directory (Model Monitor lays them
//! out as `<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl`), one record per line holding what a client
//! sent and what the endpoint answered (`captureData.endpointInput` and `endpointOutput`: the
//! observed content type, the `data`, and its `encoding`: `CSV` or `JSON` for text SageMaker
//! stored as it came, `BASE64` for every other content type) and when (`eventMetadata.inferenceTime`).
//!
//! A line that is not such a record is reported to the caller with its reason, never fatal: a
//! monitoring run must not fail on one bad line. Only a directory or file that cannot be read is an
//! error.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

use super::window::Timestamp;

/// What capture files are named.
pub const CAPTURE_EXTENSION: &str = "jsonl";

/// One payload of a record, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    /// The `Content-Type` SageMaker observed, e.g. `text/csv`.
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

/// One capture record.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureRecord {
    pub input: Option<Payload>,
    pub output: Option<Payload>,
    /// `eventMetadata.inferenceTime`; `None` when absent or not a timestamp.
    pub inference_time: Option<Timestamp>,
}

/// Where a record was read: its file (relative to the capture directory) and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
}

// The wire format. Unknown fields are ignored, unlike in our own files: SageMaker adds fields to
// capture records (`inferenceId`, `customAttributes`, ...) and a monitor must keep reading them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRecord {
    capture_data: WireCaptureData,
    #[serde(default)]
    event_metadata: Option<WireEventMetadata>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCaptureData {
    #[serde(default)]
    endpoint_input: Option<WirePayload>,
    #[serde(default)]
    endpoint_output: Option<WirePayload>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePayload {
    #[serde(default)]
    observed_content_type: Option<String>,
    data: String,
    encoding: Encoding,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireEventMetadata {
    #[serde(default)]
    inference_time: Option<String>,
}

/// How `data` holds the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum Encoding {
    #[serde(rename = "CSV")]
    Csv,
    #[serde(rename = "JSON")]
    Json,
    #[serde(rename = "BASE64")]
    Base64,
}

impl WirePayload {
    fn decode(self, which: &str) -> Result<Payload, String> {
        let data = match self.encoding {
            Encoding::Csv | Encoding::Json => self.data.into_bytes(),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(self.data.trim())
                .map_err(|e| format!("{which}.data is not valid base64: {e}"))?,
        };
        Ok(Payload {
            content_type: self.observed_content_type,
            data,
        })
    }
}

/// One line of a capture file as a record, or why it is not one.
pub fn parse_line(line: &[u8]) -> Result<CaptureRecord, String> {
    let record: WireRecord =
        serde_json::from_slice(line).map_err(|e| format!("not a SageMaker capture record: {e}"))?;
    let inference_time = record
        .event_metadata
        .and_then(|m| m.inference_time)
        .and_then(|time| Timestamp::parse(&time).ok());
    let data = record.capture_data;
    Ok(CaptureRecord {
        input: data
            .endpoint_input
            .map(|p| p.decode("endpointInput"))
            .transpose()?,
        output: data
            .endpoint_output
            .map(|p| p.decode("endpointOutput"))
            .transpose()?,
        inference_time,
    })
}

/// The capture files below `dir`, recursively, in path order.
pub fn capture_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current)? {
            let entry = entry?;
            let path = entry.path();
            // Directories are entered only when they are not symlinks, so a link loop cannot trap
            // the walk; linked files are read.
            if entry.file_type()?.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == CAPTURE_EXTENSION) && path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Reads every record below `dir`, calling `visit` with each non-blank line's record or the reason
/// it is not one; returns the number of files read.
pub fn read_records(
    dir: &Path,
    mut visit: impl FnMut(&Location, Result<CaptureRecord, String>),
) -> Result<usize, (PathBuf, std::io::Error)> {
    let files = capture_files(dir).map_err(|e| (dir.to_path_buf(), e))?;
    let mut line = Vec::new();
    for path in &files {
        let file = std::fs::File::open(path).map_err(|e| (path.clone(), e))?;
        let mut reader = std::io::BufReader::new(file);
        let relative = path.strip_prefix(dir).unwrap_or(path).to_path_buf();
        let mut number = 0;
        loop {
            line.clear();
            if reader
                .read_until(b'\n', &mut line)
                .map_err(|e| (path.clone(), e))?
                == 0
            {
                break;
            }
            number += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let location = Location {
                file: relative.clone(),
                line: number,
            };
            visit(&location, parse_line(&line));
        }
    }
    Ok(files.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(input: (&str, &str, &str), output: Option<(&str, &str, &str)>) -> String {
        let payload = |(content_type, encoding, data): (&str, &str, &str)| {
            serde_json::json!({
                "observedContentType": content_type, "mode": "INPUT", "data": data, "encoding": encoding
            })
        };
        let mut capture = serde_json::json!({ "endpointInput": payload(input) });
        if let Some(output) = output {
            capture["endpointOutput"] = payload(output);
        }
        serde_json::json!({
            "captureData": capture,
            "eventMetadata": {"eventId": "a6f5c1e0-1b2c-4d5e-8f90-123456789abc", "inferenceTime": "2026-12-04T01:02:03Z"},
            "eventVersion": "0"
        })
        .to_string()
    }

    #[test]
    fn each_encoding_gives_the_payload_as_sent() {
        let csv = parse_line(
            record(
                ("text/csv", "CSV", "1,2\n3,4\n"),
                Some(("application/json", "JSON", r#"{"predictions":[]}"#)),
            )
            .as_bytes(),
        )
        .unwrap();
        let input = csv.input.unwrap();
        assert_eq!(input.content_type.as_deref(), Some("text/csv"));
        assert_eq!(input.data, b"1,2\n3,4\n");
        assert_eq!(csv.output.unwrap().data, br#"{"predictions":[]}"#);
        assert_eq!(
            csv.inference_time,
            Some(Timestamp::parse("2026-12-04T01:02:03Z").unwrap())
        );

        let encoded = base64::engine::general_purpose::STANDARD.encode(b"{\"a\":1}\n{\"a\":2}\n");
        let jsonl =
            parse_line(record(("application/jsonlines", "BASE64", &encoded), None).as_bytes()).unwrap();
        assert_eq!(jsonl.input.unwrap().data, b"{\"a\":1}\n{\"a\":2}\n");
        assert_eq!(jsonl.output, None);
    }

    #[test]
    fn a_line_that_is_not_a_record_says_why() {
        for (line, reason) in [
            ("not json", "not a SageMaker capture record"),
            (r#"{"eventVersion":"0"}"#, "captureData"),
            (
                &record(("text/csv", "GZIP", "x"), None) as &str,
                "unknown variant",
            ),
            (
                &record(("text/csv", "BASE64", "***"), None),
                "endpointInput.data is not valid base64",
            ),
        ] {
            let error = parse_line(line.as_bytes()).unwrap_err();
            assert!(error.contains(reason), "{line}: {error}");
        }
    }

    #[test]
    fn an_unreadable_inference_time_is_no_time_not_a_bad_record() {
        let line = record(("text/csv", "CSV", "1"), None).replace("2026-12-04T01:02:03Z", "soon");
        assert_eq!(parse_line(line.as_bytes()).unwrap().inference_time, None);
    }

    #[test]
    fn reads_every_jsonl_file_below_the_directory_in_order_and_reports_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let hour = dir.path().join("endpoint/AllTraffic/2026/12/04/01");
        std::fs::create_dir_all(&hour).unwrap();
        let good = record(("text/csv", "CSV", "1"), None);
        std::fs::write(hour.join("b.jsonl"), format!("{good}\n\n{{oops\n{good}")).unwrap();
        std::fs::write(hour.join("a.jsonl"), format!("{good}\n")).unwrap();
        std::fs::write(hour.join("notes.txt"), "not a capture file").unwrap();
        let mut seen = Vec::new();
        let files = read_records(dir.path(), |location, record| {
            seen.push((
                location.file.file_name().unwrap().to_string_lossy().into_owned(),
                location.line,
                record.is_ok(),
            ));
        })
        .unwrap();
        assert_eq!(files, 2);
        assert_eq!(
            seen,
            [
                ("a.jsonl".to_string(), 1, true),
                ("b.jsonl".to_string(), 1, true),
                ("b.jsonl".to_string(), 3, false),
                ("b.jsonl".to_string(), 4, true),
            ]
        );
        assert!(read_records(&dir.path().join("missing"), |_, _| {}).is_err());
    }
}
