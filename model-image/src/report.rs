//! The human training report: one self-contained HTML page (no JavaScript, no external assets)
//! with, per evaluated split, a metrics table with 95% bootstrap intervals, the confusion matrix,
//! ROC and precision-recall curves and per-class score histograms, all as inline SVG; then a
//! gain feature-importance bar chart and a table of training facts. [`render`] is pure: it only
//! builds a string, and never panics on empty or degenerate input.

use std::fmt::{self, Display, Write};

use crate::metrics::{Estimate, Evaluation, pr_curve, roc_curve};

/// Everything the report shows.
#[derive(Debug, Clone)]
pub struct ReportInput<'a> {
    pub title: &'a str,
    /// Display name of the positive class (`y` true), e.g. `Anomaly`.
    pub positive_label: &'a str,
    /// Display name of the negative class, e.g. `Normal`.
    pub negative_label: &'a str,
    /// Evaluated splits in display order, e.g. `validation` then `test`.
    pub splits: Vec<SplitReport<'a>>,
    /// Gain importance per feature, in any order; the top 25 are charted.
    pub feature_importance: &'a [(String, f64)],
    /// Training facts shown as a two-column table, in order (rows, features, rounds, versions,
    /// hyperparameters, ...).
    pub facts: &'a [(String, String)],
}

/// One evaluated split: its evaluation and the labels and scores it was computed from.
#[derive(Debug, Clone)]
pub struct SplitReport<'a> {
    pub name: &'a str,
    pub evaluation: &'a Evaluation,
    /// True for the positive class.
    pub y: &'a [bool],
    /// Predicted probability of the positive class, parallel to `y`.
    pub score: &'a [f64],
}

/// Number of features in the importance chart.
pub const TOP_FEATURES: usize = 25;
/// Number of bins of the score histograms over `[0, 1]`.
pub const HISTOGRAM_BINS: usize = 40;

const POSITIVE_COLOR: &str = "#cc3311";
const NEGATIVE_COLOR: &str = "#0077bb";
const CURVE_COLOR: &str = "#223f7a";
const GRID_COLOR: &str = "#e3e6eb";
const AXIS_COLOR: &str = "#5b6270";

