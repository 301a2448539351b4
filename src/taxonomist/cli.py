"""The ``taxonomist`` command line: a thin layer that parses, calls the library and prints.

User errors exit with status 2 and one clear message (``--debug`` shows the traceback).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from taxonomist.errors import TaxonomistError

app = typer.Typer(
    name="taxonomist",
    help=(
        "Turn a table of records into a tuned, validated, registered classifier.\n\n"
        "Typical session:\n\n"
        "  taxonomist profile apps.csv --target prime_genre\n\n"
        "  taxonomist train apps.csv --target prime_genre --name apps --time-budget 120\n\n"
        "  taxonomist predict apps@champion new_apps.csv --output scored.csv\n\n"
        "  taxonomist evaluate apps labelled.csv --target prime_genre\n\n"
        "Models and runs live in TAXONOMIST_HOME (default ~/.taxonomist); open them with "
        "'mlflow ui --backend-store-uri sqlite:///$TAXONOMIST_HOME/mlflow.db'."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(
    help="List, inspect, alias and delete registered models.", no_args_is_help=True
)
app.add_typer(models_app, name="models")

out = Console()
err = Console(stderr=True)
_state = {"debug": False}

ModelArg = Annotated[
    str,
    typer.Argument(
        help="Registered model: NAME (its champion, else the latest version), NAME@ALIAS or "
        "NAME/VERSION."
    ),
]
DataArg = Annotated[
    Path,
    typer.Argument(
        help="Data file: CSV/TSV (any of utf-8, cp1251, latin-1; delimiter sniffed), Parquet or "
        "JSON Lines."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
RemoteOpt = Annotated[
    str | None,
    typer.Option(
        "--remote",
        envvar="TAXONOMIST_REMOTE",
        help="Work on a Taxonomist server (e.g. http://localhost:8000) instead of locally. "
        "Needs --token.",
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="TAXONOMIST_TOKEN",
        help="API token for --remote (create one with POST /api/v1/auth/tokens).",
    ),
]


def _client(remote: str, token: str | None) -> Any:
    from taxonomist.client import Client
    from taxonomist.errors import AuthenticationError

    if not token:
        _fail(
            AuthenticationError(
                "--remote needs a token: pass --token or set TAXONOMIST_TOKEN (log in to the "
                "server, then create one with POST /api/v1/auth/tokens)."
            )
        )
    return Client(remote, token)


def _fail(exc: BaseException) -> NoReturn:
    if _state["debug"]:
        raise exc
    if isinstance(exc, TaxonomistError):
        err.print(
            f"[bold red]Error[/] ({exc.code}): {exc.message}", highlight=False, soft_wrap=True
        )
    else:
        err.print(f"[bold red]Error[/]: {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _configure_logging(verbose: bool) -> None:
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    for noisy in ("mlflow", "alembic", "matplotlib", "urllib3", "numexpr", "optuna"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    if not verbose:
        logging.getLogger("taxonomist").setLevel(logging.ERROR)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    warnings.filterwarnings("ignore")


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
) -> None:
    _state["debug"] = debug
    _configure_logging(verbose or debug)


def _echo_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


# -- train ----------------------------------------------------------------------------------
@app.command()
def train(
    data: DataArg,
    target: Annotated[str, typer.Option("--target", "-t", help="Column with the labels.")],
    text: Annotated[
        list[str] | None,
        typer.Option("--text", help="A text column (repeat for several). Default: inferred."),
    ] = None,
    role: Annotated[
        list[str] | None,
        typer.Option(
            "--role",
            help="Force a column's role, COLUMN=ROLE with ROLE one of text, categorical, "
            "numeric, id, ignore (repeatable).",
        ),
    ] = None,
    time_budget: Annotated[
        float | None,
        typer.Option(
            "--time-budget",
            help="Seconds for the whole training, search and refit included.",
            min=5,
        ),
    ] = None,
    trials: Annotated[
        int | None,
        typer.Option(
            "--trials",
            help="Run exactly N search trials instead of a time budget; the same data "
            "then give the same model.",
            min=1,
        ),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            "--metric",
            help="Metric to optimise: f1_macro (multiclass default), roc_auc (binary "
            "default), f1_weighted, accuracy, balanced_accuracy, log_loss.",
        ),
    ] = None,
    name: Annotated[
        str, typer.Option("--name", help="Registered model name; each training adds a version.")
    ] = "",
    promote: Annotated[
        bool,
        typer.Option("--promote", help="Make this version the champion even if it scores lower."),
    ] = False,
    as_json: JsonOpt = False,
    remote: RemoteOpt = None,
    token: TokenOpt = None,
) -> None:
    """Train the best classifier the budget allows and register it.

    The search tries linear models on word and character n-grams, LightGBM on tabular
    features stacked with the text model, CatBoost for tabular-heavy data and sentence
    embeddings, tunes them with Optuna, ensembles the best, and calibrates probabilities.
    """
    from taxonomist.models.train import DEFAULT_TIME_BUDGET
    from taxonomist.models.train import train as train_model

    if remote:
        _train_remote(
            remote,
            token,
            data,
            target,
            role or [],
            time_budget,
            trials,
            metric,
            name or _default_name(data),
            promote,
            as_json,
        )
        return
    try:
        roles = _parse_roles(role or [])
        budget = (
            time_budget if time_budget is not None else (None if trials else DEFAULT_TIME_BUDGET)
        )
        model_name = name or _default_name(data)
        with _TrainProgress(enabled=not as_json, budget=budget, trials=trials) as bar:
            result = train_model(
                data,
                target,
                text=text or None,
                roles=roles,
                time_budget=budget,
                trials=trials,
                metric=metric,
                name=model_name,
                promote=promote,
                on_progress=bar.update,
            )
    except (TaxonomistError, OSError) as exc:
        _fail(exc)
    if as_json:
        _echo_json(result.summary())
        return
    _print_training(result)


def _train_remote(
    remote: str,
    token: str | None,
    data: Path,
    target: str,
    role: list[str],
    time_budget: float | None,
    trials: int | None,
    metric: str | None,
    name: str,
    promote: bool,
    as_json: bool,
) -> None:
    """Upload DATA, start a job on the server and follow it with a progress bar."""
    client = _client(remote, token)
    try:
        roles = {c: r for c, r in _parse_roles(role).items() if r != "target"}
        uploaded = client.upload_dataset(data, target=target, roles=roles or None)
        config: dict[str, Any] = {"target": target, "promote": promote, "roles": roles or None}
        if time_budget is not None or not trials:
            config["time_budget"] = time_budget or 120.0
        if trials:
            config["trials"] = trials
        if metric:
            config["metric"] = metric
        job = client.start_job(uploaded["dataset"]["id"], name, **config)
        if not as_json:
            out.print(f"Job {job['id']} queued on {remote} (dataset {uploaded['dataset']['id']}).")
        last = [-1]

        def show(j: dict[str, Any]) -> None:
            p = j.get("progress") or {}
            if not as_json and p.get("trials_done", -1) != last[0]:
                last[0] = p.get("trials_done", -1)
                best = p.get("best_score")
                err.print(
                    f"  {j['state']}: {p.get('trials_done', 0)} trials, best "
                    f"{best if best is None else round(best, 4)} ({p.get('best_family')}), "
                    f"{p.get('elapsed', 0):.0f}s elapsed"
                )

        job = client.wait_job(job["id"], poll=1.0, on_progress=show)
    except (TaxonomistError, OSError) as exc:
        _fail(exc)
    if job["state"] != "succeeded":
        _fail(TaxonomistError(f"Job {job['id']} {job['state']}: {job.get('error')}"))
    if as_json:
        _echo_json(job["result"])
        return
    r = job["result"]
    out.print(
        f"Registered {r['model']} version {r['version']} on {remote}: "
        f"{r['metrics']['primary_metric']} {r['metrics']['primary']:.4f} "
        f"({r['best_family']}, {r['train_seconds']:.0f}s)."
    )


def _default_name(data: Path) -> str:
    import re

    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", data.stem).strip("-.") or "model"
    return stem[:100]


def _parse_roles(items: list[str]) -> dict[str, str]:
    from taxonomist.errors import InvalidParameterError

    roles = {}
    for item in items:
        if "=" not in item:
            raise InvalidParameterError(
                f"--role expects COLUMN=ROLE (e.g. --role bundle=categorical); got '{item}'."
            )
        col, r = item.rsplit("=", 1)
        roles[col.strip()] = r.strip()
    return roles


class _TrainProgress:
    """A rich progress bar: trials done, best score so far, time left."""

    def __init__(self, *, enabled: bool, budget: float | None, trials: int | None) -> None:
        self.enabled = (enabled and err.is_terminal) or (
            enabled and os.environ.get("TAXONOMIST_PROGRESS") == "1"
        )
        self.budget = budget
        self.trials = trials
        self.progress: Any = None
        self.task: Any = None

    def __enter__(self) -> _TrainProgress:
        if self.enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            )
            self.progress.start()
            total = self.budget if self.budget else (self.trials or 1)
            self.task = self.progress.add_task("searching", total=total, status="starting")
        return self

    def update(self, p: Any) -> None:
        if not self.progress:
            return
        best = (
            f"best {p.best_score:.4f} ({p.best_family})"
            if p.best_score is not None
            else "no model yet"
        )
        left = f" · {p.time_left:.0f}s left" if p.time_left is not None else ""
        status = f"trials {p.trials_done} ({p.trials_pruned} pruned) · {best}{left}"
        done = p.elapsed if self.budget else p.trials_done
        desc = "refitting the ensemble" if p.phase == "refit" else "searching"
        self.progress.update(self.task, completed=done, status=status, description=desc)

    def __exit__(self, *exc: Any) -> None:
        if self.progress:
            self.progress.stop()


def _print_training(result: Any) -> None:
    m = result.metrics
    out.print(
        f"[bold green]Trained[/] {result.name} version {result.version} in "
        f"{result.train_seconds:.1f}s "
        f"({m['n_trials']} trials, validation: {m['validation']})."
    )
    table = Table(title="Cross-validated scores", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("primary", "accuracy", "f1_macro", "f1_weighted", "roc_auc", "log_loss", "ece"):
        value = m.get(key)
        if value is not None:
            label = f"{m['primary_metric']} (optimised)" if key == "primary" else key
            table.add_row(label, f"{value:.4f}")
    table.add_row("predict rows/s", f"{m['predict_rows_per_second']:,.0f}")
    table.add_row("predict one record p50", f"{m['predict_one_ms_p50']:.2f} ms")
    out.print(table)
    ensemble = ", ".join(f"{k} {v:.0%}" for k, v in result.model.families.items())
    out.print(
        f"Ensemble: {ensemble}. Best single model: {m['best_single_family']} "
        f"({m['best_single']:.4f})."
    )
    out.print(f"Champion: {'yes' if result.promoted else 'no'} — {result.promotion_reason}.")
    for w in result.report.warnings:
        out.print(f"[yellow]Note:[/] {w}", highlight=False)
    out.print(
        f"Next: taxonomist predict {result.name} DATA --output predictions.csv · "
        f"taxonomist models show {result.name}"
    )


# -- predict / evaluate ---------------------------------------------------------------------
@app.command()
def predict(
    model: ModelArg,
    data: DataArg,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the input plus 'prediction' and 'proba_<class>' columns "
            "here (.csv, .parquet or .jsonl).",
        ),
    ] = None,
    as_json: JsonOpt = False,
    remote: RemoteOpt = None,
    token: TokenOpt = None,
) -> None:
    """Predict labels and class probabilities for every row of DATA."""
    from taxonomist.data.load import load_table
    from taxonomist.registry import load_model

    try:
        if remote:
            import io

            import pandas as pd

            content = _client(remote, token).predict_file(model, data, output="parquet")
            frame = pd.read_parquet(io.BytesIO(content))
            m = None
        else:
            m = load_model(model)
            frame = m.predict_frame(load_table(data))
        if output is not None:
            _write_table(frame, output)
    except (TaxonomistError, OSError) as exc:
        _fail(exc)
    if as_json:
        _echo_json(
            {
                "model": m.info.get("registry") if m is not None else model,
                "n": len(frame),
                "output": str(output) if output else None,
                "predictions": None
                if output
                else frame[
                    ["prediction", *[c for c in frame.columns if c.startswith("proba_")]]
                ].to_dict(orient="records"),
                "counts": frame["prediction"].astype(str).value_counts().to_dict(),
            }
        )
        return
    counts = frame["prediction"].astype(str).value_counts()
    out.print(f"Predicted {len(frame)} rows with {model}.")
    for label, n in counts.head(10).items():
        out.print(f"  {label}: {n}")
    if output is not None:
        out.print(f"Wrote {output}")
    else:
        out.print(frame[["prediction"]].head(20).to_string())


def _write_table(frame: Any, path: Path) -> None:
    from taxonomist.errors import InvalidParameterError

    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif suffix in (".jsonl", ".ndjson"):
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    elif suffix in (".csv", ".tsv", ""):
        frame.to_csv(path, index=False, sep="\t" if suffix == ".tsv" else ",")
    else:
        raise InvalidParameterError(
            f"Cannot write '{path.name}': use an output ending in .csv, .tsv, .parquet or .jsonl."
        )


@app.command()
def evaluate(
    model: ModelArg,
    data: DataArg,
    target: Annotated[str, typer.Option("--target", "-t", help="Column with the true labels.")],
    as_json: JsonOpt = False,
) -> None:
    """Score a model on labelled DATA: accuracy, F1, per-class report, ROC AUC (binary)."""
    from taxonomist.data.load import load_table
    from taxonomist.registry import load_model

    try:
        m = load_model(model)
        result = m.evaluate(load_table(data), target=target)
    except (TaxonomistError, OSError) as exc:
        _fail(exc)
    keys = ("n", "accuracy", "f1_macro", "f1_weighted", "roc_auc", "log_loss", "per_class")
    if as_json:
        _echo_json(
            {k: result[k] for k in keys}
            | {"ece": result["ece"], "unknown_labels": result["unknown_labels"]}
        )
        return
    out.print(f"{model} on {data.name} ({result['n']} labelled rows)")
    for k in keys[1:-1]:
        if result[k] is not None:
            out.print(f"  {k}: {result[k]:.4f}")
    table = Table("class", "precision", "recall", "f1", "support")
    for c, v in result["per_class"].items():
        table.add_row(
            c, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}", str(v["support"])
        )
    out.print(table)
    if result["unknown_labels"]:
        out.print(f"[yellow]Labels the model never saw:[/] {result['unknown_labels']}")


# -- profile --------------------------------------------------------------------------------
@app.command()
def profile(
    data: DataArg,
    target: Annotated[str | None, typer.Option("--target", "-t", help="Label column.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Describe DATA: rows, column roles, missing values, words per text, classes, language."""
    from taxonomist.data import infer_column_roles, load_table, profile_table

    try:
        df = load_table(data)
        schema = infer_column_roles(df, target)
        prof = profile_table(df, schema)
    except (TaxonomistError, OSError) as exc:
        _fail(exc)
    if as_json:
        d = prof.to_dict()
        for col in d["columns"].values():
            col["stats"].pop("vocabulary", None)
        _echo_json(d)
        return
    out.print(
        f"{data.name}: {prof.n_rows} rows, {prof.n_columns} columns, "
        f"{prof.n_duplicates} duplicate rows, language {prof.language}"
    )
    table = Table("column", "role", "missing", "unique", "summary")
    for c in prof.columns.values():
        s = c.stats
        if c.role == "text":
            summary = f"{s['words_mean']:.1f} words/text, {s['vocabulary_size']} distinct words"
        elif c.role == "numeric" and s:
            summary = f"mean {s['mean']:.3g}, range [{s['min']:.3g}, {s['max']:.3g}]"
        elif "top" in s:
            summary = ", ".join(list(s["top"])[:3])
        else:
            summary = ""
        table.add_row(c.name, c.role, str(c.missing), str(c.n_unique), summary[:60])
    out.print(table)
    if prof.class_counts:
        top = list(prof.class_counts.items())
        out.print(
            f"{len(top)} classes: "
            + ", ".join(f"{k} {v}" for k, v in top[:12])
            + (" ..." if len(top) > 12 else "")
        )


