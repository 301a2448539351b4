"""The trained classifier: feature blocks, an ensemble of members, calibrated probabilities."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from taxonomist.data.schema import ColumnRole, Schema, suggest_column
from taxonomist.errors import SchemaMismatchError
from taxonomist.features.build import FeatureBlocks
from taxonomist.features.columns import ColumnView
from taxonomist.models.calibration import apply_temperature, floor_probabilities
from taxonomist.models.candidates import FAMILIES
from taxonomist.models.search import family_matrix
from taxonomist.models.trials import proba_full

logger = logging.getLogger(__name__)

Records: TypeAlias = pd.DataFrame | dict[str, Any] | list[dict[str, Any]]


@dataclass
class Member:
    """One fitted model of the ensemble and its weight."""

    family: str
    params: dict[str, Any]
    weight: float
    temperature: float
    estimator: Any
    score: float
    trial: Any = field(default=None, repr=False, compare=False)  # the search record (training)


@dataclass
class TaxonomistModel:
    """A trained classifier. ``predict``/``predict_proba`` take a DataFrame, a dict (one
    record) or a list of dicts with the training feature columns; extra columns are ignored."""

    schema: Schema
    classes: list[Any]
    blocks: FeatureBlocks
    members: list[Member]
    temperature: float
    metric: str
    info: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] | None = None
    # Log-linear pool or stacker over the members' probabilities (models/ensemble.py); None:
    # the members' weighted average. Models saved before it existed load with None.
    combiner: Any = None
    # Platt or isotonic scaling of a binary target's positive class, after the temperature
    # (models/calibration.py); None: the temperature alone.
    calibrator: Any = None

    # -- input ------------------------------------------------------------------------------
    @property
    def feature_columns(self) -> list[str]:
        return self.schema.features

    def prepare(self, data: Records) -> pd.DataFrame:
        """Check ``data`` against the training schema and return the feature columns."""
        if isinstance(data, dict):
            data = [data]
        if isinstance(data, list):
            if not all(isinstance(r, dict) for r in data):
                raise SchemaMismatchError("Records must be JSON objects (column -> value).")
            if len(data) <= 64:
                return self._prepare_records(data)
            df = pd.DataFrame.from_records(data)
        elif isinstance(data, pd.DataFrame):
            df = data
        else:
            raise SchemaMismatchError(
                f"Expected a DataFrame, a dict or a list of dicts; got {type(data).__name__}."
            )
        columns = [str(c) for c in df.columns]
        missing = self._check_usable(columns)
        if missing:
            df = df.assign(**{c: np.nan if c in self.schema.numeric else None for c in missing})
        out = df[self.feature_columns].reset_index(drop=True).copy()
        for col in self.schema.numeric:
            s = out[col]
            if not pd.api.types.is_numeric_dtype(s):
                parsed = pd.to_numeric(s, errors="coerce")
                bad = s[parsed.isna() & s.notna() & (s.astype(str).str.strip() != "")]
                if len(bad):
                    raise SchemaMismatchError(
                        f"Column '{col}' must be numeric but has {len(bad)} non-numeric "
                        f"value(s), e.g. {[str(v) for v in bad.unique()[:3]]}. Send numbers "
                        "(or leave the value empty).",
                        details={"column": col, "bad_values": [str(v) for v in bad.unique()[:5]]},
                    )
                out[col] = parsed
        for col in self.schema.text + self.schema.categorical:
            s = out[col]
            if not (pd.api.types.is_string_dtype(s) or s.dtype == object):
                out[col] = (
                    s.astype("object")
                    .where(s.notna(), None)
                    .map(lambda v: None if v is None else str(v))
                )
        return self._check_images(out)

    def _prepare_records(self, records: list[dict[str, Any]]) -> pd.DataFrame:
        """``prepare`` for a few JSON records, without pandas' type inference (which costs
        more than the prediction itself for one record)."""
        columns = self._record_columns(records)
        if columns is None:
            return self.prepare(pd.DataFrame.from_records(records))  # the full message
        return self._check_images(pd.DataFrame(columns, copy=False))

    def set_image_folder(self, folder: str | os.PathLike[str]) -> None:
        """Read relative image paths from ``folder`` from now on (default: the training
        data's image folder); data: URIs and bytes need none."""
        if "image" in self.blocks.fitted:
            self.blocks.fitted["image"].root = str(Path(folder).resolve())

    def _check_images(self, X: pd.DataFrame) -> pd.DataFrame:
        """``X``; a ``SchemaMismatchError`` naming each record (0-based) whose image cannot
        be used (a missing image is predicted from the other columns)."""
        if not self.schema.image or "image" not in self.blocks.fitted:
            return X
        from taxonomist.embed.image import check_image

        root = self.blocks.fitted["image"].root
        problems = [
            {"record": i, "column": c, "error": p}
            for c in self.schema.image
            for i, v in enumerate(X[c])
            if (p := check_image(v, Path(root) if root else None))
        ]
        if problems:
            shown = "; ".join(f"record {p['record']}: {p['error']}" for p in problems[:10])
            raise SchemaMismatchError(
                f"{len(problems)} image(s) cannot be used ({shown}). Send a data: URI "
                "(data:image/png;base64,...), an uploaded file, or leave the image out.",
                details={"problems": problems[:100]},
            )
        return X

    def _inputs(self, data: Records) -> pd.DataFrame | ColumnView:
        """What ``_proba`` takes: for a few records and blocks that allow it, plain numpy
        columns (:class:`ColumnView`: one record in ~1.5 ms less); else ``prepare(data)``."""
        records = [data] if isinstance(data, dict) else data
        if (
            isinstance(records, list)
            and 0 < len(records) <= 64
            and all(isinstance(r, dict) for r in records)
            and self.blocks.accept_column_view(self._member_blocks())
        ):
            columns = self._record_columns(records)
            if columns is not None:
                return ColumnView(columns)
        return self.prepare(data)

    def _record_columns(self, records: list[dict[str, Any]]) -> dict[str, np.ndarray] | None:
        """The feature columns of ``records`` as numpy arrays (a column no record has is all
        missing values; ``None`` when there is nothing usable: ``prepare`` says why)."""
        keys = {str(k): None for r in records for k in r}
        try:
            self._check_usable(list(keys))
        except SchemaMismatchError:
            return None
        numeric, images = set(self.schema.numeric), set(self.schema.image)
        columns: dict[str, Any] = {}
        for col in self.feature_columns:
            values = [r.get(col) for r in records]
            if col in numeric:
                columns[col] = np.array([_to_number(col, v) for v in values], dtype=np.float64)
            elif col in images:  # a path, a data: URI or an upload's bytes
                columns[col] = np.array([None if _blank(v) else v for v in values], dtype=object)
            else:
                columns[col] = np.array(
                    [None if _blank(v) else str(v) for v in values], dtype=object
                )
        return columns

    def input_warnings(self, data: Records) -> list[str]:
        """What a prediction on ``data`` will do with its columns: feature columns it lacks
        (predicted as missing values) and columns the model does not know (ignored)."""
        return _column_warnings(self.feature_columns, _input_columns(data), self.schema.target)

    def _check_usable(self, columns: list[str]) -> list[str]:
        """The feature columns absent from ``columns`` (predicted as missing values, with a
        logged warning); raises when none of the columns the ensemble uses is there."""
        present = set(columns)
        missing = [c for c in self.feature_columns if c not in present]
        unknown = present.difference(self.feature_columns, [self.schema.target])
        if not missing and not unknown:
            return []
        used = self._used_columns()
        if missing and not any(c in present for c in used):
            hints = {c: suggest_column(c, columns) for c in missing}
            hint = "; ".join(
                f"'{c}' (did you mean '{h}'?)" if h else f"'{c}'" for c, h in hints.items()
            )
            needed = (
                ""
                if set(used) == set(missing)
                else (f", and none of the columns it predicts from ({', '.join(used)}) is there")
            )
            raise SchemaMismatchError(
                f"The data lacks {len(missing)} column(s) the model was trained on: {hint}"
                f"{needed}. "
                f"Expected columns: {', '.join(self.feature_columns)}. Add them (empty values "
                "are allowed) or predict with a model trained on these columns.",
                details={"missing": missing, "expected": self.feature_columns},
            )
        key = (tuple(missing), tuple(sorted(unknown)))
        warned = self.__dict__.setdefault("_warned", set())
        if key not in warned and len(warned) < 100:  # once per set of columns
            warned.add(key)
            for warning in _column_warnings(self.feature_columns, columns, self.schema.target):
                logger.warning(warning)
        return missing

    def _used_columns(self) -> list[str]:
        """The table columns the ensemble's feature blocks read (directly or through the block
        they are computed from)."""
        used: list[str] = []
        stack = list(self._member_blocks())
        seen: set[str] = set()
        while stack:
            spec = self.blocks.specs[stack.pop()]
            if spec.name in seen:
                continue
            seen.add(spec.name)
            if spec.source:
                stack.append(spec.source)
            used += [c for c in spec.columns if c not in used]
        return [c for c in self.feature_columns if c in used]

    # -- prediction -------------------------------------------------------------------------
    def _member_blocks(self) -> list[str]:
        names: list[str] = []
        for m in self.members:
            for b in FAMILIES[m.family].blocks:
                if b in self.blocks.fitted and b not in names:
                    names.append(b)
        return names

    def _proba(self, X: pd.DataFrame | ColumnView) -> np.ndarray:
        import sklearn

        # Our blocks only emit finite numbers; skipping scikit-learn's re-checks of every
        # intermediate matrix saves ~1 ms per call, most of a single record's latency.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            return self._proba_checked(X)

    def _proba_checked(self, X: pd.DataFrame | ColumnView) -> np.ndarray:
        n_jobs = min(len(os.sched_getaffinity(0)), -(-len(X) // PARALLEL_ROWS))
        if n_jobs > 1 and isinstance(X, pd.DataFrame) and self._rows_in_parallel():
            from concurrent.futures import ThreadPoolExecutor

            # Equal chunks, as many for each thread, none longer than the counter's own: 5,000
            # rows on two threads go as 4 x 1,250 (2,048-row chunks left one thread idle while
            # the other counted the last 904).
            n_chunks = n_jobs * -(-len(X) // (PARALLEL_ROWS * n_jobs))
            size = -(-len(X) // n_chunks)
            chunks = [X.iloc[i : i + size] for i in range(0, len(X), size)]
            with ThreadPoolExecutor(max_workers=n_jobs) as pool:
                return np.vstack(list(pool.map(self._proba_rows, chunks)))
        return self._proba_rows(X)

    def _rows_in_parallel(self) -> bool:
        """Whether every member and block releases the GIL and runs on one thread: then a big
        batch is predicted in row chunks on every core. The product of sparse n-grams with the
        weights is bound by memory latency (one random row of weights per non-zero) and runs
        on one thread in scipy, so this is what doubles the linear families' rows/s; boosters
        and encoders have their own threads and are left to them. Without text the work per row
        is too small: threads halve the rows/s of a one-hot model (Avazu: 55k on one, 26k on
        two)."""
        return "text" in self._member_blocks() and all(
            m.family in PARALLEL_FAMILIES for m in self.members
        )

    def _proba_rows(self, X: pd.DataFrame | ColumnView) -> np.ndarray:
        outputs = self.blocks.transform(X, self._member_blocks())
        matrices: dict[tuple[tuple[str, ...], str], Any] = {}
        probas = []
        for m in self.members:
            family = FAMILIES[m.family]
            key = (family.blocks, family.layout)  # members of one layout share one matrix
            if key not in matrices:
                matrices[key] = family_matrix(family, outputs)
            p = proba_full(m.estimator, matrices[key], len(self.classes))
            probas.append(apply_temperature(p, m.temperature))
        if self.combiner is not None:
            total = self.combiner.combine(probas)
        else:
            total = sum(
                m.weight * p.astype(np.float64) for m, p in zip(self.members, probas, strict=True)
            )
        proba = apply_temperature(total.astype(np.float32), self.temperature)
        if self.calibrator is not None:
            proba = self.calibrator(proba)
        return floor_probabilities(proba)

    def predict_proba(self, data: Records) -> pd.DataFrame:
        """Calibrated class probabilities, one column per class, one row per record."""
        X = self._inputs(data)
        return pd.DataFrame(self._proba(X), columns=[str(c) for c in self.classes])

    def predict(self, data: Records) -> np.ndarray:
        """The most probable class of each record."""
        X = self._inputs(data)
        return np.asarray(self.classes, dtype=object)[self._proba(X).argmax(axis=1)]

    def predict_frame(self, data: Records) -> pd.DataFrame:
        """The input plus ``prediction`` and one ``proba_<class>`` column per class."""
        X = self.prepare(data)
        proba = self._proba(X)
        base = (
            data
            if isinstance(data, pd.DataFrame)
            else pd.DataFrame.from_records([data] if isinstance(data, dict) else data)
        )
        out = base.reset_index(drop=True).copy()
        out["prediction"] = np.asarray(self.classes, dtype=object)[proba.argmax(axis=1)]
        for i, c in enumerate(self.classes):
            out[f"proba_{c}"] = proba[:, i]
        return out

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(self, data: pd.DataFrame, target: str | None = None) -> dict[str, Any]:
        """Scores on labelled ``data`` (rows whose label the model does not know count as
        errors; rows without a label are skipped)."""
        from taxonomist.models.metrics import classification_metrics

        y, proba, names, unknown = self.labelled_proba(data, target)
        result = classification_metrics(y, proba, names)
        result["unknown_labels"] = unknown
        return result

    def labelled_proba(
        self, data: pd.DataFrame, target: str | None = None
    ) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
        """The labelled rows of ``data`` (``target``: default the training target) as
        ``(y, proba, names, unknown)``: class codes, probabilities with one column per name,
        the class names, and the labels the model never saw (an extra column each, never
        predicted)."""
        from taxonomist.data.schema import require_column
        from taxonomist.errors import TargetError

        target = target or self.schema.target
        assert target is not None
        require_column(target, [str(c) for c in data.columns], what="target")
        labelled = data[data[target].notna()].reset_index(drop=True)
        if labelled.empty:
            raise TargetError(f"No row has a value in '{target}'; nothing to evaluate.")
        proba = self._proba(self.prepare(labelled))
        index = {str(c): i for i, c in enumerate(self.classes)}
        truth = labelled[target].map(lambda v: _label_key(v))
        unknown = sorted(set(truth) - set(index))
        # Unknown labels get an extra class column the model never predicts.
        if unknown:
            proba = np.hstack([proba, np.zeros((len(proba), len(unknown)), dtype=np.float32)])
            for j, u in enumerate(unknown):
                index[u] = len(self.classes) + j
        y = truth.map(index).to_numpy(dtype=int)
        names = [str(c) for c in self.classes] + unknown
        return y, proba, names, unknown

    # -- explanation ------------------------------------------------------------------------
    def explain(self, record: dict[str, Any], top: int = 10) -> dict[str, Any]:
        """The predicted label, the class probabilities and the words and features that pushed
        the prediction towards that label (positive) or away from it (negative)."""
        from taxonomist.models.explain import explain_record

        return explain_record(self, record, top=top)

    def training_curves(self) -> dict[str, list[dict[str, float]]]:
        """Per member trained epoch by epoch (the hybrid network): its loss and validation
        scores per epoch, keyed ``family`` (``family-2`` for a second one)."""
        out: dict[str, list[dict[str, float]]] = {}
        for m in self.members:
            history = getattr(m.estimator, "history_", None)
            if history:
                key = m.family if m.family not in out else f"{m.family}-{len(out) + 1}"
                out[key] = list(history)
        return out

    @property
    def families(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for m in self.members:
            out[m.family] = out.get(m.family, 0.0) + m.weight
        return out

    def roles(self) -> dict[str, str]:
        return {c: str(r) for c, r in self.schema.roles.items() if r != ColumnRole.IGNORE}


# Rows per chunk of a batch predicted on several threads: the n-gram counter's own chunk, so
# each thread's vectorizer runs inline.
PARALLEL_ROWS = 2048
PARALLEL_FAMILIES = frozenset({"linear_svm", "nb_svm", "ovr_cascade", "logreg", "complement_nb"})

_WEIGHTS = ("coef_", "components_", "feature_log_prob_")


def prepare_for_inference(obj: Any, _seen: set[int] | None = None) -> None:
    """Store weight matrices Fortran-ordered and in float32, recursively through nested
    estimators.

    Linear models, SVD and naive Bayes compute ``X @ W.T``; with a C-ordered ``W`` scipy copies
    ``W.T`` on every call (0.3 ms for 62k n-grams x 23 classes, twenty times per record).
    The product over sparse n-grams reads one row of ``W.T`` per non-zero, at random: it is
    bound by memory, and float32 weights (the features are float32 already) halve it
    (reviews, 600k n-gram columns x 20 classes: 2x the rows/s); probabilities move by < 1e-5.
    """
    seen = _seen if _seen is not None else set()
    if id(obj) in seen or obj is None or isinstance(obj, str | int | float | np.ndarray):
        return
    seen.add(id(obj))
    state = getattr(obj, "__dict__", None)
    if state is None:
        if isinstance(obj, list | tuple):
            for item in obj:
                prepare_for_inference(item, seen)
        return
    for name, value in list(state.items()):
        if name in _WEIGHTS and isinstance(value, np.ndarray) and value.ndim == 2:
            state[name] = np.asfortranarray(value, dtype=np.float32)
        elif hasattr(value, "__dict__") or isinstance(value, list | tuple):
            prepare_for_inference(value, seen)
        elif isinstance(value, dict):
            for item in value.values():
                prepare_for_inference(item, seen)


def _input_columns(data: Records) -> list[str]:
    if isinstance(data, pd.DataFrame):
        return [str(c) for c in data.columns]
    records = [data] if isinstance(data, dict) else data
    seen: dict[str, None] = {}
    for r in records:
        if isinstance(r, dict):
            seen.update(dict.fromkeys(str(k) for k in r))
    return list(seen)


def _column_warnings(expected: list[str], columns: list[str], target: str | None) -> list[str]:
    """Missing feature columns and unknown columns, in words (the target is neither)."""
    present, known = set(columns), {*expected, target}
    missing = [c for c in expected if c not in present]
    unknown = [c for c in columns if c not in known]
    out = []
    if missing:
        out.append(
            f"{len(missing)} column(s) the model was trained on are missing and were treated as "
            f"missing values: {', '.join(missing)}."
        )
    if unknown:
        out.append(
            f"{len(unknown)} column(s) the model does not know were ignored: "
            f"{', '.join(unknown[:20])}{' ...' if len(unknown) > 20 else ''}."
        )
    return out


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def _to_number(col: str, v: Any) -> float:
    if _blank(v) or (isinstance(v, str) and not v.strip()):
        return np.nan
    if isinstance(v, bool | int | float | np.number):
        return float(v)
    try:
        return float(str(v).strip())
    except ValueError:
        raise SchemaMismatchError(
            f"Column '{col}' must be numeric but got {v!r}. Send a number (or leave the value "
            "empty).",
            details={"column": col, "bad_values": [str(v)]},
        ) from None


def _label_key(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)
