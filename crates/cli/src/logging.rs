//! Logs on stderr: warnings only by default; `-v` every crate's debug lines (the AWS SDK's requests
//! and retries too), each inside the span of the resource operation it belongs to; `-vv` (or more)
//! trace. `RUST_LOG` wins when set.
//!
//! Whatever the level, the few events that would print a secret are never written
//! ([`carries_secrets`]): the AWS SDK's trace lines holding a whole HTTP request or response, or an
//! operation's decoded output (a request's headers carry the session token; ECR's
//! `GetAuthorizationToken` answer is the registry password, which the SDK does not redact since AWS's
//! model does not mark it sensitive), and `credential_process`'s unredacted command line. The rest of
//! the SDK's trace stays.

use std::io::IsTerminal;

use tracing::Metadata;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The AWS SDK's crates whose trace events may hold a whole HTTP message or operation output.
const SDK_TARGETS: &[&str] = &[
    "aws_smithy_runtime",
    "aws_smithy_http",
    "aws_sigv4",
    "aws_runtime",
];
/// The fields those events hold it in.
const MESSAGE_FIELDS: &[&str] = &["request", "response", "output_or_error"];
/// The credential process provider logs the command it ran, unredacted, at trace.
const CREDENTIAL_PROCESS_TARGET: &str = "aws_config::credential_process";

/// Installs the subscriber for `-v` counted `verbose` times (or `RUST_LOG`).
pub fn init(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let levels = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::Layer::with_filter(
            layer,
            levels.and(filter_fn(|metadata| !carries_secrets(metadata))),
        ))
        .try_init();
}

/// Whether an event may print a secret: see the module's documentation.
pub fn carries_secrets(metadata: &Metadata<'_>) -> bool {
    if !metadata.is_event() {
        return false;
    }
    let target = metadata.target();
    let within = |prefix: &str| {
        target == prefix || target.starts_with(prefix) && target[prefix.len()..].starts_with("::")
    };
    let message = SDK_TARGETS.iter().any(|t| within(t))
        && MESSAGE_FIELDS
            .iter()
            .any(|field| metadata.fields().field(field).is_some());
    let command = within(CREDENTIAL_PROCESS_TARGET) && *metadata.level() == tracing::Level::TRACE;
    message || command
}
