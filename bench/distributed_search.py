"""Benchmark: one training job's search on a Dask cluster of one worker process against two.

The same table, families and time budget, the job run as the service runs it (a task on a
worker, its trials spread over the cluster's worker threads when there are several). On one
machine the workers share its cores: one worker's models use every core (``n_jobs`` = cores),
two workers' models one core each, so both set-ups use the same CPU.

    python bench/distributed_search.py [--set reviews-class] [--budget 60] [--rows 6000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TAXONOMIST_SHARED", ROOT.parent / "shared")) / "data"
SETS = {
    "appstore": ("appstore/apps.csv", "prime_genre"),
    "reviews-class": ("womens_clothing/reviews.csv", "Class Name"),
    "rakuten": ("rakuten/products.csv", "prdtypecode"),
}


def job(path: str, target: str, home: str, n_jobs: int, budget: float) -> dict[str, Any]:
    """The search of a training job, in a worker (train() without registering)."""
    from taxonomist.config import Settings
    from taxonomist.models.train import train

    started = time.perf_counter()
    result = train(
        path,
        target=target,
        time_budget=budget,
        settings=Settings(home=home, n_jobs=n_jobs),
    )
    trials = result.study.trials if result.study is not None else []
    return {
        "trials": len(trials),
        "finished": sum(t.state.name == "COMPLETE" for t in trials),
        "pruned": sum(t.state.name == "PRUNED" for t in trials),
        "cv_score": round(float(result.metrics["primary"]), 4),
        "best_family": result.best_family,
        "seconds": round(time.perf_counter() - started, 1),
    }


def run(workers: int, path: Path, target: str, budget: float, home: Path) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    cores = os.cpu_count() or 2
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            memory_limit=0,
        ) as cluster,
        Client(cluster) as client,
    ):
        n_jobs = max(1, cores // workers)
        out = client.submit(job, str(path), target, str(home), n_jobs, budget, pure=False).result()
    return {"workers": workers, "n_jobs": n_jobs, **out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", default="reviews-class", choices=sorted(SETS))
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--rows", type=int, default=6000, help="a sample of the table (0: all)")
    args = parser.parse_args()
    import pandas as pd

    relative, target = SETS[args.set]
    table = pd.read_csv(SHARED / relative)
    if args.rows and len(table) > args.rows:
        table = table.sample(args.rows, random_state=0)
    work = ROOT / "bench" / "out" / "distributed_search"
    work.mkdir(parents=True, exist_ok=True)
    data = work / f"{args.set}.csv"
    table.to_csv(data, index=False)
    rows = [run(n, data, target, args.budget, work / f"home{n}") for n in (1, 2)]
    print(f"{args.set}: {len(table):,} rows, {args.budget:.0f} s budget, {os.cpu_count()} cores")
    print("| workers | n_jobs | trials | finished | pruned | CV score | best family | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['workers']} | {r['n_jobs']} | {r['trials']} | {r['finished']} | "
            f"{r['pruned']} | {r['cv_score']:.4f} | {r['best_family']} | {r['seconds']} |"
        )
    json.dump(rows, sys.stderr)


if __name__ == "__main__":
    main()
