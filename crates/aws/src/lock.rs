//! The deployment lock: one object in the data bucket (`orchestrate/lock.json`), a short lease kept
//! alive by the run that holds it and fenced by the object's ETag.
//!
//! - **Taking it**: `PutObject` with `If-None-Match: *`, so S3 lets one writer create it. A lock that
//!   is there is taken over only by overwriting exactly the version that was read (`If-Match: <its
//!   ETag>`): when it is stale, or when the user says so (`--break-lock`). Of two runs taking over the
//!   same lock at once S3 lets one write win; the other's condition fails (412, or 409 while the
//!   winner's write is in flight), it reads again, finds the winner's lock and is refused. `--break-lock`
//!   breaks the holder the run first saw, never one that took the lock after that.
//! - **Keeping it**: a heartbeat task rewrites the object every [`Lease::renew_every`] with `If-Match`
//!   of the ETag it holds (each write has a new renewal number, so a new ETag). A 412 or 404 means
//!   another run took the lock or deleted it: the lock is lost, the heartbeat stops and the [`Fence`]
//!   refuses every further change ([`LockLost`]). A write whose answer was lost (a timeout, an SDK
//!   retry that then fails its own condition) is recognised by the holder token in the object and
//!   adopted.
//! - **Staleness, judged by S3's clock only**: a lock is stale when its `LastModified` is older than
//!   the lease it records, measured against the `Date` header of the same `GetObject` response. Both
//!   timestamps come from S3, so a contender's wrong clock cannot make a live lock look stale (nor a
//!   dead one fresh). The holder, for its part, stops trusting its lock one renewal interval before S3
//!   could call it stale: the fence trips when no renewal has succeeded for `lease - renew_every` on
//!   the holder's monotonic clock, counted from when the last successful renewal was sent (S3 stamps
//!   `LastModified` later than that). A run killed without releasing leaves a lock that is stale after
//!   one lease ([`Lease::DEFAULT`]: two minutes), and the next run takes it over then; on the machine
//!   it ran on, at once (next point).
//! - **A holder that has ended on this machine**: the lock records its holder process
//!   ([`HolderProcess`]: boot id, pid and time namespaces, user, pid, start time). A contender with
//!   the same boot, namespaces and user that finds no such process in `/proc`, or a process of that
//!   pid started at another time, knows the holder is gone and takes the lock over at once, without
//!   waiting for its lease. Otherwise (another machine or container, another user, `/proc`
//!   unreadable, not Linux, or a record without a holder process) only staleness decides.
//! - **Giving it back**: the heartbeat is stopped first (any renewal in flight finishes), then the
//!   object is deleted with `If-Match` of the ETag held, so a run whose lock was taken over never
//!   deletes the new holder's.
//!
//! Every call on the object passes `ExpectedBucketOwner` (the caller's account), so a bucket of the
//! same name in another account is never written.

use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::DateTime;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::date_time::Format;
use engine::Kind;
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::clients::Clients;
use crate::errors::{AwsError, ErrorClass};
use crate::holder_process::{HolderProcess, Liveness};

/// The lock object's key in the data bucket.
pub const LOCK_KEY: &str = "orchestrate/lock.json";
const KIND: Kind = Kind::Bucket;
/// How many times taking or giving back the lock tries again after losing a race.
const ATTEMPTS: u32 = 8;
/// S3's code for an object that is not there (as opposed to `NoSuchBucket`).
const NO_SUCH_KEY: &str = "NoSuchKey";
/// S3's code for a conditional write that met another write of the object in flight.
const CONFLICT_IN_FLIGHT: &str = "ConditionalRequestConflict";

/// How long a lock lives without renewal, and how often its holder renews it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    duration: Duration,
    renew_every: Duration,
}

impl Lease {
    /// Two minutes, renewed every 30 seconds: a killed run's lock is stale two minutes after its
    /// last renewal, and its holder stops changing anything after 90 seconds without one.
    pub const DEFAULT: Lease = Lease {
        duration: Duration::from_secs(120),
        renew_every: Duration::from_secs(30),
    };

    /// A lease of `duration` (whole seconds, as S3's timestamps are), renewed every `renew_every`,
    /// which must leave room for a second renewal before the holder stops trusting its lock
    /// (`renew_every` under half the lease).
    pub fn new(duration: Duration, renew_every: Duration) -> Result<Lease, InvalidLease> {
        let valid = duration >= Duration::from_secs(1)
            && duration.subsec_nanos() == 0
            && !renew_every.is_zero()
            && renew_every * 2 < duration;
        if valid {
            Ok(Lease {
                duration,
                renew_every,
            })
        } else {
            Err(InvalidLease {
                duration,
                renew_every,
            })
        }
    }

    /// How long the lock lives after its last renewal, judged by S3's clock.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// How often the holder renews it.
    pub fn renew_every(&self) -> Duration {
        self.renew_every
    }

    /// How long the holder trusts its lock after sending a renewal that succeeded.
    fn trusted_for(&self) -> Duration {
        self.duration - self.renew_every
    }