const CSS: &str = "\
body{margin:0;background:#f4f5f7;color:#1d2330;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:26px;margin:0 0 6px}
h2{font-size:20px;margin:36px 0 4px;padding-bottom:4px;border-bottom:2px solid #d5d9e0}
h3{font-size:14px;margin:0 0 8px;color:#3a4150}
p{margin:6px 0}
.muted{color:#5b6270}
nav a{margin-right:14px}
a{color:#1f5fbf;text-decoration:none}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:16px;margin-top:14px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:8px;padding:14px 16px}
.wide{grid-column:1/-1}
svg{display:block;width:100%;height:auto;font-family:inherit}
table{border-collapse:collapse;width:100%}
th,td{padding:4px 8px;border-bottom:1px solid #eceef2;text-align:left;vertical-align:top}
th{font-weight:600;color:#3a4150}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.ci{color:#5b6270;font-variant-numeric:tabular-nums;white-space:nowrap}
.facts td:first-child{width:32%;color:#3a4150;font-weight:600}
.facts td{word-break:break-word}
footer{margin-top:40px;color:#7a8190;font-size:12px}
";

/// Renders the report as a complete HTML document.
pub fn render(report: &ReportInput) -> String {
    let mut out = String::with_capacity(64 * 1024);
    write_report(&mut out, report).expect("writing to a String cannot fail");
    out
}

/// HTML/XML-escaped text.
struct Esc<'a>(&'a str);

impl Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '&' => f.write_str("&amp;")?,
                '<' => f.write_str("&lt;")?,
                '>' => f.write_str("&gt;")?,
                '"' => f.write_str("&quot;")?,
                '\'' => f.write_str("&#39;")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// A coordinate or length: one decimal, and `0` instead of NaN or infinities.
struct C(f64);

impl Display for C {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = if self.0.is_finite() { self.0 } else { 0.0 };
        // Avoid "-0.0".
        let v = if v.abs() < 0.05 { 0.0 } else { v };
        write!(f, "{v:.1}")
    }
}

/// A metric value for display: four decimals, `n/a` when not finite.
fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "n/a".to_string()
    }
}

/// An integer with thousands separators.
fn count(v: u64) -> String {
    let digits = v.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn percent(part: f64, whole: f64) -> String {
    if whole > 0.0 && part.is_finite() {
        format!("{:.1}%", 100.0 * part / whole)
    } else {
        "n/a".to_string()
    }
}

fn write_report(out: &mut String, r: &ReportInput) -> fmt::Result {
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n<main>\n",
        Esc(r.title)
    )?;
    writeln!(out, "<h1>{}</h1>", Esc(r.title))?;
    writeln!(
        out,
        "<p class=\"muted\">Positive class: <b>{}</b>. Negative class: <b>{}</b>. \
         A row is predicted {} when its score (the predicted probability of {}) is at least the \
         threshold. Intervals are 95% percentile-bootstrap intervals.</p>",
        Esc(r.positive_label),
        Esc(r.negative_label),
        Esc(r.positive_label),
        Esc(r.positive_label)
    )?;
    out.push_str("<nav>");
    for (i, s) in r.splits.iter().enumerate() {
        write!(out, "<a href=\"#split-{i}\">{}</a>", Esc(s.name))?;
    }
    out.push_str(
        "<a href=\"#feature-importance\">Feature importance</a>\
         <a href=\"#facts\">Training facts</a></nav>\n",
    );
    for (i, s) in r.splits.iter().enumerate() {
        write_split(out, r, i, s)?;
    }
    write_importance(out, r.feature_importance)?;
    write_facts(out, r.facts)?;
    out.push_str(
        "<footer>Generated by the model-image training job. Self-contained: no scripts, \
         no external resources.</footer>\n</main>\n</body>\n</html>\n",
    );
    Ok(())
}

fn write_split(out: &mut String, r: &ReportInput, index: usize, s: &SplitReport) -> fmt::Result {
    let e = s.evaluation;
    writeln!(out, "<section id=\"split-{index}\">")?;
    writeln!(out, "<h2>{}</h2>", Esc(s.name))?;
    writeln!(
        out,
        "<p class=\"muted\">{} rows, {} {} ({}). Threshold {}. Bootstrap: {} resamples, seed {}.</p>",
        count(e.rows as u64),
        count(e.positives as u64),
        Esc(r.positive_label),
        percent(e.positives as f64, e.rows as f64),
        num(e.threshold),
        count(e.bootstrap.resamples as u64),
        e.bootstrap.seed
    )?;
    out.push_str("<div class=\"grid\">\n");

    out.push_str("<div class=\"card\"><h3>Metrics</h3>\n");
    write_metrics_table(out, r, e)?;
    out.push_str("</div>\n");

    out.push_str("<div class=\"card\"><h3>Confusion matrix</h3>\n");
    write_confusion(out, r, e)?;
    out.push_str("</div>\n");

    // Both curves need labels and scores of equal length; fall back to the common prefix.
    let n = s.y.len().min(s.score.len());
    let (y, score) = (&s.y[..n], &s.score[..n]);

    out.push_str("<div class=\"card\"><h3>ROC curve</h3>\n");
    let fpr = 1.0 - e.recall_negative.value;
    write_curve(
        out,
        &CurveChart {
            title: format!("ROC curve, {}", s.name),
            x_label: "False-positive rate",
            y_label: "True-positive rate (recall)",
            points: &roc_curve(y, score),
            legend: format!("ROC AUC {}", with_ci(&e.roc_auc)),
            reference: Reference::Diagonal,
            operating_point: (fpr, e.recall.value),
            legend_at_bottom: true,
        },
    )?;
    out.push_str("</div>\n");

    out.push_str("<div class=\"card\"><h3>Precision-recall curve</h3>\n");
    let prevalence = if e.rows > 0 {
        e.positives as f64 / e.rows as f64
    } else {
        0.0
    };
    write_curve(
        out,
        &CurveChart {
            title: format!("Precision-recall curve of {}, {}", r.positive_label, s.name),
            x_label: "Recall",
            y_label: "Precision",
            points: &pr_curve(y, score),
            legend: format!("AP {}", with_ci(&e.pr_auc)),
            reference: Reference::Horizontal(prevalence),
            operating_point: (e.recall.value, e.precision.value),
            legend_at_bottom: true,
        },
    )?;
    out.push_str("</div>\n");

    out.push_str("<div class=\"card wide\"><h3>Score distribution by class</h3>\n");
    write_histogram(out, r, s.name, y, score, e.threshold)?;
    out.push_str("</div>\n");

    out.push_str("</div>\n</section>\n");
    Ok(())
}

fn with_ci(e: &Estimate) -> String {
    format!("{} [{}, {}]", num(e.value), num(e.ci_low), num(e.ci_high))
}

fn metric_label(name: &str, pos: &str, neg: &str) -> String {
    match name {
        "mcc" => "Matthews correlation (MCC)".to_string(),
        "roc_auc" => "ROC AUC".to_string(),
        "pr_auc" => format!("PR AUC (average precision), {pos}"),
        "pr_auc_negative" => format!("PR AUC (average precision), {neg}"),
        "f1" => format!("F1, {pos}"),
        "precision" => format!("Precision, {pos}"),
        "recall" => format!("Recall, {pos}"),
        "f1_negative" => format!("F1, {neg}"),
        "precision_negative" => format!("Precision, {neg}"),
        "recall_negative" => format!("Recall, {neg}"),
        "balanced_accuracy" => "Balanced accuracy".to_string(),
        "accuracy" => "Accuracy".to_string(),
        "log_loss" => "Log-loss (lower is better)".to_string(),
        other => other.to_string(),
    }
}

fn write_metrics_table(out: &mut String, r: &ReportInput, e: &Evaluation) -> fmt::Result {
    out.push_str("<table>\n<thead><tr><th>Metric</th><th>Value</th><th>95% CI</th></tr></thead>\n<tbody>\n");
    for (name, est) in e.estimates() {
        writeln!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"ci\">{} – {}</td></tr>",
            Esc(&metric_label(name.as_str(), r.positive_label, r.negative_label)),
            num(est.value),
            num(est.ci_low),
            num(est.ci_high)
        )?;
    }
    out.push_str("</tbody>\n</table>\n");
    Ok(())
}

fn svg_open(out: &mut String, w: f64, h: f64, title: &str) -> fmt::Result {
    writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {} {}\" role=\"img\">\
         <title>{}</title>",
        C(w),
        C(h),
        Esc(title)
    )
}

/// Linear interpolation between two `#rrggbb` colours.
fn mix(a: (u8, u8, u8), b: (u8, u8, u8), t: f64) -> String {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let ch = |x: u8, y: u8| (f64::from(x) + (f64::from(y) - f64::from(x)) * t).round() as u8;
    format!("#{:02x}{:02x}{:02x}", ch(a.0, b.0), ch(a.1, b.1), ch(a.2, b.2))
}

fn write_confusion(out: &mut String, r: &ReportInput, e: &Evaluation) -> fmt::Result {
    let c = &e.confusion;
    let (cw, ch, left, top) = (130.0, 92.0, 118.0, 58.0);
    let (w, h) = (left + 2.0 * cw + 12.0, top + 2.0 * ch + 14.0);
    svg_open(out, w, h, "Confusion matrix")?;
    let neg = Esc(r.negative_label);
    let pos = Esc(r.positive_label);
    writeln!(
        out,
        "<text x=\"{}\" y=\"16\" text-anchor=\"middle\" font-size=\"13\" fill=\"{AXIS_COLOR}\">Predicted</text>",
        C(left + cw)
    )?;
    for (j, label) in [&neg, &pos].into_iter().enumerate() {
        writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"600\">{label}</text>",
            C(left + cw * (j as f64 + 0.5)),
            C(top - 12.0)
        )?;
    }
    writeln!(
        out,
        "<text x=\"14\" y=\"{}\" text-anchor=\"middle\" font-size=\"13\" fill=\"{AXIS_COLOR}\" \
         transform=\"rotate(-90 14 {})\">Actual</text>",
        C(top + ch),
        C(top + ch)
    )?;
    // Rows: actual negative, actual positive. Columns: predicted negative, predicted positive.
    let cells = [[c.tn, c.fp], [c.fn_, c.tp]];
    let names = [
        ["true negatives", "false positives"],
        ["false negatives", "true positives"],
    ];
    for (i, (row, label)) in cells.iter().zip([&neg, &pos]).enumerate() {
        let y0 = top + ch * i as f64;
        writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"13\" font-weight=\"600\">{label}</text>",
            C(left - 10.0),
            C(y0 + ch / 2.0 + 4.0)
        )?;
        let row_total = (row[0] + row[1]) as f64;
        for (j, &v) in row.iter().enumerate() {
            let x0 = left + cw * j as f64;
            let share = if row_total > 0.0 {
                v as f64 / row_total
            } else {
                0.0
            };
            // Correct cells in blue, errors in red; intensity is the share of the actual class.
            let fill = if i == j {
                mix((0xf2, 0xf6, 0xfc), (0x1d, 0x4f, 0x91), share)
            } else {
                mix((0xfd, 0xf3, 0xef), (0xb2, 0x22, 0x22), share)
            };
            let text = if share > 0.55 { "#ffffff" } else { "#1d2330" };
            writeln!(
                out,
                "<g><title>{}: {}</title><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" \
                 fill=\"{fill}\" stroke=\"#ffffff\" stroke-width=\"2\"/>\
                 <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"20\" font-weight=\"600\" \
                 fill=\"{text}\">{}</text>\
                 <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"12\" fill=\"{text}\">{} of row</text></g>",
                names[i][j],
                count(v),
                C(x0),
                C(y0),
                C(cw),
                C(ch),
                C(x0 + cw / 2.0),
                C(y0 + ch / 2.0 + 2.0),
                count(v),
                C(x0 + cw / 2.0),
                C(y0 + ch / 2.0 + 22.0),
                percent(v as f64, row_total)
            )?;
        }
    }
    out.push_str("</svg>\n");
    Ok(())
}

