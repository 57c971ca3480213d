//! The deployment lock a changing command holds: the local target's file lock (released by the OS
//! whatever happens to this process) or the AWS target's lock object in the data bucket, which this
//! process must delete itself, also when the run fails or is interrupted with Ctrl-C.

use std::sync::Mutex;
use std::time::Duration;

use aws::AwsTarget;
use aws::lock::Lock;
use engine::DesiredState;
use local::LocalTarget;
use spec::Spec;

/// The AWS lock of this run, for the Ctrl-C handler to release.
static HELD_ON_AWS: Mutex<Option<(aws::Clients, Lock)>> = Mutex::new(None);

/// How long the Ctrl-C handler waits for S3 to delete the lock.
const RELEASE_ON_INTERRUPT: Duration = Duration::from_secs(5);

/// Margin added to the longest wait a run can make, for the AWS lock's expiry.
const LOCK_MARGIN: Duration = Duration::from_secs(30 * 60);

/// A held deployment lock; [`RunLock::release`] gives it back.
#[must_use = "release the lock when the run ends"]
pub enum RunLock {
    Local(local::StateLock),
    Aws,
    /// Nothing to lock (an AWS deployment whose bucket does not exist, being torn down).
    Nothing,
}

impl RunLock {
    /// Releases the lock. An AWS lock that cannot be deleted is reported, not fatal: it expires.
    pub async fn release(self) {
        match self {
            RunLock::Local(lock) => drop(lock),
            RunLock::Aws => {
                let held = HELD_ON_AWS.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some((clients, lock)) = held {
                    let bucket = lock.bucket().to_string();
                    if let Err(error) = lock.release(&clients).await {
                        eprintln!(
                            "warning: could not release the deployment lock in s3://{bucket}: {error}; \
                             the next run needs --break-lock"
                        );
                    }
                }
            }
            RunLock::Nothing => {}
        }
    }
}

/// Releases a held AWS lock when the process is interrupted (a best effort within a few seconds).
pub async fn release_on_interrupt() {
    let held = HELD_ON_AWS.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some((clients, lock)) = held {
        let _ = tokio::time::timeout(RELEASE_ON_INTERRUPT, lock.release(&clients)).await;
    }
}

/// A target whose deployments can be locked against concurrent changing runs.
#[allow(async_fn_in_trait)]
pub trait Lockable {
    /// Takes the lock for a run that changes something; `state` is the desired state when the run
    /// may create the deployment (the lock may need the bucket). `break_lock` is `--break-lock`.
    async fn take_lock(
        &self,
        spec: &Spec,
        state: Option<&DesiredState>,
        break_lock: bool,
    ) -> anyhow::Result<RunLock>;
}

impl Lockable for LocalTarget {
    async fn take_lock(&self, _: &Spec, state: Option<&DesiredState>, _: bool) -> anyhow::Result<RunLock> {
        // A run that cannot create the deployment (`down`) has nothing to guard while the deployment
        // has no state folder, and must not leave one behind: as on AWS, where there is no lock
        // without the bucket.
        if state.is_none() && !self.state_dir().exists() {
            return Ok(RunLock::Nothing);
        }
        Ok(RunLock::Local(self.lock()?))
    }
}

impl Lockable for AwsTarget {
    async fn take_lock(
        &self,
        spec: &Spec,
        state: Option<&DesiredState>,
        break_lock: bool,
    ) -> anyhow::Result<RunLock> {
        let ttl = spec.training.max_runtime + spec.endpoint.wait_timeout + LOCK_MARGIN;
        match self.lock(state, &owner(), ttl, break_lock).await? {
            Some(lock) => {
                *HELD_ON_AWS.lock().unwrap_or_else(|p| p.into_inner()) = Some((self.clients().clone(), lock));
                Ok(RunLock::Aws)
            }
            None => Ok(RunLock::Nothing),
        }
    }
}

/// Who holds a lock: `user@host pid N`.
fn owner() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "someone".to_string());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_string());
    format!("{user}@{host} pid {}", std::process::id())
}
