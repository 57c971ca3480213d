//! The AWS target: the engine's [`Target`] for one deployment in one AWS account and region.
//!
//! Names come from the deployment and the account (`<name>-<account>-<region>` for the bucket,
//! `<name>-sagemaker-execution`, `<name>-model-image`), so they are known before the first call.
//!
//! Each kind lives in its own module (`s3_bucket`, `training_data`, `iam_role`, `ecr_repository`,
//! `ecr_image`, `sagemaker_training_job`, `sagemaker_model`, `sagemaker_endpoint_config`,
//! `sagemaker_endpoint`, `endpoint_autoscaling`), which observes, applies, deletes and discovers it
//! ([`KindOnTarget`](engine::target::KindOnTarget)); this target names those modules in its
//! [`KindModules`] and its [`Target`] methods route to them through `engine::kind::dispatch`. A
//! resource is the deployment's only when it carries the deployment's `orchestrate:deployment` tag
//! (`AwsTarget::is_ours`): a same-named resource without it is never reported as owned, so `down`
//! cannot delete it.
//!
//! What stays here is the target's own: opening it (the account, from STS), the image (its digest
//! from the local cache, or a build kept for the push), the facts the desired state needs, the
//! deployment lock in the data bucket, and what is read of a running deployment (training metrics
//! and logs, invocations, the summary after `up`). Like every target, it never waits: the executor
//! polls, retries and times out.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use engine::desired::{ChannelData, DEPLOYMENT_TAG, DesiredState, Facts};
use engine::kind::{KindModules, Settings, dispatch};
use engine::resource::{Change, Desired, Kind, Observed, TrainingJobOutputs};
use engine::target::{
    Applied, AsyncInvocation, AsyncOutcome, AsyncRequest, BoxError, Deleted, Found, LockRequest,
    MonitorRequest, MonitorRun, Target, TargetError, Upstream,
};
use engine::training_output::MetricValues;
use engine::values::Digest;
use spec::Spec;

use crate::clients::{AccountError, Clients};
use crate::ecr_image::{Registry, RegistryError};
use crate::errors::AwsError;
use crate::iam_role::PolicyScope;
use crate::lock::{Fence, Lease, Lock, LockError, Released};
use crate::sagemaker_training_job::LogTail;
use crate::{
    cloudwatch_alarm, ecr_image, ecr_repository, endpoint_autoscaling, iam_role, s3_bucket,
    sagemaker_endpoint, sagemaker_endpoint_config, sagemaker_model, sagemaker_training_job, training_data,
};

/// How often pending SageMaker resources are polled.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// Overrides the poll interval, in milliseconds (an emulator answers faster than SageMaker).
pub const POLL_INTERVAL_ENV: &str = "ORCHESTRATE_POLL_INTERVAL_MS";

/// A deployment in one AWS account and region.
#[derive(Debug)]
pub struct AwsTarget {
    pub(crate) spec: Spec,
    pub(crate) clients: Clients,
    pub(crate) account: String,
    model_image_bin: PathBuf,
    /// The image built in this run, if any (pushed by `apply` of the image).
    built: Mutex<Option<image::BuiltImage>>,
    /// `ORCHESTRATE_REGISTRY`: push here instead of ECR's own registry endpoint.
    pub(crate) registry: Option<Registry>,
    poll_interval: Duration,
    logs: LogTail,
    /// The deployment lock's lease (how long it lives unrenewed, how often it is renewed).
    lease: Lease,
    /// The fence of the lock this target took last, while it is held: `apply` and `delete` refuse
    /// once it is lost.
    fence: Mutex<Option<Fence>>,
}

/// Why the AWS target cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Account(#[from] AccountError),
    /// `ORCHESTRATE_REGISTRY` is refused (plain HTTP to another machine, or not an address): checked
    /// before any request, so ECR's password is never sent there.
    #[error("cannot push to ORCHESTRATE_REGISTRY")]
    Registry(#[source] RegistryError),
}

impl AwsTarget {
    /// Opens the deployment with the standard credential chain in the spec's region; asks STS which
    /// account the credentials belong to (the one call before planning).
    pub async fn open(spec: &Spec, model_image_bin: &Path) -> Result<Self, OpenError> {
        let clients = Clients::load(spec.region.as_str()).await;
        Self::with_clients(spec, model_image_bin, clients).await
    }

