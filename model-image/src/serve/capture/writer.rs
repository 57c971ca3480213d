//! The data capture writer: one thread that takes records off the queue, serializes each
//! ([`super::record`]) and appends it to the file of its UTC hour ([`super::layout`]) in a single
//! unbuffered write, so each record is in the file, whole, as soon as it is written. The first record
//! of an hour opens a new file there; records are never appended to another process's file.
//!
//! An I/O error loses that record (counted) and closes the file, so the next record starts a new one
//! rather than continue after a partial line; each kind of error is logged once, with the path.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::layout::{self, Hour};
use super::record;
use super::{Counts, Exchange, Queue};

/// The file records of one hour go to.
struct HourFile {
    hour: Hour,
    path: PathBuf,
    file: File,
}

pub(super) struct Writer {
    dir: PathBuf,
    /// Event ids and file names.
    rng: ChaCha8Rng,
    current: Option<HourFile>,
    /// One record's line, reused.
    line: Vec<u8>,
    /// The error kinds already logged.
    logged: HashSet<std::io::ErrorKind>,
    counts: Arc<Counts>,
}

impl Writer {
    /// Writes below `dir`, with ids from a generator seeded by the system.
    pub(super) fn new(dir: PathBuf, counts: Arc<Counts>) -> Self {
        Self::with_rng(dir, counts, ChaCha8Rng::from_rng(&mut rand::rng()))
    }

    fn with_rng(dir: PathBuf, counts: Arc<Counts>, rng: ChaCha8Rng) -> Self {
        Self {
            dir,
            rng,
            current: None,
            line: Vec::new(),
            logged: HashSet::new(),
            counts,
        }
    }

    /// Writes every record of `queue` until it is finished (or every sender is gone).
    pub(super) fn run(mut self, mut queue: Queue) {
        while let Some(exchange) = queue.next_blocking() {
            self.write(&exchange);
        }
    }

    /// Writes one record, counting it as written or failed.
    fn write(&mut self, exchange: &Exchange) {
        match self.append(exchange) {
            Ok(()) => {
                self.counts.written.fetch_add(1, Ordering::Relaxed);
            }
            Err((path, error)) => {
                self.counts.failed.fetch_add(1, Ordering::Relaxed);
                self.current = None;
                if self.logged.insert(error.kind()) {
                    tracing::error!(
                        path = %path.display(),
                        "data capture: cannot write a record: {error} (records lost to errors of this \
                         kind are counted, not logged again)"
                    );
                }
            }
        }
    }

