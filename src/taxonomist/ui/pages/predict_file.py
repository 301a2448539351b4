"""Predict every row of a file; the results, a download, and the prediction's shape."""

from __future__ import annotations

import io

import pandas as pd
import plotly.express as px
import streamlit as st

from taxonomist.ui.common import call, registered_models, signed_in

client = signed_in()
st.title("Predict from file")
models = registered_models(client)
name = st.selectbox("Model", [m["name"] for m in models])
file = st.file_uploader("CSV, TSV, Parquet or JSON Lines with the model's columns")
if file is not None and st.button("Predict"):
    with st.spinner("Predicting ..."):
        content = call(
            client.predict_file, name, file.getvalue(), filename=file.name, output="parquet"
        )
    if content:
        st.session_state["predictions"] = pd.read_parquet(io.BytesIO(content))
        st.session_state["predictions_model"] = name
        # The working data of the Analysis page.
        st.session_state["working_file"] = (file.name, file.getvalue())
frame = st.session_state.get("predictions")
if frame is None:
    st.stop()
st.write(f"{len(frame):,} rows predicted with {st.session_state['predictions_model']}.")
st.dataframe(frame.head(200), use_container_width=True)
st.download_button("Download CSV", frame.to_csv(index=False), "predictions.csv", "text/csv")
proba_columns = [c for c in frame.columns if c.startswith("proba_")]
counts = frame["prediction"].astype(str).value_counts().rename_axis("class").reset_index()
st.plotly_chart(
    px.bar(counts, x="class", y="count", title="Predicted classes"), use_container_width=True
)
confidence = frame[proba_columns].max(axis=1)
scatter = pd.DataFrame({"class": frame["prediction"].astype(str), "confidence": confidence})
st.plotly_chart(
    px.strip(scatter, x="class", y="confidence", title="Confidence by predicted class"),
    use_container_width=True,
)
