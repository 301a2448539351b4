"""A model at work: drift over time and the newest report, live quality, retraining (a button,
the journal) and the policy that retrains by itself."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from taxonomist.errors import NotFoundError
from taxonomist.ui.common import call, notify, registered_models, signed_in

VERDICT_COLOR = {"ok": "green", "warning": "orange", "drift": "red"}

client = signed_in()
st.title("Monitoring")
models = registered_models(client)
name = st.selectbox("Model", [m["name"] for m in models], key="monitor_model")
drift_tab, quality_tab, retrain_tab, policy_tab = st.tabs(
    ["Drift", "Live quality", "Retraining", "Policy"]
)


def show_report(report: dict) -> None:
    """The verdict, its reasons, every signal, and the distributions that moved."""
    verdict = report["verdict"]
    st.markdown(
        f"### :{VERDICT_COLOR[verdict]}[{verdict}] · score {report['score']:.2f}  \n"
        f"Report {report['id']}: {report['n_current']:,} working rows ({report['source']}) "
        f"against {report['n_reference']:,} training rows of version {report['version']}"
    )
    for reason in report["reasons"]:
        st.markdown(f"- {reason}")
    signals = pd.DataFrame(report["signals"])[
        ["column", "signal", "effect_name", "effect", "p_corrected", "verdict"]
    ]
    st.dataframe(signals, hide_index=True, use_container_width=True)
    pred = report["prediction"]["distribution"]
    shares = pd.DataFrame(
        {
            "class": pred["categories"] * 2,
            "share": pred["reference"] + pred["current"],
            "data": ["training"] * len(pred["categories"]) + ["working"] * len(pred["categories"]),
        }
    )
    st.plotly_chart(
        px.bar(
            shares,
            x="class",
            y="share",
            color="data",
            barmode="group",
            title="Predicted classes: training (out of fold) vs working",
        ),
        use_container_width=True,
    )
    for column, col in report["columns"].items():
        if col["kind"] != "text":
            continue
        vocabulary = col.get("vocabulary") or {}
        st.markdown(
            f"**{column}** · out-of-vocabulary {col['oov_rate']['reference']:.1%} → "
            f"{col['oov_rate']['current']:.1%} · words per text "
            f"{col['words_per_text']['reference_mean']:.1f} → "
            f"{col['words_per_text']['current_mean']:.1f}"
        )
        words = st.columns(3)
        words[0].caption("New words (unknown to the model)")
        words[0].write(", ".join(col["new_words"]["top"]) or "none")
        words[1].caption("Frequent training words now rare")
        words[1].write(", ".join(col["missing_words"]["top"]) or "none")
        words[2].caption("Typical of the working data")
        words[2].write(", ".join(vocabulary.get("words_typical_of_current", [])) or "-")
    html = call(client.drift_html, name, report["id"])
    if html:
        st.download_button(
            "Download as HTML",
            html,
            file_name=f"drift-{name}-{report['id']}.html",
            mime="text/html",
        )


with drift_tab:
    left, right = st.columns(2)
    days = left.number_input("Logged predictions of the last N days", 0.1, 3650.0, 7.0)
    if left.button("Check drift now"):
        report = call(client.drift, name, days=days)
        if report is not None:
            st.session_state["drift_report"] = report
    working = right.file_uploader("…or a working file", type=["csv", "tsv", "parquet", "jsonl"])
    if right.button("Check this file") and working is not None:
        report = call(client.drift, name, working.getvalue(), filename=working.name)
        if report is not None:
            st.session_state["drift_report"] = report
    history = call(client.drift_reports, name) or []
    if history:
        frame = pd.DataFrame(history)
        frame["at"] = pd.to_datetime(frame["at"])
        fig = px.scatter(
            frame,
            x="at",
            y="score",
            color="verdict",
            color_discrete_map=VERDICT_COLOR,
            title="Drift score over time",
        )
        fig.add_trace(
            go.Scatter(
                x=frame["at"],
                y=frame["score"],
                mode="lines",
                line={"color": "lightgray"},
                showlegend=False,
            )
        )
        fig.add_hline(y=1, line_dash="dot", annotation_text="drift")
        st.plotly_chart(fig, use_container_width=True)
        signals = pd.DataFrame(
            [
                {"at": r["at"], "signal": k, "effect": v}
                for r in history
                for k, v in r["signals"].items()
            ]
        )
        st.plotly_chart(
            px.line(
                signals,
                x="at",
                y="effect",
                color="signal",
                markers=True,
                title="Each signal over time (PSI, AUC or out-of-vocabulary rise)",
            ),
            use_container_width=True,
        )
    shown = st.session_state.get("drift_report")
    if shown is None or shown["model"] != name:
        shown = call(client.drift_report, name, history[0]["id"]) if history else None
    if shown is not None:
        show_report(shown)
    elif not history:
        notify("info", f"No drift report of {name} yet: check the logged predictions or a file.")

with quality_tab:
    window = st.number_input("Predictions of the last N days", 0.1, 3650.0, 7.0, key="q_days")
    quality = call(client.live_quality, name, window)
    if quality and quality["n"]:
        cols = st.columns(3)
        cols[0].metric("With feedback", f"{quality['n']:,}")
        cols[1].metric("Accuracy", f"{quality['accuracy']:.3f}")
        cols[2].metric("Macro-F1", f"{quality['f1_macro']:.3f}")
        recall = pd.DataFrame(
            {"class": list(quality["recall"]), "recall": list(quality["recall"].values())}
        )
        st.plotly_chart(
            px.bar(recall, x="class", y="recall", title="Recall per true class"),
            use_container_width=True,
        )
    elif quality is not None:
        notify("info", "No prediction has feedback yet: send true labels to /monitor/feedback.")

with retrain_tab:
    with st.form("retrain"):
        labelled = st.file_uploader(
            "New labelled rows (with the target column); none: the log's feedback",
            type=["csv", "tsv", "parquet", "jsonl"],
        )
        reason = st.text_input("Why (for the journal)")
        if st.form_submit_button("Retrain a challenger"):
            data = None if labelled is None else labelled.getvalue()
            job = call(
                client.retrain,
                name,
                data,
                reason=reason,
                filename=labelled.name if labelled else "data.csv",
            )
            if job is not None:
                notify(
                    "success",
                    f"Retrain job {job['id']} queued: the journal below shows "
                    "its decision when it ends.",
                )
    entries = call(client.journal, name) or []
    if not entries:
        st.caption(f"{name} was never retrained.")
    for e in entries:
        with st.expander(f"#{e['id']} {e['at'][:19]} · {e['trigger']} · {e['status']}"):
            st.write(e.get("decision") or e.get("error") or e["reason"])
            ev = e.get("evaluation")
            if ev:
                scores = pd.DataFrame(
                    [
                        {
                            "model": role,
                            "score": ev[role]["score"],
                            "low": ev[role]["score"] - ev[role]["low"],
                            "high": ev[role]["high"] - ev[role]["score"],
                        }
                        for role in ("champion", "challenger")
                    ]
                )
                st.plotly_chart(
                    px.bar(
                        scores,
                        x="model",
                        y="score",
                        error_y="high",
                        error_y_minus="low",
                        title=f"{ev['metric']} on {ev['n']} unseen rows (95% intervals)",
                    ),
                    use_container_width=True,
                )
                per_class = pd.DataFrame(
                    {
                        role: {c: v["f1"] for c, v in e["reports"][role]["per_class"].items()}
                        for role in ("champion", "challenger")
                    }
                )
                st.dataframe(per_class.rename_axis("class (F1)"), use_container_width=True)
            st.json(e["data"], expanded=False)

with policy_tab:
    try:
        current = client.policy(name)["policy"]
    except NotFoundError:  # no policy yet: the form starts from the defaults
        current = {}
    with st.form("policy"):
        drift = st.checkbox("Retrain on a drift verdict", value=current.get("drift", False))
        below = st.number_input(
            "…when live macro-F1 falls below (0: never)",
            0.0,
            1.0,
            float(current.get("quality_below") or 0.0),
        )
        labels = st.number_input(
            "…once this many new labels arrived (0: never)",
            0,
            10**7,
            int(current.get("new_labels") or 0),
        )
        every = st.number_input(
            "…every N days (0: never)", 0.0, 3650.0, float(current.get("every_days") or 0.0)
        )
        enabled = st.checkbox("Enabled", value=current.get("enabled", True))
        if st.form_submit_button("Save the policy"):
            policy = {
                "drift": drift,
                "quality_below": below or None,
                "new_labels": int(labels) or None,
                "every_days": every or None,
                "enabled": enabled,
            }
            if call(client.set_policy, name, **policy) is not None:
                notify("success", f"Saved: {name} retrains by itself on what you ticked.")