# -- models ---------------------------------------------------------------------------------
@models_app.command("list")
def models_list(as_json: JsonOpt = False, remote: RemoteOpt = None, token: TokenOpt = None) -> None:
    """Registered models with their versions, scores and aliases."""
    from taxonomist.registry import list_models

    try:
        data = _client(remote, token).list_models() if remote else list_models()
    except TaxonomistError as exc:
        _fail(exc)
    if as_json:
        _echo_json(data)
        return
    if not data:
        out.print(
            "No registered model yet. Train one: taxonomist train DATA --target COL --name NAME"
        )
        return
    table = Table("model", "version", "aliases", "metric", "score", "best family")
    for m in data:
        for v in m["versions"]:
            table.add_row(
                m["name"],
                str(v["version"]),
                ", ".join(v["aliases"]),
                v["metric"] or "",
                f"{v['primary']:.4f}" if v["primary"] else "",
                v["best_family"] or "",
            )
    out.print(table)


@models_app.command("show")
def models_show(
    model: ModelArg, as_json: JsonOpt = False, remote: RemoteOpt = None, token: TokenOpt = None
) -> None:
    """One model version: metrics, classes, column roles, ensemble."""
    from taxonomist.registry import parse_ref, show_model

    try:
        if remote:
            client, ref = _client(remote, token), parse_ref(model)
            version = ref.version or _remote_version(client.get_model(ref.name), ref.alias)
            data = client.get_model_version(ref.name, int(version))
        else:
            data = show_model(model)
    except TaxonomistError as exc:
        _fail(exc)
    if as_json:
        _echo_json(data)
        return
    out.print(
        f"[bold]{data['name']}[/] version {data['version']} "
        f"{'(' + ', '.join(data['aliases']) + ')' if data['aliases'] else ''}"
    )
    out.print(
        f"  target: {data['target']} · {len(data['classes'])} classes · "
        f"{data['metric']} {data['primary']}"
    )
    out.print(f"  columns: {data['roles']}")
    out.print(f"  ensemble: {data['ensemble']}")
    out.print(f"  promotion: {data['promotion']}")


