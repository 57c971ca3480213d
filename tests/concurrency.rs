//! Concurrency: two runs on the same deployment at once, on the local target (the state folder's
//! OS file lock) and on the AWS target (the lock object in the data bucket, against moto with the
//! testbed's SageMaker emulation). Exactly one run proceeds; the other exits 1 with the lock
//! message naming the holder's pid; the end state is consistent.
//!
//! 1. Two `up`s from nothing, started together: one deploys, the other is refused naming the
//!    winner; `status` is in sync and the deployment is whole and alone (one endpoint, one training
//!    job for the input, no second server or orphan; the checks of `tests/support`).
//! 2. An `up` rolling forward, and a `down` started once that `up` holds the lock: the `down` is
//!    refused naming the `up`, which finishes; the deployment serves the new input.
//! 3. A `down`, and an `up` of a new input started once that `down` holds the lock: either the
//!    `up` is refused naming the `down` and nothing is left, or the `down` had finished and given
//!    the lock back before the `up` asked for it, and the `up` deploys anew. Either way one run at
//!    a time. (The new input gives the `up` work: a no-op `up` takes no lock, and one that observed
//!    everything in sync before the `down` deleted it is the order up-then-down.)
//!
//! `cargo test -p orchestrate-e2e --test concurrency -- --nocapture` (the binaries built first:
//! `cargo build -p orchestrate -p model-image`).

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use orchestrate_e2e::Deployment;
use orchestrate_e2e::aws::{Aws, REGION};
use orchestrate_e2e::world::{World, log_text};

const LOCAL: &str = "e2e-race-local";
const AWS: &str = "e2e-race-aws";

/// deploy.yaml of a small deployment; `version` picks the learning rate (a new training input).
fn deploy_yaml(world: World<'_>, version: u32) -> String {
    let learning_rate = format!("0.{:03}", 100 + version);
    let (name, target) = match world {
        World::Local => (LOCAL, "target: local\n".to_string()),
        World::Aws(_) => (AWS, format!("target: aws\nregion: {REGION}\n")),
    };
    format!(
        r#"version: 1
name: {name}
{target}data:
  train: train.csv
  validation: 0.2
training:
  instance_type: ml.m5.xlarge
  max_runtime: 10m
  hyperparameters:
    learning_rate: {learning_rate}
    max_rounds: 20
    early_stopping_rounds: 5
    threads: 2
endpoint:
  instance_type: ml.m5.large
  wait_timeout: 5m
  autoscaling: {{min: 1, max: 2, invocations_per_instance: 500}}
"#
    )
}

/// A spawned run and where its output goes.
struct Spawned {
    child: Child,
    log: std::path::PathBuf,
    what: &'static str,
}

impl Spawned {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for its end (no deadline needed: every run has its own timeouts).
    fn wait(mut self) -> Ended {
        let status = tokio::task::block_in_place(|| self.child.wait()).expect("wait for the run");
        Ended {
            status,
            pid: self.child.id(),
            stdout: log_text(&self.log, "stdout"),
            stderr: log_text(&self.log, "stderr"),
            what: self.what,
        }
    }
}

/// A run that ended.
#[derive(Debug)]
struct Ended {
    status: ExitStatus,
    pid: u32,
    stdout: String,
    stderr: String,
    what: &'static str,
}

impl Ended {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    fn show(&self) -> String {
        format!(
            "`orchestrate {}` (pid {}) ended {}\n--- stdout\n{}\n--- stderr\n{}",
            self.what, self.pid, self.status, self.stdout, self.stderr
        )
    }

    /// Asserts it was refused by the lock, the message naming `holder`'s pid.
    fn refused_by(&self, world: World<'_>, holder: u32) {
        assert_eq!(self.code(), Some(1), "refused by the lock: {}", self.show());
        assert!(
            self.stderr.contains(world.locked_text()) && self.stderr.contains(&world.holder_text(holder)),
            "the refusal names the lock and its holder (pid {holder}): {}",
            self.show()
        );
    }
}

/// The deployment of one target and its runs.
struct Race<'a> {
    world: World<'a>,
    name: &'static str,
    deployment: Deployment,
    logs: tempfile::TempDir,
    runs: usize,
}

