//! The `--output json` documents, one typed struct per command: what a machine reading
//! `orchestrate … --output json` can rely on. Every document has `ok`; a failed command prints an
//! [`ErrorDocument`] (or, for `up`, an [`UpFailed`] that keeps the plan).

use std::collections::BTreeMap;
use std::path::PathBuf;

use engine::target::Found;
use engine::{Plan, StatusReport};
use metrics::Evaluation;
use serde::Serialize;
use serde_json::Value;

/// Validation metrics by name.
pub type Metrics = engine::training_output::MetricValues;

/// `validate`: the validated spec.
#[derive(Debug, Serialize)]
pub struct ValidateDocument<'a> {
    pub ok: bool,
    pub file: String,
    pub spec: &'a spec::Spec,
}

/// `plan`: what `up` would do.
#[derive(Debug, Serialize)]
pub struct PlanDocument<'a> {
    pub ok: bool,
    pub changes: usize,
    pub plan: &'a Plan,
}

/// `status`: every resource's standing.
#[derive(Debug, Serialize)]
pub struct StatusDocument<'a> {
    pub ok: bool,
    pub status: &'a StatusReport,
    /// The latest drift monitor run, when the endpoint captures its traffic and a run finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<&'a engine::target::MonitorRun>,
}

/// `up` that finished.
#[derive(Debug, Serialize)]
pub struct UpDocument<'a> {
    pub ok: bool,
    pub changes: usize,
    pub plan: &'a Plan,
    pub outcome: UpOutcomeDocument,
    /// What the target says about the deployment (endpoint URL, account, …).
    pub summary: BTreeMap<String, String>,
    /// The training job attempt that serves, with its suffix.
    pub training_job: Option<String>,
    pub validation_metrics: Option<Metrics>,
}

/// What `up` changed.
#[derive(Debug, Serialize)]
pub struct UpOutcomeDocument {
    pub changed: usize,
    pub deleted: Vec<Found>,
    pub kept_for_rollback: Vec<Found>,
}

/// `up` that stopped on an error after planning.
#[derive(Debug, Serialize)]
pub struct UpFailed<'a> {
    pub ok: bool,
    pub plan: &'a Plan,
    pub outcome: Option<UpOutcomeDocument>,
    pub error: ErrorReport,
}

/// `down`.
#[derive(Debug, Serialize)]
pub struct DownDocument<'a> {
    pub ok: bool,
    pub deleted: &'a [Found],
    pub kept: &'a [Found],
}

/// `rollback`.
#[derive(Debug, Serialize)]
pub struct RollbackDocument {
    pub ok: bool,
    pub endpoint: String,
    pub endpoint_config: String,
}

/// `invoke`: the endpoint's status and answer (JSON when it answered JSON, else its text).
#[derive(Debug, Serialize)]
pub struct InvokeDocument {
    pub ok: bool,
    pub status: u16,
    pub response: Value,
}

/// `invoke --async`: where the request, its answer and its failure are, and how it ended; the
/// answer itself (as in [`InvokeDocument`]) unless it went to `--answer-file`.
#[derive(Debug, Serialize)]
pub struct AsyncInvokeDocument {
    pub ok: bool,
    #[serde(flatten)]
    pub invocation: engine::target::AsyncInvocation,
    #[serde(flatten)]
    pub outcome: engine::target::AsyncOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
}

/// `monitor`: the run, its report, and whether it found drift.
#[derive(Debug, Serialize)]
pub struct MonitorDocument<'a> {
    pub ok: bool,
    pub drift: bool,
    pub run: &'a engine::target::MonitorRun,
}

/// `evaluate`: metrics of the deployed endpoint on a labelled file.
#[derive(Debug, Serialize)]
pub struct EvaluateDocument<'a> {
    pub ok: bool,
    pub file: &'a PathBuf,
    pub endpoint: &'a str,
    pub positive: &'a str,
    pub negative: &'a str,
    pub evaluation: &'a Evaluation,
}

/// Any command that failed.
#[derive(Debug, Serialize)]
pub struct ErrorDocument {
    pub ok: bool,
    pub error: ErrorReport,
}

/// An error: its message, its causes, and the structured details it carries.
#[derive(Debug, Serialize)]
pub struct ErrorReport {
    pub message: String,
    pub causes: Vec<String>,
    /// Every problem of an invalid deploy.yaml.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<Vec<spec::Diagnostic>>,
    /// The metrics that failed the quality gate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality_gate: Option<GateFailure>,
}

/// Why the quality gate refused a model.
#[derive(Debug, Serialize)]
pub struct GateFailure {
    pub failures: Vec<String>,
    pub metrics: Metrics,
}
