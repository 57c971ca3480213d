//! The desired state of a deployment: every resource, its name and its fields, computed from the
//! validated `Spec` and locally known facts (data hashes, the image digest) before any side effect.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use spec::{DataSource, Spec, Target, Validation};

use crate::names::hash12;
use crate::resource::{Desired, Kind, OnChange};

/// Tag every owned resource carries; teardown and orphan detection find resources by it.
pub const DEPLOYMENT_TAG: &str = "orchestrate:deployment";
/// Second tag every owned resource carries.
pub const MANAGED_BY_TAG: &str = "managed-by";
pub const MANAGED_BY_VALUE: &str = "orchestrate";

/// Field of a local endpoint saying whether its server process answers `/ping`.
pub const LOCAL_SERVING_FIELD: &str = "serving";
/// The value a healthy local endpoint reports.
pub const LOCAL_SERVING: &str = "answering /ping";

/// One data channel uploaded for training.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelData {
    /// `train` or `validation`.
    pub channel: String,
    /// SHA-256 of the channel's files.
    pub sha256: String,
    /// Object key prefix the target stores the data under: `data/<sha12>/<channel>/`.
    pub key_prefix: String,
}

/// What the target and the local machine know before planning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Facts {
    /// The data bucket's name on this target.
    pub bucket: String,
    pub channels: Vec<ChannelData>,
    /// The execution role's name.
    pub role: String,
    /// The image repository's name.
    pub repository: String,
    /// Manifest digest of the reproducibly built model-image (`sha256:…`).
    pub image_digest: String,
}

impl ChannelData {
    pub fn new(channel: &str, sha256: &str) -> Self {
        Self {
            channel: channel.to_string(),
            sha256: sha256.to_string(),
            key_prefix: format!("data/{}/{channel}/", &sha256[..12.min(sha256.len())]),
        }
    }
}

/// The data channels a deployment uploads for training, in order: `train`, then `validation` when
/// it is a source of its own (not a fraction of `train`).
pub fn channel_sources(spec: &Spec) -> Vec<(&'static str, &DataSource)> {
    let mut channels = vec![("train", &spec.data.train)];
    if let Validation::Source(source) = &spec.data.validation {
        channels.push(("validation", source));
    }
    channels
}

/// Every desired resource, in dependency order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesiredState {
    pub deployment: String,
    pub target: Target,
    pub resources: Vec<Desired>,
}

impl DesiredState {
    pub fn get(&self, kind: Kind) -> Option<&Desired> {
        self.resources.iter().find(|d| d.kind == kind)
    }

    pub fn all(&self, kind: Kind) -> impl Iterator<Item = &Desired> {
        self.resources.iter().filter(move |d| d.kind == kind)
    }

    /// The training job's base name (without attempt suffix).
    pub fn training_job(&self) -> &str {
        &self
            .get(Kind::TrainingJob)
            .expect("a deployment always trains")
            .name
    }
}

/// The tags of every owned resource: the user's, plus the deployment and managed-by tags.
pub fn tags(spec: &Spec) -> BTreeMap<String, String> {
    let mut tags = spec.tags.clone();
    tags.insert(DEPLOYMENT_TAG.to_string(), spec.name.to_string());
    tags.insert(MANAGED_BY_TAG.to_string(), MANAGED_BY_VALUE.to_string());
    tags
}

