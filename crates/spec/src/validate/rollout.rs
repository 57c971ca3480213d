//! `endpoint.rollout`: how an update shifts traffic to the new fleet (SageMaker's blue/green
//! deployment guardrails), how long each step bakes, and which CloudWatch alarms roll it back.

use std::collections::HashMap;
use std::time::Duration;

use super::cx::{Cx, Section};
use super::{entry_at, keys, note};
use crate::defaults;
use crate::diagnostic::Kind;
use crate::model::{AlarmRule, Autoscaling, OwnedAlarms, Rollout, RolloutAlarms, RolloutStrategy};
use crate::suggest::did_you_mean;
use crate::yaml::{Node, Pos, Value};

/// `canary_percent`: SageMaker's canary is at most half of the new fleet.
pub(crate) const CANARY_PERCENT: (i64, i64) = (1, 50);
/// `step_percent`: SageMaker's linear steps are 10 to 50 percent of the new fleet.
pub(crate) const STEP_PERCENT: (i64, i64) = (10, 50);
/// The longest `bake`: SageMaker waits at most one hour per step.
pub(crate) const BAKE_LIMIT: Duration = Duration::from_secs(3_600);
/// SageMaker watches at most 10 alarms per rollout.
pub(crate) const MAX_ALARMS: usize = 10;
/// CloudWatch alarm names are 1 to 255 characters.
pub(crate) const MAX_ALARM_NAME: usize = 255;
/// The highest latency threshold: SageMaker times an invocation out after 60 seconds.
pub(crate) const MAX_LATENCY_MS: i64 = 60_000;
/// CloudWatch evaluates at most one day: 1440 one-minute periods.
pub(crate) const MAX_PERIODS: i64 = 1_440;

const STRATEGY: &str = "endpoint.rollout.strategy";
const ALARMS: &str = "endpoint.rollout.alarms";
const STRATEGIES: [&str; 3] = ["all_at_once", "canary", "linear"];

/// A strategy as named, before its step size is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Name {
    AllAtOnce,
    Canary,
    Linear,
}

impl Name {
    fn as_str(self) -> &'static str {
        match self {
            Name::AllAtOnce => "all_at_once",
            Name::Canary => "canary",
            Name::Linear => "linear",
        }
    }
}

/// Reads `endpoint.rollout` of the `endpoint` section. `count` and `scaling` are the fleet as read
/// (`None` when they were invalid, and then not checked against the strategy).
pub(super) fn rollout(
    cx: &mut Cx<'_>,
    endpoint: &Section<'_>,
    count: Option<u32>,
    scaling: Option<&Autoscaling>,
) -> Option<Rollout> {
    let Some(entry) = endpoint.get("rollout") else {
        return Some(Rollout::default());
    };
    let section = cx.section(entry.value, "endpoint.rollout", keys::ROLLOUT, entry.key.pos)?;
    let strategy_entry = section.get("strategy");
    let name = match strategy_entry {
        None => Some(Name::AllAtOnce),
        Some(e) => strategy_name(cx, e.value),
    };
    let strategy_pos = strategy_entry.map(|e| e.value.pos);
    let canary = percent(
        cx,
        &section,
        "canary_percent",
        (name, strategy_pos),
        Name::Canary,
        CANARY_PERCENT,
        defaults::CANARY_PERCENT,
    );
    let step = percent(
        cx,
        &section,
        "step_percent",
        (name, strategy_pos),
        Name::Linear,
        STEP_PERCENT,
        defaults::STEP_PERCENT,
    );
    let bake = match section.get("bake") {
        None => Some(defaults::BAKE_DURATION),
        Some(e) => cx.duration(e.value, "endpoint.rollout.bake", Duration::ZERO, BAKE_LIMIT),
    };
    let alarms = match section.get("alarms") {
        None => Some(RolloutAlarms::Owned(OwnedAlarms::DEFAULT)),
        Some(e) => alarms(cx, e.value, e.key.pos),
    };
    let (canary, step) = (canary?, step?);
    let strategy = match name? {
        Name::AllAtOnce => RolloutStrategy::AllAtOnce,
        Name::Canary => RolloutStrategy::Canary { percent: canary },
        Name::Linear => RolloutStrategy::Linear { step_percent: step },
    };
    if let (true, Some(pos)) = (strategy.is_stepwise(), strategy_pos)
        && !fleet_fits(cx, endpoint, pos, name?, count, scaling)
    {
        return None;
    }
    Some(Rollout {
        strategy,
        bake: bake?,
        alarms: alarms?,
    })
}

