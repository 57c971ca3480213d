//! SageMaker training jobs: `<name>-<hash12>-<attempt>`, the image by digest, the uploaded channels,
//! the hyperparameters, MetricDefinitions matching `model-image`'s metric lines, network isolation,
//! the stopping condition and instance settings from deploy.yaml.
//!
//! Training jobs can be neither deleted nor renamed, so the latest attempt of the base name is the
//! job: Completed is reused, InProgress re-attached to, Failed or Stopped reported with its reason,
//! and the next `up` makes attempt `n + 1`. The inputs are in the base name's hash; observation
//! also reads them back (image, hyperparameters, instance; the full data hashes from a tag, since
//! the channel URIs hold only 12 hex digits) so a job edited by other means shows as drift.
//!
//! While a job runs, its log is tailed from CloudWatch Logs (`/aws/sagemaker/TrainingJobs`, streams
//! `<job>/…`); its validation metrics are read from `metrics.json` in the model artifact.

use std::collections::{BTreeMap, HashMap};
use std::io::Read as _;
use std::sync::Mutex;

use aws_sdk_sagemaker::types::{
    AlgorithmSpecification, Channel, DataSource, MetricDefinition, OutputDataConfig, ResourceConfig,
    S3DataDistribution, S3DataSource, S3DataType, SortBy, SortOrder, StoppingCondition, TrainingInputMode,
    TrainingInstanceType, TrainingJobStatus,
};
use engine::desired::DesiredState;
use engine::names::{attempt_name, attempt_of};
use engine::resource::Lifecycle;
use engine::{Desired, Kind, Observed};

use crate::clients::Clients;
use crate::errors::{AwsError, OrAbsent};
use crate::sagemaker::{self, image_ref, image_uri, model_artifact, output_path, role_arn};

const KIND: Kind = Kind::TrainingJob;
/// The tag holding the full data hashes, `train=<sha256> validation=<sha256>` (SageMaker tag
/// values allow no comma, so the engine's `,`-separated field travels with spaces).
pub const DATA_TAG: &str = "orchestrate:data";

/// The engine's `data` field as a tag value, and back.
pub fn data_tag_value(field: &str) -> String {
    field.replace(',', " ")
}

pub fn data_field(tag_value: &str) -> String {
    tag_value.split_whitespace().collect::<Vec<_>>().join(",")
}
/// Where SageMaker writes training logs.
pub const LOG_GROUP: &str = "/aws/sagemaker/TrainingJobs";
/// The metrics `model-image train` prints as `validation:<name>=<value>` and SageMaker captures.
pub const METRICS: [&str; 6] = ["pr_auc", "roc_auc", "mcc", "f1", "balanced_accuracy", "log_loss"];

/// MetricDefinitions for SageMaker: one per validation metric, matching `model-image`'s lines.
pub fn metric_definitions() -> Vec<(String, String)> {
    METRICS
        .iter()
        .map(|m| (format!("validation:{m}"), format!("validation:{m}=([-+0-9.eE]+)")))
        .collect()
}

/// A training job as SageMaker describes it, reduced to what the engine compares.
#[derive(Debug, Clone, PartialEq)]
pub struct JobState {
    pub name: String,
    pub lifecycle: Lifecycle,
    pub fields: BTreeMap<String, String>,
    pub model_artifact: Option<String>,
}

/// Where a status leaves a job: running, usable, or ended badly (with why).
pub fn lifecycle(
    status: Option<&TrainingJobStatus>,
    secondary: Option<&str>,
    failure: Option<&str>,
) -> Lifecycle {
    match status {
        Some(TrainingJobStatus::Completed) => Lifecycle::Ready,
        Some(TrainingJobStatus::InProgress) | Some(TrainingJobStatus::Stopping) | None => {
            Lifecycle::InProgress(secondary.unwrap_or("InProgress").to_string())
        }
        Some(TrainingJobStatus::Stopped) => Lifecycle::Failed(match failure {
            Some(reason) => format!("stopped: {reason}"),
            None => "stopped before it completed".to_string(),
        }),
        Some(other) => Lifecycle::Failed(
            failure
                .map(str::to_string)
                .unwrap_or_else(|| format!("{} without a reason", other.as_str())),
        ),
    }
}

