"""The search of one training job on a Dask cluster of two worker processes: its trials run
on both workers, and it ends with a model as the search in one process does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def _train_in_a_task(path: str, home: str, **options: Any) -> dict[str, Any]:
    """What a training job does on a worker: train(), here without registering."""
    from taxonomist.config import Settings
    from taxonomist.models.train import train

    result = train(path, target="label", settings=Settings(home=home), **options)
    assert result.study is not None
    finished = [t for t in result.study.trials if t.state.name == "COMPLETE"]
    return {
        "trials": len(result.study.trials),
        "finished": len(finished),
        "score": result.metrics["primary"],
        "families": sorted({t.params["family"] for t in finished}),
    }


def test_a_jobs_trials_spread_over_the_workers(toy: pd.DataFrame, tmp_path: Path) -> None:
    from distributed import Client, LocalCluster, get_task_stream

    data = tmp_path / "toy.csv"
    toy.to_csv(data, index=False)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
        get_task_stream(client) as stream,
    ):
        outcome = client.submit(
            _train_in_a_task,
            str(data),
            str(tmp_path / "home"),
            trials=8,
            families=["logreg", "linear_svm", "complement_nb"],
        ).result(timeout=600)
    trials = [t for t in stream.data if t["key"].startswith("fit_folds_remote")]
    assert len(trials) == 8
    assert len({t["worker"] for t in trials}) == 2  # both workers ran trials
    assert outcome["trials"] == 8 and outcome["finished"] >= 6, outcome
    assert outcome["score"] is not None and outcome["score"] > 0.7, outcome
    assert len(outcome["families"]) == 3, outcome
