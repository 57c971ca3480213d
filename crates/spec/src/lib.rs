//! deploy.yaml for `orchestrate`: its schema, its validation into a typed [`Spec`], and diagnostics
//! that say what is wrong and where.
//!
//! [`load`] (or [`parse`]) reads the file, reports **every** problem at once — unknown keys (with a
//! did-you-mean), wrong types, names AWS would reject, bad durations, missing data files, impossible
//! combinations — each as `deploy.yaml:LINE:COL: message` plus a help line, and returns a [`Spec`]
//! only when there is none. Nothing here touches AWS or changes anything on disk, so the CLI can
//! validate before any side effect.
//!
//! Why not serde alone: serde deserialization stops at the first error and loses positions. The file
//! is parsed with `saphyr-parser` (pure Rust, YAML 1.2, events marked with line and column) into a
//! position-carrying tree (module `yaml`), and hand-written validators per section walk it (module
//! `validate`). The serde wire types in [`wire`] mirror the file with
//! `deny_unknown_fields` and generate the [JSON Schema](json_schema); tests keep them and the
//! validators in step.
//!
//! # Key reference
//!
//! | key | default | constraint |
//! |---|---|---|
//! | `version` | required | `1` |
//! | `name` | required | `[a-z0-9-]`, starts with a letter, no `--`, no trailing `-`, ≤ 32 chars |
//! | `target` | `local` | `local` or `aws` (`--target` overrides) |
//! | `region` | `us-east-1` | `[a-z]{2}(-gov)?-[a-z]+-[0-9]`; `<name>-<account>-<region>` ≤ 63 chars |
//! | `tags` | none | string → string; key 1–128 chars, not `aws:…`, not `orchestrate:deployment`/`managed-by`; value ≤ 256 chars; ≤ 48 tags |
//! | `data.train` | required | local `.csv`/`.csv.gz`/`.parquet` file or directory (relative to deploy.yaml, must exist), or `s3://bucket/prefix` (target `aws` only) |
//! | `data.validation` | `0.2` | fraction in (0, 0.5], or a path like `train`; not together with `training.hyperparameters.validation_fraction` |
//! | `data.test` | none | a path like `train` |
//! | `data.label` | `Label` | non-empty; not in `exclude` |
//! | `data.positive` | `Anomaly` | non-empty |
//! | `data.exclude` | `[Flow_ID, Src_IP, Dst_IP, Timestamp, Cat, Sub_Cat]` | list of unique column names (any characters: spaces, commas, quotes) |
//! | `bucket.retain_on_down` | `false` | boolean |
//! | `training.instance_type` | `ml.m5.xlarge` | `ml.<family>.<size>` |
//! | `training.instance_count` | `1` | ≥ 1 |
//! | `training.volume_size_gb` | `30` | 1–16384 |
//! | `training.max_runtime` | `1h` | duration (`90s`, `30m`, `1h30m`, `2d`), 1s–28d |
//! | `training.hyperparameters.learning_rate` | container's | (0, 1] |
//! | `training.hyperparameters.max_rounds` | container's | integer ≥ 1 |
//! | `training.hyperparameters.early_stopping_rounds` | container's | integer ≥ 1 |
//! | `training.hyperparameters.num_leaves` | container's | integer 2–131072 |
//! | `training.hyperparameters.max_depth` | container's | integer, -1 (no limit) or ≥ 1 |
//! | `training.hyperparameters.min_data_in_leaf` | container's | integer ≥ 0 |
//! | `training.hyperparameters.feature_fraction` | container's | (0, 1] |
//! | `training.hyperparameters.threads` | all cores | integer 1–4096 |
//! | `training.hyperparameters.validation_fraction` | — | (0, 0.5]; prefer `data.validation` (both is an error) |
//! | `training.hyperparameters.target_fpr` | none (max F1) | (0, 1) |
//! | `training.hyperparameters.seed` | container's | integer 0–2147483647 |
//! | `training.hyperparameters.bootstrap_resamples` | container's (1000) | integer 0–10000 (0: no confidence intervals) |
//! | `training.hyperparameters.quantized_gradients` | `false` | boolean (LightGBM's quantized training: faster on large data, slightly lower quality) |
//! | `training.quality_gate.{min_pr_auc,min_roc_auc,min_mcc,min_f1}` | none | [0, 1] |
//! | `endpoint.instance_type` | `ml.m5.large` | `ml.<family>.<size>` |
//! | `endpoint.instance_count` | `1` | ≥ 1; within `autoscaling.min..=max` |
//! | `endpoint.serverless` | none (instances) | a mapping (even `{}`); excludes `instance_type`, `instance_count`, `autoscaling`, `rollout`, `async` and `data_capture` |
//! | `endpoint.serverless.memory_mb` | `2048` | 1024, 2048, 3072, 4096, 5120 or 6144 |
//! | `endpoint.serverless.max_concurrency` | `5` | integer 1–200 |
//! | `endpoint.async` | none (real-time) | a mapping (even `{}`): requests queued through `s3://<bucket>/async/`; excludes `serverless` and `rollout` |
//! | `endpoint.async.max_concurrent_invocations` | `4` | integer 1–1000 (per instance) |
//! | `endpoint.data_capture` | none | a mapping (even `{}`): requests and answers to `s3://<bucket>/capture/`; not with `serverless` |
//! | `endpoint.data_capture.sample_percent` | `20` | integer 1–100 |
//! | `endpoint.autoscaling.min` | `1` | ≥ 1 |
//! | `endpoint.autoscaling.max` | required if `autoscaling` | ≥ `min` |
//! | `endpoint.autoscaling.invocations_per_instance` | `1000` | ≥ 1 |
//! | `endpoint.wait_timeout` | `30m` | duration, 1s–1d |
//! | `endpoint.rollout` | none: all at once, no bake, no alarm | a mapping (even `{}`: then every key below takes its default) |
//! | `endpoint.rollout.strategy` | `all_at_once` | `all_at_once`, `canary` or `linear`; `canary`/`linear` need `instance_count` and `autoscaling.min` ≥ 2 |
//! | `endpoint.rollout.canary_percent` | `50` | integer 1–50 (percent of the new fleet); only with `strategy: canary` |
//! | `endpoint.rollout.step_percent` | `25` | integer 10–50 (percent of the new fleet); only with `strategy: linear` |
//! | `endpoint.rollout.bake` | `10m` | duration, 0s–1h, per step and for the final bake |
//! | `endpoint.rollout.alarms` | `default` | `default`, `none`, a list of 1–10 unique alarm names (1–255 chars), or a map `{errors, latency}` |
//! | `endpoint.rollout.alarms.errors.threshold` | `1` | integer ≥ 1 (5xx errors per minute) |
//! | `endpoint.rollout.alarms.latency.threshold_ms` | `100` | integer 1–60000 (p99 latency, ms) |
//! | `endpoint.rollout.alarms.{errors,latency}.datapoints` | `2` | integer 1–`periods` |
//! | `endpoint.rollout.alarms.{errors,latency}.periods` | `3` | integer 1–1440 (one-minute periods) |
//! | `monitoring` | on demand, PSI 0.2 | a mapping; needs `endpoint.data_capture` |
//! | `monitoring.schedule` | none (on demand: `orchestrate monitor`) | not supported yet (refused): `hourly` or `daily` |
//! | `monitoring.drift_threshold` | `0.2` | number in (0, 10]: PSI above which a feature or the score drifts |
//! | `local.state_dir` | `.orchestrate` | non-empty path, relative to deploy.yaml |
//! | `local.port` | a free port | 1024–65535 |
//! | `local.alarm_period` | `1m` | duration, 1s–1m: one datapoint of the local router's rollback alarms |
//!
//! Hyperparameter values may be numbers or numeric strings. `null` (or an empty value) means "use
//! the default" for every optional key.
//!
//! # Limits
//!
//! Whatever the file holds, reading it is bounded: at most [`MAX_FILE_BYTES`] (1 MiB) are read, from
//! a regular file or a pipe only (a directory or a device such as `/dev/zero` is refused unread);
//! lists and mappings nest at most [`MAX_NESTING`] (64) deep; anchors and aliases copy at most
//! [`MAX_ALIAS_BYTES`] (1 MiB) in all, counted in bytes and not in nodes, so a "billion laughs" or one
//! large anchored value aliased many times is refused before it is expanded. Each is reported like
//! any other problem, at the line and column where the file crosses the limit.

