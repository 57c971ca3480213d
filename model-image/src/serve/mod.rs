//! The SageMaker inference HTTP server: `GET /ping`, `GET /execution-parameters` and
//! `POST /invocations` (CSV, JSON or JSON Lines in; JSON, CSV or JSON Lines predictions out, per
//! `Accept`). The model's column maps and label texts are computed once in [`router`], so a
//! single-row request costs a header check, an in-place parse, one `Scorer::score` call and one
//! preallocated response buffer. Every failure answers with a JSON body
//! `{"error": "...", "row": n?, "column": "name"?}` and the server keeps serving.
//!
//! Hostile clients are bounded ([`ServeLimits`]): connections are held to header, body and idle
//! timeouts ([`connection`]), at most `max_in_flight` invocations are read and scored at once (one
//! more gets 503 with `Retry-After`), bodies are shape-checked while they stream in ([`prescan`])
//! and scored a chunk of rows at a time. A body up to SageMaker's realtime 6 MB (the default limit)
//! is held in memory, so such a request costs at most one 6 MB body, one chunk of features and its
//! predictions. When `MODEL_IMAGE_MAX_PAYLOAD_MB` raises the limit (an asynchronous endpoint's,
//! up to 1 GB), larger CSV and JSON Lines bodies are spooled to a temporary file, scored from it and
//! answered from a second one ([`spool`]), so memory per request stays at about one chunk whatever
//! the body's size, and every 4xx still comes before the first byte of an answer.
//!
//! With a [`CaptureConfig`] (`MODEL_IMAGE_CAPTURE_DIR`, the local target's stand-in for SageMaker's
//! data capture) a sampled share of the successful invocations is written, request and answer, in
//! SageMaker's capture files, off the request path ([`capture`]); without one nothing is drawn,
//! kept or written.

mod body;
mod capture;
pub(crate) mod connection;
mod limits;
mod prescan;
mod request;
pub(crate) mod response;
mod spool;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use body::{BodyReader, Checked, payload_too_large};
use capture::{Capture, CaptureService, Exchange};
use limits::MB;
use prescan::{Prescan, RequestShape};
use request::{Batch, FeatureLayout, InputFormat};
use response::{Labels, OutputFormat, PredictionWriter, ServeError};
use spool::{Spool, SpooledBody};

pub use capture::{
    CSV_CONTENT_TYPES, CaptureConfig, JSON_CONTENT_TYPES, SamplingPercent, parse_capture_percent,
};
pub use limits::{
    ASYNC_MAX_PAYLOAD_IN_MB, IN_FLIGHT_PER_CORE, MAX_PAYLOAD_IN_MB, ServeLimits, parse_payload_mb,
    parse_seconds,
};
pub use prescan::{EXTRA_COLUMNS, MAX_JSON_DEPTH, MAX_ROWS_PER_REQUEST};

/// The port when `SAGEMAKER_BIND_TO_PORT` is not set.
pub const DEFAULT_PORT: u16 = 8080;

/// Batches at least this large are scored with `block_in_place` so the runtime keeps serving other
/// requests meanwhile; smaller ones are scored inline.
const BLOCK_IN_PLACE_MIN_ROWS: usize = 64;

/// Scores rows; implemented by the lead with LightGBM (one booster per worker thread). Rows are
/// row-major, `n_features` wide, in the model's feature order; NaN means missing.
pub trait Scorer: Send + Sync + 'static {
    /// P(positive) for each of the `n_rows` rows.
    fn score(&self, rows: &[f64], n_rows: usize) -> Result<Vec<f64>, String>;
}

/// A loaded model as the server sees it.
pub struct ServedModel {
    /// The model's feature columns, in order.
    pub features: Vec<String>,
    /// A row is labeled positive when its score is `>= threshold`.
    pub threshold: f64,
    /// E.g. `Anomaly`.
    pub positive_label: String,
    /// E.g. `Normal`.
    pub negative_label: String,
    pub scorer: Box<dyn Scorer>,
}

/// The router's state: the model and everything derived from it once.
struct AppState {
    model: Arc<ServedModel>,
    layout: FeatureLayout,
    /// The shape of CSV and JSON Lines bodies, whose row limit grows with the body limit.
    shape: RequestShape,
    /// The shape of JSON documents, which are always held in memory.
    json_shape: RequestShape,
    spool: Spool,
    labels: Labels,
    execution_parameters: Bytes,
    limits: ServeLimits,
    in_flight: Arc<Semaphore>,
    /// Data capture, when configured.
    capture: Option<Capture>,
}

type Shared = Arc<AppState>;

