"""Locking (one writer process; no mixed modes in one process) and ingest round-trip
properties."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warehouse import Warehouse
from warehouse.errors import (
    NotFoundError,
    SchemaVersionError,
    ValidationError,
    WarehouseBusyError,
)


def test_second_process_is_refused_while_writer_open(tmp_path):
    path = tmp_path / "busy.duckdb"
    code = (
        "import sys\nfrom warehouse import Warehouse\n"
        "from warehouse.errors import WarehouseBusyError\n"
        "try:\n    Warehouse(sys.argv[1], read_only=True)\n"
        "except WarehouseBusyError as e:\n    print('BUSY', e)\n"
    )
    with Warehouse(path):
        out = subprocess.run(
            [sys.executable, "-c", code, str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            env={"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin"},
        )
    assert out.stdout.startswith("BUSY"), out.stderr[-500:]
    assert "another process" in out.stdout


def test_read_only_while_open_read_write_in_same_process(tmp_path):
    path = tmp_path / "same.duckdb"
    with Warehouse(path) as wh:
        wh.log_run("d", "m", {}, {"accuracy": 0.5})
        with pytest.raises(WarehouseBusyError, match="already open in this process"):
            Warehouse(path, read_only=True)
        # a second read-write handle shares the database instance
        with Warehouse(path) as other:
            assert int(other.sql("SELECT count(*) AS n FROM runs").n[0]) == 1


def test_read_only_missing_and_memory(tmp_path):
    with pytest.raises(NotFoundError, match="does not exist"):
        Warehouse(tmp_path / "nope.duckdb", read_only=True)
    with pytest.raises(ValidationError, match="in-memory"):
        Warehouse(":memory:", read_only=True)
    with pytest.raises(NotFoundError, match="folder"):
        Warehouse(tmp_path / "no" / "such" / "dir.duckdb")


def test_paths_that_are_not_warehouses_are_named(tmp_path):
    csv = tmp_path / "runs.csv"
    csv.write_text("dataset,model\niris,knn\n")
    for read_only in (False, True):
        with pytest.raises(SchemaVersionError, match="is not a DuckDB warehouse file"):
            Warehouse(csv, read_only=read_only)
    assert csv.read_text() == "dataset,model\niris,knn\n"
    with pytest.raises(ValidationError, match="is a folder, not a DuckDB file"):
        Warehouse(tmp_path)
    with pytest.raises(ValidationError, match="must be a file path, not int"):
        Warehouse(5)


def test_closed_warehouse(tmp_path):
    wh = Warehouse(":memory:")
    wh.close()
    wh.close()  # idempotent
    with pytest.raises(ValidationError, match="closed"):
        wh.log_run("d", "m", {}, {})


names = st.text(alphabet="abcdefghij_", min_size=1, max_size=6)
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
param_values = st.one_of(
    st.none(), finite, st.booleans(), st.text(alphabet="xyz", min_size=1, max_size=4)
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    params=st.dictionaries(names, param_values, max_size=5),
    metrics=st.dictionaries(names, finite, max_size=4),
)
def test_log_run_roundtrip_property(params, metrics):
    with Warehouse(":memory:") as wh:
        run_id = wh.log_run("ds", "model", params, metrics)
        row = wh.view("run_features", run_id=run_id).iloc[0]
        got_num = row.params_num if isinstance(row.params_num, dict) else {}
        got_text = row.params_text if isinstance(row.params_text, dict) else {}
        for name, value in params.items():
            if value is None:
                assert name not in got_num and name not in got_text
            elif isinstance(value, str):
                assert got_text[name] == value
            else:
                assert math.isclose(got_num[name], float(value))
        got_metrics = row.metrics if isinstance(row.metrics, dict) else {}
        assert got_metrics.keys() == metrics.keys()
        for name, value in metrics.items():
            assert math.isclose(got_metrics[name], value)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), finite), min_size=1, max_size=30))
def test_incumbent_is_best_property(rows):
    df = pd.DataFrame(
        {
            "dataset": [d for d, _ in rows],
            "model": "m",
            # unbounded names (accuracy must lie in [0, 1]): maximized, and minimized (a loss)
            "metrics.score": [v for _, v in rows],
            "metrics.loss": [v for _, v in rows],
        }
    )
    with Warehouse(":memory:") as wh:
        wh.log_runs(df)
        inc = wh.view("incumbents")
        for _, row in inc.iterrows():
            values = df.loc[df.dataset == row.dataset, "metrics.score"]
            expected = values.max() if row.metric == "score" else values.min()
            assert row.value == expected


_step = st.tuples(
    st.booleans(),  # a batch through log_runs (True) or one log_run (False)
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),  # dataset
            st.sampled_from(["m", "n"]),  # model
            st.sampled_from([0.1, 0.5, 0.9]),  # few values: ties are common
            st.sampled_from(["finished", "finished", "failed"]),
        ),
        min_size=1,
        max_size=6,
    ),
)


@settings(max_examples=25, deadline=None)
@given(st.lists(_step, min_size=1, max_size=5))
def test_incumbents_stay_exact_across_batches_property(steps):
    """run_incumbents is merged batch by batch; after any mix of batches and single runs it
    equals the best finished run recomputed from everything logged (earliest run on ties)."""
    logged: list[dict] = []
    with Warehouse(":memory:") as wh:
        for batch, rows in steps:
            recs = [
                {
                    "run_id": f"r{len(logged) + i}",
                    "dataset": d,
                    "model": m,
                    "status": s,
                    "metrics.accuracy": v,
                    "metrics.log_loss": v,
                }
                for i, (d, m, v, s) in enumerate(rows)
            ]
            if batch:
                wh.log_runs(pd.DataFrame(recs))
            else:
                for r in recs:
                    wh.log_run(
                        r["dataset"],
                        r["model"],
                        {},
                        {"accuracy": r["metrics.accuracy"], "log_loss": r["metrics.log_loss"]},
                        run_id=r["run_id"],
                        status=r["status"],
                    )
            logged += recs
        done = pd.DataFrame(logged)
        done = done[done.status == "finished"]
        got = wh.view("incumbents").set_index(["dataset", "model", "metric"])
        assert len(got) == 2 * done.groupby(["dataset", "model"]).ngroups
        for (d, m), g in done.groupby(["dataset", "model"]):
            for metric, pick in (
                ("accuracy", g["metrics.accuracy"].idxmax()),
                ("log_loss", g["metrics.log_loss"].idxmin()),
            ):
                row = got.loc[(d, m, metric)]
                assert row.run_id == done.at[pick, "run_id"]  # idxmax/idxmin: first on ties
                assert row.n_runs == len(g)
        assert wh.check().ok.all()
