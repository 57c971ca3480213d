//! `data`: the training, validation and test sets. Local paths are resolved against the directory of
//! deploy.yaml and must exist and hold CSV, CSV.gz or Parquet; `s3://` URIs need a valid bucket name
//! and the `aws` target.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use super::cx::{Cx, Section};
use super::{TargetOrigin, keys, note};
use crate::defaults;
use crate::diagnostic::Kind;
use crate::model::{Data, DataSource, Target, Validation};
use crate::names::check_bucket_name;
use crate::suggest::did_you_mean;
use crate::yaml::{Node, Pos, Value};

const TRAIN_HELP: &str =
    "add `train: <path>`: a CSV/Parquet file or directory relative to deploy.yaml, or `s3://bucket/prefix`";

pub(super) fn data(
    cx: &mut Cx<'_>,
    top: &Section<'_>,
    target: Option<(Target, TargetOrigin)>,
) -> Option<Data> {
    let Some(e) = top.get("data") else {
        cx.missing(
            top,
            "data",
            "add a `data:` section with at least `train: <path to the training data>`",
        );
        return None;
    };
    let section = cx.section(e.value, "data", keys::DATA, e.key.pos)?;

    let train = match section.get("train") {
        Some(t) => source(cx, t.value, "data.train", target),
        None => {
            cx.missing(&section, "train", TRAIN_HELP);
            None
        }
    };
    let validation = match section.get("validation") {
        None => Some(Validation::Fraction(defaults::VALIDATION_FRACTION)),
        Some(v) => validation(cx, v.value, target),
    };
    let test = match section.get("test") {
        None => Some(None),
        Some(t) => source(cx, t.value, "data.test", target).map(Some),
    };
    let label = match section.get("label") {
        None => Some(defaults::LABEL.to_string()),
        Some(l) => cx.non_empty_string(l.value, "data.label").map(str::to_string),
    };
    let positive = match section.get("positive") {
        None => Some(defaults::POSITIVE.to_string()),
        Some(p) => cx.non_empty_string(p.value, "data.positive").map(str::to_string),
    };
    let exclude = match section.get("exclude") {
        None => Some(defaults::EXCLUDE.map(str::to_string).to_vec()),
        Some(x) => exclude(cx, x.value),
    };

    // The label can never be excluded: it is what the model learns.
    if let (Some(label), Some(x)) = (&label, section.get("exclude"))
        && let Value::Seq(items) = &x.value.value
        && let Some(item) = items.iter().find(|i| i.as_str() == Some(label))
    {
        let d = cx.report(
            Kind::Conflict,
            item.pos,
            Some("data.exclude"),
            format!("`data.exclude` excludes the label column `{label}`"),
            Some(format!(
                "remove `{label}` from `data.exclude`; the label is never a feature anyway"
            )),
        );
        if let Some(l) = section.get("label") {
            d.notes.push(note(l.value.pos, "the label column is set here"));
        }
    }

    // Training on the validation or test set would make their metrics meaningless.
    if let Some(train_src) = &train {
        let others = [
            (
                "data.validation",
                section.get("validation"),
                validation.as_ref().and_then(|v| match v {
                    Validation::Source(s) => Some(s),
                    Validation::Fraction(_) => None,
                }),
            ),
            (
                "data.test",
                section.get("test"),
                test.as_ref().and_then(Option::as_ref),
            ),
        ];
        for (key, entry, src) in others {
            if let (Some(entry), Some(src)) = (entry, src)
                && same_source(train_src, src)
            {
                let help =
                    "held-out data must not be trained on; point it at other data, or hold out a fraction";
                let d = cx.report(
                    Kind::Conflict,
                    entry.value.pos,
                    Some(key),
                    format!("`{key}` is the training data"),
                    Some(help.into()),
                );
                if let Some(t) = section.get("train") {
                    d.notes.push(note(t.value.pos, "`data.train` is set here"));
                }
            }
        }
    }

    Some(Data {
        train: train?,
        validation: validation?,
        test: test?,
        label: label?,
        positive: positive?,
        exclude: exclude?,
    })
}

