//! Asynchronous endpoints on both targets, with the real binaries: `endpoint.async` deploys an
//! endpoint config with SageMaker's `AsyncInferenceConfig` (answers and failures under the bucket's
//! `async/` prefixes) and a model whose container takes async payloads; `invoke --async FILE`
//! uploads the file under `async/input/`, queues it, waits, and prints the answer, which is also
//! left under `async/output/`; a request the model refuses ends under `async/failures/` with the
//! model's reason, and `invoke --async` exits 1 with it. On the emulator the queue is
//! InvokeEndpointAsync's (a worker posting the S3 object to the real `model-image serve`); locally
//! `invoke --async` plays it, on the local bucket folder, with a payload over the 6 MB real-time
//! limit. A second `up` changes nothing; moving the endpoint to real-time is a replacement, after
//! which `invoke --async` is refused and `invoke` answers. `down` leaves nothing.
//!
//! `cargo test -p orchestrate-e2e --test async_endpoints` (the binaries built first:
//! `cargo build -p orchestrate -p model-image`).

use std::io::Write;
use std::path::PathBuf;

use orchestrate_e2e::Deployment;
use orchestrate_e2e::aws::{Aws, REGION};
use orchestrate_e2e::local::{endpoint_record, state_root};
use orchestrate_e2e::world::World;

const LOCAL: &str = "e2e-async-local";
const AWS: &str = "e2e-async-aws";

fn name(world: World<'_>) -> &'static str {
    match world {
        World::Local => LOCAL,
        World::Aws(_) => AWS,
    }
}

fn deploy_yaml(world: World<'_>, asynchronous: bool) -> String {
    let target = match world {
        World::Local => "target: local\n".to_string(),
        World::Aws(_) => format!("target: aws\nregion: {REGION}\n"),
    };
    let invocation = if asynchronous {
        "  async: {max_concurrent_invocations: 2}\n"
    } else {
        ""
    };
    format!(
        r#"version: 1
name: {name}
{target}data:
  train: train.csv
training:
  max_runtime: 10m
  hyperparameters: {{max_rounds: 20, early_stopping_rounds: 5, threads: 2}}
endpoint:
  instance_type: ml.m5.large
{invocation}  wait_timeout: 5m
"#,
        name = name(world)
    )
}

/// The feature rows of the demo data (its header and `rows` data lines, the label column kept:
/// the server ignores columns the model does not use).
fn rows_of(deployment: &Deployment, rows: usize) -> String {
    let text = std::fs::read_to_string(deployment.path().join("train.csv")).expect("the demo data");
    text.lines().take(rows + 1).map(|l| format!("{l}\n")).collect()
}

/// A CSV of `repeat` copies of the demo rows under one header, written line by line.
fn big_csv(deployment: &Deployment, path: &PathBuf, repeat: usize) -> usize {
    let text = std::fs::read_to_string(deployment.path().join("train.csv")).expect("the demo data");
    let mut lines = text.lines();
    let header = lines.next().expect("a header");
    let body: Vec<&str> = lines.collect();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("the big payload"));
    writeln!(out, "{header}").unwrap();
    for _ in 0..repeat {
        for line in &body {
            writeln!(out, "{line}").unwrap();
        }
    }
    out.flush().unwrap();
    body.len() * repeat
}