    fn from_record(record: &LockRecord) -> Duration {
        Duration::from_secs(record.lease_seconds)
    }
}

/// A lease that cannot work: see [`Lease::new`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a lock lease must be whole seconds (at least 1) and renewed more than twice per lease; got {} renewed every {renew_every:?}",
    spec::format_duration(*duration)
)]
pub struct InvalidLease {
    pub duration: Duration,
    pub renew_every: Duration,
}

/// A random number naming one acquisition of the lock: what tells the holder's own writes from
/// another run's (two runs may have the same owner text, say the same pid in two containers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Token(u64);

impl Token {
    /// A fresh token: the standard library's per-process random hash keys, new for every call.
    fn fresh() -> Token {
        Token(RandomState::new().hash_one(std::process::id()))
    }
}

/// What the lock object holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockRecord {
    /// Who holds it (`user@host pid 123`).
    pub owner: String,
    /// This acquisition.
    pub token: Token,
    /// How long the lock lives after its last renewal, in seconds.
    pub lease_seconds: u64,
    /// How many times the holder has renewed it: every write differs, and so does its ETag.
    pub renewal: u64,
    /// The holder's process, for a contender on the same machine to tell whether it has ended;
    /// `None` where `/proc` could not describe it, and in records of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<HolderProcess>,
}

/// An object's ETag, as S3 sent it (quotes included).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ETag(String);

impl ETag {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The lock as read from S3.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldLock {
    /// What it says; `None` when the object is not a lock record this version reads (its lease is
    /// then taken to be [`Lease::DEFAULT`]'s).
    pub record: Option<LockRecord>,
    pub etag: ETag,
    /// How long ago it was last written: S3's `Date` for the read minus the object's
    /// `LastModified`; `None` when S3 did not send both.
    pub age: Option<Duration>,
}

impl HeldLock {
    /// Who holds it.
    pub fn owner(&self) -> &str {
        self.record.as_ref().map_or(
            "an unknown run (the lock object is not one this version reads)",
            |r| r.owner.as_str(),
        )
    }

    /// How long it lives after its last renewal.
    pub fn lease(&self) -> Duration {
        self.record
            .as_ref()
            .map_or(Lease::DEFAULT.duration, Lease::from_record)
    }

    /// Whether it went unrenewed for its whole lease, by S3's clock (never, when S3's answer had no
    /// time to judge by).
    pub fn is_stale(&self) -> bool {
        self.age.is_some_and(|age| age >= self.lease())
    }

    /// Its last renewal, for messages.
    pub fn renewed(&self) -> Renewed {
        Renewed {
            ago: self.age,
            lease: self.lease(),
        }
    }

    /// The process that holds it, when its record names one.
    pub fn holder_process(&self) -> Option<&HolderProcess> {
        self.record.as_ref().and_then(|r| r.holder.as_ref())
    }

    /// Whether its holder process still runs, by `judge` ([`Liveness::Unknown`] when the record
    /// names none).
    fn holder_liveness(&self, judge: impl FnOnce(&HolderProcess) -> Liveness) -> Liveness {
        self.holder_process().map_or(Liveness::Unknown, judge)
    }

    fn is_ours(&self, token: Token) -> bool {
        self.record.as_ref().is_some_and(|r| r.token == token)
    }

    /// Who it is held by, for `--break-lock`: the acquisition, or (for an unreadable object, never
    /// renewed) the object itself.
    fn identity(&self) -> Identity {
        match &self.record {
            Some(record) => Identity::Holder(record.token),
            None => Identity::Object(self.etag.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Identity {
    Holder(Token),
    Object(ETag),
}

/// When a lock was last renewed and when it goes stale, as S3's clock tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewed {
    pub ago: Option<Duration>,
    pub lease: Duration,
}

impl std::fmt::Display for Renewed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lease = spec::format_duration(self.lease);
        match self.ago {
            Some(ago) if ago < self.lease => write!(
                f,
                "last renewed {} ago, stale in {} unless renewed",
                spec::format_duration(ago),
                spec::format_duration(self.lease - ago)
            ),
            Some(ago) => write!(
                f,
                "last renewed {} ago, stale since its {lease} lease ran out",
                spec::format_duration(ago)
            ),
            None => write!(f, "lease {lease}"),
        }
    }
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the deployment is locked by another run ({owner}, {renewed}){}", HeldAdvice(*running_here))]
    Held {
        owner: String,
        renewed: Renewed,
        /// The holder's pid when it is a process seen running on this machine.
        running_here: Option<u32>,
    },
    #[error(
        "the deployment lock kept changing while this run tried to take it ({ATTEMPTS} attempts); run again"
    )]
    Contended,
    #[error(transparent)]
    Aws(#[from] AwsError),
}

impl LockError {
    /// `lock` refused, its holder process judged `liveness`.
    fn held(lock: &HeldLock, liveness: Liveness) -> LockError {
        let running_here = match (lock.holder_process(), liveness) {
            (Some(holder), Liveness::Running) => Some(holder.pid),
            _ => None,
        };
        LockError::Held {
            owner: lock.owner().to_string(),
            renewed: lock.renewed(),
            running_here,
        }
    }
}

/// What a refused run can do, depending on whether the holder is seen running on this machine.
struct HeldAdvice(Option<u32>);

impl std::fmt::Display for HeldAdvice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(pid) => write!(
                f,
                ", still running on this machine as pid {pid}; wait for it to finish or stop it (the \
                 lock of a run that ended on this machine is taken over at once), or take the lock from \
                 it now with --break-lock"
            ),
            None => f.write_str(
                "; wait for it to finish, or if that run is gone (interrupted on another machine or in \
                 another container, its machine lost) run again once its lock is stale, or now with \
                 --break-lock",
            ),
        }
    }
}