/// Tags as one comparable field value: `k=v` pairs, sorted, `;`-separated.
pub fn tags_field(tags: &BTreeMap<String, String>) -> String {
    tags.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// Computes the whole desired state. Pure: same spec and facts, same names.
pub fn desired_state(spec: &Spec, target: Target, facts: &Facts) -> DesiredState {
    let name = spec.name.as_str();
    let tags = tags_field(&tags(spec));
    let aws = target == Target::Aws;
    let mut resources = Vec::new();

    let mut bucket = Desired::new(Kind::Bucket, &facts.bucket).field("tags", &tags, OnChange::Update);
    if aws {
        bucket = bucket
            .field("region", spec.region.as_str(), OnChange::Replace)
            .field("versioning", "Enabled", OnChange::Update)
            .field("encryption", "AES256", OnChange::Update)
            .field("public_access_block", "all blocked", OnChange::Update)
            .field("tls_only_policy", "present", OnChange::Update);
    }
    resources.push(bucket);

    for channel in &facts.channels {
        resources.push(
            Desired::new(
                Kind::TrainingData,
                format!("{}{}", channel.key_prefix, channel.channel),
            )
            .field("sha256", &channel.sha256, OnChange::Replace),
        );
    }

    let mut role = Desired::new(Kind::Role, &facts.role).field("tags", &tags, OnChange::Update);
    if aws {
        role = role
            .field("trusted_service", "sagemaker.amazonaws.com", OnChange::Update)
            .field("policy", role_policy_id(spec, facts), OnChange::Update);
    }
    resources.push(role);

    let mut repository =
        Desired::new(Kind::Repository, &facts.repository).field("tags", &tags, OnChange::Update);
    if aws {
        repository = repository
            .field("tag_mutability", "IMMUTABLE", OnChange::Update)
            .field("scan_on_push", "true", OnChange::Update);
    }
    resources.push(repository);

    let image_ref = format!("{}@{}", facts.repository, facts.image_digest);
    resources.push(Desired::new(Kind::Image, &image_ref).field(
        "digest",
        &facts.image_digest,
        OnChange::Replace,
    ));

    let hyperparameters = spec.sagemaker_hyperparameters();
    let hyperparameters_text = hyperparameters
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    let data_hashes: Vec<String> = facts
        .channels
        .iter()
        .map(|c| format!("{}={}", c.channel, c.sha256))
        .collect();
    let training = &spec.training;
    let instance = format!("{}x{}", training.instance_count, training.instance_type);
    let job_hash = hash12(&[
        facts.image_digest.as_str(),
        &data_hashes.join(","),
        &hyperparameters_text,
        &instance,
        &training.volume_size_gb.to_string(),
        &training.max_runtime.as_secs().to_string(),
    ]);
    let job = format!("{name}-{job_hash}");
    resources.push(
        Desired::new(Kind::TrainingJob, &job)
            .field("image", &image_ref, OnChange::Replace)
            .field("data", data_hashes.join(","), OnChange::Replace)
            .field("hyperparameters", &hyperparameters_text, OnChange::Replace)
            .field("instance", &instance, OnChange::Replace)
            .wait_timeout(training.max_runtime + Duration::from_secs(600)),
    );

    let model = format!("{name}-{}", hash12(&["model", job.as_str(), image_ref.as_str()]));
    resources.push(
        Desired::new(Kind::Model, &model)
            .field("image", &image_ref, OnChange::Replace)
            .field("training_job", &job, OnChange::Replace)
            .field("tags", &tags, OnChange::Update),
    );

    let endpoint = &spec.endpoint;
    let variant = format!("{}x{}", endpoint.instance_count, endpoint.instance_type);
    let config = format!(
        "{name}-{}",
        hash12(&["endpoint-config", model.as_str(), variant.as_str()])
    );
    resources.push(
        Desired::new(Kind::EndpointConfig, &config)
            .field("model", &model, OnChange::Replace)
            .field("variant", &variant, OnChange::Replace)
            .field("tags", &tags, OnChange::Update),
    );
    let mut endpoint_resource = Desired::new(Kind::Endpoint, name)
        .field("endpoint_config", &config, OnChange::Update)
        .field("tags", &tags, OnChange::Update)
        .wait_timeout(endpoint.wait_timeout);
    if !aws {
        // The local endpoint is a process: a killed one is drift that `up` repairs.
        endpoint_resource = endpoint_resource.field(LOCAL_SERVING_FIELD, LOCAL_SERVING, OnChange::Update);
    }
    resources.push(endpoint_resource);
    if let Some(scaling) = &endpoint.autoscaling {
        resources.push(
            Desired::new(Kind::Autoscaling, name)
                .field("min", scaling.min.to_string(), OnChange::Update)
                .field("max", scaling.max.to_string(), OnChange::Update)
                .field(
                    "invocations_per_instance",
                    scaling.invocations_per_instance.to_string(),
                    OnChange::Update,
                ),
        );
    }
    DesiredState {
        deployment: name.to_string(),
        target,
        resources,
    }
}

/// Identifies the execution role's inline policy content (what it grants access to), so an edited
/// policy shows up as drift.
fn role_policy_id(spec: &Spec, facts: &Facts) -> String {
    format!(
        "s3:{};ecr:{};logs:/aws/sagemaker/*{}*",
        facts.bucket,
        facts.repository,
        spec.name.as_str()
    )
}