def _remote_version(model: dict[str, Any], alias: str | None) -> int:
    """The version an alias names; without one the champion, else the newest."""
    versions = model["versions"]  # newest first
    for v in versions:
        if (alias or "champion") in v["aliases"]:
            return int(v["version"])
    if alias:
        from taxonomist.errors import ModelNotFoundError

        raise ModelNotFoundError(f"'{model['name']}' has no alias '{alias}'.")
    return int(versions[0]["version"])


@models_app.command("alias")
def models_alias(
    model: Annotated[str, typer.Argument(help="NAME/VERSION to point the alias at.")],
    alias: Annotated[str, typer.Option("--alias", help="Alias name.")] = "champion",
    as_json: JsonOpt = False,
    remote: RemoteOpt = None,
    token: TokenOpt = None,
) -> None:
    """Point an alias (default: champion) at a version, e.g. 'models alias apps/3'."""
    from taxonomist.registry import parse_ref, set_alias

    try:
        if remote:
            ref = parse_ref(model)
            if not ref.version:
                from taxonomist.errors import InvalidParameterError

                raise InvalidParameterError("Give NAME/VERSION, e.g. 'models alias apps/3'.")
            data = _client(remote, token).set_alias(ref.name, int(ref.version), alias)
        else:
            data = set_alias(model, alias)
    except TaxonomistError as exc:
        _fail(exc)
    if as_json:
        _echo_json(data)
    else:
        out.print(f"{data['name']}@{data['alias']} -> version {data['version']}")


