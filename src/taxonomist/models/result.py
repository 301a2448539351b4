"""What training produced, and how it becomes a registry :class:`~taxonomist.registry.Candidate`:
its scores, its config, its report folder (plots and JSON) and its trials."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from taxonomist.data.profile import DatasetProfile
from taxonomist.data.validate import ValidationReport
from taxonomist.models.config import TrainConfig
from taxonomist.models.model import TaxonomistModel

if TYPE_CHECKING:
    import optuna

    from taxonomist.registry import Candidate, Registration, Registry

SUMMARY_METRICS = ("accuracy", "f1_macro", "f1_weighted", "roc_auc", "log_loss", "ece")
REFERENCE_ROWS = 20_000  # training rows kept as the drift reference
REFERENCE_PREDICTED = "_taxonomist_predicted"  # the reference's out-of-fold predicted class


@dataclass
class TrainResult:
    """The model, its cross-validated scores, the config that produced it and, once
    registered (:meth:`register`), where it is stored."""

    model: TaxonomistModel
    metrics: dict[str, Any]
    train_seconds: float
    best_family: str
    report: ValidationReport
    profile: DatasetProfile
    leaderboard: pd.DataFrame
    config: TrainConfig
    study: optuna.Study | None = field(default=None, repr=False)
    data: pd.DataFrame | None = field(default=None, repr=False)  # the rows trained on
    reference: pd.DataFrame | None = field(default=None, repr=False)  # see drift_reference
    holdout: pd.DataFrame | None = field(default=None, repr=False)  # rows kept for evaluation
    name: str | None = None
    version: int | None = None
    promoted: bool = False
    promotion_reason: str = ""
    run_id: str | None = None

    def summary(self) -> dict[str, Any]:
        """The ``train --json`` contract."""
        return {
            "model": self.name,
            "version": self.version,
            "metrics": {k: self.metrics.get(k) for k in SUMMARY_METRICS}
            | {
                "primary": self.metrics["primary"],
                "primary_metric": self.metrics["primary_metric"],
            },
            "train_seconds": round(self.train_seconds, 2),
            "best_family": self.best_family,
            "ensemble": self.model.families,
            "promoted": self.promoted,
        }

    # -- registration -----------------------------------------------------------------------
    def register(
        self,
        registry: Registry,
        name: str | None = None,
        *,
        promote: bool | None = None,
        tags: dict[str, str] | None = None,
        keep_champion: bool = False,
    ) -> Registration:
        """Register the model as a new version of ``name`` (default: the config's) in
        ``registry``; ``promote`` defaults to the config's; ``keep_champion``: never move the
        champion (a challenger). Fills the registry fields."""
        from taxonomist.errors import InvalidParameterError

        name = name or self.config.name
        if not name:
            raise InvalidParameterError(
                "No model name to register under: give 'name' (--name on the command line)."
            )
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp)
            write_report(self, report)
            candidate = self.candidate(report, tags=tags, name=name)
            reg = registry.register(
                name,
                candidate,
                promote=self.config.promote if promote is None else promote,
                keep_champion=keep_champion,
            )
        self.name, self.version, self.run_id = reg.name, reg.version, reg.run_id
        self.promoted, self.promotion_reason = reg.promoted, reg.reason
        self.model.info.setdefault("registry", {}).update(name=reg.name, version=reg.version)
        return reg

    def candidate(
        self,
        report: Path | None = None,
        tags: dict[str, str] | None = None,
        name: str | None = None,
    ) -> Candidate:
        """The registry's view of this result (``report``: a folder of artifacts; ``name``:
        the name it is registered under, stored in its config)."""
        from taxonomist.models.metrics import METRICS
        from taxonomist.registry import Candidate

        model = self.model
        params = {
            "target": model.schema.target,
            "n_rows": self.report.n_rows_used,
            "n_classes": len(model.classes),
            "metric": model.metric,
            "ensemble": json.dumps(model.families),
            "best_family": self.best_family,
            "language": self.profile.language,
            "calibration": self.metrics.get("calibration", "temperature"),
        }
        metrics = {
            k: float(v)
            for k, v in self.metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and k != "n"
        }
        return Candidate(
            model=model,
            primary=float(self.metrics["primary"]),
            metric=model.metric,
            greater_is_better=METRICS[model.metric].greater_is_better,
            protocol=model.info["protocol"],
            input_example=input_example(model),
            params=params,
            metrics=metrics,
            tags={
                "target": str(model.schema.target),
                "best_family": self.best_family,
                **(tags or {}),
            },
            config=self.config.model_copy(update={"name": name or self.config.name}).to_json(),
            report=report,
            trials=trials_of(self.study, model.metric),
            tables={
                key: frame
                for key, frame in (
                    ("train", self.data),
                    ("reference", self.reference),
                    ("holdout", self.holdout),
                )
                if frame is not None
            },
        )


def input_example(model: TaxonomistModel) -> pd.DataFrame:
    """One made-up row with the feature columns (the pyfunc flavour's signature); an image
    column holds an empty string (no image)."""
    values = {"numeric": 0.0, "image": ""}
    row: dict[str, Any] = {}
    for col in model.feature_columns:
        row[col] = values.get(str(model.schema.roles[col]), "example")
    return pd.DataFrame([row])


def trials_of(study: optuna.Study | None, metric: str) -> list[Any]:
    """The finished and pruned trials of ``study`` as registry :class:`Trial` records."""
    if study is None:
        return []
    import optuna

    from taxonomist.registry import Trial

    kept = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    out = []
    for t in study.trials:
        if t.state not in kept:
            continue
        score = None if t.value is None else (t.value if metric == "log_loss" else -t.value)
        out.append(
            Trial(
                number=t.number,
                state=t.state.name,
                params=dict(t.params),
                score=score,
                fold_seconds=float(t.user_attrs.get("fold_seconds", 0.0)),
            )
        )
    return out


def write_report(result: TrainResult, folder: Path) -> dict[str, str]:
    """The profile, validation report, metrics, schema, leaderboard and plots of ``result``
    into ``folder``; returns plot name -> file name."""
    from taxonomist.models import plots
    from taxonomist.models.metrics import METRICS

    folder.mkdir(parents=True, exist_ok=True)
    model = result.model
    files: dict[str, Path] = {}
    (folder / "profile.json").write_text(json.dumps(result.profile.to_dict(), default=str))
    (folder / "validation.json").write_text(json.dumps(result.report.to_dict(), default=str))
    (folder / "metrics.json").write_text(json.dumps(result.metrics, default=str, indent=1))
    (folder / "schema.json").write_text(json.dumps(model.schema.to_dict()))
    result.leaderboard.to_csv(folder / "leaderboard.csv", index=False)
    (folder / "model_card.md").write_text(model_card(result))
    classes = [str(c) for c in model.classes]
    files["confusion_matrix"] = plots.confusion_matrix_plot(
        result.metrics["confusion_matrix"], classes, folder / "confusion_matrix.png"
    )
    files["per_class_f1"] = plots.per_class_f1_plot(
        result.metrics["per_class"], folder / "per_class_f1.png"
    )
    if result.metrics.get("reliability"):
        files["reliability"] = plots.reliability_plot(
            result.metrics["reliability"],
            len(classes) == 2,
            result.metrics["ece"],
            folder / "reliability.png",
        )
    curves = model.training_curves()
    if curves:
        (folder / "training_curve.json").write_text(json.dumps(curves))
        files["training_curve"] = plots.training_curve_plot(curves, folder / "training_curve.png")
    if result.study is not None:
        files["history"] = plots.history_plot(
            result.study,
            model.metric,
            METRICS[model.metric].greater_is_better,
            folder / "optimization_history.png",
        )
        imp = plots.param_importances(result.study, result.best_family)
        (folder / "param_importances.json").write_text(json.dumps(imp))
        files["importances"] = plots.importance_plot(
            imp, result.best_family, folder / "param_importances.png"
        )
    return {k: v.name for k, v in files.items()}


def model_card(result: TrainResult) -> str:
    """A short Markdown card: what the model predicts, how well, from what, at what cost."""
    m, model = result.metrics, result.model
    cost = model.info.get("predict_cost", {})
    measured = cost.get("measured", {})
    estimated = cost.get("estimated", {})
    members = ", ".join(f"{k} {v:.0%}" for k, v in model.families.items())
    lines = [
        f"# {result.name or 'model'}" + (f" version {result.version}" if result.version else ""),
        "",
        f"Predicts `{model.schema.target}` ({len(model.classes)} classes) from "
        f"{', '.join(f'`{c}`' for c in model.feature_columns)}.",
        "",
        "| | |",
        "|---|---|",
        f"| {m['primary_metric']} (validation: {m.get('validation')}) | {m['primary']:.4f} |",
        f"| best single model | {m['best_single_family']} {m['best_single']:.4f} |",
        f"| ensemble | {members} |",
        f"| calibration | {m.get('calibration', 'temperature')} (ECE {m['ece']:.4f}) |",
        f"| trials | {m['n_trials']} ({m.get('n_pruned', 0)} pruned) |",
        f"| training | {result.train_seconds:.0f} s (budget "
        f"{result.config.time_budget or 'none'}) |",
        f"| prediction budget | {cost.get('budget', 'none')} |",
        f"| batch prediction, measured | {m['predict_rows_per_second']:,.0f} rows/s "
        f"(estimated from the search: {estimated.get('rows_per_second', 0):,.0f}) |",
        f"| one record, measured p50 | {m['predict_one_ms_p50']:.2f} ms "
        f"(estimated: {estimated.get('one_record_ms', 0):.2f} ms) |",
    ]
    left_out = cost.get("left_out") or []
    if left_out:
        families = sorted({d["family"] for d in left_out})
        lines += [
            "",
            f"{len(left_out)} trial(s) were left out of the ensemble because they break the "
            f"prediction budget: {', '.join(families)}.",
        ]
    if measured and cost.get("budget") and not measured.get("within_budget", True):
        lines += ["", "The measured cost is outside the prediction budget."]
    return "\n".join(lines) + "\n"
