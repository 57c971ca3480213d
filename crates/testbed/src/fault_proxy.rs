//! A fault-injecting HTTP proxy on loopback, between the program under test and moto or the
//! registry: it forwards every request and answers a seeded fraction of them with a fault instead.
//!
//! The faults are the ones real services send, each in the protocol's own form, so the client's
//! own error handling (the SDK's retry classifiers, the registry client's) is what is tested:
//! - **throttling**: JSON protocols (SageMaker, ECR, CloudWatch Logs, Application Auto Scaling,
//!   sagemaker-runtime) `400 ThrottlingException` with `x-amzn-ErrorType`; S3 `503 SlowDown` XML;
//!   the query protocols (IAM, STS) `400 Throttling` in an `ErrorResponse`; the registry
//!   `429 TOOMANYREQUESTS` in the distribution spec's error JSON;
//! - **server errors**: `500` and `503` with each protocol's error body;
//! - **connection resets**: the connection is reset (RST, `SO_LINGER` 0) before the request is
//!   forwarded, or after it was forwarded and answered upstream ("response lost": the change
//!   happened, the client never learns it; its retry meets the result of its first attempt).
//!
//! Which request gets a fault is decided by a PRNG seeded from the plan's seed, the operation and
//! how many requests of that operation came before, so the same run meets the same faults at the
//! same calls whatever the order in which concurrent requests arrive. [`FaultProxy::stats`] counts
//! requests and faults per operation.
//!
//! Each request is forwarded on a fresh upstream connection with its `Host` header unchanged (the
//! registry builds upload `Location`s from it, so they point back at the proxy).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderValue, TRANSFER_ENCODING};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A fault the proxy injects in place of (or after) forwarding a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// The protocol's throttling error.
    Throttle,
    /// HTTP 500 with the protocol's internal-error body.
    InternalError,
    /// HTTP 503 with the protocol's unavailable body.
    Unavailable,
    /// The connection is reset before the request is forwarded.
    Reset,
    /// The request is forwarded and answered upstream, then the connection is reset.
    ResponseLost,
}

impl FaultKind {
    pub const ALL: [FaultKind; 5] = [
        FaultKind::Throttle,
        FaultKind::InternalError,
        FaultKind::Unavailable,
        FaultKind::Reset,
        FaultKind::ResponseLost,
    ];
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FaultKind::Throttle => "throttled",
            FaultKind::InternalError => "500",
            FaultKind::Unavailable => "503",
            FaultKind::Reset => "reset",
            FaultKind::ResponseLost => "response lost",
        })
    }
}

/// Which requests get which fault.
#[derive(Debug, Clone)]
pub enum FaultPlan {
    /// Each request independently, with probability `rate`, gets a fault drawn from `mix` (kinds
    /// with weights).
    Random {
        seed: u64,
        rate: f64,
        mix: Vec<(FaultKind, u32)>,
    },
    /// The first `count` requests of each of `operations` get `kind`; everything else passes.
    FirstCalls {
        operations: Vec<String>,
        count: u64,
        kind: FaultKind,
    },
}

impl FaultPlan {
    /// A seeded fraction `rate` of all requests faulted: throttling 40%, 500 and 503 15% each,
    /// resets before forwarding 15%, responses lost 15%.
    pub fn random(seed: u64, rate: f64) -> FaultPlan {
        assert!((0.0..=1.0).contains(&rate), "a fault rate is a fraction: {rate}");
        FaultPlan::Random {
            seed,
            rate,
            mix: vec![
                (FaultKind::Throttle, 40),
                (FaultKind::InternalError, 15),
                (FaultKind::Unavailable, 15),
                (FaultKind::Reset, 15),
                (FaultKind::ResponseLost, 15),
            ],
        }
    }

    /// The first `count` calls of `operation` (as the proxy names it: `DescribeTrainingJob`,
    /// `GetCallerIdentity`, `PUT /bucket/key`, `PUT /bucket?tagging`) answered with `kind`.
    pub fn first_calls(operation: impl Into<String>, count: u64, kind: FaultKind) -> FaultPlan {
        Self::first_calls_of([operation], count, kind)
    }

    /// [`FaultPlan::first_calls`] of each of `operations`.
    pub fn first_calls_of(
        operations: impl IntoIterator<Item = impl Into<String>>,
        count: u64,
        kind: FaultKind,
    ) -> FaultPlan {
        FaultPlan::FirstCalls {
            operations: operations.into_iter().map(Into::into).collect(),
            count,
            kind,
        }
    }

