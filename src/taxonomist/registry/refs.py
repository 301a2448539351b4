"""Model references: ``name`` (the champion, else the latest version), ``name@alias`` or
``name/version``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from taxonomist.errors import InvalidParameterError

CHAMPION = "champion"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version:
            return f"{self.name}/{self.version}"
        return f"{self.name}@{self.alias}" if self.alias else self.name


def parse_ref(ref: str | ModelRef) -> ModelRef:
    """``name``, ``name@alias`` or ``name/version`` -> :class:`ModelRef`."""
    if isinstance(ref, ModelRef):
        return ref
    ref = ref.strip()
    if "@" in ref:
        name, alias = ref.split("@", 1)
        out = ModelRef(name, alias=alias)
    elif "/" in ref:
        name, version = ref.rsplit("/", 1)
        if not version.isdigit():
            raise InvalidParameterError(
                f"Model reference '{ref}': the version after '/' must be a number, "
                "e.g. 'apps/3'. Use 'name@alias' for an alias."
            )
        out = ModelRef(name, version=version)
    else:
        out = ModelRef(ref)
    check_name(out.name)
    return out


def check_name(name: str) -> None:
    """Raise a clear error unless ``name`` is a valid registered-model name."""
    if not _NAME.match(name):
        raise InvalidParameterError(
            f"Invalid model name '{name}': use letters, digits, '.', '_' or '-' (at most 100 "
            "characters, starting with a letter or digit)."
        )
