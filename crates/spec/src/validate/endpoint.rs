//! `endpoint` (instances or serverless capacity, real-time or asynchronous invocation, autoscaling
//! range, wait timeout; its `rollout` in [`super::rollout`]),
//! `bucket` and `local`.

use std::time::Duration;

use super::cx::{Cx, Entry, Section};
use super::training::instance_type;
use super::{keys, note, rollout};
use crate::defaults;
use crate::diagnostic::Kind;
use crate::model::{
    AsyncInference, Autoscaling, Bucket, Capacity, DataCapture, Endpoint, Invocation, Local, Rollout,
    Serverless,
};
use crate::yaml::Node;

/// The longest `endpoint.wait_timeout`: one day.
pub(crate) const WAIT_TIMEOUT_LIMIT: Duration = Duration::from_secs(86_400);

pub(super) fn bucket(cx: &mut Cx<'_>, top: &Section<'_>) -> Option<Bucket> {
    let section = cx.optional_section(top, "bucket", keys::BUCKET)?;
    let retain_on_down = match section.get("retain_on_down") {
        None => Some(defaults::RETAIN_BUCKET_ON_DOWN),
        Some(e) => cx.boolean(e.value, "bucket.retain_on_down"),
    };
    Some(Bucket {
        retain_on_down: retain_on_down?,
    })
}

pub(super) fn local(cx: &mut Cx<'_>, top: &Section<'_>) -> Option<Local> {
    let section = cx.optional_section(top, "local", keys::LOCAL)?;
    let state_dir = match section.get("state_dir") {
        None => Some(cx.base_dir.join(defaults::STATE_DIR)),
        Some(e) => cx
            .non_empty_string(e.value, "local.state_dir")
            .map(|s| cx.base_dir.join(s)),
    };
    let port = match section.get("port") {
        None => Some(None),
        Some(e) => cx
            .integer(e.value, "local.port", 1024, 65_535, false)
            .map(|p| Some(p as u16)),
    };
    let alarm_period = match section.get("alarm_period") {
        None => Some(defaults::ALARM_PERIOD_DURATION),
        Some(e) => cx.duration(
            e.value,
            "local.alarm_period",
            Duration::from_secs(1),
            defaults::ALARM_PERIOD_DURATION,
        ),
    };
    Some(Local {
        state_dir: state_dir?,
        port: port?,
        alarm_period: alarm_period?,
    })
}

pub(super) fn endpoint(cx: &mut Cx<'_>, top: &Section<'_>) -> Option<Endpoint> {
    let section = cx.optional_section(top, "endpoint", keys::ENDPOINT)?;
    let wait_timeout = match section.get("wait_timeout") {
        None => Some(defaults::WAIT_TIMEOUT_DURATION),
        Some(e) => cx.duration(
            e.value,
            "endpoint.wait_timeout",
            Duration::from_secs(1),
            WAIT_TIMEOUT_LIMIT,
        ),
    };
    if let Some(entry) = section.get("serverless") {
        let serverless = serverless(cx, &section, entry);
        return Some(Endpoint {
            capacity: Capacity::Serverless(serverless?),
            invocation: Invocation::RealTime,
            data_capture: None,
            autoscaling: None,
            wait_timeout: wait_timeout?,
            rollout: Rollout::default(),
        });
    }
    let instance_type = instance_type(
        cx,
        &section,
        "endpoint.instance_type",
        defaults::ENDPOINT_INSTANCE_TYPE,
    );
    let count_entry = section.get("instance_count");
    let instance_count = match count_entry {
        None => Some(defaults::ENDPOINT_INSTANCE_COUNT),
        Some(e) => cx
            .integer(e.value, "endpoint.instance_count", 1, u32::MAX.into(), false)
            .map(|v| v as u32),
    };
    let invocation = match section.get("async") {
        None => Some(Invocation::RealTime),
        Some(entry) => async_inference(cx, &section, entry).map(Invocation::Async),
    };
    let data_capture = match section.get("data_capture") {
        None => Some(None),
        Some(entry) => data_capture(cx, entry).map(Some),
    };
    let autoscaling = match section.get("autoscaling") {
        None => Some(None),
        Some(e) => {
            let scaling = cx.section(e.value, "endpoint.autoscaling", keys::AUTOSCALING, e.key.pos);
            autoscaling(cx, scaling.as_ref()).map(Some)
        }
    };

    let rollout = rollout::rollout(
        cx,
        &section,
        instance_count,
        autoscaling.as_ref().and_then(Option::as_ref),
    );

    // The initial instance count must be one the autoscaler would keep.
    if let (Some(Some(scaling)), Some(count)) = (&autoscaling, instance_count)
        && !(scaling.min..=scaling.max).contains(&count)
    {
        let range = format!("({} to {})", scaling.min, scaling.max);
        let scaling_entry = section.get("autoscaling").expect("autoscaling was read");
        match count_entry {
            Some(e) => {
                let d = cx.report(
                    Kind::Conflict,
                    e.value.pos,
                    Some("endpoint.instance_count"),
                    format!("`endpoint.instance_count` is {count}, outside the autoscaling range {range}"),
                    Some(format!(
                        "set `instance_count` from {} to {}, or widen the range",
                        scaling.min, scaling.max
                    )),
                );
                d.notes
                    .push(note(scaling_entry.key.pos, "the autoscaling range is set here"));
            }
            None => {
                cx.report(
                    Kind::Conflict,
                    scaling_entry.key.pos,
                    Some("endpoint.instance_count"),
                    format!(
                        "`endpoint.instance_count` defaults to {count}, outside the autoscaling range {range}"
                    ),
                    Some(format!("set `endpoint.instance_count: {}`", scaling.min)),
                );
            }
        }
        return None;
    }

    Some(Endpoint {
        capacity: Capacity::Instances {
            instance_type: instance_type?,
            count: instance_count?,
        },
        invocation: invocation?,
        data_capture: data_capture?,
        autoscaling: autoscaling?,
        wait_timeout: wait_timeout?,
        rollout: rollout?,
    })
}

