"""The CLI contract other tools script against."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from taxonomist.cli import app

from .conftest import shared

runner = CliRunner()


def _json(args: list[str]) -> dict:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_train_predict_evaluate_models_round_trip(home, tmp_path: Path) -> None:
    data = shared("rakuten/products.csv")
    out = _json(
        ["train", str(data), "--target", "prdtypecode", "--trials", "3", "--name", "rk", "--json"]
    )
    assert set(out) >= {"model", "version", "metrics", "train_seconds", "best_family"}
    assert out["model"] == "rk" and out["version"] == 1
    assert 0.2 < out["metrics"]["f1_macro"] <= 1.0
    assert out["metrics"]["roc_auc"] is None

    target = tmp_path / "scored.csv"
    pred = _json(["predict", "rk", str(data), "--output", str(target), "--json"])
    assert pred["n"] == 499
    scored = pd.read_csv(target)
    assert "prediction" in scored.columns
    probas = [c for c in scored.columns if c.startswith("proba_")]
    assert len(probas) == 27
    assert (scored[probas].sum(axis=1) - 1).abs().max() < 1e-3
    assert list(scored.columns[:6]) == list(pd.read_csv(data).columns)

    ev = _json(["evaluate", "rk/1", str(data), "--target", "prdtypecode", "--json"])
    assert set(ev) >= {
        "n",
        "accuracy",
        "f1_macro",
        "f1_weighted",
        "roc_auc",
        "log_loss",
        "per_class",
    }
    assert ev["n"] == 499 and ev["roc_auc"] is None and ev["log_loss"] is None
    assert ev["accuracy"] > 0.8  # on its own training data

    _json(
        ["train", str(data), "--target", "prdtypecode", "--trials", "1", "--name", "rk", "--json"]
    )
    listing = _json(["models", "list", "--json"])
    assert [v["version"] for v in listing[0]["versions"]] == [2, 1]
    shown = _json(["models", "show", "rk@champion", "--json"])
    assert shown["version"] in (1, 2) and "champion" in shown["aliases"]
    assert shown["roles"]["designation"] == "text"
    assert _json(["models", "alias", "rk/2", "--json"])["version"] == 2
    assert _json(["models", "show", "rk", "--json"])["version"] == 2
    assert _json(["models", "delete", "rk/1", "--yes", "--json"])["deleted"]["version"] == 1


def test_binary_evaluate_has_auc_and_log_loss(home) -> None:
    train_csv, valid_csv = shared("avazu/train.csv"), shared("avazu/valid.csv")
    out = _json(
        ["train", str(train_csv), "--target", "click", "--trials", "2", "--name", "ctr", "--json"]
    )
    assert out["metrics"]["roc_auc"] > 0.6
    ev = _json(["evaluate", "ctr", str(valid_csv), "--target", "click", "--json"])
    assert 0.55 < ev["roc_auc"] <= 1 and 0 < ev["log_loss"] < 1


def test_profile_json(home) -> None:
    prof = _json(
        ["profile", str(shared("rakuten/products.csv")), "--target", "prdtypecode", "--json"]
    )
    assert prof["n_rows"] == 499 and prof["language"] == "fr"
    assert prof["columns"]["designation"]["role"] == "text"
    assert prof["class_counts"]["2583"] == 51


@pytest.mark.parametrize(
    "args, message",
    [
        (["predict", "nosuchmodel", "x.csv"], "No model version matches 'nosuchmodel'"),
        (["models", "show", "bad name!"], "Invalid model name"),
        (["models", "show", "rk/abc"], "must be a number"),
        (["train", "missing.csv", "--target", "y"], "File not found"),
        (["train", "x.csv", "--target", "y", "--role", "oops"], "COLUMN=ROLE"),
    ],
)
def test_user_errors_exit_2_without_traceback(args, message, home, tmp_path) -> None:
    (tmp_path / "x.csv").write_text("a,y\nhello world,1\n" * 20)
    args = [str(tmp_path / a) if a == "x.csv" else a for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_help_teaches() -> None:
    result = runner.invoke(app, ["train", "--help"])
    assert result.exit_code == 0
    for option in (
        "--target",
        "--time-budget",
        "--trials",
        "--metric",
        "--name",
        "--promote",
        "--json",
        "--text",
    ):
        assert option in result.output


def test_import_creates_nothing_and_stays_light(tmp_path: Path) -> None:
    code = (
        "import sys, taxonomist; "
        "heavy = [m for m in ('mlflow', 'torch', 'lightgbm', 'sklearn', 'optuna') "
        "if m in sys.modules]; print(heavy)"
    )
    env = {
        "HOME": str(tmp_path),
        "TAXONOMIST_HOME": str(tmp_path / "home"),
        "PATH": "/usr/bin:/bin",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
    assert list(tmp_path.iterdir()) == []
