"""One exception tree for the whole package.

Every class carries a stable ``code`` (for scripts and the API's JSON body) and an HTTP
``status``. Messages say what failed, what was expected, what was received and what to do.
"""

from __future__ import annotations

from typing import Any


class TaxonomistError(Exception):
    """Base of every error Taxonomist raises on purpose."""

    code = "taxonomist_error"
    status = 500

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class UserInputError(TaxonomistError):
    """The user gave something we cannot use; they can fix it."""

    code = "invalid_input"
    status = 400


class InvalidParameterError(UserInputError):
    code = "invalid_parameter"
    status = 422


class SettingsError(UserInputError):
    """A ``TAXONOMIST_*`` variable that cannot be read."""

    code = "invalid_settings"


class DataError(UserInputError):
    """A data file or table is unusable as given."""

    code = "invalid_data"
    status = 422


class FileFormatError(DataError):
    code = "unreadable_file"
    status = 400


class EmptyDataError(DataError):
    code = "empty_data"


class EncodingError(DataError):
    code = "unreadable_encoding"
    status = 400


class ColumnNotFoundError(DataError):
    code = "column_not_found"


class DuplicateColumnsError(DataError):
    code = "duplicate_columns"


class TargetError(DataError):
    code = "invalid_target"


class SchemaMismatchError(DataError):
    """Data to predict on does not match what the model was trained on."""

    code = "schema_mismatch"


class NotFoundError(TaxonomistError):
    code = "not_found"
    status = 404


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"


class MissingExtraError(TaxonomistError):
    """An optional dependency group is not installed."""

    code = "missing_extra"
    status = 501

    def __init__(self, feature: str, extra: str, module: str) -> None:
        super().__init__(
            f"{feature} needs the optional '{extra}' dependencies (module '{module}' is not "
            f"installed). Install them with: pip install 'taxonomist[{extra}]'",
            details={"extra": extra, "module": module},
        )


class BudgetError(UserInputError):
    """The time or trial budget cannot produce a model."""

    code = "budget_too_small"


class AuthenticationError(TaxonomistError):
    """No token, an unknown, expired or revoked token, or a wrong password."""

    code = "unauthorized"
    status = 401


class PermissionDeniedError(TaxonomistError):
    code = "forbidden"
    status = 403


class ConflictError(UserInputError):
    """The request clashes with what exists (a taken username, a job already finished)."""

    code = "conflict"
    status = 409


class PayloadTooLargeError(UserInputError):
    code = "payload_too_large"
    status = 413


class TooManyRequestsError(TaxonomistError):
    """Too many attempts: wait ``retry_after`` seconds (the API's ``Retry-After``)."""

    code = "too_many_requests"
    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after


class ServiceUnavailableError(TaxonomistError):
    code = "unavailable"
    status = 503


class ServiceBusyError(ServiceUnavailableError):
    """Every slot for heavy requests is taken: retry after ``retry_after`` seconds."""

    code = "busy"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after


class ExternalToolError(TaxonomistError):
    """A program Taxonomist runs for the user (git, DVC) is missing or failed."""

    code = "external_tool_failed"
