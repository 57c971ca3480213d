//! How the server protects itself from slow and hostile clients: the header, body and idle timeouts
//! each connection is held to, the shutdown deadline, how many `/invocations` requests may be in
//! flight at once, and how large a request body may be (with where the bodies too large to hold in
//! memory are spooled). SageMaker passes none of these; the defaults suit a realtime endpoint on an
//! instance serving only this container, and each can be overridden with the `MODEL_IMAGE_*`
//! environment variable named on its field (read by the binary, `model-image serve --help`). An
//! asynchronous endpoint, whose requests SageMaker reads from S3 (up to 1 GB), needs
//! `MODEL_IMAGE_MAX_PAYLOAD_MB=1024` and a body timeout long enough for such a body.

use std::path::PathBuf;
use std::time::Duration;

use super::prescan::MAX_ROWS_PER_REQUEST;

/// In-flight `/invocations` requests allowed per core by default.
pub const IN_FLIGHT_PER_CORE: usize = 8;

/// SageMaker's `MaxPayloadInMB` for realtime endpoints: the default body limit, and the largest body
/// ever held in memory (larger ones, when the limit is raised, are spooled to a temporary file).
pub const MAX_PAYLOAD_IN_MB: usize = 6;

/// The largest body limit that can be configured: SageMaker's 1 GB for asynchronous endpoints.
pub const ASYNC_MAX_PAYLOAD_IN_MB: usize = 1024;

/// Bytes in one MB as SageMaker counts payloads (MiB).
pub(crate) const MB: usize = 1024 * 1024;

/// Timeouts, the in-flight limit and the body limit of one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeLimits {
    /// From a request's first byte until its headers are complete; a client slower than this
    /// (slowloris) has its connection closed. `MODEL_IMAGE_HEADER_TIMEOUT`, seconds.
    pub header_timeout: Duration,
    /// From complete headers until the whole request body has arrived (else 408), and from a
    /// response being ready until the client has taken all of it (else the connection is closed).
    /// `MODEL_IMAGE_BODY_TIMEOUT`, seconds.
    pub body_timeout: Duration,
    /// How long a connection may stay open between requests (or before its first) with nothing sent.
    /// `MODEL_IMAGE_IDLE_TIMEOUT`, seconds.
    pub idle_timeout: Duration,
    /// After SIGTERM: how long in-flight requests may take to finish before the remaining connections
    /// are closed and the server exits. `MODEL_IMAGE_SHUTDOWN_TIMEOUT`, seconds.
    pub shutdown_timeout: Duration,
    /// `/invocations` requests being read, scored or written at once; one more is answered 503 with
    /// `Retry-After` at once. Each holds at most a 6 MB body and its rows' results, or (spooled) a
    /// block of the body and one chunk of rows, so this bounds the server's memory (and, for
    /// spooled bodies, its temporary files). `MODEL_IMAGE_MAX_IN_FLIGHT`.
    pub max_in_flight: usize,
    /// The largest request body in MB, from 1 to [`ASYNC_MAX_PAYLOAD_IN_MB`]; a larger one gets 413.
    /// Bodies up to [`MAX_PAYLOAD_IN_MB`] (and [`MAX_ROWS_PER_REQUEST`] rows) are read into memory;
    /// larger CSV and JSON Lines bodies are spooled to a temporary file and scored from it a chunk
    /// of rows at a time (a single JSON document stays limited to 6 MB). The row limit grows with
    /// it ([`ServeLimits::max_rows_per_request`]). `MODEL_IMAGE_MAX_PAYLOAD_MB`.
    pub max_payload_mb: usize,
    /// Where spooled bodies and their predictions are written, as temporary files unlinked at once
    /// (nothing is left behind, even if the server is killed); `None` is [`std::env::temp_dir`]
    /// (`$TMPDIR`, else `/tmp`). Used only when `max_payload_mb` is over [`MAX_PAYLOAD_IN_MB`].
    /// `MODEL_IMAGE_SPOOL_DIR`.
    pub spool_dir: Option<PathBuf>,
}

