//! Training benchmark: `model-image train` end to end against the Python pipeline a SageMaker user
//! would otherwise run (pandas `read_csv`, LightGBM `train` or XGBoost `hist`, scikit-learn
//! `average_precision_score`), on the real IoTID20 sample scaled to 625,000 rows.
//!
//! Scaling: the real sample's rows are split 70/10/20 per label (seeded) into disjoint train,
//! validation and test rows; each file resamples its own rows with replacement (seeded) and multiplies
//! every continuous cell by `1 + N(0, 0.01)`; integer-valued columns stay integral (jittered, then
//! rounded), ports, protocol and the label columns are kept as they are. Train (625,000 rows, seed 1),
//! validation (125,000, seed 2) and test (125,000, seed 3) are written once to `target/bench-data/`
//! and reused while the sample and the generator are unchanged. (Without the split, the test file
//! would be jittered copies of training rows and every pipeline would score a PR-AUC of 1.)
//!
//! Every pipeline gets the same threads (2), learning rate (0.1), leaves (31) and the same fixed
//! number of rounds: the same validation file is given to all, with early stopping patience equal to
//! the rounds, so no one stops early. Wall time and peak RSS come from `/usr/bin/time` (the child's
//! rusage); PR-AUC is on the test file. Targets (not asserted): <= 0.7x the time and memory of
//! python-lightgbm, PR-AUC within 0.002.
//!
//! OpenMP: every child gets `OMP_WAIT_POLICY=PASSIVE` unless the caller sets another value (see
//! [`omp_wait_policy`]); `OMP_WAIT_POLICY=ACTIVE cargo bench ...` measures spin-waiting.
//!
//! Two more pipelines show LightGBM's quantized training (`quantized_gradients` in model-image,
//! `use_quantized_grad` + `quant_train_renew_leaf` in Python), each against the other and against
//! the exact Python pipeline; `BENCH_QUANTIZED=0` leaves them out.
//!
//! Knobs: `BENCH_ROUNDS` (200), `BENCH_THREADS` (2), `BENCH_BOOTSTRAP` (model-image's
//! `bootstrap_resamples`, 1000 = its default), `BENCH_REPEATS` (1, at most 5: the fastest run of each
//! pipeline counts), `BENCH_QUANTIZED` (1), `BENCH_REGENERATE=1`, `MODEL_IMAGE_BIN` (another build
//! of the binary), `IOTID20_SAMPLE`, `PYTHON`.

mod support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use support::sample::Sample;
use support::{Guarded, Table, bail, env_number, read_json};

const COMMAND: &str = "cargo bench -p model-image --bench training";
const TRAIN_ROWS: usize = 625_000;
const HELD_OUT_ROWS: usize = 125_000;
/// Bump when the generated data would change, so cached files are rebuilt.
const GENERATOR_VERSION: u32 = 2;
/// Columns that are codes, not magnitudes: copied as they are.
const CODES: [&str; 3] = ["Src_Port", "Dst_Port", "Protocol"];
const LABELS: [&str; 3] = ["Label", "Cat", "Sub_Cat"];
/// No single pipeline may run longer than this.
const RUN_LIMIT: Duration = Duration::from_secs(30 * 60);
const TIME: &str = "/usr/bin/time";

struct Run {
    name: &'static str,
    wall_s: f64,
    peak_rss_kib: u64,
    rounds: Option<u64>,
    test_pr_auc: Option<f64>,
    /// model-image only: MCC on test at the threshold it chose on validation.
    test_mcc: Option<f64>,
    /// Seconds in the fit (Python: `lgb.train` / `xgb.train` with their datasets).
    fit_s: Option<f64>,
    phases: String,
}

/// The pipelines, in the order they run and are printed.
const PIPELINES: [&str; 5] = [
    "model-image",
    "python-lightgbm",
    "python-xgboost",
    "model-image quantized",
    "python-lightgbm quantized",
];

