//! The SageMaker execution role: trusted by `sagemaker.amazonaws.com`, with one inline
//! least-privilege policy scoped to this deployment's bucket, repository and SageMaker log groups,
//! and the deployment's tags.
//!
//! What the policy grants access to is its [`PolicyScope`], computed by the target from the
//! deployment (never read back from anything); the document is rendered from it. Observation reports
//! the trust and the policy as checks: `trust` (SageMaker, for this account only), and `policy`, which names the scope
//! (`s3:<bucket>;ecr:<repository>;logs:…`) only when the inline policy is exactly the rendered
//! document, so an edited policy is drift.
//!
//! IAM is eventually consistent: a new role can take several seconds before SageMaker can assume it.
//! `GetRole` succeeds at once, so there is nothing to poll here; when SageMaker refuses to create a
//! training job or a model because [`is_propagation_error`] says the role is not assumable yet, that
//! kind's `apply` answers `Applied::NotYet` and the executor applies it again, for at most
//! [`PROPAGATION_TIMEOUT`].
//!
//! The role is the deployment's when it carries the deployment's tag.

use std::fmt;

use aws_sdk_iam::types::Tag;
use engine::kind::RoleSettings;
use engine::resource::{Change, Check, Lifecycle, OnChange, Outputs};
use engine::target::{Applied, Deleted, Found, KindOnTarget, TargetError, Upstream};
use engine::values::{ASYNC_FAILURE_PREFIX, ASYNC_INPUT_PREFIX, ASYNC_OUTPUT_PREFIX, CAPTURE_PREFIX, Tags};
use engine::{Kind, Observed};
use serde_json::{Value, json};

use crate::clients::{Clients, partition};
use crate::errors::{AwsError, OrAbsent};
use crate::sagemaker::OUTPUT_PREFIX;
use crate::target::AwsTarget;
use crate::training_data::DATA_PREFIX;

const KIND: Kind = Kind::Role;
/// The service the role trusts.
pub const TRUSTED_SERVICE: &str = "sagemaker.amazonaws.com";
/// The name of the role's one inline policy.
pub const POLICY_NAME: &str = "orchestrate";
/// What observation reports when the inline policy is not the one orchestrate writes.
pub const POLICY_EDITED: &str = "edited outside orchestrate";
pub const POLICY_MISSING: &str = "none";
/// How long the executor keeps applying a training job or a model whose role SageMaker cannot
/// assume yet (IAM is propagating it).
pub const PROPAGATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

/// What the inline policy grants access to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyScope {
    pub bucket: String,
    pub repository: String,
    /// The deployment name: its training jobs' and endpoint's log groups and streams.
    pub deployment: String,
    /// The alarms an endpoint update names for its automatic rollback: SageMaker reads their state
    /// with the role (`cloudwatch:DescribeAlarms`). Empty without a guarded rollout.
    pub rollback_alarms: Vec<String>,
    /// Whether the endpoint is invoked asynchronously: SageMaker then reads the requests under the
    /// bucket's `async/input/` and writes the answers and failures under `async/` with the role.
    pub async_inference: bool,
    /// Whether the endpoint captures its traffic: SageMaker writes it under the bucket's
    /// `capture/` with the role.
    pub data_capture: bool,
}

/// The scope in words, as `status` shows the wanted `policy`:
/// `s3:<bucket>;ecr:<repository>;logs:/aws/sagemaker/*<deployment>*`.
impl fmt::Display for PolicyScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "s3:{};ecr:{};logs:/aws/sagemaker/*{}*",
            self.bucket, self.repository, self.deployment
        )?;
        if !self.rollback_alarms.is_empty() {
            write!(f, ";cloudwatch:alarms {}", self.rollback_alarms.join(","))?;
        }
        if self.async_inference {
            write!(f, ";s3:{}/async/*", self.bucket)?;
        }
        if self.data_capture {
            write!(f, ";s3:{}/{CAPTURE_PREFIX}*", self.bucket)?;
        }
        Ok(())
    }
}

/// The trust policy: only SageMaker may assume the role, and only on behalf of this account (the
/// confused-deputy guard AWS documents for SageMaker: `aws:SourceAccount`; `aws:SourceArn` is left
/// out because training jobs and endpoints assume the role under different ARNs).
pub fn trust_policy(account: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": TRUSTED_SERVICE},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": account}}
        }]
    })
}