/// Why a held lock no longer protects the run: what the [`Fence`] refuses changes with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockLost {
    #[error(
        "the deployment lock was taken over by {by} while this run held it; stopped before changing anything else"
    )]
    TakenOver { by: String },
    #[error(
        "the deployment lock was deleted by another run while this run held it; stopped before changing \
         anything else"
    )]
    Deleted,
    #[error(
        "the deployment lock could not be renewed for {}, so another run may have taken it over; stopped \
         before changing anything else{}",
        spec::format_duration(*unrenewed_for),
        last_error.as_ref().map(|e| format!(" (last renewal failed: {e})")).unwrap_or_default()
    )]
    NotRenewed {
        unrenewed_for: Duration,
        last_error: Option<String>,
    },
}

/// What giving the lock back did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// The lock object is deleted.
    Deleted,
    /// Another run holds the lock now; its object is left alone.
    TakenOver { by: String },
    /// The object was gone already.
    Gone,
}

/// What the holder knows of its lock, shared by the heartbeat and every [`Fence`].
#[derive(Debug, Clone)]
struct Holding {
    etag: ETag,
    /// When the last successful write was sent.
    renewed_at: Instant,
    /// Until when the holder trusts the lock without another successful renewal.
    trusted_until: Instant,
    last_error: Option<String>,
    lost: Option<LockLost>,
}

/// The run's side of the lock: whether it still holds it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Fence {
    state: watch::Receiver<Holding>,
}

impl Fence {
    /// `Ok` while the lock is held and renewed; the reason it no longer protects the run otherwise.
    pub fn check(&self) -> Result<(), LockLost> {
        let holding = self.state.borrow();
        if let Some(lost) = &holding.lost {
            return Err(lost.clone());
        }
        let now = Instant::now();
        if now >= holding.trusted_until {
            return Err(LockLost::NotRenewed {
                unrenewed_for: now - holding.renewed_at,
                last_error: holding.last_error.clone(),
            });
        }
        Ok(())
    }

    /// Waits until the heartbeat finds the lock lost; `None` when the heartbeat ended without that
    /// (the lock was released or dropped).
    pub async fn lost(&mut self) -> Option<LockLost> {
        let holding = self.state.wait_for(|h| h.lost.is_some()).await.ok()?;
        holding.lost.clone()
    }

    /// Whether both fences watch the same lock.
    pub fn same_lock(&self, other: &Fence) -> bool {
        self.state.same_channel(&other.state)
    }
}

/// Where the lock object is: the bucket and the account that must own it.
#[derive(Debug, Clone)]
struct LockObject {
    bucket: String,
    account: String,
}

/// A held lock, renewed by its heartbeat until [`Lock::release`]. Dropping it stops the heartbeat
/// and leaves the object to go stale (as a killed run does).
#[derive(Debug)]
pub struct Lock {
    object: LockObject,
    owner: String,
    token: Token,
    lease: Lease,
    state: watch::Receiver<Holding>,
    stop: Option<oneshot::Sender<()>>,
    heartbeat: Option<JoinHandle<()>>,
}

