"""Sign in with a username and password; the token stays in this browser session."""

from __future__ import annotations

import streamlit as st

from taxonomist.client import Client
from taxonomist.errors import TaxonomistError
from taxonomist.ui.common import api_url, notify

st.title("Taxonomist")
st.caption(f"Server: {api_url()}")
with st.form("signin"):
    username = st.text_input("Username")
    password = st.text_input("Password", type="password")
    submitted = st.form_submit_button("Sign in")
if submitted:
    try:
        client = Client.login(api_url(), username, password, source="ui")
        st.session_state["client"] = client
        st.session_state["me"] = client.me()
        st.rerun()
    except TaxonomistError as exc:
        notify("error", exc.message)
