//! `monitoring`: how captured traffic is judged for drift (the PSI threshold) and, on AWS, how
//! often a monitoring schedule judges it. It needs `endpoint.data_capture`: without captured
//! traffic there is nothing to judge.

use super::cx::{Cx, Section};
use super::{keys, note};
use crate::defaults;
use crate::diagnostic::Kind;
use crate::model::{Monitoring, MonitoringSchedule};
use crate::yaml::{Node, Value};

/// The largest `monitoring.drift_threshold`: a PSI of 10 means every value moved bins.
const DRIFT_THRESHOLD_LIMIT: f64 = 10.0;

/// Reads `monitoring`; `captured` says whether `endpoint.data_capture` is set.
pub(super) fn monitoring(cx: &mut Cx<'_>, top: &Section<'_>, captured: bool) -> Option<Monitoring> {
    let section = cx.optional_section(top, "monitoring", keys::MONITORING)?;
    let schedule = match section.get("schedule") {
        None => Some(None),
        Some(e) => schedule(cx, e.value).and_then(|_| {
            // Orchestrate does not own monitoring schedules yet: accepting the key would promise
            // runs that never happen.
            cx.invalid(
                e.key.pos,
                "monitoring.schedule",
                "`monitoring.schedule` is not supported yet: orchestrate does not create monitoring schedules",
                "remove `schedule` and run `orchestrate monitor` on a schedule of yours (cron, CI); it exits 2 on drift",
            );
            None
        }),
    };
    let drift_threshold = match section.get("drift_threshold") {
        None => Some(defaults::DRIFT_THRESHOLD),
        Some(e) => cx.number(
            e.value,
            "monitoring.drift_threshold",
            (0.0, false),
            (DRIFT_THRESHOLD_LIMIT, true),
            false,
        ),
    };
    if let (Some(entry), false) = (top.get("monitoring"), captured) {
        let d = cx.report(
            Kind::Conflict,
            entry.key.pos,
            Some("monitoring"),
            "`monitoring` needs captured traffic to judge, and `endpoint.data_capture` is not set"
                .to_string(),
            Some("add `data_capture: {sample_percent: 20}` under `endpoint`".to_string()),
        );
        if let Some(endpoint) = top.get("endpoint") {
            d.notes.push(note(endpoint.key.pos, "`endpoint` is set here"));
        }
        return None;
    }
    Some(Monitoring {
        schedule: schedule?,
        drift_threshold: drift_threshold?,
    })
}

fn schedule(cx: &mut Cx<'_>, node: &Node) -> Option<MonitoringSchedule> {
    const KEY: &str = "monitoring.schedule";
    let text = match &node.value {
        Value::Str(text) => text.trim().to_ascii_lowercase(),
        _ => {
            cx.wrong_type(
                node,
                KEY,
                "`hourly` or `daily`",
                "write `schedule: hourly` or `schedule: daily`",
            );
            return None;
        }
    };
    match text.as_str() {
        "hourly" => Some(MonitoringSchedule::Hourly),
        "daily" => Some(MonitoringSchedule::Daily),
        other => {
            cx.invalid(
                node.pos,
                KEY,
                format!("`{KEY}` must be `hourly` or `daily`, found `{other}`"),
                "use `hourly` or `daily`, or leave `schedule` out to monitor on demand (`orchestrate monitor`)",
            );
            None
        }
    }
}
