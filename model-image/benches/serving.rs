//! Serving benchmark: `model-image serve` against the Python stack a SageMaker user would otherwise
//! deploy (Flask under gunicorn, 2 sync workers), loading the very same LightGBM `model.txt`, plus the
//! same Flask app serving an XGBoost model trained on the same data.
//!
//! A closed-loop load generator (support/loadgen.rs) sends single-row and 100-row CSV requests built
//! from the real IoTID20 sample (no header) with C concurrent keep-alive clients over loopback, for a
//! fixed duration after a warm-up, and reports requests/s, rows/s and latency quantiles per server,
//! then the ratios model-image / python-lightgbm. Targets (not asserted): >= 20x single-row
//! throughput, p99 < 1 ms.
//!
//! Knobs: `BENCH_SECONDS` (8), `BENCH_WARMUP_SECONDS` (1), `BENCH_CLIENTS` ("4,16"),
//! `BENCH_RETRAIN=1` (ignore the cached models in `target/bench-data/serving`), `MODEL_IMAGE_BIN`
//! (another build of the binary), `IOTID20_SAMPLE`, `PYTHON`.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use support::loadgen::{self, Load, Outcome};
use support::sample::Sample;
use support::{Guarded, Table, bail, env_number, read_json};

const COMMAND: &str = "cargo bench -p model-image --bench serving";
const ROWS_PER_REQUEST: [usize; 2] = [1, 100];
/// Distinct request bodies per scenario, cycled through.
const SINGLE_ROW_BODIES: usize = 1000;
const BATCH_BODIES: usize = 50;

struct Server {
    name: &'static str,
    kind: Kind,
}

enum Kind {
    ModelImage {
        opt_ml: PathBuf,
    },
    Python {
        framework: &'static str,
        model_dir: PathBuf,
    },
}

struct Scenario {
    server: &'static str,
    rows: usize,
    clients: usize,
    outcome: Outcome,
}

