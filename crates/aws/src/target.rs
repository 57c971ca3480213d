//! The AWS target: the engine's [`Target`] over the per-kind modules of this crate.
//!
//! Names come from the deployment and the account (`<name>-<account>-<region>` for the bucket,
//! `<name>-sagemaker-execution`, `<name>-model-image`), so they are known before the first call.
//! What the deployment owns is found by those names and confirmed by its `orchestrate:deployment`
//! tag: a same-named resource that is not tagged with this deployment is never reported as ours, so
//! `down` cannot delete it. Training data is found by listing the bucket's `data/` prefixes, images
//! by listing the repository, models and endpoint configs by listing names with the deployment's
//! prefix (each confirmed by its tag). Training jobs cannot be deleted: only a running attempt is
//! reported as owned, so `down` stops it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use engine::desired::{ChannelData, DEPLOYMENT_TAG, DesiredState, Facts};
use engine::resource::{Change, Desired, Kind, Observed};
use engine::target::{Applied, Found, Target, TargetError};
use spec::{DataSource, Spec};

use crate::clients::Clients;
use crate::errors::{AwsError, OrAbsent};
use crate::lock::{Lock, LockError};
use crate::sagemaker_training_job::{JobContext, LogTail};
use crate::{
    ecr_image, ecr_repository, endpoint_autoscaling, iam_role, s3_bucket, sagemaker_endpoint,
    sagemaker_endpoint_config, sagemaker_model, sagemaker_training_job, training_data,
};

/// How often pending SageMaker resources are polled.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// Overrides the poll interval, in milliseconds (an emulator answers faster than SageMaker).
pub const POLL_INTERVAL_ENV: &str = "ORCHESTRATE_POLL_INTERVAL_MS";

/// The object prefix every training data channel lives under.
const DATA_PREFIX: &str = "data/";

/// A deployment in one AWS account and region.
#[derive(Debug)]
pub struct AwsTarget {
    spec: Spec,
    clients: Clients,
    account: String,
    model_image_bin: PathBuf,
    /// The image built in this run, if any (pushed by `apply` of the image).
    built: Mutex<Option<image::BuiltImage>>,
    /// `ORCHESTRATE_REGISTRY`: push here instead of ECR's own registry endpoint.
    registry: Option<String>,
    poll_interval: Duration,
    logs: LogTail,
}

impl AwsTarget {
    /// Opens the deployment with the standard credential chain in the spec's region; asks STS which
    /// account the credentials belong to (the one call before planning).
    pub async fn open(spec: &Spec, model_image_bin: &Path) -> Result<Self, AwsError> {
        let clients = Clients::load(spec.region.as_str()).await;
        Self::with_clients(spec, model_image_bin, clients).await
    }

