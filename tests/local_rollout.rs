//! Guarded rollouts on the local target, with the real binaries: the endpoint's port is held by the
//! canary router (`model-image route`) in front of the serving `model-image serve`; a retrain is
//! rolled out in the canary's steps (both servers answer during the bake; `up` killed then is
//! finished by the next `up`, which stops the old server after the bake), and a new server that turns slow during its bake trips the deployment's own latency
//! alarm: the router sends all traffic back to the old server by itself, `up` fails naming the
//! alarm, the endpoint keeps its config (drift for `status`), and `down` leaves nothing running.
//! A rollback the router makes while no `up` follows it (killed mid-bake) is recorded by the next
//! look: `status` names the alarm.
//! The slowness is real: the new server is stopped (SIGSTOP) for longer than the alarm's threshold
//! while requests wait on it.

use std::time::{Duration, Instant};

use orchestrate_e2e::local::{assert_gone, endpoint_record, processes};
use orchestrate_e2e::{Deployment, Run, binary};
use serde_json::Value;

const NAME: &str = "e2e-local-rollout";
/// Each step's bake: long enough to act in, short for CI.
const BAKE_SECONDS: u64 = 4;

fn deploy_yaml(learning_rate: &str) -> String {
    format!(
        r#"version: 1
name: {NAME}
target: local
data:
  train: train.csv
training:
  max_runtime: 10m
  hyperparameters: {{learning_rate: {learning_rate}, max_rounds: 30, early_stopping_rounds: 10, threads: 2}}
endpoint:
  instance_count: 2
  wait_timeout: 5m
  rollout:
    strategy: canary
    canary_percent: 50
    bake: {BAKE_SECONDS}s
    alarms:
      errors: {{threshold: 5, datapoints: 1, periods: 1}}
      latency: {{threshold_ms: 1000, datapoints: 1, periods: 1}}
local:
  alarm_period: 1s
"#
    )
}

fn record(deployment: &Deployment) -> Value {
    endpoint_record(deployment, NAME).expect("the endpoint's record")
}

fn config_of(record: &Value) -> String {
    record["settings"]["endpoint_config"]
        .as_str()
        .unwrap_or_else(|| panic!("no config in {record:#}"))
        .to_string()
}

