//! Models: the completed training job's model artifact (the attempt's `opt_ml/model/`, handed over
//! as the job's outputs) packed into `models/<name>/model.tar.gz` (tar + gzip, files at the archive's
//! root, as SageMaker uploads it) and extracted beside it into `model/`, the folder the endpoint
//! serves from. A model whose folder, archive or extracted copy is gone is absent and `up` makes it
//! again from its training job.
//!
//! The model of a config kept for rollback is never deleted while the endpoint records that config
//! (see [`record`](crate::record)). The artifact it packs must be in the state's `training-jobs/`,
//! and its own folder in `models/`, both checked before anything is read, written or removed.

use std::fs;
use std::path::{Path, PathBuf};

use engine::Settings;
use engine::kind::ModelSettings;
use engine::names::attempt_of;
use engine::resource::{Change, Kind, Observed, Outputs};
use engine::target::{Applied, Deleted, Found, KindOnTarget, TargetError, Upstream};
use engine::values::ImageRef;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use crate::contained::{ContainedPath, RecordedPath};
use crate::error::target_error;
use crate::state::{Record, collect_files, create_private_dir, remove_symlink};
use crate::{LocalError, LocalTarget, endpoint, image, io_error, record, remove_dir_all};

const KIND: Kind = Kind::Model;
const ARCHIVE: &str = "model.tar.gz";
const EXTRACTED: &str = "model";

/// Models on the local target.
#[derive(Debug)]
pub struct LocalModel;

impl KindOnTarget<LocalTarget> for LocalModel {
    type Settings = ModelSettings;

    async fn observe(target: &LocalTarget, name: &str, _: &ModelSettings) -> Result<Observed, TargetError> {
        observe(target, name).map_err(|e| target_error("observe", KIND, name, e))
    }

    async fn apply(
        target: &LocalTarget,
        name: &str,
        settings: &ModelSettings,
        change: &Change,
        upstream: Upstream<'_>,
    ) -> Result<Applied, TargetError> {
        apply(target, name, settings, upstream).map_err(|e| target_error(change.verb(), KIND, name, e))
    }

    async fn delete(target: &LocalTarget, name: &str) -> Result<Deleted, TargetError> {
        delete(target, name)
            .map(|()| Deleted::Gone)
            .map_err(|e| target_error("delete", KIND, name, e))
    }

