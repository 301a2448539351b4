"""Feature transformers: the scikit-learn contract and their numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.utils.estimator_checks import parametrize_with_checks

from taxonomist.features import CountEncoder, HashedTfidfVectorizer, OutOfFoldDecision
from taxonomist.features.text import hashed_ngram_counts, ngram_bucket, ngrams_of
from taxonomist.models.linear import NBSVMClassifier, OneVsRestCascade, SoftmaxLinearSVC

TEXTS = [
    "Red running shoes for men",
    "Women's red dress, size M",
    "Chaussures de course rouges",
    "Красное платье",
    "shoes shoes shoes",
    "",
]


def _expected_failures(est) -> dict[str, str]:
    if isinstance(est, OutOfFoldDecision):
        # By design fit_transform returns out-of-fold values, unlike fit().transform(),
        # exactly as scikit-learn's own TargetEncoder.
        why = "fit_transform is out-of-fold by design"
        return {
            "check_transformer_general": why,
            "check_transformer_general(readonly_memmap=True)": why,
            "check_transformer_data_not_an_array": why,
            "check_fit2d_1sample": "needs two rows per fold",
        }
    return {}


@parametrize_with_checks(
    [
        CountEncoder(),
        SoftmaxLinearSVC(),
        NBSVMClassifier(),
        OneVsRestCascade(),
        OutOfFoldDecision(),
    ],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_contract(estimator, check) -> None:
    check(estimator)


def test_python_and_vectorised_hashes_agree() -> None:
    for text in TEXTS:
        counts = hashed_ngram_counts([text], n_features=1 << 18)
        grams = ngrams_of(text, word_ngrams=(1, 2), char_ngrams=(2, 5))
        buckets = {ngram_bucket(k, g, n, n_features=1 << 18) for k, g, n in grams}
        assert buckets == set(counts.indices.tolist()), text
        assert counts.sum() == len(grams)


# Characters that trip a hand-written counter: a NUL inside a text (the numpy path's document
# separator), case changes that change the length ("İ" lowers to two characters, "ẞ", final
# sigma), 1-, 2- and 4-byte code points, code points above the alphanumeric table, and a lone
# surrogate (JSON's "\\ud800" decodes to one).
_TRICKY = "abcXYZ éÉßẞİΣς\x00 .,-_日本語🙂\U00030001\U0010ffff\u2fffa1\ud800"


def _kernel_and_numpy(texts: list[str], **kw) -> tuple:
    from taxonomist.features.text import _count_chunk, _count_chunk_numpy

    return _count_chunk(texts, **kw), _count_chunk_numpy(texts, **kw)


def _same_csr(a, b) -> None:
    assert a.shape == b.shape and a.has_sorted_indices
    assert np.array_equal(a.indptr, b.indptr)
    assert np.array_equal(a.indices, b.indices)
    assert np.array_equal(a.data, b.data) and a.data.dtype == b.data.dtype == np.float32


def test_compiled_counter_is_built() -> None:
    # CI installs the package with its extension; without it training runs ~5x slower.
    from taxonomist.features import _ngrams  # noqa: F401
    from taxonomist.features.text import _kernel

    assert _kernel() is not None


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"char_ngrams": None},
        {"word_ngrams": (1, 1)},
        {"word_ngrams": (2, 2), "char_ngrams": (1, 3), "n_features": 1000},  # not a power of 2
        {"lowercase": False, "field": 3, "char_ngrams": (3, 6)},
    ],
)
def test_compiled_counter_equals_numpy_bit_for_bit(options) -> None:
    rng = np.random.default_rng(7)
    alphabet = list(_TRICKY)
    texts = ["".join(rng.choice(alphabet, rng.integers(0, 60))) for _ in range(2500)]
    texts += ["", " ", "a", "\x00", "ab\x00cd"] + [t.upper() for t in TEXTS]
    kernel, reference = _kernel_and_numpy(texts, **options)
    _same_csr(kernel, reference)


def test_compiled_counter_maps_buckets_to_columns_like_numpy() -> None:
    vec = HashedTfidfVectorizer(min_df=2).fit(TEXTS * 2 + ["only once here"])
    texts = [*TEXTS, "only once here", "never seen words", ""]
    kernel, reference = _kernel_and_numpy(
        texts, columns=vec.column_of_bucket_, n_columns=vec.n_features_out_
    )
    _same_csr(kernel, reference)
    assert kernel.shape[1] == vec.n_features_out_


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from(list(_TRICKY)) | st.characters(), max_size=80)))
def test_compiled_counter_equals_numpy_on_any_text(texts) -> None:
    _same_csr(*_kernel_and_numpy(texts, n_features=1 << 12))


def test_fitted_columns_run_from_common_to_rare_and_transform_equals_fit_transform() -> None:
    texts = TEXTS * 3 + ["rare words twice", "rare words twice"]
    vec = HashedTfidfVectorizer(char_ngrams=None, min_df=2)
    fitted = vec.fit_transform(texts)
    df = np.bincount(fitted.indices, minlength=vec.n_features_out_)
    assert np.all(np.diff(df) <= 0)  # column 0 is the most common n-gram
    again = vec.transform(texts)
    _same_csr(fitted, again)


def test_numpy_fallback_gives_the_same_tfidf(monkeypatch) -> None:
    from taxonomist.features import text

    vec = HashedTfidfVectorizer().fit(TEXTS * 2)
    fast = vec.transform(TEXTS)
    monkeypatch.setattr(text, "_kernel_module", False)  # as if the extension were not built
    slow = vec.transform(TEXTS)
    assert (fast != slow).nnz == 0


def test_sorted_key_counts_equal_scipy_duplicate_sums() -> None:
    from scipy import sparse

    from taxonomist.features.text import _csr_counts

    rng = np.random.default_rng(3)
    rows, cols = rng.integers(0, 50, 5000), rng.integers(0, 70, 5000)
    ours = _csr_counts(rows, cols, 60, 70)  # rows 50..59 stay empty
    theirs = sparse.csr_matrix((np.ones(5000), (rows, cols)), shape=(60, 70))
    assert ours.has_sorted_indices and ours.nnz == theirs.nnz
    assert np.array_equal(ours.toarray(), theirs.toarray())
    assert _csr_counts(rows[:0], cols[:0], 3, 70).shape == (3, 70)


def test_tfidf_rows_are_unit_norm_and_match_sklearn_idf_order() -> None:
    vec = HashedTfidfVectorizer(char_ngrams=None, min_df=1)
    X = vec.fit_transform(TEXTS)
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    assert np.allclose(norms[:-1], 1.0, atol=1e-5)
    assert norms[-1] == 0.0  # the empty text
    # Same IDF values as scikit-learn's smooth IDF for the same words.
    ref = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"[^\W_]+")
    ref.fit([t.lower() for t in TEXTS])
    assert np.allclose(sorted(vec.idf_), sorted(ref.idf_), atol=1e-5)


def test_min_df_drops_rare_ngrams_and_unseen_text_maps_to_nothing() -> None:
    vec = HashedTfidfVectorizer(min_df=2)
    vec.fit(TEXTS)
    unseen = vec.transform(["zzqx wvvk"])
    assert unseen.nnz == 0
    seen = vec.transform(["red shoes"])
    assert seen.nnz > 0


def test_transform_is_batch_independent_and_pickles() -> None:
    import pickle

    vec = HashedTfidfVectorizer().fit(TEXTS * 3)
    whole = vec.transform(TEXTS).toarray()
    one_by_one = np.vstack([vec.transform([t]).toarray() for t in TEXTS])
    assert np.allclose(whole, one_by_one)
    again = pickle.loads(pickle.dumps(vec))
    assert np.allclose(again.transform(TEXTS).toarray(), whole)


def test_count_encoder_counts() -> None:
    enc = CountEncoder(normalize=False).fit(pd.DataFrame({"c": ["a", "a", "b", None]}))
    out = enc.transform(pd.DataFrame({"c": ["a", "b", "zzz", None]}))
    assert out[:, 0].tolist() == [2.0, 1.0, 0.0, 1.0]


def test_out_of_fold_decision_never_sees_the_row_label() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 400))
    y = rng.integers(0, 2, 200)  # pure noise: in-sample scores would separate, OOF cannot
    oof = OutOfFoldDecision().fit_transform(X, y)
    in_sample = OutOfFoldDecision().fit(X, y).transform(X)
    acc_oof = ((oof[:, 0] > 0) == y).mean()
    acc_in = ((in_sample[:, 0] > 0) == y).mean()
    assert acc_in > 0.95
    assert 0.35 < acc_oof < 0.65


def test_out_of_fold_decision_on_threads_equals_serial() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 50))
    y = (X[:, :3] @ [1.0, -1.0, 0.5] > 0).astype(int) + (X[:, 3] > 1)
    serial = OutOfFoldDecision(n_jobs=1).fit_transform(X, y)
    threaded = OutOfFoldDecision(n_jobs=2).fit_transform(X, y)
    assert serial.shape == (300, 3)
    assert np.array_equal(serial, threaded)


def test_nb_svm_folds_the_log_count_ratio_into_its_weights() -> None:
    from sklearn.svm import LinearSVC

    texts = ["great fit love it", "love the colour", "poor fit returned", "returned it, poor"] * 5
    y = np.array([1, 1, 0, 0] * 5)
    X = HashedTfidfVectorizer(char_ngrams=None, min_df=1).fit_transform(texts)
    nb = NBSVMClassifier(C=1.0, alpha=1.0, class_weight=None).fit(X, y)
    present = (X > 0).astype(float)
    p = np.asarray(present[y == 1].sum(axis=0)).ravel() + 1
    q = np.asarray(present[y == 0].sum(axis=0)).ravel() + 1
    r = np.log((p / p.sum()) / (q / q.sum()))
    # liblinear solved tightly: the same optimum, up to the solvers' tolerance (1e-3).
    svc = LinearSVC(C=1.0, tol=1e-8, max_iter=10_000).fit(X.multiply(r).tocsr(), y)
    d = svc.decision_function(X.multiply(r).tocsr())
    assert np.abs(nb.decision_function(X) - d).max() < 5e-3
    assert (nb.predict(X) == y).all()
    # Words of one class get the sign of their class; a scaled number (negative) keeps r = 1.
    signed = sparse.hstack([X, sparse.csr_matrix(np.where(y == 1, 1.0, -1.0)[:, None])]).tocsr()
    three = NBSVMClassifier(class_weight=None).fit(signed, np.array([0, 1, 2, 2] * 5))
    assert three.coef_.shape == (3, signed.shape[1])


@pytest.mark.parametrize("class_weight", ["balanced", None, {0: 3.0, 1: 0.5}])
def test_linear_svm_solves_liblinears_problem_deterministically_on_threads(class_weight) -> None:
    """The own solver reaches liblinear's optimum (one-vs-rest, its class weights and
    regularized intercept), and threads give the model one thread gives, bit for bit:
    liblinear's shared generator made threaded fits differ from run to run."""
    from sklearn.svm import LinearSVC

    rng = np.random.default_rng(5)
    y = rng.integers(0, 4, 400)
    X = sparse.random(400, 300, density=0.05, random_state=5, format="csr")
    X[np.arange(400), y] = 1.0  # a feature per class: the classes are learnable
    X = X.tocsr()
    ours = SoftmaxLinearSVC(C=0.5, class_weight=class_weight, n_jobs=2).fit(X, y)
    ref = LinearSVC(C=0.5, class_weight=class_weight, tol=1e-8, max_iter=20_000).fit(X, y)
    assert np.abs(ours.decision_function(X) - ref.decision_function(X)).max() < 5e-3
    again = SoftmaxLinearSVC(C=0.5, class_weight=class_weight, n_jobs=2).fit(X, y)
    serial = SoftmaxLinearSVC(C=0.5, class_weight=class_weight, n_jobs=1).fit(X, y)
    assert np.array_equal(ours.coef_, again.coef_) and np.array_equal(ours.coef_, serial.coef_)
    assert (ours.predict(X) == y).mean() > 0.9
    binary = SoftmaxLinearSVC(C=0.5, class_weight=class_weight).fit(X, y % 2)
    ref = LinearSVC(C=0.5, class_weight=class_weight, tol=1e-8, max_iter=20_000).fit(X, y % 2)
    assert np.abs(binary.decision_function(X) - ref.decision_function(X)).max() < 5e-3
    with pytest.raises(ValueError, match="one class"):
        SoftmaxLinearSVC().fit(X, np.zeros(400))


