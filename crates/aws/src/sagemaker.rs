//! What the SageMaker resource modules share: how an image, a role and a training output are named
//! in SageMaker's calls, tags on SageMaker ARNs, the discovery of the deployment's training jobs,
//! models and endpoint configs (listed by the deployment's name prefix, each confirmed by its tag),
//! and what `apply` answers while IAM propagates a new role.

use aws_sdk_sagemaker::types::{Tag, TrainingJobStatus};
use engine::Kind;
use engine::target::Applied;
use engine::values::{Digest, ImageRef, InstanceType, Instances, Tags};

use crate::clients::{Clients, dns_suffix, partition};
use crate::errors::AwsError;
use crate::iam_role::{PROPAGATION_TIMEOUT, is_propagation_error};
use crate::target::AwsTarget;

/// Training outputs go under this prefix of the data bucket: `<prefix><job>/output/model.tar.gz`.
pub const OUTPUT_PREFIX: &str = "training-output/";

/// The tag on the endpoint naming the config it ran before its last update (for `rollback`); not
/// part of the endpoint's `tags` setting.
pub const PREVIOUS_CONFIG_TAG: &str = "orchestrate:previous-endpoint-config";

/// The prefix of a training job's data tags, one per channel: `orchestrate:data:<channel>` holds
/// the channel's full sha256 (the channel URIs hold only 12 hex digits of it).
pub const DATA_TAG_PREFIX: &str = "orchestrate:data:";

/// Whether a tag is orchestrate's own record-keeping (the previous endpoint config, a training
/// job's data hashes) rather than one of the deployment's tags: never compared, never removed.
pub fn is_bookkeeping(key: &str) -> bool {
    key == PREVIOUS_CONFIG_TAG || key.starts_with(DATA_TAG_PREFIX)
}

pub use engine::values::VARIANT;

/// The image's URI for SageMaker: `<account>.dkr.ecr.<region>.<suffix>/<repository>@<digest>`.
pub fn image_uri(account: &str, region: &str, image: &ImageRef) -> String {
    format!(
        "{account}.dkr.ecr.{region}.{}/{}@{}",
        dns_suffix(region),
        image.repository,
        image.digest
    )
}

/// The image an image URI references by digest (`[<registry host>/]<repository>@sha256:…`, the
/// form SageMaker echoes back); `None` for a URI without a well-formed digest (a tag reference).
pub fn image_ref(uri: &str) -> Option<ImageRef> {
    let path = match uri.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') => rest,
        _ => uri,
    };
    let (repository, digest) = path.split_once('@')?;
    Some(ImageRef {
        repository: repository.to_string(),
        digest: digest.parse::<Digest>().ok()?,
    })
}

/// Instances as SageMaker reports them (a count and an instance type's name).
pub fn instances(count: Option<i32>, instance_type: Option<&str>) -> Result<Instances, String> {
    let count = count
        .and_then(|c| u32::try_from(c).ok())
        .ok_or("no instance count")?;
    let instance_type = instance_type.ok_or("no instance type")?;
    let instance_type = InstanceType::new(instance_type).map_err(|e| e.to_string())?;
    Ok(Instances { count, instance_type })
}

/// A count for SageMaker's 32-bit fields (saturating: SageMaker refuses what it cannot run).
pub fn sdk_count(count: u32) -> i32 {
    i32::try_from(count).unwrap_or(i32::MAX)
}

pub fn role_arn(account: &str, region: &str, role: &str) -> String {
    format!("arn:{}:iam::{account}:role/{role}", partition(region))
}

/// Where SageMaker writes the outputs of every training job of the deployment.
pub fn output_path(bucket: &str) -> String {
    format!("s3://{bucket}/{OUTPUT_PREFIX}")
}

/// The model artifact a completed attempt wrote.
pub fn model_artifact(bucket: &str, attempt: &str) -> String {
    format!("s3://{bucket}/{OUTPUT_PREFIX}{attempt}/output/model.tar.gz")
}

/// The attempt whose artifact a model data URL names (`…/<attempt>/output/model.tar.gz`).
pub fn attempt_of_artifact(url: &str) -> Option<&str> {
    let rest = url.strip_suffix("/output/model.tar.gz")?;
    rest.rsplit('/').next().filter(|s| !s.is_empty())
}

/// Tags as SageMaker tags.
pub fn sagemaker_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// A SageMaker resource's tags, orchestrate's bookkeeping tags included.
pub async fn read_tags(clients: &Clients, kind: Kind, name: &str, arn: &str) -> Result<Tags, AwsError> {
    let mut tags = Tags::default();
    let mut token: Option<String> = None;
    loop {
        let page = clients
            .sagemaker
            .list_tags()
            .resource_arn(arn)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| AwsError::sdk("read the tags of", kind, name, e))?;
        tags.0.extend(page.tags().iter().map(|t| {
            (
                t.key().unwrap_or_default().to_string(),
                t.value().unwrap_or_default().to_string(),
            )
        }));
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(tags),
        }
    }
}

