"""Train: from a table to a tuned, calibrated, evaluated ensemble.

``train()`` returns a :class:`~taxonomist.models.result.TrainResult`; registering it is the
caller's call (``result.register(registry)``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from taxonomist.config import Settings, get_settings
from taxonomist.data.load import TableSource, load_table
from taxonomist.data.profile import profile_table
from taxonomist.data.schema import Schema
from taxonomist.errors import BudgetError, InvalidParameterError, MissingExtraError
from taxonomist.features.build import FeatureBlocks, block_specs
from taxonomist.features.ctr import parse_times
from taxonomist.models.candidates import FAMILIES, Task
from taxonomist.models.config import DEFAULT_TIME_BUDGET, TrainConfig
from taxonomist.models.cost import BATCH_ROWS, Cost, PredictBudget, embedding_cost
from taxonomist.models.finish import ProgressCallback, finish
from taxonomist.models.metrics import primary_metric
from taxonomist.models.model import TaxonomistModel
from taxonomist.models.result import REFERENCE_PREDICTED, REFERENCE_ROWS, TrainResult
from taxonomist.models.search import ModelSearch, SearchResult, choose_folds
from taxonomist.models.table_check import check_training_table, image_folder, stratified_sample

logger = logging.getLogger(__name__)

# Binary targets rarer than this are scored by log loss (default_metric).
CTR_POSITIVE_RATE = 0.3


def default_metric(y: np.ndarray, n_classes: int, requested: str | None) -> str | None:
    """Log loss for a binary target whose positive (second) class is under 30 % of the rows
    (clicks, fraud): there the probability itself is the product, and ROC AUC ignores its
    scale. Else the library's default (ROC AUC / macro-F1)."""
    if requested is None and n_classes == 2 and float(np.mean(y == 1)) < CTR_POSITIVE_RATE:
        return "log_loss"
    return requested


def _available_families(
    blocks: FeatureBlocks,
    task: Task,
    df: pd.DataFrame,
    schema: Schema,
    time_budget: float | None,
    requested: Sequence[str] | None,
    budget: PredictBudget,
    language: str = "en",
    n_folds: int = 5,
) -> tuple[list[str], dict[str, str], dict[str, float]]:
    """The families to search, the reasons for those left out, and the estimated seconds of
    the costly feature blocks (embedding, fine-tuning) the search prices trials with."""
    skipped: dict[str, str] = {}
    costs: dict[str, float] = {}
    names = list(requested or (n for n, f in FAMILIES.items() if f.searched))
    for n in names:
        if n not in FAMILIES:
            raise InvalidParameterError(
                f"Unknown model family '{n}'. Choose from: {', '.join(FAMILIES)}."
            )
    out = []
    for n in names:
        fam = FAMILIES[n]
        missing = [b for b in fam.requires if b not in blocks.specs]
        if missing or not any(b in blocks.specs for b in fam.blocks):
            skipped[n] = "no suitable columns"
            continue
        out.append(n)
    # A factorization machine is binary here, and on text its pairs of n-grams only cost time.
    if "fm" in out and (task.n_classes != 2 or (schema.text and not requested)):
        out.remove("fm")
        skipped["fm"] = "binary targets only" if task.n_classes != 2 else "text data"
    # CatBoost pays off on tabular-heavy data; with text it mostly duplicates LightGBM.
    tabular = len(schema.categorical) + len(schema.numeric)
    if "catboost" in out and schema.text and not requested and tabular < 3 * len(schema.text):
        out.remove("catboost")
        skipped["catboost"] = "text-heavy data"
    if "embed" in out and not requested:
        cost = embedding_cost(blocks.specs["embed"].make(), df[schema.text].iloc[:BATCH_ROWS])
        if not budget.allows(cost):
            out.remove("embed")
            skipped["embed"] = (
                f"embedding a text takes ~{cost.one_ms:.1f} ms ({cost.rows_per_second:,.0f} "
                f"rows/s), outside the prediction budget ({budget.describe()}); "
                "--min-rows-per-second 0 lets it in"
            )
    if "embed" in out:
        costs["embed"] = seconds = embedding_seconds(blocks, df, schema)
        if time_budget is not None and not requested and seconds > 0.25 * time_budget:
            out.remove("embed")
            skipped["embed"] = (
                f"embedding {task.n_rows} texts takes ~{seconds:.0f}s, over a "
                "quarter of the time budget (cached embeddings are free: "
                "train again with a larger budget once)"
            )
    if "hybrid" in out:
        judged = _judge_hybrid(
            out, skipped, df, schema, task, time_budget, requested, language, n_folds
        )
        if judged is not None:
            costs["text_raw"] = judged
    if "hybrid" in out and "embed" in blocks.specs and "embed" not in costs:
        # the hybrid network's probe reads the frozen sentence vectors too
        costs["embed"] = embedding_seconds(blocks, df, schema)
    return out, skipped, costs


