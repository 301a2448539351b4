"""Typed settings, read from ``TAXONOMIST_*`` environment variables through a cached getter.

Nothing here touches the disk: folders are created by the code that first writes to them.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where Taxonomist keeps its state and which services it talks to."""

    model_config = SettingsConfigDict(
        env_prefix="TAXONOMIST_", extra="ignore", populate_by_name=True
    )

    home: Path = Field(
        default_factory=lambda: Path.home() / ".taxonomist",
        description="Data folder: MLflow store, embedding cache, metadata database.",
    )
    mlflow_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TAXONOMIST_MLFLOW_TRACKING_URI", "TAXONOMIST_MLFLOW_URI"),
        description="MLflow tracking URI (TAXONOMIST_MLFLOW_TRACKING_URI), e.g. the tracking "
        "server http://mlflow:5000; default: a sqlite store in home.",
    )
    artifacts_uri: str | None = Field(
        default=None,
        description="Where models and uploaded datasets are stored when several machines "
        "share them: s3://bucket/prefix (endpoint and credentials the boto3 way: "
        "AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY); default: folders in "
        "home.",
    )
    experiment: str = Field(
        default="taxonomist", description="MLflow experiment for training runs."
    )
    seed: int = Field(default=42, description="Seed for splits, samplers and models.")
    n_jobs: int = Field(default=2, ge=1, description="Threads a model may use.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the metadata database (users, datasets, jobs); "
        "default: a SQLite file in home. PostgreSQL: postgresql+psycopg://user:pw@host/db.",
    )
    dask_address: str | None = Field(
        default=None,
        description="Address of a Dask scheduler for training jobs; default: a LocalCluster "
        "started with the service.",
    )
    max_concurrent_jobs: int = Field(
        default=1,
        ge=1,
        description="Training jobs that run at once, counted over every service process that "
        "shares the database; the rest wait in a queue.",
    )
    job_lease_seconds: float = Field(
        default=30.0,
        ge=3,
        description="A job's lease: a running job's worker renews it every third of this; a "
        "job whose lease ran out (its worker or service process is gone) is failed, by any "
        "service process.",
    )
    max_upload_mb: float = Field(default=200.0, gt=0, description="Largest dataset upload.")
    max_table_rows: int = Field(
        default=5_000_000, ge=1, description="Most data rows a table file may have."
    )
    max_table_columns: int = Field(
        default=2_000, ge=1, description="Most columns a table file may have."
    )
    max_decompressed_mb: float = Field(
        default=2000.0,
        gt=0,
        description="Most data a table file may expand to, in MB: a .gz after decompressing, a "
        "Parquet file after decoding, a plain file as it is.",
    )
    parse_workers: int = Field(
        default=2,
        ge=1,
        description="Worker processes of the service that parse uploaded and stored files.",
    )
    parse_memory_mb: float = Field(
        default=4000.0,
        gt=0,
        description="Memory one parse worker may use, in MB (its libraries, about 200 MB, "
        "included); a file that needs more is refused with a 413.",
    )
    parse_timeout: float = Field(
        default=600.0,
        gt=0,
        description="Seconds a parse worker may spend on one file; a slower one is refused "
        "with a 413.",
    )
    heavy_requests: int = Field(
        default=2,
        ge=1,
        description="Heavy requests (file predictions, uploads, drift reports, maps, "
        "benchmarks) a process runs at once; others wait up to 10 s, then get a 503.",
    )
    max_predict_rows: int = Field(
        default=1_000_000, ge=1, description="Most rows of one file sent to POST /predict/file."
    )
    max_jobs_per_user: int = Field(
        default=4,
        ge=1,
        description="Jobs a member may have queued or running at once (admins: no cap).",
    )
    max_request_mb: float = Field(
        default=32.0,
        gt=0,
        description="Largest body of a request that is not a file upload (JSON predictions).",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Token Prometheus sends to scrape /metrics (an admin's token works too); "
        "without one, only admins can read /metrics.",
    )
    metrics_class_labels: bool = Field(
        default=False,
        description="Count predictions by class on /metrics too (a label per class: what the "
        "classes are is visible to whoever reads the metrics).",
    )
    admin_password: str | None = Field(
        default=None,
        description="Password of the 'admin' user created on first start; default: a one-time "
        "password printed once.",
    )
    session_hours: float = Field(default=12.0, gt=0, description="Lifetime of a login token.")
    model_cache_size: int = Field(
        default=8, ge=1, description="Loaded models a process keeps in memory (LRU)."
    )
    model_cache_mb: float = Field(
        default=4096.0,
        gt=0,
        description="Memory the loaded models may take, in MB (estimated from their arrays); "
        "the least recently used are dropped first.",
    )
    prediction_log: bool = Field(
        default=True,
        description="Log every prediction (record, label, top classes, latency, user) in the "
        "metadata database; 'off' turns it off.",
    )
    prediction_log_days: float = Field(
        default=30.0, gt=0, description="Days a logged prediction is kept."
    )
    policy_interval: float = Field(
        default=300.0,
        ge=0,
        description="Seconds between the service's checks of the retraining policies; 0 "
        "turns the checks off.",
    )
    question_engine: Literal["onnx-int8", "torchscript"] = Field(
        default="onnx-int8",
        description="How MiniLM embeds one text (a question asked now): 'onnx-int8' (ONNX "
        "Runtime, int8 weights, ~3.7x faster; torchscript when onnxruntime is missing) or "
        "'torchscript' (the exact fp32 vectors).",
    )
    serve_workers: int = Field(
        default=1,
        ge=1,
        description="Processes of this API server (set by 'taxonomist serve --workers N'): "
        "with more than one, retrieval needs a Qdrant server (TAXONOMIST_QDRANT_URL).",
    )
    qdrant_url: str | None = Field(
        default=None,
        description="URL of a Qdrant server for retrieval models, e.g. http://qdrant:6333; "
        "default: Qdrant Edge, in-process, under home/retrieval.",
    )
    log_dir: Path | None = Field(
        default=None,
        description="Folder of the service's log files (taxonomist.log, the UI's ui.log); "
        "default: home/logs.",
    )
    log_max_mb: float = Field(
        default=10.0, gt=0, description="Size at which a log file is rotated, in MB."
    )
    log_backups: int = Field(
        default=5, ge=0, description="Rotated log files kept besides the current one."
    )
    log_format: Literal["json", "text"] = Field(
        default="json",
        description="'json': one JSON object per line (ts, level, logger, message, "
        "request_id, ...); 'text': one readable line.",
    )
    log_level: str = Field(
        default="INFO", description="Least severe level logged: DEBUG, INFO, WARNING, ERROR."
    )

    @field_validator("artifacts_uri")
    @classmethod
    def _s3_uri(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(
                f"must be an S3 location, s3://bucket/prefix; got {value!r}. Leave it unset "
                "to keep artifacts in TAXONOMIST_HOME."
            )
        return value.rstrip("/")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        levels = logging.getLevelNamesMapping()
        if value.upper() not in levels:
            raise ValueError(
                "TAXONOMIST_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL. "
                f"Got {value!r} instead."
            )
        return value.upper()

    @property
    def database(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'taxonomist.db').resolve()}"

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    @property
    def logs_dir(self) -> Path:
        return self.log_dir if self.log_dir is not None else self.home / "logs"

    @property
    def mlflow_tracking_uri(self) -> str:
        if self.mlflow_uri:
            return self.mlflow_uri
        return f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    def for_workers(self) -> dict[str, Any]:
        """The settings a job's worker process is sent, as task arguments: no secret among
        them (Dask keeps a task's arguments in the scheduler, where its dashboard and logs
        show them). The worker reads what is left out from its own environment
        (:meth:`secret_environment` is given to the workers the service starts itself)."""
        data = self.model_dump(mode="json", exclude=set(SECRETS))
        if self.dask_address and self.database_url and self.mlflow_uri:
            # Workers on other machines: nothing lives in this process's home that they need;
            # they keep their own (TAXONOMIST_HOME on the worker) for caches and downloads.
            for name in ("home", "log_dir"):
                del data[name]
        for name in CREDENTIAL_URLS:
            if _has_credentials(data.get(name)):
                del data[name]
        return data

    def secret_environment(self) -> dict[str, str]:
        """``TAXONOMIST_*`` variables of the URLs :meth:`for_workers` leaves out (a worker
        needs no password of users or of the scrape)."""
        sent = self.for_workers()
        return {
            f"TAXONOMIST_{name.upper()}": str(getattr(self, name))
            for name in CREDENTIAL_URLS
            if name not in sent and getattr(self, name) is not None
        }


SECRETS = ("admin_password", "metrics_token")
CREDENTIAL_URLS = ("database_url", "mlflow_uri", "qdrant_url")  # secret when they hold a password


def _has_credentials(url: str | None) -> bool:
    if not url:
        return False
    try:
        parts = urlsplit(url)
        return parts.password is not None or parts.username is not None
    except ValueError:  # not a URL we can read: keep it home
        return True


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call ``get_settings.cache_clear()`` after changing env.
    A variable that cannot be read raises :class:`~taxonomist.errors.SettingsError` naming it."""
    from pydantic import ValidationError

    from taxonomist.errors import SettingsError

    try:
        return Settings()
    except ValidationError as exc:
        problems = [
            f"TAXONOMIST_{'_'.join(map(str, e['loc'])).upper()}: "
            + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        ]
        raise SettingsError("; ".join(problems), details={"problems": problems}) from None
