//! The `orchestrate` binary, run as users run it: help text, `validate`, `schema`, and the checks
//! that must stop a command before any side effect (invalid deploy.yaml, `down` without a terminal
//! or `--yes`, the unavailable AWS target). Fast on purpose: the end-to-end lifecycle with real
//! training lives in the workspace's top-level tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_orchestrate");

/// `orchestrate ARGS` in `dir`, with no terminal and no inherited settings.
fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("ORCHESTRATE_MODEL_IMAGE")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .output()
        .expect("run orchestrate")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A valid deployment in a temporary folder: deploy.yaml plus a tiny training file.
fn valid_deployment() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("train.csv"),
        "Flow_Duration,Label\n1,Normal\n2,Anomaly\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("deploy.yaml"),
        "version: 1\nname: cli-test\ntarget: local\ndata:\n  train: train.csv\n",
    )
    .unwrap();
    dir
}

#[test]
fn help_lists_every_command_and_global_flag() {
    let output = run(Path::new("."), &["--help"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    insta::assert_snapshot!(stdout(&output));
}

#[test]
fn usage_errors_exit_1_not_the_drift_code() {
    let output = run(Path::new("."), &["frobnicate"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("unrecognized subcommand"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_shipped_deploy_yaml_is_valid() {
    let output = run(&repo_root(), &["validate"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    assert!(
        stdout(&output).starts_with("deploy.yaml is valid"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn validate_reports_every_problem_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deploy.yaml"),
        "version: 1\nname: Bad_Name\ndata:\n  train: missing.csv\ntraining:\n  instanse_type: ml.m5.xlarge\n",
    )
    .unwrap();
    let output = run(dir.path(), &["validate"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).is_empty(),
        "results only on success: {}",
        stdout(&output)
    );
    let err = stderr(&output);
    let located: Vec<&str> = err.lines().filter(|l| l.starts_with("deploy.yaml:")).collect();
    assert_eq!(located.len(), 3, "{err}");
    for line in &located {
        let mut parts = line.splitn(4, ':');
        assert_eq!(parts.next(), Some("deploy.yaml"));
        assert!(parts.next().unwrap().parse::<usize>().is_ok(), "{line}");
        assert!(parts.next().unwrap().parse::<usize>().is_ok(), "{line}");
    }
    assert!(located[0].starts_with("deploy.yaml:2:7:"), "{err}");
    assert!(err.contains("help: did you mean `instance_type`?"), "{err}");
    assert!(
        err.ends_with("error: deploy.yaml has 3 problems; nothing was changed\n"),
        "{err}"
    );
}

#[test]
fn invalid_deploy_yaml_stops_up_before_any_side_effect() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deploy.yaml"),
        "version: 2\nname: x\ndata: {train: t.csv}\n",
    )
    .unwrap();
    let output = run(dir.path(), &["up"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("deploy.yaml:1:10:"),
        "{}",
        stderr(&output)
    );
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(entries.len(), 1, "only deploy.yaml: nothing was created");
}

#[test]
fn validate_json_carries_the_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deploy.yaml"),
        "version: 1\nname: ok\ndata: {train: nope.csv}\n",
    )
    .unwrap();
    let output = run(dir.path(), &["validate", "--output", "json"]);
    assert_eq!(output.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).expect("one JSON document on stdout");
    assert_eq!(doc["ok"], false);
    let diagnostics = doc["error"]["diagnostics"].as_array().unwrap();
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(diagnostics[0]["location"]["line"], 3);
    assert_eq!(diagnostics[0]["kind"], "missing_file");
}

#[test]
fn validate_json_on_success_has_the_spec() {
    let dir = valid_deployment();
    let output = run(dir.path(), &["validate", "--output", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["spec"]["name"], "cli-test");
}

#[test]
fn schema_is_json_schema_with_version() {
    let output = run(Path::new("."), &["schema"]);
    assert_eq!(output.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).expect("valid JSON");
    assert!(schema["properties"]["version"].is_object(), "{schema}");
    assert!(schema["$schema"].as_str().unwrap().contains("2020-12"));
}

#[test]
fn down_without_terminal_requires_yes() {
    let dir = valid_deployment();
    let output = run(dir.path(), &["down"]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("pass --yes"), "{err}");
    assert!(!dir.path().join(".orchestrate").exists(), "nothing was touched");
}

#[test]
fn down_of_a_deployment_that_never_ran_deletes_nothing_and_leaves_no_state_behind() {
    let dir = valid_deployment();
    let output = run(dir.path(), &["down", "--yes"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("Nothing to delete"),
        "{}",
        stdout(&output)
    );
    assert!(!dir.path().join(".orchestrate").exists(), "down created state");
}

/// `run` with no AWS credentials anywhere: no AWS variable, a home without `~/.aws`, and no
/// instance metadata to ask.
fn run_without_aws(dir: &Path, args: &[&str]) -> Output {
    run_without_aws_command(dir, args)
        .output()
        .expect("run orchestrate")
}

/// The command [`run_without_aws`] runs, to add variables to.
fn run_without_aws_command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(dir);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command
        .env_remove("ORCHESTRATE_MODEL_IMAGE")
        .env_remove("RUST_LOG")
        .env("HOME", dir.join("empty-home"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_COLOR", "1");
    command
}

/// The `error:` lines of a run's stderr (the progress lines above them aside).
fn error_lines(output: &Output) -> Vec<String> {
    stderr(output)
        .lines()
        .skip_while(|line| !line.starts_with("error:"))
        .map(str::to_string)
        .collect()
}

#[test]
fn aws_target_without_credentials_says_so_in_one_line_with_where_they_come_from() {
    let dir = valid_deployment();
    for args in [
        &["--target", "aws", "up"][..],
        &["plan", "--target", "aws"],
        &["status", "--target=aws"],
    ] {
        let output = run_without_aws(dir.path(), args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        // One line, saying what is missing and where it may come from; no SDK chain of causes.
        let lines = error_lines(&output);
        assert_eq!(lines.len(), 1, "{}", stderr(&output));
        let line = &lines[0];
        assert!(line.starts_with("error: no AWS credentials found: "), "{line}");
        for source in [
            "AWS_PROFILE",
            "SSO",
            "credential_process",
            "role_arn",
            "AWS_ACCESS_KEY_ID",
            "--target local",
        ] {
            assert!(line.contains(source), "`{source}` missing from: {line}");
        }
        assert!(!line.contains("caller"), "{line}");
    }
    // A profile that has no credentials is named.
    let output = run_without_aws_command(dir.path(), &["status", "--target", "aws"])
        .env("AWS_PROFILE", "work")
        .output()
        .expect("run orchestrate");
    let lines = error_lines(&output);
    assert_eq!(lines.len(), 1, "{}", stderr(&output));
    assert!(lines[0].contains("profile `work` has none"), "{}", lines[0]);
    // From the file too.
    let yaml = std::fs::read_to_string(dir.path().join("deploy.yaml"))
        .unwrap()
        .replace("target: local", "target: aws");
    std::fs::write(dir.path().join("deploy.yaml"), yaml).unwrap();
    let output = run_without_aws(dir.path(), &["plan"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no AWS credentials found"),
        "{}",
        stderr(&output)
    );
    assert!(!dir.path().join(".orchestrate").exists(), "nothing was touched");
    // Validation needs no account.
    let output = run_without_aws(dir.path(), &["validate"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn aws_error_in_json_mode_is_a_json_document() {
    let dir = valid_deployment();
    let output = run_without_aws(dir.path(), &["--target", "aws", "--output", "json", "status"]);
    assert_eq!(output.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["ok"], false);
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no AWS credentials found")
    );
}

#[test]
fn aws_target_that_sts_does_not_answer_says_how_to_check_the_credentials() {
    let dir = valid_deployment();
    // Credentials, but nothing listens where STS should be (port 1 of loopback refuses at once).
    let output = run_without_aws_command(dir.path(), &["status", "--target", "aws"])
        .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
        .env(
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        )
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
        .expect("run orchestrate");
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("cannot reach AWS"), "{err}");
    assert!(err.contains("aws sts get-caller-identity"), "{err}");
    assert!(err.contains("caused by: STS GetCallerIdentity failed"), "{err}");
    assert!(!err.contains("no AWS credentials found"), "{err}");
}

#[test]
fn missing_model_image_binary_says_how_to_get_one() {
    let dir = valid_deployment();
    let output = run(dir.path(), &["plan", "--model-image", "no/such/model-image"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("does not exist"), "{}", stderr(&output));
}

#[test]
fn invoke_needs_a_known_content_type() {
    let dir = valid_deployment();
    std::fs::write(dir.path().join("rows.txt"), "1,2\n").unwrap();
    let output = run(dir.path(), &["invoke", "rows.txt"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("--content-type"), "{}", stderr(&output));
}

#[test]
fn invoke_without_endpoint_says_to_run_up() {
    let dir = valid_deployment();
    std::fs::write(dir.path().join("rows.csv"), "Flow_Duration\n1\n").unwrap();
    let output = run(dir.path(), &["invoke", "rows.csv"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("orchestrate up"), "{}", stderr(&output));
}
