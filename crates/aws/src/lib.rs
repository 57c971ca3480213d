//! The AWS target of `orchestrate`: one module per AWS resource kind, SDK error classification in one
//! place, and the ECR-aware image push (DESIGN.md §1, §3-§5).
//!
//! Every kind's module has the same shape: `observe` (the kind's typed settings as found, plus a
//! [`Check`](engine::resource::Check) for each AWS specific the module enforces beyond them, such as
//! a bucket's encryption), `apply` (idempotent create-or-update from the typed settings) and
//! `delete` (idempotent; deleting what is gone succeeds) over the clients, and a unit struct
//! implementing [`KindOnTarget`](engine::target::KindOnTarget) for [`AwsTarget`] with those and the
//! kind's discovery (`owned`: what carries the deployment's tag). None of them waits: what cannot
//! finish at once is `Pending` or `NotYet` for the executor. [`target`] names the modules in its
//! `KindModules` and keeps the target's own concerns. All clients come from one `SdkConfig`
//! ([`clients::Clients`]).

pub mod clients;
pub mod cloudwatch_alarm;
pub mod ecr_image;
pub mod ecr_repository;
pub mod endpoint_autoscaling;
pub mod errors;
pub mod holder_process;
pub mod iam_role;
pub mod invocations;
pub mod lock;
pub mod monitor;
pub mod operator_policy;
pub mod registry_retry;
pub mod s3_bucket;
pub mod sagemaker;
pub mod sagemaker_endpoint;
pub mod sagemaker_endpoint_config;
pub mod sagemaker_model;
pub mod sagemaker_training_job;
pub mod target;
pub mod training_data;

pub use clients::Clients;
pub use errors::{AwsError, ErrorClass, OrAbsent};
pub use target::AwsTarget;
