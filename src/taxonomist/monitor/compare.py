"""Working data against the data a model was trained on: text lengths, classes, vocabulary.

The training side is the :class:`~taxonomist.data.profile.DatasetProfile` stored with the
model, so no training data is needed at prediction time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd

from taxonomist.data.profile import text_stats
from taxonomist.features.text import word_buckets

if TYPE_CHECKING:
    from taxonomist.models.model import TaxonomistModel

TOP_WORDS = 200  # training's most frequent words checked for absence
LISTED = 50  # words listed in each direction


def min_df(model: TaxonomistModel, column: str) -> int:
    """In how many training texts a word must be for the model's TF-IDF to know it."""
    block = model.blocks.fitted.get("text")
    columns = list(getattr(block, "columns", None) or [])
    if block is None or column not in columns:
        return 0
    return int(getattr(block.vectorizers_[columns.index(column)], "min_df", 1))


def known_words(model: TaxonomistModel, column: str) -> Callable[[list[str]], set[str]]:
    """Which of some words the model's TF-IDF for ``column`` has a feature for (seen in at
    least ``min_df`` training texts); every word counts as known without a TF-IDF."""
    block = model.blocks.fitted.get("text")
    columns = list(getattr(block, "columns", None) or [])
    if block is None or column not in columns:
        return lambda words: set(words)
    vec = block.vectorizers_[columns.index(column)]

    def known(words: list[str]) -> set[str]:
        buckets = word_buckets(words, n_features=vec.n_features, field=vec.field)
        hit = vec.column_of_bucket_[buckets] >= 0
        return {w for w, h in zip(words, hit, strict=True) if h}

    return known


def compare_to_training(model: TaxonomistModel, data: pd.DataFrame) -> dict[str, Any]:
    """Words per text (training vs working), class counts (training vs predicted), words the
    model has never seen, and frequent training words absent or rare in the working data."""
    profile = model.profile or {}
    prepared = model.prepare(data)
    predicted = pd.Series(model.predict(prepared), dtype=object).astype(str).value_counts()
    out: dict[str, Any] = {
        "n_rows": len(prepared),
        "class_counts": {
            "training": profile.get("class_counts", {}),
            "predicted": {str(k): int(v) for k, v in predicted.items()},
        },
        "text": {},
    }
    for column in model.schema.text:
        trained = profile.get("columns", {}).get(column, {}).get("stats", {})
        working = text_stats(prepared[column])
        vocabulary = working["vocabulary"]
        known = known_words(model, column)(list(vocabulary))
        new = {w: n for w, n in vocabulary.items() if w not in known}
        frequent = list(trained.get("vocabulary", {}))[:TOP_WORDS]
        missing = [w for w in frequent if w not in working["vocabulary"]]
        out["text"][column] = {
            "words_histogram": {
                "edges": working["words_histogram"]["edges"],
                "training": trained.get("words_histogram", {}).get("counts"),
                "working": working["words_histogram"]["counts"],
            },
            "words_mean": {"training": trained.get("words_mean"), "working": working["words_mean"]},
            "new_words": {"count": len(new), "top": dict(list(new.items())[:LISTED])},
            "missing_words": {"count": len(missing), "top": missing[:LISTED]},
        }
    return out
