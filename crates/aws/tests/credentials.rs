//! The credential sources users have, through `Clients::load` exactly as `orchestrate` loads them:
//! a `credential_process` profile, an assume-role profile (`role_arn` + `source_profile`), web
//! identity (CI OIDC), an SSO profile with the token `aws sso login` cached, and none at all. STS is
//! moto's; SSO's portal is a stand-in on loopback that checks the cached token arrives and hands out
//! the keys of a moto IAM user, so the caller STS reports proves whose keys signed. Web identity's
//! STS is a stand-in too: moto's request check cannot tell the service of an unsigned request
//! (`AssumeRoleWithWebIdentity` is one), so it rejects it.
//!
//! The SDK reads `HOME`, the `AWS_*` variables and the shared config files from the process
//! environment, which a test cannot change (tests run on parallel threads, and `set_var` is unsafe):
//! each case runs this test binary again, as a child process running only [`probe`], with exactly
//! the environment the case needs, and reads what the child found. Cases needing moto skip (with a
//! note) when it is not installed, outside CI.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws::Clients;
use aws::clients::AccountError;
use aws::errors::DisplayErrorContext;
use testbed::Moto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const REGION: &str = "eu-west-1";
/// moto's account.
const ACCOUNT: &str = "123456789012";
/// Set in the child's environment: run [`probe`] for real.
const PROBE_ENV: &str = "ORCHESTRATE_CREDENTIALS_PROBE";
/// Starts the line the child reports its finding on.
const PROBE_LINE: &str = "credentials probe: ";

/// What the child found.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// STS `GetCallerIdentity` answered: the caller's ARN.
    Caller(String),
    /// [`AccountError::NoCredentials`], displayed.
    NoCredentials(String),
    /// Any other failure, with its causes.
    Failed(String),
}

/// Not a test of its own: what the child process of every case runs (it does nothing unless
/// [`PROBE_ENV`] is set). Loads the clients as `orchestrate` does, identifies the account as its
/// first call does, and prints who STS says the caller is.
#[tokio::test]
async fn probe() {
    if std::env::var_os(PROBE_ENV).is_none() {
        return;
    }
    let clients = Clients::load(REGION).await;
    let found = match clients.identify().await {
        Ok(account) => {
            assert_eq!(account, ACCOUNT);
            match clients.sts.get_caller_identity().send().await {
                Ok(identity) => format!("caller {}", identity.arn().unwrap_or_default()),
                Err(e) => format!("failed {}", DisplayErrorContext(&e)),
            }
        }
        Err(e @ AccountError::NoCredentials { .. }) => format!("no-credentials {e}"),
        Err(e) => format!("failed {}", DisplayErrorContext(&e)),
    };
    println!("{PROBE_LINE}{}", found.replace('\n', " "));
}

