"""Drift detection and retraining on real data: false alarms, detections, speed, and the
retrain decision.

    python bench/drift.py                  # everything (~10 min on 2 cores)
    python bench/drift.py --only speed     # one part: alarms, detect, speed, retrain

- alarms: 20 seeds; each splits the app-store table at random into halves, trains on one
  (its stored reference) and checks the other: the verdict should be ``ok`` in >= 19 of 20.
- detect: one model (trained on half the apps), working sets that drifted: review texts sent
  to the app-store model, a class-prior shift (only two genres), a numeric column x10, a
  vocabulary shift (a third of the words replaced by unseen ones). Each should be ``drift``
  with the right column and signal named.
- speed: 100,000 logged predictions (app records, descriptions of ~1,000 characters) in the
  metadata database; the time of ``check_drift`` from the log (reading, report, storing).
  Target <= 10 s.
- retrain: a champion trained on 300 reviews (6 trials); a retrain on 3,000 new labelled
  reviews (should promote) and one on 3,000 reviews with shuffled labels (should keep it).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
TARGET = "prime_genre"
COLUMNS = [
    "track_name",
    "app_desc",
    "price",
    "size_bytes",
    "rating_count_tot",
    "user_rating",
    "lang_num",
    "cont_rating",
    TARGET,
]
CHEAP = {"trials": 1, "families": ["logreg"]}


def apps() -> pd.DataFrame:
    return pd.read_csv(DATA / "appstore" / "apps.csv")[COLUMNS]


def fit(df: pd.DataFrame, seed: int, **options) -> object:
    from taxonomist.models.train import train

    return train(df, target=TARGET, text=["track_name", "app_desc"], seed=seed, **options)


def flagged(report) -> list[str]:
    return sorted(
        {f"{s['column']}:{s['signal']}" for s in report.signals if s["verdict"] == "drift"}
    )


def alarms(seeds: int) -> dict:
    from taxonomist.monitor.drift import drift_report

    table, verdicts = apps(), []
    for seed in range(seeds):
        seen = table.sample(frac=0.5, random_state=seed)
        result = fit(seen, seed, **CHEAP)
        working = table.drop(seen.index).drop(columns=TARGET)
        report = drift_report(result.model, result.reference, working, seed=seed)
        verdicts.append(report.verdict)
        print(f"  seed {seed:2d}: {report.verdict:7s} {report.score:.2f} {report.reasons[0][:80]}")
    return {"ok": verdicts.count("ok"), "seeds": seeds, "verdicts": verdicts}


def detections() -> dict:
    from taxonomist.monitor.drift import drift_report

    table = apps()
    seen = table.sample(frac=0.5, random_state=0)
    result = fit(seen, 0, time_budget=60)
    unseen = table.drop(seen.index)
    reviews = pd.read_csv(DATA / "womens_clothing" / "reviews.csv").dropna(subset=["Review Text"])
    rng = np.random.default_rng(0)

    def garble(text: str) -> str:
        return " ".join(w + "zq" if rng.random() < 0.33 else w for w in str(text).split())

    cases = {
        "other source (reviews)": (
            pd.DataFrame({"track_name": reviews["Title"], "app_desc": reviews["Review Text"]}).head(
                3000
            ),
            {"app_desc:vocabulary", "embedding:embedding"},
        ),
        "class prior (2 genres)": (
            unseen[unseen[TARGET].isin(["Games", "Education"])].drop(columns=TARGET),
            {"prediction:distribution"},
        ),
        "price x10": (
            unseen.drop(columns=TARGET).assign(price=unseen["price"] * 10),
            {"price:distribution"},
        ),
        "vocabulary shift": (
            unseen.drop(columns=TARGET).assign(app_desc=unseen["app_desc"].map(garble)),
            {"app_desc:oov"},
        ),
    }
    out = {}
    for name, (working, expected) in cases.items():
        started = time.perf_counter()
        report = drift_report(result.model, result.reference, working)
        found = flagged(report)
        out[name] = {
            "verdict": report.verdict,
            "expected_flagged": sorted(expected),
            "flagged": found,
            "right": report.verdict == "drift" and expected <= set(found),
            "first_reason": report.reasons[0],
            "seconds": round(time.perf_counter() - started, 2),
        }
        print(f"  {name}: {report.verdict}, flagged {found}")
        print(f"    {report.reasons[0][:140]}")
    return out


def speed(rows: int) -> dict:
    from taxonomist.config import Settings
    from taxonomist.monitor.log import PredictionLog, new_request_id, prediction_rows
    from taxonomist.monitor.reports import check_drift
    from taxonomist.registry import Registry
    from taxonomist.store import Database

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "home")
        registry, db = Registry(settings), Database(settings.database)
        db.migrate()
        table = apps()
        seen = table.sample(frac=0.5, random_state=0)
        fit(seen, 0, **CHEAP).register(registry, "apps")
        model = registry.load("apps")
        working = table.drop(seen.index).drop(columns=TARGET)
        records = working.to_dict("records")
        proba = np.asarray(model.predict_proba(working))
        labels = [str(model.classes[i]) for i in proba.argmax(axis=1)]
        log = PredictionLog(db)
        started = time.perf_counter()
        for start in range(0, rows, 1000):
            idx = [(start + i) % len(records) for i in range(min(1000, rows - start))]
            log.write(
                prediction_rows(
                    model="apps",
                    version=1,
                    records=[records[i] for i in idx],
                    labels=[labels[i] for i in idx],
                    proba=proba[idx],
                    classes=model.classes,
                    latency_ms=1.0,
                    request_id=new_request_id(),
                    user_id=None,
                    source="api",
                )
            )
        log.close()
        logged = time.perf_counter() - started
        times = []
        for _ in range(3):
            started = time.perf_counter()
            report = check_drift(registry, db, "apps")
            times.append(time.perf_counter() - started)
        db.dispose()
    return {
        "logged_rows": rows,
        "log_write_seconds": round(logged, 1),
        "drift_seconds": [round(t, 2) for t in times],
        "drift_seconds_median": round(float(np.median(times)), 2),
        "n_current": report["n_current"],
        "verdict": report["verdict"],
    }


def retraining() -> dict:
    from taxonomist.config import Settings
    from taxonomist.models.train import train
    from taxonomist.monitor.retrain import retrain
    from taxonomist.registry import Registry
    from taxonomist.store import Database

    target = "Department Name"
    df = pd.read_csv(DATA / "womens_clothing" / "reviews.csv")
    df = df.dropna(subset=["Review Text", target])[["Title", "Review Text", "Age", target]]
    df = df.sample(frac=1.0, random_state=0).reset_index(drop=True)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "home")
        registry, db = Registry(settings), Database(settings.database)
        db.migrate()
        champion = train(
            df.head(300),
            target=target,
            text=["Title", "Review Text"],
            seed=0,
            trials=6,
            settings=settings,
        )
        champion.register(registry, "dept")
        print(f"  champion: {champion.model.families}")
        noise = df.iloc[3300:6300].copy()
        noise[target] = np.random.default_rng(0).permutation(noise[target].to_numpy())
        for name, new in (("helpful", df.iloc[300:3300]), ("shuffled labels", noise)):
            started = time.perf_counter()
            entry = retrain(registry, db, "dept", new, settings=settings)
            ev = entry["evaluation"]
            out[name] = {
                "status": entry["status"],
                "metric": ev["metric"],
                "champion": ev["champion"],
                "challenger": ev["challenger"],
                "p_value": ev["p_value"],
                "n_eval": ev["n"],
                "seconds": round(time.perf_counter() - started, 1),
            }
            print(f"  {name}: {entry['decision']}")
            challenger = registry.load(f"dept/{entry['challenger_version']}")
            print(f"    challenger: {challenger.families}")
        db.dispose()
    return out


PARTS = {
    "alarms": lambda a: alarms(a.seeds),
    "detect": lambda a: detections(),
    "speed": lambda a: speed(a.rows),
    "retrain": lambda a: retraining(),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", action="append", choices=list(PARTS), help="run only these")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    results = {}
    for part in args.only or list(PARTS):
        print(f"{part}:")
        results[part] = PARTS[part](args)
    print(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
