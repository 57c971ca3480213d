//! A local-target deployment seen from outside, for the interruption and concurrency tests: its
//! records, the processes that name its state folder, and what must hold after a run converged
//! (one recorded, answering server and nothing else running; one started training attempt per
//! training input; only the configs and models the endpoint serves or rolls back to) or after
//! `down` (no process, no state).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Deployment, answers};

/// The deployment's state folder as the local target resolves it (its processes are marked with
/// paths under this one).
pub fn state_root(deployment: &Deployment, name: &str) -> PathBuf {
    std::fs::canonicalize(deployment.path())
        .expect("the deployment folder")
        .join(".orchestrate")
        .join(name)
}

/// The processes that name the deployment's state folder (its trainers and servers).
pub fn processes(deployment: &Deployment, name: &str) -> Vec<StateProcess> {
    processes_naming(&state_root(deployment, name))
}

/// Every record in the state's `folder` (`endpoints`, `training-jobs`, …).
pub fn records(deployment: &Deployment, name: &str, folder: &str) -> Vec<Value> {
    let dir = deployment.state(name).join(folder);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut records: Vec<Value> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", p.display()))
        })
        .collect();
    records.sort_by_key(|r| r["name"].as_str().unwrap_or_default().to_string());
    records
}

/// The endpoint's record (`endpoints/<name>.json`).
pub fn endpoint_record(deployment: &Deployment, name: &str) -> Option<Value> {
    records(deployment, name, "endpoints")
        .into_iter()
        .find(|r| r["name"] == name)
}

/// The one value of a record's settings (`{"Kind": {...}}` or the flat settings) at `key`.
fn setting<'a>(record: &'a Value, key: &str) -> Option<&'a str> {
    let settings = &record["settings"];
    settings[key]
        .as_str()
        .or_else(|| settings.as_object()?.values().find_map(|v| v[key].as_str()))
}

/// Training attempts whose trainer was started (its log exists), by job, with their exit codes.
fn started_attempts(deployment: &Deployment, name: &str) -> Vec<(String, String, Option<String>)> {
    let jobs = deployment.state(name).join("training-jobs");
    records(deployment, name, "training-jobs")
        .into_iter()
        .filter_map(|record| {
            let attempt = record["name"].as_str()?.to_string();
            let number = record["details"]["attempt"].as_u64()?;
            let base = attempt.strip_suffix(&format!("-{number}"))?.to_string();
            let folder = jobs.join(&attempt);
            folder.join("train.log").is_file().then(|| {
                let code = std::fs::read_to_string(folder.join("exit_code"))
                    .ok()
                    .map(|c| c.trim().to_string());
                (base, attempt, code)
            })
        })
        .collect()
}

