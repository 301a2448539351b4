"""The MLflow pyfunc flavour: any MLflow tool (``mlflow models serve``,
``mlflow.pyfunc.load_model``) gets the label and one ``proba_<class>`` column per class."""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd


def pyfunc_output(model: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """``prediction`` and the ``proba_<class>`` columns of ``model.predict_frame(frame)``."""
    out = model.predict_frame(frame)
    return out[["prediction", *[c for c in out.columns if str(c).startswith("proba_")]]]


class TaxonomistPyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined]
    def load_context(self, context: Any) -> None:
        import joblib

        self.model = joblib.load(context.artifacts["model"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return pyfunc_output(self.model, model_input)
