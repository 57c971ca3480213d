//! Loading a data channel (CSV, CSV.gz or Parquet; one file or many) into a labelled, row-major
//! feature matrix.
//!
//! Features are the numeric columns that are neither the label, nor excluded, nor an unnamed row index.
//! `inf`, `-inf`, `NaN` and empty cells are missing values (NaN), never errors: LightGBM handles
//! missing values natively. A column whose non-missing cells are mostly text (an IP address, a
//! timestamp) is not a feature and is reported as dropped.
//!
//! CSV is parsed in batches of whole records on every core (`read_csv`); the table is the same
//! whatever the batch size, and errors name the file's own line numbers.
//!
//! Hostile or broken files end in an error, in bounded time and memory ([`InputLimits`]): a header
//! of more than [`MAX_COLUMNS`] columns, a record longer than [`MAX_RECORD_BYTES`] (a stray `"` that
//! never closes, a file without line breaks), more CSV text than the channel's budget (an eighth of
//! memory, [`CSV_MEMORY_DIVISOR`]): `.csv` files larger than it, refused from their sizes before
//! anything is read, and `.csv.gz` files that decompress to more (a gzip bomb).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::schema::is_row_index_column;

/// What to read from a channel.
#[derive(Debug, Clone)]
pub struct ReadPlan<'a> {
    pub label: &'a str,
    pub positive_class: &'a str,
    /// Columns that are never features, matched without surrounding white space like the header.
    pub exclude: &'a [String],
    /// `None`: discover the features (train channel). `Some`: read exactly these, in this order
    /// (validation and test channels must match the model trained on the train channel).
    pub features: Option<&'a [String]>,
    pub limits: InputLimits,
}

/// Most columns a file's header may have. IoTID20 has 86; LightGBM's per-feature histograms make
/// a dataset of this many columns already a very wide one.
pub const MAX_COLUMNS: usize = 65_536;

/// Most bytes one CSV record may take: a line, or several when a quoted field spans lines. A full
/// header of [`MAX_COLUMNS`] names fits; a stray `"` that never closes, or a file without line
/// breaks, fails at this length instead of buffering the rest of the file.
pub const MAX_RECORD_BYTES: usize = 16 << 20;

/// Environment variable: bytes of CSV text one channel may hold, its `.csv` files and what its
/// `.csv.gz` files decompress to together ([`InputLimits::max_csv_bytes`]). Named for the gzip bomb
/// it was first introduced for; it bounds plain files too.
pub const MAX_DECOMPRESSED_BYTES_ENV: &str = "MODEL_IMAGE_MAX_DECOMPRESSED_BYTES";

/// A channel's CSV text may take an eighth of the usable memory (memory divided by this). The text
/// becomes a table of `f32` cells, up to twice its size (`0,` is 2 bytes, its `f32` 4), and a growing
/// table briefly holds its old and new buffers: an eighth of text can take half the memory at its
/// peak, which leaves the other half for LightGBM's own copy of the data (binned, smaller than ours)
/// and the rest of the process. The same budget holds for plain and gzip input, since the table
/// does not know how its text was stored.
pub const CSV_MEMORY_DIVISOR: u64 = 8;

/// What the CSV budget is, for error messages.
const CSV_BUDGET: &str = "the budget of a channel's CSV text, its .csv files and what its .csv.gz files decompress to together: an eighth of this machine's memory unless MODEL_IMAGE_MAX_DECOMPRESSED_BYTES sets it";

/// The memory assumed when neither `/proc` nor the cgroup tells (the smallest common training
/// instance, 16 GiB).
const FALLBACK_MEMORY_BYTES: u64 = 16 << 30;

/// The bounds a channel's files must stay within, so that a hostile or broken file ends in an
/// error naming the bound instead of an out-of-memory kill or a hang.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputLimits {
    /// Columns in a file's header.
    pub max_columns: usize,
    /// Bytes of one CSV record.
    pub max_record_bytes: usize,
    /// Bytes of CSV text a channel may hold: the sizes of its `.csv` files plus what its `.csv.gz`
    /// files decompress to.
    pub max_csv_bytes: u64,
}

impl Default for InputLimits {
    /// The limits of a machine with [`FALLBACK_MEMORY_BYTES`] of memory.
    fn default() -> Self {
        Self::for_memory(FALLBACK_MEMORY_BYTES)
    }
}

impl InputLimits {
    /// The limits for a machine whose usable memory is `memory_bytes`: a channel's CSV text may
    /// take an eighth of it ([`CSV_MEMORY_DIVISOR`] says why).
    pub fn for_memory(memory_bytes: u64) -> Self {
        Self {
            max_columns: MAX_COLUMNS,
            max_record_bytes: MAX_RECORD_BYTES,
            max_csv_bytes: (memory_bytes / CSV_MEMORY_DIVISOR).max(1),
        }
    }

    /// The limits of this machine: its usable memory is the least of the physical memory, the
    /// cgroup's memory limit and the address-space limit (`ulimit -v`); `$MODEL_IMAGE_MAX_DECOMPRESSED_BYTES`
    /// overrides the CSV budget.
    pub fn from_env() -> Result<Self, LimitError> {
        let mut limits = Self::for_memory(usable_memory_bytes().unwrap_or(FALLBACK_MEMORY_BYTES));
        if let Some(value) = std::env::var_os(MAX_DECOMPRESSED_BYTES_ENV) {
            let text = value.to_string_lossy();
            limits.max_csv_bytes = text
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|&n| n >= 1)
                .ok_or_else(|| LimitError {
                    var: MAX_DECOMPRESSED_BYTES_ENV,
                    value: text.into_owned(),
                })?;
        }
        Ok(limits)
    }
}

/// An input limit set by the environment that is not a positive number of bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var} = `{value}` is invalid: a number of bytes >= 1")]
pub struct LimitError {
    pub var: &'static str,
    pub value: String,
}

/// The least of the memory limits this process can read, if any.
fn usable_memory_bytes() -> Option<u64> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let physical = read("/proc/meminfo").and_then(|text| meminfo_total_bytes(&text));
    let cgroup = read("/sys/fs/cgroup/memory.max").and_then(|text| text.trim().parse::<u64>().ok());
    let address_space = read("/proc/self/limits").and_then(|text| address_space_limit_bytes(&text));
    [physical, cgroup, address_space].into_iter().flatten().min()
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn meminfo_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kib = line.split_whitespace().nth(1)?.parse::<u64>().ok()?;
    kib.checked_mul(1024)
}

/// The soft `Max address space` of `/proc/self/limits`, in bytes (`None` when unlimited).
fn address_space_limit_bytes(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max address space"))?;
    line.trim_start_matches("Max address space")
        .split_whitespace()
        .next()?
        .parse::<u64>()
        .ok()
}

/// Bytes, with their size in MiB for people.
fn show_bytes(bytes: u64) -> String {
    format!("{bytes} bytes ({:.1} MiB)", bytes as f64 / f64::from(1 << 20))
}

/// A channel's rows: features row-major as `f32` (NaN = missing), labels as "is positive".
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledTable {
    pub features: Vec<String>,
    pub values: Vec<f32>,
    pub labels: Vec<bool>,
    /// Row count per label value seen, positive class included.
    pub label_counts: BTreeMap<String, usize>,
    /// Columns that were not used, with the reason.
    pub dropped_columns: Vec<(String, String)>,
    /// Rows skipped because their label cell was empty.
    pub rows_without_label: usize,
    /// Cells in feature columns that were not numbers and were read as missing.
    pub unparsable_cells: usize,
    pub files: Vec<PathBuf>,
}

