//! The closed set of resource kinds a deployment owns and every fact about each kind, declared once
//! in one list (the [`kinds!`] invocation below): how users call it, what it needs first, whether it
//! is permanent, whether it is part of a rollout, whether it stays with a retained bucket, and the
//! folder the local target keeps it in. `Kind::ALL`, `Kind::facts` and the ordering come from that
//! list, so a kind cannot be declared without its facts, nor left out of `ALL`.
//!
//! Order matters: a kind comes after every kind it depends on (a unit test checks it), `up` applies
//! in that order and `down` deletes in the reverse order.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::resource::{FieldDiff, OnChange};
use crate::target::KindOnTarget;
use crate::values::{
    AlarmMetric, AlarmRule, Capacity, Channel, DataCapture, DataHash, DataHashes, Hosting, Hyperparameters,
    ImageRef, Instances, Invocation, InvocationMode, Name, NetworkIsolation, Seconds, Tags,
};

/// What is known about a kind, independent of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindFacts {
    /// How users call it (`training job`).
    pub label: &'static str,
    /// The kinds that must exist before this one.
    pub dependencies: &'static [Kind],
    /// Cannot be deleted (SageMaker keeps training jobs forever): never a leftover; `down` only
    /// stops a running one.
    pub permanent: bool,
    /// A change to it rolls a new model out to the endpoint (the quality gate guards it).
    pub in_rollout: bool,
    /// Kept by `down` when `bucket.retain_on_down` is set (the bucket and what lives in it).
    pub kept_with_bucket: bool,
    /// The local target's folder of this kind's records, under the deployment's state folder.
    pub local_folder: &'static str,
    /// The settings' fields, in declaration order, with what a difference in each means.
    pub fields: &'static [(&'static str, OnChange)],
}

