//! Unit tests of the whole pipeline on small inline files: defaults, null handling, typed values, the
//! SageMaker hyperparameter map, data sources and serialization.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use crate::{DataSource, Kind, Spec, Target, Validation, defaults, parse};

/// A temporary directory holding the data files the inline examples name.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let csv = "Flow_ID,Flow_Duration,Label\nf1,10,Normal\nf2,3,Anomaly\n";
    fs::write(dir.path().join("train.csv"), csv).unwrap();
    fs::write(
        dir.path().join("valid.csv.gz"),
        b"not really gzip, only the name is checked",
    )
    .unwrap();
    fs::create_dir_all(dir.path().join("parts/2024")).unwrap();
    fs::write(dir.path().join("parts/2024/p1.parquet"), b"PAR1").unwrap();
    dir
}

fn ok(source: &str, dir: &Path) -> Spec {
    parse(source, "deploy.yaml", dir).unwrap_or_else(|d| panic!("{d}"))
}

const MINIMAL: &str = "version: 1\nname: demo\ndata:\n  train: train.csv\n";

/// The diagnostics of [`MINIMAL`] with `endpoint` as its endpoint section, which must be refused.
fn rejected_endpoint(endpoint: &str) -> String {
    let dir = data_dir();
    match parse(
        &format!("{MINIMAL}endpoint:\n{endpoint}"),
        "deploy.yaml",
        dir.path(),
    ) {
        Ok(spec) => panic!("accepted: {:?}", spec.endpoint),
        Err(d) => d.to_string(),
    }
}

#[test]
fn a_minimal_file_gets_every_default() {
    let dir = data_dir();
    let spec = ok(MINIMAL, dir.path());
    assert_eq!(spec.target, Target::Local);
    assert_eq!(spec.region.as_str(), defaults::REGION);
    assert!(spec.tags.is_empty());
    assert_eq!(
        spec.data.train,
        DataSource::LocalFile(dir.path().join("train.csv"))
    );
    assert_eq!(spec.data.validation, Validation::Fraction(0.2));
    assert_eq!(spec.data.test, None);
    assert_eq!(spec.data.label, "Label");
    assert_eq!(spec.data.positive, "Anomaly");
    assert_eq!(
        spec.data.exclude,
        ["Flow_ID", "Src_IP", "Dst_IP", "Timestamp", "Cat", "Sub_Cat"]
    );
    assert!(!spec.bucket.retain_on_down);
    assert_eq!(spec.training.instance_type.as_str(), "ml.m5.xlarge");
    assert_eq!(
        (spec.training.instance_count, spec.training.volume_size_gb),
        (1, 30)
    );
    assert_eq!(spec.training.max_runtime.as_secs(), 3_600);
    assert_eq!(spec.training.hyperparameters, Default::default());
    assert_eq!(spec.training.quality_gate, None);
    assert_eq!(
        spec.endpoint.capacity,
        crate::Capacity::Instances {
            instance_type: "ml.m5.large".parse().unwrap(),
            count: 1
        }
    );
    assert_eq!(spec.endpoint.autoscaling, None);
    assert_eq!(spec.endpoint.wait_timeout.as_secs(), 1_800);
    assert_eq!(spec.local.state_dir, dir.path().join(".orchestrate"));
    assert_eq!(spec.local.port, None);
}

#[test]
fn null_and_empty_values_mean_the_default() {
    let dir = data_dir();
    let source = format!(
        "{MINIMAL}  test: ~\nregion:\ntags:\nbucket:\ntraining:\n  hyperparameters: {{}}\nendpoint: null\nlocal: {{port: null}}\n"
    );
    let with_nulls = ok(&source, dir.path());
    assert_eq!(with_nulls, ok(MINIMAL, dir.path()));
}

