"""What training checks before it searches: the config's columns exist in the table, the
click-through options fit it, and the table is usable (``data/validate.py``). ``train()``
and ``taxonomist validate`` (a pipeline's first stage) run the same checks, here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from taxonomist.data.schema import ColumnRole, Schema, infer_column_roles, require_column
from taxonomist.data.validate import ValidationReport, validate_training_table
from taxonomist.errors import DataError, InvalidParameterError, MissingExtraError
from taxonomist.features.ctr import CtrPlan, plan_ctr
from taxonomist.models.config import TrainConfig


@dataclass
class TableCheck:
    """A table that passed: the rows training uses, the column roles, what validation found
    and changed, the time column (given, or guessed from the roles; ``None`` without one)
    and the click-through plan (``None`` without ``ctr`` or a time column)."""

    table: pd.DataFrame
    schema: Schema
    report: ValidationReport
    ctr_plan: CtrPlan | None
    time_column: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``validate --report`` contract."""
        return {
            "ok": True,
            "target": self.schema.target,
            "time_column": self.time_column,
            "roles": {c: str(r) for c, r in self.schema.roles.items()},
            **self.report.to_dict(),
        }


def forced_roles(config: TrainConfig) -> dict[str, Any]:
    """The column roles ``config`` sets: ``roles``, the ``text`` columns, the time column."""
    out: dict[str, Any] = dict(config.roles or {})
    for col in config.text or []:
        out[col] = ColumnRole.TEXT
    if config.time_column:
        out[config.time_column] = ColumnRole.TIME
    return out


def check_training_table(df: pd.DataFrame, config: TrainConfig, *, n_splits: int = 5) -> TableCheck:
    """Check ``df`` for training with ``config``; raises a ``TaxonomistError`` naming the
    column or key to fix when training could not go on."""
    require_column(config.target, [str(c) for c in df.columns], what="target")
    schema = infer_column_roles(df, config.target, forced_roles(config))
    # A time column the roles guess (a YYMMDDHH 'hour', a 'created_at') counts as one given.
    time_column = config.time_column or next(iter(schema.time), None)
    ctr_plan = None
    if config.ctr is not None or time_column is not None:
        ctr_plan = plan_ctr(config.ctr, time_column, config.time_format, df)
    image_warnings = check_images(df, schema, image_folder(config), blank=True)
    df, schema, report = validate_training_table(df, schema, n_splits=n_splits)
    report.warnings += image_warnings
    return TableCheck(df, schema, report, ctr_plan, time_column)


# An image column with fewer readable images than this share of its non-empty cells is
# refused: its paths are most likely relative to another folder.
MIN_READABLE_IMAGES = 0.5


def image_folder(config: TrainConfig) -> Path | None:
    """The folder image paths are relative to: ``images``, else the data file's folder
    (None: the working directory)."""
    from taxonomist.data.archive import data_folder

    if config.images:
        return Path(config.images)
    return data_folder(Path(config.data)) if config.data else None


def check_images(
    df: pd.DataFrame, schema: Schema, root: Path | None, *, blank: bool = False
) -> list[str]:
    """Warnings naming the rows (0-based, as in the file) whose image cannot be used (with
    ``blank``, those cells of ``df`` are emptied: they count as missing images); a
    ``DataError`` when most of a column's images cannot."""
    if not schema.image:
        return []
    from taxonomist.embed.image import image_problems, installed, is_missing

    if not installed():
        raise MissingExtraError("Image columns", "torch", "efficientnet_lite_pytorch")
    if root is not None and not root.is_dir():
        raise InvalidParameterError(
            f"The image folder '{root}' does not exist: give the folder the image paths are "
            "relative to (--images DIR), or a zip holding the table and its images."
        )
    warnings = []
    for col in schema.image:
        values = df[col].tolist()
        problems = image_problems(values, root)
        given = sum(not is_missing(v) for v in values)
        shown = "; ".join(f"row {i}: {m}" for i, m in problems[:5])
        more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        if given == 0 or given - len(problems) < MIN_READABLE_IMAGES * given:
            raise DataError(
                f"Only {given - len(problems)} of the {given} images in column '{col}' can "
                f"be read ({shown}{more}). Paths are relative to the image folder "
                f"('{(root or Path.cwd()).name}', the data file's unless given): give theirs "
                f"with --images DIR, train on a zip of the table and its images, or set "
                f"--role {col}=ignore to train without them.",
                details={
                    "column": col,
                    "problems": [{"row": i, "error": m} for i, m in problems[:100]],
                },
            )
        if problems and blank:
            df.loc[df.index[[i for i, _ in problems]], col] = None
        if problems:
            warnings.append(
                f"{len(problems)} of the {given} images in '{col}' cannot be used and count "
                f"as missing: {shown}{more}."
            )
    return warnings


# A sampled class keeps at least this many rows: the folds need one in each.
SAMPLE_MIN_PER_CLASS = 5


def stratified_sample(df: pd.DataFrame, target: str, n: int, seed: int) -> pd.DataFrame:
    """About ``n`` rows of ``df``, every class in its share and with at least
    :data:`SAMPLE_MIN_PER_CLASS` rows (all it has when fewer), in the table's order."""
    if len(df) <= n:
        return df
    rng = np.random.default_rng(seed)
    labels = df[target].astype(str).to_numpy()
    _, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
    keep = np.minimum(counts, np.maximum(np.round(counts * n / len(df)), SAMPLE_MIN_PER_CLASS))
    rows = np.concatenate(
        [rng.choice(np.flatnonzero(codes == c), int(k), replace=False) for c, k in enumerate(keep)]
    )
    return df.iloc[np.sort(rows)].reset_index(drop=True)
