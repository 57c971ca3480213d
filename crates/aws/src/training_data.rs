//! Training data: each channel's local files, uploaded into the data bucket under a content-hash key
//! (`data/<sha12>/<channel>/<file>`, the prefix the desired state names), each with a SHA-256 checksum
//! that S3 verifies on upload and keeps with the object.
//!
//! The channel's prefix is exactly what SageMaker reads as the channel, and the training data
//! resource's name. Observation goes by content, not by anything written beside the data: each local
//! file's object is read with S3's checksum (`HeadObject`, checksum mode on) and must carry the
//! file's SHA-256 (`content`: a missing object, another SHA-256, or none, as on an object someone
//! else uploaded, is drift), and an object under the prefix that is no local file's is drift too
//! (`unknown_objects`: SageMaker would train on it). `up` repairs both, uploading what differs and
//! deleting what is unknown. Uploads are single `PutObject`s (no multipart), so S3's checksum is the
//! file's full SHA-256, never a composite one.
//!
//! Every call passes the account as `ExpectedBucketOwner` (see [`s3_bucket`]). The channels are
//! uploaded from the local files or folders deploy.yaml names ([`local_path`]). Discovery lists the
//! bucket's `data/` prefixes, only in a bucket tagged as the deployment's ([`s3_bucket::is_ours`]);
//! other prefixes there are discovered as training data of their own ([`data_resource_name`]), which
//! `up` deletes when no longer wanted, and keys outside every channel's layout are the bucket's
//! `unknown_objects` ([`outside_channels`]).

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode};
use base64::Engine as _;
use engine::kind::TrainingDataSettings;
use engine::resource::{Change, Check, Lifecycle, OnChange, Outputs};
use engine::target::{Applied, Deleted, Found, KindOnTarget, TargetError, Upstream};
use engine::values::Channel;
use engine::{Kind, Observed};
use sha2::{Digest, Sha256};
use spec::{DataSource, Spec};

use crate::clients::Clients;
use crate::errors::{AwsError, OrAbsent};
use crate::s3_bucket;
use crate::target::AwsTarget;

const KIND: Kind = Kind::TrainingData;
/// The object prefix every training data channel lives under.
pub const DATA_PREFIX: &str = "data/";
/// What the `content` check wants, and finds when every local file's object holds its SHA-256.
pub const CONTENT_MATCHES: &str = "every local file, same SHA-256";
/// What the `unknown_objects` check wants.
pub const NO_UNKNOWN_OBJECTS: &str = "none";
/// How many keys a check names before it counts the rest.
const KEYS_SHOWN: usize = 5;

/// A SHA-256 as S3 keeps it for an object uploaded in one part: `ChecksumSHA256`, the digest in
/// base64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumSha256(String);

impl ChecksumSha256 {
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self::of_digest(Sha256::new_with_prefix(bytes))
    }

    pub fn of_file(path: &Path) -> std::io::Result<Self> {
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buffer)?;
            if n == 0 {
                return Ok(Self::of_digest(hasher));
            }
            hasher.update(&buffer[..n]);
        }
    }

    /// The value S3 reported (`HeadObject`'s `ChecksumSHA256`).
    pub fn reported(value: &str) -> Self {
        Self(value.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn of_digest(hasher: Sha256) -> Self {
        Self(base64::engine::general_purpose::STANDARD.encode(&hasher.finalize()[..]))
    }
}

/// One local file of a channel: its key below the channel's prefix, where it is, and its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    pub relative: String,
    pub path: PathBuf,
    pub sha256: ChecksumSha256,
}

/// The local files of a channel source ([`files_of`]), each with its SHA-256.
pub fn local_files(source: &Path) -> std::io::Result<Vec<LocalFile>> {
    files_of(source)?
        .into_iter()
        .map(|(relative, path)| {
            let sha256 = ChecksumSha256::of_file(&path)?;
            Ok(LocalFile {
                relative,
                path,
                sha256,
            })
        })
        .collect()
}

/// What S3 holds under a local file's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// No object.
    Missing,
    /// An object S3 keeps no SHA-256 for: not uploaded by orchestrate.
    WithoutSha256,
    /// An object with this SHA-256.
    Sha256(ChecksumSha256),
}