/// Makes a SageMaker resource's tags `wanted` (orchestrate's bookkeeping tags, such as
/// [`PREVIOUS_CONFIG_TAG`], are left alone). Returns the tags it found before, bookkeeping included.
pub async fn put_tags(
    clients: &Clients,
    kind: Kind,
    name: &str,
    arn: &str,
    wanted: &Tags,
) -> Result<Tags, AwsError> {
    let have = read_tags(clients, kind, name, arn).await?;
    let removed: Vec<String> = have
        .removed_from(wanted)
        .into_iter()
        .filter(|k| !is_bookkeeping(k))
        .collect();
    if !removed.is_empty() {
        clients
            .sagemaker
            .delete_tags()
            .resource_arn(arn)
            .set_tag_keys(Some(removed))
            .send()
            .await
            .map_err(|e| AwsError::sdk("untag", kind, name, e))?;
    }
    clients
        .sagemaker
        .add_tags()
        .resource_arn(arn)
        .set_tags(Some(sagemaker_tags(wanted)))
        .send()
        .await
        .map_err(|e| AwsError::sdk("tag", kind, name, e))?;
    Ok(have)
}

/// The deployment's tags among a resource's tags: all but orchestrate's bookkeeping tags.
pub fn user_tags(tags: &Tags) -> Tags {
    tags.iter().filter(|(k, _)| !is_bookkeeping(k)).collect()
}

/// Whether a create failed because the resource exists already: SageMaker answers a training job's
/// name in use with `ResourceInUse`, and a model, endpoint config or endpoint of an existing name
/// with a `ValidationException` "Cannot create already existing …". Moments after observing it
/// absent, under the deployment's lock, that is the run's own create whose answer was lost (the
/// SDK retried a call that had succeeded): the create is done.
pub fn already_exists(error: &AwsError) -> bool {
    error.has_code("ResourceInUse")
        || (error.has_code("ValidationException")
            && error
                .source
                .to_string()
                .contains("Cannot create already existing"))
}

/// Why a training job or a model cannot be created yet, while IAM propagates its role.
pub const ROLE_PROPAGATING: &str = "SageMaker cannot assume the execution role yet (IAM is propagating it)";

/// What `apply` answers when SageMaker refused a call that passes the execution role with
/// `error`: `NotYet` when SageMaker cannot assume the role yet (IAM takes seconds to propagate a new
/// role, and `GetRole` succeeding says nothing about that), for the executor to apply again for
/// at most [`PROPAGATION_TIMEOUT`]; any other error as it is.
pub fn not_yet_while_role_propagates(error: AwsError) -> Result<Applied, AwsError> {
    if !is_propagation_error(&error.source.to_string()) {
        return Err(error);
    }
    tracing::info!(error = %error.source, "the execution role is not assumable yet");
    Ok(Applied::NotYet {
        reason: ROLE_PROPAGATING.to_string(),
        retry_for: PROPAGATION_TIMEOUT,
    })
}

/// The SageMaker resources discovered by listing names with the deployment's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// Running training job attempts only: ended ones cannot be deleted and cost nothing.
    RunningTrainingJobs,
    Models,
    EndpointConfigs,
}

impl Listing {
    pub fn kind(self) -> Kind {
        match self {
            Listing::RunningTrainingJobs => Kind::TrainingJob,
            Listing::Models => Kind::Model,
            Listing::EndpointConfigs => Kind::EndpointConfig,
        }
    }
}

/// (name, ARN) of every resource of `listing` whose name contains `prefix` (`deployment` names the
/// failures).
async fn list_containing(
    clients: &Clients,
    listing: Listing,
    prefix: &str,
    deployment: &str,
) -> Result<Vec<(String, String)>, AwsError> {
    let sm = &clients.sagemaker;
    let kind = listing.kind();
    let pair = |name: Option<&str>, arn: Option<&str>| Some((name?.to_string(), arn?.to_string()));
    let mut listed = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let next = match listing {
            Listing::RunningTrainingJobs => {
                let page = sm
                    .list_training_jobs()
                    .name_contains(prefix)
                    .status_equals(TrainingJobStatus::InProgress)
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| AwsError::sdk("list", kind, deployment, e))?;
                listed.extend(
                    page.training_job_summaries()
                        .iter()
                        .filter_map(|j| pair(j.training_job_name(), j.training_job_arn())),
                );
                page.next_token().map(str::to_string)
            }
            Listing::Models => {
                let page = sm
                    .list_models()
                    .name_contains(prefix)
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| AwsError::sdk("list", kind, deployment, e))?;
                listed.extend(
                    page.models()
                        .iter()
                        .filter_map(|m| pair(m.model_name(), m.model_arn())),
                );
                page.next_token().map(str::to_string)
            }
            Listing::EndpointConfigs => {
                let page = sm
                    .list_endpoint_configs()
                    .name_contains(prefix)
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| AwsError::sdk("list", kind, deployment, e))?;
                listed.extend(
                    page.endpoint_configs()
                        .iter()
                        .filter_map(|c| pair(c.endpoint_config_name(), c.endpoint_config_arn())),
                );
                page.next_token().map(str::to_string)
            }
        };
        match next {
            Some(next) if !next.is_empty() => token = Some(next),
            _ => return Ok(listed),
        }
    }
}

