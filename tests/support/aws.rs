//! The AWS world of the end-to-end suite and its benchmark: moto with the testbed's SageMaker
//! emulation (training jobs run `model-image train`, endpoints run `model-image serve`), a Docker
//! registry standing in for ECR's, and the environment that points `orchestrate` at them.

use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use testbed::{Moto, Registry};

use crate::{Deployment, Run, binary};

/// The region every AWS test deploys to.
pub const REGION: &str = "eu-west-1";

/// The AWS world of a test or benchmark: moto with SageMaker, the registry, and the environment `orchestrate` needs.
pub struct Aws {
    pub moto: Moto,
    _registry: Registry,
    pub env: Vec<(&'static str, String)>,
    pub config: SdkConfig,
}

impl Aws {
    /// Starts moto with the SageMaker emulation and a registry; `None` (with a note) when their
    /// programs are missing outside CI.
    pub async fn start() -> Option<Aws> {
        // The emulator runs its own copy: the test may not rebuild the original under it.
        Self::around(Moto::start_sagemaker(&binary("model-image")).await?).await
    }

    /// [`Aws::start`] with IAM enforced ([`Moto::start_sagemaker_enforcing_iam`]): `env` and
    /// `config` sign as the emulator's admin user; run `orchestrate` as another IAM user by
    /// replacing the access key in `env`.
    pub async fn start_enforcing_iam() -> Option<Aws> {
        Self::around(Moto::start_sagemaker_enforcing_iam(&binary("model-image")).await?).await
    }

    async fn around(moto: Moto) -> Option<Aws> {
        let config = moto.sdk_config(REGION).await;
        let ecr = aws_sdk_ecr::Client::new(&config);
        let token = ecr.get_authorization_token().send().await.expect("ECR token");
        let (user, password) = token.authorization_data()[0]
            .authorization_token()
            .and_then(aws::ecr_image::decode_token)
            .expect("a token");
        let registry = Registry::start(&user, &password).await?;
        let mut env = moto.env(REGION);
        env.push(("ORCHESTRATE_REGISTRY", registry.address()));
        env.push(("ORCHESTRATE_POLL_INTERVAL_MS", "200".to_string()));
        Some(Aws {
            moto,
            _registry: registry,
            env,
            config,
        })
    }

    /// Runs `orchestrate ARGS` in the deployment's folder against this world.
    pub fn orchestrate(&self, deployment: &Deployment, args: &[&str]) -> Run {
        let env: Vec<(&str, String)> = self.env.iter().map(|(k, v)| (*k, v.clone())).collect();
        deployment.orchestrate_with(args, &env)
    }

    /// The `orchestrate ARGS` command against this world, to spawn it with outputs of one's choice.
    pub fn command(&self, deployment: &Deployment, args: &[&str]) -> std::process::Command {
        let env: Vec<(&str, String)> = self.env.iter().map(|(k, v)| (*k, v.clone())).collect();
        deployment.command(args, &env)
    }

    /// Starts `orchestrate ARGS` against these servers in the background, stdout and stderr piped.
    pub fn spawn(&self, deployment: &Deployment, args: &[&str]) -> std::process::Child {
        let env: Vec<(&str, String)> = self.env.iter().map(|(k, v)| (*k, v.clone())).collect();
        deployment
            .command(args, &env)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start orchestrate")
    }

    pub fn sagemaker(&self) -> aws_sdk_sagemaker::Client {
        aws_sdk_sagemaker::Client::new(&self.config)
    }

