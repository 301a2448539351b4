"""``demo``: train the demo model on the shipped sample, show what it does, build the
retrieval demo and serve both with a demo user."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from taxonomist.cli.backend import LocalBackend
from taxonomist.cli.options import HostOpt, PortOpt
from taxonomist.cli.output import JobBar, TrainProgress, out
from taxonomist.cli.train import print_training
from taxonomist.demo import EXAMPLE_RECORD
from taxonomist.errors import InvalidParameterError, TaxonomistError

DEMO_USER, DEMO_PASSWORD = "demo", "demo-password"


def demo(
    time_budget: Annotated[
        float, typer.Option("--time-budget", help="Seconds for training the demo model.")
    ] = 60,
    serve_api: Annotated[
        bool,
        typer.Option("--serve/--no-serve", help="Serve the model over the REST API afterwards."),
    ] = True,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
) -> None:
    """Train the demo model on the shipped app-store sample, show what it does, and serve it
    over the REST API with a demo user."""
    from taxonomist.demo import DEMO_NAME, DEMO_TARGET, demo_data_path
    from taxonomist.models.config import TrainConfig
    from taxonomist.models.train import train

    data = demo_data_path()
    out.print(
        f"[bold]Taxonomist demo[/]: classify {DEMO_TARGET} of App Store apps from their "
        f"name, description and numbers ({data})."
    )
    token, user_id = demo_account(DEMO_NAME)
    table, qa = demo_datasets(user_id)
    # Trained on the demo user's dataset: the web UI's pages show it and the version names it.
    config = TrainConfig.parse(
        {"target": DEMO_TARGET, "name": DEMO_NAME, "time_budget": time_budget},
        source="the demo's options",
    )
    backend = LocalBackend()
    with TrainProgress(enabled=True, budget=config.time_budget, trials=None) as progress:
        result = train(table.path, config, on_progress=progress.update)
    result.register(backend.registry, tags={"dataset_id": str(table.id)})
    print_training(result)
    demo_retrieval(user_id, qa)
    explanation = result.model.explain(EXAMPLE_RECORD, top=5)
    top = sorted(explanation["probabilities"].items(), key=lambda kv: -kv[1])[:3]
    out.print(
        f"\nExample: '{EXAMPLE_RECORD['track_name']}' -> [bold]{explanation['label']}[/] "
        f"({', '.join(f'{k} {v:.0%}' for k, v in top)})"
    )
    words = ", ".join(w["name"].split(": ", 1)[-1] for w in explanation["words"] if w["weight"] > 0)
    out.print(f"  words that pushed it there: {words}")
    home = os.environ.get("TAXONOMIST_HOME", "~/.taxonomist")
    out.print(
        "\nWhere to look next:\n"
        f"  taxonomist models show {DEMO_NAME}\n"
        f"  taxonomist predict {DEMO_NAME} {data} --output /tmp/demo-predictions.csv\n"
        '  taxonomist retrieval ask demo-squad "When was Harvard founded?" -k 3\n'
        f"  mlflow ui --backend-store-uri sqlite:///{home}/mlflow.db   (runs, plots, "
        "trials)"
    )
    if serve_api:
        _serve_demo(EXAMPLE_RECORD, token, host, port)


def demo_account(model_name: str) -> tuple[str, int]:
    """Create (or reset) the demo user, give it the demo model; return an API token and the
    user's id."""
    from taxonomist.config import get_settings
    from taxonomist.store import Database
    from taxonomist.store.accounts import ensure_demo_account

    settings = get_settings()
    db = Database(settings.database)
    db.migrate()
    try:
        with db.session() as s:
            account = ensure_demo_account(
                s, DEMO_USER, DEMO_PASSWORD, model_name, admin_password=settings.admin_password
            )
    finally:
        db.dispose()
    if account.admin_password:
        out.print(
            f"Created user 'admin' with the one-time password: [bold]{account.admin_password}[/]"
        )
    return account.token, account.user_id