/// Plot geometry: an SVG of `w` x `h` with margins, mapping data ranges to the inner box.
struct Frame {
    w: f64,
    h: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    x: (f64, f64),
    y: (f64, f64),
}

impl Frame {
    fn px(&self, x: f64) -> f64 {
        let span = self.x.1 - self.x.0;
        let t = if span > 0.0 { (x - self.x.0) / span } else { 0.0 };
        self.left + t * (self.w - self.left - self.right)
    }

    fn py(&self, y: f64) -> f64 {
        let span = self.y.1 - self.y.0;
        let t = if span > 0.0 { (y - self.y.0) / span } else { 0.0 };
        self.h - self.bottom - t * (self.h - self.top - self.bottom)
    }

    /// Grid, axes, tick labels and axis labels.
    fn axes(
        &self,
        out: &mut String,
        x_ticks: &[(f64, String)],
        y_ticks: &[(f64, String)],
        x_label: &str,
        y_label: &str,
    ) -> fmt::Result {
        let (x0, x1) = (self.px(self.x.0), self.px(self.x.1));
        let (y0, y1) = (self.py(self.y.0), self.py(self.y.1));
        for (v, label) in x_ticks {
            let x = self.px(*v);
            writeln!(
                out,
                "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{GRID_COLOR}\"/>\
                 <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\" fill=\"{AXIS_COLOR}\">{}</text>",
                C(x),
                C(y1),
                C(x),
                C(y0),
                C(x),
                C(y0 + 15.0),
                Esc(label)
            )?;
        }
        for (v, label) in y_ticks {
            let y = self.py(*v);
            writeln!(
                out,
                "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{GRID_COLOR}\"/>\
                 <text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"11\" fill=\"{AXIS_COLOR}\">{}</text>",
                C(x0),
                C(y),
                C(x1),
                C(y),
                C(x0 - 6.0),
                C(y + 4.0),
                Esc(label)
            )?;
        }
        writeln!(
            out,
            "<path d=\"M{} {}V{}H{}\" fill=\"none\" stroke=\"{AXIS_COLOR}\"/>",
            C(x0),
            C(y1),
            C(y0),
            C(x1)
        )?;
        writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"12\" fill=\"{AXIS_COLOR}\">{}</text>",
            C((x0 + x1) / 2.0),
            C(self.h - 6.0),
            Esc(x_label)
        )?;
        let (lx, ly) = (14.0, (y0 + y1) / 2.0);
        writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"12\" fill=\"{AXIS_COLOR}\" \
             transform=\"rotate(-90 {} {})\">{}</text>",
            C(lx),
            C(ly),
            C(lx),
            C(ly),
            Esc(y_label)
        )
    }

    /// A message in the middle of the plot area (for undefined charts).
    fn note(&self, out: &mut String, text: &str) -> fmt::Result {
        writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"13\" fill=\"{AXIS_COLOR}\">{}</text>",
            C((self.px(self.x.0) + self.px(self.x.1)) / 2.0),
            C((self.py(self.y.0) + self.py(self.y.1)) / 2.0),
            Esc(text)
        )
    }
}

