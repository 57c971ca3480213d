//! The drift monitor on the local target: `model-image monitor` (the image's own binary, as the
//! processing job runs it on AWS) over the traffic the endpoint's server captured into the local
//! bucket folder (`capture/<endpoint>/`), judged against the `baseline.json` of the model the
//! endpoint serves. Each run writes its report files into `monitoring/<run>/` of the bucket folder,
//! where the AWS target's processing jobs write theirs in S3; run names carry the UTC time, so the
//! latest run is the greatest name.

use std::path::Path;

use contract::drift::{DriftSummary, FILE_NAME};
use engine::resource::Kind;
use engine::target::{MonitorRequest, MonitorRun};
use engine::values::CAPTURE_PREFIX;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::state::create_private_dir;
use crate::{LocalError, LocalTarget, bucket, bucket_name, endpoint, image, io_error, model, record};

const KIND: Kind = Kind::Endpoint;
/// Where the runs' report files go, under the bucket folder (as on S3).
pub const MONITORING_PREFIX: &str = "monitoring/";

/// Runs the monitor on the captured traffic of the last `request.window`.
pub(crate) async fn run(
    target: &LocalTarget,
    endpoint: &str,
    request: &MonitorRequest,
) -> Result<MonitorRun, LocalError> {
    let missing = |what: String| LocalError::Missing {
        kind: KIND,
        name: endpoint.to_string(),
        what,
    };
    let served = endpoint::served_config(target, endpoint)?;
    let config = record::config_settings(target, &served)?
        .ok_or_else(|| missing(format!("endpoint config `{served}`")))?;
    let model_dir = model::serving_dir(target, &config.model)?;
    let image = model::image_of(target, &config.model)?
        .filter(|_| model_dir.is_dir())
        .ok_or_else(|| missing(format!("model `{}`", config.model)))?;
    let binary = image::runnable(target, KIND, endpoint, &image)?;

    let bucket = bucket::folder(target, &bucket_name(&target.spec))?;
    let captured = bucket.join(CAPTURE_PREFIX).join(endpoint);
    let end = OffsetDateTime::now_utc();
    let start = end - request.window;
    let name = engine::names::monitor_run_name(endpoint, end);
    let output = bucket.join(MONITORING_PREFIX).join(&name);
    create_private_dir(&output).map_err(io_error(KIND, endpoint, "create", &output))?;
    if !captured.is_dir() {
        // Nothing captured yet: the monitor reports that as no verdict, like an empty window.
        create_private_dir(&captured).map_err(io_error(KIND, endpoint, "create", &captured))?;
    }
    let format = |t: OffsetDateTime| t.format(&Rfc3339).expect("a UTC time formats as RFC 3339");
    // The container's root (`/opt/ml`), where a failed run leaves its message.
    let opt_ml = tempfile::tempdir().map_err(io_error(KIND, endpoint, "create", &std::env::temp_dir()))?;
    let ran = tokio::process::Command::new(binary.path())
        .arg("monitor")
        .arg("--input")
        .arg(&captured)
        .arg("--baseline")
        .arg(&*model_dir)
        .arg("--output")
        .arg(&output)
        .arg("--drift-threshold")
        .arg(request.drift_threshold.to_string())
        .arg("--start-time")
        .arg(format(start))
        .arg("--end-time")
        .arg(format(end))
        .env("NO_COLOR", "1")
        .env("OPT_ML", opt_ml.path())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| LocalError::Spawn {
            kind: KIND,
            name: endpoint.to_string(),
            binary: binary.path().to_path_buf(),
            source,
        })?;
    if !ran.status.success() {
        return Err(LocalError::MonitorFailed {
            name: endpoint.to_string(),
            reason: failure_reason(opt_ml.path(), &ran.stderr),
        });
    }
    let report = read_report(endpoint, &output)?;
    Ok(MonitorRun {
        name,
        report_location: output.display().to_string(),
        report,
    })
}

/// The latest run's report, if a run finished.
pub(crate) fn latest(target: &LocalTarget, endpoint: &str) -> Result<Option<MonitorRun>, LocalError> {
    let bucket = bucket::folder(target, &bucket_name(&target.spec))?;
    let runs = bucket.join(MONITORING_PREFIX);
    let Ok(entries) = std::fs::read_dir(&runs) else {
        return Ok(None);
    };
    let prefix = format!("{endpoint}-monitor-");
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    names.sort();
    for name in names.into_iter().rev() {
        let folder = runs.join(&name);
        if folder.join(FILE_NAME).is_file() {
            return Ok(Some(MonitorRun {
                report: read_report(endpoint, &folder)?,
                report_location: folder.display().to_string(),
                name,
            }));
        }
    }
    Ok(None)
}

fn read_report(endpoint: &str, folder: &Path) -> Result<DriftSummary, LocalError> {
    let path = folder.join(FILE_NAME);
    let text = std::fs::read(&path).map_err(io_error(KIND, endpoint, "read", &path))?;
    serde_json::from_slice(&text).map_err(|e| LocalError::MonitorFailed {
        name: endpoint.to_string(),
        reason: format!("`{}` is not a drift report: {e}", path.display()),
    })
}

/// Why a run failed: the message the monitor leaves for SageMaker (`output/message` under its
/// `/opt/ml`), else the end of what it printed on stderr.
fn failure_reason(opt_ml: &Path, stderr: &[u8]) -> String {
    if let Ok(message) = std::fs::read_to_string(opt_ml.join("output/message"))
        && !message.trim().is_empty()
    {
        return message.trim().to_string();
    }
    let text = String::from_utf8_lossy(stderr);
    let tail: Vec<&str> = text.lines().rev().take(5).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}
