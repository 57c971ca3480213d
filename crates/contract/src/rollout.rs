//! The canary router's contract (`model-image route`) with its caller, the local target: the rollout
//! plan it reads (`--rollout PLAN.json`) and the status it keeps rewriting (`--status STATUS.json`).
//! Both are plain serde types with `deny_unknown_fields`, here so that orchestrate writes and reads
//! the very same structs the router does, and a misspelt field is an error, not a silently ignored
//! setting.
//!
//! The alarm rules follow CloudWatch's metric alarms as SageMaker's deployment guardrails use them:
//! one datapoint per `period_ms`, ALARM when `datapoints` of the last `periods` datapoints breach
//! (the evaluation rule is in [`super::alarm`]).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// `PLAN.json`: where blue and green listen, the traffic steps, and the alarms that roll back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutPlan {
    /// The old server (plain HTTP), e.g. `127.0.0.1:41001`. `None` when there is none (the
    /// endpoint's first server): the router is then only the endpoint's front, completed at once
    /// with all traffic on green.
    pub blue: Option<SocketAddr>,
    /// The new server.
    pub green: SocketAddr,
    /// Percent of the traffic on green after each step, increasing, each 1-100, the last 100.
    pub steps: Vec<u32>,
    /// How long each step bakes; the last step (100 %) is the final bake, blue still kept.
    pub bake_ms: u64,
    /// The alarms' evaluation period (CloudWatch's one minute is 60000).
    pub period_ms: u64,
    /// Evaluated on green's answers only; any of them in ALARM during a bake rolls back.
    #[serde(default)]
    pub alarms: Vec<AlarmRule>,
}

/// One CloudWatch-style alarm on green's metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmRule {
    /// Shown in the status and the rollback reason, e.g. `iot-invocation-5xx-errors`.
    pub name: String,
    pub metric: AlarmMetric,
    /// `invocation_5xx_errors`: breaching when a period's count is `>= threshold`;
    /// `model_latency`: breaching when a period's p99 in microseconds is `> threshold`.
    pub threshold: u64,
    /// How many breaching datapoints of the last `periods` put the alarm in ALARM (1..=periods).
    pub datapoints: u32,
    /// How many of the latest periods are evaluated (CloudWatch's `EvaluationPeriods`).
    pub periods: u32,
}

/// The metric an alarm watches, measured by the router on green's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AlarmMetric {
    /// Sum per period of green's 5xx answers (a green that cannot be reached answers 502).
    #[serde(rename = "invocation_5xx_errors")]
    Invocation5xxErrors,
    /// p99 per period of green's response time in microseconds, measured around the backend call.
    #[serde(rename = "model_latency")]
    ModelLatency,
}

impl AlarmMetric {
    /// The comparison in CloudWatch's words, for reasons.
    pub fn comparison(self) -> &'static str {
        match self {
            Self::Invocation5xxErrors => "greater than or equal to",
            Self::ModelLatency => "greater than",
        }
    }

    /// Whether a datapoint breaches `threshold`.
    pub fn breaches(self, value: u64, threshold: u64) -> bool {
        match self {
            Self::Invocation5xxErrors => value >= threshold,
            Self::ModelLatency => value > threshold,
        }
    }
}

/// `STATUS.json`, rewritten atomically (temporary file, then rename) on every change of phase, step
/// or alarm state, and while traffic flows at least once a second (and once per period).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutStatus {
    pub phase: RolloutPhase,
    /// 1-based step being baked (the last step during the final bake and afterwards).
    pub step: u32,
    /// Number of steps in the plan.
    pub steps: u32,
    /// Percent of the traffic green gets now (0 once rolled back, 100 once completed).
    pub green_percent: u32,
    /// When the current bake began (Unix milliseconds).
    pub bake_started_unix_ms: u64,
    pub bake_ms: u64,
    /// Requests sent to each backend since the router started.
    pub requests: RequestCounts,
    /// One per rule of the plan, in its order.
    pub alarms: Vec<AlarmStatus>,
    /// The alarm that rolled back, once one has.
    pub rolled_back_by: Option<RolledBackBy>,
}

/// Where the rollout is. `completed` and `rolled_back` are final: the router keeps serving with all
/// traffic on green, or on blue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutPhase {
    Baking,
    FinalBake,
    Completed,
    RolledBack,
}

impl RolloutPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Baking => "baking",
            Self::FinalBake => "final_bake",
            Self::Completed => "completed",
            Self::RolledBack => "rolled_back",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestCounts {
    pub blue: u64,
    pub green: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmStatus {
    pub name: String,
    pub state: AlarmState,
    /// CloudWatch-style state reason.
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlarmState {
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "ALARM")]
    Alarm,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolledBackBy {
    /// The alarm's name.
    pub name: String,
    /// Its reason when it went into ALARM.
    pub reason: String,
}

impl RolloutPlan {
    /// Parses and checks a plan.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let plan: Self = serde_json::from_str(text).map_err(|e| format!("invalid rollout plan: {e}"))?;
        plan.validate()?;
        Ok(plan)
    }

    /// Steps increasing within 1-100 and ending at 100, positive durations, alarms with
    /// `1 <= datapoints <= periods` and distinct names, blue and green not the same address.
    pub fn validate(&self) -> Result<(), String> {
        let fail = |message: String| Err(format!("invalid rollout plan: {message}"));
        if self.blue == Some(self.green) {
            return fail(format!("blue and green are both {}", self.green));
        }
        if self.steps.last() != Some(&100) {
            return fail(format!(
                "steps must end at 100 (percent on green), not {:?}",
                self.steps
            ));
        }
        if self.steps.iter().any(|&s| s == 0 || s > 100) || self.steps.windows(2).any(|w| w[0] >= w[1]) {
            return fail(format!(
                "steps must be increasing percentages from 1 to 100, not {:?}",
                self.steps
            ));
        }
        if self.bake_ms == 0 || self.period_ms == 0 {
            return fail("bake_ms and period_ms must be more than 0".to_owned());
        }
        for (i, alarm) in self.alarms.iter().enumerate() {
            if alarm.name.trim().is_empty() {
                return fail(format!("alarm {} has no name", i + 1));
            }
            if self.alarms[..i].iter().any(|a| a.name == alarm.name) {
                return fail(format!("two alarms are named {:?}", alarm.name));
            }
            if alarm.periods == 0 || alarm.datapoints == 0 || alarm.datapoints > alarm.periods {
                return fail(format!(
                    "alarm {:?}: need 1 <= datapoints <= periods, not {} of {}",
                    alarm.name, alarm.datapoints, alarm.periods
                ));
            }
            if alarm.periods > 1440 {
                return fail(format!("alarm {:?}: at most 1440 periods", alarm.name));
            }
        }
        Ok(())
    }
}
