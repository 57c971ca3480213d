//! Training data: each channel's local files, uploaded into the bucket folder under the same key as
//! on S3. The resource is named by that key prefix, `data/<sha12>/<channel>/`; its settings name the
//! channel (whose local source the spec gives) and the sha256 the upload is content-addressed by.
//!
//! Observation is cheap: the record keeps each stored file's size and mtime, and the sha256 is
//! recomputed only when one of them changed (then a tampered copy shows as a differing `sha256`, which
//! `up` replaces). Missing files make the data absent. Training jobs hard-link these files into their
//! `input/data/<channel>/` (copying where links are impossible). The paths the record keeps are
//! checked to resolve inside the state's `buckets/` before they are hashed, linked or deleted.

use std::fs;
use std::path::{Path, PathBuf};

use engine::Settings;
use engine::kind::TrainingDataSettings;
use engine::resource::{Change, Kind, Observed, Outputs};
use engine::target::{Applied, Deleted, Found, KindOnTarget, TargetError, Upstream};
use engine::values::{Channel, DataHash};
use serde::{Deserialize, Serialize};
use spec::DataSource;

use crate::contained::{ContainedPath, RecordedPath};
use crate::error::target_error;
use crate::state::{Record, Stamp, create_private_dir, encode_name};
use crate::{LocalError, LocalTarget, bucket, io_error, record, remove_dir_all};

const KIND: Kind = Kind::TrainingData;

/// Uploaded training data on the local target.
#[derive(Debug)]
pub struct LocalTrainingData;

impl KindOnTarget<LocalTarget> for LocalTrainingData {
    type Settings = TrainingDataSettings;

    async fn observe(
        target: &LocalTarget,
        name: &str,
        _: &TrainingDataSettings,
    ) -> Result<Observed, TargetError> {
        observe(target, name).map_err(|e| target_error("observe", KIND, name, e))
    }

    async fn apply(
        target: &LocalTarget,
        name: &str,
        settings: &TrainingDataSettings,
        change: &Change,
        upstream: Upstream<'_>,
    ) -> Result<Applied, TargetError> {
        apply(target, name, settings, upstream).map_err(|e| target_error(change.verb(), KIND, name, e))
    }

    async fn delete(target: &LocalTarget, name: &str) -> Result<Deleted, TargetError> {
        delete(target, name)
            .map(|()| Deleted::Gone)
            .map_err(|e| target_error("delete", KIND, name, e))
    }

    async fn owned(target: &LocalTarget) -> Result<Vec<Found>, TargetError> {
        target.found(KIND)
    }
}

/// What the record keeps besides the settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DataDetails {
    /// The bucket folder the data is in.
    pub bucket: RecordedPath,
    /// The key prefix's folder in the bucket (`data/<sha12>/<channel>`).
    pub folder: RecordedPath,
    /// The stored copy: one file in `folder`, or `folder` itself for a directory source.
    pub path: RecordedPath,
    pub stamps: Vec<Stamp>,
}

/// A path of a training data record, checked to be in a bucket's folder.
fn checked(target: &LocalTarget, name: &str, path: &RecordedPath) -> Result<ContainedPath, LocalError> {
    target.state.recorded(KIND, name, Kind::Bucket, path)
}

fn observe(target: &LocalTarget, name: &str) -> Result<Observed, LocalError> {
    let Some(mut record) = target.state.read::<DataDetails>(KIND, name)? else {
        return Ok(Observed::Absent);
    };
    let path = checked(target, name, &record.details.path)?;
    let Ok(stamps) = Stamp::all(&path) else {
        return Ok(Observed::Absent);
    };
    if stamps.is_empty() {
        return Ok(Observed::Absent);
    }
    if stamps != record.details.stamps {
        // Changed since the upload: what is stored now is what it hashes to.
        let sha256 = engine::names::data_sha256(&path).map_err(|source| LocalError::HashData {
            path: path.to_path_buf(),
            source,
        })?;
        if let Settings::TrainingData(data) = &mut record.settings {
            data.sha256 = DataHash(sha256);
        }
    }
    Ok(record::observed(Some(record)))
}

