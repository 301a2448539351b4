"""Taxonomist web UI: ``streamlit run`` this file (``taxonomist ui`` does)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from taxonomist.ui.common import configure_ui_logging

st.set_page_config(page_title="Taxonomist", page_icon=":material/label:", layout="wide")
# Streamlit runs this file as __main__; a process that multiprocessing spawns from one that
# ran it (AppTest leaves it in sys.modules) imports it again as __mp_main__, not to log here.
if __name__ == "__main__":
    configure_ui_logging()
PAGES = Path(__file__).parent / "pages"


def page(name: str, title: str, icon: str) -> st.Page:
    return st.Page(str(PAGES / f"{name}.py"), title=title, icon=icon, url_path=name)


me = st.session_state.get("me")
if me is None:
    pages = [page("signin", "Sign in", ":material/login:")]
else:
    pages = [
        page("data", "Data", ":material/table:"),
        page("description", "Description", ":material/description:"),
        page("train", "Train", ":material/model_training:"),
        page("models", "Models", ":material/inventory_2:"),
        page("predict_input", "Predict from input", ":material/edit_note:"),
        page("predict_file", "Predict from file", ":material/upload_file:"),
        page("analysis", "Analysis", ":material/query_stats:"),
        page("monitoring", "Monitoring", ":material/monitor_heart:"),
        page("retrieval", "Retrieval", ":material/manage_search:"),
    ]
    if me["role"] == "admin":
        pages.append(page("admin", "Admin", ":material/admin_panel_settings:"))
    with st.sidebar:
        st.markdown(f"**{me['username']}** · {me['role']}")
        if st.button("Sign out"):
            client = st.session_state.pop("client", None)
            if client is not None:
                try:
                    client.logout()
                finally:
                    client.close()
            st.session_state.pop("me", None)
            st.rerun()
st.navigation(pages).run()
