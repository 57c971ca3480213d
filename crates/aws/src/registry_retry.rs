//! Retries of the registry requests of the image push, which the AWS SDK's retries do not cover:
//! each step (log in, one blob, the manifest) is repeated on a transient failure (a 5xx or 429, a
//! connection refused or reset, a timeout), after an exponential backoff with full jitter, and each
//! attempt is held to a timeout.

use std::future::Future;
use std::time::Duration;

use oci_client::errors::OciDistributionError;

/// How a registry step is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The backoff cap before the first retry; doubled for each further one.
    pub initial: Duration,
    /// The largest backoff cap.
    pub max: Duration,
    /// How long one attempt may take in all (a layer upload of tens of MB included).
    pub attempt_timeout: Duration,
}

/// Five attempts with backoffs capped at 0.5, 1, 2 and 4 s (each a random fraction of its cap, so
/// parallel pushes do not retry in step); a blob attempt may take 10 minutes, enough for a 100 MB
/// layer over a slow uplink and short enough not to hang a run on a stalled upload.
pub const PUSH_BACKOFF: Backoff = Backoff {
    attempts: 5,
    initial: Duration::from_millis(500),
    max: Duration::from_secs(8),
    attempt_timeout: Duration::from_secs(10 * 60),
};

/// Connecting to the registry: it answers in milliseconds; a connection not made in 10 s is
/// retried on a new one.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest silence while reading a response: a registry still hashing a large upload answers
/// within seconds.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

impl Backoff {
    /// The cap of the backoff after failed attempt `failed` (1 for the first failure).
    pub fn cap(&self, failed: u32) -> Duration {
        let doublings = failed.saturating_sub(1).min(16);
        self.initial.saturating_mul(1 << doublings).min(self.max)
    }

    /// The sleep after failed attempt `failed`: a uniformly random fraction of its cap.
    fn delay(&self, failed: u32) -> Duration {
        self.cap(failed).mul_f64(rand::random::<f64>())
    }
}

/// Why a registry step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("the registry did not answer within {0:?}")]
    TimedOut(Duration),
    #[error(transparent)]
    Registry(#[from] OciDistributionError),
    /// Refused as unauthenticated, after which the step logged in again. oci-client takes a `/v2/`
    /// answer without a challenge (a 503 or 429 on the way) for "this registry needs no
    /// credentials" and sends the next request without them: a 401 is then a transient failure
    /// of the login, and the step is tried again.
    #[error("refused as unauthenticated (logged in again)")]
    LoggedInAgain(#[source] OciDistributionError),
}

impl StepError {
    /// Whether the same request may work later.
    pub fn is_transient(&self) -> bool {
        match self {
            StepError::TimedOut(_) | StepError::LoggedInAgain(_) => true,
            StepError::Registry(error) => is_transient(error),
        }
    }
}

/// Whether a registry error is worth retrying: a 5xx or 429 answer, a failed or reset connection, a
/// timeout, a response cut short. Refusals (401, 403, 4xx envelopes) and protocol violations are not.
pub fn is_transient(error: &OciDistributionError) -> bool {
    let retried_status = |code: u16| code == 429 || (500..=599).contains(&code);
    match error {
        OciDistributionError::ServerError { code, .. } => retried_status(*code),
        OciDistributionError::RequestError(error) => error.status().map(|s| s.as_u16()).map_or(
            error.is_timeout() || error.is_connect() || error.is_request() || error.is_body(),
            retried_status,
        ),
        OciDistributionError::IoError(_) => true,
        _ => false,
    }
}

/// Whether the registry refused a request as unauthenticated (401).
pub fn is_unauthorized(error: &OciDistributionError) -> bool {
    match error {
        OciDistributionError::ServerError { code, .. } => *code == 401,
        OciDistributionError::UnauthorizedError { .. } => true,
        OciDistributionError::RequestError(error) => error.status().is_some_and(|s| s.as_u16() == 401),
        _ => false,
    }
}

/// Runs `attempt` until it succeeds, fails for good, or `backoff.attempts` are spent; each attempt
/// is held to `backoff.attempt_timeout`. `step` names it in the log.
pub async fn retry<T, E, F, Fut>(step: &str, backoff: Backoff, mut attempt: F) -> Result<T, StepError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Into<StepError>,
{
    let mut failed = 0;
    loop {
        let result = match tokio::time::timeout(backoff.attempt_timeout, attempt()).await {
            Ok(result) => result.map_err(Into::into),
            Err(_) => Err(StepError::TimedOut(backoff.attempt_timeout)),
        };
        match result {
            Ok(value) => return Ok(value),
            Err(error) => {
                failed += 1;
                if !error.is_transient() || failed >= backoff.attempts {
                    return Err(error);
                }
                let delay = backoff.delay(failed);
                tracing::warn!(step, failed, ?delay, %error, "registry request failed; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_caps_double_up_to_the_maximum() {
        let caps: Vec<Duration> = (1..=6).map(|n| PUSH_BACKOFF.cap(n)).collect();
        let ms = |n| Duration::from_millis(n);
        assert_eq!(caps, [ms(500), ms(1000), ms(2000), ms(4000), ms(8000), ms(8000)]);
        for failed in 1..=6 {
            let delay = PUSH_BACKOFF.delay(failed);
            assert!(delay <= PUSH_BACKOFF.cap(failed), "{delay:?}");
        }
        assert_eq!(PUSH_BACKOFF.cap(u32::MAX), PUSH_BACKOFF.max);
    }

    fn server_error(code: u16) -> OciDistributionError {
        OciDistributionError::ServerError {
            code,
            url: "http://127.0.0.1:5000/v2/".into(),
            message: String::new(),
        }
    }

    #[test]
    fn server_errors_and_throttling_are_transient_refusals_are_not() {
        assert!(is_transient(&server_error(503)));
        assert!(is_transient(&server_error(500)));
        assert!(is_transient(&server_error(429)));
        assert!(!is_transient(&server_error(400)));
        assert!(!is_transient(&server_error(404)));
        assert!(!is_transient(&OciDistributionError::UnauthorizedError {
            url: "http://127.0.0.1:5000/v2/".into()
        }));
        assert!(is_transient(&OciDistributionError::IoError(
            std::io::ErrorKind::ConnectionReset.into()
        )));
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_and_permanent_ones_are_not() {
        let mut calls = 0;
        let done = retry("test", PUSH_BACKOFF, || {
            calls += 1;
            let fail = calls < 3;
            async move { if fail { Err(server_error(503)) } else { Ok(calls) } }
        })
        .await
        .expect("third time lucky");
        assert_eq!(done, 3);

        let mut calls = 0;
        let refused = retry("test", PUSH_BACKOFF, || {
            calls += 1;
            async { Err::<(), _>(server_error(403)) }
        })
        .await
        .expect_err("refused");
        assert!(!refused.is_transient());
        assert_eq!(calls, 1);

        let mut calls = 0;
        let spent = retry("test", PUSH_BACKOFF, || {
            calls += 1;
            async { Err::<(), _>(server_error(502)) }
        })
        .await
        .expect_err("every attempt failed");
        assert!(spent.is_transient());
        assert_eq!(calls, PUSH_BACKOFF.attempts);
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_hangs_times_out_and_is_retried() {
        let mut calls = 0;
        let done = retry("test", PUSH_BACKOFF, || {
            calls += 1;
            let hang = calls == 1;
            async move {
                if hang {
                    std::future::pending::<()>().await;
                }
                Ok::<_, OciDistributionError>(calls)
            }
        })
        .await
        .expect("the second attempt answers");
        assert_eq!(done, 2);
    }
}
