//! The reconcile engine of `orchestrate`, independent of where resources live.
//!
//! `kind` declares every resource kind once: its facts and its typed settings;
//! `desired` computes every resource and name from the validated spec before any side effect;
//! `resource::diff` decides, purely, what each needs; `plan` gathers the decisions (what `plan` and
//! `status` print); `executor` applies them through a [`target::Target`] in dependency order, owns
//! every wait and its timeout, and enforces the quality gate and the endpoint verification.

pub mod desired;
pub mod executor;
pub mod kind;
pub mod names;
pub mod plan;
pub mod progress;
pub mod resource;
pub mod target;
pub mod training_output;
pub mod values;

pub use desired::{DesiredState, Facts, desired_state};
pub use executor::EngineError;
pub use kind::{Kind, Settings};
pub use plan::{Plan, StatusReport};
pub use resource::{Change, Desired, Observed, Outputs};
pub use target::{Found, ResourceId, Target, TargetError, Upstream};
