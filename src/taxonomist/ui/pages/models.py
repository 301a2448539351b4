"""The registry: versions and scores, compare two, set the champion, load, unload, delete."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from taxonomist.ui.common import cached, call, notify, registered_models, signed_in

client = signed_in()
st.title("Models")
models = registered_models(client)
rows = [
    {
        "model": m["name"],
        "version": v["version"],
        "champion": "champion" in v["aliases"],
        "aliases": ", ".join(v["aliases"]),
        "metric": v["metric"],
        "score": v["primary"],
        "best family": v["best_family"],
        "owner": m.get("owner") or "",
        "dataset": v.get("dataset_id") or "",
        "created": datetime.fromtimestamp(v["created"] / 1000, UTC).strftime("%Y-%m-%d %H:%M")
        if v["created"]
        else "",
    }
    for m in models
    for v in m["versions"]
]
st.dataframe(pd.DataFrame(rows), hide_index=True, use_container_width=True)

name = st.selectbox("Model", [m["name"] for m in models])
versions = next(m["versions"] for m in models if m["name"] == name)
numbers = [v["version"] for v in versions]
left, right = st.columns(2)
a = left.selectbox("Version", numbers, key="version_a")
b = right.selectbox("Compare with", numbers, index=min(1, len(numbers) - 1), key="version_b")
details = [cached(("version", name, v), client.get_model_version, name, v) for v in (a, b)]
for col, d in zip((left, right), details, strict=True):
    if d:
        col.metric(d["metric"] or "score", f"{d['primary'] or 0:.4f}")
        col.write(f"Ensemble: {', '.join(f'{k} {w:.0%}' for k, w in d['ensemble'].items())}")
        col.write(f"Classes: {len(d['classes'])} · target: {d['target']}")
actions = st.columns(4)
if actions[0].button("Make champion") and call(client.set_alias, name, a, "champion"):
    notify("success", f"{name}@champion is version {a}.")
    st.rerun()
if actions[1].button("Load") and call(client.load_model, name, version=a):
    notify("success", f"Loaded {name}/{a}.")
if actions[2].button("Unload"):
    out = call(client.unload_model, name, version=a)
    if out is not None:
        notify("success", f"Unloaded {out['unloaded']} version(s).")
with actions[3].popover("Delete"):
    st.write(f"Delete version {a} of {name}?")
    if st.button("Delete this version", type="primary") and call(
        client.delete_model, f"{name}/{a}"
    ):
        st.rerun()
loaded = call(client.loaded_models) or []
st.caption("In memory: " + (", ".join(f"{m['name']}/{m['version']}" for m in loaded) or "none"))
if st.session_state.get("me", {}).get("role") == "admin":
    with st.expander("Admin: delete every model"):
        if (
            st.button("Delete all models", type="primary")
            and call(client.delete_all_models) is not None
        ):
            st.rerun()
