#!/usr/bin/env python3
"""The Python inference server a SageMaker user would otherwise deploy, as the reference for
model-image's serving benchmark (benches/serving.rs).

A Flask app under gunicorn with sync workers (one per core, as SageMaker's Python framework
containers run it), answering the SageMaker inference contract like `model-image serve`:
`GET /ping`, `POST /invocations` with a `text/csv` body (with or without a header row; without one,
the columns are the model's features in order) and `{"predictions": [{"label": .., "score": ..}]}`.
Header-less bodies are parsed with `numpy.loadtxt` (`--csv-parser pandas`: `pandas.read_csv`, about
2 ms slower per request); bodies with a header (or cells numpy cannot read) with `pandas.read_csv`.

    serve_reference.py --framework lightgbm --model-dir DIR --port 8080
    serve_reference.py --framework xgboost --model-dir DIR --port 8080

`--framework lightgbm` loads `DIR/model.txt` (model-image's LightGBM model, the very same file) and
`DIR/model.json` (`features`, `threshold`); `--framework xgboost` loads `DIR/xgboost.json` written by
train_reference.py. Each worker scores with one thread: two workers already use both cores.
"""

import argparse
import io
import json
import os


def create_app(framework, model_dir, csv_parser="numpy"):
    import numpy as np
    import pandas as pd
    from flask import Flask, jsonify, request

    with open(os.path.join(model_dir, "model.json")) as f:
        metadata = json.load(f)
    features = metadata["features"]
    threshold = float(metadata["threshold"])
    positive = metadata.get("positive_label", "Anomaly")
    negative = metadata.get("negative_label", "Normal")

    if framework == "lightgbm":
        import lightgbm as lgb

        booster = lgb.Booster(model_file=os.path.join(model_dir, "model.txt"))

        def predict(x):
            return booster.predict(x, num_threads=1)

    else:
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(os.path.join(model_dir, "xgboost.json"))
        booster.set_param({"nthread": 1})

        def predict(x):
            return booster.inplace_predict(x)

    app = Flask(__name__)

    @app.get("/ping")
    def ping():
        return "", 200

    @app.post("/invocations")
    def invocations():
        if request.mimetype != "text/csv":
            return jsonify(error=f"unsupported content type {request.mimetype}"), 415
        body = request.get_data()
        first_line = body.split(b"\n", 1)[0].decode("utf-8", "replace")
        has_header = any(name in first_line.split(",") for name in features[:3])
        try:
            x = None
            if csv_parser == "numpy" and not has_header:
                try:
                    x = np.loadtxt(io.BytesIO(body), delimiter=",", dtype=np.float64, ndmin=2)
                except ValueError:
                    x = None  # e.g. empty cells: let pandas read them as missing
            if x is None:
                frame = pd.read_csv(io.BytesIO(body), header=0 if has_header else None)
                if has_header:
                    frame = frame[features]
                x = frame.to_numpy(dtype=np.float64)
        except (ValueError, KeyError) as e:
            return jsonify(error=str(e)), 400
        if x.shape[1] != len(features):
            return jsonify(error=f"expected {len(features)} columns, got {x.shape[1]}"), 400
        x[~np.isfinite(x)] = np.nan
        scores = predict(x)
        predictions = [
            {"label": positive if s >= threshold else negative, "score": float(s)} for s in scores
        ]
        return jsonify(predictions=predictions)

    return app


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--framework", choices=["lightgbm", "xgboost"], default="lightgbm")
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080")))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--csv-parser",
        choices=["numpy", "pandas"],
        default="numpy",
        help="header-less bodies: numpy.loadtxt (default, the faster) or pandas.read_csv",
    )
    args = parser.parse_args()

    from gunicorn.app.base import BaseApplication

    class Gunicorn(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("worker_class", "sync")
            self.cfg.set("timeout", 60)
            self.cfg.set("backlog", 2048)
            self.cfg.set("loglevel", "warning")

        def load(self):
            # Called in each worker (no preload): every worker loads its own booster after the fork.
            return create_app(args.framework, args.model_dir, args.csv_parser)

    Gunicorn().run()


if __name__ == "__main__":
    main()