fn strategy_name(cx: &mut Cx<'_>, node: &Node) -> Option<Name> {
    let Value::Str(text) = &node.value else {
        cx.wrong_type(
            node,
            STRATEGY,
            "one of `all_at_once`, `canary` or `linear`",
            "write `strategy: all_at_once`, `strategy: canary` or `strategy: linear`",
        );
        return None;
    };
    match text.as_str() {
        "all_at_once" => return Some(Name::AllAtOnce),
        "canary" => return Some(Name::Canary),
        "linear" => return Some(Name::Linear),
        _ => {}
    }
    let normal = text.trim().to_ascii_lowercase().replace(['-', ' '], "_");
    let meant = match normal.as_str() {
        n if STRATEGIES.contains(&n) => STRATEGIES.into_iter().find(|s| *s == n),
        "allatonce" | "all" | "at_once" | "once" | "immediate" | "blue_green" | "bluegreen" => {
            Some("all_at_once")
        }
        "rolling" | "steps" | "stepwise" | "gradual" => Some("linear"),
        _ => did_you_mean(&normal, STRATEGIES),
    };
    let help = match meant {
        Some(m) => format!("did you mean `{m}`?"),
        None => "use `all_at_once` (the default), `canary` or `linear`".into(),
    };
    cx.invalid(
        node.pos,
        STRATEGY,
        format!("unknown strategy `{text}` in `endpoint.rollout`"),
        help,
    );
    None
}

/// `canary_percent` or `step_percent`: its default, its value, or a conflict when the strategy is
/// another one. `None` when something was reported.
fn percent(
    cx: &mut Cx<'_>,
    section: &Section<'_>,
    key: &str,
    (name, strategy_pos): (Option<Name>, Option<Pos>),
    owner: Name,
    (min, max): (i64, i64),
    default: u32,
) -> Option<u32> {
    let path = section.path_of(key);
    let Some(e) = section.get(key) else {
        return Some(default);
    };
    match name {
        Some(name) if name != owner => {
            let strategy = name.as_str();
            let written = if strategy_pos.is_some() {
                ""
            } else {
                " (the default)"
            };
            let message = format!(
                "`{path}` applies only to `strategy: {}`, but the strategy is `{strategy}`{written}",
                owner.as_str()
            );
            let help = match (owner, name) {
                (Name::Canary, Name::Linear) => {
                    "with `strategy: linear`, set the step size with `step_percent`, or use `strategy: canary`"
                }
                (Name::Linear, Name::Canary) => {
                    "with `strategy: canary`, set the first step with `canary_percent`, or use `strategy: linear`"
                }
                (Name::Canary, _) => {
                    "set `strategy: canary` to shift `canary_percent` first, or remove `canary_percent`"
                }
                _ => "set `strategy: linear` to shift in steps of `step_percent`, or remove `step_percent`",
            };
            let d = cx.report(Kind::Conflict, e.key.pos, Some(&path), message, Some(help.into()));
            if let Some(pos) = strategy_pos {
                d.notes.push(note(pos, "the strategy is set here"));
            }
            None
        }
        _ => cx.integer(e.value, &path, min, max, false).map(|v| v as u32),
    }
}

