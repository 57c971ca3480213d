//! The execution role's inline policy, as the code renders it, linted by parliament (PyPI, pinned in
//! `.ci/setup`) with its community auditors: no CRITICAL or HIGH finding, and a MEDIUM one only
//! where the jobs need it (each allowed finding is named here with its reason). The trust policy is
//! a resource-based policy, which parliament does not lint (it reports every one without a
//! `Resource` as malformed): `iam_role`'s unit tests pin it to SageMaker for this account only.

use std::process::Command;

use aws::iam_role::{PolicyScope, execution_policy};
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

fn scope() -> PolicyScope {
    PolicyScope {
        bucket: "iot-anomaly-123456789012-eu-west-1".into(),
        repository: "iot-anomaly-model-image".into(),
        deployment: "iot-anomaly".into(),
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
