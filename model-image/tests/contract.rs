//! The SageMaker container contract, proven with the real `model-image` binary: `train` on an
//! `OPT_ML` layout in a temp dir, then `serve` on a free loopback port, scored over HTTP, and
//! `monitor` on the data capture of that traffic: records written here as SageMaker writes them,
//! and the files `serve` writes itself when `MODEL_IMAGE_CAPTURE_DIR` is set (the local target).
//!
//! The quality test trains on 70% of the real IoTID20 sample (`../shared/data`, never copied into the
//! project) and scores the held-out 30% through `/invocations`; the monitoring test captures the
//! held-out 30% as they are and with three flow features scaled tenfold.

use std::ffi::OsStr;
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
        Self::start_with(opt_ml, &[], None)
    }

    /// [`Server::start`] with `env` set, in the working directory `cwd` when given.
    fn start_with(opt_ml: &OptMl, env: &[(&str, &OsStr)], cwd: Option<&Path>) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new(BIN);
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        let child = command
            .args(["serve", "--host", "127.0.0.1"])
            .env("OPT_ML", opt_ml.root())
            .env("SAGEMAKER_BIND_TO_PORT", port.to_string())
            .envs(env.iter().copied())
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
        let (status, _, body) = self.invoke_accepting(content_type, "application/json", body);
        (status, body)
    }

    /// `/invocations` with an `Accept` header: the status, the answer's content type and its body.
    fn invoke_accepting(
        &self,
        content_type: &str,
        accept: &str,
        body: impl Into<reqwest::blocking::Body>,
    ) -> (u16, String, String) {
        let response = reqwest::blocking::Client::new()
            .post(format!("{}/invocations", self.base))
            .header("content-type", content_type)
            .header("accept", accept)
            .body(body)
            .send()
            .unwrap();
        let status = response.status().as_u16();
        let answer_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (status, answer_type, response.text().unwrap())
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

/// The flow features the shifted capture scales tenfold.
const SHIFTED: [&str; 3] = ["Flow_Duration", "Tot_Fwd_Pkts", "Flow_Byts/s"];
/// The monitoring window of the captures, and a time inside it.
const WINDOW: (&str, &str) = ("2026-12-04T01:00:00Z", "2026-12-04T02:00:00Z");

/// Rows of the real sample as text cells, in the sample's column order.
struct SampleRows {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl SampleRows {
    /// The same rows with the [`SHIFTED`] columns multiplied by 10 (missing cells stay missing).
    fn shifted(&self) -> SampleRows {
        let columns: Vec<usize> = SHIFTED
            .iter()
            .map(|name| self.header.iter().position(|h| h == name).unwrap())
            .collect();
        let rows = self
            .rows
            .iter()
            .map(|row| {
                let mut row = row.clone();
                for &c in &columns {
                    if let Some(value) = row[c].parse::<f64>().ok().filter(|v| v.is_finite()) {
                        row[c] = (value * 10.0).to_string();
                    }
                }
                row
            })
            .collect();
        SampleRows {
            header: self.header.clone(),
            rows,
        }
    }

    fn cell_value(cell: &str) -> serde_json::Value {
        match cell.parse::<f64>() {
            Ok(value) if value.is_finite() => serde_json::json!(value),
            _ => serde_json::json!(cell),
        }
    }

    /// One request body of `rows` in the `n`-th of the four shapes clients send `serve` (CSV with
    /// the dataset's header, CSV of the model's features, JSON Lines objects, JSON lists), with its
    /// content type and the answer format asked for.
    fn request(
        &self,
        n: usize,
        rows: &[Vec<String>],
        features: &[String],
    ) -> (&'static str, &'static str, String) {
        let columns: Vec<usize> = features
            .iter()
            .map(|f| self.header.iter().position(|h| h == f).unwrap())
            .collect();
        let lines = |rows: &[Vec<String>]| -> String { rows.iter().map(|r| r.join(",") + "\n").collect() };
        match n % 4 {
            0 => (
                "text/csv",
                "application/json",
                format!("{}\n{}", self.header.join(","), lines(rows)),
            ),
            1 => {
                let projected: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| columns.iter().map(|&c| r[c].clone()).collect())
                    .collect();
                ("text/csv", "text/csv", lines(&projected))
            }
            2 => {
                let body = rows
                    .iter()
                    .map(|r| {
                        let object: serde_json::Map<String, serde_json::Value> = features
                            .iter()
                            .zip(&columns)
                            .map(|(f, &c)| (f.clone(), Self::cell_value(&r[c])))
                            .collect();
                        serde_json::Value::Object(object).to_string() + "\n"
                    })
                    .collect();
                ("application/jsonlines", "application/jsonlines", body)
            }
            _ => {
                let instances: Vec<Vec<serde_json::Value>> = rows
                    .iter()
                    .map(|r| columns.iter().map(|&c| Self::cell_value(&r[c])).collect())
                    .collect();
                let body = serde_json::json!({ "instances": instances }).to_string();
                ("application/json", "application/json", body)
            }
        }
    }
}

/// One SageMaker data capture record: text/csv and application/json as text (SageMaker's default
/// capture lists), everything else base64.
fn capture_record(request: (&str, &str), answer: (&str, &str), time: &str, id: usize) -> String {
    use base64::Engine;
    let payload = |(content_type, data): (&str, &str), mode: &str| {
        let (encoding, data) = match content_type {
            "text/csv" => ("CSV", data.to_owned()),
            "application/json" => ("JSON", data.to_owned()),
            _ => ("BASE64", base64::engine::general_purpose::STANDARD.encode(data)),
        };
        serde_json::json!({"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding})
    };
    serde_json::json!({
        "captureData": {"endpointInput": payload(request, "INPUT"), "endpointOutput": payload(answer, "OUTPUT")},
        "eventMetadata": {"eventId": format!("00000000-0000-4000-8000-{id:012}"), "inferenceTime": time},
        "eventVersion": "0"
    })
    .to_string()
}

/// Sends `rows` to the server in requests of 40 rows in turn in each shape, and returns their
/// capture records, timed inside the window.
fn capture_traffic(
    server: &Server,
    sample: &SampleRows,
    rows: &[Vec<String>],
    features: &[String],
) -> Vec<String> {
    rows.chunks(40)
        .enumerate()
        .map(|(n, chunk)| {
            let (content_type, accept, body) = sample.request(n, chunk, features);
            let (status, answer_type, answer) = server.invoke_accepting(content_type, accept, body.clone());
            assert_eq!(status, 200, "{answer}");
            let time = format!("2026-12-04T01:{:02}:{:02}.5Z", n / 60 % 60, n % 60);
            capture_record((content_type, &body), (&answer_type, &answer), &time, n)
        })
        .collect()
}

/// Writes capture records as Model Monitor lays them out (`<endpoint>/<variant>/yyyy/mm/dd/hh/`),
/// in two files.
fn write_capture(dir: &Path, records: &[String]) {
    let hour = dir.join("iot-anomaly/AllTraffic/2026/12/04/01");
    std::fs::create_dir_all(&hour).unwrap();
    let (first, second) = records.split_at(records.len() / 2);
    for (name, part) in [("10-00-000-a.jsonl", first), ("40-00-000-b.jsonl", second)] {
        std::fs::write(
            hour.join(name),
            part.iter().map(|r| r.clone() + "\n").collect::<String>(),
        )
        .unwrap();
    }
}

/// `model-image monitor` as a Model Monitor processing job runs it (its variables set, none of our
/// flags), on `capture` against `baseline`; the exit status, stdout, and the three reports.
struct Monitored {
    status: std::process::ExitStatus,
    stdout: String,
    violations: serde_json::Value,
    statistics: serde_json::Value,
    report: serde_json::Value,
}

fn monitor(opt_ml: &OptMl, capture: &Path, baseline: &Path, out: &Path) -> Monitored {
    let output = Command::new(BIN)
        .arg("monitor")
        .env("OPT_ML", opt_ml.root())
        .env("dataset_source", capture)
        .env("baseline_statistics", baseline)
        .env("output_path", out)
        .env("start_time", WINDOW.0)
        .env("end_time", WINDOW.1)
        .output()
        .unwrap();
    let read = |name: &str| -> serde_json::Value {
        let path = out.join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; stderr: {}",
                path.display(),
                String::from_utf8_lossy(&output.stderr)
            )
        });
        serde_json::from_str(&text).unwrap()
    };
    Monitored {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        violations: read("constraint_violations.json"),
        statistics: read("statistics.json"),
        report: read("drift_report.json"),
    }
}

