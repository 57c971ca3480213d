//! The executor's own logic against an in-memory fake target: level ordering, waits and their
//! timeouts (on tokio's paused clock), the quality gate, the endpoint verification, orphan deletion,
//! rollback and down. The real targets are tested end to end in their own crates.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use engine::desired::DesiredState;
use engine::executor::{self, EngineError, level};
use engine::plan::{PREVIOUS_CONFIG_FIELD, Plan};
use engine::progress::{Event, Recorder, Silent};
use engine::resource::{Change, Desired, Kind, Lifecycle, Observed, OnChange};
use engine::target::{Applied, Found, Target, TargetError};
use spec::QualityGate;

const TAGS: &str = "managed-by=orchestrate;orchestrate:deployment=iot";
const JOB_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The desired state of version `v`: its job, model and config names end in `v`.
fn desired(v: &str) -> DesiredState {
    let (job, model, config) = (
        format!("iot-job{v}"),
        format!("iot-model{v}"),
        format!("iot-cfg{v}"),
    );
    DesiredState {
        deployment: "iot".into(),
        target: spec::Target::Local,
        resources: vec![
            Desired::new(Kind::Bucket, "iot-local").field("tags", TAGS, OnChange::Update),
            Desired::new(Kind::TrainingData, "data/abc/train/train").field(
                "sha256",
                "abc",
                OnChange::Replace,
            ),
            Desired::new(Kind::Role, "iot-role").field("tags", TAGS, OnChange::Update),
            Desired::new(Kind::Repository, "iot-repo").field("tags", TAGS, OnChange::Update),
            Desired::new(Kind::Image, "iot-repo@sha256:1").field("digest", "sha256:1", OnChange::Replace),
            Desired::new(Kind::TrainingJob, &job)
                .field("hyperparameters", v, OnChange::Replace)
                .wait_timeout(JOB_TIMEOUT),
            Desired::new(Kind::Model, &model).field("training_job", &job, OnChange::Replace),
            Desired::new(Kind::EndpointConfig, &config).field("model", &model, OnChange::Replace),
            Desired::new(Kind::Endpoint, "iot")
                .field("endpoint_config", &config, OnChange::Update)
                .wait_timeout(Duration::from_secs(600)),
            Desired::new(Kind::Autoscaling, "iot").field("max", "2", OnChange::Update),
        ],
    }
}

/// How a pending training job ends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum JobOutcome {
    /// Ready after this many polls.
    ReadyAfter(u32),
    /// Failed after this many polls.
    FailsAfter(u32),
    Never,
}

#[derive(Debug, Clone)]
struct Resource {
    kind: Kind,
    /// The actual name (a training job's with `-1`).
    name: String,
    fields: BTreeMap<String, String>,
    lifecycle: Lifecycle,
    polls: u32,
}

/// An in-memory target that records every call.
#[derive(Debug)]
struct Fake {
    resources: Mutex<BTreeMap<(Kind, String), Resource>>,
    calls: Mutex<Vec<(String, Kind, String)>>,
    job: JobOutcome,
    metrics: BTreeMap<String, f64>,
    /// The endpoint's update "succeeds" but it keeps running its old config (SageMaker's silent
    /// rollback).
    endpoint_rolls_back: bool,
}

impl Fake {
    fn new() -> Self {
        Fake {
            resources: Mutex::new(BTreeMap::new()),
            calls: Mutex::new(Vec::new()),
            job: JobOutcome::ReadyAfter(2),
            metrics: BTreeMap::from([("pr_auc".to_string(), 0.99), ("roc_auc".to_string(), 0.995)]),
            endpoint_rolls_back: false,
        }
    }

    /// A fake where `state` is deployed and healthy.
    fn converged(state: &DesiredState) -> Self {
        let fake = Fake::new();
        for desired in &state.resources {
            fake.put(
                desired.kind,
                &desired.name,
                desired
                    .fields
                    .iter()
                    .map(|f| (f.name, f.value.as_str()))
                    .collect(),
            );
        }
        fake
    }

    fn put(&self, kind: Kind, key: &str, fields: Vec<(&str, &str)>) {
        let name = if kind == Kind::TrainingJob {
            format!("{key}-1")
        } else {
            key.to_string()
        };
        let fields = fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let resource = Resource {
            kind,
            name,
            fields,
            lifecycle: Lifecycle::Ready,
            polls: 0,
        };
        self.resources
            .lock()
            .unwrap()
            .insert((kind, key.to_string()), resource);
    }

