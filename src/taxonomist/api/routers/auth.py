"""Log in, log out, who am I, personal API tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter
from sqlalchemy import select

from taxonomist.api.deps import ServicesDep, UserDep
from taxonomist.api.errors import ERROR_RESPONSES
from taxonomist.api.schemas import (
    LoginRequest,
    LoginResponse,
    NewToken,
    TokenOut,
    TokenRequest,
    UserOut,
)
from taxonomist.errors import NotFoundError
from taxonomist.store import ApiToken, User
from taxonomist.store.accounts import audit, authenticate, issue_token

router = APIRouter(prefix="/auth", tags=["auth"], responses=ERROR_RESPONSES)


@router.post("/login", response_model=LoginResponse, summary="Exchange a password for a token")
def login(body: LoginRequest, svc: ServicesDep) -> LoginResponse:
    with svc.db.session() as s:
        user = authenticate(s, body.username, body.password)
        plain, token = issue_token(
            s, user, kind="session", name="login", ttl=timedelta(hours=svc.settings.session_hours)
        )
        audit(s, user.id, "login", "auth", str(token.id))
        return LoginResponse(
            access_token=plain, expires_at=token.expires_at, user=UserOut.model_validate(user)
        )


@router.post("/logout", status_code=204, summary="Revoke the token of this request")
def logout(user: UserDep, svc: ServicesDep) -> None:
    with svc.db.session() as s:
        token = s.get_one(ApiToken, user.token_id)
        token.revoked_at = datetime.now(UTC)
        audit(s, user.id, "logout", "auth", str(token.id))
    svc.tokens.clear()


@router.get("/me", response_model=UserOut, summary="The user behind the token")
def me(user: UserDep, svc: ServicesDep) -> UserOut:
    with svc.db.session() as s:
        return UserOut.model_validate(s.get_one(User, user.id))


@router.post("/tokens", response_model=NewToken, status_code=201, summary="Create an API token")
def create_token(body: TokenRequest, user: UserDep, svc: ServicesDep) -> NewToken:
    with svc.db.session() as s:
        ttl = None if body.expires_days is None else timedelta(days=body.expires_days)
        plain, token = issue_token(
            s, s.get_one(User, user.id), kind="personal", name=body.name, ttl=ttl
        )
        audit(s, user.id, "create_token", "token", str(token.id), {"name": body.name})
        return NewToken(**TokenOut.model_validate(token).model_dump(), token=plain)


@router.get("/tokens", response_model=list[TokenOut], summary="Your tokens (never the secrets)")
def list_tokens(user: UserDep, svc: ServicesDep) -> list[TokenOut]:
    with svc.db.session() as s:
        rows = s.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
        ).all()
        return [TokenOut.model_validate(t) for t in rows]


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke one of your tokens")
def revoke_token(token_id: int, user: UserDep, svc: ServicesDep) -> None:
    with svc.db.session() as s:
        token = s.get(ApiToken, token_id)
        if token is None or token.user_id != user.id:
            raise NotFoundError(f"You have no token with id {token_id}.")
        if token.revoked_at is None:
            token.revoked_at = datetime.now(UTC)
            audit(s, user.id, "revoke_token", "token", str(token_id))
    svc.tokens.clear()