impl Monitored {
    /// The names of the columns with a violation of `check`.
    fn flagged(&self, check: &str) -> Vec<String> {
        let mut names: Vec<String> = self.violations["violations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["constraint_check_type"] == check)
            .map(|v| v["feature_name"].as_str().unwrap().to_owned())
            .collect();
        names.dedup();
        names
    }

    /// Each column's PSI, from drift_report.json.
    fn psi(&self, name: &str) -> f64 {
        self.report["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .and_then(|c| c["psi"].as_f64())
            .unwrap_or_else(|| panic!("no PSI for {name}"))
    }
}

/// Monitoring end to end: a model trained on real rows, its real endpoint answering held-out rows
/// in every request shape, the traffic captured in SageMaker's format, then `monitor` as Model
/// Monitor runs it: (a) the held-out rows as they are give no violation; (b) the same rows with
/// three flow features scaled tenfold give violations naming exactly those (and maybe the score,
/// which follows them); (c) too few rows give no verdict. Malformed lines, a request the server
/// refused and a record from before the window are counted, not fatal.
#[test]
fn monitor_finds_no_drift_in_held_out_traffic_and_names_the_shifted_features() {
    let Some(sample) = real_sample() else { return };
    let text = std::fs::read_to_string(sample).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(str::to_owned).collect();
    let label = header.iter().position(|c| c == "Label").unwrap();
    let all: Vec<Vec<String>> = lines.map(|l| l.split(',').map(str::to_owned).collect()).collect();
    let labels: Vec<bool> = all.iter().map(|r| r[label] == "Anomaly").collect();
    let split = split::stratified(&labels, 0.3, 2026);

    let opt_ml = OptMl::new();
    let train_csv: String = std::iter::once(header.join(","))
        .chain(split.train.iter().map(|&i| all[i].join(",")))
        .map(|l| l + "\n")
        .collect();
    std::fs::write(opt_ml.channel("train").join("train.csv"), train_csv).unwrap();
    opt_ml.hyperparameters(r#"{"max_rounds": "100", "bootstrap_resamples": "0"}"#);
    let output = opt_ml.train();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let model_dir = opt_ml.root().join("model");
    let model: model_image::artifact::ModelMetadata =
        serde_json::from_str(&std::fs::read_to_string(model_dir.join("model.json")).unwrap()).unwrap();
    let features = model.features;

    let held_out = SampleRows {
        header,
        rows: split.held_out.iter().map(|&i| all[i].clone()).collect(),
    };
    let shifted = held_out.shifted();
    let server = Server::start(&opt_ml);
    let mut as_is = capture_traffic(&server, &held_out, &held_out.rows, &features);
    let mut scaled = capture_traffic(&server, &shifted, &shifted.rows, &features);
    // A request the server refused, with its real answer; a line that is not a record; shifted
    // rows captured a second before the window.
    let (status, answer_type, answer) = server.invoke_accepting("text/csv", "application/json", "1,2,3\n");
    assert_eq!(status, 400, "{answer}");
    as_is.push(capture_record(
        ("text/csv", "1,2,3\n"),
        (&answer_type, &answer),
        "2026-12-04T01:30:00Z",
        9000,
    ));
    as_is.push("{\"captureData\": {\"endpointInput\"".to_owned());
    as_is.push(scaled[0].replace("2026-12-04T01:00:00.5Z", "2026-12-04T00:59:59.5Z"));
    assert_ne!(
        as_is.last(),
        Some(&scaled[0]),
        "the record was moved out of the window"
    );
    drop(server);

    let capture_dir = |name: &str, records: &[String]| {
        let dir = opt_ml.root().join("processing").join(name);
        write_capture(&dir, records);
        dir
    };
    let capture_a = capture_dir("capture-as-is", &as_is);
    let capture_b = capture_dir("capture-scaled", &scaled);
    // (b) reads the baseline out of the model artifact, as SageMaker packs the model directory.
    let artifact_dir = opt_ml.root().join("processing/artifact");
    std::fs::create_dir_all(&artifact_dir).unwrap();
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(artifact_dir.join("model.tar.gz")).unwrap(),
        flate2::Compression::fast(),
    );
    let mut tar = tar::Builder::new(gz);
    tar.append_dir_all(".", &model_dir).unwrap();
    tar.into_inner().unwrap().finish().unwrap();

    let a = monitor(
        &opt_ml,
        &capture_a,
        &model_dir.join("baseline.json"),
        &opt_ml.root().join("processing/result-as-is"),
    );
    let b = monitor(
        &opt_ml,
        &capture_b,
        &artifact_dir,
        &opt_ml.root().join("processing/result-scaled"),
    );
    eprintln!("(a) as is:\n{}\n(b) scaled:\n{}", a.stdout, b.stdout);
    assert!(
        a.status.success() && b.status.success(),
        "monitor exits 0 with or without drift"
    );

    // (a): everything read, nothing flagged.
    let rows = held_out.rows.len() as u64;
    let capture = &a.report["capture"];
    assert_eq!(capture["rows"], rows);
    assert_eq!(capture["scored_rows"], rows);
    assert_eq!(capture["unreadable_records"], 2, "{capture}");
    assert_eq!(capture["outside_window"], 1, "{capture}");
    assert_eq!(
        a.violations,
        serde_json::json!({"violations": []}),
        "{}",
        a.stdout
    );
    assert_eq!(a.report["verdict"], "no_drift");
    assert!(a.stdout.contains("no drift over"), "{}", a.stdout);
    assert_eq!(a.statistics["dataset"]["item_count"], rows);
    let statistics = a.statistics["features"].as_array().unwrap();
    assert_eq!(
        statistics.len(),
        features.len() + 1,
        "every feature, then the score"
    );
    assert_eq!(statistics[0]["name"], features[0].as_str());
    assert_eq!(statistics.last().unwrap()["name"], "score");

    // (b): the shifted features, and only they (the score may follow them), drifted.
    assert_eq!(b.report["verdict"], "drift");
    let drifted = b.flagged("baseline_drift_check");
    for name in SHIFTED {
        assert!(
            drifted.iter().any(|d| d == name),
            "{name} not flagged: {drifted:?}"
        );
        assert!(
            b.stdout.contains(name),
            "{name} missing from the printed table:\n{}",
            b.stdout
        );
    }
    let violations = b.violations["violations"].as_array().unwrap();
    for violation in violations {
        let name = violation["feature_name"].as_str().unwrap();
        assert!(
            SHIFTED.contains(&name) || name == "score",
            "unshifted {name} flagged: {violation}"
        );
    }
    for name in features.iter().filter(|f| !SHIFTED.contains(&f.as_str())) {
        assert_eq!(a.psi(name), b.psi(name), "{name} was not shifted");
    }
    let largest_unshifted = features
        .iter()
        .filter(|f| !SHIFTED.contains(&f.as_str()))
        .map(|f| a.psi(f))
        .fold(0.0, f64::max);
    for name in SHIFTED.iter().copied().chain(["score"]) {
        eprintln!("PSI {name}: as is {:.4}, scaled {:.4}", a.psi(name), b.psi(name));
    }
    eprintln!("largest PSI of an unshifted feature: {largest_unshifted:.4}");

    // (c): a window of too few rows gives no verdict, and still exits 0.
    let few_rows = scaled.drain(..4).collect::<Vec<_>>();
    let c = monitor(
        &opt_ml,
        &capture_dir("capture-few", &few_rows),
        &model_dir.join("baseline.json"),
        &opt_ml.root().join("processing/result-few"),
    );
    assert!(c.status.success());
    assert_eq!(c.report["capture"]["rows"], 160);
    assert_eq!(c.report["verdict"], "insufficient_data");
    assert_eq!(c.violations, serde_json::json!({"violations": []}));
    assert!(c.stdout.contains("no verdict: 160 rows"), "{}", c.stdout);
}

/// A monitoring job without a baseline is a broken job: exit 1, the reason on stderr and in the
/// processing job's exit message, no reports.
#[test]
fn monitor_without_a_baseline_fails_with_a_reason() {
    let opt_ml = OptMl::new();
    let capture = opt_ml.root().join("processing/input");
    std::fs::create_dir_all(&capture).unwrap();
    let output = Command::new(BIN)
        .arg("monitor")
        .env("OPT_ML", opt_ml.root())
        .env_remove("baseline_statistics")
        .env_remove("dataset_source")
        .env_remove("output_path")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("processing/baseline"), "{stderr}");
    let message = std::fs::read_to_string(opt_ml.root().join("output/message")).unwrap();
    assert!(message.contains("cannot read the baseline"), "{message}");
    assert!(!opt_ml.root().join("processing/resultdata").exists());

    // A capture directory that does not exist is broken too.
    std::fs::remove_dir(&capture).unwrap();
    let baseline = opt_ml.root().join("baseline.json");
    std::fs::write(
        &baseline,
        serde_json::to_vec(&model_image::baseline::compute(
            &["a".to_string()],
            &[1.0, 2.0],
            &[0.5],
        ))
        .unwrap(),
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["monitor", "--baseline"])
        .arg(&baseline)
        .env("OPT_ML", opt_ml.root())
        .env_remove("dataset_source")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot read the captured data in"), "{stderr}");
}

/// Every path below `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path.clone());
            }
            paths.push(path.strip_prefix(dir).unwrap().to_path_buf());
        }
    }
    paths.sort();
    paths
}

