"""The registry object: its bounded model cache, stored configs, and that it stands alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from taxonomist.config import Settings
from taxonomist.errors import ModelNotFoundError
from taxonomist.models.train import train
from taxonomist.registry import LoadedModels, Registry, estimate_bytes


class Weights:
    def __init__(self, mb: float) -> None:
        self.coef_ = np.zeros(int(mb * 2**20 / 8))
        self.meta = {"names": ["a", "b"], "nested": [np.zeros(10)]}


def test_estimate_counts_arrays_once() -> None:
    w = Weights(1)
    assert 2**20 <= estimate_bytes(w) < 2**20 + 10_000
    shared = [w, w, {"again": w}]
    assert estimate_bytes(shared) < 2**20 + 20_000


def test_loaded_models_evicts_least_recently_used_by_count() -> None:
    cache = LoadedModels(max_models=2, max_bytes=2**40)
    cache.put(("a", 1), Weights(0.01))
    cache.put(("b", 1), Weights(0.01))
    assert cache.get(("a", 1)) is not None  # a is now the most recently used
    assert cache.put(("c", 1), Weights(0.01)) == [("b", 1)]
    assert cache.keys() == [("a", 1), ("c", 1)]


def test_loaded_models_evicts_by_bytes_but_keeps_the_newest() -> None:
    cache = LoadedModels(max_models=10, max_bytes=3 * 2**20)
    cache.put(("a", 1), Weights(1))
    cache.put(("b", 1), Weights(1))
    assert cache.put(("c", 1), Weights(1.5)) == [("a", 1)]
    assert cache.put(("huge", 1), Weights(5)) == [("b", 1), ("c", 1)]
    assert cache.keys() == [("huge", 1)]  # alone over the limit, still kept
    assert cache.pop(lambda k: k[0] == "huge") == 1 and cache.keys() == []


def test_registry_holds_configs_and_bounded_cache(toy: pd.DataFrame, tmp_path) -> None:
    settings = Settings(home=tmp_path / "home", model_cache_size=1)
    registry = Registry(settings)
    config = {"target": "label", "trials": 1, "families": ["logreg"], "name": "toy"}
    first = train(toy, config, settings=settings)
    reg = first.register(registry, tags={"dataset_id": "7"})
    assert (reg.name, reg.version, reg.promoted) == ("toy", 1, True)
    stored = registry.config("toy/1")
    assert stored is not None
    assert stored["families"] == ["logreg"] and stored["trials"] == 1
    assert stored["time_budget"] is None and stored["name"] == "toy"
    assert registry.show("toy")["dataset_id"] == 7
    # replaying the stored config on the same data gives the same scores
    again = train(toy, stored, settings=settings)
    assert again.metrics["primary"] == pytest.approx(first.metrics["primary"])
    again.register(registry, promote=True)
    assert int(registry.resolve("toy").version) == 2
    registry.load("toy/1")
    registry.load("toy/2")
    assert registry.loaded_models() == [("toy", 2)]  # one model at most
    assert registry.unload("toy") == 1 and registry.loaded_models() == []


def test_not_found_names_only_visible_models(toy: pd.DataFrame, tmp_path) -> None:
    settings = Settings(home=tmp_path / "home")
    registry = Registry(settings)
    train(toy, target="label", trials=1, families=["logreg"]).register(registry, "secret")
    with pytest.raises(ModelNotFoundError) as err:
        registry.resolve("nope", visible={"mine"})
    assert "secret" not in err.value.message and err.value.details["models"] == []
    with pytest.raises(ModelNotFoundError, match="Registered models: secret"):
        registry.resolve("nope")
