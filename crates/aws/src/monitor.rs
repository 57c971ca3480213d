//! The drift monitor on AWS: a SageMaker processing job running the deployment's own image with
//! the argument `monitor` (`model-image monitor`, a Model Monitor bring-your-own container), the
//! endpoint's captured traffic (`s3://<bucket>/capture/<endpoint>/`) as its input and the artifact
//! of the model the endpoint serves (whose `baseline.json` it reads) as its baseline, writing its
//! report files to `s3://<bucket>/monitoring/<run>/`. The run's window and threshold travel in the
//! environment under Model Monitor's own names (`start_time`, `end_time`, `drift_threshold`); the
//! container finds its input, baseline and output at the processing paths it defaults to.
//!
//! A processing job is permanent in SageMaker (like a training job): each run is a new one, named
//! `<endpoint>-monitor-<UTC time>`, tagged as the deployment's; the reports stay in the bucket.

use std::time::Duration;

use aws_sdk_sagemaker::types::{
    AppSpecification, NetworkConfig, ProcessingClusterConfig, ProcessingInput, ProcessingInstanceType,
    ProcessingJobStatus, ProcessingOutput, ProcessingOutputConfig, ProcessingResources, ProcessingS3DataType,
    ProcessingS3Input, ProcessingS3InputMode, ProcessingS3Output, ProcessingS3UploadMode,
    ProcessingStoppingCondition,
};
use contract::drift::{DriftSummary, FILE_NAME};
use engine::Kind;
use engine::target::{MonitorRequest, MonitorRun};
use engine::values::CAPTURE_PREFIX;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::errors::AwsError;
use crate::sagemaker::{self, role_arn};
use crate::target::AwsTarget;

const KIND: Kind = Kind::Endpoint;
/// Where the runs' report files go, under the bucket.
pub const MONITORING_PREFIX: &str = "monitoring/";
/// The processing paths `model-image monitor` reads and writes by default.
const INPUT_PATH: &str = "/opt/ml/processing/input";
const BASELINE_PATH: &str = "/opt/ml/processing/baseline";
const OUTPUT_PATH: &str = "/opt/ml/processing/resultdata";
/// The longest a run may take: the captured traffic of a day is read in minutes.
const MAX_RUNTIME: Duration = Duration::from_secs(3_600);
/// A small instance: the monitor reads at most a window of captured JSON Lines.
const INSTANCE_TYPE: ProcessingInstanceType = ProcessingInstanceType::MlM5Large;
const VOLUME_SIZE_GB: i32 = 30;