/// The `yyyy/mm/dd/hh` folder of a time.
fn hour_folder(time: model_image::monitor::window::Timestamp) -> PathBuf {
    let utc = time.utc();
    PathBuf::from(format!(
        "{:04}/{:02}/{:02}/{:02}",
        utc.year, utc.month, utc.day, utc.hour
    ))
}

fn now() -> model_image::monitor::window::Timestamp {
    model_image::monitor::window::Timestamp::from_system_time(std::time::SystemTime::now())
}

/// Data capture on the local target: with `MODEL_IMAGE_CAPTURE_DIR` set to a variant's folder in
/// the bucket, `serve` itself writes SageMaker's capture files: one record per successful request
/// in every request shape (the refused one is not captured), the bodies exactly as sent and
/// answered, text in the CSV and JSON encodings, in the folder of the current UTC hour, written out
/// by the time SIGTERM's shutdown ends. The real `monitor` reads every record, none unreadable.
/// Without the variable nothing is written anywhere.
#[test]
fn serve_captures_successful_invocations_in_sagemakers_files_for_monitor() {
    let opt_ml = OptMl::new();
    opt_ml.demo_train_channel(3000, 5);
    opt_ml.hyperparameters(r#"{"max_rounds": "40", "bootstrap_resamples": "0"}"#);
    let output = opt_ml.train();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let model_dir = opt_ml.root().join("model");
    let model: model_image::artifact::ModelMetadata =
        serde_json::from_str(&std::fs::read_to_string(model_dir.join("model.json")).unwrap()).unwrap();
    let demo = std::fs::read_to_string(opt_ml.root().join("input/data/train/demo.csv")).unwrap();
    let mut lines = demo.lines();
    let demo = SampleRows {
        header: lines.next().unwrap().split(',').map(str::to_owned).collect(),
        rows: lines
            .take(10)
            .map(|l| l.split(',').map(str::to_owned).collect())
            .collect(),
    };

    let capture_root = opt_ml.root().join("bucket/capture");
    let variant_dir = capture_root.join("iot-anomaly/AllTraffic");
    let started = now();
    let server = Server::start_with(
        &opt_ml,
        &[
            ("MODEL_IMAGE_CAPTURE_DIR", variant_dir.as_os_str()),
            ("MODEL_IMAGE_CAPTURE_PERCENT", OsStr::new("100")),
            ("RUST_LOG", OsStr::new("info")),
            ("NO_COLOR", OsStr::new("1")),
        ],
        None,
    );
    // CSV with the dataset's header, CSV of the features, JSON Lines, JSON: 1, 2, 3 and 4 rows.
    let mut sent = Vec::new();
    for n in 0..4 {
        let (content_type, accept, body) = demo.request(n, &demo.rows[..n + 1], &model.features);
        let (status, answer_type, answer) = server.invoke_accepting(content_type, accept, body.clone());
        assert_eq!(status, 200, "{answer}");
        sent.push((content_type, body, answer_type, answer));
    }
    let (status, answer) = server.invoke("text/csv", "1,2,3\n");
    assert_eq!(status, 400, "{answer}");
    let (status, log) = server.terminate();
    let finished = now();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("data capture stopped") && log.contains("written=4"),
        "{log}"
    );

    let files = model_image::monitor::capture::capture_files(&variant_dir).unwrap();
    assert!(!files.is_empty(), "no capture files in {}", variant_dir.display());
    let mut records = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&variant_dir).unwrap();
        let folder = relative.parent().unwrap();
        assert!(
            folder == hour_folder(started) || folder == hour_folder(finished),
            "{} is not in the folder of this hour",
            relative.display()
        );
        // <mm>-<ss>-<mmm>-<uuid>.jsonl, timed as the file's first record.
        let name = relative.file_name().unwrap().to_str().unwrap();
        let stem = name.strip_suffix(".jsonl").unwrap();
        let parts: Vec<&str> = stem.splitn(4, '-').collect();
        assert_eq!(parts.len(), 4, "{name}");
        assert_eq!(
            parts[..3].iter().map(|p| p.len()).collect::<Vec<_>>(),
            [2, 2, 3],
            "{name}"
        );
        assert_eq!(parts[3].len(), 36, "{name}");
        let text = std::fs::read_to_string(file).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        let first_time = first["eventMetadata"]["inferenceTime"].as_str().unwrap();
        assert_eq!(
            &first_time[14..19],
            format!("{}:{}", parts[0], parts[1]),
            "{name} is named after its first record, {first_time}"
        );
        for line in text.lines() {
            records.push(serde_json::from_str::<serde_json::Value>(line).unwrap());
        }
    }
    assert_eq!(records.len(), sent.len(), "one record per successful request");
    let encoding = |content_type: &str| match content_type {
        "text/csv" => "CSV",
        "application/json" | "application/jsonlines" => "JSON",
        other => panic!("unexpected content type {other}"),
    };
    for (record, (content_type, body, answer_type, answer)) in records.iter().zip(&sent) {
        let input = &record["captureData"]["endpointInput"];
        assert_eq!(input["observedContentType"], *content_type);
        assert_eq!(input["mode"], "INPUT");
        assert_eq!(input["encoding"], encoding(content_type));
        assert_eq!(input["data"], body.as_str(), "the request as sent");
        let output = &record["captureData"]["endpointOutput"];
        assert_eq!(output["observedContentType"], answer_type.as_str());
        assert_eq!(output["mode"], "OUTPUT");
        assert_eq!(output["encoding"], encoding(answer_type));
        assert_eq!(output["data"], answer.as_str(), "the answer as answered");
        assert_eq!(record["eventVersion"], "0");
        assert_eq!(record["eventMetadata"]["eventId"].as_str().unwrap().len(), 36);
        let time = model_image::monitor::window::Timestamp::parse(
            record["eventMetadata"]["inferenceTime"].as_str().unwrap(),
        )
        .unwrap();
        assert!(
            started.whole_seconds() <= time && time <= finished,
            "{time} is not between {started} and {finished}"
        );
    }

    // Model Monitor's dataset_source holds <endpoint>/<variant>/yyyy/mm/dd/hh/.
    let out = opt_ml.root().join("processing/result-captured");
    let output = Command::new(BIN)
        .args(["monitor", "--input"])
        .arg(&capture_root)
        .arg("--baseline")
        .arg(&model_dir)
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("drift_report.json")).unwrap()).unwrap();
    let capture = &report["capture"];
    assert_eq!(capture["files"], files.len(), "{capture}");
    assert_eq!(capture["records"], 4, "{capture}");
    assert_eq!(capture["unreadable_records"], 0, "{capture}");
    assert_eq!(capture["records_without_scores"], 0, "{capture}");
    assert_eq!(capture["rows"], 1 + 2 + 3 + 4, "{capture}");
    assert_eq!(capture["scored_rows"], 1 + 2 + 3 + 4, "{capture}");

    // Without MODEL_IMAGE_CAPTURE_DIR: nothing new in OPT_ML or the working directory.
    let before = tree(opt_ml.root());
    let cwd = tempfile::tempdir().unwrap();
    let server = Server::start_with(&opt_ml, &[], Some(cwd.path()));
    let (content_type, accept, body) = demo.request(1, &demo.rows[..2], &model.features);
    let (status, _, answer) = server.invoke_accepting(content_type, accept, body);
    assert_eq!(status, 200, "{answer}");
    let (status, log) = server.terminate();
    assert!(status.success(), "{log}");
    assert!(!log.contains("data capture"), "{log}");
    assert_eq!(tree(opt_ml.root()), before, "serve wrote into OPT_ML");
    assert_eq!(
        tree(cwd.path()),
        Vec::<PathBuf>::new(),
        "serve wrote into its directory"
    );
}