/// Ticks 0, 0.2, ..., 1 labelled with one decimal.
fn unit_ticks() -> Vec<(f64, String)> {
    (0..=5)
        .map(|i| {
            let v = f64::from(i) / 5.0;
            (v, format!("{v:.1}"))
        })
        .collect()
}

enum Reference {
    /// The chance diagonal of a ROC plot.
    Diagonal,
    /// A horizontal line, e.g. the prevalence baseline of a PR plot.
    Horizontal(f64),
}

struct CurveChart<'a> {
    title: String,
    x_label: &'a str,
    y_label: &'a str,
    points: &'a [(f64, f64)],
    legend: String,
    reference: Reference,
    /// The metrics at the chosen threshold, marked on the curve.
    operating_point: (f64, f64),
    legend_at_bottom: bool,
}

fn write_curve(out: &mut String, c: &CurveChart) -> fmt::Result {
    let f = Frame {
        w: 380.0,
        h: 340.0,
        left: 50.0,
        right: 14.0,
        top: 12.0,
        bottom: 42.0,
        x: (0.0, 1.0),
        y: (0.0, 1.0),
    };
    svg_open(out, f.w, f.h, &c.title)?;
    f.axes(out, &unit_ticks(), &unit_ticks(), c.x_label, c.y_label)?;
    if c.points.is_empty() {
        f.note(out, "Not defined: the split has a single class.")?;
        out.push_str("</svg>\n");
        return Ok(());
    }
    match c.reference {
        Reference::Diagonal => writeln!(
            out,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#9aa1ad\" stroke-dasharray=\"4 4\"/>",
            C(f.px(0.0)),
            C(f.py(0.0)),
            C(f.px(1.0)),
            C(f.py(1.0))
        )?,
        Reference::Horizontal(v) => writeln!(
            out,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#9aa1ad\" stroke-dasharray=\"4 4\"/>",
            C(f.px(0.0)),
            C(f.py(v)),
            C(f.px(1.0)),
            C(f.py(v))
        )?,
    }
    out.push_str("<polyline fill=\"none\" stroke=\"");
    out.push_str(CURVE_COLOR);
    out.push_str("\" stroke-width=\"2\" stroke-linejoin=\"round\" points=\"");
    for (i, &(x, y)) in c.points.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write!(out, "{},{}", C(f.px(x)), C(f.py(y)))?;
    }
    out.push_str("\"/>\n");
    let (ox, oy) = c.operating_point;
    if ox.is_finite() && oy.is_finite() {
        writeln!(
            out,
            "<circle cx=\"{}\" cy=\"{}\" r=\"4.5\" fill=\"{POSITIVE_COLOR}\" stroke=\"#fff\" stroke-width=\"1.5\">\
             <title>At the threshold: ({}, {})</title></circle>",
            C(f.px(ox)),
            C(f.py(oy)),
            num(ox),
            num(oy)
        )?;
    }
    // Legend: curve with its AUC, and the operating point.
    let lx = f.px(0.0) + 12.0;
    let ly = if c.legend_at_bottom {
        f.py(0.0) - 44.0
    } else {
        f.py(1.0) + 8.0
    };
    writeln!(
        out,
        "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"38\" rx=\"4\" fill=\"#ffffff\" fill-opacity=\"0.9\" stroke=\"{GRID_COLOR}\"/>\
         <line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{CURVE_COLOR}\" stroke-width=\"2\"/>\
         <text x=\"{}\" y=\"{}\" font-size=\"11\">{}</text>\
         <circle cx=\"{}\" cy=\"{}\" r=\"4\" fill=\"{POSITIVE_COLOR}\"/>\
         <text x=\"{}\" y=\"{}\" font-size=\"11\">at the chosen threshold</text>",
        C(lx),
        C(ly),
        C(f.w - f.right - lx - 12.0),
        C(lx + 8.0),
        C(ly + 12.0),
        C(lx + 26.0),
        C(ly + 12.0),
        C(lx + 32.0),
        C(ly + 16.0),
        Esc(&c.legend),
        C(lx + 17.0),
        C(ly + 28.0),
        C(lx + 32.0),
        C(ly + 32.0)
    )?;
    out.push_str("</svg>\n");
    Ok(())
}

