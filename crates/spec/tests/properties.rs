//! Property-based tests of reading deploy.yaml: whatever the input (arbitrary text and bytes,
//! YAML-ish token soup, random mappings of the known keys, random edits of the shipped deploy.yaml),
//! `parse` and `load` never panic, and every problem they report has a line, a column, a help line
//! and, when it labels the source, a span inside it.
//!
//! CI runs 256 cases per property (a few seconds). For a longer search set `PROPTEST_CASES`, e.g.
//! `PROPTEST_CASES=100000 cargo test -p orchestrate-spec --test properties --release`. A failing
//! input is shrunk to the smallest one and saved under `proptest-regressions/` to be replayed first.

use std::path::Path;

use proptest::prelude::*;

/// The shipped deploy.yaml (the one `orchestrate` reads in a fresh clone) and the spec crate's
/// sketch of it; both valid, so that edits of them reach every validator.
const SHIPPED: &str = include_str!("../../../deploy.yaml");
const SKETCH: &str = include_str!("valid/deploy.yaml");

/// Where the inputs' relative data paths resolve: the valid example's folder holds
/// `data/iotid20-demo.csv`, so a path-shaped value may really exist.
const BASE_DIR: &str = "tests/valid";

/// The property: an input is either accepted or rejected with well-formed diagnostics.
fn check(source: &str) -> Result<(), TestCaseError> {
    match spec::parse(source, "deploy.yaml", Path::new(BASE_DIR)) {
        Ok(_) => Ok(()),
        Err(diagnostics) => check_diagnostics(&diagnostics, Some(source)),
    }
}

fn check_diagnostics(diagnostics: &spec::Diagnostics, source: Option<&str>) -> Result<(), TestCaseError> {
    use miette::Diagnostic as _;
    prop_assert!(!diagnostics.is_empty());
    for d in diagnostics {
        let Some(location) = d.location else {
            return Err(TestCaseError::fail(format!("no location: {d}")));
        };
        prop_assert!(location.line >= 1 && location.column >= 1, "{d}");
        prop_assert!(d.help.is_some(), "no help: {d}");
        let prefix = format!("{}:{}:{}: ", d.file, location.line, location.column);
        prop_assert!(d.to_string().starts_with(&prefix), "{d}");
        if let (Some(source), Some(labels)) = (source, d.labels()) {
            for label in labels {
                prop_assert!(label.offset() + label.len() <= source.len(), "{d}: {label:?}");
                prop_assert!(source.is_char_boundary(label.offset()), "{d}: {label:?}");
            }
        }
    }
    Ok(())
}

/// Pieces of YAML syntax and of deploy.yaml, to build token soup that often gets past the parser.
fn token() -> impl Strategy<Value = String> {
    let fixed = prop::sample::select(vec![
        ":",
        ": ",
        " ",
        "  ",
        "\n",
        "\n  ",
        "\n    ",
        "- ",
        "-",
        "[",
        "]",
        "{",
        "}",
        ",",
        ", ",
        "&a ",
        "*a",
        "&b ",
        "*b",
        "'",
        "\"",
        "#",
        "---",
        "...",
        "? ",
        "|",
        ">",
        "!!str ",
        "!!int ",
        "!x ",
        "<<: ",
        "\\",
        "\t",
        "%YAML 1.2\n",
        "~",
        "null",
        "true",
        "yes",
        "0",
        "1",
        "-1",
        "0.5",
        "1e9",
        ".inf",
        "0x1F",
        "1h",
        "30m",
        "ml.m5.large",
        "iot-anomaly",
        "data/train.csv",
        "data/iotid20-demo.csv",
        "s3://bucket/prefix/",
        "us-east-1",
        "version",
        "name",
        "target",
        "region",
        "tags",
        "data",
        "train",
        "validation",
        "test",
        "label",
        "exclude",
        "bucket",
        "training",
        "hyperparameters",
        "learning_rate",
        "quality_gate",
        "endpoint",
        "autoscaling",
        "local",
        "port",
        "é",
        "\u{feff}",
        "\u{7}",
        "\r\n",
    ])
    .prop_map(str::to_string);
    prop_oneof![4 => fixed, 1 => "[a-z_]{1,8}"]
}

/// A YAML value built from the known keys, rendered later in block or flow style.
#[derive(Debug, Clone)]
enum Yaml {
    Scalar(String),
    Seq(Vec<Yaml>),
    Map(Vec<(String, Yaml)>),
}

fn key() -> impl Strategy<Value = String> {
    let known = [
        spec_keys(),
        vec![
            "Name",
            "instanse_type",
            "n_estimators",
            "<<",
            "",
            "a b",
            "'quoted'",
        ],
    ]
    .concat();
    prop_oneof![8 => prop::sample::select(known).prop_map(str::to_string), 1 => "[a-zA-Z_-]{1,12}"]
}

