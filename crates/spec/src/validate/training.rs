//! `training`: instance, volume, runtime limit, hyperparameters (typed, numbers or numeric strings)
//! and the quality gate.

use std::time::Duration;

use super::cx::{Cx, Section};
use super::keys;
use crate::defaults;
use crate::model::{Hyperparameters, QualityGate, Training};
use crate::names::InstanceType;

/// SageMaker's longest training job: 28 days.
pub(crate) const MAX_RUNTIME_LIMIT: Duration = Duration::from_secs(28 * 86_400);

/// The most training threads `threads` may ask for. The container refuses more: this must equal
/// `model_image::hyperparameters::MAX_THREADS` (model-image/src/hyperparameters.rs). The spec cannot
/// depend on model-image (it links LightGBM), so the two are kept equal by
/// `the_hyperparameter_bounds_are_the_containers` in this crate's tests, which reads that file.
pub(crate) const MAX_THREADS: u32 = 4_096;

/// The most bootstrap resamples `bootstrap_resamples` may ask for. The container refuses more:
/// this must equal `model_image::hyperparameters::MAX_BOOTSTRAP_RESAMPLES`
/// (model-image/src/hyperparameters.rs), kept equal by the same test as [`MAX_THREADS`].
pub(crate) const MAX_BOOTSTRAP_RESAMPLES: u32 = 10_000;

pub(super) fn training(cx: &mut Cx<'_>, top: &Section<'_>) -> Option<Training> {
    let section = cx.optional_section(top, "training", keys::TRAINING)?;
    let instance_type = instance_type(
        cx,
        &section,
        "training.instance_type",
        defaults::TRAINING_INSTANCE_TYPE,
    );
    let instance_count = match section.get("instance_count") {
        None => Some(defaults::TRAINING_INSTANCE_COUNT),
        Some(e) => cx
            .integer(e.value, "training.instance_count", 1, u32::MAX.into(), false)
            .map(|v| v as u32),
    };
    let volume_size_gb = match section.get("volume_size_gb") {
        None => Some(defaults::VOLUME_SIZE_GB),
        Some(e) => cx
            .integer(e.value, "training.volume_size_gb", 1, 16_384, false)
            .map(|v| v as u32),
    };
    let max_runtime = match section.get("max_runtime") {
        None => Some(defaults::MAX_RUNTIME_DURATION),
        Some(e) => cx.duration(
            e.value,
            "training.max_runtime",
            Duration::from_secs(1),
            MAX_RUNTIME_LIMIT,
        ),
    };
    let hyperparameters = match section.get("hyperparameters") {
        None => Some(Hyperparameters::default()),
        Some(e) => {
            let hp = cx.section(
                e.value,
                "training.hyperparameters",
                keys::HYPERPARAMETERS,
                e.key.pos,
            );
            hyperparameters(cx, &hp)
        }
    };
    let quality_gate = match section.get("quality_gate") {
        None => Some(None),
        Some(e) => {
            let gate = cx.section(e.value, "training.quality_gate", keys::QUALITY_GATE, e.key.pos);
            quality_gate(cx, &gate).map(Some)
        }
    };
    Some(Training {
        instance_type: instance_type?,
        instance_count: instance_count?,
        volume_size_gb: volume_size_gb?,
        max_runtime: max_runtime?,
        hyperparameters: hyperparameters?,
        quality_gate: quality_gate?,
    })
}

/// `instance_type` of `training` or `endpoint`.
pub(super) fn instance_type(
    cx: &mut Cx<'_>,
    section: &Section<'_>,
    key: &str,
    default: &str,
) -> Option<InstanceType> {
    let Some(e) = section.get("instance_type") else {
        return Some(InstanceType::new(default).expect("the default instance types are valid"));
    };
    let text = cx.string(e.value, key)?;
    match InstanceType::new(text) {
        Ok(t) => Some(t),
        Err(err) => {
            cx.invalid(
                e.value.pos,
                key,
                format!("`{key}`: {err}"),
                err.hint.clone().unwrap_or_default(),
            );
            None
        }
    }
}

fn hyperparameters(cx: &mut Cx<'_>, section: &Option<Section<'_>>) -> Option<Hyperparameters> {
    let section = section.as_ref()?;
    let before = cx.diags.len();
    let int = |cx: &mut Cx<'_>, key: &str, min: i64, max: i64| {
        let e = section.get(key)?;
        cx.integer(e.value, &section.path_of(key), min, max, true)
    };
    let learning_rate = number(cx, section, "learning_rate", (0.0, false), (1.0, true));
    let max_rounds = int(cx, "max_rounds", 1, u32::MAX.into()).map(|v| v as u32);
    let early_stopping_rounds = int(cx, "early_stopping_rounds", 1, u32::MAX.into()).map(|v| v as u32);
    let num_leaves = int(cx, "num_leaves", 2, 131_072).map(|v| v as u32);
    let max_depth = int(cx, "max_depth", -1, i32::MAX.into()).map(|v| v as i32);
    if max_depth == Some(0) {
        let e = section.get("max_depth").expect("read above");
        let key = section.path_of("max_depth");
        let message = format!("`{key}` must be -1 (no limit) or at least 1, found `0`");
        cx.invalid(e.value.pos, &key, message, "use -1 for no depth limit");
    }
    let min_data_in_leaf = int(cx, "min_data_in_leaf", 0, u32::MAX.into()).map(|v| v as u32);
    let feature_fraction = number(cx, section, "feature_fraction", (0.0, false), (1.0, true));
    let threads = int(cx, "threads", 1, MAX_THREADS.into()).map(|v| v as u32);
    let validation_fraction = number(cx, section, "validation_fraction", (0.0, false), (0.5, true));
    let target_fpr = number(cx, section, "target_fpr", (0.0, false), (1.0, false));
    let seed = int(cx, "seed", 0, i32::MAX.into()).map(|v| v as u32);
    let bootstrap_resamples =
        int(cx, "bootstrap_resamples", 0, MAX_BOOTSTRAP_RESAMPLES.into()).map(|v| v as u32);
    let quantized_gradients = section
        .get("quantized_gradients")
        .and_then(|e| cx.boolean(e.value, &section.path_of("quantized_gradients")));
    (cx.diags.len() == before).then_some(Hyperparameters {
        learning_rate,
        max_rounds,
        early_stopping_rounds,
        num_leaves,
        max_depth,
        min_data_in_leaf,
        feature_fraction,
        threads,
        validation_fraction,
        target_fpr,
        seed,
        bootstrap_resamples,
        quantized_gradients,
    })
}

fn number(
    cx: &mut Cx<'_>,
    section: &Section<'_>,
    key: &str,
    lo: (f64, bool),
    hi: (f64, bool),
) -> Option<f64> {
    let e = section.get(key)?;
    cx.number(e.value, &section.path_of(key), lo, hi, true)
}

fn quality_gate(cx: &mut Cx<'_>, section: &Option<Section<'_>>) -> Option<QualityGate> {
    let section = section.as_ref()?;
    let before = cx.diags.len();
    let mut metric = |key: &str| {
        let e = section.get(key)?;
        cx.number(e.value, &section.path_of(key), (0.0, true), (1.0, true), false)
    };
    let gate = QualityGate {
        min_pr_auc: metric("min_pr_auc"),
        min_roc_auc: metric("min_roc_auc"),
        min_mcc: metric("min_mcc"),
        min_f1: metric("min_f1"),
    };
    (cx.diags.len() == before).then_some(gate)
}
