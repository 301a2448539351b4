"""The word-pair BM25 signal, the fusion parameters and the old behaviour they keep reachable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from taxonomist.retrieval import EdgeStore, RetrievalParams, build_model, evaluate, load_qa
from taxonomist.retrieval.model import DEFAULT_WEIGHTS, WEIGHTS_WITHOUT_BIGRAMS
from taxonomist.retrieval.text import Tokenizer, term_index
from tests.conftest import shared


@pytest.fixture(scope="module")
def small():
    """60 SQuAD passages (part 1) and their 391 questions."""
    ds = load_qa(shared("squad/squad_v2_part1.json"))
    keep = ds.passages["passage_id"].head(60)
    ds.passages = ds.passages[ds.passages["passage_id"].isin(keep)].reset_index(drop=True)
    ds.questions = ds.questions[ds.questions["passage_id"].isin(keep)].reset_index(drop=True)
    return ds


def test_word_pairs_are_adjacent_terms_in_their_own_index_space() -> None:
    tok = Tokenizer("en")
    assert tok.tokens("the capital of France") == ["capit", "franc"]
    assert tok.bigram_counts("the capital of France, the capital") == {
        term_index("capit franc"): 1,
        term_index("franc capit"): 1,
    }
    assert not set(tok.bigram_counts("capital France")) & set(tok.counts("capital France"))
    assert tok.bigram_counts("France") == {}  # one term: no pair, and no query


def test_word_pairs_move_the_answer_passage_to_the_top(tmp_path, small) -> None:
    store = EdgeStore(tmp_path)
    words = build_model("words", small, store, RetrievalParams(method="bm25", bigrams=False))
    pairs = build_model("pairs", small, store, RetrievalParams(method="bm25"))
    assert words.signals == ["bm25", "bm25_sentence"]
    assert pairs.signals == ["bm25", "bm25_sentence", "bm25_bigram"]
    question = "How is best-case time complexity written as an expression?"
    answer = small.questions.loc[small.questions["question"] == question, "passage_id"].iloc[0]
    assert [h["passage_id"] for h in words.search(question, k=5)].index(answer) == 2
    assert pairs.search(question, k=1)[0]["passage_id"] == answer
    # The words' scores are the same with the pairs in the same sparse vectors.
    vectors = pairs._query_vectors(question, None)
    same = words._signal_scores(vectors, {"bm25": 5}, signals=["bm25"])["bm25"]
    assert pairs._signal_scores(vectors, {"bm25": 5}, signals=["bm25"])["bm25"] == pytest.approx(
        same
    )
    # A one-term question has no pair: the signal is empty, not an error.
    assert pairs.search("Beyonce", k=1) == words.search("Beyonce", k=1)


def test_bigrams_false_keeps_the_previous_signals_and_weights(tmp_path, small) -> None:
    model = build_model("old", small, EdgeStore(tmp_path), RetrievalParams(bigrams=False))
    assert model.signals == ["bm25", "bm25_sentence", "dense", "dense_sentence"]
    assert (
        model.weights
        == WEIGHTS_WITHOUT_BIGRAMS
        == {
            "bm25": 1.0,
            "bm25_sentence": 0.5,
            "dense": 1.0,
            "dense_sentence": 0.5,
        }
    )
    assert set(DEFAULT_WEIGHTS) == {*WEIGHTS_WITHOUT_BIGRAMS, "bm25_bigram"}
    assert RetrievalParams().signals()[-1] == "bm25_bigram"
    assert RetrievalParams(method="dense").signals() == ["dense", "dense_sentence"]
    old = evaluate(model, small, latency_sample=0)
    new = evaluate(build_model("new", small, EdgeStore(tmp_path)), small, latency_sample=0)
    # 60 passages, 391 questions: top-1 / top-5 / MRR old 0.849 / 0.980 / 0.903, new 0.854 /
    # 0.972 / 0.906 (on all 646 passages of part 1: top-5 0.966 -> 0.968).
    assert old["top1"] > 0.83 and old["top5"] > 0.97
    assert new["top1"] > old["top1"] and new["mrr10"] > old["mrr10"], (old, new)


def test_bad_fusion_parameters_say_what_is_allowed() -> None:
    with pytest.raises(ValidationError, match=r"unknown signals: bm25_trigram\. Choose from: bm25"):
        RetrievalParams(weights={"bm25": 1.0, "bm25_trigram": 0.5})
    with pytest.raises(ValidationError, match="finite weights >= 0"):
        RetrievalParams(weights={"bm25": -1.0})
    with pytest.raises(ValidationError, match="bigrams"):
        RetrievalParams(bigrams="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        RetrievalParams(rerank="cross")  # type: ignore[call-arg]
