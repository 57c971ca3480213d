//! The whole lifecycle on the local target with the real binaries, as a user runs them: `up`,
//! `status`, a second `up`, out-of-band damage and its repair, a hyperparameter change rolled
//! forward, `rollback`, `invoke`, `evaluate`, an interrupted `up` finished by the next one, and
//! `down`.

use std::process::Command;
use std::time::{Duration, Instant};

use orchestrate_e2e::{Deployment, answers, binary, post};

const NAME: &str = "e2e-iot";

fn deploy_yaml(learning_rate: &str, max_rounds: u32) -> String {
    format!(
        r#"version: 1
name: {NAME}
target: local
data:
  train: train.csv
  validation: 0.2
training:
  max_runtime: 10m
  hyperparameters:
    learning_rate: {learning_rate}
    max_rounds: {max_rounds}
    early_stopping_rounds: 10
  quality_gate:
    min_pr_auc: 0.9
endpoint:
  instance_type: ml.m5.large
  autoscaling: {{min: 1, max: 2, invocations_per_instance: 500}}
"#
    )
}

fn status_of(run: &serde_json::Value, kind: &str) -> Vec<(String, String)> {
    run["status"]["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter(|r| r["kind"] == kind)
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn endpoint_record(deployment: &Deployment) -> serde_json::Value {
    let path = deployment
        .state(NAME)
        .join("endpoints")
        .join(format!("{NAME}.json"));
    serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

fn endpoint_url(deployment: &Deployment) -> String {
    endpoint_record(deployment)["details"]["url"]
        .as_str()
        .expect("endpoint url")
        .trim_end_matches('/')
        .to_string()
}

fn training_attempts(deployment: &Deployment) -> usize {
    std::fs::read_dir(deployment.state(NAME).join("training-jobs"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .count()
        })
        .unwrap_or(0)
}

/// Training attempts whose trainer was started and recorded (the record holds its pid).
fn started_attempts(deployment: &Deployment) -> usize {
    std::fs::read_dir(deployment.state(NAME).join("training-jobs"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .filter_map(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                .filter(|record| record["details"]["pid"].as_i64().is_some_and(|pid| pid > 0))
                .count()
        })
        .unwrap_or(0)
}

fn a_few_rows(deployment: &Deployment) -> String {
    let text = std::fs::read_to_string(deployment.path().join("train.csv")).unwrap();
    text.lines().take(21).flat_map(|l| [l, "\n"]).collect()
}

#[test]
fn local_target_lifecycle() {
    let deployment = Deployment::new(&deploy_yaml("0.1", 40));
    let status = Command::new(binary("model-image"))
        .args(["demo-data", "--rows", "2500", "--seed", "11", "--out"])
        .arg(deployment.path().join("train.csv"))
        .status()
        .unwrap();
    assert!(status.success());

    // Nothing exists yet: status reports every resource missing (drift, exit 2).
    let before = deployment
        .orchestrate(&["status", "--output", "json"])
        .expect(2)
        .json();
    assert!(
        before["status"]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "missing"),
        "{before}"
    );

    // up from nothing: trains, serves, prints the URL and the metrics.
    let first_started = Instant::now();
    let up = deployment.orchestrate(&["up"]).expect(0);
    let first_duration = first_started.elapsed();
    assert!(up.stdout.contains("http://127.0.0.1:"), "{}", up.stdout);
    assert!(
        up.stdout.contains("pr_auc"),
        "validation metrics printed:\n{}",
        up.stdout
    );
    let url = endpoint_url(&deployment);
    let (code, body) = post(&format!("{url}/invocations"), "text/csv", a_few_rows(&deployment));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body.matches("\"label\"").count(), 20, "{body}");
    assert_eq!(training_attempts(&deployment), 1);

    // In sync, and a second up changes nothing and retrains nothing.
    let status = deployment.orchestrate(&["status"]).expect(0);
    assert!(status.stdout.contains("In sync."), "{}", status.stdout);
    let second_started = Instant::now();
    let again = deployment.orchestrate(&["up"]).expect(0);
    let second_duration = second_started.elapsed();
    assert!(again.stdout.contains("No changes"), "{}", again.stdout);
    assert_eq!(training_attempts(&deployment), 1);
    eprintln!("first up {first_duration:?}, second up {second_duration:?}");

    // Damage out of band: kill the endpoint process.
    let pid = endpoint_record(&deployment)["details"]["pid"]
        .as_i64()
        .expect("endpoint pid");
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while answers(&format!("{url}/ping")) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let damaged = deployment
        .orchestrate(&["status", "--output", "json"])
        .expect(2)
        .json();
    // A dead server is a failed endpoint (its lifecycle), which `up` replaces.
    assert_eq!(
        status_of(&damaged, "endpoint"),
        [(NAME.to_string(), "failed".to_string())],
        "{damaged}"
    );
    let text = deployment.orchestrate(&["status"]).expect(2).stdout;
    assert!(
        text.contains(&format!("not running (pid {pid} exited)")),
        "{text}"
    );
    deployment.orchestrate(&["up"]).expect(0);
    assert!(answers(&format!("{}/ping", endpoint_url(&deployment))));
    deployment.orchestrate(&["status"]).expect(0);

    // Damage: delete the model folder; then change the uploaded data file.
    let models = deployment.state(NAME).join("models");
    for entry in std::fs::read_dir(&models).unwrap().filter_map(Result::ok) {
        if entry.path().is_dir() {
            std::fs::remove_dir_all(entry.path()).unwrap();
        }
    }
    let damaged = deployment
        .orchestrate(&["status", "--output", "json"])
        .expect(2)
        .json();
    assert!(
        status_of(&damaged, "model").iter().any(|(_, s)| s == "missing"),
        "{damaged}"
    );
    deployment.orchestrate(&["up"]).expect(0);
    deployment.orchestrate(&["status"]).expect(0);
    assert_eq!(
        training_attempts(&deployment),
        1,
        "repairing the model must not retrain"
    );

    let uploaded =
        find_file(&deployment.state(NAME).join("buckets"), "train.csv").expect("uploaded train.csv");
    std::fs::write(&uploaded, "tampered\n").unwrap();
    let damaged = deployment
        .orchestrate(&["status", "--output", "json"])
        .expect(2)
        .json();
    assert!(
        status_of(&damaged, "training_data")
            .iter()
            .any(|(_, s)| s == "drifted" || s == "missing"),
        "{damaged}"
    );
    deployment.orchestrate(&["up"]).expect(0);
    deployment.orchestrate(&["status"]).expect(0);

    // A changed hyperparameter: new job, model and config, endpoint updated in place.
    let serving_before = endpoint_record(&deployment)["settings"]["endpoint_config"]
        .as_str()
        .unwrap()
        .to_string();
    deployment.write_deploy_yaml(&deploy_yaml("0.2", 40));
    let plan = deployment.orchestrate(&["plan"]).expect(2);
    for line in [
        "+   training job",
        "+   model",
        "+   endpoint config",
        "~   endpoint",
    ] {
        assert!(
            plan.stdout.contains(line),
            "plan lacks `{line}`:\n{}",
            plan.stdout
        );
    }
    deployment.orchestrate(&["up"]).expect(0);
    assert_eq!(training_attempts(&deployment), 2);
    let record = endpoint_record(&deployment);
    let serving_after = record["settings"]["endpoint_config"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(serving_after, serving_before);
    let status = deployment.orchestrate(&["status"]).expect(0);
    assert!(status.stdout.contains("kept for rollback"), "{}", status.stdout);
    let (code, body) = post(
        &format!("{}/invocations", endpoint_url(&deployment)),
        "text/csv",
        a_few_rows(&deployment),
    );
    assert_eq!(code, 200, "{body}");

    // invoke and evaluate against the live endpoint.
    let invoke = deployment.orchestrate(&["invoke", "train.csv"]).expect(0);
    assert!(invoke.stdout.contains("\"predictions\""), "{}", invoke.stdout);
    let evaluate = deployment.orchestrate(&["evaluate", "train.csv"]).expect(0);
    assert!(
        evaluate.stdout.to_lowercase().contains("mcc"),
        "{}",
        evaluate.stdout
    );

    // rollback: back to the previous config; deploy.yaml now differs from what serves (drift).
    deployment.orchestrate(&["rollback"]).expect(0);
    assert_eq!(
        endpoint_record(&deployment)["settings"]["endpoint_config"]
            .as_str()
            .unwrap(),
        serving_before
    );
    let (code, _) = post(
        &format!("{}/invocations", endpoint_url(&deployment)),
        "text/csv",
        a_few_rows(&deployment),
    );
    assert_eq!(code, 200);
    let drift = deployment
        .orchestrate(&["status", "--output", "json"])
        .expect(2)
        .json();
    assert_eq!(
        status_of(&drift, "endpoint"),
        [(NAME.to_string(), "drifted".to_string())],
        "{drift}"
    );
    deployment.orchestrate(&["up"]).expect(0);
    assert_eq!(
        endpoint_record(&deployment)["settings"]["endpoint_config"]
            .as_str()
            .unwrap(),
        serving_after
    );

    // An interrupted up (killed while training) is finished by the next up, re-attaching to the job.
    deployment.write_deploy_yaml(&deploy_yaml("0.05", 300));
    let mut child = Command::new(binary("orchestrate"))
        .arg("up")
        .current_dir(deployment.path())
        .env("ORCHESTRATE_MODEL_IMAGE", binary("model-image"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the third attempt's trainer runs and is recorded (its record names its pid). A
    // kill between creating the attempt and recording its pid is a different case: the attempt
    // reads as interrupted and the next up starts another one.
    let deadline = Instant::now() + Duration::from_secs(120);
    while started_attempts(&deployment) < 3 {
        assert!(Instant::now() < deadline, "training did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    deployment.orchestrate(&["up"]).expect(0);
    assert_eq!(
        training_attempts(&deployment),
        3,
        "the next up re-attaches instead of retraining"
    );
    deployment.orchestrate(&["status"]).expect(0);

    // down: needs --yes without a terminal; then everything is gone.
    let refused = deployment.orchestrate(&["down"]).expect(1);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    let url = endpoint_url(&deployment);
    deployment.orchestrate(&["down", "--yes"]).expect(0);
    assert!(
        !answers(&format!("{url}/ping")),
        "endpoint still answering after down"
    );
    let after = deployment
        .orchestrate(&["status", "--output", "json"])
        .expect(2)
        .json();
    assert!(
        after["status"]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "missing"),
        "{after}"
    );
}

fn find_file(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
    }
    None
}

/// Regression for the settings' old string encodings: column names with spaces (a leading one),
/// commas, `=`, `;` and quotes, as label, positive class and exclusions, reach `model-image train`
/// exactly; nothing excluded becomes a feature; afterwards `plan` is empty and a second `up`
/// retrains nothing.
#[test]
fn awkward_column_names_reach_the_container_exactly() {
    const AWKWARD: &str = "e2e-awkward";
    let names = orchestrate_e2e::AwkwardNames::new();
    let deployment = Deployment::new(&format!(
        "version: 1\nname: {AWKWARD}\ntarget: local\n{}training:\n  max_runtime: 10m\n  hyperparameters: {{max_rounds: 20, early_stopping_rounds: 5}}\n",
        names.data_section("awkward.csv")
    ));
    deployment.demo_data(1500);
    names.rewrite(
        &deployment.path().join("train.csv"),
        &deployment.path().join("awkward.csv"),
    );
    deployment.orchestrate(&["validate"]).expect(0);

    let up = deployment
        .orchestrate(&["--output", "json", "up"])
        .expect(0)
        .json();
    let attempt = up["training_job"].as_str().expect("the training job").to_string();
    let opt_ml = deployment
        .state(AWKWARD)
        .join("training-jobs")
        .join(&attempt)
        .join("opt_ml");
    let read_json = |path: std::path::PathBuf| -> serde_json::Value {
        serde_json::from_str(
            &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        )
        .unwrap()
    };
    // What SageMaker's layout hands the container...
    let hyperparameters = read_json(opt_ml.join("input/config/hyperparameters.json"));
    assert_eq!(hyperparameters["label"], names.label.as_str());
    assert_eq!(hyperparameters["positive_class"], names.positive.as_str());
    let exclude: Vec<String> =
        serde_json::from_str(hyperparameters["exclude"].as_str().expect("exclude as text")).unwrap();
    assert_eq!(exclude, names.exclude);
    // ...and what the container made of it.
    names.assert_model_used_them(&read_json(opt_ml.join("model/model.json")));

    deployment.orchestrate(&["plan"]).expect(0);
    let again = deployment.orchestrate(&["up"]).expect(0);
    assert!(again.stdout.contains("No changes"), "{}", again.stdout);
    let attempts = std::fs::read_dir(deployment.state(AWKWARD).join("training-jobs"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .count();
    assert_eq!(attempts, 1, "nothing retrained");
    deployment.orchestrate(&["down", "--yes"]).expect(0);
}
