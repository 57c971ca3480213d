//! The endpoint: a background `model-image serve` on 127.0.0.1, started detached (it outlives
//! `orchestrate up`), its pid, port and URL in the record, its output in `endpoints/<name>.log`.
//!
//! Observation reads the server as the endpoint's lifecycle: ready only when the recorded process is
//! alive and `/ping` answers 200; otherwise failed ("not running (pid N exited)", "not answering
//! /ping at URL (pid N)"), which `up` repairs by replacing it. The record's details keep the config
//! the endpoint ran before its last update, reported as the endpoint's outputs (`previous_config`,
//! for `orchestrate rollback`). Applying starts the new server, waits for `/ping`, switches the record
//! and only then stops the old server: a failed start leaves the old one serving. The port is
//! `local.port`, else the one the endpoint already had, else a free one. `model-image serve` binds
//! with `SO_REUSEPORT`, so while the old server still holds the port the new one listens beside it
//! and takes over with no gap; the new server counts as started once it listens itself (it binds
//! after loading its model, which is read from `/proc`) and `/ping` answers. Where that cannot work
//! (an old server bound without `SO_REUSEPORT`) the new one starts on a free port, and with a fixed
//! `local.port` moves back onto it once the old one has stopped.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use engine::Settings;
use engine::kind::EndpointSettings;
use engine::resource::{Desired, EndpointOutputs, Kind, Lifecycle, Observed, Outputs};
use engine::target::{Applied, ResourceId};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::process::{self, Spawned};
use crate::state::{Record, encode_name};
use crate::{LocalError, LocalTarget, image, io_error, model, record};

const KIND: Kind = Kind::Endpoint;
/// How long a new server gets to answer `/ping`.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopped server gets to finish in-flight requests before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long one `/ping` may take.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EndpointDetails {
    pub pid: i32,
    pub pgid: i32,
    pub port: u16,
    pub url: String,
    /// The model folder it serves.
    pub model_dir: PathBuf,
    /// The config the endpoint ran before its last update (what `orchestrate rollback` returns to);
    /// `None` until it is updated, and in the `.starting` note of a server not recorded yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_config: Option<String>,
}

impl EndpointDetails {
    fn spawned(&self) -> Spawned {
        Spawned {
            pid: self.pid,
            pgid: self.pgid,
        }
    }
}

fn log_path(target: &LocalTarget, name: &str) -> PathBuf {
    target
        .state
        .kind_dir(KIND)
        .join(format!("{}.log", encode_name(name)))
}

/// Names the server being started until the record names it (or it is stopped): a run interrupted
/// while waiting for `/ping` (or before recording it) leaves this file, and the next apply or delete
/// stops that server instead of leaving it running on a port nobody knows.
fn starting_path(target: &LocalTarget, name: &str) -> PathBuf {
    target
        .state
        .kind_dir(KIND)
        .join(format!("{}.starting", encode_name(name)))
}

async fn stop_unrecorded_start(
    target: &LocalTarget,
    name: &str,
    recorded: Option<&Record<EndpointDetails>>,
) -> Result<(), LocalError> {
    let path = starting_path(target, name);
    let Ok(text) = fs::read_to_string(&path) else {
        return Ok(());
    };
    if let Ok(starting) = serde_json::from_str::<EndpointDetails>(&text)
        && recorded.is_none_or(|r| r.details.pid != starting.pid)
    {
        stop(target, name, &starting).await?;
    }
    fs::remove_file(&path)
        .or_else(ignore_missing)
        .map_err(io_error(KIND, name, "remove", &path))
}

fn ignore_missing(error: std::io::Error) -> std::io::Result<()> {
    if error.kind() == std::io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(error)
    }
}

/// The recorded URL of endpoint `name`.
pub(crate) fn url(target: &LocalTarget, name: &str) -> Result<Option<String>, LocalError> {
    Ok(target
        .state
        .read::<EndpointDetails>(KIND, name)?
        .map(|r| r.details.url))
}

