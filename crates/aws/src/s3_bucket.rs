//! The deployment's data bucket: created in the deployment's region if absent, with versioning,
//! default encryption (SSE-S3, `AES256`), every public access block on, a TLS-only bucket policy and
//! the deployment's tags. Observation reports the tags as the bucket's settings and each protection
//! as a check (`region`, which only a new bucket can change, `versioning`, `encryption`,
//! `public_access_block`, `tls_only_policy`); teardown removes every object version and delete
//! marker, then the bucket. Objects under `data/` outside every training data channel's prefix are
//! nobody's data: observation reports them (`unknown_objects`) and `up` deletes them.
//!
//! Every call on the bucket and its objects passes the account of the credentials as
//! `ExpectedBucketOwner` (CreateBucket has no such member: the call after it proves ownership). The
//! bucket's name holds the account id, but bucket names are global: after `down` deleted it, another
//! account can create a bucket of the same name (bucket sniping). S3 then refuses every call with 403,
//! and [`owner`] tells that apart from a permission problem of these credentials (the bucket is not
//! among this account's); observation and the lock stop with [`NotThisAccounts`] before any write,
//! and discovery reports nothing of it as the deployment's, so `down` leaves it alone.
//!
//! The bucket is the deployment's when it carries the deployment's tag ([`is_ours`]); the training
//! data's discovery asks the same before listing the data in it.

use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, Delete, ObjectIdentifier,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging, VersioningConfiguration,
};
use engine::kind::BucketSettings;
use engine::resource::{Change, Check, Lifecycle, OnChange, Outputs};
use engine::target::{Applied, Deleted, Found, KindOnTarget, TargetError, Upstream};
use engine::values::Tags;
use engine::{Kind, Observed};
use serde_json::{Value, json};

use crate::clients::{Clients, partition};
use crate::errors::{AwsError, ErrorClass, OrAbsent};
use crate::target::AwsTarget;
use crate::training_data;

/// The values a compliant bucket reports.
pub const VERSIONING_ENABLED: &str = "Enabled";
pub const ENCRYPTION_AES256: &str = "AES256";
pub const ALL_BLOCKED: &str = "all blocked";
pub const POLICY_PRESENT: &str = "present";
pub const POLICY_ABSENT: &str = "absent";

const KIND: Kind = Kind::Bucket;
/// `DeleteObjects` takes at most this many keys per call.
const DELETE_BATCH: usize = 1000;

/// The bucket policy that refuses every request not made over TLS.
pub fn tls_only_policy(bucket: &str, region: &str) -> Value {
    let arn = format!("arn:{}:s3:::{bucket}", partition(region));
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [arn.clone(), format!("{arn}/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}
        }]
    })
}

/// Whether a bucket policy document denies non-TLS requests for the whole bucket and its objects.
pub fn is_tls_only(policy: &str, bucket: &str) -> bool {
    let Ok(document) = serde_json::from_str::<Value>(policy) else {
        return false;
    };
    let bucket_arn_suffix = format!(":s3:::{bucket}");
    let objects_arn_suffix = format!(":s3:::{bucket}/*");
    as_list(&document["Statement"]).iter().any(|statement| {
        let deny = statement["Effect"] == "Deny";
        let everyone = statement["Principal"] == "*" || statement["Principal"]["AWS"] == "*";
        let all_actions = as_list(&statement["Action"]).iter().any(|a| *a == "s3:*");
        let resources = as_list(&statement["Resource"]);
        let covers = |suffix: &str| {
            resources.iter().any(|r| {
                r.as_str()
                    .is_some_and(|r| r.starts_with("arn:") && r.ends_with(suffix))
            })
        };
        let insecure = as_list(&statement["Condition"]["Bool"]["aws:SecureTransport"])
            .iter()
            .any(|v| *v == "false" || *v == false);
        deny && everyone
            && all_actions
            && covers(&bucket_arn_suffix)
            && covers(&objects_arn_suffix)
            && insecure
    })
}

