//! Request bodies of `POST /invocations`: CSV (with or without a header row), JSON (`instances` of
//! objects or lists, or a bare list) and JSON Lines, parsed straight into the row-major feature matrix
//! the scorer takes. Column names are resolved through a map built once per router
//! ([`FeatureLayout`]); CSV without quotes is split in place with no copy of the body, JSON is read by
//! serde visitors that write each value into its feature slot without building a `Value` tree.
//! Missing values (empty, `inf`, `nan`, JSON `null`, ...) become NaN; anything else that is not a
//! number in a feature column is a 400 naming its row and column.
//!
//! Bodies arrive here only after [`super::prescan`] has bounded their record widths, row count and
//! JSON depth ([`CheckedBody`]), held in memory or spooled to a file ([`SpooledBody`], CSV and JSON
//! Lines only); a spooled body is read back a block at a time through the same record and line
//! parsers, so it gives the same rows and the same errors as it would in memory. Rows are handed to
//! a sink [`SCORE_CHUNK_ROWS`] at a time, so the feature matrix of a request never outgrows one
//! chunk, however many rows it has.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};

use axum::http::HeaderValue;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::body::CheckedBody;
use super::prescan::RequestShape;
use super::response::ServeError;
use super::spool::SpooledBody;
use crate::schema::{RAW_COLUMNS, RAW_COLUMNS_WITHOUT_LABELS};

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// How many missing column names an error message lists before summarizing the rest.
const MAX_NAMES_IN_MESSAGE: usize = 10;

/// The accepted request content types, for the 415 message.
pub(crate) const ACCEPTED_CONTENT_TYPES: &str =
    "text/csv, application/json, application/jsonlines or application/x-jsonlines";

/// The body format named by `Content-Type` (parameters such as `; charset=utf-8` are ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InputFormat {
    Csv,
    Json,
    JsonLines,
}

impl InputFormat {
    pub(crate) fn from_content_type(value: Option<&HeaderValue>) -> Result<Self, ServeError> {
        let unsupported = |what: String| {
            ServeError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("{what}; send one of {ACCEPTED_CONTENT_TYPES}"),
            )
        };
        let Some(value) = value else {
            return Err(unsupported("the request has no Content-Type".to_owned()));
        };
        let media = value
            .to_str()
            .ok()
            .and_then(|v| v.split(';').next())
            .map(str::trim)
            .unwrap_or("");
        if media.eq_ignore_ascii_case("text/csv") {
            Ok(Self::Csv)
        } else if media.eq_ignore_ascii_case("application/json") {
            Ok(Self::Json)
        } else if media.eq_ignore_ascii_case("application/jsonlines")
            || media.eq_ignore_ascii_case("application/x-jsonlines")
        {
            Ok(Self::JsonLines)
        } else {
            Err(unsupported(format!(
                "Content-Type {:?} is not supported",
                String::from_utf8_lossy(value.as_bytes())
            )))
        }
    }

    /// Parses a non-empty body into rows of model features, handing them to `sink` in order, at
    /// most [`SCORE_CHUNK_ROWS`] at a time; returns how many rows there were. More rows than
    /// `shape` allows is a 413, and no rows a 400.
    pub(crate) fn parse(
        self,
        body: &CheckedBody,
        layout: &FeatureLayout,
        shape: &RequestShape,
        sink: &mut RowSink<'_>,
    ) -> Result<usize, ServeError> {
        let body = body.bytes();
        let body = body.strip_prefix(UTF8_BOM).unwrap_or(body);
        let mut rows = Rows::new(shape, sink);
        match self {
            Self::Csv => parse_csv(body, layout, &mut rows)?,
            Self::Json => parse_json(body, layout, &mut rows)?,
            Self::JsonLines => parse_json_lines(body, layout, &mut rows)?,
        }
        rows.finish()
    }

    /// [`Self::parse`] for a body spooled to a file: read back [`READ_BLOCK`] at a time, so memory
    /// holds a block, the record it cut (the prescan bounds its length) and one chunk of rows. A
    /// CSV body with a quote anywhere is read by the csv crate, one without by the line splitter,
    /// each as in memory. JSON documents are never spooled.
    pub(crate) fn parse_spooled(
        self,
        body: SpooledBody,
        layout: &FeatureLayout,
        shape: &RequestShape,
        sink: &mut RowSink<'_>,
    ) -> Result<usize, ServeError> {
        let SpooledBody { mut file, has_quote } = body;
        skip_bom(&mut file)?;
        let mut rows = Rows::new(shape, sink);
        match self {
            Self::Csv if has_quote => {
                let reader = BufReader::with_capacity(READ_BLOCK, file);
                CsvRows::new(layout, &mut rows).quoted(reader)?;
            }
            Self::Csv => read_unquoted_csv(file, layout, &mut rows)?,
            Self::JsonLines => read_json_lines(file, layout, &mut rows)?,
            Self::Json => return Err(ServeError::internal("a JSON document is never spooled")),
        }
        rows.finish()
    }
}

