//! The SageMaker endpoint, named after the deployment: created from the desired endpoint config, or
//! rolled forward with `UpdateEndpoint` (blue/green; `RetainAllVariantProperties` when autoscaling
//! owns the instance count). The config it ran before an update is kept in a tag
//! ([`PREVIOUS_CONFIG_TAG`]) for `orchestrate rollback`.
//!
//! The executor waits for `InService` and then checks that the endpoint really runs the new config:
//! SageMaker rolls a failed update back silently to the old one and reports `InService`.
//!
//! Nothing here waits. Deleting is `Deleted::Pending` while SageMaker still describes the endpoint
//! (the executor calls `delete` again); a failed endpoint, which cannot be updated, is replaced:
//! `apply` issues its deletion and answers `Applied::NotYet` until it is gone, then creates it.
//! The endpoint is the deployment's when it carries the deployment's tag ([`ours`]); so is its
//! autoscaling.

use aws_sdk_sagemaker::types::{EndpointStatus, Tag};
use engine::kind::EndpointSettings;
use engine::resource::{Change, EndpointOutputs, Lifecycle, Outputs};
use engine::target::{Applied, DELETE_TIMEOUT, Deleted, Found, KindOnTarget, TargetError, Upstream};
use engine::values::Tags;
use engine::{Kind, Observed};

use crate::clients::Clients;
use crate::errors::{AwsError, OrAbsent};
use crate::sagemaker::{self, PREVIOUS_CONFIG_TAG};
use crate::target::AwsTarget;

const KIND: Kind = Kind::Endpoint;
/// Why `apply` cannot create the endpoint yet while the failed one it replaces is being deleted.
pub const DELETING_FAILED: &str = "deleting the failed endpoint";

/// What SageMaker says of an endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointState {
    pub status: EndpointStatus,
    pub config: String,
    pub failure: Option<String>,
    pub arn: String,
}

/// Where a status leaves an endpoint.
pub fn lifecycle(status: &EndpointStatus, failure: Option<&str>) -> Lifecycle {
    match status {
        EndpointStatus::InService => Lifecycle::Ready,
        EndpointStatus::Failed => Lifecycle::Failed(failure.unwrap_or("failed without a reason").to_string()),
        EndpointStatus::OutOfService => Lifecycle::Failed(
            failure
                .map(|f| format!("out of service: {f}"))
                .unwrap_or_else(|| "out of service".to_string()),
        ),
        other => Lifecycle::InProgress(other.as_str().to_string()),
    }
}

pub async fn describe(clients: &Clients, name: &str) -> Result<Option<EndpointState>, AwsError> {
    let described = clients
        .sagemaker
        .describe_endpoint()
        .endpoint_name(name)
        .send()
        .await
        .map_err(|e| AwsError::sdk("describe", KIND, name, e))
        .or_absent()?;
    Ok(described.map(|out| EndpointState {
        status: out.endpoint_status().cloned().unwrap_or(EndpointStatus::Creating),
        config: out.endpoint_config_name().unwrap_or_default().to_string(),
        failure: out.failure_reason().map(str::to_string),
        arn: out.endpoint_arn().unwrap_or_default().to_string(),
    }))
}

/// What the endpoint's tags record of its history: the config it ran before its last update.
pub fn outputs(tags: &Tags) -> Outputs {
    Outputs::Endpoint(EndpointOutputs {
        previous_config: tags
            .get(PREVIOUS_CONFIG_TAG)
            .filter(|c| !c.is_empty())
            .map(str::to_string),
    })
}

/// Reads the endpoint: its config and tags, and as outputs the previous config (for `rollback`).
/// In service on another config than `desired`'s with a failure reason is an update SageMaker
/// rolled back: reported as failed.
pub async fn observe(
    clients: &Clients,
    name: &str,
    desired: &EndpointSettings,
) -> Result<Observed, AwsError> {
    let Some(endpoint) = describe(clients, name).await? else {
        return Ok(Observed::Absent);
    };
    let Some(tags) = tags_unless_gone(clients, name, &endpoint.arn).await? else {
        return Ok(Observed::Absent);
    };
    let mut lifecycle = lifecycle(&endpoint.status, endpoint.failure.as_deref());
    if lifecycle == Lifecycle::Ready
        && let Some(failure) = &endpoint.failure
        && endpoint.config != desired.endpoint_config
    {
        // In service, on another config, with a failure: an update that SageMaker rolled back.
        lifecycle = Lifecycle::Failed(format!("the last update was rolled back: {failure}"));
    }
    let settings = EndpointSettings {
        endpoint_config: endpoint.config,
        tags: sagemaker::user_tags(&tags),
    };
    Ok(Observed::present(name, settings, lifecycle).with_outputs(outputs(&tags)))
}

