//! The operator policy `orchestrate permissions` prints is enough, and proven so independently of
//! the code that writes it: the whole lifecycle (up from nothing with the deployment's own rollback
//! alarms, status, invoke, a changed hyperparameter rolled forward behind them, a no-op up, down)
//! runs on the SageMaker emulator with IAM enforced from the first request, as an IAM user holding
//! only that policy. The emulator derives each
//! request's action and resources from AWS's own tables (parliament's `iam_definition.json`, see
//! the testbed's `iam_policy_check.py`), not from orchestrate's.

use std::collections::BTreeSet;

use orchestrate_e2e::Deployment;
use orchestrate_e2e::aws::{Aws, REGION};
use serde_json::Value;
use testbed::AccessKey;

const NAME: &str = "e2e-iam";
const OPERATOR: &str = "ci-operator";

/// Actions the operator policy grants that this lifecycle on the emulator does not send, and why
/// the policy has them anyway.
const NOT_EXERCISED: &[(&str, &str)] = &[
    (
        "ecr:BatchCheckLayerAvailability",
        "the image push: it goes to the registry standing in for ECR's, which IAM does not guard here",
    ),
    ("ecr:InitiateLayerUpload", "the image push (see above)"),
    ("ecr:UploadLayerPart", "the image push (see above)"),
    ("ecr:CompleteLayerUpload", "the image push (see above)"),
    ("ecr:BatchGetImage", "the image push (see above)"),
    (
        "iam:CreateServiceLinkedRole",
        "the first RegisterScalableTarget in an account creates Application Auto Scaling's role",
    ),
    (
        "sagemaker:UpdateEndpointWeightsAndCapacities",
        "Application Auto Scaling changes the instance count with it",
    ),
    (
        "sagemaker:InvokeEndpointAsync",
        "invoke --async on an async endpoint (tests/async_endpoints.rs), which this lifecycle's guarded rollout excludes",
    ),
    (
        "sagemaker:CreateProcessingJob",
        "orchestrate monitor (tests/monitoring.rs), which this lifecycle's endpoint without data capture cannot run",
    ),
    (
        "sagemaker:DescribeProcessingJob",
        "orchestrate monitor (see above)",
    ),
    (
        "sagemaker:StopTrainingJob",
        "down stops a training job an interrupted up left running (aws_lifecycle does it)",
    ),
];

fn deploy_yaml(learning_rate: &str, tags: &str) -> String {
    format!(
        r#"version: 1
name: {NAME}
target: aws
region: {REGION}
tags: {tags}
data:
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
  rollout: {{strategy: all_at_once, bake: 0s, alarms: default}}
"#
    )
}

/// Creates the IAM user `OPERATOR` with `policy` as its only policy; returns its access key.
async fn operator_with(aws: &Aws, policy: &str) -> AccessKey {
    let iam = aws_sdk_iam::Client::new(&aws.config);
    iam.create_user()
        .user_name(OPERATOR)
        .send()
        .await
        .expect("create the operator");
    iam.put_user_policy()
        .user_name(OPERATOR)
        .policy_name("orchestrate")
        .policy_document(policy)
        .send()
        .await
        .expect("put the operator policy");
    let created = iam
        .create_access_key()
        .user_name(OPERATOR)
        .send()
        .await
        .expect("an access key");
    let key = created.access_key().expect("an access key");
    AccessKey {
        access_key_id: key.access_key_id().to_string(),
        secret_access_key: key.secret_access_key().to_string(),
    }
}

/// As the admin: widens the role's trust, attaches a managed policy to it, makes the repository's
/// tags mutable and turns its scanning off.
async fn tamper(aws: &Aws) {
    let iam = aws_sdk_iam::Client::new(&aws.config);
    let role = format!("{NAME}-sagemaker-execution");
    let trust = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "sagemaker.amazonaws.com", "AWS": "arn:aws:iam::999999999999:root"},
            "Action": "sts:AssumeRole"
        }]
    });
    iam.update_assume_role_policy()
        .role_name(&role)
        .policy_document(trust.to_string())
        .send()
        .await
        .expect("widen the trust");
    let everything = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]
    });
    let managed = iam
        .create_policy()
        .policy_name("everything")
        .policy_document(everything.to_string())
        .send()
        .await
        .expect("a managed policy");
    iam.attach_role_policy()
        .role_name(&role)
        .policy_arn(managed.policy().and_then(|p| p.arn()).expect("its ARN"))
        .send()
        .await
        .expect("attach it");
    let ecr = aws_sdk_ecr::Client::new(&aws.config);
    let repository = format!("{NAME}-model-image");
    ecr.put_image_tag_mutability()
        .repository_name(&repository)
        .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::Mutable)
        .send()
        .await
        .expect("mutable tags");
    ecr.put_image_scanning_configuration()
        .repository_name(&repository)
        .image_scanning_configuration(
            aws_sdk_ecr::types::ImageScanningConfiguration::builder()
                .scan_on_push(false)
                .build(),
        )
        .send()
        .await
        .expect("no scanning");
}

