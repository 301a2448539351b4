"""Candidate model families: which feature blocks each uses, its search space, its estimator.

Every estimator exposes ``predict_proba`` over the encoded classes ``0..K-1``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.naive_bayes import ComplementNB
from sklearn.neural_network import MLPClassifier
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data


@dataclass(frozen=True)
class Task:
    """What a family needs to know about the problem to size itself."""

    n_rows: int
    n_classes: int
    seed: int
    n_jobs: int


class DeadlineReached(Exception):
    """A model stopped early (trees not added, classes not fitted): the search ran out of time."""


SVM_TOL = 1e-3
SVM_MAX_ITER = 2000


class SoftmaxLinearSVC(ClassifierMixin, BaseEstimator):
    """A linear SVM whose decision values become probabilities through a softmax.

    LinearSVC is the strongest fast linear model on sparse n-grams but has no probabilities;
    the softmax's temperature is then fitted on out-of-fold predictions with the rest of the
    ensemble, which is far cheaper than scikit-learn's cross-validated calibration.

    It solves LinearSVC's problem (squared hinge, L2, liblinear's regularized intercept and
    one-vs-rest class weights) with its own dual coordinate descent (``_svm.pyx``): to the
    same tolerance, and deterministic. liblinear's coordinate order comes from one generator
    shared by the process, so its one-vs-rest problems on threads changed the model from run
    to run; here each problem owns its generator, so ``n_jobs`` threads (the solver releases
    the GIL) give the same model as one. Before each class a ``deadline`` is checked, so a
    search can stop a fit in time. On 18 review classes (``bench/linear_svm.py``) it is 1.8x
    faster than liblinear on one thread and 3.3x on two, at the same macro-F1.
    """

    def __init__(
        self,
        C: float = 0.5,
        class_weight: str | dict[Any, float] | None = "balanced",
        random_state: int | None = 0,
        n_jobs: int = 1,
    ) -> None:
        self.C = C
        self.class_weight = class_weight
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X: Any, y: Any, deadline: float | None = None) -> SoftmaxLinearSVC:
        X, y = validate_data(self, X, y, accept_sparse="csr", reset=True)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        X = _csr64(X)
        # liblinear's weights: both classes' when there are two, else the positive class's.
        weights = compute_class_weight(self.class_weight, classes=self.classes_, y=y)

        def one(c: int) -> tuple[np.ndarray, float]:
            positive = codes == c
            w_neg = weights[0] if len(self.classes_) == 2 else 1.0
            return self._solve(X, X.data, positive, float(weights[c]), float(w_neg))

        self._one_vs_rest(one, deadline, "linear SVM")
        return self

    def _one_vs_rest(
        self, one: Callable[[int], tuple[np.ndarray, float]], deadline: float | None, name: str
    ) -> None:
        """``coef_`` and ``intercept_`` from ``one(c)``, class ``c`` against the rest (only
        class 1 with two classes), on ``n_jobs`` threads."""
        k = len(self.classes_)
        if k < 2:
            raise ValueError(f"{name}: the labels hold one class ({self.classes_[0]!r}); need two")
        targets = [1] if k == 2 else list(range(k))

        def timed(c: int) -> tuple[np.ndarray, float]:
            if deadline is not None and time.perf_counter() > deadline:
                raise DeadlineReached(f"{name} stopped at the deadline (class {c} of {k})")
            return one(c)

        if self.n_jobs > 1 and len(targets) > 1:
            with ThreadPoolExecutor(max_workers=self.n_jobs) as pool:
                parts = list(pool.map(timed, targets))
        else:
            parts = [timed(c) for c in targets]
        self.coef_ = np.vstack([c for c, _ in parts])
        self.intercept_ = np.array([b for _, b in parts])

    def _solve(
        self,
        X: sparse.csr_matrix,
        data: np.ndarray,
        positive: np.ndarray,
        w_pos: float,
        w_neg: float,
    ) -> tuple[np.ndarray, float]:
        """One binary SVM on the rows of ``X`` (with values ``data``): its weights and bias."""
        from taxonomist.models._svm import dual_cd

        sign = np.where(positive, 1, -1).astype(np.int8)
        # A zero weight would divide by zero in the solver; a tiny one drops the rows as well.
        cost = np.maximum(np.where(positive, self.C * w_pos, self.C * w_neg), 1e-12)
        w = np.zeros(X.shape[1] + 1, dtype=np.float64)
        seed = 0 if self.random_state is None else int(self.random_state)
        passes = dual_cd(data, X.indices, X.indptr, sign, cost, 1.0, SVM_TOL, SVM_MAX_ITER, seed, w)
        if passes >= SVM_MAX_ITER:
            warnings.warn(
                f"the linear SVM did not converge in {SVM_MAX_ITER} passes; its C "
                f"({self.C:g}) may be too large for this data",
                ConvergenceWarning,
                stacklevel=3,
            )
        return w[:-1], float(w[-1])

    def decision_function(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, accept_sparse="csr", reset=False)
        d = np.asarray(X @ self.coef_.T) + self.intercept_
        return d[:, 0] if d.shape[1] == 1 else d

    def predict_proba(self, X: Any) -> np.ndarray:
        d = self.decision_function(X)
        if d.ndim == 1:
            d = np.column_stack([-d, d]) / 2
        d = d * 4.0
        d -= d.max(axis=1, keepdims=True)
        e = np.exp(d)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        d = self.decision_function(X)
        return self.classes_[(d > 0).astype(int) if d.ndim == 1 else d.argmax(axis=1)]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _csr64(X: Any) -> sparse.csr_matrix:
    """``X`` as the solver reads it: CSR of float64, int32 column indices, int64 row
    pointers (copies only what is not so already)."""
    X = sparse.csr_matrix(X, dtype=np.float64)
    X.sum_duplicates()
    X.indices = np.ascontiguousarray(X.indices, dtype=np.int32)
    X.indptr = np.ascontiguousarray(X.indptr, dtype=np.int64)
    X.data = np.ascontiguousarray(X.data)
    return X


class NBSVMClassifier(SoftmaxLinearSVC):
    """NB-SVM (Wang & Manning, 2012): a linear SVM on features scaled by their naive-Bayes
    log-count ratio, one-vs-rest.

    For class ``c`` the ratio ``r = log((p / |p|_1) / (q / |q|_1))``, with ``p`` (``q``) the
    ``alpha``-smoothed counts of rows of (not of) class ``c`` where the feature is present,
    says how much more often a feature occurs in the class (columns with negative values, the
    scaled numbers, are not counts and keep ``r = 1``); the SVM on ``X * r`` starts from
    the naive-Bayes evidence and corrects it, which beats both on short texts and sentiment.
    ``X * r`` then ``w`` is ``X`` then ``w * r``: the fitted ``coef_`` folds ``r`` in, so a
    prediction costs what a plain linear model's does.
    """

    def __init__(
        self,
        C: float = 0.3,
        alpha: float = 1.0,
        class_weight: str | dict[Any, float] | None = "balanced",
        random_state: int | None = 0,
        n_jobs: int = 1,
    ) -> None:
        super().__init__(C=C, class_weight=class_weight, random_state=random_state, n_jobs=n_jobs)
        self.alpha = alpha

    def fit(self, X: Any, y: Any, deadline: float | None = None) -> NBSVMClassifier:
        X, y = validate_data(self, X, y, accept_sparse="csr", reset=True)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        k = len(self.classes_)
        X = _csr64(X)
        present = X.copy()
        present.data = (present.data > 0).astype(np.float64)
        rows_of = sparse.csr_matrix(
            (np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(k, len(codes))
        )
        by_class = np.asarray((rows_of @ present).todense())  # rows with the feature, per class
        # Columns with negative values (scaled numbers) are not counts: they keep r = 1.
        signed = np.zeros(X.shape[1], dtype=bool)
        signed[X.indices[X.data < 0]] = True
        total = by_class.sum(axis=0)
        counts = np.bincount(codes, minlength=k)

        def one(c: int) -> tuple[np.ndarray, float]:
            p = by_class[c] + self.alpha
            q = total - by_class[c] + self.alpha
            r = np.log((p / p.sum()) / (q / q.sum()))
            r[signed] = 1.0
            w_pos, w_neg = self._binary_weights(c, counts)
            coef, bias = self._solve(X, X.data * r[X.indices], codes == c, w_pos, w_neg)
            return coef * r, bias

        self._one_vs_rest(one, deadline, "NB-SVM")
        return self

    def _binary_weights(self, c: int, counts: np.ndarray) -> tuple[float, float]:
        """Weights of class ``c`` and of the rest in its one-vs-rest problem."""
        n = float(counts.sum())
        if self.class_weight == "balanced":
            return n / (2.0 * counts[c]), n / (2.0 * (n - counts[c]))
        if isinstance(self.class_weight, dict):
            labels = list(self.classes_)
            rest = labels[1 - c] if len(labels) == 2 else None
            return (
                float(self.class_weight.get(labels[c], 1.0)),
                float(self.class_weight.get(rest, 1.0)) if rest is not None else 1.0,
            )
        return 1.0, 1.0


class LightGBMModel(ClassifierMixin, BaseEstimator):
    """LightGBM's classifier with an optional wall-clock deadline for ``fit``."""

    def __init__(self, **params: Any) -> None:
        self.params = params

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"params": self.params}

    def fit(self, X: Any, y: Any, deadline: float | None = None) -> LightGBMModel:
        from lightgbm import LGBMClassifier
        from lightgbm.callback import EarlyStopException

        def stop_at_deadline(env: Any) -> None:
            if deadline is not None and time.perf_counter() > deadline:
                raise EarlyStopException(env.iteration, env.evaluation_result_list or [])

        self.model_ = LGBMClassifier(**self.params)
        self.model_.fit(X, y, callbacks=[stop_at_deadline])
        # Usable even when stopped early (fewer trees): a refit at the deadline keeps it.
        self.classes_ = self.model_.classes_
        self.booster_ = self.model_.booster_
        if deadline is not None and time.perf_counter() > deadline:
            raise DeadlineReached("LightGBM stopped at the deadline")
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "model_")
        # One thread for a handful of rows: starting threads costs more than the trees.
        threads = 1 if X.shape[0] < 64 else self.params.get("n_jobs", 2)
        return np.asarray(self.model_.predict_proba(X, num_threads=threads))

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def _lgbm(params: dict[str, Any], task: Task) -> Any:
    return LightGBMModel(
        objective="binary" if task.n_classes == 2 else "multiclass",
        n_estimators=params["n_estimators"],
        learning_rate=params["learning_rate"],
        num_leaves=params["num_leaves"],
        min_child_samples=params["min_child_samples"],
        subsample=params["subsample"],
        subsample_freq=1,
        colsample_bytree=params["colsample_bytree"],
        reg_lambda=params["reg_lambda"],
        class_weight=params.get("class_weight"),
        random_state=task.seed,
        n_jobs=task.n_jobs,
        max_bin=63,
        deterministic=True,
        force_col_wise=True,
        verbose=-1,
    )


