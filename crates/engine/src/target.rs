//! The boundary between the engine and a place resources live (the local machine, an AWS account).
//!
//! A target observes, applies, deletes and lists what a deployment owns, and gives the engine what
//! the desired state needs (the image digest, the [`Facts`]) and the deployment's lock. It never
//! decides what to do (that is `resource::diff`) and never waits: an operation that cannot finish
//! at once says so ([`Applied::Pending`], [`Applied::NotYet`], [`Deleted::Pending`]) and the
//! executor polls, retries and times out. Every method is idempotent and tolerates being run after
//! an interrupted run.
//!
//! Each target implements [`KindOnTarget`] once per kind, in that kind's module, and names the
//! modules in its [`KindModules`](crate::kind::KindModules) (generated from the kind list, so a new
//! kind is a compile error in every target until it has its module); `kind::dispatch` routes a
//! resource to its module.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::desired::{DesiredState, Facts};
use crate::resource::{Change, Desired, Kind, Observed, Outputs, TrainingJobOutputs};
use crate::training_output::MetricValues;
use crate::values::Digest;

/// A cause of any type, kept as the source of the error that carries it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long the executor keeps calling `delete` on a resource whose deletion is under way.
pub const DELETE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// A resource by kind and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ResourceId {
    pub kind: Kind,
    pub name: String,
}

impl ResourceId {
    pub fn new(kind: Kind, name: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.into(),
        }
    }
}

/// A resource the target found tagged with (or recorded for) the deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    pub kind: Kind,
    /// The name the target deletes it by.
    pub name: String,
    /// The resources it uses (an endpoint config's model, a model's image): what must be kept with
    /// it for a rollback.
    pub uses: Vec<ResourceId>,
}

impl Found {
    pub fn new(kind: Kind, name: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.into(),
            uses: Vec::new(),
        }
    }

    pub fn using(mut self, kind: Kind, name: impl Into<String>) -> Self {
        self.uses.push(ResourceId::new(kind, name));
        self
    }

    /// The name of the resource of `kind` it uses, if any.
    pub fn used(&self, kind: Kind) -> Option<&str> {
        self.uses
            .iter()
            .find(|id| id.kind == kind)
            .map(|id| id.name.as_str())
    }
}

/// What `apply` achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Done; the resource is usable and makes these outputs known.
    Ready(Outputs),
    /// Started; the executor polls `observe` until it is ready (a training job, an endpoint).
    Pending,
    /// Cannot go on yet, for a reason that passes (SageMaker cannot assume a role IAM is still
    /// propagating; a local server started but not answering yet): the executor calls `apply`
    /// again after the poll interval, for at most `retry_for` (and the resource's wait timeout).
    NotYet { reason: String, retry_for: Duration },
}

/// What `delete` achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// Gone (or never there).
    Gone,
    /// The deletion is under way (SageMaker is still removing an endpoint), in the state given: the
    /// executor calls `delete` again after the poll interval, for at most [`DELETE_TIMEOUT`].
    Pending(String),
}

/// What a resource being applied may use of the others: the whole desired state, and the outputs
/// of the resources already applied or found ready (a model takes its training job's artifact).
#[derive(Debug, Clone, Copy)]
pub struct Upstream<'a> {
    pub state: &'a DesiredState,
    pub outputs: &'a BTreeMap<ResourceId, Outputs>,
}

impl<'a> Upstream<'a> {
    /// The training job's completed attempt, once it is ready.
    pub fn training_job(&self) -> Option<&'a TrainingJobOutputs> {
        let job = self.state.get(Kind::TrainingJob)?;
        match self.outputs.get(&ResourceId::new(Kind::TrainingJob, &job.name))? {
            Outputs::TrainingJob(outputs) => Some(outputs),
            _ => None,
        }
    }
}

/// A target's failure: what it was doing on which resource, and why. The cause stays a typed
/// source (an AWS error with its class and request id, an I/O error with its path), so every layer
/// can print the whole chain; the message itself does not repeat it.
#[derive(Debug, thiserror::Error)]
#[error("{action} {kind} `{name}`")]
pub struct TargetError {
    pub action: &'static str,
    pub kind: Kind,
    pub name: String,
    /// Whether the same call may well succeed later (throttling, a 5xx, a timeout, a connection
    /// that failed): a wait keeps polling through such errors, within its budget.
    pub transience: Transience,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// One request for an async endpoint: a payload file and its media types.
#[derive(Debug, Clone, Copy)]
pub struct AsyncRequest<'a> {
    pub input: &'a std::path::Path,
    pub content_type: &'a str,
    pub accept: &'a str,
}

