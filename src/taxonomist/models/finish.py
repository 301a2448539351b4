"""After the search: ensemble selection within the prediction budget, calibration, and the
refit of the chosen members on all rows inside the time budget."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from taxonomist.data.schema import Schema
from taxonomist.models.calibration import calibrate
from taxonomist.models.candidates import FAMILIES
from taxonomist.models.cost import EnsembleCosts, PredictBudget
from taxonomist.models.ensemble import choose_combination
from taxonomist.models.linear import DeadlineReached
from taxonomist.models.metrics import (
    Metric,
    classification_metrics,
    expected_calibration_error,
    reliability,
)
from taxonomist.models.model import Member, TaxonomistModel, prepare_for_inference
from taxonomist.models.search import ModelSearch, Progress, SearchResult, ensemble_pool

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[Progress], None]
# Seconds kept after the refits for what train() does next (speed checks, drift reference).
REFIT_MARGIN = 1.0
# Families whose refit stopped at the deadline is still a whole model (fewer trees).
PARTIAL_REFIT_OK = frozenset({"lightgbm", "catboost"})


def finish(
    search: ModelSearch,
    result: SearchResult,
    schema: Schema,
    classes: list[Any],
    metric: Metric,
    y: np.ndarray,
    budget: PredictBudget,
    on_progress: ProgressCallback | None,
    started: float,
    time_budget: float | None,
) -> tuple[TaxonomistModel, dict[str, Any], np.ndarray]:
    """Ensemble selection, calibration and the refit of the chosen members on all rows;
    also the out-of-fold predicted class of each validation row."""
    if on_progress:
        on_progress(
            Progress(
                len(result.study.trials),
                search.pruned,
                result.records[0].score,
                result.records[0].family,
                time.perf_counter() - started,
                time_budget,
                search.n_trials,
                phase="refit",
            )
        )
    y_valid = y[result.valid_idx]
    costs = EnsembleCosts(search.blocks, search.df)
    records, allowed, left_out = _affordable(result.records, costs, budget)
    records = ensemble_pool(records, metric)
    combination = choose_combination(
        [r.oof for r in records],
        y_valid,
        metric,
        allowed=None if allowed is None else lambda idx: allowed([records[i] for i in idx]),
        seed=search.task.seed,
    )
    combiner = combination.combiner
    weights = combination.weights
    if combiner is not None:  # the pooled candidates are the members; heaviest refit first
        weights = np.zeros(len(records))
        weights[combination.inputs] = combiner.member_shares() + 1e-9
    members = _refit_members(search, records, weights, y, started, time_budget)
    kept = [r for r in records if any(m.trial is r for m in members)]
    if combiner is not None and len(kept) < len(combination.inputs):
        # A member had no time to refit: the pool is refitted on those that are left.
        combiner = type(combiner)().fit([r.oof for r in kept], y_valid)
        combination.predictions = combiner.combine([r.oof for r in kept])
    if combiner is not None:
        members.sort(key=lambda m: records.index(m.trial))  # the combiner's input order
        for m, share in zip(members, combiner.member_shares(), strict=True):
            m.weight = float(share)
        oof = combination.predictions
    weights = np.array([next((m.weight for m in members if m.trial is r), 0.0) for r in records])
    for m in members:
        m.trial = None  # the search record holds out-of-fold arrays: not part of the model
    if combiner is None:
        oof = sum(w * r.oof for w, r in zip(weights, records, strict=True) if w > 0)
    oof = np.asarray(oof, dtype=np.float32)
    calibration = calibrate(oof, y_valid, search.task.seed, isotonic=metric.name != "roc_auc")
    calibrated = calibration.proba
    metrics = classification_metrics(y_valid, calibrated, [str(c) for c in classes])
    metrics.update(
        primary_metric=metric.name,
        primary=float(metric(y_valid, calibrated)),
        best_single=float(records[0].score),
        best_single_family=records[0].family,
        ece_uncalibrated=expected_calibration_error(y_valid, oof),
        calibration=calibration.kind,
        calibration_log_loss=calibration.scores,
        reliability=reliability(y_valid, calibrated),
        n_trials=len(result.study.trials),
        n_pruned=search.pruned,
        validation=result.protocol.get("kind"),
    )
    # Before the unused blocks are pruned: a trial's cost counts the blocks it used.
    trial_costs = {r.number: costs.of([r]).to_dict() for r in result.records}
    chosen = [r for r, w in zip(records, weights, strict=True) if w > 0]
    estimated = costs.of(chosen).to_dict()
    search.blocks.drop_training_outputs()
    search.blocks.prune(
        {b for m in members for b in FAMILIES[m.family].blocks if b in search.blocks.fitted}
    )
    model = TaxonomistModel(
        schema=schema,
        classes=classes,
        blocks=search.blocks,
        members=members,
        temperature=calibration.temperature,
        calibrator=calibration.calibrator,
        metric=metric.name,
        combiner=combiner,
    )
    prepare_for_inference(model)
    model.info["combination"] = {
        "kind": combination.kind,
        "cross_validated": combination.scores,
    }
    model.info["trials"] = [
        {
            "number": r.number,
            "family": r.family,
            "score": r.score,
            "params": r.params,
            "predict_cost": trial_costs[r.number],
        }
        for r in result.records
    ]
    model.info["predict_cost"] = {
        "budget": budget.describe(),
        "estimated": estimated,
        "left_out": left_out,
    }
    return model, metrics, calibrated.argmax(axis=1)


def _affordable(
    records: list[Any], costs: EnsembleCosts, budget: PredictBudget
) -> tuple[list[Any], Callable[[list[Any]], bool] | None, list[dict[str, Any]]]:
    """The trials whose prediction cost keeps ``budget`` alone, a check for an ensemble of
    them, and what was left out (family, score, cost). When no trial keeps it, the cheapest
    is used alone, with a warning: a model always comes out."""
    ok = [r for r in records if budget.allows(costs.of([r]))]
    left_out = [
        {"trial": r.number, "family": r.family, "score": r.score, **costs.of([r]).to_dict()}
        for r in records
        if r not in ok
    ]
    if left_out:
        families = sorted({d["family"] for d in left_out})
        logger.info(
            "left %d trial(s) (%s) out of the ensemble: they break the prediction budget (%s)",
            len(left_out),
            ", ".join(families),
            budget.describe(),
        )
    if ok:
        return ok, lambda members: budget.allows(costs.of(members)), left_out
    cheapest = min(records, key=lambda r: costs.of([r]).batch_us)
    logger.warning(
        "No model keeps the prediction budget (%s); the cheapest, %s at %s, is used alone. "
        "Loosen --max-predict-ms / --min-rows-per-second to let the others in.",
        budget.describe(),
        cheapest.family,
        costs.of([cheapest]).to_dict(),
    )
    return [cheapest], None, left_out


def _refit_members(
    search: ModelSearch,
    records: list[Any],
    weights: np.ndarray,
    y: np.ndarray,
    started: float,
    time_budget: float | None,
) -> list[Member]:
    """Refit the chosen trials on all rows, heaviest first, inside the budget (+10 %).

    A member whose refit is expected to end past the budget is left out and the weights of
    the rest renormalised. A booster refit still running at the deadline stops adding trees
    and is kept as it is; any other refit cut by the deadline is dropped. The first member
    is always refitted (a model must come out): when the heaviest is expected to overrun,
    the chosen member that is cheapest to refit goes first instead.
    """
    order = sorted((i for i, w in enumerate(weights) if w > 0), key=lambda i: -weights[i])
    end = None if time_budget is None else started + 1.1 * time_budget - REFIT_MARGIN
    refit_factor = (1 + 1 / max(len(search.folds), 2)) * 1.2

    def expected(i: int) -> float:
        return float(records[i].fold_seconds * refit_factor)

    if end is not None and time.perf_counter() + expected(order[0]) > end:
        cheapest = min(order, key=expected)
        order.remove(cheapest)
        order.insert(0, cheapest)
    members: list[Member] = []
    for i in order:
        r = records[i]
        family = FAMILIES[r.family]
        if members and end is not None and time.perf_counter() + expected(i) > end:
            logger.info(
                "left %s (trial %d) out of the ensemble: no time to refit it", r.family, r.number
            )
            continue
        estimator = family.build(r.params, search.task)
        kwargs = {"deadline": end} if end is not None and family.accepts_deadline else {}
        try:
            estimator.fit(search._matrices[r.family], y, **kwargs)
        except DeadlineReached:
            if not hasattr(estimator, "classes_") or r.family not in PARTIAL_REFIT_OK:
                logger.info("left %s (trial %d) out: its refit hit the deadline", *_id(r))
                if members:
                    continue
                # Nothing fitted yet and no time: the first member is refitted regardless.
                estimator = family.build(r.params, search.task)
                estimator.fit(search._matrices[r.family], y)
            else:
                logger.info("%s (trial %d) refit stopped at the deadline, trees kept", *_id(r))
        members.append(
            Member(
                r.family, r.params, float(weights[i]), r.temperature, estimator, r.score, trial=r
            )
        )
    total = sum(m.weight for m in members)
    for m in members:
        m.weight /= total
    return members


def _id(r: Any) -> tuple[str, int]:
    return r.family, r.number