class CatBoostModel(ClassifierMixin, BaseEstimator):
    """CatBoost on a DataFrame whose ``object`` columns are its native categorical features."""

    def __init__(
        self,
        iterations: int = 500,
        depth: int = 6,
        learning_rate: float = 0.08,
        l2_leaf_reg: float = 3.0,
        auto_class_weights: str | None = None,
        random_state: int = 0,
        thread_count: int = 2,
    ) -> None:
        self.iterations = iterations
        self.depth = depth
        self.learning_rate = learning_rate
        self.l2_leaf_reg = l2_leaf_reg
        self.auto_class_weights = auto_class_weights
        self.random_state = random_state
        self.thread_count = thread_count

    def fit(self, X: pd.DataFrame, y: Any, deadline: float | None = None) -> CatBoostModel:
        from catboost import CatBoostClassifier

        class StopAtDeadline:
            def after_iteration(self, info: Any) -> bool:
                return deadline is None or time.perf_counter() < deadline

        cat_features = [
            i for i, t in enumerate(X.dtypes) if t is object or pd.api.types.is_string_dtype(t)
        ]
        self.model_ = CatBoostClassifier(
            iterations=self.iterations,
            depth=self.depth,
            learning_rate=self.learning_rate,
            l2_leaf_reg=self.l2_leaf_reg,
            auto_class_weights=self.auto_class_weights,
            random_seed=self.random_state,
            thread_count=self.thread_count,
            verbose=False,
            allow_writing_files=False,
            cat_features=cat_features,
        )
        self.model_.fit(X, np.asarray(y), callbacks=[StopAtDeadline()])
        self.classes_ = np.asarray(self.model_.classes_)  # usable with fewer trees, as above
        if deadline is not None and time.perf_counter() > deadline:
            raise DeadlineReached("CatBoost stopped at the deadline")
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "model_")
        return np.asarray(self.model_.predict_proba(X))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


