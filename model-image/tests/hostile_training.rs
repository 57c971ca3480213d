//! Hostile training files, each proven against the real `model-image train` binary in a temp
//! `OPT_ML` tree: every one ends in a non-zero exit and an `output/failure` that says why, in bounded
//! memory (the process runs under an address-space limit, `ulimit -v`) and without hanging (a
//! generous timeout only detects a hang; it is not a speed assertion).
//!
//! Inputs are generated on the fly into the temp dir, never committed. The file of one line is
//! 64 MiB of cells here (`MODEL_IMAGE_ONE_LINE_BYTES` sets another size), and 2 GiB as a sparse file
//! of NUL bytes, which takes no disk space; a CSV file far larger than memory is a sparse file too.
//! The ignored test `a_two_gigabyte_file_of_one_line_fails_in_bounded_memory` writes the full 2 GiB
//! of cells (needs that much free space in the temp dir):
//! `cargo test -p model-image --test hostile_training -- --ignored`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_model-image");

/// The address space `train` gets: a normal small training run needs under a quarter of it, and an
/// unbounded read (a gzip bomb, a buffered stray quote) exhausts it.
const ADDRESS_SPACE_BYTES: u64 = 512 << 20;

/// Only a hang takes this long; the cases here fail within seconds.
const HANG_TIMEOUT: Duration = Duration::from_secs(300);

/// A SageMaker `/opt/ml` tree in a temp dir, with small-model hyperparameters.
struct OptMl {
    dir: tempfile::TempDir,
}

/// How a `train` run ended.
struct Failed {
    status: ExitStatus,
    failure: String,
    stderr: String,
}

