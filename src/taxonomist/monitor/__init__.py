"""Watching models at work: working data compared with the training data."""

from taxonomist.monitor.compare import compare_to_training

__all__ = ["compare_to_training"]
