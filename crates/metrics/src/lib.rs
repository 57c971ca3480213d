//! Held-out binary classification metrics with 95% percentile-bootstrap confidence intervals.
//!
//! Everything here is pure computation on two parallel slices: `y` (true = positive class, here
//! `Anomaly`) and `score` (the predicted probability of the positive class). The module chooses a
//! decision threshold ([`choose_threshold`]), evaluates a model at that threshold ([`evaluate`]),
//! produces plot-ready curves ([`roc_curve`], [`pr_curve`]) and formats metrics as SageMaker
//! `MetricDefinitions`-friendly log lines ([`Evaluation::metric_lines`]).
//!
//! # Conventions
//!
//! * A row is predicted positive when `score >= threshold`. Rows with equal scores always fall on
//!   the same side of a threshold; curves and AUCs treat equal scores as one step, like
//!   scikit-learn.
//! * Undefined ratios follow scikit-learn's `zero_division=0`: precision with no predicted
//!   positives, recall with no actual positives, F1 when `2tp + fp + fn = 0`, MCC when any
//!   marginal is zero, accuracy and log-loss on zero rows are all `0.0`. Balanced accuracy is the
//!   mean recall over the classes present in `y` (scikit-learn's behaviour), `0.0` if none is.
//! * ROC-AUC counts tied positive/negative pairs as one half. It is undefined with one class; the
//!   point value is then `0.5` (chance). Average precision (`pr_auc`) is scikit-learn's step-wise
//!   `average_precision_score`; it is `0.0` with no positives (as scikit-learn returns), and
//!   likewise `pr_auc_negative` is `0.0` with no negatives.
//!   `pr_auc_negative` is the average precision of the negative class ranked by `1 - score`
//!   (ties are the ties of `score`).
//! * Log-loss clips probabilities to `[1e-15, 1 - 1e-15]` and uses the natural logarithm.
//! * NaN scores are treated as `0.0`. Scores are expected in `[0, 1]`; others are only clipped for
//!   the log-loss.
//! * Confidence intervals are 95% percentile-bootstrap intervals (2.5th and 97.5th percentile,
//!   linear interpolation between order statistics as numpy's default). Each resample draws `n`
//!   rows with replacement; resample `i` uses stream `i` of a `ChaCha8Rng` seeded with the
//!   configured seed, so results are deterministic for a given seed and input order whatever the
//!   number of threads. Resamples in which an AUC is undefined (a single class present) are
//!   left out of that AUC's interval; if none remains, or with zero resamples, the interval
//!   collapses to the point value. No value is ever NaN.
//!
//! # Cost
//!
//! The rows are sorted once by score. A resample is a vector of per-row multiplicities; every
//! metric of a resample is then computed in one O(n) pass over the sorted rows plus two passes
//! over the tie blocks, so `evaluate` costs O(n log n + resamples * n). Resamples are spread over
//! the available cores (`std::thread::scope`); on one core, 125,000 rows x 1,000 resamples take
//! about one to two seconds (see the ignored `bootstrap_speed` test).

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Probabilities are clipped to `[LOG_LOSS_EPS, 1 - LOG_LOSS_EPS]` before taking logarithms.
pub const LOG_LOSS_EPS: f64 = 1e-15;

/// The most points [`roc_curve`] and [`pr_curve`] return (plus at most one).
pub const MAX_CURVE_POINTS: usize = 500;

/// How [`choose_threshold`] picks the decision threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThresholdRule {
    /// Maximise the F1 score of the positive class.
    MaxF1,
    /// The lowest threshold whose false-positive rate is at most this value (in `[0, 1]`), so that
    /// recall is maximal under the constraint.
    TargetFpr(f64),
}

/// Bootstrap settings for [`evaluate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapConfig {
    /// Number of resamples; 0 disables the bootstrap (intervals collapse to the point value).
    pub resamples: usize,
    /// Seed of the `ChaCha8Rng` that draws the resamples.
    pub seed: u64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        Self {
            resamples: 1000,
            seed: 42,
        }
    }
}

/// Counts of the confusion matrix at the evaluated threshold (positive = `y` true).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Confusion {
    /// Positives predicted positive.
    pub tp: u64,
    /// Negatives predicted positive.
    pub fp: u64,
    /// Negatives predicted negative.
    pub tn: u64,
    /// Positives predicted negative (serialized as `"fn"`).
    #[serde(rename = "fn")]
    pub fn_: u64,
}

/// A point estimate on the full data with its 95% percentile-bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Estimate {
    pub value: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

/// The evaluation of a scored split at one threshold. See the module docs for conventions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Number of rows evaluated.
    pub rows: usize,
    /// Number of positive rows.
    pub positives: usize,
    /// The threshold: a row is predicted positive when `score >= threshold`.
    pub threshold: f64,
    /// The bootstrap that produced the intervals.
    pub bootstrap: BootstrapConfig,
    pub confusion: Confusion,
    pub precision: Estimate,
    pub recall: Estimate,
    pub f1: Estimate,
    pub precision_negative: Estimate,
    pub recall_negative: Estimate,
    pub f1_negative: Estimate,
    pub roc_auc: Estimate,
    /// Average precision of the positive class.
    pub pr_auc: Estimate,
    /// Average precision of the negative class, ranked by `1 - score`.
    pub pr_auc_negative: Estimate,
    pub mcc: Estimate,
    pub balanced_accuracy: Estimate,
    pub accuracy: Estimate,
    pub log_loss: Estimate,
}

/// Every metric an [`Evaluation`] reports, in the order of [`Evaluation::estimates`]. Their names
/// ([`Metric::as_str`]) are what `metrics.json`, the `{split}:{name}=` log lines, SageMaker's
/// metric definitions and the quality gate use: they must stay stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Mcc,
    RocAuc,
    PrAuc,
    PrAucNegative,
    F1,
    Precision,
    Recall,
    F1Negative,
    PrecisionNegative,
    RecallNegative,
    BalancedAccuracy,
    Accuracy,
    LogLoss,
}

