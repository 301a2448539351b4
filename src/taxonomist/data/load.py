"""Read a user's table from CSV/TSV, Parquet or JSON Lines into a DataFrame.

The loader is where most bad input first shows up, so every failure becomes a
:class:`~taxonomist.errors.DataError` subclass that says what to do. A file over one of the
:class:`~taxonomist.data.limits.TableLimits` (rows, columns, bytes once decompressed) is
refused with a 413 as soon as the excess shows, not after it has been read whole.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from pathlib import Path
from typing import TypeAlias

import pandas as pd

from taxonomist.data.archive import is_zip, table_in_zip
from taxonomist.data.limits import (
    COMPRESSIONS,
    TableLimits,
    check_parquet,
    default_limits,
    open_decompressed,
)
from taxonomist.errors import (
    DuplicateColumnsError,
    EmptyDataError,
    EncodingError,
    FileFormatError,
    TaxonomistError,
)

logger = logging.getLogger(__name__)

TableSource: TypeAlias = str | os.PathLike[str] | pd.DataFrame

SUPPORTED = (
    ".csv, .tsv, .txt, .parquet, .jsonl, .ndjson, .json (optionally .gz), or a .zip of one "
    "table and its images"
)
ENCODINGS = ("utf-8", "utf-8-sig", "cp1251", "latin-1")
_DELIMITERS = (",", ";", "\t", "|")
_SAMPLE_BYTES = 1 << 20
_MAGIC = {
    b"PK\x03\x04": "a ZIP archive or an Excel .xlsx workbook",
    b"\xd0\xcf\x11\xe0": "an old Excel .xls / Office document",
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
}


def load_table(
    source: TableSource, *, fmt: str | None = None, limits: TableLimits | None = None
) -> pd.DataFrame:
    """Load ``source`` (a path or a DataFrame) into a DataFrame with unique string column names.

    ``fmt`` forces a format (``csv``, ``tsv``, ``parquet``, ``jsonl``, ``json``); by default it
    follows the file extension. Raises a ``DataError`` subclass for anything unreadable, and a
    ``PayloadTooLargeError`` (413) for a file over ``limits`` (default: the settings'; a
    DataFrame, already in memory, is not checked).
    """
    if isinstance(source, pd.DataFrame):
        _check_columns([str(c) for c in source.columns], where="the DataFrame")
        df = source.copy()
        df.columns = [str(c) for c in df.columns]
        return df
    path = Path(source)
    if not path.exists():
        raise FileFormatError(
            f"File not found: '{path}'. Check the path (relative paths start from '{Path.cwd()}').",
            details={"path": str(path)},
        )
    if path.is_dir():
        raise FileFormatError(f"'{path}' is a folder; give a data file ({SUPPORTED}).")
    if path.stat().st_size == 0:
        raise EmptyDataError(
            f"'{path.name}' is empty (0 bytes). Give a file with a header row "
            "and at least one data row.",
            details={"path": str(path)},
        )
    if fmt is None and is_zip(path):  # a table and its images
        return load_table(table_in_zip(path), limits=limits)
    kind = fmt or _kind_from_suffix(path)
    limits = limits or default_limits()
    if kind == "parquet":
        df = _read_parquet(path, limits)
    elif kind in ("jsonl", "json"):
        df = _read_json(path, limits, lines=kind == "jsonl")
    else:
        df = _read_delimited(path, limits, sep="\t" if kind == "tsv" else None)
    if df.shape[1] == 0 or df.shape[0] == 0:
        raise EmptyDataError(
            f"'{path.name}' has no data rows (columns found: {list(df.columns)[:20]}). "
            "Give a file with a header row and at least one data row.",
            details={"path": str(path), "columns": [str(c) for c in df.columns]},
        )
    limits.check_columns(df.shape[1], path.name)
    limits.check_rows(df.shape[0], path.name)
    df.columns = [str(c) for c in df.columns]
    logger.info("loaded %s: %d rows x %d columns", path.name, df.shape[0], df.shape[1])
    return df


def _kind_from_suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes = suffixes[:-1]
    ext = suffixes[-1] if suffixes else ""
    if ext in (".parquet", ".pq"):
        return "parquet"
    if ext in (".jsonl", ".ndjson"):
        return "jsonl"
    if ext == ".json":
        return "json"
    if ext == ".tsv":
        return "tsv"
    if ext in (".xlsx", ".xls", ".xlsm", ".ods"):
        raise FileFormatError(
            f"'{path.name}' is a spreadsheet; Taxonomist reads {SUPPORTED}. "
            "Save the sheet as CSV (UTF-8) and load that.",
            details={"path": str(path), "extension": ext},
        )
    return "csv"


def _check_columns(columns: list[str], *, where: str) -> None:
    seen: dict[str, int] = {}
    for c in columns:
        seen[c] = seen.get(c, 0) + 1
    dups = [c for c, n in seen.items() if n > 1]
    if dups:
        raise DuplicateColumnsError(
            f"{where} has duplicate column names: {dups}. Every column needs a unique name; "
            "rename or drop the copies.",
            details={"duplicates": dups},
        )
    blank = [i for i, c in enumerate(columns) if not str(c).strip()]
    if blank and len(blank) == len(columns):
        raise FileFormatError(f"{where} has no header row (all column names are empty).")


def _read_parquet(path: Path, limits: TableLimits) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as pf:
            _check_columns(pf.schema_arrow.names, where=f"'{path.name}'")
            check_parquet(path, pf, limits)
    except (TaxonomistError, MemoryError):
        raise
    except Exception as exc:
        raise FileFormatError(
            f"'{path.name}' is not a readable Parquet file ({exc}). "
            "Check that the file is complete, or export it again.",
            details={"path": str(path)},
        ) from exc
    return pd.read_parquet(path)


def _read_json(path: Path, limits: TableLimits, *, lines: bool) -> pd.DataFrame:
    head = _head_bytes(path, limits)
    encoding = _detect_encoding(head, path)
    if not lines and head.lstrip()[:1] != b"[":
        lines = True  # a .json file holding one object per line
    try:
        with open_decompressed(path, limits) as raw:
            if lines:
                df = pd.read_json(raw, lines=True, encoding=encoding, dtype=False)
            else:
                records = json.load(io.TextIOWrapper(raw, encoding=encoding))
        if not lines:
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise FileFormatError(
                    f"'{path.name}' must hold a JSON array of objects (one per row), "
                    "or one JSON object per line (.jsonl).",
                    details={"path": str(path)},
                )
            limits.check_rows(len(records), path.name)
            df = pd.DataFrame.from_records(records)
    except FileFormatError:
        raise
    except (ValueError, json.JSONDecodeError) as exc:
        raise FileFormatError(
            f"'{path.name}' is not valid JSON Lines: {exc}. Each line must be one JSON object "
            'such as {"title": "...", "label": "..."}.',
            details={"path": str(path)},
        ) from exc
    return df


def _head_bytes(path: Path, limits: TableLimits, n: int = _SAMPLE_BYTES) -> bytes:
    with open_decompressed(path, limits) as fh:
        return fh.read(n)


def _detect_encoding(sample: bytes, path: Path) -> str:
    """Pick one of :data:`ENCODINGS` for ``sample``, or raise ``EncodingError``."""
    for magic, what in _MAGIC.items():
        if sample.startswith(magic):
            raise FileFormatError(
                f"'{path.name}' looks like {what}, not a text table. "
                f"Export it as CSV (UTF-8); Taxonomist reads {SUPPORTED}.",
                details={"path": str(path)},
            )
    if sample.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in sample:
        raise EncodingError(
            f"'{path.name}' is UTF-16/UTF-32 or binary (it contains NUL bytes); Taxonomist "
            "reads text in "
            f"{', '.join(ENCODINGS)}. Save it again as 'CSV UTF-8'.",
            details={"path": str(path), "supported": list(ENCODINGS)},
        )
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(sample) - 3:  # a multi-byte character cut by the sample's end
            return "utf-8"
    # Both single-byte encodings decode anything; choose by which gives real letters.
    return "cp1251" if _mostly_cyrillic(sample) else "latin-1"


def _sniff_delimiter(text: str) -> str:
    """The delimiter that splits the first lines into the most, equally many fields."""
    best, best_fields = ",", 1
    lines = text.splitlines()[:51]
    if len(lines) > 1 and len(text) >= _SAMPLE_BYTES - 4:
        lines = lines[:-1]  # the last line of a cut sample may be partial
    sample = "\n".join(lines)
    for sep in _DELIMITERS:
        try:
            rows = [r for r in csv.reader(io.StringIO(sample), delimiter=sep) if r]
        except csv.Error:
            continue
        if not rows:
            continue
        n = len(rows[0])
        consistent = sum(1 for r in rows if len(r) == n) / len(rows)
        if n > best_fields and consistent >= 0.8:
            best, best_fields = sep, n
    return best


def _read_delimited(path: Path, limits: TableLimits, *, sep: str | None) -> pd.DataFrame:
    head = _head_bytes(path, limits)
    encoding = _detect_encoding(head, path)
    text = head.decode(encoding, errors="replace")
    if not text.strip():
        raise EmptyDataError(f"'{path.name}' holds only whitespace. Give a header row and data.")
    sep = sep or _sniff_delimiter(text)
    header = next(csv.reader(io.StringIO(text), delimiter=sep), [])
    # A header longer than the sample is cut: it has at least the fields seen.
    limits.check_columns(len(header), path.name, exact="\n" in text or len(head) < _SAMPLE_BYTES)
    _check_columns([h.strip() for h in header], where=f"'{path.name}'")
    try:
        df = _parse_csv(path, sep, encoding, limits)
    except UnicodeDecodeError:
        # The sample was clean UTF-8 but a later byte is not: fall back to a single-byte codec.
        fallback = "cp1251" if encoding == "utf-8" and _looks_cyrillic(path, limits) else "latin-1"
        logger.warning(
            "%s is not valid %s throughout; reading it as %s", path.name, encoding, fallback
        )
        try:
            df = _parse_csv(path, sep, fallback, limits)
        except UnicodeDecodeError as exc:
            raise EncodingError(
                f"'{path.name}' is neither valid {encoding} nor {fallback} (byte "
                f"{exc.object[exc.start : exc.start + 1]!r} at position {exc.start}). "
                "Save it again as 'CSV UTF-8'.",
                details={"path": str(path)},
            ) from exc
    df.columns = [str(c).strip() for c in df.columns]
    if not isinstance(df.index, pd.RangeIndex):
        # Data rows have one field more than the header: pandas took the first as an index.
        _check_swallowed_rows(df.reset_index(names="__index__"), sep, path, width=df.shape[1])
        raise FileFormatError(
            f"'{path.name}': data rows have more fields than the header ({df.shape[1]} "
            "columns). Check for a missing header name, a stray delimiter or an unquoted "
            "value that contains the delimiter.",
            details={"path": str(path), "delimiter": sep},
        )
    _check_swallowed_rows(df, sep, path)
    return df


CHUNK_ROWS = 50_000  # rows per parser chunk


def _parse_csv(
    path: Path,
    sep: str,
    encoding: str,
    limits: TableLimits,
    text_columns: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Parse in chunks of rows: pandas' parser holds twice a whole file's strings at its peak,
    a chunk's strings only once they are joined (text columns join without a copy), and a
    file over the row cap is refused at the first chunk past it. A column that is numeric in
    one chunk and text in another is read again as text throughout, as a one-piece parse
    would have it."""
    kind = "TSV" if sep == "\t" else "CSV"
    try:
        with open_decompressed(path, limits) as raw:
            reader = pd.read_csv(
                raw,
                sep=sep,
                encoding=encoding,
                low_memory=False,
                chunksize=CHUNK_ROWS,
                dtype=dict.fromkeys(text_columns, "str") or None,
            )
            chunks, rows = [], 0
            with reader:
                for chunk in reader:
                    rows += len(chunk)
                    limits.check_rows(rows, path.name, exact=False)
                    chunks.append(chunk)
    except pd.errors.EmptyDataError as exc:
        raise EmptyDataError(
            f"'{path.name}' has no columns to parse. Give a header row and at least one data row.",
            details={"path": str(path)},
        ) from exc
    except pd.errors.ParserError as exc:
        if "out of memory" in str(exc):  # the C tokenizer's failed allocation, not bad input
            raise MemoryError(str(exc)) from None
        raise FileFormatError(
            f"'{path.name}' is not a well-formed {kind} file: {exc}. "
            "Check that every row has as many fields as the header and that quotes are closed.",
            details={"path": str(path), "delimiter": sep, "parser": str(exc)},
        ) from exc
    if len(chunks) == 1:
        return chunks[0]
    mixed = tuple(
        str(c)
        for c in chunks[0].columns
        if len({pd.api.types.is_numeric_dtype(ch[c].dtype) for ch in chunks}) > 1
    )
    if mixed and not text_columns:
        del chunks  # the second parse does not need the first one's memory
        return _parse_csv(path, sep, encoding, limits, mixed)
    return pd.concat(chunks)  # consecutive RangeIndexes stay one RangeIndex


