//! The SageMaker endpoint, named after the deployment: created from the desired endpoint config, or
//! rolled forward with `UpdateEndpoint` (blue/green; `RetainAllVariantProperties` when autoscaling
//! owns the instance count). The config it ran before an update is kept in a tag
//! ([`PREVIOUS_CONFIG_TAG`]) for `orchestrate rollback`.
//!
//! The executor waits for `InService` and then checks that the endpoint really runs the new config:
//! SageMaker rolls a failed update back silently to the old one and reports `InService`.

use std::time::Duration;

use aws_sdk_sagemaker::types::{EndpointStatus, Tag};
use engine::kind::EndpointSettings;
use engine::resource::{EndpointOutputs, Lifecycle, Outputs};
use engine::target::Applied;
use engine::values::Tags;
use engine::{Kind, Observed};

use crate::clients::Clients;
use crate::errors::{AwsError, OrAbsent};
use crate::sagemaker::{self, PREVIOUS_CONFIG_TAG};

const KIND: Kind = Kind::Endpoint;
/// How long `delete` waits for SageMaker to remove the endpoint.
pub const DELETE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

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
    let tags = sagemaker::read_tags(clients, KIND, name, &endpoint.arn).await?;
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
/// SageMaker reports `InService`.
pub async fn apply(
    clients: &Clients,
    name: &str,
    settings: &EndpointSettings,
    autoscaling: bool,
    poll: Duration,
) -> Result<Applied, AwsError> {
    let config = settings.endpoint_config.as_str();
    let tags = &settings.tags;
    let mut existing = describe(clients, name).await?;
    if existing
        .as_ref()
        .is_some_and(|e| e.status == EndpointStatus::Failed)
    {
        // A failed endpoint cannot be updated: replace it.
        tracing::warn!(endpoint = name, "replacing a failed endpoint");
        delete(clients, name, poll).await?;
        existing = None;
    }
    let Some(existing) = existing else {
        clients
            .sagemaker
            .create_endpoint()
            .endpoint_name(name)
            .endpoint_config_name(config)
            .set_tags(Some(sagemaker::sagemaker_tags(tags)))
            .send()
            .await
            .map_err(|e| AwsError::sdk("create", KIND, name, e))?;
        return Ok(Applied::Pending);
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

/// Deletes the endpoint and waits until SageMaker has removed it.
pub async fn delete(clients: &Clients, name: &str, poll: Duration) -> Result<(), AwsError> {
    match clients
        .sagemaker
        .delete_endpoint()
        .endpoint_name(name)
        .send()
        .await
    {
        Ok(_) => {}
        Err(e) => {
            let e = AwsError::sdk("delete", KIND, name, e);
            if e.is_not_found() {
                return Ok(());
            }
            // Already being deleted: wait for it like for our own deletion.
            if describe(clients, name)
                .await?
                .is_none_or(|s| s.status != EndpointStatus::Deleting)
            {
                return Err(e);
            }
        }
    }
    let started = tokio::time::Instant::now();
    while let Some(state) = describe(clients, name).await? {
        if started.elapsed() > DELETE_TIMEOUT {
            return Err(AwsError::other(
                "delete",
                KIND,
                name,
                format!("still {} after {:?}", state.status.as_str(), DELETE_TIMEOUT),
            ));
        }
        tokio::time::sleep(poll).await;
    }
    Ok(())
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
