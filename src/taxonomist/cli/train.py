"""``train``, ``predict``, ``evaluate`` and ``profile``: from a table to a registered model,
and a model back to a scored table."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from taxonomist.cli.backend import backend_for
from taxonomist.cli.options import (
    DataArg,
    JsonOpt,
    LabelsOpt,
    ModelArg,
    RemoteOpt,
    RoleOpt,
    TextOpt,
    TokenOpt,
)
from taxonomist.cli.output import TrainProgress, echo_json, out
from taxonomist.errors import InvalidParameterError

if TYPE_CHECKING:
    import pandas as pd

    from taxonomist.models.config import TrainConfig
    from taxonomist.models.result import TrainResult


def read_config_file(path: Path) -> dict[str, Any]:
    """The options a ``--config`` file sets (validated, unknown keys named; its target may
    come from the command line instead)."""
    from taxonomist.models.config import TrainConfigFile

    options: dict[str, Any] = TrainConfigFile.from_file(path).model_dump(exclude_unset=True)
    return options


def train_config(data: Path | None, config_file: Path | None, **flags: Any) -> TrainConfig:
    """One :class:`TrainConfig` from ``config_file`` (if any), then the flags given (``None``:
    not given) and ``data``, which override it. The model name defaults to the data's."""
    from taxonomist.models.config import TrainConfig

    options = read_config_file(config_file) if config_file else {}
    options.update({k: v for k, v in flags.items() if v is not None})
    if data is not None:
        options["data"] = str(data)
    where = f" or 'target' in '{config_file.name}'" if config_file else ""
    if not options.get("target"):
        raise InvalidParameterError(f"Which column holds the labels? Give --target COLUMN{where}.")
    if not options.get("data"):
        raise InvalidParameterError(
            "What should it train on? Give DATA (a CSV, Parquet or JSON Lines file) or 'data' "
            "in the --config file."
        )
    if not options.get("name"):
        options["name"] = default_name(Path(options["data"]))
    # The file's own values were checked on their own: what fails now came with the flags.
    return TrainConfig.parse(options, source="the command line")