/// What observation reports of the trust policy: `sagemaker.amazonaws.com for account N` when it
/// is exactly [`trust_policy`], otherwise the services it trusts and that it was edited (an extra
/// principal, a dropped condition).
pub fn trust_state(account: &str, found: Option<&str>) -> String {
    match found {
        None => POLICY_MISSING.to_string(),
        Some(found) if is_document(&trust_policy(account), found) => wanted_trust(account),
        Some(found) => format!("{} ({POLICY_EDITED})", trusted_services(found)),
    }
}

/// The trust as `status` shows it.
pub fn wanted_trust(account: &str) -> String {
    format!("{TRUSTED_SERVICE} for account {account}")
}

/// The inline execution policy, the least the jobs and the endpoint need:
/// - S3: list the bucket only under the prefixes it reads, read the training data (`data/`) and the
///   training output (`training-output/`: the model reads its artifact), write only the training
///   output; nothing else in the bucket (not the deployment's lock);
/// - ECR: pull from the deployment's repository; `ecr:GetAuthorizationToken`, which SageMaker needs
///   to pull and which supports no resource in IAM (parliament reports it as MEDIUM);
/// - CloudWatch Logs: create the log groups SageMaker writes to, and write only this deployment's
///   streams (training jobs' streams are named after the job, `<deployment>-…`; the endpoint has a
///   log group of its own);
/// - `cloudwatch:PutMetricData`, which AWS's execution-role documentation lists for CreateTrainingJob
///   and which supports no resource: limited to SageMaker's metric namespaces by a condition;
/// - with a guarded rollout, `cloudwatch:DescribeAlarms` on exactly the rollback alarms, which
///   SageMaker's deployment guardrails documentation asks of the role;
/// - with an async endpoint, reading the requests under `async/input/` and writing the answers
///   under `async/output/` and `async/failures/`, which SageMaker does with the role;
/// - with data capture, writing under `capture/` (the endpoint), and for the drift monitor's
///   processing job reading it, writing its reports under `monitoring/` and its logs.
pub fn execution_policy(scope: &PolicyScope, account: &str, region: &str) -> Value {
    let p = partition(region);
    let bucket = format!("arn:{p}:s3:::{}", scope.bucket);
    let repository = format!("arn:{p}:ecr:{region}:{account}:repository/{}", scope.repository);
    let logs = format!("arn:{p}:logs:{region}:{account}:log-group:/aws/sagemaker");
    let name = &scope.deployment;
    let (data, output) = (DATA_PREFIX, OUTPUT_PREFIX);
    let mut policy = json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DataBucket",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": bucket,
                "Condition": {"StringLike": {"s3:prefix": [format!("{data}*"), format!("{output}*")]}}
            },
            {
                "Sid": "ReadData",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": [format!("{bucket}/{data}*"), format!("{bucket}/{output}*")]
            },
            {
                "Sid": "WriteTrainingOutput",
                "Effect": "Allow",
                "Action": "s3:PutObject",
                "Resource": format!("{bucket}/{output}*")
            },
            {
                "Sid": "ImagePull",
                "Effect": "Allow",
                "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                "Resource": repository
            },
            {
                "Sid": "RegistryLogin",
                "Effect": "Allow",
                "Action": "ecr:GetAuthorizationToken",
                "Resource": "*"
            },
            {
                "Sid": "LogGroups",
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:DescribeLogStreams"],
                "Resource": [format!("{logs}/TrainingJobs:*"), format!("{logs}/Endpoints/{name}:*")]
            },
            {
                "Sid": "LogStreams",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [
                    format!("{logs}/TrainingJobs:log-stream:{name}-*"),
                    format!("{logs}/Endpoints/{name}:log-stream:*")
                ]
            },
            {
                "Sid": "Metrics",
                "Effect": "Allow",
                "Action": "cloudwatch:PutMetricData",
                "Resource": "*",
                "Condition": {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}
            }
        ]
    });
    if !scope.rollback_alarms.is_empty() {
        let alarms: Vec<String> = scope
            .rollback_alarms
            .iter()
            .map(|alarm| format!("arn:{p}:cloudwatch:{region}:{account}:alarm:{alarm}"))
            .collect();
        policy["Statement"]
            .as_array_mut()
            .expect("the policy's statements are a list")
            .push(json!({
                "Sid": "RollbackAlarms",
                "Effect": "Allow",
                "Action": "cloudwatch:DescribeAlarms",
                "Resource": alarms
            }));
    }
    if scope.async_inference {
        let statements = policy["Statement"]
            .as_array_mut()
            .expect("the policy's statements are a list");
        statements.push(json!({
            "Sid": "AsyncRequests",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": format!("{bucket}/{ASYNC_INPUT_PREFIX}*")
        }));
        statements.push(json!({
            "Sid": "AsyncAnswers",
            "Effect": "Allow",
            "Action": "s3:PutObject",
            "Resource": [
                format!("{bucket}/{ASYNC_OUTPUT_PREFIX}*"),
                format!("{bucket}/{ASYNC_FAILURE_PREFIX}*")
            ]
        }));
    }
    if scope.data_capture {
        let monitoring = crate::monitor::MONITORING_PREFIX;
        let statements = policy["Statement"]
            .as_array_mut()
            .expect("the policy's statements are a list");
        // The monitor's processing job lists and reads the capture as its input.
        statements[0]["Condition"]["StringLike"]["s3:prefix"]
            .as_array_mut()
            .expect("the bucket statement lists its prefixes")
            .push(json!(format!("{CAPTURE_PREFIX}*")));
        statements.push(json!({
            "Sid": "CapturedTraffic",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": format!("{bucket}/{CAPTURE_PREFIX}*")
        }));
        statements.push(json!({
            "Sid": "MonitorReports",
            "Effect": "Allow",
            "Action": "s3:PutObject",
            "Resource": format!("{bucket}/{monitoring}*")
        }));
        statements.push(json!({
            "Sid": "MonitorLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:DescribeLogStreams", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [
                format!("{logs}/ProcessingJobs:*"),
                format!("{logs}/ProcessingJobs:log-stream:{name}-monitor-*")
            ]
        }));
    }
    policy
}

