"""Users, passwords (argon2) and bearer tokens (stored as SHA-256, with expiry)."""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from taxonomist.errors import AuthenticationError, ConflictError, InvalidParameterError
from taxonomist.logs import audit as log_audit
from taxonomist.store.tables import ApiToken, AuditEntry, ModelOwner, Role, User

TOKEN_PREFIX = "tx_"
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{1,63}$")
MIN_PASSWORD = 8
_hasher: Any = None


def _argon() -> Any:
    global _hasher
    if _hasher is None:
        from argon2 import PasswordHasher

        _hasher = PasswordHasher()
    return _hasher


# Argon2 is made to cost memory and CPU: at most two hashes at once (the cores), so that 40
# parallel guesses queue instead of taking both cores and gigabytes.
_HASHING = threading.BoundedSemaphore(2)


def hash_password(password: str) -> str:
    with _HASHING:
        return str(_argon().hash(password))


def verify_password(stored: str, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        with _HASHING:
            return bool(_argon().verify(stored, password))
    except (VerificationError, InvalidHashError):
        return False


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidParameterError(
            f"The password is too short: use at least {MIN_PASSWORD} characters."
        )


def create_user(s: Session, username: str, password: str, role: str = Role.MEMBER) -> User:
    if not _USERNAME.match(username):
        raise InvalidParameterError(
            f"Invalid username '{username}': 2-64 letters, digits or '_.@-', starting with a "
            "letter or digit."
        )
    if role not in {r.value for r in Role}:
        raise InvalidParameterError(f"Unknown role '{role}': use 'admin' or 'member'.")
    check_password(password)
    if s.scalar(select(User).where(User.username == username)) is not None:
        raise ConflictError(f"The username '{username}' is taken; choose another.")
    user = User(username=username, password_hash=hash_password(password), role=str(role))
    s.add(user)
    s.flush()
    return user


# A fixed hash to verify against when the user does not exist, so that a wrong username and a
# wrong password take the same time (no user enumeration through timing).
_DUMMY_HASH: str | None = None


def authenticate(s: Session, username: str, password: str) -> User:
    global _DUMMY_HASH
    user = s.scalar(select(User).where(User.username == username))
    if user is None:
        _DUMMY_HASH = _DUMMY_HASH or hash_password("not a password")
        verify_password(_DUMMY_HASH, password)
    if user is None or not verify_password(user.password_hash, password):
        raise AuthenticationError("Wrong username or password.")
    if user.disabled:
        raise AuthenticationError(f"The account '{username}' is disabled; ask an admin.")
    return user


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    s: Session, user: User, *, kind: str, name: str, ttl: timedelta | None
) -> tuple[str, ApiToken]:
    """A new token: the plaintext (shown once) and its row."""
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user_id=user.id,
        name=name,
        kind=kind,
        token_hash=token_hash(plain),
        prefix=plain[:10],
        expires_at=None if ttl is None else datetime.now(UTC) + ttl,
    )
    s.add(row)
    s.flush()
    return plain, row


def user_for_token(s: Session, token: str) -> tuple[User, ApiToken]:
    row = s.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
    if row is None:
        raise AuthenticationError("Unknown token: log in again or create a new API token.")
    if row.revoked_at is not None:
        raise AuthenticationError("This token was revoked: log in again or use another token.")
    if row.expires_at is not None and as_utc(row.expires_at) <= datetime.now(UTC):
        raise AuthenticationError("This token has expired: log in again.")
    user = s.get(User, row.user_id)
    if user is None or user.disabled:
        raise AuthenticationError("The account of this token is disabled; ask an admin.")
    return user, row


def revoke_tokens(s: Session, user_id: int, *, keep: int | None = None) -> int:
    """Revoke every live token of a user (but ``keep``, the one in use); how many."""
    q = select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
    now, n = datetime.now(UTC), 0
    for token in s.scalars(q):
        if token.id != keep:
            token.revoked_at, n = now, n + 1
    return n


def as_utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)  # SQLite returns naive datetimes


def ensure_admin(s: Session, password: str | None) -> str | None:
    """Create the first admin when no user exists; return the generated one-time password
    (``None`` when ``password`` was given or an admin already exists)."""
    if s.scalar(select(User.id).limit(1)) is not None:
        return None
    generated = None
    if not password:
        generated = password = secrets.token_urlsafe(12)
    user = create_user(s, "admin", password, Role.ADMIN)
    audit(s, user.id, "create_first_admin", "user", str(user.id))
    return generated


class DemoAccount(NamedTuple):
    token: str
    user_id: int
    admin_password: str | None  # the first admin's one-time password, when just created


def ensure_demo_account(
    s: Session,
    username: str,
    password: str,
    model_name: str,
    *,
    admin_password: str | None = None,
    token_ttl: timedelta = timedelta(days=7),
) -> DemoAccount:
    """Make a demo ready to sign in to: the first admin (when no user exists yet, with
    ``admin_password`` or a generated one), the member ``username`` with ``password`` (created,
    or enabled again with that password), owner of the model ``model_name``, and a new
    personal API token of that member."""
    generated = ensure_admin(s, admin_password)
    user = s.scalar(select(User).where(User.username == username))
    if user is None:
        user = create_user(s, username, password)
    else:
        check_password(password)
        user.password_hash, user.disabled = hash_password(password), False
    s.merge(ModelOwner(name=model_name, owner_id=user.id))
    token, _ = issue_token(s, user, kind="personal", name="demo", ttl=token_ttl)
    return DemoAccount(token, user.id, generated)


def audit(
    s: Session,
    user_id: int | None,
    action: str,
    resource: str,
    resource_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    s.add(
        AuditEntry(
            user_id=user_id,
            action=action,
            resource=resource,
            resource_id=resource_id,
            details=details or {},
        )
    )
    # ... and the same entry in the service's JSON log (taxonomist.audit)
    log_audit(action, user_id=user_id, resource=resource, resource_id=resource_id, details=details)
