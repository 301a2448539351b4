"""Parse user files in worker processes, each with a memory limit and a time limit.

The caps of :mod:`taxonomist.data.limits` bound a file's rows, columns and bytes, but not
what a parser makes of them (a column of short numbers takes several times its text in
memory; a JSON document more still). A service parses in workers, so that the worst a file can
do is end a worker: the service stays up, the request gets a 413, and the next one finds a new
worker. Library and CLI callers parse in-process with :func:`~taxonomist.data.load_table`.

Each worker is a one-process ``ProcessPoolExecutor`` of the standard library, kept between
calls (so an upload does not wait for an interpreter and pandas to start) and lent to one call
at a time (so a worker that dies takes only its own call with it; one executor of N processes
fails every call in flight when one of its processes dies). Workers start with
``forkserver`` (``spawn`` where there is none): forking the service, which runs threads, could
copy a lock some thread holds. Each worker lowers its ``RLIMIT_DATA`` (heap and anonymous
mappings: everything a parse allocates; ``RLIMIT_AS`` elsewhere) when it starts. A parse past
the time limit is interrupted by ``SIGALRM``; one stuck in native code, which the signal cannot
interrupt, ends its worker a little later (``faulthandler``'s watchdog thread).

A table comes back pickled into a temporary file (in a folder this process creates and
removes, so a worker that dies leaves nothing behind). For 140,000 rows (a 10 MB CSV, 13 MB
pickled) that transfer takes about 10 ms, against 20-40 ms through the executor's pipe and
over 50 ms as a Parquet file written and read back (``bench/upload_parse.py``); and pickle
keeps the dtypes exactly (Parquet cannot hold a column of mixed Python objects).
"""

from __future__ import annotations

import faulthandler
import logging
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import pandas as pd

from taxonomist.data.limits import TableLimits, use_limits
from taxonomist.data.load import load_table
from taxonomist.errors import PayloadTooLargeError, TaxonomistError

if TYPE_CHECKING:
    from taxonomist.config import Settings

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


