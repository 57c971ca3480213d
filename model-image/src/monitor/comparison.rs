//! The comparison of a window's traffic with the baseline: pure, on the tallies, with every
//! threshold in one [`Thresholds`].
//!
//! Per feature, three checks: drift (the PSI of the captured values, binned with the baseline's
//! edges, against the baseline's shares), completeness (the missing rate against the baseline's)
//! and range (the share of finite values outside the baseline's `[min, max]`). For the scores, the
//! PSI against the held-out scores' distribution. Below [`Thresholds::min_rows`] rows no verdict is
//! given: the figures are still computed and reported, but nothing is flagged.
//!
//! Why the defaults are what they are:
//! - `drift_psi` 0.2: the usual reading of PSI is "under 0.1 stable, over 0.25 a major shift"; 0.2
//!   flags a shift well before it is major, and lies far above what sampling alone gives (below).
//! - `min_rows` 200: for a window of `n` rows drawn from the baseline's own population, PSI is
//!   about Pearson's χ² over `n` with (bins - 1) degrees of freedom, plus the cost of bins the
//!   window leaves empty. Simulated on the baseline's 10 deciles: at 100 rows 3.3% of windows
//!   cross 0.2 (with 79 features, two or three false alarms per run); at 200 rows 7 windows in
//!   150,000 (5·10⁻⁵ per feature, under 0.4% per run). Features with merged bins have fewer
//!   degrees of freedom and fare better (a unit test checks both kinds by sampling).
//! - `missing_margin` 0.05: the missing rate may exceed the baseline's by 5 points. At 200 rows and
//!   a baseline rate near 0 (IoTID20's features miss almost nothing), 5 points are 10 missing values
//!   where the baseline expects none; at a baseline rate of 5% they are 3 binomial standard
//!   deviations.
//! - `out_of_range_rate` 0.01: rows of the baseline's population fall outside the range of `N`
//!   baseline rows at a rate of about 2/(N+1) (0.05% for 4,000 rows); 1% is 20 times that and, at
//!   200 rows, 3 values beyond anything training saw.

use serde::Serialize;

pub use contract::drift::{
    ColumnComparison, DEFAULT_DRIFT_PSI, DEFAULT_MIN_ROWS, DEFAULT_MISSING_MARGIN, DEFAULT_OUT_OF_RANGE_RATE,
    Finding, Judgement, SCORE_NAME, Thresholds, Verdict,
};

use super::tally::ValueTally;
use super::traffic::Traffic;
use crate::baseline::{self, Baseline, FeatureBaseline};

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub thresholds: Thresholds,
    /// The features' verdict, on the request rows.
    pub features_judgement: Judgement,
    /// The score's verdict, on the rows with a score.
    pub score_judgement: Judgement,
    /// In the model's feature order.
    pub features: Vec<ColumnComparison>,
    pub score: ColumnComparison,
}

/// Compares `traffic` with `baseline`.
pub fn compare(baseline: &Baseline, traffic: &Traffic, thresholds: &Thresholds) -> Comparison {
    let features_judgement = Judgement::of(traffic.counts.rows, thresholds.min_rows);
    let score_judgement = Judgement::of(traffic.counts.scored_rows, thresholds.min_rows);
    let features = baseline
        .features
        .iter()
        .zip(&traffic.features)
        .map(|(feature, tally)| compare_feature(feature, tally, thresholds, features_judgement.is_judged()))
        .collect();
    let score_psi = psi_of(&traffic.score);
    let score = ColumnComparison {
        name: SCORE_NAME.to_owned(),
        present: traffic.score.present,
        missing: traffic.score.missing,
        missing_rate: None,
        baseline_missing_rate: None,
        psi: score_psi,
        out_of_range_rate: None,
        findings: drift(score_psi, thresholds)
            .filter(|_| score_judgement.is_judged())
            .into_iter()
            .collect(),
    };
    Comparison {
        thresholds: *thresholds,
        features_judgement,
        score_judgement,
        features,
        score,
    }
}

