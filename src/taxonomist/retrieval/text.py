"""Text handling for retrieval: the user's preprocessing, BM25 tokens, sentences.

:class:`Preprocessing` is what the user chooses (lower-casing, punctuation and stop-word
removal, de-duplication, dropping empty rows); it is stored with the model and applied to the
passages at build time and to every question asked. :class:`Tokenizer` turns a text into the
terms BM25 counts (lower-cased words, stop words dropped, Snowball stems) and hashes them to
sparse-vector indices, so no vocabulary has to be stored.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
import zlib
from collections import Counter
from dataclasses import dataclass

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from taxonomist.data.language import stemmer, stop_words
from taxonomist.errors import EmptyDataError

_WORD = re.compile(r"(?u)\b\w\w+\b")
_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
_SENTENCE = re.compile(r"(?<=[.!?。])\s+(?=\S)")


def split_sentences(text: str, *, min_chars: int = 20) -> list[str]:
    """Sentences of ``text``; a fragment shorter than ``min_chars`` joins the one before."""
    out: list[str] = []
    for part in _SENTENCE.split(text.strip()):
        if out and len(part) < min_chars:
            out[-1] = f"{out[-1]} {part}"
        elif part:
            out.append(part)
    return out


class Preprocessing(BaseModel):
    """Optional cleaning, stored with the model and applied to passages and questions alike."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lowercase: bool = Field(default=False, description="Lower-case every text.")
    strip_punctuation: bool = Field(default=False, description="Replace punctuation with spaces.")
    remove_stopwords: bool = Field(default=False, description="Drop the language's stop words.")
    deduplicate: bool = Field(default=True, description="Keep one of each repeated question.")
    drop_empty: bool = Field(default=True, description="Drop passages and questions left empty.")

    def clean(self, text: str, language: str) -> str:
        if self.lowercase:
            text = text.lower()
        if self.strip_punctuation:
            text = " ".join(_PUNCT.sub(" ", text).split())
        if self.remove_stopwords:
            stops = stop_words(language)
            text = " ".join(w for w in text.split() if w.lower().strip(".,;:!?") not in stops)
        return unicodedata.normalize("NFC", text).strip()

    def apply(
        self, passages: pd.DataFrame, questions: pd.DataFrame, language: str
    ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
        """The passages (with a ``text`` column: what is indexed) and questions after
        cleaning, and how many rows each step removed."""
        passages = passages.assign(text=[self.clean(c, language) for c in passages["context"]])
        questions = questions.assign(
            question=[self.clean(q, language) for q in questions["question"]]
        )
        removed = {"empty_passages": 0, "empty_questions": 0, "duplicate_questions": 0}
        if self.drop_empty:
            empty = passages["text"].str.len() == 0
            removed["empty_passages"] = int(empty.sum())
            passages = passages[~empty]
            kept = questions["passage_id"].isin(passages["passage_id"])
            empty_q = questions["question"].str.len() == 0
            removed["empty_questions"] = int((empty_q & kept).sum())
            questions = questions[kept & ~empty_q]
        if self.deduplicate:
            dup = questions.duplicated(["question", "passage_id"])
            removed["duplicate_questions"] = int(dup.sum())
            questions = questions[~dup]
        if passages.empty:
            raise EmptyDataError(
                "No passage has any text left after preprocessing: choose fewer cleaning steps."
            )
        return passages.reset_index(drop=True), questions.reset_index(drop=True), removed


@dataclass(frozen=True)
class Tokenizer:
    """BM25 terms: lower-cased words of two or more characters, without stop words, stemmed."""

    language: str = "en"
    stem: bool = True
    stopwords: bool = True

    def tokens(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower())
        if self.stopwords:
            stops = stop_words(self.language)
            words = [w for w in words if w not in stops]
        stems = stemmer(self.language) if self.stem else None
        return stems.stemWords(words) if stems is not None else words

    def counts(self, text: str) -> Counter[int]:
        """Term index -> count; the index is a stable 31-bit hash of the term."""
        return Counter(term_index(t) for t in self.tokens(text))

    def bigram_counts(self, text: str) -> Counter[int]:
        """Word-pair index -> count: each two adjacent terms of :meth:`tokens` (stop words
        dropped, so "capital of France" pairs "capit franc"). A pair's text holds a space and
        a word's never does, so their hashes are of different strings."""
        terms = self.tokens(text)
        return Counter(term_index(f"{a} {b}") for a, b in itertools.pairwise(terms))


def term_index(term: str) -> int:
    return zlib.crc32(term.encode()) & 0x7FFFFFFF
