//! `model-image train`: the SageMaker training contract end to end.
//!
//! Reads hyperparameters and the `train` (and optional `validation` / `test`) channels, fits LightGBM
//! with early stopping on validation data, chooses the decision threshold on validation, evaluates
//! validation and test with bootstrap confidence intervals, and writes the model directory (with
//! the baseline statistics drift monitoring compares traffic with, [`crate::baseline`]), metrics
//! and a human report. Metrics also go to stdout as `split:name=value` lines so SageMaker
//! MetricDefinitions can capture them. Every failure is a [`TrainError`] whose text `main` writes to
//! `output/failure`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::artifact::{self, DataFacts, Metrics, ModelMetadata, Versions};
use crate::baseline::{self, Baseline};
use crate::hyperparameters::{HyperparameterError, Hyperparameters, ThresholdChoice};
use crate::layout::{Layout, TEST_CHANNEL, TRAIN_CHANNEL, VALIDATION_CHANNEL};
use crate::metrics::{self, BootstrapConfig, ThresholdRule};
use crate::report::{self, ReportInput, SplitReport};
use crate::split;
use crate::table::{self, InputLimits, LabelledTable, LimitError, ReadPlan, TableError};

/// Why training failed; the text is written to `output/failure` as one paragraph.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("cannot read hyperparameters from {path}: {source}")]
    HyperparametersUnreadable { path: PathBuf, source: std::io::Error },
    #[error("invalid hyperparameters: {0}")]
    Hyperparameters(#[from] HyperparameterError),
    #[error("invalid input limit: {0}")]
    Limits(#[from] LimitError),
    #[error("cannot read the {channel} channel: {source}")]
    Channel {
        channel: &'static str,
        source: TableError,
    },
    #[error("the {channel} channel has no labelled rows")]
    NoRows { channel: &'static str },
    #[error(
        "the {channel} channel has only one class ({counts}); training needs rows of both the positive class `{positive}` and another class. Check the `label` and `positive_class` hyperparameters"
    )]
    OneClass {
        channel: &'static str,
        counts: String,
        positive: String,
    },
    #[error(
        "the {channel} channel has no rows of the positive class `{positive}` among its labels ({counts}); set the `positive_class` hyperparameter to the label of the class to detect"
    )]
    NoPositives {
        channel: &'static str,
        counts: String,
        positive: String,
    },
    #[error("LightGBM failed: {0}")]
    LightGbm(String),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// What a successful run produced.
#[derive(Debug)]
pub struct TrainOutcome {
    pub metadata: ModelMetadata,
    /// The `split:name=value` lines printed for MetricDefinitions.
    pub metric_lines: Vec<String>,
}