/// Uploads channel `settings.channel` under key prefix `name`.
fn apply(
    target: &LocalTarget,
    name: &str,
    settings: &TrainingDataSettings,
    upstream: Upstream<'_>,
) -> Result<Applied, LocalError> {
    let channel = settings.channel;
    let source = target
        .channel_source(channel)
        .ok_or_else(|| LocalError::UnknownChannel {
            name: name.to_string(),
            channel,
        })?;
    let (source, is_dir) = match source {
        DataSource::LocalFile(path) => (path, false),
        DataSource::LocalDir(path) => (path, true),
        DataSource::S3 { .. } => {
            return Err(LocalError::RemoteData {
                channel,
                location: source.to_string(),
            });
        }
    };
    let bucket_name = upstream
        .state
        .get(Kind::Bucket)
        .map_or_else(|| crate::bucket_name(&target.spec), |b| b.name.clone());
    let bucket = bucket::folder(target, &bucket_name)?;
    if !bucket.is_dir() {
        return Err(LocalError::Missing {
            kind: KIND,
            name: name.to_string(),
            what: format!("bucket `{bucket_name}`"),
        });
    }
    // The key prefix's folders (`data`, `<sha12>`, `<channel>`), without its trailing `/`.
    let within = |path: PathBuf| target.state.within(KIND, name, Kind::Bucket, &path);
    let folder = within(bucket.join(Path::new(name).components().collect::<PathBuf>()))?;
    // Upload into a hidden staging folder, then rename: a half-copied channel is never observed.
    let staging = within(bucket.join(format!(".upload-{}", encode_name(name))))?;
    remove_dir_all(KIND, name, &staging)?;
    create_private_dir(&staging).map_err(io_error(KIND, name, "create", &staging))?;
    let file_name = source
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(channel.as_str()));
    if is_dir {
        copy_tree(source, &staging).map_err(io_error(KIND, name, "upload", source))?;
    } else {
        fs::copy(source, staging.join(&file_name)).map_err(io_error(KIND, name, "upload", source))?;
    }
    remove_dir_all(KIND, name, &folder)?;
    if let Some(parent) = folder.parent() {
        create_private_dir(parent).map_err(io_error(KIND, name, "create", parent))?;
    }
    fs::rename(&staging, &folder).map_err(io_error(KIND, name, "store", &folder))?;
    let path = if is_dir {
        folder.to_path_buf()
    } else {
        folder.join(&file_name)
    };
    let want = settings.sha256.as_str();
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
        bucket: RecordedPath::from(&bucket),
        folder: RecordedPath::from(&folder),
        path: RecordedPath::from(path),
        stamps,
    };
    target
        .state
        .write(KIND, &Record::new(name, settings.clone(), details))?;
    Ok(Applied::Ready(Outputs::None))
}

fn delete(target: &LocalTarget, name: &str) -> Result<(), LocalError> {
    if let Some(record) = target.state.read::<DataDetails>(KIND, name)? {
        let (folder, bucket) = (
            checked(target, name, &record.details.folder)?,
            checked(target, name, &record.details.bucket)?,
        );
        remove_dir_all(KIND, name, &folder)?;
        // Prune `data/<sha12>` and `data` once empty; never above the bucket.
        let mut parent = folder.parent();
        while let Some(dir) = parent {
            if dir == bucket.as_path() || !dir.starts_with(&bucket) || fs::remove_dir(dir).is_err() {
                break;
            }
            parent = dir.parent();
        }
    }
    target.state.remove(KIND, name)
}

/// Puts the stored files of uploaded data `name` into a training job's `input/data/<channel>/`.
pub(crate) fn link_into(
    target: &LocalTarget,
    name: &str,
    channel: Channel,
    channels_dir: &Path,
) -> Result<(), LocalError> {
    let record = target
        .state
        .read::<DataDetails>(KIND, name)?
        .ok_or_else(|| LocalError::Missing {
            kind: Kind::TrainingJob,
            name: name.to_string(),
            what: format!("uploaded training data `{name}`"),
        })?;
    let path = checked(target, name, &record.details.path)?;
    let folder = checked(target, name, &record.details.folder)?;
    let channel_dir = channels_dir.join(channel.as_str());
    create_private_dir(&channel_dir).map_err(io_error(KIND, name, "create", &channel_dir))?;
    if path == folder {
        link_tree(&path, &channel_dir).map_err(io_error(KIND, name, "link", &path))?;
    } else {
        let file_name = path.file_name().unwrap_or_default();
        link_or_copy(&path, &channel_dir.join(file_name)).map_err(io_error(KIND, name, "link", &path))?;
    }
    Ok(())
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
            create_private_dir(&target)?;
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
            create_private_dir(&target)?;
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
