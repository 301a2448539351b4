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
    from taxonomist.models.result import TrainResult


def train(data: Any = None, **options: Any) -> TrainResult:
    """Train a classifier and, when ``name`` is given, register it as a new version.

    ``options`` are :class:`~taxonomist.models.config.TrainConfig`'s fields (``target``,
    ``name``, ``time_budget``, ``trials``, ``metric``, ``families``, ``promote``, ...), or
    ``config=`` a whole TrainConfig; see :func:`taxonomist.models.train.train`.
    """
    from taxonomist.models.train import train as _train

    result = _train(data, **options)
    if result.config.name:
        from taxonomist.registry import get_registry

        result.register(get_registry())
    return result


def load(ref: str) -> TaxonomistModel:
    """Load a registered model: ``name`` (champion or latest), ``name@alias`` or
    ``name/version``."""
    from taxonomist.registry import get_registry

    return get_registry().load(ref)


__all__ = ["__version__", "load", "train"]