fn main() {
    support::print_header(
        "training: model-image train vs Python LightGBM / XGBoost pipelines",
        COMMAND,
    );
    support::require_python_stack(&["lightgbm", "xgboost", "pandas", "sklearn"]);
    if !Path::new(TIME).is_file() {
        bail("GNU time is needed at /usr/bin/time for peak RSS (Debian: apt-get install time)");
    }
    let rounds = env_number("BENCH_ROUNDS", 200, 10, 2000);
    let threads = env_number("BENCH_THREADS", 2, 1, 64);
    let bootstrap = env_number("BENCH_BOOTSTRAP", 1000, 0, 10_000);
    let repeats = env_number("BENCH_REPEATS", 1, 1, 5);
    let quantized = env_number("BENCH_QUANTIZED", 1, 0, 1) == 1;

    let sample_path = support::real_sample();
    let data = support::bench_data("");
    let files = scaled_data(&sample_path, &data);
    println!(
        "data: {} ({} rows), {} ({} rows), {} ({} rows), {:.0} MB in all",
        name(&files.train),
        TRAIN_ROWS,
        name(&files.validation),
        HELD_OUT_ROWS,
        name(&files.test),
        HELD_OUT_ROWS,
        [&files.train, &files.validation, &files.test]
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len() as f64 / 1e6)
            .sum::<f64>()
    );
    // Everyone reads from the page cache, not the disk.
    for file in [&files.train, &files.validation, &files.test] {
        let mut reader =
            std::fs::File::open(file).unwrap_or_else(|e| bail(&format!("cannot read {file:?}: {e}")));
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    }
    println!(
        "settings: OMP_WAIT_POLICY={} for everyone; {rounds} rounds for everyone (early-stopping patience = rounds, same validation file), \
         {threads} threads, learning_rate 0.1, num_leaves 31; model-image bootstrap_resamples {bootstrap}; \
         best of {repeats} run(s) each\n",
        omp_wait_policy()
    );

    let work = support::bench_data("training");
    // Round-robin, so that whatever else runs on the machine hits every pipeline alike; with
    // repeats, each pipeline's fastest run counts.
    let pipelines = if quantized {
        &PIPELINES[..]
    } else {
        &PIPELINES[..3]
    };
    let mut tries: Vec<Vec<Run>> = pipelines.iter().map(|_| Vec::new()).collect();
    for repeat in 1..=repeats {
        if repeats > 1 {
            println!("repeat {repeat}/{repeats}");
        }
        for (pipeline, runs) in pipelines.iter().zip(&mut tries) {
            runs.push(match *pipeline {
                "model-image" => run_model_image(&files, &work, rounds, threads, bootstrap, false),
                "model-image quantized" => run_model_image(&files, &work, rounds, threads, bootstrap, true),
                "python-lightgbm" => run_python("lightgbm", false, &files, &work, rounds, threads),
                "python-lightgbm quantized" => run_python("lightgbm", true, &files, &work, rounds, threads),
                "python-xgboost" => run_python("xgboost", false, &files, &work, rounds, threads),
                other => unreachable!("unknown pipeline {other}"),
            });
        }
    }
    let runs: Vec<Run> = tries
        .into_iter()
        .map(|t| {
            t.into_iter()
                .min_by(|a, b| a.wall_s.total_cmp(&b.wall_s))
                .expect("repeats >= 1")
        })
        .collect();
    let model_text = work.join("model-image/opt_ml/model/model.txt");
    let cross_check = score_with_sklearn(&model_text, &files.test, threads);
    print_results(&runs, cross_check);
    println!("load average at the end: {}", support::load_average());
}

