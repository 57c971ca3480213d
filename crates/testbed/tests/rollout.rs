//! SageMaker deployment guardrails as the launcher emulates them, through the AWS SDKs: an
//! UpdateEndpoint with a DeploymentConfig (blue/green, canary traffic shifting, auto-rollback on
//! CloudWatch alarms) passes through Updating with a PendingDeploymentSummary that bakes step by step,
//! and ends on the new config; an alarm named in the update going into ALARM during a bake rolls it
//! back; an alarm not named does not; invalid traffic routing is a ValidationError. Skipped (with a
//! note) outside CI when moto or the model-image binary is missing.
//!
//! Polls have deadlines and never assert on elapsed time (two shared cores).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_sagemaker::operation::describe_endpoint::DescribeEndpointOutput;
use aws_sdk_sagemaker::types::{
    Alarm, AlgorithmSpecification, AutoRollbackConfig, BlueGreenUpdatePolicy, CapacitySize, CapacitySizeType,
    Channel, ContainerDefinition, DataSource, DeploymentConfig, OutputDataConfig, ProductionVariant,
    ProductionVariantInstanceType, ResourceConfig, S3DataSource, S3DataType, StoppingCondition,
    TrafficRoutingConfig, TrafficRoutingConfigType, TrainingInputMode, TrainingInstanceType, VariantStatus,
};
use aws_sdk_sagemakerruntime::primitives::Blob;
use testbed::Moto;

const REGION: &str = "eu-west-1";
const BUCKET: &str = "testbed-rollout";
const ROLE: &str = "arn:aws:iam::123456789012:role/testbed-sagemaker";
const IMAGE: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/orchestrate@sha256:\
                     0000000000000000000000000000000000000000000000000000000000000000";
const GUARD: &str = "ep-invocation-5xx";
const UNRELATED: &str = "some-other-alarm";
const DEADLINE: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_millis(50);

struct Bed {
    moto: Moto,
    sagemaker: aws_sdk_sagemaker::Client,
    runtime: aws_sdk_sagemakerruntime::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    s3: aws_sdk_s3::Client,
    model_image: PathBuf,
    dir: tempfile::TempDir,
}

impl Bed {
    async fn start() -> Option<Bed> {
        let model_image = testbed::model_image()?;
        let moto = Moto::start_sagemaker(&model_image).await?;
        let config = moto.sdk_config(REGION).await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        );
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
        Some(Bed {
            sagemaker: aws_sdk_sagemaker::Client::new(&config),
            runtime: aws_sdk_sagemakerruntime::Client::new(&config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
            s3,
            moto,
            model_image,
            dir: tempfile::tempdir().unwrap(),
        })
    }

    /// Trains a quick model on demo data; its model.tar.gz URI and a data row to invoke it with.
    async fn trained_model(&self) -> (String, String) {
        let csv = demo_data(&self.model_image, self.dir.path(), 600);
        let row = std::fs::read_to_string(&csv)
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .to_string();
        self.s3
            .put_object()
            .bucket(BUCKET)
            .key("data/train/demo.csv")
            .body(ByteStream::from_path(&csv).await.unwrap())
            .send()
            .await
            .unwrap();
        let channel = Channel::builder()
            .channel_name("train")
            .data_source(
                DataSource::builder()
                    .s3_data_source(
                        S3DataSource::builder()
                            .s3_data_type(S3DataType::S3Prefix)
                            .s3_uri(format!("s3://{BUCKET}/data/train/"))
                            .build(),
                    )
                    .build(),
            )
            .build();
        let mut request = self
            .sagemaker
            .create_training_job()
            .training_job_name("rollout-model")
            .algorithm_specification(
                AlgorithmSpecification::builder()
                    .training_image(IMAGE)
                    .training_input_mode(TrainingInputMode::File)
                    .build(),
            )
            .role_arn(ROLE)
            .input_data_config(channel)
            .output_data_config(
                OutputDataConfig::builder()
                    .s3_output_path(format!("s3://{BUCKET}/output"))
                    .build(),
            )
            .resource_config(
                ResourceConfig::builder()
                    .instance_type(TrainingInstanceType::MlM5Large)
                    .instance_count(1)
                    .volume_size_in_gb(1)
                    .build(),
            )
            .stopping_condition(StoppingCondition::builder().max_runtime_in_seconds(3600).build());
        for (key, value) in [
            ("label", "Label"),
            ("positive_class", "Anomaly"),
            ("max_rounds", "10"),
            ("threads", "1"),
            ("bootstrap_resamples", "20"),
        ] {
            request = request.hyper_parameters(key, value);
        }
        request.send().await.unwrap();
        let deadline = Instant::now() + DEADLINE;
        loop {
            let job = self
                .sagemaker
                .describe_training_job()
                .training_job_name("rollout-model")
                .send()
                .await
                .unwrap();
            match job.training_job_status().unwrap().as_str() {
                "Completed" => {
                    let uri = job.model_artifacts().unwrap().s3_model_artifacts().unwrap();
                    return (uri.to_string(), row);
                }
                "Failed" | "Stopped" => panic!("training failed: {job:?}"),
                _ => {}
            }
            assert!(Instant::now() < deadline, "training still {job:?}");
            tokio::time::sleep(POLL).await;
        }
    }

