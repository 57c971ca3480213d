//! A Docker registry (Debian's `docker-registry`, distribution 2.8) with htpasswd basic auth and
//! filesystem storage, on a free loopback port: the stand-in for ECR's registry endpoint. Its access
//! log tells which requests it served, so a test can count blob uploads.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::server::Server;
use crate::tools::{Tool, require};

/// A running registry, killed on drop.
pub struct Registry {
    server: Server,
    host: String,
    user: String,
    password: String,
    http: reqwest::Client,
    sentinels: AtomicU32,
}

/// One request from the registry's access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRequest {
    pub method: String,
    /// The request URI: path and query (`/v2/repo/blobs/uploads/`).
    pub uri: String,
    pub status: u16,
}

impl RegistryRequest {
    /// Whether this is a step of a blob upload (`POST`/`PATCH`/`PUT` under `/blobs/uploads/`).
    pub fn is_blob_upload(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PATCH" | "PUT") && self.uri.contains("/blobs/uploads/")
    }

    /// Reads a combined-log-format line (`127.0.0.1 - - [date] "PUT /v2/… HTTP/1.1" 201 0 "" "agent"`).
    fn parse(line: &str) -> Option<Self> {
        let (_, rest) = line.split_once("] \"")?;
        let (request, rest) = rest.split_once("\" ")?;
        let mut parts = request.split(' ');
        let method = parts.next()?.to_string();
        let uri = parts.next()?.to_string();
        parts.next()?.strip_prefix("HTTP/")?;
        let status = rest.split(' ').next()?.parse().ok()?;
        Some(Self { method, uri, status })
    }
}

impl Registry {
    /// Starts a registry that accepts `user`/`password` and waits until `GET /v2/` answers 401
    /// (authentication required). `None` (with a note) when `docker-registry` or `htpasswd` is
    /// missing outside CI; see [`require`].
    ///
    /// Panics, with the tail of the registry's log, if it exits or is not ready in time.
    pub async fn start(user: &str, password: &str) -> Option<Registry> {
        if !require(&[Tool::DockerRegistry, Tool::Htpasswd]) {
            return None;
        }
        let dir = Server::directory("registry");
        let htpasswd_file = dir.path().join("htpasswd");
        let htpasswd = Command::new("htpasswd")
            .args(["-Bbn", user, password])
            .output()
            .unwrap_or_else(|e| panic!("cannot run htpasswd: {e}"));
        assert!(
            htpasswd.status.success(),
            "htpasswd failed: {}",
            String::from_utf8_lossy(&htpasswd.stderr)
        );
        std::fs::write(&htpasswd_file, &htpasswd.stdout).expect("write the htpasswd file");
        let storage = dir.path().join("storage");
        // Double-quoted YAML scalars are JSON strings.
        let quoted = |path: &std::path::Path| serde_json::to_string(&path.display().to_string()).unwrap();
        let config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  formatter: text\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:0\n  secret: testbed\n\
             auth:\n  htpasswd:\n    realm: testbed\n    path: {}\n",
            quoted(&storage),
            quoted(&htpasswd_file),
        );
        let config_file = dir.path().join("config.yml");
        std::fs::write(&config_file, config).expect("write the registry configuration");
        let mut command = Command::new("docker-registry");
        command.arg("serve").arg(&config_file);
        let mut server = Server::spawn("registry", command, dir, false);

        // Port 0 is resolved by the registry itself; it logs `listening on 127.0.0.1:PORT`.
        let host = loop {
            if let Some(host) = listening_address(&server.log()) {
                break host;
            }
            server.not_ready_yet("`listening on` in its log").await;
        };
        let http = reqwest::Client::new();
        loop {
            if let Ok(response) = http.get(format!("http://{host}/v2/")).send().await
                && response.status() == reqwest::StatusCode::UNAUTHORIZED
            {
                break;
            }
            server.not_ready_yet("GET /v2/ to answer 401").await;
        }
        Some(Registry {
            server,
            host,
            user: user.to_string(),
            password: password.to_string(),
            http,
            sentinels: AtomicU32::new(0),
        })
    }

    /// `http://127.0.0.1:PORT`: the value `ORCHESTRATE_REGISTRY` takes.
    pub fn address(&self) -> String {
        format!("http://{}", self.host)
    }

    /// `127.0.0.1:PORT`: the registry part of image references.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// Every request the registry served so far, from its access log, in the order logged.
    ///
    /// Complete up to the moment of the call, without timing: it sends a marker request of its own
    /// and waits for the marker's log line. The registry logs a request before its answer is flushed
    /// to the client, so every request answered before the marker was sent is logged by then.
    pub async fn requests(&self) -> Vec<RegistryRequest> {
        let n = self.sentinels.fetch_add(1, Ordering::Relaxed);
        let marker = format!("/v2/?testbed-marker={n}");
        if let Err(e) = self
            .http
            .get(format!("http://{}{marker}", self.host))
            .send()
            .await
        {
            self.server.fail(&format!("did not answer a request ({e})"));
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let requests: Vec<RegistryRequest> = self
                .server
                .log()
                .lines()
                .filter_map(RegistryRequest::parse)
                .collect();
            if let Some(at) = requests.iter().position(|r| r.uri == marker) {
                return requests[..at]
                    .iter()
                    .filter(|r| !r.uri.starts_with("/v2/?testbed-marker="))
                    .cloned()
                    .collect();
            }
            if std::time::Instant::now() > deadline {
                self.server.fail(&format!("did not log {marker} within 10 s"));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        self.server.log()
    }
}

/// The address in the registry's `listening on 127.0.0.1:PORT` log line.
fn listening_address(log: &str) -> Option<String> {
    log.lines().find_map(|line| {
        let (_, rest) = line.split_once("msg=\"listening on ")?;
        let address = rest.split('"').next()?;
        address.rsplit_once(':')?.1.parse::<u16>().ok()?;
        Some(address.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_log_lines_parse() {
        let line = r#"127.0.0.1 - - [22/Nov/2026:05:16:37 +0000] "POST /v2/foo/blobs/uploads/ HTTP/1.1" 202 0 "" "curl/7.88.1""#;
        let request = RegistryRequest::parse(line).unwrap();
        assert_eq!(
            request,
            RegistryRequest {
                method: "POST".into(),
                uri: "/v2/foo/blobs/uploads/".into(),
                status: 202
            }
        );
        assert!(request.is_blob_upload());
        let head = r#"127.0.0.1 - - [22/Nov/2026:05:16:37 +0000] "HEAD /v2/foo/blobs/sha256:ab HTTP/1.1" 200 0 "" "x""#;
        assert!(!RegistryRequest::parse(head).unwrap().is_blob_upload());
        let structured =
            r#"time="2026-11-22T05:16:37Z" level=info msg="response completed" http.request.method=GET"#;
        assert_eq!(RegistryRequest::parse(structured), None);
    }

    #[test]
    fn the_listening_address_is_read_from_the_log() {
        let log = "time=\"x\" level=info msg=\"redis not configured\"\n\
                   time=\"x\" level=info msg=\"listening on 127.0.0.1:36891\" go.version=go1.19.8\n";
        assert_eq!(listening_address(log).as_deref(), Some("127.0.0.1:36891"));
        assert_eq!(
            listening_address("time=\"x\" level=info msg=\"redis not configured\"\n"),
            None
        );
    }
}