    fn set_field(&self, kind: Kind, key: &str, field: &str, value: &str) {
        let mut resources = self.resources.lock().unwrap();
        let resource = resources
            .get_mut(&(kind, key.to_string()))
            .expect("resource exists");
        resource.fields.insert(field.to_string(), value.to_string());
    }

    fn field(&self, kind: Kind, key: &str, field: &str) -> Option<String> {
        self.resources
            .lock()
            .unwrap()
            .get(&(kind, key.to_string()))?
            .fields
            .get(field)
            .cloned()
    }

    fn exists(&self, kind: Kind, key: &str) -> bool {
        self.resources
            .lock()
            .unwrap()
            .contains_key(&(kind, key.to_string()))
    }

    fn calls(&self, verb: &str) -> Vec<(Kind, String)> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(v, ..)| v == verb)
            .map(|(_, k, n)| (*k, n.clone()))
            .collect()
    }

    fn call(&self, verb: &str, kind: Kind, name: &str) {
        self.calls
            .lock()
            .unwrap()
            .push((verb.to_string(), kind, name.to_string()));
    }
}

impl Target for Fake {
    fn describe(&self) -> String {
        "fake".into()
    }

    async fn observe(&self, desired: &Desired) -> Result<Observed, TargetError> {
        let mut resources = self.resources.lock().unwrap();
        let Some(resource) = resources.get_mut(&(desired.kind, desired.name.clone())) else {
            return Ok(Observed::Absent);
        };
        if matches!(resource.lifecycle, Lifecycle::InProgress(_)) {
            resource.polls += 1;
            match self.job {
                JobOutcome::ReadyAfter(n) if resource.polls >= n => resource.lifecycle = Lifecycle::Ready,
                JobOutcome::FailsAfter(n) if resource.polls >= n => {
                    resource.lifecycle = Lifecycle::Failed("AlgorithmError: out of memory".into());
                }
                _ => {}
            }
        }
        Ok(Observed::Present {
            name: resource.name.clone(),
            fields: resource.fields.clone(),
            lifecycle: resource.lifecycle.clone(),
        })
    }

    async fn owned(&self) -> Result<Vec<Found>, TargetError> {
        let resources = self.resources.lock().unwrap();
        Ok(resources
            .values()
            .map(|r| Found {
                kind: r.kind,
                name: r.name.clone(),
                fields: r.fields.clone(),
            })
            .collect())
    }

    async fn apply(
        &self,
        desired: &Desired,
        _change: &Change,
        _state: &DesiredState,
    ) -> Result<Applied, TargetError> {
        self.call("apply", desired.kind, &desired.name);
        let fields: Vec<(&str, &str)> = desired
            .fields
            .iter()
            .map(|f| (f.name, f.value.as_str()))
            .collect();
        match desired.kind {
            Kind::TrainingJob => {
                self.put(desired.kind, &desired.name, fields);
                let mut resources = self.resources.lock().unwrap();
                let job = resources.get_mut(&(desired.kind, desired.name.clone())).unwrap();
                job.lifecycle = Lifecycle::InProgress("Training".into());
                Ok(Applied::Pending)
            }
            Kind::Endpoint => {
                let old = self.field(Kind::Endpoint, &desired.name, "endpoint_config");
                let old_previous = self.field(Kind::Endpoint, &desired.name, PREVIOUS_CONFIG_FIELD);
                let want = desired.get("endpoint_config").unwrap().to_string();
                let have = match (&old, self.endpoint_rolls_back) {
                    (Some(old), true) => old.clone(),
                    _ => want.clone(),
                };
                let previous = match &old {
                    Some(old) if *old != have => Some(old.clone()),
                    _ => old_previous,
                };
                self.put(Kind::Endpoint, &desired.name, fields);
                self.set_field(Kind::Endpoint, &desired.name, "endpoint_config", &have);
                if let Some(previous) = previous {
                    self.set_field(Kind::Endpoint, &desired.name, PREVIOUS_CONFIG_FIELD, &previous);
                }
                Ok(Applied::Ready)
            }
            _ => {
                self.put(desired.kind, &desired.name, fields);
                Ok(Applied::Ready)
            }
        }
    }

    async fn delete(&self, found: &Found) -> Result<(), TargetError> {
        self.call("delete", found.kind, &found.name);
        let key = match found.kind {
            Kind::TrainingJob => found.name.trim_end_matches("-1").to_string(),
            _ => found.name.clone(),
        };
        self.resources.lock().unwrap().remove(&(found.kind, key));
        Ok(())
    }

