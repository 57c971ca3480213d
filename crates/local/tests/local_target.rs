//! The local target end to end: the engine's `plan`, `up`, `rollback` and `down` against a real
//! `LocalTarget` in a temporary deployment, running the real `model-image` (`train` and `serve`).
//!
//! Runs the `model-image` that `cargo test --workspace` builds next to the test executables, or
//! `MODEL_IMAGE_BIN`. The tests panic without one rather than pass without testing anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use engine::Settings;
use engine::desired::{DesiredState, desired_state};
use engine::executor::{self, EngineError};
use engine::plan::{Plan, Standing, StatusReport};
use engine::progress::{Event, Recorder, Silent};
use engine::resource::{Change, Desired, Kind, Lifecycle, Observed, Outputs};
use engine::target::{Applied, LockRequest, Target, Upstream};
use local::{LocalError, LocalTarget, StateLock};

fn model_image_bin() -> PathBuf {
    // `cargo test --workspace` builds every workspace binary next to the test executables
    // (`target/<profile>/`), before running any test.
    let built_alongside = || {
        std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.parent()?.join("model-image")))
    };
    let path = match std::env::var_os("MODEL_IMAGE_BIN") {
        Some(path) => {
            // A relative path is read from the workspace root, where `cargo test` is usually typed
            // (the test itself runs in the crate's folder).
            let path = PathBuf::from(path);
            if path.is_relative() {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
            } else {
                path
            }
        }
        None => built_alongside().expect("test executable path"),
    };
    assert!(
        path.is_file(),
        "model-image not found at {}: run `cargo test --workspace` (which builds it) or set MODEL_IMAGE_BIN",
        path.display()
    );
    path
}

/// A deployment folder with generated demo data and a deploy.yaml.
struct Deployment {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Deployment {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        // A private copy: a rebuild of the original during the test must not change the image.
        let bin = dir.path().join("model-image");
        std::fs::copy(model_image_bin(), &bin).expect("copy model-image");
        // Executing a file just written can fail with ETXTBSY while another test thread's child
        // (between fork and exec) still holds the copy's descriptor: retry briefly.
        let mut attempts = 0;
        let status = loop {
            match Command::new(&bin)
                .args(["demo-data", "--rows", "1500", "--out"])
                .arg(dir.path().join("train.csv"))
                .status()
            {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempts < 50 => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                result => break result.expect("run model-image demo-data"),
            }
        };
        assert!(status.success(), "model-image demo-data failed: {status}");
        Deployment { dir, bin }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// deploy.yaml with `max_rounds` and the label column `label`.
    fn spec(&self, max_rounds: u32, label: &str) -> spec::Spec {
        self.spec_with(max_rounds, label, "")
    }

    /// deploy.yaml with `max_rounds`, the label column `label` and `extra` top-level YAML.
    fn spec_with(&self, max_rounds: u32, label: &str, extra: &str) -> spec::Spec {
        let yaml = format!(
            "version: 1\nname: iot\ndata:\n  train: train.csv\n  validation: 0.2\n  label: {label}\n\
             training:\n  max_runtime: 10m\n  hyperparameters: {{max_rounds: {max_rounds}, threads: 2, seed: 7}}\n  \
             quality_gate: {{min_pr_auc: 0.5}}\n\
             endpoint:\n  autoscaling: {{min: 1, max: 2}}\n  wait_timeout: 2m\n{extra}"
        );
        std::fs::write(self.path().join("deploy.yaml"), &yaml).unwrap();
        spec::parse(&yaml, "deploy.yaml", self.path()).unwrap_or_else(|e| panic!("deploy.yaml: {e:?}"))
    }

    fn target(&self, spec: &spec::Spec) -> (LocalTarget, DesiredState) {
        let target = LocalTarget::open(spec, &self.bin).expect("open");
        let built = target.build_image().expect("build the image");
        let facts = target.facts(&built.manifest_digest).expect("facts");
        let state = desired_state(spec, spec::Target::Local, &facts);
        (target, state)
    }

