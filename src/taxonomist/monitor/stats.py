"""The statistics drift is judged by: population stability, Jensen-Shannon distance, two-sample
tests with a family-wise correction, and a domain classifier's cross-validated AUC.

Each test answers "could both samples come from one distribution?" (a p-value) and each
distance "how far apart are they?" (an effect size). With thousands of rows any difference is
significant, and with a few dozen a large one may not be: drift is called only when both agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

EPS = 1e-4  # the share given to an empty bin, so that logs stay finite


def shares(counts: np.ndarray) -> np.ndarray:
    """Counts as shares of their total, empty bins at :data:`EPS` (renormalised)."""
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    p = counts / total if total > 0 else np.full(len(counts), 1 / max(len(counts), 1))
    p = np.maximum(p, EPS)
    return p / p.sum()


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two histograms over the same bins (0: same; 0.1: a
    small shift; 0.25 and more: a large one, the credit-scoring rule of thumb)."""
    p, q = shares(reference), shares(current)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2: 0 same, 1 disjoint) of two histograms."""
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(shares(reference), shares(current), base=2))


def quantile_edges(values: np.ndarray, bins: int = 10) -> np.ndarray:
    """Inner bin edges at the reference's deciles (ties merged): each bin holds about a tenth
    of the reference, the usual binning for PSI."""
    if values.size == 0:
        return np.array([])
    return np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))


def binned(values: np.ndarray, edges: np.ndarray, n_missing: int) -> np.ndarray:
    """Counts per bin (``len(edges) + 1`` bins) and a last bin of missing values."""
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return np.append(counts, n_missing)


def chi_square(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Chi-square test of homogeneity of two count vectors (bins empty in both dropped)."""
    table = np.vstack([reference, current]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    stat, p, _, _ = stats.chi2_contingency(table, correction=False)
    return float(stat), float(p)


def ks(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and p-value (1.0 when a side is empty)."""
    if reference.size == 0 or current.size == 0:
        return 0.0, 1.0
    res = stats.ks_2samp(reference, current, method="asymp")
    return float(res.statistic), float(res.pvalue)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down correction: the family-wise error stays at alpha over all tests."""
    m = len(p_values)
    order = np.argsort(p_values)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted.tolist()


@dataclass
class DomainClassifier:
    """How well a classifier tells current rows from reference rows, out of fold: AUC 0.5 is
    "indistinguishable", 1.0 "entirely different". ``p_value`` is the one-sided Mann-Whitney
    test of AUC > 0.5; ``weights`` the linear model's feature weights (fitted on all rows)."""

    auc: float
    p_value: float
    n_reference: int
    n_current: int
    weights: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "auc": round(self.auc, 4),
            "p_value": self.p_value,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
        }


def domain_classifier(
    reference: Any, current: Any, seed: int, *, folds: int = 3, weights: bool = True
) -> DomainClassifier:
    """Fit a logistic regression on ``reference`` (label 0) against ``current`` (label 1)
    feature matrices (dense or sparse, same columns) and score it by cross-validated AUC;
    ``weights``: also fit it on all rows for its weights."""
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    n_ref, n_cur = reference.shape[0], current.shape[0]
    stack = sp.vstack if sp.issparse(reference) else np.vstack
    X = stack([reference, current])
    y = np.r_[np.zeros(n_ref, dtype=int), np.ones(n_cur, dtype=int)]
    clf = LogisticRegression(C=1.0, max_iter=300)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    # One AUC per fold (scores of one fitted model each). The fold models' own noise adds to
    # Mann-Whitney's variance: on two samples of one distribution the AUC's spread was
    # measured at 1.35x its standard error, so the error is widened by sqrt(2).
    aucs, variances = [], []
    for fit, held in cv.split(X, y):
        scores = clf.fit(X[fit], y[fit]).decision_function(X[held])
        n0, n1 = int((y[held] == 0).sum()), int((y[held] == 1).sum())
        aucs.append(roc_auc_score(y[held], scores))
        variances.append((n0 + n1 + 1) / (12 * n0 * n1))
    auc = float(np.mean(aucs))
    se = np.sqrt(2 * np.sum(variances)) / len(aucs)
    p = float(stats.norm.sf((auc - 0.5) / se))
    coef = clf.fit(X, y).coef_[0] if weights else None
    return DomainClassifier(auc, p, n_ref, n_cur, coef)
