"""A model outside the registry: a folder with the pickled model (``model.joblib``) and what
it is (``model.json``: name, version, target, classes, training config, package pins).

A pipeline stage can declare the folder as its output (DVC caches and pushes it), and
``evaluate`` or ``load_exported`` read it back without the MLflow store it came from. Loading
unpickles the file, as the registry does: load only exports you trust.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taxonomist.errors import InvalidParameterError, NotFoundError

if TYPE_CHECKING:
    from taxonomist.registry.registry import Registry

MODEL_FILE = "model.joblib"
META_FILE = "model.json"
FORMAT = "taxonomist-model"
FORMAT_VERSION = 1


def export_model(
    model: Any,
    folder: str | Path,
    *,
    name: str | None = None,
    version: int | None = None,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``model`` to ``folder`` (made if missing) as ``model.joblib`` and ``model.json``;
    ``name``/``version``: where it is registered, ``config``: the config it was trained with.
    Each file is written whole or not at all. Returns the ``model.json`` contents plus
    ``path``."""
    import joblib

    from taxonomist.registry.registry import pip_requirements

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InvalidParameterError(
            f"Cannot export to '{folder}': it is a file. Give a folder (it is made if missing)."
        )
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": version,
        "target": model.schema.target,
        "classes": [str(c) for c in model.classes],
        "metric": model.metric,
        "ensemble": model.families,
        "config": config,
        "requirements": pip_requirements(),
    }
    with _replacing(folder / MODEL_FILE) as tmp:
        joblib.dump(model, tmp, compress=3)
    with _replacing(folder / META_FILE) as tmp:
        tmp.write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return meta | {"path": str(folder)}


def export_version(registry: Registry, ref: str, folder: str | Path) -> dict[str, Any]:
    """Export the registered version ``ref`` resolves to (see :func:`export_model`)."""
    mv = registry.resolve(ref)
    pinned = f"{mv.name}/{mv.version}"
    return export_model(
        registry.load(pinned),
        folder,
        name=mv.name,
        version=int(mv.version),
        config=registry.config(pinned),
    )


def exported_model_file(path: str | Path) -> Path | None:
    """The ``model.joblib`` of the export at ``path`` (its folder or the file itself);
    ``None`` when nothing is at ``path`` (then it may be a registry reference). A folder
    without ``model.joblib`` raises: it was meant as an export but is none."""
    path = Path(path)
    if path.is_dir():
        file = path / MODEL_FILE
        if not file.is_file():
            raise NotFoundError(
                f"The folder '{path}' holds no {MODEL_FILE}, so it is not an exported model. "
                "Write one with 'taxonomist models export REF DIR' or 'taxonomist train ... "
                "--export DIR'."
            )
        return file
    if path.is_file():
        return path
    return None


def load_exported(path: str | Path) -> Any:
    """The model exported at ``path`` (a folder from :func:`export_model`, or its
    ``model.joblib``), with its registry name and version in ``model.info``."""
    import joblib

    file = exported_model_file(path)
    if file is None:
        raise NotFoundError(f"No exported model at '{path}'.")
    try:
        model = joblib.load(file)
    except Exception as exc:  # a truncated file, or not a pickle at all
        raise InvalidParameterError(
            f"'{file}' is not a readable exported model ({type(exc).__name__}: {exc}). "
            "Export it again."
        ) from None
    meta_file = file.with_name(META_FILE)
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    info = getattr(model, "info", None)
    if isinstance(info, dict) and meta.get("name"):
        info.setdefault("registry", {"name": meta["name"], "version": meta.get("version")})
    return model


def load_model(source: str, registry: Registry) -> Any:
    """The model exported at ``source`` when that path exists, else the registered version
    the reference ``source`` names (``NAME``, ``NAME@ALIAS``, ``NAME/VERSION``)."""
    if exported_model_file(source) is not None:
        return load_exported(source)
    return registry.load(source)


@contextmanager
def _replacing(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target`` that replaces it when the block ends without an
    error (and is removed when it raises)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