/// What each target shows of the async setup, checked from outside orchestrate.
async fn assert_async(world: World<'_>, deployment: &Deployment, asynchronous: bool, context: &str) {
    match world {
        World::Aws(aws) => {
            let sagemaker = aws.sagemaker();
            let endpoint = aws.endpoint(AWS).await;
            let config = sagemaker
                .describe_endpoint_config()
                .endpoint_config_name(endpoint.endpoint_config_name().unwrap())
                .send()
                .await
                .expect("DescribeEndpointConfig");
            let bucket = aws.bucket_of(AWS).await;
            match config.async_inference_config() {
                Some(inference) if asynchronous => {
                    let output = inference.output_config().expect("an output config");
                    assert_eq!(
                        output.s3_output_path(),
                        Some(format!("s3://{bucket}/async/output/").as_str()),
                        "{context}"
                    );
                    assert_eq!(
                        output.s3_failure_path(),
                        Some(format!("s3://{bucket}/async/failures/").as_str()),
                        "{context}"
                    );
                    assert_eq!(
                        inference
                            .client_config()
                            .and_then(|c| c.max_concurrent_invocations_per_instance()),
                        Some(2),
                        "{context}"
                    );
                }
                None if !asynchronous => {}
                other => panic!("{context}: async inference config {other:?}"),
            }
            let model = sagemaker
                .describe_model()
                .model_name(config.production_variants()[0].model_name().unwrap())
                .send()
                .await
                .expect("DescribeModel");
            let payload_limit = model
                .primary_container()
                .and_then(|c| c.environment())
                .and_then(|env| env.get("MODEL_IMAGE_MAX_PAYLOAD_MB").cloned());
            assert_eq!(
                payload_limit.as_deref(),
                asynchronous.then_some("1024"),
                "{context}: only an async model takes 1 GB payloads"
            );
        }
        World::Local => {
            let record = endpoint_record(deployment, LOCAL).expect("the endpoint's record");
            assert_eq!(
                record["settings"]["hosting"],
                if asynchronous { "async" } else { "instances" },
                "{context}: {record:#}"
            );
            let pid = record["details"]["pid"].as_i64().expect("a pid");
            let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("the server's environment");
            let has = |wanted: &[u8]| environ.split(|b| *b == 0).any(|var| var == wanted);
            assert_eq!(
                has(b"MODEL_IMAGE_MAX_PAYLOAD_MB=1024") && has(b"MODEL_IMAGE_MAX_IN_FLIGHT=2"),
                asynchronous,
                "{context}: the server takes async payloads, two at once, exactly when async"
            );
        }
    }
}

/// The keys under the bucket's `prefix` (on AWS) or the files under the local bucket folder's.
async fn objects(world: World<'_>, deployment: &Deployment, prefix: &str) -> Vec<String> {
    match world {
        World::Aws(aws) => {
            let bucket = aws.bucket_of(AWS).await;
            let listed = aws
                .s3()
                .list_objects_v2()
                .bucket(&bucket)
                .prefix(prefix)
                .send()
                .await
                .expect("ListObjectsV2");
            listed
                .contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string))
                .collect()
        }
        World::Local => {
            let folder = state_root(deployment, LOCAL)
                .join("buckets")
                .join(format!("{LOCAL}-local"))
                .join(prefix);
            let Ok(entries) = std::fs::read_dir(&folder) else {
                return Vec::new();
            };
            entries
                .filter_map(|e| e.ok())
                .map(|e| format!("{prefix}{}", e.file_name().to_string_lossy()))
                .collect()
        }
    }
}