impl Metric {
    /// Every metric, in [`Evaluation::estimates`] order.
    pub const ALL: [Metric; METRIC_COUNT] = [
        Metric::Mcc,
        Metric::RocAuc,
        Metric::PrAuc,
        Metric::PrAucNegative,
        Metric::F1,
        Metric::Precision,
        Metric::Recall,
        Metric::F1Negative,
        Metric::PrecisionNegative,
        Metric::RecallNegative,
        Metric::BalancedAccuracy,
        Metric::Accuracy,
        Metric::LogLoss,
    ];

    /// The metric's stable name (`pr_auc`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Metric::Mcc => "mcc",
            Metric::RocAuc => "roc_auc",
            Metric::PrAuc => "pr_auc",
            Metric::PrAucNegative => "pr_auc_negative",
            Metric::F1 => "f1",
            Metric::Precision => "precision",
            Metric::Recall => "recall",
            Metric::F1Negative => "f1_negative",
            Metric::PrecisionNegative => "precision_negative",
            Metric::RecallNegative => "recall_negative",
            Metric::BalancedAccuracy => "balanced_accuracy",
            Metric::Accuracy => "accuracy",
            Metric::LogLoss => "log_loss",
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, not `write_str`: tables align metric names with `{:<width$}`.
        f.pad(self.as_str())
    }
}

const METRIC_COUNT: usize = 13;
// Indices into a metric vector, in Metric::ALL order.
const MCC: usize = 0;
const ROC_AUC: usize = 1;
const PR_AUC: usize = 2;
const PR_AUC_NEG: usize = 3;
const F1: usize = 4;
const PRECISION: usize = 5;
const RECALL: usize = 6;
const F1_NEG: usize = 7;
const PRECISION_NEG: usize = 8;
const RECALL_NEG: usize = 9;
const BALANCED_ACCURACY: usize = 10;
const ACCURACY: usize = 11;
const LOG_LOSS: usize = 12;

impl Evaluation {
    /// Every metric with its estimate, in [`Metric::ALL`] order.
    pub fn estimates(&self) -> [(Metric, &Estimate); METRIC_COUNT] {
        let e = [
            &self.mcc,
            &self.roc_auc,
            &self.pr_auc,
            &self.pr_auc_negative,
            &self.f1,
            &self.precision,
            &self.recall,
            &self.f1_negative,
            &self.precision_negative,
            &self.recall_negative,
            &self.balanced_accuracy,
            &self.accuracy,
            &self.log_loss,
        ];
        std::array::from_fn(|i| (Metric::ALL[i], e[i]))
    }

    /// Log lines for SageMaker `MetricDefinitions`, one value per line, six decimals:
    /// `{split}:threshold=…`, then for every metric `{split}:{name}=…`, `{split}:{name}_ci_low=…`
    /// and `{split}:{name}_ci_high=…` (e.g. `validation:mcc=0.984100`). Values can be negative
    /// (MCC), so regexes should accept a leading `-`, e.g. `validation:mcc=(-?[0-9.]+)`.
    pub fn metric_lines(&self, split: &str) -> Vec<String> {
        let mut lines = Vec::with_capacity(1 + 3 * METRIC_COUNT);
        lines.push(format!("{split}:threshold={:.6}", self.threshold));
        for (name, e) in self.estimates() {
            lines.push(format!("{split}:{name}={:.6}", e.value));
            lines.push(format!("{split}:{name}_ci_low={:.6}", e.ci_low));
            lines.push(format!("{split}:{name}_ci_high={:.6}", e.ci_high));
        }
        lines
    }
}

/// Rows sorted by descending score and grouped into blocks of equal score.
struct Ranked {
    /// `u32::MAX` for a positive row, 0 for a negative one (a mask for the row's multiplicity),
    /// in descending score order.
    pos_mask: Vec<u32>,
    /// True for the last row of each tie block.
    block_end: Vec<bool>,
    /// The score of each block, descending.
    block_score: Vec<f64>,
    /// The log-loss term of a positive and of a negative row of each block.
    block_log_loss: Vec<(f64, f64)>,
    /// Rows and positives per block (unit weights).
    block_rows: Vec<u64>,
    block_pos: Vec<u64>,
}

fn clean(s: f64) -> f64 {
    // NaN -> 0.0, and -0.0 -> 0.0 so that it ties with 0.0.
    if s.is_nan() { 0.0 } else { s + 0.0 }
}

impl Ranked {
    fn new(y: &[bool], score: &[f64]) -> Self {
        assert_eq!(y.len(), score.len(), "y and score must have the same length");
        let n = y.len();
        assert!(u32::try_from(n).is_ok(), "at most u32::MAX rows");
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| clean(score[b]).total_cmp(&clean(score[a])));
        let mut pos_mask = Vec::with_capacity(n);
        let mut block_end = vec![false; n];
        let mut block_score = Vec::new();
        let mut block_log_loss = Vec::new();
        let mut block_rows = Vec::new();
        let mut block_pos = Vec::new();
        for (k, &i) in order.iter().enumerate() {
            let s = clean(score[i]);
            pos_mask.push(if y[i] { u32::MAX } else { 0 });
            if block_score.last() != Some(&s) {
                if k > 0 {
                    block_end[k - 1] = true;
                }
                let p = s.clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS);
                block_score.push(s);
                block_log_loss.push((-p.ln(), -(1.0 - p).ln()));
                block_rows.push(0);
                block_pos.push(0);
            }
            *block_rows.last_mut().expect("a block was pushed") += 1;
            *block_pos.last_mut().expect("a block was pushed") += u64::from(y[i]);
        }
        if n > 0 {
            block_end[n - 1] = true;
        }
        Self {
            pos_mask,
            block_end,
            block_score,
            block_log_loss,
            block_rows,
            block_pos,
        }
    }

    fn rows(&self) -> usize {
        self.pos_mask.len()
    }

    /// Number of leading blocks predicted positive at `threshold`.
    fn blocks_above(&self, threshold: f64) -> usize {
        self.block_score.partition_point(|&s| s >= threshold)
    }
}

