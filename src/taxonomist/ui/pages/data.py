"""Upload a table, read its validation report, and explore it."""

from __future__ import annotations

import itertools

import pandas as pd
import plotly.express as px
import streamlit as st

from taxonomist.data.schema import ColumnRole
from taxonomist.ui.common import NO_FILE_YET, call, choose_dataset, notify, signed_in

client = signed_in()
st.title("Data")

with st.expander("Upload a table", expanded=False):
    with st.form("upload"):
        file = st.file_uploader(
            "CSV, TSV, Parquet or JSON Lines, or a zip of a table and its images", type=None
        )
        target = st.text_input("Target column (optional: the labels to learn)")
        submitted = st.form_submit_button("Upload and validate")
    if submitted and file is None:
        notify("warning", NO_FILE_YET)
    if submitted and file is not None:
        with st.spinner("Uploading and validating ..."):
            result = call(
                client.upload_dataset, file.getvalue(), filename=file.name, target=target or None
            )
        if result:
            notify("success", f"Stored as dataset #{result['dataset']['id']}.")
            st.session_state["dataset_id"] = result["dataset"]["id"]

chosen = choose_dataset(client, "No dataset yet: upload one above.")
detail = call(client.get_dataset, chosen["id"])
if detail is None:
    st.stop()
profile, report = detail["profile"], detail["report"]

st.subheader("Validation report")
for warning in report.get("warnings", []):
    notify("warning", warning)
if not report.get("warnings"):
    notify("success", "No problem found.")

st.subheader("Overview")
cols = st.columns(4)
cols[0].metric("Rows", f"{profile['n_rows']:,}")
cols[1].metric("Columns", profile["n_columns"])
cols[2].metric("Duplicate rows", f"{profile['n_duplicates']:,}")
cols[3].metric("Language", profile.get("language") or "-")
overview = pd.DataFrame(
    [
        {
            "column": c,
            "role": p["role"],
            "type": p["dtype"],
            "missing": p["missing"],
            "distinct": p["n_unique"],
        }
        for c, p in profile["columns"].items()
    ]
)
st.dataframe(overview, hide_index=True, use_container_width=True)

st.subheader("Exploration")
text_columns = [c for c, p in profile["columns"].items() if p["role"] == ColumnRole.TEXT]
if text_columns:
    column = st.selectbox("Text column", text_columns)
    stats = profile["columns"][column]["stats"]
    hist = stats["words_histogram"]
    edges = hist["edges"]
    bins = pd.DataFrame(
        {
            "words per text": [f"{a}-{b}" for a, b in itertools.pairwise(edges)],
            "texts": hist["counts"],
        }
    )
    st.plotly_chart(
        px.bar(bins, x="words per text", y="texts", title=f"Words per text: {column}"),
        use_container_width=True,
    )
    vocabulary = stats["vocabulary"]
    stop: set[str] = set()
    if profile.get("language") == "en":
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        stop = set(ENGLISH_STOP_WORDS)
    else:
        st.caption(f"No stop-word list for language '{profile.get('language')}': all words shown.")
    others = {w: n for w, n in vocabulary.items() if w not in stop}
    stops = {w: n for w, n in vocabulary.items() if w in stop}
    left, right = st.columns(2)
    for col, words, title in ((left, others, "Most frequent words"), (right, stops, "Stop words")):
        if words:
            frame = pd.DataFrame(list(words.items())[:25], columns=["word", "count"])
            col.plotly_chart(
                px.bar(
                    frame, x="count", y="word", orientation="h", title=f"{title}: {column}"
                ).update_yaxes(autorange="reversed"),
                use_container_width=True,
            )
    if others:
        from wordcloud import WordCloud

        cloud = WordCloud(width=900, height=320, background_color="white", random_state=0)
        st.image(
            cloud.generate_from_frequencies(others).to_image(), caption=f"Word cloud: {column}"
        )
    st.markdown(f"**Map of the texts: {column}**")
    sample = st.select_slider("Texts on the map", [200, 500, 1000, 2000], value=500)
    if st.button("Draw the map"):
        with st.spinner("Computing the map (t-SNE) on the server ..."):
            drawn = call(client.dataset_map, chosen["id"], column, sample)
        if drawn:
            st.session_state["map"] = (chosen["id"], column, drawn)
    stored = st.session_state.get("map")
    if stored and stored[:2] == (chosen["id"], column):
        points = pd.DataFrame(stored[2]["points"])
        st.plotly_chart(
            px.scatter(
                points,
                x="x",
                y="y",
                color="label" if "label" in points else None,
                hover_data=["text"],
                title=f"Texts that share words lie close: {column}",
            ),
            use_container_width=True,
        )
if profile.get("class_counts"):
    counts = pd.DataFrame(list(profile["class_counts"].items()), columns=["class", "rows"])
    st.plotly_chart(
        px.bar(counts, x="class", y="rows", title="Class counts"), use_container_width=True
    )
