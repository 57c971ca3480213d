//! The validation context: collects diagnostics, and reads typed values out of YAML nodes, reporting
//! (not stopping at) every key that is unknown, duplicated, missing or of the wrong type or range.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use miette::NamedSource;

use super::keys;
use crate::diagnostic::{Diagnostic, Kind, Location, Note};
use crate::duration::{format_duration, parse_duration};
use crate::suggest::did_you_mean;
use crate::yaml::{Node, Pos, Value, format_float};

/// Collects diagnostics for one file.
pub(crate) struct Cx<'a> {
    pub file: &'a str,
    pub base_dir: &'a Path,
    source: Arc<NamedSource<String>>,
    pub diags: Vec<Diagnostic>,
}

/// A key that was written, with its value (never null: null counts as absent).
#[derive(Clone, Copy)]
pub(crate) struct Entry<'n> {
    pub key: &'n Node,
    pub value: &'n Node,
}

/// A mapping of a known shape, after unknown and duplicate keys were reported.
pub(crate) struct Section<'n> {
    /// Dotted path of the mapping (`""` for the top level).
    pub path: String,
    /// Where to report keys missing from it: the key that introduces it, or the mapping itself.
    pub anchor: Pos,
    entries: Vec<(&'static str, Entry<'n>)>,
}

impl<'n> Section<'n> {
    /// The value of `key`, unless it is absent or null.
    pub fn get(&self, key: &str) -> Option<Entry<'n>> {
        self.written(key).filter(|e| !e.value.is_null())
    }

    /// `key` as written, even with a null value.
    fn written(&self, key: &str) -> Option<Entry<'n>> {
        self.entries.iter().find(|(k, _)| *k == key).map(|(_, e)| *e)
    }

    /// The dotted path of a key of this section.
    pub fn path_of(&self, key: &str) -> String {
        join(&self.path, key)
    }
}

pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// "`training`", or "the top level".
fn in_section(path: &str) -> String {
    if path.is_empty() {
        "at the top level".into()
    } else {
        format!("in `{path}`")
    }
}

fn found(node: &Node) -> String {
    match node.scalar_text() {
        Some(t) if !node.is_null() => format!("found {} `{t}`", node.kind()),
        _ => format!("found {}", node.kind()),
    }
}

impl<'a> Cx<'a> {
    pub fn new(file: &'a str, source: &str, base_dir: &'a Path) -> Self {
        Self {
            file,
            base_dir,
            source: Arc::new(NamedSource::new(file, source.to_string())),
            diags: Vec::new(),
        }
    }

    /// Records a problem at `pos` and returns it, to add notes.
    pub fn report(
        &mut self,
        kind: Kind,
        pos: Pos,
        key: Option<&str>,
        message: impl Into<String>,
        help: Option<String>,
    ) -> &mut Diagnostic {
        self.diags.push(Diagnostic {
            kind,
            file: self.file.to_string(),
            location: Some(Location {
                line: pos.line,
                column: pos.column,
            }),
            key: key.map(str::to_string),
            message: message.into(),
            help,
            notes: Vec::new(),
            span: Some((pos.offset, pos.len)),
            source: Some(self.source.clone()),
        });
        self.diags.last_mut().expect("just pushed")
    }

    /// An invalid value of the right type.
    pub fn invalid(&mut self, pos: Pos, key: &str, message: impl Into<String>, help: impl Into<String>) {
        self.report(Kind::InvalidValue, pos, Some(key), message, Some(help.into()));
    }

    /// A value of the wrong YAML type.
    pub fn wrong_type(&mut self, node: &Node, key: &str, expected: &str, help: impl Into<String>) {
        let message = format!("`{key}` must be {expected}, {}", found(node));
        self.report(Kind::WrongType, node.pos, Some(key), message, Some(help.into()));
    }