/// Decodes IAM's policy documents, which `GetRole` and `GetRolePolicy` return URL-encoded.
pub fn decode_document(text: &str) -> String {
    if text.trim_start().starts_with('{') {
        return text.to_string();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a policy document as IAM returns it (perhaps URL-encoded) is exactly `expected`.
fn is_document(expected: &Value, found: &str) -> bool {
    serde_json::from_str::<Value>(&decode_document(found)).is_ok_and(|have| have == *expected)
}

/// The services a trust policy lets assume the role, sorted and comma-separated.
pub fn trusted_services(document: &str) -> String {
    let Ok(document) = serde_json::from_str::<Value>(&decode_document(document)) else {
        return String::new();
    };
    let mut services: Vec<String> = list(&document["Statement"])
        .into_iter()
        .filter(|s| s["Effect"] == "Allow")
        .flat_map(|s| list(&s["Principal"]["Service"]))
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    services.sort();
    services.dedup();
    services.join(",")
}

fn list(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// Whether a SageMaker error says the role is not assumable yet (IAM has not propagated it).
pub fn is_propagation_error(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("could not assume role")
        || message.contains("not authorized to assume")
        || message.contains("unable to assume role")
}

/// What observation reports for the inline policy (`found`, as IAM returns it, `None` when there is
/// none): the scope when the policy is exactly `expected`, the document rendered for it.
pub fn policy_state(scope: &PolicyScope, expected: &Value, found: Option<&str>) -> String {
    match found {
        None => POLICY_MISSING.to_string(),
        Some(found) if is_document(expected, found) => scope.to_string(),
        Some(_) => POLICY_EDITED.to_string(),
    }
}

/// What the module enforces, as found: `trust`, `policy`, and `other_policies` (none: an extra
/// inline policy or any attached managed policy, AdministratorAccess say, would widen the role
/// beyond the one orchestrate writes).
pub fn checks(
    account: &str,
    scope: &PolicyScope,
    trust: &str,
    policy: &str,
    others: &OtherPolicies,
) -> Vec<Check> {
    vec![
        Check::new("trust", wanted_trust(account), trust, OnChange::Update),
        Check::new("policy", scope, policy, OnChange::Update),
        Check::new(
            "other_policies",
            OtherPolicies::default(),
            others,
            OnChange::Update,
        ),
    ]
}

/// The role's policies besides orchestrate's inline one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OtherPolicies {
    /// Names of other inline policies.
    pub inline: Vec<String>,
    /// ARNs of attached managed policies.
    pub attached: Vec<String>,
}

/// `none`, or each policy by kind: `inline debug, managed arn:aws:iam::aws:policy/AdministratorAccess`.
impl fmt::Display for OtherPolicies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.inline.is_empty() && self.attached.is_empty() {
            return f.write_str(POLICY_MISSING);
        }
        let inline = self.inline.iter().map(|name| format!("inline {name}"));
        let attached = self.attached.iter().map(|arn| format!("managed {arn}"));
        f.write_str(&inline.chain(attached).collect::<Vec<_>>().join(", "))
    }
}

