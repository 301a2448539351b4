"""How the ensemble's candidates are combined: greedy average, single best, log-linear pool or
stacker, chosen by a cross-validation over the out-of-fold rows."""

from __future__ import annotations

import numpy as np
import pytest

from taxonomist.models.ensemble import LogPool, Stacker, choose_combination
from taxonomist.models.metrics import primary_metric


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _specialists(n: int = 900, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """Three classes; one member tells class 0 from the rest, the other 1 from 2, and each is
    confidently wrong where it knows nothing: only a combiner that learns whom to trust for
    which class gets everything right."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    a = np.where(y[:, None] == 0, [4.0, 0, 0], [0, 2.0, 0]) + rng.normal(0, 0.5, (n, 3))
    b = np.where(y[:, None] == 1, [0, 4.0, 0], [0, 0, 4.0]) + rng.normal(0, 0.5, (n, 3))
    b[y == 0] = [0, 0, 4.0]
    return [_softmax(a), _softmax(b)], y


def test_a_stacker_learns_which_member_to_trust_for_which_class() -> None:
    oofs, y = _specialists()
    metric = primary_metric(3, None)
    chosen = choose_combination(oofs, y, metric)
    assert chosen.kind == "stacker", chosen.scores
    assert chosen.scores["stacker"] > chosen.scores["greedy"] + 0.03
    assert chosen.inputs == [0, 1]
    # Its out-of-fold predictions are the honest ones (fitted on other rows), and score so.
    assert metric(y, chosen.predictions) == pytest.approx(chosen.scores["stacker"])
    new, y_new = _specialists(seed=1)
    assert metric(y_new, chosen.combiner.combine(new)) > 0.95


def test_log_pool_outputs_probabilities_and_weighs_the_informative_member() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 800)
    good = _softmax(np.eye(4)[y] * 3 + rng.normal(0, 1, (800, 4)))
    noise = _softmax(rng.normal(0, 1, (800, 4)))
    pool = LogPool().fit([good, noise], y)
    p = pool.combine([good, noise])
    assert p.shape == (800, 4) and np.allclose(p.sum(axis=1), 1, atol=1e-5)
    assert pool.weights_[0] > 0.5 and abs(pool.weights_[1]) < 0.2
    assert pool.member_shares()[0] > 0.75


def test_stacker_never_predicts_a_class_absent_from_its_rows() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)  # three classes, the third never seen
    member = _softmax(np.eye(3)[y] * 2 + rng.normal(0, 1, (300, 3)))
    p = Stacker().fit([member, member[::-1]], y).combine([member, member[::-1]])
    assert p.shape == (300, 3) and p[:, 2].max() < 1e-6
    assert (p.argmax(axis=1) == y).mean() > 0.8


def test_pool_and_stacker_take_only_candidates_that_keep_the_budget() -> None:
    oofs, y = _specialists()
    oofs = [oofs[0], oofs[1], oofs[1].copy()]
    metric = primary_metric(3, None)
    chosen = choose_combination(oofs, y, metric, allowed=lambda members: len(members) <= 2)
    assert chosen.inputs == [0, 1]
    alone = choose_combination(oofs, y, metric, allowed=lambda members: len(members) <= 1)
    assert alone.kind in {"single", "greedy"} and alone.combiner is None
    assert set(alone.scores) == {"single", "greedy"}
    assert np.count_nonzero(alone.weights) == 1


def test_a_trained_model_with_a_combiner_saves_and_predicts_the_same(toy, home, tmp_path) -> None:
    import joblib

    from taxonomist.models.train import train

    result = train(toy, target="label", trials=4, families=["linear_svm", "complement_nb"])
    model = result.model
    info = model.info["combination"]
    assert info["kind"] in {"single", "greedy", "log_pool", "stacker"}
    assert set(info["cross_validated"]) >= {"single", "greedy"}
    # Whatever was chosen, a pool over the members must round-trip and serve one record.
    if model.combiner is None:
        model.combiner = LogPool().fit(
            [np.full((len(toy), len(model.classes)), 1 / len(model.classes))] * len(model.members),
            np.arange(len(toy)) % len(model.classes),
        )
    path = tmp_path / "m.joblib"
    joblib.dump(model, path)
    again = joblib.load(path)
    record = toy.drop(columns=["label"]).iloc[0].to_dict()
    assert np.allclose(model.predict_proba(toy).to_numpy(), again.predict_proba(toy).to_numpy())
    assert np.allclose(
        again.predict_proba(record).to_numpy(), again.predict_proba(toy.head(1)).to_numpy()
    )


@pytest.mark.parametrize(
    "name", ["f1_macro", "f1_weighted", "accuracy", "balanced_accuracy", "roc_auc"]
)
def test_scores_equal_scikit_learns(name: str) -> None:
    """The scores are computed from confusion counts and ranks (the blends are scored
    thousands of times); they equal scikit-learn's, with classes absent from the rows, the
    predictions or both, and tied probabilities."""
    import warnings

    from sklearn import metrics as skm

    from taxonomist.models.metrics import METRICS

    reference = {
        "f1_macro": lambda y, p: skm.f1_score(y, p, average="macro"),
        "f1_weighted": lambda y, p: skm.f1_score(y, p, average="weighted"),
        "accuracy": skm.accuracy_score,
        "balanced_accuracy": skm.balanced_accuracy_score,
    }.get(name)
    rng = np.random.default_rng(3)
    for trial in range(20):
        y = rng.choice([0, 1, 2, 4], 60)  # class 3 never occurs; 5 only in the predictions
        proba = rng.random((60, 6)) ** 3
        proba[:, 3] = 0.0
        proba[: trial % 7, 5] = 9.0
        proba = np.round(proba, 1) + 0.01  # ties
        if reference is None:  # ROC AUC: on the probabilities, over the classes of the rows
            present = np.unique(y)
            p = proba[:, present] / np.clip(
                proba[:, present].sum(axis=1, keepdims=True), 1e-12, None
            )
            expected = skm.roc_auc_score(np.searchsorted(present, y), p, multi_class="ovr")
            binary = skm.roc_auc_score(y == 2, proba[:, 2])
            assert METRICS[name](y == 2, proba[:, [0, 2]]) == pytest.approx(binary, abs=1e-12)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # scikit-learn warns of the absent classes
                expected = reference(y, proba.argmax(axis=1))
        assert METRICS[name](y, proba) == pytest.approx(expected, abs=1e-12)


def test_the_pool_takes_the_best_of_each_family_that_is_not_hopeless() -> None:
    from taxonomist.models.search import ENSEMBLE_POOL, TrialRecord, ensemble_pool

    metric = primary_metric(3, "f1_macro")
    scores = {"nb_svm": [0.72, 0.719, 0.718, 0.717, 0.716, 0.715, 0.714, 0.713, 0.712]}
    scores |= {"complement_nb": [0.69], "lightgbm": [0.63], "logreg": [0.40]}
    oof = np.full((4, 3), 1 / 3)
    records = [
        TrialRecord(i, family, {}, score, oof, 1.0, 0.1)
        for i, (family, score) in enumerate((f, s) for f, ss in scores.items() for s in ss)
    ]
    pool = ensemble_pool(records, metric)
    assert len(pool) == ENSEMBLE_POOL
    # LightGBM 12.5 % under the best joins before the NB-SVM copies; logistic regression at
    # 44 % under does not.
    assert {r.family for r in pool} == {"nb_svm", "complement_nb", "lightgbm"}
    assert [r.score for r in pool] == sorted((r.score for r in pool), reverse=True)
