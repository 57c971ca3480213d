//! The whole lifecycle on the AWS target with the real binaries, as a user runs them, against moto
//! with the testbed's SageMaker emulation (training jobs really run `model-image train`, endpoints
//! really run `model-image serve`) and a Docker registry standing in for ECR's. Every setting is
//! checked through the AWS APIs, not through orchestrate's own code.

use std::time::{Duration, Instant};

use orchestrate_e2e::aws::{Aws, REGION};
use orchestrate_e2e::{Deployment, Run};
use serde_json::Value;
use testbed::{Fault, mutating};

const NAME: &str = "e2e-aws";

fn deploy_yaml(learning_rate: &str, max_rounds: u32, min_pr_auc: f64) -> String {
    format!(
        r#"version: 1
name: {NAME}
target: aws
region: {REGION}
tags: {{team: ml}}
data:
  train: train.csv
  validation: 0.2
training:
  instance_type: ml.m5.xlarge
  max_runtime: 10m
  hyperparameters:
    learning_rate: {learning_rate}
    max_rounds: {max_rounds}
    early_stopping_rounds: 10
    threads: 2
  quality_gate:
    min_pr_auc: {min_pr_auc}
endpoint:
  instance_type: ml.m5.large
  wait_timeout: 5m
  autoscaling: {{min: 1, max: 2, invocations_per_instance: 500}}
"#
    )
}

