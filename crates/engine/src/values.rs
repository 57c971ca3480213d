//! The typed values resource settings are made of: tags, data channels and their hashes, instance
//! shapes and serverless capacity, the training job's hyperparameters, image references, durations. Each is compared as a
//! value and displayed for people (plans, `status`); none is ever parsed back from its display.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use image::Digest;
pub use spec::InstanceType;

/// Resource tags, key to value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tags(pub BTreeMap<String, String>);

impl Tags {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Keys present here but not in `wanted` (to untag).
    pub fn removed_from(&self, wanted: &Tags) -> Vec<String> {
        self.0
            .keys()
            .filter(|k| !wanted.0.contains_key(*k))
            .cloned()
            .collect()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Tags {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Tags(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

impl fmt::Display for Tags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        display_map(f, self.0.iter())
    }
}

/// `{k: "v", …}`, values quoted (they may hold spaces, commas and `=`).
fn display_map<'a>(
    f: &mut fmt::Formatter<'_>,
    entries: impl Iterator<Item = (&'a String, &'a String)>,
) -> fmt::Result {
    f.write_str("{")?;
    for (i, (key, value)) in entries.enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{key}: {value:?}")?;
    }
    f.write_str("}")
}

/// A SageMaker input channel the training job reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Train,
    Validation,
}

impl Channel {
    /// Every channel (targets that rebuild a job's channels from their own records iterate it).
    pub const ALL: [Channel; 2] = [Channel::Train, Channel::Validation];

    /// The channel's name in SageMaker's layout (`/opt/ml/input/data/<name>/`).
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Train => "train",
            Channel::Validation => "validation",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The SHA-256 of a channel's files (see [`crate::names::data_sha256`]), 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DataHash(pub String);

impl DataHash {
    /// The first 12 hex digits: the channel's key prefix in the bucket.
    pub fn short12(&self) -> &str {
        &self.0[..12.min(self.0.len())]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DataHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The hash of every channel a training job reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DataHashes(pub BTreeMap<Channel, DataHash>);

impl fmt::Display for DataHashes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, (channel, hash)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{channel} {hash}")?;
        }
        Ok(())
    }
}

/// How many instances of which type (a training job's cluster, an endpoint variant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instances {
    pub count: u32,
    pub instance_type: InstanceType,
}

impl fmt::Display for Instances {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} x {}", self.count, self.instance_type)
    }
}

/// What an endpoint config's variant runs on: instances, or SageMaker's serverless capacity.
/// Untagged, so instance variants read and hash as they did before serverless existed (a config's
/// name is the hash of its variant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Capacity {
    Instances(Instances),
    Serverless(ServerlessCapacity),
}

impl Capacity {
    /// The kind of hosting this capacity is.
    pub fn hosting(&self) -> Hosting {
        match self {
            Capacity::Instances(_) => Hosting::Instances,
            Capacity::Serverless(_) => Hosting::Serverless,
        }
    }
}

impl fmt::Display for Capacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Capacity::Instances(instances) => instances.fmt(f),
            Capacity::Serverless(serverless) => serverless.fmt(f),
        }
    }
}

/// SageMaker's `ServerlessConfig`: memory per concurrent copy and the requests served at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerlessCapacity {
    pub memory_mb: u32,
    pub max_concurrency: u32,
}

impl fmt::Display for ServerlessCapacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "serverless, {} MB, {} at once",
            self.memory_mb, self.max_concurrency
        )
    }
}

impl From<spec::Serverless> for ServerlessCapacity {
    fn from(serverless: spec::Serverless) -> Self {
        ServerlessCapacity {
            memory_mb: serverless.memory_mb,
            max_concurrency: serverless.max_concurrency,
        }
    }
}

/// How an endpoint is hosted. A change replaces the endpoint: SageMaker cannot update an endpoint
/// between instances and serverless, and a move between real-time and async changes how every
/// client calls it, so nothing is gained by updating in place.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hosting {
    /// On instances, real-time (what every endpoint recorded before serverless existed was).
    #[default]
    Instances,
    Serverless,
    /// On instances, invoked asynchronously.
    Async,
}

impl fmt::Display for Hosting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hosting::Instances => "instances",
            Hosting::Serverless => "serverless",
            Hosting::Async => "async on instances",
        })
    }
}

/// How an endpoint config's variant is invoked: real-time, or asynchronously (SageMaker's
/// `AsyncInferenceConfig`: requests queued from the bucket's [`ASYNC_INPUT_PREFIX`], answers
/// written under [`ASYNC_OUTPUT_PREFIX`], failures under [`ASYNC_FAILURE_PREFIX`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Invocation {
    /// What every config recorded before async existed was.
    #[default]
    RealTime,
    Async(AsyncInference),
}