/// Per-class shares of rows in `HISTOGRAM_BINS` equal bins over `[0, 1]` (scores outside are
/// clamped into the end bins, NaN scores are skipped), as `(negative, positive)`.
fn histogram(y: &[bool], score: &[f64]) -> ([f64; HISTOGRAM_BINS], [f64; HISTOGRAM_BINS]) {
    let mut neg = [0u64; HISTOGRAM_BINS];
    let mut pos = [0u64; HISTOGRAM_BINS];
    for (&label, &s) in y.iter().zip(score) {
        if s.is_nan() {
            continue;
        }
        let bin = ((s.clamp(0.0, 1.0) * HISTOGRAM_BINS as f64) as usize).min(HISTOGRAM_BINS - 1);
        if label {
            pos[bin] += 1;
        } else {
            neg[bin] += 1;
        }
    }
    let share = |h: [u64; HISTOGRAM_BINS]| {
        let total: u64 = h.iter().sum();
        h.map(|v| if total > 0 { v as f64 / total as f64 } else { 0.0 })
    };
    (share(neg), share(pos))
}

fn write_histogram(
    out: &mut String,
    r: &ReportInput,
    split: &str,
    y: &[bool],
    score: &[f64],
    threshold: f64,
) -> fmt::Result {
    let (neg, pos) = histogram(y, score);
    // Log scale from the smallest non-zero share (at least 1e-6) up to 100%.
    let smallest = neg
        .iter()
        .chain(&pos)
        .copied()
        .filter(|&v| v > 0.0)
        .fold(1.0f64, f64::min);
    let decades = (-smallest.max(1e-6).log10()).ceil().max(1.0);
    let f = Frame {
        w: 760.0,
        h: 300.0,
        left: 58.0,
        right: 16.0,
        top: 30.0,
        bottom: 42.0,
        x: (0.0, 1.0),
        y: (-decades, 0.0),
    };
    svg_open(out, f.w, f.h, &format!("Score distribution by class, {split}"))?;
    let x_ticks: Vec<(f64, String)> = (0..=10)
        .map(|i| {
            let v = f64::from(i) / 10.0;
            (v, format!("{v:.1}"))
        })
        .collect();
    let y_ticks: Vec<(f64, String)> = (0..=(decades as i32))
        .map(|k| {
            let share = 10f64.powi(-k);
            let pct = 100.0 * share;
            let label = if pct >= 1.0 {
                format!("{pct:.0}%")
            } else {
                format!("{pct}%")
            };
            (-f64::from(k), label)
        })
        .collect();
    f.axes(
        out,
        &x_ticks,
        &y_ticks,
        "Predicted probability of the positive class",
        "Share of class rows (log)",
    )?;
    if y.is_empty() || score.is_empty() {
        f.note(out, "No rows.")?;
    }
    let bin_w = 1.0 / HISTOGRAM_BINS as f64;
    for (shares, color, label) in [
        (&neg, NEGATIVE_COLOR, r.negative_label),
        (&pos, POSITIVE_COLOR, r.positive_label),
    ] {
        writeln!(out, "<g fill=\"{color}\" fill-opacity=\"0.5\">")?;
        for (b, &v) in shares.iter().enumerate() {
            if v <= 0.0 {
                continue;
            }
            let lo = b as f64 * bin_w;
            let x0 = f.px(lo) + 0.5;
            let x1 = f.px(lo + bin_w) - 0.5;
            let top = f.py(v.log10().max(-decades));
            let base = f.py(-decades);
            writeln!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"><title>{}, scores {:.3}–{:.3}: {}</title></rect>",
                C(x0),
                C(top),
                C((x1 - x0).max(0.0)),
                C((base - top).max(0.0)),
                Esc(label),
                lo,
                lo + bin_w,
                percent(v, 1.0)
            )?;
        }
        out.push_str("</g>\n");
    }
    if threshold.is_finite() {
        let x = f.px(threshold.clamp(0.0, 1.0));
        writeln!(
            out,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#1d2330\" stroke-dasharray=\"5 3\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"11\">threshold {}</text>",
            C(x),
            C(f.py(0.0)),
            C(x),
            C(f.py(-decades)),
            C(x.clamp(f.left + 40.0, f.w - f.right - 40.0)),
            C(f.top - 8.0),
            num(threshold)
        )?;
    }
    // Legend, top right.
    let lx = f.w - f.right - 190.0;
    writeln!(
        out,
        "<rect x=\"{}\" y=\"{}\" width=\"180\" height=\"44\" rx=\"4\" fill=\"#ffffff\" \
         fill-opacity=\"0.85\" stroke=\"{GRID_COLOR}\"/>",
        C(lx - 8.0),
        C(f.top + 2.0)
    )?;
    for (i, (color, label)) in [
        (NEGATIVE_COLOR, r.negative_label),
        (POSITIVE_COLOR, r.positive_label),
    ]
    .into_iter()
    .enumerate()
    {
        let ly = f.top + 8.0 + 18.0 * i as f64;
        writeln!(
            out,
            "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{color}\" fill-opacity=\"0.5\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"11\">{}</text>",
            C(lx),
            C(ly),
            C(lx + 18.0),
            C(ly + 10.0),
            Esc(label)
        )?;
    }
    out.push_str("</svg>\n");
    Ok(())
}

