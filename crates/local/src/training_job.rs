//! Training jobs: the real `model-image train` on the SageMaker layout, one folder per attempt.
//!
//! An attempt `<job>-<n>` lives in `training-jobs/<job>-<n>/`: `opt_ml/` (hyperparameters,
//! channels hard-linked from the bucket, model, outputs, failure), `train.log` (stdout and stderr)
//! and `exit_code`, written when the process ends. The process is started detached (see
//! [`process`](crate::process)), so an interrupted `up` leaves it running and the next `up` finds it
//! in progress and waits for it again. Like on SageMaker a failed attempt stays and the next one gets
//! the next number; a completed one is reused.
//!
//! The job is started from its typed settings alone: `hyperparameters.json` is the map the engine
//! computed, the binary is the one imaged for `image`, and the channels are the desired training
//! data, linked from their uploads.
//!
//! State of the latest attempt: no `exit_code` yet and its process alive -> in progress;
//! `exit_code` 0 with `model/model.json` -> ready, with the attempt and its `opt_ml/model` folder as
//! the job's outputs (the model packs that folder, the quality gate reads its `metrics.json`); a
//! non-zero exit -> failed with the first line of `output/failure` (or the exit code); no process
//! and no exit code -> failed, "interrupted".

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use engine::kind::TrainingJobSettings;
use engine::names::{attempt_name, attempt_of};
use engine::resource::{Change, Kind, Lifecycle, Observed, Outputs, TrainingJobOutputs};
use engine::target::{Applied, Deleted, Found, KindOnTarget, TargetError, Upstream};
use engine::training_output::{METRICS_FILE, MetricValues};
use serde::{Deserialize, Serialize};

use crate::error::target_error;
use crate::process::{self, Spawned};
use crate::state::Record;
use crate::{LocalError, LocalTarget, image, io_error, remove_dir_all, training_data};

const KIND: Kind = Kind::TrainingJob;
const LOG: &str = "train.log";
const EXIT_CODE: &str = "exit_code";
/// How long a stopped training process gets to exit before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Training jobs on the local target: observed and applied by base name (the latest attempt),
/// discovered and deleted by attempt name.
#[derive(Debug)]
pub struct LocalTrainingJob;

impl KindOnTarget<LocalTarget> for LocalTrainingJob {
    type Settings = TrainingJobSettings;

    async fn observe(
        target: &LocalTarget,
        name: &str,
        _: &TrainingJobSettings,
    ) -> Result<Observed, TargetError> {
        observe(target, name).map_err(|e| target_error("observe", KIND, name, e))
    }

    async fn apply(
        target: &LocalTarget,
        name: &str,
        settings: &TrainingJobSettings,
        change: &Change,
        upstream: Upstream<'_>,
    ) -> Result<Applied, TargetError> {
        apply(target, name, settings, upstream).map_err(|e| target_error(change.verb(), KIND, name, e))
    }

    async fn delete(target: &LocalTarget, name: &str) -> Result<Deleted, TargetError> {
        delete(target, name)
            .await
            .map(|()| Deleted::Gone)
            .map_err(|e| target_error("delete", KIND, name, e))
    }

