//! Helpers for the end-to-end suite: finding the built binaries, making throwaway deployments and
//! running `orchestrate` the way a user does (no TTY, exit codes, stdout and stderr).

pub mod aws;
pub mod kill;
pub mod local;
pub mod world;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The directory holding the workspace's built binaries (`target/debug` under `cargo test`): the
/// test executable lives in its `deps/` folder.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

/// A workspace binary; `cargo test --workspace` builds them all before running tests.
pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is not built: run the suite with `cargo test --workspace`",
        path.display()
    );
    path
}

/// The outcome of one `orchestrate` run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts the exit code, showing both streams when it differs.
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

/// A deployment folder: deploy.yaml plus its data, in a temp dir.
pub struct Deployment {
    pub dir: tempfile::TempDir,
}

impl Deployment {
    pub fn new(deploy_yaml: &str) -> Deployment {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("deploy.yaml"), deploy_yaml).expect("write deploy.yaml");
        Deployment { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write_deploy_yaml(&self, text: &str) {
        std::fs::write(self.path().join("deploy.yaml"), text).expect("write deploy.yaml");
    }

    /// Runs `orchestrate ARGS` in the deployment folder, without a terminal.
    pub fn orchestrate(&self, args: &[&str]) -> Run {
        self.orchestrate_with(args, &[])
    }

    /// [`orchestrate`](Self::orchestrate) with more environment variables (an AWS endpoint).
    pub fn orchestrate_with(&self, args: &[&str], env: &[(&str, String)]) -> Run {
        let output = self.command(args, env).output().expect("run orchestrate");
        Run::from(output)
    }

    /// The `orchestrate ARGS` command, to spawn it (two concurrent runs).
    pub fn command(&self, args: &[&str], env: &[(&str, String)]) -> Command {
        let mut command = Command::new(binary("orchestrate"));
        command
            .args(args)
            .current_dir(self.path())
            .env("ORCHESTRATE_MODEL_IMAGE", binary("model-image"))
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        command
    }

    /// Writes `rows` rows of synthetic demo data to `train.csv` (`model-image demo-data`).
    pub fn demo_data(&self, rows: usize) {
        let status = Command::new(binary("model-image"))
            .args(["demo-data", "--rows", &rows.to_string(), "--out"])
            .arg(self.path().join("train.csv"))
            .status()
            .expect("model-image demo-data");
        assert!(status.success(), "model-image demo-data failed: {status}");
    }

    /// The local target's state folder of deployment `name`.
    pub fn state(&self, name: &str) -> PathBuf {
        self.path().join(".orchestrate").join(name)
    }
}

/// POSTs a body to `url` and returns status and text.
pub fn post(url: &str, content_type: &str, body: String) -> (u16, String) {
    let response = reqwest::blocking::Client::new()
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    (response.status().as_u16(), response.text().unwrap_or_default())
}

/// Whether `GET url` answers 200.
pub fn answers(url: &str) -> bool {
    reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .expect("client")
        .get(url)
        .send()
        .is_ok_and(|r| r.status() == 200)
}

/// Column names as real exports write them, each with a character a naive encoding breaks on:
/// spaces (a leading one, as CICFlowMeter writes ` Destination Port`), commas, `=`, `;` and quotes.
#[derive(Debug, Clone)]
pub struct AwkwardNames {
    pub label: String,
    pub positive: String,
    /// What deploy.yaml excludes: the demo data's identifier and label-derived columns, renamed.
    pub exclude: Vec<String>,
}

impl AwkwardNames {
    pub fn new() -> Self {
        AwkwardNames {
            label: "Label, \"final\"=yes".to_string(),
            positive: "Anomaly; \"attack\"=1, confirmed".to_string(),
            exclude: [
                "Flow ID",
                " Src IP",
                "Dst,IP",
                "Time=stamp;utc",
                "Cat \"main\"",
                "Sub;Cat",
            ]
            .map(str::to_string)
            .to_vec(),
        }
    }