    async fn training_metrics(&self, job_name: &str) -> Result<BTreeMap<String, f64>, TargetError> {
        self.call("metrics", Kind::TrainingJob, job_name);
        Ok(self.metrics.clone())
    }

    async fn new_log_lines(&self, desired: &Desired) -> Vec<String> {
        match desired.kind {
            Kind::TrainingJob => vec![format!("[{}] validation:pr_auc=0.99", desired.name)],
            _ => Vec::new(),
        }
    }

    async fn invoke(
        &self,
        endpoint: &str,
        _: &str,
        _: &str,
        _: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), TargetError> {
        Err(TargetError::new(
            "invoke",
            Kind::Endpoint,
            endpoint,
            "not in this fake",
        ))
    }
}

async fn plan(target: &Fake, state: &DesiredState) -> Plan {
    executor::plan(target, state, &Silent).await.expect("plan")
}

fn gate(min_pr_auc: f64) -> QualityGate {
    QualityGate {
        min_pr_auc: Some(min_pr_auc),
        ..QualityGate::default()
    }
}

#[test]
fn levels_follow_the_dependency_graph() {
    let levels: Vec<(Kind, usize)> = Kind::ALL.iter().map(|k| (*k, level(*k))).collect();
    assert_eq!(
        levels,
        [
            (Kind::Bucket, 0),
            (Kind::TrainingData, 1),
            (Kind::Role, 0),
            (Kind::Repository, 0),
            (Kind::Image, 1),
            (Kind::TrainingJob, 2),
            (Kind::Model, 3),
            (Kind::EndpointConfig, 4),
            (Kind::Endpoint, 5),
            (Kind::Autoscaling, 6),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn up_applies_level_by_level_and_waits_for_the_training_job() {
    let state = desired("1");
    let fake = Fake::new();
    let first = plan(&fake, &state).await;
    assert!(first.steps.iter().all(|s| s.change == Change::Create));
    let recorder = Recorder::default();
    let outcome = executor::up(&fake, &state, &first, Some(&gate(0.9)), &recorder)
        .await
        .expect("up");
    assert_eq!(outcome.changed, state.resources.len());
    assert!(outcome.deleted.is_empty());

    let applied = fake.calls("apply");
    assert_eq!(applied.len(), state.resources.len(), "{applied:?}");
    let levels: Vec<usize> = applied.iter().map(|(kind, _)| level(*kind)).collect();
    assert!(
        levels.windows(2).all(|w| w[0] <= w[1]),
        "applied out of level order: {applied:?}"
    );
    // Every dependency was applied before what needs it.
    for (i, (kind, _)) in applied.iter().enumerate() {
        for dependency in kind.dependencies() {
            let at = applied
                .iter()
                .position(|(k, _)| k == dependency)
                .expect("dependency applied");
            assert!(at < i, "{kind} before its dependency {dependency}");
        }
    }
    // The gate read the metrics of the attempt the target reported.
    assert_eq!(
        fake.calls("metrics"),
        [(Kind::TrainingJob, "iot-job1-1".to_string())]
    );

    let events = recorder.events.lock().unwrap().clone();
    let waits = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Waiting {
                    kind: Kind::TrainingJob,
                    ..
                }
            )
        })
        .count();
    assert_eq!(waits, 1, "ready on the second poll: {events:?}");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Log { line, .. } if line.contains("validation:pr_auc")))
    );
    let gate_passed = events.iter().find_map(|e| match e {
        Event::GatePassed { checks } => Some(checks.clone()),
        _ => None,
    });
    assert_eq!(gate_passed, Some(vec!["pr_auc 0.9900 >= 0.9".to_string()]));
    assert!(plan(&fake, &state).await.is_noop());
}

