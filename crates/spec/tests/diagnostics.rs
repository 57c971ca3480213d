//! deploy.yaml as users write it, broken and whole: every file of `tests/corpus/` (and every
//! generated case too large for it) must be rejected through `spec::load`, each problem with a line,
//! a column and a help line, and its rendered diagnostics are snapshotted (`tests/snapshots/`, with
//! the numbered source on top so each `line:col` can be checked by eye). The valid example
//! `tests/valid/deploy.yaml` must load, agree with the serde wire types, and satisfy the published
//! JSON Schema.

use std::fs;
use std::path::{Path, PathBuf};

use spec::{DataSource, Kind, Overrides, Target, Validation, wire};

fn corpus() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir("tests/corpus")
        .expect("tests/corpus exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// The source with line numbers; control characters other than tab shown as `<U+0007>`.
fn numbered(source: &str) -> String {
    let visible = |l: &str| -> String {
        l.chars()
            .map(|c| match c {
                '\t' => c.to_string(),
                c if c.is_control() => format!("<U+{:04X}>", u32::from(c)),
                c => c.to_string(),
            })
            .collect()
    };
    source
        .lines()
        .enumerate()
        .map(|(i, l)| format!("{:>3} | {}\n", i + 1, visible(l)))
        .collect()
}

/// The checks every rejected corpus case must pass: at least one problem, in document order, each
/// with a line, a column and a help line.
fn assert_well_reported(name: &str, diagnostics: &spec::Diagnostics) {
    assert!(!diagnostics.is_empty());
    let locations: Vec<_> = diagnostics.iter().map(|d| d.location).collect();
    assert!(
        locations.windows(2).all(|w| w[0] <= w[1]),
        "{name}: not in document order"
    );
    for d in diagnostics {
        assert!(d.location.is_some(), "{name}: no line:column for `{}`", d.message);
        assert!(d.help.is_some(), "{name}: no help for `{}`", d.message);
    }
}

/// A broken file that cannot sensibly live in `tests/corpus/` (megabytes, or 100,000 levels deep):
/// it is written to a temporary deploy.yaml and loaded like the files of the corpus. The snapshot
/// shows how the file was made instead of its text.
struct Generated {
    /// The snapshot's name.
    name: &'static str,
    /// How the file is made, for the snapshot.
    made: &'static str,
    text: fn() -> String,
}

const GENERATED: &[Generated] = &[
    Generated {
        name: "generated-huge-file",
        made: "a valid deploy.yaml, then 2 MiB of comment lines",
        text: || {
            let mut text = String::from("version: 1\nname: iot-anomaly\ndata:\n  train: train.csv\n");
            while text.len() < 2 * spec::MAX_FILE_BYTES {
                text.push_str("# padding padding padding padding padding padding padding padding\n");
            }
            text
        },
    },
    Generated {
        name: "generated-huge-scalar",
        made: "`name:` followed by one 2 MiB plain scalar",
        text: || format!("version: 1\nname: {}\n", "a".repeat(2 * spec::MAX_FILE_BYTES)),
    },
    Generated {
        name: "generated-alias-bomb-large-scalar",
        made: "a 1,000,000-byte scalar anchored as `&x`, then a list of 10,000 `*x` (10 GB if expanded)",
        text: || {
            format!(
                "version: 1\nname: &x {}\ntags: [{}]\n",
                "x".repeat(1_000_000),
                vec!["*x"; 10_000].join(",")
            )
        },
    },
    Generated {
        name: "generated-deep-flow-sequences",
        made: "`data: {train: ` then 100,000 `[`",
        text: || format!("version: 1\ndata: {{train: {}", "[".repeat(100_000)),
    },
    Generated {
        name: "generated-deep-flow-mappings",
        made: "`training: ` then 100,000 `{a: `",
        text: || format!("version: 1\ntraining: {}", "{a: ".repeat(100_000)),
    },
    Generated {
        name: "generated-deep-block-sequences",
        made: "`data:` then one line of 100,000 `- `",
        text: || format!("version: 1\ndata:\n  {}x\n", "- ".repeat(100_000)),
    },
    Generated {
        name: "generated-deep-block-mappings",
        made: "1,000 block mappings, each key indented one column more than the one before",
        text: || (0..1_000).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect(),
    },
];

#[test]
fn every_corpus_file_is_rejected_and_its_diagnostics_match_the_snapshot() {
    let files = corpus();
    // Syntax, types, unknown keys, bad names, missing data, impossible combinations, YAML bombs and
    // deep nesting on disk; the huge and 100,000-deep cases in `GENERATED` on top.
    assert!(files.len() >= 60, "the corpus has {} files", files.len());
    for path in files {
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        // Read as `load` reads it (size limit, UTF-8 check), then named `deploy.yaml` in the snapshot.
        let diagnostics = match spec::load(&path) {
            Ok(spec) => panic!("{name}: accepted, but it is in the corpus of broken files: {spec:?}"),
            Err(d) => d,
        };
        assert_well_reported(&name, &diagnostics);
        let rendered = diagnostics
            .to_string()
            .replace(&path.display().to_string(), "deploy.yaml");
        let source = String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned();
        let snapshot = format!("{}---\n{rendered}", numbered(&source));
        insta::with_settings!({ input_file => &path, prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!(name, snapshot);
        });
    }
}

#[test]
fn every_generated_case_is_rejected_and_its_diagnostics_match_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deploy.yaml");
    for Generated { name, made, text } in GENERATED {
        fs::write(&path, text()).unwrap();
        let diagnostics = match spec::load(&path) {
            Ok(spec) => panic!("{name}: accepted: {spec:?}"),
            Err(d) => d,
        };
        assert_well_reported(name, &diagnostics);
        // The same text handed to `parse` directly is rejected the same way.
        let text = fs::read_to_string(&path).unwrap();
        let parsed = spec::parse(&text, &path.display().to_string(), dir.path()).unwrap_err();
        assert_eq!(parsed.to_string(), diagnostics.to_string(), "{name}");
        let rendered = diagnostics
            .to_string()
            .replace(&path.display().to_string(), "deploy.yaml");
        let snapshot = format!("generated: {made}\n---\n{rendered}");
        insta::with_settings!({ prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!(*name, snapshot);
        });
    }
}

