"""Prediction cost: what each feature block and each ensemble member costs to predict, and
whether an ensemble stays inside the user's budget (AutoGluon's ``infer_limit``, per record
and per batch).

An ensemble's cost is the sum of its blocks' (each block once: members of one layout share
it) and its members' own. Every cost is measured on this machine, on one thread's worth of
the real work: a batch of training rows and one record. The linear families' batches run on
every core at predict time, so a batch estimate errs on the slow side; the final model's
throughput is measured again after the refit and stated on its card.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from taxonomist.features.build import FeatureBlocks
    from taxonomist.features.columns import ColumnView

BATCH_ROWS = 1000


@dataclass(frozen=True)
class Cost:
    """Microseconds per row in a batch and milliseconds for one record."""

    batch_us: float = 0.0
    one_ms: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.batch_us + other.batch_us, self.one_ms + other.one_ms)

    @property
    def rows_per_second(self) -> float:
        return 1e6 / self.batch_us if self.batch_us > 0 else float("inf")

    def to_dict(self) -> dict[str, float]:
        return {
            "batch_us_per_row": round(self.batch_us, 2),
            "rows_per_second": round(min(self.rows_per_second, 1e9), 1),
            "one_record_ms": round(self.one_ms, 3),
        }


@dataclass(frozen=True)
class PredictBudget:
    """The most a prediction may cost: ``max_predict_ms`` for one record and
    ``min_rows_per_second`` in a batch (``None``: no limit)."""

    max_predict_ms: float | None = None
    min_rows_per_second: float | None = None

    def allows(self, cost: Cost) -> bool:
        if self.max_predict_ms is not None and cost.one_ms > self.max_predict_ms:
            return False
        return self.min_rows_per_second is None or cost.rows_per_second >= self.min_rows_per_second

    def describe(self) -> str:
        parts = []
        if self.max_predict_ms is not None:
            parts.append(f"{self.max_predict_ms:g} ms a record")
        if self.min_rows_per_second is not None:
            parts.append(f"{self.min_rows_per_second:,.0f} rows/s")
        return " and ".join(parts) or "no limit"


def time_call(fn: Callable[[], Any], repeats: int = 3) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def measure(predict: Callable[[Any], Any], batch: Any, one: Any) -> Cost:
    """The cost of ``predict`` on ``batch`` (per row) and on ``one`` (a single row)."""
    batch_s = time_call(lambda: predict(batch), repeats=1)
    one_s = time_call(lambda: predict(one), repeats=5)
    return Cost(batch_us=batch_s * 1e6 / max(_len(batch), 1), one_ms=one_s * 1e3)


def _len(x: Any) -> int:
    return int(x.shape[0]) if hasattr(x, "shape") else len(x)


class BlockCosts:
    """Each fitted block's own cost (its source block's subtracted), measured once."""

    def __init__(self, blocks: FeatureBlocks, df: pd.DataFrame) -> None:
        self.blocks = blocks
        self.batch = df.iloc[:BATCH_ROWS].reset_index(drop=True)
        self.one = df.iloc[:1].reset_index(drop=True)
        self._own: dict[str, Cost] = {}

    def own(self, name: str) -> Cost:
        if name not in self._own:
            self._own[name] = self._measure(name)
        return self._own[name]

    def _measure(self, name: str) -> Cost:
        from taxonomist.features.columns import ColumnView

        spec = self.blocks.specs[name]
        if name == "embed":
            return embedding_cost(self.blocks.fitted[name], self.batch[list(spec.columns)])
        one: pd.DataFrame | ColumnView = self.one
        if self.blocks.accept_column_view([name]):
            one = ColumnView({c: self.one[c].to_numpy() for c in self.one.columns})
        total = measure(lambda x: self.blocks.transform(x, [name]), self.batch, one)
        source_name = spec.source
        if source_name is None:
            return total
        source = measure(lambda x: self.blocks.transform(x, [source_name]), self.batch, one)
        return Cost(
            max(total.batch_us - source.batch_us, 0.0), max(total.one_ms - source.one_ms, 0.0)
        )

    def of(self, names: Iterable[str]) -> Cost:
        """Blocks ``names`` and the blocks they are computed from, each once."""
        needed: set[str] = set()
        stack = [n for n in names if n in self.blocks.fitted]
        while stack:
            n = stack.pop()
            if n not in needed:
                needed.add(n)
                source = self.blocks.specs[n].source
                if source:
                    stack.append(source)
        total = Cost()
        for n in sorted(needed):
            total = total + self.own(n)
        return total


def embedding_cost(embedder: Any, sample: pd.DataFrame) -> Cost:
    """What ``embedder`` costs on texts like ``sample``'s that the cache has not seen (the
    training rows are all cached: timing them would say embeddings are free)."""
    from taxonomist.embed.encoders import MAX_CHARS, get_encoder
    from taxonomist.embed.transformer import join_text_columns

    encoder = get_encoder(embedder.encoder)
    texts = join_text_columns(sample)
    chars = float(np.mean([min(len(t), MAX_CHARS) for t in texts])) if texts else 0.0
    per_text_s = chars / encoder.chars_per_second
    return Cost(batch_us=per_text_s * 1e6, one_ms=per_text_s * 1e3)


class EnsembleCosts:
    """The prediction cost of an ensemble of search trials: the blocks its families use (each
    once, measured on ``df``'s rows) and each trial's own model cost."""

    def __init__(self, blocks: FeatureBlocks, df: pd.DataFrame) -> None:
        self.blocks = BlockCosts(blocks, df)

    def of(self, records: Iterable[Any]) -> Cost:
        from taxonomist.models.candidates import FAMILIES

        records = list(records)
        names = {b for r in records for b in FAMILIES[r.family].blocks}
        total = self.blocks.of(names)
        for r in records:
            total = total + r.cost
        return total
