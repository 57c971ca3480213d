//! The endpoint: a background `model-image serve` on 127.0.0.1, started detached (it outlives
//! `orchestrate up`), its pid, port and URL in the record, its output in `endpoints/<name>.log`.
//!
//! Observation reads the server as the endpoint's lifecycle: ready only when the recorded process is
//! alive and `/ping` answers 200; otherwise failed ("not running (pid N exited)", "not answering
//! /ping at URL (pid N)"), which `up` repairs by replacing it. The record's details keep the config
//! the endpoint ran before its last update, reported as the endpoint's outputs (`previous_config`,
//! for `orchestrate rollback`).
//!
//! Applying never waits for the server: it goes in steps, each returning at once, and the executor
//! calls `apply` again after its poll interval while the answer is [`Applied::NotYet`].
//! 1. The first call starts the new server and returns `NotYet` ("starting: waiting for /ping on
//!    URL"). The port is `local.port`, else the one the endpoint already had, else a free one.
//!    `model-image serve` binds with `SO_REUSEPORT`, so while the old server still holds the port
//!    the new one listens beside it and takes over with no gap. Where that cannot work (an old
//!    server bound without `SO_REUSEPORT`) the new one is started again on a free port.
//! 2. Later calls check the started server: still loading, `NotYet` again; exited, or silent for
//!    [`START_TIMEOUT`], it is stopped and the apply fails with its log's tail (the old server
//!    keeps serving). It counts as started once it listens itself (it binds after loading its
//!    model, which is read from `/proc`) and `/ping` answers; then the record switches to it and
//!    only then is the old server stopped.
//! 3. With a fixed `local.port` that the new server had to leave while the old one held it, one
//!    more start moves it back onto that port, by steps 1 and 2 again; otherwise the call that
//!    switched the record returns [`Applied::Ready`].
//!
//! With a baked rollout (`endpoint.rollout`, see [`front`](crate::front)) step 2 puts the router
//! in front instead: it takes the endpoint's port beside the old front, shifts traffic by the
//! plan and watches the owned alarm rules; the record keeps the old settings, naming the new
//! server as green, until a later call (or observation, when the `up` that began the rollout
//! was interrupted or only waits for it) reads the router's verdict: completed, the record
//! switches to green and blue is stopped; rolled back, green is stopped and the apply fails
//! naming the alarm.
//!
//! A started server is named on disk by the `.starting` note until the record names it (or it is
//! stopped), so a run killed meanwhile never leaves a server running on a port nobody knows, and
//! in memory by the target that started it, so only its own start is waited for. A noted server
//! this target did not start (left by an interrupted run), or started for another config, model or
//! image, is stopped by the next apply, which then starts the one it wants, or by the next delete.
//!
//! Every server is started marked for the endpoint (see [`process`](crate::process)), and only
//! verified ones are ever reported alive or stopped: a record or note naming another process is
//! not believed. The marker also finds a server started by a run killed before it wrote the note;
//! the next apply or delete stops it with the other servers the record does not name. The server
//! runs the image's verified binary ([`image::runnable`]) on the model's folder, checked to be in
//! `models/`.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use contract::rollout::{RolloutPhase, RolloutStatus};
use engine::Settings;
use engine::kind::EndpointSettings;
use engine::resource::{Change, EndpointOutputs, Kind, Lifecycle, Observed, Outputs};
use engine::target::{Applied, Deleted, Found, KindOnTarget, ResourceId, TargetError, Upstream};
use engine::values::{CAPTURE_PREFIX, Capacity, DataCapture, Hosting, Invocation, VARIANT};
use serde::{Deserialize, Serialize};

use crate::contained::{ContainedPath, RecordedPath};
use crate::error::target_error;
use crate::front::{self, Listener};
use crate::image::ImageBinary;
use crate::process::{self, Marker, Spawned};
use crate::state::{Record, encode_name, remove_symlink};
use crate::{LocalError, LocalTarget, image, io_error, model, record};

const KIND: Kind = Kind::Endpoint;
/// How long a new server gets to answer `/ping`, from its start; then it is stopped.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the executor keeps calling `apply` for one endpoint change. It outlasts the target's
/// own deadlines (up to three starts, each given [`START_TIMEOUT`]: the new server, its restart on
/// a free port when the old server's port cannot be shared, the move back onto a fixed port; and
/// the bounded stops between them), so a server that never answers is stopped and reported with
/// its log by the target rather than left behind by the executor's timeout.
const APPLY_RETRY: Duration = Duration::from_secs(4 * 60);
/// How long a stopped server gets to finish in-flight requests before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long one `/ping` may take.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// The endpoint on the local target.
#[derive(Debug)]
pub struct LocalEndpoint;

impl KindOnTarget<LocalTarget> for LocalEndpoint {
    type Settings = EndpointSettings;

    async fn observe(
        target: &LocalTarget,
        name: &str,
        _: &EndpointSettings,
    ) -> Result<Observed, TargetError> {
        observe(target, name)
            .await
            .map_err(|e| target_error("observe", KIND, name, e))
    }

    async fn apply(
        target: &LocalTarget,
        name: &str,
        settings: &EndpointSettings,
        change: &Change,
        _: Upstream<'_>,
    ) -> Result<Applied, TargetError> {
        apply(target, name, settings)
            .await
            .map_err(|e| target_error(change.verb(), KIND, name, e))
    }

    async fn delete(target: &LocalTarget, name: &str) -> Result<Deleted, TargetError> {
        delete(target, name)
            .await
            .map(|()| Deleted::Gone)
            .map_err(|e| target_error("delete", KIND, name, e))
    }