impl Invocation {
    pub fn is_real_time(&self) -> bool {
        *self == Invocation::RealTime
    }

    /// What the model's container must be ready for.
    pub fn mode(&self) -> InvocationMode {
        match self {
            Invocation::RealTime => InvocationMode::RealTime,
            Invocation::Async(_) => InvocationMode::Async,
        }
    }
}

impl fmt::Display for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invocation::RealTime => f.write_str("real-time"),
            Invocation::Async(inference) => inference.fmt(f),
        }
    }
}

/// Whether an endpoint config's variant captures its traffic (SageMaker's `DataCaptureConfig`):
/// a sample of requests and answers written under the bucket's [`CAPTURE_PREFIX`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataCapture {
    /// What every config recorded before data capture existed was.
    #[default]
    Off,
    Sampled {
        sample_percent: u32,
    },
}

impl DataCapture {
    pub fn is_off(&self) -> bool {
        *self == DataCapture::Off
    }
}

impl fmt::Display for DataCapture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataCapture::Off => f.write_str("off"),
            DataCapture::Sampled { sample_percent } => {
                write!(f, "{sample_percent}% of requests and answers to {CAPTURE_PREFIX}")
            }
        }
    }
}

impl From<Option<spec::DataCapture>> for DataCapture {
    fn from(capture: Option<spec::DataCapture>) -> Self {
        match capture {
            None => DataCapture::Off,
            Some(capture) => DataCapture::Sampled {
                sample_percent: capture.sample_percent,
            },
        }
    }
}

/// The one production variant every endpoint config has (also a folder of the captured traffic).
pub const VARIANT: &str = "AllTraffic";

/// Where captured traffic goes, under the deployment's bucket (then `<endpoint>/<variant>/
/// yyyy/mm/dd/hh/`, SageMaker's layout).
pub const CAPTURE_PREFIX: &str = "capture/";

/// Where async requests are read from, under the deployment's bucket.
pub const ASYNC_INPUT_PREFIX: &str = "async/input/";
/// Where async answers are written (`<inference id>.out`).
pub const ASYNC_OUTPUT_PREFIX: &str = "async/output/";
/// Where async failures are written (`<inference id>-error.out`).
pub const ASYNC_FAILURE_PREFIX: &str = "async/failures/";

/// SageMaker's `AsyncInferenceConfig` as orchestrate sets it: the queued requests each instance
/// works on at once; the output and failure locations are the bucket's async prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsyncInference {
    pub max_concurrent_invocations: u32,
}

impl fmt::Display for AsyncInference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "async, {} at once per instance, answers to {ASYNC_OUTPUT_PREFIX}",
            self.max_concurrent_invocations
        )
    }
}

impl From<spec::AsyncInference> for AsyncInference {
    fn from(inference: spec::AsyncInference) -> Self {
        AsyncInference {
            max_concurrent_invocations: inference.max_concurrent_invocations,
        }
    }
}

/// What a model's container is set up for: real-time requests (bodies up to 6 MB, answered within
/// seconds), or async ones (bodies up to 1 GB, up to an hour each).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvocationMode {
    /// What every model recorded before async existed was.
    #[default]
    RealTime,
    Async,
}

impl InvocationMode {
    pub fn is_real_time(&self) -> bool {
        *self == InvocationMode::RealTime
    }

    /// The container environment `model-image serve` reads for this mode: none for real-time (its
    /// defaults are SageMaker's real-time limits); for async, SageMaker's 1 GB payload limit and a
    /// body timeout as long as `InvokeEndpointAsync`'s default invocation timeout.
    pub fn serve_environment(self) -> Vec<(&'static str, String)> {
        match self {
            InvocationMode::RealTime => Vec::new(),
            InvocationMode::Async => vec![
                ("MODEL_IMAGE_MAX_PAYLOAD_MB", ASYNC_MAX_PAYLOAD_MB.to_string()),
                (
                    "MODEL_IMAGE_BODY_TIMEOUT",
                    ASYNC_INVOCATION_TIMEOUT_SECONDS.to_string(),
                ),
            ],
        }
    }
}

/// SageMaker's largest async payload: 1 GB.
pub const ASYNC_MAX_PAYLOAD_MB: u32 = 1024;
/// `InvokeEndpointAsync`'s default `InvocationTimeoutSeconds`.
pub const ASYNC_INVOCATION_TIMEOUT_SECONDS: u32 = 900;

impl fmt::Display for InvocationMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InvocationMode::RealTime => "real-time",
            InvocationMode::Async => "async (payloads up to 1 GB)",
        })
    }
}

/// Whether a model's container runs with network isolation (no network calls in or out). On by
/// default; serverless endpoints do not support it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkIsolation {
    /// What every model recorded before serverless existed was.
    #[default]
    Isolated,
    Open,
}

