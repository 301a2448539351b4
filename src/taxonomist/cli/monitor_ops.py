"""The monitoring operations of the two backends: here over the library and this home's
database (:class:`LocalMonitorOps`), or on a server (:class:`RemoteMonitorOps`). Mixed into
:class:`~taxonomist.cli.backend.LocalBackend` and ``RemoteBackend``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from taxonomist.client import Client
    from taxonomist.registry import Registry
    from taxonomist.store import Database


class MonitorOps(Protocol):
    """What ``taxonomist monitor`` runs, wherever it runs."""

    def prediction_log(
        self, model: str, limit: int, before_id: int | None, version: int | None
    ) -> dict[str, Any]: ...
    def feedback(self, model: str, data: Path) -> dict[str, Any]: ...
    def live_quality(
        self, model: str, days: float | None, version: int | None
    ) -> dict[str, Any]: ...
    def drift(
        self, model: str, data: Path | None, version: int | None, days: float | None, limit: int
    ) -> dict[str, Any]: ...
    def drift_reports(self, model: str, limit: int) -> list[dict[str, Any]]: ...
    def drift_report(self, model: str, report_id: int) -> dict[str, Any]: ...
    def retrain(
        self, model: str, data: Path | None, reason: str, on_progress: Callable[[Any], None]
    ) -> dict[str, Any]: ...
    def journal(self, model: str, limit: int) -> list[dict[str, Any]]: ...
    def policy(self, model: str) -> dict[str, Any]: ...
    def set_policy(self, model: str, policy: dict[str, Any]) -> dict[str, Any]: ...
    def delete_policy(self, model: str) -> None: ...


def _name(model: str) -> str:
    from taxonomist.registry import parse_ref

    return parse_ref(model).name


class LocalMonitorOps:
    """Monitoring of this home's models, in this process."""

    @property
    def registry(self) -> Registry:  # LocalBackend's
        raise NotImplementedError

    def database(self) -> Database:
        """This home's metadata database, migrated."""
        from taxonomist.store import Database

        db = Database(self.registry.settings.database)
        db.migrate()
        return db

    def _with_db(self, work: Callable[[Database], Any]) -> Any:
        db = self.database()
        try:
            return work(db)
        finally:
            db.dispose()

    def prediction_log(
        self, model: str, limit: int, before_id: int | None, version: int | None
    ) -> dict[str, Any]:
        from taxonomist.monitor.log import read_log

        rows = self._with_db(
            lambda db: read_log(db, _name(model), limit=limit, before_id=before_id, version=version)
        )
        return {
            "data": rows,
            "count": len(rows),
            "next_before_id": rows[-1]["id"] if len(rows) == limit else None,
        }

    def feedback(self, model: str, data: Path) -> dict[str, Any]:
        from taxonomist.data.load import load_table
        from taxonomist.monitor.quality import feedback_table, record_feedback

        name = _name(model)
        items = feedback_table(load_table(data))
        return self._with_db(
            lambda db: record_feedback(
                db, name, items, lambda version: self.registry.load(f"{name}/{version}").classes
            )
        )

    def live_quality(self, model: str, days: float | None, version: int | None) -> dict[str, Any]:
        from datetime import UTC, datetime, timedelta

        from taxonomist.monitor.quality import live_quality

        since = None if days is None else datetime.now(UTC) - timedelta(days=days)
        return self._with_db(
            lambda db: live_quality(db, _name(model), since=since, version=version)
        )

    def drift(
        self, model: str, data: Path | None, version: int | None, days: float | None, limit: int
    ) -> dict[str, Any]:
        from taxonomist.data.load import load_table
        from taxonomist.monitor.reports import check_drift

        table = None if data is None else load_table(data)
        return self._with_db(
            lambda db: check_drift(
                self.registry,
                db,
                _name(model),
                data=table,
                version=version,
                days=days,
                limit=limit,
                seed=self.registry.settings.seed,
            )
        )

    def drift_reports(self, model: str, limit: int) -> list[dict[str, Any]]:
        from taxonomist.monitor.reports import list_reports

        return self._with_db(lambda db: list_reports(db, _name(model), limit=limit))

    def drift_report(self, model: str, report_id: int) -> dict[str, Any]:
        from taxonomist.monitor.reports import get_report

        return self._with_db(lambda db: get_report(db, _name(model), report_id))

    def retrain(
        self, model: str, data: Path | None, reason: str, on_progress: Callable[[Any], None]
    ) -> dict[str, Any]:
        from taxonomist.data.load import load_table
        from taxonomist.monitor.retrain import retrain

        table = None if data is None else load_table(data)
        return self._with_db(
            lambda db: retrain(
                self.registry,
                db,
                _name(model),
                table,
                reason=reason,
                source="file" if data is not None else "feedback",
                data_name=None if data is None else str(data),
                settings=self.registry.settings,
                on_progress=on_progress,
            )
        )

    def journal(self, model: str, limit: int) -> list[dict[str, Any]]:
        from taxonomist.monitor.retrain import journal

        return self._with_db(lambda db: journal(db, _name(model), limit=limit))

    def policy(self, model: str) -> dict[str, Any]:
        from taxonomist.errors import NotFoundError
        from taxonomist.monitor.policy import get_policy

        found = self._with_db(lambda db: get_policy(db, _name(model)))
        if found is None:
            raise NotFoundError(
                f"{_name(model)} has no retraining policy: set one with "
                f"'taxonomist monitor policy {_name(model)} --new-labels 500'."
            )
        return found

    def set_policy(self, model: str, policy: dict[str, Any]) -> dict[str, Any]:
        from pydantic import ValidationError

        from taxonomist.models.config import config_error
        from taxonomist.monitor.policy import Policy, set_policy

        self.registry.resolve(model)  # a clear error for a model that does not exist
        try:
            checked = Policy.model_validate(policy)
        except ValidationError as exc:
            raise config_error(exc, "the policy", Policy) from None
        return self._with_db(lambda db: set_policy(db, _name(model), checked, None))

    def delete_policy(self, model: str) -> None:
        from taxonomist.monitor.policy import delete_policy

        if not self._with_db(lambda db: delete_policy(db, _name(model), None)):
            self.policy(model)  # the 404 that says how to set one


