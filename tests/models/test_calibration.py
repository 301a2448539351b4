"""Calibration of out-of-fold probabilities: temperature, Platt and isotonic scaling, chosen
by cross-validated log loss, and the reliability points behind the ECE and its plot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from taxonomist.models.calibration import calibrate, fit_isotonic, fit_platt
from taxonomist.models.metrics import expected_calibration_error, reliability


def _clicks(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """True click probabilities around 15 % and the clicks drawn from them."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(-2.0, 1.0, n)
    p = 1 / (1 + np.exp(-logit))
    return p, (rng.random(n) < p).astype(np.int64)


def _proba(p1: np.ndarray) -> np.ndarray:
    return np.column_stack([1 - p1, p1]).astype(np.float32)


def test_binary_reliability_is_about_the_positive_class() -> None:
    y = np.array([0, 0, 0, 1] * 25)
    # every row predicted 25 %, and a quarter are positive: perfectly calibrated
    points = reliability(y, _proba(np.full(100, 0.25)))
    assert points["mean_predicted"] == pytest.approx([0.25])
    assert points["observed"] == pytest.approx([0.25])
    assert points["count"] == [100.0]
    assert expected_calibration_error(y, _proba(np.full(100, 0.25))) == pytest.approx(0.0)
    # predicting 75 % for the same rows is off by half (the top-class view saw no error)
    assert expected_calibration_error(y, _proba(np.full(100, 0.75))) == pytest.approx(0.5)


def test_multiclass_reliability_is_confidence_against_accuracy() -> None:
    proba = np.array([[0.6, 0.3, 0.1]] * 10, dtype=np.float32)
    y = np.array([0] * 6 + [1] * 4)
    assert expected_calibration_error(y, proba) == pytest.approx(0.0, abs=1e-6)
    assert expected_calibration_error(np.ones(10, dtype=int), proba) == pytest.approx(0.6)


def test_platt_undoes_a_bias_towards_the_rare_class() -> None:
    p, y = _clicks(20_000)
    logit = np.log(p / (1 - p))
    biased = _proba(1 / (1 + np.exp(-(logit + 1.5))))  # what class re-weighting does
    before = expected_calibration_error(y, biased)
    fixed = fit_platt(biased, y)
    assert fixed.a == pytest.approx(1.0, abs=0.1)
    assert fixed.b == pytest.approx(-1.5, abs=0.1)
    assert before > 0.15
    assert expected_calibration_error(y, fixed(biased)) < 0.01


def test_calibrate_chooses_the_method_with_the_lowest_cross_validated_log_loss() -> None:
    p, y = _clicks(20_000, seed=1)
    logit = np.log(p / (1 - p))
    biased = _proba(1 / (1 + np.exp(-(0.5 * logit + 1.0))))
    result = calibrate(biased, y, seed=0)
    assert set(result.scores) == {"temperature", "platt", "isotonic"}
    assert result.kind == min(result.scores, key=result.scores.__getitem__)
    assert result.kind in {"platt", "isotonic"}  # a shift: temperature alone cannot fix it
    assert result.scores[result.kind] < result.scores["temperature"] - 0.01
    assert result.temperature == 1.0
    # the returned probabilities are cross-fitted: scored as chosen, calibrated as promised
    log_loss = -np.mean(np.log(result.proba[np.arange(len(y)), y]))
    assert log_loss == pytest.approx(result.scores[result.kind], rel=1e-5)
    assert expected_calibration_error(y, result.proba) < 0.01
    assert result.calibrator is not None
    refit = result.calibrator(biased)
    assert abs(refit[:, 1].mean() - y.mean()) < 0.005


def test_isotonic_fits_a_distortion_no_sigmoid_can() -> None:
    p, y = _clicks(30_000, seed=2)
    # a step: the model says 10 % below the median and 40 % above, whatever the truth
    steps = _proba(np.where(p < np.median(p), 0.10, 0.40) + 0.01 * p)
    iso = fit_isotonic(steps, y)
    assert expected_calibration_error(y, iso(steps)) < 0.01
    out = iso(steps)[:, 1]
    assert out.min() >= 1e-4 and out.max() <= 1 - 1e-4  # never certain
    assert calibrate(steps, y, seed=0, isotonic=False).kind != "isotonic"


def test_calibrate_keeps_temperature_for_multiclass_and_for_too_few_positives() -> None:
    rng = np.random.default_rng(0)
    proba = rng.dirichlet([1, 1, 1], 300).astype(np.float32)
    y = rng.integers(0, 3, 300)
    multi = calibrate(proba, y, seed=0)
    assert (multi.kind, multi.calibrator, multi.scores) == ("temperature", None, {})
    few = calibrate(_proba(np.full(60, 0.1)), np.array([1] * 3 + [0] * 57), seed=0)
    assert few.kind == "temperature"


def test_trained_click_model_is_calibrated_and_plots_its_reliability(home, tmp_path) -> None:
    from taxonomist.models.result import write_report
    from taxonomist.models.train import train
    from tests.conftest import shared

    df = pd.read_csv(shared("avazu/train.csv"))
    result = train(df, target="click", families=["logreg"], trials=3)
    m = result.metrics
    assert m["primary_metric"] == "log_loss"
    assert m["calibration"] in {"temperature", "platt", "isotonic"}
    assert m["ece"] < 0.03
    points = m["reliability"]
    assert sum(points["count"]) == len(df)  # stratified folds: every row is out of fold once
    # no class weights under log loss: they would bias the click probability upwards
    assert all(t["params"].get("class_weight") == "none" for t in result.model.info["trials"])
    proba = result.model.predict_proba(df.iloc[:2000])["1"]
    assert abs(proba.mean() - df["click"].iloc[:2000].mean()) < 0.03
    files = write_report(result, tmp_path)
    assert files["reliability"] == "reliability.png"
    assert (tmp_path / "reliability.png").stat().st_size > 10_000
    assert "| calibration |" in (tmp_path / "model_card.md").read_text()