fn compare_feature(
    feature: &FeatureBaseline,
    tally: &ValueTally,
    thresholds: &Thresholds,
    judged: bool,
) -> ColumnComparison {
    let psi = psi_of(tally);
    let missing_rate = tally.missing_rate();
    let out_of_range_rate = tally.out_of_range_rate();
    let mut findings = Vec::new();
    if judged {
        findings.extend(drift(psi, thresholds));
        if let Some(rate) = missing_rate
            && rate > feature.missing_rate + thresholds.missing_margin
        {
            findings.push(Finding::Incomplete {
                missing_rate: rate,
                baseline_missing_rate: feature.missing_rate,
                margin: thresholds.missing_margin,
            });
        }
        if let (Some(rate), Some(range)) = (out_of_range_rate, &feature.distribution)
            && rate > thresholds.out_of_range_rate
        {
            findings.push(Finding::OutOfRange {
                rate,
                limit: thresholds.out_of_range_rate,
                min: range.min,
                max: range.max,
            });
        }
    }
    ColumnComparison {
        name: feature.name.clone(),
        present: tally.present,
        missing: tally.missing,
        missing_rate,
        baseline_missing_rate: Some(feature.missing_rate),
        psi,
        out_of_range_rate,
        findings,
    }
}

/// The PSI of the tallied values against their baseline's shares.
fn psi_of(tally: &ValueTally) -> Option<f64> {
    let baseline = tally.baseline()?;
    Some(baseline::psi(&baseline.shares, &tally.shares()?))
}

fn drift(psi: Option<f64>, thresholds: &Thresholds) -> Option<Finding> {
    psi.filter(|&psi| psi > thresholds.drift_psi)
        .map(|psi| Finding::Drift {
            psi,
            threshold: thresholds.drift_psi,
        })
}

impl Comparison {
    /// Every column with its findings, the score last.
    pub fn columns(&self) -> impl Iterator<Item = &ColumnComparison> {
        self.features.iter().chain(std::iter::once(&self.score))
    }

    /// Every finding, with its column's name.
    pub fn violations(&self) -> impl Iterator<Item = (&str, &Finding)> {
        self.columns()
            .flat_map(|column| column.findings.iter().map(move |f| (column.name.as_str(), f)))
    }

    pub fn verdict(&self) -> Verdict {
        if self.violations().next().is_some() {
            Verdict::Drift
        } else if self.features_judgement.is_judged() {
            Verdict::NoDrift
        } else {
            Verdict::InsufficientData
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::baseline::Distribution;

    /// A baseline of `a` (0..1000, never missing), `b` (80% zeros then 1..200, a count-like
    /// feature, 1% missing) and held-out scores spread over [0, 1].
    fn baseline() -> Baseline {
        let features = vec!["a".to_string(), "b".to_string()];
        let values: Vec<f32> = (0..1000)
            .flat_map(|i| {
                let b = if i % 100 == 0 {
                    f32::NAN
                } else if i < 800 {
                    0.0
                } else {
                    (i - 799) as f32
                };
                [i as f32, b]
            })
            .collect();
        let scores: Vec<f64> = (0..1000).map(|i| f64::from(i) / 1000.0).collect();
        baseline::compute(&features, &values, &scores)
    }

    /// The traffic of `rows` (a, b) pairs, each row scored with `score(row index)`.
    fn traffic<'b>(baseline: &'b Baseline, rows: &[(f64, f64)], score: impl Fn(usize) -> f64) -> Traffic<'b> {
        let mut traffic = Traffic::new(baseline);
        for (i, &(a, b)) in rows.iter().enumerate() {
            traffic.features[0].add(a);
            traffic.features[1].add(b);
            traffic.score.add(score(i));
        }
        traffic.counts.rows = rows.len() as u64;
        traffic.counts.scored_rows = rows.len() as u64;
        traffic
    }

    /// `n` rows like the baseline's, evenly spread.
    fn like_baseline(n: usize) -> Vec<(f64, f64)> {
        (0..n)
            .map(|k| {
                let i = k * 1000 / n;
                let b = if i < 800 { 0.0 } else { (i - 799) as f64 };
                (i as f64, b)
            })
            .collect()
    }

