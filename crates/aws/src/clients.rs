//! The AWS clients a deployment uses, all built from one `SdkConfig`.
//!
//! Credentials come from the SDK's standard chain: the environment (`AWS_ACCESS_KEY_ID`/
//! `AWS_SECRET_ACCESS_KEY`), the profile (`AWS_PROFILE`, or `default`) of the shared config and
//! credentials files with static keys, SSO (`sso_session` or the legacy `sso_start_url`, from the
//! token `aws sso login` cached), `credential_process` or `role_arn` with `source_profile` /
//! `credential_source`, web identity (`AWS_WEB_IDENTITY_TOKEN_FILE`, CI OIDC), then ECS container and
//! EC2 instance metadata. When none of them has credentials, the first call ([`Clients::identify`])
//! says so in one line ([`AccountError::NoCredentials`]).
//!
//! The region is the deployment's. `AWS_ENDPOINT_URL` and the per-service
//! `AWS_ENDPOINT_URL_<SERVICE>` variables (or `endpoint_url` in the shared config) are honoured by
//! the SDK itself; when S3's endpoint is overridden (moto, MinIO, a VPC endpoint) S3 is
//! addressed path-style, since such endpoints rarely resolve `<bucket>.<host>` names.
//!
//! Every client has connect, attempt and operation timeouts and adaptive retries (exponential
//! backoff with jitter, and a client-side rate limit once the service throttles): [`timeouts`],
//! [`S3_TIMEOUTS`], [`retries`].

use std::error::Error as StdError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::retry::RetryPartition;
use tokio::sync::OnceCell;

use crate::errors::{self, AwsError, DisplayErrorContext, ErrorClass};
use engine::Kind;

/// The environment variables that override every service's endpoint, and S3's alone.
pub const ENDPOINT_ENV: &str = "AWS_ENDPOINT_URL";
pub const S3_ENDPOINT_ENV: &str = "AWS_ENDPOINT_URL_S3";
/// The profile of the shared config files the credentials come from (`default` when unset).
pub const PROFILE_ENV: &str = "AWS_PROFILE";

/// How long a TCP/TLS connection to an AWS endpoint may take: endpoints answer in milliseconds, so
/// a connection still not made after 5 s is a network fault, better retried on a fresh one.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one attempt of a control-plane call (Describe*, Create*, IAM, ECR, STS) may take: they
/// answer in well under a second; 30 s leaves room for a slow moment without hanging a run.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a whole call may take, every retry and backoff included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(2 * 60);
/// S3 moves the training data (files of hundreds of MB in one `PutObject`) and the model
/// artefact: an attempt may take minutes on a slow uplink, and the call its retries too.
pub const S3_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10 * 60);
pub const S3_OPERATION_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// `InvokeEndpoint`: SageMaker gives a model container 60 s to answer; the attempt waits a little
/// longer so that SageMaker's own timeout error, not ours, is what the caller sees.
pub const INVOKE_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(65);
/// Attempts per call (the first and four retries). The SDK's default of 3 gives up within about
/// 3 s of backoff; five attempts with exponential backoff (capped at 20 s, full jitter) ride out a
/// throttling burst or a short outage.
pub const MAX_ATTEMPTS: u32 = 5;
/// The first backoff before a retry; doubled each attempt, each sleep a random fraction of it.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// The longest backoff between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(20);
/// Scales the backoff down for tests that inject hundreds of faults (`ORCHESTRATE_RETRY_BACKOFF_MS`:
/// the first backoff in milliseconds; the longest stays twenty times that). The attempts, what is
/// retried and the adaptive rate limit are unchanged.
pub const RETRY_BACKOFF_ENV: &str = "ORCHESTRATE_RETRY_BACKOFF_MS";

/// Control-plane timeouts: every service but S3 and the runtime.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// S3's timeouts: uploads of training data take longer than a control-plane call.
pub fn s3_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(S3_ATTEMPT_TIMEOUT)
        .operation_timeout(S3_OPERATION_TIMEOUT)
        .build()
}