    /// Reads a mapping with the given known keys. Unknown and duplicate keys are reported; a null
    /// node is an empty section; any other non-mapping is reported and gives `None`.
    pub fn section<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        known: &[&'static str],
        anchor: Pos,
    ) -> Option<Section<'n>> {
        let mut section = Section {
            path: path.to_string(),
            anchor,
            entries: Vec::new(),
        };
        let pairs = match &node.value {
            Value::Null => return Some(section),
            Value::Map(pairs) => pairs,
            _ => {
                let what = if path.is_empty() { "deploy.yaml" } else { path };
                let message = format!("`{what}` must be a mapping of keys to values, {}", found(node));
                let help = match node.as_str() {
                    Some(t) if t.starts_with("ml.") && known.contains(&"instance_type") => {
                        format!("write `{path}: {{instance_type: {t}}}`")
                    }
                    _ => format!("known keys {}: {}", in_section(path), list(known)),
                };
                let help = Some(help);
                self.report(Kind::WrongType, node.pos, Some(path), message, help);
                return None;
            }
        };
        for (key, value) in pairs {
            let name = key.scalar_text().unwrap_or_default();
            let Some(&known_key) = known.iter().find(|k| **k == name) else {
                self.unknown_key(key, &name, path, known);
                continue;
            };
            if let Some((_, first)) = section.entries.iter().find(|(k, _)| *k == known_key) {
                let first = first.key.pos;
                let key_path = join(path, known_key);
                let d = self.report(
                    Kind::DuplicateKey,
                    key.pos,
                    Some(&key_path),
                    format!("duplicate key `{known_key}` {}", in_section(path)),
                    Some("remove one of them; YAML keeps only one value".into()),
                );
                d.notes.push(Note {
                    location: Location {
                        line: first.line,
                        column: first.column,
                    },
                    message: format!("`{known_key}` is first set here"),
                    span: (first.offset, first.len),
                });
                continue;
            }
            section.entries.push((known_key, Entry { key, value }));
        }
        Some(section)
    }

    /// The section at `key` of `top`, or an empty one when it is absent (all defaults).
    pub fn optional_section<'n>(
        &mut self,
        top: &Section<'n>,
        key: &str,
        known: &[&'static str],
    ) -> Option<Section<'n>> {
        static NULL: Node = Node {
            value: Value::Null,
            pos: Pos {
                line: 1,
                column: 1,
                offset: 0,
                len: 0,
            },
        };
        match top.get(key) {
            Some(e) => self.section(e.value, key, known, e.key.pos),
            None => self.section(&NULL, key, known, top.anchor),
        }
    }

    fn unknown_key(&mut self, key: &Node, name: &str, path: &str, known: &[&str]) {
        let key_path = join(path, name);
        let message = if path.is_empty() {
            format!("unknown top-level key `{name}`")
        } else {
            format!("unknown key `{name}` {}", in_section(path))
        };
        let help = unknown_key_help(name, path, known);
        self.report(Kind::UnknownKey, key.pos, Some(&key_path), message, Some(help));
    }

    /// Reports a required key that is absent (at the section) or null (at the key).
    pub fn missing(&mut self, section: &Section<'_>, key: &str, help: &str) {
        let key_path = section.path_of(key);
        let (pos, message) = match section.written(key) {
            Some(e) => (e.key.pos, format!("required key `{key_path}` has no value")),
            None => (section.anchor, format!("missing required key `{key_path}`")),
        };
        self.report(Kind::MissingKey, pos, Some(&key_path), message, Some(help.into()));
    }

    /// A string value.
    pub fn string<'n>(&mut self, node: &'n Node, key: &str) -> Option<&'n str> {
        match &node.value {
            Value::Str(s) => Some(s),
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => {
                let text = node.scalar_text().unwrap_or_default();
                self.wrong_type(node, key, "a string", format!("quote it: `\"{text}\"`"));
                None
            }
            _ => {
                let help = if is_item(key) {
                    "write each item as a single value, in one flat list".to_string()
                } else {
                    format!("write a single value: `{}: <text>`", leaf(key))
                };
                self.wrong_type(node, key, "a string", help);
                None
            }
        }
    }

    /// A non-empty string value.
    pub fn non_empty_string<'n>(&mut self, node: &'n Node, key: &str) -> Option<&'n str> {
        let s = self.string(node, key)?;
        if s.trim().is_empty() {
            let help = if is_item(key) {
                "remove the empty item"
            } else {
                "give a value, or remove the key to use its default"
            };
            self.invalid(node.pos, key, format!("`{key}` is empty"), help);
            return None;
        }
        Some(s)
    }

    /// A boolean value.
    pub fn boolean(&mut self, node: &Node, key: &str) -> Option<bool> {
        match &node.value {
            Value::Bool(b) => Some(*b),
            Value::Str(s) => {
                let meant = match s.to_ascii_lowercase().as_str() {
                    "yes" | "y" | "on" => Some(true),
                    "no" | "n" | "off" => Some(false),
                    _ => None,
                };
                let help = match meant {
                    Some(b) => format!("YAML 1.2 booleans are `true` and `false`: write `{b}`"),
                    None => match s.trim().to_ascii_lowercase().as_str() {
                        b @ ("true" | "false") => format!("remove the quotes: `{b}`"),
                        _ => "write `true` or `false`".into(),
                    },
                };
                self.wrong_type(node, key, "`true` or `false`", help);
                None
            }
            _ => {
                self.wrong_type(node, key, "`true` or `false`", "write `true` or `false`");
                None
            }
        }
    }

    /// A whole number in `min..=max`. With `lenient`, a string holding a number is read too
    /// (hyperparameters, which SageMaker passes as strings anyway).
    pub fn integer(&mut self, node: &Node, key: &str, min: i64, max: i64, lenient: bool) -> Option<i64> {
        let value = match &node.value {
            Value::Int(i) => *i as f64,
            Value::Float(f) => *f,
            Value::Str(s) if lenient && s.trim().parse::<f64>().is_ok() => s.trim().parse::<f64>().ok()?,
            Value::Str(s) if s.trim().parse::<f64>().is_ok() => {
                let help = format!("remove the quotes: `{}`", s.trim());
                self.wrong_type(node, key, "an integer", help);
                return None;
            }
            _ => {
                self.wrong_type(
                    node,
                    key,
                    "an integer",
                    format!("write a whole number {}", int_range(min, max)),
                );
                return None;
            }
        };
        if value.fract() != 0.0 || !value.is_finite() {
            let text = node.scalar_text().unwrap_or_default();
            let message = format!("`{key}` must be a whole number, found `{text}`");
            self.invalid(
                node.pos,
                key,
                message,
                format!("use a whole number {}", int_range(min, max)),
            );
            return None;
        }
        if value < min as f64 || value > max as f64 {
            let message = format!(
                "`{key}` must be {}, found `{}`",
                int_range(min, max),
                format_float(value)
            );
            let closest = value.clamp(min as f64, max as f64);
            self.invalid(node.pos, key, message, range_help(key, &format_float(closest)));
            return None;
        }
        Some(value as i64)
    }

    /// A number within the given bounds (`inclusive` says whether each bound is allowed).
    pub fn number(
        &mut self,
        node: &Node,
        key: &str,
        (lo, lo_inclusive): (f64, bool),
        (hi, hi_inclusive): (f64, bool),
        lenient: bool,
    ) -> Option<f64> {
        let value = match &node.value {
            Value::Int(i) => *i as f64,
            Value::Float(f) => *f,
            Value::Str(s) if lenient && s.trim().parse::<f64>().is_ok() => s.trim().parse::<f64>().ok()?,
            Value::Str(s) if s.trim().parse::<f64>().is_ok() => {
                let help = format!("remove the quotes: `{}`", s.trim());
                self.wrong_type(node, key, "a number", help);
                return None;
            }
            _ => {
                let range = number_range((lo, lo_inclusive), (hi, hi_inclusive));
                self.wrong_type(node, key, "a number", format!("write a number {range}"));
                return None;
            }
        };
        let above = if lo_inclusive { value >= lo } else { value > lo };
        let below = if hi_inclusive { value <= hi } else { value < hi };
        if !value.is_finite() || !above || !below {
            let range = number_range((lo, lo_inclusive), (hi, hi_inclusive));
            let message = format!("`{key}` must be {range}, found `{}`", format_float(value));
            let closest = if value < lo || (value == lo && !lo_inclusive) {
                (lo, lo_inclusive)
            } else {
                (hi, hi_inclusive)
            };
            let help = match closest {
                (bound, true) => range_help(key, &format_float(bound)),
                (bound, false) => key_help(key)
                    .unwrap_or_else(|| format!("`{}` itself is not allowed", format_float(bound))),
            };
            self.invalid(node.pos, key, message, help);
            return None;
        }
        Some(value)
    }

    /// A duration string within `min..=max`.
    pub fn duration(&mut self, node: &Node, key: &str, min: Duration, max: Duration) -> Option<Duration> {
        let text = match &node.value {
            Value::Str(s) => s,
            Value::Int(i) => {
                let help = format!("durations have a unit: write `{i}s`, or e.g. `30m`, `1h`");
                self.wrong_type(node, key, "a duration such as `30m` or `1h`", help);
                return None;
            }
            _ => {
                let help = "write a duration such as `90s`, `30m`, `1h` or `1h30m`";
                self.wrong_type(node, key, "a duration such as `30m` or `1h`", help);
                return None;
            }
        };
        let d = match parse_duration(text) {
            Ok(d) => d,
            Err(e) => {
                let message = format!("`{key}`: {e}");
                self.invalid(node.pos, key, message, e.hint());
                return None;
            }
        };
        if d < min || d > max {
            let message = format!(
                "`{key}` must be from {} to {}, found `{text}`",
                format_duration(min),
                format_duration(max)
            );
            let closest = if d < min { min } else { max };
            self.invalid(node.pos, key, message, range_help(key, &format_duration(closest)));
            return None;
        }
        Some(d)
    }
}

