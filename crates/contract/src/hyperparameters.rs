//! Hyperparameter keys and the encoding of their values.

use std::fmt;

/// Declares the keys once, with the text SageMaker carries.
macro_rules! keys {
    ($($(#[$doc:meta])* $key:ident = $text:literal,)*) => {
        /// A hyperparameter `model-image train` understands.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Key {
            $($(#[$doc])* $key,)*
        }

        impl Key {
            /// Every key, in declaration order.
            pub const ALL: &'static [Key] = &[$(Key::$key,)*];

            /// The key as it appears in `hyperparameters.json`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Key::$key => $text,)*
                }
            }
        }
    };
}

keys! {
    /// The label column.
    Label = "label",
    /// The label value of the positive class.
    PositiveClass = "positive_class",
    /// Columns never used as features: a JSON array of column names ([`encode_columns`]).
    Exclude = "exclude",
    LearningRate = "learning_rate",
    MaxRounds = "max_rounds",
    EarlyStoppingRounds = "early_stopping_rounds",
    NumLeaves = "num_leaves",
    MaxDepth = "max_depth",
    MinDataInLeaf = "min_data_in_leaf",
    FeatureFraction = "feature_fraction",
    Threads = "threads",
    ValidationFraction = "validation_fraction",
    TargetFpr = "target_fpr",
    Seed = "seed",
    BootstrapResamples = "bootstrap_resamples",
    QuantizedGradients = "quantized_gradients",
}

impl Key {
    /// The key named `text`, if `model-image` knows it.
    pub fn from_text(text: &str) -> Option<Key> {
        Key::ALL.iter().copied().find(|k| k.as_str() == text)
    }

    /// Whether the value is text taken verbatim (a column or class name: never trimmed).
    pub const fn is_name(self) -> bool {
        matches!(self, Key::Label | Key::PositiveClass)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A list of column names as a hyperparameter value: a JSON array of strings.
pub fn encode_columns(columns: &[String]) -> String {
    serde_json::to_string(columns).expect("a list of strings serializes")
}

/// A column list that is not a JSON array of strings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a JSON array of column names, e.g. [\"Flow ID\", \"Src IP\"]: {reason}")]
pub struct ColumnsError {
    pub reason: String,
}

/// The inverse of [`encode_columns`]. Names are taken exactly as written (no trimming).
pub fn decode_columns(text: &str) -> Result<Vec<String>, ColumnsError> {
    serde_json::from_str::<Vec<String>>(text).map_err(|e| ColumnsError {
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_survive_the_round_trip_exactly() {
        let columns: Vec<String> = [
            "Flow ID",
            " Destination Port",
            "a,b",
            "k=v",
            "x;y",
            "say \"hi\"",
            "back\\slash",
            "",
            "tab\tand\nnewline",
            "ünïcödé",
        ]
        .map(str::to_string)
        .to_vec();
        let text = encode_columns(&columns);
        assert_eq!(decode_columns(&text).unwrap(), columns);
        assert_eq!(encode_columns(&[]), "[]");
        assert_eq!(decode_columns("[]").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn anything_but_an_array_of_strings_is_refused_with_an_example() {
        for bad in ["Flow_ID,Src_IP", "[1, 2]", "{\"a\": 1}", "[\"unterminated"] {
            let error = decode_columns(bad).unwrap_err();
            assert!(
                error.to_string().contains("JSON array of column names"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn keys_are_unique_and_found_by_their_text() {
        for (i, key) in Key::ALL.iter().enumerate() {
            assert_eq!(Key::from_text(key.as_str()), Some(*key));
            assert!(Key::ALL[i + 1..].iter().all(|k| k.as_str() != key.as_str()));
        }
        assert_eq!(Key::from_text("learning_rte"), None);
    }
}
