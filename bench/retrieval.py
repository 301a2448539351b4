"""Retrieval benchmark on the shared SQuAD sample (each part is its own closed corpus).

    python bench/retrieval.py

Prints, per method and part: questions, top-1, top-5, MRR@10, p50/p99 ms per question (one at
a time) and indexing speed. So far the BM25 baseline; dense and hybrid come with issue 5.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SQUAD = ROOT.parent / "shared" / "data" / "squad"


def main() -> None:
    from taxonomist.retrieval import BM25Index, evaluate, load_qa

    print("| method | data | questions | top-1 | top-5 | MRR@10 | p50 ms | p99 ms | passages/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for part in ("squad_v2_part1.json", "squad_v2_part2.json"):
        path = SQUAD / part
        if not path.exists():
            sys.exit(f"{path} is missing")
        ds = load_qa(path)
        start = time.perf_counter()
        index = BM25Index().fit(ds.passages)
        rate = len(ds.passages) / (time.perf_counter() - start)
        s = evaluate(index, ds)
        print(
            f"| BM25 (k1=1.2, b=0.75) | {part} | {s['n']:,} | {s['top1']:.3f} | {s['top5']:.3f} "
            f"| {s['mrr10']:.3f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {rate:,.0f} |"
        )


if __name__ == "__main__":
    main()