    /// The header and first data row of the training data: a request body in the raw schema.
    fn csv_request(&self) -> Vec<u8> {
        let text = std::fs::read_to_string(self.path().join("train.csv")).unwrap();
        let lines: Vec<&str> = text.lines().take(2).collect();
        format!("{}\n", lines.join("\n")).into_bytes()
    }
}

/// A failing test leaves no server or training process behind: kill whatever the records name.
impl Drop for Deployment {
    fn drop(&mut self) {
        let state = self.path().join(".orchestrate/iot");
        for kind in ["endpoints", "training-jobs"] {
            let Ok(entries) = std::fs::read_dir(state.join(kind)) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(text) = std::fs::read_to_string(entry.path()) else {
                    continue;
                };
                let Ok(record) = serde_json::from_str::<serde_json::Value>(&text) else {
                    continue;
                };
                let details = record.get("details").unwrap_or(&record);
                for (key, prefix) in [("pgid", "-"), ("pid", "")] {
                    if let Some(id) = details[key].as_i64().filter(|id| *id > 0) {
                        let target = format!("{prefix}{id}");
                        let _ = Command::new("kill").args(["-KILL", "--", &target]).status();
                    }
                }
            }
        }
    }
}

/// The deployment's lock, as `up` takes it.
async fn lock(target: &LocalTarget, state: &DesiredState) -> StateLock {
    let request = LockRequest {
        state: Some(state),
        owner: "test",
        break_lock: false,
    };
    target
        .lock(request)
        .await
        .expect("lock")
        .expect("a creating run always gets the lock")
}

async fn plan(target: &LocalTarget, state: &DesiredState) -> Plan {
    executor::plan(target, state, &Silent).await.expect("plan")
}

fn change(plan: &Plan, kind: Kind) -> &Change {
    &plan.step(kind).unwrap_or_else(|| panic!("no {kind} step")).change
}

/// The observed endpoint's config and the previous config it reports for rollback.
fn observed_endpoint(plan: &Plan) -> (Option<String>, Option<String>) {
    match &plan.step(Kind::Endpoint).expect("an endpoint step").observed {
        Observed::Present {
            settings, outputs, ..
        } => {
            let config = match settings {
                Settings::Endpoint(endpoint) => Some(endpoint.endpoint_config.clone()),
                _ => None,
            };
            let previous = match outputs {
                Outputs::Endpoint(outputs) => outputs.previous_config.clone(),
                _ => None,
            };
            (config, previous)
        }
        Observed::Absent => (None, None),
    }
}

/// The standing `status` reports for the resource of `kind`.
fn standing(plan: &Plan, kind: Kind) -> Standing {
    StatusReport::from_plan(plan)
        .resources
        .into_iter()
        .find(|r| r.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} in status"))
        .standing
}

async fn invoke_ok(target: &LocalTarget, request: &[u8]) -> String {
    let (status, body) = target
        .invoke("iot", "text/csv", "application/json", request.to_vec())
        .await
        .expect("invoke the endpoint");
    let body = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(status, 200, "/invocations answered {status}: {body}");
    body
}