def test_linear_svm_stops_at_its_deadline() -> None:
    import time

    from taxonomist.models.linear import DeadlineReached

    rng = np.random.default_rng(2)
    X = rng.normal(size=(120, 10))
    y = rng.integers(0, 4, 120)
    with pytest.raises(DeadlineReached, match="class 0 of 4"):
        SoftmaxLinearSVC(n_jobs=2).fit(X, y, deadline=time.perf_counter() - 1)
    fitted = SoftmaxLinearSVC(n_jobs=2).fit(X, y, deadline=time.perf_counter() + 60)
    assert fitted.coef_.shape == (4, 10)


def test_category_strings_are_the_same_whatever_the_column_dtype() -> None:
    """Integers, nullable integers, whole floats, pandas strings and Python objects: one
    string per level and one missing level, as the single-record path writes them."""
    from taxonomist.features.categorical import MISSING, _code_strings, as_category_strings

    columns = {
        "int": pd.Series([1, 20, 3]),
        "nullable": pd.Series([1, None, 3], dtype="Int64"),
        "float": pd.Series([1.0, np.nan, 2.5]),
        "str": pd.Series(["x", None, "z"], dtype="str"),
        "object": pd.Series(["x", None, "z"], dtype=object),
    }
    got = as_category_strings(pd.DataFrame(columns))
    assert got["int"].tolist() == ["1", "20", "3"]
    assert got["nullable"].tolist() == ["1", MISSING, "3"]
    assert got["float"].tolist() == ["1", MISSING, "2.5"]
    assert got["str"].tolist() == got["object"].tolist() == ["x", MISSING, "z"]
    for name, s in columns.items():
        values = s.astype(object).where(s.notna(), None).to_numpy()
        assert _code_strings(values).tolist() == got[name].tolist(), name