/// Runs [`probe`] in a child process whose environment is `env` alone (plus `PATH`, and instance
/// metadata disabled so that nothing waits for it).
async fn probe_with(env: &[(&str, String)]) -> Found {
    let exe = std::env::current_exe().expect("the test binary");
    let output = tokio::process::Command::new(exe)
        .args(["probe", "--exact", "--nocapture", "--test-threads=1"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env(PROBE_ENV, "1")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .await
        .expect("run the probe");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the probe failed\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // (libtest prints `test probe ... ` before the test's own output, on the same line.)
    let line = stdout
        .lines()
        .find_map(|line| line.split_once(PROBE_LINE).map(|(_, found)| found))
        .unwrap_or_else(|| panic!("the probe reported nothing:\n{stdout}"));
    let (what, detail) = line.split_once(' ').unwrap_or((line, ""));
    match what {
        "caller" => Found::Caller(detail.to_string()),
        "no-credentials" => Found::NoCredentials(detail.to_string()),
        "failed" => Found::Failed(detail.to_string()),
        other => panic!("unknown finding `{other}`: {line}"),
    }
}

/// An IAM user of moto and its access key: whoever signs with the key is this user to STS.
struct User {
    arn: String,
    access_key_id: String,
    secret_access_key: String,
}

async fn create_user(moto: &Moto, name: &str) -> User {
    let iam = aws_sdk_iam::Client::new(&moto.sdk_config(REGION).await);
    let user = iam
        .create_user()
        .user_name(name)
        .send()
        .await
        .expect("create a user");
    let key = iam
        .create_access_key()
        .user_name(name)
        .send()
        .await
        .expect("create an access key");
    let key = key.access_key().expect("an access key");
    User {
        arn: user.user().expect("a user").arn().to_string(),
        access_key_id: key.access_key_id().to_string(),
        secret_access_key: key.secret_access_key().to_string(),
    }
}

/// Writes `text` to `dir/relative`, creating the folders.
fn write(dir: &Path, relative: &str, text: &str) -> PathBuf {
    let path = dir.join(relative);
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("create folders");
    std::fs::write(&path, text).expect("write");
    path
}

fn path_of(path: &Path) -> String {
    path.display().to_string()
}

#[tokio::test]
async fn credential_process_profile_supplies_the_keys() {
    let Some(moto) = Moto::start().await else { return };
    let user = create_user(&moto, "ci-deployer").await;
    let home = tempfile::tempdir().unwrap();
    let process_output = write(
        home.path(),
        "keys.json",
        &serde_json::json!({
            "Version": 1,
            "AccessKeyId": user.access_key_id,
            "SecretAccessKey": user.secret_access_key,
        })
        .to_string(),
    );
    // ~/.aws/config, where `aws configure` writes it.
    write(
        home.path(),
        ".aws/config",
        &format!(
            "[profile ci]\ncredential_process = cat {}\n",
            path_of(&process_output)
        ),
    );
    let found = probe_with(&[
        ("HOME", path_of(home.path())),
        ("AWS_PROFILE", "ci".to_string()),
        ("AWS_ENDPOINT_URL", moto.url().to_string()),
    ])
    .await;
    assert_eq!(found, Found::Caller(user.arn));
}

#[tokio::test]
async fn assume_role_profile_signs_as_the_role() {
    let Some(moto) = Moto::start().await else { return };
    let user = create_user(&moto, "laptop-user").await;
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    // Both files at the places AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE name; STS's endpoint
    // from the profile, for the AssumeRole call and the clients alike.
    let config = write(
        dir.path(),
        "config",
        &format!(
            "[profile deploy]\nrole_arn = arn:aws:iam::{ACCOUNT}:role/orchestrate-deployer\n\
             source_profile = base\nrole_session_name = laptop\nendpoint_url = {}\n",
            moto.url()
        ),
    );
    let credentials = write(
        dir.path(),
        "credentials",
        &format!(
            "[base]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            user.access_key_id, user.secret_access_key
        ),
    );
    let found = probe_with(&[
        ("HOME", path_of(home.path())),
        ("AWS_CONFIG_FILE", path_of(&config)),
        ("AWS_SHARED_CREDENTIALS_FILE", path_of(&credentials)),
        ("AWS_PROFILE", "deploy".to_string()),
    ])
    .await;
    assert_eq!(
        found,
        Found::Caller(format!(
            "arn:aws:sts::{ACCOUNT}:assumed-role/orchestrate-deployer/laptop"
        ))
    );
}

/// One request a [`StandIn`] received.
#[derive(Debug, Clone)]
struct Received {
    /// The request line and headers, header names lower-cased by the client or not.
    head: String,
    body: String,
}

impl Received {
    /// The value of header `name` (case-insensitive).
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// A stand-in AWS endpoint on a loopback port: answers each request with what `respond` makes of it
/// (content type, body), and keeps every request.
struct StandIn {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl StandIn {
    async fn start(respond: impl Fn(&Received) -> (&'static str, String) + Send + 'static) -> StandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let kept = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let Some(request) = read_request(&mut stream).await else {
                    continue;
                };
                kept.lock().unwrap().push(request.clone());
                let (content_type, body) = respond(&request);
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        StandIn { url, received, task }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one HTTP/1.1 request: its head, then `content-length` bytes of body.
async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
        bytes.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
    let mut request = Received {
        head,
        body: String::new(),
    };
    let length: usize = request
        .header("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = bytes[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
        body.extend_from_slice(&chunk[..n]);
    }
    request.body = String::from_utf8_lossy(&body).into_owned();
    Some(request)
}

#[tokio::test]
async fn web_identity_assumes_the_role_with_the_token_file() {
    const KEY: &str = "ASIAWEBIDENTITYKEY01";
    const SESSION_TOKEN: &str = "web-identity-session-token";
    let role = format!("arn:aws:sts::{ACCOUNT}:assumed-role/ci/pipeline");
    let answer = role.clone();
    let sts = StandIn::start(move |request| {
        let xml = if request.body.contains("Action=AssumeRoleWithWebIdentity") {
            format!(
                "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                 <AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>{KEY}</AccessKeyId>\
                 <SecretAccessKey>web-identity-secret</SecretAccessKey>\
                 <SessionToken>{SESSION_TOKEN}</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration>\
                 </Credentials><AssumedRoleUser><Arn>{answer}</Arn><AssumedRoleId>AROACI:pipeline</AssumedRoleId>\
                 </AssumedRoleUser></AssumeRoleWithWebIdentityResult>\
                 <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>"
            )
        } else {
            format!(
                "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                 <GetCallerIdentityResult><Arn>{answer}</Arn><UserId>AROACI:pipeline</UserId>\
                 <Account>{ACCOUNT}</Account></GetCallerIdentityResult>\
                 <ResponseMetadata><RequestId>2</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
            )
        };
        ("text/xml", xml)
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    // What a CI runner's OIDC step leaves: a token file and the role to assume with it.
    let oidc_token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjaSJ9.c2lnbmF0dXJl";
    let token_file = write(home.path(), "oidc-token", oidc_token);
    let found = probe_with(&[
        ("HOME", path_of(home.path())),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", path_of(&token_file)),
        ("AWS_ROLE_ARN", format!("arn:aws:iam::{ACCOUNT}:role/ci")),
        ("AWS_ROLE_SESSION_NAME", "pipeline".to_string()),
        ("AWS_ENDPOINT_URL", sts.url.clone()),
    ])
    .await;
    assert_eq!(found, Found::Caller(role));
    let received = sts.received();
    let (assume, identify): (Vec<&Received>, Vec<&Received>) = received
        .iter()
        .partition(|r| r.body.contains("Action=AssumeRoleWithWebIdentity"));
    // The role assumed once (the credentials are cached), with the file's token, unsigned.
    assert_eq!(assume.len(), 1, "{received:?}");
    let body = &assume[0].body;
    assert!(body.contains(&format!("WebIdentityToken={oidc_token}")), "{body}");
    assert!(
        body.contains(&format!("RoleArn=arn%3Aaws%3Aiam%3A%3A{ACCOUNT}%3Arole%2Fci")),
        "{body}"
    );
    assert!(body.contains("RoleSessionName=pipeline"), "{body}");
    // Every other call signed with the role's credentials.
    assert!(!identify.is_empty(), "{received:?}");
    for request in identify {
        let authorization = request.header("authorization").unwrap_or_default();
        assert!(
            authorization.contains(&format!("Credential={KEY}/")),
            "{authorization}"
        );
        assert_eq!(request.header("x-amz-security-token"), Some(SESSION_TOKEN));
    }
}

/// An SSO profile as `aws configure sso` writes it (an `sso-session`), and the token `aws sso login`
/// cached for that session, expiring at `expires_at`.
fn sso_home(home: &Path, expires_at: &str) {
    write(
        home,
        ".aws/config",
        &format!(
            "[profile dev]\nsso_session = corp\nsso_account_id = {ACCOUNT}\nsso_role_name = Deployer\n\n\
             [sso-session corp]\nsso_start_url = https://d-0000000000.awsapps.com/start\n\
             sso_region = {REGION}\nsso_registration_scopes = sso:account:access\n"
        ),
    );
    // The cache file is named by the SHA-1 of the session name: sha1("corp").
    write(
        home,
        ".aws/sso/cache/ee0bfd2552fbd840c02cc48b6e823320543c450f.json",
        &serde_json::json!({
            "startUrl": "https://d-0000000000.awsapps.com/start",
            "region": REGION,
            "accessToken": "cached-sso-access-token",
            "expiresAt": expires_at,
        })
        .to_string(),
    );
}

#[tokio::test]
async fn sso_profile_trades_the_cached_token_for_role_credentials() {
    let Some(moto) = Moto::start().await else { return };
    let user = create_user(&moto, "sso-deployer").await;
    // SSO's portal: GetRoleCredentials hands out the moto user's keys.
    let expiration = SystemTime::now() + Duration::from_secs(3600);
    let role_credentials = serde_json::json!({
        "roleCredentials": {
            "accessKeyId": user.access_key_id,
            "secretAccessKey": user.secret_access_key,
            "sessionToken": "portal-session-token",
            "expiration": expiration
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64,
        }
    })
    .to_string();
    let portal = StandIn::start(move |_| ("application/json", role_credentials.clone())).await;
    let home = tempfile::tempdir().unwrap();
    sso_home(home.path(), "2099-01-01T00:00:00Z");
    let found = probe_with(&[
        ("HOME", path_of(home.path())),
        ("AWS_PROFILE", "dev".to_string()),
        ("AWS_ENDPOINT_URL_SSO", portal.url.clone()),
        ("AWS_ENDPOINT_URL_STS", moto.url().to_string()),
    ])
    .await;
    assert_eq!(found, Found::Caller(user.arn));
    // GetRoleCredentials, once (the credentials are cached), with the cached token.
    let received = portal.received();
    assert_eq!(received.len(), 1, "{received:?}");
    let request = &received[0];
    let line = request.head.lines().next().unwrap_or_default();
    assert!(line.starts_with("GET /federation/credentials?"), "{line}");
    assert!(line.contains(&format!("account_id={ACCOUNT}")), "{line}");
    assert!(line.contains("role_name=Deployer"), "{line}");
    assert_eq!(
        request.header("x-amz-sso_bearer_token"),
        Some("cached-sso-access-token")
    );
}

#[tokio::test]
async fn sso_profile_with_an_expired_token_fails_at_the_sso_step_not_as_no_credentials() {
    let home = tempfile::tempdir().unwrap();
    sso_home(home.path(), "2020-01-01T00:00:00Z");
    let found = probe_with(&[
        ("HOME", path_of(home.path())),
        ("AWS_PROFILE", "dev".to_string()),
        // Nothing is sent: the expired token stops the SSO step first.
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:1".to_string()),
    ])
    .await;
    match found {
        Found::Failed(why) => {
            assert!(why.contains("STS GetCallerIdentity failed"), "{why}");
            assert!(why.to_lowercase().contains("sso"), "{why}");
            assert!(why.contains("expired"), "{why}");
            assert!(!why.contains("cargo feature"), "{why}");
        }
        other => panic!("want the SSO step's failure, got {other:?}"),
    }
}

#[tokio::test]
async fn no_credentials_anywhere_is_one_line_naming_the_sources() {
    let home = tempfile::tempdir().unwrap();
    let found = probe_with(&[("HOME", path_of(home.path()))]).await;
    let Found::NoCredentials(message) = found else {
        panic!("want no credentials, got {found:?}");
    };
    assert!(message.starts_with("no AWS credentials found: "), "{message}");
    for source in [
        "AWS_PROFILE",
        "SSO",
        "credential_process",
        "role_arn",
        "AWS_ACCESS_KEY_ID",
    ] {
        assert!(message.contains(source), "`{source}` missing from: {message}");
    }
    // A profile that does not exist is no source either, and is named.
    let found = probe_with(&[
        ("HOME", path_of(home.path())),
        ("AWS_PROFILE", "typo".to_string()),
    ])
    .await;
    let Found::NoCredentials(message) = found else {
        panic!("want no credentials, got {found:?}");
    };
    assert!(message.contains("profile `typo`"), "{message}");
}
