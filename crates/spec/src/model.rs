//! The validated deployment: what deploy.yaml asks for, with every default filled in, every name
//! checked and every relative path resolved. Nothing here can be invalid; the rest of orchestrate
//! plans and applies from a [`Spec`] without checking again.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use contract::Metric;
use contract::hyperparameters::Key;
use serde::{Serialize, Serializer};

use crate::duration::format_duration;
use crate::names::{DeploymentName, InstanceType, Region};

/// A validated deploy.yaml.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spec {
    /// The deployment name, prefix of every resource name.
    pub name: DeploymentName,
    /// Where to deploy.
    pub target: Target,
    /// The AWS region (also recorded for the local target).
    pub region: Region,
    /// User tags for every resource (orchestrate adds `orchestrate:deployment` and `managed-by`).
    pub tags: BTreeMap<String, String>,
    pub data: Data,
    pub bucket: Bucket,
    pub training: Training,
    pub endpoint: Endpoint,
    pub monitoring: Monitoring,
    pub local: Local,
}

/// Where a deployment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The embedded local target: folders and local processes, no AWS account.
    #[default]
    Local,
    /// AWS SageMaker.
    Aws,
}

impl Target {
    pub const ALL: [Target; 2] = [Target::Local, Target::Aws];

    pub fn as_str(self) -> &'static str {
        match self {
            Target::Local => "local",
            Target::Aws => "aws",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of `Target::from_str`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown target `{0}`; expected `local` or `aws`")]
pub struct UnknownTarget(pub String);

impl FromStr for Target {
    type Err = UnknownTarget;
    fn from_str(s: &str) -> Result<Self, UnknownTarget> {
        Target::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownTarget(s.to_string()))
    }
}

/// Where a data set is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    /// One local file (CSV, CSV.gz or Parquet), resolved against the directory of deploy.yaml.
    LocalFile(PathBuf),
    /// A local directory holding one or more data files, resolved against the directory of deploy.yaml.
    LocalDir(PathBuf),
    /// An S3 prefix (`prefix` is empty for a whole bucket, and has no leading `/`).
    S3 { bucket: String, prefix: String },
}

impl DataSource {
    pub fn is_local(&self) -> bool {
        !matches!(self, DataSource::S3 { .. })
    }
}

impl fmt::Display for DataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSource::LocalFile(p) | DataSource::LocalDir(p) => write!(f, "{}", p.display()),
            DataSource::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// How the validation set is made.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Validation {
    /// Hold out this fraction of the training data (stratified, seeded), in (0, 0.5].
    Fraction(f64),
    /// A separate validation data set.
    Source(DataSource),
}

/// `data`: what to train on and how to read it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Data {
    pub train: DataSource,
    pub validation: Validation,
    pub test: Option<DataSource>,
    /// The label column.
    pub label: String,
    /// The label value of the positive class.
    pub positive: String,
    /// Columns never used as features.
    pub exclude: Vec<String>,
}

/// `bucket`: the data bucket `<name>-<account>-<region>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// Keep the bucket and its objects on `orchestrate down`.
    pub retain_on_down: bool,
}

/// `training`: the SageMaker training job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Training {
    pub instance_type: InstanceType,
    pub instance_count: u32,
    pub volume_size_gb: u32,
    #[serde(serialize_with = "serialize_duration")]
    pub max_runtime: Duration,
    pub hyperparameters: Hyperparameters,
    pub quality_gate: Option<QualityGate>,
}

/// `training.hyperparameters`: the model-image `train` settings. `None` leaves the container's default.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Hyperparameters {
    pub learning_rate: Option<f64>,
    pub max_rounds: Option<u32>,
    pub early_stopping_rounds: Option<u32>,
    pub num_leaves: Option<u32>,
    pub max_depth: Option<i32>,
    pub min_data_in_leaf: Option<u32>,
    pub feature_fraction: Option<f64>,
    pub threads: Option<u32>,
    pub validation_fraction: Option<f64>,
    pub target_fpr: Option<f64>,
    pub seed: Option<u32>,
    pub bootstrap_resamples: Option<u32>,
    pub quantized_gradients: Option<bool>,
}

