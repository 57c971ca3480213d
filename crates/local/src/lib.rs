//! The embedded local target of `orchestrate` (DESIGN.md §8): the same resource kinds as on AWS,
//! as folders, JSON records and local processes, so a fresh clone deploys without an AWS account.
//!
//! The bucket is a folder holding the uploaded, content-addressed data; the role, repository,
//! endpoint config and autoscaling policy are records of their typed settings (one implementation,
//! `record`); the image is built by the image crate exactly as for AWS and kept as a
//! `docker load`-able archive beside the binary it ships; a training job is the real
//! `model-image train` on the SageMaker layout (detached, so an interrupted `up` leaves it running and
//! the next one re-attaches), and a completed attempt makes its model folder known as its outputs; a
//! model is that folder as `model.tar.gz`; the endpoint is a background `model-image serve` on
//! 127.0.0.1, checked with `/ping` (a server that died or does not answer is a failed endpoint, which
//! `up` replaces). Training jobs and endpoints run the binary copied into the image's folder, so they
//! run exactly what was imaged. Locally nothing scales: the autoscaling policy is recorded, and one
//! server process serves.
//!
//! Each kind has its module implementing `engine::target::KindOnTarget` for [`LocalTarget`]
//! (`bucket`, `training_data`, `image`, `training_job`, `model`, `endpoint`, and `record` once for
//! the four record-only kinds); the `engine::kind::KindModules` impl names them and the [`Target`]
//! methods route to them through `engine::kind::dispatch`. Nothing here waits for a resource: a
//! started training job is [`Applied::Pending`] (the executor polls `observe`), a starting server
//! is [`Applied::NotYet`] (the executor calls `apply` again); only stopping a process waits, as a
//! bounded kill.
//!
//! State lives in one private folder per deployment (see [`state`]); the state lock
//! ([`Target::lock`]) keeps two runs apart. The target does not trust its own records: every path
//! read back from one must resolve inside the state folder ([`contained`]), every recorded pid
//! must be a process it started for that very resource ([`process`]), and the binary it runs must
//! be the image's own copy with the imaged digest; a record that fails is an error naming it, and
//! nothing is deleted or signalled on its word. The CLI calls, in order: [`LocalTarget::open`], [`Target::lock`],
//! [`Target::image_digest`] (or [`LocalTarget::build_image`]), [`Target::facts`], then
//! `engine::desired_state` and the `engine::executor` functions with the target, and
//! [`Target::release`] when the run ends.

mod async_invocation;
mod bucket;
pub mod contained;
mod endpoint;
pub mod error;
mod front;
mod image;
pub mod log_tail;
mod model;
mod monitor;
pub mod process;
mod record;
pub mod state;
mod training_data;
mod training_job;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use engine::desired::{ChannelData, DesiredState, Facts};
use engine::kind::{
    AlarmSettings, AutoscalingSettings, EndpointConfigSettings, RepositorySettings, RoleSettings,
};
use engine::resource::{Change, Desired, Kind, Observed, TrainingJobOutputs};
use engine::target::{
    Applied, AsyncInvocation, AsyncOutcome, AsyncRequest, BoxError, Deleted, Found, LockRequest,
    MonitorRequest, MonitorRun, Target, TargetError, Upstream,
};
use engine::training_output::MetricValues;
use engine::values::{Channel, Digest};
use spec::{DataSource, Spec};

pub use error::LocalError;
pub use state::StateLock;

use crate::contained::ContainedPath;
use crate::error::target_error;
use crate::log_tail::LogTail;
use crate::state::{Record, State};

/// How often the executor polls a pending local resource.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// A deployment on this machine.
#[derive(Debug)]
pub struct LocalTarget {
    spec: Spec,
    state: State,
    model_image_bin: PathBuf,
    built: Mutex<Option<::image::BuiltImage>>,
    logs: LogTail,
    /// The endpoint servers this target started and waits for.
    endpoint_starts: endpoint::StartedServers,
    http: reqwest::Client,
}

