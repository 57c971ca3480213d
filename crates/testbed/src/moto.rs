//! moto_server through our launcher (`moto_launcher.py`, shipped in this crate): moto at the pinned
//! version, with the launcher's patches and its request log, on a free loopback port; optionally with
//! its SageMaker emulation, which runs a real `model-image` for training jobs and endpoints.
//!
//! Every request is checked against AWS's service models first (`request_check.py`, botocore's
//! models at [`BOTOCORE_VERSION`]): one AWS would reject is answered with HTTP 400 naming the
//! operation, the member and the rule, and fails the test when the [`Moto`] is dropped.
//!
//! CloudWatch is served over Smithy RPC v2 CBOR, the protocol the current `aws-sdk-cloudwatch`
//! speaks and moto does not (`cloudwatch_cbor.py`): a shim translating to moto's own JSON 1.0
//! CloudWatch, rather than a pin to an older query-protocol SDK, so tests exercise the wire format
//! production uses and the SDK can follow its releases.

use std::path::Path;
use std::process::Command;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use serde::Deserialize;

use crate::requests::Request;
use crate::server::Server;
use crate::tools::{Tool, require};

/// The launcher, written to the server's temporary directory at start.
const LAUNCHER: &str = include_str!("../moto_launcher.py");
/// The launcher's modules, written beside it: the check of every request against AWS's service
/// models (botocore's), IAM enforcement with AWS's action and resource tables (parliament's),
/// S3's `ExpectedBucketOwner`, which moto ignores, S3's conditional writes made atomic, and
/// CloudWatch over RPC v2 CBOR (installed by the request check on the first such request).
const LAUNCHER_MODULES: &[(&str, &str)] = &[
    ("request_check.py", include_str!("../request_check.py")),
    ("iam_policy_check.py", include_str!("../iam_policy_check.py")),
    ("bucket_owner.py", include_str!("../bucket_owner.py")),
    ("s3_conditions.py", include_str!("../s3_conditions.py")),
    ("cloudwatch_cbor.py", include_str!("../cloudwatch_cbor.py")),
];
/// Where the launcher keeps the count of checked requests and every violation.
const VIOLATIONS_FILE: &str = "request-checks.json";

/// The botocore version whose service models the requests are checked against (`.ci/setup` pins it).
pub const BOTOCORE_VERSION: &str = "1.43.11";

/// The moto version the launcher's patches are written for (its `MOTO_VERSION`; `.ci/setup` pins it).
pub const MOTO_VERSION: &str = "5.2.1";

/// Access key and secret the SDK's test credentials use (`Credentials::for_tests`); moto accepts any
/// unless IAM is enforced.
const ACCESS_KEY_ID: &str = "ANOTREAL";
const SECRET_ACCESS_KEY: &str = "notrealrnrELgWzOk3IfjzDKtFBhDby";

/// An access key and its secret.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl AccessKey {
    fn for_tests() -> Self {
        Self {
            access_key_id: ACCESS_KEY_ID.to_string(),
            secret_access_key: SECRET_ACCESS_KEY.to_string(),
        }
    }
}

/// A request IAM enforcement denied ([`Moto::start_sagemaker_enforcing_iam`]).
#[derive(Debug, Clone, Deserialize)]
pub struct Denial {
    /// The caller's ARN.
    pub caller: String,
    /// `action on resource`, as AWS's tables define them (`None` when the request was not parsed).
    pub requirement: Option<String>,
    pub reason: String,
}

/// A running moto_server, killed on drop.
pub struct Moto {
    server: Server,
    url: String,
    http: reqwest::Client,
    /// The key [`Moto::sdk_config`] and [`Moto::env`] sign with: the SDK's test key, or with IAM
    /// enforced the `testbed-admin` user's.
    key: AccessKey,
}

impl Moto {
    /// Starts moto on a free port of 127.0.0.1 and waits until `GET /moto-api/` answers 200. `None`
    /// (with a note) when python3 with moto is missing outside CI; see [`require`].
    ///
    /// Panics, with the tail of moto's log, if it exits or is not ready in time.
    pub async fn start() -> Option<Moto> {
        Self::start_with_env(&[]).await
    }