/// A JSON value that IAM allows as "one or a list" as a list.
fn as_list(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// Describes a public access block configuration: `all blocked`, or which blocks are off.
pub fn public_access_field(config: Option<&PublicAccessBlockConfiguration>) -> String {
    let Some(config) = config else {
        return "not configured".to_string();
    };
    let open: Vec<&str> = [
        ("block_public_acls", config.block_public_acls()),
        ("ignore_public_acls", config.ignore_public_acls()),
        ("block_public_policy", config.block_public_policy()),
        ("restrict_public_buckets", config.restrict_public_buckets()),
    ]
    .into_iter()
    .filter(|(_, on)| *on != Some(true))
    .map(|(name, _)| name)
    .collect();
    if open.is_empty() {
        ALL_BLOCKED.to_string()
    } else {
        format!("off: {}", open.join(", "))
    }
}

/// The region a bucket lives in, from `GetBucketLocation`'s constraint (empty means us-east-1,
/// `EU` is the legacy name of eu-west-1).
pub fn region_of(constraint: Option<&str>) -> String {
    match constraint {
        None | Some("") => "us-east-1".to_string(),
        Some("EU") => "eu-west-1".to_string(),
        Some(region) => region.to_string(),
    }
}

/// A bucket's protections as found, in the words `status` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protections {
    pub region: String,
    pub versioning: String,
    pub encryption: String,
    pub public_access_block: String,
    pub tls_only_policy: String,
}

impl Protections {
    /// What a compliant bucket in `region` reports.
    pub fn compliant(region: &str) -> Self {
        Self {
            region: region.to_string(),
            versioning: VERSIONING_ENABLED.to_string(),
            encryption: ENCRYPTION_AES256.to_string(),
            public_access_block: ALL_BLOCKED.to_string(),
            tls_only_policy: POLICY_PRESENT.to_string(),
        }
    }

    /// The checks of these protections against a compliant bucket in `region`: the region cannot
    /// change in place, the rest can.
    pub fn checks(&self, region: &str) -> Vec<Check> {
        let want = Self::compliant(region);
        vec![
            Check::new("region", want.region, &self.region, OnChange::Replace),
            Check::new("versioning", want.versioning, &self.versioning, OnChange::Update),
            Check::new("encryption", want.encryption, &self.encryption, OnChange::Update),
            Check::new(
                "public_access_block",
                want.public_access_block,
                &self.public_access_block,
                OnChange::Update,
            ),
            Check::new(
                "tls_only_policy",
                want.tls_only_policy,
                &self.tls_only_policy,
                OnChange::Update,
            ),
        ]
    }
}

/// Whose the bucket of a name is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// No bucket has that name.
    Nobody,
    /// The account of the credentials.
    ThisAccount,
    /// S3 refuses this account as the bucket's expected owner.
    NotThisAccount(NotThisAccounts),
}

/// Why the bucket of the deployment's name is not used: nothing is read from it or written to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotThisAccounts {
    /// It is not among this account's buckets.
    #[error(
        "a bucket of this name exists, but in another AWS account than {account} (the account of \
         these credentials): someone else created it, perhaps after `down` deleted ours (bucket \
         sniping), and orchestrate neither reads nor writes it. {WHAT_TO_DO}"
    )]
    AnotherAccount { account: String },
    /// These credentials may not list the account's buckets to tell whether another account owns
    /// it or a permission is missing.
    #[error(
        "S3 refuses it with {account} (the account of these credentials) as its expected owner, and \
         these credentials may not list the account's buckets (`s3:ListAllMyBuckets`) to tell why: \
         either another AWS account owns a bucket of this name (bucket sniping, perhaps after `down` \
         deleted ours), which orchestrate neither reads nor writes, or these credentials may not \
         read the bucket (`s3:ListBucket`). In the first case: {WHAT_TO_DO}"
    )]
    Undetermined { account: String },
}

const WHAT_TO_DO: &str = "Rename the deployment (`name:` in deploy.yaml) to get a bucket of another \
     name, or run with the credentials of the account that owns it if it is yours";

impl NotThisAccounts {
    /// The error of an operation that needs the bucket `name`.
    pub fn refusing(self, name: &str) -> AwsError {
        AwsError {
            action: "use",
            kind: KIND,
            name: name.to_string(),
            class: ErrorClass::AccessDenied,
            code: None,
            source: Box::new(self),
        }
    }
}