impl LabelledTable {
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    pub fn row(&self, index: usize) -> &[f32] {
        let width = self.features.len();
        &self.values[index * width..(index + 1) * width]
    }

    pub fn positives(&self) -> usize {
        self.labels.iter().filter(|&&p| p).count()
    }

    /// The most frequent label value other than the positive class (the negative class's name).
    pub fn negative_label(&self, positive_class: &str) -> Option<&str> {
        self.label_counts
            .iter()
            .filter(|(label, _)| label.as_str() != positive_class)
            .max_by_key(|(_, count)| **count)
            .map(|(label, _)| label.as_str())
    }

    /// The rows at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> LabelledTable {
        let width = self.features.len();
        let mut values = Vec::with_capacity(indices.len() * width);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            values.extend_from_slice(self.row(i));
            labels.push(self.labels[i]);
        }
        LabelledTable {
            values,
            labels,
            ..self.clone_without_rows()
        }
    }

    fn clone_without_rows(&self) -> LabelledTable {
        LabelledTable {
            features: self.features.clone(),
            values: Vec::new(),
            labels: Vec::new(),
            label_counts: self.label_counts.clone(),
            dropped_columns: self.dropped_columns.clone(),
            rows_without_label: self.rows_without_label,
            unparsable_cells: self.unparsable_cells,
            files: self.files.clone(),
        }
    }
}

/// Why a channel could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("channel directory {0} does not exist")]
    MissingChannel(PathBuf),
    #[error("no data files (.csv, .csv.gz, .parquet) in {0}")]
    NoFiles(PathBuf),
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path} has no label column `{label}` (columns: {columns})")]
    NoLabel {
        path: PathBuf,
        label: String,
        columns: String,
    },
    #[error("{path} lacks the feature column(s) {missing} that the model was trained on")]
    MissingFeatures { path: PathBuf, missing: String },
    #[error("{path} has no header row")]
    NoHeader { path: PathBuf },
    #[error("{path} has {columns} columns; at most {limit} are supported")]
    TooManyColumns {
        path: PathBuf,
        columns: usize,
        limit: usize,
    },
    #[error(
        "{path} line {line}: a record longer than {}; a `\"` that opens a quoted field and never closes makes the rest of the file one field, and a file without line breaks is one record", show_bytes(*.limit as u64)
    )]
    RecordTooLong {
        path: PathBuf,
        /// The line the record starts on.
        line: usize,
        limit: usize,
    },
    /// Found from the `.csv` files' sizes, before any is read.
    #[error(
        "{path} is {} of CSV{}, more than {} ({CSV_BUDGET}); nothing was read. Train on an instance with more memory, or on a sample of the data", show_bytes(*.size), with_earlier(*.size, *.total), show_bytes(*.limit)
    )]
    CsvTooLarge {
        path: PathBuf,
        /// The file's size.
        size: u64,
        /// The sizes of the channel's `.csv` files up to this one.
        total: u64,
        limit: u64,
    },
    /// A `.csv` file that yields more than its size said (a pipe, a file still being written), past
    /// the budget.
    #[error(
        "{path}: reading it takes the channel's CSV text past {} ({CSV_BUDGET}); it holds more than its size said when reading began (a pipe, or a file still being written)", show_bytes(*.limit)
    )]
    CsvGrewTooLarge { path: PathBuf, limit: u64 },
    #[error("{path}: decompressed input exceeds {} ({CSV_BUDGET})", show_bytes(*.limit))]
    DecompressedTooLarge { path: PathBuf, limit: u64 },
    #[error("no numeric feature columns left after excluding the label and {excluded}")]
    NoFeatures { excluded: String },
}

/// The data files of a channel directory (recursively, sorted, hidden files skipped), or the file
/// itself when `path` is a file.
pub fn channel_files(path: &Path) -> Result<Vec<PathBuf>, TableError> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !path.is_dir() {
        return Err(TableError::MissingChannel(path.to_path_buf()));
    }
    let mut files = Vec::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| unreadable(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| unreadable(&dir, e))?;
            let entry_path = entry.path();
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            if entry_path.is_dir() {
                pending.push(entry_path);
            } else if Format::of(&entry_path).is_some() {
                files.push(entry_path);
            }
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(TableError::NoFiles(path.to_path_buf()));
    }
    Ok(files)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    Csv,
    CsvGz,
    Parquet,
}

impl Format {
    fn of(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        if name.ends_with(".csv.gz") {
            Some(Format::CsvGz)
        } else if name.ends_with(".csv") {
            Some(Format::Csv)
        } else if name.ends_with(".parquet") || name.ends_with(".pq") {
            Some(Format::Parquet)
        } else {
            None
        }
    }
}

/// Reads every data file of a channel.
///
/// Its CSV text is bounded by [`InputLimits::max_csv_bytes`]: the `.csv` files' sizes are added up
/// first, and a channel they already take past the budget is refused before anything is read. What
/// they leave of it is what the `.csv.gz` files may decompress to. Every byte read is counted too,
/// so a `.csv` file that holds more than its size said (a pipe) also stops at the budget.
pub fn read_channel(path: &Path, plan: &ReadPlan<'_>) -> Result<LabelledTable, TableError> {
    let files = channel_files(path)?;
    let limit = plan.limits.max_csv_bytes;
    let sizes = csv_sizes(&files, limit)?;
    let mut builder = TableBuilder::new(plan);
    // The budget not yet spent nor reserved for the `.csv` files still to be read.
    let mut remaining = limit - sizes.values().sum::<u64>();
    for file in &files {
        match Format::of(file) {
            Some(Format::Csv) => {
                let reader = File::open(file).map_err(|e| unreadable(file, e))?;
                remaining += sizes[file.as_path()];
                let budgeted = Budgeted {
                    inner: reader,
                    remaining: &mut remaining,
                    compressed: false,
                };
                read_csv(file, budgeted, &mut builder)?
            }
            Some(Format::CsvGz) => {
                let reader = File::open(file).map_err(|e| unreadable(file, e))?;
                let decoder = flate2::read::MultiGzDecoder::new(BufReader::new(reader));
                let budgeted = Budgeted {
                    inner: decoder,
                    remaining: &mut remaining,
                    compressed: true,
                };
                read_csv(file, budgeted, &mut builder)?
            }
            Some(Format::Parquet) => read_parquet(file, &mut builder)?,
            None => unreachable!("channel_files only lists known formats"),
        }
    }
    let mut table = builder.finish()?;
    table.files = files;
    Ok(table)
}

/// The sizes of a channel's `.csv` files, from their metadata; an error naming the file that takes
/// them past `limit`. A pipe or another file without a size counts 0 here, and is bounded while it
/// is read.
fn csv_sizes(files: &[PathBuf], limit: u64) -> Result<HashMap<&Path, u64>, TableError> {
    let mut sizes = HashMap::new();
    let mut total = 0u64;
    for file in files.iter().filter(|f| Format::of(f) == Some(Format::Csv)) {
        let size = std::fs::metadata(file).map_err(|e| unreadable(file, e))?.len();
        total = total.saturating_add(size);
        if total > limit {
            return Err(TableError::CsvTooLarge {
                path: file.clone(),
                size,
                total,
                limit,
            });
        }
        sizes.insert(file.as_path(), size);
    }
    Ok(sizes)
}

/// `, N with the channel's .csv files before it` when there are some.
fn with_earlier(size: u64, total: u64) -> String {
    if total > size {
        format!(", {} with the channel's .csv files before it", show_bytes(total))
    } else {
        String::new()
    }
}

