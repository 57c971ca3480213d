//! moto's SageMaker as the launcher emulates it with a real `model-image`, checked through the AWS SDKs:
//! training jobs that train, fail, stop and time out; models, configs and endpoints with duplicate
//! names rejected; an endpoint that serves, answers `InvokeEndpoint` (and `ModelError`), rolls forward,
//! rolls back when a fault is injected and is deleted; no process left behind; Application Auto Scaling
//! for a variant. Skipped (with a note) outside CI when moto or the model-image binary is missing.
//!
//! Polls have deadlines and never assert on elapsed time: the emulation holds every transitional status
//! for at least 0.5 s, so a poller sees it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sagemaker::error::{ProvideErrorMetadata as _, SdkError};
use aws_sdk_sagemaker::operation::create_training_job::CreateTrainingJobError;
use aws_sdk_sagemaker::operation::describe_endpoint::DescribeEndpointOutput;
use aws_sdk_sagemaker::operation::describe_training_job::DescribeTrainingJobOutput;
use aws_sdk_sagemaker::types::{
    AlgorithmSpecification, Channel, ContainerDefinition, DataSource, MetricDefinition, OutputDataConfig,
    ProductionVariant, ProductionVariantInstanceType, ResourceConfig, S3DataSource, S3DataType,
    StoppingCondition, Tag, TrainingInputMode, TrainingInstanceType,
};
use aws_sdk_sagemakerruntime::operation::invoke_endpoint::InvokeEndpointError;
use aws_sdk_sagemakerruntime::primitives::Blob;
use testbed::{Fault, Moto, mutating};

const REGION: &str = "eu-west-1";
const ACCOUNT: &str = "123456789012";
const BUCKET: &str = "testbed-sagemaker";
const ROLE: &str = "arn:aws:iam::123456789012:role/testbed-sagemaker";
const IMAGE: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/orchestrate@sha256:\
                     0000000000000000000000000000000000000000000000000000000000000000";
const TRAIN_PREFIX: &str = "data/train/";
/// Small and fast: a few boosting rounds, one thread.
const QUICK: &[(&str, &str)] = &[
    ("label", "Label"),
    ("positive_class", "Anomaly"),
    ("max_rounds", "20"),
    ("threads", "1"),
    ("bootstrap_resamples", "50"),
];
/// Runs until stopped: a tiny learning rate, no early stopping, a huge round cap.
const ENDLESS: &[(&str, &str)] = &[
    ("label", "Label"),
    ("max_rounds", "1000000"),
    ("early_stopping_rounds", "1000000"),
    ("learning_rate", "0.001"),
    ("threads", "1"),
];
const DEADLINE: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(50);

/// moto with SageMaker emulated, SDK clients for it, and a bucket holding demo training data.
struct Bed {
    moto: Moto,
    sagemaker: aws_sdk_sagemaker::Client,
    runtime: aws_sdk_sagemakerruntime::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    s3: aws_sdk_s3::Client,
    /// The demo CSV's first data row, for invocations.
    row: String,
    _dir: tempfile::TempDir,
}

