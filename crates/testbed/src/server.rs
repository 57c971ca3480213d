//! A server process the testbed started: its temporary directory, its log file (stdout and stderr),
//! readiness polling that fails with the log's tail, and a kill on drop.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a server gets to become ready (moto imports a lot of Python; the machine may be busy).
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(100);
const TAIL_LINES: usize = 40;

pub(crate) struct Server {
    name: &'static str,
    child: Child,
    /// Held open for servers that exit when their standard input closes.
    stdin: Option<ChildStdin>,
    log: PathBuf,
    deadline: Instant,
    // Last: removed after the process is gone.
    dir: TempDir,
}

impl Server {
    /// A fresh temporary directory for a server's files.
    pub(crate) fn directory(name: &str) -> TempDir {
        tempfile::Builder::new()
            .prefix(&format!("testbed-{name}-"))
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory for {name}: {e}"))
    }

    /// Spawns `command` with stdout and stderr going to `<dir>/<name>.log`; with `keep_stdin`, its
    /// standard input is a pipe held open until the server is dropped.
    pub(crate) fn spawn(name: &'static str, mut command: Command, dir: TempDir, keep_stdin: bool) -> Self {
        let log = dir.path().join(format!("{name}.log"));
        let out = File::create(&log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let err = out.try_clone().expect("duplicate the log file handle");
        command
            .current_dir(dir.path())
            .stdin(if keep_stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(out)
            .stderr(err);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        Self {
            name,
            stdin: child.stdin.take(),
            child,
            log,
            deadline: Instant::now() + READY_TIMEOUT,
            dir,
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The whole log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    fn tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
    }

    /// Panics with `what` and the tail of the server's log.
    pub(crate) fn fail(&self, what: &str) -> ! {
        panic!(
            "{} {what}; the last lines of its log ({}):\n{}",
            self.name,
            self.log.display(),
            self.tail()
        )
    }

    /// Called between readiness probes: fails if the server exited or the startup deadline passed,
    /// otherwise waits a little.
    pub(crate) async fn not_ready_yet(&mut self, waiting_for: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            self.fail(&format!("exited ({status}) while waiting for {waiting_for}"));
        }
        if Instant::now() >= self.deadline {
            self.fail(&format!(
                "was not ready within {} s (waiting for {waiting_for})",
                READY_TIMEOUT.as_secs()
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// How long a server that exits when its standard input closes gets to stop what it started (moto's
/// SageMaker emulation stops its serve and training processes) before it is killed.
const STDIN_EOF_GRACE: Duration = Duration::from_secs(8);

impl Drop for Server {
    fn drop(&mut self) {
        if self.stdin.take().is_some() {
            let deadline = Instant::now() + STDIN_EOF_GRACE;
            while Instant::now() < deadline {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
