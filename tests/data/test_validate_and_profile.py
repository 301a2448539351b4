"""Validation warnings that change the data, and the dataset profile."""

from __future__ import annotations

import pandas as pd

from taxonomist.data import infer_column_roles, profile_table, validate_training_table
from taxonomist.data.profile import DatasetProfile
from tests.conftest import shared


def test_unlabelled_rows_and_tiny_classes_are_dropped_and_reported() -> None:
    df = pd.DataFrame(
        {
            "t": [f"text {i} about things" for i in range(40)],
            "y": ["a"] * 18 + ["b"] * 18 + ["rare"] + [None, "", "c"],
        }
    )
    schema = infer_column_roles(df, "y")
    clean, _, report = validate_training_table(df, schema)
    assert report.n_rows == 40
    assert report.n_rows_used == 36
    assert report.dropped_classes == {"rare": 1, "c": 1}
    assert set(clean["y"]) == {"a", "b"}
    assert any("2 rows have no value in 'y'" in w for w in report.warnings)
    assert any("rare" in w and "left out of training" in w for w in report.warnings)


def test_empty_text_column_is_ignored_with_a_warning() -> None:
    df = pd.DataFrame(
        {"t": [f"alpha beta {i}" for i in range(20)], "empty": [None] * 20, "y": ["a", "b"] * 10}
    )
    schema = infer_column_roles(df, "y", {"empty": "text"})
    _, schema2, report = validate_training_table(df, schema)
    assert str(schema2.roles["empty"]) == "ignore"
    assert report.ignored_columns == {"empty": "empty in every row"}


def test_profile_of_reviews_counts_and_round_trips() -> None:
    df = pd.read_csv(shared("womens_clothing/reviews.csv"))
    schema = infer_column_roles(df, "Class Name")
    prof = profile_table(df, schema)
    assert prof.n_rows == 23486
    assert prof.columns["Title"].missing == 3810
    assert prof.columns["Review Text"].missing == 845
    assert prof.language == "en"
    text = prof.columns["Review Text"].stats
    assert 40 < text["words_mean"] < 80
    assert text["vocabulary"]["dress"] > 5000
    assert sum(text["words_histogram"]["counts"]) == 23486
    assert prof.class_counts["Dresses"] == 6319
    again = DatasetProfile.from_dict(prof.to_dict())
    assert again.columns["Title"].missing == 3810


def test_language_of_french_catalogue() -> None:
    df = pd.read_csv(shared("rakuten/products.csv"))
    prof = profile_table(df, infer_column_roles(df, "prdtypecode"))
    assert prof.language == "fr"
    assert prof.languages["fr"] > 0.6
