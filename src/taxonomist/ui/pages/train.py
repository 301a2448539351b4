"""Start a training job and follow it; then its scores and plots."""

from __future__ import annotations

import time
from typing import get_args

import pandas as pd
import streamlit as st

from taxonomist.data.schema import ColumnRole
from taxonomist.errors import NotFoundError, TaxonomistError
from taxonomist.models.config import MetricName
from taxonomist.store import JobState
from taxonomist.ui.common import cached, call, choose_dataset, notify, signed_in

client = signed_in()
st.title("Train")
ROLES = [r.value for r in ColumnRole if r != ColumnRole.TARGET]  # the target is chosen above
METRICS = ["auto", *get_args(MetricName)]

job_id = st.session_state.get("job_id")
if job_id is None:
    chosen = choose_dataset(client, "Upload a dataset on the Data page first.")
    columns = list(chosen["roles"])
    with st.form("train"):
        default_target = chosen["target"] if chosen["target"] in columns else columns[-1]
        target = st.selectbox("Target (the labels)", columns, index=columns.index(default_target))
        roles_table = pd.DataFrame(
            [{"column": c, "role": r} for c, r in chosen["roles"].items() if r != "target"]
        )
        edited = st.data_editor(
            roles_table,
            column_config={"role": st.column_config.SelectboxColumn("role", options=ROLES)},
            disabled=["column"],
            hide_index=True,
            use_container_width=True,
        )
        name = st.text_input("Model name", value=f"model-{chosen['id']}")
        metric = st.selectbox("Metric", METRICS)
        budget = st.slider("Time budget, seconds", 10, 600, 60, step=10)
        start = st.form_submit_button("Start training")
    if start:
        roles = {r["column"]: r["role"] for r in edited.to_dict("records") if r["column"] != target}
        job = call(
            client.start_job,
            chosen["id"],
            name,
            target=target,
            roles=roles,
            metric=None if metric == "auto" else metric,
            time_budget=float(budget),
        )
        if job:
            st.session_state["job_id"] = job["id"]
            st.rerun()
    st.stop()

job = call(client.get_job, job_id)
if job is None:
    st.session_state.pop("job_id", None)
    st.stop()
p = job.get("progress") or {}
st.subheader(f"Job #{job['id']}: {job['config']['model_name']} — {job['state']}")
budget = p.get("time_budget") or job["config"].get("time_budget") or 0
elapsed = p.get("elapsed") or 0
st.progress(
    min(1.0, elapsed / budget) if budget else 0.0,
    text=f"{p.get('trials_done', 0)} trials · best {p.get('best_score') or 0:.4f} "
    f"({p.get('best_family') or '-'}) · {p.get('time_left') or 0:.0f} s left",
)
if not JobState(job["state"]).finished:
    if st.button("Cancel"):
        call(client.cancel_job, job_id)
    time.sleep(1.0)  # poll: the page reruns, it never blocks on the job
    st.rerun()
if st.button("Train another model"):
    st.session_state.pop("job_id", None)
    st.rerun()
if job["state"] != JobState.SUCCEEDED:
    notify("error", job.get("error") or job["state"])
    st.stop()
result = job["result"]
notify("success", f"Registered {result['model']} version {result['version']}.")
metrics = result["metrics"]
cols = st.columns(4)
cols[0].metric(metrics["primary_metric"], f"{metrics['primary']:.4f}")
cols[1].metric("accuracy", f"{metrics['accuracy']:.4f}")
cols[2].metric("weighted F1", f"{metrics['f1_weighted']:.4f}")
cols[3].metric("train seconds", f"{result['train_seconds']:.0f}")
st.write("Ensemble:", ", ".join(f"{k} {v:.0%}" for k, v in result["ensemble"].items()))
detail = cached(
    ("version", result["model"], result["version"]),
    client.get_model_version,
    result["model"],
    result["version"],
)
if detail:
    evaluation = detail.get("evaluation") or {}
    if evaluation.get("per_class"):
        st.subheader("Per class (cross-validated)")
        report = pd.DataFrame(evaluation["per_class"]).T.rename_axis("class").reset_index()
        st.dataframe(report.round(3), hide_index=True, use_container_width=True)
    st.subheader("Plots")
    plot_cols = st.columns(2)
    shown = 0
    for plot in detail.get("plots") or {}:
        try:  # a run has the plots its model makes (a training curve: the hybrid network)
            png = client.plot(result["model"], result["version"], plot)
        except NotFoundError:
            continue
        except TaxonomistError as exc:
            notify("error", exc.message)
            break
        plot_cols[shown % 2].image(png, caption=plot.replace("_", " "))
        shown += 1
    if detail.get("params"):
        st.subheader("Best hyper-parameters and training settings")
        st.json(detail["params"], expanded=False)