    /// [`Moto::start`] with more environment variables for the server (moto's own switches, such as
    /// `MOTO_IAM_LOAD_MANAGED_POLICIES=true`).
    pub async fn start_with_env(env: &[(&str, &str)]) -> Option<Moto> {
        Self::launch(env, None).await
    }

    /// [`Moto::start`] with SageMaker emulated by running `model_image` (the `model-image` binary; find
    /// it with [`crate::model_image`]): training jobs really train and upload `model.tar.gz`, with their
    /// log lines in CloudWatch Logs; endpoints really serve their model and answer `InvokeEndpoint`;
    /// UpdateEndpoint (with SageMaker's silent rollback) and StopTrainingJob work; duplicate names are
    /// rejected; every transitional status lasts at least 0.5 s; failures can be injected
    /// ([`Moto::inject_fault`]). The launcher's "SageMaker emulation" section has the details.
    ///
    /// The binary is hard-linked (or copied) into the server's directory first, so a rebuild during the
    /// test does not change it. Every process the emulation starts is stopped when the server is.
    pub async fn start_sagemaker(model_image: &Path) -> Option<Moto> {
        Self::start_sagemaker_with_env(model_image, &[]).await
    }

    /// [`Moto::start_sagemaker`] with more environment variables: moto's own, or the emulation's
    /// `TESTBED_SAGEMAKER_DELAY_SECONDS` (how long each transitional status lasts at least, default
    /// 0.5) and `TESTBED_SAGEMAKER_PING_SECONDS` (how long a serve process gets to answer `/ping`,
    /// default 60).
    pub async fn start_sagemaker_with_env(model_image: &Path, env: &[(&str, &str)]) -> Option<Moto> {
        Self::launch(env, Some(model_image)).await
    }

