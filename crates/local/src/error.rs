//! What can go wrong on the local target, naming the resource and the path involved.
//!
//! Display messages say what failed on which resource and never repeat their source; a
//! [`LocalError`] becomes the typed cause of the engine's [`engine::TargetError`].

use std::path::PathBuf;
use std::time::Duration;

use engine::Kind;
use engine::values::Channel;

use crate::contained::Escape;

/// A local target failure.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot create the state folder `{path}`")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot make the state folder `{path}` private (mode 0700)")]
    PrivateStateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the {kind} record `{record}` names `{path}`, which {reason}; nothing was changed. Records \
         are not trusted: check where this state folder came from, then remove the record (and what \
         it names) by hand"
    )]
    RecordOutside {
        kind: Kind,
        record: PathBuf,
        path: PathBuf,
        reason: Escape,
    },
    #[error(
        "{kind} `{name}`: `{path}` {reason}; nothing was changed (a symlink in the state folder must \
         not lead out of it)"
    )]
    PathOutside {
        kind: Kind,
        name: String,
        path: PathBuf,
        reason: Escape,
    },
    #[error(
        "{kind} `{name}`: the binary `{binary}` of image `{image}` is not the one imaged (sha256 \
         {have}, imaged {want}); run `orchestrate up` to image it again"
    )]
    NotImaged {
        kind: Kind,
        name: String,
        image: String,
        binary: PathBuf,
        want: String,
        have: String,
    },
    #[error("another orchestrate run holds the lock `{path}` ({holder}); wait for it to finish, or stop it")]
    Locked { path: PathBuf, holder: String },
    #[error("cannot lock `{path}`")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the {kind} record `{path}`")]
    ReadRecord {
        kind: Kind,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the {kind} record `{path}` was written by an earlier orchestrate (before typed settings); \
         run `orchestrate down` with that build, or stop the processes its endpoint record names and \
         delete the deployment's state folder, then run `orchestrate up`"
    )]
    EarlierRecord { kind: Kind, path: PathBuf },
    #[error("the {kind} record `{path}` is not valid; delete it and run `orchestrate up` again")]
    CorruptRecord {
        kind: Kind,
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write the {kind} record `{path}`")]
    WriteRecord {
        kind: Kind,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{kind} `{name}`: cannot {action} `{path}`")]
    Io {
        kind: Kind,
        name: String,
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot hash the training data `{path}`")]
    HashData {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the {channel} data `{location}` is in S3; the local target trains on local files (use `--target aws`)"
    )]
    RemoteData { channel: Channel, location: String },
    #[error("training data `{name}`: the deployment has no `{channel}` channel")]
    UnknownChannel { name: String, channel: Channel },
    #[error(
        "training data `{name}` changed while it was copied (want sha256 {want}, have {have}); run `orchestrate up` again"
    )]
    DataChanged {
        name: String,
        want: String,
        have: String,
    },
    #[error("cannot build the image from `{path}`")]
    Image {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
    #[error(
        "image `{name}`: `{binary}` now builds {have}, not the planned {want}; it changed since planning, run `orchestrate up` again"
    )]
    DigestMismatch {
        name: String,
        binary: PathBuf,
        want: String,
        have: String,
    },
    #[error("{kind} `{name}` needs {what}, which does not exist; run `orchestrate up` to create it")]
    Missing { kind: Kind, name: String, what: String },
    #[error(
        "model `{name}` needs the completed attempt of training job `{job}`, and none was handed over; run `orchestrate up`, which trains it first"
    )]
    NoTrainedAttempt { name: String, job: String },
    #[error("{kind} `{name}`: cannot start `{binary}`")]
    Spawn {
        kind: Kind,
        name: String,
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{kind} `{name}`: the started process did not report its pid (shell said: {output})")]
    NoPid {
        kind: Kind,
        name: String,
        output: String,
    },
    #[error("endpoint `{name}`: the server {reason}; its log `{log}` ends with:\n{tail}")]
    NotServing {
        name: String,
        reason: String,
        log: PathBuf,
        tail: String,
    },
    #[error(
        "endpoint `{name}`: the rollout of `{config}` was rolled back: alarm {alarm} went into ALARM: {reason}; the previous model keeps serving"
    )]
    RolledBack {
        name: String,
        config: String,
        alarm: String,
        reason: String,
    },
    #[error("endpoint `{name}`: no free port on 127.0.0.1")]
    NoPort {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("endpoint `{name}` does not exist; run `orchestrate up` first")]
    NoEndpoint { name: String },
    #[error("endpoint `{name}` is not serving ({serving}); run `orchestrate up` to restart it")]
    NotRunning { name: String, serving: String },
    #[error("the drift monitor of endpoint `{name}` failed: {reason}")]
    MonitorFailed { name: String, reason: String },
    #[error(
        "endpoint `{name}` is not asynchronous (it runs on {hosting}); set `endpoint.async` in deploy.yaml and run `orchestrate up`, or invoke it without --async"
    )]
    NotAsync {
        name: String,
        hosting: engine::values::Hosting,
    },
    #[error("request to `{url}` failed")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("training job `{name}` has no metrics at `{path}`")]
    Metrics {
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("training job `{name}`: `{path}` is not metrics JSON: {reason}")]
    BadMetrics {
        name: String,
        path: PathBuf,
        reason: String,
    },
    #[error("process {pid} of {kind} `{name}` still runs {waited:?} after SIGKILL")]
    Unkillable {
        kind: Kind,
        name: String,
        pid: i32,
        waited: Duration,
    },
}

/// The error and each of its sources, `: `-joined, on one line.
pub use engine::target::error_chain as chain;

/// Maps a local error into the engine's error for `action` on a resource, keeping it as the cause.
pub(crate) fn target_error(
    action: &'static str,
    kind: Kind,
    name: &str,
    error: LocalError,
) -> engine::TargetError {
    engine::TargetError::caused_by(action, kind, name, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_joins_sources_once() {
        let error = LocalError::Io {
            kind: Kind::Bucket,
            name: "iot-local".into(),
            action: "create",
            path: "state/buckets/iot-local".into(),
            source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied"),
        };
        assert_eq!(
            chain(&error),
            "bucket `iot-local`: cannot create `state/buckets/iot-local`: denied"
        );
    }
}
