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
