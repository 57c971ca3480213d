//! Where the baseline comes from: `baseline.json` as `train` writes it, or the model artifact it
//! travels in (`model.tar.gz`, SageMaker's gzip-compressed tar of the model directory), told apart
//! by content (gzip's and tar's magic bytes), not by name: processing inputs and Model Monitor's
//! `baseline_statistics` name files as their users please. A directory stands for the
//! `baseline.json` in it, else its only file (a processing input is a directory).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::baseline::{BASELINE_FILE, Baseline, FORMAT_VERSION};

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
/// `ustar` at offset 257 of a tar header (POSIX and GNU).
const TAR_MAGIC_OFFSET: usize = 257;
const TAR_MAGIC: &[u8] = b"ustar";

/// Why no baseline could be read.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("cannot read the baseline at {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is a directory with no {BASELINE_FILE} and not exactly one file")]
    Directory { path: PathBuf },
    #[error("cannot read the model archive {path}")]
    Archive {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the model archive {path} has no {BASELINE_FILE} (models trained before drift monitoring have none: \
         retrain)"
    )]
    NotInArchive { path: PathBuf },
    #[error("{path} is not a model-image {BASELINE_FILE} (nor a model.tar.gz holding one)")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path} has baseline format_version {found}; this model-image reads {FORMAT_VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("{path} is a baseline of no features")]
    NoFeatures { path: PathBuf },
}

/// Reads the baseline at `path`: a `baseline.json`, a `model.tar.gz` (or plain tar) holding one,
/// or a directory holding either.
pub fn load(path: &Path) -> Result<Baseline, BaselineError> {
    let file = resolve(path)?;
    let io = |source| BaselineError::Io {
        path: file.clone(),
        source,
    };
    let bytes = std::fs::read(&file).map_err(io)?;
    let json = if bytes.starts_with(GZIP_MAGIC) {
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut tar)
            .map_err(|source| BaselineError::Archive {
                path: file.clone(),
                source,
            })?;
        from_tar(&file, &tar)?
    } else if is_tar(&bytes) {
        from_tar(&file, &bytes)?
    } else {
        bytes
    };
    let baseline: Baseline = serde_json::from_slice(&json).map_err(|source| BaselineError::Json {
        path: file.clone(),
        source,
    })?;
    if baseline.format_version != FORMAT_VERSION {
        return Err(BaselineError::Version {
            path: file,
            found: baseline.format_version,
        });
    }
    if baseline.features.is_empty() {
        return Err(BaselineError::NoFeatures { path: file });
    }
    Ok(baseline)
}

/// The file `path` stands for.
fn resolve(path: &Path) -> Result<PathBuf, BaselineError> {
    let io = |source| BaselineError::Io {
        path: path.to_path_buf(),
        source,
    };
    if !std::fs::metadata(path).map_err(io)?.is_dir() {
        return Ok(path.to_path_buf());
    }
    let named = path.join(BASELINE_FILE);
    if named.is_file() {
        return Ok(named);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io)? {
        let entry = entry.map_err(io)?;
        if entry.path().is_file() {
            files.push(entry.path());
        }
    }
    match <[PathBuf; 1]>::try_from(files) {
        Ok([only]) => Ok(only),
        Err(_) => Err(BaselineError::Directory {
            path: path.to_path_buf(),
        }),
    }
}

fn is_tar(bytes: &[u8]) -> bool {
    bytes
        .get(TAR_MAGIC_OFFSET..TAR_MAGIC_OFFSET + TAR_MAGIC.len())
        .is_some_and(|magic| magic == TAR_MAGIC)
}

