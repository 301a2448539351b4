"""Retrieval models: BM25, dense and hybrid, stored in Qdrant under an id.

A model indexes each passage twice: whole, and sentence by sentence (the sentence a question
paraphrases is a sharper target than the passage around it). Up to five signals score a
passage for a question:

====================  ============================================================
``bm25``              BM25 of the passage (sparse vectors whose weights carry the IDF)
``bm25_sentence``     BM25 of its best sentence
``dense``             cosine of the passage's and the question's sentence embeddings
``dense_sentence``    cosine of its best sentence
``bm25_bigram``       BM25 of the passage's word pairs (adjacent terms once stop words
                      are dropped): a question that repeats a phrase of its passage
====================  ============================================================

``bm25`` uses the BM25 signals, ``dense`` the cosines, ``hybrid`` all five (``sentences=False``
keeps passages only, ``bigrams=False`` drops the word pairs). The pairs' weights share the
passage's sparse vector with its words' (a pair hashes to its own index, and a query names
words or pairs, never both), so they need no other index.

Searching gathers the ``candidates`` best passages of each signal, looks up every candidate's
exact score on the passage-level signals (``rescore``: filtered queries), and fuses: a
weighted sum of per-question z-scores (``weighted``; the default weights were tuned on the
first part of the shared SQuAD sample, never on the second) or reciprocal-rank fusion
(``rrf``). ``tune=True`` fits the weights on the build dataset's own questions instead.

BM25 is computed here rather than by ``bm25s`` or Qdrant's own BM25: its term weights (IDF
included) go into Qdrant sparse vectors, so one index lives in the same store as the dense
vectors, survives restarts, and scores the same on Qdrant Edge and on a server (the plain
variant matches ``bm25s`` to the third decimal on SQuAD: top-1 0.780 on part 1).
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from taxonomist.data.language import SNOWBALL
from taxonomist.errors import ConflictError, InvalidParameterError, NotFoundError
from taxonomist.retrieval.corpus import QADataset
from taxonomist.retrieval.store import DENSE, SPARSE, Store
from taxonomist.retrieval.text import Preprocessing, Tokenizer, split_sentences

logger = logging.getLogger(__name__)

SIGNALS = ("bm25", "bm25_sentence", "dense", "dense_sentence", "bm25_bigram")
# Tuned on squad_v2_part1 (python bench/retrieval.py --tune); part2 is the held-out check.
# The pairs' weight and the best sentence's BM25 moved together: 0.25/0.25 tops a plateau
# (0.25-0.5 each: top-1 0.854-0.856 on part 1), taken over the grid's corner (best sentence 0).
DEFAULT_WEIGHTS = {
    "bm25": 1.0,
    "bm25_sentence": 0.25,
    "dense": 1.0,
    "dense_sentence": 0.5,
    "bm25_bigram": 0.25,
}
# The weights before word pairs (bigrams=False keeps them): tuned on part 1 the same way.
WEIGHTS_WITHOUT_BIGRAMS = {"bm25": 1.0, "bm25_sentence": 0.5, "dense": 1.0, "dense_sentence": 0.5}
BIGRAMS = "bm25_bigram"  # the query vector of the word pairs (searched with the SPARSE vectors)
WEIGHT_GRID = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0)
MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
BATCH = 256

Progress = Callable[[str, int, int], None]  # (phase, done, total)
Guard = Callable[[dict[str, Any] | None], None]  # raises to refuse replacing this record


class RetrievalParams(BaseModel):
    """A retrieval model's hyper-parameters (all stored with it)."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["bm25", "dense", "hybrid"] = Field(
        default="hybrid",
        description="bm25: sparse only; dense: embeddings only; hybrid: both, fused.",
    )
    k1: float = Field(default=1.2, ge=0, le=10, description="BM25 term-frequency saturation.")
    b: float = Field(default=0.75, ge=0, le=1, description="BM25 length normalisation.")
    stem: bool = Field(default=True, description="BM25 on Snowball stems of words.")
    stopwords: bool = Field(default=True, description="BM25 ignores the language's stop words.")
    bigrams: bool = Field(
        default=True,
        description="Also score a passage by BM25 of its word pairs (phrases a question repeats).",
    )
    sentences: bool = Field(
        default=True, description="Also index each sentence; a passage scores by its best one too."
    )
    language: str = Field(default="auto", description="ISO 639-1 code, or auto (detected).")
    encoder: Literal["auto", "minilm", "use"] = Field(
        default="auto",
        description="minilm: English MiniLM; use: multilingual USE; auto: by language.",
    )
    fusion: Literal["weighted", "rrf"] = Field(
        default="weighted", description="weighted: sum of z-scores; rrf: reciprocal-rank fusion."
    )
    weights: dict[str, float] | None = Field(
        default=None, description=f"Signal weights ({', '.join(SIGNALS)}); default: tuned on SQuAD."
    )
    rrf_k: int = Field(default=60, ge=1, le=1000, description="RRF's rank offset.")
    candidates: int = Field(
        default=10, ge=1, le=500, description="Passages each signal proposes before re-scoring."
    )
    rescore: Literal["none", "passages", "all"] = Field(
        default="passages",
        description="Which signals look up every candidate's exact score before fusing "
        "(all: best quality, ~1.5 ms more; none: fastest).",
    )
    tune: bool = Field(
        default=False, description="Fit the fusion weights on this dataset's questions."
    )
    preprocessing: Preprocessing = Field(default_factory=lambda: Preprocessing())

    @field_validator("weights")
    @classmethod
    def _known_signals(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        unknown = sorted(set(value or {}) - set(SIGNALS))
        if unknown:
            raise ValueError(
                f"The 'weights' parameter names unknown signals: {', '.join(unknown)}. Choose "
                f"from: {', '.join(SIGNALS)}."
            )
        if value and any(not math.isfinite(w) or w < 0 for w in value.values()):
            raise ValueError(
                f"The 'weights' parameter takes finite weights >= 0. Got {value} instead."
            )
        return value

    def signals(self) -> list[str]:
        wanted = {
            "bm25": ["bm25", "bm25_sentence", "bm25_bigram"],
            "dense": ["dense", "dense_sentence"],
            "hybrid": list(SIGNALS),
        }[self.method]
        return [
            s
            for s in wanted
            if (self.sentences or not s.endswith("_sentence"))
            and (self.bigrams or s != "bm25_bigram")
        ]


def default_weights(signals: Sequence[str]) -> dict[str, float]:
    """The fusion weights tuned on SQuAD part 1 for these signals (with or without pairs)."""
    return DEFAULT_WEIGHTS if "bm25_bigram" in signals else WEIGHTS_WITHOUT_BIGRAMS


def check_model_id(model_id: str) -> None:
    if not MODEL_ID.match(model_id or ""):
        raise InvalidParameterError(
            f"'{model_id}' cannot name a retrieval model: use 1-64 letters, digits, '.', '_' or "
            "'-', starting with a letter or digit."
        )


def _bm25_vectors(
    token_counts: list[Counter[int]], k1: float, b: float
) -> list[tuple[list[int], list[float]]]:
    """Each document's BM25 term weights, IDF included (Lucene's IDF): a query's score is the
    sum of the weights of its terms."""
    n = len(token_counts)
    lengths = np.array([sum(c.values()) for c in token_counts], dtype=float)
    avg = max(float(lengths.mean()), 1e-9) if n else 1.0
    df: Counter[int] = Counter()
    for c in token_counts:
        df.update(c.keys())
    out = []
    for c, length in zip(token_counts, lengths, strict=True):
        norm = k1 * (1 - b + b * length / avg)
        idx = list(c)
        vals = [
            math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5)) * c[t] * (k1 + 1) / (c[t] + norm)
            for t in idx
        ]
        out.append((idx, vals))
    return out


