//! The wire layer: deploy.yaml exactly as written, one struct per mapping, every key documented with
//! its default and its constraint. These doc comments are the reference for users: they become the
//! descriptions of the published JSON Schema ([`crate::json_schema`]).
//!
//! Every struct is `deny_unknown_fields` and none uses `#[serde(flatten)]` (which would silently turn
//! unknown-key detection off). Optional keys are `Option`s, and `null` means "use the default", as
//! it does in the validator. The validator ([`crate::parse`]) does not deserialize through these
//! types, because serde stops at the first error and forgets positions; it walks the
//! position-carrying YAML tree with the same keys instead, and tests keep the two in step (same key
//! sets, the valid example deserializes here, every unknown-key case in the corpus is rejected here).

use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::defaults;

/// deploy.yaml: one file that recreates a whole ML deployment (data bucket, execution role,
/// container image, training job, model, endpoint config, endpoint) on AWS SageMaker or on the
/// embedded local target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "deploy.yaml")]
pub struct DeployFile {
    /// Schema version. Required; must be `1`.
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    /// Deployment name, the prefix of every resource name (bucket `<name>-<account>-<region>`,
    /// training jobs `<name>-<hash12>-<attempt>`, endpoint `<name>`). Required. Lowercase letters,
    /// digits and `-`; starts with a letter; no `--`; does not end with `-`; at most 32 characters.
    #[schemars(length(min = 1, max = 32), regex(pattern = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"))]
    pub name: String,
    /// Where to deploy: `local` (folders and local processes, no AWS account) or `aws` (SageMaker).
    /// Default `local`. The `--target` flag overrides it.
    #[schemars(extend("default" = defaults::TARGET))]
    pub target: Option<TargetWire>,
    /// AWS region, such as `us-east-1`, `eu-west-2` or `us-gov-west-1`. Default `us-east-1`.
    /// Together with the name, the bucket name `<name>-<account>-<region>` must fit in 63 characters.
    #[schemars(regex(pattern = r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$"), extend("default" = defaults::REGION))]
    pub region: Option<String>,
    /// Tags added to every AWS resource (string keys and values). Default none. Keys: 1 to 128
    /// characters, not starting with `aws:`, not `orchestrate:deployment` or `managed-by` (orchestrate
    /// sets those); values: at most 256 characters; letters, digits, spaces and `_ . : / = + - @`;
    /// at most 48 tags.
    #[schemars(extend("maxProperties" = crate::names::MAX_USER_TAGS))]
    pub tags: Option<BTreeMap<String, String>>,
    /// The data: where the training set is and how to read it. Required.
    pub data: DataWire,
    /// The data bucket (name derived: `<name>-<account>-<region>`). Optional.
    pub bucket: Option<BucketWire>,
    /// The SageMaker training job. Optional; every key has a default.
    pub training: Option<TrainingWire>,
    /// The real-time endpoint. Optional; every key has a default.
    pub endpoint: Option<EndpointWire>,
    /// Drift monitoring of the captured traffic (`endpoint.data_capture` is needed). Optional;
    /// every key has a default.
    pub monitoring: Option<MonitoringWire>,
    /// Settings of the local target. Optional; every key has a default.
    pub local: Option<LocalWire>,
}

/// Deployment target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(rename = "Target")]
pub enum TargetWire {
    /// The embedded local target.
    Local,
    /// AWS SageMaker.
    Aws,
}

