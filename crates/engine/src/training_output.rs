//! What a completed training job leaves for the rollout: `model-image train` writes its metrics to
//! `model/metrics.json` (inside the model artifact, `model.tar.gz` on SageMaker) as
//! `{"validation": {"pr_auc": {"value": 0.99, "ci_low": …, "ci_high": …}, …}, "test": {…}}`. The quality gate
//! reads the validation values; every target reads them with [`validation_metrics`].

use std::collections::BTreeMap;

/// The path of the metrics file inside the model artifact.
pub const METRICS_FILE: &str = "metrics.json";

/// The validation metrics' point values of a `metrics.json`.
pub fn validation_metrics(text: &str) -> Result<BTreeMap<String, f64>, String> {
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let validation = json
        .get("validation")
        .and_then(|v| v.as_object())
        .ok_or("no `validation` object")?;
    Ok(validation
        .iter()
        .filter_map(|(metric, estimate)| Some((metric.clone(), estimate.get("value")?.as_f64()?)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_every_validation_value() {
        let text = r#"{"validation": {"rows": 300, "threshold": 0.4,
            "pr_auc": {"value": 0.99, "ci_low": 0.98, "ci_high": 1.0},
            "mcc": {"value": -0.1, "ci_low": -0.2, "ci_high": 0.0}},
            "test": {"pr_auc": {"value": 0.5}}}"#;
        let metrics = validation_metrics(text).unwrap();
        assert_eq!(
            metrics,
            BTreeMap::from([("mcc".to_string(), -0.1), ("pr_auc".to_string(), 0.99)])
        );
        assert!(
            validation_metrics(r#"{"test": {}}"#)
                .unwrap_err()
                .contains("validation")
        );
        assert!(validation_metrics("nope").is_err());
    }
}
