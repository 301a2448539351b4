"""The prediction-cost budget: measured costs, the ensemble kept inside it, the card; and the
refit kept inside the time budget."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from taxonomist.errors import InvalidParameterError
from taxonomist.models.config import TrainConfig
from taxonomist.models.cost import Cost, PredictBudget
from taxonomist.models.ensemble import greedy_ensemble
from taxonomist.models.metrics import primary_metric
from taxonomist.models.train import train


def test_budget_allows_by_record_and_by_batch() -> None:
    budget = PredictBudget(max_predict_ms=2.0, min_rows_per_second=5000)
    assert budget.allows(Cost(batch_us=150, one_ms=1.5))
    assert not budget.allows(Cost(batch_us=250, one_ms=1.5))  # 4,000 rows/s
    assert not budget.allows(Cost(batch_us=150, one_ms=2.5))
    assert PredictBudget(None, None).allows(Cost(batch_us=1e6, one_ms=1e3))
    assert (Cost(100, 1) + Cost(50, 2)) == Cost(150, 3)
    assert Cost(200, 1).rows_per_second == 5000


def test_config_default_budget_and_its_errors() -> None:
    config = TrainConfig(target="y")
    assert config.predict_budget == PredictBudget(None, 5000.0)
    assert TrainConfig(target="y", min_rows_per_second=0).predict_budget.min_rows_per_second is None
    # A trial count promises the same model: no default budget read off the clock.
    assert TrainConfig(target="y", trials=5).predict_budget == PredictBudget(None, None)
    assert TrainConfig(target="y", trials=5, min_rows_per_second=900).predict_budget == (
        PredictBudget(None, 900.0)
    )
    with pytest.raises(InvalidParameterError, match="'max_predict_ms'"):
        TrainConfig.parse({"target": "y", "max_predict_ms": -1})
    with pytest.raises(InvalidParameterError, match="did you mean 'min_rows_per_second'"):
        TrainConfig.parse({"target": "y", "min_rows_per_sec": 10})


def test_greedy_selection_leaves_out_what_breaks_the_budget() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    # Two models, each right on a different half of the rows: together they are better.
    a = np.where((np.arange(400) < 200)[:, None], np.eye(2)[y] * 0.8 + 0.1, 0.5)
    b = np.where((np.arange(400) >= 200)[:, None], np.eye(2)[y] * 0.8 + 0.1, 0.5)
    metric = primary_metric(2, "log_loss")
    free, _ = greedy_ensemble([a, b], y, metric)
    assert (free > 0).all()
    cost = {0: 10.0, 1: 30.0}
    budget_allows = lambda chosen: sum(cost[i] for i in chosen) <= 35  # noqa: E731
    kept, _ = greedy_ensemble([a, b], y, metric, allowed=budget_allows)
    assert (kept > 0).sum() == 1
    with pytest.raises(ValueError, match="budget"):
        greedy_ensemble([a, b], y, metric, allowed=lambda chosen: False)


def test_training_records_costs_and_keeps_the_budget(toy: pd.DataFrame, home) -> None:
    free = train(toy, target="label", trials=6, min_rows_per_second=0)
    cost = free.model.info["predict_cost"]
    assert cost["budget"] == "no limit" and cost["left_out"] == []
    assert cost["estimated"]["batch_us_per_row"] > 0
    assert cost["measured"]["rows_per_second"] == pytest.approx(
        free.metrics["predict_rows_per_second"], rel=0.01
    )
    assert all(t["predict_cost"]["one_record_ms"] > 0 for t in free.model.info["trials"])

    # A budget nothing keeps: the cheapest model alone comes out, and says so.
    tight = train(toy, target="label", trials=6, max_predict_ms=1e-4, min_rows_per_second=5000)
    tight_cost = tight.model.info["predict_cost"]
    assert len(tight.model.members) == 1
    assert len(tight_cost["left_out"]) == len(tight.model.info["trials"])
    assert tight_cost["measured"]["within_budget"] is False
    trials = tight.model.info["trials"]
    cheapest = min(t["predict_cost"]["batch_us_per_row"] for t in trials)
    assert tight_cost["estimated"]["batch_us_per_row"] == pytest.approx(cheapest, abs=0.01)


def test_budget_keeps_slow_members_out_of_the_ensemble(toy: pd.DataFrame, home) -> None:
    # In a batch LightGBM (with its SVD and stacking blocks) predicts 14-23k rows/s on these
    # rows, the logistic regression 52-74k. One record no longer tells them apart: the fast
    # path brought LightGBM's to 0.9 ms, the linear model's is 0.3-0.4 ms.
    kwargs = dict(trials=8, families=["logreg", "lightgbm"])
    fast = train(toy, target="label", min_rows_per_second=35_000, **kwargs)
    assert "lightgbm" not in fast.model.families
    left = {d["family"] for d in fast.model.info["predict_cost"]["left_out"]}
    assert "lightgbm" in left
    assert fast.model.info["predict_cost"]["estimated"]["rows_per_second"] >= 35_000


def test_model_card_states_the_cost(toy: pd.DataFrame, home, tmp_path) -> None:
    from taxonomist.models.result import write_report

    result = train(toy, target="label", trials=3, max_predict_ms=50)
    write_report(result, tmp_path)
    card = (tmp_path / "model_card.md").read_text()
    assert "prediction budget | 50 ms a record |" in card  # trials: no default rows/s
    assert "rows/s (estimated from the search:" in card


def test_embeddings_are_skipped_when_they_break_the_budget(toy: pd.DataFrame, home) -> None:
    pytest.importorskip("torch")
    result = train(toy, target="label", trials=2, min_rows_per_second=1_000_000)
    reason = result.model.info["skipped_families"]["embed"]
    assert "prediction budget" in reason and "--min-rows-per-second 0" in reason


def test_booster_refit_stopped_at_the_deadline_is_a_whole_model() -> None:
    from taxonomist.models.candidates import FAMILIES, Task
    from taxonomist.models.linear import DeadlineReached

    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    task = Task(n_rows=300, n_classes=2, seed=0, n_jobs=1)
    model = FAMILIES["lightgbm"].build(FAMILIES["lightgbm"].defaults, task)
    with pytest.raises(DeadlineReached):
        model.fit(X, y, deadline=time.perf_counter() - 1)
    assert model.booster_.num_trees() >= 1
    assert model.predict_proba(X).shape == (300, 2)


def test_the_embedding_estimate_pays_the_encoder_loading_once() -> None:
    """The search prices the embed family from a 200-text sample; scaling the sample up must
    not multiply the one-off model loading (4,000 short texts were priced at ~42 s instead
    of ~3 s, over a quarter of a 120 s budget, and the family was never tried)."""
    from types import SimpleNamespace

    from taxonomist.embed import SentenceEmbedder
    from taxonomist.embed.encoders import ENCODERS
    from taxonomist.models.train import embedding_seconds

    df = pd.DataFrame({"t": [f"a short text, number {i}" for i in range(4000)]})
    spec = SimpleNamespace(make=lambda: SentenceEmbedder("use"))
    seconds = embedding_seconds(
        SimpleNamespace(specs={"embed": spec}), df, SimpleNamespace(text=["t"])
    )
    chars = int(df["t"].str.len().sum())
    assert seconds == pytest.approx(2.0 + chars / ENCODERS["use"].chars_per_second, rel=0.05)