/// The latest attempt of `base` (its name), if any.
pub async fn latest_attempt(clients: &Clients, base: &str) -> Result<Option<(u32, String)>, AwsError> {
    let mut best: Option<(u32, String)> = None;
    let mut token: Option<String> = None;
    loop {
        let page = clients
            .sagemaker
            .list_training_jobs()
            .name_contains(base)
            .sort_by(SortBy::CreationTime)
            .sort_order(SortOrder::Descending)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| AwsError::sdk("list", KIND, base, e))?;
        for summary in page.training_job_summaries() {
            let name = summary.training_job_name().unwrap_or_default();
            if let Some(n) = attempt_of(base, name)
                && best.as_ref().is_none_or(|(b, _)| n > *b)
            {
                best = Some((n, name.to_string()));
            }
        }
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(best),
        }
    }
}

/// Describes one attempt.
pub async fn describe(clients: &Clients, attempt: &str) -> Result<Option<JobState>, AwsError> {
    let Some(job) = clients
        .sagemaker
        .describe_training_job()
        .training_job_name(attempt)
        .send()
        .await
        .map_err(|e| AwsError::sdk("describe", KIND, attempt, e))
        .or_absent()?
    else {
        return Ok(None);
    };
    let lifecycle = lifecycle(
        job.training_job_status(),
        job.secondary_status().map(|s| s.as_str()),
        job.failure_reason(),
    );
    let mut fields = BTreeMap::new();
    if let Some(image) = job.algorithm_specification().and_then(|a| a.training_image()) {
        fields.insert("image".to_string(), image_ref(image));
    }
    let hyperparameters: BTreeMap<&String, &String> = job
        .hyper_parameters()
        .map(|h| h.iter().collect())
        .unwrap_or_default();
    fields.insert(
        "hyperparameters".to_string(),
        hyperparameters
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
    );
    if let Some(resources) = job.resource_config() {
        fields.insert(
            "instance".to_string(),
            format!(
                "{}x{}",
                resources.instance_count().unwrap_or(1),
                resources.instance_type().map(|t| t.as_str()).unwrap_or_default()
            ),
        );
    }
    if let Some(arn) = job.training_job_arn() {
        let tags = sagemaker::read_tags(clients, KIND, attempt, arn).await?;
        fields.insert(
            "data".to_string(),
            tags.get(DATA_TAG)
                .map(|v| data_field(v))
                .unwrap_or_else(|| "unknown (no data tag)".to_string()),
        );
    }
    Ok(Some(JobState {
        name: attempt.to_string(),
        lifecycle,
        fields,
        model_artifact: job
            .model_artifacts()
            .and_then(|a| a.s3_model_artifacts().map(str::to_string)),
    }))
}

/// The latest attempt of the desired job.
pub async fn observe(clients: &Clients, desired: &Desired) -> Result<Observed, AwsError> {
    let Some((_, attempt)) = latest_attempt(clients, &desired.name).await? else {
        return Ok(Observed::Absent);
    };
    Ok(match describe(clients, &attempt).await? {
        Some(job) => Observed::Present {
            name: job.name,
            fields: job.fields,
            lifecycle: job.lifecycle,
        },
        None => Observed::Absent,
    })
}

/// What a job needs from the rest of the deployment.
#[derive(Debug, Clone)]
pub struct JobContext<'a> {
    pub account: &'a str,
    pub bucket: &'a str,
    pub role: &'a str,
    pub tags: &'a str,
    pub volume_size_gb: u32,
    pub max_runtime_seconds: u64,
}

