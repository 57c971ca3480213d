//! The executor's own logic against an in-memory fake target: level ordering, waits and their
//! timeouts (on tokio's paused clock), the quality gate, the endpoint verification, orphan deletion,
//! rollback and down. The real targets are tested end to end in their own crates.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use engine::desired::DesiredState;
use engine::desired::Facts;
use engine::executor::{self, EngineError};
use engine::kind::{
    AutoscalingSettings, BucketSettings, EndpointConfigSettings, EndpointSettings, ImageSettings,
    ModelSettings, RepositorySettings, RoleSettings, Settings, TrainingDataSettings, TrainingJobSettings,
};
use engine::plan::Plan;
use engine::progress::{Event, Recorder, Silent};
use engine::resource::{
    Change, Desired, EndpointOutputs, Kind, Lifecycle, Observed, Outputs, TrainingJobOutputs,
};
use engine::target::{
    Applied, BoxError, DELETE_TIMEOUT, Deleted, Found, LockRequest, Target, TargetError, Transience, Upstream,
};
use engine::training_output::{Metric, MetricValues};
use engine::values::{
    Capacity, Channel, DataHash, DataHashes, Digest, Hosting, Hyperparameters, ImageRef, InstanceType,
    Instances, NetworkIsolation, Seconds, Tags,
};
use spec::QualityGate;

const JOB_TIMEOUT: Duration = Duration::from_secs(30 * 60);

fn tags() -> Tags {
    [("managed-by", "orchestrate"), ("orchestrate:deployment", "iot")]
        .into_iter()
        .collect()
}

fn image() -> ImageRef {
    ImageRef {
        repository: "iot-repo".into(),
        digest: Digest::sha256(b"1"),
    }
}

fn instances(count: u32) -> Instances {
    Instances {
        count,
        instance_type: InstanceType::new("ml.m5.large").unwrap(),
    }
}

/// The desired state of version `v`: its job, model and config names end in `v`.
fn desired(v: &str) -> DesiredState {
    let (job, model, config) = (
        format!("iot-job{v}"),
        format!("iot-model{v}"),
        format!("iot-cfg{v}"),
    );
    let data = TrainingDataSettings {
        channel: Channel::Train,
        sha256: DataHash("abc".into()),
    };
    DesiredState {
        deployment: "iot".into(),
        target: spec::Target::Local,
        resources: vec![
            Desired::new("iot-local", BucketSettings { tags: tags() }),
            Desired::new("data/abc/train/", data.clone()),
            Desired::new("iot-role", RoleSettings { tags: tags() }),
            Desired::new("iot-repo", RepositorySettings { tags: tags() }),
            Desired::new(image().digest.to_string(), ImageSettings { image: image() }),
            Desired::new(
                &job,
                TrainingJobSettings {
                    image: image(),
                    data: DataHashes(BTreeMap::from([(data.channel, data.sha256)])),
                    hyperparameters: Hyperparameters(BTreeMap::from([("v".to_string(), v.to_string())])),
                    instances: instances(1),
                    volume_size_gb: 30,
                    max_runtime: Seconds(3600),
                },
            )
            .wait_timeout(JOB_TIMEOUT),
            Desired::new(
                &model,
                ModelSettings {
                    image: image(),
                    training_job: job.clone(),
                    network_isolation: NetworkIsolation::Isolated,
                    invocation: Default::default(),
                    tags: tags(),
                },
            ),
            Desired::new(
                &config,
                EndpointConfigSettings {
                    model: model.clone(),
                    variant: Capacity::Instances(instances(1)),
                    invocation: Default::default(),
                    data_capture: Default::default(),
                    tags: tags(),
                },
            ),
            Desired::new(
                "iot",
                EndpointSettings {
                    endpoint_config: config.clone(),
                    hosting: Hosting::Instances,
                    tags: tags(),
                },
            )
            .wait_timeout(Duration::from_secs(600)),
            Desired::new(
                "iot",
                AutoscalingSettings {
                    min: 1,
                    max: 2,
                    invocations_per_instance: 1000,
                },
            ),
        ],
    }
}