/// Sufficient statistics of one (possibly weighted) pass.
#[derive(Default)]
struct Pass {
    tp: f64,
    fp: f64,
    pos: f64,
    neg: f64,
    /// Sum over negatives of (positives ranked strictly above + half the tied positives).
    auc_pairs: f64,
    /// Sum over blocks of (positives in the block) * (precision down to the block).
    ap_sum: f64,
    /// The same for the negative class, walking the blocks by ascending score.
    ap_neg_sum: f64,
    log_loss_sum: f64,
}

/// One pass over the ranked rows with per-row multiplicities `counts` (in ranked order).
/// The first `cut_blocks` blocks are predicted positive. `blocks` is scratch space.
///
/// The row loop only sums multiplicities per tie block; everything else works on blocks, without
/// data-dependent branches.
fn weighted_pass(r: &Ranked, counts: &[u32], cut_blocks: usize, blocks: &mut Vec<(f64, f64)>) -> Pass {
    blocks.clear();
    let (mut tp_b, mut all_b) = (0u32, 0u32);
    for ((&c, &mask), &end) in counts.iter().zip(&r.pos_mask).zip(&r.block_end) {
        tp_b += c & mask;
        all_b += c;
        if end {
            blocks.push((f64::from(tp_b), f64::from(all_b - tp_b)));
            tp_b = 0;
            all_b = 0;
        }
    }
    let (mut tp_cum, mut fp_cum) = (0.0f64, 0.0f64);
    let (mut cut_tp, mut cut_fp) = (0.0, 0.0);
    let (mut auc2, mut ap, mut ll) = (0.0, 0.0, 0.0);
    for (b, (&(tp_b, fp_b), &(ll_pos, ll_neg))) in blocks.iter().zip(&r.block_log_loss).enumerate() {
        // Negatives of this block beat the positives above and tie with those of the block.
        auc2 += fp_b * (2.0 * tp_cum + tp_b);
        tp_cum += tp_b;
        fp_cum += fp_b;
        // An empty prefix has tp_b = 0, so the clamped denominator only avoids 0/0.
        ap += tp_b * tp_cum / (tp_cum + fp_cum).max(1.0);
        ll += tp_b * ll_pos + fp_b * ll_neg;
        if b < cut_blocks {
            (cut_tp, cut_fp) = (tp_cum, fp_cum);
        }
    }
    // Negative class ranked by 1 - score: walk the blocks backwards.
    let (mut neg_cum, mut all_cum) = (0.0f64, 0.0f64);
    let mut ap_neg = 0.0;
    for &(tp_b, fp_b) in blocks.iter().rev() {
        neg_cum += fp_b;
        all_cum += tp_b + fp_b;
        ap_neg += fp_b * neg_cum / all_cum.max(1.0);
    }
    Pass {
        tp: cut_tp,
        fp: cut_fp,
        pos: tp_cum,
        neg: fp_cum,
        auc_pairs: auc2 / 2.0,
        ap_sum: ap,
        ap_neg_sum: ap_neg,
        log_loss_sum: ll,
    }
}

/// Fills `counts` with the multiplicities of a bootstrap resample: `counts.len()` draws with
/// replacement. Uses both halves of each 64-bit output with Lemire's unbiased multiply-and-reject
/// mapping, which halves the random bytes needed compared with one draw per output.
fn draw_counts(rng: &mut ChaCha8Rng, counts: &mut [u32]) {
    counts.fill(0);
    let n = counts.len();
    if n == 0 {
        return;
    }
    let n32 = u32::try_from(n).expect("at most u32::MAX rows");
    // 2^32 mod n: low products below it would over-represent some indices.
    let reject_below = n32.wrapping_neg() % n32;
    let mut remaining = n;
    while remaining > 0 {
        let bits = rng.next_u64();
        for x in [bits as u32, (bits >> 32) as u32] {
            let m = u64::from(x) * u64::from(n32);
            if remaining > 0 && (m as u32) >= reject_below {
                counts[(m >> 32) as usize] += 1;
                remaining -= 1;
            }
        }
    }
}

/// The generator of resample `index`: its own ChaCha stream of `seed`, so that results do not
/// depend on how resamples are spread over threads.
fn resample_rng(seed: u64, index: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index as u64);
    rng
}

fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 { num / den } else { 0.0 }
}

/// Metric values of a pass, in Metric::ALL order; `None` where an AUC is undefined.
fn metrics_of(p: &Pass) -> [Option<f64>; METRIC_COUNT] {
    let (tp, fp) = (p.tp, p.fp);
    let fn_ = p.pos - tp;
    let tn = p.neg - fp;
    let total = p.pos + p.neg;
    let recall = ratio(tp, p.pos);
    let recall_neg = ratio(tn, p.neg);
    let mut m = [None; METRIC_COUNT];
    m[PRECISION] = Some(ratio(tp, tp + fp));
    m[RECALL] = Some(recall);
    m[F1] = Some(ratio(2.0 * tp, 2.0 * tp + fp + fn_));
    m[PRECISION_NEG] = Some(ratio(tn, tn + fn_));
    m[RECALL_NEG] = Some(recall_neg);
    m[F1_NEG] = Some(ratio(2.0 * tn, 2.0 * tn + fn_ + fp));
    m[ACCURACY] = Some(ratio(tp + tn, total));
    let classes = f64::from(u8::from(p.pos > 0.0) + u8::from(p.neg > 0.0));
    m[BALANCED_ACCURACY] = Some(ratio(recall + recall_neg, classes));
    let den = (tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_);
    m[MCC] = Some(if den > 0.0 {
        ((tp * tn - fp * fn_) / den.sqrt()).clamp(-1.0, 1.0)
    } else {
        0.0
    });
    m[LOG_LOSS] = Some(ratio(p.log_loss_sum, total));
    m[ROC_AUC] = (p.pos > 0.0 && p.neg > 0.0).then(|| p.auc_pairs / (p.pos * p.neg));
    m[PR_AUC] = (p.pos > 0.0).then(|| p.ap_sum / p.pos);
    m[PR_AUC_NEG] = (p.neg > 0.0).then(|| p.ap_neg_sum / p.neg);
    m
}