/// Every key of deploy.yaml's sections (as listed in the published JSON Schema).
fn spec_keys() -> Vec<&'static str> {
    vec![
        "version",
        "name",
        "target",
        "region",
        "tags",
        "data",
        "bucket",
        "training",
        "endpoint",
        "local",
        "train",
        "validation",
        "test",
        "label",
        "positive",
        "exclude",
        "retain_on_down",
        "instance_type",
        "instance_count",
        "volume_size_gb",
        "max_runtime",
        "hyperparameters",
        "quality_gate",
        "learning_rate",
        "max_rounds",
        "early_stopping_rounds",
        "num_leaves",
        "max_depth",
        "min_data_in_leaf",
        "feature_fraction",
        "threads",
        "validation_fraction",
        "target_fpr",
        "seed",
        "bootstrap_resamples",
        "quantized_gradients",
        "rollout",
        "strategy",
        "canary_percent",
        "step_percent",
        "bake",
        "alarms",
        "errors",
        "latency",
        "threshold",
        "threshold_ms",
        "datapoints",
        "periods",
        "min_pr_auc",
        "min_roc_auc",
        "min_mcc",
        "min_f1",
        "autoscaling",
        "min",
        "max",
        "invocations_per_instance",
        "wait_timeout",
        "state_dir",
        "port",
    ]
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "1",
            "2",
            "0",
            "-1",
            "0.2",
            "0.5",
            "0.7",
            "1.5",
            "1e-7",
            "99999999999999999999",
            ".nan",
            "true",
            "false",
            "yes",
            "~",
            "null",
            "\"\"",
            "''",
            "\"1\"",
            "1h",
            "90s",
            "2 hours",
            "30d",
            "local",
            "aws",
            "AWS",
            "us-east-1",
            "eu-west",
            "iot-anomaly",
            "IoT_Anomaly",
            "ml.m5.large",
            "m5.xlarge",
            "data/iotid20-demo.csv",
            "data",
            "data/missing.csv",
            "/abs/path.csv",
            "s3://iot-data/train/",
            "s3://ab/x",
            "gs://x/y",
            "Label",
            "Anomaly",
        ])
        .prop_map(str::to_string),
        any::<i64>().prop_map(|i| i.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        "[a-zA-Z0-9_./:-]{0,20}",
    ]
}

fn yaml_tree() -> impl Strategy<Value = Yaml> {
    let leaf = scalar().prop_map(Yaml::Scalar);
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Yaml::Seq),
            prop::collection::vec((key(), inner), 0..8).prop_map(Yaml::Map),
        ]
    })
}

/// A top-level mapping of known keys, each with a random value.
fn document() -> impl Strategy<Value = (Yaml, bool)> {
    let entry = (key(), yaml_tree());
    (
        prop::collection::vec(entry, 0..10).prop_map(Yaml::Map),
        any::<bool>(),
    )
}