/// The SageMaker runtime's timeouts: one attempt may last as long as the model container may.
pub fn invoke_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(INVOKE_ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// Adaptive retries: the standard strategy (transient errors, throttling and timeouts retried with
/// exponential backoff and full jitter) plus a client-side token bucket that slows the client down
/// while the service throttles it, instead of every retry adding to the throttling.
pub fn retries(env: impl Fn(&str) -> Option<String>) -> RetryConfig {
    let initial = env(RETRY_BACKOFF_ENV)
        .and_then(|ms| ms.parse().ok())
        .map_or(INITIAL_BACKOFF, Duration::from_millis);
    let longest = if initial == INITIAL_BACKOFF {
        MAX_BACKOFF
    } else {
        initial * 20
    };
    RetryConfig::adaptive()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(initial)
        .with_max_backoff(longest)
}

/// Why the account of the credentials is unknown: STS `GetCallerIdentity` is the first call of
/// every command on AWS.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// No source of the credential chain had credentials; nothing was sent.
    #[error(
        "no AWS credentials found{}: set AWS_PROFILE (SSO, credential_process and role_arn profiles \
         work), AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run on an instance or container with a role",
        profile.as_ref().map(|p| format!(" (profile `{p}` has none, or does not exist)")).unwrap_or_default()
    )]
    NoCredentials {
        /// `AWS_PROFILE`, when set.
        profile: Option<String>,
    },
    /// STS refused the credentials or could not be reached.
    #[error("STS GetCallerIdentity failed")]
    Sts {
        class: ErrorClass,
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    #[error("STS GetCallerIdentity returned no account")]
    NoAccount,
}

impl AccountError {
    pub fn class(&self) -> ErrorClass {
        match self {
            AccountError::NoCredentials { .. } => ErrorClass::NoCredentials,
            AccountError::Sts { class, .. } => *class,
            AccountError::NoAccount => ErrorClass::Other,
        }
    }
}

/// For the calls that need the account in passing (a bucket's expected owner, a role's trust
/// policy): after [`Clients::identify`] succeeded they never see this.
impl From<AccountError> for AwsError {
    fn from(error: AccountError) -> Self {
        AwsError {
            action: "identify the account of",
            kind: Kind::Role,
            name: "caller".to_string(),
            class: error.class(),
            code: None,
            source: Box::new(error),
        }
    }
}

/// One client per service, sharing credentials, region and endpoint configuration.
#[derive(Debug, Clone)]
pub struct Clients {
    pub s3: aws_sdk_s3::Client,
    pub iam: aws_sdk_iam::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub sts: aws_sdk_sts::Client,
    pub sagemaker: aws_sdk_sagemaker::Client,
    pub runtime: aws_sdk_sagemakerruntime::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub autoscaling: aws_sdk_applicationautoscaling::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    region: String,
    /// `AWS_PROFILE`, for the message when no credentials are found.
    profile: Option<String>,
    account: std::sync::Arc<OnceCell<String>>,
}

