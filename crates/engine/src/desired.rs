//! The desired state of a deployment: every resource, its name and its typed settings, computed
//! from the validated `Spec` and locally known facts (data hashes, the image digest) before any
//! side effect.

use std::time::Duration;

use serde::Serialize;
use spec::{DataSource, Spec, Target, Validation};

use crate::kind::{
    AlarmSettings, AutoscalingSettings, BucketSettings, EndpointConfigSettings, EndpointSettings,
    ImageSettings, Kind, ModelSettings, RepositorySettings, RoleSettings, TrainingDataSettings,
    TrainingJobSettings,
};
use crate::names::hash12;
use crate::resource::Desired;
use crate::values::{
    AlarmMetric, Capacity, Channel, DataCapture, DataHash, DataHashes, Digest, Hosting, Hyperparameters,
    ImageRef, Instances, Invocation, InvocationMode, NetworkIsolation, Tags,
};
use spec::RolloutAlarms;

/// Tag every owned resource carries; teardown and orphan detection find resources by it.
pub const DEPLOYMENT_TAG: &str = "orchestrate:deployment";
/// Second tag every owned resource carries.
pub const MANAGED_BY_TAG: &str = "managed-by";
pub const MANAGED_BY_VALUE: &str = "orchestrate";

/// One data channel uploaded for training.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelData {
    pub channel: Channel,
    /// SHA-256 of the channel's files.
    pub sha256: DataHash,
}

impl ChannelData {
    pub fn new(channel: Channel, sha256: impl Into<String>) -> Self {
        Self {
            channel,
            sha256: DataHash(sha256.into()),
        }
    }

    /// The object key prefix the target stores the data under, `data/<sha12>/<channel>/`: the
    /// training data resource's name.
    pub fn key_prefix(&self) -> String {
        key_prefix(self.channel, &self.sha256)
    }
}

/// `data/<sha12>/<channel>/`: where a channel with this hash lives in the bucket.
pub fn key_prefix(channel: Channel, sha256: &DataHash) -> String {
    format!("data/{}/{channel}/", sha256.short12())
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
    /// Manifest digest of the reproducibly built model-image.
    pub image_digest: Digest,
}

/// The data channels a deployment uploads for training, in order: `train`, then `validation` when
/// it is a source of its own (not a fraction of `train`).
pub fn channel_sources(spec: &Spec) -> Vec<(Channel, &DataSource)> {
    let mut channels = vec![(Channel::Train, &spec.data.train)];
    if let Validation::Source(source) = &spec.data.validation {
        channels.push((Channel::Validation, source));
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
        self.resources.iter().find(|d| d.kind() == kind)
    }

    pub fn all(&self, kind: Kind) -> impl Iterator<Item = &Desired> {
        self.resources.iter().filter(move |d| d.kind() == kind)
    }

    /// The training job's base name (without attempt suffix).
    pub fn training_job(&self) -> &str {
        &self
            .get(Kind::TrainingJob)
            .expect("a deployment always trains")
            .name
    }

    /// The uploaded channels: their settings and names (key prefixes).
    pub fn training_data(&self) -> impl Iterator<Item = (&str, &TrainingDataSettings)> {
        self.resources.iter().filter_map(|d| match &d.settings {
            crate::kind::Settings::TrainingData(data) => Some((d.name.as_str(), data)),
            _ => None,
        })
    }
}

/// The tags of every owned resource: the user's, plus the deployment and managed-by tags.
pub fn tags(spec: &Spec) -> Tags {
    let mut tags = spec.tags.clone();
    tags.insert(DEPLOYMENT_TAG.to_string(), spec.name.to_string());
    tags.insert(MANAGED_BY_TAG.to_string(), MANAGED_BY_VALUE.to_string());
    Tags(tags)
}

