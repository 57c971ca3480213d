//! Captured request bodies read back into feature rows, by the rules `serve` reads them with (its
//! parser, `serve::request`, is private to the server and built for speed on a checked body; this
//! one is the plain version): CSV with or without a header row, JSON (`{"instances": [...]}` or a
//! bare list, of objects keyed by column name or of lists) and JSON Lines. A header is a first
//! record naming a model feature or a raw IoTID20 column, and then names every feature; a row
//! without a header is the model's features in order or the raw 86- or 83-column layout. Empty
//! cells, `inf`, `nan` and JSON `null` are missing (NaN); anything else that is not a number makes
//! the body unreadable, as the server answers it 400 and scores none of it.

use std::collections::HashMap;

use serde_json::Value;

use crate::schema::{RAW_COLUMNS, RAW_COLUMNS_WITHOUT_LABELS};

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// A request body's format, named by its content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    Csv,
    Json,
    JsonLines,
}

impl InputFormat {
    /// The format `serve` reads a body of `content_type` in (parameters ignored, any case); `None`
    /// for a type it refuses.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("text/csv") {
            Some(Self::Csv)
        } else if media.eq_ignore_ascii_case("application/json") {
            Some(Self::Json)
        } else if media.eq_ignore_ascii_case("application/jsonlines")
            || media.eq_ignore_ascii_case("application/x-jsonlines")
        {
            Some(Self::JsonLines)
        } else {
            None
        }
    }
}

/// Rows of one body: row-major, one value per model feature in the model's order, NaN = missing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub values: Vec<f64>,
    pub count: usize,
}

/// The model's columns, as request bodies name or place them.
#[derive(Debug)]
pub struct FeatureColumns {
    features: Vec<String>,
    /// Every known column name (model features, then the raw IoTID20 columns) -> its feature index,
    /// if it is a model feature.
    names: HashMap<String, Option<usize>>,
    /// The row widths accepted without a header, each with the column of every feature.
    positional: Vec<(usize, Vec<usize>)>,
}

impl FeatureColumns {
    pub fn new(features: &[String]) -> Self {
        let mut names = HashMap::new();
        for (i, name) in features.iter().enumerate() {
            names.entry(name.clone()).or_insert(Some(i));
        }
        for name in RAW_COLUMNS {
            names.entry(name.to_owned()).or_insert(None);
        }
        let mut positional = vec![(features.len(), (0..features.len()).collect::<Vec<_>>())];
        let raw: Option<Vec<usize>> = features
            .iter()
            .map(|f| RAW_COLUMNS.iter().position(|c| c == f))
            .collect();
        if let Some(raw) = raw {
            for width in [RAW_COLUMNS.len(), RAW_COLUMNS_WITHOUT_LABELS] {
                if raw.iter().all(|&c| c < width) && positional.iter().all(|(w, _)| *w != width) {
                    positional.push((width, raw.clone()));
                }
            }
        }
        Self {
            features: features.to_vec(),
            names,
            positional,
        }
    }

    /// The rows of `body`, or why `serve` would refuse it.
    pub fn read(&self, format: InputFormat, body: &[u8]) -> Result<Rows, String> {
        let body = body.strip_prefix(UTF8_BOM).unwrap_or(body);
        let mut rows = Rows::default();
        match format {
            InputFormat::Csv => self.read_csv(body, &mut rows)?,
            InputFormat::Json => {
                let value: Value =
                    serde_json::from_slice(body).map_err(|e| format!("invalid JSON request body: {e}"))?;
                let instances = match &value {
                    Value::Array(instances) => instances,
                    Value::Object(map) => match map.get("instances") {
                        Some(Value::Array(instances)) => instances,
                        _ => return Err(r#"the JSON object has no "instances" list"#.to_owned()),
                    },
                    _ => return Err(r#"expected an object with an "instances" list, or a list"#.to_owned()),
                };
                for instance in instances {
                    self.push_instance(instance, &mut rows)?;
                }
            }
            InputFormat::JsonLines => {
                for line in body.split(|&b| b == b'\n') {
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let instance: Value = serde_json::from_slice(line)
                        .map_err(|e| format!("line {} is not a valid JSON instance: {e}", rows.count + 1))?;
                    self.push_instance(&instance, &mut rows)?;
                }
            }
        }
        if rows.count == 0 {
            return Err("the request contains no data rows".to_owned());
        }
        Ok(rows)
    }

    fn positional(&self, width: usize) -> Option<&[usize]> {
        self.positional
            .iter()
            .find(|(w, _)| *w == width)
            .map(|(_, columns)| columns.as_slice())
    }

    fn widths(&self) -> String {
        let widths: Vec<String> = self.positional.iter().map(|(w, _)| w.to_string()).collect();
        widths.join(" or ")
    }

    fn read_csv(&self, body: &[u8], rows: &mut Rows) -> Result<(), String> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(body);
        let mut record = csv::ByteRecord::new();
        let mut first = true;
        let mut header: Option<(usize, Vec<usize>)> = None;
        loop {
            match reader.read_byte_record(&mut record) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(format!("row {} is not valid CSV: {e}", rows.count + 1)),
            }
            let width = record.len();
            if width == 0 || (width == 1 && record[0].iter().all(u8::is_ascii_whitespace)) {
                continue;
            }
            if std::mem::take(&mut first) && self.is_header(&record) {
                let mut columns = vec![usize::MAX; self.features.len()];
                for (i, cell) in record.iter().enumerate() {
                    if let Some(Some(feature)) = self.lookup(cell.trim_ascii())
                        && columns[feature] == usize::MAX
                    {
                        columns[feature] = i;
                    }
                }
                if let Some(missing) = columns.iter().position(|&c| c == usize::MAX) {
                    return Err(format!(
                        "the CSV header is missing model feature {}",
                        self.features[missing]
                    ));
                }
                header = Some((width, columns));
                continue;
            }
            let row = rows.count + 1;
            let columns = match &header {
                Some((header_width, columns)) if *header_width == width => columns.as_slice(),
                Some((header_width, _)) => {
                    return Err(format!(
                        "row {row} has {width} fields but the header has {header_width}"
                    ));
                }
                None => self.positional(width).ok_or_else(|| {
                    format!(
                        "row {row} has {width} fields; a row without a header must have {}",
                        self.widths()
                    )
                })?,
            };
            for (feature, &column) in columns.iter().enumerate() {
                let value = number(&record[column]).ok_or_else(|| self.non_numeric(row, feature))?;
                rows.values.push(value);
            }
            rows.count += 1;
        }
        Ok(())
    }