/// Declares `Kind`, its facts, and each kind's typed settings from one list.
macro_rules! kinds {
    ($(
        $(#[$doc:meta])*
        $variant:ident {
            label: $label:literal,
            dependencies: [$($dependency:ident),* $(,)?],
            permanent: $permanent:literal,
            in_rollout: $in_rollout:literal,
            kept_with_bucket: $kept:literal,
            local_folder: $folder:literal,
            $(#[$settings_doc:meta])*
            settings: $settings:ident {
                $(
                    $(#[$field_doc:meta])*
                    $field:ident: $ty:ty => $on_change:ident
                ),* $(,)?
            } $(,)?
        }
    )*) => {
        /// Every kind of resource a deployment owns, in dependency order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Kind {
            $($(#[$doc])* $variant,)*
        }

        impl Kind {
            /// Every kind, in dependency order.
            pub const ALL: &'static [Kind] = &[$(Kind::$variant,)*];

            /// The facts of this kind.
            pub const fn facts(self) -> KindFacts {
                match self {
                    $(Kind::$variant => KindFacts {
                        label: $label,
                        dependencies: &[$(Kind::$dependency,)*],
                        permanent: $permanent,
                        in_rollout: $in_rollout,
                        kept_with_bucket: $kept,
                        local_folder: $folder,
                        fields: &[$((stringify!($field), OnChange::$on_change),)*],
                    },)*
                }
            }
        }

        $(
            $(#[$settings_doc])*
            #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
            #[serde(deny_unknown_fields)]
            pub struct $settings {
                $($(#[$field_doc])* pub $field: $ty,)*
            }

            impl $settings {
                /// The fields that differ from `have`, each with what its difference means.
                pub fn diff(&self, have: &Self) -> Vec<FieldDiff> {
                    let mut differing = Vec::new();
                    $(
                        if self.$field != have.$field {
                            differing.push(FieldDiff {
                                field: stringify!($field),
                                want: self.$field.to_string(),
                                have: Some(have.$field.to_string()),
                                on_change: OnChange::$on_change,
                            });
                        }
                    )*
                    differing
                }
            }

            impl From<$settings> for Settings {
                fn from(settings: $settings) -> Self {
                    Settings::$variant(settings)
                }
            }
        )*

        /// What the deployment wants of one resource (or what a target found), typed per kind.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        pub enum Settings {
            $($variant($settings),)*
        }

        impl Settings {
            pub fn kind(&self) -> Kind {
                match self {
                    $(Settings::$variant(_) => Kind::$variant,)*
                }
            }

            /// The fields of `self` (wanted) that differ from `have`; `None` when `have` is of another
            /// kind (a target bug: nothing can be compared).
            pub fn diff(&self, have: &Settings) -> Option<Vec<FieldDiff>> {
                match (self, have) {
                    $((Settings::$variant(want), Settings::$variant(have)) => Some(want.diff(have)),)*
                    _ => None,
                }
            }
        }

        /// The module implementing each kind on a target: one associated type per kind, so a
        /// kind added to the list is a compile error in every target until it names its module.
        pub trait KindModules: Sized {
            $(
                #[doc = concat!("How the target handles the ", $label, ".")]
                type $variant: KindOnTarget<Self, Settings = $settings>;
            )*
        }

        /// Routes a resource to the module of its kind on a target (see [`KindModules`]); a
        /// target's `Target` methods call these.
        pub mod dispatch {
            use std::future::Future;
            use std::pin::Pin;

            use super::*;
            use crate::resource::{Change, Desired, Observed};
            use crate::target::{Applied, Deleted, Found, TargetError, Upstream};

            /// Observes `desired` with its kind's module.
            pub async fn observe<T: KindModules>(target: &T, desired: &Desired) -> Result<Observed, TargetError> {
                let name = desired.name.as_str();
                match &desired.settings {
                    $(Settings::$variant(settings) => T::$variant::observe(target, name, settings).await,)*
                }
            }

            /// Applies `desired` with its kind's module.
            pub async fn apply<T: KindModules>(
                target: &T,
                desired: &Desired,
                change: &Change,
                upstream: Upstream<'_>,
            ) -> Result<Applied, TargetError> {
                let name = desired.name.as_str();
                match &desired.settings {
                    $(Settings::$variant(settings) => {
                        T::$variant::apply(target, name, settings, change, upstream).await
                    })*
                }
            }

            /// Deletes `found` with its kind's module.
            pub async fn delete<T: KindModules>(target: &T, found: &Found) -> Result<Deleted, TargetError> {
                match found.kind {
                    $(Kind::$variant => T::$variant::delete(target, &found.name).await,)*
                }
            }

            /// What the deployment owns: every kind's discovery, concurrently, in kind order.
            pub async fn owned<T: KindModules>(target: &T) -> Result<Vec<Found>, TargetError> {
                type Discovery<'a> = Pin<Box<dyn Future<Output = Result<Vec<Found>, TargetError>> + 'a>>;
                // Boxed: the SDK's futures are large, and joined inline they overflowed a 2 MiB
                // thread stack in debug builds.
                let discoveries: Vec<Discovery<'_>> = vec![$(Box::pin(T::$variant::owned(target)),)*];
                let found = futures_util::future::try_join_all(discoveries).await?;
                Ok(found.concat())
            }
        }
    };
}

kinds! {
    /// The data bucket (a folder locally).
    Bucket {
        label: "bucket",
        dependencies: [],
        permanent: false,
        in_rollout: false,
        kept_with_bucket: true,
        local_folder: "buckets",
        /// The bucket. Its name holds the account and region on AWS; the AWS target enforces and
        /// reports its protections (versioning, encryption, public access block, TLS only).
        settings: BucketSettings {
            tags: Tags => Update,
        },
    }
    /// One uploaded data channel, named by its key prefix `data/<sha12>/<channel>/`.
    TrainingData {
        label: "training data",
        dependencies: [Bucket],
        permanent: false,
        in_rollout: false,
        kept_with_bucket: true,
        local_folder: "training-data",
        /// One channel's files, uploaded under their content hash.
        settings: TrainingDataSettings {
            channel: Channel => Replace,
            sha256: DataHash => Replace,
        },
    }
    /// The SageMaker execution role.
    Role {
        label: "role",
        dependencies: [],
        permanent: false,
        in_rollout: false,
        kept_with_bucket: false,
        local_folder: "roles",
        /// The execution role. The AWS target enforces and reports its trust and its least-privilege
        /// policy, scoped to the deployment's bucket, repository and log groups.
        settings: RoleSettings {
            tags: Tags => Update,
        },
    }
    /// The image repository.
    Repository {
        label: "repository",
        dependencies: [],
        permanent: false,
        in_rollout: false,
        kept_with_bucket: false,
        local_folder: "repositories",
        /// The image repository. The AWS target enforces immutable tags and scan on push.
        settings: RepositorySettings {
            tags: Tags => Update,
        },
    }
    /// The model-image container image, named by its manifest digest.
    Image {
        label: "image",
        dependencies: [Repository],
        permanent: false,
        in_rollout: false,
        kept_with_bucket: false,
        local_folder: "images",
        /// The reproducibly built model-image, in the deployment's repository.
        settings: ImageSettings {
            image: ImageRef => Replace,
        },
    }
    /// The training job (named by its inputs; attempts `-1`, `-2`… after failures).
    TrainingJob {
        label: "training job",
        dependencies: [TrainingData, Role, Image],
        permanent: true,
        in_rollout: false,
        kept_with_bucket: false,
        local_folder: "training-jobs",
        /// A training job: every input is in its name's hash, and none can change in place.
        settings: TrainingJobSettings {
            image: ImageRef => Replace,
            data: DataHashes => Replace,
            hyperparameters: Hyperparameters => Replace,
            instances: Instances => Replace,
            volume_size_gb: u32 => Replace,
            max_runtime: Seconds => Replace,
        },
    }
    /// The model serving the training job's artifact.
    Model {
        label: "model",
        dependencies: [TrainingJob],
        permanent: false,
        in_rollout: true,
        kept_with_bucket: false,
        local_folder: "models",
        /// A model: the training job's artifact served by the image.
        settings: ModelSettings {
            image: ImageRef => Replace,
            /// The training job's base name (without the attempt suffix).
            training_job: Name => Replace,
            /// Off only for serverless endpoints; absent from records written before it existed.
            #[serde(default)]
            network_isolation: NetworkIsolation => Replace,
            /// Async models take bigger, slower requests; absent from records written before async
            /// existed (all real-time).
            #[serde(default, skip_serializing_if = "InvocationMode::is_real_time")]
            invocation: InvocationMode => Replace,
            tags: Tags => Update,
        },
    }
    /// The endpoint config: which model on which instances.
    EndpointConfig {
        label: "endpoint config",
        dependencies: [Model],
        permanent: false,
        in_rollout: true,
        kept_with_bucket: false,
        local_folder: "endpoint-configs",
        /// An endpoint config: one production variant serving the model, on instances or
        /// serverless.
        settings: EndpointConfigSettings {
            model: Name => Replace,
            variant: Capacity => Replace,
            /// Absent from records written before async existed (all real-time).
            #[serde(default, skip_serializing_if = "Invocation::is_real_time")]
            invocation: Invocation => Replace,
            /// Absent from records written before data capture existed (all off).
            #[serde(default, skip_serializing_if = "DataCapture::is_off")]
            data_capture: DataCapture => Replace,
            tags: Tags => Update,
        },
    }
    /// A CloudWatch alarm on the endpoint's metrics that rolls an update back (`endpoint.rollout`),
    /// named `<deployment>-<metric>`.
    Alarm {
        label: "alarm",
        dependencies: [],
        permanent: false,
        in_rollout: false,
        kept_with_bucket: false,
        local_folder: "alarms",
        /// An alarm on one metric of the endpoint's variant, one-minute periods, missing data not
        /// breaching.
        settings: AlarmSettings {
            metric: AlarmMetric => Update,
            /// The endpoint whose metric it watches (the `EndpointName` dimension).
            endpoint: Name => Update,
            rule: AlarmRule => Update,
            tags: Tags => Update,
        },
    }
    /// The endpoint, named after the deployment.
    Endpoint {
        label: "endpoint",
        dependencies: [EndpointConfig, Alarm],
        permanent: false,
        in_rollout: true,
        kept_with_bucket: false,
        local_folder: "endpoints",
        /// The endpoint: which config it serves, and how it is hosted (SageMaker cannot update
        /// an endpoint between instances and serverless).
        settings: EndpointSettings {
            endpoint_config: Name => Update,
            /// Absent from records written before serverless existed (all on instances).
            #[serde(default)]
            hosting: Hosting => Replace,
            tags: Tags => Update,
        },
    }
    /// The endpoint's autoscaling policy.
    Autoscaling {
        label: "autoscaling",
        dependencies: [Endpoint],
        permanent: false,
        in_rollout: false,
        kept_with_bucket: false,
        local_folder: "autoscaling",
        /// Target tracking on invocations per instance, between `min` and `max` instances.
        settings: AutoscalingSettings {
            min: u32 => Update,
            max: u32 => Update,
            invocations_per_instance: u32 => Update,
        },
    }
}

impl Settings {
    /// The resource's tags, for the kinds that carry them: among them the deployment's own tag
    /// (`desired::DEPLOYMENT_TAG`), which says whose the resource is.
    pub fn tags(&self) -> Option<&Tags> {
        match self {
            Settings::Bucket(s) => Some(&s.tags),
            Settings::Role(s) => Some(&s.tags),
            Settings::Repository(s) => Some(&s.tags),
            Settings::Model(s) => Some(&s.tags),
            Settings::EndpointConfig(s) => Some(&s.tags),
            Settings::Endpoint(s) => Some(&s.tags),
            Settings::Alarm(s) => Some(&s.tags),
            Settings::TrainingData(_)
            | Settings::Image(_)
            | Settings::TrainingJob(_)
            | Settings::Autoscaling(_) => None,
        }
    }
}

impl Kind {
    /// How users call it.
    pub const fn label(self) -> &'static str {
        self.facts().label
    }

    /// The kinds this one needs to exist first.
    pub const fn dependencies(self) -> &'static [Kind] {
        self.facts().dependencies
    }

    /// The dependency level: 0 for kinds that need nothing, else one more than the deepest
    /// dependency. Resources of one level are applied concurrently.
    pub fn level(self) -> usize {
        self.dependencies()
            .iter()
            .map(|d| d.level() + 1)
            .max()
            .unwrap_or(0)
    }
}

impl Kind {
    /// The kind a user names on the command line (`role`, `endpoint_config`: its JSON name).
    pub fn from_key(key: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|kind| kind.key() == key)
    }

    /// The kind's name on the command line and in JSON: its label with `_` for spaces.
    pub fn key(self) -> String {
        self.label().replace(' ', "_")
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_keys_are_the_json_names() {
        for &kind in Kind::ALL {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::String(kind.key())
            );
            assert_eq!(Kind::from_key(&kind.key()), Some(kind));
        }
        assert_eq!(Kind::from_key("endpoint config"), None);
    }

    #[test]
    fn dependencies_come_earlier_in_kind_order() {
        for &kind in Kind::ALL {
            for dependency in kind.dependencies() {
                assert!(*dependency < kind, "{kind} depends on later {dependency}");
            }
        }
    }

    #[test]
    fn every_kind_is_listed_once_in_declaration_order() {
        let mut sorted = Kind::ALL.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, Kind::ALL, "ALL is the declaration order, without repeats");
    }

    #[test]
    fn labels_and_local_folders_are_unique() {
        for (i, a) in Kind::ALL.iter().enumerate() {
            for b in &Kind::ALL[i + 1..] {
                assert_ne!(a.label(), b.label());
                assert_ne!(a.facts().local_folder, b.facts().local_folder);
            }
        }
    }

    #[test]
    fn permanent_kinds_are_training_jobs_and_rollouts_end_at_the_endpoint() {
        let permanent: Vec<Kind> = Kind::ALL
            .iter()
            .copied()
            .filter(|k| k.facts().permanent)
            .collect();
        assert_eq!(permanent, [Kind::TrainingJob]);
        let rollout: Vec<Kind> = Kind::ALL
            .iter()
            .copied()
            .filter(|k| k.facts().in_rollout)
            .collect();
        assert_eq!(rollout, [Kind::Model, Kind::EndpointConfig, Kind::Endpoint]);
    }
}
