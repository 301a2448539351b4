"""What every page shares: the signed-in client, messages to the user (logged too), API errors
shown as messages, the dataset picker."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import streamlit as st

from taxonomist.client import Client
from taxonomist.config import get_settings
from taxonomist.errors import TaxonomistError
from taxonomist.logs import UI_LOG, configure_logging

API_URL_ENV = "TAXONOMIST_API_URL"
# A form submitted before its file has finished uploading arrives without the file.
NO_FILE_YET = "No file yet: choose one (and let its upload finish), then press the button."


MessageKind = Literal["error", "warning", "success", "info"]
_MESSAGES: dict[MessageKind, tuple[int, Callable[..., Any]]] = {
    "error": (logging.ERROR, st.error),
    "warning": (logging.WARNING, st.warning),
    "success": (logging.INFO, st.success),
    "info": (logging.INFO, st.info),
}
# One logger for what users were told, whichever page told them.
user_messages = logging.getLogger("taxonomist.ui")


def api_url() -> str:
    return os.environ.get(API_URL_ENV, "http://127.0.0.1:8000")


def configure_ui_logging() -> Path:
    """The UI process's logs: as the service's (``TAXONOMIST_LOG_*``), in its own file
    (``ui.log``); cheap to call on every rerun (the same settings change nothing)."""
    return configure_logging(get_settings(), filename=UI_LOG)


def notify(kind: MessageKind, text: str) -> None:
    """Show ``text`` as a Streamlit message of ``kind`` and log it on ``taxonomist.ui`` (errors
    at ERROR, warnings at WARNING, the rest at INFO), with the signed-in user's name."""
    level, show = _MESSAGES[kind]
    me = st.session_state.get("me")
    user = me.get("username") if me else None
    user_messages.log(level, text, extra={"ui_message": kind, "user": user})
    show(text)


def signed_in() -> Client:
    """The session's client; stops the page with a hint when nobody is signed in."""
    client = st.session_state.get("client")
    if client is None:
        notify("warning", "Sign in first.")
        st.stop()
    return client


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a client call; an API error becomes a readable message instead of a traceback."""
    try:
        return fn(*args, **kwargs)
    except TaxonomistError as exc:
        notify("error", exc.message)
        return None


def dataset_label(d: dict[str, Any]) -> str:
    return f"#{d['id']} {d['name']} ({d['n_rows']:,} rows)"


def cached(
    key: tuple[Any, ...], fn: Callable[..., Any], *args: Any, ttl: float = 30, **kwargs: Any
) -> Any:
    """``call(fn, *args)`` remembered in this browser session for ``ttl`` seconds (never
    shared between users): a page that shows one model version twice asks once."""
    store = st.session_state.setdefault("_cache", {})
    hit = store.get(key)
    if hit is not None and hit[1] > time.monotonic():
        return hit[0]
    value = call(fn, *args, **kwargs)
    if value is not None:
        store[key] = (value, time.monotonic() + ttl)
    return value


def registered_models(client: Client) -> list[dict[str, Any]]:
    """The models the user can see; stops the page with a hint when there is none."""
    models = call(client.list_models) or []
    if not models:
        notify("info", "No model yet: train one on the Train page.")
        st.stop()
    return models


def choose_dataset(client: Client, empty_hint: str) -> dict[str, Any]:
    """A dataset picker that remembers the choice across pages (the newest by default)."""
    datasets = call(client.list_datasets) or []
    if not datasets:
        notify("info", empty_hint)
        st.stop()
    ids = [d["id"] for d in datasets]
    current = st.session_state.get("dataset_id")
    chosen: dict[str, Any] = st.selectbox(
        "Dataset",
        datasets,
        index=ids.index(current) if current in ids else len(datasets) - 1,
        format_func=dataset_label,
    )
    st.session_state["dataset_id"] = chosen["id"]
    return chosen