def test_best_f1_threshold_keeps_the_best_top_scores() -> None:
    from taxonomist.models.linear import best_f1_threshold

    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    positive = np.array([1, 1, 0, 1, 0, 0], dtype=bool)
    # keeping the top 2: F1 0.8; the top 4: 2*3/(4+3) = 0.857, the best; so between 0.6 and 0.5
    assert best_f1_threshold(scores, positive) == pytest.approx(0.55)
    assert best_f1_threshold(scores, np.zeros(6, dtype=bool)) == 0.0


def test_cascade_moves_each_classs_threshold_and_falls_back_to_the_nearest() -> None:
    """A rare class whose evidence is weak: its own problem, balanced, its own threshold
    (tuned on inner folds) and its turn first in the cascade (the order the folds chose) find
    it better than the plain one-vs-rest argmax; a record that clears no threshold still gets
    the class it is nearest to."""
    import time

    from sklearn.metrics import f1_score

    from taxonomist.models.linear import DeadlineReached

    rng = np.random.default_rng(7)
    n = 3000
    y = rng.choice(3, n, p=[0.6, 0.35, 0.05])
    X = rng.normal(size=(n, 20))
    X[np.arange(n), y] += np.array([1.5, 1.5, 0.6])[y]  # class 2: rare and faint
    Xs = sparse.csr_matrix(X)
    cascade = OneVsRestCascade(C=0.5, n_jobs=2).fit(Xs[:2000], y[:2000])
    plain = SoftmaxLinearSVC(C=0.5, n_jobs=2).fit(Xs[:2000], y[:2000])
    assert cascade.thresholds_.shape == (3,)
    # each problem weighs its two sides alike, which lifts a rare class's decision values:
    # its threshold is where they stop paying in F1
    assert cascade.thresholds_[2] > cascade.thresholds_[0]
    ours = f1_score(y[2000:], cascade.predict(Xs[2000:]), average=None)
    base = f1_score(y[2000:], plain.predict(Xs[2000:]), average=None)
    assert list(cascade.order_) == [2, 1, 0]  # the rarest first
    assert ours[2] > base[2] + 0.03 and ours.mean() > base.mean() + 0.01
    margins = cascade.decision_function(Xs[2000:])
    predicted = cascade.predict(Xs[2000:])
    rare = margins[:, 2] >= 0
    assert rare.any() and (predicted[rare] == 2).all()  # its turn comes first
    none_clear = (margins < 0).all(axis=1)
    assert none_clear.any()  # the fallback: the class nearest to its threshold
    assert np.array_equal(predicted[none_clear], margins[none_clear].argmax(axis=1))
    proba = cascade.predict_proba(Xs[2000:])
    assert np.allclose(proba.sum(axis=1), 1) and np.array_equal(proba.argmax(axis=1), predicted)
    again = OneVsRestCascade(C=0.5, n_jobs=1).fit(Xs[:2000], y[:2000])
    assert np.array_equal(again.coef_, cascade.coef_)
    assert np.array_equal(again.thresholds_, cascade.thresholds_)
    with pytest.raises(DeadlineReached):
        OneVsRestCascade().fit(Xs, y, deadline=time.perf_counter() - 1)