    /// [`Moto::start_sagemaker`] with IAM enforced from the first request (moto's
    /// `INITIAL_NO_AUTH_ACTION_COUNT=0`): every request must be signed with the key of an IAM user of
    /// the emulator, and is allowed only by that user's policies, evaluated on the action and the
    /// resources AWS's own tables define (the launcher's `iam_policy_check.py`, with parliament's
    /// `iam_definition.json`). [`Moto::sdk_config`] and [`Moto::env`] sign as `testbed-admin`, a user
    /// allowed everything; create the users under test with it. [`Moto::take_denials`] tells what
    /// was denied.
    pub async fn start_sagemaker_enforcing_iam(model_image: &Path) -> Option<Moto> {
        let mut moto = Self::launch(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")], Some(model_image)).await?;
        let url = format!("{}/_testbed/iam/admin", moto.url);
        let admin: Option<AccessKey> = moto
            .http
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        moto.key = admin.unwrap_or_else(|| moto.server.fail("enforces IAM but has no admin user"));
        Some(moto)
    }

    /// Every action IAM enforcement allowed `caller` (an ARN) since the start or the last call: what
    /// its policy was needed for.
    pub async fn take_allowed_actions(&self, caller: &str) -> std::collections::BTreeSet<String> {
        let url = format!("{}/_testbed/iam/allowed/take", self.url);
        let response = self
            .http
            .post(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let mut by_caller: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        by_caller.remove(caller).unwrap_or_default()
    }

    /// The requests IAM enforcement denied since the start or the last call, each with the action on
    /// the resource it lacked and why.
    pub async fn take_denials(&self) -> Vec<Denial> {
        let url = format!("{}/_testbed/iam/denials/take", self.url);
        let response = self
            .http
            .post(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        response
            .json()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"))
    }

    async fn launch(env: &[(&str, &str)], model_image: Option<&Path>) -> Option<Moto> {
        if !require(&[Tool::Moto]) {
            return None;
        }
        let dir = Server::directory("moto");
        let launcher = dir.path().join("moto_launcher.py");
        let port_file = dir.path().join("port");
        let empty = dir.path().join("empty-aws-config");
        let modules = LAUNCHER_MODULES
            .iter()
            .map(|(name, contents)| (dir.path().join(name), *contents));
        for (path, contents) in [(launcher.clone(), LAUNCHER), (empty.clone(), "")]
            .into_iter()
            .chain(modules)
        {
            std::fs::write(&path, contents)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        }
        let private_model_image = model_image.map(|original| {
            let copy = dir.path().join("model-image");
            if std::fs::hard_link(original, &copy).is_err() {
                std::fs::copy(original, &copy).unwrap_or_else(|e| {
                    panic!("cannot copy {} to {}: {e}", original.display(), copy.display())
                });
            }
            copy
        });
        let mut command = Command::new("python3");
        command
            .arg(&launcher)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--exit-on-stdin-eof",
                "--port-file",
            ])
            .arg(&port_file)
            .arg("--violations-file")
            .arg(dir.path().join(VIOLATIONS_FILE));
        if let Some(model_image) = &private_model_image {
            command.arg("--model-image").arg(model_image);
        }
        command
            .env_remove("TESTBED_MODEL_IMAGE")
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", &empty)
            .env("AWS_SHARED_CREDENTIALS_FILE", &empty)
            .envs(env.iter().copied());
        let mut server = Server::spawn("moto", command, dir, true);

        let port = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file)
                && let Ok(port) = text.trim().parse::<u16>()
            {
                break port;
            }
            server.not_ready_yet("its port file").await;
        };
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        loop {
            if let Ok(response) = http.get(format!("{url}/moto-api/")).send().await
                && response.status().is_success()
            {
                break;
            }
            server.not_ready_yet("GET /moto-api/ to answer 200").await;
        }
        Some(Moto {
            server,
            url,
            http,
            key: AccessKey::for_tests(),
        })
    }

    /// What the service-model check found so far: the requests checked and every violation.
    pub fn request_checks(&self) -> RequestChecks {
        let path = self.server.dir().join(VIOLATIONS_FILE);
        match std::fs::read(&path) {
            Ok(json) => serde_json::from_slice(&json)
                .unwrap_or_else(|e| panic!("{} is not the launcher's document: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RequestChecks::default(),
            Err(e) => panic!("cannot read {}: {e}", path.display()),
        }
    }

    /// The rules of `service`'s `operation` (botocore's names: `sagemaker`, `CreateTrainingJob`) that
    /// `params` (its input structure) breaks, without sending it: for values derived ahead of any
    /// request (the names of the longest deployment name). With `partial`, members `params` leaves
    /// out are not reported missing.
    pub async fn check(
        &self,
        service: &str,
        operation: &str,
        params: serde_json::Value,
        partial: bool,
    ) -> Vec<String> {
        #[derive(Deserialize)]
        struct Checked {
            violations: Vec<String>,
        }
        let url = format!("{}/_testbed/check", self.url);
        let request = serde_json::json!({
            "service": service,
            "operation": operation,
            "params": params,
            "partial": partial,
        });
        let response = self
            .http
            .post(&url)
            .json(&request)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        assert!(
            response.status().is_success(),
            "POST {url}: {}",
            response.status()
        );
        let checked: Checked = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        checked.violations
    }

    /// Takes the violations found so far, so that a test that sends requests AWS would reject on
    /// purpose does not fail when the server stops.
    pub async fn take_violations(&self) -> Vec<Violation> {
        let violations = self.request_checks().violations;
        let url = format!("{}/_testbed/violations/take", self.url);
        let response = self.http.post(&url).send().await;
        assert!(
            response.is_ok_and(|r| r.status().is_success()),
            "POST {url} failed"
        );
        violations
    }

    /// The endpoint, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// An SDK configuration for `region` that talks to this moto with static test credentials (with
    /// IAM enforced, the admin's) and ignores the host's environment and `~/.aws` files. Build
    /// clients with `aws::Clients::from_config(&config, |_| None)`.
    pub async fn sdk_config(&self, region: &str) -> SdkConfig {
        self.sdk_config_as(region, &self.key).await
    }

    /// [`Moto::sdk_config`] signing with `key` (an IAM user of this moto, under enforcement).
    pub async fn sdk_config_as(&self, region: &str, key: &AccessKey) -> SdkConfig {
        let credentials = aws_credential_types::Credentials::new(
            &key.access_key_id,
            &key.secret_access_key,
            None,
            None,
            "testbed",
        );
        aws_config::defaults(BehaviorVersion::latest())
            .empty_test_environment()
            .credentials_provider(credentials)
            .region(Region::new(region.to_string()))
            .endpoint_url(&self.url)
            .load()
            .await
    }

    /// The environment a child process (the `orchestrate` binary under test) needs to use this moto
    /// in `region`: endpoint, static credentials, no instance metadata, empty shared config files.
    pub fn env(&self, region: &str) -> Vec<(&'static str, String)> {
        let empty = self.server.dir().join("empty-aws-config").display().to_string();
        vec![
            ("AWS_ENDPOINT_URL", self.url.clone()),
            ("AWS_REGION", region.to_string()),
            ("AWS_ACCESS_KEY_ID", self.key.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.key.secret_access_key.clone()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
            ("AWS_CONFIG_FILE", empty.clone()),
            ("AWS_SHARED_CREDENTIALS_FILE", empty),
        ]
    }

    /// Every AWS request moto served since it started or since [`Moto::reset_requests`], in order.
    pub async fn requests(&self) -> Vec<Request> {
        let url = format!("{}/_testbed/requests", self.url);
        let response = self.http.get(&url).send().await;
        match response {
            Ok(response) if response.status().is_success() => response
                .json()
                .await
                .unwrap_or_else(|e| self.server.fail(&format!("sent an unreadable request log ({e})"))),
            other => self
                .server
                .fail(&format!("did not serve its request log ({other:?})")),
        }
    }

    /// Forgets the requests recorded so far.
    pub async fn reset_requests(&self) {
        let url = format!("{}/_testbed/requests/reset", self.url);
        match self.http.post(&url).send().await {
            Ok(response) if response.status().is_success() => {}
            other => self
                .server
                .fail(&format!("did not reset its request log ({other:?})")),
        }
    }

    /// moto's log so far (the launcher's messages and werkzeug's access lines).
    pub fn log(&self) -> String {
        self.server.log()
    }

    /// Injects a failure into the SageMaker emulation ([`Moto::start_sagemaker`] only); it is consumed
    /// by the first call it affects.
    pub async fn inject_fault(&self, fault: Fault) {
        let mut body = serde_json::json!({ fault.kind: fault.name });
        if let Some(reason) = fault.reason {
            body["reason"] = reason.into();
        }
        self.control(reqwest::Method::POST, "faults", Some(body)).await;
    }

    /// Forgets the injected faults not consumed yet.
    pub async fn reset_faults(&self) {
        self.control(reqwest::Method::POST, "faults/reset", None).await;
    }

    /// Every endpoint of the SageMaker emulation, with the serve process answering for it.
    pub async fn endpoints(&self) -> Vec<ServedEndpoint> {
        let answer = self.control(reqwest::Method::GET, "endpoints", None).await;
        serde_json::from_value(answer).unwrap_or_else(|e| {
            self.server
                .fail(&format!("sent an unreadable endpoint list ({e})"))
        })
    }

    /// The URL of the `model-image serve` process answering for endpoint `name` (any region), if one
    /// does: `http://127.0.0.1:PORT`, with `GET /ping` and `POST /invocations`.
    pub async fn endpoint_url(&self, name: &str) -> Option<String> {
        self.endpoints()
            .await
            .into_iter()
            .find(|endpoint| endpoint.name == name)
            .and_then(|endpoint| endpoint.url)
    }

    /// Every training job of the SageMaker emulation, with its `model-image train` process.
    pub async fn training_jobs(&self) -> Vec<TrainingProcess> {
        let answer = self.control(reqwest::Method::GET, "training-jobs", None).await;
        serde_json::from_value(answer).unwrap_or_else(|e| {
            self.server
                .fail(&format!("sent an unreadable training-job list ({e})"))
        })
    }

    /// `METHOD /_testbed/PATH` with an optional JSON body; the JSON answer. Panics unless it is 200.
    async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let url = format!("{}/_testbed/{path}", self.url);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => self.server.fail(&format!("did not answer {method} {url} ({e})")),
        };
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            self.server
                .fail(&format!("answered {method} {url} with {status}: {text}"));
        }
        serde_json::from_str(&text).unwrap_or_else(|e| {
            self.server
                .fail(&format!("answered {method} {url} with no JSON ({e}): {text}"))
        })
    }
}

