//! Benchmark: a no-op `orchestrate status` and `orchestrate up` on a converged AWS deployment (moto
//! with the testbed's SageMaker emulation on loopback), side by side with the reference a user would
//! otherwise run: a boto3 script that describes each resource one after the other
//! (`benches/python/status_check.py`). Printed, not asserted: wall time per run (median of
//! `BENCH_RUNS`, 5), API calls per run by service and action, and mutating calls (want 0), then the
//! ratio orchestrate / boto3. Target: about one read per setting, in parallel, under a second.
//!
//! `cargo bench -p orchestrate-e2e --bench aws_noop` (needs the workspace's release binaries:
//! `cargo build --release --workspace` first). Knobs: `BENCH_RUNS`, `PYTHON`. The boto3 time is the
//! whole script process, as a user runs it (interpreter and imports included).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use orchestrate_e2e::aws::{Aws, REGION};
use orchestrate_e2e::{Deployment, Run};
use testbed::{Request, mutating};

const NAME: &str = "bench-aws";

fn deploy_yaml() -> String {
    format!(
        "version: 1\nname: {NAME}\ntarget: aws\nregion: {REGION}\ndata: {{train: train.csv, validation: 0.2}}\n\
         training:\n  max_runtime: 10m\n  hyperparameters: {{max_rounds: 30, threads: 2}}\n\
         endpoint:\n  autoscaling: {{min: 1, max: 2, invocations_per_instance: 500}}\n"
    )
}

struct Measured {
    seconds: Vec<f64>,
    calls: Vec<Request>,
}

impl Measured {
    fn median(&self) -> f64 {
        let mut sorted = self.seconds.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    }
}

/// Runs `run` `runs` times, timing each and collecting the AWS calls of the last one.
async fn measure(aws: &Aws, runs: usize, mut run: impl FnMut() -> Run) -> Measured {
    let mut seconds = Vec::new();
    let mut calls = Vec::new();
    for _ in 0..runs {
        aws.moto.reset_requests().await;
        let started = Instant::now();
        let result = run();
        seconds.push(started.elapsed().as_secs_f64());
        assert_eq!(result.code, 0, "{}\n{}", result.stdout, result.stderr);
        calls = aws.moto.requests().await;
    }
    Measured { seconds, calls }
}

fn by_action(calls: &[Request]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for call in calls {
        *counts.entry(call.to_string()).or_insert(0) += 1;
    }
    counts
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let Some(aws) = Aws::start().await else {
        eprintln!(
            "aws_noop: moto, docker-registry or model-image missing; run .ci/setup and build the workspace"
        );
        return;
    };
    let deployment = Deployment::new(&deploy_yaml());
    deployment.demo_data(1500);
    eprintln!("aws_noop: converging the deployment (up) ...");
    let first = aws.orchestrate(&deployment, &["up"]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    let account = {
        let sts = aws_sdk_sts::Client::new(&aws.config);
        sts.get_caller_identity()
            .send()
            .await
            .expect("account")
            .account()
            .unwrap_or_default()
            .to_string()
    };

    let status = measure(&aws, runs, || aws.orchestrate(&deployment, &["status"])).await;
    let up = measure(&aws, runs, || aws.orchestrate(&deployment, &["up"])).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/python/status_check.py");
    let reference = measure(&aws, runs, || {
        let output = Command::new(&python)
            .args([script, NAME, REGION, &account])
            .envs(aws.env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .expect("run the boto3 reference");
        let run = Run::from(output);
        assert_eq!(
            run.stdout.trim(),
            "0",
            "the reference found differences: {}",
            run.stderr
        );
        run
    })
    .await;

    println!(
        "\nNo-op on a converged deployment (moto + SageMaker emulation on loopback), {runs} runs each\n"
    );
    println!(
        "{:<34} {:>12} {:>10} {:>10}",
        "", "median wall", "API calls", "mutating"
    );
    for (label, measured) in [
        ("orchestrate status", &status),
        ("orchestrate up (no changes)", &up),
        ("boto3 describe script (reference)", &reference),
    ] {
        println!(
            "{label:<34} {:>10.3} s {:>10} {:>10}",
            measured.median(),
            measured.calls.len(),
            mutating(&measured.calls).len()
        );
    }
    println!(
        "\nratio orchestrate status / boto3 script: {:.2}x wall time, {:.2}x API calls",
        status.median() / reference.median(),
        status.calls.len() as f64 / reference.calls.len().max(1) as f64
    );
    println!("\nAPI calls of one `orchestrate status`:");
    for (action, count) in by_action(&status.calls) {
        println!("  {count:>3}  {action}");
    }
    println!("\nAPI calls of the boto3 script:");
    for (action, count) in by_action(&reference.calls) {
        println!("  {count:>3}  {action}");
    }
}
