"""Learning curves: every way in (log_run, log_runs, log_curves, both layouts), what is
refused (one line, nothing written), pruned runs, the curve views on a hand-made example, the
audits, and the migration of files written before schema 6."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warehouse import Warehouse
from warehouse.errors import ReadOnlyWarehouseError, ValidationError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture
def wh(tmp_path: Path):
    with Warehouse(tmp_path / "curves.duckdb") as warehouse:
        yield warehouse


def _counts(wh: Warehouse) -> tuple[int, int]:
    row = wh.sql("SELECT (SELECT count(*) FROM runs) AS r, (SELECT count(*) FROM run_curves) AS c")
    return int(row.r[0]), int(row.c[0])


def _points(df: pd.DataFrame) -> list[tuple]:
    return [
        (r.run_id, r.metric, int(r.step), r.value, None if pd.isna(r.elapsed_s) else r.elapsed_s)
        for r in df.itertuples(index=False)
    ]


# ---------------------------------------------------------------------------- ways in
def test_log_run_with_a_curve_as_the_pruning_code_writes_it(wh):
    curve = [
        {"metric": "accuracy", "step": 1, "value": 0.5, "elapsed_s": 0.25},
        {"metric": "accuracy", "step": 2, "value": 0.62, "elapsed_s": 0.5},
        {"metric": "log_loss", "step": 1, "value": 0.9},  # elapsed_s left out: unknown
    ]
    run_id = wh.log_run("iris", "mlp", {"lr": 0.1}, {}, status="pruned", curve=curve)
    got = wh.curves()
    assert list(got.columns) == [
        "run_id",
        "dataset",
        "model",
        "status",
        "metric",
        "step",
        "elapsed_s",
        "value",
    ]
    assert set(got.run_id) == {run_id} and set(got.status) == {"pruned"}
    assert _points(got) == [
        (run_id, "accuracy", 1, 0.5, 0.25),
        (run_id, "accuracy", 2, 0.62, 0.5),
        (run_id, "log_loss", 1, 0.9, None),
    ]
    assert got.step.dtype == np.int64 and got.value.dtype == np.float64
    # the metric names are registered, with their directions
    directions = wh.sql(
        "SELECT name, direction FROM metrics WHERE name IN ('accuracy', 'log_loss')"
    )
    assert dict(zip(directions.name, directions.direction, strict=True)) == {
        "accuracy": "maximize",
        "log_loss": "minimize",
    }
    assert wh.check().ok.all()


def test_log_run_takes_a_dataframe_and_an_empty_curve(wh):
    frame = pd.DataFrame({"metric": ["loss"] * 3, "step": [0, 1, 2], "value": [3.0, 2.0, 1.5]})
    a = wh.log_run("d", "m", {}, {"loss": 1.5}, curve=frame)
    b = wh.log_run("d", "m", {}, {"loss": 1.4}, curve=[])
    c = wh.log_run("d", "m", {}, {"loss": 1.3}, curve=frame.iloc[:0])
    assert wh.curves().run_id.tolist() == [a] * 3
    assert wh.count_runs() == 3 and {b, c} <= set(wh.runs().run_id)


def test_log_runs_with_curves_of_its_own_runs_and_of_runs_logged_before(wh):
    wh.log_run("d1", "rf", {}, {"accuracy": 0.7}, run_id="old")
    runs = pd.DataFrame(
        {
            "run_id": ["a", "b"],
            "dataset": ["d1", "d2"],
            "model": ["rf", "rf"],
            "status": ["finished", "pruned"],
            "metrics.accuracy": [0.8, np.nan],
        }
    )
    curves = pd.DataFrame(
        {
            "run_id": ["a", "a", "b", "old"],
            "metric": ["accuracy"] * 4,
            "step": [1, 2, 1, 7],
            "value": [0.6, 0.8, 0.4, 0.7],
            "elapsed_s": [1.0, 2.0, np.nan, 9.5],
        }
    )
    assert wh.log_runs(runs, curves=curves) == 2
    assert _points(wh.curves()) == [  # ordered by run (logging order), metric, step
        ("old", "accuracy", 7, 0.7, 9.5),
        ("a", "accuracy", 1, 0.6, 1.0),
        ("a", "accuracy", 2, 0.8, 2.0),
        ("b", "accuracy", 1, 0.4, None),
    ]
    got = wh.curves(run_ids=["b"])
    assert (got.dataset[0], got.model[0], got.status[0]) == ("d2", "rf", "pruned")
    assert wh.check().ok.all()


@pytest.mark.parametrize("kind", ["arrow", "csv", "parquet"])
def test_log_runs_curves_from_arrow_and_files(wh, tmp_path, kind):
    runs = pd.DataFrame({"run_id": ["a"], "dataset": ["d"], "model": ["m"]})
    curves = pd.DataFrame({"run_id": ["a", "a"], "metric": ["loss"] * 2, "step": [0, 5]})
    curves["value"] = [2.0, 1.0]
    if kind == "arrow":
        data = pa.Table.from_pandas(curves)
    else:
        data = tmp_path / f"curves.{kind}"
        curves.to_csv(data, index=False) if kind == "csv" else curves.to_parquet(data)
    wh.log_runs(runs, curves=data)
    assert _points(wh.curves()) == [("a", "loss", 0, 2.0, None), ("a", "loss", 5, 1.0, None)]


def test_log_runs_reads_mlflows_metric_history_layout(wh):
    runs = pd.DataFrame({"run_id": ["a", "b"], "dataset": ["d", "d"], "model": ["m", "m"]})
    # MlflowClient.get_metric_history rows with their run id: key, value, timestamp (ms), step
    history = pd.DataFrame(
        {
            "run_id": ["a", "a", "a", "b", "b"],
            "key": ["loss", "loss", "accuracy", "loss", "loss"],
            "value": [1.0, 0.5, 0.7, 0.9, 0.4],
            "step": [0, 1, 1, 0, 1],
            "timestamp": [1_000_500, 1_002_000, 1_002_250, 7_000_000, 7_003_000],
        }
    )
    wh.log_runs(runs, curves=history)
    # seconds since the run's first timestamp in the batch, over all of its metrics
    assert _points(wh.curves()) == [
        ("a", "accuracy", 1, 0.7, 1.75),
        ("a", "loss", 0, 1.0, 0.0),
        ("a", "loss", 1, 0.5, 1.5),
        ("b", "loss", 0, 0.9, 0.0),
        ("b", "loss", 1, 0.4, 3.0),
    ]


def test_mlflow_layout_with_datetime_timestamps(wh):
    wh.log_run("d", "m", {}, {}, run_id="a")
    stamps = pd.to_datetime(["2026-12-07 10:00:00.000", "2026-12-07 10:00:02.500"])
    history = pd.DataFrame(
        {"run_id": ["a", "a"], "key": ["loss"] * 2, "value": [1.0, 0.5], "step": [0, 1]}
    ).assign(timestamp=stamps)
    wh.log_curves(history)
    assert wh.curves().elapsed_s.tolist() == [0.0, 2.5]


def test_log_curves_for_runs_already_logged_and_more_steps_later(wh):
    wh.log_run("d", "m", {}, {}, run_id="a", curve=[{"metric": "loss", "step": 0, "value": 2.0}])
    assert wh.log_curves([{"run_id": "a", "metric": "loss", "step": 1, "value": 1.0}]) == 1
    assert wh.log_curves(pd.DataFrame({"run_id": ["a"], "metric": ["loss"], "step": [2]}).assign(
        value=[0.5]
    )) == 1  # fmt: skip
    assert wh.curves().step.tolist() == [0, 1, 2]
    assert wh.check().ok.all()


def test_rows_in_any_order_are_stored_and_read_back_in_order(wh):
    """Shuffled rows take the per-row checks (not the adjacent-rows proof)."""
    rng = np.random.default_rng(0)
    ids = [f"r{i}" for i in range(40)]
    wh.log_runs(pd.DataFrame({"run_id": ids, "dataset": "d", "model": "m"}))
    frame = pd.DataFrame(
        [(r, m, s, float(rng.uniform())) for r in ids for m in ("a", "b") for s in range(25)],
        columns=["run_id", "metric", "step", "value"],
    )
    shuffled = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    assert wh.log_curves(shuffled) == len(frame)
    got = wh.curves()[["run_id", "metric", "step", "value"]]
    pd.testing.assert_frame_equal(got, frame, check_dtype=False)
    twice = pd.concat([shuffled, shuffled.iloc[[7]]], ignore_index=True)
    row = shuffled.iloc[7]
    with pytest.raises(ValidationError, match=rf"rows \d+ and {len(twice)}: run '{row.run_id}'"):
        wh.log_curves(twice)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    keys=st.sets(
        st.tuples(
            st.sampled_from(["a", "b", "c"]), st.sampled_from(["x", "y"]), st.integers(0, 50)
        ),
        min_size=1,
        max_size=60,
    ),
    seed=st.integers(0, 2**16),
)
def test_property_ingest_then_read_round_trips(keys, seed):
    rng = np.random.default_rng(seed)
    points = [(r, m, s, float(rng.normal())) for r, m, s in keys]
    rng.shuffle(points)
    with Warehouse(":memory:") as wh:
        for run in ("a", "b", "c"):
            wh.log_run("d", "m", {}, {}, run_id=run)
        wh.log_curves([{"run_id": r, "metric": m, "step": s, "value": v} for r, m, s, v in points])
        got = [(r.run_id, r.metric, int(r.step), r.value) for r in wh.curves().itertuples()]
    assert got == sorted(points, key=lambda p: ("abc".index(p[0]), p[1], p[2]))


# ---------------------------------------------------------------------------- refusals
def _refused(wh: Warehouse, call, match: str) -> None:
    before = _counts(wh)
    with pytest.raises(ValidationError, match=match) as info:
        call()
    assert "\n" not in str(info.value)
    assert _counts(wh) == before  # nothing written


def test_refusals_are_one_line_and_write_nothing(wh):
    wh.log_run("d", "m", {}, {}, run_id="a", curve=[{"metric": "loss", "step": 0, "value": 1.0}])

    def point(**kw):
        return [{"run_id": "a", "metric": "loss", "step": 3, "value": 0.5} | kw]

    cases = [
        (point(run_id="nope"), r"row 1, column 'run_id': no run 'nope' in the warehouse"),
        (point(step=0), r"row 1: run 'a' already has a point for metric 'loss' at step 0"),
        (point(value=math.nan), r"row 1, column 'value': value nan is not finite"),
        (point(value=math.inf), r"value inf is not finite"),
        (point(value=None), r"row 1, column 'value': empty value"),
        (point(step=-1), r"row 1, column 'step': step -1 is negative"),
        (point(step=1.5), r"row 1, column 'step': 1.5 is not a whole number"),
        (point(step="two"), r"row 1, column 'step': 'two' is not a number"),
        (point(step=None), r"row 1, column 'step': empty step"),
        (point(metric=" "), r"row 1, column 'metric': empty metric"),
        (point(run_id=""), r"row 1, column 'run_id': empty run_id"),
        (point(elapsed_s=-2.0), r"row 1, column 'elapsed_s': -2.0 is negative"),
        (point(elapsed_s=math.nan), r"column 'elapsed_s': elapsed_s nan is not finite"),
        (point(metric="accuracy", value=1.5), r"1.5 is outside the range of metric 'accuracy'"),
        (point(epoch=3), r"unknown column 'epoch'"),
        (point(key="loss"), r"columns 'key' and 'metric' both name the metric"),
        ([{"run_id": "a", "step": 1, "value": 1.0}], r"missing required column 'metric'"),
        (point() + point(), r"rows 1 and 2: run 'a' has two points for metric 'loss' at step 3"),
        (["loss"], r"row 1 is a str, not a dict"),
    ]
    for data, match in cases:
        _refused(wh, lambda data=data: wh.log_curves(data), match)
    assert wh.check().ok.all()


def test_a_bad_curve_refuses_its_whole_log_runs_batch(wh):
    runs = pd.DataFrame({"run_id": ["a", "b"], "dataset": ["d", "d"], "model": ["m", "m"]})
    bad = pd.DataFrame(
        {"run_id": ["a", "zz"], "metric": ["loss"] * 2, "step": [0, 0], "value": [1.0, 2.0]}
    )
    _refused(wh, lambda: wh.log_runs(runs, curves=bad), r"log_runs curves: row 2, .*'zz'")
    nan = bad.assign(run_id=["a", "b"], value=[1.0, np.nan])  # pandas NaN: a missing value
    _refused(wh, lambda: wh.log_runs(runs, curves=nan), r"row 2, column 'value': empty value")
    assert wh.log_runs(runs, curves=bad.assign(run_id=["a", "b"])) == 2  # then it all goes in


def test_a_bad_curve_refuses_its_log_run(wh):
    _refused(
        wh,
        lambda: wh.log_run("d", "m", {}, {}, curve=[{"metric": "loss", "step": -3, "value": 1.0}]),
        r"^log_run curve: row 1, column 'step': step -3 is negative",
    )
    _refused(
        wh,
        lambda: wh.log_run("d", "m", {}, {}, curve=[{"run_id": "x", "metric": "l", "step": 0}]),
        r"column 'run_id': the points belong to the run being logged",
    )
    _refused(
        wh,
        lambda: wh.log_run("d", "m", {}, {}, curve=[{"metric": "l", "step": 0, "value": 1.0}] * 2),
        r"rows 1 and 2: run '.*' has two points for metric 'l' at step 0",
    )


def test_log_curves_needs_rows_and_a_writable_warehouse(wh, tmp_path):
    with pytest.raises(ValidationError, match="no rows"):
        wh.log_curves([])
    path = wh.path
    wh.log_run("d", "m", {}, {}, run_id="a")
    wh.close()
    with Warehouse(path, read_only=True) as ro:
        with pytest.raises(ReadOnlyWarehouseError):
            ro.log_curves([{"run_id": "a", "metric": "loss", "step": 0, "value": 1.0}])
        assert ro.curves().empty


# ---------------------------------------------------------------------------- pruned runs
def test_pruned_runs_are_runs_but_never_finished_ones(wh):
    wh.log_run("d", "rf", {"depth": 3}, {"accuracy": 0.8}, run_id="done")
    wh.log_run("d", "rf", {"depth": 9}, {"accuracy": 0.99}, run_id="cut", status="pruned")
    wh.log_runs(
        pd.DataFrame(
            {
                "run_id": ["cut2"],
                "dataset": ["d"],
                "model": ["rf"],
                "status": ["PRUNED"],
                "params.depth": [12],
                "metrics.accuracy": [0.995],
            }
        )
    )
    assert wh.count_runs(status="pruned") == 2 and wh.count_runs(status="finished") == 1
    assert wh.training_matrix("accuracy").run_id.tolist() == ["done"]
    assert wh.view("training_matrix").run_id.tolist() == ["done"]
    assert wh.view("incumbents").run_id.tolist() == ["done"]
    assert wh.finished_configs("d", "rf") == [{"depth": 3.0}]
    assert wh.latest_run("d", "rf", split="valid")["run_id"] == "done"
    assert wh.trials("d").status.tolist() == ["finished", "pruned", "pruned"]
    assert wh.check().ok.all()
    with pytest.raises(ValidationError, match="expected finished, failed, running or pruned"):
        wh.log_run("d", "rf", {}, {}, status="stopped")
    with pytest.raises(ValidationError, match="expected finished, failed, running or pruned"):
        wh.log_runs(pd.DataFrame({"dataset": ["d"], "model": ["rf"], "status": ["stopped"]}))


# ---------------------------------------------------------------------------- reading
def test_curves_filters(wh):
    for run, dataset, model, status in (
        ("a", "d1", "rf", "finished"),
        ("b", "d1", "mlp", "pruned"),
        ("c", "d2", "rf", "failed"),
    ):
        curve = [{"metric": m, "step": s, "value": 0.5} for m in ("acc", "loss") for s in (0, 1)]
        wh.log_run(dataset, model, {}, {}, run_id=run, status=status, curve=curve)

    def runs(**filters):
        return sorted(set(wh.curves(**filters).run_id))

    assert runs() == ["a", "b", "c"]
    assert runs(dataset="d1") == ["a", "b"] and runs(dataset=["d2"]) == ["c"]
    assert runs(model="rf") == ["a", "c"] and runs(model=["rf", "mlp"]) == ["a", "b", "c"]
    assert runs(status="pruned") == ["b"] and runs(status=["finished", "failed"]) == ["a", "c"]
    assert runs(run_ids=["c", "a", "zz"]) == ["a", "c"] and runs(run_ids=[]) == []
    assert runs(run_ids=[f"x{i}" for i in range(150)] + ["b"]) == ["b"]  # a long list
    assert set(wh.curves(metric="loss").metric) == {"loss"}
    assert runs(dataset="d1", model="rf", metric="acc", status="finished") == ["a"]
    with pytest.raises(ValidationError, match="unknown status 'done'"):
        wh.curves(status="done")
    with pytest.raises(ValidationError, match="run_ids must be a list"):
        wh.curves(run_ids="a")
    empty = wh.curves(dataset="nope")
    assert empty.empty and list(empty.columns)[:2] == ["run_id", "dataset"]


def test_delete_runs_takes_their_curves(wh):
    for run in ("a", "b"):
        wh.log_run("d", "m", {}, {}, run_id=run, curve=[{"metric": "l", "step": 0, "value": 1.0}])
    wh.delete_runs(["a"])
    assert wh.curves().run_id.tolist() == ["b"]
    assert wh.check().ok.all()


# ---------------------------------------------------------------------------- views
def _golden(wh: Warehouse) -> None:
    """d × m: f1, f2 finished, p1 pruned; d × m2: q1 pruned only (no budget)."""
    acc = {"f1": [(1, 0.5), (2, 0.7), (5, 0.6), (10, 0.8)], "f2": [(2, 0.4), (4, 0.65), (8, 0.7)]}
    acc["p1"] = [(1, 0.3), (3, 0.2)]
    loss = {"f1": [(1, 0.9), (4, 0.5)], "p1": [(1, 0.8), (2, 0.85), (3, 0.7)]}
    for run, status in (("f1", "finished"), ("f2", "finished"), ("p1", "pruned")):
        curve = [{"metric": "accuracy", "step": s, "value": v} for s, v in acc[run]]
        curve += [{"metric": "log_loss", "step": s, "value": v} for s, v in loss.get(run, [])]
        wh.log_run("d", "m", {}, {}, run_id=run, status=status, curve=curve)
    wh.log_run("d", "m2", {}, {}, run_id="q1", status="pruned", curve=[
        {"metric": "accuracy", "step": 5, "value": 0.9}
    ])  # fmt: skip


def test_curve_points_golden(wh):
    _golden(wh)
    got = wh.view("curve_points")
    rows = [
        (r.run_id, r.metric, r.step, r.value, r.best_so_far, r.budget, r.budget_fraction)
        for r in got.itertuples()
    ]
    na = None
    expected = [
        ("f1", "accuracy", 1, 0.5, 0.5, 10, 0.1),
        ("f1", "accuracy", 2, 0.7, 0.7, 10, 0.2),
        ("f1", "accuracy", 5, 0.6, 0.7, 10, 0.5),
        ("f1", "accuracy", 10, 0.8, 0.8, 10, 1.0),
        ("f1", "log_loss", 1, 0.9, 0.9, 4, 0.25),
        ("f1", "log_loss", 4, 0.5, 0.5, 4, 1.0),
        ("f2", "accuracy", 2, 0.4, 0.4, 10, 0.2),
        ("f2", "accuracy", 4, 0.65, 0.65, 10, 0.4),
        ("f2", "accuracy", 8, 0.7, 0.7, 10, 0.8),
        ("p1", "accuracy", 1, 0.3, 0.3, 10, 0.1),
        ("p1", "accuracy", 3, 0.2, 0.3, 10, 0.3),
        ("p1", "log_loss", 1, 0.8, 0.8, 4, 0.25),  # minimized: the running minimum
        ("p1", "log_loss", 2, 0.85, 0.8, 4, 0.5),
        ("p1", "log_loss", 3, 0.7, 0.7, 4, 0.75),
        ("q1", "accuracy", 5, 0.9, 0.9, na, na),  # no finished run of d × m2: no budget
    ]
    assert len(rows) == len(expected)
    for have, want in zip(rows, expected, strict=True):
        assert have[:3] == want[:3]
        for h, w in zip(have[3:], want[3:], strict=True):
            assert (pd.isna(h) and w is None) or h == pytest.approx(w), (have, want)
    assert set(got.direction[got.metric == "log_loss"]) == {"minimize"}
    assert got[got.run_id == "p1"].status.unique().tolist() == ["pruned"]
    # a filter on dataset or model reaches the scans and gives the same rows
    assert len(wh.view("curve_points", model="m")) == 14
    assert wh.sql("SELECT count(*) AS n FROM curve_points WHERE dataset = 'd'").n[0] == 15


def test_curve_summary_golden(wh):
    _golden(wh)
    got = wh.view("curve_summary")
    cols = [
        "n_points",
        "last_step",
        "last_value",
        "best_value",
        "budget",
        "budget_fraction",
        "value_at_10",
        "value_at_25",
        "value_at_50",
    ]
    na = None
    expected = {
        ("f1", "accuracy"): (4, 10, 0.8, 0.8, 10, 1.0, 0.5, 0.7, 0.6),
        ("f1", "log_loss"): (2, 4, 0.5, 0.5, 4, 1.0, na, 0.9, 0.9),
        ("f2", "accuracy"): (3, 8, 0.7, 0.7, 10, 0.8, na, 0.4, 0.65),
        ("p1", "accuracy"): (2, 3, 0.2, 0.3, 10, 0.3, 0.3, 0.3, 0.2),
        ("p1", "log_loss"): (3, 3, 0.7, 0.7, 4, 0.75, na, 0.8, 0.85),
        ("q1", "accuracy"): (1, 5, 0.9, 0.9, na, na, na, na, na),
    }
    assert list(zip(got.run_id, got.metric, strict=True)) == list(expected)
    for row in got.itertuples():
        want = expected[(row.run_id, row.metric)]
        for col, w in zip(cols, want, strict=True):
            h = getattr(row, col)
            assert (pd.isna(h) and w is None) or h == pytest.approx(w), (row.run_id, col, h, w)
    assert wh.view("curve_summary", status="pruned").run_id.tolist() == ["p1", "p1", "q1"]


# ---------------------------------------------------------------------------- audits
def test_audits_find_orphan_duplicate_and_out_of_range_points(tmp_path):
    path = tmp_path / "audit.duckdb"
    with Warehouse(path) as wh:
        wh.log_run(
            "d", "m", {}, {}, run_id="a", curve=[{"metric": "accuracy", "step": 0, "value": 0.5}]
        )
        assert wh.check().ok.all()
    con = duckdb.connect(str(path))  # written behind ingest's back
    con.execute("INSERT INTO run_curves SELECT * FROM run_curves")  # a duplicate point
    con.execute("INSERT INTO run_curves VALUES ('gone', 99, 'accuracy', 1, 0.4, NULL)")
    con.execute("INSERT INTO run_curves VALUES ('a', 1, 'accuracy', 2, 1.4, NULL)")
    con.execute("INSERT INTO run_curves VALUES ('a', 7, 'new_metric', 2, 1.4, NULL)")
    con.close()
    with Warehouse(path, read_only=True) as wh:
        report = wh.check().set_index("audit")
    failing = set(report.index[~report.ok])
    assert failing == {
        "duplicate_run_curves",
        "orphan_run_curves",
        "curve_out_of_range",
        "run_seq_mismatch",
        "metric_without_direction",
    }


# ---------------------------------------------------------------------------- migration
@pytest.mark.parametrize("version", [3, 5])
def test_an_older_file_gets_run_curves_and_keeps_every_run_as_it_was(tmp_path, version):
    path = tmp_path / f"v{version}.duckdb"
    shutil.copy(FIXTURES / f"warehouse_v{version}.duckdb", path)

    def runs_table() -> tuple[list[tuple], list[tuple]]:
        """Every row of runs, and its columns' types, defaults and nullability."""
        with duckdb.connect(str(path), read_only=True) as con:
            rows = con.execute("SELECT * FROM runs ORDER BY seq").fetchall()
            columns = con.execute(
                "SELECT column_name, data_type, column_default, is_nullable FROM "
                "information_schema.columns WHERE table_name = 'runs' ORDER BY ordinal_position"
            ).fetchall()
        return rows, columns

    before, columns = runs_table()
    with Warehouse(path) as wh:
        assert wh.schema_version >= 6
    assert runs_table() == (before, columns)  # every row and column as it was
    with Warehouse(path) as wh:
        assert wh.curves().empty and wh.check().ok.all()
        first = before[0][0]
        with pytest.raises(ValidationError, match="already in the warehouse"):
            wh.log_run("d1", "rf", {}, {}, run_id=first)  # the primary key is back
        top = max(row[-1] for row in before)
        run = wh.log_run("d1", "rf", {}, {}, status="pruned", curve=[
            {"metric": "accuracy", "step": 1, "value": 0.5}
        ])  # fmt: skip
        row = wh.sql("SELECT status, seq, logged_at FROM runs WHERE run_id = ?", [run])
        assert row.status[0] == "pruned" and row.seq[0] == top + 1
        assert pd.notna(row.logged_at[0])  # the default is back
        assert len(wh.view("run_features")) == len(before) + 1  # views bind to the new table
    with Warehouse(path, read_only=True) as wh:
        assert wh.curves().run_id.tolist() == [run]