/// Bytes of a spooled body read back at once.
const READ_BLOCK: usize = 1024 * 1024;

fn read_back_failed(error: impl fmt::Display) -> ServeError {
    ServeError::internal(format!(
        "could not read the request body back from its temporary file: {error}"
    ))
}

/// Positions a spooled body after its UTF-8 BOM, if it starts with one ([`InputFormat::parse`] strips
/// it the same way).
fn skip_bom(file: &mut File) -> Result<(), ServeError> {
    let mut head = Vec::with_capacity(UTF8_BOM.len());
    (&mut *file)
        .take(UTF8_BOM.len() as u64)
        .read_to_end(&mut head)
        .map_err(read_back_failed)?;
    let start = if head == UTF8_BOM { head.len() as u64 } else { 0 };
    file.seek(SeekFrom::Start(start)).map_err(read_back_failed)?;
    Ok(())
}

/// Rows handed to the scorer at once, at most. 4096 rows of 79 features are 2.6 MB of matrix, and
/// per-call overhead of scoring is negligible at that size.
pub(crate) const SCORE_CHUNK_ROWS: usize = 4096;

/// Where parsed rows go: the scorer, a chunk at a time.
pub(crate) type RowSink<'a> = dyn FnMut(&Batch) -> Result<(), ServeError> + 'a;

/// Rows for the scorer: row-major, one value per model feature in the model's order, NaN = missing.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub(crate) rows: Vec<f64>,
    pub(crate) n_rows: usize,
}

/// The rows of one request: the chunk being filled, the rows already handed on, the cap.
struct Rows<'s, 'k> {
    chunk: Batch,
    done: usize,
    shape: &'s RequestShape,
    sink: &'s mut RowSink<'k>,
}

impl<'s, 'k> Rows<'s, 'k> {
    fn new(shape: &'s RequestShape, sink: &'s mut RowSink<'k>) -> Self {
        Self {
            chunk: Batch::default(),
            done: 0,
            shape,
            sink,
        }
    }

    /// The 1-based number of the row being parsed.
    fn row(&self) -> usize {
        self.done + self.chunk.n_rows + 1
    }

