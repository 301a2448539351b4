"""Request dependencies, as ``Annotated`` aliases: the services, the authenticated user, and
path parameters resolved to what the user may reach (a 404 otherwise: someone else's dataset
or model looks like a missing one)."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Header, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from taxonomist.api.guard import NO_TOKEN
from taxonomist.api.request_ids import request_id_from
from taxonomist.api.services import Principal, Services, datasets, models, retrieval
from taxonomist.api.services.predictions import RequestContext
from taxonomist.errors import AuthenticationError, PermissionDeniedError, ServiceBusyError
from taxonomist.logs import request_id_var
from taxonomist.models.config import MODEL_NAME_PATTERN
from taxonomist.store import Dataset

bearer = HTTPBearer(auto_error=False, description="A login token or a personal API token.")


# The dependencies are async so that they run on the event loop: a sync dependency costs a
# thread-pool round trip per request (~0.3 ms each), a third of a cached prediction's overhead.
async def services(request: Request) -> Services:
    return request.app.state.services


async def current_user(
    request: Request,
    # Declared for the OpenAPI schema's security scheme; RequestGuard has checked it already.
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The principal RequestGuard authenticated before routing (the error handlers read it
    too, to show a member only their names)."""
    principal = getattr(request.state, "principal", None)
    if principal is None:  # an app without the guard in front: refuse rather than guess
        raise AuthenticationError(NO_TOKEN)
    return principal


async def admin_user(user: Annotated[Principal, Depends(current_user)]) -> Principal:
    if not user.is_admin:
        raise PermissionDeniedError("Only an admin can do this.")
    return user


SOURCES = ("api", "ui", "cli")


async def request_context(
    x_request_id: Annotated[
        str | None,
        Header(description="Your id for this request (1-32 of A-Z a-z 0-9 _ -); default: new."),
    ] = None,
    x_taxonomist_source: Annotated[
        str | None, Header(description="Who sends it: api (default), ui or cli.")
    ] = None,
) -> RequestContext:
    """The id a request's predictions are logged under (the one RequestIdMiddleware put in
    the logs' context and the response's header), and where they came from."""
    rid = request_id_var.get() or request_id_from(x_request_id)
    source = x_taxonomist_source if x_taxonomist_source in SOURCES else "api"
    return RequestContext(rid, source or "api")


ServicesDep = Annotated[Services, Depends(services)]
RequestDep = Annotated[RequestContext, Depends(request_context)]
UserDep = Annotated[Principal, Depends(current_user)]
AdminDep = Annotated[Principal, Depends(admin_user)]


HEAVY_WAIT = 10  # seconds a heavy request waits for a slot before it is told to come back


async def heavy_slot(request: Request) -> AsyncIterator[None]:
    """One of ``TAXONOMIST_HEAVY_REQUESTS`` slots for the duration of a heavy request (a file
    to predict, an upload to parse, a drift report, a map, a benchmark). Those run on the
    request thread pool; unbounded, a burst of them would take every thread, and light
    requests (predictions, listings) would queue behind them. Waiting for a slot holds no
    thread; after ``HEAVY_WAIT`` seconds the answer is a 503 with ``Retry-After``."""
    slots: asyncio.Semaphore = request.app.state.heavy_slots
    try:
        await asyncio.wait_for(slots.acquire(), HEAVY_WAIT)
    except TimeoutError:
        raise ServiceBusyError(
            f"The service is busy with {request.app.state.heavy_limit} heavy requests "
            f"(files, drift reports, maps) and this one waited {HEAVY_WAIT} s for its turn. "
            "Retry in a few seconds; for big files use `taxonomist predict` or a job.",
            retry_after=HEAVY_WAIT,
        ) from None
    try:
        yield
    finally:
        slots.release()
        await run_in_threadpool(release_free_memory)


def release_free_memory() -> None:
    """Hand the memory a heavy request freed back to the system. Its tables are freed, but
    glibc's malloc and Arrow's mimalloc keep the pages for reuse, and under concurrent load
    the pages of one request's arena do not serve the next: the service's RSS climbed
    ~150 MB a minute in bench/soak.py without this, and stays flat with it."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _libc() -> Any:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:  # not glibc (macOS, musl): nothing to trim
        return None


_LIBC = _libc()


HeavySlot = Depends(heavy_slot)


# The resolvers below read the database: plain functions, so they run on a worker thread.
def visible_dataset(
    dataset_id: Annotated[int, Path(description="A dataset id")],
    user: UserDep,
    svc: ServicesDep,
) -> Dataset:
    return datasets.find_visible(svc, user, dataset_id)


def visible_qa_dataset(
    dataset_id: Annotated[int, Path(description="A question-answer dataset's id")],
    user: UserDep,
    svc: ServicesDep,
) -> Dataset:
    return retrieval.qa_dataset(svc, user, dataset_id)


def visible_model(
    name: Annotated[str, Path(pattern=MODEL_NAME_PATTERN, description="Registered model name")],
    user: UserDep,
    svc: ServicesDep,
) -> str:
    return models.visible_model(svc, user, name)


def owned_retrieval_model(
    model_id: Annotated[str, Path(description="A retrieval model's name")],
    user: UserDep,
    svc: ServicesDep,
) -> dict[str, Any]:
    return retrieval.owned_model(svc, user, model_id)


VisibleDataset = Annotated[Dataset, Depends(visible_dataset)]
"""The ``{dataset_id}`` path parameter as the dataset row the user may see (detached)."""
VisibleQADataset = Annotated[Dataset, Depends(visible_qa_dataset)]
"""The same, for a question-answer dataset (422 for a table)."""
VisibleModel = Annotated[str, Depends(visible_model)]
"""The ``{name}`` path parameter: a registered model's name the user may reach."""
OwnedRetrievalModel = Annotated[dict[str, Any], Depends(owned_retrieval_model)]
"""The ``{model_id}`` path parameter as the metadata of a retrieval model the user may see."""