    /// Opens the deployment with given clients (tests point them at an emulator).
    pub async fn with_clients(
        spec: &Spec,
        model_image_bin: &Path,
        clients: Clients,
    ) -> Result<Self, OpenError> {
        let registry = std::env::var(ecr_image::REGISTRY_ENV)
            .ok()
            .filter(|r| !r.trim().is_empty())
            .map(|r| r.parse::<Registry>())
            .transpose()
            .map_err(OpenError::Registry)?;
        let account = clients.identify().await?.to_string();
        Ok(Self {
            spec: spec.clone(),
            clients,
            account,
            model_image_bin: model_image_bin.to_path_buf(),
            built: Mutex::new(None),
            registry,
            poll_interval: std::env::var(POLL_INTERVAL_ENV)
                .ok()
                .and_then(|ms| ms.trim().parse().ok())
                .map_or(DEFAULT_POLL_INTERVAL, Duration::from_millis),
            logs: LogTail::default(),
            lease: Lease::DEFAULT,
            fence: Mutex::new(None),
        })
    }

    /// Holds the deployment lock with this lease instead of [`Lease::DEFAULT`] (tests).
    pub fn with_lease(mut self, lease: Lease) -> Self {
        self.lease = lease;
        self
    }

    /// Refuses a change once the deployment lock this target holds is lost (taken over by another
    /// run, or not renewed for so long that it may have been).
    fn fenced(&self, action: &'static str, kind: Kind, name: &str) -> Result<(), TargetError> {
        let fence = self.fence.lock().unwrap_or_else(|p| p.into_inner());
        match fence.as_ref().map(Fence::check) {
            Some(Err(lost)) => Err(TargetError::caused_by(action, kind, name, lost)),
            _ => Ok(()),
        }
    }

    /// Polls pending resources this often instead of every 5 seconds.
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Pushes to this registry instead of ECR's own endpoint (what `ORCHESTRATE_REGISTRY` sets).
    pub fn with_registry(mut self, registry: Option<Registry>) -> Self {
        self.registry = registry;
        self
    }

    pub fn clients(&self) -> &Clients {
        &self.clients
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    pub fn spec(&self) -> &spec::Spec {
        &self.spec
    }

    /// How often a wait inside one call (a monitor run) looks again.
    pub(crate) fn monitor_poll_interval(&self) -> Duration {
        self.poll_interval
    }

    /// The data bucket, `<name>-<account>-<region>`.
    pub fn bucket(&self) -> String {
        self.spec.bucket_name(&self.account)
    }

    /// What the execution role's inline policy grants access to: the deployment's bucket,
    /// repository and log groups.
    pub fn policy_scope(&self) -> PolicyScope {
        PolicyScope {
            bucket: self.bucket(),
            repository: self.spec.repository_name(),
            deployment: self.spec.name.to_string(),
            rollback_alarms: engine::desired::rollback_alarms(&self.spec),
            async_inference: self.spec.endpoint.invocation.is_async(),
            data_capture: self.spec.endpoint.data_capture.is_some(),
        }
    }

    /// Whether a resource's tags say it belongs to this deployment (its `orchestrate:deployment`
    /// tag names it): what every kind's discovery asks before reporting a resource as owned.
    pub(crate) fn is_ours<'a>(&self, mut tags: impl Iterator<Item = (&'a str, &'a str)>) -> bool {
        tags.any(|(key, value)| key == DEPLOYMENT_TAG && value == self.spec.name.as_str())
    }

    /// The name prefix of the deployment's SageMaker training jobs, models and endpoint configs
    /// (`<name>-`).
    pub(crate) fn name_prefix(&self) -> String {
        format!("{}-", self.spec.name)
    }

    /// The execution role the SageMaker resources of `state` run with.
    pub(crate) fn role_in(&self, state: &DesiredState) -> String {
        state
            .get(Kind::Role)
            .map(|role| role.name.clone())
            .unwrap_or_else(|| self.spec.role_name())
    }

    fn image_spec(&self) -> image::ImageSpec {
        image::ImageSpec::new(&self.model_image_bin, env!("CARGO_PKG_VERSION"))
    }

    fn image_error(&self, error: image::ImageError) -> AwsError {
        let name = self.model_image_bin.display().to_string();
        AwsError::other("build the image from", Kind::Image, &name, error)
    }

    /// The image built in this run, building it if needed.
    pub(crate) fn built_image(&self) -> Result<image::BuiltImage, AwsError> {
        let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(image) = built.as_ref() {
            return Ok(image.clone());
        }
        let image = image::build(&self.image_spec()).map_err(|e| self.image_error(e))?;
        *built = Some(image.clone());
        Ok(image)
    }
}