/// The `q`-quantile of sorted values, linear interpolation between order statistics.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Metric values of every resample, in resample order, computed on up to `threads` threads.
/// The result does not depend on `threads`.
fn bootstrap(
    r: &Ranked,
    cut_blocks: usize,
    cfg: &BootstrapConfig,
    threads: usize,
) -> Vec<[Option<f64>; METRIC_COUNT]> {
    let n = r.rows();
    if n == 0 || cfg.resamples == 0 {
        return Vec::new();
    }
    let run = |range: std::ops::Range<usize>| {
        let mut counts = vec![0; n];
        let mut blocks = Vec::with_capacity(r.block_score.len());
        range
            .map(|i| {
                draw_counts(&mut resample_rng(cfg.seed, i), &mut counts);
                metrics_of(&weighted_pass(r, &counts, cut_blocks, &mut blocks))
            })
            .collect::<Vec<_>>()
    };
    let threads = threads.clamp(1, cfg.resamples);
    if threads == 1 {
        return run(0..cfg.resamples);
    }
    let chunk = cfg.resamples.div_ceil(threads);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let run = &run;
                let range = (t * chunk).min(cfg.resamples)..((t + 1) * chunk).min(cfg.resamples);
                s.spawn(move || run(range))
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a bootstrap worker panicked"))
            .collect()
    })
}

/// Whether a log line is one of [`Evaluation::metric_lines`] (`validation:pr_auc=0.991000`,
/// `test:mcc_ci_low=0.970000`, `validation:threshold=0.500000`): the lines a log viewer may fold.
pub fn is_metric_line(line: &str) -> bool {
    let Some((split, assignment)) = line.trim().split_once(':') else {
        return false;
    };
    let Some((name, value)) = assignment.split_once('=') else {
        return false;
    };
    let metric = name
        .strip_suffix("_ci_low")
        .or_else(|| name.strip_suffix("_ci_high"))
        .unwrap_or(name);
    let known = metric == "threshold" || Metric::ALL.iter().any(|m| m.as_str() == metric);
    !split.is_empty()
        && split.bytes().all(|b| b.is_ascii_lowercase())
        && known
        && value.parse::<f64>().is_ok()
}

/// Evaluates scores at `threshold` (predict positive when `score >= threshold`) with bootstrap
/// confidence intervals. See the module docs for the conventions on undefined values.
///
/// # Panics
/// If `y` and `score` have different lengths, or with more than `u32::MAX` rows.
pub fn evaluate(y: &[bool], score: &[f64], threshold: f64, cfg: &BootstrapConfig) -> Evaluation {
    let r = Ranked::new(y, score);
    let n = r.rows();
    let cut_blocks = r.blocks_above(threshold);
    let full = weighted_pass(&r, &vec![1; n], cut_blocks, &mut Vec::new());
    let point = metrics_of(&full);
    let value = |k: usize| {
        point[k].unwrap_or(match k {
            ROC_AUC => 0.5,
            _ => 0.0,
        })
    };

    let mut samples: Vec<Vec<f64>> = (0..METRIC_COUNT)
        .map(|_| Vec::with_capacity(cfg.resamples))
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    for m in bootstrap(&r, cut_blocks, cfg, threads) {
        for (k, v) in m.into_iter().enumerate() {
            if let Some(v) = v {
                samples[k].push(v);
            }
        }
    }
    let est: [Estimate; METRIC_COUNT] = std::array::from_fn(|k| {
        let v = value(k);
        let s = &mut samples[k];
        if s.is_empty() {
            return Estimate {
                value: v,
                ci_low: v,
                ci_high: v,
            };
        }
        s.sort_by(f64::total_cmp);
        Estimate {
            value: v,
            ci_low: quantile(s, 0.025),
            ci_high: quantile(s, 0.975),
        }
    });

    Evaluation {
        rows: n,
        positives: full.pos as usize,
        threshold,
        bootstrap: *cfg,
        confusion: Confusion {
            tp: full.tp as u64,
            fp: full.fp as u64,
            tn: (full.neg - full.fp) as u64,
            fn_: (full.pos - full.tp) as u64,
        },
        precision: est[PRECISION],
        recall: est[RECALL],
        f1: est[F1],
        precision_negative: est[PRECISION_NEG],
        recall_negative: est[RECALL_NEG],
        f1_negative: est[F1_NEG],
        roc_auc: est[ROC_AUC],
        pr_auc: est[PR_AUC],
        pr_auc_negative: est[PR_AUC_NEG],
        mcc: est[MCC],
        balanced_accuracy: est[BALANCED_ACCURACY],
        accuracy: est[ACCURACY],
        log_loss: est[LOG_LOSS],
    }
}

/// A threshold that puts exactly the first `k` blocks (`1 <= k`) on the positive side: the
/// midpoint between the lowest included score and the next lower score, or the lowest included
/// score itself when every block is included or the midpoint is not representable strictly
/// between them. With `k == 0` (nothing positive) it is the next float above the highest score.
fn threshold_after(r: &Ranked, k: usize) -> f64 {
    let s = &r.block_score;
    if k == 0 {
        return s[0].next_up();
    }
    let hi = s[k - 1];
    match s.get(k) {
        Some(&lo) => {
            let mid = lo + (hi - lo) / 2.0;
            if mid > lo && mid <= hi { mid } else { hi }
        }
        None => hi,
    }
}

