"""Every page of the web UI, run by Streamlit's AppTest against a live API."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from taxonomist.client import Client
from taxonomist.config import get_settings
from taxonomist.logs import reset_logging
from taxonomist.ui import APP
from taxonomist.ui.common import NO_FILE_YET
from tests.conftest import ADMIN_PASSWORD, small_squad


@pytest.fixture(scope="module")
def api_url(
    live_server: str, toy: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The live API's URL, with one dataset and one trained model ('toy'); the UI's
    TAXONOMIST_API_URL while the module runs. The UI runs in this process: its log goes to a
    home of its own, and its handlers go when the module ends."""
    with Client.login(live_server, "admin", ADMIN_PASSWORD) as admin:
        ds = admin.upload_dataset(toy, name="toy", target="label")["dataset"]["id"]
        job = admin.start_job(ds, "toy", trials=2, families=["complement_nb", "logreg"])
        assert admin.wait_job(job["id"], timeout=180, poll=0.3)["state"] == "succeeded"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TAXONOMIST_API_URL", live_server)
        mp.setenv("TAXONOMIST_HOME", str(tmp_path_factory.mktemp("ui-home")))
        get_settings.cache_clear()
        try:
            yield live_server
        finally:
            reset_logging()
            get_settings.cache_clear()


def signed_in_app(url: str, page: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    client = Client.login(url, "admin", ADMIN_PASSWORD)
    at.session_state["client"] = client
    at.session_state["me"] = client.me()
    at.run()
    at.switch_page(str(APP.parent / "pages" / f"{page}.py"))
    return at.run()


def test_sign_in_shows_the_user_and_a_wrong_password_a_message(api_url: str) -> None:
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    assert at.title[0].value == "Taxonomist"
    at.text_input[0].input("admin")
    at.text_input[1].input("wrong password")
    at.button[0].click().run()
    assert "Wrong username or password" in at.error[0].value
    at.text_input[1].input(ADMIN_PASSWORD)
    at.button[0].click().run()
    assert not at.exception
    assert at.session_state["me"]["role"] == "admin"


def test_data_page_shows_the_report_overview_and_charts(api_url: str) -> None:
    at = signed_in_app(api_url, "data")
    assert not at.exception, at.exception
    assert at.title[0].value == "Data"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Rows"] == "240" and metrics["Columns"] == "4"
    # words per text, frequent words, stop words, class counts
    assert len(at.get("plotly_chart")) == 4
    assert at.get("image")[0].captions == ["Word cloud: title"]
    next(b for b in at.button if b.label == "Draw the map").click().run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 5  # and the map
    next(b for b in at.button if b.label == "Upload and validate").click().run()
    assert [w.value for w in at.warning] == [NO_FILE_YET]  # submitted with no file: says so


def test_train_page_lists_the_datasets_and_its_form(api_url: str) -> None:
    at = signed_in_app(api_url, "train")
    assert not at.exception, at.exception
    assert at.selectbox[0].label == "Dataset"
    assert "label" in at.selectbox[1].options


def test_models_page_shows_the_registry(api_url: str) -> None:
    at = signed_in_app(api_url, "models")
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert table["model"].tolist() == ["toy"] and bool(table["champion"].iloc[0])


def test_predict_from_input_shows_the_label_and_why(api_url: str) -> None:
    at = signed_in_app(api_url, "predict_input")
    assert not at.exception, at.exception
    at.text_area[0].input("bank loan money invest")
    at.text_input[0].input("eu")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert at.subheader[0].value == "Prediction: finance"
    assert at.get("plotly_chart")


def test_admin_page_lists_users(api_url: str) -> None:
    at = signed_in_app(api_url, "admin")
    assert not at.exception, at.exception
    assert "admin" in at.dataframe[0].value["username"].tolist()
    name_box = next(t for t in at.text_input if t.label == "Token name")
    name_box.input("notebook")
    next(b for b in at.button if b.label == "Create token").click().run()
    assert not at.exception, at.exception
    assert at.code[0].value.startswith("tx_")


def test_analysis_page_compares_the_last_file_with_training(
    api_url: str, toy: pd.DataFrame
) -> None:
    at = AppTest.from_file(str(APP), default_timeout=60)
    client = Client.login(api_url, "admin", ADMIN_PASSWORD)
    at.session_state["client"] = client
    at.session_state["me"] = client.me()
    at.session_state["predictions_model"] = "toy"
    at.session_state["working_file"] = ("work.csv", toy.head(30).to_csv(index=False).encode())
    at.run()
    at.switch_page(str(APP.parent / "pages" / "analysis.py")).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Analysis"
    assert {m.label for m in at.metric} >= {"New words (unknown to the model)"}
    assert len(at.get("plotly_chart")) == 2  # classes, words per text


def test_description_page_shows_roles_examples_and_saved_descriptions(api_url: str) -> None:
    with Client.login(api_url, "admin", ADMIN_PASSWORD) as admin:
        ds = admin.list_datasets()[0]["id"]
        admin.update_dataset(ds, descriptions={"store": "where the app is sold"})
    at = signed_in_app(api_url, "description")
    assert not at.exception, at.exception
    table = at.dataframe[0].value if at.dataframe else at.get("arrow_data_frame")[0].value
    row = table.set_index("column").loc["store"]
    assert row["role"] == "categorical" and row["description"] == "where the app is sold"
    assert "words:" in table.set_index("column").loc["title", "examples"]


def test_retrieval_page_reports_explores_and_answers(api_url: str) -> None:
    at = signed_in_app(api_url, "retrieval")
    assert not at.exception, at.exception
    assert at.title[0].value == "Retrieval"
    assert any("No QA dataset yet" in i.value for i in at.info)
    next(b for b in at.button if b.label == "Upload and validate").click().run()
    assert NO_FILE_YET in [w.value for w in at.warning]
    with Client.login(api_url, "admin", ADMIN_PASSWORD) as admin:
        ds = admin.upload_qa(small_squad(), filename="squad.json")["dataset"]["id"]
        job = admin.build_retrieval("ui-qa", ds, method="bm25")
        assert admin.wait_job(job["id"], timeout=120, poll=0.3)["state"] == "succeeded"
    at.run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Passages"] == "40" and metrics["Questions"] == "216"
    assert len(at.get("plotly_chart")) == 4  # two length histograms, words, stop words
    assert at.get("image")[0].captions == ["Word cloud"]
    question = next(t for t in at.text_input if t.label == "Question")
    question.input("In what country is Normandy located?")
    next(b for b in at.button if b.label == "Find").click().run()
    assert not at.exception, at.exception
    assert any("Normandy" in m.value for m in at.markdown)


def test_monitoring_page_checks_drift_shows_quality_retrains_and_sets_a_policy(
    api_url: str, toy: pd.DataFrame
) -> None:
    with Client.login(api_url, "admin", ADMIN_PASSWORD) as admin:
        answer = admin.predict("toy", toy.drop(columns="label").head(60).to_dict("records"))
        labels = toy["label"].head(60).tolist()
        rid = answer["request_id"]
        admin.feedback(
            "toy", [{"request_id": rid, "position": i, "label": labels[i]} for i in range(60)]
        )
    at = signed_in_app(api_url, "monitoring")
    assert not at.exception, at.exception
    assert at.title[0].value == "Monitoring"
    assert "No drift report of toy yet" in at.info[0].value
    next(b for b in at.button if b.label == "Check drift now").click().run()
    assert not at.exception, at.exception
    verdict = next(m.value for m in at.markdown if "score" in m.value and "###" in m.value)
    assert any(v in verdict for v in ("ok", "warning", "drift"))
    # the score over time, each signal over time, the predicted classes
    assert len(at.get("plotly_chart")) >= 3
    assert at.dataframe[0].value["signal"].tolist()[:1] == ["distribution"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["With feedback"] == "60" and float(metrics["Accuracy"]) > 0.5
    assert any("never retrained" in c.value for c in at.caption)
    box = next(n for n in at.number_input if n.label.startswith("…once this many new labels"))
    box.set_value(200)
    next(b for b in at.button if b.label == "Save the policy").click().run()
    assert not at.exception, at.exception
    assert "Saved: toy retrains by itself" in at.success[0].value
    with Client.login(api_url, "admin", ADMIN_PASSWORD) as admin:
        assert admin.policy("toy")["policy"]["new_labels"] == 200
        admin.delete_policy("toy")
