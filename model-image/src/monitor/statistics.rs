//! `statistics.json` in SageMaker Model Monitor's format (the "Schema for Statistics" of its
//! bring-your-own-container contract): `version` 0, `dataset.item_count` (request rows), and per
//! feature its `inferred_type` and `numerical_statistics`: `common.num_present` / `num_missing`,
//! `mean`, `sum`, `std_dev` (population), `min` and `max` of the finite values, and
//! `distribution.kll.buckets`. The model's score is the last entry, named `score`.
//!
//! What differs from Model Monitor's own container, and why: the buckets are the baseline's bins
//! (its decile edges, the outer bins closed at the values seen), not ten equal-width buckets of
//! this window's range, so that each bucket's count compares directly with the baseline's share
//! of it, and so that the whole file is computed in one pass over the traffic; and there is no
//! `kll.sketch`, because no KLL sketch is computed (a made-up one would mislead any tool that
//! merged it). Statistics a column has no value for (`mean` of a column with no values) are left out
//! rather than written as `null`. `inferred_type` is `Integral` when every value seen is a whole
//! number, `Fractional` otherwise and `Unknown` without values.

use serde::Serialize;

use super::comparison::SCORE_NAME;
use super::tally::ValueTally;
use super::traffic::Traffic;
use crate::baseline::Baseline;

