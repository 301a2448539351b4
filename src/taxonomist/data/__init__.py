"""Load, describe and check tables."""

from taxonomist.data.load import load_table
from taxonomist.data.profile import DatasetProfile, profile_table
from taxonomist.data.schema import ColumnRole, Schema, infer_column_roles
from taxonomist.data.validate import ValidationReport, validate_training_table

__all__ = [
    "ColumnRole",
    "DatasetProfile",
    "Schema",
    "ValidationReport",
    "infer_column_roles",
    "load_table",
    "profile_table",
    "validate_training_table",
]