def default_name(data: Path) -> str:
    """A registered-model name from a data file's name."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", data.stem).strip("-.") or "model"
    return stem[:100]


def parse_roles(items: list[str]) -> dict[str, str]:
    """``COLUMN=ROLE`` items -> column -> role."""
    roles = {}
    for item in items:
        if "=" not in item:
            raise InvalidParameterError(
                f"--role expects COLUMN=ROLE (e.g. --role bundle=categorical); got '{item}'."
            )
        col, role = item.rsplit("=", 1)
        roles[col.strip()] = role.strip()
    return roles


def train(
    data: Annotated[
        Path | None,
        typer.Argument(
            help="Data file: CSV/TSV (any of utf-8, cp1251, latin-1; delimiter sniffed), "
            "Parquet or JSON Lines. Default: the --config file's 'data'.",
            show_default=False,
        ),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="A training config, YAML or JSON, with the keys data, target, name, text, "
            "roles, time_budget, trials, sample, max_predict_ms, min_rows_per_second, metric, "
            "families, seed, promote, time_column, time_format, ctr (at the top level, or "
            "under 'train:' as in a DVC params.yaml; examples/ctr/avazu.yaml is one). DATA "
            "and the options given here override its values. 'taxonomist models show NAME "
            "--config' prints the one a version was trained with.",
        ),
    ] = None,
    target: LabelsOpt = None,
    text: TextOpt = None,
    role: RoleOpt = None,
    time_budget: Annotated[
        float | None,
        typer.Option(
            "--time-budget",
            help="Seconds for the whole training, search and refit included (at least 5; "
            "default 120 unless --trials is given).",
        ),
    ] = None,
    trials: Annotated[
        int | None,
        typer.Option(
            "--trials",
            help="Run exactly N search trials instead of a time budget; the same data "
            "then give the same model.",
        ),
    ] = None,
    sample: Annotated[
        int | None,
        typer.Option(
            "--sample",
            help="Train on a stratified sample of N rows (at least 100) for a quick run: "
            "every class keeps its share and at least 5 rows.",
        ),
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option(
            "--images",
            help="Folder the image column's relative paths start from (default: the data "
            "file's folder). Or train on a .zip holding the table and its images.",
            show_default=False,
        ),
    ] = None,
    families: Annotated[
        str | None,
        typer.Option(
            "--families",
            help="Search only these model families, comma-separated (named ones run even "
            "where the search would leave them out): linear_svm, nb_svm, ovr_cascade, logreg, "
            "complement_nb, lightgbm, catboost, fm, embed, hybrid (the fine-tuned text + "
            "tabular network, the torch extra).",
        ),
    ] = None,
    max_predict_ms: Annotated[
        float | None,
        typer.Option(
            "--max-predict-ms",
            help="The most one record's prediction may take, in ms: ensemble members that "
            "would break it are left out (the card states the measured cost).",
        ),
    ] = None,
    min_rows_per_second: Annotated[
        float | None,
        typer.Option(
            "--min-rows-per-second",
            help="The fewest rows/s a batch prediction must reach (default 5000; 0: no limit, "
            "which lets slow members such as text embeddings in when accuracy matters more).",
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
        str | None,
        typer.Option(
            "--name",
            help="Registered model name; each training adds a version. Default: the data "
            "file's name.",
        ),
    ] = None,
    promote: Annotated[
        bool | None,
        typer.Option(
            "--promote/--no-promote",
            help="Make this version the champion even if it scores lower.",
            show_default=False,
        ),
    ] = None,
    metrics_file: Annotated[
        Path | None,
        typer.Option(
            "--metrics",
            help="Write the cross-validated scores and the training seconds here as one flat "
            "JSON object: a DVC metrics file.",
        ),
    ] = None,
    export: Annotated[
        Path | None,
        typer.Option(
            "--export",
            help="Also write the trained model to this folder (model.joblib and model.json, "
            "as 'models export' does), e.g. a DVC stage's output. Not with --remote.",
        ),
    ] = None,
    as_json: JsonOpt = False,
    remote: RemoteOpt = None,
    token: TokenOpt = None,
) -> None:
    """Train the best classifier the budget allows and register it.

    The search tries linear models on word and character n-grams, LightGBM on tabular
    features stacked with the text model, CatBoost for tabular-heavy data and sentence
    embeddings, tunes them with Optuna, ensembles the best, and calibrates probabilities.
    """
    if export is not None and remote:
        raise InvalidParameterError(
            "--export writes a model trained here; with --remote the model stays on the "
            "server. Drop --remote, or export it on the server with 'taxonomist models export'."
        )
    if images is not None and remote:
        raise InvalidParameterError(
            "--images names a folder here, which the server cannot read: zip the table with "
            "its images and train on the zip."
        )
    backend = backend_for(remote, token)
    config = train_config(
        data,
        config_file,
        target=target,
        text=text or None,
        roles=parse_roles(role or []) or None,
        time_budget=time_budget,
        trials=trials,
        sample=sample,
        images=str(images) if images else None,
        families=[f.strip() for f in families.split(",") if f.strip()] if families else None,
        max_predict_ms=max_predict_ms,
        min_rows_per_second=min_rows_per_second,
        metric=metric,
        name=name,
        promote=promote,
    )
    with TrainProgress(
        enabled=not as_json, budget=config.time_budget, trials=config.trials
    ) as progress:
        outcome = backend.train(config, progress)
    if export is not None and outcome.result is not None:
        from taxonomist.registry.export import export_model

        result = outcome.result
        export_model(
            result.model,
            export,
            name=result.name,
            version=result.version,
            config=result.config.to_json(),
        )
        outcome.summary["export"] = str(export)
    if metrics_file is not None:
        write_training_metrics(outcome.summary, metrics_file)
    if as_json:
        echo_json(outcome.summary)
    elif outcome.result is not None:
        print_training(outcome.result, export)
    else:
        r = outcome.summary
        out.print(
            f"Registered {r['model']} version {r['version']} on {backend.where}: "
            f"{r['metrics']['primary_metric']} {r['metrics']['primary']:.4f} "
            f"({r['best_family']}, {r['train_seconds']:.0f}s)."
        )


def write_training_metrics(summary: dict[str, Any], path: Path) -> None:
    """The scores of a ``train --json`` summary that are numbers, and its seconds, as a flat
    JSON object (what DVC reads as metrics)."""
    import json

    scores = summary["metrics"]
    flat = {k: v for k, v in scores.items() if isinstance(v, int | float) and k != "primary"}
    flat |= {"train_seconds": summary["train_seconds"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(flat, indent=2) + "\n")


def print_training(result: TrainResult, export: Path | None = None) -> None:
    """Scores, ensemble, promotion and data notes of a training run trained here."""
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
    budget = result.model.info.get("predict_cost", {}).get("budget")
    if budget:
        table.add_row("prediction budget", budget)
    out.print(table)
    ensemble = ", ".join(f"{k} {v:.0%}" for k, v in result.model.families.items())
    out.print(
        f"Ensemble: {ensemble}. Best single model: {m['best_single_family']} "
        f"({m['best_single']:.4f})."
    )
    out.print(f"Champion: {'yes' if result.promoted else 'no'} — {result.promotion_reason}.")
    for w in result.report.warnings:
        out.print(f"[yellow]Note:[/] {w}", highlight=False)
    embed_left_out = result.model.info.get("skipped_families", {}).get("embed")
    if embed_left_out and result.profile.language not in ("en", "unknown"):
        # off English, the sentence embeddings are where most of the accuracy is
        out.print(f"[yellow]Note:[/] sentence embeddings left out: {embed_left_out}.")
    if export is not None:
        out.print(f"Exported to {export}.")
    out.print(
        f"Next: taxonomist predict {result.name} DATA --output predictions.csv · "
        f"taxonomist models show {result.name}"
    )


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
    predictions = backend_for(remote, token).predict_file(model, data)
    frame = predictions.frame
    if output is not None:
        write_table(frame, output)
    if as_json:
        echo_json(
            {
                "model": predictions.model,
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


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """``frame`` as CSV, TSV, Parquet or JSON Lines, by ``path``'s suffix."""
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


