//! The captured traffic of a monitoring window, read: every capture record below the input
//! directory whose time lies in the window, its request rows tallied per model feature and its
//! response's scores tallied beside them ([`ValueTally`], binned with the baseline's edges).
//!
//! Feature values are rounded to `f32` before they are tallied, as `train` stores them: the
//! baseline's edges and range are `f32` values, and a captured `0.1` must fall in the bin its
//! training twin fell in (an `f64` value a hair above an `f32` edge would land one bin up, shifting
//! whole spikes of tied values). Scores are compared as the `f64`s they are on both sides.
//!
//! A record whose request cannot be read is counted, with its reason, and contributes nothing (the
//! server refused it too); one whose response holds no matching scores still counts its rows.

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use contract::drift::CaptureCounts;

use super::capture::{self, CaptureRecord, Location};
use super::request::{FeatureColumns, InputFormat};
use super::response;
use super::tally::ValueTally;
use super::window::Window;
use crate::baseline::Baseline;

/// How many unreadable records are kept as examples for the report.
pub const MAX_EXAMPLES: usize = 10;

/// The traffic of one window.
#[derive(Debug)]
pub struct Traffic<'b> {
    /// In the baseline's (the model's) feature order.
    pub features: Vec<ValueTally<'b>>,
    pub score: ValueTally<'b>,
    pub counts: CaptureCounts,
    /// The first [`MAX_EXAMPLES`] problems, in reading order.
    pub problems: Vec<Problem>,
}

/// A record that was not (fully) read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Relative to the input directory.
    pub file: PathBuf,
    pub line: usize,
    /// What was skipped: the whole record, or only its scores.
    pub skipped: Skipped,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Skipped {
    Record,
    Scores,
}

/// Reads every capture record below `dir` that lies in `window`.
pub fn read<'b>(
    dir: &Path,
    baseline: &'b Baseline,
    window: &Window,
) -> Result<Traffic<'b>, (PathBuf, std::io::Error)> {
    let names: Vec<String> = baseline.features.iter().map(|f| f.name.clone()).collect();
    let columns = FeatureColumns::new(&names);
    let mut traffic = Traffic::new(baseline);
    let files = capture::read_records(dir, |location, record| {
        traffic.counts.records += 1;
        let outcome = match record {
            Ok(record) => traffic.add(&columns, window, record),
            Err(reason) => Err((Skipped::Record, reason)),
        };
        if let Err((skipped, reason)) = outcome {
            traffic.note(location, skipped, reason);
        }
    })?;
    traffic.counts.files = files;
    Ok(traffic)
}

impl<'b> Traffic<'b> {
    /// No traffic yet, tallied against `baseline`.
    pub fn new(baseline: &'b Baseline) -> Self {
        Traffic {
            features: baseline
                .features
                .iter()
                .map(|f| ValueTally::new(f.distribution.as_ref()))
                .collect(),
            // A baseline without held-out scores has a placeholder score distribution: nothing
            // to compare scores with.
            score: ValueTally::new((baseline.scored_rows > 0).then_some(&baseline.score)),
            counts: CaptureCounts::default(),
            problems: Vec::new(),
        }
    }

    /// Tallies a record in the window; a record outside it is only counted.
    fn add(
        &mut self,
        columns: &FeatureColumns,
        window: &Window,
        record: CaptureRecord,
    ) -> Result<(), (Skipped, String)> {
        let unreadable = |reason: String| (Skipped::Record, reason);
        if !window.is_unbounded() {
            let time = record.inference_time.ok_or_else(|| {
                unreadable("no eventMetadata.inferenceTime to place the record in the window".to_owned())
            })?;
            if !window.contains(time) {
                self.counts.outside_window += 1;
                return Ok(());
            }
        }
        let input = record
            .input
            .ok_or_else(|| unreadable("no endpointInput".to_owned()))?;
        let content_type = input.content_type.as_deref().unwrap_or("");
        let format = InputFormat::from_content_type(content_type).ok_or_else(|| {
            unreadable(format!(
                "endpointInput: content type {content_type:?} is not one serve reads"
            ))
        })?;
        let rows = columns
            .read(format, &input.data)
            .map_err(|reason| unreadable(format!("endpointInput: {reason}")))?;
        let width = self.features.len();
        for row in rows.values.chunks_exact(width) {
            for (tally, &value) in self.features.iter_mut().zip(row) {
                // As `train` stores it (the module header says why).
                tally.add(f64::from(value as f32));
            }
        }
        self.counts.rows += rows.count as u64;

        let scores = match &record.output {
            None => Err("no endpointOutput".to_owned()),
            Some(output) => response::scores(output.content_type.as_deref(), &output.data)
                .map_err(|reason| format!("endpointOutput: {reason}")),
        }
        .and_then(|scores| {
            if scores.len() == rows.count {
                Ok(scores)
            } else {
                Err(format!(
                    "endpointOutput: {} scores for {} request rows",
                    scores.len(),
                    rows.count
                ))
            }
        });
        match scores {
            Ok(scores) => {
                for score in scores {
                    self.score.add(score);
                }
                self.counts.scored_rows += rows.count as u64;
                Ok(())
            }
            Err(reason) => {
                self.counts.records_without_scores += 1;
                Err((Skipped::Scores, reason))
            }
        }
    }

