//! A closed-loop HTTP/1.1 load generator on plain `std::net::TcpStream`s: `clients` threads, each
//! with one keep-alive connection, send a request, read the whole response (Content-Length), and send
//! the next, for a fixed duration after a warm-up. A server that answers `Connection: close` (as
//! gunicorn's sync workers do) gets a new connection for the next request, and that connect counts in
//! the request's latency, as it does for a real client.
//!
//! With a `rate`, the clients share a fixed schedule instead (open loop, each client sending every
//! `clients / rate` seconds) and latency counts from a request's scheduled time, so a server that
//! falls behind is charged for the wait it causes. Also compiled into model-image's load test
//! (tests/load.rs).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Upper bound on any single exchange, so a stuck server cannot hang the benchmark.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// One load scenario against one server.
pub struct Load {
    pub addr: SocketAddr,
    /// Complete HTTP requests, cycled through by the clients.
    pub requests: Arc<Vec<Vec<u8>>>,
    pub clients: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Requests per second across all clients; `None`: each client sends as fast as it is answered.
    pub rate: Option<f64>,
}

/// What a scenario measured (after the warm-up only).
#[derive(Debug, Default)]
pub struct Outcome {
    pub ok: u64,
    pub errors: u64,
    pub connects: u64,
    /// Latency of each successful request started inside the measured window, in ns, sorted.
    pub latencies_ns: Vec<u64>,
    pub seconds: f64,
    pub first_error: Option<String>,
}

impl Outcome {
    pub fn requests_per_second(&self) -> f64 {
        self.ok as f64 / self.seconds
    }

    /// The `q` quantile (0..=1) of latency in milliseconds (nearest rank).
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies_ns.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * self.latencies_ns.len() as f64).ceil() as usize).clamp(1, self.latencies_ns.len());
        self.latencies_ns[rank - 1] as f64 / 1e6
    }
}

