//! Results on stdout, as text for people or as one JSON document for machines (`--output json`),
//! and errors: as `error: …` lines on stderr in text mode, inside the JSON document otherwise.
//!
//! Commands build their result once and hand it to a [`Printer`]; everything that is only progress
//! goes to stderr through the reporter instead.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use console::Style;
use serde::Serialize;

use engine::training_output::{Metric, MetricValues};

use crate::cli::OutputFormat;
use crate::documents::{ErrorDocument, ErrorReport, GateFailure};

/// Prints results in the chosen format.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub format: OutputFormat,
    /// Colour the text output (stdout is a terminal and colours are not turned off).
    colour: bool,
}

impl Printer {
    pub fn new(format: OutputFormat) -> Self {
        let colour = std::io::stdout().is_terminal() && console::colors_enabled();
        Self { format, colour }
    }

    pub fn is_json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// Prints text (in text mode; nothing in JSON mode).
    pub fn text(&self, text: &str) {
        if !self.is_json() {
            write_stdout(text);
        }
    }

    /// Prints the JSON document (in JSON mode; nothing in text mode).
    pub fn json(&self, document: &impl Serialize) {
        if self.is_json() {
            let mut text = serde_json::to_string_pretty(document).unwrap_or_else(|_| "null".into());
            text.push('\n');
            write_stdout(&text);
        }
    }

    /// A plan or status rendering with its margin symbols coloured on a terminal.
    pub fn plan_text(&self, text: &str) -> String {
        if !self.colour {
            return text.to_string();
        }
        text.lines()
            .map(|line| {
                let style = match line.split_whitespace().next() {
                    Some("+") => Style::new().green(),
                    Some("~") => Style::new().yellow(),
                    Some("-/+") | Some("-") => Style::new().red(),
                    Some("…") => Style::new().cyan(),
                    Some("drifted" | "missing" | "orphan" | "failed") => Style::new().yellow(),
                    _ => Style::new(),
                };
                format!("{}\n", style.apply_to(line))
            })
            .collect()
    }

    /// Reports an error: on stderr in text mode, as `{"error": …}` on stdout in JSON mode.
    pub fn error(&self, error: &anyhow::Error) {
        if self.is_json() {
            self.json(&ErrorDocument {
                ok: false,
                error: error_json(error),
            });
        } else {
            eprint!("{}", error_text(error));
        }
    }
}

/// Writes to stdout, ignoring a closed pipe (`orchestrate status | head -1`).
fn write_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// `error: what failed` plus one `caused by:` line per cause; invalid deploy.yaml as its
/// diagnostics (`deploy.yaml:LINE:COL: …` with a help line each).
pub fn error_text(error: &anyhow::Error) -> String {
    if let Some(diagnostics) = error.downcast_ref::<spec::Diagnostics>() {
        let n = diagnostics.len();
        let problems = if n == 1 { "problem" } else { "problems" };
        return format!(
            "{diagnostics}error: {} has {n} {problems}; nothing was changed\n",
            diagnostics.file()
        );
    }
    let mut out = format!("error: {error}\n");
    for cause in error.chain().skip(1) {
        let _ = writeln!(out, "  caused by: {cause}");
    }
    if let Some(engine::EngineError::QualityGate { metrics, .. }) =
        error.downcast_ref::<engine::EngineError>()
    {
        let _ = write!(
            out,
            "Validation metrics of the new model:\n{}",
            metrics_table(metrics)
        );
        out.push_str("  help: improve the model (data, hyperparameters) or lower training.quality_gate in deploy.yaml\n");
    }
    out
}

