"""The evaluation files a pipeline reads: the reliability table, the ROC curve, the flat
metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from taxonomist.errors import InvalidParameterError
from taxonomist.models.evaluation import (
    Evaluation,
    check_bins,
    reliability_table,
    roc_table,
)


def _binary(p_positive: np.ndarray) -> np.ndarray:
    return np.column_stack([1 - p_positive, p_positive])


def test_reliability_bins_count_rows_and_leave_empty_bins_out() -> None:
    predicted = np.array([0.05, 0.15, 0.12, 0.95, 1.0, 0.55])
    clicked = np.array([0, 1, 0, 1, 1, 0])
    table = reliability_table(clicked, _binary(predicted), bins=10)
    assert table["bin"].tolist() == [0, 1, 5, 9]  # 1.0 falls in the last bin, not an 11th
    assert table["count"].tolist() == [1, 2, 1, 2]
    assert table["mean_predicted"].tolist() == pytest.approx([0.05, 0.135, 0.55, 0.975])
    assert table["observed"].tolist() == pytest.approx([0.0, 0.5, 0.0, 1.0])
    assert table["count"].sum() == len(predicted)


def test_a_calibrated_predictor_lies_on_the_diagonal() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=200_000)
    table = reliability_table((rng.uniform(size=p.size) < p).astype(int), _binary(p), bins=10)
    assert np.abs(table["observed"] - table["mean_predicted"]).max() < 0.01


def test_more_classes_bin_the_predicted_class_against_how_often_it_is_right() -> None:
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.75, 0.15], [0.4, 0.35, 0.25]])
    table = reliability_table(np.array([0, 2, 0]), proba, bins=10)
    assert table["bin"].tolist() == [4, 7]
    assert table["observed"].tolist() == pytest.approx([1.0, 0.5])  # the 0.75 row is wrong
    assert table["count"].tolist() == [1, 2]


def test_roc_binary_and_micro_averaged() -> None:
    y = np.array([0, 0, 1, 1])
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])
    roc = roc_table(y, proba)
    assert list(roc.columns) == ["fpr", "tpr"]
    assert roc.iloc[0].tolist() == [0, 0] and roc.iloc[-1].tolist() == [1, 1]
    # the area under the curve is sklearn's AUC: 3 of 4 positive-negative pairs ordered
    assert np.trapezoid(roc["tpr"], roc["fpr"]) == pytest.approx(0.75)
    three = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    micro = roc_table(np.array([0, 1, 2]), three)  # each row's own class ranks first
    assert np.trapezoid(micro["tpr"], micro["fpr"]) == pytest.approx(1.0)
    assert roc_table(np.array([1, 1]), proba[:2]).empty  # one class: no curve


def test_metrics_leave_undefined_scores_out_and_plots_always_exist(tmp_path: Path) -> None:
    scores = {"n": 3, "accuracy": 1.0, "roc_auc": None, "log_loss": None, "ece": 0.1}
    ev = Evaluation(
        scores | {"unknown_labels": ["x"]},
        pd.DataFrame({"bin": [0], "mean_predicted": [0.1], "observed": [0.0], "count": [3]}),
        roc_table(np.array([1, 1]), np.array([[0.1, 0.9], [0.2, 0.8]])),
        "probability of the predicted class",
    )
    path = ev.write_metrics(tmp_path / "out" / "metrics.json")
    assert json.loads(path.read_text()) == {
        "n": 3,
        "accuracy": 1.0,
        "ece": 0.1,
        "n_unknown_labels": 1,
    }
    reliability, roc = ev.write_plots(tmp_path / "plots")
    assert reliability.read_text() == "bin,mean_predicted,observed,count\n0,0.1,0,3\n"
    assert roc.read_text() == "fpr,tpr\n"


@pytest.mark.parametrize("bins", [0, 1, 1001, 2.5])
def test_bad_bins_are_named(bins: object) -> None:
    with pytest.raises(InvalidParameterError, match=r"'bins' parameter must be an int"):
        check_bins(bins)  # type: ignore[arg-type]


def test_evaluate_without_labels_gives_predictions_and_confidence(
    home: Path, tmp_path: Path, toy: pd.DataFrame
) -> None:
    from typer.testing import CliRunner

    from taxonomist.cli import app
    from taxonomist.models.train import train
    from taxonomist.registry import get_registry

    train(toy, target="label", trials=1, families=["logreg"], name="toy").register(get_registry())
    toy.drop(columns="label").to_csv(tmp_path / "new.csv", index=False)
    toy.to_csv(tmp_path / "labelled.csv", index=False)
    runner = CliRunner()
    shown = runner.invoke(app, ["evaluate", "toy", str(tmp_path / "new.csv")])
    assert shown.exit_code == 0, shown.output
    assert "without labels" in shown.output and "mean confidence" in shown.output
    result = runner.invoke(
        app,
        [
            "evaluate",
            "toy",
            str(tmp_path / "new.csv"),
            "--json",
            "--metrics",
            str(tmp_path / "m.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)
    assert scores["labelled"] is False and scores["n"] == len(toy)
    assert sum(scores["predicted_share"].values()) == pytest.approx(1.0)
    assert set(scores["predicted_share"]) == {"cooking", "finance", "sport"}
    assert 1 / 3 < scores["mean_confidence"] <= 1
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert set(metrics) == {"n", "mean_confidence", "low_confidence_share"}
    labelled = runner.invoke(
        app,
        ["evaluate", "toy", str(tmp_path / "labelled.csv"), "--metrics", str(tmp_path / "l.json")],
    )
    assert labelled.exit_code == 0, labelled.output
    both = json.loads((tmp_path / "l.json").read_text())
    assert both["accuracy"] > 0.8 and both["mean_confidence"] == pytest.approx(
        metrics["mean_confidence"]
    )
    # a label column named but missing is a mistake, not a request for unlabelled scores
    named = runner.invoke(app, ["evaluate", "toy", str(tmp_path / "new.csv"), "--target", "label"])
    assert named.exit_code == 2 and "label" in named.output
