//! What one column of captured traffic looked like, accumulated a value at a time so memory does
//! not grow with the traffic: present and missing counts, the sum, Welford's running mean and
//! variance, the finite range, whether every value was a whole number, and the count in each of the
//! baseline's bins and outside the baseline's range. Everything the comparison and
//! `statistics.json` need comes from here.

use crate::baseline::Distribution;

/// One column's tally, binned with the baseline's `bins` (none when the baseline has no values).
#[derive(Debug, Clone, PartialEq)]
pub struct ValueTally<'b> {
    bins: Option<&'b Distribution>,
    pub present: u64,
    pub missing: u64,
    /// Finite values among the present ones (the rest are ±inf: beyond every edge).
    pub finite: u64,
    pub sum: f64,
    mean: f64,
    /// Welford's sum of squared deviations from the running mean.
    squares: f64,
    pub min: f64,
    pub max: f64,
    /// Every finite value is a whole number.
    pub whole: bool,
    /// Present values per baseline bin.
    pub bin_counts: Vec<u64>,
    /// Finite values below the baseline's `min` or above its `max`.
    pub out_of_range: u64,
}

impl<'b> ValueTally<'b> {
    pub fn new(bins: Option<&'b Distribution>) -> Self {
        Self {
            bins,
            present: 0,
            missing: 0,
            finite: 0,
            sum: 0.0,
            mean: 0.0,
            squares: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            whole: true,
            bin_counts: vec![0; bins.map_or(0, |d| d.shares.len())],
            out_of_range: 0,
        }
    }

    /// Counts `value`; NaN is a missing value.
    pub fn add(&mut self, value: f64) {
        if value.is_nan() {
            self.missing += 1;
            return;
        }
        self.present += 1;
        if let Some(bins) = self.bins {
            self.bin_counts[bins.bin_of(value)] += 1;
        }
        if !value.is_finite() {
            return;
        }
        self.finite += 1;
        self.sum += value;
        let delta = value - self.mean;
        self.mean += delta / self.finite as f64;
        self.squares += delta * (value - self.mean);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.whole &= value.fract() == 0.0;
        if let Some(bins) = self.bins
            && (value < bins.min || value > bins.max)
        {
            self.out_of_range += 1;
        }
    }

    /// The baseline distribution the values are binned with.
    pub fn baseline(&self) -> Option<&'b Distribution> {
        self.bins
    }

    pub fn rows(&self) -> u64 {
        self.present + self.missing
    }

    pub fn mean(&self) -> Option<f64> {
        (self.finite > 0).then_some(self.mean)
    }

    /// The population standard deviation of the finite values.
    pub fn std_dev(&self) -> Option<f64> {
        (self.finite > 0).then(|| (self.squares / self.finite as f64).sqrt())
    }

    /// `(min, max)` of the finite values.
    pub fn range(&self) -> Option<(f64, f64)> {
        (self.finite > 0).then_some((self.min, self.max))
    }

    pub fn missing_rate(&self) -> Option<f64> {
        ratio(self.missing, self.rows())
    }

    /// The share of present values in each baseline bin; `None` without a baseline or values.
    pub fn shares(&self) -> Option<Vec<f64>> {
        self.bins?;
        (self.present > 0).then(|| {
            self.bin_counts
                .iter()
                .map(|&count| count as f64 / self.present as f64)
                .collect()
        })
    }

    /// The share of finite values outside the baseline's range.
    pub fn out_of_range_rate(&self) -> Option<f64> {
        self.bins?;
        ratio(self.out_of_range, self.finite)
    }
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deciles() -> Distribution {
        Distribution::of(&mut (0..1000).map(f64::from).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn counts_values_into_the_baseline_bins_and_outside_its_range() {
        let baseline = deciles();
        let mut tally = ValueTally::new(Some(&baseline));
        for value in [0.0, 5.0, 999.0, 1500.0, -1.0, f64::NAN, f64::INFINITY] {
            tally.add(value);
        }
        assert_eq!((tally.present, tally.missing, tally.finite), (6, 1, 5));
        assert_eq!(tally.bin_counts.iter().sum::<u64>(), 6);
        assert_eq!(tally.bin_counts[0], 3, "0, 5 and -1 fall in the first decile");
        assert_eq!(tally.bin_counts[9], 3, "999, 1500 and inf fall in the last");
        assert_eq!(tally.out_of_range, 2);
        assert_eq!(tally.out_of_range_rate(), Some(2.0 / 5.0));
        assert_eq!(tally.missing_rate(), Some(1.0 / 7.0));
        assert_eq!(tally.range(), Some((-1.0, 1500.0)));
        assert!(tally.whole);
        let shares = tally.shares().unwrap();
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn moments_are_those_of_the_finite_values() {
        let mut tally = ValueTally::new(None);
        for value in [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.5] {
            tally.add(value);
        }
        tally.add(f64::NEG_INFINITY);
        assert_eq!(tally.sum, 40.5);
        assert!((tally.mean().unwrap() - 40.5 / 8.0).abs() < 1e-12);
        let mean = 40.5 / 8.0;
        let variance = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.5]
            .iter()
            .map(|v: &f64| (v - mean).powi(2))
            .sum::<f64>()
            / 8.0;
        assert!((tally.std_dev().unwrap() - variance.sqrt()).abs() < 1e-12);
        assert!(!tally.whole);
        assert_eq!(tally.shares(), None, "no baseline, no bins");
        assert_eq!(tally.out_of_range_rate(), None);
    }

    #[test]
    fn an_empty_tally_has_no_figures() {
        let baseline = deciles();
        let tally = ValueTally::new(Some(&baseline));
        assert_eq!(tally.rows(), 0);
        assert_eq!(
            (tally.mean(), tally.std_dev(), tally.range(), tally.missing_rate()),
            (None, None, None, None)
        );
        assert_eq!((tally.shares(), tally.out_of_range_rate()), (None, None));
    }
}
