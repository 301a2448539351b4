"""``models list | show | alias | export | delete``: the model registry, here or on a server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from taxonomist.cli.backend import backend_for
from taxonomist.cli.options import JsonOpt, ModelArg, RemoteOpt, TokenOpt
from taxonomist.cli.output import echo_json, echo_text, out

app = typer.Typer(
    help="List, inspect, alias, export and delete registered models.", no_args_is_help=True
)


@app.command("list")
def models_list(as_json: JsonOpt = False, remote: RemoteOpt = None, token: TokenOpt = None) -> None:
    """Registered models with their versions, scores and aliases."""
    data = backend_for(remote, token).list_models()
    if as_json:
        echo_json(data)
        return
    if not data:
        out.print(
            "No registered model yet. Train one: taxonomist train DATA --target COL --name NAME"
        )
        return
    table = Table("model", "version", "aliases", "metric", "score", "best family")
    for m in data:
        for v in m["versions"]:
            table.add_row(
                m["name"],
                str(v["version"]),
                ", ".join(v["aliases"]),
                v["metric"] or "",
                f"{v['primary']:.4f}" if v["primary"] else "",
                v["best_family"] or "",
            )
    out.print(table)


@app.command("show")
def models_show(
    model: ModelArg,
    config: Annotated[
        bool,
        typer.Option(
            "--config",
            help="Print the version's training config as YAML (JSON with --json); train it "
            "again with 'taxonomist train DATA --config FILE'.",
        ),
    ] = False,
    as_json: JsonOpt = False,
    remote: RemoteOpt = None,
    token: TokenOpt = None,
) -> None:
    """One model version: metrics, classes, column roles, ensemble."""
    backend = backend_for(remote, token)
    if config:
        _show_config(backend.model_config(model), model, as_json)
        return
    data = backend.show_model(model)
    if as_json:
        echo_json(data)
        return
    out.print(
        f"[bold]{data['name']}[/] version {data['version']} "
        f"{'(' + ', '.join(data['aliases']) + ')' if data['aliases'] else ''}"
    )
    out.print(
        f"  target: {data['target']} · {len(data['classes'])} classes · "
        f"{data['metric']} {data['primary']}"
    )
    out.print(f"  columns: {data['roles']}")
    out.print(f"  ensemble: {data['ensemble']}")
    out.print(f"  promotion: {data['promotion']}")


def _show_config(config: dict[str, object] | None, model: str, as_json: bool) -> None:
    if config is None:
        from taxonomist.errors import NotFoundError

        raise NotFoundError(
            f"'{model}' has no stored training config: it was registered before configs were "
            "stored. Train it again to get one."
        )
    if as_json:
        echo_json(config)
        return
    import yaml

    echo_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))


@app.command("alias")
def models_alias(
    model: Annotated[str, typer.Argument(help="NAME/VERSION to point the alias at.")],
    alias: Annotated[str, typer.Option("--alias", help="Alias name.")] = "champion",
    as_json: JsonOpt = False,
    remote: RemoteOpt = None,
    token: TokenOpt = None,
) -> None:
    """Point an alias (default: champion) at a version, e.g. 'models alias apps/3'."""
    data = backend_for(remote, token).set_alias(model, alias)
    if as_json:
        echo_json(data)
    else:
        out.print(f"{data['name']}@{data['alias']} -> version {data['version']}")


@app.command("export")
def models_export(
    model: ModelArg,
    folder: Annotated[
        Path,
        typer.Argument(
            help="Folder to write model.joblib and model.json into (made if missing; files "
            "of an earlier export are replaced)."
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Write a registered version to a folder that needs no registry: model.joblib (the
    model) and model.json (name, version, target, classes, training config, package pins).

    'taxonomist evaluate FOLDER DATA' scores it; a DVC stage can declare the folder as its
    output. Works on this machine's registry (TAXONOMIST_HOME).
    """
    from taxonomist.registry import get_registry
    from taxonomist.registry.export import export_version

    meta = export_version(get_registry(), model, folder)
    if as_json:
        echo_json(meta)
    else:
        out.print(
            f"Exported {meta['name']} version {meta['version']} to {folder} "
            f"(target {meta['target']}, {len(meta['classes'])} classes)."
        )


@app.command("delete")
def models_delete(
    model: Annotated[str, typer.Argument(help="NAME/VERSION (one version) or NAME (all).")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
    remote: RemoteOpt = None,
    token: TokenOpt = None,
) -> None:
    """Delete one version or a whole registered model."""
    backend = backend_for(remote, token)
    if not yes and sys.stdin.isatty() and not typer.confirm(f"Delete {model}?"):
        raise typer.Exit(1)
    data = backend.delete_model(model)
    if as_json:
        echo_json({"deleted": data})
    else:
        what = f"version {data['version']} of " if data["version"] else "all versions of "
        out.print(f"Deleted {what}{data['name']}.")
