//! Connections: the accept loop, HTTP/1.1 on each connection (hyper), and a watchdog per connection
//! that holds it to the [`ServeLimits`] timeouts. A connection is always in one [`Phase`]; the
//! phase's timeout runs from the moment it was entered, so a client dribbling header bytes
//! (slowloris) is closed `header_timeout` after its first byte however it paces them, an idle
//! keep-alive connection after `idle_timeout`, and a client that does not take its response after
//! `body_timeout`. On shutdown the server stops accepting, lets each connection finish its request,
//! and closes whatever is still open at `shutdown_timeout`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower_service::Service;

use super::limits::ServeLimits;

/// hyper's read buffer per connection at most: headers must fit in it and bodies stream through
/// it. hyper's default is about 400 KB; 64 KB keeps hundreds of connections that drain bodies
/// within a few MB.
const MAX_READ_BUFFER: usize = 64 * 1024;

/// Accepts connections on `listener` until `shutdown` completes, then drains them.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let limits = Arc::new(limits);
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Small responses must not wait for Nagle's algorithm.
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!("could not set TCP_NODELAY: {e}");
                    }
                    connections.spawn(connection(stream, app.clone(), Arc::clone(&limits), stopping.clone()));
                }
                Err(error) => accept_failed(error).await,
            },
            Some(finished) = connections.join_next(), if !connections.is_empty() => {
                if let Err(error) = finished {
                    tracing::error!("a connection task failed: {error}");
                }
            }
        }
    }
    drop(listener);
    let _ = stop.send(true);
    if !connections.is_empty() {
        tracing::info!(connections = connections.len(), "finishing open connections");
    }
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            shutdown_timeout_s = limits.shutdown_timeout.as_secs_f64(),
            "closing the connections still open at the shutdown deadline"
        );
        connections.shutdown().await;
    }
}

/// Errors of one connection (the peer left) are skipped; others (out of file descriptors) pause
/// accepting for a second rather than spin.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!("accepting a connection failed: {error}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn connection(
    stream: TcpStream,
    app: Router,
    limits: Arc<ServeLimits>,
    mut stopping: watch::Receiver<bool>,
) {
    let clock = Arc::new(Clock::new(&limits));
    let io = TokioIo::new(Watched {
        stream,
        clock: Arc::clone(&clock),
    });
    let exchange_clock = Arc::clone(&clock);
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        exchange_clock.enter(Phase::Handling);
        let clock = Arc::clone(&exchange_clock);
        let response = app.clone().call(request.map(Body::new));
        async move {
            let response = response.await?;
            clock.enter(Phase::Responding);
            Ok::<_, std::convert::Infallible>(
                response.map(|body| super::body::Guarded::new(body, IdleOnDrop(clock))),
            )
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.keep_alive(true)
        .max_buf_size(MAX_READ_BUFFER)
        // The watchdog enforces it, with the idle time before a request kept apart.
        .header_read_timeout(None);
    let conn = http.serve_connection(io, service);
    tokio::pin!(conn);
    let watchdog = clock.expired();
    tokio::pin!(watchdog);
    let mut draining = false;
    loop {
        if !draining && *stopping.borrow() {
            draining = true;
            conn.as_mut().graceful_shutdown();
        }
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!("connection ended: {error}");
                }
                return;
            }
            expired = &mut watchdog => {
                tracing::debug!("closing the connection: {expired}");
                return;
            }
            changed = stopping.changed(), if !draining => {
                if changed.is_err() {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Open with nothing of a request read yet (just accepted, or after a response).
    Idle = 0,
    /// Bytes of a request arrived; its headers are not complete.
    Head = 1,
    /// The router has the request (its body is read under the body timeout there).
    Handling = 2,
    /// The response is being written.
    Responding = 3,
}

impl Phase {
    fn from_bits(bits: u64) -> Self {
        match bits & 0b11 {
            0 => Self::Idle,
            1 => Self::Head,
            2 => Self::Handling,
            _ => Self::Responding,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Idle => "idle timeout",
            Self::Head => "header timeout",
            Self::Handling => "no timeout",
            Self::Responding => "body timeout",
        }
    }
}

/// A connection's phase and when it began, shared by its socket, its requests and its watchdog.
/// Times are milliseconds since `opened`.
struct Clock {
    opened: Instant,
    /// When the phase began, shifted left by 2, or the phase.
    state: AtomicU64,
    /// When the watchdog wakes by itself ([`NEVER`] while it waits for a change): a phase whose
    /// deadline is later needs no wake-up. An idle connection's watchdog wakes at least every
    /// header timeout, so a request starting (the commonest change) never needs one.
    wake_at: AtomicU64,
    changed: Notify,
    /// Each phase's timeout, by `Phase as usize`.
    timeouts: [Option<Duration>; 4],
}

const NEVER: u64 = u64::MAX;

/// Why the watchdog closed a connection.
#[derive(Debug)]
struct Expired {
    phase: Phase,
    timeout: Duration,
    name: &'static str,
}

impl fmt::Display for Expired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.phase {
            Phase::Idle => "no request arrived",
            Phase::Head => "the request headers were not complete",
            Phase::Handling => "the request was not handled",
            Phase::Responding => "the client did not take the response",
        };
        write!(
            f,
            "{what} within {} s ({})",
            self.timeout.as_secs_f64(),
            self.name
        )
    }
}

