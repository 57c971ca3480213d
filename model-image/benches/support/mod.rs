//! What both benchmarks share: where the real sample and the generated data live, the Python
//! reference's preflight, child processes that never outlive the benchmark, and table printing.
//!
//! Each bench binary compiles this module and uses a part of it.
#![allow(dead_code)]

pub mod loadgen;
pub mod sample;

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `model-image` binary Cargo built for this bench (release, like the bench).
pub const BIN: &str = env!("CARGO_BIN_EXE_model-image");

/// The binary under test: `$MODEL_IMAGE_BIN` (e.g. one copied out of the container image), else [`BIN`].
pub fn model_image_bin() -> PathBuf {
    std::env::var_os("MODEL_IMAGE_BIN").map_or_else(|| PathBuf::from(BIN), PathBuf::from)
}

/// Prints the benchmark's title, the command that reproduces it, and the machine it runs on.
pub fn print_header(title: &str, command: &str) {
    println!("== {title}");
    println!("reproduce: {command}   (from the repository root)");
    println!(
        "machine: {} cores, load average {}, {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_average(),
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| m.lines().next().map(|l| l
                .split_whitespace()
                .skip(1)
                .collect::<Vec<_>>()
                .join(" ")))
            .map_or_else(String::new, |total| format!("memory {total}")),
    );
    println!();
}

/// `/proc/loadavg`'s three averages; other processes on a 2-core machine skew every number here.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

/// The repository root (the workspace above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The real IoTID20 sample: `$IOTID20_SAMPLE`, else `../shared/data/iotid20/iotid20_sample.csv`
/// relative to the repository root. Its rows are read, never copied into the repository.
pub fn real_sample() -> PathBuf {
    let path = std::env::var_os("IOTID20_SAMPLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/data/iotid20/iotid20_sample.csv"));
    if !path.is_file() {
        bail(&format!(
            "the real IoTID20 sample is not at {}; set IOTID20_SAMPLE to its path",
            path.display()
        ));
    }
    path
}

/// `target/bench-data/<name>` (the target directory the bench was built into), created.
pub fn bench_data(name: &str) -> PathBuf {
    let target = Path::new(BIN)
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| repo_root().join("target"), Path::to_path_buf);
    let dir = target.join("bench-data").join(name);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| bail(&format!("cannot create {}: {e}", dir.display())));
    dir
}

/// `benches/python/<script>`.
pub fn python_script(script: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/python")
        .join(script)
}

/// The Python interpreter: `$PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Exits with a clear message unless the Python reference stack imports.
pub fn require_python_stack(modules: &[&str]) {
    let probe = format!("import {}", modules.join(", "));
    let ok = Command::new(python())
        .args(["-c", &probe])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        bail(&format!(
            "the Python reference stack is missing (`{} -c \"{probe}\"` failed).\n  \
             Install it with: pip install -r model-image/benches/python/requirements.txt\n  \
             (set PYTHON to use another interpreter)",
            python()
        ));
    }
}

/// Prints why the benchmark cannot run and exits non-zero.
pub fn bail(message: &str) -> ! {
    eprintln!("benchmark cannot run: {message}");
    std::process::exit(2);
}

/// Reads a JSON file the benchmark depends on, or bails.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| bail(&format!("cannot read {}: {e}", path.display())));
    serde_json::from_str(&text).unwrap_or_else(|e| bail(&format!("{} is not JSON: {e}", path.display())))
}

/// A numeric setting from the environment, `default` when unset or unreadable, clamped to
/// `min..=max` so a benchmark stays bounded.
pub fn env_number(name: &str, default: u64, min: u64, max: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
        .clamp(min, max)
}

/// A log file for a child's output under `dir`.
pub fn log_file(dir: &Path, name: &str) -> (File, PathBuf) {
    let path = dir.join(name);
    let file =
        File::create(&path).unwrap_or_else(|e| bail(&format!("cannot create {}: {e}", path.display())));
    (file, path)
}

/// A child process in its own process group, ended with SIGTERM (then SIGKILL) on drop, so servers
/// and their workers never outlive the benchmark.
pub struct Guarded {
    child: Child,
    name: String,
}

impl Guarded {
    /// Spawns `command` in a new process group.
    pub fn spawn(name: &str, mut command: Command) -> Guarded {
        use std::os::unix::process::CommandExt as _;
        command.process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| bail(&format!("cannot start {name}: {e}")));
        Guarded {
            child,
            name: name.to_string(),
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the exit, killing the group after `limit`. `None` when it had to be killed.
    pub fn wait_with_limit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                _ => {
                    eprintln!("{} exceeded {:?}: killing it", self.name, limit);
                    self.signal_group("KILL");
                    let _ = self.child.wait();
                    return None;
                }
            }
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn signal_group(&self, signal: &str) {
        // The group id is the child's pid (process_group(0)); `kill` keeps this crate free of unsafe.
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
    }

    /// SIGTERM to the group, up to 10 s for a graceful exit, then SIGKILL.
    pub fn stop(&mut self) {
        if !self.running() {
            return;
        }
        self.signal_group("TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.running() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        // Workers of a process group may outlive their parent by a moment; KILL whatever is left.
        self.signal_group("KILL");
        let _ = self.child.wait();
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Peak resident memory (VmHWM) of `pid` and its descendants, in KiB, while they run.
pub fn tree_peak_rss_kib(pid: u32) -> u64 {
    let own = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        })
        .unwrap_or(0);
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    own + children
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .map(tree_peak_rss_kib)
        .sum::<u64>()
}

/// A plain-text table with right-aligned columns after the first.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let columns = self.header.len();
        let width = |i: usize| {
            self.rows
                .iter()
                .map(|r| r.get(i).map_or(0, String::len))
                .chain([self.header[i].len()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..columns).map(width).collect();
        let mut out = String::new();
        let line = |cells: &[String], out: &mut String| {
            for (i, cell) in cells.iter().enumerate() {
                if i == 0 {
                    let _ = write!(out, "{cell:<w$}", w = widths[0]);
                } else {
                    let _ = write!(out, "  {cell:>w$}", w = widths[i]);
                }
            }
            out.push('\n');
        };
        line(&self.header, &mut out);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(&rule, &mut out);
        for row in &self.rows {
            line(row, &mut out);
        }
        out
    }
}
