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
//!
//! What the AWS target enforces beyond the engine's settings (the bucket's protections, the role's
//! trust and least-privilege policy, the repository's immutability and scanning) is decided here and
//! in the per-kind modules, from what the target knows: the role's policy scope comes from the bucket
//! name, the repository name and the deployment name.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use engine::desired::{ChannelData, DEPLOYMENT_TAG, DesiredState, Facts};
use engine::kind::Settings;
use engine::resource::{Change, Desired, Kind, Observed, Outputs, TrainingJobOutputs};
use engine::target::{Applied, Found, Target, TargetError, Upstream};
use engine::training_output::MetricValues;
use engine::values::{Channel, Digest};
use spec::{DataSource, Spec};

use crate::clients::Clients;
use crate::errors::{AwsError, OrAbsent};
use crate::iam_role::PolicyScope;
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
    pub fn image_digest(&self) -> Result<Digest, AwsError> {
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
    pub fn facts(&self, image_digest: &Digest) -> Result<Facts, AwsError> {
        let channels = engine::desired::channel_sources(&self.spec)
            .into_iter()
            .map(|(channel, source)| {
                let path = local_path(channel, source)?;
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

    /// What the execution role's inline policy grants access to: the deployment's bucket,
    /// repository and log groups.
    pub fn policy_scope(&self) -> PolicyScope {
        PolicyScope {
            bucket: self.bucket(),
            repository: self.spec.repository_name(),
            deployment: self.spec.name.to_string(),
        }
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
                Some(Desired {
                    name,
                    settings: Settings::Bucket(settings),
                    ..
                }) => s3_bucket::apply(&self.clients, name, settings).await?,
                _ => return Ok(None),
            }
        }
        let now = std::time::SystemTime::now();
        Lock::acquire(&self.clients, &bucket, owner, ttl, now, break_lock)
            .await
            .map(Some)
    }

    /// The local source of a training data channel (`name`: the resource's name, its prefix).
    fn data_source(&self, name: &str, channel: Channel) -> Result<&Path, AwsError> {
        engine::desired::channel_sources(&self.spec)
            .into_iter()
            .find(|(c, _)| *c == channel)
            .ok_or_else(|| {
                AwsError::other(
                    "upload",
                    Kind::TrainingData,
                    name,
                    format!("no `{channel}` channel in deploy.yaml"),
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
        found.extend(digests.into_iter().map(|digest| Found::new(Kind::Image, digest)));
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
        Ok(self.is_ours(tags.iter()))
    }

    /// Listed resources of `kind` named `<deployment>-…` and tagged as ours, with what each uses (a
    /// model its image, an endpoint config its model: what a rollback needs kept with it).
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
                                .and_then(crate::sagemaker::image_ref)
                        });
                    match image {
                        Some(image) => Found::new(kind, &resource).using(Kind::Image, image.digest.as_str()),
                        None => Found::new(kind, &resource),
                    }
                }
                Kind::EndpointConfig => {
                    let model = sagemaker_endpoint_config::describe(&self.clients, &resource)
                        .await?
                        .map(|config| config.model)
                        .filter(|model| !model.is_empty());
                    match model {
                        Some(model) => Found::new(kind, &resource).using(Kind::Model, model),
                        None => Found::new(kind, &resource),
                    }
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
            found.push(Found::new(Kind::Endpoint, name).using(Kind::EndpointConfig, endpoint.config));
            if endpoint_autoscaling::exists(&self.clients, name).await? {
                found.push(Found::new(Kind::Autoscaling, name));
            }
        }
        Ok(found)
    }

    /// Pushes the image this run built (it must be the desired one) into the desired repository.
    async fn push_image(&self, name: &str, settings: &engine::kind::ImageSettings) -> Result<(), AwsError> {
        let built = self.built_image()?;
        let want = &settings.image.digest;
        if built.manifest_digest != *want {
            return Err(AwsError::other(
                "push",
                Kind::Image,
                name,
                format!(
                    "the binary now builds {}, not the planned {want}; run `orchestrate up` again",
                    built.manifest_digest
                ),
            ));
        }
        ecr_image::push(
            &self.clients,
            &settings.image.repository,
            &built,
            self.registry.as_deref(),
        )
        .await?;
        Ok(())
    }
}

/// A data source's local path; `s3://` sources are not uploaded by this build.
fn local_path(channel: Channel, source: &DataSource) -> Result<&Path, AwsError> {
    match source {
        DataSource::LocalFile(path) | DataSource::LocalDir(path) => Ok(path),
        DataSource::S3 { .. } => Err(AwsError::other(
            "upload",
            Kind::TrainingData,
            channel.as_str(),
            format!(
                "training from an existing `{source}` is not supported by this build; use a local file or folder"
            ),
        )),
    }
}