/// The role's other policies; `None` when the role is gone.
async fn other_policies(clients: &Clients, name: &str) -> Result<Option<OtherPolicies>, AwsError> {
    let iam = &clients.iam;
    let Some(inline) = iam
        .list_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(|e| AwsError::sdk("list the policies of", KIND, name, e))
        .or_absent()?
    else {
        return Ok(None);
    };
    let Some(attached) = iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(|e| AwsError::sdk("list the managed policies of", KIND, name, e))
        .or_absent()?
    else {
        return Ok(None);
    };
    let mut others = OtherPolicies {
        inline: inline
            .policy_names()
            .iter()
            .filter(|policy| *policy != POLICY_NAME)
            .cloned()
            .collect(),
        attached: attached
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn().map(str::to_string))
            .collect(),
    };
    others.inline.sort();
    others.attached.sort();
    Ok(Some(others))
}

/// Deletes the other inline policies and detaches the managed ones.
async fn remove_other_policies(
    clients: &Clients,
    name: &str,
    others: &OtherPolicies,
) -> Result<(), AwsError> {
    let iam = &clients.iam;
    for policy in &others.inline {
        iam.delete_role_policy()
            .role_name(name)
            .policy_name(policy)
            .send()
            .await
            .map_err(|e| AwsError::sdk("delete a policy of", KIND, name, e))
            .or_absent()?;
        tracing::warn!(
            role = name,
            policy,
            "deleted an inline policy orchestrate did not write"
        );
    }
    for arn in &others.attached {
        iam.detach_role_policy()
            .role_name(name)
            .policy_arn(arn)
            .send()
            .await
            .map_err(|e| AwsError::sdk("detach a policy from", KIND, name, e))
            .or_absent()?;
        tracing::warn!(
            role = name,
            policy = arn,
            "detached a managed policy orchestrate did not attach"
        );
    }
    Ok(())
}

fn iam_tags(name: &str, wanted: &Tags) -> Result<Vec<Tag>, AwsError> {
    wanted
        .iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| AwsError::other("tag", KIND, name, e))
        })
        .collect()
}

/// Reads the role: its tags, and the checks of its trust and its inline policy (against the
/// document rendered for `scope`).
pub async fn observe(clients: &Clients, name: &str, scope: &PolicyScope) -> Result<Observed, AwsError> {
    let Some(role) = clients
        .iam
        .get_role()
        .role_name(name)
        .send()
        .await
        .map_err(|e| AwsError::sdk("find", KIND, name, e))
        .or_absent()?
    else {
        return Ok(Observed::Absent);
    };
    let account = clients.account().await?;
    let trust = trust_state(account, role.role().and_then(|r| r.assume_role_policy_document()));
    let tag_list = clients
        .iam
        .list_role_tags()
        .role_name(name)
        .send()
        .await
        .map_err(|e| AwsError::sdk("read the tags of", KIND, name, e))?;
    let tags: Tags = tag_list.tags().iter().map(|t| (t.key(), t.value())).collect();
    let found = match clients
        .iam
        .get_role_policy()
        .role_name(name)
        .policy_name(POLICY_NAME)
        .send()
        .await
    {
        Ok(out) => Some(out.policy_document().to_string()),
        Err(e) => {
            let e = AwsError::sdk("read the policy of", KIND, name, e);
            if !e.is_not_found() {
                return Err(e);
            }
            None
        }
    };
    let expected = execution_policy(scope, account, clients.region());
    let policy = policy_state(scope, &expected, found.as_deref());
    let Some(others) = other_policies(clients, name).await? else {
        return Ok(Observed::Absent);
    };
    Ok(Observed::present(name, RoleSettings { tags }, Lifecycle::Ready)
        .with_checks(checks(account, scope, &trust, &policy, &others)))
}

