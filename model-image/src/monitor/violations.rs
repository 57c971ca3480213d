//! `constraint_violations.json` in SageMaker Model Monitor's format (the "Schema for Violations"):
//! `{"violations": [{"feature_name", "constraint_check_type", "description"}]}`, empty when
//! nothing crossed a threshold or the window had too few rows for a verdict. Model Monitor marks an
//! execution `CompletedWithViolations` from this file.
//!
//! Check types stay within Model Monitor's documented set: a PSI above the drift threshold and a
//! range exceeded are both `baseline_drift_check` (each a departure from the baseline's
//! distribution; the description says which), a missing rate beyond the margin is
//! `completeness_check`. The score's drift is reported under the feature name `score`.

use serde::Serialize;

pub use contract::drift::CheckType;

use super::comparison::Comparison;

/// `constraint_violations.json`.
pub const FILE_NAME: &str = "constraint_violations.json";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConstraintViolations {
    pub violations: Vec<Violation>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    pub feature_name: String,
    pub constraint_check_type: CheckType,
    pub description: String,
}

/// The violations of `comparison`, features in the model's order and the score last.
pub fn of(comparison: &Comparison) -> ConstraintViolations {
    ConstraintViolations {
        violations: comparison
            .violations()
            .map(|(name, finding)| Violation {
                feature_name: name.to_owned(),
                constraint_check_type: finding.check_type(),
                description: finding.description(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::comparison::{ColumnComparison, Finding, Judgement, Thresholds};

    #[test]
    fn each_finding_becomes_a_violation_in_model_monitors_schema() {
        let column = |name: &str, findings: Vec<Finding>| ColumnComparison {
            name: name.to_owned(),
            present: 500,
            missing: 0,
            missing_rate: None,
            baseline_missing_rate: None,
            psi: None,
            out_of_range_rate: None,
            findings,
        };
        let comparison = Comparison {
            thresholds: Thresholds::default(),
            features_judgement: Judgement::Judged,
            score_judgement: Judgement::Judged,
            features: vec![
                column(
                    "Flow_Duration",
                    vec![
                        Finding::Drift {
                            psi: 2.34567,
                            threshold: 0.2,
                        },
                        Finding::OutOfRange {
                            rate: 0.125,
                            limit: 0.01,
                            min: 0.0,
                            max: 119999998.0,
                        },
                    ],
                ),
                column("Src_Port", Vec::new()),
                column(
                    "Flow_Byts/s",
                    vec![Finding::Incomplete {
                        missing_rate: 0.3,
                        baseline_missing_rate: 0.0003,
                        margin: 0.05,
                    }],
                ),
            ],
            score: column(
                "score",
                vec![Finding::Drift {
                    psi: 0.5,
                    threshold: 0.2,
                }],
            ),
        };
        assert_eq!(
            serde_json::to_value(of(&comparison)).unwrap(),
            serde_json::json!({"violations": [
                {
                    "feature_name": "Flow_Duration",
                    "constraint_check_type": "baseline_drift_check",
                    "description": "Baseline drift distance (PSI over the baseline's bins): 2.3457 exceeds threshold: 0.2"
                },
                {
                    "feature_name": "Flow_Duration",
                    "constraint_check_type": "baseline_drift_check",
                    "description": "12.50% of the values lie outside the baseline range [0, 119999998]; the limit is 1%"
                },
                {
                    "feature_name": "Flow_Byts/s",
                    "constraint_check_type": "completeness_check",
                    "description": "Missing rate 30.00% exceeds the baseline's 0.03% by more than 5 points"
                },
                {
                    "feature_name": "score",
                    "constraint_check_type": "baseline_drift_check",
                    "description": "Baseline drift distance (PSI over the baseline's bins): 0.5000 exceeds threshold: 0.2"
                }
            ]})
        );
    }
}