/// Chooses a decision threshold (predict positive when `score >= threshold`) by `rule`.
///
/// Only cut points between distinct scores are considered, so tied rows always fall on the same
/// side. The returned value is the midpoint between the lowest score predicted positive and the
/// next lower distinct score (the lowest score itself when all rows are predicted positive).
/// `MaxF1` breaks ties in F1 towards the higher threshold. `TargetFpr` returns a value just above
/// the highest score when even the top block exceeds the target. Degenerate input (empty, or a
/// single class) gives `0.5`.
///
/// # Panics
/// If `y` and `score` have different lengths, or with more than `u32::MAX` rows.
pub fn choose_threshold(y: &[bool], score: &[f64], rule: ThresholdRule) -> f64 {
    let r = Ranked::new(y, score);
    let pos: u64 = r.block_pos.iter().sum();
    let neg = r.rows() as u64 - pos;
    if pos == 0 || neg == 0 {
        return 0.5;
    }
    let (mut tp, mut all) = (0u64, 0u64);
    match rule {
        ThresholdRule::MaxF1 => {
            // F1 = 2tp / (2tp + fp + fn) = 2tp / (tp + fp + P) = 2tp / (all + P).
            let (mut best, mut best_k) = (-1.0, 1);
            for (b, (&rows, &p)) in r.block_rows.iter().zip(&r.block_pos).enumerate() {
                tp += p;
                all += rows;
                let f1 = 2.0 * tp as f64 / (all + pos) as f64;
                if f1 > best {
                    best = f1;
                    best_k = b + 1;
                }
            }
            threshold_after(&r, best_k)
        }
        ThresholdRule::TargetFpr(target) => {
            let mut best_k = 0;
            for (b, (&rows, &p)) in r.block_rows.iter().zip(&r.block_pos).enumerate() {
                tp += p;
                all += rows;
                if (all - tp) as f64 / neg as f64 <= target {
                    best_k = b + 1;
                } else {
                    break;
                }
            }
            threshold_after(&r, best_k)
        }
    }
}

/// Thins a polyline to at most about `max` points, keeping the first and last point and points
/// spaced evenly along the curve's L1 length (so steep steps keep their shape).
fn thin(points: Vec<(f64, f64)>, max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max || max < 3 {
        return points;
    }
    let dist = |a: (f64, f64), b: (f64, f64)| (a.0 - b.0).abs() + (a.1 - b.1).abs();
    let total: f64 = points.windows(2).map(|w| dist(w[0], w[1])).sum();
    let last = points[points.len() - 1];
    if total <= 0.0 {
        return vec![points[0], last];
    }
    let step = total / (max - 2) as f64;
    let mut out = vec![points[0]];
    let mut acc = 0.0;
    for w in points.windows(2) {
        acc += dist(w[0], w[1]);
        if acc >= step {
            out.push(w[1]);
            acc = 0.0;
        }
    }
    if out.last() != Some(&last) {
        out.push(last);
    }
    out
}

/// The ROC curve as `(false-positive rate, true-positive rate)` points from `(0, 0)` to `(1, 1)`,
/// one per distinct score (descending), thinned to at most about [`MAX_CURVE_POINTS`] points.
/// Empty when `y` lacks a class.
///
/// # Panics
/// If `y` and `score` have different lengths, or with more than `u32::MAX` rows.
pub fn roc_curve(y: &[bool], score: &[f64]) -> Vec<(f64, f64)> {
    let r = Ranked::new(y, score);
    let pos: u64 = r.block_pos.iter().sum();
    let neg = r.rows() as u64 - pos;
    if pos == 0 || neg == 0 {
        return Vec::new();
    }
    let mut points = Vec::with_capacity(r.block_score.len() + 1);
    points.push((0.0, 0.0));
    let (mut tp, mut all) = (0u64, 0u64);
    for (&rows, &p) in r.block_rows.iter().zip(&r.block_pos) {
        tp += p;
        all += rows;
        points.push(((all - tp) as f64 / neg as f64, tp as f64 / pos as f64));
    }
    thin(points, MAX_CURVE_POINTS)
}