    /// Opens the deployment with given clients (tests point them at an emulator).
    pub async fn with_clients(
        spec: &Spec,
        model_image_bin: &Path,
        clients: Clients,
    ) -> Result<Self, AwsError> {
        let account = clients.account().await?.to_string();
        let registry = std::env::var(ecr_image::REGISTRY_ENV)
            .ok()
            .filter(|r| !r.trim().is_empty());
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
        })
    }

    /// Polls pending resources this often instead of every 5 seconds.
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Pushes to this registry instead of ECR's own endpoint (what `ORCHESTRATE_REGISTRY` sets).
    pub fn with_registry(mut self, registry: Option<String>) -> Self {
        self.registry = registry;
        self
    }

    pub fn clients(&self) -> &Clients {
        &self.clients
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    /// The data bucket, `<name>-<account>-<region>`.
    pub fn bucket(&self) -> String {
        self.spec.bucket_name(&self.account)
    }

    /// The image's manifest digest, from the local digest cache in the deployment's state folder
    /// when the binary is unchanged (see `image::cached_digest`); a build is kept for the push.
    pub fn image_digest(&self) -> Result<String, AwsError> {
        let folder = self.spec.local.state_dir.join(self.spec.name.as_str());
        // Only a cache: failing to create its folder costs a build, nothing else.
        let _ = std::fs::create_dir_all(&folder);
        let (digest, built) = image::cached_digest(&self.image_spec(), &folder.join("image-digest.json"))
            .map_err(|e| self.image_error(e))?;
        if let Some(built) = built {
            *self.built.lock().unwrap_or_else(|p| p.into_inner()) = Some(built);
        }
        Ok(digest.to_string())
    }

    fn image_spec(&self) -> image::ImageSpec {
        image::ImageSpec::new(&self.model_image_bin, env!("CARGO_PKG_VERSION"))
    }

    fn image_error(&self, error: image::ImageError) -> AwsError {
        let name = self.model_image_bin.display().to_string();
        AwsError::other("build the image from", Kind::Image, &name, error)
    }

    /// The image built in this run, building it if needed.
    fn built_image(&self) -> Result<image::BuiltImage, AwsError> {
        let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(image) = built.as_ref() {
            return Ok(image.clone());
        }
        let image = image::build(&self.image_spec()).map_err(|e| self.image_error(e))?;
        *built = Some(image.clone());
        Ok(image)
    }

    /// What the desired state needs: names in this account and the data hashes.
    pub fn facts(&self, image_digest: &str) -> Result<Facts, AwsError> {
        let channels = engine::desired::channel_sources(&self.spec)
            .into_iter()
            .map(|(channel, source)| {
                let path = local_path(channel, source)?;
                let sha256 = engine::names::data_sha256(path)
                    .map_err(|e| AwsError::other("hash", Kind::TrainingData, channel, e))?;
                Ok(ChannelData::new(channel, &sha256))
            })
            .collect::<Result<_, AwsError>>()?;
        Ok(Facts {
            bucket: self.bucket(),
            channels,
            role: self.spec.role_name(),
            repository: self.spec.repository_name(),
            image_digest: image_digest.to_string(),
        })
    }

    /// Takes the deployment's lock in its bucket for `ttl`, creating the bucket first if `up` is
    /// about to create it anyway (`desired` given). Without a bucket and without `desired` (a
    /// `down` of something never deployed) there is nothing to lock: `Ok(None)`.
    pub async fn lock(
        &self,
        desired: Option<&DesiredState>,
        owner: &str,
        ttl: Duration,
        break_lock: bool,
    ) -> Result<Option<Lock>, LockError> {
        let bucket = self.bucket();
        let exists = match self.clients.s3.head_bucket().bucket(&bucket).send().await {
            Ok(_) => true,
            Err(e) => {
                let e = AwsError::sdk("find", Kind::Bucket, &bucket, e);
                if !e.is_not_found() {
                    return Err(e.into());
                }
                false
            }
        };
        if !exists {
            match desired.and_then(|state| state.get(Kind::Bucket)) {
                Some(wanted) => s3_bucket::apply(&self.clients, wanted).await?,
                None => return Ok(None),
            }
        }
        let now = std::time::SystemTime::now();
        Lock::acquire(&self.clients, &bucket, owner, ttl, now, break_lock)
            .await
            .map(Some)
    }

    /// The local source of a training data resource (`data/<sha12>/<channel>/<channel>`).
    fn data_source(&self, name: &str) -> Result<&Path, AwsError> {
        let channel = name.rsplit('/').next().unwrap_or_default();
        engine::desired::channel_sources(&self.spec)
            .into_iter()
            .find(|(c, _)| *c == channel)
            .ok_or_else(|| {
                AwsError::other(
                    "upload",
                    Kind::TrainingData,
                    name,
                    "no such channel in deploy.yaml",
                )
            })
            .and_then(|(channel, source)| local_path(channel, source))
    }

    /// Whether a tag list says the resource belongs to this deployment.
    fn is_ours<'a>(&self, mut tags: impl Iterator<Item = (&'a str, &'a str)>) -> bool {
        tags.any(|(k, v)| k == DEPLOYMENT_TAG && v == self.spec.name.as_str())
    }

    async fn owned_bucket(&self, found: &mut Vec<Found>) -> Result<(), AwsError> {
        let bucket = self.bucket();
        let tagging = self
            .clients
            .s3
            .get_bucket_tagging()
            .bucket(&bucket)
            .send()
            .await
            .map_err(|e| AwsError::sdk("read the tags of", Kind::Bucket, &bucket, e))
            .or_absent()?;
        // No bucket, or a bucket without tags: not ours.
        let Some(tagging) = tagging else {
            return Ok(());
        };
        if !self.is_ours(tagging.tag_set().iter().map(|t| (t.key(), t.value()))) {
            return Ok(());
        }
        found.push(Found::new(Kind::Bucket, &bucket));
        let mut prefixes = BTreeSet::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .clients
                .s3
                .list_objects_v2()
                .bucket(&bucket)
                .prefix(DATA_PREFIX)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| AwsError::sdk("list the training data in", Kind::Bucket, &bucket, e))?;
            prefixes.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key())
                    .filter_map(data_resource_name),
            );
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => break,
            }
        }
        found.extend(
            prefixes
                .into_iter()
                .map(|name| Found::new(Kind::TrainingData, name)),
        );
        Ok(())
    }

    async fn owned_role(&self, found: &mut Vec<Found>) -> Result<(), AwsError> {
        let role = self.spec.role_name();
        let tags = self
            .clients
            .iam
            .list_role_tags()
            .role_name(&role)
            .send()
            .await
            .map_err(|e| AwsError::sdk("read the tags of", Kind::Role, &role, e))
            .or_absent()?;
        if tags.is_some_and(|out| self.is_ours(out.tags().iter().map(|t| (t.key(), t.value())))) {
            found.push(Found::new(Kind::Role, role));
        }
        Ok(())
    }

    async fn owned_repository(&self, found: &mut Vec<Found>) -> Result<(), AwsError> {
        let repository = self.spec.repository_name();
        let ecr = &self.clients.ecr;
        let Some(described) = ecr
            .describe_repositories()
            .repository_names(&repository)
            .send()
            .await
            .map_err(|e| AwsError::sdk("find", Kind::Repository, &repository, e))
            .or_absent()?
        else {
            return Ok(());
        };
        let Some(arn) = described.repositories().first().and_then(|r| r.repository_arn()) else {
            return Ok(());
        };
        let tags = ecr
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .map_err(|e| AwsError::sdk("read the tags of", Kind::Repository, &repository, e))?;
        if !self.is_ours(tags.tags().iter().map(|t| (t.key(), t.value()))) {
            return Ok(());
        }
        found.push(Found::new(Kind::Repository, &repository));
        let mut token: Option<String> = None;
        let mut digests = BTreeSet::new();
        loop {
            let page = ecr
                .list_images()
                .repository_name(&repository)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| AwsError::sdk("list the images of", Kind::Repository, &repository, e))?;
            digests.extend(
                page.image_ids()
                    .iter()
                    .filter_map(|id| id.image_digest().map(str::to_string)),
            );
            match page.next_token() {
                Some(next) => token = Some(next.to_string()),
                None => break,
            }
        }
        found.extend(digests.into_iter().map(|digest| {
            Found::new(Kind::Image, format!("{repository}@{digest}")).with_field("digest", digest)
        }));
        Ok(())
    }

    /// Running training attempts, models and endpoint configs with the deployment's name prefix,
    /// the endpoint and its scaling target; each confirmed by the deployment tag.
    /// (name, ARN) of every SageMaker resource of `kind` whose name contains `prefix`; for training
    /// jobs, only running ones (ended jobs cannot be deleted and cost nothing).
    async fn list_sagemaker(&self, kind: Kind, prefix: &str) -> Result<Vec<(String, String)>, AwsError> {
        let sm = &self.clients.sagemaker;
        let deployment = self.spec.name.as_str();
        let pair = |name: Option<&str>, arn: Option<&str>| Some((name?.to_string(), arn?.to_string()));
        let mut listed = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let next = match kind {
                Kind::TrainingJob => {
                    let page = sm
                        .list_training_jobs()
                        .name_contains(prefix)
                        .status_equals(aws_sdk_sagemaker::types::TrainingJobStatus::InProgress)
                        .set_next_token(token.take())
                        .send()
                        .await
                        .map_err(|e| AwsError::sdk("list", kind, deployment, e))?;
                    listed.extend(
                        page.training_job_summaries()
                            .iter()
                            .filter_map(|j| pair(j.training_job_name(), j.training_job_arn())),
                    );
                    page.next_token().map(str::to_string)
                }
                Kind::Model => {
                    let page = sm
                        .list_models()
                        .name_contains(prefix)
                        .set_next_token(token.take())
                        .send()
                        .await
                        .map_err(|e| AwsError::sdk("list", kind, deployment, e))?;
                    listed.extend(
                        page.models()
                            .iter()
                            .filter_map(|m| pair(m.model_name(), m.model_arn())),
                    );
                    page.next_token().map(str::to_string)
                }
                Kind::EndpointConfig => {
                    let page = sm
                        .list_endpoint_configs()
                        .name_contains(prefix)
                        .set_next_token(token.take())
                        .send()
                        .await
                        .map_err(|e| AwsError::sdk("list", kind, deployment, e))?;
                    listed.extend(
                        page.endpoint_configs()
                            .iter()
                            .filter_map(|c| pair(c.endpoint_config_name(), c.endpoint_config_arn())),
                    );
                    page.next_token().map(str::to_string)
                }
                other => unreachable!("{other} is not listed by name"),
            };
            match next {
                Some(next) if !next.is_empty() => token = Some(next),
                _ => return Ok(listed),
            }
        }
    }

    /// The deployment's SageMaker resources: the three listings and the endpoint are read
    /// concurrently.
    async fn owned_sagemaker(&self, found: &mut Vec<Found>) -> Result<(), AwsError> {
        let prefix = format!("{}-", self.spec.name);
        let (jobs, models, configs, endpoint) = tokio::try_join!(
            Box::pin(self.owned_listed(Kind::TrainingJob, &prefix)),
            Box::pin(self.owned_listed(Kind::Model, &prefix)),
            Box::pin(self.owned_listed(Kind::EndpointConfig, &prefix)),
            Box::pin(self.owned_endpoint()),
        )?;
        found.extend(jobs.into_iter().chain(models).chain(configs).chain(endpoint));
        Ok(())
    }

    /// Whether the SageMaker resource's tags say it belongs to this deployment.
    async fn sagemaker_tagged(&self, kind: Kind, resource: &str, arn: &str) -> Result<bool, AwsError> {
        let tags = crate::sagemaker::read_tags(&self.clients, kind, resource, arn).await?;
        Ok(self.is_ours(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
    }

    /// Listed resources of `kind` named `<deployment>-…` and tagged as ours, with the fields `down`
    /// orders deletions by.
    async fn owned_listed(&self, kind: Kind, prefix: &str) -> Result<Vec<Found>, AwsError> {
        let mut found = Vec::new();
        for (resource, arn) in self.list_sagemaker(kind, prefix).await? {
            if !resource.starts_with(prefix) || !self.sagemaker_tagged(kind, &resource, &arn).await? {
                continue;
            }
            found.push(match kind {
                Kind::Model => {
                    let image = self
                        .clients
                        .sagemaker
                        .describe_model()
                        .model_name(&resource)
                        .send()
                        .await
                        .ok()
                        .and_then(|m| {
                            m.primary_container()
                                .and_then(|c| c.image())
                                .map(crate::sagemaker::image_ref)
                        })
                        .unwrap_or_default();
                    Found::new(kind, &resource).with_field("image", image)
                }
                Kind::EndpointConfig => {
                    let model = sagemaker_endpoint_config::describe(&self.clients, &resource)
                        .await?
                        .map(|(model, _, _)| model)
                        .unwrap_or_default();
                    Found::new(kind, &resource).with_field("model", model)
                }
                _ => Found::new(kind, &resource),
            });
        }
        Ok(found)
    }

    /// The endpoint (named after the deployment) and its autoscaling, when tagged as ours.
    async fn owned_endpoint(&self) -> Result<Vec<Found>, AwsError> {
        let name = self.spec.name.as_str();
        let mut found = Vec::new();
        if let Some(endpoint) = sagemaker_endpoint::describe(&self.clients, name).await?
            && self.sagemaker_tagged(Kind::Endpoint, name, &endpoint.arn).await?
        {
            found.push(Found::new(Kind::Endpoint, name).with_field("endpoint_config", endpoint.config));
            if endpoint_autoscaling::exists(&self.clients, name).await? {
                found.push(Found::new(Kind::Autoscaling, name));
            }
        }
        Ok(found)
    }

    async fn delete_image(&self, name: &str) -> Result<(), AwsError> {
        let Some((repository, digest)) = name.split_once('@') else {
            return Err(AwsError::other(
                "delete",
                Kind::Image,
                name,
                "not a `repository@digest` reference",
            ));
        };
        let id = aws_sdk_ecr::types::ImageIdentifier::builder()
            .image_digest(digest)
            .build();
        let deleted = self
            .clients
            .ecr
            .batch_delete_image()
            .repository_name(repository)
            .image_ids(id)
            .send()
            .await
            .map_err(|e| AwsError::sdk("delete", Kind::Image, name, e))
            .or_absent()?;
        match deleted.as_ref().and_then(|out| out.failures().first()) {
            Some(failure)
                if failure.failure_code() != Some(&aws_sdk_ecr::types::ImageFailureCode::ImageNotFound) =>
            {
                Err(AwsError::other(
                    "delete",
                    Kind::Image,
                    name,
                    failure.failure_reason().unwrap_or("refused").to_string(),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Pushes the image this run built (it must be the desired one).
    async fn push_image(&self, desired: &Desired, state: &DesiredState) -> Result<(), AwsError> {
        let built = self.built_image()?;
        let want = desired.get("digest").unwrap_or_default();
        if built.manifest_digest.as_str() != want {
            return Err(AwsError::other(
                "push",
                Kind::Image,
                &desired.name,
                format!(
                    "the binary now builds {}, not the planned {want}; run `orchestrate up` again",
                    built.manifest_digest
                ),
            ));
        }
        let repository = state
            .get(Kind::Repository)
            .map(|r| r.name.clone())
            .unwrap_or_else(|| self.spec.repository_name());
        ecr_image::push(&self.clients, &repository, &built, self.registry.as_deref()).await?;
        Ok(())
    }
}

/// A data source's local path; `s3://` sources are not uploaded by this build.
fn local_path<'a>(channel: &str, source: &'a DataSource) -> Result<&'a Path, AwsError> {
    match source {
        DataSource::LocalFile(path) | DataSource::LocalDir(path) => Ok(path),
        DataSource::S3 { .. } => Err(AwsError::other(
            "upload",
            Kind::TrainingData,
            channel,
            format!(
                "training from an existing `{source}` is not supported by this build; use a local file or folder"
            ),
        )),
    }
}

/// The training data resource an object key belongs to: `data/<sha12>/<channel>/<file…>` ->
/// `data/<sha12>/<channel>/<channel>` (the name `engine::desired_state` gives it).
pub fn data_resource_name(key: &str) -> Option<String> {
    let rest = key.strip_prefix(DATA_PREFIX)?;
    let mut parts = rest.splitn(3, '/');
    let (hash, channel, file) = (parts.next()?, parts.next()?, parts.next()?);
    if hash.is_empty() || channel.is_empty() || file.is_empty() {
        return None;
    }
    Some(format!("{DATA_PREFIX}{hash}/{channel}/{channel}"))
}

impl Target for AwsTarget {
    fn describe(&self) -> String {
        format!("aws ({}, {})", self.account, self.clients.region())
    }

    fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    async fn observe(&self, desired: &Desired) -> Result<Observed, TargetError> {
        let clients = &self.clients;
        let observed = match desired.kind {
            Kind::Bucket => s3_bucket::observe(clients, desired).await,
            Kind::TrainingData => training_data::observe(clients, &self.bucket(), desired).await,
            Kind::Role => iam_role::observe(clients, desired).await,
            Kind::Repository => ecr_repository::observe(clients, desired).await,
            Kind::Image => ecr_image::observe(clients, desired).await,
            Kind::TrainingJob => sagemaker_training_job::observe(clients, desired).await,
            Kind::Model => sagemaker_model::observe(clients, desired).await,
            Kind::EndpointConfig => sagemaker_endpoint_config::observe(clients, desired).await,
            Kind::Endpoint => sagemaker_endpoint::observe(clients, desired).await,
            Kind::Autoscaling => endpoint_autoscaling::observe(clients, desired).await,
        };
        Ok(observed?)
    }

    async fn owned(&self) -> Result<Vec<Found>, TargetError> {
        // Independent reads: concurrently, in the order the kinds depend on each other. Boxed: the
        // SDK's futures are large, and joined inline they overflowed a 2 MiB thread stack in debug
        // builds.
        let (mut bucket, mut role, mut repository, mut sagemaker) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        tokio::try_join!(
            Box::pin(self.owned_bucket(&mut bucket)),
            Box::pin(self.owned_role(&mut role)),
            Box::pin(self.owned_repository(&mut repository)),
            Box::pin(self.owned_sagemaker(&mut sagemaker)),
        )?;
        Ok([bucket, role, repository, sagemaker].concat())
    }

    async fn apply(
        &self,
        desired: &Desired,
        _change: &Change,
        state: &DesiredState,
    ) -> Result<Applied, TargetError> {
        let clients = &self.clients;
        let bucket = self.bucket();
        match desired.kind {
            Kind::Bucket => s3_bucket::apply(clients, desired).await?,
            Kind::TrainingData => {
                let source = self.data_source(&desired.name)?;
                training_data::apply(clients, &self.bucket(), desired, source).await?;
            }
            Kind::Role => iam_role::apply(clients, desired).await?,
            Kind::Repository => ecr_repository::apply(clients, desired).await?,
            Kind::Image => self.push_image(desired, state).await?,
            Kind::TrainingJob => {
                let role = state.get(Kind::Role).map(|r| r.name.clone()).unwrap_or_default();
                let tags = engine::desired::tags_field(&engine::desired::tags(&self.spec));
                let cx = JobContext {
                    account: &self.account,
                    bucket: &bucket,
                    role: &role,
                    tags: &tags,
                    volume_size_gb: self.spec.training.volume_size_gb,
                    max_runtime_seconds: self.spec.training.max_runtime.as_secs(),
                };
                sagemaker_training_job::apply(clients, desired, state, &cx).await?;
                return Ok(Applied::Pending);
            }
            Kind::Model => {
                let role = state.get(Kind::Role).map(|r| r.name.clone()).unwrap_or_default();
                sagemaker_model::apply(clients, desired, &self.account, &bucket, &role).await?;
            }
            Kind::EndpointConfig => sagemaker_endpoint_config::apply(clients, desired).await?,
            Kind::Endpoint => {
                let autoscaling = state.get(Kind::Autoscaling).is_some();
                return Ok(
                    sagemaker_endpoint::apply(clients, desired, autoscaling, self.poll_interval).await?,
                );
            }
            Kind::Autoscaling => endpoint_autoscaling::apply(clients, desired).await?,
        }
        Ok(Applied::Ready)
    }

    async fn delete(&self, found: &Found) -> Result<(), TargetError> {
        let clients = &self.clients;
        match found.kind {
            Kind::Bucket => s3_bucket::delete(clients, &found.name).await?,
            Kind::TrainingData => training_data::delete(clients, &self.bucket(), &found.name).await?,
            Kind::Role => iam_role::delete(clients, &found.name).await?,
            Kind::Repository => ecr_repository::delete(clients, &found.name).await?,
            Kind::Image => self.delete_image(&found.name).await?,
            Kind::TrainingJob => sagemaker_training_job::stop(clients, &found.name).await?,
            Kind::Model => sagemaker_model::delete(clients, &found.name).await?,
            Kind::EndpointConfig => sagemaker_endpoint_config::delete(clients, &found.name).await?,
            Kind::Endpoint => sagemaker_endpoint::delete(clients, &found.name, self.poll_interval).await?,
            Kind::Autoscaling => endpoint_autoscaling::delete(clients, &found.name).await?,
        }
        Ok(())
    }

    async fn training_metrics(&self, job_name: &str) -> Result<BTreeMap<String, f64>, TargetError> {
        Ok(sagemaker_training_job::metrics(&self.clients, &self.bucket(), job_name).await?)
    }

    async fn new_log_lines(&self, desired: &Desired) -> Vec<String> {
        if desired.kind != Kind::TrainingJob {
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

    async fn summary(&self, state: &DesiredState) -> Vec<(String, String)> {
        let mut facts = vec![
            ("account".to_string(), self.account.clone()),
            ("region".to_string(), self.clients.region().to_string()),
        ];
        if let Some(bucket) = state.get(Kind::Bucket) {
            facts.push(("bucket".to_string(), format!("s3://{}", bucket.name)));
        }
        if let Some(image) = state.get(Kind::Image) {
            facts.push(("image".to_string(), image.name.clone()));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_map_to_their_channel_resource() {
        assert_eq!(
            data_resource_name("data/0123456789ab/train/train.csv").as_deref(),
            Some("data/0123456789ab/train/train")
        );
        assert_eq!(
            data_resource_name("data/0123456789ab/validation/part/1.csv").as_deref(),
            Some("data/0123456789ab/validation/validation")
        );
        assert_eq!(data_resource_name("orchestrate/lock.json"), None);
        assert_eq!(data_resource_name("data/0123456789ab/train/"), None);
        assert_eq!(data_resource_name("data/x"), None);
    }
}
