"""The hybrid network: the shipped MiniLM fine-tuned on the text, dense layers over the
numeric and categorical fields and the image features, their outputs concatenated into one
classification head.

The cartoon-video classifier's design (``origins/``): a pretrained transformer for the
descriptions, dense layers for ``is_shorts``, ``broadcast``, the channel type, ...

Training on a CPU is the tested path, so its cost is kept in hand:

- The embeddings and the lower encoder layers are frozen; only the top ``train_layers`` are
  fine-tuned (all six on a GPU). The frozen part's output depends on the text alone, so it
  is computed once per text and kept in memory (:data:`LOWER_CACHE`): the search's folds
  and the final refit pay for it once. Two trainable layers train ~2.3x faster than six
  (136 against 60 rows/s at 64 tokens on 2 cores).
- Batches are padded to their longest text, not to ``max_length``.

A linear probe first (the head and the tabular branch alone on the pretrained vectors),
then AdamW (a higher rate for the new head than for the pretrained layers), linear warm-up then
decay, gradient accumulation, gradient clipping, class weights, early stopping on a
stratified validation split with the best epoch's weights kept, mixed precision on a GPU.
The device is chosen by itself (``cuda``, ``mps``, else the CPU); on the CPU the same seed
gives the same model. Each epoch's loss and validation scores are kept in ``history_``
(plotted in the report, logged to MLflow).

The ``embed`` family's frozen sentence vectors (each text column alone, up to 128 tokens,
from the embedding cache) sit beside the numbers: the probe sees everything the
frozen-embedding head sees, so fine-tuning starts where that head ends, and the tuned
joined sequence adds to it rather than replacing it.

A pickled model stores its trainable weights only (~7 MB with two layers); the frozen part
reloads from the installed package.
"""

from __future__ import annotations

import io
import logging
import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted

from taxonomist.models.linear import DeadlineReached
from taxonomist.models.minilm import (
    HIDDEN,
    LOWER_CACHE,
    N_LAYERS,
    autocast,
    base_model,
    build_net,
    grad_scaler,
    import_torch,
    pick_device,
    run_layers,
    trainable_copy,
)

logger = logging.getLogger(__name__)

TEXT, CATS, NUMS, IMAGES = "text_raw:", "cat_str:", "num_scaled:", "image:"
EMBEDDED = "embed:"  # the frozen sentence vectors of the embed family, one per text column
# The linear probe's inverse regularisation strengths, picked on the validation split (10 is
# the embed family's default on the same normalised vectors).
PROBE_C = (1.0, 10.0)
# An epoch must beat the best by more than this to count as better: the same weights score
# a validation loss ~1e-8 apart from one evaluation to the next (float summation order).
SELECTION_TOLERANCE = 1e-6


def _better(score: tuple[float, float], best: tuple[float, float]) -> bool:
    """Whether an early-stopping score (lower is better, then its tie-breaker) beats ``best``
    by more than rounding."""
    if score[0] < best[0] - SELECTION_TOLERANCE:
        return True
    return abs(score[0] - best[0]) <= SELECTION_TOLERANCE and (
        score[1] < best[1] - SELECTION_TOLERANCE
    )