/// How the objects under a channel's prefix compare with the channel's local files: the keys of
/// each kind of difference, in the order added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Local files without an object.
    pub missing: Vec<String>,
    /// Objects with another SHA-256 than their local file.
    pub differing: Vec<String>,
    /// Objects S3 keeps no SHA-256 for.
    pub without_sha256: Vec<String>,
    /// Objects that are no local file's.
    pub unknown: Vec<String>,
}

impl Comparison {
    /// Adds what S3 holds under `key`, the key of a local file whose SHA-256 is `want`.
    pub fn add(&mut self, key: String, want: &ChecksumSha256, stored: Stored) {
        match stored {
            Stored::Sha256(have) if have == *want => {}
            Stored::Sha256(_) => self.differing.push(key),
            Stored::WithoutSha256 => self.without_sha256.push(key),
            Stored::Missing => self.missing.push(key),
        }
    }

    /// The checks of the channel: `content` and `unknown_objects`, both repaired in place.
    pub fn checks(&self) -> Vec<Check> {
        let differences: Vec<String> = [
            ("missing", &self.missing),
            ("another SHA-256", &self.differing),
            ("no SHA-256", &self.without_sha256),
        ]
        .into_iter()
        .filter(|(_, keys)| !keys.is_empty())
        .map(|(what, keys)| format!("{what}: {}", key_list(keys)))
        .collect();
        let content = if differences.is_empty() {
            CONTENT_MATCHES.to_string()
        } else {
            differences.join("; ")
        };
        vec![
            Check::new("content", CONTENT_MATCHES, content, OnChange::Update),
            unknown_objects_check(&self.unknown),
        ]
    }
}

/// The check of objects nobody uploaded (`unknown_objects`): `none`, or their keys.
pub fn unknown_objects_check(keys: &[String]) -> Check {
    let have = if keys.is_empty() {
        NO_UNKNOWN_OBJECTS.to_string()
    } else {
        key_list(keys)
    };
    Check::new("unknown_objects", NO_UNKNOWN_OBJECTS, have, OnChange::Update)
}

