"""What the registry takes: a trained model and what to log beside it, in plain data.

The registry knows nothing of how a model was trained; ``taxonomist.models`` builds a
:class:`Candidate` from its training result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Trial:
    """One search trial, logged as a nested MLflow run."""

    number: int
    state: str  # COMPLETE or PRUNED
    params: dict[str, Any]
    score: float | None
    fold_seconds: float = 0.0


@dataclass
class Candidate:
    """A model to register as a new version.

    ``model`` must be picklable and have ``predict_frame(DataFrame) -> DataFrame`` (the pyfunc
    flavour calls it). Versions of one name are compared on ``primary`` only when their
    ``protocol`` (rows, folds, metric) is the same.
    """

    model: Any
    primary: float
    metric: str
    greater_is_better: bool
    protocol: dict[str, Any]
    input_example: Any  # a one-row DataFrame with the feature columns
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] | None = None  # the TrainConfig that produced it (JSON)
    report: Path | None = None  # a folder logged as the run's ``report/`` artifacts
    trials: list[Trial] = field(default_factory=list)
    run_name: str | None = None
    # DataFrames logged as ``data/{key}.parquet`` (the training table, the drift reference)
    tables: dict[str, Any] = field(default_factory=dict)


@dataclass
class Registration:
    """What :meth:`Registry.register` did."""

    name: str
    version: int
    run_id: str
    promoted: bool
    reason: str
