//! The `model-image` binary: parses arguments and calls the library. SageMaker runs the container's
//! entrypoint with the single argument `train` or `serve`, and a monitoring schedule's processing
//! job with `monitor`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use model_image::artifact::ModelArtifact;
use model_image::layout::Layout;
use model_image::{demo, monitor, trainer};

#[derive(Parser)]
#[command(
    name = "model-image",
    version,
    about = "SageMaker classifier container: train, serve and monitor"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train on /opt/ml/input (or $OPT_ML/input) and write the model to /opt/ml/model.
    Train,
    /// Serve the model in /opt/ml/model on 0.0.0.0:$SAGEMAKER_BIND_TO_PORT (default 8080).
    Serve {
        /// Model directory (default: the layout's model directory).
        #[arg(long)]
        model_dir: Option<PathBuf>,
        /// Port to listen on.
        #[arg(long, env = "SAGEMAKER_BIND_TO_PORT", default_value_t = 8080)]
        port: u16,
        /// Address to listen on.
        #[arg(long, default_value_t = Ipv4Addr::UNSPECIFIED.into())]
        host: std::net::IpAddr,
        #[command(flatten)]
        limits: LimitArgs,
        #[command(flatten)]
        capture: CaptureArgs,
    },
    /// Compare an endpoint's captured traffic with the model's baseline (a SageMaker Model Monitor
    /// processing container) and write statistics.json, constraint_violations.json and
    /// drift_report.json. Exits 0 whether or not there is drift; 1 when an input cannot be read.
    Monitor(MonitorArgs),
    /// The local target's canary router: proxies `/invocations` to a blue and a green server, shifts
    /// traffic to green in the plan's steps and rolls back to blue when an alarm goes off.
    Route {
        /// Address to listen on (bound with SO_REUSEPORT), e.g. 127.0.0.1:8080.
        #[arg(long)]
        listen: SocketAddr,
        /// The rollout plan (JSON: blue, green, steps, bake_ms, period_ms, alarms).
        #[arg(long, value_name = "PLAN.json")]
        rollout: PathBuf,
        /// The status file, rewritten atomically as the rollout goes.
        #[arg(long, value_name = "STATUS.json")]
        status: PathBuf,
    },
    /// Write the synthetic demo dataset (raw IoTID20 schema), or derive its statistics from real data.
    DemoData {
        /// Number of rows to generate.
        #[arg(long, default_value_t = 5000)]
        rows: usize,
        /// Random seed.
        #[arg(long, default_value_t = 20)]
        seed: u64,
        /// Output CSV file (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Instead of generating rows, print the Rust source of the statistics derived from this real
        /// IoTID20 CSV (aggregates only, never rows).
        #[arg(long, conflicts_with = "out")]
        derive_stats: Option<PathBuf>,
    },
}