/// `statistics.json`.
pub const FILE_NAME: &str = "statistics.json";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Statistics {
    pub version: u32,
    pub dataset: Dataset,
    pub features: Vec<FeatureStatistics>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dataset {
    pub item_count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureStatistics {
    pub name: String,
    pub inferred_type: InferredType,
    pub numerical_statistics: NumericalStatistics,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum InferredType {
    Integral,
    Fractional,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NumericalStatistics {
    pub common: Common,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std_dev: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distribution: Option<DistributionStatistics>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Common {
    pub num_present: u64,
    pub num_missing: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DistributionStatistics {
    pub kll: Kll,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kll {
    pub buckets: Vec<Bucket>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    pub lower_bound: f64,
    pub upper_bound: f64,
    pub count: u64,
}

/// The statistics of `traffic`, the features in the baseline's order and the score last.
pub fn of(baseline: &Baseline, traffic: &Traffic) -> Statistics {
    let features = baseline
        .features
        .iter()
        .map(|f| f.name.as_str())
        .zip(&traffic.features)
        .chain(std::iter::once((SCORE_NAME, &traffic.score)))
        .map(|(name, tally)| FeatureStatistics {
            name: name.to_owned(),
            inferred_type: if tally.finite == 0 {
                InferredType::Unknown
            } else if tally.whole {
                InferredType::Integral
            } else {
                InferredType::Fractional
            },
            numerical_statistics: numerical(tally),
        })
        .collect();
    Statistics {
        version: 0,
        dataset: Dataset {
            item_count: traffic.counts.rows,
        },
        features,
    }
}

fn numerical(tally: &ValueTally) -> NumericalStatistics {
    let range = tally.range();
    NumericalStatistics {
        common: Common {
            num_present: tally.present,
            num_missing: tally.missing,
        },
        mean: tally.mean(),
        sum: range.map(|_| tally.sum),
        std_dev: tally.std_dev(),
        min: range.map(|(min, _)| min),
        max: range.map(|(_, max)| max),
        distribution: buckets(tally).map(|buckets| DistributionStatistics { kll: Kll { buckets } }),
    }
}

/// The baseline's bins as buckets, the outer ones closed at the values seen.
fn buckets(tally: &ValueTally) -> Option<Vec<Bucket>> {
    let bins = tally.baseline()?;
    let (min, max) = tally.range()?;
    let edges = &bins.edges;
    let lower_bounds =
        std::iter::once(edges.first().map_or(min, |&first| min.min(first))).chain(edges.iter().copied());
    let upper_bounds = edges
        .iter()
        .copied()
        .chain(std::iter::once(edges.last().map_or(max, |&last| max.max(last))));
    Some(
        lower_bounds
            .zip(upper_bounds)
            .zip(&tally.bin_counts)
            .map(|((lower_bound, upper_bound), &count)| Bucket {
                lower_bound,
                upper_bound,
                count,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::Distribution;

    #[test]
    fn writes_model_monitors_schema_with_the_baselines_bins_as_buckets() {
        let features = vec!["packets".to_string(), "rate".to_string(), "empty".to_string()];
        let values: Vec<f32> = (0..100)
            .flat_map(|i| [(i % 10) as f32, i as f32 / 7.0, f32::NAN])
            .collect();
        let baseline = crate::baseline::compute(&features, &values, &[0.1, 0.5, 0.9]);
        let mut traffic = Traffic::new(&baseline);
        traffic.counts.rows = 4;
        for (packets, rate) in [(1.0, 0.5), (3.0, 2.5), (12.0, f64::NAN), (0.0, 30.0)] {
            traffic.features[0].add(packets);
            traffic.features[1].add(rate);
            traffic.features[2].add(f64::NAN);
        }
        traffic.score.add(0.25);
        let statistics = of(&baseline, &traffic);
        let json = serde_json::to_value(&statistics).unwrap();
        assert_eq!(json["version"], 0);
        assert_eq!(json["dataset"]["item_count"], 4);
        let names: Vec<&str> = json["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["packets", "rate", "empty", "score"]);

        let packets = &json["features"][0];
        assert_eq!(packets["inferred_type"], "Integral");
        let numbers = &packets["numerical_statistics"];
        assert_eq!(
            numbers["common"],
            serde_json::json!({"num_present": 4, "num_missing": 0})
        );
        assert_eq!(
            (numbers["sum"].as_f64(), numbers["mean"].as_f64()),
            (Some(16.0), Some(4.0))
        );
        assert_eq!(
            (numbers["min"].as_f64(), numbers["max"].as_f64()),
            (Some(0.0), Some(12.0))
        );
        let buckets = numbers["distribution"]["kll"]["buckets"].as_array().unwrap();
        let edges = &baseline.features[0].distribution.as_ref().unwrap().edges;
        assert_eq!(buckets.len(), edges.len() + 1);
        assert_eq!(buckets[0]["lower_bound"].as_f64(), Some(0.0));
        assert_eq!(buckets[0]["upper_bound"].as_f64(), Some(edges[0]));
        assert_eq!(buckets.last().unwrap()["upper_bound"].as_f64(), Some(12.0));
        let counted: u64 = buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum();
        assert_eq!(counted, 4);
        assert!(numbers["distribution"]["kll"].get("sketch").is_none());

        let rate = &json["features"][1];
        assert_eq!(rate["inferred_type"], "Fractional");
        assert_eq!(rate["numerical_statistics"]["common"]["num_missing"], 1);
        let empty = &json["features"][2];
        assert_eq!(empty["inferred_type"], "Unknown");
        assert_eq!(
            empty["numerical_statistics"],
            serde_json::json!({"common": {"num_present": 0, "num_missing": 4}}),
            "no figures for a column without values, not nulls"
        );
        assert_eq!(
            json["features"][3]["numerical_statistics"]["mean"].as_f64(),
            Some(0.25)
        );
    }

    #[test]
    fn a_constant_baseline_feature_is_one_bucket_over_the_values_seen() {
        let constant = Distribution {
            edges: Vec::new(),
            shares: vec![1.0],
            min: 5.0,
            max: 5.0,
        };
        let mut tally = ValueTally::new(Some(&constant));
        for value in [5.0, 6.0, 4.0] {
            tally.add(value);
        }
        assert_eq!(
            buckets(&tally).unwrap(),
            [Bucket {
                lower_bound: 4.0,
                upper_bound: 6.0,
                count: 3
            }]
        );
    }
}