impl OptMl {
    fn new() -> Self {
        let opt_ml = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        opt_ml.hyperparameters(r#"{"max_rounds": "20", "bootstrap_resamples": "0"}"#);
        opt_ml
    }

    fn train_file(&self, name: &str) -> PathBuf {
        let dir = self.dir.path().join("input/data/train");
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn write_train(&self, name: &str, text: &str) {
        std::fs::write(self.train_file(name), text).unwrap();
    }

    fn hyperparameters(&self, json: &str) {
        let dir = self.dir.path().join("input/config");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("hyperparameters.json"), json).unwrap();
    }

    /// Runs `train` under the address-space limit and the hang timeout; it must fail with a reason.
    fn train_fails(&self, env: &[(&str, &str)]) -> Failed {
        let stderr_path = self.dir.path().join("train.stderr");
        let mut command = Command::new("sh");
        command
            .args(["-c", r#"ulimit -v "$1" && exec "$2" train"#, "sh"])
            .arg((ADDRESS_SPACE_BYTES / 1024).to_string())
            .arg(BIN)
            .env("OPT_ML", self.dir.path())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr_path).unwrap());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > HANG_TIMEOUT {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!("train still running after {HANG_TIMEOUT:?}: a hang");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        let failure = std::fs::read_to_string(self.dir.path().join("output/failure"))
            .unwrap_or_else(|_| panic!("no output/failure ({status}); stderr: {stderr}"));
        assert!(!status.success(), "train succeeded on hostile input: {failure}");
        assert_eq!(status.code(), Some(1), "killed or aborted, not failed: {stderr}");
        Failed {
            status,
            failure,
            stderr,
        }
    }
}

impl Failed {
    fn expect(&self, reason: &str) {
        assert!(
            self.failure.contains(reason),
            "failure ({}) lacks {reason:?}: {}\nstderr: {}",
            self.status,
            self.failure,
            self.stderr
        );
    }
}

/// `rows` labelled rows of two features, both classes.
fn rows(rows: usize) -> String {
    let mut text = String::from("A,B,Label\n");
    for i in 0..rows {
        let label = if i % 3 == 0 { "Anomaly" } else { "Normal" };
        text.push_str(&format!("{i},{},{label}\n", i % 7));
    }
    text
}

/// Regression: one stray `"` made the reader buffer and rescan the rest of the file (quadratic).
#[test]
fn a_stray_quote_fails_at_the_record_limit_with_its_line() {
    let opt_ml = OptMl::new();
    let mut out = BufWriter::new(File::create(opt_ml.train_file("flows.csv")).unwrap());
    out.write_all(b"A,B,Label\n1,2,Normal\n\"3,4,Anomaly\n").unwrap();
    let row = b"5,6,Normal\n".repeat(1 << 16);
    for _ in 0..48 {
        out.write_all(&row).unwrap(); // 48 * 704 KiB: twice the record limit
    }
    out.flush().unwrap();
    drop(out);
    let failed = opt_ml.train_fails(&[]);
    failed.expect("flows.csv line 3: a record longer than 16777216 bytes (16.0 MiB)");
    failed.expect("never closes");
}

/// Regression: a gzip bomb decompressed without bound and ended in an OOM kill with no failure file.
/// Under a 512 MiB address space the default budget is an eighth of it.
#[test]
fn a_gzip_bomb_fails_at_the_decompressed_budget() {
    let opt_ml = OptMl::new();
    let mut out = BufWriter::new(File::create(opt_ml.train_file("bomb.csv.gz")).unwrap());
    gzip_member(&mut out, b"A,Label\n");
    // One compressed MiB of rows, repeated: concatenated gzip members decompress to 1 GiB.
    let mut member = Vec::new();
    gzip_member(&mut member, &b"0,Normal\n".repeat((1 << 20) / 9));
    for _ in 0..1024 {
        out.write_all(&member).unwrap();
    }
    out.flush().unwrap();
    drop(out);
    let failed = opt_ml.train_fails(&[]);
    failed.expect("bomb.csv.gz: decompressed input exceeds 67108864 bytes (64.0 MiB)");

    // The budget can be set, e.g. above what this instance would allow by default.
    let failed = opt_ml.train_fails(&[("MODEL_IMAGE_MAX_DECOMPRESSED_BYTES", "1000000")]);
    failed.expect("decompressed input exceeds 1000000 bytes");
    let failed = opt_ml.train_fails(&[("MODEL_IMAGE_MAX_DECOMPRESSED_BYTES", "lots")]);
    failed.expect("MODEL_IMAGE_MAX_DECOMPRESSED_BYTES = `lots` is invalid");
}

fn gzip_member(out: &mut impl Write, bytes: &[u8]) {
    let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap();
}

/// Regression: a header of a million columns hit a quadratic loop.
#[test]
fn a_header_of_a_million_columns_fails_at_the_column_limit() {
    let opt_ml = OptMl::new();
    let mut header: Vec<String> = (0..1_000_000).map(|i| format!("c{i}")).collect();
    header.push("Label".into());
    opt_ml.write_train("wide.csv", &format!("{}\n", header.join(",")));
    let failed = opt_ml.train_fails(&[]);
    failed.expect("wide.csv has 1000001 columns; at most 65536 are supported");
}

/// Regression: a huge `bootstrap_resamples` or `threads` aborted the run without a failure file.
#[test]
fn huge_bootstrap_resamples_and_threads_fail_naming_the_allowed_range() {
    let opt_ml = OptMl::new();
    opt_ml.write_train("flows.csv", &rows(200));
    for (key, range) in [
        ("bootstrap_resamples", "an integer from 0 to 10000"),
        ("threads", "an integer from 1 to 4096"),
    ] {
        opt_ml.hyperparameters(&format!(r#"{{"{key}": "4294967295"}}"#));
        let failed = opt_ml.train_fails(&[]);
        failed.expect(&format!(
            "hyperparameter `{key}` = `4294967295` is invalid: {range}"
        ));
    }
}

#[test]
fn a_ragged_row_fails_with_its_line() {
    let opt_ml = OptMl::new();
    let mut text = rows(100);
    text.push_str("1,2,Normal,extra\n");
    opt_ml.write_train("flows.csv", &text);
    let failed = opt_ml.train_fails(&[]);
    failed.expect("flows.csv: line 102: 4 fields, but the header has 3");
}

#[test]
fn a_channel_of_one_class_fails() {
    let opt_ml = OptMl::new();
    opt_ml.write_train("flows.csv", &rows(100).replace("Anomaly", "Normal"));
    let failed = opt_ml.train_fails(&[]);
    failed.expect("the train channel has only one class (100 × `Normal`)");
}

#[test]
fn columns_with_every_cell_missing_fail_as_no_features() {
    let opt_ml = OptMl::new();
    let mut text = String::from("A,B,Label\n");
    for i in 0..100 {
        let label = if i % 2 == 0 { "Anomaly" } else { "Normal" };
        text.push_str(&format!(",NaN,{label}\n"));
    }
    opt_ml.write_train("flows.csv", &text);
    let failed = opt_ml.train_fails(&[]);
    failed.expect("no numeric feature columns left after excluding the label and A (every cell missing), B (every cell missing)");
}

#[test]
fn a_numeric_label_column_fails_naming_the_positive_class() {
    let opt_ml = OptMl::new();
    let mut text = String::from("A,Label\n");
    for i in 0..100 {
        text.push_str(&format!("{i},{}\n", i % 2));
    }
    opt_ml.write_train("flows.csv", &text);
    let failed = opt_ml.train_fails(&[]);
    failed.expect("no rows of the positive class `Anomaly` among its labels (50 × `0`, 50 × `1`)");
    failed.expect("set the `positive_class` hyperparameter");
}

/// The CSV budget (`MODEL_IMAGE_MAX_DECOMPRESSED_BYTES`) as large as a file of `bytes`, so that the
/// record limit, not the file's size, is what refuses it.
fn budget_for(bytes: u64) -> (&'static str, String) {
    ("MODEL_IMAGE_MAX_DECOMPRESSED_BYTES", bytes.to_string())
}

/// A file of one line (no line break) of `bytes` bytes fails at the record limit, even with a CSV
/// budget that admits its size.
fn one_line_file_fails(bytes: u64) {
    let opt_ml = OptMl::new();
    let mut out = BufWriter::new(File::create(opt_ml.train_file("one-line.csv")).unwrap());
    let chunk = b"1,".repeat(1 << 19);
    let mut written = 0;
    while written < bytes {
        let n = (bytes - written).min(chunk.len() as u64) as usize;
        out.write_all(&chunk[..n]).unwrap();
        written += n as u64;
    }
    out.flush().unwrap();
    drop(out);
    assert_eq!(file_len(&opt_ml.train_file("one-line.csv")), bytes);
    let (var, budget) = budget_for(bytes);
    let failed = opt_ml.train_fails(&[(var, &budget)]);
    failed.expect("one-line.csv line 1: a record longer than 16777216 bytes");
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

#[test]
fn a_file_of_one_line_fails_in_bounded_memory() {
    let bytes = std::env::var("MODEL_IMAGE_ONE_LINE_BYTES")
        .map(|v| {
            v.parse()
                .expect("MODEL_IMAGE_ONE_LINE_BYTES is a number of bytes")
        })
        .unwrap_or(64 << 20);
    one_line_file_fails(bytes);
}

/// The issue's full size without its disk space: a sparse file of 2 GiB of NUL bytes, one line.
#[test]
fn a_sparse_two_gigabyte_file_of_one_line_fails_in_bounded_memory() {
    let opt_ml = OptMl::new();
    let path = opt_ml.train_file("one-line.csv");
    File::create(&path).unwrap().set_len(2 << 30).unwrap();
    let (var, budget) = budget_for(2 << 30);
    let failed = opt_ml.train_fails(&[(var, &budget)]);
    failed.expect("one-line.csv line 1: a record longer than 16777216 bytes");
}

/// Regression: a plain `.csv` file was read whatever its size (only `.csv.gz` input was capped), so
/// one larger than memory ended in an out-of-memory kill without a failure file. A valid start
/// followed by 64 GiB of sparse NUL bytes (no disk space) is refused from its size before it is
/// read: read, it would fail at the record limit instead.
#[test]
fn a_csv_file_far_larger_than_memory_fails_before_it_is_read() {
    let opt_ml = OptMl::new();
    let path = opt_ml.train_file("flows.csv");
    std::fs::write(&path, rows(200)).unwrap();
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(64 << 30)
        .unwrap();
    let failed = opt_ml.train_fails(&[]);
    // Under the 512 MiB address space the CSV budget is an eighth of it, as for gzip.
    failed.expect("flows.csv is 68719476736 bytes (65536.0 MiB) of CSV, more than 67108864 bytes (64.0 MiB)");
    failed.expect("nothing was read");

    // The budget is shared with what `.csv.gz` files decompress to: here they leave it no room.
    std::fs::write(&path, rows(200)).unwrap();
    let mut out = File::create(opt_ml.train_file("more.csv.gz")).unwrap();
    gzip_member(&mut out, rows(200).as_bytes());
    drop(out);
    let small = (rows(200).len() + 10).to_string();
    let failed = opt_ml.train_fails(&[("MODEL_IMAGE_MAX_DECOMPRESSED_BYTES", &small)]);
    failed.expect(&format!("more.csv.gz: decompressed input exceeds {small} bytes"));
}

/// A `.csv` that is an endless pipe has no size to check up front: what is read from it counts
/// against the same budget, and it fails there instead of filling memory.
#[test]
fn an_endless_pipe_named_csv_fails_at_the_csv_budget() {
    let opt_ml = OptMl::new();
    let path = opt_ml.train_file("flows.csv");
    let status = Command::new("mkfifo").arg(&path).status().unwrap();
    assert!(status.success(), "mkfifo failed");
    // Blocks until `train` opens the pipe; ends with SIGPIPE when `train` closes it.
    let mut writer = Command::new("sh")
        .args(["-c", r#"{ echo A,Label; yes 0,Normal; } > "$1""#, "sh"])
        .arg(&path)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let failed = opt_ml.train_fails(&[]);
    writer.kill().ok();
    writer.wait().unwrap();
    failed.expect("flows.csv: reading it takes the channel's CSV text past 67108864 bytes (64.0 MiB)");
    failed.expect("more than its size said");
}

/// The issue's full form with real cells: writes 2 GiB to the temp dir (needs that much free
/// space), so it is ignored by default. Run it with
/// `cargo test -p model-image --test hostile_training -- --ignored`.
#[test]
#[ignore = "writes a 2 GiB file; run with --ignored"]
fn a_two_gigabyte_file_of_one_line_fails_in_bounded_memory() {
    one_line_file_fails(2 << 30);
}