impl Clients {
    /// Loads the shared configuration from the environment for `region` and builds every client.
    pub async fn load(region: &str) -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .load()
            .await;
        Self::from_config(&config, |name| std::env::var(name).ok())
    }

    /// Builds every client from `config`; `env` reads environment variables (injected for tests).
    pub fn from_config(config: &SdkConfig, env: impl Fn(&str) -> Option<String>) -> Self {
        let profile = env(PROFILE_ENV).filter(|p| !p.trim().is_empty());
        let path_style = s3_path_style(config.endpoint_url(), &env);
        let config = &config
            .to_builder()
            .timeout_config(timeouts())
            .retry_config(retries(&env))
            .build();
        // Each `Clients` gets its own retry quota: the SDK keeps one token bucket per retry
        // partition name for the whole process, so clients built apart (tests build many) would
        // otherwise drain each other's retries.
        static NEXT_PARTITION: AtomicU64 = AtomicU64::new(0);
        let instance = NEXT_PARTITION.fetch_add(1, Ordering::Relaxed);
        let partition = |service: &str| RetryPartition::new(format!("orchestrate-{instance}-{service}"));
        let s3_config = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(path_style)
            .timeout_config(s3_timeouts())
            .retry_partition(partition("s3"))
            .build();
        let runtime_config = aws_sdk_sagemakerruntime::config::Builder::from(config)
            .timeout_config(invoke_timeouts())
            .retry_partition(partition("sagemaker-runtime"))
            .build();
        let region = config
            .region()
            .map(|r| r.as_ref().to_string())
            .unwrap_or_default();
        Self {
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            iam: aws_sdk_iam::Client::from_conf(
                aws_sdk_iam::config::Builder::from(config)
                    .retry_partition(partition("iam"))
                    .build(),
            ),
            ecr: aws_sdk_ecr::Client::from_conf(
                aws_sdk_ecr::config::Builder::from(config)
                    .retry_partition(partition("ecr"))
                    .build(),
            ),
            sts: aws_sdk_sts::Client::from_conf(
                aws_sdk_sts::config::Builder::from(config)
                    .retry_partition(partition("sts"))
                    .build(),
            ),
            sagemaker: aws_sdk_sagemaker::Client::from_conf(
                aws_sdk_sagemaker::config::Builder::from(config)
                    .retry_partition(partition("sagemaker"))
                    .build(),
            ),
            runtime: aws_sdk_sagemakerruntime::Client::from_conf(runtime_config),
            logs: aws_sdk_cloudwatchlogs::Client::from_conf(
                aws_sdk_cloudwatchlogs::config::Builder::from(config)
                    .retry_partition(partition("logs"))
                    .build(),
            ),
            autoscaling: aws_sdk_applicationautoscaling::Client::from_conf(
                aws_sdk_applicationautoscaling::config::Builder::from(config)
                    .retry_partition(partition("application-autoscaling"))
                    .build(),
            ),
            cloudwatch: aws_sdk_cloudwatch::Client::from_conf(
                aws_sdk_cloudwatch::config::Builder::from(config)
                    .retry_partition(partition("cloudwatch"))
                    .build(),
            ),
            region,
            profile,
            account: Default::default(),
        }
    }

    /// The deployment's region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The account the credentials belong to (STS `GetCallerIdentity`, asked once).
    pub async fn account(&self) -> Result<&str, AwsError> {
        Ok(self.identify().await?)
    }

    /// [`Clients::account`] with the reason it is unknown: the first call of every command, whose
    /// error tells "no credentials anywhere" from a refusal by STS.
    pub async fn identify(&self) -> Result<&str, AccountError> {
        let account = self
            .account
            .get_or_try_init(|| async {
                let identity = self.sts.get_caller_identity().send().await.map_err(|error| {
                    match errors::classify(&error) {
                        ErrorClass::NoCredentials => {
                            // Which sources were tried, and why each had none: for `-v`.
                            tracing::debug!(chain = %DisplayErrorContext(&error), "no credentials");
                            AccountError::NoCredentials {
                                profile: self.profile.clone(),
                            }
                        }
                        class => AccountError::Sts {
                            class,
                            source: errors::sdk_cause(class, error),
                        },
                    }
                })?;
                identity
                    .account()
                    .map(str::to_string)
                    .ok_or(AccountError::NoAccount)
            })
            .await?;
        Ok(account)
    }
}

/// The DNS suffix of a region's AWS endpoints (`amazonaws.com`, `amazonaws.com.cn` in China).
pub fn dns_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    }
}