/// `data`: the training data and how to read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Data")]
pub struct DataWire {
    /// Training data. Required. A local file (`.csv`, `.csv.gz` or `.parquet`) or a directory of such
    /// files, relative to the directory of deploy.yaml, which must exist (it is uploaded and
    /// content-hashed); or `s3://bucket/prefix` (target `aws` only).
    #[schemars(length(min = 1))]
    pub train: String,
    /// Validation set: a fraction of `train` held out (stratified, seeded), greater than 0 and at
    /// most 0.5; or a path (local or `s3://`) like `train`. Default `0.2`. Conflicts with
    /// `training.hyperparameters.validation_fraction`.
    #[schemars(extend("default" = defaults::VALIDATION_FRACTION))]
    pub validation: Option<ValidationWire>,
    /// Test set, scored after deploy by `orchestrate evaluate`: a path (local or `s3://`) like
    /// `train`. Default none.
    pub test: Option<String>,
    /// The label column. Default `Label`. Non-empty; must not be in `exclude`.
    #[schemars(length(min = 1), extend("default" = defaults::LABEL))]
    pub label: Option<String>,
    /// The label value of the positive class. Default `Anomaly`. Non-empty.
    #[schemars(length(min = 1), extend("default" = defaults::POSITIVE))]
    pub positive: Option<String>,
    /// Columns never used as features (identifiers and columns that leak the label). Default
    /// `[Flow_ID, Src_IP, Dst_IP, Timestamp, Cat, Sub_Cat]`; `[]` excludes nothing. Names are
    /// non-empty and unique; any characters a CSV header allows (spaces, commas, quotes).
    #[schemars(
        inner(length(min = 1), regex(pattern = r"^[^,]+$")),
        extend("default" = defaults::EXCLUDE, "uniqueItems" = true)
    )]
    pub exclude: Option<Vec<String>>,
}

/// `data.validation`: a fraction to hold out, or a path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ValidationWire {
    /// Fraction of `train` to hold out, in (0, 0.5].
    Fraction(f64),
    /// A separate validation data set.
    Path(String),
}

impl JsonSchema for ValidationWire {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Validation".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A fraction of `train` to hold out (0 < f <= 0.5), or a path like `train`.",
            "anyOf": [
                { "type": "number", "exclusiveMinimum": 0, "maximum": 0.5 },
                { "type": "string", "minLength": 1 }
            ]
        })
    }
}

/// `bucket`: the data bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Bucket")]
pub struct BucketWire {
    /// Keep the bucket and its objects on `orchestrate down`. Default `false`.
    #[schemars(extend("default" = defaults::RETAIN_BUCKET_ON_DOWN))]
    pub retain_on_down: Option<bool>,
}

/// `training`: the SageMaker training job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Training")]
pub struct TrainingWire {
    /// SageMaker training instance type, `ml.<family>.<size>`. Default `ml.m5.xlarge`. Ignored by the
    /// local target.
    #[schemars(
        regex(pattern = r"^ml\.[a-z0-9]+\.[a-z0-9]+$"),
        extend("default" = defaults::TRAINING_INSTANCE_TYPE)
    )]
    pub instance_type: Option<String>,
    /// Number of training instances. Default `1`; at least 1.
    #[schemars(range(min = 1), extend("default" = defaults::TRAINING_INSTANCE_COUNT))]
    pub instance_count: Option<u32>,
    /// Size of the training volume in GB. Default `30`; 1 to 16384.
    #[schemars(range(min = 1, max = 16384), extend("default" = defaults::VOLUME_SIZE_GB))]
    pub volume_size_gb: Option<u32>,
    /// Longest the training job may run before SageMaker stops it: a duration such as `90s`, `30m`,
    /// `1h` or `1h30m` (units `d`, `h`, `m`, `s`, largest first). Default `1h`; 1s to 28d.
    #[schemars(regex(pattern = DURATION_PATTERN), extend("default" = defaults::MAX_RUNTIME))]
    pub max_runtime: Option<String>,
    /// Hyperparameters of the model-image `train` command. Default none (the container's defaults).
    /// Values may be numbers or numeric strings.
    pub hyperparameters: Option<HyperparametersWire>,
    /// Minimum validation metrics a new model needs before it may replace the live one; below any of
    /// them `orchestrate up` stops and leaves the endpoint untouched. Default none (no gate).
    pub quality_gate: Option<QualityGateWire>,
}

/// The duration grammar as a JSON Schema pattern.
const DURATION_PATTERN: &str = r"^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$";

/// A hyperparameter value: a number, or a string holding one (SageMaker passes strings anyway).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NumberWire {
    Number(f64),
    Text(String),
}

impl JsonSchema for NumberWire {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Number".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "number" },
                { "type": "string", "pattern": r"^\s*[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$" }
            ]
        })
    }
}

/// A whole-number hyperparameter value: an integer, or a string holding one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntegerWire {
    Integer(i64),
    Text(String),
}