/// The training data resource an object key belongs to: `data/<sha12>/<channel>/<file…>` ->
/// its key prefix `data/<sha12>/<channel>/` (the name `engine::desired_state` gives it).
pub fn data_resource_name(key: &str) -> Option<String> {
    let rest = key.strip_prefix(DATA_PREFIX)?;
    let mut parts = rest.splitn(3, '/');
    let (hash, channel, file) = (parts.next()?, parts.next()?, parts.next()?);
    if hash.is_empty() || channel.is_empty() || file.is_empty() {
        return None;
    }
    Some(format!("{DATA_PREFIX}{hash}/{channel}/"))
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
        let name = desired.name.as_str();
        let observed = match &desired.settings {
            Settings::Bucket(_) => s3_bucket::observe(clients, name).await,
            Settings::TrainingData(data) => training_data::observe(clients, &self.bucket(), name, data).await,
            Settings::Role(_) => iam_role::observe(clients, name, &self.policy_scope()).await,
            Settings::Repository(_) => ecr_repository::observe(clients, name).await,
            Settings::Image(image) => ecr_image::observe(clients, &image.image).await,
            Settings::TrainingJob(_) => sagemaker_training_job::observe(clients, &self.bucket(), name).await,
            Settings::Model(model) => sagemaker_model::observe(clients, name, model).await,
            Settings::EndpointConfig(_) => sagemaker_endpoint_config::observe(clients, name).await,
            Settings::Endpoint(endpoint) => sagemaker_endpoint::observe(clients, name, endpoint).await,
            Settings::Autoscaling(_) => endpoint_autoscaling::observe(clients, name).await,
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
        upstream: Upstream<'_>,
    ) -> Result<Applied, TargetError> {
        let clients = &self.clients;
        let name = desired.name.as_str();
        let state = upstream.state;
        let bucket = self.bucket();
        let role = || {
            state
                .get(Kind::Role)
                .map(|r| r.name.clone())
                .unwrap_or_else(|| self.spec.role_name())
        };
        match &desired.settings {
            Settings::Bucket(settings) => s3_bucket::apply(clients, name, settings).await?,
            Settings::TrainingData(data) => {
                let source = self.data_source(name, data.channel)?;
                training_data::apply(clients, &bucket, name, data, source).await?;
            }
            Settings::Role(settings) => {
                iam_role::apply(clients, name, settings, &self.policy_scope()).await?
            }
            Settings::Repository(settings) => ecr_repository::apply(clients, name, settings).await?,
            Settings::Image(settings) => self.push_image(name, settings).await?,
            Settings::TrainingJob(settings) => {
                let role = role();
                let tags = engine::desired::tags(&self.spec);
                let cx = JobContext {
                    account: &self.account,
                    bucket: &bucket,
                    role: &role,
                    tags: &tags,
                };
                sagemaker_training_job::apply(clients, name, settings, state, &cx).await?;
                return Ok(Applied::Pending);
            }
            Settings::Model(settings) => {
                let role = role();
                let job = upstream.training_job();
                sagemaker_model::apply(clients, name, settings, job, &self.account, &role).await?;
            }
            Settings::EndpointConfig(settings) => {
                sagemaker_endpoint_config::apply(clients, name, settings).await?;
            }
            Settings::Endpoint(settings) => {
                let autoscaling = state.get(Kind::Autoscaling).is_some();
                return Ok(sagemaker_endpoint::apply(
                    clients,
                    name,
                    settings,
                    autoscaling,
                    self.poll_interval,
                )
                .await?);
            }
            Settings::Autoscaling(settings) => endpoint_autoscaling::apply(clients, name, settings).await?,
        }
        Ok(Applied::Ready(Outputs::None))
    }

    async fn delete(&self, found: &Found) -> Result<(), TargetError> {
        let clients = &self.clients;
        match found.kind {
            Kind::Bucket => s3_bucket::delete(clients, &found.name).await?,
            Kind::TrainingData => training_data::delete(clients, &self.bucket(), &found.name).await?,
            Kind::Role => iam_role::delete(clients, &found.name).await?,
            Kind::Repository => ecr_repository::delete(clients, &found.name).await?,
            Kind::Image => ecr_image::delete(clients, &self.spec.repository_name(), &found.name).await?,
            Kind::TrainingJob => sagemaker_training_job::stop(clients, &found.name).await?,
            Kind::Model => sagemaker_model::delete(clients, &found.name).await?,
            Kind::EndpointConfig => sagemaker_endpoint_config::delete(clients, &found.name).await?,
            Kind::Endpoint => sagemaker_endpoint::delete(clients, &found.name, self.poll_interval).await?,
            Kind::Autoscaling => endpoint_autoscaling::delete(clients, &found.name).await?,
        }
        Ok(())
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
            Some("data/0123456789ab/train/")
        );
        assert_eq!(
            data_resource_name("data/0123456789ab/validation/part/1.csv").as_deref(),
            Some("data/0123456789ab/validation/")
        );
        // The name `engine::desired_state` gives the channel's resource.
        let channel = ChannelData::new(Channel::Train, "0123456789abcdef");
        assert_eq!(
            data_resource_name(&format!("{}train.csv", channel.key_prefix())),
            Some(channel.key_prefix())
        );
        assert_eq!(data_resource_name("orchestrate/lock.json"), None);
        assert_eq!(data_resource_name("data/0123456789ab/train/"), None);
        assert_eq!(data_resource_name("data/x"), None);
    }
}
