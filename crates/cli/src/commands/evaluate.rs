//! `orchestrate evaluate FILE`: scores a labelled CSV file against the live endpoint and prints the
//! metrics `model-image train` reports, computed by the same code (the `orchestrate-metrics`
//! crate): the confusion matrix as a 2x2 table, then precision, recall, F1, MCC, ROC-AUC, PR-AUC and
//! the rest, each with its 95% bootstrap confidence interval.
//!
//! The file is sent as it is, in batches of `--batch-size` rows (`text/csv` with the header; the
//! server matches feature columns by name and ignores the others, the label included). The
//! confusion matrix counts what the endpoint decided: a row is predicted positive when the endpoint
//! labelled it `data.positive`. The endpoint labels by thresholding its score, so the threshold
//! passed to the metrics is the lowest score it labelled positive, which reproduces its decisions
//! exactly.

use std::path::Path;

use crate::documents::EvaluateDocument;
use anyhow::{Context as _, bail};
use engine::Target;
use metrics::{BootstrapConfig, Evaluation};
use serde::Deserialize;

use crate::cli::EvaluateArgs;
use crate::deployment::{Context, Needs, Session};
use crate::exit::Exit;

pub async fn run(cx: &Context, args: &EvaluateArgs) -> anyhow::Result<Exit> {
    let spec = cx.load_spec()?;
    let progress = cx.progress();
    let session = Session::open(cx, &spec, &progress, Needs { desired_state: false }).await?;
    let scored = score(&session, &args.file, args.batch_size as usize).await?;
    let threshold = scored.threshold()?;
    let bootstrap = BootstrapConfig {
        resamples: args.resamples,
        ..BootstrapConfig::default()
    };
    let step = progress.begin(format!(
        "computing metrics on {} rows ({} bootstrap resamples)",
        scored.rows(),
        args.resamples
    ));
    let evaluation = {
        let (y, score) = (scored.actual.clone(), scored.score.clone());
        tokio::task::spawn_blocking(move || metrics::evaluate(&y, &score, threshold, &bootstrap))
            .await
            .context("the metrics computation stopped")?
    };
    step.done("metrics computed");
    let negative = scored.negative_label(&spec.data.positive);
    cx.printer
        .text(&report(&args.file, &spec.data.positive, &negative, &evaluation));
    cx.printer.json(&EvaluateDocument {
        ok: true,
        file: &args.file,
        endpoint: spec.name.as_str(),
        positive: &spec.data.positive,
        negative: &negative,
        evaluation: &evaluation,
    });
    Ok(Exit::Success)
}

/// Every row's true class and the endpoint's label and score.
#[derive(Debug, Default)]
struct Scored {
    /// True when the row's label is the positive class.
    actual: Vec<bool>,
    /// The endpoint's score (probability of the positive class).
    score: Vec<f64>,
    /// True when the endpoint labelled the row positive.
    predicted: Vec<bool>,
    /// The label values of the file that are not the positive class, by first appearance.
    other_labels: Vec<String>,
}

/// One prediction of model-image's JSON answer `{"predictions": [{"label": .., "score": ..}]}`.
#[derive(Debug, Deserialize)]
struct Prediction {
    label: String,
    score: f64,
}

#[derive(Debug, Deserialize)]
struct Predictions {
    predictions: Vec<Prediction>,
}

