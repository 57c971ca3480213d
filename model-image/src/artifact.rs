//! The model directory `train` writes and `serve` loads (`/opt/ml/model`, tarred by SageMaker into
//! `model.tar.gz`): LightGBM's own text model (`model.txt`, readable by Python LightGBM) and
//! `model.json` with everything else `serve` needs — the feature list in order, the decision threshold,
//! the label names — plus the metrics and the versions it was trained with.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::hyperparameters::{Hyperparameters, ThresholdChoice};
use crate::serve::{Scorer, ServedModel};

pub const MODEL_FILE: &str = "model.txt";
pub const METADATA_FILE: &str = "model.json";
/// `metrics.json`, written here and read by orchestrate's quality gate (the shared contract).
pub use contract::metrics_file::FILE_NAME as METRICS_FILE;
/// Version of `model.json`'s layout; `serve` refuses layouts it does not know.
pub const FORMAT_VERSION: u32 = 1;
/// The LightGBM release compiled into this binary (bundled by `lightgbm3-sys`).
pub const LIGHTGBM_VERSION: &str = "4.7.0";

/// `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    pub format_version: u32,
    /// Feature columns in the order the trees expect them.
    pub features: Vec<String>,
    /// A row is labelled positive when its score is at least this.
    pub threshold: f64,
    pub threshold_rule: ThresholdChoice,
    pub label_column: String,
    pub positive_label: String,
    pub negative_label: String,
    /// Boosting rounds kept after early stopping.
    pub rounds: u32,
    pub feature_importance: Vec<(String, f64)>,
    pub data: DataFacts,
    pub hyperparameters: Hyperparameters,
    pub versions: Versions,
    pub metrics: Metrics,
}

/// What the model was trained and evaluated on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataFacts {
    pub train_rows: usize,
    pub train_positives: usize,
    pub validation_rows: usize,
    /// `channel` or `split of train (fraction 0.2, seed 42)`.
    pub validation_source: String,
    pub test_rows: Option<usize>,
    pub dropped_columns: Vec<(String, String)>,
    pub rows_without_label: usize,
    pub unparsable_cells: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Versions {
    pub model_image: String,
    pub lightgbm: String,
}

impl Versions {
    pub fn current() -> Self {
        Self {
            model_image: env!("CARGO_PKG_VERSION").to_string(),
            lightgbm: LIGHTGBM_VERSION.to_string(),
        }
    }
}

/// `metrics.json`: held-out metrics per split, as orchestrate reads them.
pub use contract::metrics_file::MetricsFile as Metrics;

/// Why a model directory cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a model.json this version understands: {reason}")]
    Metadata { path: PathBuf, reason: String },
    #[error("LightGBM cannot load {path}: {reason}")]
    Model { path: PathBuf, reason: String },
    #[error("{path} expects {trees} features but model.json lists {listed}")]
    FeatureMismatch {
        path: PathBuf,
        trees: i32,
        listed: usize,
    },
}

/// A model directory read from disk.
#[derive(Debug, Clone)]
pub struct ModelArtifact {
    pub metadata: ModelMetadata,
    pub model_text: String,
}

impl ModelArtifact {
    /// Reads and checks a model directory: both files present, the layout version known, and the
    /// trees' feature count equal to the listed features.
    pub fn load(dir: &Path) -> Result<Self, ArtifactError> {
        let metadata_path = dir.join(METADATA_FILE);
        let text = read(&metadata_path)?;
        let metadata: ModelMetadata = serde_json::from_str(&text).map_err(|e| ArtifactError::Metadata {
            path: metadata_path.clone(),
            reason: e.to_string(),
        })?;
        if metadata.format_version != FORMAT_VERSION {
            return Err(ArtifactError::Metadata {
                path: metadata_path,
                reason: format!(
                    "format_version {} (this model-image reads {FORMAT_VERSION})",
                    metadata.format_version
                ),
            });
        }
        let model_path = dir.join(MODEL_FILE);
        let model_text = read(&model_path)?;
        let booster = lightgbm3::Booster::from_string(&model_text).map_err(|e| ArtifactError::Model {
            path: model_path.clone(),
            reason: e.to_string(),
        })?;
        if booster.num_features() as usize != metadata.features.len() {
            return Err(ArtifactError::FeatureMismatch {
                path: model_path,
                trees: booster.num_features(),
                listed: metadata.features.len(),
            });
        }
        Ok(Self { metadata, model_text })
    }

    /// The model ready for `serve`: one LightGBM booster per serving thread, created on first use.
    pub fn into_served(self) -> ServedModel {
        let scorer = LightGbmScorer::new(self.model_text, self.metadata.features.len());
        ServedModel {
            features: self.metadata.features,
            threshold: self.metadata.threshold,
            positive_label: self.metadata.positive_label,
            negative_label: self.metadata.negative_label,
            scorer: Box::new(scorer),
        }
    }
}

fn read(path: &Path) -> Result<String, ArtifactError> {
    std::fs::read_to_string(path).map_err(|source| ArtifactError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Scores rows with LightGBM.
///
/// LightGBM's single-row fast path serialises callers on one booster, so each thread that scores
/// gets its own booster (parsed once from the model text) and never waits for another.
pub struct LightGbmScorer {
    model_text: Arc<str>,
    n_features: usize,
    id: u64,
}

static NEXT_SCORER_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's booster and the id of the scorer it belongs to.
    static THREAD_BOOSTER: RefCell<Option<(u64, lightgbm3::Booster)>> = const { RefCell::new(None) };
}

impl LightGbmScorer {
    pub fn new(model_text: impl Into<Arc<str>>, n_features: usize) -> Self {
        Self {
            model_text: model_text.into(),
            n_features,
            id: NEXT_SCORER_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    fn with_booster<T>(&self, f: impl FnOnce(&lightgbm3::Booster) -> Result<T, String>) -> Result<T, String> {
        THREAD_BOOSTER.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.as_ref().is_none_or(|(id, _)| *id != self.id) {
                let mut booster =
                    lightgbm3::Booster::from_string(&self.model_text).map_err(|e| e.to_string())?;
                booster
                    .single_row_fast_init::<f64>(Some(&serde_json::json!({ "num_threads": 1 })))
                    .map_err(|e| e.to_string())?;
                *slot = Some((self.id, booster));
            }
            let (_, booster) = slot.as_ref().expect("booster was just set");
            f(booster)
        })
    }
}

impl Scorer for LightGbmScorer {
    fn score(&self, rows: &[f64], n_rows: usize) -> Result<Vec<f64>, String> {
        if rows.len() != n_rows * self.n_features {
            return Err(format!(
                "expected {n_rows} rows of {} features, got {} values",
                self.n_features,
                rows.len()
            ));
        }
        if n_rows == 0 {
            return Ok(Vec::new());
        }
        self.with_booster(|booster| {
            if n_rows == 1 {
                booster.predict_single_row_fast(rows).map_err(|e| e.to_string())
            } else {
                booster
                    .predict_with_params(rows, self.n_features as i32, true, "num_threads=1")
                    .map_err(|e| e.to_string())
            }
        })
    }
}
