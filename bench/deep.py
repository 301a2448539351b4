"""Benchmark: the hybrid network (MiniLM's top layers fine-tuned beside a dense tabular
branch) against the frozen-embedding head and the TF-IDF linear SVM, and the ensemble with
the hybrid network against the ensemble without it.

Text + tabular sets: the reviews (``Class Name`` from the review text and title, ``Age``,
``Division Name``, ``Department Name``) and the app store (``prime_genre`` from the name and
description, sizes, prices, ratings). A stratified 80/20 split of each; the models train on a
stratified sample of the 80 % (``--rows``: fine-tuning on 2 CPU cores runs ~130 rows a second)
and are scored on the same 20 % (at most 2,000 rows). Macro-F1 differences come with a paired
bootstrap 95 % interval over the test rows.

    python bench/deep.py                          # members, both sets, 3,000 training rows
    python bench/deep.py --part members --only reviews-class --rows 2000
    python bench/deep.py --part ensemble --only reviews-class --rows 2000 --budget 600
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TAXONOMIST_SHARED", ROOT.parent / "shared")) / "data"
SETS = {
    "reviews-class": ("womens_clothing/reviews.csv", "Class Name"),
    "appstore": ("appstore/apps.csv", "prime_genre"),
}
# The hybrid network's variants measured beside its defaults (one sequence for all texts).
VARIANTS = {
    "hybrid": {},
    "hybrid-probe-only": {"epochs": 0},
    "hybrid-128-tokens": {"max_length": 128},
    "hybrid-separate": {"text_mode": "separate"},
    "hybrid-1-layer": {"train_layers": 1},
}
MEMBERS = ["linear_svm", "embed", *VARIANTS]


def split(name: str, rows: int) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    from sklearn.model_selection import train_test_split

    from taxonomist.models.table_check import stratified_sample

    path, target = SETS[name]
    df = pd.read_csv(SHARED / path)
    df = df[df[target].notna()].reset_index(drop=True)
    counts = df[target].map(df[target].value_counts())
    df = df[counts >= 10].reset_index(drop=True)  # classes a 20 % test split can score
    train, test = train_test_split(df, test_size=0.2, random_state=0, stratify=df[target])
    train = stratified_sample(train.reset_index(drop=True), target, rows, 0)
    test = test.sample(min(len(test), 2000), random_state=0) if len(test) > 2000 else test
    return train.reset_index(drop=True), test.reset_index(drop=True), target


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, pred, average="macro", labels=np.unique(y)))


def paired_interval(y: np.ndarray, a: np.ndarray, b: np.ndarray, n: int = 1000) -> list[float]:
    """95 % interval of macro-F1(a) - macro-F1(b), resampling the test rows."""
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(n):
        i = rng.integers(0, len(y), len(y))
        diffs.append(macro_f1(y[i], a[i]) - macro_f1(y[i], b[i]))
    return [round(float(np.percentile(diffs, 2.5)), 4), round(float(np.percentile(diffs, 97.5)), 4)]


def members(name: str, rows: int, which: list[str]) -> dict:
    """Each member alone with its default parameters, blocks fitted on the training rows."""
    from taxonomist.data import infer_column_roles
    from taxonomist.features.build import FeatureBlocks, block_specs
    from taxonomist.models.candidates import FAMILIES, Task
    from taxonomist.models.search import choose_folds, family_matrix

    train, test, target = split(name, rows)
    schema = infer_column_roles(train, target)
    classes, y = np.unique(train[target].astype(str), return_inverse=True)
    y_test = test[target].astype(str).to_numpy()
    folds, _ = choose_folds(y, 0)
    X, X_test = train[schema.features], test[schema.features]
    cache = tempfile.mkdtemp(prefix="bench-deep-")
    blocks = FeatureBlocks(
        block_specs(
            schema, X, folds, 0, embed_encoder="minilm", cache_path=f"{cache}/e.db", n_jobs=2
        )
    )
    task = Task(len(y), len(classes), 0, 2)
    out: dict = {"set": name, "train_rows": len(train), "test_rows": len(test), "members": {}}
    preds = {}
    for member in which:
        family = FAMILIES["hybrid" if member in VARIANTS else member]
        start = time.perf_counter()
        names = [b for b in family.blocks if b in blocks.specs]
        matrix = family_matrix(family, {b: blocks.fit_block(b, X, y) for b in names})
        params = {**family.defaults, **VARIANTS.get(member, {})}
        model = family.build(params, task)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(matrix, y)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        test_matrix = family_matrix(family, blocks.transform(X_test, names))
        proba = model.predict_proba(test_matrix)
        predict_s = time.perf_counter() - start
        preds[member] = classes[np.asarray(proba).argmax(axis=1)]
        row = {
            "macro_f1": round(macro_f1(y_test, preds[member]), 4),
            "fit_s": round(fit_s, 1),
            "predict_rows_per_s": round(len(test) / predict_s, 1),
        }
        if hasattr(model, "history_"):
            row["epochs"] = len(model.history_)
            row["best_epoch"] = model.best_epoch_
        out["members"][member] = row
        print(name, member, row, flush=True)
    for a, b in [
        ("hybrid", "embed"),
        ("hybrid", "linear_svm"),
        ("hybrid", "hybrid-probe-only"),
        ("hybrid-128-tokens", "hybrid"),
        ("hybrid-separate", "hybrid"),
    ]:
        if a in preds and b in preds:
            out[f"{a}_minus_{b}"] = paired_interval(y_test, preds[a], preds[b])
    return out


def ensemble(name: str, rows: int, budget: float) -> dict:
    """The default search's families with the hybrid network named beside them, and
    without it, each trained within ``budget`` seconds."""
    from taxonomist.models.candidates import FAMILIES
    from taxonomist.models.train import train as train_model

    train, test, target = split(name, rows)
    y_test = test[target].astype(str).to_numpy()
    searched = [f for f, fam in FAMILIES.items() if fam.searched and f != "hybrid"]
    out: dict = {"set": name, "train_rows": len(train), "budget_s": budget, "runs": {}}
    preds = {}
    for label, families in (("without", searched), ("with", [*searched, "hybrid"])):
        start = time.perf_counter()
        # the hybrid network predicts ~100 rows/s: the default prediction budget (5,000
        # rows/s) would keep it out of the ensemble, so neither run has one
        result = train_model(
            train, target=target, time_budget=budget, families=families, min_rows_per_second=0
        )
        seconds = time.perf_counter() - start
        preds[label] = result.model.predict(test).astype(str)
        out["runs"][label] = {
            "macro_f1": round(macro_f1(y_test, preds[label]), 4),
            "train_s": round(seconds, 1),
            "ensemble": {k: round(v, 3) for k, v in result.model.families.items()},
            "cv_f1_macro": round(result.metrics["f1_macro"], 4),
        }
        print(name, label, out["runs"][label], flush=True)
    out["with_minus_without"] = paired_interval(y_test, preds["with"], preds["without"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["members", "ensemble"], default="members")
    parser.add_argument("--only", choices=list(SETS), action="append")
    parser.add_argument("--rows", type=int, default=3000, help="training rows (a sample)")
    parser.add_argument("--budget", type=float, default=600.0, help="ensemble: seconds")
    parser.add_argument(
        "--members", default=",".join(MEMBERS), help=f"members: a subset of {','.join(MEMBERS)}"
    )
    args = parser.parse_args()
    os.environ.setdefault("TAXONOMIST_HOME", tempfile.mkdtemp(prefix="bench-deep-home-"))
    results = []
    for name in args.only or list(SETS):
        if args.part == "members":
            results.append(members(name, args.rows, args.members.split(",")))
        else:
            results.append(ensemble(name, args.rows, args.budget))
        print(json.dumps(results[-1]), flush=True)
    json.dump(results, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