/// An error as JSON: `message`, `causes`, and the structured details the error carries (every
/// diagnostic of an invalid deploy.yaml; the metrics that failed the quality gate).
pub fn error_json(error: &anyhow::Error) -> ErrorReport {
    let mut report = ErrorReport {
        message: error.to_string(),
        causes: error.chain().skip(1).map(ToString::to_string).collect(),
        diagnostics: None,
        quality_gate: None,
    };
    if let Some(diagnostics) = error.downcast_ref::<spec::Diagnostics>() {
        report.message = format!("{} is invalid; nothing was changed", diagnostics.file());
        report.diagnostics = Some(diagnostics.iter().cloned().collect());
    }
    if let Some(engine::EngineError::QualityGate { failures, metrics }) =
        error.downcast_ref::<engine::EngineError>()
    {
        report.quality_gate = Some(GateFailure {
            failures: failures.clone(),
            metrics: metrics.clone(),
        });
    }
    report
}

/// `4.2s`, `1m 23s`, `2h 05m`.
pub fn elapsed(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if secs < 3600 {
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h {:02}m", secs / 3600, secs / 60 % 60)
    }
}

/// `key: value` lines, keys aligned.
pub fn key_values(pairs: &[(String, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("  {k:<width$}  {v}\n"))
        .collect()
}

/// Metrics shown first, in this order; the others follow in [`Metric::ALL`] order.
const HEADLINE_METRICS: [Metric; 7] = [
    Metric::PrAuc,
    Metric::RocAuc,
    Metric::Mcc,
    Metric::F1,
    Metric::Precision,
    Metric::Recall,
    Metric::Accuracy,
];

/// A training job's validation metrics as a table, one metric a line.
pub fn metrics_table(metrics: &MetricValues) -> String {
    let others = Metric::ALL.into_iter().filter(|m| !HEADLINE_METRICS.contains(m));
    let shown: Vec<(Metric, f64)> = HEADLINE_METRICS
        .into_iter()
        .chain(others)
        .filter_map(|m| Some((m, *metrics.get(&m)?)))
        .collect();
    let width = shown.iter().map(|(m, _)| m.as_str().len()).max().unwrap_or(0);
    let mut out = String::new();
    for (metric, value) in shown {
        let _ = writeln!(out, "  {metric:<width$}  {value:.4}");
    }
    out
}

/// The plan as people read it, and when it rolls a new config out to an existing endpoint, how
/// (`endpoint.rollout`): the traffic steps, the bake and the alarms that roll it back; for a new
/// serverless model, its capacity and that it runs without network isolation; for a new async
/// config, where requests and answers go.
pub fn plan_with_rollout(plan: &engine::Plan, spec: &spec::Spec) -> String {
    let mut text = plan.render();
    let rolls_out = plan.step(engine::Kind::Endpoint).is_some_and(|step| {
        matches!(&step.change, engine::resource::Change::Update { fields }
            if fields.iter().any(|f| f.field == "endpoint_config"))
    });
    if rolls_out {
        let rollout = &spec.endpoint.rollout;
        let alarms = engine::desired::rollback_alarms(spec);
        let _ = writeln!(text, "Rollout: {}.", rollout_summary(rollout, &alarms));
        let local = plan.target == spec::Target::Local.as_str();
        if local && matches!(rollout.alarms, spec::RolloutAlarms::Named(_)) && !rollout.bake.is_zero() {
            // The local router (`model-image route`) judges only the rules of alarms it owns.
            let _ = writeln!(
                text,
                "  The local router takes the steps and bakes, but cannot watch CloudWatch alarms: none rolls it back here."
            );
        }
    }
    if let spec::Capacity::Serverless(serverless) = &spec.endpoint.capacity {
        let new_model = plan.step(engine::Kind::Model).is_some_and(|step| {
            matches!(
                step.change,
                engine::resource::Change::Create | engine::resource::Change::Replace { .. }
            )
        });
        if new_model {
            let _ = writeln!(
                text,
                "Serverless: {} MB, {} requests at once; the model runs without network isolation (serverless endpoints do not support it).",
                serverless.memory_mb, serverless.max_concurrency
            );
        }
    }
    if let spec::Invocation::Async(inference) = &spec.endpoint.invocation {
        let new_config = plan.step(engine::Kind::EndpointConfig).is_some_and(|step| {
            matches!(
                step.change,
                engine::resource::Change::Create | engine::resource::Change::Replace { .. }
            )
        });
        if new_config {
            let _ = writeln!(
                text,
                "Async: {} requests at once per instance; `orchestrate invoke --async FILE` puts a request under {}, the answer comes back under {} (failures under {}).",
                inference.max_concurrent_invocations,
                engine::values::ASYNC_INPUT_PREFIX,
                engine::values::ASYNC_OUTPUT_PREFIX,
                engine::values::ASYNC_FAILURE_PREFIX
            );
        }
    }
    text
}

/// `canary: 50% of the new fleet's capacity, then all of it; each step bakes 10m; rolled back when
/// iot-invocation-5xx-errors or iot-model-latency goes into ALARM`.
pub fn rollout_summary(rollout: &spec::Rollout, alarms: &[String]) -> String {
    let steps = rollout.steps();
    let shares: Vec<String> = steps.iter().map(|p| format!("{p}%")).collect();
    let mut text = match rollout.strategy {
        spec::RolloutStrategy::AllAtOnce => "all at once".to_string(),
        spec::RolloutStrategy::Canary { .. } => {
            format!("canary, {} of the new fleet's capacity", shares.join(" then "))
        }
        spec::RolloutStrategy::Linear { .. } => {
            format!("linear, {} of the new fleet's capacity", shares.join(", "))
        }
    };
    if !rollout.bake.is_zero() {
        let _ = write!(
            text,
            "; each step bakes {} (at most {} in all)",
            spec::format_duration(rollout.bake),
            spec::format_duration(rollout.total_bake())
        );
    }
    if alarms.is_empty() {
        text.push_str("; no alarm rolls it back");
    } else {
        let _ = write!(text, "; rolled back when {} goes into ALARM", alarms.join(" or "));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_is_short() {
        assert_eq!(elapsed(Duration::from_millis(4200)), "4.2s");
        assert_eq!(elapsed(Duration::from_secs(83)), "1m 23s");
        assert_eq!(elapsed(Duration::from_secs(7500)), "2h 05m");
    }

    #[test]
    fn metrics_table_puts_headline_metrics_first() {
        let metrics: MetricValues = [
            (Metric::LogLoss, 0.05),
            (Metric::Accuracy, 0.99),
            (Metric::PrAuc, 0.991),
        ]
        .into_iter()
        .collect();
        let table = metrics_table(&metrics);
        assert_eq!(
            table,
            "  pr_auc    0.9910\n  accuracy  0.9900\n  log_loss  0.0500\n"
        );
    }

    #[test]
    fn error_text_lists_causes() {
        let error = anyhow::anyhow!("disk full").context("cannot write the model");
        assert_eq!(
            error_text(&error),
            "error: cannot write the model\n  caused by: disk full\n"
        );
    }

    #[test]
    fn a_rollout_reads_as_its_steps_bake_and_alarms() {
        let canary = spec::Rollout {
            strategy: spec::RolloutStrategy::Canary { percent: 50 },
            bake: Duration::from_secs(600),
            alarms: spec::RolloutAlarms::None,
        };
        assert_eq!(
            rollout_summary(&canary, &["iot-model-latency".into()]),
            "canary, 50% then 100% of the new fleet's capacity; each step bakes 10m (at most 20m in \
             all); rolled back when iot-model-latency goes into ALARM"
        );
        let linear = spec::Rollout {
            strategy: spec::RolloutStrategy::Linear { step_percent: 40 },
            bake: Duration::ZERO,
            ..canary
        };
        assert_eq!(
            rollout_summary(&linear, &[]),
            "linear, 40%, 80%, 100% of the new fleet's capacity; no alarm rolls it back"
        );
    }
}
