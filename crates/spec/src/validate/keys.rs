//! The keys each deploy.yaml mapping allows. The JSON Schema (from the wire types) must list exactly
//! these; a test checks it.

pub(crate) const TOP: &[&str] = &[
    "version",
    "name",
    "target",
    "region",
    "tags",
    "data",
    "bucket",
    "training",
    "endpoint",
    "monitoring",
    "local",
];
pub(crate) const DATA: &[&str] = &["train", "validation", "test", "label", "positive", "exclude"];
pub(crate) const BUCKET: &[&str] = &["retain_on_down"];
pub(crate) const TRAINING: &[&str] = &[
    "instance_type",
    "instance_count",
    "volume_size_gb",
    "max_runtime",
    "hyperparameters",
    "quality_gate",
];
pub(crate) const HYPERPARAMETERS: &[&str] = &[
    "learning_rate",
    "max_rounds",
    "early_stopping_rounds",
    "num_leaves",
    "max_depth",
    "min_data_in_leaf",
    "feature_fraction",
    "threads",
    "validation_fraction",
    "target_fpr",
    "seed",
    "bootstrap_resamples",
    "quantized_gradients",
];
pub(crate) const QUALITY_GATE: &[&str] = &["min_pr_auc", "min_roc_auc", "min_mcc", "min_f1"];
pub(crate) const ENDPOINT: &[&str] = &[
    "instance_type",
    "instance_count",
    "serverless",
    "async",
    "data_capture",
    "autoscaling",
    "wait_timeout",
    "rollout",
];
pub(crate) const SERVERLESS: &[&str] = &["memory_mb", "max_concurrency"];
pub(crate) const ASYNC: &[&str] = &["max_concurrent_invocations"];
pub(crate) const DATA_CAPTURE: &[&str] = &["sample_percent"];
pub(crate) const MONITORING: &[&str] = &["schedule", "drift_threshold"];
pub(crate) const AUTOSCALING: &[&str] = &["min", "max", "invocations_per_instance"];
pub(crate) const ROLLOUT: &[&str] = &["strategy", "canary_percent", "step_percent", "bake", "alarms"];
/// `endpoint.rollout.alarms` in its map form (rules of the owned alarms).
pub(crate) const ALARMS: &[&str] = &["errors", "latency"];
pub(crate) const ALARM_ERRORS: &[&str] = &["threshold", "datapoints", "periods"];
pub(crate) const ALARM_LATENCY: &[&str] = &["threshold_ms", "datapoints", "periods"];
pub(crate) const LOCAL: &[&str] = &["state_dir", "port", "alarm_period"];

/// Every mapping with fixed keys, by dotted path.
pub(crate) const SECTIONS: &[(&str, &[&str])] = &[
    ("", TOP),
    ("data", DATA),
    ("bucket", BUCKET),
    ("training", TRAINING),
    ("training.hyperparameters", HYPERPARAMETERS),
    ("training.quality_gate", QUALITY_GATE),
    ("endpoint", ENDPOINT),
    ("endpoint.serverless", SERVERLESS),
    ("endpoint.async", ASYNC),
    ("endpoint.data_capture", DATA_CAPTURE),
    ("endpoint.autoscaling", AUTOSCALING),
    ("endpoint.rollout", ROLLOUT),
    ("endpoint.rollout.alarms", ALARMS),
    ("endpoint.rollout.alarms.errors", ALARM_ERRORS),
    ("endpoint.rollout.alarms.latency", ALARM_LATENCY),
    ("monitoring", MONITORING),
    ("local", LOCAL),
];

/// Our name for a hyperparameter that LightGBM, XGBoost or scikit-learn call something else.
pub(crate) fn hyperparameter_alias(name: &str) -> Option<&'static str> {
    Some(match name {
        "num_iterations" | "num_iteration" | "n_iter" | "num_tree" | "num_trees" | "num_round"
        | "num_rounds" | "num_boost_round" | "n_estimators" | "nrounds" | "max_iter" | "rounds" => {
            "max_rounds"
        }
        "eta" | "shrinkage_rate" | "lr" => "learning_rate",
        "early_stopping_round" | "early_stopping" | "n_iter_no_change" => "early_stopping_rounds",
        "num_leaf" | "max_leaves" | "max_leaf" | "max_leaf_nodes" => "num_leaves",
        "min_data_per_leaf" | "min_data" | "min_child_samples" | "min_samples_leaf" => "min_data_in_leaf",
        "sub_feature" | "colsample_bytree" | "max_features" => "feature_fraction",
        "num_threads" | "num_thread" | "nthread" | "nthreads" | "n_jobs" => "threads",
        "random_state" | "random_seed" => "seed",
        "use_quantized_grad" | "quantized_training" | "quantized" => "quantized_gradients",
        _ => return None,
    })
}

/// Our name for an alarm-rule key that CloudWatch (or habit) calls something else.
pub(crate) fn alarm_alias(name: &str) -> Option<&'static str> {
    Some(match name {
        "evaluation_periods" | "evaluationperiods" | "period" | "minutes" | "window" => "periods",
        "datapoints_to_alarm" | "datapointstoalarm" | "data_points" | "breaches" => "datapoints",
        "threshold_us" | "threshold_ms" | "latency_ms" | "p99" | "p99_ms" | "ms" => "threshold_ms",
        "threshold" | "count" | "errors" | "max_errors" | "errors_per_minute" => "threshold",
        _ => return None,
    })
}