class RemoteMonitorOps:
    """Monitoring of a server's models, over its API."""

    client: Client
    _result: Callable[[dict[str, Any], float, Callable[[Any], None]], Any]  # RemoteBackend's

    def prediction_log(
        self, model: str, limit: int, before_id: int | None, version: int | None
    ) -> dict[str, Any]:
        return self.client.prediction_log(
            _name(model), limit=limit, before_id=before_id, version=version
        )

    def feedback(self, model: str, data: Path) -> dict[str, Any]:
        return self.client.feedback_file(_name(model), data)

    def live_quality(self, model: str, days: float | None, version: int | None) -> dict[str, Any]:
        return self.client.live_quality(_name(model), days, version)

    def drift(
        self, model: str, data: Path | None, version: int | None, days: float | None, limit: int
    ) -> dict[str, Any]:
        return self.client.drift(_name(model), data, version=version, days=days, limit=limit)

    def drift_reports(self, model: str, limit: int) -> list[dict[str, Any]]:
        return self.client.drift_reports(_name(model), limit)

    def drift_report(self, model: str, report_id: int) -> dict[str, Any]:
        return self.client.drift_report(_name(model), report_id)

    def retrain(
        self, model: str, data: Path | None, reason: str, on_progress: Callable[[Any], None]
    ) -> dict[str, Any]:
        from taxonomist.cli.backend import JobProgress

        job = self.client.retrain(_name(model), data, reason=reason)
        return self._result(job, 1.0, lambda j: on_progress(JobProgress.of(j)))

    def journal(self, model: str, limit: int) -> list[dict[str, Any]]:
        return self.client.journal(_name(model), limit)

    def policy(self, model: str) -> dict[str, Any]:
        return self.client.policy(_name(model))

    def set_policy(self, model: str, policy: dict[str, Any]) -> dict[str, Any]:
        return self.client.set_policy(_name(model), **policy)

    def delete_policy(self, model: str) -> None:
        self.client.delete_policy(_name(model))
