//! SageMaker models: `<name>-<hash12>`, immutable: the image by digest, the model artifact of the
//! training job's completed attempt, the execution role, network isolation and the deployment's
//! tags. A changed input is a new name, so `apply` only ever creates (or re-tags).

use engine::resource::Lifecycle;
use engine::{Desired, Kind, Observed};

use aws_sdk_sagemaker::types::ContainerDefinition;
use engine::names::attempt_of;

use crate::clients::Clients;
use crate::errors::{AwsError, OrAbsent};
use crate::sagemaker::{self, attempt_of_artifact, image_ref, image_uri, role_arn};
use crate::sagemaker_training_job;

const KIND: Kind = Kind::Model;

/// Reads the model: `image`, `training_job` (the base name of the attempt whose artifact it
/// serves), `tags`.
pub async fn observe(clients: &Clients, desired: &Desired) -> Result<Observed, AwsError> {
    let name = desired.name.as_str();
    let Some(model) = clients
        .sagemaker
        .describe_model()
        .model_name(name)
        .send()
        .await
        .map_err(|e| AwsError::sdk("describe", KIND, name, e))
        .or_absent()?
    else {
        return Ok(Observed::Absent);
    };
    let container = model.primary_container();
    let image = container
        .and_then(|c| c.image())
        .map(image_ref)
        .unwrap_or_default();
    let job = container
        .and_then(|c| c.model_data_url())
        .and_then(attempt_of_artifact)
        .map(|attempt| base_of(attempt, desired.get("training_job").unwrap_or_default()))
        .unwrap_or_default();
    let tags = match model.model_arn() {
        Some(arn) => sagemaker::tags_field(&sagemaker::read_tags(clients, KIND, name, arn).await?),
        None => String::new(),
    };
    Ok(Observed::present(name, Lifecycle::Ready)
        .with_field("image", image)
        .with_field("training_job", job)
        .with_field("tags", tags))
}

/// The job base name of an attempt: the desired base when the attempt is one of its attempts,
/// otherwise the attempt name itself (which then differs from what is wanted).
fn base_of(attempt: &str, desired_base: &str) -> String {
    if attempt_of(desired_base, attempt).is_some() {
        desired_base.to_string()
    } else {
        attempt.to_string()
    }
}

/// Creates the model from the training job's completed attempt, or re-tags an existing one.
pub async fn apply(
    clients: &Clients,
    desired: &Desired,
    account: &str,
    bucket: &str,
    role: &str,
) -> Result<(), AwsError> {
    let name = desired.name.as_str();
    let tags = desired.get("tags").unwrap_or_default();
    if let Ok(existing) = clients.sagemaker.describe_model().model_name(name).send().await
        && let Some(arn) = existing.model_arn()
    {
        return sagemaker::put_tags(clients, KIND, name, arn, tags).await;
    }
    let base = desired.get("training_job").unwrap_or_default();
    let attempt = match sagemaker_training_job::latest_attempt(clients, base).await? {
        Some((_, attempt)) => attempt,
        None => {
            return Err(AwsError::other(
                "create",
                KIND,
                name,
                format!("training job `{base}` has no attempt"),
            ));
        }
    };
    let job = sagemaker_training_job::describe(clients, &attempt).await?;
    let artifact = match job {
        Some(sagemaker_training_job::JobState {
            lifecycle: Lifecycle::Ready,
            model_artifact,
            ..
        }) => model_artifact.unwrap_or_else(|| sagemaker::model_artifact(bucket, &attempt)),
        _ => {
            return Err(AwsError::other(
                "create",
                KIND,
                name,
                format!("training job `{attempt}` has not completed"),
            ));
        }
    };
    let region = clients.region().to_string();
    let container = ContainerDefinition::builder()
        .image(image_uri(
            account,
            &region,
            desired.get("image").unwrap_or_default(),
        ))
        .model_data_url(artifact)
        .build();
    let role = role_arn(account, &region, role);
    let tags = sagemaker::sagemaker_tags(tags);
    sagemaker::retry_while_role_propagates(|| async {
        clients
            .sagemaker
            .create_model()
            .model_name(name)
            .primary_container(container.clone())
            .execution_role_arn(&role)
            .enable_network_isolation(true)
            .set_tags(Some(tags.clone()))
            .send()
            .await
            .map_err(|e| AwsError::sdk("create", KIND, name, e))
    })
    .await?;
    Ok(())
}

pub async fn delete(clients: &Clients, name: &str) -> Result<(), AwsError> {
    clients
        .sagemaker
        .delete_model()
        .model_name(name)
        .send()
        .await
        .map_err(|e| AwsError::sdk("delete", KIND, name, e))
        .or_absent()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_reads_as_its_base() {
        assert_eq!(
            base_of("iot-0123456789ab-2", "iot-0123456789ab"),
            "iot-0123456789ab"
        );
        assert_eq!(
            base_of("iot-ffffffffffff-1", "iot-0123456789ab"),
            "iot-ffffffffffff-1"
        );
    }
}