async fn async_then_real_time(world: World<'_>) {
    let label = world.label();
    let deployment = Deployment::new(&deploy_yaml(world, true));
    deployment.demo_data(1500);

    let plan = world.run(&deployment, &["plan"]).expect(2);
    assert!(
        plan.stdout.contains("Async: 2 requests at once per instance")
            && plan.stdout.contains("async/output/"),
        "{label}: {}",
        plan.stdout
    );
    world.run(&deployment, &["up"]).expect(0);
    assert_async(world, &deployment, true, &format!("{label}: async up")).await;

    // One answered request: printed, and left under async/output/ as SageMaker leaves it.
    std::fs::write(deployment.path().join("rows.csv"), rows_of(&deployment, 20)).unwrap();
    let invoke = world
        .run(&deployment, &["invoke", "--async", "rows.csv", "--wait", "2m"])
        .expect(0);
    let answer: serde_json::Value = serde_json::from_str(&invoke.stdout)
        .unwrap_or_else(|e| panic!("{label}: the answer is JSON ({e}): {}", invoke.stdout));
    assert_eq!(
        answer["predictions"].as_array().map(Vec::len),
        Some(20),
        "{label}: {answer}"
    );
    let inputs = objects(world, &deployment, "async/input/").await;
    let outputs = objects(world, &deployment, "async/output/").await;
    assert_eq!(
        (inputs.len(), outputs.len()),
        (1, 1),
        "{label}: {inputs:?} {outputs:?}"
    );
    assert!(outputs[0].ends_with(".out"), "{label}: {outputs:?}");

    // The JSON document names the locations and the outcome.
    let json = world
        .run(
            &deployment,
            &["--output", "json", "invoke", "--async", "rows.csv"],
        )
        .expect(0)
        .json();
    assert_eq!(json["outcome"], "answered", "{label}: {json}");
    assert!(
        json["output_location"]
            .as_str()
            .is_some_and(|l| l.contains("async/output/")),
        "{label}: {json}"
    );
    assert_eq!(json["response"]["predictions"].as_array().map(Vec::len), Some(20));

    // A request the model refuses fails, with the model's reason under async/failures/.
    let mut bad = rows_of(&deployment, 3);
    let header_columns = bad.lines().next().unwrap().split(',').count();
    bad.push_str(&vec!["not-a-number"; header_columns].join(","));
    bad.push('\n');
    std::fs::write(deployment.path().join("bad.csv"), bad).unwrap();
    let refused = world.run(&deployment, &["invoke", "--async", "bad.csv", "--wait", "2m"]);
    assert_eq!(refused.code, 1, "{label}: {}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("async/failures/") && refused.stderr.contains("row 4"),
        "{label}: the failure names its location and the model's reason: {}",
        refused.stderr
    );
    assert_eq!(
        objects(world, &deployment, "async/failures/").await.len(),
        1,
        "{label}"
    );

    // Locally, a payload over the real-time 6 MB limit is answered, to a file.
    if let World::Local = world {
        let big = deployment.path().join("big.csv");
        let rows = big_csv(&deployment, &big, 30);
        let size = std::fs::metadata(&big).unwrap().len();
        assert!(size > 6 * 1024 * 1024, "{label}: the payload is {size} bytes");
        let out = deployment.path().join("big-answer.json");
        let invoke = world
            .run(
                &deployment,
                &[
                    "invoke",
                    "--async",
                    "big.csv",
                    "--answer-file",
                    out.to_str().unwrap(),
                ],
            )
            .expect(0);
        assert!(invoke.stdout.contains("answered:"), "{label}: {}", invoke.stdout);
        let answer: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&out).unwrap()).expect("the answer is JSON");
        assert_eq!(
            answer["predictions"].as_array().map(Vec::len),
            Some(rows),
            "{label}: every row of the big payload is answered"
        );
    }

    let again = world.run(&deployment, &["up"]).expect(0);
    assert!(
        again.stdout.contains("No changes"),
        "{label}: a second up changes nothing: {}",
        again.stdout
    );
    world.run(&deployment, &["status"]).expect(0);

    // Back to real-time: a replacement.
    deployment.write_deploy_yaml(&deploy_yaml(world, false));
    let plan = world.run(&deployment, &["plan"]).expect(2);
    assert!(
        plan.stdout
            .contains("hosting: want instances, have async on instances"),
        "{label}: {}",
        plan.stdout
    );
    let endpoint_line = plan
        .stdout
        .lines()
        .find(|l| l.contains("endpoint ") && l.trim_end().ends_with(name(world)))
        .unwrap_or_else(|| panic!("{label}: no endpoint line: {}", plan.stdout));
    assert!(
        endpoint_line.trim_start().starts_with("-/+"),
        "{label}: the endpoint is replaced: {}",
        plan.stdout
    );
    world.run(&deployment, &["up"]).expect(0);
    assert_async(world, &deployment, false, &format!("{label}: real-time")).await;
    let refused = world.run(&deployment, &["invoke", "--async", "rows.csv", "--wait", "30s"]);
    assert_eq!(refused.code, 1, "{label}: {}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("not asynchronous")
            || refused.stderr.contains("not an asynchronous endpoint"),
        "{label}: {}",
        refused.stderr
    );
    let invoke = world.run(&deployment, &["invoke", "rows.csv"]).expect(0);
    assert!(
        invoke.stdout.contains("\"predictions\""),
        "{label}: {}",
        invoke.stdout
    );

    world.run(&deployment, &["down", "--yes"]).expect(0);
    world
        .assert_gone(&deployment, name(world), &format!("{label}: after down"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_async_endpoints_answer_through_the_bucket_folder_and_move_to_real_time() {
    async_then_real_time(World::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_async_endpoints_answer_through_s3_and_move_to_real_time() {
    let Some(aws) = Aws::start().await else {
        return;
    };
    async_then_real_time(World::Aws(&aws)).await;
}
