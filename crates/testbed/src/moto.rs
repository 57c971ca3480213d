//! moto_server through our launcher (`moto_launcher.py`, shipped in this crate): moto at the pinned
//! version, with the launcher's patches and its request log, on a free loopback port.

use std::process::Command;

use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::requests::Request;
use crate::server::Server;
use crate::tools::{Tool, require};

/// The launcher, written to the server's temporary directory at start.
const LAUNCHER: &str = include_str!("../moto_launcher.py");

/// The moto version the launcher's patches are written for (its `MOTO_VERSION`; `.ci/setup` pins it).
pub const MOTO_VERSION: &str = "5.2.1";

/// Access key and secret the SDK's test credentials use (`Credentials::for_tests`); moto accepts any.
const ACCESS_KEY_ID: &str = "ANOTREAL";
const SECRET_ACCESS_KEY: &str = "notrealrnrELgWzOk3IfjzDKtFBhDby";

/// A running moto_server, killed on drop.
pub struct Moto {
    server: Server,
    url: String,
    http: reqwest::Client,
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
        if !require(&[Tool::Moto]) {
            return None;
        }
        let dir = Server::directory("moto");
        let launcher = dir.path().join("moto_launcher.py");
        let port_file = dir.path().join("port");
        let empty = dir.path().join("empty-aws-config");
        for (path, contents) in [(&launcher, LAUNCHER), (&empty, "")] {
            std::fs::write(path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        }
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
        Some(Moto { server, url, http })
    }

    /// The endpoint, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// An SDK configuration for `region` that talks to this moto with static test credentials and
    /// ignores the host's environment and `~/.aws` files. Build clients with
    /// `aws::Clients::from_config(&config, |_| None)`.
    pub async fn sdk_config(&self, region: &str) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .empty_test_environment()
            .test_credentials()
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
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_string()),
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
    fn ci_setup_installs_the_pinned_moto() {
        let setup = include_str!("../../../.ci/setup");
        assert!(setup.contains(&format!("MOTO_VERSION={MOTO_VERSION}\n")));
    }
}