/// Creates the role if absent, then sets its trust policy, its inline policy (rendered for `scope`)
/// and tags (each idempotent).
pub async fn apply(
    clients: &Clients,
    name: &str,
    settings: &RoleSettings,
    scope: &PolicyScope,
) -> Result<(), AwsError> {
    let iam = &clients.iam;
    let wanted_tags = &settings.tags;
    let trust = trust_policy(clients.account().await?).to_string();
    let created = iam
        .create_role()
        .role_name(name)
        .assume_role_policy_document(&trust)
        .description("SageMaker execution role managed by orchestrate")
        .set_tags(Some(iam_tags(name, wanted_tags)?))
        .send()
        .await;
    match created {
        Ok(_) => tracing::info!(role = name, "created role"),
        Err(e) => {
            let e = AwsError::sdk("create", KIND, name, e);
            if !e.has_code("EntityAlreadyExists") {
                return Err(e);
            }
            iam.update_assume_role_policy()
                .role_name(name)
                .policy_document(&trust)
                .send()
                .await
                .map_err(|e| AwsError::sdk("set the trust policy of", KIND, name, e))?;
            let have = iam
                .list_role_tags()
                .role_name(name)
                .send()
                .await
                .map_err(|e| AwsError::sdk("read the tags of", KIND, name, e))?;
            let have: Tags = have.tags().iter().map(|t| (t.key(), t.value())).collect();
            let removed = have.removed_from(wanted_tags);
            if !removed.is_empty() {
                iam.untag_role()
                    .role_name(name)
                    .set_tag_keys(Some(removed))
                    .send()
                    .await
                    .map_err(|e| AwsError::sdk("untag", KIND, name, e))?;
            }
            iam.tag_role()
                .role_name(name)
                .set_tags(Some(iam_tags(name, wanted_tags)?))
                .send()
                .await
                .map_err(|e| AwsError::sdk("tag", KIND, name, e))?;
        }
    }
    let document = execution_policy(scope, clients.account().await?, clients.region());
    iam.put_role_policy()
        .role_name(name)
        .policy_name(POLICY_NAME)
        .policy_document(document.to_string())
        .send()
        .await
        .map_err(|e| AwsError::sdk("set the policy of", KIND, name, e))?;
    if let Some(others) = other_policies(clients, name).await? {
        remove_other_policies(clients, name, &others).await?;
    }
    Ok(())
}

/// Deletes the role's inline policies, detaches its managed ones, then deletes the role. Deleting a
/// role that is gone succeeds.
pub async fn delete(clients: &Clients, name: &str) -> Result<(), AwsError> {
    let iam = &clients.iam;
    let gone = |e: AwsError| if e.is_not_found() { Ok(()) } else { Err(e) };
    let policies = match iam.list_role_policies().role_name(name).send().await {
        Ok(out) => out.policy_names().to_vec(),
        Err(e) => return gone(AwsError::sdk("list the policies of", KIND, name, e)),
    };
    for policy in policies {
        if let Err(e) = iam
            .delete_role_policy()
            .role_name(name)
            .policy_name(&policy)
            .send()
            .await
        {
            gone(AwsError::sdk("delete a policy of", KIND, name, e))?;
        }
    }
    let attached = match iam.list_attached_role_policies().role_name(name).send().await {
        Ok(out) => out.attached_policies().to_vec(),
        Err(e) => return gone(AwsError::sdk("list the managed policies of", KIND, name, e)),
    };
    for policy in attached.iter().filter_map(|p| p.policy_arn()) {
        if let Err(e) = iam
            .detach_role_policy()
            .role_name(name)
            .policy_arn(policy)
            .send()
            .await
        {
            gone(AwsError::sdk("detach a policy from", KIND, name, e))?;
        }
    }
    match iam.delete_role().role_name(name).send().await {
        Ok(_) => Ok(()),
        Err(e) => gone(AwsError::sdk("delete", KIND, name, e)),
    }
}