impl ServeLimits {
    /// The defaults for a machine with `cores` cores: 10 s headers, 30 s bodies, 60 s idle, 30 s to
    /// shut down, [`IN_FLIGHT_PER_CORE`] requests per core in flight, bodies up to SageMaker's
    /// realtime [`MAX_PAYLOAD_IN_MB`] (so nothing is spooled).
    pub fn for_cores(cores: usize) -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(30),
            max_in_flight: IN_FLIGHT_PER_CORE * cores.max(1),
            max_payload_mb: MAX_PAYLOAD_IN_MB,
            spool_dir: None,
        }
    }

    /// [`Self::max_payload_mb`] in bytes.
    pub fn max_payload_bytes(&self) -> usize {
        self.max_payload_mb.saturating_mul(MB)
    }

    /// Rows one request may carry: [`MAX_ROWS_PER_REQUEST`] at the realtime limit and below, and as
    /// many more as a larger body limit holds in proportion (17,066,666 at 1024 MB). The limit bounds
    /// what a request costs: in memory, its scores and answer; spooled, the temporary file of its
    /// answer, which stays about as large as the body however narrow the rows.
    pub fn max_rows_per_request(&self) -> usize {
        MAX_ROWS_PER_REQUEST.saturating_mul(self.max_payload_mb.max(MAX_PAYLOAD_IN_MB)) / MAX_PAYLOAD_IN_MB
    }

    /// Where temporary files go: [`Self::spool_dir`], else the system's temporary directory.
    pub fn spool_dir(&self) -> PathBuf {
        self.spool_dir.clone().unwrap_or_else(std::env::temp_dir)
    }
}

impl Default for ServeLimits {
    /// [`ServeLimits::for_cores`] with this machine's available parallelism.
    fn default() -> Self {
        Self::for_cores(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

/// Reads a timeout given in seconds (`10`, `0.5`): positive and finite.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if seconds.is_nan() || seconds <= 0.0 {
        return Err(format!("{text:?}: a timeout must be more than 0 seconds"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} seconds is too long"))
}

/// A size for a message: whole MB as `6 MB`, anything else in bytes.
pub(crate) fn size_text(bytes: usize) -> String {
    if bytes >= MB && bytes.is_multiple_of(MB) {
        format!("{} MB", bytes / MB)
    } else {
        format!("{bytes} bytes")
    }
}

/// Reads a body limit in MB (`6`, `1024`): a whole number from 1 to [`ASYNC_MAX_PAYLOAD_IN_MB`].
pub fn parse_payload_mb(text: &str) -> Result<usize, String> {
    let range = format!(
        "a whole number of MB from 1 to {ASYNC_MAX_PAYLOAD_IN_MB} (MODEL_IMAGE_MAX_PAYLOAD_MB; \
         {MAX_PAYLOAD_IN_MB}: SageMaker's realtime limit, {ASYNC_MAX_PAYLOAD_IN_MB}: asynchronous \
         endpoints)"
    );
    match text.trim().parse::<usize>() {
        Ok(mb) if (1..=ASYNC_MAX_PAYLOAD_IN_MB).contains(&mb) => Ok(mb),
        _ => Err(format!("{text:?} is not {range}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_scale_the_in_flight_limit_with_cores() {
        assert_eq!(ServeLimits::for_cores(2).max_in_flight, 16);
        assert_eq!(ServeLimits::for_cores(0).max_in_flight, IN_FLIGHT_PER_CORE);
        assert_eq!(ServeLimits::for_cores(4).header_timeout, Duration::from_secs(10));
    }

    #[test]
    fn the_payload_limit_is_whole_mb_up_to_the_async_limit_and_scales_the_row_limit() {
        assert_eq!(parse_payload_mb("6"), Ok(6));
        assert_eq!(parse_payload_mb(" 1024 "), Ok(1024));
        assert_eq!(parse_payload_mb("1"), Ok(1));
        for bad in ["0", "1025", "-6", "6.5", "1e3", "", "lots"] {
            let error = parse_payload_mb(bad).unwrap_err();
            assert!(error.contains("from 1 to 1024"), "{bad}: {error}");
        }
        let limits = |max_payload_mb| ServeLimits {
            max_payload_mb,
            ..ServeLimits::for_cores(1)
        };
        assert_eq!(ServeLimits::for_cores(1).max_payload_bytes(), 6 * 1024 * 1024);
        assert_eq!(limits(1).max_rows_per_request(), MAX_ROWS_PER_REQUEST);
        assert_eq!(limits(6).max_rows_per_request(), MAX_ROWS_PER_REQUEST);
        assert_eq!(limits(12).max_rows_per_request(), 2 * MAX_ROWS_PER_REQUEST);
        assert_eq!(limits(1024).max_rows_per_request(), 17_066_666);
        assert_eq!(limits(1024).max_payload_bytes(), 1 << 30);
    }

    #[test]
    fn seconds_are_positive_decimals() {
        assert_eq!(parse_seconds("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_seconds(" 0.25 "), Ok(Duration::from_millis(250)));
        for bad in ["0", "-1", "soon", "NaN", "inf", "1e300"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }
}
