//! Training data: each channel's local files, uploaded into the data bucket under a content-hash key
//! (`data/<sha12>/<channel>/<file>`, the prefix the desired state names) and skipped when present.
//!
//! The channel's prefix is exactly what SageMaker reads as the channel, and the training data
//! resource's name, so no marker object is written there. Each uploaded object carries the
//! channel's sha256 and file count as metadata instead: observation lists the prefix and reads one
//! object's metadata; an interrupted upload (fewer objects than the count says) or objects without
//! that metadata read as a failed resource, which `up` replaces by uploading again.
//!
//! The channels are uploaded from the local files or folders deploy.yaml names ([`local_path`]).
//! Discovery lists the bucket's `data/` prefixes, only in a bucket tagged as the deployment's
//! ([`s3_bucket::is_ours`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::ByteStream;
use engine::kind::TrainingDataSettings;
use engine::resource::{Change, Lifecycle, Outputs};
use engine::target::{Applied, Deleted, Found, KindOnTarget, TargetError, Upstream};
use engine::values::{Channel, DataHash};
use engine::{Kind, Observed};
use spec::{DataSource, Spec};

use crate::clients::Clients;
use crate::errors::{AwsError, OrAbsent};
use crate::s3_bucket;
use crate::target::AwsTarget;

const KIND: Kind = Kind::TrainingData;
/// The object prefix every training data channel lives under.
pub const DATA_PREFIX: &str = "data/";
/// Object metadata (`x-amz-meta-…`) naming the channel's hash and how many files it has.
pub const SHA256_METADATA: &str = "orchestrate-sha256";
pub const FILES_METADATA: &str = "orchestrate-files";

/// What the first object's metadata and the number of objects under the prefix say of an upload:
/// its hash, or why it is not usable.
pub fn upload_state(sha256: Option<&str>, files: Option<&str>, objects: usize) -> Result<DataHash, String> {
    let (Some(sha256), Some(files)) = (sha256, files.and_then(|n| n.parse::<usize>().ok())) else {
        return Err("its objects carry no orchestrate metadata".to_string());
    };
    if files == objects {
        Ok(DataHash(sha256.to_string()))
    } else {
        Err(format!("incomplete upload ({objects} of {files} files)"))
    }
}

/// The files of a channel source with their key below the prefix: a file as its own name, a
/// directory's files by their path relative to it (`/`-separated), sorted.
pub fn files_of(source: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    if source.is_file() {
        let name = source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "data".to_string());
        return Ok(vec![(name, source.to_path_buf())]);
    }
    let mut files = Vec::new();
    let mut folders = vec![source.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let path = entry?.path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let relative = path
                    .strip_prefix(source)
                    .unwrap_or(&path)
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                files.push((relative, path));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Lists the channel's prefix (`prefix`, the resource's name) and reports its `sha256` (from the
/// objects' metadata); the channel is the desired one, whose prefix holds the objects.
pub async fn observe(
    clients: &Clients,
    bucket: &str,
    prefix: &str,
    desired: &TrainingDataSettings,
) -> Result<Observed, AwsError> {
    let name = prefix;
    let keys = list_keys(clients, bucket, prefix, name).await?;
    let Some(first) = keys.first() else {
        return Ok(Observed::Absent);
    };
    let head = clients
        .s3
        .head_object()
        .bucket(bucket)
        .key(first)
        .send()
        .await
        .map_err(|e| AwsError::sdk("read", KIND, name, e))?;
    let metadata = |key: &str| head.metadata().and_then(|m| m.get(key)).map(String::as_str);
    let state = upload_state(metadata(SHA256_METADATA), metadata(FILES_METADATA), keys.len());
    let (sha256, lifecycle) = match state {
        Ok(sha256) => (sha256, Lifecycle::Ready),
        Err(reason) => (desired.sha256.clone(), Lifecycle::Failed(reason)),
    };
    let settings = TrainingDataSettings {
        channel: desired.channel,
        sha256,
    };
    Ok(Observed::present(name, settings, lifecycle))
}

async fn list_keys(
    clients: &Clients,
    bucket: &str,
    prefix: &str,
    name: &str,
) -> Result<Vec<String>, AwsError> {
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = clients
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token.take())
            .send()
            .await;
        let Some(page) = page
            .map_err(|e| AwsError::sdk("list", KIND, name, e))
            .or_absent()?
        else {
            return Ok(keys);
        };
        keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
        match page.next_continuation_token() {
            Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
            _ => return Ok(keys),
        }
    }
}

