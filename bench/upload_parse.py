"""Benchmark: what the parse worker and the table caps add to reading an upload.

A table of product titles (140,000 rows: about 10 MB as CSV) is read: in this process with
``load_table``, and by a warm worker of the service's ``ParsePool``, whose table comes back
pickled into a temporary file, against the alternatives: pickled through the executor's pipe,
or written by the worker as a Parquet file that this process reads back. Also: a worker's
cold start, and what the caps cost on a ``.csv.gz`` (the counted stream) and on a Parquet
file (footer and dictionary checks) against plain pandas. Medians of ``--repeat`` runs.

    python bench/upload_parse.py
    python bench/upload_parse.py --rows 100000 --repeat 9
"""

from __future__ import annotations

import argparse
import gzip
import pickle
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from taxonomist.data import load_table
from taxonomist.data.limits import TableLimits
from taxonomist.data.parse_pool import ParsePool

LIMITS = TableLimits()


def product_table(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = np.array(
        ["cheap", "red", "wireless", "phone", "case", "glass", "screen", "cable", "fast", "charger"]
    )
    titles = [" ".join(rng.choice(words, 8)) + f" {i}" for i in range(rows)]
    return pd.DataFrame(
        {
            "title": titles,
            "store": rng.choice(["eu", "us", "asia"], rows),
            "price": rng.random(rows).round(2) * 100,
            "label": rng.choice([f"cat{i}" for i in range(20)], rows),
        }
    )


def parse_to_parquet(path: str, out: str) -> str:
    """In a worker: parse, then hand the table over as a Parquet file."""
    load_table(path, limits=LIMITS).to_parquet(out)
    return out


def parse_timed(path: str) -> float:
    """In a worker: the parse alone, in ms (nothing sent back but the figure)."""
    started = time.perf_counter()
    load_table(path, limits=LIMITS)
    return (time.perf_counter() - started) * 1000


_CACHE: dict[int, pd.DataFrame] = {}


def cached_table(rows: int) -> pd.DataFrame:
    """In a worker: the table, made once (so that only its transfer is timed)."""
    if rows not in _CACHE:
        _CACHE[rows] = product_table(rows)
    return _CACHE[rows]


def cached_table_to_file(rows: int, out: str) -> None:
    with open(out, "wb") as fh:
        pickle.dump(cached_table(rows), fh, protocol=pickle.HIGHEST_PROTOCOL)


def via_file(pool: ParsePool, rows: int, folder: Path) -> pd.DataFrame:
    out = folder / "cached.pickle"
    pool.run(cached_table_to_file, rows, str(out))
    with out.open("rb") as fh:
        table: pd.DataFrame = pickle.load(fh)
    out.unlink()
    return table


def nothing() -> None:
    """In a worker: the cost of a call itself."""


def median_ms(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=140_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    frame = product_table(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        csv, gz, pq_path = folder / "t.csv", folder / "t.csv.gz", folder / "t.parquet"
        frame.to_csv(csv, index=False)
        gz.write_bytes(gzip.compress(csv.read_bytes()))
        frame.to_parquet(pq_path)
        size = csv.stat().st_size
        table = load_table(csv)
        started = time.perf_counter()
        pool = ParsePool(LIMITS, memory_mb=4000, timeout=600, workers=1)
        pool.load(csv)
        cold_ms = (time.perf_counter() - started) * 1000
        pool.run(cached_table, args.rows)
        figures = {
            "CSV, in this process (load_table)": median_ms(lambda: load_table(csv), args.repeat),
            "CSV, pandas alone (read_csv)": median_ms(
                lambda: pd.read_csv(csv, low_memory=False), args.repeat
            ),
            "CSV, parse worker (ParsePool.load: pickled via a temp file)": median_ms(
                lambda: pool.load(csv), args.repeat
            ),
            "CSV, parse worker, table pickled through the executor's pipe": median_ms(
                lambda: pool.run(load_table, csv, limits=LIMITS), args.repeat
            ),
            "CSV, parse worker, table via a Parquet file": median_ms(
                lambda: pd.read_parquet(
                    pool.run(parse_to_parquet, str(csv), str(folder / "out.parquet"))
                ),
                args.repeat,
            ),
            "  transfer alone, worker to here: pickled via a temp file": median_ms(
                lambda: via_file(pool, args.rows, folder), args.repeat
            ),
            "  transfer alone, worker to here: pickled through the pipe": median_ms(
                lambda: pool.run(cached_table, args.rows), args.repeat
            ),
            "  transfer alone, in one process: pickle dumps + loads": median_ms(
                lambda: pickle.loads(pickle.dumps(table, protocol=pickle.HIGHEST_PROTOCOL)),
                args.repeat,
            ),
            "  transfer alone, in one process: to_parquet + read_parquet": median_ms(
                lambda: (
                    table.to_parquet(folder / "x.parquet"),
                    pd.read_parquet(folder / "x.parquet"),
                ),
                args.repeat,
            ),
            "  the parse alone, timed in the worker": statistics.median(
                pool.run(parse_timed, str(csv)) for _ in range(args.repeat)
            ),
            "  the round trip of a call that does nothing": median_ms(
                lambda: pool.run(nothing), args.repeat
            ),
            "parse worker, first call (cold start)": cold_ms,
            ".csv.gz, load_table (counted stream, caps)": median_ms(
                lambda: load_table(gz), args.repeat
            ),
            ".csv.gz, pandas alone (compression=gzip)": median_ms(
                lambda: pd.read_csv(gz, low_memory=False), args.repeat
            ),
            "Parquet, load_table (footer + decoded-size pass)": median_ms(
                lambda: load_table(pq_path), args.repeat
            ),
            "Parquet, pandas alone (read_parquet)": median_ms(
                lambda: pd.read_parquet(pq_path), args.repeat
            ),
        }
        pool.close()
    print(f"{args.rows:,} rows, CSV {size / 1e6:.1f} MB; median of {args.repeat} runs, ms")
    for name, ms in figures.items():
        print(f"{name:<60} {ms:9.1f}")


if __name__ == "__main__":
    main()
