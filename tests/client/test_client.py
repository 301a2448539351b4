"""The Python client and the CLI's --remote mode against a real server (uvicorn in a thread,
Dask LocalCluster, SQLite store)."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from taxonomist import errors
from taxonomist.client import Client
from tests.conftest import ADMIN_PASSWORD, DATA, small_squad


@pytest.fixture(scope="module")
def alice(live_server: str) -> Client:
    with Client.login(live_server, "admin", ADMIN_PASSWORD) as admin:
        admin.create_user("alice", "alice-password")
    client = Client.login(live_server, "alice", "alice-password")
    yield client
    client.close()


def test_client_trains_and_predicts_end_to_end(alice: Client, toy: pd.DataFrame, tmp_path) -> None:
    uploaded = alice.upload_dataset(toy, name="toy", target="label")
    ds = uploaded["dataset"]["id"]
    assert uploaded["roles"]["title"] == "text"
    seen: list[str] = []
    job = alice.start_job(ds, "toy", trials=2, families=["complement_nb"])
    job = alice.wait_job(
        job["id"], timeout=180, poll=0.3, on_progress=lambda j: seen.append(j["state"])
    )
    assert job["state"] == "succeeded" and seen[-1] == "succeeded"
    assert alice.job_logs(job["id"])
    assert [m["name"] for m in alice.list_models()] == ["toy"]
    out = alice.predict("toy@champion", toy.drop(columns="label").head(5).to_dict("records"))
    assert len(out["predictions"]) == 5 and out["version"] == 1
    path = tmp_path / "rows.csv"
    toy.to_csv(path, index=False)
    scored = pd.read_csv(io.BytesIO(alice.predict_file("toy", path)))
    assert (scored["prediction"] == toy["label"]).mean() > 0.8
    assert alice.plot("toy", 1, "per_class_f1")[:4] == b"\x89PNG"
    assert alice.download_dataset(ds, tmp_path / "back.csv").read_text() == toy.to_csv(index=False)


def test_client_raises_the_packages_exceptions(live_server: str, alice: Client) -> None:
    with pytest.raises(errors.ModelNotFoundError, match="visible to you"):
        alice.predict("nobody", {"title": "x"})
    with pytest.raises(errors.AuthenticationError, match="Wrong username or password"):
        Client.login(live_server, "alice", "wrong")
    with pytest.raises(errors.PermissionDeniedError):
        alice.list_users()
    with pytest.raises(errors.DataError) as info:
        alice.upload_dataset(DATA / "malformed" / "one_class.csv", target="label")
    assert info.value.status == 422 and "one class" in info.value.message.lower()
    with pytest.raises(errors.ServiceUnavailableError, match="Cannot reach"):
        Client("http://127.0.0.1:9", "t").health()


def test_cli_remote_mode(live_server: str, alice: Client, toy: pd.DataFrame, tmp_path) -> None:
    from taxonomist.cli import app

    token = alice.create_token("cli")["token"]
    data = tmp_path / "toy.csv"
    toy.to_csv(data, index=False)
    runner = CliRunner()
    remote = ["--remote", live_server, "--token", token]
    r = runner.invoke(
        app,
        [
            "train",
            str(data),
            "--target",
            "label",
            "--name",
            "toy-cli",
            "--trials",
            "2",
            "--json",
            *remote,
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["version"] == 1, r.output
    r = runner.invoke(app, ["models", "list", "--json", *remote])
    assert {m["name"] for m in json.loads(r.stdout)} >= {"toy-cli"}
    r = runner.invoke(app, ["predict", "toy-cli", str(data), "--json", *remote])
    assert r.exit_code == 0 and json.loads(r.stdout)["n"] == len(toy)
    r = runner.invoke(app, ["models", "show", "toy-cli", "--json", *remote])
    assert json.loads(r.stdout)["classes"] == ["cooking", "finance", "sport"]
    r = runner.invoke(app, ["models", "list", "--remote", live_server])
    assert r.exit_code == 2 and "needs a token" in r.output
    r = runner.invoke(app, ["models", "show", "nope", *remote])
    assert r.exit_code == 2 and "visible to you" in r.output


def test_client_and_cli_cover_retrieval(live_server: str, alice: Client, tmp_path) -> None:
    from taxonomist.cli import app

    path = tmp_path / "squad.json"
    path.write_bytes(small_squad())
    up = alice.upload_qa(path, name="squad")
    ds = up["dataset"]["id"]
    assert [d["id"] for d in alice.list_qa_datasets()] == [ds]
    assert alice.get_qa_dataset(ds)["profile"]["passages"] == 40
    job = alice.wait_job(alice.build_retrieval("sq", ds, method="bm25")["id"], poll=0.3)
    assert job["state"] == "succeeded", job
    assert [m["id"] for m in alice.list_retrieval_models()] == ["sq"]
    assert alice.load_retrieval("sq")["loaded"] and alice.get_retrieval_model("sq")["loaded"]
    hits = alice.ask("sq", "In what country is Normandy located?", k=2)["passages"]
    assert len(hits) == 2 and "Normandy" in hits[0]["context"]
    assert alice.retrieval_benchmark("sq", ds, n=10)["n"] == 10
    quality = alice.wait_job(alice.retrieval_evaluate("sq", ds)["id"], poll=0.3)["result"]
    assert quality["top1"] > 0.7
    themap = alice.wait_job(alice.qa_map(ds, sample=50)["id"], poll=0.3)["result"]
    assert themap["n"] == 50
    assert not alice.unload_retrieval("sq")["loaded"]
    with pytest.raises(errors.ConflictError):
        alice.build_retrieval("sq", ds)

    token = alice.create_token("cli-retrieval")["token"]
    remote = ["--remote", live_server, "--token", token]
    runner = CliRunner()
    r = runner.invoke(
        app,
        [
            "retrieval",
            "ask",
            "sq",
            "Who ruled the duchy of Normandy?",
            "-k",
            "1",
            "--json",
            *remote,
        ],
    )
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.output)["passages"]) == 1
    r = runner.invoke(app, ["retrieval", "evaluate", "sq", str(path), "--json", *remote])
    assert r.exit_code == 0, r.output
    assert set(json.loads(r.output)) == {"n", "top1", "top5", "mrr10", "p50_ms", "p99_ms"}
    r = runner.invoke(
        app,
        ["retrieval", "build", str(path), "--name", "sq2", "--method", "bm25", "--json", *remote],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["id"] == "sq2"
    r = runner.invoke(app, ["retrieval", "remove", "sq2", *remote])
    assert r.exit_code == 0 and "Removed 1" in r.output
    alice.remove_retrieval("sq")
    with pytest.raises(errors.NotFoundError):
        alice.ask("sq", "anything")