class ParsePool:
    """Run parses (:meth:`load`, or any importable function with :meth:`run`) in ``workers``
    processes that may each use ``memory_mb`` MB and ``timeout`` seconds per call. A call that
    runs out of either raises a ``PayloadTooLargeError`` (413); a worker that dies is replaced.
    Parses in the workers apply ``limits`` (rows, columns, bytes)."""

    hard_stop_grace = 30.0  # seconds past the time limit at which a stuck worker is ended

    def __init__(
        self, limits: TableLimits, *, memory_mb: float, timeout: float, workers: int = 2
    ) -> None:
        self.limits, self.memory_mb, self.timeout, self.workers = (
            limits,
            memory_mb,
            timeout,
            workers,
        )
        # Idle workers, the most recently used on top (warm); None: not started yet.
        self._idle: queue.LifoQueue[ProcessPoolExecutor | None] = queue.LifoQueue()
        for _ in range(workers):
            self._idle.put(None)
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings) -> ParsePool:
        """The pool ``TAXONOMIST_PARSE_WORKERS``, ``_PARSE_MEMORY_MB``, ``_PARSE_TIMEOUT`` and
        the table limits describe."""
        return cls(
            TableLimits.from_settings(settings),
            memory_mb=settings.parse_memory_mb,
            timeout=settings.parse_timeout,
            workers=settings.parse_workers,
        )

    def start(self) -> None:
        """Start a worker now, in the background, so that the first parse finds it ready."""
        worker = self._idle.get()
        self._idle.put(worker if worker is not None else self._new_worker())

    def load(self, path: str | Path, *, fmt: str | None = None) -> pd.DataFrame:
        """:func:`~taxonomist.data.load_table` of ``path`` in a worker."""
        with tempfile.TemporaryDirectory(prefix="taxonomist-parse-") as folder:
            out = Path(folder) / "table.pickle"
            self.run(_load_to_file, str(path), str(out), fmt, self.limits)
            with out.open("rb") as fh:
                table: pd.DataFrame = pickle.load(fh)
        return table

    def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` in a worker (``fn`` and its arguments must pickle: a
        module-level function), waiting for one to be free. Its ``TaxonomistError`` is raised
        here as it was there."""
        if self._closed:
            raise RuntimeError("the parse pool is closed")
        worker = self._idle.get()
        try:
            if worker is None:
                worker = self._new_worker()
            started = time.monotonic()
            future = worker.submit(_call, self.timeout, self.hard_stop_grace, fn, args, kwargs)
            try:
                outcome = future.result()
            except BrokenProcessPool:
                elapsed = time.monotonic() - started
                logger.warning("a parse worker ended after %.1f s; starting another", elapsed)
                worker.shutdown(wait=False)
                worker = self._new_worker()
                if elapsed >= self.timeout:
                    raise self._too_slow() from None
                raise self._out_of_memory(ended=True) from None
            except MemoryError:
                raise self._out_of_memory() from None
            except (TimeoutError, _TimeLimit):
                raise self._too_slow() from None
        finally:
            if self._closed and worker is not None:
                worker.shutdown(wait=False)
            else:
                self._idle.put(worker)
        if isinstance(outcome, _Failure):
            raise outcome.error()
        return outcome

    def close(self) -> None:
        """Stop the idle workers now, and the busy ones when their call ends."""
        self._closed = True
        while True:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                return
            if worker is not None:
                worker.shutdown(wait=False, cancel_futures=True)

    def _new_worker(self) -> ProcessPoolExecutor:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        worker = ProcessPoolExecutor(
            max_workers=1,
            mp_context=context,
            initializer=_start_worker,
            initargs=(int(self.memory_mb * 1e6), self.limits, os.getpid()),
        )
        worker.submit(_ready)  # the process starts (and imports) now, not at the first parse
        return worker

    # -- the errors --------------------------------------------------------------------------
    def _out_of_memory(self, *, ended: bool = False) -> PayloadTooLargeError:
        what = (
            "The parse worker ended while reading the file, most likely because it needed "
            "more memory than a parse worker may use"
            if ended
            else "Reading the file needs more memory than a parse worker may use"
        )
        return PayloadTooLargeError(
            f"{what} ({self.memory_mb:,.0f} MB, TAXONOMIST_PARSE_MEMORY_MB). Use a smaller "
            "sample (fewer rows or columns), or raise TAXONOMIST_PARSE_MEMORY_MB.",
            details={"setting": "TAXONOMIST_PARSE_MEMORY_MB", "limit_mb": self.memory_mb},
        )

    def _too_slow(self) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            "Reading the file takes longer than a parse worker may spend on one file "
            f"({self.timeout:,.0f} s, TAXONOMIST_PARSE_TIMEOUT). Use a smaller sample, or "
            "raise TAXONOMIST_PARSE_TIMEOUT.",
            details={"setting": "TAXONOMIST_PARSE_TIMEOUT", "limit_seconds": self.timeout},
        )


# -- in the worker ---------------------------------------------------------------------------
@dataclass
class _Failure:
    """A ``TaxonomistError`` on its way back: some subclasses take other ``__init__``
    arguments than their message, so the exception itself may not unpickle."""

    cls: type[TaxonomistError]
    message: str
    state: dict[str, Any] = field(default_factory=dict)

    def error(self) -> TaxonomistError:
        exc = self.cls.__new__(self.cls)
        Exception.__init__(exc, self.message)
        exc.__dict__.update(self.state)
        return exc


def _start_worker(memory_bytes: int, limits: TableLimits, service_pid: int) -> None:
    use_limits(limits)
    threading.Thread(target=_exit_without, args=(service_pid,), daemon=True).start()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the service, which stops us
    if hasattr(signal, "SIGALRM"):
        signal.signal(signal.SIGALRM, _on_alarm)
    try:
        import resource
    except ImportError:  # Windows: no limit but the caps
        logger.warning("parse workers run without a memory limit on %s", sys.platform)
        return
    kind = resource.RLIMIT_DATA if sys.platform.startswith("linux") else resource.RLIMIT_AS
    _, hard = resource.getrlimit(kind)
    limit = memory_bytes if hard == resource.RLIM_INFINITY else min(memory_bytes, hard)
    resource.setrlimit(kind, (limit, limit))


def _exit_without(service_pid: int) -> None:
    """End this worker once the service is gone. A killed service (SIGKILL, the OOM killer)
    cannot stop its workers, and a worker would wait on its task queue for ever, keeping the
    forkserver and the resource tracker alive with it (they end with their last client)."""
    while True:
        time.sleep(1.0)
        try:
            os.kill(service_pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:  # the pid is another user's process now: ours is gone
            os._exit(0)


class _TimeLimit(BaseException):
    """The parse's time is up: a ``BaseException``, so that no ``except Exception`` in a
    parser takes it for a broken file."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise _TimeLimit


def _load_to_file(path: str, out: str, fmt: str | None, limits: TableLimits) -> None:
    table = load_table(path, fmt=fmt, limits=limits)
    with open(out, "wb") as fh:
        pickle.dump(table, fh, protocol=pickle.HIGHEST_PROTOCOL)


def _ready() -> None:
    """Nothing: a first task, so that a worker starts (imports done) before it is needed."""


def _call(timeout: float, grace: float, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    alarm = hasattr(signal, "setitimer")
    faulthandler.dump_traceback_later(timeout + grace, exit=True)
    if alarm:
        signal.setitimer(signal.ITIMER_REAL, timeout)
    # Failures are raised anew after the except block, which frees the failed parse's objects
    # (the original's traceback holds them) before the error is pickled.
    failure: BaseException
    try:
        return fn(*args, **kwargs)
    except MemoryError:
        failure = MemoryError("the parse worker's memory limit")
    except _TimeLimit:
        failure = TimeoutError("the parse time limit")
    except TaxonomistError as exc:
        return _Failure(type(exc), exc.message, dict(exc.__dict__))
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
        faulthandler.cancel_dump_traceback_later()
    raise failure