fn main() {
    support::print_header(
        "serving: model-image serve vs Flask + gunicorn (Python LightGBM / XGBoost)",
        COMMAND,
    );
    support::require_python_stack(&["lightgbm", "xgboost", "pandas", "flask", "gunicorn", "sklearn"]);
    let seconds = env_number("BENCH_SECONDS", 8, 1, 60);
    let warmup = env_number("BENCH_WARMUP_SECONDS", 1, 0, 10);
    let clients = env_list("BENCH_CLIENTS", &[4, 16], 1, 64);

    let sample_path = support::real_sample();
    let data = support::bench_data("serving");
    let opt_ml = data.join("opt_ml");
    let model_dir = opt_ml.join("model");
    train_model_image(&sample_path, &opt_ml);
    let metadata: serde_json::Value = read_json(&model_dir.join("model.json"));
    let features: Vec<String> = metadata["features"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_string)).collect())
        .unwrap_or_else(|| bail("model.json has no `features` list"));
    let rounds = metadata["rounds"].as_u64().unwrap_or(100);
    let xgboost_dir = data.join("xgboost");
    train_xgboost(&sample_path, &model_dir, &xgboost_dir, rounds);
    println!(
        "model: {} features, {rounds} rounds (model-image train on the real sample; XGBoost: same rounds, \
         max_leaves 31)",
        features.len()
    );

    let sample = Sample::load(&sample_path);
    let mut lines = sample.feature_lines(&features);
    lines.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(7));
    let bodies = |rows: usize| -> Vec<String> {
        let count = if rows == 1 {
            SINGLE_ROW_BODIES
        } else {
            BATCH_BODIES
        };
        (0..count)
            .map(|i| {
                (0..rows)
                    .map(|r| lines[(i * rows + r) % lines.len()].as_str())
                    .fold(String::new(), |body, line| body + line + "\n")
            })
            .collect()
    };
    let bodies_by_rows: Vec<(usize, Vec<String>)> =
        ROWS_PER_REQUEST.iter().map(|&r| (r, bodies(r))).collect();

    let servers = [
        Server {
            name: "model-image",
            kind: Kind::ModelImage {
                opt_ml: opt_ml.clone(),
            },
        },
        Server {
            name: "python-lightgbm",
            kind: Kind::Python {
                framework: "lightgbm",
                model_dir: model_dir.clone(),
            },
        },
        Server {
            name: "python-xgboost",
            kind: Kind::Python {
                framework: "xgboost",
                model_dir: xgboost_dir.clone(),
            },
        },
    ];
    println!(
        "load: closed loop, {} clients on keep-alive HTTP/1.1, {warmup} s warm-up + {seconds} s per scenario, \
         CSV bodies without header ({} distinct single rows, {} distinct 100-row batches)\n",
        clients
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(" and "),
        SINGLE_ROW_BODIES,
        BATCH_BODIES,
    );

    let mut scenarios = Vec::new();
    let mut peak_rss = Vec::new();
    let mut reference_scores: Option<Vec<f64>> = None;
    for server in servers {
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut process = start(&server, port, &data);
        wait_ready(&mut process, server.name, addr);

        // Both LightGBM servers load the same model.txt: their scores must agree.
        let check = loadgen::csv_request(addr, &bodies_by_rows[1].1[0]);
        let scores = predictions(server.name, addr, &check, 100);
        match (&reference_scores, server.name) {
            (None, "model-image") => reference_scores = Some(scores),
            (Some(reference), "python-lightgbm") => {
                let max_diff = reference
                    .iter()
                    .zip(&scores)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                println!(
                    "score agreement model-image vs python-lightgbm (100 rows): max |diff| = {max_diff:.2e}"
                );
                if max_diff > 1e-4 {
                    eprintln!("WARNING: the two servers disagree on the same model's scores");
                }
            }
            _ => {}
        }

        for (rows, bodies) in &bodies_by_rows {
            let requests: Arc<Vec<Vec<u8>>> =
                Arc::new(bodies.iter().map(|b| loadgen::csv_request(addr, b)).collect());
            for &c in &clients {
                let load = Load {
                    addr,
                    requests: Arc::clone(&requests),
                    clients: c,
                    warmup: Duration::from_secs(warmup),
                    duration: Duration::from_secs(seconds),
                    rate: None,
                };
                let outcome = loadgen::run(&load);
                println!(
                    "  {:<16} rows/request {:>3}  clients {:>2}: {:>9.0} req/s  p99 {:>8.3} ms  errors {}{}",
                    server.name,
                    rows,
                    c,
                    outcome.requests_per_second(),
                    outcome.quantile_ms(0.99),
                    outcome.errors,
                    outcome
                        .first_error
                        .as_deref()
                        .map(|e| format!(" (first: {e})"))
                        .unwrap_or_default()
                );
                scenarios.push(Scenario {
                    server: server.name,
                    rows: *rows,
                    clients: c,
                    outcome,
                });
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        peak_rss.push((server.name, support::tree_peak_rss_kib(process.id())));
        process.stop();
    }

    print_results(&scenarios, &peak_rss);
    println!("load average at the end: {}", support::load_average());
}

fn print_results(scenarios: &[Scenario], peak_rss: &[(&str, u64)]) {
    let mut table = Table::new(&[
        "server", "rows/req", "clients", "req/s", "rows/s", "p50 ms", "p99 ms", "p99.9 ms", "errors",
    ]);
    for s in scenarios {
        let o = &s.outcome;
        table.row(vec![
            s.server.to_string(),
            s.rows.to_string(),
            s.clients.to_string(),
            format!("{:.0}", o.requests_per_second()),
            format!("{:.0}", o.requests_per_second() * s.rows as f64),
            format!("{:.3}", o.quantile_ms(0.5)),
            format!("{:.3}", o.quantile_ms(0.99)),
            format!("{:.3}", o.quantile_ms(0.999)),
            o.errors.to_string(),
        ]);
    }
    println!("\n{}", table.render());

    let mut ratios = Table::new(&[
        "rows/req",
        "clients",
        "throughput vs py-lgbm",
        "throughput vs py-xgb",
        "p99 model-image",
        "p99 py-lgbm",
        "p99 ratio (mi/py-lgbm)",
    ]);
    let find = |server: &str, rows: usize, clients: usize| {
        scenarios
            .iter()
            .find(|s| s.server == server && s.rows == rows && s.clients == clients)
            .map(|s| &s.outcome)
    };
    for s in scenarios.iter().filter(|s| s.server == "model-image") {
        let mi = &s.outcome;
        let (Some(lgbm), Some(xgb)) = (
            find("python-lightgbm", s.rows, s.clients),
            find("python-xgboost", s.rows, s.clients),
        ) else {
            continue;
        };
        ratios.row(vec![
            s.rows.to_string(),
            s.clients.to_string(),
            format!("{:.1}x", mi.requests_per_second() / lgbm.requests_per_second()),
            format!("{:.1}x", mi.requests_per_second() / xgb.requests_per_second()),
            format!("{:.3} ms", mi.quantile_ms(0.99)),
            format!("{:.3} ms", lgbm.quantile_ms(0.99)),
            format!("{:.3}x", mi.quantile_ms(0.99) / lgbm.quantile_ms(0.99)),
        ]);
    }
    println!("ratios model-image / python (throughput: higher is better; p99: lower is better)");
    println!("{}", ratios.render());
    let rss: Vec<String> = peak_rss
        .iter()
        .map(|(name, kib)| format!("{name} {:.0} MiB", *kib as f64 / 1024.0))
        .collect();
    println!("server peak RSS (process tree, VmHWM): {}", rss.join(", "));
    for single in scenarios
        .iter()
        .filter(|s| s.server == "model-image" && s.rows == 1)
    {
        if let Some(lgbm) = find("python-lightgbm", 1, single.clients) {
            println!(
                "targets (not asserted), single row, {} clients: throughput >= 20x python-lightgbm: {:.1}x; \
                 p99 < 1 ms: {:.3} ms",
                single.clients,
                single.outcome.requests_per_second() / lgbm.requests_per_second(),
                single.outcome.quantile_ms(0.99)
            );
        }
    }
}

/// Trains model-image on the real sample into `opt_ml/model`, unless the model there was trained by
/// this very binary from this very sample (a stamp beside it says so).
fn train_model_image(sample: &Path, opt_ml: &Path) {
    let model_json = opt_ml.join("model/model.json");
    let stamp_path = opt_ml.with_extension("stamp");
    let stamp = [support::model_image_bin().as_path(), sample]
        .iter()
        .map(|p| {
            let meta = std::fs::metadata(p).ok();
            format!(
                "{} {:?} {:?}",
                p.display(),
                meta.as_ref().map(|m| m.len()),
                meta.and_then(|m| m.modified().ok())
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    if !retrain() && model_json.is_file() && std::fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp) {
        println!("model-image model: cached in {}", opt_ml.join("model").display());
        return;
    }
    let _ = std::fs::remove_file(&stamp_path);
    let _ = std::fs::remove_dir_all(opt_ml);
    let train = opt_ml.join("input/data/train");
    let config = opt_ml.join("input/config");
    for dir in [&train, &config] {
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|e| bail(&format!("cannot create {}: {e}", dir.display())));
    }
    // The copy lives under target/, never in the repository.
    std::fs::copy(sample, train.join("iotid20_sample.csv"))
        .unwrap_or_else(|e| bail(&format!("cannot copy the sample: {e}")));
    std::fs::write(
        config.join("hyperparameters.json"),
        r#"{"threads": "2", "seed": "42", "bootstrap_resamples": "200"}"#,
    )
    .unwrap_or_else(|e| bail(&format!("cannot write hyperparameters: {e}")));
    let started = Instant::now();
    let (log, log_path) = support::log_file(opt_ml, "train.log");
    let mut command = Command::new(support::model_image_bin());
    command
        .arg("train")
        .env("OPT_ML", opt_ml)
        .env("OMP_WAIT_POLICY", omp_wait_policy())
        .stdout(Stdio::piped())
        .stderr(log);
    let output = command
        .output()
        .unwrap_or_else(|e| bail(&format!("cannot run model-image train: {e}")));
    if !output.status.success() || !model_json.is_file() {
        bail(&format!(
            "model-image train failed ({}); see {}",
            output.status,
            log_path.display()
        ));
    }
    std::fs::write(&stamp_path, stamp).unwrap_or_else(|e| bail(&format!("cannot write {stamp_path:?}: {e}")));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let pr_auc = stdout
        .lines()
        .find(|l| l.starts_with("validation:pr_auc="))
        .unwrap_or("");
    println!(
        "model-image model: trained in {:.1} s ({pr_auc})",
        started.elapsed().as_secs_f64()
    );
}

/// Trains the XGBoost reference on the real sample with the same rounds and features.
fn train_xgboost(sample: &Path, model_dir: &Path, out: &Path, rounds: u64) {
    let model_json = model_dir.join("model.json");
    if !retrain() && newer_than(&out.join("xgboost.json"), &[&model_json]) {
        println!("xgboost model: cached in {}", out.display());
        return;
    }
    let status = Command::new(support::python())
        .arg(support::python_script("train_reference.py"))
        .args([
            "--framework",
            "xgboost",
            "--threads",
            "2",
            "--rounds",
            &rounds.to_string(),
        ])
        .arg("--train")
        .arg(sample)
        .arg("--features-json")
        .arg(&model_json)
        .arg("--save-model")
        .arg(out)
        .env("OMP_WAIT_POLICY", omp_wait_policy())
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| bail(&format!("cannot run train_reference.py: {e}")));
    if !status.success() {
        bail(&format!(
            "train_reference.py --framework xgboost failed ({status})"
        ));
    }
}

/// Training the served models (not measured here) waits passively at OpenMP barriers unless told
/// otherwise: libgomp's spin-waiting makes a 1 s fit take minutes when the 2 cores are shared.
fn omp_wait_policy() -> String {
    std::env::var("OMP_WAIT_POLICY").unwrap_or_else(|_| "PASSIVE".to_string())
}

fn retrain() -> bool {
    std::env::var_os("BENCH_RETRAIN").is_some_and(|v| v != "0")
}

fn newer_than(path: &Path, inputs: &[&Path]) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let Some(own) = modified(path) else { return false };
    inputs
        .iter()
        .all(|input| modified(input).is_none_or(|m: SystemTime| m <= own))
}