fn config_settings(model: &str) -> Settings {
    EndpointConfigSettings {
        model: model.into(),
        variant: Capacity::Instances(instances(1)),
        invocation: Default::default(),
        data_capture: Default::default(),
        tags: tags(),
    }
    .into()
}

fn model_settings(job: &str) -> Settings {
    ModelSettings {
        image: image(),
        training_job: job.into(),
        network_isolation: NetworkIsolation::Isolated,
        invocation: Default::default(),
        tags: tags(),
    }
    .into()
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
    /// The actual name (a training job's with `-1`).
    name: String,
    settings: Settings,
    lifecycle: Lifecycle,
    polls: u32,
    /// An endpoint's config before its last update.
    previous_config: Option<String>,
}

/// An in-memory target that records every call.
#[derive(Debug)]
struct Fake {
    resources: Mutex<BTreeMap<(Kind, String), Resource>>,
    calls: Mutex<Vec<(String, Kind, String)>>,
    job: JobOutcome,
    metrics: MetricValues,
    /// The endpoint's update "succeeds" but it keeps running its old config (SageMaker's silent
    /// rollback).
    endpoint_rolls_back: bool,
    /// The training job outputs each model was made from.
    models_made_from: Mutex<Vec<(String, TrainingJobOutputs)>>,
    /// Creating the training job answers "not yet" this many more times (a role IAM propagates).
    role_propagating: Mutex<u32>,
    /// Deleting the endpoint stays under way for this many more calls.
    endpoint_deleting: Mutex<u32>,
    /// Observing a resource in progress fails this many more times, with this transience (a
    /// throttled or failed `DescribeTrainingJob` during the wait).
    observe_failures: Mutex<u32>,
    observe_failure: Transience,
    /// Discovering what is owned, and deleting, fail (transiently) this many more times each.
    discover_failures: Mutex<u32>,
    delete_failures: Mutex<u32>,
}

impl Fake {
    fn new() -> Self {
        Fake {
            resources: Mutex::new(BTreeMap::new()),
            calls: Mutex::new(Vec::new()),
            job: JobOutcome::ReadyAfter(2),
            metrics: BTreeMap::from([(Metric::PrAuc, 0.99), (Metric::RocAuc, 0.995)]),
            endpoint_rolls_back: false,
            models_made_from: Mutex::new(Vec::new()),
            role_propagating: Mutex::new(0),
            endpoint_deleting: Mutex::new(0),
            observe_failures: Mutex::new(0),
            observe_failure: Transience::Transient,
            discover_failures: Mutex::new(0),
            delete_failures: Mutex::new(0),
        }
    }

    /// A fake where `state` is deployed and healthy.
    fn converged(state: &DesiredState) -> Self {
        let fake = Fake::new();
        for desired in &state.resources {
            fake.put(&desired.name, desired.settings.clone());
        }
        fake
    }

    fn put(&self, key: &str, settings: Settings) {
        let kind = settings.kind();
        let name = if kind == Kind::TrainingJob {
            format!("{key}-1")
        } else {
            key.to_string()
        };
        let resource = Resource {
            name,
            settings,
            lifecycle: Lifecycle::Ready,
            polls: 0,
            previous_config: None,
        };
        self.resources
            .lock()
            .unwrap()
            .insert((kind, key.to_string()), resource);
    }

    fn edit(&self, kind: Kind, key: &str, change: impl FnOnce(&mut Resource)) {
        let mut resources = self.resources.lock().unwrap();
        change(
            resources
                .get_mut(&(kind, key.to_string()))
                .expect("resource exists"),
        );
    }

    fn set_previous_config(&self, config: &str) {
        self.edit(Kind::Endpoint, "iot", |r| r.previous_config = Some(config.into()));
    }

    fn previous_config(&self) -> Option<String> {
        self.resources
            .lock()
            .unwrap()
            .get(&(Kind::Endpoint, "iot".to_string()))?
            .previous_config
            .clone()
    }

