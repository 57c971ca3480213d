//! SageMaker endpoint configs: `<name>-<hash12>`, immutable: one production variant ([`VARIANT`])
//! serving the model on the instance type and count from deploy.yaml, or on serverless capacity
//! (`ServerlessConfig`: memory and concurrency), real-time or asynchronous (`AsyncInferenceConfig`:
//! concurrency per instance, answers and failures under the bucket's `async/` prefixes), with or
//! without data capture (`DataCaptureConfig`: a sample of requests and answers under the bucket's
//! `capture/`), and the deployment's tags.
//!
//! Discovery lists the configs named with the deployment's prefix and tagged as the deployment's,
//! each with the model it serves (what a rollback must keep with it).

use aws_sdk_sagemaker::types::{
    AsyncInferenceClientConfig, AsyncInferenceConfig, AsyncInferenceOutputConfig, CaptureContentTypeHeader,
    CaptureMode, CaptureOption, DataCaptureConfig, ProductionVariant, ProductionVariantInstanceType,
    ProductionVariantServerlessConfig,
};
use engine::kind::EndpointConfigSettings;
use engine::resource::{Change, Lifecycle, Outputs};
use engine::target::{Applied, Deleted, Found, KindOnTarget, TargetError, Upstream};
use engine::values::{
    ASYNC_FAILURE_PREFIX, ASYNC_OUTPUT_PREFIX, AsyncInference, CAPTURE_PREFIX, Capacity, DataCapture,
    Invocation, ServerlessCapacity,
};
use engine::{Kind, Observed};

use crate::clients::Clients;
use crate::errors::{AwsError, OrAbsent};
use crate::sagemaker::{self, Listing, VARIANT, sdk_count};
use crate::target::AwsTarget;

const KIND: Kind = Kind::EndpointConfig;

/// An endpoint config as SageMaker describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigState {
    /// The model its variant serves.
    pub model: String,
    /// The variant's instances or serverless capacity, or why neither can be read.
    pub variant: Result<Capacity, String>,
    /// Real-time, or async with its concurrency, or why the async config cannot be read.
    pub invocation: Result<Invocation, String>,
    /// Off, or the share of traffic captured.
    pub data_capture: DataCapture,
    pub arn: String,
}

/// Reads the config: its model, variant and tags.
pub async fn observe(clients: &Clients, name: &str) -> Result<Observed, AwsError> {
    let Some(config) = describe(clients, name).await? else {
        return Ok(Observed::Absent);
    };
    let variant = config
        .variant
        .map_err(|e| AwsError::other("read", KIND, name, format!("its production variant: {e}")))?;
    let invocation = config
        .invocation
        .map_err(|e| AwsError::other("read", KIND, name, format!("its async inference config: {e}")))?;
    let tags = sagemaker::user_tags(&sagemaker::read_tags(clients, KIND, name, &config.arn).await?);
    let settings = EndpointConfigSettings {
        model: config.model,
        variant,
        invocation,
        data_capture: config.data_capture,
        tags,
    };
    Ok(Observed::present(name, settings, Lifecycle::Ready))
}

/// The config's model, variant and ARN, if it exists.
pub async fn describe(clients: &Clients, name: &str) -> Result<Option<ConfigState>, AwsError> {
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
    let capacity = match variant {
        Some(v) => match v.serverless_config() {
            Some(serverless) => serverless_capacity(serverless).map(Capacity::Serverless),
            None => sagemaker::instances(v.initial_instance_count(), v.instance_type().map(|t| t.as_str()))
                .map(Capacity::Instances),
        },
        None => Err("it has none".to_string()),
    };
    let invocation = match config.async_inference_config() {
        None => Ok(Invocation::RealTime),
        Some(inference) => inference
            .client_config()
            .and_then(|c| c.max_concurrent_invocations_per_instance())
            .and_then(|n| u32::try_from(n).ok())
            .map(|max_concurrent_invocations| {
                Invocation::Async(AsyncInference {
                    max_concurrent_invocations,
                })
            })
            .ok_or_else(|| "it sets no concurrency per instance".to_string()),
    };
    // A capturing config names its destination and sampling (both required by the API); an
    // empty `DataCaptureConfig`, as some endpoints describe one they never had, captures nothing.
    let data_capture = match config.data_capture_config() {
        Some(capture)
            if capture.enable_capture() != Some(false) && capture.destination_s3_uri().is_some() =>
        {
            match capture
                .initial_sampling_percentage()
                .and_then(|p| u32::try_from(p).ok())
                .filter(|p| *p > 0)
            {
                Some(sample_percent) => DataCapture::Sampled { sample_percent },
                None => DataCapture::Off,
            }
        }
        _ => DataCapture::Off,
    };
    Ok(Some(ConfigState {
        model,
        variant: capacity,
        invocation,
        data_capture,
        arn: config.endpoint_config_arn().unwrap_or_default().to_string(),
    }))
}

