"""Benchmark: multilingual text for the linear families, and character n-grams against typos.

Part ``stems``: a linear SVM on the TF-IDF of each text column, with the words as they are,
Snowball-stemmed in the table's language, and stemmed without stop words; beside it the
frozen-embedding head (the encoder the language picks: USE off English). 5-fold
cross-validated out-of-fold predictions on the same folds, macro-F1 with a paired-bootstrap
95 % interval against the words as they are.

Part ``typos``: trained on clean rows, scored on the held-out 20 % and on copies of it with
typos injected (each letter swapped with its neighbour, dropped, doubled or replaced by a
keyboard neighbour with probability ``rate``), word n-grams alone against words + characters.

Part ``encoders``: the frozen-embedding head (a logistic regression) on each multilingual
encoder -- USE, e5, the static 64-d model -- beside a logistic regression on the TF-IDF, and
the averaged probabilities of the TF-IDF model with each: the same 5-fold out-of-fold rows.

Part ``ensemble``: ``train()`` as a user runs it (its default time budget) on 80 % of the
rows, scored on the other 20 %: the whole search and ensemble against each family alone
(the TF-IDF linear SVM, the frozen-embedding head) under the same budget, paired intervals;
and the search without the default prediction budget, which leaves the embeddings out.

    python bench/multilingual.py                       # stems and typos, every set
    python bench/multilingual.py --part stems --only rakuten
    python bench/multilingual.py --part typos --only reviews-class
    python bench/multilingual.py --part encoders --only rakuten --only russian-topics
    python bench/multilingual.py --part ensemble --only rakuten --only russian-topics
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TAXONOMIST_SHARED", ROOT.parent / "shared")) / "data"
sys.path.insert(0, str(ROOT / "bench"))
from deep import macro_f1, paired_interval  # noqa: E402

SETS = {
    "rakuten": ("rakuten/products.csv", "prdtypecode"),
    "russian-topics": ("fortunes-ru", "label"),
    "appstore": ("appstore/apps.csv", "prime_genre"),
    "reviews-class": ("womens_clothing/reviews.csv", "Class Name"),
}
STEM_VARIANTS = {
    "words": {},
    "stems": {"stem": True},
    "stems-no-stop-words": {"stem": True, "stop_words": True},
}
QWERTY = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]
# The Russian set: Debian's fortunes-ru (GPL-2; apt-get install fortunes-ru), one file per
# topic of aphorisms and jokes; eight distinct topics, the "-- author" lines stripped (an
# author would give the topic away), texts filed under two topics dropped: 3,852 rows.
FORTUNES = Path("/usr/share/games/fortunes/ru")
TOPICS = ["love", "polit", "knowledge", "computer", "wealth", "war", "art", "ill"]


def russian_topics() -> pd.DataFrame:
    import re

    if not FORTUNES.is_dir():
        sys.exit("The Russian set is Debian's fortunes-ru: apt-get install fortunes-ru")
    rows = []
    for topic in TOPICS:
        for chunk in re.split(r"^%\s*$", (FORTUNES / topic).read_text("utf-8"), flags=re.M):
            text = " ".join(re.sub(r"\n\s*--\s.*\Z", "", chunk.strip(), flags=re.S).split())
            if text:
                rows.append((text, topic))
    df = pd.DataFrame(rows, columns=["text", "label"]).drop_duplicates()
    return df[df["text"].map(df.groupby("text")["label"].nunique()) == 1].reset_index(drop=True)


def load(name: str, rows: int | None = None) -> tuple[pd.DataFrame, np.ndarray, list[str], str]:
    """The set's rows (classes with ≥ 10 rows), labels, text columns and language."""
    from taxonomist.data import infer_column_roles
    from taxonomist.data.profile import profile_table
    from taxonomist.models.table_check import stratified_sample

    path, target = SETS[name]
    df = russian_topics() if path == "fortunes-ru" else pd.read_csv(SHARED / path)
    df = df[df[target].notna()]
    df = df[df[target].map(df[target].value_counts()) >= 10].reset_index(drop=True)
    if rows:
        df = stratified_sample(df, target, rows, 0)
    schema = infer_column_roles(df, target)
    language = profile_table(df, schema).language
    return df, df[target].astype(str).to_numpy(), list(schema.text), language


def text_matrix(df: pd.DataFrame, columns: list[str], language: str, **variant: bool) -> object:
    """The TextColumns block as training builds it, with ``variant``'s word forms."""
    from taxonomist.features.build import TextColumns, text_vectorizers

    vectorizers = text_vectorizers(df, columns)
    for v in vectorizers:
        v.set_params(
            stem=language if variant.get("stem") else None,
            stop_words=bool(variant.get("stop_words")),
            **({"char_ngrams": None} if variant.get("no_chars") else {}),
        )
    return TextColumns(vectorizers, columns)


