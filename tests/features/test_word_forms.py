"""Snowball stems and stop words in the TF-IDF's word n-grams (inflected languages)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd

from taxonomist.features import HashedTfidfVectorizer
from taxonomist.features.build import text_vectorizers
from taxonomist.features.text import word_forms

CORPUS = [
    "les chaussures rouges",
    "une chaussure rouge",
    "robe d'été bleue",
    "des robes bleues",
    "красное платье",
    "красные платья",
]


def _words_only(**params) -> HashedTfidfVectorizer:
    return HashedTfidfVectorizer(char_ngrams=None, word_ngrams=(1, 1), **params)


def test_word_forms_stem_lower_case_and_drop_stop_words() -> None:
    assert word_forms(["Les Chaussures ROUGES"], "fr", True) == ["chaussur roug"]
    assert word_forms(["Les Chaussures ROUGES"], "fr", False) == ["le chaussur roug"]
    assert word_forms(["Красные платья"], "ru", True) == ["красн плат"]
    # a language Snowball lacks keeps its words
    assert word_forms(["Les chaussures_rouges"], "ja", True) == ["les chaussures rouges"]
    assert word_forms(["Les chaussures"], None, False) == ["les chaussures"]


def test_stems_merge_the_forms_of_a_word_and_words_do_not() -> None:
    stems = _words_only(stem="fr", stop_words=True).fit(CORPUS)
    words = _words_only().fit(CORPUS)
    a, b = CORPUS[0], CORPUS[1]
    s = stems.transform([a, b]).toarray()
    w = words.transform([a, b]).toarray()
    assert np.allclose(s[0], s[1])  # "les"/"une" are stop words, the rest the same stems
    assert float(w[0] @ w[1]) < 0.01  # no word in common as written
    r = _words_only(stem="ru", stop_words=True).fit(CORPUS).transform(CORPUS[4:]).toarray()
    assert np.allclose(r[0], r[1])


def test_character_ngrams_stay_on_the_text_as_written() -> None:
    chars = {"word_ngrams": (0, 0), "char_ngrams": (2, 4)}
    stemmed = HashedTfidfVectorizer(stem="fr", stop_words=True, **chars).fit(CORPUS)
    plain = HashedTfidfVectorizer(**chars).fit(CORPUS)
    assert np.allclose(stemmed.transform(CORPUS).toarray(), plain.transform(CORPUS).toarray())


def test_stemmed_counts_are_the_same_on_threads_batch_by_batch_and_after_pickling() -> None:
    texts = [f"{t} n{i % 97}" for i, t in enumerate(CORPUS * 1500)]  # several chunks
    serial = HashedTfidfVectorizer(stem="fr", stop_words=True, n_jobs=1).fit(texts)
    threaded = HashedTfidfVectorizer(stem="fr", stop_words=True, n_jobs=2).fit(texts)
    whole = serial.transform(texts)
    assert (whole != threaded.transform(texts)).nnz == 0
    one = np.vstack([serial.transform([t]).toarray() for t in texts[:12]])
    assert np.allclose(one, whole[:12].toarray())
    again = pickle.loads(pickle.dumps(serial))
    assert (again.transform(texts[:50]) != whole[:50]).nnz == 0


def test_training_stems_inflected_languages_snowball_knows_and_keeps_english_words() -> None:
    df = pd.DataFrame({"t": CORPUS})
    assert [(v.stem, v.stop_words) for v in text_vectorizers(df, ["t"], "fr")] == [("fr", True)]
    assert text_vectorizers(df, ["t"], "ru")[0].stem == "ru"
    for language in ("en", "ja", "unknown"):
        v = text_vectorizers(df, ["t"], language)[0]
        assert (v.stem, v.stop_words) == (None, False)


def test_a_french_models_explanation_names_the_stems_it_counted(home) -> None:
    from taxonomist.models.train import train

    shoes = ["chaussures de course rouges", "chaussure de marche", "des chaussures bleues"]
    dresses = ["une robe d'été légère", "robes longues en coton", "la robe de soirée noire"]
    rows = [
        (f"{t} modèle {i}", kind)
        for i in range(20)
        for kind, texts in (("chaussure", shoes), ("robe", dresses))
        for t in texts
    ]
    df = pd.DataFrame(rows, columns=["titre", "type"])
    result = train(df, target="type", families=["linear_svm"], trials=1)
    assert result.profile.language == "fr"
    why = result.model.explain({"titre": "Chaussures de sport"})
    assert why["label"] == "chaussure"
    names = [w["name"] for w in why["words"]]
    # the word n-grams' stem, beside the words the character n-grams are credited to
    assert "titre: chaussur" in names and "titre: chaussures" in names