/// A reader that fails once its budget is spent: bounds the CSV text of a channel, what its
/// `.csv.gz` files (a gzip bomb) decompress to and what its `.csv` files hold. The budget is shared
/// by the channel's files.
struct Budgeted<'b, R> {
    inner: R,
    remaining: &'b mut u64,
    /// Whether the input is decompressed, for the error.
    compressed: bool,
}

/// The error a [`Budgeted`] reader fails with.
#[derive(Debug, thiserror::Error)]
#[error("CSV input exceeds its budget")]
struct BudgetSpent {
    compressed: bool,
}

impl<R: Read> Read for Budgeted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // One byte past the budget is enough to know it is exceeded.
        let allowed = usize::try_from(*self.remaining)
            .unwrap_or(usize::MAX)
            .saturating_add(1)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..allowed])?;
        match self.remaining.checked_sub(n as u64) {
            Some(left) => {
                *self.remaining = left;
                Ok(n)
            }
            None => Err(std::io::Error::other(BudgetSpent {
                compressed: self.compressed,
            })),
        }
    }
}

fn unreadable(path: &Path, error: impl std::fmt::Display) -> TableError {
    TableError::Unreadable {
        path: path.to_path_buf(),
        reason: error.to_string(),
    }
}

/// One cell as a reader sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cell<'a> {
    Number(f64),
    Text(&'a str),
    Missing,
}

/// Parses a CSV cell: [`parse_cell`] on its text, with plain decimals read straight from the bytes.
fn parse_cell_bytes(bytes: &[u8]) -> Cell<'_> {
    let bytes = bytes.trim_ascii();
    match crate::decimal::parse(bytes) {
        Some(v) if v.is_finite() => Cell::Number(v),
        Some(_) => Cell::Missing,
        None => match std::str::from_utf8(bytes) {
            Ok(text) => parse_cell(text),
            Err(_) => Cell::Text("(invalid UTF-8)"),
        },
    }
}

/// Parses a text cell: numbers, and the spellings of missing values.
fn parse_cell(text: &str) -> Cell<'_> {
    let text = text.trim();
    if text.is_empty() {
        return Cell::Missing;
    }
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Cell::Number(v),
        Ok(_) => Cell::Missing, // inf, -inf, NaN, infinity in any case
        Err(_) => {
            if text.eq_ignore_ascii_case("null") || text.eq_ignore_ascii_case("na") {
                Cell::Missing
            } else {
                Cell::Text(text)
            }
        }
    }
}

/// Accumulates rows from any number of files into one table.
struct TableBuilder<'p> {
    plan: &'p ReadPlan<'p>,
    /// Candidate feature columns (names), fixed by the first file.
    columns: Vec<String>,
    rows: RowBatch,
    dropped: Vec<(String, String)>,
}

/// Rows of candidate columns with what was seen in their cells. A file is parsed in batches on
/// several threads; the batches are appended to the table in file order.
#[derive(Debug, Default)]
struct RowBatch {
    values: Vec<f32>,
    labels: Vec<bool>,
    label_counts: BTreeMap<String, usize>,
    /// Per candidate column: numeric cells, text cells, and the first text value seen.
    numeric_cells: Vec<usize>,
    text_cells: Vec<usize>,
    text_example: Vec<Option<String>>,
    rows_without_label: usize,
}

impl RowBatch {
    fn new(columns: usize) -> Self {
        Self {
            numeric_cells: vec![0; columns],
            text_cells: vec![0; columns],
            text_example: vec![None; columns],
            ..Self::default()
        }
    }

    fn push_row<'c>(&mut self, file: &FileColumns, positive_class: &str, cell: impl Fn(usize) -> Cell<'c>) {
        let positive = match cell(file.label) {
            Cell::Text(text) => {
                count_label(&mut self.label_counts, text);
                text == positive_class
            }
            Cell::Number(v) => {
                let label = format_number(v);
                count_label(&mut self.label_counts, &label);
                label == positive_class
            }
            Cell::Missing => {
                self.rows_without_label += 1;
                return;
            }
        };
        self.labels.push(positive);
        for (column, &source) in file.sources.iter().enumerate() {
            let value = match cell(source) {
                Cell::Number(v) => {
                    self.numeric_cells[column] += 1;
                    v as f32
                }
                Cell::Missing => f32::NAN,
                Cell::Text(text) => {
                    self.text_cells[column] += 1;
                    if self.text_example[column].is_none() {
                        self.text_example[column] = Some(text.to_string());
                    }
                    f32::NAN
                }
            };
            self.values.push(value);
        }
    }

    /// Appends `later`'s rows after this batch's.
    fn append(&mut self, later: RowBatch) {
        if self.labels.is_empty() && self.values.is_empty() {
            let RowBatch {
                values,
                labels,
                label_counts,
                numeric_cells,
                text_cells,
                text_example,
                rows_without_label,
            } = later;
            self.values = values;
            self.labels = labels;
            self.rows_without_label += rows_without_label;
            self.merge_counts(label_counts, &numeric_cells, &text_cells, text_example);
            return;
        }
        self.values.extend_from_slice(&later.values);
        self.labels.extend_from_slice(&later.labels);
        self.rows_without_label += later.rows_without_label;
        self.merge_counts(
            later.label_counts,
            &later.numeric_cells,
            &later.text_cells,
            later.text_example,
        );
    }

    fn merge_counts(
        &mut self,
        label_counts: BTreeMap<String, usize>,
        numeric_cells: &[usize],
        text_cells: &[usize],
        text_example: Vec<Option<String>>,
    ) {
        for (label, count) in label_counts {
            *self.label_counts.entry(label).or_default() += count;
        }
        for (mine, theirs) in self.numeric_cells.iter_mut().zip(numeric_cells) {
            *mine += theirs;
        }
        for (mine, theirs) in self.text_cells.iter_mut().zip(text_cells) {
            *mine += theirs;
        }
        for (mine, theirs) in self.text_example.iter_mut().zip(text_example) {
            if mine.is_none() {
                *mine = theirs;
            }
        }
    }
}

fn count_label(counts: &mut BTreeMap<String, usize>, label: &str) {
    match counts.get_mut(label) {
        Some(count) => *count += 1,
        None => {
            counts.insert(label.to_string(), 1);
        }
    }
}

/// How one file's columns map onto the table.
struct FileColumns {
    /// Columns in the file's header.
    width: usize,
    label: usize,
    /// For each table column, the file's column index.
    sources: Vec<usize>,
}

impl<'p> TableBuilder<'p> {
    fn new(plan: &'p ReadPlan<'p>) -> Self {
        Self {
            plan,
            columns: Vec::new(),
            rows: RowBatch::default(),
            dropped: Vec::new(),
        }
    }

