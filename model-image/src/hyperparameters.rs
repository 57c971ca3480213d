//! Training hyperparameters: parsed from SageMaker's `hyperparameters.json` (an object whose values
//! are all strings), validated, with defaults for everything.
//!
//! The keys and the encoding of their values are orchestrate's and this container's shared contract
//! (`contract::hyperparameters`): names (`label`, `positive_class`) are taken verbatim, `exclude` is
//! a JSON array of column names, numbers are their text. Keys SageMaker or its SDKs add on their own
//! (`sagemaker_*`, `_tuning_*`) are ignored; any other unknown key is an error, so a typo never
//! silently trains with a default.

use std::collections::BTreeMap;

use contract::hyperparameters::{Key, decode_columns};
use serde::{Deserialize, Serialize};

use crate::schema::{DEFAULT_LABEL, DEFAULT_POSITIVE_CLASS, LEAKY_COLUMNS};

/// The most training threads `threads` may ask for. More would only have OpenMP reserve a stack per
/// thread until the address space runs out. orchestrate's spec validates deploy.yaml against the
/// same bound, in its own `MAX_THREADS` (crates/spec/src/validate/training.rs: the spec cannot link
/// this crate); a test there reads this line and fails when the two differ.
pub const MAX_THREADS: u32 = 4_096;

/// The most bootstrap resamples `bootstrap_resamples` may ask for. Each resample costs a pass over
/// the scored rows and keeps a value per metric; beyond this the intervals no longer change visibly
/// while the time and memory still grow. Repeated as the spec's `MAX_BOOTSTRAP_RESAMPLES`
/// (crates/spec/src/validate/training.rs), kept equal like [`MAX_THREADS`].
pub const MAX_BOOTSTRAP_RESAMPLES: u32 = 10_000;

/// How the decision threshold is chosen on validation data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdChoice {
    /// Maximise the positive class's F1.
    MaxF1,
    /// Highest recall whose false-positive rate is at most this value.
    TargetFpr(f64),
}

/// Every hyperparameter `train` understands, with its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hyperparameters {
    /// Label column (default `Label`).
    pub label: String,
    /// Label value of the positive class (default `Anomaly`).
    pub positive_class: String,
    /// Columns never used as features (default: the leaky identifiers and label-derived columns).
    pub exclude: Vec<String>,
    /// Shrinkage per boosting round (default 0.1, in (0, 1]).
    pub learning_rate: f64,
    /// Cap on boosting rounds; early stopping usually ends sooner (default 1000).
    pub max_rounds: u32,
    /// Stop when validation log-loss has not improved for this many rounds (default 30).
    pub early_stopping_rounds: u32,
    /// Leaves per tree (default 31).
    pub num_leaves: u32,
    /// Depth limit, -1 for none (default -1).
    pub max_depth: i32,
    /// Minimum rows per leaf (default 20).
    pub min_data_in_leaf: u32,
    /// Fraction of features sampled per tree (default 1.0).
    pub feature_fraction: f64,
    /// Training threads (default: all cores; at most [`MAX_THREADS`]).
    pub threads: u32,
    /// Fraction of the train channel held out for validation when there is no validation channel
    /// (default 0.2; stratified and seeded).
    pub validation_fraction: f64,
    /// How the decision threshold is chosen (default: max F1; `target_fpr` sets a false-positive budget).
    pub threshold: ThresholdChoice,
    /// Seed for the split, LightGBM and the bootstrap (default 42).
    pub seed: u64,
    /// Bootstrap resamples for confidence intervals (default 1000; at most [`MAX_BOOTSTRAP_RESAMPLES`]).
    pub bootstrap_resamples: u32,
    /// LightGBM's quantized training (`use_quantized_grad` with `quant_train_renew_leaf`): gradients
    /// rounded to a few integer levels while histograms are built, leaf values refitted exactly.
    /// About a fifth less fit time on large data, at a small cost in quality (default false; the
    /// training benchmark measures both).
    #[serde(default)]
    pub quantized_gradients: bool,
}