    fn checks(comparison: &Comparison, name: &str) -> Vec<&'static str> {
        comparison
            .columns()
            .find(|c| c.name == name)
            .unwrap()
            .findings
            .iter()
            .map(|f| match f {
                Finding::Drift { .. } => "drift",
                Finding::Incomplete { .. } => "incomplete",
                Finding::OutOfRange { .. } => "out_of_range",
            })
            .collect()
    }

    #[test]
    fn traffic_like_the_baseline_crosses_no_threshold() {
        let baseline = baseline();
        let traffic = traffic(&baseline, &like_baseline(500), |i| (i * 2) as f64 / 1000.0);
        let comparison = compare(&baseline, &traffic, &Thresholds::default());
        assert_eq!(comparison.verdict(), Verdict::NoDrift);
        for column in comparison.columns() {
            assert!(column.psi.unwrap() < 0.02, "{column:?}");
        }
        assert_eq!(comparison.features[1].baseline_missing_rate, Some(0.01));
    }

    #[test]
    fn psi_uses_the_baseline_edges_so_a_shift_moves_values_across_bins() {
        let baseline = baseline();
        // `a` tripled: two thirds of it beyond the baseline's top decile and its range.
        let shifted: Vec<(f64, f64)> = like_baseline(500).iter().map(|&(a, b)| (a * 3.0, b)).collect();
        let traffic = traffic(&baseline, &shifted, |i| (i * 2) as f64 / 1000.0);
        let comparison = compare(&baseline, &traffic, &Thresholds::default());
        assert_eq!(comparison.verdict(), Verdict::Drift);
        assert_eq!(checks(&comparison, "a"), ["drift", "out_of_range"]);
        assert!(checks(&comparison, "b").is_empty());
        let a = &comparison.features[0];
        let edges = &baseline.features[0].distribution.as_ref().unwrap().edges;
        let expected = baseline::psi(
            &baseline.features[0].distribution.as_ref().unwrap().shares,
            &traffic.features[0].shares().unwrap(),
        );
        assert_eq!(a.psi, Some(expected));
        assert_eq!(traffic.features[0].bin_counts.len(), edges.len() + 1);
        assert!((a.out_of_range_rate.unwrap() - 2.0 / 3.0).abs() < 0.01, "{a:?}");
        // The same values scaled into the baseline's range are a drift, but not out of range.
        let squeezed: Vec<(f64, f64)> = like_baseline(500).iter().map(|&(a, b)| (a / 3.0, b)).collect();
        let comparison = compare(
            &baseline,
            &traffic_of(&baseline, &squeezed),
            &Thresholds::default(),
        );
        assert_eq!(checks(&comparison, "a"), ["drift"]);
    }

    fn traffic_of<'b>(baseline: &'b Baseline, rows: &[(f64, f64)]) -> Traffic<'b> {
        traffic(baseline, rows, |i| (i * 2 % 1000) as f64 / 1000.0)
    }

    #[test]
    fn below_the_minimum_rows_nothing_is_flagged_but_the_figures_are_reported() {
        let baseline = baseline();
        let thresholds = Thresholds::default();
        let shifted =
            |n| -> Vec<(f64, f64)> { like_baseline(n).iter().map(|&(a, b)| (a * 3.0, b)).collect() };
        let few = shifted(DEFAULT_MIN_ROWS as usize - 1);
        let comparison = compare(&baseline, &traffic_of(&baseline, &few), &thresholds);
        assert_eq!(comparison.verdict(), Verdict::InsufficientData);
        assert_eq!(
            comparison.features_judgement,
            Judgement::TooFewRows {
                rows: DEFAULT_MIN_ROWS - 1,
                minimum: DEFAULT_MIN_ROWS
            }
        );
        assert_eq!(comparison.violations().count(), 0);
        assert!(
            comparison.features[0].psi.unwrap() > 1.0,
            "the figure is still there"
        );
        let enough = shifted(DEFAULT_MIN_ROWS as usize);
        let comparison = compare(&baseline, &traffic_of(&baseline, &enough), &thresholds);
        assert_eq!(comparison.verdict(), Verdict::Drift);
        // No traffic at all: no verdict, no figures.
        let comparison = compare(&baseline, &traffic_of(&baseline, &[]), &thresholds);
        assert_eq!(comparison.verdict(), Verdict::InsufficientData);
        assert_eq!(comparison.features[0].psi, None);
    }

    #[test]
    fn the_score_is_judged_on_its_own_rows() {
        let baseline = baseline();
        let rows = like_baseline(300);
        // Every score near 1, where the held-out scores have a tenth of their mass.
        let mut traffic = traffic(&baseline, &rows, |_| 0.999);
        let comparison = compare(&baseline, &traffic, &Thresholds::default());
        assert_eq!(checks(&comparison, SCORE_NAME), ["drift"]);
        assert_eq!(comparison.verdict(), Verdict::Drift);
        traffic.counts.scored_rows = 150;
        let comparison = compare(&baseline, &traffic, &Thresholds::default());
        assert!(checks(&comparison, SCORE_NAME).is_empty());
        assert_eq!(
            comparison.score_judgement,
            Judgement::TooFewRows {
                rows: 150,
                minimum: 200
            }
        );
        assert_eq!(comparison.verdict(), Verdict::NoDrift);
    }

    #[test]
    fn a_baseline_without_held_out_scores_judges_no_score() {
        let mut baseline = baseline();
        baseline.score = baseline::compute(&[], &[], &[]).score;
        baseline.scored_rows = 0;
        let traffic = traffic(&baseline, &like_baseline(300), |_| 0.999);
        let comparison = compare(&baseline, &traffic, &Thresholds::default());
        assert_eq!(comparison.score.psi, None);
        assert_eq!(comparison.verdict(), Verdict::NoDrift);
    }

    #[test]
    fn missing_values_beyond_the_margin_are_incomplete() {
        let baseline = baseline();
        let thresholds = Thresholds::default();
        let with_missing = |share: f64| -> Vec<(f64, f64)> {
            let rows = like_baseline(1000);
            let cut = (share * rows.len() as f64) as usize;
            rows.iter()
                .enumerate()
                .map(|(i, &(a, b))| if i % 1000 < cut { (a, f64::NAN) } else { (a, b) })
                .collect()
        };
        // `b`'s baseline misses 1%: 5% is within the margin, 7% is not.
        let within = compare(
            &baseline,
            &traffic_of(&baseline, &with_missing(0.05)),
            &thresholds,
        );
        assert!(!checks(&within, "b").contains(&"incomplete"));
        let beyond = compare(
            &baseline,
            &traffic_of(&baseline, &with_missing(0.07)),
            &thresholds,
        );
        assert!(
            checks(&beyond, "b").contains(&"incomplete"),
            "{:?}",
            beyond.features[1]
        );
        let Some(Finding::Incomplete {
            missing_rate,
            baseline_missing_rate,
            ..
        }) = beyond.features[1]
            .findings
            .iter()
            .find(|f| matches!(f, Finding::Incomplete { .. }))
            .copied()
        else {
            panic!("no completeness finding");
        };
        assert!((missing_rate - 0.07).abs() < 1e-9 && baseline_missing_rate == 0.01);
    }

    #[test]
    fn a_few_values_beyond_the_range_are_tolerated() {
        let baseline = baseline();
        let mut rows = like_baseline(1000);
        for row in rows.iter_mut().take(10) {
            row.0 = 5000.0;
        }
        let comparison = compare(&baseline, &traffic_of(&baseline, &rows), &Thresholds::default());
        assert_eq!(comparison.features[0].out_of_range_rate, Some(0.01));
        assert!(
            !checks(&comparison, "a").contains(&"out_of_range"),
            "1% is the limit, not over it"
        );
        rows[10].0 = -1.0;
        let comparison = compare(&baseline, &traffic_of(&baseline, &rows), &Thresholds::default());
        assert!(checks(&comparison, "a").contains(&"out_of_range"));
    }

    /// The reason for the minimum: windows of `DEFAULT_MIN_ROWS` rows drawn at random from the
    /// baseline's own population do not cross the drift threshold, on ten equal deciles or on
    /// skewed, tied bins with a 1% bin that a window often misses entirely.
    #[test]
    fn random_windows_of_the_minimum_size_from_the_baseline_population_are_not_flagged() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let population: Vec<f64> = (0..100_000).map(|_| rng.random::<f64>().powi(3) * 1e6).collect();
        let decile = Distribution::of(&mut population.clone()).unwrap();
        let skewed = Distribution {
            edges: vec![0.0, 1.0, 2.0, 5.0],
            shares: vec![0.5, 0.2, 0.15, 0.14, 0.01],
            min: 0.0,
            max: 100.0,
        };
        let draw_skewed = |rng: &mut ChaCha8Rng| {
            let u: f64 = rng.random();
            match u {
                u if u < 0.5 => 0.0,
                u if u < 0.7 => 1.0,
                u if u < 0.85 => 2.0,
                u if u < 0.99 => 4.0,
                _ => 50.0,
            }
        };
        let trials = 2000;
        let mut worst: f64 = 0.0;
        let mut flagged = 0;
        for _ in 0..trials {
            let mut deciles = ValueTally::new(Some(&decile));
            let mut tied = ValueTally::new(Some(&skewed));
            for _ in 0..DEFAULT_MIN_ROWS {
                deciles.add(population[rng.random_range(0..population.len())]);
                tied.add(draw_skewed(&mut rng));
            }
            for (baseline, tally) in [(&decile, &deciles), (&skewed, &tied)] {
                let psi = baseline::psi(&baseline.shares, &tally.shares().unwrap());
                worst = worst.max(psi);
                flagged += usize::from(psi > DEFAULT_DRIFT_PSI);
            }
        }
        assert_eq!(flagged, 0, "worst PSI {worst}");
    }
}