impl Hyperparameters {
    /// The hyperparameters that are set, as SageMaker passes them: every value a string.
    pub fn to_strings(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut put = |key: Key, value: Option<String>| {
            if let Some(v) = value {
                out.insert(key.as_str().to_string(), v);
            }
        };
        put(Key::LearningRate, self.learning_rate.map(|v| v.to_string()));
        put(Key::MaxRounds, self.max_rounds.map(|v| v.to_string()));
        put(
            Key::EarlyStoppingRounds,
            self.early_stopping_rounds.map(|v| v.to_string()),
        );
        put(Key::NumLeaves, self.num_leaves.map(|v| v.to_string()));
        put(Key::MaxDepth, self.max_depth.map(|v| v.to_string()));
        put(Key::MinDataInLeaf, self.min_data_in_leaf.map(|v| v.to_string()));
        put(Key::FeatureFraction, self.feature_fraction.map(|v| v.to_string()));
        put(Key::Threads, self.threads.map(|v| v.to_string()));
        put(
            Key::ValidationFraction,
            self.validation_fraction.map(|v| v.to_string()),
        );
        put(Key::TargetFpr, self.target_fpr.map(|v| v.to_string()));
        put(Key::Seed, self.seed.map(|v| v.to_string()));
        put(
            Key::BootstrapResamples,
            self.bootstrap_resamples.map(|v| v.to_string()),
        );
        put(
            Key::QuantizedGradients,
            self.quantized_gradients.map(|v| v.to_string()),
        );
        out
    }
}

/// `training.quality_gate`: minimum validation metrics before a model may replace the live one.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QualityGate {
    pub min_pr_auc: Option<f64>,
    pub min_roc_auc: Option<f64>,
    pub min_mcc: Option<f64>,
    pub min_f1: Option<f64>,
}

impl QualityGate {
    /// The thresholds that are set, as (metric, minimum), in a fixed order.
    pub fn thresholds(&self) -> Vec<(Metric, f64)> {
        [
            (Metric::PrAuc, self.min_pr_auc),
            (Metric::RocAuc, self.min_roc_auc),
            (Metric::Mcc, self.min_mcc),
            (Metric::F1, self.min_f1),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }
}

/// `endpoint`: the real-time SageMaker endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Endpoint {
    /// What serves requests: instances, or serverless capacity.
    pub capacity: Capacity,
    /// How requests reach the model: answered on the connection, or queued through the bucket.
    pub invocation: Invocation,
    /// Sampled requests and answers written under the bucket's `capture/` (not with serverless).
    pub data_capture: Option<DataCapture>,
    /// Only with instances (validation refuses it with `serverless`).
    pub autoscaling: Option<Autoscaling>,
    #[serde(serialize_with = "serialize_duration")]
    pub wait_timeout: Duration,
    /// How an update shifts traffic to a new config, and what rolls it back.
    pub rollout: Rollout,
}

/// `endpoint.rollout`: SageMaker's deployment guardrails (blue/green traffic shifting with auto
/// rollback on CloudWatch alarms).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rollout {
    pub strategy: RolloutStrategy,
    /// How long each step bakes (watched by the alarms) before more traffic shifts; after the last
    /// step, how long the old fleet stays before it is terminated. At most one hour.
    #[serde(serialize_with = "serialize_duration")]
    pub bake: Duration,
    pub alarms: RolloutAlarms,
}

impl Default for Rollout {
    /// What an endpoint without a `rollout` section does: all at once, no bake, no alarm.
    fn default() -> Self {
        Rollout {
            strategy: RolloutStrategy::AllAtOnce,
            bake: Duration::ZERO,
            alarms: RolloutAlarms::None,
        }
    }
}

impl Rollout {
    /// The traffic shares (percent of the new fleet's capacity that takes traffic) after each step,
    /// the last always 100: `[100]` all at once, `[c, 100]` canary, `[s, 2s, …, 100]` linear.
    pub fn steps(&self) -> Vec<u32> {
        match self.strategy {
            RolloutStrategy::AllAtOnce => vec![100],
            RolloutStrategy::Canary { percent } => vec![percent, 100],
            RolloutStrategy::Linear { step_percent } => {
                let mut steps: Vec<u32> = (1..).map(|k| k * step_percent).take_while(|&p| p < 100).collect();
                steps.push(100);
                steps
            }
        }
    }

    /// The longest a rollout bakes in total: one bake per step (the last one is the final bake).
    pub fn total_bake(&self) -> Duration {
        self.bake * self.steps().len() as u32
    }
}

