"""Feature blocks assembled from the inferred schema.

A *block* is one fitted transformer and its output (TF-IDF of the texts, one-hot of the
categoricals, out-of-fold text-model decisions, ...). Blocks are fitted once on the training
table and shared: every trial of the model search slices the same matrices, and at prediction
time each block is computed once for all ensemble members that use it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.utils.validation import check_is_fitted

from taxonomist.data.schema import Schema
from taxonomist.features.categorical import (
    CategoryCodes,
    CategoryStrings,
    CountEncoder,
    integer_code_columns,
    one_hot,
    target_encoder,
)
from taxonomist.features.columns import ColumnView
from taxonomist.features.ctr import (
    CrossStrings,
    CrossTargetEncoder,
    CtrPlan,
    EntityCounts,
    HashedCrosses,
    TimeParts,
)
from taxonomist.features.numeric import raw_numeric, scaled_numeric
from taxonomist.features.stacking import OutOfFoldDecision
from taxonomist.features.text import HashedTfidfVectorizer

logger = logging.getLogger(__name__)

CHAR_NGRAM_MAX_MEAN_LENGTH = 400
Folds = list[tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class BlockSpec:
    """How to build one block: from table ``columns`` or from another block's output."""

    name: str
    columns: tuple[str, ...]
    source: str | None
    make: Callable[[], Any]
    sparse: bool


def text_vectorizers(
    df: pd.DataFrame, text_columns: list[str], language: str = "en"
) -> list[HashedTfidfVectorizer]:
    """One TF-IDF per text column; character n-grams only where texts are short on average.

    Character n-grams catch typos and word pieces in titles; on long descriptions they add
    ten times the non-zeros for a small gain (app store: macro-F1 0.653 vs 0.639, fits 10x
    slower), so long columns get word 1-2-grams only.

    Word n-grams are of Snowball stems without stop words when the text is in an inflected
    language Snowball knows (French, Russian: +1.1 and +0.5 macro-F1 points, bench/
    multilingual.py); English keeps its words (+0.3 points for 1.8x the fit time).
    """
    from taxonomist.data.language import SNOWBALL

    stem = language if language != "en" and language in SNOWBALL else None
    out = []
    for i, col in enumerate(text_columns):
        mean_len = float(df[col].fillna("").astype(str).str.len().mean()) if len(df) else 0.0
        chars = (2, 5) if mean_len <= CHAR_NGRAM_MAX_MEAN_LENGTH else None
        out.append(
            HashedTfidfVectorizer(char_ngrams=chars, field=i, stem=stem, stop_words=bool(stem))
        )
    return out


class TextColumns(TransformerMixin, BaseEstimator):
    """One TF-IDF per text column, stacked side by side.

    A leaner ColumnTransformer: no joblib dispatch and no per-call validation, which
    dominated the cost of predicting one record.
    """

    accepts_column_view = True

    def __init__(
        self,
        vectorizers: list[HashedTfidfVectorizer] | None = None,
        columns: list[str] | None = None,
    ) -> None:
        self.vectorizers = vectorizers
        self.columns = columns

    def fit(self, X: pd.DataFrame, y: Any = None) -> TextColumns:
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X: pd.DataFrame, y: Any = None, **fit_params: Any) -> Any:
        self.vectorizers_ = [clone(v) for v in self.vectorizers or []]
        parts = [
            v.fit_transform(X[c])
            for v, c in zip(self.vectorizers_, self.columns or [], strict=True)
        ]
        self.widths_ = [p.shape[1] for p in parts]
        return sparse.hstack(parts, format="csr") if len(parts) > 1 else parts[0]

    def transform(self, X: pd.DataFrame) -> Any:
        check_is_fitted(self, "vectorizers_")
        parts = [
            v.transform(X[c]) for v, c in zip(self.vectorizers_, self.columns or [], strict=True)
        ]
        return sparse.hstack(parts, format="csr") if len(parts) > 1 else parts[0]


class RawText(TransformerMixin, BaseEstimator):
    """The text columns as strings, missing values empty (the hybrid network's input: it
    tokenises the texts itself)."""

    def fit(self, X: pd.DataFrame, y: Any = None) -> RawText:
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "n_features_in_")
        return X.astype("object").where(X.notna(), "").astype(str)


