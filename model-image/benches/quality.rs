//! Quality benchmark: the held-out classification results of `model-image train` on real IoTID20 rows,
//! next to Python LightGBM as a user would write it, on the very same split files.
//!
//! For each seed, the real sample is split with the project's seeded stratified split
//! (`model_image::split::stratified`, 30% of each class held out; positive class `Label == Anomaly`)
//! into `train.csv` and `test.csv` (original header, cells exactly as in the sample) under
//! `target/bench-data/quality/seed-<seed>/`. Then, on those files:
//!
//! - `model-image train` (the release binary) with its defaults, except `threads` = 2: it holds out
//!   20% of train (stratified, its own seed 42) for early stopping and picks the max-F1 threshold
//!   there, then scores the test channel. Its `test:*` metric lines are parsed from stdout.
//! - `benches/python/quality_reference.py`: pandas, `lightgbm.LGBMClassifier(n_estimators=100,
//!   learning_rate=0.1, num_leaves=31, n_jobs=2)` fitted on all of train, `predict_proba`, threshold
//!   0.5, scikit-learn metrics.
//!
//! Wall time is each process's, start to exit (Python's includes its interpreter and imports).
//! Nothing is asserted; the table is the result.
//!
//! Knobs: `QUALITY_SEEDS` (comma-separated, default `2026,1,2,3,4`), `IOTID20_SAMPLE`, `PYTHON`,
//! `MODEL_IMAGE_BIN`.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::sample::Sample;
use support::{Guarded, Table, bail};

const COMMAND: &str = "cargo bench -p model-image --bench quality";
const SEEDS: [u64; 5] = [2026, 1, 2, 3, 4];
/// Share of each class in `test.csv`.
const TEST_FRACTION: f64 = 0.3;
const LABEL: &str = "Label";
const POSITIVE: &str = "Anomaly";
/// The only hyperparameter set: the Python reference's `n_jobs`, so numbers do not depend on cores.
const HYPERPARAMETERS: &str = "{\"threads\": \"2\"}\n";
const PYTHON_MODULES: [&str; 4] = ["lightgbm", "pandas", "sklearn", "numpy"];
const PIP_INSTALL: &str = "pip install lightgbm==4.7.0 pandas scikit-learn";
/// No single run may take longer than this.
const RUN_LIMIT: Duration = Duration::from_secs(10 * 60);

/// Test-set results of one pipeline on one seed's split.
#[derive(Debug, Clone, Default)]
struct Scores {
    mcc: f64,
    roc_auc: f64,
    pr_auc: f64,
    f1: f64,
    balanced_accuracy: f64,
    /// model-image's 95% bootstrap interval for MCC.
    mcc_ci: Option<(f64, f64)>,
    threshold: f64,
    trees: f64,
    wall_s: f64,
}

impl Scores {
    /// The five compared metrics, in table order.
    fn metrics(&self) -> [f64; 5] {
        [
            self.mcc,
            self.roc_auc,
            self.pr_auc,
            self.f1,
            self.balanced_accuracy,
        ]
    }
}

