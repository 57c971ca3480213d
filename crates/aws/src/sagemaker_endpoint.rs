//! The SageMaker endpoint, named after the deployment: created from the desired endpoint config, or
//! rolled forward with `UpdateEndpoint` (blue/green; `RetainAllVariantProperties` when autoscaling
//! owns the instance count). The config it ran before an update is kept in a tag
//! ([`PREVIOUS_CONFIG_TAG`]) for `orchestrate rollback`.
//!
//! An update follows `endpoint.rollout` ([`deployment_config`]): SageMaker's blue/green traffic
//! shifting (all at once, canary or linear, a bake per step) with automatic rollback when an alarm
//! named in it goes off. While it runs, observation describes the step from DescribeEndpoint's
//! `PendingDeploymentSummary` (traffic share, bake left); when SageMaker rolled it back, the failure
//! names the alarms in ALARM and CloudWatch's reason.
//!
//! The executor waits for `InService` and then checks that the endpoint really runs the new config:
//! SageMaker rolls a failed update back silently to the old one and reports `InService`.
//!
//! Nothing here waits. Deleting is `Deleted::Pending` while SageMaker still describes the endpoint
//! (the executor calls `delete` again); a failed endpoint, which cannot be updated, is replaced:
//! `apply` issues its deletion and answers `Applied::NotYet` until it is gone, then creates it. So
//! is one hosted otherwise than wanted: SageMaker cannot update an endpoint from instances to
//! serverless or back. An endpoint being deleted is observed as absent, so a replacement
//! interrupted half way is created by the next `up`.
//! The endpoint is the deployment's when it carries the deployment's tag ([`ours`]); so is its
//! autoscaling.

use std::time::{Duration, SystemTime};

use aws_sdk_sagemaker::operation::describe_endpoint::DescribeEndpointOutput;
use aws_sdk_sagemaker::types::{
    Alarm, AutoRollbackConfig, BlueGreenUpdatePolicy, CapacitySize, CapacitySizeType, DeploymentConfig,
    EndpointStatus, Tag, TrafficRoutingConfig, TrafficRoutingConfigType, VariantStatus,
};
use engine::kind::EndpointSettings;
use engine::resource::{Change, EndpointOutputs, Lifecycle, Outputs};
use engine::target::{Applied, DELETE_TIMEOUT, Deleted, Found, KindOnTarget, TargetError, Upstream};
use engine::values::{Hosting, Tags};
use engine::{Kind, Observed};

use crate::clients::Clients;
use crate::cloudwatch_alarm;
use crate::errors::{AwsError, OrAbsent};
use crate::sagemaker::{self, PREVIOUS_CONFIG_TAG};
use crate::target::AwsTarget;

const KIND: Kind = Kind::Endpoint;
/// Why `apply` cannot create the endpoint yet while the failed one it replaces is being deleted.
pub const DELETING_FAILED: &str = "deleting the failed endpoint";
/// Why `apply` cannot create the endpoint yet while the one it replaces is still being deleted
/// (the calls after the one that asked for the deletion).
pub const DELETING_REPLACED: &str = "deleting the endpoint it replaces";

/// What SageMaker says of an endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointState {
    pub status: EndpointStatus,
    pub config: String,
    pub failure: Option<String>,
    pub arn: String,
    /// On instances or serverless (its variant's current serverless config).
    pub hosting: Hosting,
    /// The update under way, as SageMaker describes its new fleet.
    pub pending: Option<PendingUpdate>,
}

/// An update in progress: the config it rolls out and its new fleet's latest status.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingUpdate {
    pub config: String,
    /// `Creating`, `ActivatingTraffic`, `Baking`…, with SageMaker's message.
    pub status: Option<VariantStatus>,
    pub message: Option<String>,
    /// When that status began (a bake's start).
    pub since: Option<SystemTime>,
}

impl PendingUpdate {
    fn read(described: &DescribeEndpointOutput) -> Option<PendingUpdate> {
        let summary = described.pending_deployment_summary()?;
        let latest = summary
            .production_variants()
            .first()
            .and_then(|variant| variant.variant_status().last());
        Some(PendingUpdate {
            config: summary.endpoint_config_name().unwrap_or_default().to_string(),
            status: latest.and_then(|s| s.status().cloned()),
            message: latest.and_then(|s| s.status_message()).map(str::to_string),
            since: latest
                .and_then(|s| s.start_time())
                .and_then(|t| SystemTime::try_from(*t).ok()),
        })
    }