/// What a converged local deployment is: the recorded endpoint server runs, answers `/ping` and is
/// the only process of the deployment (trainers that finished are given a little while to leave;
/// a deadline only against hanging); each training job has exactly one attempt that was started,
/// and it completed; only the config the endpoint serves and the one it rolls back to are
/// recorded, with exactly their models. `context` says which run this follows.
pub fn assert_converged(deployment: &Deployment, name: &str, context: &str) {
    let record = endpoint_record(deployment, name).unwrap_or_else(|| panic!("{context}: no endpoint record"));
    let pid = record["details"]["pid"].as_i64().expect("the server's pid") as i32;
    let url = record["details"]["url"]
        .as_str()
        .expect("the server's URL")
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let running = processes(deployment, name);
        if running.len() == 1 && running[0].pid == pid {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{context}: the deployment's processes are not just its recorded server (pid {pid}):\n{running:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        answers(&format!("{url}/ping")),
        "{context}: the recorded server (pid {pid}) does not answer {url}/ping"
    );

    let started = started_attempts(deployment, name);
    let mut bases: Vec<&str> = started.iter().map(|(base, _, _)| base.as_str()).collect();
    bases.sort_unstable();
    bases.dedup();
    for base in bases {
        let of_base: Vec<_> = started.iter().filter(|(b, _, _)| b == base).collect();
        assert_eq!(
            of_base.len(),
            1,
            "{context}: training job {base} was started more than once: {of_base:?}"
        );
        assert_eq!(
            of_base[0].2.as_deref(),
            Some("0"),
            "{context}: attempt {} did not complete",
            of_base[0].1
        );
    }

    let serving = setting(&record, "endpoint_config")
        .unwrap_or_else(|| panic!("{context}: the endpoint record names no config: {record}"))
        .to_string();
    let previous = record["details"]["previous_config"].as_str().map(str::to_string);
    let kept: Vec<String> = [Some(serving.clone()), previous].into_iter().flatten().collect();
    let configs = records(deployment, name, "endpoint-configs");
    let config_names: Vec<&str> = configs.iter().filter_map(|c| c["name"].as_str()).collect();
    assert!(
        config_names.contains(&serving.as_str()),
        "{context}: the served config {serving} has no record: {config_names:?}"
    );
    for config in &config_names {
        assert!(
            kept.iter().any(|k| k == config),
            "{context}: config {config} is neither served nor kept for rollback ({kept:?})"
        );
    }
    let mut wanted_models: Vec<String> = configs
        .iter()
        .filter_map(|c| setting(c, "model").map(str::to_string))
        .collect();
    wanted_models.sort();
    wanted_models.dedup();
    let mut models: Vec<String> = records(deployment, name, "models")
        .iter()
        .filter_map(|m| m["name"].as_str().map(str::to_string))
        .collect();
    models.sort();
    assert_eq!(
        models, wanted_models,
        "{context}: models other than those of the kept configs"
    );
}

/// What a local deployment after `down` is: no process names its state folder, and the state
/// folder is gone (or holds only the lock file, which `down` leaves for the next run to lock).
pub fn assert_gone(deployment: &Deployment, name: &str, context: &str) {
    let running = processes(deployment, name);
    assert!(
        running.is_empty(),
        "{context}: processes of the deployment still run after down:\n{running:#?}"
    );
    let root = deployment.state(name);
    let left = leftovers(&root);
    assert!(
        left.is_empty(),
        "{context}: the state folder {} still holds {left:?}",
        root.display()
    );
}

/// Everything under `root` but its lock file, every file and folder.
fn leftovers(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for path in entries.filter_map(Result::ok).map(|e| e.path()) {
            found.push(path.clone());
            if path.is_dir() {
                walk(&path, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(root, &mut found);
    found.retain(|p| *p != root.join("lock"));
    found.sort();
    found
}

/// A process that names a local deployment's state folder, in its command line or environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateProcess {
    pub pid: i32,
    pub cmdline: String,
    /// The `ORCHESTRATE_LOCAL_RESOURCE` entry of its environment (the resource it runs for), if any.
    pub resource: Option<String>,
}

/// Every live (not zombie) process whose command line or environment names `state_root`: the
/// training jobs and endpoint servers of a local deployment, whatever its records say.
pub fn processes_naming(state_root: &std::path::Path) -> Vec<StateProcess> {
    let root = state_root.to_string_lossy().into_owned();
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if pid == std::process::id() as i32 {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("?");
        if state == "Z" || state == "X" {
            continue;
        }
        let read = |file: &str| {
            std::fs::read(format!("/proc/{pid}/{file}"))
                .map(|bytes| {
                    bytes
                        .split(|b| *b == 0)
                        .map(|part| String::from_utf8_lossy(part).into_owned())
                        .filter(|part| !part.is_empty())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        let cmdline = read("cmdline").join(" ");
        let environ = read("environ");
        let resource = environ
            .iter()
            .find_map(|e| e.strip_prefix("ORCHESTRATE_LOCAL_RESOURCE="))
            .map(str::to_string);
        if cmdline.contains(&root) || environ.iter().any(|e| e.contains(&root)) {
            found.push(StateProcess {
                pid,
                cmdline,
                resource,
            });
        }
    }
    found.sort_by_key(|p| p.pid);
    found
}