    /// Counts the row just written into `chunk.rows`; hands the chunk on when it is full.
    fn complete_row(&mut self) -> Result<(), ServeError> {
        self.chunk.n_rows += 1;
        if self.done + self.chunk.n_rows > self.shape.max_rows {
            return Err(self.shape.too_many_rows());
        }
        if self.chunk.n_rows == SCORE_CHUNK_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ServeError> {
        if self.chunk.n_rows > 0 {
            (self.sink)(&self.chunk)?;
            self.done += self.chunk.n_rows;
            self.chunk.rows.clear();
            self.chunk.n_rows = 0;
        }
        Ok(())
    }

    /// Hands on the last chunk; returns how many rows there were (none is a 400).
    fn finish(mut self) -> Result<usize, ServeError> {
        self.flush()?;
        if self.done == 0 {
            return Err(ServeError::bad_request("the request contains no data rows"));
        }
        Ok(self.done)
    }
}

/// Everything about the model's columns a request needs, computed once per router.
#[derive(Debug)]
pub(crate) struct FeatureLayout {
    features: Vec<String>,
    /// Every known column name (model features and the raw IoTID20 columns) -> its feature index, if
    /// it is a model feature.
    names: HashMap<Box<[u8]>, Option<usize>>,
    /// `initials[b]`: some known name starts with byte `b`. Cells starting otherwise (numbers, for
    /// every raw column) are never looked up when detecting a header.
    initials: [bool; 256],
    /// The row widths accepted without a header, each with the column of every feature.
    positional: Vec<Positional>,
    /// The accepted widths in words, for the wrong-width message.
    widths_text: String,
}

#[derive(Debug)]
struct Positional {
    width: usize,
    columns: Vec<usize>,
}

impl FeatureLayout {
    pub(crate) fn new(features: &[String]) -> Self {
        let mut names: HashMap<Box<[u8]>, Option<usize>> = HashMap::new();
        for (i, name) in features.iter().enumerate() {
            names.entry(name.as_bytes().into()).or_insert(Some(i));
        }
        for name in RAW_COLUMNS {
            names.entry(name.as_bytes().into()).or_insert(None);
        }

        let mut initials = [false; 256];
        for name in names.keys() {
            if let Some(&first) = name.first() {
                initials[usize::from(first)] = true;
            }
        }

        let mut positional = vec![Positional {
            width: features.len(),
            columns: (0..features.len()).collect(),
        }];
        let mut widths = vec![format!("{} (the model's features in order)", features.len())];
        let raw: Option<Vec<usize>> = features
            .iter()
            .map(|f| RAW_COLUMNS.iter().position(|c| c == f))
            .collect();
        if let Some(raw) = raw {
            let layouts = [
                (RAW_COLUMNS.len(), "the raw IoTID20 layout"),
                (
                    RAW_COLUMNS_WITHOUT_LABELS,
                    "the raw layout without its label columns",
                ),
            ];
            for (width, what) in layouts {
                let fits = raw.iter().all(|&c| c < width);
                if fits && positional.iter().all(|p| p.width != width) {
                    positional.push(Positional {
                        width,
                        columns: raw.clone(),
                    });
                    widths.push(format!("{width} ({what})"));
                }
            }
        }
        let widths_text = match widths.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => widths.join(""),
        };
        Self {
            features: features.to_vec(),
            names,
            initials,
            positional,
            widths_text,
        }
    }

    fn n_features(&self) -> usize {
        self.features.len()
    }

    /// The widest row width accepted without a header.
    pub(crate) fn widest(&self) -> usize {
        self.positional.iter().map(|p| p.width).max().unwrap_or(0)
    }

    /// `None`: not a known column; `Some(None)`: a known column that is not a model feature.
    fn lookup(&self, name: &[u8]) -> Option<Option<usize>> {
        self.names.get(name).copied()
    }

    fn positional(&self, width: usize) -> Option<&[usize]> {
        self.positional
            .iter()
            .find(|p| p.width == width)
            .map(|p| p.columns.as_slice())
    }

    fn non_numeric(&self, row: usize, feature: usize, got: &str) -> ServeError {
        let column = &self.features[feature];
        ServeError::bad_request(format!(
            "row {row}, column {column}: expected a number or a missing value, got {got}"
        ))
        .at_row(row)
        .in_column(column)
    }

    /// "... is missing model features a, b" for the features `present` does not flag.
    fn missing(&self, what: &str, present: impl Fn(usize) -> bool) -> Option<ServeError> {
        let missing: Vec<&str> = (0..self.n_features())
            .filter(|&i| !present(i))
            .map(|i| self.features[i].as_str())
            .collect();
        let first = *missing.first()?;
        let mut listed = missing
            .iter()
            .take(MAX_NAMES_IN_MESSAGE)
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        if missing.len() > MAX_NAMES_IN_MESSAGE {
            listed.push_str(&format!(" and {} more", missing.len() - MAX_NAMES_IN_MESSAGE));
        }
        let noun = if missing.len() == 1 { "feature" } else { "features" };
        let error = ServeError::bad_request(format!("{what} is missing model {noun} {listed}"));
        Some(if missing.len() == 1 {
            error.in_column(first)
        } else {
            error
        })
    }
}