/// Starts the next attempt of the desired job.
pub async fn apply(
    clients: &Clients,
    desired: &Desired,
    state: &DesiredState,
    cx: &JobContext<'_>,
) -> Result<String, AwsError> {
    let base = desired.name.as_str();
    let next = latest_attempt(clients, base).await?.map_or(1, |(n, _)| n + 1);
    let name = attempt_name(base, next);
    let region = clients.region().to_string();

    let mut algorithm = AlgorithmSpecification::builder()
        .training_image(image_uri(
            cx.account,
            &region,
            desired.get("image").unwrap_or_default(),
        ))
        .training_input_mode(TrainingInputMode::File);
    for (metric, regex) in metric_definitions() {
        algorithm =
            algorithm.metric_definitions(MetricDefinition::builder().name(metric).regex(regex).build());
    }
    let mut channels = Vec::new();
    for data in state.all(Kind::TrainingData) {
        let channel = data.name.rsplit('/').next().unwrap_or_default();
        let prefix = crate::training_data::key_prefix(&data.name);
        let source = S3DataSource::builder()
            .s3_data_type(S3DataType::S3Prefix)
            .s3_uri(format!("s3://{}/{prefix}", cx.bucket))
            .s3_data_distribution_type(S3DataDistribution::FullyReplicated)
            .build();
        channels.push(
            Channel::builder()
                .channel_name(channel)
                .data_source(DataSource::builder().s3_data_source(source).build())
                .build(),
        );
    }
    let (count, instance_type) = desired
        .get("instance")
        .and_then(|i| i.split_once('x'))
        .ok_or_else(|| AwsError::other("create", KIND, &name, "no instance setting"))?;
    let resources = ResourceConfig::builder()
        .instance_type(TrainingInstanceType::from(instance_type))
        .instance_count(count.parse().unwrap_or(1))
        .volume_size_in_gb(cx.volume_size_gb as i32)
        .build();
    let hyperparameters: HashMap<String, String> = desired
        .get("hyperparameters")
        .unwrap_or_default()
        .split(' ')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut tags = sagemaker::sagemaker_tags(cx.tags);
    tags.push(
        aws_sdk_sagemaker::types::Tag::builder()
            .key(DATA_TAG)
            .value(data_tag_value(desired.get("data").unwrap_or_default()))
            .build(),
    );
    let algorithm = algorithm.build();
    let output = OutputDataConfig::builder()
        .s3_output_path(output_path(cx.bucket))
        .build();
    let stopping = StoppingCondition::builder()
        .max_runtime_in_seconds(cx.max_runtime_seconds.min(i32::MAX as u64) as i32)
        .build();
    let role = role_arn(cx.account, &region, cx.role);
    sagemaker::retry_while_role_propagates(|| async {
        clients
            .sagemaker
            .create_training_job()
            .training_job_name(&name)
            .algorithm_specification(algorithm.clone())
            .role_arn(&role)
            .set_input_data_config(Some(channels.clone()))
            .output_data_config(output.clone())
            .resource_config(resources.clone())
            .stopping_condition(stopping.clone())
            .set_hyper_parameters(Some(hyperparameters.clone()))
            .enable_network_isolation(true)
            .set_tags(Some(tags.clone()))
            .send()
            .await
            .map_err(|e| AwsError::sdk("create", KIND, &name, e))
    })
    .await?;
    tracing::info!(job = name, "started training job");
    Ok(name)
}

/// Stops an attempt that is still running (training jobs cannot be deleted).
pub async fn stop(clients: &Clients, attempt: &str) -> Result<(), AwsError> {
    let Some(job) = describe(clients, attempt).await? else {
        return Ok(());
    };
    if !matches!(job.lifecycle, Lifecycle::InProgress(_)) {
        return Ok(());
    }
    match clients
        .sagemaker
        .stop_training_job()
        .training_job_name(attempt)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            let e = AwsError::sdk("stop", KIND, attempt, e);
            // Already stopping or ended in between.
            if e.is_not_found() || e.has_code("ValidationException") {
                Ok(())
            } else {
                Err(e)
            }
        }
    }
}

/// The validation metrics in the model artifact of a completed attempt (`metrics.json`).
pub async fn metrics(
    clients: &Clients,
    bucket: &str,
    attempt: &str,
) -> Result<BTreeMap<String, f64>, AwsError> {
    let url = match describe(clients, attempt).await? {
        Some(JobState {
            model_artifact: Some(url),
            ..
        }) => url,
        _ => model_artifact(bucket, attempt),
    };
    let (artifact_bucket, key) = url
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .ok_or_else(|| {
            AwsError::other(
                "read the metrics of",
                KIND,
                attempt,
                format!("unreadable artifact URL {url}"),
            )
        })?;
    let object = clients
        .s3
        .get_object()
        .bucket(artifact_bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| AwsError::sdk("read the model artifact of", KIND, attempt, e))?;
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|e| AwsError::other("read the model artifact of", KIND, attempt, e))?
        .into_bytes();
    let text = file_in_tar_gz(&bytes, engine::training_output::METRICS_FILE)
        .map_err(|e| AwsError::other("read the model artifact of", KIND, attempt, e))?;
    engine::training_output::validation_metrics(&text)
        .map_err(|e| AwsError::other("read the metrics of", KIND, attempt, format!("{url}: {e}")))
}