#[test]
fn several_problems_are_reported_together_in_document_order() {
    let source = fs::read_to_string("tests/corpus/many-errors.yaml").unwrap();
    let diagnostics = spec::parse(&source, "deploy.yaml", Path::new("tests/corpus")).unwrap_err();
    let lines: Vec<usize> = diagnostics.iter().map(|d| d.line().unwrap()).collect();
    assert_eq!(lines, vec![2, 4, 7, 10, 12, 14, 19]);
    let kinds: Vec<Kind> = diagnostics.iter().map(|d| d.kind).collect();
    assert_eq!(kinds[2], Kind::UnknownKey);
}

#[test]
fn diagnostics_render_as_file_line_col_with_a_help_line() {
    let source = fs::read_to_string("tests/corpus/unknown-key-typo.yaml").unwrap();
    let diagnostics = spec::parse(&source, "deploy.yaml", Path::new("tests/corpus")).unwrap_err();
    assert_eq!(
        diagnostics.to_string(),
        "deploy.yaml:6:3: unknown key `instanse_type` in `training`\n  help: did you mean `instance_type`?\n"
    );
    let d = diagnostics.iter().next().unwrap();
    assert_eq!(
        (d.line(), d.column(), d.key.as_deref()),
        (Some(6), Some(3), Some("training.instanse_type"))
    );
    let json = serde_json::to_value(&diagnostics).unwrap();
    assert_eq!(json["items"][0]["kind"], "unknown_key");
    assert_eq!(
        json["items"][0]["location"],
        serde_json::json!({ "line": 6, "column": 3 })
    );
}

