"""``sample=`` / ``--sample N``: a quick run on a stratified snippet, rare classes kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from taxonomist.cli import app
from taxonomist.models.table_check import SAMPLE_MIN_PER_CLASS, stratified_sample
from tests.conftest import shared


def test_stratified_sample_keeps_every_class_and_its_share() -> None:
    labels = ["big"] * 9000 + ["mid"] * 950 + ["rare"] * 48 + ["tiny"] * 2
    df = pd.DataFrame({"y": labels, "x": np.arange(len(labels))})
    got = stratified_sample(df, "y", 1000, seed=0)
    counts = got["y"].value_counts()
    assert counts["big"] == 900 and counts["mid"] == 95
    assert counts["rare"] == SAMPLE_MIN_PER_CLASS  # 4.8 by share, 5 kept for the folds
    assert counts["tiny"] == 2  # all it has
    assert got["x"].is_monotonic_increasing  # the table's order, for time-ordered folds
    again = stratified_sample(df, "y", 1000, seed=0)
    assert again.equals(got)
    assert stratified_sample(df, "y", 20_000, seed=0) is df


def test_train_on_a_sample_says_so(home: Path) -> None:
    from taxonomist.models.train import train

    df = pd.read_csv(shared("womens_clothing/reviews.csv"))
    result = train(df, target="Class Name", sample=1500, trials=2, families=["complement_nb"])
    n = result.model.info["protocol"]["n_rows"]
    assert 1400 <= n <= 1600 and result.report.n_rows_used == n  # the registry's n_rows
    counts = df["Class Name"].value_counts()
    # Trend: 119 of 23,486 rows, ~8 in the sample; every class the folds can use is there
    assert set(counts[counts >= SAMPLE_MIN_PER_CLASS].index) <= set(result.model.classes)
    assert any("stratified sample of" in w for w in result.report.warnings)


def test_a_sample_too_small_exits_2_naming_it(home: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["train", shared("avazu/train.csv").as_posix(), "--target", "click", "--sample", "10"],
    )
    assert result.exit_code == 2, result.output
    assert "sample" in result.output and "100" in result.output