def evaluate(
    model: Annotated[
        str,
        typer.Argument(
            help="An exported model (a folder written by 'models export' or 'train --export', "
            "or its model.joblib) or a registered one: NAME (its champion, else the latest "
            "version), NAME@ALIAS or NAME/VERSION. A path that exists is read as an export.",
            show_default=False,
        ),
    ],
    data: DataArg,
    target: Annotated[
        str | None,
        typer.Option(
            "--target", "-t", help="Column with the true labels. Default: the model's target."
        ),
    ] = None,
    metrics_file: Annotated[
        Path | None,
        typer.Option(
            "--metrics",
            help="Write the scores here as one flat JSON object (n, accuracy, f1_macro, "
            "f1_weighted, ece, mean_confidence, low_confidence_share; roc_auc and log_loss "
            "for two classes; without labels n and the confidence only): a DVC metrics file.",
        ),
    ] = None,
    plots: Annotated[
        Path | None,
        typer.Option(
            "--plots",
            help="Write reliability.csv (bin, mean_predicted, observed, count) and roc.csv "
            "(fpr, tpr) into this folder: DVC plots (x: mean_predicted, y: observed; x: fpr, "
            "y: tpr). For two classes they follow the second class's probability, for more "
            "the predicted class's (ROC micro-averaged).",
        ),
    ] = None,
    bins: Annotated[
        int,
        typer.Option(
            "--bins", help="Equal-width probability bins of reliability.csv.", min=2, max=1000
        ),
    ] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Score a model on labelled DATA: accuracy, F1, per-class report, ROC AUC and log loss
    (binary), calibration error; optionally as a metrics file and plot tables. DATA without
    the model's target column (and no --target) is scored without labels: the predicted
    classes' shares and the confidence."""
    from taxonomist.data.load import load_table
    from taxonomist.models.evaluation import evaluate_model
    from taxonomist.registry import get_registry
    from taxonomist.registry.export import load_model

    evaluation = evaluate_model(
        load_model(model, get_registry()), load_table(data), target, bins=bins
    )
    written = []
    if metrics_file is not None:
        written.append(evaluation.write_metrics(metrics_file))
    if plots is not None:
        written += evaluation.write_plots(plots)
    result = evaluation.scores
    if not result["labelled"]:
        _print_unlabelled(model, data, result, written, as_json)
        return
    keys = ("n", "accuracy", "f1_macro", "f1_weighted", "roc_auc", "log_loss", "per_class")
    if as_json:
        echo_json(
            {k: result[k] for k in keys}
            | {
                k: result[k]
                for k in ("ece", "mean_confidence", "low_confidence_share", "unknown_labels")
            }
        )
        return
    out.print(f"{model} on {data.name} ({result['n']} labelled rows)")
    for k in (*keys[1:-1], "ece"):
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
    if written:
        out.print(f"Wrote {', '.join(str(p) for p in written)}.")


def _print_unlabelled(
    model: str, data: Path, result: dict[str, Any], written: list[Path], as_json: bool
) -> None:
    if as_json:
        echo_json(result)
        return
    out.print(
        f"{model} on {data.name} ({result['n']} rows without labels: predictions and "
        "confidence only; give the labels' column with --target to score them)"
    )
    out.print(f"  mean confidence: {result['mean_confidence']:.4f}")
    from taxonomist.models.evaluation import LOW_CONFIDENCE

    share = result["low_confidence_share"]
    out.print(f"  share under {LOW_CONFIDENCE:.0%} confidence: {share:.4f}")
    table = Table("predicted class", "share")
    for c, share in sorted(result["predicted_share"].items(), key=lambda kv: -kv[1]):
        table.add_row(c, f"{share:.3f}")
    out.print(table)
    if written:
        out.print(f"Wrote {', '.join(str(p) for p in written)}.")


def profile(
    data: DataArg,
    target: Annotated[str | None, typer.Option("--target", "-t", help="Label column.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Describe DATA: rows, column roles, missing values, words per text, classes, language."""
    from taxonomist.data import infer_column_roles, load_table, profile_table

    df = load_table(data)
    prof = profile_table(df, infer_column_roles(df, target))
    if as_json:
        d = prof.to_dict()
        for col in d["columns"].values():
            col["stats"].pop("vocabulary", None)
        echo_json(d)
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