/// The keys a serverless endpoint cannot have, with why: SageMaker's Serverless Inference runs
/// no instances of the user's, so it has nothing to size, scale or shift between, and it does
/// not support network isolation (orchestrate's models are isolated otherwise).
const NOT_SERVERLESS: &[(&str, &str)] = &[
    (
        "instance_type",
        "a serverless endpoint runs on no instance type of yours",
    ),
    (
        "instance_count",
        "a serverless endpoint runs on no instances of yours",
    ),
    (
        "autoscaling",
        "a serverless endpoint scales by itself up to `max_concurrency`",
    ),
    (
        "rollout",
        "deployment guardrails (canary, linear, bake, alarm rollback) need instances to shift traffic between",
    ),
    (
        "async",
        "asynchronous inference queues requests for instances of yours",
    ),
    (
        "data_capture",
        "SageMaker does not capture the traffic of serverless endpoints",
    ),
];

/// Reads `endpoint.serverless` and refuses what serverless capacity excludes (each key at its own
/// line, the serverless section as a note).
fn serverless(cx: &mut Cx<'_>, endpoint: &Section<'_>, entry: Entry<'_>) -> Option<Serverless> {
    let mut excluded = false;
    for (key, why) in NOT_SERVERLESS {
        if let Some(e) = endpoint.get(key) {
            excluded = true;
            let d = cx.report(
                Kind::Conflict,
                e.key.pos,
                Some(&format!("endpoint.{key}")),
                format!("`endpoint.{key}` cannot be used with `endpoint.serverless`: {why}"),
                Some(format!(
                    "remove `{key}`, or remove `serverless` to run on instances"
                )),
            );
            d.notes.push(note(entry.key.pos, "`serverless` is set here"));
        }
    }
    let section = cx.section(
        entry.value,
        "endpoint.serverless",
        keys::SERVERLESS,
        entry.key.pos,
    )?;
    let memory_mb = match section.get("memory_mb") {
        None => Some(defaults::SERVERLESS_MEMORY_MB),
        Some(e) => memory_mb(cx, e.value),
    };
    let max_concurrency = match section.get("max_concurrency") {
        None => Some(defaults::SERVERLESS_MAX_CONCURRENCY),
        Some(e) => cx
            .integer(
                e.value,
                "endpoint.serverless.max_concurrency",
                1,
                SERVERLESS_MAX_CONCURRENCY.into(),
                false,
            )
            .map(|v| v as u32),
    };
    let serverless = Serverless {
        memory_mb: memory_mb?,
        max_concurrency: max_concurrency?,
    };
    (!excluded).then_some(serverless)
}

/// Reads `endpoint.data_capture`.
fn data_capture(cx: &mut Cx<'_>, entry: Entry<'_>) -> Option<DataCapture> {
    let section = cx.section(
        entry.value,
        "endpoint.data_capture",
        keys::DATA_CAPTURE,
        entry.key.pos,
    )?;
    let sample_percent = match section.get("sample_percent") {
        None => Some(defaults::DATA_CAPTURE_SAMPLE_PERCENT),
        Some(e) => cx
            .integer(e.value, "endpoint.data_capture.sample_percent", 1, 100, false)
            .map(|v| v as u32),
    };
    Some(DataCapture {
        sample_percent: sample_percent?,
    })
}