impl Bed {
    /// None when a tool is missing outside CI (`testbed::require`'s rule).
    async fn start(rows: u32) -> Option<Bed> {
        let model_image = testbed::model_image()?;
        let moto = Moto::start_sagemaker(&model_image).await?;
        let config = moto.sdk_config(REGION).await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        );
        s3.create_bucket()
            .bucket(BUCKET)
            .create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let csv = demo_data(&model_image, dir.path(), rows);
        let row = std::fs::read_to_string(&csv)
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .to_string();
        s3.put_object()
            .bucket(BUCKET)
            .key(format!("{TRAIN_PREFIX}demo.csv"))
            .body(ByteStream::from_path(&csv).await.unwrap())
            .send()
            .await
            .unwrap();
        Some(Bed {
            sagemaker: aws_sdk_sagemaker::Client::new(&config),
            runtime: aws_sdk_sagemakerruntime::Client::new(&config),
            logs: aws_sdk_cloudwatchlogs::Client::new(&config),
            s3,
            moto,
            row,
            _dir: dir,
        })
    }

    async fn create_training_job(
        &self,
        name: &str,
        hyperparameters: &[(&str, &str)],
        train_prefix: &str,
        max_runtime_seconds: i32,
    ) -> Result<String, SdkError<CreateTrainingJobError>> {
        let metric = |name: &str, regex: &str| MetricDefinition::builder().name(name).regex(regex).build();
        let channel = Channel::builder()
            .channel_name("train")
            .data_source(
                DataSource::builder()
                    .s3_data_source(
                        S3DataSource::builder()
                            .s3_data_type(S3DataType::S3Prefix)
                            .s3_uri(format!("s3://{BUCKET}/{train_prefix}"))
                            .build(),
                    )
                    .build(),
            )
            .build();
        let mut request = self
            .sagemaker
            .create_training_job()
            .training_job_name(name)
            .algorithm_specification(
                AlgorithmSpecification::builder()
                    .training_image(IMAGE)
                    .training_input_mode(TrainingInputMode::File)
                    .metric_definitions(metric("validation:pr_auc", r"validation:pr_auc=([0-9.]+)"))
                    .metric_definitions(metric("train:rounds", r"train:rounds=([0-9]+)"))
                    .build(),
            )
            .role_arn(ROLE)
            .input_data_config(channel)
            // A trailing slash: the artifacts' path has none doubled.
            .output_data_config(
                OutputDataConfig::builder()
                    .s3_output_path(format!("s3://{BUCKET}/output/"))
                    .build(),
            )
            .resource_config(
                ResourceConfig::builder()
                    .instance_type(TrainingInstanceType::MlM5Large)
                    .instance_count(1)
                    .volume_size_in_gb(1)
                    .build(),
            )
            .stopping_condition(
                StoppingCondition::builder()
                    .max_runtime_in_seconds(max_runtime_seconds)
                    .build(),
            )
            .tags(Tag::builder().key("deployment").value("testbed").build());
        for (key, value) in hyperparameters {
            request = request.hyper_parameters(*key, *value);
        }
        Ok(request
            .send()
            .await?
            .training_job_arn()
            .unwrap_or_default()
            .to_string())
    }

    /// Polls DescribeTrainingJob until the job has ended; the job and every distinct
    /// `TrainingJobStatus/SecondaryStatus` seen, in order.
    async fn until_training_ends(&self, name: &str) -> (DescribeTrainingJobOutput, Vec<String>) {
        let deadline = Instant::now() + DEADLINE;
        let mut seen: Vec<String> = Vec::new();
        loop {
            let job = self
                .sagemaker
                .describe_training_job()
                .training_job_name(name)
                .send()
                .await
                .unwrap();
            let status = job.training_job_status().unwrap().as_str().to_string();
            let state = format!("{status}/{}", job.secondary_status().unwrap().as_str());
            if seen.last() != Some(&state) {
                seen.push(state);
            }
            if matches!(status.as_str(), "Completed" | "Failed" | "Stopped") {
                return (job, seen);
            }
            assert!(Instant::now() < deadline, "training job {name} still {seen:?}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls DescribeEndpoint until its status is one of `until` (or, with "gone", it no longer
    /// exists); the last description and every distinct status seen, in order.
    async fn until_endpoint(
        &self,
        name: &str,
        until: &[&str],
    ) -> (Option<DescribeEndpointOutput>, Vec<String>) {
        let deadline = Instant::now() + DEADLINE;
        let mut seen: Vec<String> = Vec::new();
        loop {
            let (endpoint, status) = match self
                .sagemaker
                .describe_endpoint()
                .endpoint_name(name)
                .send()
                .await
            {
                Ok(endpoint) => {
                    let status = endpoint.endpoint_status().unwrap().as_str().to_string();
                    (Some(endpoint), status)
                }
                Err(error) => {
                    let error = error.into_service_error();
                    assert_eq!(error.code(), Some("ValidationException"), "{error:?}");
                    (None, "gone".to_string())
                }
            };
            if seen.last() != Some(&status) {
                seen.push(status.clone());
            }
            if until.contains(&status.as_str()) {
                return (endpoint, seen);
            }
            assert!(Instant::now() < deadline, "endpoint {name} still {seen:?}");
            tokio::time::sleep(POLL).await;
        }
    }

    async fn create_model(&self, name: &str, model_data_url: &str) -> Result<(), String> {
        self.sagemaker
            .create_model()
            .model_name(name)
            .execution_role_arn(ROLE)
            .primary_container(
                ContainerDefinition::builder()
                    .image(IMAGE)
                    .model_data_url(model_data_url)
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| error_text(e.into_service_error()))
    }

    async fn create_endpoint_config(&self, name: &str, model: &str) -> Result<(), String> {
        self.sagemaker
            .create_endpoint_config()
            .endpoint_config_name(name)
            .production_variants(
                ProductionVariant::builder()
                    .variant_name("AllTraffic")
                    .model_name(model)
                    .initial_instance_count(1)
                    .instance_type(ProductionVariantInstanceType::MlM5Large)
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| error_text(e.into_service_error()))
    }

    async fn create_endpoint(&self, name: &str, config: &str) -> Result<(), String> {
        self.sagemaker
            .create_endpoint()
            .endpoint_name(name)
            .endpoint_config_name(config)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| error_text(e.into_service_error()))
    }

    async fn update_endpoint(&self, name: &str, config: &str) -> Result<(), String> {
        self.sagemaker
            .update_endpoint()
            .endpoint_name(name)
            .endpoint_config_name(config)
            .retain_all_variant_properties(true)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| error_text(e.into_service_error()))
    }

    async fn invoke(&self, endpoint: &str, body: &str) -> Result<(String, String), InvokeEndpointError> {
        let answer = self
            .runtime
            .invoke_endpoint()
            .endpoint_name(endpoint)
            .content_type("text/csv")
            .accept("application/json")
            .body(Blob::new(body.as_bytes().to_vec()))
            .send()
            .await
            .map_err(|e| e.into_service_error())?;
        let body = String::from_utf8(answer.body().unwrap().as_ref().to_vec()).unwrap();
        Ok((answer.content_type().unwrap_or_default().to_string(), body))
    }

    async fn s3_bytes(&self, uri: &str) -> Vec<u8> {
        let (bucket, key) = uri.strip_prefix("s3://").unwrap().split_once('/').unwrap();
        let object = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{uri}: {:?}", e.into_service_error()));
        object.body.collect().await.unwrap().into_bytes().to_vec()
    }

    /// Every message of the log streams of `group` whose names start with `prefix`.
    async fn log_lines(&self, group: &str, prefix: &str) -> (Vec<String>, Vec<String>) {
        let streams = self
            .logs
            .describe_log_streams()
            .log_group_name(group)
            .log_stream_name_prefix(prefix)
            .send()
            .await
            .unwrap();
        let names: Vec<String> = streams
            .log_streams()
            .iter()
            .filter_map(|s| s.log_stream_name().map(str::to_string))
            .collect();
        let mut lines = Vec::new();
        for name in &names {
            let events = self
                .logs
                .get_log_events()
                .log_group_name(group)
                .log_stream_name(name)
                .start_from_head(true)
                .send()
                .await
                .unwrap();
            lines.extend(
                events
                    .events()
                    .iter()
                    .filter_map(|e| e.message().map(str::to_string)),
            );
        }
        (names, lines)
    }

    /// Trains a quick model under `job` and returns its model.tar.gz URI.
    async fn trained_model(&self, job: &str) -> String {
        self.create_training_job(job, QUICK, TRAIN_PREFIX, 3600)
            .await
            .unwrap();
        let (described, seen) = self.until_training_ends(job).await;
        assert_eq!(seen.last().unwrap(), "Completed/Completed", "{described:?}");
        described
            .model_artifacts()
            .and_then(|a| a.s3_model_artifacts())
            .unwrap()
            .to_string()
    }
}

