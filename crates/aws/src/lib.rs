//! The AWS target of `orchestrate`: one module per AWS resource kind, SDK error classification in one
//! place, and the ECR-aware image push (DESIGN.md §1, §3-§5).
//!
//! Every module offers the same shape of functions: `observe` (the kind's typed settings as found,
//! plus a [`Check`](engine::resource::Check) for each AWS specific the module enforces beyond them,
//! such as a bucket's encryption), `apply` (idempotent create-or-update from the typed settings) and
//! `delete` (idempotent; deleting what is gone succeeds). All clients come from one `SdkConfig`
//! ([`clients::Clients`]).

pub mod clients;
pub mod ecr_image;
pub mod ecr_repository;
pub mod endpoint_autoscaling;
pub mod errors;
pub mod iam_role;
pub mod invocations;
pub mod lock;
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
