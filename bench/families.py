"""Benchmark: what each sparse model family adds, on the same folds of every shared text set.

Each family's default parameters, 5-fold (3 on large data) cross-validated out-of-fold
probabilities (temperature-scaled), the score of each alone and of each averaged with the best
single family: a family that scores lower alone but lifts the average is diversity the
ensemble can use. Same folds, same process, so the figures compare.

    python bench/families.py                       # every text set, every sparse family
    python bench/families.py --only rakuten --families linear_svm,nb_svm
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TAXONOMIST_SHARED", ROOT.parent / "shared")) / "data"
SETS = {
    "appstore": ("appstore/apps.csv", "prime_genre"),
    "reviews-recommended": ("womens_clothing/reviews.csv", "Recommended IND"),
    "reviews-class": ("womens_clothing/reviews.csv", "Class Name"),
    "rakuten": ("rakuten/products.csv", "prdtypecode"),
}
SPARSE = ["linear_svm", "nb_svm", "logreg", "complement_nb"]


def run(name: str, families: list[str]) -> list[dict]:
    from taxonomist.data import infer_column_roles
    from taxonomist.data.profile import profile_table
    from taxonomist.data.validate import validate_training_table
    from taxonomist.features.build import FeatureBlocks, block_specs
    from taxonomist.models.calibration import apply_temperature, fit_temperature
    from taxonomist.models.candidates import FAMILIES, Task
    from taxonomist.models.metrics import primary_metric
    from taxonomist.models.search import choose_folds, family_matrix
    from taxonomist.models.train import _encode_target
    from taxonomist.models.trials import proba_full

    path, target = SETS[name]
    df = pd.read_csv(SHARED / path)
    df = df[df[target].notna()].reset_index(drop=True)
    df, schema, _ = validate_training_table(df, infer_column_roles(df, target), n_splits=5)
    y, classes = _encode_target(df[target])
    metric = primary_metric(len(classes), None)
    folds, _ = choose_folds(y, 0)
    X = df[schema.features].reset_index(drop=True)
    language = profile_table(df, schema).language
    blocks = FeatureBlocks(block_specs(schema, X, folds, 0, n_jobs=2, language=language))
    task = Task(len(y), len(classes), 0, 2)
    oofs, rows = {}, []
    for f in families:
        family = FAMILIES[f]
        outputs = {b: blocks.fit_block(b, X, y) for b in family.blocks if b in blocks.specs}
        matrix = family_matrix(family, outputs)
        oof = np.zeros((len(y), len(classes)), np.float32)
        start = time.perf_counter()
        for train, valid in folds:
            model = family.build(family.defaults, task)
            model.fit(matrix[train], y[train])
            oof[valid] = proba_full(model, matrix[valid], len(classes))
        oofs[f] = apply_temperature(oof, fit_temperature(oof, y))
        rows.append(
            {
                "data": name,
                "family": f,
                "metric": metric.name,
                "alone": metric(y, oofs[f]),
                "seconds": time.perf_counter() - start,
            }
        )
    best = min(rows, key=lambda r: metric.loss(r["alone"]))["family"]
    for r in rows:
        r["with_best"] = metric(y, (oofs[r["family"]] + oofs[best]) / 2)
        r["best"] = best
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=list(SETS), action="append")
    parser.add_argument("--families", default=",".join(SPARSE))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print(
        "| data set | family | metric | alone | averaged with the best single | fit s (all folds) |"
    )
    print("|---|---|---|---|---|---|")
    for name in args.only or list(SETS):
        for r in run(name, args.families.split(",")):
            partner = "(itself)" if r["family"] == r["best"] else f"({r['best']})"
            print(
                f"| {r['data']} | {r['family']} | {r['metric']} | {r['alone']:.4f} | "
                f"{r['with_best']:.4f} {partner} | {r['seconds']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
