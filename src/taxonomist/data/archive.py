"""A zip holding a table and its images: unpacked once beside the zip, checked first.

The zip is unpacked into ``<zip>.d/`` (through a temporary folder renamed into place, so a
reader never sees half of it, and two readers may race). The table inside is the one file
with a table suffix; its folder is where the image column's relative paths start.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from taxonomist.errors import FileFormatError, PayloadTooLargeError

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq", ".jsonl", ".ndjson", ".json")
# Unpacked bytes: at most this in all, and at most this many times the zip (a zip bomb).
MAX_UNPACKED_BYTES = 8 * 2**30
MAX_RATIO = 200
MAX_MEMBERS = 500_000


def is_zip(path: Path) -> bool:
    return path.suffix.lower() == ".zip"


def unpacked_folder(path: Path) -> Path:
    return path.with_name(path.name + ".d")


def _members(archive: zipfile.ZipFile, name: str) -> list[zipfile.ZipInfo]:
    infos = [i for i in archive.infolist() if not i.is_dir()]
    if len(infos) > MAX_MEMBERS:
        raise PayloadTooLargeError(
            f"'{name}' holds {len(infos):,} files, over the {MAX_MEMBERS:,} a zip may hold."
        )
    for info in infos:
        member = PurePosixPath(info.filename.replace("\\", "/"))
        if member.is_absolute() or ".." in member.parts or ":" in info.filename:
            raise FileFormatError(
                f"'{name}' holds '{info.filename}', a path outside the zip: zip the table and "
                "its images with paths relative to the zip's root.",
                details={"member": info.filename},
            )
    return infos


def _table_member(infos: list[zipfile.ZipInfo], name: str) -> str:
    tables = [
        i.filename
        for i in infos
        if Path(i.filename).suffix.lower() in TABLE_SUFFIXES
        and not i.filename.startswith("__MACOSX/")
        and not Path(i.filename).name.startswith(".")
    ]
    if len(tables) != 1:
        found = f"{len(tables)}: {', '.join(tables[:5])}" if tables else "none"
        raise FileFormatError(
            f"'{name}' must hold exactly one table ({', '.join(TABLE_SUFFIXES)}) beside its "
            f"images; it holds {found}.",
            details={"tables": tables[:20]},
        )
    return tables[0]


def table_in_zip(path: Path) -> Path:
    """The table of the zip at ``path``, unpacking the zip first if that was not done."""
    name = path.name
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise FileFormatError(
            f"'{name}' is not a readable zip ({exc}).", details={"path": str(path)}
        ) from None
    with archive:
        infos = _members(archive, name)
        table = _table_member(infos, name)
        folder = unpacked_folder(path)
        if folder.is_dir():
            return folder / table
        total = sum(i.file_size for i in infos)
        if total > MAX_UNPACKED_BYTES or total > MAX_RATIO * max(path.stat().st_size, 1):
            raise PayloadTooLargeError(
                f"'{name}' unpacks to {total / 2**30:.1f} GiB, over the limit "
                f"({MAX_UNPACKED_BYTES // 2**30} GiB, or {MAX_RATIO}x the zip).",
                details={"unpacked_bytes": total},
            )
        tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=path.parent))
        try:
            for info in infos:
                target = tmp / PurePosixPath(info.filename.replace("\\", "/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, target.open("wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FileFormatError(f"'{name}' cannot be unpacked ({exc}).") from None
        try:
            os.rename(tmp, folder)
        except OSError:  # another reader unpacked it first
            shutil.rmtree(tmp, ignore_errors=True)
    return folder / table


def data_folder(path: Path) -> Path:
    """The folder a data file's relative image paths start from: the file's, or for a zip
    the unpacked table's."""
    return (table_in_zip(path) if is_zip(path) else path).parent


def remove_unpacked(path: Path) -> None:
    """Delete what :func:`table_in_zip` unpacked beside ``path`` (with the dataset)."""
    shutil.rmtree(unpacked_folder(path), ignore_errors=True)