#[test]
fn diagnostics_carry_labelled_spans_for_miette() {
    use miette::Diagnostic as _;
    let source = fs::read_to_string("tests/corpus/autoscaling-min-greater-than-max.yaml").unwrap();
    let diagnostics = spec::parse(&source, "deploy.yaml", Path::new("tests/corpus")).unwrap_err();
    let d = diagnostics.iter().next().unwrap();
    let labels: Vec<_> = d.labels().unwrap().collect();
    assert_eq!(labels.len(), 2, "the value and the note");
    let primary = &labels[0];
    assert_eq!(&source[primary.offset()..primary.offset() + primary.len()], "2");
    assert!(d.source_code().is_some());
    assert_eq!(d.code().unwrap().to_string(), "deploy_yaml::conflict");
    assert_eq!(diagnostics.related().unwrap().count(), diagnostics.len());
}

#[test]
fn load_names_the_file_as_given_and_resolves_paths_next_to_it() {
    let spec = spec::load(Path::new("tests/valid/deploy.yaml")).unwrap();
    assert_eq!(
        spec.data.train,
        DataSource::LocalFile(PathBuf::from("tests/valid/data/iotid20-demo.csv"))
    );
    assert_eq!(spec.local.state_dir, PathBuf::from("tests/valid/.orchestrate"));

    let err = spec::load(Path::new("tests/corpus/bad-name.yaml")).unwrap_err();
    assert!(
        err.to_string().starts_with("tests/corpus/bad-name.yaml:2:7: "),
        "{err}"
    );

    let err = spec::load(Path::new("tests/corpus/no-such-file.yaml")).unwrap_err();
    let d = err.iter().next().unwrap();
    assert_eq!((d.kind, d.location), (Kind::Io, None));
    assert!(
        err.to_string()
            .starts_with("tests/corpus/no-such-file.yaml: cannot read the file: "),
        "{err}"
    );
}

#[test]
fn the_valid_example_loads_with_its_values_and_defaults() {
    let spec = spec::load(Path::new("tests/valid/deploy.yaml")).unwrap();
    assert_eq!(spec.name.as_str(), "iot-anomaly");
    assert_eq!(spec.target, Target::Local);
    assert_eq!(spec.region.as_str(), "us-east-1");
    assert_eq!(spec.tags.get("team").map(String::as_str), Some("ml-platform"));
    assert_eq!(spec.data.validation, Validation::Fraction(0.2));
    assert_eq!(spec.data.test, None);
    assert_eq!(spec.training.instance_type.as_str(), "ml.m5.xlarge");
    assert_eq!(spec.training.max_runtime.as_secs(), 3_600);
    assert_eq!(spec.training.hyperparameters.max_rounds, Some(500));
    assert_eq!(
        spec.training.quality_gate.as_ref().unwrap().min_pr_auc,
        Some(0.98)
    );
    let scaling = spec.endpoint.autoscaling.as_ref().unwrap();
    assert_eq!(
        (scaling.min, scaling.max, scaling.invocations_per_instance),
        (1, 4, 1000)
    );
    assert_eq!(spec.endpoint.wait_timeout.as_secs(), 1_800);
    let hp = spec.sagemaker_hyperparameters();
    assert_eq!(hp["learning_rate"], "0.1");
    assert_eq!(
        hp["exclude"],
        r#"["Flow_ID","Src_IP","Dst_IP","Timestamp","Cat","Sub_Cat"]"#
    );
    assert_eq!(hp["validation_fraction"], "0.2");
}

#[test]
fn the_target_flag_overrides_the_file_and_takes_part_in_validation() {
    let source = fs::read_to_string("tests/corpus/s3-with-local-target.yaml").unwrap();
    let aws = Overrides {
        target: Some(Target::Aws),
    };
    let spec = spec::parse_with(&source, "deploy.yaml", Path::new("tests/corpus"), &aws).unwrap();
    assert_eq!(spec.target, Target::Aws);
    assert_eq!(
        spec.data.train,
        DataSource::S3 {
            bucket: "iot-data".into(),
            prefix: "iotid20/train/".into()
        }
    );

    let source = source.replace("target: local", "target: aws");
    let local = Overrides {
        target: Some(Target::Local),
    };
    let err = spec::parse_with(&source, "deploy.yaml", Path::new("tests/corpus"), &local).unwrap_err();
    assert_eq!(
        err.to_string().lines().next().unwrap(),
        "deploy.yaml:5:10: `data.train` is in S3, but the target is `local` (from `--target`)"
    );
}

