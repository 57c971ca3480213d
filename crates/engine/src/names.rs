//! Content-derived names, computed before the first side effect (DESIGN.md §3).
//!
//! A name changes exactly when what it names changes: the training job's name hashes its image, data,
//! hyperparameters and instance settings, so unchanged inputs find the job that already ran and
//! changed inputs get a new immutable job, model and endpoint config.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The first 12 hex digits of the SHA-256 of the parts, each length-prefixed so `["ab","c"]` and
/// `["a","bc"]` differ.
pub fn hash12<S: AsRef<str>>(parts: &[S]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        let part = part.as_ref();
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex(&hasher.finalize())[..12].to_string()
}

/// `<base>-<attempt>`: training jobs can never be deleted or renamed, so a failed attempt is
/// followed by the next number.
pub fn attempt_name(base: &str, attempt: u32) -> String {
    format!("{base}-{attempt}")
}

/// The attempt number of `name` if it is `<base>-<n>`.
pub fn attempt_of(base: &str, name: &str) -> Option<u32> {
    name.strip_prefix(base)?.strip_prefix('-')?.parse().ok()
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// SHA-256 of training data: of the file, or of a directory's files (relative path and content, in
/// sorted order, hidden files skipped).
pub fn data_sha256(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    if path.is_dir() {
        let mut files = Vec::new();
        collect_files(path, &mut files)?;
        files.sort();
        for file in files {
            let relative = file
                .strip_prefix(path)
                .unwrap_or(&file)
                .to_string_lossy()
                .replace('\\', "/");
            hasher.update((relative.len() as u64).to_le_bytes());
            hasher.update(relative.as_bytes());
            hash_file(&file, &mut hasher)?;
        }
    } else {
        hash_file(path, &mut hasher)?;
    }
    Ok(hex(&hasher.finalize()))
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

fn hash_file(path: &Path, hasher: &mut Sha256) -> std::io::Result<()> {
    let mut file = std::fs::File::open(path)?;
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buffer[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash12_is_stable_and_separates_parts() {
        assert_eq!(hash12(&["a", "b"]), hash12(&["a", "b"]));
        assert_ne!(hash12(&["ab", "c"]), hash12(&["a", "bc"]));
        assert_eq!(hash12(&["x"]).len(), 12);
        // Pinned: names of existing deployments must not change between releases.
        assert_eq!(hash12(&["iot"]), "185fe5f2a275");
    }

    #[test]
    fn attempts_round_trip() {
        assert_eq!(attempt_name("iot-abc", 3), "iot-abc-3");
        assert_eq!(attempt_of("iot-abc", "iot-abc-3"), Some(3));
        assert_eq!(attempt_of("iot-abc", "iot-abcd-3"), None);
        assert_eq!(attempt_of("iot-abc", "iot-abc-x"), None);
    }

    #[test]
    fn data_hash_covers_names_and_contents() {
        let dir = tempfile_dir();
        std::fs::write(dir.join("a.csv"), "1").unwrap();
        let first = data_sha256(&dir).unwrap();
        std::fs::write(dir.join(".hidden"), "x").unwrap();
        assert_eq!(data_sha256(&dir).unwrap(), first);
        std::fs::write(dir.join("a.csv"), "2").unwrap();
        assert_ne!(data_sha256(&dir).unwrap(), first);
        assert_eq!(
            data_sha256(&dir.join("a.csv")).unwrap(),
            "d4735e3a265e16eee03f59718b9b5d03019c07d8b6c51f90da3a666eec13ab35"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("engine-names-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

/// The name of a drift monitor run at `at`: `<endpoint>-monitor-<yyyymmddThhmmssZ>`, lower case as
/// SageMaker's processing job names allow, so names sort by time (at most 57 characters for a
/// deployment name of 32).
pub fn monitor_run_name(endpoint: &str, at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{endpoint}-monitor-{:04}{:02}{:02}t{:02}{:02}{:02}z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

#[cfg(test)]
mod monitor_run_names {
    use super::monitor_run_name;

    #[test]
    fn run_names_sort_by_time() {
        // 2026-12-04 01:02:03 UTC and ten hours later.
        let at = |seconds| time::OffsetDateTime::from_unix_timestamp(seconds).unwrap();
        let early = monitor_run_name("iot", at(1_796_346_123));
        let late = monitor_run_name("iot", at(1_796_382_123));
        assert_eq!(early, "iot-monitor-20261204t010203z");
        assert!(early < late);
    }
}
