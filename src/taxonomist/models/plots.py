"""Plots saved with every trained model: confusion matrix, per-class F1, reliability, the
optimisation history and hyper-parameter importances (PNG, drawn with matplotlib's Agg backend)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import optuna

logger = logging.getLogger(__name__)
MAX_CLASSES_SHOWN = 30


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_matrix_plot(matrix: list[list[int]], classes: list[str], path: Path) -> Path:
    plt = _pyplot()
    cm = np.asarray(matrix, dtype=float)
    order = np.argsort(-cm.sum(axis=1))[:MAX_CLASSES_SHOWN]
    cm = cm[np.ix_(order, order)]
    norm = cm / np.clip(cm.sum(axis=1, keepdims=True), 1, None)
    labels = [str(classes[i])[:20] for i in order]
    size = max(5.0, 0.35 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (row-normalised, cross-validated)")
    if len(labels) <= 12:
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(
                    j,
                    i,
                    int(cm[i, j]),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def per_class_f1_plot(per_class: dict[str, dict[str, float]], path: Path) -> Path:
    plt = _pyplot()
    items = sorted(per_class.items(), key=lambda kv: kv[1]["f1"])[: MAX_CLASSES_SHOWN * 2]
    fig, ax = plt.subplots(figsize=(7, max(3.0, 0.25 * len(items) + 1)))
    ax.barh([k[:25] for k, _ in items], [v["f1"] for _, v in items], color="#4C72B0")
    for i, (_, v) in enumerate(items):
        ax.text(v["f1"] + 0.01, i, f"n={v['support']}", va="center", fontsize=7)
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("F1 (cross-validated)")
    ax.set_title("F1 per class")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def reliability_plot(points: dict[str, list[float]], binary: bool, ece: float, path: Path) -> Path:
    """The reliability diagram of :func:`taxonomist.models.metrics.reliability`'s points: on
    the diagonal a predicted 20 % happens 20 % of the time; the bars show where the rows are."""
    plt = _pyplot()
    fig, (ax, hist) = plt.subplots(
        2, 1, figsize=(5.5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ax.plot([0, 1], [0, 1], color="#999999", lw=1, ls="--", label="perfectly calibrated")
    ax.plot(points["mean_predicted"], points["observed"], "o-", color="#4C72B0", label="model")
    ax.set_ylabel("observed positive rate" if binary else "accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"Reliability (cross-validated), ECE {ece:.4f}")
    ax.legend(loc="upper left", fontsize=8)
    hist.bar(points["mean_predicted"], points["count"], width=1 / 20, color="#4C72B0")
    hist.set_yscale("log")
    hist.set_ylabel("rows")
    hist.set_xlabel("predicted probability of the positive class" if binary else "confidence")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def training_curve_plot(curves: dict[str, list[dict[str, float]]], path: Path) -> Path:
    """Loss (training and validation) and validation macro-F1 per epoch of each member
    trained by epochs; the best epoch, whose weights were kept, is marked."""
    plt = _pyplot()
    fig, (loss_ax, f1_ax) = plt.subplots(1, 2, figsize=(9, 3.6))
    for name, history in curves.items():
        epochs = [h["epoch"] for h in history]
        line = loss_ax.plot(epochs, [h["train_loss"] for h in history], "o-", label=f"{name} train")
        if "valid_loss" in history[0]:
            color = line[0].get_color()
            valid = [h["valid_loss"] for h in history]
            loss_ax.plot(epochs, valid, "s--", color=color, label=f"{name} validation")
            best = int(np.argmin(valid))
            loss_ax.scatter([epochs[best]], [valid[best]], s=120, facecolors="none", color=color)
            f1_ax.plot(epochs, [h["valid_macro_f1"] for h in history], "s--", color=color)
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("cross-entropy")
    loss_ax.set_title("Loss (circled: the epoch kept)")
    loss_ax.legend(fontsize=7)
    f1_ax.set_xlabel("epoch")
    f1_ax.set_ylabel("macro-F1")
    f1_ax.set_title("Validation macro-F1")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def history_plot(study: optuna.Study, metric: str, greater_is_better: bool, path: Path) -> Path:
    plt = _pyplot()
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    fig, ax = plt.subplots(figsize=(7, 4))
    if done:
        xs = [t.number for t in done]
        ys = [-t.value if greater_is_better else t.value for t in done]  # type: ignore[operator]
        families = sorted({t.params.get("family", "?") for t in done})
        for fam in families:
            pts = [
                (x, y)
                for x, y, t in zip(xs, ys, done, strict=True)
                if t.params.get("family") == fam
            ]
            ax.scatter(*zip(*pts, strict=True), label=fam, s=18)
        values = np.asarray(ys, dtype=float)
        best = np.maximum.accumulate(values) if greater_is_better else np.minimum.accumulate(values)
        ax.step(xs, best, where="post", color="black", lw=1, label="best so far")
        ax.legend(fontsize=7)
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.set_title("Optimisation history")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def param_importances(study: optuna.Study, family: str) -> dict[str, float]:
    """fANOVA importances of ``family``'s hyper-parameters over its completed trials."""
    trials = [
        t
        for t in study.trials
        if t.state == optuna.trial.TrialState.COMPLETE and t.params.get("family") == family
    ]
    names = sorted({p for t in trials for p in t.params if p.startswith(f"{family}.")})
    if len(trials) < 3 or not names:
        return {}
    sub = optuna.create_study(direction=study.direction)
    sub.add_trials([t for t in trials if all(n in t.params for n in names)])
    try:
        imp = optuna.importance.get_param_importances(
            sub,
            params=names,
            evaluator=optuna.importance.FanovaImportanceEvaluator(n_trees=32, seed=0),
        )
    except (RuntimeError, ValueError) as exc:
        logger.info("no importances for %s: %s", family, exc)
        return {}
    return {k.split(".", 1)[1]: float(v) for k, v in imp.items()}


def importance_plot(importances: dict[str, float], family: str, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if importances:
        items = sorted(importances.items(), key=lambda kv: kv[1])
        ax.barh([k for k, _ in items], [v for _, v in items], color="#55A868")
        ax.set_xlabel("importance (fANOVA)")
    else:
        ax.text(0.5, 0.5, "too few trials to estimate importances", ha="center")
        ax.set_axis_off()
    ax.set_title(f"Hyper-parameter importances: {family}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