def block_specs(
    schema: Schema,
    df: pd.DataFrame,
    folds: Folds,
    seed: int,
    embed_encoder: str | None = None,
    cache_path: str | None = None,
    n_jobs: int = 1,
    ctr: CtrPlan | None = None,
    language: str = "en",
    image_root: str | None = None,
) -> dict[str, BlockSpec]:
    """Every block this schema supports, by name (``language``: the text's main one;
    ``image_root``: the folder the image columns' relative paths are in)."""
    specs: dict[str, BlockSpec] = {}
    if ctr is not None:
        specs.update(ctr_block_specs(ctr, seed))
    text, cats, nums = schema.text, schema.categorical, schema.numeric
    if text:
        vectorizers = text_vectorizers(df, text, language)
        specs["text"] = BlockSpec(
            "text", tuple(text), None, lambda: TextColumns(vectorizers, text), True
        )
        specs["text_svd"] = BlockSpec(
            "text_svd",
            (),
            "text",
            lambda: TruncatedSVD(
                n_components=64, algorithm="randomized", n_iter=4, random_state=seed
            ),
            False,
        )
        specs["text_oof"] = BlockSpec(
            "text_oof", (), "text", lambda: OutOfFoldDecision(folds=folds, n_jobs=n_jobs), False
        )
        specs["text_raw"] = BlockSpec("text_raw", tuple(text), None, RawText, False)
        if embed_encoder:
            from taxonomist.embed.transformer import SentenceEmbedder

            specs["embed"] = BlockSpec(
                "embed",
                tuple(text),
                None,
                lambda: SentenceEmbedder(encoder=embed_encoder, cache_path=cache_path),
                False,
            )
    if schema.image:
        from taxonomist.embed.image import ImageEmbedder

        specs["image"] = BlockSpec(
            "image",
            tuple(schema.image),
            None,
            lambda: ImageEmbedder(root=image_root, cache_path=cache_path),
            False,
        )
        # the boosted trees split on a few directions of the 1,280 features
        specs["image_pca"] = BlockSpec(
            "image_pca",
            (),
            "image",
            lambda: PCA(n_components=min(32, len(df) // 2), random_state=seed),
            False,
        )
    # Integer codes as one-hot help linear models on tabular data (click logs); beside text
    # they duplicate the numeric block and cost the SVM 0.02 macro-F1 (app store, CV).
    codes = [] if text else integer_code_columns(df, nums)
    if codes:
        specs["num_codes"] = BlockSpec("num_codes", tuple(codes), None, CategoryCodes, True)
    if cats:
        specs["onehot"] = BlockSpec("onehot", tuple(cats), None, one_hot, True)
        specs["cat_count"] = BlockSpec("cat_count", tuple(cats), None, CountEncoder, False)
        specs["cat_target"] = BlockSpec(
            "cat_target", tuple(cats), None, lambda: target_encoder(seed), False
        )
        specs["cat_str"] = BlockSpec("cat_str", tuple(cats), None, CategoryStrings, False)
    if nums:
        specs["num_scaled"] = BlockSpec("num_scaled", tuple(nums), None, scaled_numeric, False)
        specs["num_raw"] = BlockSpec("num_raw", tuple(nums), None, raw_numeric, False)
    return specs


def ctr_block_specs(plan: CtrPlan, seed: int) -> dict[str, BlockSpec]:
    """The click-through blocks of ``plan`` (``features/ctr.py``): entity counts, CTR
    encoding and strings of the crosses, hashed crosses, time parts."""
    specs: dict[str, BlockSpec] = {}
    cols = plan.columns
    t, fmt = plan.time_column, plan.time_format
    if plan.counts:
        specs["ctr_counts"] = BlockSpec(
            "ctr_counts",
            cols,
            None,
            lambda: EntityCounts(plan.counts, plan.windows, t, fmt),
            False,
        )
    if plan.crosses:
        specs["ctr_cross_target"] = BlockSpec(
            "ctr_cross_target",
            cols,
            None,
            lambda: CrossTargetEncoder(plan.crosses, plan.smoothing, seed=seed),
            False,
        )
        specs["ctr_cross_str"] = BlockSpec(
            "ctr_cross_str", cols, None, lambda: CrossStrings(plan.crosses), False
        )
    if plan.crosses or t:
        specs["ctr_hashed"] = BlockSpec(
            "ctr_hashed", cols, None, lambda: HashedCrosses(plan.crosses, t, fmt, plan.bits), True
        )
    if t:
        specs["ctr_time"] = BlockSpec("ctr_time", (t,), None, lambda: TimeParts(t, fmt), False)
    return specs


class FeatureBlocks:
    """Fitted blocks: ``fit`` once on the training table, ``transform`` new tables.

    Fitting is lazy: a block is fitted (with its dependencies) the first time a model family
    asks for it, so the search pays only for the blocks it uses.
    """

    def __init__(self, specs: dict[str, BlockSpec]) -> None:
        self.specs = specs
        self.fitted: dict[str, Any] = {}
        self.train_outputs: dict[str, Any] = {}
        self.fit_seconds: dict[str, float] = {}

    def fit_block(self, name: str, df: pd.DataFrame, y: np.ndarray) -> Any:
        """Training-table output of block ``name`` (fitted on first call, then cached)."""
        import time

        if name in self.train_outputs:
            return self.train_outputs[name]
        spec = self.specs[name]
        source = self.fit_block(spec.source, df, y) if spec.source else df[list(spec.columns)]
        start = time.perf_counter()
        transformer = spec.make()
        out = transformer.fit_transform(source, y)
        self.fit_seconds[name] = time.perf_counter() - start
        logger.info("fitted block %s in %.2fs", name, self.fit_seconds[name])
        self.fitted[name] = transformer
        self.train_outputs[name] = _as_matrix(out, spec.sparse)
        return self.train_outputs[name]

    def transform(self, df: pd.DataFrame | ColumnView, names: list[str]) -> dict[str, Any]:
        """Outputs of blocks ``names`` (and their dependencies) for a new table."""
        out: dict[str, Any] = {}

        if isinstance(df, ColumnView) and not self.accept_column_view(names):
            df = df.to_frame()

        def get(name: str) -> Any:
            if name not in out:
                spec = self.specs[name]
                if spec.source:
                    source = get(spec.source)
                elif isinstance(df, ColumnView):
                    source = df.subset(spec.columns)
                else:
                    source = df[list(spec.columns)]
                out[name] = _as_matrix(self.fitted[name].transform(source), spec.sparse)
            return out[name]

        for name in names:
            get(name)
        return out

    def accept_column_view(self, names: list[str]) -> bool:
        """Whether blocks ``names`` (and what they are computed from) take a
        :class:`ColumnView` (the single-record fast path)."""
        seen = set()
        stack = list(names)
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            source = self.specs[name].source
            if source:  # computed from another block's matrix, not from the columns
                stack.append(source)
            elif not getattr(self.fitted[name], "accepts_column_view", False):
                return False
        return True

    def drop_training_outputs(self) -> None:
        """Forget the training matrices (kept only during the search)."""
        self.train_outputs.clear()

    def prune(self, keep: set[str]) -> None:
        """Keep only the fitted blocks ``keep`` and their dependencies (smaller saved model)."""
        needed: set[str] = set()

        def add(name: str) -> None:
            needed.add(name)
            source = self.specs[name].source
            if source:
                add(source)

        for name in keep:
            add(name)
        self.fitted = {k: v for k, v in self.fitted.items() if k in needed}
        # The factories may be closures over the training folds; a fitted block needs none.
        self.specs = {
            k: replace(v, make=_fitted_only) for k, v in self.specs.items() if k in needed
        }


def _fitted_only() -> Any:
    raise RuntimeError("this block was fitted during training and cannot be refitted")


def _as_matrix(out: Any, is_sparse: bool) -> Any:
    if isinstance(out, pd.DataFrame):
        return out
    if is_sparse:
        return sparse.csr_matrix(out, dtype=np.float32)
    if sparse.issparse(out):
        out = out.toarray()
    return np.asarray(out, dtype=np.float32)


def stack_blocks(outputs: dict[str, Any], names: tuple[str, ...], *, as_sparse: bool) -> Any:
    """Horizontally stack block outputs into one matrix (sparse CSR or dense float32)."""
    parts = [outputs[n] for n in names]
    if as_sparse:
        parts = [p if sparse.issparse(p) else sparse.csr_matrix(p) for p in parts]
        return parts[0] if len(parts) == 1 else sparse.hstack(parts, format="csr")
    dense = [p.toarray() if sparse.issparse(p) else np.asarray(p, dtype=np.float32) for p in parts]
    return dense[0] if len(dense) == 1 else np.hstack(dense)