/// The SageMaker execution role on AWS.
#[derive(Debug)]
pub struct IamRole;

impl KindOnTarget<AwsTarget> for IamRole {
    type Settings = RoleSettings;

    async fn observe(target: &AwsTarget, name: &str, _: &RoleSettings) -> Result<Observed, TargetError> {
        Ok(observe(&target.clients, name, &target.policy_scope()).await?)
    }

    async fn apply(
        target: &AwsTarget,
        name: &str,
        settings: &RoleSettings,
        _: &Change,
        _: Upstream<'_>,
    ) -> Result<Applied, TargetError> {
        apply(&target.clients, name, settings, &target.policy_scope()).await?;
        Ok(Applied::Ready(Outputs::None))
    }

    async fn delete(target: &AwsTarget, name: &str) -> Result<Deleted, TargetError> {
        delete(&target.clients, name).await?;
        Ok(Deleted::Gone)
    }

    /// The deployment's role, when it is tagged as the deployment's.
    async fn owned(target: &AwsTarget) -> Result<Vec<Found>, TargetError> {
        let role = target.spec.role_name();
        let tags = target
            .clients
            .iam
            .list_role_tags()
            .role_name(&role)
            .send()
            .await
            .map_err(|e| AwsError::sdk("read the tags of", KIND, &role, e))
            .or_absent()?;
        let ours = tags.is_some_and(|out| target.is_ours(out.tags().iter().map(|t| (t.key(), t.value()))));
        Ok(ours.then(|| Found::new(KIND, role)).into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> PolicyScope {
        PolicyScope {
            bucket: "iot-123-us-east-1".into(),
            repository: "iot-anomaly".into(),
            deployment: "iot-anomaly".into(),
            rollback_alarms: vec!["iot-anomaly-model-latency".into()],
            async_inference: false,
            data_capture: false,
        }
    }

    #[test]
    fn the_scope_reads_as_what_the_policy_grants() {
        assert_eq!(
            scope().to_string(),
            "s3:iot-123-us-east-1;ecr:iot-anomaly;logs:/aws/sagemaker/*iot-anomaly*;\
             cloudwatch:alarms iot-anomaly-model-latency"
        );
        let unguarded = PolicyScope {
            rollback_alarms: Vec::new(),
            ..scope()
        };
        assert_eq!(
            unguarded.to_string(),
            "s3:iot-123-us-east-1;ecr:iot-anomaly;logs:/aws/sagemaker/*iot-anomaly*"
        );
        let policy = execution_policy(&unguarded, "123456789012", "us-east-1");
        assert!(!policy.to_string().contains("DescribeAlarms"), "{policy}");
        assert!(!policy.to_string().contains("async/"), "{policy}");
    }

    #[test]
    fn async_and_captured_endpoints_read_their_requests_and_write_their_answers_and_traffic_only() {
        let scope = PolicyScope {
            async_inference: true,
            data_capture: true,
            ..scope()
        };
        assert!(
            scope
                .to_string()
                .ends_with(";s3:iot-123-us-east-1/async/*;s3:iot-123-us-east-1/capture/*"),
            "{scope}"
        );
        let policy = execution_policy(&scope, "123456789012", "us-east-1");
        let statement = |sid: &str| {
            policy["Statement"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["Sid"] == sid)
                .cloned()
                .unwrap_or_else(|| panic!("no {sid} statement in {policy}"))
        };
        let requests = statement("AsyncRequests");
        assert_eq!(requests["Action"], "s3:GetObject");
        assert_eq!(
            requests["Resource"],
            "arn:aws:s3:::iot-123-us-east-1/async/input/*"
        );
        let captured = statement("CapturedTraffic");
        assert_eq!(captured["Action"], json!(["s3:GetObject", "s3:PutObject"]));
        assert_eq!(captured["Resource"], "arn:aws:s3:::iot-123-us-east-1/capture/*");
        assert_eq!(
            statement("MonitorReports")["Resource"],
            "arn:aws:s3:::iot-123-us-east-1/monitoring/*"
        );
        assert!(
            statement("DataBucket")["Condition"]["StringLike"]["s3:prefix"]
                .as_array()
                .unwrap()
                .contains(&json!("capture/*")),
            "{policy}"
        );
        let answers = statement("AsyncAnswers");
        assert_eq!(answers["Action"], "s3:PutObject");
        assert_eq!(
            answers["Resource"],
            json!([
                "arn:aws:s3:::iot-123-us-east-1/async/output/*",
                "arn:aws:s3:::iot-123-us-east-1/async/failures/*"
            ])
        );
    }

    #[test]
    fn the_role_reads_exactly_the_rollback_alarms() {
        let policy = execution_policy(&scope(), "123456789012", "us-east-1");
        let statement = policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Sid"] == "RollbackAlarms")
            .expect("a statement for the rollback alarms");
        assert_eq!(statement["Action"], "cloudwatch:DescribeAlarms");
        assert_eq!(
            statement["Resource"],
            json!(["arn:aws:cloudwatch:us-east-1:123456789012:alarm:iot-anomaly-model-latency"])
        );
    }

    #[test]
    fn only_the_rendered_document_reads_as_the_scope() {
        let scope = scope();
        let expected = execution_policy(&scope, "123456789012", "us-east-1");
        let written = expected.to_string();
        assert_eq!(policy_state(&scope, &expected, Some(&written)), scope.to_string());
        // IAM returns documents URL-encoded.
        let encoded: String = written
            .bytes()
            .map(|b| match b {
                b'{' | b'}' | b'"' | b':' | b',' | b'[' | b']' | b'/' | b'*' => format!("%{b:02X}"),
                _ => (b as char).to_string(),
            })
            .collect();
        assert_eq!(policy_state(&scope, &expected, Some(&encoded)), scope.to_string());
        let other = execution_policy(&scope, "210987654321", "us-east-1").to_string();
        assert_eq!(policy_state(&scope, &expected, Some(&other)), POLICY_EDITED);
        assert_eq!(policy_state(&scope, &expected, Some("not json")), POLICY_EDITED);
        assert_eq!(policy_state(&scope, &expected, None), POLICY_MISSING);

        let account = "123456789012";
        let trust = trust_state(account, Some(&trust_policy(account).to_string()));
        let admin = OtherPolicies {
            inline: vec!["debug".into()],
            attached: vec!["arn:aws:iam::aws:policy/AdministratorAccess".into()],
        };
        let fields: Vec<(&str, bool)> = checks(account, &scope, &trust, POLICY_EDITED, &admin)
            .iter()
            .map(|c| (c.field, c.want == c.have))
            .collect();
        assert_eq!(
            fields,
            [("trust", true), ("policy", false), ("other_policies", false)]
        );
        assert_eq!(
            admin.to_string(),
            "inline debug, managed arn:aws:iam::aws:policy/AdministratorAccess"
        );
        assert_eq!(OtherPolicies::default().to_string(), POLICY_MISSING);
    }

    #[test]
    fn no_s3_or_ecr_action_has_a_wildcard_resource() {
        let policy = execution_policy(&scope(), "123456789012", "us-east-1");
        for statement in policy["Statement"].as_array().unwrap() {
            let actions: Vec<&str> = list(&statement["Action"])
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            let resources: Vec<&str> = list(&statement["Resource"])
                .iter()
                .map(|r| r.as_str().unwrap())
                .collect();
            for resource in &resources {
                assert!(resource.starts_with("arn:") || *resource == "*");
                if resource.contains('*') {
                    // Only object keys, log streams and the two unscopable calls (the ECR login;
                    // CloudWatch metrics, limited to SageMaker's namespaces) may use wildcards.
                    let scoped = resource.ends_with("iot-123-us-east-1/data/*")
                        || resource.ends_with("iot-123-us-east-1/training-output/*")
                        || resource.contains(":log-group:/aws/sagemaker/");
                    let metrics = actions == ["cloudwatch:PutMetricData"]
                        && statement["Condition"]["StringLike"]["cloudwatch:namespace"] == "/aws/sagemaker/*";
                    assert!(
                        scoped || metrics || actions == ["ecr:GetAuthorizationToken"],
                        "{actions:?} on {resource}"
                    );
                }
            }
            for action in &actions {
                assert!(!action.contains('*'), "wildcard action {action}");
            }
        }
        let text = policy.to_string();
        assert!(text.contains("arn:aws:ecr:us-east-1:123456789012:repository/iot-anomaly"));
        assert!(text.contains("log-stream:iot-anomaly-*"));
    }

    #[test]
    fn the_bucket_is_read_and_written_only_under_the_prefixes_the_jobs_use() {
        let policy = execution_policy(&scope(), "123456789012", "us-east-1");
        let statements = policy["Statement"].as_array().unwrap();
        let on = |action: &str| -> Vec<String> {
            statements
                .iter()
                .filter(|s| list(&s["Action"]).iter().any(|a| *a == action))
                .flat_map(|s| {
                    list(&s["Resource"])
                        .into_iter()
                        .map(|r| r.as_str().unwrap().to_string())
                })
                .collect()
        };
        let bucket = "arn:aws:s3:::iot-123-us-east-1";
        assert_eq!(on("s3:PutObject"), [format!("{bucket}/training-output/*")]);
        assert_eq!(
            on("s3:GetObject"),
            [format!("{bucket}/data/*"), format!("{bucket}/training-output/*")]
        );
        let listing = statements
            .iter()
            .find(|s| s["Action"] == "s3:ListBucket")
            .unwrap();
        assert_eq!(
            listing["Condition"]["StringLike"]["s3:prefix"],
            json!(["data/*", "training-output/*"])
        );
        // The deployment's lock lies outside every prefix the role reaches.
        assert!(
            !crate::lock::LOCK_KEY.starts_with(DATA_PREFIX)
                && !crate::lock::LOCK_KEY.starts_with(OUTPUT_PREFIX)
        );
        // Log streams: this deployment's only.
        assert_eq!(
            on("logs:PutLogEvents"),
            [
                "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/TrainingJobs:log-stream:iot-anomaly-*",
                "arn:aws:logs:us-east-1:123456789012:log-group:/aws/sagemaker/Endpoints/iot-anomaly:log-stream:*"
            ]
        );
    }

    #[test]
    fn the_trust_is_sagemaker_for_this_account_only() {
        let account = "123456789012";
        let trust = trust_policy(account);
        assert_eq!(trusted_services(&trust.to_string()), TRUSTED_SERVICE);
        assert_eq!(
            trust["Statement"][0]["Condition"]["StringEquals"]["aws:SourceAccount"],
            account
        );
        assert_eq!(
            trust_state(account, Some(&trust.to_string())),
            wanted_trust(account)
        );
        // An extra principal, or the condition dropped, is drift.
        let mut extra = trust.clone();
        extra["Statement"][0]["Principal"]["Service"] = json!([TRUSTED_SERVICE, "ec2.amazonaws.com"]);
        assert_eq!(
            trust_state(account, Some(&extra.to_string())),
            format!("ec2.amazonaws.com,sagemaker.amazonaws.com ({POLICY_EDITED})")
        );
        let mut unconditioned = trust.clone();
        unconditioned["Statement"][0]
            .as_object_mut()
            .unwrap()
            .remove("Condition");
        assert_ne!(
            trust_state(account, Some(&unconditioned.to_string())),
            wanted_trust(account)
        );
        assert_ne!(
            trust_state("210987654321", Some(&trust.to_string())),
            wanted_trust("210987654321")
        );
        let encoded = "%7B%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%5B%22sagemaker.amazonaws.com%22%2C%22ec2.amazonaws.com%22%5D%7D%7D%5D%7D";
        assert_eq!(
            trusted_services(encoded),
            "ec2.amazonaws.com,sagemaker.amazonaws.com"
        );
    }

    #[test]
    fn documents_are_url_decoded_when_encoded() {
        assert_eq!(decode_document("%7B%22a%22%3A1%7D"), "{\"a\":1}");
        assert_eq!(decode_document("{\"a\":\"%7B\"}"), "{\"a\":\"%7B\"}");
        assert_eq!(decode_document("100%"), "100%");
    }

    #[test]
    fn propagation_errors_are_recognised() {
        assert!(is_propagation_error(
            "Could not assume role arn:aws:iam::1:role/x. Please ensure"
        ));
        assert!(!is_propagation_error("Requested resource not found"));
    }
}
