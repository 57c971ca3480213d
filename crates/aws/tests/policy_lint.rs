//! The execution role's inline policy and the operator's policy (`orchestrate permissions`), as the
//! code renders them, linted by parliament (PyPI, pinned in `.ci/setup`) with its community
//! auditors: no CRITICAL or HIGH finding, and a MEDIUM or LOW one only where the job needs it (each
//! allowed finding is named here with its reason). The trust policy is a resource-based policy,
//! which parliament does not lint (it reports every one without a `Resource` as malformed):
//! `iam_role`'s unit tests pin it to SageMaker for this account only.

use std::process::Command;

use aws::iam_role::{PolicyScope, execution_policy};
use aws::operator_policy::operator_policy;
use serde_json::{Value, json};
use testbed::{Tool, require};

/// MEDIUM findings the jobs need, by issue and the actions they name.
const NEEDED: &[(&str, &[&str], &str)] = &[(
    "CREDENTIALS_EXPOSURE",
    &["ecr:getauthorizationtoken"],
    "SageMaker logs in to ECR with the role to pull the image; the call supports no resource",
)];

/// Parliament's findings for `policy`, one JSON object each.
fn lint(policy: &Value) -> Vec<Value> {
    let output = Command::new("parliament")
        .args([
            "--string",
            &policy.to_string(),
            "--json",
            "--include-community-auditors",
        ])
        .output()
        .expect("run parliament");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.code().is_some_and(|code| code <= 1),
        "parliament failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a finding ({e}): {line}")))
        .collect()
}

fn needed(finding: &Value) -> bool {
    NEEDED.iter().any(|(issue, actions, _)| {
        finding["issue"] == *issue && finding["location"]["actions"] == json!(actions)
    })
}

/// Findings the operator's job needs, by issue and severity, with the actions they may name.
const OPERATOR_NEEDS: &[(&str, &str, &[&str], &str)] = &[
    (
        "CREDENTIALS_EXPOSURE",
        "MEDIUM",
        &["ecr:getauthorizationtoken"],
        "the image push logs in to ECR; the call supports no resource",
    ),
    (
        "PERMISSIONS_MANAGEMENT_ACTIONS",
        "MEDIUM",
        &[
            "iam:createrole",
            "iam:deleterole",
            "iam:putrolepolicy",
            "iam:deleterolepolicy",
            "iam:detachrolepolicy",
            "iam:updateassumerolepolicy",
            "iam:passrole",
            "iam:createservicelinkedrole",
            "s3:putbucketpolicy",
            "s3:deletebucketpolicy",
            "s3:putbucketpublicaccessblock",
        ],
        "orchestrate owns the execution role (scoped to its ARN, passed only to SageMaker) and the \
         bucket's TLS-only policy and public-access block (scoped to the bucket)",
    ),
    (
        "RESOURCE_STAR",
        "LOW",
        &[],
        "Application Auto Scaling's scalable-target ARNs carry an id it generates; the statement \
         is limited to SageMaker's namespace by a condition",
    ),
];

fn operator_needs(finding: &Value) -> bool {
    OPERATOR_NEEDS.iter().any(|(issue, severity, actions, _)| {
        finding["issue"] == *issue
            && finding["severity"] == *severity
            && finding["location"]["actions"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|a| a.as_str().is_some_and(|a| actions.contains(&a)))
            && (*issue != "RESOURCE_STAR"
                || finding["detail"].as_array().into_iter().flatten().all(|a| {
                    a.as_str()
                        .is_some_and(|a| a.starts_with("application-autoscaling:"))
                }))
    })
}

/// A deployment in `region`, with or without autoscaling.
fn spec(region: &str, autoscaling: bool) -> spec::Spec {
    let scaling = if autoscaling {
        "\n  autoscaling: {min: 1, max: 2, invocations_per_instance: 100}"
    } else {
        ""
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(dir.path().join("train.csv"), "a,Label\n1,Normal\n").expect("write train.csv");
    let yaml = format!(
        "version: 1\nname: iot-anomaly\ntarget: aws\nregion: {region}\ndata:\n  train: train.csv\n  label: Label\n  \
         positive: Anomaly\ntraining:\n  instance_type: ml.m5.xlarge\nendpoint:\n  instance_type: ml.m5.large{scaling}\n"
    );
    spec::parse(&yaml, "deploy.yaml", dir.path()).unwrap_or_else(|e| panic!("invalid deploy.yaml: {e:?}"))
}

fn scope() -> PolicyScope {
    PolicyScope {
        bucket: "iot-anomaly-123456789012-eu-west-1".into(),
        repository: "iot-anomaly-model-image".into(),
        deployment: "iot-anomaly".into(),
        rollback_alarms: vec![
            "iot-anomaly-invocation-5xx-errors".into(),
            "iot-anomaly-model-latency".into(),
        ],
        async_inference: true,
        data_capture: true,
    }
}

#[test]
fn the_execution_policy_has_no_finding_but_the_ones_the_jobs_need() {
    if !require(&[Tool::Parliament]) {
        return;
    }
    for region in ["eu-west-1", "cn-north-1", "us-gov-west-1"] {
        let findings = lint(&execution_policy(&scope(), "123456789012", region));
        let unexpected: Vec<&Value> = findings.iter().filter(|f| !needed(f)).collect();
        assert!(unexpected.is_empty(), "{region}: {unexpected:#?}");
        for finding in &findings {
            assert_eq!(finding["severity"], "MEDIUM", "{finding}");
        }
    }
}

#[test]
fn the_lint_catches_a_broader_policy() {
    if !require(&[Tool::Parliament]) {
        return;
    }
    let mut broad = execution_policy(&scope(), "123456789012", "eu-west-1");
    broad["Statement"]
        .as_array_mut()
        .unwrap()
        .push(json!({"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"}));
    let findings = lint(&broad);
    assert!(
        findings.iter().any(|f| !needed(f)),
        "iam:PassRole on every role must be reported: {findings:#?}"
    );
}

#[test]
fn the_operator_policy_has_no_finding_but_the_ones_its_job_needs() {
    if !require(&[Tool::Parliament]) {
        return;
    }
    for region in ["eu-west-1", "cn-north-1", "us-gov-west-1"] {
        for autoscaling in [false, true] {
            let findings = lint(&operator_policy(&spec(region, autoscaling), "123456789012"));
            let unexpected: Vec<&Value> = findings.iter().filter(|f| !operator_needs(f)).collect();
            assert!(
                unexpected.is_empty(),
                "{region}, autoscaling {autoscaling}: {unexpected:#?}"
            );
        }
    }
}

#[test]
fn the_lint_catches_a_broader_operator_policy() {
    if !require(&[Tool::Parliament]) {
        return;
    }
    let mut broad = operator_policy(&spec("eu-west-1", false), "123456789012");
    broad["Statement"]
        .as_array_mut()
        .unwrap()
        .push(json!({"Effect": "Allow", "Action": "iam:AttachRolePolicy", "Resource": "*"}));
    let findings = lint(&broad);
    assert!(
        findings.iter().any(|f| !operator_needs(f)),
        "iam:AttachRolePolicy on every role must be reported: {findings:#?}"
    );
}
