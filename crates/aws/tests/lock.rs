//! The deployment lock against moto over real HTTP (`testbed::Moto`, whose S3 makes conditional
//! writes atomic as AWS does): renewals, a release that leaves another run's lock alone, a lock
//! going stale by S3's clock once its heartbeat stops, a lock taken over while held (the heartbeat
//! reports it and the target's fence refuses changes), two concurrent `--break-lock` runs, and a
//! lock whose holder process has ended on this machine taken over at once (but not one whose holder
//! runs, or that another machine wrote).
//!
//! Nothing here asserts on elapsed time: every wait is for a condition, with a generous deadline
//! against hangs only. Tests skip (with a note) when moto is not installed, outside CI.

use std::collections::BTreeMap;
use std::future::Future;
use std::process::{Child, Command};
use std::time::Duration;

use aws::holder_process::HolderProcess;
use aws::lock::{HeldLock, LOCK_KEY, Lease, Lock, LockError, LockLost, Released};
use aws::{AwsTarget, Clients, s3_bucket};
use aws_sdk_s3::primitives::ByteStream;
use engine::kind::BucketSettings;
use engine::target::{LockRequest, Target as _};
use engine::values::Tags;
use engine::{Change, Desired, DesiredState, Found, Kind, Upstream};
use testbed::Moto;

const REGION: &str = "eu-west-1";
/// Against hangs only: no assertion depends on it.
const DEADLINE: Duration = Duration::from_secs(120);

fn tags() -> Tags {
    [("orchestrate:deployment", "iot-lock")].into_iter().collect()
}

/// Moto, its clients, and a data bucket.
async fn bucket(name: &str) -> Option<(Moto, Clients)> {
    let moto = Moto::start().await?;
    let clients = Clients::from_config(&moto.sdk_config(REGION).await, |_| None);
    s3_bucket::apply(&clients, name, &BucketSettings { tags: tags() })
        .await
        .unwrap();
    Some((moto, clients))
}

/// A lease renewed often, so that renewals (and the loss of the lock) show up quickly.
fn quick() -> Lease {
    Lease::new(Duration::from_secs(10), Duration::from_millis(200)).unwrap()
}

