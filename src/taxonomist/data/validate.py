"""Check a table before training and say clearly what is wrong and what will happen.

Fatal problems raise a ``DataError`` subclass; recoverable ones (rows without a label, classes
too small to split, empty columns) are fixed in a copy of the table and listed as warnings in
the :class:`ValidationReport`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from taxonomist.data.schema import ColumnRole, Schema, require_column
from taxonomist.errors import DataError, EmptyDataError, TargetError

MIN_ROWS = 10
MIN_CLASS_ROWS = 2


@dataclass
class ValidationReport:
    """What validation found: counts, warnings for the user, and what was changed."""

    n_rows: int
    n_rows_used: int
    n_classes: int
    dropped_classes: dict[str, int] = field(default_factory=dict)
    small_classes: dict[str, int] = field(default_factory=dict)
    ignored_columns: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def validate_training_table(
    df: pd.DataFrame, schema: Schema, *, n_splits: int = 5
) -> tuple[pd.DataFrame, Schema, ValidationReport]:
    """Validate ``df`` for training on ``schema.target``.

    Returns the cleaned table (unlabelled rows and too-small classes removed), the schema with
    unusable columns set to ``ignore``, and the report. Raises ``DataError`` when training
    cannot go on.
    """
    columns = [str(c) for c in df.columns]
    if schema.target is None:
        raise TargetError(
            "No target column given. Say which column holds the labels, e.g. --target category."
        )
    require_column(schema.target, columns, what="target")
    if len(df) == 0:
        raise EmptyDataError(f"The table has no rows. Give at least {MIN_ROWS} labelled rows.")
    warnings: list[str] = []
    target = df[schema.target]
    if isinstance(target.dtype, pd.StringDtype) or target.dtype == object:
        target = target.where(target.astype(str).str.strip() != "", None)
    labelled = target.notna()
    n_unlabelled = int((~labelled).sum())
    if n_unlabelled == len(df):
        raise TargetError(
            f"The target column '{schema.target}' is empty in every row. "
            "Fill in the labels, or choose another column with --target."
        )
    if n_unlabelled:
        warnings.append(
            f"{n_unlabelled} rows have no value in '{schema.target}' and are not "
            "used for training (predict on them later)."
        )
    if n_unlabelled:  # a boolean filter copies the whole table even when it keeps every row
        df = df.loc[labelled]
    labels = df[schema.target].astype(str)
    counts = labels.value_counts()
    if len(counts) < 2:
        only = counts.index[0] if len(counts) else None
        raise TargetError(
            f"The target column '{schema.target}' has only one class ('{only}') in "
            f"{int(counts.sum())} labelled rows. A classifier needs at least two classes: add "
            "rows of other classes, or choose another target.",
            details={
                "target": schema.target,
                "classes": {str(k): int(v) for k, v in counts.items()},
            },
        )
    tiny = counts[counts < MIN_CLASS_ROWS]
    dropped = {str(k): int(v) for k, v in tiny.items()}
    if dropped:
        warnings.append(
            f"{len(dropped)} classes have fewer than {MIN_CLASS_ROWS} rows and cannot be "
            f"validated, so they are left out of training: {', '.join(list(dropped)[:10])}"
            f"{' ...' if len(dropped) > 10 else ''}. Add examples of them to have them learned."
        )
        keep = ~labels.isin(list(dropped))
        df, labels = df.loc[keep], labels.loc[keep]
        counts = labels.value_counts()
        if len(counts) < 2:
            left = f"only '{counts.index[0]}' remains" if len(counts) else "no class remains"
            raise TargetError(
                f"After leaving out classes with fewer than {MIN_CLASS_ROWS} rows, {left} in "
                f"'{schema.target}'. Add rows of other classes.",
                details={"dropped_classes": dropped},
            )
    small = {str(k): int(v) for k, v in counts[counts < n_splits].items()}
    if small:
        warnings.append(
            f"{len(small)} classes have fewer than {n_splits} rows "
            f"({', '.join(f'{k}: {v}' for k, v in list(small.items())[:8])}); their scores are "
            "noisy and some validation folds will not contain them."
        )
    if len(df) < MIN_ROWS:
        raise EmptyDataError(
            f"Only {len(df)} labelled rows are usable; at least {MIN_ROWS} are needed to train "
            "and validate a classifier. Add more labelled rows.",
            details={"rows": len(df)},
        )
    schema, ignored = _check_feature_columns(df, schema, warnings)
    report = ValidationReport(
        n_rows=len(target),
        n_rows_used=len(df),
        n_classes=len(counts),
        dropped_classes=dropped,
        small_classes=small,
        ignored_columns=ignored,
        warnings=warnings,
    )
    return df.reset_index(drop=True), schema, report


def _check_feature_columns(
    df: pd.DataFrame, schema: Schema, warnings: list[str]
) -> tuple[Schema, dict[str, str]]:
    roles = dict(schema.roles)
    ignored: dict[str, str] = {}
    for col, role in schema.roles.items():
        if role not in (ColumnRole.TEXT, ColumnRole.CATEGORICAL, ColumnRole.NUMERIC):
            continue
        s = df[col]
        if role == ColumnRole.TEXT:
            if not _any_text(s):
                ignored[col] = "empty in every row"
        elif role == ColumnRole.NUMERIC and not pd.api.types.is_numeric_dtype(s):
            present = s.dropna()
            parsed = pd.to_numeric(present, errors="coerce")
            bad = present[parsed.isna()]
            if len(bad):
                examples = [str(v) for v in bad.unique()[:5]]
                raise DataError(
                    f"Column '{col}' is set as numeric but {len(bad)} of its values are not "
                    f"numbers (e.g. {examples}). Fix those values, or give the column the "
                    "role 'categorical' or 'text'.",
                    details={"column": col, "bad_values": examples, "count": len(bad)},
                )
        if s.isna().all():
            ignored[col] = "empty in every row"
    for col, reason in ignored.items():
        roles[col] = ColumnRole.IGNORE
        warnings.append(f"Column '{col}' is {reason} and is not used.")
    for col, role in schema.roles.items():
        if role == ColumnRole.CATEGORICAL and col not in ignored:
            mixed = _mixed_type_share(df[col])
            if 0.2 < mixed < 0.98:
                warnings.append(
                    f"Column '{col}' mixes numbers ({mixed:.0%}) and other values; it is "
                    "treated as categorical. Clean it, or set its role explicitly."
                )
    kept = Schema(target=schema.target, roles=roles)
    if not kept.features:
        raise DataError(
            "No usable feature column is left: every column is the target, an id, empty or "
            "constant. Give at least one text, categorical or numeric column "
            f"(roles found: {schema.to_dict()['roles']}).",
            details={"roles": schema.to_dict()["roles"]},
        )
    return kept, ignored


def _any_text(s: pd.Series, chunk: int = 10_000) -> bool:
    """Whether any cell holds more than whitespace; looks at ``chunk`` rows at a time, so a
    100 MB text column is not copied whole (it usually answers in the first chunk)."""
    for start in range(0, len(s), chunk):
        if s.iloc[start : start + chunk].dropna().astype(str).str.strip().ne("").any():
            return True
    return False


def _mixed_type_share(s: pd.Series) -> float:
    present = s.dropna().iloc[:5000]
    if present.empty or pd.api.types.is_numeric_dtype(present):
        return 0.0
    return float(pd.to_numeric(present.astype(str), errors="coerce").notna().mean())
