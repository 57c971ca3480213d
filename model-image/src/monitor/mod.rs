//! `model-image monitor`: drift monitoring as a SageMaker processing container, by Model Monitor's
//! bring-your-own-container contract. It reads the endpoint's data capture ([`capture`]: requests
//! and responses as `serve` saw them, [`request`], [`response`]) for the monitoring window
//! ([`window`]), tallies it against the model's `baseline.json` ([`baseline_file`], [`tally`],
//! [`traffic`]), compares ([`comparison`]: PSI per feature and of the scores, missing rates, values
//! out of range, no verdict below a minimum of rows) and writes Model Monitor's `statistics.json`
//! ([`statistics`]) and `constraint_violations.json` ([`violations`]), plus our own
//! `drift_report.json` ([`report`]).
//!
//! Drift is a finding, not a failure: [`run`] succeeds whether or not constraints are violated
//! (Model Monitor reads the files; a failed job means the monitor broke). It fails only when the
//! baseline or the capture directory cannot be read, or the reports cannot be written.

pub mod baseline_file;
pub mod capture;
pub mod comparison;
pub mod report;
pub mod request;
pub mod response;
pub mod statistics;
pub mod tally;
pub mod traffic;
pub mod violations;
pub mod window;

use std::path::{Path, PathBuf};

use baseline_file::BaselineError;
use comparison::Thresholds;
use report::DriftReport;
use window::Window;

/// Model Monitor's variable for the capture directory (`--input`).
pub const DATASET_SOURCE_ENV: &str = "dataset_source";
/// Model Monitor's variable for the baseline statistics file (`--baseline`).
pub const BASELINE_STATISTICS_ENV: &str = "baseline_statistics";
/// Model Monitor's variable for the report directory (`--output`).
pub const OUTPUT_PATH_ENV: &str = "output_path";
/// Model Monitor's variables for the monitoring window (`--start-time`, `--end-time`).
pub const START_TIME_ENV: &str = "start_time";
pub const END_TIME_ENV: &str = "end_time";
/// Ours, set in the monitoring job's `Environment` (`--drift-threshold`, `--min-rows`).
pub const DRIFT_THRESHOLD_ENV: &str = "drift_threshold";
pub const MIN_ROWS_ENV: &str = "min_rows";

/// One monitoring run.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorConfig {
    /// The capture directory, read recursively.
    pub input: PathBuf,
    /// `baseline.json`, a model archive holding it, or a directory holding either.
    pub baseline: PathBuf,
    /// Where the reports go (created if missing).
    pub output: PathBuf,
    pub thresholds: Thresholds,
    pub window: Window,
}

/// Why a monitoring run could not be done.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(transparent)]
    Baseline(#[from] BaselineError),
    #[error("cannot read the captured data in {path}")]
    Input {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Output {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads the baseline and the window's captures, compares them, writes `statistics.json`,
/// `constraint_violations.json` and `drift_report.json` into `config.output`, and returns the report.
pub fn run(config: &MonitorConfig) -> Result<DriftReport, MonitorError> {
    let baseline = baseline_file::load(&config.baseline)?;
    tracing::info!(
        baseline = %config.baseline.display(),
        features = baseline.features.len(),
        input = %config.input.display(),
        "reading captured traffic"
    );
    let traffic = traffic::read(&config.input, &baseline, &config.window)
        .map_err(|(path, source)| MonitorError::Input { path, source })?;
    let comparison = comparison::compare(&baseline, &traffic, &config.thresholds);
    let report = DriftReport::new(
        &comparison,
        config.window,
        traffic.counts.clone(),
        traffic.problems.clone(),
    );
    std::fs::create_dir_all(&config.output).map_err(|source| MonitorError::Output {
        path: config.output.clone(),
        source,
    })?;
    write_json(
        &config.output,
        statistics::FILE_NAME,
        &statistics::of(&baseline, &traffic),
    )?;
    write_json(
        &config.output,
        violations::FILE_NAME,
        &violations::of(&comparison),
    )?;
    write_json(&config.output, report::FILE_NAME, &report)?;
    Ok(report)
}

fn write_json(dir: &Path, name: &str, value: &impl serde::Serialize) -> Result<(), MonitorError> {
    let path = dir.join(name);
    let mut json = serde_json::to_vec_pretty(value).expect("the reports serialise");
    json.push(b'\n');
    std::fs::write(&path, json).map_err(|source| MonitorError::Output { path, source })
}
