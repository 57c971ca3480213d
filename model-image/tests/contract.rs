//! The SageMaker container contract, proven with the real `model-image` binary: `train` on an
//! `OPT_ML` layout in a temp dir, then `serve` on a free loopback port, scored over HTTP.
//!
//! The quality test trains on 70% of the real IoTID20 sample (`../shared/data`, never copied into the
//! project) and scores the held-out 30% through `/invocations`.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use model_image::metrics::{self, BootstrapConfig};
use model_image::split;

const BIN: &str = env!("CARGO_BIN_EXE_model-image");

/// The real IoTID20 sample beside the repository (`../shared/data`), or `$IOTID20_SAMPLE`.
/// Missing data fails under CI and skips (loudly) elsewhere, e.g. in a clone without `shared/`.
fn real_sample() -> Option<PathBuf> {
    let path = std::env::var_os("IOTID20_SAMPLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/iotid20/iotid20_sample.csv")
        });
    if path.is_file() {
        Some(path)
    } else if std::env::var_os("CI").is_some() {
        panic!("real IoTID20 sample missing at {}", path.display());
    } else {
        eprintln!(
            "SKIPPED: real IoTID20 sample not found at {} (set IOTID20_SAMPLE)",
            path.display()
        );
        None
    }
}

/// A SageMaker `/opt/ml` tree in a temp dir.
struct OptMl {
    dir: tempfile::TempDir,
}

impl OptMl {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn channel(&self, name: &str) -> PathBuf {
        let dir = self.root().join("input/data").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Writes `rows` rows of the synthetic demo set (seeded) into the train channel.
    fn demo_train_channel(&self, rows: usize, seed: u64) {
        let demo = self.channel("train").join("demo.csv");
        let status = Command::new(BIN)
            .args([
                "demo-data",
                "--rows",
                &rows.to_string(),
                "--seed",
                &seed.to_string(),
                "--out",
            ])
            .arg(&demo)
            .status()
            .unwrap();
        assert!(status.success(), "demo-data failed");
    }

    fn hyperparameters(&self, json: &str) {
        let dir = self.root().join("input/config");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("hyperparameters.json"), json).unwrap();
    }

    fn train(&self) -> Output {
        Command::new(BIN)
            .arg("train")
            .env("OPT_ML", self.root())
            .output()
            .unwrap()
    }

    fn failure(&self) -> Option<String> {
        std::fs::read_to_string(self.root().join("output/failure")).ok()
    }
}