/// Waits for `condition` (checked every 50 ms), failing after [`DEADLINE`].
async fn until<F: Future<Output = bool>>(what: &str, mut condition: impl FnMut() -> F) {
    tokio::time::timeout(DEADLINE, async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
}

async fn holder(clients: &Clients, bucket: &str) -> Option<HeldLock> {
    aws::lock::read(clients, bucket).await.unwrap()
}

async fn owner(clients: &Clients, bucket: &str) -> Option<String> {
    holder(clients, bucket).await.map(|held| held.owner().to_string())
}

fn held_by(result: Result<Lock, LockError>) -> String {
    match result {
        Err(LockError::Held { owner, .. }) => owner,
        other => panic!("want the lock held by another run, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_changes_the_etag_and_keeps_the_holder() {
    let name = "iot-lock-renew-123456789012-eu-west-1";
    let Some((_moto, clients)) = bucket(name).await else {
        return;
    };
    let lock = Lock::acquire(&clients, name, "first", quick(), false)
        .await
        .unwrap();
    let taken = lock.etag();
    assert_eq!(holder(&clients, name).await.unwrap().etag, taken);

    until("the heartbeat renewed the lock", || {
        let etag = lock.etag();
        let taken = taken.clone();
        async move { etag != taken }
    })
    .await;
    let renewed = holder(&clients, name).await.unwrap();
    assert_ne!(renewed.etag, taken, "a renewal writes a new version");
    assert_eq!(renewed.owner(), "first");
    let record = renewed.record.as_ref().unwrap();
    assert!(record.renewal >= 1, "{record:?}");
    assert_eq!(record.lease_seconds, 10);
    assert!(lock.fence().check().is_ok());

    // Another run is refused, told who holds the lock and when it was renewed by S3's clock.
    match Lock::acquire(&clients, name, "second", Lease::DEFAULT, false).await {
        Err(error) => {
            let message = error.to_string();
            assert!(
                message.contains("(first, last renewed") && message.contains("--break-lock"),
                "{message}"
            );
            let LockError::Held { owner, renewed, .. } = error else {
                panic!("want the lock held, got {message}")
            };
            assert_eq!(owner, "first");
            assert!(renewed.ago.is_some(), "S3 sent its Date: {renewed:?}");
            assert_eq!(renewed.lease, Duration::from_secs(10));
        }
        other => panic!("want the lock held, got {other:?}"),
    }

    assert_eq!(lock.release(&clients).await.unwrap(), Released::Deleted);
    assert_eq!(holder(&clients, name).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_with_a_stale_etag_leaves_the_new_holders_lock() {
    let name = "iot-lock-release-123456789012-eu-west-1";
    let Some((_moto, clients)) = bucket(name).await else {
        return;
    };
    let first = Lock::acquire(&clients, name, "first", Lease::DEFAULT, false)
        .await
        .unwrap();
    let second = Lock::acquire(&clients, name, "second", Lease::DEFAULT, true)
        .await
        .unwrap();
    assert_ne!(second.etag(), first.etag());

    // The first run still holds the ETag it wrote: its conditional delete fails, and it leaves the
    // lock to the second.
    assert_eq!(
        first.release(&clients).await.unwrap(),
        Released::TakenOver {
            by: "second".to_string()
        }
    );
    assert_eq!(owner(&clients, name).await.as_deref(), Some("second"));
    assert_eq!(second.release(&clients).await.unwrap(), Released::Deleted);
    assert_eq!(holder(&clients, name).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_no_longer_renewed_goes_stale_after_its_lease_by_s3s_clock() {
    let name = "iot-lock-stale-123456789012-eu-west-1";
    let Some((_moto, clients)) = bucket(name).await else {
        return;
    };
    let lease = Lease::new(Duration::from_secs(2), Duration::from_millis(500)).unwrap();
    let killed = Lock::acquire(&clients, name, "killed run", lease, false)
        .await
        .unwrap();
    // A killed run: its heartbeat stops, nothing deletes its lock.
    drop(killed);

    // Taken over without --break-lock once S3's `Date` is a lease past the lock's `LastModified`;
    // until then refused, naming the holder.
    let next = tokio::time::timeout(DEADLINE, async {
        loop {
            match Lock::acquire(&clients, name, "next run", Lease::DEFAULT, false).await {
                Ok(lock) => break lock,
                Err(LockError::Held { owner, renewed, .. }) => {
                    assert_eq!(owner, "killed run");
                    assert!(renewed.ago.is_some(), "judged by S3's Date: {renewed:?}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(other) => panic!("{other:?}"),
            }
        }
    })
    .await
    .expect("the lock goes stale and is taken over");
    let held = holder(&clients, name).await.unwrap();
    assert_eq!(held.owner(), "next run");
    assert!(!held.is_stale());
    assert_eq!(next.release(&clients).await.unwrap(), Released::Deleted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_taken_over_while_held_is_lost_and_the_target_refuses_changes() {
    let Some(moto) = Moto::start().await else { return };
    let clients = Clients::from_config(&moto.sdk_config(REGION).await, |_| None);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train.csv"), "a,Label\n1,Normal\n").unwrap();
    let yaml =
        format!("version: 1\nname: iot-lock\ntarget: aws\nregion: {REGION}\ndata: {{train: train.csv}}\n");
    let spec = spec::parse(&yaml, "deploy.yaml", dir.path()).unwrap_or_else(|e| panic!("{e:?}"));
    let target = AwsTarget::with_clients(&spec, &dir.path().join("model-image"), clients.clone())
        .await
        .unwrap()
        .with_lease(quick());
    let bucket = target.bucket();
    let desired = Desired::new(&bucket, BucketSettings { tags: tags() });
    let state = DesiredState {
        deployment: "iot-lock".to_string(),
        target: spec::Target::Aws,
        resources: vec![desired.clone()],
    };
    let held = target
        .lock(LockRequest {
            state: Some(&state),
            owner: "first run",
            break_lock: false,
        })
        .await
        .unwrap()
        .expect("the bucket is created for the lock");
    let mut fence = held.fence();
    assert!(fence.check().is_ok());

    let breaker = Lock::acquire(&clients, &bucket, "second run", Lease::DEFAULT, true)
        .await
        .unwrap();
    let lost = tokio::time::timeout(DEADLINE, fence.lost())
        .await
        .expect("the heartbeat finds the lock lost");
    let taken_over = LockLost::TakenOver {
        by: "second run".to_string(),
    };
    assert_eq!(lost.as_ref(), Some(&taken_over));
    assert_eq!(fence.check(), Err(taken_over));

    // The fence: no change is made any more, each refusal saying why.
    let refused = target
        .delete(&Found::new(Kind::Bucket, &bucket))
        .await
        .unwrap_err();
    let message = engine::target::error_chain(&refused);
    assert!(
        message.contains("taken over by second run while this run held it")
            && message.contains("stopped before changing anything else"),
        "{message}"
    );
    let outputs = BTreeMap::new();
    let upstream = Upstream {
        state: &state,
        outputs: &outputs,
    };
    assert!(target.apply(&desired, &Change::Create, upstream).await.is_err());
    assert!(
        clients.s3.head_bucket().bucket(&bucket).send().await.is_ok(),
        "the bucket is still there"
    );

    // Giving the lost lock back leaves the new holder's alone.
    target.release(held).await.unwrap();
    assert_eq!(owner(&clients, &bucket).await.as_deref(), Some("second run"));
    assert_eq!(breaker.release(&clients).await.unwrap(), Released::Deleted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_break_lock_runs_end_with_one_holder() {
    let name = "iot-lock-break-123456789012-eu-west-1";
    let Some((_moto, clients)) = bucket(name).await else {
        return;
    };
    // The holder is alive and renewing while both break its lock.
    let first = Lock::acquire(&clients, name, "first", quick(), false)
        .await
        .unwrap();
    let mut first_fence = first.fence();

    let (b, c) = tokio::join!(
        Lock::acquire(&clients, name, "breaker b", Lease::DEFAULT, true),
        Lock::acquire(&clients, name, "breaker c", Lease::DEFAULT, true),
    );
    let (winner, loser) = match (b, c) {
        (Ok(winner), loser @ Err(_)) | (loser @ Err(_), Ok(winner)) => (winner, held_by(loser)),
        (Ok(b), Ok(c)) => panic!("both hold the lock: {} and {}", b.owner(), c.owner()),
        (Err(b), Err(c)) => panic!("neither holds the lock: {b} / {c}"),
    };
    // The loser is told who holds the lock: the winner, not the holder both set out to break.
    assert_eq!(loser, winner.owner());
    assert_eq!(owner(&clients, name).await.as_deref(), Some(winner.owner()));
    assert_eq!(holder(&clients, name).await.unwrap().etag, winner.etag());
    let lost = tokio::time::timeout(DEADLINE, first_fence.lost())
        .await
        .expect("the first run finds its lock lost");
    assert_eq!(
        lost,
        Some(LockLost::TakenOver {
            by: winner.owner().to_string()
        })
    );

    assert!(matches!(
        first.release(&clients).await.unwrap(),
        Released::TakenOver { .. }
    ));
    assert_eq!(winner.release(&clients).await.unwrap(), Released::Deleted);
    assert_eq!(holder(&clients, name).await, None);
}

/// A process of this machine that runs until killed.
fn sleeper() -> Child {
    Command::new("sleep").arg("600").spawn().expect("sleep runs")
}

/// `child` as its lock record would name it, taken while it runs.
fn process_of(child: &Child) -> HolderProcess {
    HolderProcess::of(child.id()).expect("/proc describes a running child")
}

/// Kills `child` and reaps it: its pid names no process any more.
fn end(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Writes a lock as a run of `owner` in `process` holds it, just renewed (so far from stale).
async fn write_lock(clients: &Clients, bucket: &str, owner: &str, process: &HolderProcess) {
    let record = serde_json::json!({
        "owner": owner,
        "token": 7,
        "lease_seconds": 120,
        "renewal": 3,
        "holder": process,
    });
    clients
        .s3
        .put_object()
        .bucket(bucket)
        .key(LOCK_KEY)
        .body(ByteStream::from(serde_json::to_vec(&record).unwrap()))
        .send()
        .await
        .unwrap();
    let held = holder(clients, bucket).await.unwrap();
    assert_eq!(
        held.holder_process(),
        Some(process),
        "a lock record naming its holder process"
    );
    assert!(!held.is_stale());
}

/// Takes the lock as a run of `owner` would without `--break-lock`.
async fn take(clients: &Clients, bucket: &str, owner: &str) -> Result<Lock, LockError> {
    Lock::acquire(clients, bucket, owner, Lease::DEFAULT, false).await
}

/// The refusal's message and the pid it says the holder runs as on this machine.
fn refused(result: Result<Lock, LockError>, by: &str) -> (String, Option<u32>) {
    let message = result.as_ref().err().map(ToString::to_string);
    match result {
        Err(LockError::Held {
            owner, running_here, ..
        }) => {
            assert_eq!(owner, by);
            (message.unwrap_or_default(), running_here)
        }
        other => panic!("want the lock held by {by}, got {other:?}"),
    }
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_whose_holder_process_ended_on_this_machine_is_taken_over_at_once() {
    let name = "iot-lock-ended-123456789012-eu-west-1";
    let Some((_moto, clients)) = bucket(name).await else {
        return;
    };
    let here = HolderProcess::current().expect("/proc describes this process");

    // A run killed (SIGKILL) on this machine, its lock just renewed: no lease to wait for.
    let killed = sleeper();
    let process = process_of(&killed);
    end(killed);
    write_lock(&clients, name, "killed run", &process).await;
    let next = take(&clients, name, "next run")
        .await
        .expect("taken over at once");
    let held = holder(&clients, name).await.unwrap();
    assert_eq!(held.owner(), "next run");
    assert_eq!(
        held.holder_process(),
        Some(&here),
        "the new holder names its own process"
    );
    assert_eq!(next.release(&clients).await.unwrap(), Released::Deleted);

    // The holder's pid reused by another process (this one), started at another time.
    let reused = HolderProcess {
        start_ticks: here.start_ticks + 1,
        ..here.clone()
    };
    write_lock(&clients, name, "run of a reused pid", &reused).await;
    let next = take(&clients, name, "next run")
        .await
        .expect("taken over at once");
    assert_eq!(owner(&clients, name).await.as_deref(), Some("next run"));
    assert_eq!(next.release(&clients).await.unwrap(), Released::Deleted);
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_whose_holder_runs_or_was_elsewhere_is_refused() {
    let name = "iot-lock-running-123456789012-eu-west-1";
    let Some((_moto, clients)) = bucket(name).await else {
        return;
    };
    let here = HolderProcess::current().expect("/proc describes this process");

    // A run still going on this machine: refused, told it runs here; taken once it has ended.
    let running = sleeper();
    let process = process_of(&running);
    write_lock(&clients, name, "running run", &process).await;
    let (message, running_here) = refused(take(&clients, name, "next run").await, "running run");
    assert_eq!(running_here, Some(process.pid));
    assert!(
        message.contains(&format!("still running on this machine as pid {}", process.pid)),
        "{message}"
    );
    end(running);
    let next = take(&clients, name, "next run")
        .await
        .expect("taken over once it ended");
    assert_eq!(next.release(&clients).await.unwrap(), Released::Deleted);

    // This process itself holds it (another run in it): it runs.
    write_lock(&clients, name, "run in this process", &here).await;
    let (_, running_here) = refused(take(&clients, name, "next run").await, "run in this process");
    assert_eq!(running_here, Some(std::process::id()));

    // An ended process, but of another boot (another machine), another pid namespace (another
    // container) or another user: not judged, so the lease decides.
    let ended = sleeper();
    let process = process_of(&ended);
    end(ended);
    let elsewhere = [
        HolderProcess {
            boot_id: "00000000-0000-4000-8000-000000000000".to_string(),
            ..process.clone()
        },
        HolderProcess {
            pid_namespace: process.pid_namespace + 1,
            ..process.clone()
        },
        HolderProcess {
            uid: process.uid + 1,
            ..process.clone()
        },
    ];
    for other in &elsewhere {
        write_lock(&clients, name, "run elsewhere", other).await;
        let (message, running_here) = refused(take(&clients, name, "next run").await, "run elsewhere");
        assert_eq!(running_here, None, "{other:?}");
        assert!(message.contains("run again once its lock is stale"), "{message}");
    }
    assert_eq!(owner(&clients, name).await.as_deref(), Some("run elsewhere"));
}
