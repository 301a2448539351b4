"""Training end to end on real data, the registry round trip and model behaviour."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import taxonomist
from taxonomist import registry
from taxonomist.errors import InvalidParameterError, ModelNotFoundError, SchemaMismatchError
from taxonomist.models.train import train

from .conftest import shared


def test_same_trials_same_model(rakuten: pd.DataFrame, home) -> None:
    kwargs = dict(trials=5, register=False, families=["linear_svm", "complement_nb", "lightgbm"])
    a = train(rakuten, "prdtypecode", **kwargs)
    b = train(rakuten, "prdtypecode", **kwargs)
    assert a.metrics["primary"] == b.metrics["primary"]
    pa = a.model.predict_proba(rakuten.head(50)).to_numpy()
    pb = b.model.predict_proba(rakuten.head(50)).to_numpy()
    # Identical up to float32 summation noise of threaded BLAS.
    assert np.allclose(pa, pb, rtol=1e-4, atol=1e-5)
    assert (pa.argmax(axis=1) == pb.argmax(axis=1)).all()
    assert a.metrics["n_trials"] == 5


def test_trained_model_beats_tfidf_logreg_baseline_on_holdout(rakuten: pd.DataFrame, home) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import train_test_split

    tr, te = train_test_split(
        rakuten,
        test_size=0.3,
        random_state=0,
        stratify=rakuten["prdtypecode"].where(
            rakuten["prdtypecode"].map(rakuten["prdtypecode"].value_counts()) > 3, 0
        ),
    )
    text = lambda d: d["designation"].fillna("") + " " + d["description"].fillna("")  # noqa: E731
    vec = TfidfVectorizer()
    base = LogisticRegression(max_iter=1000).fit(vec.fit_transform(text(tr)), tr["prdtypecode"])
    base_f1 = f1_score(te["prdtypecode"], base.predict(vec.transform(text(te))), average="macro")
    result = train(tr, "prdtypecode", time_budget=40, register=False)
    ours = result.model.evaluate(te)
    assert ours["f1_macro"] > base_f1 + 0.05, (ours["f1_macro"], base_f1)
    assert result.train_seconds < 40 * 1.2


def test_binary_ctr_task_uses_roc_auc_and_tabular_families(home) -> None:
    df = pd.read_csv(shared("avazu/train.csv"))
    valid = pd.read_csv(shared("avazu/valid.csv"))
    result = train(df, "click", trials=6, register=False)
    assert result.metrics["primary_metric"] == "roc_auc"
    assert result.metrics["roc_auc"] > 0.66
    scores = result.model.evaluate(valid)
    assert scores["roc_auc"] > 0.62
    assert scores["log_loss"] < 0.5
    assert {m.family for m in result.model.members} <= {
        "lightgbm",
        "catboost",
        "linear_svm",
        "logreg",
    }
    proba = result.model.predict_proba(valid)
    assert list(proba.columns) == ["0", "1"]
    # calibrated: the mean predicted click rate is close to the observed one
    assert abs(proba["1"].mean() - valid["click"].mean()) < 0.05


def test_register_load_champion_and_pyfunc(rakuten: pd.DataFrame, home) -> None:
    first = train(
        rakuten, "prdtypecode", trials=4, name="products", families=["linear_svm", "complement_nb"]
    )
    assert (first.version, first.promoted) == (1, True)
    weaker = train(rakuten, "prdtypecode", trials=1, name="products", families=["complement_nb"])
    assert (weaker.version, weaker.promoted) == (2, False)
    assert "does not beat champion version 1" in weaker.promotion_reason
    other_rows = train(
        rakuten.iloc[:-20],
        "prdtypecode",
        trials=4,
        name="products",
        families=["linear_svm", "complement_nb"],
    )
    assert not other_rows.promoted
    assert "validated differently" in other_rows.promotion_reason
    forced = train(
        rakuten, "prdtypecode", trials=1, name="products", families=["complement_nb"], promote=True
    )
    assert forced.promoted and forced.version == 4
    assert int(registry.resolve("products").version) == 4
    assert int(registry.resolve("products/1").version) == 1
    registry.set_alias("products/1")
    model = taxonomist.load("products@champion")
    assert model.info["registry"] == {"name": "products", "version": 1}
    labels = model.predict(rakuten.head(20))
    assert (labels == first.model.predict(rakuten.head(20))).all()

    import mlflow.pyfunc

    pyfunc = mlflow.pyfunc.load_model("models:/products@champion")
    out = pyfunc.predict(rakuten.head(5)[["designation", "description"]])
    assert out.columns[0] == "prediction"
    assert np.allclose(out.filter(like="proba_").sum(axis=1), 1.0, atol=1e-4)

    listing = registry.list_models()
    assert [v["version"] for v in listing[0]["versions"]] == [4, 3, 2, 1]
    assert listing[0]["versions"][3]["aliases"] == ["champion"]
    registry.delete("products/2")
    assert [v["version"] for v in registry.list_models()[0]["versions"]] == [4, 3, 1]
    registry.delete("products")
    with pytest.raises(ModelNotFoundError, match="No model version matches 'products'"):
        taxonomist.load("products")


def test_prediction_input_errors(rakuten: pd.DataFrame, home) -> None:
    model = train(rakuten, "prdtypecode", trials=2, register=False, families=["linear_svm"]).model
    with pytest.raises(SchemaMismatchError, match=r"lacks 1 column.*'description'"):
        model.predict(rakuten[["designation"]])
    with pytest.raises(SchemaMismatchError, match="must be JSON objects"):
        model.predict([1, 2])  # type: ignore[list-item]
    # empty and missing texts are valid input and still get a label
    out = model.predict_frame([{"designation": "", "description": None}])
    assert out["prediction"].notna().all()
    with pytest.raises(InvalidParameterError, match=r"'trials' parameter must be an int"):
        train(rakuten, "prdtypecode", trials=0)
    with pytest.raises(InvalidParameterError, match="'metric' parameter must be one of"):
        train(rakuten, "prdtypecode", trials=1, metric="f2", register=False)


def test_model_behaviour_on_toy_data(toy: pd.DataFrame, home) -> None:
    model = train(toy, "label", trials=3, register=False, families=["linear_svm"]).model
    # minimum functionality
    assert (
        model.predict({"title": "pasta recipe with garlic sauce", "store": "eu", "price": 3})[0]
        == "cooking"
    )
    # invariance: letter case and extra spaces do not change the label
    a = model.predict({"title": "Football MATCH  score", "store": "us", "price": 1})[0]
    b = model.predict({"title": "football match score", "store": "us", "price": 1})[0]
    assert a == b == "sport"
    # direction: adding a strong finance word raises the finance probability
    base = model.predict_proba({"title": "tennis match and goal", "store": "us", "price": 1})
    more = model.predict_proba(
        {"title": "tennis match and goal bank loan", "store": "us", "price": 1}
    )
    assert more["finance"][0] > base["finance"][0]
    assert more["sport"][0] < base["sport"][0]
    why = model.explain({"title": "invest in stock", "store": "eu", "price": 2})
    assert why["label"] == "finance"
    top_words = [w["name"] for w in why["words"][:3]]
    assert any("stock" in w or "invest" in w for w in top_words)


def test_time_budget_is_kept(home) -> None:
    df = pd.read_csv(shared("womens_clothing/reviews.csv")).sample(6000, random_state=0)
    result = train(df, "Recommended IND", time_budget=30, register=False)
    assert result.train_seconds < 30 * 1.2
    assert result.metrics["roc_auc"] > 0.9
