//! The embedded local target of `orchestrate` (DESIGN.md §8): the same resource kinds as on AWS,
//! as folders, JSON records and local processes, so a fresh clone deploys without an AWS account.
//!
//! The bucket is a folder holding the uploaded, content-addressed data; the role, repository,
//! endpoint config and autoscaling policy are records; the image is built by the image crate
//! exactly as for AWS and kept as a `docker load`-able archive beside the binary it ships; a
//! training job is the real `model-image train` on the SageMaker layout (detached, so an interrupted
//! `up` leaves it running and the next one re-attaches); a model is `model.tar.gz`; the endpoint is a
//! background `model-image serve` on 127.0.0.1, checked with `/ping`. Training jobs and endpoints
//! run the binary copied into the image's folder, so they run exactly what was imaged. Locally
//! nothing scales: the autoscaling policy is recorded, and one server process serves.
//!
//! State lives in one folder per deployment (see [`state`]); [`LocalTarget::lock`] keeps two runs
//! apart. The CLI calls, in order: [`LocalTarget::open`], [`LocalTarget::lock`],
//! [`LocalTarget::build_image`], [`LocalTarget::facts`], then `engine::desired_state` and the
//! `engine::executor` functions with the target.

mod autoscaling;
mod bucket;
mod endpoint;
mod endpoint_config;
pub mod error;
mod image;
pub mod log_tail;
mod model;
pub mod process;
mod repository;
mod role;
pub mod state;
mod training_data;
mod training_job;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use engine::desired::{ChannelData, DesiredState, Facts};
use engine::resource::{Change, Desired, Kind, Lifecycle, Observed};
use engine::target::{Applied, Found, Target, TargetError};
use spec::{DataSource, Spec};

pub use error::LocalError;
pub use state::StateLock;

use crate::error::target_error;
use crate::log_tail::LogTail;
use crate::state::{NoDetails, Record, State};

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
    http: reqwest::Client,
}

impl LocalTarget {
    /// The local target of `spec`'s deployment, with state in `<local.state_dir>/<name>/`
    /// (`local.state_dir` is already resolved against deploy.yaml's folder by the spec crate).
    /// `model_image_bin` is the compiled `model-image` the image ships. Nothing is created yet.
    pub fn open(spec: &Spec, model_image_bin: &Path) -> Result<LocalTarget, LocalError> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|source| LocalError::Http {
                url: "http://127.0.0.1".into(),
                source,
            })?;
        Ok(LocalTarget {
            spec: spec.clone(),
            state: State::new(&spec.local.state_dir, spec.name.as_str()),
            model_image_bin: model_image_bin.to_path_buf(),
            built: Mutex::new(None),
            logs: LogTail::default(),
            http,
        })
    }

    /// The deployment's state folder.
    pub fn state_dir(&self) -> &Path {
        self.state.root()
    }

    /// Takes the deployment's lock (exclusive, not waiting): hold it for the whole `up`, `down` or
    /// `rollback`. A concurrent run gets [`LocalError::Locked`] naming this process.
    pub fn lock(&self) -> Result<StateLock, LocalError> {
        self.state.lock()
    }

    /// Builds the model-image container image from the binary given to [`open`](Self::open) (see
    /// [`build_image`]) and remembers it, so applying the image writes this very build.
    pub fn build_image(&self) -> Result<::image::BuiltImage, LocalError> {
        let built = build_image(&self.model_image_bin)?;
        *self.built.lock().unwrap_or_else(|p| p.into_inner()) = Some(built.clone());
        Ok(built)
    }

    /// The manifest digest of the image [`build_image`](Self::build_image) would build, without
    /// building it when the binary is unchanged since the last build (see [`::image::cached_digest`];
    /// the cache lives in the state folder). A cache miss builds and remembers the image, as
    /// `build_image` does. This keeps a no-op `status` or `up` fast; the image is built lazily if it
    /// must be applied.
    pub fn image_digest(&self) -> Result<String, LocalError> {
        let spec = image_spec(&self.model_image_bin);
        let (digest, built) = ::image::cached_digest(&spec, &self.state.root().join("image-digest.json"))
            .map_err(|source| LocalError::Image {
                path: self.model_image_bin.clone(),
                source,
            })?;
        if let Some(built) = built {
            *self.built.lock().unwrap_or_else(|p| p.into_inner()) = Some(built);
        }
        Ok(digest.to_string())
    }

    /// The facts the desired state needs: resource names on this target and the data hashes.
    /// `image_digest` is the manifest digest of [`build_image`](Self::build_image).
    pub fn facts(&self, image_digest: &str) -> Result<Facts, LocalError> {
        let channels = engine::desired::channel_sources(&self.spec)
            .into_iter()
            .map(|(channel, source)| Ok(ChannelData::new(channel, &data_hash(channel, source)?)))
            .collect::<Result<_, LocalError>>()?;
        Ok(Facts {
            bucket: bucket_name(&self.spec),
            channels,
            role: role_name(&self.spec),
            repository: repository_name(&self.spec),
            image_digest: image_digest.to_string(),
        })
    }

    /// The local data source of a channel (`train`, `validation`).
    fn channel_source(&self, channel: &str) -> Option<&DataSource> {
        engine::desired::channel_sources(&self.spec)
            .into_iter()
            .find(|(name, _)| *name == channel)
            .map(|(_, source)| source)
    }

    /// The URL the deployment's endpoint serves on, if it was started.
    pub fn endpoint_url(&self) -> Result<Option<String>, LocalError> {
        endpoint::url(self, self.spec.name.as_str())
    }
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