fn print_results(runs: &[Run], cross_check: Option<f64>) {
    let mut table = Table::new(&[
        "pipeline",
        "wall s",
        "peak RSS MiB",
        "rounds",
        "test PR-AUC",
        "test MCC",
        "phases (s)",
    ]);
    let unknown = || "?".to_string();
    for run in runs {
        table.row(vec![
            run.name.to_string(),
            format!("{:.1}", run.wall_s),
            format!("{:.0}", run.peak_rss_kib as f64 / 1024.0),
            run.rounds.map_or_else(unknown, |r| r.to_string()),
            run.test_pr_auc.map_or_else(unknown, |p| format!("{p:.5}")),
            run.test_mcc
                .map_or_else(|| "-".to_string(), |m| format!("{m:.4}")),
            run.phases.clone(),
        ]);
    }
    println!("\n{}", table.render());
    if let Some(pr_auc) = cross_check {
        println!(
            "cross-check: scikit-learn average_precision_score of model-image's model.txt on test = {pr_auc:.5}"
        );
    }
    let find = |name: &str| runs.iter().find(|r| r.name == name);
    let mut ratios = Table::new(&["pipeline", "vs", "time", "memory", "PR-AUC diff"]);
    for (ours, theirs) in [
        ("model-image", "python-lightgbm"),
        ("model-image", "python-xgboost"),
        ("model-image quantized", "python-lightgbm"),
        ("model-image quantized", "python-lightgbm quantized"),
    ] {
        let (Some(ours), Some(theirs)) = (find(ours), find(theirs)) else {
            continue;
        };
        ratios.row(vec![
            ours.name.to_string(),
            theirs.name.to_string(),
            format!("{:.2}x", ours.wall_s / theirs.wall_s),
            format!("{:.2}x", ours.peak_rss_kib as f64 / theirs.peak_rss_kib as f64),
            match (ours.test_pr_auc, theirs.test_pr_auc) {
                (Some(a), Some(b)) => format!("{:+.5}", a - b),
                _ => unknown(),
            },
        ]);
    }
    println!("ratios (time and memory: lower is better)");
    println!("{}", ratios.render());
    let (Some(mi), Some(lgbm)) = (find("model-image"), find("python-lightgbm")) else {
        return;
    };
    println!(
        "targets (not asserted): time <= 0.7x: {:.2}x; memory <= 0.7x: {:.2}x; |PR-AUC diff| <= 0.002: {}",
        mi.wall_s / lgbm.wall_s,
        mi.peak_rss_kib as f64 / lgbm.peak_rss_kib as f64,
        match (mi.test_pr_auc, lgbm.test_pr_auc) {
            (Some(a), Some(b)) => format!("{:.5}", (a - b).abs()),
            _ => unknown(),
        }
    );
    if let (Some(python_fit), Some(mi_fit)) = (lgbm.fit_s, mi.fit_s) {
        // Both fits are LightGBM's C++ on the same rows with the same parameters; everything else
        // (start-up, reading, scoring, metrics, writing) is what the two pipelines do differently.
        println!(
            "the fit alone: python-lightgbm {python_fit:.1} s of its {:.1} s ({:.0}%), model-image {mi_fit:.1} s \
             ({:.2}x python-lightgbm's whole wall time); everything but the fit: model-image {:.1} s, python-lightgbm {:.1} s",
            lgbm.wall_s,
            100.0 * python_fit / lgbm.wall_s,
            mi_fit / lgbm.wall_s,
            mi.wall_s - mi_fit,
            lgbm.wall_s - python_fit
        );
    }
}

struct Files {
    train: PathBuf,
    validation: PathBuf,
    test: PathBuf,
}

fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The scaled train, validation and test files, generated unless a stamp says they are current.
fn scaled_data(sample_path: &Path, data: &Path) -> Files {
    let files = Files {
        train: data.join("iotid20_625k.csv"),
        validation: data.join("iotid20_125k_validation.csv"),
        test: data.join("iotid20_125k_test.csv"),
    };
    let stamp_path = data.join("iotid20_scaled.stamp");
    let sample_len = std::fs::metadata(sample_path).map(|m| m.len()).unwrap_or(0);
    let stamp = format!(
        "generator v{GENERATOR_VERSION}; sample {sample_len} bytes; rows {TRAIN_ROWS}/{HELD_OUT_ROWS}/{HELD_OUT_ROWS}"
    );
    let current = std::env::var_os("BENCH_REGENERATE").is_none_or(|v| v == "0")
        && std::fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp)
        && [&files.train, &files.validation, &files.test]
            .iter()
            .all(|f| f.is_file());
    if current {
        println!("data: cached in {}", data.display());
        return files;
    }
    let started = Instant::now();
    let sample = Sample::load(sample_path);
    let kinds = column_kinds(&sample);
    let [train_pool, validation_pool, test_pool] = disjoint_pools(&sample);
    for (path, pool, rows, seed) in [
        (&files.train, &train_pool, TRAIN_ROWS, 1),
        (&files.validation, &validation_pool, HELD_OUT_ROWS, 2),
        (&files.test, &test_pool, HELD_OUT_ROWS, 3),
    ] {
        write_scaled(&sample, &kinds, pool, path, rows, seed);
    }
    std::fs::write(&stamp_path, stamp).unwrap_or_else(|e| bail(&format!("cannot write {stamp_path:?}: {e}")));
    println!(
        "data: generated from {} real rows in {:.1} s into {}",
        sample.records.len(),
        started.elapsed().as_secs_f64(),
        data.display()
    );
    files
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// Label columns, codes and text: copied.
    Verbatim,
    /// Every cell an integer: jittered, then rounded.
    Integer,
    /// Jittered.
    Continuous,
}