pub mod defaults;
mod diagnostic;
mod duration;
mod limits;
mod model;
mod names;
mod schema;
mod source;
mod suggest;
#[cfg(test)]
mod tests;
mod validate;
pub mod wire;
mod yaml;

use std::path::Path;

pub use diagnostic::{Diagnostic, Diagnostics, Kind, Location, Note};
pub use duration::{DurationError, format_duration, parse_duration};
pub use limits::{MAX_ALIAS_BYTES, MAX_FILE_BYTES, MAX_NESTING};
pub use model::{
    AlarmRule, AsyncInference, Autoscaling, Bucket, Capacity, Data, DataCapture, DataSource, Endpoint,
    Hyperparameters, Invocation, Local, Monitoring, MonitoringSchedule, OwnedAlarms, QualityGate, Rollout,
    RolloutAlarms, RolloutStrategy, Serverless, Spec, Target, Training, UnknownTarget, Validation,
};
pub use names::{
    DeploymentName, InstanceType, MAX_BUCKET_LEN, MAX_NAME_LEN, NameError, RESERVED_TAG_KEYS, Region,
};
pub use schema::json_schema;

/// Settings given outside deploy.yaml (command-line flags) that take part in validation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--target`: replaces `target` from the file.
    pub target: Option<Target>,
}

