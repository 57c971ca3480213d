//! Drift monitor runs as people read them: `orchestrate monitor`'s report (what was read, the
//! verdict, the flagged columns with their figures) and the line `status` adds for a drifted
//! endpoint.

use std::fmt::Write as _;

/// A drift monitor run as people read it: what was read, the verdict, and the flagged columns
/// (PSI, missing rate against the baseline's, out-of-range rate; `*` marks a figure over its
/// threshold), or the largest PSI figures when nothing was flagged.
pub fn monitor_run(run: &engine::target::MonitorRun, window: std::time::Duration) -> String {
    use contract::drift::{Finding, Judgement, Verdict};
    let report = &run.report;
    let c = &report.capture;
    let t = &report.thresholds;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "Monitor run {} over the last {} (report in {}):",
        run.name,
        spec::format_duration(window),
        run.report_location
    );
    let _ = writeln!(
        text,
        "  read {} records in {} files: {} rows, {} unreadable",
        c.records, c.files, c.rows, c.unreadable_records
    );
    let verdict = match report.verdict {
        Verdict::Drift => format!(
            "drift: {} violations in {} columns",
            report.violations,
            report.flagged().count()
        ),
        Verdict::NoDrift => "no drift".to_string(),
        Verdict::InsufficientData => match report.features_judgement {
            Judgement::TooFewRows { rows, minimum } => {
                format!("no verdict: {rows} rows, fewer than the {minimum} a verdict needs")
            }
            Judgement::Judged => "no verdict".to_string(),
        },
    };
    let _ = writeln!(text, "  {verdict} (PSI above {} drifts)", t.drift_psi);
    let flagged: Vec<_> = report.flagged().collect();
    if flagged.is_empty() {
        let mut largest: Vec<_> = report.columns.iter().filter(|c| c.psi.is_some()).collect();
        largest.sort_by(|a, b| b.psi.partial_cmp(&a.psi).unwrap_or(std::cmp::Ordering::Equal));
        let shown: Vec<String> = largest
            .iter()
            .take(3)
            .map(|c| format!("{} {:.4}", c.name, c.psi.unwrap_or_default()))
            .collect();
        if !shown.is_empty() {
            let _ = writeln!(text, "  largest PSI: {}", shown.join(", "));
        }
        return text;
    }
    let width = flagged
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0)
        .max("column".len());
    let _ = writeln!(
        text,
        "  {:<width$}  {:>9}  {:>16}  {:>12}",
        "column", "PSI", "missing (base)", "out of range"
    );
    for column in flagged {
        let mark = |hit: bool| if hit { "*" } else { " " };
        let has = |check: fn(&Finding) -> bool| column.findings.iter().any(check);
        let psi = column.psi.map_or("-".to_string(), |psi| {
            format!("{psi:.4}{}", mark(has(|f| matches!(f, Finding::Drift { .. }))))
        });
        let missing = match (column.missing_rate, column.baseline_missing_rate) {
            (Some(rate), Some(base)) => format!(
                "{:.1}% ({:.1}%){}",
                rate * 100.0,
                base * 100.0,
                mark(has(|f| matches!(f, Finding::Incomplete { .. })))
            ),
            _ => "-".to_string(),
        };
        let out_of_range = column.out_of_range_rate.map_or("-".to_string(), |rate| {
            format!(
                "{:.1}%{}",
                rate * 100.0,
                mark(has(|f| matches!(f, Finding::OutOfRange { .. })))
            )
        });
        let _ = writeln!(
            text,
            "  {:<width$}  {psi:>9}  {missing:>16}  {out_of_range:>12}",
            column.name
        );
    }
    text
}

/// What `status` adds for a drifted endpoint: the columns the latest monitor run flagged.
pub fn monitor_drift(run: &engine::target::MonitorRun, endpoint: &str) -> String {
    let columns: Vec<String> = run
        .report
        .flagged()
        .map(|c| match c.psi {
            Some(psi) => format!("{} (PSI {psi:.2})", c.name),
            None => c.name.clone(),
        })
        .collect();
    format!(
        "~ endpoint {endpoint} drifted from its training data: monitor run {} flags {} (report in {}; `orchestrate monitor` runs it again)\n",
        run.name,
        columns.join(", "),
        run.report_location
    )
}
