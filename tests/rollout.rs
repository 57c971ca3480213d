//! Guarded rollouts on the AWS target, with the real binaries, against moto with the testbed's
//! SageMaker emulation: `up` creates the rollout alarms, hands SageMaker a canary with automatic
//! rollback, follows it step by step, and reports a rollback SageMaker made because an alarm went
//! into ALARM, set through CloudWatch's own API (`SetAlarmState`), the way an endpoint's 5xx
//! errors would set it: the test proves orchestrate reacts to AWS's signals, not to a flag of ours.
//! `status` shows the rollout in progress as in progress, not drift; `down` removes the alarms.

use std::io::Read;
use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::types::StateValue;
use orchestrate_e2e::aws::{Aws, REGION};
use orchestrate_e2e::{Deployment, Run};
use serde_json::Value;

const NAME: &str = "e2e-rollout";
/// Each step's bake: long enough to act in, short for CI.
const BAKE_SECONDS: u64 = 6;

fn deploy_yaml(learning_rate: &str) -> String {
    format!(
        r#"version: 1
name: {NAME}
target: aws
region: {REGION}
data:
  train: train.csv
training:
  max_runtime: 10m
  hyperparameters: {{learning_rate: {learning_rate}, max_rounds: 40, early_stopping_rounds: 10, threads: 2}}
endpoint:
  instance_count: 2
  wait_timeout: 5m
  rollout:
    strategy: canary
    canary_percent: 50
    bake: {BAKE_SECONDS}s
    alarms:
      errors: {{threshold: 3, datapoints: 1, periods: 2}}
"#
    )
}

fn errors_alarm() -> String {
    format!("{NAME}-invocation-5xx-errors")
}

fn latency_alarm() -> String {
    format!("{NAME}-model-latency")
}

async fn set_alarm(aws: &Aws, name: &str, state: StateValue, reason: &str) {
    aws.cloudwatch()
        .set_alarm_state()
        .alarm_name(name)
        .state_value(state)
        .state_reason(reason)
        .send()
        .await
        .expect("SetAlarmState");
}