    /// Every attempt, by its attempt name.
    async fn owned(target: &LocalTarget) -> Result<Vec<Found>, TargetError> {
        target.found(KIND)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JobDetails {
    pub attempt: u32,
    /// The attempt's folder.
    pub folder: PathBuf,
    /// The running `sh` that waits for `model-image train` (0 until started).
    pub pid: i32,
    pub pgid: i32,
}

/// The attempt folder's `opt_ml`.
fn opt_ml(folder: &Path) -> PathBuf {
    folder.join("opt_ml")
}

/// The latest attempt of job `base`.
pub(crate) fn latest(target: &LocalTarget, base: &str) -> Result<Option<Record<JobDetails>>, LocalError> {
    Ok(target
        .state
        .list::<JobDetails>(KIND)?
        .into_iter()
        .filter_map(|r| attempt_of(base, &r.name).map(|n| (n, r)))
        .max_by_key(|(n, _)| *n)
        .map(|(_, r)| r))
}

/// Where the attempt stands (see the module docs).
pub(crate) fn lifecycle(target: &LocalTarget, record: &Record<JobDetails>) -> Lifecycle {
    let details = &record.details;
    let exit_code = || fs::read_to_string(details.folder.join(EXIT_CODE)).map(|t| t.trim().parse::<i32>());
    // The exit code is written last, so once it is there the attempt has ended whatever the pid
    // says (the shell may still be on its way out).
    let mut ended = exit_code();
    if ended.is_err() && details.pid > 0 && process::alive(details.pid, target.state.root()) {
        return Lifecycle::InProgress("Training".into());
    }
    if ended.is_err() {
        // It may have written the code between the two reads.
        ended = exit_code();
    }
    let opt_ml = opt_ml(&details.folder);
    let failure = || {
        fs::read_to_string(opt_ml.join("output/failure"))
            .ok()
            .and_then(|text| {
                text.lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .map(str::to_string)
            })
    };
    match ended {
        Ok(Ok(0)) if opt_ml.join("model/model.json").is_file() => Lifecycle::Ready,
        Ok(Ok(0)) => Lifecycle::Failed("exited 0 but wrote no model/model.json".into()),
        Ok(Ok(code)) => Lifecycle::Failed(
            failure().unwrap_or_else(|| format!("model-image train exited with code {code}")),
        ),
        _ => Lifecycle::Failed(failure().unwrap_or_else(|| {
            format!(
                "interrupted: process {} ended without an exit code (see {})",
                details.pid,
                details.folder.join(LOG).display()
            )
        })),
    }
}

fn observe(target: &LocalTarget, base: &str) -> Result<Observed, LocalError> {
    let Some(record) = latest(target, base)? else {
        return Ok(Observed::Absent);
    };
    let lifecycle = lifecycle(target, &record);
    let outputs = match lifecycle {
        Lifecycle::Ready => Outputs::TrainingJob(TrainingJobOutputs {
            attempt: record.name.clone(),
            model_artifact: model_dir(&record.details.folder).to_string_lossy().into_owned(),
        }),
        _ => Outputs::None,
    };
    Ok(Observed::present(record.name, record.settings, lifecycle).with_outputs(outputs))
}

/// The attempt folder's model folder, `opt_ml/model`: the job's model artifact.
fn model_dir(folder: &Path) -> PathBuf {
    opt_ml(folder).join("model")
}

/// Starts the next attempt of job `base` and returns at once: the executor polls `observe`.
fn apply(
    target: &LocalTarget,
    base: &str,
    settings: &TrainingJobSettings,
    upstream: Upstream<'_>,
) -> Result<Applied, LocalError> {
    let attempt = latest(target, base)?.map_or(1, |r| r.details.attempt + 1);
    let name = attempt_name(base, attempt);
    let folder = target.state.resource_dir(KIND, &name);
    remove_dir_all(KIND, &name, &folder)?;
    let opt_ml = opt_ml(&folder);
    for dir in ["input/config", "input/data", "model", "output/data"] {
        let dir = opt_ml.join(dir);
        fs::create_dir_all(&dir).map_err(io_error(KIND, &name, "create", &dir))?;
    }
    let hyperparameters = opt_ml.join("input/config/hyperparameters.json");
    let json = serde_json::to_vec_pretty(&settings.hyperparameters).map_err(std::io::Error::other);
    json.and_then(|json| fs::write(&hyperparameters, json))
        .map_err(io_error(KIND, &name, "write", &hyperparameters))?;
    for (data, channel) in upstream.state.training_data() {
        training_data::link_into(target, data, channel.channel, &opt_ml.join("input/data"))?;
    }
    let binary = image::binary_for(target, &settings.image);
    if !binary.is_file() {
        return Err(LocalError::Missing {
            kind: KIND,
            name,
            what: format!("image `{}`", settings.image),
        });
    }
    // Recorded before starting: a run killed right here leaves an attempt that reads "interrupted".
    let mut record = Record::new(
        &name,
        settings.clone(),
        JobDetails {
            attempt,
            folder: folder.clone(),
            pid: 0,
            pgid: 0,
        },
    );
    target.state.write(KIND, &record)?;
    let (log, exit_code) = (folder.join(LOG), folder.join(EXIT_CODE));
    let spawned = process::spawn_detached(
        // The trailing `:` keeps the subshell a shell to its end: as the last command `mv` would
        // replace it (`exec`), and a process read in mid-exec looks like it is not ours, which
        // made a running attempt briefly read as ended.
        r#"( "$1" train; echo $? >"$3.tmp"; mv "$3.tmp" "$3"; : ) >"$2" 2>&1"#,
        &[binary.as_os_str(), log.as_os_str(), exit_code.as_os_str()],
        &[("OPT_ML", opt_ml.as_os_str()), ("NO_COLOR", "1".as_ref())],
        &folder,
    )
    .map_err(|source| LocalError::Spawn {
        kind: KIND,
        name: name.clone(),
        binary: binary.clone(),
        source,
    })?
    .map_err(|output| LocalError::NoPid {
        kind: KIND,
        name: name.clone(),
        output,
    })?;
    record.details.pid = spawned.pid;
    record.details.pgid = spawned.pgid;
    target.state.write(KIND, &record)?;
    Ok(Applied::Pending)
}

/// Stops a running attempt and removes it: locally `down` leaves nothing behind.
async fn delete(target: &LocalTarget, name: &str) -> Result<(), LocalError> {
    if let Some(record) = target.state.read::<JobDetails>(KIND, name)? {
        let details = &record.details;
        if details.pid > 0 {
            // A bounded kill, not a wait for the resource: SIGTERM, at most STOP_GRACE for the
            // process to exit, then SIGKILL (see `process::stop`); it is gone when this returns.
            let spawned = Spawned {
                pid: details.pid,
                pgid: details.pgid,
            };
            if !process::stop(spawned, target.state.root(), STOP_GRACE).await {
                return Err(LocalError::Unkillable {
                    kind: KIND,
                    name: name.to_string(),
                    pid: details.pid,
                    waited: STOP_GRACE,
                });
            }
        }
        target.logs.forget(&details.folder.join(LOG));
        remove_dir_all(KIND, name, &details.folder)?;
    }
    target.state.remove(KIND, name)
}

/// Lines the latest attempt of job `base` logged since the last call.
pub(crate) fn new_log_lines(target: &LocalTarget, base: &str) -> Vec<String> {
    match latest(target, base) {
        Ok(Some(record)) => target.logs.new_lines(&record.details.folder.join(LOG)),
        _ => Vec::new(),
    }
}

/// The validation metrics a completed attempt wrote to `metrics.json` in its model artifact (the
/// attempt's `opt_ml/model`): every `validation.<metric>.value`.
pub(crate) fn metrics(job: &TrainingJobOutputs) -> Result<MetricValues, LocalError> {
    let path = Path::new(&job.model_artifact).join(METRICS_FILE);
    let text = fs::read_to_string(&path).map_err(|source| LocalError::Metrics {
        name: job.attempt.clone(),
        path: path.clone(),
        source,
    })?;
    let bad = |reason: String| LocalError::BadMetrics {
        name: job.attempt.clone(),
        path: path.clone(),
        reason,
    };
    engine::training_output::validation_metrics(&text).map_err(bad)
}

/// Where a completed attempt left what `up`'s summary points at.
pub(crate) struct AttemptFiles {
    pub metrics: PathBuf,
    pub report: PathBuf,
    /// The whole training log (`up` folds its metric lines).
    pub log: PathBuf,
}

/// The latest completed attempt's metrics and report (`output/data/`) and its log.
pub(crate) fn outputs(target: &LocalTarget, base: &str) -> Option<AttemptFiles> {
    let record = latest(target, base).ok()??;
    let output = opt_ml(&record.details.folder).join("output/data");
    let files = AttemptFiles {
        metrics: output.join("metrics.json"),
        report: output.join("report.html"),
        log: record.details.folder.join(LOG),
    };
    files.metrics.is_file().then_some(files)
}