fn render_flow(y: &Yaml) -> String {
    match y {
        Yaml::Scalar(s) => s.clone(),
        Yaml::Seq(items) => format!(
            "[{}]",
            items.iter().map(render_flow).collect::<Vec<_>>().join(", ")
        ),
        Yaml::Map(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!("{k}: {}", render_flow(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn render_block(y: &Yaml, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match y {
        Yaml::Scalar(s) => {
            out.push(' ');
            out.push_str(s);
            out.push('\n');
        }
        Yaml::Seq(items) if items.is_empty() => out.push_str(" []\n"),
        Yaml::Map(entries) if entries.is_empty() => out.push_str(" {}\n"),
        Yaml::Seq(items) => {
            out.push('\n');
            for item in items {
                out.push_str(&pad);
                out.push('-');
                render_block(item, indent + 2, out);
            }
        }
        Yaml::Map(entries) => {
            out.push('\n');
            for (k, v) in entries {
                out.push_str(&pad);
                out.push_str(k);
                out.push(':');
                render_block(v, indent + 2, out);
            }
        }
    }
}

fn render((doc, flow): &(Yaml, bool)) -> String {
    if *flow {
        return render_flow(doc);
    }
    let Yaml::Map(entries) = doc else {
        return render_flow(doc);
    };
    let mut out = String::new();
    for (k, v) in entries {
        out.push_str(k);
        out.push(':');
        render_block(v, 2, &mut out);
    }
    out
}

/// One edit of a text, at a position given as a fraction of its length (so it applies to any text).
#[derive(Debug, Clone)]
enum Edit {
    Delete { at: f64, len: usize },
    Insert { at: f64, text: String },
    DuplicateLine { at: f64 },
    SwapLines { a: f64, b: f64 },
    ReplaceValue { at: f64, value: String },
    Indent { at: f64, by: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = 0.0..1.0f64;
    prop_oneof![
        (at.clone(), 1..20usize).prop_map(|(at, len)| Edit::Delete { at, len }),
        (at.clone(), token()).prop_map(|(at, text)| Edit::Insert { at, text }),
        at.clone().prop_map(|at| Edit::DuplicateLine { at }),
        (at.clone(), at.clone()).prop_map(|(a, b)| Edit::SwapLines { a, b }),
        (at.clone(), scalar()).prop_map(|(at, value)| Edit::ReplaceValue { at, value }),
        (at, 1..4usize).prop_map(|(at, by)| Edit::Indent { at, by }),
    ]
}

fn index(at: f64, len: usize) -> usize {
    ((at * len as f64) as usize).min(len.saturating_sub(1))
}

fn apply(text: &str, edit: &Edit) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    match edit {
        Edit::Delete { at, len } => {
            let start = index(*at, chars.len());
            let end = (start + len).min(chars.len());
            chars.drain(start..end);
            chars.into_iter().collect()
        }
        Edit::Insert { at, text } => {
            let i = index(*at, chars.len() + 1);
            chars.splice(i..i, text.chars());
            chars.into_iter().collect()
        }
        Edit::DuplicateLine { at } if !lines.is_empty() => {
            let i = index(*at, lines.len());
            lines.insert(i, lines[i].clone());
            lines.join("\n") + "\n"
        }
        Edit::SwapLines { a, b } if !lines.is_empty() => {
            let (a, b) = (index(*a, lines.len()), index(*b, lines.len()));
            lines.swap(a, b);
            lines.join("\n") + "\n"
        }
        Edit::ReplaceValue { at, value } if !lines.is_empty() => {
            let i = index(*at, lines.len());
            if let Some((k, _)) = lines[i].split_once(": ") {
                lines[i] = format!("{k}: {value}");
            }
            lines.join("\n") + "\n"
        }
        Edit::Indent { at, by } if !lines.is_empty() => {
            let i = index(*at, lines.len());
            lines[i] = format!("{}{}", " ".repeat(*by), lines[i]);
            lines.join("\n") + "\n"
        }
        _ => text.to_string(),
    }
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics_and_every_problem_is_located(source in any::<String>()) {
        check(&source)?;
    }

    #[test]
    fn yaml_token_soup_never_panics_and_every_problem_is_located(
        tokens in prop::collection::vec(token(), 0..60)
    ) {
        check(&tokens.concat())?;
    }

    #[test]
    fn random_mappings_of_known_keys_never_panic_and_every_problem_is_located(doc in document()) {
        check(&render(&doc))?;
    }

    #[test]
    fn edits_of_the_shipped_deploy_yaml_never_panic_and_every_problem_is_located(
        sketch in any::<bool>(),
        edits in prop::collection::vec(edit(), 1..6)
    ) {
        let mut source = if sketch { SKETCH } else { SHIPPED }.to_string();
        for e in &edits {
            source = apply(&source, e);
        }
        check(&source)?;
    }

    /// Through `load`: arbitrary bytes, so invalid UTF-8 and control characters are covered too.
    #[test]
    fn arbitrary_bytes_in_a_file_never_panic_and_every_problem_is_located(
        bytes in prop::collection::vec(any::<u8>(), 0..300)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deploy.yaml");
        std::fs::write(&path, &bytes).unwrap();
        if let Err(diagnostics) = spec::load(&path) {
            check_diagnostics(&diagnostics, std::str::from_utf8(&bytes).ok())?;
        }
    }
}

#[test]
fn the_shipped_files_are_valid_so_their_edits_start_from_a_good_file() {
    spec::parse(SHIPPED, "deploy.yaml", Path::new(BASE_DIR)).unwrap();
    spec::parse(SKETCH, "deploy.yaml", Path::new(BASE_DIR)).unwrap();
}

/// The generators are worth their cases: besides syntax errors, their inputs reach the validators
/// (unknown keys, wrong types, invalid values, missing keys) and are sometimes accepted.
#[test]
fn the_generated_inputs_reach_every_kind_of_check() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use spec::Kind;

    let mut runner = TestRunner::deterministic();
    let mut kinds = std::collections::HashSet::new();
    let mut accepted = 0;
    for _ in 0..300 {
        let doc = render(&document().new_tree(&mut runner).unwrap().current());
        let edits = prop::collection::vec(edit(), 1..3)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let mut edited = SHIPPED.to_string();
        for e in &edits {
            edited = apply(&edited, e);
        }
        for source in [doc, edited] {
            match spec::parse(&source, "deploy.yaml", Path::new(BASE_DIR)) {
                Ok(_) => accepted += 1,
                Err(d) => kinds.extend(d.iter().map(|d| d.kind)),
            }
        }
    }
    for kind in [
        Kind::Syntax,
        Kind::UnknownKey,
        Kind::WrongType,
        Kind::InvalidValue,
        Kind::MissingKey,
    ] {
        assert!(kinds.contains(&kind), "never {kind:?}: {kinds:?}");
    }
    assert!(accepted > 0, "no generated input was valid");
}
