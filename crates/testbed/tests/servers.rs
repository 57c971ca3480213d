//! The testbed's servers, started for real: moto with the launcher's patch and request log, the
//! registry with its authentication and access log. Skipped (with a note) when a program is missing,
//! outside CI.

use aws_sdk_s3::primitives::ByteStream;
use testbed::{Moto, Registry, mutating};

const BUCKET: &str = "testbed-bucket";

fn s3(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

fn policy(extra_statement: Option<serde_json::Value>) -> String {
    let mut statements = vec![serde_json::json!({
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [format!("arn:aws:s3:::{BUCKET}"), format!("arn:aws:s3:::{BUCKET}/*")],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}
    })];
    statements.extend(extra_statement);
    serde_json::json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

async fn put(s3: &aws_sdk_s3::Client, key: &str) -> bool {
    s3.put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .is_ok()
}

#[tokio::test]
async fn moto_ignores_tls_only_denies_but_still_applies_other_denies() {
    let Some(moto) = Moto::start().await else { return };
    let s3 = s3(&moto.sdk_config("us-east-1").await);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    s3.put_bucket_policy()
        .bucket(BUCKET)
        .policy(policy(None))
        .send()
        .await
        .unwrap();
    assert!(
        put(&s3, "allowed").await,
        "a TLS-only policy lets TLS requests through"
    );

    let deny_puts = serde_json::json!({
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:PutObject",
        "Resource": format!("arn:aws:s3:::{BUCKET}/*")
    });
    s3.put_bucket_policy()
        .bucket(BUCKET)
        .policy(policy(Some(deny_puts)))
        .send()
        .await
        .unwrap();
    assert!(!put(&s3, "denied").await, "an unconditional Deny still denies");
}

#[tokio::test]
async fn moto_records_requests_and_counts_the_mutating_ones() {
    let Some(moto) = Moto::start().await else { return };
    let config = moto.sdk_config("eu-west-1").await;
    let s3 = s3(&config);
    s3.create_bucket()
        .bucket(BUCKET)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let requests = moto.requests().await;
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].service.as_deref(), Some("s3"));
    assert_eq!(
        requests[0].action,
        format!("PUT /{BUCKET}/"),
        "the Rust SDK ends bucket paths with /"
    );

    moto.reset_requests().await;
    assert_eq!(moto.requests().await, []);
    s3.head_bucket().bucket(BUCKET).send().await.unwrap();
    s3.list_objects_v2().bucket(BUCKET).send().await.unwrap();
    s3.get_bucket_location().bucket(BUCKET).send().await.unwrap();
    assert!(put(&s3, "data/x.csv").await);
    let requests = moto.requests().await;
    assert_eq!(requests.len(), 4, "{requests:?}");
    let changed: Vec<String> = mutating(&requests).iter().map(|r| r.to_string()).collect();
    assert_eq!(changed, [format!("s3 PUT /{BUCKET}/data/x.csv")]);

    let url = moto.url().to_string();
    drop(moto);
    assert!(
        reqwest::get(format!("{url}/moto-api/")).await.is_err(),
        "moto is stopped on drop"
    );
}