    /// The fault, if any, for the `occurrence`-th request (from 0) of `operation`.
    fn decide(&self, operation: &str, occurrence: u64) -> Option<FaultKind> {
        match self {
            FaultPlan::Random { seed, rate, mix } => {
                let mut hasher = DefaultHasher::new();
                (seed, operation, occurrence).hash(&mut hasher);
                let mut rng = ChaCha8Rng::seed_from_u64(hasher.finish());
                if rng.random::<f64>() >= *rate {
                    return None;
                }
                let total: u32 = mix.iter().map(|(_, weight)| weight).sum();
                let mut pick = rng.random_range(0..total.max(1));
                mix.iter().find_map(|(kind, weight)| {
                    if pick < *weight {
                        Some(*kind)
                    } else {
                        pick -= weight;
                        None
                    }
                })
            }
            FaultPlan::FirstCalls {
                operations,
                count,
                kind,
            } => (operations.iter().any(|o| o == operation) && occurrence < *count).then_some(*kind),
        }
    }
}

/// How the upstream's errors look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// moto: AWS's protocols, told apart per request.
    Aws,
    /// A container registry (the OCI distribution API).
    Registry,
}

/// The wire protocol of one request, which decides how its faults are worded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// `X-Amz-Target` JSON (awsJson1.0/1.1).
    AwsJson,
    /// restJson1 (sagemaker-runtime's `InvokeEndpoint`).
    RestJson,
    /// The query protocol (IAM, STS): `Action=` in a form body.
    Query,
    /// S3's REST-XML.
    S3,
    /// The OCI distribution API.
    Registry,
}

/// One request's protocol and operation name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Operation {
    wire: Wire,
    /// `DescribeTrainingJob`, `CreateRole`, `InvokeEndpoint`, `PUT /bucket/key`, `PATCH blob upload`.
    name: String,
}

impl Operation {
    fn of(
        upstream: Upstream,
        method: &Method,
        uri: &hyper::Uri,
        headers: &hyper::HeaderMap,
        body: &[u8],
    ) -> Operation {
        let path = uri.path();
        if upstream == Upstream::Registry {
            return Operation {
                wire: Wire::Registry,
                name: format!("{method} {}", registry_route(path)),
            };
        }
        if let Some(target) = headers.get("x-amz-target").and_then(|t| t.to_str().ok()) {
            let name = target.rsplit('.').next().unwrap_or(target);
            return Operation {
                wire: Wire::AwsJson,
                name: name.to_string(),
            };
        }
        if let Some(action) = query_action(headers, body) {
            return Operation {
                wire: Wire::Query,
                name: action,
            };
        }
        if path.starts_with("/endpoints/") {
            return Operation {
                wire: Wire::RestJson,
                name: "InvokeEndpoint".to_string(),
            };
        }
        // S3, path-style: the bucket alone, or an object in it, and the subresource (`?tagging`,
        // `?policy`: the parameters without a value).
        let route = match path.trim_start_matches('/').split_once('/') {
            Some((_, key)) if !key.is_empty() => "/bucket/key",
            _ => "/bucket",
        };
        let mut subresources: Vec<&str> = uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|pair| !pair.is_empty() && !pair.contains('=') || pair.ends_with('='))
            .map(|pair| pair.trim_end_matches('='))
            .collect();
        subresources.sort_unstable();
        let name = if subresources.is_empty() {
            format!("{method} {route}")
        } else {
            format!("{method} {route}?{}", subresources.join("&"))
        };
        Operation { wire: Wire::S3, name }
    }
}

/// The query protocol's `Action` in a form-encoded body.
fn query_action(headers: &hyper::HeaderMap, body: &[u8]) -> Option<String> {
    let form = headers
        .get(CONTENT_TYPE)
        .and_then(|t| t.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return None;
    }
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .map(str::to_string)
}

/// The distribution API's route of `path`, without the repository name and digests.
fn registry_route(path: &str) -> &'static str {
    if path.contains("/blobs/uploads") {
        "blob upload"
    } else if path.contains("/blobs/") {
        "blob"
    } else if path.contains("/manifests/") {
        "manifest"
    } else {
        "base"
    }
}

/// Requests and faults of one operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OperationCounts {
    pub requests: u64,
    pub faults: u64,
}

/// What the proxy has seen since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Requests received (faulted or not).
    pub requests: u64,
    /// Faults injected, per kind.
    pub faults: BTreeMap<FaultKind, u64>,
    /// Per operation.
    pub operations: BTreeMap<String, OperationCounts>,
}