impl JsonSchema for IntegerWire {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Integer".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "integer" },
                { "type": "string", "pattern": r"^\s*[-+]?[0-9]+\s*$" }
            ]
        })
    }
}

/// `training.hyperparameters`: passed to the container as strings. Unset keys keep the container's
/// defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Hyperparameters")]
pub struct HyperparametersWire {
    /// Shrinkage per boosting round. Greater than 0, at most 1.
    #[schemars(extend("exclusiveMinimum" = 0, "maximum" = 1))]
    pub learning_rate: Option<NumberWire>,
    /// Cap on boosting rounds (early stopping usually ends sooner). At least 1.
    #[schemars(extend("minimum" = 1))]
    pub max_rounds: Option<IntegerWire>,
    /// Stop after this many rounds without improvement on the validation set. At least 1.
    #[schemars(extend("minimum" = 1))]
    pub early_stopping_rounds: Option<IntegerWire>,
    /// Maximum leaves per tree. 2 to 131072.
    #[schemars(extend("minimum" = 2, "maximum" = 131072))]
    pub num_leaves: Option<IntegerWire>,
    /// Maximum tree depth: -1 (no limit) or at least 1.
    #[schemars(extend("minimum" = -1, "not" = { "const": 0 }))]
    pub max_depth: Option<IntegerWire>,
    /// Minimum rows in a leaf. At least 0.
    #[schemars(extend("minimum" = 0))]
    pub min_data_in_leaf: Option<IntegerWire>,
    /// Fraction of features sampled per tree. Greater than 0, at most 1.
    #[schemars(extend("exclusiveMinimum" = 0, "maximum" = 1))]
    pub feature_fraction: Option<NumberWire>,
    /// Training threads. 1 to 4096 (unset: all cores of the instance).
    #[schemars(extend("minimum" = 1, "maximum" = 4096))]
    pub threads: Option<IntegerWire>,
    /// Fraction of the training data held out for validation, greater than 0 and at most 0.5. Prefer
    /// `data.validation`; setting both is an error.
    #[schemars(extend("exclusiveMinimum" = 0, "maximum" = 0.5))]
    pub validation_fraction: Option<NumberWire>,
    /// Choose the decision threshold for this false-positive rate on the validation set instead of
    /// maximising F1. Strictly between 0 and 1.
    #[schemars(extend("exclusiveMinimum" = 0, "exclusiveMaximum" = 1))]
    pub target_fpr: Option<NumberWire>,
    /// Random seed for sampling and the hold-out split. 0 to 2147483647.
    #[schemars(extend("minimum" = 0, "maximum" = 2147483647))]
    pub seed: Option<IntegerWire>,
    /// Bootstrap resamples for the metrics' 95% confidence intervals, 0 (no intervals) to 10000
    /// (the container's default: 1000).
    #[schemars(extend("minimum" = 0, "maximum" = 10000))]
    pub bootstrap_resamples: Option<IntegerWire>,
    /// LightGBM's quantized training: about a fifth less fit time on large data for a small loss
    /// of quality (the container's default: false).
    pub quantized_gradients: Option<bool>,
}

/// `training.quality_gate`: minimum validation metrics, each from 0 to 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "QualityGate")]
pub struct QualityGateWire {
    /// Minimum area under the precision-recall curve. 0 to 1.
    #[schemars(range(min = 0, max = 1))]
    pub min_pr_auc: Option<f64>,
    /// Minimum area under the ROC curve. 0 to 1.
    #[schemars(range(min = 0, max = 1))]
    pub min_roc_auc: Option<f64>,
    /// Minimum Matthews correlation coefficient. 0 to 1.
    #[schemars(range(min = 0, max = 1))]
    pub min_mcc: Option<f64>,
    /// Minimum F1 score of the positive class. 0 to 1.
    #[schemars(range(min = 0, max = 1))]
    pub min_f1: Option<f64>,
}