/// Whether a key names a list item (`data.exclude[2]`).
fn is_item(key: &str) -> bool {
    key.ends_with(']')
}

/// The last segment of a dotted key.
fn leaf(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}

/// Why a key has the range it has, where that helps more than the numbers.
fn key_help(key: &str) -> Option<String> {
    let help = match leaf(key) {
        "port" => {
            "ports below 1024 need root; choose one from 1024 to 65535, or leave it out for a free port"
        }
        "volume_size_gb" => "SageMaker training volumes are 1 to 16384 GB",
        "max_runtime" => "SageMaker stops training jobs after at most 28 days",
        "learning_rate" => "typical learning rates are 0.01 to 0.3",
        "target_fpr" => "a false-positive rate such as `0.01`",
        "validation_fraction" => "hold out a fraction such as `0.2` (at most half the data)",
        "min_pr_auc" | "min_roc_auc" | "min_mcc" | "min_f1" => "quality gates are metric values from 0 to 1",
        "bake" => "SageMaker bakes each step for at most one hour: choose `0s` to `1h`",
        "threshold_ms" => "SageMaker times invocations out after one minute: choose 1 to 60000 ms",
        "periods" => "CloudWatch evaluates at most one day: 1 to 1440 one-minute periods",
        "alarm_period" => "CloudWatch's period is one minute; locally choose `1s` to `1m`",
        _ => return None,
    };
    Some(help.to_string())
}

