"""Temperature scaling: one parameter per model, fitted on out-of-fold probabilities."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

PROBA_FLOOR = 1e-6


def floor_probabilities(proba: np.ndarray) -> np.ndarray:
    """No class is ever impossible: clip at :data:`PROBA_FLOOR` and renormalise."""
    p = np.clip(proba, PROBA_FLOOR, None)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Rescale probabilities as softmax(log(p) / T)."""
    if temperature == 1.0:
        return proba
    logits = np.log(np.clip(proba, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> float:
    """The T in [0.1, 20] that minimises the log loss of ``apply_temperature(proba, T)``."""
    logp = np.log(np.clip(proba, 1e-12, 1.0))
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        z = logp / np.exp(log_t)
        z -= z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1))
        return float(np.mean(lse - z[rows, y]))

    # The lower bound keeps perfectly separated validation data from sharpening the
    # probabilities without limit.
    res = minimize_scalar(
        nll, bounds=(np.log(0.1), np.log(20.0)), method="bounded", options={"xatol": 1e-3}
    )
    return float(np.exp(res.x))
