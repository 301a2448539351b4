"""``pipeline init``: a folder that ``dvc repro`` turns into a trained, evaluated model.

Everything is checked before anything is written (the config, the tables against it, the
folder, the remote), so a mistake leaves the folder as it was. Then: ``git init`` and
``dvc init`` where needed, the tables copied into ``data/`` and tracked with ``dvc add`` (DVC,
not git, keeps their bytes), ``params.yaml`` and ``dvc.yaml`` written
(:mod:`taxonomist.pipeline.stages`), the S3 remote configured, and the new files staged in
git. Git and DVC run as their own command lines (DVC as ``python -m dvc`` of this
interpreter): those are their stable interfaces.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from taxonomist.errors import (
    ConflictError,
    ExternalToolError,
    InvalidParameterError,
    MissingExtraError,
)
from taxonomist.models.config import PARAMS_SECTION, TrainConfig, read_config_file
from taxonomist.pipeline.stages import (
    DVC_FILE,
    PARAMS_FILE,
    PARAMS_HEADER,
    dvc_document,
    params_document,
)

logger = logging.getLogger(__name__)
REMOTE_NAME = "storage"
_S3_URL = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")


@dataclass
class PipelineProject:
    """A project ``init_project`` wrote: where, its stages, its tables (paths inside it),
    its remote, and whether it started a git repository."""

    folder: Path
    stages: list[str]
    train_data: str
    valid_data: str | None
    remote: str | None
    new_git_repository: bool
    written: list[str] = field(default_factory=list)


def init_project(
    folder: str | Path,
    config: str | Path,
    *,
    data: str | Path | None = None,
    valid: str | Path | None = None,
    remote: str | None = None,
    endpoint_url: str | None = None,
    force: bool = False,
) -> PipelineProject:
    """Write a DVC project in ``folder`` that trains with ``config`` (a training config file,
    flat or params layout) on ``data`` (default: the config's ``data``, relative to the
    working directory) and scores on ``valid`` (no evaluate stage without it); ``remote``
    (``s3://bucket/path``, with ``endpoint_url`` for a server other than AWS) becomes DVC's
    default remote. An existing ``dvc.yaml`` or ``params.yaml`` is replaced only with
    ``force``."""
    folder = Path(folder)
    _require_tools()
    options = _training_options(Path(config))
    train_source = _table_path(data if data is not None else options.get("data"), "--data")
    valid_source = _table_path(valid, "--valid") if valid is not None else None
    _check_folder(folder, force)
    _check_remote(remote, endpoint_url)
    options.pop("data", None)  # the stages name the table: a path here would go stale
    options.setdefault("name", _model_name(folder))
    _check_tables(TrainConfig.parse(options, source=f"'{config}'"), train_source, valid_source)

    folder.mkdir(parents=True, exist_ok=True)
    new_git = _ensure_git(folder)
    _ensure_dvc(folder)
    train_data = _copy_table(train_source, folder, "train")
    valid_data = _copy_table(valid_source, folder, "valid") if valid_source else None
    (folder / PARAMS_FILE).write_text(
        PARAMS_HEADER.format(section=PARAMS_SECTION)
        + _yaml(params_document(options), flow_lists=True)
    )
    document = dvc_document(options, train_data, valid_data)
    (folder / DVC_FILE).write_text(_yaml(document))
    tables = [t for t in (train_data, valid_data) if t]
    _dvc(folder, "add", "--quiet", *tables)
    if remote:
        _dvc(folder, "remote", "add", "--default", "--force", REMOTE_NAME, remote)
        if endpoint_url:
            _dvc(folder, "remote", "modify", REMOTE_NAME, "endpointurl", endpoint_url)
    written = [PARAMS_FILE, DVC_FILE, *(f"{t}.dvc" for t in tables), "data/.gitignore"]
    _git(folder, "add", "--", *written, ".dvc/config")
    return PipelineProject(
        folder=folder,
        stages=list(document["stages"]),
        train_data=train_data,
        valid_data=valid_data,
        remote=remote,
        new_git_repository=new_git,
        written=written,
    )


# -- checks (before anything is written) -----------------------------------------------------
def _require_tools() -> None:
    if importlib.util.find_spec("dvc") is None:
        raise MissingExtraError("A DVC pipeline", "dvc", "dvc")
    if shutil.which("git") is None:
        raise ExternalToolError(
            "A DVC pipeline needs git, which is not on PATH. Install it (e.g. 'apt-get "
            "install git') and run the command again."
        )


def _training_options(config: Path) -> dict[str, Any]:
    """The config file's options as written (validated, so a missing or unknown key is
    named now rather than when the train stage runs)."""
    options, source = read_config_file(config)
    TrainConfig.parse(options, source=source)
    return dict(options)


def _table_path(path: str | Path | None, option: str) -> Path:
    if path is None:
        raise InvalidParameterError(
            f"Which table should the pipeline train on? Give {option} FILE, or 'data' in the "
            "config file."
        )
    path = Path(path)
    if not path.is_file():
        raise InvalidParameterError(
            f"The table '{path}' given as {option} does not exist (or is not a file). "
            "Give the path of a CSV, Parquet or JSON Lines file."
        )
    return path


def _check_folder(folder: Path, force: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise InvalidParameterError(f"'{folder}' is a file; give a folder for the pipeline.")
    taken = [name for name in (DVC_FILE, PARAMS_FILE) if (folder / name).exists()]
    if taken and not force:
        raise ConflictError(
            f"'{folder}' already holds a pipeline ({', '.join(taken)}). Give --force to "
            "write it again (dvc.yaml, params.yaml and the tables in data/ are replaced), or "
            "choose a new folder."
        )


def _check_remote(remote: str | None, endpoint_url: str | None) -> None:
    if remote is None:
        if endpoint_url is not None:
            raise InvalidParameterError(
                "--endpoint-url is the S3 server of --remote: give --remote s3://BUCKET/PATH too."
            )
        return
    if not _S3_URL.match(remote):
        raise InvalidParameterError(
            f"--remote must be an S3 URL, s3://BUCKET or s3://BUCKET/PATH (a bucket name of "
            f"3-63 lowercase letters, digits, '.' or '-'); got '{remote}'."
        )
    if endpoint_url is not None and not endpoint_url.startswith(("http://", "https://")):
        raise InvalidParameterError(
            f"--endpoint-url must be an http:// or https:// URL; got '{endpoint_url}'."
        )


def _check_tables(config: TrainConfig, train: Path, valid: Path | None) -> None:
    """What the validate stage will check, now; the held-out table needs the target."""
    from taxonomist.data.load import load_table
    from taxonomist.data.schema import require_column
    from taxonomist.models.table_check import check_training_table

    check_training_table(load_table(train), config)
    if valid is not None:
        columns = [str(c) for c in load_table(valid).columns]
        require_column(config.target, columns, what=f"target (in the held-out table {valid})")


def _model_name(folder: Path) -> str:
    """A registered-model name from the folder's name."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", folder.resolve().name).strip("-._")
    return stem[:100] or "pipeline"


