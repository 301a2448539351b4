"""Request dependencies: the services and the authenticated user."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from taxonomist.api.services import Principal, Services
from taxonomist.errors import AuthenticationError, PermissionDeniedError
from taxonomist.store.accounts import as_utc, token_hash, user_for_token

bearer = HTTPBearer(auto_error=False, description="A login token or a personal API token.")


# The dependencies are async so that they run on the event loop: a sync dependency costs a
# thread-pool round trip per request (~0.3 ms each), a third of a cached prediction's overhead.
async def services(request: Request) -> Services:
    return request.app.state.services


async def current_user(
    svc: Annotated[Services, Depends(services)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AuthenticationError(
            "This endpoint needs a token: log in with POST /api/v1/auth/login and send "
            "'Authorization: Bearer <token>'."
        )
    key = token_hash(credentials.credentials)
    principal = svc.tokens.get(key)
    if principal is not None:
        return principal
    return await run_in_threadpool(_lookup, svc, key, credentials.credentials)


def _lookup(svc: Services, key: str, token_text: str) -> Principal:
    """The database half of ``current_user`` (on a worker thread)."""
    with svc.db.session() as s:
        user, token = user_for_token(s, token_text)
        token.last_used_at = datetime.now(UTC)
        principal = Principal(user.id, user.username, user.role, token.id)
        expires = token.expires_at
    svc.tokens.put(key, principal, None if expires is None else as_utc(expires).timestamp())
    return principal


async def admin_user(user: Annotated[Principal, Depends(current_user)]) -> Principal:
    if not user.is_admin:
        raise PermissionDeniedError("Only an admin can do this.")
    return user


ServicesDep = Annotated[Services, Depends(services)]
UserDep = Annotated[Principal, Depends(current_user)]
AdminDep = Annotated[Principal, Depends(admin_user)]
