//! `drift_report.json`, our own file beside Model Monitor's two, and the same report as text for
//! stdout. It holds what Model Monitor's formats have no place for: the verdict, the thresholds it
//! was judged by, what was read (records, rows, unreadable records with examples, records outside
//! the window), and per column the PSI, missing rates and out-of-range rate with the thresholds
//! each crossed (`psi` is `null` for a column without values or baseline bins).

use std::fmt;

use serde::Serialize;

use super::comparison::{ColumnComparison, Comparison, Finding, Judgement, Thresholds, Verdict};
use super::traffic::{CaptureCounts, Problem, Skipped};
use super::window::Window;

pub use contract::drift::{FILE_NAME, FORMAT_VERSION};
/// How many of the largest PSI figures the text report lists when nothing was flagged.
const LARGEST_SHOWN: usize = 3;

/// `drift_report.json`: what [`contract::drift::DriftSummary`] reads of it, and the problems seen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftReport {
    pub format_version: u32,
    pub verdict: Verdict,
    pub violations: usize,
    pub thresholds: Thresholds,
    pub window: Window,
    pub capture: CaptureCounts,
    /// The first unreadable records and responses, for a look at the capture files.
    pub problems: Vec<Problem>,
    pub features_judgement: Judgement,
    pub score_judgement: Judgement,
    /// Every feature in the model's order, then the score.
    pub columns: Vec<ColumnComparison>,
}

impl DriftReport {
    pub fn new(
        comparison: &Comparison,
        window: Window,
        capture: CaptureCounts,
        problems: Vec<Problem>,
    ) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            verdict: comparison.verdict(),
            violations: comparison.violations().count(),
            thresholds: comparison.thresholds,
            window,
            capture,
            problems,
            features_judgement: comparison.features_judgement,
            score_judgement: comparison.score_judgement,
            columns: comparison.columns().cloned().collect(),
        }
    }

    /// One line for the processing job's exit message.
    pub fn summary(&self) -> String {
        let rows = self.capture.rows;
        match self.verdict {
            Verdict::Drift => {
                let flagged = self.columns.iter().filter(|c| !c.findings.is_empty()).count();
                format!(
                    "drift: {} violations in {flagged} columns over {rows} rows",
                    self.violations
                )
            }
            Verdict::NoDrift => format!("no drift over {rows} rows"),
            Verdict::InsufficientData => format!(
                "no verdict: {rows} rows, fewer than the {} a verdict needs",
                self.thresholds.min_rows
            ),
        }
    }
}

/// The text report: what was read, the verdict, and a table of the flagged columns.
impl fmt::Display for DriftReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.capture;
        writeln!(
            f,
            "read {} records in {} files: {} rows, {} with scores; {} unreadable, {} without scores, {} outside the window",
            c.records,
            c.files,
            c.rows,
            c.scored_rows,
            c.unreadable_records,
            c.records_without_scores,
            c.outside_window
        )?;
        for problem in &self.problems {
            let what = match problem.skipped {
                Skipped::Record => "skipped",
                Skipped::Scores => "no scores",
            };
            writeln!(
                f,
                "  {what}: {}:{}: {}",
                problem.file.display(),
                problem.line,
                problem.reason
            )?;
        }
        let t = &self.thresholds;
        writeln!(
            f,
            "thresholds: PSI > {}, missing rate > baseline + {}, out of range > {}, at least {} rows",
            t.drift_psi, t.missing_margin, t.out_of_range_rate, t.min_rows
        )?;
        if let Judgement::TooFewRows { rows, minimum } = self.score_judgement
            && self.features_judgement.is_judged()
        {
            writeln!(
                f,
                "score not judged: {rows} rows with scores, fewer than {minimum}"
            )?;
        }
        writeln!(f, "{}", self.summary())?;
        let flagged: Vec<&ColumnComparison> =
            self.columns.iter().filter(|c| !c.findings.is_empty()).collect();
        if flagged.is_empty() {
            let mut largest: Vec<&ColumnComparison> =
                self.columns.iter().filter(|c| c.psi.is_some()).collect();
            largest.sort_by(|a, b| b.psi.partial_cmp(&a.psi).unwrap_or(std::cmp::Ordering::Equal));
            let shown: Vec<String> = largest
                .iter()
                .take(LARGEST_SHOWN)
                .map(|c| format!("{} {:.4}", c.name, c.psi.unwrap_or_default()))
                .collect();
            if !shown.is_empty() {
                writeln!(f, "largest PSI: {}", shown.join(", "))?;
            }
            return Ok(());
        }
        // A figure over its threshold is marked `*`.
        let width = flagged
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(0)
            .max("column".len());
        writeln!(
            f,
            "{:<width$}  {:>9}  {:>16}  {:>12}  violations",
            "column", "PSI", "missing (base)", "out of range"
        )?;
        for column in flagged {
            let crossed = |check: fn(&Finding) -> bool| {
                if column.findings.iter().any(check) {
                    "*"
                } else {
                    " "
                }
            };
            let psi = column.psi.map_or("-".to_owned(), |psi| {
                format!("{psi:.4}{}", crossed(|f| matches!(f, Finding::Drift { .. })))
            });
            let missing = match (column.missing_rate, column.baseline_missing_rate) {
                (Some(rate), Some(baseline)) => format!(
                    "{:.1}% ({:.1}%){}",
                    rate * 100.0,
                    baseline * 100.0,
                    crossed(|f| matches!(f, Finding::Incomplete { .. }))
                ),
                _ => "-".to_owned(),
            };
            let out_of_range = column.out_of_range_rate.map_or("-".to_owned(), |rate| {
                format!(
                    "{:.1}%{}",
                    rate * 100.0,
                    crossed(|f| matches!(f, Finding::OutOfRange { .. }))
                )
            });
            let mut checks: Vec<&str> = column.findings.iter().map(|f| f.check_type().name()).collect();
            checks.dedup();
            writeln!(
                f,
                "{:<width$}  {psi:>9}  {missing:>16}  {out_of_range:>12}  {}",
                column.name,
                checks.join(", ")
            )?;
        }
        Ok(())
    }
}
