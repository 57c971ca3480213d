//! Endpoint configs: records of the model and variant an endpoint runs. Like on SageMaker they are
//! immutable and content-named; the endpoint reads its config's record to find the model to serve.
//!
//! The config the endpoint runs and the one it ran before (kept for `orchestrate rollback`), and
//! their models, are never deleted while the endpoint records them. The engine's plan already keeps
//! them; the guard keeps the target safe on its own (a plan made before an endpoint update, a
//! hand-run delete). `down` deletes the endpoint first, so nothing is protected there.

use engine::resource::{Desired, Kind, Observed};
use engine::target::Applied;

use crate::state::NoDetails;
use crate::{LocalError, LocalTarget, apply_record, endpoint, observed_record};

pub(crate) fn observe(target: &LocalTarget, desired: &Desired) -> Result<Observed, LocalError> {
    Ok(observed_record(
        target
            .state
            .read::<NoDetails>(Kind::EndpointConfig, &desired.name)?,
    ))
}

pub(crate) fn apply(target: &LocalTarget, desired: &Desired) -> Result<Applied, LocalError> {
    apply_record(target, desired)
}

pub(crate) fn delete(target: &LocalTarget, name: &str) -> Result<(), LocalError> {
    if endpoint::rollback_protected(target)?
        .configs
        .iter()
        .any(|c| c == name)
    {
        return Ok(());
    }
    target.state.remove(Kind::EndpointConfig, name)
}

/// The model a config names, from its record.
pub(crate) fn model_of(target: &LocalTarget, config: &str) -> Result<Option<String>, LocalError> {
    Ok(target
        .state
        .read::<NoDetails>(Kind::EndpointConfig, config)?
        .and_then(|record| record.field("model").map(str::to_string)))
}
