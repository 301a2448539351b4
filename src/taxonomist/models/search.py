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
from taxonomist.models.cost import Cost
from taxonomist.models.ensemble import combination_seconds
from taxonomist.models.metrics import Metric
from taxonomist.models.trials import (
    ClusterTrials,
    FoldFit,
    FoldsStopped,
    cluster_trials,
    fit_folds,
)

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
# A family's best trial joins the pool when it scores within this share of the best trial.
FAMILY_MARGIN = 0.15


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
    """The trials the ensemble may draw from: the best of every family that scores within
    :data:`FAMILY_MARGIN` of the best trial first, then the next best overall,
    :data:`ENSEMBLE_POOL` in all.

    Taking the top trials alone gives near-copies of one family (165 trials on Avazu: the top
    six were all LightGBM, which held-out data punished) and nothing to blend. A weaker family
    is often the one that helps: its errors are not the leader's (Russian topics, held out:
    NB-SVM copies 0.755, with the best complement NB, linear SVM, logistic regression and
    LightGBM beside them 0.776). Whether a blend beats the best model alone is decided on
    rows the blend was not chosen on (:func:`~taxonomist.models.ensemble.choose_combination`),
    so the margin only keeps hopeless families out.
    """
    ranked = sorted(records, key=lambda r: (metric.loss(r.score), r.number))
    if not ranked:
        return []
    best = ranked[0].score
    pool: list[TrialRecord] = []
    for r in ranked:
        close = abs(r.score - best) <= FAMILY_MARGIN * max(abs(best), 1e-9)
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


def family_matrix(family: Family, outputs: dict[str, Any]) -> Any:
    names = tuple(b for b in family.blocks if b in outputs)
    if family.layout == "frame":
        return to_frame(outputs, names)
    return stack_blocks(outputs, names, as_sparse=family.layout == "sparse")


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

    def _guard(self, name: str) -> None:
        """Prune a trial of ``name`` that cannot finish before the refit must start."""
        if self.deadline is not None:
            needed = self.expected_trial_seconds(name) + self.refit_reserve()
            if needed > self._time_left():
                raise optuna.TrialPruned(f"{name} needs ~{needed:.0f}s; not enough time left")

    def _trial_seconds(self) -> float | None:
        """What one trial may take: no more than 30% of the time left when it starts (60%
        while fewer than three models exist), so one slow family (CatBoost on many classes)
        cannot starve the rest of the search. The first model always gets to finish: a
        search must return something."""
        if self.deadline is None or not self.records:
            return None
        share = 0.3 if len(self.records) >= 3 else 0.6
        return share * max(self._time_left() - self.refit_reserve(), 0.0)

    def _stop_folds(self) -> str | None:
        if self._time_left() < self.refit_reserve() * 0.5:
            return "time budget reached"
        return None

    def objective(self, trial: optuna.Trial) -> float:
        name = trial.suggest_categorical("family", self.families)
        params = FAMILIES[name].suggest(trial, self.task)
        self._guard(name)
        X = self._matrix(FAMILIES[name])
        seconds = self._trial_seconds()

        def report(loss: float, step: int) -> bool:
            trial.report(loss, step)
            return trial.should_prune()

        try:
            fit = fit_folds(
                X,
                self.y,
                self.folds,
                name,
                params,
                self.task,
                self.metric,
                deadline=None if seconds is None else time.perf_counter() + seconds,
                stop=self._stop_folds,
                report=report,
            )
        except FoldsStopped as stopped:
            self._stopped(name, stopped)
            raise optuna.TrialPruned(str(stopped)) from None
        return self.metric.loss(self._record(trial, name, params, fit))

    def _stopped(self, name: str, stopped: FoldsStopped) -> None:
        times = self.family_fold_seconds.setdefault(name, [])
        times.extend(stopped.fold_times)
        if stopped.seconds is not None:
            times.append(stopped.seconds)

    def _record(
        self, trial: optuna.Trial, name: str, params: dict[str, Any], fit: FoldFit
    ) -> float:
        """Keep a finished trial's out-of-fold probabilities (temperature-calibrated) and
        timings; its score."""
        self.family_fold_seconds.setdefault(name, []).extend(fit.fold_times)
        trial.set_user_attr("fold_seconds", float(np.mean(fit.fold_times)))
        valid_oof = fit.oof[self.valid_idx]
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
                float(np.mean(fit.fold_times)),
                fit.cost,
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
        return score

    # -- running ----------------------------------------------------------------------------
    def _callback(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self._report(study, trial):
            study.stop()

    def _report(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        """Count an ended trial, report progress; whether the search should stop."""
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
            return False
        left = self._time_left() - self.refit_reserve()
        cheapest = min((self.expected_trial_seconds(f) for f in self.families), default=0.0)
        return left <= 0 or bool(self.records and cheapest > left)

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
        with cluster_trials() as cluster:
            if cluster is not None:  # a job on a cluster of several workers: trials on each
                self._run_on(cluster, study)
                return SearchResult(self.records, study, self.folds, self.valid_idx, {})
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

    def _run_on(self, cluster: ClusterTrials, study: optuna.Study) -> None:
        """The search with its trials on the cluster's workers: ask for a trial whenever a
        worker thread is free, send it there, tell the study each result as it comes back.
        Trials report no fold to the pruner (they run elsewhere); the time guard, the trial
        allowance and the stop rule are the ones of the search in one process."""
        from distributed import wait

        pruned = optuna.trial.TrialState.PRUNED
        running: dict[Any, tuple[optuna.Trial, str, dict[str, Any]]] = {}
        y, folds = cluster.send("y", self.y), cluster.send("folds", self.folds)
        asked, stop = 0, False
        while True:
            while not stop and len(running) < cluster.slots:
                if self.n_trials is not None and asked >= self.n_trials:
                    break
                trial, asked = study.ask(), asked + 1
                name = trial.suggest_categorical("family", self.families)
                params = FAMILIES[name].suggest(trial, self.task)
                try:
                    self._guard(name)
                except optuna.TrialPruned:
                    stop = self._report(study, study.tell(trial, state=pruned))
                    continue
                X = cluster.send(f"matrix:{name}", self._matrix(FAMILIES[name]))
                args = (X, y, folds, name, params, self.task, self.metric, self._trial_seconds())
                running[cluster.submit(*args)] = (trial, name, params)
            if not running:
                return
            timeout = None if self.deadline is None else self._time_left() + 30
            done, _ = wait(list(running), timeout=timeout, return_when="FIRST_COMPLETED")
            if not done:  # far past the deadline: what still runs is given up
                for future, (trial, _, _) in running.items():
                    future.cancel()
                    study.tell(trial, state=pruned)
                return
            for future in done:
                trial, name, params = running.pop(future)
                try:
                    fit = future.result()
                except MemoryError:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    continue
                if isinstance(fit, FoldsStopped):
                    self._stopped(name, fit)
                    ended = study.tell(trial, state=pruned)
                else:
                    ended = study.tell(
                        trial, self.metric.loss(self._record(trial, name, params, fit))
                    )
                stop = self._report(study, ended) or stop