/// Waits (a deadline only against hanging) until the endpoint's new fleet bakes its first step.
async fn first_bake(aws: &Aws) -> String {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let described = aws.endpoint(NAME).await;
        let baking = described
            .pending_deployment_summary()
            .and_then(|p| p.production_variants().first())
            .and_then(|v| v.variant_status().last())
            .filter(|s| s.status().map(|s| s.as_str()) == Some("Baking"))
            .and_then(|s| s.status_message())
            .filter(|m| m.contains("step 1 of 2"))
            .map(str::to_string);
        if let Some(message) = baking {
            return message;
        }
        assert!(
            Instant::now() < deadline,
            "the canary never baked its first step: {described:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `status --output json`: the standing of the resource of `kind`.
fn standing(run: &Run, kind: &str) -> Value {
    run.json()["status"]["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|r| r["kind"] == kind)
        .cloned()
        .unwrap_or_else(|| panic!("no {kind} in {}", run.stdout))
}

fn finish(mut child: std::process::Child) -> (i32, String, String) {
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    let status = child.wait().expect("wait for up");
    (status.code().unwrap_or(-1), stdout, stderr)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_rolls_back_on_an_alarm_and_rolls_forward_when_the_alarms_are_quiet() {
    let Some(aws) = Aws::start().await else {
        return;
    };
    let deployment = Deployment::new(&deploy_yaml("0.1"));
    deployment.demo_data(1200);

    // First `up`: the alarms exist before the endpoint, with the rules of deploy.yaml.
    aws.orchestrate(&deployment, &["up"]).expect(0);
    assert_eq!(aws.alarms(NAME).await, [errors_alarm(), latency_alarm()]);
    let described = aws
        .cloudwatch()
        .describe_alarms()
        .alarm_names(errors_alarm())
        .alarm_names(latency_alarm())
        .send()
        .await
        .expect("describe the alarms");
    for alarm in described.metric_alarms() {
        assert_eq!(alarm.namespace(), Some("AWS/SageMaker"));
        assert_eq!(alarm.period(), Some(60));
        assert_eq!(alarm.treat_missing_data(), Some("notBreaching"));
        let dimensions: Vec<(&str, &str)> = alarm
            .dimensions()
            .iter()
            .map(|d| (d.name().unwrap_or_default(), d.value().unwrap_or_default()))
            .collect();
        assert_eq!(
            dimensions,
            [("EndpointName", NAME), ("VariantName", "AllTraffic")]
        );
        if alarm.alarm_name() == Some(errors_alarm().as_str()) {
            assert_eq!(alarm.metric_name(), Some("Invocation5XXErrors"));
            assert_eq!(alarm.statistic().map(|s| s.as_str()), Some("Sum"));
            assert_eq!(
                (
                    alarm.threshold(),
                    alarm.datapoints_to_alarm(),
                    alarm.evaluation_periods()
                ),
                (Some(3.0), Some(1), Some(2))
            );
        } else {
            assert_eq!(alarm.metric_name(), Some("ModelLatency"));
            assert_eq!(alarm.extended_statistic(), Some("p99"));
            // deploy.yaml's default: 100 ms, in microseconds as SageMaker reports ModelLatency.
            assert_eq!(alarm.threshold(), Some(100_000.0));
        }
    }
    let first_config = aws
        .endpoint(NAME)
        .await
        .endpoint_config_name()
        .unwrap()
        .to_string();
    let status = aws
        .orchestrate(&deployment, &["status", "--output", "json"])
        .expect(0);
    assert_eq!(standing(&status, "alarm")["status"], "in_sync");

    // A new model: `up` starts a canary; the errors alarm goes off during its first bake.
    deployment.write_deploy_yaml(&deploy_yaml("0.2"));
    let plan = aws.orchestrate(&deployment, &["plan"]).expect(2);
    assert!(
        plan.stdout
            .contains("Rollout: canary, 50% then 100% of the new fleet's capacity")
            && plan.stdout.contains(&errors_alarm()),
        "{}",
        plan.stdout
    );
    let up = aws.spawn(&deployment, &["up"]);
    let message = first_bake(&aws).await;
    assert!(message.contains("50%"), "{message}");
    // Meanwhile `status` shows the rollout in progress, and that is not drift (exit 0).
    let status = aws
        .orchestrate(&deployment, &["status", "--output", "json"])
        .expect(0);
    let endpoint = standing(&status, "endpoint");
    assert_eq!(endpoint["status"], "in_progress", "{endpoint}");
    assert!(
        endpoint["state"].as_str().unwrap_or_default().contains("Baking"),
        "{endpoint}"
    );
    let reason = "Threshold Crossed: 1 out of the last 2 datapoints [7.0] was greater than or equal to the threshold (3.0)";
    set_alarm(&aws, &errors_alarm(), StateValue::Alarm, reason).await;
    let (code, stdout, stderr) = finish(up);
    assert_eq!(
        code, 1,
        "up must fail when SageMaker rolls back\n{stdout}\n{stderr}"
    );
    for text in ["rolled back", &errors_alarm(), "is in ALARM", reason] {
        assert!(stderr.contains(text), "want `{text}` in:\n{stderr}");
    }
    assert!(
        stderr.contains("step 1 of 2"),
        "up followed the canary step by step:\n{stderr}"
    );
    assert_eq!(
        aws.endpoint(NAME).await.endpoint_config_name(),
        Some(first_config.as_str())
    );
    // The endpoint serves the old model, and `status` says it is not what deploy.yaml wants.
    aws.orchestrate(&deployment, &["status"]).expect(2);

    // The alarm quiet again: the next `up` takes the canary through both steps.
    set_alarm(&aws, &errors_alarm(), StateValue::Ok, "the errors stopped").await;
    let up = aws.orchestrate(&deployment, &["up"]).expect(0);
    assert!(up.stderr.contains("step 1 of 2"), "{}", up.stderr);
    let described = aws.endpoint(NAME).await;
    assert_ne!(described.endpoint_config_name(), Some(first_config.as_str()));
    let routing = described
        .last_deployment_config()
        .and_then(|c| c.blue_green_update_policy())
        .and_then(|p| p.traffic_routing_configuration())
        .expect("the update's traffic routing");
    assert_eq!(routing.r#type().map(|t| t.as_str()), Some("CANARY"));
    assert_eq!(routing.wait_interval_in_seconds(), Some(BAKE_SECONDS as i32));
    aws.orchestrate(&deployment, &["status"]).expect(0);
    aws.orchestrate(&deployment, &["up"]).expect(0);

    // `down` removes the alarms with everything else.
    aws.orchestrate(&deployment, &["down", "--yes"]).expect(0);
    aws.assert_gone(NAME, "after down").await;
    let checks = aws.moto.request_checks();
    assert!(
        checks.violations.is_empty(),
        "requests AWS would reject: {:?}",
        checks.violations
    );
}