/// Reads `endpoint.async`. A `rollout` beside it is refused: SageMaker would shift an async
/// endpoint's traffic, but the local target's router, which must try every rollout first, answers
/// only real-time requests.
fn async_inference(cx: &mut Cx<'_>, endpoint: &Section<'_>, entry: Entry<'_>) -> Option<AsyncInference> {
    let mut excluded = false;
    if let Some(e) = endpoint.get("rollout") {
        excluded = true;
        let d = cx.report(
            Kind::Conflict,
            e.key.pos,
            Some("endpoint.rollout"),
            "`endpoint.rollout` cannot be used with `endpoint.async`: orchestrate does not shift the \
             traffic of asynchronous endpoints yet (its local router answers real-time requests only)"
                .to_string(),
            Some(
                "remove `rollout` (an update then moves all traffic at once), or remove `async`".to_string(),
            ),
        );
        d.notes.push(note(entry.key.pos, "`async` is set here"));
    }
    let section = cx.section(entry.value, "endpoint.async", keys::ASYNC, entry.key.pos)?;
    let max_concurrent_invocations = match section.get("max_concurrent_invocations") {
        None => Some(defaults::ASYNC_MAX_CONCURRENT_INVOCATIONS),
        Some(e) => cx
            .integer(
                e.value,
                "endpoint.async.max_concurrent_invocations",
                1,
                ASYNC_MAX_CONCURRENT_INVOCATIONS.into(),
                false,
            )
            .map(|v| v as u32),
    };
    let inference = AsyncInference {
        max_concurrent_invocations: max_concurrent_invocations?,
    };
    (!excluded).then_some(inference)
}

/// The most queued requests one instance of an async endpoint works on at once (SageMaker's
/// `MaxConcurrentInvocationsPerInstance` limit).
pub(crate) const ASYNC_MAX_CONCURRENT_INVOCATIONS: u32 = 1000;

/// The most requests a serverless endpoint serves at once (SageMaker's `MaxConcurrency` limit).
pub(crate) const SERVERLESS_MAX_CONCURRENCY: u32 = 200;
/// The memory sizes SageMaker's `MemorySizeInMB` accepts: 1 to 6 GB in whole GB.
pub(crate) const SERVERLESS_MEMORY_STEP_MB: u32 = 1024;
pub(crate) const SERVERLESS_MEMORY_MAX_MB: u32 = 6 * SERVERLESS_MEMORY_STEP_MB;

fn memory_mb(cx: &mut Cx<'_>, node: &Node) -> Option<u32> {
    const KEY: &str = "endpoint.serverless.memory_mb";
    let value = cx.integer(
        node,
        KEY,
        SERVERLESS_MEMORY_STEP_MB.into(),
        SERVERLESS_MEMORY_MAX_MB.into(),
        false,
    )? as u32;
    if value.is_multiple_of(SERVERLESS_MEMORY_STEP_MB) {
        return Some(value);
    }
    let below = value / SERVERLESS_MEMORY_STEP_MB * SERVERLESS_MEMORY_STEP_MB;
    let above = below + SERVERLESS_MEMORY_STEP_MB;
    let nearest = if value - below < above - value {
        below
    } else {
        above
    };
    cx.invalid(
        node.pos,
        KEY,
        format!("`{KEY}` must be 1024, 2048, 3072, 4096, 5120 or 6144 (whole GB), found `{value}`"),
        format!("use `memory_mb: {nearest}`"),
    );
    None
}

fn autoscaling(cx: &mut Cx<'_>, section: Option<&Section<'_>>) -> Option<Autoscaling> {
    let section = section?;
    let min_entry = section.get("min");
    let min = match min_entry {
        None => Some(defaults::AUTOSCALING_MIN),
        Some(e) => cx
            .integer(e.value, "endpoint.autoscaling.min", 1, u32::MAX.into(), false)
            .map(|v| v as u32),
    };
    let max = match section.get("max") {
        None => {
            cx.missing(section, "max", "add `max: <most instances>`, at least `min`");
            None
        }
        Some(e) => cx
            .integer(e.value, "endpoint.autoscaling.max", 1, u32::MAX.into(), false)
            .map(|v| v as u32),
    };
    let invocations = match section.get("invocations_per_instance") {
        None => Some(defaults::INVOCATIONS_PER_INSTANCE),
        Some(e) => cx
            .integer(
                e.value,
                "endpoint.autoscaling.invocations_per_instance",
                1,
                u32::MAX.into(),
                false,
            )
            .map(|v| v as u32),
    };
    let (min, max) = (min?, max?);
    if min > max {
        let max_entry = section.get("max").expect("max was read");
        let d = cx.report(
            Kind::Conflict,
            max_entry.value.pos,
            Some("endpoint.autoscaling.max"),
            format!("`endpoint.autoscaling.max` ({max}) is less than `min` ({min})"),
            Some("`max` must be at least `min`".into()),
        );
        match min_entry {
            Some(e) => d.notes.push(note(e.value.pos, "`min` is set here")),
            None => d.message.push_str(" (the default)"),
        }
        return None;
    }
    Some(Autoscaling {
        min,
        max,
        invocations_per_instance: invocations?,
    })
}