/// A running `model-image serve`, killed on drop.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(opt_ml: &OptMl) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(BIN)
            .args(["serve", "--host", "127.0.0.1"])
            .env("OPT_ML", opt_ml.root())
            .env("SAGEMAKER_BIND_TO_PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = reqwest::blocking::get(format!("{}/ping", server.base))
                && response.status() == 200
            {
                return server;
            }
            assert!(Instant::now() < deadline, "server did not answer /ping");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn invoke(&self, content_type: &str, body: impl Into<reqwest::blocking::Body>) -> (u16, String) {
        let response = reqwest::blocking::Client::new()
            .post(format!("{}/invocations", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()
            .unwrap();
        (response.status().as_u16(), response.text().unwrap())
    }

    /// SIGTERM, then the exit status and what the server logged.
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        let mut log = String::new();
        if let Some(stderr) = self.child.stderr.take() {
            for line in BufReader::new(stderr).lines() {
                log.push_str(&line.unwrap());
                log.push('\n');
            }
        }
        (status, log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn predictions(body: &str) -> Vec<(String, f64)> {
    let value: serde_json::Value = serde_json::from_str(body).unwrap();
    value["predictions"]
        .as_array()
        .unwrap_or_else(|| panic!("no predictions in {body}"))
        .iter()
        .map(|p| {
            (
                p["label"].as_str().unwrap().to_string(),
                p["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn trains_on_real_rows_and_serves_held_out_rows_with_high_quality() {
    let Some(sample) = real_sample() else { return };
    let text = std::fs::read_to_string(sample).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let label_index = header.split(',').position(|c| c == "Label").unwrap();
    let rows: Vec<&str> = lines.collect();
    let labels: Vec<bool> = rows
        .iter()
        .map(|r| r.split(',').nth(label_index) == Some("Anomaly"))
        .collect();
    let split = split::stratified(&labels, 0.3, 2026);

    let opt_ml = OptMl::new();
    let train_csv: String = std::iter::once(header)
        .chain(split.train.iter().map(|&i| rows[i]))
        .flat_map(|l| [l, "\n"])
        .collect();
    std::fs::write(opt_ml.channel("train").join("train.csv"), train_csv).unwrap();
    let output = opt_ml.train();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "train failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(opt_ml.failure().is_none());
    // SageMaker MetricDefinitions read `name=value` lines from the log.
    assert!(
        stdout.lines().any(|l| l.starts_with("validation:mcc=")),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("validation:roc_auc=")),
        "{stdout}"
    );
    for file in [
        "model/model.txt",
        "model/model.json",
        "model/metrics.json",
        "output/data/metrics.json",
    ] {
        assert!(opt_ml.root().join(file).is_file(), "{file} missing");
    }
    let report = std::fs::read_to_string(opt_ml.root().join("output/data/report.html")).unwrap();
    assert!(report.contains("<svg"));

    let server = Server::start(&opt_ml);
    let mut scores = Vec::new();
    let mut truth = Vec::new();
    let mut labelled = Vec::new();
    // Held-out rows as a user sends them: CSV with the dataset's header, extra columns (Cat, Label)
    // included and ignored, in requests of 500 rows.
    for chunk in split.held_out.chunks(500) {
        let body: String = std::iter::once(header)
            .chain(chunk.iter().map(|&i| rows[i]))
            .flat_map(|l| [l, "\n"])
            .collect();
        let (status, response) = server.invoke("text/csv", body);
        assert_eq!(status, 200, "{response}");
        let predicted = predictions(&response);
        assert_eq!(predicted.len(), chunk.len());
        for ((label, score), &i) in predicted.iter().zip(chunk) {
            labelled.push(label.clone());
            scores.push(*score);
            truth.push(labels[i]);
        }
    }
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(opt_ml.root().join("model/model.json")).unwrap())
            .unwrap();
    let threshold = model["threshold"].as_f64().unwrap();
    for (label, score) in labelled.iter().zip(&scores) {
        let expected = if *score >= threshold { "Anomaly" } else { "Normal" };
        assert_eq!(
            label, expected,
            "label must apply the trained threshold {threshold} to {score}"
        );
    }
    let evaluation = metrics::evaluate(
        &truth,
        &scores,
        threshold,
        &BootstrapConfig {
            resamples: 0,
            seed: 1,
        },
    );
    eprintln!(
        "held-out {} rows: mcc={:.4} roc_auc={:.4} pr_auc={:.4}",
        truth.len(),
        evaluation.mcc.value,
        evaluation.roc_auc.value,
        evaluation.pr_auc.value
    );
    assert!(evaluation.mcc.value >= 0.97, "MCC {}", evaluation.mcc.value);
    assert!(
        evaluation.roc_auc.value >= 0.995,
        "ROC-AUC {}",
        evaluation.roc_auc.value
    );

    // Bad input is a 4xx with a reason, and the server keeps serving.
    let (status, response) = server.invoke("text/csv", "1,2,3\n");
    assert_eq!(status, 400, "{response}");
    assert!(response.contains("error"), "{response}");
    let (status, _) = server.invoke("application/x-unknown", "x");
    assert_eq!(status, 415);
    let one_row = format!("{header}\n{}\n", rows[split.held_out[0]]);
    let (status, response) = server.invoke("text/csv", one_row);
    assert_eq!(status, 200, "{response}");
    assert_eq!(predictions(&response).len(), 1);

    let (status, _) = server.terminate();
    assert!(
        status.success(),
        "serve should exit cleanly on SIGTERM, got {status}"
    );
}

#[test]
fn trains_on_the_demo_data_and_answers_json() {
    let opt_ml = OptMl::new();
    opt_ml.demo_train_channel(3000, 5);
    opt_ml.hyperparameters(r#"{"max_rounds": "60", "bootstrap_resamples": "50"}"#);
    let output = opt_ml.train();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(opt_ml.root().join("model/model.json")).unwrap())
            .unwrap();
    let features: Vec<&str> = model["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    // The raw schema's identifiers and label-derived columns never become features.
    for leaky in [
        "Flow_ID",
        "Src_IP",
        "Dst_IP",
        "Timestamp",
        "Cat",
        "Sub_Cat",
        "Label",
    ] {
        assert!(!features.contains(&leaky), "{leaky} used as a feature");
    }
    assert_eq!(features.len(), 79);

    // The baseline drift monitoring compares traffic with: every feature, in the model's order,
    // with bins whose shares add up, and the held-out scores' distribution.
    let baseline: model_image::baseline::Baseline = serde_json::from_str(
        &std::fs::read_to_string(
            opt_ml
                .root()
                .join("model")
                .join(model_image::baseline::BASELINE_FILE),
        )
        .unwrap(),
    )
    .unwrap();
    let names: Vec<&str> = baseline.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, features);
    assert_eq!(
        baseline.scored_rows,
        model["data"]["validation_rows"].as_u64().unwrap() as usize
    );
    assert_eq!(
        baseline.rows,
        model["data"]["train_rows"].as_u64().unwrap() as usize
    );
    for feature in &baseline.features {
        if let Some(d) = &feature.distribution {
            assert_eq!(d.shares.len(), d.edges.len() + 1, "{}", feature.name);
            assert!(
                (d.shares.iter().sum::<f64>() - 1.0).abs() < 1e-9,
                "{}",
                feature.name
            );
            assert!(d.min <= d.max, "{}", feature.name);
        }
    }
    let varied = baseline
        .features
        .iter()
        .filter(|f| f.distribution.as_ref().is_some_and(|d| d.edges.len() >= 5))
        .count();
    assert!(
        varied >= 10,
        "most flow features are continuous: {varied} with 5+ bins"
    );
    assert!(baseline.score.edges.len() >= 2, "{:?}", baseline.score);

    let server = Server::start(&opt_ml);
    let instance: serde_json::Map<String, serde_json::Value> = features
        .iter()
        .map(|f| (f.to_string(), serde_json::json!(1.0)))
        .collect();
    let body = serde_json::json!({ "instances": [instance, instance] }).to_string();
    let (status, response) = server.invoke("application/json", body);
    assert_eq!(status, 200, "{response}");
    let predicted = predictions(&response);
    assert_eq!(predicted.len(), 2);
    assert!(
        predicted
            .iter()
            .all(|(l, s)| (l == "Anomaly" || l == "Normal") && (0.0..=1.0).contains(s))
    );
}

/// `quantized_gradients` reaches LightGBM (its model text records the parameters it trained with)
/// and still gives a model that separates the demo classes; without it, training is exact.
#[test]
fn quantized_gradients_are_passed_to_lightgbm_only_when_asked_for() {
    for quantized in [true, false] {
        let opt_ml = OptMl::new();
        opt_ml.demo_train_channel(3000, 6);
        opt_ml.hyperparameters(&format!(
            r#"{{"max_rounds": "40", "bootstrap_resamples": "0", "quantized_gradients": "{quantized}"}}"#
        ));
        let output = opt_ml.train();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let model_text = std::fs::read_to_string(opt_ml.root().join("model/model.txt")).unwrap();
        let flag = u8::from(quantized);
        for parameter in ["use_quantized_grad", "quant_train_renew_leaf"] {
            let line = format!("[{parameter}: {flag}]");
            assert!(model_text.contains(&line), "{line} missing from model.txt");
        }
        let model: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(opt_ml.root().join("model/model.json")).unwrap())
                .unwrap();
        assert_eq!(model["hyperparameters"]["quantized_gradients"], quantized);
        let roc_auc = model["metrics"]["validation"]["roc_auc"]["value"]
            .as_f64()
            .unwrap();
        assert!(
            roc_auc > 0.9,
            "quantized={quantized}: validation ROC-AUC {roc_auc}"
        );
    }
}

#[test]
fn a_single_class_channel_fails_with_a_reason() {
    let opt_ml = OptMl::new();
    std::fs::write(
        opt_ml.channel("train").join("a.csv"),
        "X,Label\n1,Normal\n2,Normal\n3,Normal\n",
    )
    .unwrap();
    let output = opt_ml.train();
    assert!(!output.status.success());
    let failure = opt_ml.failure().expect("output/failure written");
    assert!(failure.contains("only one class"), "{failure}");
}

#[test]
fn a_misspelt_hyperparameter_fails_before_reading_data() {
    let opt_ml = OptMl::new();
    opt_ml.hyperparameters(r#"{"learning_rat": "0.1"}"#);
    let output = opt_ml.train();
    assert!(!output.status.success());
    let failure = opt_ml.failure().expect("output/failure written");
    assert!(failure.contains("did you mean `learning_rate`"), "{failure}");
}

#[test]
fn an_unreadable_channel_fails_with_a_reason() {
    let opt_ml = OptMl::new();
    let output = opt_ml.train();
    assert!(!output.status.success());
    let failure = opt_ml.failure().expect("output/failure written");
    assert!(failure.contains("train channel"), "{failure}");
}

#[test]
fn serve_refuses_a_missing_model_with_a_reason() {
    let opt_ml = OptMl::new();
    let output = Command::new(BIN)
        .args(["serve", "--host", "127.0.0.1"])
        .env("OPT_ML", opt_ml.root())
        .env("SAGEMAKER_BIND_TO_PORT", "0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("model.json"));
}