# -- writing ---------------------------------------------------------------------------------
def _ensure_git(folder: Path) -> bool:
    """``git init`` unless ``folder`` is inside a work tree already; whether it ran."""
    inside = subprocess.run(
        ["git", "rev-parse", "--is-inside-work-tree"], cwd=folder, capture_output=True, text=True
    )
    if inside.returncode == 0 and inside.stdout.strip() == "true":
        return False
    _git(folder, "init", "--quiet")
    return True


def _ensure_dvc(folder: Path) -> None:
    if (folder / ".dvc").is_dir():
        return
    top = _git(folder, "rev-parse", "--show-toplevel").strip()
    subdir = ["--subdir"] if Path(top).resolve() != folder.resolve() else []
    _dvc(folder, "init", "--quiet", *subdir)


def _copy_table(source: Path, folder: Path, stem: str) -> str:
    """Copy ``source`` to ``data/<stem><suffix>`` in ``folder``; the path inside it."""
    relative = f"data/{stem}{source.suffix.lower()}"
    target = folder / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if not (target.exists() and os.path.samefile(source, target)):
        target.unlink(missing_ok=True)  # a DVC-tracked table may be a read-only link
        shutil.copyfile(source, target)
    return relative


def _yaml(document: dict[str, Any], *, flow_lists: bool = False) -> str:
    """``document`` as YAML in the order given; ``flow_lists``: lists of plain values on one
    line (``families: [logreg, fm]``), as people write a config."""
    return yaml.safe_dump(
        document,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=None if flow_lists else False,
        width=1000,
    )


def _git(folder: Path, *args: str) -> str:
    return _run(["git", *args], folder)


def _dvc(folder: Path, *args: str) -> str:
    return _run([sys.executable, "-m", "dvc", *args], folder)


def _run(command: list[str], cwd: Path) -> str:
    logger.info("running %s in %s", " ".join(command), cwd)
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        shown = " ".join(["dvc", *command[3:]] if command[0] == sys.executable else command)
        said = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise ExternalToolError(
            f"'{shown}' failed in '{cwd}' (exit status {done.returncode}): {' '.join(said)}",
            details={"command": shown, "returncode": done.returncode},
        )
    return done.stdout