#[tokio::test(start_paused = true)]
async fn a_training_job_that_never_finishes_times_out_on_its_own_timeout() {
    let state = desired("1");
    let fake = Fake {
        job: JobOutcome::Never,
        ..Fake::new()
    };
    let first = plan(&fake, &state).await;
    let started = tokio::time::Instant::now();
    let error = executor::up(&fake, &state, &first, None, &Silent)
        .await
        .expect_err("times out");
    match error {
        EngineError::Timeout {
            kind,
            name,
            timeout,
            state,
        } => {
            assert_eq!(
                (kind, name.as_str(), timeout, state.as_str()),
                (Kind::TrainingJob, "iot-job1", JOB_TIMEOUT, "Training")
            );
        }
        other => panic!("want a timeout, got {other}"),
    }
    let waited = started.elapsed();
    assert!(
        waited >= JOB_TIMEOUT && waited < JOB_TIMEOUT + Duration::from_secs(10),
        "waited {waited:?}"
    );
    assert!(
        fake.calls("apply")
            .iter()
            .all(|(kind, _)| level(*kind) <= level(Kind::TrainingJob)),
        "nothing after training"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_training_job_stops_up_with_its_reason() {
    let state = desired("1");
    let fake = Fake {
        job: JobOutcome::FailsAfter(3),
        ..Fake::new()
    };
    let first = plan(&fake, &state).await;
    let error = executor::up(&fake, &state, &first, None, &Silent)
        .await
        .expect_err("fails");
    match error {
        EngineError::Failed { kind, name, reason } => {
            assert_eq!((kind, name.as_str()), (Kind::TrainingJob, "iot-job1-1"));
            assert!(reason.contains("out of memory"), "{reason}");
        }
        other => panic!("want a failure, got {other}"),
    }
    // The next plan replaces the failed attempt.
    let retry = plan(&fake, &state).await;
    assert!(matches!(
        retry.step(Kind::TrainingJob).unwrap().change,
        Change::Replace { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn a_running_training_job_is_waited_for_not_started_again() {
    let state = desired("1");
    let fake = Fake::new();
    let job = state.get(Kind::TrainingJob).unwrap();
    fake.apply(job, &Change::Create, &state).await.unwrap();
    fake.calls.lock().unwrap().clear();
    let plan = plan(&fake, &state).await;
    assert_eq!(
        plan.step(Kind::TrainingJob).unwrap().change,
        Change::Wait {
            state: "Training".into()
        }
    );
    executor::up(&fake, &state, &plan, None, &Silent)
        .await
        .expect("up");
    assert!(
        !fake
            .calls("apply")
            .iter()
            .any(|(kind, _)| *kind == Kind::TrainingJob),
        "re-attached, not restarted"
    );
}

#[tokio::test(start_paused = true)]
async fn the_quality_gate_blocks_a_worse_model_without_touching_the_endpoint() {
    let old = desired("1");
    let fake = Fake {
        metrics: BTreeMap::from([("pr_auc".to_string(), 0.81), ("roc_auc".to_string(), 0.9)]),
        ..Fake::converged(&old)
    };
    let new = desired("2");
    let plan = plan(&fake, &new).await;
    let gate = QualityGate {
        min_pr_auc: Some(0.9),
        min_mcc: Some(0.5),
        ..QualityGate::default()
    };
    let error = executor::up(&fake, &new, &plan, Some(&gate), &Silent)
        .await
        .expect_err("gate");
    match &error {
        EngineError::QualityGate { failures, metrics } => {
            assert_eq!(
                failures,
                &["pr_auc 0.8100 < 0.9", "mcc was not reported by the training job"]
            );
            assert_eq!(metrics.get("pr_auc"), Some(&0.81));
        }
        other => panic!("want the gate, got {other}"),
    }
    assert!(
        error.to_string().contains("the live endpoint was left untouched"),
        "{error}"
    );
    let applied: Vec<Kind> = fake.calls("apply").into_iter().map(|(kind, _)| kind).collect();
    assert_eq!(applied, [Kind::TrainingJob], "only the new job ran");
    assert_eq!(
        fake.field(Kind::Endpoint, "iot", "endpoint_config").as_deref(),
        Some("iot-cfg1")
    );
    assert!(fake.calls("delete").is_empty(), "nothing deleted");
}

#[tokio::test(start_paused = true)]
async fn the_gate_is_not_checked_when_nothing_rolls_out() {
    let state = desired("1");
    let fake = Fake {
        metrics: BTreeMap::new(),
        ..Fake::converged(&state)
    };
    fake.set_field(Kind::Role, "iot-role", "tags", "team=old");
    let plan = plan(&fake, &state).await;
    assert_eq!(plan.changes(), 1);
    executor::up(&fake, &state, &plan, Some(&gate(0.99)), &Silent)
        .await
        .expect("a tag update passes");
    assert!(fake.calls("metrics").is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_update_the_target_rolled_back_is_reported_as_rolled_back() {
    let old = desired("1");
    let fake = Fake {
        endpoint_rolls_back: true,
        ..Fake::converged(&old)
    };
    let new = desired("2");
    let plan = plan(&fake, &new).await;
    let error = executor::up(&fake, &new, &plan, None, &Silent)
        .await
        .expect_err("rolled back");
    match &error {
        EngineError::RolledBack { name, want, have } => {
            assert_eq!(
                (name.as_str(), want.as_str(), have.as_str()),
                ("iot", "iot-cfg2", "iot-cfg1")
            );
        }
        other => panic!("want RolledBack, got {other}"),
    }
    assert!(
        error.to_string().contains("the previous model keeps serving"),
        "{error}"
    );
    assert!(
        fake.calls("delete").is_empty(),
        "no cleanup after a failed rollout"
    );
}

#[tokio::test(start_paused = true)]
async fn up_deletes_orphans_but_keeps_the_previous_config_and_its_model() {
    let state = desired("1");
    let fake = Fake::converged(&state);
    fake.set_field(Kind::Endpoint, "iot", PREVIOUS_CONFIG_FIELD, "iot-cfg0");
    fake.put(Kind::EndpointConfig, "iot-cfg0", vec![("model", "iot-model0")]);
    fake.put(Kind::Model, "iot-model0", vec![("training_job", "iot-job0")]);
    fake.put(Kind::EndpointConfig, "iot-cfgX", vec![("model", "iot-modelX")]);
    fake.put(Kind::Model, "iot-modelX", vec![("training_job", "iot-jobX")]);
    fake.put(Kind::TrainingJob, "iot-jobX", vec![]);
    let plan = plan(&fake, &state).await;
    let mut kept: Vec<&str> = plan
        .leftovers
        .iter()
        .filter(|l| l.kept_for_rollback)
        .map(|l| l.found.name.as_str())
        .collect();
    kept.sort();
    assert_eq!(kept, ["iot-cfg0", "iot-model0"]);
    let outcome = executor::up(&fake, &state, &plan, None, &Silent)
        .await
        .expect("up");
    let deleted: Vec<(Kind, &str)> = outcome
        .deleted
        .iter()
        .map(|f| (f.kind, f.name.as_str()))
        .collect();
    // Configs before models (reverse dependency order); training jobs are permanent records.
    assert_eq!(
        deleted,
        [(Kind::EndpointConfig, "iot-cfgX"), (Kind::Model, "iot-modelX")]
    );
    assert!(fake.exists(Kind::EndpointConfig, "iot-cfg0") && fake.exists(Kind::Model, "iot-model0"));
    assert!(fake.exists(Kind::TrainingJob, "iot-jobX"));
    assert!(plan_is_noop(&fake, &state).await);
}

async fn plan_is_noop(fake: &Fake, state: &DesiredState) -> bool {
    plan(fake, state).await.is_noop()
}

/// After a roll-forward the endpoint records the config it left as `previous_endpoint_config`; that
/// config (and its model) must survive the same `up`, or `orchestrate rollback` has nothing to go
/// back to. The executor deletes the leftovers of the plan it was given, computed before the
/// endpoint update: that plan must already count the config being left as kept for rollback.
#[tokio::test(start_paused = true)]
async fn a_roll_forward_keeps_the_config_it_left_for_rollback() {
    let old = desired("1");
    let fake = Fake::converged(&old);
    let new = desired("2");
    let plan = plan(&fake, &new).await;
    executor::up(&fake, &new, &plan, None, &Silent).await.expect("up");
    assert_eq!(
        fake.field(Kind::Endpoint, "iot", PREVIOUS_CONFIG_FIELD)
            .as_deref(),
        Some("iot-cfg1")
    );
    assert!(
        fake.exists(Kind::EndpointConfig, "iot-cfg1"),
        "the rollback target was deleted"
    );
    assert!(
        fake.exists(Kind::Model, "iot-model1"),
        "the rollback target's model was deleted"
    );
    executor::rollback(&fake, &new, &Silent).await.expect("rollback");
}

#[tokio::test(start_paused = true)]
async fn rollback_switches_to_the_previous_config_and_back_again() {
    let state = desired("2");
    let fake = Fake::converged(&state);
    fake.set_field(Kind::Endpoint, "iot", PREVIOUS_CONFIG_FIELD, "iot-cfg1");
    fake.put(Kind::EndpointConfig, "iot-cfg1", vec![("model", "iot-model1")]);
    let to = executor::rollback(&fake, &state, &Silent)
        .await
        .expect("rollback");
    assert_eq!(to, "iot-cfg1");
    assert_eq!(
        fake.field(Kind::Endpoint, "iot", "endpoint_config").as_deref(),
        Some("iot-cfg1")
    );
    assert_eq!(
        fake.field(Kind::Endpoint, "iot", PREVIOUS_CONFIG_FIELD)
            .as_deref(),
        Some("iot-cfg2")
    );
    // The desired state still wants cfg2: status shows the rollback as drift, `up` rolls forward.
    let plan = plan(&fake, &state).await;
    assert!(matches!(
        plan.step(Kind::Endpoint).unwrap().change,
        Change::Update { .. }
    ));
    let again = executor::rollback(&fake, &state, &Silent)
        .await
        .expect("roll back the rollback");
    assert_eq!(again, "iot-cfg2");
}

#[tokio::test(start_paused = true)]
async fn rollback_without_a_previous_config_is_an_error() {
    let state = desired("1");
    let fake = Fake::converged(&state);
    let error = executor::rollback(&fake, &state, &Silent)
        .await
        .expect_err("nothing to roll back to");
    assert!(matches!(error, EngineError::Rollback(_)), "{error}");
    assert!(error.to_string().contains("no previous config"), "{error}");
    assert!(fake.calls("apply").is_empty());

    let empty = Fake::new();
    let error = executor::rollback(&empty, &state, &Silent)
        .await
        .expect_err("no endpoint");
    assert!(error.to_string().contains("does not exist"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn a_rollback_the_target_does_not_take_is_reported() {
    let state = desired("2");
    let fake = Fake {
        endpoint_rolls_back: true,
        ..Fake::converged(&state)
    };
    fake.set_field(Kind::Endpoint, "iot", PREVIOUS_CONFIG_FIELD, "iot-cfg1");
    let error = executor::rollback(&fake, &state, &Silent)
        .await
        .expect_err("did not take");
    assert!(matches!(error, EngineError::RolledBack { .. }), "{error}");
}

#[tokio::test(start_paused = true)]
async fn down_deletes_in_reverse_dependency_order_and_keeps_what_it_is_told() {
    let state = desired("1");
    let fake = Fake::converged(&state);
    let outcome = executor::down(&fake, |f| f.kind == Kind::Bucket, &Silent)
        .await
        .expect("down");
    let order: Vec<Kind> = outcome.deleted.iter().map(|f| f.kind).collect();
    assert!(
        order.windows(2).all(|w| w[0] >= w[1]),
        "not in reverse order: {order:?}"
    );
    assert_eq!(order.first(), Some(&Kind::Autoscaling));
    assert!(order.contains(&Kind::TrainingJob));
    let kept: Vec<Kind> = outcome.kept.iter().map(|f| f.kind).collect();
    assert_eq!(kept, [Kind::Bucket]);
    let remaining = fake.owned().await.unwrap();
    assert_eq!(remaining.len(), 1);
    // A second down finds nothing more to delete.
    let again = executor::down(&fake, |f| f.kind == Kind::Bucket, &Silent)
        .await
        .expect("down again");
    assert!(again.deleted.is_empty());
}

/// A target whose deletes do nothing: `down` must notice what is left.
#[derive(Debug)]
struct Stubborn(Fake);

impl Target for Stubborn {
    fn describe(&self) -> String {
        "stubborn".into()
    }
    async fn observe(&self, desired: &Desired) -> Result<Observed, TargetError> {
        self.0.observe(desired).await
    }
    async fn owned(&self) -> Result<Vec<Found>, TargetError> {
        self.0.owned().await
    }
    async fn apply(
        &self,
        desired: &Desired,
        change: &Change,
        state: &DesiredState,
    ) -> Result<Applied, TargetError> {
        self.0.apply(desired, change, state).await
    }
    async fn delete(&self, _found: &Found) -> Result<(), TargetError> {
        Ok(())
    }
    async fn training_metrics(&self, job_name: &str) -> Result<BTreeMap<String, f64>, TargetError> {
        self.0.training_metrics(job_name).await
    }
    async fn invoke(
        &self,
        endpoint: &str,
        c: &str,
        a: &str,
        b: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), TargetError> {
        self.0.invoke(endpoint, c, a, b).await
    }
}

#[tokio::test(start_paused = true)]
async fn down_reports_what_is_still_there() {
    let stubborn = Stubborn(Fake::converged(&desired("1")));
    let error = executor::down(&stubborn, |_| false, &Silent)
        .await
        .expect_err("left over");
    assert!(error.to_string().contains("still present after down"), "{error}");
}