/// Builds a `POST /invocations` request with a CSV body.
pub fn csv_request(addr: SocketAddr, body: &str) -> Vec<u8> {
    format!(
        "POST /invocations HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/csv\r\nAccept: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Runs the scenario; every client stops by itself at the end of the duration.
pub fn run(load: &Load) -> Outcome {
    let start = Instant::now();
    let measure_from = start + load.warmup;
    let end = measure_from + load.duration;
    let handles: Vec<_> = (0..load.clients)
        .map(|client| {
            let requests = Arc::clone(&load.requests);
            let (addr, clients) = (load.addr, load.clients);
            // Clients start staggered across one interval.
            let schedule = load.rate.map(|rate| {
                let interval = Duration::from_secs_f64(clients as f64 / rate);
                (start + interval.mul_f64(client as f64 / clients as f64), interval)
            });
            std::thread::spawn(move || {
                client_loop(addr, &requests, client, clients, schedule, measure_from, end)
            })
        })
        .collect();
    let mut total = Outcome {
        seconds: load.duration.as_secs_f64(),
        ..Outcome::default()
    };
    for handle in handles {
        let part = handle.join().expect("load client panicked");
        total.ok += part.ok;
        total.errors += part.errors;
        total.connects += part.connects;
        total.latencies_ns.extend(part.latencies_ns);
        total.first_error = total.first_error.or(part.first_error);
    }
    total.latencies_ns.sort_unstable();
    total
}

fn client_loop(
    addr: SocketAddr,
    requests: &[Vec<u8>],
    client: usize,
    clients: usize,
    schedule: Option<(Instant, Duration)>,
    measure_from: Instant,
    end: Instant,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut connection: Option<Connection> = None;
    let mut body = Vec::with_capacity(64 * 1024);
    let mut next = client;
    let mut sent = 0u32;
    loop {
        let started = match schedule {
            Some((first, interval)) => {
                let due = first + interval * sent;
                sent += 1;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                due
            }
            None => Instant::now(),
        };
        if started >= end {
            break;
        }
        let measured = started >= measure_from;
        let request = &requests[next % requests.len()];
        next += clients;
        let result = exchange(addr, &mut connection, request, &mut body, &mut outcome.connects);
        let latency = started.elapsed();
        match result {
            Ok(()) if measured => {
                outcome.ok += 1;
                outcome.latencies_ns.push(latency.as_nanos() as u64);
            }
            Ok(()) => {}
            Err(error) => {
                connection = None;
                if measured {
                    outcome.errors += 1;
                    outcome.first_error.get_or_insert(error);
                }
                // Do not spin on a refusing server.
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    outcome
}

struct Connection {
    reader: BufReader<TcpStream>,
}

fn connect(addr: SocketAddr) -> std::io::Result<Connection> {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(Connection {
        reader: BufReader::with_capacity(64 * 1024, stream),
    })
}

/// Sends one request and reads its response, reconnecting once if a kept-alive connection turns out
/// to be closed. Non-200 answers are errors.
fn exchange(
    addr: SocketAddr,
    connection: &mut Option<Connection>,
    request: &[u8],
    body: &mut Vec<u8>,
    connects: &mut u64,
) -> Result<(), String> {
    for attempt in 0..2 {
        let reused = connection.is_some();
        if connection.is_none() {
            *connection = Some(connect(addr).map_err(|e| format!("connect: {e}"))?);
            *connects += 1;
        }
        let conn = connection.as_mut().expect("connected above");
        match send_and_receive(conn, request, body) {
            Ok((status, keep_alive)) => {
                if !keep_alive {
                    *connection = None;
                }
                return if status == 200 {
                    Ok(())
                } else {
                    Err(format!(
                        "HTTP {status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    ))
                };
            }
            Err(Failure::Stale) if reused && attempt == 0 => *connection = None,
            Err(Failure::Stale) => return Err("connection closed before a response".to_string()),
            Err(Failure::Io(e)) => return Err(e),
        }
    }
    Err("connection closed before a response".to_string())
}

enum Failure {
    /// The peer closed before sending a byte of the response (a kept-alive connection it dropped).
    Stale,
    Io(String),
}

fn send_and_receive(
    conn: &mut Connection,
    request: &[u8],
    body: &mut Vec<u8>,
) -> Result<(u16, bool), Failure> {
    if let Err(e) = conn.reader.get_mut().write_all(request) {
        return Err(match e.kind() {
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => Failure::Stale,
            _ => Failure::Io(format!("write: {e}")),
        });
    }
    let mut line = String::new();
    match conn.reader.read_line(&mut line) {
        Ok(0) => return Err(Failure::Stale),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Err(Failure::Stale),
        Err(e) => return Err(Failure::Io(format!("read status: {e}"))),
        Ok(_) => {}
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Failure::Io(format!("bad status line {line:?}")))?;
    let mut content_length: Option<usize> = None;
    let mut keep_alive = line.starts_with("HTTP/1.1");
    loop {
        line.clear();
        match conn.reader.read_line(&mut line) {
            Ok(0) => return Err(Failure::Io("connection closed in the headers".to_string())),
            Ok(_) => {}
            Err(e) => return Err(Failure::Io(format!("read headers: {e}"))),
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("connection") {
            keep_alive = !value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
            return Err(Failure::Io(
                "chunked responses are not supported by this client".to_string(),
            ));
        }
    }
    body.clear();
    match content_length {
        Some(n) => {
            body.resize(n, 0);
            conn.reader
                .read_exact(body)
                .map_err(|e| Failure::Io(format!("read body: {e}")))?;
        }
        None => {
            conn.reader
                .read_to_end(body)
                .map_err(|e| Failure::Io(format!("read body: {e}")))?;
            keep_alive = false;
        }
    }
    Ok((status, keep_alive))
}

/// One request on a fresh connection, returning the status and body (for checks before the load).
pub fn request_once(addr: SocketAddr, request: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let mut conn = connect(addr).map_err(|e| format!("connect: {e}"))?;
    let mut body = Vec::new();
    match send_and_receive(&mut conn, request, &mut body) {
        Ok((status, _)) => Ok((status, body)),
        Err(Failure::Stale) => Err("connection closed before a response".to_string()),
        Err(Failure::Io(e)) => Err(e),
    }
}