def svm_oof(block: object, df: pd.DataFrame, y: np.ndarray, folds: list) -> np.ndarray:
    from sklearn.base import clone

    from taxonomist.models.candidates import FAMILIES, Task

    classes = np.unique(y)
    family = FAMILIES["linear_svm"]
    pred = np.empty(len(y), dtype=object)
    for train, test in folds:
        features = clone(block)
        X = features.fit_transform(df.iloc[train])
        model = family.build(family.defaults, Task(len(train), len(classes), 0, 2))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X, y[train])
        pred[test] = model.predict(features.transform(df.iloc[test]))
    return pred.astype(str)


def embed_oof(df: pd.DataFrame, columns: list[str], y: np.ndarray, language: str, folds: list):
    from sklearn.linear_model import LogisticRegression

    from taxonomist.embed.encoders import encoder_for_language
    from taxonomist.embed.transformer import SentenceEmbedder

    encoder = encoder_for_language(language).name
    cache = tempfile.mkdtemp(prefix="bench-ml-")
    E = SentenceEmbedder(encoder=encoder, cache_path=f"{cache}/e.db").fit_transform(df[columns])
    pred = np.empty(len(y), dtype=object)
    for train, test in folds:
        head = LogisticRegression(C=10.0, max_iter=1000, class_weight="balanced")
        pred[test] = head.fit(E[train], y[train]).predict(E[test])
    return pred.astype(str), encoder


def stems(name: str, rows: int | None) -> dict:
    from sklearn.model_selection import StratifiedKFold

    df, y, columns, language = load(name, rows)
    folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(df, y))
    out: dict = {"set": name, "rows": len(df), "language": language, "macro_f1": {}}
    preds = {}
    for label, variant in STEM_VARIANTS.items():
        start = time.perf_counter()
        preds[label] = svm_oof(text_matrix(df, columns, language, **variant), df, y, folds)
        out["macro_f1"][f"svm-{label}"] = round(macro_f1(y, preds[label]), 4)
        print(name, label, out["macro_f1"][f"svm-{label}"], f"{time.perf_counter() - start:.1f}s")
    preds["embed"], out["encoder"] = embed_oof(df, columns, y, language, folds)
    out["macro_f1"]["embed"] = round(macro_f1(y, preds["embed"]), 4)
    for label in [*list(STEM_VARIANTS)[1:], "embed"]:
        out[f"{label}_minus_words"] = paired_interval(y, preds[label], preds["words"])
    return out


def encoders(name: str, rows: int | None) -> dict:
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    from taxonomist.embed.encoders import ENCODERS
    from taxonomist.embed.transformer import join_text_columns
    from taxonomist.models.candidates import FAMILIES, Task

    df, y, columns, language = load(name, rows)
    classes = np.unique(y)
    folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(df, y))
    texts = join_text_columns(df[columns])
    out: dict = {"set": name, "rows": len(df), "macro_f1": {}, "encode_rows_per_s": {}}
    probas: dict[str, np.ndarray] = {}

    def oof(fit_predict) -> np.ndarray:
        P = np.zeros((len(y), len(classes)))
        for train, test in folds:
            P[test] = fit_predict(train, test)
        return P

    block = text_matrix(df, columns, language, stem=True, stop_words=True)
    family = FAMILIES["logreg"]

    def tfidf(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        features = clone(block)
        model = family.build(family.defaults, Task(len(train), len(classes), 0, 2))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(features.fit_transform(df.iloc[train]), y[train])
        return model.predict_proba(features.transform(df.iloc[test]))

    probas["tfidf"] = oof(tfidf)
    for enc in ("use", "e5", "static"):
        start = time.perf_counter()
        E = ENCODERS[enc].encode(texts)
        out["encode_rows_per_s"][enc] = round(len(texts) / (time.perf_counter() - start))
        probas[enc] = oof(
            lambda tr, te, E=E: (
                LogisticRegression(C=10.0, max_iter=2000, class_weight="balanced")
                .fit(E[tr], y[tr])
                .predict_proba(E[te])
            )
        )
    for enc in ("use", "e5", "static"):
        probas[f"tfidf+{enc}"] = (probas["tfidf"] + probas[enc]) / 2
    probas["tfidf+use+e5"] = (probas["tfidf"] + probas["use"] + probas["e5"]) / 3
    for label, P in probas.items():
        out["macro_f1"][label] = round(macro_f1(y, classes[P.argmax(1)]), 4)
    print(name, out["macro_f1"], out["encode_rows_per_s"], flush=True)
    return out


def add_typos(text: str, rate: float, rng: np.random.Generator) -> str:
    """``text`` with a typo at each letter with probability ``rate``."""
    out = []
    chars = list(text)
    i = 0
    while i < len(chars):
        ch = chars[i]
        if not ch.isalpha() or rng.random() >= rate:
            out.append(ch)
            i += 1
            continue
        kind = rng.integers(4)
        if kind == 0 and i + 1 < len(chars):  # swap with the next
            out += [chars[i + 1], ch]
            i += 2
            continue
        if kind == 2:  # doubled
            out += [ch, ch]
        elif kind == 3:  # a keyboard neighbour
            row = next((r for r in QWERTY if ch.lower() in r), None)
            if row is None:
                out.append(ch)
            else:
                j = row.index(ch.lower()) + int(rng.choice([-1, 1]))
                out.append(row[min(max(j, 0), len(row) - 1)])
        # kind 1 (or a swap at the end): dropped
        i += 1
    return "".join(out)


def typos(name: str, rows: int | None, rates: list[float]) -> dict:
    from sklearn.model_selection import train_test_split

    from taxonomist.models.candidates import FAMILIES, Task

    df, y, columns, language = load(name, rows)
    train, test = train_test_split(np.arange(len(df)), test_size=0.2, random_state=0, stratify=y)
    out: dict = {"set": name, "rows": len(df), "macro_f1": {}}
    family = FAMILIES["linear_svm"]
    rng = np.random.default_rng(0)
    copies = {0.0: df.iloc[test]}
    for rate in rates:
        noisy = df.iloc[test].copy()
        for c in columns:
            noisy[c] = [add_typos(t, rate, rng) if isinstance(t, str) else t for t in noisy[c]]
        copies[rate] = noisy
    for label, variant in {"words": {"no_chars": True}, "words+chars": {}}.items():
        block = text_matrix(df, columns, language, **variant)
        # the vectorizers' character n-grams follow the columns' length: force them on
        if label == "words+chars":
            for v in block.vectorizers:
                v.set_params(char_ngrams=(2, 5))
        X = block.fit_transform(df.iloc[train])
        model = family.build(family.defaults, Task(len(train), len(np.unique(y)), 0, 2))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X, y[train])
        for rate, frame in copies.items():
            pred = model.predict(block.transform(frame)).astype(str)
            out["macro_f1"][f"{label}@{rate}"] = round(macro_f1(y[test], pred), 4)
        print(name, label, {k: v for k, v in out["macro_f1"].items() if k.startswith(label)})
    return out


