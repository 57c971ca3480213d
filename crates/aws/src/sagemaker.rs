//! What the SageMaker resource modules share: how an image, a role and a training output are named
//! in SageMaker's calls, tags on SageMaker ARNs, and the retry while IAM propagates a new role.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_sagemaker::types::Tag;
use engine::Kind;

use crate::clients::{Clients, dns_suffix, partition};
use crate::errors::AwsError;
use crate::iam_role::{PROPAGATION_TIMEOUT, is_propagation_error};
use crate::tags;

/// Training outputs go under this prefix of the data bucket: `<prefix><job>/output/model.tar.gz`.
pub const OUTPUT_PREFIX: &str = "training-output/";

/// The tag on the endpoint naming the config it ran before its last update (for `rollback`); not
/// part of the endpoint's `tags` field.
pub const PREVIOUS_CONFIG_TAG: &str = "orchestrate:previous-endpoint-config";

/// The one production variant every endpoint config has.
pub const VARIANT: &str = "AllTraffic";

/// The image's URI for SageMaker: `<account>.dkr.ecr.<region>.<suffix>/<repository>@<digest>` from
/// the engine's `<repository>@<digest>`.
pub fn image_uri(account: &str, region: &str, image_ref: &str) -> String {
    format!("{account}.dkr.ecr.{region}.{}/{image_ref}", dns_suffix(region))
}

/// The engine's `<repository>@<digest>` back from an image URI.
pub fn image_ref(uri: &str) -> String {
    match uri.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') => rest.to_string(),
        _ => uri.to_string(),
    }
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

/// The engine's `tags` field as SageMaker tags.
pub fn sagemaker_tags(field: &str) -> Vec<Tag> {
    tags::parse(field)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// A SageMaker resource's tags.
pub async fn read_tags(
    clients: &Clients,
    kind: Kind,
    name: &str,
    arn: &str,
) -> Result<BTreeMap<String, String>, AwsError> {
    let mut tags = BTreeMap::new();
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
        tags.extend(page.tags().iter().map(|t| {
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

/// Makes a SageMaker resource's tags the engine's `tags` field (orchestrate's own bookkeeping tags,
/// such as [`PREVIOUS_CONFIG_TAG`], are left alone).
pub async fn put_tags(
    clients: &Clients,
    kind: Kind,
    name: &str,
    arn: &str,
    field: &str,
) -> Result<(), AwsError> {
    let wanted = tags::parse(field);
    let have = read_tags(clients, kind, name, arn).await?;
    let removed: Vec<String> = tags::removed(&have, &wanted)
        .into_iter()
        .filter(|k| k != PREVIOUS_CONFIG_TAG)
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
        .set_tags(Some(sagemaker_tags(field)))
        .send()
        .await
        .map_err(|e| AwsError::sdk("tag", kind, name, e))?;
    Ok(())
}

/// The `tags` field of observed tags, without orchestrate's bookkeeping tags.
pub fn tags_field(tags: &BTreeMap<String, String>) -> String {
    let mut tags = tags.clone();
    tags.remove(PREVIOUS_CONFIG_TAG);
    engine::desired::tags_field(&tags)
}

/// Runs a SageMaker call that passes the execution role, retrying while SageMaker cannot assume
/// the role yet: IAM takes seconds to propagate a new role, and `GetRole` succeeding says nothing
/// about that. Any other error returns at once.
pub async fn retry_while_role_propagates<T, F, Fut>(mut call: F) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_secs(2);
    loop {
        match call().await {
            Err(e)
                if is_propagation_error(&e.source.to_string()) && started.elapsed() < PROPAGATION_TIMEOUT =>
            {
                tracing::info!(error = %e.source, "the execution role is not assumable yet; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(15));
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_uris_and_refs_round_trip() {
        let uri = image_uri("123456789012", "eu-west-1", "iot-model-image@sha256:ab");
        assert_eq!(
            uri,
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/iot-model-image@sha256:ab"
        );
        assert_eq!(image_ref(&uri), "iot-model-image@sha256:ab");
        assert_eq!(image_ref("127.0.0.1:5000/repo@sha256:ab"), "repo@sha256:ab");
        assert_eq!(image_ref("repo@sha256:ab"), "repo@sha256:ab");
        assert!(image_uri("1", "cn-north-1", "r@d").ends_with(".amazonaws.com.cn/r@d"));
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

    #[tokio::test]
    async fn propagation_errors_are_retried_and_others_are_not() {
        let mut calls = 0;
        let result = retry_while_role_propagates(|| {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(AwsError::other(
                        "create",
                        Kind::TrainingJob,
                        "j",
                        "ValidationException: Could not assume role arn:aws:iam::1:role/r",
                    ))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), 3);

        let mut calls = 0;
        let result: Result<(), AwsError> = retry_while_role_propagates(|| {
            calls += 1;
            async {
                Err(AwsError::other(
                    "create",
                    Kind::TrainingJob,
                    "j",
                    "ResourceLimitExceeded",
                ))
            }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, 1);
    }
}