/// Whose the bucket `name` is: `HeadBucket` with this account as the expected owner, and when S3
/// refuses that, [`owner_after_refusal`].
pub async fn owner(clients: &Clients, name: &str) -> Result<Owner, AwsError> {
    let account = clients.account().await?;
    let found = clients
        .s3
        .head_bucket()
        .bucket(name)
        .expected_bucket_owner(account)
        .send()
        .await
        .map_err(|e| AwsError::sdk("find", KIND, name, e));
    match found {
        Ok(_) => Ok(Owner::ThisAccount),
        Err(e) if e.is_not_found() => Ok(Owner::Nobody),
        Err(e) => Ok(Owner::NotThisAccount(
            owner_after_refusal(clients, name, e).await?,
        )),
    }
}

/// Why S3 refused a call on bucket `name` with this account as the expected owner (`refused`):
/// the bucket is not among this account's buckets (`ListBuckets`), or these credentials may not
/// list them. A bucket among them is this account's, and `refused` an error of these credentials'
/// permissions; an error other than a refusal stays an error too.
async fn owner_after_refusal(
    clients: &Clients,
    name: &str,
    refused: AwsError,
) -> Result<NotThisAccounts, AwsError> {
    if refused.class != ErrorClass::AccessDenied {
        return Err(refused);
    }
    let account = clients.account().await?.to_string();
    match clients.s3.list_buckets().prefix(name).send().await {
        Ok(listed) if !listed.buckets().iter().any(|b| b.name() == Some(name)) => {
            Ok(NotThisAccounts::AnotherAccount { account })
        }
        Ok(_) => Err(refused),
        Err(e) => {
            let e = AwsError::sdk("list the buckets of the account to find", KIND, name, e);
            tracing::debug!(error = %crate::errors::DisplayErrorContext(&e), "cannot tell whose the bucket is");
            Ok(NotThisAccounts::Undetermined { account })
        }
    }
}

/// Reads the bucket: its tags, the checks of its protections (wanted in the clients' region, the
/// deployment's) and the objects under `data/` outside every channel's prefix. A bucket of another
/// account is an error ([`NotThisAccounts`]).
pub async fn observe(clients: &Clients, name: &str) -> Result<Observed, AwsError> {
    let s3 = &clients.s3;
    let account = clients.account().await?;
    match owner(clients, name).await? {
        Owner::Nobody => return Ok(Observed::Absent),
        Owner::ThisAccount => {}
        Owner::NotThisAccount(why) => return Err(why.refusing(name)),
    }
    let location = s3
        .get_bucket_location()
        .bucket(name)
        .expected_bucket_owner(account)
        .send()
        .await
        .map_err(|e| AwsError::sdk("read the region of", KIND, name, e))?;
    let region = region_of(
        location
            .location_constraint()
            .map(BucketLocationConstraint::as_str),
    );

    let tags = match s3
        .get_bucket_tagging()
        .bucket(name)
        .expected_bucket_owner(account)
        .send()
        .await
    {
        Ok(out) => out.tag_set().iter().map(|t| (t.key(), t.value())).collect(),
        Err(e) => absent_or(AwsError::sdk("read the tags of", KIND, name, e), Tags::default())?,
    };
    let versioning = match s3
        .get_bucket_versioning()
        .bucket(name)
        .expected_bucket_owner(account)
        .send()
        .await
    {
        Ok(out) => out
            .status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_else(|| "Disabled".to_string()),
        // moto 5.2 answers with a `GetBucketVersioningResponse` root, which the SDK refuses to
        // decode; the answer itself is a successful one, so read its status from the body.
        Err(e) => match e.raw_response().filter(|r| r.status().as_u16() == 200) {
            Some(raw) => versioning_from_body(raw.body().bytes().unwrap_or_default()),
            None => return Err(AwsError::sdk("read the versioning of", KIND, name, e)),
        },
    };
    let encryption = match s3
        .get_bucket_encryption()
        .bucket(name)
        .expected_bucket_owner(account)
        .send()
        .await
    {
        Ok(out) => out
            .server_side_encryption_configuration()
            .and_then(|c| c.rules().first())
            .and_then(|r| r.apply_server_side_encryption_by_default())
            .map(|d| d.sse_algorithm().as_str().to_string())
            .unwrap_or_else(|| "none".to_string()),
        Err(e) => absent_or(
            AwsError::sdk("read the encryption of", KIND, name, e),
            "none".to_string(),
        )?,
    };
    let public_access = match s3
        .get_public_access_block()
        .bucket(name)
        .expected_bucket_owner(account)
        .send()
        .await
    {
        Ok(out) => public_access_field(out.public_access_block_configuration()),
        Err(e) => absent_or(
            AwsError::sdk("read the public access block of", KIND, name, e),
            public_access_field(None),
        )?,
    };
    let policy = match s3
        .get_bucket_policy()
        .bucket(name)
        .expected_bucket_owner(account)
        .send()
        .await
    {
        Ok(out) if out.policy().is_some_and(|p| is_tls_only(p, name)) => POLICY_PRESENT,
        Ok(_) => POLICY_ABSENT,
        Err(e) => absent_or(AwsError::sdk("read the policy of", KIND, name, e), POLICY_ABSENT)?,
    };
    let found = Protections {
        region,
        versioning,
        encryption,
        public_access_block: public_access,
        tls_only_policy: policy.to_string(),
    };
    let unknown = training_data::outside_channels(clients, name).await?;
    let mut checks = found.checks(clients.region());
    checks.push(training_data::unknown_objects_check(&unknown));
    Ok(Observed::present(name, BucketSettings { tags }, Lifecycle::Ready).with_checks(checks))
}

