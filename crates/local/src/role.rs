//! The execution role. Locally nothing assumes it: it is a record of the name and tags, so `status`
//! and `down` treat it exactly as on AWS.

use engine::resource::{Desired, Kind, Observed};
use engine::target::Applied;

use crate::state::NoDetails;
use crate::{LocalError, LocalTarget, apply_record, observed_record};

pub(crate) fn observe(target: &LocalTarget, desired: &Desired) -> Result<Observed, LocalError> {
    Ok(observed_record(
        target.state.read::<NoDetails>(Kind::Role, &desired.name)?,
    ))
}

pub(crate) fn apply(target: &LocalTarget, desired: &Desired) -> Result<Applied, LocalError> {
    apply_record(target, desired)
}

pub(crate) fn delete(target: &LocalTarget, name: &str) -> Result<(), LocalError> {
    target.state.remove(Kind::Role, name)
}