@dataclass(frozen=True)
class Family:
    """A model family: its feature blocks, its search space and its estimator factory."""

    name: str
    blocks: tuple[str, ...]
    layout: str  # "sparse", "dense" or "frame" (a DataFrame for CatBoost)
    suggest: Callable[[optuna.Trial, Task], dict[str, Any]]
    build: Callable[[dict[str, Any], Task], Any]
    defaults: dict[str, Any] = field(default_factory=dict)
    requires: tuple[str, ...] = ()  # blocks that must exist for the family to make sense
    accepts_deadline: bool = False  # fit(X, y, deadline=...) stops adding trees in time


def _suggest_svm(trial: optuna.Trial, task: Task) -> dict[str, Any]:
    return {
        "C": trial.suggest_float("linear_svm.C", 0.02, 3.0, log=True),
        "class_weight": trial.suggest_categorical("linear_svm.class_weight", ["balanced", "none"]),
    }


def _build_svm(p: dict[str, Any], task: Task) -> Any:
    cw = None if p["class_weight"] == "none" else p["class_weight"]
    return SoftmaxLinearSVC(C=p["C"], class_weight=cw, random_state=task.seed, n_jobs=task.n_jobs)


def _suggest_nbsvm(trial: optuna.Trial, task: Task) -> dict[str, Any]:
    return {
        "C": trial.suggest_float("nb_svm.C", 0.02, 3.0, log=True),
        "alpha": trial.suggest_float("nb_svm.alpha", 0.1, 2.0, log=True),
        "class_weight": trial.suggest_categorical("nb_svm.class_weight", ["balanced", "none"]),
    }


