//! Responses of the inference server: the JSON error body every failure answers with, content
//! negotiation on `Accept`, and the prediction writer (JSON, CSV, JSON Lines), which writes an answer
//! into one buffer, or chunk by chunk into the temporary file a spooled answer is sent from. Label
//! texts are escaped once when the router is built, so writing a prediction is a few buffer appends.

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A request that cannot be answered with predictions. Serialized as
/// `{"error": "<sentence>", "row": n?, "column": "name"?}`: `row` is the 1-based data row (header
/// excluded) and `column` the column or model feature, each present only when the error is about one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ServeError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    pub(crate) row: Option<usize>,
    pub(crate) column: Option<String>,
    /// Sent as `Retry-After` (503 when the server is full).
    pub(crate) retry_after_seconds: Option<u32>,
}

impl ServeError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            row: None,
            column: None,
            retry_after_seconds: None,
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    pub(crate) fn at_row(mut self, row: usize) -> Self {
        self.row = Some(row);
        self
    }

    pub(crate) fn in_column(mut self, column: &str) -> Self {
        self.column = Some(column.to_owned());
        self
    }

    pub(crate) fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after_seconds = Some(seconds);
        self
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    row: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    column: Option<&'a str>,
}

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, error = %self.message, "request failed");
        } else {
            tracing::debug!(status = %self.status, error = %self.message, row = ?self.row, column = ?self.column, "request rejected");
        }
        let body = ErrorBody {
            error: &self.message,
            row: self.row,
            column: self.column.as_deref(),
        };
        // Serializing a struct of strings and integers cannot fail; fall back to a fixed body anyway.
        let bytes =
            serde_json::to_vec(&body).unwrap_or_else(|_| br#"{"error":"the request failed"}"#.to_vec());
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(JSON))],
            bytes,
        )
            .into_response();
        if let Some(seconds) = self.retry_after_seconds {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

const JSON: &str = "application/json";
const CSV: &str = "text/csv";
const JSON_LINES: &str = "application/jsonlines";
const X_JSON_LINES: &str = "application/x-jsonlines";

/// How predictions are written, chosen from the request's `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputFormat {
    /// `{"predictions": [{"label": .., "score": ..}, ..]}`
    Json,
    /// One `label,score` line per row, no header.
    Csv,
    /// One `{"label": .., "score": ..}` per line; the content type echoes the one asked for.
    JsonLines(&'static str),
}

impl OutputFormat {
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Self::Json => JSON,
            Self::Csv => CSV,
            Self::JsonLines(content_type) => content_type,
        }
    }

    /// Picks the format for an `Accept` header: a missing or empty header, `*/*` and `application/*`
    /// mean JSON, `text/*` means CSV; among several media ranges the highest `q` wins (the first on
    /// ties) and `q=0` excludes a range. Nothing acceptable -> 406.
    pub(crate) fn negotiate(accept: Option<&HeaderValue>) -> Result<Self, ServeError> {
        let Some(accept) = accept else {
            return Ok(Self::Json);
        };
        let not_acceptable = || {
            ServeError::new(
                StatusCode::NOT_ACCEPTABLE,
                format!(
                    "Accept {:?} is not supported: ask for application/json, text/csv or \
                     application/jsonlines",
                    String::from_utf8_lossy(accept.as_bytes())
                ),
            )
        };
        let text = accept.to_str().map_err(|_| not_acceptable())?;
        if text.trim().is_empty() {
            return Ok(Self::Json);
        }
        let mut best: Option<(f32, Self)> = None;
        for range in text.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim();
            let format = if media.eq_ignore_ascii_case(JSON)
                || media == "*/*"
                || media.eq_ignore_ascii_case("application/*")
            {
                Self::Json
            } else if media.eq_ignore_ascii_case(CSV) || media.eq_ignore_ascii_case("text/*") {
                Self::Csv
            } else if media.eq_ignore_ascii_case(JSON_LINES) {
                Self::JsonLines(JSON_LINES)
            } else if media.eq_ignore_ascii_case(X_JSON_LINES) {
                Self::JsonLines(X_JSON_LINES)
            } else {
                continue;
            };
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, v)| v.trim().parse::<f32>().ok());
            let Some(q) = q.filter(|q| *q > 0.0) else {
                continue;
            };
            if best.is_none_or(|(best_q, _)| q > best_q) {
                best = Some((q, format));
            }
        }
        best.map(|(_, format)| format).ok_or_else(not_acceptable)
    }
}

/// The label texts, pre-escaped for each output format.
#[derive(Debug)]
pub(crate) struct Labels {
    /// `{"label":"<positive>","score":`
    json_positive: Box<[u8]>,
    json_negative: Box<[u8]>,
    /// `<positive>,` (CSV-quoted when needed)
    csv_positive: Box<[u8]>,
    csv_negative: Box<[u8]>,
}

impl Labels {
    pub(crate) fn new(positive: &str, negative: &str) -> Self {
        Self {
            json_positive: json_prefix(positive),
            json_negative: json_prefix(negative),
            csv_positive: csv_prefix(positive),
            csv_negative: csv_prefix(negative),
        }
    }
}