    /// Maps a file's header; the first file fixes the table's columns.
    fn start_file(&mut self, path: &Path, header: &[String]) -> Result<FileColumns, TableError> {
        let limit = self.plan.limits.max_columns;
        if header.len() > limit {
            return Err(TableError::TooManyColumns {
                path: path.to_path_buf(),
                columns: header.len(),
                limit,
            });
        }
        // Each name's first column: one pass, so a wide header costs linear time.
        let mut positions: HashMap<&str, usize> = HashMap::with_capacity(header.len());
        for (i, name) in header.iter().enumerate() {
            positions.entry(name.as_str()).or_insert(i);
        }
        let position = |name: &str| positions.get(name).copied();
        let label = position(self.plan.label).ok_or_else(|| TableError::NoLabel {
            path: path.to_path_buf(),
            label: self.plan.label.to_string(),
            columns: abbreviate(header.iter().map(String::as_str)),
        })?;
        if self.columns.is_empty() {
            self.columns = match self.plan.features {
                Some(features) => features.to_vec(),
                None => {
                    let excluded: HashSet<&str> = self.plan.exclude.iter().map(|e| e.trim()).collect();
                    let mut seen: HashSet<&str> = HashSet::with_capacity(header.len());
                    let mut columns = Vec::new();
                    for name in header {
                        if name == self.plan.label {
                            continue;
                        } else if excluded.contains(name.as_str()) {
                            self.dropped.push((name.clone(), "excluded".into()));
                        } else if is_row_index_column(name) {
                            self.dropped
                                .push((display_name(name), "unnamed row index".into()));
                        } else if !seen.insert(name.as_str()) {
                            self.dropped.push((name.clone(), "duplicate column name".into()));
                        } else {
                            columns.push(name.clone());
                        }
                    }
                    columns
                }
            };
            self.rows = RowBatch::new(self.columns.len());
        }
        let mut sources = Vec::with_capacity(self.columns.len());
        let mut missing = Vec::new();
        for column in &self.columns {
            match position(column) {
                Some(i) => sources.push(i),
                None => missing.push(column.as_str()),
            }
        }
        if !missing.is_empty() {
            return Err(TableError::MissingFeatures {
                path: path.to_path_buf(),
                missing: abbreviate(missing.into_iter()),
            });
        }
        Ok(FileColumns {
            width: header.len(),
            label,
            sources,
        })
    }

    fn push_row<'c>(&mut self, file: &FileColumns, cell: impl Fn(usize) -> Cell<'c>) {
        self.rows.push_row(file, self.plan.positive_class, cell);
    }

    fn finish(self) -> Result<LabelledTable, TableError> {
        let width = self.columns.len();
        let rows = self.rows;
        let mut dropped = self.dropped;
        let mut keep = Vec::with_capacity(width);
        let mut unparsable_cells = 0;
        for column in 0..width {
            let text = rows.text_cells[column];
            let numbers = rows.numeric_cells[column];
            // Discovered columns that are mostly text are identifiers, not features. A column the
            // model requires is always kept: its stray text cells become missing values.
            let discovered = self.plan.features.is_none();
            let is_text = discovered && text > 0 && text * 100 >= (text + numbers);
            // A discovered column with no value in any row tells the model nothing.
            let is_empty = discovered && text == 0 && numbers == 0 && !rows.labels.is_empty();
            if is_text {
                let example = rows.text_example[column].as_deref().unwrap_or_default();
                dropped.push((
                    self.columns[column].clone(),
                    format!("not numeric (e.g. `{example}`)"),
                ));
            } else if is_empty {
                dropped.push((self.columns[column].clone(), "every cell missing".into()));
            } else {
                unparsable_cells += text;
                keep.push(column);
            }
        }
        if keep.is_empty() {
            let excluded = dropped
                .iter()
                .map(|(column, reason)| format!("{column} ({reason})"));
            let excluded = excluded.collect::<Vec<_>>();
            return Err(TableError::NoFeatures {
                excluded: abbreviate(excluded.iter().map(String::as_str)),
            });
        }
        let values = if keep.len() == width {
            rows.values
        } else {
            let mut compact = Vec::with_capacity(rows.labels.len() * keep.len());
            for row in rows.values.chunks_exact(width.max(1)) {
                compact.extend(keep.iter().map(|&c| row[c]));
            }
            compact
        };
        Ok(LabelledTable {
            features: keep.iter().map(|&c| self.columns[c].clone()).collect(),
            values,
            labels: rows.labels,
            label_counts: rows.label_counts,
            dropped_columns: dropped,
            rows_without_label: rows.rows_without_label,
            unparsable_cells,
            files: Vec::new(),
        })
    }
}

fn display_name(name: &str) -> String {
    if name.is_empty() {
        "(unnamed)".to_string()
    } else {
        name.to_string()
    }
}

fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        v.to_string()
    }
}