fn demo_data(model_image: &Path, dir: &Path, rows: u32) -> PathBuf {
    let csv = dir.join("demo.csv");
    let output = std::process::Command::new(model_image)
        .args(["demo-data", "--rows", &rows.to_string(), "--out"])
        .arg(&csv)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "model-image demo-data: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    csv
}

fn error_text(error: impl aws_sdk_sagemaker::error::ProvideErrorMetadata) -> String {
    format!(
        "{}: {}",
        error.code().unwrap_or("?"),
        error.message().unwrap_or_default()
    )
}

fn tar_gz_entries(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read as _;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut entries: Vec<(String, Vec<u8>)> = archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let mut contents = Vec::new();
            entry.read_to_end(&mut contents).unwrap();
            (path, contents)
        })
        .collect();
    entries.sort();
    entries
}

/// Whether process `pid` exists and is not a zombie.
fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

async fn until_not_alive(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while process_alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
    true
}

/// `seen` holds `expected` in this order (other entries may come between).
fn in_order(seen: &[String], expected: &[&str]) -> bool {
    let mut rest = seen.iter();
    expected.iter().all(|want| rest.any(|have| have == want))
}

#[tokio::test]
async fn a_training_job_trains_uploads_its_model_and_logs() {
    let Some(bed) = Bed::start(800).await else { return };
    let job = "train-ok";
    let arn = bed
        .create_training_job(job, QUICK, TRAIN_PREFIX, 3600)
        .await
        .unwrap();
    assert_eq!(
        arn,
        format!("arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{job}")
    );
    let duplicate = bed
        .create_training_job(job, QUICK, TRAIN_PREFIX, 3600)
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(duplicate.code(), Some("ResourceInUse"), "{duplicate:?}");
    assert_eq!(
        duplicate.message(),
        Some(
            format!(
                "Training job names must be unique within an AWS account and region, and a training job \
                 with this name already exists ({arn})"
            )
            .as_str()
        )
    );

    let (described, seen) = bed.until_training_ends(job).await;
    assert!(
        in_order(
            &seen,
            &[
                "InProgress/Starting",
                "InProgress/Training",
                "Completed/Completed"
            ]
        ),
        "{seen:?}"
    );
    let transitions: Vec<&str> = described
        .secondary_status_transitions()
        .iter()
        .map(|t| t.status().unwrap().as_str())
        .collect();
    assert_eq!(
        transitions,
        ["Starting", "Downloading", "Training", "Uploading", "Completed"]
    );
    assert!(described.training_start_time().is_some() && described.training_end_time().is_some());
    assert_eq!(described.failure_reason(), None);
    let model_uri = described.model_artifacts().unwrap().s3_model_artifacts().unwrap();
    assert_eq!(
        model_uri,
        format!("s3://{BUCKET}/output/{job}/output/model.tar.gz")
    );
    let metrics: Vec<(&str, f64)> = described
        .final_metric_data_list()
        .iter()
        .map(|m| (m.metric_name().unwrap(), m.value().unwrap() as f64))
        .collect();
    let pr_auc = metrics.iter().find(|(name, _)| *name == "validation:pr_auc");
    assert!(
        pr_auc.is_some_and(|(_, value)| *value > 0.5 && *value <= 1.0),
        "{metrics:?}"
    );
    assert!(
        metrics.contains(&("train:rounds", 20.0)),
        "the request's MetricDefinitions are applied: {metrics:?}"
    );

    let model = tar_gz_entries(&bed.s3_bytes(model_uri).await);
    let names: Vec<&str> = model.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        ["baseline.json", "metrics.json", "model.json", "model.txt"]
    );
    let metrics_json: serde_json::Value = serde_json::from_slice(&model[1].1).unwrap();
    assert!(metrics_json.is_object(), "{metrics_json}");
    let output = tar_gz_entries(
        &bed.s3_bytes(&format!("s3://{BUCKET}/output/{job}/output/output.tar.gz"))
            .await,
    );
    assert!(
        output.iter().any(|(name, _)| name == "metrics.json"),
        "{output:?}"
    );

    let (streams, lines) = bed
        .log_lines("/aws/sagemaker/TrainingJobs", &format!("{job}/algo-1-"))
        .await;
    assert_eq!(streams.len(), 1, "{streams:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("validation:pr_auc=")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("model-image train")),
        "stderr too: {lines:?}"
    );

    let tags = bed.sagemaker.list_tags().resource_arn(&arn).send().await.unwrap();
    assert_eq!(tags.tags()[0].key(), Some("deployment"));
    let processes = bed.moto.training_jobs().await;
    assert!(
        processes
            .iter()
            .any(|p| p.name == job && p.status == "Completed" && !p.running)
    );
}