impl LocalTarget {
    /// The local target of `spec`'s deployment, with state in `<local.state_dir>/<name>/`
    /// (`local.state_dir` is already resolved against deploy.yaml's folder by the spec crate).
    /// `model_image_bin` is the compiled `model-image` the image ships. Nothing is created yet; an
    /// existing state folder is made private (mode 0700).
    pub fn open(spec: &Spec, model_image_bin: &Path) -> Result<LocalTarget, LocalError> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|source| LocalError::Http {
                url: "http://127.0.0.1".into(),
                source,
            })?;
        let state = State::new(&spec.local.state_dir, spec.name.as_str());
        state.make_private()?;
        Ok(LocalTarget {
            spec: spec.clone(),
            state,
            model_image_bin: model_image_bin.to_path_buf(),
            built: Mutex::new(None),
            logs: LogTail::default(),
            endpoint_starts: endpoint::StartedServers::default(),
            http,
        })
    }

    /// The deployment's state folder.
    pub fn state_dir(&self) -> &Path {
        self.state.root()
    }

    /// Builds the model-image container image from the binary given to [`open`](Self::open) (see
    /// [`build_image`]) and remembers it, so applying the image writes this very build.
    pub fn build_image(&self) -> Result<::image::BuiltImage, LocalError> {
        let built = build_image(&self.model_image_bin)?;
        *self.built.lock().unwrap_or_else(|p| p.into_inner()) = Some(built.clone());
        Ok(built)
    }

    /// The local data source of a channel.
    fn channel_source(&self, channel: Channel) -> Option<&DataSource> {
        engine::desired::channel_sources(&self.spec)
            .into_iter()
            .find(|(have, _)| *have == channel)
            .map(|(_, source)| source)
    }

    /// The URL the deployment's endpoint serves on, if it was started.
    pub fn endpoint_url(&self) -> Result<Option<String>, LocalError> {
        endpoint::url(self, self.spec.name.as_str())
    }

    /// Every record of `kind`, whatever its details (for a kind's discovery).
    fn records(&self, kind: Kind) -> Result<Vec<Record<serde_json::Value>>, TargetError> {
        self.state
            .list(kind)
            .map_err(|e| target_error("list", kind, &self.state.root().display().to_string(), e))
    }

    /// Every recorded resource of `kind`, for the discovery of kinds that use nothing else.
    fn found(&self, kind: Kind) -> Result<Vec<Found>, TargetError> {
        Ok(self
            .records(kind)?
            .into_iter()
            .map(|record| Found::new(kind, record.name))
            .collect())
    }
}

/// The module of each kind on the local target.
impl engine::kind::KindModules for LocalTarget {
    type Bucket = bucket::LocalBucket;
    type TrainingData = training_data::LocalTrainingData;
    type Role = record::Recorded<RoleSettings>;
    type Repository = record::Recorded<RepositorySettings>;
    type Image = image::LocalImage;
    type TrainingJob = training_job::LocalTrainingJob;
    type Model = model::LocalModel;
    type EndpointConfig = record::Recorded<EndpointConfigSettings>;
    type Alarm = record::Recorded<AlarmSettings>;
    type Endpoint = endpoint::LocalEndpoint;
    type Autoscaling = record::Recorded<AutoscalingSettings>;
}

/// Builds the model-image container image from `model_image_bin`, reproducibly (the same binary
/// gives the same manifest digest), labelled with this workspace's version.
pub fn build_image(model_image_bin: &Path) -> Result<::image::BuiltImage, LocalError> {
    ::image::build(&image_spec(model_image_bin)).map_err(|source| LocalError::Image {
        path: model_image_bin.to_path_buf(),
        source,
    })
}

/// What the image is built from: the binary, labelled with this workspace's version.
pub fn image_spec(model_image_bin: &Path) -> ::image::ImageSpec {
    ::image::ImageSpec::new(model_image_bin, env!("CARGO_PKG_VERSION"))
}

/// The local bucket: `<name>-local` (there is no account or region to put in the name).
pub fn bucket_name(spec: &Spec) -> String {
    format!("{}-local", spec.name)
}

/// The execution role, named as on AWS.
pub fn role_name(spec: &Spec) -> String {
    spec.role_name()
}

/// The image repository, named as on AWS.
pub fn repository_name(spec: &Spec) -> String {
    spec.repository_name()
}

fn data_hash(channel: Channel, source: &DataSource) -> Result<String, LocalError> {
    match source {
        DataSource::LocalFile(path) | DataSource::LocalDir(path) => {
            engine::names::data_sha256(path).map_err(|source| LocalError::HashData {
                path: path.clone(),
                source,
            })
        }
        DataSource::S3 { .. } => Err(LocalError::RemoteData {
            channel,
            location: source.to_string(),
        }),
    }
}

