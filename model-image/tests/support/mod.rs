//! What the tests of `model-image serve` over real sockets share: a model trained once per test binary
//! on the synthetic demo data, a running server with chosen limits (killed on drop), its memory and
//! open files from `/proc`, and raw HTTP/1.1 exchanges. The load generator is the serving benchmark's
//! own.
#![allow(dead_code)]

#[path = "../../benches/support/loadgen.rs"]
pub mod loadgen;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_model-image");

/// The binary the server runs: `$MODEL_IMAGE_BIN` (another build, e.g. to compare two), else [`BIN`].
pub fn server_bin() -> PathBuf {
    std::env::var_os("MODEL_IMAGE_BIN").map_or_else(|| PathBuf::from(BIN), PathBuf::from)
}

/// SageMaker's payload cap, as the server enforces it.
pub const MAX_BODY: usize = 6 * 1024 * 1024;

/// A model trained on the demo data, and demo rows in its feature order.
pub struct Trained {
    dir: tempfile::TempDir,
    pub features: Vec<String>,
    /// Header-less CSV lines of the model's features, from the demo data.
    pub lines: Vec<String>,
}

impl Trained {
    pub fn opt_ml(&self) -> &Path {
        self.dir.path()
    }
}

/// Trains once per test binary: 3,000 demo rows, 60 rounds, no bootstrap (a few seconds).
pub fn trained() -> &'static Trained {
    static TRAINED: OnceLock<Trained> = OnceLock::new();
    TRAINED.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let train = dir.path().join("input/data/train");
        let config = dir.path().join("input/config");
        std::fs::create_dir_all(&train).unwrap();
        std::fs::create_dir_all(&config).unwrap();
        let demo = train.join("demo.csv");
        let status = Command::new(BIN)
            .args(["demo-data", "--rows", "3000", "--seed", "5", "--out"])
            .arg(&demo)
            .status()
            .unwrap();
        assert!(status.success(), "demo-data failed");
        std::fs::write(
            config.join("hyperparameters.json"),
            r#"{"max_rounds": "60", "bootstrap_resamples": "0"}"#,
        )
        .unwrap();
        let output = Command::new(BIN)
            .arg("train")
            .env("OPT_ML", dir.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "train failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let model: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("model/model.json")).unwrap())
                .unwrap();
        let features: Vec<String> = model["features"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_owned())
            .collect();
        let text = std::fs::read_to_string(&demo).unwrap();
        let mut records = text.lines();
        let header: Vec<&str> = records.next().unwrap().split(',').collect();
        let columns: Vec<usize> = features
            .iter()
            .map(|f| header.iter().position(|h| h == f).unwrap())
            .collect();
        let lines = records
            .map(|line| {
                let cells: Vec<&str> = line.split(',').collect();
                columns.iter().map(|&c| cells[c]).collect::<Vec<_>>().join(",")
            })
            .collect();
        Trained { dir, features, lines }
    })
}

/// A running `model-image serve` on a free loopback port, killed on drop.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    /// Starts the server on `trained`'s model with `env` (e.g. `MODEL_IMAGE_HEADER_TIMEOUT`) and
    /// waits for `/ping`.
    pub fn start(trained: &Trained, env: &[(&str, &str)]) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = trained.opt_ml().join(format!("serve-{port}.log"));
        let child = Command::new(server_bin())
            .args(["serve", "--host", "127.0.0.1"])
            .env("OPT_ML", trained.opt_ml())
            .env("SAGEMAKER_BIND_TO_PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.ping() != Some(200) {
            assert!(server.alive(), "the server exited: {}", server.log_text());
            assert!(Instant::now() < deadline, "the server did not answer /ping");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `/ping`'s status, `None` if there was no answer.
    pub fn ping(&self) -> Option<u16> {
        let request = format!("GET /ping HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr);
        loadgen::request_once(self.addr, request.as_bytes())
            .ok()
            .map(|(status, _)| status)
    }

    /// A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM`).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.pid()))
    }

    /// Files the server holds open under `dir`, deleted ones included.
    pub fn open_files_in(&self, dir: &Path) -> usize {
        open_files_in(self.pid(), dir)
    }

    /// Resets the peak (`VmHWM`) to the current resident size, so that the next peak is of what
    /// follows. Linux supports it since 4.0; `false` when refused.
    pub fn reset_peak_memory(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").is_ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Files process `pid` holds open under `dir` (canonical), deleted ones included (`/proc/PID/fd`).
pub fn open_files_in(pid: u32, dir: &Path) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .filter(|target| target.starts_with(dir))
                .count()
        })
        .unwrap_or(0)
}

/// An answer of the server.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The `error` of a JSON error body.
    pub fn reason(&self) -> Option<String> {
        let value: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        value["error"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }
}

/// Connects with generous timeouts: they only turn a hang into a failure.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    stream.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

/// `POST /invocations` with `headers` (Content-Length added unless given) and `body`, on a new
/// connection.
pub fn invocation(addr: SocketAddr, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut request = format!("POST /invocations HTTP/1.1\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding"))
    {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Writes `request` and reads one response (Content-Length bodies, as the server sends).
pub fn exchange(stream: &mut TcpStream, request: &[u8]) -> std::io::Result<Answer> {
    stream.write_all(request)?;
    read_answer(stream)
}

pub fn read_answer(stream: &mut TcpStream) -> std::io::Result<Answer> {
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader)?;
    let length: usize = header(&headers, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// The status and headers of a response, leaving `reader` at its body.
pub fn read_head(reader: &mut impl BufRead) -> std::io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line: {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    Ok((status, headers))
}

/// The value of header `name` (any case) among `headers`.
pub fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A number from the environment (the full forms of the tests), else `default`.
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
