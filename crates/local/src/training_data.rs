//! Training data: each channel's local files, uploaded into the bucket folder under the same key as
//! on S3 (`data/<sha12>/<channel>/`), content-addressed by the sha256 the desired state names.
//!
//! Observation is cheap: the record keeps each stored file's size and mtime, and the sha256 is
//! recomputed only when one of them changed (then a tampered copy shows as a differing `sha256`, which
//! `up` replaces). Missing files make the data absent. Training jobs hard-link these files into their
//! `input/data/<channel>/` (copying where links are impossible).

use std::fs;
use std::path::{Path, PathBuf};

use engine::desired::DesiredState;
use engine::resource::{Desired, Kind, Observed};
use engine::target::Applied;
use serde::{Deserialize, Serialize};
use spec::DataSource;

use crate::state::{Record, Stamp, encode_name};
use crate::{LocalError, LocalTarget, bucket, desired_fields, io_error, observed_record, remove_dir_all};

const KIND: Kind = Kind::TrainingData;

/// What the record keeps besides the fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DataDetails {
    /// `train` or `validation`.
    pub channel: String,
    /// The bucket folder the data is in.
    pub bucket: PathBuf,
    /// The key prefix's folder in the bucket (`data/<sha12>/<channel>`).
    pub folder: PathBuf,
    /// The stored copy: one file in `folder`, or `folder` itself for a directory source.
    pub path: PathBuf,
    pub stamps: Vec<Stamp>,
}

/// `data/<sha12>/<channel>/<channel>` -> (`data/<sha12>/<channel>`, `<channel>`).
fn split_name(name: &str) -> (&str, &str) {
    name.rsplit_once('/').unwrap_or(("", name))
}

pub(crate) fn observe(target: &LocalTarget, desired: &Desired) -> Result<Observed, LocalError> {
    let Some(record) = target.state.read::<DataDetails>(KIND, &desired.name)? else {
        return Ok(Observed::Absent);
    };
    let Ok(stamps) = Stamp::all(&record.details.path) else {
        return Ok(Observed::Absent);
    };
    if stamps.is_empty() {
        return Ok(Observed::Absent);
    }
    if stamps == record.details.stamps {
        return Ok(observed_record(Some(record)));
    }
    let path = record.details.path.clone();
    let sha256 = engine::names::data_sha256(&path).map_err(|source| LocalError::HashData { path, source })?;
    Ok(observed_record(Some(record)).with_field("sha256", sha256))
}

pub(crate) fn apply(
    target: &LocalTarget,
    desired: &Desired,
    state: &DesiredState,
) -> Result<Applied, LocalError> {
    let name = desired.name.as_str();
    let (prefix, channel) = split_name(name);
    let source = target
        .channel_source(channel)
        .ok_or_else(|| LocalError::UnknownChannel {
            name: name.to_string(),
            channel: channel.to_string(),
        })?;
    let (source, is_dir) = match source {
        DataSource::LocalFile(path) => (path, false),
        DataSource::LocalDir(path) => (path, true),
        DataSource::S3 { .. } => {
            return Err(LocalError::RemoteData {
                channel: channel.to_string(),
                location: source.to_string(),
            });
        }
    };
    let bucket_name = state
        .get(Kind::Bucket)
        .map_or_else(|| crate::bucket_name(&target.spec), |b| b.name.clone());
    let bucket = bucket::folder(target, &bucket_name);
    if !bucket.is_dir() {
        return Err(LocalError::Missing {
            kind: KIND,
            name: name.to_string(),
            what: format!("bucket `{bucket_name}`"),
        });
    }
    let folder = bucket.join(prefix);
    // Upload into a hidden staging folder, then rename: a half-copied channel is never observed.
    let staging = bucket.join(format!(".upload-{}", encode_name(name)));
    remove_dir_all(KIND, name, &staging)?;
    fs::create_dir_all(&staging).map_err(io_error(KIND, name, "create", &staging))?;
    let file_name = source
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(channel));
    if is_dir {
        copy_tree(source, &staging).map_err(io_error(KIND, name, "upload", source))?;
    } else {
        fs::copy(source, staging.join(&file_name)).map_err(io_error(KIND, name, "upload", source))?;
    }
    remove_dir_all(KIND, name, &folder)?;
    if let Some(parent) = folder.parent() {
        fs::create_dir_all(parent).map_err(io_error(KIND, name, "create", parent))?;
    }
    fs::rename(&staging, &folder).map_err(io_error(KIND, name, "store", &folder))?;
    let path = if is_dir {
        folder.clone()
    } else {
        folder.join(&file_name)
    };
    let want = desired.get("sha256").unwrap_or_default();
    let have = engine::names::data_sha256(&path).map_err(|source| LocalError::HashData {
        path: path.clone(),
        source,
    })?;
    if have != want {
        remove_dir_all(KIND, name, &folder)?;
        return Err(LocalError::DataChanged {
            name: name.to_string(),
            want: want.to_string(),
            have,
        });
    }
    let stamps = Stamp::all(&path).map_err(io_error(KIND, name, "stat", &path))?;
    let details = DataDetails {
        channel: channel.to_string(),
        bucket,
        folder,
        path,
        stamps,
    };
    target
        .state
        .write(KIND, &Record::new(name, desired_fields(desired), details))?;
    Ok(Applied::Ready)
}

