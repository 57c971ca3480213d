//! Data capture, as SageMaker's `DataCaptureConfig` does it for an endpoint: a sampled share of the
//! successful (2xx) `/invocations` requests, each with its answer, written in SageMaker's files so
//! that `model-image monitor` (and Model Monitor) read them as they read SageMaker's. On AWS
//! SageMaker captures outside the container and this stays off; on the local target, where there is
//! no SageMaker, the orchestrator sets `MODEL_IMAGE_CAPTURE_DIR` to the variant's folder in the
//! local bucket (`<bucket>/capture/<endpoint>/AllTraffic`) and `serve` writes the files itself.
//!
//! Files ([`layout`]): `<dir>/yyyy/mm/dd/hh/<mm>-<ss>-<mmm>-<uuid>.jsonl` by the UTC hour of the
//! inference, a new file per hour per server, one JSON record per line ([`record`]).
//!
//! Capture never slows or fails a request: a request that was answered 2xx and drawn for capture
//! hands its two bodies (shared, not copied, beyond a small one) to a bounded queue and returns; one
//! writer thread ([`writer`]) serializes each record and appends it in one write, so a reader sees it
//! at once. When the queue is full ([`QUEUE_RECORDS`] records or [`QUEUE_BYTES`] of bodies) the
//! record is dropped and counted. Drops, skipped bodies and write errors are logged every minute in
//! which they grew, and in a summary at shutdown; each kind of I/O error is also logged once in full
//! and never reaches a client. On shutdown the writer drains the queue within what is left of the
//! shutdown timeout. Bodies over 6 MB, spooled to temporary files (asynchronous endpoints), are not
//! captured, only counted: a JSON line of one would copy up to 1 GB twice.

mod layout;
mod record;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::limits::MB;
use crate::monitor::window::Timestamp;

pub use record::{CSV_CONTENT_TYPES, JSON_CONTENT_TYPES};

/// Records waiting for the writer at most; one more is dropped.
pub const QUEUE_RECORDS: usize = 1024;
/// Bytes of request and response bodies waiting for the writer at most; a record that would pass it
/// is dropped. Enough for six of the largest captured requests (6 MB) with their answers, and
/// thousands of typical ones.
pub const QUEUE_BYTES: usize = 64 * MB;
/// How often drops, skipped bodies and write errors are logged when they grew.
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// The share of successful invocations captured, 1 to 100 percent (SageMaker's
/// `InitialSamplingPercentage`, where 0 would mean no capture at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SamplingPercent(u8);

impl SamplingPercent {
    /// Every successful invocation: the default.
    pub const ALL: Self = Self(100);

    /// `percent` when it is from 1 to 100.
    pub fn new(percent: u8) -> Option<Self> {
        (1..=100).contains(&percent).then_some(Self(percent))
    }

    pub fn get(self) -> u8 {
        self.0
    }

    /// Whether one invocation is captured: always at 100%, else a fair draw from `rng`.
    pub fn draw(self, rng: &mut impl rand::Rng) -> bool {
        self.0 >= 100 || rng.random_range(0..100u8) < self.0
    }
}

impl Default for SamplingPercent {
    fn default() -> Self {
        Self::ALL
    }
}

/// Reads a capture percentage: a whole number from 1 to 100.
pub fn parse_capture_percent(text: &str) -> Result<SamplingPercent, String> {
    text.trim()
        .parse::<u8>()
        .ok()
        .and_then(SamplingPercent::new)
        .ok_or_else(|| {
            format!("{text:?} is not a whole percentage from 1 to 100 (MODEL_IMAGE_CAPTURE_PERCENT)")
        })
}

/// Data capture of one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureConfig {
    /// The variant's capture folder; hour folders are created below it. `MODEL_IMAGE_CAPTURE_DIR`.
    pub dir: PathBuf,
    /// The share of successful invocations captured. `MODEL_IMAGE_CAPTURE_PERCENT`.
    pub percent: SamplingPercent,
}

