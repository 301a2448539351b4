"""Drift reports as a model's users see them: computed for a version (from its logged window or
a working file), stored in the metadata database, listed over time and exported as HTML."""

from __future__ import annotations

import html
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from taxonomist.errors import ConflictError, InvalidParameterError, NotFoundError
from taxonomist.monitor.drift import MIN_ROWS, DriftThresholds, drift_report
from taxonomist.monitor.log import logged_window
from taxonomist.registry import Registry
from taxonomist.store import Database, DriftReport

DEFAULT_WINDOW_ROWS = 100_000
VERDICT_LEVEL = {"ok": 0, "warning": 1, "drift": 2}  # the Prometheus gauge's value


def reference_of(registry: Registry, ref: str) -> pd.DataFrame:
    """The drift reference stored with a version, or a 409 that says what to do."""
    reference = registry.table(ref, "reference")
    if reference is None:
        raise ConflictError(
            f"{ref} has no drift reference: it was registered before Taxonomist kept one. "
            "Train it again (or retrain it with 'taxonomist monitor retrain') and check the "
            "new version.",
            details={"model": ref},
        )
    return reference


def check_drift(
    registry: Registry,
    db: Database,
    name: str,
    *,
    data: pd.DataFrame | None = None,
    version: int | None = None,
    days: float | None = None,
    limit: int = DEFAULT_WINDOW_ROWS,
    user_id: int | None = None,
    thresholds: DriftThresholds | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Compute, store and return the drift report of ``name`` (its champion, or ``version``):
    ``data`` (a working table) or else the version's logged predictions (the newest
    ``limit``, of the last ``days`` days when given) against its training reference."""
    mv = registry.resolve(f"{name}/{version}" if version else name)
    ref = f"{mv.name}/{mv.version}"
    model = registry.load(ref)
    reference = reference_of(registry, ref)
    window: dict[str, Any] = {}
    if data is None:
        since = None if days is None else datetime.now(UTC) - timedelta(days=days)
        records, labels, _ = logged_window(
            db, mv.name, version=int(mv.version), since=since, limit=limit
        )
        if len(records) < MIN_ROWS:
            span = f" in the last {days:g} days" if days else ""
            raise InvalidParameterError(
                f"{ref} has {len(records)} logged prediction(s){span}; a drift report needs "
                f"at least {MIN_ROWS}. Predict with it first, or compare a working file: "
                f"taxonomist monitor drift {mv.name} DATA.csv",
                details={"model": ref, "n_logged": len(records)},
            )
        current, predicted = pd.DataFrame.from_records(records), labels
        source = "log"
        window = {"days": days, "limit": limit}
    else:
        current, predicted, source = data, None, "file"
    report = drift_report(
        model, reference, current, predicted=predicted, thresholds=thresholds, seed=seed
    ).to_dict()
    row = DriftReport(
        model=mv.name,
        version=int(mv.version),
        user_id=user_id,
        source=source,
        verdict=report["verdict"],
        score=report["score"],
        n_reference=report["n_reference"],
        n_current=report["n_current"],
        report={**report, "window": window},
    )
    with db.session() as s:
        s.add(row)
        s.flush()
        out = _stored(row)
    return out


def _stored(row: DriftReport) -> dict[str, Any]:
    return {
        "id": row.id,
        "model": row.model,
        "version": row.version,
        "at": row.at.isoformat(),
        "source": row.source,
        **row.report,
    }


def _summary(row: DriftReport) -> dict[str, Any]:
    signals = row.report.get("signals", [])
    return {
        "id": row.id,
        "model": row.model,
        "version": row.version,
        "at": row.at.isoformat(),
        "source": row.source,
        "verdict": row.verdict,
        "score": row.score,
        "n_reference": row.n_reference,
        "n_current": row.n_current,
        "reasons": row.report.get("reasons", []),
        "signals": {f"{s['column']}:{s['signal']}": s["effect"] for s in signals},
    }


def list_reports(db: Database, name: str, *, limit: int = 100) -> list[dict[str, Any]]:
    """The newest ``limit`` stored reports of ``name``, newest first, without their columns
    (each signal's effect by ``column:signal``, for charts over time)."""
    q = (
        select(DriftReport)
        .where(DriftReport.model == name)
        .order_by(DriftReport.id.desc())
        .limit(limit)
    )
    with db.session() as s:
        return [_summary(r) for r in s.scalars(q)]


def get_report(db: Database, name: str, report_id: int) -> dict[str, Any]:
    with db.session() as s:
        row = s.get(DriftReport, report_id)
        if row is None or row.model != name:
            raise NotFoundError(
                f"No drift report {report_id} of {name}: list them with "
                f"'taxonomist monitor reports {name}'.",
                details={"model": name, "report": report_id},
            )
        return _stored(row)


def latest_reports(db: Database) -> dict[str, dict[str, Any]]:
    """The newest report of every model (what the gauges show after a restart)."""
    with db.session() as s:
        newest = select(DriftReport.model, func.max(DriftReport.id)).group_by(DriftReport.model)
        ids = [i for _, i in s.execute(newest)]
        rows = s.scalars(select(DriftReport).where(DriftReport.id.in_(ids)))
        return {r.model: _summary(r) for r in rows}


# -- HTML ---------------------------------------------------------------------------------
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}
.verdict{display:inline-block;padding:.3rem .8rem;border-radius:.4rem;color:#fff;font-weight:600}
.ok{background:#2e7d32}.warning{background:#ef6c00}.drift{background:#c62828}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{padding:.25rem .6rem;
border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
.bar{display:inline-block;height:.7rem;background:#1565c0}.bar.cur{background:#f9a825}
small{color:#666}
"""


def _bars(names: list[str], reference: list[float], current: list[float]) -> str:
    rows = []
    for name, r, c in zip(names, reference, current, strict=False):
        rows.append(
            f"<tr><td>{html.escape(str(name))}</td>"
            f"<td><span class='bar' style='width:{200 * r:.0f}px'></span> {r:.1%}<br>"
            f"<span class='bar cur' style='width:{200 * c:.0f}px'></span> {c:.1%}</td></tr>"
        )
    return "<table><tr><th></th><th>training / working</th></tr>" + "".join(rows) + "</table>"


def _shares(counts: list[float]) -> list[float]:
    total = sum(counts) or 1
    return [c / total for c in counts]


def report_html(report: dict[str, Any]) -> str:
    """One stored report as a self-contained HTML page (no scripts, no external files)."""
    e = html.escape
    verdict = report["verdict"]
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>Drift: "
        f"{e(report['model'])} v{report['version']}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Drift report: {e(report['model'])} version {report['version']}</h1>",
        f"<p><span class='verdict {verdict}'>{verdict}</span> score {report['score']:.2f} · "
        f"{report['n_current']} working rows ({e(report['source'])}) against "
        f"{report['n_reference']} training rows · {e(report['at'][:19])} UTC</p>",
        "<h2>Reasons</h2><ul>" + "".join(f"<li>{e(r)}</li>" for r in report["reasons"]) + "</ul>",
        "<h2>Signals</h2><table><tr><th>column</th><th>signal</th><th>effect</th>"
        "<th>p (corrected)</th><th>verdict</th></tr>",
    ]
    for s in report["signals"]:
        parts.append(
            f"<tr><td>{e(s['column'])}</td><td>{e(s['signal'])}</td>"
            f"<td>{s['effect_name']} {s['effect']:.3f}</td><td>{s['p_corrected']:.3g}</td>"
            f"<td class='{s['verdict']}'>{s['verdict']}</td></tr>"
        )
    parts.append("</table>")
    pred = report["prediction"]["distribution"]
    parts.append("<h2>Predicted classes</h2>")
    parts.append(_bars(pred["categories"], pred["reference"], pred["current"]))
    for name, col in report["columns"].items():
        verdict = col.get("verdict", "ok")
        parts.append(f"<h2>{e(name)} <small>{col['kind']} · {verdict}</small></h2>")
        if col["kind"] == "categorical":
            d = col["distribution"]
            parts.append(_bars(d["categories"], d["reference"], d["current"]))
        elif col["kind"] == "numeric":
            b = col["bins"]
            edges = b["edges"]
            names = [f"< {edges[0]:.3g}" if edges else "all"]
            names += [f"{a:.3g} – {z:.3g}" for a, z in itertools.pairwise(edges)]
            names += [f"≥ {edges[-1]:.3g}"] if edges else []
            names.append("missing")
            parts.append(_bars(names, _shares(b["reference"]), _shares(b["current"])))
        else:
            w = col["words_per_text"]
            h = w["histogram"]
            names = [f"{a}–{z - 1}" for a, z in itertools.pairwise(h["edges"])]
            parts.append(
                f"<p>words per text: {w['reference_mean']:.1f} → {w['current_mean']:.1f} · "
                f"out-of-vocabulary {col['oov_rate']['reference']:.1%} → "
                f"{col['oov_rate']['current']:.1%}</p>"
            )
            parts.append(_bars(names, _shares(h["reference"]), _shares(h["current"])))
            vocabulary = col.get("vocabulary") or {}
            parts.append(
                "<p>new words: "
                + e(", ".join(col["new_words"]["top"]) or "none")
                + "<br>missing frequent words: "
                + e(", ".join(col["missing_words"]["top"]) or "none")
                + "<br>typical of the working data: "
                + e(", ".join(vocabulary.get("words_typical_of_current", [])) or "-")
                + "</p>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)
