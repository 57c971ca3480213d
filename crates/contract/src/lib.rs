//! The contract between `orchestrate` and the `model-image` container, in one place both sides
//! compile against: the hyperparameter keys `model-image train` understands and how their values
//! travel, the metric names (`metrics::Metric`, re-exported here) and the metrics file `train`
//! writes into the model artifact and the quality gate reads, and the plan and status files of
//! the local target's canary router (`rollout`), and the drift report of `model-image monitor`
//! (`drift`).
//!
//! SageMaker passes hyperparameters as a map of strings (`hyperparameters.json` in the container).
//! Scalars travel as their plain text; a list of column names travels as a JSON array of strings,
//! encoded by [`hyperparameters::encode_columns`] here and decoded by
//! [`hyperparameters::decode_columns`] in the container, so a column name may hold anything a CSV
//! header can (spaces, a leading space, commas, `=`, `;`, quotes).

pub mod drift;
pub mod hyperparameters;
pub mod metrics_file;
pub mod rollout;

pub use metrics::Metric;
