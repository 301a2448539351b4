"""Thin facade over MLflow: log, register, alias, load, delete."""

from taxonomist.registry.store import (
    CHAMPION,
    ModelRef,
    delete,
    list_models,
    load_model,
    loaded_models,
    parse_ref,
    register_training,
    resolve,
    run_artifact,
    set_alias,
    show_model,
    unload,
)

__all__ = [
    "CHAMPION",
    "ModelRef",
    "delete",
    "list_models",
    "load_model",
    "loaded_models",
    "parse_ref",
    "register_training",
    "resolve",
    "run_artifact",
    "set_alias",
    "show_model",
    "unload",
]