def _build_nbsvm(p: dict[str, Any], task: Task) -> Any:
    cw = None if p["class_weight"] == "none" else p["class_weight"]
    return NBSVMClassifier(
        C=p["C"], alpha=p["alpha"], class_weight=cw, random_state=task.seed, n_jobs=task.n_jobs
    )


def _suggest_logreg(trial: optuna.Trial, task: Task) -> dict[str, Any]:
    return {
        "alpha": trial.suggest_float("logreg.alpha", 1e-6, 1e-3, log=True),
        "class_weight": trial.suggest_categorical("logreg.class_weight", ["balanced", "none"]),
    }


def _build_logreg(p: dict[str, Any], task: Task) -> Any:
    # Averaged SGD on the log loss: lbfgs needs ~6 s a fit for 23 classes on 2k app
    # descriptions, SGD 0.2 s for nearly the same accuracy; 10 epochs score as 50 do
    # (reviews, 20 classes: macro-F1 0.472 vs 0.471) in half the time.
    cw = None if p["class_weight"] == "none" else p["class_weight"]
    return SGDClassifier(
        loss="log_loss",
        alpha=p["alpha"],
        class_weight=cw,
        average=True,
        max_iter=10,
        tol=1e-3,
        random_state=task.seed,
        n_jobs=task.n_jobs,
    )