class HybridNetwork(ClassifierMixin, BaseEstimator):
    """The hybrid family's estimator, on a frame of ``text_raw:``, ``cat_str:`` and
    ``num_scaled:`` columns (see the module docstring)."""

    def __init__(
        self,
        lr: float = 5e-5,
        head_lr: float = 1e-4,
        epochs: int = 4,
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
            # the image features and the frozen sentence vectors (unit vectors) join the
            # numbers: the dense branch and the wide part (the probe's coefficients) see them
            # beside the tabular fields
            [c for c in cols if c.startswith((NUMS, IMAGES, EMBEDDED))],
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
        torch = import_torch()
        tokenizer, model = base_model()
        depth = N_LAYERS - self.n_train_layers_
        out: list[Any] = [None] * len(texts)
        todo, first = [], {}
        for i, t in enumerate(texts):
            hit = LOWER_CACHE.get((t, depth, self.max_length))
            if hit is not None:
                out[i] = hit
            elif t not in first:
                # each distinct text once: a repeated one would come out of batches padded
                # differently, so its copies (and a later fit that reads the cache) would
                # differ in the last bits
                first[t] = i
                todo.append(i)
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
                    hidden = run_layers(
                        model, model.encoder.layer[:depth], hidden, enc["attention_mask"]
                    )
                lengths = enc["attention_mask"].sum(1).tolist()
                for j, i in enumerate(idx):
                    value = hidden[j, : lengths[j]].to("cpu", torch.float16).clone()
                    out[i] = value
                    if store:
                        LOWER_CACHE.put((texts[i], depth, self.max_length), value)
        return [v if v is not None else out[first[t]] for v, t in zip(out, texts, strict=True)]

    def _batch(
        self, lowers: list[list[Any]], cats: np.ndarray, nums: np.ndarray, idx: np.ndarray
    ) -> tuple[list[tuple[Any, Any]], Any, Any]:
        torch = import_torch()
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
        torch = import_torch()
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
        upper = trainable_copy(model, self.n_train_layers_)
        cards = [len(v) for v in self.vocab_]
        net = build_net(upper, len(lowers), cards, nums.shape[1], k, self.dropout)
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
        amp = autocast(torch, self.device_)
        scaler = grad_scaler(torch, self.device_)
        generator = np.random.default_rng(self.random_state)
        self.history_: list[dict[str, float]] = []
        self.stopped_ = "epochs"
        probe = self._probe(net, lowers, cats, nums, y, train_idx, valid_idx)
        probe["seconds"] = round(time.perf_counter() - started, 2)
        self.history_.append(probe)
        if deadline is not None and time.perf_counter() > deadline:
            self.stopped_ = "deadline"
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
            if _better(score, best_loss):
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

    def _selection(self, record: dict[str, float], epoch: int) -> tuple[float, float]:
        """What early stopping minimises: the validation macro-F1 (negated) when the classes
        are re-weighted (the aim is then the rare classes, which a loss on a few hundred
        validation rows swings with), else the validation loss; without a validation split,
        the epoch (the last is kept)."""
        if "valid_loss" not in record:
            return -float(epoch), 0.0
        if self.class_weight == "balanced":
            # ties (a few hundred rows give few distinct F1 values) go to the lower loss
            return -record["valid_macro_f1"], record["valid_loss"]
        return record["valid_loss"], 0.0

    def _probe(
        self,
        net: Any,
        lowers: list[list[Any]],
        cats: np.ndarray,
        nums: np.ndarray,
        y: np.ndarray,
        train_idx: np.ndarray,
        valid_idx: np.ndarray | None,
    ) -> dict[str, float]:
        """Start the head at a converged linear probe: a logistic regression on the pretrained
        (normalised) text vectors, the levels one-hot and the numbers, as the ``embed`` family
        fits, copied into the head and the wide part. Fine-tuning from there (LP-FT) keeps
        what the pretrained features give: a random head's gradients would pull the
        pretrained layers off before it learns anything, and epoch 0 is already as good as
        the frozen-embedding head. Its C is picked on the validation split. Returns epoch 0's
        record."""
        from scipy import sparse
        from sklearn.linear_model import LogisticRegression

        torch = import_torch()
        text = np.hstack([_unit(p.cpu().numpy()) for p in self._pooled(net, lowers)])
        cards = [len(v) for v in self.vocab_]
        onehot = [_onehot(cats[:, i], c) for i, c in enumerate(cards)]
        features = sparse.hstack(
            [sparse.csr_matrix(text), *onehot, sparse.csr_matrix(nums)]
        ).tocsr()
        k = len(self.classes_)

        def fit(C: float) -> tuple[Any, dict[str, float]]:
            probe = LogisticRegression(
                C=C,
                class_weight="balanced" if self.class_weight == "balanced" else None,
                max_iter=500,
            ).fit(features[train_idx], y[train_idx])
            record: dict[str, float] = {"epoch": 0}
            record["train_loss"] = _scores(
                _full_proba(probe, features[train_idx], k), y[train_idx], self.loss_weights_
            )["valid_loss"]
            if valid_idx is not None:
                proba = _full_proba(probe, features[valid_idx], k)
                record.update(_scores(proba, y[valid_idx], self.loss_weights_))
            return probe, record

        fits = [fit(C) for C in (PROBE_C if valid_idx is not None else PROBE_C[-1:])]
        probe, record = min(fits, key=lambda f: self._selection(f[1], 0))
        self.probe_C_ = float(probe.C)
        coef, bias = np.zeros((k, features.shape[1])), np.zeros(k)
        seen = probe.classes_
        if len(seen) == 2:  # sklearn keeps one row for two classes: split it ±1/2
            coef[seen] = np.vstack([-probe.coef_[0], probe.coef_[0]]) / 2
            bias[seen] = np.array([-probe.intercept_[0], probe.intercept_[0]]) / 2
        else:
            coef[seen], bias[seen] = probe.coef_, probe.intercept_
        as_tensor = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
        with torch.no_grad():
            at = text.shape[1]
            net.head.weight.zero_()
            net.head.weight[:, :at] = as_tensor(coef[:, :at])
            net.head.bias.copy_(as_tensor(bias))
            for i, c in enumerate(cards):
                net.wide[i].weight[1:] = as_tensor(coef[:, at : at + c].T)
                at += c
            if net.wide_num is not None:
                net.wide_num.weight.copy_(as_tensor(coef[:, at:]))
        return record

    def _pooled(self, net: Any, lowers: list[list[Any]]) -> list[Any]:
        """Each text branch's pooled vectors through the (not yet tuned) top layers."""
        torch = import_torch()
        n = len(lowers[0])
        order = np.argsort([lowers[0][i].shape[0] for i in range(n)], kind="stable")
        out = [torch.zeros((n, HIDDEN), device=self.device_) for _ in lowers]
        net.eval()
        empty = np.zeros((n, 0), dtype=np.float32)
        with torch.inference_mode(), autocast(torch, self.device_):
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
        torch = import_torch()
        rows = np.asarray(rows)
        order = rows[np.argsort([lowers[0][i].shape[0] for i in rows], kind="stable")]
        out = np.zeros((len(rows), len(self.classes_)), dtype=np.float32)
        where = {r: j for j, r in enumerate(rows)}
        was_training = net.training
        net.eval()
        with torch.inference_mode(), autocast(torch, self.device_):
            for s in range(0, len(order), 64):
                idx = order[s : s + 64]
                texts, c, n = self._batch(lowers, cats, nums, idx)
                p = torch.softmax(net(texts, c, n).float(), dim=1).cpu().numpy()
                out[[where[i] for i in idx]] = p
        net.train(was_training)
        return out

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "net_")
        torch = import_torch()
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
            torch = import_torch()
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
        torch = import_torch()
        _, model = base_model()
        self.device_ = pick_device(self.device)
        upper = trainable_copy(model, self.n_train_layers_)
        n_text = 1 if self.text_mode != "separate" else len(self.text_columns_)
        net = build_net(
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


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _onehot(codes: np.ndarray, cardinality: int) -> Any:
    """Levels 1..cardinality one-hot (0, unknown or rare, is all zeros)."""
    from scipy import sparse

    rows = np.flatnonzero(codes > 0)
    values = np.ones(len(rows))
    return sparse.csr_matrix((values, (rows, codes[rows] - 1)), shape=(len(codes), cardinality))


def _full_proba(probe: Any, X: Any, k: int) -> np.ndarray:
    """The probe's probabilities over all ``k`` classes (those its rows lacked at ~0)."""
    out = np.full((X.shape[0], k), 1e-12)
    out[:, probe.classes_] = probe.predict_proba(X)
    return out


def _scores(proba: np.ndarray, y: np.ndarray, weights: np.ndarray) -> dict[str, float]:
    """The validation loss weighted as the training loss is (what early stopping compares:
    an unweighted loss would call every step towards the rare classes a step back)."""
    p = np.clip(proba[np.arange(len(y)), y], 1e-12, 1.0)
    return {
        "valid_loss": float(np.average(-np.log(p), weights=weights[y])),
        "valid_macro_f1": float(f1_score(y, proba.argmax(1), average="macro")),
    }