/// Sends `file` to the endpoint in batches of `batch_size` rows and collects, per row, the true
/// class and the endpoint's answer.
async fn score(session: &Session<'_>, file: &Path, batch_size: usize) -> anyhow::Result<Scored> {
    let (label, positive) = (&session.spec.data.label, &session.spec.data.positive);
    let endpoint = session.spec.name.as_str();
    let mut reader =
        csv::Reader::from_path(file).with_context(|| format!("cannot read `{}`", file.display()))?;
    let header = reader
        .byte_headers()
        .with_context(|| format!("cannot read the header of `{}`", file.display()))?
        .clone();
    let Some(label_column) = header.iter().position(|h| h == label.as_bytes()) else {
        bail!(
            "`{}` has no `{label}` column (data.label in deploy.yaml); evaluate needs a labelled CSV file with a header",
            file.display()
        );
    };
    let step = session
        .progress
        .begin(format!("scoring `{}` on endpoint `{endpoint}`", file.display()));
    let mut scored = Scored::default();
    let mut batch = Vec::with_capacity(batch_size);
    let mut records = reader.byte_records();
    loop {
        batch.clear();
        for record in records.by_ref().take(batch_size) {
            batch.push(record.with_context(|| format!("cannot read `{}`", file.display()))?);
        }
        if batch.is_empty() {
            break;
        }
        let body = csv_body(&header, &batch)?;
        let (status, response) = session
            .target
            .invoke(endpoint, "text/csv", "application/json", body)
            .await?;
        let first_row = scored.rows() + 1;
        if !(200..300).contains(&status) {
            bail!(
                "the endpoint refused rows {first_row}-{} of `{}` (HTTP {status}): {}",
                first_row + batch.len() - 1,
                file.display(),
                String::from_utf8_lossy(&response).trim()
            );
        }
        let answer: Predictions = serde_json::from_slice(&response).with_context(|| {
            format!("the endpoint's answer to rows {first_row}-… is not predictions JSON")
        })?;
        if answer.predictions.len() != batch.len() {
            bail!(
                "the endpoint answered {} predictions for {} rows (from row {first_row})",
                answer.predictions.len(),
                batch.len()
            );
        }
        for (record, prediction) in batch.iter().zip(answer.predictions) {
            let value = String::from_utf8_lossy(record.get(label_column).unwrap_or_default())
                .trim()
                .to_string();
            scored.push(
                value == *positive,
                &value,
                prediction.score,
                prediction.label == *positive,
            );
        }
    }
    if scored.rows() == 0 {
        bail!("`{}` has no data rows", file.display());
    }
    step.done(&format!("scored {} rows", scored.rows()));
    Ok(scored)
}

impl Scored {
    fn rows(&self) -> usize {
        self.actual.len()
    }

    fn push(&mut self, actual: bool, label: &str, score: f64, predicted: bool) {
        self.actual.push(actual);
        self.score.push(score);
        self.predicted.push(predicted);
        if !actual && !self.other_labels.iter().any(|l| l == label) {
            self.other_labels.push(label.to_string());
        }
    }

    /// The threshold that reproduces the endpoint's decisions: the lowest score it labelled
    /// positive (just above the highest score when it labelled none). Fails if its labels are not a
    /// threshold on its scores.
    fn threshold(&self) -> anyhow::Result<f64> {
        let lowest_positive = self
            .score
            .iter()
            .zip(&self.predicted)
            .filter(|(_, p)| **p)
            .map(|(s, _)| *s)
            .fold(f64::INFINITY, f64::min);
        if lowest_positive.is_infinite() {
            let highest = self.score.iter().copied().fold(0.0, f64::max);
            return Ok(highest.next_up());
        }
        if let Some(row) = self
            .predicted
            .iter()
            .zip(&self.score)
            .position(|(p, s)| !*p && *s >= lowest_positive)
        {
            bail!(
                "the endpoint's labels are not a threshold on its scores (row {} scores {} but is not labelled positive, \
                 while a row scoring {lowest_positive} is)",
                row + 1,
                self.score[row]
            );
        }
        Ok(lowest_positive)
    }

    /// What to call the negative class: the file's other label when there is one.
    fn negative_label(&self, positive: &str) -> String {
        match self.other_labels.as_slice() {
            [one] => one.clone(),
            _ => format!("not {positive}"),
        }
    }
}

/// A request body: the header and the rows, as CSV.
fn csv_body(header: &csv::ByteRecord, rows: &[csv::ByteRecord]) -> anyhow::Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_byte_record(header)?;
    for row in rows {
        writer.write_byte_record(row)?;
    }
    Ok(writer.into_inner().map_err(|e| e.into_error())?)
}