/// A stepwise strategy shifts a share of the fleet (at most half of it) per step, so the fleet must
/// never be smaller than two instances. Reports at the strategy; `false` when anything was reported.
fn fleet_fits(
    cx: &mut Cx<'_>,
    endpoint: &Section<'_>,
    strategy_pos: Pos,
    name: Name,
    count: Option<u32>,
    scaling: Option<&Autoscaling>,
) -> bool {
    let name = name.as_str();
    let mut fits = true;
    if let Some(count) = count
        && count < 2
    {
        fits = false;
        let count_entry = endpoint.get("instance_count");
        let is = if count_entry.is_some() {
            "is"
        } else {
            "defaults to"
        };
        let d = cx.report(
            Kind::Conflict,
            strategy_pos,
            Some(STRATEGY),
            format!(
                "`strategy: {name}` shifts traffic a share of the fleet at a time and needs at least 2 instances, but `endpoint.instance_count` {is} {count}"
            ),
            Some("set `endpoint.instance_count: 2` or more, or use `strategy: all_at_once`".into()),
        );
        if let Some(e) = count_entry {
            d.notes
                .push(note(e.value.pos, "`endpoint.instance_count` is set here"));
        }
    }
    if let Some(scaling) = scaling
        && scaling.min < 2
        && let Some(scaling_entry) = endpoint.get("autoscaling")
    {
        fits = false;
        let min_entry = entry_at(scaling_entry.value, &["min"]);
        let is = if min_entry.is_some() { "is" } else { "defaults to" };
        let d = cx.report(
            Kind::Conflict,
            strategy_pos,
            Some(STRATEGY),
            format!(
                "`strategy: {name}` needs at least 2 instances, but `endpoint.autoscaling.min` {is} {}: the autoscaler could shrink the fleet below two",
                scaling.min
            ),
            Some("set `endpoint.autoscaling.min: 2` or more, or use `strategy: all_at_once`".into()),
        );
        match min_entry {
            Some(e) => d
                .notes
                .push(note(e.value.pos, "`endpoint.autoscaling.min` is set here")),
            None => d
                .notes
                .push(note(scaling_entry.key.pos, "the autoscaling range is set here")),
        }
    }
    fits
}

/// `alarms`: `default`, `none`, a list of alarm names, or a map of rules for the owned alarms.
fn alarms(cx: &mut Cx<'_>, node: &Node, key_pos: Pos) -> Option<RolloutAlarms> {
    const EXPECTED: &str = "`default`, `none`, a list of alarm names or a map of rules";
    match &node.value {
        Value::Str(s) if s == "default" => Some(RolloutAlarms::Owned(OwnedAlarms::DEFAULT)),
        Value::Str(s) if s == "none" => Some(RolloutAlarms::None),
        Value::Str(s) => {
            let normal = s.trim().to_ascii_lowercase();
            let list = format!("an existing alarm goes in a list: `alarms: [{}]`", s.trim());
            let help = match did_you_mean(&normal, ["default", "none"]) {
                Some(m) => format!("did you mean `{m}`? ({list})"),
                None => format!("{list}; or write `default` (alarms orchestrate creates) or `none`"),
            };
            cx.invalid(
                node.pos,
                ALARMS,
                format!("`{ALARMS}` must be {EXPECTED}, found `{s}`"),
                help,
            );
            None
        }
        Value::Seq(items) => named(cx, node, items),
        Value::Map(_) => {
            let section = cx.section(node, ALARMS, keys::ALARMS, key_pos)?;
            owned(cx, &section).map(RolloutAlarms::Owned)
        }
        Value::Bool(false) => {
            cx.wrong_type(node, ALARMS, EXPECTED, "write `alarms: none` for no alarm");
            None
        }
        Value::Bool(true) => {
            let help = "write `alarms: default` for the alarms orchestrate creates";
            cx.wrong_type(node, ALARMS, EXPECTED, help);
            None
        }
        _ => {
            let help = "write `default`, `none`, a list such as `[my-5xx-alarm]`, or rules such as `{errors: {threshold: 5}}`";
            cx.wrong_type(node, ALARMS, EXPECTED, help);
            None
        }
    }
}

/// A list of existing CloudWatch alarm names: 1 to 10, each 1 to 255 characters, no duplicates.
fn named(cx: &mut Cx<'_>, node: &Node, items: &[Node]) -> Option<RolloutAlarms> {
    if items.is_empty() {
        cx.invalid(
            node.pos,
            ALARMS,
            format!("`{ALARMS}` is an empty list"),
            "name 1 to 10 existing CloudWatch alarms, or write `alarms: none` for no alarm",
        );
        return None;
    }
    let mut ok = true;
    let mut out = Vec::new();
    let mut first_listed: HashMap<&str, Pos> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let key = format!("{ALARMS}[{i}]");
        if i == MAX_ALARMS {
            let extra = items.len() - MAX_ALARMS;
            cx.invalid(
                item.pos,
                &key,
                format!(
                    "`{ALARMS}` lists {} alarms; SageMaker watches at most {MAX_ALARMS}",
                    items.len()
                ),
                format!("remove {extra} of them, or combine several into one CloudWatch composite alarm"),
            );
            ok = false;
        }
        let Some(name) = cx.non_empty_string(item, &key) else {
            ok = false;
            continue;
        };
        let len = name.chars().count();
        if len > MAX_ALARM_NAME {
            cx.invalid(
                item.pos,
                &key,
                format!(
                    "`{key}` is {len} characters long; CloudWatch alarm names are at most {MAX_ALARM_NAME}"
                ),
                "write the alarm's exact name as CloudWatch shows it",
            );
            ok = false;
            continue;
        }
        if let Some(&first) = first_listed.get(name) {
            let d = cx.report(
                Kind::DuplicateKey,
                item.pos,
                Some(&key),
                format!("`{name}` is listed twice in `{ALARMS}`"),
                Some("remove one of them".into()),
            );
            d.notes.push(note(first, "first listed here"));
            ok = false;
            continue;
        }
        first_listed.insert(name, item.pos);
        out.push(name.to_string());
    }
    ok.then_some(RolloutAlarms::Named(out))
}

