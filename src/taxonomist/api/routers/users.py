"""User administration (admins only)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import func, select

from taxonomist.api.deps import AdminDep, ServicesDep
from taxonomist.api.errors import ERROR_RESPONSES
from taxonomist.api.schemas import UserCreate, UserOut, UserUpdate
from taxonomist.errors import ConflictError, NotFoundError
from taxonomist.store import User
from taxonomist.store.accounts import audit, create_user, hash_password

router = APIRouter(prefix="/users", tags=["users"], responses=ERROR_RESPONSES)


@router.post("", response_model=UserOut, status_code=201, summary="Create a user")
def create(body: UserCreate, admin: AdminDep, svc: ServicesDep) -> UserOut:
    with svc.db.session() as s:
        user = create_user(s, body.username, body.password, body.role)
        audit(s, admin.id, "create_user", "user", str(user.id), {"role": body.role})
        return UserOut.model_validate(user)


@router.get("", response_model=list[UserOut], summary="All users")
def list_users(admin: AdminDep, svc: ServicesDep) -> list[UserOut]:
    with svc.db.session() as s:
        return [UserOut.model_validate(u) for u in s.scalars(select(User).order_by(User.id))]


@router.patch("/{user_id}", response_model=UserOut, summary="Change role, disable, reset password")
def update(user_id: int, body: UserUpdate, admin: AdminDep, svc: ServicesDep) -> UserOut:
    with svc.db.session() as s:
        user = s.get(User, user_id)
        if user is None:
            raise NotFoundError(f"No user with id {user_id}.")
        demoting = body.role == "member" and user.role == "admin"
        disabling = body.disabled is True and user.role == "admin" and not user.disabled
        if demoting or disabling:
            admins = s.scalar(
                select(func.count()).select_from(User).where(User.role == "admin", ~User.disabled)
            )
            if admins is not None and admins <= 1:
                raise ConflictError("This is the last active admin: make another user admin first.")
        changes = body.model_dump(exclude_none=True, exclude={"password"})
        for key, value in changes.items():
            setattr(user, key, value)
        if body.password is not None:
            user.password_hash = hash_password(body.password)
            changes["password"] = "reset"
        audit(s, admin.id, "update_user", "user", str(user_id), changes)
        out = UserOut.model_validate(user)
    svc.tokens.clear()
    return out
