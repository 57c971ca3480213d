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