/// A failure for the SageMaker emulation to inject ([`Moto::inject_fault`]). Each is consumed by the
/// first call it affects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    kind: &'static str,
    name: String,
    reason: Option<String>,
}

/// The check of every request against AWS's service models, as the launcher keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RequestChecks {
    /// Requests checked.
    pub checked: u64,
    /// Requests AWS would have rejected, each with its operation and the broken rules.
    pub violations: Vec<Violation>,
}

/// One request AWS would have rejected.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Violation {
    /// `service:Operation`.
    pub operation: String,
    /// `member path: rule`, one per broken rule.
    pub violations: Vec<String>,
}

impl Drop for Moto {
    /// A request AWS would reject fails the test that made it, also when the code under test
    /// swallowed the 400 the launcher answered it with. The count is printed for the README's figure.
    fn drop(&mut self) {
        let checks = self.request_checks();
        eprintln!(
            "testbed: {} AWS request(s) checked against botocore {BOTOCORE_VERSION} service models, {} violation(s)",
            checks.checked,
            checks.violations.len()
        );
        if !checks.violations.is_empty() && !std::thread::panicking() {
            let list: Vec<String> = checks
                .violations
                .iter()
                .map(|v| format!("  {}: {}", v.operation, v.violations.join("; ")))
                .collect();
            panic!(
                "requests AWS would reject (botocore {BOTOCORE_VERSION} service models):\n{}",
                list.join("\n")
            );
        }
    }
}