/// Creates the config, or re-tags an existing one. An async config writes under `bucket`.
pub async fn apply(
    clients: &Clients,
    name: &str,
    settings: &EndpointConfigSettings,
    bucket: &str,
) -> Result<(), AwsError> {
    if let Some(existing) = describe(clients, name).await? {
        sagemaker::put_tags(clients, KIND, name, &existing.arn, &settings.tags).await?;
        return Ok(());
    }
    let variant = ProductionVariant::builder()
        .variant_name(VARIANT)
        .model_name(&settings.model);
    let variant = match &settings.variant {
        Capacity::Instances(instances) => variant
            .instance_type(ProductionVariantInstanceType::from(
                instances.instance_type.as_str(),
            ))
            .initial_instance_count(sdk_count(instances.count)),
        Capacity::Serverless(serverless) => variant.serverless_config(
            ProductionVariantServerlessConfig::builder()
                .memory_size_in_mb(sdk_count(serverless.memory_mb))
                .max_concurrency(sdk_count(serverless.max_concurrency))
                .build(),
        ),
    }
    .build();
    let created = clients
        .sagemaker
        .create_endpoint_config()
        .endpoint_config_name(name)
        .production_variants(variant)
        .set_async_inference_config(async_inference_config(&settings.invocation, bucket))
        .set_data_capture_config(data_capture_config(settings.data_capture, bucket))
        .set_tags(Some(sagemaker::sagemaker_tags(&settings.tags)))
        .send()
        .await
        .map_err(|e| AwsError::sdk("create", KIND, name, e));
    match created {
        Err(error) if sagemaker::already_exists(&error) => {
            tracing::info!(
                config = name,
                "the endpoint config exists: this run's own create, its answer lost"
            );
            Ok(())
        }
        other => other.map(drop),
    }
}

/// The `AsyncInferenceConfig` of an async config: its concurrency, answers to the bucket's
/// [`ASYNC_OUTPUT_PREFIX`] and failures to its [`ASYNC_FAILURE_PREFIX`]. No notification topics:
/// `orchestrate invoke --async` watches the output locations itself.
fn async_inference_config(invocation: &Invocation, bucket: &str) -> Option<AsyncInferenceConfig> {
    let Invocation::Async(inference) = invocation else {
        return None;
    };
    Some(
        AsyncInferenceConfig::builder()
            .client_config(
                AsyncInferenceClientConfig::builder()
                    .max_concurrent_invocations_per_instance(sdk_count(inference.max_concurrent_invocations))
                    .build(),
            )
            .output_config(
                AsyncInferenceOutputConfig::builder()
                    .s3_output_path(format!("s3://{bucket}/{ASYNC_OUTPUT_PREFIX}"))
                    .s3_failure_path(format!("s3://{bucket}/{ASYNC_FAILURE_PREFIX}"))
                    .build(),
            )
            .build(),
    )
}

/// The `DataCaptureConfig` of a capturing config: requests and answers (both capture modes) of
/// the sampled share, under the bucket's [`CAPTURE_PREFIX`] (SageMaker adds `<endpoint>/<variant>/
/// yyyy/mm/dd/hh/`); CSV captured as text, JSON and JSON Lines as JSON, as `model-image monitor`
/// reads them.
fn data_capture_config(capture: DataCapture, bucket: &str) -> Option<DataCaptureConfig> {
    let DataCapture::Sampled { sample_percent } = capture else {
        return None;
    };
    let prefix = CAPTURE_PREFIX.trim_end_matches('/');
    Some(
        DataCaptureConfig::builder()
            .enable_capture(true)
            .initial_sampling_percentage(sdk_count(sample_percent))
            .destination_s3_uri(format!("s3://{bucket}/{prefix}"))
            .capture_options(CaptureOption::builder().capture_mode(CaptureMode::Input).build())
            .capture_options(CaptureOption::builder().capture_mode(CaptureMode::Output).build())
            .capture_content_type_header(
                CaptureContentTypeHeader::builder()
                    .csv_content_types("text/csv")
                    .json_content_types("application/json")
                    .json_content_types("application/jsonlines")
                    .build(),
            )
            .build(),
    )
}

/// Serverless capacity as SageMaker reports it.
fn serverless_capacity(config: &ProductionVariantServerlessConfig) -> Result<ServerlessCapacity, String> {
    let read = |value: Option<i32>, what: &str| {
        value
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| format!("its serverless config has no {what}"))
    };
    Ok(ServerlessCapacity {
        memory_mb: read(config.memory_size_in_mb(), "memory size")?,
        max_concurrency: read(config.max_concurrency(), "max concurrency")?,
    })
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

/// An endpoint config on AWS, in SageMaker.
#[derive(Debug)]
pub struct SageMakerEndpointConfig;

impl KindOnTarget<AwsTarget> for SageMakerEndpointConfig {
    type Settings = EndpointConfigSettings;

    async fn observe(
        target: &AwsTarget,
        name: &str,
        _: &EndpointConfigSettings,
    ) -> Result<Observed, TargetError> {
        Ok(observe(&target.clients, name).await?)
    }

    async fn apply(
        target: &AwsTarget,
        name: &str,
        settings: &EndpointConfigSettings,
        _: &Change,
        _: Upstream<'_>,
    ) -> Result<Applied, TargetError> {
        apply(&target.clients, name, settings, &target.bucket()).await?;
        Ok(Applied::Ready(Outputs::None))
    }

    async fn delete(target: &AwsTarget, name: &str) -> Result<Deleted, TargetError> {
        delete(&target.clients, name).await?;
        Ok(Deleted::Gone)
    }

    /// The deployment's endpoint configs, each using the model it serves.
    async fn owned(target: &AwsTarget) -> Result<Vec<Found>, TargetError> {
        let mut found = Vec::new();
        for name in sagemaker::owned_names(target, Listing::EndpointConfigs).await? {
            let model = describe(&target.clients, &name)
                .await?
                .map(|config| config.model)
                .filter(|model| !model.is_empty());
            let config = Found::new(KIND, &name);
            found.push(match model {
                Some(model) => config.using(Kind::Model, model),
                None => config,
            });
        }
        Ok(found)
    }
}