fn main() {
    support::print_header(
        "quality: model-image train vs Python LightGBM on real IoTID20 rows (held-out test split)",
        COMMAND,
    );
    require_python();
    let seeds = seeds();
    let sample_path = support::real_sample();
    let sample = Sample::load(&sample_path);
    let label = sample
        .column(LABEL)
        .unwrap_or_else(|| bail(&format!("the sample has no `{LABEL}` column")));
    let labels: Vec<bool> = sample.records.iter().map(|r| &r[label] == POSITIVE).collect();
    let positives = labels.iter().filter(|&&y| y).count();
    if positives == 0 || positives == labels.len() {
        bail("the sample needs rows of both `Anomaly` and another label");
    }
    let work = support::bench_data("quality");
    println!(
        "data: {} ({} rows: {positives} {POSITIVE}, {} other), seeded stratified split \
         model_image::split::stratified(labels, {TEST_FRACTION}, seed) -> train.csv / test.csv in {}",
        sample_display(),
        labels.len(),
        labels.len() - positives,
        relative(&work).display(),
    );
    println!(
        "model-image: `model-image train`, hyperparameters {} (else defaults: 20% of train held out \
         for early stopping, max 1000 rounds, patience 30, max-F1 threshold chosen there)",
        HYPERPARAMETERS.trim()
    );
    println!(
        "python-lightgbm: LGBMClassifier(n_estimators=100, learning_rate=0.1, num_leaves=31, n_jobs=2) \
         on all of train, predict_proba, threshold 0.5 ({})",
        python_versions()
    );
    println!("metrics on test.csv, positive class {POSITIVE}; diff = model-image - python-lightgbm\n");

    let mut results = Vec::with_capacity(seeds.len());
    for &seed in &seeds {
        let dir = work.join(format!("seed-{seed}"));
        let (train, test) = write_split(&sample, &labels, seed, &dir);
        let ours = run_model_image(&dir);
        let theirs = run_python(&train, &test, &dir);
        eprintln!(
            "seed {seed}: model-image MCC {:.4} ({:.1}s), python-lightgbm MCC {:.4} ({:.1}s)",
            ours.mcc, ours.wall_s, theirs.mcc, theirs.wall_s
        );
        results.push((seed, ours, theirs));
    }
    print_results(&results);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load = support::load_average();
    println!("load average at the end: {load}");
    if load
        .split_whitespace()
        .next()
        .and_then(|l| l.parse::<f64>().ok())
        .is_some_and(|l| l > cores as f64)
    {
        println!(
            "note: the load average exceeds the {cores} cores: other processes share them, so the wall \
             times are inflated and noisy (LightGBM's threads wait on busy cores); the metrics are not \
             affected"
        );
    }
}

/// `$QUALITY_SEEDS` (comma-separated), else [`SEEDS`].
fn seeds() -> Vec<u64> {
    match std::env::var("QUALITY_SEEDS") {
        Ok(text) if !text.trim().is_empty() => text
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .unwrap_or_else(|_| bail(&format!("QUALITY_SEEDS: `{s}` is not a seed")))
            })
            .collect(),
        _ => SEEDS.to_vec(),
    }
}

/// Exits with the install command unless the Python reference's modules import.
fn require_python() {
    let probe = format!("import {}", PYTHON_MODULES.join(", "));
    let ok = Command::new(support::python())
        .args(["-c", &probe])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        bail(&format!(
            "the Python reference needs lightgbm, pandas and scikit-learn (`{} -c \"{probe}\"` failed).\n  \
             Install them with: {PIP_INSTALL}\n  (set PYTHON to use another interpreter)",
            support::python()
        ));
    }
}

fn python_versions() -> String {
    let probe = "import lightgbm, pandas, sklearn; \
                 print(f'lightgbm {lightgbm.__version__}, pandas {pandas.__version__}, \
                 scikit-learn {sklearn.__version__}')";
    Command::new(support::python())
        .args(["-c", probe])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "versions unknown".to_string())
}

/// The sample as the user named it: `$IOTID20_SAMPLE`, or its path from the repository root.
fn sample_display() -> String {
    std::env::var("IOTID20_SAMPLE")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "../shared/data/iotid20/iotid20_sample.csv".to_string())
}

/// `path` relative to the repository root when it is inside it.
fn relative(path: &Path) -> PathBuf {
    let root = support::repo_root().canonicalize().ok();
    let full = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    root.and_then(|r| full.strip_prefix(r).ok().map(Path::to_path_buf))
        .unwrap_or(full)
}

/// Writes one seed's split as an `/opt/ml` tree under `dir` (recreated): the train and test channels
/// and `hyperparameters.json`. Returns the train and test files.
fn write_split(sample: &Sample, labels: &[bool], seed: u64, dir: &Path) -> (PathBuf, PathBuf) {
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .unwrap_or_else(|e| bail(&format!("cannot clear {}: {e}", dir.display())));
    }
    let split = model_image::split::stratified(labels, TEST_FRACTION, seed);
    let train = dir.join("input/data/train/train.csv");
    let test = dir.join("input/data/test/test.csv");
    write_rows(sample, &split.train, &train);
    write_rows(sample, &split.held_out, &test);
    write_file(&dir.join("input/config/hyperparameters.json"), HYPERPARAMETERS);
    (train, test)
}

