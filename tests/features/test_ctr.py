"""Click-through features, the factorization machine, time-ordered folds and the CTR config."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import OneHotEncoder
from typer.testing import CliRunner

from taxonomist.cli import app
from taxonomist.errors import InvalidParameterError
from taxonomist.features.columns import ColumnView
from taxonomist.features.ctr import (
    CrossTargetEncoder,
    EntityCounts,
    HashedCrosses,
    parse_times,
    plan_ctr,
    time_parts,
)
from taxonomist.models.config import CtrOptions, TrainConfig
from taxonomist.models.fm import FactorizationMachine
from taxonomist.models.search import time_folds
from tests.conftest import shared

ROOT = Path(__file__).resolve().parents[2]


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ip": ["a", "a", "a", "b", "b", None],
            "model": ["x", "x", "y", "x", "x", "x"],
            "hour": [14102100, 14102100, 14102101, 14102101, 14102101, 14102223],
        }
    )


def _view(df: pd.DataFrame) -> ColumnView:
    return ColumnView({c: df[c].astype(object).to_numpy() for c in df.columns})


def test_entity_counts_per_entity_and_window_from_training_rows_only() -> None:
    df = _frame()
    counts = EntityCounts([("ip",), ("ip", "model")], ["hour_of_day"], "hour").fit(df)
    out = np.expm1(counts.transform(df))
    # columns: ip, ip|hour_of_day, ip*model, ip*model|hour_of_day
    np.testing.assert_allclose(out[0], [3, 2, 2, 2])
    np.testing.assert_allclose(out[2], [3, 1, 1, 1])
    np.testing.assert_allclose(out[5], [1, 1, 1, 1])  # the missing ip is a level of its own
    new = pd.DataFrame({"ip": ["a", "zzz"], "model": ["x", "x"], "hour": [14102500, 14102500]})
    np.testing.assert_allclose(np.expm1(counts.transform(new)), [[3, 2, 2, 2], [0, 0, 0, 0]])
    # the table does not grow at prediction time
    np.testing.assert_allclose(np.expm1(counts.transform(new)), [[3, 2, 2, 2], [0, 0, 0, 0]])
    np.testing.assert_array_equal(counts.transform(_view(df)), counts.transform(df))
    assert list(counts.get_feature_names_out())[1] == "count(ip|hour_of_day)"


def test_cross_target_encoding_is_out_of_fold_and_smoothed() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    df = pd.DataFrame({"a": rng.integers(0, 5, n).astype(str), "b": rng.integers(0, 400, n)})
    y = (rng.random(n) < 0.2).astype(int)
    enc = CrossTargetEncoder([("a", "b")], smoothing=10.0, cv=5, seed=0)
    train_values = enc.fit_transform(df, y)[:, 0]
    full = enc.transform(df)[:, 0]
    # A cross seen a few times learns its rows' labels when encoded by its own table, not
    # out of fold: the in-sample encoding predicts the labels it was fitted on far better.
    assert roc_auc_score(y, full) > roc_auc_score(y, train_values) + 0.1
    assert abs(roc_auc_score(y, train_values) - 0.5) < 0.08
    # transform: (clicks + m * prior) / (rows + m)
    key = (df["a"] == df["a"][0]) & (df["b"] == df["b"][0])
    expected = (y[key].sum() + 10.0 * y.mean()) / (key.sum() + 10.0)
    assert full[0] == pytest.approx(expected, rel=1e-5)
    unseen = enc.transform(pd.DataFrame({"a": ["9"], "b": [9999]}))
    assert unseen[0, 0] == pytest.approx(y.mean(), rel=1e-5)
    np.testing.assert_allclose(enc.transform(_view(df.head(3))), full[:3, None], rtol=1e-6)


def test_hashed_crosses_one_column_per_cross_and_time_part() -> None:
    df = _frame()
    X = HashedCrosses([("ip", "model")], "hour", bits=16).fit(df).transform(df)
    assert X.shape == (6, 2**16)
    assert (X.getnnz(axis=1) == 3).all()  # the cross, the hour of day, the weekday
    assert (X[0] != X[1]).nnz == 0  # same values, same columns
    assert (X[0] != X[3]).nnz > 0


def test_time_parts_of_yymmddhh_match_pandas() -> None:
    values = np.array([14102100, 14102323, 14103005, 15022814])
    parts = time_parts(values)
    times = pd.to_datetime([str(v) for v in values], format="%y%m%d%H")
    np.testing.assert_array_equal(parts["hour_of_day"], times.hour)
    np.testing.assert_array_equal(parts["weekday"], times.day_of_week)
    assert time_parts(np.array(["2024-03-05 17:00"], dtype=object))["hour_of_day"][0] == 17
    assert parse_times(np.array(["not a time"], dtype=object)).isna().all()


def test_time_folds_train_on_earlier_rows_and_keep_an_hour_together() -> None:
    rng = np.random.default_rng(1)
    times = rng.integers(0, 10, 1000)
    folds = time_folds(times, n_folds=3)
    assert folds is not None and len(folds) == 3
    for train, valid in folds:
        assert times[train].max() < times[valid].min()
    valid_all = np.concatenate([v for _, v in folds])
    assert len(np.unique(valid_all)) == len(valid_all)
    assert time_folds(np.zeros(50)) is None


def test_factorization_machine_learns_a_pairwise_interaction() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    df = pd.DataFrame({"a": rng.integers(0, 2, n), "b": rng.integers(0, 2, n)})
    logit = np.where(df["a"] == df["b"], 1.5, -1.5)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    X = OneHotEncoder().fit_transform(df)
    fm = FactorizationMachine(n_factors=4, alpha=1e-4, alpha_v=1e-4, init_scale=0.1).fit(X, y)
    lr = LogisticRegression().fit(X, y)
    assert roc_auc_score(y, fm.predict_proba(X)[:, 1]) > 0.75
    assert roc_auc_score(y, lr.predict_proba(X)[:, 1]) < 0.55  # no pair, no signal
    again = FactorizationMachine(n_factors=4, alpha=1e-4, alpha_v=1e-4, init_scale=0.1)
    np.testing.assert_array_equal(again.fit(X, y).predict_proba(X), fm.predict_proba(X))
    with pytest.raises(ValueError, match="binary"):
        FactorizationMachine().fit(X, rng.integers(0, 3, n))


def test_ctr_config_errors_name_the_key() -> None:
    df = _frame().assign(click=[0, 1, 0, 0, 1, 0])
    options = CtrOptions(user_key=["ip", "modle"])
    with pytest.raises(InvalidParameterError, match=r"'ctr.user_key'.*'modle'.*'model'"):
        plan_ctr(options, "hour", None, df)
    with pytest.raises(InvalidParameterError, match="'time_column'"):
        plan_ctr(None, "ip", None, df)
    with pytest.raises(InvalidParameterError, match=r"crosses\[0\]"):
        TrainConfig.parse({"target": "click", "ctr": {"crosses": [["ip"]]}})
    with pytest.raises(InvalidParameterError, match="count_windows needs time_column"):
        TrainConfig.parse({"target": "click", "ctr": {"count_windows": ["hour_of_day"]}})
    with pytest.raises(InvalidParameterError, match=r"'ctr.usr_key'.*did you mean 'user_key'"):
        TrainConfig.parse({"target": "click", "ctr": {"usr_key": ["ip"]}})
    plan = plan_ctr(CtrOptions(user_key=["ip", "model"], count=["ip", "user"]), "hour", None, df)
    assert plan.counts == [("ip",), ("ip", "model")]
    assert plan.crosses == [("ip", "model")]


def test_the_example_ctr_config_trains_with_log_loss(home: Path, tmp_path: Path) -> None:
    """The example config, on a slice of the Avazu sample and a few trials: CTR blocks in
    the model, log loss as the metric, a single record through the fast path."""
    config = yaml.safe_load((ROOT / "examples" / "ctr" / "avazu.yaml").read_text())
    data = pd.read_csv(shared("avazu/train.csv")).iloc[:3000]
    data.to_csv(tmp_path / "avazu.csv", index=False)
    # The factorization machine learns its own crosses from the one-hot block and may win
    # here; the families kept are the ones that read the configured CTR blocks.
    config.update(data=str(tmp_path / "avazu.csv"), families=["logreg", "lightgbm"], trials=4)
    config.pop("time_budget")
    path = tmp_path / "ctr.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["train", "--config", str(path), "--json"])
    assert result.exit_code == 0, result.output
    from taxonomist.registry import get_registry

    model = get_registry().load("avazu-ctr")
    assert model.metric == "log_loss"
    assert {"ctr_counts", "ctr_hashed"} & set(model.blocks.fitted)
    assert model.schema.time == ["hour"]
    assert model.info["metrics"]["log_loss"] < 0.47  # the positive rate alone scores 0.46
    record = data.iloc[0].drop(["click", "id"]).to_dict()
    p = model.predict_proba(record).iloc[0]
    assert 0.01 < p["1"] < 0.9
    assert model.blocks.accept_column_view(model._member_blocks())


def test_a_ctr_column_the_data_lacks_exits_2(home: Path, tmp_path: Path) -> None:
    data = pd.read_csv(shared("avazu/train.csv")).iloc[:200]
    data.to_csv(tmp_path / "a.csv", index=False)
    path = tmp_path / "ctr.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "data": str(tmp_path / "a.csv"),
                "target": "click",
                "ctr": {"crosses": [["C14", "C99"]]},
            }
        )
    )
    result = CliRunner().invoke(app, ["train", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert "ctr.crosses[0]" in result.output and "C99" in result.output


def test_a_guessed_time_column_orders_validation_and_adds_time_parts(home: Path) -> None:
    """No config: a click log whose 'hour' spans a day is validated later-on-earlier, with
    hour-of-day features, as if 'time_column: hour' had been given."""
    from taxonomist.models.train import train

    data = pd.read_csv(shared("avazu/train.csv")).iloc[:2400].reset_index(drop=True)
    data["hour"] = 14102100 + data.index * 24 // len(data)  # a day, in order
    result = train(data, target="click", families=["logreg"], trials=2)
    model = result.model
    assert model.schema.time == ["hour"]
    assert model.info["protocol"]["kind"] == "time_forward"
    assert "ctr_hashed" in model.blocks.fitted  # the time parts are hashed for the linear model
    # forward chaining: the first hours are never validated on
    assert sum(result.metrics["reliability"]["count"]) < len(data)
    p = model.predict_proba(data.iloc[0].drop(["click", "id"]).to_dict()).iloc[0]
    assert 0.01 < p["1"] < 0.9