# Fewer rows than this: the hybrid network is not searched unless named.
HYBRID_MIN_ROWS = 1000


def _judge_hybrid(
    out: list[str],
    skipped: dict[str, str],
    df: pd.DataFrame,
    schema: Schema,
    task: Task,
    time_budget: float | None,
    requested: Sequence[str] | None,
    language: str,
    n_folds: int,
) -> float | None:
    """Keep the fine-tuned network only where it can finish: the torch extra installed, and
    (unless named) a time budget its estimated search cost fits in half of. Its estimated
    trial seconds when it stays."""
    from taxonomist.models.minilm import torch_ready

    if not torch_ready():
        if requested:
            raise MissingExtraError("The hybrid network", "torch", "torch")
        out.remove("hybrid")
        skipped["hybrid"] = "needs the torch extra: pip install 'taxonomist[torch]'"
        return None
    if requested:
        return hybrid_trial_seconds(df, schema, task, n_folds)
    reason = None
    if time_budget is None:
        reason = "no time budget to judge its cost by"
    elif language != "en":
        reason = f"its MiniLM is English and the text is '{language}'"
    elif task.n_rows < HYBRID_MIN_ROWS:
        reason = (
            f"{task.n_rows:,} rows, under the {HYBRID_MIN_ROWS:,} the search fine-tunes from "
            "(the embed family brings the pretrained encoder to small tables)"
        )
    if reason:
        out.remove("hybrid")
        skipped["hybrid"] = f"{reason}; --families hybrid forces it"
        return None
    assert time_budget is not None
    from taxonomist.models.minilm import gpu_present

    # The CPU figures first: only a network that may fit loads MiniLM to time itself.
    seconds = hybrid_trial_seconds(df, schema, task, n_folds, measured=False)
    if seconds <= 0.5 * time_budget or gpu_present():
        seconds = hybrid_trial_seconds(df, schema, task, n_folds)
    if seconds > 0.5 * time_budget:
        out.remove("hybrid")
        skipped["hybrid"] = (
            f"fine-tuning on {task.n_rows:,} rows takes ~{seconds:.0f}s a trial here, over half "
            "the time budget (a GPU, a larger --time-budget or --sample make it fit; "
            "--families hybrid forces it)"
        )
        return None
    return seconds


def hybrid_trial_seconds(
    df: pd.DataFrame, schema: Schema, task: Task, n_folds: int = 5, *, measured: bool = True
) -> float:
    """Estimated seconds of the hybrid family's first trial: the frozen layers once, then its
    default epochs on each validation fold's training rows (measured speed, this machine)."""
    from taxonomist.embed.transformer import join_text_columns
    from taxonomist.models.minilm import estimate_fit_seconds

    texts = join_text_columns(df[schema.text])
    frozen, train = estimate_fit_seconds(texts, FAMILIES["hybrid"].defaults, measured=measured)
    # Each fold trains on ~3/4 of the rows (its validation rows and the network's own
    # early-stopping split held out).
    return frozen + 0.75 * train * max(n_folds, 1)