@models_app.command("delete")
def models_delete(
    model: Annotated[str, typer.Argument(help="NAME/VERSION (one version) or NAME (all).")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
    remote: RemoteOpt = None,
    token: TokenOpt = None,
) -> None:
    """Delete one version or a whole registered model."""
    from taxonomist.registry import delete

    if not yes and sys.stdin.isatty() and not typer.confirm(f"Delete {model}?"):
        raise typer.Exit(1)
    try:
        data = _client(remote, token).delete_model(model) if remote else delete(model)
    except TaxonomistError as exc:
        _fail(exc)
    if as_json:
        _echo_json({"deleted": data})
    else:
        what = f"version {data['version']} of " if data["version"] else "all versions of "
        out.print(f"Deleted {what}{data['name']}.")


# -- retrieval ------------------------------------------------------------------------------
retrieval_app = typer.Typer(
    help=(
        "Find the passage that answers a question.\n\n"
        "  taxonomist retrieval build squad.json --name squad\n\n"
        '  taxonomist retrieval ask squad "When did the tower open?" -k 3\n\n'
        "  taxonomist retrieval evaluate squad held_out.json --json\n\n"
        "DATA is SQuAD-style JSON, or a table (CSV/TSV/Parquet/JSON Lines) with context and "
        "question columns (--context/--question name them). Models live in Qdrant Edge under "
        "TAXONOMIST_HOME, or on the Qdrant server at TAXONOMIST_QDRANT_URL."
    ),
    no_args_is_help=True,
)
app.add_typer(retrieval_app, name="retrieval")

RetrievalIdArg = Annotated[str, typer.Argument(help="The retrieval model's id.")]
QADataArg = Annotated[
    Path, typer.Argument(help="SQuAD-style JSON, or a table with context and question columns.")
]
ContextOpt = Annotated[str, typer.Option("--context", help="Column of the passages (tables).")]
QuestionOpt = Annotated[str, typer.Option("--question", help="Column of the questions (tables).")]


def _store() -> Any:
    from taxonomist.config import get_settings
    from taxonomist.retrieval import open_store

    return open_store(get_settings())


class _JobBar:
    """A progress bar fed ``(phase, done, total)``."""

    def __enter__(self) -> _JobBar:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task("starting", total=None)
        return self

    def __call__(self, phase: str, done: int, total: int) -> None:
        self.progress.update(self.task, description=phase, completed=done, total=total)

    def job(self, job: dict[str, Any]) -> None:
        p = job.get("progress") or {}
        if "total" in p:
            self(p.get("phase", job["state"]), p["done"], p["total"])

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()


def _wait_remote(client: Any, job: dict[str, Any]) -> dict[str, Any]:
    from taxonomist.errors import TaxonomistError as Failed

    with _JobBar() as bar:
        job = client.wait_job(job["id"], poll=0.5, on_progress=bar.job)
    if job["state"] != "succeeded":
        raise Failed(f"Job {job['id']} {job['state']}: {job.get('error')}")
    return job["result"]


@retrieval_app.command("build")
def retrieval_build(
    data: QADataArg,
    name: Annotated[str, typer.Option("--name", help="Id to save the model under.")],
    method: Annotated[
        str, typer.Option("--method", help="bm25, dense (embeddings) or hybrid (both, fused).")
    ] = "hybrid",
    context: ContextOpt = "context",
    question: QuestionOpt = "question",
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite a model of that id.")
    ] = False,
    tune: Annotated[
        bool, typer.Option("--tune", help="Fit the fusion weights on DATA's questions.")
    ] = False,
    as_json: JsonOpt = False,
    remote: RemoteOpt = None,
    token: TokenOpt = None,
) -> None:
    """Index DATA's passages under --name (BM25, dense or hybrid)."""
    from taxonomist.retrieval import RetrievalParams, build_model, load_qa

    try:
        params = RetrievalParams(method=method, tune=tune)  # type: ignore[arg-type]
    except ValueError as exc:
        _fail(
            typer.BadParameter(
                f"--method must be bm25, dense or hybrid ({exc.__class__.__name__})."
            )
        )
    try:
        if remote:
            client = _client(remote, token)
            up = client.upload_qa(data, context=context, question=question, name=data.name)
            job = client.build_retrieval(
                name, up["dataset"]["id"], replace=replace, **params.model_dump(mode="json")
            )
            meta = _wait_remote(client, job)
        else:
            dataset = load_qa(data, context=context, question=question)
            with _JobBar() as bar:
                model = build_model(
                    name,
                    dataset,
                    _store(),
                    params,
                    replace=replace,
                    on_progress=bar,
                    info={"dataset": data.name},
                )
            meta = model.describe()
    except TaxonomistError as exc:
        _fail(exc)
    if as_json:
        _echo_json(meta)
        return
    out.print(
        f"[bold green]Built[/] {name}: {meta['params']['method']} over {meta['n_passages']:,} "
        f"passages ({meta['language']}, encoder {meta['encoder'] or 'none'}) in "
        f"{meta['build_seconds']:.1f}s."
    )
    out.print(f'Next: taxonomist retrieval ask {name} "your question" -k 5')


