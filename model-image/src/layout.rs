//! The SageMaker container filesystem contract: where `train` finds its hyperparameters and data
//! channels and where it writes the model, its outputs and a failure reason; and the processing-job
//! paths `monitor` falls back to when Model Monitor's variables are not set.
//!
//! The root is `/opt/ml` in a container. The environment variable `OPT_ML` moves it, so tests and the
//! orchestrator's local target run the very same code in a temporary directory.

use std::path::{Path, PathBuf};

/// Environment variable that overrides the `/opt/ml` root.
pub const OPT_ML_ENV: &str = "OPT_ML";
const DEFAULT_ROOT: &str = "/opt/ml";

/// The data channels `train` understands.
pub const TRAIN_CHANNEL: &str = "train";
pub const VALIDATION_CHANNEL: &str = "validation";
pub const TEST_CHANNEL: &str = "test";

/// Paths of one `/opt/ml` tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `$OPT_ML` when set and non-empty, else `/opt/ml`.
    pub fn from_env() -> Self {
        match std::env::var_os(OPT_ML_ENV) {
            Some(root) if !root.is_empty() => Self::new(root),
            _ => Self::new(DEFAULT_ROOT),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `input/config/hyperparameters.json`: a JSON object whose values are all strings.
    pub fn hyperparameters_file(&self) -> PathBuf {
        self.root.join("input/config/hyperparameters.json")
    }

    /// `input/data/<channel>/`.
    pub fn channel_dir(&self, channel: &str) -> PathBuf {
        self.root.join("input/data").join(channel)
    }

    /// `model/`: everything `serve` needs; SageMaker tars it into `model.tar.gz`.
    pub fn model_dir(&self) -> PathBuf {
        self.root.join("model")
    }

    /// `output/data/`: extra outputs SageMaker uploads as `output.tar.gz`.
    pub fn output_data_dir(&self) -> PathBuf {
        self.root.join("output/data")
    }

    /// `output/failure`: the reason a training job failed, shown by `DescribeTrainingJob`.
    pub fn failure_file(&self) -> PathBuf {
        self.root.join("output/failure")
    }

    /// `processing/input/`: a processing job's input, when Model Monitor's `dataset_source` is unset.
    pub fn processing_input_dir(&self) -> PathBuf {
        self.root.join("processing/input")
    }

    /// `processing/baseline/`, when Model Monitor's `baseline_statistics` is unset: the folder a
    /// processing input puts the baseline in, `baseline.json` or the `model.tar.gz` holding it (a
    /// processing job can hand over the model artifact as it is).
    pub fn processing_baseline_dir(&self) -> PathBuf {
        self.root.join("processing/baseline")
    }

    /// `processing/resultdata/`: where a processing job's reports go, when Model Monitor's
    /// `output_path` is unset (Model Monitor's own default).
    pub fn processing_output_dir(&self) -> PathBuf {
        self.root.join("processing/resultdata")
    }

    /// `output/message`: a processing job's exit message; its first KB is `DescribeProcessingJob`'s
    /// `ExitMessage`, the reason shown when the job failed.
    pub fn processing_message_file(&self) -> PathBuf {
        self.root.join("output/message")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_sagemaker_layout() {
        let layout = Layout::new("/opt/ml");
        assert_eq!(
            layout.hyperparameters_file(),
            Path::new("/opt/ml/input/config/hyperparameters.json")
        );
        assert_eq!(layout.channel_dir("train"), Path::new("/opt/ml/input/data/train"));
        assert_eq!(layout.model_dir(), Path::new("/opt/ml/model"));
        assert_eq!(layout.output_data_dir(), Path::new("/opt/ml/output/data"));
        assert_eq!(layout.failure_file(), Path::new("/opt/ml/output/failure"));
        assert_eq!(
            layout.processing_input_dir(),
            Path::new("/opt/ml/processing/input")
        );
        assert_eq!(
            layout.processing_baseline_dir(),
            Path::new("/opt/ml/processing/baseline")
        );
        assert_eq!(
            layout.processing_output_dir(),
            Path::new("/opt/ml/processing/resultdata")
        );
        assert_eq!(
            layout.processing_message_file(),
            Path::new("/opt/ml/output/message")
        );
    }
}
