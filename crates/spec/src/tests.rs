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
    assert_eq!(spec.endpoint.instance_type.as_str(), "ml.m5.large");
    assert_eq!(spec.endpoint.instance_count, 1);
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
    assert_eq!(spec.endpoint.instance_type.as_str(), "ml.c5.2xlarge");
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
