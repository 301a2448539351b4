"""Request ids: every response carries ``X-Request-ID`` (the caller's, when valid, else a new
one), and every log line written while serving the request carries the same id.

The middleware sets :data:`taxonomist.logs.request_id_var` and does not reset it: Starlette's
``ServerErrorMiddleware``, outside every user middleware, logs an unhandled error after this
middleware has returned, and that line needs the id too. Nothing leaks: an ASGI server (and
``TestClient``) serves each request in a task of its own, whose context ends with it.
"""

from __future__ import annotations

import re
from typing import Any

from taxonomist.logs import request_id_var
from taxonomist.monitor.log import new_request_id

REQUEST_ID_HEADER = "X-Request-ID"
_HEADER = REQUEST_ID_HEADER.lower().encode()
_VALID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def request_id_from(header: str | None) -> str:
    """The caller's id when it is 1-32 of A-Z a-z 0-9 _ -; a new one otherwise."""
    return header if header and _VALID.match(header) else new_request_id()


class RequestIdMiddleware:
    """Pure ASGI middleware (see MetricsMiddleware): the request id, in the logs' context and
    in the response's headers (unless the route set the header itself)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers", ()) if k == _HEADER), None)
        request_id = request_id_from(given.decode("latin-1") if given is not None else None)
        request_id_var.set(request_id)  # not reset: see the module's docstring
        value = request_id.encode()

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(k.lower() == _HEADER for k, _ in headers):
                    message = {**message, "headers": [*headers, (_HEADER, value)]}
            await send(message)

        await self.app(scope, receive, send_with_id)
