//! `model-image route`: the local target's canary router. A small HTTP reverse proxy in front of an
//! old ("blue") and a new ("green") `model-image serve`, which shifts traffic to green in the plan's
//! steps, watches green's 5xx answers and latency against CloudWatch-style alarm rules
//! ([`alarm`]), and rolls back by itself (all traffic to blue, for good) when an alarm goes off
//! during a bake, the way SageMaker's deployment guardrails do. The last step (100 %) is the final
//! bake; after it the rollout is `completed` and the router keeps serving with all traffic on
//! green: it is the endpoint's front from then on.
//!
//! `POST /invocations` is forwarded (body, `Content-Type` and `Accept` in; status, `Content-Type`,
//! `Retry-After` and body out, plus `X-Canary-Backend: blue|green`) to the backend the weighted
//! split picks: of every 100 requests, `green_percent` go to green, spread evenly. A backend that
//! cannot be reached answers 502 with the reason (504 after [`BACKEND_TIMEOUT`]), which counts as a
//! 5xx of that backend. `GET /ping` answers 200 while each backend taking traffic answers its own
//! `/ping`. The router's own refusals (unknown path 404, wrong method 405, body over 6 MB 413, slow
//! body 408) are JSON `{"error": ...}` bodies as `serve` writes them; connections are held to
//! `serve`'s header, body and idle timeouts and drained on SIGTERM the same way.
//!
//! A plan without blue (the endpoint's first server) makes the router only the endpoint's front:
//! completed at once, all traffic on green.
//!
//! The rollout's state goes to the status file ([`RolloutStatus`]), rewritten atomically. The plan
//! and status types are in the contract crate (`contract::rollout`), which orchestrate shares.

pub mod alarm;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::serve::ServeLimits;
use crate::serve::response::ServeError;
use alarm::Periods;
use contract::rollout::{
    AlarmState, AlarmStatus, RequestCounts, RolledBackBy, RolloutPhase, RolloutPlan, RolloutStatus,
};

/// The largest request body forwarded (serve's own cap, SageMaker's `MaxPayloadInMB`).
pub const MAX_BODY_BYTES: usize = crate::serve::MAX_PAYLOAD_IN_MB * 1024 * 1024;

/// How long a backend may take to answer one request before the router answers 504.
pub const BACKEND_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a backend may take to answer `/ping`.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Idle connections kept per backend.
const POOL_SIZE: usize = 64;

/// A header naming the backend that answered.
pub const BACKEND_HEADER: &str = "x-canary-backend";

/// Serves on `listener` with the rollout of `plan`, writing its status to `status_path`, until
/// SIGTERM or SIGINT (then in-flight requests finish within serve's shutdown timeout).
pub async fn route_on(listener: TcpListener, plan: RolloutPlan, status_path: PathBuf) -> std::io::Result<()> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    plan.validate().map_err(invalid)?;
    let limits = ServeLimits::default();
    let keep = plan.alarms.iter().map(|a| a.periods as usize).max().unwrap_or(1);
    let shared = Arc::new(Shared {
        blue: plan.blue.map(|addr| Backend::new("blue", addr)),
        green: Backend::new("green", plan.green),
        green_percent: AtomicU32::new(0),
        counter: AtomicU64::new(0),
        blue_requests: AtomicU64::new(0),
        green_requests: AtomicU64::new(0),
        periods: Mutex::new(Periods::new(plan.period_ms, keep)),
        body_timeout: limits.body_timeout,
    });
    let mut rollout = Rollout::new(plan, Arc::clone(&shared), status_path);
    // The status file exists before the first request is accepted, or the router does not start.
    rollout.write_status()?;
    let addr = listener.local_addr()?;
    let blue = shared
        .blue
        .as_ref()
        .map_or_else(|| "none".to_owned(), |b| b.addr.to_string());
    tracing::info!(%addr, %blue, green = %shared.green.addr, "routing inference requests");
    let app = Router::new()
        .route("/ping", get(ping))
        .route("/invocations", post(invocations))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(Arc::clone(&shared));
    let rollout_task = tokio::spawn(async move { rollout.run().await });
    crate::serve::connection::serve(listener, app, limits, crate::serve::shutdown_signal()).await;
    rollout_task.abort();
    tracing::info!("router stopped");
    Ok(())
}