/// What the server of a record is doing: ready when it runs and answers `/ping`.
async fn lifecycle(target: &LocalTarget, details: &EndpointDetails) -> Lifecycle {
    if !process::alive(details.pid, target.state.root()) {
        return Lifecycle::Failed(format!("not running (pid {} exited)", details.pid));
    }
    if ping(target, &details.url).await {
        Lifecycle::Ready
    } else {
        Lifecycle::Failed(format!(
            "not answering /ping at {} (pid {})",
            details.url, details.pid
        ))
    }
}

/// The config an endpoint record serves.
fn config_of(record: &Record<EndpointDetails>) -> Option<&str> {
    match &record.settings {
        Settings::Endpoint(endpoint) => Some(endpoint.endpoint_config.as_str()),
        _ => None,
    }
}

async fn ping(target: &LocalTarget, url: &str) -> bool {
    let request = target
        .http
        .get(format!("{url}/ping"))
        .timeout(PING_TIMEOUT)
        .send();
    matches!(request.await, Ok(response) if response.status() == reqwest::StatusCode::OK)
}

pub(crate) async fn observe(target: &LocalTarget, desired: &Desired) -> Result<Observed, LocalError> {
    let Some(record) = target.state.read::<EndpointDetails>(KIND, &desired.name)? else {
        return Ok(Observed::Absent);
    };
    let lifecycle = lifecycle(target, &record.details).await;
    let outputs = Outputs::Endpoint(EndpointOutputs {
        previous_config: record.details.previous_config.clone(),
    });
    Ok(Observed::present(record.name, record.settings, lifecycle).with_outputs(outputs))
}

/// Serves the config `settings` names (its model, with the binary of the model's image).
pub(crate) async fn apply(
    target: &LocalTarget,
    desired: &Desired,
    settings: &EndpointSettings,
) -> Result<Applied, LocalError> {
    let name = desired.name.as_str();
    let config = settings.endpoint_config.as_str();
    let missing = |what: String| LocalError::Missing {
        kind: KIND,
        name: name.to_string(),
        what,
    };
    let model =
        record::model_of(target, config)?.ok_or_else(|| missing(format!("endpoint config `{config}`")))?;
    let model_dir = model::serving_dir(target, &model);
    let image = model::image_of(target, &model)?.filter(|_| model_dir.is_dir());
    let image = image.ok_or_else(|| missing(format!("model `{model}`")))?;
    let binary = image::binary_for(target, &image);
    if !binary.is_file() {
        return Err(missing(format!("image `{image}`")));
    }

    let old = target.state.read::<EndpointDetails>(KIND, name)?;
    stop_unrecorded_start(target, name, old.as_ref()).await?;
    // Moving to another config makes the one it ran the previous one; otherwise that stays.
    let previous = match &old {
        Some(old) if config_of(old) != Some(config) => config_of(old).map(str::to_string),
        Some(old) => old.details.previous_config.clone(),
        None => None,
    }
    .filter(|p| !p.is_empty());

    let fixed = target.spec.local.port;
    let wanted = fixed.or(old.as_ref().map(|o| o.details.port));
    let old_listening = old.as_ref().filter(|o| {
        Some(o.details.port) == wanted && process::listening(o.details.pid, o.details.port) == Some(true)
    });
    let mut started = None;
    match wanted {
        Some(port) if process::port_free(port) => {
            started = Some(start(target, name, &binary, &model_dir, port).await?);
        }
        // The old server holds the port: `model-image serve` binds with SO_REUSEPORT, so the new
        // one listens beside it and takes over without a gap. (A server built without it fails to
        // bind; then the new one starts on a free port below.)
        Some(port) if old_listening.is_some() => {
            started = start(target, name, &binary, &model_dir, port).await.ok();
        }
        _ => {}
    }
    let started = match started {
        Some(started) => started,
        None => start(target, name, &binary, &model_dir, free_port(name)?).await?,
    };
    let mut record = Record::new(
        name,
        settings.clone(),
        EndpointDetails {
            previous_config: previous.clone(),
            ..started
        },
    );
    target.state.write(KIND, &record)?;
    clear_starting(target, name)?;
    if let Some(old) = &old {
        stop(target, name, &old.details).await?;
    }
    // The new server had to move off the fixed port while the old one held it: move it back.
    if let Some(fixed) = fixed
        && record.details.port != fixed
        && process::port_free(fixed)
    {
        let temporary = record.details.clone();
        record.details = EndpointDetails {
            previous_config: previous.clone(),
            ..start(target, name, &binary, &model_dir, fixed).await?
        };
        target.state.write(KIND, &record)?;
        clear_starting(target, name)?;
        stop(target, name, &temporary).await?;
    }
    Ok(Applied::Ready(Outputs::Endpoint(EndpointOutputs {
        previous_config: previous,
    })))
}