#[tokio::test]
async fn registry_requires_its_credentials_and_logs_every_request() {
    let Some(registry) = Registry::start("AWS", "secret-password").await else {
        return;
    };
    assert!(registry.address().starts_with("http://127.0.0.1:"));
    assert_eq!(registry.address(), format!("http://{}", registry.host()));
    let http = reqwest::Client::new();
    let v2 = format!("{}/v2/", registry.address());
    let anonymous = http.get(&v2).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = http
        .get(&v2)
        .basic_auth("AWS", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = http
        .get(&v2)
        .basic_auth("AWS", Some("secret-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);

    let requests = registry.requests().await;
    let statuses: Vec<(&str, &str, u16)> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.uri.as_str(), r.status))
        .collect();
    // Readiness probes first (401), then this test's three.
    assert_eq!(
        &statuses[statuses.len() - 3..],
        [("GET", "/v2/", 401), ("GET", "/v2/", 401), ("GET", "/v2/", 200)]
    );
    assert!(requests.iter().all(|r| !r.is_blob_upload()));
}

#[tokio::test]
async fn requests_aws_would_reject_are_answered_with_400_naming_the_member_and_the_rule() {
    let Some(moto) = Moto::start().await else { return };
    let config = moto.sdk_config("us-east-1").await;
    let sagemaker = aws_sdk_sagemaker::Client::new(&config);
    let arn = "arn:aws:sagemaker:us-east-1:123456789012:model/testbed-model";
    // A comma in a tag value: moto takes it, SageMaker's pattern does not.
    let comma = aws_sdk_sagemaker::types::Tag::builder()
        .key("columns")
        .value("a,b")
        .build();
    let error = sagemaker
        .add_tags()
        .resource_arn(arn)
        .tags(comma)
        .send()
        .await
        .expect_err("AWS rejects a comma in a tag value");
    let error = format!("{}", aws_sdk_sagemaker::error::DisplayErrorContext(&error));
    assert!(
        error.contains("sagemaker:AddTags")
            && error.contains("Tags[0].Value")
            && error.contains("does not match pattern"),
        "{error}"
    );
    // A name over SageMaker's 63 characters; S3's bucket naming rules.
    let long = "m".repeat(64);
    let error = sagemaker
        .delete_model()
        .model_name(&long)
        .send()
        .await
        .expect_err("too long");
    let error = format!("{}", aws_sdk_sagemaker::error::DisplayErrorContext(&error));
    assert!(
        error.contains("ModelName: 64 characters, more than the maximum 63"),
        "{error}"
    );
    let s3 = s3(&config);
    let error = s3
        .create_bucket()
        .bucket("Not_A_Bucket")
        .send()
        .await
        .expect_err("an invalid bucket name");
    let error = format!("{}", aws_sdk_s3::error::DisplayErrorContext(&error));
    assert!(
        error.contains("Bucket: 'Not_A_Bucket' must be lowercase"),
        "{error}"
    );

    // Valid requests pass, in every protocol (JSON, REST-XML, and query via the check endpoint).
    s3.create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .expect("a valid bucket");
    assert!(
        put(&s3, "data/0123456789ab/train/train.csv").await,
        "PutObject is not CopyObject"
    );
    let checks = moto.request_checks();
    assert!(checks.checked >= 5, "{checks:?}");
    let taken = moto.take_violations().await;
    let operations: Vec<&str> = taken.iter().map(|v| v.operation.as_str()).collect();
    assert_eq!(
        operations,
        ["sagemaker:AddTags", "sagemaker:DeleteModel", "s3:CreateBucket"]
    );
    assert!(moto.request_checks().violations.is_empty(), "taken");

    // Values checked without a request: the rule of each member, partial structures allowed.
    let tag = serde_json::json!({"ResourceArn": arn, "Tags": [{"Key": "k", "Value": "a;b"}]});
    assert!(moto.check("sagemaker", "AddTags", tag, false).await[0].contains("Tags[0].Value"));
    let role = serde_json::json!({"RoleName": "r".repeat(65)});
    let violations = moto.check("iam", "CreateRole", role.clone(), true).await;
    assert_eq!(violations, ["RoleName: 65 characters, more than the maximum 64"]);
    let complete = moto.check("iam", "CreateRole", role, false).await;
    assert!(
        complete
            .iter()
            .any(|v| v == "AssumeRolePolicyDocument: required member is missing"),
        "{complete:?}"
    );
    let job = serde_json::json!({"TrainingJobName": "iot-anomaly-0123456789ab-1"});
    assert!(
        moto.check("sagemaker", "CreateTrainingJob", job, true)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_wrong_expected_bucket_owner_is_refused_with_403_as_s3_does() {
    let Some(moto) = Moto::start().await else { return };
    let s3 = s3(&moto.sdk_config("us-east-1").await);
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let (owner, other) = ("123456789012", "210987654321");

    // The owner's account passes; another account's is 403 AccessDenied, reads and writes alike.
    s3.head_bucket()
        .bucket(BUCKET)
        .expected_bucket_owner(owner)
        .send()
        .await
        .expect("the owner");
    let head = s3
        .head_bucket()
        .bucket(BUCKET)
        .expected_bucket_owner(other)
        .send()
        .await
        .expect_err("another owner");
    assert_eq!(head.raw_response().map(|r| r.status().as_u16()), Some(403));
    let put = s3
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .expected_bucket_owner(other)
        .send()
        .await
        .expect_err("another owner");
    assert_eq!(put.raw_response().map(|r| r.status().as_u16()), Some(403));
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&put),
        Some("AccessDenied")
    );
    assert_eq!(
        aws_sdk_s3::error::ProvideErrorMetadata::message(&put),
        Some("Access Denied")
    );
    let tagging = s3
        .get_bucket_tagging()
        .bucket(BUCKET)
        .expected_bucket_owner(other)
        .send()
        .await
        .expect_err("another owner");
    assert_eq!(tagging.raw_response().map(|r| r.status().as_u16()), Some(403));
    let listed = s3.list_objects_v2().bucket(BUCKET).send().await.unwrap();
    assert!(listed.contents().is_empty(), "the refused upload wrote nothing");

    // Without the header nothing is checked; a bucket that does not exist is still NoSuchBucket.
    assert!(put_ok(&s3, None).await);
    assert!(put_ok(&s3, Some(owner)).await);
    let missing = s3
        .head_bucket()
        .bucket("testbed-no-such-bucket")
        .expected_bucket_owner(other)
        .send()
        .await
        .expect_err("no such bucket");
    assert_eq!(missing.raw_response().map(|r| r.status().as_u16()), Some(404));
}

async fn put_ok(s3: &aws_sdk_s3::Client, expected_owner: Option<&str>) -> bool {
    s3.put_object()
        .bucket(BUCKET)
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .set_expected_bucket_owner(expected_owner.map(str::to_string))
        .send()
        .await
        .is_ok()
}