/// The `<Status>` of a successful `GetBucketVersioning` body (`Disabled` when there is none).
pub fn versioning_from_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.split_once("<Status>")
        .and_then(|(_, rest)| rest.split_once("</Status>"))
        .map(|(status, _)| status.trim().to_string())
        .unwrap_or_else(|| "Disabled".to_string())
}

/// A sub-configuration that is not set reads as `default`; any other failure is an error.
fn absent_or<T>(error: AwsError, default: T) -> Result<T, AwsError> {
    if error.is_not_found() {
        Ok(default)
    } else {
        Err(error)
    }
}

/// Creates the bucket if absent (in the clients' region, the deployment's) and sets versioning,
/// encryption, the public access block, the TLS-only policy and the tags, then deletes the objects
/// under `data/` outside every channel's prefix. Every step is idempotent, so this serves both create
/// and update, and a run after an interrupted one. A name another account holds is
/// [`NotThisAccounts`], and nothing is written.
pub async fn apply(clients: &Clients, name: &str, settings: &BucketSettings) -> Result<(), AwsError> {
    let region = clients.region();
    let s3 = &clients.s3;
    let account = clients.account().await?;
    let build = |action| move |e| AwsError::other(action, KIND, name, e);

    let mut create = s3.create_bucket().bucket(name);
    if region != "us-east-1" {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build(),
        );
    }
    match create.send().await {
        Ok(_) => tracing::info!(bucket = name, region, "created bucket"),
        Err(e) => {
            let e = AwsError::sdk("create", KIND, name, e);
            // Already ours (a re-run); a name taken by another account is `BucketAlreadyExists`.
            if e.has_code("BucketAlreadyExists") {
                let account = account.to_string();
                return Err(NotThisAccounts::AnotherAccount { account }.refusing(name));
            }
            if !e.has_code("BucketAlreadyOwnedByYou") {
                return Err(e);
            }
        }
    }
    // The first call with the expected owner: a bucket another account created since is refused.
    s3.put_bucket_versioning()
        .bucket(name)
        .expected_bucket_owner(account)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .map_err(|e| AwsError::sdk("enable versioning of", KIND, name, e))?;
    let by_default = ServerSideEncryptionByDefault::builder()
        .sse_algorithm(ServerSideEncryption::Aes256)
        .build()
        .map_err(build("configure the encryption of"))?;
    let encryption = ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(by_default)
                .build(),
        )
        .build()
        .map_err(build("configure the encryption of"))?;
    s3.put_bucket_encryption()
        .bucket(name)
        .expected_bucket_owner(account)
        .server_side_encryption_configuration(encryption)
        .send()
        .await
        .map_err(|e| AwsError::sdk("set the encryption of", KIND, name, e))?;
    s3.put_public_access_block()
        .bucket(name)
        .expected_bucket_owner(account)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(|e| AwsError::sdk("block public access to", KIND, name, e))?;
    s3.put_bucket_policy()
        .bucket(name)
        .expected_bucket_owner(account)
        .policy(tls_only_policy(name, region).to_string())
        .send()
        .await
        .map_err(|e| AwsError::sdk("set the policy of", KIND, name, e))?;
    put_tags(clients, name, &settings.tags).await?;
    let unknown = training_data::outside_channels(clients, name).await?;
    training_data::delete_keys(clients, name, &unknown, KIND, name).await?;
    if !unknown.is_empty() {
        tracing::info!(
            bucket = name,
            deleted = unknown.len(),
            "deleted unknown data objects"
        );
    }
    Ok(())
}

