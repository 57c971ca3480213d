//! From the position-carrying YAML tree to a [`Spec`]: one hand-written validator per section that
//! reads every key, reports every problem (unknown keys with a did-you-mean, wrong types, broken
//! constraints, missing files, impossible combinations) and builds the typed value only when the
//! whole file is valid.

mod cx;
mod data;
mod endpoint;
pub(crate) mod keys;
mod monitoring;
pub(crate) mod rollout;
pub(crate) mod training;

use std::collections::BTreeMap;

pub(crate) use cx::Cx;
use cx::{Entry, Section};

use crate::Overrides;
use crate::defaults;
use crate::diagnostic::{Kind, Location, Note};
use crate::model::{Spec, Target, Validation};
use crate::names::{self, DeploymentName, Region};
use crate::suggest::did_you_mean;
use crate::yaml::{Node, Pos, Value};

/// Where the effective target came from, to explain conflicts with it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TargetOrigin {
    Default,
    File(Pos),
    Flag,
}

/// Validates a whole document. `None` when anything was reported.
pub(crate) fn validate(cx: &mut Cx<'_>, root: &Node, overrides: &Overrides) -> Option<Spec> {
    let top = cx.section(root, "", keys::TOP, root.pos)?;

    version(cx, &top);
    let name = name(cx, &top);
    let (target, target_origin) = target(cx, &top, overrides);
    let region = region(cx, &top);
    let tags = tags(cx, &top);
    let data = data::data(cx, &top, target.map(|t| (t, target_origin)));
    let bucket = endpoint::bucket(cx, &top);
    let training = training::training(cx, &top);
    let endpoint = endpoint::endpoint(cx, &top);
    let captured = entry_at(root, &["endpoint", "data_capture"]).is_some();
    let monitoring = monitoring::monitoring(cx, &top, captured);
    let local = endpoint::local(cx, &top);

    if let (Some(name), Some(region)) = (&name, &region) {
        bucket_name_fits(cx, &top, name, region);
    }

    // The validation fraction can be set in two places; both at once is a conflict.
    let data_validation = entry_at(root, &["data", "validation"]);
    let hp_validation = entry_at(root, &["training", "hyperparameters", "validation_fraction"]);
    if let (Some(data_v), Some(hp_v)) = (data_validation, hp_validation) {
        let d = cx.report(
            Kind::Conflict,
            hp_v.key.pos,
            Some("training.hyperparameters.validation_fraction"),
            "`training.hyperparameters.validation_fraction` conflicts with `data.validation`",
            Some(
                "set the validation set in one place: keep `data.validation` and remove the hyperparameter"
                    .into(),
            ),
        );
        d.notes
            .push(note(data_v.key.pos, "`data.validation` is set here"));
    }

    let mut data = data?;
    let training = training?;
    if data_validation.is_none()
        && let Some(f) = training.hyperparameters.validation_fraction
    {
        data.validation = Validation::Fraction(f);
    }

    if !cx.diags.is_empty() {
        return None;
    }
    Some(Spec {
        name: name?,
        target: target?,
        region: region?,
        tags: tags?,
        data,
        bucket: bucket?,
        training,
        endpoint: endpoint?,
        monitoring: monitoring?,
        local: local?,
    })
}

pub(crate) fn note(pos: Pos, message: impl Into<String>) -> Note {
    Note {
        location: Location {
            line: pos.line,
            column: pos.column,
        },
        message: message.into(),
        span: (pos.offset, pos.len),
    }
}

/// The first `key: value` at a path of mapping keys, whatever its validity; null values count as absent.
pub(crate) fn entry_at<'n>(root: &'n Node, path: &[&str]) -> Option<Entry<'n>> {
    let mut node = root;
    let mut found = None;
    for key in path {
        let Value::Map(pairs) = &node.value else {
            return None;
        };
        let (k, v) = pairs.iter().find(|(k, _)| k.as_str() == Some(key))?;
        found = Some(Entry { key: k, value: v });
        node = v;
    }
    found.filter(|e| !e.value.is_null())
}

/// Position of a key's value when written, else of the section anchor (for defaults).
fn pos_or(section: &Section<'_>, key: &str) -> Pos {
    section.get(key).map_or(section.anchor, |e| e.value.pos)
}

fn version(cx: &mut Cx<'_>, top: &Section<'_>) {
    let Some(e) = top.get("version") else {
        cx.missing(top, "version", "add `version: 1` as the first line");
        return;
    };
    match &e.value.value {
        Value::Int(1) => {}
        Value::Int(v) => cx.invalid(
            e.value.pos,
            "version",
            format!("unsupported `version: {v}`"),
            "this orchestrate reads `version: 1`",
        ),
        Value::Str(s) if s.trim() == "1" => cx.wrong_type(
            e.value,
            "version",
            "the integer `1`",
            "remove the quotes: `version: 1`",
        ),
        _ => cx.wrong_type(e.value, "version", "the integer `1`", "write `version: 1`"),
    }
}