/// A queued async request: its id and where its payload, answer and failure are (`s3://` URLs on
/// AWS, files of the local bucket folder locally).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AsyncInvocation {
    pub inference_id: String,
    pub input_location: String,
    pub output_location: String,
    pub failure_location: String,
}

/// How an async request ended, as far as a wait saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum AsyncOutcome {
    /// The answer is at the output location (and was copied to the answer file).
    Answered { bytes: u64 },
    /// The failure location holds the reason.
    Failed { reason: String },
    /// Neither was written within the wait.
    StillQueued,
}

/// A drift monitor run asked for now: the captured traffic of the last `window`, judged at
/// `drift_threshold`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MonitorRequest {
    pub window: Duration,
    pub drift_threshold: f64,
}

/// A finished drift monitor run: its name (a processing job on AWS, a folder locally; names sort
/// by time), where its report files are, and what the report says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonitorRun {
    pub name: String,
    pub report_location: String,
    pub report: contract::drift::DriftSummary,
}

/// Whether a failed call is worth repeating unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transience {
    /// The target was throttled, failed on its side or could not be reached: later may work.
    Transient,
    /// Repeating the call will fail the same way (refused, invalid, not allowed).
    Permanent,
}

impl TargetError {
    /// A failure whose cause is only a message.
    pub fn new(action: &'static str, kind: Kind, name: &str, message: impl std::fmt::Display) -> Self {
        Self::caused_by(action, kind, name, message.to_string())
    }

    /// A failure caused by `source`.
    pub fn caused_by(
        action: &'static str,
        kind: Kind,
        name: &str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            action,
            kind,
            name: name.to_string(),
            transience: Transience::Permanent,
            source: source.into(),
        }
    }

    /// The same failure, marked as worth repeating ([`Transience::Transient`]).
    pub fn transient(mut self) -> Self {
        self.transience = Transience::Transient;
        self
    }

    pub fn is_transient(&self) -> bool {
        self.transience == Transience::Transient
    }
}

/// An error and each of its sources, `: `-joined, for one-line reports (warnings, JSON).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What a run that changes something asks of the deployment's lock.
#[derive(Debug, Clone, Copy)]
pub struct LockRequest<'a> {
    /// The desired state when the run may create the deployment (the AWS lock lives in the bucket,
    /// which is then created first); `None` for a run that only removes (`down`): without a
    /// deployment there is nothing to lock.
    pub state: Option<&'a DesiredState>,
    /// Who holds the lock, for the message a concurrent run gets (`user@host pid N`).
    pub owner: &'a str,
    /// `--break-lock`: take the lock even if another run holds it.
    pub break_lock: bool,
}

/// One kind of resource on one target: how it is observed, applied, deleted and discovered. Each
/// target implements it once per kind, in that kind's module; the executor reaches it through the
/// target's [`Target`] methods, which route by kind (`kind::dispatch`).
#[allow(async_fn_in_trait)]
pub trait KindOnTarget<T> {
    /// The kind's typed settings (`kind::BucketSettings`…).
    type Settings;

    /// What exists of the resource `name` (a training job: its latest attempt).
    async fn observe(target: &T, name: &str, settings: &Self::Settings) -> Result<Observed, TargetError>;

    /// Makes the resource match `settings`, given the change `diff` decided.
    async fn apply(
        target: &T,
        name: &str,
        settings: &Self::Settings,
        change: &Change,
        upstream: Upstream<'_>,
    ) -> Result<Applied, TargetError>;

    /// Deletes the resource; deleting what is already gone succeeds.
    async fn delete(target: &T, name: &str) -> Result<Deleted, TargetError>;

    /// Every resource of this kind the deployment owns, desired or not.
    async fn owned(target: &T) -> Result<Vec<Found>, TargetError>;
}

/// One place a deployment can live.
#[allow(async_fn_in_trait)]
pub trait Target {
    /// A held deployment lock, given back with [`release`](Target::release).
    type Lock;

    /// `local (.orchestrate/iot-anomaly)`, `aws (123456789012, us-east-1)`.
    fn describe(&self) -> String;

    /// The manifest digest of the image the deployment runs, built from the model-image binary
    /// (or read from a cache of an unchanged binary); a build is kept for applying the image.
    fn image_digest(&self) -> Result<Digest, TargetError>;