/// The first few keys, and how many more there are.
fn key_list(keys: &[String]) -> String {
    let shown = keys[..keys.len().min(KEYS_SHOWN)].join(", ");
    match keys.len().saturating_sub(KEYS_SHOWN) {
        0 => shown,
        more => format!("{shown} and {more} more"),
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

/// Lists the channel's prefix (`prefix`, the resource's name) and compares it with the channel's
/// local `files` by content ([`Comparison`]). The settings are the desired ones, whose prefix this
/// is: the checks say whether the objects hold that data.
pub async fn observe(
    clients: &Clients,
    bucket: &str,
    prefix: &str,
    desired: &TrainingDataSettings,
    files: &[LocalFile],
) -> Result<Observed, AwsError> {
    let name = prefix;
    let listed = list_keys(clients, bucket, prefix, KIND, name).await?;
    if listed.is_empty() {
        return Ok(Observed::Absent);
    }
    let mut comparison = Comparison::default();
    for file in files {
        let key = format!("{prefix}{}", file.relative);
        let stored = stored(clients, bucket, &key, name).await?;
        comparison.add(key, &file.sha256, stored);
    }
    comparison.unknown = unknown_keys(listed, prefix, files);
    Ok(Observed::present(name, desired.clone(), Lifecycle::Ready).with_checks(comparison.checks()))
}

/// The keys of `listed` (under `prefix`) that are no local file's.
fn unknown_keys(listed: Vec<String>, prefix: &str, files: &[LocalFile]) -> Vec<String> {
    let wanted: BTreeSet<String> = files
        .iter()
        .map(|file| format!("{prefix}{}", file.relative))
        .collect();
    listed.into_iter().filter(|key| !wanted.contains(key)).collect()
}

/// What S3 holds under `key`, read with S3's checksum.
async fn stored(clients: &Clients, bucket: &str, key: &str, name: &str) -> Result<Stored, AwsError> {
    let head = clients
        .s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .expected_bucket_owner(clients.account().await?)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .map_err(|e| AwsError::sdk("read", KIND, name, e))
        .or_absent()?;
    Ok(match head {
        None => Stored::Missing,
        Some(head) => match head.checksum_sha256() {
            Some(value) => Stored::Sha256(ChecksumSha256::reported(value)),
            None => Stored::WithoutSha256,
        },
    })
}

/// Every key under `prefix` in the bucket (none when there is no bucket); failures are reported as
/// listing `kind` `name`.
async fn list_keys(
    clients: &Clients,
    bucket: &str,
    prefix: &str,
    kind: Kind,
    name: &str,
) -> Result<Vec<String>, AwsError> {
    let account = clients.account().await?;
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = clients
            .s3
            .list_objects_v2()
            .bucket(bucket)
            .expected_bucket_owner(account)
            .prefix(prefix)
            .set_continuation_token(token.take())
            .send()
            .await;
        let Some(page) = page
            .map_err(|e| AwsError::sdk("list", kind, name, e))
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

/// The keys under `data/` in the bucket outside every channel's prefix (`data/<sha12>/<channel>/`,
/// [`data_resource_name`]): no training data resource's, so the bucket reports them.
pub async fn outside_channels(clients: &Clients, bucket: &str) -> Result<Vec<String>, AwsError> {
    let keys = list_keys(clients, bucket, DATA_PREFIX, Kind::Bucket, bucket).await?;
    Ok(keys
        .into_iter()
        .filter(|key| data_resource_name(key).is_none())
        .collect())
}

/// Deletes the current version of each of `keys` (older versions go with the bucket); failures
/// are reported as deleting from `kind` `name`.
pub async fn delete_keys(
    clients: &Clients,
    bucket: &str,
    keys: &[String],
    kind: Kind,
    name: &str,
) -> Result<(), AwsError> {
    let account = clients.account().await?;
    for key in keys {
        clients
            .s3
            .delete_object()
            .bucket(bucket)
            .key(key)
            .expected_bucket_owner(account)
            .send()
            .await
            .map_err(|e| AwsError::sdk("delete an object of", kind, name, e))?;
    }
    Ok(())
}

/// What [`apply`] did under a channel's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upload {
    /// Files uploaded (missing, or stored with another SHA-256 or none).
    pub uploaded: usize,
    /// Files already stored with their SHA-256.
    pub kept: usize,
    /// Unknown objects deleted.
    pub deleted: usize,
}

/// Uploads the channel's local `files` under `prefix` (the resource's name) with their SHA-256 for
/// S3 to verify, skipping objects already stored with it, then deletes the objects under the
/// prefix that are no local file's.
pub async fn apply(
    clients: &Clients,
    bucket: &str,
    prefix: &str,
    files: &[LocalFile],
) -> Result<Upload, AwsError> {
    let name = prefix;
    let account = clients.account().await?;
    let mut uploaded = 0;
    for file in files {
        let key = format!("{prefix}{}", file.relative);
        if stored(clients, bucket, &key, name).await? == Stored::Sha256(file.sha256.clone()) {
            continue;
        }
        let body = ByteStream::from_path(&file.path)
            .await
            .map_err(|e| AwsError::other("read", KIND, name, e))?;
        clients
            .s3
            .put_object()
            .bucket(bucket)
            .key(&key)
            .expected_bucket_owner(account)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(file.sha256.as_str())
            .body(body)
            .send()
            .await
            .map_err(|e| AwsError::sdk("upload", KIND, name, e))?;
        uploaded += 1;
    }
    let listed = list_keys(clients, bucket, prefix, KIND, name).await?;
    let unknown = unknown_keys(listed, prefix, files);
    delete_keys(clients, bucket, &unknown, KIND, name).await?;
    let upload = Upload {
        uploaded,
        kept: files.len() - uploaded,
        deleted: unknown.len(),
    };
    tracing::info!(
        data = name,
        uploaded,
        kept = upload.kept,
        deleted = upload.deleted,
        "uploaded training data"
    );
    Ok(upload)
}

/// Deletes the channel's current objects under `prefix` (older versions go with the bucket).
pub async fn delete(clients: &Clients, bucket: &str, prefix: &str) -> Result<(), AwsError> {
    let name = prefix;
    let keys = list_keys(clients, bucket, prefix, KIND, name).await?;
    delete_keys(clients, bucket, &keys, KIND, name).await
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

/// The channel's local files with their SHA-256, hashed off the async runtime.
async fn local_files_of(spec: &Spec, prefix: &str, channel: Channel) -> Result<Vec<LocalFile>, AwsError> {
    let source = local_source(spec, prefix, channel)?.to_path_buf();
    let hash = |e: std::io::Error| AwsError::other("hash the files of", KIND, prefix, e);
    tokio::task::spawn_blocking(move || local_files(&source))
        .await
        .map_err(|e| AwsError::other("hash the files of", KIND, prefix, e))?
        .map_err(hash)
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
        let files = local_files_of(&target.spec, prefix, settings.channel).await?;
        Ok(observe(&target.clients, &target.bucket(), prefix, settings, &files).await?)
    }

    async fn apply(
        target: &AwsTarget,
        prefix: &str,
        settings: &TrainingDataSettings,
        _: &Change,
        _: Upstream<'_>,
    ) -> Result<Applied, TargetError> {
        let files = local_files_of(&target.spec, prefix, settings.channel).await?;
        apply(&target.clients, &target.bucket(), prefix, &files).await?;
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
        let keys = list_keys(&target.clients, &bucket, DATA_PREFIX, KIND, &bucket).await?;
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
    fn checksums_are_base64_sha256_as_s3_reports_them() {
        // SHA-256 of "" and of "abc" (FIPS 180-2), in base64: what S3 reports as `ChecksumSHA256`.
        assert_eq!(
            ChecksumSha256::of_bytes(b"").as_str(),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert_eq!(
            ChecksumSha256::of_bytes(b"abc").as_str(),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.csv");
        // Longer than one read buffer.
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            ChecksumSha256::of_file(&path).unwrap(),
            ChecksumSha256::of_bytes(&bytes)
        );
    }

    #[test]
    fn objects_are_compared_with_the_local_files_by_content() {
        let want = ChecksumSha256::of_bytes(b"a");
        let mut same = Comparison::default();
        same.add("p/a.csv".into(), &want, Stored::Sha256(want.clone()));
        assert_eq!(same, Comparison::default());
        assert!(
            same.checks().iter().all(|c| c.want == c.have),
            "{:?}",
            same.checks()
        );

        let mut drifted = Comparison::default();
        drifted.add(
            "p/a.csv".into(),
            &want,
            Stored::Sha256(ChecksumSha256::of_bytes(b"b")),
        );
        drifted.add("p/b.csv".into(), &want, Stored::WithoutSha256);
        drifted.add("p/c.csv".into(), &want, Stored::Missing);
        drifted.unknown = vec!["p/extra.csv".into()];
        let checks: Vec<(&str, String, OnChange)> = drifted
            .checks()
            .into_iter()
            .map(|c| (c.field, c.have, c.on_change))
            .collect();
        assert_eq!(
            checks,
            [
                (
                    "content",
                    "missing: p/c.csv; another SHA-256: p/a.csv; no SHA-256: p/b.csv".to_string(),
                    OnChange::Update
                ),
                ("unknown_objects", "p/extra.csv".to_string(), OnChange::Update)
            ]
        );
    }

    #[test]
    fn long_key_lists_are_cut_short() {
        let keys: Vec<String> = (1..=7).map(|i| format!("data/x{i}")).collect();
        assert_eq!(
            unknown_objects_check(&keys).have,
            "data/x1, data/x2, data/x3, data/x4, data/x5 and 2 more"
        );
        assert_eq!(unknown_objects_check(&[]).have, NO_UNKNOWN_OBJECTS);
    }

    #[test]
    fn unknown_keys_are_those_of_no_local_file() {
        let file = |relative: &str| LocalFile {
            relative: relative.into(),
            path: PathBuf::from(relative),
            sha256: ChecksumSha256::of_bytes(b""),
        };
        let listed = vec!["p/a.csv".to_string(), "p/part/b.csv".into(), "p/extra".into()];
        assert_eq!(
            unknown_keys(listed, "p/", &[file("a.csv"), file("part/b.csv")]),
            ["p/extra"]
        );
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