fn same_source(a: &DataSource, b: &DataSource) -> bool {
    let canon = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    match (a, b) {
        (
            DataSource::LocalFile(a) | DataSource::LocalDir(a),
            DataSource::LocalFile(b) | DataSource::LocalDir(b),
        ) => canon(a) == canon(b),
        (
            DataSource::S3 {
                bucket: ab,
                prefix: ap,
            },
            DataSource::S3 {
                bucket: bb,
                prefix: bp,
            },
        ) => ab == bb && ap.trim_end_matches('/') == bp.trim_end_matches('/'),
        _ => false,
    }
}

fn validation(cx: &mut Cx<'_>, node: &Node, target: Option<(Target, TargetOrigin)>) -> Option<Validation> {
    const KEY: &str = "data.validation";
    match &node.value {
        Value::Int(_) | Value::Float(_) => {
            let f = match node.value {
                Value::Int(i) => i as f64,
                Value::Float(f) => f,
                _ => unreachable!("matched above"),
            };
            if f > 0.0 && f <= 0.5 {
                return Some(Validation::Fraction(f));
            }
            let text = node.scalar_text().unwrap_or_default();
            let message =
                format!("`{KEY}` must be a fraction greater than 0 and at most 0.5, found `{text}`");
            let help = "hold out a fraction such as `0.2` (at most half the data), or give a path";
            cx.invalid(node.pos, KEY, message, help);
            None
        }
        Value::Str(s) if s.trim().parse::<f64>().is_ok() => {
            let help = format!(
                "remove the quotes to hold out a fraction: `validation: {}`",
                s.trim()
            );
            cx.wrong_type(node, KEY, "a fraction or a path", help);
            None
        }
        Value::Str(_) => source(cx, node, KEY, target).map(Validation::Source),
        _ => {
            cx.wrong_type(
                node,
                KEY,
                "a fraction such as `0.2` or a path",
                "e.g. `validation: 0.2` or `validation: data/validation.csv`",
            );
            None
        }
    }
}

fn exclude(cx: &mut Cx<'_>, node: &Node) -> Option<Vec<String>> {
    const KEY: &str = "data.exclude";
    let items = match &node.value {
        Value::Seq(items) => items,
        Value::Str(s) => {
            let help = format!(
                "write a list: `exclude: [{}]`",
                s.split(',').map(str::trim).collect::<Vec<_>>().join(", ")
            );
            cx.wrong_type(node, KEY, "a list of column names", help);
            return None;
        }
        _ => {
            cx.wrong_type(
                node,
                KEY,
                "a list of column names",
                "e.g. `exclude: [Flow_ID, Src_IP]`",
            );
            return None;
        }
    };
    let mut out: Vec<String> = Vec::new();
    let mut ok = true;
    // Where each name is first listed: a map, so a long list costs linear time, not quadratic.
    let mut first_listed: HashMap<&str, Pos> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let key = format!("{KEY}[{i}]");
        let Some(name) = cx.non_empty_string(item, &key) else {
            ok = false;
            continue;
        };
        if let Some(&first) = first_listed.get(name) {
            let d = cx.report(
                Kind::DuplicateKey,
                item.pos,
                Some(&key),
                format!("`{name}` is listed twice in `{KEY}`"),
                Some("remove one of them".into()),
            );
            d.notes.push(note(first, "first listed here"));
            ok = false;
            continue;
        }
        first_listed.insert(name, item.pos);
        out.push(name.to_string());
    }
    ok.then_some(out)
}

const DATA_EXTENSIONS: [&str; 3] = [".csv", ".csv.gz", ".parquet"];

fn is_data_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    DATA_EXTENSIONS.iter().any(|ext| name.ends_with(ext))
}

/// Whether a directory holds a data file, looking a few levels down (SageMaker copies the whole prefix).
fn dir_has_data(dir: &Path, depth: usize) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => depth > 0 && dir_has_data(&path, depth - 1),
            Ok(_) => is_data_file(&path),
            Err(_) => false,
        }
    })
}

