"""The drift report: working data (a window of the prediction log, or a file) against what a
model version was trained on.

The reference is the table stored with each version (``data/reference.parquet``: up to
20,000 training rows and the class predicted for each out of fold). Signals, each a test (a
p-value, Holm-corrected over all of them) and an effect size with thresholds:

- numeric and categorical columns: PSI and Jensen-Shannon over reference deciles (or the
  reference's categories), missing values a bin of their own; Kolmogorov-Smirnov or chi-square;
- text columns: words per text (PSI, KS), the share of words the model does not know (its
  out-of-vocabulary rate), a domain classifier on the words (cross-validated AUC) that also
  names the words typical of each side, and the new and missing frequent words;
- the predicted classes (PSI, chi-square) and a domain classifier on sentence embeddings.

A signal is ``drift`` (or ``warning``) only when it is significant *and* its effect passes the
drift (warning) threshold, so large samples do not cry wolf over negligible shifts.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from taxonomist.data.profile import WORDS_BINS, joined_text, tokenize
from taxonomist.errors import InvalidParameterError
from taxonomist.models.result import REFERENCE_PREDICTED as PREDICTED
from taxonomist.monitor import stats
from taxonomist.monitor.compare import known_words, min_df

if TYPE_CHECKING:
    from taxonomist.models.model import TaxonomistModel

Verdict = Literal["ok", "warning", "drift"]
VERDICTS: tuple[Verdict, ...] = ("ok", "warning", "drift")
MAX_ROWS = 20_000  # current rows the column statistics read (a uniform sample beyond)
TEXT_ROWS = 5_000  # rows per side whose words are counted
DOMAIN_ROWS = 2_000  # rows per side the word classifier is fitted on
EMBED_ROWS = 1_000  # rows per side the embedding classifier is fitted on
TEXT_CHARS = 2_000  # characters of a text the word classifier reads
CATEGORIES = 30  # reference categories kept apart; the rest are "(other)"
LISTED = 20  # words listed per direction
MIN_ROWS = 30  # fewer working rows than this: no report


@dataclass(frozen=True)
class DriftThresholds:
    """When a significant signal is a ``warning`` and when it is ``drift``."""

    alpha: float = 0.05  # family-wise, over every test of the report (Holm)
    psi_warning: float = 0.1
    psi_drift: float = 0.25
    auc_warning: float = 0.6  # domain classifiers
    auc_drift: float = 0.7
    oov_warning: float = 0.05  # rise of the out-of-vocabulary share of words
    oov_drift: float = 0.15


@dataclass
class Signal:
    """One test of one column (or of the predictions, or of the embeddings)."""

    column: str
    kind: str  # numeric, categorical, text, prediction, embedding
    signal: str  # distribution, words_per_text, oov, vocabulary, embedding
    effect: float
    effect_name: str  # psi, auc or oov_rise
    p_value: float
    detail: str  # what moved, in words
    p_corrected: float = 1.0
    verdict: Verdict = "ok"

    def judge(self, t: DriftThresholds) -> None:
        warn, drift = {
            "psi": (t.psi_warning, t.psi_drift),
            "auc": (t.auc_warning, t.auc_drift),
            "oov_rise": (t.oov_warning, t.oov_drift),
        }[self.effect_name]
        significant = self.p_corrected < t.alpha
        if significant and self.effect >= drift:
            self.verdict = "drift"
        elif significant and self.effect >= warn:
            self.verdict = "warning"

    def severity(self, t: DriftThresholds) -> float:
        """The effect as a fraction of its drift threshold (0 when not significant)."""
        if self.p_corrected >= t.alpha:
            return 0.0
        if self.effect_name == "auc":
            return max(self.effect - 0.5, 0.0) / (t.auc_drift - 0.5)
        drift = t.psi_drift if self.effect_name == "psi" else t.oov_drift
        return max(self.effect, 0.0) / drift

    def reason(self) -> str:
        what = {
            "prediction": "predicted classes",
            "embedding": "sentence embeddings",
        }.get(self.kind, f"{self.column} ({self.kind})")
        return f"{what}: {self.detail}"


@dataclass
class DriftReport:
    """The verdict, its reasons in words and every signal, column by column."""

    verdict: Verdict
    score: float
    reasons: list[str]
    columns: dict[str, dict[str, Any]]
    prediction: dict[str, Any]
    embedding: dict[str, Any] | None
    signals: list[dict[str, Any]]
    n_reference: int
    n_current: int
    absent_columns: list[str] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def drift_report(
    model: TaxonomistModel,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    predicted: pd.Series | list[str] | None = None,
    thresholds: DriftThresholds | None = None,
    seed: int = 0,
    embeddings: bool = True,
) -> DriftReport:
    """Compare ``current`` (working rows: the model's feature columns; others are ignored)
    with ``reference`` (the version's stored reference). ``predicted``: the classes the model
    gave the current rows (the log has them); predicted here when not given."""
    t = thresholds or DriftThresholds()
    if len(current) < MIN_ROWS:
        raise InvalidParameterError(
            f"Drift needs at least {MIN_ROWS} working rows; got {len(current)}. Predict more "
            "(or give a larger file) and check again.",
            details={"n_current": len(current)},
        )
    n_current = len(current)
    absent = [c for c in model.feature_columns if c not in current.columns]
    rng = np.random.default_rng(seed)
    if len(current) > MAX_ROWS:
        keep = np.sort(rng.choice(len(current), MAX_ROWS, replace=False))
        current = current.iloc[keep]
    cur = model.prepare(current)
    if predicted is None:  # a file: its (sampled) rows predicted now; the log has them all
        predicted = [str(v) for v in model.predict(cur)]
    predicted = pd.Series(list(predicted), dtype=object).astype(str)
    ref = model.prepare(reference[[c for c in model.feature_columns if c in reference]])
    ref_predicted = (
        reference[PREDICTED].astype(str)
        if PREDICTED in reference
        else pd.Series([str(v) for v in model.predict(ref)])
    )
    signals: list[Signal] = []
    columns: dict[str, dict[str, Any]] = {}
    for col in model.schema.numeric:
        columns[col], found = _numeric(col, ref[col], cur[col])
        signals += found
    for col in model.schema.categorical:
        columns[col], found = _categorical(col, ref[col], cur[col], "categorical")
        signals += found
    for col in model.schema.text:
        columns[col], found = _text(model, col, ref[col], cur[col], rng, seed)
        signals += found
    prediction, found = _categorical(
        "prediction", ref_predicted, predicted, "prediction", classes=model.classes
    )
    signals += found
    embedding = None
    if embeddings and model.schema.text:
        embedding, found = _embedding(model, ref, cur, rng, seed)
        signals += found
    for s, p in zip(signals, stats.holm([s.p_value for s in signals]), strict=True):
        s.p_corrected = p
        s.judge(t)
    _attach(columns, prediction, embedding, signals)
    verdict: Verdict = max((s.verdict for s in signals), key=VERDICTS.index, default="ok")
    flagged = sorted(
        (s for s in signals if s.verdict != "ok" and s.column not in absent),
        key=lambda s: -s.severity(t),
    )
    reasons = [s.reason() for s in flagged]
    if absent:
        reasons.insert(
            0,
            f"{len(absent)} column(s) the model reads are absent from the working data (it "
            f"predicts them as missing values): {', '.join(absent)}",
        )
    score = max((s.severity(t) for s in signals), default=0.0)
    return DriftReport(
        verdict=verdict,
        score=round(float(score), 4),
        reasons=reasons or ["no signal moved beyond chance and its thresholds"],
        columns=columns,
        prediction=prediction,
        embedding=embedding,
        signals=[_signal_dict(s) for s in signals],
        n_reference=len(reference),
        n_current=n_current,
        absent_columns=absent,
        thresholds=asdict(t),
    )


def _signal_dict(s: Signal) -> dict[str, Any]:
    d = asdict(s)
    d["effect"] = round(float(d["effect"]), 4)
    return d


def _attach(
    columns: dict[str, dict[str, Any]],
    prediction: dict[str, Any],
    embedding: dict[str, Any] | None,
    signals: list[Signal],
) -> None:
    """Each section's verdict is its worst signal's; its signals are listed in it."""
    for s in signals:
        section = (
            prediction
            if s.kind == "prediction"
            else embedding
            if s.kind == "embedding"
            else columns[s.column]
        )
        assert section is not None
        section.setdefault("signals", {})[s.signal] = {
            s.effect_name: round(float(s.effect), 4),
            "p_value": s.p_value,
            "p_corrected": s.p_corrected,
            "verdict": s.verdict,
        }
        old = section.get("verdict", "ok")
        section["verdict"] = max(old, s.verdict, key=VERDICTS.index)


# -- numeric and categorical ---------------------------------------------------------------
def _numeric(column: str, ref: pd.Series, cur: pd.Series) -> tuple[dict[str, Any], list[Signal]]:
    r = pd.to_numeric(ref, errors="coerce").to_numpy(dtype=float)
    c = pd.to_numeric(cur, errors="coerce").to_numpy(dtype=float)
    r_ok, c_ok = r[~np.isnan(r)], c[~np.isnan(c)]
    edges = stats.quantile_edges(r_ok)
    r_counts = stats.binned(r_ok, edges, int(np.isnan(r).sum()))
    c_counts = stats.binned(c_ok, edges, int(np.isnan(c).sum()))
    psi = stats.psi(r_counts, c_counts)
    statistic, p = stats.ks(r_ok, c_ok)
    if r_counts[-1] + c_counts[-1] > 0:  # missing values moved: a test that sees them too
        p = min(p, stats.chi_square(r_counts, c_counts)[1])

    def summary(v: np.ndarray, all_: np.ndarray) -> dict[str, float | None]:
        return {
            "mean": float(v.mean()) if v.size else None,
            "p50": float(np.median(v)) if v.size else None,
            "missing": float(np.isnan(all_).mean()) if all_.size else 0.0,
        }

    rs, cs = summary(r_ok, r), summary(c_ok, c)
    detail = (
        f"distribution shifted, PSI {psi:.2f} (KS {_p(p)}); mean {_num(rs['mean'])} → "
        f"{_num(cs['mean'])}, median {_num(rs['p50'])} → {_num(cs['p50'])}"
    )
    if (cs["missing"] or 0) - (rs["missing"] or 0) > 0.05:
        detail += f", missing {rs['missing']:.0%} → {cs['missing']:.0%}"
    out = {
        "kind": "numeric",
        "psi": round(psi, 4),
        "js": round(stats.js_distance(r_counts, c_counts), 4),
        "test": "ks",
        "statistic": statistic,
        "p_value": p,
        "reference": rs,
        "current": cs,
        "bins": {
            "edges": edges.tolist(),
            "reference": r_counts.tolist(),
            "current": c_counts.tolist(),
        },
    }
    return out, [Signal(column, "numeric", "distribution", psi, "psi", p, detail)]


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}"


def _categorical(
    column: str,
    ref: pd.Series,
    cur: pd.Series,
    kind: str,
    classes: list[Any] | None = None,
) -> tuple[dict[str, Any], list[Signal]]:
    r = ref.astype("string")
    c = cur.astype("string")
    if classes is not None:
        kept = [str(k) for k in classes]
    else:
        kept = [str(k) for k in r.value_counts().index[:CATEGORIES]]
    r_counts, c_counts = _category_counts(r, kept), _category_counts(c, kept)
    names = [*kept, "(other)", "(missing)"]
    psi = stats.psi(r_counts, c_counts)
    statistic, p = stats.chi_square(r_counts, c_counts)
    r_share, c_share = stats.shares(r_counts), stats.shares(c_counts)
    moved = np.argsort(-np.abs(c_share - r_share))[:3]
    detail = f"distribution shifted, PSI {psi:.2f} (chi-square {_p(p)}): " + ", ".join(
        f"{names[i]} {r_share[i]:.0%} → {c_share[i]:.0%}" for i in moved
    )
    new = sorted(set(c.dropna().unique()) - set(r.dropna().unique()))
    out = {
        "kind": kind,
        "psi": round(psi, 4),
        "js": round(stats.js_distance(r_counts, c_counts), 4),
        "test": "chi2",
        "statistic": statistic,
        "p_value": p,
        "distribution": {
            "categories": names,
            "reference": [round(float(x), 4) for x in r_counts / max(r_counts.sum(), 1)],
            "current": [round(float(x), 4) for x in c_counts / max(c_counts.sum(), 1)],
        },
    }
    if kind != "prediction":
        out["new_categories"] = {"count": len(new), "top": [str(v) for v in new[:LISTED]]}
    return out, [Signal(column, kind, "distribution", psi, "psi", p, detail)]


def _category_counts(values: pd.Series, kept: list[str]) -> np.ndarray:
    vc = values.value_counts(dropna=True)
    counts = [int(vc.get(k, 0)) for k in kept]
    other = int(vc.sum()) - sum(counts)
    return np.array([*counts, other, int(values.isna().sum())])


# -- text -------------------------------------------------------------------------------------
def _sample(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, size, replace=False)) if n > size else np.arange(n)


def _text(
    model: TaxonomistModel,
    column: str,
    ref: pd.Series,
    cur: pd.Series,
    rng: np.random.Generator,
    seed: int,
) -> tuple[dict[str, Any], list[Signal]]:
    r_texts = ref.fillna("").astype(str).to_numpy()[_sample(len(ref), TEXT_ROWS, rng)]
    c_texts = cur.fillna("").astype(str).to_numpy()[_sample(len(cur), TEXT_ROWS, rng)]
    r_tokens = [tokenize(t) for t in r_texts]
    c_tokens = [tokenize(t) for t in c_texts]
    r_words = np.array([len(t) for t in r_tokens])
    c_words = np.array([len(t) for t in c_tokens])
    edges = np.array(WORDS_BINS[1:-1], dtype=float)
    r_hist = stats.binned(r_words, edges, 0)[:-1]
    c_hist = stats.binned(c_words, edges, 0)[:-1]
    psi = stats.psi(r_hist, c_hist)
    _, p_words = stats.ks(r_words.astype(float), c_words.astype(float))
    signals = [
        Signal(
            column,
            "text",
            "words_per_text",
            psi,
            "psi",
            p_words,
            f"words per text shifted, PSI {psi:.2f} (KS {_p(p_words)}); mean "
            f"{r_words.mean():.1f} → {c_words.mean():.1f}",
        )
    ]
    r_vocab, c_vocab = _counts(r_tokens), _counts(c_tokens)
    seen = list(set(r_vocab) | set(c_vocab))
    unknown = set(seen) - known_words(model, column)(seen)
    # A reference text's word is known only when other training texts make it so: the
    # model's vocabulary counts the text itself (a word in min_df texts is known because
    # of them), which would make the reference look more familiar than any unseen text.
    need = min_df(model, column)
    r_unknown = unknown | {w for w, n in _document_frequency(ref).items() if n <= need}
    r_oov, c_oov = _oov_rates(r_tokens, r_unknown), _oov_rates(c_tokens, unknown)
    r_rate = sum(r_vocab[w] for w in r_unknown) / max(sum(r_vocab.values()), 1)
    c_rate = sum(c_vocab[w] for w in unknown) / max(sum(c_vocab.values()), 1)
    p_oov = _welch_greater(c_oov, r_oov)
    signals.append(
        Signal(
            column,
            "text",
            "oov",
            c_rate - r_rate,
            "oov_rise",
            p_oov,
            f"{c_rate:.0%} of its words are unknown to the model (training {r_rate:.0%})",
        )
    )
    vocabulary, words_signal = _word_classifier(column, r_texts, c_texts, seed)
    if words_signal is not None:
        signals.append(words_signal)
    new = Counter({w: n for w, n in c_vocab.items() if w in unknown})
    out = {
        "kind": "text",
        "words_per_text": {
            "psi": round(psi, 4),
            "p_value": p_words,
            "reference_mean": float(r_words.mean()) if r_words.size else 0.0,
            "current_mean": float(c_words.mean()) if c_words.size else 0.0,
            "histogram": {
                "edges": list(WORDS_BINS),
                "reference": r_hist.tolist(),
                "current": c_hist.tolist(),
            },
        },
        "oov_rate": {"reference": round(r_rate, 4), "current": round(c_rate, 4)},
        "new_words": {"count": len(new), "top": dict(new.most_common(LISTED))},
        "missing_words": _missing_words(r_vocab, c_vocab),
        "vocabulary": vocabulary,
    }
    return out, signals


def _document_frequency(texts: pd.Series) -> Counter[str]:
    """In how many texts of ``texts`` each word is."""
    counter: Counter[str] = Counter()
    for t in texts.fillna("").astype(str):
        counter.update(set(tokenize(t)))
    return counter


def _counts(tokens: list[list[str]]) -> Counter[str]:
    counter: Counter[str] = Counter()
    for t in tokens:
        counter.update(t)
    return counter


def _oov_rates(tokens: list[list[str]], unknown: set[str]) -> np.ndarray:
    return np.array([sum(w in unknown for w in t) / len(t) if t else 0.0 for t in tokens])


def _welch_greater(current: np.ndarray, reference: np.ndarray) -> float:
    """One-sided Welch t-test: is the current mean larger? (1.0 when it cannot tell)."""
    from scipy import stats as st

    if current.size < 2 or reference.size < 2 or (current.std() == 0 and reference.std() == 0):
        return 1.0 if current.mean() <= reference.mean() else 0.0
    return float(st.ttest_ind(current, reference, equal_var=False, alternative="greater").pvalue)


def _missing_words(reference: Counter[str], current: Counter[str]) -> dict[str, Any]:
    """Frequent reference words that became rare: under a tenth of their reference rate,
    where at least 5 occurrences were expected."""
    r_total, c_total = max(sum(reference.values()), 1), max(sum(current.values()), 1)
    gone = [
        w
        for w, n in reference.most_common(200)
        if n * c_total / r_total >= 5 and current.get(w, 0) < 0.1 * n * c_total / r_total
    ]
    return {"count": len(gone), "top": gone[:LISTED]}


WORD_PATTERN = re.compile(r"(?u)\b\w+\b")


def _word_classifier(
    column: str, ref: np.ndarray, cur: np.ndarray, seed: int
) -> tuple[dict[str, Any] | None, Signal | None]:
    """A domain classifier on TF-IDF words; its weights name the words typical of each side."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    rng = np.random.default_rng(seed + 1)
    # Distinct texts only: a text in both a fitting fold and a scored fold (the log repeats
    # popular records) would be recognised, not told apart, and inflate the AUC.
    ref, cur = pd.unique(ref), pd.unique(cur)
    r = [t[:TEXT_CHARS] for t in ref[_sample(len(ref), DOMAIN_ROWS, rng)]]
    c = [t[:TEXT_CHARS] for t in cur[_sample(len(cur), DOMAIN_ROWS, rng)]]
    if min(len(r), len(c)) < 10:
        return None, None
    vec = TfidfVectorizer(
        token_pattern=WORD_PATTERN.pattern, min_df=2, max_features=20_000, sublinear_tf=True
    )
    try:
        X = vec.fit_transform([*r, *c])
    except ValueError:  # no word occurs twice
        return None, None
    dc = stats.domain_classifier(X[: len(r)], X[len(r) :], seed)
    names = vec.get_feature_names_out()
    assert dc.weights is not None
    order = np.argsort(dc.weights)
    typical_current = [str(names[i]) for i in order[::-1][:LISTED] if dc.weights[i] > 0]
    typical_reference = [str(names[i]) for i in order[:LISTED] if dc.weights[i] < 0]
    info = {
        **dc.to_dict(),
        "words_typical_of_current": typical_current,
        "words_typical_of_reference": typical_reference,
    }
    detail = (
        f"its words tell working texts from training texts (classifier AUC {dc.auc:.2f}, "
        f"{_p(dc.p_value)}); typical of the working data: {', '.join(typical_current[:8])}"
    )
    return info, Signal(column, "text", "vocabulary", dc.auc, "auc", dc.p_value, detail)


def _embedding(
    model: TaxonomistModel,
    ref: pd.DataFrame,
    cur: pd.DataFrame,
    rng: np.random.Generator,
    seed: int,
) -> tuple[dict[str, Any] | None, list[Signal]]:
    """A domain classifier on sentence embeddings of the joined text columns."""
    from taxonomist.embed.encoders import get_encoder

    columns = model.schema.text
    r_texts = pd.unique(np.asarray(joined_text(ref, columns), dtype=object))  # as the words'
    c_texts = pd.unique(np.asarray(joined_text(cur, columns), dtype=object))
    r = r_texts[_sample(len(r_texts), EMBED_ROWS, rng)].tolist()
    c = c_texts[_sample(len(c_texts), EMBED_ROWS, rng)].tolist()
    if min(len(r), len(c)) < 10:
        return None, []
    encoder = get_encoder("static")
    r_vec, c_vec = encoder.encode(r), encoder.encode(c)
    dc = stats.domain_classifier(r_vec, c_vec, seed, weights=False)
    info = {**dc.to_dict(), "encoder": encoder.name, "columns": columns}
    detail = (
        f"a classifier on sentence embeddings tells working rows from training rows "
        f"(AUC {dc.auc:.2f}, {_p(dc.p_value)})"
    )
    return info, [Signal("embedding", "embedding", "embedding", dc.auc, "auc", dc.p_value, detail)]