@retrieval_app.command("ask")
def retrieval_ask(
    model_id: RetrievalIdArg,
    question: Annotated[str, typer.Argument(help="The question, in quotes.")],
    k: Annotated[int, typer.Option("-k", "--top", help="Passages to show.", min=1, max=100)] = 5,
    as_json: JsonOpt = False,
    remote: RemoteOpt = None,
    token: TokenOpt = None,
) -> None:
    """The passages that best answer QUESTION, best first, with scores and ids."""
    from taxonomist.retrieval import RetrievalModel

    try:
        if remote:
            hits = _client(remote, token).ask(model_id, question, k)["passages"]
        else:
            hits = RetrievalModel.open(_store(), model_id).search(question, k=k)
    except TaxonomistError as exc:
        _fail(exc)
    if as_json:
        _echo_json({"model": model_id, "question": question, "passages": hits})
        return
    if not hits:
        out.print("No passage shares a word with the question.")
    for h in hits:
        out.print(f"[bold]{h['rank']}.[/] score {h['score']:.3f} · {h['passage_id']}")
        out.print(h["context"], highlight=False)
        out.print()


@retrieval_app.command("evaluate")
def retrieval_evaluate(
    model_id: RetrievalIdArg,
    data: QADataArg,
    context: ContextOpt = "context",
    question: QuestionOpt = "question",
    as_json: JsonOpt = False,
    remote: RemoteOpt = None,
    token: TokenOpt = None,
) -> None:
    """Top-1, top-5 and MRR@10 over every question of DATA, and latency per question."""
    from taxonomist.retrieval import RetrievalModel, evaluate, load_qa

    try:
        if remote:
            client = _client(remote, token)
            up = client.upload_qa(data, context=context, question=question, name=data.name)
            scores = _wait_remote(client, client.retrieval_evaluate(model_id, up["dataset"]["id"]))
            scores.pop("model", None)
        else:
            dataset = load_qa(data, context=context, question=question)
            model = RetrievalModel.open(_store(), model_id)
            with _JobBar() as bar:
                scores = evaluate(model, dataset, on_progress=bar)
    except TaxonomistError as exc:
        _fail(exc)
    if as_json:
        _echo_json(scores)
        return
    out.print(
        f"{model_id} on {data.name}: {scores['n']:,} questions · top-1 {scores['top1']:.3f} · "
        f"top-5 {scores['top5']:.3f} · MRR@10 {scores['mrr10']:.3f} · "
        f"p50 {scores['p50_ms']:.1f} ms · p99 {scores['p99_ms']:.1f} ms"
    )