    /// For people following `up`: the new fleet's status, SageMaker's message, and while it bakes
    /// when the `bake`-long step ends (a time of day, UTC, so the text changes only with the step).
    pub fn describe(&self, bake: Duration) -> String {
        let status = self.status.as_ref().map(|s| s.as_str()).unwrap_or("Creating");
        let mut text = format!("rolling out {}: {status}", self.config);
        if let Some(message) = self.message.as_deref().filter(|m| !m.is_empty()) {
            text.push_str(&format!(" ({message})"));
        }
        if self.status == Some(VariantStatus::Baking)
            && let Some(since) = self.since
        {
            let ends = (since + bake)
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let (hours, minutes, seconds) = (ends / 3600 % 24, ends / 60 % 60, ends % 60);
            text.push_str(&format!(
                ", the bake ends at {hours:02}:{minutes:02}:{seconds:02} UTC"
            ));
        }
        text
    }
}

/// The `DeploymentConfig` of an update under `rollout`, naming `alarms` for the automatic rollback;
/// `None` for deploy.yaml without a `rollout` section (an all-at-once update with no bake and no
/// alarm: SageMaker's default, requested as before).
pub fn deployment_config(rollout: &spec::Rollout, alarms: &[String]) -> Option<DeploymentConfig> {
    let unguarded =
        rollout.strategy == spec::RolloutStrategy::AllAtOnce && rollout.bake.is_zero() && alarms.is_empty();
    if unguarded {
        return None;
    }
    let bake = i32::try_from(rollout.bake.as_secs()).unwrap_or(i32::MAX);
    let capacity = |percent: u32| {
        CapacitySize::builder()
            .r#type(CapacitySizeType::CapacityPercent)
            .value(i32::try_from(percent).unwrap_or(i32::MAX))
            .build()
    };
    let routing = TrafficRoutingConfig::builder().wait_interval_in_seconds(bake);
    let routing = match rollout.strategy {
        spec::RolloutStrategy::AllAtOnce => routing.r#type(TrafficRoutingConfigType::AllAtOnce),
        spec::RolloutStrategy::Canary { percent } => routing
            .r#type(TrafficRoutingConfigType::Canary)
            .canary_size(capacity(percent)),
        spec::RolloutStrategy::Linear { step_percent } => routing
            .r#type(TrafficRoutingConfigType::Linear)
            .linear_step_size(capacity(step_percent)),
    };
    let policy = BlueGreenUpdatePolicy::builder()
        .traffic_routing_configuration(routing.build())
        // The last step bakes as long as the others before the old fleet goes.
        .termination_wait_in_seconds(bake)
        .build();
    let mut config = DeploymentConfig::builder().blue_green_update_policy(policy);
    if !alarms.is_empty() {
        let rollback = AutoRollbackConfig::builder()
            .set_alarms(Some(
                alarms
                    .iter()
                    .map(|name| Alarm::builder().alarm_name(name).build())
                    .collect(),
            ))
            .build();
        config = config.auto_rollback_configuration(rollback);
    }
    Some(config.build())
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
        hosting: hosting(&out),
        pending: PendingUpdate::read(&out),
    }))
}

