"""``serve``, ``ui`` and ``doctor``: the REST API, the web UI, and a check of the servers
they use."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from taxonomist.cli.options import HostOpt, JsonOpt, PortOpt
from taxonomist.cli.output import echo_json, out


def serve(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Server processes. Each runs its own job engine (a job runs once, and the "
            "concurrency limit holds for all: jobs are leased in the database); /metrics adds "
            "up all of them.",
        ),
    ] = 1,
) -> None:
    """Start the REST API: OpenAPI docs at /docs, Prometheus metrics at /metrics.

    State lives in TAXONOMIST_HOME (SQLite metadata, MLflow registry, datasets) unless
    TAXONOMIST_DATABASE_URL / TAXONOMIST_MLFLOW_URI point elsewhere. Training jobs run on a
    Dask LocalCluster, or on TAXONOMIST_DASK_ADDRESS. The first start creates the user
    'admin' with TAXONOMIST_ADMIN_PASSWORD, or prints a one-time password. Logs: JSON lines
    on stderr and in TAXONOMIST_LOG_DIR/taxonomist.log (default: the home's logs/), rotated
    at TAXONOMIST_LOG_MAX_MB; uvicorn's access lines among them.
    """
    import uvicorn

    from taxonomist.api import create_app
    from taxonomist.config import get_settings
    from taxonomist.logs import configure_logging

    settings = get_settings()
    # The service's logs replace the plain stderr lines the CLI sets up for every command.
    logging.getLogger().handlers.clear()
    log_file = configure_logging(settings)
    out.print(
        f"Taxonomist API on http://{host}:{port} (docs /docs, metrics /metrics); "
        f"data in {settings.home}; logs in {log_file}"
    )
    # log_config=None: uvicorn's loggers (access lines included) go through our handlers.
    if workers > 1:
        import os
        import shutil
        import tempfile

        # /metrics adds up every worker's samples (Prometheus's multiprocess mode): their
        # files go to a folder of this server's own, set before the workers start.
        folder = tempfile.mkdtemp(prefix="taxonomist-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        os.environ["TAXONOMIST_SERVE_WORKERS"] = str(workers)  # retrieval: Edge is one process's
        if not settings.qdrant_url:
            out.print(
                "[yellow]Note:[/] retrieval needs a Qdrant server with --workers > 1 "
                "(TAXONOMIST_QDRANT_URL); classification is not affected."
            )
        try:
            uvicorn.run(
                "taxonomist.api.app:served_app",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                log_config=None,
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    else:
        uvicorn.run(create_app(settings), host=host, port=port, log_config=None)


def ui(
    api_url: Annotated[
        str,
        typer.Option(
            "--api-url", envvar="TAXONOMIST_API_URL", help="The Taxonomist API the UI talks to."
        ),
    ] = "http://127.0.0.1:8000",
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8501,
) -> None:
    """Start the web UI (Streamlit) against a running API ('taxonomist serve')."""
    import subprocess

    from taxonomist.ui import streamlit_command

    out.print(f"Taxonomist UI on http://{host}:{port} (API {api_url})")
    command, env = streamlit_command(api_url, host, port)
    raise typer.Exit(subprocess.call(command, env=env))


def doctor(
    json_out: JsonOpt = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.5, help="Seconds each part may take to answer.")
    ] = 5.0,
) -> None:
    """Check each part Taxonomist uses: where it points and whether it answers.

    The parts and their settings: the metadata database (TAXONOMIST_DATABASE_URL), MLflow
    tracking (TAXONOMIST_MLFLOW_TRACKING_URI), the artifact store (TAXONOMIST_ARTIFACTS_URI,
    with boto3's AWS_ENDPOINT_URL and keys), the Dask scheduler (TAXONOMIST_DASK_ADDRESS) and
    Qdrant (TAXONOMIST_QDRANT_URL). Unset, each is local to TAXONOMIST_HOME. Exits 1 when a
    part does not answer, with the reason on its line.
    """
    from rich.markup import escape

    from taxonomist.config import get_settings
    from taxonomist.connections import check_all

    statuses = check_all(get_settings(), timeout=timeout)
    failed = [s for s in statuses if not s.ok]
    if json_out:
        echo_json({"ok": not failed, "parts": [s.to_dict() for s in statuses]})
    else:
        for s in statuses:
            status = "[green]ok   [/]" if s.ok else "[red]FAILS[/]"
            out.print(f"{status} [bold]{s.part:<9}[/] {escape(s.points_to)}  [dim]{s.setting}[/]")
            out.print(f"      {escape(s.detail)}", highlight=False)
        if failed:
            names = ", ".join(s.part for s in failed)
            out.print(f"[red]{len(failed)} part(s) do not answer:[/] {names}.")
    if failed:
        raise typer.Exit(1)