impl ProxyStats {
    /// Faults injected in all.
    pub fn faulted(&self) -> u64 {
        self.faults.values().sum()
    }

    /// The counts since `earlier` (a snapshot of the same proxy).
    pub fn since(&self, earlier: &ProxyStats) -> ProxyStats {
        let faults = self
            .faults
            .iter()
            .map(|(kind, n)| (*kind, n - earlier.faults.get(kind).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
            .collect();
        let operations = self
            .operations
            .iter()
            .map(|(name, counts)| {
                let before = earlier.operations.get(name).copied().unwrap_or_default();
                (
                    name.clone(),
                    OperationCounts {
                        requests: counts.requests - before.requests,
                        faults: counts.faults - before.faults,
                    },
                )
            })
            .filter(|(_, counts)| counts.requests > 0)
            .collect();
        ProxyStats {
            requests: self.requests - earlier.requests,
            faults,
            operations,
        }
    }
}

impl fmt::Display for ProxyStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} requests, {} faulted", self.requests, self.faulted())?;
        if !self.faults.is_empty() {
            let kinds: Vec<String> = self
                .faults
                .iter()
                .map(|(kind, n)| format!("{n} {kind}"))
                .collect();
            write!(f, " ({})", kinds.join(", "))?;
        }
        Ok(())
    }
}

struct Shared {
    upstream_address: SocketAddr,
    upstream: Upstream,
    plan: FaultPlan,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    stats: ProxyStats,
    occurrences: HashMap<String, u64>,
}

/// The proxy, listening on a free port of 127.0.0.1 until dropped.
pub struct FaultProxy {
    address: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream_url` (`http://127.0.0.1:PORT`, as [`crate::Moto::url`]
    /// and [`crate::Registry::address`] give it) that injects faults by `plan`.
    pub async fn start(upstream_url: &str, upstream: Upstream, plan: FaultPlan) -> FaultProxy {
        let authority = upstream_url
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("the proxy forwards plain HTTP on loopback, not {upstream_url}"));
        let upstream_address: SocketAddr = authority
            .trim_end_matches('/')
            .parse()
            .unwrap_or_else(|e| panic!("upstream {upstream_url} is not IP:PORT: {e}"));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fault proxy");
        let address = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared {
            upstream_address,
            upstream,
            plan,
            state: Mutex::new(State::default()),
        });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        FaultProxy {
            address,
            shared,
            accept,
        }
    }

    /// `http://127.0.0.1:PORT`: what `AWS_ENDPOINT_URL` or `ORCHESTRATE_REGISTRY` takes.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The counts so far.
    pub fn stats(&self) -> ProxyStats {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stats
            .clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // A reset must be a reset (RST), not an orderly close; the proxy closes a connection only
        // to reset it or after the client closed its side, so every close may be abortive.
        let _ = stream.set_zero_linger();
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| handle(Arc::clone(&shared), request));
            // An error is the reset this proxy asked for, or a client that went away.
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Why a connection is dropped without an answer.
#[derive(Debug)]
struct Dropped(String);

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Dropped {}

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Dropped> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| Dropped(format!("reading the request: {e}")))?
        .to_bytes();
    let operation = Operation::of(shared.upstream, &parts.method, &parts.uri, &parts.headers, &body);
    let fault = {
        let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        let occurrence = state.occurrences.entry(operation.name.clone()).or_default();
        let fault = shared.plan.decide(&operation.name, *occurrence);
        *occurrence += 1;
        state.stats.requests += 1;
        let counts = state.stats.operations.entry(operation.name.clone()).or_default();
        counts.requests += 1;
        if let Some(kind) = fault {
            counts.faults += 1;
            *state.stats.faults.entry(kind).or_default() += 1;
        }
        fault
    };
    let head = parts.method == Method::HEAD;
    match fault {
        None => forward(&shared, parts, body).await,
        Some(FaultKind::Reset) => Err(Dropped(format!("{}: reset", operation.name))),
        Some(FaultKind::ResponseLost) => {
            forward(&shared, parts, body).await?;
            Err(Dropped(format!("{}: response lost", operation.name)))
        }
        Some(kind) => Ok(error_response(operation.wire, kind, head)),
    }
}