impl Race<'_> {
    fn spawn(&mut self, args: &[&str], what: &'static str) -> Spawned {
        self.runs += 1;
        let log = self.logs.path().join(format!("{}-{}", self.runs, args[0]));
        let child = self.world.spawn(&self.deployment, args, &log);
        Spawned { child, log, what }
    }

    fn must(&self, args: &[&str], code: i32) -> orchestrate_e2e::Run {
        self.world.run(&self.deployment, args).expect(code)
    }

    /// Waits until `run` holds the deployment's lock (its pid in the lock), failing if it ends
    /// first; a deadline only against hanging.
    async fn holds_lock(&self, run: &mut Spawned) {
        let deadline = Instant::now() + Duration::from_secs(180);
        let pid = run.pid();
        let bucket = match self.world {
            World::Aws(aws) => Some(aws.bucket_of(self.name).await),
            World::Local => None,
        };
        loop {
            let held = match (self.world, &bucket) {
                (World::Aws(aws), Some(bucket)) => aws
                    .lock_owner(bucket)
                    .await
                    .is_some_and(|owner| owner.ends_with(&format!(" pid {pid}"))),
                _ => std::fs::read_to_string(self.deployment.state(self.name).join("lock"))
                    .is_ok_and(|holder| holder.starts_with(&format!("pid {pid} ("))),
            };
            if held {
                return;
            }
            if let Some(status) = run.child.try_wait().expect("poll the run") {
                panic!(
                    "`orchestrate {}` ended ({status}) before it was seen holding the lock\n{}",
                    run.what,
                    log_text(&run.log, "stderr")
                );
            }
            assert!(
                Instant::now() < deadline,
                "`orchestrate {}` never took the lock",
                run.what
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn converged(&self, context: &str) {
        self.must(&["status"], 0);
        self.world
            .assert_converged(&self.deployment, self.name, context)
            .await;
    }

    async fn gone(&self, context: &str) {
        // What down left, before `status` reads (and caches the image digest) again.
        self.world.assert_gone(&self.deployment, self.name, context).await;
        let status = self.must(&["--output", "json", "status"], 2);
        for resource in status.json()["status"]["resources"]
            .as_array()
            .expect("resources")
        {
            let kept_forever = matches!(self.world, World::Aws(_)) && resource["kind"] == "training_job";
            assert!(
                kept_forever || resource["status"] == "missing",
                "{context}: left after down: {resource}"
            );
        }
    }
}

async fn one_run_at_a_time(world: World<'_>, name: &'static str) {
    let deployment = Deployment::new(&deploy_yaml(world, 0));
    deployment.demo_data(1200);
    let mut race = Race {
        world,
        name,
        deployment,
        logs: tempfile::tempdir().expect("a folder for the runs' logs"),
        runs: 0,
    };
    let label = world.label();

    // 1. Two ups from nothing, at once.
    let first = race.spawn(&["up"], "up");
    let second = race.spawn(&["up"], "up");
    let (first, second) = (first.wait(), second.wait());
    let (winner, loser) = match (first.code(), second.code()) {
        (Some(0), _) => (first, second),
        (_, Some(0)) => (second, first),
        _ => panic!("neither up succeeded:\n{}\n{}", first.show(), second.show()),
    };
    loser.refused_by(world, winner.pid);
    race.converged("two ups at once").await;
    eprintln!(
        "concurrency ({label}): two ups at once: pid {} deployed, pid {} refused: {}",
        winner.pid,
        loser.pid,
        loser.stderr.trim().lines().last().unwrap_or_default()
    );

    // 2. An up rolling forward; a down once the up holds the lock.
    race.deployment.write_deploy_yaml(&deploy_yaml(world, 1));
    let mut up = race.spawn(&["up"], "up");
    race.holds_lock(&mut up).await;
    let down = race.spawn(&["down", "--yes"], "down --yes").wait();
    down.refused_by(world, up.pid());
    let up = up.wait();
    assert_eq!(up.code(), Some(0), "{}", up.show());
    // In sync with deploy.yaml: the up deployed the new input.
    race.converged("a down during an up").await;
    eprintln!(
        "concurrency ({label}): a down during an up (pid {}): refused: {}",
        up.pid,
        down.stderr.trim().lines().last().unwrap_or_default()
    );

    // 3. A down; an up with a new input (so it has work and needs the lock: a no-op up takes
    // none, and its snapshot before the down's deletions is the order up-then-down) once the down
    // holds the lock.
    race.deployment.write_deploy_yaml(&deploy_yaml(world, 2));
    let mut down = race.spawn(&["down", "--yes"], "down --yes");
    race.holds_lock(&mut down).await;
    let up = race.spawn(&["up"], "up").wait();
    let down = down.wait();
    assert_eq!(down.code(), Some(0), "{}", down.show());
    if up.code() == Some(0) {
        // The down ended and gave the lock back before the up asked for it: the up, planning
        // again under the lock, deployed anew.
        eprintln!(
            "concurrency ({label}): an up during a down (pid {}) ran after it",
            down.pid
        );
        race.converged("an up after a down").await;
        race.must(&["down", "--yes"], 0);
    } else {
        up.refused_by(world, down.pid);
        eprintln!(
            "concurrency ({label}): an up during a down (pid {}): refused: {}",
            down.pid,
            up.stderr.trim().lines().last().unwrap_or_default()
        );
    }
    race.gone("the down").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_runs_on_one_deployment_take_turns() {
    one_run_at_a_time(World::Local, LOCAL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_runs_on_one_deployment_take_turns() {
    let Some(aws) = Aws::start().await else {
        return;
    };
    one_run_at_a_time(World::Aws(&aws), AWS).await;
}
