"""Thin facade over MLflow: log, register, alias, load, delete."""

from taxonomist.registry.store import (
    CHAMPION,
    ModelRef,
    delete,
    list_models,
    load_model,
    parse_ref,
    register_training,
    resolve,
    set_alias,
    show_model,
)

__all__ = [
    "CHAMPION",
    "ModelRef",
    "delete",
    "list_models",
    "load_model",
    "parse_ref",
    "register_training",
    "resolve",
    "set_alias",
    "show_model",
]