#[tokio::test]
async fn failing_training_jobs_report_their_reason() {
    let Some(bed) = Bed::start(600).await else { return };
    bed.moto
        .inject_fault(Fault::training_fails("train-injected-"))
        .await;
    let bad_label = [("label", "NoSuchColumn"), ("threads", "1")];
    bed.create_training_job("train-bad-label", &bad_label, TRAIN_PREFIX, 3600)
        .await
        .unwrap();
    bed.create_training_job("train-no-data", QUICK, "nothing/here/", 3600)
        .await
        .unwrap();
    bed.create_training_job("train-injected-1", QUICK, TRAIN_PREFIX, 3600)
        .await
        .unwrap();

    let (described, seen) = bed.until_training_ends("train-bad-label").await;
    assert!(
        in_order(&seen, &["InProgress/Training", "Failed/Failed"]),
        "{seen:?}"
    );
    let reason = described.failure_reason().unwrap();
    assert!(
        reason.starts_with("AlgorithmError: ") && reason.contains("NoSuchColumn"),
        "{reason}"
    );
    // A failed job has no model (moto's serializer fills the required member with "").
    assert_eq!(
        described
            .model_artifacts()
            .and_then(|a| a.s3_model_artifacts())
            .unwrap_or_default(),
        "",
        "{described:?}"
    );
    let (_, lines) = bed
        .log_lines("/aws/sagemaker/TrainingJobs", "train-bad-label/")
        .await;
    assert!(lines.iter().any(|l| l.contains("NoSuchColumn")), "{lines:?}");

    let (described, _) = bed.until_training_ends("train-no-data").await;
    let reason = described.failure_reason().unwrap();
    assert!(
        reason.starts_with(&format!(
            "ClientError: No S3 objects found under S3 URL \"s3://{BUCKET}/nothing/here/\""
        )),
        "{reason}"
    );

    let (described, _) = bed.until_training_ends("train-injected-1").await;
    assert_eq!(
        described.failure_reason(),
        Some("AlgorithmError: injected by the testbed")
    );
    // The fault is consumed: the next attempt trains.
    bed.create_training_job("train-injected-2", QUICK, TRAIN_PREFIX, 3600)
        .await
        .unwrap();
    let (_, seen) = bed.until_training_ends("train-injected-2").await;
    assert_eq!(seen.last().unwrap(), "Completed/Completed");
}