impl Lock {
    /// Takes the lock in `bucket` for `owner`, and starts renewing it every
    /// [`Lease::renew_every`]. A stale lock is taken over, and so is one whose holder process has
    /// ended on this machine; a live one only with `break_lock` (the user's explicit
    /// `--break-lock`), and only from the holder first seen.
    pub async fn acquire(
        clients: &Clients,
        bucket: &str,
        owner: &str,
        lease: Lease,
        break_lock: bool,
    ) -> Result<Lock, LockError> {
        let object = LockObject {
            bucket: bucket.to_string(),
            account: clients.account().await?.to_string(),
        };
        let here = HolderProcess::current();
        let judge = |holder: &HolderProcess| {
            here.as_ref()
                .map_or(Liveness::Unknown, |here| here.liveness_of(holder))
        };
        let record = LockRecord {
            owner: owner.to_string(),
            token: Token::fresh(),
            lease_seconds: lease.duration.as_secs(),
            renewal: 0,
            holder: here.clone(),
        };
        let mut to_break = None;
        // When this attempt's write was sent, and the first one (any of them may be the one that
        // landed when an answer was lost).
        let mut sent = Instant::now();
        let mut first_sent = None;
        for attempt in 1..=ATTEMPTS {
            let written = match object.read(clients).await? {
                None => {
                    sent = Instant::now();
                    first_sent.get_or_insert(sent);
                    object.put(clients, &record, Condition::Absent).await
                }
                Some(held) => {
                    let target = to_break.get_or_insert_with(|| held.identity());
                    match verdict(&held, record.token, break_lock, target, judge) {
                        // Our own write, whose answer was lost (an SDK retry failed its condition).
                        Verdict::Ours => {
                            sent = first_sent.unwrap_or(sent);
                            Ok(held.etag)
                        }
                        Verdict::Refuse(liveness) => return Err(LockError::held(&held, liveness)),
                        Verdict::TakeOver(why) => {
                            tracing::warn!(
                                owner = held.owner(),
                                renewed = %held.renewed(),
                                "taking over the deployment lock: {why}"
                            );
                            sent = Instant::now();
                            first_sent.get_or_insert(sent);
                            object.put(clients, &record, Condition::Matches(&held.etag)).await
                        }
                    }
                }
            };
            match written {
                Ok(etag) => return Ok(Lock::start(clients, object, record, lease, etag, sent)),
                Err(e) if lost_race(&e) => backoff(&e, attempt).await,
                Err(e) => return Err(e.into()),
            }
        }
        match object.read(clients).await? {
            Some(held) if !held.is_ours(record.token) => {
                let liveness = held.holder_liveness(judge);
                Err(LockError::held(&held, liveness))
            }
            _ => Err(LockError::Contended),
        }
    }

    fn start(
        clients: &Clients,
        object: LockObject,
        record: LockRecord,
        lease: Lease,
        etag: ETag,
        sent: Instant,
    ) -> Lock {
        let (state, receiver) = watch::channel(Holding {
            etag,
            renewed_at: sent,
            trusted_until: sent + lease.trusted_for(),
            last_error: None,
            lost: None,
        });
        let (stop, stopped) = oneshot::channel();
        let (owner, token) = (record.owner.clone(), record.token);
        let heartbeat = tokio::spawn(heartbeat(
            clients.clone(),
            object.clone(),
            record,
            lease,
            state,
            stopped,
        ));
        Lock {
            object,
            owner,
            token,
            lease,
            state: receiver,
            stop: Some(stop),
            heartbeat: Some(heartbeat),
        }
    }

    /// The bucket the lock object is in.
    pub fn bucket(&self) -> &str {
        &self.object.bucket
    }

    /// Who holds it (this run).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn lease(&self) -> Lease {
        self.lease
    }

    /// The ETag of the lock object as this run last wrote it.
    pub fn etag(&self) -> ETag {
        self.state.borrow().etag.clone()
    }

    /// The fence guarding the run's changes with this lock.
    pub fn fence(&self) -> Fence {
        Fence {
            state: self.state.clone(),
        }
    }

    /// Stops the heartbeat, then deletes the lock object if it is still this run's (`If-Match` of
    /// the ETag held).
    pub async fn release(mut self, clients: &Clients) -> Result<Released, AwsError> {
        drop(self.stop.take());
        if let Some(heartbeat) = self.heartbeat.take() {
            // It ends at its next wait; a renewal in flight finishes first. A heartbeat that
            // panicked or was cancelled left the state as it was.
            let _ = heartbeat.await;
        }
        let holding = self.state.borrow().clone();
        match holding.lost {
            Some(LockLost::TakenOver { by }) => return Ok(Released::TakenOver { by }),
            Some(LockLost::Deleted) => return Ok(Released::Gone),
            Some(LockLost::NotRenewed { .. }) | None => {}
        }
        let mut etag = holding.etag;
        for attempt in 1..=ATTEMPTS {
            match self.object.delete(clients, &etag).await {
                Ok(()) => return Ok(Released::Deleted),
                Err(e) if e.is_not_found() => return Ok(Released::Gone),
                Err(e) if lost_race(&e) => match self.object.read(clients).await? {
                    None => return Ok(Released::Gone),
                    // Still ours: a write in flight (409), or a renewal whose answer was lost.
                    Some(held) if held.is_ours(self.token) => {
                        if held.etag == etag {
                            backoff(&e, attempt).await;
                        }
                        etag = held.etag;
                    }
                    Some(held) => {
                        return Ok(Released::TakenOver {
                            by: held.owner().to_string(),
                        });
                    }
                },
                Err(e) => return Err(e),
            }
        }
        Err(AwsError::other(
            "unlock",
            KIND,
            &self.object.bucket,
            format!("the lock object kept changing ({ATTEMPTS} attempts)"),
        ))
    }
}

/// Why a lock is taken over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TakeOver {
    Stale,
    /// Its holder process (this pid) has ended on this machine.
    HolderEnded {
        pid: u32,
    },
    Broken,
}