@retrieval_app.command("list")
def retrieval_list(
    as_json: JsonOpt = False, remote: RemoteOpt = None, token: TokenOpt = None
) -> None:
    """Retrieval models with their hyper-parameters."""
    try:
        if remote:
            models = _client(remote, token).list_retrieval_models()
        else:
            models = [
                {k: v for k, v in m.items() if k != "collections"} for m in _store().all_meta()
            ]
    except TaxonomistError as exc:
        _fail(exc)
    if as_json:
        _echo_json(models)
        return
    if not models:
        out.print("No retrieval model yet. Build one: taxonomist retrieval build DATA --name ID")
        return
    table = Table("id", "method", "passages", "lang", "encoder", "k1", "b", "built")
    for m in models:
        p = m["params"]
        table.add_row(
            m["id"],
            p["method"] + (f" ({p['fusion']})" if p["method"] == "hybrid" else ""),
            f"{m['n_passages']:,}",
            m["language"],
            m["encoder"] or "",
            str(p["k1"]),
            str(p["b"]),
            m["built_at"][:10],
        )
    out.print(table)


@retrieval_app.command("load")
def retrieval_load(
    model_id: RetrievalIdArg, remote: RemoteOpt = None, token: TokenOpt = None
) -> None:
    """Load a model into a server's memory (--remote); locally, check that it opens."""
    import time

    from taxonomist.retrieval import RetrievalModel

    try:
        if remote:
            _client(remote, token).load_retrieval(model_id)
            out.print(f"Loaded {model_id} on {remote}.")
            return
        start = time.perf_counter()
        RetrievalModel.open(_store(), model_id).close()
    except TaxonomistError as exc:
        _fail(exc)
    out.print(
        f"{model_id} opens in {time.perf_counter() - start:.2f}s. A command-line run holds it "
        "only while it runs; keep it loaded in a server with --remote."
    )