/// Computes the whole desired state. Pure: same spec and facts, same names.
pub fn desired_state(spec: &Spec, target: Target, facts: &Facts) -> DesiredState {
    let name = spec.name.as_str();
    let tags = tags(spec);
    let mut resources = Vec::new();

    resources.push(Desired::new(&facts.bucket, BucketSettings { tags: tags.clone() }));
    for channel in &facts.channels {
        resources.push(Desired::new(
            channel.key_prefix(),
            TrainingDataSettings {
                channel: channel.channel,
                sha256: channel.sha256.clone(),
            },
        ));
    }
    resources.push(Desired::new(&facts.role, RoleSettings { tags: tags.clone() }));
    resources.push(Desired::new(
        &facts.repository,
        RepositorySettings { tags: tags.clone() },
    ));
    let image = ImageRef {
        repository: facts.repository.clone(),
        digest: facts.image_digest.clone(),
    };
    resources.push(Desired::new(
        facts.image_digest.as_str(),
        ImageSettings { image: image.clone() },
    ));

    let training = &spec.training;
    let job_settings = TrainingJobSettings {
        image: image.clone(),
        data: DataHashes(
            facts
                .channels
                .iter()
                .map(|c| (c.channel, c.sha256.clone()))
                .collect(),
        ),
        hyperparameters: Hyperparameters(spec.sagemaker_hyperparameters()),
        instances: Instances {
            count: training.instance_count,
            instance_type: training.instance_type.clone(),
        },
        volume_size_gb: training.volume_size_gb,
        max_runtime: training.max_runtime.into(),
    };
    // Every input of the job is in its name: a changed input is a new, immutable job.
    let job = format!("{name}-{}", hash12(&[canonical(&job_settings)]));
    resources
        .push(Desired::new(&job, job_settings).wait_timeout(training.max_runtime + Duration::from_secs(600)));

    let endpoint = &spec.endpoint;
    // Serverless endpoints do not support network isolation; an isolated model keeps the name it
    // had before serverless existed.
    let network_isolation = if endpoint.capacity.is_serverless() {
        NetworkIsolation::Open
    } else {
        NetworkIsolation::Isolated
    };
    let invocation = match endpoint.invocation {
        spec::Invocation::RealTime => Invocation::RealTime,
        spec::Invocation::Async(inference) => Invocation::Async(inference.into()),
    };
    // Each setting that came after the first models is in the name only when it differs from
    // what those models were, so existing models keep their names.
    let image_text = image.to_string();
    let mut model_parts = vec!["model", job.as_str(), &image_text];
    if network_isolation == NetworkIsolation::Open {
        model_parts.push("network-isolation-off");
    }
    if invocation.mode() == InvocationMode::Async {
        model_parts.push("async");
    }
    let model = format!("{name}-{}", hash12(&model_parts));
    resources.push(Desired::new(
        &model,
        ModelSettings {
            image,
            training_job: job.clone(),
            network_isolation,
            invocation: invocation.mode(),
            tags: tags.clone(),
        },
    ));

    let variant = match &endpoint.capacity {
        spec::Capacity::Instances { instance_type, count } => Capacity::Instances(Instances {
            count: *count,
            instance_type: instance_type.clone(),
        }),
        spec::Capacity::Serverless(serverless) => Capacity::Serverless((*serverless).into()),
    };
    let hosting = match (variant.hosting(), invocation) {
        (Hosting::Instances, Invocation::Async(_)) => Hosting::Async,
        (hosting, _) => hosting,
    };
    let data_capture = DataCapture::from(endpoint.data_capture);
    let variant_text = canonical(&variant);
    let invocation_text = canonical(&invocation);
    let capture_text = canonical(&data_capture);
    let mut config_parts = vec!["endpoint-config", model.as_str(), &variant_text];
    if !invocation.is_real_time() {
        config_parts.push(&invocation_text);
    }
    if !data_capture.is_off() {
        config_parts.push(&capture_text);
    }
    let config = format!("{name}-{}", hash12(&config_parts));
    resources.push(Desired::new(
        &config,
        EndpointConfigSettings {
            model,
            variant,
            invocation,
            data_capture,
            tags: tags.clone(),
        },
    ));
    if let RolloutAlarms::Owned(owned) = &endpoint.rollout.alarms {
        for (metric, rule) in [
            (AlarmMetric::Invocation5xxErrors, owned.errors),
            (AlarmMetric::ModelLatency, owned.latency),
        ] {
            resources.push(Desired::new(
                alarm_name(name, metric),
                AlarmSettings {
                    metric,
                    endpoint: name.to_string(),
                    rule: rule.into(),
                    tags: tags.clone(),
                },
            ));
        }
    }
    // A rollout bakes each step on top of starting the new fleet: the wait covers both.
    resources.push(
        Desired::new(
            name,
            EndpointSettings {
                endpoint_config: config,
                hosting,
                tags,
            },
        )
        .wait_timeout(endpoint.wait_timeout + endpoint.rollout.total_bake()),
    );
    if let Some(scaling) = &endpoint.autoscaling {
        resources.push(Desired::new(
            name,
            AutoscalingSettings {
                min: scaling.min,
                max: scaling.max,
                invocations_per_instance: scaling.invocations_per_instance,
            },
        ));
    }
    DesiredState {
        deployment: name.to_string(),
        target,
        resources,
    }
}