def _suggest_nb(trial: optuna.Trial, task: Task) -> dict[str, Any]:
    return {"alpha": trial.suggest_float("complement_nb.alpha", 0.01, 1.0, log=True)}


def _build_nb(p: dict[str, Any], task: Task) -> Any:
    return ComplementNB(alpha=p["alpha"])


def _suggest_lgbm(trial: optuna.Trial, task: Task) -> dict[str, Any]:
    return {
        "n_estimators": trial.suggest_int("lightgbm.n_estimators", 50, 500, step=50),
        "learning_rate": trial.suggest_float("lightgbm.learning_rate", 0.02, 0.2, log=True),
        "num_leaves": trial.suggest_int("lightgbm.num_leaves", 8, 96, log=True),
        "min_child_samples": trial.suggest_int("lightgbm.min_child_samples", 5, 80, log=True),
        "subsample": trial.suggest_float("lightgbm.subsample", 0.6, 1.0),
        "colsample_bytree": trial.suggest_float("lightgbm.colsample_bytree", 0.3, 1.0),
        "reg_lambda": trial.suggest_float("lightgbm.reg_lambda", 1e-3, 10.0, log=True),
    }


def _suggest_catboost(trial: optuna.Trial, task: Task) -> dict[str, Any]:
    return {
        "iterations": trial.suggest_int("catboost.iterations", 200, 800, step=100),
        "depth": trial.suggest_int("catboost.depth", 4, 8),
        "learning_rate": trial.suggest_float("catboost.learning_rate", 0.03, 0.3, log=True),
        "l2_leaf_reg": trial.suggest_float("catboost.l2_leaf_reg", 1.0, 10.0, log=True),
    }


def _build_catboost(p: dict[str, Any], task: Task) -> Any:
    return CatBoostModel(
        iterations=p["iterations"],
        depth=p["depth"],
        learning_rate=p["learning_rate"],
        l2_leaf_reg=p["l2_leaf_reg"],
        random_state=task.seed,
        thread_count=task.n_jobs,
    )


def _suggest_fm(trial: optuna.Trial, task: Task) -> dict[str, Any]:
    return {
        "n_factors": trial.suggest_categorical("fm.n_factors", [4, 8, 16]),
        "alpha": trial.suggest_float("fm.alpha", 1e-4, 1e-2, log=True),
        "alpha_v": trial.suggest_float("fm.alpha_v", 1e-3, 1e-1, log=True),
    }


def _build_fm(p: dict[str, Any], task: Task) -> Any:
    from taxonomist.models.fm import FactorizationMachine

    return FactorizationMachine(
        n_factors=p["n_factors"], alpha=p["alpha"], alpha_v=p["alpha_v"], random_state=task.seed
    )


def _suggest_embed(trial: optuna.Trial, task: Task) -> dict[str, Any]:
    head = trial.suggest_categorical("embed.head", ["logreg", "mlp"])
    if head == "logreg":
        return {"head": head, "C": trial.suggest_float("embed.C", 0.1, 100.0, log=True)}
    return {
        "head": head,
        "hidden": trial.suggest_categorical("embed.hidden", [128, 256, 512]),
        "alpha": trial.suggest_float("embed.alpha", 1e-5, 1e-2, log=True),
    }


