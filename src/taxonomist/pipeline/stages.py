"""What a DVC project of Taxonomist holds: ``dvc.yaml`` (the stages validate -> train ->
evaluate, each a ``taxonomist`` command) and ``params.yaml`` (the training config under
``train:``). Plain data here; :mod:`taxonomist.pipeline.project` writes them.

The layout inside the project:

- ``data/train<ext>``, ``data/valid<ext>``: the tables, tracked by DVC (``dvc add``)
- ``params.yaml``: ``train:`` the options of ``taxonomist train --config``
- ``reports/validation.json``: what ``taxonomist validate`` found (kept in git)
- ``reports/train.json``: cross-validated scores (DVC metrics, kept in git)
- ``model/``: the exported model (DVC output: cached, pushed)
- ``reports/metrics.json``: scores on the held-out rows (DVC metrics, kept in git)
- ``plots/reliability.csv``, ``plots/roc.csv``: DVC plots (kept in git)
"""

from __future__ import annotations

from typing import Any

from taxonomist.models.config import PARAMS_SECTION

PARAMS_FILE = "params.yaml"
DVC_FILE = "dvc.yaml"
MODEL_DIR = "model"
VALIDATION_REPORT = "reports/validation.json"
TRAIN_METRICS = "reports/train.json"
EVAL_METRICS = "reports/metrics.json"
PLOTS_DIR = "plots"
RELIABILITY_PLOT = f"{PLOTS_DIR}/reliability.csv"
ROC_PLOT = f"{PLOTS_DIR}/roc.csv"
# The options that decide which columns are used and how: what the validate stage checks, so
# an experiment on the budget or the families does not run it again.
DATA_OPTIONS = ("target", "text", "roles", "time_column", "time_format", "ctr")

PARAMS_HEADER = (
    "# The training config of this pipeline: 'taxonomist train --config params.yaml' reads the\n"
    "# '{section}' section. DVC names its options {section}.time_budget, {section}.families ...\n"
    "# Try a change as an experiment: dvc exp run -S {section}.time_budget=60\n"
)


def params_document(options: dict[str, Any]) -> dict[str, Any]:
    """``params.yaml``: the training ``options`` (a config's keys) under ``train:``."""
    return {PARAMS_SECTION: dict(options)}


def dvc_document(
    options: dict[str, Any], train_data: str, valid_data: str | None
) -> dict[str, Any]:
    """``dvc.yaml`` for the training ``options`` (which of them the validate stage follows),
    the training table and, when given, the held-out table (without one: no evaluate stage,
    and the cross-validated scores are the only metrics)."""
    data_params = [f"{PARAMS_SECTION}.{k}" for k in DATA_OPTIONS if k in options]
    stages: dict[str, Any] = {
        "validate": {
            "cmd": (
                f"taxonomist validate {train_data} --config {PARAMS_FILE} "
                f"--report {VALIDATION_REPORT}"
            ),
            "deps": [train_data],
            "params": data_params,
            "outs": [{VALIDATION_REPORT: {"cache": False}}],
        },
        "train": {
            "cmd": (
                f"taxonomist train {train_data} --config {PARAMS_FILE} --export {MODEL_DIR} "
                f"--metrics {TRAIN_METRICS}"
            ),
            "deps": [train_data, VALIDATION_REPORT],
            "params": [PARAMS_SECTION],
            "outs": [MODEL_DIR],
            "metrics": [{TRAIN_METRICS: {"cache": False}}],
        },
    }
    document: dict[str, Any] = {"stages": stages}
    if valid_data is not None:
        stages["evaluate"] = {
            "cmd": (
                f"taxonomist evaluate {MODEL_DIR} {valid_data} --metrics {EVAL_METRICS} "
                f"--plots {PLOTS_DIR}"
            ),
            "deps": [MODEL_DIR, valid_data],
            "metrics": [{EVAL_METRICS: {"cache": False}}],
            "outs": [{RELIABILITY_PLOT: {"cache": False}}, {ROC_PLOT: {"cache": False}}],
        }
        document["plots"] = [
            {
                RELIABILITY_PLOT: {
                    "x": "mean_predicted",
                    "y": "observed",
                    "title": "Reliability on the held-out rows",
                    "x_label": "mean predicted probability",
                    "y_label": "observed frequency",
                }
            },
            {
                ROC_PLOT: {
                    "x": "fpr",
                    "y": "tpr",
                    "title": "ROC on the held-out rows",
                    "x_label": "false positive rate",
                    "y_label": "true positive rate",
                }
            },
        ]
    return document