impl AppState {
    fn shape(&self, input: InputFormat) -> RequestShape {
        match input {
            InputFormat::Json => self.json_shape,
            InputFormat::Csv | InputFormat::JsonLines => self.shape,
        }
    }
}

/// The inference routes, with JSON answers for unknown paths (404) and methods (405). `limits`
/// gives the body timeout, the body limit, the spool directory and the in-flight limit of
/// `/invocations`. Nothing is captured.
pub fn router(model: Arc<ServedModel>, limits: &ServeLimits) -> Router {
    router_with(model, limits, MAX_PAYLOAD_IN_MB * MB, None)
}

/// [`router`] with bodies over `in_memory_bytes` spooled (when the body limit is larger): SageMaker's
/// realtime limit in production, smaller in unit tests to keep their bodies small.
#[cfg(test)]
fn router_holding_in_memory(model: Arc<ServedModel>, limits: &ServeLimits, in_memory_bytes: usize) -> Router {
    router_with(model, limits, in_memory_bytes, None)
}

/// [`router`] with bodies over `in_memory_bytes` spooled, handing the successful invocations
/// `capture` draws to it.
fn router_with(
    model: Arc<ServedModel>,
    limits: &ServeLimits,
    in_memory_bytes: usize,
    capture: Option<Capture>,
) -> Router {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Batch transform's mini-batches stay realtime-sized (held in memory), whatever the body limit.
    let execution_parameters = format!(
        r#"{{"MaxConcurrentTransforms":{cores},"BatchStrategy":"MULTI_RECORD","MaxPayloadInMB":{MAX_PAYLOAD_IN_MB}}}"#
    );
    let layout = FeatureLayout::new(&model.features);
    let state = Arc::new(AppState {
        shape: RequestShape::for_layout(&layout, limits.max_rows_per_request(), in_memory_bytes),
        json_shape: RequestShape::for_layout(&layout, MAX_ROWS_PER_REQUEST, in_memory_bytes),
        spool: spool_of(limits, in_memory_bytes),
        layout,
        labels: Labels::new(&model.positive_label, &model.negative_label),
        execution_parameters: Bytes::from(execution_parameters),
        limits: limits.clone(),
        in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
        capture,
        model,
    });
    Router::new()
        .route("/ping", get(ping))
        .route("/execution-parameters", get(execution_parameters_handler))
        .route("/invocations", post(invocations))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

fn spool_of(limits: &ServeLimits, in_memory_bytes: usize) -> Spool {
    Spool {
        in_memory_bytes,
        in_memory_rows: MAX_ROWS_PER_REQUEST,
        max_bytes: limits.max_payload_bytes(),
        dir: limits.spool_dir(),
    }
}

/// Binds `addr`, serves until SIGTERM or SIGINT (graceful: in-flight requests finish within the
/// shutdown timeout), logs the bound address. `capture`: data capture, if any.
pub async fn serve(
    addr: SocketAddr,
    model: Arc<ServedModel>,
    limits: ServeLimits,
    capture: Option<CaptureConfig>,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    serve_on(listener, model, limits, capture).await
}

/// [`serve`] on a listener the caller bound (e.g. to port 0, reading the port from it).
pub async fn serve_on(
    listener: TcpListener,
    model: Arc<ServedModel>,
    limits: ServeLimits,
    capture: Option<CaptureConfig>,
) -> std::io::Result<()> {
    serve_with_shutdown(listener, model, limits, capture, shutdown_signal()).await
}

/// Serves on `listener` until `shutdown` completes, then lets in-flight requests finish, closing
/// whatever is still open after `limits.shutdown_timeout`; captured records still queued are
/// written within the same deadline. Refuses to start when the spool or capture directory is
/// unusable.
pub async fn serve_with_shutdown(
    listener: TcpListener,
    model: Arc<ServedModel>,
    limits: ServeLimits,
    capture: Option<CaptureConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let spool = spool_of(&limits, MAX_PAYLOAD_IN_MB * MB);
    spool.check()?;
    let capture_service = capture.as_ref().map(CaptureService::start).transpose()?;
    tracing::info!(
        %addr,
        features = model.features.len(),
        max_in_flight = limits.max_in_flight,
        header_timeout_s = limits.header_timeout.as_secs_f64(),
        body_timeout_s = limits.body_timeout.as_secs_f64(),
        idle_timeout_s = limits.idle_timeout.as_secs_f64(),
        max_payload_mb = limits.max_payload_mb,
        spool_dir = spool.enabled().then(|| spool.dir.display().to_string()),
        capture_dir = capture.as_ref().map(|c| c.dir.display().to_string()),
        capture_percent = capture.as_ref().map(|c| c.percent.get()),
        "serving inference requests"
    );
    let app = router_with(
        model,
        &limits,
        MAX_PAYLOAD_IN_MB * MB,
        capture_service.as_ref().map(CaptureService::capture),
    );
    let shutdown_timeout = limits.shutdown_timeout;
    let (began, shutdown_began) = tokio::sync::oneshot::channel();
    let shutdown = async move {
        shutdown.await;
        let _ = began.send(tokio::time::Instant::now());
    };
    connection::serve(listener, app, limits, shutdown).await;
    if let Some(capture_service) = capture_service {
        let began = shutdown_began
            .await
            .unwrap_or_else(|_| tokio::time::Instant::now());
        capture_service.finish(began + shutdown_timeout).await;
    }
    tracing::info!("server stopped");
    Ok(())
}

/// `host:$SAGEMAKER_BIND_TO_PORT`, or port [`DEFAULT_PORT`] when the variable is unset or empty.
/// SageMaker expects `host` = `0.0.0.0` (all interfaces).
pub fn bind_addr_from_env(host: IpAddr) -> std::io::Result<SocketAddr> {
    bind_addr(host, std::env::var("SAGEMAKER_BIND_TO_PORT").ok().as_deref())
}

fn bind_addr(host: IpAddr, port: Option<&str>) -> std::io::Result<SocketAddr> {
    let port = match port.map(str::trim) {
        None | Some("") => DEFAULT_PORT,
        Some(text) => text.parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("SAGEMAKER_BIND_TO_PORT={text:?} is not a port number"),
            )
        })?,
    };
    Ok(SocketAddr::new(host, port))
}

