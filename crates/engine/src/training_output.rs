//! What a completed training job leaves for the rollout: `model-image train` writes its metrics to
//! `metrics.json` in the model directory (inside the model artifact, `model.tar.gz` on SageMaker),
//! in the shape of [`contract::metrics_file::MetricsFile`]. The quality gate reads the validation
//! values; every target reads them with [`validation_metrics`].

pub use contract::Metric;
pub use contract::metrics_file::{FILE_NAME as METRICS_FILE, MetricValues};

/// The validation metrics' point values of a `metrics.json`.
pub fn validation_metrics(text: &str) -> Result<MetricValues, String> {
    contract::metrics_file::MetricsFile::from_json(text)
        .map(|file| file.validation_values())
        .map_err(|e| format!("not the metrics file model-image writes: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_model_images_is_refused() {
        for text in [
            "nope",
            r#"{"test": {}}"#,
            r#"{"validation": {"pr_auc": {"value": 0.9}}}"#,
        ] {
            let error = validation_metrics(text).unwrap_err();
            assert!(
                error.contains("not the metrics file model-image writes"),
                "{error}"
            );
        }
    }
}
