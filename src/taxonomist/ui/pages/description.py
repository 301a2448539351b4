"""What each column means: its role, type and example values, and a description users write."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from taxonomist.ui.common import call, choose_dataset, notify, signed_in

client = signed_in()
st.title("Description")
chosen = choose_dataset(client, "No dataset yet: upload one on the Data page.")
detail = call(client.get_dataset, chosen["id"])
if detail is None:
    st.stop()
descriptions = detail.get("descriptions") or {}


def examples(column: dict) -> str:
    stats = column.get("stats", {})
    if "top" in stats:
        return ", ".join(list(stats["top"])[:5])
    if "vocabulary" in stats:
        return "words: " + ", ".join(list(stats["vocabulary"])[:8])
    if "quantiles" in stats:
        q = stats["quantiles"]
        return f"min {stats['min']:g} · median {q['p50']:g} · max {stats['max']:g}"
    return ""


table = pd.DataFrame(
    [
        {
            "column": name,
            "role": col["role"],
            "type": col["dtype"],
            "examples": examples(col),
            "description": descriptions.get(name, ""),
        }
        for name, col in detail["profile"]["columns"].items()
    ]
)
st.caption("Write what each column means; everyone who can see this dataset reads it here.")
edited = st.data_editor(
    table,
    disabled=["column", "role", "type", "examples"],
    hide_index=True,
    use_container_width=True,
    key=f"descriptions-{chosen['id']}",
)
if st.button("Save descriptions"):
    changed = {
        r["column"]: r["description"] or ""
        for r in edited.to_dict("records")
        if (r["description"] or "") != descriptions.get(r["column"], "")
    }
    if changed and call(client.update_dataset, chosen["id"], descriptions=changed):
        notify("success", f"Saved {len(changed)} description(s).")
    elif not changed:
        notify("info", "Nothing changed.")