/// Removes a folder of the state and everything in it; a missing one is fine.
fn remove_dir_all(kind: Kind, name: &str, path: &ContainedPath) -> Result<(), LocalError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(LocalError::Io {
            kind,
            name: name.to_string(),
            action: "remove",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Maps an I/O error of `action` on `path` for a resource.
fn io_error(
    kind: Kind,
    name: &str,
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> LocalError {
    let (name, path) = (name.to_string(), path.to_path_buf());
    move |source| LocalError::Io {
        kind,
        name,
        action,
        path,
        source,
    }
}

impl Target for LocalTarget {
    /// The state folder's file lock: the OS releases it whatever happens to the run.
    type Lock = StateLock;

    fn describe(&self) -> String {
        format!("local ({})", self.state.root().display())
    }

    /// The manifest digest of the image [`build_image`](LocalTarget::build_image) would build,
    /// without building it when the binary is unchanged since the last build (see
    /// [`::image::cached_digest`]; the cache lives in the state folder). A cache miss builds and
    /// remembers the image, as `build_image` does. This keeps a no-op `status` or `up` fast; the
    /// image is built lazily if it must be applied.
    fn image_digest(&self) -> Result<Digest, TargetError> {
        let spec = image_spec(&self.model_image_bin);
        let cache = self.state.digest_cache();
        // The image crate writes the cache in place: never through a symlink.
        state::remove_symlink(&cache).map_err(|source| {
            let error = io_error(Kind::Image, &repository_name(&self.spec), "remove", &cache)(source);
            target_error("build", Kind::Image, &repository_name(&self.spec), error)
        })?;
        let (digest, built) = ::image::cached_digest(&spec, &cache).map_err(|source| {
            let error = LocalError::Image {
                path: self.model_image_bin.clone(),
                source,
            };
            target_error("build", Kind::Image, &repository_name(&self.spec), error)
        })?;
        if let Some(built) = built {
            *self.built.lock().unwrap_or_else(|p| p.into_inner()) = Some(built);
        }
        Ok(digest)
    }

    /// The facts the desired state needs: resource names on this target and the data hashes.
    /// `image_digest` is the manifest digest of [`build_image`](LocalTarget::build_image).
    fn facts(&self, image_digest: &Digest) -> Result<Facts, TargetError> {
        let channels = engine::desired::channel_sources(&self.spec)
            .into_iter()
            .map(|(channel, source)| {
                let sha256 = data_hash(channel, source)
                    .map_err(|e| target_error("hash", Kind::TrainingData, channel.as_str(), e))?;
                Ok(ChannelData::new(channel, sha256))
            })
            .collect::<Result<_, TargetError>>()?;
        Ok(Facts {
            bucket: bucket_name(&self.spec),
            channels,
            role: role_name(&self.spec),
            repository: repository_name(&self.spec),
            image_digest: image_digest.clone(),
        })
    }

    /// Takes the state folder's lock (exclusive, not waiting), to hold for the whole `up`, `down`
    /// or `rollback`; a concurrent run gets [`LocalError::Locked`] naming the holder's pid and
    /// command. A run that cannot create the deployment (`down`) has nothing to guard while the
    /// deployment has no state folder, and must not leave one behind: as on AWS, where there is no
    /// lock without the bucket. `break_lock` has nothing to break here: the OS releases a file
    /// lock when its holder ends, so a held one belongs to a run still going.
    async fn lock(&self, request: LockRequest<'_>) -> Result<Option<StateLock>, BoxError> {
        if request.state.is_none() && !self.state.root().exists() {
            return Ok(None);
        }
        self.state.lock().map(Some).map_err(BoxError::from)
    }

    /// Gives the lock back, after tidying the state folder ([`State::tidy`]): after `down`, only
    /// the lock file stays, even when an earlier `down` was killed half-way.
    async fn release(&self, lock: StateLock) -> Result<(), BoxError> {
        self.state.tidy();
        drop(lock);
        Ok(())
    }

    fn poll_interval(&self) -> Duration {
        POLL_INTERVAL
    }

    async fn observe(&self, desired: &Desired) -> Result<Observed, TargetError> {
        engine::kind::dispatch::observe(self, desired).await
    }

    async fn owned(&self) -> Result<Vec<Found>, TargetError> {
        engine::kind::dispatch::owned(self).await
    }

    async fn apply(
        &self,
        desired: &Desired,
        change: &Change,
        upstream: Upstream<'_>,
    ) -> Result<Applied, TargetError> {
        engine::kind::dispatch::apply(self, desired, change, upstream).await
    }

    async fn delete(&self, found: &Found) -> Result<Deleted, TargetError> {
        engine::kind::dispatch::delete(self, found).await
    }

    async fn training_metrics(&self, job: &TrainingJobOutputs) -> Result<MetricValues, TargetError> {
        training_job::metrics(self, job)
            .map_err(|e| target_error("read metrics of", Kind::TrainingJob, &job.attempt, e))
    }

    async fn new_log_lines(&self, desired: &Desired) -> Vec<String> {
        match desired.kind() {
            Kind::TrainingJob => training_job::new_log_lines(self, &desired.name),
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
        endpoint::invoke(self, endpoint, content_type, accept, body)
            .await
            .map_err(|e| target_error("invoke", Kind::Endpoint, endpoint, e))
    }

    async fn invoke_async(
        &self,
        endpoint: &str,
        request: &AsyncRequest<'_>,
    ) -> Result<AsyncInvocation, TargetError> {
        async_invocation::invoke_async(self, endpoint, request)
            .await
            .map_err(|e| target_error("invoke asynchronously", Kind::Endpoint, endpoint, e))
    }

    /// Locally the request was answered before `invoke_async` returned: nothing to wait for.
    async fn await_async(
        &self,
        invocation: &AsyncInvocation,
        _wait: Duration,
        answer_file: &Path,
    ) -> Result<AsyncOutcome, TargetError> {
        async_invocation::await_async(invocation, answer_file)
            .await
            .map_err(|e| target_error("read the answer of", Kind::Endpoint, &invocation.inference_id, e))
    }

    async fn monitor(&self, endpoint: &str, request: &MonitorRequest) -> Result<MonitorRun, TargetError> {
        monitor::run(self, endpoint, request)
            .await
            .map_err(|e| target_error("monitor", Kind::Endpoint, endpoint, e))
    }

    async fn latest_monitor_run(&self, endpoint: &str) -> Result<Option<MonitorRun>, TargetError> {
        monitor::latest(self, endpoint)
            .map_err(|e| target_error("read the monitor report of", Kind::Endpoint, endpoint, e))
    }

    async fn summary(&self, state: &DesiredState) -> Vec<(String, String)> {
        let mut facts = Vec::new();
        if let Ok(Some(url)) = endpoint::url(self, &state.deployment) {
            facts.push(("endpoint URL".to_string(), url));
        }
        if let Some(files) = training_job::outputs(self, state.training_job()) {
            facts.push(("metrics".to_string(), files.metrics.display().to_string()));
            facts.push(("report".to_string(), files.report.display().to_string()));
            facts.push(("training log".to_string(), files.log.display().to_string()));
        }
        facts.push(("state".to_string(), self.state.root().display().to_string()));
        facts
    }
}

#[cfg(test)]
mod tests {
    use std::any::TypeId;
    use std::collections::BTreeMap;

    use engine::Settings;
    use engine::kind::KindModules;
    use engine::resource::{Lifecycle, Outputs};
    use engine::target::{KindOnTarget, ResourceId};

    use super::*;

    /// A spec for deployment `iot` with a one-row CSV in `dir`.
    pub(crate) fn spec(dir: &Path) -> Spec {
        std::fs::write(dir.join("train.csv"), "a,Label\n1,Normal\n").unwrap();
        let yaml = "version: 1\nname: iot\ndata: {train: train.csv}\n";
        spec::parse(yaml, "deploy.yaml", dir).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn facts_name_resources_and_hash_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(dir.path());
        let target = LocalTarget::open(&spec, Path::new("model-image")).unwrap();
        let digest = Digest::sha256(b"");
        let facts = target.facts(&digest).unwrap();
        assert_eq!(facts.bucket, "iot-local");
        assert_eq!(facts.role, "iot-sagemaker-execution");
        assert_eq!(facts.repository, "iot-model-image");
        let want = engine::names::data_sha256(&dir.path().join("train.csv")).unwrap();
        assert_eq!(facts.channels, vec![ChannelData::new(Channel::Train, want)]);
        assert_eq!(facts.image_digest, digest);
        assert!(
            target.state_dir().ends_with(".orchestrate/iot"),
            "{}",
            target.state_dir().display()
        );
        assert!(!target.state_dir().exists(), "opening creates nothing");
        assert!(target.describe().starts_with("local ("));
    }

    #[test]
    fn a_missing_binary_is_an_image_error_with_the_fix() {
        let error = build_image(Path::new("no/such/model-image")).unwrap_err();
        let text = error::chain(&error);
        assert!(text.contains("no/such/model-image"), "{text}");
        assert!(text.contains("cargo build --release -p model-image"), "{text}");
        // The target's digest names the image it could not build, then the same cause.
        let dir = tempfile::tempdir().unwrap();
        let target = LocalTarget::open(&spec(dir.path()), Path::new("no/such/model-image")).unwrap();
        let error = target.image_digest().unwrap_err();
        assert_eq!((error.action, error.kind), ("build", Kind::Image));
        assert_eq!(error.name, "iot-model-image");
        let text = error::chain(&error);
        assert!(text.contains("no/such/model-image"), "{text}");
        assert!(text.contains("cargo build --release -p model-image"), "{text}");
    }

    #[test]
    fn facts_name_the_channel_whose_data_cannot_be_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(dir.path());
        std::fs::remove_file(dir.path().join("train.csv")).unwrap();
        let target = LocalTarget::open(&spec, Path::new("model-image")).unwrap();
        let error = target.facts(&Digest::sha256(b"")).unwrap_err();
        assert_eq!(
            (error.action, error.kind, error.name.as_str()),
            ("hash", Kind::TrainingData, "train")
        );
        let text = error::chain(&error);
        assert!(
            text.contains("cannot hash the training data") && text.contains("train.csv"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn the_lock_is_the_state_folders_and_a_removing_run_creates_none() {
        let dir = tempfile::tempdir().unwrap();
        let (target, state) = deployment(dir.path());
        let removing = LockRequest {
            state: None,
            owner: "someone@host pid 1",
            break_lock: false,
        };
        let creating = LockRequest {
            state: Some(&state),
            ..removing
        };
        // `down` of a deployment that has no state folder: nothing to lock, nothing created.
        assert!(target.lock(removing).await.unwrap().is_none());
        assert!(
            !target.state_dir().exists(),
            "a removing run creates no state folder"
        );
        let held = target
            .lock(creating)
            .await
            .unwrap()
            .expect("a lock for a creating run");
        assert!(
            held.path().ends_with(".orchestrate/iot/lock"),
            "{}",
            held.path().display()
        );
        // A second run (another target of the same deployment) is refused, naming the holder.
        let second = LocalTarget::open(&target.spec, Path::new("model-image")).unwrap();
        for request in [creating, removing] {
            let error = second.lock(request).await.expect_err("the lock is held");
            let text = error.to_string();
            assert!(
                matches!(
                    error.downcast_ref::<LocalError>(),
                    Some(LocalError::Locked { .. })
                ),
                "{text}"
            );
            assert!(text.contains(&format!("pid {}", std::process::id())), "{text}");
            assert!(text.contains("another orchestrate run"), "{text}");
        }
        target.release(held).await.unwrap();
        // Once the state folder exists, a removing run locks it too.
        let again = second
            .lock(removing)
            .await
            .unwrap()
            .expect("free again after release");
        second.release(again).await.unwrap();
    }

    /// A deployment `iot` with autoscaling, its target, and its desired state (with a made-up
    /// image digest: nothing here builds or runs the image).
    pub(crate) fn deployment(dir: &Path) -> (LocalTarget, DesiredState) {
        std::fs::write(dir.join("train.csv"), "a,Label\n1,Normal\n").unwrap();
        let yaml = "version: 1\nname: iot\ndata: {train: train.csv}\n\
             endpoint: {instance_count: 2, autoscaling: {min: 2, max: 3}, rollout: {strategy: canary}}\n";
        let spec = spec::parse(yaml, "deploy.yaml", dir).unwrap_or_else(|e| panic!("{e:?}"));
        let target = LocalTarget::open(&spec, Path::new("model-image")).unwrap();
        let facts = target.facts(&Digest::sha256(b"image")).unwrap();
        let state = engine::desired_state(&spec, spec::Target::Local, &facts);
        (target, state)
    }

    fn upstream<'a>(state: &'a DesiredState, outputs: &'a BTreeMap<ResourceId, Outputs>) -> Upstream<'a> {
        Upstream { state, outputs }
    }

    fn ready_settings(observed: &Observed) -> &Settings {
        match observed {
            Observed::Present {
                settings,
                lifecycle: Lifecycle::Ready,
                ..
            } => settings,
            other => panic!("want a ready resource, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn record_kinds_share_one_implementation_and_record_typed_settings() {
        let dir = tempfile::tempdir().unwrap();
        let (target, state) = deployment(dir.path());
        let none = BTreeMap::new();
        let kinds = [
            Kind::Role,
            Kind::Repository,
            Kind::EndpointConfig,
            Kind::Autoscaling,
        ];
        for kind in kinds {
            let desired = state.get(kind).unwrap_or_else(|| panic!("no {kind}"));
            assert_eq!(target.observe(desired).await.unwrap(), Observed::Absent, "{kind}");
            let applied = target
                .apply(desired, &Change::Create, upstream(&state, &none))
                .await
                .unwrap();
            assert_eq!(applied, Applied::Ready(Outputs::None), "{kind}");
            let observed = target.observe(desired).await.unwrap();
            assert_eq!(ready_settings(&observed), &desired.settings, "{kind}");
            assert_eq!(engine::resource::diff(desired, &observed), Change::NoOp, "{kind}");
            let path = target.state.record_path(kind, &desired.name);
            assert!(
                path.starts_with(target.state_dir().join(kind.facts().local_folder)),
                "{}",
                path.display()
            );
            // The record holds the settings as typed values, not strings to parse back.
            let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            assert_eq!(
                json["settings"],
                serde_json::to_value(&desired.settings).unwrap(),
                "{kind}"
            );
        }
        // A recorded config with other settings (a changed policy) diffs as the kind declares.
        let scaling = state.get(Kind::Autoscaling).unwrap();
        let mut changed = scaling.clone();
        if let Settings::Autoscaling(policy) = &mut changed.settings {
            policy.max = 5;
        }
        match engine::resource::diff(&changed, &target.observe(scaling).await.unwrap()) {
            Change::Update { fields } => assert_eq!(fields[0].field, "max"),
            other => panic!("{other:?}"),
        }

        let owned = target.owned().await.unwrap();
        let config = state.get(Kind::EndpointConfig).unwrap();
        let model = state.get(Kind::Model).unwrap();
        let found = owned
            .iter()
            .find(|f| f.kind == Kind::EndpointConfig)
            .expect("the config is owned");
        assert_eq!(found.name, config.name);
        assert_eq!(found.used(Kind::Model), Some(model.name.as_str()));
        assert_eq!(owned.len(), kinds.len(), "{owned:?}");

        for found in &owned {
            assert_eq!(target.delete(found).await.unwrap(), Deleted::Gone);
            assert_eq!(
                target.delete(found).await.unwrap(),
                Deleted::Gone,
                "deleting again"
            );
        }
        assert!(target.owned().await.unwrap().is_empty());
        assert!(!target.state_dir().exists(), "empty folders are pruned");
    }

    /// Whether the module of a kind is `Module`.
    fn is<Module: 'static, Named: 'static>() -> bool {
        TypeId::of::<Module>() == TypeId::of::<Named>()
    }

    #[tokio::test]
    async fn the_four_record_kinds_are_one_generic_module() {
        type Modules = LocalTarget;
        assert!(is::<<Modules as KindModules>::Role, record::Recorded<RoleSettings>>());
        assert!(is::<
            <Modules as KindModules>::Repository,
            record::Recorded<RepositorySettings>,
        >());
        assert!(is::<
            <Modules as KindModules>::EndpointConfig,
            record::Recorded<EndpointConfigSettings>,
        >());
        assert!(is::<
            <Modules as KindModules>::Autoscaling,
            record::Recorded<AutoscalingSettings>,
        >());

        let dir = tempfile::tempdir().unwrap();
        let (target, state) = deployment(dir.path());
        let none = BTreeMap::new();
        /// Applies, observes, discovers and deletes one resource through `Recorded<S>` itself.
        async fn round_trip<S: record::RecordedSettings>(
            target: &LocalTarget,
            state: &DesiredState,
            settings: S,
            outputs: &BTreeMap<ResourceId, Outputs>,
        ) -> Vec<Found> {
            let desired = state.get(S::KIND).unwrap_or_else(|| panic!("no {}", S::KIND));
            let name = desired.name.as_str();
            let upstream = upstream(state, outputs);
            let applied = record::Recorded::<S>::apply(target, name, &settings, &Change::Create, upstream);
            assert_eq!(
                applied.await.unwrap(),
                Applied::Ready(Outputs::None),
                "{}",
                S::KIND
            );
            let observed = record::Recorded::<S>::observe(target, name, &settings)
                .await
                .unwrap();
            assert_eq!(ready_settings(&observed), &settings.clone().into(), "{}", S::KIND);
            let found = record::Recorded::<S>::owned(target).await.unwrap();
            assert_eq!(
                record::Recorded::<S>::delete(target, name).await.unwrap(),
                Deleted::Gone
            );
            assert_eq!(
                record::Recorded::<S>::observe(target, name, &settings)
                    .await
                    .unwrap(),
                Observed::Absent
            );
            found
        }
        let settings = |kind| state.get(kind).unwrap().settings.clone();
        let (Settings::Role(role), Settings::Repository(repository)) =
            (settings(Kind::Role), settings(Kind::Repository))
        else {
            panic!("a role's and a repository's settings")
        };
        let (Settings::EndpointConfig(config), Settings::Autoscaling(policy)) =
            (settings(Kind::EndpointConfig), settings(Kind::Autoscaling))
        else {
            panic!("a config's and a policy's settings")
        };
        let model = config.model.clone();
        let found = [
            round_trip(&target, &state, role, &none).await,
            round_trip(&target, &state, repository, &none).await,
            round_trip(&target, &state, config, &none).await,
            round_trip(&target, &state, policy, &none).await,
        ];
        let kinds = [
            Kind::Role,
            Kind::Repository,
            Kind::EndpointConfig,
            Kind::Autoscaling,
        ];
        for (found, kind) in found.iter().zip(kinds) {
            let name = &state.get(kind).unwrap().name;
            assert_eq!(found.len(), 1, "{kind}: {found:?}");
            assert_eq!((found[0].kind, &found[0].name), (kind, name));
            // Only a config uses something: its model, kept with it for a rollback.
            let uses = match kind {
                Kind::EndpointConfig => vec![ResourceId::new(Kind::Model, &model)],
                _ => Vec::new(),
            };
            assert_eq!(found[0].uses, uses, "{kind}");
        }
        assert!(
            !target.state_dir().exists(),
            "every record was removed and its folder pruned"
        );
    }

    #[tokio::test]
    async fn every_kinds_discovery_is_reached_through_its_module() {
        let dir = tempfile::tempdir().unwrap();
        let (target, state) = deployment(dir.path());
        // One record of each kind, as its module writes it (discovery reads only names and
        // settings); a training job is found by its attempt.
        for desired in &state.resources {
            let name = match desired.kind() {
                Kind::TrainingJob => format!("{}-1", desired.name),
                _ => desired.name.clone(),
            };
            let record = Record::new(name, desired.settings.clone(), state::NoDetails {});
            target.state.write(desired.kind(), &record).unwrap();
        }
        let owned = target.owned().await.unwrap();
        let mut kinds: Vec<Kind> = owned.iter().map(|f| f.kind).collect();
        kinds.dedup();
        assert_eq!(kinds, Kind::ALL, "each kind, in kind order: {owned:?}");
        assert_eq!(
            owned.len(),
            state.resources.len(),
            "each resource once: {owned:?}"
        );
        for found in &owned {
            let desired = state
                .all(found.kind)
                .find(|d| d.kind() != Kind::Alarm || d.name == found.name)
                .unwrap();
            let want = match found.kind {
                Kind::TrainingJob => format!("{}-1", desired.name),
                _ => desired.name.clone(),
            };
            assert_eq!(found.name, want);
            let uses: Vec<ResourceId> = match &desired.settings {
                Settings::EndpointConfig(config) => vec![ResourceId::new(Kind::Model, &config.model)],
                Settings::Model(model) => vec![ResourceId::new(Kind::Image, model.image.digest.as_str())],
                _ => Vec::new(),
            };
            assert_eq!(found.uses, uses, "{}", found.kind);
        }
    }

    #[tokio::test]
    async fn configs_models_and_images_the_endpoint_serves_or_rolls_back_to_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (target, state) = deployment(dir.path());
        let model = state.get(Kind::Model).unwrap();
        let Settings::Model(model_settings) = &model.settings else {
            panic!("a model's settings")
        };
        let config = state.get(Kind::EndpointConfig).unwrap();
        let Settings::EndpointConfig(config_settings) = &config.settings else {
            panic!("a config's settings")
        };
        // Three configs of the same model: one served, one to roll back to, one unused.
        for name in ["iot-served", "iot-previous", "iot-unused"] {
            let record = Record::new(name, config_settings.clone(), state::NoDetails {});
            target.state.write(Kind::EndpointConfig, &record).unwrap();
        }
        let folder = target.state.resource_dir(Kind::Model, &model.name);
        let details = model::ModelDetails {
            training_job: format!("{}-1", state.training_job()),
            folder: folder.into(),
        };
        let record = Record::new(&model.name, model_settings.clone(), details);
        target.state.write(Kind::Model, &record).unwrap();
        // The model's image, and another one nothing uses.
        let binary = dir.path().join("binary");
        std::fs::write(&binary, "elf").unwrap();
        let image = state.get(Kind::Image).unwrap();
        let Settings::Image(image_settings) = &image.settings else {
            panic!("an image's settings")
        };
        let mut unused = image_settings.clone();
        unused.image.digest = Digest::sha256(b"unused");
        for settings in [image_settings.clone(), unused] {
            let details = image::ImageDetails {
                folder: image::folder(&target, &settings.image.digest).into(),
                binary_sha256: String::new(),
                binary: state::Stamp::of(&binary).unwrap(),
            };
            let name = settings.image.digest.to_string();
            let record = Record::new(name, settings, details);
            target.state.write(Kind::Image, &record).unwrap();
        }
        let endpoint = state.get(Kind::Endpoint).unwrap();
        let Settings::Endpoint(mut serving) = endpoint.settings.clone() else {
            panic!("an endpoint's settings")
        };
        serving.endpoint_config = "iot-served".into();
        let details = endpoint::EndpointDetails {
            pid: i32::MAX,
            pgid: 0,
            start_time: 1,
            port: 1,
            url: "http://127.0.0.1:1".into(),
            model_dir: dir.path().join("none").into(),
            previous_config: Some("iot-previous".into()),
            front: None,
            rollout: None,
        };
        let record = Record::new(&endpoint.name, serving, details);
        target.state.write(Kind::Endpoint, &record).unwrap();

        let owned = target.owned().await.unwrap();
        let found_model = owned.iter().find(|f| f.kind == Kind::Model).unwrap();
        assert_eq!(
            found_model.used(Kind::Image),
            Some(model_settings.image.digest.as_str()),
            "a model uses its image, by the image's name (its digest)"
        );
        for found in owned.iter().filter(|f| f.kind != Kind::Endpoint) {
            assert_eq!(target.delete(found).await.unwrap(), Deleted::Gone);
        }
        let left: Vec<(Kind, String)> = target
            .owned()
            .await
            .unwrap()
            .into_iter()
            .map(|f| (f.kind, f.name))
            .collect();
        assert_eq!(
            left,
            [
                (Kind::Image, image.name.clone()),
                (Kind::Model, model.name.clone()),
                (Kind::EndpointConfig, "iot-previous".to_string()),
                (Kind::EndpointConfig, "iot-served".to_string()),
                (Kind::Endpoint, endpoint.name.clone()),
            ]
        );
        // A recorded server that is gone is a failed endpoint (replaced by `up`), still reporting
        // the config to roll back to.
        let observed = target.observe(endpoint).await.unwrap();
        match &observed {
            Observed::Present {
                lifecycle: Lifecycle::Failed(reason),
                outputs,
                ..
            } => {
                assert_eq!(reason, &format!("not running (pid {} exited)", i32::MAX));
                assert_eq!(
                    outputs,
                    &Outputs::Endpoint(engine::resource::EndpointOutputs {
                        previous_config: Some("iot-previous".into())
                    })
                );
            }
            other => panic!("{other:?}"),
        }
        match engine::resource::diff(endpoint, &observed) {
            Change::Replace { reason, .. } => assert!(reason.contains("not running"), "{reason}"),
            other => panic!("{other:?}"),
        }
        // Once the endpoint is gone, nothing is protected.
        for found in target.owned().await.unwrap().iter().rev() {
            assert_eq!(target.delete(found).await.unwrap(), Deleted::Gone);
        }
        assert!(target.owned().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn training_data_is_named_by_its_prefix_and_a_changed_copy_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (target, state) = deployment(dir.path());
        let none = BTreeMap::new();
        let bucket = state.get(Kind::Bucket).unwrap();
        let data = state.get(Kind::TrainingData).unwrap();
        let sha256 = engine::names::data_sha256(&dir.path().join("train.csv")).unwrap();
        assert_eq!(data.name, format!("data/{}/train/", &sha256[..12]));
        let upload = target
            .apply(data, &Change::Create, upstream(&state, &none))
            .await
            .unwrap_err();
        let upload = engine::target::error_chain(&upload);
        assert!(upload.contains("bucket `iot-local`"), "{upload}");
        for desired in [bucket, data] {
            let applied = target
                .apply(desired, &Change::Create, upstream(&state, &none))
                .await
                .unwrap();
            assert_eq!(applied, Applied::Ready(Outputs::None));
        }
        let stored = target
            .state_dir()
            .join("buckets/iot-local/data")
            .join(&sha256[..12])
            .join("train/train.csv");
        assert_eq!(std::fs::read_to_string(&stored).unwrap(), "a,Label\n1,Normal\n");
        let observed = target.observe(data).await.unwrap();
        assert_eq!(ready_settings(&observed), &data.settings);
        assert_eq!(engine::resource::diff(data, &observed), Change::NoOp);

        std::fs::write(&stored, "a,Label\n2,Anomaly\n").unwrap();
        match engine::resource::diff(data, &target.observe(data).await.unwrap()) {
            Change::Replace { fields, .. } => {
                assert_eq!(fields.len(), 1, "{fields:?}");
                assert_eq!(fields[0].field, "sha256");
                assert_eq!(fields[0].want, sha256);
            }
            other => panic!("a changed copy must be replaced, got {other:?}"),
        }
        target
            .apply(data, &Change::Create, upstream(&state, &none))
            .await
            .unwrap();
        assert_eq!(
            engine::resource::diff(data, &target.observe(data).await.unwrap()),
            Change::NoOp
        );
        let deleted = target
            .delete(&Found::new(Kind::TrainingData, &data.name))
            .await
            .unwrap();
        assert_eq!(deleted, Deleted::Gone);
        assert!(!target.state_dir().join("buckets/iot-local/data").exists());
        assert!(target.state_dir().join("buckets/iot-local").is_dir());
        assert_eq!(target.observe(data).await.unwrap(), Observed::Absent);
    }

    #[tokio::test]
    async fn a_model_packs_the_artifact_its_training_job_handed_over() {
        let dir = tempfile::tempdir().unwrap();
        let (target, state) = deployment(dir.path());
        let model = state.get(Kind::Model).unwrap();
        let none = BTreeMap::new();
        let error = target
            .apply(model, &Change::Create, upstream(&state, &none))
            .await
            .unwrap_err();
        let error = engine::target::error_chain(&error);
        let job = state.training_job().to_string();
        assert!(
            error.contains(&format!("training job `{job}`")) && error.contains("none was handed over"),
            "{error}"
        );

        let artifact = target
            .state_dir()
            .join(format!("training-jobs/{job}-2/opt_ml/model"));
        std::fs::create_dir_all(&artifact).unwrap();
        std::fs::write(artifact.join("model.json"), "{}").unwrap();
        let bootstrap = metrics::BootstrapConfig {
            resamples: 0,
            seed: 1,
        };
        let evaluation = metrics::evaluate(
            &[true, false, true, false],
            &[0.9, 0.1, 0.4, 0.6],
            0.5,
            &bootstrap,
        );
        let file = contract::metrics_file::MetricsFile {
            validation: evaluation.clone(),
            test: None,
        };
        std::fs::write(
            artifact.join(engine::training_output::METRICS_FILE),
            serde_json::to_string(&file).unwrap(),
        )
        .unwrap();
        let outputs = |attempt: String| TrainingJobOutputs {
            attempt,
            model_artifact: artifact.to_string_lossy().into_owned(),
        };
        // Another job's attempt is not this model's.
        let other = BTreeMap::from([(
            ResourceId::new(Kind::TrainingJob, &job),
            Outputs::TrainingJob(outputs("iot-other-1".into())),
        )]);
        assert!(
            target
                .apply(model, &Change::Create, upstream(&state, &other))
                .await
                .is_err()
        );
        let trained = outputs(format!("{job}-2"));
        let outputs = BTreeMap::from([(
            ResourceId::new(Kind::TrainingJob, &job),
            Outputs::TrainingJob(trained.clone()),
        )]);
        let applied = target
            .apply(model, &Change::Create, upstream(&state, &outputs))
            .await
            .unwrap();
        assert_eq!(applied, Applied::Ready(Outputs::None));
        let observed = target.observe(model).await.unwrap();
        assert_eq!(ready_settings(&observed), &model.settings);
        let served = model::serving_dir(&target, &model.name).unwrap();
        assert_eq!(std::fs::read_to_string(served.join("model.json")).unwrap(), "{}");
        let record = target
            .state
            .read::<model::ModelDetails>(Kind::Model, &model.name)
            .unwrap()
            .unwrap();
        assert_eq!(record.details.training_job, format!("{job}-2"));

        let metrics = target.training_metrics(&trained).await.unwrap();
        assert_eq!(metrics, file.validation_values());
        assert_eq!(
            metrics[&engine::training_output::Metric::PrAuc],
            evaluation.pr_auc.value
        );
        std::fs::remove_file(artifact.join(engine::training_output::METRICS_FILE)).unwrap();
        let error = engine::target::error_chain(&target.training_metrics(&trained).await.unwrap_err());
        assert!(
            error.contains(&format!("{job}-2")) && error.contains("metrics.json"),
            "{error}"
        );

        // An artifact outside the state's training jobs is neither packed nor read.
        let elsewhere = dir.path().join("artifact");
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("model.json"), "{}").unwrap();
        let foreign = TrainingJobOutputs {
            attempt: format!("{job}-3"),
            model_artifact: elsewhere.to_string_lossy().into_owned(),
        };
        let outputs = BTreeMap::from([(
            ResourceId::new(Kind::TrainingJob, &job),
            Outputs::TrainingJob(foreign.clone()),
        )]);
        for error in [
            target
                .apply(model, &Change::Create, upstream(&state, &outputs))
                .await
                .unwrap_err(),
            target.training_metrics(&foreign).await.unwrap_err(),
        ] {
            let text = engine::target::error_chain(&error);
            assert!(
                text.contains("is not inside") && text.contains("training-jobs"),
                "{text}"
            );
        }
    }
}
