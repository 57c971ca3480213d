//! The command line: every subcommand, flag and default of `orchestrate`, declared with clap's derive
//! API. Nothing here does any work; `commands` turns a parsed [`Cli`] into calls to the libraries.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use engine::{Kind, ResourceId};

/// Recreates a whole ML deployment (data bucket, execution role, container image, training job,
/// model, endpoint config, endpoint) from one declarative deploy.yaml, on AWS or on this machine.
#[derive(Debug, Parser)]
#[command(name = "orchestrate", version, propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 success (in sync), 1 error, 2 drift (`status` and `plan`), 130 interrupted."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand accepts.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The deployment file
    #[arg(
        short = 'f',
        long = "file",
        global = true,
        default_value = "deploy.yaml",
        value_name = "PATH"
    )]
    pub file: PathBuf,

    /// Where the deployment lives [default: `target` in deploy.yaml]
    #[arg(long, global = true, value_enum)]
    pub target: Option<TargetArg>,

    /// How results are printed on stdout (progress and logs always go to stderr)
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,

    /// Debug logs of every crate on stderr, per resource operation (-vv: trace); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Take the deployment's lock even though another run holds it (one that is gone: interrupted,
    /// its machine lost). On AWS the lock is an object in the data bucket, renewed by its run; one
    /// not renewed for two minutes is taken over without this flag. The local lock is released by
    /// the OS anyway
    #[arg(long, global = true)]
    pub break_lock: bool,

    /// The model-image binary to ship [default: next to orchestrate, or built from this workspace]
    #[arg(long, global = true, env = "ORCHESTRATE_MODEL_IMAGE", value_name = "PATH")]
    pub model_image: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetArg {
    /// This machine: folders and local processes, no AWS account
    Local,
    /// AWS SageMaker
    Aws,
}

impl From<TargetArg> for spec::Target {
    fn from(target: TargetArg) -> Self {
        match target {
            TargetArg::Local => spec::Target::Local,
            TargetArg::Aws => spec::Target::Aws,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// For people
    Text,
    /// One JSON document, for machines
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update every resource so the deployment matches deploy.yaml
    Up(UpArgs),
    /// Show what `up` would do, changing nothing (exit 2 when something would change)
    Plan,
    /// Compare every resource with deploy.yaml (exit 0 in sync, 2 drift)
    Status,
    /// Delete every resource of the deployment
    Down(DownArgs),
    /// Switch the endpoint back to the model it served before the last update
    Rollback,
    /// Send a CSV or JSON file to the endpoint and print the predictions
    Invoke(InvokeArgs),
    /// Score a labelled CSV file against the live endpoint and print the metrics `train` reports
    Evaluate(EvaluateArgs),
    /// Judge the endpoint's captured traffic against the model's training baseline now, and print
    /// the report (exit 0 no drift, 2 drift)
    Monitor(MonitorArgs),
    /// Check deploy.yaml and report every problem, changing nothing
    Validate,
    /// Print the JSON Schema of deploy.yaml
    Schema,
    /// Print the least-privilege IAM policy that running up, status and down for this deploy.yaml
    /// on AWS needs (for CI's role or user)
    Permissions(PermissionsArgs),
}

#[derive(Debug, Args)]
pub struct PermissionsArgs {
    /// The AWS account the deployment lives in [default: the credentials' account, asked of STS]
    #[arg(long, value_name = "ID", value_parser = parse_account)]
    pub account: Option<String>,
}

/// A 12-digit AWS account id.
fn parse_account(text: &str) -> Result<String, String> {
    if text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit()) {
        Ok(text.to_string())
    } else {
        Err(format!("`{text}` is not an AWS account id (12 digits)"))
    }
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Take over a resource that exists under the deployment's name but is not the deployment's
    /// (untagged, or another deployment's), e.g. `--adopt role/iot-anomaly-sagemaker-execution`;
    /// its tags and settings then follow deploy.yaml. Repeatable.
    #[arg(long, value_name = "KIND/NAME", value_parser = parse_resource)]
    pub adopt: Vec<ResourceId>,
}

/// `KIND/NAME`, the kind as in `--output json` (`role`, `endpoint_config`, `bucket`…).
fn parse_resource(text: &str) -> Result<ResourceId, String> {
    let (kind, name) = text
        .split_once('/')
        .ok_or_else(|| format!("`{text}` is not KIND/NAME (e.g. role/iot-anomaly-sagemaker-execution)"))?;
    let kind = Kind::from_key(kind).ok_or_else(|| {
        let kinds: Vec<String> = Kind::ALL.iter().map(|k| k.key()).collect();
        format!("`{kind}` is not a kind; one of {}", kinds.join(", "))
    })?;
    if name.is_empty() {
        return Err(format!("`{text}` names no resource after the `/`"));
    }
    Ok(ResourceId::new(kind, name))
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Do not ask for confirmation (required without a terminal)
    #[arg(short, long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// The span of captured traffic to judge, ending now, e.g. 30m, 1h [default: the schedule's
    /// period (`monitoring.schedule`), else 1h]
    #[arg(long, value_name = "DURATION", value_parser = parse_wait)]
    pub window: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// The request body: a CSV, JSON or JSON Lines file
    #[arg(id = "input", value_name = "FILE")]
    pub file: PathBuf,

    /// The request's content type
    #[arg(long, value_enum, default_value_t = ContentType::Auto)]
    pub content_type: ContentType,

    /// The response's content type
    #[arg(long, value_enum, default_value_t = Accept::Json)]
    pub accept: Accept,

    /// Invoke the endpoint asynchronously (`endpoint.async`): the file is uploaded under the
    /// bucket's async/input/ (payloads up to 1 GB), queued, and its answer waited for and printed
    #[arg(long = "async")]
    pub asynchronous: bool,

    /// With --async: write the answer to this file instead of printing it
    #[arg(long, value_name = "PATH", requires = "asynchronous")]
    pub answer_file: Option<PathBuf>,

    /// With --async: how long to wait for the answer, e.g. 90s, 15m
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_wait, requires = "asynchronous")]
    pub wait: std::time::Duration,
}

fn parse_wait(text: &str) -> Result<std::time::Duration, String> {
    spec::parse_duration(text).map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ContentType {
    /// From the extension: .csv, .json, .jsonl/.jsonlines/.ndjson
    Auto,
    #[value(name = "text/csv")]
    Csv,
    #[value(name = "application/json")]
    Json,
    #[value(name = "application/jsonlines")]
    JsonLines,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Accept {
    #[value(name = "application/json")]
    Json,
    #[value(name = "text/csv")]
    Csv,
    #[value(name = "application/jsonlines")]
    JsonLines,
}

impl Accept {
    pub fn mime(self) -> &'static str {
        match self {
            Accept::Json => "application/json",
            Accept::Csv => "text/csv",
            Accept::JsonLines => "application/jsonlines",
        }
    }
}

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// A labelled CSV file with a header (the label column is `data.label` of deploy.yaml)
    #[arg(id = "input", value_name = "FILE")]
    pub file: PathBuf,

    /// Rows per request
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_size: u32,

    /// Bootstrap resamples for the confidence intervals (0: none)
    #[arg(long, default_value_t = 1000)]
    pub resamples: usize,
}
