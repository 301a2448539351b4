"""Benchmark: the linear SVM's own solver against liblinear's, same problems, same process.

Hashed word and character n-gram TF-IDF of the women's clothing reviews, one binary SVM per
class (18 classes with 10 rows or more, balanced weights, C = 0.3, tol = 1e-3), fitted by
scikit-learn's ``LinearSVC`` (liblinear) and by ``taxonomist.models._svm.dual_cd`` on one and
two threads, twice each: the wall time, macro-F1 on a held-out quarter, and how far two runs'
coefficients differ (liblinear on threads shares one random generator between them).

    python bench/linear_svm.py
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TAXONOMIST_SHARED", ROOT.parent / "shared")) / "data"


def main() -> None:
    from sklearn.metrics import f1_score
    from sklearn.model_selection import train_test_split
    from sklearn.svm import LinearSVC

    from taxonomist.features.text import HashedTfidfVectorizer
    from taxonomist.models.linear import SoftmaxLinearSVC

    df = pd.read_csv(SHARED / "womens_clothing/reviews.csv")
    df = df[df["Class Name"].map(df["Class Name"].value_counts()) >= 10]
    text = (df["Title"].fillna("") + " " + df["Review Text"].fillna("")).tolist()
    y = df["Class Name"].astype(str).to_numpy()
    X = HashedTfidfVectorizer().fit_transform(text)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    classes = np.unique(ytr)
    print(
        f"{Xtr.shape[0]:,} rows x {Xtr.shape[1]:,} features, {Xtr.nnz:,} non-zeros, "
        f"{len(classes)} classes"
    )

    def liblinear(jobs: int) -> np.ndarray:
        codes = np.searchsorted(classes, ytr)
        weights = len(codes) / (len(classes) * np.bincount(codes))

        def one(c: int) -> np.ndarray:
            svc = LinearSVC(
                C=0.3, tol=1e-3, max_iter=2000, random_state=0, class_weight={1: weights[c], 0: 1.0}
            )
            svc.fit(Xtr, (codes == c).astype(int))
            return np.append(svc.coef_[0], svc.intercept_)

        with ThreadPoolExecutor(jobs) as pool:
            return np.vstack(list(pool.map(one, range(len(classes)))))

    def ours(jobs: int) -> np.ndarray:
        svm = SoftmaxLinearSVC(C=0.3, n_jobs=jobs).fit(Xtr, ytr)
        return np.column_stack([svm.coef_, svm.intercept_])

    rows = []
    base = None
    for name, fit in (("liblinear", liblinear), ("own solver", ours)):
        for jobs in (1, 2):
            seconds, coefs = [], []
            for _ in range(2):
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    coefs.append(fit(jobs))
                seconds.append(time.perf_counter() - start)
            base = base or min(seconds)
            f1 = _f1(coefs[0], Xte, yte, classes, f1_score)
            rows.append(
                (
                    name,
                    jobs,
                    min(seconds),
                    base / min(seconds),
                    f1,
                    float(np.abs(coefs[0] - coefs[1]).max()),
                )
            )
    print(
        f"{'solver':<11} {'threads':>7} {'best s':>7} {'speed-up':>8} {'macro-F1':>8} "
        f"{'run-to-run max |dw|':>20}"
    )
    for name, jobs, s, up, f1, diff in rows:
        print(f"{name:<11} {jobs:>7} {s:>7.2f} {up:>7.2f}x {f1:>8.4f} {diff:>20.2e}")


def _f1(coef: np.ndarray, X, y, classes, score: Callable) -> float:
    decision = X @ coef[:, :-1].T + coef[:, -1]
    return float(score(y, classes[np.asarray(decision).argmax(axis=1)], average="macro"))


if __name__ == "__main__":
    main()