    fn note(&mut self, location: &Location, skipped: Skipped, reason: String) {
        if skipped == Skipped::Record {
            self.counts.unreadable_records += 1;
        }
        if self.problems.len() < MAX_EXAMPLES {
            self.problems.push(Problem {
                file: location.file.clone(),
                line: location.line,
                skipped,
                reason,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;
    use crate::monitor::window::Timestamp;

    /// A baseline of `x` (0.1 steps, as f32, so its edges are f32 values) and `n` (0..100).
    fn baseline() -> Baseline {
        let features = vec!["x".to_string(), "n".to_string()];
        let values: Vec<f32> = (0..1000)
            .flat_map(|i| [i as f32 * 0.1, (i % 100) as f32])
            .collect();
        crate::baseline::compute(&features, &values, &[0.1, 0.5, 0.9])
    }

    fn payload(content_type: &str, encoding: &str, data: &str) -> serde_json::Value {
        let data = if encoding == "BASE64" {
            base64::engine::general_purpose::STANDARD.encode(data)
        } else {
            data.to_owned()
        };
        serde_json::json!({"observedContentType": content_type, "mode": "INPUT", "data": data, "encoding": encoding})
    }

    fn record(input: serde_json::Value, output: Option<serde_json::Value>, time: &str) -> String {
        let mut capture = serde_json::json!({ "endpointInput": input });
        if let Some(output) = output {
            capture["endpointOutput"] = output;
        }
        serde_json::json!({
            "captureData": capture,
            "eventMetadata": {"eventId": "e", "inferenceTime": time},
            "eventVersion": "0"
        })
        .to_string()
    }

    const IN_WINDOW: &str = "2026-12-04T01:30:00Z";

    fn write_captures(dir: &Path, lines: &[String]) {
        let hour = dir.join("iot-anomaly/AllTraffic/2026/12/04/01");
        std::fs::create_dir_all(&hour).unwrap();
        std::fs::write(hour.join("capture.jsonl"), lines.join("\n")).unwrap();
    }

    #[test]
    fn every_format_and_encoding_serve_speaks_is_tallied_and_bad_records_are_counted() {
        let json = |scores: &[f64]| {
            let predictions: Vec<_> = scores
                .iter()
                .map(|s| serde_json::json!({"label": "Normal", "score": s}))
                .collect();
            serde_json::json!({ "predictions": predictions }).to_string()
        };
        let lines = [
            // CSV with a header (extra columns ignored), JSON answer.
            record(
                payload("text/csv", "CSV", "Label,n,x\nNormal,1,0.5\nAnomaly,2,1.5\n"),
                Some(payload("application/json", "JSON", &json(&[0.1, 0.2]))),
                IN_WINDOW,
            ),
            // CSV without a header, CSV answer.
            record(
                payload("text/csv", "CSV", "2.5,3\n"),
                Some(payload("text/csv", "CSV", "Normal,0.3\n")),
                IN_WINDOW,
            ),
            // JSON Lines and its answer, base64 as SageMaker captures types outside its text lists.
            record(
                payload(
                    "application/jsonlines",
                    "BASE64",
                    "{\"x\": 3.5, \"n\": 4}\n[4.5, null]\n",
                ),
                Some(payload(
                    "application/jsonlines",
                    "BASE64",
                    "{\"label\":\"Normal\",\"score\":0.4}\n{\"label\":\"Anomaly\",\"score\":0.5}\n",
                )),
                IN_WINDOW,
            ),
            // JSON instances; the answer has one score too few: rows count, scores do not.
            record(
                payload(
                    "application/json",
                    "JSON",
                    r#"{"instances": [[5.5, 6], [6.5, 7]]}"#,
                ),
                Some(payload("application/json", "JSON", &json(&[0.6]))),
                IN_WINDOW,
            ),
            // Not JSON at all.
            "{\"captureData\": trunc".to_owned(),
            // A body serve refused, and its error answer.
            record(
                payload("text/csv", "CSV", "1,2,3\n"),
                Some(payload(
                    "application/json",
                    "JSON",
                    r#"{"error":"row 1 has 3 fields"}"#,
                )),
                IN_WINDOW,
            ),
            // A content type serve does not read.
            record(
                payload("application/x-npy", "BASE64", "\u{93}NUMPY"),
                None,
                IN_WINDOW,
            ),
            // No answer captured (input-only capture).
            record(payload("text/csv", "CSV", "7.5,8\n"), None, IN_WINDOW),
        ];
        let dir = tempfile::tempdir().unwrap();
        write_captures(dir.path(), &lines);
        let baseline = baseline();
        let traffic = read(dir.path(), &baseline, &Window::default()).unwrap();
        assert_eq!(
            traffic.counts,
            CaptureCounts {
                files: 1,
                records: 8,
                unreadable_records: 3,
                outside_window: 0,
                records_without_scores: 2,
                rows: 8,
                scored_rows: 5,
            }
        );
        let x = &traffic.features[0];
        assert_eq!((x.present, x.missing), (8, 0));
        assert_eq!(x.sum, 0.5 + 1.5 + 2.5 + 3.5 + 4.5 + 5.5 + 6.5 + 7.5);
        let n = &traffic.features[1];
        assert_eq!((n.present, n.missing), (7, 1), "JSON null is missing");
        assert_eq!(traffic.score.sum, 0.1 + 0.2 + 0.3 + 0.4 + 0.5);
        let reasons: Vec<(usize, Skipped, &str)> = traffic
            .problems
            .iter()
            .map(|p| (p.line, p.skipped, p.reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 5, "{reasons:#?}");
        assert!(
            reasons[0].2.contains("1 scores for 2 request rows"),
            "{reasons:#?}"
        );
        assert_eq!((reasons[1].0, reasons[1].1), (5, Skipped::Record));
        assert!(reasons[1].2.contains("not a SageMaker capture record"));
        assert!(
            reasons[2]
                .2
                .contains("row 1 has 3 fields; a row without a header must have 2")
        );
        assert!(
            reasons[3]
                .2
                .contains("\"application/x-npy\" is not one serve reads")
        );
        assert_eq!(
            (reasons[4].1, reasons[4].2),
            (Skipped::Scores, "no endpointOutput")
        );
        assert!(traffic.problems.iter().all(|p| p.file.starts_with("iot-anomaly")));
    }

    #[test]
    fn values_are_binned_as_train_stored_them_in_f32() {
        // Half the training values are 0.7 (as f32: 0.69999998...), half 1.4: one edge, at f32 0.7.
        let features = vec!["x".to_string(), "n".to_string()];
        let values: Vec<f32> = (0..1000)
            .flat_map(|i| [if i < 500 { 0.7 } else { 1.4 }, 1.0])
            .collect();
        let baseline = crate::baseline::compute(&features, &values, &[0.5]);
        let x = baseline.features[0].distribution.as_ref().unwrap();
        assert_eq!(x.edges, [f64::from(0.7f32)]);
        assert!(0.7 > x.edges[0], "the f64 a client sends lies above the f32 edge");
        let dir = tempfile::tempdir().unwrap();
        write_captures(
            dir.path(),
            &[record(
                payload("text/csv", "CSV", "0.7,1\n1.4,1\n"),
                None,
                IN_WINDOW,
            )],
        );
        let traffic = read(dir.path(), &baseline, &Window::default()).unwrap();
        assert_eq!(
            traffic.features[0].bin_counts,
            [1, 1],
            "0.7 falls in the bin its training twin fell in"
        );
        assert_eq!(
            traffic.features[0].out_of_range, 0,
            "and 1.4 is not above the f32 maximum"
        );
    }

    #[test]
    fn only_records_of_the_window_count() {
        let baseline = baseline();
        let row = |time: &str| record(payload("text/csv", "CSV", "1.5,2\n"), None, time);
        let mut untimed = row(IN_WINDOW);
        untimed = untimed.replace(IN_WINDOW, "");
        let dir = tempfile::tempdir().unwrap();
        write_captures(
            dir.path(),
            &[
                row("2026-12-04T00:59:59.999Z"),
                row("2026-12-04T01:00:00Z"),
                row(IN_WINDOW),
                row("2026-12-04T02:00:00Z"),
                untimed,
            ],
        );
        let window = Window {
            start: Some(Timestamp::parse("2026-12-04T01:00:00Z").unwrap()),
            end: Some(Timestamp::parse("2026-12-04T02:00:00Z").unwrap()),
        };
        let traffic = read(dir.path(), &baseline, &window).unwrap();
        assert_eq!(
            (
                traffic.counts.rows,
                traffic.counts.outside_window,
                traffic.counts.unreadable_records
            ),
            (2, 2, 1)
        );
        assert!(
            traffic
                .problems
                .iter()
                .any(|p| p.skipped == Skipped::Record && p.reason.contains("inferenceTime")),
            "{:?}",
            traffic.problems
        );
        // Without a window every record with a readable request counts.
        let traffic = read(dir.path(), &baseline, &Window::default()).unwrap();
        assert_eq!(traffic.counts.rows, 5);
    }

    #[test]
    fn an_unreadable_directory_is_an_error() {
        let baseline = baseline();
        let missing = std::env::temp_dir().join("model-image-monitor-no-such-dir");
        let (path, _) = read(&missing, &baseline, &Window::default()).unwrap_err();
        assert_eq!(path, missing);
    }
}
