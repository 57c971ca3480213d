//! A bounded load test of the real `model-image serve` on loopback: single-row CSV requests at a fixed
//! rate for a fixed duration (the serving benchmark's load generator, open loop), once on a quiet
//! server and once while 300 slow clients dribble partial headers at it, reconnecting whenever the
//! server closes them. Throughput, p50/p99, errors and the server's memory are printed side by side
//! (figures, not timed assertions); the test asserts only that every normal request succeeds and
//! that the server closes every slow connection (within a generous deadline, to catch a hang).
//!
//! Reduced form under `cargo test`; the full form, in release like the benchmark:
//! `LOAD_SECONDS=30 LOAD_RATE=5000 LOAD_HEADER_TIMEOUT=10 cargo test --release -p model-image --test load -- --nocapture`
//! (`LOAD_CLIENTS` 4, `LOAD_SLOW_CLIENTS` 300, `LOAD_ROWS` 1 row per request by default;
//! `LOAD_RATE=0` runs closed loop, each client sending as fast as it is answered, for throughput).

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::loadgen::{self, Load, Outcome};
use support::{Server, mib, trained};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What one slow client saw of one connection.
#[derive(Debug)]
enum SlowEnd {
    /// The server closed it this long after the first header byte.
    Closed(Duration),
    /// Still open at the deadline: a hang.
    StillOpen,
}

/// Opens a connection, sends the start of a request and then one header byte every `pace` until the
/// server closes it or `deadline` passes.
async fn slow_connection(addr: SocketAddr, pace: Duration, deadline: tokio::time::Instant) -> SlowEnd {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return SlowEnd::Closed(Duration::ZERO);
    };
    let first_byte = Instant::now();
    let head = format!("POST /invocations HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/csv\r\nX-Slow: ");
    if stream.write_all(head.as_bytes()).await.is_err() {
        return SlowEnd::Closed(first_byte.elapsed());
    }
    let mut buf = [0u8; 512];
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => {
                // EOF or reset: closed. Any bytes would be an answer to a request never completed.
                if matches!(read, Ok(0) | Err(_)) {
                    return SlowEnd::Closed(first_byte.elapsed());
                }
            }
            () = tokio::time::sleep(pace) => {
                if stream.write_all(b"x").await.is_err() {
                    return SlowEnd::Closed(first_byte.elapsed());
                }
            }
            () = tokio::time::sleep_until(deadline) => return SlowEnd::StillOpen,
        }
    }
}

/// Keeps `clients` slow connections open until `stop`, each replaced when the server closes it.
fn slow_clients(
    addr: SocketAddr,
    clients: usize,
    pace: Duration,
    stop: Arc<AtomicBool>,
    hang_after: Duration,
) -> std::thread::JoinHandle<Vec<SlowEnd>> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let tasks: Vec<_> = (0..clients)
                .map(|_| {
                    let stop = Arc::clone(&stop);
                    tokio::spawn(async move {
                        let mut ends = Vec::new();
                        loop {
                            let deadline = tokio::time::Instant::now() + hang_after;
                            let end = slow_connection(addr, pace, deadline).await;
                            let hung = matches!(end, SlowEnd::StillOpen);
                            ends.push(end);
                            if hung || stop.load(Ordering::Relaxed) {
                                return ends;
                            }
                        }
                    })
                })
                .collect();
            let mut ends = Vec::new();
            for task in tasks {
                ends.extend(task.await.unwrap());
            }
            ends
        })
    })
}

struct Run {
    name: String,
    outcome: Outcome,
    rss_start_kib: u64,
    rss_end_kib: u64,
}

fn measure(server: &Server, name: String, load: &Load) -> Run {
    let rss_start_kib = server.memory_kib("VmRSS");
    let outcome = loadgen::run(load);
    Run {
        name,
        outcome,
        rss_start_kib,
        rss_end_kib: server.memory_kib("VmRSS"),
    }
}

