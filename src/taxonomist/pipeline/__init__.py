"""Pipelines around training: a DVC project whose stages validate, train and evaluate with
the ``taxonomist`` command line, versioning data, models and metrics (``pipeline init``)."""

from taxonomist.pipeline.project import PipelineProject, init_project

__all__ = ["PipelineProject", "init_project"]
