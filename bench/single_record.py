"""Benchmark: one record at a time through a trained ensemble, in process.

Trains on a shared set with the given families and trial count, then predicts 200 records one
by one (dicts, as the API passes them) and prints the p50 and p99; ``--profile`` adds the
cProfile listing of where the time goes.

    python bench/single_record.py                                   # Avazu, LightGBM + CatBoost
    python bench/single_record.py --data appstore --families linear_svm,lightgbm --profile
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TAXONOMIST_SHARED", ROOT.parent / "shared")) / "data"
SETS = {
    "avazu": ("avazu/train.csv", "click"),
    "appstore": ("appstore/apps.csv", "prime_genre"),
    "rakuten": ("rakuten/products.csv", "prdtypecode"),
    "reviews-recommended": ("womens_clothing/reviews.csv", "Recommended IND"),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", choices=list(SETS), default="avazu")
    parser.add_argument("--families", default="lightgbm,catboost")
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="print where the time goes")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TAXONOMIST_HOME", tempfile.mkdtemp())
    from taxonomist.models.train import train

    path, target = SETS[args.data]
    df = pd.read_csv(SHARED / path)
    model = train(df, target=target, trials=args.trials, families=args.families.split(",")).model
    records = [
        {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in r.items()}
        for r in df.drop(columns=[target]).head(200).to_dict("records")
    ]
    for record in records[:20]:  # warm caches
        model.predict_proba(record)
    times = []
    for record in records:
        start = time.perf_counter()
        model.predict_proba(record)
        times.append(1000 * (time.perf_counter() - start))
    members = ", ".join(f"{m.family} {m.weight:.0%}" for m in model.members)
    print(f"{args.data}: {members}")
    print(f"one record p50 {np.median(times):.2f} ms, p99 {np.percentile(times, 99):.2f} ms")
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        for record in records:
            model.predict_proba(record)
        profile.disable()
        pstats.Stats(profile).sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    main()