#[test]
fn steady_load_with_and_without_300_slow_clients() {
    let seconds: f64 = support::env_number("LOAD_SECONDS", 3.0);
    let rate: f64 = support::env_number("LOAD_RATE", 1000.0);
    let clients: usize = support::env_number("LOAD_CLIENTS", 4);
    let slow: usize = support::env_number("LOAD_SLOW_CLIENTS", 300);
    let header_timeout: f64 = support::env_number("LOAD_HEADER_TIMEOUT", 2.0);
    let rows: usize = support::env_number("LOAD_ROWS", 1).max(1);
    let trained = trained();
    let header_timeout_text = header_timeout.to_string();
    let mut server = Server::start(
        trained,
        &[("MODEL_IMAGE_HEADER_TIMEOUT", header_timeout_text.as_str())],
    );
    let requests: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..1000)
            .map(|i| {
                let body: String = (0..rows)
                    .map(|r| format!("{}\n", trained.lines[(i * rows + r) % trained.lines.len()]))
                    .collect();
                loadgen::csv_request(server.addr, &body)
            })
            .collect(),
    );
    let load = Load {
        addr: server.addr,
        requests,
        clients,
        warmup: Duration::from_millis(500),
        duration: Duration::from_secs_f64(seconds),
        rate: (rate > 0.0).then_some(rate),
    };

    let quiet = measure(&server, "quiet".to_owned(), &load);

    let stop = Arc::new(AtomicBool::new(false));
    let hang_after = Duration::from_secs_f64(header_timeout) + Duration::from_secs(30);
    let slow_handle = slow_clients(
        server.addr,
        slow,
        Duration::from_millis(200),
        Arc::clone(&stop),
        hang_after,
    );
    // Let the slow connections open before the measured load starts.
    std::thread::sleep(Duration::from_millis(500));
    let slowed = measure(&server, format!("{slow} slow clients"), &load);
    stop.store(true, Ordering::Relaxed);
    let ends = slow_handle.join().unwrap();
    assert!(server.alive(), "the server exited: {}", server.log_text());
    assert_eq!(server.ping(), Some(200));

    let pacing = if rate > 0.0 {
        format!("{rate} requests/s in total (open loop)")
    } else {
        "closed loop".to_owned()
    };
    println!(
        "load: {clients} clients, {pacing}, {rows}-row CSV requests, {seconds} s after 0.5 s warm-up; \
         header timeout {header_timeout} s"
    );
    println!(
        "{:<18} {:>8} {:>8} {:>8} {:>7} {:>14} {:>12}",
        "scenario", "req/s", "p50 ms", "p99 ms", "errors", "RSS start MiB", "RSS end MiB"
    );
    for run in [&quiet, &slowed] {
        let o = &run.outcome;
        println!(
            "{:<18} {:>8.0} {:>8.3} {:>8.3} {:>7} {:>14.1} {:>12.1}",
            run.name,
            o.requests_per_second(),
            o.quantile_ms(0.5),
            o.quantile_ms(0.99),
            o.errors,
            mib(run.rss_start_kib),
            mib(run.rss_end_kib),
        );
    }
    let mut closed: Vec<Duration> = ends
        .iter()
        .filter_map(|e| match e {
            SlowEnd::Closed(after) => Some(*after),
            SlowEnd::StillOpen => None,
        })
        .collect();
    closed.sort();
    let hung = ends.len() - closed.len();
    if let (Some(first), Some(last)) = (closed.first(), closed.last()) {
        println!(
            "slow connections: {} opened, {} closed by the server, {hung} still open; closed after \
             min {:.2} s, median {:.2} s, max {:.2} s from their first byte",
            ends.len(),
            closed.len(),
            first.as_secs_f64(),
            closed[closed.len() / 2].as_secs_f64(),
            last.as_secs_f64(),
        );
    }

    for run in [&quiet, &slowed] {
        assert_eq!(
            run.outcome.errors, 0,
            "{}: normal requests failed: {:?}",
            run.name, run.outcome.first_error
        );
        assert!(run.outcome.ok > 0, "{}: no request succeeded", run.name);
    }
    assert_eq!(hung, 0, "{hung} slow connections were never closed");
    assert!(ends.len() >= slow, "every slow client connected");
}
