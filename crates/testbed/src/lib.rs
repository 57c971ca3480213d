//! Real servers on loopback for orchestrate's integration tests, each stopped when dropped.
//!
//! - [`Moto`]: moto_server (pinned to the version its launcher's patches are written for) on a free
//!   port, with a server-side log of every AWS request ([`Request`], [`mutating`]) so a test can prove
//!   that a run made no mutating call.
//! - [`Registry`]: Debian's `docker-registry` with htpasswd basic auth, the stand-in for ECR's
//!   registry endpoint (ECR's API in moto has none), and its access log ([`RegistryRequest`]).
//! - [`skopeo_inspect`] / [`skopeo_inspect_config`]: an independent look at a pushed image.
//! - [`Moto::start_sagemaker`]: moto whose SageMaker runs the real `model-image` ([`model_image`]) for
//!   training jobs and endpoints, with status progressions, artifacts, logs, `InvokeEndpoint`,
//!   UpdateEndpoint rollbacks and injected failures ([`Fault`]).
//! - [`FaultProxy`]: a proxy in front of moto or the registry that answers a seeded fraction of
//!   requests with throttling, 5xx and connection resets, each in its protocol's own form.
//!
//! A missing program skips the test with a note on a developer's machine and fails it in CI
//! ([`require`]). DESIGN.md §9 lists what these backends do and do not emulate.

mod fault_proxy;
mod moto;
mod registry;
mod requests;
mod server;
mod skopeo;
mod tools;

pub use fault_proxy::{FaultKind, FaultPlan, FaultProxy, OperationCounts, ProxyStats, Upstream};
pub use moto::{AccessKey, Denial, Fault, MOTO_VERSION, Moto, ServedEndpoint, TrainingProcess};
pub use registry::{Registry, RegistryRequest};
pub use requests::{Protocol, Request, mutating};
pub use skopeo::{skopeo_inspect, skopeo_inspect_config};
pub use tools::{PARLIAMENT_VERSION, Tool, model_image, require};
