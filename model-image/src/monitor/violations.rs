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

use super::comparison::{Comparison, Finding};

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

/// Model Monitor's check types that ours map to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckType {
    BaselineDriftCheck,
    CompletenessCheck,
}

impl CheckType {
    /// The name in `constraint_violations.json`.
    pub fn name(self) -> &'static str {
        match self {
            CheckType::BaselineDriftCheck => "baseline_drift_check",
            CheckType::CompletenessCheck => "completeness_check",
        }
    }
}

impl Serialize for CheckType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl Finding {
    pub fn check_type(&self) -> CheckType {
        match self {
            Finding::Drift { .. } | Finding::OutOfRange { .. } => CheckType::BaselineDriftCheck,
            Finding::Incomplete { .. } => CheckType::CompletenessCheck,
        }
    }

    /// One sentence, in the style of Model Monitor's own descriptions.
    pub fn description(&self) -> String {
        match *self {
            Finding::Drift { psi, threshold } => format!(
                "Baseline drift distance (PSI over the baseline's bins): {psi:.4} exceeds threshold: {threshold}"
            ),
            Finding::Incomplete {
                missing_rate,
                baseline_missing_rate,
                margin,
            } => format!(
                "Missing rate {:.2}% exceeds the baseline's {:.2}% by more than {} points",
                missing_rate * 100.0,
                baseline_missing_rate * 100.0,
                margin * 100.0
            ),
            Finding::OutOfRange {
                rate,
                limit,
                min,
                max,
            } => format!(
                "{:.2}% of the values lie outside the baseline range [{min}, {max}]; the limit is {}%",
                rate * 100.0,
                limit * 100.0
            ),
        }
    }
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
    use crate::monitor::comparison::{ColumnComparison, Judgement, Thresholds};

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