    /// The recorded endpoint; also, unrecorded, one whose server a run killed before recording
    /// it left behind (a `.starting` note, a log, or a process marked for the endpoint), so
    /// `down` stops that server too.
    async fn owned(target: &LocalTarget) -> Result<Vec<Found>, TargetError> {
        let mut found = target.found(KIND)?;
        let name = target.spec.name.as_str();
        if !found.iter().any(|f| f.name == name) && left_by_a_killed_start(target, name) {
            found.push(Found::new(KIND, name));
        }
        Ok(found)
    }
}

/// Whether a start of endpoint `name` that no record names left something: its `.starting`
/// note, its log, or a server marked for it.
fn left_by_a_killed_start(target: &LocalTarget, name: &str) -> bool {
    starting_path(target, name).exists()
        || log_path(target, name).exists()
        || !process::find(&marker(target, name)).is_empty()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct EndpointDetails {
    pub pid: i32,
    pub pgid: i32,
    /// The server's start time (0 in records of earlier builds: such a server is never verified).
    #[serde(default)]
    pub start_time: u64,
    pub port: u16,
    pub url: String,
    /// The model folder it serves (compared with the wanted one, never used).
    pub model_dir: RecordedPath,
    /// The config the endpoint ran before its last update (what `orchestrate rollback` returns to);
    /// `None` until it is updated, and in the `.starting` note of a server not recorded yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_config: Option<String>,
    /// The router on the endpoint's port, in front of the server above (which then listens on a
    /// port of its own), once an update of an endpoint whose `rollout` bakes has started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub front: Option<Listener>,
    /// The rollout under way through the front, if any: the record's settings stay the ones the
    /// endpoint ran until it completes, as SageMaker's do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RollingOut>,
}

/// A rollout under way: what it rolls out and the new server (green).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RollingOut {
    pub settings: EndpointSettings,
    pub green: Listener,
    pub model_dir: RecordedPath,
}

impl RollingOut {
    fn config(&self) -> &str {
        self.settings.endpoint_config.as_str()
    }
}

impl EndpointDetails {
    fn spawned(&self) -> Spawned {
        Spawned {
            pid: self.pid,
            pgid: self.pgid,
            start_time: self.start_time,
        }
    }

    /// What clients call: the front, or else the server.
    fn endpoint_url(&self) -> &str {
        self.front.as_ref().map_or(&self.url, |front| &front.url)
    }

    /// The endpoint's port: the front's, or else the server's.
    fn endpoint_port(&self) -> u16 {
        self.front.as_ref().map_or(self.port, |front| front.port)
    }

    /// Whether the record names a front and it runs.
    fn front_alive(&self, marker: &Marker) -> bool {
        self.front
            .as_ref()
            .is_some_and(|f| process::alive(f.spawned(), marker))
    }

    /// Every process the record names: the server, the front, the green server.
    fn pids(&self) -> Vec<i32> {
        let front = self.front.iter().map(|f| f.pid);
        let green = self.rollout.iter().map(|r| r.green.pid);
        std::iter::once(self.pid).chain(front).chain(green).collect()
    }
}

/// A server this target started and waits for (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct Starting {
    /// What the record will say once it answers (without the previous config).
    details: EndpointDetails,
    /// The config it was started for, and the binary it runs (the model folder is in `details`).
    config: String,
    binary: ImageBinary,
    /// It was started on the port the old server still holds: if it cannot bind there, it is
    /// started again on a free port instead of failing the apply.
    shares_port: bool,
    started: Instant,
}

impl Starting {
    /// Whether it serves what an apply wants.
    fn serves(&self, wanted: &Wanted) -> bool {
        self.config == wanted.config
            && self.details.model_dir == RecordedPath::from(&wanted.model_dir)
            && self.binary == wanted.binary
    }
}

/// The servers this target started and waits for, by endpoint name.
#[derive(Debug, Default)]
pub(crate) struct StartedServers(Mutex<HashMap<String, Starting>>);

impl StartedServers {
    fn servers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Starting>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, name: &str) -> Option<Starting> {
        self.servers().get(name).cloned()
    }

    fn insert(&self, name: &str, starting: Starting) {
        self.servers().insert(name.to_string(), starting);
    }

    fn take(&self, name: &str) -> Option<Starting> {
        self.servers().remove(name)
    }
}

