"""``validate``: the checks training runs before it searches, alone (a pipeline's first
stage)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from taxonomist.cli.options import JsonOpt, LabelsOpt, RoleOpt, TextOpt
from taxonomist.cli.output import echo_json, out
from taxonomist.cli.train import parse_roles, train_config
from taxonomist.errors import TaxonomistError


def validate(
    data: Annotated[
        Path | None,
        typer.Argument(
            help="Data file: CSV/TSV, Parquet or JSON Lines. Default: the --config file's 'data'.",
            show_default=False,
        ),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="The training config (YAML or JSON, top level or under 'train:' as in a DVC "
            "params.yaml): its target, text, roles, time_column and ctr columns are checked.",
        ),
    ] = None,
    target: LabelsOpt = None,
    text: TextOpt = None,
    role: RoleOpt = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Write what was found as JSON: ok, target, roles, rows, classes, warnings "
            "(on an unusable table: ok false and the error).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check that DATA can train a classifier, as 'train' would, without training.

    Exit status 0: usable (warnings name rows or columns left out); 2: unusable, with a
    message that says what to fix (a missing column, one class only, too few rows).

    Example: taxonomist validate train.csv --config params.yaml --report validation.json
    """
    from taxonomist.data.load import load_table
    from taxonomist.models.table_check import check_training_table

    config = train_config(
        data, config_file, target=target, text=text or None, roles=parse_roles(role or []) or None
    )
    assert config.data is not None  # train_config asks for it
    try:
        checked = check_training_table(load_table(config.data), config)
    except TaxonomistError as exc:
        if report is not None:
            _write(report, {"ok": False, "data": config.data, **exc.to_dict()})
        raise
    found = {"data": config.data, **checked.to_dict()}
    if report is not None:
        _write(report, found)
    if as_json:
        echo_json(found)
        return
    r = checked.report
    out.print(
        f"[bold green]Usable[/] for training on '{found['target']}': {r.n_rows_used} of "
        f"{r.n_rows} rows, {r.n_classes} classes."
    )
    by_role: dict[str, list[str]] = {}
    for col, col_role in found["roles"].items():
        if col_role != "target":
            by_role.setdefault(col_role, []).append(col)
    for col_role, cols in by_role.items():
        out.print(f"  {col_role}: {', '.join(cols)}", highlight=False)
    for w in r.warnings:
        out.print(f"[yellow]Note:[/] {w}", highlight=False)
    if report is not None:
        out.print(f"Wrote {report}.")


def _write(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