fn write_rows(sample: &Sample, rows: &[usize], path: &Path) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| bail(&format!("cannot create {}: {e}", parent.display())));
    }
    let fail = |e: &dyn std::fmt::Display| -> ! { bail(&format!("cannot write {}: {e}", path.display())) };
    let mut writer = csv::Writer::from_path(path).unwrap_or_else(|e| fail(&e));
    writer.write_record(&sample.header).unwrap_or_else(|e| fail(&e));
    for &row in rows {
        writer
            .write_record(&sample.records[row])
            .unwrap_or_else(|e| fail(&e));
    }
    writer.flush().unwrap_or_else(|e| fail(&e));
}

fn write_file(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| bail(&format!("cannot create {}: {e}", parent.display())));
    }
    std::fs::write(path, text).unwrap_or_else(|e| bail(&format!("cannot write {}: {e}", path.display())));
}

/// Runs `command` with stdout and stderr in `<dir>/<name>.stdout|.stderr`; returns its stdout and
/// wall time, or exits with the end of its stderr when it fails.
fn timed(name: &str, mut command: Command, dir: &Path) -> (String, f64) {
    let (stdout, stdout_path) = support::log_file(dir, &format!("{name}.stdout"));
    let (stderr, stderr_path) = support::log_file(dir, &format!("{name}.stderr"));
    command.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    let started = Instant::now();
    let mut child = Guarded::spawn(name, command);
    let status = child.wait_with_limit(RUN_LIMIT);
    let wall_s = started.elapsed().as_secs_f64();
    let errors = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    match status {
        Some(status) if status.success() => {}
        _ => {
            let tail: Vec<&str> = errors.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail(&format!(
                "{name} failed ({status:?}); its stderr ends with:\n{}",
                tail.join("\n")
            ));
        }
    }
    let out = std::fs::read_to_string(&stdout_path)
        .unwrap_or_else(|e| bail(&format!("cannot read {}: {e}", stdout_path.display())));
    (out, wall_s)
}

fn run_model_image(dir: &Path) -> Scores {
    let mut command = Command::new(support::model_image_bin());
    command.arg("train").env(model_image::layout::OPT_ML_ENV, dir);
    let (stdout, wall_s) = timed("model-image", command, dir);
    // `split:name=value` lines (SageMaker MetricDefinitions); other lines are ignored.
    let values: BTreeMap<&str, f64> = stdout
        .lines()
        .filter_map(|line| line.trim().split_once('='))
        .filter_map(|(key, value)| value.trim().parse().ok().map(|v| (key.trim(), v)))
        .collect();
    let get = |key: &str| {
        values
            .get(key)
            .copied()
            .unwrap_or_else(|| bail(&format!("model-image train printed no `{key}=` line")))
    };
    Scores {
        mcc: get("test:mcc"),
        roc_auc: get("test:roc_auc"),
        pr_auc: get("test:pr_auc"),
        f1: get("test:f1"),
        balanced_accuracy: get("test:balanced_accuracy"),
        mcc_ci: Some((get("test:mcc_ci_low"), get("test:mcc_ci_high"))),
        threshold: get("test:threshold"),
        trees: get("train:rounds"),
        wall_s,
    }
}

fn run_python(train: &Path, test: &Path, dir: &Path) -> Scores {
    let mut command = Command::new(support::python());
    command
        .arg(support::python_script("quality_reference.py"))
        .arg("--train")
        .arg(train)
        .arg("--test")
        .arg(test);
    let (stdout, wall_s) = timed("python-lightgbm", command, dir);
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|e| {
        bail(&format!(
            "quality_reference.py printed no JSON result ({e}): {last}"
        ))
    });
    let get = |key: &str| {
        json[key]
            .as_f64()
            .unwrap_or_else(|| bail(&format!("quality_reference.py's result has no number `{key}`")))
    };
    Scores {
        mcc: get("mcc"),
        roc_auc: get("roc_auc"),
        pr_auc: get("pr_auc"),
        f1: get("f1"),
        balanced_accuracy: get("balanced_accuracy"),
        mcc_ci: None,
        threshold: get("threshold"),
        trees: 100.0,
        wall_s,
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { f64::NAN } else { sum / n as f64 }
}

