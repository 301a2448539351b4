"""Decompression bombs and oversized tables (issue 12, item 9): every format is refused with a
413 that names the limit, what the file has and the setting to raise, as soon as the excess
shows; and the parse pool turns a worker that runs out of memory or time into a 413 and
recovers. The caps are made small so that each bomb is refused within a second."""

from __future__ import annotations

import gzip
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import taxonomist.data.limits as limits_module
import taxonomist.data.load as load_module
from taxonomist.cli import app
from taxonomist.data import load_table
from taxonomist.data.limits import TableLimits
from taxonomist.data.parse_pool import ParsePool
from taxonomist.errors import (
    FileFormatError,
    PayloadTooLargeError,
    TooManyRequestsError,
)

MB = 1_000_000
ROW = b"some words of a title,label\n"  # 28 bytes: 10 MB of them are 357,143 rows
SMALL = TableLimits(max_rows=1_000_000, max_columns=100, max_bytes=10 * MB)


def gzip_bomb(path: Path, header: bytes, line: bytes, size: int) -> Path:
    """``header`` then ``line`` repeated to ``size`` bytes, gzipped as members of 1 MB: a few
    kB on disk, and each member's trailer says 1 MB, whatever the total."""
    block = line * (MB // len(line))
    member = gzip.compress(block, compresslevel=9)
    with path.open("wb") as out:
        out.write(gzip.compress(header))
        for _ in range(size // len(block)):
            out.write(member)
    return path


def assert_refused(info: pytest.ExceptionInfo[PayloadTooLargeError], setting: str) -> str:
    message = info.value.message
    assert info.value.status == 413
    assert info.value.details["setting"] == setting
    assert f"raise {setting}" in message, message
    return message


# -- decompressed bytes ----------------------------------------------------------------------
BOMBS = {
    "bomb.csv.gz": (b"title,label\n", b"buy cheap watches now,spam\n"),
    "bomb.tsv.gz": (b"title\tlabel\n", b"buy cheap watches now\tspam\n"),
    "bomb.jsonl.gz": (b"", b'{"title": "buy cheap watches now", "label": "spam"}\n'),
    "bomb.json.gz": (b"[", b'{"title": "buy cheap watches now", "label": "spam"},\n'),
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_gzip_bomb_is_refused_while_it_streams(tmp_path: Path, name: str) -> None:
    header, line = BOMBS[name]
    path = gzip_bomb(tmp_path / name, header, line, 300 * MB)
    assert path.stat().st_size < MB  # 300 MB of text in well under 1 MB
    started = time.perf_counter()
    with pytest.raises(PayloadTooLargeError) as info:
        load_table(path, limits=SMALL)
    assert time.perf_counter() - started < 5  # stopped near 10 MB, not at 300
    message = assert_refused(info, "TAXONOMIST_MAX_DECOMPRESSED_MB")
    assert f"'{name}' holds more than 10.0 MB of data when decompressed" in message
    assert "the limit is 10.0 MB" in message


def test_a_gzip_trailer_over_the_cap_refuses_before_decompressing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.csv.gz"
    path.write_bytes(gzip.compress(b"a,b\n" + ROW * (MB // 2), compresslevel=1))

    def no_decompressing(*args: object) -> None:
        raise AssertionError("decompressed")

    monkeypatch.setattr(limits_module, "_decompressor", no_decompressing)
    with pytest.raises(PayloadTooLargeError) as info:
        load_table(path, limits=SMALL)
    assert "more than 10.0 MB" in assert_refused(info, "TAXONOMIST_MAX_DECOMPRESSED_MB")


def test_a_gzip_trailer_that_understates_the_size_is_not_trusted(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(b"a,b\n" + ROW * (MB // 2), compresslevel=1))
    data[-4:] = (100).to_bytes(4, "little")  # ISIZE: "100 bytes"
    path = tmp_path / "liar.csv.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(PayloadTooLargeError) as info:
        load_table(path, limits=SMALL)
    assert_refused(info, "TAXONOMIST_MAX_DECOMPRESSED_MB")


def test_a_plain_file_over_the_cap_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv"
    path.write_bytes(b"a,b\n" + b"x,1\n" * (3 * MB))
    with pytest.raises(PayloadTooLargeError) as info:
        load_table(path, limits=SMALL)
    message = assert_refused(info, "TAXONOMIST_MAX_DECOMPRESSED_MB")
    assert "'plain.csv' holds 12.0 MB of data; the limit is 10.0 MB" in message
    assert info.value.details == {
        "setting": "TAXONOMIST_MAX_DECOMPRESSED_MB",
        "limit_bytes": 10 * MB,
        "bytes": 12 * MB + 4,
    }


@pytest.mark.parametrize("suffix", [".bz2", ".xz"])
def test_other_compressions_are_capped_too(tmp_path: Path, suffix: str) -> None:
    import bz2
    import lzma

    compress = bz2.compress if suffix == ".bz2" else lzma.compress
    path = tmp_path / f"bomb.csv{suffix}"
    path.write_bytes(compress(b"a,b\n" + ROW * (MB // 14)))  # 2 MB
    with pytest.raises(PayloadTooLargeError) as info:
        load_table(path, limits=TableLimits(max_bytes=MB))
    assert_refused(info, "TAXONOMIST_MAX_DECOMPRESSED_MB")
    small = tmp_path / f"small.csv{suffix}"
    small.write_bytes(compress(b"a,b\n" + b"x,1\n" * 100))
    assert load_table(small, limits=SMALL).shape == (100, 2)


def test_gzip_tables_under_the_caps_read_as_before(tmp_path: Path) -> None:
    frame = pd.DataFrame({"title": [f"item {i}" for i in range(500)], "price": range(500)})
    plain = tmp_path / "t.csv"
    frame.to_csv(plain, index=False)
    packed = tmp_path / "t.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    lines = tmp_path / "t.jsonl.gz"
    lines.write_bytes(gzip.compress(frame.to_json(orient="records", lines=True).encode()))
    pd.testing.assert_frame_equal(load_table(packed, limits=SMALL), load_table(plain))
    pd.testing.assert_frame_equal(load_table(lines, limits=SMALL), load_table(plain))


def test_a_truncated_gzip_is_a_file_format_error(tmp_path: Path) -> None:
    data = gzip.compress(b"a,b\n" + b"x,1\n" * 100_000)
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError, match=r"'cut\.csv\.gz' is not a readable gz file"):
        load_table(path, limits=SMALL)


# -- Parquet ---------------------------------------------------------------------------------
def parquet_bomb(path: Path, rows: int, text: str, *, store_schema: bool) -> Path:
    """``rows`` copies of one long string, dictionary-encoded: tiny on disk and in its footer.
    Without the Arrow schema a reader decodes it to plain strings (rows x len(text) bytes)."""
    indices = pa.array([0] * rows, type=pa.int32())
    column = pa.DictionaryArray.from_arrays(indices, pa.array([text]))
    table = pa.table({"title": column, "label": pa.array([1] * rows, type=pa.int8())})
    pq.write_table(table, path, use_dictionary=True, store_schema=store_schema)
    return path


@pytest.mark.parametrize("store_schema", [False, True])
def test_parquet_bomb_is_refused_from_its_decoded_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_schema: bool
) -> None:
    path = parquet_bomb(tmp_path / "bomb.parquet", 200_000, "x" * 1000, store_schema=store_schema)
    assert path.stat().st_size < 100_000  # 200 MB of text in under 100 kB
    footer = pq.ParquetFile(path).metadata
    assert footer.row_group(0).total_byte_size < SMALL.max_bytes  # the footer alone lets it in

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("read into a table")

    monkeypatch.setattr(load_module.pd, "read_parquet", no_reading)
    with pytest.raises(PayloadTooLargeError) as info:
        load_table(path, limits=SMALL)
    message = assert_refused(info, "TAXONOMIST_MAX_DECOMPRESSED_MB")
    assert "holds more than 10.0 MB of data when decoded" in message


def test_parquet_whose_bound_is_over_the_cap_is_counted_not_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One 2,000-character title among 10,000 short ones: rows x longest (20 MB) is over the
    # 10 MB cap, what the column decodes to (about 0.1 MB) is not.
    titles = ["y" * 2000] + [f"t{i % 50}" for i in range(9_999)]
    path = tmp_path / "outlier.parquet"
    pd.DataFrame({"title": titles}).to_parquet(path)
    counted: list[int] = []
    decoded_bytes = limits_module._decoded_bytes
    monkeypatch.setattr(
        limits_module, "_decoded_bytes", lambda c: counted.append(len(c)) or decoded_bytes(c)
    )
    loaded = load_table(path, limits=SMALL)
    assert sum(counted) == 10_000  # every row was counted, in batches
    assert loaded.shape == (10_000, 1) and loaded["title"].str.len().max() == 2000
    counted.clear()
    load_table(path, limits=TableLimits(max_bytes=100 * MB))  # under the bound: not read
    assert counted == []


def test_parquet_rows_and_columns_are_refused_from_the_footer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "wide.parquet"
    pd.DataFrame({f"c{i}": range(1000) for i in range(150)}).to_parquet(path)

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("data read")

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", no_reading)
    monkeypatch.setattr(load_module.pd, "read_parquet", no_reading)
    with pytest.raises(PayloadTooLargeError) as info:
        load_table(path, limits=SMALL)
    message = assert_refused(info, "TAXONOMIST_MAX_TABLE_COLUMNS")
    assert "'wide.parquet' has 150 columns; the limit is 100" in message
    with pytest.raises(PayloadTooLargeError) as info:
        load_table(path, limits=TableLimits(max_rows=999, max_columns=200))
    message = assert_refused(info, "TAXONOMIST_MAX_TABLE_ROWS")
    assert "'wide.parquet' has 1,000 data rows; the limit is 999" in message
    assert info.value.details["rows"] == 1000


def test_parquet_under_the_caps_reads_as_before(tmp_path: Path) -> None:
    path = tmp_path / "ok.parquet"
    frame = pd.DataFrame({"title": ["a b", "c d", None] * 100, "price": [1.5, 2.0, 3.0] * 100})
    frame.to_parquet(path)
    pd.testing.assert_frame_equal(load_table(path, limits=SMALL), pd.read_parquet(path))


# -- rows and columns ------------------------------------------------------------------------
def test_csv_with_too_many_columns_is_refused_from_its_header(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(150)) + "\n" + ",".join("1" * 150) + "\n")
    with pytest.raises(PayloadTooLargeError) as info:
        load_table(path, limits=SMALL)
    message = assert_refused(info, "TAXONOMIST_MAX_TABLE_COLUMNS")
    assert "'wide.csv' has 150 columns; the limit is 100" in message


def test_jsonl_with_too_many_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wide.jsonl"
    path.write_text(json.dumps({f"c{i}": i for i in range(150)}) + "\n")
    with pytest.raises(PayloadTooLargeError) as info:
        load_table(path, limits=SMALL)
    assert "has 150 columns" in assert_refused(info, "TAXONOMIST_MAX_TABLE_COLUMNS")


def test_csv_rows_over_the_cap_stop_the_parse_at_the_first_chunk_past_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(load_module, "CHUNK_ROWS", 100)
    path = tmp_path / "long.csv"
    path.write_text("title,label\n" + "some words,a\n" * 100_000)
    with pytest.raises(PayloadTooLargeError) as info:
        load_table(path, limits=TableLimits(max_rows=250))
    message = assert_refused(info, "TAXONOMIST_MAX_TABLE_ROWS")
    assert "'long.csv' has more than 250 data rows; the limit is 250" in message
    assert "Use a sample of at most 250 rows" in message
    assert load_table(path, limits=TableLimits(max_rows=100_000)).shape == (100_000, 2)


@pytest.mark.parametrize("name", ["rows.jsonl", "rows.json"])
def test_json_rows_over_the_cap_are_refused(tmp_path: Path, name: str) -> None:
    records = [{"title": "t", "label": "a"}] * 300
    path = tmp_path / name
    if name.endswith(".jsonl"):
        path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    else:
        path.write_text(json.dumps(records))
    with pytest.raises(PayloadTooLargeError) as info:
        load_table(path, limits=TableLimits(max_rows=250))
    assert "has 300 data rows" in assert_refused(info, "TAXONOMIST_MAX_TABLE_ROWS")


def test_the_settings_are_the_default_limits_and_the_cli_shows_them(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taxonomist.config import get_settings

    path = tmp_path / "data.csv"
    path.write_text("title,label\n" + "some words,a\n" * 20)
    monkeypatch.setenv("TAXONOMIST_MAX_TABLE_ROWS", "10")
    get_settings.cache_clear()
    with pytest.raises(PayloadTooLargeError) as info:
        load_table(path)
    assert_refused(info, "TAXONOMIST_MAX_TABLE_ROWS")
    result = CliRunner().invoke(app, ["profile", str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "TAXONOMIST_MAX_TABLE_ROWS" in result.output


# -- the parse pool --------------------------------------------------------------------------
def allocate(mb: int) -> int:
    """In a worker: hold ``mb`` MB (past the memory limit, a MemoryError)."""
    return len(bytearray(mb * MB))


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def sleep_deaf(seconds: float) -> None:
    """Sleep with SIGALRM blocked: the soft time limit cannot interrupt it."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    time.sleep(seconds)


def throttled() -> None:
    raise TooManyRequestsError("slow down", retry_after=7)


@pytest.fixture(scope="module")
def pool() -> Iterator[ParsePool]:
    parse_pool = ParsePool(SMALL, memory_mb=800, timeout=2, workers=1)
    parse_pool.start()
    yield parse_pool
    parse_pool.close()


def test_the_pool_parses_as_this_process_does(pool: ParsePool, tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    pd.DataFrame({"title": ["a b", "c"] * 50, "n": range(100)}).to_csv(path, index=False)
    pd.testing.assert_frame_equal(pool.load(path), load_table(path))


def test_the_pool_applies_its_limits(pool: ParsePool, tmp_path: Path) -> None:
    path = gzip_bomb(tmp_path / "bomb.csv.gz", *BOMBS["bomb.csv.gz"], 300 * MB)
    with pytest.raises(PayloadTooLargeError) as info:
        pool.load(path)
    assert "'bomb.csv.gz' holds more than 10.0 MB" in info.value.message


def test_errors_come_back_whole(pool: ParsePool) -> None:
    with pytest.raises(TooManyRequestsError) as info:
        pool.run(throttled)
    assert (info.value.message, info.value.retry_after) == ("slow down", 7)


def test_out_of_memory_is_a_413_and_the_worker_goes_on(pool: ParsePool) -> None:
    assert pool.run(allocate, 100) == 100 * MB
    with pytest.raises(PayloadTooLargeError) as info:
        pool.run(allocate, 2000)
    message = assert_refused(info, "TAXONOMIST_PARSE_MEMORY_MB")
    assert "more memory than a parse worker may use (800 MB" in message
    assert pool.run(allocate, 100) == 100 * MB


def test_a_worker_that_dies_is_a_413_and_is_replaced(pool: ParsePool) -> None:
    with pytest.raises(PayloadTooLargeError) as info:
        pool.run(die)
    assert "The parse worker ended while reading the file" in assert_refused(
        info, "TAXONOMIST_PARSE_MEMORY_MB"
    )
    assert pool.run(allocate, 1) == MB


def test_a_worker_that_dies_takes_only_its_own_call(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    two = ParsePool(SMALL, memory_mb=800, timeout=10, workers=2)
    try:
        with ThreadPoolExecutor(2) as threads:
            slow = threads.submit(two.run, sleep, 1.5)
            time.sleep(0.5)  # the slow call has the first worker
            with pytest.raises(PayloadTooLargeError):
                two.run(die)
            assert slow.result() is None
        assert two.run(allocate, 1) == MB
    finally:
        two.close()


def test_a_parse_past_the_time_limit_is_a_413(pool: ParsePool) -> None:
    started = time.monotonic()
    with pytest.raises(PayloadTooLargeError) as info:
        pool.run(sleep, 30)
    assert time.monotonic() - started < 10
    assert "(2 s, TAXONOMIST_PARSE_TIMEOUT)" in assert_refused(info, "TAXONOMIST_PARSE_TIMEOUT")
    assert pool.run(allocate, 1) == MB


def test_a_parse_deaf_to_the_time_limit_ends_its_worker(
    pool: ParsePool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool, "hard_stop_grace", 1.0)
    started = time.monotonic()
    with pytest.raises(PayloadTooLargeError) as info:
        pool.run(sleep_deaf, 30)
    assert time.monotonic() - started < 15
    assert_refused(info, "TAXONOMIST_PARSE_TIMEOUT")
    assert pool.run(allocate, 1) == MB