/// Runs `train` on an `/opt/ml` layout. Progress goes to stderr, metric lines to stdout.
pub fn run(layout: &Layout) -> Result<TrainOutcome, TrainError> {
    let started = Instant::now();
    let hyperparameters = read_hyperparameters(layout)?;
    // Header cells and label values are read without surrounding white space (CICFlowMeter writes
    // ` Destination Port`), so the names given are matched the same way.
    let plan = ReadPlan {
        label: hyperparameters.label.trim(),
        positive_class: hyperparameters.positive_class.trim(),
        exclude: &hyperparameters.exclude,
        features: None,
        limits: InputLimits::from_env()?,
    };

    let train_dir = layout.channel_dir(TRAIN_CHANNEL);
    let mut train = read(TRAIN_CHANNEL, &train_dir, &plan)?;
    log(&format!(
        "read {} train rows, {} features from {} file(s) in {:.1}s",
        train.rows(),
        train.features.len(),
        train.files.len(),
        started.elapsed().as_secs_f64()
    ));
    for (column, reason) in &train.dropped_columns {
        log(&format!("not a feature: {column} ({reason})"));
    }
    check_classes(TRAIN_CHANNEL, &train, &hyperparameters.positive_class)?;

    let features = train.features.clone();
    let fixed_plan = ReadPlan {
        features: Some(&features),
        ..plan.clone()
    };
    let validation_dir = layout.channel_dir(VALIDATION_CHANNEL);
    let (validation, validation_source) = if validation_dir.exists() {
        let read_started = Instant::now();
        let validation = read(VALIDATION_CHANNEL, &validation_dir, &fixed_plan)?;
        log(&format!(
            "read {} validation rows in {:.1}s",
            validation.rows(),
            read_started.elapsed().as_secs_f64()
        ));
        (validation, "channel".to_string())
    } else {
        let split = split::stratified(
            &train.labels,
            hyperparameters.validation_fraction,
            hyperparameters.seed,
        );
        let validation = train.select(&split.held_out);
        train = train.select(&split.train);
        let source = format!(
            "stratified split of train (fraction {}, seed {})",
            hyperparameters.validation_fraction, hyperparameters.seed
        );
        (validation, source)
    };
    check_classes(VALIDATION_CHANNEL, &validation, &hyperparameters.positive_class)?;
    check_classes(TRAIN_CHANNEL, &train, &hyperparameters.positive_class)?;
    let test_dir = layout.channel_dir(TEST_CHANNEL);
    let test = if test_dir.exists() {
        let read_started = Instant::now();
        let test = read(TEST_CHANNEL, &test_dir, &fixed_plan)?;
        log(&format!(
            "read {} test rows in {:.1}s",
            test.rows(),
            read_started.elapsed().as_secs_f64()
        ));
        Some(test)
    } else {
        None
    };

    let fit_started = Instant::now();
    let booster = fit(&train, &validation, &hyperparameters)?;
    let rounds = booster.num_iterations().max(0) as u32;
    log(&format!(
        "fitted {rounds} rounds on {} rows in {:.1}s (validation: {validation_source})",
        train.rows(),
        fit_started.elapsed().as_secs_f64()
    ));

    let evaluation_started = Instant::now();
    let validation_scores = predict(&booster, &validation)?;
    let rule = match hyperparameters.threshold {
        ThresholdChoice::MaxF1 => ThresholdRule::MaxF1,
        ThresholdChoice::TargetFpr(fpr) => ThresholdRule::TargetFpr(fpr),
    };
    let threshold = metrics::choose_threshold(&validation.labels, &validation_scores, rule);
    let bootstrap = BootstrapConfig {
        resamples: hyperparameters.bootstrap_resamples as usize,
        seed: hyperparameters.seed,
    };
    let validation_metrics = metrics::evaluate(&validation.labels, &validation_scores, threshold, &bootstrap);
    let test_scored = match &test {
        Some(test) => {
            let scores = predict(&booster, test)?;
            let evaluation = metrics::evaluate(&test.labels, &scores, threshold, &bootstrap);
            Some((scores, evaluation))
        }
        None => None,
    };

    log(&format!(
        "scored and evaluated {} ({} bootstrap resamples) in {:.1}s",
        if test_scored.is_some() {
            "validation and test"
        } else {
            "validation"
        },
        bootstrap.resamples,
        evaluation_started.elapsed().as_secs_f64()
    ));
    let outputs_started = Instant::now();
    let importance = booster
        .feature_importance(lightgbm3::ImportanceType::Gain)
        .map_err(|e| TrainError::LightGbm(e.to_string()))?;
    let mut feature_importance: Vec<(String, f64)> = features.iter().cloned().zip(importance).collect();
    feature_importance.sort_by(|a, b| b.1.total_cmp(&a.1));

    let negative_label = train
        .negative_label(&hyperparameters.positive_class)
        .unwrap_or("negative")
        .to_string();
    let metadata = ModelMetadata {
        format_version: artifact::FORMAT_VERSION,
        features: features.clone(),
        threshold,
        threshold_rule: hyperparameters.threshold,
        label_column: hyperparameters.label.clone(),
        positive_label: hyperparameters.positive_class.clone(),
        negative_label,
        rounds,
        feature_importance,
        data: DataFacts {
            train_rows: train.rows(),
            train_positives: train.positives(),
            validation_rows: validation.rows(),
            validation_source,
            test_rows: test.as_ref().map(LabelledTable::rows),
            dropped_columns: train.dropped_columns.clone(),
            rows_without_label: train.rows_without_label,
            unparsable_cells: train.unparsable_cells,
        },
        hyperparameters: hyperparameters.clone(),
        versions: Versions::current(),
        metrics: Metrics {
            validation: validation_metrics.clone(),
            test: test_scored.as_ref().map(|(_, e)| e.clone()),
        },
    };

    let model_text = booster
        .save_string()
        .map_err(|e| TrainError::LightGbm(e.to_string()))?;
    let baseline = baseline::compute(&train.features, &train.values, &validation_scores);
    write_outputs(layout, &metadata, &model_text, &baseline)?;
    let mut splits = vec![SplitReport {
        name: "validation",
        evaluation: &validation_metrics,
        y: &validation.labels,
        score: &validation_scores,
    }];
    if let (Some(test), Some((scores, evaluation))) = (&test, &test_scored) {
        splits.push(SplitReport {
            name: "test",
            evaluation,
            y: &test.labels,
            score: scores,
        });
    }
    let facts = report_facts(&metadata);
    let html = report::render(&ReportInput {
        title: "model-image training report",
        positive_label: &metadata.positive_label,
        negative_label: &metadata.negative_label,
        splits,
        feature_importance: &metadata.feature_importance,
        facts: &facts,
    });
    write_file(&layout.output_data_dir().join("report.html"), html.as_bytes())?;
    log(&format!(
        "wrote the model, metrics and report in {:.1}s",
        outputs_started.elapsed().as_secs_f64()
    ));

    let mut metric_lines = validation_metrics.metric_lines("validation");
    if let Some((_, evaluation)) = &test_scored {
        metric_lines.extend(evaluation.metric_lines("test"));
    }
    metric_lines.push(format!("train:rounds={rounds}"));
    for line in &metric_lines {
        println!("{line}");
    }
    log(&format!("done in {:.1}s", started.elapsed().as_secs_f64()));
    Ok(TrainOutcome {
        metadata,
        metric_lines,
    })
}

