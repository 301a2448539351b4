"""A corpus of malformed input files: each gives a clear message, exit status 2 in the CLI,
and never a traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from taxonomist.cli import app
from taxonomist.data import infer_column_roles, load_table, validate_training_table
from taxonomist.errors import (
    ColumnNotFoundError,
    DataError,
    DuplicateColumnsError,
    EmptyDataError,
    EncodingError,
    FileFormatError,
    TargetError,
)
from tests.conftest import DATA

MALFORMED = DATA / "malformed"

# file -> (exception class, fragments the message must contain)
CASES = {
    "empty.csv": (EmptyDataError, ["empty (0 bytes)", "header row"]),
    "whitespace_only.csv": (EmptyDataError, ["only whitespace"]),
    "header_only.csv": (EmptyDataError, ["no data rows", "title", "label"]),
    "unclosed_quote.csv": (FileFormatError, ["quote opened in data row 1", "never closed"]),
    "ragged_rows.csv": (FileFormatError, ["not a well-formed CSV", "as many fields"]),
    "duplicate_columns.csv": (DuplicateColumnsError, ["duplicate column names", "['title']"]),
    "utf16.csv": (EncodingError, ["UTF-16", "CSV UTF-8"]),
    "binary.csv": (EncodingError, ["binary", "NUL bytes"]),
    "spreadsheet.csv": (FileFormatError, ["ZIP archive or an Excel", "Export it as CSV"]),
    "book.xlsx": (FileFormatError, ["spreadsheet", "Save the sheet as CSV"]),
    "bad_lines.jsonl": (FileFormatError, ["not valid JSON Lines", "one JSON object"]),
    "not_objects.json": (FileFormatError, ["JSON array of objects"]),
    "broken.parquet": (FileFormatError, ["not a readable Parquet file"]),
    "no_target_values.csv": (TargetError, ["empty in every row", "Fill in the labels"]),
    "one_class.csv": (TargetError, ["only one class ('spam')", "at least two classes"]),
    "too_few_rows.csv": (EmptyDataError, ["Only 4 labelled rows", "at least 10"]),
    "all_empty_features.csv": (DataError, ["No usable feature column"]),
    "singletons_only.csv": (TargetError, ["fewer than 2 rows", "Add rows of other classes"]),
}


def _load_and_validate(name: str, target: str = "label", roles: dict | None = None) -> None:
    df = load_table(MALFORMED / name)
    schema = infer_column_roles(df, target, roles)
    validate_training_table(df, schema)


def test_corpus_is_complete() -> None:
    files = {p.name for p in MALFORMED.iterdir()}
    assert len(files) >= 15
    assert set(CASES) <= files


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_file_gives_clear_error(name: str) -> None:
    cls, fragments = CASES[name]
    with pytest.raises(cls) as info:
        _load_and_validate(name)
    for fragment in fragments:
        assert fragment in info.value.message, info.value.message
    assert 400 <= info.value.status < 500


def test_numeric_role_with_text_values_names_the_bad_values() -> None:
    with pytest.raises(DataError, match=r"'price' is set as numeric but 10 of its values") as e:
        _load_and_validate("numeric_with_text.csv", roles={"price": "numeric"})
    assert e.value.details["bad_values"] == ["abc"]


def test_misspelled_target_suggests_the_closest_column() -> None:
    with pytest.raises(ColumnNotFoundError, match="Did you mean 'label'"):
        _load_and_validate("one_class.csv", target="lable")


def test_missing_file() -> None:
    with pytest.raises(FileFormatError, match="File not found"):
        load_table(MALFORMED / "nope.csv")


@pytest.mark.parametrize(
    "name",
    [
        "empty.csv",
        "unclosed_quote.csv",
        "utf16.csv",
        "book.xlsx",
        "one_class.csv",
        "duplicate_columns.csv",
    ],
)
def test_cli_exits_2_with_one_message_and_no_traceback(name: str, home) -> None:
    result = CliRunner().invoke(
        app, ["train", str(MALFORMED / name), "--target", "label", "--trials", "1"]
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "Error (" in result.output
    # nothing was registered
    listing = CliRunner().invoke(app, ["models", "list", "--json"])
    assert listing.exit_code == 0
    assert listing.stdout.strip() == "[]"


def test_multiline_text_with_many_commas_is_not_mistaken_for_an_unclosed_quote(tmp_path) -> None:
    lines = "\n".join(["Intro line", "a, b, c", "more text", "x, y, z", "end", "fin"])
    p = tmp_path / "ok.csv"
    p.write_text('title,body,label\nApp,"' + lines + '",games\nOther,plain,tools\n')
    assert load_table(p).shape == (2, 3)