impl Clock {
    fn new(limits: &ServeLimits) -> Self {
        Self {
            opened: Instant::now(),
            state: AtomicU64::new(Phase::Idle as u64),
            wake_at: AtomicU64::new(NEVER),
            changed: Notify::new(),
            timeouts: [
                Some(limits.idle_timeout),
                Some(limits.header_timeout),
                None,
                Some(limits.body_timeout),
            ],
        }
    }

    fn timeout(&self, phase: Phase) -> Option<Duration> {
        self.timeouts[phase as usize]
    }

    fn millis(duration: Duration) -> u64 {
        u64::try_from(duration.as_millis()).unwrap_or(NEVER >> 3)
    }

    fn enter(&self, phase: Phase) {
        let now = Self::millis(self.opened.elapsed()).min(NEVER >> 3);
        self.state.store(now << 2 | phase as u64, Ordering::Release);
        let deadline = self
            .timeout(phase)
            .map_or(NEVER, |t| now.saturating_add(Self::millis(t)));
        if deadline < self.wake_at.load(Ordering::Acquire) {
            self.changed.notify_one();
        }
    }

    /// Bytes arrived: an idle connection starts a request.
    fn read_some(&self) {
        if Phase::from_bits(self.state.load(Ordering::Acquire)) == Phase::Idle {
            self.enter(Phase::Head);
        }
    }

    /// Completes when the current phase outlasts its timeout.
    async fn expired(&self) -> Expired {
        loop {
            let state = self.state.load(Ordering::Acquire);
            let phase = Phase::from_bits(state);
            let timeout = self.timeout(phase);
            let deadline_ms = timeout.map_or(NEVER, |t| (state >> 2).saturating_add(Self::millis(t)));
            let wake_at = match (phase, self.timeout(Phase::Head)) {
                (Phase::Idle, Some(header)) => {
                    deadline_ms.min(Self::millis(self.opened.elapsed()).saturating_add(Self::millis(header)))
                }
                _ => deadline_ms,
            };
            self.wake_at.store(wake_at, Ordering::Release);
            if self.state.load(Ordering::Acquire) != state {
                continue;
            }
            let Some(timeout) = timeout else {
                self.changed.notified().await;
                continue;
            };
            tokio::select! {
                () = self.changed.notified() => {}
                () = tokio::time::sleep_until(self.opened + Duration::from_millis(wake_at)) => {
                    if wake_at == deadline_ms && self.state.load(Ordering::Acquire) == state {
                        return Expired { phase, timeout, name: phase.name() };
                    }
                }
            }
        }
    }
}

/// The connection's socket, telling its clock when bytes arrive.
struct Watched {
    stream: TcpStream,
    clock: Arc<Clock>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.clock.read_some();
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Held by a response body: when hyper has written it (or given up on it), the connection is idle again.
struct IdleOnDrop(Arc<Clock>);

impl Drop for IdleOnDrop {
    fn drop(&mut self) {
        self.0.enter(Phase::Idle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ServeLimits {
        ServeLimits {
            header_timeout: Duration::from_secs(2),
            body_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(5),
            ..ServeLimits::for_cores(1)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_phase_is_held_to_its_own_timeout() {
        let limits = limits();
        let clock = Clock::new(&limits);
        let expired = clock.expired().await;
        assert_eq!(
            (expired.phase, expired.timeout),
            (Phase::Idle, limits.idle_timeout)
        );

        let clock = Clock::new(&limits);
        tokio::time::sleep(Duration::from_secs(4)).await;
        clock.read_some();
        let started = Instant::now();
        let expired = clock.expired().await;
        assert_eq!(expired.phase, Phase::Head);
        assert_eq!(started.elapsed(), limits.header_timeout, "from the first byte");
        assert!(expired.to_string().contains("header timeout"), "{expired}");
    }

    /// A watchdog waiting on an idle connection (idle timeout 5 s) still holds a request that starts
    /// meanwhile to the header timeout (2 s) from its first byte, without being notified.
    #[tokio::test(start_paused = true)]
    async fn a_request_starting_on_an_idle_connection_gets_the_header_timeout() {
        let limits = limits();
        let clock = Arc::new(Clock::new(&limits));
        let watchdog = tokio::spawn({
            let clock = Arc::clone(&clock);
            async move { clock.expired().await.phase }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        clock.read_some();
        let started = Instant::now();
        assert_eq!(watchdog.await.unwrap(), Phase::Head);
        assert_eq!(started.elapsed(), limits.header_timeout);
    }

    #[tokio::test(start_paused = true)]
    async fn handling_has_no_timeout_and_later_bytes_do_not_restart_the_header_clock() {
        let limits = limits();
        let clock = Arc::new(Clock::new(&limits));
        clock.read_some();
        tokio::time::sleep(Duration::from_secs(1)).await;
        clock.read_some();
        let watchdog = tokio::spawn({
            let clock = Arc::clone(&clock);
            async move { clock.expired().await.phase }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        clock.enter(Phase::Handling);
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(
            !watchdog.is_finished(),
            "a request being handled is not timed out here"
        );
        clock.enter(Phase::Responding);
        tokio::time::sleep(limits.body_timeout + Duration::from_millis(10)).await;
        assert_eq!(watchdog.await.unwrap(), Phase::Responding);
    }
}
