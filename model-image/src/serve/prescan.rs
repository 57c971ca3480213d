//! Shape checks on a request body while it streams in, before anything is allocated for its rows:
//! no CSV record or JSON instance wider than the model could use ([`RequestShape::max_fields`]), no
//! more rows than the request may carry ([`MAX_ROWS_PER_REQUEST`] at the realtime body limit), no
//! JSON nested deeper than [`MAX_JSON_DEPTH`], no CSV record or JSON line longer than a body held in
//! memory (a spooled body is parsed a record at a time). A body that breaks one is refused at the
//! first chunk that shows it, so a 6 MB run of commas or a million-value JSON list costs a scan,
//! never a buffer. The row count so far also tells the body reader when to spool a body.
//!
//! The CSV scan follows the `csv` crate's grammar exactly (quotes open a quoted field only at its
//! start, `""` inside one is a quote, `\r`, `\n` and `\r\n` end records, blank records do not count),
//! which is also what the unquoted fast path of [`super::request`] reads, so a record is never wider
//! here than there. The JSON scan tracks strings and brackets the way `serde_json` does; JSON Lines
//! restarts at every `\n`, as the parser splits there.

use axum::http::StatusCode;
use memchr::{memchr, memchr2, memchr3};

use super::request::{FeatureLayout, InputFormat};
use super::response::ServeError;

/// Rows (data records, instances or lines) one request may carry at SageMaker's realtime body limit
/// of 6 MB, and the most a body held in memory may have. A 6 MB body of the 79-feature model holds at
/// most about 80,000 rows; narrow models could send millions, whose predictions alone would be tens
/// of MB. A larger body limit raises it in proportion for CSV and JSON Lines, whose bodies past this
/// are spooled (`ServeLimits::max_rows_per_request`); a JSON document keeps it.
pub const MAX_ROWS_PER_REQUEST: usize = 100_000;

/// How deep JSON may nest. Requests need 4 levels (`{"instances": [{"a": 1}]}` is 3).
pub const MAX_JSON_DEPTH: usize = 32;

/// Columns a CSV record or JSON instance may have beyond the widest layout the model accepts
/// (an index column, labels, notes), which are ignored.
pub const EXTRA_COLUMNS: usize = 64;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The largest request the model can use, computed once per router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestShape {
    /// Fields of a CSV record, values of a list instance, keys of an object instance.
    pub(crate) max_fields: usize,
    pub(crate) max_rows: usize,
    /// Bytes of a CSV record or a JSON Lines line (terminator excluded): the largest body held in
    /// memory, so only a spooled body can break it, and reading one back never holds more.
    pub(crate) max_record_bytes: usize,
}

impl RequestShape {
    pub(crate) fn for_layout(layout: &FeatureLayout, max_rows: usize, max_record_bytes: usize) -> Self {
        Self {
            max_fields: layout.widest() + EXTRA_COLUMNS,
            max_rows,
            max_record_bytes,
        }
    }

    pub(crate) fn too_many_rows(&self) -> ServeError {
        ServeError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request has more than {} rows; send at most {} rows per request",
                self.max_rows, self.max_rows
            ),
        )
    }
}

/// The running check of one body.
#[derive(Debug)]
pub(crate) struct Prescan {
    shape: RequestShape,
    scan: Scan,
}

#[derive(Debug)]
enum Scan {
    Csv(CsvScan),
    Json(JsonScan),
}

impl Prescan {
    pub(crate) fn new(format: InputFormat, shape: RequestShape) -> Self {
        let scan = match format {
            InputFormat::Csv => Scan::Csv(CsvScan::default()),
            InputFormat::Json => Scan::Json(JsonScan::new(false)),
            InputFormat::JsonLines => Scan::Json(JsonScan::new(true)),
        };
        Self { shape, scan }
    }

