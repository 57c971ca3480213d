//! How the server protects itself from slow and hostile clients: the header, body and idle timeouts
//! each connection is held to, the shutdown deadline, and how many `/invocations` requests may be in
//! flight at once. SageMaker passes none of these; the defaults suit an instance serving only this
//! container, and each can be overridden with the `MODEL_IMAGE_*` environment variable named on its
//! field (read by the binary, `model-image serve --help`).

use std::time::Duration;

/// In-flight `/invocations` requests allowed per core by default.
pub const IN_FLIGHT_PER_CORE: usize = 8;

/// Timeouts and the in-flight limit of one server.
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
    /// `Retry-After` at once. Each holds at most a 6 MB body and its rows' results, so this bounds the
    /// server's memory. `MODEL_IMAGE_MAX_IN_FLIGHT`.
    pub max_in_flight: usize,
}

impl ServeLimits {
    /// The defaults for a machine with `cores` cores: 10 s headers, 30 s bodies, 60 s idle, 30 s to
    /// shut down, [`IN_FLIGHT_PER_CORE`] requests per core in flight.
    pub fn for_cores(cores: usize) -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(30),
            max_in_flight: IN_FLIGHT_PER_CORE * cores.max(1),
        }
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
    fn seconds_are_positive_decimals() {
        assert_eq!(parse_seconds("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_seconds(" 0.25 "), Ok(Duration::from_millis(250)));
        for bad in ["0", "-1", "soon", "NaN", "inf", "1e300"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }
}