fn json_prefix(label: &str) -> Box<[u8]> {
    let mut out = br#"{"label":"#.to_vec();
    // A string always serializes.
    out.extend(serde_json::to_vec(label).unwrap_or_else(|_| b"\"\"".to_vec()));
    out.extend_from_slice(br#","score":"#);
    out.into_boxed_slice()
}

fn csv_prefix(label: &str) -> Box<[u8]> {
    let needs_quotes = label.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'));
    let mut out = if needs_quotes {
        format!("\"{}\"", label.replace('"', "\"\""))
    } else {
        label.to_owned()
    };
    out.push(',');
    out.into_bytes().into_boxed_slice()
}

/// Writes one prediction per score (label = positive when `score >= threshold`) into a buffer
/// sized up front: the answer's body ([`predictions_response`]). A non-finite score is a model
/// fault -> 500.
pub(crate) fn predictions(
    format: OutputFormat,
    labels: &Labels,
    threshold: f64,
    scores: &[f64],
) -> Result<Bytes, ServeError> {
    let longest_label = labels.json_positive.len().max(labels.json_negative.len());
    let mut out = Vec::with_capacity(32 + scores.len() * (longest_label + 28));
    let mut writer = PredictionWriter::new(format, labels, threshold);
    writer.begin(&mut out);
    writer.write(&mut out, scores)?;
    writer.end(&mut out);
    Ok(Bytes::from(out))
}

/// The answer of [`predictions`] in `format`.
pub(crate) fn predictions_response(format: OutputFormat, body: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        )],
        body,
    )
        .into_response()
}

/// Bytes of a spooled answer read from its file at once, and so the largest frame sent.
const FILE_CHUNK: usize = 256 * 1024;

/// The answer [`PredictionWriter`] wrote into `file` (`len` bytes, positioned at its start), sent a
/// chunk at a time with its `Content-Length`. The file is closed (and, being unlinked, gone) when
/// the body has been sent or dropped.
pub(crate) fn predictions_from_file(format: OutputFormat, file: std::fs::File, len: u64) -> Response {
    let chunks = tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::from_std(file), FILE_CHUNK);
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from(len)),
        ],
        axum::body::Body::from_stream(chunks),
    )
        .into_response()
}

/// Writes the predictions of one answer a chunk of scores at a time: [`Self::begin`], then
/// [`Self::write`] for each chunk in row order, then [`Self::end`]. The in-memory answer and the
/// spooled one are both written by it, so the same rows give the same bytes.
pub(crate) struct PredictionWriter<'l> {
    format: OutputFormat,
    labels: &'l Labels,
    threshold: f64,
    /// Predictions written so far.
    rows: usize,
}

impl<'l> PredictionWriter<'l> {
    pub(crate) fn new(format: OutputFormat, labels: &'l Labels, threshold: f64) -> Self {
        Self {
            format,
            labels,
            threshold,
            rows: 0,
        }
    }

    /// What comes before the first prediction.
    pub(crate) fn begin(&self, out: &mut Vec<u8>) {
        if self.format == OutputFormat::Json {
            out.extend_from_slice(br#"{"predictions":["#);
        }
    }

    /// Appends the predictions of the next `scores`. A non-finite score is a model fault -> 500
    /// naming its row, and nothing of the chunk is written.
    pub(crate) fn write(&mut self, out: &mut Vec<u8>, scores: &[f64]) -> Result<(), ServeError> {
        if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
            let row = self.rows + i + 1;
            return Err(
                ServeError::internal(format!("the model returned a non-finite score for row {row}"))
                    .at_row(row),
            );
        }
        let (labels, threshold) = (self.labels, self.threshold);
        match self.format {
            OutputFormat::Json => {
                for (i, &score) in scores.iter().enumerate() {
                    if self.rows + i > 0 {
                        out.push(b',');
                    }
                    json_prediction(out, labels, threshold, score);
                }
            }
            OutputFormat::JsonLines(_) => {
                for &score in scores {
                    json_prediction(out, labels, threshold, score);
                    out.push(b'\n');
                }
            }
            OutputFormat::Csv => {
                for &score in scores {
                    let label = if score >= threshold {
                        &labels.csv_positive
                    } else {
                        &labels.csv_negative
                    };
                    out.extend_from_slice(label);
                    write_number(out, score);
                    out.push(b'\n');
                }
            }
        }
        self.rows += scores.len();
        Ok(())
    }

    /// What comes after the last prediction.
    pub(crate) fn end(&self, out: &mut Vec<u8>) {
        if self.format == OutputFormat::Json {
            out.extend_from_slice(b"]}");
        }
    }
}

fn json_prediction(out: &mut Vec<u8>, labels: &Labels, threshold: f64, score: f64) {
    let prefix = if score >= threshold {
        &labels.json_positive
    } else {
        &labels.json_negative
    };
    out.extend_from_slice(prefix);
    write_number(out, score);
    out.push(b'}');
}

/// Shortest round-trip text of a finite float (`0.9731`, `1e-7`, `1.0`), valid in JSON and CSV.
fn write_number(out: &mut Vec<u8>, value: f64) {
    // Writing a float into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &value);
}