@retrieval_app.command("unload")
def retrieval_unload(
    model_id: RetrievalIdArg, remote: RemoteOpt = None, token: TokenOpt = None
) -> None:
    """Free a model's memory on a server (--remote)."""
    try:
        if remote:
            _client(remote, token).unload_retrieval(model_id)
        elif _store().read_meta(model_id) is None:
            from taxonomist.errors import NotFoundError

            raise NotFoundError(f"No retrieval model named '{model_id}'.")
    except TaxonomistError as exc:
        _fail(exc)
    out.print(f"Unloaded {model_id}." if remote else f"{model_id} is not held by this process.")


@retrieval_app.command("remove")
def retrieval_remove(
    model_id: Annotated[str | None, typer.Argument(help="The model's id.")] = None,
    all_models: Annotated[bool, typer.Option("--all", help="Remove every model (admin).")] = False,
    remote: RemoteOpt = None,
    token: TokenOpt = None,
) -> None:
    """Remove one model, or all of them with --all."""
    from taxonomist.errors import InvalidParameterError, NotFoundError
    from taxonomist.retrieval.model import remove_model

    try:
        if bool(model_id) == all_models:
            raise InvalidParameterError("Give a model id, or --all (not both).")
        if remote:
            client = _client(remote, token)
            if all_models:
                n = client.remove_all_retrieval()["removed"]
            else:
                client.remove_retrieval(str(model_id))
                n = 1
        else:
            store = _store()
            ids = [m["id"] for m in store.all_meta()] if all_models else [str(model_id)]
            n = sum(remove_model(store, i) for i in ids)
            if not all_models and not n:
                raise NotFoundError(f"No retrieval model named '{model_id}'.")
    except TaxonomistError as exc:
        _fail(exc)
    out.print(f"Removed {n} retrieval model{'s' if n != 1 else ''}.")


# -- service --------------------------------------------------------------------------------
HostOpt = Annotated[str, typer.Option("--host", help="Interface to listen on (0.0.0.0: all).")]
PortOpt = Annotated[int, typer.Option("--port", help="TCP port.", min=1, max=65535)]


@app.command()
def serve(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Server processes. Each runs its own job engine (a job runs once: jobs are "
            "claimed in the database) and its own /metrics.",
        ),
    ] = 1,
) -> None:
    """Start the REST API: OpenAPI docs at /docs, Prometheus metrics at /metrics.

    State lives in TAXONOMIST_HOME (SQLite metadata, MLflow registry, datasets) unless
    TAXONOMIST_DATABASE_URL / TAXONOMIST_MLFLOW_URI point elsewhere. Training jobs run on a
    Dask LocalCluster, or on TAXONOMIST_DASK_ADDRESS. The first start creates the user
    'admin' with TAXONOMIST_ADMIN_PASSWORD, or prints a one-time password.
    """
    import uvicorn

    from taxonomist.api import create_app
    from taxonomist.config import get_settings

    settings = get_settings()
    out.print(
        f"Taxonomist API on http://{host}:{port} (docs /docs, metrics /metrics); "
        f"data in {settings.home}"
    )
    if workers > 1:
        uvicorn.run(
            "taxonomist.api:create_app", factory=True, host=host, port=port, workers=workers
        )
    else:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


@app.command()
def ui(
    api_url: Annotated[
        str,
        typer.Option(
            "--api-url", envvar="TAXONOMIST_API_URL", help="The Taxonomist API the UI talks to."
        ),
    ] = "http://127.0.0.1:8000",
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8501,
) -> None:
    """Start the web UI (Streamlit) against a running API ('taxonomist serve')."""
    import subprocess

    out.print(f"Taxonomist UI on http://{host}:{port} (API {api_url})")
    from taxonomist.ui import streamlit_command

    command, env = streamlit_command(api_url, host, port)
    raise typer.Exit(subprocess.call(command, env=env))


DEMO_USER, DEMO_PASSWORD = "demo", "demo-password"