def _zscores(column: np.ndarray) -> np.ndarray:
    sd = column.std()
    return (column - column.mean()) / sd if sd > 1e-12 else np.zeros_like(column)


class RetrievalModel:
    """A built retrieval model, opened from its store. ``search`` answers one question."""

    def __init__(self, meta: dict[str, Any], store: Store) -> None:
        self.meta, self.store = meta, store
        self.params = RetrievalParams.model_validate(meta["params"])
        self.id: str = meta["id"]
        self.language: str = meta["language"]
        self.signals: list[str] = meta["signals"]
        self.weights: dict[str, float] = meta["weights"]
        self.tokenizer = Tokenizer(self.language, self.params.stem, self.params.stopwords)
        self._encoder: Any = None
        if meta.get("encoder") and any(s.startswith("dense") for s in self.signals):
            from taxonomist.embed.encoders import get_encoder

            self._encoder = get_encoder(meta["encoder"])

    # -- life cycle ----------------------------------------------------------------------------
    @classmethod
    def open(cls, store: Store, model_id: str) -> RetrievalModel:
        meta = store.read_meta(model_id)
        if meta is None:
            raise NotFoundError(
                f"No retrieval model named '{model_id}'. List them with `taxonomist retrieval "
                "list` or GET /api/v1/retrieval/models."
            )
        model = cls(meta, store)
        for name in meta["collections"].values():
            store.open(name)
        if model._encoder is not None:
            model._encoder.encode_as_asked(["warm up"])  # loads the engine now, not on a question
        return model

    def close(self) -> None:
        for name in self.meta["collections"].values():
            self.store.close(name)

    # -- searching -----------------------------------------------------------------------------
    def _query_vectors(self, question: str, embedding: np.ndarray | None) -> dict[str, Any]:
        text = self.params.preprocessing.clean(question, self.language)
        vectors: dict[str, Any] = {}
        if any(s.startswith("bm25") for s in self.signals):
            counts = self.tokenizer.counts(text)
            vectors[SPARSE] = (list(counts), [float(v) for v in counts.values()])
        if "bm25_bigram" in self.signals:
            pairs = self.tokenizer.bigram_counts(text)
            vectors[BIGRAMS] = (list(pairs), [float(v) for v in pairs.values()])
        if self._encoder is not None:
            if embedding is None:
                embedding = self._encoder.encode_as_asked([text])[0]
            vectors[DENSE] = embedding.tolist()
        return vectors

    def _signal_scores(
        self,
        vectors: dict[str, Any],
        limits: dict[str, int],
        passage_ids: Sequence[str] | None = None,
        signals: Sequence[str] | None = None,
    ) -> dict[str, dict[str, float]]:
        """Each signal's best score per passage: one batched query per collection."""
        found: dict[str, dict[str, float]] = {}
        wanted = list(signals or self.signals)
        for part in ("passages", "sentences"):
            signals_here = [s for s in wanted if s.endswith("_sentence") == (part == "sentences")]
            if not signals_here:
                continue
            queries = [
                (
                    SPARSE if s.startswith("bm25") else DENSE,
                    vectors[
                        BIGRAMS if s == "bm25_bigram" else SPARSE if s.startswith("bm25") else DENSE
                    ],
                    limits[s],
                )
                for s in signals_here
            ]
            results = self.store.query(
                self.meta["collections"][part], queries, passage_ids=passage_ids
            )
            for signal, hits in zip(signals_here, results, strict=True):
                best: dict[str, float] = {}
                for pid, score in hits:  # best first: the first hit of a passage is its max
                    best.setdefault(pid, score)
                found[signal] = best
        return found

    def candidates(
        self, question: str, embedding: np.ndarray | None = None
    ) -> tuple[list[str], np.ndarray]:
        """The candidate passages of a question and their score on each signal
        (``len(ids) x len(self.signals)``); the signals ``rescore`` names look up every
        candidate's exact score."""
        vectors = self._query_vectors(question, embedding)
        n = self.params.candidates
        limits = {s: n * 4 if s.endswith("_sentence") else n for s in self.signals}
        found = self._signal_scores(vectors, limits)
        ids = list(dict.fromkeys(pid for scores in found.values() for pid in scores))
        if not ids:
            return [], np.zeros((0, len(self.signals)))
        # A candidate another signal proposed gets the lowest score this signal listed,
        # unless re-scoring looks it up.
        fill = {s: min(found[s].values(), default=0.0) for s in self.signals}
        again = [
            s
            for s in self.signals
            if self.params.rescore == "all"
            or (self.params.rescore == "passages" and not s.endswith("_sentence"))
        ]
        if len(self.signals) > 1 and again:
            per_passage = self.meta["max_sentences"]
            limits = {s: len(ids) * (per_passage if s.endswith("_sentence") else 1) for s in again}
            found.update(self._signal_scores(vectors, limits, ids, again))
            fill.update(dict.fromkeys(again, 0.0))  # looked up: absent means no shared term
        matrix = np.array(
            [[found[s].get(pid, fill[s]) for s in self.signals] for pid in ids], dtype=float
        )
        return ids, matrix

    def normalise(self, matrix: np.ndarray) -> np.ndarray:
        """Signal scores on a common scale, weights aside: per-question z-scores
        (``weighted``) or reciprocal ranks (``rrf``)."""
        if self.params.fusion == "rrf":
            ranks = (-matrix).argsort(axis=0).argsort(axis=0)
            return 1.0 / (self.params.rrf_k + 1 + ranks)
        return np.column_stack([_zscores(matrix[:, j]) for j in range(matrix.shape[1])])

    def fuse(self, matrix: np.ndarray) -> np.ndarray:
        """One score per candidate from its signal scores."""
        if matrix.shape[1] == 1:
            return matrix[:, 0]
        return self.normalise(matrix) @ np.array([self.weights.get(s, 0.0) for s in self.signals])

    def search(
        self, question: str, k: int = 5, *, embedding: np.ndarray | None = None
    ) -> list[dict[str, Any]]:
        """The ``k`` best passages: ``passage_id``, ``score``, ``context``, ``rank``."""
        ids, matrix = self.candidates(question, embedding)
        if not ids:
            return []
        scores = self.fuse(matrix)
        order = np.argsort(-scores, kind="stable")[:k]
        top = [ids[i] for i in order]
        texts = {
            p["passage_id"]: p["context"]
            for p in self.store.fetch(self.meta["collections"]["passages"], top)
        }
        return [
            {
                "rank": r + 1,
                "passage_id": ids[i],
                "score": round(float(scores[i]), 6),
                "context": texts.get(ids[i], ""),
            }
            for r, i in enumerate(order)
        ]

    def embed_questions(self, questions: Sequence[str]) -> np.ndarray | None:
        if self._encoder is None:
            return None
        cleaned = [self.params.preprocessing.clean(q, self.language) for q in questions]
        return self._encoder.encode_as_asked(cleaned)  # the vectors search() would use

    def rank_many(
        self,
        questions: Sequence[str],
        k: int = 10,
        *,
        on_progress: Progress | None = None,
    ) -> list[list[str]]:
        """The ``k`` best passage ids of each question (questions embedded in batches)."""
        embeddings = self.embed_questions(questions)
        out = []
        for i, q in enumerate(questions):
            ids, matrix = self.candidates(q, None if embeddings is None else embeddings[i])
            order = np.argsort(-self.fuse(matrix), kind="stable")[:k] if ids else np.array([], int)
            out.append([ids[j] for j in order])
            if on_progress is not None and (i % 100 == 99 or i == len(questions) - 1):
                on_progress("questions", i + 1, len(questions))
        return out

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in self.meta.items() if k != "collections"}


