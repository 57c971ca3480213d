//! SageMaker training jobs: `<name>-<hash12>-<attempt>`, the image by digest, the uploaded channels,
//! the hyperparameters, MetricDefinitions matching `model-image`'s metric lines, network isolation,
//! the stopping condition and instance settings from the job's settings.
//!
//! Training jobs can be neither deleted nor renamed, so the latest attempt of the base name is the
//! job: Completed is reused, InProgress re-attached to, Failed or Stopped reported with its reason,
//! and the next `up` makes attempt `n + 1`. The inputs are in the base name's hash; observation
//! also reads them back (image, hyperparameters, instances, volume, maximum runtime; the full data
//! hashes from one tag per channel, `orchestrate:data:<channel>`, since the channel URIs hold only
//! 12 hex digits) so a job edited by other means shows as drift. A completed attempt makes its name
//! and model artifact known to the model ([`TrainingJobOutputs`]).
//!
//! Starting an attempt is `Pending` (the executor polls `observe` until it completes), or `NotYet`
//! while SageMaker cannot assume the execution role IAM is still propagating. Only a running attempt
//! is discovered as the deployment's (listed by the deployment's name prefix, confirmed by its
//! tag), and deleting it stops it: ended attempts are records that cost nothing.
//!
//! While a job runs, its log is tailed from CloudWatch Logs (`/aws/sagemaker/TrainingJobs`, streams
//! `<job>/…`); its validation metrics are read from `metrics.json` in the model artifact.

use std::collections::HashMap;
use std::io::Read as _;
use std::sync::Mutex;

use aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobOutput;
use aws_sdk_sagemaker::types::{
    AlgorithmSpecification, Channel as SageMakerChannel, DataSource, MetricDefinition, OutputDataConfig,
    ResourceConfig, S3DataDistribution, S3DataSource, S3DataType, SortBy, SortOrder, StoppingCondition,
    TrainingInputMode, TrainingInstanceType, TrainingJobStatus,
};
use engine::desired::DesiredState;
use engine::kind::TrainingJobSettings;
use engine::names::{attempt_name, attempt_of};
use engine::resource::{Change, Lifecycle, Outputs, TrainingJobOutputs};
use engine::target::{Applied, Deleted, Found, KindOnTarget, TargetError, Upstream};
use engine::training_output::{Metric, MetricValues};
use engine::values::{Channel, DataHash, DataHashes, Hyperparameters, Seconds, Tags};
use engine::{Kind, Observed};

use crate::clients::Clients;
use crate::errors::{AwsError, OrAbsent};
use crate::sagemaker::{
    self, DATA_TAG_PREFIX, Listing, image_ref, image_uri, model_artifact, output_path, role_arn, sdk_count,
};
use crate::target::AwsTarget;

const KIND: Kind = Kind::TrainingJob;

/// The tag holding one channel's full sha256: `orchestrate:data:<channel>`.
pub fn data_tag(channel: Channel) -> String {
    format!("{DATA_TAG_PREFIX}{channel}")
}

/// The data tags of a job that reads `data`: one per channel.
pub fn data_tags(data: &DataHashes) -> Vec<(String, String)> {
    data.0
        .iter()
        .map(|(channel, hash)| (data_tag(*channel), hash.to_string()))
        .collect()
}

/// The data hashes a job's tags record (a channel without its tag is not there).
pub fn data_hashes(tags: &Tags) -> DataHashes {
    DataHashes(
        Channel::ALL
            .into_iter()
            .filter_map(|channel| Some((channel, DataHash(tags.get(&data_tag(channel))?.to_string()))))
            .collect(),
    )
}

/// Where SageMaker writes training logs.
pub const LOG_GROUP: &str = "/aws/sagemaker/TrainingJobs";
/// The metrics `model-image train` prints as `validation:<name>=<value>` that SageMaker captures
/// (shown in its console and usable as a tuning objective).
pub const METRICS: [Metric; 6] = [
    Metric::PrAuc,
    Metric::RocAuc,
    Metric::Mcc,
    Metric::F1,
    Metric::BalancedAccuracy,
    Metric::LogLoss,
];

/// MetricDefinitions for SageMaker: one per validation metric, matching `model-image`'s lines.
pub fn metric_definitions() -> Vec<(String, String)> {
    METRICS
        .iter()
        .map(|m| (format!("validation:{m}"), format!("validation:{m}=([-+0-9.eE]+)")))
        .collect()
}

