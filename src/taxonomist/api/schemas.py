"""Request and response bodies (pydantic v2); they are also the OpenAPI schema."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from taxonomist.data.schema import ColumnRole
from taxonomist.models.config import MODEL_NAME_PATTERN, TrainOptions
from taxonomist.monitor.policy import Policy
from taxonomist.retrieval.model import MODEL_ID, RetrievalParams
from taxonomist.store import JobState, Role

# Column roles, model families, metrics, job states and user roles are the library's own
# lists (ColumnRole, TrainOptions' FamilyName and MetricName, JobState, Role), never typed here.
ALIAS_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- auth and users --------------------------------------------------------------------------
class LoginRequest(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class PasswordChange(Strict):
    old_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=8, max_length=1024)


class PasswordChanged(BaseModel):
    tokens_revoked: int = Field(description="Your other tokens, revoked (this one stays).")


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    username: str
    role: Role
    disabled: bool
    created_at: datetime


class LoginResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime | None
    user: UserOut


class TokenRequest(Strict):
    name: str = Field(min_length=1, max_length=100, examples=["notebook"])
    expires_days: float | None = Field(
        default=90, gt=0, le=3650, description="Days until it expires; null for never."
    )


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    kind: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class NewToken(TokenOut):
    token: str = Field(description="The secret: shown once, store it now.")


class UserCreate(Strict):
    username: str = Field(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=8, max_length=1024)
    role: Role = Role.MEMBER


class UserUpdate(Strict):
    role: Role | None = None
    disabled: bool | None = None
    password: str | None = Field(default=None, min_length=8, max_length=1024)


# -- datasets ------------------------------------------------------------------------------
class DatasetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    owner_id: int
    name: str
    filename: str
    size_bytes: int
    sha256: str
    n_rows: int
    n_columns: int
    target: str | None
    roles: dict[str, str]
    kind: str = "table"
    created_at: datetime


class DatasetUploaded(BaseModel):
    dataset: DatasetOut
    report: dict[str, Any]
    roles: dict[str, str]
    warnings: list[str]


class DatasetDetail(DatasetOut):
    report: dict[str, Any]
    profile: dict[str, Any]
    descriptions: dict[str, str] | None = None


class DatasetUpdate(Strict):
    target: str | None = Field(default=None, max_length=200)
    roles: dict[str, ColumnRole] | None = None
    name: str | None = Field(default=None, min_length=1, max_length=200)
    descriptions: dict[str, Annotated[str, Field(max_length=2000)]] | None = Field(
        default=None, description="What columns mean, by column name (shown to every user)."
    )


# -- jobs ----------------------------------------------------------------------------------
class JobCreate(TrainOptions):
    """A training job: a dataset, the model name to register under and the training options
    (:class:`~taxonomist.models.config.TrainOptions`, the same as ``taxonomist train``'s)."""

    dataset_id: int = Field(ge=1)
    model_name: str = Field(
        min_length=1, max_length=100, pattern=MODEL_NAME_PATTERN, examples=["apps"]
    )
    target: str | None = Field(
        default=None, max_length=200, description="Default: the dataset's target."
    )

    @field_validator("images")
    @classmethod
    def _no_server_folder(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError(
                "a job reads the images from its dataset: upload a zip of the table and its "
                "images as the dataset, and leave 'images' out"
            )
        return value


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    @field_validator("config")
    @classmethod
    def _public_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in config.items() if k != "dataset_path"}  # a server path

    id: int
    owner_id: int
    dataset_id: int | None
    kind: str = "train"
    state: JobState
    config: dict[str, Any]
    progress: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    lease_owner: str | None = Field(
        default=None,
        description="Who holds the unfinished job: 'service host:pid:id' (the process that "
        "handed it to Dask, or runs it), then 'worker host:pid:id' (the Dask worker running "
        "it). Empty once it has ended.",
    )


class JobLogs(BaseModel):
    id: int
    state: JobState
    lines: list[str]


# -- models and predictions --------------------------------------------------------------
class ModelVersionOut(BaseModel):
    version: int
    aliases: list[str]
    run_id: str | None
    created: int | None
    metric: str | None
    primary: float | None
    target: str | None
    best_family: str | None
    promotion: str | None
    dataset_id: int | None = Field(default=None, description="The dataset it was trained on.")


class ModelOut(BaseModel):
    name: str
    owner_id: int | None
    owner: str | None = Field(default=None, description="The owner's username.")
    versions: list[ModelVersionOut]


class AliasRequest(Strict):
    version: int = Field(ge=1)


class LoadedModel(BaseModel):
    name: str
    version: int


Record = dict[str, Any]


class PredictRequest(Strict):
    model: str = Field(
        min_length=1,
        max_length=200,
        description="'name' (its champion), 'name@alias' or 'name/version'.",
        examples=["demo-apps"],
    )
    records: Record | list[Record] = Field(
        description="One record (column -> value) or a list of them."
    )
    explain: bool = Field(default=False, description="Add the words that drove each label.")
    top: int = Field(default=5, ge=1, le=50, description="Explanation length.")


class Prediction(BaseModel):
    label: Any
    probabilities: dict[str, float]
    explanation: dict[str, Any] | None = None


class PredictResponse(BaseModel):
    model: str
    version: int
    predictions: list[Prediction]
    request_id: str = Field(description="The id the predictions are logged under (feedback).")
    warnings: list[str] = Field(
        default=[],
        description="What was done about the records' columns: training columns no record has "
        "are predicted as missing values; columns the model does not know are ignored.",
    )


class LoggedPrediction(BaseModel):
    id: int
    request_id: str
    position: int = Field(description="The record's place in its request.")
    model: str
    version: int
    at: datetime
    user_id: int | None
    source: str = Field(description="api, ui or cli")
    record: dict[str, Any]
    label: str
    top: dict[str, float] = Field(description="The likeliest classes and their probability.")
    latency_ms: float
    feedback: str | None = Field(default=None, description="The true label, once given.")


class PredictionsPage(BaseModel):
    data: list[LoggedPrediction]
    count: int
    next_before_id: int | None = Field(
        description="Pass as before_id for the next (older) page; null on the last page."
    )


class FeedbackItem(Strict):
    request_id: str = Field(min_length=1, max_length=32)
    position: int = Field(default=0, ge=0, description="The record's place in its request.")
    label: str | int | bool = Field(description="The true label.")


class FeedbackRequest(Strict):
    items: list[FeedbackItem] = Field(min_length=1, max_length=100_000)


class FeedbackRecorded(BaseModel):
    model: str
    recorded: int


class LiveQuality(BaseModel):
    model: str
    n: int = Field(description="Logged predictions with feedback in the window.")
    since: datetime | None
    version: int | None
    accuracy: float | None
    f1_macro: float | None
    recall: dict[str, float] = Field(description="Per true class: the share predicted right.")


class DriftSummary(BaseModel):
    id: int
    model: str
    version: int
    at: datetime
    source: Literal["log", "file"]
    verdict: Literal["ok", "warning", "drift"]
    score: float = Field(description="The strongest significant signal over its drift threshold.")
    n_reference: int
    n_current: int
    reasons: list[str]
    signals: dict[str, float] = Field(description="Each signal's effect by `column:signal`.")


class DriftReportOut(BaseModel):
    """A whole drift report; see `taxonomist.monitor.drift` for every signal."""

    id: int
    model: str
    version: int
    at: datetime
    source: Literal["log", "file"]
    verdict: Literal["ok", "warning", "drift"]
    score: float
    reasons: list[str]
    columns: dict[str, dict[str, Any]]
    prediction: dict[str, Any]
    embedding: dict[str, Any] | None
    signals: list[dict[str, Any]]
    n_reference: int
    n_current: int
    absent_columns: list[str]
    thresholds: dict[str, float]
    window: dict[str, Any]


class JournalEntry(BaseModel):
    """One retrain: when, why, which data, both scores with intervals, the decision."""

    model_config = ConfigDict(extra="allow")

    id: int
    model: str
    at: datetime
    finished_at: datetime | None
    user_id: int | None
    trigger: str
    reason: str
    status: Literal["running", "promoted", "kept", "failed"]
    champion_version: int | None
    challenger_version: int | None
    data: dict[str, Any] = Field(default_factory=dict)
    evaluation: dict[str, Any] | None = None
    decision: str | None = None
    reports: dict[str, Any] | None = None
    error: str | None = None


class PolicyOut(BaseModel):
    model: str
    policy: Policy
    updated_at: datetime
    last_checked: datetime | None


class Ready(BaseModel):
    status: Literal["ready", "not ready"]
    database: str
    engine: str
    servers: dict[str, str] = Field(
        default_factory=dict,
        description="Each server part configured (tracking, artifacts, qdrant): 'ok' or why not.",
    )


# -- retrieval ---------------------------------------------------------------------------------
class QAUploaded(BaseModel):
    dataset: DatasetOut
    report: dict[str, Any]
    warnings: list[str]


class RetrievalBuild(Strict):
    name: str = Field(min_length=1, max_length=64, pattern=MODEL_ID.pattern, examples=["squad"])
    dataset_id: int = Field(ge=1)
    params: RetrievalParams = Field(default_factory=lambda: RetrievalParams())
    replace: bool = Field(default=False, description="Build again over a model of the same name.")


class RetrievalModelOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    params: dict[str, Any]
    language: str
    encoder: str | None
    signals: list[str]
    weights: dict[str, float]
    n_passages: int
    n_sentences: int | None = None
    n_questions: int | None = None
    backend: str
    built_at: str
    build_seconds: float | None = None
    owner: str | None = None
    dataset: str | None = None
    loaded: bool


class RetrievalAsk(Strict):
    question: str = Field(min_length=1, max_length=2000, examples=["Who wrote Hamlet?"])
    k: int = Field(default=5, ge=1, le=100)

    @field_validator("question")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the question is empty")
        return v


class RetrievalHit(BaseModel):
    rank: int
    passage_id: str
    score: float
    context: str


class RetrievalAnswer(BaseModel):
    model: str
    question: str
    ms: float
    passages: list[RetrievalHit]


class RetrievalDatasetRef(Strict):
    dataset_id: int = Field(ge=1)
    n: int = Field(default=100, ge=1, le=10_000, description="Random questions asked (benchmark).")
    k: int = Field(default=5, ge=1, le=100)


class RetrievalMap(Strict):
    sample: int = Field(default=1000, ge=10, le=3000, description="Texts placed on the map.")


class RetrievalBenchmark(BaseModel):
    model: str
    dataset_id: int
    n: int
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    mean_ms: float | None
    ms: list[float]
    histogram: dict[str, list[float]] | None = None