# -- building --------------------------------------------------------------------------------
def _language(params: RetrievalParams, texts: list[str]) -> str:
    if params.language != "auto":
        return params.language
    from taxonomist.data.language import language_distribution, main_language

    found = main_language(language_distribution(texts, sample=50))
    return found if found in SNOWBALL else ("en" if found == "unknown" else found)


def _encoder_name(params: RetrievalParams, language: str) -> str | None:
    if params.method == "bm25":
        return None
    if params.encoder != "auto":
        return params.encoder
    from taxonomist.embed.encoders import encoder_for_language

    return encoder_for_language(language).name


def _exists(model_id: str) -> ConflictError:
    return ConflictError(
        f"A retrieval model named '{model_id}' exists: choose another name, or replace it "
        "(--replace, or replace=true in the API)."
    )


def build_model(
    model_id: str,
    dataset: QADataset,
    store: Store,
    params: RetrievalParams | None = None,
    *,
    replace: bool = False,
    info: dict[str, Any] | None = None,
    on_progress: Progress | None = None,
    guard: Guard | None = None,
) -> RetrievalModel:
    """Index ``dataset``'s passages under ``model_id``; the model is written only when whole.

    ``info`` (owner, dataset name...) is stored in the metadata as given. Just before the
    record is written, the name is checked again (a build takes minutes: the model it replaces
    may have changed meanwhile) and ``guard`` is called with the record there now (None if
    none); it raises to refuse the write, e.g. when the model there is not the caller's.
    """
    check_model_id(model_id)
    params = params or RetrievalParams()
    if store.read_meta(model_id) is not None and not replace:
        raise _exists(model_id)
    progress = on_progress or (lambda phase, done, total: None)
    started = time.perf_counter()
    language = _language(params, dataset.passages["context"].head(50).tolist())
    passages, questions, removed = params.preprocessing.apply(
        dataset.passages, dataset.questions, language
    )
    encoder_name = _encoder_name(params, language)
    encoder = None
    if encoder_name:
        from taxonomist.embed.encoders import get_encoder

        encoder = get_encoder(encoder_name)
    signals = params.signals()
    sparse = any(s.startswith("bm25") for s in signals)
    tokenizer = Tokenizer(language, params.stem, params.stopwords)

    docs: dict[str, tuple[list[str], list[dict[str, Any]]]] = {
        "passages": (
            passages["text"].tolist(),
            [
                {"passage_id": pid, "context": ctx}
                for pid, ctx in zip(passages["passage_id"], passages["context"], strict=True)
            ],
        )
    }
    max_sentences = 1
    if params.sentences:
        texts: list[str] = []
        payloads: list[dict[str, Any]] = []
        for pid, text in zip(passages["passage_id"], passages["text"], strict=True):
            parts = split_sentences(text) or [text]
            max_sentences = max(max_sentences, len(parts))
            texts.extend(parts)
            payloads.extend({"passage_id": pid} for _ in parts)
        docs["sentences"] = (texts, payloads)

    created: list[str] = []
    try:
        collections = {}
        for part, (texts, payloads) in docs.items():
            name = store.new_collection_name(model_id, part)
            store.create(name, dense_size=encoder.dim if encoder else None, sparse=sparse)
            created.append(name)
            collections[part] = name
            weights = (
                _bm25_vectors([tokenizer.counts(t) for t in texts], params.k1, params.b)
                if sparse
                else None
            )
            if weights is not None and part == "passages" and "bm25_bigram" in signals:
                pairs = _bm25_vectors(
                    [tokenizer.bigram_counts(t) for t in texts], params.k1, params.b
                )
                weights = [(w[0] + p[0], w[1] + p[1]) for w, p in zip(weights, pairs, strict=True)]
            for start in range(0, len(texts), BATCH):
                chunk = slice(start, start + BATCH)
                dense = encoder.encode(texts[chunk]) if encoder else None
                store.upsert(
                    name,
                    range(start, start + len(texts[chunk])),
                    payloads[chunk],
                    dense=dense,
                    sparse=weights[chunk] if weights is not None else None,
                )
                progress(f"indexing {part}", min(start + BATCH, len(texts)), len(texts))
            store.finish(name)
        meta: dict[str, Any] = {
            "id": model_id,
            "params": params.model_dump(),
            "language": language,
            "encoder": encoder_name,
            "signals": signals,
            "weights": {
                s: (params.weights or default_weights(signals)).get(s, 0.0) for s in signals
            },
            "collections": collections,
            "max_sentences": max_sentences,
            "n_passages": len(passages),
            "n_sentences": len(docs["sentences"][0]) if "sentences" in docs else None,
            "n_questions": len(questions),
            "removed": removed,
            "backend": store.backend,
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **(info or {}),
        }
        model = RetrievalModel(meta, store)
        if params.tune and len(signals) > 1 and len(questions):
            meta["weights"] = tune_weights(
                model,
                questions["question"].tolist(),
                questions["passage_id"].tolist(),
                on_progress=progress,
            )
            model.weights = meta["weights"]
        meta["build_seconds"] = round(time.perf_counter() - started, 2)
        old = store.read_meta(model_id)  # what the write replaces: read now, not at the start
        if old is not None and not replace:
            raise _exists(model_id)
        if guard is not None:
            guard(old)
        store.write_meta(model_id, meta)  # the model exists from here on
    except BaseException:
        for name in created:
            store.drop(name)
        raise
    for name in created:
        store.close(name)  # a built model holds no memory until it is loaded (or searched)
    if old is not None:
        for name in old["collections"].values():
            store.drop(name)
    return model


