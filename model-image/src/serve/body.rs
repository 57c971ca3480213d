//! Reading a request body: under SageMaker's 6 MB cap (413 past it), before the body deadline (408),
//! through the [`Prescan`] as chunks arrive. A body the prescan refuses is read to its end and
//! thrown away chunk by chunk, so the client gets its answer on a connection that stays usable
//! while the server holds no more than one chunk of it; requests refused before their body (415,
//! 406, 503) are drained the same way.

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use http_body_util::BodyExt;
use tokio::time::Instant;

use super::prescan::Prescan;
use super::response::ServeError;

/// The largest request body accepted (SageMaker's `MaxPayloadInMB`); larger bodies get 413.
pub const MAX_PAYLOAD_IN_MB: usize = 6;
pub(crate) const MAX_PAYLOAD_BYTES: usize = MAX_PAYLOAD_IN_MB * 1024 * 1024;

/// A whole request body that passed its [`Prescan`]: record widths, row count and JSON depth are
/// within the model's [`super::prescan::RequestShape`].
#[derive(Debug)]
pub(crate) struct CheckedBody(Bytes);

impl CheckedBody {
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

pub(crate) fn payload_too_large() -> ServeError {
    ServeError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is larger than {MAX_PAYLOAD_IN_MB} MB"),
    )
}

/// Where a body is read from, with its deadline.
pub(crate) struct BodyReader {
    body: Body,
    deadline: Instant,
    /// The body timeout, for the 408 message.
    timeout: std::time::Duration,
    /// `Content-Length`, when the client sent one (already checked against the cap).
    declared: Option<usize>,
}

/// What one read of the body gave.
enum Chunk {
    Data(Bytes),
    End,
}

impl BodyReader {
    pub(crate) fn new(body: Body, timeout: std::time::Duration, declared: Option<usize>) -> Self {
        Self {
            body,
            deadline: Instant::now() + timeout,
            timeout,
            declared,
        }
    }

    async fn next(&mut self) -> Result<Chunk, ServeError> {
        loop {
            let frame = match tokio::time::timeout_at(self.deadline, self.body.frame()).await {
                Err(_) => {
                    return Err(ServeError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "the request body did not arrive within {} s (MODEL_IMAGE_BODY_TIMEOUT)",
                            self.timeout.as_secs_f64()
                        ),
                    ));
                }
                Ok(None) => return Ok(Chunk::End),
                Ok(Some(Err(e))) => {
                    return Err(ServeError::bad_request(format!(
                        "could not read the request body: {e}"
                    )));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            // Trailers carry nothing a prediction needs.
            if let Ok(data) = frame.into_data() {
                return Ok(Chunk::Data(data));
            }
        }
    }

    /// The whole body, checked by `prescan` as it arrives. On a prescan error the rest of the body
    /// is drained first.
    pub(crate) async fn read(mut self, mut prescan: Prescan) -> Result<CheckedBody, ServeError> {
        let mut first: Option<Bytes> = None;
        let mut joined: Vec<u8> = Vec::new();
        let mut total = 0usize;
        loop {
            let data = match self.next().await? {
                Chunk::Data(data) => data,
                Chunk::End => break,
            };
            total += data.len();
            if total > MAX_PAYLOAD_BYTES {
                return Err(payload_too_large());
            }
            if let Err(error) = prescan.feed(&data) {
                self.drain(total).await;
                return Err(error);
            }
            // One chunk (every small request) is kept as it is; more are joined into one buffer of
            // the declared length, or grown up to the cap.
            if first.is_none() && joined.is_empty() {
                first = Some(data);
                continue;
            }
            if joined.is_empty() {
                let head = first.take().unwrap_or_default();
                let size = self
                    .declared
                    .unwrap_or(2 * (head.len() + data.len()))
                    .clamp(head.len() + data.len(), MAX_PAYLOAD_BYTES);
                joined.reserve_exact(size);
                joined.extend_from_slice(&head);
            } else if joined.capacity() - joined.len() < data.len() {
                let size = (2 * joined.capacity()).clamp(joined.len() + data.len(), MAX_PAYLOAD_BYTES);
                joined.reserve_exact(size - joined.len());
            }
            joined.extend_from_slice(&data);
        }
        prescan.finish()?;
        Ok(CheckedBody(match first {
            Some(only) => only,
            None => Bytes::from(joined),
        }))
    }

    /// Reads and discards the rest of the body, up to the cap and the deadline, so that the answer
    /// reaches a client still sending (closing on unread data would reset the connection).
    pub(crate) async fn drain(mut self, mut total: usize) {
        while total <= MAX_PAYLOAD_BYTES {
            match self.next().await {
                Ok(Chunk::Data(data)) => total += data.len(),
                Ok(Chunk::End) | Err(_) => return,
            }
        }
    }
}

/// A response body that keeps `guard` alive until hyper has written it (or given up on it): the
/// request's in-flight permit, the connection's return to idle.
pub(super) struct Guarded<G> {
    body: axum::body::Body,
    _guard: G,
}

impl<G> Guarded<G> {
    pub(super) fn new(body: axum::body::Body, guard: G) -> Self {
        Self { body, _guard: guard }
    }
}

impl<G: Unpin> http_body::Body for Guarded<G> {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, axum::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