/// `endpoint`: the real-time SageMaker endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Endpoint")]
pub struct EndpointWire {
    /// SageMaker hosting instance type, `ml.<family>.<size>`. Default `ml.m5.large`. Ignored by the
    /// local target.
    #[schemars(
        regex(pattern = r"^ml\.[a-z0-9]+\.[a-z0-9]+$"),
        extend("default" = defaults::ENDPOINT_INSTANCE_TYPE)
    )]
    pub instance_type: Option<String>,
    /// Initial number of instances. Default `1`; at least 1; within `autoscaling.min..=max` when
    /// autoscaling is set.
    #[schemars(range(min = 1), extend("default" = defaults::ENDPOINT_INSTANCE_COUNT))]
    pub instance_count: Option<u32>,
    /// SageMaker Serverless Inference instead of instances: no `instance_type`, `instance_count`,
    /// `autoscaling` or `rollout` with it, and the model runs without network isolation (which
    /// serverless does not support). Default none (instances). Moving an endpoint between
    /// instances and serverless replaces it.
    pub serverless: Option<ServerlessWire>,
    /// SageMaker Asynchronous Inference: `orchestrate invoke --async` (or `InvokeEndpointAsync`)
    /// names a request under `s3://<bucket>/async/input/`, the answer lands under
    /// `async/output/` (failures under `async/failures/`), payloads up to 1 GB. Default none
    /// (real-time). Not with `serverless` or `rollout`. Moving an endpoint between real-time and
    /// async replaces it.
    #[serde(rename = "async")]
    #[schemars(rename = "async")]
    pub async_inference: Option<AsyncWire>,
    /// SageMaker's data capture: a sample of requests and answers written, in SageMaker's JSON
    /// Lines format, under `s3://<bucket>/capture/<endpoint>/<variant>/yyyy/mm/dd/hh/` (locally in
    /// the bucket folder, by the endpoint's server), for `orchestrate monitor`. Default none. Not
    /// with `serverless`.
    pub data_capture: Option<DataCaptureWire>,
    /// Target-tracking autoscaling on invocations per instance. Default none (fixed size).
    pub autoscaling: Option<AutoscalingWire>,
    /// Longest to wait for the endpoint to be InService after a create or update: a duration such as
    /// `30m`. Default `30m`; 1s to 1d.
    #[schemars(regex(pattern = DURATION_PATTERN), extend("default" = defaults::WAIT_TIMEOUT))]
    pub wait_timeout: Option<String>,
    /// How an update moves traffic to the new fleet (SageMaker's blue/green deployment guardrails)
    /// and what rolls it back. Default none: all traffic at once, no bake, no alarm. A `rollout`
    /// section, even `{}`, bakes `10m` watched by the `default` alarms.
    pub rollout: Option<RolloutWire>,
}

/// `endpoint.serverless`: SageMaker Serverless Inference capacity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Serverless")]
pub struct ServerlessWire {
    /// Memory of each concurrent copy of the model, in MB: 1024, 2048, 3072, 4096, 5120 or 6144.
    /// Default `2048`.
    #[schemars(
        range(min = 1024, max = 6144),
        extend("multipleOf" = 1024, "default" = defaults::SERVERLESS_MEMORY_MB)
    )]
    pub memory_mb: Option<u32>,
    /// Requests served at once; one more is throttled. Default `5`; 1 to 200. The local target
    /// answers one more with 503.
    #[schemars(range(min = 1, max = 200), extend("default" = defaults::SERVERLESS_MAX_CONCURRENCY))]
    pub max_concurrency: Option<u32>,
}

/// `endpoint.data_capture`: SageMaker's data capture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "DataCapture")]
pub struct DataCaptureWire {
    /// The share of invocations captured, in percent. Default `20`; 1 to 100.
    #[schemars(range(min = 1, max = 100), extend("default" = defaults::DATA_CAPTURE_SAMPLE_PERCENT))]
    pub sample_percent: Option<u32>,
}

/// `monitoring`: drift of the captured traffic against the model's training baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Monitoring")]
pub struct MonitoringWire {
    /// Not supported yet (refused): a monitoring schedule running the monitor `hourly` or `daily`
    /// on AWS. Default none: on demand only (`orchestrate monitor`), on both targets.
    pub schedule: Option<MonitoringScheduleWire>,
    /// A feature, or the model's score, drifts when its population stability index against the
    /// training baseline is above this. Default `0.2`; above 0, at most 10.
    #[schemars(range(min = 0, max = 10), extend("default" = defaults::DRIFT_THRESHOLD))]
    pub drift_threshold: Option<f64>,
}