fn free_port(name: &str) -> Result<u16, LocalError> {
    process::free_port().map_err(|source| LocalError::NoPort {
        name: name.to_string(),
        source,
    })
}

/// Starts `model-image serve` on `port` and waits until it answers `/ping`.
async fn start(
    target: &LocalTarget,
    name: &str,
    binary: &Path,
    model_dir: &Path,
    port: u16,
) -> Result<EndpointDetails, LocalError> {
    let dir = target.state.kind_dir(KIND);
    fs::create_dir_all(&dir).map_err(io_error(KIND, name, "create", &dir))?;
    let log = log_path(target, name);
    let port_text = port.to_string();
    let spawned = process::spawn_detached(
        r#"echo "--- serving $2 on 127.0.0.1:$4" >>"$3"; "$1" serve --model-dir "$2" --host 127.0.0.1 >>"$3" 2>&1"#,
        &[binary.as_os_str(), model_dir.as_os_str(), log.as_os_str(), port_text.as_ref()],
        &[("SAGEMAKER_BIND_TO_PORT", port_text.as_ref()), ("NO_COLOR", "1".as_ref())],
        target.state.root(),
    )
    .map_err(|source| LocalError::Spawn { kind: KIND, name: name.to_string(), binary: binary.to_path_buf(), source })?
    .map_err(|output| LocalError::NoPid { kind: KIND, name: name.to_string(), output })?;
    let details = EndpointDetails {
        pid: spawned.pid,
        pgid: spawned.pgid,
        port,
        url: format!("http://127.0.0.1:{port}"),
        model_dir: model_dir.to_path_buf(),
        previous_config: None,
    };
    let starting = starting_path(target, name);
    let json = serde_json::to_vec(&details).map_err(std::io::Error::other);
    json.and_then(|json| fs::write(&starting, json))
        .map_err(io_error(KIND, name, "write", &starting))?;
    if let Err(error) = wait_serving(target, name, &details, &log).await {
        process::stop(spawned, target.state.root(), STOP_GRACE).await;
        clear_starting(target, name)?;
        return Err(error);
    }
    Ok(details)
}

/// The started server is recorded (or stopped): forget it was starting.
fn clear_starting(target: &LocalTarget, name: &str) -> Result<(), LocalError> {
    let path = starting_path(target, name);
    fs::remove_file(&path)
        .or_else(ignore_missing)
        .map_err(io_error(KIND, name, "remove", &path))
}