/// Creates the endpoint, rolls it to the desired config, or re-tags it. Only a re-tag is done at
/// once (`Ready`, with the endpoint's outputs); a creation or an update is `Pending` until
/// SageMaker reports `InService`. A failed endpoint cannot be updated: its deletion is issued and
/// `apply` is `NotYet` until it is gone, then it is created again.
pub async fn apply(
    clients: &Clients,
    name: &str,
    settings: &EndpointSettings,
    autoscaling: bool,
) -> Result<Applied, AwsError> {
    let config = settings.endpoint_config.as_str();
    let tags = &settings.tags;
    let mut existing = describe(clients, name).await?;
    if let Some(endpoint) = existing
        .as_ref()
        .filter(|e| matches!(e.status, EndpointStatus::Failed | EndpointStatus::Deleting))
    {
        // Failed: replace it. Deleting (the replacement under way): wait for it to be gone.
        if endpoint.status == EndpointStatus::Failed {
            tracing::warn!(endpoint = name, "replacing a failed endpoint");
        }
        if let Deleted::Pending(_) = delete(clients, name).await? {
            return Ok(Applied::NotYet {
                reason: DELETING_FAILED.to_string(),
                retry_for: DELETE_TIMEOUT,
            });
        }
        existing = None;
    }
    let Some(existing) = existing else {
        let created = clients
            .sagemaker
            .create_endpoint()
            .endpoint_name(name)
            .endpoint_config_name(config)
            .set_tags(Some(sagemaker::sagemaker_tags(tags)))
            .send()
            .await
            .map_err(|e| AwsError::sdk("create", KIND, name, e));
        return match created {
            Ok(_) => Ok(Applied::Pending),
            // The wait that follows observes it, its config and tags included.
            Err(error) if sagemaker::already_exists(&error) => {
                tracing::info!(
                    endpoint = name,
                    "the endpoint exists: this run's own create, its answer lost"
                );
                Ok(Applied::Pending)
            }
            Err(error) => Err(error),
        };
    };
    let had = sagemaker::put_tags(clients, KIND, name, &existing.arn, tags).await?;
    if existing.config == config {
        return Ok(Applied::Ready(outputs(&had)));
    }
    let previous = Tag::builder()
        .key(PREVIOUS_CONFIG_TAG)
        .value(&existing.config)
        .build();
    clients
        .sagemaker
        .add_tags()
        .resource_arn(&existing.arn)
        .tags(previous)
        .send()
        .await
        .map_err(|e| AwsError::sdk("tag", KIND, name, e))?;
    clients
        .sagemaker
        .update_endpoint()
        .endpoint_name(name)
        .endpoint_config_name(config)
        .retain_all_variant_properties(autoscaling)
        .send()
        .await
        .map_err(|e| AwsError::sdk("update", KIND, name, e))?;
    tracing::info!(
        endpoint = name,
        from = existing.config,
        to = config,
        "updating endpoint"
    );
    Ok(Applied::Pending)
}

/// Deletes the endpoint without waiting: issues `DeleteEndpoint` unless SageMaker is deleting it
/// already, then `Pending` (with its status) while SageMaker still describes it, `Gone` once it
/// does not.
pub async fn delete(clients: &Clients, name: &str) -> Result<Deleted, AwsError> {
    let Some(mut endpoint) = describe(clients, name).await? else {
        return Ok(Deleted::Gone);
    };
    if endpoint.status != EndpointStatus::Deleting {
        request_deletion(clients, name).await?;
        match describe(clients, name).await? {
            Some(now) => endpoint = now,
            None => return Ok(Deleted::Gone),
        }
    }
    Ok(Deleted::Pending(endpoint.status.as_str().to_string()))
}