#[test]
fn the_sagemaker_hyperparameters_are_all_strings_and_carry_the_data_settings() {
    let dir = data_dir();
    let source = format!(
        "{MINIMAL}  label: Class\n  positive: attack\n  exclude: [Flow_ID, Src_IP]\ntraining:\n  hyperparameters:\n    \
         learning_rate: 0.05\n    max_rounds: 2000\n    early_stopping_rounds: '50'\n    num_leaves: 63\n    max_depth: -1\n    \
         min_data_in_leaf: 0\n    feature_fraction: 0.8\n    threads: \"4\"\n    target_fpr: 1e-3\n    seed: 42\n    \
         bootstrap_resamples: 200\n    quantized_gradients: true\n"
    );
    let spec = ok(&source, dir.path());
    let expected: BTreeMap<String, String> = [
        ("bootstrap_resamples", "200"),
        ("early_stopping_rounds", "50"),
        ("exclude", r#"["Flow_ID","Src_IP"]"#),
        ("feature_fraction", "0.8"),
        ("label", "Class"),
        ("learning_rate", "0.05"),
        ("max_depth", "-1"),
        ("max_rounds", "2000"),
        ("min_data_in_leaf", "0"),
        ("num_leaves", "63"),
        ("positive_class", "attack"),
        ("quantized_gradients", "true"),
        ("seed", "42"),
        ("target_fpr", "0.001"),
        ("threads", "4"),
        ("validation_fraction", "0.2"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(spec.sagemaker_hyperparameters(), expected);
    assert_eq!(spec.training.hyperparameters.threads, Some(4));
}

/// Regression: exclusions were joined with `,` and split again (and names trimmed) on their way to
/// the container, so CICFlowMeter-style names (` Destination Port`, `Flow ID`) or names holding a
/// comma could not be excluded. They now travel as a JSON array, exactly.
#[test]
fn column_names_with_spaces_commas_and_quotes_travel_exactly() {
    let dir = data_dir();
    let source = format!(
        "{MINIMAL}  label: ' Label'\n  positive: 'Anomaly;1'\n  exclude: ['Flow ID', ' Destination Port', 'a,b', 'k=v', 'x;y', 'say \"hi\"']\n"
    );
    let spec = ok(&source, dir.path());
    let columns = ["Flow ID", " Destination Port", "a,b", "k=v", "x;y", "say \"hi\""].map(str::to_string);
    assert_eq!(spec.data.exclude, columns);
    let hp = spec.sagemaker_hyperparameters();
    assert_eq!(hp["label"], " Label");
    assert_eq!(hp["positive_class"], "Anomaly;1");
    assert_eq!(
        contract::hyperparameters::decode_columns(&hp["exclude"]).unwrap(),
        columns
    );
}

#[test]
fn the_validation_fraction_may_come_from_the_hyperparameters_alone() {
    let dir = data_dir();
    let source =
        format!("{MINIMAL}  exclude: []\ntraining:\n  hyperparameters: {{validation_fraction: 0.25}}\n");
    let spec = ok(&source, dir.path());
    assert_eq!(spec.data.validation, Validation::Fraction(0.25));
    let hp = spec.sagemaker_hyperparameters();
    assert_eq!(hp["validation_fraction"], "0.25");
    assert_eq!(hp["exclude"], "[]", "an empty list excludes nothing, explicitly");
}

#[test]
fn a_validation_path_is_a_separate_channel_without_a_fraction() {
    let dir = data_dir();
    let spec = ok(
        &format!("{MINIMAL}  validation: valid.csv.gz\n  test: parts\n"),
        dir.path(),
    );
    assert_eq!(
        spec.data.validation,
        Validation::Source(DataSource::LocalFile(dir.path().join("valid.csv.gz")))
    );
    assert_eq!(
        spec.data.test,
        Some(DataSource::LocalDir(dir.path().join("parts")))
    );
    assert!(
        !spec
            .sagemaker_hyperparameters()
            .contains_key("validation_fraction")
    );
}

#[test]
fn s3_sources_split_into_bucket_and_prefix_on_the_aws_target() {
    let dir = data_dir();
    let source =
        "version: 1\nname: demo\ntarget: aws\ndata:\n  train: s3://my-data/iot/train\n  test: s3://my-data\n";
    let spec = ok(source, dir.path());
    assert_eq!(
        spec.data.train,
        DataSource::S3 {
            bucket: "my-data".into(),
            prefix: "iot/train".into()
        }
    );
    assert_eq!(
        spec.data.test,
        Some(DataSource::S3 {
            bucket: "my-data".into(),
            prefix: String::new()
        })
    );
    assert_eq!(spec.data.train.to_string(), "s3://my-data/iot/train");
    assert!(!spec.data.train.is_local());
}

#[test]
fn anchors_and_aliases_are_followed() {
    let dir = data_dir();
    let source =
        format!("{MINIMAL}training:\n  instance_type: &it ml.c5.2xlarge\nendpoint:\n  instance_type: *it\n");
    let spec = ok(&source, dir.path());
    match &spec.endpoint.capacity {
        crate::Capacity::Instances { instance_type, .. } => {
            assert_eq!(instance_type.as_str(), "ml.c5.2xlarge")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_spec_serializes_with_readable_durations() {
    let dir = data_dir();
    let source = format!("{MINIMAL}training: {{max_runtime: 90m}}\n");
    let json = serde_json::to_value(ok(&source, dir.path())).unwrap();
    assert_eq!(json["training"]["max_runtime"], "1h30m");
    assert_eq!(json["endpoint"]["wait_timeout"], "30m");
    assert_eq!(json["target"], "local");
    assert_eq!(json["name"], "demo");
}

#[test]
fn durations_outside_their_limits_are_rejected() {
    let dir = data_dir();
    for (yaml, ok_expected) in [
        ("training: {max_runtime: 28d}", true),
        ("training: {max_runtime: 28d1s}", false),
        ("training: {max_runtime: 0s}", false),
        ("endpoint: {wait_timeout: 1d}", true),
        ("endpoint: {wait_timeout: 25h}", false),
    ] {
        let result = parse(&format!("{MINIMAL}{yaml}\n"), "deploy.yaml", dir.path());
        assert_eq!(result.is_ok(), ok_expected, "{yaml}");
    }
}

/// Regression: `threads` and `bootstrap_resamples` beyond what model-image accepts passed
/// validation (`bootstrap_resamples` was not a deploy.yaml key at all) and failed only inside the
/// training job. Both bounds are the container's, inclusive.
#[test]
fn threads_and_bootstrap_resamples_are_bounded_like_the_container() {
    let dir = data_dir();
    for (yaml, ok_expected) in [
        ("threads: 1", true),
        ("threads: 4096", true),
        ("threads: '4096'", true),
        ("threads: 4097", false),
        ("threads: 4294967295", false),
        ("threads: 0", false),
        ("bootstrap_resamples: 0", true),
        ("bootstrap_resamples: 10000", true),
        ("bootstrap_resamples: '10000.0'", true),
        ("bootstrap_resamples: 10001", false),
        ("bootstrap_resamples: 4294967295", false),
        ("bootstrap_resamples: -1", false),
        ("bootstrap_resamples: 2.5", false),
    ] {
        let source = format!("{MINIMAL}training:\n  hyperparameters: {{{yaml}}}\n");
        match parse(&source, "deploy.yaml", dir.path()) {
            Ok(_) => assert!(ok_expected, "{yaml}: accepted"),
            Err(d) => {
                assert!(!ok_expected, "{yaml}: {d}");
                let d = d.iter().next().unwrap();
                assert_eq!(d.kind, Kind::InvalidValue, "{yaml}: {d:?}");
                assert!(d.help.is_some(), "{yaml}: {d:?}");
            }
        }
    }
    let source = format!("{MINIMAL}training:\n  hyperparameters: {{bootstrap_resamples: 0}}\n");
    let spec = ok(&source, dir.path());
    assert_eq!(spec.training.hyperparameters.bootstrap_resamples, Some(0));
    assert_eq!(spec.sagemaker_hyperparameters()["bootstrap_resamples"], "0");
    // Unset, the container's default applies: nothing is passed.
    let spec = ok(MINIMAL, dir.path());
    assert!(
        !spec
            .sagemaker_hyperparameters()
            .contains_key("bootstrap_resamples")
    );
}

/// The spec cannot depend on model-image (it links LightGBM), so the bounds model-image enforces
/// on `threads` and `bootstrap_resamples` are repeated here; this reads model-image's source and
/// fails when the two differ.
#[test]
fn the_hyperparameter_bounds_are_the_containers() {
    use crate::validate::training::{MAX_BOOTSTRAP_RESAMPLES, MAX_THREADS};
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../model-image/src/hyperparameters.rs");
    let source = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let constant = |name: &str| -> u32 {
        let prefix = format!("pub const {name}: u32 = ");
        let line = source
            .lines()
            .find_map(|line| line.trim().strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("{}: no `{prefix}…;`", path.display()));
        line.trim_end_matches(';').replace('_', "").parse().unwrap()
    };
    assert_eq!(MAX_THREADS, constant("MAX_THREADS"));
    assert_eq!(MAX_BOOTSTRAP_RESAMPLES, constant("MAX_BOOTSTRAP_RESAMPLES"));
}

#[test]
fn quantized_gradients_is_a_yaml_boolean_and_its_aliases_are_suggested() {
    let dir = data_dir();
    let spec = ok(
        &format!("{MINIMAL}training:\n  hyperparameters:\n    quantized_gradients: false\n"),
        dir.path(),
    );
    assert_eq!(
        spec.sagemaker_hyperparameters()
            .get("quantized_gradients")
            .map(String::as_str),
        Some("false")
    );
    let source = format!("{MINIMAL}training:\n  hyperparameters:\n    quantized_gradients: yes\n");
    let err = parse(&source, "deploy.yaml", dir.path()).unwrap_err();
    let d = err.iter().next().unwrap();
    assert_eq!(d.line(), Some(MINIMAL.lines().count() + 3), "{}", d.message);
    assert!(
        d.help.as_deref().unwrap_or_default().contains("write `true`"),
        "{d:?}"
    );
    let source = format!("{MINIMAL}training:\n  hyperparameters:\n    use_quantized_grad: true\n");
    let err = parse(&source, "deploy.yaml", dir.path()).unwrap_err();
    let d = err.iter().next().unwrap();
    assert!(
        d.help
            .as_deref()
            .unwrap_or_default()
            .contains("quantized_gradients"),
        "{d:?}"
    );
}

#[test]
fn the_bucket_name_must_fit_with_the_region() {
    let dir = data_dir();
    let long = "x".repeat(32);
    let source =
        format!("version: 1\nname: {long}\nregion: ap-southeasternmost-1\ndata: {{train: train.csv}}\n");
    let err = parse(&source, "deploy.yaml", dir.path()).unwrap_err();
    let d = err.iter().next().unwrap();
    assert_eq!((d.kind, d.line()), (Kind::InvalidValue, Some(3)));
    assert!(d.message.contains("would be 67 characters"), "{}", d.message);

    let spec = ok(
        &format!("version: 1\nname: {long}\nregion: ap-southeast-2\ndata: {{train: train.csv}}\n"),
        dir.path(),
    );
    assert_eq!(spec.bucket_name("123456789012").len(), 60);
}

#[test]
fn too_many_tags_are_rejected() {
    let dir = data_dir();
    let tags: String = (0..49).map(|i| format!("  k{i}: v\n")).collect();
    let err = parse(&format!("{MINIMAL}tags:\n{tags}"), "deploy.yaml", dir.path()).unwrap_err();
    assert!(
        err.to_string()
            .contains("`tags` has 49 tags; at most 48 are allowed"),
        "{err}"
    );
}

#[test]
fn targets_parse_from_flags() {
    assert_eq!("aws".parse::<Target>(), Ok(Target::Aws));
    assert_eq!("local".parse::<Target>(), Ok(Target::Local));
    assert!("AWS".parse::<Target>().is_err());
    assert_eq!(Target::Aws.to_string(), "aws");
}

#[test]
fn a_second_document_or_a_bad_alias_is_a_syntax_error() {
    let dir = data_dir();
    let err = parse(&format!("{MINIMAL}---\nversion: 1\n"), "deploy.yaml", dir.path()).unwrap_err();
    let d = err.iter().next().unwrap();
    assert_eq!((d.kind, d.line()), (Kind::Syntax, Some(5)));
    let err = parse("version: *nowhere\n", "deploy.yaml", dir.path()).unwrap_err();
    assert_eq!(err.iter().next().unwrap().kind, Kind::Syntax);
}

mod rollout {
    use std::time::Duration;

    use super::{MINIMAL, data_dir, ok};
    use crate::{AlarmRule, OwnedAlarms, Rollout, RolloutAlarms, RolloutStrategy};

    fn rollout(endpoint: &str) -> Rollout {
        let dir = data_dir();
        ok(&format!("{MINIMAL}endpoint:\n{endpoint}"), dir.path())
            .endpoint
            .rollout
    }

    use super::rejected_endpoint as rejected;

    #[test]
    fn without_a_section_everything_goes_at_once_unwatched() {
        let dir = data_dir();
        let expected = Rollout {
            strategy: RolloutStrategy::AllAtOnce,
            bake: Duration::ZERO,
            alarms: RolloutAlarms::None,
        };
        assert_eq!(ok(MINIMAL, dir.path()).endpoint.rollout, expected);
        assert_eq!(rollout("  instance_count: 3\n"), expected);
        assert_eq!(rollout("  rollout: null\n"), expected);
        assert_eq!(Rollout::default(), expected);
    }

    #[test]
    fn a_section_bakes_ten_minutes_under_the_default_alarms() {
        let owned = RolloutAlarms::Owned(OwnedAlarms {
            errors: AlarmRule {
                threshold: 1,
                datapoints: 2,
                periods: 3,
            },
            latency: AlarmRule {
                threshold: 100_000,
                datapoints: 2,
                periods: 3,
            },
        });
        for section in ["  rollout: {}\n", "  rollout: {strategy: all_at_once}\n"] {
            let r = rollout(section);
            assert_eq!(r.strategy, RolloutStrategy::AllAtOnce);
            assert_eq!(r.bake, Duration::from_secs(600));
            assert_eq!(r.alarms, owned, "{section}");
        }
        let canary = rollout("  instance_count: 2\n  rollout: {strategy: canary}\n");
        assert_eq!(canary.strategy, RolloutStrategy::Canary { percent: 50 });
        assert_eq!((canary.bake, &canary.alarms), (Duration::from_secs(600), &owned));
        let linear = rollout("  instance_count: 2\n  rollout: {strategy: linear}\n");
        assert_eq!(linear.strategy, RolloutStrategy::Linear { step_percent: 25 });
        assert_eq!(linear.alarms, owned);
        assert_eq!(OwnedAlarms::default(), OwnedAlarms::DEFAULT);
    }

    #[test]
    fn every_key_is_read() {
        let r = rollout(
            "  instance_count: 4\n  autoscaling: {min: 2, max: 8}\n  rollout:\n    strategy: canary\n    canary_percent: 10\n    bake: 0s\n    alarms: none\n",
        );
        assert_eq!(r.strategy, RolloutStrategy::Canary { percent: 10 });
        assert_eq!(r.bake, Duration::ZERO);
        assert_eq!(r.alarms, RolloutAlarms::None);
        let r = rollout("  instance_count: 2\n  rollout: {strategy: linear, step_percent: 10, bake: 1h}\n");
        assert_eq!(r.strategy, RolloutStrategy::Linear { step_percent: 10 });
        assert_eq!(r.bake, Duration::from_secs(3_600));
    }

    #[test]
    fn alarms_are_a_preset_a_list_of_names_or_rules() {
        assert_eq!(
            rollout("  rollout: {alarms: default}\n").alarms,
            RolloutAlarms::Owned(OwnedAlarms::DEFAULT)
        );
        assert_eq!(rollout("  rollout: {alarms: none}\n").alarms, RolloutAlarms::None);
        assert_eq!(
            rollout("  rollout:\n    alarms: [my-5xx, \"latency p99\"]\n").alarms,
            RolloutAlarms::Named(vec!["my-5xx".into(), "latency p99".into()])
        );
        let rules = rollout(
            "  rollout:\n    alarms:\n      errors: {threshold: 5}\n      latency: {threshold_ms: 250, datapoints: 3, periods: 5}\n",
        );
        assert_eq!(
            rules.alarms,
            RolloutAlarms::Owned(OwnedAlarms {
                errors: AlarmRule {
                    threshold: 5,
                    datapoints: 2,
                    periods: 3,
                },
                latency: AlarmRule {
                    threshold: 250_000,
                    datapoints: 3,
                    periods: 5,
                },
            })
        );
        assert_eq!(
            rollout("  rollout: {alarms: {}}\n").alarms,
            RolloutAlarms::Owned(OwnedAlarms::DEFAULT)
        );
        let one_day = rollout("  rollout: {alarms: {errors: {datapoints: 1440, periods: 1440}}}\n");
        let RolloutAlarms::Owned(owned) = one_day.alarms else {
            panic!("owned")
        };
        assert_eq!(owned.errors.periods, 1_440);
        assert_eq!(owned.latency, OwnedAlarms::DEFAULT.latency);
    }

    #[test]
    fn steps_and_total_bake_follow_the_strategy() {
        let ten = Duration::from_secs(600);
        let cases = [
            ("  rollout: {}\n", vec![100], 1),
            (
                "  instance_count: 2\n  rollout: {strategy: canary}\n",
                vec![50, 100],
                2,
            ),
            (
                "  instance_count: 2\n  rollout: {strategy: canary, canary_percent: 5}\n",
                vec![5, 100],
                2,
            ),
            (
                "  instance_count: 2\n  rollout: {strategy: linear}\n",
                vec![25, 50, 75, 100],
                4,
            ),
            (
                "  instance_count: 2\n  rollout: {strategy: linear, step_percent: 30}\n",
                vec![30, 60, 90, 100],
                4,
            ),
            (
                "  instance_count: 2\n  rollout: {strategy: linear, step_percent: 50}\n",
                vec![50, 100],
                2,
            ),
        ];
        for (section, steps, bakes) in cases {
            let r = rollout(section);
            assert_eq!(r.steps(), steps, "{section}");
            assert_eq!(r.total_bake(), ten * bakes, "{section}");
        }
        assert_eq!(Rollout::default().total_bake(), Duration::ZERO);
    }

    #[test]
    fn stepwise_strategies_need_two_instances_all_the_time() {
        let err = rejected("  rollout: {strategy: canary}\n");
        assert!(err.contains("`endpoint.instance_count` defaults to 1"), "{err}");
        assert!(
            err.contains("set `endpoint.instance_count: 2` or more, or use `strategy: all_at_once`"),
            "{err}"
        );
        let err = rejected("  instance_count: 2\n  autoscaling: {max: 4}\n  rollout: {strategy: linear}\n");
        assert!(err.contains("`endpoint.autoscaling.min` defaults to 1"), "{err}");
        assert_eq!(
            err.lines().filter(|l| l.starts_with("deploy.yaml:")).count(),
            1,
            "{err}"
        );
        // All at once on one instance is fine.
        assert_eq!(rollout("  rollout: {bake: 5m}\n").bake, Duration::from_secs(300));
    }

    #[test]
    fn every_bad_value_is_reported_at_once() {
        let err = rejected(
            "  instance_count: 2\n  rollout:\n    strategy: linear\n    canary_percent: 20\n    bake: 2h\n    alarms: {errors: {threshold: 0}, latency: {threshold_ms: 60001, datapoints: 4}}\n",
        );
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("deploy.yaml:")).collect();
        assert_eq!(lines.len(), 4, "{err}");
        assert!(lines[0].contains("canary_percent"), "{err}");
        assert!(lines[1].contains("bake"), "{err}");
        assert!(lines[2].contains("errors.threshold"), "{err}");
        assert!(lines[3].contains("latency.threshold_ms"), "{err}");
        // The datapoints conflict waits until the threshold is valid; then it is reported.
        let err = rejected("  rollout: {alarms: {latency: {datapoints: 4}}}\n");
        assert!(
            err.contains("(4) is more than `periods` (3, the default)"),
            "{err}"
        );
        let err = rejected("  rollout: {alarms: {errors: {periods: 1}}}\n");
        assert!(
            err.contains("(1) is less than `datapoints` (2, the default)"),
            "{err}"
        );
    }

    #[test]
    fn alarm_names_are_bounded_and_unique() {
        let eleven: Vec<String> = (0..11).map(|i| format!("a{i}")).collect();
        let err = rejected(&format!("  rollout: {{alarms: [{}]}}\n", eleven.join(", ")));
        assert!(
            err.contains("lists 11 alarms; SageMaker watches at most 10"),
            "{err}"
        );
        let ten = &eleven[..10];
        let r = rollout(&format!("  rollout: {{alarms: [{}]}}\n", ten.join(", ")));
        assert_eq!(r.alarms, RolloutAlarms::Named(ten.to_vec()));
        let err = rejected("  rollout: {alarms: [a, b, a]}\n");
        assert!(err.contains("`a` is listed twice"), "{err}");
        let err = rejected("  rollout: {alarms: []}\n");
        assert!(err.contains("empty list"), "{err}");
        let err = rejected(&format!("  rollout: {{alarms: [{}]}}\n", "x".repeat(256)));
        assert!(err.contains("256 characters long"), "{err}");
        let r = rollout(&format!("  rollout: {{alarms: [{}]}}\n", "x".repeat(255)));
        assert_eq!(r.alarms, RolloutAlarms::Named(vec!["x".repeat(255)]));
        let err = rejected("  rollout: {alarms: my-alarm}\n");
        assert!(err.contains("`alarms: [my-alarm]`"), "{err}");
        let err = rejected("  rollout: {alarms: false}\n");
        assert!(err.contains("write `alarms: none`"), "{err}");
    }

    #[test]
    fn unknown_strategies_and_rule_keys_get_suggestions() {
        for (section, help) in [
            ("  rollout: {strategy: canery}\n", "did you mean `canary`?"),
            (
                "  rollout: {strategy: all-at-once}\n",
                "did you mean `all_at_once`?",
            ),
            ("  rollout: {strategy: rolling}\n", "did you mean `linear`?"),
            (
                "  rollout: {strategy: shadow}\n",
                "use `all_at_once` (the default), `canary` or `linear`",
            ),
            (
                "  rollout: {alarms: {latency: {threshold: 5}}}\n",
                "did you mean `threshold_ms`?",
            ),
            (
                "  rollout: {alarms: {errors: {evaluation_periods: 5}}}\n",
                "did you mean `periods`?",
            ),
            ("  rollout: {stratgy: canary}\n", "did you mean `strategy`?"),
            ("  rollout: {alarms: {error: {}}}\n", "did you mean `errors`?"),
        ] {
            let err = rejected(section);
            assert!(err.contains(help), "{section}: {err}");
        }
    }

    #[test]
    fn the_rollout_serializes_readably() {
        let dir = data_dir();
        let source = format!(
            "{MINIMAL}endpoint:\n  instance_count: 2\n  rollout: {{strategy: canary, canary_percent: 20}}\n"
        );
        let json = serde_json::to_value(ok(&source, dir.path())).unwrap();
        let r = &json["endpoint"]["rollout"];
        assert_eq!(
            r["strategy"],
            serde_json::json!({"strategy": "canary", "percent": 20})
        );
        assert_eq!(r["bake"], "10m");
        assert_eq!(r["alarms"]["owned"]["latency"]["threshold"], 100_000);
    }
}

mod serverless {
    use super::{MINIMAL, data_dir, ok};
    use crate::{Capacity, Rollout, Serverless};

    use super::rejected_endpoint as rejected;

    #[test]
    fn serverless_takes_its_defaults_and_no_instances() {
        let dir = data_dir();
        let spec = ok(&format!("{MINIMAL}endpoint:\n  serverless: {{}}\n"), dir.path());
        assert_eq!(
            spec.endpoint.capacity,
            Capacity::Serverless(Serverless {
                memory_mb: 2048,
                max_concurrency: 5
            })
        );
        assert_eq!(spec.endpoint.autoscaling, None);
        assert_eq!(spec.endpoint.rollout, Rollout::default());
        let spec = ok(
            &format!("{MINIMAL}endpoint:\n  serverless: {{memory_mb: 6144, max_concurrency: 200}}\n"),
            dir.path(),
        );
        assert_eq!(spec.endpoint.capacity.instance_count(), None);
        assert!(spec.endpoint.capacity.is_serverless());
    }

    #[test]
    fn serverless_refuses_instances_autoscaling_and_guardrails_each_at_its_line() {
        let err = rejected(
            "  serverless: {memory_mb: 2048}\n  instance_count: 2\n  autoscaling: {max: 3}\n  rollout: {strategy: canary}\n",
        );
        for (line, key) in [(6, "instance_count"), (7, "autoscaling"), (8, "rollout")] {
            assert!(
                err.contains(&format!("deploy.yaml:{line}:3"))
                    && err.contains(&format!(
                        "`endpoint.{key}` cannot be used with `endpoint.serverless`"
                    )),
                "{key}: {err}"
            );
            assert!(
                err.contains(&format!("remove `{key}`, or remove `serverless`")),
                "{err}"
            );
        }
        assert!(err.contains("`serverless` is set here"), "{err}");
        let err = rejected("  instance_type: ml.m5.large\n  serverless: {}\n");
        assert!(err.contains("`endpoint.instance_type` cannot be used"), "{err}");
    }

    #[test]
    fn serverless_memory_comes_in_whole_gigabytes_and_concurrency_is_bounded() {
        let err = rejected("  serverless: {memory_mb: 3000}\n");
        assert!(
            err.contains("must be 1024, 2048, 3072, 4096, 5120 or 6144"),
            "{err}"
        );
        assert!(err.contains("use `memory_mb: 3072`"), "{err}");
        let err = rejected("  serverless: {memory_mb: 512}\n");
        assert!(err.contains("`endpoint.serverless.memory_mb`"), "{err}");
        let err = rejected("  serverless: {max_concurrency: 201}\n");
        assert!(err.contains("`endpoint.serverless.max_concurrency`"), "{err}");
        let err = rejected("  serverless: {memory: 2048}\n");
        assert!(err.contains("memory_mb"), "{err}");
    }
}

mod async_inference {
    use super::{MINIMAL, data_dir, ok};
    use crate::{AsyncInference, Capacity, Invocation};

    use super::rejected_endpoint as rejected;

    #[test]
    fn async_takes_its_default_on_instances_and_real_time_is_the_default() {
        let dir = data_dir();
        let spec = ok(&format!("{MINIMAL}endpoint:\n  instance_count: 2\n"), dir.path());
        assert_eq!(spec.endpoint.invocation, Invocation::RealTime);
        let spec = ok(&format!("{MINIMAL}endpoint:\n  async: {{}}\n"), dir.path());
        assert_eq!(
            spec.endpoint.invocation,
            Invocation::Async(AsyncInference {
                max_concurrent_invocations: 4
            })
        );
        assert!(matches!(
            spec.endpoint.capacity,
            Capacity::Instances { count: 1, .. }
        ));
        let spec = ok(
            &format!(
                "{MINIMAL}endpoint:\n  instance_count: 2\n  async: {{max_concurrent_invocations: 1000}}\n  autoscaling: {{max: 3}}\n"
            ),
            dir.path(),
        );
        assert!(spec.endpoint.invocation.is_async());
        assert!(spec.endpoint.autoscaling.is_some());
    }

    #[test]
    fn async_refuses_serverless_and_rollout_at_their_lines() {
        let err = rejected("  serverless: {}\n  async: {}\n");
        assert!(
            err.contains("deploy.yaml:6:3")
                && err.contains("`endpoint.async` cannot be used with `endpoint.serverless`"),
            "{err}"
        );
        assert!(err.contains("remove `async`, or remove `serverless`"), "{err}");
        let err = rejected("  instance_count: 2\n  async: {}\n  rollout: {strategy: canary}\n");
        assert!(
            err.contains("deploy.yaml:7:3")
                && err.contains("`endpoint.rollout` cannot be used with `endpoint.async`"),
            "{err}"
        );
        assert!(err.contains("`async` is set here"), "{err}");
    }

    #[test]
    fn async_concurrency_is_bounded_and_its_keys_are_checked() {
        let err = rejected("  async: {max_concurrent_invocations: 0}\n");
        assert!(
            err.contains("`endpoint.async.max_concurrent_invocations`"),
            "{err}"
        );
        let err = rejected("  async: {max_concurrent_invocations: 1001}\n");
        assert!(
            err.contains("`endpoint.async.max_concurrent_invocations`"),
            "{err}"
        );
        let err = rejected("  async: {concurrency: 3}\n");
        assert!(err.contains("max_concurrent_invocations"), "{err}");
    }
}

mod data_capture_and_monitoring {
    use super::{MINIMAL, data_dir, ok};
    use crate::{DataCapture, Monitoring, MonitoringSchedule};

    use super::rejected_endpoint as rejected;

    #[test]
    fn capture_takes_its_default_and_monitoring_is_on_demand_by_default() {
        let dir = data_dir();
        let spec = ok(MINIMAL, dir.path());
        assert_eq!(spec.endpoint.data_capture, None);
        assert_eq!(spec.monitoring, Monitoring::default());
        let spec = ok(&format!("{MINIMAL}endpoint:\n  data_capture: {{}}\n"), dir.path());
        assert_eq!(
            spec.endpoint.data_capture,
            Some(DataCapture { sample_percent: 20 })
        );
        assert_eq!(spec.monitoring.schedule, None);
        assert_eq!(spec.monitoring.drift_threshold, 0.2);
        let spec = ok(
            &format!(
                "{MINIMAL}endpoint:\n  data_capture: {{sample_percent: 100}}\nmonitoring: {{drift_threshold: 0.1}}\n"
            ),
            dir.path(),
        );
        assert_eq!(spec.monitoring.drift_threshold, 0.1);
        assert_eq!(MonitoringSchedule::Hourly.expression(), "cron(0 * ? * * *)");
    }

    #[test]
    fn capture_is_refused_with_serverless_and_bounded() {
        let err = rejected("  serverless: {}\n  data_capture: {}\n");
        assert!(
            err.contains("deploy.yaml:6:3")
                && err.contains("`endpoint.data_capture` cannot be used with `endpoint.serverless`"),
            "{err}"
        );
        let err = rejected("  data_capture: {sample_percent: 0}\n");
        assert!(err.contains("`endpoint.data_capture.sample_percent`"), "{err}");
        let err = rejected("  data_capture: {percent: 10}\n");
        assert!(err.contains("sample_percent"), "{err}");
    }

    /// The diagnostics of [`MINIMAL`] followed by `rest`, which must be refused.
    fn rejected_with(rest: &str) -> String {
        let dir = data_dir();
        match crate::parse(&format!("{MINIMAL}{rest}"), "deploy.yaml", dir.path()) {
            Ok(spec) => panic!("accepted: {:?}", spec.monitoring),
            Err(d) => d.to_string(),
        }
    }

    #[test]
    fn monitoring_needs_capture_and_a_known_schedule() {
        let err = rejected_with("endpoint:\n  data_capture: {}\nmonitoring: {schedule: hourly}\n");
        assert!(
            err.contains("`monitoring.schedule` is not supported yet"),
            "{err}"
        );
        let err = rejected_with("monitoring: {drift_threshold: 0.3}\n");
        assert!(
            err.contains("`monitoring` needs captured traffic")
                && err.contains("data_capture: {sample_percent: 20}"),
            "{err}"
        );
        let err = rejected_with("endpoint:\n  data_capture: {}\nmonitoring: {schedule: weekly}\n");
        assert!(
            err.contains("must be `hourly` or `daily`, found `weekly`"),
            "{err}"
        );
        let err = rejected_with("endpoint:\n  data_capture: {}\nmonitoring: {drift_threshold: 0}\n");
        assert!(err.contains("`monitoring.drift_threshold`"), "{err}");
    }
}