/// One answered invocation to capture, as it was sent and answered.
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    /// When the answer was ready.
    pub(crate) time: Timestamp,
    /// The request's `Content-Type`, as sent.
    pub(crate) input_type: String,
    pub(crate) input: Bytes,
    /// The answer's `Content-Type`.
    pub(crate) output_type: &'static str,
    pub(crate) output: Bytes,
}

impl Exchange {
    /// What it holds in the queue.
    fn size(&self) -> usize {
        self.input.len() + self.output.len()
    }
}

/// What the writer thread is told.
#[derive(Debug)]
enum Message {
    Record(Exchange),
    /// Everything queued before has been written; stop.
    Finish,
}

/// What happened to the records, counted by the request side and the writer.
#[derive(Debug, Default)]
struct Counts {
    written: AtomicU64,
    dropped: AtomicU64,
    skipped_large: AtomicU64,
    failed: AtomicU64,
}

/// A reading of [`Counts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Records written.
    pub(crate) written: u64,
    /// Records dropped because the queue was full.
    pub(crate) dropped: u64,
    /// Invocations drawn for capture whose body was spooled (over 6 MB), so not captured.
    pub(crate) skipped_large: u64,
    /// Records lost to an I/O error.
    pub(crate) failed: u64,
}

impl Counts {
    fn tally(&self) -> Tally {
        Tally {
            written: self.written.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            skipped_large: self.skipped_large.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// The request side of a capture: draws, and queues records without waiting.
#[derive(Debug, Clone)]
pub(crate) struct Capture {
    percent: SamplingPercent,
    queue: mpsc::Sender<Message>,
    queued_bytes: Arc<AtomicUsize>,
    max_queued_bytes: usize,
    counts: Arc<Counts>,
}

/// The writer's end of a [`Capture`]'s queue.
pub(crate) struct Queue {
    messages: mpsc::Receiver<Message>,
    queued_bytes: Arc<AtomicUsize>,
}

impl Capture {
    /// A capture of `percent` with a queue of `records` records and `bytes` bytes, and the queue's
    /// other end.
    pub(crate) fn with_queue(percent: SamplingPercent, records: usize, bytes: usize) -> (Self, Queue) {
        let (sender, messages) = mpsc::channel(records);
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let capture = Self {
            percent,
            queue: sender,
            queued_bytes: Arc::clone(&queued_bytes),
            max_queued_bytes: bytes,
            counts: Arc::default(),
        };
        (
            capture,
            Queue {
                messages,
                queued_bytes,
            },
        )
    }

    /// Whether this invocation is captured (the thread's random generator).
    pub(crate) fn draw(&self) -> bool {
        self.percent.draw(&mut rand::rng())
    }

    /// Queues `exchange` for the writer, or drops and counts it when the queue is full.
    pub(crate) fn offer(&self, exchange: Exchange) {
        let size = exchange.size();
        let queued = self.queued_bytes.fetch_add(size, Ordering::Relaxed) + size;
        let sent = queued <= self.max_queued_bytes && self.queue.try_send(Message::Record(exchange)).is_ok();
        if !sent {
            self.queued_bytes.fetch_sub(size, Ordering::Relaxed);
            self.counts.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts an invocation drawn for capture whose body was too large to capture.
    pub(crate) fn skip_large(&self) {
        self.counts.skipped_large.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn tally(&self) -> Tally {
        self.counts.tally()
    }
}

impl Queue {
    /// The next record, `None` once the queue is finished or closed. Blocks: for the writer thread.
    fn next_blocking(&mut self) -> Option<Exchange> {
        match self.messages.blocking_recv()? {
            Message::Record(exchange) => {
                self.queued_bytes.fetch_sub(exchange.size(), Ordering::Relaxed);
                Some(exchange)
            }
            Message::Finish => None,
        }
    }

    /// The next record if one is queued (for tests).
    #[cfg(test)]
    pub(crate) fn try_next(&mut self) -> Option<Exchange> {
        match self.messages.try_recv().ok()? {
            Message::Record(exchange) => {
                self.queued_bytes.fetch_sub(exchange.size(), Ordering::Relaxed);
                Some(exchange)
            }
            Message::Finish => None,
        }
    }
}

/// A running capture: its writer thread and the task that logs its counts. Started before the server
/// accepts connections, finished after it stopped.
pub(crate) struct CaptureService {
    capture: Capture,
    dir: PathBuf,
    writer_done: oneshot::Receiver<()>,
    reporter: tokio::task::JoinHandle<()>,
}

impl CaptureService {
    /// Creates the capture folder (an error names `MODEL_IMAGE_CAPTURE_DIR`) and starts the writer.
    /// Needs a Tokio runtime.
    pub(crate) fn start(config: &CaptureConfig) -> std::io::Result<Self> {
        std::fs::create_dir_all(&config.dir).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot create the data capture directory {} (MODEL_IMAGE_CAPTURE_DIR): {e}",
                    config.dir.display()
                ),
            )
        })?;
        let (capture, queue) = Capture::with_queue(config.percent, QUEUE_RECORDS, QUEUE_BYTES);
        let writer = writer::Writer::new(config.dir.clone(), Arc::clone(&capture.counts));
        let (done, writer_done) = oneshot::channel();
        std::thread::Builder::new()
            .name("data-capture".to_owned())
            .spawn(move || {
                writer.run(queue);
                let _ = done.send(());
            })?;
        let reporter = tokio::spawn(report_periodically(capture.clone()));
        Ok(Self {
            capture,
            dir: config.dir.clone(),
            writer_done,
            reporter,
        })
    }

    /// The handle requests use.
    pub(crate) fn capture(&self) -> Capture {
        self.capture.clone()
    }

    /// Lets the writer write everything queued, until `deadline` at the latest, and logs what was
    /// captured. Records still queued at the deadline are lost (and logged).
    pub(crate) async fn finish(self, deadline: Instant) {
        self.reporter.abort();
        let queue = self.capture.queue.clone();
        let drained = tokio::time::timeout_at(deadline, async {
            // Fails only when the writer has already stopped, which `writer_done` then says.
            let _ = queue.send(Message::Finish).await;
            let _ = self.writer_done.await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                queued = queue.max_capacity() - queue.capacity(),
                "data capture: the shutdown deadline came before the queued records were written; they are lost"
            );
        }
        let tally = self.capture.tally();
        let dir = self.dir.display();
        let (written, dropped, skipped, failed) =
            (tally.written, tally.dropped, tally.skipped_large, tally.failed);
        if dropped + skipped + failed > 0 {
            tracing::warn!(%dir, written, dropped_queue_full = dropped, skipped_over_6_mb = skipped, failed, "data capture stopped");
        } else {
            tracing::info!(%dir, written, dropped_queue_full = dropped, skipped_over_6_mb = skipped, failed, "data capture stopped");
        }
    }
}

/// Every [`REPORT_EVERY`], logs the counts of records not captured when they grew.
async fn report_periodically(capture: Capture) {
    let mut ticks = tokio::time::interval_at(Instant::now() + REPORT_EVERY, REPORT_EVERY);
    let mut reported = Tally::default();
    loop {
        ticks.tick().await;
        let tally = capture.tally();
        let grew = (tally.dropped, tally.skipped_large, tally.failed)
            != (reported.dropped, reported.skipped_large, reported.failed);
        if grew {
            tracing::warn!(
                written = tally.written,
                dropped_queue_full = tally.dropped,
                skipped_over_6_mb = tally.skipped_large,
                failed = tally.failed,
                "data capture: not every invocation drawn was captured (totals since start)"
            );
        }
        reported = tally;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn exchange(input: &'static [u8], output: &'static [u8]) -> Exchange {
        Exchange {
            time: Timestamp::parse("2026-12-04T01:02:03Z").unwrap(),
            input_type: "text/csv".to_owned(),
            input: Bytes::from_static(input),
            output_type: "application/json",
            output: Bytes::from_static(output),
        }
    }

    #[test]
    fn percentages_are_whole_numbers_from_1_to_100() {
        assert_eq!(parse_capture_percent("100"), Ok(SamplingPercent::ALL));
        assert_eq!(parse_capture_percent(" 1 ").map(SamplingPercent::get), Ok(1));
        for bad in ["0", "101", "-5", "12.5", "", "all", "256"] {
            let error = parse_capture_percent(bad).unwrap_err();
            assert!(error.contains("from 1 to 100"), "{bad}: {error}");
        }
        assert_eq!(SamplingPercent::default(), SamplingPercent::ALL);
    }

    #[test]
    fn every_invocation_is_drawn_at_100_percent() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        assert!((0..1000).all(|_| SamplingPercent::ALL.draw(&mut rng)));
    }

    /// 10,000 seeded draws at each percentage land within five standard deviations of the binomial
    /// mean (a bound a fair draw misses with probability under 1e-6).
    #[test]
    fn draws_capture_the_share_asked_for() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20);
        let draws = 10_000.0;
        for percent in [1, 10, 37, 50, 99] {
            let share = SamplingPercent::new(percent).unwrap();
            let captured = (0..10_000).filter(|_| share.draw(&mut rng)).count() as f64;
            let p = f64::from(percent) / 100.0;
            let (mean, sd) = (draws * p, (draws * p * (1.0 - p)).sqrt());
            assert!(
                (captured - mean).abs() <= 5.0 * sd,
                "{percent}%: {captured} of 10,000, expected {mean} ± {}",
                5.0 * sd
            );
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_records() {
        let (capture, mut queue) = Capture::with_queue(SamplingPercent::ALL, 2, 1024);
        for _ in 0..5 {
            capture.offer(exchange(b"1,2\n", b"{}"));
        }
        assert_eq!(capture.tally().dropped, 3);
        assert!(queue.try_next().is_some() && queue.try_next().is_some());
        assert!(queue.try_next().is_none());
        // Room again once the writer took them.
        capture.offer(exchange(b"1,2\n", b"{}"));
        assert!(queue.try_next().is_some());
        assert_eq!(capture.tally().dropped, 3);
    }

    /// Everything queued before shutdown is in the files once `finish` returns.
    #[tokio::test]
    async fn finishing_writes_every_queued_record() {
        let dir = tempfile::tempdir().unwrap();
        let config = CaptureConfig {
            dir: dir.path().join("capture/iot/AllTraffic"),
            percent: SamplingPercent::ALL,
        };
        let service = CaptureService::start(&config).unwrap();
        let capture = service.capture();
        for _ in 0..200 {
            capture.offer(exchange(b"1,2\n", b"{}"));
        }
        service.finish(Instant::now() + Duration::from_secs(600)).await;
        let tally = capture.tally();
        let files = crate::monitor::capture::capture_files(&config.dir).unwrap();
        let lines: usize = files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap().lines().count())
            .sum();
        assert_eq!((tally.written, tally.dropped, tally.failed), (200, 0, 0));
        assert_eq!(lines, 200);
        assert_eq!(files.len(), 1, "one hour, one file");
    }

    #[test]
    fn a_queue_full_of_bytes_drops_and_counts_records() {
        let (capture, mut queue) = Capture::with_queue(SamplingPercent::ALL, 100, 10);
        capture.offer(exchange(b"12345", b"678")); // 8 bytes queued
        capture.offer(exchange(b"123", b"")); // would be 11
        capture.offer(exchange(b"12", b"")); // 10
        assert_eq!(capture.tally().dropped, 1);
        assert_eq!(queue.try_next().unwrap().input, &b"12345"[..]);
        capture.offer(exchange(b"1234567", b"")); // 2 + 7
        assert_eq!(capture.tally().dropped, 1);
        assert_eq!(queue.try_next().unwrap().input, &b"12"[..]);
        assert_eq!(queue.try_next().unwrap().input, &b"1234567"[..]);
    }
}