#[tokio::test]
async fn long_training_jobs_stop_on_request_at_their_max_runtime_and_with_moto() {
    let Some(bed) = Bed::start(1500).await else { return };
    for (job, max_runtime) in [
        ("long-stopped", 3600),
        ("long-timeout", 3),
        ("long-left-running", 3600),
    ] {
        bed.create_training_job(job, ENDLESS, TRAIN_PREFIX, max_runtime)
            .await
            .unwrap();
    }
    // Until both 3600 s jobs' processes run.
    let deadline = Instant::now() + DEADLINE;
    let pids = loop {
        let running: Vec<(String, u32)> = bed
            .moto
            .training_jobs()
            .await
            .into_iter()
            .filter(|p| p.running && p.name != "long-timeout")
            .map(|p| (p.name, p.pid.unwrap()))
            .collect();
        if running.len() == 2 {
            break running;
        }
        assert!(Instant::now() < deadline, "{running:?}");
        tokio::time::sleep(POLL).await;
    };
    let pid = |name: &str| pids.iter().find(|(n, _)| n == name).unwrap().1;

    bed.sagemaker
        .stop_training_job()
        .training_job_name("long-stopped")
        .send()
        .await
        .unwrap();
    let (described, seen) = bed.until_training_ends("long-stopped").await;
    assert!(
        in_order(&seen, &["Stopping/Stopping", "Stopped/Stopped"]),
        "{seen:?}"
    );
    assert!(described.training_end_time().is_some());
    assert!(!process_alive(pid("long-stopped")), "the train process is killed");
    let again = bed
        .sagemaker
        .stop_training_job()
        .training_job_name("long-stopped")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(again.code(), Some("ValidationException"), "{again:?}");
    let missing = bed
        .sagemaker
        .stop_training_job()
        .training_job_name("no-such-job")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(missing.code(), Some("ResourceNotFound"), "{missing:?}");

    let (_, seen) = bed.until_training_ends("long-timeout").await;
    assert_eq!(seen.last().unwrap(), "Stopped/MaxRuntimeExceeded", "{seen:?}");

    let left_running = pid("long-left-running");
    assert!(process_alive(left_running));
    drop(bed);
    assert!(
        until_not_alive(left_running).await,
        "stopping moto stops its training processes"
    );
}

