//! `metrics.json`: the held-out evaluations `model-image train` writes into the model directory
//! (and so into `model.tar.gz` on SageMaker). `train` writes it and every target reads it with this
//! one type; the quality gate compares its validation values.

use std::collections::BTreeMap;

use metrics::{Evaluation, Metric};
use serde::{Deserialize, Serialize};

/// The file's name in the model directory.
pub const FILE_NAME: &str = "metrics.json";

/// Held-out metrics per split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsFile {
    pub validation: Evaluation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Evaluation>,
}

/// Point values of an evaluation's metrics.
pub type MetricValues = BTreeMap<Metric, f64>;

impl MetricsFile {
    /// Reads the file's text.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The validation metrics' point values.
    pub fn validation_values(&self) -> MetricValues {
        self.validation
            .estimates()
            .into_iter()
            .map(|(metric, estimate)| (metric, estimate.value))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_round_trips_and_names_every_metric() {
        let labels = [true, false, true, false, true, false];
        let scores = [0.9, 0.2, 0.8, 0.3, 0.4, 0.6];
        let bootstrap = metrics::BootstrapConfig {
            resamples: 20,
            seed: 1,
        };
        let file = MetricsFile {
            validation: metrics::evaluate(&labels, &scores, 0.5, &bootstrap),
            test: None,
        };
        let text = serde_json::to_string(&file).unwrap();
        assert!(text.contains("\"pr_auc\":{\"value\""), "{text}");
        assert!(!text.contains("\"test\""), "{text}");
        let back = MetricsFile::from_json(&text).unwrap();
        assert_eq!(back.validation.confusion, file.validation.confusion);
        let (values, want) = (back.validation_values(), file.validation_values());
        assert_eq!(values.len(), Metric::ALL.len());
        for (metric, value) in &want {
            assert!((values[metric] - value).abs() < 1e-12, "{metric}");
        }
        assert_eq!(want[&Metric::PrAuc], file.validation.pr_auc.value);
        assert!(MetricsFile::from_json(r#"{"test": null}"#).is_err());
    }
}
