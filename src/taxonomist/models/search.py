"""Search model families and hyper-parameters with Optuna under a time or trial budget.

Each trial picks a family and its parameters (TPE), fits it on every validation fold of the
cached feature blocks, reports the running score after each fold (so the median pruner stops
hopeless trials early) and keeps its out-of-fold probabilities for ensemble selection.
The search stops early enough to leave time for the final refit of the ensemble.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from taxonomist.features.build import FeatureBlocks, stack_blocks
from taxonomist.models.calibration import apply_temperature, fit_temperature
from taxonomist.models.candidates import (
    FAMILIES,
    Family,
    Task,
    default_params_as_trial,
    to_frame,
)
from taxonomist.models.cost import BATCH_ROWS, Cost, measure
from taxonomist.models.ensemble import combination_seconds
from taxonomist.models.linear import DeadlineReached
from taxonomist.models.metrics import Metric

logger = logging.getLogger(__name__)

Folds = list[tuple[np.ndarray, np.ndarray]]
KEEP_TOP = 30
CHEAP_FIRST = [
    "complement_nb",
    "logreg",
    "linear_svm",
    "nb_svm",
    "ovr_cascade",
    "lightgbm",
    # Full-batch L-BFGS over every pair of fields: cheap on thousands of rows, 20 s a fold on
    # 270k clicks, where LightGBM must have had its turn first.
    "fm",
    "embed",
    "catboost",
    # Fine-tuning a transformer: tens of seconds a fold on thousands of rows on a CPU.
    "hybrid",
]
# A family never run yet, priced from one that ran before it: NB-SVM fits the linear SVM's
# one-vs-rest problems on rescaled features, which converge ~2-3x slower (bench/families.py:
# 85 s against 30 s on 18k reviews x 20 classes).
# The cascade fits a linear SVM on each of its three inner folds, then on all rows.
SLOWER_THAN = {"nb_svm": ("linear_svm", 2.5), "ovr_cascade": ("linear_svm", 4.0)}
ENSEMBLE_POOL = 8  # best trials the ensemble draws from; their refit time is reserved


@dataclass
class TrialRecord:
    """One finished trial: its family, parameters, cross-validated score and predictions."""

    number: int
    family: str
    params: dict[str, Any]
    score: float
    oof: np.ndarray  # probabilities for the validation rows, already temperature-scaled
    temperature: float
    fold_seconds: float  # mean time to fit one fold
    cost: Cost = field(default_factory=Cost)  # the model's own prediction cost (no features)


@dataclass
class Progress:
    """What a progress bar shows after each trial."""

    trials_done: int
    trials_pruned: int
    best_score: float | None
    best_family: str | None
    elapsed: float
    time_budget: float | None
    n_trials: int | None
    phase: str = "search"

    @property
    def time_left(self) -> float | None:
        return None if self.time_budget is None else max(0.0, self.time_budget - self.elapsed)


@dataclass
class SearchResult:
    records: list[TrialRecord]
    study: optuna.Study
    folds: Folds
    valid_idx: np.ndarray
    protocol: dict[str, Any]
    pruned: int = 0
    skipped_families: dict[str, str] = field(default_factory=dict)


def ensemble_pool(records: list[TrialRecord], metric: Metric) -> list[TrialRecord]:
    """The trials the ensemble may draw from: the best of every family that scores within 3 %
    of the best trial first, then the next best overall, :data:`ENSEMBLE_POOL` in all.

    Taking the top trials alone gives near-copies of one family (165 trials on Avazu: the top
    six were all LightGBM, which held-out data punished) and nothing to blend.
    """
    ranked = sorted(records, key=lambda r: (metric.loss(r.score), r.number))
    if not ranked:
        return []
    best = ranked[0].score
    pool: list[TrialRecord] = []
    for r in ranked:
        # A family joins only when it is close to the best: greedy selection on a noisy score
        # otherwise gives a clearly weaker family weight (app store: LightGBM at 0.55 macro-F1
        # beside an SVM at 0.63 took a third of the ensemble and cost 0.04 on held-out data).
        close = abs(r.score - best) <= 0.03 * max(abs(best), 1e-9)
        if close and r.family not in {p.family for p in pool}:
            pool.append(r)
    for r in ranked:
        if len(pool) >= ENSEMBLE_POOL:
            break
        if r not in pool:
            pool.append(r)
    return sorted(pool[:ENSEMBLE_POOL], key=lambda r: (metric.loss(r.score), r.number))


def choose_folds(
    y: np.ndarray, seed: int, times: np.ndarray | None = None
) -> tuple[Folds, dict[str, Any]]:
    """Stratified k-fold for small and medium data, a stratified holdout for large data;
    with ``times`` (sortable, one per row) forward chaining: each fold trains on earlier
    rows and validates on the next block of time (see :func:`time_folds`)."""
    if times is not None:
        folds = time_folds(times, n_folds=1 if len(y) > 60_000 else 3)
        if folds is not None:
            return folds, {"kind": "time_forward", "k": len(folds), "seed": seed}
    n = len(y)
    if n > 60_000:
        test_size = min(0.2, 20_000 / n)
        train, valid = train_test_split(
            np.arange(n), test_size=test_size, stratify=y, random_state=seed
        )
        return [(np.sort(train), np.sort(valid))], {
            "kind": "holdout",
            "test_size": test_size,
            "seed": seed,
        }
    k = 5 if n <= 15_000 else 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # classes smaller than k: reported already
        folds = list(StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(n), y))
    return folds, {"kind": "stratified_kfold", "k": k, "seed": seed}


def time_folds(times: np.ndarray, n_folds: int = 3) -> Folds | None:
    """Forward-chaining folds: the rows sorted by time are cut into ``n_folds + 1`` blocks
    of about equal size at changes of time (rows of one hour stay together); fold ``i`` trains
    on blocks ``0..i`` and validates on block ``i + 1``. With one fold the last fifth is the
    validation. ``None`` when there are fewer than two distinct times (nothing to order)."""
    times = np.asarray(times)
    values, inverse = np.unique(times, return_inverse=True)
    if len(values) < 2:
        return None
    n_folds = min(n_folds, len(values) - 1)
    counts = np.bincount(inverse)
    cumulative = np.cumsum(counts) / len(times)
    shares = [0.2 + 0.8 * (i / n_folds) for i in range(n_folds)] if n_folds > 1 else [0.8]
    # The first time whose cumulative share reaches each cut: a validation block starts there.
    last = len(values) - 2
    cuts = sorted({min(int(np.searchsorted(cumulative, s)), last) + 1 for s in shares})
    folds = []
    for i, cut in enumerate(cuts):
        end = cuts[i + 1] if i + 1 < len(cuts) else len(values)
        train = np.flatnonzero(inverse < cut)
        valid = np.flatnonzero((inverse >= cut) & (inverse < end))
        if len(train) and len(valid):
            folds.append((train, valid))
    return folds or None


def proba_full(model: Any, X: Any, n_classes: int) -> np.ndarray:
    """``predict_proba`` with a column for every class, also those missing from training."""
    p = np.asarray(model.predict_proba(X), dtype=np.float32)
    classes = np.asarray(model.classes_)
    if len(classes) == n_classes:
        return p
    out = np.zeros((p.shape[0], n_classes), dtype=np.float32)
    out[:, classes.astype(int)] = p
    return out


def family_matrix(family: Family, outputs: dict[str, Any]) -> Any:
    names = tuple(b for b in family.blocks if b in outputs)
    if family.layout == "frame":
        return to_frame(outputs, names)
    return stack_blocks(outputs, names, as_sparse=family.layout == "sparse")


def _rows(X: Any, idx: np.ndarray) -> Any:
    return X.iloc[idx].reset_index(drop=True) if isinstance(X, pd.DataFrame) else X[idx]


class ModelSearch:
    """Runs the study; see the module docstring."""

    def __init__(
        self,
        df: pd.DataFrame,
        y: np.ndarray,
        blocks: FeatureBlocks,
        task: Task,
        metric: Metric,
        folds: Folds,
        families: list[str],
        *,
        deadline: float | None,
        n_trials: int | None,
        started: float,
        time_budget: float | None,
        on_progress: Callable[[Progress], None] | None = None,
        block_costs: dict[str, float] | None = None,
    ) -> None:
        self.df, self.y, self.blocks, self.task, self.metric = df, y, blocks, task, metric
        self.folds = folds
        self.valid_idx = np.concatenate([v for _, v in folds])
        self.families = families
        self.deadline = deadline
        self.n_trials = n_trials
        self.started = started
        self.time_budget = time_budget
        self.on_progress = on_progress
        self.block_costs = block_costs or {}
        self.records: list[TrialRecord] = []
        self.family_fold_seconds: dict[str, list[float]] = {}
        self.pruned = 0
        self._matrices: dict[str, Any] = {}

    # -- time accounting -------------------------------------------------------------------
    def refit_reserve(self) -> float:
        """Seconds to keep for choosing how to combine the likely ensemble members and
        refitting them on all rows."""
        top = ensemble_pool(self.records, self.metric)
        per_fit = sum(r.fold_seconds for r in top) * (1 + 1 / max(len(self.folds), 2))
        choose = combination_seconds(len(self.valid_idx), self.task.n_classes, len(top))
        return 2.0 + 1.2 * per_fit + choose

    def expected_trial_seconds(self, family: str) -> float:
        """Median past cost of the family, or the cost of fitting its blocks if never run."""
        times = self.family_fold_seconds.get(family)
        if times:
            return float(np.median(times)) * len(self.folds)
        like = SLOWER_THAN.get(family)
        if like and self.family_fold_seconds.get(like[0]):
            return float(np.median(self.family_fold_seconds[like[0]])) * len(self.folds) * like[1]
        return sum(
            self.block_cost(b)
            for b in FAMILIES[family].blocks
            if b in self.blocks.specs and b not in self.blocks.train_outputs
        )

    def block_cost(self, block: str) -> float:
        """Estimated seconds to fit a block not fitted yet."""
        if block == "text_oof":
            # One SGD linear model per fold plus one on all rows, on the text alone: bounded
            # by the logistic-regression family's folds (SGD too, on a few more columns).
            sgd = self.family_fold_seconds.get("logreg") or self.family_fold_seconds.get(
                "linear_svm"
            )
            return float(np.median(sgd)) * (len(self.folds) + 1) if sgd else 0.0
        if block == "text_svd":
            # Randomized SVD passes over the TF-IDF non-zeros as often as its power iterations;
            # measured ~3x the TF-IDF fit (reviews: 10.0 s after 3.5 s).
            return 3.0 * self.blocks.fit_seconds.get("text", 0.0)
        return self.block_costs.get(block, 0.0)

    def _time_left(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.perf_counter()

    # -- the objective ----------------------------------------------------------------------
    def _matrix(self, family: Family) -> Any:
        if family.name not in self._matrices:
            outputs = {
                b: self.blocks.fit_block(b, self.df, self.y)
                for b in family.blocks
                if b in self.blocks.specs
            }
            self._matrices[family.name] = family_matrix(family, outputs)
        return self._matrices[family.name]

    def objective(self, trial: optuna.Trial) -> float:
        name = trial.suggest_categorical("family", self.families)
        family = FAMILIES[name]
        params = family.suggest(trial, self.task)
        if self.deadline is not None:
            needed = self.expected_trial_seconds(name) + self.refit_reserve()
            if needed > self._time_left():
                raise optuna.TrialPruned(f"{name} needs ~{needed:.0f}s; not enough time left")
        X = self._matrix(family)
        # No single trial may take more than 30% of the time left when it starts (60% while
        # fewer than three models exist), so one slow family (CatBoost on many classes)
        # cannot starve the rest of the search.
        # The first model always gets to finish: a search must return something.
        trial_deadline = None
        if self.deadline is not None and self.records:
            share = 0.3 if len(self.records) >= 3 else 0.6
            trial_deadline = time.perf_counter() + share * max(
                self._time_left() - self.refit_reserve(), 0.0
            )
        k = self.task.n_classes
        oof = np.zeros((len(self.y), k), dtype=np.float32)
        fold_times = []
        for step, (train, valid) in enumerate(self.folds):
            if self._time_left() < self.refit_reserve() * 0.5 or (
                trial_deadline is not None and time.perf_counter() > trial_deadline
            ):
                raise optuna.TrialPruned("time budget reached")
            start = time.perf_counter()
            model = family.build(params, self.task)
            kwargs = {}
            if family.accepts_deadline and trial_deadline is not None:
                kwargs["deadline"] = trial_deadline
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.fit(_rows(X, train), self.y[train], **kwargs)
            except DeadlineReached as exc:
                self.family_fold_seconds.setdefault(name, []).append(
                    (time.perf_counter() - start) * 2
                )
                raise optuna.TrialPruned(str(exc)) from exc
            oof[valid] = proba_full(model, _rows(X, valid), k)
            fold_times.append(time.perf_counter() - start)
            self.family_fold_seconds.setdefault(name, []).append(fold_times[-1])
            seen = np.concatenate([v for _, v in self.folds[: step + 1]])
            running = self.metric(self.y[seen], oof[seen])
            trial.report(self.metric.loss(running), step)
            if step < len(self.folds) - 1 and trial.should_prune():
                raise optuna.TrialPruned(f"fold {step + 1} score {running:.4f}")
        # What this model costs to predict, on the last fold's rows: the ensemble selection
        # keeps the prediction-cost budget with it.
        cost = measure(
            lambda rows: model.predict_proba(rows),
            _rows(X, valid[:BATCH_ROWS]),
            _rows(X, valid[:1]),
        )
        valid_oof = oof[self.valid_idx]
        y_valid = self.y[self.valid_idx]
        temperature = fit_temperature(valid_oof, y_valid)
        valid_oof = apply_temperature(valid_oof, temperature)
        score = self.metric(y_valid, valid_oof)
        self.records.append(
            TrialRecord(
                trial.number,
                name,
                params,
                score,
                valid_oof,
                temperature,
                float(np.mean(fold_times)),
                cost,
            )
        )
        self.records.sort(key=lambda r: (self.metric.loss(r.score), r.number))
        # Keep the best trials, and the best of every family (the ensemble's diversity).
        best_of: dict[str, TrialRecord] = {}
        for r in self.records:
            best_of.setdefault(r.family, r)
        self.records = [
            r for i, r in enumerate(self.records) if i < KEEP_TOP or best_of[r.family] is r
        ]
        trial.set_user_attr("fold_seconds", float(np.mean(fold_times)))
        return self.metric.loss(score)

    # -- running ----------------------------------------------------------------------------
    def _callback(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state == optuna.trial.TrialState.PRUNED:
            self.pruned += 1
        best = self.records[0] if self.records else None
        if self.on_progress:
            self.on_progress(
                Progress(
                    trials_done=len(study.trials),
                    trials_pruned=self.pruned,
                    best_score=best.score if best else None,
                    best_family=best.family if best else None,
                    elapsed=time.perf_counter() - self.started,
                    time_budget=self.time_budget,
                    n_trials=self.n_trials,
                )
            )
        if self.deadline is None:
            return
        left = self._time_left() - self.refit_reserve()
        cheapest = min((self.expected_trial_seconds(f) for f in self.families), default=0.0)
        if left <= 0 or (self.records and cheapest > left):
            study.stop()

    def run(self) -> SearchResult:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(
            seed=self.task.seed,
            multivariate=True,
            group=True,
            n_startup_trials=len(self.families) + 4,
            warn_independent_sampling=False,
        )
        pruner = optuna.pruners.MedianPruner(
            n_startup_trials=len(self.families) + 2, n_warmup_steps=0
        )
        study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner)
        # Cheapest first: a usable model within seconds, and measured fold times that let the
        # time guard judge the expensive families before they start.
        for name in sorted(self.families, key=CHEAP_FIRST.index):
            study.enqueue_trial(default_params_as_trial(FAMILIES[name], self.task))
        timeout = None if self.deadline is None else max(self._time_left(), 1.0)
        # With a time budget the loop ends through the callback; n_trials caps it otherwise.
        study.optimize(
            self.objective,
            n_trials=self.n_trials,
            timeout=timeout,
            callbacks=[self._callback],
            catch=(MemoryError,),
        )
        return SearchResult(self.records, study, self.folds, self.valid_idx, {})
