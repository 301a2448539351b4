"""The demo data set shipped with the package: a trimmed, class-balanced sample of the
Apple App Store apps table (2,341 apps, 23 genres; descriptions cut to 700 characters)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

DEMO_TARGET = "prime_genre"
DEMO_NAME = "demo-apps"


def demo_data_path() -> Path:
    return Path(str(files("taxonomist.demo") / "apps.csv"))