/// Replaces the bucket's tags.
pub async fn put_tags(clients: &Clients, name: &str, wanted: &Tags) -> Result<(), AwsError> {
    let build = |e| AwsError::other("tag", KIND, name, e);
    let tag_set = wanted
        .iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build().map_err(build))
        .collect::<Result<Vec<_>, _>>()?;
    let tagging = Tagging::builder()
        .set_tag_set(Some(tag_set))
        .build()
        .map_err(build)?;
    clients
        .s3
        .put_bucket_tagging()
        .bucket(name)
        .expected_bucket_owner(clients.account().await?)
        .tagging(tagging)
        .send()
        .await
        .map_err(|e| AwsError::sdk("tag", KIND, name, e))?;
    Ok(())
}

/// Deletes every object version and delete marker in the bucket. Returns how many were deleted.
pub async fn empty(clients: &Clients, name: &str) -> Result<usize, AwsError> {
    let s3 = &clients.s3;
    let account = clients.account().await?;
    let mut deleted = 0;
    let mut key_marker: Option<String> = None;
    let mut version_marker: Option<String> = None;
    loop {
        let page = s3
            .list_object_versions()
            .bucket(name)
            .expected_bucket_owner(account)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await;
        let page = match page {
            Ok(page) => page,
            Err(e) => return absent_or(AwsError::sdk("list the objects of", KIND, name, e), deleted),
        };
        let versions = page.versions().iter().map(|v| (v.key(), v.version_id()));
        let markers = page.delete_markers().iter().map(|m| (m.key(), m.version_id()));
        let identifiers = versions
            .chain(markers)
            .filter_map(|(key, version)| {
                let key = key?;
                Some(
                    ObjectIdentifier::builder()
                        .key(key)
                        .set_version_id(version.map(str::to_string))
                        .build(),
                )
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AwsError::other("empty", KIND, name, e))?;
        for batch in identifiers.chunks(DELETE_BATCH) {
            let delete = Delete::builder()
                .set_objects(Some(batch.to_vec()))
                .quiet(true)
                .build()
                .map_err(|e| AwsError::other("empty", KIND, name, e))?;
            let out = s3
                .delete_objects()
                .bucket(name)
                .expected_bucket_owner(account)
                .delete(delete)
                .send()
                .await
                .map_err(|e| AwsError::sdk("empty", KIND, name, e))?;
            if let Some(error) = out.errors().first() {
                let message = format!(
                    "{} object(s) not deleted; `{}`: {}",
                    out.errors().len(),
                    error.key().unwrap_or_default(),
                    error.message().or(error.code()).unwrap_or_default()
                );
                return Err(AwsError::other("empty", KIND, name, message));
            }
            deleted += batch.len();
        }
        if page.is_truncated() != Some(true) {
            return Ok(deleted);
        }
        key_marker = page.next_key_marker().map(str::to_string);
        version_marker = page.next_version_id_marker().map(str::to_string);
    }
}

/// Deletes the bucket: its policy first (a policy can deny the deletions that follow), every object
/// version and delete marker, then the bucket. Deleting a bucket that is gone succeeds.
pub async fn delete(clients: &Clients, name: &str) -> Result<(), AwsError> {
    let s3 = &clients.s3;
    let account = clients.account().await?;
    let policy = s3
        .delete_bucket_policy()
        .bucket(name)
        .expected_bucket_owner(account)
        .send()
        .await;
    if let Err(e) = policy {
        absent_or(AwsError::sdk("delete the policy of", KIND, name, e), ())?;
    }
    let deleted = empty(clients, name).await?;
    tracing::info!(bucket = name, deleted, "emptied bucket");
    match s3
        .delete_bucket()
        .bucket(name)
        .expected_bucket_owner(account)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => absent_or(AwsError::sdk("delete", KIND, name, e), ()),
    }
}

