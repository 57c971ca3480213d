//! The kinds that are only a record locally, handled by one implementation: the execution role
//! (nothing assumes it), the image repository (the images live in `images/`, one folder per
//! digest), endpoint configs (immutable and content-named, as on SageMaker; the endpoint reads its
//! config's record to find the model to serve) and the autoscaling policy (nothing scales locally:
//! one `model-image serve` process serves whatever the policy says). Each record keeps the name and
//! the settings it was applied with, so `status` and `down` treat the resource exactly as on AWS,
//! and a changed policy or tag set is applied (recorded) like there.
//!
//! The config the endpoint runs and the one it ran before (kept for `orchestrate rollback`), and
//! their models and images, are never deleted while the endpoint records them: [`delete`] here and
//! the model and image modules ask [`endpoint::rollback_protected`]. The engine's plan already keeps
//! them; the guard keeps the target safe on its own (a plan made before an endpoint update, a
//! hand-run delete). `down` deletes the endpoint first, so nothing is protected there.

use engine::Settings;
use engine::resource::{Desired, Kind, Lifecycle, Observed, Outputs};
use engine::target::Applied;

use crate::state::{NoDetails, Record};
use crate::{LocalError, LocalTarget, endpoint};

/// A record that exists is a ready resource with the settings it was applied with.
pub(crate) fn observed<D>(record: Option<Record<D>>) -> Observed {
    match record {
        Some(record) => Observed::present(record.name, record.settings, Lifecycle::Ready),
        None => Observed::Absent,
    }
}

pub(crate) fn observe(target: &LocalTarget, desired: &Desired) -> Result<Observed, LocalError> {
    Ok(observed(
        target.state.read::<NoDetails>(desired.kind(), &desired.name)?,
    ))
}

/// Records the desired settings: applying a resource that is only a record.
pub(crate) fn apply(target: &LocalTarget, desired: &Desired) -> Result<Applied, LocalError> {
    target.state.write(
        desired.kind(),
        &Record::new(&desired.name, desired.settings.clone(), NoDetails {}),
    )?;
    Ok(Applied::Ready(Outputs::None))
}

/// Removes the record, unless the endpoint serves it or may roll back to it.
pub(crate) fn delete(target: &LocalTarget, kind: Kind, name: &str) -> Result<(), LocalError> {
    if endpoint::rollback_protected(target)?.protects(kind, name) {
        return Ok(());
    }
    target.state.remove(kind, name)
}

/// The model an endpoint config names, from its record.
pub(crate) fn model_of(target: &LocalTarget, config: &str) -> Result<Option<String>, LocalError> {
    Ok(target
        .state
        .read::<NoDetails>(Kind::EndpointConfig, config)?
        .and_then(|record| match record.settings {
            Settings::EndpointConfig(config) => Some(config.model),
            _ => None,
        }))
}
