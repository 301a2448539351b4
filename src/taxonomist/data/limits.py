"""Caps on what one table file may expand to when it is parsed: data bytes, rows and columns.

A 200 MB ``.csv.gz`` can hold tens of GB of text, and a Parquet file of a few kB can hold
millions of copies of one long string (dictionary or delta encoding stores it once). Each cap
is checked as early as the format allows: a gzip trailer or a Parquet footer can refuse a file
before any data is read; otherwise the decompressed bytes are counted as they stream out of
the decompressor and the rows as the parser produces them, and reading stops at the first
block past a cap. The gzip trailer (ISIZE) is only a lower bound of the size (it is the size
modulo 4 GiB, of the last member only), so it can refuse a file but never admit one.

The decompressors are the standard library's (and ``zstandard`` when it is installed), opened
here rather than by pandas (``compression=``) because pandas gives no hook to count what they
produce.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from taxonomist.errors import FileFormatError, PayloadTooLargeError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from taxonomist.config import Settings

COMPRESSIONS = (".gz", ".bz2", ".xz", ".zip", ".zst")
_BUFFER = 1 << 20
_PARQUET_BATCH_ROWS = 65_536
_PARQUET_BATCH_BYTES = 64 * 1_000_000  # most text one counting batch may decode to
_DECOMPRESS_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile)


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB" if n < 100e6 else f"{n / 1e6:,.0f} MB"


@dataclass(frozen=True)
class TableLimits:
    """The most rows, columns and data bytes (decompressed, decoded) one file may have."""

    max_rows: int = 5_000_000
    max_columns: int = 2_000
    max_bytes: int = 2_000_000_000

    @classmethod
    def from_settings(cls, settings: Settings) -> TableLimits:
        """``TAXONOMIST_MAX_TABLE_ROWS``, ``_MAX_TABLE_COLUMNS`` and ``_MAX_DECOMPRESSED_MB``."""
        return cls(
            max_rows=settings.max_table_rows,
            max_columns=settings.max_table_columns,
            max_bytes=int(settings.max_decompressed_mb * 1e6),
        )

    def check_rows(self, rows: int, name: str, *, exact: bool = True) -> None:
        """Refuse (413) ``rows`` over the cap; ``exact=False``: the file has at least that many."""
        if rows <= self.max_rows:
            return
        has = f"{rows:,} data rows" if exact else f"more than {self.max_rows:,} data rows"
        raise PayloadTooLargeError(
            f"'{name}' has {has}; the limit is {self.max_rows:,} "
            f"(TAXONOMIST_MAX_TABLE_ROWS). Use a sample of at most {self.max_rows:,} rows, "
            "or raise TAXONOMIST_MAX_TABLE_ROWS.",
            details={
                "setting": "TAXONOMIST_MAX_TABLE_ROWS",
                "limit_rows": self.max_rows,
                "rows": rows if exact else None,
            },
        )

    def check_columns(self, columns: int, name: str, *, exact: bool = True) -> None:
        """Refuse (413) ``columns`` over the cap; ``exact=False``: at least that many."""
        if columns <= self.max_columns:
            return
        has = f"{columns:,}" if exact else f"at least {columns:,}"
        raise PayloadTooLargeError(
            f"'{name}' has {has} columns; the limit is {self.max_columns:,} "
            "(TAXONOMIST_MAX_TABLE_COLUMNS). Keep the columns you need, or raise "
            "TAXONOMIST_MAX_TABLE_COLUMNS.",
            details={
                "setting": "TAXONOMIST_MAX_TABLE_COLUMNS",
                "limit_columns": self.max_columns,
                "columns": columns,
            },
        )

    def check_bytes(self, size: int, name: str, *, what: str, exact: bool = True) -> None:
        """Refuse (413) ``size`` data bytes over the cap. ``what`` says what was measured
        ("when decompressed"); ``exact=False``: the file holds at least that much."""
        if size <= self.max_bytes:
            return
        has = _mb(size) if exact else f"more than {_mb(self.max_bytes)}"
        raise PayloadTooLargeError(
            f"'{name}' holds {has} of data{' ' + what if what else ''}; the limit is "
            f"{_mb(self.max_bytes)} "
            "(TAXONOMIST_MAX_DECOMPRESSED_MB). Use a smaller sample, or raise "
            "TAXONOMIST_MAX_DECOMPRESSED_MB.",
            details={
                "setting": "TAXONOMIST_MAX_DECOMPRESSED_MB",
                "limit_bytes": self.max_bytes,
                "bytes": size if exact else None,
            },
        )


_process_limits: TableLimits | None = None


def use_limits(limits: TableLimits | None) -> None:
    """Make ``limits`` this process's default (a parse worker's, set when it starts)."""
    global _process_limits
    _process_limits = limits


def default_limits() -> TableLimits:
    """The limits :func:`use_limits` set, else those of the settings."""
    if _process_limits is not None:
        return _process_limits
    from taxonomist.config import get_settings

    return TableLimits.from_settings(get_settings())


class _CountingReader(io.RawIOBase):
    """The bytes of a (decompressing) stream, counted: reading past ``limits.max_bytes``
    raises a 413; a damaged compressed file becomes a ``FileFormatError``."""

    def __init__(self, raw: Any, limits: TableLimits, name: str, kind: str) -> None:
        self._raw, self._limits, self._name, self._kind = raw, limits, name, kind
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            n = int(self._raw.readinto(buffer) or 0)
        except _DECOMPRESS_ERRORS as exc:
            raise FileFormatError(
                f"'{self._name}' is not a readable {self._kind} file ({exc}). Check that the "
                "upload is complete, or compress the file again.",
                details={"path": self._name},
            ) from exc
        self.count += n
        self._limits.check_bytes(self.count, self._name, what="when decompressed", exact=False)
        return n

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


@contextmanager
def open_decompressed(path: Path, limits: TableLimits) -> Iterator[BinaryIO]:
    """``path``'s bytes, decompressed by its suffix (``.gz``, ``.bz2``, ``.xz``, ``.zip`` of
    one file, ``.zst``), as a binary stream that refuses (413) to yield more than
    ``limits.max_bytes``. A plain file over the cap is refused before it is opened, a gzip
    file whose trailer already says more before it is decompressed."""
    suffix = path.suffix.lower()
    if suffix not in COMPRESSIONS:
        limits.check_bytes(path.stat().st_size, path.name, what="")
        raw: Any = open(path, "rb")  # noqa: SIM115 (closed with the reader)
        kind = "data"
    else:
        kind = suffix.lstrip(".")
        if suffix == ".gz":
            at_least = _gzip_size_at_least(path)
            limits.check_bytes(at_least, path.name, what="when decompressed", exact=False)
        raw = _decompressor(path, suffix, limits)
    reader = io.BufferedReader(_CountingReader(raw, limits, path.name, kind), _BUFFER)
    try:
        yield reader
    finally:
        reader.close()


def _gzip_size_at_least(path: Path) -> int:
    """A lower bound of a gzip file's decompressed size: its trailer's ISIZE field; 0 when the
    last bytes cannot be a trailer (deflate expands at most 1032:1, so a larger "size" means
    a cut or damaged file, which the decompressor will report)."""
    with open(path, "rb") as fh:
        size = fh.seek(0, io.SEEK_END)
        fh.seek(0)
        if size < 18 or fh.read(2) != b"\x1f\x8b":
            return 0
        fh.seek(-4, io.SEEK_END)
        isize = int.from_bytes(fh.read(4), "little")
    return isize if isize <= 1032 * size else 0


def _decompressor(path: Path, suffix: str, limits: TableLimits) -> Any:
    try:
        if suffix == ".gz":
            return gzip.open(path, "rb")
        if suffix == ".bz2":
            return bz2.open(path, "rb")
        if suffix == ".xz":
            return lzma.open(path, "rb")
        if suffix == ".zip":
            return _zip_member(path, limits)
    except _DECOMPRESS_ERRORS as exc:
        raise FileFormatError(
            f"'{path.name}' is not a readable {suffix.lstrip('.')} file ({exc}). Check that "
            "the upload is complete, or compress the file again.",
            details={"path": path.name},
        ) from exc
    try:
        import zstandard
    except ImportError as exc:
        raise FileFormatError(
            f"'{path.name}' is zstd-compressed and the 'zstandard' package is not installed: "
            "decompress it (zstd -d) or compress it with gzip, or pip install zstandard.",
            details={"path": path.name},
        ) from exc
    return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)


def _zip_member(path: Path, limits: TableLimits) -> Any:
    archive = zipfile.ZipFile(path)
    files = [info for info in archive.infolist() if not info.is_dir()]
    if len(files) != 1:
        archive.close()
        raise FileFormatError(
            f"'{path.name}' is a ZIP archive of {len(files)} files; give one table file "
            "(compressed with gzip, or a ZIP of that one file).",
            details={"path": path.name, "files": [f.filename for f in files][:20]},
        )
    limits.check_bytes(files[0].file_size, path.name, what="when decompressed")
    return archive.open(files[0])  # the member keeps the archive's file open


# -- Parquet ---------------------------------------------------------------------------------
def check_parquet(path: Path, pf: pq.ParquetFile, limits: TableLimits) -> None:
    """Refuse a Parquet file over a cap before it is read into a table.

    The footer gives the rows, the columns and the size of the pages uncompressed, and fixed
    width columns decode to rows x width bytes. A text column's plain pages are as large as
    their strings, but its dictionary pages store each string once for any number of rows
    (one long string, millions of indices to it). So each row group's dictionaries are read
    (a page each, no data pages) for their longest string: rows x longest bounds what the
    column can decode to. Only a file whose bound is over the cap (or that has nested
    columns) is read further, in batches small enough for those strings, counting the bytes
    it decodes to, and refused at the first batch past the cap.
    """
    import pyarrow.parquet as pq

    md, schema = pf.metadata, pf.schema_arrow
    limits.check_columns(len(schema.names), path.name)
    limits.check_rows(md.num_rows, path.name)
    pages = sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))
    limits.check_bytes(pages, path.name, what="uncompressed (the Parquet footer's sizes)")
    fixed, texts, nested = 0, [], []
    for f in schema:
        if _is_text(f.type):
            texts.append(f.name)
            continue
        try:
            fixed += md.num_rows * ((f.type.bit_width + 7) // 8)
        except ValueError:  # lists, structs, maps: no fixed width
            nested.append(f.name)
    limits.check_bytes(fixed, path.name, what="when decoded")
    if not texts and not nested:
        return
    longest = _longest_dictionary_values(path, texts)
    bound = fixed + pages
    for i, per_column in enumerate(longest):
        bound += md.row_group(i).num_rows * sum(n + 4 for n in per_column)
    if bound <= limits.max_bytes and not nested:
        return
    row_bytes = sum(max((rg[c] for rg in longest), default=0) for c in range(len(texts)))
    batch_rows = max(1, min(_PARQUET_BATCH_ROWS, _PARQUET_BATCH_BYTES // max(row_bytes, 1)))
    total = fixed
    with pq.ParquetFile(path) as reader:
        for batch in reader.iter_batches(batch_size=batch_rows, columns=texts + nested):
            total += sum(_decoded_bytes(column) for column in batch.columns)
            limits.check_bytes(total, path.name, what="when decoded", exact=False)


def _longest_dictionary_values(path: Path, columns: list[str]) -> list[list[int]]:
    """Per row group, per column: the longest string in its dictionary page (0 without one)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out: list[list[int]] = []
    if not columns:
        return out
    with pq.ParquetFile(path, read_dictionary=columns) as reader:
        for i in range(reader.num_row_groups):
            first = next(reader.iter_batches(batch_size=1, row_groups=[i], columns=columns), None)
            row = []
            for column in first.columns if first is not None else []:
                values = column.dictionary if isinstance(column, pa.DictionaryArray) else column
                row.append(int(pc.max(pc.binary_length(values)).as_py() or 0))
            out.append(row or [0] * len(columns))
    return out


def _is_text(t: pa.DataType) -> bool:
    """A string or binary type, or a dictionary of them (a pandas categorical of strings)."""
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        t = t.value_type
    return bool(
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
    )


def _decoded_bytes(column: pa.Array) -> int:
    """Bytes ``column`` takes once its dictionary is expanded (strings plus 4-byte offsets)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.DictionaryArray) and _is_text(column.type):
        lengths = pc.binary_length(column.dictionary).take(column.indices)
        return int(pc.sum(lengths).as_py() or 0) + 4 * len(column)
    return int(column.nbytes)
