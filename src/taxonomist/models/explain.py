"""Why a record got its label: word and feature contributions.

Linear members: contribution = feature value x the predicted class's weight. Each character
n-gram's contribution is credited to the word it overlaps, so users read words, not hashes.
LightGBM members: LightGBM's own per-feature contributions (``pred_contrib``, TreeSHAP).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Protocol

import numpy as np
from scipy import sparse

from taxonomist.features.text import ngram_bucket, ngrams_of, word_forms
from taxonomist.models.candidates import FAMILIES


class TaxonomistModel(Protocol):
    """What an explanation reads of a model (``taxonomist.models.model.TaxonomistModel``,
    which calls this module: a Protocol keeps the two modules out of an import cycle)."""

    classes: list[Any]
    members: list[Any]
    blocks: Any

    def prepare(self, data: Any) -> Any: ...

    def _proba(self, X: Any) -> np.ndarray: ...


Member = Any  # taxonomist.models.model.Member

LINEAR = ("linear_svm", "logreg")


def explain_record(model: TaxonomistModel, record: dict[str, Any], top: int = 10) -> dict[str, Any]:
    X = model.prepare(record)
    proba = model._proba(X)[0]
    k = int(proba.argmax())
    out: dict[str, Any] = {
        "label": model.classes[k],
        "probabilities": {str(c): float(p) for c, p in zip(model.classes, proba, strict=True)},
        "words": [],
        "features": [],
        "explained_by": None,
    }
    linear = [m for m in model.members if m.family in LINEAR]
    trees = [m for m in model.members if m.family == "lightgbm"]
    if linear:
        member = max(linear, key=lambda m: m.weight)
        words, feats = _linear(model, member, X, k)
        out["explained_by"] = member.family
    elif trees:
        member = max(trees, key=lambda m: m.weight)
        words, feats = {}, _lightgbm(model, member, X, k)
        out["explained_by"] = member.family
    else:
        return out
    out["words"] = _top(words, top)
    out["features"] = _top(feats, top)
    return out


def _top(items: dict[str, float], n: int) -> list[dict[str, Any]]:
    ranked = sorted(items.items(), key=lambda kv: -abs(kv[1]))[:n]
    return [{"name": name, "weight": round(float(w), 6)} for name, w in ranked if w != 0]


def _class_weights(estimator: Any, k: int, n_classes: int) -> np.ndarray:
    coef = np.asarray(estimator.coef_)
    if coef.shape[0] == 1 and n_classes == 2:
        return coef[0] if k == 1 else -coef[0]
    classes = list(np.asarray(estimator.classes_).astype(int))
    return coef[classes.index(k)] if k in classes else np.zeros(coef.shape[1])


def _linear(
    model: TaxonomistModel, member: Member, X: Any, k: int
) -> tuple[dict[str, float], dict[str, float]]:
    family = FAMILIES[member.family]
    names = [b for b in family.blocks if b in model.blocks.fitted]
    outputs = model.blocks.transform(X, names)
    w = _class_weights(member.estimator, k, len(model.classes))
    words: dict[str, float] = defaultdict(float)
    feats: dict[str, float] = defaultdict(float)
    offset = 0
    for name in names:
        block = outputs[name]
        row = sparse.csr_matrix(block)[0]
        if name == "text":
            _text_words(model, X, row, w[offset : offset + block.shape[1]], words)
        elif name == "image":  # one figure per picture, not 1,280 anonymous dimensions
            width = block.shape[1] // len(model.blocks.specs["image"].columns)
            for j, v in zip(row.indices, row.data, strict=True):
                column = model.blocks.specs["image"].columns[j // width]
                feats[f"{column} (the image)"] += float(v * w[offset + j])
        else:
            labels = _feature_names(model.blocks.fitted[name], block.shape[1])
            for j, v in zip(row.indices, row.data, strict=True):
                feats[labels[j]] += float(v * w[offset + j])
        offset += block.shape[1]
    return dict(words), dict(feats)


def _text_words(
    model: TaxonomistModel, X: Any, row: Any, w: np.ndarray, words: dict[str, float]
) -> None:
    transformer = model.blocks.fitted["text"]
    col_offset = 0
    value = dict(zip(row.indices.tolist(), row.data.tolist(), strict=True))
    for vec, col in zip(transformer.vectorizers_, transformer.columns, strict=True):
        text = str(X.iloc[0][col] or "")
        seen: set[int] = set()
        chars = tuple(vec.char_ngrams) if vec.char_ngrams else None
        stem, stop_words = getattr(vec, "stem", None), getattr(vec, "stop_words", False)
        if stem or stop_words:  # word n-grams of the stems, as the vectorizer counts them
            forms = word_forms([text], stem, stop_words)[0]
            grams = ngrams_of(forms, word_ngrams=tuple(vec.word_ngrams), char_ngrams=None)
            grams += ngrams_of(text, word_ngrams=(0, 0), char_ngrams=chars)
        else:
            grams = ngrams_of(text, word_ngrams=tuple(vec.word_ngrams), char_ngrams=chars)
        for kind, gram, n in grams:
            bucket = ngram_bucket(kind, gram, n, n_features=vec.n_features, field=vec.field)
            j = int(vec.column_of_bucket_[bucket])
            if j < 0 or j in seen:
                continue
            seen.add(j)
            contribution = value.get(col_offset + j, 0.0) * w[col_offset + j]
            if kind == "w":
                words[f"{col}: {gram}"] += contribution
            else:
                for word in _words_under(text.lower(), gram):
                    words[f"{col}: {word}"] += contribution
        col_offset += vec.n_features_out_


def _words_under(text: str, gram: str) -> list[str]:
    """The words a character n-gram overlaps at its first occurrence."""
    i = text.find(gram)
    if i < 0:
        return []
    out = []
    start = i
    while start > 0 and text[start - 1].isalnum():
        start -= 1
    end = i + len(gram)
    while end < len(text) and text[end].isalnum():
        end += 1
    for token in text[start:end].split():
        cleaned = "".join(ch for ch in token if ch.isalnum())
        if cleaned:
            out.append(cleaned)
    return out[:1] if len(out) == 1 else out[:2]


def _feature_names(transformer: Any, width: int) -> list[str]:
    try:
        names = [str(n) for n in transformer.get_feature_names_out()]
        if len(names) == width:
            return names
    except Exception:  # some transformers cannot name their outputs
        pass
    return [f"f{i}" for i in range(width)]


def _lightgbm(model: TaxonomistModel, member: Member, X: Any, k: int) -> dict[str, float]:
    family = FAMILIES[member.family]
    names = [b for b in family.blocks if b in model.blocks.fitted]
    outputs = model.blocks.transform(X, names)
    labels: list[str] = []
    for name in names:
        width = outputs[name].shape[1]
        if name == "text_svd":
            labels += [f"text topic {i}" for i in range(width)]
        elif name == "text_oof":
            labels += (
                [f"text model score ({model.classes[1]})"]
                if width == 1
                else [f"text model score ({c})" for c in model.classes]
            )
        else:
            labels += _feature_names(model.blocks.fitted[name], width)
    matrix = np.hstack(
        [
            np.asarray(
                outputs[n].toarray() if sparse.issparse(outputs[n]) else outputs[n],
                dtype=np.float32,
            )
            for n in names
        ]
    )
    contrib = np.asarray(member.estimator.booster_.predict(matrix, pred_contrib=True))[0]
    n_feat = matrix.shape[1] + 1
    if len(model.classes) > 2:
        contrib = contrib[k * n_feat : (k + 1) * n_feat]
    elif k == 0:
        contrib = -contrib
    return {labels[i]: float(contrib[i]) for i in range(matrix.shape[1])}