/// The map form of `alarms`: rules of the owned alarms, each key defaulting.
fn owned(cx: &mut Cx<'_>, section: &Section<'_>) -> Option<OwnedAlarms> {
    let errors = rule(
        cx,
        section,
        ("errors", keys::ALARM_ERRORS),
        ("threshold", 1, u32::MAX.into(), 1),
        OwnedAlarms::DEFAULT.errors,
    );
    let latency = rule(
        cx,
        section,
        ("latency", keys::ALARM_LATENCY),
        ("threshold_ms", 1, MAX_LATENCY_MS, 1_000),
        OwnedAlarms::DEFAULT.latency,
    );
    Some(OwnedAlarms {
        errors: errors?,
        latency: latency?,
    })
}

/// One owned alarm's rule. `threshold` is (key, min, max, factor to the stored unit).
fn rule(
    cx: &mut Cx<'_>,
    alarms: &Section<'_>,
    (name, known): (&str, &[&'static str]),
    (threshold_key, min, max, factor): (&str, i64, i64, u64),
    default: AlarmRule,
) -> Option<AlarmRule> {
    let Some(e) = alarms.get(name) else {
        return Some(default);
    };
    let section = cx.section(e.value, &alarms.path_of(name), known, e.key.pos)?;
    let threshold = match section.get(threshold_key) {
        None => Some(default.threshold),
        Some(t) => cx
            .integer(t.value, &section.path_of(threshold_key), min, max, false)
            .map(|v| v as u64 * factor),
    };
    let periods_entry = section.get("periods");
    let periods = match periods_entry {
        None => Some(default.periods),
        Some(p) => cx
            .integer(p.value, &section.path_of("periods"), 1, MAX_PERIODS, false)
            .map(|v| v as u32),
    };
    let datapoints_entry = section.get("datapoints");
    let datapoints = match datapoints_entry {
        None => Some(default.datapoints),
        Some(d) => cx
            .integer(d.value, &section.path_of("datapoints"), 1, MAX_PERIODS, false)
            .map(|v| v as u32),
    };
    let (threshold, periods, datapoints) = (threshold?, periods?, datapoints?);
    if datapoints > periods {
        let datapoints_key = section.path_of("datapoints");
        let periods_key = section.path_of("periods");
        match (datapoints_entry, periods_entry) {
            (Some(d), periods_entry) => {
                let default = if periods_entry.is_some() {
                    ""
                } else {
                    ", the default"
                };
                let r = cx.report(
                    Kind::Conflict,
                    d.value.pos,
                    Some(&datapoints_key),
                    format!("`{datapoints_key}` ({datapoints}) is more than `periods` ({periods}{default})"),
                    Some(format!(
                        "`datapoints` counts the breaching minutes among the last `periods`: set it from 1 to {periods}, or raise `periods`"
                    )),
                );
                if let Some(p) = periods_entry {
                    r.notes.push(note(p.value.pos, "`periods` is set here"));
                }
            }
            (None, Some(p)) => {
                cx.report(
                    Kind::Conflict,
                    p.value.pos,
                    Some(&periods_key),
                    format!(
                        "`{periods_key}` ({periods}) is less than `datapoints` ({datapoints}, the default)"
                    ),
                    Some(format!(
                        "set `datapoints` from 1 to {periods} too, or raise `periods` to {datapoints} or more"
                    )),
                );
            }
            (None, None) => unreachable!("the default rules have datapoints <= periods"),
        }
        return None;
    }
    Some(AlarmRule {
        threshold,
        datapoints,
        periods,
    })
}