impl Default for Hyperparameters {
    fn default() -> Self {
        Self {
            label: DEFAULT_LABEL.to_string(),
            positive_class: DEFAULT_POSITIVE_CLASS.to_string(),
            exclude: LEAKY_COLUMNS.iter().map(|c| c.to_string()).collect(),
            learning_rate: 0.1,
            max_rounds: 1000,
            early_stopping_rounds: 30,
            num_leaves: 31,
            max_depth: -1,
            min_data_in_leaf: 20,
            feature_fraction: 1.0,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            validation_fraction: 0.2,
            threshold: ThresholdChoice::MaxF1,
            seed: 42,
            bootstrap_resamples: 1000,
            quantized_gradients: false,
        }
    }
}

/// A hyperparameter that cannot be used, with the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HyperparameterError {
    #[error("hyperparameters.json is not a JSON object of strings: {0}")]
    NotAnObject(String),
    #[error("unknown hyperparameter `{key}`{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    Unknown { key: String, suggestion: Option<String> },
    #[error("hyperparameter `{key}` = `{value}` is invalid: {expected}")]
    Invalid {
        key: String,
        value: String,
        expected: String,
    },
}

impl Hyperparameters {
    /// Parses SageMaker's hyperparameters.json text. Values may be strings (as SageMaker writes them)
    /// or plain JSON numbers and lists (as a person might: a list is the JSON text of the value).
    pub fn from_json(text: &str) -> Result<Self, HyperparameterError> {
        let raw: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|e| HyperparameterError::NotAnObject(e.to_string()))?;
        let strings = raw
            .into_iter()
            .map(|(key, value)| {
                let text = match value {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (key, text)
            })
            .collect();
        Self::from_strings(&strings)
    }

    /// Builds hyperparameters from the string map SageMaker passes.
    pub fn from_strings(values: &BTreeMap<String, String>) -> Result<Self, HyperparameterError> {
        let mut hp = Self::default();
        for (key, raw) in values {
            let Some(known) = Key::from_text(key) else {
                if key.starts_with("sagemaker_") || key.starts_with('_') {
                    continue;
                }
                return Err(HyperparameterError::Unknown {
                    key: key.to_string(),
                    suggestion: closest_key(key),
                });
            };
            // Names are verbatim (a column may be called " Destination Port"); numbers may carry
            // the spaces a person types.
            let value = if known.is_name() { raw.as_str() } else { raw.trim() };
            match known {
                Key::Label => hp.label = non_empty(key, value)?,
                Key::PositiveClass => hp.positive_class = non_empty(key, value)?,
                Key::Exclude => {
                    hp.exclude = decode_columns(value).map_err(|e| invalid(key, value, e.to_string()))?
                }
                Key::LearningRate => {
                    hp.learning_rate = number(key, value, "a number in (0, 1]", |v| v > 0.0 && v <= 1.0)?
                }
                Key::MaxRounds => hp.max_rounds = integer(key, value, "an integer >= 1", 1)?,
                Key::EarlyStoppingRounds => {
                    hp.early_stopping_rounds = integer(key, value, "an integer >= 1", 1)?
                }
                Key::NumLeaves => hp.num_leaves = integer(key, value, "an integer >= 2", 2)?,
                Key::MaxDepth => {
                    hp.max_depth = value
                        .parse::<i32>()
                        .ok()
                        .filter(|&d| d == -1 || d >= 1)
                        .ok_or_else(|| invalid(key, value, "-1 (no limit) or an integer >= 1"))?
                }
                Key::MinDataInLeaf => hp.min_data_in_leaf = integer(key, value, "an integer >= 0", 0)?,
                Key::FeatureFraction => {
                    hp.feature_fraction = number(key, value, "a number in (0, 1]", |v| v > 0.0 && v <= 1.0)?
                }
                Key::Threads => hp.threads = integer_in(key, value, 1, MAX_THREADS)?,
                Key::ValidationFraction => {
                    hp.validation_fraction =
                        number(key, value, "a number in (0, 0.9]", |v| v > 0.0 && v <= 0.9)?
                }
                Key::TargetFpr => {
                    hp.threshold = ThresholdChoice::TargetFpr(number(
                        key,
                        value,
                        "a false-positive rate in (0, 1)",
                        |v| v > 0.0 && v < 1.0,
                    )?)
                }
                Key::Seed => {
                    hp.seed = value
                        .parse()
                        .map_err(|_| invalid(key, value, "a non-negative integer"))?
                }
                Key::BootstrapResamples => {
                    hp.bootstrap_resamples = integer_in(key, value, 0, MAX_BOOTSTRAP_RESAMPLES)?
                }
                Key::QuantizedGradients => hp.quantized_gradients = boolean(key, value)?,
            }
        }
        Ok(hp)
    }
}