/// Whether a SageMaker resource's tags say it belongs to the target's deployment.
pub async fn is_ours(target: &AwsTarget, kind: Kind, name: &str, arn: &str) -> Result<bool, AwsError> {
    let tags = read_tags(&target.clients, kind, name, arn).await?;
    Ok(target.is_ours(tags.iter()))
}

/// The names of the resources of `listing` named `<deployment>-…` and tagged as the deployment's.
pub async fn owned_names(target: &AwsTarget, listing: Listing) -> Result<Vec<String>, AwsError> {
    let prefix = target.name_prefix();
    let deployment = target.spec.name.as_str();
    let mut owned = Vec::new();
    for (name, arn) in list_containing(&target.clients, listing, &prefix, deployment).await? {
        if name.starts_with(&prefix) && is_ours(target, listing.kind(), &name, &arn).await? {
            owned.push(name);
        }
    }
    Ok(owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(repository: &str) -> ImageRef {
        ImageRef {
            repository: repository.to_string(),
            digest: Digest::sha256(b"manifest"),
        }
    }

    #[test]
    fn image_uris_and_refs_round_trip() {
        let image = image("iot-model-image");
        let uri = image_uri("123456789012", "eu-west-1", &image);
        assert_eq!(
            uri,
            format!(
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com/iot-model-image@{}",
                image.digest
            )
        );
        assert_eq!(image_ref(&uri), Some(image.clone()));
        let digest = &image.digest;
        assert_eq!(
            image_ref(&format!("127.0.0.1:5000/iot-model-image@{digest}")),
            Some(image.clone())
        );
        assert_eq!(image_ref(&format!("iot-model-image@{digest}")), Some(image));
        assert_eq!(image_ref("repo@sha256:ab"), None, "not a whole digest");
        assert_eq!(image_ref("1.dkr.ecr.us-east-1.amazonaws.com/repo:latest"), None);
        assert!(image_uri("1", "cn-north-1", &self::image("r")).contains(".amazonaws.com.cn/r@sha256:"));
    }

    #[test]
    fn instances_are_read_from_count_and_type() {
        let read = instances(Some(2), Some("ml.m5.large")).unwrap();
        assert_eq!(read.to_string(), "2 x ml.m5.large");
        assert!(instances(None, Some("ml.m5.large")).is_err());
        assert!(instances(Some(-1), Some("ml.m5.large")).is_err());
        assert!(instances(Some(1), None).is_err());
        assert!(instances(Some(1), Some("m5.large")).is_err());
        assert_eq!(sdk_count(3), 3);
        assert_eq!(sdk_count(u32::MAX), i32::MAX);
    }

    #[test]
    fn bookkeeping_tags_are_not_the_deployments() {
        let tags: Tags = [
            ("orchestrate:deployment", "iot"),
            (PREVIOUS_CONFIG_TAG, "iot-0123456789ab"),
            ("orchestrate:data:train", "0a1b"),
            ("team", "ml"),
        ]
        .into_iter()
        .collect();
        let user: Tags = [("orchestrate:deployment", "iot"), ("team", "ml")]
            .into_iter()
            .collect();
        assert_eq!(user_tags(&tags), user);
        assert!(!is_bookkeeping("orchestrate:deployment"));
    }

    #[test]
    fn artifacts_name_their_attempt() {
        let url = model_artifact("b", "iot-0123456789ab-2");
        assert_eq!(
            url,
            "s3://b/training-output/iot-0123456789ab-2/output/model.tar.gz"
        );
        assert_eq!(attempt_of_artifact(&url), Some("iot-0123456789ab-2"));
        assert_eq!(attempt_of_artifact("s3://b/other.tar.gz"), None);
        assert_eq!(
            role_arn("1", "us-gov-west-1", "r"),
            "arn:aws-us-gov:iam::1:role/r"
        );
    }

    #[test]
    fn a_role_being_propagated_is_not_yet_and_other_errors_stay_errors() {
        let propagating = AwsError::other(
            "create",
            Kind::TrainingJob,
            "j",
            "ValidationException: Could not assume role arn:aws:iam::1:role/r",
        );
        assert_eq!(
            not_yet_while_role_propagates(propagating).unwrap(),
            Applied::NotYet {
                reason: ROLE_PROPAGATING.to_string(),
                retry_for: PROPAGATION_TIMEOUT,
            }
        );

        let refused = AwsError::other("create", Kind::TrainingJob, "j", "ResourceLimitExceeded");
        let error = not_yet_while_role_propagates(refused).unwrap_err();
        assert_eq!(error.source.to_string(), "ResourceLimitExceeded");
        assert_eq!(error.name, "j");
    }
}