/// The number in a cell: trimmed; empty and non-finite spellings (`inf`, `-Infinity`, `NaN`, ...,
/// any case) are missing (NaN). `None` when the cell is not a number.
fn parse_number(cell: &[u8]) -> Option<f64> {
    let cell = cell.trim_ascii();
    if cell.is_empty() {
        return Some(f64::NAN);
    }
    let value = crate::decimal::parse(cell)?;
    Some(if value.is_finite() { value } else { f64::NAN })
}

/// A cell for an error message: lossy UTF-8, quoted, shortened.
fn quoted(cell: &[u8]) -> String {
    const MAX_CHARS: usize = 40;
    let text = String::from_utf8_lossy(cell.trim_ascii());
    if text.chars().count() > MAX_CHARS {
        let short: String = text.chars().take(MAX_CHARS).collect();
        format!("{short:?}...")
    } else {
        format!("{text:?}")
    }
}

fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_whitespace)
}

// ---------------------------------------------------------------------------------------------
// CSV

/// A CSV record: the cells of one line, either split in place or read by the `csv` crate.
trait Record {
    fn width(&self) -> usize;
    fn cell(&self, i: usize) -> &[u8];
}

impl Record for [&[u8]] {
    fn width(&self) -> usize {
        self.len()
    }
    fn cell(&self, i: usize) -> &[u8] {
        self[i]
    }
}

impl Record for csv::ByteRecord {
    fn width(&self) -> usize {
        self.len()
    }
    fn cell(&self, i: usize) -> &[u8] {
        self.get(i).unwrap_or_default()
    }
}

fn parse_csv(body: &[u8], layout: &FeatureLayout, rows: &mut Rows) -> Result<(), ServeError> {
    let mut rows = CsvRows::new(layout, rows);
    if body.contains(&b'"') {
        rows.quoted(body)
    } else {
        rows.unquoted_lines(body)
    }
}

/// A spooled CSV body without quotes, a block at a time: the whole lines of each block are split as
/// in memory, and the line a block cuts is finished with the next.
fn read_unquoted_csv(mut file: File, layout: &FeatureLayout, rows: &mut Rows) -> Result<(), ServeError> {
    let mut rows = CsvRows::new(layout, rows);
    // The start of the line the last block cut, then the next block.
    let mut block: Vec<u8> = Vec::with_capacity(READ_BLOCK);
    loop {
        let carried = block.len();
        let read = (&mut file)
            .take(READ_BLOCK as u64)
            .read_to_end(&mut block)
            .map_err(read_back_failed)?;
        if read == 0 {
            break;
        }
        if let Some(end) = memchr::memrchr2(b'\n', b'\r', &block[carried..]) {
            let end = carried + end;
            rows.unquoted_lines(&block[..end])?;
            block.drain(..=end);
        }
    }
    rows.unquoted_lines(&block)
}

struct CsvRows<'l, 'r, 's, 'k> {
    layout: &'l FeatureLayout,
    /// No record seen yet: the next one may be a header.
    first: bool,
    /// With a header: its width and the column of every feature.
    header: Option<(usize, Vec<usize>)>,
    rows: &'r mut Rows<'s, 'k>,
}

impl<'l, 'r, 's, 'k> CsvRows<'l, 'r, 's, 'k> {
    fn new(layout: &'l FeatureLayout, rows: &'r mut Rows<'s, 'k>) -> Self {
        Self {
            layout,
            first: true,
            header: None,
            rows,
        }
    }

