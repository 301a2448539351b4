"""TF-IDF of word 1-2-grams and character n-grams over hashed n-grams.

Why not ``sklearn.feature_extraction.text.TfidfVectorizer``: its analyzers run per n-gram in
Python and give ~2,700 rows/s for character 2-5-grams on 300-character reviews (~400 rows/s on
1,500-character app descriptions), far below the 20,000 rows/s we promise for batch prediction.
An n-gram's bucket is a polynomial hash of its code points, ``h(s) = sum (s[t] + 1) P^t mod
2^64``, salted by kind and length. The compiled counter (``_ngrams.pyx``, Cython) rolls it per
text without the GIL, so chunks run on every core; the numpy path below computes the same
buckets with prefix hashes, ``h(s[i:j]) = (H[j] - H[i]) * P^-i``, over the whole batch as one
array, and is what the counter is tested against and what runs where the extension is not
built. Cython over numba: the same speed on this loop, no JIT start-up (numba compiles for
seconds in every new process: a worker, the API, the CLI) and no 100 MB llvmlite install; a C
compiler is needed at install time only. ``fit`` learns which buckets occur in at least
``min_df`` texts and their IDF; unseen buckets are dropped at transform time.
"""

from __future__ import annotations

import logging
import re
import threading
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

logger = logging.getLogger(__name__)

_P = 0x100000001B3
_M64 = (1 << 64) - 1
_PINV = pow(_P, -1, 1 << 64)
_MIX = 0x9E3779B97F4A7C15
_BIGRAM = 0x165667B19E3779F9
_ALNUM_LIMIT = 0x30000
_alnum_table: np.ndarray | None = None


def _alnum() -> np.ndarray:
    global _alnum_table
    if _alnum_table is None:
        _alnum_table = np.fromiter(
            (chr(i).isalnum() for i in range(_ALNUM_LIMIT)), dtype=bool, count=_ALNUM_LIMIT
        )
    return _alnum_table


def _powers(base: int, n: int) -> np.ndarray:
    out = np.empty(n + 1, dtype=np.uint64)
    out[0] = 1
    if n:
        np.cumprod(np.full(n, base, dtype=np.uint64), out=out[1:])
    return out


def _bucket(h: np.ndarray, salt: int, n_features: int) -> np.ndarray:
    mixed = (h ^ np.uint64(salt & _M64)) * np.uint64(_MIX) >> np.uint64(24)
    if n_features & (n_features - 1) == 0:  # a power of two: a mask, 5x faster than modulo
        return (mixed & np.uint64(n_features - 1)).astype(np.int64)
    return (mixed % np.uint64(n_features)).astype(np.int64)


def _salt(kind: str, n: int, field: int) -> int:
    return (hash_string(f"{kind}{n}") * 31 + field * 1_000_003) & _M64


def hash_string(s: str) -> int:
    """Polynomial hash of ``s``; equal to the vectorised substring hash of the same text."""
    h, p = 0, 1
    for ch in s:
        h = (h + (ord(ch) + 1) * p) & _M64
        p = (p * _P) & _M64
    return h


_CHUNK = 2048


def _map_chunks(func: Any, texts: list[str], n_jobs: int) -> list[Any]:
    """``func`` over chunks of ``texts``, on ``n_jobs`` threads.

    numpy and scipy's sparse routines release the GIL, and small chunks keep the temporary
    arrays in cache, so two threads give close to twice the throughput on two cores.
    """
    chunks = [texts[i : i + _CHUNK] for i in range(0, len(texts), _CHUNK)] or [texts]
    if n_jobs <= 1 or len(chunks) == 1:
        return [func(ch) for ch in chunks]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=n_jobs) as pool:
        return list(pool.map(func, chunks))


