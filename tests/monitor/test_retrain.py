"""Retraining a challenger on real reviews: new labelled data that helps is promoted, shuffled
labels keep the champion, a failed attempt leaves the champion and a consistent journal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from taxonomist.config import Settings
from taxonomist.errors import ColumnNotFoundError, InvalidParameterError
from taxonomist.models.train import train
from taxonomist.monitor.retrain import journal, paired_bootstrap, retrain
from taxonomist.registry import Registry
from taxonomist.store import Database
from tests.conftest import shared

TARGET = "Department Name"


@pytest.fixture(scope="module")
def reviews() -> pd.DataFrame:
    df = pd.read_csv(shared("womens_clothing/reviews.csv"))
    df = df.dropna(subset=["Review Text", TARGET])[["Title", "Review Text", "Age", TARGET]]
    return df.sample(frac=1.0, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="module")
def setup(reviews: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory):
    """A champion trained on 300 reviews, in a registry and database of its own."""
    home = tmp_path_factory.mktemp("retrain") / "home"
    settings = Settings(home=home)
    registry, db = Registry(settings), Database(settings.database)
    db.migrate()
    result = train(
        reviews.head(300),
        target=TARGET,
        text=["Title", "Review Text"],
        trials=1,
        families=["logreg"],
        seed=0,
        settings=settings,
    )
    result.register(registry, "dept")
    return registry, db, settings


def test_new_labelled_data_that_helps_promotes_the_challenger(setup, reviews) -> None:
    registry, db, settings = setup
    entry = retrain(registry, db, "dept", reviews.iloc[300:3300], settings=settings)
    assert entry["status"] == "promoted", entry["decision"]
    assert (entry["champion_version"], entry["challenger_version"]) == (1, 2)
    assert int(registry.resolve("dept").version) == 2  # the champion alias moved
    ev = entry["evaluation"]
    assert ev["metric"] == "f1_macro" and ev["n"] == entry["data"]["new_holdout_rows"]
    assert 800 < ev["n"] < 1000  # 30 % of the 3,000 new rows, never trained on
    assert ev["challenger"]["score"] > ev["champion"]["score"] and ev["p_value"] < 0.05
    assert ev["difference"]["low"] > 0  # the whole interval favours the challenger
    assert entry["data"]["train_rows"] == 300 + entry["data"]["new_train_rows"]
    report = entry["reports"]["challenger"]
    assert set(report["per_class"]) >= {"Tops", "Dresses"} and 0 < report["accuracy"] <= 1
    # the challenger stores what it saw and the holdout the next retrain scores on
    assert len(registry.table("dept/2", "train")) == entry["data"]["train_rows"]
    assert len(registry.table("dept/2", "holdout")) == ev["n"]
    assert registry.table("dept/1", "holdout") is None


def test_shuffled_labels_keep_the_champion(setup, reviews) -> None:
    registry, db, settings = setup
    noise = reviews.iloc[3300:6300].copy()
    noise[TARGET] = np.random.default_rng(0).permutation(noise[TARGET].to_numpy())
    entry = retrain(registry, db, "dept", noise, trigger="drift", reason="drift", settings=settings)
    assert entry["status"] == "kept", entry["decision"]
    assert entry["decision"].startswith("champion version 2 kept")
    assert int(registry.resolve("dept").version) == 2  # unchanged
    assert entry["challenger_version"] == 3  # registered, for the record, not promoted
    # the fixed holdout of version 2 plus the new held-out rows
    assert entry["data"]["fixed_holdout_rows"] == len(registry.table("dept/2", "holdout"))
    assert entry["evaluation"]["n"] == (
        entry["data"]["fixed_holdout_rows"] + entry["data"]["new_holdout_rows"]
    )


def test_a_failed_retrain_is_journalled_and_changes_nothing(setup, reviews) -> None:
    registry, db, settings = setup

    def cancel(progress) -> None:
        raise KeyboardInterrupt  # what a cancelled job does to its training

    before = registry.list_models()
    with pytest.raises(KeyboardInterrupt):
        retrain(
            registry, db, "dept", reviews.iloc[6300:6600], settings=settings, on_progress=cancel
        )
    assert registry.list_models() == before and int(registry.resolve("dept").version) == 2
    entries = journal(db, "dept")
    assert [e["status"] for e in entries] == ["failed", "kept", "promoted"]
    assert entries[0]["finished_at"] and "error" in entries[0]
    assert [e["trigger"] for e in entries] == ["manual", "drift", "manual"]


def test_bad_retrain_data_is_refused_before_anything_is_stored(setup, reviews) -> None:
    registry, db, _ = setup
    n = len(journal(db, "dept"))
    with pytest.raises(ColumnNotFoundError, match="Department Name"):
        retrain(registry, db, "dept", reviews.drop(columns=TARGET).head(100))
    with pytest.raises(InvalidParameterError, match="at least 10 new labelled rows"):
        retrain(registry, db, "dept", reviews.head(5))
    with pytest.raises(InvalidParameterError, match="feedback"):
        retrain(registry, db, "dept")  # no new data and no feedback in the log
    assert len(journal(db, "dept")) == n


def test_paired_bootstrap_sees_a_real_difference_and_not_a_fake_one(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    good = np.c_[1 - (0.8 * y + 0.1), 0.8 * y + 0.1]  # right on every row
    noisy = np.clip(good + rng.normal(0, 0.4, good.shape), 0.01, 1)
    noisy /= noisy.sum(axis=1, keepdims=True)
    better = paired_bootstrap(y, noisy, good, "roc_auc", n_boot=300)
    assert better["p_value"] < 0.01 and better["difference"]["low"] > 0
    same = paired_bootstrap(y, noisy, noisy, "roc_auc", n_boot=300)
    assert same["p_value"] == 1.0 and same["difference"]["mean"] == 0


def test_a_champion_promoted_during_the_retrain_stays_champion(
    reviews: pd.DataFrame, tmp_path: Path
) -> None:
    """Read the champion, compare, move the alias is one step: a version promoted while the
    challenger trained (another job) is not replaced by a challenger that only beat the old
    champion."""
    settings = Settings(home=tmp_path / "home")
    registry, db = Registry(settings), Database(settings.database)
    db.migrate()
    options = {"target": TARGET, "text": ["Title", "Review Text"], "trials": 1, "seed": 0}
    weak = train(reviews.head(150), families=["logreg"], settings=settings, **options)
    weak.register(registry, "race")
    meanwhile: list[int] = []

    def another_job_promotes(progress: object) -> None:
        if not meanwhile:  # once, while the challenger trains
            other = train(reviews.head(160), families=["logreg"], settings=settings, **options)
            meanwhile.append(other.register(registry, "race", promote=True).version)

    entry = retrain(
        registry,
        db,
        "race",
        reviews.iloc[300:2300],
        settings=settings,
        on_progress=another_job_promotes,
    )
    assert meanwhile == [2] and entry["challenger_version"] == 3
    ev = entry["evaluation"]
    assert ev["p_value"] < 0.05 and ev["difference"]["mean"] > 0  # it beat version 1 ...
    assert entry["status"] == "kept" and "became champion meanwhile" in entry["decision"]
    assert int(registry.resolve("race").version) == 2  # ... but version 2 is champion now


def test_registering_waits_for_the_champion_lock(toy: pd.DataFrame, tmp_path: Path) -> None:
    import threading

    settings = Settings(home=tmp_path / "home")
    registry = Registry(settings)
    result = train(toy, target="label", trials=1, families=["logreg"], settings=settings)
    done = threading.Event()
    with registry.champion_lock("locked"):
        worker = threading.Thread(target=lambda: (result.register(registry, "locked"), done.set()))
        worker.start()
        assert not done.wait(3)  # blocked while another holds the name's lock
    worker.join(60)
    assert done.is_set() and int(registry.resolve("locked").version) == 1