#[test]
fn the_wire_types_read_the_valid_example_strictly() {
    let source = fs::read_to_string("tests/valid/deploy.yaml").unwrap();
    let file: wire::DeployFile = serde_yaml::from_str(&source).unwrap();
    assert_eq!(file.version, 1);
    assert_eq!(file.data.train, "data/iotid20-demo.csv");
}

#[test]
fn the_wire_types_reject_every_unknown_key_the_validator_rejects() {
    for path in corpus() {
        // A file that is not UTF-8 is rejected before any key is read.
        let Ok(source) = fs::read_to_string(&path) else {
            continue;
        };
        let Err(diagnostics) = spec::parse(&source, "deploy.yaml", Path::new("tests/corpus")) else {
            continue;
        };
        if diagnostics.iter().any(|d| d.kind == Kind::UnknownKey) {
            let strict = serde_yaml::from_str::<wire::DeployFile>(&source);
            assert!(
                strict.is_err(),
                "{}: serde accepted an unknown key",
                path.display()
            );
        }
    }
}

#[test]
fn the_json_schema_accepts_the_valid_example_and_rejects_broken_ones() {
    let schema = spec::json_schema();
    let source = fs::read_to_string("tests/valid/deploy.yaml").unwrap();
    let doc: serde_json::Value = serde_yaml::from_str(&source).unwrap();
    let errors = mini_schema::check(&schema, &schema, &doc, "");
    assert!(errors.is_empty(), "{errors:#?}");

    let cases = [
        ("unknown-key-typo", "/training: unknown property `instanse_type`"),
        ("bad-name", "/name: does not match"),
        ("version-2", "/version: above maximum"),
        ("bad-fraction", "/data/validation: above maximum"),
        ("reserved-tags", "/tags: property name `managed-by`"),
        ("bad-instance-type", "/training/instance_type: does not match"),
        ("bad-duration", "/training/max_runtime: does not match"),
        (
            "bad-target-and-region",
            "/target: matches 0 of the `oneOf` alternatives",
        ),
    ];
    for (case, expected) in cases {
        let source = fs::read_to_string(format!("tests/corpus/{case}.yaml")).unwrap();
        let doc: serde_json::Value = serde_yaml::from_str(&source).unwrap();
        let errors = mini_schema::check(&schema, &schema, &doc, "");
        assert!(
            errors.iter().any(|e| e.starts_with(expected)),
            "{case}: {errors:#?}"
        );
    }
}

/// Enough of a JSON Schema validator for the keywords our schema uses (type, properties, required,
/// additionalProperties, $ref, anyOf, not, enum/const, numeric bounds, lengths, pattern, items,
/// propertyNames), so the schema is checked by use and not only by shape, without a heavy crate.
mod mini_schema {
    use serde_json::Value;