    /// A record is a header iff one of its cells is a model feature or a raw column name.
    fn is_header(&self, record: &csv::ByteRecord) -> bool {
        record.iter().any(|cell| self.lookup(cell.trim_ascii()).is_some())
    }

    fn lookup(&self, name: &[u8]) -> Option<Option<usize>> {
        let name = std::str::from_utf8(name).ok()?;
        self.names.get(name).copied()
    }

    fn non_numeric(&self, row: usize, feature: usize) -> String {
        format!(
            "row {row}, column {}: expected a number or a missing value",
            self.features[feature]
        )
    }

    fn push_instance(&self, instance: &Value, rows: &mut Rows) -> Result<(), String> {
        let row = rows.count + 1;
        match instance {
            Value::Array(cells) => {
                let columns = self.positional(cells.len()).ok_or_else(|| {
                    format!(
                        "instance {row} has {} values; a list instance must have {}",
                        cells.len(),
                        self.widths()
                    )
                })?;
                for (feature, &column) in columns.iter().enumerate() {
                    let value = json_number(&cells[column]).ok_or_else(|| self.non_numeric(row, feature))?;
                    rows.values.push(value);
                }
            }
            Value::Object(map) => {
                let start = rows.values.len();
                rows.values.resize(start + self.features.len(), f64::NAN);
                let mut seen = vec![false; self.features.len()];
                for (key, cell) in map {
                    if let Some(Some(feature)) = self.names.get(key.as_str()).copied() {
                        rows.values[start + feature] =
                            json_number(cell).ok_or_else(|| self.non_numeric(row, feature))?;
                        seen[feature] = true;
                    }
                }
                if let Some(missing) = seen.iter().position(|seen| !seen) {
                    return Err(format!(
                        "instance {row} is missing model feature {}",
                        self.features[missing]
                    ));
                }
            }
            _ => return Err(format!("instance {row} is not a JSON object or list")),
        }
        rows.count += 1;
        Ok(())
    }
}

/// The number in a CSV cell: trimmed; empty and non-finite spellings are missing (NaN).
fn number(cell: &[u8]) -> Option<f64> {
    let cell = cell.trim_ascii();
    if cell.is_empty() {
        return Some(f64::NAN);
    }
    let value = crate::decimal::parse(cell)?;
    Some(if value.is_finite() { value } else { f64::NAN })
}