/// `monitor`'s inputs: each option also reads the variable SageMaker Model Monitor sets (or, for the
/// thresholds, one set in the monitoring job's `Environment`).
#[derive(Args)]
struct MonitorArgs {
    /// Directory of data capture files (`*.jsonl`, read recursively) [default: /opt/ml/processing/input;
    /// `OPT_ML` moves /opt/ml].
    #[arg(long, env = monitor::DATASET_SOURCE_ENV, value_name = "DIR")]
    input: Option<PathBuf>,
    /// The model's baseline.json, or the model.tar.gz holding it, or a directory holding either
    /// [default: the folder /opt/ml/processing/baseline; `OPT_ML` moves /opt/ml].
    #[arg(long, env = monitor::BASELINE_STATISTICS_ENV, value_name = "PATH")]
    baseline: Option<PathBuf>,
    /// Directory for the reports [default: /opt/ml/processing/resultdata; `OPT_ML` moves /opt/ml].
    #[arg(long, env = monitor::OUTPUT_PATH_ENV, value_name = "DIR")]
    output: Option<PathBuf>,
    /// A feature, or the score, drifted when its PSI against the baseline is above this.
    #[arg(long, env = monitor::DRIFT_THRESHOLD_ENV, value_name = "PSI",
          default_value_t = monitor::comparison::DEFAULT_DRIFT_PSI, value_parser = positive_number)]
    drift_threshold: f64,
    /// Windows with fewer request rows get no verdict (too few to tell drift from chance).
    #[arg(long, env = monitor::MIN_ROWS_ENV, value_name = "ROWS",
          default_value_t = monitor::comparison::DEFAULT_MIN_ROWS, value_parser = clap::value_parser!(u64).range(1..))]
    min_rows: u64,
    /// Count only records whose inferenceTime is at or after this (RFC 3339, e.g. 2026-12-04T01:00:00Z).
    #[arg(long, env = monitor::START_TIME_ENV, value_name = "TIME")]
    start_time: Option<monitor::window::Timestamp>,
    /// Count only records whose inferenceTime is before this.
    #[arg(long, env = monitor::END_TIME_ENV, value_name = "TIME")]
    end_time: Option<monitor::window::Timestamp>,
}

fn positive_number(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        _ => Err(format!("{text:?} is not a positive number")),
    }
}

/// `serve`'s protection against slow and hostile clients (`model_image::serve::ServeLimits`); each
/// defaults to the value shown when neither the option nor its variable is set.
#[derive(Args)]
struct LimitArgs {
    /// Seconds a client may take to send a request's headers, from its first byte [default: 10].
    #[arg(long, env = "MODEL_IMAGE_HEADER_TIMEOUT", value_name = "SECONDS", value_parser = model_image::serve::parse_seconds)]
    header_timeout: Option<Duration>,
    /// Seconds a request body may take to arrive (else 408), and a response to be taken; raise it
    /// with the body limit for an asynchronous endpoint's large bodies [default: 30].
    #[arg(long, env = "MODEL_IMAGE_BODY_TIMEOUT", value_name = "SECONDS", value_parser = model_image::serve::parse_seconds)]
    body_timeout: Option<Duration>,
    /// Seconds a connection may stay open with no request [default: 60].
    #[arg(long, env = "MODEL_IMAGE_IDLE_TIMEOUT", value_name = "SECONDS", value_parser = model_image::serve::parse_seconds)]
    idle_timeout: Option<Duration>,
    /// Seconds in-flight requests get to finish after SIGTERM [default: 30].
    #[arg(long, env = "MODEL_IMAGE_SHUTDOWN_TIMEOUT", value_name = "SECONDS", value_parser = model_image::serve::parse_seconds)]
    shutdown_timeout: Option<Duration>,
    /// `/invocations` requests in flight at once; one more is answered 503 [default: 8 per core].
    #[arg(long, env = "MODEL_IMAGE_MAX_IN_FLIGHT", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_in_flight: Option<u32>,
    /// Largest request body in MB, 1 to 1024 (1024 for an asynchronous endpoint); a larger one is
    /// answered 413 [default: 6, SageMaker's realtime limit]. CSV and JSON Lines bodies over 6 MB are
    /// spooled to a temporary file and scored from it in bounded memory, with up to 100,000 rows per
    /// 6 MB; a JSON document stays limited to 6 MB.
    #[arg(long, env = "MODEL_IMAGE_MAX_PAYLOAD_MB", value_name = "MB", value_parser = model_image::serve::parse_payload_mb)]
    max_payload_mb: Option<usize>,
    /// Directory for the temporary files of bodies over 6 MB and their answers (created unlinked,
    /// so nothing is left behind) [default: the system's temporary directory, $TMPDIR or /tmp].
    #[arg(long, env = "MODEL_IMAGE_SPOOL_DIR", value_name = "DIR")]
    spool_dir: Option<PathBuf>,
}