    fn type_ok(t: &str, v: &Value) -> bool {
        match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            "number" => v.is_number(),
            "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
            _ => false,
        }
    }

    fn push(errs: &mut Vec<String>, at: &str, message: String) {
        errs.push(format!("{at}: {message}"));
    }

    /// The schema keywords a value breaks, as `pointer: what`.
    pub fn check(root: &Value, schema: &Value, v: &Value, at: &str) -> Vec<String> {
        let mut errs = Vec::new();
        let Some(s) = schema.as_object() else { return errs };
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let target = root.pointer(r.trim_start_matches('#')).expect("ref resolves");
            return check(root, target, v, at);
        }
        if let Some(t) = s.get("type") {
            let ok = match t {
                Value::String(t) => type_ok(t, v),
                Value::Array(ts) => ts.iter().any(|t| type_ok(t.as_str().unwrap(), v)),
                _ => true,
            };
            if !ok {
                push(&mut errs, at, format!("wrong type, expected {t}"));
                return errs;
            }
        }
        if let Some(alts) = s.get("anyOf").and_then(Value::as_array) {
            let results: Vec<Vec<String>> = alts.iter().map(|a| check(root, a, v, at)).collect();
            if !results.iter().any(Vec::is_empty) {
                // Explain with the alternative of the value's type, if there is one.
                let wrong_type = format!("{at}: wrong type");
                match results
                    .into_iter()
                    .find(|r| !r.iter().any(|e| e.starts_with(&wrong_type)))
                {
                    Some(r) => errs.extend(r),
                    None => errs.push(format!("{at}: no alternative matches")),
                }
            }
        }
        if let Some(alts) = s.get("oneOf").and_then(Value::as_array) {
            let matching = alts.iter().filter(|a| check(root, a, v, at).is_empty()).count();
            if matching != 1 {
                push(
                    &mut errs,
                    at,
                    format!("matches {matching} of the `oneOf` alternatives"),
                );
            }
        }
        if let Some(n) = s.get("not")
            && check(root, n, v, at).is_empty()
        {
            push(&mut errs, at, "matches a forbidden schema".into());
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array)
            && !e.contains(v)
        {
            push(&mut errs, at, "not one of the allowed values".into());
        }
        if let Some(c) = s.get("const")
            && c != v
        {
            push(&mut errs, at, "not the constant".into());
        }
        if let Some(x) = v.as_f64() {
            let num = |k: &str| s.get(k).and_then(Value::as_f64);
            if num("minimum").is_some_and(|m| x < m) || num("exclusiveMinimum").is_some_and(|m| x <= m) {
                push(&mut errs, at, "below minimum".into());
            }
            if num("maximum").is_some_and(|m| x > m) || num("exclusiveMaximum").is_some_and(|m| x >= m) {
                push(&mut errs, at, "above maximum".into());
            }
        }
        if let Some(text) = v.as_str() {
            let len = text.chars().count() as u64;
            if s.get("minLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| len < m)
            {
                push(&mut errs, at, "too short".into());
            }
            if s.get("maxLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| len > m)
            {
                push(&mut errs, at, "too long".into());
            }
            if let Some(p) = s.get("pattern").and_then(Value::as_str)
                && !pattern_matches(p, text)
            {
                push(&mut errs, at, format!("does not match `{p}`"));
            }
        }
        if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
            for (i, item) in arr.iter().enumerate() {
                errs.extend(check(root, items, item, &format!("{at}/{i}")));
            }
        }
        if let Some(obj) = v.as_object() {
            let props = s.get("properties").and_then(Value::as_object);
            for req in s.get("required").and_then(Value::as_array).into_iter().flatten() {
                if !obj.contains_key(req.as_str().unwrap()) {
                    errs.push(format!("{at}: missing `{req}`"));
                }
            }
            for (k, val) in obj {
                if let Some(names) = s.get("propertyNames")
                    && !check(root, names, &Value::String(k.clone()), at).is_empty()
                {
                    errs.push(format!("{at}: property name `{k}` is not allowed"));
                }
                match props.and_then(|p| p.get(k)) {
                    Some(ps) => errs.extend(check(root, ps, val, &format!("{at}/{k}"))),
                    None => match s.get("additionalProperties") {
                        Some(Value::Bool(false)) => errs.push(format!("{at}: unknown property `{k}`")),
                        Some(extra @ Value::Object(_)) => {
                            errs.extend(check(root, extra, val, &format!("{at}/{k}")))
                        }
                        _ => {}
                    },
                }
            }
        }
        errs
    }

    fn pattern_matches(pattern: &str, text: &str) -> bool {
        regex::Regex::new(pattern)
            .expect("the schema's patterns compile")
            .is_match(text)
    }
}
