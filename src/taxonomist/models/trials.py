"""One trial's folds, and running trials on a Dask cluster's workers.

:func:`fit_folds` fits a family with given parameters on every validation fold of its feature
matrix and returns the out-of-fold probabilities, the fold times and the prediction cost:
the search runs it in its own process, or, inside a job on a cluster of several workers, on
the workers through :class:`ClusterTrials`. The study stays in the job's process (Optuna's
ask and tell): the sampler sees every result, the matrices are sent to each worker once, and
only the out-of-fold probabilities come back.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from taxonomist.models.candidates import FAMILIES, Task
from taxonomist.models.cost import BATCH_ROWS, Cost, measure
from taxonomist.models.linear import DeadlineReached
from taxonomist.models.metrics import Metric

Folds = list[tuple[np.ndarray, np.ndarray]]


class FoldsStopped(Exception):
    """A trial stopped before its last fold: out of time, or pruned. ``seconds``: what a fold
    of this family is now known to cost at least (a fold cut off by its deadline)."""

    def __init__(
        self, reason: str, seconds: float | None = None, fold_times: list[float] | None = None
    ) -> None:
        super().__init__(reason)
        self.seconds, self.fold_times = seconds, fold_times or []


@dataclass
class FoldFit:
    oof: np.ndarray  # (rows, classes), zero outside the validation folds
    fold_times: list[float]
    cost: Cost


def proba_full(model: Any, X: Any, n_classes: int) -> np.ndarray:
    """``predict_proba`` with a column for every class, also those missing from training."""
    p = np.asarray(model.predict_proba(X), dtype=np.float32)
    classes = np.asarray(model.classes_)
    if len(classes) == n_classes:
        return p
    out = np.zeros((p.shape[0], n_classes), dtype=np.float32)
    out[:, classes.astype(int)] = p
    return out


def rows(X: Any, idx: np.ndarray) -> Any:
    return X.iloc[idx].reset_index(drop=True) if isinstance(X, pd.DataFrame) else X[idx]


def fit_folds(
    X: Any,
    y: np.ndarray,
    folds: Folds,
    family_name: str,
    params: dict[str, Any],
    task: Task,
    metric: Metric,
    *,
    deadline: float | None = None,
    stop: Callable[[], str | None] | None = None,
    report: Callable[[float, int], bool] | None = None,
) -> FoldFit:
    """Fit ``family_name`` with ``params`` on each fold. ``deadline`` (``perf_counter``): the
    trial's own, given to families that can stop mid-fit; ``stop()`` says why not to start the
    next fold (None: go on); ``report(loss so far, fold)`` returns True to prune. Raises
    :class:`FoldsStopped`."""
    family = FAMILIES[family_name]
    k = task.n_classes
    oof = np.zeros((len(y), k), dtype=np.float32)
    fold_times: list[float] = []
    model: Any = None
    valid = folds[0][1]
    for step, (train, valid) in enumerate(folds):
        why = stop() if stop is not None else None
        if why is None and deadline is not None and time.perf_counter() > deadline:
            why = "time budget reached"
        if why is not None:
            raise FoldsStopped(why, fold_times=fold_times)
        start = time.perf_counter()
        model = family.build(params, task)
        kwargs = {"deadline": deadline} if family.accepts_deadline and deadline else {}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(rows(X, train), y[train], **kwargs)
        except DeadlineReached as exc:
            raise FoldsStopped(str(exc), (time.perf_counter() - start) * 2, fold_times) from exc
        oof[valid] = proba_full(model, rows(X, valid), k)
        fold_times.append(time.perf_counter() - start)
        if report is not None:
            seen = np.concatenate([v for _, v in folds[: step + 1]])
            running = metric(y[seen], oof[seen])
            if report(metric.loss(running), step) and step < len(folds) - 1:
                raise FoldsStopped(f"fold {step + 1} score {running:.4f}", fold_times=fold_times)
    # What this model costs to predict, on the last fold's rows: the ensemble selection keeps
    # the prediction-cost budget with it.
    cost = measure(
        lambda r: model.predict_proba(r), rows(X, valid[:BATCH_ROWS]), rows(X, valid[:1])
    )
    return FoldFit(oof, fold_times, cost)


def fit_folds_remote(
    X: Any,
    y: np.ndarray,
    folds: Folds,
    family_name: str,
    params: dict[str, Any],
    task: Task,
    metric: Metric,
    seconds: float | None,
) -> FoldFit | FoldsStopped:
    """:func:`fit_folds` as a Dask task: its time allowance in seconds (another machine's clock
    is not ours), and a stopped trial returned rather than raised (an error is a failure)."""
    deadline = None if seconds is None else time.perf_counter() + seconds
    try:
        return fit_folds(X, y, folds, family_name, params, task, metric, deadline=deadline)
    except FoldsStopped as stopped:
        return stopped


class ClusterTrials:
    """Trials on the workers of the Dask cluster this job runs on: at most ``slots`` at once
    (one a worker thread); the data is sent once per matrix. See :func:`cluster_trials`."""

    def __init__(self, client: Any, slots: int) -> None:
        self.client, self.slots = client, slots
        self._sent: dict[str, Any] = {}

    def send(self, key: str, value: Any) -> Any:
        """``value`` on the cluster once (a future every task can take as an argument)."""
        if key not in self._sent:
            # On every worker (each runs trials on it; on one only, the scheduler would keep
            # the trials where it is). A one-item list: scatter sends a list's items apart.
            (self._sent[key],) = self.client.scatter([value], broadcast=True, hash=False)
        return self._sent[key]

    def submit(self, *args: Any) -> Any:
        return self.client.submit(fit_folds_remote, *args, pure=False)

    def close(self) -> None:
        for future in self._sent.values():
            future.release()
        self._sent.clear()


@contextmanager
def cluster_trials() -> Iterator[ClusterTrials | None]:
    """A :class:`ClusterTrials` while this code runs in a Dask task on a cluster of more than
    one worker thread (a training job on a cluster), else None. The task leaves its worker
    thread meanwhile (``worker_client``), so that thread runs trials too."""
    try:
        from distributed import get_client, get_worker, worker_client
    except ImportError:
        yield None
        return
    try:
        get_worker()
        info = get_client().scheduler_info(n_workers=-1)
    except ValueError:  # not in a worker
        yield None
        return
    threads = sum(w.get("nthreads", 1) for w in info.get("workers", {}).values())
    if threads < 2:
        yield None
        return
    with worker_client(separate_thread=True) as client:
        runner = ClusterTrials(client, threads)
        try:
            yield runner
        finally:
            runner.close()
