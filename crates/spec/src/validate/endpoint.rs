//! `endpoint` (instances, autoscaling range, wait timeout; its `rollout` in [`super::rollout`]),
//! `bucket` and `local`.

use std::time::Duration;

use super::cx::{Cx, Section};
use super::training::instance_type;
use super::{keys, note, rollout};
use crate::defaults;
use crate::diagnostic::Kind;
use crate::model::{Autoscaling, Bucket, Endpoint, Local};

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
    let wait_timeout = match section.get("wait_timeout") {
        None => Some(defaults::WAIT_TIMEOUT_DURATION),
        Some(e) => cx.duration(
            e.value,
            "endpoint.wait_timeout",
            Duration::from_secs(1),
            WAIT_TIMEOUT_LIMIT,
        ),
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
        instance_type: instance_type?,
        instance_count: instance_count?,
        autoscaling: autoscaling?,
        wait_timeout: wait_timeout?,
        rollout: rollout?,
    })
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
