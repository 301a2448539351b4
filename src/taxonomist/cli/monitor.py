"""``monitor log``: what a model was asked and what it answered, here or on a server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from taxonomist.cli.backend import backend_for
from taxonomist.cli.options import JsonOpt, ModelArg, RemoteOpt, TokenOpt
from taxonomist.cli.output import TrainProgress, echo_json, out

VERDICT_STYLE = {"ok": "bold green", "warning": "bold yellow", "drift": "bold red"}

app = typer.Typer(
    help=(
        "Watch models at work: every prediction is logged (API, web UI, files, "
        "'taxonomist predict'; TAXONOMIST_PREDICTION_LOG=off turns it off).\n\n"
        "  taxonomist monitor log apps --limit 20\n\n"
        "  taxonomist monitor log apps --json --before-id 1234   (the next, older page)\n\n"
        "  taxonomist monitor feedback apps labels.csv   (request_id, position, label)\n\n"
        "  taxonomist monitor quality apps --days 7\n\n"
        "  taxonomist monitor drift apps   (the logged window against the training data)\n\n"
        "  taxonomist monitor drift apps new.csv --html drift.html\n\n"
        "  taxonomist monitor retrain apps labelled.csv   (a challenger; promoted if better)\n\n"
        "  taxonomist monitor journal apps\n\n"
        "  taxonomist monitor policy apps --drift --new-labels 500"
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


@app.command("drift")
def monitor_drift(
    model: ModelArg,
    data: Annotated[
        Path | None,
        typer.Argument(
            help="Working rows to check (CSV/TSV/Parquet/JSON Lines with the model's feature "
            "columns). Without it: the model's logged predictions."
        ),
    ] = None,
    days: Annotated[
        float | None, typer.Option("--days", help="Only predictions of the last N days.")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", help="At most this many (the newest) logged predictions.")
    ] = 100_000,
    version: Annotated[
        int | None, typer.Option("--version", help="Check this version (default: champion).")
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the report as an HTML page.")
    ] = None,
    fail_on: Annotated[
        str | None,
        typer.Option(
            "--fail-on",
            help="Exit with status 1 when the verdict is this or worse (warning, drift): "
            "for pipelines.",
        ),
    ] = None,
    as_json: JsonOpt = False,
    remote: RemoteOpt = None,
    token: TokenOpt = None,
) -> None:
    """Has the working data drifted from the training data? Per column: PSI,
    Jensen-Shannon, a KS or chi-square test (corrected for the number of tests); per text
    column: words per text, unknown words, new and missing words, a word classifier; the
    predicted classes; a classifier on sentence embeddings. A verdict (ok, warning, drift)
    with the reasons in words. The report is stored: 'monitor reports' lists them."""
    from taxonomist.errors import InvalidParameterError
    from taxonomist.monitor.drift import VERDICTS
    from taxonomist.monitor.reports import report_html

    if fail_on is not None and fail_on not in VERDICTS[1:]:
        raise InvalidParameterError(f"--fail-on takes warning or drift; got '{fail_on}'.")
    report = backend_for(remote, token).drift(model, data, version, days, limit)
    if html is not None:
        html.write_text(report_html(report), encoding="utf-8")
    if as_json:
        echo_json(report)
    else:
        _print_drift(report, html)
    if fail_on and VERDICTS.index(report["verdict"]) >= VERDICTS.index(fail_on):
        raise typer.Exit(1)


def _print_drift(report: dict, html: Path | None) -> None:
    verdict = report["verdict"]
    out.print(
        f"{report['model']} v{report['version']}: [{VERDICT_STYLE[verdict]}]{verdict}[/] "
        f"(score {report['score']:.2f}) · {report['n_current']} working rows against "
        f"{report['n_reference']} training rows · report {report['id']}"
    )
    for reason in report["reasons"]:
        out.print(f"  - {reason}")
    table = Table("column", "signal", "effect", "p (corrected)", "verdict")
    for s in report["signals"]:
        style = VERDICT_STYLE[s["verdict"]] if s["verdict"] != "ok" else ""
        table.add_row(
            s["column"],
            s["signal"],
            f"{s['effect_name']} {s['effect']:.3f}",
            f"{s['p_corrected']:.3g}",
            f"[{style}]{s['verdict']}[/]" if style else s["verdict"],
        )
    out.print(table)
    if html is not None:
        out.print(f"Wrote {html}")


@app.command("reports")
def monitor_reports(
    model: ModelArg,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Reports to list.")] = 20,
    as_json: JsonOpt = False,
    remote: RemoteOpt = None,
    token: TokenOpt = None,
) -> None:
    """The model's stored drift reports, newest first."""
    reports = backend_for(remote, token).drift_reports(model, limit)
    if as_json:
        echo_json(reports)
        return
    if not reports:
        out.print(f"No drift report of {model} yet: taxonomist monitor drift {model}")
        return
    table = Table("id", "at", "version", "source", "rows", "verdict", "score", "first reason")
    for r in reports:
        table.add_row(
            str(r["id"]),
            str(r["at"])[:19],
            str(r["version"]),
            r["source"],
            str(r["n_current"]),
            f"[{VERDICT_STYLE[r['verdict']]}]{r['verdict']}[/]",
            f"{r['score']:.2f}",
            (r["reasons"] or [""])[0][:80],
        )
    out.print(table)


