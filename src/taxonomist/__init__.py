"""Taxonomist: from a table of records to a tuned, tracked, registered classifier.

>>> import taxonomist
>>> result = taxonomist.train("apps.csv", target="prime_genre", name="apps")   # doctest: +SKIP
>>> model = taxonomist.load("apps@champion")                                     # doctest: +SKIP
>>> model.predict({"track_name": "Chess Pro", "app_desc": "Play chess online"})   # doctest: +SKIP

Importing the package is cheap: it creates no folder, opens no database and configures no
logging; the heavy modules load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from taxonomist.models.model import TaxonomistModel
    from taxonomist.models.train import TrainResult


def train(data: Any, target: str, **kwargs: Any) -> TrainResult:
    """Train a classifier; see :func:`taxonomist.models.train.train` for the options."""
    from taxonomist.models.train import train as _train

    return _train(data, target, **kwargs)


def load(ref: str) -> TaxonomistModel:
    """Load a registered model: ``name`` (champion or latest), ``name@alias`` or
    ``name/version``."""
    from taxonomist.registry import load_model

    return load_model(ref)


__all__ = ["__version__", "load", "train"]
