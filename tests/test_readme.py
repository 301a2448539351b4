"""Every example in the README runs as written: the shell blocks with bash, the Python blocks
with this interpreter, in one folder (the retrieval examples get the shared SQuAD sample as
``squad.json`` and ``held_out.json``, the DVC example the shared Avazu sample as ``train.csv``
and ``valid.csv``), against a fresh TAXONOMIST_HOME. The served API runs on a free port instead
of 8000, the S3 server of the DVC example (SeaweedFS) on a free port instead of 9000; nothing else
is changed. The demo's block runs on the home the demo made, in tests/cli/test_demo.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import (
    GIT_IDENTITY,
    ROOT,
    S3_KEYS,
    free_port,
    readme_blocks,
    require_dvc_tools,
    run_block,
    serving_s3,
    shared,
    wait_http,
)

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("readme")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAXONOMIST_")}
    env.update(
        TAXONOMIST_HOME=str(folder / "home"),
        PATH=f"{BIN}{os.pathsep}{env['PATH']}",
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
    )
    if os.environ.get("TAXONOMIST_SHARED"):
        env["TAXONOMIST_SHARED"] = os.environ["TAXONOMIST_SHARED"]
    yield folder, env


def test_the_two_commands_come_first() -> None:
    language, code = readme_blocks()[0]
    assert language == "bash"
    assert [line.split("#")[0].strip() for line in code.strip().splitlines()] == [
        "make demo",
        "make test",
    ]


@pytest.mark.slow
def test_use_it(workdir: tuple[Path, dict[str, str]]) -> None:
    folder, env = workdir
    (shell, cli), (yaml_lang, config), (python, library) = readme_blocks("Use it")
    assert (shell, yaml_lang, python) == ("bash", "yaml", "python")
    out = run_block(shell, cli, folder, env)
    assert "Wrote apps.csv" in out and "Deleted version 2 of apps" in out
    assert (folder / "scored.csv").exists()
    assert "target: prime_genre" in (folder / "apps.yaml").read_text()
    # the YAML example is a valid config
    from taxonomist.models.config import TrainConfig

    (folder / "example.yaml").write_text(config)
    assert TrainConfig.from_file(folder / "example.yaml").families == [
        "linear_svm",
        "logreg",
        "lightgbm",
    ]
    run_block(python, library, folder, env)


@pytest.mark.slow
def test_serve_it(workdir: tuple[Path, dict[str, str]]) -> None:
    folder, env = workdir
    (_, serve), (python, client) = readme_blocks("Serve it")
    port = free_port()
    if not (folder / "apps.csv").exists():
        run_block("bash", "taxonomist sample apps.csv", folder, env)
    server = subprocess.Popen(
        ["bash", "-c", serve.split("#")[0].replace("8000", str(port))],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/ready", timeout=90)
        code = client.replace("localhost:8000", f"127.0.0.1:{port}")
        run_block(python, code + "\nassert job['state'] == 'succeeded', job\n", folder, env)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


@pytest.mark.slow
def test_watch_it(workdir: tuple[Path, dict[str, str]]) -> None:
    import json

    folder, env = workdir
    ((shell, code),) = readme_blocks("Watch it")
    out = run_block(shell, code, folder, env)
    assert "Wrote new.csv: 702 App Store apps" in out
    assert "<h1>Drift report: shop version 1</h1>" in (folder / "drift.html").read_text()
    report = json.loads((folder / "drift.json").read_text())
    assert report["source"] == "file" and report["n_current"] == 702
    assert report["verdict"] == "ok", report["reasons"]  # a random later batch: no drift
    assert ("promoted: challenger version 2" in out) or ("kept: champion version 1" in out)
    assert "retrains on a drift verdict, 500 new labels" in out


@pytest.mark.slow
def test_version_it_with_dvc(workdir: tuple[Path, dict[str, str]]) -> None:
    import yaml

    require_dvc_tools(s3=True)
    folder, env = workdir
    (config_lang, config), (shell, code) = readme_blocks("Version it with DVC")
    assert (config_lang, shell) == ("yaml", "bash")
    (folder / "ctr.yaml").write_text(config)
    shutil.copyfile(shared("avazu/train.csv"), folder / "train.csv")
    shutil.copyfile(shared("avazu/valid.csv"), folder / "valid.csv")
    env = env | S3_KEYS | GIT_IDENTITY | {"DVC_NO_ANALYTICS": "1"}
    with serving_s3("my-bucket") as (url, s3):
        port = url.rsplit(":", 1)[1]
        out = run_block(shell, code.replace("127.0.0.1:9000", f"127.0.0.1:{port}"), folder, env)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="my-bucket")["Contents"]]
    project = folder / "ctr"
    assert "Running stage 'evaluate'" in out and "Stage 'validate' didn't change" in out
    assert "train.time_budget" in out and "reports/metrics.json" in out  # the two diffs
    params = yaml.safe_load((project / "params.yaml").read_text())["train"]
    assert params == yaml.safe_load(config) | {"name": "ctr", "time_budget": 40}
    # train.csv, valid.csv, and the model folder (its listing and two files)
    assert len(keys) == 5 and all(k.startswith("ctr/files/md5/") for k in keys)
    assert sum(k.endswith(".dir") for k in keys) == 1
    assert (project / "dvc_plots/index.html").exists()


@pytest.mark.slow
def test_find_the_passage(workdir: tuple[Path, dict[str, str]]) -> None:
    pytest.importorskip("sentence_transformers")
    folder, env = workdir
    sample = shared("squad/squad_v2_part1.json")
    shutil.copyfile(sample, folder / "squad.json")
    shutil.copyfile(sample, folder / "held_out.json")
    ((shell, code),) = readme_blocks("Find the passage that answers a question")
    out = run_block(shell, code, folder, env)
    assert '"top1"' in out and "Removed 1 retrieval model" in out


@pytest.mark.slow
def test_pictures_and_other_languages(workdir: tuple[Path, dict[str, str]]) -> None:
    pytest.importorskip("skimage")
    folder, env = workdir
    ((shell, code),) = readme_blocks("Pictures and other languages")
    out = run_block(shell, code, folder, env)
    assert "Wrote faces.zip" in out and "Predicted 200 rows with faces" in out
    import pandas as pd

    scored = pd.read_csv(folder / "faces-scored.csv")
    assert (scored["prediction"] == scored["label"]).mean() >= 0.9


@pytest.mark.slow
def test_outgrowing_one_machine(workdir: tuple[Path, dict[str, str]]) -> None:
    """The local cluster comes up, every part answers, and it goes down leaving nothing."""
    folder, env = workdir
    ((shell, code),) = readme_blocks("Outgrowing one machine")
    state = folder / "cluster"
    code = code.replace("/tmp/taxonomist-cluster", str(state))
    env = {k: v for k, v in env.items() if not k.startswith("AWS_")}
    out = run_block(shell, code, ROOT, env | {"COLUMNS": "200"})
    for part in ("database", "tracking", "artifacts", "dask", "qdrant"):
        assert re.search(rf"^ok +{part} ", out, re.M), out
    assert "FAILS" not in out and not state.exists(), out