/// What an apply serves: the config, its model's folder, the binary of the model's image, for a
/// serverless or async config the requests served at once (`MODEL_IMAGE_MAX_IN_FLIGHT`: one more
/// is 503), for an async one the container's async limits, and for a capturing one where and how
/// much of its traffic the server captures (into the local bucket, under SageMaker's keys).
struct Wanted {
    config: String,
    model_dir: ContainedPath,
    binary: ImageBinary,
    max_in_flight: Option<u32>,
    environment: Vec<(&'static str, String)>,
}

/// The model folder and binary the config in `settings` needs, which must exist.
fn wanted(target: &LocalTarget, name: &str, settings: &EndpointSettings) -> Result<Wanted, LocalError> {
    let config = settings.endpoint_config.as_str();
    let missing = |what: String| LocalError::Missing {
        kind: KIND,
        name: name.to_string(),
        what,
    };
    let config_settings = record::config_settings(target, config)?
        .ok_or_else(|| missing(format!("endpoint config `{config}`")))?;
    let max_in_flight = match (config_settings.variant, config_settings.invocation) {
        (Capacity::Serverless(serverless), _) => Some(serverless.max_concurrency),
        (Capacity::Instances(_), Invocation::Async(inference)) => Some(inference.max_concurrent_invocations),
        (Capacity::Instances(_), Invocation::RealTime) => None,
    };
    let mut environment = config_settings.invocation.mode().serve_environment();
    if let DataCapture::Sampled { sample_percent } = config_settings.data_capture {
        // The server writes the capture files itself, where SageMaker would put them.
        let bucket = crate::bucket::folder(target, &crate::bucket_name(&target.spec))?;
        let folder = bucket.join(CAPTURE_PREFIX).join(name).join(VARIANT);
        environment.push(("MODEL_IMAGE_CAPTURE_DIR", folder.display().to_string()));
        environment.push(("MODEL_IMAGE_CAPTURE_PERCENT", sample_percent.to_string()));
    }
    let model = config_settings.model;
    let model_dir = model::serving_dir(target, &model)?;
    let image = model::image_of(target, &model)?.filter(|_| model_dir.is_dir());
    let image = image.ok_or_else(|| missing(format!("model `{model}`")))?;
    let binary = image::runnable(target, KIND, name, &image)?;
    Ok(Wanted {
        config: config.to_string(),
        model_dir,
        binary,
        max_in_flight,
        environment,
    })
}

fn log_path(target: &LocalTarget, name: &str) -> PathBuf {
    target
        .state
        .kind_dir(KIND)
        .join(format!("{}.log", encode_name(name)))
}

/// The `.starting` note: names the server being started until the record names it (or it is
/// stopped).
fn starting_path(target: &LocalTarget, name: &str) -> PathBuf {
    target
        .state
        .kind_dir(KIND)
        .join(format!("{}.starting", encode_name(name)))
}

/// The server the `.starting` note names, if there is a readable note.
fn noted_start(target: &LocalTarget, name: &str) -> Option<EndpointDetails> {
    let text = fs::read_to_string(starting_path(target, name)).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_note(target: &LocalTarget, name: &str, details: &EndpointDetails) -> Result<(), LocalError> {
    let json = serde_json::to_vec(details)
        .map_err(std::io::Error::other)
        .map_err(io_error(KIND, name, "write", &starting_path(target, name)))?;
    let file_name = format!("{}.starting", encode_name(name));
    target.state.write_file(KIND, &file_name, &json)
}

/// The marker of endpoint `name`'s servers.
fn marker(target: &LocalTarget, name: &str) -> Marker {
    target.state.marker(KIND, name)
}

/// The started server is recorded (or stopped): forget it was starting.
fn forget_start(target: &LocalTarget, name: &str) -> Result<(), LocalError> {
    target.endpoint_starts.take(name);
    let path = starting_path(target, name);
    fs::remove_file(&path)
        .or_else(ignore_missing)
        .map_err(io_error(KIND, name, "remove", &path))
}

/// Stops every server started for endpoint `name` that its record does not name (the one this
/// target waits for, the one the `.starting` note names: the same one, unless an interrupted run
/// left the note, and any other marked for the endpoint: one a run killed before writing the note
/// started), and forgets them.
async fn discard_starts(
    target: &LocalTarget,
    name: &str,
    recorded: Option<&Record<EndpointDetails>>,
) -> Result<(), LocalError> {
    let recorded_pids = recorded.map(|r| r.details.pids()).unwrap_or_default();
    if let Some(mine) = target.endpoint_starts.take(name)
        && !recorded_pids.contains(&mine.details.pid)
    {
        stop(target, name, &mine.details).await?;
    }
    if let Some(noted) = noted_start(target, name)
        && !recorded_pids.contains(&noted.pid)
    {
        stop(target, name, &noted).await?;
    }
    for ours in process::find(&marker(target, name)) {
        if !recorded_pids.contains(&ours.pid()) {
            stop_verified(name, ours).await?;
        }
    }
    forget_start(target, name)
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
        .map(|r| r.details.endpoint_url().to_string()))
}

/// What the server of a record is doing: ready when it runs and answers `/ping`.
/// With a front, the front must run too, and answers `/ping` for the server; a rollout under way
/// is in progress.
async fn lifecycle(target: &LocalTarget, name: &str, details: &EndpointDetails) -> Lifecycle {
    let marker = marker(target, name);
    if !process::alive(details.spawned(), &marker) {
        return Lifecycle::Failed(not_running(details));
    }
    let answering = match &details.front {
        Some(front) if !process::alive(front.spawned(), &marker) => {
            return Lifecycle::Failed(format!("its router is not running (pid {} exited)", front.pid));
        }
        Some(front) => (front.url.as_str(), front.pid),
        None => (details.url.as_str(), details.pid),
    };
    if !ping(target, answering.0).await {
        return Lifecycle::Failed(format!(
            "not answering /ping at {} (pid {})",
            answering.0, answering.1
        ));
    }
    match &details.rollout {
        Some(rolling) => {
            let progress =
                front::status(target, name).map_or_else(|| "starting".to_string(), |s| front::describe(&s));
            Lifecycle::InProgress(format!("rolling out `{}`: {progress}", rolling.config()))
        }
        None => Lifecycle::Ready,
    }
}

/// Why a recorded server is not running. One recorded by an earlier build (no start time) cannot
/// be verified, so it is never stopped either: the message says so.
fn not_running(details: &EndpointDetails) -> String {
    if details.start_time == 0 && details.pid > 0 {
        format!(
            "not running as far as can be verified (pid {} was recorded by an earlier orchestrate; \
             stop it by hand if it still serves)",
            details.pid
        )
    } else {
        format!("not running (pid {} exited)", details.pid)
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

async fn observe(target: &LocalTarget, name: &str) -> Result<Observed, LocalError> {
    let Some(record) = target.state.read::<EndpointDetails>(KIND, name)? else {
        return Ok(Observed::Absent);
    };
    let (record, rolled_back) = settle(target, name, record).await?;
    let lifecycle = match rolled_back {
        Some(why) => Lifecycle::Failed(why),
        None => lifecycle(target, name, &record.details).await,
    };
    let outputs = Outputs::Endpoint(EndpointOutputs {
        previous_config: record.details.previous_config.clone(),
    });
    Ok(Observed::present(record.name, record.settings, lifecycle).with_outputs(outputs))
}

/// Serves the config `settings` names (its model, with the binary of the model's image), one step
/// per call (see the module docs).
async fn apply(target: &LocalTarget, name: &str, settings: &EndpointSettings) -> Result<Applied, LocalError> {
    let wanted = wanted(target, name, settings)?;
    let recorded = target.state.read::<EndpointDetails>(KIND, name)?;
    if let Some(record) = &recorded
        && let Some(rolling) = &record.details.rollout
    {
        return follow_rollout(target, name, record, rolling, &wanted).await;
    }
    let previous = previous_config(recorded.as_ref(), settings);
    let routes = front::routes(&target.spec);
    let serving = if let Some(starting) = own_start(target, name, recorded.as_ref(), &wanted).await? {
        match progress(target, name, &starting).await {
            Progress::Loading => return Ok(not_yet(target, &starting.details)),
            Progress::Failed(reason) => return start_failed(target, name, &wanted, &starting, reason).await,
            Progress::Answering if routes => {
                let rollout = begin_rollout(target, name, settings, recorded.as_ref(), &starting, &previous);
                match rollout.await? {
                    Some(details) => details,
                    None => return follow_recorded(target, name, &wanted).await,
                }
            }
            Progress::Answering => {
                let switched = switch_to(target, name, settings, recorded.as_ref(), &starting, &previous);
                switched.await?
            }
        }
    } else if let Some(current) = serving_wanted(target, name, recorded.as_ref(), settings, &wanted).await {
        current
    } else {
        return replace(target, name, &wanted, recorded.as_ref()).await;
    };
    // The new server had to move off the fixed port while the old one held it: move it back. (A
    // front always takes the endpoint's port, beside whatever held it.)
    if let Some(fixed) = target.spec.local.port
        && serving.endpoint_port() != fixed
        && process::port_free(fixed)
    {
        let started = start(target, name, &wanted, fixed, false).await?;
        return Ok(not_yet(target, &started.details));
    }
    Ok(Applied::Ready(Outputs::Endpoint(EndpointOutputs {
        previous_config: previous,
    })))
}

/// Follows the rollout the record names, after `begin_rollout` recorded it.
async fn follow_recorded(target: &LocalTarget, name: &str, wanted: &Wanted) -> Result<Applied, LocalError> {
    let record = target
        .state
        .read::<EndpointDetails>(KIND, name)?
        .ok_or_else(|| LocalError::Missing {
            kind: KIND,
            name: name.to_string(),
            what: "its record, right after the rollout began".to_string(),
        })?;
    match &record.details.rollout {
        Some(rolling) => follow_rollout(target, name, &record, rolling, wanted).await,
        None => Ok(Applied::NotYet {
            reason: "the rollout ended".to_string(),
            retry_for: retry_budget(target),
        }),
    }
}

/// The new server answers and the endpoint's rollout bakes: the router takes the endpoint's port
/// (beside the old front or server, both bound with `SO_REUSEPORT`) with a plan from the spec's
/// rollout, and the old front, if any, is stopped. The record names the front and the rollout
/// (its settings stay the old ones until the rollout completes): `None` is returned, the rollout
/// is followed. Without a front before (the endpoint's first server, or one started before the
/// deployment's rollout baked) there is no blue on a port of its own to shift traffic from: the
/// router fronts the new server alone, the old server is stopped, and the new details are returned
/// as switched.
async fn begin_rollout(
    target: &LocalTarget,
    name: &str,
    settings: &EndpointSettings,
    recorded: Option<&Record<EndpointDetails>>,
    starting: &Starting,
    previous: &Option<String>,
) -> Result<Option<EndpointDetails>, LocalError> {
    let marker = marker(target, name);
    let blue = recorded.filter(|r| r.details.front.is_some() && process::alive(r.details.spawned(), &marker));
    let port = match target
        .spec
        .local
        .port
        .or(recorded.map(|r| r.details.endpoint_port()))
    {
        Some(port) => port,
        None => free_port(name)?,
    };
    let plan = front::plan(&target.spec, blue.map(|b| b.details.port), starting.details.port);
    let log = log_path(target, name);
    let router = match front::start(target, name, &starting.binary, &plan, port, &log, &marker).await {
        Ok(router) => router,
        Err(error) => {
            stop(target, name, &starting.details).await?;
            forget_start(target, name)?;
            return Err(error);
        }
    };
    let green = Listener {
        pid: starting.details.pid,
        pgid: starting.details.pgid,
        start_time: starting.details.start_time,
        port: starting.details.port,
        url: starting.details.url.clone(),
    };
    let (record, switched) = match blue {
        Some(blue) => {
            let details = EndpointDetails {
                front: Some(router),
                rollout: Some(RollingOut {
                    settings: settings.clone(),
                    green,
                    model_dir: starting.details.model_dir.clone(),
                }),
                ..blue.details.clone()
            };
            (Record::new(name, blue_settings(blue)?, details), false)
        }
        None => {
            let details = EndpointDetails {
                previous_config: previous.clone(),
                front: Some(router),
                rollout: None,
                ..starting.details.clone()
            };
            (Record::new(name, settings.clone(), details), true)
        }
    };
    target.state.write(KIND, &record)?;
    forget_start(target, name)?;
    if let Some(old) = recorded {
        stop_all_but(target, name, &old.details, &record.details.pids()).await?;
    }
    Ok(switched.then_some(record.details))
}

/// The endpoint settings a record holds.
fn blue_settings(record: &Record<EndpointDetails>) -> Result<EndpointSettings, LocalError> {
    match &record.settings {
        Settings::Endpoint(settings) => Ok(settings.clone()),
        _ => Err(LocalError::Missing {
            kind: KIND,
            name: record.name.clone(),
            what: "endpoint settings in its record".to_string(),
        }),
    }
}

/// Stops every process `old` names but those in `kept` (the pids the new record names).
async fn stop_all_but(
    target: &LocalTarget,
    name: &str,
    old: &EndpointDetails,
    kept: &[i32],
) -> Result<(), LocalError> {
    let marker = marker(target, name);
    let mut spawned = vec![old.spawned()];
    spawned.extend(old.front.iter().map(Listener::spawned));
    spawned.extend(old.rollout.iter().map(|r| r.green.spawned()));
    for process in spawned.into_iter().filter(|s| !kept.contains(&s.pid)) {
        if let Some(ours) = process::ours(process, &marker) {
            stop_verified(name, ours).await?;
        }
    }
    Ok(())
}

/// One look at the rollout under way: still baking (the executor calls again), completed (the
/// record names green as the server and blue is stopped), or rolled back by an alarm (green is
/// stopped, the front keeps all traffic on blue, and the apply fails naming the alarm). A rollout
/// of another config than the wanted one is followed to its end first, as SageMaker finishes an
/// update before it takes the next.
async fn follow_rollout(
    target: &LocalTarget,
    name: &str,
    record: &Record<EndpointDetails>,
    rolling: &RollingOut,
    wanted: &Wanted,
) -> Result<Applied, LocalError> {
    let marker = marker(target, name);
    let front_alive = record.details.front_alive(&marker);
    let green_alive = process::alive(rolling.green.spawned(), &marker);
    let status = front::status(target, name);
    let ended_without_router = || {
        if front_alive {
            None
        } else {
            Some("its router stopped during the rollout".to_string())
        }
    };
    let gone = ended_without_router().or_else(|| {
        (!green_alive
            && status
                .as_ref()
                .is_none_or(|s| s.phase != RolloutPhase::RolledBack))
        .then(|| {
            format!(
                "the new server (pid {}) exited during the rollout",
                rolling.green.pid
            )
        })
    });
    if let Some(reason) = gone {
        abandon(target, name, record, Refront::Yes).await?;
        let log = log_path(target, name);
        return Err(LocalError::NotServing {
            name: name.to_string(),
            reason,
            tail: process::log_tail(&log, 20),
            log,
        });
    }
    let Some(status) = status else {
        return Ok(Applied::NotYet {
            reason: format!(
                "rolling out `{}`: waiting for the router's status",
                rolling.config()
            ),
            retry_for: retry_budget(target),
        });
    };
    match status.phase {
        RolloutPhase::Baking | RolloutPhase::FinalBake => {
            let then = if rolling.config() == wanted.config {
                String::new()
            } else {
                format!(", then `{}`", wanted.config)
            };
            Ok(Applied::NotYet {
                reason: format!(
                    "rolling out `{}`{then}: {}",
                    rolling.config(),
                    front::describe(&status)
                ),
                retry_for: retry_budget(target),
            })
        }
        RolloutPhase::Completed => {
            let completed = complete(target, name, record, rolling).await?;
            if rolling.config() == wanted.config {
                Ok(Applied::Ready(Outputs::Endpoint(EndpointOutputs {
                    previous_config: completed.details.previous_config,
                })))
            } else {
                Ok(Applied::NotYet {
                    reason: format!("rolled out `{}`; `{}` is next", rolling.config(), wanted.config),
                    retry_for: retry_budget(target),
                })
            }
        }
        RolloutPhase::RolledBack => {
            abandon(target, name, record, Refront::No).await?;
            Err(rolled_back(name, rolling, status))
        }
    }
}

/// The failure of a rollout the router rolled back: which alarm, and CloudWatch-style why.
fn rolled_back(name: &str, rolling: &RollingOut, status: RolloutStatus) -> LocalError {
    let (alarm, reason) = status
        .rolled_back_by
        .map(|by| (by.name, by.reason))
        .unwrap_or_else(|| ("an alarm".to_string(), "no reason recorded".to_string()));
    LocalError::RolledBack {
        name: name.to_string(),
        config: rolling.config().to_string(),
        alarm,
        reason,
    }
}

/// Takes a rollout the router completed: the record names green as the server (with the rolled
/// out settings, blue's config as the previous one) and blue is stopped.
async fn complete(
    target: &LocalTarget,
    name: &str,
    record: &Record<EndpointDetails>,
    rolling: &RollingOut,
) -> Result<Record<EndpointDetails>, LocalError> {
    let old_config = blue_settings(record)?.endpoint_config.to_string();
    let details = EndpointDetails {
        pid: rolling.green.pid,
        pgid: rolling.green.pgid,
        start_time: rolling.green.start_time,
        port: rolling.green.port,
        url: rolling.green.url.clone(),
        model_dir: rolling.model_dir.clone(),
        previous_config: Some(old_config).filter(|c| !c.is_empty() && c != rolling.config()),
        front: record.details.front.clone(),
        rollout: None,
    };
    let completed = Record::new(name, rolling.settings.clone(), details);
    target.state.write(KIND, &completed)?;
    stop_all_but(target, name, &record.details, &completed.details.pids()).await?;
    Ok(completed)
}

/// Records what the router decided while no `up` followed the rollout (an interrupted `up`, or
/// one that planned to wait for it): a completed rollout is taken, a rolled back one abandoned,
/// as SageMaker settles an update by itself. The local target has no control plane running
/// between commands; the router decides and the next look writes its decision down. A rollout
/// still baking, or one whose router is gone, is left for `apply` and `lifecycle` to report.
/// Returns the record, and for a rollback just recorded, why (the alarm and its reason), which
/// this one observation reports as the endpoint's failure, as SageMaker's rolled back update is.
async fn settle(
    target: &LocalTarget,
    name: &str,
    record: Record<EndpointDetails>,
) -> Result<(Record<EndpointDetails>, Option<String>), LocalError> {
    let Some(rolling) = &record.details.rollout else {
        return Ok((record, None));
    };
    let marker = marker(target, name);
    let front_alive = record.details.front_alive(&marker);
    match front::status(target, name) {
        Some(status)
            if status.phase == RolloutPhase::Completed
                && front_alive
                && process::alive(rolling.green.spawned(), &marker) =>
        {
            Ok((complete(target, name, &record, rolling).await?, None))
        }
        Some(status) if status.phase == RolloutPhase::RolledBack && front_alive => {
            let kept = abandon(target, name, &record, Refront::No).await?;
            Ok((kept, Some(rolled_back(name, rolling, status).to_string())))
        }
        _ => Ok((record, None)),
    }
}

/// Whether an abandoned rollout needs a new front: the router rolled back by itself (all traffic
/// on blue already), or it stopped or still sends green a share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refront {
    Yes,
    No,
}

/// Ends a rollout without taking it: green is stopped and forgotten, and the record keeps blue
/// behind a front that sends it all traffic: the router that rolled back, or a new one started
/// for blue alone (beside the old router, which is then stopped). Returns the record written.
async fn abandon(
    target: &LocalTarget,
    name: &str,
    record: &Record<EndpointDetails>,
    refront: Refront,
) -> Result<Record<EndpointDetails>, LocalError> {
    let mut front = record.details.front.clone();
    if refront == Refront::Yes {
        let blue = wanted_binary_of(target, name, record)?;
        let plan = front::plan(&target.spec, None, record.details.port);
        let port = record.details.endpoint_port();
        let log = log_path(target, name);
        let marker = marker(target, name);
        front = Some(front::start(target, name, &blue, &plan, port, &log, &marker).await?);
    }
    let kept = EndpointDetails {
        rollout: None,
        front,
        ..record.details.clone()
    };
    let abandoned = Record::new(name, record.settings.clone(), kept);
    target.state.write(KIND, &abandoned)?;
    stop_all_but(target, name, &record.details, &abandoned.details.pids()).await?;
    Ok(abandoned)
}

/// The binary of the image the recorded (blue) server runs.
fn wanted_binary_of(
    target: &LocalTarget,
    name: &str,
    record: &Record<EndpointDetails>,
) -> Result<ImageBinary, LocalError> {
    let settings = blue_settings(record)?;
    Ok(wanted(target, name, &settings)?.binary)
}

/// How long the executor keeps calling `apply` for one change: the starts, and every bake of the
/// rollout.
fn retry_budget(target: &LocalTarget) -> Duration {
    APPLY_RETRY + target.spec.endpoint.rollout.total_bake()
}

/// The config to roll back to once the endpoint serves `settings`' config: moving to another config
/// makes the one it ran the previous one; otherwise that stays. None after a move between
/// instances and serverless, which replaces the endpoint (as on SageMaker, which cannot update one
/// into the other, so cannot roll back either).
fn previous_config(
    recorded: Option<&Record<EndpointDetails>>,
    settings: &EndpointSettings,
) -> Option<String> {
    let config = settings.endpoint_config.as_str();
    let replaced = recorded.is_some_and(
        |old| matches!(&old.settings, Settings::Endpoint(had) if had.hosting != settings.hosting),
    );
    if replaced {
        return None;
    }
    match recorded {
        Some(old) if config_of(old) != Some(config) => config_of(old).map(str::to_string),
        Some(old) => old.details.previous_config.clone(),
        None => None,
    }
    .filter(|previous| !previous.is_empty())
}

fn not_yet(target: &LocalTarget, starting: &EndpointDetails) -> Applied {
    Applied::NotYet {
        reason: format!("starting: waiting for /ping on {}", starting.url),
        retry_for: retry_budget(target),
    }
}

/// The server this target started for `wanted` and waits for, if any. Any other started server
/// (left by an interrupted run, or started for another config, model or image) is stopped, unless
/// the record names it, and forgotten.
async fn own_start(
    target: &LocalTarget,
    name: &str,
    recorded: Option<&Record<EndpointDetails>>,
    wanted: &Wanted,
) -> Result<Option<Starting>, LocalError> {
    if let (Some(mine), Some(noted)) = (target.endpoint_starts.get(name), noted_start(target, name))
        && mine.details.pid == noted.pid
        && recorded.is_none_or(|r| !r.details.pids().contains(&mine.details.pid))
        && mine.serves(wanted)
    {
        return Ok(Some(mine));
    }
    discard_starts(target, name, recorded).await?;
    Ok(None)
}

/// Where a started server stands.
enum Progress {
    /// Running, not answering yet (loading its model).
    Loading,
    /// Listening itself and answering `/ping`.
    Answering,
    /// Exited, or silent for [`START_TIMEOUT`].
    Failed(String),
}

async fn progress(target: &LocalTarget, name: &str, starting: &Starting) -> Progress {
    let details = &starting.details;
    if !process::alive(details.spawned(), &marker(target, name)) {
        return Progress::Failed(format!("exited before answering /ping on {}", details.url));
    }
    // With SO_REUSEPORT the old server may answer on the same port: the new one is ready when it
    // listens itself (it binds only after loading the model) and the port answers.
    let listens = process::listening(details.pid, details.port) != Some(false);
    if listens && ping(target, &details.url).await {
        return Progress::Answering;
    }
    if starting.started.elapsed() >= START_TIMEOUT {
        return Progress::Failed(format!(
            "did not answer /ping on {} within {START_TIMEOUT:?}",
            details.url
        ));
    }
    Progress::Loading
}

/// The recorded server, when it already serves `settings` and answers: a previous call switched
/// the record to it (only the move back onto a fixed port may be left).
async fn serving_wanted(
    target: &LocalTarget,
    name: &str,
    recorded: Option<&Record<EndpointDetails>>,
    settings: &EndpointSettings,
    wanted: &Wanted,
) -> Option<EndpointDetails> {
    let record = recorded?;
    let same = record.settings == Settings::Endpoint(settings.clone())
        && record.details.model_dir == RecordedPath::from(&wanted.model_dir);
    if same && lifecycle(target, name, &record.details).await == Lifecycle::Ready {
        Some(record.details.clone())
    } else {
        None
    }
}

/// Starts the server that replaces the recorded one (or the first one), and returns at once.
async fn replace(
    target: &LocalTarget,
    name: &str,
    wanted: &Wanted,
    recorded: Option<&Record<EndpointDetails>>,
) -> Result<Applied, LocalError> {
    // A routed endpoint's new server listens on a port of its own: the front takes the endpoint's.
    if front::routes(&target.spec) {
        let started = start(target, name, wanted, free_port(name)?, false).await?;
        return Ok(not_yet(target, &started.details));
    }
    let port = target
        .spec
        .local
        .port
        .or(recorded.map(|o| o.details.endpoint_port()));
    let old_listening = recorded.is_some_and(|o| {
        let (listener, listener_port) = match &o.details.front {
            Some(front) => (front.spawned(), front.port),
            None => (o.details.spawned(), o.details.port),
        };
        Some(listener_port) == port
            && process::alive(listener, &marker(target, name))
            && process::listening(listener.pid, listener_port) == Some(true)
    });
    let started = match port {
        Some(port) if process::port_free(port) => Some(start(target, name, wanted, port, false).await?),
        // The old server holds the port: `model-image serve` binds with SO_REUSEPORT, so the new
        // one listens beside it and takes over without a gap. (A server built without it fails to
        // bind and is started again on a free port; so is one that cannot be started here.)
        Some(port) if old_listening => start(target, name, wanted, port, true).await.ok(),
        _ => None,
    };
    let started = match started {
        Some(started) => started,
        None => start(target, name, wanted, free_port(name)?, false).await?,
    };
    Ok(not_yet(target, &started.details))
}

/// A started server exited or did not answer in time: it is stopped and forgotten. One that only
/// tried to share the old server's port is started again on a free port; for any other this is
/// the apply's failure, with the server's log (the old server, if any, keeps serving).
async fn start_failed(
    target: &LocalTarget,
    name: &str,
    wanted: &Wanted,
    starting: &Starting,
    reason: String,
) -> Result<Applied, LocalError> {
    stop(target, name, &starting.details).await?;
    forget_start(target, name)?;
    if starting.shares_port {
        let started = start(target, name, wanted, free_port(name)?, false).await?;
        return Ok(not_yet(target, &started.details));
    }
    let log = log_path(target, name);
    Err(LocalError::NotServing {
        name: name.to_string(),
        reason,
        tail: process::log_tail(&log, 20),
        log,
    })
}

/// The started server answers: the record names it from now on, and the server it replaces is
/// stopped. Returns the recorded details.
async fn switch_to(
    target: &LocalTarget,
    name: &str,
    settings: &EndpointSettings,
    recorded: Option<&Record<EndpointDetails>>,
    starting: &Starting,
    previous: &Option<String>,
) -> Result<EndpointDetails, LocalError> {
    let details = EndpointDetails {
        previous_config: previous.clone(),
        ..starting.details.clone()
    };
    target
        .state
        .write(KIND, &Record::new(name, settings.clone(), details.clone()))?;
    forget_start(target, name)?;
    if let Some(old) = recorded {
        stop_all_but(target, name, &old.details, &details.pids()).await?;
    }
    Ok(details)
}

fn free_port(name: &str) -> Result<u16, LocalError> {
    process::free_port().map_err(|source| LocalError::NoPort {
        name: name.to_string(),
        source,
    })
}

/// Starts `model-image serve` on `port` and returns at once, the server named by the `.starting`
/// note and remembered by this target (see the module docs).
async fn start(
    target: &LocalTarget,
    name: &str,
    wanted: &Wanted,
    port: u16,
    shares_port: bool,
) -> Result<Starting, LocalError> {
    target.state.checked_kind_dir(KIND, true)?;
    let log = log_path(target, name);
    // The server appends to its log: never through a symlink.
    remove_symlink(&log).map_err(io_error(KIND, name, "remove", &log))?;
    let port_text = port.to_string();
    let (binary, model_dir) = (wanted.binary.path(), &wanted.model_dir);
    let marker = marker(target, name);
    // A serverless config bounds the requests in flight; the server's own default otherwise. The
    // bound goes in the environment (MODEL_IMAGE_MAX_IN_FLIGHT), as a container's would.
    let max_in_flight = wanted.max_in_flight.map(|n| n.to_string());
    let mut env: Vec<(&str, &std::ffi::OsStr)> = vec![
        ("SAGEMAKER_BIND_TO_PORT", port_text.as_ref()),
        ("NO_COLOR", "1".as_ref()),
    ];
    if let Some(max) = &max_in_flight {
        env.push(("MODEL_IMAGE_MAX_IN_FLIGHT", max.as_ref()));
    }
    for (key, value) in &wanted.environment {
        env.push((key, value.as_ref()));
    }
    let spawned = process::spawn_detached(
        r#"echo "--- serving $2 on 127.0.0.1:$4" >>"$3"; "$1" serve --model-dir "$2" --host 127.0.0.1 >>"$3" 2>&1"#,
        &[binary.as_os_str(), model_dir.as_os_str(), log.as_os_str(), port_text.as_ref()],
        &env,
        target.state.root(),
        &marker,
    )
    .map_err(|source| LocalError::Spawn { kind: KIND, name: name.to_string(), binary: binary.to_path_buf(), source })?
    .map_err(|output| LocalError::NoPid { kind: KIND, name: name.to_string(), output })?;
    let details = EndpointDetails {
        pid: spawned.pid,
        pgid: spawned.pgid,
        start_time: spawned.start_time,
        port,
        url: format!("http://127.0.0.1:{port}"),
        model_dir: RecordedPath::from(model_dir),
        previous_config: None,
        front: None,
        rollout: None,
    };
    if let Err(error) = write_note(target, name, &details) {
        // Without the note a killed run would leave it running unknown: stop it now.
        if let Some(ours) = process::ours(spawned, &marker) {
            process::stop(ours, STOP_GRACE).await;
        }
        return Err(error);
    }
    let starting = Starting {
        details,
        config: wanted.config.clone(),
        binary: wanted.binary.clone(),
        shares_port,
        started: Instant::now(),
    };
    target.endpoint_starts.insert(name, starting.clone());
    Ok(starting)
}

/// Stops a server: SIGTERM (in-flight requests finish), SIGKILL after [`STOP_GRACE`]. This waits
/// inside `apply` and `delete`, but only as a bounded kill (at most `STOP_GRACE` and a few seconds
/// after SIGKILL, see `process::stop`), not for a resource to become ready.
async fn stop(target: &LocalTarget, name: &str, details: &EndpointDetails) -> Result<(), LocalError> {
    match process::ours(details.spawned(), &marker(target, name)) {
        Some(ours) => stop_verified(name, ours).await,
        // Gone, or never ours: nothing to signal.
        None => Ok(()),
    }
}

/// Stops a server verified to be the endpoint's (see [`stop`]).
async fn stop_verified(name: &str, ours: process::Ours) -> Result<(), LocalError> {
    if process::stop(ours, STOP_GRACE).await {
        Ok(())
    } else {
        Err(LocalError::Unkillable {
            kind: KIND,
            name: name.to_string(),
            pid: ours.pid(),
            waited: STOP_GRACE,
        })
    }
}

/// Stops the recorded server and any started one, and removes the record and the log.
async fn delete(target: &LocalTarget, name: &str) -> Result<(), LocalError> {
    let record = target.state.read::<EndpointDetails>(KIND, name)?;
    discard_starts(target, name, record.as_ref()).await?;
    if let Some(record) = record {
        stop_all_but(target, name, &record.details, &[]).await?;
    }
    front::remove_files(target, name)?;
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
    let (url, _) = serving(target, name)?;
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

/// The `/invocations` URL of the endpoint's live server and how the endpoint is hosted; an error
/// when there is no endpoint or its server is not running.
pub(crate) fn serving(target: &LocalTarget, name: &str) -> Result<(String, Hosting), LocalError> {
    let record = target
        .state
        .read::<EndpointDetails>(KIND, name)?
        .ok_or_else(|| LocalError::NoEndpoint {
            name: name.to_string(),
        })?;
    if !process::alive(record.details.spawned(), &marker(target, name)) {
        let serving = not_running(&record.details);
        return Err(LocalError::NotRunning {
            name: name.to_string(),
            serving,
        });
    }
    let hosting = match &record.settings {
        Settings::Endpoint(settings) => settings.hosting,
        _ => Hosting::default(),
    };
    Ok((format!("{}/invocations", record.details.endpoint_url()), hosting))
}

/// The config the endpoint's record says it serves; an error when there is no endpoint.
pub(crate) fn served_config(target: &LocalTarget, name: &str) -> Result<String, LocalError> {
    let record = target
        .state
        .read::<EndpointDetails>(KIND, name)?
        .ok_or_else(|| LocalError::NoEndpoint {
            name: name.to_string(),
        })?;
    match record.settings {
        Settings::Endpoint(settings) => Ok(settings.endpoint_config),
        _ => Err(LocalError::NoEndpoint {
            name: name.to_string(),
        }),
    }
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
        let rolling = record.details.rollout.as_ref().map(RollingOut::config);
        let configs = [
            config_of(&record),
            record.details.previous_config.as_deref(),
            rolling,
        ];
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