/// The rollout status file the router keeps.
fn rollout_status(deployment: &Deployment) -> Option<Value> {
    let path = deployment
        .state(NAME)
        .join("endpoints")
        .join(format!("{NAME}.rollout-status"));
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Waits (a deadline only against hanging) until the record names a rollout whose router bakes
/// step 1; returns the record.
fn first_bake(deployment: &Deployment, up: &mut std::process::Child) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(record) = endpoint_record(deployment, NAME)
            && !record["details"]["rollout"].is_null()
            && rollout_status(deployment).is_some_and(|s| s["phase"] == "baking" && s["step"] == 1)
        {
            return record;
        }
        if let Some(exit) = up.try_wait().expect("poll up") {
            panic!("up ended ({exit}) before the rollout baked");
        }
        assert!(Instant::now() < deadline, "no rollout began");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One `POST /invocations` through the endpoint: the backend the router picked.
fn invoke(url: &str, row: &str) -> String {
    let response = reqwest::blocking::Client::new()
        .post(format!("{url}/invocations"))
        .header("Content-Type", "text/csv")
        .body(row.to_string())
        .timeout(Duration::from_secs(30))
        .send()
        .expect("the endpoint answers");
    assert_eq!(response.status().as_u16(), 200, "an answer through the router");
    response
        .headers()
        .get("x-canary-backend")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_string()
}

fn wait_for(up: std::process::Child) -> Run {
    Run::from(up.wait_with_output().expect("up ends"))
}

/// `orchestrate up`, started in the background with its output captured.
fn spawn_up(deployment: &Deployment) -> std::process::Child {
    deployment
        .command(&["up"], &[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("up")
}

fn signal(pid: i64, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {signal} {pid}");
}

/// Makes the rollout's new server (green, named by the `baking` record) slow for real: it is
/// stopped (SIGSTOP) for longer than the latency alarm's threshold while requests wait on it,
/// then continued; returns once every request was answered.
fn slow_down_green(baking: &Value, url: &str, row: &str) {
    let green = baking["details"]["rollout"]["green"]["pid"]
        .as_i64()
        .expect("green's pid");
    signal(green, "-STOP");
    let requests: Vec<_> = (0..4)
        .map(|_| {
            let (url, row) = (url.to_string(), row.to_string());
            std::thread::spawn(move || invoke(&url, &row))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    signal(green, "-CONT");
    for request in requests {
        request.join().expect("a request");
    }
}

#[test]
fn a_canary_bakes_behind_the_router_and_a_slow_new_server_is_rolled_back_by_its_alarm() {
    assert!(binary("model-image").exists(), "build model-image first");
    let deployment = Deployment::new(&deploy_yaml("0.1"));
    deployment.demo_data(600);
    // A row in the raw schema: the request.
    let demo = std::fs::read_to_string(deployment.path().join("train.csv")).expect("the demo data");
    let row = demo.lines().take(2).collect::<Vec<_>>().join("\n") + "\n";

    // The first `up`: the router fronts the only server, which listens on a port of its own.
    deployment.orchestrate(&["up"]).expect(0);
    let first = record(&deployment);
    let front = &first["details"]["front"];
    let url = front["url"].as_str().expect("a front").to_string();
    assert_ne!(front["port"], first["details"]["port"], "{first:#}");
    assert_eq!(invoke(&url, &row), "green");
    // The router and the one server it fronts (with the shells that started them).
    let fronted = processes(&deployment, NAME).len();

    // A retrain rolls out in the canary's steps, both servers answering while it bakes.
    deployment.write_deploy_yaml(&deploy_yaml("0.2"));
    let mut up = spawn_up(&deployment);
    let baking = first_bake(&deployment, &mut up);
    assert_eq!(
        config_of(&baking),
        config_of(&first),
        "the config changes only once the rollout completes"
    );
    let backends: Vec<String> = (0..20).map(|_| invoke(&url, &row)).collect();
    assert!(
        backends.iter().any(|b| b == "blue") && backends.iter().any(|b| b == "green"),
        "{backends:?}"
    );
    let status = deployment.orchestrate(&["status"]);
    assert_eq!(
        status.code, 0,
        "a rollout under way is not drift: {}{}",
        status.stdout, status.stderr
    );
    // `up` is killed mid-bake; the router goes on, and the next `up` follows it to its end.
    up.kill().expect("kill up");
    up.wait().expect("up ends");
    let rolled_out = deployment.orchestrate(&["up"]).expect(0);
    assert!(rolled_out.stderr.contains("rolling out"), "{}", rolled_out.stderr);
    let second = record(&deployment);
    assert_ne!(config_of(&second), config_of(&first), "{second:#}");
    assert_eq!(
        second["details"]["previous_config"].as_str(),
        Some(config_of(&first).as_str())
    );
    assert!(second["details"]["rollout"].is_null(), "{second:#}");
    assert_eq!(
        second["details"]["front"]["url"].as_str(),
        Some(url.as_str()),
        "the endpoint's URL stays"
    );
    assert_eq!(invoke(&url, &row), "green");
    // The router and the one server it fronts run; the old server was stopped.
    let running = processes(&deployment, NAME);
    assert_eq!(running.len(), fronted, "{running:#?}");

    // Another retrain, whose new server turns slow while it bakes: the latency alarm rolls back.
    deployment.write_deploy_yaml(&deploy_yaml("0.3"));
    let mut up = spawn_up(&deployment);
    let baking = first_bake(&deployment, &mut up);
    slow_down_green(&baking, &url, &row);
    let rolled_back = wait_for(up).expect(1);
    let alarm = format!("{NAME}-model-latency");
    assert!(
        rolled_back.stderr.contains("rolled back") && rolled_back.stderr.contains(&alarm),
        "{}",
        rolled_back.stderr
    );
    let third = record(&deployment);
    assert_eq!(
        config_of(&third),
        config_of(&second),
        "the endpoint keeps its config: {third:#}"
    );
    assert!(third["details"]["rollout"].is_null(), "{third:#}");
    for _ in 0..10 {
        assert_eq!(
            invoke(&url, &row),
            "blue",
            "all traffic is back on the old server"
        );
    }
    let running = processes(&deployment, NAME);
    assert_eq!(
        running.len(),
        fronted,
        "the slow server was stopped: {running:#?}"
    );
    let drift = deployment.orchestrate(&["status"]);
    assert_eq!(drift.code, 2, "the rolled-back config is drift: {}", drift.stdout);

    // Once more with nobody following: `up` is killed mid-bake, the new server turns slow and the
    // router rolls back by itself. The next look (`status`) records it, naming the alarm.
    deployment.write_deploy_yaml(&deploy_yaml("0.4"));
    let mut up = spawn_up(&deployment);
    let baking = first_bake(&deployment, &mut up);
    up.kill().expect("kill up");
    up.wait().expect("up ends");
    slow_down_green(&baking, &url, &row);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !rollout_status(&deployment).is_some_and(|s| s["phase"] == "rolled_back") {
        assert!(Instant::now() < deadline, "the router never rolled back");
        std::thread::sleep(Duration::from_millis(100));
    }
    let settled = deployment.orchestrate(&["status"]);
    assert_eq!(settled.code, 2, "{}{}", settled.stdout, settled.stderr);
    assert!(
        settled.stdout.contains("was rolled back") && settled.stdout.contains(&alarm),
        "{}",
        settled.stdout
    );
    let fourth = record(&deployment);
    assert_eq!(config_of(&fourth), config_of(&second), "{fourth:#}");
    assert!(fourth["details"]["rollout"].is_null(), "{fourth:#}");
    assert_eq!(invoke(&url, &row), "blue");
    let running = processes(&deployment, NAME);
    assert_eq!(
        running.len(),
        fronted,
        "the slow server was stopped: {running:#?}"
    );

    deployment.orchestrate(&["down", "--yes"]).expect(0);
    assert_gone(&deployment, NAME, "after down");
}
