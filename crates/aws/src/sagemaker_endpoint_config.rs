//! SageMaker endpoint configs: `<name>-<hash12>`, immutable: one production variant
//! ([`VARIANT`](crate::sagemaker::VARIANT)) serving the model on the instance type and count from
//! deploy.yaml, and the deployment's tags.

use aws_sdk_sagemaker::types::{ProductionVariant, ProductionVariantInstanceType};
use engine::resource::Lifecycle;
use engine::{Desired, Kind, Observed};

use crate::clients::Clients;
use crate::errors::{AwsError, OrAbsent};
use crate::sagemaker::{self, VARIANT};

const KIND: Kind = Kind::EndpointConfig;

/// Reads the config: `model`, `variant` (`<count>x<instance type>`), `tags`.
pub async fn observe(clients: &Clients, desired: &Desired) -> Result<Observed, AwsError> {
    let name = desired.name.as_str();
    let Some((model, variant, arn)) = describe(clients, name).await? else {
        return Ok(Observed::Absent);
    };
    let tags = sagemaker::tags_field(&sagemaker::read_tags(clients, KIND, name, &arn).await?);
    Ok(Observed::present(name, Lifecycle::Ready)
        .with_field("model", model)
        .with_field("variant", variant)
        .with_field("tags", tags))
}

/// The config's model, variant and ARN, if it exists.
pub async fn describe(clients: &Clients, name: &str) -> Result<Option<(String, String, String)>, AwsError> {
    let Some(config) = clients
        .sagemaker
        .describe_endpoint_config()
        .endpoint_config_name(name)
        .send()
        .await
        .map_err(|e| AwsError::sdk("describe", KIND, name, e))
        .or_absent()?
    else {
        return Ok(None);
    };
    let variant = config.production_variants().first();
    let model = variant
        .and_then(|v| v.model_name())
        .unwrap_or_default()
        .to_string();
    let shape = variant
        .map(|v| {
            format!(
                "{}x{}",
                v.initial_instance_count().unwrap_or(1),
                v.instance_type().map(|t| t.as_str()).unwrap_or_default()
            )
        })
        .unwrap_or_default();
    Ok(Some((
        model,
        shape,
        config.endpoint_config_arn().unwrap_or_default().to_string(),
    )))
}

/// Creates the config, or re-tags an existing one.
pub async fn apply(clients: &Clients, desired: &Desired) -> Result<(), AwsError> {
    let name = desired.name.as_str();
    let tags = desired.get("tags").unwrap_or_default();
    if let Some((_, _, arn)) = describe(clients, name).await? {
        return sagemaker::put_tags(clients, KIND, name, &arn, tags).await;
    }
    let (count, instance_type) = desired
        .get("variant")
        .and_then(|v| v.split_once('x'))
        .ok_or_else(|| AwsError::other("create", KIND, name, "no variant setting"))?;
    let variant = ProductionVariant::builder()
        .variant_name(VARIANT)
        .model_name(desired.get("model").unwrap_or_default())
        .instance_type(ProductionVariantInstanceType::from(instance_type))
        .initial_instance_count(count.parse().unwrap_or(1))
        .build();
    clients
        .sagemaker
        .create_endpoint_config()
        .endpoint_config_name(name)
        .production_variants(variant)
        .set_tags(Some(sagemaker::sagemaker_tags(tags)))
        .send()
        .await
        .map_err(|e| AwsError::sdk("create", KIND, name, e))?;
    Ok(())
}

pub async fn delete(clients: &Clients, name: &str) -> Result<(), AwsError> {
    clients
        .sagemaker
        .delete_endpoint_config()
        .endpoint_config_name(name)
        .send()
        .await
        .map_err(|e| AwsError::sdk("delete", KIND, name, e))
        .or_absent()?;
    Ok(())
}
