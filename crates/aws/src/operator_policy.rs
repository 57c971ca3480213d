//! The least-privilege IAM policy the *operator* needs to run `up`, `status`, `down`, `plan`,
//! `invoke` and `rollback` for one deployment (`orchestrate permissions` prints it), so a platform
//! team can hand exactly that to CI instead of an administrator's key.
//!
//! Every statement is scoped to the deployment's own resources, named as the target names them:
//! the bucket `<name>-<account>-<region>` and its objects, the role `<name>-sagemaker-execution`,
//! the repository `<name>-model-image`, training jobs `<name>-<12 hex>-<attempt>`, models and
//! endpoint configs `<name>-<12 hex>` (the `?` wildcards match exactly the 12 hash digits, so a
//! deployment named `iot` cannot reach `iot-prod`'s resources), the endpoint `<name>` and its
//! training logs. What IAM cannot scope to a resource is explained beside its statement: the ECR
//! login token, SageMaker's listings and tagging (IAM's tables list no resource for them), and
//! Application Auto Scaling, whose scalable-target ARNs carry an id it generates (limited to
//! SageMaker's namespace by a condition instead).
//!
//! `iam:PassRole` goes only to SageMaker (`iam:PassedToService`). The operator may write the
//! execution role's inline policy (orchestrate repairs it): where CI is trusted less than the role,
//! add a permissions boundary to the role, which this policy does not let the operator remove.
//!
//! Proven independently of this module: the end-to-end suite runs the whole lifecycle on the
//! emulator as an IAM user holding only this policy, with every request's action and resource
//! derived from AWS's own tables (the testbed's `iam_policy_check.py`), and parliament lints it.

use serde_json::{Value, json};
use spec::Spec;

use crate::clients::partition;
use crate::endpoint_autoscaling;
use crate::iam_role::TRUSTED_SERVICE;
use crate::sagemaker_training_job::LOG_GROUP;

/// The `?` wildcards matching the 12 hex digits of a content hash in a name.
const HASH12: &str = "????????????";
/// The service name of Application Auto Scaling's service-linked role for SageMaker variants.
const SCALING_SERVICE: &str = "sagemaker.application-autoscaling.amazonaws.com";

