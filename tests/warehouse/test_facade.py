"""The facade's typed reads for the search loop and the CLI: each one against known rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from warehouse.errors import NotFoundError, ValidationError

TRIAL, FINAL = "metaopt-optimize", "metaopt-final"


#: runs on d3, logged in this order (seq 8 …): run_id, model, params, metrics, run fields
D3_RUNS = [
    ("t1", "rf", {"max_depth": 2, "criterion": "gini"}, {"accuracy": 0.6}, {"source": TRIAL}),
    ("t2", "svm", {"C": 1.0, "shrinking": True}, {"accuracy": 0.7}, {"source": TRIAL}),
    ("t3", "rf", {"max_depth": None}, {}, {"source": TRIAL, "status": "failed"}),
    ("t4", "rf", {}, {"accuracy": 0.65}, {"source": TRIAL}),
    (
        "f1",
        "rf",
        {"max_depth": 2, "criterion": "gini"},
        {"accuracy": 0.61, "f1": 0.5},
        {"source": FINAL, "seed": 0, "split": "test"},
    ),
    (
        "f2",
        "rf",
        {"max_depth": 3, "criterion": "gini"},
        {"accuracy": 0.62},
        {"source": FINAL, "seed": 1, "split": "test"},
    ),
    ("f3", "rf", {"max_depth": 9}, {}, {"source": FINAL, "seed": 0, "status": "failed"}),
]


@pytest.fixture
def wh(wh_seeded):
    """tiny_history (r1..r7 on d1/d2) plus optimize trials and retrained winners on d3."""
    for run_id, model, params, metrics, fields in D3_RUNS:
        wh_seeded.log_run("d3", model, params, metrics, run_id=run_id, **fields)
    return wh_seeded


def test_dataset_and_model_names(wh):
    wh.log_dataset_meta_features(pd.DataFrame({"dataset": ["a0"], "n_rows": [5.0]}))
    assert wh.dataset_names() == ["a0", "d1", "d2", "d3"]
    assert wh.model_names() == ["rf", "svm"]


def test_count_runs_filters(wh):
    assert wh.count_runs() == 14
    assert wh.count_runs(dataset="d1") == 4
    assert wh.count_runs(dataset="d3", model="rf") == 6
    assert wh.count_runs(model=["svm"]) == 4
    assert wh.count_runs(model=["rf", "svm"], exclude=["d3"], status="finished") == 6
    assert wh.count_runs(model="svm", exclude=["d1"], status="finished") == 2
    assert wh.count_runs(source=FINAL) == 3
    assert wh.count_runs(dataset="d3", source=TRIAL, status="failed") == 1
    assert wh.count_runs(model=[]) == 0
    assert wh.count_runs(exclude=[]) == 14
    assert wh.count_runs(dataset="d'3") == 0  # bound, not formatted into the SQL
    with pytest.raises(ValidationError, match="not a string"):
        wh.count_runs(exclude="d1")


def test_trials_oldest_first(wh):
    got = wh.trials("d3", model=["rf", "svm"], source=TRIAL)
    assert list(got.columns) == ["run_id", "model", "status", "seq"]
    assert got.values.tolist() == [
        ["t1", "rf", "finished", 8],
        ["t2", "svm", "finished", 9],
        ["t3", "rf", "failed", 10],
        ["t4", "rf", "finished", 11],
    ]
    assert list(wh.trials("d3", model="rf", source=TRIAL).run_id) == ["t1", "t3", "t4"]
    assert list(wh.trials("d3").run_id) == ["t1", "t2", "t3", "t4", "f1", "f2", "f3"]
    assert wh.trials("d1", source=TRIAL).empty


def test_finished_configs_values_as_stored(wh):
    wh.log_run("d3", "svm", {"C": 0.5, "kernel": "rbf", "gamma": None}, {"accuracy": 0.5})
    assert wh.finished_configs("d3", "rf") == [
        {"criterion": "gini", "max_depth": 2.0},  # t1 (t3 failed)
        {},  # t4: no parameters
        {"criterion": "gini", "max_depth": 2.0},  # f1
        {"criterion": "gini", "max_depth": 3.0},  # f2
    ]
    svm = wh.finished_configs("d3", "svm")
    assert svm == [{"C": 1.0, "shrinking": 1.0}, {"C": 0.5, "gamma": None, "kernel": "rbf"}]
    assert all(type(v) in (float, str, type(None)) for cfg in svm for v in cfg.values())
    assert wh.finished_configs("d1", "svm") == [{"C": 1.0}]
    assert wh.finished_configs("nope", "rf") == []


def test_latest_run_with_params_and_metrics(wh):
    got = wh.latest_run("d3", "rf", source=FINAL, seed=0)  # f3 is newer but failed
    assert got == {
        "run_id": "f1",
        "seq": 12,
        "params": {"criterion": "gini", "max_depth": 2.0},
        "metrics": {"accuracy": 0.61, "f1": 0.5},
    }
    assert wh.latest_run("d3", "rf", source=FINAL)["run_id"] == "f2"
    assert wh.latest_run("d3", "rf", source=FINAL, seed=1)["metrics"] == {"accuracy": 0.62}
    assert wh.latest_run("d3", "rf", source=FINAL, seed=2) is None
    assert wh.latest_run("d3", "svm", source=FINAL) is None
    valid = wh.latest_run("d3", "rf", source=TRIAL, split="valid")
    assert valid == {"run_id": "t4", "seq": 11, "params": {}, "metrics": {"accuracy": 0.65}}
    assert wh.latest_run("d3", "rf", source=TRIAL)["metrics"] == {}  # nothing on 'test'


def test_metric_counts(wh):
    assert wh.metric_counts() == {"accuracy": 11, "log_loss": 6, "f1": 1}
    assert list(wh.metric_counts()) == ["accuracy", "log_loss", "f1"]
    assert wh.metric_counts("svm") == {"accuracy": 3, "log_loss": 2}
    assert wh.metric_counts("nope") == {}


def test_meta_models_filters_newest_first(wh_memory):
    ids = [
        wh_memory.record_meta_model(metric="accuracy", model_family="rf", method="map"),
        wh_memory.record_meta_model(
            metric="accuracy", model_family="rf", method="nuts", path="/m/rf.nc"
        ),
        wh_memory.record_meta_model(metric="rmse", model_family="svm", method="map"),
    ]
    every = wh_memory.meta_models()
    assert list(every.model_id) == ids[::-1]
    assert {"model_id", "created_at", "config", "diagnostics", "path"} <= set(every.columns)
    assert list(wh_memory.meta_models(metric="accuracy").model_id) == ids[1::-1]
    assert list(wh_memory.meta_models(model_family="svm").model_id) == [ids[2]]
    assert list(wh_memory.meta_models("accuracy", "rf", saved_only=True).model_id) == [ids[1]]
    assert list(wh_memory.meta_models(id_prefix=ids[0][:10]).model_id) == [ids[0]]
    assert wh_memory.meta_models(metric="f1").empty


def test_dataset_task_info_and_frame(wh):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=40), "y": rng.normal(size=40)})
    wh.register_dataset("reg", frame, target="y", task="regression")
    assert wh.dataset_task("reg") == "regression"
    assert wh.dataset_task("d1") is None  # created by ingest: name only
    assert wh.dataset_task("nope") is None
    info = wh.dataset_info("reg")
    assert (info["task"], info["n_rows"], info["n_features"], info["target"]) == (
        "regression",
        40,
        1,
        "y",
    )
    assert info["n_meta_features"] > 0
    assert wh.dataset_info("d1")["n_features"] is None
    with pytest.raises(NotFoundError):
        wh.dataset_info("nope")
    got, target, task = wh.dataset_frame("reg")
    pd.testing.assert_frame_equal(got, frame)
    assert (target, task) == ("y", "regression")