    fn append(&mut self, exchange: &Exchange) -> Result<(), (PathBuf, std::io::Error)> {
        let event_id = record::random_uuid(&mut self.rng);
        self.line.clear();
        record::write_line(&mut self.line, exchange, &event_id);
        let hour = Hour::of(exchange.time);
        let current = match self.current.take() {
            Some(current) if current.hour == hour => current,
            _ => {
                let folder = hour.folder(&self.dir);
                std::fs::create_dir_all(&folder).map_err(|e| (folder.clone(), e))?;
                let path = folder.join(layout::file_name(
                    exchange.time,
                    &record::random_uuid(&mut self.rng),
                ));
                let file = File::options()
                    .append(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(|e| (path.clone(), e))?;
                HourFile { hour, path, file }
            }
        };
        let current = self.current.insert(current);
        current
            .file
            .write_all(&self.line)
            .map_err(|e| (current.path.clone(), e))
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Bytes;

    use super::*;
    use crate::monitor::window::Timestamp;

    fn exchange(time: &str, input: &'static str) -> Exchange {
        Exchange {
            time: Timestamp::parse(time).unwrap(),
            input_type: "text/csv".to_owned(),
            input: Bytes::from_static(input.as_bytes()),
            output_type: "text/csv",
            output: Bytes::from_static(b"Normal,0.1\n"),
        }
    }

    fn writer(dir: PathBuf) -> (Writer, Arc<Counts>) {
        let counts = Arc::new(Counts::default());
        let writer = Writer::with_rng(dir, Arc::clone(&counts), ChaCha8Rng::seed_from_u64(9));
        (writer, counts)
    }

    /// Every file below `dir`, relative, with its lines' `data` inputs.
    fn files(dir: &std::path::Path) -> Vec<(PathBuf, Vec<String>)> {
        let mut found: Vec<(PathBuf, Vec<String>)> = crate::monitor::capture::capture_files(dir)
            .unwrap()
            .into_iter()
            .map(|path| {
                let inputs = std::fs::read_to_string(&path)
                    .unwrap()
                    .lines()
                    .map(|line| {
                        let value: serde_json::Value = serde_json::from_str(line).unwrap();
                        value["captureData"]["endpointInput"]["data"]
                            .as_str()
                            .unwrap()
                            .to_owned()
                    })
                    .collect();
                (path.strip_prefix(dir).unwrap().to_path_buf(), inputs)
            })
            .collect();
        found.sort();
        found
    }

    #[test]
    fn writes_each_hour_into_a_new_file_in_its_folder_and_each_record_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, counts) = writer(dir.path().to_path_buf());
        writer.write(&exchange("2026-12-04T01:02:03.456Z", "1\n"));
        // Readable before the writer is done with the file.
        assert_eq!(files(dir.path())[0].1, ["1\n"]);
        writer.write(&exchange("2026-12-04T01:59:59.999Z", "2\n"));
        writer.write(&exchange("2026-12-04T02:00:00Z", "3\n"));
        writer.write(&exchange("2026-12-05T00:00:01Z", "4\n"));
        let found = files(dir.path());
        let layout: Vec<(String, String, &[String])> = found
            .iter()
            .map(|(path, inputs)| {
                let folder = path.parent().unwrap().display().to_string();
                let name = path.file_name().unwrap().to_string_lossy();
                (folder, name[..10].to_owned(), inputs.as_slice())
            })
            .collect();
        assert_eq!(
            layout,
            [
                (
                    "2026/12/04/01".to_owned(),
                    "02-03-456-".to_owned(),
                    &["1\n".to_owned(), "2\n".to_owned()][..]
                ),
                (
                    "2026/12/04/02".to_owned(),
                    "00-00-000-".to_owned(),
                    &["3\n".to_owned()][..]
                ),
                (
                    "2026/12/05/00".to_owned(),
                    "00-01-000-".to_owned(),
                    &["4\n".to_owned()][..]
                ),
            ]
        );
        for (path, _) in &found {
            let name = path.file_name().unwrap().to_string_lossy();
            let uuid = name[10..].strip_suffix(".jsonl").unwrap();
            assert_eq!(uuid.len(), 36, "{name}");
        }
        assert_eq!(counts.tally().written, 4);
        assert_eq!(counts.tally().failed, 0);
    }

    #[test]
    fn an_io_error_loses_the_record_counts_it_and_the_next_record_starts_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let (mut writer, counts) = writer(dir.path().to_path_buf());
        writer.write(&exchange("2026-12-04T01:00:00Z", "1\n"));
        // A file where the next hour's folder goes: that hour's records cannot be written.
        std::fs::write(dir.path().join("2026/12/04/02"), "not a folder").unwrap();
        writer.write(&exchange("2026-12-04T02:00:01Z", "2\n"));
        writer.write(&exchange("2026-12-04T02:00:02Z", "3\n"));
        assert_eq!(counts.tally().failed, 2);
        assert_eq!(writer.logged.len(), 1, "one kind of error, logged once");
        std::fs::remove_file(dir.path().join("2026/12/04/02")).unwrap();
        writer.write(&exchange("2026-12-04T02:00:03Z", "4\n"));
        let found = files(dir.path());
        let inputs: Vec<&[String]> = found.iter().map(|(_, inputs)| inputs.as_slice()).collect();
        assert_eq!(inputs, [&["1\n".to_owned()][..], &["4\n".to_owned()][..]]);
        assert!(found[1].0.starts_with("2026/12/04/02"), "{found:?}");
        assert_eq!(counts.tally().written, 2);
    }
}
