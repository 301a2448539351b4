"""The web UI (Streamlit): every page talks to the API through :class:`taxonomist.client.Client`
and holds no business logic. Start it with ``taxonomist ui``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP = Path(__file__).parent / "app.py"


def streamlit_command(api_url: str, host: str, port: int) -> tuple[list[str], dict[str, str]]:
    """The command and environment that serve the UI against the API at ``api_url``."""
    command = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", host, "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal",
    ]  # fmt: skip
    return command, {**os.environ, "TAXONOMIST_API_URL": api_url}