/// `endpoint.rollout.strategy` with its step size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "strategy", rename_all = "snake_case")]
pub enum RolloutStrategy {
    /// All traffic moves to the new fleet in one step (SageMaker's default).
    AllAtOnce,
    /// `canary_percent` of the new fleet's capacity takes traffic first (1 to 50), then the rest.
    Canary { percent: u32 },
    /// Steps of `step_percent` of the new fleet's capacity (10 to 50) until all of it.
    Linear { step_percent: u32 },
}

impl RolloutStrategy {
    /// Whether the strategy shifts traffic in more than one step (and so needs at least two
    /// instances: SageMaker's step is a share of the fleet).
    pub fn is_stepwise(self) -> bool {
        !matches!(self, RolloutStrategy::AllAtOnce)
    }
}

/// `endpoint.rollout.alarms`: the CloudWatch alarms that roll an update back.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutAlarms {
    /// No alarm: an update rolls back only when the new fleet fails to start.
    None,
    /// Alarms orchestrate creates and owns (`default`, or overridden rules).
    Owned(OwnedAlarms),
    /// Alarms the user keeps elsewhere, by name (1 to 10; SageMaker's limit).
    Named(Vec<String>),
}

/// The alarms orchestrate owns for a rollout: 5xx errors and p99 model latency of the endpoint's
/// variant, over one-minute periods, missing data not breaching.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OwnedAlarms {
    /// `Invocation5XXErrors` (Sum per minute) at or above `threshold`.
    pub errors: AlarmRule,
    /// `ModelLatency` (p99 per minute, in microseconds as SageMaker reports it) above `threshold`.
    pub latency: AlarmRule,
}

impl OwnedAlarms {
    /// `alarms: default`: errors at 1 per minute or more, or p99 latency above 100 ms, in 2 of the
    /// last 3 one-minute periods (see [`crate::defaults`]).
    pub const DEFAULT: OwnedAlarms = OwnedAlarms {
        errors: AlarmRule {
            threshold: crate::defaults::ERRORS_THRESHOLD,
            datapoints: crate::defaults::ERRORS_DATAPOINTS,
            periods: crate::defaults::ERRORS_PERIODS,
        },
        latency: AlarmRule {
            threshold: crate::defaults::LATENCY_THRESHOLD_MS * 1_000,
            datapoints: crate::defaults::LATENCY_DATAPOINTS,
            periods: crate::defaults::LATENCY_PERIODS,
        },
    };
}

impl Default for OwnedAlarms {
    fn default() -> Self {
        OwnedAlarms::DEFAULT
    }
}

/// When an owned alarm goes off: `datapoints` of the last `periods` one-minute periods breach
/// `threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AlarmRule {
    /// For errors a count per minute; for latency microseconds.
    pub threshold: u64,
    pub datapoints: u32,
    pub periods: u32,
}

/// What an endpoint runs on: instances it keeps (`instance_type`, `instance_count`), or
/// SageMaker's serverless capacity (`endpoint.serverless`), which has no instances, autoscaling,
/// deployment guardrails or network isolation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Capacity {
    Instances { instance_type: InstanceType, count: u32 },
    Serverless(Serverless),
}

impl Capacity {
    /// The instance count, for instances; `None` for serverless.
    pub fn instance_count(&self) -> Option<u32> {
        match self {
            Capacity::Instances { count, .. } => Some(*count),
            Capacity::Serverless(_) => None,
        }
    }

    pub fn is_serverless(&self) -> bool {
        matches!(self, Capacity::Serverless(_))
    }
}

/// `endpoint.serverless`: SageMaker Serverless Inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Serverless {
    /// Memory of each concurrent copy: 1024 to 6144 MB, in steps of 1024.
    pub memory_mb: u32,
    /// Requests served at once (1 to 200); one more is throttled.
    pub max_concurrency: u32,
}

/// How an endpoint is invoked: real-time (`InvokeEndpoint`, the answer on the connection, bodies
/// up to 6 MB), or asynchronously (`endpoint.async`: `InvokeEndpointAsync` names a request object
/// under the bucket's `async/input/`, SageMaker queues it and writes the answer under
/// `async/output/`, payloads up to 1 GB). Async needs instances (validation refuses it with
/// `serverless`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Invocation {
    RealTime,
    Async(AsyncInference),
}