    /// Quoted cells: the csv crate reads the records from `reader` and unquotes them.
    fn quoted(&mut self, reader: impl Read) -> Result<(), ServeError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(reader);
        let mut record = csv::ByteRecord::new();
        loop {
            match reader.read_byte_record(&mut record) {
                Ok(true) => self.record(&record)?,
                Ok(false) => return Ok(()),
                Err(e) if e.is_io_error() => return Err(read_back_failed(e)),
                Err(e) => {
                    let row = self.rows.row();
                    return Err(
                        ServeError::bad_request(format!("row {row} is not valid CSV: {e}")).at_row(row),
                    );
                }
            }
        }
    }

    /// No quotes: every line is its cells split at commas, borrowed from `text`. `\r`, `\n` and
    /// `\r\n` end a line, as they end a record for the csv crate (and the prescan).
    fn unquoted_lines(&mut self, text: &[u8]) -> Result<(), ServeError> {
        let mut cells: Vec<&[u8]> = Vec::with_capacity(self.layout.n_features().max(16));
        let mut start = 0;
        for end in memchr::memchr2_iter(b'\n', b'\r', text).chain([text.len()]) {
            let line = &text[start..end];
            start = end + 1;
            cells.clear();
            cells.extend(line.split(|&b| b == b','));
            self.record(cells.as_slice())?;
        }
        Ok(())
    }

    fn record<R: Record + ?Sized>(&mut self, record: &R) -> Result<(), ServeError> {
        let width = record.width();
        if width == 0 || (width == 1 && is_blank(record.cell(0))) {
            return Ok(());
        }
        let layout = self.layout;
        if std::mem::take(&mut self.first) && self.is_header(record) {
            let mut columns = vec![usize::MAX; layout.n_features()];
            for i in 0..width {
                if let Some(Some(feature)) = layout.lookup(record.cell(i).trim_ascii())
                    && columns[feature] == usize::MAX
                {
                    columns[feature] = i;
                }
            }
            if let Some(error) = layout.missing("the CSV header", |f| columns[f] != usize::MAX) {
                return Err(error);
            }
            self.header = Some((width, columns));
            return Ok(());
        }

        let row = self.rows.row();
        let columns = match &self.header {
            Some((header_width, columns)) => {
                if width != *header_width {
                    return Err(ServeError::bad_request(format!(
                        "row {row} has {width} fields but the header has {header_width}"
                    ))
                    .at_row(row));
                }
                columns.as_slice()
            }
            None => layout.positional(width).ok_or_else(|| {
                ServeError::bad_request(format!(
                    "row {row} has {width} fields; a row without a header must have {}",
                    layout.widths_text
                ))
                .at_row(row)
            })?,
        };
        let rows = &mut self.rows.chunk.rows;
        rows.reserve(columns.len());
        for (feature, &column) in columns.iter().enumerate() {
            let cell = record.cell(column);
            let value = parse_number(cell).ok_or_else(|| layout.non_numeric(row, feature, &quoted(cell)))?;
            rows.push(value);
        }
        self.rows.complete_row()
    }

    /// A record is a header iff one of its cells is a model feature or a raw column name.
    fn is_header<R: Record + ?Sized>(&self, record: &R) -> bool {
        let layout = self.layout;
        (0..record.width()).any(|i| {
            let cell = record.cell(i).trim_ascii();
            cell.first().is_some_and(|&b| layout.initials[usize::from(b)]) && layout.lookup(cell).is_some()
        })
    }
}

// ---------------------------------------------------------------------------------------------
// JSON

fn parse_json(body: &[u8], layout: &FeatureLayout, rows: &mut Rows) -> Result<(), ServeError> {
    let mut rows = JsonRows::new(layout, rows);
    let mut de = serde_json::Deserializer::from_slice(body);
    let result = TopLevel(&mut rows).deserialize(&mut de).and_then(|()| de.end());
    rows.check(result, None)
}

fn parse_json_lines(body: &[u8], layout: &FeatureLayout, rows: &mut Rows) -> Result<(), ServeError> {
    let mut rows = JsonRows::new(layout, rows);
    for line in body.split(|&b| b == b'\n') {
        rows.line(line)?;
    }
    Ok(())
}

/// A spooled JSON Lines body, a line at a time (the prescan bounds a line's length).
fn read_json_lines(file: File, layout: &FeatureLayout, rows: &mut Rows) -> Result<(), ServeError> {
    let mut rows = JsonRows::new(layout, rows);
    let mut reader = BufReader::with_capacity(READ_BLOCK, file);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(read_back_failed)? == 0 {
            return Ok(());
        }
        rows.line(line.strip_suffix(b"\n").unwrap_or(&line))?;
    }
}

