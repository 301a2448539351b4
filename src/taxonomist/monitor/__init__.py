"""Watching models at work: the prediction log, and working data compared with the training
data."""

from taxonomist.monitor.compare import compare_to_training
from taxonomist.monitor.log import PredictionLog, prediction_rows, read_log
from taxonomist.monitor.quality import Feedback, live_quality, record_feedback

__all__ = [
    "Feedback",
    "PredictionLog",
    "compare_to_training",
    "live_quality",
    "prediction_rows",
    "read_log",
    "record_feedback",
]