/// `serve`'s data capture (`model_image::serve::CaptureConfig`): what SageMaker's `DataCaptureConfig`
/// does on AWS, done by the server itself on the local target.
#[derive(Args)]
struct CaptureArgs {
    /// Capture successful (2xx) invocations, request and answer, into this folder in SageMaker's
    /// data capture files (`yyyy/mm/dd/hh/*.jsonl` by UTC hour), as the local target's stand-in for
    /// SageMaker's data capture; bodies over 6 MB are counted, not captured [default: no capture].
    #[arg(long, env = "MODEL_IMAGE_CAPTURE_DIR", value_name = "DIR")]
    capture_dir: Option<PathBuf>,
    /// The share of successful invocations captured, 1 to 100, drawn at random per request
    /// [default: 100].
    #[arg(long, env = "MODEL_IMAGE_CAPTURE_PERCENT", value_name = "PERCENT",
          requires = "capture_dir", value_parser = model_image::serve::parse_capture_percent)]
    capture_percent: Option<model_image::serve::SamplingPercent>,
}

impl CaptureArgs {
    fn into_config(self) -> Option<model_image::serve::CaptureConfig> {
        let dir = self.capture_dir?;
        Some(model_image::serve::CaptureConfig {
            dir,
            percent: self.capture_percent.unwrap_or_default(),
        })
    }
}

impl LimitArgs {
    fn into_limits(self) -> model_image::serve::ServeLimits {
        let defaults = model_image::serve::ServeLimits::default();
        model_image::serve::ServeLimits {
            header_timeout: self.header_timeout.unwrap_or(defaults.header_timeout),
            body_timeout: self.body_timeout.unwrap_or(defaults.body_timeout),
            idle_timeout: self.idle_timeout.unwrap_or(defaults.idle_timeout),
            shutdown_timeout: self.shutdown_timeout.unwrap_or(defaults.shutdown_timeout),
            max_in_flight: self.max_in_flight.map_or(defaults.max_in_flight, |n| n as usize),
            max_payload_mb: self.max_payload_mb.unwrap_or(defaults.max_payload_mb),
            spool_dir: self.spool_dir.or(defaults.spool_dir),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Train => train(),
        Command::Serve {
            model_dir,
            port,
            host,
            limits,
            capture,
        } => serve(
            model_dir,
            SocketAddr::new(host, port),
            limits.into_limits(),
            capture.into_config(),
        ),
        Command::Monitor(args) => monitor(args),
        Command::Route {
            listen,
            rollout,
            status,
        } => route(listen, &rollout, status),
        Command::DemoData {
            rows,
            seed,
            out,
            derive_stats,
        } => demo_data(rows, seed, out, derive_stats),
    }
}

fn train() -> ExitCode {
    passive_openmp_waits();
    let layout = Layout::from_env();
    let failure_file = layout.failure_file();
    // A panic is a bug, but SageMaker still deserves a reason.
    let default_hook = std::panic::take_hook();
    let hook_failure_file = failure_file.clone();
    std::panic::set_hook(Box::new(move |info| {
        write_failure(&hook_failure_file, &format!("internal error: {info}"));
        default_hook(info);
    }));
    match trainer::run(&layout) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            let reason = error.to_string();
            eprintln!("model-image train: failed: {reason}");
            write_failure(&failure_file, &reason);
            ExitCode::FAILURE
        }
    }
}

/// LightGBM's OpenMP threads spin while they wait for each other unless `OMP_WAIT_POLICY=PASSIVE`.
/// On cores shared with anything else (the local target, CI, a notebook instance) spinning made a
/// fit 10-100x slower in our benchmarks, and on idle cores passive waits cost nothing measurable.
/// OpenMP reads the variable once at start-up, so when it is unset `train` replaces itself (`exec`,
/// same pid, so SageMaker's signals still reach it) with a copy that has it set. A user's own
/// setting is respected.
fn passive_openmp_waits() {
    use std::os::unix::process::CommandExt;
    const VAR: &str = "OMP_WAIT_POLICY";
    if std::env::var_os(VAR).is_some() {
        return;
    }
    if let Ok(exe) = std::env::current_exe() {
        let error = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(VAR, "PASSIVE")
            .exec();
        eprintln!(
            "model-image train: could not restart with {VAR}=PASSIVE ({error}); training with spinning waits"
        );
    }
}

