//! The value every optional deploy.yaml key takes when it is left out (or set to `null`). The JSON
//! Schema's `default`s and the key reference repeat these; a test keeps them equal.

use std::time::Duration;

/// `target`.
pub const TARGET: &str = "local";
/// `region`.
pub const REGION: &str = "us-east-1";
/// `data.validation`: the fraction of `data.train` held out (stratified, seeded).
pub const VALIDATION_FRACTION: f64 = 0.2;
/// `data.label`: the label column of the IoTID20 schema.
pub const LABEL: &str = "Label";
/// `data.positive`: the label value that is the positive class.
pub const POSITIVE: &str = "Anomaly";
/// `data.exclude`: identifiers and the finer label columns, which leak the label.
pub const EXCLUDE: [&str; 6] = ["Flow_ID", "Src_IP", "Dst_IP", "Timestamp", "Cat", "Sub_Cat"];
/// `bucket.retain_on_down`.
pub const RETAIN_BUCKET_ON_DOWN: bool = false;
/// `training.instance_type`.
pub const TRAINING_INSTANCE_TYPE: &str = "ml.m5.xlarge";
/// `training.instance_count`.
pub const TRAINING_INSTANCE_COUNT: u32 = 1;
/// `training.volume_size_gb`.
pub const VOLUME_SIZE_GB: u32 = 30;
/// `training.max_runtime`, as written.
pub const MAX_RUNTIME: &str = "1h";
/// `training.max_runtime`.
pub const MAX_RUNTIME_DURATION: Duration = Duration::from_secs(3_600);
/// `endpoint.instance_type`.
pub const ENDPOINT_INSTANCE_TYPE: &str = "ml.m5.large";
/// `endpoint.instance_count`.
pub const ENDPOINT_INSTANCE_COUNT: u32 = 1;
/// `endpoint.serverless.memory_mb`.
pub const SERVERLESS_MEMORY_MB: u32 = 2048;
/// `endpoint.serverless.max_concurrency`.
pub const SERVERLESS_MAX_CONCURRENCY: u32 = 5;
/// `endpoint.async.max_concurrent_invocations`.
pub const ASYNC_MAX_CONCURRENT_INVOCATIONS: u32 = 4;
/// `endpoint.data_capture.sample_percent` (the SageMaker Python SDK's default sampling).
pub const DATA_CAPTURE_SAMPLE_PERCENT: u32 = 20;
/// `monitoring.drift_threshold`: a population stability index above 0.2 is the usual sign of a
/// shift that matters (below 0.1 stable, above 0.25 major).
pub const DRIFT_THRESHOLD: f64 = 0.2;
/// `endpoint.wait_timeout`, as written.
pub const WAIT_TIMEOUT: &str = "30m";
/// `endpoint.wait_timeout`.
pub const WAIT_TIMEOUT_DURATION: Duration = Duration::from_secs(1_800);
/// `endpoint.autoscaling.min`.
pub const AUTOSCALING_MIN: u32 = 1;
/// `endpoint.autoscaling.invocations_per_instance` (per minute, SageMaker's target metric).
pub const INVOCATIONS_PER_INSTANCE: u32 = 1_000;
/// `local.state_dir`, relative to the directory of deploy.yaml.
pub const STATE_DIR: &str = ".orchestrate";
/// `local.alarm_period`, as written: CloudWatch's period for SageMaker's metrics.
pub const ALARM_PERIOD: &str = "1m";
/// `local.alarm_period`.
pub const ALARM_PERIOD_DURATION: Duration = Duration::from_secs(60);
/// `endpoint.rollout.strategy` (also what an absent `rollout` section does).
pub const ROLLOUT_STRATEGY: &str = "all_at_once";
/// `endpoint.rollout.canary_percent` (with `strategy: canary`): a share of the new fleet's capacity.
pub const CANARY_PERCENT: u32 = 50;
/// `endpoint.rollout.step_percent` (with `strategy: linear`): a share of the new fleet's capacity.
pub const STEP_PERCENT: u32 = 25;
/// `endpoint.rollout.bake`, as written, when a `rollout` section is present (without one, nothing
/// bakes).
pub const BAKE: &str = "10m";
/// `endpoint.rollout.bake`, when a `rollout` section is present.
pub const BAKE_DURATION: Duration = Duration::from_secs(600);
/// `endpoint.rollout.alarms`, when a `rollout` section is present (without one, no alarm).
pub const ROLLOUT_ALARMS: &str = "default";
/// `endpoint.rollout.alarms.errors.threshold`: `Invocation5XXErrors` per minute.
pub const ERRORS_THRESHOLD: u64 = 1;
/// `endpoint.rollout.alarms.errors.datapoints`.
pub const ERRORS_DATAPOINTS: u32 = 2;
/// `endpoint.rollout.alarms.errors.periods` (one-minute periods).
pub const ERRORS_PERIODS: u32 = 3;
/// `endpoint.rollout.alarms.latency.threshold_ms`: p99 `ModelLatency`, in milliseconds.
pub const LATENCY_THRESHOLD_MS: u64 = 100;
/// `endpoint.rollout.alarms.latency.datapoints`.
pub const LATENCY_DATAPOINTS: u32 = 2;
/// `endpoint.rollout.alarms.latency.periods` (one-minute periods).
pub const LATENCY_PERIODS: u32 = 3;
