"""Sentence encoders that ship their weights, and the on-disk embedding cache."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from taxonomist.embed import EmbeddingCache, SentenceEmbedder, encoder_for_language
from taxonomist.embed.cache import text_key

PAIRS = [
    ("a cheap flight to paris", "low-cost plane tickets to paris"),
    ("un vol pas cher pour paris", "billets d'avion bon marché pour paris"),
]


def test_multilingual_encoder_embeds_paraphrases_close(tmp_path: Path) -> None:
    emb = SentenceEmbedder("use", cache_path=str(tmp_path / "cache.db")).fit(None)
    texts = [t for pair in PAIRS for t in pair] + ["recette de gâteau au chocolat"]
    E = emb.transform(np.array(texts, dtype=object)[:, None])
    assert E.shape == (5, 512)
    assert np.allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-3)
    sims = E @ E.T
    assert sims[2, 3] > sims[2, 4]  # French paraphrase closer than an unrelated French text
    assert sims[0, 2] > sims[0, 4]  # and across languages


def test_cache_returns_the_same_vectors_without_encoding(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    texts = np.array([[f"product number {i} in the catalogue"] for i in range(40)], dtype=object)
    emb = SentenceEmbedder("use", cache_path=str(path)).fit(None)
    first = emb.transform(texts)
    cache = EmbeddingCache(path)
    assert len(cache.get("use", [text_key(t[0]) for t in texts], 512)) == 40
    cache.close()
    start = time.perf_counter()
    again = SentenceEmbedder("use", cache_path=str(path)).fit(None).transform(texts)
    assert time.perf_counter() - start < 0.5
    assert np.array_equal(first, again)


@pytest.mark.torch
def test_english_uses_minilm_when_torch_is_installed() -> None:
    enc = encoder_for_language("en")
    assert enc.name == "minilm"
    E = enc.encode([PAIRS[0][0], PAIRS[0][1], "chocolate cake recipe"])
    assert E.shape == (3, 384)
    assert float(E[0] @ E[1]) > float(E[0] @ E[2]) + 0.2
    assert encoder_for_language("fr").name == "use"


@pytest.mark.parametrize(
    ("language", "shares", "expected"),
    [
        ("fr", {"fr": 0.82, "en": 0.1, "pt": 0.02}, "use"),  # the Rakuten sample's shares
        ("ru", None, "use"),
        ("en", {"en": 0.6, "ru": 0.4}, "use"),  # MiniLM knows no Russian
        ("fi", {"fi": 0.9, "sv": 0.1}, "e5"),  # USE has neither
        ("ru", {"ru": 0.7, "uk": 0.3}, "e5"),
        ("ru", {"ru": 0.95, "uk": 0.05}, "use"),  # a few rows do not choose
        ("unknown", {}, "use"),
    ],
)
def test_the_encoder_follows_the_languages_of_the_rows(
    language: str, shares: dict[str, float] | None, expected: str
) -> None:
    assert encoder_for_language(language, shares).name == expected


def test_e5_embeds_a_language_use_lacks() -> None:
    from taxonomist.embed.encoders import ENCODERS

    texts = [
        "дешевий квиток на потяг до Києва",  # Ukrainian: a cheap train ticket to Kyiv
        "недорогі залізничні квитки до Києва",  # inexpensive railway tickets to Kyiv
        "рецепт шоколадного торта",  # a chocolate cake recipe
        "halpa junalippu Helsinkiin",  # Finnish: a cheap train ticket to Helsinki
    ]
    E = ENCODERS["e5"].encode(texts)
    assert E.shape == (4, 384)
    assert np.allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-3)
    sims = E @ E.T
    assert sims[0, 1] > sims[0, 2]
    assert sims[0, 3] > sims[2, 3]  # across languages: tickets are closer than cake
    assert np.array_equal(ENCODERS["e5"].encode(texts[:1]), E[:1])  # alone as in a batch


@pytest.mark.torch
def test_one_text_takes_the_one_thread_path_to_the_same_vector() -> None:
    """A question asked now runs MiniLM as a compiled graph on one thread: the same vector as
    the batch path, and the caller's thread count is as it was."""
    import torch

    enc = encoder_for_language("en")
    batch = enc.encode([PAIRS[0][0], PAIRS[0][1]])
    threads = torch.get_num_threads()
    for i, text in enumerate(PAIRS[0]):
        one = enc.encode([text])
        assert float(one[0] @ batch[i]) > 0.9999
    assert torch.get_num_threads() == threads