def remove_model(store: Store, model_id: str) -> bool:
    """Remove a model: its record first (a half-removed model is no model), then its data."""
    meta = store.read_meta(model_id)
    if meta is None:
        return False
    store.delete_meta(model_id)
    for name in meta["collections"].values():
        store.drop(name)
    return True


def tune_weights(
    model: RetrievalModel,
    questions: list[str],
    truth: list[str],
    *,
    sample: int = 1000,
    seed: int = 0,
    on_progress: Progress | None = None,
) -> dict[str, float]:
    """Fusion weights that maximise MRR@10 on (a sample of) ``questions``: a grid search,
    the first signal's weight fixed at 1."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(questions), min(sample, len(questions)), replace=False)
    qs = [questions[i] for i in pick]
    embeddings = model.embed_questions(qs)
    cases = []
    for n, i in enumerate(pick):
        ids, matrix = model.candidates(questions[i], None if embeddings is None else embeddings[n])
        if truth[i] in ids:  # normalised once: only the weights change below
            cases.append((model.normalise(matrix), ids.index(truth[i])))
        if on_progress is not None and n % 100 == 99:
            on_progress("tuning", n + 1, len(pick))
    rest = model.signals[1:]
    grid = np.array(
        [(1.0, *combo) for combo in itertools.product(WEIGHT_GRID, repeat=len(rest))]
    ).T  # signals x combinations: every combination scored at once
    mrr = np.zeros(grid.shape[1])
    for normalised, right in cases:
        scores = normalised @ grid
        rank = (scores > scores[right]).sum(axis=0)
        mrr += np.where(rank < 10, 1.0 / (rank + 1), 0.0)
    if not cases:
        return dict(model.weights)
    top = int(np.argmax(mrr))  # the first of equals: the grid's order, as before
    best = dict(zip(model.signals, (float(w) for w in grid[:, top]), strict=True))
    best_mrr = float(mrr[top])
    logger.info("tuned fusion weights %s (MRR@10 %.3f)", best, best_mrr / max(len(pick), 1))
    return best
