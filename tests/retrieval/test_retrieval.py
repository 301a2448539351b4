"""QA corpora, preprocessing and retrieval quality on the shared SQuAD sample."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from taxonomist.errors import (
    ColumnNotFoundError,
    ConflictError,
    DataError,
    EmptyDataError,
    FileFormatError,
)
from taxonomist.retrieval import (
    EdgeStore,
    Preprocessing,
    RetrievalParams,
    build_model,
    evaluate,
    load_qa,
)
from taxonomist.retrieval.text import Tokenizer, split_sentences
from tests.conftest import shared, small_squad


def test_squad_json_loads_into_passages_and_questions() -> None:
    ds = load_qa(shared("squad/squad_v2_part1.json"))
    assert len(ds.passages) == 646 and len(ds.questions) == 6078
    assert ds.passages["passage_id"].is_unique
    assert set(ds.questions["passage_id"]) <= set(ds.passages["passage_id"])
    assert ds.report["unanswered"] > 0  # SQuAD 2.0 has unanswerable questions


def test_bm25_matches_the_published_baseline_and_indexes_fast(tmp_path) -> None:
    import time

    ds = load_qa(shared("squad/squad_v2_part1.json"))
    store = EdgeStore(tmp_path)
    start = time.perf_counter()
    plain = build_model(
        "plain",
        ds,
        store,
        RetrievalParams(method="bm25", stem=False, sentences=False, bigrams=False),
    )
    rate = len(ds.passages) / (time.perf_counter() - start)
    scores = evaluate(plain, ds, latency_sample=50)
    # Published BM25 on SQuAD v1.1 dev passages: top-1 0.776; bm25s gives 0.7805 here.
    assert scores["n"] == 6078
    assert 0.77 < scores["top1"] < 0.79 and scores["top5"] > 0.91
    assert scores["top1"] <= scores["mrr10"] <= scores["top5"]
    assert rate > 500  # the benchmark's figure is ~2,500/s; tests run beside other work
    stemmed = evaluate(
        build_model("stems", ds, store, RetrievalParams(method="bm25")), ds, latency_sample=0
    )
    assert stemmed["top1"] > scores["top1"] + 0.02  # stems + best sentence help


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
    model = build_model("t", ds, EdgeStore(tmp_path / "s"), RetrievalParams(method="bm25"))
    hits = model.search("capital of France", k=1)
    assert hits[0]["passage_id"] == ds.questions.loc[0, "passage_id"]
    assert hits[0]["context"] == "Paris is the capital of France."
    assert model.search("zzz qqq", k=3) == []  # no shared term: nothing, not an error


def test_bad_qa_inputs_say_what_to_fix(tmp_path) -> None:
    path = tmp_path / "qa.csv"
    pd.DataFrame({"context": ["a b"], "questoin": ["c?"]}).to_csv(path, index=False)
    with pytest.raises(ColumnNotFoundError, match="Did you mean 'questoin'"):
        load_qa(path)
    pd.DataFrame({"context": [None, None], "question": ["a?", "b?"]}).to_csv(path, index=False)
    with pytest.raises(EmptyDataError, match="no passages"):
        load_qa(path)
    pd.DataFrame({"context": [1, 2], "question": ["a?", "b?"]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="holds numbers, not text"):
        load_qa(path)
    other = tmp_path / "other.json"
    other.write_text('{"items": [1, 2]}')
    with pytest.raises(FileFormatError, match="not SQuAD-style"):
        load_qa(other)
    other.write_text('{"data": [')
    with pytest.raises(FileFormatError, match="not valid JSON"):
        load_qa(other)


def test_preprocessing_is_stored_and_applied_to_questions(tmp_path) -> None:
    squad = {
        "data": [
            {
                "paragraphs": [
                    {
                        "context": "THE EIFFEL TOWER stands in Paris. It opened in 1889!",
                        "qas": [
                            {"id": "1", "question": "When did the tower open?"},
                            {"id": "2", "question": "When did the tower open?"},
                        ],
                    },
                    {
                        "context": "Rivers: the Nile, the Amazon.",
                        "qas": [{"id": "3", "question": "...???"}],
                    },
                ]
            }
        ]
    }
    path = tmp_path / "qa.json"
    path.write_text(json.dumps(squad))
    ds = load_qa(path)
    prep = Preprocessing(lowercase=True, strip_punctuation=True, remove_stopwords=True)
    store = EdgeStore(tmp_path / "s")
    model = build_model("p", ds, store, RetrievalParams(method="bm25", preprocessing=prep))
    assert model.meta["removed"] == {
        "empty_passages": 0,
        "empty_questions": 1,
        "duplicate_questions": 1,
    }
    assert model.meta["params"]["preprocessing"]["remove_stopwords"] is True
    hits = model.search("EIFFEL, TOWER?!", k=1)
    assert "EIFFEL" in hits[0]["context"]  # the stored passage is the original text
    with pytest.raises(ConflictError, match="exists"):
        build_model("p", ds, store, RetrievalParams(method="bm25"))


def test_text_helpers() -> None:
    text = "The tower opened in 1889. It was built by Eiffel's company. Why? Paris hosted a fair."
    assert split_sentences(text) == [
        "The tower opened in 1889.",
        "It was built by Eiffel's company. Why?",  # a short fragment joins the one before
        "Paris hosted a fair.",
    ]
    assert Tokenizer("en").tokens("The runners are running") == ["runner", "run"]
    assert Tokenizer("fr").tokens("Les chanteuses chantaient") == ["chanteux", "chant"]
    assert Tokenizer("ru", stem=False).tokens("и кошки спят") == ["кошки", "спят"]


@pytest.mark.slow
def test_hybrid_beats_both_baselines_on_held_out_questions(tmp_path) -> None:
    """The fusion weights were tuned on part 1; part 2 is the held-out check (issue 5's
    target: top-1 >= 0.85, top-5 >= 0.95)."""
    pytest.importorskip("sentence_transformers")
    ds = load_qa(shared("squad/squad_v2_part2.json"))
    store = EdgeStore(tmp_path)
    hybrid = evaluate(build_model("h", ds, store), ds, latency_sample=0)
    assert hybrid["top1"] >= 0.85 and hybrid["top5"] >= 0.95
    bm25 = evaluate(
        build_model(
            "b",
            ds,
            store,
            RetrievalParams(method="bm25", stem=False, sentences=False, bigrams=False),
        ),
        ds,
        latency_sample=0,
    )
    assert hybrid["top1"] > bm25["top1"] + 0.04


def test_cli_builds_asks_evaluates_lists_and_removes(home, tmp_path) -> None:
    from typer.testing import CliRunner

    from taxonomist.cli import app

    path = tmp_path / "squad.json"
    path.write_bytes(small_squad())
    run = CliRunner().invoke
    r = run(app, ["retrieval", "build", str(path), "--name", "sq", "--method", "bm25"])
    assert r.exit_code == 0 and "Built sq: bm25 over 40 passages" in r.output, r.output
    r = run(app, ["retrieval", "ask", "sq", "In what country is Normandy located?", "--json"])
    assert r.exit_code == 0, r.output
    assert "Normandy" in json.loads(r.output)["passages"][0]["context"]
    r = run(app, ["retrieval", "evaluate", "sq", str(path), "--json"])
    scores = json.loads(r.output)
    assert set(scores) == {"n", "top1", "top5", "mrr10", "p50_ms", "p99_ms"} and scores["n"] == 216
    assert json.loads(run(app, ["retrieval", "list", "--json"]).output)[0]["id"] == "sq"
    assert run(app, ["retrieval", "load", "sq"]).exit_code == 0
    r = run(app, ["retrieval", "build", str(path), "--name", "sq", "--method", "bm25"])
    assert r.exit_code == 2 and "exists" in r.output
    r = run(app, ["retrieval", "build", str(path), "--name", "x", "--method", "magic"])
    assert r.exit_code == 2 and "bm25, dense or hybrid" in r.output
    r = run(app, ["retrieval", "ask", "nope", "q"])
    assert r.exit_code == 2 and "No retrieval model named 'nope'" in r.output
    assert "Removed 1" in run(app, ["retrieval", "remove", "--all"]).output
    assert "No retrieval model yet" in run(app, ["retrieval", "list"]).output


def test_a_russian_corpus_gets_russian_stems_and_the_multilingual_encoder(tmp_path) -> None:
    table = pd.DataFrame(
        {
            "context": [
                "Москва является столицей России и крупнейшим городом страны.",
                "Байкал — самое глубокое озеро на планете, оно находится в Сибири.",
                "Эрмитаж в Санкт-Петербурге — один из крупнейших художественных музеев мира.",
                "Транссибирская магистраль соединяет Москву и Владивосток.",
            ],
            "question": [
                "Какой город является столицей России?",
                "Где находится самое глубокое озеро?",
                "Какой музей находится в Санкт-Петербурге?",
                "Какая железная дорога ведёт во Владивосток?",
            ],
        }
    )
    ds = load_qa(table)
    model = build_model("ru", ds, EdgeStore(tmp_path), RetrievalParams(method="hybrid"))
    assert model.language == "ru" and model.meta["encoder"] == "use"
    assert Tokenizer("ru").tokens("озера") == Tokenizer("ru").tokens("озеро")
    # "столица" is not in the passage as written ("столицей"): the stems find it.
    for question, pid in zip(ds.questions["question"], ds.questions["passage_id"], strict=True):
        assert model.search(question, k=1)[0]["passage_id"] == pid
    dense_only = build_model("ru-dense", ds, EdgeStore(tmp_path), RetrievalParams(method="dense"))
    hit = dense_only.search("В каком городе большой музей искусства?", k=1)[0]
    assert "Эрмитаж" in hit["context"]