/// Reads and validates a deploy.yaml. Relative data paths are resolved against the file's directory;
/// diagnostics name the file as `path` is written.
pub fn load(path: &Path) -> Result<Spec, Diagnostics> {
    load_with(path, &Overrides::default())
}

/// [`load`] with command-line overrides.
///
/// Only a regular file or a pipe is read, and at most [`MAX_FILE_BYTES`] of it (plus the one byte
/// that shows it is larger), so a device or an endless pipe is refused at once.
pub fn load_with(path: &Path, overrides: &Overrides) -> Result<Spec, Diagnostics> {
    let file_name = path.display().to_string();
    let source = source::read(path, &file_name)?;
    let base_dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    parse_with(&source, &file_name, base_dir, overrides)
}

/// Validates deploy.yaml source text. `file_name` is used in diagnostics; `base_dir` resolves relative
/// data paths (and is where they must exist).
pub fn parse(source: &str, file_name: &str, base_dir: &Path) -> Result<Spec, Diagnostics> {
    parse_with(source, file_name, base_dir, &Overrides::default())
}

/// [`parse`] with command-line overrides.
pub fn parse_with(
    source: &str,
    file_name: &str,
    base_dir: &Path,
    overrides: &Overrides,
) -> Result<Spec, Diagnostics> {
    if let Some(d) = source::check_text(file_name, source) {
        return Err(Diagnostics::new(file_name.to_string(), vec![d]));
    }
    let mut cx = validate::Cx::new(file_name, source, base_dir);
    let root = match yaml::parse(source) {
        Ok(Some(root)) => root,
        Ok(None) => {
            let pos = yaml::Pos {
                line: 1,
                column: 1,
                offset: 0,
                len: 0,
            };
            cx.report(
                Kind::MissingKey,
                pos,
                None,
                "the file is empty",
                Some("start with `version: 1`, `name: <deployment name>` and `data: {train: <path>}`".into()),
            );
            return Err(Diagnostics::new(file_name.to_string(), cx.diags));
        }
        Err(yaml::ParseError { pos, message, cause }) => {
            match cause {
                yaml::Cause::Malformed { open_bracket } => {
                    let help = match open_bracket {
                        Some((open, c)) => {
                            let close = if c == '[' { ']' } else { '}' };
                            format!("close the `{c}` of line {} with `{close}`", open.line)
                        }
                        None => yaml::malformed_help(&message).into(),
                    };
                    let d = cx.report(
                        Kind::Syntax,
                        pos,
                        None,
                        format!("invalid YAML: {message}"),
                        Some(help),
                    );
                    if let Some((open, c)) = open_bracket {
                        d.notes
                            .push(validate::note(open, format!("`{c}` opened here is never closed")));
                    }
                }
                yaml::Cause::Unsupported { help } => {
                    cx.report(Kind::Syntax, pos, None, message, Some(help));
                }
                yaml::Cause::Limit { help } => {
                    cx.report(Kind::Limit, pos, None, message, Some(help));
                }
            }
            return Err(Diagnostics::new(file_name.to_string(), cx.diags));
        }
    };
    match validate::validate(&mut cx, &root, overrides) {
        Some(spec) if cx.diags.is_empty() => Ok(spec),
        result => {
            if cx.diags.is_empty() {
                // Every rejection reports why; this guards the contract that `Diagnostics` is never empty.
                debug_assert!(result.is_some(), "validation failed without a diagnostic");
                cx.report(
                    Kind::InvalidValue,
                    root.pos,
                    None,
                    "internal error: the file was rejected without a reason",
                    Some("please report this with the file".into()),
                );
            }
            Err(Diagnostics::new(file_name.to_string(), cx.diags))
        }
    }
}