def test_the_cascade_is_trained_only_when_named(toy) -> None:
    from taxonomist.models.train import train

    named = train(toy, target="label", trials=2, families=["ovr_cascade"])
    assert named.model.families == {"ovr_cascade": 1.0}
    assert named.metrics["f1_macro"] > 0.8
    default = train(toy, target="label", trials=6)
    assert "ovr_cascade" not in set(default.leaderboard["family"])


@pytest.mark.torch
def test_missing_torch_extra_names_the_extra(monkeypatch) -> None:
    import sys

    from taxonomist.embed import encoders
    from taxonomist.embed.encoders import ENCODERS, _models
    from taxonomist.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    monkeypatch.delitem(_models, "minilm", raising=False)
    monkeypatch.setattr(encoders, "_held", {})  # nor the model an earlier test loaded
    with pytest.raises(MissingExtraError, match=r"pip install 'taxonomist\[torch\]'"):
        ENCODERS["minilm"].encode(["hello"])


def test_fast_one_hot_lookup_equals_scikit_learn() -> None:
    from sklearn.preprocessing import OneHotEncoder

    from taxonomist.features.categorical import one_hot
    from taxonomist.features.columns import ColumnView

    rng = np.random.default_rng(4)
    values = np.array(["a", "b", "c", "d", "rare1", "rare2", None], dtype=object)
    train = pd.DataFrame(
        {
            "x": [*rng.choice(values[:4], 200).tolist(), "rare1"],
            "y": rng.choice(values[:3], 201).tolist(),
        }
    )
    train.loc[[3, 7], "y"] = None
    enc = one_hot().fit(train)
    new = {
        "x": np.array(["a", "rare1", "unseen", None, "d"], dtype=object),
        "y": np.array([None, "b", "zzz", "c", "a"], dtype=object),
    }
    fast = enc.transform(ColumnView(new))
    slow = OneHotEncoder.transform(enc, pd.DataFrame(new))
    assert enc.accepts_column_view
    assert fast.shape == slow.shape and np.array_equal(fast.toarray(), slow.toarray())
    # the batch path: a hash lookup per column, on pandas' strings and on Python objects
    frame = pd.DataFrame({c: rng.choice(v, 3000) for c, v in new.items()})
    frame.loc[::7, "x"] = np.nan
    for batch in (frame, frame.astype(object)):
        hashed = enc.transform(batch)
        reference = OneHotEncoder.transform(enc, batch)
        assert hashed.has_sorted_indices and hashed.dtype == reference.dtype
        assert (hashed != reference).nnz == 0 and hashed.shape == reference.shape