/// Uploads the channel's files from `source` under `prefix` (the resource's name), skipping objects
/// already stored with this hash. Returns how many files were uploaded.
pub async fn apply(
    clients: &Clients,
    bucket: &str,
    prefix: &str,
    settings: &TrainingDataSettings,
    source: &Path,
) -> Result<usize, AwsError> {
    let name = prefix;
    let sha256 = settings.sha256.as_str();
    let files = files_of(source).map_err(|e| AwsError::other("read the files of", KIND, name, e))?;
    let count = files.len().to_string();
    let mut uploaded = 0;
    for (relative, path) in &files {
        let key = format!("{prefix}{relative}");
        let existing = clients.s3.head_object().bucket(bucket).key(&key).send().await;
        match existing {
            Ok(head)
                if head
                    .metadata()
                    .and_then(|m| m.get(SHA256_METADATA))
                    .map(String::as_str)
                    == Some(sha256) =>
            {
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                let e = AwsError::sdk("check", KIND, name, e);
                if !e.is_not_found() {
                    return Err(e);
                }
            }
        }
        let body = ByteStream::from_path(path)
            .await
            .map_err(|e| AwsError::other("read", KIND, name, e))?;
        clients
            .s3
            .put_object()
            .bucket(bucket)
            .key(&key)
            .metadata(SHA256_METADATA, sha256)
            .metadata(FILES_METADATA, &count)
            .body(body)
            .send()
            .await
            .map_err(|e| AwsError::sdk("upload", KIND, name, e))?;
        uploaded += 1;
    }
    tracing::info!(
        data = name,
        uploaded,
        skipped = files.len() - uploaded,
        "uploaded training data"
    );
    Ok(uploaded)
}

/// Deletes the channel's current objects under `prefix` (older versions go with the bucket).
pub async fn delete(clients: &Clients, bucket: &str, prefix: &str) -> Result<(), AwsError> {
    let name = prefix;
    for key in list_keys(clients, bucket, prefix, name).await? {
        clients
            .s3
            .delete_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| AwsError::sdk("delete", KIND, name, e))?;
    }
    Ok(())
}

/// The training data resource an object key belongs to: `data/<sha12>/<channel>/<file…>` ->
/// its key prefix `data/<sha12>/<channel>/` (the name `engine::desired_state` gives it).
pub fn data_resource_name(key: &str) -> Option<String> {
    let rest = key.strip_prefix(DATA_PREFIX)?;
    let mut parts = rest.splitn(3, '/');
    let (hash, channel, file) = (parts.next()?, parts.next()?, parts.next()?);
    if hash.is_empty() || channel.is_empty() || file.is_empty() {
        return None;
    }
    Some(format!("{DATA_PREFIX}{hash}/{channel}/"))
}

/// A data source's local path; `s3://` sources are not uploaded by this build.
pub fn local_path(channel: Channel, source: &DataSource) -> Result<&Path, AwsError> {
    match source {
        DataSource::LocalFile(path) | DataSource::LocalDir(path) => Ok(path),
        DataSource::S3 { .. } => Err(AwsError::other(
            "upload",
            KIND,
            channel.as_str(),
            format!(
                "training from an existing `{source}` is not supported by this build; use a local file or folder"
            ),
        )),
    }
}

/// The local source of a channel in deploy.yaml (`prefix`: the resource's name).
pub fn local_source<'a>(spec: &'a Spec, prefix: &str, channel: Channel) -> Result<&'a Path, AwsError> {
    engine::desired::channel_sources(spec)
        .into_iter()
        .find(|(c, _)| *c == channel)
        .ok_or_else(|| {
            AwsError::other(
                "upload",
                KIND,
                prefix,
                format!("no `{channel}` channel in deploy.yaml"),
            )
        })
        .and_then(|(channel, source)| local_path(channel, source))
}