/// The endpoint's server pid, from its record.
fn endpoint_pid(target: &LocalTarget) -> i32 {
    let record = std::fs::read_to_string(target.state_dir().join("endpoints/iot.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&record).unwrap();
    json["details"]["pid"]
        .as_i64()
        .expect("pid in the endpoint record") as i32
}

fn process_running(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    matches!(state, Some(s) if s != 'Z' && s != 'X')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_repairs_rolls_forward_rolls_back_and_down_removes_everything() {
    let deployment = Deployment::new();
    let request = deployment.csv_request();
    let spec = deployment.spec(30, "Label");
    let (target, state) = deployment.target(&spec);
    let lock = lock(&target, &state).await;

    // First up: everything is created, training logs are tailed, the gate passes.
    let first = plan(&target, &state).await;
    for step in &first.steps {
        assert_eq!(
            step.change,
            Change::Create,
            "{} {}",
            step.desired.kind(),
            step.desired.name
        );
    }
    let recorder = Recorder::default();
    executor::up(
        &target,
        &state,
        &first,
        spec.training.quality_gate.as_ref(),
        &recorder,
    )
    .await
    .unwrap_or_else(|e| panic!("first up: {e}"));
    let events = recorder.events.lock().unwrap().clone();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Log { line, .. } if line.contains("validation:pr_auc="))),
        "training log lines reach the reporter: {events:?}"
    );
    assert!(
        events.iter().any(|e| matches!(e, Event::GatePassed { .. })),
        "{events:?}"
    );
    invoke_ok(&target, &request).await;
    let summary = target.summary(&state).await;
    let url = summary
        .iter()
        .find(|(k, _)| k == "endpoint URL")
        .map(|(_, v)| v.clone())
        .expect("URL in summary");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    for key in ["metrics", "report"] {
        let (_, path) = summary
            .iter()
            .find(|(k, _)| k == key)
            .unwrap_or_else(|| panic!("{key} in {summary:?}"));
        assert!(Path::new(path).is_file(), "{key} at {path}");
    }
    let job = state.training_job().to_string();
    let trained = target
        .observe(state.get(Kind::TrainingJob).unwrap())
        .await
        .expect("observe the training job");
    let Some(Outputs::TrainingJob(trained)) = trained.ready_outputs().cloned() else {
        panic!("a ready training job reports its attempt: {trained:?}");
    };
    assert_eq!(trained.attempt, format!("{job}-1"));
    assert!(
        trained
            .model_artifact
            .ends_with(&format!("training-jobs/{job}-1/opt_ml/model"))
            && Path::new(&trained.model_artifact).is_dir(),
        "{}",
        trained.model_artifact
    );
    let metrics = target.training_metrics(&trained).await.expect("metrics");
    assert!(
        metrics
            .get(&engine::training_output::Metric::PrAuc)
            .is_some_and(|v| *v > 0.5),
        "{metrics:?}"
    );
    let archive = std::fs::read_dir(target.state_dir().join("images"))
        .unwrap()
        .flatten()
        .find(|e| e.path().is_dir());
    assert!(
        archive
            .expect("an image folder")
            .path()
            .join("image.tar")
            .is_file()
    );

    // Converged: a no-op plan, in sync.
    let again = plan(&target, &state).await;
    assert!(again.is_noop(), "{}", again.render());
    assert!(StatusReport::from_plan(&again).in_sync);
    match &again.step(Kind::Endpoint).unwrap().observed {
        Observed::Present { lifecycle, .. } => assert_eq!(lifecycle, &Lifecycle::Ready),
        other => panic!("{other:?}"),
    }

    // A killed server is a failed endpoint, replaced; up restarts it on the same port.
    let pid = endpoint_pid(&target);
    let killed = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    for _ in 0..50 {
        if !process_running(pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drifted = plan(&target, &state).await;
    match change(&drifted, Kind::Endpoint) {
        Change::Replace { reason, fields } => {
            assert!(fields.is_empty(), "{fields:?}");
            assert!(reason.contains("not running"), "{reason}");
        }
        other => panic!("want the endpoint replaced, got {other:?}"),
    }
    match standing(&drifted, Kind::Endpoint) {
        Standing::Failed { reason } => assert!(reason.contains("not running"), "{reason}"),
        other => panic!("want a failed endpoint, got {other:?}"),
    }
    assert_eq!(standing(&drifted, Kind::Endpoint).label(), "failed");
    let others: Vec<&Change> = drifted
        .steps
        .iter()
        .filter(|s| s.desired.kind() != Kind::Endpoint)
        .map(|s| &s.change)
        .collect();
    assert!(others.iter().all(|c| c.is_noop()), "{}", drifted.render());
    assert!(!StatusReport::from_plan(&drifted).in_sync);
    executor::up(&target, &state, &drifted, None, &Silent)
        .await
        .expect("repair");
    invoke_ok(&target, &request).await;
    assert_eq!(
        target.endpoint_url().unwrap().as_deref(),
        Some(url.as_str()),
        "same port after a repair"
    );
    assert!(plan(&target, &state).await.is_noop());

    // A deleted model folder: the model is created again, from the same training job.
    let model = state.get(Kind::Model).unwrap().name.clone();
    std::fs::remove_dir_all(target.state_dir().join("models").join(&model)).unwrap();
    let missing = plan(&target, &state).await;
    assert_eq!(change(&missing, Kind::Model), &Change::Create);
    assert!(change(&missing, Kind::TrainingJob).is_noop());
    executor::up(&target, &state, &missing, None, &Silent)
        .await
        .expect("recreate the model");
    assert!(plan(&target, &state).await.is_noop());

    // A server that cannot start (its model files are gone): up fails naming the log.
    let model_dir = target.state_dir().join("models").join(&model).join("model");
    for entry in std::fs::read_dir(&model_dir).unwrap().flatten() {
        std::fs::remove_file(entry.path()).unwrap();
    }
    let pid = endpoint_pid(&target);
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let broken = plan(&target, &state).await;
    assert!(
        matches!(change(&broken, Kind::Endpoint), Change::Replace { .. }),
        "{}",
        broken.render()
    );
    let error = executor::up(&target, &state, &broken, None, &Silent)
        .await
        .expect_err("the server cannot start");
    let text = engine::target::error_chain(&error);
    assert!(
        text.contains("exited before answering /ping") && text.contains("iot.log"),
        "{text}"
    );
    // Deleting the model folder makes `up` rebuild the model and restart the server.
    std::fs::remove_dir_all(model_dir.parent().unwrap()).unwrap();
    let repair = plan(&target, &state).await;
    assert_eq!(change(&repair, Kind::Model), &Change::Create);
    executor::up(&target, &state, &repair, None, &Silent)
        .await
        .expect("repair the model and the server");
    invoke_ok(&target, &request).await;
    assert!(plan(&target, &state).await.is_noop());

    // A changed hyperparameter: new job, model and config, and the endpoint rolls forward.
    let old_config = state.get(Kind::EndpointConfig).unwrap().name.clone();
    let old_model = model;
    let spec2 = deployment.spec(31, "Label");
    let (target2, state2) = deployment.target(&spec2);
    let new_config = state2.get(Kind::EndpointConfig).unwrap().name.clone();
    assert_ne!(new_config, old_config);
    let forward = plan(&target2, &state2).await;
    for kind in [Kind::TrainingJob, Kind::Model, Kind::EndpointConfig] {
        assert_eq!(change(&forward, kind), &Change::Create, "{kind}");
    }
    assert!(
        matches!(change(&forward, Kind::Endpoint), Change::Update { .. }),
        "{}",
        forward.render()
    );
    // Start the training job alone, as an interrupted `up` would have: the next plan waits for it.
    let job2 = state2.get(Kind::TrainingJob).unwrap();
    let nothing_ready = BTreeMap::new();
    let upstream = Upstream {
        state: &state2,
        outputs: &nothing_ready,
    };
    let started = target2
        .apply(job2, &Change::Create, upstream)
        .await
        .expect("start training");
    assert_eq!(started, Applied::Pending);
    let reattach = plan(&target2, &state2).await;
    // `apply` returned as soon as the process started; training takes longer than planning.
    assert_eq!(
        change(&reattach, Kind::TrainingJob),
        &Change::Wait {
            state: "Training".into()
        },
        "{}",
        reattach.render()
    );
    executor::up(
        &target2,
        &state2,
        &reattach,
        spec2.training.quality_gate.as_ref(),
        &Silent,
    )
    .await
    .unwrap_or_else(|e| panic!("roll forward: {e}"));
    let job_dirs = std::fs::read_dir(target2.state_dir().join("training-jobs"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .count();
    assert_eq!(
        job_dirs, 2,
        "one attempt per job: the re-attached job was not started twice"
    );
    invoke_ok(&target2, &request).await;
    // model-image binds with SO_REUSEPORT: the new server took over the same port.
    assert_eq!(target2.endpoint_url().unwrap().as_deref(), Some(url.as_str()));
    let after = plan(&target2, &state2).await;
    assert!(after.is_noop(), "{}", after.render());
    assert_eq!(
        observed_endpoint(&after),
        (Some(new_config.clone()), Some(old_config.clone()))
    );
    let kept: Vec<(Kind, &str)> = after
        .leftovers
        .iter()
        .filter(|l| l.kept_for_rollback)
        .map(|l| (l.found.kind, l.found.name.as_str()))
        .collect();
    assert!(
        kept.contains(&(Kind::EndpointConfig, old_config.as_str())),
        "{}",
        after.render()
    );
    assert!(
        kept.contains(&(Kind::Model, old_model.as_str())),
        "{}",
        after.render()
    );

    // Rollback switches the endpoint back to the previous config; it still answers.
    let rolled_to = executor::rollback(&target2, &state2, &Silent)
        .await
        .expect("rollback");
    assert_eq!(rolled_to, old_config);
    invoke_ok(&target2, &request).await;
    assert_eq!(target2.endpoint_url().unwrap().as_deref(), Some(url.as_str()));
    let rolled = plan(&target2, &state2).await;
    let (serving, previous) = observed_endpoint(&rolled);
    assert_eq!(serving.as_deref(), Some(old_config.as_str()));
    assert_eq!(previous.as_deref(), Some(new_config.as_str()));
    assert!(
        matches!(change(&rolled, Kind::Endpoint), Change::Update { .. }),
        "{}",
        rolled.render()
    );

    // Down removes everything, processes included; afterwards everything is to be created.
    let server = endpoint_pid(&target2);
    let down = executor::down(&target2, |_| false, &Silent).await.expect("down");
    assert!(down.kept.is_empty());
    assert!(down.deleted.iter().any(|f| f.kind == Kind::TrainingJob));
    assert!(target2.owned().await.unwrap().is_empty());
    assert!(!process_running(server), "the server was stopped");
    let left: Vec<String> = std::fs::read_dir(target2.state_dir())
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        left.iter().all(|name| name == "lock"),
        "left after down: {left:?}"
    );
    let fresh = plan(&target2, &state2).await;
    for step in &fresh.steps {
        assert_eq!(
            step.change,
            Change::Create,
            "{} {}",
            step.desired.kind(),
            step.desired.name
        );
    }
    assert!(fresh.leftovers.is_empty());
    target.release(lock).await.expect("release");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_training_is_reported_and_the_next_up_makes_a_new_attempt() {
    let deployment = Deployment::new();
    let spec = deployment.spec(30, "NoSuchColumn");
    let (target, state) = deployment.target(&spec);
    let lock = lock(&target, &state).await;
    let first = plan(&target, &state).await;
    let error = executor::up(&target, &state, &first, None, &Silent)
        .await
        .expect_err("training must fail");
    let job = state.training_job().to_string();
    match &error {
        EngineError::Failed {
            kind: Kind::TrainingJob,
            name,
            reason,
        } => {
            assert_eq!(name, &format!("{job}-1"));
            assert!(!reason.is_empty() && !reason.contains("interrupted"), "{reason}");
        }
        other => panic!("want a failed training job, got {other}"),
    }
    assert!(
        target
            .owned()
            .await
            .unwrap()
            .iter()
            .all(|f| f.kind != Kind::Endpoint),
        "nothing was served"
    );
    let retry = plan(&target, &state).await;
    match &retry.step(Kind::TrainingJob).unwrap().observed {
        Observed::Present {
            name,
            lifecycle: Lifecycle::Failed(_),
            ..
        } => assert_eq!(name, &format!("{job}-1")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        change(&retry, Kind::TrainingJob),
        Change::Replace { .. }
    ));
    let _ = executor::up(&target, &state, &retry, None, &Silent)
        .await
        .expect_err("fails again");
    let names: Vec<String> = target
        .owned()
        .await
        .unwrap()
        .into_iter()
        .filter(|f| f.kind == Kind::TrainingJob)
        .map(|f| f.name)
        .collect();
    assert_eq!(names, [format!("{job}-1"), format!("{job}-2")]);
    executor::down(&target, |_| false, &Silent).await.expect("down");
    assert!(target.owned().await.unwrap().is_empty());
    target.release(lock).await.expect("release");
}

/// Needs no model-image: the lock is taken before anything is built.
#[tokio::test]
async fn a_second_concurrent_run_cannot_take_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train.csv"), "a,Label\n1,Normal\n").unwrap();
    let yaml = "version: 1\nname: iot\ndata: {train: train.csv}\n";
    let spec = spec::parse(yaml, "deploy.yaml", dir.path()).unwrap_or_else(|e| panic!("{e:?}"));
    let first = LocalTarget::open(&spec, Path::new("model-image")).unwrap();
    let second = LocalTarget::open(&spec, Path::new("model-image")).unwrap();
    let facts = first.facts(&engine::values::Digest::sha256(b"")).expect("facts");
    let state = desired_state(&spec, spec::Target::Local, &facts);
    let held = lock(&first, &state).await;
    let request = LockRequest {
        state: Some(&state),
        owner: "test",
        break_lock: false,
    };
    let error = second.lock(request).await.expect_err("second lock must fail");
    assert!(
        matches!(
            error.downcast_ref::<LocalError>(),
            Some(LocalError::Locked { .. })
        ),
        "{error}"
    );
    let text = error.to_string();
    assert!(text.contains(&format!("pid {}", std::process::id())), "{text}");
    assert!(text.contains("another orchestrate run"), "{text}");
    first.release(held).await.expect("release");
    let again = lock(&second, &state).await;
    second
        .release(again)
        .await
        .expect("free again after the first run ends");
}

/// Applies `desired` until it is ready, as the executor does: again after the poll interval while
/// the target answers "not yet", for at most the time the target asks for.
async fn apply_until_ready(
    target: &LocalTarget,
    state: &DesiredState,
    desired: &Desired,
    change: &Change,
) -> Outputs {
    let nothing = BTreeMap::new();
    let upstream = Upstream {
        state,
        outputs: &nothing,
    };
    let started = tokio::time::Instant::now();
    loop {
        match target.apply(desired, change, upstream).await {
            Ok(Applied::Ready(outputs)) => return outputs,
            Ok(Applied::NotYet { reason, retry_for }) => {
                assert!(
                    started.elapsed() < retry_for,
                    "not ready within {retry_for:?}: {reason}"
                );
                tokio::time::sleep(target.poll_interval()).await;
            }
            Ok(Applied::Pending) => panic!("an endpoint is applied, not polled"),
            Err(error) => panic!("apply {}: {}", desired.name, engine::target::error_chain(&error)),
        }
    }
}

/// The server the endpoint's `.starting` note names, if there is one.
fn starting_pid(target: &LocalTarget) -> Option<i32> {
    let note = std::fs::read_to_string(target.state_dir().join("endpoints/iot.starting")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&note).expect("the note is JSON");
    Some(json["pid"].as_i64().expect("pid in the note") as i32)
}

/// Waits briefly for a stopped process to be gone (it is reaped by init).
async fn gone(pid: i32) -> bool {
    for _ in 0..50 {
        if !process_running(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The endpoint's `apply` never waits for its server: it starts it and says "not yet", checks it on
/// the next calls and switches over once it answers. A started server that is not the one an apply
/// wants (another config, or left by an interrupted run) is stopped and replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_is_applied_in_steps_that_each_return_at_once() {
    let deployment = Deployment::new();
    let request = deployment.csv_request();
    let spec = deployment.spec(10, "Label");
    let (target, state) = deployment.target(&spec);
    let lock = lock(&target, &state).await;
    let first = plan(&target, &state).await;
    executor::up(&target, &state, &first, None, &Silent)
        .await
        .unwrap_or_else(|e| panic!("up: {e}"));
    let served = endpoint_pid(&target);
    let url = target.endpoint_url().unwrap().expect("a URL");
    let config = state.get(Kind::EndpointConfig).unwrap();
    let endpoint = state.get(Kind::Endpoint).unwrap();
    let nothing = BTreeMap::new();
    let upstream = Upstream {
        state: &state,
        outputs: &nothing,
    };
    // Two more configs of the same model, and the endpoint wanting each of them.
    let with_config = |name: &str| {
        let mut other = config.clone();
        other.name = name.to_string();
        let mut wanting = endpoint.clone();
        if let Settings::Endpoint(settings) = &mut wanting.settings {
            settings.endpoint_config = name.to_string();
        }
        (other, wanting)
    };
    let (second_config, wanting_second) = with_config("iot-second");
    let (third_config, wanting_third) = with_config("iot-third");
    for config in [&second_config, &third_config] {
        let applied = target
            .apply(config, &Change::Create, upstream)
            .await
            .expect("a config");
        assert_eq!(applied, Applied::Ready(Outputs::None));
    }
    let update = |to: &str| Change::Update {
        fields: vec![engine::resource::FieldDiff {
            field: "endpoint_config",
            want: to.to_string(),
            have: Some(config.name.clone()),
            on_change: engine::resource::OnChange::Update,
        }],
    };

    // The first call starts the server and returns at once; the record still names the old one.
    let started_at = tokio::time::Instant::now();
    let applied = target
        .apply(&wanting_second, &update("iot-second"), upstream)
        .await
        .expect("start");
    assert!(started_at.elapsed() < Duration::from_secs(5), "apply waited");
    match &applied {
        Applied::NotYet { reason, retry_for } => {
            assert_eq!(reason, &format!("starting: waiting for /ping on {url}"));
            assert!(*retry_for >= Duration::from_secs(60), "{retry_for:?}");
        }
        other => panic!("want not yet, got {other:?}"),
    }
    let second = starting_pid(&target).expect("the started server is noted");
    assert_ne!(second, served);
    assert!(process_running(second));
    assert_eq!(endpoint_pid(&target), served, "not recorded before it answers");

    // Another config wanted meanwhile: that server is stopped and the wanted one started.
    let applied = target
        .apply(&wanting_third, &update("iot-third"), upstream)
        .await
        .expect("restart");
    assert!(matches!(applied, Applied::NotYet { .. }), "{applied:?}");
    let third = starting_pid(&target).expect("the restarted server is noted");
    assert_ne!(third, second);
    assert!(gone(second).await, "the server for the other config was stopped");
    let outputs = apply_until_ready(&target, &state, &wanting_third, &update("iot-third")).await;
    assert_eq!(
        outputs,
        Outputs::Endpoint(engine::resource::EndpointOutputs {
            previous_config: Some(config.name.clone())
        })
    );
    assert_eq!(endpoint_pid(&target), third);
    assert_eq!(starting_pid(&target), None, "the note is gone once recorded");
    assert!(gone(served).await, "the old server was stopped after the switch");
    assert_eq!(
        target.endpoint_url().unwrap().as_deref(),
        Some(url.as_str()),
        "same port"
    );
    invoke_ok(&target, &request).await;

    // A run interrupted while its server was starting (another target: it has not started it)
    // leaves the note: the next apply stops that server and starts its own.
    let interrupted = LocalTarget::open(&spec, &deployment.bin).expect("open");
    let back = Change::Update { fields: Vec::new() };
    let applied = interrupted.apply(endpoint, &back, upstream).await.expect("start");
    assert!(matches!(applied, Applied::NotYet { .. }), "{applied:?}");
    let left = starting_pid(&target).expect("noted");
    let next = LocalTarget::open(&spec, &deployment.bin).expect("open");
    let applied = next.apply(endpoint, &back, upstream).await.expect("restart");
    assert!(matches!(applied, Applied::NotYet { .. }), "{applied:?}");
    let own = starting_pid(&target).expect("noted");
    assert_ne!(own, left);
    assert!(gone(left).await, "the interrupted run's server was stopped");
    let outputs = apply_until_ready(&next, &state, endpoint, &back).await;
    assert_eq!(
        outputs,
        Outputs::Endpoint(engine::resource::EndpointOutputs {
            previous_config: Some("iot-third".into())
        })
    );
    assert_eq!(endpoint_pid(&next), own);
    assert!(gone(third).await);
    invoke_ok(&next, &request).await;
    // Serving what is wanted: applying again is ready at once and starts nothing.
    let applied = next.apply(endpoint, &back, upstream).await.expect("again");
    assert!(matches!(applied, Applied::Ready(_)), "{applied:?}");
    assert_eq!((endpoint_pid(&next), starting_pid(&next)), (own, None));

    // A started server is stopped by a delete too.
    let applied = next
        .apply(&wanting_second, &update("iot-second"), upstream)
        .await
        .expect("start");
    assert!(matches!(applied, Applied::NotYet { .. }), "{applied:?}");
    let starting = starting_pid(&next).expect("noted");
    executor::down(&next, |_| false, &Silent).await.expect("down");
    assert!(gone(starting).await && gone(own).await, "down stops every server");
    assert!(next.owned().await.unwrap().is_empty());
    target.release(lock).await.expect("release");
}

/// With a fixed `local.port` held by something else, the endpoint serves on a free port; once the
/// port is free, applying moves the server back onto it, in steps, and stops the temporary one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_off_its_fixed_port_moves_back_onto_it() {
    let deployment = Deployment::new();
    let request = deployment.csv_request();
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let fixed = free.local_addr().unwrap().port();
    drop(free);
    let spec = deployment.spec_with(10, "Label", &format!("local: {{port: {fixed}}}\n"));
    let (target, state) = deployment.target(&spec);
    let lock = lock(&target, &state).await;
    // Held without SO_REUSEPORT: the server cannot share it.
    let holder = std::net::TcpListener::bind(("127.0.0.1", fixed)).expect("hold the fixed port");
    let first = plan(&target, &state).await;
    executor::up(&target, &state, &first, None, &Silent)
        .await
        .unwrap_or_else(|e| panic!("up: {e}"));
    let fixed_url = format!("http://127.0.0.1:{fixed}");
    let temporary_url = target.endpoint_url().unwrap().expect("a URL");
    assert_ne!(temporary_url, fixed_url, "the fixed port is taken");
    invoke_ok(&target, &request).await;
    let temporary = endpoint_pid(&target);

    drop(holder);
    let endpoint = state.get(Kind::Endpoint).unwrap();
    let again = Change::Update { fields: Vec::new() };
    let outputs = apply_until_ready(&target, &state, endpoint, &again).await;
    assert_eq!(
        outputs,
        Outputs::Endpoint(engine::resource::EndpointOutputs {
            previous_config: None
        })
    );
    assert_eq!(
        target.endpoint_url().unwrap().as_deref(),
        Some(fixed_url.as_str())
    );
    assert_ne!(endpoint_pid(&target), temporary);
    assert!(gone(temporary).await, "the temporary server was stopped");
    assert_eq!(starting_pid(&target), None);
    invoke_ok(&target, &request).await;
    assert!(plan(&target, &state).await.is_noop());

    executor::down(&target, |_| false, &Silent).await.expect("down");
    assert!(target.owned().await.unwrap().is_empty());
    target.release(lock).await.expect("release");
}