/// The evaluation as people read it: counts, the confusion matrix, then every metric with its
/// interval.
fn report(file: &Path, positive: &str, negative: &str, e: &Evaluation) -> String {
    let c = &e.confusion;
    let predicted_positive = format!("predicted {positive}");
    let predicted_negative = format!("predicted {negative}");
    let actual_positive = format!("actual {positive}");
    let actual_negative = format!("actual {negative}");
    let first = actual_positive.len().max(actual_negative.len());
    let (w1, w2) = (predicted_positive.len().max(8), predicted_negative.len().max(8));
    let mut out = format!(
        "Evaluation of `{}` on the live endpoint: {} rows, {} {positive}, threshold {:.6}\n\n",
        file.display(),
        e.rows,
        e.positives,
        e.threshold
    );
    out.push_str(&format!(
        "  {:first$}  {predicted_positive:>w1$}  {predicted_negative:>w2$}\n",
        ""
    ));
    out.push_str(&format!(
        "  {actual_positive:<first$}  {:>w1$}  {:>w2$}\n",
        c.tp, c.fn_
    ));
    out.push_str(&format!(
        "  {actual_negative:<first$}  {:>w1$}  {:>w2$}\n\n",
        c.fp, c.tn
    ));
    let estimates = e.estimates();
    let width = estimates
        .iter()
        .map(|(name, _)| name.as_str().len())
        .max()
        .unwrap_or(0);
    out.push_str(&format!("  {:width$}  {:>8}  95% CI\n", "metric", "value"));
    for (name, estimate) in estimates {
        out.push_str(&format!(
            "  {name:<width$}  {:>8.4}  {:.4} – {:.4}\n",
            estimate.value, estimate.ci_low, estimate.ci_high
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(rows: &[(bool, f64, bool)]) -> Scored {
        let mut s = Scored::default();
        for (actual, score, predicted) in rows {
            s.push(
                *actual,
                if *actual { "Anomaly" } else { "Normal" },
                *score,
                *predicted,
            );
        }
        s
    }

    #[test]
    fn threshold_reproduces_the_endpoint_labels() {
        let s = scored(&[
            (true, 0.9, true),
            (false, 0.2, false),
            (true, 0.61, true),
            (false, 0.6, false),
        ]);
        assert_eq!(s.threshold().unwrap(), 0.61);
        let e = metrics::evaluate(
            &s.actual,
            &s.score,
            s.threshold().unwrap(),
            &BootstrapConfig {
                resamples: 0,
                seed: 1,
            },
        );
        assert_eq!(
            (e.confusion.tp, e.confusion.fp, e.confusion.tn, e.confusion.fn_),
            (2, 0, 2, 0)
        );
    }

    #[test]
    fn no_positive_label_puts_the_threshold_above_every_score() {
        let s = scored(&[(true, 0.4, false), (false, 0.1, false)]);
        let t = s.threshold().unwrap();
        assert!(t > 0.4 && t < 0.4001, "{t}");
        let e = metrics::evaluate(
            &s.actual,
            &s.score,
            t,
            &BootstrapConfig {
                resamples: 0,
                seed: 1,
            },
        );
        assert_eq!((e.confusion.tp, e.confusion.fn_), (0, 1));
    }

    #[test]
    fn labels_that_are_not_a_threshold_are_an_error() {
        let s = scored(&[(true, 0.9, false), (false, 0.5, true)]);
        let error = s.threshold().unwrap_err().to_string();
        assert!(error.contains("row 1 scores 0.9"), "{error}");
    }

    #[test]
    fn negative_label_is_the_files_other_label() {
        assert_eq!(
            scored(&[(false, 0.1, false), (true, 0.9, true)]).negative_label("Anomaly"),
            "Normal"
        );
        assert_eq!(Scored::default().negative_label("Anomaly"), "not Anomaly");
    }

    #[test]
    fn batches_keep_the_header_and_quote_as_needed() {
        let header = csv::ByteRecord::from(vec!["a", "Label"]);
        let rows = vec![
            csv::ByteRecord::from(vec!["1", "Normal"]),
            csv::ByteRecord::from(vec!["x,y", "Anomaly"]),
        ];
        assert_eq!(
            String::from_utf8(csv_body(&header, &rows).unwrap()).unwrap(),
            "a,Label\n1,Normal\n\"x,y\",Anomaly\n"
        );
    }

    #[test]
    fn report_has_a_confusion_matrix_and_every_metric() {
        let e = metrics::evaluate(
            &[true, false, true, false],
            &[0.9, 0.1, 0.4, 0.6],
            0.5,
            &BootstrapConfig {
                resamples: 0,
                seed: 1,
            },
        );
        let text = report(Path::new("test.csv"), "Anomaly", "Normal", &e);
        assert!(
            text.contains("                  predicted Anomaly  predicted Normal\n"),
            "{text}"
        );
        assert!(
            text.contains("  actual Anomaly                  1                 1\n"),
            "{text}"
        );
        assert!(
            text.contains("  actual Normal                   1                 1\n"),
            "{text}"
        );
        for metric in ["precision", "recall", "f1", "mcc", "roc_auc", "pr_auc"] {
            assert!(
                text.lines().any(|l| l.trim_start().starts_with(metric)),
                "{metric}: {text}"
            );
        }
    }
}