def hashed_ngram_counts(
    texts: list[str],
    *,
    word_ngrams: tuple[int, int] = (1, 2),
    char_ngrams: tuple[int, int] | None = (2, 5),
    n_features: int = 1 << 20,
    field: int = 0,
    lowercase: bool = True,
    n_jobs: int = 2,
) -> sparse.csr_matrix:
    """Raw n-gram counts of ``texts`` in ``n_features`` hash buckets (rows = texts)."""
    parts = _map_chunks(
        lambda ch: _count_chunk(
            ch,
            word_ngrams=word_ngrams,
            char_ngrams=char_ngrams,
            n_features=n_features,
            field=field,
            lowercase=lowercase,
        ),
        texts,
        n_jobs,
    )
    return parts[0] if len(parts) == 1 else sparse.vstack(parts, format="csr")


def _count_chunk(
    texts: list[str],
    *,
    word_ngrams: tuple[int, int] = (1, 2),
    char_ngrams: tuple[int, int] | None = (2, 5),
    n_features: int = 1 << 20,
    field: int = 0,
    lowercase: bool = True,
    columns: np.ndarray | None = None,
    n_columns: int = 0,
) -> sparse.csr_matrix:
    """Counts of one chunk; with ``columns`` (bucket -> column, -1 for unseen buckets) the
    counts are over the ``n_columns`` columns and unseen n-grams are dropped first."""
    kernel = _kernel()
    if kernel is None:
        return _count_chunk_numpy(
            texts,
            word_ngrams=word_ngrams,
            char_ngrams=char_ngrams,
            n_features=n_features,
            field=field,
            lowercase=lowercase,
            columns=columns,
            n_columns=n_columns,
        )
    if lowercase:
        texts = [t.lower() for t in texts]
    elif not isinstance(texts, list):
        texts = list(texts)
    cmin, cmax = char_ngrams if char_ngrams is not None else (0, 0)
    salts = np.zeros(max(cmax, 0) + 1, dtype=np.uint64)
    for k in range(cmin, cmax + 1):
        salts[k] = _salt("c", k, field)
    width = n_features if columns is None else n_columns
    counts, bits0, bits1 = _workspace(width)
    data, indices, indptr = kernel.count_ngrams(
        texts,
        cmin,
        cmax,
        salts,
        word_ngrams[0] <= 1 <= word_ngrams[1],
        word_ngrams[1] >= 2,
        _salt("w", 1, field),
        _salt("w", 2, field),
        n_features,
        _alnum().view(np.uint8),
        None if columns is None else np.ascontiguousarray(columns, dtype=np.int32),
        n_columns,
        counts,
        bits0,
        bits1,
    )
    return sparse.csr_matrix((data, indices, indptr), shape=(len(texts), width))


_kernel_module: Any = None
_workspaces = threading.local()


def _kernel() -> Any:
    """The compiled counter (``_ngrams``), or None when the package was installed without
    building it (then the numpy path runs, ~2x slower, with one warning)."""
    global _kernel_module
    if _kernel_module is None:
        try:
            import taxonomist.features._ngrams as _ngrams

            _kernel_module = _ngrams
        except ImportError:
            logger.warning(
                "taxonomist.features._ngrams is not built; n-grams are counted in numpy. "
                "Reinstall the package with a C compiler (pip install -e .) for the fast path."
            )
            _kernel_module = False
    return _kernel_module or None


