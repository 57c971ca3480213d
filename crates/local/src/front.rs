//! The endpoint's front on the local target, for endpoints whose `rollout` bakes: the canary router
//! (`model-image route`, see `contract::rollout`) listening on the endpoint's port, in front of the
//! server the endpoint runs (blue) and, during a rollout, the new one (green), each on a port of
//! its own. It shifts traffic to green in the rollout's steps, bakes each step watched by the
//! deployment's own alarm rules, and rolls back to blue by itself when one goes off, as SageMaker's
//! blue/green deployment guardrails do; the endpoint (see [`endpoint`](crate::endpoint)) follows it
//! through its status file.
//!
//! The router is started with the endpoint's process marker, so everything that finds, verifies
//! and stops the endpoint's servers handles it too. Its plan and status files are
//! `endpoints/<name>.rollout-plan` and `endpoints/<name>.rollout-status` (JSON, named so that they
//! are not taken for records); its output goes to the endpoint's log.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use contract::rollout::{AlarmMetric, AlarmRule, AlarmState, RolloutPhase, RolloutPlan, RolloutStatus};
use engine::resource::Kind;
use serde::{Deserialize, Serialize};
use spec::{RolloutAlarms, Spec};

use crate::image::ImageBinary;
use crate::process::{self, Marker, Spawned};
use crate::state::encode_name;
use crate::{LocalError, LocalTarget, io_error};

const KIND: Kind = Kind::Endpoint;
/// How long a started router gets to listen (it loads nothing: it binds at once).
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a starting router is checked.
const LISTEN_POLL: Duration = Duration::from_millis(50);

/// A process listening on a port of 127.0.0.1, as the endpoint's record keeps it: a server, or the
/// router in front of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Listener {
    pub pid: i32,
    pub pgid: i32,
    pub start_time: u64,
    pub port: u16,
    pub url: String,
}

