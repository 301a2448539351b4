"""Benchmark: the default pipeline (no config) on a larger click log, within its time budget.

The shared Avazu sample has 8,087 rows of one hour; this resamples it to N rows over ten days
of hours (ids of devices, IPs, sites and apps split three ways, so entities repeat but whole
rows rarely do) and trains with ``--target click`` only: the guessed time column, forward-
chaining folds, the time budget and the prediction speed at that size. The rows are
resampled, so the scores say nothing about quality (copies of a row leak across folds):
this measures time, memory and speed.

    python bench/ctr_scale.py                     # 300,000 rows, 120 s
    python bench/ctr_scale.py --rows 1000000 --budget 300
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TAXONOMIST_SHARED", ROOT.parent / "shared")) / "data"


def click_log(rows: int, seed: int = 0) -> pd.DataFrame:
    """``rows`` Avazu rows resampled over ten days of hours, in time order."""
    rng = np.random.default_rng(seed)
    base = pd.read_csv(SHARED / "avazu" / "train.csv")
    df = base.sample(rows, replace=True, random_state=seed).reset_index(drop=True)
    for c in ("device_ip", "device_id", "site_id", "app_id"):
        df[c] = df[c].astype(str) + "_" + rng.integers(0, 3, rows).astype(str)
    hours = np.sort(rng.integers(0, 240, rows))
    df["hour"] = 14102100 + (hours // 24) * 100 + hours % 24
    df["id"] = np.arange(rows)
    return df


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000, help="Rows of the log.")
    parser.add_argument("--budget", type=float, default=120, help="Training seconds.")
    args = parser.parse_args()
    os.environ.setdefault("TAXONOMIST_HOME", tempfile.mkdtemp(prefix="bench-ctr-scale-"))
    from taxonomist.models.train import train

    df = click_log(args.rows)
    cut = int(len(df) * 0.9)
    started = time.perf_counter()
    result = train(df.iloc[:cut], target="click", time_budget=args.budget)
    seconds = time.perf_counter() - started
    m = result.metrics
    states = pd.Series([t.state.name for t in result.study.trials]).value_counts().to_dict()
    print(f"{cut:,} training rows, budget {args.budget:.0f} s: trained in {seconds:.0f} s")
    print(f"validation {m['validation']}, time column {result.model.schema.time}")
    print(f"trials {states}; ensemble {dict(result.model.families)}")
    print(
        f"batch {m['predict_rows_per_second']:,.0f} rows/s, one record "
        f"{m['predict_one_ms_p50']:.2f} ms, peak RSS "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.1f} GB"
    )


if __name__ == "__main__":
    main()