impl std::fmt::Display for TakeOver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TakeOver::Stale => f.write_str("it is stale"),
            TakeOver::HolderEnded { pid } => {
                write!(f, "its holder (pid {pid} on this machine) has ended")
            }
            TakeOver::Broken => f.write_str("--break-lock"),
        }
    }
}

/// What to do about a lock found in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// It is this acquisition's own.
    Ours,
    TakeOver(TakeOver),
    /// Held by another run, whose holder process was judged so.
    Refuse(Liveness),
}

/// Decides about `held` for the acquisition `ours`; `to_break` is the holder the run first saw, the
/// only one `--break-lock` breaks; `judge` tells whether a holder process still runs, asked only
/// of a live lock that is not ours (pure but for `judge`).
fn verdict(
    held: &HeldLock,
    ours: Token,
    break_lock: bool,
    to_break: &Identity,
    judge: impl FnOnce(&HolderProcess) -> Liveness,
) -> Verdict {
    if held.is_ours(ours) {
        return Verdict::Ours;
    }
    if held.is_stale() {
        return Verdict::TakeOver(TakeOver::Stale);
    }
    let liveness = held.holder_liveness(judge);
    match held.holder_process() {
        Some(holder) if liveness == Liveness::Ended => {
            Verdict::TakeOver(TakeOver::HolderEnded { pid: holder.pid })
        }
        _ if break_lock && held.identity() == *to_break => Verdict::TakeOver(TakeOver::Broken),
        _ => Verdict::Refuse(liveness),
    }
}

/// Whether a conditional call failed because the object changed or went away meanwhile (412, 409,
/// 404 `NoSuchKey`): read it again and decide again.
fn lost_race(error: &AwsError) -> bool {
    error.class == ErrorClass::Conflict || error.has_code(NO_SUCH_KEY)
}

/// After a 409 (another write of the object in flight) a short pause, longer each attempt; after
/// a settled race none.
async fn backoff(error: &AwsError, attempt: u32) {
    if error.has_code(CONFLICT_IN_FLIGHT) {
        tokio::time::sleep(Duration::from_millis(50) * attempt).await;
    }
}

/// Renews the lock every `lease.renew_every` until `stop` fires (or its sender is dropped) or the
/// lock is lost.
async fn heartbeat(
    clients: Clients,
    object: LockObject,
    mut record: LockRecord,
    lease: Lease,
    state: watch::Sender<Holding>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => return,
            () = tokio::time::sleep(lease.renew_every) => {}
        }
        let held = state.borrow().etag.clone();
        let next = LockRecord {
            renewal: record.renewal + 1,
            ..record.clone()
        };
        let sent = Instant::now();
        let error = match object.put(&clients, &next, Condition::Matches(&held)).await {
            Ok(etag) => {
                record = next;
                state.send_modify(|h| h.renewed(etag, sent, lease));
                continue;
            }
            Err(e) if lost_race(&e) => match object.read(&clients).await {
                Ok(Some(found)) if found.is_ours(record.token) => {
                    // Ours still: a renewal whose answer was lost (this one or an earlier one, so
                    // it is not trusted for longer), or a 409 that left ours in place.
                    if let Some(found_record) = &found.record {
                        record.renewal = found_record.renewal;
                    }
                    state.send_modify(|h| h.etag = found.etag);
                    continue;
                }
                Ok(Some(found)) => {
                    let by = found.owner().to_string();
                    tracing::warn!(by, "the deployment lock was taken over");
                    state.send_modify(|h| h.lost = Some(LockLost::TakenOver { by }));
                    return;
                }
                Ok(None) => {
                    tracing::warn!("the deployment lock was deleted by another run");
                    state.send_modify(|h| h.lost = Some(LockLost::Deleted));
                    return;
                }
                Err(e) => e,
            },
            Err(e) => e,
        };
        let error = crate::errors::DisplayErrorContext(&error).to_string();
        tracing::warn!(error, "could not renew the deployment lock; trying again");
        state.send_modify(|h| h.last_error = Some(error));
    }
}

impl Holding {
    fn renewed(&mut self, etag: ETag, sent: Instant, lease: Lease) {
        self.etag = etag;
        self.renewed_at = sent;
        self.trusted_until = sent + lease.trusted_for();
        self.last_error = None;
    }
}

/// The precondition of a write of the lock object.
#[derive(Debug, Clone, Copy)]
enum Condition<'a> {
    /// `If-None-Match: *`: there is no lock.
    Absent,
    /// `If-Match`: the lock is still the version read.
    Matches(&'a ETag),
}