def _check_swallowed_rows(df: pd.DataFrame, sep: str, path: Path, width: int | None = None) -> None:
    """Raise when a quote left open made the parser read many rows into one cell.

    The parser accepts such files silently; the sign is a cell whose lines mostly look like a
    whole row (as many delimiters as the header has).
    """
    width = width or df.shape[1]
    if width < 2:
        return
    for col in df.columns:
        s = df[col]
        if not (pd.api.types.is_string_dtype(s) or s.dtype == object):
            continue
        cells = s.iloc[:5000].dropna().astype(str)
        multi = cells[cells.str.contains("\n", regex=False)]
        for row, cell in multi.items():
            lines = cell.split("\n")
            rowlike = sum(1 for line in lines[1:] if line.count(sep) == width - 1)
            # Real multi-line texts (bulleted app descriptions) have a few comma-heavy lines;
            # swallowed rows make up most of the cell.
            if rowlike >= 2 and rowlike >= 0.5 * (len(lines) - 1):
                raise FileFormatError(
                    f"'{path.name}': a quote opened in data row {int(row) + 1} "
                    f"is never closed, so {len(lines)} lines were read as one value. Close or "
                    'remove the stray quote character (") and load the file again.',
                    details={"path": str(path), "row": int(row) + 1, "column": str(col)},
                )


def _looks_cyrillic(path: Path, limits: TableLimits) -> bool:
    return _mostly_cyrillic(_head_bytes(path, limits, 8 * _SAMPLE_BYTES))


def _mostly_cyrillic(data: bytes) -> bool:
    """cp1251 rather than latin-1: Cyrillic words are runs of bytes >= 0x80, while accented
    Latin letters mostly stand alone between ASCII letters."""
    import numpy as np

    b = np.frombuffer(data, dtype=np.uint8)
    high = b >= 0xC0
    if not high.any():
        return False
    neighbour = np.zeros_like(high)
    neighbour[1:] |= high[:-1]
    neighbour[:-1] |= high[1:]
    return float((high & neighbour).sum()) / float(high.sum()) > 0.5
