"""One training config: what ``train()`` takes, whether from the library, CLI flags, a
``--config FILE.yaml``, the API's job body or a registered version being replayed.

Defaults, bounds and the rule "a trial count replaces the default time budget" live here once.
The config is stored with every registered version, so a retrain replays it.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from taxonomist.data.schema import ColumnRole
from taxonomist.errors import InvalidParameterError
from taxonomist.models.cost import PredictBudget

DEFAULT_TIME_BUDGET = 120.0
DEFAULT_MIN_ROWS_PER_SECOND = 5000.0
MAX_TIME_BUDGET = 86_400.0
MAX_TRIALS = 10_000

# The names the library accepts; the API's schemas and the UI import these lists.
MetricName = Literal[
    "f1_macro", "f1_weighted", "accuracy", "balanced_accuracy", "roc_auc", "log_loss"
]
FamilyName = Literal[
    "linear_svm",
    "nb_svm",
    "ovr_cascade",
    "logreg",
    "complement_nb",
    "lightgbm",
    "catboost",
    "fm",
    "embed",
    "hybrid",
]
CountWindow = Literal["hour_of_day", "weekday"]
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


class CtrOptions(BaseModel):
    """Click-through features (``features/ctr.py``): who the user is, what to count, which
    columns to cross. Columns are checked against the data when training starts."""

    model_config = ConfigDict(extra="forbid")

    user_key: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Columns that together identify a user (e.g. [device_ip, device_model]); "
        "counted as the entity 'user'.",
    )
    count: list[str] | None = Field(
        default=None,
        description="Entities to count rows of: columns, or 'user' for the user key "
        "(default: device_id, device_ip and user where the data has them).",
    )
    count_windows: list[CountWindow] = Field(
        default_factory=list,
        description="Also count each entity within the same hour_of_day / weekday "
        "(needs time_column).",
    )
    crosses: list[list[str]] = Field(
        default_factory=list,
        description="Column crosses, e.g. [[site_id, app_id], [app_id, device_model]]: "
        "CTR-encoded for the boosters, hashed for linear models, native for CatBoost.",
    )
    hash_bits: int = Field(
        default=18, ge=10, le=24, description="Hashed crosses take 2**hash_bits columns."
    )
    smoothing: float = Field(
        default=20.0, gt=0, description="Prior weight (rows) of the smoothed CTR encoding."
    )

    @model_validator(mode="after")
    def _crosses_have_two_columns(self) -> Self:
        for i, cross in enumerate(self.crosses):
            if len(cross) < 2 or len(set(cross)) != len(cross):
                raise ValueError(
                    f"crosses[{i}] = {cross}: a cross needs two or more different columns"
                )
        return self


class TrainOptions(BaseModel):
    """How to train: everything but the data, the target and the model's name."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    text: list[str] | None = Field(
        default=None, description="Text columns (default: inferred from the data)."
    )
    roles: dict[str, ColumnRole] | None = Field(
        default=None, description="Forced column roles, column -> role."
    )
    time_budget: float | None = Field(
        default=DEFAULT_TIME_BUDGET,
        ge=5,
        le=MAX_TIME_BUDGET,
        description="Seconds for the whole training, search and refit included. Giving "
        "'trials' without a time budget removes the default one.",
    )
    trials: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TRIALS,
        description="Run exactly this many search trials: the same data then give the same model.",
    )
    metric: MetricName | None = Field(
        default=None,
        description="Metric to optimise; default log_loss for two classes with under 30 % "
        "positive (clicks), roc_auc for other two-class targets, f1_macro otherwise.",
    )
    sample: int | None = Field(
        default=None,
        ge=100,
        description="Train on a stratified sample of this many rows, for a quick run: every "
        "class keeps its share and at least 5 rows (all it has when fewer).",
    )
    families: list[FamilyName] | None = Field(
        default=None, min_length=1, description="Model families to search (default: all that fit)."
    )
    max_predict_ms: float | None = Field(
        default=None,
        gt=0,
        le=60_000,
        description="The most one record's prediction may take, in milliseconds (measured "
        "in-process); ensemble members that would break it are left out.",
    )
    min_rows_per_second: float | None = Field(
        default=DEFAULT_MIN_ROWS_PER_SECOND,
        ge=0,
        description="The fewest rows a second a batch prediction must reach; ensemble members "
        "that would break it are left out. 0 or null: no limit (e.g. to let text embeddings "
        "in when accuracy matters more than speed). Giving 'trials' without it removes the "
        "default, as for the time budget: measured costs vary from run to run.",
    )
    time_column: str | None = Field(
        default=None,
        description="A time column (YYMMDDHH or a date-time): validation trains on earlier "
        "rows and scores later ones, and click-through features use its hour and weekday.",
    )
    time_format: str | None = Field(
        default=None,
        description="strftime format of time_column (default: YYMMDDHH integers, or what "
        "pandas reads).",
    )
    ctr: CtrOptions | None = Field(
        default=None, description="Click-through features: user key, counts, crosses."
    )
    images: str | None = Field(
        default=None,
        description="Folder the image columns' relative paths are read from (default: the "
        "data file's folder, which is the zip's when training on a zip of table and images).",
    )
    seed: int | None = Field(default=None, description="Seed (default: TAXONOMIST_SEED).")
    promote: bool = Field(
        default=False, description="Make the new version the champion even if it scores lower."
    )

    @model_validator(mode="after")
    def _trials_replace_the_default_budget(self) -> Self:
        # Both default budgets are clock readings; a trial count promises the same model from
        # the same data, so it replaces them (a budget given explicitly still holds).
        if self.trials is not None and "time_budget" not in self.model_fields_set:
            self.time_budget = None
        if self.trials is not None and "min_rows_per_second" not in self.model_fields_set:
            self.min_rows_per_second = None
        return self

    @model_validator(mode="after")
    def _windows_need_a_time(self) -> Self:
        if self.ctr is not None and self.ctr.count_windows and self.time_column is None:
            raise ValueError(
                "ctr.count_windows needs time_column: the windows are its hour of day and weekday"
            )
        return self