/// The name of the alarm a deployment owns on one endpoint metric, `<deployment>-<metric>`.
pub fn alarm_name(deployment: &str, metric: AlarmMetric) -> String {
    format!("{deployment}-{}", metric.name_suffix())
}

/// The alarms an endpoint update names for its automatic rollback: the owned ones, or the user's.
pub fn rollback_alarms(spec: &Spec) -> Vec<String> {
    match &spec.endpoint.rollout.alarms {
        RolloutAlarms::None => Vec::new(),
        RolloutAlarms::Owned(_) => AlarmMetric::ALL
            .iter()
            .map(|&metric| alarm_name(spec.name.as_str(), metric))
            .collect(),
        RolloutAlarms::Named(names) => names.clone(),
    }
}

/// The canonical JSON of a value that goes into a name's hash (struct fields in declaration order,
/// maps sorted), so the name changes exactly when the value does.
fn canonical(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("settings serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &std::path::Path) -> Spec {
        std::fs::write(dir.join("train.csv"), "a,Label\n1,Normal\n").unwrap();
        let yaml = "version: 1\nname: iot\ndata: {train: train.csv}\n\
                    endpoint: {instance_count: 2, autoscaling: {min: 2, max: 3}, rollout: {strategy: canary}}\n";
        spec::parse(yaml, "deploy.yaml", dir).unwrap_or_else(|e| panic!("{e}"))
    }

    fn facts() -> Facts {
        Facts {
            bucket: "iot-local".into(),
            channels: vec![ChannelData::new(Channel::Train, "ab".repeat(32))],
            role: "iot-role".into(),
            repository: "iot-repo".into(),
            image_digest: Digest::sha256(b"image"),
        }
    }

    /// Adding a kind to the table without computing it here fails this test.
    #[test]
    fn a_full_deployment_wants_every_kind_in_dependency_order() {
        let dir = std::env::temp_dir().join(format!("engine-desired-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let state = desired_state(&spec(&dir), Target::Local, &facts());
        for kind in Kind::ALL {
            assert!(state.get(*kind).is_some(), "no desired {kind}");
        }
        let kinds: Vec<Kind> = state.resources.iter().map(Desired::kind).collect();
        assert!(kinds.windows(2).all(|w| w[0] <= w[1]), "{kinds:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_follow_their_inputs() {
        let dir = std::env::temp_dir().join(format!("engine-names-follow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let spec = spec(&dir);
        let first = desired_state(&spec, Target::Local, &facts());
        assert_eq!(first, desired_state(&spec, Target::Local, &facts()), "pure");
        let data = first.get(Kind::TrainingData).unwrap();
        assert_eq!(data.name, "data/abababababab/train/");
        let mut changed = facts();
        changed.channels[0].sha256 = DataHash("cd".repeat(32));
        let second = desired_state(&spec, Target::Local, &changed);
        for kind in [Kind::TrainingJob, Kind::Model, Kind::EndpointConfig] {
            assert_ne!(
                first.get(kind).unwrap().name,
                second.get(kind).unwrap().name,
                "{kind}"
            );
        }
        for kind in [
            Kind::Bucket,
            Kind::Role,
            Kind::Repository,
            Kind::Image,
            Kind::Endpoint,
        ] {
            assert_eq!(
                first.get(kind).unwrap().name,
                second.get(kind).unwrap().name,
                "{kind}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