    async fn create_model(&self, name: &str, model_data_url: &str) {
        self.sagemaker
            .create_model()
            .model_name(name)
            .execution_role_arn(ROLE)
            .primary_container(
                ContainerDefinition::builder()
                    .image(IMAGE)
                    .model_data_url(model_data_url)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }

    async fn create_endpoint_config(&self, name: &str, model: &str, variant: &str, instances: i32) {
        self.sagemaker
            .create_endpoint_config()
            .endpoint_config_name(name)
            .production_variants(
                ProductionVariant::builder()
                    .variant_name(variant)
                    .model_name(model)
                    .initial_instance_count(instances)
                    .instance_type(ProductionVariantInstanceType::MlM5Large)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }

    async fn update(&self, name: &str, config: &str, deployment: DeploymentConfig) -> Result<(), String> {
        self.sagemaker
            .update_endpoint()
            .endpoint_name(name)
            .endpoint_config_name(config)
            .deployment_config(deployment)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| error_text(e.into_service_error()))
    }

    async fn describe(&self, name: &str) -> DescribeEndpointOutput {
        self.sagemaker
            .describe_endpoint()
            .endpoint_name(name)
            .send()
            .await
            .unwrap()
    }

    /// Polls DescribeEndpoint until it is one of `until`; the last description and every distinct
    /// status seen (`EndpointStatus`, with the pending variant's `Status: StatusMessage` while Updating).
    async fn until(&self, name: &str, until: &[&str]) -> (DescribeEndpointOutput, Vec<String>) {
        let deadline = Instant::now() + DEADLINE;
        let mut seen: Vec<String> = Vec::new();
        loop {
            let endpoint = self.describe(name).await;
            let status = endpoint.endpoint_status().unwrap().as_str().to_string();
            let state = match pending_status(&endpoint) {
                Some(variant) => format!("{status}/{variant}"),
                None => status.clone(),
            };
            if seen.last() != Some(&state) {
                seen.push(state);
            }
            if until.contains(&status.as_str()) {
                return (endpoint, seen);
            }
            assert!(Instant::now() < deadline, "endpoint {name} still {seen:?}");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls until the pending deployment's variant status message contains `text`.
    async fn until_pending(&self, name: &str, text: &str) -> DescribeEndpointOutput {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let endpoint = self.describe(name).await;
            if pending_status(&endpoint).is_some_and(|status| status.contains(text)) {
                return endpoint;
            }
            assert!(
                Instant::now() < deadline,
                "endpoint {name} never showed {text:?}: {endpoint:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    async fn put_alarm(&self, name: &str) {
        self.cloudwatch
            .put_metric_alarm()
            .alarm_name(name)
            .namespace("AWS/SageMaker")
            .metric_name("Invocation5XXErrors")
            .statistic(Statistic::Sum)
            .period(60)
            .evaluation_periods(1)
            .threshold(1.0)
            .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
            .send()
            .await
            .unwrap();
    }

    async fn set_alarm(&self, name: &str, state: StateValue) {
        self.cloudwatch
            .set_alarm_state()
            .alarm_name(name)
            .state_value(state)
            .state_reason("testbed: set by the test")
            .send()
            .await
            .unwrap();
    }

    /// The emulation's rollout state of endpoint `name` (`/_testbed/endpoints`), if one runs.
    async fn rollout(&self, name: &str) -> Option<serde_json::Value> {
        let endpoints: Vec<serde_json::Value> =
            reqwest::get(format!("{}/_testbed/endpoints", self.moto.url()))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
        endpoints
            .into_iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e.get("rollout").cloned())
            .filter(|r| !r.is_null())
    }

    async fn invoke(&self, endpoint: &str, body: &str) -> String {
        let answer = self
            .runtime
            .invoke_endpoint()
            .endpoint_name(endpoint)
            .content_type("text/csv")
            .accept("application/json")
            .body(Blob::new(body.as_bytes().to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("InvokeEndpoint: {:?}", e.into_service_error()));
        answer
            .invoked_production_variant()
            .unwrap_or_default()
            .to_string()
    }
}

/// The pending deployment's first variant status, `Status: StatusMessage`.
fn pending_status(endpoint: &DescribeEndpointOutput) -> Option<String> {
    let pending = endpoint.pending_deployment_summary()?;
    let status = pending.production_variants().first()?.variant_status().first()?;
    Some(format!(
        "{}: {}",
        status.status().map(VariantStatus::as_str).unwrap_or("?"),
        status.status_message().unwrap_or_default()
    ))
}

fn demo_data(model_image: &Path, dir: &Path, rows: u32) -> PathBuf {
    let csv = dir.join("demo.csv");
    let output = std::process::Command::new(model_image)
        .args(["demo-data", "--rows", &rows.to_string(), "--out"])
        .arg(&csv)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "model-image demo-data: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    csv
}

fn error_text(error: impl aws_sdk_sagemaker::error::ProvideErrorMetadata) -> String {
    format!(
        "{}: {}",
        error.code().unwrap_or("?"),
        error.message().unwrap_or_default()
    )
}

fn capacity(kind: CapacitySizeType, value: i32) -> CapacitySize {
    CapacitySize::builder().r#type(kind).value(value).build()
}

/// Blue/green with a canary of `size`, each step baking `wait` seconds, a final bake of 1 s, rolled
/// back by the alarms `alarms`.
fn canary(size: CapacitySize, wait: i32, alarms: &[&str]) -> DeploymentConfig {
    let routing = TrafficRoutingConfig::builder()
        .r#type(TrafficRoutingConfigType::Canary)
        .wait_interval_in_seconds(wait)
        .canary_size(size)
        .build();
    let mut rollback = AutoRollbackConfig::builder();
    for alarm in alarms {
        rollback = rollback.alarms(Alarm::builder().alarm_name(*alarm).build());
    }
    DeploymentConfig::builder()
        .blue_green_update_policy(
            BlueGreenUpdatePolicy::builder()
                .traffic_routing_configuration(routing)
                .termination_wait_in_seconds(1)
                .maximum_execution_timeout_in_seconds(600)
                .build(),
        )
        .auto_rollback_configuration(rollback.build())
        .build()
}

fn no_violations(moto: &Moto) {
    let checks = moto.request_checks();
    assert!(checks.violations.is_empty(), "{:?}", checks.violations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_updates_bake_complete_and_roll_back_on_their_alarms_only() {
    let Some(bed) = Bed::start().await else { return };
    let (model_uri, row) = bed.trained_model().await;
    bed.create_model("model", &model_uri).await;
    for config in ["blue", "green"] {
        bed.create_endpoint_config(config, "model", "AllTraffic", 2).await;
    }
    bed.put_alarm(GUARD).await;
    bed.put_alarm(UNRELATED).await;
    bed.sagemaker
        .create_endpoint()
        .endpoint_name("ep")
        .endpoint_config_name("blue")
        .send()
        .await
        .unwrap();
    let (endpoint, _) = bed.until("ep", &["InService", "Failed"]).await;
    assert_eq!(endpoint.endpoint_status().unwrap().as_str(), "InService");
    assert!(endpoint.pending_deployment_summary().is_none());

    // (a) A canary of 50% bakes step by step and completes: the new config, LastDeploymentConfig set.
    let deployment = canary(capacity(CapacitySizeType::CapacityPercent, 50), 4, &[GUARD]);
    bed.update("ep", "green", deployment.clone()).await.unwrap();
    let baking = bed.until_pending("ep", "Baking: 50%").await;
    assert_eq!(baking.endpoint_status().unwrap().as_str(), "Updating");
    assert_eq!(
        baking.endpoint_config_name(),
        Some("blue"),
        "still the old config"
    );
    let pending = baking.pending_deployment_summary().unwrap();
    assert_eq!(pending.endpoint_config_name(), Some("green"));
    assert!(pending.start_time().is_some());
    let variant = &pending.production_variants()[0];
    assert_eq!(variant.variant_name(), Some("AllTraffic"));
    assert_eq!(variant.desired_instance_count(), Some(2));
    assert_eq!(variant.deployed_images()[0].specified_image(), Some(IMAGE));
    let status = &variant.variant_status()[0];
    assert!(status.start_time().is_some(), "{status:?}");
    assert_eq!(status.status(), Some(&VariantStatus::Baking));
    assert_eq!(
        status.status_message(),
        Some("Baking: 50% of the new fleet's capacity takes traffic (step 1 of 2)")
    );
    // The emulation's view (unless the bake already ended): half the traffic on the green fleet,
    // which answers as the same variant.
    if let Some(rollout) = bed.rollout("ep").await
        && rollout["step"] == 1
        && rollout["phase"] == "baking"
    {
        assert_eq!(rollout["traffic_percent"], 50, "{rollout}");
        assert_eq!(rollout["steps"], 2, "{rollout}");
        assert!(rollout["green_url"].is_string(), "{rollout}");
    }
    for _ in 0..4 {
        assert_eq!(bed.invoke("ep", &row).await, "AllTraffic");
    }
    let (endpoint, seen) = bed.until("ep", &["InService", "Failed"]).await;
    assert!(
        seen.iter().any(|s| s.contains("Baking: 100%")),
        "the last step and the final bake are shown too: {seen:?}"
    );
    assert_eq!(
        endpoint.endpoint_status().unwrap().as_str(),
        "InService",
        "{seen:?}"
    );
    assert_eq!(endpoint.endpoint_config_name(), Some("green"));
    assert_eq!(endpoint.failure_reason(), None);
    assert!(endpoint.pending_deployment_summary().is_none());
    assert_eq!(endpoint.last_deployment_config(), Some(&deployment));
    assert!(bed.rollout("ep").await.is_none());
    assert_eq!(
        bed.moto.endpoints().await[0].serving_config.as_deref(),
        Some("green")
    );

    // (c) An alarm in ALARM that the update does not name does not roll it back.
    bed.set_alarm(UNRELATED, StateValue::Alarm).await;
    bed.update(
        "ep",
        "blue",
        canary(capacity(CapacitySizeType::InstanceCount, 1), 2, &[GUARD]),
    )
    .await
    .unwrap();
    let (endpoint, seen) = bed.until("ep", &["InService", "Failed"]).await;
    assert!(
        seen.iter().any(|s| s.contains("(step 1 of 2)")),
        "one instance of two is 50%: {seen:?}"
    );
    assert_eq!(endpoint.endpoint_config_name(), Some("blue"), "{seen:?}");
    assert_eq!(endpoint.failure_reason(), None);

    // (b) The named alarm going into ALARM during the first bake rolls back to the old config.
    let blue_pid = bed.moto.endpoints().await[0].pid;
    bed.update(
        "ep",
        "green",
        canary(capacity(CapacitySizeType::CapacityPercent, 50), 4, &[GUARD]),
    )
    .await
    .unwrap();
    bed.until_pending("ep", "Baking: 50%").await;
    bed.set_alarm(GUARD, StateValue::Alarm).await;
    let (endpoint, seen) = bed.until("ep", &["InService", "Failed"]).await;
    assert!(seen.iter().any(|s| s == "RollingBack"), "{seen:?}");
    assert_eq!(endpoint.endpoint_status().unwrap().as_str(), "InService");
    assert_eq!(endpoint.endpoint_config_name(), Some("blue"), "{seen:?}");
    assert_eq!(
        endpoint.failure_reason(),
        Some(
            format!("Rolled back the deployment: CloudWatch alarm(s) [{GUARD}] went into ALARM state.")
                .as_str()
        )
    );
    assert!(endpoint.pending_deployment_summary().is_none());
    let served = bed.moto.endpoints().await.remove(0);
    assert_eq!(served.pid, blue_pid, "the old fleet kept serving");
    assert_eq!(served.serving_config.as_deref(), Some("blue"));
    assert_eq!(bed.invoke("ep", &row).await, "AllTraffic");
    no_violations(&bed.moto);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_traffic_routing_is_a_validation_error() {
    let Some(bed) = Bed::start().await else { return };
    // No model is needed to validate: the endpoint fails to start, and validation comes first.
    bed.create_model("model", &format!("s3://{BUCKET}/no/model.tar.gz"))
        .await;
    bed.create_endpoint_config("one", "model", "AllTraffic", 1).await;
    bed.create_endpoint_config("two", "model", "AllTraffic", 2).await;
    bed.create_endpoint_config("renamed", "model", "Other", 2).await;

    let one_instance = bed
        .sagemaker
        .create_endpoint()
        .endpoint_name("ep")
        .endpoint_config_name("one")
        .deployment_config(canary(capacity(CapacitySizeType::InstanceCount, 1), 2, &[GUARD]))
        .send()
        .await
        .map_err(|e| error_text(e.into_service_error()))
        .unwrap_err();
    assert!(
        one_instance
            .starts_with("ValidationException: The CANARY traffic routing type needs at least 2 instances"),
        "{one_instance}"
    );
    // Accepted on two instances, kept as LastDeploymentConfig.
    let deployment = canary(capacity(CapacitySizeType::CapacityPercent, 50), 2, &[GUARD]);
    bed.sagemaker
        .create_endpoint()
        .endpoint_name("ep")
        .endpoint_config_name("two")
        .deployment_config(deployment.clone())
        .send()
        .await
        .unwrap();
    let (endpoint, _) = bed.until("ep", &["InService", "Failed"]).await;
    assert_eq!(endpoint.last_deployment_config(), Some(&deployment));

    let too_big = bed
        .update(
            "ep",
            "two",
            canary(capacity(CapacitySizeType::CapacityPercent, 60), 2, &[GUARD]),
        )
        .await
        .unwrap_err();
    assert!(
        too_big.starts_with("ValidationException: CanarySize 60% is invalid"),
        "{too_big}"
    );
    let one_instance = bed
        .update(
            "ep",
            "one",
            canary(capacity(CapacitySizeType::CapacityPercent, 50), 2, &[GUARD]),
        )
        .await
        .unwrap_err();
    assert!(
        one_instance.contains("needs at least 2 instances"),
        "{one_instance}"
    );
    let renamed = bed
        .update(
            "ep",
            "renamed",
            canary(capacity(CapacitySizeType::CapacityPercent, 50), 2, &[GUARD]),
        )
        .await
        .unwrap_err();
    assert!(renamed.contains("must match the variant name"), "{renamed}");
    let no_size = DeploymentConfig::builder()
        .blue_green_update_policy(
            BlueGreenUpdatePolicy::builder()
                .traffic_routing_configuration(
                    TrafficRoutingConfig::builder()
                        .r#type(TrafficRoutingConfigType::Linear)
                        .wait_interval_in_seconds(2)
                        .build(),
                )
                .build(),
        )
        .build();
    let no_size = bed.update("ep", "two", no_size).await.unwrap_err();
    assert!(
        no_size.starts_with("ValidationException: LinearStepSize must be specified"),
        "{no_size}"
    );
    no_violations(&bed.moto);
}