/// The help for a value out of range: why, or the closest allowed value.
fn range_help(key: &str, closest: &str) -> String {
    key_help(key).unwrap_or_else(|| format!("the closest allowed value is `{closest}`"))
}

fn list(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn int_range(min: i64, max: i64) -> String {
    if max >= i64::from(u32::MAX) {
        format!("at least {min}")
    } else {
        format!("from {min} to {max}")
    }
}

fn number_range((lo, lo_inc): (f64, bool), (hi, hi_inc): (f64, bool)) -> String {
    let low = if lo_inc {
        format!("at least {lo}")
    } else {
        format!("greater than {lo}")
    };
    let high = if hi_inc {
        format!("at most {hi}")
    } else {
        format!("less than {hi}")
    };
    format!("{low} and {high}")
}

/// The help line for an unknown key: its likely meaning, or the keys that are allowed.
fn unknown_key_help(name: &str, path: &str, known: &[&str]) -> String {
    if name == "<<" {
        return "merge keys (`<<`) are not supported; write the keys out".into();
    }
    let lower = name.to_ascii_lowercase().replace('-', "_");
    if let Some(k) = known.iter().find(|k| **k == lower) {
        return format!("did you mean `{k}`? keys are lowercase with `_`");
    }
    if path == "training.hyperparameters"
        && let Some(ours) = keys::hyperparameter_alias(&lower)
    {
        return format!("did you mean `{ours}`? (`{name}` in LightGBM or scikit-learn)");
    }
    if let Some(rule) = path.strip_prefix("endpoint.rollout.alarms.")
        && let Some(ours) = keys::alarm_alias(&lower)
    {
        // The latency threshold is in milliseconds, the errors threshold a count.
        let ours = match (rule, ours) {
            ("errors", "threshold_ms") => "threshold",
            ("latency", "threshold") => "threshold_ms",
            _ => ours,
        };
        if known.contains(&ours) {
            let why = match ours {
                "threshold_ms" => " (the p99 latency threshold, in milliseconds)",
                "threshold" => " (5xx errors per minute)",
                "periods" => " (how many one-minute periods are evaluated)",
                _ => " (how many of the `periods` must breach)",
            };
            return format!("did you mean `{ours}`?{why}");
        }
    }
    let elsewhere: Vec<String> = keys::SECTIONS
        .iter()
        .filter(|(p, keys)| *p != path && keys.contains(&lower.as_str()))
        .map(|(p, _)| format!("`{}`", join(p, &lower)))
        .collect();
    if !elsewhere.is_empty() {
        return format!(
            "`{lower}` belongs elsewhere: did you mean {}?",
            elsewhere.join(" or ")
        );
    }
    if let Some(k) = did_you_mean(name, known.iter().copied()) {
        return format!("did you mean `{k}`?");
    }
    format!("known keys {}: {}", in_section(path), list(known))
}
