"""Golden tests: every view on the tiny seeded history (tests/conftest.py) gives these rows."""

from __future__ import annotations

import pandas as pd


def test_run_features_golden(wh_seeded):
    rf = wh_seeded.view("run_features")
    assert list(rf.run_id) == ["r1", "r2", "r3", "r4", "r5", "r6", "r7"]
    r1 = rf.iloc[0]
    assert r1.params_num == {"max_depth": 3.0}
    assert r1.params_text == {"criterion": "gini"}
    assert r1.metrics == {"accuracy": 0.90, "log_loss": 0.30}
    assert r1.metrics_by_split == {"valid/accuracy": 0.90, "valid/log_loss": 0.30}
    assert r1.meta_features == {"class_entropy": 1.58, "n_rows": 150.0}
    r6 = rf.iloc[5]
    assert r6.status == "failed" and pd.isna(r6.metrics) and r6.params_num == {"C": 0.1}
    assert rf.iloc[3].meta_features == {"n_rows": 1000.0}


def test_run_features_new_names_appear(wh_seeded):
    wh_seeded.log_run("d1", "rf", {"brand_new": 1.5}, {"f1_macro": 0.7}, run_id="r9")
    r9 = wh_seeded.view("run_features", run_id="r9").iloc[0]
    assert r9.params_num == {"brand_new": 1.5} and r9.metrics == {"f1_macro": 0.7}
    tm = wh_seeded.training_matrix("f1_macro")
    assert list(tm.columns) == [
        "run_id",
        "dataset",
        "model",
        "value",
        "duration_s",
        "seq",
        "params.brand_new",
    ]


def test_dataset_features_golden(wh_seeded):
    df = wh_seeded.view("dataset_features")
    got = df[["dataset", "n_runs", "n_finished", "n_meta_features"]].values.tolist()
    assert got == [["d1", 4, 4, 2], ["d2", 3, 2, 1]]
    assert df.meta_features[1] == {"n_rows": 1000.0}


def test_incumbents_golden(wh_seeded):
    inc = wh_seeded.view("incumbents")
    got = inc[["dataset", "model", "metric", "run_id", "value", "n_runs"]].values.tolist()
    assert got == [
        ["d1", "rf", "accuracy", "r1", 0.90, 3],  # r7 ties at 0.90 but is later
        ["d1", "rf", "log_loss", "r7", 0.20, 3],  # minimize
        ["d1", "svm", "accuracy", "r3", 0.80, 1],
        ["d1", "svm", "log_loss", "r3", 0.50, 1],
        ["d2", "rf", "accuracy", "r4", 0.70, 1],
        ["d2", "rf", "log_loss", "r4", 0.90, 1],
        ["d2", "svm", "accuracy", "r5", 0.75, 1],  # r6 failed: ignored
        ["d2", "svm", "log_loss", "r5", 0.60, 1],
    ]
    assert set(inc.split) == {"valid"}


def test_leaderboard_golden(wh_seeded):
    lb = wh_seeded.view("leaderboard", metric=["log_loss"])
    got = lb[["dataset", "rank", "model", "value"]].values.tolist()
    assert got == [
        ["d1", 1, "rf", 0.20],
        ["d1", 2, "svm", 0.50],
        ["d2", 1, "svm", 0.60],
        ["d2", 2, "rf", 0.90],
    ]


def test_training_matrix_view_golden(wh_seeded):
    tm = wh_seeded.view("training_matrix", metric="accuracy", model="svm")
    assert list(tm.run_id) == ["r3", "r5"]
    assert tm.params_num.tolist() == [{"C": 1.0}, {"C": 10.0}]


def test_training_matrix_api(wh_seeded):
    tm = wh_seeded.training_matrix("log_loss", datasets=["d1"], exclude=None)
    assert list(tm.run_id) == ["r1", "r2", "r3", "r7"]
    assert list(tm.columns[:6]) == ["run_id", "dataset", "model", "value", "duration_s", "seq"]
    assert tm["params.C"].isna().tolist() == [True, True, False, True]
    assert wh_seeded.training_matrix("log_loss", exclude=["d1"]).run_id.tolist() == ["r4", "r5"]
    assert wh_seeded.training_matrix("nope").empty


def test_view_filters(wh_seeded):
    assert len(wh_seeded.view("run_features", dataset="d2", model=["svm"])) == 2
    import pytest

    from warehouse.errors import NotFoundError, ValidationError

    with pytest.raises(ValidationError, match="unknown filter column"):
        wh_seeded.view("run_features", colour="red")
    with pytest.raises(NotFoundError, match="no view named"):
        wh_seeded.view("runs_table")