/// A training job attempt as SageMaker describes it, reduced to what the engine compares.
#[derive(Debug, Clone, PartialEq)]
pub struct JobState {
    pub name: String,
    pub lifecycle: Lifecycle,
    pub settings: TrainingJobSettings,
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

fn lifecycle_of(job: &DescribeTrainingJobOutput) -> Lifecycle {
    lifecycle(
        job.training_job_status(),
        job.secondary_status().map(|s| s.as_str()),
        job.failure_reason(),
    )
}

/// The settings a described job runs with; its data hashes come from its tags. A volume or
/// runtime SageMaker does not report reads as 0, which differs from any wanted one.
pub fn settings_of(job: &DescribeTrainingJobOutput, tags: &Tags) -> Result<TrainingJobSettings, String> {
    let uri = job
        .algorithm_specification()
        .and_then(|a| a.training_image())
        .unwrap_or_default();
    let image = image_ref(uri).ok_or_else(|| format!("its image `{uri}` is not referenced by digest"))?;
    let resources = job.resource_config().ok_or("it reports no resource config")?;
    let instances = sagemaker::instances(
        resources.instance_count(),
        resources.instance_type().map(|t| t.as_str()),
    )?;
    let hyperparameters = job
        .hyper_parameters()
        .map(|h| h.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let max_runtime = job
        .stopping_condition()
        .and_then(|s| s.max_runtime_in_seconds())
        .and_then(|s| u64::try_from(s).ok())
        .unwrap_or_default();
    Ok(TrainingJobSettings {
        image,
        data: data_hashes(tags),
        hyperparameters: Hyperparameters(hyperparameters),
        instances,
        volume_size_gb: resources
            .volume_size_in_gb()
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or_default(),
        max_runtime: Seconds(max_runtime),
    })
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

async fn describe_raw(
    clients: &Clients,
    attempt: &str,
) -> Result<Option<DescribeTrainingJobOutput>, AwsError> {
    clients
        .sagemaker
        .describe_training_job()
        .training_job_name(attempt)
        .send()
        .await
        .map_err(|e| AwsError::sdk("describe", KIND, attempt, e))
        .or_absent()
}

/// Describes one attempt, with the settings it runs with.
pub async fn describe(clients: &Clients, attempt: &str) -> Result<Option<JobState>, AwsError> {
    let Some(job) = describe_raw(clients, attempt).await? else {
        return Ok(None);
    };
    let tags = match job.training_job_arn() {
        Some(arn) => sagemaker::read_tags(clients, KIND, attempt, arn).await?,
        None => Tags::default(),
    };
    let settings = settings_of(&job, &tags).map_err(|e| AwsError::other("read", KIND, attempt, e))?;
    Ok(Some(JobState {
        name: attempt.to_string(),
        lifecycle: lifecycle_of(&job),
        settings,
        model_artifact: job
            .model_artifacts()
            .and_then(|a| a.s3_model_artifacts().map(str::to_string)),
    }))
}

/// The latest attempt of the desired job (`base`); a completed one with its outputs (the artifact
/// SageMaker reports, else where the job's output path puts it in `bucket`).
pub async fn observe(clients: &Clients, bucket: &str, base: &str) -> Result<Observed, AwsError> {
    let Some((_, attempt)) = latest_attempt(clients, base).await? else {
        return Ok(Observed::Absent);
    };
    let Some(job) = describe(clients, &attempt).await? else {
        return Ok(Observed::Absent);
    };
    let ready = job.lifecycle == Lifecycle::Ready;
    let observed = Observed::present(&job.name, job.settings, job.lifecycle);
    if !ready {
        return Ok(observed);
    }
    let artifact = job
        .model_artifact
        .unwrap_or_else(|| model_artifact(bucket, &job.name));
    Ok(observed.with_outputs(Outputs::TrainingJob(TrainingJobOutputs {
        attempt: job.name,
        model_artifact: artifact,
    })))
}

/// What a job needs from the rest of the deployment.
#[derive(Debug, Clone)]
pub struct JobContext<'a> {
    pub account: &'a str,
    pub bucket: &'a str,
    pub role: &'a str,
    /// The deployment's tags (the data tags are added to them).
    pub tags: &'a Tags,
}

/// Starts the next attempt of the job `base`, reading the channels `state` uploads: `Pending`, or
/// `NotYet` while SageMaker cannot assume the execution role (nothing was started then).
pub async fn apply(
    clients: &Clients,
    base: &str,
    settings: &TrainingJobSettings,
    state: &DesiredState,
    cx: &JobContext<'_>,
) -> Result<Applied, AwsError> {
    let next = latest_attempt(clients, base).await?.map_or(1, |(n, _)| n + 1);
    let name = attempt_name(base, next);
    let region = clients.region().to_string();

    let mut algorithm = AlgorithmSpecification::builder()
        .training_image(image_uri(cx.account, &region, &settings.image))
        .training_input_mode(TrainingInputMode::File);
    for (metric, regex) in metric_definitions() {
        algorithm =
            algorithm.metric_definitions(MetricDefinition::builder().name(metric).regex(regex).build());
    }
    let channels: Vec<SageMakerChannel> = state
        .training_data()
        .map(|(prefix, data)| {
            let source = S3DataSource::builder()
                .s3_data_type(S3DataType::S3Prefix)
                .s3_uri(format!("s3://{}/{prefix}", cx.bucket))
                .s3_data_distribution_type(S3DataDistribution::FullyReplicated)
                .build();
            SageMakerChannel::builder()
                .channel_name(data.channel.as_str())
                .data_source(DataSource::builder().s3_data_source(source).build())
                .build()
        })
        .collect();
    let resources = ResourceConfig::builder()
        .instance_type(TrainingInstanceType::from(
            settings.instances.instance_type.as_str(),
        ))
        .instance_count(sdk_count(settings.instances.count))
        .volume_size_in_gb(sdk_count(settings.volume_size_gb))
        .build();
    let hyperparameters: HashMap<String, String> = settings
        .hyperparameters
        .0
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let data_tags = data_tags(&settings.data)
        .into_iter()
        .map(|(k, v)| aws_sdk_sagemaker::types::Tag::builder().key(k).value(v).build());
    let tags: Vec<_> = sagemaker::sagemaker_tags(cx.tags)
        .into_iter()
        .chain(data_tags)
        .collect();
    let algorithm = algorithm.build();
    let output = OutputDataConfig::builder()
        .s3_output_path(output_path(cx.bucket))
        .build();
    let stopping = StoppingCondition::builder()
        .max_runtime_in_seconds(i32::try_from(settings.max_runtime.0).unwrap_or(i32::MAX))
        .build();
    let role = role_arn(cx.account, &region, cx.role);
    let created = clients
        .sagemaker
        .create_training_job()
        .training_job_name(&name)
        .algorithm_specification(algorithm)
        .role_arn(&role)
        .set_input_data_config(Some(channels))
        .output_data_config(output)
        .resource_config(resources)
        .stopping_condition(stopping)
        .set_hyper_parameters(Some(hyperparameters))
        .enable_network_isolation(true)
        .set_tags(Some(tags))
        .send()
        .await;
    if let Err(e) = created {
        let error = AwsError::sdk("create", KIND, &name, e);
        if sagemaker::already_exists(&error) {
            tracing::info!(
                job = name,
                "the training job exists: this run's own create, its answer lost"
            );
            return Ok(Applied::Pending);
        }
        return sagemaker::not_yet_while_role_propagates(error);
    }
    tracing::info!(job = name, "started training job");
    Ok(Applied::Pending)
}

/// Stops an attempt that is still running (training jobs cannot be deleted).
pub async fn stop(clients: &Clients, attempt: &str) -> Result<(), AwsError> {
    let Some(job) = describe_raw(clients, attempt).await? else {
        return Ok(());
    };
    if !matches!(lifecycle_of(&job), Lifecycle::InProgress(_)) {
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
pub async fn metrics(clients: &Clients, job: &TrainingJobOutputs) -> Result<MetricValues, AwsError> {
    let attempt = job.attempt.as_str();
    let url = &job.model_artifact;
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
    // The artifact is in the deployment's bucket, where the job's output path points.
    let object = clients
        .s3
        .get_object()
        .bucket(artifact_bucket)
        .key(key)
        .expected_bucket_owner(clients.account().await?)
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

/// The training job on AWS: its attempts in SageMaker.
#[derive(Debug)]
pub struct SageMakerTrainingJob;

impl KindOnTarget<AwsTarget> for SageMakerTrainingJob {
    type Settings = TrainingJobSettings;

    async fn observe(
        target: &AwsTarget,
        base: &str,
        _: &TrainingJobSettings,
    ) -> Result<Observed, TargetError> {
        Ok(observe(&target.clients, &target.bucket(), base).await?)
    }

    async fn apply(
        target: &AwsTarget,
        base: &str,
        settings: &TrainingJobSettings,
        _: &Change,
        upstream: Upstream<'_>,
    ) -> Result<Applied, TargetError> {
        let state = upstream.state;
        let bucket = target.bucket();
        let role = target.role_in(state);
        let tags = engine::desired::tags(&target.spec);
        let cx = JobContext {
            account: &target.account,
            bucket: &bucket,
            role: &role,
            tags: &tags,
        };
        Ok(apply(&target.clients, base, settings, state, &cx).await?)
    }

    /// Stops the attempt (`attempt`, the name discovery reports) if it still runs.
    async fn delete(target: &AwsTarget, attempt: &str) -> Result<Deleted, TargetError> {
        stop(&target.clients, attempt).await?;
        Ok(Deleted::Gone)
    }

    /// The deployment's running attempts.
    async fn owned(target: &AwsTarget) -> Result<Vec<Found>, TargetError> {
        let running = sagemaker::owned_names(target, Listing::RunningTrainingJobs).await?;
        Ok(running
            .into_iter()
            .map(|attempt| Found::new(KIND, attempt))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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
    fn data_hashes_travel_as_one_tag_per_channel() {
        let train = "0a1b".repeat(16);
        let data = DataHashes(BTreeMap::from([
            (Channel::Train, DataHash(train.clone())),
            (Channel::Validation, DataHash("2c3d".into())),
        ]));
        let tags = data_tags(&data);
        assert_eq!(
            tags,
            [
                ("orchestrate:data:train".to_string(), train),
                ("orchestrate:data:validation".to_string(), "2c3d".to_string())
            ]
        );
        let mut read: Tags = tags.into_iter().collect();
        read.0.insert("orchestrate:deployment".into(), "iot".into());
        assert_eq!(data_hashes(&read), data);
        read.0.remove("orchestrate:data:validation");
        assert_eq!(data_hashes(&read).0.len(), 1, "only the tagged channel");
        assert_eq!(data_hashes(&Tags::default()), DataHashes::default());
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
