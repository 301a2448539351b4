"""Retrieval benchmark on the shared SQuAD sample: each part is its own closed corpus.

    python bench/retrieval.py            # the table of bench/README.md
    python bench/retrieval.py --tune     # fit the fusion weights on part 1 (the defaults)

Each row adds one step to the one above it, so its effect shows; plain BM25 and plain dense
retrieval are the baselines, run in the same process (the dense rows and the previous default
embed questions as before, by TorchScript; ``python bench/question_embedding.py`` compares the
engines on their own). The fusion weights were tuned on part 1's
questions; part 2 was never tuned on. Latency: one question at a time, 300 random questions,
embedding included. Indexing speed: passages per second for a BM25 model and for the hybrid.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SQUAD = ROOT.parent / "shared" / "data" / "squad"
PARTS = ("squad_v2_part1.json", "squad_v2_part2.json")

# (label, signals, changes to the hybrid model's parameters). "question_engine" is not a model
# parameter but the process setting (TAXONOMIST_QUESTION_ENGINE) the row runs under.
FOUR = ["bm25", "bm25_sentence", "dense", "dense_sentence"]
FIVE = [*FOUR, "bm25_bigram"]
BEFORE = {"question_engine": "torchscript"}  # how questions were embedded before
STEPS: list[tuple[str, list[str], dict[str, Any]]] = [
    ("plain BM25 (words, k1=1.2, b=0.75)", ["bm25"], {"stem": False, "bigrams": False}),
    ("+ Snowball stems", ["bm25"], {}),
    ("+ best-sentence BM25 (field weighting)", ["bm25", "bm25_sentence"], {}),
    ("+ word-pair BM25", ["bm25", "bm25_sentence", "bm25_bigram"], {}),
    ("plain dense (MiniLM, passages)", ["dense"], BEFORE),
    ("+ best-sentence dense", ["dense", "dense_sentence"], BEFORE),
    ("hybrid, RRF (untuned)", FOUR, {"fusion": "rrf", "rescore": "none", **BEFORE}),
    ("hybrid, weighted z-scores (tuned on part 1)", FOUR, {"rescore": "none", **BEFORE}),
    ("+ re-score passages (the previous default)", FOUR, BEFORE),
    ("+ question embedded by ONNX Runtime, int8", FOUR, {}),
    ("+ word-pair BM25 (default)", FIVE, {}),
    ("+ re-score sentences too (rescore=all)", FIVE, {"rescore": "all"}),
    ("default with USE for MiniLM (the non-English path)", FIVE, {"encoder": "use"}),
]
# Parameters that change what is indexed: a step that sets one builds its own model.
INDEX_PARAMS = {"stem", "encoder"}


def variant(model: Any, signals: list[str], changes: dict[str, Any]) -> Any:
    """The same collections searched with other settings (no rebuild)."""
    from taxonomist.retrieval import RetrievalModel
    from taxonomist.retrieval.model import default_weights

    meta = dict(model.meta)
    meta["params"] = {**meta["params"], **changes}
    meta["signals"] = signals
    weights = default_weights(signals)
    meta["weights"] = {s: weights.get(s, 1.0) for s in signals}
    return RetrievalModel(meta, model.store)


@contextmanager
def question_engine(engine: str | None) -> Iterator[None]:
    """Run under another TAXONOMIST_QUESTION_ENGINE (None: the default)."""
    from taxonomist.config import get_settings

    old = os.environ.get("TAXONOMIST_QUESTION_ENGINE")
    if engine is not None:
        os.environ["TAXONOMIST_QUESTION_ENGINE"] = engine
    get_settings.cache_clear()
    try:
        yield
    finally:
        os.environ.pop("TAXONOMIST_QUESTION_ENGINE", None)
        if old is not None:
            os.environ["TAXONOMIST_QUESTION_ENGINE"] = old
        get_settings.cache_clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tune", action="store_true", help="fit fusion weights on part 1")
    args = parser.parse_args()
    from taxonomist.retrieval import EdgeStore, RetrievalParams, build_model, evaluate, load_qa
    from taxonomist.retrieval.model import tune_weights

    for part in PARTS:
        if not (SQUAD / part).exists():
            sys.exit(f"{SQUAD / part} is missing")
    store = EdgeStore(Path(tempfile.mkdtemp()))
    if args.tune:
        ds = load_qa(SQUAD / PARTS[0])
        model = build_model("tune", ds, store)
        q = ds.questions
        print(tune_weights(model, q["question"].tolist(), q["passage_id"].tolist(), sample=3000))
        return
    print("| step | data | questions | top-1 | top-5 | MRR@10 | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|---|")
    speed = []
    for part in PARTS:
        ds = load_qa(SQUAD / part)
        start = time.perf_counter()
        hybrid = build_model(f"hybrid-{part[:-5]}", ds, store)
        speed.append(("hybrid, minilm", part, len(ds.passages) / (time.perf_counter() - start)))
        for step, (label, signals, row) in enumerate(STEPS):
            changes = {k: v for k, v in row.items() if k != "question_engine"}
            if INDEX_PARAMS.isdisjoint(changes):
                model = variant(hybrid, signals, changes)
            else:
                method = "bm25" if signals == ["bm25"] else "hybrid"
                start = time.perf_counter()
                params = RetrievalParams(method=method, sentences=len(signals) > 1, **changes)
                model = build_model(f"step{step}-{part[:-5]}", ds, store, params)
                kind = "BM25" if method == "bm25" else f"hybrid, {params.encoder}"
                speed.append((kind, part, len(ds.passages) / (time.perf_counter() - start)))
            with question_engine(row.get("question_engine")):
                s = evaluate(model, ds, latency_sample=300)
            print(
                f"| {label} | {part} | {s['n']:,} | {s['top1']:.3f} | {s['top5']:.3f} "
                f"| {s['mrr10']:.3f} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} |",
                flush=True,
            )
    print("\n| index | data | passages/s |\n|---|---|---|")
    for kind, part, rate in speed:
        print(f"| {kind} | {part} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