#[tokio::test]
async fn an_endpoint_serves_rolls_forward_rolls_back_and_is_deleted() {
    let Some(bed) = Bed::start(800).await else { return };
    let model_uri = bed.trained_model("endpoint-model").await;

    bed.create_model("model-a", &model_uri).await.unwrap();
    let duplicate = bed.create_model("model-a", &model_uri).await.unwrap_err();
    assert_eq!(
        duplicate,
        format!(
            "ValidationException: Cannot create already existing model \
             \"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/model-a\"."
        )
    );
    for config in ["config-a", "config-b"] {
        bed.create_endpoint_config(config, "model-a").await.unwrap();
    }
    let duplicate = bed
        .create_endpoint_config("config-a", "model-a")
        .await
        .unwrap_err();
    assert_eq!(
        duplicate,
        format!(
            "ValidationException: Cannot create already existing endpoint configuration \
             \"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/config-a\"."
        )
    );

    bed.create_endpoint("ep", "config-a").await.unwrap();
    let duplicate = bed.create_endpoint("ep", "config-b").await.unwrap_err();
    assert_eq!(
        duplicate,
        format!(
            "ValidationException: Cannot create already existing endpoint \
             \"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/ep\"."
        )
    );
    let (endpoint, seen) = bed.until_endpoint("ep", &["InService", "Failed"]).await;
    assert_eq!(seen, ["Creating", "InService"]);
    let endpoint = endpoint.unwrap();
    assert_eq!(endpoint.endpoint_config_name(), Some("config-a"));
    let variant = &endpoint.production_variants()[0];
    assert_eq!(variant.variant_name(), Some("AllTraffic"));
    assert_eq!(
        (variant.current_instance_count(), variant.desired_instance_count()),
        (Some(1), Some(1))
    );
    assert_eq!(variant.deployed_images()[0].specified_image(), Some(IMAGE));
    assert!(endpoint.creation_time().is_some() && endpoint.last_modified_time().is_some());

    // InvokeEndpoint reaches the real model, and reads (no mutating call).
    bed.moto.reset_requests().await;
    let (content_type, body) = bed.invoke("ep", &bed.row).await.unwrap();
    assert_eq!(content_type, "application/json");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        answer["predictions"].as_array().map(Vec::len),
        Some(1),
        "{answer}"
    );
    match bed.invoke("ep", "1,2").await.unwrap_err() {
        InvokeEndpointError::ModelError(error) => {
            assert_eq!(error.original_status_code(), Some(400), "{error:?}");
            assert!(error.original_message().unwrap().contains("fields"), "{error:?}");
            assert!(
                error
                    .message()
                    .unwrap()
                    .starts_with("Received client error (400) from primary"),
                "{error:?}"
            );
            assert_eq!(
                error.log_stream_arn(),
                Some(
                    format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/ep").as_str()
                )
            );
        }
        other => panic!("expected ModelError, got {other:?}"),
    }
    assert!(
        bed.invoke("ep", &bed.row).await.is_ok(),
        "a bad request does not stop the model"
    );
    let requests = bed.moto.requests().await;
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert_eq!(mutating(&requests), Vec::<&testbed::Request>::new());
    match bed.invoke("no-such-endpoint", &bed.row).await.unwrap_err() {
        InvokeEndpointError::ValidationError(error) => assert_eq!(
            error.message(),
            Some(format!("Endpoint no-such-endpoint of account {ACCOUNT} not found.").as_str())
        ),
        other => panic!("expected ValidationError, got {other:?}"),
    }
    let (_, serve_lines) = bed.log_lines("/aws/sagemaker/Endpoints/ep", "AllTraffic/").await;
    assert!(
        !serve_lines.is_empty(),
        "the serve process logs to CloudWatch Logs"
    );

    // Roll forward: the new config's server takes over, the old one stops.
    let first = bed.moto.endpoints().await.remove(0);
    assert_eq!(
        (first.name.as_str(), first.serving_config.as_deref()),
        ("ep", Some("config-a"))
    );
    bed.update_endpoint("ep", "config-b").await.unwrap();
    let (endpoint, seen) = bed.until_endpoint("ep", &["InService", "Failed"]).await;
    assert_eq!(seen, ["Updating", "InService"]);
    let endpoint = endpoint.unwrap();
    assert_eq!(endpoint.endpoint_config_name(), Some("config-b"));
    assert_eq!(endpoint.failure_reason(), None);
    let second = bed.moto.endpoints().await.remove(0);
    assert_eq!(second.serving_config.as_deref(), Some("config-b"));
    assert!(
        until_not_alive(first.pid.unwrap()).await,
        "the old config's server is stopped"
    );
    assert!(bed.invoke("ep", &bed.row).await.is_ok());

    // An injected failure rolls back silently: InService, the old config, a FailureReason.
    bed.moto
        .inject_fault(Fault::endpoint_update_rolls_back("ep"))
        .await;
    bed.update_endpoint("ep", "config-a").await.unwrap();
    let (endpoint, seen) = bed.until_endpoint("ep", &["InService", "Failed"]).await;
    assert_eq!(seen, ["Updating", "RollingBack", "InService"]);
    let endpoint = endpoint.unwrap();
    assert_eq!(endpoint.endpoint_config_name(), Some("config-b"));
    assert!(
        endpoint
            .failure_reason()
            .is_some_and(|r| r.contains("did not pass the ping health check")),
        "{endpoint:?}"
    );
    let third = bed.moto.endpoints().await.remove(0);
    assert_eq!(third.pid, second.pid, "the serving process is untouched");
    assert!(bed.invoke("ep", &bed.row).await.is_ok());

    // One more endpoint, left for moto's exit.
    bed.create_endpoint("ep-kept", "config-a").await.unwrap();
    bed.until_endpoint("ep-kept", &["InService"]).await;

    // Delete: Deleting, the server stops, the endpoint is gone.
    let url = bed.moto.endpoint_url("ep").await.unwrap();
    bed.sagemaker
        .delete_endpoint()
        .endpoint_name("ep")
        .send()
        .await
        .unwrap();
    let (_, seen) = bed.until_endpoint("ep", &["gone"]).await;
    assert_eq!(seen, ["Deleting", "gone"]);
    assert!(
        reqwest::get(format!("{url}/ping")).await.is_err(),
        "the endpoint's serve process no longer answers"
    );
    assert!(matches!(
        bed.invoke("ep", &bed.row).await,
        Err(InvokeEndpointError::ValidationError(_))
    ));

    let kept = bed.moto.endpoints().await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    let kept_pid = kept[0].pid.unwrap();
    drop(bed);
    assert!(
        until_not_alive(kept_pid).await,
        "stopping moto stops its serve processes"
    );
}

