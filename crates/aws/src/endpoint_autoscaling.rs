//! Endpoint autoscaling (optional in deploy.yaml): an Application Auto Scaling target on the
//! endpoint variant's instance count (min/max) and a target-tracking policy on invocations per
//! instance. The instance count the autoscaler sets is its business, never drift. Deregistering the
//! target on `down` removes its policies with it.
//!
//! Scaling targets carry no tags: the autoscaling is the deployment's when its endpoint is (tagged
//! as the deployment's) and has a registered scaling target.

use aws_sdk_applicationautoscaling::types::{
    MetricType, PolicyType, PredefinedMetricSpecification, ScalableDimension, ServiceNamespace,
    TargetTrackingScalingPolicyConfiguration,
};
use engine::kind::AutoscalingSettings;
use engine::resource::{Change, Lifecycle, Outputs};
use engine::target::{Applied, Deleted, Found, KindOnTarget, TargetError, Upstream};
use engine::{Kind, Observed};

use crate::clients::Clients;
use crate::errors::AwsError;
use crate::sagemaker::{VARIANT, sdk_count};
use crate::sagemaker_endpoint;
use crate::target::AwsTarget;

const KIND: Kind = Kind::Autoscaling;
/// The target-tracking policy's name.
pub const POLICY_NAME: &str = "orchestrate-invocations-per-instance";

/// The scalable resource of an endpoint's variant.
pub fn resource_id(endpoint: &str) -> String {
    format!("endpoint/{endpoint}/variant/{VARIANT}")
}

fn dimension() -> ScalableDimension {
    ScalableDimension::SageMakerVariantDesiredInstanceCount
}

/// A capacity or target value as read: negative ones (which AWS never reports) as 0.
fn count(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

/// Reads the scaling target and policy: `min`, `max`, `invocations_per_instance` (0 without the
/// target-tracking policy: it tracks nothing).
pub async fn observe(clients: &Clients, name: &str) -> Result<Observed, AwsError> {
    let id = resource_id(name);
    let targets = clients
        .autoscaling
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Sagemaker)
        .scalable_dimension(dimension())
        .resource_ids(&id)
        .send()
        .await
        .map_err(|e| AwsError::sdk("describe", KIND, name, e))?;
    let Some(target) = targets.scalable_targets().first() else {
        return Ok(Observed::Absent);
    };
    let policies = clients
        .autoscaling
        .describe_scaling_policies()
        .service_namespace(ServiceNamespace::Sagemaker)
        .scalable_dimension(dimension())
        .resource_id(&id)
        .policy_names(POLICY_NAME)
        .send()
        .await
        .map_err(|e| AwsError::sdk("describe the policy of", KIND, name, e))?;
    let target_value = policies
        .scaling_policies()
        .first()
        .and_then(|p| p.target_tracking_scaling_policy_configuration())
        .map(|c| count(c.target_value().round() as i64))
        .unwrap_or(0);
    let settings = AutoscalingSettings {
        min: count(target.min_capacity().into()),
        max: count(target.max_capacity().into()),
        invocations_per_instance: target_value,
    };
    Ok(Observed::present(name, settings, Lifecycle::Ready))
}

/// Registers the scaling target and puts the policy (both idempotent).
pub async fn apply(clients: &Clients, name: &str, settings: &AutoscalingSettings) -> Result<(), AwsError> {
    let id = resource_id(name);
    clients
        .autoscaling
        .register_scalable_target()
        .service_namespace(ServiceNamespace::Sagemaker)
        .scalable_dimension(dimension())
        .resource_id(&id)
        .min_capacity(sdk_count(settings.min))
        .max_capacity(sdk_count(settings.max))
        .send()
        .await
        .map_err(|e| AwsError::sdk("register", KIND, name, e))?;
    let metric = PredefinedMetricSpecification::builder()
        .predefined_metric_type(MetricType::SageMakerVariantInvocationsPerInstance)
        .build()
        .map_err(|e| AwsError::other("configure", KIND, name, e))?;
    let configuration = TargetTrackingScalingPolicyConfiguration::builder()
        .target_value(f64::from(settings.invocations_per_instance))
        .predefined_metric_specification(metric)
        .build()
        .map_err(|e| AwsError::other("configure", KIND, name, e))?;
    clients
        .autoscaling
        .put_scaling_policy()
        .policy_name(POLICY_NAME)
        .service_namespace(ServiceNamespace::Sagemaker)
        .scalable_dimension(dimension())
        .resource_id(&id)
        .policy_type(PolicyType::TargetTrackingScaling)
        .target_tracking_scaling_policy_configuration(configuration)
        .send()
        .await
        .map_err(|e| AwsError::sdk("set the policy of", KIND, name, e))?;
    Ok(())
}

/// Deregisters the scaling target (its policies go with it).
pub async fn delete(clients: &Clients, name: &str) -> Result<(), AwsError> {
    match clients
        .autoscaling
        .deregister_scalable_target()
        .service_namespace(ServiceNamespace::Sagemaker)
        .scalable_dimension(dimension())
        .resource_id(resource_id(name))
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            let e = AwsError::sdk("deregister", KIND, name, e);
            if e.is_not_found() || e.has_code("ObjectNotFoundException") {
                Ok(())
            } else {
                Err(e)
            }
        }
    }
}

/// Whether the endpoint has a registered scaling target (for discovery).
pub async fn exists(clients: &Clients, endpoint: &str) -> Result<bool, AwsError> {
    let targets = clients
        .autoscaling
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Sagemaker)
        .scalable_dimension(dimension())
        .resource_ids(resource_id(endpoint))
        .send()
        .await
        .map_err(|e| AwsError::sdk("describe", KIND, endpoint, e))?;
    Ok(!targets.scalable_targets().is_empty())
}

/// The endpoint's autoscaling on AWS, in Application Auto Scaling.
#[derive(Debug)]
pub struct EndpointAutoscaling;

impl KindOnTarget<AwsTarget> for EndpointAutoscaling {
    type Settings = AutoscalingSettings;

    async fn observe(
        target: &AwsTarget,
        name: &str,
        _: &AutoscalingSettings,
    ) -> Result<Observed, TargetError> {
        Ok(observe(&target.clients, name).await?)
    }

    async fn apply(
        target: &AwsTarget,
        name: &str,
        settings: &AutoscalingSettings,
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

    /// The autoscaling of the deployment's endpoint (named after it), when the endpoint is tagged
    /// as the deployment's and has a scaling target.
    async fn owned(target: &AwsTarget) -> Result<Vec<Found>, TargetError> {
        let name = target.spec.name.as_str();
        let owned =
            sagemaker_endpoint::ours(target).await?.is_some() && exists(&target.clients, name).await?;
        Ok(owned.then(|| Found::new(KIND, name)).into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_as_unsigned() {
        assert_eq!(count(4), 4);
        assert_eq!(count(-1), 0);
        assert_eq!(count(i64::MAX), u32::MAX);
        assert_eq!(resource_id("iot"), "endpoint/iot/variant/AllTraffic");
    }
}
