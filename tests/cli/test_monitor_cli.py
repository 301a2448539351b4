"""``taxonomist monitor drift|reports|retrain|journal|policy`` on this machine's home."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

import taxonomist
from taxonomist.cli import app

runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def run_json(*args: str) -> dict | list:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_drift_retrain_journal_and_policy_from_the_command_line(
    toy: pd.DataFrame, home: Path, tmp_path: Path
) -> None:
    taxonomist.train(toy.head(150), target="label", name="shop", trials=1, families=["logreg"])
    new = tmp_path / "new.csv"
    toy.tail(90).to_csv(new, index=False)
    err = run("monitor", "drift", "shop", code=2)
    assert "0 logged prediction(s)" in err and "monitor drift shop DATA.csv" in err

    run_json("predict", "shop", str(new))
    report = run_json("monitor", "drift", "shop")
    assert report["verdict"] == "ok" and report["source"] == "log" and report["n_current"] == 90
    assert {"verdict", "score", "reasons", "columns", "n_reference", "n_current"} <= set(report)

    scaled = tmp_path / "scaled.csv"
    toy.tail(90).assign(price=toy["price"] * 10 + 100).to_csv(scaled, index=False)
    page = tmp_path / "drift.html"
    text = run(
        "monitor", "drift", "shop", str(scaled), "--html", str(page), "--fail-on", "drift", code=1
    )
    assert "drift" in text and "price (numeric): distribution shifted" in text
    assert "<h1>Drift report: shop version 1</h1>" in page.read_text()
    listed = run_json("monitor", "reports", "shop")
    assert [r["verdict"] for r in listed] == ["drift", "ok"]
    assert "bad" in run("monitor", "drift", "shop", "--fail-on", "bad", code=2)

    unlabelled = tmp_path / "unlabelled.csv"
    toy.tail(90).drop(columns="label").to_csv(unlabelled, index=False)
    assert "'label'" in run("monitor", "retrain", "shop", str(unlabelled), code=2)
    entry = run_json("monitor", "retrain", "shop", str(new), "--reason", "Q3")
    assert entry["status"] in {"promoted", "kept"} and entry["reason"] == "Q3"
    assert entry["challenger_version"] == 2
    text = run("monitor", "journal", "shop")
    assert entry["status"] in text and "manual" in text
    assert run_json("monitor", "journal", "shop")[0]["id"] == entry["id"]

    assert "no retraining policy" in run("monitor", "policy", "shop", code=2)
    run("monitor", "policy", "shop", "--new-labels", "50")
    shown = run_json("monitor", "policy", "shop", "--drift")
    assert shown["policy"]["new_labels"] == 50 and shown["policy"]["drift"] is True  # merged
    assert "retrains on a drift verdict, 50 new labels" in run("monitor", "policy", "shop")
    assert "new_labels" in run("monitor", "policy", "shop", "--new-labels", "3", code=2)
    run("monitor", "policy", "shop", "--delete")
    assert "no retraining policy" in run("monitor", "policy", "shop", code=2)
