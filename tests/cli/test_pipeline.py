"""The commands a DVC pipeline's stages run (validate, train --export, evaluate on an export)
and the pipeline itself: ``pipeline init`` writes a DVC project that real DVC reproduces,
compares and pushes to an S3 server on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from taxonomist.cli import app

runner = CliRunner()
FAST = {"trials": 1, "families": ["linear_svm"]}


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.stdout


def _fails(args: list[str]) -> str:
    """The one-line message of a command that must exit 2 (a user error, no traceback)."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return " ".join(result.output.split())  # rich wraps long lines


@pytest.fixture
def toy_csv(toy: pd.DataFrame, tmp_path: Path) -> Path:
    path = tmp_path / "toy.csv"
    toy.to_csv(path, index=False)
    return path


# -- validate ----------------------------------------------------------------------------------
def test_validate_reports_what_training_would_use(toy_csv: Path, tmp_path: Path) -> None:
    config = tmp_path / "params.yaml"
    config.write_text(yaml.safe_dump({"train": {"target": "label", "roles": {"price": "ignore"}}}))
    report = tmp_path / "reports" / "validation.json"
    text = _ok(["validate", str(toy_csv), "--config", str(config), "--report", str(report)])
    assert "Usable for training on 'label': 240 of 240 rows, 3 classes." in text
    found = json.loads(report.read_text())
    assert found["ok"] is True and found["n_rows_used"] == 240 and found["n_classes"] == 3
    assert found["roles"] == {
        "title": "text",
        "store": "categorical",
        "price": "ignore",
        "label": "target",
    }


def test_validate_exits_2_naming_what_to_fix(toy: pd.DataFrame, tmp_path: Path) -> None:
    data = tmp_path / "toy.csv"
    toy.to_csv(data, index=False)
    report = tmp_path / "validation.json"
    message = _fails(["validate", str(data), "--target", "lable", "--report", str(report)])
    assert "The target column 'lable' is not in the data. Did you mean 'label'?" in message
    assert json.loads(report.read_text())["error"]["code"] == "column_not_found"
    toy.assign(label="sport").to_csv(data, index=False)
    assert "has only one class ('sport')" in _fails(["validate", str(data), "-t", "label"])
    config = tmp_path / "ctr.yaml"
    config.write_text("target: label\nctr:\n  crosses: [[store, shop]]\n")
    message = _fails(["validate", str(data), "--config", str(config)])
    assert "'ctr.crosses[0]' names the column 'shop', which the data lacks" in message
    assert "Give --target COLUMN" in _fails(["validate", str(data)])


# -- train --export, models export, evaluate on an export ------------------------------------
def test_an_export_evaluates_like_its_registered_version(home, toy_csv, tmp_path) -> None:
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump({"target": "label", "name": "toy", **FAST}))
    export = tmp_path / "model"
    summary = json.loads(
        _ok(["train", str(toy_csv), "--config", str(config), "--export", str(export), "--json"])
    )
    assert summary["export"] == str(export)
    meta = json.loads((export / "model.json").read_text())
    assert (meta["name"], meta["version"], meta["target"]) == ("toy", 1, "label")
    assert meta["classes"] == ["cooking", "finance", "sport"] and meta["config"]["trials"] == 1
    assert any(r.startswith("scikit-learn==") for r in meta["requirements"])

    metrics, plots = tmp_path / "metrics.json", tmp_path / "plots"
    _ok(["evaluate", str(export), str(toy_csv), "--metrics", str(metrics), "--plots", str(plots)])
    registered = json.loads(_ok(["evaluate", "toy/1", str(toy_csv), "--json"]))
    scores = json.loads(metrics.read_text())
    assert scores == pytest.approx(
        {k: registered[k] for k in ("n", "accuracy", "f1_macro", "f1_weighted", "ece")}
        | {"n_unknown_labels": 0}
    )
    assert "roc_auc" not in scores  # three classes: no binary scores, rather than nulls
    reliability = pd.read_csv(plots / "reliability.csv")
    assert list(reliability.columns) == ["bin", "mean_predicted", "observed", "count"]
    assert reliability["count"].sum() == 240 and reliability["bin"].between(0, 9).all()
    roc = pd.read_csv(plots / "roc.csv")
    assert list(roc.columns) == ["fpr", "tpr"] and roc["tpr"].iloc[-1] == 1

    again = tmp_path / "again"
    assert "Exported toy version 1" in _ok(["models", "export", "toy@champion", str(again)])
    one = json.loads(_ok(["evaluate", str(again / "model.joblib"), str(toy_csv), "--json"]))
    assert one["accuracy"] == registered["accuracy"]


def test_evaluate_and_export_errors_exit_2(home, toy_csv: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    message = _fails(["evaluate", str(tmp_path / "empty"), str(toy_csv)])
    assert "holds no model.joblib, so it is not an exported model" in message
    assert "No model version matches 'nosuch'" in _fails(["evaluate", "nosuch", str(toy_csv)])
    remote = ["--remote", "http://127.0.0.1:9", "--token", "t"]
    message = _fails(["train", str(toy_csv), "-t", "label", "--export", "m", *remote])
    assert "--export writes a model trained here" in message