def _build_embed(p: dict[str, Any], task: Task) -> Any:
    if p["head"] == "logreg":
        return LogisticRegression(
            C=p["C"], class_weight="balanced", max_iter=500, random_state=task.seed
        )
    return MLPClassifier(
        hidden_layer_sizes=(p["hidden"],),
        alpha=p["alpha"],
        early_stopping=True,
        max_iter=200,
        random_state=task.seed,
    )


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family(
            "linear_svm",
            ("text", "onehot", "num_scaled", "num_codes", "ctr_hashed", "ctr_counts"),
            "sparse",
            _suggest_svm,
            _build_svm,
            {"C": 0.5, "class_weight": "balanced"},
            accepts_deadline=True,
        ),
        Family(
            "logreg",
            ("text", "onehot", "num_scaled", "num_codes", "ctr_hashed", "ctr_counts"),
            "sparse",
            _suggest_logreg,
            _build_logreg,
            {"alpha": 2e-5, "class_weight": "balanced"},
        ),
        Family(
            "nb_svm",
            ("text", "onehot", "num_scaled", "num_codes"),
            "sparse",
            _suggest_nbsvm,
            _build_nbsvm,
            {"C": 0.3, "alpha": 1.0, "class_weight": "balanced"},
            requires=("text",),
            accepts_deadline=True,
        ),
        Family(
            "complement_nb",
            ("text", "onehot"),
            "sparse",
            _suggest_nb,
            _build_nb,
            {"alpha": 0.1},
            requires=("text",),
        ),
        Family(
            "lightgbm",
            (
                "num_raw",
                "cat_count",
                "cat_target",
                "text_svd",
                "text_oof",
                "ctr_counts",
                "ctr_cross_target",
                "ctr_time",
            ),
            "dense",
            _suggest_lgbm,
            _lgbm,
            accepts_deadline=True,
            defaults={
                "n_estimators": 150,
                "learning_rate": 0.1,
                "num_leaves": 15,
                "min_child_samples": 20,
                "subsample": 0.9,
                "colsample_bytree": 0.6,
                "reg_lambda": 0.1,
            },
        ),
        Family(
            "catboost",
            ("num_raw", "cat_str", "text_oof", "ctr_counts", "ctr_cross_str", "ctr_time"),
            "frame",
            _suggest_catboost,
            _build_catboost,
            {"iterations": 400, "depth": 6, "learning_rate": 0.1, "l2_leaf_reg": 3.0},
            requires=("cat_str",),
            accepts_deadline=True,
        ),
        Family(
            "fm",
            ("onehot", "num_codes", "num_scaled"),
            "sparse",
            _suggest_fm,
            _build_fm,
            {"n_factors": 8, "alpha": 1.5e-3, "alpha_v": 2e-2},
            accepts_deadline=True,
        ),
        Family(
            "embed",
            ("embed", "num_scaled", "onehot"),
            "dense",
            _suggest_embed,
            _build_embed,
            {"head": "logreg", "C": 10.0},
            requires=("embed",),
        ),
    ]
}


def default_params_as_trial(family: Family) -> dict[str, Any]:
    """The family's defaults in Optuna's flat parameter names (for ``enqueue_trial``)."""
    return {"family": family.name, **{f"{family.name}.{k}": v for k, v in family.defaults.items()}}


def to_frame(outputs: dict[str, Any], names: tuple[str, ...]) -> pd.DataFrame:
    """Block outputs side by side in one DataFrame (categorical strings stay strings)."""
    frames = []
    for n in names:
        out = outputs[n]
        if isinstance(out, pd.DataFrame):
            frames.append(
                out.reset_index(drop=True).set_axis([f"{n}:{c}" for c in out.columns], axis=1)
            )
        else:
            arr = out.toarray() if sparse.issparse(out) else np.asarray(out)
            frames.append(pd.DataFrame(arr, columns=[f"{n}:{i}" for i in range(arr.shape[1])]))
    return pd.concat(frames, axis=1)
