//! SageMaker models: `<name>-<hash12>`, immutable: the image by digest, the model artifact of the
//! training job's completed attempt (the training job's outputs), the execution role, network
//! isolation (on, except for serverless endpoints, which do not support it), the container
//! environment of an async model (`model-image serve`'s payload limit and body timeout) and the
//! deployment's tags. A changed input is a new name, so `apply` only ever creates
//! (or re-tags); while SageMaker cannot assume the execution role IAM is still propagating, it
//! answers `NotYet` for the executor to apply it again.
//!
//! Discovery lists the models named with the deployment's prefix and tagged as the deployment's,
//! each with the image it serves (what a rollback must keep with it).

use aws_sdk_sagemaker::types::ContainerDefinition;
use engine::kind::ModelSettings;
use engine::names::attempt_of;
use engine::resource::{Change, Lifecycle, Outputs, TrainingJobOutputs};
use engine::target::{Applied, Deleted, Found, KindOnTarget, TargetError, Upstream};
use engine::values::{InvocationMode, NetworkIsolation};
use engine::{Kind, Observed};

use crate::clients::Clients;
use crate::errors::{AwsError, OrAbsent};
use crate::sagemaker::{self, Listing, attempt_of_artifact, image_ref, image_uri, role_arn};
use crate::target::AwsTarget;

const KIND: Kind = Kind::Model;

/// Reads the model: its image, the training job (the base name of the attempt whose artifact it
/// serves, judged against the wanted one) and its tags.
pub async fn observe(clients: &Clients, name: &str, desired: &ModelSettings) -> Result<Observed, AwsError> {
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
    let uri = container.and_then(|c| c.image()).unwrap_or_default();
    let image = image_ref(uri).ok_or_else(|| {
        AwsError::other(
            "read",
            KIND,
            name,
            format!("its image `{uri}` is not referenced by digest"),
        )
    })?;
    let training_job = container
        .and_then(|c| c.model_data_url())
        .and_then(attempt_of_artifact)
        .map(|attempt| base_of(attempt, &desired.training_job))
        .unwrap_or_default();
    let tags = match model.model_arn() {
        Some(arn) => sagemaker::user_tags(&sagemaker::read_tags(clients, KIND, name, arn).await?),
        None => Default::default(),
    };
    let network_isolation = if model.enable_network_isolation() == Some(true) {
        NetworkIsolation::Isolated
    } else {
        NetworkIsolation::Open
    };
    let environment = container.and_then(|c| c.environment());
    // A model set up for async carries the async environment; a real-time one none of it.
    let is_async = environment.is_some_and(|env| {
        InvocationMode::Async
            .serve_environment()
            .iter()
            .all(|(key, value)| env.get(*key) == Some(value))
    });
    let invocation = if is_async {
        InvocationMode::Async
    } else {
        InvocationMode::RealTime
    };
    let settings = ModelSettings {
        image,
        training_job,
        network_isolation,
        invocation,
        tags,
    };
    Ok(Observed::present(name, settings, Lifecycle::Ready))
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

/// The container's environment: `None` for a real-time model (the container's defaults are
/// SageMaker's real-time limits).
fn environment(invocation: InvocationMode) -> Option<std::collections::HashMap<String, String>> {
    let variables = invocation.serve_environment();
    (!variables.is_empty()).then(|| {
        variables
            .into_iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect()
    })
}

/// Creates the model from the training job's completed attempt (`job`, its outputs), or re-tags an
/// existing one: `Ready`, or `NotYet` while SageMaker cannot assume the execution role `role`.
pub async fn apply(
    clients: &Clients,
    name: &str,
    settings: &ModelSettings,
    job: Option<&TrainingJobOutputs>,
    account: &str,
    role: &str,
) -> Result<Applied, AwsError> {
    if let Ok(existing) = clients.sagemaker.describe_model().model_name(name).send().await
        && let Some(arn) = existing.model_arn()
    {
        sagemaker::put_tags(clients, KIND, name, arn, &settings.tags).await?;
        return Ok(Applied::Ready(Outputs::None));
    }
    let Some(job) = job else {
        return Err(AwsError::other(
            "create",
            KIND,
            name,
            format!(
                "training job `{}` has no completed attempt to serve",
                settings.training_job
            ),
        ));
    };
    let region = clients.region().to_string();
    let container = ContainerDefinition::builder()
        .image(image_uri(account, &region, &settings.image))
        .model_data_url(&job.model_artifact)
        .set_environment(environment(settings.invocation))
        .build();
    let role = role_arn(account, &region, role);
    let tags = sagemaker::sagemaker_tags(&settings.tags);
    let created = clients
        .sagemaker
        .create_model()
        .model_name(name)
        .primary_container(container)
        .execution_role_arn(&role)
        .enable_network_isolation(settings.network_isolation.enabled())
        .set_tags(Some(tags))
        .send()
        .await;
    if let Err(e) = created {
        let error = AwsError::sdk("create", KIND, name, e);
        if sagemaker::already_exists(&error) {
            tracing::info!(
                model = name,
                "the model exists: this run's own create, its answer lost"
            );
            return Ok(Applied::Ready(Outputs::None));
        }
        return sagemaker::not_yet_while_role_propagates(error);
    }
    tracing::info!(model = name, attempt = job.attempt, "created model");
    Ok(Applied::Ready(Outputs::None))
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

/// The image a model serves, when SageMaker describes it with one referenced by digest.
async fn served_image(clients: &Clients, name: &str) -> Option<engine::values::ImageRef> {
    let model = clients
        .sagemaker
        .describe_model()
        .model_name(name)
        .send()
        .await
        .ok()?;
    model.primary_container()?.image().and_then(image_ref)
}

/// A model on AWS, in SageMaker.
#[derive(Debug)]
pub struct SageMakerModel;

impl KindOnTarget<AwsTarget> for SageMakerModel {
    type Settings = ModelSettings;

    async fn observe(
        target: &AwsTarget,
        name: &str,
        settings: &ModelSettings,
    ) -> Result<Observed, TargetError> {
        Ok(observe(&target.clients, name, settings).await?)
    }

    async fn apply(
        target: &AwsTarget,
        name: &str,
        settings: &ModelSettings,
        _: &Change,
        upstream: Upstream<'_>,
    ) -> Result<Applied, TargetError> {
        let role = target.role_in(upstream.state);
        let job = upstream.training_job();
        Ok(apply(&target.clients, name, settings, job, &target.account, &role).await?)
    }

    async fn delete(target: &AwsTarget, name: &str) -> Result<Deleted, TargetError> {
        delete(&target.clients, name).await?;
        Ok(Deleted::Gone)
    }

    /// The deployment's models, each using the image it serves.
    async fn owned(target: &AwsTarget) -> Result<Vec<Found>, TargetError> {
        let mut found = Vec::new();
        for name in sagemaker::owned_names(target, Listing::Models).await? {
            let model = Found::new(KIND, &name);
            found.push(match served_image(&target.clients, &name).await {
                Some(image) => model.using(Kind::Image, image.digest.as_str()),
                None => model,
            });
        }
        Ok(found)
    }
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