    /// The config the endpoint serves.
    fn serving(&self) -> Option<String> {
        match &self
            .resources
            .lock()
            .unwrap()
            .get(&(Kind::Endpoint, "iot".to_string()))?
            .settings
        {
            Settings::Endpoint(endpoint) => Some(endpoint.endpoint_config.clone()),
            _ => None,
        }
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

fn outputs_of(resource: &Resource) -> Outputs {
    match resource.settings.kind() {
        Kind::TrainingJob => Outputs::TrainingJob(TrainingJobOutputs {
            attempt: resource.name.clone(),
            model_artifact: format!("memory://{}/model", resource.name),
        }),
        Kind::Endpoint => Outputs::Endpoint(EndpointOutputs {
            previous_config: resource.previous_config.clone(),
        }),
        _ => Outputs::None,
    }
}

/// Counts one call down; true while calls are left.
fn count_down(left: &Mutex<u32>) -> bool {
    let mut left = left.lock().unwrap();
    let waiting = *left > 0;
    *left = left.saturating_sub(1);
    waiting
}

impl Target for Fake {
    type Lock = ();

    fn describe(&self) -> String {
        "fake".into()
    }

    fn image_digest(&self) -> Result<Digest, TargetError> {
        Ok(image().digest)
    }

    fn facts(&self, image_digest: &Digest) -> Result<Facts, TargetError> {
        Ok(Facts {
            bucket: "iot-local".into(),
            channels: Vec::new(),
            role: "iot-role".into(),
            repository: "iot-repo".into(),
            image_digest: image_digest.clone(),
        })
    }

    async fn lock(&self, _: LockRequest<'_>) -> Result<Option<()>, BoxError> {
        Ok(Some(()))
    }

    async fn release(&self, (): ()) -> Result<(), BoxError> {
        Ok(())
    }

    async fn observe(&self, desired: &Desired) -> Result<Observed, TargetError> {
        let mut resources = self.resources.lock().unwrap();
        let Some(resource) = resources.get_mut(&(desired.kind(), desired.name.clone())) else {
            return Ok(Observed::Absent);
        };
        if matches!(resource.lifecycle, Lifecycle::InProgress(_)) && count_down(&self.observe_failures) {
            let error = TargetError::new(
                "find",
                desired.kind(),
                &desired.name,
                "ThrottlingException: Rate exceeded",
            );
            return Err(match self.observe_failure {
                Transience::Transient => error.transient(),
                Transience::Permanent => error,
            });
        }
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
        Ok(Observed::present(
            &resource.name,
            resource.settings.clone(),
            resource.lifecycle.clone(),
        )
        .with_outputs(outputs_of(resource)))
    }

    async fn owned(&self) -> Result<Vec<Found>, TargetError> {
        if count_down(&self.discover_failures) {
            return Err(TargetError::new("list", Kind::Model, "*", "connection reset by peer").transient());
        }
        let resources = self.resources.lock().unwrap();
        Ok(resources
            .values()
            .map(|r| {
                let found = Found::new(r.settings.kind(), &r.name);
                match &r.settings {
                    Settings::EndpointConfig(config) => found.using(Kind::Model, &config.model),
                    Settings::Model(model) => found.using(Kind::Image, model.image.digest.to_string()),
                    _ => found,
                }
            })
            .collect())
    }

    async fn apply(
        &self,
        desired: &Desired,
        _change: &Change,
        upstream: Upstream<'_>,
    ) -> Result<Applied, TargetError> {
        self.call("apply", desired.kind(), &desired.name);
        match &desired.settings {
            Settings::TrainingJob(_) if count_down(&self.role_propagating) => Ok(Applied::NotYet {
                reason: "the role is not assumable yet".into(),
                retry_for: Duration::from_secs(90),
            }),
            Settings::TrainingJob(_) => {
                self.put(&desired.name, desired.settings.clone());
                self.edit(Kind::TrainingJob, &desired.name, |job| {
                    job.lifecycle = Lifecycle::InProgress("Training".into())
                });
                Ok(Applied::Pending)
            }
            Settings::Model(_) => {
                let job = upstream.training_job().ok_or_else(|| {
                    TargetError::new("create", Kind::Model, &desired.name, "no training job outputs")
                })?;
                self.models_made_from
                    .lock()
                    .unwrap()
                    .push((desired.name.clone(), job.clone()));
                self.put(&desired.name, desired.settings.clone());
                Ok(Applied::Ready(Outputs::None))
            }
            Settings::Endpoint(wanted) => {
                let old = self.serving();
                let old_previous = self.previous_config();
                let have = match (&old, self.endpoint_rolls_back) {
                    (Some(old), true) => old.clone(),
                    _ => wanted.endpoint_config.clone(),
                };
                let previous = match &old {
                    Some(old) if *old != have => Some(old.clone()),
                    _ => old_previous,
                };
                let mut settings = wanted.clone();
                settings.endpoint_config = have;
                self.put(&desired.name, settings.into());
                self.edit(Kind::Endpoint, &desired.name, |e| {
                    e.previous_config = previous.clone()
                });
                Ok(Applied::Ready(Outputs::Endpoint(EndpointOutputs {
                    previous_config: previous,
                })))
            }
            _ => {
                self.put(&desired.name, desired.settings.clone());
                Ok(Applied::Ready(Outputs::None))
            }
        }
    }

    async fn delete(&self, found: &Found) -> Result<Deleted, TargetError> {
        self.call("delete", found.kind, &found.name);
        if count_down(&self.delete_failures) {
            return Err(TargetError::new("delete", found.kind, &found.name, "HTTP 503").transient());
        }
        if found.kind == Kind::Endpoint && count_down(&self.endpoint_deleting) {
            return Ok(Deleted::Pending("Deleting".into()));
        }
        let key = match found.kind {
            Kind::TrainingJob => found.name.trim_end_matches("-1").to_string(),
            _ => found.name.clone(),
        };
        self.resources.lock().unwrap().remove(&(found.kind, key));
        Ok(Deleted::Gone)
    }

    async fn training_metrics(&self, job: &TrainingJobOutputs) -> Result<MetricValues, TargetError> {
        self.call("metrics", Kind::TrainingJob, &job.attempt);
        Ok(self.metrics.clone())
    }

    async fn new_log_lines(&self, desired: &Desired) -> Vec<String> {
        match desired.kind() {
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
    let levels: Vec<(Kind, usize)> = Kind::ALL.iter().map(|k| (*k, k.level())).collect();
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
            (Kind::Alarm, 0),
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
    let levels: Vec<usize> = applied.iter().map(|(kind, _)| kind.level()).collect();
    assert!(
        levels.windows(2).all(|w| w[0] <= w[1]),
        "applied out of level order: {applied:?}"
    );
    // Every dependency the state has was applied before what needs it (this state has no rollout
    // alarms).
    for (i, (kind, _)) in applied.iter().enumerate() {
        for dependency in kind.dependencies() {
            if state.get(*dependency).is_none() {
                continue;
            }
            let at = applied
                .iter()
                .position(|(k, _)| k == dependency)
                .expect("dependency applied");
            assert!(at < i, "{kind} before its dependency {dependency}");
        }
    }
    // The gate read the metrics of the attempt the target reported, once, and the outcome carries
    // them (nothing reads them again).
    assert_eq!(
        fake.calls("metrics"),
        [(Kind::TrainingJob, "iot-job1-1".to_string())]
    );
    let training = outcome.training.as_ref().expect("a training report");
    assert_eq!(training.attempt, "iot-job1-1");
    assert_eq!(training.metrics.as_ref().unwrap()[&Metric::PrAuc], 0.99);
    // The model was made from the outputs of the attempt that completed, not re-discovered.
    let made_from = fake.models_made_from.lock().unwrap().clone();
    assert_eq!(made_from.len(), 1);
    assert_eq!(made_from[0].0, "iot-model1");
    assert_eq!(made_from[0].1.attempt, "iot-job1-1");
    assert_eq!(made_from[0].1.model_artifact, "memory://iot-job1-1/model");

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
            .all(|(kind, _)| kind.level() <= Kind::TrainingJob.level()),
        "nothing after training"
    );
}

/// Regression: one transient error while observing a running training job (after the SDK's own
/// retries) aborted an hour-long wait.
#[tokio::test(start_paused = true)]
async fn a_wait_rides_out_transient_observe_errors_within_its_budget() {
    let state = desired("1");
    let fake = Fake::new();
    *fake.observe_failures.lock().unwrap() = executor::OBSERVE_ERROR_BUDGET.max_failures - 1;
    let first = plan(&fake, &state).await;
    let recorder = Recorder::default();
    executor::up(&fake, &state, &first, None, &recorder)
        .await
        .expect("the wait survives the errors");
    let retried = recorder
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Event::Waiting { state, .. } if state.starts_with("observing failed")))
        .count();
    assert_eq!(retried as u32, executor::OBSERVE_ERROR_BUDGET.max_failures - 1);
    assert!(plan(&fake, &state).await.is_noop());
}

#[tokio::test(start_paused = true)]
async fn a_wait_gives_up_once_transient_observe_errors_spend_the_budget() {
    let state = desired("1");
    let fake = Fake::new();
    *fake.observe_failures.lock().unwrap() = u32::MAX;
    let first = plan(&fake, &state).await;
    let error = executor::up(&fake, &state, &first, None, &Silent)
        .await
        .expect_err("the budget runs out");
    let message = engine::target::error_chain(&error);
    match error {
        EngineError::ObserveBudgetSpent {
            kind, failures, last, ..
        } => {
            assert_eq!(kind, Kind::TrainingJob);
            assert_eq!(failures, executor::OBSERVE_ERROR_BUDGET.max_failures);
            assert!(last.is_transient());
        }
        other => panic!("want the budget spent, got {other}"),
    }
    assert!(message.contains("budget: 10 failures in a row"), "{message}");
    assert!(message.contains("ThrottlingException"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn a_wait_gives_up_after_five_minutes_without_an_observation() {
    let state = desired("1");
    let fake = Fake::new();
    *fake.observe_failures.lock().unwrap() = u32::MAX;
    let first = plan(&fake, &state).await;
    // A slow target: each failed observation takes a minute (the SDK retrying inside it).
    let slow = SlowObserve(fake);
    let error = executor::up(&slow, &state, &first, None, &Silent)
        .await
        .expect_err("the budget runs out");
    match error {
        EngineError::ObserveBudgetSpent { failures, blind, .. } => {
            assert!(
                failures < executor::OBSERVE_ERROR_BUDGET.max_failures,
                "{failures}"
            );
            assert!(blind >= executor::OBSERVE_ERROR_BUDGET.max_blind, "{blind:?}");
        }
        other => panic!("want the budget spent, got {other}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_permanent_observe_error_ends_the_wait_at_once() {
    let state = desired("1");
    let fake = Fake {
        observe_failure: Transience::Permanent,
        ..Fake::new()
    };
    *fake.observe_failures.lock().unwrap() = 1;
    let first = plan(&fake, &state).await;
    let error = executor::up(&fake, &state, &first, None, &Silent)
        .await
        .expect_err("a permanent error is not retried");
    assert!(
        matches!(error, EngineError::Target(ref e) if !e.is_transient()),
        "{error}"
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
    let no_outputs = BTreeMap::new();
    let upstream = Upstream {
        state: &state,
        outputs: &no_outputs,
    };
    fake.apply(job, &Change::Create, upstream).await.unwrap();
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
        metrics: BTreeMap::from([(Metric::PrAuc, 0.81), (Metric::RocAuc, 0.9)]),
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
            assert_eq!(metrics.get(&Metric::PrAuc), Some(&0.81));
        }
        other => panic!("want the gate, got {other}"),
    }
    assert!(
        error.to_string().contains("the live endpoint was left untouched"),
        "{error}"
    );
    let applied: Vec<Kind> = fake.calls("apply").into_iter().map(|(kind, _)| kind).collect();
    assert_eq!(applied, [Kind::TrainingJob], "only the new job ran");
    assert_eq!(fake.serving().as_deref(), Some("iot-cfg1"));
    assert!(fake.calls("delete").is_empty(), "nothing deleted");
}

#[tokio::test(start_paused = true)]
async fn the_gate_is_not_checked_when_nothing_rolls_out() {
    let state = desired("1");
    let fake = Fake {
        metrics: BTreeMap::new(),
        ..Fake::converged(&state)
    };
    fake.edit(Kind::Role, "iot-role", |role| {
        role.settings = RoleSettings {
            tags: [("orchestrate:deployment", "iot"), ("team", "old")]
                .into_iter()
                .collect(),
        }
        .into()
    });
    let plan = plan(&fake, &state).await;
    assert_eq!(plan.changes(), 1);
    let outcome = executor::up(&fake, &state, &plan, Some(&gate(0.99)), &Silent)
        .await
        .expect("a tag update passes the gate it would fail (no metrics at all)");
    // The metrics are read once for the report, but not held against the gate.
    assert_eq!(fake.calls("metrics").len(), 1);
    assert_eq!(outcome.training.map(|t| t.metrics), Some(Ok(BTreeMap::new())));
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
    fake.set_previous_config("iot-cfg0");
    fake.put("iot-cfg0", config_settings("iot-model0"));
    fake.put("iot-model0", model_settings("iot-job0"));
    fake.put("iot-cfgX", config_settings("iot-modelX"));
    fake.put("iot-modelX", model_settings("iot-jobX"));
    let job = desired("X").get(Kind::TrainingJob).unwrap().settings.clone();
    fake.put("iot-jobX", job);
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
    assert_eq!(fake.previous_config().as_deref(), Some("iot-cfg1"));
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
    fake.set_previous_config("iot-cfg1");
    fake.put("iot-cfg1", config_settings("iot-model1"));
    let to = executor::rollback(&fake, &state, &Silent)
        .await
        .expect("rollback");
    assert_eq!(to, "iot-cfg1");
    assert_eq!(fake.serving().as_deref(), Some("iot-cfg1"));
    assert_eq!(fake.previous_config().as_deref(), Some("iot-cfg2"));
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
    fake.set_previous_config("iot-cfg1");
    fake.put("iot-cfg1", config_settings("iot-model1"));
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

/// Regression: one transient error (after the SDK's retries) while discovering what the deployment
/// owns, or while deleting, ended `down` (and `plan`) although asking again is safe.
#[tokio::test(start_paused = true)]
async fn plan_and_down_ride_out_transient_discovery_and_delete_errors() {
    let state = desired("1");
    let fake = Fake::converged(&state);
    *fake.discover_failures.lock().unwrap() = 3;
    assert!(plan(&fake, &state).await.is_noop());
    *fake.discover_failures.lock().unwrap() = 3;
    *fake.delete_failures.lock().unwrap() = 3;
    let outcome = executor::down(&fake, |_| false, &Silent)
        .await
        .expect("down rides out the errors");
    assert!(!outcome.deleted.is_empty());
    assert!(fake.owned().await.unwrap().is_empty());

    // Past the budget, it says so.
    let fake = Fake::converged(&state);
    *fake.discover_failures.lock().unwrap() = u32::MAX;
    let error = executor::down(&fake, |_| false, &Silent)
        .await
        .expect_err("the budget runs out");
    assert!(
        matches!(error, EngineError::DiscoveryBudgetSpent { failures, .. } if failures == executor::OBSERVE_ERROR_BUDGET.max_failures),
        "{error}"
    );
}

/// A target whose deletes do nothing: `down` must notice what is left.
#[derive(Debug)]
struct Stubborn(Fake);

impl Target for Stubborn {
    type Lock = ();

    fn describe(&self) -> String {
        "stubborn".into()
    }
    fn image_digest(&self) -> Result<Digest, TargetError> {
        self.0.image_digest()
    }
    fn facts(&self, image_digest: &Digest) -> Result<Facts, TargetError> {
        self.0.facts(image_digest)
    }
    async fn lock(&self, request: LockRequest<'_>) -> Result<Option<()>, BoxError> {
        self.0.lock(request).await
    }
    async fn release(&self, lock: ()) -> Result<(), BoxError> {
        self.0.release(lock).await
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
        upstream: Upstream<'_>,
    ) -> Result<Applied, TargetError> {
        self.0.apply(desired, change, upstream).await
    }
    async fn delete(&self, _found: &Found) -> Result<Deleted, TargetError> {
        Ok(Deleted::Gone)
    }
    async fn training_metrics(&self, job: &TrainingJobOutputs) -> Result<MetricValues, TargetError> {
        self.0.training_metrics(job).await
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

/// A target whose observations take a minute each (the SDK retrying inside them).
#[derive(Debug)]
struct SlowObserve(Fake);

impl Target for SlowObserve {
    type Lock = ();

    fn describe(&self) -> String {
        "slow".into()
    }
    fn image_digest(&self) -> Result<Digest, TargetError> {
        self.0.image_digest()
    }
    fn facts(&self, image_digest: &Digest) -> Result<Facts, TargetError> {
        self.0.facts(image_digest)
    }
    async fn lock(&self, request: LockRequest<'_>) -> Result<Option<()>, BoxError> {
        self.0.lock(request).await
    }
    async fn release(&self, lock: ()) -> Result<(), BoxError> {
        self.0.release(lock).await
    }
    async fn observe(&self, desired: &Desired) -> Result<Observed, TargetError> {
        tokio::time::sleep(Duration::from_secs(60)).await;
        self.0.observe(desired).await
    }
    async fn owned(&self) -> Result<Vec<Found>, TargetError> {
        self.0.owned().await
    }
    async fn apply(
        &self,
        desired: &Desired,
        change: &Change,
        upstream: Upstream<'_>,
    ) -> Result<Applied, TargetError> {
        self.0.apply(desired, change, upstream).await
    }
    async fn delete(&self, found: &Found) -> Result<Deleted, TargetError> {
        self.0.delete(found).await
    }
    async fn training_metrics(&self, job: &TrainingJobOutputs) -> Result<MetricValues, TargetError> {
        self.0.training_metrics(job).await
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

#[tokio::test(start_paused = true)]
async fn a_resource_that_is_not_ready_to_apply_is_applied_again_by_the_executor() {
    let state = desired("1");
    let fake = Fake::new();
    *fake.role_propagating.lock().unwrap() = 3;
    let first = plan(&fake, &state).await;
    let recorder = Recorder::default();
    executor::up(&fake, &state, &first, None, &recorder)
        .await
        .expect("up once the role is assumable");
    let job_applies = fake
        .calls("apply")
        .into_iter()
        .filter(|(kind, _)| *kind == Kind::TrainingJob)
        .count();
    assert_eq!(job_applies, 4, "three answers of not yet, then the creation");
    let events = recorder.events.lock().unwrap().clone();
    let retries = events
        .iter()
        .filter(|e| matches!(e, Event::Waiting { kind: Kind::TrainingJob, state, .. } if state == "the role is not assumable yet"))
        .count();
    assert_eq!(retries, 3, "{events:?}");
}

#[tokio::test(start_paused = true)]
async fn a_resource_that_stays_not_ready_times_out_on_the_targets_budget() {
    let state = desired("1");
    let fake = Fake::new();
    *fake.role_propagating.lock().unwrap() = u32::MAX;
    let first = plan(&fake, &state).await;
    let started = tokio::time::Instant::now();
    let error = executor::up(&fake, &state, &first, None, &Silent)
        .await
        .unwrap_err();
    match error {
        EngineError::Timeout {
            kind: Kind::TrainingJob,
            timeout,
            state,
            ..
        } => {
            assert_eq!(timeout, Duration::from_secs(90), "the budget the target gave");
            assert_eq!(state, "the role is not assumable yet");
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_secs(90));
    assert!(
        !fake.exists(Kind::Model, "iot-model1"),
        "nothing after the job was applied"
    );
}

#[tokio::test(start_paused = true)]
async fn a_deletion_under_way_is_waited_for_by_calling_delete_again() {
    let state = desired("1");
    let fake = Fake::converged(&state);
    *fake.endpoint_deleting.lock().unwrap() = 2;
    let recorder = Recorder::default();
    executor::down(&fake, |_| false, &recorder).await.expect("down");
    let endpoint_deletes = fake
        .calls("delete")
        .into_iter()
        .filter(|(kind, _)| *kind == Kind::Endpoint)
        .count();
    assert_eq!(endpoint_deletes, 3);
    // The endpoint config it served was deleted only once the endpoint was gone.
    let deletes = fake.calls("delete");
    let endpoint_gone = deletes.iter().rposition(|(k, _)| *k == Kind::Endpoint).unwrap();
    let config = deletes
        .iter()
        .position(|(k, _)| *k == Kind::EndpointConfig)
        .unwrap();
    assert!(endpoint_gone < config, "{deletes:?}");
    assert!(fake.owned().await.unwrap().is_empty());

    let fake = Fake::converged(&state);
    *fake.endpoint_deleting.lock().unwrap() = u32::MAX;
    let error = executor::down(&fake, |_| false, &Silent).await.unwrap_err();
    match error {
        EngineError::Timeout {
            kind: Kind::Endpoint,
            timeout,
            ..
        } => assert_eq!(timeout, DELETE_TIMEOUT),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn rollback_only_switches_to_a_config_the_deployment_owns() {
    let state = desired("2");
    let fake = Fake::converged(&state);
    // The endpoint's record of its previous config names one the deployment does not own.
    fake.set_previous_config("someone-elses-config");
    let error = executor::rollback(&fake, &state, &Silent)
        .await
        .expect_err("not the deployment's");
    assert!(matches!(error, EngineError::Rollback(_)), "{error}");
    assert!(
        error
            .to_string()
            .contains("no endpoint config of that name belongs to the deployment"),
        "{error}"
    );
    assert!(fake.calls("apply").is_empty(), "nothing was changed");
    assert_eq!(fake.serving().as_deref(), Some("iot-cfg2"));
}

#[tokio::test(start_paused = true)]
async fn up_takes_over_nothing_that_is_not_the_deployments_unless_adopted() {
    let state = desired("1");
    let fake = Fake::new();
    // Someone else's role under the deployment's role name.
    fake.put(
        "iot-role",
        RoleSettings {
            tags: [("team", "other")].into_iter().collect(),
        }
        .into(),
    );
    let mut first = plan(&fake, &state).await;
    assert_eq!(
        first.step(Kind::Role).unwrap().change,
        Change::Taken { held_by: None }
    );
    let text = first.render();
    assert!(text.contains("orchestrate up --adopt role/iot-role"), "{text}");
    let status = engine::StatusReport::from_plan(&first);
    assert!(!status.in_sync);
    let error = executor::up(&fake, &state, &first, None, &Silent)
        .await
        .expect_err("refused");
    assert!(matches!(error, EngineError::Taken { .. }), "{error}");
    assert!(error.to_string().contains("--adopt role/iot-role"), "{error}");
    assert!(fake.calls("apply").is_empty(), "nothing was changed");

    // Adopting something that is not taken is an error; adopting the role makes it an update.
    let bucket = engine::ResourceId::new(Kind::Bucket, "iot-local");
    assert!(first.adopt(&[bucket]).unwrap_err().contains("nothing to adopt"));
    let role = engine::ResourceId::new(Kind::Role, "iot-role");
    first.adopt(&[role]).expect("adopt the role");
    assert!(matches!(
        first.step(Kind::Role).unwrap().change,
        Change::Update { .. }
    ));
    executor::up(&fake, &state, &first, None, &Silent)
        .await
        .expect("up with the role adopted");
    assert!(plan_is_noop(&fake, &state).await);
}