/// One uploaded training data channel on AWS.
#[derive(Debug)]
pub struct TrainingData;

impl KindOnTarget<AwsTarget> for TrainingData {
    type Settings = TrainingDataSettings;

    async fn observe(
        target: &AwsTarget,
        prefix: &str,
        settings: &TrainingDataSettings,
    ) -> Result<Observed, TargetError> {
        Ok(observe(&target.clients, &target.bucket(), prefix, settings).await?)
    }

    async fn apply(
        target: &AwsTarget,
        prefix: &str,
        settings: &TrainingDataSettings,
        _: &Change,
        _: Upstream<'_>,
    ) -> Result<Applied, TargetError> {
        let source = local_source(&target.spec, prefix, settings.channel)?;
        apply(&target.clients, &target.bucket(), prefix, settings, source).await?;
        Ok(Applied::Ready(Outputs::None))
    }

    async fn delete(target: &AwsTarget, prefix: &str) -> Result<Deleted, TargetError> {
        delete(&target.clients, &target.bucket(), prefix).await?;
        Ok(Deleted::Gone)
    }

    /// Every channel prefix under `data/` in the deployment's bucket, when the bucket is tagged as
    /// the deployment's.
    async fn owned(target: &AwsTarget) -> Result<Vec<Found>, TargetError> {
        if !s3_bucket::is_ours(target).await? {
            return Ok(Vec::new());
        }
        let bucket = target.bucket();
        // Failures name the bucket: no one channel is being listed.
        let keys = list_keys(&target.clients, &bucket, DATA_PREFIX, &bucket).await?;
        let prefixes: BTreeSet<String> = keys.iter().filter_map(|key| data_resource_name(key)).collect();
        Ok(prefixes
            .into_iter()
            .map(|prefix| Found::new(KIND, prefix))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use engine::desired::ChannelData;

    use super::*;

    #[test]
    fn object_keys_map_to_their_channel_resource() {
        assert_eq!(
            data_resource_name("data/0123456789ab/train/train.csv").as_deref(),
            Some("data/0123456789ab/train/")
        );
        assert_eq!(
            data_resource_name("data/0123456789ab/validation/part/1.csv").as_deref(),
            Some("data/0123456789ab/validation/")
        );
        // The name `engine::desired_state` gives the channel's resource.
        let channel = ChannelData::new(Channel::Train, "0123456789abcdef");
        assert_eq!(
            data_resource_name(&format!("{}train.csv", channel.key_prefix())),
            Some(channel.key_prefix())
        );
        assert_eq!(data_resource_name("orchestrate/lock.json"), None);
        assert_eq!(data_resource_name("data/0123456789ab/train/"), None);
        assert_eq!(data_resource_name("data/x"), None);
    }

    #[test]
    fn only_a_complete_upload_with_metadata_is_usable() {
        assert_eq!(
            upload_state(Some("0a1b"), Some("2"), 2),
            Ok(DataHash("0a1b".into()))
        );
        assert_eq!(
            upload_state(Some("0a1b"), Some("2"), 1),
            Err("incomplete upload (1 of 2 files)".into())
        );
        assert!(upload_state(None, Some("1"), 1).is_err());
        assert!(upload_state(Some("0a1b"), None, 1).is_err());
        assert!(upload_state(Some("0a1b"), Some("many"), 1).is_err());
    }

    #[test]
    fn files_are_keyed_relative_to_the_source() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("part")).unwrap();
        std::fs::write(dir.path().join("b.csv"), "b").unwrap();
        std::fs::write(dir.path().join("part/a.csv"), "a").unwrap();
        let keys: Vec<String> = files_of(dir.path())
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["b.csv", "part/a.csv"]);
        let single = files_of(&dir.path().join("b.csv")).unwrap();
        assert_eq!(single[0].0, "b.csv");
    }
}
