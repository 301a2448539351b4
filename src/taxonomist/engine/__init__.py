"""Where work runs: training jobs on a Dask cluster, their state in the metadata database."""

from taxonomist.engine.jobs import JobEngine, run_here, run_job

__all__ = ["JobEngine", "run_here", "run_job"]
