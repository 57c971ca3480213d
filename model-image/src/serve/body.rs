//! Reading a request body: within the body limit (413 past it), before the body deadline (408),
//! through the [`Prescan`] as chunks arrive. A body up to SageMaker's realtime 6 MB and
//! [`super::MAX_ROWS_PER_REQUEST`] rows is kept in memory. When the limit is raised (an asynchronous
//! endpoint's, `MODEL_IMAGE_MAX_PAYLOAD_MB`), a larger CSV or JSON Lines body is written to a
//! temporary file as it arrives ([`super::spool`]): from its first byte when its `Content-Length`
//! says so, else from the chunk that takes it past either bound; a single JSON document over 6 MB is
//! refused (413). A body the prescan refuses is read to its end and thrown away chunk by chunk, so
//! the client gets its answer on a connection that stays usable while the server holds no more than
//! one chunk of it; requests refused before their body (415, 406, 503) are drained the same way.

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use http_body_util::BodyExt;
use tokio::time::Instant;

use super::limits::size_text;
use super::prescan::Prescan;
use super::request::InputFormat;
use super::response::ServeError;
use super::spool::{Spool, SpoolFile, SpooledBody};

/// A whole request body that passed its [`Prescan`]: record widths, row count and JSON depth are
/// within the model's [`super::prescan::RequestShape`].
#[derive(Debug)]
pub(crate) struct CheckedBody(Bytes);

impl CheckedBody {
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The body as bytes of its own, to keep after the request (data capture): a body joined from
    /// several chunks already owns its buffer and is handed over as it is; a body of one chunk is a
    /// slice of the connection's read buffer (at most 64 KB) and is copied, so that keeping it does
    /// not keep that whole buffer.
    pub(crate) fn into_owned_bytes(self) -> Bytes {
        if self.0.is_unique() {
            self.0
        } else {
            Bytes::copy_from_slice(&self.0)
        }
    }
}

/// A body that passed its [`Prescan`], where it was read to.
#[derive(Debug)]
pub(crate) enum Checked {
    InMemory(CheckedBody),
    Spooled(SpooledBody),
}

/// 413 for a body over the limit of `max_bytes`.
pub(crate) fn payload_too_large(max_bytes: usize) -> ServeError {
    ServeError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the request body is larger than {} (MODEL_IMAGE_MAX_PAYLOAD_MB)",
            size_text(max_bytes)
        ),
    )
}

/// 413 for a JSON document too large to hold in memory, which the body limit would otherwise allow.
fn json_too_large(spool: &Spool) -> ServeError {
    ServeError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "a JSON request body may be at most {}; send CSV (text/csv) or JSON Lines \
             (application/jsonlines) for larger payloads, up to {}",
            size_text(spool.in_memory_bytes),
            size_text(spool.max_bytes)
        ),
    )
}

/// Where a body is read from, with its deadline.
pub(crate) struct BodyReader {
    body: Body,
    deadline: Instant,
    /// The body timeout, for the 408 message.
    timeout: std::time::Duration,
    /// `Content-Length`, when the client sent one (already checked against the limit).
    declared: Option<usize>,
    /// The body limit: no more is read, even to drain.
    max_bytes: usize,
}

/// What one read of the body gave.
enum Chunk {
    Data(Bytes),
    End,
}

/// A body in memory as it arrives: one chunk (every small request) is kept as it is; more are
/// joined into one buffer of the declared length, or grown up to the in-memory limit.
#[derive(Default)]
struct Joined {
    first: Option<Bytes>,
    joined: Vec<u8>,
}

impl Joined {
    /// Adds `data`; the body so far, with it, is at most `limit` bytes.
    fn push(&mut self, data: Bytes, declared: Option<usize>, limit: usize) {
        if self.first.is_none() && self.joined.is_empty() {
            self.first = Some(data);
            return;
        }
        if self.joined.is_empty() {
            let head = self.first.take().unwrap_or_default();
            let size = declared
                .unwrap_or(2 * (head.len() + data.len()))
                .clamp(head.len() + data.len(), limit);
            self.joined.reserve_exact(size);
            self.joined.extend_from_slice(&head);
        } else if self.joined.capacity() - self.joined.len() < data.len() {
            let size = (2 * self.joined.capacity()).clamp(self.joined.len() + data.len(), limit);
            self.joined.reserve_exact(size - self.joined.len());
        }
        self.joined.extend_from_slice(&data);
    }

