"""The model registry, a thin object over MLflow: register, resolve, load, alias, delete.

It stands alone: it takes a :class:`Candidate` (a model plus what to log beside it) and knows
nothing of how the model was trained.
"""

from taxonomist.registry.cache import LoadedModels, estimate_bytes
from taxonomist.registry.candidate import Candidate, Registration, Trial
from taxonomist.registry.refs import CHAMPION, ModelRef, check_name, parse_ref
from taxonomist.registry.registry import Registry, get_registry, model_not_found

__all__ = [
    "CHAMPION",
    "Candidate",
    "LoadedModels",
    "ModelRef",
    "Registration",
    "Registry",
    "Trial",
    "check_name",
    "estimate_bytes",
    "get_registry",
    "model_not_found",
    "parse_ref",
]
