"""What the command line shows: the consoles, JSON and plain text on stdout, the one place
where errors become a message and exit status 2, logging, and the progress bars."""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from typing import Any, Protocol

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from taxonomist.errors import TaxonomistError

out = Console()
err = Console(stderr=True)


def echo_json(data: Any) -> None:
    """``data`` as one JSON document on stdout (the ``--json`` contract)."""
    out.print_json(json.dumps(data, default=str))


def echo_text(text: str) -> None:
    """``text`` on stdout as it is: no markup, no wrapping (YAML others read back)."""
    typer.echo(text, nl=not text.endswith("\n"))


def print_error(exc: BaseException) -> None:
    """One line on stderr: ``Error (code): message``."""
    if isinstance(exc, TaxonomistError):
        text = f"[bold red]Error[/] ({exc.code}): {escape(exc.message)}"
    else:
        text = f"[bold red]Error[/]: {escape(str(exc))}"
    err.print(text, highlight=False, soft_wrap=True)


class CliGroup(TyperGroup):
    """The root command: every command's user errors (:class:`TaxonomistError`, and OSError
    for files) end here as one line and exit status 2; ``--debug`` lets them through with
    their traceback."""

    # typer.Context is what typer passes; the base class names its vendored click's Context.
    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except (TaxonomistError, OSError) as exc:
            if ctx.params.get("debug"):
                raise
            print_error(exc)
            raise typer.Exit(2) from None


def configure_logging(verbose: bool) -> None:
    """Log to stderr: warnings by default, everything of ours with ``--verbose``."""
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for noisy in ("mlflow", "alembic", "matplotlib", "urllib3", "numexpr", "optuna"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    if not verbose:
        logging.getLogger("taxonomist").setLevel(logging.ERROR)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    warnings.filterwarnings("ignore")


class TrainStatus(Protocol):
    """What a training progress bar shows (``taxonomist.models.search.Progress`` locally,
    a job's progress on a server)."""

    @property
    def phase(self) -> str: ...
    @property
    def trials_done(self) -> int: ...
    @property
    def trials_pruned(self) -> int: ...
    @property
    def best_score(self) -> float | None: ...
    @property
    def best_family(self) -> str | None: ...
    @property
    def elapsed(self) -> float: ...
    @property
    def time_left(self) -> float | None: ...


class TrainProgress:
    """A rich progress bar on stderr: trials done, best score so far, time left. It shows on
    a terminal (or with TAXONOMIST_PROGRESS=1), never with ``--json``; :meth:`note` prints a
    line on stdout unless ``--json``."""

    def __init__(self, *, enabled: bool, budget: float | None, trials: int | None) -> None:
        self.quiet = not enabled
        self.enabled = enabled and (err.is_terminal or os.environ.get("TAXONOMIST_PROGRESS") == "1")
        self.budget = budget
        self.trials = trials
        self.progress: Any = None
        self.task: Any = None

    def __enter__(self) -> TrainProgress:
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            )
            self.progress.start()
            total = self.budget if self.budget else (self.trials or 1)
            self.task = self.progress.add_task("searching", total=total, status="starting")
        return self

    def note(self, text: str) -> None:
        if not self.quiet:
            out.print(text)

    def update(self, p: TrainStatus) -> None:
        if not self.progress:
            return
        best = (
            f"best {p.best_score:.4f} ({p.best_family})"
            if p.best_score is not None
            else "no model yet"
        )
        left = f" · {p.time_left:.0f}s left" if p.time_left is not None else ""
        status = f"trials {p.trials_done} ({p.trials_pruned} pruned) · {best}{left}"
        done = p.elapsed if self.budget else p.trials_done
        desc = "refitting the ensemble" if p.phase == "refit" else "searching"
        self.progress.update(self.task, completed=done, status=status, description=desc)

    def __exit__(self, *exc: object) -> None:
        if self.progress:
            self.progress.stop()


class JobBar:
    """A progress bar on stderr fed ``(phase, done, total)``."""

    def __enter__(self) -> JobBar:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task("starting", total=None)
        return self

    def __call__(self, phase: str, done: int, total: int) -> None:
        self.progress.update(self.task, description=phase, completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()