/// One file of a `.tar.gz`, by its name at the archive root (`./metrics.json` too).
pub fn file_in_tar_gz(bytes: &[u8], wanted: &str) -> Result<String, String> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        if path.strip_prefix(".").unwrap_or(&path) == std::path::Path::new(wanted) {
            let mut text = String::new();
            entry.read_to_string(&mut text).map_err(|e| e.to_string())?;
            return Ok(text);
        }
    }
    Err(format!("no {wanted} in the archive"))
}

/// Tails an attempt's CloudWatch log streams: each call returns the lines since the last.
#[derive(Debug, Default)]
pub struct LogTail {
    /// Per stream, the token to continue from.
    tokens: Mutex<HashMap<String, String>>,
}

impl LogTail {
    pub async fn new_lines(&self, clients: &Clients, attempt: &str) -> Vec<String> {
        let streams = match clients
            .logs
            .describe_log_streams()
            .log_group_name(LOG_GROUP)
            .log_stream_name_prefix(format!("{attempt}/"))
            .send()
            .await
        {
            Ok(out) => out
                .log_streams()
                .iter()
                .filter_map(|s| s.log_stream_name().map(str::to_string))
                .collect::<Vec<_>>(),
            // No log group or stream yet: the job has not logged anything.
            Err(_) => return Vec::new(),
        };
        let mut lines = Vec::new();
        for stream in streams {
            let token = self
                .tokens
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&stream)
                .cloned();
            let mut request = clients
                .logs
                .get_log_events()
                .log_group_name(LOG_GROUP)
                .log_stream_name(&stream)
                .start_from_head(true);
            if let Some(token) = token {
                request = request.next_token(token);
            }
            let Ok(out) = request.send().await else {
                continue;
            };
            lines.extend(
                out.events()
                    .iter()
                    .filter_map(|e| e.message().map(str::to_string)),
            );
            if let Some(next) = out.next_forward_token() {
                self.tokens
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(stream, next.to_string());
            }
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_lifecycles() {
        assert_eq!(
            lifecycle(Some(&TrainingJobStatus::Completed), None, None),
            Lifecycle::Ready
        );
        assert_eq!(
            lifecycle(Some(&TrainingJobStatus::InProgress), Some("Training"), None),
            Lifecycle::InProgress("Training".into())
        );
        assert_eq!(
            lifecycle(
                Some(&TrainingJobStatus::Failed),
                None,
                Some("AlgorithmError: no label")
            ),
            Lifecycle::Failed("AlgorithmError: no label".into())
        );
        assert!(matches!(
            lifecycle(Some(&TrainingJobStatus::Stopped), None, None),
            Lifecycle::Failed(reason) if reason.contains("stopped")
        ));
    }

    #[test]
    fn data_hashes_travel_in_a_tag_without_commas() {
        let field = "train=0a1b,validation=2c3d";
        let tag = data_tag_value(field);
        assert!(!tag.contains(','));
        assert_eq!(data_field(&tag), field);
    }

    #[test]
    fn metric_definitions_match_model_image_lines() {
        let definitions = metric_definitions();
        let (name, regex) = &definitions[0];
        assert_eq!(name, "validation:pr_auc");
        assert_eq!(regex, "validation:pr_auc=([-+0-9.eE]+)");
        assert!(definitions.iter().any(|(n, _)| n == "validation:mcc"));
    }

    #[test]
    fn a_file_is_found_at_the_archive_root() {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        let body = br#"{"validation": {}}"#;
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "./metrics.json", &body[..])
            .unwrap();
        let bytes = builder.into_inner().unwrap().finish().unwrap();
        assert_eq!(
            file_in_tar_gz(&bytes, "metrics.json").unwrap(),
            r#"{"validation": {}}"#
        );
        assert!(file_in_tar_gz(&bytes, "model.txt").is_err());
    }
}