/// `monitoring.schedule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "MonitoringSchedule")]
pub enum MonitoringScheduleWire {
    Hourly,
    Daily,
}

/// `endpoint.async`: SageMaker Asynchronous Inference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Async")]
pub struct AsyncWire {
    /// Queued requests each instance works on at once. Default `4`; 1 to 1000.
    #[schemars(
        range(min = 1, max = 1000),
        extend("default" = defaults::ASYNC_MAX_CONCURRENT_INVOCATIONS)
    )]
    pub max_concurrent_invocations: Option<u32>,
}

/// `endpoint.rollout`: traffic shifting, baking and auto rollback of endpoint updates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Rollout")]
pub struct RolloutWire {
    /// `all_at_once` (all traffic in one step), `canary` (`canary_percent` of the new fleet first,
    /// then the rest) or `linear` (steps of `step_percent`). Default `all_at_once`. `canary` and
    /// `linear` need `endpoint.instance_count` (and `autoscaling.min`) of at least 2.
    #[schemars(extend("default" = defaults::ROLLOUT_STRATEGY))]
    pub strategy: Option<RolloutStrategyWire>,
    /// With `strategy: canary` only: the share of the new fleet's capacity that takes traffic first,
    /// in percent. Default `50`; 1 to 50.
    #[schemars(range(min = 1, max = 50), extend("default" = defaults::CANARY_PERCENT))]
    pub canary_percent: Option<u32>,
    /// With `strategy: linear` only: the share of the new fleet's capacity added per step, in
    /// percent. Default `25`; 10 to 50.
    #[schemars(range(min = 10, max = 50), extend("default" = defaults::STEP_PERCENT))]
    pub step_percent: Option<u32>,
    /// How long each step (and the final step, before the old fleet is terminated) bakes, watched by
    /// the alarms: a duration such as `10m`. Default `10m`; `0s` to `1h`.
    #[schemars(regex(pattern = DURATION_PATTERN), extend("default" = defaults::BAKE))]
    pub bake: Option<String>,
    /// The CloudWatch alarms that roll an update back: `default` (5xx errors and p99 latency alarms
    /// orchestrate creates), `none`, a list of 1 to 10 existing alarm names, or a map of rules
    /// overriding the default alarms' (`errors`, `latency`). Default `default`.
    #[schemars(extend("default" = defaults::ROLLOUT_ALARMS))]
    pub alarms: Option<AlarmsWire>,
}

/// `endpoint.rollout.strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "RolloutStrategy")]
pub enum RolloutStrategyWire {
    /// All traffic moves to the new fleet in one step.
    AllAtOnce,
    /// `canary_percent` of the new fleet first, then the rest.
    Canary,
    /// Steps of `step_percent` of the new fleet until all of it.
    Linear,
}

/// `endpoint.rollout.alarms`: a preset, a list of alarm names, or rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AlarmsWire {
    /// `default` or `none`.
    Preset(AlarmPresetWire),
    /// Existing CloudWatch alarms, by name: 1 to 10, each 1 to 255 characters, no duplicates.
    Named(Vec<String>),
    /// Rules for the alarms orchestrate creates; a missing key keeps its default.
    Rules(AlarmRulesWire),
}

/// `alarms: default` or `alarms: none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlarmPresetWire {
    /// The alarms orchestrate creates, with the default rules.
    Default,
    /// No alarm: an update rolls back only when the new fleet fails to start.
    None,
}

impl JsonSchema for AlarmsWire {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RolloutAlarms".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let rules = generator.subschema_for::<AlarmRulesWire>();
        json_schema!({
            "description": "`default` (the alarms orchestrate creates), `none`, a list of 1 to 10 existing CloudWatch alarm names, or rules for the alarms orchestrate creates.",
            "anyOf": [
                { "enum": ["default", "none"] },
                {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": crate::validate::rollout::MAX_ALARMS,
                    "uniqueItems": true,
                    "items": { "type": "string", "minLength": 1, "maxLength": crate::validate::rollout::MAX_ALARM_NAME }
                },
                rules
            ]
        })
    }
}