/// A JSON value in a list instance, kept until the list's width says which values are features.
#[derive(Debug, Clone, Copy)]
enum Cell {
    Number(f64),
    /// Not a number; what it is, for the error message.
    Invalid(&'static str),
}

struct JsonRows<'l, 'r, 's, 'k> {
    layout: &'l FeatureLayout,
    rows: &'r mut Rows<'s, 'k>,
    /// Scratch for list instances.
    cells: Vec<Cell>,
    /// Scratch for object instances: which features were given.
    seen: Vec<bool>,
    /// The request error that aborted deserialization, if any (serde errors carry only text).
    error: Option<ServeError>,
}

impl<'l, 'r, 's, 'k> JsonRows<'l, 'r, 's, 'k> {
    fn new(layout: &'l FeatureLayout, rows: &'r mut Rows<'s, 'k>) -> Self {
        Self {
            layout,
            rows,
            cells: Vec::new(),
            seen: Vec::new(),
            error: None,
        }
    }

    fn row(&self) -> usize {
        self.rows.row()
    }

    /// One line of a JSON Lines body (without its `\n`): blank, or one instance.
    fn line(&mut self, line: &[u8]) -> Result<(), ServeError> {
        if is_blank(line) {
            return Ok(());
        }
        let mut de = serde_json::Deserializer::from_slice(line);
        let line_number = self.row();
        let result = Instance(&mut *self).deserialize(&mut de).and_then(|()| de.end());
        self.check(result, Some(line_number))
    }

    /// Keeps `error` for the response and returns a serde error that unwinds the deserializer.
    fn fail<E: de::Error>(&mut self, error: ServeError) -> E {
        self.error = Some(error);
        E::custom("request rejected")
    }

    fn check(
        &mut self,
        result: Result<(), serde_json::Error>,
        line: Option<usize>,
    ) -> Result<(), ServeError> {
        let Err(e) = result else {
            return Ok(());
        };
        Err(self.error.take().unwrap_or_else(|| match line {
            Some(line) => {
                ServeError::bad_request(format!("line {line} is not a valid JSON instance: {e}")).at_row(line)
            }
            None => ServeError::bad_request(format!("invalid JSON request body: {e}")),
        }))
    }

    fn wrong_instance_type(&mut self, what: &str) -> ServeError {
        let row = self.row();
        ServeError::bad_request(format!(
            "instance {row} is {what}; an instance must be a JSON object or list"
        ))
        .at_row(row)
    }

    fn push_list(&mut self) -> Result<(), ServeError> {
        let row = self.row();
        let layout = self.layout;
        let width = self.cells.len();
        let columns = layout.positional(width).ok_or_else(|| {
            ServeError::bad_request(format!(
                "instance {row} has {width} values; a list instance must have {}",
                layout.widths_text
            ))
            .at_row(row)
        })?;
        let rows = &mut self.rows.chunk.rows;
        rows.reserve(columns.len());
        for (feature, &column) in columns.iter().enumerate() {
            match self.cells[column] {
                Cell::Number(v) => rows.push(v),
                Cell::Invalid(what) => return Err(layout.non_numeric(row, feature, what)),
            }
        }
        self.rows.complete_row()
    }

    fn begin_object(&mut self) -> usize {
        let rows = &mut self.rows.chunk.rows;
        let start = rows.len();
        let n = self.layout.n_features();
        rows.resize(start + n, f64::NAN);
        self.seen.clear();
        self.seen.resize(n, false);
        start
    }

    fn set(&mut self, start: usize, feature: usize, cell: Cell) -> Result<(), ServeError> {
        match cell {
            Cell::Number(v) => {
                self.rows.chunk.rows[start + feature] = v;
                self.seen[feature] = true;
                Ok(())
            }
            Cell::Invalid(what) => Err(self.layout.non_numeric(self.row(), feature, what)),
        }
    }

    fn end_object(&mut self) -> Result<(), ServeError> {
        let row = self.row();
        let what = format!("instance {row}");
        if let Some(error) = self.layout.missing(&what, |f| self.seen[f]) {
            return Err(error.at_row(row));
        }
        self.rows.complete_row()
    }
}

/// The whole body: `{"instances": [...]}` or a bare list of instances.
struct TopLevel<'a, 'l, 'r, 's, 'k>(&'a mut JsonRows<'l, 'r, 's, 'k>);