/// Completes on SIGTERM (what SageMaker sends) or SIGINT.
pub(crate) async fn shutdown_signal() {
    let interrupt = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for SIGINT: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT: finishing in-flight requests"),
        () = terminate => tracing::info!("SIGTERM: finishing in-flight requests"),
    }
}

async fn ping() -> StatusCode {
    StatusCode::OK
}

async fn execution_parameters_handler(State(state): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        state.execution_parameters.clone(),
    )
        .into_response()
}

async fn not_found(method: Method, uri: Uri) -> ServeError {
    ServeError::new(
        StatusCode::NOT_FOUND,
        format!(
            "there is no {method} {}: the server answers GET /ping, GET /execution-parameters and \
             POST /invocations",
            uri.path()
        ),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ServeError {
    ServeError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} does not accept {method}: the server answers GET /ping, GET /execution-parameters \
             and POST /invocations",
            uri.path()
        ),
    )
}

async fn invocations(State(state): State<Shared>, request: Request) -> Response {
    match invoke(&state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn invoke(state: &Shared, request: Request) -> Result<Response, ServeError> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let declared_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_length.is_some_and(|n| n > state.spool.max_bytes as u64) {
        return Err(payload_too_large(state.spool.max_bytes));
    }
    let reader = BodyReader::new(
        body,
        state.limits.body_timeout,
        declared_length.and_then(|n| usize::try_from(n).ok()),
        state.spool.max_bytes,
    );
    let formats = InputFormat::from_content_type(headers.get(header::CONTENT_TYPE))
        .and_then(|input| Ok((input, OutputFormat::negotiate(headers.get(header::ACCEPT))?)));
    let (input, output) = match formats {
        Ok(formats) => formats,
        Err(error) => {
            reader.drain(0).await;
            return Err(error);
        }
    };
    let Ok(permit) = Arc::clone(&state.in_flight).try_acquire_owned() else {
        reader.drain(0).await;
        return Err(ServeError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the server is at its limit of {} requests in flight (MODEL_IMAGE_MAX_IN_FLIGHT); \
                 retry shortly",
                state.limits.max_in_flight
            ),
        )
        .retry_after(1));
    };

    let shape = state.shape(input);
    let body = match reader
        .read(Prescan::new(input, shape), &state.spool, input)
        .await?
    {
        Checked::InMemory(body) => body,
        Checked::Spooled(body) => {
            let response = answer_spooled(state, input, output, shape, body).await?;
            // Too large to capture (the capture module says why): counted only.
            if let Some(capture) = &state.capture
                && capture.draw()
            {
                capture.skip_large();
            }
            return Ok(response.map(|body| Body::new(body::Guarded::new(body, permit))));
        }
    };
    if body.bytes().trim_ascii().is_empty() {
        return Err(ServeError::bad_request("the request body is empty"));
    }
    let mut scores: Vec<f64> = Vec::new();
    input.parse(&body, &state.layout, &shape, &mut |batch| {
        let chunk = score(&state.model, batch)?;
        if scores.is_empty() {
            scores = chunk;
        } else {
            scores.extend_from_slice(&chunk);
        }
        Ok(())
    })?;
    // Drawn once the request has succeeded; the body is kept only when it is captured.
    let captured = match &state.capture {
        Some(capture) if capture.draw() => Some((capture, body.into_owned_bytes())),
        _ => {
            drop(body);
            None
        }
    };
    let answer = response::predictions(output, &state.labels, state.model.threshold, &scores)?;
    if let Some((capture, input)) = captured {
        capture.offer(Exchange {
            time: crate::monitor::window::Timestamp::from_system_time(std::time::SystemTime::now()),
            input_type: headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            input,
            output_type: output.content_type(),
            output: answer.clone(),
        });
    }
    let response = response::predictions_response(output, answer);
    // The request stays in flight until its answer has been written.
    Ok(response.map(|body| Body::new(body::Guarded::new(body, permit))))
}