/// `status --output json`: each resource's standing.
fn standings(run: &Run) -> Vec<(String, String, String)> {
    run.json()["status"]["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap_or_default().to_string(),
                r["name"].as_str().unwrap_or_default().to_string(),
                r["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn standing_of(run: &Run, kind: &str) -> Vec<String> {
    standings(run)
        .into_iter()
        .filter(|(k, _, _)| k == kind)
        .map(|(_, _, s)| s)
        .collect()
}

/// An `up` that must fail with exit 1, its error saying each of `why`, and leave the endpoint
/// serving `config`.
async fn up_fails(aws: &Aws, deployment: &Deployment, why: &[&str], config: &str) {
    let run = aws.orchestrate(deployment, &["up"]).expect(1);
    for text in why {
        assert!(run.stderr.contains(text), "want `{text}` in:\n{}", run.stderr);
    }
    assert_eq!(aws.endpoint(NAME).await.endpoint_config_name(), Some(config));
}

/// Starts `up`, waits until the training job it starts runs `model-image train`, then stops
/// `up` with Ctrl-C (SIGINT), as a user would; checks it exits 130. Returns the job's name.
async fn interrupt_up_while_training(aws: &Aws, deployment: &Deployment) -> String {
    let before: Vec<String> = aws
        .moto
        .training_jobs()
        .await
        .into_iter()
        .map(|j| j.name)
        .collect();
    let up = aws.spawn(deployment, &["up"]);
    let running = wait_for_training(aws, &before).await;
    let signalled = std::process::Command::new("kill")
        .args(["-INT", &up.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(signalled.success());
    let interrupted = Run::from(up.wait_with_output().expect("wait for up"));
    assert_eq!(interrupted.code, 130, "{}", interrupted.stderr);
    running
}

/// Waits until a training job not in `before` runs its `model-image train`; its name.
async fn wait_for_training(aws: &Aws, before: &[String]) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(job) = aws
            .moto
            .training_jobs()
            .await
            .into_iter()
            .find(|j| j.running && !before.contains(&j.name))
        {
            return job.name;
        }
        assert!(Instant::now() < deadline, "no new training job started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The header and first rows of the training data: a request in the raw schema.
fn request_file(deployment: &Deployment, rows: usize) -> std::path::PathBuf {
    let text = std::fs::read_to_string(deployment.path().join("train.csv")).unwrap();
    let lines: Vec<&str> = text.lines().take(rows + 1).collect();
    let path = deployment.path().join("request.csv");
    std::fs::write(&path, format!("{}\n", lines.join("\n"))).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_lifecycle_on_the_sagemaker_emulator() {
    let Some(aws) = Aws::start().await else {
        return;
    };
    let deployment = Deployment::new(&deploy_yaml("0.1", 30, 0.9));
    deployment.demo_data(1500);
    let sm = aws.sagemaker();

    // --- plan, then up from nothing.
    let plan = aws.orchestrate(&deployment, &["plan"]).expect(2);
    assert!(plan.stdout.contains("+   training job"), "{}", plan.stdout);
    let run = aws
        .orchestrate(&deployment, &["--output", "json", "up"])
        .expect(0);
    // The training log, tailed from CloudWatch Logs while waiting, its metric lines (forty per split)
    // folded into one line: the metrics follow, from metrics.json.
    assert!(
        run.stderr.contains("model-image train: done in"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("metric lines (the metrics follow below"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("validation:pr_auc="), "{}", run.stderr);
    let up = run.json();
    let job = up["training_job"].as_str().expect("the training job").to_string();
    assert!(
        job.starts_with(&format!("{NAME}-")) && job.ends_with("-1"),
        "{job}"
    );
    assert!(
        up["validation_metrics"]["pr_auc"].as_f64().unwrap() >= 0.9,
        "{up}"
    );

    // Every setting, through SageMaker's API.
    let described = sm
        .describe_training_job()
        .training_job_name(&job)
        .send()
        .await
        .unwrap();
    let image = described
        .algorithm_specification()
        .unwrap()
        .training_image()
        .unwrap()
        .to_string();
    assert!(
        image.contains(".dkr.ecr.") && image.contains("@sha256:"),
        "by digest: {image}"
    );
    assert_eq!(described.enable_network_isolation(), Some(true));
    let channels: Vec<&str> = described
        .input_data_config()
        .iter()
        .filter_map(|c| c.channel_name())
        .collect();
    assert_eq!(channels, ["train"]);
    let hyperparameters = described.hyper_parameters().unwrap();
    assert_eq!(hyperparameters["max_rounds"], "30");
    assert_eq!(hyperparameters["learning_rate"], "0.1");
    let metrics: Vec<&str> = described
        .algorithm_specification()
        .unwrap()
        .metric_definitions()
        .iter()
        .filter_map(|m| m.name())
        .collect();
    assert!(metrics.contains(&"validation:pr_auc"), "{metrics:?}");
    assert_eq!(
        described.stopping_condition().unwrap().max_runtime_in_seconds(),
        Some(600)
    );
    assert!(
        described
            .role_arn()
            .unwrap()
            .ends_with(":role/e2e-aws-sagemaker-execution"),
        "{:?}",
        described.role_arn()
    );
    let endpoint = aws.endpoint(NAME).await;
    let first_config = endpoint.endpoint_config_name().unwrap().to_string();
    let config = sm
        .describe_endpoint_config()
        .endpoint_config_name(&first_config)
        .send()
        .await
        .unwrap();
    let variant = &config.production_variants()[0];
    assert_eq!(variant.instance_type().unwrap().as_str(), "ml.m5.large");
    let model = sm
        .describe_model()
        .model_name(variant.model_name().unwrap())
        .send()
        .await
        .unwrap();
    let container = model.primary_container().unwrap();
    assert_eq!(container.image(), Some(image.as_str()));
    assert!(
        container
            .model_data_url()
            .unwrap()
            .contains(&format!("/{job}/output/model.tar.gz")),
        "{:?}",
        container.model_data_url()
    );
    let scaling = aws_sdk_applicationautoscaling::Client::new(&aws.config)
        .describe_scalable_targets()
        .service_namespace(aws_sdk_applicationautoscaling::types::ServiceNamespace::Sagemaker)
        .send()
        .await
        .unwrap();
    let target = &scaling.scalable_targets()[0];
    assert_eq!(
        target.resource_id(),
        format!("endpoint/{NAME}/variant/AllTraffic")
    );
    assert_eq!((target.min_capacity(), target.max_capacity()), (1, 2));

    // The endpoint answers through sagemaker-runtime, as locally.
    let request = request_file(&deployment, 3);
    let invoked = aws
        .orchestrate(&deployment, &["invoke", request.to_str().unwrap()])
        .expect(0);
    let predictions: Value = serde_json::from_str(&invoked.stdout).expect("JSON predictions");
    assert_eq!(
        predictions["predictions"].as_array().unwrap().len(),
        3,
        "{predictions}"
    );
    let bad = deployment.path().join("bad.csv");
    std::fs::write(&bad, "Flow_Duration,Label\nnot-a-number,Normal\n").unwrap();
    let refused = aws
        .orchestrate(&deployment, &["invoke", bad.to_str().unwrap()])
        .expect(1);
    assert!(refused.stderr.contains("HTTP 400"), "{}", refused.stderr);
    aws.orchestrate(&deployment, &["invoke", request.to_str().unwrap()])
        .expect(0);

    // --- in sync; a second up changes nothing and makes no mutating call.
    aws.orchestrate(&deployment, &["status"]).expect(0);
    let jobs_before = aws.moto.training_jobs().await.len();
    aws.moto.reset_requests().await;
    let again = aws.orchestrate(&deployment, &["up"]).expect(0);
    assert!(again.stdout.contains("No changes"), "{}", again.stdout);
    let requests = aws.moto.requests().await;
    assert!(mutating(&requests).is_empty(), "{:#?}", mutating(&requests));
    assert_eq!(
        aws.moto.training_jobs().await.len(),
        jobs_before,
        "nothing retrained"
    );

    // --- damage out of band, reported and repaired.
    // A tag removed from the model.
    sm.delete_tags()
        .resource_arn(model.model_arn().unwrap())
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    let status = aws
        .orchestrate(&deployment, &["--output", "json", "status"])
        .expect(2);
    assert_eq!(standing_of(&status, "model"), ["drifted"], "{}", status.stdout);
    // The endpoint switched to another config by hand.
    sm.create_endpoint_config()
        .endpoint_config_name("hand-made")
        .production_variants(variant.clone())
        .send()
        .await
        .unwrap();
    sm.update_endpoint()
        .endpoint_name(NAME)
        .endpoint_config_name("hand-made")
        .send()
        .await
        .unwrap();
    aws.endpoint_in_service(NAME).await;
    let status = aws
        .orchestrate(&deployment, &["--output", "json", "status"])
        .expect(2);
    assert_eq!(standing_of(&status, "endpoint"), ["drifted"], "{}", status.stdout);
    aws.orchestrate(&deployment, &["up"]).expect(0);
    assert_eq!(
        aws.endpoint(NAME).await.endpoint_config_name(),
        Some(first_config.as_str())
    );
    aws.orchestrate(&deployment, &["status"]).expect(0);
    // The endpoint deleted.
    sm.delete_endpoint().endpoint_name(NAME).send().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while sm.describe_endpoint().endpoint_name(NAME).send().await.is_ok() {
        assert!(Instant::now() < deadline, "the endpoint is not deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = aws
        .orchestrate(&deployment, &["--output", "json", "status"])
        .expect(2);
    assert_eq!(standing_of(&status, "endpoint"), ["missing"], "{}", status.stdout);
    aws.orchestrate(&deployment, &["up"]).expect(0);
    aws.orchestrate(&deployment, &["status"]).expect(0);

    // --- a hyperparameter change rolls forward; a concurrent run meanwhile is refused by the lock.
    deployment.write_deploy_yaml(&deploy_yaml("0.2", 30, 0.9));
    let plan = aws.orchestrate(&deployment, &["plan"]).expect(2);
    assert!(plan.stdout.contains("+   training job"), "{}", plan.stdout);
    assert!(plan.stdout.contains("~   endpoint"), "{}", plan.stdout);
    let first = aws.spawn(&deployment, &["up"]);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&aws.config)
            .force_path_style(true)
            .build(),
    );
    let sts = aws_sdk_sts::Client::new(&aws.config);
    let account = sts
        .get_caller_identity()
        .send()
        .await
        .unwrap()
        .account()
        .unwrap()
        .to_string();
    let bucket = format!("{NAME}-{account}-{REGION}");
    let deadline = Instant::now() + Duration::from_secs(120);
    while s3
        .head_object()
        .bucket(&bucket)
        .key(aws::lock::LOCK_KEY)
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the first run never took the lock");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = aws.orchestrate(&deployment, &["up"]).expect(1);
    assert!(
        second.stderr.contains("locked by another run"),
        "{}",
        second.stderr
    );
    Run::from(first.wait_with_output().unwrap()).expect(0);
    let second_config = aws
        .endpoint(NAME)
        .await
        .endpoint_config_name()
        .unwrap()
        .to_string();
    assert_ne!(second_config, first_config, "rolled forward");
    let status = aws
        .orchestrate(&deployment, &["--output", "json", "status"])
        .expect(0);
    assert!(
        standings(&status)
            .iter()
            .any(|(kind, name, standing)| kind == "endpoint_config"
                && *name == first_config
                && standing == "kept_for_rollback"),
        "{}",
        status.stdout
    );

    // --- rollback, and back.
    aws.orchestrate(&deployment, &["rollback"]).expect(0);
    assert_eq!(
        aws.endpoint(NAME).await.endpoint_config_name(),
        Some(first_config.as_str())
    );
    aws.orchestrate(&deployment, &["rollback"]).expect(0);
    assert_eq!(
        aws.endpoint(NAME).await.endpoint_config_name(),
        Some(second_config.as_str())
    );
    // The previous config is a tag anyone who may tag the endpoint can set: rollback switches only
    // to a config the deployment owns.
    let sagemaker = aws.sagemaker();
    let foreign = format!("{NAME}-not-ours");
    let first_model = sagemaker
        .describe_endpoint_config()
        .endpoint_config_name(&first_config)
        .send()
        .await
        .expect("the first config")
        .production_variants()[0]
        .model_name()
        .expect("its model")
        .to_string();
    sagemaker
        .create_endpoint_config()
        .endpoint_config_name(&foreign)
        .production_variants(
            aws_sdk_sagemaker::types::ProductionVariant::builder()
                .variant_name("AllTraffic")
                .model_name(&first_model)
                .initial_instance_count(1)
                .instance_type(aws_sdk_sagemaker::types::ProductionVariantInstanceType::MlM5Large)
                .build(),
        )
        .send()
        .await
        .expect("an untagged config");
    let endpoint_arn = aws
        .endpoint(NAME)
        .await
        .endpoint_arn()
        .expect("an ARN")
        .to_string();
    let tampered = aws_sdk_sagemaker::types::Tag::builder()
        .key(aws::sagemaker::PREVIOUS_CONFIG_TAG)
        .value(&foreign)
        .build();
    sagemaker
        .add_tags()
        .resource_arn(&endpoint_arn)
        .tags(tampered)
        .send()
        .await
        .expect("tag the endpoint");
    let refused = aws.orchestrate(&deployment, &["rollback"]).expect(1);
    assert!(
        refused.stderr.contains("belongs to the deployment"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        aws.endpoint(NAME).await.endpoint_config_name(),
        Some(second_config.as_str())
    );
    let restored = aws_sdk_sagemaker::types::Tag::builder()
        .key(aws::sagemaker::PREVIOUS_CONFIG_TAG)
        .value(&first_config)
        .build();
    sagemaker
        .add_tags()
        .resource_arn(&endpoint_arn)
        .tags(restored)
        .send()
        .await
        .expect("tag the endpoint");
    sagemaker
        .delete_endpoint_config()
        .endpoint_config_name(&foreign)
        .send()
        .await
        .expect("delete the untagged config");

    // --- the quality gate blocks a worse model and leaves the endpoint alone.
    deployment.write_deploy_yaml(&deploy_yaml("0.2", 2, 0.99999));
    up_fails(&aws, &deployment, &["quality gate", "pr_auc"], &second_config).await;

    // --- a failed training job is reported with SageMaker's reason; nothing else changes.
    deployment.write_deploy_yaml(&deploy_yaml("0.3", 30, 0.9));
    aws.moto
        .inject_fault(Fault::training_fails(NAME).with_reason("out of memory (injected)"))
        .await;
    up_fails(&aws, &deployment, &["out of memory (injected)"], &second_config).await;
    let status = aws
        .orchestrate(&deployment, &["--output", "json", "status"])
        .expect(2);
    assert_eq!(
        standing_of(&status, "training_job"),
        ["failed"],
        "{}",
        status.stdout
    );

    // --- an update SageMaker rolls back is a failure, not a success. (This up also makes the
    // training job's second attempt.)
    aws.moto
        .inject_fault(Fault::endpoint_update_rolls_back(NAME))
        .await;
    up_fails(&aws, &deployment, &["rolled back"], &second_config).await;
    // Without the fault, the next up finishes the rollout, on the job's second attempt.
    let done = aws
        .orchestrate(&deployment, &["--output", "json", "up"])
        .expect(0);
    let attempt = done.json()["training_job"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(attempt.ends_with("-2"), "{attempt}");
    aws.endpoint_in_service(NAME).await;
    assert_ne!(
        aws.endpoint(NAME).await.endpoint_config_name(),
        Some(second_config.as_str())
    );
    aws.orchestrate(&deployment, &["status"]).expect(0);

    // --- an up interrupted (Ctrl-C) while its training job runs: the next up re-attaches to the
    // job instead of starting another attempt.
    deployment.write_deploy_yaml(&deploy_yaml("0.25", 30, 0.9));
    let running = interrupt_up_while_training(&aws, &deployment).await;
    let resumed = aws
        .orchestrate(&deployment, &["--output", "json", "up"])
        .expect(0);
    assert_eq!(
        resumed.json()["training_job"],
        running.as_str(),
        "re-attached, no new attempt"
    );
    aws.orchestrate(&deployment, &["status"]).expect(0);

    // --- down stops a training job that is still running.
    // A slow learner with a long way to go: still training when `down` comes.
    deployment.write_deploy_yaml(&deploy_yaml("0.0005", 200000, 0.9));
    let running = interrupt_up_while_training(&aws, &deployment).await;

    // --- down: refused while another run's lock stands (written just now, an hour's lease), then
    // everything tagged is gone.
    s3.put_object()
        .bucket(&bucket)
        .key(aws::lock::LOCK_KEY)
        .body(
            br#"{"owner": "someone@elsewhere pid 1", "token": 7, "lease_seconds": 3600, "renewal": 0}"#
                .to_vec()
                .into(),
        )
        .send()
        .await
        .unwrap();
    let locked = aws.orchestrate(&deployment, &["down", "--yes"]).expect(1);
    assert!(locked.stderr.contains("someone@elsewhere"), "{}", locked.stderr);
    aws.orchestrate(&deployment, &["down", "--yes", "--break-lock"])
        .expect(0);
    assert!(sm.describe_endpoint().endpoint_name(NAME).send().await.is_err());
    let models = sm.list_models().name_contains(NAME).send().await.unwrap();
    assert!(models.models().is_empty(), "{:?}", models.models());
    let configs = sm
        .list_endpoint_configs()
        .name_contains(NAME)
        .send()
        .await
        .unwrap();
    assert!(
        configs.endpoint_configs().is_empty(),
        "{:?}",
        configs.endpoint_configs()
    );
    assert!(
        s3.head_bucket().bucket(&bucket).send().await.is_err(),
        "bucket gone"
    );
    let iam = aws_sdk_iam::Client::new(&aws.config);
    assert!(
        iam.get_role()
            .role_name(format!("{NAME}-sagemaker-execution"))
            .send()
            .await
            .is_err()
    );
    let stopped = sm
        .describe_training_job()
        .training_job_name(&running)
        .send()
        .await
        .unwrap();
    assert!(
        matches!(
            stopped.training_job_status(),
            Some(
                aws_sdk_sagemaker::types::TrainingJobStatus::Stopping
                    | aws_sdk_sagemaker::types::TrainingJobStatus::Stopped
            )
        ),
        "{:?}",
        stopped.training_job_status()
    );
    let status = aws
        .orchestrate(&deployment, &["--output", "json", "status"])
        .expect(2);
    // SageMaker keeps training jobs forever (they cannot be deleted): the stopped one is still
    // there; everything else is gone.
    for (kind, name, standing) in standings(&status) {
        if kind == "training_job" {
            assert!(
                ["in_progress", "failed"].contains(&standing.as_str()),
                "{name}: {standing}"
            );
        } else {
            assert_eq!(standing, "missing", "{kind} {name}");
        }
    }
}

/// Regression for the settings' old string encodings on AWS (hyperparameters were joined with
/// spaces and split again, exclusions with commas): column names with spaces (a leading one),
/// commas, `=`, `;` and quotes, as label, positive class and exclusions, reach the training job
/// and the container exactly; nothing excluded becomes a feature; afterwards `plan` is empty and a
/// second `up` retrains nothing and makes no mutating call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awkward_column_names_reach_the_training_job_exactly() {
    // The longest deployment name deploy.yaml accepts: every name derived from it (bucket, role,
    // repository, job attempts, model, config, endpoint, scaling target, tags) goes through the
    // testbed's check against AWS's service models in the requests below.
    const AWKWARD: &str = "e2e-awkward-longest-name-32-char";
    assert_eq!(
        AWKWARD.len(),
        32,
        "spec::MAX_NAME_LEN, the longest deployment name"
    );
    let Some(aws) = Aws::start().await else {
        return;
    };
    let names = orchestrate_e2e::AwkwardNames::new();
    let deployment = Deployment::new(&format!(
        "version: 1\nname: {AWKWARD}\ntarget: aws\nregion: {REGION}\n{}training:\n  max_runtime: 10m\n  \
         hyperparameters: {{max_rounds: 20, early_stopping_rounds: 5, threads: 2}}\nendpoint:\n  wait_timeout: 5m\n",
        names.data_section("awkward.csv")
    ));
    deployment.demo_data(1500);
    names.rewrite(
        &deployment.path().join("train.csv"),
        &deployment.path().join("awkward.csv"),
    );

    // A role with the deployment's role name that is not the deployment's: `up` takes nothing over
    // (it changes nothing, not even the bucket) until the user adopts it.
    let role = format!("{AWKWARD}-sagemaker-execution");
    let iam = aws_sdk_iam::Client::new(&aws.config);
    iam.create_role()
        .role_name(&role)
        .assume_role_policy_document(aws::iam_role::trust_policy("123456789012").to_string())
        .send()
        .await
        .expect("someone else's role");
    let refused = aws.orchestrate(&deployment, &["up"]).expect(1);
    let adopt = format!("--adopt role/{role}");
    assert!(refused.stderr.contains(&adopt), "{}", refused.stderr);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&aws.config)
            .force_path_style(true)
            .build(),
    );
    let buckets = s3.list_buckets().send().await.expect("list buckets");
    assert!(buckets.buckets().is_empty(), "nothing was created: {buckets:?}");
    let adopted = format!("role/{role}");
    let up = aws
        .orchestrate(&deployment, &["--output", "json", "up", "--adopt", &adopted])
        .expect(0)
        .json();
    let tags = iam.list_role_tags().role_name(&role).send().await.expect("tags");
    assert!(
        tags.tags()
            .iter()
            .any(|t| t.key() == "orchestrate:deployment" && t.value() == AWKWARD),
        "adopted: tagged as the deployment's"
    );
    let attempt = up["training_job"].as_str().expect("the training job").to_string();
    // What SageMaker was asked to pass the container...
    let job = aws
        .sagemaker()
        .describe_training_job()
        .training_job_name(&attempt)
        .send()
        .await
        .expect("describe the training job");
    let hyperparameters = job.hyper_parameters().expect("hyperparameters");
    assert_eq!(hyperparameters["label"], names.label);
    assert_eq!(hyperparameters["positive_class"], names.positive);
    let exclude: Vec<String> = serde_json::from_str(&hyperparameters["exclude"]).expect("a JSON list");
    assert_eq!(exclude, names.exclude);
    // ...and what the container made of it, from the model artifact it uploaded.
    let artifact = job
        .model_artifacts()
        .and_then(|a| a.s3_model_artifacts())
        .expect("a model artifact");
    let (bucket, key) = artifact
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .expect("an s3:// URL");
    let bytes = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("download model.tar.gz")
        .body
        .collect()
        .await
        .expect("model.tar.gz")
        .into_bytes();
    let model_json = aws::sagemaker_training_job::file_in_tar_gz(&bytes, "model.json").expect("model.json");
    names.assert_model_used_them(&serde_json::from_str(&model_json).expect("model.json is JSON"));

    aws.orchestrate(&deployment, &["plan"]).expect(0);
    aws.moto.reset_requests().await;
    let again = aws.orchestrate(&deployment, &["up"]).expect(0);
    assert!(again.stdout.contains("No changes"), "{}", again.stdout);
    let requests = aws.moto.requests().await;
    assert!(mutating(&requests).is_empty(), "{:#?}", mutating(&requests));
    aws.orchestrate(&deployment, &["down", "--yes"]).expect(0);
}