def sample(
    path: Annotated[
        Path,
        typer.Argument(
            help="Where to write the sample: a .csv, or a .zip for the multimodal one.",
            dir_okay=False,
        ),
    ] = Path("apps.csv"),
    later: Annotated[
        Path | None,
        typer.Option(
            "--later",
            help="Also split off a later batch (30 % of the apps, at random) into this file: "
            "new data to try drift checks and retraining on.",
            dir_okay=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write the App Store sample that ships with Taxonomist (2,341 apps, 23 genres in
    'prime_genre'; names, descriptions and numbers), to try the commands on.

    taxonomist sample apps.csv && taxonomist train apps.csv --target prime_genre

    taxonomist sample old.csv --later new.csv   (what a model learns from, and what came later)

    taxonomist sample faces.zip   (200 made-up products with a picture each, labelled by
    department and whether the picture is a face: a table and its images in one zip)
    """
    import pandas as pd

    from taxonomist.demo import DEMO_TARGET, demo_data_path

    for target in (path, later):
        if target is not None and target.exists() and not force:
            raise InvalidParameterError(
                f"{target} exists: pass --force to overwrite it, or another path."
            )
    if path.suffix.lower() == ".zip":
        from taxonomist.demo.multimodal import make_multimodal_zip

        if later is not None:
            raise InvalidParameterError("--later splits the App Store sample: give a .csv.")
        path.parent.mkdir(parents=True, exist_ok=True)
        make_multimodal_zip(path)
        out.print(
            f"Wrote {path}: items.csv (200 products: 'title', 'photo', the label in 'label') "
            "and images/, scikit-image's faces and other pictures."
        )
        return
    table = pd.read_csv(demo_data_path())
    batches = [(path, table)]
    if later is not None:
        newer = table.sample(frac=0.3, random_state=0).sort_index()
        batches = [(path, table.drop(newer.index)), (later, newer)]
    for target, rows in batches:
        target.parent.mkdir(parents=True, exist_ok=True)
        rows.to_csv(target, index=False)
        out.print(
            f"Wrote {target}: {len(rows):,} App Store apps; the label column is '{DEMO_TARGET}'."
        )


@dataclass(frozen=True)
class DemoDataset:
    id: int
    name: str
    path: str


def demo_datasets(user_id: int) -> tuple[DemoDataset, DemoDataset | None]:
    """The demo table and the shared SQuAD sample as datasets of the demo user (stored once:
    a second demo reuses them); the QA dataset is ``None`` without the sample."""
    from taxonomist.api.services.datasets import describe_table
    from taxonomist.api.services.retrieval import describe_qa
    from taxonomist.config import get_settings
    from taxonomist.demo import DEMO_TARGET, demo_data_path, squad_sample_path
    from taxonomist.store import Database

    settings = get_settings()
    db = Database(settings.database)
    try:
        table = _demo_dataset(
            settings, db, user_id, demo_data_path(), lambda p: describe_table(p, DEMO_TARGET, None)
        )
        squad = squad_sample_path()
        qa = None
        if squad is not None:
            qa = _demo_dataset(
                settings, db, user_id, squad, lambda p: describe_qa(p, "context", "question", None)
            )
    finally:
        db.dispose()
    return table, qa


def _demo_dataset(settings: Any, db: Any, user_id: int, path: Path, describe: Any) -> DemoDataset:
    """The demo user's dataset with ``path``'s content, stored now if it has none."""
    import hashlib

    from fastapi import UploadFile
    from sqlalchemy import select

    from taxonomist.api.services.datasets import store_file
    from taxonomist.store import Dataset

    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    with db.session() as s:
        row = s.scalar(
            select(Dataset)
            .where(Dataset.owner_id == user_id, Dataset.sha256 == sha)
            .order_by(Dataset.id)
        )
        if row is not None and Path(row.path).exists():
            return DemoDataset(row.id, row.name, row.path)
    with path.open("rb") as f:
        stored, _ = store_file(
            settings, db, user_id, UploadFile(f, filename=path.name), path.name, describe, "demo"
        )
    with db.session() as s:
        return DemoDataset(stored.id, stored.name, s.get_one(Dataset, stored.id).path)


def demo_retrieval(owner_id: int, qa: DemoDataset | None) -> None:
    """Build the demo retrieval model on the demo user's copy of the SQuAD sample."""
    from taxonomist.demo import DEMO_RETRIEVAL
    from taxonomist.retrieval import RetrievalModel, RetrievalParams, build_model, load_qa

    if qa is None:
        out.print("[yellow]Note:[/] no SQuAD sample beside the checkout: no retrieval demo.")
        return
    store = LocalBackend().store
    meta = store.read_meta(DEMO_RETRIEVAL) or {}
    fresh = RetrievalParams().model_dump(mode="json")
    if (meta.get("owner_id"), meta.get("dataset_id"), meta.get("params")) == (
        owner_id,
        qa.id,
        fresh,
    ):
        model = RetrievalModel.open(store, DEMO_RETRIEVAL)  # built by an earlier demo
        verb = "Kept"
    else:
        out.print(f"\n[bold]Retrieval demo[/]: indexing the passages of {qa.name} (hybrid) ...")
        with JobBar() as bar:
            model = build_model(
                DEMO_RETRIEVAL,
                load_qa(Path(qa.path)),
                store,
                replace=True,
                on_progress=bar,
                info={
                    "owner_id": owner_id,
                    "owner": DEMO_USER,
                    "dataset_id": qa.id,
                    "dataset": qa.name,
                },
            )
        verb = "Built"
    question = "Who invented the steam engine with a separate condenser?"
    best = model.search(question, k=1)
    model.close()
    store.shutdown()  # the service opens it next
    out.print(
        f"{verb} {DEMO_RETRIEVAL}: {model.meta['n_passages']} passages (built in "
        f"{model.meta['build_seconds']:.0f}s). Asked '{question}':\n  {best[0]['context'][:160]}..."
        if best
        else f"{verb} {DEMO_RETRIEVAL}."
    )


def _serve_demo(record: dict[str, Any], token: str, host: str, port: int) -> None:
    import socket
    import subprocess

    import uvicorn

    from taxonomist.api import create_app
    from taxonomist.config import get_settings
    from taxonomist.demo import DEMO_NAME
    from taxonomist.ui import streamlit_command

    with socket.socket() as probe:
        if probe.connect_ex((host if host != "0.0.0.0" else "127.0.0.1", port)) == 0:
            raise TaxonomistError(
                f"Port {port} is in use: stop what runs there or pass --port, e.g. "
                f"'taxonomist demo --port {port + 1}'."
            )

    url = f"http://{host}:{port}"
    ui_port = port + 501  # 8501 beside 8000, Streamlit's usual port
    command, env = streamlit_command(url, host, ui_port)
    ui_process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    body = json.dumps({"model": DEMO_NAME, "records": record})
    out.print(
        f"\n[bold]The web UI is at http://{host}:{ui_port}[/]  (sign in as {DEMO_USER} / "
        f"{DEMO_PASSWORD})\n"
        f"[bold]The demo model is served at {url}[/]  (API docs: {url}/docs)\n"
        f"  user: {DEMO_USER}   password: {DEMO_PASSWORD}   API token: {token}\n"
        "  predict one record:\n"
        f"  curl -s -X POST {url}/api/v1/predict -H 'Authorization: Bearer {token}' "
        f"-H 'Content-Type: application/json' -d '{body}'\n"
        "  find the passage that answers a question:\n"
        f"  curl -s -X POST {url}/api/v1/retrieval/models/demo-squad/search -H 'Authorization: "
        f"Bearer {token}' -H 'Content-Type: application/json' -d "
        """'{"question": "When was Harvard founded?", "k": 3}'\n"""
        "Stop with Ctrl-C.",
        soft_wrap=True,  # one line per command: copy and paste must work
    )
    try:
        uvicorn.run(
            create_app(get_settings(), preload=[DEMO_NAME]),
            host=host,
            port=port,
            log_level="warning",
        )
    finally:
        ui_process.terminate()
