//! Every client rides out each kind of transient fault, in each protocol's own form, for all but
//! its last attempt, and reports the fault honestly when every attempt fails.
//!
//! Each case puts a [`FaultProxy`] in front of moto that answers the first calls of one operation
//! with one fault (throttling, 500, 503, a reset before the request is forwarded, a reset after
//! moto carried it out), then makes that call through [`Clients`]: with `MAX_ATTEMPTS - 1` faults
//! the call succeeds; with `MAX_ATTEMPTS` it fails as throttled or transient, never as anything a
//! caller would take for an answer ("not found", "conflict").

use aws::clients::{Clients, MAX_ATTEMPTS, RETRY_BACKOFF_ENV};
use aws::errors::{AwsError, ErrorClass};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use engine::Kind;
use testbed::{FaultKind, FaultPlan, FaultProxy, Moto, Upstream};

const REGION: &str = "eu-west-1";
const BUCKET: &str = "transient-faults";
const ROLE: &str = "transient-faults-role";
const MODEL: &str = "transient-faults-model";
const MODEL_ARN: &str = "arn:aws:sagemaker:eu-west-1:123456789012:model/transient-faults-model";

/// One read of each protocol, and the operation name the proxy knows it by.
#[derive(Debug, Clone, Copy)]
enum Call {
    /// STS `GetCallerIdentity` (query protocol).
    CallerIdentity,
    /// IAM `GetRole` (query protocol).
    Role,
    /// SageMaker `ListModels` (JSON protocol).
    Models,
    /// SageMaker `ListTags` of a model (JSON protocol; discovery reads every resource's tags).
    Tags,
    /// S3 `HeadBucket` (REST-XML, no body in the error).
    HeadBucket,
    /// S3 `GetObject` (REST-XML).
    Object,
}

impl Call {
    const ALL: [Call; 6] = [
        Call::CallerIdentity,
        Call::Role,
        Call::Models,
        Call::Tags,
        Call::HeadBucket,
        Call::Object,
    ];

    fn operation(self) -> &'static str {
        match self {
            Call::CallerIdentity => "GetCallerIdentity",
            Call::Role => "GetRole",
            Call::Models => "ListModels",
            Call::Tags => "ListTags",
            Call::HeadBucket => "HEAD /bucket",
            Call::Object => "GET /bucket/key",
        }
    }

    async fn make(self, clients: &Clients) -> Result<(), AwsError> {
        match self {
            Call::CallerIdentity => clients
                .sts
                .get_caller_identity()
                .send()
                .await
                .map(drop)
                .map_err(failed(self)),
            Call::Tags => clients
                .sagemaker
                .list_tags()
                .resource_arn(MODEL_ARN)
                .send()
                .await
                .map(drop)
                .map_err(failed(self)),
            Call::Role => clients
                .iam
                .get_role()
                .role_name(ROLE)
                .send()
                .await
                .map(drop)
                .map_err(failed(self)),
            Call::Models => clients
                .sagemaker
                .list_models()
                .send()
                .await
                .map(drop)
                .map_err(failed(self)),
            Call::HeadBucket => clients
                .s3
                .head_bucket()
                .bucket(BUCKET)
                .send()
                .await
                .map(drop)
                .map_err(failed(self)),
            Call::Object => clients
                .s3
                .get_object()
                .bucket(BUCKET)
                .key("data.csv")
                .send()
                .await
                .map(drop)
                .map_err(failed(self)),
        }
    }
}

/// The SDK error of `call`, classified as every module of the crate classifies it.
fn failed<E>(call: Call) -> impl FnOnce(SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    move |error| AwsError::sdk("call", Kind::Bucket, call.operation(), error)
}

/// Clients through a proxy answering the first `count` calls of `call` with `kind`; the SDK's
/// backoff scaled down (the attempts are what is tested, not the waiting).
async fn through(moto: &Moto, call: Call, count: u64, kind: FaultKind) -> (FaultProxy, Clients) {
    let proxy = FaultProxy::start(
        moto.url(),
        Upstream::Aws,
        FaultPlan::first_calls(call.operation(), count, kind),
    )
    .await;
    let config = moto
        .sdk_config(REGION)
        .await
        .to_builder()
        .endpoint_url(proxy.url())
        .build();
    let clients = Clients::from_config(&config, |name| {
        (name == RETRY_BACKOFF_ENV).then(|| "20".to_string())
    });
    (proxy, clients)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_rides_out_each_fault_until_its_last_attempt() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let setup = Clients::from_config(&moto.sdk_config(REGION).await, |_| None);
    setup
        .s3
        .create_bucket()
        .bucket(BUCKET)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
                .build(),
        )
        .send()
        .await
        .expect("bucket");
    setup
        .s3
        .put_object()
        .bucket(BUCKET)
        .key("data.csv")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"a,b\n1,2\n"))
        .send()
        .await
        .expect("object");
    setup
        .iam
        .create_role()
        .role_name(ROLE)
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"sagemaker.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .expect("role");

    setup
        .sagemaker
        .create_model()
        .model_name(MODEL)
        .execution_role_arn(format!("arn:aws:iam::123456789012:role/{ROLE}"))
        .primary_container(
            aws_sdk_sagemaker::types::ContainerDefinition::builder()
                .image("123456789012.dkr.ecr.eu-west-1.amazonaws.com/model:latest")
                .build(),
        )
        .tags(
            aws_sdk_sagemaker::types::Tag::builder()
                .key("k")
                .value("v")
                .build(),
        )
        .send()
        .await
        .expect("model");

    let attempts = u64::from(MAX_ATTEMPTS);
    let mut cases = tokio::task::JoinSet::new();
    for call in Call::ALL {
        for kind in FaultKind::ALL {
            let (survived, clients) = through(&moto, call, attempts - 1, kind).await;
            let (exhausted, exhausted_clients) = through(&moto, call, attempts, kind).await;
            cases.spawn(async move {
                let ridden_out = call.make(&clients).await;
                let given_up = call.make(&exhausted_clients).await;
                let stats = (survived.stats(), exhausted.stats());
                (call, kind, ridden_out, given_up, stats)
            });
        }
    }
    let mut failures = Vec::new();
    while let Some(case) = cases.join_next().await {
        let (call, kind, ridden_out, given_up, (survived, exhausted)) = case.expect("a case");
        let sent = survived.operations[call.operation()].requests;
        if let Err(e) = ridden_out {
            failures.push(format!(
                "{call:?} with {} {kind} faults failed after {sent} requests: {e} ({:?})",
                attempts - 1,
                e.class
            ));
        } else if sent != attempts {
            failures.push(format!("{call:?} with {kind}: {sent} requests, not {attempts}"));
        }
        match given_up {
            Ok(()) => failures.push(format!(
                "{call:?} succeeded through {attempts} {kind} faults ({} requests)",
                exhausted.operations[call.operation()].requests
            )),
            Err(e) if matches!(e.class, ErrorClass::Throttled | ErrorClass::Transient) => {}
            Err(e) => failures.push(format!(
                "{call:?} after {attempts} {kind} faults failed as {:?}, not as transient: {e}",
                e.class
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