def _demo_account(model_name: str) -> tuple[str, int]:
    """Create (or reset) the demo user, give it the demo model; return an API token and the
    user's id."""
    from datetime import timedelta

    from taxonomist.config import get_settings
    from taxonomist.store import Database, ModelOwner, User
    from taxonomist.store.accounts import create_user, ensure_admin, hash_password, issue_token

    settings = get_settings()
    db = Database(settings.database)
    db.migrate()
    with db.session() as s:
        generated = ensure_admin(s, settings.admin_password)
        if generated:
            out.print(f"Created user 'admin' with the one-time password: [bold]{generated}[/]")
        user = s.query(User).filter_by(username=DEMO_USER).one_or_none()
        if user is None:
            user = create_user(s, DEMO_USER, DEMO_PASSWORD)
        user.password_hash, user.disabled = hash_password(DEMO_PASSWORD), False
        s.merge(ModelOwner(name=model_name, owner_id=user.id))
        token, _ = issue_token(s, user, kind="personal", name="demo", ttl=timedelta(days=7))
        user_id = user.id
    db.dispose()
    return token, user_id


def _demo_retrieval(owner_id: int) -> None:
    """Build the demo retrieval model on the shared SQuAD sample, owned by the demo user."""
    from taxonomist.demo import DEMO_RETRIEVAL, squad_sample_path
    from taxonomist.retrieval import build_model, load_qa

    path = squad_sample_path()
    if path is None:
        out.print("[yellow]Note:[/] no SQuAD sample beside the checkout: no retrieval demo.")
        return
    out.print(f"\n[bold]Retrieval demo[/]: indexing the passages of {path.name} (hybrid) ...")
    dataset = load_qa(path)
    store = _store()
    with _JobBar() as bar:
        model = build_model(
            DEMO_RETRIEVAL,
            dataset,
            store,
            replace=True,
            on_progress=bar,
            info={"owner_id": owner_id, "owner": DEMO_USER, "dataset": path.name},
        )
    question = "Who invented the steam engine with a separate condenser?"
    best = model.search(question, k=1)
    model.close()
    store.shutdown()  # the service opens it next
    out.print(
        f"Built {DEMO_RETRIEVAL}: {model.meta['n_passages']} passages in "
        f"{model.meta['build_seconds']:.0f}s. Asked '{question}':\n  {best[0]['context'][:160]}..."
        if best
        else f"Built {DEMO_RETRIEVAL}."
    )


# -- demo -----------------------------------------------------------------------------------
@app.command()
def demo(
    time_budget: Annotated[
        float, typer.Option("--time-budget", help="Seconds for training the demo model.", min=5)
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
    from taxonomist.models.train import train as train_model

    data = demo_data_path()
    out.print(
        f"[bold]Taxonomist demo[/]: classify {DEMO_TARGET} of App Store apps from their "
        f"name, description and numbers ({data})."
    )
    try:
        with _TrainProgress(enabled=True, budget=time_budget, trials=None) as bar:
            result = train_model(
                data, DEMO_TARGET, time_budget=time_budget, name=DEMO_NAME, on_progress=bar.update
            )
    except TaxonomistError as exc:
        _fail(exc)
    _print_training(result)
    token, user_id = _demo_account(DEMO_NAME)
    _demo_retrieval(user_id)
    record = {
        "track_name": "Chess Master Pro",
        "app_desc": "Play chess against friends or the computer. Learn openings, solve "
        "puzzles and climb the ranking.",
        "price": 0.0,
        "size_bytes": 52_000_000,
        "rating_count_tot": 1200,
        "user_rating": 4.5,
        "cont_rating": "4+",
        "lang_num": 3,
        "sup_devices.num": 37,
    }
    explanation = result.model.explain(record, top=5)
    top = sorted(explanation["probabilities"].items(), key=lambda kv: -kv[1])[:3]
    out.print(
        f"\nExample: '{record['track_name']}' -> [bold]{explanation['label']}[/] "
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
        _serve_demo(record, token, host, port)


def _serve_demo(record: dict[str, Any], token: str, host: str, port: int) -> None:
    import socket
    import subprocess

    import uvicorn

    from taxonomist.api import create_app
    from taxonomist.config import get_settings
    from taxonomist.demo import DEMO_NAME
    from taxonomist.registry import load_model
    from taxonomist.ui import streamlit_command

    with socket.socket() as probe:
        if probe.connect_ex((host if host != "0.0.0.0" else "127.0.0.1", port)) == 0:
            _fail(
                TaxonomistError(
                    f"Port {port} is in use: stop what runs there or pass --port, e.g. "
                    f"'taxonomist demo --port {port + 1}'."
                )
            )
    load_model(DEMO_NAME)  # loaded before the first request
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
        uvicorn.run(create_app(get_settings()), host=host, port=port, log_level="warning")
    finally:
        ui_process.terminate()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
