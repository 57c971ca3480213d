//! Follows log files the way `tail -f` does, one call at a time: each call returns the complete
//! lines appended since the previous call for that file. A line still being written (no newline
//! yet) waits for the next call, so a training job's metric line is never split in two.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Read positions per followed file.
#[derive(Debug, Default)]
pub struct LogTail {
    offsets: Mutex<HashMap<PathBuf, u64>>,
}

/// At most this much is read per call; the rest comes with the next calls.
const MAX_READ: u64 = 1 << 20;

impl LogTail {
    /// Complete lines appended to `path` since the last call (all of them on the first call). A
    /// missing file has no lines; a file that shrank (rewritten) is read from its start again.
    pub fn new_lines(&self, path: &Path) -> Vec<String> {
        let mut offsets = self
            .offsets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let offset = offsets.entry(path.to_path_buf()).or_insert(0);
        let Ok(mut file) = std::fs::File::open(path) else {
            return Vec::new();
        };
        let Ok(length) = file.metadata().map(|m| m.len()) else {
            return Vec::new();
        };
        if length < *offset {
            *offset = 0;
        }
        if length == *offset || file.seek(SeekFrom::Start(*offset)).is_err() {
            return Vec::new();
        }
        let mut bytes = Vec::new();
        if file.take(MAX_READ).read_to_end(&mut bytes).is_err() {
            return Vec::new();
        }
        let Some(end) = bytes.iter().rposition(|b| *b == b'\n') else {
            if bytes.len() as u64 == MAX_READ {
                // One line longer than a read: pass it on in pieces rather than never.
                *offset += bytes.len() as u64;
                return vec![String::from_utf8_lossy(&bytes).into_owned()];
            }
            return Vec::new();
        };
        *offset += end as u64 + 1;
        String::from_utf8_lossy(&bytes[..end])
            .split('\n')
            .map(|line| line.strip_suffix('\r').unwrap_or(line).to_string())
            .collect()
    }

    /// Forgets a file (a deleted training job's log).
    pub fn forget(&self, path: &Path) {
        self.offsets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(path);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn returns_each_complete_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.log");
        let tail = LogTail::default();
        assert!(tail.new_lines(&path).is_empty(), "a missing log has no lines");
        std::fs::write(&path, "loading data\nvalidation:pr_a").unwrap();
        assert_eq!(tail.new_lines(&path), ["loading data"]);
        assert!(tail.new_lines(&path).is_empty(), "the partial line waits");
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"uc=0.99\r\ndone\n").unwrap();
        assert_eq!(tail.new_lines(&path), ["validation:pr_auc=0.99", "done"]);
        assert!(tail.new_lines(&path).is_empty());
    }

    #[test]
    fn files_are_followed_separately_and_rewrites_start_over() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
        std::fs::write(&a, "a1\na2\n").unwrap();
        std::fs::write(&b, "b1\n").unwrap();
        let tail = LogTail::default();
        assert_eq!(tail.new_lines(&a), ["a1", "a2"]);
        assert_eq!(tail.new_lines(&b), ["b1"]);
        std::fs::write(&a, "new\n").unwrap();
        assert_eq!(tail.new_lines(&a), ["new"]);
        tail.forget(&b);
        assert_eq!(tail.new_lines(&b), ["b1"]);
    }
}
