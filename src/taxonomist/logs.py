"""The service's logs: one JSON object per line, each with the id of the HTTP request it was
written for; a size-rotated file; audit entries for the changes someone may have to answer for.

``configure_logging`` is for entry points (``taxonomist serve``, each API worker, the UI);
modules keep logging through ``logging.getLogger(__name__)``. Why a hand-written formatter
rather than python-json-logger: it is one ``json.dumps`` over the record, and the parts we need
beyond that (the request id from a context variable, audit fields that may be named like a
``LogRecord`` attribute, uvicorn's access line as fields) would be code on top of it anyway.
"""

from __future__ import annotations

import atexit
import json
import logging
import queue
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from logging.handlers import QueueHandler, QueueListener, RotatingFileHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taxonomist.config import Settings

SERVICE_LOG = "taxonomist.log"
UI_LOG = "ui.log"
AUDIT_LOGGER = "taxonomist.audit"

request_id_var: ContextVar[str | None] = ContextVar("taxonomist_request_id", default=None)
"""The id of the HTTP request being served (set by the API's middleware), else None."""

# Where audit() puts its fields: passed as `extra` one by one, a field called e.g. `name` or
# `module` would collide with the LogRecord attribute of that name (logging raises KeyError).
_FIELDS = "taxonomist_fields"
# The attributes every LogRecord has: anything else on a record came from `extra`.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
# uvicorn's copy of the message with ANSI colours; the request id (a key of its own)
_DROPPED = frozenset({"color_message", "request_id"})
_OURS = "_taxonomist_config"  # the attribute that marks (and describes) a handler of ours
# Chatter at INFO, shown only with log_level DEBUG: a line per HTTP call, per alembic plugin.
_QUIET = ("httpx", "httpcore", "alembic.runtime.plugins")


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """What the caller attached to ``record``: its ``extra`` and audit fields; for uvicorn's
    access line, the client, method, path and status as fields."""
    out = {
        k: v
        for k, v in record.__dict__.items()
        if k not in _STANDARD and k not in _DROPPED and k != _FIELDS
    }
    out.update(getattr(record, _FIELDS, {}))
    if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
        client, method, path, _, status = record.args
        out.update(client=client, method=method, path=path, status=status)
    return out


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: ``ts`` (ISO 8601, UTC), ``level``, ``logger``,
    ``message``, ``request_id`` when the record was written while serving a request, the
    caller's ``extra`` fields (values JSON cannot hold become strings; a field never replaces
    one of these keys), and ``exc`` (the traceback) for an exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in _fields(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``ts LEVEL logger [request id] message key=value ...``, for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        parts = [_timestamp(record), record.levelname, record.name]
        if request_id:
            parts.append(f"[{request_id}]")
        parts.append(record.getMessage())
        parts += [
            f"{k}={json.dumps(v, default=str, ensure_ascii=False)}"
            for k, v in _fields(record).items()
        ]
        text = " ".join(parts)
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _RotatingFile(RotatingFileHandler):
    """With no backups the stdlib's handler never rotates (the file grows without bound);
    here a full file starts over instead."""

    def doRollover(self) -> None:
        super().doRollover()
        if self.backupCount == 0 and self.stream is not None:
            self.stream.truncate(0)


class _Queued(QueueHandler):
    """What the root logger holds: records go to a queue, and a listener thread formats and
    writes them (file and stderr). Logging then never blocks the caller, the event loop
    included (uvicorn writes an access line per request from it), on a slow disk or a full
    pipe. What the formatters read from the writing thread's context is fixed on the record
    first; the record is otherwise passed as is (one process: nothing is pickled)."""

    def __init__(self, targets: list[logging.Handler]) -> None:
        super().__init__(queue.Queue(-1))
        self.listener = QueueListener(self.queue, *targets, respect_handler_level=True)
        self.listener.start()

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        return record

    def flush(self) -> None:
        """Wait until the listener wrote everything queued so far."""
        self.queue.join()  # type: ignore[attr-defined]

    def close(self) -> None:
        self.listener.stop()  # writes what is queued, then ends the thread
        for target in self.listener.handlers:
            target.close()
        super().close()


def flush() -> None:
    """Wait until every queued log line is written (tests read the files right after)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _Queued):
            handler.flush()


def configure_logging(
    settings: Settings, *, stream: bool = True, filename: str = SERVICE_LOG
) -> Path:
    """Send every log record at ``settings.log_level`` and above, as ``settings.log_format``
    lines, to ``settings.logs_dir / filename`` (rotated at ``log_max_mb``, ``log_backups``
    old files kept) and, with ``stream``, to stderr; the file's path.

    Idempotent: the same settings again change nothing; other settings replace the handlers
    an earlier call installed (and only those). A file is meant for one process (hence the
    UI's own ``UI_LOG``): the workers of ``serve --workers N`` share one, and a rotation by
    one of them makes the others' next lines land in the rotated file (files end up smaller
    than the limit, the oldest lines go sooner).
    """
    path = (settings.logs_dir / filename).resolve()
    level = logging.getLevelNamesMapping()[settings.log_level]
    config = (str(path), settings.log_max_mb, settings.log_backups, settings.log_format, stream)
    root = logging.getLogger()
    ours = [h for h in root.handlers if hasattr(h, _OURS)]
    if not ours or any(getattr(h, _OURS) != config for h in ours):
        _remove(ours)
        path.parent.mkdir(parents=True, exist_ok=True)
        formatter = JsonFormatter() if settings.log_format == "json" else TextFormatter()
        targets: list[logging.Handler] = [
            _RotatingFile(
                path,
                maxBytes=max(1, int(settings.log_max_mb * 1e6)),
                backupCount=settings.log_backups,
                encoding="utf-8",
            )
        ]
        if stream:
            targets.append(logging.StreamHandler(sys.stderr))
        for target in targets:
            target.setFormatter(formatter)
        handler = _Queued(targets)
        setattr(handler, _OURS, config)
        root.addHandler(handler)
    root.setLevel(level)
    # A command line's quieter default for our loggers (cli.output) must not hide the
    # service's, e.g. its audit entries.
    logging.getLogger("taxonomist").setLevel(level)
    quiet = level if level <= logging.DEBUG else max(level, logging.WARNING)
    for name in _QUIET:  # a level of their own: propagated records skip the root's level
        logging.getLogger(name).setLevel(quiet)
    return path


def _remove(handlers: list[logging.Handler]) -> None:
    root = logging.getLogger()
    for handler in handlers:
        root.removeHandler(handler)
        handler.close()


@atexit.register
def _flush_at_exit() -> None:  # the listener's queue is written before the process ends
    _remove([h for h in logging.getLogger().handlers if hasattr(h, _OURS)])


def reset_logging() -> None:
    """Remove and close the handlers ``configure_logging`` installed (tests, or a process that
    hands its logging back); the levels it set stay."""
    _remove([h for h in logging.getLogger().handlers if hasattr(h, _OURS)])


def audit(action: str, *, user: str | None = None, **fields: Any) -> None:
    """Log that ``user`` did ``action`` (a retrain, a promotion, a policy change, ...): an
    INFO line on the ``taxonomist.audit`` logger with ``audit: true``, ``action``, ``user``
    and ``fields`` as its own keys (a field named like a core key, e.g. ``level``, is
    dropped)."""
    detail = " ".join(f"{k}={v}" for k, v in fields.items())
    who = f" by {user}" if user else ""
    logging.getLogger(AUDIT_LOGGER).info(
        "%s%s%s",
        action,
        who,
        f": {detail}" if detail else "",
        extra={"audit": True, "action": action, "user": user, _FIELDS: fields},
    )
