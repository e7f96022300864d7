"""Concurrency: one writer process at a time (others wait a bounded time, then get a clear
busy error), in-process readers see consistent snapshots while a sweep-like writer commits,
and parallel trials never lose a result."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.reliability._tally import TALLY
from warehouse import Warehouse
from warehouse.errors import ValidationError, WarehouseBusyError

ROOT = Path(__file__).resolve().parents[2]

HOLDER = """
import sys, time
from warehouse import Warehouse
with Warehouse(sys.argv[1]) as wh:
    wh.log_run("d", "m", {}, {"accuracy": 0.5}, run_id="holder")
    print("HOLDING", flush=True)
    time.sleep(float(sys.argv[2]))
print("RELEASED", flush=True)
"""


def _holder(path: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(seconds)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "HOLDING"
    return proc


def test_second_writer_gets_busy_after_a_bounded_wait(tmp_path):
    path = tmp_path / "busy.duckdb"
    proc = _holder(path, 30)
    try:
        for timeout in (0.0, 1.0):
            start = time.monotonic()
            with pytest.raises(WarehouseBusyError, match="busy") as info:
                Warehouse(path, busy_timeout=timeout)
            waited = time.monotonic() - start
            assert timeout <= waited + 0.05 and waited < timeout + 3.0
            assert "\n" not in str(info.value) and str(path) in str(info.value)
            TALLY["second writers refused as busy"] += 1
    finally:
        proc.kill()
        proc.wait(30)


def test_second_writer_waits_its_turn_within_the_timeout(tmp_path):
    path = tmp_path / "turn.duckdb"
    proc = _holder(path, 1.0)
    try:
        with Warehouse(path, busy_timeout=60) as wh:  # the holder lets go after ~1 s
            assert wh.sql("SELECT run_id FROM runs").run_id.tolist() == ["holder"]
            wh.log_run("d", "m", {}, {"accuracy": 0.6}, run_id="second")
        TALLY["second writers that waited their turn"] += 1
    finally:
        proc.wait(30)


def test_busy_timeout_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("METAOPT_BUSY_TIMEOUT", "0.25")
    with Warehouse(tmp_path / "e.duckdb") as wh:
        assert wh.busy_timeout == 0.25
    monkeypatch.setenv("METAOPT_BUSY_TIMEOUT", "soon")
    with pytest.raises(ValidationError, match="METAOPT_BUSY_TIMEOUT"):
        Warehouse(tmp_path / "e.duckdb")
    with pytest.raises(ValidationError, match="busy_timeout"):
        Warehouse(tmp_path / "e.duckdb", busy_timeout=-1)


def test_cli_reports_busy_in_one_line(tmp_path):
    path = tmp_path / "cli.duckdb"
    proc = _holder(path, 30)
    try:
        out = subprocess.run(
            [sys.executable, "-m", "metaopt_bayes", "--db", str(path), "sql", "SELECT 1"],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "METAOPT_BUSY_TIMEOUT": "0.5"},
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        proc.kill()
        proc.wait(30)
    assert out.returncode == 1
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and "busy" in lines[0], out.stderr


def test_in_process_readers_see_consistent_snapshots_while_a_writer_commits(tmp_path):
    """Reader strategy inside one process: each reader opens its own ``Warehouse(path)`` (it
    shares DuckDB's database instance) and reads MVCC snapshots — never a partial batch."""
    path = tmp_path / "mvcc.duckdb"
    batch, batches = 20, 15
    with Warehouse(path):
        pass
    errors: list[BaseException] = []
    seen: list[int] = []
    stop = threading.Event()

    def writer() -> None:
        try:
            with Warehouse(path) as wh:
                for b in range(batches):
                    wh.log_runs(
                        pd.DataFrame(
                            {
                                "run_id": [f"b{b}-{j}" for j in range(batch)],
                                "dataset": "d",
                                "model": "m",
                                "metrics.accuracy": np.linspace(0, 1, batch),
                            }
                        )
                    )
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            stop.set()

    def reader() -> None:
        try:
            with Warehouse(path) as wh:
                while not stop.is_set():
                    df = wh.sql(
                        "SELECT (SELECT count(*) FROM runs) AS r, "
                        "(SELECT count(*) FROM run_metrics) AS m"
                    )
                    r, m = int(df.r[0]), int(df.m[0])
                    assert r == m, f"snapshot saw {r} runs but {m} metric rows"
                    assert r % batch == 0, f"snapshot saw a partial batch ({r} runs)"
                    seen.append(r)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[0]
    assert seen == sorted(seen)  # monotone: committed batches never disappear
    TALLY["snapshot reads during writes"] += len(seen)
    with Warehouse(path) as wh:
        assert int(wh.sql("SELECT count(*) AS n FROM runs").n[0]) == batch * batches


def _objective(cfg):  # module level: picklable for the process pool
    from tests.search.conftest import FakeLearner

    time.sleep(0.05)
    return {"score": float(FakeLearner.truth(cfg["x"], cfg["c"]))}


def test_parallel_trials_never_lose_a_result(tmp_path):
    from metaopt_bayes.search import optimize
    from tests.search.conftest import FakeLearner

    xs = np.round(np.linspace(0, 1, 21), 4)
    pool = pd.DataFrame({"x": np.concatenate([xs, xs]), "c": ["a"] * 21 + ["b"] * 21})
    reported: list[str] = []
    with Warehouse(tmp_path / "par.duckdb") as wh:
        res = optimize(
            wh,
            "d1",
            "toy",
            10,
            candidates=pool,
            objective=_objective,
            learner=FakeLearner(),
            refit_every=0,
            jobs=2,
            callback=lambda t: reported.append(t["run_id"]),
        )
        runs = wh.sql("SELECT run_id, status FROM runs WHERE dataset = 'd1'")
        assert res.n_new == 10 and len(reported) == 10
        assert sorted(runs.run_id) == sorted(reported)
        assert (runs.status == "finished").all()
        assert not res.trials.duplicated(["x", "c"]).any()
        assert wh.check().ok.all()
    TALLY["parallel trials verified"] += 10


READER = """
import sys
from warehouse import Warehouse
with Warehouse(sys.argv[1], read_only=True, busy_timeout=0) as wh:
    print(int(wh.sql("SELECT count(*) AS n FROM runs")["n"][0]))
"""


def _read_from_another_process(path: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-c", READER, str(path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode == 0:
        return out.stdout.strip()
    assert "WarehouseBusyError" in out.stderr, out.stderr  # refused as busy, nothing else
    return "busy"


@pytest.mark.parametrize("release", [True, False])
def test_other_processes_read_the_trials_while_optimize_runs_the_next(tmp_path, release):
    from metaopt_bayes.search import optimize

    path = tmp_path / "w.duckdb"
    seen: list[str] = []

    def objective(cfg):  # runs while the trial is in progress: who can read the file?
        seen.append(_read_from_another_process(path))
        return {"score": -((cfg["x"] - 0.3) ** 2)}

    pool = pd.DataFrame({"x": np.linspace(0, 1, 11)})
    with Warehouse(path) as wh:
        res = optimize(wh, "d", "m", 3, candidates=pool, objective=objective, metric="score",
                       direction="maximize", n_init=3, release=release)  # fmt: skip
        assert res.n_new == 3 and len(wh.sql("SELECT * FROM runs")) == 3  # open again after
    if release:  # each trial sees the runs logged before it
        assert seen == ["0", "1", "2"]
        TALLY["reads by another process during optimize"] += 3
    else:
        assert seen == ["busy"] * 3


def test_other_processes_read_the_runs_while_a_sweep_trains(tmp_path, monkeypatch):
    from sklearn.datasets import load_iris

    import metaopt_bayes.sweeps as sweep_mod
    import metaopt_bayes.trials as trials_mod

    path = tmp_path / "w.duckdb"
    seen: list[str] = []

    def trial(payload):  # stands in for the training, which runs with the file let go of
        seen.append(_read_from_another_process(path))
        return {"status": "finished", "metrics": {"accuracy": 0.9}, "duration_s": 0.01}

    monkeypatch.setattr(trials_mod, "run_trial", trial)
    with Warehouse(path) as wh:
        wh.register_dataset("iris", load_iris(as_frame=True).frame, "target")
        ids = sweep_mod.sweep(wh, "iris", "knn", 3, progress=False, cv=3, release=True)
        assert len(ids) == 3 and len(wh.sql("SELECT * FROM runs")) == 3
    assert seen == ["0", "1", "2"]


def test_a_released_warehouse_waits_for_a_reader_left_open_and_says_so(tmp_path):
    path = tmp_path / "held.duckdb"
    with Warehouse(path, busy_timeout=0.2) as wh:
        wh.log_run("d", "m", {}, {"accuracy": 0.5}, run_id="before")
        with pytest.warns(UserWarning, match="held by another process"), wh.released():
            holder = subprocess.Popen(  # a reader that keeps the file for 2 s
                [sys.executable, "-c", "import duckdb, sys, time; "
                 "c = duckdb.connect(sys.argv[1], read_only=True); print('ok', flush=True); "
                 "time.sleep(2)", str(path)],
                stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        wh.log_run("d", "m", {}, {"accuracy": 0.6}, run_id="after")  # nothing was lost
        holder.wait(30)
        assert sorted(wh.sql("SELECT run_id FROM runs").run_id) == ["after", "before"]