impl Listener {
    pub(crate) fn new(spawned: Spawned, port: u16) -> Self {
        Listener {
            pid: spawned.pid,
            pgid: spawned.pgid,
            start_time: spawned.start_time,
            port,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    pub(crate) fn spawned(&self) -> Spawned {
        Spawned {
            pid: self.pid,
            pgid: self.pgid,
            start_time: self.start_time,
        }
    }
}

/// Whether endpoint updates go through the router: only a rollout that bakes has anything to
/// watch (an unbaked rollout takes the new config at once, as without a `rollout` section).
pub(crate) fn routes(spec: &Spec) -> bool {
    !spec.endpoint.rollout.bake.is_zero()
}

/// The router's plan: blue and green on 127.0.0.1, the rollout's steps and bake, and the owned
/// alarms' rules over periods of `local.alarm_period`. Named alarms are CloudWatch's and do not
/// exist here: the router watches none for them (the plan output says so).
pub(crate) fn plan(spec: &Spec, blue: Option<u16>, green: u16) -> RolloutPlan {
    let at = |port: u16| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let rollout = &spec.endpoint.rollout;
    let alarms = match &rollout.alarms {
        RolloutAlarms::Owned(owned) => [
            (
                engine::values::AlarmMetric::Invocation5xxErrors,
                AlarmMetric::Invocation5xxErrors,
                owned.errors,
            ),
            (
                engine::values::AlarmMetric::ModelLatency,
                AlarmMetric::ModelLatency,
                owned.latency,
            ),
        ]
        .into_iter()
        .map(|(named, metric, rule)| AlarmRule {
            name: engine::desired::alarm_name(spec.name.as_str(), named),
            metric,
            threshold: rule.threshold,
            datapoints: rule.datapoints,
            periods: rule.periods,
        })
        .collect(),
        RolloutAlarms::None | RolloutAlarms::Named(_) => Vec::new(),
    };
    RolloutPlan {
        blue: blue.map(at),
        green: at(green),
        steps: rollout.steps(),
        bake_ms: millis(rollout.bake),
        period_ms: millis(spec.local.alarm_period),
        alarms,
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn file(target: &LocalTarget, name: &str, suffix: &str) -> PathBuf {
    target
        .state
        .kind_dir(KIND)
        .join(format!("{}.{suffix}", encode_name(name)))
}

fn plan_path(target: &LocalTarget, name: &str) -> PathBuf {
    file(target, name, "rollout-plan")
}

fn status_path(target: &LocalTarget, name: &str) -> PathBuf {
    file(target, name, "rollout-status")
}

/// Starts the router of `plan` on `port` (beside a server or an older router that holds it: both
/// bind with `SO_REUSEPORT`) and waits, bounded, until it listens and has written its status. A
/// router that does not is stopped, and the error has the log's tail.
pub(crate) async fn start(
    target: &LocalTarget,
    name: &str,
    binary: &ImageBinary,
    plan: &RolloutPlan,
    port: u16,
    log: &Path,
    marker: &Marker,
) -> Result<Listener, LocalError> {
    let plan_file = plan_path(target, name);
    let status_file = status_path(target, name);
    let json = serde_json::to_vec_pretty(plan)
        .map_err(std::io::Error::other)
        .map_err(io_error(KIND, name, "write", &plan_file))?;
    target
        .state
        .write_file(KIND, &format!("{}.rollout-plan", encode_name(name)), &json)?;
    std::fs::remove_file(&status_file)
        .or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(e)
            }
        })
        .map_err(io_error(KIND, name, "remove", &status_file))?;
    let listen = format!("127.0.0.1:{port}");
    let binary = binary.path();
    let spawned = process::spawn_detached(
        r#"echo "--- routing on $2" >>"$5"; "$1" route --listen "$2" --rollout "$3" --status "$4" >>"$5" 2>&1"#,
        &[
            binary.as_os_str(),
            listen.as_ref(),
            plan_file.as_os_str(),
            status_file.as_os_str(),
            log.as_os_str(),
        ],
        &[("NO_COLOR", "1".as_ref())],
        target.state.root(),
        marker,
    )
    .map_err(|source| LocalError::Spawn { kind: KIND, name: name.to_string(), binary: binary.to_path_buf(), source })?
    .map_err(|output| LocalError::NoPid { kind: KIND, name: name.to_string(), output })?;
    let router = Listener::new(spawned, port);
    let started = Instant::now();
    loop {
        let alive = process::alive(spawned, marker);
        if alive && process::listening(spawned.pid, port) == Some(true) && status_file.exists() {
            return Ok(router);
        }
        if !alive || started.elapsed() >= LISTEN_TIMEOUT {
            if let Some(ours) = process::ours(spawned, marker) {
                process::stop(ours, Duration::from_secs(2)).await;
            }
            let reason = if alive {
                format!("router did not listen on {listen} within {LISTEN_TIMEOUT:?}")
            } else {
                format!("router exited before listening on {listen}")
            };
            return Err(LocalError::NotServing {
                name: name.to_string(),
                reason,
                tail: process::log_tail(log, 20),
                log: log.to_path_buf(),
            });
        }
        tokio::time::sleep(LISTEN_POLL).await;
    }
}

/// The router's latest status; `None` while it has written none (or it cannot be read whole,
/// which the atomic rewrite rules out but a foreign edit does not).
pub(crate) fn status(target: &LocalTarget, name: &str) -> Option<RolloutStatus> {
    let text = std::fs::read_to_string(status_path(target, name)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Removes the plan and status files (the endpoint is deleted).
pub(crate) fn remove_files(target: &LocalTarget, name: &str) -> Result<(), LocalError> {
    for path in [plan_path(target, name), status_path(target, name)] {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_error(KIND, name, "remove", &path)(e));
            }
            _ => {}
        }
    }
    Ok(())
}

