//! Watched endpoints on both targets, with the real binaries and real IoTID20 rows
//! (`../shared/data`, never copied into the project): a model trained on the shared sample is
//! deployed with `endpoint.data_capture` at 100%; the traffic the endpoint answers is captured in
//! SageMaker's format (locally by `model-image serve` into the bucket folder, on the emulator by
//! InvokeEndpoint into S3), and `orchestrate monitor` runs `model-image monitor` on it (locally the
//! image's binary, on the emulator a real processing job with the image's contract). Before any
//! traffic there is no verdict (exit 0); after the sample's own rows there is no drift (exit 0,
//! `status` 0); after three times as many rows with three flow features scaled tenfold the monitor
//! flags exactly those features (exit 2) and `status` reports the endpoint's drift (exit 2).
//! `down` leaves nothing.
//!
//! `cargo test -p orchestrate-e2e --test monitoring` (the binaries built first:
//! `cargo build -p orchestrate -p model-image`).

use std::path::{Path, PathBuf};

use orchestrate_e2e::Deployment;
use orchestrate_e2e::aws::{Aws, REGION};
use orchestrate_e2e::world::World;

const LOCAL: &str = "e2e-watch-local";
const AWS: &str = "e2e-watch-aws";
/// The features the shifted copy scales, and by how much.
const SHIFTED: [&str; 3] = ["Flow_Duration", "Tot_Fwd_Pkts", "Flow_Byts/s"];
const SCALE: f64 = 10.0;
/// Rows per request.
const BATCH: usize = 500;

/// The real IoTID20 sample beside the repository, or `$IOTID20_SAMPLE`; `None` (skipped, loudly)
/// outside CI when it is missing.
fn real_sample() -> Option<PathBuf> {
    let path = std::env::var_os("IOTID20_SAMPLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/iotid20/iotid20_sample.csv")
        });
    if path.is_file() {
        Some(path)
    } else if std::env::var_os("CI").is_some() {
        panic!("real IoTID20 sample missing at {}", path.display());
    } else {
        eprintln!("SKIPPED: real IoTID20 sample not found at {}", path.display());
        None
    }
}

fn name(world: World<'_>) -> &'static str {
    match world {
        World::Local => LOCAL,
        World::Aws(_) => AWS,
    }
}

fn deploy_yaml(world: World<'_>, sample: &Path) -> String {
    let target = match world {
        World::Local => "target: local\n".to_string(),
        World::Aws(_) => format!("target: aws\nregion: {REGION}\n"),
    };
    format!(
        r#"version: 1
name: {name}
{target}data:
  train: {train}
training:
  max_runtime: 10m
  hyperparameters: {{max_rounds: 30, early_stopping_rounds: 5, threads: 2, bootstrap_resamples: 0}}
endpoint:
  instance_type: ml.m5.large
  wait_timeout: 5m
  data_capture: {{sample_percent: 100}}
monitoring:
  drift_threshold: 0.2
"#,
        name = name(world),
        train = serde_json::to_string(&sample.display().to_string()).unwrap()
    )
}

/// Writes the sample's rows as request files of [`BATCH`] rows each (header included), `copies`
/// times over, with the [`SHIFTED`] features scaled when `shift`; returns the files.
fn request_files(sample: &Path, dir: &Path, stem: &str, shift: bool, copies: usize) -> Vec<PathBuf> {
    let mut reader = csv::Reader::from_path(sample).expect("the sample");
    let header = reader.headers().expect("a header").clone();
    let scaled: Vec<usize> = SHIFTED
        .iter()
        .map(|f| header.iter().position(|h| h == *f).expect("a shifted feature"))
        .collect();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("a row")).collect();
    let mut files = Vec::new();
    for copy in 0..copies {
        for (i, chunk) in rows.chunks(BATCH).enumerate() {
            let path = dir.join(format!("{stem}-{copy}-{i}.csv"));
            let mut writer = csv::Writer::from_path(&path).expect("a request file");
            writer.write_record(&header).unwrap();
            for row in chunk {
                let fields: Vec<String> = row
                    .iter()
                    .enumerate()
                    .map(|(at, value)| match value.parse::<f64>() {
                        Ok(v) if shift && scaled.contains(&at) && v.is_finite() => format!("{}", v * SCALE),
                        _ => value.to_string(),
                    })
                    .collect();
                writer.write_record(&fields).unwrap();
            }
            writer.flush().unwrap();
            files.push(path);
        }
    }
    files
}

async fn watched(world: World<'_>) {
    let Some(sample) = real_sample() else {
        return;
    };
    let label = world.label();
    let deployment = Deployment::new(&deploy_yaml(world, &sample));
    world.run(&deployment, &["up"]).expect(0);

    let quiet = world.run(&deployment, &["monitor"]).expect(0);
    assert!(
        quiet.stdout.contains("no verdict: 0 rows"),
        "{label}: {}",
        quiet.stdout
    );

    let plain = request_files(&sample, deployment.path(), "plain", false, 1);
    for file in &plain {
        world
            .run(&deployment, &["invoke", file.to_str().unwrap()])
            .expect(0);
    }
    let calm = world.run(&deployment, &["monitor"]).expect(0);
    assert!(
        calm.stdout.contains("no drift") && calm.stdout.contains("7000 rows"),
        "{label}: the sample's own rows do not drift: {}",
        calm.stdout
    );
    let status = world.run(&deployment, &["status"]).expect(0);
    assert!(!status.stdout.contains("drifted"), "{label}: {}", status.stdout);

    let shifted = request_files(&sample, deployment.path(), "shifted", true, 3);
    for file in &shifted {
        world
            .run(&deployment, &["invoke", file.to_str().unwrap()])
            .expect(0);
    }
    let drift = world.run(&deployment, &["monitor"]).expect(2);
    assert!(drift.stdout.contains("drift: "), "{label}: {}", drift.stdout);
    let flagged: Vec<&str> = drift
        .stdout
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("column"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for feature in SHIFTED {
        assert!(
            flagged.contains(&feature),
            "{label}: {feature} is flagged: {}",
            drift.stdout
        );
    }
    assert!(
        flagged.iter().all(|f| SHIFTED.contains(f) || *f == "score"),
        "{label}: only the shifted features and the score are flagged: {}",
        drift.stdout
    );
    let json = world
        .run(&deployment, &["--output", "json", "monitor"])
        .expect(2)
        .json();
    assert_eq!(json["drift"], true, "{label}: {json}");
    assert_eq!(json["run"]["report"]["verdict"], "drift", "{label}: {json}");

    let status = world.run(&deployment, &["status"]).expect(2);
    assert!(
        status.stdout.contains(&format!(
            "endpoint {} drifted from its training data",
            name(world)
        )) && status.stdout.contains("Flow_Duration"),
        "{label}: {}",
        status.stdout
    );

    world.run(&deployment, &["down", "--yes"]).expect(0);
    world
        .assert_gone(&deployment, name(world), &format!("{label}: after down"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_monitor_passes_the_sample_and_flags_a_shifted_copy() {
    watched(World::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_monitor_passes_the_sample_and_flags_a_shifted_copy() {
    let Some(aws) = Aws::start().await else {
        return;
    };
    watched(World::Aws(&aws)).await;
}