/// Each kind's module on AWS.
impl KindModules for AwsTarget {
    type Bucket = s3_bucket::S3Bucket;
    type TrainingData = training_data::TrainingData;
    type Role = iam_role::IamRole;
    type Repository = ecr_repository::EcrRepository;
    type Image = ecr_image::EcrImage;
    type TrainingJob = sagemaker_training_job::SageMakerTrainingJob;
    type Model = sagemaker_model::SageMakerModel;
    type EndpointConfig = sagemaker_endpoint_config::SageMakerEndpointConfig;
    type Alarm = cloudwatch_alarm::CloudWatchAlarm;
    type Endpoint = sagemaker_endpoint::SageMakerEndpoint;
    type Autoscaling = endpoint_autoscaling::EndpointAutoscaling;
}

impl Target for AwsTarget {
    type Lock = Lock;

    fn describe(&self) -> String {
        format!("aws ({}, {})", self.account, self.clients.region())
    }

    /// The image's manifest digest, from the local digest cache in the deployment's state folder
    /// when the binary is unchanged (see `image::cached_digest`); a build is kept for the push.
    fn image_digest(&self) -> Result<Digest, TargetError> {
        let folder = self.spec.local.state_dir.join(self.spec.name.as_str());
        // Only a cache: failing to create its folder costs a build, nothing else.
        let _ = std::fs::create_dir_all(&folder);
        let (digest, built) = image::cached_digest(&self.image_spec(), &folder.join("image-digest.json"))
            .map_err(|e| self.image_error(e))?;
        if let Some(built) = built {
            *self.built.lock().unwrap_or_else(|p| p.into_inner()) = Some(built);
        }
        Ok(digest)
    }

    /// Names in this account and the data hashes.
    fn facts(&self, image_digest: &Digest) -> Result<Facts, TargetError> {
        let channels = engine::desired::channel_sources(&self.spec)
            .into_iter()
            .map(|(channel, source)| {
                let path = training_data::local_path(channel, source)?;
                let sha256 = engine::names::data_sha256(path)
                    .map_err(|e| AwsError::other("hash", Kind::TrainingData, channel.as_str(), e))?;
                Ok(ChannelData::new(channel, sha256))
            })
            .collect::<Result<_, AwsError>>()?;
        Ok(Facts {
            bucket: self.bucket(),
            channels,
            role: self.spec.role_name(),
            repository: self.spec.repository_name(),
            image_digest: image_digest.clone(),
        })
    }

    /// The lock object in the data bucket ([`Lock`]) with the target's [`Lease`], renewed by its
    /// heartbeat for as long as the run holds it; its [`Fence`] guards `apply` and `delete` from
    /// then on. The bucket is created first when the run is about to create it anyway
    /// (`request.state` has it); without a bucket and without a state (a `down` of something never
    /// deployed) there is nothing to lock. A held lock is a [`LockError`] naming its holder, when it
    /// goes stale, and `--break-lock`. A bucket of the name in another account is none of ours: a
    /// run that wants the bucket stops ([`s3_bucket::NotThisAccounts`]); one without a state
    /// (`down`) has nothing to lock in it.
    async fn lock(&self, request: LockRequest<'_>) -> Result<Option<Lock>, BoxError> {
        let bucket = self.bucket();
        let wanted = match request.state.and_then(|state| state.get(Kind::Bucket)) {
            Some(Desired {
                name,
                settings: Settings::Bucket(settings),
                ..
            }) => Some((name, settings)),
            _ => None,
        };
        let owner = s3_bucket::owner(&self.clients, &bucket)
            .await
            .map_err(LockError::from)?;
        match (owner, wanted) {
            (s3_bucket::Owner::ThisAccount, _) => {}
            (s3_bucket::Owner::Nobody, Some((name, settings))) => {
                s3_bucket::apply(&self.clients, name, settings)
                    .await
                    .map_err(LockError::from)?
            }
            (s3_bucket::Owner::Nobody, None)
            | (s3_bucket::Owner::NotThisAccount(s3_bucket::NotThisAccounts::AnotherAccount { .. }), None) => {
                return Ok(None);
            }
            (s3_bucket::Owner::NotThisAccount(why), _) => {
                return Err(LockError::from(why.refusing(&bucket)).into());
            }
        }
        let lock = Lock::acquire(
            &self.clients,
            &bucket,
            request.owner,
            self.lease,
            request.break_lock,
        )
        .await?;
        *self.fence.lock().unwrap_or_else(|p| p.into_inner()) = Some(lock.fence());
        Ok(Some(lock))
    }

