"""The demo data set shipped with the package: a trimmed, class-balanced sample of the
Apple App Store apps table (2,341 apps, 23 genres; descriptions cut to 700 characters)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

DEMO_TARGET = "prime_genre"
DEMO_NAME = "demo-apps"


def demo_data_path() -> Path:
    return Path(str(files("taxonomist.demo") / "apps.csv"))


# One app described in all nine columns: the demo's example and the service benchmarks' record.
EXAMPLE_RECORD = {
    "track_name": "Chess Master Pro",
    "app_desc": "Play chess against friends or the computer. Learn openings, solve "
    "puzzles and climb the ranking.",
    "price": 0.0,
    "size_bytes": 52_000_000,
    "rating_count_tot": 1200,
    "user_rating": 4.5,
    "cont_rating": "4+",
    "lang_num": 3,
    "sup_devices.num": 37,
}

DEMO_RETRIEVAL = "demo-squad"
SQUAD_SAMPLE = Path("data") / "squad" / "squad_v2_part1.json"


def squad_sample_path() -> Path | None:
    """The shared SQuAD sample beside a source checkout (or under ``$TAXONOMIST_SHARED``)."""
    import os

    roots = [Path(os.environ["TAXONOMIST_SHARED"])] if os.environ.get("TAXONOMIST_SHARED") else []
    roots += [Path(__file__).resolve().parents[3].parent / "shared", Path.cwd().parent / "shared"]
    return next((r / SQUAD_SAMPLE for r in roots if (r / SQUAD_SAMPLE).exists()), None)
