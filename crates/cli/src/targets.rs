//! The one enum over the targets this binary can open. Commands are plain async code over
//! [`OpenTarget`], which implements `engine::Target` by handing each call to the target inside; this
//! module is the only place that names the concrete targets.

use std::time::Duration;

use aws::AwsTarget;
use engine::desired::{DesiredState, Facts};
use engine::resource::{Change, Desired, Observed, TrainingJobOutputs};
use engine::target::{
    Applied, AsyncInvocation, AsyncOutcome, AsyncRequest, BoxError, Deleted, Found, LockRequest,
    MonitorRequest, MonitorRun, Target, TargetError, Upstream,
};
use engine::training_output::MetricValues;
use engine::values::Digest;
use local::LocalTarget;

/// An open target.
#[derive(Debug)]
pub enum OpenTarget {
    Local(LocalTarget),
    Aws(AwsTarget),
}

/// A lock held on one of the targets.
#[derive(Debug)]
pub enum HeldLock {
    Local(<LocalTarget as Target>::Lock),
    Aws(<AwsTarget as Target>::Lock),
}

/// Runs the same expression on whichever target is open.
macro_rules! on_target {
    ($self:expr, $target:ident => $call:expr) => {
        match $self {
            OpenTarget::Local($target) => $call,
            OpenTarget::Aws($target) => $call,
        }
    };
}

impl Target for OpenTarget {
    type Lock = HeldLock;

    fn describe(&self) -> String {
        on_target!(self, target => target.describe())
    }

    fn poll_interval(&self) -> Duration {
        on_target!(self, target => target.poll_interval())
    }

    fn image_digest(&self) -> Result<Digest, TargetError> {
        on_target!(self, target => target.image_digest())
    }

    fn facts(&self, image_digest: &Digest) -> Result<Facts, TargetError> {
        on_target!(self, target => target.facts(image_digest))
    }

    async fn lock(&self, request: LockRequest<'_>) -> Result<Option<HeldLock>, BoxError> {
        Ok(match self {
            OpenTarget::Local(target) => target.lock(request).await?.map(HeldLock::Local),
            OpenTarget::Aws(target) => target.lock(request).await?.map(HeldLock::Aws),
        })
    }

    async fn release(&self, lock: HeldLock) -> Result<(), BoxError> {
        match (self, lock) {
            (OpenTarget::Local(target), HeldLock::Local(lock)) => target.release(lock).await,
            (OpenTarget::Aws(target), HeldLock::Aws(lock)) => target.release(lock).await,
            (target, lock) => Err(format!("{lock:?} is not a lock of {}", target.describe()).into()),
        }
    }

    async fn observe(&self, desired: &Desired) -> Result<Observed, TargetError> {
        on_target!(self, target => target.observe(desired).await)
    }

    async fn owned(&self) -> Result<Vec<Found>, TargetError> {
        on_target!(self, target => target.owned().await)
    }

    async fn apply(
        &self,
        desired: &Desired,
        change: &Change,
        upstream: Upstream<'_>,
    ) -> Result<Applied, TargetError> {
        on_target!(self, target => target.apply(desired, change, upstream).await)
    }

    async fn delete(&self, found: &Found) -> Result<Deleted, TargetError> {
        on_target!(self, target => target.delete(found).await)
    }

    async fn training_metrics(&self, job: &TrainingJobOutputs) -> Result<MetricValues, TargetError> {
        on_target!(self, target => target.training_metrics(job).await)
    }

    async fn new_log_lines(&self, desired: &Desired) -> Vec<String> {
        on_target!(self, target => target.new_log_lines(desired).await)
    }

    async fn invoke(
        &self,
        endpoint: &str,
        content_type: &str,
        accept: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), TargetError> {
        on_target!(self, target => target.invoke(endpoint, content_type, accept, body).await)
    }

    async fn invoke_async(
        &self,
        endpoint: &str,
        request: &AsyncRequest<'_>,
    ) -> Result<AsyncInvocation, TargetError> {
        on_target!(self, target => target.invoke_async(endpoint, request).await)
    }

    async fn await_async(
        &self,
        invocation: &AsyncInvocation,
        wait: Duration,
        answer_file: &std::path::Path,
    ) -> Result<AsyncOutcome, TargetError> {
        on_target!(self, target => target.await_async(invocation, wait, answer_file).await)
    }

    async fn monitor(&self, endpoint: &str, request: &MonitorRequest) -> Result<MonitorRun, TargetError> {
        on_target!(self, target => target.monitor(endpoint, request).await)
    }

    async fn latest_monitor_run(&self, endpoint: &str) -> Result<Option<MonitorRun>, TargetError> {
        on_target!(self, target => target.latest_monitor_run(endpoint).await)
    }

    async fn summary(&self, state: &DesiredState) -> Vec<(String, String)> {
        on_target!(self, target => target.summary(state).await)
    }
}
