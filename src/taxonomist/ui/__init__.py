"""The web UI (Streamlit): every page talks to the API through :class:`taxonomist.client.Client`
and holds no business logic. Start it with ``taxonomist ui``."""

from pathlib import Path

APP = Path(__file__).parent / "app.py"