impl Invocation {
    pub fn is_async(&self) -> bool {
        matches!(self, Invocation::Async(_))
    }
}

/// `endpoint.async`: SageMaker Asynchronous Inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AsyncInference {
    /// Queued requests each instance works on at once (1 to 1000).
    pub max_concurrent_invocations: u32,
}

/// `endpoint.data_capture`: SageMaker's data capture of requests and answers, in its JSON Lines
/// format under `s3://<bucket>/capture/<endpoint>/<variant>/yyyy/mm/dd/hh/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DataCapture {
    /// The share of invocations captured, 1 to 100.
    pub sample_percent: u32,
}

/// `monitoring`: drift of the captured traffic against the model's training baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Monitoring {
    /// On AWS, a monitoring schedule runs the monitor this often; `None`: on demand only
    /// (`orchestrate monitor`).
    pub schedule: Option<MonitoringSchedule>,
    /// A feature (or the score) drifts when its population stability index is above this.
    pub drift_threshold: f64,
}

impl Default for Monitoring {
    fn default() -> Self {
        Monitoring {
            schedule: None,
            drift_threshold: crate::defaults::DRIFT_THRESHOLD,
        }
    }
}

/// `monitoring.schedule`: how often a monitoring schedule runs (Model Monitor's cron forms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MonitoringSchedule {
    Hourly,
    Daily,
}

impl MonitoringSchedule {
    /// The `ScheduleExpression` Model Monitor takes.
    pub fn expression(self) -> &'static str {
        match self {
            MonitoringSchedule::Hourly => "cron(0 * ? * * *)",
            MonitoringSchedule::Daily => "cron(0 0 ? * * *)",
        }
    }

    /// The span of captured traffic one run looks at.
    pub fn window(self) -> std::time::Duration {
        match self {
            MonitoringSchedule::Hourly => std::time::Duration::from_secs(3_600),
            MonitoringSchedule::Daily => std::time::Duration::from_secs(86_400),
        }
    }
}

/// `endpoint.autoscaling`: target tracking on invocations per instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Autoscaling {
    pub min: u32,
    pub max: u32,
    pub invocations_per_instance: u32,
}

/// `local`: settings of the local target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Local {
    /// Where the local target keeps its state, resolved against the directory of deploy.yaml.
    pub state_dir: PathBuf,
    /// A fixed port for the endpoint; `None` picks a free one.
    pub port: Option<u16>,
    /// How long one datapoint of the local router's rollback alarms covers (CloudWatch's is a
    /// minute): 1s to 1m.
    #[serde(serialize_with = "serialize_duration")]
    pub alarm_period: Duration,
}

impl Spec {
    /// The hyperparameters of the training job as SageMaker passes them (every value a string, in
    /// the encoding of [`contract::hyperparameters`]): the ones set in `training.hyperparameters`,
    /// plus `label`, `positive_class` (verbatim), `exclude` (a JSON array of column names) and, when
    /// the validation set is a held-out fraction, `validation_fraction`.
    pub fn sagemaker_hyperparameters(&self) -> BTreeMap<String, String> {
        let mut map = self.training.hyperparameters.to_strings();
        map.insert(Key::Label.as_str().into(), self.data.label.clone());
        map.insert(Key::PositiveClass.as_str().into(), self.data.positive.clone());
        map.insert(
            Key::Exclude.as_str().into(),
            contract::hyperparameters::encode_columns(&self.data.exclude),
        );
        match self.data.validation {
            Validation::Fraction(f) => {
                map.insert(Key::ValidationFraction.as_str().into(), f.to_string());
            }
            Validation::Source(_) => {
                map.remove(Key::ValidationFraction.as_str());
            }
        }
        map
    }

    /// The data bucket's name for an account, `<name>-<account_id>-<region>` (at most 63 characters
    /// for a 12-digit account id; validation guarantees it).
    pub fn bucket_name(&self, account_id: &str) -> String {
        self.name.bucket_name(account_id, &self.region)
    }

    /// The SageMaker execution role's name, `<name>-sagemaker-execution` (IAM allows 64 characters).
    pub fn role_name(&self) -> String {
        format!("{}-sagemaker-execution", self.name)
    }

    /// The image repository's name, `<name>-model-image`.
    pub fn repository_name(&self) -> String {
        format!("{}-model-image", self.name)
    }
}

fn serialize_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}
