"""Trainer: metrics equal sklearn.metrics called directly; measurements; failure handling."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from metaopt_bayes.trainer import _Meter, evaluate, make_payload, run_trial
from metaopt_bayes.zoo import FAMILIES, get_family
from warehouse.errors import NotFoundError, ValidationError


def test_binary_holdout_metrics_equal_sklearn():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    got = evaluate(
        X, y, "classification", "logistic_regression", {"C": 0.5, "max_iter": 2000}, cv=0.3, seed=7
    )
    tr, te = train_test_split(np.arange(len(y)), test_size=0.3, random_state=7, stratify=y)
    from sklearn.linear_model import LogisticRegression

    est = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000, random_state=7))
    est.fit(X.iloc[tr], y.iloc[tr])
    pred, proba = est.predict(X.iloc[te]), est.predict_proba(X.iloc[te])
    yt = y.iloc[te]
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(yt, pred))
    assert got["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(yt, pred))
    assert got["precision_macro"] == pytest.approx(skm.precision_score(yt, pred, average="macro"))
    assert got["recall_macro"] == pytest.approx(skm.recall_score(yt, pred, average="macro"))
    assert got["f1_macro"] == pytest.approx(skm.f1_score(yt, pred, average="macro"))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(yt, proba[:, 1]))
    assert got["log_loss"] == pytest.approx(skm.log_loss(yt, proba))


def test_multiclass_cv_metrics_are_fold_means_of_sklearn():
    X, y = load_iris(return_X_y=True, as_frame=True)
    got = evaluate(
        X,
        y,
        "classification",
        "knn",
        {"n_neighbors": 15, "weights": "uniform", "p": 2},
        cv=4,
        seed=3,
    )
    acc, f1, auc, ll = [], [], [], []
    for tr, te in StratifiedKFold(4, shuffle=True, random_state=3).split(X, y):
        est = make_pipeline(StandardScaler(), KNeighborsClassifier(15))
        est.fit(X.iloc[tr], y.iloc[tr])
        pred, proba = est.predict(X.iloc[te]), est.predict_proba(X.iloc[te])
        acc.append(skm.accuracy_score(y.iloc[te], pred))
        f1.append(skm.f1_score(y.iloc[te], pred, average="macro"))
        auc.append(skm.roc_auc_score(y.iloc[te], proba, multi_class="ovr", average="macro"))
        ll.append(skm.log_loss(y.iloc[te], proba, labels=[0, 1, 2]))
    assert got["accuracy"] == pytest.approx(np.mean(acc))
    assert got["f1_macro"] == pytest.approx(np.mean(f1))
    assert got["roc_auc"] == pytest.approx(np.mean(auc))
    assert got["log_loss"] == pytest.approx(np.mean(ll))


def test_string_labels_and_no_predict_proba():
    X, y = load_iris(return_X_y=True, as_frame=True)
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    got = evaluate(
        X, labels, "classification", "svc", {"C": 1.0, "kernel": "linear", "max_iter": 20000}, cv=3
    )
    assert got["accuracy"] > 0.9
    assert "log_loss" not in got  # SVC without probabilities has no log-loss
    assert 0.5 < got["roc_auc"] <= 1.0  # from decision scores
    cfg = {"C": 1.0, "kernel": "linear", "max_iter": 20000, "probability": True}
    calibrated = evaluate(X, labels, "classification", "svc", cfg, cv=3)
    assert 0 < calibrated["log_loss"] < 1.0 and calibrated["roc_auc"] > 0.9


def test_regression_metrics_equal_sklearn():
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    got = evaluate(X, y, "regression", "ridge", {"alpha": 1.0}, cv=5, seed=0)
    from sklearn.linear_model import Ridge

    rmse, mae, r2 = [], [], []
    for tr, te in KFold(5, shuffle=True, random_state=0).split(X):
        est = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(X.iloc[tr], y.iloc[tr])
        p = est.predict(X.iloc[te])
        rmse.append(math.sqrt(skm.mean_squared_error(y.iloc[te], p)))
        mae.append(skm.mean_absolute_error(y.iloc[te], p))
        r2.append(skm.r2_score(y.iloc[te], p))
    assert got == pytest.approx({"rmse": np.mean(rmse), "mae": np.mean(mae), "r2": np.mean(r2)})


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_trains_with_a_sampled_default_config(name):
    fam = get_family(name)
    task = "classification" if fam.supports("classification") else "regression"
    X, y = (load_iris if task == "classification" else load_diabetes)(
        return_X_y=True, as_frame=True
    )
    cfg = fam.default_space(task).sample(1, seed=2).iloc[0].to_dict()
    res = run_trial(make_payload(X.iloc[:120], y.iloc[:120].to_numpy(), task, name, cfg, cv=3))
    assert res["status"] == "finished", res["error"]
    assert res["duration_s"] > 0 and res["cpu_s"] >= 0 and res["peak_mem_mb"] >= 0
    arch = fam.architecture(cfg)
    assert arch["kind"] == fam.kind


def test_mlp_architecture_is_searchable_and_recorded():
    fam = get_family("mlp")
    cfg = {
        "n_layers": 3,
        "width": 32,
        "activation": "tanh",
        "alpha": 1e-4,
        "learning_rate_init": 1e-3,
        "max_iter": 200,
        "early_stopping": True,
    }
    est = fam.make_estimator(cfg, "classification", seed=0)
    assert est.hidden_layer_sizes == (32, 32, 32) and est.activation == "tanh"
    assert fam.architecture(cfg) == {
        "kind": "neural_net",
        "ensemble": 0,
        "n_layers": 3,
        "width": 32,
        "activation": "tanh",
        "n_hidden_units": 96,
    }
    space = fam.default_space("classification")
    assert space["n_layers"].low == 1 and space["n_layers"].high == 3
    assert space["width"].log and (space["width"].low, space["width"].high) == (16, 256)


def test_unknown_model_and_unsupported_task():
    with pytest.raises(NotFoundError, match="unknown model 'gbm'"):
        get_family("gbm")
    with pytest.raises(ValidationError, match="does not support regression"):
        get_family("logistic_regression").default_space("regression")


def test_raising_config_is_a_failed_result_not_an_exception():
    X, y = load_iris(return_X_y=True, as_frame=True)
    res = run_trial(make_payload(X, y.to_numpy(), "classification", "svc", {"C": -1.0}))
    assert res["status"] == "failed"
    assert "InvalidParameterError" in res["error"] and "'C'" in res["error"]
    assert res["metrics"] == {}
    res = run_trial(make_payload(X, y.to_numpy(), "classification", "knn", {"leaf": 3}))
    assert res["status"] == "failed" and "no parameter 'leaf'" in res["error"]


def test_timeout_kills_the_fit():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    slow = {
        "n_layers": 3,
        "width": 256,
        "max_iter": 5000,
        "alpha": 1e-6,
        "learning_rate_init": 1e-4,
        "early_stopping": False,
    }
    import time

    t0 = time.perf_counter()
    res = run_trial(
        make_payload(X, y.to_numpy(), "classification", "mlp", slow, cv=5, timeout_s=1.5)
    )
    assert res["status"] == "failed" and "time limit of 1.5 s" in res["error"]
    assert time.perf_counter() - t0 < 30
    ok = run_trial(
        make_payload(
            X.iloc[:100],
            y.to_numpy()[:100],
            "classification",
            "knn",
            {"n_neighbors": 3},
            cv=3,
            timeout_s=60,
        )
    )
    assert ok["status"] == "finished" and ok["metrics"]["accuracy"] > 0.7


def test_meter_sees_cpu_and_peak_memory():
    with _Meter() as m:
        block = np.ones(60 * 2**20 // 8)  # 60 MiB touched
        block.sum()
        x = 0.0
        for i in range(300_000):
            x += i
    del block
    assert m.peak_mem_mb > 45
    assert m.cpu_s > 0 and m.duration_s >= m.cpu_s * 0.5
    with _Meter() as small:
        sum(range(1000))
    assert small.peak_mem_mb < 20


def test_fold_missing_a_class_scores_log_loss_and_auc_like_sklearn():
    from metaopt_bayes.trainer import classification_metrics

    # 3 classes in the dataset, class 2 absent from this validation fold
    y_true = np.array([0, 0, 1, 1, 0, 1])
    proba = np.array(
        [
            [0.7, 0.2, 0.1],
            [0.5, 0.4, 0.1],
            [0.2, 0.7, 0.1],
            [0.3, 0.3, 0.4],
            [0.6, 0.3, 0.1],
            [0.1, 0.8, 0.1],
        ]
    )
    pred = proba.argmax(axis=1)
    got = classification_metrics(y_true, pred, proba, None, 3)
    assert got["log_loss"] == pytest.approx(skm.log_loss(y_true, proba, labels=[0, 1, 2]))
    aucs = [skm.roc_auc_score(y_true == k, proba[:, k]) for k in (0, 1)]
    assert got["roc_auc"] == pytest.approx(np.mean(aucs))
    assert got["f1_macro"] == pytest.approx(skm.f1_score(y_true, pred, average="macro"))


def test_class_missing_from_a_training_fold_does_not_crash_decision_scores():
    # class 3 has a single row: the fold that validates it never trained on it
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=61), "b": rng.normal(size=61)})
    y = np.array([0] * 20 + [1] * 20 + [2] * 20 + [3])
    got = evaluate(X, y, "classification", "svc", {"kernel": "rbf"}, cv=3, seed=0)
    assert 0.0 <= got["roc_auc"] <= 1.0 and math.isfinite(got["roc_auc"])


def test_string_categorical_features_with_missing_values_train():
    rng = np.random.default_rng(1)
    n = 90
    y = rng.integers(0, 2, n)
    cat = np.where(y == 1, "yes", "no").astype(object)
    cat[rng.random(n) < 0.2] = None
    X = pd.DataFrame(
        {
            "num": rng.normal(size=n),
            "cat": pd.array(cat, dtype="string"),  # pd.NA for missing, as DuckDB loads it
            "flag": pd.array(rng.random(n) > 0.5, dtype="boolean"),
        }
    )
    for model in ("logistic_regression", "hist_gradient_boosting", "knn"):
        res = run_trial(make_payload(X, y, "classification", model, {}, cv=3))
        assert res["status"] == "finished", res["error"]
    # the category carries the label: a linear model must find it
    assert evaluate(X, y, "classification", "logistic_regression", {}, cv=3)["accuracy"] > 0.75


def test_isolated_and_in_process_trials_measure_the_same_peak_memory():
    # a freshly forked worker first faults in library code and grows its heap; that
    # one-off cost (~15 MB before) must not be charged to the configuration
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    cfg = {"n_neighbors": 5}
    local = run_trial(make_payload(X, y.to_numpy(), "classification", "knn", cfg, cv=3))
    child = run_trial(
        make_payload(X, y.to_numpy(), "classification", "knn", cfg, cv=3, timeout_s=120)
    )
    assert local["status"] == child["status"] == "finished"
    assert abs(child["peak_mem_mb"] - local["peak_mem_mb"]) < 4


def test_a_rare_class_keeps_the_folds_stratified():
    from metaopt_bayes.trainer import _splits

    y = np.array([0] * 40 + [1] * 40 + [2] * 2)
    folds = _splits(y, "classification", 5, seed=0)
    expected = StratifiedKFold(5, shuffle=True, random_state=0).split(np.zeros(len(y)), y)
    for (_, te), (_, te2) in zip(folds, expected, strict=True):
        np.testing.assert_array_equal(te, te2)
        assert np.bincount(y[te], minlength=3)[:2].tolist() == [8, 8]  # balanced majority
