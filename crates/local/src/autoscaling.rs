//! Endpoint autoscaling. Locally nothing scales: one `model-image serve` process serves the
//! endpoint whatever the policy says. The policy (min, max, invocations per instance) is recorded so
//! that `status` shows it in sync and a changed policy is applied (recorded) like on AWS.

use engine::resource::{Desired, Kind, Observed};
use engine::target::Applied;

use crate::state::NoDetails;
use crate::{LocalError, LocalTarget, apply_record, observed_record};

pub(crate) fn observe(target: &LocalTarget, desired: &Desired) -> Result<Observed, LocalError> {
    Ok(observed_record(
        target.state.read::<NoDetails>(Kind::Autoscaling, &desired.name)?,
    ))
}

pub(crate) fn apply(target: &LocalTarget, desired: &Desired) -> Result<Applied, LocalError> {
    apply_record(target, desired)
}

pub(crate) fn delete(target: &LocalTarget, name: &str) -> Result<(), LocalError> {
    target.state.remove(Kind::Autoscaling, name)
}
