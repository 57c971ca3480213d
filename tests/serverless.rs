//! Serverless endpoints on both targets, with the real binaries: `endpoint.serverless` deploys an
//! endpoint config with SageMaker's `ServerlessConfig` and a model without network isolation
//! (the plan says so), which answers `invoke`; a second `up` changes nothing. Moving the endpoint
//! to instances is a replacement in the plan and in fact: the emulator refuses `UpdateEndpoint`
//! between instance and serverless configs, as SageMaker does, so the `up` that succeeds deleted
//! and created the endpoint. Locally the serverless server runs with `max_concurrency` as its
//! bound on requests in flight. `down` leaves nothing.
//!
//! `cargo test -p orchestrate-e2e --test serverless` (the binaries built first:
//! `cargo build -p orchestrate -p model-image`).

use orchestrate_e2e::Deployment;
use orchestrate_e2e::aws::{Aws, REGION};
use orchestrate_e2e::local::endpoint_record;
use orchestrate_e2e::world::World;

const LOCAL: &str = "e2e-serverless-local";
const AWS: &str = "e2e-serverless-aws";

/// The endpoint section: serverless capacity, or one instance.
enum Hosting {
    Serverless,
    Instances,
}

fn deploy_yaml(world: World<'_>, hosting: Hosting) -> String {
    let (name, target) = match world {
        World::Local => (LOCAL, "target: local\n".to_string()),
        World::Aws(_) => (AWS, format!("target: aws\nregion: {REGION}\n")),
    };
    let capacity = match hosting {
        Hosting::Serverless => "  serverless: {memory_mb: 3072, max_concurrency: 2}\n",
        Hosting::Instances => "  instance_type: ml.m5.large\n",
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
{capacity}  wait_timeout: 5m
"#
    )
}

/// What each target shows of the endpoint's hosting, checked from outside orchestrate.
async fn assert_hosting(world: World<'_>, deployment: &Deployment, serverless: bool, context: &str) {
    match world {
        World::Aws(aws) => {
            let sagemaker = aws.sagemaker();
            let endpoint = aws.endpoint(AWS).await;
            let variant = &endpoint.production_variants()[0];
            assert_eq!(
                variant.current_serverless_config().is_some(),
                serverless,
                "{context}: {endpoint:?}"
            );
            let config = sagemaker
                .describe_endpoint_config()
                .endpoint_config_name(endpoint.endpoint_config_name().unwrap())
                .send()
                .await
                .expect("DescribeEndpointConfig");
            let variant = &config.production_variants()[0];
            match variant.serverless_config() {
                Some(capacity) if serverless => {
                    assert_eq!(
                        (capacity.memory_size_in_mb(), capacity.max_concurrency()),
                        (Some(3072), Some(2)),
                        "{context}"
                    );
                    assert_eq!(variant.instance_type(), None, "{context}");
                }
                None if !serverless => {
                    assert_eq!(variant.initial_instance_count(), Some(1), "{context}");
                }
                other => panic!("{context}: serverless config {other:?}"),
            }
            let model = sagemaker
                .describe_model()
                .model_name(variant.model_name().unwrap())
                .send()
                .await
                .expect("DescribeModel");
            assert_eq!(
                model.enable_network_isolation(),
                Some(!serverless),
                "{context}: network isolation is off exactly for serverless"
            );
        }
        World::Local => {
            let record = endpoint_record(deployment, LOCAL).expect("the endpoint's record");
            assert_eq!(
                record["settings"]["hosting"],
                if serverless { "serverless" } else { "instances" },
                "{context}: {record:#}"
            );
            let pid = record["details"]["pid"].as_i64().expect("a pid");
            let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("the server's environment");
            let bound = environ
                .split(|b| *b == 0)
                .any(|var| var == b"MODEL_IMAGE_MAX_IN_FLIGHT=2");
            assert_eq!(
                bound, serverless,
                "{context}: the server's bound on requests in flight is max_concurrency exactly when serverless"
            );
        }
    }
}

