"""``retrieval build | ask | evaluate | list | load | unload | remove``: find the passage that
answers a question, here or on a server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from taxonomist.cli.backend import backend_for
from taxonomist.cli.options import JsonOpt, RemoteOpt, TokenOpt
from taxonomist.cli.output import JobBar, echo_json, out
from taxonomist.errors import InvalidParameterError

app = typer.Typer(
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

RetrievalIdArg = Annotated[str, typer.Argument(help="The retrieval model's id.")]
QADataArg = Annotated[
    Path, typer.Argument(help="SQuAD-style JSON, or a table with context and question columns.")
]
ContextOpt = Annotated[str, typer.Option("--context", help="Column of the passages (tables).")]
QuestionOpt = Annotated[str, typer.Option("--question", help="Column of the questions (tables).")]


@app.command("build")
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
    from taxonomist.retrieval import RetrievalParams

    backend = backend_for(remote, token)
    try:
        params = RetrievalParams(method=method, tune=tune)  # type: ignore[arg-type]
    except ValueError as exc:
        raise InvalidParameterError(
            f"--method must be bm25, dense or hybrid ({exc.__class__.__name__}); got '{method}'."
        ) from None
    with JobBar() as bar:
        meta = backend.retrieval_build(
            name,
            data,
            params,
            context=context,
            question=question,
            replace=replace,
            on_progress=bar,
        )
    if as_json:
        echo_json(meta)
        return
    out.print(
        f"[bold green]Built[/] {name}: {meta['params']['method']} over {meta['n_passages']:,} "
        f"passages ({meta['language']}, encoder {meta['encoder'] or 'none'}) in "
        f"{meta['build_seconds']:.1f}s."
    )
    out.print(f'Next: taxonomist retrieval ask {name} "your question" -k 5')


@app.command("ask")
def retrieval_ask(
    model_id: RetrievalIdArg,
    question: Annotated[str, typer.Argument(help="The question, in quotes.")],
    k: Annotated[int, typer.Option("-k", "--top", help="Passages to show.", min=1, max=100)] = 5,
    as_json: JsonOpt = False,
    remote: RemoteOpt = None,
    token: TokenOpt = None,
) -> None:
    """The passages that best answer QUESTION, best first, with scores and ids."""
    hits = backend_for(remote, token).retrieval_ask(model_id, question, k)
    if as_json:
        echo_json({"model": model_id, "question": question, "passages": hits})
        return
    if not hits:
        out.print("No passage shares a word with the question.")
    for h in hits:
        out.print(f"[bold]{h['rank']}.[/] score {h['score']:.3f} · {h['passage_id']}")
        out.print(h["context"], highlight=False)
        out.print()


@app.command("evaluate")
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
    backend = backend_for(remote, token)
    with JobBar() as bar:
        scores = backend.retrieval_evaluate(
            model_id, data, context=context, question=question, on_progress=bar
        )
    if as_json:
        echo_json(scores)
        return
    out.print(
        f"{model_id} on {data.name}: {scores['n']:,} questions · top-1 {scores['top1']:.3f} · "
        f"top-5 {scores['top5']:.3f} · MRR@10 {scores['mrr10']:.3f} · "
        f"p50 {scores['p50_ms']:.1f} ms · p99 {scores['p99_ms']:.1f} ms"
    )


@app.command("list")
def retrieval_list(
    as_json: JsonOpt = False, remote: RemoteOpt = None, token: TokenOpt = None
) -> None:
    """Retrieval models with their hyper-parameters."""
    models = backend_for(remote, token).retrieval_list()
    if as_json:
        echo_json(models)
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


@app.command("load")
def retrieval_load(
    model_id: RetrievalIdArg, remote: RemoteOpt = None, token: TokenOpt = None
) -> None:
    """Load a model into a server's memory (--remote); locally, check that it opens."""
    backend = backend_for(remote, token)
    status = backend.retrieval_load(model_id)
    if status["loaded"]:
        out.print(f"Loaded {model_id} on {backend.where}.")
    else:
        out.print(
            f"{model_id} opens in {status['open_seconds']:.2f}s. A command-line run holds it "
            "only while it runs; keep it loaded in a server with --remote."
        )


@app.command("unload")
def retrieval_unload(
    model_id: RetrievalIdArg, remote: RemoteOpt = None, token: TokenOpt = None
) -> None:
    """Free a model's memory on a server (--remote)."""
    unloaded = backend_for(remote, token).retrieval_unload(model_id)
    out.print(f"Unloaded {model_id}." if unloaded else f"{model_id} is not held by this process.")


@app.command("remove")
def retrieval_remove(
    model_id: Annotated[str | None, typer.Argument(help="The model's id.")] = None,
    all_models: Annotated[bool, typer.Option("--all", help="Remove every model (admin).")] = False,
    remote: RemoteOpt = None,
    token: TokenOpt = None,
) -> None:
    """Remove one model, or all of them with --all."""
    backend = backend_for(remote, token)
    if bool(model_id) == all_models:
        raise InvalidParameterError("Give a model id, or --all (not both).")
    n = backend.retrieval_remove(None if all_models else model_id)
    out.print(f"Removed {n} retrieval model{'s' if n != 1 else ''}.")
