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
//!
//! The attempt's process is the one [`process`](crate::process) verifies: marked with the attempt's
//! folder in its environment and, once recorded, started at the recorded time. The record is
//! written before the spawn (pid 0) and again with the pid after it; a run killed in between leaves
//! a running process the record does not name, which the marker still finds: the attempt reads as
//! in progress (so the next `up` waits for it instead of starting a duplicate) and `delete` stops
//! it. The attempt's folder is checked to resolve inside `training-jobs/` before anything is read,
//! started or removed there.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use engine::kind::TrainingJobSettings;
use engine::names::{attempt_name, attempt_of};
use engine::resource::{Change, Kind, Lifecycle, Observed, Outputs, TrainingJobOutputs};
use engine::target::{Applied, Deleted, Found, KindOnTarget, TargetError, Upstream};
use engine::training_output::{METRICS_FILE, MetricValues};
use serde::{Deserialize, Serialize};

use crate::contained::{ContainedPath, RecordedPath};
use crate::error::target_error;
use crate::process::{self, Spawned};
use crate::state::{Record, create_private_dir};
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
        apply(target, name, settings, upstream)
            .await
            .map_err(|e| target_error(change.verb(), KIND, name, e))
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
    pub folder: RecordedPath,
    /// The running `sh` that waits for `model-image train` (0 until started).
    pub pid: i32,
    pub pgid: i32,
    /// The process's start time (0 until started, and in records of earlier builds).
    #[serde(default)]
    pub start_time: u64,
}

impl JobDetails {
    fn spawned(&self) -> Spawned {
        Spawned {
            pid: self.pid,
            pgid: self.pgid,
            start_time: self.start_time,
        }
    }
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

/// The attempt's folder, as its record names it, checked.
fn folder_of(target: &LocalTarget, record: &Record<JobDetails>) -> Result<ContainedPath, LocalError> {
    target
        .state
        .recorded(KIND, &record.name, KIND, &record.details.folder)
}

/// Whether a process of attempt `name` runs: the recorded one, or (when a run was killed before
/// recording it) any process marked for the attempt.
fn running(target: &LocalTarget, name: &str, details: &JobDetails) -> bool {
    let marker = target.state.marker(KIND, name);
    process::alive(details.spawned(), &marker) || !process::find(&marker).is_empty()
}

/// Where the attempt stands (see the module docs).
fn lifecycle(target: &LocalTarget, record: &Record<JobDetails>, folder: &Path) -> Lifecycle {
    let details = &record.details;
    let exit_code = || fs::read_to_string(folder.join(EXIT_CODE)).map(|t| t.trim().parse::<i32>());
    // The exit code is written last, so once it is there the attempt has ended whatever the pid
    // says (the shell may still be on its way out).
    let mut ended = exit_code();
    if ended.is_err() && running(target, &record.name, details) {
        return Lifecycle::InProgress("Training".into());
    }
    if ended.is_err() {
        // It may have written the code between the two reads.
        ended = exit_code();
    }
    let opt_ml = opt_ml(folder);
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
        _ => Lifecycle::Failed(failure().unwrap_or_else(|| interrupted(details, folder))),
    }
}

/// Why an attempt with neither a running process nor an exit code failed.
fn interrupted(details: &JobDetails, folder: &Path) -> String {
    let log = folder.join(LOG);
    let log = log.display();
    match (details.pid, details.start_time) {
        (0, _) => format!("interrupted: its process ended without an exit code (see {log})"),
        // Recorded by an earlier build: it cannot be verified, so it is never stopped either.
        (pid, 0) => format!(
            "interrupted: process {pid} was recorded by an earlier orchestrate and cannot be verified; \
             stop it by hand if it still runs (see {log})"
        ),
        (pid, _) => format!("interrupted: process {pid} ended without an exit code (see {log})"),
    }
}

