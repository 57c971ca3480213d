//! The local target's processes: started detached, marked with the resource they run for, and
//! found again and stopped only once verified to be that process.
//!
//! Training jobs and endpoints outlive the `orchestrate` run that started them (an interrupted `up`
//! leaves training running and the next `up` re-attaches). So they are started the way a daemon is:
//! a `sh` in a new process group starts the command in the background, prints its pid and exits. The
//! command is re-parented to init (which reaps it), never becomes our zombie, holds none of our file
//! descriptors (Rust opens them close-on-exec, so not the state lock either), and a Ctrl-C in the
//! terminal, sent to the foreground group, does not reach it. It gets the run's environment without
//! any `AWS_*` variable: nothing local needs cloud credentials, and a long-lived process must not
//! keep them.
//!
//! A pid in a record is a claim, not a fact (records can be crafted, and pids are reused). A process
//! is ours ([`Ours`]) only when `/proc/<pid>/environ` holds exactly the entry
//! `ORCHESTRATE_LOCAL_RESOURCE=<state folder>/<kind folder>/<name>` that [`spawn_detached`] set (the
//! resource's [`Marker`]; compared whole, so deployment `iot` never matches `iot-prod`'s processes),
//! and, for a recorded pid, its start time (`/proc/<pid>/stat` field 22) is the recorded one. Only
//! such processes, and the process groups they lead or belong to (never our own), are signalled.
//! The marker also finds a process whose pid was never recorded (a run killed right after the
//! spawn): [`find`] scans `/proc` for it. Where there is no `/proc`, nothing can be verified: no
//! process reads as running and none is signalled.

use std::ffi::OsStr;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::time::Instant;

/// The environment variable that names the resource a detached process runs for.
pub const MARKER_VAR: &str = "ORCHESTRATE_LOCAL_RESOURCE";

/// The resource a detached process runs for, as its environment names it (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker(PathBuf);

impl Marker {
    /// The marker of the resource whose files are (or would be) at `resource`:
    /// `<state folder>/<kind folder>/<encoded name>`.
    pub fn new(resource: impl Into<PathBuf>) -> Marker {
        Marker(resource.into())
    }

    pub fn value(&self) -> &OsStr {
        self.0.as_os_str()
    }

    /// The whole `NAME=value` entry, as `/proc/<pid>/environ` lists it.
    fn entry(&self) -> Vec<u8> {
        let mut entry = format!("{MARKER_VAR}=").into_bytes();
        entry.extend_from_slice(self.0.as_os_str().as_encoded_bytes());
        entry
    }
}

/// A started background process, as a record keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spawned {
    /// The background command's pid.
    pub pid: i32,
    /// Its process group (the id of the `sh` that started it).
    pub pgid: i32,
    /// Its start time, `/proc/<pid>/stat` field 22 (clock ticks since boot); 0 when unknown, which
    /// never verifies.
    pub start_time: u64,
}

/// A process verified just now to run for a marker (see the module docs). Only [`ours`] and
/// [`find`] make one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ours {
    pid: Pid,
    /// Its process group, as `/proc` says (not as a record says).
    pgid: Option<Pid>,
    start_time: u64,
}

impl Ours {
    pub fn pid(&self) -> i32 {
        self.pid.as_raw_nonzero().get()
    }

    pub fn start_time(&self) -> u64 {
        self.start_time
    }

    /// Whether it still runs: the same process (same start time), not a zombie.
    fn running(&self) -> bool {
        stat(self.pid()).is_some_and(|s| s.start_time == self.start_time && !s.ended())
    }
}

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy)]
struct Stat {
    state: char,
    pgid: i32,
    start_time: u64,
}