    /// What the desired state needs from the target: its resource names and the data hashes.
    fn facts(&self, image_digest: &Digest) -> Result<Facts, TargetError>;

    /// Takes the deployment's lock for a run that changes something; `None` when there is nothing
    /// to lock (see [`LockRequest::state`]). A lock another run holds is an error naming it.
    async fn lock(&self, request: LockRequest<'_>) -> Result<Option<Self::Lock>, BoxError>;

    /// Gives a lock back. The run ends the same way whether it succeeded, failed or was interrupted.
    async fn release(&self, lock: Self::Lock) -> Result<(), BoxError>;

    /// How often the executor polls a pending resource.
    fn poll_interval(&self) -> Duration {
        Duration::from_secs(5)
    }

    /// What exists for a desired resource. A training job is found by its base name: the target
    /// reports its latest attempt.
    async fn observe(&self, desired: &Desired) -> Result<Observed, TargetError>;

    /// Everything that belongs to the deployment, desired or not (for orphans and teardown).
    async fn owned(&self) -> Result<Vec<Found>, TargetError>;

    /// Makes one resource match `desired`, given the change `diff` decided. `upstream` gives the
    /// other resources and the outputs of those already there (a training job needs its data, role
    /// and image; a model its training job's artifact). Returns without waiting.
    async fn apply(
        &self,
        desired: &Desired,
        change: &Change,
        upstream: Upstream<'_>,
    ) -> Result<Applied, TargetError>;

    /// Deletes one resource (a training job: stops a running attempt); deleting what is already
    /// gone succeeds. Returns without waiting.
    async fn delete(&self, found: &Found) -> Result<Deleted, TargetError>;

    /// The validation metrics a completed training job attempt recorded (`pr_auc`, `roc_auc`, `mcc`,
    /// `f1`…), read from its model artifact.
    async fn training_metrics(&self, job: &TrainingJobOutputs) -> Result<MetricValues, TargetError>;

    /// Log lines a pending resource wrote since the last call (a training job's log).
    async fn new_log_lines(&self, _desired: &Desired) -> Vec<String> {
        Vec::new()
    }

    /// Sends one request to the deployment's endpoint (`/invocations`): the status code and body.
    async fn invoke(
        &self,
        endpoint: &str,
        content_type: &str,
        accept: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), TargetError>;

    /// Queues one request at the deployment's async endpoint: the payload file is uploaded
    /// (streamed) under the bucket's `async/input/`, then the endpoint is invoked with its location.
    /// Returns where the answer or the failure will be written; [`Target::await_async`] waits for it.
    async fn invoke_async(
        &self,
        endpoint: &str,
        _request: &AsyncRequest<'_>,
    ) -> Result<AsyncInvocation, TargetError> {
        Err(TargetError::new(
            "invoke asynchronously",
            Kind::Endpoint,
            endpoint,
            "this target has no asynchronous endpoints",
        ))
    }

    /// Waits up to `wait` (polling) for the answer or failure of an async request; an answer is
    /// copied, streamed, into `answer_file`.
    async fn await_async(
        &self,
        invocation: &AsyncInvocation,
        _wait: Duration,
        _answer_file: &std::path::Path,
    ) -> Result<AsyncOutcome, TargetError> {
        Err(TargetError::new(
            "wait for the answer of",
            Kind::Endpoint,
            &invocation.inference_id,
            "this target has no asynchronous endpoints",
        ))
    }

    /// Runs the drift monitor now on the endpoint's captured traffic (`model-image monitor`: on
    /// AWS a processing job with the deployment's image, locally the image's binary on the bucket
    /// folder) and returns its report, which stays where [`Target::latest_monitor_run`] finds it.
    async fn monitor(&self, endpoint: &str, _request: &MonitorRequest) -> Result<MonitorRun, TargetError> {
        Err(TargetError::new(
            "monitor",
            Kind::Endpoint,
            endpoint,
            "this target has no drift monitor",
        ))
    }

    /// The report of the latest finished monitor run (by `orchestrate monitor` or, on AWS, the
    /// monitoring schedule), if any.
    async fn latest_monitor_run(&self, _endpoint: &str) -> Result<Option<MonitorRun>, TargetError> {
        Ok(None)
    }

    /// Facts to show after `up`: the endpoint URL, where the metrics are.
    async fn summary(&self, _state: &DesiredState) -> Vec<(String, String)> {
        Vec::new()
    }
}