/// The first few names, and how many there are in all: failure reasons stay short (SageMaker shows
/// the first 1,024 characters) however wide the file.
fn abbreviate<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> String {
    let count = names.len();
    let shown: Vec<&str> = names.take(8).collect();
    if count > shown.len() {
        format!("{}, … ({count} in all)", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// Bytes of CSV handed to one parsing thread at a time: large enough that the per-batch overhead
/// vanishes, small enough that a 250 MB file keeps every core busy and little is held in memory.
const CSV_BATCH_BYTES: usize = 4 << 20;

/// Reads a CSV stream in batches of whole records: one thread reads (and decompresses) the input and
/// cuts it at record boundaries, the available cores parse the batches, and the batches join the
/// table in file order. Parsing is most of the cost of reading a channel (the `csv` crate, UTF-8
/// checks and float parsing per cell), so this divides a channel's read time by the core count.
fn read_csv(path: &Path, input: impl Read + Send, builder: &mut TableBuilder<'_>) -> Result<(), TableError> {
    read_csv_in_batches(path, input, builder, CSV_BATCH_BYTES)
}

fn read_csv_in_batches(
    path: &Path,
    input: impl Read + Send,
    builder: &mut TableBuilder<'_>,
    batch_bytes: usize,
) -> Result<(), TableError> {
    let max_record_bytes = builder.plan.limits.max_record_bytes;
    let max_csv_bytes = builder.plan.limits.max_csv_bytes;
    let batch_error = |error: BatchError| match error {
        BatchError::RecordTooLong { line } => TableError::RecordTooLong {
            path: path.to_path_buf(),
            line,
            limit: max_record_bytes,
        },
        BatchError::Io(e) => match e.get_ref().and_then(|inner| inner.downcast_ref::<BudgetSpent>()) {
            Some(BudgetSpent { compressed: true }) => TableError::DecompressedTooLarge {
                path: path.to_path_buf(),
                limit: max_csv_bytes,
            },
            Some(BudgetSpent { compressed: false }) => TableError::CsvGrewTooLarge {
                path: path.to_path_buf(),
                limit: max_csv_bytes,
            },
            None => unreadable(path, e),
        },
    };
    let mut batches = RecordBatches::new(input, batch_bytes, max_record_bytes);
    let Some(first) = batches.next_batch().map_err(batch_error)? else {
        return Err(TableError::NoHeader {
            path: path.to_path_buf(),
        });
    };
    let (header, header_bytes, header_lines) = read_header(path, &first)?;
    let columns = builder.start_file(path, &header)?;
    let positive_class = builder.plan.positive_class;
    let column_count = builder.columns.len();
    let parse = |batch: &[u8]| parse_batch(batch, &columns, positive_class, column_count);

    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    // Lines before the current batch, for error messages with the file's line numbers.
    let mut lines_before = header_lines;
    let mut append = |builder: &mut TableBuilder<'_>, parsed: ParsedBatch| -> Result<(), TableError> {
        if let Some((line, reason)) = parsed.error {
            return Err(TableError::Unreadable {
                path: path.to_path_buf(),
                reason: format!("line {}: {reason}", lines_before + line),
            });
        }
        lines_before += parsed.lines;
        builder.rows.append(parsed.rows);
        Ok(())
    };
    let first_parsed = parse(&first[header_bytes..]);
    if threads == 1 || first.len() < batch_bytes {
        // Small input (or one core): no threads.
        append(builder, first_parsed)?;
        while let Some(batch) = batches.next_batch().map_err(batch_error)? {
            append(builder, parse(&batch))?;
        }
        return Ok(());
    }
    append(builder, first_parsed)?;
    drop(first);

    let (batch_tx, batch_rx) = std::sync::mpsc::sync_channel::<(usize, Vec<u8>)>(threads * 2);
    let (parsed_tx, parsed_rx) = std::sync::mpsc::channel::<(usize, ParsedBatch)>();
    // Owned by the parsers: when they stop (an error is being reported), the reader's next send
    // fails and it stops too.
    let batch_rx = std::sync::Arc::new(std::sync::Mutex::new(batch_rx));
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || -> Result<(), BatchError> {
            let mut index = 0;
            while let Some(batch) = batches.next_batch()? {
                if batch_tx.send((index, batch)).is_err() {
                    break; // the parsers stopped: an error is being reported
                }
                index += 1;
            }
            Ok(())
        });
        for _ in 0..threads {
            let parsed_tx = parsed_tx.clone();
            let batch_rx = std::sync::Arc::clone(&batch_rx);
            let parse = &parse;
            scope.spawn(move || {
                loop {
                    let next = batch_rx.lock().map(|rx| rx.recv());
                    let Ok(Ok((index, batch))) = next else { break };
                    if parsed_tx.send((index, parse(&batch))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(parsed_tx);
        drop(batch_rx);
        // Batches finish out of order; they join the table in order.
        let mut waiting = BTreeMap::new();
        let mut next = 0;
        let mut outcome = Ok(());
        for (index, parsed) in parsed_rx.iter() {
            waiting.insert(index, parsed);
            while let Some(parsed) = waiting.remove(&next) {
                next += 1;
                if outcome.is_ok() {
                    outcome = append(builder, parsed);
                }
            }
            if outcome.is_err() {
                break;
            }
        }
        // Dropping the receiver stops the parsers, which stops the reader.
        drop(parsed_rx);
        let read = reader
            .join()
            .unwrap_or_else(|_| Err(BatchError::Io(std::io::Error::other("reader thread panicked"))));
        outcome?;
        read.map_err(batch_error)
    })
}

/// The header record of a CSV file, the bytes it takes and the lines it spans.
fn read_header(path: &Path, batch: &[u8]) -> Result<(Vec<String>, usize, usize), TableError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(batch);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| unreadable(path, e))?
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
        .collect();
    if header.is_empty() || header.iter().all(|h| h.is_empty()) {
        return Err(TableError::NoHeader {
            path: path.to_path_buf(),
        });
    }
    let end = reader.position().byte() as usize;
    let bytes = end.min(batch.len());
    Ok((header, bytes, memchr::memchr_iter(b'\n', &batch[..bytes]).count()))
}

/// The rows of one batch, or where it went wrong (line within the batch, 1-based).
struct ParsedBatch {
    rows: RowBatch,
    /// Line breaks in the batch.
    lines: usize,
    error: Option<(usize, String)>,
}

fn parse_batch(
    batch: &[u8],
    columns: &FileColumns,
    positive_class: &str,
    column_count: usize,
) -> ParsedBatch {
    let mut rows = RowBatch::new(column_count);
    let lines = memchr::memchr_iter(b'\n', batch).count();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(batch);
    let mut record = csv::ByteRecord::new();
    let mut error = None;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map_or(1, |p| p.line() as usize);
                error = Some((line, e.to_string()));
                break;
            }
        }
        if record.len() != columns.width {
            let line = record.position().map_or(1, |p| p.line() as usize);
            error = Some((
                line,
                format!("{} fields, but the header has {}", record.len(), columns.width),
            ));
            break;
        }
        let record = &record;
        rows.push_row(columns, positive_class, |i| match record.get(i) {
            Some(bytes) => parse_cell_bytes(bytes),
            None => Cell::Missing,
        });
    }
    ParsedBatch { rows, lines, error }
}

/// Cuts a CSV stream into batches that end at record boundaries: at a line break outside quotes
/// (an even number of `"` since the batch began, since every batch begins at a record boundary).
/// Each byte is searched for a boundary once, and a record may take at most `max_record_bytes`: a
/// stray `"` costs linear time and bounded memory before it fails.
struct RecordBatches<R> {
    input: R,
    batch_bytes: usize,
    max_record_bytes: usize,
    /// Bytes read past the end of the previous batch.
    carry: Vec<u8>,
    finished: bool,
    /// Line breaks in the batches returned so far.
    lines_before: usize,
}

/// Why the next batch could not be cut.
#[derive(Debug)]
enum BatchError {
    Io(std::io::Error),
    /// The record starting on this line of the stream is longer than the limit.
    RecordTooLong {
        line: usize,
    },
}

impl<R: Read> RecordBatches<R> {
    fn new(input: R, batch_bytes: usize, max_record_bytes: usize) -> Self {
        Self {
            input,
            batch_bytes,
            max_record_bytes,
            carry: Vec::new(),
            finished: false,
            lines_before: 0,
        }
    }

    fn next_batch(&mut self) -> Result<Option<Vec<u8>>, BatchError> {
        let mut batch = std::mem::take(&mut self.carry);
        // `batch[..searched]` holds no record boundary and `quotes` quotes.
        let mut searched = 0;
        let mut quotes = 0;
        loop {
            if self.finished {
                return Ok((!batch.is_empty()).then(|| self.emit(batch)));
            }
            let filled = batch.len();
            let step = (self.batch_bytes / 4).max(1);
            let want = (self.batch_bytes + step).max(filled + step);
            batch.resize(want, 0);
            let mut end = filled;
            while end < want {
                match self.input.read(&mut batch[end..]) {
                    Ok(0) => {
                        self.finished = true;
                        break;
                    }
                    Ok(n) => end += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(BatchError::Io(e)),
                }
            }
            batch.truncate(end);
            if self.finished {
                continue;
            }
            match record_boundary(&batch, searched, quotes) {
                Ok(cut) => {
                    self.carry = batch[cut..].to_vec();
                    batch.truncate(cut);
                    return Ok(Some(self.emit(batch)));
                }
                Err(quotes_so_far) => {
                    // One record longer than the batch so far (or an open quote): read more.
                    if batch.len() > self.max_record_bytes {
                        return Err(BatchError::RecordTooLong {
                            line: self.lines_before + 1,
                        });
                    }
                    searched = batch.len();
                    quotes = quotes_so_far;
                }
            }
        }
    }

    /// Counts the lines of a batch about to be returned.
    fn emit(&mut self, batch: Vec<u8>) -> Vec<u8> {
        self.lines_before += memchr::memchr_iter(b'\n', &batch).count();
        batch
    }
}

/// Just after the last line break that ends a record, searching `batch[from..]` only, where
/// `batch[..from]` holds `quotes_before` quotes and no boundary. Without one, the quotes in all of
/// `batch`, for the next search.
fn record_boundary(batch: &[u8], from: usize, quotes_before: usize) -> Result<usize, usize> {
    let total = quotes_before + memchr::memchr_iter(b'"', &batch[from..]).count();
    let mut quotes = total;
    let mut end = batch.len();
    while let Some(offset) = memchr::memrchr(b'\n', &batch[from..end]) {
        let newline = from + offset;
        quotes -= memchr::memchr_iter(b'"', &batch[newline..end]).count();
        if quotes.is_multiple_of(2) {
            return Ok(newline + 1);
        }
        end = newline;
    }
    Err(total)
}