fn invalid(key: &str, value: &str, expected: impl Into<String>) -> HyperparameterError {
    HyperparameterError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        expected: expected.into(),
    }
}

fn boolean(key: &str, value: &str) -> Result<bool, HyperparameterError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(invalid(key, value, "true or false")),
    }
}

fn non_empty(key: &str, value: &str) -> Result<String, HyperparameterError> {
    if value.is_empty() {
        Err(invalid(key, value, "a non-empty column or class name"))
    } else {
        Ok(value.to_string())
    }
}

fn number(
    key: &str,
    value: &str,
    expected: &'static str,
    ok: impl Fn(f64) -> bool,
) -> Result<f64, HyperparameterError> {
    value
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && ok(*v))
        .ok_or_else(|| invalid(key, value, expected))
}

fn integer(key: &str, value: &str, expected: &'static str, min: u32) -> Result<u32, HyperparameterError> {
    parse_u32(value)
        .filter(|&v| v >= min)
        .ok_or_else(|| invalid(key, value, expected))
}

/// An integer in `min..=max`; the error names the allowed range.
fn integer_in(key: &str, value: &str, min: u32, max: u32) -> Result<u32, HyperparameterError> {
    parse_u32(value)
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| invalid(key, value, format!("an integer from {min} to {max}")))
}

/// Accepts "500" and "500.0" (some SDKs stringify numbers as floats).
fn parse_u32(value: &str) -> Option<u32> {
    value.parse::<u32>().ok().or_else(|| {
        value
            .parse::<f64>()
            .ok()
            .filter(|v| v.fract() == 0.0 && *v >= 0.0 && *v <= f64::from(u32::MAX))
            .map(|v| v as u32)
    })
}