impl LockObject {
    /// Writes `record` if `condition` holds; the new ETag.
    async fn put(
        &self,
        clients: &Clients,
        record: &LockRecord,
        condition: Condition<'_>,
    ) -> Result<ETag, AwsError> {
        let body = serde_json::to_vec(record).map_err(|e| AwsError::other("lock", KIND, &self.bucket, e))?;
        let request = clients
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(LOCK_KEY)
            .expected_bucket_owner(&self.account)
            .content_type("application/json")
            .body(ByteStream::from(body));
        let request = match condition {
            Condition::Absent => request.if_none_match("*"),
            Condition::Matches(etag) => request.if_match(etag.as_str()),
        };
        let out = request
            .send()
            .await
            .map_err(|e| AwsError::sdk("lock", KIND, &self.bucket, e))?;
        out.e_tag().map(|etag| ETag(etag.to_string())).ok_or_else(|| {
            AwsError::other(
                "lock",
                KIND,
                &self.bucket,
                "S3 answered the write without an ETag",
            )
        })
    }

    /// The lock in place, if any.
    async fn read(&self, clients: &Clients) -> Result<Option<HeldLock>, AwsError> {
        let date = ServerDate::default();
        let answer = clients
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(LOCK_KEY)
            .expected_bucket_owner(&self.account)
            .customize()
            .interceptor(date.clone())
            .send()
            .await
            .map_err(|e| AwsError::sdk("read the lock of", KIND, &self.bucket, e));
        // No lock; a missing bucket stays an error.
        let out = match answer {
            Ok(out) => out,
            Err(e) if e.has_code(NO_SUCH_KEY) => return Ok(None),
            Err(e) => return Err(e),
        };
        let etag = out.e_tag().map(|etag| ETag(etag.to_string())).ok_or_else(|| {
            AwsError::other(
                "read the lock of",
                KIND,
                &self.bucket,
                "S3 sent the lock without an ETag",
            )
        })?;
        let age = out
            .last_modified()
            .zip(date.get())
            .map(|(modified, now)| age(*modified, now));
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| AwsError::other("read the lock of", KIND, &self.bucket, e))?
            .into_bytes();
        Ok(Some(HeldLock {
            record: serde_json::from_slice(&bytes).ok(),
            etag,
            age,
        }))
    }

    /// Deletes the lock if it is still the version `etag`.
    async fn delete(&self, clients: &Clients, etag: &ETag) -> Result<(), AwsError> {
        clients
            .s3
            .delete_object()
            .bucket(&self.bucket)
            .key(LOCK_KEY)
            .expected_bucket_owner(&self.account)
            .if_match(etag.as_str())
            .send()
            .await
            .map_err(|e| AwsError::sdk("unlock", KIND, &self.bucket, e))?;
        Ok(())
    }
}

/// How long before `now` an object was `modified`, both by S3's clock (zero when S3's hosts
/// disagree the other way).
fn age(modified: DateTime, now: DateTime) -> Duration {
    let nanos = |t: DateTime| i128::from(t.secs()) * 1_000_000_000 + i128::from(t.subsec_nanos());
    let elapsed = (nanos(now) - nanos(modified)).max(0);
    Duration::from_nanos(u64::try_from(elapsed).unwrap_or(u64::MAX))
}

/// The lock in `bucket`, if any, as S3 has it (every call on it passes the caller's account as
/// `ExpectedBucketOwner`).
pub async fn read(clients: &Clients, bucket: &str) -> Result<Option<HeldLock>, AwsError> {
    let object = LockObject {
        bucket: bucket.to_string(),
        account: clients.account().await?.to_string(),
    };
    object.read(clients).await
}

/// Records the `Date` header of the response S3 sent: S3's clock, the only one that judges whether
/// a lock is stale.
#[derive(Debug, Clone, Default)]
struct ServerDate(Arc<Mutex<Option<DateTime>>>);