/// Whether the deployment's bucket exists in this account and carries the deployment's tag: what
/// makes it, and the training data in it, the deployment's. Another account's bucket of the name is
/// not.
pub async fn is_ours(target: &AwsTarget) -> Result<bool, AwsError> {
    let bucket = target.bucket();
    let tagging = target
        .clients
        .s3
        .get_bucket_tagging()
        .bucket(&bucket)
        .expected_bucket_owner(target.account())
        .send()
        .await
        .map_err(|e| AwsError::sdk("read the tags of", KIND, &bucket, e))
        .or_absent();
    let tagging = match tagging {
        Ok(tagging) => tagging,
        Err(e) => match owner_after_refusal(&target.clients, &bucket, e).await? {
            NotThisAccounts::AnotherAccount { .. } => {
                tracing::warn!(
                    bucket,
                    "a bucket of the deployment's name belongs to another AWS account"
                );
                None
            }
            why @ NotThisAccounts::Undetermined { .. } => return Err(why.refusing(&bucket)),
        },
    };
    // No bucket, or a bucket without tags: not ours.
    Ok(tagging.is_some_and(|tagging| target.is_ours(tagging.tag_set().iter().map(|t| (t.key(), t.value())))))
}

/// The data bucket on AWS.
#[derive(Debug)]
pub struct S3Bucket;

impl KindOnTarget<AwsTarget> for S3Bucket {
    type Settings = BucketSettings;

    async fn observe(target: &AwsTarget, name: &str, _: &BucketSettings) -> Result<Observed, TargetError> {
        Ok(observe(&target.clients, name).await?)
    }

    async fn apply(
        target: &AwsTarget,
        name: &str,
        settings: &BucketSettings,
        _: &Change,
        _: Upstream<'_>,
    ) -> Result<Applied, TargetError> {
        apply(&target.clients, name, settings).await?;
        Ok(Applied::Ready(Outputs::None))
    }

    async fn delete(target: &AwsTarget, name: &str) -> Result<Deleted, TargetError> {
        delete(&target.clients, name).await?;
        Ok(Deleted::Gone)
    }

