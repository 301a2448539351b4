"""docker-compose.yml and the Dockerfile, without a container engine: the compose file against
the Compose Specification's JSON schema, and every command, option, setting and mounted file
it names against the code and the checkout. The commands are the local cluster's (up.sh),
which tests/test_cluster.py runs: the compose file is exercised by proxy."""

from __future__ import annotations

import copy
import importlib.resources
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from taxonomist.config import Settings
from tests.conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"
UP = ROOT / "deploy/local-cluster/up.sh"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def schema_errors(doc: dict[str, Any]) -> list[str]:
    """The Compose Specification's schema (as check-jsonschema vendors it) on ``doc``."""
    text = (
        importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
        .joinpath("compose-spec.json")
        .read_text()
    )
    schema = json.loads(text)
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(doc)]


def ours(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the Taxonomist image."""
    return {n: s for n, s in compose["services"].items() if s.get("image") == "taxonomist:latest"}


def test_the_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    assert schema_errors(compose) == []
    broken = copy.deepcopy(compose)  # the schema does catch a mistake
    broken["services"]["api"]["comand"] = broken["services"]["api"].pop("command")
    assert any("comand" in e for e in schema_errors(broken))
    wanted = {"api", "ui", "worker", "scheduler", "postgres", "mlflow", "s3", "qdrant"}
    assert wanted | {"prometheus", "grafana"} <= set(compose["services"])
    for name in wanted - {"worker", "qdrant"}:
        assert "healthcheck" in compose["services"][name], name
    assert compose["services"]["worker"]["deploy"]["replicas"] == 2
    assert {"postgres", "s3", "qdrant", "grafana", "prometheus"} <= set(compose["volumes"])


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return command if isinstance(command, list) else command.split()


def test_every_command_and_option_exists(compose: dict[str, Any]) -> None:
    for name, service in ours(compose).items():
        program, *args = _command(service)
        if program == "python":
            continue  # s3-init's one line
        words = [a for a in args if not a.startswith("-")]
        sub = words[0]
        helped = subprocess.run(
            [str(BIN / program), sub, "--help"],
            capture_output=True,
            text=True,
            env={"COLUMNS": "200", "PATH": str(BIN)},
        )
        assert helped.returncode == 0, (name, helped.stderr)
        for option in (a.split("=")[0] for a in args if a.startswith("--")):
            assert re.search(rf"{re.escape(option)}\b", helped.stdout), (name, option)


def test_the_local_cluster_runs_the_same_commands(compose: dict[str, Any]) -> None:
    up = UP.read_text()
    for name, service in ours(compose).items():
        program, *args = _command(service)
        if program == "python":
            continue
        sub = next(a for a in args if not a.startswith("-"))
        assert f'"$BIN/{program}" {sub}' in up, (name, program, sub)


def test_every_setting_it_names_is_one(compose: dict[str, Any]) -> None:
    known = {f"TAXONOMIST_{n.upper()}" for n in Settings.model_fields}
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        known |= set(getattr(alias, "choices", []) or [])
    known.add("TAXONOMIST_API_URL")  # the UI's --api-url
    named = set()
    for service in compose["services"].values():
        named |= {k for k in service.get("environment", {}) if k.startswith("TAXONOMIST_")}
    assert named and named <= known, named - known
    assert "TAXONOMIST_ARTIFACTS_URI" in named and "TAXONOMIST_MLFLOW_TRACKING_URI" in named


def test_every_file_it_mounts_is_in_the_checkout(compose: dict[str, Any]) -> None:
    paths = [c["file"] for c in compose.get("configs", {}).values() if "file" in c]
    for service in compose["services"].values():
        paths += [v.split(":")[0] for v in service.get("volumes", []) if v.startswith("./")]
    assert paths
    for path in paths:
        assert (ROOT / path).exists(), path
    prometheus = yaml.safe_load((ROOT / "deploy/compose/prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert job["dns_sd_configs"][0]["names"] == ["api"]  # each API replica its own target


def test_the_image_is_slim_cpu_only_and_not_root() -> None:
    docker = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in docker
    assert "torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in docker
    users = re.findall(r"^USER (\S+)", docker, re.M)
    assert users and users[-1] != "root"
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", docker, re.M).group(1))  # type: ignore[union-attr]
    assert cmd[:2] == ["taxonomist", "serve"]
