"""Every example in the README runs as written: the shell blocks with bash, the Python blocks
with this interpreter, in one folder (the retrieval examples get the shared SQuAD sample as
``squad.json`` and ``held_out.json``), against a fresh TAXONOMIST_HOME. The served API runs on
a free port instead of 8000; nothing else is changed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import ROOT, free_port, shared

README = ROOT / "README.md"
BIN = Path(sys.executable).parent
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.M | re.S)


def blocks(section: str) -> list[tuple[str, str]]:
    """The fenced (language, code) blocks under the README's ``## section`` heading."""
    text = README.read_text()
    start = text.index(f"## {section}\n")
    end = text.find("\n## ", start + 1)
    return FENCE.findall(text[start : end if end > 0 else None])


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


def run(language: str, code: str, cwd: Path, env: dict[str, str]) -> str:
    command = (
        ["bash", "-euo", "pipefail", "-c", code]
        if language == "bash"
        else [
            sys.executable,
            "-c",
            code,
        ]
    )
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{code}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    return done.stdout


def test_the_two_commands_come_first() -> None:
    language, code = FENCE.findall(README.read_text())[0]
    assert language == "bash"
    assert [line.split("#")[0].strip() for line in code.strip().splitlines()] == [
        "make demo",
        "make test",
    ]


@pytest.mark.slow
def test_use_it(workdir: tuple[Path, dict[str, str]]) -> None:
    folder, env = workdir
    (shell, cli), (yaml_lang, config), (python, library) = blocks("Use it")
    assert (shell, yaml_lang, python) == ("bash", "yaml", "python")
    out = run(shell, cli, folder, env)
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
    run(python, library, folder, env)


@pytest.mark.slow
def test_serve_it(workdir: tuple[Path, dict[str, str]]) -> None:
    folder, env = workdir
    (_, serve), (python, client) = blocks("Serve it")
    port = free_port()
    if not (folder / "apps.csv").exists():
        run("bash", "taxonomist sample apps.csv", folder, env)
    server = subprocess.Popen(
        ["bash", "-c", serve.split("#")[0].replace("8000", str(port))],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        else:
            raise AssertionError("the README's server did not become ready")
        code = client.replace("localhost:8000", f"127.0.0.1:{port}")
        run(python, code + "\nassert job['state'] == 'succeeded', job\n", folder, env)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


@pytest.mark.slow
def test_find_the_passage(workdir: tuple[Path, dict[str, str]]) -> None:
    pytest.importorskip("sentence_transformers")
    folder, env = workdir
    sample = shared("squad/squad_v2_part1.json")
    shutil.copyfile(sample, folder / "squad.json")
    shutil.copyfile(sample, folder / "held_out.json")
    ((shell, code),) = blocks("Find the passage that answers a question")
    out = run(shell, code, folder, env)
    assert '"top1"' in out and "Removed 1 retrieval model" in out