/// How a described endpoint is hosted: serverless when its variant has a serverless config, async
/// when it has an async inference config.
fn hosting(described: &DescribeEndpointOutput) -> Hosting {
    if described.async_inference_config().is_some() {
        return Hosting::Async;
    }
    let serverless = described
        .production_variants()
        .first()
        .is_some_and(|v| v.current_serverless_config().is_some() || v.desired_serverless_config().is_some());
    if serverless {
        Hosting::Serverless
    } else {
        Hosting::Instances
    }
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
/// rolled back: reported as failed, with the state of each of `alarms` that is in ALARM. An update
/// under way is described step by step (`bake` long each).
pub async fn observe(
    clients: &Clients,
    name: &str,
    desired: &EndpointSettings,
    bake: Duration,
    alarms: &[String],
) -> Result<Observed, AwsError> {
    let Some(endpoint) = describe(clients, name).await? else {
        return Ok(Observed::Absent);
    };
    if endpoint.status == EndpointStatus::Deleting {
        // Going (a replacement interrupted half way): `apply` waits for it and creates it again.
        return Ok(Observed::Absent);
    }
    let Some(tags) = tags_unless_gone(clients, name, &endpoint.arn).await? else {
        return Ok(Observed::Absent);
    };
    let mut lifecycle = lifecycle(&endpoint.status, endpoint.failure.as_deref());
    if lifecycle == Lifecycle::Ready
        && let Some(failure) = &endpoint.failure
        && endpoint.config != desired.endpoint_config
    {
        // In service, on another config, with a failure: an update that SageMaker rolled back.
        let mut reason = format!("the last update was rolled back: {failure}");
        for alarm in cloudwatch_alarm::states(clients, alarms).await? {
            if alarm.in_alarm {
                reason.push_str(&format!("; alarm {} is in ALARM: {}", alarm.name, alarm.reason));
            }
        }
        lifecycle = Lifecycle::Failed(reason);
    }
    if let (Lifecycle::InProgress(_), Some(pending)) = (&lifecycle, &endpoint.pending) {
        lifecycle = Lifecycle::InProgress(format!(
            "{}: {}",
            endpoint.status.as_str(),
            pending.describe(bake)
        ));
    }
    let settings = EndpointSettings {
        endpoint_config: endpoint.config,
        hosting: endpoint.hosting,
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
    rollout: Option<DeploymentConfig>,
) -> Result<Applied, AwsError> {
    let config = settings.endpoint_config.as_str();
    let tags = &settings.tags;
    let mut existing = describe(clients, name).await?;
    if let Some(endpoint) = existing.as_ref().filter(|e| {
        matches!(e.status, EndpointStatus::Failed | EndpointStatus::Deleting) || e.hosting != settings.hosting
    }) {
        // Failed, or hosted otherwise than wanted (SageMaker cannot update an endpoint between
        // instances and serverless): replace it. Deleting (the replacement under way): wait for
        // it to be gone.
        let reason = if endpoint.status == EndpointStatus::Failed {
            tracing::warn!(endpoint = name, "replacing a failed endpoint");
            DELETING_FAILED.to_string()
        } else if endpoint.hosting != settings.hosting {
            tracing::info!(endpoint = name, from = %endpoint.hosting, to = %settings.hosting, "replacing the endpoint");
            format!(
                "deleting the endpoint on {} to create it on {}",
                endpoint.hosting, settings.hosting
            )
        } else {
            DELETING_REPLACED.to_string()
        };
        if let Deleted::Pending(_) = delete(clients, name).await? {
            return Ok(Applied::NotYet {
                reason,
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
        .set_deployment_config(rollout)
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
        let alarms = engine::desired::rollback_alarms(&target.spec);
        let bake = target.spec.endpoint.rollout.bake;
        Ok(observe(&target.clients, name, settings, bake, &alarms).await?)
    }

    /// With `RetainAllVariantProperties` on an update when the state has autoscaling (it owns the
    /// instance count), and the rollout's `DeploymentConfig`.
    async fn apply(
        target: &AwsTarget,
        name: &str,
        settings: &EndpointSettings,
        _: &Change,
        upstream: Upstream<'_>,
    ) -> Result<Applied, TargetError> {
        let autoscaling = upstream.state.get(Kind::Autoscaling).is_some();
        let alarms = engine::desired::rollback_alarms(&target.spec);
        let rollout = deployment_config(&target.spec.endpoint.rollout, &alarms);
        Ok(apply(&target.clients, name, settings, autoscaling, rollout).await?)
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
    fn a_baking_step_says_when_its_bake_ends() {
        let pending = PendingUpdate {
            config: "iot-0123456789ab".into(),
            status: Some(VariantStatus::Baking),
            message: Some("Baking: 50% of the new fleet's capacity takes traffic (step 1 of 2)".into()),
            since: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(86_400 + 3_600 + 61)),
        };
        assert_eq!(
            pending.describe(Duration::from_secs(600)),
            "rolling out iot-0123456789ab: Baking (Baking: 50% of the new fleet's capacity takes \
             traffic (step 1 of 2)), the bake ends at 01:11:01 UTC"
        );
        let creating = PendingUpdate {
            status: None,
            message: None,
            since: None,
            ..pending
        };
        assert_eq!(
            creating.describe(Duration::ZERO),
            "rolling out iot-0123456789ab: Creating"
        );
    }

    #[test]
    fn an_unguarded_rollout_sends_no_deployment_config_and_a_canary_sends_sagemakers() {
        assert_eq!(deployment_config(&spec::Rollout::default(), &[]), None);
        let canary = spec::Rollout {
            strategy: spec::RolloutStrategy::Canary { percent: 25 },
            bake: Duration::from_secs(300),
            alarms: spec::RolloutAlarms::None,
        };
        let config = deployment_config(&canary, &["iot-model-latency".into()]).expect("a config");
        let policy = config.blue_green_update_policy().expect("blue/green");
        let routing = policy.traffic_routing_configuration().expect("routing");
        assert_eq!(routing.r#type(), Some(&TrafficRoutingConfigType::Canary));
        assert_eq!(routing.wait_interval_in_seconds(), Some(300));
        let size = routing.canary_size().expect("a canary size");
        assert_eq!(
            (size.r#type(), size.value()),
            (Some(&CapacitySizeType::CapacityPercent), Some(25))
        );
        assert_eq!(policy.termination_wait_in_seconds(), Some(300));
        let alarms: Vec<_> = config
            .auto_rollback_configuration()
            .expect("rollback")
            .alarms()
            .iter()
            .filter_map(|a| a.alarm_name())
            .collect();
        assert_eq!(alarms, ["iot-model-latency"]);
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
