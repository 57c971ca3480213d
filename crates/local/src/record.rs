//! The kinds that are only a record locally, handled by one implementation, [`Recorded`]: the
//! execution role (nothing assumes it), the image repository (the images live in `images/`, one
//! folder per digest), endpoint configs (immutable and content-named, as on SageMaker; the endpoint
//! reads its config's record to find the model to serve), the autoscaling policy (nothing scales
//! locally: one `model-image serve` process serves whatever the policy says) and the rollout alarms
//! (their rules, for the endpoint's rollout to read). Each record keeps the
//! name and the settings it was applied with, so `status` and `down` treat the resource exactly as
//! on AWS, and a changed policy or tag set is applied (recorded) like there. What differs between
//! them is only their settings type, which names its kind and what it uses
//! ([`RecordedSettings`]).
//!
//! The config the endpoint runs and the one it ran before (kept for `orchestrate rollback`), and
//! their models and images, are never deleted while the endpoint records them: `delete` here and the
//! model and image modules ask [`endpoint::rollback_protected`]. The engine's plan already keeps
//! them; the guard keeps the target safe on its own (a plan made before an endpoint update, a
//! hand-run delete). `down` deletes the endpoint first, so nothing is protected there.

use std::marker::PhantomData;

use engine::Settings;
use engine::kind::{
    AlarmSettings, AutoscalingSettings, EndpointConfigSettings, RepositorySettings, RoleSettings,
};
use engine::resource::{Change, Kind, Lifecycle, Observed, Outputs};
use engine::target::{Applied, Deleted, Found, KindOnTarget, ResourceId, TargetError, Upstream};

use crate::error::target_error;
use crate::state::{NoDetails, Record};
use crate::{LocalError, LocalTarget, endpoint};

/// The settings of a kind that is only a record on the local target.
pub trait RecordedSettings: Clone + Into<Settings> {
    /// The kind these settings belong to.
    const KIND: Kind;

    /// These settings, out of a record's settings (`None` when the record is of another kind).
    fn of(settings: Settings) -> Option<Self>;

    /// The resources a resource with these settings uses, kept with it for a rollback (an endpoint
    /// config's model).
    fn uses(&self) -> Vec<ResourceId> {
        Vec::new()
    }
}

impl RecordedSettings for RoleSettings {
    const KIND: Kind = Kind::Role;

    fn of(settings: Settings) -> Option<Self> {
        match settings {
            Settings::Role(role) => Some(role),
            _ => None,
        }
    }
}

impl RecordedSettings for RepositorySettings {
    const KIND: Kind = Kind::Repository;

    fn of(settings: Settings) -> Option<Self> {
        match settings {
            Settings::Repository(repository) => Some(repository),
            _ => None,
        }
    }
}

impl RecordedSettings for EndpointConfigSettings {
    const KIND: Kind = Kind::EndpointConfig;

    fn of(settings: Settings) -> Option<Self> {
        match settings {
            Settings::EndpointConfig(config) => Some(config),
            _ => None,
        }
    }

    fn uses(&self) -> Vec<ResourceId> {
        vec![ResourceId::new(Kind::Model, &self.model)]
    }
}

impl RecordedSettings for AutoscalingSettings {
    const KIND: Kind = Kind::Autoscaling;

    fn of(settings: Settings) -> Option<Self> {
        match settings {
            Settings::Autoscaling(policy) => Some(policy),
            _ => None,
        }
    }
}

impl RecordedSettings for AlarmSettings {
    const KIND: Kind = Kind::Alarm;

    fn of(settings: Settings) -> Option<Self> {
        match settings {
            Settings::Alarm(alarm) => Some(alarm),
            _ => None,
        }
    }
}

/// A kind that is only a record of its settings `S` (see the module docs).
#[derive(Debug)]
pub struct Recorded<S>(PhantomData<S>);

impl<S: RecordedSettings> KindOnTarget<LocalTarget> for Recorded<S> {
    type Settings = S;

    async fn observe(target: &LocalTarget, name: &str, _: &S) -> Result<Observed, TargetError> {
        let record = target.state.read::<NoDetails>(S::KIND, name);
        record
            .map(observed)
            .map_err(|e| target_error("observe", S::KIND, name, e))
    }

    async fn apply(
        target: &LocalTarget,
        name: &str,
        settings: &S,
        change: &Change,
        _: Upstream<'_>,
    ) -> Result<Applied, TargetError> {
        write(target, S::KIND, name, settings.clone())
            .map_err(|e| target_error(change.verb(), S::KIND, name, e))
    }

    async fn delete(target: &LocalTarget, name: &str) -> Result<Deleted, TargetError> {
        delete(target, S::KIND, name)
            .map(|()| Deleted::Gone)
            .map_err(|e| target_error("delete", S::KIND, name, e))
    }

    async fn owned(target: &LocalTarget) -> Result<Vec<Found>, TargetError> {
        let records = target.records(S::KIND)?;
        Ok(records
            .into_iter()
            .map(|record| {
                let uses = S::of(record.settings).map(|s| s.uses()).unwrap_or_default();
                let mut found = Found::new(S::KIND, record.name);
                found.uses = uses;
                found
            })
            .collect())
    }
}

/// A record that exists is a ready resource with the settings it was applied with.
pub(crate) fn observed<D>(record: Option<Record<D>>) -> Observed {
    match record {
        Some(record) => Observed::present(record.name, record.settings, Lifecycle::Ready),
        None => Observed::Absent,
    }
}

/// Records `settings` for resource `name`: applying a resource that is (also) a record.
pub(crate) fn write(
    target: &LocalTarget,
    kind: Kind,
    name: &str,
    settings: impl Into<Settings>,
) -> Result<Applied, LocalError> {
    target
        .state
        .write(kind, &Record::new(name, settings, NoDetails {}))?;
    Ok(Applied::Ready(Outputs::None))
}

/// Removes the record, unless the endpoint serves it or may roll back to it.
fn delete(target: &LocalTarget, kind: Kind, name: &str) -> Result<(), LocalError> {
    if endpoint::rollback_protected(target)?.protects(kind, name) {
        return Ok(());
    }
    target.state.remove(kind, name)
}

/// The model an endpoint config names, from its record.
pub(crate) fn model_of(target: &LocalTarget, config: &str) -> Result<Option<String>, LocalError> {
    Ok(config_settings(target, config)?.map(|config| config.model))
}

/// An endpoint config's settings, from its record.
pub(crate) fn config_settings(
    target: &LocalTarget,
    config: &str,
) -> Result<Option<EndpointConfigSettings>, LocalError> {
    Ok(target
        .state
        .read::<NoDetails>(Kind::EndpointConfig, config)?
        .and_then(|record| EndpointConfigSettings::of(record.settings)))
}