    /// deploy.yaml's `data` section for these names (YAML double-quoted scalars, escaped as JSON is).
    pub fn data_section(&self, train: &str) -> String {
        let quote = |s: &str| serde_json::to_string(s).expect("a string");
        let exclude: Vec<String> = self.exclude.iter().map(|c| quote(c)).collect();
        format!(
            "data:\n  train: {train}\n  validation: 0.2\n  label: {}\n  positive: {}\n  exclude: [{}]\n",
            quote(&self.label),
            quote(&self.positive),
            exclude.join(", ")
        )
    }

    /// Rewrites a demo-data CSV (raw IoTID20 columns) with these names: the identifier and
    /// label-derived columns renamed to the excluded names, the label column renamed and its
    /// positive value replaced.
    pub fn rewrite(&self, demo: &Path, out: &Path) {
        let renames: Vec<(&str, &str)> = ["Flow_ID", "Src_IP", "Dst_IP", "Timestamp", "Cat", "Sub_Cat"]
            .into_iter()
            .zip(self.exclude.iter().map(String::as_str))
            .chain([("Label", self.label.as_str())])
            .collect();
        let mut reader = csv::Reader::from_path(demo).expect("demo data");
        let header = reader.headers().expect("demo header").clone();
        let label_at = header.iter().position(|h| h == "Label").expect("a Label column");
        let mut writer = csv::Writer::from_path(out).expect("rewritten data");
        let renamed: Vec<&str> = header
            .iter()
            .map(|h| {
                renames
                    .iter()
                    .find(|(from, _)| *from == h)
                    .map_or(h, |(_, to)| to)
            })
            .collect();
        assert_eq!(
            renamed
                .iter()
                .filter(|h| renames.iter().any(|(_, to)| to == *h))
                .count(),
            renames.len(),
            "every column renamed: {header:?}"
        );
        writer.write_record(&renamed).expect("header");
        for record in reader.records() {
            let record = record.expect("demo row");
            let row: Vec<&str> = record
                .iter()
                .enumerate()
                .map(|(i, cell)| {
                    if i == label_at && cell == "Anomaly" {
                        self.positive.as_str()
                    } else {
                        cell
                    }
                })
                .collect();
            writer.write_record(&row).expect("row");
        }
        writer.flush().expect("flush");
    }

    /// Checks a trained model's `model.json`: the container got exactly these names (its parsed
    /// hyperparameters) and no excluded column became a feature.
    pub fn assert_model_used_them(&self, model_json: &serde_json::Value) {
        let hyperparameters = &model_json["hyperparameters"];
        assert_eq!(hyperparameters["label"], self.label.as_str(), "{hyperparameters}");
        assert_eq!(
            hyperparameters["positive_class"],
            self.positive.as_str(),
            "{hyperparameters}"
        );
        let received: Vec<&str> = hyperparameters["exclude"]
            .as_array()
            .expect("exclude list")
            .iter()
            .map(|c| c.as_str().expect("a column name"))
            .collect();
        assert_eq!(received, self.exclude, "the container received other exclusions");
        let features: Vec<&str> = model_json["features"]
            .as_array()
            .expect("features")
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        assert!(features.len() > 10, "{features:?}");
        for excluded in &self.exclude {
            assert!(
                !features.contains(&excluded.trim()),
                "excluded column {excluded:?} became a feature: {features:?}"
            );
        }
        assert!(
            !features.contains(&self.label.trim()),
            "the label became a feature"
        );
        let dropped: Vec<&str> = model_json["data"]["dropped_columns"]
            .as_array()
            .expect("dropped columns")
            .iter()
            .filter(|d| d[1] == "excluded")
            .map(|d| d[0].as_str().unwrap())
            .collect();
        assert_eq!(
            dropped.len(),
            self.exclude.len(),
            "each exclusion matched a column: {dropped:?}"
        );
    }
}

impl Default for AwkwardNames {
    fn default() -> Self {
        Self::new()
    }
}