/// The operator's policy for `spec`'s deployment in `account`.
pub fn operator_policy(spec: &Spec, account: &str) -> Value {
    let region = spec.region.as_str();
    let p = partition(region);
    let name = spec.name.as_str();
    let bucket = format!("arn:{p}:s3:::{}", spec.bucket_name(account));
    let role = format!("arn:{p}:iam::{account}:role/{}", spec.role_name());
    let repository = format!(
        "arn:{p}:ecr:{region}:{account}:repository/{}",
        spec.repository_name()
    );
    let sagemaker = format!("arn:{p}:sagemaker:{region}:{account}");
    let training_jobs = format!("{sagemaker}:training-job/{name}-{HASH12}-*");
    let endpoint = format!("{sagemaker}:endpoint/{name}");
    let log_group = format!("arn:{p}:logs:{region}:{account}:log-group:{LOG_GROUP}");

    let mut statements = vec![
        json!({
            "Sid": "DataBucket",
            "Effect": "Allow",
            "Action": [
                "s3:CreateBucket", "s3:DeleteBucket", "s3:ListBucket", "s3:ListBucketVersions",
                "s3:GetBucketLocation", "s3:GetBucketTagging", "s3:PutBucketTagging",
                "s3:GetBucketVersioning", "s3:PutBucketVersioning",
                "s3:GetEncryptionConfiguration", "s3:PutEncryptionConfiguration",
                "s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy",
                "s3:GetBucketPublicAccessBlock", "s3:PutBucketPublicAccessBlock"
            ],
            "Resource": bucket
        }),
        // The deployment owns every object in its bucket: training data, training output, the lock,
        // async requests and answers.
        json!({
            "Sid": "DataBucketObjects",
            "Effect": "Allow",
            "Action": [
                "s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"
            ],
            "Resource": format!("{bucket}/*")
        }),
        json!({
            "Sid": "ExecutionRole",
            "Effect": "Allow",
            "Action": [
                "iam:CreateRole", "iam:DeleteRole", "iam:GetRole", "iam:UpdateAssumeRolePolicy",
                "iam:TagRole", "iam:UntagRole", "iam:ListRoleTags",
                "iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy", "iam:ListRolePolicies",
                "iam:ListAttachedRolePolicies", "iam:DetachRolePolicy"
            ],
            "Resource": role
        }),
        json!({
            "Sid": "PassExecutionRoleToSageMaker",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": role,
            "Condition": {"StringEquals": {"iam:PassedToService": TRUSTED_SERVICE}}
        }),
        json!({
            "Sid": "ImageRepository",
            "Effect": "Allow",
            "Action": [
                "ecr:CreateRepository", "ecr:DeleteRepository", "ecr:DescribeRepositories",
                "ecr:PutImageScanningConfiguration", "ecr:PutImageTagMutability",
                "ecr:TagResource", "ecr:UntagResource", "ecr:ListTagsForResource",
                "ecr:DescribeImages", "ecr:ListImages", "ecr:BatchGetImage", "ecr:BatchDeleteImage",
                "ecr:PutImage", "ecr:BatchCheckLayerAvailability",
                "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload"
            ],
            "Resource": repository
        }),
        // The registry login: IAM's tables list no resource for it (parliament reports it as MEDIUM).
        json!({
            "Sid": "RegistryLogin",
            "Effect": "Allow",
            "Action": "ecr:GetAuthorizationToken",
            "Resource": "*"
        }),
        json!({
            "Sid": "TrainingJobs",
            "Effect": "Allow",
            "Action": ["sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob", "sagemaker:StopTrainingJob"],
            "Resource": training_jobs
        }),
        json!({
            "Sid": "Models",
            "Effect": "Allow",
            "Action": ["sagemaker:CreateModel", "sagemaker:DescribeModel", "sagemaker:DeleteModel"],
            "Resource": format!("{sagemaker}:model/{name}-{HASH12}")
        }),
        json!({
            "Sid": "EndpointConfigs",
            "Effect": "Allow",
            "Action": [
                "sagemaker:CreateEndpointConfig", "sagemaker:DescribeEndpointConfig",
                "sagemaker:DeleteEndpointConfig"
            ],
            "Resource": format!("{sagemaker}:endpoint-config/{name}-{HASH12}")
        }),
        // `orchestrate monitor`: a processing job per run, `<name>-monitor-<time>`.
        json!({
            "Sid": "MonitorRuns",
            "Effect": "Allow",
            "Action": ["sagemaker:CreateProcessingJob", "sagemaker:DescribeProcessingJob"],
            "Resource": format!("{sagemaker}:processing-job/{name}-monitor-*")
        }),
        // UpdateEndpoint names the endpoint config it switches to: it needs both.
        json!({
            "Sid": "Endpoint",
            "Effect": "Allow",
            "Action": [
                "sagemaker:CreateEndpoint", "sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpoint",
                "sagemaker:DeleteEndpoint", "sagemaker:InvokeEndpoint",
                "sagemaker:InvokeEndpointAsync"
            ],
            "Resource": [endpoint.clone(), format!("{sagemaker}:endpoint-config/{name}-{HASH12}")]
        }),
        // Discovery (what carries the deployment's tag) and tagging: IAM's tables list no resource
        // for SageMaker's listings or for AddTags, DeleteTags and ListTags.
        json!({
            "Sid": "SageMakerListingsAndTags",
            "Effect": "Allow",
            "Action": [
                "sagemaker:ListTrainingJobs", "sagemaker:ListModels", "sagemaker:ListEndpointConfigs",
                "sagemaker:ListTags", "sagemaker:AddTags", "sagemaker:DeleteTags"
            ],
            "Resource": "*"
        }),
        json!({
            "Sid": "TrainingLogs",
            "Effect": "Allow",
            "Action": ["logs:DescribeLogStreams", "logs:GetLogEvents"],
            "Resource": [
                log_group.clone(),
                format!("{log_group}:log-stream:{name}-{HASH12}-*")
            ]
        }),
    ];
    if spec.endpoint.autoscaling.is_some() {
        statements.extend(scaling_statements(p, region, account, name, &endpoint));
    }
    statements.extend(rollout_statements(spec, p, region, account));
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// What the rollback alarms need, for every deployment: discovery lists the owned alarms by the
/// prefix `<name>-` (`DescribeAlarms`, which IAM authorizes against the alarm resource `*` of the
/// account's region) and a guarded rollout reads its alarms' states; the owned alarms
/// (`<name>-<metric>`) are managed by name. Granted whatever `endpoint.rollout` says, so `up` after
/// the section is removed, and `down`, can still delete the alarms an earlier deploy.yaml created.
fn rollout_statements(spec: &Spec, p: &str, region: &str, account: &str) -> Vec<Value> {
    let alarm = |name: &str| format!("arn:{p}:cloudwatch:{region}:{account}:alarm:{name}");
    let owned: Vec<String> = engine::values::AlarmMetric::ALL
        .iter()
        .map(|&metric| alarm(&engine::desired::alarm_name(spec.name.as_str(), metric)))
        .collect();
    vec![
        json!({
            "Sid": "AlarmReads",
            "Effect": "Allow",
            "Action": "cloudwatch:DescribeAlarms",
            "Resource": alarm("*")
        }),
        json!({
            "Sid": "RollbackAlarms",
            "Effect": "Allow",
            "Action": [
                "cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms",
                "cloudwatch:TagResource", "cloudwatch:UntagResource", "cloudwatch:ListTagsForResource"
            ],
            "Resource": owned
        }),
    ]
}

/// What autoscaling the endpoint needs: Application Auto Scaling on SageMaker's namespace, its
/// service-linked role, the target-tracking alarms it creates for the endpoint, and the endpoint
/// calls it makes on the caller's behalf (AWS's "Prerequisites for auto scaling" for SageMaker).
fn scaling_statements(p: &str, region: &str, account: &str, name: &str, endpoint: &str) -> Vec<Value> {
    let resource = endpoint_autoscaling::resource_id(name);
    vec![
        // Scalable-target ARNs end with an id Application Auto Scaling generates: no resource to
        // name before it exists, so the statement is limited to SageMaker's namespace instead.
        json!({
            "Sid": "EndpointScaling",
            "Effect": "Allow",
            "Action": [
                "application-autoscaling:RegisterScalableTarget",
                "application-autoscaling:DeregisterScalableTarget",
                "application-autoscaling:PutScalingPolicy"
            ],
            "Resource": "*",
            "Condition": {"StringEquals": {"application-autoscaling:service-namespace": "sagemaker"}}
        }),
        json!({
            "Sid": "EndpointScalingReads",
            "Effect": "Allow",
            "Action": [
                "application-autoscaling:DescribeScalableTargets",
                "application-autoscaling:DescribeScalingPolicies"
            ],
            "Resource": "*"
        }),
        json!({
            "Sid": "ScalingServiceLinkedRole",
            "Effect": "Allow",
            "Action": "iam:CreateServiceLinkedRole",
            "Resource": format!(
                "arn:{p}:iam::{account}:role/aws-service-role/{SCALING_SERVICE}/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpointVariant"
            ),
            "Condition": {"StringEquals": {"iam:AWSServiceName": SCALING_SERVICE}}
        }),
        json!({
            "Sid": "ScalingAlarms",
            "Effect": "Allow",
            "Action": ["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"],
            "Resource": format!("arn:{p}:cloudwatch:{region}:{account}:alarm:TargetTracking-{resource}-*")
        }),
        json!({
            "Sid": "ScaledEndpoint",
            "Effect": "Allow",
            "Action": "sagemaker:UpdateEndpointWeightsAndCapacities",
            "Resource": endpoint
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(autoscaling: bool) -> Spec {
        let scaling = if autoscaling {
            "\n  autoscaling: {min: 1, max: 2, invocations_per_instance: 100}"
        } else {
            ""
        };
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(dir.path().join("train.csv"), "a,Label\n1,Normal\n").expect("write train.csv");
        let yaml = format!(
            "version: 1\nname: iot\ntarget: aws\nregion: eu-west-1\ndata:\n  train: train.csv\n  label: Label\n  \
             positive: Anomaly\ntraining:\n  instance_type: ml.m5.xlarge\nendpoint:\n  instance_type: ml.m5.large{scaling}\n"
        );
        spec::parse(&yaml, "deploy.yaml", dir.path()).unwrap_or_else(|e| panic!("invalid deploy.yaml: {e:?}"))
    }

    fn statement<'a>(policy: &'a Value, sid: &str) -> &'a Value {
        policy["Statement"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["Sid"] == sid))
            .unwrap_or_else(|| panic!("no statement {sid}"))
    }

    #[test]
    fn sagemaker_resources_match_the_hash_digits_only() {
        let policy = operator_policy(&spec(false), "123456789012");
        assert_eq!(
            statement(&policy, "Models")["Resource"],
            "arn:aws:sagemaker:eu-west-1:123456789012:model/iot-????????????"
        );
        assert_eq!(
            statement(&policy, "TrainingJobs")["Resource"],
            "arn:aws:sagemaker:eu-west-1:123456789012:training-job/iot-????????????-*"
        );
    }

    #[test]
    fn pass_role_goes_only_to_sagemaker() {
        let policy = operator_policy(&spec(false), "123456789012");
        let pass = statement(&policy, "PassExecutionRoleToSageMaker");
        assert_eq!(
            pass["Resource"],
            "arn:aws:iam::123456789012:role/iot-sagemaker-execution"
        );
        assert_eq!(
            pass["Condition"]["StringEquals"]["iam:PassedToService"],
            "sagemaker.amazonaws.com"
        );
    }

    #[test]
    fn scaling_permissions_only_with_autoscaling() {
        let without = operator_policy(&spec(false), "123456789012");
        let sids = |p: &Value| -> Vec<String> {
            p["Statement"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| s["Sid"].as_str().unwrap_or_default().to_string())
                .collect()
        };
        assert!(!sids(&without).iter().any(|s| s.contains("Scal")));
        let with = operator_policy(&spec(true), "123456789012");
        assert!(sids(&with).contains(&"EndpointScaling".to_string()));
        assert_eq!(
            statement(&with, "ScalingAlarms")["Resource"],
            "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:TargetTracking-endpoint/iot/variant/AllTraffic-*"
        );
    }
}
