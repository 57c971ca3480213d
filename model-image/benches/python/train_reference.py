#!/usr/bin/env python3
"""The Python training pipeline a SageMaker user would write, as the reference for model-image's
training benchmark (benches/training.rs).

pandas `read_csv`, drop the leaky IoTID20 columns, LightGBM `train` (or XGBoost `hist`) with a fixed
number of rounds, predict the test file with every round, scikit-learn `average_precision_score`
(PR-AUC). Prints one JSON object on the last stdout line: phase timings, rounds, test PR-AUC.

    train_reference.py --framework lightgbm --train T.csv --validation V.csv --test X.csv --rounds 200
    train_reference.py --framework xgboost --train sample.csv --rounds 120 --save-model DIR
    train_reference.py --score-model model.txt --test X.csv   # PR-AUC of an existing LightGBM model
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import pandas as pd

LABEL = "Label"
POSITIVE = "Anomaly"
# Identifiers and label-derived columns (model-image's defaults): never features.
LEAKY = ["Flow_ID", "Src_IP", "Dst_IP", "Timestamp", "Cat", "Sub_Cat"]


def load(path, features=None):
    frame = pd.read_csv(path)
    y = (frame[LABEL] == POSITIVE).to_numpy()
    frame = frame.drop(columns=[c for c in LEAKY + [LABEL] if c in frame.columns])
    if features is not None:
        frame = frame[features]
    # CICFlowMeter writes inf for rates over zero-length flows; treat them as missing.
    frame = frame.replace([np.inf, -np.inf], np.nan)
    return frame, y


def max_f1_threshold(y, scores):
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y, scores)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    return float(thresholds[int(np.argmax(f1))])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--framework", choices=["lightgbm", "xgboost"], default="lightgbm")
    parser.add_argument("--train")
    parser.add_argument("--validation")
    parser.add_argument("--test")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--num-leaves", type=int, default=31)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--quantized",
        action="store_true",
        help="LightGBM quantized training (use_quantized_grad, quant_train_renew_leaf)",
    )
    parser.add_argument("--features-json", help="model.json whose `features` fix the column order")
    parser.add_argument("--save-model", help="directory for the model and a model.json (features, threshold)")
    parser.add_argument("--score-model", help="only score --test with this LightGBM model.txt")
    args = parser.parse_args()

    from sklearn.metrics import average_precision_score

    seconds = {}
    started = time.perf_counter()
    features = None
    if args.features_json:
        with open(args.features_json) as f:
            features = json.load(f)["features"]

    if args.score_model:
        import lightgbm as lgb

        booster = lgb.Booster(model_file=args.score_model)
        x_test, y_test = load(args.test, features)
        scores = booster.predict(x_test.to_numpy(np.float64), num_threads=args.threads)
        print(json.dumps({"test_pr_auc": float(average_precision_score(y_test, scores))}))
        return

    x_train, y_train = load(args.train, features)
    x_valid, y_valid = load(args.validation, list(x_train.columns)) if args.validation else (None, None)
    x_test, y_test = load(args.test, list(x_train.columns)) if args.test else (None, None)
    seconds["read"] = time.perf_counter() - started

    fit_started = time.perf_counter()
    if args.framework == "lightgbm":
        import lightgbm as lgb

        params = {
            "objective": "binary",
            "metric": "binary_logloss",
            "learning_rate": args.learning_rate,
            "num_leaves": args.num_leaves,
            "max_depth": -1,
            "min_data_in_leaf": 20,
            "feature_fraction": 1.0,
            "num_threads": args.threads,
            "seed": args.seed,
            "verbosity": -1,
        }
        if args.quantized:
            params.update(use_quantized_grad=True, quant_train_renew_leaf=True)
        train_set = lgb.Dataset(x_train, label=y_train)
        valid_sets, callbacks = [], []
        if x_valid is not None:
            valid_sets = [lgb.Dataset(x_valid, label=y_valid, reference=train_set)]
            # Early stopping as a user would configure it, with patience = rounds: all rounds run.
            callbacks = [lgb.early_stopping(args.rounds, verbose=False)]
        # keep_training_booster: the model keeps every round trained (as model-image's does), not only
        # the rounds up to the best validation score, which lgb.train would otherwise cut it to.
        booster = lgb.train(
            params,
            train_set,
            args.rounds,
            valid_sets=valid_sets,
            callbacks=callbacks,
            keep_training_booster=True,
        )
        rounds = booster.current_iteration()
        # num_iteration=0: all rounds, not `best_iteration`.
        predict = lambda x: booster.predict(x, num_iteration=0, num_threads=args.threads)  # noqa: E731
    else:
        import xgboost as xgb

        params = {
            "objective": "binary:logistic",
            "eval_metric": "logloss",
            "tree_method": "hist",
            # LightGBM's leaf-wise growth with the same leaf budget.
            "grow_policy": "lossguide",
            "max_leaves": args.num_leaves,
            "max_depth": 0,
            "max_bin": 255,
            "eta": args.learning_rate,
            "nthread": args.threads,
            "seed": args.seed,
        }
        train_matrix = xgb.DMatrix(x_train, label=y_train)
        evals, patience = [], None
        if x_valid is not None:
            evals = [(xgb.DMatrix(x_valid, label=y_valid), "validation")]
            patience = args.rounds
        booster = xgb.train(
            params, train_matrix, args.rounds, evals=evals, early_stopping_rounds=patience, verbose_eval=False
        )
        rounds = booster.num_boosted_rounds()
        predict = lambda x: booster.predict(xgb.DMatrix(x), iteration_range=(0, rounds))  # noqa: E731
    seconds["fit"] = time.perf_counter() - fit_started

    result = {"framework": args.framework, "rounds": rounds, "train_rows": len(y_train), "features": x_train.shape[1]}
    if x_test is not None:
        predict_started = time.perf_counter()
        scores = predict(x_test)
        seconds["predict"] = time.perf_counter() - predict_started
        metric_started = time.perf_counter()
        result["test_pr_auc"] = float(average_precision_score(y_test, scores))
        seconds["metrics"] = time.perf_counter() - metric_started

    if args.save_model:
        os.makedirs(args.save_model, exist_ok=True)
        threshold_x, threshold_y = (x_valid, y_valid) if x_valid is not None else (x_train, y_train)
        threshold = max_f1_threshold(threshold_y, predict(threshold_x))
        name = "model.txt" if args.framework == "lightgbm" else "xgboost.json"
        booster.save_model(os.path.join(args.save_model, name))
        metadata = {
            "features": list(x_train.columns),
            "threshold": threshold,
            "positive_label": POSITIVE,
            "negative_label": "Normal",
            "rounds": rounds,
        }
        with open(os.path.join(args.save_model, "model.json"), "w") as f:
            json.dump(metadata, f, indent=2)

    seconds["total"] = time.perf_counter() - started
    result["seconds"] = {k: round(v, 3) for k, v in seconds.items()}
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
