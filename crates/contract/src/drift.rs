//! The drift report `model-image monitor` writes (`drift_report.json`, beside Model Monitor's
//! `statistics.json` and `constraint_violations.json`) as both sides read it: the verdict, the
//! thresholds it was judged by, what was read, and per column (every feature in the model's order,
//! then the score) the figures and the thresholds they crossed. `model-image` writes a superset
//! ([`DriftSummary`] is what orchestrate's `monitor` and `status` read of it), so a renamed field is
//! a compile error or a failing round-trip test on both sides.

use serde::{Deserialize, Serialize};

/// `drift_report.json`.
pub const FILE_NAME: &str = "drift_report.json";
/// Version of `drift_report.json`'s layout.
pub const FORMAT_VERSION: u32 = 1;
/// The name the score goes by in the reports (`serve`'s response field).
pub const SCORE_NAME: &str = "score";

/// What orchestrate reads of `drift_report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftSummary {
    pub format_version: u32,
    pub verdict: Verdict,
    pub violations: usize,
    pub thresholds: Thresholds,
    pub capture: CaptureCounts,
    pub features_judgement: Judgement,
    pub score_judgement: Judgement,
    /// Every feature in the model's order, then the score.
    pub columns: Vec<ColumnComparison>,
}

impl DriftSummary {
    /// The columns that crossed a threshold.
    pub fn flagged(&self) -> impl Iterator<Item = &ColumnComparison> {
        self.columns.iter().filter(|c| !c.findings.is_empty())
    }
}

/// What counts as drift.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// A feature (or the score) drifted when its PSI is above this.
    pub drift_psi: f64,
    /// Fewer rows than this get no verdict.
    pub min_rows: u64,
    /// A feature is incomplete when its missing rate exceeds the baseline's by more than this.
    pub missing_margin: f64,
    /// A feature is out of range when more than this share of its finite values lie outside the
    /// baseline's range.
    pub out_of_range_rate: f64,
}

pub const DEFAULT_DRIFT_PSI: f64 = 0.2;
pub const DEFAULT_MIN_ROWS: u64 = 200;
pub const DEFAULT_MISSING_MARGIN: f64 = 0.05;
pub const DEFAULT_OUT_OF_RANGE_RATE: f64 = 0.01;

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            drift_psi: DEFAULT_DRIFT_PSI,
            min_rows: DEFAULT_MIN_ROWS,
            missing_margin: DEFAULT_MISSING_MARGIN,
            out_of_range_rate: DEFAULT_OUT_OF_RANGE_RATE,
        }
    }
}

/// A threshold a column crossed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "check", rename_all = "snake_case")]
pub enum Finding {
    /// The PSI is above `drift_psi`.
    Drift { psi: f64, threshold: f64 },
    /// The missing rate exceeds the baseline's by more than `missing_margin`.
    Incomplete {
        missing_rate: f64,
        baseline_missing_rate: f64,
        margin: f64,
    },
    /// More than `limit` of the finite values lie outside the baseline's `[min, max]`.
    OutOfRange {
        rate: f64,
        limit: f64,
        min: f64,
        max: f64,
    },
}

/// Whether the window had enough rows for a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "judgement", rename_all = "snake_case")]
pub enum Judgement {
    Judged,
    TooFewRows { rows: u64, minimum: u64 },
}

impl Judgement {
    pub fn of(rows: u64, minimum: u64) -> Self {
        if rows >= minimum {
            Self::Judged
        } else {
            Self::TooFewRows { rows, minimum }
        }
    }

    pub fn is_judged(self) -> bool {
        self == Self::Judged
    }
}

/// One column's figures and the thresholds it crossed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnComparison {
    pub name: String,
    pub present: u64,
    pub missing: u64,
    /// `None` for the score, which is never missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_missing_rate: Option<f64>,
    /// `None` without values, or when the baseline has none.
    pub psi: Option<f64>,
    /// `None` for the score (its range is [0, 1] by construction), without finite values, or when
    /// the baseline has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_of_range_rate: Option<f64>,
    pub findings: Vec<Finding>,
}

/// What the run concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// At least one threshold was crossed.
    Drift,
    NoDrift,
    /// Too few rows for a verdict on the features.
    InsufficientData,
}

/// Model Monitor's check types that ours map to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckType {
    BaselineDriftCheck,
    CompletenessCheck,
}

impl CheckType {
    /// The name in `constraint_violations.json`.
    pub fn name(self) -> &'static str {
        match self {
            CheckType::BaselineDriftCheck => "baseline_drift_check",
            CheckType::CompletenessCheck => "completeness_check",
        }
    }
}

impl Finding {
    pub fn check_type(&self) -> CheckType {
        match self {
            Finding::Drift { .. } | Finding::OutOfRange { .. } => CheckType::BaselineDriftCheck,
            Finding::Incomplete { .. } => CheckType::CompletenessCheck,
        }
    }

    /// One sentence, in the style of Model Monitor's own descriptions.
    pub fn description(&self) -> String {
        match *self {
            Finding::Drift { psi, threshold } => format!(
                "Baseline drift distance (PSI over the baseline's bins): {psi:.4} exceeds threshold: {threshold}"
            ),
            Finding::Incomplete {
                missing_rate,
                baseline_missing_rate,
                margin,
            } => format!(
                "Missing rate {:.2}% exceeds the baseline's {:.2}% by more than {} points",
                missing_rate * 100.0,
                baseline_missing_rate * 100.0,
                margin * 100.0
            ),
            Finding::OutOfRange {
                rate,
                limit,
                min,
                max,
            } => format!(
                "{:.2}% of the values lie outside the baseline range [{min}, {max}]; the limit is {}%",
                rate * 100.0,
                limit * 100.0
            ),
        }
    }
}
/// What was read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureCounts {
    pub files: usize,
    /// Non-blank lines of the capture files.
    pub records: u64,
    /// Records that are not capture records, or whose request cannot be read.
    pub unreadable_records: u64,
    /// Records outside the window (not counted anywhere else).
    pub outside_window: u64,
    /// Readable records whose response gave no score per row.
    pub records_without_scores: u64,
    /// Request rows tallied.
    pub rows: u64,
    /// Rows with a score tallied.
    pub scored_rows: u64,
}
