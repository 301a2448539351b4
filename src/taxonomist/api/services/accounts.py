"""Accounts: log in and out, personal API tokens, and users (an admin's business). Every
change is audited; a change that could leave a cached token stale clears the token cache."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from taxonomist.api.schemas import (
    LoginRequest,
    LoginResponse,
    NewToken,
    PasswordChange,
    TokenOut,
    TokenRequest,
    UserCreate,
    UserOut,
    UserUpdate,
)
from taxonomist.api.services.state import Principal, Services
from taxonomist.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    TooManyRequestsError,
)
from taxonomist.store import ApiToken, Role, User
from taxonomist.store.accounts import (
    audit,
    authenticate,
    create_user,
    hash_password,
    issue_token,
    revoke_tokens,
    verify_password,
)


# -- sessions and tokens ----------------------------------------------------------------------
def login(svc: Services, body: LoginRequest, address: str = "") -> LoginResponse:
    """A session token for a username and password (401 when they do not match; 429 with the
    seconds to wait after repeated failures, for the username or the client ``address``).
    Failures are audited."""
    wait = svc.logins.wait_for(body.username, address)
    if wait > 0:
        raise TooManyRequestsError(
            f"Too many failed logins: try again in {math.ceil(wait)} s.",
            retry_after=math.ceil(wait),
        )
    try:
        with svc.db.session() as s:
            user = authenticate(s, body.username, body.password)
    except AuthenticationError:
        svc.logins.failed(body.username, address)
        with svc.db.session() as s:
            audit(s, None, "login_failed", "auth", body.username[:200], {"address": address})
        raise
    svc.logins.succeeded(body.username)
    with svc.db.session() as s:
        user = s.get_one(User, user.id)
        plain, token = issue_token(
            s, user, kind="session", name="login", ttl=timedelta(hours=svc.settings.session_hours)
        )
        audit(s, user.id, "login", "auth", str(token.id))
        return LoginResponse(
            access_token=plain, expires_at=token.expires_at, user=UserOut.model_validate(user)
        )


def logout(svc: Services, user: Principal) -> None:
    """Revoke the token of this request."""
    with svc.db.session() as s:
        token = s.get_one(ApiToken, user.token_id)
        token.revoked_at = datetime.now(UTC)
        audit(s, user.id, "logout", "auth", str(token.id))
    svc.tokens.clear()


def me(svc: Services, user: Principal) -> UserOut:
    with svc.db.session() as s:
        return UserOut.model_validate(s.get_one(User, user.id))


def create_token(svc: Services, user: Principal, body: TokenRequest) -> NewToken:
    """A personal API token; its secret is in the answer and nowhere else."""
    with svc.db.session() as s:
        ttl = None if body.expires_days is None else timedelta(days=body.expires_days)
        plain, token = issue_token(
            s, s.get_one(User, user.id), kind="personal", name=body.name, ttl=ttl
        )
        audit(s, user.id, "create_token", "token", str(token.id), {"name": body.name})
        return NewToken(**TokenOut.model_validate(token).model_dump(), token=plain)


def list_tokens(svc: Services, user: Principal) -> list[TokenOut]:
    with svc.db.session() as s:
        rows = s.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
        ).all()
        return [TokenOut.model_validate(t) for t in rows]


def revoke_token(svc: Services, user: Principal, token_id: int) -> None:
    """Revoke one of the user's own tokens (404 for anyone else's)."""
    with svc.db.session() as s:
        token = s.get(ApiToken, token_id)
        if token is None or token.user_id != user.id:
            raise NotFoundError(f"You have no token with id {token_id}.")
        if token.revoked_at is None:
            token.revoked_at = datetime.now(UTC)
            audit(s, user.id, "revoke_token", "token", str(token_id))
    svc.tokens.clear()


def change_password(svc: Services, user: Principal, body: PasswordChange) -> int:
    """Set a new password after checking the current one (403 when it is wrong); every other
    token of the user is revoked (a stolen one stops working). Returns how many."""
    with svc.db.session() as s:
        right = verify_password(s.get_one(User, user.id).password_hash, body.old_password)
        if not right:  # audited in its own transaction: the refusal itself is kept
            audit(s, user.id, "change_password_refused", "user", str(user.id))
    if not right:
        raise PermissionDeniedError("The current password is wrong; nothing was changed.")
    with svc.db.session() as s:
        row = s.get_one(User, user.id)
        row.password_hash = hash_password(body.new_password)
        revoked = revoke_tokens(s, user.id, keep=user.token_id)
        audit(s, user.id, "change_password", "user", str(user.id), {"tokens_revoked": revoked})
    svc.tokens.clear()
    return revoked


# -- users ------------------------------------------------------------------------------------
def add_user(svc: Services, admin: Principal, body: UserCreate) -> UserOut:
    with svc.db.session() as s:
        user = create_user(s, body.username, body.password, body.role)
        audit(s, admin.id, "create_user", "user", str(user.id), {"role": body.role})
        return UserOut.model_validate(user)


def list_users(svc: Services) -> list[UserOut]:
    with svc.db.session() as s:
        return [UserOut.model_validate(u) for u in s.scalars(select(User).order_by(User.id))]


def update_user(svc: Services, admin: Principal, user_id: int, body: UserUpdate) -> UserOut:
    """Change a user's role, disable them or reset their password; the last active admin
    cannot be demoted or disabled (409)."""
    with svc.db.session() as s:
        user = s.get(User, user_id)
        if user is None:
            raise NotFoundError(f"No user with id {user_id}.")
        demoting = body.role == Role.MEMBER and user.role == Role.ADMIN
        disabling = body.disabled is True and user.role == Role.ADMIN and not user.disabled
        if demoting or disabling:
            admins = s.scalar(
                select(func.count())
                .select_from(User)
                .where(User.role == Role.ADMIN.value, ~User.disabled)
            )
            if admins is not None and admins <= 1:
                raise ConflictError("This is the last active admin: make another user admin first.")
        changes = body.model_dump(mode="json", exclude_none=True, exclude={"password"})
        for key, value in changes.items():
            setattr(user, key, value)
        if body.password is not None:
            user.password_hash = hash_password(body.password)
            changes["password"] = "reset"
        if body.password is not None or body.disabled:  # a reset or a disabled account
            changes["tokens_revoked"] = revoke_tokens(s, user.id)  # ends every session
        audit(s, admin.id, "update_user", "user", str(user_id), changes)
        out = UserOut.model_validate(user)
    svc.tokens.clear()
    return out
