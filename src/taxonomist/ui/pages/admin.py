"""Users (admins only): create, change role, disable."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from taxonomist.ui.common import call, signed_in

client = signed_in()
st.title("Admin")
if st.session_state.get("me", {}).get("role") != "admin":
    st.error("Only an admin can see this page.")
    st.stop()
users = call(client.list_users) or []
st.dataframe(pd.DataFrame(users), hide_index=True, use_container_width=True)
with st.form("new_user"):
    st.subheader("New user")
    username = st.text_input("Username")
    password = st.text_input("Password", type="password")
    role = st.selectbox("Role", ["member", "admin"])
    if st.form_submit_button("Create") and call(client.create_user, username, password, role):
        st.success(f"Created {username}.")
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