impl<'de> DeserializeSeed<'de> for TopLevel<'_, '_, '_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopLevel<'_, '_, '_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"an object with an "instances" list, or a list of instances"#)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        instances(self.0, seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut found = false;
        while let Some(is_instances) = map.next_key_seed(KeyIs("instances"))? {
            if is_instances && !found {
                map.next_value_seed(Instances(&mut *self.0))?;
                found = true;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        if !found {
            return Err(self.0.fail(ServeError::bad_request(
                r#"the JSON object has no "instances" list"#,
            )));
        }
        Ok(())
    }
}

fn instances<'de, A: SeqAccess<'de>>(
    rows: &mut JsonRows<'_, '_, '_, '_>,
    mut seq: A,
) -> Result<(), A::Error> {
    while seq.next_element_seed(Instance(&mut *rows))?.is_some() {}
    Ok(())
}

/// The value of `instances`: a list.
struct Instances<'a, 'l, 'r, 's, 'k>(&'a mut JsonRows<'l, 'r, 's, 'k>);

impl<'de> DeserializeSeed<'de> for Instances<'_, '_, '_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Instances<'_, '_, '_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(r#"a list of instances as the value of "instances""#)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        instances(self.0, seq)
    }
}

/// One instance: an object keyed by column name or a list of values; appends one row.
struct Instance<'a, 'l, 'r, 's, 'k>(&'a mut JsonRows<'l, 'r, 's, 'k>);

impl Instance<'_, '_, '_, '_, '_> {
    fn reject<E: de::Error>(self, what: &str) -> Result<(), E> {
        let error = self.0.wrong_instance_type(what);
        Err(self.0.fail(error))
    }
}

impl<'de> DeserializeSeed<'de> for Instance<'_, '_, '_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Instance<'_, '_, '_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an instance (a JSON object or list)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let rows = self.0;
        rows.cells.clear();
        while let Some(cell) = seq.next_element_seed(CellSeed)? {
            rows.cells.push(cell);
        }
        rows.push_list().map_err(|e| rows.fail(e))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let rows = self.0;
        let start = rows.begin_object();
        // Clients usually send the features in the model's order: try the next one before hashing.
        let mut expected = 0;
        while let Some(key) = map.next_key_seed(FeatureKey(rows.layout, expected))? {
            match key {
                Some(feature) => {
                    expected = feature + 1;
                    let cell = map.next_value_seed(CellSeed)?;
                    rows.set(start, feature, cell).map_err(|e| rows.fail(e))?;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        rows.end_object().map_err(|e| rows.fail(e))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.reject("a boolean")
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.reject("a number")
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.reject("a number")
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.reject("a number")
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.reject("a string")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.reject("null")
    }
}

/// An object key: its feature index if it names a model feature. The second field is the feature
/// expected next, compared before the name map is consulted.
struct FeatureKey<'l>(&'l FeatureLayout, usize);

impl<'de> DeserializeSeed<'de> for FeatureKey<'_> {
    type Value = Option<usize>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FeatureKey<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a column name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        let FeatureKey(layout, expected) = self;
        if layout.features.get(expected).is_some_and(|f| f == key) {
            return Ok(Some(expected));
        }
        Ok(layout.lookup(key.as_bytes()).flatten())
    }
}

/// An object key compared with one name.
struct KeyIs(&'static str);

impl<'de> DeserializeSeed<'de> for KeyIs {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

/// One value: a number, `null` (missing), or a string holding a number or a missing-value spelling.
struct CellSeed;

impl<'de> DeserializeSeed<'de> for CellSeed {
    type Value = Cell;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Cell, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CellSeed {
    type Value = Cell;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, null or a numeric string")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Cell, E> {
        Ok(Cell::Invalid("a boolean"))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cell, E> {
        Ok(Cell::Number(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cell, E> {
        Ok(Cell::Number(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cell, E> {
        Ok(Cell::Number(if v.is_finite() { v } else { f64::NAN }))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cell, E> {
        Ok(parse_number(v.as_bytes()).map_or(Cell::Invalid("a non-numeric string"), Cell::Number))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Cell, E> {
        Ok(Cell::Number(f64::NAN))
    }
    fn visit_none<E: de::Error>(self) -> Result<Cell, E> {
        Ok(Cell::Number(f64::NAN))
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Cell, D::Error> {
        deserializer.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Cell, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Cell::Invalid("a list"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Cell, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Cell::Invalid("an object"))
    }
}