pub(crate) fn delete(target: &LocalTarget, name: &str) -> Result<(), LocalError> {
    if let Some(record) = target.state.read::<DataDetails>(KIND, name)? {
        let details = record.details;
        remove_dir_all(KIND, name, &details.folder)?;
        // Prune `data/<sha12>` and `data` once empty; never above the bucket.
        let mut parent = details.folder.parent();
        while let Some(dir) = parent {
            if dir == details.bucket || !dir.starts_with(&details.bucket) || fs::remove_dir(dir).is_err() {
                break;
            }
            parent = dir.parent();
        }
    }
    target.state.remove(KIND, name)
}

/// Puts a channel's stored files into a training job's `input/data/<channel>/`; returns the channel.
pub(crate) fn link_into(target: &LocalTarget, name: &str, channels_dir: &Path) -> Result<String, LocalError> {
    let record = target
        .state
        .read::<DataDetails>(KIND, name)?
        .ok_or_else(|| LocalError::Missing {
            kind: Kind::TrainingJob,
            name: name.to_string(),
            what: format!("uploaded training data `{name}`"),
        })?;
    let details = record.details;
    let channel_dir = channels_dir.join(&details.channel);
    fs::create_dir_all(&channel_dir).map_err(io_error(KIND, name, "create", &channel_dir))?;
    if details.path == details.folder {
        link_tree(&details.path, &channel_dir).map_err(io_error(KIND, name, "link", &details.path))?;
    } else {
        let file_name = details.path.file_name().unwrap_or_default();
        link_or_copy(&details.path, &channel_dir.join(file_name)).map_err(io_error(
            KIND,
            name,
            "link",
            &details.path,
        ))?;
    }
    Ok(details.channel)
}

/// Copies the non-hidden files of `from` into `to`, keeping relative paths.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() || entry.path().is_dir() {
            fs::create_dir_all(&target)?;
            copy_tree(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Hard-links the non-hidden files of `from` into `to`, keeping relative paths.
fn link_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            fs::create_dir_all(&target)?;
            link_tree(&entry.path(), &target)?;
        } else {
            link_or_copy(&entry.path(), &target)?;
        }
    }
    Ok(())
}

/// A hard link (the job reads the uploaded bytes without a copy), or a copy across file systems.
fn link_or_copy(from: &Path, to: &Path) -> std::io::Result<()> {
    if fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    fs::copy(from, to).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_prefix_and_channel() {
        assert_eq!(
            split_name("data/0123456789ab/train/train"),
            ("data/0123456789ab/train", "train")
        );
        assert_eq!(split_name("validation"), ("", "validation"));
    }

    #[test]
    fn trees_are_copied_and_linked_without_hidden_files() {
        let dir = tempfile::tempdir().unwrap();
        let (from, copy, linked) = (
            dir.path().join("from"),
            dir.path().join("copy"),
            dir.path().join("linked"),
        );
        fs::create_dir_all(from.join("part")).unwrap();
        fs::write(from.join("a.csv"), "a").unwrap();
        fs::write(from.join("part/b.csv"), "b").unwrap();
        fs::write(from.join(".hidden"), "h").unwrap();
        fs::create_dir_all(&copy).unwrap();
        fs::create_dir_all(&linked).unwrap();
        copy_tree(&from, &copy).unwrap();
        link_tree(&copy, &linked).unwrap();
        assert_eq!(
            engine::names::data_sha256(&from).unwrap(),
            engine::names::data_sha256(&linked).unwrap()
        );
        assert!(!linked.join(".hidden").exists());
        assert_eq!(fs::read_to_string(linked.join("part/b.csv")).unwrap(), "b");
    }
}