fn observe(target: &LocalTarget, base: &str) -> Result<Observed, LocalError> {
    let Some(record) = latest(target, base)? else {
        return Ok(Observed::Absent);
    };
    let folder = folder_of(target, &record)?;
    let lifecycle = lifecycle(target, &record, &folder);
    let outputs = match lifecycle {
        Lifecycle::Ready => Outputs::TrainingJob(TrainingJobOutputs {
            attempt: record.name.clone(),
            model_artifact: model_dir(&folder).to_string_lossy().into_owned(),
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
async fn apply(
    target: &LocalTarget,
    base: &str,
    settings: &TrainingJobSettings,
    upstream: Upstream<'_>,
) -> Result<Applied, LocalError> {
    let attempt = latest(target, base)?.map_or(1, |r| r.details.attempt + 1);
    let name = attempt_name(base, attempt);
    let folder = target.state.resource(KIND, &name)?;
    // No record names this attempt, so nothing should run for it; if something does (a record
    // removed by hand), it must not run beside the new start.
    stop_marked(target, &name).await?;
    remove_dir_all(KIND, &name, &folder)?;
    let opt_ml = opt_ml(&folder);
    for dir in ["input/config", "input/data", "model", "output/data"] {
        let dir = opt_ml.join(dir);
        create_private_dir(&dir).map_err(io_error(KIND, &name, "create", &dir))?;
    }
    let hyperparameters = opt_ml.join("input/config/hyperparameters.json");
    let json = serde_json::to_vec_pretty(&settings.hyperparameters).map_err(std::io::Error::other);
    json.and_then(|json| fs::write(&hyperparameters, json))
        .map_err(io_error(KIND, &name, "write", &hyperparameters))?;
    for (data, channel) in upstream.state.training_data() {
        training_data::link_into(target, data, channel.channel, &opt_ml.join("input/data"))?;
    }
    let binary = image::runnable(target, KIND, &name, &settings.image)?;
    // Recorded before starting: a run killed right here leaves an attempt whose process the
    // marker finds (see the module docs).
    let mut record = Record::new(
        &name,
        settings.clone(),
        JobDetails {
            attempt,
            folder: RecordedPath::from(&folder),
            pid: 0,
            pgid: 0,
            start_time: 0,
        },
    );
    target.state.write(KIND, &record)?;
    let (log, exit_code) = (folder.join(LOG), folder.join(EXIT_CODE));
    let spawned = process::spawn_detached(
        // The trailing `:` keeps the subshell a shell to its end: as the last command `mv` would
        // replace it (`exec`), and a process read in mid-exec looks like it is not ours, which
        // made a running attempt briefly read as ended.
        r#"( "$1" train; echo $? >"$3.tmp"; mv "$3.tmp" "$3"; : ) >"$2" 2>&1"#,
        &[binary.path().as_os_str(), log.as_os_str(), exit_code.as_os_str()],
        &[("OPT_ML", opt_ml.as_os_str()), ("NO_COLOR", "1".as_ref())],
        &folder,
        &target.state.marker(KIND, &name),
    )
    .map_err(|source| LocalError::Spawn {
        kind: KIND,
        name: name.clone(),
        binary: binary.path().to_path_buf(),
        source,
    })?
    .map_err(|output| LocalError::NoPid {
        kind: KIND,
        name: name.clone(),
        output,
    })?;
    record.details.pid = spawned.pid;
    record.details.pgid = spawned.pgid;
    record.details.start_time = spawned.start_time;
    target.state.write(KIND, &record)?;
    Ok(Applied::Pending)
}

/// Stops every process marked for attempt `name`: the recorded one and any the record does not
/// name. A bounded kill, not a wait for the resource: SIGTERM, at most STOP_GRACE for each to
/// exit, then SIGKILL (see `process::stop`); they are gone when this returns.
async fn stop_marked(target: &LocalTarget, name: &str) -> Result<(), LocalError> {
    for ours in process::find(&target.state.marker(KIND, name)) {
        if !process::stop(ours, STOP_GRACE).await {
            return Err(LocalError::Unkillable {
                kind: KIND,
                name: name.to_string(),
                pid: ours.pid(),
                waited: STOP_GRACE,
            });
        }
    }
    Ok(())
}

/// Stops a running attempt and removes it: locally `down` leaves nothing behind. The folder is
/// checked first: a record naming a folder elsewhere stops and removes nothing.
async fn delete(target: &LocalTarget, name: &str) -> Result<(), LocalError> {
    let record = target.state.read::<JobDetails>(KIND, name)?;
    let folder = record.as_ref().map(|r| folder_of(target, r)).transpose()?;
    stop_marked(target, name).await?;
    if let Some(folder) = folder {
        target.logs.forget(&folder.join(LOG));
        remove_dir_all(KIND, name, &folder)?;
    }
    target.state.remove(KIND, name)
}

/// Lines the latest attempt of job `base` logged since the last call.
pub(crate) fn new_log_lines(target: &LocalTarget, base: &str) -> Vec<String> {
    let folder = latest(target, base).and_then(|r| r.map(|r| folder_of(target, &r)).transpose());
    match folder {
        Ok(Some(folder)) => target.logs.new_lines(&folder.join(LOG)),
        _ => Vec::new(),
    }
}

/// The validation metrics a completed attempt wrote to `metrics.json` in its model artifact (the
/// attempt's `opt_ml/model`, checked to be in `training-jobs/`): every `validation.<metric>.value`.
pub(crate) fn metrics(target: &LocalTarget, job: &TrainingJobOutputs) -> Result<MetricValues, LocalError> {
    let artifact = Path::new(&job.model_artifact);
    let path = target
        .state
        .within(KIND, &job.attempt, KIND, artifact)?
        .join(METRICS_FILE);
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
    let folder = folder_of(target, &record).ok()?;
    let output = opt_ml(&folder).join("output/data");
    let files = AttemptFiles {
        metrics: output.join("metrics.json"),
        report: output.join("report.html"),
        log: folder.join(LOG),
    };
    files.metrics.is_file().then_some(files)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use engine::resource::Desired;
    use engine::target::Target;
    use engine::values::Digest;

    use super::*;

    /// The deployment's bucket and training data applied, and a stand-in `model-image` imaged as
    /// the desired image: `train` sleeps long enough to be found running.
    async fn ready_to_train(dir: &Path) -> (LocalTarget, engine::DesiredState, Desired) {
        let (target, state) = crate::tests::deployment(dir);
        let none = BTreeMap::new();
        let upstream = Upstream {
            state: &state,
            outputs: &none,
        };
        for kind in [Kind::Bucket, Kind::TrainingData] {
            let desired = state.get(kind).unwrap();
            target.apply(desired, &Change::Create, upstream).await.unwrap();
        }
        let job = state.get(KIND).unwrap().clone();
        let engine::Settings::TrainingJob(settings) = &job.settings else {
            panic!("a training job's settings")
        };
        let digest: &Digest = &settings.image.digest;
        crate::image::tests::install(&target, digest, b"#!/bin/sh\nexec sleep 30\n");
        (target, state, job)
    }

    /// Regression (the kill window between spawn and pid record): a run killed after starting
    /// the trainer but before recording its pid left an attempt the next run read as
    /// "interrupted", so it started a second trainer beside the first and `down` never stopped it.
    #[tokio::test]
    async fn a_trainer_whose_pid_was_never_recorded_is_found_and_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let (target, state, job) = ready_to_train(dir.path()).await;
        let none = BTreeMap::new();
        let upstream = Upstream {
            state: &state,
            outputs: &none,
        };
        let applied = target.apply(&job, &Change::Create, upstream).await.unwrap();
        assert_eq!(applied, Applied::Pending);
        let attempt = attempt_name(&job.name, 1);
        let mut record = target.state.read::<JobDetails>(KIND, &attempt).unwrap().unwrap();
        assert!(
            record.details.pid > 0 && record.details.start_time > 0,
            "{record:?}"
        );
        let marker = target.state.marker(KIND, &attempt);
        let running = process::find(&marker);
        assert!(
            running.iter().any(|p| p.pid() == record.details.pid),
            "the recorded trainer is marked: {running:?}"
        );

        // The record as the killed run left it: written before the spawn, never updated.
        record.details.pid = 0;
        record.details.pgid = 0;
        record.details.start_time = 0;
        target.state.write(KIND, &record).unwrap();

        let next = LocalTarget::open(&target.spec, Path::new("model-image")).unwrap();
        match next.observe(&job).await.unwrap() {
            Observed::Present { name, lifecycle, .. } => {
                assert_eq!(name, attempt);
                assert_eq!(lifecycle, Lifecycle::InProgress("Training".into()));
            }
            other => panic!("want the attempt in progress, got {other:?}"),
        }
        // So the plan waits for it rather than starting attempt 2.
        let observed = next.observe(&job).await.unwrap();
        assert_eq!(
            engine::resource::diff(&job, &observed),
            Change::Wait {
                state: "Training".into()
            }
        );

        let deleted = next.delete(&Found::new(KIND, &attempt)).await.unwrap();
        assert_eq!(deleted, Deleted::Gone);
        assert!(
            process::find(&marker).is_empty(),
            "every marked process was stopped"
        );
        for ours in running {
            let spawned = Spawned {
                pid: ours.pid(),
                pgid: 0,
                start_time: ours.start_time(),
            };
            assert!(!process::alive(spawned, &marker), "{ours:?} still runs");
        }
        assert_eq!(next.observe(&job).await.unwrap(), Observed::Absent);
    }
}
