//! Baseline statistics of what a model was trained on, written by `train` into the model directory
//! (`baseline.json`, so it travels in `model.tar.gz` with the model it describes) for drift
//! monitoring: per feature, quantile bin edges and the share of training rows in each bin, the
//! missing rate and the range of the finite values; and the same distribution of the scores the
//! model gives held-out rows (the validation split: what unseen traffic should look like, unlike
//! the training rows' own, overconfident scores).
//!
//! Bins are deciles of the non-missing values, with repeated edges merged (a feature that is mostly
//! zero gets fewer bins, never empty ones made of ties), so new data is compared bin by bin with the
//! baseline's own edges: [`Distribution::shares_of`] counts values into them and [`psi`] is the
//! population stability index between two share vectors. The edges come from at most
//! [`SAMPLE_ROWS`] evenly strided rows, so the cost stays a fraction of a second on any dataset.

use serde::{Deserialize, Serialize};

/// `baseline.json`, beside `model.json`.
pub const BASELINE_FILE: &str = "baseline.json";
/// Version of `baseline.json`'s layout.
pub const FORMAT_VERSION: u32 = 1;
/// Quantile bins per distribution before ties are merged.
pub const BINS: usize = 10;
/// The most rows the statistics are computed from (evenly strided over all of them).
pub const SAMPLE_ROWS: usize = 100_000;
/// The share a bin with no value counts as in [`psi`], so an empty bin costs a finite amount.
pub const PSI_FLOOR: f64 = 1e-4;

/// `baseline.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub format_version: u32,
    /// Training rows the feature statistics were computed from (at most [`SAMPLE_ROWS`]).
    pub rows: usize,
    /// Held-out rows the score distribution was computed from.
    pub scored_rows: usize,
    /// In the order of `model.json`'s features.
    pub features: Vec<FeatureBaseline>,
    pub score: Distribution,
}

/// One feature's baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureBaseline {
    pub name: String,
    /// Share of rows whose value is missing (empty or unparsable cells, read as NaN).
    pub missing_rate: f64,
    /// The non-missing values' distribution; `None` when every value is missing.
    pub distribution: Option<Distribution>,
}

/// Quantile bins of non-missing values: `edges` split the line into `edges.len() + 1` bins, bin
/// `i` holding values in `(edges[i-1], edges[i]]` (the first from minus infinity, the last to plus
/// infinity); `shares` is the fraction of values in each. `min` and `max` bound the finite values
/// (what a range check compares new values with).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    pub edges: Vec<f64>,
    pub shares: Vec<f64>,
    pub min: f64,
    pub max: f64,
}

impl Distribution {
    /// The distribution of `values` (NaN excluded by the caller; ±inf count as values beyond any
    /// edge). `None` without values.
    pub fn of(values: &mut [f64]) -> Option<Distribution> {
        if values.is_empty() {
            return None;
        }
        values.sort_unstable_by(f64::total_cmp);
        let mut edges: Vec<f64> = (1..BINS)
            .map(|k| values[(k * values.len() / BINS).min(values.len() - 1)])
            .filter(|edge| edge.is_finite())
            .collect();
        edges.dedup();
        // The largest value closes no bin: an edge there would leave the last bin empty.
        if edges.last() == values.last() {
            edges.pop();
        }
        let finite = values.iter().copied().filter(|v| v.is_finite());
        let (min, max) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        let mut distribution = Distribution {
            edges,
            shares: Vec::new(),
            min,
            max,
        };
        distribution.shares = distribution.shares_of(values.iter().copied());
        Some(distribution)
    }

    /// The bin `value` falls in.
    pub fn bin_of(&self, value: f64) -> usize {
        self.edges.partition_point(|&edge| edge < value)
    }