def embedding_seconds(blocks: FeatureBlocks, df: pd.DataFrame, schema: Schema) -> float:
    """Estimated seconds to embed the texts not yet in the embedding cache."""
    from taxonomist.embed.cache import EmbeddingCache, text_key
    from taxonomist.embed.encoders import get_encoder
    from taxonomist.embed.transformer import join_text_columns

    embedder = blocks.specs["embed"].make()
    encoder = get_encoder(embedder.encoder)
    texts = join_text_columns(df[schema.text])
    step = max(1, len(texts) // 200)
    sample = texts[::step]
    if embedder.cache_path:
        cache = EmbeddingCache(embedder.cache_path)
        found = cache.get(encoder.name, [text_key(t) for t in sample], encoder.dim)
        cache.close()
        sample = [t for t in sample if text_key(t) not in found]
    return encoder.estimate_seconds(sample, scale=step) if sample else 0.0


def _fingerprint(df: pd.DataFrame) -> np.ndarray:
    try:
        return pd.util.hash_pandas_object(df, index=False).to_numpy()
    except TypeError:  # unhashable cells, e.g. lists read from JSON
        return pd.util.hash_pandas_object(df.astype(str), index=False).to_numpy()


def _encode_target(series: pd.Series) -> tuple[np.ndarray, list[Any]]:
    values = series
    if not pd.api.types.is_numeric_dtype(values):
        values = values.astype(str)
    elif pd.api.types.is_float_dtype(values) and (values.dropna() % 1 == 0).all():
        values = values.astype("int64")
    classes, y = np.unique(values.to_numpy(), return_inverse=True)
    return y.astype(np.int64), [c.item() if hasattr(c, "item") else c for c in classes]


def single_record_ms(model: TaxonomistModel, record: dict[str, Any], repeats: int = 21) -> float:
    """Median milliseconds of ``predict_proba`` on one record (after one warm-up call)."""
    model.predict_proba(record)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        model.predict_proba(record)
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def _measure_speed(model: TaxonomistModel, df: pd.DataFrame) -> dict[str, float]:
    sample = df.iloc[: min(len(df), 2000)]
    start = time.perf_counter()
    model.predict_proba(sample)
    batch = len(sample) / max(time.perf_counter() - start, 1e-9)
    record = sample.iloc[0][model.feature_columns].to_dict()
    return {
        "predict_rows_per_second": float(batch),
        "predict_one_ms_p50": single_record_ms(model, record),
    }


def train(
    data: TableSource | None = None,
    config: TrainConfig | dict[str, Any] | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    settings: Settings | None = None,
    **options: Any,
) -> TrainResult:
    """Train the best classifier the budget allows.

    ``config`` is a :class:`TrainConfig` (or its dict); ``options`` are its fields given as
    keywords (``target="label", trials=20``) and override it. ``data`` (a path or a
    DataFrame) overrides ``config.data``. With ``trials`` and no ``time_budget`` the search runs
    exactly that many trials and the same data give the same model. Nothing is registered:
    call ``result.register(registry)``.
    """
    started = time.perf_counter()
    settings = settings or get_settings()
    config = _config(config, options)
    if data is None:
        if config.data is None:
            raise InvalidParameterError("No data to train on: give a file or a DataFrame.")
        data = config.data
    elif isinstance(data, str | Path):
        config = config.model_copy(update={"data": str(data)})
    target = config.target
    seed = settings.seed if config.seed is None else config.seed
    time_budget, trials = config.time_budget, config.trials
    df = load_table(data)
    checked = check_training_table(df, config)
    df, schema, report, ctr_plan = checked.table, checked.schema, checked.report, checked.ctr_plan
    if config.sample is not None and len(df) > config.sample:
        n_rows = len(df)
        df = stratified_sample(df, target, config.sample, seed)
        report.n_rows_used = len(df)
        report.warnings.append(
            f"Trained on a stratified sample of {len(df):,} of the {n_rows:,} rows (sample="
            f"{config.sample}): a quick run; drop the sample to train on all of them."
        )
    time_column = checked.time_column
    for w in report.warnings:
        logger.warning(w)
    profile = profile_table(df, schema)
    y, classes = _encode_target(df[target])
    metric_obj = primary_metric(len(classes), default_metric(y, len(classes), config.metric))
    times = None
    if time_column:
        times = parse_times(df[time_column], config.time_format).to_numpy()
    folds, protocol = choose_folds(y, seed, times)
    if times is not None and protocol["kind"] != "time_forward":
        report.warnings.append(
            f"The time column '{time_column}' holds one time only: validation uses "
            "stratified folds, not earlier-to-later ones."
        )
    # Scores are comparable only on the same rows, folds and metric (champion promotion).
    fingerprint = _fingerprint(df)
    protocol.update(
        metric=metric_obj.name,
        n_rows=len(y),
        data_sha1=hashlib.sha1(fingerprint.tobytes()).hexdigest()[:16],
    )
    X = df[schema.features].reset_index(drop=True)
    encoder = None
    if schema.text:
        from taxonomist.embed.encoders import encoder_for_language

        encoder = encoder_for_language(profile.language, profile.languages).name
    images = image_folder(config) if schema.image else None
    blocks = FeatureBlocks(
        block_specs(
            schema,
            X,
            folds,
            seed,
            embed_encoder=encoder,
            cache_path=str(settings.cache_dir / "embeddings.db"),
            n_jobs=settings.n_jobs,
            ctr=ctr_plan,
            language=profile.language,
            image_root=str((images or Path.cwd()).resolve()) if schema.image else None,
        )
    )
    task = Task(
        n_rows=len(y),
        n_classes=len(classes),
        seed=seed,
        n_jobs=settings.n_jobs,
        reweight=metric_obj.name != "log_loss",
    )
    names, skipped, block_costs = _available_families(
        blocks,
        task,
        X,
        schema,
        time_budget,
        config.families,
        config.predict_budget,
        profile.language,
        len(folds),
    )
    logger.info("families: %s; skipped: %s", names, skipped)
    deadline = None if time_budget is None else started + time_budget
    search = ModelSearch(
        X,
        y,
        blocks,
        task,
        metric_obj,
        folds,
        names,
        deadline=deadline,
        n_trials=trials,
        started=started,
        time_budget=time_budget,
        on_progress=on_progress,
        block_costs=block_costs,
    )
    result = search.run()
    result.skipped_families = skipped
    result.protocol = protocol
    if not result.records:
        raise BudgetError(
            f"No model finished within the time budget of {time_budget:.0f}s "
            f"({len(y)} rows, {len(classes)} classes). Give more time with --time-budget.",
            details={"time_budget": time_budget},
        )
    model, metrics, predicted = finish(
        search,
        result,
        schema,
        classes,
        metric_obj,
        y,
        config.predict_budget,
        on_progress,
        started,
        time_budget,
    )
    if "hybrid" in names:  # the frozen layers' outputs served the folds and the refit
        from taxonomist.models.minilm import LOWER_CACHE

        LOWER_CACHE.clear()
    model.profile = profile.to_dict()
    model.info.update(
        protocol=protocol,
        skipped_families=skipped,
        validation=report.to_dict(),
        target=target,
        config=config.to_json(),
    )
    metrics.update(_measure_speed(model, X))
    _check_measured_cost(model, metrics, config.predict_budget)
    train_seconds = time.perf_counter() - started
    metrics["train_seconds"] = train_seconds
    model.info["metrics"] = metrics
    best_family = max(model.families.items(), key=lambda kv: kv[1])[0]
    leaderboard = _leaderboard(result)
    out = TrainResult(
        model=model,
        metrics=metrics,
        train_seconds=train_seconds,
        best_family=best_family,
        report=report,
        profile=profile,
        leaderboard=leaderboard,
        config=config,
        study=result.study,
        data=df,
        reference=drift_reference(df, schema, classes, result.valid_idx, predicted, seed),
    )
    return out


def _config(config: TrainConfig | dict[str, Any] | None, options: dict[str, Any]) -> TrainConfig:
    if config is None:
        return TrainConfig.parse(options, source="train()'s options")
    if isinstance(config, dict):
        config = TrainConfig.parse(config)
    return config.merged(**options) if options else config


def _check_measured_cost(
    model: TaxonomistModel, metrics: dict[str, Any], budget: PredictBudget
) -> None:
    """Warn when the refitted model, measured, breaks the budget its members were chosen
    for (their costs are estimates from the folds' models)."""
    measured = Cost(
        batch_us=1e6 / max(metrics["predict_rows_per_second"], 1e-9),
        one_ms=metrics["predict_one_ms_p50"],
    )
    within = budget.allows(measured)
    model.info.setdefault("predict_cost", {})["measured"] = {
        **measured.to_dict(),
        "within_budget": within,
    }
    if not within:
        logger.warning(
            "The trained model predicts %s rows/s and one record in %.2f ms, outside the "
            "prediction budget (%s).",
            f"{metrics['predict_rows_per_second']:,.0f}",
            metrics["predict_one_ms_p50"],
            budget.describe(),
        )


def drift_reference(
    df: pd.DataFrame,
    schema: Schema,
    classes: list[Any],
    rows: np.ndarray,
    predicted: np.ndarray,
    seed: int,
) -> pd.DataFrame:
    """What drift is measured against: up to :data:`REFERENCE_ROWS` training rows (features
    and target) with the class the ensemble predicted for each out of fold, which is what it
    predicts on new rows like them (its predictions on rows it was fitted on are too good)."""
    columns = [*schema.features, *([schema.target] if schema.target else [])]
    ref = df.iloc[rows][columns].reset_index(drop=True)
    ref[REFERENCE_PREDICTED] = [str(classes[i]) for i in predicted]
    if len(ref) > REFERENCE_ROWS:
        ref = ref.sample(REFERENCE_ROWS, random_state=seed).reset_index(drop=True)
    return ref


def _leaderboard(result: SearchResult) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "trial": r.number,
                "family": r.family,
                "score": r.score,
                "fold_seconds": r.fold_seconds,
                "params": r.params,
            }
            for r in result.records
        ]
    )


__all__ = ["DEFAULT_TIME_BUDGET", "TrainConfig", "TrainResult", "train"]
