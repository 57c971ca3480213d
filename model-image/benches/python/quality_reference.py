#!/usr/bin/env python3
"""The classifier a Python user would write with LightGBM's defaults, as the reference for
model-image's quality benchmark (benches/quality.rs).

pandas `read_csv`, drop the label and the leaky IoTID20 columns, inf -> NaN,
`lightgbm.LGBMClassifier(n_estimators=100, learning_rate=0.1, num_leaves=31, n_jobs=2)` fitted on the
whole train file, `predict_proba` on the test file, decision threshold 0.5. Prints one JSON object on
the last stdout line: MCC, ROC-AUC, PR-AUC (scikit-learn `average_precision_score`), F1 and balanced
accuracy of the positive class `Anomaly` on the test file, and the wall time.

    quality_reference.py --train train.csv --test test.csv
"""

import argparse
import json
import sys
import time

STARTED = time.perf_counter()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--threshold", type=float, default=0.5)
    args = parser.parse_args()

    import lightgbm as lgb
    from sklearn.metrics import (
        average_precision_score,
        balanced_accuracy_score,
        f1_score,
        matthews_corrcoef,
        roc_auc_score,
    )

    seconds = {"import": time.perf_counter() - STARTED}
    phase = time.perf_counter()
    x_train, y_train = load(args.train)
    x_test, y_test = load(args.test, list(x_train.columns))
    seconds["read"] = time.perf_counter() - phase

    phase = time.perf_counter()
    # What a user writes; `verbose=-1` only silences LightGBM's log lines on stdout.
    model = lgb.LGBMClassifier(n_estimators=100, learning_rate=0.1, num_leaves=31, n_jobs=2, verbose=-1)
    model.fit(x_train, y_train)
    seconds["fit"] = time.perf_counter() - phase

    phase = time.perf_counter()
    scores = model.predict_proba(x_test)[:, 1]
    predicted = scores >= args.threshold
    seconds["predict"] = time.perf_counter() - phase

    result = {
        "lightgbm": lgb.__version__,
        "train_rows": int(len(y_train)),
        "test_rows": int(len(y_test)),
        "features": int(x_train.shape[1]),
        "threshold": args.threshold,
        "mcc": float(matthews_corrcoef(y_test, predicted)),
        "roc_auc": float(roc_auc_score(y_test, scores)),
        "pr_auc": float(average_precision_score(y_test, scores)),
        "f1": float(f1_score(y_test, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(y_test, predicted)),
    }
    seconds["total"] = time.perf_counter() - STARTED
    result["seconds"] = {k: round(v, 3) for k, v in seconds.items()}
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