/// The `baseline.json` at the top of a tar archive (`baseline.json` or `./baseline.json`).
fn from_tar(path: &Path, tar: &[u8]) -> Result<Vec<u8>, BaselineError> {
    let archive_error = |source| BaselineError::Archive {
        path: path.to_path_buf(),
        source,
    };
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().map_err(archive_error)? {
        let mut entry = entry.map_err(archive_error)?;
        let name = entry.path().map_err(archive_error)?.into_owned();
        let top_level = name.strip_prefix(".").unwrap_or(&name);
        if top_level == Path::new(BASELINE_FILE) && entry.header().entry_type().is_file() {
            let mut json = Vec::new();
            entry.read_to_end(&mut json).map_err(archive_error)?;
            return Ok(json);
        }
    }
    Err(BaselineError::NotInArchive {
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn baseline() -> Baseline {
        let features = vec!["a".to_string()];
        let values: Vec<f32> = (0..100).map(|i| i as f32).collect();
        crate::baseline::compute(&features, &values, &[0.2, 0.4, 0.6])
    }

    /// A tar of `files` (name, content), as SageMaker packs a model directory.
    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, content) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, *content).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn reads_baseline_json_or_the_model_archive_by_content_not_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let expected = baseline();
        let json = serde_json::to_vec(&expected).unwrap();
        let plain = dir.path().join("model.tar.gz");
        std::fs::write(&plain, &json).unwrap();
        assert_eq!(load(&plain).unwrap(), expected, "JSON named like an archive");

        let archive = gzip(&tar_of(&[("model.txt", b"trees"), ("./baseline.json", &json)]));
        let misnamed = dir.path().join("baseline.json");
        std::fs::write(&misnamed, &archive).unwrap();
        assert_eq!(load(&misnamed).unwrap(), expected, "an archive named like JSON");

        let uncompressed = dir.path().join("model.tar");
        std::fs::write(&uncompressed, tar_of(&[("baseline.json", &json)])).unwrap();
        assert_eq!(load(&uncompressed).unwrap(), expected);
    }

    #[test]
    fn a_directory_stands_for_its_baseline_json_or_its_only_file() {
        let dir = tempfile::tempdir().unwrap();
        let json = serde_json::to_vec(&baseline()).unwrap();
        std::fs::write(
            dir.path().join("model.tar.gz"),
            gzip(&tar_of(&[("baseline.json", &json)])),
        )
        .unwrap();
        assert_eq!(load(dir.path()).unwrap(), baseline());
        std::fs::write(dir.path().join("notes.txt"), "two files now").unwrap();
        let error = load(dir.path()).unwrap_err();
        assert!(matches!(error, BaselineError::Directory { .. }), "{error}");
        std::fs::write(dir.path().join("baseline.json"), &json).unwrap();
        assert_eq!(load(dir.path()).unwrap(), baseline());
    }

    #[test]
    fn what_is_not_a_baseline_says_what_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let missing = load(&dir.path().join("nothing.json")).unwrap_err();
        assert!(matches!(missing, BaselineError::Io { .. }), "{missing}");

        let old_model = dir.path().join("old.tar.gz");
        std::fs::write(&old_model, gzip(&tar_of(&[("model.txt", b"trees")]))).unwrap();
        let error = load(&old_model).unwrap_err();
        assert!(error.to_string().contains("has no baseline.json"), "{error}");

        // Model Monitor's own statistics.json is not ours.
        let statistics = dir.path().join("statistics.json");
        std::fs::write(
            &statistics,
            r#"{"version": 0, "dataset": {"item_count": 3}, "features": []}"#,
        )
        .unwrap();
        let error = load(&statistics).unwrap_err();
        assert!(
            error.to_string().contains("is not a model-image baseline.json"),
            "{error}"
        );

        let mut future = baseline();
        future.format_version = FORMAT_VERSION + 1;
        let path = dir.path().join("future.json");
        std::fs::write(&path, serde_json::to_vec(&future).unwrap()).unwrap();
        let error = load(&path).unwrap_err();
        assert!(matches!(error, BaselineError::Version { .. }), "{error}");

        let mut featureless = baseline();
        featureless.features.clear();
        let path = dir.path().join("featureless.json");
        std::fs::write(&path, serde_json::to_vec(&featureless).unwrap()).unwrap();
        assert!(matches!(
            load(&path).unwrap_err(),
            BaselineError::NoFeatures { .. }
        ));

        let truncated = dir.path().join("truncated.tar.gz");
        std::fs::write(&truncated, &gzip(b"not a tar at all")[..10]).unwrap();
        assert!(matches!(
            load(&truncated).unwrap_err(),
            BaselineError::Archive { .. }
        ));
    }
}