def _workspace(width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This thread's zeroed work arrays for ``width`` columns (the kernel leaves them zero)."""
    have = getattr(_workspaces, "arrays", None)
    if have is None or have[0].size < width:
        have = (
            np.zeros(width, dtype=np.int32),
            np.zeros((width + 63) // 64, dtype=np.uint64),
            np.zeros((width + 4095) // 4096, dtype=np.uint64),
        )
        _workspaces.arrays = have
    return have


def _count_chunk_numpy(
    texts: list[str],
    *,
    word_ngrams: tuple[int, int] = (1, 2),
    char_ngrams: tuple[int, int] | None = (2, 5),
    n_features: int = 1 << 20,
    field: int = 0,
    lowercase: bool = True,
    columns: np.ndarray | None = None,
    n_columns: int = 0,
) -> sparse.csr_matrix:
    """:func:`_count_chunk` in numpy: the reference the compiled kernel is tested against,
    and the path taken when the extension is not built."""
    if lowercase:
        texts = [t.lower() for t in texts]
    n_docs = len(texts)
    lengths = np.fromiter((len(t) + 1 for t in texts), dtype=np.int64, count=n_docs)
    corpus = "\x00".join(texts) + "\x00"
    cp = np.frombuffer(corpus.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    n = cp.size
    doc = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    with np.errstate(over="ignore"):
        ppow = _powers(_P, n)
        ipow = _powers(_PINV, n)
        prefix = np.zeros(n + 1, dtype=np.uint64)
        np.cumsum((cp.astype(np.uint64) + np.uint64(1)) * ppow[:n], out=prefix[1:])
        if char_ngrams is not None:
            seps = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(cp == 0, out=seps[1:])
            for k in range(char_ngrams[0], char_ngrams[1] + 1):
                if n < k:
                    break
                start = np.arange(n - k + 1, dtype=np.int64)
                start = start[seps[start + k] == seps[start]]
                h = (prefix[start + k] - prefix[start]) * ipow[start]
                rows.append(doc[start])
                cols.append(_bucket(h, _salt("c", k, field), n_features))
        is_word = _alnum()[np.minimum(cp, _ALNUM_LIMIT - 1)]
        edges = np.diff(np.concatenate(([False], is_word, [False])).astype(np.int8))
        w_start = np.flatnonzero(edges == 1)
        w_end = np.flatnonzero(edges == -1)
        w_hash = (prefix[w_end] - prefix[w_start]) * ipow[w_start]
        w_doc = doc[w_start]
        if word_ngrams[0] <= 1 <= word_ngrams[1]:
            rows.append(w_doc)
            cols.append(_bucket(w_hash, _salt("w", 1, field), n_features))
        if word_ngrams[1] >= 2 and w_hash.size > 1:
            same = w_doc[1:] == w_doc[:-1]
            b_hash = w_hash[:-1][same] * np.uint64(_BIGRAM) + w_hash[1:][same]
            rows.append(w_doc[1:][same])
            cols.append(_bucket(b_hash, _salt("w", 2, field), n_features))
    r = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
    c = np.concatenate(cols) if cols else np.empty(0, dtype=np.int64)
    width = n_features
    if columns is not None:
        c = columns[c]
        seen = c >= 0
        r, c, width = r[seen], c[seen], n_columns
    return _csr_counts(r, c, n_docs, width)


def _csr_counts(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> sparse.csr_matrix:
    """CSR matrix counting each (row, col) pair, with sorted column indices.

    One sort of ``row << 32 | col`` keys (numpy's SIMD sort: 26 ms for 2.6M keys) replaces
    scipy's COO -> CSR conversion, per-row index sort and duplicate sum (150 ms).
    """
    key = np.sort((rows << np.int64(32)) | cols)
    first = np.flatnonzero(np.concatenate(([True], key[1:] != key[:-1]))) if key.size else key
    counts = np.diff(np.append(first, key.size)).astype(np.float32)
    unique = key[first]
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(unique >> np.int64(32), minlength=n_rows), out=indptr[1:])
    return sparse.csr_matrix(
        (counts, (unique & np.int64(0xFFFFFFFF)).astype(np.int32), indptr), shape=(n_rows, n_cols)
    )


def ngrams_of(
    text: str,
    *,
    word_ngrams: tuple[int, int],
    char_ngrams: tuple[int, int] | None,
    lowercase: bool = True,
) -> list[tuple[str, str, int]]:
    """Every n-gram of one text as ``(kind, ngram, n)``, in the order the hasher sees them."""
    if lowercase:
        text = text.lower()
    out: list[tuple[str, str, int]] = []
    if char_ngrams is not None:
        for k in range(char_ngrams[0], char_ngrams[1] + 1):
            out.extend(("c", text[i : i + k], k) for i in range(len(text) - k + 1))
    words = _split_words(text)
    if word_ngrams[0] <= 1 <= word_ngrams[1]:
        out.extend(("w", w, 1) for w in words)
    if word_ngrams[1] >= 2:
        out.extend(("w", f"{a} {b}", 2) for a, b in pairwise(words))
    return out


_WORD = re.compile(r"[^\W_]+")


def word_forms(texts: list[str], language: str | None, drop_stop_words: bool) -> list[str]:
    """Each text as its lower-cased words, Snowball-stemmed in ``language`` (None or a
    language Snowball lacks: as they are) and without its stop words if asked."""
    from taxonomist.data.language import stemmer, stop_words

    stems = stemmer(language) if language else None
    stops = stop_words(language) if drop_stop_words and language else frozenset()
    out = []
    for text in texts:
        words = _WORD.findall(text.lower())
        if stops:
            words = [w for w in words if w not in stops]
        out.append(" ".join(stems.stemWords(words) if stems is not None else words))
    return out


def _split_words(text: str) -> list[str]:
    words, cur = [], []
    for ch in text:
        if ch.isalnum():
            cur.append(ch)
        elif cur:
            words.append("".join(cur))
            cur = []
    if cur:
        words.append("".join(cur))
    return words


def ngram_bucket(kind: str, ngram: str, n: int, *, n_features: int, field: int = 0) -> int:
    """The hash bucket of one n-gram, as :func:`hashed_ngram_counts` computes it."""
    if kind == "w" and n == 2:
        a, b = ngram.split(" ", 1)
        h = (hash_string(a) * _BIGRAM + hash_string(b)) & _M64
    else:
        h = hash_string(ngram)
    return int(_bucket(np.array([h], dtype=np.uint64), _salt(kind, n, field), n_features)[0])


def word_buckets(words: list[str], *, n_features: int, field: int = 0) -> np.ndarray:
    """The hash buckets of many single words at once (:func:`ngram_bucket` for each)."""
    hashes = np.fromiter((hash_string(w) for w in words), dtype=np.uint64, count=len(words))
    return _bucket(hashes, _salt("w", 1, field), n_features)


class HashedTfidfVectorizer(TransformerMixin, BaseEstimator):
    """TF-IDF over hashed word and character n-grams of one text column (scikit-learn API).

    Sublinear term frequency, smooth IDF and L2-normalised rows, as
    ``TfidfVectorizer(sublinear_tf=True)``; features are the hash buckets seen in at least
    ``min_df`` training texts.
    """

    def __init__(
        self,
        word_ngrams: tuple[int, int] = (1, 2),
        char_ngrams: tuple[int, int] | None = (2, 5),
        n_features: int = 1 << 20,
        min_df: int = 2,
        max_df: float = 1.0,
        lowercase: bool = True,
        field: int = 0,
        n_jobs: int = 2,
        stem: str | None = None,
        stop_words: bool = False,
    ) -> None:
        self.stem = stem
        self.stop_words = stop_words
        self.word_ngrams = word_ngrams
        self.char_ngrams = char_ngrams
        self.n_features = n_features
        self.min_df = min_df
        self.max_df = max_df
        self.lowercase = lowercase
        self.field = field
        self.n_jobs = n_jobs

    def _count(self, texts: list[str], columns: np.ndarray | None = None) -> sparse.csr_matrix:
        words = tuple(self.word_ngrams)
        chars = tuple(self.char_ngrams) if self.char_ngrams else None

        def count(texts: list[str], words: Any, chars: Any) -> sparse.csr_matrix:
            return _count_chunk(
                texts,
                word_ngrams=words,
                char_ngrams=chars,
                n_features=self.n_features,
                field=self.field,
                lowercase=self.lowercase,
                columns=columns,
                n_columns=getattr(self, "n_features_out_", 0),
            )

        # models saved before stemming existed have neither attribute
        stem, stop_words = getattr(self, "stem", None), getattr(self, "stop_words", False)
        if not (stem or stop_words):
            return count(texts, words, chars)
        # word n-grams of the stems (stop words dropped), character n-grams of the text as is
        counts = count(word_forms(texts, stem, stop_words), words, None)
        return counts if chars is None else (counts + count(texts, (0, 0), chars)).tocsr()

    def _stack(self, parts: list[sparse.csr_matrix]) -> sparse.csr_matrix:
        return parts[0] if len(parts) == 1 else sparse.vstack(parts, format="csr")

    def fit(self, X: Any, y: Any = None) -> HashedTfidfVectorizer:
        self.fit_transform(X, y)
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> sparse.csr_matrix:
        texts = _as_texts(X)
        counts = self._stack(_map_chunks(self._count, texts, self.n_jobs))
        n_docs = counts.shape[0]
        df = np.bincount(counts.indices, minlength=self.n_features)
        keep = df >= min(self.min_df, max(n_docs, 1))
        if self.max_df < 1.0:
            keep &= df <= self.max_df * n_docs
        # Columns in decreasing document frequency: the weights of the common n-grams, which
        # most non-zeros hit, then sit together in cache (X @ W reads one row of W per
        # non-zero, at random), and so do their counters in the n-gram kernel.
        kept_buckets = np.flatnonzero(keep)
        self.buckets_ = kept_buckets[np.argsort(-df[kept_buckets], kind="stable")]
        self.column_of_bucket_ = _column_map(self.buckets_, self.n_features)
        self.idf_ = (np.log((1 + n_docs) / (1 + df[self.buckets_])) + 1).astype(np.float32)
        self.n_features_out_ = int(self.buckets_.size)
        cols = self.column_of_bucket_[counts.indices]
        kept = cols >= 0
        kept_before = np.concatenate(([0], np.cumsum(kept)))
        indptr = kept_before[counts.indptr]
        mapped = sparse.csr_matrix(
            (counts.data[kept], cols[kept], indptr), shape=(n_docs, self.n_features_out_)
        )
        mapped.sort_indices()  # as transform() gives them, so the rows' norms sum alike
        return self._weigh(mapped.data, mapped.indices, mapped.indptr)

    def transform(self, X: Any) -> sparse.csr_matrix:
        check_is_fitted(self, "idf_")

        def weigh(texts: list[str]) -> sparse.csr_matrix:
            counts = self._count(texts, self.column_of_bucket_)
            return self._weigh(counts.data, counts.indices, counts.indptr)

        return self._stack(_map_chunks(weigh, _as_texts(X), self.n_jobs))

    def _weigh(self, counts: np.ndarray, cols: np.ndarray, indptr: np.ndarray) -> sparse.csr_matrix:
        """Sublinear TF x IDF, rows scaled to unit L2 norm."""
        data = (np.log(counts) + 1) * self.idf_[cols]
        lengths = np.diff(indptr)
        rows = np.repeat(np.arange(len(lengths)), lengths)
        norms = np.sqrt(np.bincount(rows, weights=data * data, minlength=len(lengths)))
        norms[norms == 0] = 1.0
        data /= np.repeat(norms, lengths).astype(np.float32)
        return sparse.csr_matrix(
            (data.astype(np.float32), cols.astype(np.int32), indptr),
            shape=(len(lengths), self.n_features_out_),
        )

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "idf_")
        return np.array([f"hash{b}" for b in self.buckets_], dtype=object)

    # The bucket -> column map has n_features entries (8 MB); rebuild it on load instead.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("column_of_bucket_", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "buckets_" in state:
            self.column_of_bucket_ = _column_map(self.buckets_, self.n_features)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        return tags


def _column_map(buckets: np.ndarray, n_features: int) -> np.ndarray:
    """Bucket -> column (-1 for a bucket that is not a feature). int32: the n-gram kernel
    reads it once per n-gram, at random, and 4 MB stay in cache where 8 MB do not."""
    out = np.full(n_features, -1, dtype=np.int32)
    out[buckets] = np.arange(buckets.size, dtype=np.int32)
    return out


def _as_texts(X: Any) -> list[str]:
    if isinstance(X, pd.DataFrame):
        X = X.iloc[:, 0] if X.shape[1] == 1 else X.fillna("").astype(str).agg(" ".join, axis=1)
    if isinstance(X, pd.Series):
        return X.fillna("").astype(str).tolist()
    arr = np.asarray(X, dtype=object).ravel()
    return ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in arr]
