//! Seeded, stratified splits: the validation hold-out when there is no validation channel, and the
//! held-out evaluation splits that tests and benchmarks use.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Row indices of the two sides of a split, each in ascending order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    pub held_out: Vec<usize>,
}

/// Holds out `fraction` of each class (rounded, at least one row of a class that has two or more),
/// chosen by a seeded shuffle, so the class ratio is the same on both sides.
pub fn stratified(labels: &[bool], fraction: f64, seed: u64) -> Split {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut train = Vec::with_capacity(labels.len());
    let mut held_out = Vec::with_capacity((labels.len() as f64 * fraction) as usize + 2);
    for class in [false, true] {
        let mut rows: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        rows.shuffle(&mut rng);
        let mut take = (rows.len() as f64 * fraction).round() as usize;
        if rows.len() >= 2 {
            take = take.clamp(1, rows.len() - 1);
        } else {
            take = 0;
        }
        held_out.extend_from_slice(&rows[..take]);
        train.extend_from_slice(&rows[take..]);
    }
    train.sort_unstable();
    held_out.sort_unstable();
    Split { train, held_out }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(positives: usize, negatives: usize) -> Vec<bool> {
        (0..positives + negatives)
            .map(|i| i % (positives + negatives) < positives)
            .collect()
    }

    #[test]
    fn split_is_stratified_disjoint_and_complete() {
        let y = labels(800, 200);
        let split = stratified(&y, 0.3, 7);
        assert_eq!(split.held_out.len(), 300);
        assert_eq!(split.held_out.iter().filter(|&&i| y[i]).count(), 240);
        let mut all: Vec<usize> = split.train.iter().chain(&split.held_out).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn same_seed_same_split_other_seed_other_split() {
        let y = labels(500, 500);
        assert_eq!(stratified(&y, 0.2, 1), stratified(&y, 0.2, 1));
        assert_ne!(stratified(&y, 0.2, 1), stratified(&y, 0.2, 2));
    }

    #[test]
    fn tiny_classes_keep_a_row_on_each_side() {
        let y = labels(2, 50);
        let split = stratified(&y, 0.1, 3);
        assert_eq!(split.held_out.iter().filter(|&&i| y[i]).count(), 1);
        assert_eq!(split.train.iter().filter(|&&i| y[i]).count(), 1);
    }
}