@app.command("retrain")
def monitor_retrain(
    model: ModelArg,
    data: Annotated[
        Path | None,
        typer.Argument(
            help="New labelled rows: a table with the target column (and the feature columns). "
            "Without it: the logged predictions given feedback since the champion."
        ),
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why, for the journal.")] = "",
    as_json: JsonOpt = False,
    remote: RemoteOpt = None,
    token: TokenOpt = None,
) -> None:
    """Train a challenger with the champion's stored config on its data plus the new rows,
    score both on the same unseen rows, and promote the challenger only when a paired
    bootstrap says it is better. Journalled either way ('monitor journal')."""
    backend = backend_for(remote, token)
    with TrainProgress(enabled=not as_json, budget=None, trials=None) as progress:
        entry = backend.retrain(model, data, reason, progress.update)
    if as_json:
        echo_json(entry)
        return
    style = "bold green" if entry["status"] == "promoted" else "bold"
    out.print(f"[{style}]{entry['status']}[/]: {entry['decision']}")
    _print_reports(entry)


def _print_reports(entry: dict) -> None:
    reports = entry.get("reports") or {}
    if not reports:
        return
    table = Table("class", "champion F1", "challenger F1", "support")
    champion, challenger = reports["champion"]["per_class"], reports["challenger"]["per_class"]
    for label in sorted(challenger, key=lambda c: -challenger[c]["support"]):
        table.add_row(
            label,
            f"{champion.get(label, {}).get('f1', 0):.3f}",
            f"{challenger[label]['f1']:.3f}",
            str(challenger[label]["support"]),
        )
    out.print(table)


@app.command("journal")
def monitor_journal(
    model: ModelArg,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Entries to list.")] = 20,
    as_json: JsonOpt = False,
    remote: RemoteOpt = None,
    token: TokenOpt = None,
) -> None:
    """The monitoring journal: every retrain (when, why, which data, both scores with their
    intervals, the decision, a classification report of each), newest first."""
    entries = backend_for(remote, token).journal(model, limit)
    if as_json:
        echo_json(entries)
        return
    if not entries:
        out.print(f"{model} was never retrained: taxonomist monitor retrain {model} NEW.csv")
        return
    table = Table("id", "at", "trigger", "status", "champion", "challenger", "decision")
    for e in entries:
        table.add_row(
            str(e["id"]),
            str(e["at"])[:19],
            e["trigger"],
            e["status"],
            str(e["champion_version"]),
            str(e["challenger_version"] or "-"),
            (e.get("decision") or e.get("error") or "")[:90],
        )
    out.print(table)


@app.command("policy")
def monitor_policy(
    model: ModelArg,
    drift: Annotated[
        bool | None, typer.Option("--drift/--no-drift", help="Retrain on a drift verdict.")
    ] = None,
    quality_below: Annotated[
        float | None,
        typer.Option("--quality-below", help="Retrain when live macro-F1 falls below this."),
    ] = None,
    new_labels: Annotated[
        int | None, typer.Option("--new-labels", help="Retrain once this many labels arrived.")
    ] = None,
    every_days: Annotated[
        float | None, typer.Option("--every-days", help="Retrain on this schedule.")
    ] = None,
    disable: Annotated[
        bool, typer.Option("--disable", help="Keep the policy but stop acting on it.")
    ] = False,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the policy.")] = False,
    as_json: JsonOpt = False,
    remote: RemoteOpt = None,
    token: TokenOpt = None,
) -> None:
    """Show or set when the service retrains the model by itself (it checks every
    TAXONOMIST_POLICY_INTERVAL seconds). Without options: the current policy. Retrains learn
    from the feedback in the log, and promote only a challenger that beats the champion."""
    backend = backend_for(remote, token)
    if delete:
        backend.delete_policy(model)
        out.print(f"Removed the retraining policy of {model}.")
        return
    given = {
        "drift": drift,
        "quality_below": quality_below,
        "new_labels": new_labels,
        "every_days": every_days,
    }
    given = {k: v for k, v in given.items() if v is not None}
    if given or disable:
        from taxonomist.errors import NotFoundError

        try:  # the options given change the current policy; the rest stays
            current = backend.policy(model)["policy"]
        except NotFoundError:
            current = {}
        shown = backend.set_policy(model, {**current, **given, "enabled": not disable})
    else:
        shown = backend.policy(model)
    if as_json:
        echo_json(shown)
        return
    p = shown["policy"]
    triggers = [
        "a drift verdict" if p["drift"] else None,
        f"live macro-F1 below {p['quality_below']}" if p["quality_below"] else None,
        f"{p['new_labels']} new labels" if p["new_labels"] else None,
        f"every {p['every_days']:g} days" if p["every_days"] else None,
    ]
    listed = ", ".join(t for t in triggers if t) or "nothing"
    state = "" if p["enabled"] else " (disabled)"
    out.print(f"{shown['model']} retrains on {listed}{state}.")