/// `DeleteEndpoint`; an endpoint gone or being deleted in between is no failure.
async fn request_deletion(clients: &Clients, name: &str) -> Result<(), AwsError> {
    let Err(e) = clients
        .sagemaker
        .delete_endpoint()
        .endpoint_name(name)
        .send()
        .await
    else {
        tracing::info!(endpoint = name, "deleting endpoint");
        return Ok(());
    };
    let e = AwsError::sdk("delete", KIND, name, e);
    if e.is_not_found()
        || describe(clients, name)
            .await?
            .is_none_or(|s| s.status == EndpointStatus::Deleting)
    {
        return Ok(());
    }
    Err(e)
}

/// The deployment's endpoint (named after it), when it exists and is tagged as the deployment's.
pub async fn ours(target: &AwsTarget) -> Result<Option<EndpointState>, AwsError> {
    let name = target.spec.name.as_str();
    let Some(endpoint) = describe(&target.clients, name).await? else {
        return Ok(None);
    };
    let Some(tags) = tags_unless_gone(&target.clients, name, &endpoint.arn).await? else {
        return Ok(None);
    };
    Ok(target.is_ours(tags.iter()).then_some(endpoint))
}

/// The endpoint's tags; `None` when reading them failed because the endpoint is gone by now (a
/// deletion finishing between the describe and the tag read: after a `down` interrupted while the
/// endpoint was `Deleting`, the next run meets exactly that).
async fn tags_unless_gone(clients: &Clients, name: &str, arn: &str) -> Result<Option<Tags>, AwsError> {
    match sagemaker::read_tags(clients, KIND, name, arn).await {
        Ok(tags) => Ok(Some(tags)),
        Err(error) => match describe(clients, name).await? {
            None => Ok(None),
            Some(_) => Err(error),
        },
    }
}

/// The endpoint on AWS, in SageMaker.
#[derive(Debug)]
pub struct SageMakerEndpoint;

impl KindOnTarget<AwsTarget> for SageMakerEndpoint {
    type Settings = EndpointSettings;

    async fn observe(
        target: &AwsTarget,
        name: &str,
        settings: &EndpointSettings,
    ) -> Result<Observed, TargetError> {
        Ok(observe(&target.clients, name, settings).await?)
    }

    /// With `RetainAllVariantProperties` on an update when the state has autoscaling (it owns the
    /// instance count).
    async fn apply(
        target: &AwsTarget,
        name: &str,
        settings: &EndpointSettings,
        _: &Change,
        upstream: Upstream<'_>,
    ) -> Result<Applied, TargetError> {
        let autoscaling = upstream.state.get(Kind::Autoscaling).is_some();
        Ok(apply(&target.clients, name, settings, autoscaling).await?)
    }

    async fn delete(target: &AwsTarget, name: &str) -> Result<Deleted, TargetError> {
        Ok(delete(&target.clients, name).await?)
    }

    /// The deployment's endpoint, using the config it runs.
    async fn owned(target: &AwsTarget) -> Result<Vec<Found>, TargetError> {
        let endpoint = ours(target).await?;
        Ok(endpoint
            .map(|endpoint| {
                Found::new(KIND, target.spec.name.as_str()).using(Kind::EndpointConfig, endpoint.config)
            })
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_lifecycles() {
        assert_eq!(lifecycle(&EndpointStatus::InService, None), Lifecycle::Ready);
        assert_eq!(
            lifecycle(&EndpointStatus::Updating, None),
            Lifecycle::InProgress("Updating".into())
        );
        assert_eq!(
            lifecycle(&EndpointStatus::Failed, Some("image not found")),
            Lifecycle::Failed("image not found".into())
        );
        assert!(matches!(
            lifecycle(&EndpointStatus::OutOfService, None),
            Lifecycle::Failed(_)
        ));
    }

    #[test]
    fn the_previous_config_is_read_from_its_tag() {
        let tags: Tags = [
            ("orchestrate:deployment", "iot"),
            (PREVIOUS_CONFIG_TAG, "iot-0123456789ab"),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            outputs(&tags),
            Outputs::Endpoint(EndpointOutputs {
                previous_config: Some("iot-0123456789ab".into())
            })
        );
        let never_updated: Tags = [("orchestrate:deployment", "iot")].into_iter().collect();
        assert_eq!(
            outputs(&never_updated),
            Outputs::Endpoint(EndpointOutputs::default())
        );
        let empty: Tags = [(PREVIOUS_CONFIG_TAG, "")].into_iter().collect();
        assert_eq!(outputs(&empty), Outputs::Endpoint(EndpointOutputs::default()));
    }
}