/// Runs the monitor as a processing job, waits for it, and reads its report.
pub async fn run(
    target: &AwsTarget,
    endpoint: &str,
    request: &MonitorRequest,
) -> Result<MonitorRun, AwsError> {
    let clients = target.clients();
    let missing = |what: String| AwsError::other("monitor", KIND, endpoint, what);
    let described = crate::sagemaker_endpoint::describe(clients, endpoint)
        .await?
        .ok_or_else(|| missing("the endpoint does not exist; run `orchestrate up` first".to_string()))?;
    let config = crate::sagemaker_endpoint_config::describe(clients, &described.config)
        .await?
        .ok_or_else(|| {
            missing(format!(
                "its endpoint config `{}` does not exist",
                described.config
            ))
        })?;
    let model = clients
        .sagemaker
        .describe_model()
        .model_name(&config.model)
        .send()
        .await
        .map_err(|e| AwsError::sdk("describe", Kind::Model, &config.model, e))?;
    let container = model.primary_container();
    let image = container
        .and_then(|c| c.image())
        .ok_or_else(|| missing(format!("model `{}` names no image", config.model)))?;
    let artifact = container
        .and_then(|c| c.model_data_url())
        .ok_or_else(|| missing(format!("model `{}` names no artifact", config.model)))?;

    let bucket = target.bucket();
    let end = OffsetDateTime::now_utc();
    let start = end - request.window;
    let name = engine::names::monitor_run_name(endpoint, end);
    let report = format!("s3://{bucket}/{MONITORING_PREFIX}{name}/");
    let format = |t: OffsetDateTime| t.format(&Rfc3339).expect("a UTC time formats as RFC 3339");
    let input = |input_name: &str, uri: String, local: &str| {
        ProcessingInput::builder()
            .input_name(input_name)
            .s3_input(
                ProcessingS3Input::builder()
                    .s3_uri(uri)
                    .local_path(local)
                    .s3_data_type(ProcessingS3DataType::S3Prefix)
                    .s3_input_mode(ProcessingS3InputMode::File)
                    .build(),
            )
            .build()
    };
    let region = clients.region().to_string();
    clients
        .sagemaker
        .create_processing_job()
        .processing_job_name(&name)
        .app_specification(
            AppSpecification::builder()
                .image_uri(image)
                .container_arguments("monitor")
                .build(),
        )
        .processing_inputs(input(
            "capture",
            format!("s3://{bucket}/{CAPTURE_PREFIX}{endpoint}/"),
            INPUT_PATH,
        ))
        .processing_inputs(input("baseline", artifact.to_string(), BASELINE_PATH))
        .processing_output_config(
            ProcessingOutputConfig::builder()
                .outputs(
                    ProcessingOutput::builder()
                        .output_name("report")
                        .s3_output(
                            ProcessingS3Output::builder()
                                .s3_uri(&report)
                                .local_path(OUTPUT_PATH)
                                .s3_upload_mode(ProcessingS3UploadMode::EndOfJob)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .processing_resources(
            ProcessingResources::builder()
                .cluster_config(
                    ProcessingClusterConfig::builder()
                        .instance_count(1)
                        .instance_type(INSTANCE_TYPE)
                        .volume_size_in_gb(VOLUME_SIZE_GB)
                        .build(),
                )
                .build(),
        )
        .stopping_condition(
            ProcessingStoppingCondition::builder()
                .max_runtime_in_seconds(MAX_RUNTIME.as_secs() as i32)
                .build(),
        )
        .environment("start_time", format(start))
        .environment("end_time", format(end))
        .environment("drift_threshold", request.drift_threshold.to_string())
        .network_config(NetworkConfig::builder().enable_network_isolation(true).build())
        .role_arn(role_arn(target.account(), &region, &target.spec().role_name()))
        .set_tags(Some(sagemaker::sagemaker_tags(&engine::desired::tags(
            target.spec(),
        ))))
        .send()
        .await
        .map_err(|e| AwsError::sdk("start the monitor of", KIND, endpoint, e))?;
    tracing::info!(job = name, "started the drift monitor");

    let deadline = tokio::time::Instant::now() + MAX_RUNTIME + Duration::from_secs(600);
    loop {
        let job = clients
            .sagemaker
            .describe_processing_job()
            .processing_job_name(&name)
            .send()
            .await
            .map_err(|e| AwsError::sdk("describe", KIND, &name, e))?;
        match job.processing_job_status() {
            Some(ProcessingJobStatus::Completed) => break,
            Some(status @ (ProcessingJobStatus::Failed | ProcessingJobStatus::Stopped)) => {
                let reason = job
                    .exit_message()
                    .or(job.failure_reason())
                    .unwrap_or("no reason given");
                return Err(missing(format!(
                    "processing job `{name}` ended {}: {reason}",
                    status.as_str()
                )));
            }
            _ if tokio::time::Instant::now() > deadline => {
                return Err(missing(format!("processing job `{name}` did not finish in time")));
            }
            _ => tokio::time::sleep(target.monitor_poll_interval()).await,
        }
    }
    let summary = read_report(
        target,
        endpoint,
        &format!("{MONITORING_PREFIX}{name}/{FILE_NAME}"),
    )
    .await?;
    Ok(MonitorRun {
        name,
        report_location: report,
        report: summary,
    })
}

/// The latest run's report: the greatest run name under `monitoring/` with a report.
pub async fn latest(target: &AwsTarget, endpoint: &str) -> Result<Option<MonitorRun>, AwsError> {
    let bucket = target.bucket();
    let prefix = format!("{MONITORING_PREFIX}{endpoint}-monitor-");
    let mut keys = Vec::new();
    let mut pages = target
        .clients()
        .s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix(&prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::sdk("list the monitor reports of", KIND, endpoint, e))?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key())
                .filter(|k| k.ends_with(&format!("/{FILE_NAME}")))
                .map(str::to_string),
        );
    }
    let Some(key) = keys.into_iter().max() else {
        return Ok(None);
    };
    let name = key
        .trim_start_matches(MONITORING_PREFIX)
        .trim_end_matches(&format!("/{FILE_NAME}"))
        .to_string();
    let report = read_report(target, endpoint, &key).await?;
    Ok(Some(MonitorRun {
        report_location: format!("s3://{bucket}/{MONITORING_PREFIX}{name}/"),
        name,
        report,
    }))
}

async fn read_report(target: &AwsTarget, endpoint: &str, key: &str) -> Result<DriftSummary, AwsError> {
    let object = target
        .clients()
        .s3
        .get_object()
        .bucket(target.bucket())
        .key(key)
        .send()
        .await
        .map_err(|e| AwsError::sdk("read the monitor report of", KIND, endpoint, e))?;
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|e| AwsError::other("read the monitor report of", KIND, endpoint, e))?
        .into_bytes();
    serde_json::from_slice(&bytes).map_err(|e| {
        AwsError::other(
            "read the monitor report of",
            KIND,
            endpoint,
            format!("`{key}` is not a drift report: {e}"),
        )
    })
}
