"""The arguments and options several commands share, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ModelArg = Annotated[
    str,
    typer.Argument(
        help="Registered model: NAME (its champion, else the latest version), NAME@ALIAS or "
        "NAME/VERSION."
    ),
]
DataArg = Annotated[
    Path,
    typer.Argument(
        help="Data file: CSV/TSV (any of utf-8, cp1251, latin-1; delimiter sniffed), Parquet or "
        "JSON Lines."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
RemoteOpt = Annotated[
    str | None,
    typer.Option(
        "--remote",
        envvar="TAXONOMIST_REMOTE",
        help="Work on a Taxonomist server (e.g. http://localhost:8000) instead of locally. "
        "Needs --token.",
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="TAXONOMIST_TOKEN",
        help="API token for --remote (create one with POST /api/v1/auth/tokens).",
    ),
]
HostOpt = Annotated[str, typer.Option("--host", help="Interface to listen on (0.0.0.0: all).")]
PortOpt = Annotated[int, typer.Option("--port", help="TCP port.", min=1, max=65535)]
LabelsOpt = Annotated[
    str | None,
    typer.Option(
        "--target", "-t", help="Column with the labels (required unless --config gives it)."
    ),
]
TextOpt = Annotated[
    list[str] | None,
    typer.Option("--text", help="A text column (repeat for several). Default: inferred."),
]
RoleOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--role",
        help="Force a column's role, COLUMN=ROLE with ROLE one of text, categorical, numeric, "
        "id, image, time, ignore (repeatable).",
    ),
]