fn write_failure(path: &std::path::Path, reason: &str) {
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    if let Err(e) = std::fs::write(path, format!("{reason}\n")) {
        eprintln!("model-image: cannot write {}: {e}", path.display());
    }
}

fn serve(
    model_dir: Option<PathBuf>,
    addr: SocketAddr,
    limits: model_image::serve::ServeLimits,
    capture: Option<model_image::serve::CaptureConfig>,
) -> ExitCode {
    init_logging();
    let model_dir = model_dir.unwrap_or_else(|| Layout::from_env().model_dir());
    let artifact = match ModelArtifact::load(&model_dir) {
        Ok(artifact) => artifact,
        Err(error) => {
            eprintln!("model-image serve: {error}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        model_dir = %model_dir.display(),
        features = artifact.metadata.features.len(),
        threshold = artifact.metadata.threshold,
        "model loaded"
    );
    let model = Arc::new(artifact.into_served());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("model-image serve: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime
        .block_on(async move { model_image::serve::serve_on(bind(addr)?, model, limits, capture).await })
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("model-image serve: {error}");
            ExitCode::FAILURE
        }
    }
}

fn monitor(args: MonitorArgs) -> ExitCode {
    init_logging();
    let layout = Layout::from_env();
    let config = monitor::MonitorConfig {
        input: args.input.unwrap_or_else(|| layout.processing_input_dir()),
        baseline: args.baseline.unwrap_or_else(|| layout.processing_baseline_dir()),
        output: args.output.unwrap_or_else(|| layout.processing_output_dir()),
        thresholds: monitor::comparison::Thresholds {
            drift_psi: args.drift_threshold,
            min_rows: args.min_rows,
            ..monitor::comparison::Thresholds::default()
        },
        window: monitor::window::Window {
            start: args.start_time,
            end: args.end_time,
        },
    };
    match monitor::run(&config) {
        Ok(report) => {
            print!("{report}");
            println!("wrote {}", config.output.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            let reason = with_causes(&error);
            eprintln!("model-image monitor: failed: {reason}");
            write_failure(&layout.processing_message_file(), &reason);
            ExitCode::FAILURE
        }
    }
}

/// An error and its chain of sources, `: `-separated.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn route(listen: SocketAddr, plan: &std::path::Path, status: PathBuf) -> ExitCode {
    init_logging();
    let plan = match model_image::route::read_plan(plan) {
        Ok(plan) => plan,
        Err(error) => {
            eprintln!("model-image route: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("model-image route: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(async move { model_image::route::route_on(bind(listen)?, plan, status).await }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("model-image route: {error}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
}

/// Binds with `SO_REUSEPORT`, so a new server can start on the port of the one it replaces and take
/// over without a gap (the orchestrator's local blue/green rollout); the old one then drains and exits.
fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

fn demo_data(rows: usize, seed: u64, out: Option<PathBuf>, derive_stats: Option<PathBuf>) -> ExitCode {
    if let Some(real_csv) = derive_stats {
        return match demo::derive_stats(&real_csv) {
            Ok(source) => {
                print!("{source}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("model-image demo-data: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let options = demo::DemoOptions {
        rows,
        seed,
        ..demo::DemoOptions::default()
    };
    let result = match &out {
        Some(path) => std::fs::File::create(path)
            .and_then(|file| demo::write_demo_csv(&options, std::io::BufWriter::new(file))),
        None => demo::write_demo_csv(&options, std::io::stdout().lock()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("model-image demo-data: {error}");
            ExitCode::FAILURE
        }
    }
}