impl Stat {
    /// A zombie or a dead process: it runs nothing any more.
    fn ended(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid pgrp …`: the command may hold anything, so fields count from the
    // last `)`; there the state is field 3 and the start time field 22.
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        pgid: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// Whether the environment of `pid` holds the marker's entry, exactly. An empty environment is
/// read again once when `mid_exec` may explain it (a process read in the middle of an `exec`: the
/// old image gone, the new one not set up yet); kernel threads have none at all.
fn marked(pid: i32, marker: &Marker, mid_exec: bool) -> bool {
    let path = format!("/proc/{pid}/environ");
    let Ok(mut environ) = std::fs::read(&path) else {
        return false;
    };
    if environ.is_empty() && mid_exec {
        std::thread::sleep(Duration::from_millis(20));
        let Ok(again) = std::fs::read(&path) else {
            return false;
        };
        environ = again;
    }
    let entry = marker.entry();
    environ.split(|b| *b == 0).any(|have| have == entry.as_slice())
}

/// A pid that names one process: never 0 (our group) or negative (a group), which `kill` would
/// read as "many processes".
fn positive(raw: i32) -> Option<Pid> {
    if raw > 0 { Pid::from_raw(raw) } else { None }
}

/// The recorded process, if it is verified to be ours: running, started when recorded, marked.
pub fn ours(spawned: Spawned, marker: &Marker) -> Option<Ours> {
    let pid = positive(spawned.pid)?;
    if spawned.start_time == 0 {
        return None;
    }
    let stat = stat(spawned.pid)?;
    if stat.ended() || stat.start_time != spawned.start_time || !marked(spawned.pid, marker, true) {
        return None;
    }
    Some(Ours {
        pid,
        pgid: positive(stat.pgid),
        start_time: stat.start_time,
    })
}

/// Whether the recorded process is ours and runs.
pub fn alive(spawned: Spawned, marker: &Marker) -> bool {
    ours(spawned, marker).is_some()
}

/// Every running process marked for `marker`, by pid, whatever any record says. (One caught in
/// the middle of an `exec` is missed; the state lock keeps other runs from starting any meanwhile.)
pub fn find(marker: &Marker) -> Vec<Ours> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<Ours> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|raw| {
            let pid = positive(raw)?;
            let stat = stat(raw).filter(|s| !s.ended())?;
            marked(raw, marker, false).then(|| Ours {
                pid,
                pgid: positive(stat.pgid),
                start_time: stat.start_time,
            })
        })
        .collect();
    found.sort_by_key(Ours::pid);
    found
}

/// Runs `sh -c '<command> </dev/null & echo $!' sh <args…>` in a new process group, in `cwd`, with
/// `env` and the marker added and every `AWS_*` variable removed, and returns the background
/// command's pid and start time. `command` must send its stdout and stderr elsewhere (a log file;
/// for a compound command, the whole of it): the shell's output is read until every holder closes
/// it, so a background command still holding it would make this wait for its end.
pub fn spawn_detached(
    command: &str,
    args: &[&OsStr],
    env: &[(&str, &OsStr)],
    cwd: &Path,
    marker: &Marker,
) -> std::io::Result<Result<Spawned, String>> {
    let script = format!("{command} </dev/null & echo $!");
    let mut shell = Command::new("sh");
    shell
        .arg("-c")
        .arg(script)
        .arg("sh")
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for (key, _) in std::env::vars_os() {
        if key.as_encoded_bytes().starts_with(b"AWS_") {
            shell.env_remove(&key);
        }
    }
    for (key, value) in env {
        shell.env(key, value);
    }
    shell.env(MARKER_VAR, marker.value());
    let child = shell.spawn()?;
    let pgid = child.id() as i32;
    let output = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.trim().parse::<i32>() {
        Ok(pid) if pid > 0 && output.status.success() => {
            // Read while the command runs (a command already gone keeps 0: it never verifies).
            let start_time = stat(pid).map_or(0, |s| s.start_time);
            Ok(Ok(Spawned {
                pid,
                pgid,
                start_time,
            }))
        }
        _ => Ok(Err(format!(
            "{}{}",
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))),
    }
}

/// Sends `signal` to a verified process and to its process group (unless that is our own); gone
/// ones are fine. Between the check and the signal a pid could only be reused if the process ended
/// and the pid space wrapped around meanwhile.
fn signal(ours: &Ours, signal: Signal) {
    if let Some(group) = ours.pgid
        && group != rustix::process::getpgrp()
        && group.as_raw_nonzero().get() > 1
    {
        let _ = rustix::process::kill_process_group(group, signal);
    }
    let _ = rustix::process::kill_process(ours.pid, signal);
}

/// Stops a verified process: SIGTERM to it and its group, up to `grace` for it to exit, then
/// SIGKILL. Returns whether it is gone.
pub async fn stop(ours: Ours, grace: Duration) -> bool {
    if !ours.running() {
        return true;
    }
    signal(&ours, Signal::TERM);
    if wait_gone(&ours, grace).await {
        return true;
    }
    signal(&ours, Signal::KILL);
    wait_gone(&ours, Duration::from_secs(5)).await
}

async fn wait_gone(ours: &Ours, timeout: Duration) -> bool {
    let started = Instant::now();
    while ours.running() {
        if started.elapsed() >= timeout {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// A port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Whether `port` on 127.0.0.1 can be bound now.
pub fn port_free(port: u16) -> bool {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// Whether process `pid` listens on TCP `port` (any address): `None` where `/proc` cannot tell.
/// Two servers can listen on one port with `SO_REUSEPORT`; this tells which ones do.
pub fn listening(pid: i32, port: u16) -> Option<bool> {
    let mut sockets = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        // `sl local_address rem_address st … inode`: state 0A is LISTEN.
        for line in text.lines().skip(1) {
            let columns: Vec<&str> = line.split_whitespace().collect();
            let [_, local, _, state, _, _, _, _, _, inode, ..] = columns.as_slice() else {
                continue;
            };
            let local_port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if *state == "0A" && local_port == Some(port) {
                sockets.push(format!("socket:[{inode}]"));
            }
        }
    }
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    if sockets.is_empty() {
        return Some(false);
    }
    Some(fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|link| sockets.iter().any(|s| link.as_os_str() == s.as_str()))
    }))
}

/// The last `lines` lines of a log file (for error messages); empty when it cannot be read.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A marker for resource `name` of deployment `deployment` under `dir`.
    fn marker(dir: &Path, deployment: &str, name: &str) -> Marker {
        Marker::new(dir.join(deployment).join("endpoints").join(name))
    }

    /// A background loop started for `marker`, logging into `dir`.
    fn looping(dir: &Path, marker: &Marker) -> Spawned {
        let log = dir.join("log");
        spawn_detached(
            r#"while :; do sleep 0.05; done >"$1" 2>&1"#,
            &[log.as_os_str()],
            &[],
            dir,
            marker,
        )
        .unwrap()
        .unwrap()
    }

    #[tokio::test]
    async fn detached_process_is_verified_found_and_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let mine = marker(dir.path(), "iot", "iot");
        let spawned = looping(dir.path(), &mine);
        assert_ne!(spawned.pid, std::process::id() as i32);
        assert!(spawned.start_time > 0, "{spawned:?}");
        // Returns at once, not when the command ends: the shell's output pipe is not inherited.
        let started = std::time::Instant::now();
        let log = dir.path().join("log2");
        let waiting = spawn_detached(
            r#"( sleep 3; echo $? >"$1.code" ) >"$1" 2>&1"#,
            &[log.as_os_str()],
            &[],
            dir.path(),
            &mine,
        )
        .unwrap()
        .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "spawn waited for the command"
        );
        let both = find(&mine);
        let pids: Vec<i32> = both.iter().map(Ours::pid).collect();
        assert!(
            pids.contains(&spawned.pid) && pids.contains(&waiting.pid),
            "{pids:?}"
        );
        assert!(stop(ours(waiting, &mine).expect("ours"), Duration::from_secs(5)).await);

        let verified = ours(spawned, &mine).expect("the background loop is ours");
        assert_eq!(verified.pid(), spawned.pid);
        assert_eq!(verified.start_time(), spawned.start_time);
        // Another resource's marker, or another start time (a reused pid), is not this process.
        assert!(!alive(spawned, &marker(dir.path(), "iot", "iot-2")));
        let reused = Spawned {
            start_time: spawned.start_time + 1,
            ..spawned
        };
        assert!(!alive(reused, &mine));
        assert!(
            !alive(
                Spawned {
                    start_time: 0,
                    ..spawned
                },
                &mine
            ),
            "unknown start time"
        );
        assert!(stop(verified, Duration::from_secs(5)).await);
        assert!(!alive(spawned, &mine));
        assert!(find(&mine).is_empty());
        // Stopping again is fine.
        assert!(stop(verified, Duration::from_secs(1)).await);
    }

    /// Regression: the "is this process ours" check matched the state folder's path anywhere in
    /// the command line, so deployment `iot` took `iot-prod`'s processes for its own.
    #[tokio::test]
    async fn a_deployment_whose_name_is_a_prefix_of_another_does_not_match_its_processes() {
        let dir = tempfile::tempdir().unwrap();
        let prod = marker(dir.path(), "iot-prod", "iot-prod");
        let spawned = looping(dir.path(), &prod);
        for other in [
            Marker::new(dir.path().join("iot")),
            marker(dir.path(), "iot", "iot"),
            marker(dir.path(), "iot", "iot-prod"),
            Marker::new(dir.path().join("iot-prod/endpoints")),
        ] {
            assert!(!alive(spawned, &other), "{other:?}");
            assert!(find(&other).is_empty(), "{other:?}");
        }
        let verified = ours(spawned, &prod).expect("ours under its own marker");
        assert!(stop(verified, Duration::from_secs(5)).await);
    }

    /// Regression: a recorded pid was trusted when the process's command line mentioned the state
    /// folder; an unrelated process that mentions it (or any pid at all) is never ours.
    #[tokio::test]
    async fn an_unrelated_process_is_not_ours_even_with_its_real_start_time() {
        let dir = tempfile::tempdir().unwrap();
        let mine = marker(dir.path(), "iot", "iot");
        let mut unrelated = Command::new("sleep").arg("60").spawn().unwrap();
        let pid = unrelated.id() as i32;
        let start_time = stat(pid).expect("/proc/<pid>/stat").start_time;
        let claimed = Spawned {
            pid,
            pgid: pid,
            start_time,
        };
        assert!(ours(claimed, &mine).is_none());
        assert!(find(&mine).is_empty());
        assert!(
            unrelated.try_wait().unwrap().is_none(),
            "the unrelated process still runs"
        );
        unrelated.kill().unwrap();
        unrelated.wait().unwrap();
    }

    #[test]
    fn nonsense_pids_are_not_alive() {
        let marker = Marker::new("/");
        for pid in [0, -5, -1, i32::MAX] {
            let spawned = Spawned {
                pid,
                pgid: pid,
                start_time: 1,
            };
            assert!(!alive(spawned, &marker), "{pid}");
        }
        // Our own process is not marked.
        let me = std::process::id() as i32;
        let start_time = stat(me).unwrap().start_time;
        assert!(!alive(
            Spawned {
                pid: me,
                pgid: me,
                start_time
            },
            &marker
        ));
    }

    /// Detached processes get no AWS credentials. The variables must be in this process's
    /// environment for the test to mean anything, and setting them here would need `unsafe`: so
    /// the test runs itself again, as a child process that has them, and that child checks the
    /// environment of a process it started in `/proc/<pid>/environ`.
    #[tokio::test]
    async fn detached_processes_get_no_aws_credentials() {
        const PROOF: &str = "ORCHESTRATE_TEST_AWS_PROOF";
        let credentials = [
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
            ("AWS_PROFILE", "prod"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/token"),
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://169.254.170.23/creds",
            ),
        ];
        let Some(proof) = std::env::var_os(PROOF) else {
            let dir = tempfile::tempdir().unwrap();
            let proof = dir.path().join("proof");
            let status = Command::new(std::env::current_exe().unwrap())
                .args([
                    "process::tests::detached_processes_get_no_aws_credentials",
                    "--exact",
                    "--nocapture",
                ])
                .env(PROOF, &proof)
                .envs(credentials)
                .status()
                .unwrap();
            assert!(status.success(), "the child test failed: {status}");
            let checked = std::fs::read_to_string(&proof).expect("the child test ran");
            assert_eq!(checked, "checked");
            return;
        };
        for (key, value) in credentials {
            assert_eq!(std::env::var(key).as_deref(), Ok(value), "the child has {key}");
        }
        let dir = tempfile::tempdir().unwrap();
        let mine = marker(dir.path(), "iot", "iot");
        let spawned = looping(dir.path(), &mine);
        let environ = std::fs::read(format!("/proc/{}/environ", spawned.pid)).unwrap();
        let names: Vec<String> = environ
            .split(|b| *b == 0)
            .map(|entry| String::from_utf8_lossy(entry).into_owned())
            .collect();
        assert!(!names.iter().any(|entry| entry.starts_with("AWS_")), "{names:?}");
        assert!(
            names.iter().any(|e| e.starts_with("PATH=")),
            "the rest of the environment is kept"
        );
        assert!(stop(ours(spawned, &mine).unwrap(), Duration::from_secs(5)).await);
        std::fs::write(proof, "checked").unwrap();
    }

    #[test]
    fn ports_and_tails() {
        let port = free_port().unwrap();
        assert!(port_free(port));
        let me = std::process::id() as i32;
        let held = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).unwrap();
        assert!(!port_free(port));
        if Path::new("/proc/net/tcp").exists() {
            assert_eq!(listening(me, port), Some(true));
            assert_eq!(listening(me, free_port().unwrap()), Some(false));
            assert_ne!(listening(1, port), Some(true), "held by us, not by init");
        }
        drop(held);
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        std::fs::write(&log, "a\nb\nc\n").unwrap();
        assert_eq!(log_tail(&log, 2), "b\nc");
        assert_eq!(log_tail(&dir.path().join("none"), 2), "");
    }
}
