"""A model scored on labelled rows (or, without labels, its predictions and confidence), as
files a pipeline tool reads: the scores as one flat
JSON object (DVC's metrics) and two curves as CSV (DVC's plots), the reliability table (the
points of :func:`taxonomist.models.metrics.reliability`, the ones training plots) and the ROC
curve."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from taxonomist.errors import InvalidParameterError
from taxonomist.models.metrics import classification_metrics, reliability

METRIC_KEYS = (
    "n",
    "accuracy",
    "f1_macro",
    "f1_weighted",
    "roc_auc",
    "log_loss",
    "ece",
    "mean_confidence",
    "low_confidence_share",
)
# A prediction whose top probability is under this is counted as low-confidence.
LOW_CONFIDENCE = 0.5
RELIABILITY_FILE = "reliability.csv"
ROC_FILE = "roc.csv"
MAX_BINS = 1000


@dataclass
class Evaluation:
    """Scores (``TaxonomistModel.evaluate``'s dict), the reliability table (``bin``,
    ``mean_predicted``, ``observed``, ``count``: one row per non-empty bin) and the ROC curve
    (``fpr``, ``tpr``). ``predicted`` says what the table bins: the positive class's
    probability for two classes, the top class's for more."""

    scores: dict[str, Any]
    reliability: pd.DataFrame
    roc: pd.DataFrame
    predicted: str

    def metrics(self) -> dict[str, float | int]:
        """The scalar scores that are defined (ROC AUC and log loss need two classes)."""
        out: dict[str, float | int] = {
            k: self.scores[k] for k in METRIC_KEYS if self.scores.get(k) is not None
        }
        if self.scores.get("labelled", True):
            out["n_unknown_labels"] = len(self.scores.get("unknown_labels", []))
        return out

    def write_metrics(self, path: str | Path) -> Path:
        """:meth:`metrics` as a JSON object in ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.metrics(), indent=2) + "\n")
        return path

    def write_plots(self, folder: str | Path) -> list[Path]:
        """``reliability.csv`` and ``roc.csv`` in ``folder`` (made if missing). A curve that
        is not defined (ROC on rows of one class) is written with its header only, so the
        files a pipeline declares always exist."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name, table in ((RELIABILITY_FILE, self.reliability), (ROC_FILE, self.roc)):
            table.to_csv(folder / name, index=False, float_format="%.6g")
            written.append(folder / name)
        return written


def evaluate_model(
    model: Any, data: pd.DataFrame, target: str | None = None, *, bins: int = 10
) -> Evaluation:
    """Score ``model`` (a ``TaxonomistModel``) on the labelled rows of ``data``; ``target``
    defaults to the model's; ``bins``: equal-width probability bins of the reliability
    table. Without a ``target`` and without the model's target column in ``data``, the rows
    are unlabelled: the scores are the predictions and their confidence only
    (``labelled`` False, ``predicted_share`` per class), the curves empty."""
    check_bins(bins)
    if target is None and model.schema.target not in [str(c) for c in data.columns]:
        return _unlabelled(model, data)
    y, proba, names, unknown = model.labelled_proba(data, target)
    scores = classification_metrics(y, proba, names)
    scores.update(_confidence(proba), labelled=True, unknown_labels=unknown)
    if proba.shape[1] == 2:
        predicted = f"probability of '{names[1]}'"
    else:
        predicted = "probability of the predicted class"
    return Evaluation(scores, reliability_table(y, proba, bins), roc_table(y, proba), predicted)


def _confidence(proba: np.ndarray) -> dict[str, float]:
    top = proba.max(axis=1)
    return {
        "mean_confidence": float(top.mean()) if len(top) else 0.0,
        "low_confidence_share": float((top < LOW_CONFIDENCE).mean()) if len(top) else 0.0,
    }


def _unlabelled(model: Any, data: pd.DataFrame) -> Evaluation:
    proba = model.predict_proba(data).to_numpy()
    names = [str(c) for c in model.classes]
    share = np.bincount(proba.argmax(axis=1), minlength=len(names)) / max(len(proba), 1)
    scores: dict[str, Any] = {
        "n": len(proba),
        "labelled": False,
        **_confidence(proba),
        "predicted_share": {c: float(v) for c, v in zip(names, share, strict=True)},
    }
    empty = pd.DataFrame({"bin": [], "mean_predicted": [], "observed": [], "count": []})
    return Evaluation(scores, empty, pd.DataFrame({"fpr": [], "tpr": []}), "no labels")


def check_bins(bins: int) -> None:
    if not isinstance(bins, int) or not 2 <= bins <= MAX_BINS:
        raise InvalidParameterError(
            f"The 'bins' parameter must be an int in the range [2, {MAX_BINS}]. "
            f"Got {bins!r} instead."
        )


def reliability_table(y: np.ndarray, proba: np.ndarray, bins: int) -> pd.DataFrame:
    """:func:`~taxonomist.models.metrics.reliability` over ``bins`` equal-width bins as a
    table: the bin's index, the mean prediction, how often it happened, the rows in it (empty
    bins left out). A calibrated model's ``observed`` is close to its ``mean_predicted``."""
    points = reliability(np.asarray(y), proba, bins)
    mean = np.asarray(points["mean_predicted"], dtype=np.float64)
    # a bin's mean lies inside it, so it names the bin (1.0 belongs to the last one)
    index = np.minimum((mean * bins).astype(int), bins - 1)
    return pd.DataFrame(
        {
            "bin": index,
            "mean_predicted": mean,
            "observed": points["observed"],
            "count": np.asarray(points["count"]).astype(int),
        }
    )


def roc_table(y: np.ndarray, proba: np.ndarray) -> pd.DataFrame:
    """The ROC curve (``fpr``, ``tpr``): of the second class for two classes, micro-averaged
    over the classes (every row x class a decision) for more; empty when the rows hold one
    class only."""
    from sklearn.metrics import roc_curve

    y = np.asarray(y)
    if proba.shape[1] == 2:
        positive, score = y == 1, proba[:, 1]
    else:
        positive = (y[:, None] == np.arange(proba.shape[1])[None, :]).ravel()
        score = proba.ravel()
    if positive.all() or not positive.any():
        return pd.DataFrame({"fpr": [], "tpr": []})
    fpr, tpr, _ = roc_curve(positive, score)
    return pd.DataFrame({"fpr": fpr, "tpr": tpr})