/// Reads the plan file.
pub fn read_plan(path: &Path) -> Result<RolloutPlan, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    RolloutPlan::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The state the request handlers and the rollout share.
struct Shared {
    /// `None` when the plan has no blue: every request goes to green.
    blue: Option<Backend>,
    green: Backend,
    green_percent: AtomicU32,
    counter: AtomicU64,
    blue_requests: AtomicU64,
    green_requests: AtomicU64,
    periods: Mutex<Periods>,
    body_timeout: Duration,
}

impl Shared {
    /// The weighted split: request `n` goes to green when `floor((n % 100 + 1) * p / 100)` steps
    /// past `floor((n % 100) * p / 100)`, so of every 100 requests exactly `p` go to green, evenly
    /// spread (Bresenham's line).
    fn pick_green(&self) -> bool {
        if self.blue.is_none() {
            return true;
        }
        let percent = u64::from(self.green_percent.load(Ordering::Acquire));
        let n = self.counter.fetch_add(1, Ordering::Relaxed) % 100;
        (n + 1) * percent / 100 > n * percent / 100
    }

    fn counts(&self) -> RequestCounts {
        RequestCounts {
            blue: self.blue_requests.load(Ordering::Relaxed),
            green: self.green_requests.load(Ordering::Relaxed),
        }
    }