/// Waits until the new server answers `/ping`, fails if it exits or takes [`START_TIMEOUT`].
async fn wait_serving(
    target: &LocalTarget,
    name: &str,
    details: &EndpointDetails,
    log: &Path,
) -> Result<(), LocalError> {
    let started = Instant::now();
    let failed = |reason: String| LocalError::NotServing {
        name: name.to_string(),
        reason,
        tail: process::log_tail(log, 20),
        log: log.to_path_buf(),
    };
    loop {
        if !process::alive(details.pid, target.state.root()) {
            return Err(failed(format!(
                "exited before answering /ping on {}",
                details.url
            )));
        }
        // With SO_REUSEPORT the old server may answer on the same port: the new one is ready when it
        // listens itself (it binds only after loading the model) and the port answers.
        let listens = process::listening(details.pid, details.port) != Some(false);
        if listens && ping(target, &details.url).await {
            return Ok(());
        }
        if started.elapsed() >= START_TIMEOUT {
            return Err(failed(format!(
                "did not answer /ping on {} within {START_TIMEOUT:?}",
                details.url
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stops a server: SIGTERM (in-flight requests finish), SIGKILL after [`STOP_GRACE`].
async fn stop(target: &LocalTarget, name: &str, details: &EndpointDetails) -> Result<(), LocalError> {
    if process::stop(details.spawned(), target.state.root(), STOP_GRACE).await {
        Ok(())
    } else {
        Err(LocalError::Unkillable {
            kind: KIND,
            name: name.to_string(),
            pid: details.pid,
            waited: STOP_GRACE,
        })
    }
}

pub(crate) async fn delete(target: &LocalTarget, name: &str) -> Result<(), LocalError> {
    let record = target.state.read::<EndpointDetails>(KIND, name)?;
    stop_unrecorded_start(target, name, record.as_ref()).await?;
    if let Some(record) = record {
        stop(target, name, &record.details).await?;
    }
    let log = log_path(target, name);
    match fs::remove_file(&log) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io_error(KIND, name, "remove", &log)(e));
        }
        _ => {}
    }
    target.state.remove(KIND, name)
}

/// One request to the endpoint's `/invocations`.
pub(crate) async fn invoke(
    target: &LocalTarget,
    name: &str,
    content_type: &str,
    accept: &str,
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), LocalError> {
    let record = target
        .state
        .read::<EndpointDetails>(KIND, name)?
        .ok_or_else(|| LocalError::NoEndpoint {
            name: name.to_string(),
        })?;
    if !process::alive(record.details.pid, target.state.root()) {
        let serving = format!("not running (pid {} exited)", record.details.pid);
        return Err(LocalError::NotRunning {
            name: name.to_string(),
            serving,
        });
    }
    let url = format!("{}/invocations", record.details.url);
    let http = |source| LocalError::Http {
        url: url.clone(),
        source,
    };
    let response = target
        .http
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .header(reqwest::header::ACCEPT, accept)
        .body(body)
        .send()
        .await
        .map_err(http)?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.map_err(http)?;
    Ok((status, bytes.to_vec()))
}

/// Configs the endpoint runs or may roll back to, their models and the images those run: never
/// deleted while the endpoint records them (see [`record`](crate::record)).
#[derive(Debug, Default)]
pub(crate) struct Protected {
    resources: Vec<ResourceId>,
}

impl Protected {
    pub(crate) fn protects(&self, kind: Kind, name: &str) -> bool {
        self.resources.iter().any(|id| id.kind == kind && id.name == name)
    }
}

pub(crate) fn rollback_protected(target: &LocalTarget) -> Result<Protected, LocalError> {
    let mut protected = Protected::default();
    for record in target.state.list::<EndpointDetails>(KIND)? {
        let configs = [config_of(&record), record.details.previous_config.as_deref()];
        for config in configs.into_iter().flatten().filter(|c| !c.is_empty()) {
            if let Some(model) = record::model_of(target, config)? {
                if let Some(image) = model::image_of(target, &model)? {
                    protected.resources.push(image::resource(&image));
                }
                protected.resources.push(ResourceId::new(Kind::Model, model));
            }
            protected
                .resources
                .push(ResourceId::new(Kind::EndpointConfig, config));
        }
    }
    Ok(protected)
}