/// The precision-recall curve of the positive class as `(recall, precision)` points by increasing
/// recall: `(0, 1)` first (as scikit-learn), then one point per distinct score (descending),
/// thinned to at most about [`MAX_CURVE_POINTS`] points. Empty without positives.
///
/// # Panics
/// If `y` and `score` have different lengths, or with more than `u32::MAX` rows.
pub fn pr_curve(y: &[bool], score: &[f64]) -> Vec<(f64, f64)> {
    let r = Ranked::new(y, score);
    let pos: u64 = r.block_pos.iter().sum();
    if pos == 0 {
        return Vec::new();
    }
    let mut points = Vec::with_capacity(r.block_score.len() + 1);
    points.push((0.0, 1.0));
    let (mut tp, mut all) = (0u64, 0u64);
    for (&rows, &p) in r.block_rows.iter().zip(&r.block_pos) {
        tp += p;
        all += rows;
        points.push((tp as f64 / pos as f64, tp as f64 / all as f64));
    }
    thin(points, MAX_CURVE_POINTS)
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    #[test]
    fn every_metric_line_is_recognised_and_nothing_else() {
        let e = evaluate(
            &[true, false, true],
            &[0.9, 0.2, 0.4],
            0.5,
            &BootstrapConfig {
                resamples: 0,
                seed: 1,
            },
        );
        let lines = e.metric_lines("validation");
        assert_eq!(lines.len(), 1 + 3 * Metric::ALL.len());
        assert!(lines.iter().all(|l| is_metric_line(l)), "{lines:?}");
        assert!(e.metric_lines("test").iter().all(|l| is_metric_line(l)));
        for other in [
            "not a feature: Flow_ID (excluded)",
            "validation:pr_auc=",
            "validation:colour=1",
            "read train: 1500 rows in 0.01 s",
            "Validation:pr_auc=0.9",
            "",
        ] {
            assert!(!is_metric_line(other), "{other:?}");
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    fn no_boot() -> BootstrapConfig {
        BootstrapConfig {
            resamples: 0,
            seed: 1,
        }
    }

    fn assert_close(name: &str, got: f64, want: f64) {
        assert!(close(got, want), "{name}: got {got}, want {want}");
    }

    // A small fixed example with ties. Expected values from scikit-learn 1.9:
    //   y = [1,0,1,1,0,0,1,0,1,0], s = [.9,.8,.8,.7,.6,.5,.4,.4,.2,.1], threshold 0.5
    const Y: [bool; 10] = [true, false, true, true, false, false, true, false, true, false];
    const S: [f64; 10] = [0.9, 0.8, 0.8, 0.7, 0.6, 0.5, 0.4, 0.4, 0.2, 0.1];

    #[test]
    fn matches_scikit_learn_on_a_small_example_with_ties() {
        let e = evaluate(&Y, &S, 0.5, &no_boot());
        assert_eq!(
            e.confusion,
            Confusion {
                tp: 3,
                fp: 3,
                tn: 2,
                fn_: 2
            }
        );
        assert_eq!((e.rows, e.positives), (10, 5));
        assert_close("precision", e.precision.value, 0.5);
        assert_close("recall", e.recall.value, 0.6);
        assert_close("f1", e.f1.value, 6.0 / 11.0);
        assert_close("precision_negative", e.precision_negative.value, 0.5);
        assert_close("recall_negative", e.recall_negative.value, 0.4);
        assert_close("f1_negative", e.f1_negative.value, 4.0 / 9.0);
        assert_close("accuracy", e.accuracy.value, 0.5);
        assert_close("balanced_accuracy", e.balanced_accuracy.value, 0.5);
        assert_close("mcc", e.mcc.value, 0.0);
        // roc_auc_score(y, s)
        assert_close("roc_auc", e.roc_auc.value, 0.64);
        // average_precision_score(y, s)
        assert_close("pr_auc", e.pr_auc.value, 0.6944444444444444);
        // average_precision_score(1 - y, 1 - s)
        assert_close("pr_auc_negative", e.pr_auc_negative.value, 0.6644444444444444);
        // log_loss(y, s)
        assert_close("log_loss", e.log_loss.value, 0.7045969619511041);
        // No bootstrap: intervals collapse to the value.
        assert_eq!(e.mcc.ci_low, e.mcc.value);
        assert_eq!(e.mcc.ci_high, e.mcc.value);
    }

    #[test]
    fn matches_scikit_learn_on_an_unbalanced_example() {
        // y = [0,0,1,0,1,1,0,0], s = [.1,.3,.35,.4,.8,.8,.05,.6], threshold .35
        // precision .6, recall 1, f1 .75, mcc .6, roc_auc 0.8666666666666667,
        // average_precision 0.8666666666666667, AP(1 - y, 1 - s) 0.9266666666666665,
        // balanced_accuracy 0.8, log_loss 0.42956929209391903
        let y = [false, false, true, false, true, true, false, false];
        let s = [0.1, 0.3, 0.35, 0.4, 0.8, 0.8, 0.05, 0.6];
        let e = evaluate(&y, &s, 0.35, &no_boot());
        assert_eq!(
            e.confusion,
            Confusion {
                tp: 3,
                fp: 2,
                tn: 3,
                fn_: 0
            }
        );
        assert_close("precision", e.precision.value, 0.6);
        assert_close("recall", e.recall.value, 1.0);
        assert_close("f1", e.f1.value, 0.75);
        assert_close("mcc", e.mcc.value, 0.6);
        assert_close("roc_auc", e.roc_auc.value, 0.8666666666666667);
        assert_close("pr_auc", e.pr_auc.value, 0.8666666666666667);
        assert_close("pr_auc_negative", e.pr_auc_negative.value, 0.9266666666666665);
        assert_close("balanced_accuracy", e.balanced_accuracy.value, 0.8);
        assert_close("log_loss", e.log_loss.value, 0.42956929209391903);
    }

    #[test]
    fn all_scores_tied() {
        let y = [true, false, true, false, false];
        let s = [0.3; 5];
        let e = evaluate(&y, &s, 0.3, &no_boot());
        assert_close("roc_auc", e.roc_auc.value, 0.5);
        assert_close("pr_auc", e.pr_auc.value, 0.4);
        assert_close("pr_auc_negative", e.pr_auc_negative.value, 0.6);
        assert_eq!(e.confusion.tp + e.confusion.fp, 5);
        let e = evaluate(&y, &s, 0.31, &no_boot());
        assert_eq!(e.confusion.tp + e.confusion.fp, 0);
        assert_eq!(e.precision.value, 0.0);
    }

    #[test]
    fn perfect_and_inverted_classifiers() {
        let y = [true, true, false, false, false];
        let s = [0.9, 0.8, 0.3, 0.2, 0.1];
        let e = evaluate(&y, &s, 0.5, &BootstrapConfig::default());
        for (name, est) in e.estimates() {
            if name == Metric::LogLoss {
                continue;
            }
            assert_close(name.as_str(), est.value, 1.0);
        }
        // Every resample keeps perfect separation.
        assert_close("roc ci", e.roc_auc.ci_low, 1.0);
        assert_close("mcc ci", e.mcc.ci_high, 1.0);

        let inv: Vec<f64> = s.iter().map(|v| 1.0 - v).collect();
        let e = evaluate(&y, &inv, 0.5, &no_boot());
        assert_close("roc_auc", e.roc_auc.value, 0.0);
        assert_close("mcc", e.mcc.value, -1.0);
        assert_close("accuracy", e.accuracy.value, 0.0);
        assert_close("f1", e.f1.value, 0.0);
        // AP of the inverted ranking: positives at ranks 4 and 5 -> (1/4 + 2/5) / 2.
        assert_close("pr_auc", e.pr_auc.value, (0.25 + 0.4) / 2.0);
    }

    #[test]
    fn one_class_and_empty_input_never_give_nan() {
        let cases: [(&[bool], &[f64]); 4] = [
            (&[], &[]),
            (&[true, true, true], &[0.2, 0.6, 0.9]),
            (&[false, false, false], &[0.2, 0.6, 0.9]),
            (&[false], &[f64::NAN]),
        ];
        for (y, s) in cases {
            let e = evaluate(y, s, 0.5, &BootstrapConfig::default());
            let json = serde_json::to_string(&e).expect("serializes");
            assert!(!json.contains("NaN") && !json.contains("null"), "{json}");
            for (name, est) in e.estimates() {
                assert!(
                    est.value.is_finite() && est.ci_low.is_finite() && est.ci_high.is_finite(),
                    "{name}: {est:?}"
                );
            }
            assert_eq!(choose_threshold(y, s, ThresholdRule::MaxF1), 0.5);
            assert_eq!(choose_threshold(y, s, ThresholdRule::TargetFpr(0.01)), 0.5);
            assert!(roc_curve(y, s).is_empty());
        }
        let e = evaluate(&[false, false, false], &[0.2, 0.6, 0.9], 0.5, &no_boot());
        assert_eq!(e.roc_auc.value, 0.5);
        assert_eq!(e.pr_auc.value, 0.0);
        assert_eq!(e.mcc.value, 0.0);
        // scikit-learn: balanced_accuracy_score([0,0,0],[0,1,1]) = 1/3 (present classes only).
        assert_close("balanced_accuracy", e.balanced_accuracy.value, 1.0 / 3.0);
        let e = evaluate(&[true, true], &[0.2, 0.9], 0.5, &no_boot());
        assert_eq!(e.pr_auc.value, 1.0);
        assert_eq!(e.pr_auc_negative.value, 0.0);
    }

    #[test]
    fn log_loss_clips_probabilities() {
        let e = evaluate(&[true, false], &[0.0, 1.0], 0.5, &no_boot());
        // -ln(1e-15) = 34.54 per row (up to the rounding of 1 - 1e-15).
        assert!((e.log_loss.value - 34.54).abs() < 0.1, "{:?}", e.log_loss);
        assert!(e.log_loss.value.is_finite());
    }

    #[test]
    fn max_f1_threshold_respects_ties() {
        // Cut after .9 block: F1 = 2/(1+5)= .333; after .8: tp 2 all 3 -> 4/8 = .5;
        // after .7: tp3 all4 -> 6/9 = .667; after .6: 6/10; after .5: 6/11; after .4: tp4 all8
        // -> 8/13 = .615; after .2: tp5 all9 -> 10/14 = .714; after .1: 10/15.
        let t = choose_threshold(&Y, &S, ThresholdRule::MaxF1);
        assert_close("threshold", t, 0.15);
        let e = evaluate(&Y, &S, t, &no_boot());
        assert_close("f1", e.f1.value, 10.0 / 14.0);

        // Ties: one block of three mixed rows.
        let y = [true, false, true, false];
        let s = [0.7, 0.7, 0.7, 0.2];
        let t = choose_threshold(&y, &s, ThresholdRule::MaxF1);
        assert_close("threshold", t, 0.45);
    }

    #[test]
    fn max_f1_agrees_with_brute_force() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..50 {
            let n = rng.random_range(2..40);
            let y: Vec<bool> = (0..n).map(|_| rng.random_bool(0.4)).collect();
            let s: Vec<f64> = (0..n)
                .map(|_| f64::from(rng.random_range(0..10u8)) / 10.0)
                .collect();
            if y.iter().all(|&v| v) || y.iter().all(|&v| !v) {
                continue;
            }
            let t = choose_threshold(&y, &s, ThresholdRule::MaxF1);
            let f1 = evaluate(&y, &s, t, &no_boot()).f1.value;
            for &c in &s {
                let other = evaluate(&y, &s, c, &no_boot()).f1.value;
                assert!(other <= f1 + 1e-12, "cut {c} beats {t}: {other} > {f1}");
            }
        }
    }

    #[test]
    fn target_fpr_threshold() {
        // Negatives in S (desc order): .8, .6, .5, .4, .1 (N = 5).
        // FPR <= 0.2 allows one negative: blocks .9, .8, .7 -> threshold midpoint(.7, .6) = .65
        let t = choose_threshold(&Y, &S, ThresholdRule::TargetFpr(0.2));
        assert_close("threshold", t, 0.65);
        let e = evaluate(&Y, &S, t, &no_boot());
        assert_eq!(e.confusion.fp, 1);
        assert_eq!(e.confusion.tp, 3);
        // FPR 0: only the top block.
        let t = choose_threshold(&Y, &S, ThresholdRule::TargetFpr(0.0));
        assert_close("threshold", t, 0.85);
        // FPR 1: everything positive -> the lowest score itself.
        let t = choose_threshold(&Y, &S, ThresholdRule::TargetFpr(1.0));
        assert_close("threshold", t, 0.1);
        // Top block already has a negative: threshold above every score.
        let y = [false, true, false];
        let s = [0.9, 0.5, 0.1];
        let t = choose_threshold(&y, &s, ThresholdRule::TargetFpr(0.0));
        assert!(t > 0.9);
        assert_eq!(evaluate(&y, &s, t, &no_boot()).confusion.fp, 0);
    }

    fn synthetic(n: usize, seed: u64) -> (Vec<bool>, Vec<f64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let y: Vec<bool> = (0..n).map(|_| rng.random_bool(0.3)).collect();
        let s = y
            .iter()
            .map(|&p| {
                let base: f64 = rng.random();
                let v = if p { 0.35 + 0.65 * base } else { 0.7 * base };
                (v * 1000.0).round() / 1000.0 // plenty of ties
            })
            .collect();
        (y, s)
    }

    #[test]
    fn bootstrap_intervals_contain_the_point_estimate_and_are_deterministic() {
        let (y, s) = synthetic(2000, 3);
        let cfg = BootstrapConfig {
            resamples: 300,
            seed: 9,
        };
        let e = evaluate(&y, &s, 0.5, &cfg);
        for (name, est) in e.estimates() {
            assert!(
                est.ci_low <= est.value && est.value <= est.ci_high,
                "{name}: {est:?}"
            );
            assert!(est.ci_low < est.ci_high, "{name}: degenerate interval {est:?}");
        }
        assert_eq!(e, evaluate(&y, &s, 0.5, &cfg));
        let other = evaluate(&y, &s, 0.5, &BootstrapConfig { seed: 10, ..cfg });
        assert_ne!(e.mcc.ci_low, other.mcc.ci_low);
        assert_eq!(e.mcc.value, other.mcc.value);
        // serde_json parses floats to within one ulp (exact only with its `float_roundtrip`).
        let back: Evaluation = serde_json::from_str(&serde_json::to_string(&e).unwrap()).expect("round trip");
        assert_eq!(back.confusion, e.confusion);
        for ((name, a), (_, b)) in back.estimates().into_iter().zip(e.estimates()) {
            assert!((a.value - b.value).abs() < 1e-12, "{name}");
            assert!((a.ci_low - b.ci_low).abs() < 1e-12, "{name}");
        }
    }

    #[test]
    fn weighted_pass_equals_expanding_the_rows() {
        // A resample with multiplicities must equal evaluating the explicitly repeated rows.
        let (y, s) = synthetic(200, 5);
        let r = Ranked::new(&y, &s);
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let counts: Vec<u32> = (0..y.len()).map(|_| rng.random_range(0..4)).collect();
        let cut = r.blocks_above(0.4);
        let got = metrics_of(&weighted_pass(&r, &counts, cut, &mut Vec::new()));
        let (mut ye, mut se) = (Vec::new(), Vec::new());
        // Rebuild the expanded data in ranked order.
        let mut order: Vec<usize> = (0..y.len()).collect();
        order.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
        for (k, &i) in order.iter().enumerate() {
            for _ in 0..counts[k] {
                ye.push(y[i]);
                se.push(s[i]);
            }
        }
        let r2 = Ranked::new(&ye, &se);
        let ones = vec![1; ye.len()];
        let want = metrics_of(&weighted_pass(&r2, &ones, r2.blocks_above(0.4), &mut Vec::new()));
        for k in 0..METRIC_COUNT {
            let (g, w) = (got[k].unwrap(), want[k].unwrap());
            assert!((g - w).abs() < 1e-9, "{}: {g} vs {w}", Metric::ALL[k]);
        }
    }

    #[test]
    fn curves_are_monotone_bounded_and_thinned() {
        let (y, s) = synthetic(20_000, 8);
        let s: Vec<f64> = s.iter().enumerate().map(|(i, v)| v + i as f64 * 1e-9).collect();
        let roc = roc_curve(&y, &s);
        assert!(roc.len() <= MAX_CURVE_POINTS + 1 && roc.len() > 100);
        assert_eq!(roc[0], (0.0, 0.0));
        assert_eq!(*roc.last().unwrap(), (1.0, 1.0));
        assert!(roc.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        let pr = pr_curve(&y, &s);
        assert!(pr.len() <= MAX_CURVE_POINTS + 1);
        assert_eq!(pr[0], (0.0, 1.0));
        assert_close("last recall", pr.last().unwrap().0, 1.0);
        assert!(
            pr.iter()
                .all(|&(r, p)| (0.0..=1.0).contains(&r) && (0.0..=1.0).contains(&p))
        );

        // Small curves are exact: sklearn roc_curve(Y, S, drop_intermediate=False).
        let roc = roc_curve(&Y, &S);
        assert_eq!(roc.len(), 9);
        assert_eq!(roc[1], (0.0, 0.2));
        assert_eq!(roc[2], (0.2, 0.4));
        let pr = pr_curve(&Y, &S);
        assert_close("precision at .8", pr[2].1, 2.0 / 3.0);
        assert!(pr_curve(&[false, false], &[0.1, 0.2]).is_empty());
    }

    #[test]
    fn metric_lines_are_stable() {
        let e = evaluate(&Y, &S, 0.5, &no_boot());
        let lines = e.metric_lines("validation");
        assert_eq!(lines.len(), 1 + 3 * METRIC_COUNT);
        assert_eq!(lines[0], "validation:threshold=0.500000");
        assert!(lines.contains(&"validation:mcc=0.000000".to_string()));
        assert!(lines.contains(&"validation:roc_auc=0.640000".to_string()));
        assert!(lines.contains(&"validation:roc_auc_ci_low=0.640000".to_string()));
        assert!(lines.contains(&"validation:precision=0.500000".to_string()));
        for name in [
            "pr_auc",
            "pr_auc_negative",
            "f1",
            "recall",
            "balanced_accuracy",
            "log_loss",
            "accuracy",
            "precision_negative",
            "recall_negative",
            "f1_negative",
        ] {
            let prefix = format!("validation:{name}=");
            assert_eq!(lines.iter().filter(|l| l.starts_with(&prefix)).count(), 1);
        }
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["confusion"]["fn"], 2);
    }

    #[test]
    fn bootstrap_is_independent_of_thread_count() {
        let (y, s) = synthetic(500, 4);
        let r = Ranked::new(&y, &s);
        let cfg = BootstrapConfig {
            resamples: 37,
            seed: 5,
        };
        let one = bootstrap(&r, r.blocks_above(0.5), &cfg, 1);
        assert_eq!(one.len(), 37);
        for threads in [2, 3, 8, 100] {
            assert_eq!(one, bootstrap(&r, r.blocks_above(0.5), &cfg, threads));
        }
    }

    #[test]
    fn resample_counts_sum_to_n_and_cover_rows_evenly() {
        let mut counts = vec![0; 1000];
        let mut totals = vec![0u32; 1000];
        for i in 0..200 {
            draw_counts(&mut resample_rng(1, i), &mut counts);
            assert_eq!(counts.iter().sum::<u32>(), 1000);
            for (t, c) in totals.iter_mut().zip(&counts) {
                *t += c;
            }
        }
        // Each row is drawn 200 times on average (Poisson-like spread, sd ~14).
        assert!(totals.iter().all(|&t| (120..=280).contains(&t)), "{totals:?}");
        // About 1/e of the rows are left out of a resample.
        let zeros = counts.iter().filter(|&&c| c == 0).count();
        assert!((320..=420).contains(&zeros), "{zeros}");
    }

    /// `cargo test --release -p model-image --lib metrics::tests::bootstrap_speed -- --ignored
    /// --nocapture`
    #[test]
    #[ignore = "timing; run in release"]
    fn bootstrap_speed() {
        let (y, tied) = synthetic(125_000, 1);
        // Nearly all distinct scores: the worst case (one tie block per row).
        let distinct: Vec<f64> = tied
            .iter()
            .enumerate()
            .map(|(i, v)| v * 0.999 + i as f64 * 1e-9)
            .collect();
        let cfg = BootstrapConfig::default();
        for (name, s) in [("tied", &tied), ("distinct", &distinct)] {
            let r = Ranked::new(&y, s);
            let start = std::time::Instant::now();
            let out = bootstrap(&r, r.blocks_above(0.5), &cfg, 1);
            let one = start.elapsed();
            let start = std::time::Instant::now();
            let e = evaluate(&y, s, 0.5, &cfg);
            let all = start.elapsed();
            println!(
                "125k rows ({name} scores, {} blocks) x {} resamples: {one:?} on one thread, \
                 evaluate() {all:?} on all cores (mcc {:?})",
                r.block_score.len(),
                out.len(),
                e.mcc
            );
        }
    }
}
