"""``pipeline init``: a DVC project whose stages are taxonomist commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from taxonomist.cli.options import JsonOpt
from taxonomist.cli.output import echo_json, out

app = typer.Typer(
    help="Version data, models and metrics with DVC: 'pipeline init' writes the project.",
    no_args_is_help=True,
)


@app.command("init")
def pipeline_init(
    folder: Annotated[
        Path,
        typer.Argument(
            help="Folder of the DVC project (made if missing; git and DVC are initialised "
            "there unless it is in a repository already).",
            show_default=False,
        ),
    ],
    config: Annotated[
        Path,
        typer.Option(
            "--config",
            help="Training config (YAML or JSON, as for 'train --config'); its options become "
            "params.yaml's 'train' section. Its 'data' is the training table unless --data "
            "is given.",
        ),
    ],
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Training table (default: the config's 'data')."),
    ] = None,
    valid: Annotated[
        Path | None,
        typer.Option(
            "--valid",
            help="Held-out table with the target column: the evaluate stage scores the model "
            "on it. Without it there is no evaluate stage (nothing is split off the training "
            "table); the metrics are then the cross-validated ones of the train stage.",
        ),
    ] = None,
    remote: Annotated[
        str | None,
        typer.Option(
            "--remote",
            help="Default DVC remote, s3://BUCKET/PATH: 'dvc push' stores the tables and "
            "models there. Credentials come from the usual AWS variables or files.",
        ),
    ] = None,
    endpoint_url: Annotated[
        str | None,
        typer.Option(
            "--endpoint-url",
            help="S3 server of --remote when it is not AWS (MinIO, SeaweedFS, moto), e.g. "
            "http://127.0.0.1:9000.",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace an existing dvc.yaml, params.yaml and data/ tables."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write a DVC project: stages validate -> train -> evaluate, each a taxonomist command.

    The tables are copied into FOLDER/data and tracked with 'dvc add'; params.yaml holds the
    training config under 'train:'; dvc.yaml declares the exported model (model/) as an
    output, reports/train.json and reports/metrics.json as metrics, plots/reliability.csv and
    plots/roc.csv as plots. Everything is checked first (config keys, columns, the folder),
    so a mistake writes nothing. Then, in FOLDER:

      dvc repro  ·  git add -A && git commit -m baseline  ·  dvc exp run -S
    train.time_budget=60  ·  dvc params diff  ·  dvc metrics diff  ·  dvc push

    Needs git and the 'dvc' extra: pip install 'taxonomist[dvc]'.
    """
    from taxonomist.pipeline import init_project

    project = init_project(
        folder,
        config,
        data=data,
        valid=valid,
        remote=remote,
        endpoint_url=endpoint_url,
        force=force,
    )
    if as_json:
        echo_json(
            {
                "folder": str(project.folder),
                "stages": project.stages,
                "train_data": project.train_data,
                "valid_data": project.valid_data,
                "remote": project.remote,
                "new_git_repository": project.new_git_repository,
                "written": project.written,
            }
        )
        return
    out.print(
        f"[bold green]Wrote[/] a DVC pipeline in {folder}: {' -> '.join(project.stages)}.",
        highlight=False,
    )
    if project.valid_data is None:
        out.print(
            "[yellow]No evaluate stage:[/] no --valid table was given, so the model is not "
            "scored on held-out rows; the metrics are the train stage's cross-validated ones "
            "(reports/train.json). Run it again with --valid HELD_OUT.csv --force to add one.",
            highlight=False,
        )
    tables = ", ".join(t for t in (project.train_data, project.valid_data) if t)
    out.print(f"Tables tracked by DVC: {tables}.", highlight=False)
    if project.remote:
        out.print(f"DVC remote: {project.remote} ('dvc push' stores data and models).")
    out.print(
        f"Next: cd {folder} && dvc repro && git add -A && git commit -m baseline; "
        "then dvc exp run -S train.time_budget=60, dvc metrics diff"
        + (", dvc push." if project.remote else "."),
        highlight=False,
    )