/// The known key closest to a misspelt one, if any is close.
fn closest_key(unknown: &str) -> Option<String> {
    Key::ALL
        .iter()
        .map(|k| k.as_str())
        .map(|k| (edit_distance(unknown, k), k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min()
        .map(|(_, k)| k.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_object_gives_defaults() {
        let hp = Hyperparameters::from_json("{}").unwrap();
        assert_eq!(hp, Hyperparameters::default());
        assert_eq!(hp.exclude.len(), 6);
        assert_eq!(hp.threshold, ThresholdChoice::MaxF1);
    }

    #[test]
    fn sagemaker_string_values_are_parsed() {
        let hp = Hyperparameters::from_json(
            r#"{"learning_rate": " 0.05", "max_rounds": "200.0", "max_depth": "-1",
                "exclude": "[\"Flow_ID\", \"Src_IP\"]", "target_fpr": "0.01", "sagemaker_program": "x"}"#,
        )
        .unwrap();
        assert_eq!(hp.learning_rate, 0.05);
        assert_eq!(hp.max_rounds, 200);
        assert_eq!(hp.exclude, ["Flow_ID", "Src_IP"]);
        assert_eq!(hp.threshold, ThresholdChoice::TargetFpr(0.01));
    }

    #[test]
    fn json_numbers_and_lists_are_accepted() {
        let hp = Hyperparameters::from_json(r#"{"num_leaves": 63, "exclude": ["A", "B"]}"#).unwrap();
        assert_eq!(hp.num_leaves, 63);
        assert_eq!(hp.exclude, ["A", "B"]);
    }

    #[test]
    fn names_are_verbatim_and_exclusions_a_json_list() {
        let columns = [" Destination Port", "Flow ID", "a,b", "k=v", "x;y", "say \"hi\""].map(str::to_string);
        let strings = BTreeMap::from([
            ("label".to_string(), " Label".to_string()),
            ("positive_class".to_string(), "Anomaly ".to_string()),
            (
                "exclude".to_string(),
                contract::hyperparameters::encode_columns(&columns),
            ),
        ]);
        let hp = Hyperparameters::from_strings(&strings).unwrap();
        assert_eq!(hp.label, " Label");
        assert_eq!(hp.positive_class, "Anomaly ");
        assert_eq!(hp.exclude, columns);
        let err = Hyperparameters::from_json(r#"{"exclude": "Flow_ID,Src_IP"}"#).unwrap_err();
        assert!(err.to_string().contains("JSON array of column names"), "{err}");
    }

    #[test]
    fn quantized_gradients_is_a_boolean() {
        assert!(!Hyperparameters::default().quantized_gradients);
        for (text, expected) in [
            (r#""true""#, true),
            ("true", true),
            (r#""False""#, false),
            (r#""0""#, false),
        ] {
            let hp = Hyperparameters::from_json(&format!(r#"{{"quantized_gradients": {text}}}"#)).unwrap();
            assert_eq!(hp.quantized_gradients, expected, "{text}");
        }
        let err = Hyperparameters::from_json(r#"{"quantized_gradients": "sometimes"}"#).unwrap_err();
        assert!(matches!(err, HyperparameterError::Invalid { .. }), "{err}");
    }

    #[test]
    fn typo_is_an_error_with_a_suggestion() {
        let err = Hyperparameters::from_json(r#"{"learning_rte": "0.1"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown hyperparameter `learning_rte` (did you mean `learning_rate`?)"
        );
        let err = Hyperparameters::from_json(r#"{"colour": "red"}"#).unwrap_err();
        assert_eq!(err.to_string(), "unknown hyperparameter `colour`");
    }

    #[test]
    fn out_of_range_values_are_errors() {
        for (key, value) in [
            ("learning_rate", "0"),
            ("learning_rate", "abc"),
            ("max_rounds", "0"),
            ("max_rounds", "1.5"),
            ("num_leaves", "1"),
            ("max_depth", "0"),
            ("feature_fraction", "1.5"),
            ("validation_fraction", "1"),
            ("target_fpr", "0"),
            ("label", ""),
            ("seed", "-3"),
        ] {
            let json = format!(r#"{{"{key}": "{value}"}}"#);
            let err = Hyperparameters::from_json(&json).unwrap_err();
            assert!(
                matches!(err, HyperparameterError::Invalid { .. }),
                "{key}={value}: {err}"
            );
        }
    }

    /// Regression: a huge `threads` or `bootstrap_resamples` passed parsing and aborted the run
    /// (OpenMP threads, interval buffers) without a failure file.
    #[test]
    fn threads_and_bootstrap_resamples_are_bounded_and_the_error_names_the_range() {
        for (key, value, range) in [
            ("threads", "0", "from 1 to 4096"),
            ("threads", "4097", "from 1 to 4096"),
            ("threads", "4294967295", "from 1 to 4096"),
            ("threads", "1e12", "from 1 to 4096"),
            ("bootstrap_resamples", "10001", "from 0 to 10000"),
            ("bootstrap_resamples", "4294967295", "from 0 to 10000"),
            ("bootstrap_resamples", "-1", "from 0 to 10000"),
        ] {
            let err = Hyperparameters::from_json(&format!(r#"{{"{key}": "{value}"}}"#)).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("hyperparameter `{key}` = `{value}` is invalid: an integer {range}")
            );
        }
        let hp =
            Hyperparameters::from_json(r#"{"threads": "4096", "bootstrap_resamples": "10000.0"}"#).unwrap();
        assert_eq!(
            (hp.threads, hp.bootstrap_resamples),
            (MAX_THREADS, MAX_BOOTSTRAP_RESAMPLES)
        );
    }

    #[test]
    fn not_an_object_is_an_error() {
        assert!(matches!(
            Hyperparameters::from_json("[1]"),
            Err(HyperparameterError::NotAnObject(_))
        ));
    }
}