def ensemble(name: str, rows: int | None, budget: float) -> dict:
    """The default search against each family alone, on one 80/20 split."""
    from sklearn.model_selection import train_test_split

    from taxonomist.models.train import train

    df, y, _, language = load(name, rows)
    target = SETS[name][1]
    df[target] = y
    train_idx, test_idx = train_test_split(
        np.arange(len(df)), test_size=0.2, random_state=0, stratify=y
    )
    fit, test = df.iloc[train_idx], df.iloc[test_idx]
    out: dict = {"set": name, "language": language, "rows": len(df), "macro_f1": {}}
    preds, seconds, members = {}, {}, {}
    runs: dict[str, dict] = {
        "linear_svm": {"families": ["linear_svm"]},
        "embed": {"families": ["embed"]},
        "search": {},
        # the default prediction budget (5,000 rows/s) keeps the embeddings out of it
        "search-no-predict-budget": {"min_rows_per_second": 0},
    }
    for label, options in runs.items():
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = train(fit, target=target, time_budget=budget, seed=0, **options)
        seconds[label] = round(time.perf_counter() - start, 1)
        preds[label] = np.asarray(result.model.predict(test), dtype=str)
        out["macro_f1"][label] = round(macro_f1(y[test_idx], preds[label]), 4)
        members[label] = sorted({m.family for m in result.model.members})
        print(name, label, out["macro_f1"][label], seconds[label], members[label], flush=True)
    best = max(("linear_svm", "embed"), key=lambda k: out["macro_f1"][k])
    out |= {"train_seconds": seconds, "members": members, "best_single": best}
    for label in ("search", "search-no-predict-budget"):
        out[f"{label}_minus_best_single"] = paired_interval(y[test_idx], preds[label], preds[best])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--part", choices=["stems", "typos", "both", "encoders", "ensemble"], default="both"
    )
    parser.add_argument("--only", choices=list(SETS), action="append")
    parser.add_argument("--rows", type=int, default=None, help="a stratified sample of each set")
    parser.add_argument("--rates", default="0.03,0.08", help="typos: chances per letter")
    parser.add_argument("--budget", type=float, default=120.0, help="ensemble: time budget")
    args = parser.parse_args()
    os.environ.setdefault("TAXONOMIST_HOME", tempfile.mkdtemp(prefix="bench-ml-home-"))
    results = []
    for name in args.only or list(SETS):
        if args.part in ("stems", "both"):
            results.append(stems(name, args.rows))
            print(json.dumps(results[-1]), flush=True)
        if args.part in ("typos", "both"):
            results.append(typos(name, args.rows, [float(r) for r in args.rates.split(",")]))
            print(json.dumps(results[-1]), flush=True)
        if args.part == "encoders":
            results.append(encoders(name, args.rows))
            print(json.dumps(results[-1]), flush=True)
        if args.part == "ensemble":
            results.append(ensemble(name, args.rows, args.budget))
            print(json.dumps(results[-1]), flush=True)
    json.dump(results, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
