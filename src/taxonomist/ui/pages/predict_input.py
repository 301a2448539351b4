"""A form built from the model's columns; the label, the probabilities and why."""

from __future__ import annotations

import base64

import pandas as pd
import plotly.express as px
import streamlit as st

from taxonomist.data.schema import ColumnRole
from taxonomist.ui.common import cached, call, registered_models, signed_in

IMAGE_TYPES = ["png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff"]
client = signed_in()
st.title("Predict from input")
models = registered_models(client)
name = st.selectbox("Model", [m["name"] for m in models])
versions = next(m["versions"] for m in models if m["name"] == name)
champion = next((v["version"] for v in versions if "champion" in v["aliases"]), None)
version = champion or versions[0]["version"]
detail = cached(("version", name, version), client.get_model_version, name, version)
if detail is None:
    st.stop()
st.caption(f"Version {version} · predicts '{detail['target']}' · {len(detail['classes'])} classes")
record: dict[str, object] = {}
images: dict[str, bytes] = {}
with st.form("record"):
    for column, role in detail["roles"].items():
        if role == ColumnRole.TEXT:
            record[column] = st.text_area(column)
        elif role == ColumnRole.NUMERIC:
            record[column] = st.number_input(column, value=None, placeholder="empty")
        elif role == ColumnRole.CATEGORICAL:
            record[column] = st.text_input(column)
        elif role == ColumnRole.IMAGE:
            upload = st.file_uploader(column, type=IMAGE_TYPES, key=f"image-{column}")
            if upload is not None:
                images[column] = upload.getvalue()
                mime = upload.type or "image/png"
                record[column] = f"data:{mime};base64,{base64.b64encode(images[column]).decode()}"
            else:
                record[column] = None  # predicted from the other columns
    submitted = st.form_submit_button("Predict")
if submitted:
    for column, data in images.items():
        st.image(data, caption=column, width=224)
    out = call(client.predict, f"{name}/{version}", record, explain=True, top=8)
    if out:
        p = out["predictions"][0]
        st.subheader(f"Prediction: {p['label']}")
        proba = pd.DataFrame(list(p["probabilities"].items()), columns=["class", "probability"])
        proba = proba.sort_values("probability", ascending=False).head(15)
        st.plotly_chart(
            px.bar(
                proba, x="probability", y="class", orientation="h", title="Class probabilities"
            ).update_yaxes(autorange="reversed"),
            use_container_width=True,
        )
        explanation = p.get("explanation") or {}
        for key, title in (("words", "Words"), ("features", "Other features")):
            items = explanation.get(key) or []
            if items:
                st.write(f"**{title} that pushed it towards (+) or away from (-) '{p['label']}'**")
                st.dataframe(pd.DataFrame(items), hide_index=True)
