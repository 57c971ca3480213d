//! `orchestrate monitor`: runs the drift monitor now (`model-image monitor`: on AWS a processing
//! job with the deployment's image, locally its binary on the bucket folder) on the endpoint's
//! captured traffic of the last `--window`, judged against the baseline of the model the endpoint
//! serves at `monitoring.drift_threshold`, and prints the report per feature. Exit 0 when nothing
//! drifted (or there were too few rows for a verdict), 2 when something did, like `status`; 1 when
//! the endpoint captures nothing or the run failed.

use std::time::Duration;

use anyhow::bail;
use contract::drift::Verdict;
use engine::Target;
use engine::target::MonitorRequest;

use crate::cli::MonitorArgs;
use crate::deployment::{Context, Needs, Session};
use crate::documents::MonitorDocument;
use crate::exit::Exit;

/// The window without `--window` or a schedule: an hour, the period of an hourly schedule.
const DEFAULT_WINDOW: Duration = Duration::from_secs(3_600);

pub async fn run(cx: &Context, args: &MonitorArgs) -> anyhow::Result<Exit> {
    let spec = cx.load_spec()?;
    if spec.endpoint.data_capture.is_none() {
        bail!(
            "endpoint `{}` captures no traffic to judge; add `data_capture: {{sample_percent: 20}}` under `endpoint` in deploy.yaml and run `orchestrate up`",
            spec.name
        );
    }
    let window = args
        .window
        .or(spec.monitoring.schedule.map(|s| s.window()))
        .unwrap_or(DEFAULT_WINDOW);
    let progress = cx.progress();
    let session = Session::open(cx, &spec, &progress, Needs { desired_state: false }).await?;
    let request = MonitorRequest {
        window,
        drift_threshold: spec.monitoring.drift_threshold,
    };
    let run = session.target.monitor(spec.name.as_str(), &request).await?;
    let drift = run.report.verdict == Verdict::Drift;
    cx.printer.text(&crate::monitor_report::monitor_run(&run, window));
    cx.printer.json(&MonitorDocument {
        ok: true,
        drift,
        run: &run,
    });
    Ok(if drift { Exit::Drift } else { Exit::Success })
}