    /// The share of `values` in each bin (NaN skipped); all zero without values.
    pub fn shares_of(&self, values: impl IntoIterator<Item = f64>) -> Vec<f64> {
        let mut counts = vec![0usize; self.edges.len() + 1];
        let mut total = 0usize;
        for value in values.into_iter().filter(|v| !v.is_nan()) {
            counts[self.bin_of(value)] += 1;
            total += 1;
        }
        counts
            .into_iter()
            .map(|count| {
                if total == 0 {
                    0.0
                } else {
                    count as f64 / total as f64
                }
            })
            .collect()
    }
}

/// The population stability index of `actual` shares against `expected` ones (same bins):
/// `Σ (a - e) · ln(a / e)`, each share floored at [`PSI_FLOOR`]. 0 for identical distributions;
/// by the usual reading, under 0.1 is stable and over 0.25 a major shift.
pub fn psi(expected: &[f64], actual: &[f64]) -> f64 {
    expected
        .iter()
        .zip(actual)
        .map(|(&e, &a)| {
            let (e, a) = (e.max(PSI_FLOOR), a.max(PSI_FLOOR));
            (a - e) * (a / e).ln()
        })
        .sum()
}

/// The baseline of a row-major feature matrix (`values`, `features.len()` wide) and the held-out
/// `scores`.
pub fn compute(features: &[String], values: &[f32], scores: &[f64]) -> Baseline {
    let width = features.len();
    let rows = values.len().checked_div(width).unwrap_or(0);
    let stride = rows.div_ceil(SAMPLE_ROWS).max(1);
    let sampled: Vec<usize> = (0..rows).step_by(stride).collect();
    let features = features
        .iter()
        .enumerate()
        .map(|(column, name)| {
            let mut present: Vec<f64> = sampled
                .iter()
                .map(|&row| f64::from(values[row * width + column]))
                .filter(|v| !v.is_nan())
                .collect();
            let missing = sampled.len() - present.len();
            FeatureBaseline {
                name: name.clone(),
                missing_rate: if sampled.is_empty() {
                    0.0
                } else {
                    missing as f64 / sampled.len() as f64
                },
                distribution: Distribution::of(&mut present),
            }
        })
        .collect();
    let mut score_values: Vec<f64> = scores.iter().copied().filter(|s| !s.is_nan()).collect();
    let score = Distribution::of(&mut score_values).unwrap_or(Distribution {
        edges: Vec::new(),
        shares: vec![0.0],
        min: 0.0,
        max: 0.0,
    });
    Baseline {
        format_version: FORMAT_VERSION,
        rows: sampled.len(),
        scored_rows: scores.len(),
        features,
        score,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform(n: usize) -> Vec<f64> {
        (0..n).map(|i| i as f64).collect()
    }

    #[test]
    fn deciles_of_distinct_values_make_ten_equal_bins() {
        let d = Distribution::of(&mut uniform(1000)).unwrap();
        assert_eq!(d.edges.len(), 9);
        assert_eq!(d.shares.len(), 10);
        for share in &d.shares {
            assert!((share - 0.1).abs() < 0.002, "{:?}", d.shares);
        }
        assert_eq!((d.min, d.max), (0.0, 999.0));
        assert!((d.shares.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn ties_merge_into_fewer_bins_and_no_bin_is_made_of_nothing() {
        // 80% zeros, then a few distinct values: a port-like or count-like feature.
        let mut values: Vec<f64> = std::iter::repeat_n(0.0, 800)
            .chain((1..=200).map(f64::from))
            .collect();
        let d = Distribution::of(&mut values).unwrap();
        assert!(d.edges.len() < 9, "{:?}", d.edges);
        assert!(d.edges.windows(2).all(|w| w[0] < w[1]), "{:?}", d.edges);
        assert!((d.shares[0] - 0.8).abs() < 1e-12, "{:?}", d.shares);
        assert!(d.shares.iter().all(|&s| s > 0.0), "{:?}", d.shares);
        let constant = Distribution::of(&mut vec![5.0; 100]).unwrap();
        assert_eq!(
            (constant.edges.len(), constant.shares.as_slice()),
            (0, &[1.0][..])
        );
    }

    #[test]
    fn infinities_are_values_beyond_every_edge_and_outside_the_range() {
        let mut values = uniform(100);
        values.extend([f64::INFINITY; 10]);
        let d = Distribution::of(&mut values).unwrap();
        assert!(d.edges.iter().all(|e| e.is_finite()));
        assert_eq!(d.max, 99.0, "the range bounds finite values");
        assert_eq!(d.bin_of(f64::INFINITY), d.edges.len());
        assert_eq!(d.bin_of(f64::NEG_INFINITY), 0);
    }

    #[test]
    fn a_value_on_an_edge_falls_in_the_bin_the_edge_closes() {
        let d = Distribution {
            edges: vec![1.0, 2.0],
            shares: vec![0.0; 3],
            min: 0.0,
            max: 3.0,
        };
        assert_eq!(d.bin_of(1.0), 0);
        assert_eq!(d.bin_of(1.5), 1);
        assert_eq!(d.bin_of(2.0), 1);
        assert_eq!(d.bin_of(2.0001), 2);
        assert_eq!(
            d.shares_of([0.5, 1.0, 2.5, f64::NAN]),
            vec![2.0 / 3.0, 0.0, 1.0 / 3.0]
        );
    }

    #[test]
    fn psi_is_zero_for_the_same_data_and_grows_with_the_shift() {
        let baseline = Distribution::of(&mut uniform(10_000)).unwrap();
        let same = baseline.shares_of(uniform(10_000));
        assert!(psi(&baseline.shares, &same).abs() < 1e-9);
        let small = baseline.shares_of((0..10_000).map(|i| i as f64 + 300.0));
        let large = baseline.shares_of((0..10_000).map(|i| i as f64 * 3.0));
        let (small, large) = (psi(&baseline.shares, &small), psi(&baseline.shares, &large));
        assert!(small > 0.0 && small < large, "{small} {large}");
        assert!(large > 0.25, "tripled values are a major shift: {large}");
        // Everything in one bin the baseline barely has: large but finite.
        let all_high = baseline.shares_of([1e9; 100]);
        assert!(psi(&baseline.shares, &all_high).is_finite());
    }

    #[test]
    fn compute_covers_every_feature_missing_values_and_the_scores() {
        let features = vec!["a".to_string(), "b".to_string()];
        // a: 0..999; b: missing on every other row.
        let values: Vec<f32> = (0..1000)
            .flat_map(|i| [i as f32, if i % 2 == 0 { f32::NAN } else { 1.0 }])
            .collect();
        let scores: Vec<f64> = (0..200).map(|i| f64::from(i) / 200.0).collect();
        let baseline = compute(&features, &values, &scores);
        assert_eq!((baseline.rows, baseline.scored_rows), (1000, 200));
        assert_eq!(baseline.features[0].name, "a");
        assert_eq!(baseline.features[0].missing_rate, 0.0);
        assert_eq!(baseline.features[1].missing_rate, 0.5);
        assert_eq!(
            baseline.features[0].distribution.as_ref().unwrap().shares.len(),
            10
        );
        assert_eq!(baseline.score.shares.len(), 10);
        let all_missing = compute(&features[..1], &[f32::NAN; 4], &[]);
        assert_eq!(all_missing.features[0].distribution, None);
        assert_eq!(all_missing.features[0].missing_rate, 1.0);
    }

    #[test]
    fn large_inputs_are_sampled_evenly() {
        let features = vec!["a".to_string()];
        let values: Vec<f32> = (0..250_000).map(|i| i as f32).collect();
        let baseline = compute(&features, &values, &[]);
        assert!(
            baseline.rows <= SAMPLE_ROWS && baseline.rows >= SAMPLE_ROWS / 2,
            "{}",
            baseline.rows
        );
        let d = baseline.features[0].distribution.as_ref().unwrap();
        assert_eq!(d.min, 0.0);
        assert!(d.max > 249_990.0, "{}", d.max);
        assert!((d.edges[4] - 125_000.0).abs() < 1_000.0, "{:?}", d.edges);
    }
}