fn read_parquet(path: &Path, builder: &mut TableBuilder<'_>) -> Result<(), TableError> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    let file = File::open(path).map_err(|e| unreadable(path, e))?;
    let reader = SerializedFileReader::new(file).map_err(|e| unreadable(path, e))?;
    let schema = reader.metadata().file_metadata().schema_descr();
    let header: Vec<String> = schema
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.name().trim().to_string())
        .collect();
    let columns = builder.start_file(path, &header)?;
    let rows = reader.get_row_iter(None).map_err(|e| unreadable(path, e))?;
    let mut texts: Vec<String> = Vec::new();
    let mut cells: Vec<CellOwned> = Vec::with_capacity(header.len());
    for row in rows {
        let row = row.map_err(|e| unreadable(path, e))?;
        cells.clear();
        texts.clear();
        for (_, field) in row.get_column_iter() {
            let cell = match field {
                Field::Null => CellOwned::Missing,
                Field::Bool(b) => CellOwned::Number(f64::from(u8::from(*b))),
                Field::Byte(v) => CellOwned::Number(f64::from(*v)),
                Field::Short(v) => CellOwned::Number(f64::from(*v)),
                Field::Int(v) => CellOwned::Number(f64::from(*v)),
                Field::Long(v) => CellOwned::Number(*v as f64),
                Field::UByte(v) => CellOwned::Number(f64::from(*v)),
                Field::UShort(v) => CellOwned::Number(f64::from(*v)),
                Field::UInt(v) => CellOwned::Number(f64::from(*v)),
                Field::ULong(v) => CellOwned::Number(*v as f64),
                Field::Float(v) => CellOwned::number(f64::from(*v)),
                Field::Double(v) => CellOwned::number(*v),
                Field::Str(s) => {
                    texts.push(s.clone());
                    CellOwned::Text(texts.len() - 1)
                }
                other => {
                    texts.push(other.to_string());
                    CellOwned::Text(texts.len() - 1)
                }
            };
            cells.push(cell);
        }
        builder.push_row(&columns, |i| match cells.get(i) {
            Some(CellOwned::Number(v)) => Cell::Number(*v),
            Some(CellOwned::Text(t)) => parse_cell(&texts[*t]),
            Some(CellOwned::Missing) | None => Cell::Missing,
        });
    }
    Ok(())
}

/// A Parquet cell, with text kept in a side buffer.
enum CellOwned {
    Number(f64),
    Text(usize),
    Missing,
}

