"""Monitoring as the service shows it: the prediction log of a model the user may see."""

from __future__ import annotations

from taxonomist.api.schemas import PredictionsPage
from taxonomist.api.services.state import Services
from taxonomist.monitor.log import read_log


def predictions(
    svc: Services, name: str, *, limit: int, before_id: int | None, version: int | None
) -> PredictionsPage:
    """One page of ``name``'s logged predictions, newest first."""
    rows = read_log(svc.db, name, limit=limit, before_id=before_id, version=version)
    next_id = rows[-1]["id"] if len(rows) == limit else None
    return PredictionsPage.model_validate(
        {"data": rows, "count": len(rows), "next_before_id": next_id}
    )