#[tokio::test]
async fn endpoint_failures_end_failed_with_a_reason() {
    let Some(bed) = Bed::start(100).await else { return };
    let missing = format!("s3://{BUCKET}/no/model.tar.gz");
    bed.create_model("model-missing", &missing).await.unwrap();
    bed.create_endpoint_config("config-missing", "model-missing")
        .await
        .unwrap();
    bed.moto
        .inject_fault(Fault::endpoint_creation_fails("ep-injected").with_reason("testbed says no"))
        .await;
    bed.create_endpoint("ep-missing", "config-missing").await.unwrap();
    bed.create_endpoint("ep-injected", "config-missing")
        .await
        .unwrap();

    let (endpoint, seen) = bed.until_endpoint("ep-missing", &["InService", "Failed"]).await;
    assert_eq!(seen, ["Creating", "Failed"]);
    let reason = endpoint.unwrap().failure_reason().unwrap().to_string();
    assert!(
        reason.starts_with(&format!(
            "Failed to download model data for container \"container_1\" from URL: \"{missing}\""
        )),
        "{reason}"
    );
    let (endpoint, _) = bed.until_endpoint("ep-injected", &["InService", "Failed"]).await;
    assert_eq!(endpoint.unwrap().failure_reason(), Some("testbed says no"));

    let update = bed
        .update_endpoint("ep-missing", "config-missing")
        .await
        .unwrap_err();
    assert!(
        update.starts_with("ValidationException: Cannot update failed endpoint"),
        "{update}"
    );
    let update = bed
        .update_endpoint("no-such-endpoint", "config-missing")
        .await
        .unwrap_err();
    assert!(
        update.starts_with("ValidationException: Could not find endpoint"),
        "{update}"
    );
    assert!(matches!(
        bed.invoke("ep-missing", "1").await,
        Err(InvokeEndpointError::ValidationError(_))
    ));

    bed.sagemaker
        .delete_endpoint()
        .endpoint_name("ep-missing")
        .send()
        .await
        .unwrap();
    let (_, seen) = bed.until_endpoint("ep-missing", &["gone"]).await;
    assert_eq!(seen.last().unwrap(), "gone");
    // Models and configs still delete as moto does.
    bed.sagemaker
        .delete_endpoint_config()
        .endpoint_config_name("config-missing")
        .send()
        .await
        .unwrap();
    bed.sagemaker
        .delete_model()
        .model_name("model-missing")
        .send()
        .await
        .unwrap();
    bed.create_model("model-missing", &missing).await.unwrap();
}