impl ServerDate {
    fn get(&self) -> Option<DateTime> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Intercept for ServerDate {
    fn name(&self) -> &'static str {
        "ServerDate"
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let date = context
            .response()
            .headers()
            .get("date")
            .and_then(|value| DateTime::from_str(value, Format::HttpDate).ok());
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = date;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(token: u64, lease_seconds: u64) -> LockRecord {
        LockRecord {
            owner: format!("run {token}"),
            token: Token(token),
            lease_seconds,
            renewal: 0,
            holder: None,
        }
    }

    fn held(record: Option<LockRecord>, age: Option<u64>) -> HeldLock {
        HeldLock {
            record,
            etag: ETag("\"e\"".into()),
            age: age.map(Duration::from_secs),
        }
    }

    #[test]
    fn a_lock_is_stale_once_s3_counts_its_whole_lease_since_the_last_write() {
        assert!(!held(Some(record(1, 60)), Some(59)).is_stale());
        assert!(held(Some(record(1, 60)), Some(60)).is_stale());
        // Without S3's time there is nothing to judge by: never stale.
        assert!(!held(Some(record(1, 60)), None).is_stale());
        // An unreadable lock object lives the default lease.
        assert!(!held(None, Some(119)).is_stale());
        assert!(held(None, Some(120)).is_stale());
    }

    #[test]
    fn age_is_s3s_date_minus_last_modified_and_never_negative() {
        let at = |secs| DateTime::from_secs(secs);
        assert_eq!(age(at(1_000), at(1_025)), Duration::from_secs(25));
        assert_eq!(age(at(1_025), at(1_000)), Duration::ZERO);
        let date = DateTime::from_str("Wed, 02 Dec 2026 04:53:40 GMT", Format::HttpDate).unwrap();
        assert_eq!(age(date, at(date.secs() + 90)), Duration::from_secs(90));
    }

    /// A judge for locks whose holder process must not be asked about.
    fn unasked(holder: &HolderProcess) -> Liveness {
        panic!("asked about {holder:?}")
    }

    fn process(pid: u32) -> HolderProcess {
        HolderProcess {
            boot_id: "4817781e-08a3-433f-bc58-24c36a7ffa6f".to_string(),
            pid_namespace: 4_026_531_836,
            time_namespace: Some(4_026_531_834),
            uid: 0,
            pid,
            start_ticks: 210_733,
        }
    }

    /// A lock of `token`, held by the process `pid`, last written `age` seconds ago.
    fn held_by_process(token: u64, pid: u32, age: u64) -> HeldLock {
        held(
            Some(LockRecord {
                holder: Some(process(pid)),
                ..record(token, 120)
            }),
            Some(age),
        )
    }

    /// A judge that finds every holder process `liveness`, and checks it is asked about `pid`.
    fn judged(pid: u32, liveness: Liveness) -> impl FnOnce(&HolderProcess) -> Liveness {
        move |holder| {
            assert_eq!(holder, &process(pid));
            liveness
        }
    }

    #[test]
    fn a_live_lock_whose_holder_ended_on_this_machine_is_taken_over_at_once() {
        let ours = Token(9);
        let lock = held_by_process(1, 4242, 10);
        let seen = lock.identity();
        let ended = Verdict::TakeOver(TakeOver::HolderEnded { pid: 4242 });
        assert_eq!(
            verdict(&lock, ours, false, &seen, judged(4242, Liveness::Ended)),
            ended
        );
        // The holder's end is the reason given, with --break-lock too.
        assert_eq!(
            verdict(&lock, ours, true, &seen, judged(4242, Liveness::Ended)),
            ended
        );
        // Not the holder first seen: a dead lock is dead whoever wrote it.
        let later = held_by_process(2, 4242, 0);
        assert_eq!(
            verdict(&later, ours, true, &seen, judged(4242, Liveness::Ended)),
            ended
        );
        assert_eq!(
            TakeOver::HolderEnded { pid: 4242 }.to_string(),
            "its holder (pid 4242 on this machine) has ended"
        );
    }

    #[test]
    fn a_holder_running_or_not_judged_leaves_the_lock_to_its_lease_and_break_lock() {
        let ours = Token(9);
        let lock = held_by_process(1, 4242, 10);
        let seen = lock.identity();
        for liveness in [Liveness::Running, Liveness::Unknown] {
            assert_eq!(
                verdict(&lock, ours, false, &seen, judged(4242, liveness)),
                Verdict::Refuse(liveness)
            );
            assert_eq!(
                verdict(&lock, ours, true, &seen, judged(4242, liveness)),
                Verdict::TakeOver(TakeOver::Broken)
            );
        }
        // A record without a holder process (an earlier version's, or not Linux): nothing to ask.
        let anonymous = held(Some(record(1, 120)), Some(10));
        assert_eq!(
            verdict(&anonymous, ours, false, &seen, unasked),
            Verdict::Refuse(Liveness::Unknown)
        );
    }

    #[test]
    fn the_holder_process_is_asked_about_only_for_a_live_lock_not_ours() {
        let ours = Token(9);
        let stale = held_by_process(1, 4242, 121);
        assert_eq!(
            verdict(&stale, ours, false, &stale.identity(), unasked),
            Verdict::TakeOver(TakeOver::Stale)
        );
        let own = held_by_process(9, 4242, 0);
        assert_eq!(
            verdict(&own, ours, false, &own.identity(), unasked),
            Verdict::Ours
        );
    }

    #[test]
    fn a_live_lock_is_broken_only_with_break_lock_and_only_from_the_holder_first_seen() {
        let first = held(Some(record(1, 120)), Some(10));
        let ours = Token(9);
        let seen = first.identity();
        assert_eq!(
            verdict(&first, ours, false, &seen, unasked),
            Verdict::Refuse(Liveness::Unknown)
        );
        assert_eq!(
            verdict(&first, ours, true, &seen, unasked),
            Verdict::TakeOver(TakeOver::Broken)
        );
        // Renewed by the same holder meanwhile: still the one to break.
        let renewed = HeldLock {
            etag: ETag("\"f\"".into()),
            ..first.clone()
        };
        assert_eq!(
            verdict(&renewed, ours, true, &seen, unasked),
            Verdict::TakeOver(TakeOver::Broken)
        );
        // Another breaker won the race: its lock is not broken in turn.
        let winner = held(Some(record(2, 120)), Some(0));
        assert_eq!(
            verdict(&winner, ours, true, &seen, unasked),
            Verdict::Refuse(Liveness::Unknown)
        );
        // A stale lock is taken over without asking; our own write is ours.
        let stale = held(Some(record(2, 120)), Some(121));
        assert_eq!(
            verdict(&stale, ours, false, &seen, unasked),
            Verdict::TakeOver(TakeOver::Stale)
        );
        let own = held(Some(record(9, 120)), Some(0));
        assert_eq!(verdict(&own, ours, false, &seen, unasked), Verdict::Ours);
        // An unreadable object is identified by its ETag.
        let unreadable = held(None, Some(5));
        assert_eq!(
            verdict(&unreadable, ours, true, &unreadable.identity(), unasked),
            Verdict::TakeOver(TakeOver::Broken)
        );
        assert_eq!(
            verdict(&unreadable, ours, true, &seen, unasked),
            Verdict::Refuse(Liveness::Unknown)
        );
    }

    #[test]
    fn leases_leave_room_for_a_second_renewal() {
        let secs = Duration::from_secs;
        assert_eq!(Lease::new(secs(120), secs(30)), Ok(Lease::DEFAULT));
        assert_eq!(Lease::DEFAULT.trusted_for(), secs(90));
        assert!(Lease::new(secs(2), Duration::from_millis(900)).is_ok());
        assert!(Lease::new(secs(2), secs(1)).is_err(), "half the lease");
        assert!(Lease::new(secs(2), Duration::ZERO).is_err());
        assert!(Lease::new(Duration::from_millis(1500), Duration::from_millis(100)).is_err());
        assert!(Lease::new(Duration::ZERO, Duration::ZERO).is_err());
    }

    #[test]
    fn messages_say_who_holds_the_lock_and_when_it_goes_stale() {
        let error = LockError::held(&held(Some(record(1, 120)), Some(25)), Liveness::Unknown);
        assert_eq!(
            error.to_string(),
            "the deployment is locked by another run (run 1, last renewed 25s ago, stale in 1m35s unless \
             renewed); wait for it to finish, or if that run is gone (interrupted on another machine or \
             in another container, its machine lost) run again once its lock is stale, or now with \
             --break-lock"
        );
        let running = LockError::held(&held_by_process(1, 4242, 25), Liveness::Running);
        assert!(matches!(
            running,
            LockError::Held {
                running_here: Some(4242),
                ..
            }
        ));
        assert_eq!(
            running.to_string(),
            "the deployment is locked by another run (run 1, last renewed 25s ago, stale in 1m35s unless \
             renewed), still running on this machine as pid 4242; wait for it to finish or stop it (the \
             lock of a run that ended on this machine is taken over at once), or take the lock from it \
             now with --break-lock"
        );
        // Not judged: the advice for a holder elsewhere.
        let elsewhere = LockError::held(&held_by_process(1, 4242, 25), Liveness::Unknown);
        assert!(matches!(
            elsewhere,
            LockError::Held {
                running_here: None,
                ..
            }
        ));
        let lost = LockLost::TakenOver {
            by: "bob@ci pid 7".into(),
        };
        assert_eq!(
            lost.to_string(),
            "the deployment lock was taken over by bob@ci pid 7 while this run held it; stopped before \
             changing anything else"
        );
        let unrenewed = LockLost::NotRenewed {
            unrenewed_for: Duration::from_secs(95),
            last_error: Some("timeout".into()),
        };
        assert_eq!(
            unrenewed.to_string(),
            "the deployment lock could not be renewed for 1m35s, so another run may have taken it over; \
             stopped before changing anything else (last renewal failed: timeout)"
        );
        assert_eq!(
            Renewed {
                ago: None,
                lease: Duration::from_secs(120)
            }
            .to_string(),
            "lease 2m"
        );
    }

    #[test]
    fn records_round_trip_and_tokens_differ() {
        let record = record(u64::MAX, 120);
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(
            json,
            r#"{"owner":"run 18446744073709551615","token":18446744073709551615,"lease_seconds":120,"renewal":0}"#
        );
        assert_eq!(serde_json::from_str::<LockRecord>(&json).unwrap(), record);
        // With its holder process; a record without one (an earlier version's) still reads.
        let with_holder = LockRecord {
            holder: Some(process(7)),
            ..record.clone()
        };
        let json_with_holder = serde_json::to_string(&with_holder).unwrap();
        assert!(
            json_with_holder.contains(r#","holder":{"boot_id":"#),
            "{json_with_holder}"
        );
        assert_eq!(
            serde_json::from_str::<LockRecord>(&json_with_holder).unwrap(),
            with_holder
        );
        let earlier = r#"{"owner":"x","token":1,"lease_seconds":120,"renewal":3}"#;
        assert_eq!(serde_json::from_str::<LockRecord>(earlier).unwrap().holder, None);
        // The previous format (a fixed expiry) is not read as a record.
        assert!(serde_json::from_str::<LockRecord>(r#"{"owner":"x","expires_at":5}"#).is_err());
        assert_ne!(Token::fresh(), Token::fresh());
    }
}