impl Fault {
    /// The next training job whose name starts with `job_name_prefix` fails in its Training phase
    /// (after writing the reason to its log), FailureReason `AlgorithmError: injected by the testbed`.
    pub fn training_fails(job_name_prefix: impl Into<String>) -> Self {
        Self::new("training_fails", job_name_prefix)
    }

    /// The next CreateEndpoint of `endpoint` ends Failed, FailureReason SageMaker's failed health check.
    pub fn endpoint_creation_fails(endpoint: impl Into<String>) -> Self {
        Self::new("endpoint_creation_fails", endpoint)
    }

    /// The next UpdateEndpoint of `endpoint` rolls back as SageMaker does: Updating, RollingBack, then
    /// InService with the old EndpointConfigName and FailureReason set.
    pub fn endpoint_update_rolls_back(endpoint: impl Into<String>) -> Self {
        Self::new("endpoint_update_rolls_back", endpoint)
    }

    /// The FailureReason to report instead of the default.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    fn new(kind: &'static str, name: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.into(),
            reason: None,
        }
    }
}

/// An endpoint of the SageMaker emulation ([`Moto::endpoints`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ServedEndpoint {
    pub account: String,
    pub region: String,
    pub name: String,
    /// EndpointStatus (`Creating`, `InService`, `Updating`, `RollingBack`, `Failed`, `Deleting`).
    pub status: String,
    /// EndpointConfigName, as DescribeEndpoint reports it.
    pub endpoint_config: String,
    /// The serve process answering invocations, `http://127.0.0.1:PORT`; None while none does.
    pub url: Option<String>,
    /// The endpoint config the serve process was started for.
    pub serving_config: Option<String>,
    /// The serve process's id.
    pub pid: Option<u32>,
}

/// A training job of the SageMaker emulation ([`Moto::training_jobs`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TrainingProcess {
    pub account: String,
    pub region: String,
    pub name: String,
    /// TrainingJobStatus.
    pub status: String,
    /// The `model-image train` process's id, once started.
    pub pid: Option<u32>,
    /// Whether that process is still running.
    pub running: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_launcher_pins_the_same_moto_version() {
        assert!(
            LAUNCHER.contains(&format!("\nMOTO_VERSION = \"{MOTO_VERSION}\"\n")),
            "moto_launcher.py's MOTO_VERSION differs from {MOTO_VERSION}"
        );
    }

    #[test]
    fn ci_setup_installs_the_pinned_botocore() {
        let setup = include_str!("../../../.ci/setup");
        assert!(
            setup.contains(&format!("\nBOTOCORE_VERSION={BOTOCORE_VERSION}\n")),
            ".ci/setup pins another botocore than {BOTOCORE_VERSION}"
        );
    }

    #[test]
    fn ci_setup_installs_the_pinned_moto() {
        let setup = include_str!("../../../.ci/setup");
        assert!(setup.contains(&format!("MOTO_VERSION={MOTO_VERSION}\n")));
    }
}