/// Starts a server on `port` with its output in `target/bench-data/serving/<name>.log`.
fn start(server: &Server, port: u16, data: &Path) -> Guarded {
    let (log, _) = support::log_file(data, &format!("{}.log", server.name));
    let err = log
        .try_clone()
        .unwrap_or_else(|e| bail(&format!("cannot open a log: {e}")));
    let mut command = match &server.kind {
        Kind::ModelImage { opt_ml } => {
            let mut command = Command::new(support::model_image_bin());
            command
                .arg("serve")
                .arg("--model-dir")
                .arg(opt_ml.join("model"))
                .args(["--host", "127.0.0.1"])
                .env("OPT_ML", opt_ml);
            command
        }
        Kind::Python { framework, model_dir } => {
            let mut command = Command::new(support::python());
            command
                .arg(support::python_script("serve_reference.py"))
                .args(["--framework", framework, "--workers", "2", "--host", "127.0.0.1"])
                .arg("--port")
                .arg(port.to_string())
                .arg("--model-dir")
                .arg(model_dir);
            command
        }
    };
    command
        .env("SAGEMAKER_BIND_TO_PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    Guarded::spawn(server.name, command)
}

/// Polls `GET /ping` until 200, for at most 60 s.
fn wait_ready(process: &mut Guarded, name: &str, addr: SocketAddr) {
    let ping = format!("GET /ping HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if !process.running() {
            bail(&format!(
                "{name} exited before answering /ping; see target/bench-data/serving/{name}.log"
            ));
        }
        if let Ok((200, _)) = loadgen::request_once(addr, &ping) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail(&format!("{name} did not answer /ping within 60 s"));
}

/// One request; its `predictions[*].score`, checked to be `rows` long.
fn predictions(name: &str, addr: SocketAddr, request: &[u8], rows: usize) -> Vec<f64> {
    let (status, body) = loadgen::request_once(addr, request)
        .unwrap_or_else(|e| bail(&format!("{name}: the check request failed: {e}")));
    let text = String::from_utf8_lossy(&body);
    if status != 200 {
        bail(&format!("{name}: the check request got HTTP {status}: {text}"));
    }
    let value: serde_json::Value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| bail(&format!("{name}: the answer is not JSON ({e}): {text}")));
    let scores: Vec<f64> = value["predictions"]
        .as_array()
        .map(|p| p.iter().filter_map(|p| p["score"].as_f64()).collect())
        .unwrap_or_default();
    if scores.len() != rows {
        bail(&format!(
            "{name}: expected {rows} predictions with a score, got: {text}"
        ));
    }
    scores
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| bail(&format!("no free loopback port: {e}")))
}

fn env_list(name: &str, default: &[usize], min: usize, max: usize) -> Vec<usize> {
    let parsed: Vec<usize> = std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|c| c.trim().parse().ok()).collect())
        .unwrap_or_default();
    let list = if parsed.is_empty() {
        default.to_vec()
    } else {
        parsed
    };
    list.into_iter().map(|c| c.clamp(min, max)).collect()
}