/// A data set: `s3://bucket/prefix`, or a local file or directory relative to deploy.yaml.
pub(super) fn source(
    cx: &mut Cx<'_>,
    node: &Node,
    key: &str,
    target: Option<(Target, TargetOrigin)>,
) -> Option<DataSource> {
    let text = cx.non_empty_string(node, key)?.trim();
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("s3:") {
        return s3(cx, node, key, text, target);
    }
    if let Some((scheme, _)) = text.split_once("://") {
        let message = format!("`{key}`: `{scheme}://` is not supported");
        cx.invalid(
            node.pos,
            key,
            message,
            "use a local path (relative to deploy.yaml) or an `s3://bucket/prefix` URI",
        );
        return None;
    }
    let path = cx.base_dir.join(text);
    let meta = match fs::metadata(&path) {
        Ok(m) => m,
        Err(_) => {
            let help = similar_path(&path, text).map_or_else(
                || {
                    if Path::new(text).is_absolute() {
                        "the path is absolute: check that it exists on this machine".to_string()
                    } else {
                        format!("paths are relative to the directory that holds {}", cx.file)
                    }
                },
                |s| format!("did you mean `{s}`?"),
            );
            cx.report(
                Kind::MissingFile,
                node.pos,
                Some(key),
                format!("`{key}`: `{text}` does not exist"),
                Some(help),
            );
            return None;
        }
    };
    if meta.is_dir() {
        if !dir_has_data(&path, 3) {
            let message = format!("`{key}`: directory `{text}` holds no .csv, .csv.gz or .parquet files");
            cx.report(
                Kind::MissingFile,
                node.pos,
                Some(key),
                message,
                Some("put the data files in it, or point at a file".into()),
            );
            return None;
        }
        return Some(DataSource::LocalDir(path));
    }
    if !is_data_file(&path) {
        let message = format!("`{key}`: `{text}` is not a .csv, .csv.gz or .parquet file");
        cx.invalid(
            node.pos,
            key,
            message,
            "model-image reads CSV (optionally gzipped) and Parquet",
        );
        return None;
    }
    Some(DataSource::LocalFile(path))
}

/// The closest existing name next to a missing path, written the way the user wrote the path.
fn similar_path(path: &Path, written: &str) -> Option<String> {
    let wanted = path.file_name()?.to_str()?;
    let parent = path.parent()?;
    let dir = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let names: Vec<String> = fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    let best = did_you_mean(wanted, names.iter().map(String::as_str))?;
    let prefix = &written[..written.len() - wanted.len().min(written.len())];
    Some(format!("{prefix}{best}"))
}

fn s3(
    cx: &mut Cx<'_>,
    node: &Node,
    key: &str,
    text: &str,
    target: Option<(Target, TargetOrigin)>,
) -> Option<DataSource> {
    let Some(rest) = text.strip_prefix("s3://") else {
        let rest = text
            .split_once(':')
            .map(|(_, r)| r)
            .unwrap_or_default()
            .trim_start_matches('/');
        let message = format!("`{key}`: `{text}` is not an S3 URI");
        cx.invalid(node.pos, key, message, format!("write `s3://{rest}`"));
        return None;
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        let message = format!("`{key}`: `{text}` has no bucket");
        cx.invalid(node.pos, key, message, "write `s3://<bucket>/<prefix>`");
        return None;
    }
    if let Err(err) = check_bucket_name(bucket) {
        cx.invalid(
            node.pos,
            key,
            format!("`{key}`: {err}"),
            err.hint.clone().unwrap_or_default(),
        );
        return None;
    }
    if let Some((Target::Local, origin)) = target {
        let message = format!("`{key}` is in S3, but the target is `local`");
        let help =
            "the local target reads local files: use a local copy of the data, or deploy with `target: aws`";
        let d = cx.report(Kind::Conflict, node.pos, Some(key), message, Some(help.into()));
        match origin {
            TargetOrigin::File(pos) => d.notes.push(note(pos, "`target` is set here")),
            TargetOrigin::Default => d.message.push_str(" (the default)"),
            TargetOrigin::Flag => d.message.push_str(" (from `--target`)"),
        }
        return None;
    }
    Some(DataSource::S3 {
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
    })
}