class TrainConfig(TrainOptions):
    """A whole training run: data, target, model name and :class:`TrainOptions`."""

    data: str | None = Field(
        default=None, description="Data file (CSV/TSV/Parquet/JSON Lines) to train on."
    )
    target: str = Field(min_length=1, max_length=200, description="Column with the labels.")
    name: str | None = Field(
        default=None,
        pattern=MODEL_NAME_PATTERN,
        description="Registered model name; each training adds a version.",
    )

    @classmethod
    def parse(cls, data: dict[str, Any], source: str = "the training config") -> Self:
        """Validate ``data``; errors name the keys (unknown ones with a 'did you mean')."""
        if not isinstance(data, dict):
            raise InvalidParameterError(
                f"{source} must be a mapping of option -> value; got {type(data).__name__}."
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise config_error(exc, source, cls) from None

    @classmethod
    def from_file(cls, path: str | Path) -> Self:
        """Read a YAML or JSON config file: the options at its top level, or under a
        ``train:`` section (see :func:`read_config_file`)."""
        data, source = read_config_file(path)
        return cls.parse(data, source=source)

    @property
    def predict_budget(self) -> PredictBudget:
        """The prediction-cost budget the ensemble must keep."""
        return PredictBudget(self.max_predict_ms, self.min_rows_per_second or None)

    def merged(self, **overrides: Any) -> TrainConfig:
        """A copy with ``overrides`` (``None`` values are left out) validated again."""
        data = self.model_dump(exclude_unset=True)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return TrainConfig.parse(data)

    def to_json(self) -> dict[str, Any]:
        """The config as stored with a registered version (every option, resolved)."""
        return self.model_dump(mode="json")


class TrainConfigFile(TrainConfig):
    """What a ``--config`` file holds: a :class:`TrainConfig` whose target may be given beside
    it (on the command line)."""

    target: str | None = Field(  # type: ignore[assignment]
        default=None, min_length=1, max_length=200, description="Column with the labels."
    )


PARAMS_SECTION = "train"


def read_config_file(path: str | Path) -> tuple[Any, str]:
    """The options a YAML or JSON config file holds, unvalidated, and how messages name them.

    Two layouts: the options at the top level (``target: click``), or a DVC ``params.yaml``
    whose ``train:`` section holds them (``train: {target: click}``, so DVC names them
    ``train.time_budget``); only in that layout may other top-level keys sit beside it.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidParameterError(f"Cannot read the config file '{path}': {exc}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidParameterError(
            f"The config file '{path.name}' is not valid {path.suffix[1:].upper() or 'YAML'}: {exc}"
        ) from None
    if isinstance(data, dict) and PARAMS_SECTION in data:
        section = data[PARAMS_SECTION]
        if not isinstance(section, dict):
            raise InvalidParameterError(
                f"'{PARAMS_SECTION}' in '{path.name}' must be a mapping of option -> value "
                f"(e.g. {PARAMS_SECTION}: {{target: label}}); got {type(section).__name__}."
            )
        return section, f"the '{PARAMS_SECTION}' section of '{path.name}'"
    return data or {}, f"'{path.name}'"


def config_error(exc: ValidationError, source: str, model: type[BaseModel]) -> Exception:
    """One readable message for a ValidationError of ``model`` read from ``source``."""
    known = list(model.model_fields)
    problems = []
    for e in exc.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(root)"
        if e["type"] == "extra_forbidden":
            nested = e["loc"][0] == "ctr" and len(e["loc"]) == 2
            names = list(CtrOptions.model_fields) if nested else known
            close = difflib.get_close_matches(str(e["loc"][-1]), names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"unknown key '{key}'{hint}")
        elif e["type"] == "missing":
            problems.append(f"'{key}' is required")
        else:
            problems.append(f"'{key}': {e['msg']} (got {e.get('input')!r})")
    return InvalidParameterError(
        f"Invalid options in {source}: {'; '.join(problems)}. Known keys: {', '.join(known)}.",
        details={"errors": problems},
    )