fn column_kinds(sample: &Sample) -> Vec<Kind> {
    sample
        .header
        .iter()
        .enumerate()
        .map(|(i, name)| {
            if LABELS.contains(&name.as_str()) || CODES.contains(&name.as_str()) {
                return Kind::Verbatim;
            }
            let cells = || sample.records.iter().map(|r| r[i].trim());
            if cells().all(|c| c.parse::<i64>().is_ok()) {
                Kind::Integer
            } else if cells().all(|c| c.parse::<f64>().is_ok()) {
                Kind::Continuous
            } else {
                Kind::Verbatim
            }
        })
        .collect()
}

/// The real rows split 70/10/20 per label value (seeded): train, validation and test files are each
/// resampled from their own rows only, so the test file holds no jittered copy of a training row.
fn disjoint_pools(sample: &Sample) -> [Vec<usize>; 3] {
    let label = sample
        .column("Label")
        .unwrap_or_else(|| bail("the sample has no `Label` column"));
    let mut by_label: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (i, record) in sample.records.iter().enumerate() {
        by_label.entry(&record[label]).or_default().push(i);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut pools = [Vec::new(), Vec::new(), Vec::new()];
    for indices in by_label.values_mut() {
        indices.shuffle(&mut rng);
        let (train_end, validation_end) = (indices.len() * 7 / 10, indices.len() * 8 / 10);
        pools[0].extend_from_slice(&indices[..train_end]);
        pools[1].extend_from_slice(&indices[train_end..validation_end]);
        pools[2].extend_from_slice(&indices[validation_end..]);
    }
    if pools.iter().any(Vec::is_empty) {
        bail("the sample is too small to split into train, validation and test rows");
    }
    pools
}

/// Writes `rows` rows resampled with replacement from the `pool` rows of `sample`, jittered, to
/// `path` (via a temp file and a rename).
fn write_scaled(sample: &Sample, kinds: &[Kind], pool: &[usize], path: &Path, rows: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let partial = path.with_extension("csv.partial");
    let file =
        std::fs::File::create(&partial).unwrap_or_else(|e| bail(&format!("cannot create {partial:?}: {e}")));
    let mut writer = csv::Writer::from_writer(std::io::BufWriter::with_capacity(1 << 20, file));
    let fail = |e: csv::Error| -> ! { bail(&format!("cannot write {partial:?}: {e}")) };
    writer.write_record(&sample.header).unwrap_or_else(|e| fail(e));
    let mut record = csv::ByteRecord::new();
    let mut cell = Vec::with_capacity(32);
    for _ in 0..rows {
        let source = &sample.records[pool[rng.random_range(0..pool.len())]];
        record.clear();
        for (text, kind) in source.iter().zip(kinds) {
            cell.clear();
            match kind {
                Kind::Verbatim => cell.extend_from_slice(text.as_bytes()),
                Kind::Integer => {
                    let value: i64 = text.trim().parse().unwrap_or(0);
                    let jittered = if value == 0 {
                        0
                    } else {
                        (value as f64 * jitter(&mut rng)).round() as i64
                    };
                    let _ = write!(cell, "{jittered}");
                }
                Kind::Continuous => match text.trim().parse::<f64>() {
                    Ok(value) if value.is_finite() && value != 0.0 => {
                        // f32 precision: what model-image reads; shortest text that round-trips.
                        let _ = write!(cell, "{}", (value * jitter(&mut rng)) as f32);
                    }
                    _ => cell.extend_from_slice(text.as_bytes()),
                },
            }
            record.push_field(&cell);
        }
        writer.write_byte_record(&record).unwrap_or_else(|e| fail(e));
    }
    writer
        .flush()
        .unwrap_or_else(|e| bail(&format!("cannot write {partial:?}: {e}")));
    drop(writer);
    std::fs::rename(&partial, path).unwrap_or_else(|e| bail(&format!("cannot rename {partial:?}: {e}")));
}

/// `1 + N(0, 0.01)` (Box-Muller).
fn jitter(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    1.0 + 0.01 * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `$OMP_WAIT_POLICY`, else `PASSIVE`, for every pipeline alike. LightGBM and XGBoost both run on
/// libgomp, whose default spin-waiting at barriers turns a 20 s fit into 100-200 s whenever another
/// process wants one of the two cores; passive waiting costs nothing measurable on an idle machine.
fn omp_wait_policy() -> String {
    std::env::var("OMP_WAIT_POLICY").unwrap_or_else(|_| "PASSIVE".to_string())
}

/// Runs `command` under `/usr/bin/time`, returning (wall seconds, peak RSS KiB, stdout).
fn timed(name: &'static str, command: &mut Command, work: &Path) -> (f64, u64, String) {
    let file_name = name.replace(' ', "-");
    let time_file = work.join(format!("{file_name}.time"));
    let stdout_path = work.join(format!("{file_name}.stdout"));
    let (stderr, stderr_path) = support::log_file(work, &format!("{file_name}.log"));
    let stdout =
        std::fs::File::create(&stdout_path).unwrap_or_else(|e| bail(&format!("cannot create a log: {e}")));
    let program = command.get_program().to_os_string();
    let args: Vec<_> = command.get_args().map(|a| a.to_os_string()).collect();
    let mut wrapped = Command::new(TIME);
    wrapped
        .args(["-f", "%e %M", "-o"])
        .arg(&time_file)
        .arg(program)
        .args(args);
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    wrapped
        .env("OMP_WAIT_POLICY", omp_wait_policy())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    println!("running {name} ... (load average {})", support::load_average());
    let started = Instant::now();
    let mut child = Guarded::spawn(name, wrapped);
    let status = child.wait_with_limit(RUN_LIMIT);
    let wall = started.elapsed().as_secs_f64();
    if !status.is_some_and(|s| s.success()) {
        bail(&format!(
            "{name} failed ({status:?}); see {}",
            stderr_path.display()
        ));
    }
    let measured = std::fs::read_to_string(&time_file).unwrap_or_default();
    let peak_rss_kib = measured
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let output = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    println!(
        "  {name}: {wall:.1} s, peak RSS {:.0} MiB",
        peak_rss_kib as f64 / 1024.0
    );
    (wall, peak_rss_kib, output)
}

fn run_model_image(
    files: &Files,
    work: &Path,
    rounds: u64,
    threads: u64,
    bootstrap: u64,
    quantized: bool,
) -> Run {
    let pipeline = if quantized {
        "model-image quantized"
    } else {
        "model-image"
    };
    let file_name = pipeline.replace(' ', "-");
    let work = &work.join(&file_name);
    let opt_ml = work.join("opt_ml");
    let _ = std::fs::remove_dir_all(&opt_ml);
    for (channel, file) in [
        ("train", &files.train),
        ("validation", &files.validation),
        ("test", &files.test),
    ] {
        let dir = opt_ml.join("input/data").join(channel);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| bail(&format!("cannot create {dir:?}: {e}")));
        let target = std::fs::canonicalize(file).unwrap_or_else(|e| bail(&format!("{file:?}: {e}")));
        std::os::unix::fs::symlink(target, dir.join(name(file)))
            .unwrap_or_else(|e| bail(&format!("cannot link {file:?}: {e}")));
    }
    let config = opt_ml.join("input/config");
    std::fs::create_dir_all(&config).unwrap_or_else(|e| bail(&format!("cannot create {config:?}: {e}")));
    let hyperparameters = serde_json::json!({
        "max_rounds": rounds.to_string(),
        "early_stopping_rounds": rounds.to_string(),
        "learning_rate": "0.1",
        "num_leaves": "31",
        "threads": threads.to_string(),
        "seed": "42",
        "bootstrap_resamples": bootstrap.to_string(),
        "quantized_gradients": quantized.to_string(),
    });
    std::fs::write(config.join("hyperparameters.json"), hyperparameters.to_string())
        .unwrap_or_else(|e| bail(&format!("cannot write hyperparameters: {e}")));

    let mut command = Command::new(support::model_image_bin());
    command.arg("train").env("OPT_ML", &opt_ml);
    let (wall_s, peak_rss_kib, _stdout) = timed(pipeline, &mut command, work);

    let metrics = read_json(&opt_ml.join("model/metrics.json"));
    let metadata = read_json(&opt_ml.join("model/model.json"));
    let log = std::fs::read_to_string(work.join(format!("{file_name}.log"))).unwrap_or_default();
    let phases = ModelImagePhases::from_log(&log);
    Run {
        name: pipeline,
        wall_s,
        peak_rss_kib,
        rounds: metadata["rounds"].as_u64(),
        test_pr_auc: metrics["test"]["pr_auc"]["value"].as_f64(),
        test_mcc: metrics["test"]["mcc"]["value"].as_f64(),
        fit_s: phases.as_ref().map(|p| p.fit),
        phases: phases.map_or_else(|| format!("see {file_name}.log"), |p| p.to_string()),
    }
}

/// Seconds per phase, from model-image's progress lines on stderr (`... in 1.2s`).
struct ModelImagePhases {
    /// Reading the train, validation and test channels.
    read: f64,
    fit: f64,
    /// Scoring validation and test, threshold, metrics with bootstrap intervals.
    evaluate: f64,
    /// Everything else: start-up, the report, writing.
    rest: f64,
}

impl ModelImagePhases {
    fn from_log(log: &str) -> Option<Self> {
        let seconds_in = |needle: &str| {
            log.lines().find(|l| l.contains(needle)).and_then(|l| {
                let after = &l[l.rfind(" in ")? + 4..];
                after
                    .trim_end_matches(|c: char| !c.is_ascii_digit())
                    .parse::<f64>()
                    .ok()
            })
        };
        let read = seconds_in(" train rows")?
            + seconds_in(" validation rows in ").unwrap_or(0.0)
            + seconds_in(" test rows in ").unwrap_or(0.0);
        let fit = seconds_in("fitted ")?;
        let evaluate = seconds_in("scored and evaluated ")?;
        let done = seconds_in("done in ")?;
        Some(Self {
            read,
            fit,
            evaluate,
            rest: (done - read - fit - evaluate).max(0.0),
        })
    }
}

impl std::fmt::Display for ModelImagePhases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "read all {:.1} fit {:.1} eval {:.1} rest {:.1}",
            self.read, self.fit, self.evaluate, self.rest
        )
    }
}