async fn serverless_then_instances(world: World<'_>) {
    let label = world.label();
    let name = match world {
        World::Local => LOCAL,
        World::Aws(_) => AWS,
    };
    let deployment = Deployment::new(&deploy_yaml(world, Hosting::Serverless));
    deployment.demo_data(1500);

    let plan = world.run(&deployment, &["plan"]).expect(2);
    assert!(
        plan.stdout
            .contains("Serverless: 3072 MB, 2 requests at once; the model runs without network isolation"),
        "{label}: {}",
        plan.stdout
    );
    world.run(&deployment, &["up"]).expect(0);
    assert_hosting(world, &deployment, true, &format!("{label}: serverless up")).await;
    let invoke = world.run(&deployment, &["invoke", "train.csv"]).expect(0);
    assert!(
        invoke.stdout.contains("\"predictions\""),
        "{label}: {}",
        invoke.stdout
    );
    let again = world.run(&deployment, &["up"]).expect(0);
    assert!(
        again.stdout.contains("No changes"),
        "{label}: a second up changes nothing: {}",
        again.stdout
    );
    world.run(&deployment, &["status"]).expect(0);

    deployment.write_deploy_yaml(&deploy_yaml(world, Hosting::Instances));
    let plan = world.run(&deployment, &["plan"]).expect(2);
    let endpoint_line = plan
        .stdout
        .lines()
        .position(|l| l.contains("endpoint ") && l.trim_end().ends_with(name))
        .unwrap_or_else(|| panic!("{label}: no endpoint line: {}", plan.stdout));
    let lines: Vec<&str> = plan.stdout.lines().collect();
    assert!(
        lines[endpoint_line].trim_start().starts_with("-/+"),
        "{label}: the endpoint is replaced: {}",
        plan.stdout
    );
    assert!(
        lines[endpoint_line + 1].contains("hosting cannot change in place")
            && plan.stdout.contains("hosting: want instances, have serverless"),
        "{label}: {}",
        plan.stdout
    );
    assert!(!plan.stdout.contains("Serverless:"), "{label}: {}", plan.stdout);
    if let World::Aws(aws) = world {
        aws.moto.reset_requests().await;
    }
    world.run(&deployment, &["up"]).expect(0);
    if let World::Aws(aws) = world {
        let actions: Vec<String> = aws.moto.requests().await.into_iter().map(|r| r.action).collect();
        let named = |action: &str| actions.iter().any(|a| a == action);
        assert!(
            named("DeleteEndpoint") && named("CreateEndpoint") && !named("UpdateEndpoint"),
            "{label}: the move deletes and creates the endpoint, never updates it: {actions:?}"
        );
    }
    assert_hosting(world, &deployment, false, &format!("{label}: moved to instances")).await;
    let invoke = world.run(&deployment, &["invoke", "train.csv"]).expect(0);
    assert!(
        invoke.stdout.contains("\"predictions\""),
        "{label}: {}",
        invoke.stdout
    );
    let status = world.run(&deployment, &["status"]).expect(0);
    assert!(
        !status.stdout.contains("kept for rollback"),
        "{label}: a replaced endpoint has no config to roll back to (SageMaker cannot update across hostings): {}",
        status.stdout
    );
    let rollback = world.run(&deployment, &["rollback"]);
    assert_ne!(
        rollback.code, 0,
        "{label}: nothing to roll back to: {}",
        rollback.stdout
    );

    world.run(&deployment, &["down", "--yes"]).expect(0);
    world
        .assert_gone(&deployment, name, &format!("{label}: after down"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_serverless_endpoints_serve_and_move_to_instances_by_replacement() {
    serverless_then_instances(World::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_serverless_endpoints_serve_and_move_to_instances_by_replacement() {
    let Some(aws) = Aws::start().await else {
        return;
    };
    serverless_then_instances(World::Aws(&aws)).await;
}
