"""``monitor log``: what a model was asked and what it answered, here or on a server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from taxonomist.cli.backend import backend_for
from taxonomist.cli.options import JsonOpt, ModelArg, RemoteOpt, TokenOpt
from taxonomist.cli.output import echo_json, out

app = typer.Typer(
    help=(
        "Watch models at work: every prediction is logged (API, web UI, files, "
        "'taxonomist predict'; TAXONOMIST_PREDICTION_LOG=off turns it off).\n\n"
        "  taxonomist monitor log apps --limit 20\n\n"
        "  taxonomist monitor log apps --json --before-id 1234   (the next, older page)\n\n"
        "  taxonomist monitor feedback apps labels.csv   (request_id, position, label)\n\n"
        "  taxonomist monitor quality apps --days 7"
    ),
    no_args_is_help=True,
)


@app.command("log")
def monitor_log(
    model: ModelArg,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Predictions on the page.")] = 20,
    before_id: Annotated[
        int | None,
        typer.Option("--before-id", help="Show those older than this id (the next page)."),
    ] = None,
    version: Annotated[int | None, typer.Option("--version", help="Only this version.")] = None,
    as_json: JsonOpt = False,
    remote: RemoteOpt = None,
    token: TokenOpt = None,
) -> None:
    """The model's logged predictions, newest first: when, which version, the label, the
    likeliest classes, the latency, who asked and the request id."""
    page = backend_for(remote, token).prediction_log(model, limit, before_id, version)
    if as_json:
        echo_json(page)
        return
    if not page["data"]:
        out.print(f"No logged prediction of {model} yet: predict with it, then look again.")
        return
    table = Table("id", "at", "version", "label", "top classes", "ms", "source", "request")
    for p in page["data"]:
        top = ", ".join(f"{k} {v:.0%}" for k, v in p["top"].items())
        table.add_row(
            str(p["id"]),
            str(p["at"])[:19],
            str(p["version"]),
            p["label"],
            top,
            f"{p['latency_ms']:.2f}",
            p["source"],
            f"{p['request_id'][:8]}/{p['position']}",
        )
    out.print(table)
    if page["next_before_id"]:
        out.print(f"Older: taxonomist monitor log {model} --before-id {page['next_before_id']}")


@app.command("feedback")
def monitor_feedback(
    model: ModelArg,
    data: Annotated[
        Path,
        typer.Argument(
            help="A table (CSV/TSV/Parquet/JSON Lines) with the columns request_id, label and "
            "(optional) position: the true labels of logged predictions."
        ),
    ],
    as_json: JsonOpt = False,
    remote: RemoteOpt = None,
    token: TokenOpt = None,
) -> None:
    """Give the true labels of logged predictions (all or none are recorded: an unknown
    request id or a label the model never saw is refused, with what to fix)."""
    done = backend_for(remote, token).feedback(model, data)
    if as_json:
        echo_json(done)
        return
    out.print(f"Recorded {done['recorded']} label(s) for {done['model']}.")
    out.print(f"Next: taxonomist monitor quality {done['model']}")


@app.command("quality")
def monitor_quality(
    model: ModelArg,
    days: Annotated[
        float | None, typer.Option("--days", help="Only predictions of the last N days.")
    ] = None,
    version: Annotated[int | None, typer.Option("--version", help="Only this version.")] = None,
    as_json: JsonOpt = False,
    remote: RemoteOpt = None,
    token: TokenOpt = None,
) -> None:
    """Live quality: accuracy, macro-F1 and per-class recall of the logged predictions that
    have feedback."""
    q = backend_for(remote, token).live_quality(model, days, version)
    if as_json:
        echo_json(q)
        return
    if not q["n"]:
        out.print(
            f"No prediction of {q['model']} has feedback yet: give true labels with "
            f"'taxonomist monitor feedback {q['model']} LABELS.csv'."
        )
        return
    out.print(
        f"{q['model']}: {q['n']} predictions with feedback · accuracy {q['accuracy']:.3f} · "
        f"macro-F1 {q['f1_macro']:.3f}"
    )
    table = Table("true class", "recall")
    for label, recall in sorted(q["recall"].items(), key=lambda kv: kv[1]):
        table.add_row(label, f"{recall:.3f}")
    out.print(table)
