"""The CLI contract other tools script against."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from taxonomist.cli import app
from taxonomist.models.config import TrainConfig
from tests.conftest import shared

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


def test_training_on_french_text_says_what_left_the_embeddings_out(home) -> None:
    data = shared("rakuten/products.csv")
    args = ["train", str(data), "--target", "prdtypecode", "--trials", "1", "--name", "fr"]
    result = runner.invoke(app, [*args, "--min-rows-per-second", "5000"])
    assert result.exit_code == 0, result.output
    note = " ".join(result.output.split())
    assert "sentence embeddings left out: embedding a text takes" in note
    assert "--min-rows-per-second 0 lets it in" in note


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
        (["train", "x.csv"], "Give --target COLUMN"),
        (["train", "x.csv", "-t", "y", "--time-budget", "1"], "'time_budget': Input should be"),
        (["train", "x.csv", "-t", "y", "--metric", "f2"], "'metric': Input should be"),
        (["train", "x.csv", "--config", "nope.yaml"], "Cannot read the config file"),
        (["train", "x.csv", "-t", "y", "--families", "svm"], "'families.0': Input should be"),
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
        "--families",
        "--sample",
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


def test_debug_shows_the_traceback(home) -> None:
    from taxonomist.errors import InvalidParameterError

    result = runner.invoke(app, ["--debug", "models", "show", "bad name!"])
    assert isinstance(result.exception, InvalidParameterError)


# -- training configs ------------------------------------------------------------------------
FAST = {"trials": 1, "families": ["linear_svm"]}


def _write_config(path: Path, **options: object) -> Path:
    text = json.dumps(options) if path.suffix == ".json" else yaml.safe_dump(options)
    path.write_text(text)
    return path


@pytest.fixture
def toy_csv(toy: pd.DataFrame, tmp_path: Path) -> Path:
    path = tmp_path / "toy.csv"
    toy.to_csv(path, index=False)
    return path


def test_train_reads_a_config_file(home, toy_csv: Path, tmp_path: Path) -> None:
    config = _write_config(tmp_path / "toy.yaml", target="label", name="toy", **FAST)
    out = _json(["train", str(toy_csv), "--config", str(config), "--json"])
    assert out["model"] == "toy" and out["version"] == 1 and out["promoted"] is True
    assert out["best_family"] == "linear_svm" and set(out["ensemble"]) == {"linear_svm"}
    assert out["metrics"]["f1_macro"] > 0.7
    stored = _json(["models", "show", "toy", "--config", "--json"])
    assert stored["data"] == str(toy_csv) and stored["target"] == "label"
    assert stored["trials"] == 1 and stored["time_budget"] is None  # trials replace the budget
    assert stored["families"] == ["linear_svm"]
    listing = _json(["models", "list", "--json"])
    assert [(m["name"], len(m["versions"])) for m in listing] == [("toy", 1)]


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_an_unknown_key_in_the_config_file_is_named(suffix, home, toy_csv, tmp_path) -> None:
    config = _write_config(tmp_path / f"toy{suffix}", target="label", familes=["linear_svm"])
    result = runner.invoke(app, ["train", str(toy_csv), "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert f"'toy{suffix}'" in result.output
    assert "unknown key 'familes' (did you mean 'families'?)" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert _json(["models", "list", "--json"]) == []


def test_flags_and_data_override_the_config_file(home, toy_csv: Path, tmp_path: Path) -> None:
    config = _write_config(
        tmp_path / "toy.yaml",
        data=str(tmp_path / "elsewhere.csv"),
        target="label",
        name="from-file",
        metric="accuracy",
        trials=4,
        families=["linear_svm"],
    )
    args = ["train", str(toy_csv), "--config", str(config), "--trials", "1", "--name", "flags"]
    out = _json([*args, "--metric", "f1_macro", "--json"])
    assert out["model"] == "flags" and out["metrics"]["primary_metric"] == "f1_macro"
    stored = _json(["models", "show", "flags", "--config", "--json"])
    assert (stored["data"], stored["trials"], stored["metric"]) == (str(toy_csv), 1, "f1_macro")
    assert stored["families"] == ["linear_svm"] and stored["target"] == "label"  # the file's
    out = _json([*args, "--families", "complement_nb, logreg", "--json"])
    stored = _json(["models", "show", f"flags/{out['version']}", "--config", "--json"])
    assert stored["families"] == ["complement_nb", "logreg"]  # the flag's, over the file's


def test_models_show_config_replays_the_training(home, toy, tmp_path: Path) -> None:
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    toy.to_csv(first, index=False)
    toy.sample(frac=1.0, random_state=1).to_csv(second, index=False)
    families = _write_config(tmp_path / "families.yaml", families=["linear_svm"])
    _json(
        [
            "train",
            str(first),
            "--config",
            str(families),
            "--target",
            "label",
            "--name",
            "apps",
            "--trials",
            "1",
            "--text",
            "title",
            "--role",
            "store=categorical",
            "--metric",
            "accuracy",
            "--json",
        ]
    )
    shown = runner.invoke(app, ["models", "show", "apps", "--config"])
    assert shown.exit_code == 0, shown.output
    replay = tmp_path / "apps.yaml"
    replay.write_text(shown.stdout)
    config = TrainConfig.from_file(replay)
    stored = _json(["models", "show", "apps", "--config", "--json"])
    assert config.to_json() == stored
    assert (config.name, config.target, config.data) == ("apps", "label", str(first))
    assert (config.trials, config.time_budget, config.metric) == (1, None, "accuracy")
    assert config.text == ["title"] and config.roles == {"store": "categorical"}
    assert config.families == ["linear_svm"]

    out = _json(["train", str(second), "--config", str(replay), "--json"])
    assert (out["model"], out["version"]) == ("apps", 2)
    again = _json(["models", "show", "apps/2", "--config", "--json"])
    assert again == stored | {"data": str(second)}


class _FakeServer:
    """A Taxonomist server as the CLI's client sees it: records the requests, and the job
    succeeds at once."""

    requests: ClassVar[list[tuple[str, dict]]] = []
    summary: ClassVar[dict] = {
        "model": "toy",
        "version": 1,
        "metrics": {"primary": 0.9, "primary_metric": "f1_macro"},
        "train_seconds": 2.0,
        "best_family": "linear_svm",
        "ensemble": {"linear_svm": 1.0},
        "promoted": True,
    }

    def __init__(self, url: str, token: str | None = None, **_: object) -> None:
        assert (url, token) == ("http://server", "tok")

    def upload_dataset(self, data, **form) -> dict:
        self.requests.append(("upload", {"data": str(data), **form}))
        return {"dataset": {"id": 7}}

    def start_job(self, dataset_id: int, model_name: str, **config) -> dict:
        body = {"dataset_id": dataset_id, "model_name": model_name, **config}
        self.requests.append(("job", body))
        return {"id": 3, "state": "queued"}

    def wait_job(self, job_id: int, *, poll: float, on_progress) -> dict:
        on_progress({"id": job_id, "state": "running", "progress": {"trials_done": 1}})
        return {"id": job_id, "state": "succeeded", "result": self.summary}


def test_remote_training_sends_the_whole_config_to_the_job(
    home, toy_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taxonomist.api.schemas import JobCreate

    monkeypatch.setattr("taxonomist.client.Client", _FakeServer)
    _FakeServer.requests = []
    config = _write_config(tmp_path / "toy.yaml", target="label", **FAST)
    remote = ["--remote", "http://server", "--token", "tok"]
    args = ["train", str(toy_csv), "--config", str(config), "--name", "toy", "--trials", "2"]
    args += ["--text", "title", "--role", "store=categorical", "--role", "label=target"]
    result = runner.invoke(app, [*args, "--promote", *remote])
    assert result.exit_code == 0, result.output
    assert "Job 3 queued on http://server (dataset 7)." in result.stdout
    assert "Registered toy version 1 on http://server: f1_macro 0.9000" in result.stdout

    (_, upload), (_, body) = _FakeServer.requests
    assert upload == {"data": str(toy_csv), "target": "label", "roles": {"store": "categorical"}}
    job = JobCreate.model_validate(body)  # the API takes the body as it is
    assert (job.dataset_id, job.model_name, job.target) == (7, "toy", "label")
    assert job.promote is True and job.trials == 2 and job.time_budget is None
    assert job.families == ["linear_svm"] and job.text == ["title"]
    assert job.roles == {"store": "categorical"}

    assert _json([*args, "--json", *remote]) == _FakeServer.summary
    assert _FakeServer.requests[-1][1]["promote"] is False


def test_remote_show_config_replays_on_the_server(live_server: str, toy_csv, tmp_path) -> None:
    from taxonomist.client import Client
    from tests.conftest import ADMIN_PASSWORD

    with Client.login(live_server, "admin", ADMIN_PASSWORD) as admin:
        remote = ["--remote", live_server, "--token", admin.create_token("cli")["token"]]
    config = _write_config(tmp_path / "fast.yaml", target="label", name="rtoy", **FAST)
    out = _json(["train", str(toy_csv), "--config", str(config), "--promote", "--json", *remote])
    assert (out["model"], out["version"], out["promoted"]) == ("rtoy", 1, True)
    stored = _json(["models", "show", "rtoy", "--config", "--json", *remote])
    assert "data" not in stored  # the server's path to its copy of the data
    assert (stored["trials"], stored["families"], stored["promote"]) == (1, ["linear_svm"], True)
    shown = runner.invoke(app, ["models", "show", "rtoy", "--config", *remote])
    replay = tmp_path / "rtoy.yaml"
    replay.write_text(shown.stdout)
    assert TrainConfig.from_file(replay).to_json() == stored | {"data": None}
    again = _json(["train", str(toy_csv), "--config", str(replay), "--json", *remote])
    assert (again["model"], again["version"]) == ("rtoy", 2)
