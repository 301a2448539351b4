"""One JSON error shape for every failure: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError as SQLAlchemyDataError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from taxonomist.api.request_ids import REQUEST_ID_HEADER
from taxonomist.errors import (
    ModelNotFoundError,
    ServiceBusyError,
    TaxonomistError,
    TooManyRequestsError,
)
from taxonomist.logs import request_id_var
from taxonomist.registry import model_not_found

logger = logging.getLogger(__name__)
MAX_ID = 2**63 - 1  # the largest id a database row can have

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"description": text, "model": None}
    for code, text in [
        (400, "The input cannot be used as given"),
        (401, "No valid token"),
        (403, "Not allowed for this user"),
        (404, "No such resource (or not yours)"),
        (409, "Conflicts with the current state"),
        (413, "Too large"),
        (422, "Invalid parameters or data"),
        (429, "Too many attempts: wait Retry-After seconds"),
        (503, "Busy or not ready yet: retry after Retry-After seconds"),
    ]
}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "form", "header")]
    return ".".join(parts) or "body"


def scrub_paths(value: Any, roots: list[str]) -> Any:
    """``value`` (a message or details) with every path under one of ``roots`` (the server's
    home and temporary folders) cut to its file name: no server layout in an answer."""
    if isinstance(value, str):
        for root in roots:
            value = re.sub(re.escape(root) + r"[^\s'\"]*", lambda m: Path(m.group()).name, value)
        return value
    if isinstance(value, dict):
        return {k: scrub_paths(v, roots) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_paths(v, roots) for v in value]
    return value


def _server_roots(request: Request) -> list[str]:
    roots = {tempfile.gettempdir(), str(Path(tempfile.gettempdir()).resolve())}
    svc = getattr(request.app.state, "services", None)
    if svc is not None:
        roots |= {str(svc.settings.home), str(svc.settings.home.resolve())}
    return sorted(roots, key=len, reverse=True)  # the longest first: /tmp/x before /tmp


def _for_caller(request: Request, exc: TaxonomistError) -> TaxonomistError:
    """A member's 'no such model' names only the models they own (the registry knows all)."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(exc, ModelNotFoundError) or "models" not in exc.details:
        return exc
    if principal is None or principal.is_admin:
        return exc
    owned = request.app.state.services.models.owned_by(principal)
    known = [n for n in exc.details["models"] if n in owned]
    return model_not_found(str(exc.details.get("ref", "")), known)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TaxonomistError)
    async def _ours(request: Request, exc: TaxonomistError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        if isinstance(exc, TooManyRequestsError | ServiceBusyError):
            headers = {"Retry-After": str(exc.retry_after)}
        exc = await run_in_threadpool(_for_caller, request, exc)
        body = scrub_paths(exc.to_dict(), _server_roots(request))
        return JSONResponse(body, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": _location(tuple(e.get("loc", ()))), "problem": e.get("msg", "")}
            for e in exc.errors()
        ]
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:5])
        return JSONResponse(
            error_body(
                "invalid_request", f"The request is invalid: {summary}.", {"errors": problems}
            ),
            status_code=422,
        )

    # An id past the database's 64 bits (SQLite raises OverflowError binding it; PostgreSQL
    # a DataError), or a text past a column's size: the request's fault, whichever field.
    @app.exception_handler(OverflowError)
    @app.exception_handler(SQLAlchemyDataError)
    async def _out_of_range(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            error_body(
                "invalid_request",
                "A value in the request does not fit the database: ids are whole numbers from 1 "
                f"to {MAX_ID}, and texts must fit their fields. Check the ids you sent.",
            ),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}
        message = exc.detail if isinstance(exc.detail, str) else "HTTP error"
        if exc.status_code == 404 and message == "Not Found":
            message = f"No such endpoint: {request.method} {request.url.path}. See /docs."
        return JSONResponse(
            error_body(codes.get(exc.status_code, "http_error"), message),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette sends this response from outside RequestIdMiddleware: the id is added here.
        request_id = request_id_var.get()
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        logged, report = (
            (f"logged under request id {request_id}", "report it with that id")
            if request_id
            else ("logged", "report it")
        )
        return JSONResponse(
            error_body(
                "internal_error",
                f"Something went wrong on our side; the error is {logged}. Try again, and "
                f"{report} if it persists.",
                {"request_id": request_id} if request_id else None,
            ),
            status_code=500,
            headers={REQUEST_ID_HEADER: request_id} if request_id else None,
        )
