//! The image repository. Locally the images live in the state's `images/` folder, one folder per
//! digest; the repository is a record of its name and tags.

use engine::resource::{Desired, Kind, Observed};
use engine::target::Applied;

use crate::state::NoDetails;
use crate::{LocalError, LocalTarget, apply_record, observed_record};

pub(crate) fn observe(target: &LocalTarget, desired: &Desired) -> Result<Observed, LocalError> {
    Ok(observed_record(
        target.state.read::<NoDetails>(Kind::Repository, &desired.name)?,
    ))
}

pub(crate) fn apply(target: &LocalTarget, desired: &Desired) -> Result<Applied, LocalError> {
    apply_record(target, desired)
}

pub(crate) fn delete(target: &LocalTarget, name: &str) -> Result<(), LocalError> {
    target.state.remove(Kind::Repository, name)
}
