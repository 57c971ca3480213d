//! No secret reaches a log or an error: a whole AWS lifecycle (`up`, `status`, `invoke`, `down`)
//! against moto with the SageMaker emulation and the registry, with every log line on (`RUST_LOG=trace`
//! and `-vvv`) and a distinctive secret access key and session token, whose captured stdout and
//! stderr must contain neither of them, nor ECR's password, nor its token (base64 of
//! `AWS:<password>`, also the value of the registry's `Authorization: Basic` header). And
//! `ORCHESTRATE_REGISTRY` over plain HTTP to another machine is refused before anything is done.

use orchestrate_e2e::aws::{Aws, REGION};
use orchestrate_e2e::{Deployment, Run};
use testbed::{Moto, mutating};

const NAME: &str = "e2e-secrets";
/// moto accepts any secret key and session token; these are odd enough not to appear by chance.
const SECRET_ACCESS_KEY: &str = "Zq7SECRETkeyMustNeverBeLogged/x9Rw3Tn8+vLp2Hs5Kd";
/// Sent with every request (`x-amz-security-token`), unlike the secret key.
const SESSION_TOKEN: &str = "FwoGZXIvYXdzSESSIONtokenMustNeverBeLogged0q1w2e3r4t5y6u7i8o9p";

fn deploy_yaml() -> String {
    format!(
        "version: 1\nname: {NAME}\ntarget: aws\nregion: {REGION}\n\
         data: {{train: train.csv, validation: 0.2}}\n\
         training:\n  max_runtime: 10m\n  hyperparameters: {{max_rounds: 10, threads: 2}}\n\
         endpoint:\n  wait_timeout: 5m\n"
    )
}

/// Every way a secret could be written: as is, and (for the ECR password) inside the token.
struct Secrets {
    named: Vec<(&'static str, String)>,
}

impl Secrets {
    /// Where in `run`'s stdout and stderr each secret first appears: (secret, stream, the line).
    fn found_in(&self, run: &Run) -> Vec<String> {
        let mut found = Vec::new();
        for (what, secret) in &self.named {
            for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
                if let Some(line) = text.lines().find(|line| line.contains(secret.as_str())) {
                    let shown: String = line.chars().take(600).collect();
                    found.push(format!("the {what} on {stream}: {shown}"));
                }
            }
        }
        found
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traced_lifecycle_logs_no_secret() {
    let Some(aws) = Aws::start().await else {
        return;
    };
    let token = aws_sdk_ecr::Client::new(&aws.config)
        .get_authorization_token()
        .send()
        .await
        .expect("ECR token")
        .authorization_data()[0]
        .authorization_token()
        .expect("a token")
        .to_string();
    let (_, password) = aws::ecr_image::decode_token(&token).expect("a decodable token");
    let secrets = Secrets {
        named: vec![
            ("secret access key", SECRET_ACCESS_KEY.to_string()),
            ("session token", SESSION_TOKEN.to_string()),
            ("ECR password", password),
            ("ECR token", token),
        ],
    };

    let mut env: Vec<(&str, String)> = aws
        .env
        .iter()
        .filter(|(key, _)| !["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"].contains(key))
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    env.push(("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_string()));
    env.push(("AWS_SESSION_TOKEN", SESSION_TOKEN.to_string()));
    env.push(("RUST_LOG", "trace".to_string()));

    let deployment = Deployment::new(&deploy_yaml());
    deployment.demo_data(400);
    let text = std::fs::read_to_string(deployment.path().join("train.csv")).unwrap();
    let request: Vec<&str> = text.lines().take(3).collect();
    let request_file = deployment.path().join("request.csv");
    std::fs::write(&request_file, format!("{}\n", request.join("\n"))).unwrap();

    let mut traced = 0;
    let mut leaks = Vec::new();
    for (args, code) in [
        (vec!["up"], 0),
        (vec!["status"], 0),
        (vec!["invoke", request_file.to_str().unwrap()], 0),
        (vec!["down", "--yes"], 0),
    ] {
        let command = args.join(" ");
        let mut args: Vec<&str> = args.clone();
        args.insert(0, "-vvv");
        let run = deployment.orchestrate_with(&args, &env).expect(code);
        leaks.extend(
            secrets
                .found_in(&run)
                .into_iter()
                .map(|leak| format!("`orchestrate {command}` wrote {leak}")),
        );
        traced += run.stderr.lines().filter(|l| l.contains("TRACE")).count();
    }
    assert!(leaks.is_empty(), "secrets in the output:\n{}", leaks.join("\n"));
    // The logs were on: the assertion above looked at the SDK's and the HTTP clients' trace lines.
    assert!(traced > 100, "only {traced} trace lines: was the log on?");
}

#[tokio::test]
async fn a_plain_http_registry_on_another_machine_is_refused_before_any_change() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let deployment = Deployment::new(&deploy_yaml());
    deployment.demo_data(50);
    let mut env = moto.env(REGION);
    env.push(("ORCHESTRATE_REGISTRY", "http://10.0.0.5:5000".to_string()));
    let run = deployment.orchestrate_with(&["up"], &env).expect(1);
    assert!(
        run.stderr.contains("cannot push to ORCHESTRATE_REGISTRY"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("unencrypted"), "{}", run.stderr);
    let requests = moto.requests().await;
    assert!(
        !requests.iter().any(|r| r.action == "GetAuthorizationToken"),
        "ECR's password was asked for: {requests:?}"
    );
    assert!(mutating(&requests).is_empty(), "{requests:?}");
}
