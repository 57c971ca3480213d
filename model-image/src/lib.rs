//! `model-image`: the SageMaker classifier container deployed by `orchestrate`.
//!
//! `train` fits gradient-boosted trees (LightGBM) on network-flow records in the IoTID20 schema and
//! reports robust held-out metrics; `serve` answers `/ping` and `/invocations` per the SageMaker
//! inference contract. The binary (`main.rs`) only parses arguments and calls into these modules.

pub mod artifact;
pub mod demo;
pub mod hyperparameters;
pub mod layout;
pub use metrics;
pub mod report;
pub mod schema;
pub mod serve;
pub mod split;
pub mod table;
pub mod trainer;
