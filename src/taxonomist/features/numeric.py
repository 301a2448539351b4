"""Numeric features for linear models (imputed, log-compressed, standardised, shrunk) and for
trees (as they are, NaN kept)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.validation import check_is_fitted

from taxonomist.features.columns import ColumnView


def _as_float(X: Any) -> np.ndarray:
    if isinstance(X, pd.DataFrame):
        return X.to_numpy(dtype=np.float64, na_value=np.nan)
    if isinstance(X, ColumnView):
        return np.column_stack([np.asarray(X[c], dtype=np.float64) for c in X.columns])
    return np.asarray(X, dtype=np.float64)


class ScaledNumeric(TransformerMixin, BaseEstimator):
    """Median imputation with missing-value indicators, a signed log, standardisation, then
    clipping to [-4, 4] and a shrink so the block's norm is near that of one TF-IDF row.

    Counts and sizes (downloads, bytes, prices) span orders of magnitude: the signed log keeps
    one huge value from dominating a linear model. Unshrunk standardised values slowed
    LinearSVC's solver sixfold (349 vs 38 iterations on the app-store demo) for no gain.
    One estimator instead of a four-step pipeline: the pipeline's per-step checks cost ~2 ms
    when predicting one record, this costs ~0.05 ms.
    """

    accepts_column_view = True

    def fit(self, X: Any, y: Any = None) -> ScaledNumeric:
        x = _as_float(X)
        self.n_features_in_ = x.shape[1]
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        missing = np.isnan(x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: median 0
            self.medians_ = np.nan_to_num(
                np.nanmedian(x, axis=0) if len(x) else np.zeros(x.shape[1])
            )
        self.indicator_columns_ = np.flatnonzero(missing.any(axis=0))
        logged = self._log(np.where(missing, self.medians_, x))
        self.mean_ = logged.mean(axis=0) if len(logged) else np.zeros(x.shape[1])
        std = logged.std(axis=0) if len(logged) else np.ones(x.shape[1])
        self.scale_ = np.where(std > 0, std, 1.0)
        return self

    @staticmethod
    def _log(x: np.ndarray) -> np.ndarray:
        return np.sign(x) * np.log1p(np.abs(x))

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "medians_")
        x = _as_float(X)
        missing = np.isnan(x)
        z = (self._log(np.where(missing, self.medians_, x)) - self.mean_) / self.scale_
        z = np.hstack([z, missing[:, self.indicator_columns_].astype(np.float64)])
        z = np.clip(z, -4.0, 4.0)
        return (z / (2.0 * np.sqrt(max(z.shape[1], 1)))).astype(np.float32)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "medians_")
        names = list(
            getattr(self, "feature_names_in_", [f"x{i}" for i in range(self.n_features_in_)])
        )
        return np.array(
            names + [f"missing({names[i]})" for i in self.indicator_columns_], dtype=object
        )


def scaled_numeric() -> ScaledNumeric:
    """Numeric features for linear models and neural heads."""
    return ScaledNumeric()


def _to_float(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


class RawNumeric(FunctionTransformer):
    """:func:`raw_numeric`, also for :class:`ColumnView` input (the single-record path)."""

    accepts_column_view = True

    def transform(self, X: Any) -> Any:
        if isinstance(X, ColumnView):
            return _as_float(X).astype(np.float32)
        return super().transform(X)


def raw_numeric() -> FunctionTransformer:
    """For trees: values as they are; NaN stays NaN (LightGBM and CatBoost route it)."""
    return RawNumeric(_to_float, feature_names_out="one-to-one")
