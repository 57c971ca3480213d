//! `orchestrate status`: every resource compared with deploy.yaml — in sync, drifted (field: want,
//! have), missing, in progress, failed, orphan, kept for rollback. Changes nothing. Exit 0 in sync,
//! 2 drift, 1 error.

use crate::commands::plan;
use crate::deployment::Context;
use crate::documents::StatusDocument;
use crate::exit::Exit;
use engine::StatusReport;

pub async fn run(cx: &Context) -> anyhow::Result<Exit> {
    let plan = plan::observe(cx).await?;
    let report = StatusReport::from_plan(&plan);
    cx.printer.text(&cx.printer.plan_text(&report.render()));
    cx.printer.json(&StatusDocument {
        ok: true,
        status: &report,
    });
    Ok(if report.in_sync {
        Exit::Success
    } else {
        Exit::Drift
    })
}