    fn lock_periods(&self) -> std::sync::MutexGuard<'_, Periods> {
        // The data is plain counters: a panic elsewhere while holding it leaves it usable.
        self.periods
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Milliseconds since the Unix epoch.
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

// ---------------------------------------------------------------------------------------------
// Backends

/// One backend and its idle HTTP/1.1 client connections.
struct Backend {
    name: &'static str,
    addr: SocketAddr,
    host: HeaderValue,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

/// What a backend answered.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Backend {
    fn new(name: &'static str, addr: SocketAddr) -> Self {
        let host = HeaderValue::from_str(&addr.to_string()).expect("a socket address is a valid Host");
        Self {
            name,
            addr,
            host,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while let Some(sender) = idle.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn give_back(&self, sender: SendRequest<Full<Bytes>>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < POOL_SIZE {
            idle.push(sender);
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.addr))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with {} failed: {e}", self.addr))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!("backend connection ended: {error}");
            }
        });
        Ok(sender)
    }

    /// Sends one request and reads the whole answer. An idle connection that turns out closed is
    /// retried once on a new one (requests to a model server are idempotent).
    async fn exchange(
        &self,
        method: Method,
        path: &'static str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Answer, String> {
        loop {
            let (mut sender, pooled) = match self.take_idle() {
                Some(sender) => (sender, true),
                None => (self.connect().await?, false),
            };
            if let Err(error) = sender.ready().await {
                if pooled {
                    continue;
                }
                return Err(format!("the connection to {} failed: {error}", self.addr));
            }
            let mut request = hyper::Request::builder()
                .method(method.clone())
                .uri(path)
                .header(header::HOST, self.host.clone());
            for (name, value) in headers {
                request = request.header(name, value);
            }
            let request = request
                .body(Full::new(body.clone()))
                .map_err(|e| format!("cannot build the request: {e}"))?;
            let response = match sender.send_request(request).await {
                Ok(response) => response,
                Err(_) if pooled => continue,
                Err(error) => return Err(format!("{} did not answer: {error}", self.addr)),
            };
            let (parts, incoming) = response.into_parts();
            let body = incoming
                .collect()
                .await
                .map_err(|e| format!("reading the answer of {} failed: {e}", self.addr))?
                .to_bytes();
            self.give_back(sender);
            return Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            });
        }
    }

    /// Whether the backend answers `/ping` with 200; the reason when not.
    async fn ping(&self) -> Result<(), String> {
        match tokio::time::timeout(
            PING_TIMEOUT,
            self.exchange(Method::GET, "/ping", &[], Bytes::new()),
        )
        .await
        {
            Ok(Ok(answer)) if answer.status == StatusCode::OK => Ok(()),
            Ok(Ok(answer)) => Err(format!(
                "{} ({}) answered /ping with {}",
                self.name, self.addr, answer.status
            )),
            Ok(Err(reason)) => Err(format!("{} ({}): {reason}", self.name, self.addr)),
            Err(_) => Err(format!(
                "{} ({}) did not answer /ping within {} s",
                self.name,
                self.addr,
                PING_TIMEOUT.as_secs()
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers

type SharedState = Arc<Shared>;

const ROUTES: &str = "the router answers GET /ping and POST /invocations";

async fn not_found(method: Method, uri: Uri) -> ServeError {
    ServeError::new(
        StatusCode::NOT_FOUND,
        format!("there is no {method} {}: {ROUTES}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ServeError {
    ServeError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not accept {method}: {ROUTES}", uri.path()),
    )
}

async fn ping(State(shared): State<SharedState>) -> Response {
    let percent = shared.green_percent.load(Ordering::Acquire);
    let mut failures = Vec::new();
    if percent < 100
        && let Some(blue) = &shared.blue
        && let Err(reason) = blue.ping().await
    {
        failures.push(reason);
    }
    if percent > 0
        && let Err(reason) = shared.green.ping().await
    {
        failures.push(reason);
    }
    if failures.is_empty() {
        StatusCode::OK.into_response()
    } else {
        ServeError::new(
            StatusCode::BAD_GATEWAY,
            format!("a backend taking traffic is not healthy: {}", failures.join("; ")),
        )
        .into_response()
    }
}

async fn invocations(State(shared): State<SharedState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match read_body(body, &parts.headers, shared.body_timeout).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let mut forwarded = Vec::with_capacity(2);
    for name in [header::CONTENT_TYPE, header::ACCEPT] {
        if let Some(value) = parts.headers.get(&name) {
            forwarded.push((name, value.clone()));
        }
    }
    let green = shared.pick_green();
    let backend = match (green, &shared.blue) {
        (false, Some(blue)) => {
            shared.blue_requests.fetch_add(1, Ordering::Relaxed);
            blue
        }
        _ => {
            shared.green_requests.fetch_add(1, Ordering::Relaxed);
            &shared.green
        }
    };
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        BACKEND_TIMEOUT,
        backend.exchange(Method::POST, "/invocations", &forwarded, body),
    )
    .await;
    let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let (mut response, reached) = match outcome {
        Ok(Ok(answer)) => (answer_response(answer), true),
        Ok(Err(reason)) => (
            ServeError::new(
                StatusCode::BAD_GATEWAY,
                format!(
                    "the {} backend ({}) could not be reached: {reason}",
                    backend.name, backend.addr
                ),
            )
            .into_response(),
            false,
        ),
        Err(_) => (
            ServeError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "the {} backend ({}) did not answer within {} s",
                    backend.name,
                    backend.addr,
                    BACKEND_TIMEOUT.as_secs()
                ),
            )
            .into_response(),
            false,
        ),
    };
    if green {
        let server_error = response.status().is_server_error();
        shared
            .lock_periods()
            .record(unix_ms(), server_error, reached.then_some(latency_us));
    }
    response
        .headers_mut()
        .insert(BACKEND_HEADER, HeaderValue::from_static(backend.name));
    response
}

fn answer_response(answer: Answer) -> Response {
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() = answer.status;
    for name in [header::CONTENT_TYPE, header::RETRY_AFTER] {
        if let Some(value) = answer.headers.get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

/// The whole request body, at most [`MAX_BODY_BYTES`] (413: refused on a declared length at once,
/// else read to its end and thrown away so the client gets its answer), within `timeout` (408).
async fn read_body(mut body: Body, headers: &HeaderMap, timeout: Duration) -> Result<Bytes, ServeError> {
    let too_large = || {
        ServeError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is larger than {} MB",
                crate::serve::MAX_PAYLOAD_IN_MB
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let deadline = Instant::now() + timeout;
    let mut bytes = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    let mut over = false;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                return Err(ServeError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body did not arrive within {} s",
                        timeout.as_secs_f64()
                    ),
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(error))) => {
                return Err(ServeError::bad_request(format!(
                    "the request body could not be read: {error}"
                )));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data()
            && !over
        {
            if bytes.len() + data.len() > MAX_BODY_BYTES {
                over = true;
                bytes = Vec::new();
            } else {
                bytes.extend_from_slice(&data);
            }
        }
    }
    if over {
        return Err(too_large());
    }
    Ok(Bytes::from(bytes))
}

// ---------------------------------------------------------------------------------------------
// The rollout

struct Rollout {
    plan: RolloutPlan,
    shared: Arc<Shared>,
    status_path: PathBuf,
    status: RolloutStatus,
    /// Counts when the status was last written.
    written_counts: RequestCounts,
    written_at: Instant,
}

impl Rollout {
    fn new(plan: RolloutPlan, shared: Arc<Shared>, status_path: PathBuf) -> Self {
        let first = plan.steps[0];
        shared.green_percent.store(first, Ordering::Release);
        let status = RolloutStatus {
            phase: RolloutPhase::Baking,
            step: 1,
            steps: u32::try_from(plan.steps.len()).unwrap_or(u32::MAX),
            green_percent: first,
            bake_started_unix_ms: unix_ms(),
            bake_ms: plan.bake_ms,
            requests: RequestCounts::default(),
            alarms: plan
                .alarms
                .iter()
                .map(|rule| AlarmStatus {
                    name: rule.name.clone(),
                    state: AlarmState::Ok,
                    reason: "Unchecked: the rollout has just started.".to_owned(),
                })
                .collect(),
            rolled_back_by: None,
        };
        Self {
            plan,
            shared,
            status_path,
            status,
            written_counts: RequestCounts::default(),
            written_at: Instant::now(),
        }
    }

    /// How often alarms are evaluated and request counts written: a tenth of a period, within
    /// 10 ms - 1 s.
    fn tick(&self) -> Duration {
        Duration::from_millis((self.plan.period_ms / 10).clamp(10, 1000))
    }

    /// Writes the status: a temporary file next to it, then a rename.
    fn write_status(&mut self) -> std::io::Result<()> {
        self.status.requests = self.shared.counts();
        let text = serde_json::to_vec_pretty(&self.status).map_err(std::io::Error::other)?;
        let file_name = self
            .status_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "status.json".to_owned());
        let temporary = self
            .status_path
            .with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
        std::fs::write(&temporary, text)?;
        std::fs::rename(&temporary, &self.status_path).inspect_err(|_| {
            let _ = std::fs::remove_file(&temporary);
        })?;
        self.written_counts = self.status.requests;
        self.written_at = Instant::now();
        Ok(())
    }

    fn save(&mut self) {
        if let Err(error) = self.write_status() {
            tracing::error!(path = %self.status_path.display(), "cannot write the rollout status: {error}");
        }
    }

    /// Writes the status when the counts changed (at most once a tick) or a period passed.
    fn save_if_stale(&mut self) {
        let period = Duration::from_millis(self.plan.period_ms).min(Duration::from_secs(1));
        if self.shared.counts() != self.written_counts || self.written_at.elapsed() >= period {
            self.save();
        }
    }

    fn start_bake(&mut self, phase: RolloutPhase, step: usize, percent: u32) {
        self.shared.green_percent.store(percent, Ordering::Release);
        self.status.phase = phase;
        self.status.step = u32::try_from(step).unwrap_or(u32::MAX);
        self.status.green_percent = percent;
        self.status.bake_started_unix_ms = unix_ms();
        tracing::info!(
            phase = phase.as_str(),
            step,
            steps = self.plan.steps.len(),
            green_percent = percent,
            bake_ms = self.plan.bake_ms,
            "rollout: baking"
        );
        self.save();
    }

    async fn run(&mut self) {
        if self.plan.blue.is_none() {
            // Nothing to shift traffic from: green takes it all, with nothing to roll back to.
            self.shared.green_percent.store(100, Ordering::Release);
            self.status.phase = RolloutPhase::Completed;
            self.status.step = self.status.steps;
            self.status.green_percent = 100;
            tracing::info!(
                phase = "completed",
                green_percent = 100,
                "rollout: no blue, all traffic on green"
            );
            self.save();
            return self.hold().await;
        }
        // As SageMaker's blue/green: each step but the last bakes (`WaitIntervalInSeconds`), and the
        // last one (100 %) is the final bake (`TerminationWaitInSeconds`), with blue still there.
        let steps = self.plan.steps.clone();
        for (i, &percent) in steps.iter().enumerate() {
            let phase = if i + 1 == steps.len() {
                RolloutPhase::FinalBake
            } else {
                RolloutPhase::Baking
            };
            self.start_bake(phase, i + 1, percent);
            if !self.bake().await {
                return self.hold().await;
            }
        }
        self.status.phase = RolloutPhase::Completed;
        tracing::info!(
            phase = "completed",
            green_percent = 100,
            "rollout: completed, all traffic on green"
        );
        self.save();
        self.hold().await;
    }

    /// Bakes for `bake_ms`, evaluating the alarms every tick; `false` when one went into ALARM
    /// (then the rollout has been rolled back).
    async fn bake(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_millis(self.plan.bake_ms);
        loop {
            if self.evaluate() {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            self.save_if_stale();
            tokio::time::sleep_until(deadline.min(now + self.tick())).await;
        }
    }

    /// Evaluates every alarm now and records transitions; rolls back and returns `true` when one is
    /// in ALARM.
    fn evaluate(&mut self) -> bool {
        let now = unix_ms();
        let evaluations: Vec<_> = {
            let periods = self.shared.lock_periods();
            self.plan
                .alarms
                .iter()
                .map(|rule| periods.evaluate(rule, now))
                .collect()
        };
        let mut changed = false;
        let mut fired = None;
        for (status, evaluation) in self.status.alarms.iter_mut().zip(evaluations) {
            if status.state != evaluation.state {
                changed = true;
                let level = if evaluation.state == AlarmState::Alarm {
                    "ALARM"
                } else {
                    "OK"
                };
                tracing::warn!(alarm = %status.name, state = level, reason = %evaluation.reason, "alarm transition");
            }
            if evaluation.state == AlarmState::Alarm && fired.is_none() {
                fired = Some(RolledBackBy {
                    name: status.name.clone(),
                    reason: evaluation.reason.clone(),
                });
            }
            status.state = evaluation.state;
            status.reason = evaluation.reason;
        }
        if let Some(by) = fired {
            self.shared.green_percent.store(0, Ordering::Release);
            self.status.phase = RolloutPhase::RolledBack;
            self.status.green_percent = 0;
            tracing::warn!(
                phase = "rolled_back",
                alarm = %by.name,
                reason = %by.reason,
                "rollout: rolled back, all traffic on blue"
            );
            self.status.rolled_back_by = Some(by);
            self.save();
            return true;
        }
        if changed {
            self.save();
        }
        false
    }

    /// After the rollout: keeps the request counts in the status file current.
    async fn hold(&mut self) {
        loop {
            tokio::time::sleep(self.tick()).await;
            self.save_if_stale();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(percent: u32) -> Shared {
        Shared {
            blue: Some(Backend::new("blue", "127.0.0.1:1".parse().unwrap())),
            green: Backend::new("green", "127.0.0.1:2".parse().unwrap()),
            green_percent: AtomicU32::new(percent),
            counter: AtomicU64::new(0),
            blue_requests: AtomicU64::new(0),
            green_requests: AtomicU64::new(0),
            periods: Mutex::new(Periods::new(1000, 1)),
            body_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn the_split_sends_exactly_the_share_to_green_spread_evenly() {
        for percent in [0, 1, 10, 33, 50, 99, 100] {
            let shared = shared(percent);
            let picks: Vec<bool> = (0..1000).map(|_| shared.pick_green()).collect();
            for hundred in picks.chunks(100) {
                assert_eq!(hundred.iter().filter(|g| **g).count(), percent as usize);
            }
            if percent == 50 {
                assert!(picks.windows(2).all(|w| w[0] != w[1]), "alternates");
            }
        }
    }

    #[test]
    fn plans_are_checked() {
        let good = r#"{"blue": "127.0.0.1:41001", "green": "127.0.0.1:41002",
            "steps": [50, 100], "bake_ms": 10000, "period_ms": 60000,
            "alarms": [{"name": "e", "metric": "invocation_5xx_errors", "threshold": 1, "datapoints": 2, "periods": 3},
                       {"name": "l", "metric": "model_latency", "threshold": 100000, "datapoints": 2, "periods": 3}]}"#;
        let plan = RolloutPlan::from_json(good).unwrap();
        assert_eq!(
            plan.alarms[1].metric,
            contract::rollout::AlarmMetric::ModelLatency
        );
        let round_trip = serde_json::to_string(&plan).unwrap();
        assert_eq!(RolloutPlan::from_json(&round_trip).unwrap(), plan);
        for (bad, why) in [
            (good.replace("\"bake_ms\"", "\"bake\""), "unknown field"),
            (good.replace("[50, 100]", "[50, 90]"), "end at 100"),
            (good.replace("[50, 100]", "[60, 50, 100]"), "increasing"),
            (
                good.replace("\"datapoints\": 2", "\"datapoints\": 4"),
                "datapoints <= periods",
            ),
            (good.replace("model_latency", "latency"), "unknown variant"),
            (
                good.replace("127.0.0.1:41002", "http://127.0.0.1:41002"),
                "invalid socket address",
            ),
            (good.replace("41002", "41001"), "both"),
            (
                good.replace("\"threshold\": 1,", "\"threshold\": -1,"),
                "invalid value",
            ),
        ] {
            let error = RolloutPlan::from_json(&bad).unwrap_err();
            assert!(error.contains(why), "{why}: {error}");
        }
    }
}
