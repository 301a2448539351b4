"""Retrieval: upload a QA dataset, explore it, build models, benchmark them, ask questions."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import plotly.express as px
import streamlit as st

from taxonomist.store import JobState
from taxonomist.ui.common import NO_FILE_YET, call, notify, signed_in

client = signed_in()
st.title("Retrieval")
st.caption("Find the passage that answers a question, in a corpus of passages you upload.")


def follow(key: str) -> dict[str, Any] | None:
    """Show the job stored under ``key`` with a progress bar; rerun while it runs (the page
    never blocks). Returns the finished job."""
    job_id = st.session_state.get(key)
    if job_id is None:
        return None
    job = call(client.get_job, job_id)
    if job is None:
        st.session_state.pop(key, None)
        return None
    p = job.get("progress") or {}
    total = p.get("total") or 0
    done = p.get("done") or 0
    if not JobState(job["state"]).finished:
        st.progress(
            min(1.0, done / total) if total else 0.0,
            text=f"Job #{job_id} {job['state']}: {p.get('phase', 'waiting')} {done}/{total}",
        )
        if st.button("Cancel", key=f"cancel-{key}"):
            call(client.cancel_job, job_id)
        time.sleep(1.0)
        st.rerun()
    if job["state"] != JobState.SUCCEEDED:
        notify("error", f"Job #{job_id} {job['state']}: {job.get('error') or ''}")
        return None
    return job


def qa_label(d: dict[str, Any]) -> str:
    return f"#{d['id']} {d['name']} ({d['n_rows']:,} questions)"


def histogram(values: list[int], title: str, x: str) -> None:
    frame = pd.DataFrame({x: values})
    st.plotly_chart(px.histogram(frame, x=x, nbins=40, title=title), use_container_width=True)


data_tab, build_tab, models_tab, ask_tab, test_tab = st.tabs(
    ["Data", "Build", "Models", "Ask", "Benchmark and quality"]
)

# -- data ---------------------------------------------------------------------------------------
with data_tab:
    with st.expander("Upload a QA dataset", expanded=False):
        with st.form("qa-upload"):
            file = st.file_uploader("SQuAD-style JSON, or CSV / TSV / Parquet / JSON Lines")
            c1, c2, c3 = st.columns(3)
            context_col = c1.text_input("Context column (tables)", "context")
            question_col = c2.text_input("Question column (tables)", "question")
            answer_col = c3.text_input("Answer column (tables, optional)", "answer")
            submitted = st.form_submit_button("Upload and validate")
        if submitted and file is None:
            notify("warning", NO_FILE_YET)
        if submitted and file is not None:
            with st.spinner("Uploading and validating ..."):
                result = call(
                    client.upload_qa,
                    file.getvalue(),
                    filename=file.name,
                    name=file.name,
                    context=context_col,
                    question=question_col,
                    answer=answer_col or None,
                )
            if result:
                notify("success", f"Stored as QA dataset #{result['dataset']['id']}.")
                st.session_state["qa_dataset_id"] = result["dataset"]["id"]
    datasets = call(client.list_qa_datasets) or []
    chosen: dict[str, Any] | None = None
    if not datasets:
        notify("info", "No QA dataset yet: upload one above.")
    else:
        ids = [d["id"] for d in datasets]
        current = st.session_state.get("qa_dataset_id")
        chosen = st.selectbox(
            "QA dataset",
            datasets,
            index=ids.index(current) if current in ids else len(datasets) - 1,
            format_func=qa_label,
        )
        st.session_state["qa_dataset_id"] = chosen["id"]
        detail = call(client.get_qa_dataset, chosen["id"]) or {}
        report, profile = detail.get("report", {}), detail.get("profile", {})
        st.subheader("Validation report")
        for warning in report.get("warnings", []):
            notify("warning", warning)
        if not report.get("warnings"):
            notify("success", "No problem found.")
        counts = st.columns(5)
        cols = list(counts)
        cols[0].metric("Passages", f"{report.get('passages', 0):,}")
        cols[1].metric("Questions", f"{report.get('questions', 0):,}")
        cols[2].metric("Rows without a context", f"{report.get('rows_without_context', 0):,}")
        cols[3].metric("Rows without a question", f"{report.get('rows_without_question', 0):,}")
        cols[4].metric("Duplicate questions", f"{report.get('duplicate_questions', 0):,}")
        if report.get("unanswered") is not None:
            st.caption(
                f"{report['unanswered']:,} questions have no answer text (SQuAD 2.0 keeps "
                "unanswerable ones); they still point at their passage. Language: "
                f"{profile.get('language', '-')}."
            )
        st.subheader("Exploration")
        left, right = st.columns(2)
        with left:
            histogram(profile.get("words_per_context", []), "Words per context", "words")
        with right:
            histogram(profile.get("words_per_question", []), "Words per question", "words")
        left, right = st.columns(2)
        for col, key, title in (
            (left, "frequent_words", "Most frequent words"),
            (right, "frequent_stop_words", "Most frequent stop words"),
        ):
            words = profile.get(key) or []
            if words:
                frame = pd.DataFrame(words[:25], columns=["word", "count"])
                col.plotly_chart(
                    px.bar(frame, x="count", y="word", orientation="h", title=title).update_yaxes(
                        autorange="reversed"
                    ),
                    use_container_width=True,
                )
        if profile.get("frequent_words"):
            from wordcloud import WordCloud

            cloud = WordCloud(width=900, height=320, background_color="white", random_state=0)
            freq = dict(map(tuple, profile["frequent_words"]))
            st.image(cloud.generate_from_frequencies(freq).to_image(), caption="Word cloud")
        st.markdown("**Map of passages and questions** (t-SNE of TF-IDF, computed as a job)")
        sample = st.select_slider("Texts on the map", [200, 500, 1000, 2000], value=500)
        if st.button("Draw the map"):
            job = call(client.qa_map, chosen["id"], sample)
            if job:
                st.session_state["qa_map_job"] = job["id"]
                st.session_state["qa_map_dataset"] = chosen["id"]
        if st.session_state.get("qa_map_dataset") == chosen["id"]:
            done = follow("qa_map_job")
            if done:
                points = pd.DataFrame(done["result"]["points"])
                st.plotly_chart(
                    px.scatter(
                        points,
                        x="x",
                        y="y",
                        color="label",
                        hover_data=["text"],
                        title="Questions near their passages share words with them",
                    ),
                    use_container_width=True,
                )

# -- build --------------------------------------------------------------------------------------
with build_tab:
    if chosen is None:
        notify("info", "Upload a QA dataset first (Data tab).")
    else:
        with st.form("build"):
            st.markdown(f"Build on **{qa_label(chosen)}**")
            name = st.text_input("Model id", value=f"qa-{chosen['id']}")
            method = st.radio(
                "Method",
                ["hybrid", "bm25", "dense"],
                horizontal=True,
                help="bm25: words; dense: sentence embeddings; hybrid: both, fused (best).",
            )
            c1, c2, c3 = st.columns(3)
            k1 = c1.number_input("BM25 k1", 0.0, 10.0, 1.2, 0.1)
            b = c2.number_input("BM25 b", 0.0, 1.0, 0.75, 0.05)
            fusion = c3.selectbox("Fusion", ["weighted", "rrf"])
            c1, c2, c3 = st.columns(3)
            stem = c1.checkbox("Stems (Snowball)", True)
            stopwords = c2.checkbox("Ignore stop words", True)
            sentences = c3.checkbox("Also index sentences", True)
            tune = st.checkbox("Tune the fusion weights on this dataset's questions", False)
            st.markdown("**Preprocessing** (stored with the model, applied to questions too)")
            c1, c2, c3 = st.columns(3)
            prep = {
                "lowercase": c1.checkbox("Lower-case", False),
                "strip_punctuation": c2.checkbox("Remove punctuation", False),
                "remove_stopwords": c3.checkbox("Remove stop words", False),
                "deduplicate": c1.checkbox("Drop duplicate questions", True),
                "drop_empty": c2.checkbox("Drop empty rows", True),
            }
            replace = st.checkbox("Replace a model with this id", False)
            start = st.form_submit_button("Build")
        if start:
            job = call(
                client.build_retrieval,
                name,
                chosen["id"],
                replace=replace,
                method=method,
                k1=k1,
                b=b,
                fusion=fusion,
                stem=stem,
                stopwords=stopwords,
                sentences=sentences,
                tune=tune,
                preprocessing=prep,
            )
            if job:
                st.session_state["qa_build_job"] = job["id"]
        done = follow("qa_build_job")
        if done:
            meta = done["result"]
            notify(
                "success",
                f"Built {meta['id']}: {meta['n_passages']:,} passages, "
                f"{meta.get('n_sentences') or 0:,} sentences in {meta['build_seconds']:.1f} s.",
            )

# -- models -------------------------------------------------------------------------------------
models = call(client.list_retrieval_models) or []
with models_tab:
    if not models:
        notify("info", "No retrieval model yet: build one (Build tab).")
    else:
        table = pd.DataFrame(
            [
                {
                    "id": m["id"],
                    "method": m["params"]["method"],
                    "loaded": m["loaded"],
                    "passages": m["n_passages"],
                    "language": m["language"],
                    "encoder": m["encoder"] or "",
                    "fusion": m["params"]["fusion"],
                    "k1": m["params"]["k1"],
                    "b": m["params"]["b"],
                    "dataset": m.get("dataset") or "",
                    "owner": m.get("owner") or "",
                    "built": m["built_at"],
                }
                for m in models
            ]
        )
        st.dataframe(table, hide_index=True, use_container_width=True)
        target = st.selectbox("Model", [m["id"] for m in models], key="manage-model")
        c1, c2, c3 = st.columns(3)
        if c1.button("Load") and call(client.load_retrieval, target):
            st.rerun()
        if c2.button("Unload") and call(client.unload_retrieval, target):
            st.rerun()
        if c3.button("Remove", type="primary"):
            call(client.remove_retrieval, target)
            st.rerun()
        with st.expander("Hyper-parameters"):
            st.json(next(m for m in models if m["id"] == target), expanded=False)
        is_admin = st.session_state.get("me", {}).get("role") == "admin"
        if (
            is_admin
            and st.checkbox("I want to remove every retrieval model")
            and st.button("Remove all")
        ):
            removed = call(client.remove_all_retrieval)
            if removed:
                notify("success", f"Removed {removed['removed']} models.")

# -- ask ----------------------------------------------------------------------------------------
with ask_tab:
    if models:
        with st.form("ask"):
            model_id = st.selectbox("Model", [m["id"] for m in models], key="ask-model")
            question = st.text_input("Question", placeholder="When did the tower open?")
            k = st.slider("Passages", 1, 10, 3)
            asked = st.form_submit_button("Find")
        if asked and question.strip():
            answer = call(client.ask, model_id, question, k)
            if answer:
                st.caption(f"{answer['ms']:.1f} ms")
                for hit in answer["passages"]:
                    st.markdown(
                        f"**{hit['rank']}.** score {hit['score']:.3f} · `{hit['passage_id']}`"
                    )
                    st.write(hit["context"])
                if not answer["passages"]:
                    notify("info", "No passage shares a word with the question.")
        elif asked:
            notify("warning", "Type a question first.")
    else:
        notify("info", "No retrieval model yet.")

# -- benchmark and quality ---------------------------------------------------------------------
with test_tab:
    if models and datasets:
        model_id = st.selectbox("Model", [m["id"] for m in models], key="test-model")
        dataset = st.selectbox("Questions from", datasets, format_func=qa_label, key="test-ds")
        n = st.number_input("Random questions for the latency benchmark", 10, 5000, 100, 10)
        c1, c2 = st.columns(2)
        if c1.button("Run the latency benchmark"):
            with st.spinner("Asking the questions one at a time ..."):
                bench = call(client.retrieval_benchmark, model_id, dataset["id"], int(n))
            if bench:
                st.session_state["qa_bench"] = bench
        if c2.button("Run the quality test (all questions)"):
            job = call(client.retrieval_evaluate, model_id, dataset["id"])
            if job:
                st.session_state["qa_eval_job"] = job["id"]
        bench = st.session_state.get("qa_bench")
        if bench:
            cols = list(st.columns(4))
            cols[0].metric("p50", f"{bench['p50_ms']:.1f} ms")
            cols[1].metric("p90", f"{bench['p90_ms']:.1f} ms")
            cols[2].metric("p99", f"{bench['p99_ms']:.1f} ms")
            cols[3].metric("mean", f"{bench['mean_ms']:.1f} ms")
            st.plotly_chart(
                px.histogram(
                    pd.DataFrame({"ms": bench["ms"]}),
                    x="ms",
                    nbins=30,
                    title=f"Latency per question ({bench['n']} questions, {bench['model']})",
                ),
                use_container_width=True,
            )
        done = follow("qa_eval_job")
        if done:
            r = done["result"]
            cols = list(st.columns(4))
            cols[0].metric("Questions", f"{r['n']:,}")
            cols[1].metric("Top-1", f"{r['top1']:.3f}")
            cols[2].metric("Top-5", f"{r['top5']:.3f}")
            cols[3].metric("MRR@10", f"{r['mrr10']:.3f}")
    else:
        notify("info", "Needs a retrieval model and a QA dataset.")