fn data_hash(channel: &str, source: &DataSource) -> Result<String, LocalError> {
    match source {
        DataSource::LocalFile(path) | DataSource::LocalDir(path) => {
            engine::names::data_sha256(path).map_err(|source| LocalError::HashData {
                path: path.clone(),
                source,
            })
        }
        DataSource::S3 { .. } => Err(LocalError::RemoteData {
            channel: channel.to_string(),
            location: source.to_string(),
        }),
    }
}

/// The fields a resource is recorded with: the desired ones, except those the target computes on
/// observation (the endpoint's `serving`).
fn desired_fields(desired: &Desired) -> BTreeMap<String, String> {
    desired
        .fields
        .iter()
        .filter(|f| f.name != engine::desired::LOCAL_SERVING_FIELD)
        .map(|f| (f.name.to_string(), f.value.clone()))
        .collect()
}

/// A record that exists is a ready resource with the fields it was applied with.
fn observed_record<D>(record: Option<Record<D>>) -> Observed {
    match record {
        Some(record) => Observed::Present {
            name: record.name,
            fields: record.fields,
            lifecycle: Lifecycle::Ready,
        },
        None => Observed::Absent,
    }
}

/// Removes a folder and everything in it; a missing one is fine.
fn remove_dir_all(kind: Kind, name: &str, path: &Path) -> Result<(), LocalError> {
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

/// Records the desired fields: applying a resource that is only a record.
fn apply_record(target: &LocalTarget, desired: &Desired) -> Result<Applied, LocalError> {
    target.state.write(
        desired.kind,
        &Record::new(&desired.name, desired_fields(desired), NoDetails {}),
    )?;
    Ok(Applied::Ready)
}

impl Target for LocalTarget {
    fn describe(&self) -> String {
        format!("local ({})", self.state.root().display())
    }

    fn poll_interval(&self) -> Duration {
        POLL_INTERVAL
    }

    async fn observe(&self, desired: &Desired) -> Result<Observed, TargetError> {
        let observed = match desired.kind {
            Kind::Bucket => bucket::observe(self, desired),
            Kind::TrainingData => training_data::observe(self, desired),
            Kind::Role => role::observe(self, desired),
            Kind::Repository => repository::observe(self, desired),
            Kind::Image => image::observe(self, desired),
            Kind::TrainingJob => training_job::observe(self, desired),
            Kind::Model => model::observe(self, desired),
            Kind::EndpointConfig => endpoint_config::observe(self, desired),
            Kind::Endpoint => endpoint::observe(self, desired).await,
            Kind::Autoscaling => autoscaling::observe(self, desired),
        };
        observed.map_err(|e| target_error("observe", desired.kind, &desired.name, &e))
    }

    async fn owned(&self) -> Result<Vec<Found>, TargetError> {
        let mut found = Vec::new();
        for kind in Kind::ALL {
            let records = self
                .state
                .list::<serde_json::Value>(kind)
                .map_err(|e| target_error("list", kind, &self.state.root().display().to_string(), &e))?;
            found.extend(records.into_iter().map(|r| Found {
                kind,
                name: r.name,
                fields: r.fields,
            }));
        }
        Ok(found)
    }

    async fn apply(
        &self,
        desired: &Desired,
        change: &Change,
        state: &DesiredState,
    ) -> Result<Applied, TargetError> {
        let applied = match desired.kind {
            Kind::Bucket => bucket::apply(self, desired),
            Kind::TrainingData => training_data::apply(self, desired, state),
            Kind::Role => role::apply(self, desired),
            Kind::Repository => repository::apply(self, desired),
            Kind::Image => image::apply(self, desired),
            Kind::TrainingJob => training_job::apply(self, desired, state),
            Kind::Model => model::apply(self, desired),
            Kind::EndpointConfig => endpoint_config::apply(self, desired),
            Kind::Endpoint => endpoint::apply(self, desired).await,
            Kind::Autoscaling => autoscaling::apply(self, desired),
        };
        applied.map_err(|e| target_error(change.verb(), desired.kind, &desired.name, &e))
    }

    async fn delete(&self, found: &Found) -> Result<(), TargetError> {
        let deleted = match found.kind {
            Kind::Bucket => bucket::delete(self, &found.name),
            Kind::TrainingData => training_data::delete(self, &found.name),
            Kind::Role => role::delete(self, &found.name),
            Kind::Repository => repository::delete(self, &found.name),
            Kind::Image => image::delete(self, &found.name),
            Kind::TrainingJob => training_job::delete(self, &found.name).await,
            Kind::Model => model::delete(self, &found.name),
            Kind::EndpointConfig => endpoint_config::delete(self, &found.name),
            Kind::Endpoint => endpoint::delete(self, &found.name).await,
            Kind::Autoscaling => autoscaling::delete(self, &found.name),
        };
        deleted.map_err(|e| target_error("delete", found.kind, &found.name, &e))
    }

    async fn training_metrics(&self, job_name: &str) -> Result<BTreeMap<String, f64>, TargetError> {
        training_job::metrics(self, job_name)
            .map_err(|e| target_error("read metrics of", Kind::TrainingJob, job_name, &e))
    }

    async fn new_log_lines(&self, desired: &Desired) -> Vec<String> {
        match desired.kind {
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
            .map_err(|e| target_error("invoke", Kind::Endpoint, endpoint, &e))
    }

    async fn summary(&self, state: &DesiredState) -> Vec<(String, String)> {
        let mut facts = Vec::new();
        if let Ok(Some(url)) = endpoint::url(self, &state.deployment) {
            facts.push(("endpoint URL".to_string(), url));
        }
        if let Some((metrics, report)) = training_job::outputs(self, state.training_job()) {
            facts.push(("metrics".to_string(), metrics.display().to_string()));
            facts.push(("report".to_string(), report.display().to_string()));
        }
        facts.push(("state".to_string(), self.state.root().display().to_string()));
        facts
    }
}

#[cfg(test)]
mod tests {
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
        let facts = target.facts("sha256:00").unwrap();
        assert_eq!(facts.bucket, "iot-local");
        assert_eq!(facts.role, "iot-sagemaker-execution");
        assert_eq!(facts.repository, "iot-model-image");
        let want = engine::names::data_sha256(&dir.path().join("train.csv")).unwrap();
        assert_eq!(facts.channels, vec![ChannelData::new("train", &want)]);
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
    }
}
