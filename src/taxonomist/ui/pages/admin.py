"""Users (admins only): create, change role, disable."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from taxonomist.errors import TaxonomistError
from taxonomist.ui.common import call, notify, signed_in

client = signed_in()
st.title("Admin")
if st.session_state.get("me", {}).get("role") != "admin":
    notify("error", "Only an admin can see this page.")
    st.stop()
users = call(client.list_users) or []
st.dataframe(pd.DataFrame(users), hide_index=True, use_container_width=True)
with st.form("new_user"):
    st.subheader("New user")
    username = st.text_input("Username")
    password = st.text_input("Password", type="password")
    role = st.selectbox("Role", ["member", "admin"])
    if st.form_submit_button("Create") and call(client.create_user, username, password, role):
        notify("success", f"Created {username}.")
        st.rerun()
if users:
    st.subheader("Change a user")
    user = st.selectbox("User", users, format_func=lambda u: f"{u['username']} ({u['role']})")
    cols = st.columns(3)
    if cols[0].button("Make admin" if user["role"] == "member" else "Make member"):
        role = "admin" if user["role"] == "member" else "member"
        if call(client.update_user, user["id"], role=role):
            st.rerun()
    if cols[1].button("Enable" if user["disabled"] else "Disable") and call(
        client.update_user, user["id"], disabled=not user["disabled"]
    ):
        st.rerun()

st.subheader("Your API tokens")
tokens = call(client.list_tokens) or []
if tokens:
    shown = pd.DataFrame(tokens)[
        ["id", "name", "kind", "prefix", "created_at", "expires_at", "revoked_at", "last_used_at"]
    ]
    st.dataframe(shown, hide_index=True, use_container_width=True)
with st.form("new_token"):
    token_name = st.text_input("Token name", placeholder="notebook")
    days = st.number_input("Expires after (days)", min_value=1, max_value=3650, value=90)
    if st.form_submit_button("Create token") and token_name:
        created = call(client.create_token, token_name, float(days))
        if created:
            notify("success", "Copy it now: it is shown once.")
            st.code(created["token"])
active = [t for t in tokens if not t["revoked_at"]]
if active:
    revoke = st.selectbox("Token", active, format_func=lambda t: f"{t['name']} ({t['prefix']}…)")
    if st.button("Revoke"):
        try:
            client.revoke_token(revoke["id"])  # returns nothing: success is no error
        except TaxonomistError as exc:
            notify("error", exc.message)
        else:
            st.rerun()
