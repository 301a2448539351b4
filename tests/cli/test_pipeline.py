"""The commands a DVC pipeline's stages run (validate, train --export, evaluate on an export)
and the pipeline itself: ``pipeline init`` writes a DVC project that real DVC reproduces,
compares and pushes to an S3 server on loopback."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from taxonomist.cli import app
from tests.conftest import (
    GIT_IDENTITY,
    ROOT,
    S3_KEYS,
    free_port,
    require_dvc_tools,
    serving_s3,
    shared,
)

runner = CliRunner()
BIN = Path(sys.executable).parent
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
        {
            k: registered[k]
            for k in (
                "n",
                "accuracy",
                "f1_macro",
                "f1_weighted",
                "ece",
                "mean_confidence",
                "low_confidence_share",
            )
        }
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


# -- pipeline init: bad inputs ---------------------------------------------------------------
@pytest.fixture
def ctr_config(tmp_path: Path) -> Path:
    """A fast click-through config on the shared Avazu sample (two logistic regressions)."""
    path = tmp_path / "ctr.yaml"
    path.write_text(yaml.safe_dump(CTR_OPTIONS | {"data": str(shared("avazu/train.csv"))}))
    return path


CTR_OPTIONS = {
    "target": "click",
    "roles": {"id": "ignore"},
    "time_column": "hour",
    "ctr": {"user_key": ["device_ip", "device_model"], "crosses": [["site_id", "app_id"]]},
    "families": ["logreg"],
    "trials": 2,
    "time_budget": 20,
}


def test_pipeline_init_refuses_bad_inputs_and_writes_nothing(ctr_config, tmp_path) -> None:
    folder = tmp_path / "proj"
    init = ["pipeline", "init", str(folder), "--config"]
    no_target = tmp_path / "no-target.yaml"
    no_target.write_text(yaml.safe_dump({"train": {"families": ["logreg"]}}))
    assert "'target' is required" in _fails([*init, str(no_target)])
    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump({"target": "click", "time_budgit": 20}))
    assert "did you mean 'time_budget'" in _fails([*init, str(typo)])
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(yaml.safe_dump(CTR_OPTIONS | {"target": "clicks"}))
    data = ["--data", str(shared("avazu/train.csv"))]
    message = _fails([*init, str(wrong), *data])
    assert "The target column 'clicks' is not in the data. Did you mean 'click'?" in message
    message = _fails([*init, str(ctr_config), "--data", str(tmp_path / "nope.csv")])
    assert "The table" in message and "nope.csv' given as --data does not exist" in message
    held_out = tmp_path / "held_out.csv"
    held_out.write_text("a,b\n1,2\n")
    message = _fails([*init, str(ctr_config), "--valid", str(held_out)])
    assert "The target (in the held-out table" in message and "'click' is not in" in message
    message = _fails([*init, str(ctr_config), "--remote", "http://bucket"])
    assert "--remote must be an S3 URL" in message
    assert not folder.exists()  # every check comes before the first write

    folder.mkdir()
    (folder / "dvc.yaml").write_text("stages: {}\n")
    message = _fails([*init, str(ctr_config)])
    assert "already holds a pipeline (dvc.yaml). Give --force" in message
    assert sorted(p.name for p in folder.iterdir()) == ["dvc.yaml"]


def test_pipeline_help_teaches() -> None:
    text = " ".join(_ok(["pipeline", "init", "--help"]).split())
    for option in ("--config", "--data", "--valid", "--remote", "--endpoint-url", "--force"):
        assert option in text
    assert "Without it there is no evaluate stage" in text
    assert "dvc exp run -S train.time_budget=60" in text


def test_without_a_held_out_table_there_is_no_evaluate_stage() -> None:
    from taxonomist.pipeline.stages import dvc_document

    options = {"target": "click", "roles": {"id": "ignore"}, "time_budget": 20}
    document = dvc_document(options, "data/train.csv", None)
    assert list(document["stages"]) == ["validate", "train"] and "plots" not in document
    # validate follows only the options that decide the columns, and only those given
    assert document["stages"]["validate"]["params"] == ["train.target", "train.roles"]
    assert document["stages"]["train"]["metrics"] == [{"reports/train.json": {"cache": False}}]
    with_valid = dvc_document(options, "data/train.parquet", "data/valid.parquet")
    assert with_valid["stages"]["evaluate"]["deps"] == ["model", "data/valid.parquet"]
    plots = [next(iter(p)) for p in with_valid["plots"]]
    assert plots == ["plots/reliability.csv", "plots/roc.csv"]


# -- pipeline init, then real DVC ------------------------------------------------------------
@pytest.fixture(scope="module")
def s3_port() -> int:
    """The port the S3 server will listen on: the project's remote names it before the
    push test starts the server."""
    return free_port()


@dataclass
class Project:
    folder: Path
    env: dict[str, str]
    repro: str  # what the first 'dvc repro' printed

    def run(self, *args: str, cwd: Path | None = None) -> str:
        """Run a command in the project (or ``cwd``); its stdout. It must succeed."""
        done = subprocess.run(
            args, cwd=cwd or self.folder, env=self.env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json"))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, s3_port: int) -> Project:
    """``pipeline init`` on the Avazu sample with a held-out table and an S3 remote, then
    ``dvc repro`` and a first commit, as the README says."""
    require_dvc_tools()
    root = tmp_path_factory.mktemp("dvc")
    dvc_config = root / "dvc-global"
    dvc_config.mkdir()
    (dvc_config / "config").write_text("[core]\n    check_update = false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAXONOMIST_", "AWS_"))}
    env.update(
        HOME=str(root),
        PATH=f"{BIN}{os.pathsep}{env['PATH']}",
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), *filter(None, [env.get("PYTHONPATH")])]),
        TAXONOMIST_HOME=str(root / "home"),
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        DVC_NO_ANALYTICS="1",
        DVC_GLOBAL_CONFIG_DIR=str(dvc_config),
        DVC_SITE_CACHE_DIR=str(root / "dvc-site"),
        **S3_KEYS,
        **GIT_IDENTITY,
    )
    config = root / "ctr.yaml"
    config.write_text(yaml.safe_dump(CTR_OPTIONS | {"name": "avazu-dvc"}))
    folder = root / "ctr-pipeline"
    p = Project(folder, env, repro="")
    p.run(
        "taxonomist", "pipeline", "init", folder.name, "--config", str(config),
        "--data", str(shared("avazu/train.csv")), "--valid", str(shared("avazu/valid.csv")),
        "--remote", f"s3://{BUCKET}/ctr", "--endpoint-url", f"http://127.0.0.1:{s3_port}",
        cwd=root,
    )  # fmt: skip
    p.run("git", "config", "user.name", "Test")
    p.run("git", "config", "user.email", "test@example.com")
    p.repro = p.run("dvc", "repro")
    p.run("git", "add", "-A")
    p.run("git", "commit", "--quiet", "-m", "baseline")
    return p


BUCKET = "taxonomist-dvc"


@pytest.mark.slow
def test_dvc_repro_validates_trains_and_evaluates(project: Project) -> None:
    folder = project.folder
    for stage in ("validate", "train", "evaluate"):
        assert f"Running stage '{stage}'" in project.repro
    tracked = project.run("git", "ls-files").split()
    assert {"dvc.yaml", "dvc.lock", "params.yaml", "data/train.csv.dvc"} <= set(tracked)
    assert "data/train.csv" not in tracked and "model/model.joblib" not in tracked  # DVC's
    params = yaml.safe_load((folder / "params.yaml").read_text())
    assert params == {"train": CTR_OPTIONS | {"name": "avazu-dvc"}}

    shown = project.json("dvc", "metrics", "show")[""]["data"]
    held_out = shown["reports/metrics.json"]["data"]
    assert held_out["n"] == 480 and 0.3 < held_out["log_loss"] < 0.5
    assert 0.55 < held_out["roc_auc"] < 0.9
    assert held_out == json.loads((folder / "reports/metrics.json").read_text())
    cross_validated = shown["reports/train.json"]["data"]
    assert 0.3 < cross_validated["log_loss"] < 0.5 and cross_validated["train_seconds"] > 0

    from taxonomist.registry.export import load_exported

    model = load_exported(folder / "model")
    assert model.info["registry"] == {"name": "avazu-dvc", "version": 1}
    reliability = pd.read_csv(folder / "plots/reliability.csv")
    assert reliability["count"].sum() == 480
    # the reliability table agrees with the model's own probabilities on the held-out rows
    valid = pd.read_csv(folder / "data/valid.csv")
    p_click = model.predict_proba(valid)["1"]
    predicted = reliability["mean_predicted"] @ reliability["count"]
    assert predicted == pytest.approx(p_click.sum(), rel=1e-4)
    assert reliability["observed"] @ reliability["count"] == pytest.approx(valid["click"].sum())

    plots = project.json("dvc", "plots", "show")["data"]
    assert set(plots) == {"plots/reliability.csv", "plots/roc.csv"}
    roc = plots["plots/roc.csv"][0]["content"]
    assert roc["encoding"]["x"]["field"] == "fpr"
    assert len(roc["data"]["values"]) == len(pd.read_csv(folder / "plots/roc.csv"))


@pytest.mark.slow
def test_an_experiment_changes_params_and_dvc_compares_them(project: Project) -> None:
    out = project.run(
        "dvc", "exp", "run", "-S", "train.time_budget=15", "-S", "train.families=[lightgbm]"
    )
    assert "Stage 'validate' didn't change, skipping" in out  # only the data options rerun it
    params = project.json("dvc", "params", "diff")["params.yaml"]
    assert params["train.time_budget"] == {"old": 20, "new": 15, "diff": -5}
    # DVC shows a list param as its text
    assert params["train.families"] == {"old": "['logreg']", "new": "['lightgbm']"}
    now_params = yaml.safe_load((project.folder / "params.yaml").read_text())["train"]
    assert (now_params["time_budget"], now_params["families"]) == (15, ["lightgbm"])
    diff = project.json("dvc", "metrics", "diff")
    now = json.loads((project.folder / "reports/metrics.json").read_text())
    log_loss = diff["reports/metrics.json"]["log_loss"]
    assert log_loss["new"] == now["log_loss"] and log_loss["old"] != log_loss["new"]
    assert "log_loss" in diff["reports/train.json"]
    # the experiment is kept under the baseline commit, with its params and metrics
    workspace, baseline = project.json("dvc", "exp", "show")
    assert workspace["rev"] == "workspace"
    (experiment,) = [rev for exp in baseline["experiments"] for rev in exp["revs"]]
    data = experiment["data"]
    assert data["params"]["params.yaml"]["data"]["train"]["time_budget"] == 15
    assert data["metrics"]["reports/metrics.json"]["data"] == now


@pytest.fixture(scope="module")
def s3(s3_port: int) -> Iterator[Any]:
    """SeaweedFS's S3 server on the port the project's remote names; a boto3 client of it."""
    require_dvc_tools(s3=True)
    with serving_s3(BUCKET, s3_port) as (_, client):
        yield client


@pytest.mark.slow
def test_dvc_push_stores_data_and_model_in_s3(project: Project, s3: Any) -> None:
    folder = project.folder
    assert "files pushed" in project.run("dvc", "push")
    lock = yaml.safe_load((folder / "dvc.lock").read_text())
    (model_out,) = [o for o in lock["stages"]["train"]["outs"] if o["path"] == "model"]
    assert model_out["md5"].endswith(".dir")
    tables = {
        name: yaml.safe_load((folder / f"data/{name}.csv.dvc").read_text())["outs"][0]["md5"]
        for name in ("train", "valid")
    }
    dir_md5 = model_out["md5"]
    listing = json.loads((folder / ".dvc/cache/files/md5" / dir_md5[:2] / dir_md5[2:]).read_text())
    assert sorted(e["relpath"] for e in listing) == ["model.joblib", "model.json"]
    expected = {*tables.values(), dir_md5, *(e["md5"] for e in listing)}

    objects = s3.list_objects_v2(Bucket=BUCKET, Prefix="ctr/")["Contents"]
    pushed = {o["Key"].removeprefix("ctr/files/md5/").replace("/", ""): o["Key"] for o in objects}
    assert set(pushed) == expected
    for md5, key in pushed.items():  # each object holds the bytes its name says
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert hashlib.md5(body).hexdigest() == md5.removesuffix(".dir")
    assert tables["train"] == hashlib.md5((folder / "data/train.csv").read_bytes()).hexdigest()
    assert project.json("dvc", "status", "--cloud") == {}  # nothing left to push