    /// The deployment's bucket, when it is tagged as the deployment's.
    async fn owned(target: &AwsTarget) -> Result<Vec<Found>, TargetError> {
        let owned = is_ours(target).await?;
        Ok(owned
            .then(|| Found::new(KIND, target.bucket()))
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_we_write_is_recognised_as_tls_only() {
        let policy = tls_only_policy("iot-123-us-east-1", "us-east-1").to_string();
        assert!(is_tls_only(&policy, "iot-123-us-east-1"));
        // Another bucket's policy does not count.
        assert!(!is_tls_only(&policy, "other"));
        let china = tls_only_policy("b", "cn-north-1");
        assert_eq!(china["Statement"][0]["Resource"][0], "arn:aws-cn:s3:::b");
    }

    #[test]
    fn weakened_policies_are_not_tls_only() {
        let mut policy = tls_only_policy("b", "us-east-1");
        policy["Statement"][0]["Effect"] = json!("Allow");
        assert!(!is_tls_only(&policy.to_string(), "b"));

        let mut objects_only = tls_only_policy("b", "us-east-1");
        objects_only["Statement"][0]["Resource"] = json!("arn:aws:s3:::b/*");
        assert!(!is_tls_only(&objects_only.to_string(), "b"));

        let mut no_condition = tls_only_policy("b", "us-east-1");
        no_condition["Statement"][0]["Condition"] = json!({});
        assert!(!is_tls_only(&no_condition.to_string(), "b"));

        assert!(!is_tls_only("not json", "b"));
    }

    #[test]
    fn single_statement_and_boolean_forms_are_accepted() {
        let policy = json!({
            "Statement": {
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": ["s3:*"],
                "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
                "Condition": {"Bool": {"aws:SecureTransport": false}}
            }
        });
        assert!(is_tls_only(&policy.to_string(), "b"));
    }

    #[test]
    fn public_access_names_the_blocks_that_are_off() {
        let all = PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(true)
            .block_public_policy(true)
            .restrict_public_buckets(true)
            .build();
        assert_eq!(public_access_field(Some(&all)), ALL_BLOCKED);
        let partly = PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(false)
            .block_public_policy(true)
            .build();
        assert_eq!(
            public_access_field(Some(&partly)),
            "off: ignore_public_acls, restrict_public_buckets"
        );
        assert_eq!(public_access_field(None), "not configured");
    }

    #[test]
    fn versioning_is_read_from_an_undecodable_body() {
        let body = br#"<GetBucketVersioningResponse xmlns="x"><Status>Suspended</Status></GetBucketVersioningResponse>"#;
        assert_eq!(versioning_from_body(body), "Suspended");
        assert_eq!(versioning_from_body(b"<VersioningConfiguration/>"), "Disabled");
    }

    #[test]
    fn protections_are_checked_against_a_compliant_bucket_in_the_region() {
        let compliant = Protections::compliant("eu-west-1");
        assert!(compliant.checks("eu-west-1").iter().all(|c| c.want == c.have));
        let found = Protections {
            encryption: "none".into(),
            public_access_block: "off: block_public_acls".into(),
            ..compliant
        };
        let differing: Vec<(&str, OnChange)> = found
            .checks("eu-west-1")
            .iter()
            .filter(|c| c.want != c.have)
            .map(|c| (c.field, c.on_change))
            .collect();
        assert_eq!(
            differing,
            [
                ("encryption", OnChange::Update),
                ("public_access_block", OnChange::Update)
            ]
        );
        let elsewhere: Vec<String> = Protections::compliant("us-east-1")
            .checks("eu-west-1")
            .iter()
            .filter(|c| c.want != c.have)
            .map(|c| {
                format!(
                    "{}: want {}, have {} ({:?})",
                    c.field, c.want, c.have, c.on_change
                )
            })
            .collect();
        assert_eq!(elsewhere, ["region: want eu-west-1, have us-east-1 (Replace)"]);
    }

    #[test]
    fn a_bucket_not_this_accounts_is_refused_saying_why_and_what_to_do() {
        let account = "123456789012".to_string();
        let sniped = NotThisAccounts::AnotherAccount {
            account: account.clone(),
        }
        .refusing("iot-123456789012-eu-west-1");
        assert_eq!(sniped.class, ErrorClass::AccessDenied);
        let chain = engine::target::error_chain(&sniped);
        assert!(
            chain.starts_with("use bucket `iot-123456789012-eu-west-1`: a bucket of this name exists, but in another AWS account than 123456789012"),
            "{chain}"
        );
        assert!(
            chain.contains("(bucket sniping)") && chain.contains("`name:` in deploy.yaml"),
            "{chain}"
        );
        // Without `s3:ListAllMyBuckets` the reason is one of two, and the message says both.
        let undetermined = NotThisAccounts::Undetermined { account }.to_string();
        for part in [
            "s3:ListAllMyBuckets",
            "bucket sniping",
            "s3:ListBucket",
            "`name:` in deploy.yaml",
        ] {
            assert!(undetermined.contains(part), "want {part} in: {undetermined}");
        }
    }

    #[test]
    fn location_constraints_map_to_regions() {
        assert_eq!(region_of(None), "us-east-1");
        assert_eq!(region_of(Some("")), "us-east-1");
        assert_eq!(region_of(Some("EU")), "eu-west-1");
        assert_eq!(region_of(Some("eu-central-1")), "eu-central-1");
    }
}
