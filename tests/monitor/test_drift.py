"""The drift report on real data: no alarm on a random split, and each kind of drift found
with the right column and reason."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from taxonomist.errors import InvalidParameterError, SchemaMismatchError
from taxonomist.monitor import stats
from taxonomist.monitor.drift import drift_report
from tests.conftest import shared

TARGET = "prime_genre"
COLUMNS = ["track_name", "app_desc", "price", "user_rating", "lang_num", "cont_rating", TARGET]


@pytest.fixture(scope="module")
def apps() -> pd.DataFrame:
    return pd.read_csv(shared("appstore/apps.csv"))[COLUMNS]


@pytest.fixture(scope="module")
def trained(apps: pd.DataFrame):
    """A model trained on half of the apps; the other half is unseen working data."""
    from taxonomist.models.train import train

    seen = apps.sample(frac=0.5, random_state=0)
    result = train(
        seen, target=TARGET, text=["track_name", "app_desc"], trials=1, families=["logreg"], seed=0
    )
    return result.model, result.reference, apps.drop(seen.index).drop(columns=TARGET)


def flagged(report, verdict: str = "drift") -> set[tuple[str, str]]:
    return {(s["column"], s["signal"]) for s in report.signals if s["verdict"] == verdict}


def test_the_reference_is_training_rows_with_out_of_fold_predictions(trained) -> None:
    model, reference, _ = trained
    assert len(reference) == 3598 and "_taxonomist_predicted" in reference
    assert set(reference["_taxonomist_predicted"]) <= {str(c) for c in model.classes}
    # out of fold: wrong more often than on the rows it was fitted on
    oof = (reference["_taxonomist_predicted"] == reference[TARGET].astype(str)).mean()
    fitted = (np.asarray(model.predict(reference), dtype=str) == reference[TARGET]).mean()
    assert oof < fitted


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unseen_rows_from_the_same_source_are_ok(trained, seed: int) -> None:
    model, reference, unseen = trained
    report = drift_report(model, reference, unseen.sample(frac=0.5, random_state=seed), seed=seed)
    assert report.verdict == "ok", report.reasons
    assert report.reasons == ["no signal moved beyond chance and its thresholds"]
    assert (report.n_reference, report.n_current) == (len(reference), round(len(unseen) / 2))


def test_a_numeric_column_scaled_tenfold_is_drift_in_that_column(trained) -> None:
    model, reference, unseen = trained
    working = unseen.assign(price=unseen["price"] * 10)
    report = drift_report(model, reference, working)
    assert report.verdict == "drift"
    assert flagged(report) == {("price", "distribution")}
    assert report.reasons[0].startswith("price (numeric): distribution shifted")
    assert report.columns["price"]["psi"] > 0.25 and report.columns["price"]["verdict"] == "drift"
    assert report.score >= 1


def test_texts_from_another_source_are_drift_in_the_text_and_embeddings(trained) -> None:
    model, reference, _ = trained
    reviews = pd.read_csv(shared("womens_clothing/reviews.csv")).dropna(subset=["Review Text"])
    working = pd.DataFrame(
        {"track_name": reviews["Title"], "app_desc": reviews["Review Text"]}
    ).head(2000)
    report = drift_report(model, reference, working)
    assert report.verdict == "drift"
    found = flagged(report)
    assert {
        ("app_desc", "vocabulary"),
        ("app_desc", "words_per_text"),
        ("embedding", "embedding"),
    } <= found
    assert report.absent_columns == ["price", "user_rating", "lang_num", "cont_rating"]
    assert "absent from the working data" in report.reasons[0]
    typical = report.columns["app_desc"]["vocabulary"]["words_typical_of_current"]
    assert {"dress", "fit", "size"} & set(typical), typical
    assert report.embedding is not None and report.embedding["auc"] > 0.9


def test_a_class_prior_shift_is_drift_in_the_predicted_classes(trained, apps) -> None:
    model, reference, unseen = trained
    two = apps.loc[unseen.index][apps.loc[unseen.index, TARGET].isin(["Games", "Education"])]
    report = drift_report(model, reference, two.drop(columns=TARGET))
    assert report.verdict == "drift"
    assert ("prediction", "distribution") in flagged(report)
    reason = next(r for r in report.reasons if r.startswith("predicted classes"))
    assert "Games" in reason or "Education" in reason


def test_a_vocabulary_shift_is_drift_in_that_text_column(trained) -> None:
    model, reference, unseen = trained
    rng = np.random.default_rng(0)

    def garble(text: str) -> str:  # a third of the words become words never seen
        return " ".join(w + "zq" if rng.random() < 0.33 else w for w in str(text).split())

    working = unseen.assign(app_desc=unseen["app_desc"].map(garble))
    report = drift_report(model, reference, working)
    assert report.verdict == "drift"
    assert ("app_desc", "oov") in flagged(report)
    assert report.columns["app_desc"]["oov_rate"]["current"] > 0.25
    assert not {c for c, _ in flagged(report)} - {"app_desc", "embedding"}
    assert any(w.endswith("zq") for w in report.columns["app_desc"]["new_words"]["top"])


def test_too_few_rows_and_foreign_columns_are_refused(trained) -> None:
    model, reference, unseen = trained
    with pytest.raises(InvalidParameterError, match="at least 30 working rows"):
        drift_report(model, reference, unseen.head(10))
    with pytest.raises(SchemaMismatchError):
        drift_report(model, reference, pd.DataFrame({"other": range(100)}))


def test_statistics() -> None:
    same = np.array([100, 200, 300])
    assert stats.psi(same, same) == pytest.approx(0)
    assert stats.psi(same, np.array([300, 200, 100])) > stats.psi(same, np.array([150, 200, 250]))
    assert stats.js_distance(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1, abs=1e-3)
    # Holm: the smallest p times m, then step-down, never above 1, order kept
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_the_domain_classifier_is_calibrated_under_no_shift_and_sees_a_shift() -> None:
    null = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        a, b = rng.normal(size=(400, 5)), rng.normal(size=(400, 5))
        null.append(stats.domain_classifier(a, b, seed=seed, weights=False))
    assert sum(d.p_value < 0.05 for d in null) <= 2
    assert all(abs(d.auc - 0.5) < 0.1 for d in null)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 5)), rng.normal(size=(400, 5))
    shifted = stats.domain_classifier(a, b + 1.0, seed=0)
    assert shifted.auc > 0.9 and shifted.p_value < 1e-6
    assert shifted.weights is not None and (shifted.weights > 0).all()  # every feature moved


def test_repeated_records_do_not_look_like_drift(trained) -> None:
    """The log repeats popular records: a classifier that sees the same text when fitting
    and when scoring would tell it apart by heart, not by drift."""
    model, reference, unseen = trained
    working = pd.concat([unseen.sample(400, random_state=0)] * 10, ignore_index=True)
    report = drift_report(model, reference, working)
    assert report.verdict == "ok", report.reasons
