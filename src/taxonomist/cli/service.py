"""``serve`` and ``ui``: the REST API and the web UI."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from taxonomist.cli.options import HostOpt, PortOpt
from taxonomist.cli.output import out


def serve(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Server processes. Each runs its own job engine (a job runs once: jobs are "
            "claimed in the database) and its own /metrics.",
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
        uvicorn.run(
            "taxonomist.api.app:served_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=None,
        )
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
