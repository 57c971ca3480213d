//! The local target's processes: started detached, found again by pid, stopped with signals.
//!
//! Training jobs and endpoints outlive the `orchestrate` run that started them (an interrupted `up`
//! leaves training running and the next `up` re-attaches). So they are started the way a daemon is:
//! a `sh` in a new process group starts the command in the background, prints its pid and exits. The
//! command is re-parented to init (which reaps it), never becomes our zombie, holds none of our file
//! descriptors (Rust opens them close-on-exec, so not the state lock either), and a Ctrl-C in the
//! terminal, sent to the foreground group, does not reach it.
//!
//! A recorded pid is trusted only while `/proc/<pid>/cmdline` still mentions the deployment's state
//! folder, so a pid reused by an unrelated process is never reported alive, and never signalled.

use std::ffi::OsStr;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::time::Instant;

/// A started background process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spawned {
    /// The background command's pid.
    pub pid: i32,
    /// Its process group (the id of the `sh` that started it).
    pub pgid: i32,
}

/// Runs `sh -c '<command> </dev/null & echo $!' sh <args…>` in a new process group, in `cwd`, with
/// `env` added, and returns the background command's pid. `command` must send its stdout and stderr
/// elsewhere (a log file; for a compound command, the whole of it): the shell's output is read until
/// every holder closes it, so a background command still holding it would make this wait for its end.
pub fn spawn_detached(
    command: &str,
    args: &[&OsStr],
    env: &[(&str, &OsStr)],
    cwd: &Path,
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
    for (key, value) in env {
        shell.env(key, value);
    }
    let child = shell.spawn()?;
    let pgid = child.id() as i32;
    let output = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.trim().parse::<i32>() {
        Ok(pid) if pid > 0 && output.status.success() => Ok(Ok(Spawned { pid, pgid })),
        _ => Ok(Err(format!(
            "{}{}",
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))),
    }
}

/// Whether `pid` runs and is ours: not a zombie, and (where `/proc` exists) its command line
/// mentions `marker` (the deployment's state folder).
pub fn alive(pid: i32, marker: &Path) -> bool {
    let Some(process) = positive(pid) else {
        return false;
    };
    match rustix::process::test_kill_process(process) {
        Ok(()) | Err(rustix::io::Errno::PERM) => {}
        Err(_) => return false,
    }
    let proc_dir = Path::new("/proc").join(pid.to_string());
    if !Path::new("/proc/self").exists() {
        return true;
    }
    let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else {
        return false;
    };
    // `pid (comm) S …`: the state follows the last `)`.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    if matches!(state, Some('Z' | 'X')) {
        return false;
    }
    let Ok(mut cmdline) = std::fs::read(proc_dir.join("cmdline")) else {
        return false;
    };
    if cmdline.is_empty() {
        // Read in the middle of an `exec` (the old image gone, the new one not set up yet).
        std::thread::sleep(Duration::from_millis(20));
        let Ok(again) = std::fs::read(proc_dir.join("cmdline")) else {
            return false;
        };
        cmdline = again;
    }
    let marker = marker.as_os_str().as_encoded_bytes();
    cmdline.windows(marker.len().max(1)).any(|w| w == marker)
}

/// A pid that names one process: never 0 (our group) or negative (a group), which `kill` would
/// read as "many processes".
fn positive(raw: i32) -> Option<Pid> {
    if raw > 0 { Pid::from_raw(raw) } else { None }
}

/// Sends `signal` to the process and its group; gone ones are fine.
fn signal(spawned: Spawned, signal: Signal) {
    if let Some(group) = positive(spawned.pgid) {
        let _ = rustix::process::kill_process_group(group, signal);
    }
    if let Some(pid) = positive(spawned.pid) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// Stops a process: SIGTERM to it and its group, up to `grace` for it to exit, then SIGKILL. Returns
/// whether it is gone (a process that is not ours or already gone counts as gone and is not
/// signalled).
pub async fn stop(spawned: Spawned, marker: &Path, grace: Duration) -> bool {
    if !alive(spawned.pid, marker) {
        return true;
    }
    signal(spawned, Signal::TERM);
    if wait_gone(spawned.pid, marker, grace).await {
        return true;
    }
    signal(spawned, Signal::KILL);
    wait_gone(spawned.pid, marker, Duration::from_secs(5)).await
}

async fn wait_gone(pid: i32, marker: &Path, timeout: Duration) -> bool {
    let started = Instant::now();
    while alive(pid, marker) {
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

    #[tokio::test]
    async fn detached_process_is_found_alive_and_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("state");
        let log = dir.path().join("log");
        // The background subshell keeps `sh -c … sh <marker> <log>` as its command line, as the
        // training job's does.
        let spawned = spawn_detached(
            r#"while :; do sleep 0.05; done >"$2" 2>&1"#,
            &[marker.as_os_str(), log.as_os_str()],
            &[],
            dir.path(),
        )
        .unwrap()
        .unwrap();
        assert_ne!(spawned.pid, std::process::id() as i32);
        // Returns at once, not when the command ends: the shell's output pipe is not inherited.
        let started = std::time::Instant::now();
        let waiting = spawn_detached(
            r#"( sleep 3; echo $? >"$1.code" ) >"$2" 2>&1"#,
            &[marker.as_os_str(), log.as_os_str()],
            &[],
            dir.path(),
        )
        .unwrap()
        .unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "spawn waited for the command"
        );
        assert!(stop(waiting, &marker, Duration::from_secs(5)).await);
        assert!(alive(spawned.pid, &marker), "the background loop runs");
        assert!(
            !alive(spawned.pid, &dir.path().join("not-ours")),
            "a foreign command line is not ours"
        );
        assert!(stop(spawned, &marker, Duration::from_secs(5)).await);
        assert!(!alive(spawned.pid, &marker));
        // Stopping again is fine.
        assert!(stop(spawned, &marker, Duration::from_secs(1)).await);
    }

    #[test]
    fn nonsense_pids_are_not_alive() {
        assert!(!alive(0, Path::new("/")));
        assert!(!alive(-5, Path::new("/")));
        assert!(!alive(i32::MAX, Path::new("/")));
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