/// The mean of each field over seeds (no interval: per-seed intervals do not average into one).
fn mean_scores(all: &[&Scores]) -> Scores {
    let m = |f: fn(&Scores) -> f64| mean(all.iter().map(|s| f(s)));
    Scores {
        mcc: m(|s| s.mcc),
        roc_auc: m(|s| s.roc_auc),
        pr_auc: m(|s| s.pr_auc),
        f1: m(|s| s.f1),
        balanced_accuracy: m(|s| s.balanced_accuracy),
        mcc_ci: None,
        threshold: m(|s| s.threshold),
        trees: m(|s| s.trees),
        wall_s: m(|s| s.wall_s),
    }
}

fn scores_row(seed: &str, pipeline: &str, s: &Scores) -> Vec<String> {
    let mut row = vec![format!("{seed:<4}  {pipeline}")];
    row.push(format!("{:.4}", s.mcc));
    row.push(
        s.mcc_ci
            .map_or_else(String::new, |(low, high)| format!("[{low:.4}, {high:.4}]")),
    );
    row.extend(s.metrics()[1..].iter().map(|v| format!("{v:.4}")));
    row.push(format!("{:.3}", s.threshold));
    row.push(format!("{:.0}", s.trees));
    row.push(format!("{:.2}", s.wall_s));
    row
}

fn diff_row(seed: &str, ours: &Scores, theirs: &Scores) -> Vec<String> {
    let mut row = vec![format!("{seed:<4}  diff (mi - py)")];
    let diffs: Vec<String> = ours
        .metrics()
        .iter()
        .zip(theirs.metrics())
        // `+ 0.0` turns a rounded `-0.0000` into `+0.0000`.
        .map(|(a, b)| format!("{:+.4}", ((a - b) * 1e4).round() / 1e4 + 0.0))
        .collect();
    row.push(diffs[0].clone());
    row.push(String::new());
    row.extend(diffs[1..].iter().cloned());
    row.extend([
        String::new(),
        String::new(),
        format!("{:+.2}", ours.wall_s - theirs.wall_s),
    ]);
    row
}

fn print_results(results: &[(u64, Scores, Scores)]) {
    let mut table = Table::new(&[
        "seed  pipeline",
        "MCC",
        "MCC 95% CI",
        "ROC-AUC",
        "PR-AUC",
        "F1",
        "bal. acc.",
        "threshold",
        "trees",
        "wall s",
    ]);
    for (seed, ours, theirs) in results {
        let seed = seed.to_string();
        table.row(scores_row(&seed, "model-image", ours));
        table.row(scores_row(&seed, "python-lightgbm", theirs));
        table.row(diff_row(&seed, ours, theirs));
    }
    let ours = mean_scores(&results.iter().map(|(_, o, _)| o).collect::<Vec<_>>());
    let theirs = mean_scores(&results.iter().map(|(_, _, t)| t).collect::<Vec<_>>());
    table.row(scores_row("mean", "model-image", &ours));
    table.row(scores_row("mean", "python-lightgbm", &theirs));
    table.row(diff_row("mean", &ours, &theirs));
    println!("{}", table.render());

    let mcc_better = results.iter().filter(|(_, o, t)| o.mcc > t.mcc).count();
    let pr_better = results.iter().filter(|(_, o, t)| o.pr_auc > t.pr_auc).count();
    let inside = results
        .iter()
        .filter(|(_, o, t)| o.mcc_ci.is_some_and(|(low, high)| low <= t.mcc && t.mcc <= high))
        .count();
    println!(
        "over {} seeds: model-image's MCC higher on {mcc_better}, PR-AUC higher on {pr_better}; \
         python-lightgbm's MCC inside model-image's 95% CI on {inside}",
        results.len()
    );
    println!(
        "MCC CI: model-image's bootstrap of its test split (1000 resamples); mean rows: plain means \
         over seeds"
    );
}