/// A rollout's progress in words: the step, green's share, when the bake ends (UTC time of day),
/// the alarms in ALARM, and the request counts.
pub(crate) fn describe(status: &RolloutStatus) -> String {
    let phase = match status.phase {
        RolloutPhase::Baking => format!("baking step {} of {}", status.step, status.steps),
        RolloutPhase::FinalBake => format!("final bake (step {} of {})", status.step, status.steps),
        RolloutPhase::Completed => "completed".to_string(),
        RolloutPhase::RolledBack => "rolled back".to_string(),
    };
    let mut text = format!(
        "{phase}: {}% of the traffic on the new server",
        status.green_percent
    );
    if matches!(status.phase, RolloutPhase::Baking | RolloutPhase::FinalBake) {
        let ends_ms = status.bake_started_unix_ms.saturating_add(status.bake_ms);
        let seconds_of_day = (ends_ms / 1000) % 86_400;
        text.push_str(&format!(
            ", bake ends at {:02}:{:02}:{:02} UTC",
            seconds_of_day / 3600,
            seconds_of_day / 60 % 60,
            seconds_of_day % 60
        ));
    }
    let alarming: Vec<&str> = status
        .alarms
        .iter()
        .filter(|a| a.state == AlarmState::Alarm)
        .map(|a| a.name.as_str())
        .collect();
    if !alarming.is_empty() {
        text.push_str(&format!("; in ALARM: {}", alarming.join(", ")));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::rollout::{AlarmStatus, RequestCounts, RolledBackBy};

    fn status(phase: RolloutPhase) -> RolloutStatus {
        RolloutStatus {
            phase,
            step: 1,
            steps: 2,
            green_percent: 50,
            // 1970-01-02 01:02:03 UTC, bake 10 s: ends 01:02:13.
            bake_started_unix_ms: (86_400 + 3_723) * 1000,
            bake_ms: 10_000,
            requests: RequestCounts { blue: 3, green: 4 },
            alarms: vec![AlarmStatus {
                name: "iot-model-latency".into(),
                state: AlarmState::Alarm,
                reason: "Threshold Crossed".into(),
            }],
            rolled_back_by: Some(RolledBackBy {
                name: "iot-model-latency".into(),
                reason: "Threshold Crossed".into(),
            }),
        }
    }

    fn spec(rollout: &str) -> Spec {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("train.csv"), "a,Label\n1,Normal\n").unwrap();
        let yaml = format!(
            "version: 1\nname: iot\ntarget: local\ndata: {{train: train.csv}}\n\
             endpoint: {{instance_count: 2, rollout: {rollout}}}\nlocal: {{alarm_period: 5s}}\n"
        );
        spec::parse(&yaml, "deploy.yaml", dir.path()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_plan_takes_the_steps_bake_period_and_owned_alarm_rules_from_the_spec() {
        let spec = spec(
            "{strategy: linear, step_percent: 40, bake: 30s, \
             alarms: {errors: {threshold: 3, datapoints: 1, periods: 2}, latency: {threshold_ms: 250, datapoints: 2, periods: 4}}}",
        );
        assert!(routes(&spec));
        let plan = plan(&spec, Some(41001), 41002);
        plan.validate().unwrap();
        assert_eq!(plan.blue, Some("127.0.0.1:41001".parse().unwrap()));
        assert_eq!(plan.green, "127.0.0.1:41002".parse().unwrap());
        assert_eq!(plan.steps, vec![40, 80, 100]);
        assert_eq!((plan.bake_ms, plan.period_ms), (30_000, 5_000));
        let rules: Vec<_> = plan
            .alarms
            .iter()
            .map(|a| (a.name.as_str(), a.metric, a.threshold, a.datapoints, a.periods))
            .collect();
        assert_eq!(
            rules,
            vec![
                (
                    "iot-invocation-5xx-errors",
                    AlarmMetric::Invocation5xxErrors,
                    3,
                    1,
                    2
                ),
                ("iot-model-latency", AlarmMetric::ModelLatency, 250_000, 2, 4),
            ]
        );
    }

    #[test]
    fn named_alarms_are_not_watched_and_an_unbaked_rollout_is_not_routed() {
        let named = spec("{strategy: canary, bake: 10s, alarms: [team-alarm]}");
        assert!(plan(&named, None, 41002).alarms.is_empty());
        assert!(!routes(&spec("{strategy: canary, bake: 0s}")));
    }

    #[test]
    fn a_rollout_is_described_by_step_share_bake_end_and_alarms() {
        assert_eq!(
            describe(&status(RolloutPhase::Baking)),
            "baking step 1 of 2: 50% of the traffic on the new server, bake ends at 01:02:13 UTC; \
             in ALARM: iot-model-latency"
        );
        let rolled_back = describe(&status(RolloutPhase::RolledBack));
        assert!(rolled_back.starts_with("rolled back: 50%"), "{rolled_back}");
        assert!(!rolled_back.contains("bake ends"), "{rolled_back}");
    }
}
