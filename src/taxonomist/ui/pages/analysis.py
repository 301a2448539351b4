"""The last file predicted, against the model's training data."""

from __future__ import annotations

import itertools

import pandas as pd
import plotly.express as px
import streamlit as st

from taxonomist.ui.common import cached, notify, signed_in

client = signed_in()
st.title("Analysis")
working = st.session_state.get("working_file")
model = st.session_state.get("predictions_model")
if working is None or model is None:
    notify(
        "info", "Predict a file on the 'Predict from file' page first: it is the working data here."
    )
    st.stop()
filename, content = working
report = cached(
    ("compare", model, filename, len(content)),
    client.compare_file,
    model,
    content,
    filename=filename,
)
if report is None:
    st.stop()
st.caption(f"{filename}: {report['n_rows']:,} rows, against {model} version {report['version']}")

classes = report["class_counts"]
rows = [{"class": c, "rows": n, "data": "training"} for c, n in classes["training"].items()]
rows += [{"class": c, "rows": n, "data": "predicted"} for c, n in classes["predicted"].items()]
shares = pd.DataFrame(rows)
shares["share"] = shares["rows"] / shares.groupby("data")["rows"].transform("sum")
st.plotly_chart(
    px.bar(
        shares,
        x="class",
        y="share",
        color="data",
        barmode="group",
        title="Classes: training vs predicted (share of rows)",
    ),
    use_container_width=True,
)
for column, text in report["text"].items():
    st.subheader(f"Text column '{column}'")
    hist = text["words_histogram"]
    edges = hist["edges"]
    labels = [f"{a}-{b}" for a, b in itertools.pairwise(edges)]
    bins = []
    for data in ("training", "working"):
        counts = hist[data] or [0] * len(labels)
        total = sum(counts) or 1
        bins += [
            {"words per text": lab, "share": n / total, "data": data}
            for lab, n in zip(labels, counts, strict=False)
        ]
    st.plotly_chart(
        px.bar(
            pd.DataFrame(bins),
            x="words per text",
            y="share",
            color="data",
            barmode="group",
            title=f"Words per text: {column}",
        ),
        use_container_width=True,
    )
    new, missing = text["new_words"], text["missing_words"]
    left, right = st.columns(2)
    left.metric("New words (unknown to the model)", new["count"])
    left.dataframe(
        pd.DataFrame(list(new["top"].items()), columns=["word", "count"]), hide_index=True
    )
    right.metric("Frequent training words missing here", missing["count"])
    right.write(", ".join(missing["top"]) or "none")
