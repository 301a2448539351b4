"""Loading every supported format and encoding, and inferring column roles."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from taxonomist.data import ColumnRole, infer_column_roles, load_table
from taxonomist.errors import ColumnNotFoundError, InvalidParameterError
from tests.conftest import shared

ROWS = [
    {"title": "Пицца с грибами и сыром", "shop": "север", "price": 10.5, "label": "еда"},
    {"title": "Crème brûlée à la vanille", "shop": "sud", "price": 7.0, "label": "dessert"},
]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1251"])
def test_cyrillic_csv_in_each_encoding(tmp_path: Path, encoding: str) -> None:
    p = tmp_path / "ru.csv"
    df = pd.DataFrame([ROWS[0]] * 3)
    p.write_bytes(df.to_csv(index=False).encode(encoding))
    got = load_table(p)
    assert got["title"][0] == "Пицца с грибами и сыром"
    assert list(got.columns) == ["title", "shop", "price", "label"]


def test_latin1_csv(tmp_path: Path) -> None:
    p = tmp_path / "fr.csv"
    p.write_bytes(pd.DataFrame([ROWS[1]] * 3).to_csv(index=False).encode("latin-1"))
    assert load_table(p)["title"][0] == "Crème brûlée à la vanille"


@pytest.mark.parametrize("sep", [";", "\t", "|", ","])
def test_delimiter_is_sniffed(tmp_path: Path, sep: str) -> None:
    p = tmp_path / "t.csv"
    pd.DataFrame(ROWS * 5).to_csv(p, sep=sep, index=False)
    got = load_table(p)
    assert got.shape == (10, 4)
    assert got["price"].tolist()[:2] == [10.5, 7.0]


def test_quoted_delimiters_inside_text_do_not_confuse_sniffing(tmp_path: Path) -> None:
    p = tmp_path / "q.csv"
    df = pd.DataFrame(
        [
            {"title": "cheap; fast, and good", "label": "a"},
            {"title": "slow; but, reliable", "label": "b"},
        ]
        * 5
    )
    df.to_csv(p, index=False)
    assert load_table(p).shape == (10, 2)


def test_parquet_jsonl_json_and_gzip(tmp_path: Path) -> None:
    df = pd.DataFrame(ROWS * 4)
    df.to_parquet(tmp_path / "a.parquet")
    df.to_json(tmp_path / "a.jsonl", orient="records", lines=True, force_ascii=False)
    df.to_json(tmp_path / "a.json", orient="records", force_ascii=False)
    df.to_csv(tmp_path / "a.csv.gz", index=False)
    for name in ("a.parquet", "a.jsonl", "a.json", "a.csv.gz"):
        got = load_table(tmp_path / name)
        assert got.shape == (8, 4), name
        assert got["label"].tolist()[:2] == ["еда", "dessert"], name


def test_dataframe_input_is_copied(rakuten: pd.DataFrame) -> None:
    got = load_table(rakuten)
    got["x"] = 1
    assert "x" not in rakuten.columns


def test_roles_on_the_shared_data_sets() -> None:
    apps = infer_column_roles(load_table(shared("appstore/apps.csv")), "prime_genre")
    assert apps.roles["app_desc"] == ColumnRole.TEXT
    assert apps.roles["track_name"] == ColumnRole.TEXT
    assert apps.roles["id"] == ColumnRole.ID
    assert apps.roles["price"] == ColumnRole.NUMERIC
    assert apps.roles["cont_rating"] == ColumnRole.CATEGORICAL
    assert apps.roles["currency"] == ColumnRole.IGNORE  # constant
    assert apps.roles["prime_genre"] == ColumnRole.TARGET
    avazu = infer_column_roles(load_table(shared("avazu/train.csv")), "click")
    assert avazu.roles["id"] == ColumnRole.ID
    assert avazu.roles["site_id"] == ColumnRole.CATEGORICAL
    assert avazu.roles["C14"] == ColumnRole.NUMERIC
    rakuten = infer_column_roles(load_table(shared("rakuten/products.csv")), "prdtypecode")
    assert rakuten.text == ["designation", "description"]
    assert rakuten.roles["productid"] == ColumnRole.ID
    assert rakuten.roles["imageid"] == ColumnRole.ID


def test_one_time_column_is_guessed_by_its_name_and_values() -> None:
    n = 60
    df = pd.DataFrame(
        {
            "hour": [14102100 + i % 24 for i in range(n)],  # Avazu's YYMMDDHH
            "created_at": pd.date_range("2024-01-01", periods=n, freq="h").astype(str),
            "year": [2000 + i % 20 for i in range(n)],  # a number, not a clock
            "time_spent": [1.5 + i for i in range(n)],  # named like one, holds minutes
            "updated": [f"v{i % 5}" for i in range(n)],  # named like one, holds codes
            "y": ["a", "b"] * (n // 2),
        }
    )
    s = infer_column_roles(df, "y")
    assert s.time == ["hour"]  # the first time column sets the clock; the next is a category
    assert s.roles["created_at"] == ColumnRole.CATEGORICAL
    assert s.roles["year"] == ColumnRole.NUMERIC
    assert s.roles["time_spent"] == ColumnRole.NUMERIC
    assert s.roles["updated"] == ColumnRole.CATEGORICAL
    assert infer_column_roles(df.drop(columns="hour"), "y").time == ["created_at"]
    # a time column named in the overrides is the clock: no other is guessed
    assert infer_column_roles(df, "y", {"created_at": "time"}).time == ["created_at"]
    assert infer_column_roles(df, "y", {"hour": "numeric"}).time == ["created_at"]


def test_image_paths_and_overrides() -> None:
    df = pd.DataFrame(
        {
            "img": [f"images/{i}.jpg" for i in range(20)],
            "code": [f"c{i % 4}" for i in range(20)],
            "y": ["a", "b"] * 10,
        }
    )
    s = infer_column_roles(df, "y", {"code": "text"})
    assert s.roles["img"] == ColumnRole.IMAGE
    assert s.roles["code"] == ColumnRole.TEXT
    with pytest.raises(InvalidParameterError, match="Unknown role 'words'"):
        infer_column_roles(df, "y", {"code": "words"})
    with pytest.raises(ColumnNotFoundError, match="Did you mean 'code'"):
        infer_column_roles(df, "y", {"Code ": "text"})


def test_chunked_parsing_equals_a_one_piece_parse(tmp_path, monkeypatch) -> None:
    import taxonomist.data.load as load_module
    from taxonomist.data import load_table

    monkeypatch.setattr(load_module, "CHUNK_ROWS", 10)
    rows = ["code,text,price"]
    rows += [f"{i},item {i},{i}.5" for i in range(25)]
    rows += ['A7,"multi\nline",', "015,,3"]  # text after numbers; a leading zero kept
    path = tmp_path / "mixed.csv"
    path.write_text("\n".join(rows) + "\n")
    chunked = load_table(path)
    whole = pd.read_csv(path, low_memory=False)
    assert isinstance(chunked.index, pd.RangeIndex) and len(chunked) == 27
    assert chunked["code"].tolist() == whole["code"].tolist()
    assert chunked["code"].iloc[-1] == "015" and chunked["code"].iloc[-2] == "A7"
    assert chunked["price"].dtype == whole["price"].dtype
    assert chunked["text"].iloc[-2] == "multi\nline"