fn log(message: &str) {
    eprintln!("model-image train: {message}");
}

fn read_hyperparameters(layout: &Layout) -> Result<Hyperparameters, TrainError> {
    let path = layout.hyperparameters_file();
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Hyperparameters::from_json(&text)?),
        // SageMaker always writes the file; a hand-made layout may omit it: all defaults.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Hyperparameters::default()),
        Err(source) => Err(TrainError::HyperparametersUnreadable { path, source }),
    }
}

fn read(channel: &'static str, dir: &Path, plan: &ReadPlan<'_>) -> Result<LabelledTable, TrainError> {
    let table = table::read_channel(dir, plan).map_err(|source| TrainError::Channel { channel, source })?;
    if table.rows() == 0 {
        return Err(TrainError::NoRows { channel });
    }
    Ok(table)
}

fn check_classes(channel: &'static str, table: &LabelledTable, positive: &str) -> Result<(), TrainError> {
    let positives = table.positives();
    if positives == 0 || positives == table.rows() {
        // The most frequent labels first; a label column of distinct values stays short.
        let mut labels: Vec<(&String, &usize)> = table.label_counts.iter().collect();
        labels.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let mut counts = labels
            .iter()
            .take(8)
            .map(|(label, count)| format!("{count} × `{label}`"))
            .collect::<Vec<_>>()
            .join(", ");
        if labels.len() > 8 {
            counts.push_str(&format!(", … ({} labels in all)", labels.len()));
        }
        let positive = positive.to_string();
        return Err(if positives == 0 && table.label_counts.len() > 1 {
            TrainError::NoPositives {
                channel,
                counts,
                positive,
            }
        } else {
            TrainError::OneClass {
                channel,
                counts,
                positive,
            }
        });
    }
    Ok(())
}

/// LightGBM's feature names must not contain JSON punctuation or spaces; `model.json` keeps the real
/// names, the trees get sanitised ones (only used in `model.txt` for people reading it).
fn lightgbm_feature_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_whitespace() || "\"',:[]{}".contains(c) {
                '_'
            } else {
                c
            }
        })
        .collect()
}

fn fit(
    train: &LabelledTable,
    validation: &LabelledTable,
    hp: &Hyperparameters,
) -> Result<lightgbm3::Booster, TrainError> {
    let lgbm = |e: lightgbm3::Error| TrainError::LightGbm(e.to_string());
    let width = train.features.len() as i32;
    let labels = |t: &LabelledTable| {
        t.labels
            .iter()
            .map(|&p| f32::from(u8::from(p)))
            .collect::<Vec<f32>>()
    };
    let mut train_set =
        lightgbm3::Dataset::from_slice(&train.values, &labels(train), width, true).map_err(lgbm)?;
    let names: Vec<String> = train.features.iter().map(|f| lightgbm_feature_name(f)).collect();
    train_set.set_feature_names(&names).map_err(lgbm)?;
    let validation_set = lightgbm3::Dataset::from_slice_with_reference(
        &validation.values,
        &labels(validation),
        width,
        true,
        Some(&train_set),
    )
    .map_err(lgbm)?;
    let params = serde_json::json!({
        "objective": "binary",
        "metric": "binary_logloss",
        "num_iterations": hp.max_rounds,
        "early_stopping_rounds": hp.early_stopping_rounds,
        "learning_rate": hp.learning_rate,
        "num_leaves": hp.num_leaves,
        "max_depth": hp.max_depth,
        "min_data_in_leaf": hp.min_data_in_leaf,
        "feature_fraction": hp.feature_fraction,
        "num_threads": hp.threads,
        "seed": hp.seed,
        "verbosity": -1,
    });
    let mut params = params;
    if row_wise_histograms(train.rows(), hp.threads) {
        params["force_row_wise"] = true.into();
    }
    if hp.quantized_gradients {
        params["use_quantized_grad"] = true.into();
        params["quant_train_renew_leaf"] = true.into();
    }
    lightgbm3::Booster::train_with_valid(train_set, Some(validation_set), &params).map_err(lgbm)
}

