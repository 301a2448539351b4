"""Benchmark: the click-through pipeline (``examples/ctr/avazu.yaml``) against a one-hot
logistic regression and LightGBM with default parameters on the raw columns.

All three train on the shared Avazu sample's ``train.csv`` and are scored on its
``valid.csv`` (later rows; the sample holds one hour, so no split by hour is possible), and
also by 5-fold cross-validation on ``train.csv`` (the held-out file has 480 rows: its log
loss moves by ~0.01 between equally good models). Speed: single-record p50 in-process and
batch rows/s on 5,000 rows, for the whole model and for the config's logistic regression
alone.

    python bench/ctr.py               # the example config's 120 s budget
    python bench/ctr.py --budget 60
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TAXONOMIST_SHARED", ROOT.parent / "shared")) / "data"
CONFIG = ROOT / "examples" / "ctr" / "avazu.yaml"


def baselines(train: pd.DataFrame, valid: pd.DataFrame, target: str) -> dict[str, np.ndarray]:
    """Held-out click probabilities of the two baselines, and their 5-fold ones on train."""
    import lightgbm as lgb
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import OneHotEncoder

    cols = [c for c in train.columns if c not in ("id", target, "hour")]

    def onehot_lr(a: pd.DataFrame, b: pd.DataFrame, y: np.ndarray) -> np.ndarray:
        enc = OneHotEncoder(handle_unknown="ignore")
        model = LogisticRegression(max_iter=2000).fit(enc.fit_transform(a.astype(str)), y)
        return model.predict_proba(enc.transform(b.astype(str)))[:, 1]

    def raw_lgbm(a: pd.DataFrame, b: pd.DataFrame, y: np.ndarray) -> np.ndarray:
        def raw(df: pd.DataFrame) -> pd.DataFrame:
            return df.assign(
                **{
                    c: pd.Categorical(df[c], categories=sorted(train[c].astype(str).unique()))
                    for c in cols
                    if not pd.api.types.is_numeric_dtype(train[c])
                }
            )

        model = lgb.LGBMClassifier(verbose=-1).fit(raw(a), y)
        return model.predict_proba(raw(b))[:, 1]

    y = train[target].to_numpy()
    out = {}
    for name, fn in (("one-hot logistic regression", onehot_lr), ("LightGBM, raw", raw_lgbm)):
        out[name] = fn(train[cols], valid[cols], y)
        oof = np.zeros(len(train))
        for tr, va in StratifiedKFold(5, shuffle=True, random_state=0).split(train, y):
            oof[va] = fn(train[cols].iloc[tr], train[cols].iloc[va], y[tr])
        out[name + " (cv)"] = oof
    return out


def scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import log_loss, roc_auc_score

    from taxonomist.models.metrics import expected_calibration_error

    proba = np.column_stack([1 - p, p])
    return {
        "log_loss": float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7))),
        "roc_auc": float(roc_auc_score(y, p)),
        "ece": float(expected_calibration_error(y, proba)),
    }


def speed(model: object, frame: pd.DataFrame) -> tuple[float, float]:
    from taxonomist.models.train import single_record_ms

    batch = frame.iloc[:5000]
    model.predict_proba(batch)  # type: ignore[attr-defined]
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        model.predict_proba(batch)  # type: ignore[attr-defined]
        best = max(best, len(batch) / (time.perf_counter() - start))
    record = batch.iloc[0][model.feature_columns].to_dict()  # type: ignore[attr-defined]
    return single_record_ms(model, record), best  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=None, help="Seconds (default: config).")
    args = parser.parse_args()
    os.environ.setdefault("TAXONOMIST_HOME", tempfile.mkdtemp(prefix="bench-ctr-"))
    from taxonomist.models.config import TrainConfig
    from taxonomist.models.train import train

    config = TrainConfig.from_file(CONFIG)
    if args.budget:
        config = config.merged(time_budget=args.budget)
    train_df = pd.read_csv(SHARED / "avazu" / "train.csv")
    valid_df = pd.read_csv(SHARED / "avazu" / "valid.csv")
    y_valid, y_train = valid_df["click"].to_numpy(), train_df["click"].to_numpy()
    rows = []
    for name, p in baselines(train_df, valid_df, "click").items():
        cv = name.endswith("(cv)")
        rows.append((name, scores(y_train if cv else y_valid, p)))
    started = time.perf_counter()
    result = train(train_df, config)
    seconds = time.perf_counter() - started
    ours = result.model.predict_proba(valid_df)[str(result.model.classes[1])].to_numpy()
    rows.append(("Taxonomist (held-out)", scores(y_valid, ours)))
    m = result.metrics
    rows.append(
        (
            "Taxonomist (cv, its own folds)",
            {"log_loss": m["log_loss"], "roc_auc": m["roc_auc"], "ece": m["ece"]},
        )
    )
    one_ms, rows_s = speed(result.model, valid_df.sample(5000, replace=True, random_state=0))
    lr = train(train_df, config.merged(families=["logreg"], time_budget=20))
    lr_one, lr_rows = speed(lr.model, valid_df.sample(5000, replace=True, random_state=0))
    print(f"Avazu sample: {len(train_df)} train rows, {len(valid_df)} held-out rows")
    print(f"{'model':40s} {'log loss':>9s} {'ROC AUC':>8s} {'ECE':>7s}")
    for name, s in rows:
        print(f"{name:40s} {s['log_loss']:9.4f} {s['roc_auc']:8.4f} {s['ece']:7.4f}")
    print(f"Taxonomist trained in {seconds:.0f}s; ensemble {dict(result.model.families)}")
    cv_losses = ", ".join(f"{k} {v:.4f}" for k, v in m["calibration_log_loss"].items())
    print(f"calibration: {m['calibration']} (cross-validated log loss: {cv_losses})")
    print(f"speed, whole model: one record p50 {one_ms:.2f} ms, batch {rows_s:,.0f} rows/s")
    print(f"speed, logistic regression alone: one record {lr_one:.2f} ms, {lr_rows:,.0f} rows/s")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
