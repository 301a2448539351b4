"""The service's front door, in front of routing: the bearer token of every protected route is
checked and the body's bytes are counted against the route's limit before anything parses it.

FastAPI reads and parses a request's body (a multipart upload spools to the temp disk, a JSON
body is held in memory) before its dependencies run, so a token check in a dependency comes
too late: an anonymous 50 GB chunked upload would fill the disk first. This pure ASGI
middleware answers 401 before reading a byte, 413 as soon as the declared length or the bytes
received (chunked bodies too) pass the limit, and hands the app the authenticated
:class:`Principal` in the request's state.

Hand-written: the limiters we could use (a reverse proxy's ``client_max_body_size``, uvicorn's
``--limit-max-requests``) know nothing of our routes or tokens, and the service must be safe
without a proxy in front of it.
"""

from __future__ import annotations

import hmac
import re
from datetime import UTC, datetime
from typing import Any

from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from taxonomist.api.services import Principal, Services
from taxonomist.api.services.uploads import upload_limit
from taxonomist.config import Settings
from taxonomist.errors import AuthenticationError, PayloadTooLargeError, TaxonomistError
from taxonomist.store.accounts import as_utc, token_hash, user_for_token

API_PREFIX = "/api/v1"
PUBLIC = frozenset({f"{API_PREFIX}/auth/login"})  # under /api: everything else needs a token
METRICS_PATH = "/metrics"
UPLOAD_SETTING = "TAXONOMIST_MAX_UPLOAD_MB"
NO_TOKEN = (
    "This endpoint needs a token: log in with POST /api/v1/auth/login and send "
    "'Authorization: Bearer <token>'."
)


class RequestGuard:
    """Pure ASGI middleware: token first, then the body's size, then the app."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app, self.settings = app, settings
        self.upload_limit = upload_limit(settings)
        self.body_limit = int(settings.max_request_mb * 1e6)
        self._uploads: list[re.Pattern[str]] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (
            path.startswith(API_PREFIX + "/") or path == METRICS_PATH
        ):
            await self.app(scope, receive, send)
            return
        try:
            if path not in PUBLIC:
                principal = await self._authenticate(scope)
                if path == METRICS_PATH:
                    await self._metrics(scope, receive, send, principal)
                    return
                scope.setdefault("state", {})["principal"] = principal
            limit, setting = self._limit(scope)
            _refuse_declared(scope, limit, setting)
        except TaxonomistError as exc:
            await _answer(exc, scope, receive, send)
            return
        await self._counted(scope, receive, send, limit, setting)

    async def _authenticate(self, scope: dict[str, Any]) -> Principal | None:
        """The token's principal; ``None`` for the scrape token on ``/metrics``."""
        token = _bearer(scope)
        if token is None:
            if scope["path"] == METRICS_PATH:
                raise AuthenticationError(
                    "/metrics needs the scrape token (TAXONOMIST_METRICS_TOKEN) or an admin's "
                    "token: send 'Authorization: Bearer <token>' (Prometheus: "
                    "authorization.credentials_file in the scrape config)."
                )
            raise AuthenticationError(NO_TOKEN)
        scrape = self.settings.metrics_token
        if (
            scope["path"] == METRICS_PATH
            and scrape is not None
            and hmac.compare_digest(token.encode(), scrape.get_secret_value().encode())
        ):
            return None
        svc: Services = scope["app"].state.services
        key = token_hash(token)
        principal = svc.tokens.get(key)
        if principal is None:
            principal = await run_in_threadpool(_lookup, svc, key, token)
        return principal

    async def _metrics(
        self, scope: dict[str, Any], receive: Any, send: Any, principal: Principal | None
    ) -> None:
        if principal is not None and not principal.is_admin:
            await _answer(
                AuthenticationError(
                    "/metrics is for Prometheus and admins: send the scrape token "
                    "(TAXONOMIST_METRICS_TOKEN) or an admin's token."
                ),
                scope,
                receive,
                send,
            )
            return
        await self.app(scope, receive, send)

    def _limit(self, scope: dict[str, Any]) -> tuple[int, str]:
        """The route's body limit in bytes, and the setting that raises it."""
        if self._uploads is None:
            self._uploads = _upload_routes(scope["app"])
        if any(p.match(scope["path"]) for p in self._uploads):
            return self.upload_limit, UPLOAD_SETTING
        return self.body_limit, "TAXONOMIST_MAX_REQUEST_MB"

    async def _counted(
        self, scope: dict[str, Any], receive: Any, send: Any, limit: int, setting: str
    ) -> None:
        """Run the app with the body counted: past ``limit`` the app sees the client leave,
        its answer is dropped and a 413 goes out instead (when nothing was sent yet)."""
        received, over, started = 0, False, False

        async def counting_receive() -> dict[str, Any]:
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            nonlocal started
            if over:
                return
            started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not over:
                raise
        if over and not started:
            await _answer(_too_large(limit, setting), scope, receive, send)


def _bearer(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() or None if scheme.lower() == "bearer" else None
    return None


def _lookup(svc: Services, key: str, token_text: str) -> Principal:
    """The database half of authentication (on a worker thread); cached for a few seconds."""
    with svc.db.session() as s:
        user, token = user_for_token(s, token_text)
        token.last_used_at = datetime.now(UTC)
        principal = Principal(user.id, user.username, user.role, token.id)
        expires = token.expires_at
    svc.tokens.put(key, principal, None if expires is None else as_utc(expires).timestamp())
    return principal


def _upload_routes(app: Any) -> list[re.Pattern[str]]:
    """The path patterns of the operations that take a file (multipart form data, in the
    app's OpenAPI schema): the upload limit applies to them."""
    paths = app.openapi().get("paths", {})
    return [
        re.compile("^" + re.sub(r"\{[^/}]+\}", "[^/]+", path) + "$")
        for path, operations in paths.items()
        if any(
            "multipart/form-data" in op.get("requestBody", {}).get("content", {})
            for op in operations.values()
            if isinstance(op, dict)
        )
    ]


def _refuse_declared(scope: dict[str, Any], limit: int, setting: str) -> None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                declared = 0
            if declared > limit:
                raise _too_large(limit, setting, declared)


def _too_large(limit: int, setting: str, declared: int | None = None) -> TaxonomistError:
    size = f" ({declared / 1e6:.1f} MB)" if declared is not None else ""
    what = "the upload limit" if setting == UPLOAD_SETTING else "this endpoint's limit"
    return PayloadTooLargeError(
        f"The request's body{size} is larger than {what} of {limit / 1e6:g} MB. Send "
        f"less (a sample, or several smaller requests), or raise {setting}.",
        details={"limit_bytes": limit},
    )


async def _answer(exc: TaxonomistError, scope: dict[str, Any], receive: Any, send: Any) -> None:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    response = JSONResponse(exc.to_dict(), status_code=exc.status, headers=headers)
    await response(scope, receive, send)