    /// Stops the lock's heartbeat and deletes the lock object if it is still this run's; a lock
    /// another run took over is left to it.
    async fn release(&self, lock: Lock) -> Result<(), BoxError> {
        {
            let mut fence = self.fence.lock().unwrap_or_else(|p| p.into_inner());
            if fence.as_ref().is_some_and(|f| f.same_lock(&lock.fence())) {
                *fence = None;
            }
        }
        match lock.release(&self.clients).await? {
            Released::Deleted | Released::Gone => {}
            Released::TakenOver { by } => {
                tracing::warn!(by, "the deployment lock was taken over; left to its new holder");
            }
        }
        Ok(())
    }

    fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    async fn observe(&self, desired: &Desired) -> Result<Observed, TargetError> {
        dispatch::observe(self, desired).await
    }

    async fn owned(&self) -> Result<Vec<Found>, TargetError> {
        dispatch::owned(self).await
    }

    async fn apply(
        &self,
        desired: &Desired,
        change: &Change,
        upstream: Upstream<'_>,
    ) -> Result<Applied, TargetError> {
        self.fenced("change", desired.kind(), &desired.name)?;
        dispatch::apply(self, desired, change, upstream).await
    }

    async fn delete(&self, found: &Found) -> Result<Deleted, TargetError> {
        self.fenced("delete", found.kind, &found.name)?;
        dispatch::delete(self, found).await
    }

    async fn training_metrics(&self, job: &TrainingJobOutputs) -> Result<MetricValues, TargetError> {
        Ok(sagemaker_training_job::metrics(&self.clients, job).await?)
    }

    async fn new_log_lines(&self, desired: &Desired) -> Vec<String> {
        if desired.kind() != Kind::TrainingJob {
            return Vec::new();
        }
        match sagemaker_training_job::latest_attempt(&self.clients, &desired.name).await {
            Ok(Some((_, attempt))) => self.logs.new_lines(&self.clients, &attempt).await,
            _ => Vec::new(),
        }
    }

    async fn invoke(
        &self,
        endpoint: &str,
        content_type: &str,
        accept: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), TargetError> {
        Ok(crate::invocations::invoke(&self.clients, endpoint, content_type, accept, body).await?)
    }

    async fn invoke_async(
        &self,
        endpoint: &str,
        request: &AsyncRequest<'_>,
    ) -> Result<AsyncInvocation, TargetError> {
        Ok(crate::invocations::invoke_async(&self.clients, &self.bucket(), endpoint, request).await?)
    }

    async fn await_async(
        &self,
        invocation: &AsyncInvocation,
        wait: Duration,
        answer_file: &std::path::Path,
    ) -> Result<AsyncOutcome, TargetError> {
        Ok(crate::invocations::await_async(&self.clients, invocation, wait, answer_file).await?)
    }

    async fn monitor(&self, endpoint: &str, request: &MonitorRequest) -> Result<MonitorRun, TargetError> {
        Ok(crate::monitor::run(self, endpoint, request).await?)
    }

    async fn latest_monitor_run(&self, endpoint: &str) -> Result<Option<MonitorRun>, TargetError> {
        Ok(crate::monitor::latest(self, endpoint).await?)
    }

    async fn summary(&self, state: &DesiredState) -> Vec<(String, String)> {
        let mut facts = vec![
            ("account".to_string(), self.account.clone()),
            ("region".to_string(), self.clients.region().to_string()),
        ];
        if let Some(bucket) = state.get(Kind::Bucket) {
            facts.push(("bucket".to_string(), format!("s3://{}", bucket.name)));
        }
        if let Some(Settings::Image(image)) = state.get(Kind::Image).map(|d| &d.settings) {
            facts.push(("image".to_string(), image.image.to_string()));
        }
        if state.get(Kind::TrainingJob).is_some() {
            facts.push((
                "training log".to_string(),
                format!(
                    "CloudWatch Logs {}, streams {}-<attempt>/…",
                    crate::sagemaker_training_job::LOG_GROUP,
                    state.training_job()
                ),
            ));
        }
        if let Some(endpoint) = state.get(Kind::Endpoint) {
            facts.push(("endpoint".to_string(), endpoint.name.clone()));
            facts.push((
                "invoke".to_string(),
                format!(
                    "orchestrate invoke FILE (sagemaker-runtime InvokeEndpoint on `{}`)",
                    endpoint.name
                ),
            ));
        }
        facts
    }
}