impl CellOwned {
    fn number(v: f64) -> Self {
        if v.is_finite() {
            CellOwned::Number(v)
        } else {
            CellOwned::Missing
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn plan<'a>(exclude: &'a [String]) -> ReadPlan<'a> {
        ReadPlan {
            label: "Label",
            positive_class: "Anomaly",
            exclude,
            features: None,
            limits: InputLimits::default(),
        }
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn cells_parse_numbers_and_missing_spellings() {
        assert_eq!(parse_cell("1.5"), Cell::Number(1.5));
        assert_eq!(parse_cell(" 7 "), Cell::Number(7.0));
        for missing in ["", "  ", "inf", "-inf", "Infinity", "NaN", "nan", "null", "NA"] {
            assert_eq!(parse_cell(missing), Cell::Missing, "{missing:?}");
        }
        assert_eq!(parse_cell("192.168.0.1"), Cell::Text("192.168.0.1"));
        // CSV cells take the byte-level path: same answers.
        for text in [
            "1.5",
            " 7 ",
            "-0.25",
            "1e3",
            "",
            "  ",
            "inf",
            "-inf",
            "NaN",
            "null",
            "NA",
            "192.168.0.1",
            "Anomaly",
        ] {
            assert_eq!(parse_cell_bytes(text.as_bytes()), parse_cell(text), "{text:?}");
        }
        assert_eq!(parse_cell_bytes(b"\xff1"), Cell::Text("(invalid UTF-8)"));
    }

    #[test]
    fn features_exclude_label_identifiers_and_index_and_text() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "a.csv",
            ",Flow_ID,Src_IP,Rate,Note,Label,Cat\n\
             0,f1,10.0.0.1,1.5,x,Anomaly,DoS\n\
             1,f2,10.0.0.2,inf,y,Normal,Normal\n\
             2,f3,10.0.0.3,,z,Anomaly,Mirai\n",
        );
        let exclude = vec!["Flow_ID".to_string(), "Cat".to_string()];
        let table = read_channel(dir.path(), &plan(&exclude)).unwrap();
        assert_eq!(table.features, ["Rate"]);
        assert_eq!(table.rows(), 3);
        assert_eq!(table.labels, [true, false, true]);
        assert_eq!(table.values[0], 1.5);
        assert!(table.values[1].is_nan() && table.values[2].is_nan());
        let dropped: Vec<&str> = table.dropped_columns.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(dropped, ["(unnamed)", "Flow_ID", "Cat", "Src_IP", "Note"]);
        assert_eq!(table.negative_label("Anomaly"), Some("Normal"));
    }

    #[test]
    fn several_files_and_gzip_are_read_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "b.csv", "Label,X,Y\nNormal,3,4\n");
        let gz = File::create(dir.path().join("a.csv.gz")).unwrap();
        let mut encoder = flate2::write::GzEncoder::new(gz, flate2::Compression::fast());
        // Columns in another order: matched by name.
        encoder.write_all(b"Y,X,Label\n2,1,Anomaly\n").unwrap();
        encoder.finish().unwrap();
        write(dir.path(), "notes.txt", "ignored");
        let table = read_channel(dir.path(), &plan(&[])).unwrap();
        assert_eq!(table.features, ["Y", "X"]);
        assert_eq!(table.values, [2.0, 1.0, 4.0, 3.0]);
        assert_eq!(table.labels, [true, false]);
        assert_eq!(table.files.len(), 2);
    }

    #[test]
    fn required_features_must_all_be_present() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.csv", "Label,X\nNormal,3\n");
        let features = vec!["X".to_string(), "Z".to_string()];
        let plan = ReadPlan {
            features: Some(&features),
            ..plan(&[])
        };
        let err = read_channel(dir.path(), &plan).unwrap_err();
        assert!(err.to_string().contains("lacks the feature column(s) Z"), "{err}");
    }

    #[test]
    fn missing_label_column_and_empty_channel_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_channel(dir.path(), &plan(&[])),
            Err(TableError::NoFiles(_))
        ));
        write(dir.path(), "a.csv", "Class,X\nNormal,3\n");
        let err = read_channel(dir.path(), &plan(&[])).unwrap_err();
        assert!(err.to_string().contains("no label column `Label`"), "{err}");
        let missing = dir.path().join("nope");
        assert!(matches!(
            read_channel(&missing, &plan(&[])),
            Err(TableError::MissingChannel(_))
        ));
    }

    #[test]
    fn rows_without_label_are_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.csv", "Label,X\nNormal,3\n,4\nAnomaly,5\n");
        let table = read_channel(dir.path(), &plan(&[])).unwrap();
        assert_eq!(table.rows(), 2);
        assert_eq!(table.rows_without_label, 1);
    }

    #[test]
    fn ragged_csv_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.csv", "Label,X\nNormal,3,9\n");
        let err = read_channel(dir.path(), &plan(&[])).unwrap_err();
        assert!(err.to_string().contains("a.csv"), "{err}");
    }

    /// Reads `text` as one CSV file cut into batches of about `batch_bytes`.
    fn read_in_batches(text: &str, batch_bytes: usize) -> Result<LabelledTable, TableError> {
        read_in_batches_with(text, batch_bytes, InputLimits::default())
    }

    fn read_in_batches_with(
        text: &str,
        batch_bytes: usize,
        limits: InputLimits,
    ) -> Result<LabelledTable, TableError> {
        let plan = ReadPlan { limits, ..plan(&[]) };
        let mut builder = TableBuilder::new(&plan);
        read_csv_in_batches(Path::new("flows.csv"), text.as_bytes(), &mut builder, batch_bytes)?;
        builder.finish()
    }

    #[test]
    fn batches_end_at_record_boundaries_outside_quotes() {
        let record_boundary = |batch: &[u8]| super::record_boundary(batch, 0, 0).ok();
        assert_eq!(record_boundary(b"a,b\nc,d"), Some(4));
        assert_eq!(record_boundary(b"a,b\nc,d\n"), Some(8));
        // The last line break is inside a quoted field: cut at the one before.
        assert_eq!(record_boundary(b"a,b\nc,\"x\ny"), Some(4));
        // An escaped quote ("") keeps the parity.
        assert_eq!(record_boundary(b"a,\"say \"\"hi\"\"\"\nc"), Some(15));
        assert_eq!(record_boundary(b"a,\"open\nstill open"), None);
        assert_eq!(record_boundary(b"no line break"), None);
    }

    #[test]
    fn a_boundary_search_resumed_where_it_stopped_finds_the_same_cut() {
        let batch = b"a,\"open\nstill\nopen\",x\nnext,row\nlast";
        let whole = record_boundary(batch, 0, 0);
        assert_eq!(whole, Ok(batch.len() - 4));
        for from in 0..=8 {
            let quotes = memchr::memchr_iter(b'"', &batch[..from]).count();
            assert_eq!(record_boundary(batch, from, quotes), whole, "from {from}");
        }
        assert_eq!(record_boundary(b"a,\"x\ny\nz", 0, 0), Err(1));
        assert_eq!(record_boundary(b"a,\"x\ny\nz", 4, 1), Err(1));
    }

    fn limits(max_record_bytes: usize) -> InputLimits {
        InputLimits {
            max_record_bytes,
            ..InputLimits::default()
        }
    }

    /// Regression: a stray `"` made the reader buffer and rescan the rest of the file on every read
    /// (quadratic time, the whole file in memory). It now fails at the record limit with the line
    /// the open record starts on, whatever the batch size.
    #[test]
    fn a_stray_quote_fails_at_the_record_limit_with_its_line() {
        let mut text = String::from("X,Label\n");
        for i in 0..2_000 {
            if i == 40 {
                text.push_str("\"1,Normal\n");
            } else {
                text.push_str(&format!("{i},Normal\n"));
            }
        }
        for batch_bytes in [16, 100, 4096] {
            let err = read_in_batches_with(&text, batch_bytes, limits(1_000)).unwrap_err();
            assert!(
                matches!(
                    err,
                    TableError::RecordTooLong {
                        line: 42,
                        limit: 1_000,
                        ..
                    }
                ),
                "batch size {batch_bytes}: {err}"
            );
            assert!(
                err.to_string()
                    .contains("flows.csv line 42: a record longer than 1000 bytes"),
                "{err}"
            );
        }
        // Under the limit the same file parses: the quoted field ends at the end of the file, which
        // leaves a record of one field.
        let err = read_in_batches_with(&text, 4096, limits(1 << 20)).unwrap_err();
        assert!(
            err.to_string()
                .contains("line 42: 1 fields, but the header has 2"),
            "{err}"
        );
    }

    #[test]
    fn a_file_without_line_breaks_fails_at_the_record_limit() {
        let text = "X,Label".repeat(1_000);
        let err = read_in_batches_with(&text, 64, limits(512)).unwrap_err();
        assert!(matches!(err, TableError::RecordTooLong { line: 1, .. }), "{err}");
    }

    /// Regression: a header of many columns took quadratic time (each name looked up by a linear
    /// search); now it is one hashed pass, and more than the limit is an error.
    #[test]
    fn a_wide_header_is_linear_and_capped() {
        let names = |n: usize| (0..n).map(|i| format!("c{i}")).collect::<Vec<_>>();
        let mut header = names(MAX_COLUMNS - 1);
        header.push("Label".into());
        let plan = plan(&[]);
        let mut builder = TableBuilder::new(&plan);
        let started = std::time::Instant::now();
        let columns = builder.start_file(Path::new("wide.csv"), &header).unwrap();
        assert_eq!(columns.sources.len(), MAX_COLUMNS - 1);
        assert_eq!(columns.label, MAX_COLUMNS - 1);
        // A generous bound that only a quadratic pass (2 * 10^9 comparisons) misses.
        assert!(started.elapsed() < std::time::Duration::from_secs(20));

        let mut header = names(MAX_COLUMNS);
        header.push("Label".into());
        let mut builder = TableBuilder::new(&plan);
        let err = builder.start_file(Path::new("wide.csv"), &header).err().unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "wide.csv has {} columns; at most {MAX_COLUMNS} are supported",
                MAX_COLUMNS + 1
            )
        );
    }

    /// Regression: a gzip bomb decompressed without bound until the kernel killed the process.
    #[test]
    fn gzip_input_is_capped_for_the_whole_channel() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.csv.gz", "b.csv.gz"] {
            let gz = File::create(dir.path().join(name)).unwrap();
            let mut encoder = flate2::write::GzEncoder::new(gz, flate2::Compression::fast());
            encoder.write_all(b"X,Label\n").unwrap();
            for i in 0..1_000 {
                encoder.write_all(format!("{i},Normal\n").as_bytes()).unwrap();
            }
            encoder.finish().unwrap();
        }
        let read_with = |max_csv_bytes: u64| {
            let plan = ReadPlan {
                limits: InputLimits {
                    max_csv_bytes,
                    ..InputLimits::default()
                },
                ..plan(&[])
            };
            read_channel(dir.path(), &plan)
        };
        // Each file alone fits in 12,000 bytes, both together do not.
        let err = read_with(12_000).unwrap_err();
        assert!(
            matches!(&err, TableError::DecompressedTooLarge { path, limit: 12_000 } if path.ends_with("b.csv.gz")),
            "{err}"
        );
        assert!(
            err.to_string().contains("decompressed input exceeds 12000 bytes"),
            "{err}"
        );
        assert_eq!(read_with(24_000).unwrap().rows(), 2_000);
    }

    /// Regression: plain `.csv` files were read whatever their size, so a file larger than memory
    /// ended in an out-of-memory kill with no failure file. Their sizes now count against the
    /// channel's CSV budget before anything is read, together with what its `.csv.gz` files
    /// decompress to.
    #[test]
    fn plain_csv_is_capped_from_its_size_together_with_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("X,Label\n");
        for i in 0..1_000 {
            text.push_str(&format!("{i},Normal\n"));
        }
        let size = text.len() as u64;
        write(dir.path(), "a.csv", &text);
        write(dir.path(), "b.csv", &text);
        let read_with = |max_csv_bytes: u64| {
            let plan = ReadPlan {
                limits: InputLimits {
                    max_csv_bytes,
                    ..InputLimits::default()
                },
                ..plan(&[])
            };
            read_channel(dir.path(), &plan)
        };
        // Each file alone fits, both together do not: refused at the second, from the sizes alone.
        let err = read_with(2 * size - 1).unwrap_err();
        assert!(
            matches!(&err, TableError::CsvTooLarge { path, size: s, total, .. }
                if path.ends_with("b.csv") && *s == size && *total == 2 * size),
            "{err}"
        );
        let message = err.to_string();
        assert!(message.contains(&format!("b.csv is {size} bytes")), "{message}");
        assert!(
            message.contains("with the channel's .csv files before it"),
            "{message}"
        );
        assert!(message.contains("nothing was read"), "{message}");
        assert_eq!(read_with(2 * size).unwrap().rows(), 2_000);

        // A `.csv.gz` gets what the `.csv` files leave, whichever is read first (`0.csv.gz` is).
        let gz = File::create(dir.path().join("0.csv.gz")).unwrap();
        let mut encoder = flate2::write::GzEncoder::new(gz, flate2::Compression::fast());
        encoder.write_all(text.as_bytes()).unwrap();
        encoder.finish().unwrap();
        let err = read_with(3 * size - 1).unwrap_err();
        assert!(
            matches!(&err, TableError::DecompressedTooLarge { path, .. } if path.ends_with("0.csv.gz")),
            "{err}"
        );
        assert_eq!(read_with(3 * size).unwrap().rows(), 3_000);
    }

    /// A sparse file stands in for one far larger than memory: refused at once, unread.
    #[test]
    fn a_huge_sparse_csv_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.csv");
        File::create(&path).unwrap().set_len(1 << 40).unwrap();
        let err = read_channel(dir.path(), &plan(&[])).unwrap_err();
        assert!(
            matches!(&err, TableError::CsvTooLarge { size, limit, .. }
                if *size == 1 << 40 && *limit == InputLimits::default().max_csv_bytes),
            "{err}"
        );
    }

    /// A `.csv` that holds more than its size said (here a reader standing in for a pipe, size 0)
    /// stops at the budget too.
    #[test]
    fn csv_text_beyond_its_size_stops_at_the_budget() {
        let mut remaining = 10;
        let mut budgeted = Budgeted {
            inner: std::io::repeat(b'0'),
            remaining: &mut remaining,
            compressed: false,
        };
        let mut sink = Vec::new();
        let err = std::io::copy(&mut budgeted, &mut sink).unwrap_err();
        assert!(err.get_ref().is_some_and(|e| e.is::<BudgetSpent>()), "{err}");
        assert!(sink.len() <= 10, "{}", sink.len());
    }

    #[test]
    fn the_csv_budget_follows_the_least_memory_limit() {
        assert_eq!(InputLimits::for_memory(16 << 30).max_csv_bytes, 2 << 30);
        assert_eq!(
            meminfo_total_bytes("MemTotal:       16384 kB\nMemFree: 1 kB\n"),
            Some(16 << 20)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max stack size            8388608              unlimited            bytes\n\
                      Max address space         1073741824           unlimited            bytes\n";
        assert_eq!(address_space_limit_bytes(limits), Some(1 << 30));
        let unlimited = "Max address space         unlimited            unlimited            bytes\n";
        assert_eq!(address_space_limit_bytes(unlimited), None);
    }

    #[test]
    fn columns_without_any_value_are_not_features() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.csv", "Label,X,Empty\nNormal,3,\nAnomaly,4,NaN\n");
        let table = read_channel(dir.path(), &plan(&[])).unwrap();
        assert_eq!(table.features, ["X"]);
        assert!(
            table
                .dropped_columns
                .contains(&("Empty".into(), "every cell missing".into()))
        );
        write(dir.path(), "a.csv", "Label,E1,E2\nNormal,,\nAnomaly,inf,\n");
        let err = read_channel(dir.path(), &plan(&[])).unwrap_err();
        assert!(
            err.to_string().contains(
                "no numeric feature columns left after excluding the label and E1 (every cell missing), E2"
            ),
            "{err}"
        );
    }

    #[test]
    fn batched_reading_gives_the_same_table_whatever_the_batch_size() {
        // Quoted fields with commas and line breaks, CRLF line ends, a text column, empty cells.
        let mut text = String::from("Note,X,Label,Y\r\n");
        for i in 0..500 {
            let note = if i % 7 == 0 {
                format!("\"multi\nline, {i}\"")
            } else {
                format!("n{i}")
            };
            let x = if i % 11 == 0 {
                String::new()
            } else {
                format!("{}", f64::from(i) * 0.5)
            };
            let label = if i % 3 == 0 { "Anomaly" } else { "Normal" };
            text.push_str(&format!("{note},{x},{label},{i}\r\n"));
        }
        let whole = read_in_batches(&text, text.len() * 2).unwrap();
        assert_eq!(whole.features, ["X", "Y"]);
        assert_eq!(whole.rows(), 500);
        for i in 0..500_u32 {
            let row = whole.row(i as usize);
            if i % 11 == 0 {
                assert!(row[0].is_nan(), "row {i}");
            } else {
                assert_eq!(row[0], i as f32 * 0.5, "row {i}");
            }
            assert_eq!(row[1], i as f32, "row {i}");
            assert_eq!(whole.labels[i as usize], i % 3 == 0);
        }
        assert_eq!(whole.label_counts["Anomaly"], 167);
        assert!(whole.dropped_columns.iter().any(|(c, _)| c == "Note"));
        let bits = |t: &LabelledTable| t.values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for batch_bytes in [1, 5, 64, 333, 4096] {
            let batched = read_in_batches(&text, batch_bytes).unwrap();
            assert_eq!(bits(&batched), bits(&whole), "batch size {batch_bytes}");
            assert_eq!(batched.labels, whole.labels, "batch size {batch_bytes}");
            assert_eq!(batched.label_counts, whole.label_counts);
            assert_eq!(batched.dropped_columns, whole.dropped_columns);
            assert_eq!(batched.unparsable_cells, whole.unparsable_cells);
        }
    }

    #[test]
    fn a_ragged_row_is_reported_with_its_line_in_the_file_whatever_the_batch_size() {
        let mut text = String::from("X,Label\n");
        for i in 0..400 {
            if i == 300 {
                text.push_str("1,Normal,extra\n");
            } else {
                text.push_str(&format!("{i},Normal\n"));
            }
        }
        for batch_bytes in [16, 100, 1 << 20] {
            let err = read_in_batches(&text, batch_bytes).unwrap_err().to_string();
            // Header on line 1, row i on line i + 2.
            assert!(
                err.contains("flows.csv") && err.contains("line 302: 3 fields, but the header has 2"),
                "batch size {batch_bytes}: {err}"
            );
        }
    }

    #[test]
    fn parquet_files_are_read() {
        use parquet::data_type::{ByteArray, ByteArrayType, DoubleType};
        use parquet::file::properties::WriterProperties;
        use parquet::file::writer::SerializedFileWriter;
        use parquet::schema::parser::parse_message_type;
        use std::sync::Arc;

        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(
            parse_message_type("message flows { REQUIRED DOUBLE Rate; REQUIRED BYTE_ARRAY Label (UTF8); }")
                .unwrap(),
        );
        let file = File::create(dir.path().join("part-0.parquet")).unwrap();
        let mut writer =
            SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build())).unwrap();
        let mut group = writer.next_row_group().unwrap();
        let mut column = group.next_column().unwrap().unwrap();
        column
            .typed::<DoubleType>()
            .write_batch(&[1.0, f64::INFINITY], None, None)
            .unwrap();
        column.close().unwrap();
        let mut column = group.next_column().unwrap().unwrap();
        let labels = [ByteArray::from("Anomaly"), ByteArray::from("Normal")];
        column
            .typed::<ByteArrayType>()
            .write_batch(&labels, None, None)
            .unwrap();
        column.close().unwrap();
        group.close().unwrap();
        writer.close().unwrap();

        let table = read_channel(dir.path(), &plan(&[])).unwrap();
        assert_eq!(table.features, ["Rate"]);
        assert_eq!(table.values[0], 1.0);
        assert!(table.values[1].is_nan());
        assert_eq!(table.labels, [true, false]);
    }
}