    /// Checks the next chunk of the body.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<(), ServeError> {
        match &mut self.scan {
            Scan::Csv(scan) => scan.feed(chunk, &self.shape),
            Scan::Json(scan) => scan.feed(chunk, &self.shape),
        }
    }

    /// Checks what the end of the body completes.
    pub(crate) fn finish(&mut self) -> Result<(), ServeError> {
        match &mut self.scan {
            Scan::Csv(scan) => scan.finish(&self.shape),
            Scan::Json(scan) => scan.finish(&self.shape),
        }
    }

    /// The body has shown more than `rows` rows so far: CSV records beyond one for a header, or JSON
    /// Lines lines. A JSON document's rows are not counted here (its shape alone bounds them).
    pub(crate) fn more_rows_than(&self, rows: usize) -> bool {
        match &self.scan {
            Scan::Csv(scan) => scan.records > rows.saturating_add(1),
            Scan::Json(scan) => scan.lines && scan.lines_done > rows,
        }
    }
}

fn too_long(what: String, shape: &RequestShape) -> ServeError {
    let limit = super::limits::size_text(shape.max_record_bytes);
    ServeError::bad_request(format!(
        "{what} is longer than {limit}, the most one record may be (a row of the model is far shorter)"
    ))
}

fn count_byte(bytes: &[u8], byte: u8) -> usize {
    bytes.iter().filter(|&&b| b == byte).count()
}

fn has_content(bytes: &[u8]) -> bool {
    bytes.iter().any(|b| !b.is_ascii_whitespace())
}

// ---------------------------------------------------------------------------------------------
// CSV

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum CsvState {
    /// Between records: terminators are skipped.
    #[default]
    StartRecord,
    StartField,
    InField,
    InQuoted,
    /// A quote inside a quoted field: a second quote is a literal one, anything else ends the quoting.
    QuoteInQuoted,
}

#[derive(Debug, Default)]
struct CsvScan {
    state: CsvState,
    /// Fields of the current record so far.
    fields: usize,
    /// The current record has a field separator or a byte of content other than ASCII whitespace
    /// (blank records are skipped, here as by the parser).
    nonblank: bool,
    /// Completed non-blank records.
    records: usize,
    /// Bytes of a leading UTF-8 BOM matched so far, until `bom_decided`.
    bom_matched: usize,
    bom_decided: bool,
    /// Bytes scanned before the current chunk, and where the current record began among them.
    scanned: usize,
    record_start: usize,
}

impl CsvScan {
    fn feed(&mut self, chunk: &[u8], shape: &RequestShape) -> Result<(), ServeError> {
        let mut chunk = chunk;
        if !self.bom_decided {
            // The parser strips a leading BOM: skip it here too, replaying a partial match.
            while let Some((&b, rest)) = chunk.split_first() {
                if self.bom_matched == UTF8_BOM.len() {
                    break;
                }
                if b != UTF8_BOM[self.bom_matched] {
                    let matched = self.bom_matched;
                    self.bom_decided = true;
                    self.scan(&UTF8_BOM[..matched], shape)?;
                    break;
                }
                self.bom_matched += 1;
                chunk = rest;
            }
            if self.bom_matched == UTF8_BOM.len() {
                self.bom_decided = true;
            }
            if !self.bom_decided {
                return Ok(());
            }
        }
        self.scan(chunk, shape)
    }

    fn finish(&mut self, shape: &RequestShape) -> Result<(), ServeError> {
        if !self.bom_decided {
            self.bom_decided = true;
            let matched = self.bom_matched;
            self.scan(&UTF8_BOM[..matched], shape)?;
        }
        if self.state != CsvState::StartRecord {
            self.end_record(shape, self.scanned)?;
            self.state = CsvState::StartRecord;
        }
        Ok(())
    }

    fn scan(&mut self, bytes: &[u8], shape: &RequestShape) -> Result<(), ServeError> {
        self.scan_records(bytes, shape)?;
        self.scanned += bytes.len();
        if self.state != CsvState::StartRecord {
            self.check_length(self.scanned, shape)?;
        }
        Ok(())
    }