    /// An S3 client for moto (path-style addressing).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.config)
                .force_path_style(true)
                .build(),
        )
    }

    /// The data bucket of deployment `name`: `<name>-<account>-<region>`.
    pub async fn bucket_of(&self, name: &str) -> String {
        let identity = aws_sdk_sts::Client::new(&self.config)
            .get_caller_identity()
            .send()
            .await
            .expect("the caller's account");
        format!("{name}-{}-{REGION}", identity.account().expect("an account"))
    }

    /// The `owner` of the deployment lock standing in the bucket (`user@host pid N`), if one does.
    pub async fn lock_owner(&self, bucket: &str) -> Option<String> {
        let object = self
            .s3()
            .get_object()
            .bucket(bucket)
            .key(aws::lock::LOCK_KEY)
            .send()
            .await
            .ok()?;
        let bytes = object.body.collect().await.ok()?.into_bytes();
        let lock: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        lock["owner"].as_str().map(str::to_string)
    }

    /// What deployment `name` has in this world, through the AWS APIs.
    pub async fn inventory(&self, name: &str) -> Inventory {
        let sm = self.sagemaker();
        let mut endpoints = Vec::new();
        let mut pages = sm
            .list_endpoints()
            .name_contains(name)
            .into_paginator()
            .items()
            .send();
        while let Some(endpoint) = pages.next().await {
            let endpoint = endpoint.expect("list endpoints");
            let described = self.endpoint(endpoint.endpoint_name().unwrap_or_default()).await;
            let tags = sm
                .list_tags()
                .resource_arn(described.endpoint_arn().unwrap_or_default())
                .send()
                .await
                .expect("the endpoint's tags");
            let previous_config = tags
                .tags()
                .iter()
                .find(|t| t.key() == Some(aws::sagemaker::PREVIOUS_CONFIG_TAG))
                .and_then(|t| t.value().map(str::to_string));
            endpoints.push(EndpointState {
                name: described.endpoint_name().unwrap_or_default().to_string(),
                status: described
                    .endpoint_status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                config: described.endpoint_config_name().unwrap_or_default().to_string(),
                previous_config,
            });
        }
        let mut configs = Vec::new();
        let mut pages = sm
            .list_endpoint_configs()
            .name_contains(name)
            .into_paginator()
            .items()
            .send();
        while let Some(config) = pages.next().await {
            let config = config.expect("list endpoint configs");
            let config_name = config.endpoint_config_name().unwrap_or_default().to_string();
            let described = sm
                .describe_endpoint_config()
                .endpoint_config_name(&config_name)
                .send()
                .await
                .expect("describe an endpoint config");
            let model = described
                .production_variants()
                .first()
                .and_then(|v| v.model_name())
                .unwrap_or_default()
                .to_string();
            configs.push((config_name, model));
        }
        let mut models = Vec::new();
        let mut pages = sm
            .list_models()
            .name_contains(name)
            .into_paginator()
            .items()
            .send();
        while let Some(model) = pages.next().await {
            models.push(
                model
                    .expect("list models")
                    .model_name()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
        let mut training_jobs = Vec::new();
        let mut pages = sm
            .list_training_jobs()
            .name_contains(name)
            .into_paginator()
            .items()
            .send();
        while let Some(job) = pages.next().await {
            let job = job.expect("list training jobs");
            training_jobs.push((
                job.training_job_name().unwrap_or_default().to_string(),
                job.training_job_status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
            ));
        }
        let scaling = aws_sdk_applicationautoscaling::Client::new(&self.config)
            .describe_scalable_targets()
            .service_namespace(aws_sdk_applicationautoscaling::types::ServiceNamespace::Sagemaker)
            .send()
            .await
            .expect("describe scalable targets");
        let scalable_targets = scaling
            .scalable_targets()
            .iter()
            .map(|t| t.resource_id().to_string())
            .filter(|id| id.starts_with(&format!("endpoint/{name}/")))
            .collect();
        let bucket = self.bucket_of(name).await;
        let bucket = self.s3().head_bucket().bucket(&bucket).send().await.is_ok();
        let role = aws_sdk_iam::Client::new(&self.config)
            .get_role()
            .role_name(format!("{name}-sagemaker-execution"))
            .send()
            .await
            .is_ok();
        let alarms = self.alarms(name).await;
        let served = self
            .moto
            .endpoints()
            .await
            .into_iter()
            .filter(|e| e.name.starts_with(name))
            .collect();
        let mut inventory = Inventory {
            endpoints,
            configs,
            models,
            training_jobs,
            scalable_targets,
            bucket,
            role,
            alarms,
            served,
        };
        inventory.configs.sort();
        inventory.models.sort();
        inventory.training_jobs.sort();
        inventory
    }

    /// Checks what a converged deployment `name` is, through the AWS APIs: exactly one endpoint,
    /// in service, served by one process of the emulation; exactly the config it serves and the one
    /// its previous-config tag names (kept for rollback), and exactly their models; exactly one
    /// training job per training input (job base name), none still running; one scalable target;
    /// the bucket and the role. `context` says which run this follows.
    pub async fn assert_converged(&self, name: &str, context: &str) -> Inventory {
        let inventory = self.inventory(name).await;
        let fail = |what: &str| -> ! {
            panic!(
                "{context}: {what}
{inventory:#?}"
            )
        };
        let [endpoint] = inventory.endpoints.as_slice() else {
            fail("not exactly one endpoint")
        };
        if endpoint.name != name || endpoint.status != "InService" {
            fail("the endpoint is not the deployment's, in service");
        }
        let [served] = inventory.served.as_slice() else {
            fail("not exactly one endpoint in the emulation")
        };
        if served.pid.is_none() || served.serving_config.as_deref() != Some(endpoint.config.as_str()) {
            fail("the emulation does not serve the endpoint's config");
        }
        let mut kept: Vec<&str> = [
            Some(endpoint.config.as_str()),
            endpoint.previous_config.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        kept.sort_unstable();
        kept.dedup();
        let configs: Vec<&str> = inventory.configs.iter().map(|(c, _)| c.as_str()).collect();
        if configs != kept {
            fail("endpoint configs other than the served one and the one kept for rollback");
        }
        let mut wanted_models: Vec<&str> = inventory.configs.iter().map(|(_, m)| m.as_str()).collect();
        wanted_models.sort_unstable();
        wanted_models.dedup();
        let models: Vec<&str> = inventory.models.iter().map(String::as_str).collect();
        if models != wanted_models {
            fail("models other than those of the kept configs");
        }
        let mut bases: Vec<&str> = inventory
            .training_jobs
            .iter()
            .map(|(job, _)| job.rsplit_once('-').map_or(job.as_str(), |(base, _)| base))
            .collect();
        let jobs = bases.len();
        bases.dedup();
        if bases.len() != jobs {
            fail("a training input has more than one training job");
        }
        if inventory
            .training_jobs
            .iter()
            .any(|(_, status)| status != "Completed")
        {
            fail("a training job that did not complete");
        }
        if inventory.scalable_targets != [format!("endpoint/{name}/variant/AllTraffic")] {
            fail("not exactly the endpoint's scalable target");
        }
        if !inventory.bucket || !inventory.role {
            fail("the bucket or the role is missing");
        }
        inventory
    }

    /// Checks that nothing of deployment `name` is left but its training jobs (SageMaker keeps
    /// them forever), none of them running.
    pub async fn assert_gone(&self, name: &str, context: &str) {
        let inventory = self.inventory(name).await;
        let running = inventory
            .training_jobs
            .iter()
            .any(|(_, status)| status == "InProgress");
        let left = !inventory.endpoints.is_empty()
            || !inventory.served.is_empty()
            || !inventory.configs.is_empty()
            || !inventory.models.is_empty()
            || !inventory.scalable_targets.is_empty()
            || !inventory.alarms.is_empty()
            || inventory.bucket
            || inventory.role;
        assert!(
            !left && !running,
            "{context}: something of the deployment is left
{inventory:#?}"
        );
    }

    /// A CloudWatch client for moto (through the testbed's CBOR shim).
    pub fn cloudwatch(&self) -> aws_sdk_cloudwatch::Client {
        aws_sdk_cloudwatch::Client::new(&self.config)
    }

    /// The metric alarms named `<name>-…`, sorted.
    pub async fn alarms(&self, name: &str) -> Vec<String> {
        let described = self
            .cloudwatch()
            .describe_alarms()
            .alarm_name_prefix(format!("{name}-"))
            .send()
            .await
            .expect("describe alarms");
        let mut names: Vec<String> = described
            .metric_alarms()
            .iter()
            .filter_map(|a| a.alarm_name().map(str::to_string))
            .collect();
        names.sort();
        names
    }

    pub async fn endpoint(
        &self,
        name: &str,
    ) -> aws_sdk_sagemaker::operation::describe_endpoint::DescribeEndpointOutput {
        self.sagemaker()
            .describe_endpoint()
            .endpoint_name(name)
            .send()
            .await
            .expect("describe the endpoint")
    }

    /// Waits (no timing assertion: a deadline only against hanging) until the endpoint is in service.
    pub async fn endpoint_in_service(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let status = self.endpoint(name).await.endpoint_status().cloned();
            if status == Some(aws_sdk_sagemaker::types::EndpointStatus::InService) {
                return;
            }
            assert!(Instant::now() < deadline, "endpoint stuck in {status:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// An endpoint as SageMaker describes it.
#[derive(Debug, Clone)]
pub struct EndpointState {
    pub name: String,
    pub status: String,
    pub config: String,
    /// The previous-config tag (the config kept for rollback).
    pub previous_config: Option<String>,
}

/// What a deployment has in the AWS world ([`Aws::inventory`]), each list sorted.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub endpoints: Vec<EndpointState>,
    /// Endpoint configs and the model each one's variant names.
    pub configs: Vec<(String, String)>,
    pub models: Vec<String>,
    /// Training jobs and their status.
    pub training_jobs: Vec<(String, String)>,
    /// Application Auto Scaling resource ids of the deployment's endpoint.
    pub scalable_targets: Vec<String>,
    pub bucket: bool,
    pub role: bool,
    /// CloudWatch alarms named after the deployment (`<name>-…`).
    pub alarms: Vec<String>,
    /// The emulation's endpoints and their serve processes.
    pub served: Vec<testbed::ServedEndpoint>,
}
