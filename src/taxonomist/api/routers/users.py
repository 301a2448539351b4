"""User administration (admins only)."""

from __future__ import annotations

from fastapi import APIRouter

from taxonomist.api.deps import AdminDep, ServicesDep
from taxonomist.api.errors import ERROR_RESPONSES
from taxonomist.api.schemas import UserCreate, UserOut, UserUpdate
from taxonomist.api.services import accounts as service

router = APIRouter(prefix="/users", tags=["users"], responses=ERROR_RESPONSES)


@router.post("", response_model=UserOut, status_code=201, summary="Create a user")
def create(body: UserCreate, admin: AdminDep, svc: ServicesDep) -> UserOut:
    return service.add_user(svc, admin, body)


@router.get("", response_model=list[UserOut], summary="All users")
def list_users(admin: AdminDep, svc: ServicesDep) -> list[UserOut]:
    return service.list_users(svc)


@router.patch("/{user_id}", response_model=UserOut, summary="Change role, disable, reset password")
def update(user_id: int, body: UserUpdate, admin: AdminDep, svc: ServicesDep) -> UserOut:
    return service.update_user(svc, admin, user_id, body)
