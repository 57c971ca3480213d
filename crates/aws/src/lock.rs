//! The deployment lock: one object in the data bucket, written with `If-None-Match: *` so S3 lets
//! only one writer create it. It names its owner and expiry; a lock past its expiry (a crashed run)
//! is stale and can be broken only when the user says so.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::primitives::ByteStream;
use engine::Kind;
use serde::{Deserialize, Serialize};

use crate::clients::Clients;
use crate::errors::{AwsError, ErrorClass, OrAbsent};

/// The lock object's key in the data bucket.
pub const LOCK_KEY: &str = "orchestrate/lock.json";
const KIND: Kind = Kind::Bucket;

/// What the lock object holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    /// Who holds it (`user@host pid 123`).
    pub owner: String,
    /// Seconds since the Unix epoch after which the lock is stale.
    pub expires_at: u64,
}

impl LockRecord {
    pub fn new(owner: &str, now: SystemTime, ttl: Duration) -> Self {
        Self {
            owner: owner.to_string(),
            expires_at: epoch_secs(now) + ttl.as_secs(),
        }
    }

    pub fn is_stale(&self, now: SystemTime) -> bool {
        epoch_secs(now) >= self.expires_at
    }
}

fn epoch_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "the deployment is locked by another run ({owner}) until {expires_at} (Unix time); wait for it to \
         finish, or if that run is gone (interrupted, its machine lost), run again with --break-lock"
    )]
    Held { owner: String, expires_at: u64 },
    #[error(
        "the deployment's lock held by {owner} expired at {expires_at} (Unix time); if that run is gone, \
         run again with --break-lock"
    )]
    Stale { owner: String, expires_at: u64 },
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// A held lock; [`Lock::release`] deletes it (dropping it does not: no async drop).
#[derive(Debug, Clone)]
pub struct Lock {
    bucket: String,
    record: LockRecord,
}

impl Lock {
    /// Takes the lock in `bucket`. Another run's lock is broken only with `break_lock` (the user's
    /// explicit `--break-lock`), whether or not it has expired.
    pub async fn acquire(
        clients: &Clients,
        bucket: &str,
        owner: &str,
        ttl: Duration,
        now: SystemTime,
        break_lock: bool,
    ) -> Result<Lock, LockError> {
        let record = LockRecord::new(owner, now, ttl);
        for _ in 0..2 {
            match put_if_absent(clients, bucket, &record).await {
                Ok(()) => {
                    return Ok(Lock {
                        bucket: bucket.to_string(),
                        record,
                    });
                }
                Err(e) if e.class == ErrorClass::Conflict => {}
                Err(e) => return Err(e.into()),
            }
            let Some(held) = read(clients, bucket).await? else {
                continue; // released in between: try again
            };
            if !break_lock {
                let stale = held.is_stale(now);
                let (owner, expires_at) = (held.owner, held.expires_at);
                return Err(if stale {
                    LockError::Stale { owner, expires_at }
                } else {
                    LockError::Held { owner, expires_at }
                });
            }
            tracing::warn!(
                owner = held.owner,
                stale = held.is_stale(now),
                "breaking the lock"
            );
            delete(clients, bucket).await?;
        }
        let held = read(clients, bucket).await?.unwrap_or(record);
        Err(LockError::Held {
            owner: held.owner,
            expires_at: held.expires_at,
        })
    }

    /// The bucket the lock object is in.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn record(&self) -> &LockRecord {
        &self.record
    }

    /// Deletes the lock if it is still ours.
    pub async fn release(self, clients: &Clients) -> Result<(), AwsError> {
        if read(clients, &self.bucket).await? == Some(self.record) {
            delete(clients, &self.bucket).await?;
        }
        Ok(())
    }
}

async fn put_if_absent(clients: &Clients, bucket: &str, record: &LockRecord) -> Result<(), AwsError> {
    let body = serde_json::to_vec(record).map_err(|e| AwsError::other("lock", KIND, bucket, e))?;
    clients
        .s3
        .put_object()
        .bucket(bucket)
        .key(LOCK_KEY)
        .if_none_match("*")
        .content_type("application/json")
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| AwsError::sdk("lock", KIND, bucket, e))?;
    Ok(())
}

/// The current lock, if any (an unreadable one counts as held by `unknown`, never stale).
pub async fn read(clients: &Clients, bucket: &str) -> Result<Option<LockRecord>, AwsError> {
    let Some(out) = clients
        .s3
        .get_object()
        .bucket(bucket)
        .key(LOCK_KEY)
        .send()
        .await
        .map_err(|e| AwsError::sdk("read the lock of", KIND, bucket, e))
        .or_absent()?
    else {
        return Ok(None);
    };
    let bytes = out
        .body
        .collect()
        .await
        .map_err(|e| AwsError::other("read the lock of", KIND, bucket, e))?
        .into_bytes();
    Ok(Some(serde_json::from_slice(&bytes).unwrap_or(LockRecord {
        owner: "unknown".to_string(),
        expires_at: u64::MAX,
    })))
}

async fn delete(clients: &Clients, bucket: &str) -> Result<(), AwsError> {
    clients
        .s3
        .delete_object()
        .bucket(bucket)
        .key(LOCK_KEY)
        .send()
        .await
        .map_err(|e| AwsError::sdk("unlock", KIND, bucket, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_stale_at_its_expiry() {
        let start = UNIX_EPOCH + Duration::from_secs(1_000);
        let record = LockRecord::new("me", start, Duration::from_secs(60));
        assert_eq!(record.expires_at, 1_060);
        assert!(!record.is_stale(start + Duration::from_secs(59)));
        assert!(record.is_stale(start + Duration::from_secs(60)));
    }
}