def test_single_record_fast_path_gives_the_dataframe_paths_probabilities(toy) -> None:
    from taxonomist.features.columns import ColumnView
    from taxonomist.models.train import train

    model = train(toy, target="label", trials=2, families=["linear_svm", "logreg"]).model
    records = [
        {"title": "pasta recipe with garlic", "store": "eu", "price": 3.0},
        {"title": "", "store": "mars", "price": None},  # unseen level, empty text, no price
        {"title": None, "store": None, "price": "7"},
    ]
    fast = model._inputs(records)
    assert isinstance(fast, ColumnView)
    slow = model.prepare(pd.DataFrame(records))
    assert np.allclose(model._proba(fast), model._proba(slow), atol=1e-6)
    assert model.predict(records[0])[0] == "cooking"


def test_big_batch_on_threads_gives_the_serial_probabilities(toy, monkeypatch) -> None:
    from taxonomist.models import model as model_module
    from taxonomist.models.train import train

    model = train(toy, target="label", trials=2, families=["linear_svm", "logreg"]).model
    batch = pd.concat([toy] * 30, ignore_index=True)  # 7,200 rows: 4 chunks of 1,800
    assert model._rows_in_parallel()
    parallel = model.predict_proba(batch).to_numpy()
    monkeypatch.setattr(model_module.os, "sched_getaffinity", lambda _: {0})  # one core
    serial = model.predict_proba(batch).to_numpy()
    assert np.array_equal(parallel, serial)
    assert np.allclose(parallel[: len(toy)], parallel[len(toy) : 2 * len(toy)])