    /// What was pushed, in order.
    fn parts(&self) -> [&[u8]; 2] {
        [self.first.as_deref().unwrap_or_default(), &self.joined]
    }

    fn into_bytes(self) -> Bytes {
        match self.first {
            Some(only) => only,
            None => Bytes::from(self.joined),
        }
    }
}

/// Where the body goes as it arrives.
enum Sink {
    Memory(Joined),
    File { file: SpoolFile, has_quote: bool },
}

impl Sink {
    /// From now on the body goes to a temporary file, with what was kept in memory so far; refused
    /// for bodies that cannot be spooled.
    fn spool(&mut self, spool: &Spool, format: InputFormat) -> Result<(), ServeError> {
        if !spool.enabled() {
            return Err(payload_too_large(spool.max_bytes));
        }
        if format == InputFormat::Json {
            return Err(json_too_large(spool));
        }
        let Self::Memory(joined) = self else {
            return Ok(());
        };
        let mut file = spool.create("the request body")?;
        let mut has_quote = false;
        for part in joined.parts() {
            has_quote |= memchr::memchr(b'"', part).is_some();
            file.append(part)?;
        }
        *self = Self::File { file, has_quote };
        Ok(())
    }
}

impl BodyReader {
    pub(crate) fn new(
        body: Body,
        timeout: std::time::Duration,
        declared: Option<usize>,
        max_bytes: usize,
    ) -> Self {
        Self {
            body,
            deadline: Instant::now() + timeout,
            timeout,
            declared,
            max_bytes,
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

    /// The whole body, checked by `prescan` as it arrives, in memory or spooled as `spool` says for
    /// a body of `format`. On a prescan error (or a body that cannot be spooled, or a failed write)
    /// the rest of the body is drained first.
    pub(crate) async fn read(
        mut self,
        mut prescan: Prescan,
        spool: &Spool,
        format: InputFormat,
    ) -> Result<Checked, ServeError> {
        let mut sink = Sink::Memory(Joined::default());
        if self.declared.is_some_and(|n| n > spool.in_memory_bytes)
            && let Err(error) = sink.spool(spool, format)
        {
            self.drain(0).await;
            return Err(error);
        }
        let mut total = 0usize;
        loop {
            let data = match self.next().await? {
                Chunk::Data(data) => data,
                Chunk::End => break,
            };
            total += data.len();
            if total > self.max_bytes {
                return Err(payload_too_large(self.max_bytes));
            }
            if let Err(error) = self.take(&mut sink, data, total, &mut prescan, spool, format) {
                self.drain(total).await;
                return Err(error);
            }
        }
        prescan.finish()?;
        Ok(match sink {
            Sink::Memory(joined) => Checked::InMemory(CheckedBody(joined.into_bytes())),
            Sink::File { file, has_quote } => {
                let (file, _) = file.finish()?;
                Checked::Spooled(SpooledBody { file, has_quote })
            }
        })
    }

    /// Checks the next chunk (`total` bytes so far, with it) and keeps it.
    fn take(
        &self,
        sink: &mut Sink,
        data: Bytes,
        total: usize,
        prescan: &mut Prescan,
        spool: &Spool,
        format: InputFormat,
    ) -> Result<(), ServeError> {
        prescan.feed(&data)?;
        if matches!(sink, Sink::Memory(_))
            && spool.enabled()
            && (total > spool.in_memory_bytes || prescan.more_rows_than(spool.in_memory_rows))
        {
            sink.spool(spool, format)?;
        }
        match sink {
            Sink::Memory(joined) => joined.push(data, self.declared, spool.in_memory_bytes),
            Sink::File { file, has_quote } => {
                *has_quote = *has_quote || memchr::memchr(b'"', &data).is_some();
                file.append(&data)?;
            }
        }
        Ok(())
    }

    /// Reads and discards the rest of the body, up to the limit and the deadline, so that the answer
    /// reaches a client still sending (closing on unread data would reset the connection).
    pub(crate) async fn drain(mut self, mut total: usize) {
        while total <= self.max_bytes {
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