    fn scan_records(&mut self, bytes: &[u8], shape: &RequestShape) -> Result<(), ServeError> {
        use CsvState::*;
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                StartRecord => {
                    if matches!(bytes[i], b'\r' | b'\n') {
                        i += 1;
                        continue;
                    }
                    self.record_start = self.scanned + i;
                    self.fields = 1;
                    self.nonblank = false;
                    self.state = StartField;
                }
                StartField if bytes[i] == b'"' => {
                    self.state = InQuoted;
                    i += 1;
                }
                StartField | InField => {
                    let rest = &bytes[i..];
                    let run = &rest[..memchr3(b'"', b'\r', b'\n', rest).unwrap_or(rest.len())];
                    if run.is_empty() {
                        // At a quote inside an unquoted field (a literal) or a record's end.
                        if bytes[i] == b'"' {
                            self.nonblank = true;
                        } else {
                            self.end_record(shape, self.scanned + i)?;
                            self.state = StartRecord;
                        }
                        i += 1;
                        continue;
                    }
                    let separators = count_byte(run, b',');
                    self.fields += separators;
                    self.nonblank = self.nonblank || separators > 0 || has_content(run);
                    self.check_width(shape)?;
                    self.state = if run.last() == Some(&b',') {
                        StartField
                    } else {
                        InField
                    };
                    i += run.len();
                }
                InQuoted => {
                    let rest = &bytes[i..];
                    let quote = memchr(b'"', rest);
                    let content = &rest[..quote.unwrap_or(rest.len())];
                    self.nonblank = self.nonblank || has_content(content);
                    match quote {
                        Some(at) => {
                            self.state = QuoteInQuoted;
                            i += at + 1;
                        }
                        None => i = bytes.len(),
                    }
                }
                QuoteInQuoted => match bytes[i] {
                    b'"' => {
                        self.nonblank = true;
                        self.state = InQuoted;
                        i += 1;
                    }
                    b',' => {
                        self.fields += 1;
                        self.nonblank = true;
                        self.check_width(shape)?;
                        self.state = StartField;
                        i += 1;
                    }
                    b'\r' | b'\n' => {
                        self.end_record(shape, self.scanned + i)?;
                        self.state = StartRecord;
                        i += 1;
                    }
                    // The field goes on unquoted; the byte is read as part of it.
                    _ => self.state = InField,
                },
            }
        }
        Ok(())
    }

    fn check_width(&self, shape: &RequestShape) -> Result<(), ServeError> {
        if self.fields <= shape.max_fields {
            return Ok(());
        }
        Err(ServeError::bad_request(format!(
            "CSV record {} (counting a header) has more than {} fields; the model reads at most {} \
             columns of a row, extra ones included",
            self.records + 1,
            shape.max_fields,
            shape.max_fields
        )))
    }

    /// The current record, which began at `record_start`, goes on at least until `at`.
    fn check_length(&self, at: usize, shape: &RequestShape) -> Result<(), ServeError> {
        if at - self.record_start <= shape.max_record_bytes {
            return Ok(());
        }
        Err(too_long(
            format!("CSV record {} (counting a header)", self.records + 1),
            shape,
        ))
    }

    /// The current record ends at `at` (its terminator, or the end of the body).
    fn end_record(&mut self, shape: &RequestShape, at: usize) -> Result<(), ServeError> {
        self.check_length(at, shape)?;
        if self.nonblank {
            self.records += 1;
            // One record more for a header.
            if self.records > shape.max_rows + 1 {
                return Err(shape.too_many_rows());
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// JSON and JSON Lines

/// What an open bracket's entries are limited by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entries {
    /// The list of instances.
    Rows,
    /// An instance (its values or keys), the envelope object, or anything inside an instance.
    Fields,
}

#[derive(Debug)]
struct Open {
    object: bool,
    entries: usize,
    limit: Entries,
}

#[derive(Debug)]
struct JsonScan {
    /// JSON Lines: every line is a document and a row.
    lines: bool,
    in_string: bool,
    /// The last byte in a string was an unescaped backslash.
    escaped: bool,
    /// Open brackets, at most [`MAX_JSON_DEPTH`].
    open: Vec<Open>,
    /// JSON Lines: the current line has content, and the completed ones that had.
    line_nonblank: bool,
    lines_done: usize,
    /// Bytes scanned before the current chunk, and where the current line began among them.
    scanned: usize,
    line_start: usize,
}

impl JsonScan {
    fn new(lines: bool) -> Self {
        Self {
            lines,
            in_string: false,
            escaped: false,
            open: Vec::new(),
            line_nonblank: false,
            lines_done: 0,
            scanned: 0,
            line_start: 0,
        }
    }

    fn feed(&mut self, bytes: &[u8], shape: &RequestShape) -> Result<(), ServeError> {
        self.scan(bytes, shape)?;
        self.scanned += bytes.len();
        if self.lines {
            self.check_length(self.scanned, shape)?;
        }
        Ok(())
    }

    fn scan(&mut self, bytes: &[u8], shape: &RequestShape) -> Result<(), ServeError> {
        let mut i = 0;
        while i < bytes.len() {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                    if !(self.lines && bytes[i] == b'\n') {
                        i += 1;
                    }
                    continue;
                }
                let rest = &bytes[i..];
                let special = if self.lines {
                    memchr3(b'"', b'\\', b'\n', rest)
                } else {
                    memchr2(b'"', b'\\', rest)
                };
                let Some(at) = special else {
                    break;
                };
                i += at;
                match bytes[i] {
                    b'"' => self.in_string = false,
                    b'\\' => self.escaped = true,
                    _ => {
                        self.end_line(shape, self.scanned + i)?;
                    }
                }
                i += 1;
                continue;
            }
            let b = bytes[i];
            i += 1;
            if self.lines && !self.line_nonblank && !b.is_ascii_whitespace() {
                self.line_nonblank = true;
            }
            match b {
                b'"' => self.in_string = true,
                b'[' | b'{' => self.push(b == b'{')?,
                b']' | b'}' => {
                    self.open.pop();
                }
                b',' => {
                    if let Some(open) = self.open.last_mut() {
                        open.entries += 1;
                        let limit = match open.limit {
                            Entries::Rows => shape.max_rows,
                            Entries::Fields => shape.max_fields,
                        };
                        if open.entries > limit {
                            return Err(match open.limit {
                                Entries::Rows => shape.too_many_rows(),
                                Entries::Fields => ServeError::bad_request(format!(
                                    "a JSON list or object in the body has more than {} entries; an \
                                     instance has at most {} values, extra columns included",
                                    shape.max_fields, shape.max_fields
                                )),
                            });
                        }
                    }
                }
                b'\n' if self.lines => self.end_line(shape, self.scanned + i - 1)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn push(&mut self, object: bool) -> Result<(), ServeError> {
        if self.open.len() == MAX_JSON_DEPTH {
            return Err(ServeError::bad_request(format!(
                "the JSON nests deeper than {MAX_JSON_DEPTH} levels; an instance is an object or a \
                 list of numbers"
            )));
        }
        let limit = match (self.lines, self.open.as_slice()) {
            (false, []) if !object => Entries::Rows,
            (false, [envelope]) if envelope.object => Entries::Rows,
            _ => Entries::Fields,
        };
        self.open.push(Open {
            object,
            entries: 1,
            limit,
        });
        Ok(())
    }

    /// JSON Lines: the current line, which began at `line_start`, goes on at least until `at`.
    fn check_length(&self, at: usize, shape: &RequestShape) -> Result<(), ServeError> {
        if at - self.line_start <= shape.max_record_bytes {
            return Ok(());
        }
        let line = self.lines_done + 1;
        Err(too_long(format!("line {line} of the JSON Lines body"), shape).at_row(line))
    }

    /// JSON Lines: the parser reads every line on its own; this one ends at `at` (its `\n`, or the
    /// end of the body).
    fn end_line(&mut self, shape: &RequestShape, at: usize) -> Result<(), ServeError> {
        self.check_length(at, shape)?;
        self.line_start = at + 1;
        if self.line_nonblank {
            self.lines_done += 1;
            if self.lines_done > shape.max_rows {
                return Err(shape.too_many_rows());
            }
        }
        self.line_nonblank = false;
        self.in_string = false;
        self.escaped = false;
        self.open.clear();
        Ok(())
    }

    fn finish(&mut self, shape: &RequestShape) -> Result<(), ServeError> {
        if self.lines {
            self.end_line(shape, self.scanned)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: RequestShape = RequestShape {
        max_fields: 5,
        max_rows: 3,
        max_record_bytes: 40,
    };

    /// Feeds `body` in chunks of `size` bytes.
    fn scan(format: InputFormat, body: &[u8], size: usize) -> Result<(), ServeError> {
        scan_with(SHAPE, format, body, size)
    }

    fn scan_with(
        shape: RequestShape,
        format: InputFormat,
        body: &[u8],
        size: usize,
    ) -> Result<(), ServeError> {
        let mut prescan = Prescan::new(format, shape);
        for chunk in body.chunks(size.max(1)) {
            prescan.feed(chunk)?;
        }
        prescan.finish()
    }

    fn verdicts(format: InputFormat, body: &str) -> Vec<Option<StatusCode>> {
        [1, 2, 3, 7, body.len().max(1)]
            .iter()
            .map(|&size| scan(format, body.as_bytes(), size).err().map(|e| e.status))
            .collect()
    }

    #[track_caller]
    fn assert_csv(body: &str, expected: Option<StatusCode>) {
        for verdict in verdicts(InputFormat::Csv, body) {
            assert_eq!(verdict, expected, "{body:?}");
        }
    }

    #[track_caller]
    fn assert_json(format: InputFormat, body: &str, expected: Option<StatusCode>) {
        for verdict in verdicts(format, body) {
            assert_eq!(verdict, expected, "{body:?}");
        }
    }

    const WIDE: Option<StatusCode> = Some(StatusCode::BAD_REQUEST);
    const MANY: Option<StatusCode> = Some(StatusCode::PAYLOAD_TOO_LARGE);

    #[test]
    fn csv_width_counts_separators_outside_quotes() {
        assert_csv("1,2,3,4,5\n", None);
        assert_csv("1,2,3,4,5,6\n", WIDE);
        assert_csv(",,,,,", WIDE);
        assert_csv("\"a,b,c,d,e,f\",2\n", None);
        assert_csv("\"a\"\",\"\"\",2,3,4,5", None);
        // A quote inside an unquoted field is a literal: the commas after it separate.
        assert_csv("x\"y,2,3,4,5,6", WIDE);
        // A closing quote followed by more text continues the field unquoted.
        assert_csv("\"a\"b,2,3,4,5,6", WIDE);
        // Quoted newlines stay in the record.
        assert_csv("\"\n\",\"\n\",\"\n\",\"\n\",\"\n\",\"\n\"", WIDE);
    }

    #[test]
    fn csv_rows_skip_blank_records_and_allow_a_header() {
        assert_csv("h\n1\n2\n3\n", None);
        assert_csv("h\r\n1\r\n2\r3\n\n\n  \n\"\"\n", None);
        assert_csv("h\n1\n2\n3\n4", MANY);
        assert_csv("\u{feff}h\n1\n2\n3\n", None);
        assert_csv("a\rb\rc\rd\re", MANY);
    }

    #[test]
    fn csv_bom_is_skipped_only_when_whole() {
        // `\xEF"` is not a BOM: the quote is then inside a field, a literal.
        let mut body = b"\xEF\"a,b,c,d,e,f\"".to_vec();
        assert!(scan(InputFormat::Csv, &body, 1).is_err());
        body.splice(0..1, UTF8_BOM.iter().copied());
        assert!(scan(InputFormat::Csv, &body, 1).is_ok());
        assert!(scan(InputFormat::Csv, b"\xEF\xBB", 1).is_ok());
    }

    #[test]
    fn json_entries_depth_and_rows() {
        use InputFormat::{Json, JsonLines};
        assert_json(Json, "[[1,2,3,4,5],[1,2,3,4,5],[1]]", None);
        assert_json(Json, "[[1,2,3,4,5,6]]", WIDE);
        assert_json(Json, r#"[{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6}]"#, WIDE);
        assert_json(Json, "[[1],[2],[3],[4]]", MANY);
        assert_json(Json, r#"{"instances": [[1],[2],[3],[4]]}"#, MANY);
        assert_json(Json, r#"{"instances": [[1],[2],[3]], "x": 1}"#, None);
        // Commas and brackets in strings, escaped quotes.
        assert_json(Json, r#"[["a,b,c,d,e,f,g", "\",[[[,,,,,,", 3]]"#, None);
        let deep = format!("{}{}", "[".repeat(MAX_JSON_DEPTH), "]".repeat(MAX_JSON_DEPTH));
        assert_json(Json, &deep, None);
        let deeper = format!("[{deep}]");
        assert_json(Json, &deeper, WIDE);
        assert_json(JsonLines, "[1,2,3,4,5]\n\n{\"a\":1}\n[1]\n", None);
        assert_json(JsonLines, "[1]\n[1]\n[1]\n[1]", MANY);
        assert_json(JsonLines, "[1,2,3,4,5,6]\n", WIDE);
        // Every line starts afresh, even inside an unterminated string.
        assert_json(JsonLines, "[\"\\\n[1,2,3,4,5]\n", None);
    }

    #[test]
    fn records_and_json_lines_are_at_most_max_record_bytes_long() {
        use InputFormat::{Csv, Json, JsonLines};
        let shape = RequestShape {
            max_fields: 100,
            max_rows: 100,
            max_record_bytes: 8,
        };
        let cases: &[(InputFormat, &str, bool)] = &[
            // Terminators are not counted; `\r\n` is one.
            (Csv, "12345678\r\n12345678\n12345678", true),
            (Csv, "12345678\n123456789\n", false),
            (Csv, "123456789", false),
            // Blank records are skipped by the parser, but still read as a line.
            (Csv, "1\n         \n2", false),
            // Quoted line breaks stay in the record.
            (Csv, "\"1\n3456\"\n", true),
            (Csv, "\"1\n34567\"\n", false),
            (JsonLines, "[1,2,34]\n\n[1]", true),
            (JsonLines, "[1]\n[1,2,345]\n", false),
            (JsonLines, "[\"\\\n[1,2,34]\n", true),
            // A JSON document is never read a line at a time.
            (Json, "[[1,2,3,4,5,6,7,8,9]]", true),
        ];
        for &(format, body, fits) in cases {
            for size in [1, 2, 3, 7, body.len()] {
                let verdict = scan_with(shape, format, body.as_bytes(), size);
                assert_eq!(
                    verdict.is_ok(),
                    fits,
                    "{format:?} {body:?} in chunks of {size}: {verdict:?}"
                );
                if let Err(error) = verdict {
                    assert_eq!(error.status, StatusCode::BAD_REQUEST);
                    assert!(error.message.contains("longer than 8 bytes"), "{}", error.message);
                }
            }
        }
    }

    #[test]
    fn rows_so_far_allow_a_csv_header_and_skip_json_documents() {
        let shape = RequestShape {
            max_fields: 10,
            max_rows: 100,
            max_record_bytes: 100,
        };
        let rows_after = |format, body: &str, rows| {
            let mut prescan = Prescan::new(format, shape);
            prescan.feed(body.as_bytes()).unwrap();
            prescan.more_rows_than(rows)
        };
        assert!(!rows_after(InputFormat::Csv, "h\n1\n2\n3", 2));
        assert!(rows_after(InputFormat::Csv, "h\n1\n2\n3\n", 2));
        assert!(!rows_after(InputFormat::JsonLines, "[1]\n\n[2]\n", 2));
        assert!(rows_after(InputFormat::JsonLines, "[1]\n[2]\n[3]\n", 2));
        assert!(!rows_after(InputFormat::Json, "[[1],[2],[3],[4]]", 2));
    }
}
