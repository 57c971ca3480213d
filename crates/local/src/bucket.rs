//! The data bucket: a folder in the state (`buckets/<name>/`) that holds the uploaded training data
//! under the same keys as on S3 (`data/<sha12>/<channel>/…`), plus a record of its settings (its
//! tags). A bucket whose folder was deleted is absent, whatever its record says. The folder is the
//! one its name gives, checked to resolve inside the state's `buckets/` before anything is created
//! or deleted there.

use engine::kind::BucketSettings;
use engine::resource::{Change, Kind, Observed};
use engine::target::{Applied, Deleted, Found, KindOnTarget, TargetError, Upstream};

use crate::contained::ContainedPath;
use crate::error::target_error;
use crate::state::{NoDetails, create_private_dir};
use crate::{LocalError, LocalTarget, io_error, record};

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

/// The bucket's folder, checked to be in the state's `buckets/`.
pub(crate) fn folder(target: &LocalTarget, name: &str) -> Result<ContainedPath, LocalError> {
    target.state.resource(KIND, name)
}

fn observe(target: &LocalTarget, name: &str) -> Result<Observed, LocalError> {
    if !folder(target, name)?.is_dir() {
        return Ok(Observed::Absent);
    }
    Ok(record::observed(target.state.read::<NoDetails>(KIND, name)?))
}

fn apply(target: &LocalTarget, name: &str, settings: &BucketSettings) -> Result<Applied, LocalError> {
    let path = folder(target, name)?;
    create_private_dir(&path).map_err(io_error(KIND, name, "create", &path))?;
    record::write(target, KIND, name, settings.clone())
}

/// Deletes the folder with everything in it (on AWS: emptied, all versions, then deleted).
fn delete(target: &LocalTarget, name: &str) -> Result<(), LocalError> {
    crate::remove_dir_all(KIND, name, &folder(target, name)?)?;
    target.state.remove(KIND, name)
}
