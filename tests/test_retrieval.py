"""QA corpora and the BM25 baseline on the shared SQuAD sample."""

from __future__ import annotations

import pandas as pd
import pytest

from taxonomist.errors import ColumnNotFoundError, EmptyDataError, FileFormatError
from taxonomist.retrieval import BM25Index, evaluate, load_qa
from tests.conftest import shared


def test_squad_json_loads_into_passages_and_questions() -> None:
    ds = load_qa(shared("squad/squad_v2_part1.json"))
    assert len(ds.passages) == 646 and len(ds.questions) == 6078
    assert ds.passages["passage_id"].is_unique
    assert set(ds.questions["passage_id"]) <= set(ds.passages["passage_id"])
    assert ds.report["unanswered"] > 0  # SQuAD 2.0 has unanswerable questions


def test_bm25_finds_the_passage_on_squad() -> None:
    ds = load_qa(shared("squad/squad_v2_part1.json"))
    scores = evaluate(BM25Index().fit(ds.passages), ds)
    # Published BM25 on SQuAD v1.1 dev passages: top-1 0.776.
    assert scores["n"] == 6078
    assert scores["top1"] > 0.75 and scores["top5"] > 0.9
    assert scores["top1"] <= scores["mrr10"] <= scores["top5"]
    assert scores["p99_ms"] < 20


def test_tables_with_other_column_names(tmp_path) -> None:
    table = pd.DataFrame(
        {
            "passage": ["Paris is the capital of France.", "The Nile is a river.", None, ""],
            "q": ["What is the capital of France?", "What is the Nile?", "Orphan?", "Also?"],
            "a": ["Paris", "a river", None, None],
        }
    )
    path = tmp_path / "qa.csv"
    table.to_csv(path, index=False)
    ds = load_qa(path, context="passage", question="q", answer="a")
    assert len(ds.passages) == 2 and len(ds.questions) == 2
    assert ds.report["rows_without_context"] == 2
    assert "2 questions have no passage" in ds.report["warnings"][0]
    ids, _ = BM25Index().fit(ds.passages).search(["capital of France"], k=1)
    assert ids[0, 0] == ds.questions.loc[0, "passage_id"]


def test_bad_qa_inputs_say_what_to_fix(tmp_path) -> None:
    path = tmp_path / "qa.csv"
    pd.DataFrame({"context": ["a b"], "questoin": ["c?"]}).to_csv(path, index=False)
    with pytest.raises(ColumnNotFoundError, match="Did you mean 'questoin'"):
        load_qa(path)
    pd.DataFrame({"context": [None, None], "question": ["a?", "b?"]}).to_csv(path, index=False)
    with pytest.raises(EmptyDataError, match="no passages"):
        load_qa(path)
    other = tmp_path / "other.json"
    other.write_text('{"items": [1, 2]}')
    with pytest.raises(FileFormatError, match="not SQuAD-style"):
        load_qa(other)
    other.write_text('{"data": [')
    with pytest.raises(FileFormatError, match="not valid JSON"):
        load_qa(other)
