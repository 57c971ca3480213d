//! `orchestrate status`: every resource compared with deploy.yaml — in sync, drifted (field: want,
//! have), missing, in progress, failed, orphan, kept for rollback — and, for an endpoint that
//! captures its traffic, whether the latest drift monitor run found its traffic drifted from the
//! training data (drift of the endpoint). Changes nothing. Exit 0 in sync, 2 drift, 1 error.

use contract::drift::Verdict;
use engine::{StatusReport, Target, executor};

use crate::deployment::{Context, Needs, Session};
use crate::documents::StatusDocument;
use crate::exit::Exit;

pub async fn run(cx: &Context) -> anyhow::Result<Exit> {
    let spec = cx.load_spec()?;
    let progress = cx.progress();
    let session = Session::open(cx, &spec, &progress, Needs { desired_state: true }).await?;
    let plan = executor::plan(&session.target, session.state(), &progress).await?;
    let report = StatusReport::from_plan(&plan);
    let monitoring = match spec.endpoint.data_capture {
        Some(_) => session.target.latest_monitor_run(spec.name.as_str()).await?,
        None => None,
    };
    let traffic_drifted = monitoring
        .as_ref()
        .is_some_and(|run| run.report.verdict == Verdict::Drift);
    let mut text = cx.printer.plan_text(&report.render());
    if let Some(run) = monitoring.as_ref().filter(|_| traffic_drifted) {
        text.push_str(&crate::monitor_report::monitor_drift(run, spec.name.as_str()));
    }
    cx.printer.text(&text);
    cx.printer.json(&StatusDocument {
        ok: true,
        status: &report,
        monitoring: monitoring.as_ref(),
    });
    Ok(if report.in_sync && !traffic_drifted {
        Exit::Success
    } else {
        Exit::Drift
    })
}