/// Sends the request upstream on a fresh connection and returns its whole answer.
async fn forward(
    shared: &Shared,
    mut parts: hyper::http::request::Parts,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let unreachable = |e: &dyn fmt::Display| Dropped(format!("upstream {}: {e}", shared.upstream_address));
    let stream = TcpStream::connect(shared.upstream_address)
        .await
        .map_err(|e| unreachable(&e))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(&e))?;
    tokio::spawn(connection);
    // The body was read whole: it goes on with a length, whatever framing it came with.
    if parts.headers.remove(TRANSFER_ENCODING).is_some() || !body.is_empty() {
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    if !parts.headers.contains_key(HOST) {
        let host = HeaderValue::from_str(&shared.upstream_address.to_string())
            .expect("an address is a header value");
        parts.headers.insert(HOST, host);
    }
    // Origin form (`/path?query`), as a server expects it.
    if let Some(path) = parts.uri.path_and_query().cloned() {
        parts.uri = path.as_str().parse().expect("a path is a URI");
    }
    let response = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(|e| unreachable(&e))?;
    let (mut parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| unreachable(&e))?.to_bytes();
    parts.headers.remove(TRANSFER_ENCODING);
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// The fault `kind` worded as a service speaking `wire` words it (no body for `HEAD`).
fn error_response(wire: Wire, kind: FaultKind, head: bool) -> Response<Full<Bytes>> {
    let status = match (wire, kind) {
        (Wire::S3, FaultKind::Throttle) | (_, FaultKind::Unavailable) => StatusCode::SERVICE_UNAVAILABLE,
        (Wire::Registry, FaultKind::Throttle) => StatusCode::TOO_MANY_REQUESTS,
        (_, FaultKind::Throttle) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let code = match (wire, kind) {
        (Wire::AwsJson | Wire::RestJson, FaultKind::Throttle) => "ThrottlingException",
        (Wire::Query, FaultKind::Throttle) => "Throttling",
        (Wire::S3, FaultKind::Throttle) => "SlowDown",
        (Wire::Registry, FaultKind::Throttle) => "TOOMANYREQUESTS",
        (Wire::Registry, _) => "UNAVAILABLE",
        (Wire::AwsJson | Wire::RestJson, FaultKind::Unavailable) => "ServiceUnavailableException",
        (_, FaultKind::Unavailable) => "ServiceUnavailable",
        (Wire::S3, _) => "InternalError",
        _ => "InternalFailure",
    };
    let message = match kind {
        FaultKind::Throttle => "Rate exceeded",
        FaultKind::Unavailable => "Service unavailable, try again",
        _ => "We encountered an internal error, try again",
    };
    let request_id = "fault-proxy-0000";
    let (content_type, body) = match wire {
        Wire::AwsJson => (
            "application/x-amz-json-1.1",
            format!(r#"{{"__type":"{code}","message":"{message}"}}"#),
        ),
        Wire::RestJson => ("application/json", format!(r#"{{"message":"{message}"}}"#)),
        Wire::Query => (
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>{}</Type><Code>{code}</Code><Message>{message}</Message></Error>\
                 <RequestId>{request_id}</RequestId></ErrorResponse>",
                if kind == FaultKind::Throttle {
                    "Sender"
                } else {
                    "Receiver"
                }
            ),
        ),
        Wire::S3 => (
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>\
                 <RequestId>{request_id}</RequestId></Error>"
            ),
        ),
        Wire::Registry => (
            "application/json",
            format!(r#"{{"errors":[{{"code":"{code}","message":"{message}","detail":null}}]}}"#),
        ),
    };
    let mut response = Response::builder()
        .status(status)
        .header(CONTENT_TYPE, content_type)
        .header("x-amzn-RequestId", request_id)
        .header("x-amz-request-id", request_id);
    if matches!(wire, Wire::AwsJson | Wire::RestJson) {
        response = response.header("x-amzn-ErrorType", code);
    }
    if head {
        response = response.header(CONTENT_LENGTH, body.len());
        response.body(Full::new(Bytes::new()))
    } else {
        response.body(Full::new(Bytes::from(body)))
    }
    .expect("a well-formed response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_random_plan_faults_about_its_rate_and_every_kind_of_its_mix() {
        let plan = FaultPlan::random(7, 0.25);
        let mut kinds = BTreeMap::new();
        let calls = 4000;
        for n in 0..calls {
            if let Some(kind) = plan.decide("DescribeTrainingJob", n) {
                *kinds.entry(kind).or_insert(0u64) += 1;
            }
        }
        let faulted: u64 = kinds.values().sum();
        assert!((800..1200).contains(&faulted), "{faulted} of {calls}");
        assert_eq!(kinds.len(), FaultKind::ALL.len(), "{kinds:?}");
    }

    #[test]
    fn decisions_depend_on_seed_operation_and_occurrence_only() {
        let plan = FaultPlan::random(7, 0.5);
        let first: Vec<_> = (0..64).map(|n| plan.decide("CreateRole", n)).collect();
        let again: Vec<_> = (0..64).map(|n| plan.decide("CreateRole", n)).collect();
        assert_eq!(first, again);
        let other_seed = FaultPlan::random(8, 0.5);
        let other: Vec<_> = (0..64).map(|n| other_seed.decide("CreateRole", n)).collect();
        assert_ne!(first, other);
    }

    #[test]
    fn first_calls_fault_only_the_named_operation_that_many_times() {
        let plan = FaultPlan::first_calls("DescribeTrainingJob", 3, FaultKind::InternalError);
        let decided: Vec<_> = (0..5).map(|n| plan.decide("DescribeTrainingJob", n)).collect();
        assert_eq!(
            decided,
            [Some(FaultKind::InternalError); 3]
                .into_iter()
                .chain([None, None])
                .collect::<Vec<_>>()
        );
        assert_eq!(plan.decide("DescribeEndpoint", 0), None);
    }

    #[test]
    fn operations_are_named_per_protocol() {
        let uri = |text: &str| -> hyper::Uri { text.parse().expect("a URI") };
        let mut headers = hyper::HeaderMap::new();
        headers.insert(
            "x-amz-target",
            HeaderValue::from_static("SageMaker.DescribeTrainingJob"),
        );
        let json = Operation::of(Upstream::Aws, &Method::POST, &uri("/"), &headers, b"{}");
        assert_eq!(
            (json.wire, json.name.as_str()),
            (Wire::AwsJson, "DescribeTrainingJob")
        );

        let mut form = hyper::HeaderMap::new();
        form.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        let query = Operation::of(
            Upstream::Aws,
            &Method::POST,
            &uri("/"),
            &form,
            b"Action=CreateRole&Version=2010-05-08",
        );
        assert_eq!((query.wire, query.name.as_str()), (Wire::Query, "CreateRole"));

        let none = hyper::HeaderMap::new();
        let s3 = Operation::of(
            Upstream::Aws,
            &Method::PUT,
            &uri("/bucket/orchestrate/lock.json?x-id=PutObject"),
            &none,
            b"{}",
        );
        assert_eq!((s3.wire, s3.name.as_str()), (Wire::S3, "PUT /bucket/key"));
        let bucket = Operation::of(Upstream::Aws, &Method::HEAD, &uri("/bucket"), &none, b"");
        assert_eq!(bucket.name, "HEAD /bucket");
        let tagging = Operation::of(Upstream::Aws, &Method::PUT, &uri("/bucket?tagging"), &none, b"");
        assert_eq!(tagging.name, "PUT /bucket?tagging");
        let invoke = Operation::of(
            Upstream::Aws,
            &Method::POST,
            &uri("/endpoints/iot/invocations"),
            &none,
            b"1,2",
        );
        assert_eq!(invoke.wire, Wire::RestJson);

        let blob = Operation::of(
            Upstream::Registry,
            &Method::PATCH,
            &uri("/v2/iot/blobs/uploads/abc"),
            &none,
            b"",
        );
        assert_eq!(
            (blob.wire, blob.name.as_str()),
            (Wire::Registry, "PATCH blob upload")
        );
    }

    #[test]
    fn throttling_is_worded_as_each_protocol_words_it() {
        let body = |wire| {
            let response = error_response(wire, FaultKind::Throttle, false);
            let status = response.status().as_u16();
            let bytes = futures_body(response);
            (status, bytes)
        };
        let (status, json) = body(Wire::AwsJson);
        assert_eq!(status, 400);
        assert!(json.contains(r#""__type":"ThrottlingException""#), "{json}");
        let (status, s3) = body(Wire::S3);
        assert_eq!(status, 503);
        assert!(s3.contains("<Code>SlowDown</Code>"), "{s3}");
        let (status, query) = body(Wire::Query);
        assert_eq!(status, 400);
        assert!(query.contains("<Code>Throttling</Code>"), "{query}");
        let (status, registry) = body(Wire::Registry);
        assert_eq!(status, 429);
        assert!(registry.contains("TOOMANYREQUESTS"), "{registry}");
        let head = error_response(Wire::S3, FaultKind::Throttle, true);
        assert_eq!(futures_body(head), "", "a HEAD answer has no body");
    }

    fn futures_body(response: Response<Full<Bytes>>) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let bytes = runtime
            .block_on(response.into_body().collect())
            .expect("a full body")
            .to_bytes();
        String::from_utf8(bytes.to_vec()).expect("UTF-8")
    }
}