/// Shortens long labels for the chart (the full name stays in the tooltip).
fn shorten(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max_chars - 1).collect();
        t.push('…');
        t
    }
}

fn write_importance(out: &mut String, importance: &[(String, f64)]) -> fmt::Result {
    out.push_str("<section id=\"feature-importance\">\n<h2>Feature importance</h2>\n");
    let mut items: Vec<(&str, f64)> = importance
        .iter()
        .map(|(name, gain)| {
            let g = if gain.is_finite() { gain.max(0.0) } else { 0.0 };
            (name.as_str(), g)
        })
        .collect();
    let total: f64 = items.iter().map(|(_, g)| g).sum();
    items.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    items.truncate(TOP_FEATURES);
    if items.is_empty() {
        out.push_str("<p class=\"muted\">No feature importance was recorded.</p>\n</section>\n");
        return Ok(());
    }
    writeln!(
        out,
        "<p class=\"muted\">Top {} of {} features by total split gain; labels show each \
         feature's share of the total gain.</p>\n<div class=\"card\">",
        items.len(),
        importance.len()
    )?;
    let max = items.iter().map(|(_, g)| *g).fold(0.0, f64::max);
    let (left, right, row_h, top) = (230.0, 80.0, 22.0, 8.0);
    let w = 900.0;
    let h = top * 2.0 + row_h * items.len() as f64;
    svg_open(out, w, h, "Feature importance (gain)")?;
    for (i, (name, gain)) in items.iter().enumerate() {
        let y = top + row_h * i as f64;
        let len = if max > 0.0 {
            (w - left - right) * gain / max
        } else {
            0.0
        };
        writeln!(
            out,
            "<g><title>{}: gain {:.4e} ({})</title>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"12\">{}</text>\
             <rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"2\" fill=\"{CURVE_COLOR}\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"{AXIS_COLOR}\">{}</text></g>",
            Esc(name),
            gain,
            percent(*gain, total),
            C(left - 8.0),
            C(y + row_h / 2.0 + 4.0),
            Esc(&shorten(name, 34)),
            C(left),
            C(y + 3.0),
            C(len.max(0.0)),
            C(row_h - 6.0),
            C(left + len.max(0.0) + 6.0),
            C(y + row_h / 2.0 + 4.0),
            percent(*gain, total)
        )?;
    }
    out.push_str("</svg>\n</div>\n</section>\n");
    Ok(())
}