/// `endpoint.rollout.alarms` as a map: the rules of the alarms orchestrate creates, over one-minute
/// periods (missing data does not breach).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "AlarmRules")]
pub struct AlarmRulesWire {
    /// The 5xx errors alarm (`Invocation5XXErrors`, sum per minute). Default
    /// `{threshold: 1, datapoints: 2, periods: 3}`.
    pub errors: Option<ErrorsAlarmWire>,
    /// The latency alarm (`ModelLatency`, p99 per minute). Default
    /// `{threshold_ms: 100, datapoints: 2, periods: 3}`.
    pub latency: Option<LatencyAlarmWire>,
}

/// `endpoint.rollout.alarms.errors`: goes off when `datapoints` of the last `periods` minutes have
/// `threshold` or more 5xx errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ErrorsAlarm")]
pub struct ErrorsAlarmWire {
    /// 5xx errors per minute at which a minute breaches. Default `1`; at least 1.
    #[schemars(range(min = 1), extend("default" = defaults::ERRORS_THRESHOLD))]
    pub threshold: Option<u64>,
    /// How many of the last `periods` minutes must breach. Default `2`; 1 to `periods`.
    #[schemars(range(min = 1, max = 1440), extend("default" = defaults::ERRORS_DATAPOINTS))]
    pub datapoints: Option<u32>,
    /// How many one-minute periods are evaluated. Default `3`; 1 to 1440 (one day).
    #[schemars(range(min = 1, max = 1440), extend("default" = defaults::ERRORS_PERIODS))]
    pub periods: Option<u32>,
}

/// `endpoint.rollout.alarms.latency`: goes off when `datapoints` of the last `periods` minutes have
/// a p99 model latency above `threshold_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "LatencyAlarm")]
pub struct LatencyAlarmWire {
    /// p99 model latency in milliseconds above which a minute breaches. Default `100`; 1 to 60000.
    #[schemars(range(min = 1, max = 60000), extend("default" = defaults::LATENCY_THRESHOLD_MS))]
    pub threshold_ms: Option<u64>,
    /// How many of the last `periods` minutes must breach. Default `2`; 1 to `periods`.
    #[schemars(range(min = 1, max = 1440), extend("default" = defaults::LATENCY_DATAPOINTS))]
    pub datapoints: Option<u32>,
    /// How many one-minute periods are evaluated. Default `3`; 1 to 1440 (one day).
    #[schemars(range(min = 1, max = 1440), extend("default" = defaults::LATENCY_PERIODS))]
    pub periods: Option<u32>,
}

/// `endpoint.autoscaling`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Autoscaling")]
pub struct AutoscalingWire {
    /// Fewest instances. Default `1`; at least 1.
    #[schemars(range(min = 1), extend("default" = defaults::AUTOSCALING_MIN))]
    pub min: Option<u32>,
    /// Most instances. Required; at least `min`.
    #[schemars(range(min = 1))]
    pub max: u32,
    /// Target invocations per instance per minute. Default `1000`; at least 1.
    #[schemars(range(min = 1), extend("default" = defaults::INVOCATIONS_PER_INSTANCE))]
    pub invocations_per_instance: Option<u32>,
}

/// `local`: the local target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Local")]
pub struct LocalWire {
    /// Where the local target keeps its state (bucket folder, image archive, training runs, endpoint
    /// process), relative to the directory of deploy.yaml. Default `.orchestrate`.
    #[schemars(length(min = 1), extend("default" = defaults::STATE_DIR))]
    pub state_dir: Option<String>,
    /// Fixed port for the local endpoint, 1024 to 65535. Default: a free port.
    #[schemars(range(min = 1024, max = 65535))]
    pub port: Option<u16>,
    /// How long one datapoint of the local router's rollback alarms covers: CloudWatch's one minute
    /// by default; shorter (down to `1s`) makes a local rehearsal of a guarded rollout quicker.
    /// The target `aws` ignores it.
    #[schemars(regex(pattern = DURATION_PATTERN), extend("default" = defaults::ALARM_PERIOD))]
    pub alarm_period: Option<String>,
}
