//! The data bucket: a folder in the state (`buckets/<name>/`) that holds the uploaded training data
//! under the same keys as on S3 (`data/<sha12>/<channel>/…`), plus a record of its settings (its
//! tags). A bucket whose folder was deleted is absent, whatever its record says.

use engine::kind::BucketSettings;
use engine::resource::{Change, Kind, Observed};
use engine::target::{Applied, Deleted, Found, KindOnTarget, TargetError, Upstream};

use crate::error::target_error;
use crate::state::NoDetails;
use crate::{LocalError, LocalTarget, record};

const KIND: Kind = Kind::Bucket;

/// The bucket on the local target.
#[derive(Debug)]
pub struct LocalBucket;

impl KindOnTarget<LocalTarget> for LocalBucket {
    type Settings = BucketSettings;

    async fn observe(target: &LocalTarget, name: &str, _: &BucketSettings) -> Result<Observed, TargetError> {
        observe(target, name).map_err(|e| target_error("observe", KIND, name, e))
    }

    async fn apply(
        target: &LocalTarget,
        name: &str,
        settings: &BucketSettings,
        change: &Change,
        _: Upstream<'_>,
    ) -> Result<Applied, TargetError> {
        apply(target, name, settings).map_err(|e| target_error(change.verb(), KIND, name, e))
    }

    async fn delete(target: &LocalTarget, name: &str) -> Result<Deleted, TargetError> {
        delete(target, name)
            .map(|()| Deleted::Gone)
            .map_err(|e| target_error("delete", KIND, name, e))
    }

    async fn owned(target: &LocalTarget) -> Result<Vec<Found>, TargetError> {
        target.found(KIND)
    }
}

/// The bucket's folder.
pub(crate) fn folder(target: &LocalTarget, name: &str) -> std::path::PathBuf {
    target.state.resource_dir(KIND, name)
}

fn observe(target: &LocalTarget, name: &str) -> Result<Observed, LocalError> {
    if !folder(target, name).is_dir() {
        return Ok(Observed::Absent);
    }
    Ok(record::observed(target.state.read::<NoDetails>(KIND, name)?))
}

fn apply(target: &LocalTarget, name: &str, settings: &BucketSettings) -> Result<Applied, LocalError> {
    let path = folder(target, name);
    std::fs::create_dir_all(&path).map_err(|source| LocalError::Io {
        kind: KIND,
        name: name.to_string(),
        action: "create",
        path,
        source,
    })?;
    record::write(target, KIND, name, settings.clone())
}

/// Deletes the folder with everything in it (on AWS: emptied, all versions, then deleted).
fn delete(target: &LocalTarget, name: &str) -> Result<(), LocalError> {
    let path = folder(target, name);
    crate::remove_dir_all(KIND, name, &path)?;
    target.state.remove(KIND, name)
}