    /// Every model, each using its image (by the image's name, its digest): what must stay with
    /// it for a rollback.
    async fn owned(target: &LocalTarget) -> Result<Vec<Found>, TargetError> {
        let records = target.records(KIND)?;
        Ok(records
            .into_iter()
            .map(|record| {
                let found = Found::new(KIND, record.name);
                match record.settings {
                    Settings::Model(model) => {
                        let image = image::resource(&model.image);
                        found.using(image.kind, image.name)
                    }
                    _ => found,
                }
            })
            .collect())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ModelDetails {
    /// The training job attempt the model came from.
    pub training_job: String,
    pub folder: RecordedPath,
}

/// The folder an endpoint serves model `name` from, checked.
pub(crate) fn serving_dir(target: &LocalTarget, name: &str) -> Result<ContainedPath, LocalError> {
    let path = target.state.resource_dir(KIND, name).join(EXTRACTED);
    target.state.within(KIND, name, KIND, &path)
}

/// The image a model runs, from its record.
pub(crate) fn image_of(target: &LocalTarget, name: &str) -> Result<Option<ImageRef>, LocalError> {
    Ok(target
        .state
        .read::<ModelDetails>(KIND, name)?
        .and_then(|record| match record.settings {
            Settings::Model(model) => Some(model.image),
            _ => None,
        }))
}

fn observe(target: &LocalTarget, name: &str) -> Result<Observed, LocalError> {
    let Some(record) = target.state.read::<ModelDetails>(KIND, name)? else {
        return Ok(Observed::Absent);
    };
    let folder = target.state.recorded(KIND, name, KIND, &record.details.folder)?;
    if !folder.join(ARCHIVE).is_file() || !folder.join(EXTRACTED).is_dir() {
        return Ok(Observed::Absent);
    }
    Ok(record::observed(Some(record)))
}

/// Packs the training job's model artifact, which the job handed over as its outputs.
fn apply(
    target: &LocalTarget,
    name: &str,
    settings: &ModelSettings,
    upstream: Upstream<'_>,
) -> Result<Applied, LocalError> {
    let base = settings.training_job.as_str();
    let job = upstream
        .training_job()
        .filter(|job| attempt_of(base, &job.attempt).is_some())
        .ok_or_else(|| LocalError::NoTrainedAttempt {
            name: name.to_string(),
            job: base.to_string(),
        })?;
    let artifact = Path::new(&job.model_artifact);
    let source = target.state.within(KIND, name, Kind::TrainingJob, artifact)?;
    let folder = target.state.resource(KIND, name)?;
    create_private_dir(&folder).map_err(io_error(KIND, name, "create", &folder))?;

    let archive = folder.join(ARCHIVE);
    let staging = folder.join(format!(".{ARCHIVE}.partial"));
    remove_symlink(&staging).map_err(io_error(KIND, name, "remove", &staging))?;
    pack(&source, &staging).map_err(io_error(KIND, name, "pack", &source))?;
    fs::rename(&staging, &archive).map_err(io_error(KIND, name, "store", &archive))?;

    let within = |path: PathBuf| target.state.within(KIND, name, KIND, &path);
    let extracted = within(folder.join(EXTRACTED))?;
    let staging = within(folder.join(format!(".{EXTRACTED}.partial")))?;
    remove_dir_all(KIND, name, &staging)?;
    unpack(&archive, &staging).map_err(io_error(KIND, name, "extract", &archive))?;
    remove_dir_all(KIND, name, &extracted)?;
    fs::rename(&staging, &extracted).map_err(io_error(KIND, name, "store", &extracted))?;

    let details = ModelDetails {
        training_job: job.attempt.clone(),
        folder: RecordedPath::from(&folder),
    };
    target
        .state
        .write(KIND, &Record::new(name, settings.clone(), details))?;
    Ok(Applied::Ready(Outputs::None))
}

fn delete(target: &LocalTarget, name: &str) -> Result<(), LocalError> {
    if endpoint::rollback_protected(target)?.protects(KIND, name) {
        return Ok(());
    }
    remove_dir_all(KIND, name, &target.state.resource(KIND, name)?)?;
    target.state.remove(KIND, name)
}

/// `tar czf archive -C source .`, entries sorted, paths relative to `source`.
fn pack(source: &Path, archive: &Path) -> std::io::Result<()> {
    let mut files = Vec::new();
    collect_files(source, &mut files)?;
    files.sort();
    let file = fs::File::create(archive)?;
    let mut builder = tar::Builder::new(GzEncoder::new(file, Compression::default()));
    builder.follow_symlinks(true);
    for path in &files {
        let relative = path.strip_prefix(source).map_err(std::io::Error::other)?;
        builder.append_path_with_name(path, relative)?;
    }
    builder.into_inner()?.finish()?.sync_all()
}

/// Extracts a `.tar.gz` into `dest` (the tar crate refuses paths that leave `dest`).
fn unpack(archive: &Path, dest: &Path) -> std::io::Result<()> {
    create_private_dir(dest)?;
    tar::Archive::new(GzDecoder::new(fs::File::open(archive)?)).unpack(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_and_unpack_round_trip_with_files_at_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("model");
        fs::create_dir_all(source.join("extra")).unwrap();
        fs::write(source.join("model.txt"), "tree").unwrap();
        fs::write(source.join("model.json"), "{}").unwrap();
        fs::write(source.join("extra/notes"), "n").unwrap();
        let archive = dir.path().join("model.tar.gz");
        pack(&source, &archive).unwrap();
        let names: Vec<String> = tar::Archive::new(GzDecoder::new(fs::File::open(&archive).unwrap()))
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["extra/notes", "model.json", "model.txt"]);
        let out = dir.path().join("out");
        unpack(&archive, &out).unwrap();
        assert_eq!(fs::read_to_string(out.join("model.txt")).unwrap(), "tree");
        assert_eq!(fs::read_to_string(out.join("extra/notes")).unwrap(), "n");
    }
}