/// A JSON value as a feature: a number, `null` (missing) or a string holding a number.
fn json_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64().map(|v| if v.is_finite() { v } else { f64::NAN }),
        Value::Null => Some(f64::NAN),
        Value::String(text) => number(text.as_bytes()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> FeatureColumns {
        FeatureColumns::new(&["Flow_Duration".to_string(), "Tot_Fwd_Pkts".to_string()])
    }

    fn read(format: InputFormat, body: &str) -> Result<Rows, String> {
        columns().read(format, body.as_bytes())
    }

    fn values(rows: &Rows) -> Vec<String> {
        rows.values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn content_types_name_the_formats_serve_accepts() {
        assert_eq!(
            InputFormat::from_content_type("text/csv; charset=utf-8"),
            Some(InputFormat::Csv)
        );
        assert_eq!(
            InputFormat::from_content_type("Application/JSON"),
            Some(InputFormat::Json)
        );
        assert_eq!(
            InputFormat::from_content_type("application/x-jsonlines"),
            Some(InputFormat::JsonLines)
        );
        assert_eq!(InputFormat::from_content_type("application/octet-stream"), None);
    }

    #[test]
    fn csv_without_a_header_is_the_features_in_order() {
        let rows = read(InputFormat::Csv, "366,0\r\n72, 1\n\n5,\n").unwrap();
        assert_eq!(rows.count, 3);
        assert_eq!(values(&rows), ["366", "0", "72", "1", "5", "NaN"]);
    }

    #[test]
    fn csv_with_a_header_is_matched_by_name_and_extra_columns_are_ignored() {
        let body =
            "\u{feff}Label,Tot_Fwd_Pkts,Src_Port,Flow_Duration\nNormal,2,443,366\nAnomaly,inf,80,\"1,5\"\n";
        let error = read(InputFormat::Csv, body).unwrap_err();
        assert!(error.contains("row 2, column Flow_Duration"), "{error}");
        let rows = read(
            InputFormat::Csv,
            "Label,Tot_Fwd_Pkts,Src_Port,Flow_Duration\nNormal,2,443,366\nAnomaly,inf,80,\"15\"\n",
        )
        .unwrap();
        assert_eq!(values(&rows), ["366", "2", "15", "NaN"]);
        let error = read(InputFormat::Csv, "Flow_Duration,Label\n1,Normal\n").unwrap_err();
        assert!(error.contains("missing model feature Tot_Fwd_Pkts"), "{error}");
        let error = read(InputFormat::Csv, "Flow_Duration,Tot_Fwd_Pkts\n1,2,3\n").unwrap_err();
        assert!(
            error.contains("row 1 has 3 fields but the header has 2"),
            "{error}"
        );
    }

    #[test]
    fn csv_rows_of_a_wrong_width_or_with_text_are_refused() {
        let error = read(InputFormat::Csv, "1,2,3\n").unwrap_err();
        assert!(error.contains("must have 2 or 86 or 83"), "{error}");
        let error = read(InputFormat::Csv, "1,2\n1,abc\n").unwrap_err();
        assert!(error.contains("row 2, column Tot_Fwd_Pkts"), "{error}");
        assert!(
            read(InputFormat::Csv, "\n\n")
                .unwrap_err()
                .contains("no data rows")
        );
    }

    #[test]
    fn the_raw_layout_without_a_header_is_placed_by_position() {
        let mut cells = vec!["0"; RAW_COLUMNS.len()];
        cells[RAW_COLUMNS.iter().position(|c| *c == "Flow_Duration").unwrap()] = "366";
        cells[RAW_COLUMNS.iter().position(|c| *c == "Tot_Fwd_Pkts").unwrap()] = "3";
        let rows = read(InputFormat::Csv, &cells.join(",")).unwrap();
        assert_eq!(values(&rows), ["366", "3"]);
        let rows = read(InputFormat::Csv, &cells[..RAW_COLUMNS_WITHOUT_LABELS].join(",")).unwrap();
        assert_eq!(values(&rows), ["366", "3"]);
    }

    #[test]
    fn json_instances_are_objects_or_lists() {
        let body =
            r#"{"instances": [{"Tot_Fwd_Pkts": 2, "Flow_Duration": "366", "Label": "x"}, [72, null]]}"#;
        let rows = read(InputFormat::Json, body).unwrap();
        assert_eq!(values(&rows), ["366", "2", "72", "NaN"]);
        let rows = read(InputFormat::Json, r#"[[1, "inf"]]"#).unwrap();
        assert_eq!(values(&rows), ["1", "NaN"]);
        for (body, reason) in [
            (r#"{"rows": []}"#, "no \"instances\" list"),
            (r#"[{"Flow_Duration": 1}]"#, "missing model feature Tot_Fwd_Pkts"),
            (r#"[[1, true]]"#, "column Tot_Fwd_Pkts"),
            (r#"[[1, 2, 3]]"#, "has 3 values"),
            (r#"[7]"#, "not a JSON object or list"),
            ("{", "invalid JSON"),
        ] {
            let error = read(InputFormat::Json, body).unwrap_err();
            assert!(error.contains(reason), "{body}: {error}");
        }
    }

    #[test]
    fn json_lines_are_one_instance_per_line() {
        let body = "{\"Flow_Duration\": 1, \"Tot_Fwd_Pkts\": 2}\n\n[3, 4]\n";
        assert_eq!(
            values(&read(InputFormat::JsonLines, body).unwrap()),
            ["1", "2", "3", "4"]
        );
        let error = read(InputFormat::JsonLines, "[1, 2]\n{oops\n").unwrap_err();
        assert!(error.contains("line 2 is not a valid JSON instance"), "{error}");
    }
}