def test_fast_path_with_integer_codes_and_no_text() -> None:
    from taxonomist.features.columns import ColumnView
    from taxonomist.models.train import train

    rng = np.random.default_rng(5)
    n = 400
    table = pd.DataFrame(
        {
            "slot": rng.integers(0, 6, n),
            "site": rng.choice(["a1", "b2", "c3", "d4"], n),
            "size": rng.normal(size=n),
        }
    )
    table["click"] = np.where((table["slot"] % 2 == 0) ^ (table["site"] == "a1"), "yes", "no")
    model = train(table, target="click", trials=1, families=["logreg"]).model
    assert "num_codes" in model.blocks.fitted
    records = [
        {"slot": 2, "site": "a1", "size": 0.3},
        {"slot": 9.0, "site": "zz", "size": None},
        {"slot": None, "site": None, "size": "1.5"},
    ]
    fast = model._inputs(records)
    assert isinstance(fast, ColumnView)
    slow = model.prepare(pd.DataFrame(records))
    assert np.allclose(model._proba(fast), model._proba(slow), atol=1e-6)


@pytest.mark.parametrize("labels", [["yes", "no"], ["a", "b", "c"]], ids=["binary", "multiclass"])
def test_count_and_target_encoder_lookups_equal_their_dataframe_paths(labels) -> None:
    from taxonomist.features.categorical import CategoryStrings, CountEncoder, target_encoder
    from taxonomist.features.columns import ColumnView

    rng = np.random.default_rng(6)
    train = pd.DataFrame(
        {"x": rng.choice(["a", "b", "c", "d"], 300), "y": rng.choice(["p", "q", "r"], 300)}
    )
    train.loc[[3, 7, 11], "y"] = None
    target = rng.choice(labels, 300)
    new = {
        "x": np.array(["a", "unseen", None, "d"], dtype=object),
        "y": np.array([None, "q", "zzz", "r"], dtype=object),
    }
    for encoder in (CountEncoder(), target_encoder(0), CategoryStrings()):
        encoder.fit(train, target)
        assert encoder.accepts_column_view
        fast = np.asarray(encoder.transform(ColumnView(new)))
        slow = np.asarray(encoder.transform(pd.DataFrame(new)))
        assert fast.shape == slow.shape, type(encoder).__name__
        assert (fast == slow).all(), type(encoder).__name__
    # An unseen level gets the training mean of the target, not another level's encoding.
    encoded = target_encoder(0).fit(train, target).transform(ColumnView(new))
    assert not np.allclose(encoded[1, : encoded.shape[1] // 2], encoded[0, : encoded.shape[1] // 2])


def test_single_record_fast_path_covers_booster_blocks() -> None:
    from taxonomist.features.columns import ColumnView
    from taxonomist.models.train import train

    rng = np.random.default_rng(7)
    n = 600
    table = pd.DataFrame(
        {
            "site": rng.choice(["a1", "b2", "c3", "d4", "e5"], n),
            "device": rng.choice(["phone", "tablet", None], n),
            "size": rng.normal(size=n),
            "title": rng.choice(["red shoes", "blue shirt", "green hat", ""], n),
        }
    )
    table["click"] = np.where((table["site"] == "a1") ^ (table["size"] > 0.5), "yes", "no")
    model = train(table, target="click", trials=2, families=["lightgbm", "catboost"]).model
    assert {m.family for m in model.members} <= {"lightgbm", "catboost"}
    records = [
        {"site": "a1", "device": "phone", "size": 0.9, "title": "red shoes"},
        {"site": "zz", "device": None, "size": None, "title": ""},
        {"site": None, "device": "watch", "size": "-1.5", "title": None},
    ]
    fast = model._inputs(records)
    assert isinstance(fast, ColumnView)
    slow = model.prepare(pd.DataFrame(records))
    assert np.allclose(model._proba(fast), model._proba(slow), atol=1e-6)
