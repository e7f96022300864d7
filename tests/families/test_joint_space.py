"""JointSpace and family resolution: a model choice with per-family conditional spaces."""

from __future__ import annotations

import pytest

from metaopt_bayes.families import JointSpace, resolve_families, zoo_families
from warehouse.errors import NotFoundError, ValidationError


def test_zoo_families_follow_the_task():
    cls, reg = zoo_families("classification"), zoo_families("regression")
    assert "logistic_regression" in cls and "logistic_regression" not in reg
    assert "ridge" in reg and "ridge" not in cls
    assert {"mlp", "random_forest", "hist_gradient_boosting"} <= set(cls) & set(reg)


def test_resolve_families_checks_names_and_task():
    assert resolve_families(None, "regression") == zoo_families("regression")
    assert resolve_families(["knn", "mlp", "knn"]) == ["knn", "mlp"]
    with pytest.raises(NotFoundError, match="'nope'"):
        resolve_families(["knn", "nope"])
    with pytest.raises(ValidationError, match=r"ridge.*classification"):
        resolve_families(["ridge"], "classification")
    with pytest.raises(ValidationError, match="empty"):
        resolve_families([])


def test_sample_is_stratified_and_conditional_per_family():
    js = JointSpace.from_families(["svc", "mlp", "knn"])
    df = js.sample(8, seed=1)
    assert df["model"].value_counts().to_dict() == {"svc": 8, "mlp": 8, "knn": 8}
    mlp = df[df["model"] == "mlp"]
    # the architecture is searched: layers, width and activation vary
    assert mlp["n_layers"].nunique() > 1 and mlp["width"].nunique() > 1
    assert set(mlp["activation"]) <= {"relu", "tanh", "logistic"}
    # parameters of other families are unset on mlp rows, and vice versa
    assert mlp["kernel"].isna().all() and mlp["n_neighbors"].isna().all()
    assert df[df["model"] == "knn"]["width"].isna().all()
    # svc's own conditional: degree only for the poly kernel
    svc = df[df["model"] == "svc"]
    assert svc.loc[svc["kernel"] != "poly", "degree"].isna().all()


def test_validate_names_the_fault():
    js = JointSpace.from_families(["knn", "svc"])
    ok = js.validate({"model": "knn", "n_neighbors": 7, "weights": "uniform", "p": 2})
    assert ok["model"] == "knn" and ok["n_neighbors"] == 7
    with pytest.raises(ValidationError, match="model 'mlp'"):
        js.validate({"model": "mlp"})
    with pytest.raises(ValidationError, match="'kernel' does not belong to model 'knn'"):
        js.validate({"model": "knn", "n_neighbors": 7, "weights": "uniform", "p": 2,
                     "kernel": "rbf"})  # fmt: skip
    with pytest.raises(ValidationError, match="n_neighbors"):
        js.validate({"model": "knn", "n_neighbors": 0, "weights": "uniform", "p": 2})


def test_candidates_refine_around_each_familys_incumbents():
    js = JointSpace.from_families(["knn", "logistic_regression"])
    inc = {"knn": [{"n_neighbors": 3, "weights": "distance", "p": 1}]}
    c = js.candidates(16, seed=0, incumbents=inc, n_local=10)
    knn = c[c["model"] == "knn"]
    assert len(knn) > len(c[c["model"] == "logistic_regression"])  # neighbours added
    assert set(js.names[:1]) == {"model"} and "C" in js.names