fn run_python(
    framework: &'static str,
    quantized: bool,
    files: &Files,
    work: &Path,
    rounds: u64,
    threads: u64,
) -> Run {
    let name = match (framework, quantized) {
        ("lightgbm", false) => "python-lightgbm",
        ("lightgbm", true) => "python-lightgbm quantized",
        _ => "python-xgboost",
    };
    let mut command = Command::new(support::python());
    command
        .arg(support::python_script("train_reference.py"))
        .args([
            "--framework",
            framework,
            "--rounds",
            &rounds.to_string(),
            "--threads",
            &threads.to_string(),
        ])
        .arg("--train")
        .arg(&files.train)
        .arg("--validation")
        .arg(&files.validation)
        .arg("--test")
        .arg(&files.test);
    if quantized {
        command.arg("--quantized");
    }
    let (wall_s, peak_rss_kib, stdout) = timed(name, &mut command, work);
    let result: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(serde_json::Value::Null);
    let s = &result["seconds"];
    let phase = |key: &str| s[key].as_f64().unwrap_or(f64::NAN);
    Run {
        name,
        wall_s,
        peak_rss_kib,
        rounds: result["rounds"].as_u64(),
        test_pr_auc: result["test_pr_auc"].as_f64(),
        test_mcc: None,
        fit_s: s["fit"].as_f64(),
        phases: format!(
            "read all {:.1} fit {:.1} eval {:.1}",
            phase("read"),
            phase("fit"),
            phase("predict") + phase("metrics")
        ),
    }
}

/// scikit-learn's average precision of model-image's own model on the test file: the same metric
/// definition as the Python pipelines, on model-image's scores.
fn score_with_sklearn(model: &Path, test: &Path, threads: u64) -> Option<f64> {
    let output = Command::new(support::python())
        .arg(support::python_script("train_reference.py"))
        .arg("--score-model")
        .arg(model)
        .arg("--test")
        .arg(test)
        .args(["--threads", &threads.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let value: serde_json::Value = serde_json::from_str(text.lines().last()?).ok()?;
    value["test_pr_auc"].as_f64()
}