/// Whether to tell LightGBM to build histograms row-wise. Unless told, LightGBM times row-wise
/// against column-wise construction before the first round (about a second on 625,000 rows, 2
/// threads) and keeps the faster; its documentation recommends row-wise for many rows and few
/// threads (<= 16), which is what a SageMaker instance or the local target gives `train`. Small data
/// is left to LightGBM's own choice, where the trial costs nothing.
fn row_wise_histograms(rows: usize, threads: u32) -> bool {
    rows >= 100_000 && threads <= 16
}

fn predict(booster: &lightgbm3::Booster, table: &LabelledTable) -> Result<Vec<f64>, TrainError> {
    booster
        .predict(&table.values, table.features.len() as i32, true)
        .map_err(|e| TrainError::LightGbm(e.to_string()))
}

fn write_outputs(
    layout: &Layout,
    metadata: &ModelMetadata,
    model_text: &str,
    baseline: &Baseline,
) -> Result<(), TrainError> {
    let model_dir = layout.model_dir();
    let metrics_json = serde_json::to_vec_pretty(&metadata.metrics).expect("metrics serialise");
    let metadata_json = serde_json::to_vec_pretty(metadata).expect("metadata serialises");
    let baseline_json = serde_json::to_vec(baseline).expect("the baseline serialises");
    write_file(&model_dir.join(artifact::MODEL_FILE), model_text.as_bytes())?;
    write_file(&model_dir.join(artifact::METRICS_FILE), &metrics_json)?;
    write_file(&model_dir.join(baseline::BASELINE_FILE), &baseline_json)?;
    // model.json last: its presence marks a complete model directory.
    write_file(&model_dir.join(artifact::METADATA_FILE), &metadata_json)?;
    write_file(
        &layout.output_data_dir().join(artifact::METRICS_FILE),
        &metrics_json,
    )?;
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let write = || -> std::io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, bytes)
    };
    write().map_err(|source| TrainError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn report_facts(metadata: &ModelMetadata) -> Vec<(String, String)> {
    let data = &metadata.data;
    let hp = &metadata.hyperparameters;
    let mut facts = vec![
        (
            "train rows".to_string(),
            format!("{} ({} positive)", data.train_rows, data.train_positives),
        ),
        (
            "validation rows".to_string(),
            format!("{} ({})", data.validation_rows, data.validation_source),
        ),
        ("features".to_string(), metadata.features.len().to_string()),
        ("boosting rounds kept".to_string(), metadata.rounds.to_string()),
        (
            "decision threshold".to_string(),
            format!("{:.4} ({:?})", metadata.threshold, metadata.threshold_rule),
        ),
        (
            "hyperparameters".to_string(),
            format!(
                "learning_rate={} max_rounds={} early_stopping_rounds={} num_leaves={} max_depth={} min_data_in_leaf={} feature_fraction={} threads={} seed={} quantized_gradients={}",
                hp.learning_rate,
                hp.max_rounds,
                hp.early_stopping_rounds,
                hp.num_leaves,
                hp.max_depth,
                hp.min_data_in_leaf,
                hp.feature_fraction,
                hp.threads,
                hp.seed,
                hp.quantized_gradients
            ),
        ),
        (
            "versions".to_string(),
            format!(
                "model-image {}, LightGBM {}",
                metadata.versions.model_image, metadata.versions.lightgbm
            ),
        ),
    ];
    if let Some(rows) = data.test_rows {
        facts.insert(2, ("test rows".to_string(), rows.to_string()));
    }
    if !data.dropped_columns.is_empty() {
        let dropped = data
            .dropped_columns
            .iter()
            .map(|(c, r)| format!("{c} ({r})"))
            .collect::<Vec<_>>()
            .join(", ");
        facts.push(("not features".to_string(), dropped));
    }
    facts
}
