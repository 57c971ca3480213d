//! The data bucket: a folder in the state (`buckets/<name>/`) that holds the uploaded training data
//! under the same keys as on S3 (`data/<sha12>/<channel>/…`), plus a record of its settings (its
//! tags). A bucket whose folder was deleted is absent, whatever its record says.

use engine::resource::{Desired, Kind, Observed};
use engine::target::Applied;

use crate::state::NoDetails;
use crate::{LocalError, LocalTarget, record};

/// The bucket's folder.
pub(crate) fn folder(target: &LocalTarget, name: &str) -> std::path::PathBuf {
    target.state.resource_dir(Kind::Bucket, name)
}

pub(crate) fn observe(target: &LocalTarget, desired: &Desired) -> Result<Observed, LocalError> {
    if !folder(target, &desired.name).is_dir() {
        return Ok(Observed::Absent);
    }
    Ok(record::observed(
        target.state.read::<NoDetails>(Kind::Bucket, &desired.name)?,
    ))
}

pub(crate) fn apply(target: &LocalTarget, desired: &Desired) -> Result<Applied, LocalError> {
    let path = folder(target, &desired.name);
    std::fs::create_dir_all(&path).map_err(|source| LocalError::Io {
        kind: Kind::Bucket,
        name: desired.name.clone(),
        action: "create",
        path,
        source,
    })?;
    record::apply(target, desired)
}

/// Deletes the folder with everything in it (on AWS: emptied, all versions, then deleted).
pub(crate) fn delete(target: &LocalTarget, name: &str) -> Result<(), LocalError> {
    let path = folder(target, name);
    crate::remove_dir_all(Kind::Bucket, name, &path)?;
    target.state.remove(Kind::Bucket, name)
}