/// The ARN partition of a region (`aws`, `aws-cn`, `aws-us-gov`).
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// Whether S3 must be addressed path-style: whenever its endpoint is overridden, by the shared
/// configuration or by `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3`.
pub fn s3_path_style(config_endpoint: Option<&str>, env: impl Fn(&str) -> Option<String>) -> bool {
    let set = |value: Option<String>| value.is_some_and(|v| !v.trim().is_empty());
    config_endpoint.is_some_and(|e| !e.is_empty()) || set(env(S3_ENDPOINT_ENV)) || set(env(ENDPOINT_ENV))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn path_style_only_when_an_endpoint_is_overridden() {
        assert!(!s3_path_style(None, env_of(&[])));
        assert!(!s3_path_style(None, env_of(&[(ENDPOINT_ENV, "")])));
        assert!(s3_path_style(
            None,
            env_of(&[(ENDPOINT_ENV, "http://127.0.0.1:5000")])
        ));
        assert!(s3_path_style(
            None,
            env_of(&[(S3_ENDPOINT_ENV, "http://127.0.0.1:9000")])
        ));
        assert!(s3_path_style(Some("http://127.0.0.1:5000"), env_of(&[])));
    }

    #[test]
    fn partitions_follow_the_region() {
        assert_eq!(partition("us-east-1"), "aws");
        assert_eq!(partition("cn-north-1"), "aws-cn");
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
    }

    #[tokio::test]
    async fn clients_take_the_region_and_path_style_from_one_config() {
        let config = SdkConfig::builder()
            .region(Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:1")
            .behavior_version(BehaviorVersion::latest())
            .build();
        let clients = Clients::from_config(&config, |_| None);
        assert_eq!(clients.region(), "eu-west-1");
        assert_eq!(
            clients.iam.config().region().map(|r| r.as_ref()),
            Some("eu-west-1")
        );
    }

    /// Regression: the clients had no timeouts at all and the SDK's default of 3 attempts.
    #[tokio::test]
    async fn every_client_has_timeouts_and_adaptive_retries() {
        use aws_config::retry::RetryMode;
        let config = SdkConfig::builder()
            .region(Region::new("us-east-1"))
            .behavior_version(BehaviorVersion::latest())
            .build();
        let clients = Clients::from_config(&config, |_| None);
        let control = [
            clients.iam.config().timeout_config().cloned(),
            clients.ecr.config().timeout_config().cloned(),
            clients.sts.config().timeout_config().cloned(),
            clients.sagemaker.config().timeout_config().cloned(),
            clients.logs.config().timeout_config().cloned(),
            clients.autoscaling.config().timeout_config().cloned(),
        ];
        for timeouts in control {
            let timeouts = timeouts.expect("a timeout config");
            assert_eq!(timeouts.connect_timeout(), Some(CONNECT_TIMEOUT));
            assert_eq!(timeouts.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
            assert_eq!(timeouts.operation_timeout(), Some(OPERATION_TIMEOUT));
        }
        let s3 = clients.s3.config().timeout_config().expect("S3 timeouts");
        assert_eq!(s3.connect_timeout(), Some(CONNECT_TIMEOUT));
        assert_eq!(s3.operation_attempt_timeout(), Some(S3_ATTEMPT_TIMEOUT));
        assert_eq!(s3.operation_timeout(), Some(S3_OPERATION_TIMEOUT));
        let runtime = clients
            .runtime
            .config()
            .timeout_config()
            .expect("runtime timeouts");
        assert_eq!(runtime.operation_attempt_timeout(), Some(INVOKE_ATTEMPT_TIMEOUT));
        let retries = [
            clients.s3.config().retry_config().cloned(),
            clients.iam.config().retry_config().cloned(),
            clients.ecr.config().retry_config().cloned(),
            clients.sts.config().retry_config().cloned(),
            clients.sagemaker.config().retry_config().cloned(),
            clients.runtime.config().retry_config().cloned(),
            clients.logs.config().retry_config().cloned(),
            clients.autoscaling.config().retry_config().cloned(),
        ];
        for retry in retries {
            let retry = retry.expect("a retry config");
            assert_eq!(retry.mode(), RetryMode::Adaptive);
            assert_eq!(retry.max_attempts(), MAX_ATTEMPTS);
            assert_eq!(retry.initial_backoff(), INITIAL_BACKOFF);
            assert_eq!(retry.max_backoff(), MAX_BACKOFF);
        }
    }

    /// Regression: the SDK's retry quota is one token bucket per partition name per process, so
    /// every client of every `Clients` drew from the same one; a burst of faults seen by one set
    /// of clients denied another's retries.
    #[test]
    fn each_clients_has_its_own_retry_quota() {
        let config = SdkConfig::builder()
            .region(Region::new("us-east-1"))
            .behavior_version(BehaviorVersion::latest())
            .build();
        let partitions = |clients: &Clients| {
            [
                clients.s3.config().retry_partition().map(ToString::to_string),
                clients.iam.config().retry_partition().map(ToString::to_string),
                clients.ecr.config().retry_partition().map(ToString::to_string),
                clients.sts.config().retry_partition().map(ToString::to_string),
                clients
                    .sagemaker
                    .config()
                    .retry_partition()
                    .map(ToString::to_string),
                clients
                    .runtime
                    .config()
                    .retry_partition()
                    .map(ToString::to_string),
                clients.logs.config().retry_partition().map(ToString::to_string),
                clients
                    .autoscaling
                    .config()
                    .retry_partition()
                    .map(ToString::to_string),
            ]
            .map(|p| p.expect("a retry partition"))
        };
        let one = partitions(&Clients::from_config(&config, |_| None));
        let other = partitions(&Clients::from_config(&config, |_| None));
        let distinct: std::collections::BTreeSet<&String> = one.iter().chain(&other).collect();
        assert_eq!(distinct.len(), one.len() * 2, "{one:?} {other:?}");
    }
}