impl NetworkIsolation {
    pub fn enabled(self) -> bool {
        self == NetworkIsolation::Isolated
    }
}

impl fmt::Display for NetworkIsolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NetworkIsolation::Isolated => "on",
            NetworkIsolation::Open => "off (serverless does not support it)",
        })
    }
}

/// The endpoint metric a rollout alarm watches, with the statistic and comparison that go with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmMetric {
    /// `Invocation5XXErrors`, Sum per period, at or above the threshold.
    Invocation5xxErrors,
    /// `ModelLatency` (microseconds), p99 per period, above the threshold.
    ModelLatency,
}

impl AlarmMetric {
    pub const ALL: [AlarmMetric; 2] = [AlarmMetric::Invocation5xxErrors, AlarmMetric::ModelLatency];

    /// The metric's name in the `AWS/SageMaker` namespace.
    pub const fn metric_name(self) -> &'static str {
        match self {
            AlarmMetric::Invocation5xxErrors => "Invocation5XXErrors",
            AlarmMetric::ModelLatency => "ModelLatency",
        }
    }

    /// The suffix of the alarm's name after the deployment name.
    pub const fn name_suffix(self) -> &'static str {
        match self {
            AlarmMetric::Invocation5xxErrors => "invocation-5xx-errors",
            AlarmMetric::ModelLatency => "model-latency",
        }
    }

    /// The unit of the threshold, for people.
    pub const fn unit(self) -> &'static str {
        match self {
            AlarmMetric::Invocation5xxErrors => "errors",
            AlarmMetric::ModelLatency => "µs at p99",
        }
    }
}

impl fmt::Display for AlarmMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.metric_name())
    }
}

/// When a rollout alarm goes off: `datapoints` of the last `periods` one-minute periods breach
/// `threshold` (missing data does not breach).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AlarmRule {
    pub threshold: u64,
    pub datapoints: u32,
    pub periods: u32,
}

impl From<spec::AlarmRule> for AlarmRule {
    fn from(rule: spec::AlarmRule) -> Self {
        AlarmRule {
            threshold: rule.threshold,
            datapoints: rule.datapoints,
            periods: rule.periods,
        }
    }
}

impl fmt::Display for AlarmRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "threshold {} in {} of {} one-minute periods",
            self.threshold, self.datapoints, self.periods
        )
    }
}

/// The training job's hyperparameters as SageMaker passes them to the container: every value a
/// string, encoded once by `contract::hyperparameters` and decoded by the same code in model-image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Hyperparameters(pub BTreeMap<String, String>);

impl fmt::Display for Hyperparameters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        display_map(f, self.0.iter())
    }
}

/// An image in a repository, by digest (`repo@sha256:…`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ImageRef {
    pub repository: String,
    pub digest: Digest,
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.repository, self.digest)
    }
}

/// A duration compared to the second (SageMaker's stopping condition is in seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seconds(pub u64);

impl From<Duration> for Seconds {
    fn from(duration: Duration) -> Self {
        Seconds(duration.as_secs())
    }
}

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&spec::format_duration(Duration::from_secs(self.0)))
    }
}

/// A resource name another resource refers to (a model's training job, a config's model).
pub type Name = String;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_quote_values_that_hold_separators() {
        let tags: Tags = [("team", "ml; ops"), ("k", "a=b")].into_iter().collect();
        assert_eq!(tags.to_string(), r#"{k: "a=b", team: "ml; ops"}"#);
        let hyperparameters = Hyperparameters(BTreeMap::from([(
            "exclude".to_string(),
            r#"[" Flow ID"]"#.to_string(),
        )]));
        assert_eq!(hyperparameters.to_string(), r#"{exclude: "[\" Flow ID\"]"}"#);
    }

    #[test]
    fn every_channel_is_in_all() {
        // Exhaustive: a new channel fails to compile here until it is given a place in ALL.
        let position = |channel: Channel| match channel {
            Channel::Train => 0,
            Channel::Validation => 1,
        };
        for (i, channel) in Channel::ALL.into_iter().enumerate() {
            assert_eq!(position(channel), i, "{channel}");
        }
    }

    #[test]
    fn data_hashes_and_instances_read_plainly() {
        let hashes = DataHashes(BTreeMap::from([
            (Channel::Validation, DataHash("bb".into())),
            (Channel::Train, DataHash("aa".into())),
        ]));
        assert_eq!(hashes.to_string(), "train aa, validation bb");
        assert_eq!(DataHashes::default().to_string(), "none");
        let instances = Instances {
            count: 2,
            instance_type: InstanceType::new("ml.m5.large").unwrap(),
        };
        assert_eq!(instances.to_string(), "2 x ml.m5.large");
        assert_eq!(Seconds(5400).to_string(), "1h30m");
    }
}