fn name(cx: &mut Cx<'_>, top: &Section<'_>) -> Option<DeploymentName> {
    let Some(e) = top.get("name") else {
        cx.missing(
            top,
            "name",
            "add `name: <deployment name>`, e.g. `name: iot-anomaly`; every resource name derives from it",
        );
        return None;
    };
    let text = cx.string(e.value, "name")?;
    match DeploymentName::new(text) {
        Ok(n) => Some(n),
        Err(err) => {
            cx.invalid(
                e.value.pos,
                "name",
                format!("`name`: {err}"),
                err.hint.clone().unwrap_or_default(),
            );
            None
        }
    }
}

fn target(cx: &mut Cx<'_>, top: &Section<'_>, overrides: &Overrides) -> (Option<Target>, TargetOrigin) {
    let from_file = top.get("target").and_then(|e| {
        let text = cx.string(e.value, "target")?;
        match text.parse::<Target>() {
            Ok(t) => Some((t, e.key.pos)),
            Err(_) => {
                let options = Target::ALL.map(Target::as_str);
                let help = match did_you_mean(text, options) {
                    Some(t) => format!("did you mean `{t}`?"),
                    None => "`local` runs everything on this machine; `aws` deploys to SageMaker".into(),
                };
                let message = format!("`target` must be `local` or `aws`, found `{text}`");
                cx.invalid(e.value.pos, "target", message, help);
                None
            }
        }
    });
    let file_failed = top.get("target").is_some() && from_file.is_none();
    match (overrides.target, from_file) {
        (Some(t), _) => (Some(t), TargetOrigin::Flag),
        (None, Some((t, pos))) => (Some(t), TargetOrigin::File(pos)),
        (None, None) if file_failed => (None, TargetOrigin::Default),
        (None, None) => (Some(Target::Local), TargetOrigin::Default),
    }
}

fn region(cx: &mut Cx<'_>, top: &Section<'_>) -> Option<Region> {
    let Some(e) = top.get("region") else {
        return Some(Region::new(defaults::REGION).expect("the default region is valid"));
    };
    let text = cx.string(e.value, "region")?;
    match Region::new(text) {
        Ok(r) => Some(r),
        Err(err) => {
            cx.invalid(
                e.value.pos,
                "region",
                format!("`region`: {err}"),
                err.hint.clone().unwrap_or_default(),
            );
            None
        }
    }
}

fn bucket_name_fits(cx: &mut Cx<'_>, top: &Section<'_>, name: &DeploymentName, region: &Region) {
    let len = names::bucket_name_len(name.as_str(), region.as_str());
    if len <= names::MAX_BUCKET_LEN {
        return;
    }
    let shorter = name.as_str().len() - (len - names::MAX_BUCKET_LEN);
    let message = format!(
        "the data bucket `{name}-<account>-{region}` would be {len} characters; S3 allows {}",
        names::MAX_BUCKET_LEN
    );
    let help = format!("shorten `name` to at most {shorter} characters");
    let at = if top.get("region").is_some() {
        pos_or(top, "region")
    } else {
        pos_or(top, "name")
    };
    cx.invalid(at, "name", message, help);
}

fn tags(cx: &mut Cx<'_>, top: &Section<'_>) -> Option<BTreeMap<String, String>> {
    let mut tags = BTreeMap::new();
    let Some(e) = top.get("tags") else {
        return Some(tags);
    };
    let Value::Map(pairs) = &e.value.value else {
        cx.wrong_type(
            e.value,
            "tags",
            "a mapping of tag keys to values",
            "e.g. `tags: {team: ml-platform}`",
        );
        return None;
    };
    let before = cx.diags.len();
    let mut seen: BTreeMap<String, Pos> = BTreeMap::new();
    for (k, v) in pairs {
        let key = k.scalar_text().unwrap_or_default();
        let key_path = format!("tags.{key}");
        if let Some(first) = seen.get(&key) {
            let d = cx.report(
                Kind::DuplicateKey,
                k.pos,
                Some(&key_path),
                format!("duplicate tag `{key}`"),
                Some("remove one of them".into()),
            );
            d.notes.push(note(*first, format!("`{key}` is first set here")));
            continue;
        }
        seen.insert(key.clone(), k.pos);
        if let Err(err) = names::check_tag_key(&key) {
            cx.invalid(
                k.pos,
                &key_path,
                format!("`tags`: {err}"),
                err.hint.clone().unwrap_or_default(),
            );
        }
        let Some(value) = cx.string(v, &key_path) else {
            continue;
        };
        if let Err(err) = names::check_tag_value(value) {
            cx.invalid(
                v.pos,
                &key_path,
                format!("`{key_path}`: {err}"),
                err.hint.clone().unwrap_or_default(),
            );
        }
        tags.insert(key, value.to_string());
    }
    if pairs.len() > names::MAX_USER_TAGS {
        let message = format!(
            "`tags` has {} tags; at most {} are allowed",
            pairs.len(),
            names::MAX_USER_TAGS
        );
        let help = "AWS allows 50 tags per resource and orchestrate sets 2 of them".to_string();
        cx.invalid(e.key.pos, "tags", message, help);
    }
    (cx.diags.len() == before).then_some(tags)
}