fn write_facts(out: &mut String, facts: &[(String, String)]) -> fmt::Result {
    out.push_str("<section id=\"facts\">\n<h2>Training facts</h2>\n");
    if facts.is_empty() {
        out.push_str("<p class=\"muted\">No training facts were recorded.</p>\n</section>\n");
        return Ok(());
    }
    out.push_str("<div class=\"card\"><table class=\"facts\">\n<tbody>\n");
    for (k, v) in facts {
        writeln!(out, "<tr><td>{}</td><td>{}</td></tr>", Esc(k), Esc(v))?;
    }
    out.push_str("</tbody>\n</table>\n</div>\n</section>\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{BootstrapConfig, ThresholdRule, choose_threshold, evaluate};

    fn data(n: usize) -> (Vec<bool>, Vec<f64>) {
        // Deterministic, imbalanced, overlapping classes.
        let y: Vec<bool> = (0..n).map(|i| i % 7 == 0 || i % 11 == 0).collect();
        let score = y
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let jitter = ((i * 7919) % 1000) as f64 / 1000.0;
                if p {
                    0.3 + 0.7 * jitter
                } else {
                    0.75 * jitter * jitter
                }
            })
            .collect();
        (y, score)
    }

    /// Every number in the SVG coordinate attributes parses and is finite.
    fn assert_no_bad_numbers(html: &str) {
        assert!(!html.contains("NaN"), "NaN in output");
        for attr in [" x=\"", " y=\"", " width=\"", " height=\"", " cx=\"", " cy=\""] {
            for part in html.split(attr).skip(1) {
                let v = &part[..part.find('"').expect("closed attribute")];
                let parsed: f64 = v.parse().unwrap_or_else(|_| panic!("bad number {attr}{v}"));
                assert!(parsed.is_finite());
            }
        }
        for part in html.split("points=\"").skip(1) {
            let v = &part[..part.find('"').expect("closed attribute")];
            for xy in v.split(' ') {
                for c in xy.split(',') {
                    assert!(c.parse::<f64>().is_ok_and(f64::is_finite), "bad point {xy}");
                }
            }
        }
    }

    #[test]
    fn renders_a_full_report() {
        let (y, s) = data(3000);
        let cfg = BootstrapConfig {
            resamples: 50,
            seed: 1,
        };
        let t = choose_threshold(&y, &s, ThresholdRule::MaxF1);
        let validation = evaluate(&y, &s, t, &cfg);
        let (y2, s2) = data(1000);
        let test = evaluate(&y2, &s2, t, &cfg);
        let importance: Vec<(String, f64)> = (0..40)
            .map(|i| (format!("Feature_{i}"), f64::from(i * i)))
            .chain([("Flow<Byts>&\"s'".to_string(), 5000.0)])
            .collect();
        let facts = vec![
            ("rows".to_string(), "3,000".to_string()),
            ("objective".to_string(), "binary <logloss> & \"more\"".to_string()),
        ];
        let html = render(&ReportInput {
            title: "IoT <intrusion> report",
            positive_label: "Anomaly",
            negative_label: "Normal",
            splits: vec![
                SplitReport {
                    name: "validation",
                    evaluation: &validation,
                    y: &y,
                    score: &s,
                },
                SplitReport {
                    name: "test",
                    evaluation: &test,
                    y: &y2,
                    score: &s2,
                },
            ],
            feature_importance: &importance,
            facts: &facts,
        });
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.trim_end().ends_with("</html>"));
        assert!(html.contains("<svg"));
        // Two splits x (confusion, ROC, PR, histogram) + importance.
        assert_eq!(html.matches("<svg").count(), 9);
        assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
        assert!(html.contains("<h2>validation</h2>") && html.contains("<h2>test</h2>"));
        assert!(html.contains("IoT &lt;intrusion&gt; report"));
        assert!(html.contains("Flow&lt;Byts&gt;&amp;&quot;s&#39;"));
        assert!(html.contains("binary &lt;logloss&gt; &amp; &quot;more&quot;"));
        assert!(!html.contains("<intrusion>") && !html.contains("<logloss>"));
        assert!(html.contains("ROC AUC"));
        assert!(html.contains("Feature_39"));
        // Only the top 25 of 41 features are charted: the smallest gains are left out.
        assert!(!html.contains(">Feature_3<"));
        assert!(!html.contains("<script"));
        // Self-contained: no external resources (only the SVG namespace URI).
        assert!(!html.contains("src=") && !html.contains("href=\"http"));
        assert_no_bad_numbers(&html);
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let cfg = BootstrapConfig {
            resamples: 20,
            seed: 1,
        };
        let empty = evaluate(&[], &[], 0.5, &cfg);
        let one_class = evaluate(&[false; 5], &[0.1, 0.2, 0.2, 0.9, 0.0], 0.5, &cfg);
        let all_pos = evaluate(&[true; 3], &[1.0, 1.0, 1.0], 0.5, &cfg);
        let weird_scores = [f64::NAN, f64::INFINITY, -3.0, 0.5];
        let weird = evaluate(&[true, false, true, false], &weird_scores, f64::NAN, &cfg);
        let importance = vec![
            ("a".to_string(), f64::NAN),
            ("b".to_string(), 0.0),
            (String::new(), f64::INFINITY),
        ];
        let html = render(&ReportInput {
            title: "",
            positive_label: "",
            negative_label: "",
            splits: vec![
                SplitReport {
                    name: "empty",
                    evaluation: &empty,
                    y: &[],
                    score: &[],
                },
                SplitReport {
                    name: "one class",
                    evaluation: &one_class,
                    y: &[false; 5],
                    score: &[0.1, 0.2, 0.2, 0.9, 0.0],
                },
                SplitReport {
                    name: "all positive",
                    evaluation: &all_pos,
                    y: &[true; 3],
                    score: &[1.0, 1.0, 1.0],
                },
                SplitReport {
                    name: "weird",
                    evaluation: &weird,
                    y: &[true, false, true, false],
                    score: &weird_scores,
                },
                SplitReport {
                    name: "mismatched lengths",
                    evaluation: &weird,
                    y: &[true, false],
                    score: &[0.2],
                },
            ],
            feature_importance: &importance,
            facts: &[],
        });
        assert!(html.contains("Not defined"));
        assert!(html.contains("No training facts"));
        assert_no_bad_numbers(&html);

        let html = render(&ReportInput {
            title: "nothing",
            positive_label: "Anomaly",
            negative_label: "Normal",
            splits: Vec::new(),
            feature_importance: &[],
            facts: &[],
        });
        assert!(html.contains("No feature importance"));
        assert!(!html.contains("<svg"));
    }

    #[test]
    fn helpers() {
        assert_eq!(Esc("a<b>&\"c'").to_string(), "a&lt;b&gt;&amp;&quot;c&#39;");
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(125_000), "125,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(C(f64::NAN).to_string(), "0.0");
        assert_eq!(C(-0.01).to_string(), "0.0");
        assert_eq!(C(12.345).to_string(), "12.3");
        assert_eq!(mix((0, 0, 0), (255, 255, 255), 0.5), "#808080");
        assert_eq!(shorten("abcdef", 4), "abc…");
        let (neg, pos) = histogram(&[true, false, false, true], &[1.0, 0.0, 0.024, 2.0]);
        assert_eq!(pos[HISTOGRAM_BINS - 1], 1.0);
        assert_eq!(neg[0], 1.0);
    }
}
