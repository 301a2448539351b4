"""Watching models at work: the prediction log, and working data compared with the training
data."""

from taxonomist.monitor.compare import compare_to_training
from taxonomist.monitor.log import PredictionLog, prediction_rows, read_log

__all__ = ["PredictionLog", "compare_to_training", "prediction_rows", "read_log"]