/// Bytes of predictions gathered before each write to an answer's temporary file.
const ANSWER_WRITE_BYTES: usize = 256 * 1024;

/// The answer to a spooled body, scored on a blocking thread (it reads and writes files for as long
/// as the body takes). When the request is dropped meanwhile (the client left, or shutdown closed
/// its connection), the work stops at its next chunk of rows and closes its files.
async fn answer_spooled(
    state: &Shared,
    input: InputFormat,
    output: OutputFormat,
    shape: RequestShape,
    body: SpooledBody,
) -> Result<Response, ServeError> {
    let abandoned = Arc::new(AtomicBool::new(false));
    let _abandon_when_dropped = SetOnDrop(Arc::clone(&abandoned));
    let state = Arc::clone(state);
    let work =
        tokio::task::spawn_blocking(move || score_spooled(&state, input, output, &shape, body, &abandoned));
    work.await.unwrap_or_else(|e| {
        Err(ServeError::internal(format!(
            "scoring the spooled body failed: {e}"
        )))
    })
}

/// Sets its flag when dropped.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Scores a spooled body a chunk of rows at a time into a temporary file of predictions, the answer
/// sent from it; gives up before the next chunk once `abandoned` is set.
fn score_spooled(
    state: &AppState,
    input: InputFormat,
    output: OutputFormat,
    shape: &RequestShape,
    body: SpooledBody,
    abandoned: &AtomicBool,
) -> Result<Response, ServeError> {
    let mut answer = state.spool.create("the predictions")?;
    let mut writer = PredictionWriter::new(output, &state.labels, state.model.threshold);
    let mut pending = Vec::with_capacity(ANSWER_WRITE_BYTES);
    writer.begin(&mut pending);
    input.parse_spooled(body, &state.layout, shape, &mut |batch| {
        if abandoned.load(Ordering::Relaxed) {
            return Err(ServeError::internal(
                "the request was abandoned while it was scored",
            ));
        }
        let scores = score(&state.model, batch)?;
        writer.write(&mut pending, &scores)?;
        if pending.len() >= ANSWER_WRITE_BYTES {
            answer.append(&pending)?;
            pending.clear();
        }
        Ok(())
    })?;
    writer.end(&mut pending);
    answer.append(&pending)?;
    let (file, len) = answer.finish()?;
    Ok(response::predictions_from_file(output, file, len))
}

/// Runs `work`, which blocks (scoring, file I/O), with `block_in_place` on a multi-threaded runtime,
/// so that the runtime keeps serving other requests meanwhile; inline on any other (the unit tests').
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

/// Runs the scorer, turning its errors, panics and wrong-length answers into 500s.
fn score(model: &ServedModel, batch: &Batch) -> Result<Vec<f64>, ServeError> {
    let run = || catch_unwind(AssertUnwindSafe(|| model.scorer.score(&batch.rows, batch.n_rows)));
    let outcome = if batch.n_rows >= BLOCK_IN_PLACE_MIN_ROWS {
        blocking(run)
    } else {
        run()
    };
    let scores = match outcome {
        Ok(Ok(scores)) => scores,
        Ok(Err(message)) => {
            return Err(ServeError::internal(format!("scoring failed: {message}")));
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            return Err(ServeError::internal(format!("scoring panicked: {message}")));
        }
    };
    if scores.len() != batch.n_rows {
        return Err(ServeError::internal(format!(
            "the model returned {} scores for {} rows",
            scores.len(),
            batch.n_rows
        )));
    }
    Ok(scores)
}
