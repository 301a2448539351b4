"""Log in, log out, who am I, personal API tokens."""

from __future__ import annotations

from fastapi import APIRouter, Request

from taxonomist.api.deps import ServicesDep, UserDep
from taxonomist.api.errors import ERROR_RESPONSES
from taxonomist.api.schemas import (
    LoginRequest,
    LoginResponse,
    NewToken,
    PasswordChange,
    PasswordChanged,
    TokenOut,
    TokenRequest,
    UserOut,
)
from taxonomist.api.services import accounts as service

router = APIRouter(prefix="/auth", tags=["auth"], responses=ERROR_RESPONSES)


@router.post("/login", response_model=LoginResponse, summary="Exchange a password for a token")
def login(body: LoginRequest, svc: ServicesDep, request: Request) -> LoginResponse:
    return service.login(svc, body, request.client.host if request.client else "")


@router.post("/logout", status_code=204, summary="Revoke the token of this request")
def logout(user: UserDep, svc: ServicesDep) -> None:
    service.logout(svc, user)


@router.post(
    "/password",
    response_model=PasswordChanged,
    summary="Change your password",
    description="Needs the current password (403 when it is wrong, audited). Every other token "
    "of yours is revoked: sessions elsewhere, and any token someone else may hold, stop working.",
)
def change_password(body: PasswordChange, user: UserDep, svc: ServicesDep) -> PasswordChanged:
    return PasswordChanged(tokens_revoked=service.change_password(svc, user, body))


@router.get("/me", response_model=UserOut, summary="The user behind the token")
def me(user: UserDep, svc: ServicesDep) -> UserOut:
    return service.me(svc, user)


@router.post("/tokens", response_model=NewToken, status_code=201, summary="Create an API token")
def create_token(body: TokenRequest, user: UserDep, svc: ServicesDep) -> NewToken:
    return service.create_token(svc, user, body)


@router.get("/tokens", response_model=list[TokenOut], summary="Your tokens (never the secrets)")
def list_tokens(user: UserDep, svc: ServicesDep) -> list[TokenOut]:
    return service.list_tokens(svc, user)


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke one of your tokens")
def revoke_token(token_id: int, user: UserDep, svc: ServicesDep) -> None:
    service.revoke_token(svc, user, token_id)