#[tokio::test]
async fn application_auto_scaling_tracks_a_variant() {
    use aws_sdk_applicationautoscaling::types::{
        MetricType, PolicyType, PredefinedMetricSpecification, ScalableDimension, ServiceNamespace,
        TargetTrackingScalingPolicyConfiguration,
    };
    let Some(moto) = Moto::start().await else { return };
    let scaling = aws_sdk_applicationautoscaling::Client::new(&moto.sdk_config(REGION).await);
    let resource = "endpoint/ep/variant/AllTraffic";
    let dimension = ScalableDimension::SageMakerVariantDesiredInstanceCount;
    let policy = TargetTrackingScalingPolicyConfiguration::builder()
        .target_value(70.0)
        .predefined_metric_specification(
            PredefinedMetricSpecification::builder()
                .predefined_metric_type(MetricType::SageMakerVariantInvocationsPerInstance)
                .build()
                .unwrap(),
        )
        .scale_in_cooldown(300)
        .scale_out_cooldown(60)
        .build()
        .unwrap();
    let put_policy = || {
        scaling
            .put_scaling_policy()
            .policy_name("invocations")
            .service_namespace(ServiceNamespace::Sagemaker)
            .resource_id(resource)
            .scalable_dimension(dimension.clone())
            .policy_type(PolicyType::TargetTrackingScaling)
            .target_tracking_scaling_policy_configuration(policy.clone())
            .send()
    };
    let unregistered = put_policy().await.unwrap_err().into_service_error();
    assert_eq!(
        unregistered.code(),
        Some("ObjectNotFoundException"),
        "{unregistered:?}"
    );

    moto.reset_requests().await;
    scaling
        .register_scalable_target()
        .service_namespace(ServiceNamespace::Sagemaker)
        .resource_id(resource)
        .scalable_dimension(dimension.clone())
        .min_capacity(1)
        .max_capacity(3)
        .send()
        .await
        .unwrap();
    put_policy().await.unwrap();
    let targets = scaling
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Sagemaker)
        .resource_ids(resource)
        .send()
        .await
        .unwrap();
    let target = &targets.scalable_targets()[0];
    assert_eq!((target.min_capacity(), target.max_capacity()), (1, 3));
    assert_eq!(target.scalable_dimension(), &dimension);
    let policies = scaling
        .describe_scaling_policies()
        .service_namespace(ServiceNamespace::Sagemaker)
        .resource_id(resource)
        .send()
        .await
        .unwrap();
    let configuration = policies.scaling_policies()[0]
        .target_tracking_scaling_policy_configuration()
        .unwrap();
    assert_eq!(configuration.target_value(), 70.0);
    assert_eq!(
        configuration
            .predefined_metric_specification()
            .unwrap()
            .predefined_metric_type(),
        &MetricType::SageMakerVariantInvocationsPerInstance
    );
    let changed: Vec<String> = mutating(&moto.requests().await)
        .iter()
        .map(|r| r.action.clone())
        .collect();
    assert_eq!(changed, ["RegisterScalableTarget", "PutScalingPolicy"]);

    scaling
        .deregister_scalable_target()
        .service_namespace(ServiceNamespace::Sagemaker)
        .resource_id(resource)
        .scalable_dimension(dimension.clone())
        .send()
        .await
        .unwrap();
    let policies = scaling
        .describe_scaling_policies()
        .service_namespace(ServiceNamespace::Sagemaker)
        .send()
        .await
        .unwrap();
    assert!(
        policies.scaling_policies().is_empty(),
        "deregistering deletes the target's policies: {policies:?}"
    );
}
