"""Storage contract: the same reads give the same answers on in-memory, file-backed and
read-only warehouses; writes are refused on read-only ones."""

from __future__ import annotations

import pandas as pd
import pytest

from warehouse import Warehouse
from warehouse.errors import MetaoptError
from warehouse.store import ReadOnlyWarehouseError


@pytest.fixture(params=["memory", "file", "read_only"])
def seeded(request, tmp_path, tiny_history, tiny_meta_features):
    def _seed(wh: Warehouse) -> None:
        wh.log_runs(tiny_history)
        wh.log_dataset_meta_features(tiny_meta_features)

    if request.param == "memory":
        wh = Warehouse(":memory:")
        _seed(wh)
    else:
        path = tmp_path / "contract.duckdb"
        with Warehouse(path) as writer:
            _seed(writer)
        wh = Warehouse(path, read_only=request.param == "read_only")
    yield wh
    wh.close()


def test_counts(seeded):
    counts = seeded.sql(
        "SELECT (SELECT count(*) FROM runs) AS runs, (SELECT count(*) FROM run_params) AS params,"
        " (SELECT count(*) FROM run_metrics) AS metrics, (SELECT count(*) FROM datasets) AS ds"
    ).iloc[0]
    # params: max_depth 4 rf runs, criterion 4, C 3; metrics: 6 finished x 2
    assert counts.to_dict() == {"runs": 7, "params": 11, "metrics": 12, "ds": 2}


def test_incumbents_same_everywhere(seeded):
    inc = seeded.view("incumbents", metric="accuracy")
    assert list(zip(inc.dataset, inc.model, inc.run_id, strict=True)) == [
        ("d1", "rf", "r1"),
        ("d1", "svm", "r3"),
        ("d2", "rf", "r4"),
        ("d2", "svm", "r5"),
    ]


def test_training_matrix(seeded):
    tm = seeded.training_matrix("accuracy", model="rf")
    assert list(tm.run_id) == ["r1", "r2", "r4", "r7"]
    assert list(tm["params.max_depth"]) == [3.0, 5.0, 4.0, 8.0]
    assert list(tm["params.criterion"]) == ["gini", "entropy", "gini", "gini"]
    assert "params.C" not in tm.columns


def test_meta_features(seeded):
    mf = seeded.meta_features()
    assert list(mf.index) == ["d1", "d2"]
    assert mf.loc["d1", "n_rows"] == 150.0
    assert pd.isna(mf.loc["d2", "class_entropy"])


def test_audits_pass(seeded):
    report = seeded.check()
    assert report["ok"].all(), report[~report["ok"]]
    assert len(report) >= 8


def test_schema_version(seeded):
    assert seeded.schema_version >= 1


def test_write_refused_only_when_read_only(seeded, tiny_history):
    if seeded.read_only:
        with pytest.raises(ReadOnlyWarehouseError):
            seeded.log_run("d1", "rf", {}, {"accuracy": 0.5})
        with pytest.raises(MetaoptError):
            seeded.log_runs(tiny_history.assign(run_id=lambda d: d.run_id + "x"))
        assert int(seeded.sql("SELECT count(*) AS n FROM runs").n[0]) == 7
    else:
        seeded.log_run("d1", "rf", {"max_depth": 2}, {"accuracy": 0.5}, run_id="new")
        assert int(seeded.sql("SELECT count(*) AS n FROM runs").n[0]) == 8


def test_user_sql_cannot_write(seeded):
    with pytest.raises(MetaoptError):
        seeded.sql("DELETE FROM runs")
    assert int(seeded.sql("SELECT count(*) AS n FROM runs").n[0]) == 7


def test_typed_reads_same_everywhere(seeded):
    assert seeded.dataset_names() == ["d1", "d2"] and seeded.model_names() == ["rf", "svm"]
    assert seeded.count_runs(model="svm", status="finished") == 2
    assert list(seeded.trials("d2").run_id) == ["r4", "r5", "r6"]
    assert seeded.finished_configs("d2", "svm") == [{"C": 10.0}]
    assert seeded.latest_run("d1", "rf", split="valid")["run_id"] == "r7"
    assert seeded.metric_counts() == {"accuracy": 6, "log_loss": 6}
    assert seeded.dataset_task("d1") is None and seeded.meta_models().empty
    assert seeded.has_dataset("d2") and seeded.metric_direction("log_loss") == "minimize"