/// `aws.env` signing as `key` instead of the admin.
fn env_as(aws: &Aws, key: &AccessKey) -> Vec<(&'static str, String)> {
    aws.env
        .iter()
        .map(|(name, value)| match *name {
            "AWS_ACCESS_KEY_ID" => (*name, key.access_key_id.clone()),
            "AWS_SECRET_ACCESS_KEY" => (*name, key.secret_access_key.clone()),
            _ => (*name, value.clone()),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printed_operator_policy_runs_the_whole_lifecycle_and_nothing_more() {
    let Some(aws) = Aws::start_enforcing_iam().await else {
        return;
    };
    let deployment = Deployment::new(&deploy_yaml("0.1", "{team: ml}"));
    deployment.demo_data(800);

    // The policy, for the account STS reports for the admin's credentials.
    let printed = aws.orchestrate(&deployment, &["permissions"]).expect(0);
    let policy: serde_json::Value = serde_json::from_str(&printed.stdout).expect("the policy is JSON");
    assert!(
        printed
            .stdout
            .contains("arn:aws:iam::123456789012:role/e2e-iam-sagemaker-execution"),
        "{}",
        printed.stdout
    );
    let key = operator_with(&aws, &policy.to_string()).await;
    let operator = env_as(&aws, &key);
    // One command as the operator; a failure shows what IAM denied.
    let run = async |args: &[&str]| {
        let run = deployment.orchestrate_with(args, &operator);
        if run.code != 0 {
            let denials = aws.moto.take_denials().await;
            panic!(
                "orchestrate {args:?} exited {}: {}\ndenied: {denials:#?}",
                run.code, run.stderr
            );
        }
    };

    // The operator, with nothing but that policy, runs everything a deployment goes through.
    run(&["up"]).await;
    run(&["status"]).await;
    // A request in the raw schema: the training data's header and first rows.
    let demo = std::fs::read_to_string(deployment.path().join("train.csv")).expect("the demo data");
    let rows: Vec<&str> = demo.lines().take(4).collect();
    std::fs::write(deployment.path().join("request.csv"), rows.join("\n") + "\n").expect("write the request");
    run(&["invoke", "request.csv"]).await;
    run(&["up"]).await; // unchanged: reads only

    // Drift an administrator made, repaired by the operator: an extra trusted principal, an
    // attached managed policy, a mutable repository without scanning.
    tamper(&aws).await;
    let drifted = deployment.orchestrate_with(&["status"], &operator);
    assert_eq!(drifted.code, 2, "{}", drifted.stderr);
    run(&["up"]).await;
    run(&["status"]).await;

    // A changed hyperparameter and changed tags: a new training job, model and config, the
    // endpoint rolled forward, every resource's tags replaced.
    deployment.write_deploy_yaml(&deploy_yaml("0.2", "{owner: platform}"));
    run(&["up"]).await;
    run(&["rollback"]).await;
    run(&["down", "--yes"]).await;

    let denials = aws.moto.take_denials().await;
    assert!(denials.is_empty(), "the operator policy lacks: {denials:#?}");

    // And it grants nothing the lifecycle did not use, but what the emulator cannot exercise.
    let used = aws
        .moto
        .take_allowed_actions(&format!("arn:aws:iam::123456789012:user/{OPERATOR}"))
        .await;
    let granted: BTreeSet<String> = policy["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .flat_map(|statement| match &statement["Action"] {
            Value::String(action) => vec![action.clone()],
            Value::Array(actions) => actions
                .iter()
                .filter_map(|a| a.as_str().map(str::to_string))
                .collect(),
            other => panic!("not an action: {other}"),
        })
        .collect();
    let unused: BTreeSet<&str> = granted
        .iter()
        .map(String::as_str)
        .filter(|action| !used.contains(*action))
        .collect();
    let expected: BTreeSet<&str> = NOT_EXERCISED.iter().map(|(action, _)| *action).collect();
    assert_eq!(unused, expected, "granted but not used (used: {used:#?})");

    // The enforcement can deny: the same user cannot touch another deployment's role.
    let as_operator = aws_sdk_iam::Client::new(&aws.moto.sdk_config_as(REGION, &key).await);
    let refused = as_operator
        .get_role()
        .role_name("another-sagemaker-execution")
        .send()
        .await;
    assert!(refused.is_err(), "{refused:?}");
    let denials = aws.moto.take_denials().await;
    assert!(
        denials.iter().any(|d| d.requirement.as_deref()
            == Some("iam:GetRole on arn:aws:iam::123456789012:role/another-sagemaker-execution")),
        "{denials:#?}"
    );
}
