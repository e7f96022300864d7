"""Several processes, one warehouse (issue 26 item 3, issue 29 items 6 and 7), with real
processes on a real DuckDB file: optimizers sharing a budget run exactly it with no config
twice; a worker killed mid-trial frees its slot; a trial whose owner stops heartbeating is
failed after the timeout; two sweeps split one design; SIGKILL of a --jobs 2 parent leaves
no worker behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.reliability._shared_worker import pool
from tests.reliability._tally import TALLY
from tests.search.conftest import FakeLearner
from warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def _worker(db: Path, budget: int, log: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability._shared_worker", str(db), str(budget),
         str(log), *extra],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_lines(log: Path, n: int, timeout: float = 60) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = log.read_text().splitlines() if log.exists() else []
        if len(lines) >= n:
            return lines
        time.sleep(0.05)
    pytest.fail(f"only {len(lines)} of {n} trials started")


def _trials(db: Path) -> tuple[int, int, dict[str, int]]:
    with Warehouse(db, read_only=True, busy_timeout=30) as wh:
        runs = wh.sql(
            "SELECT r.run_id, string_agg(p.name || '=' || coalesce(p.value_text, "
            "CAST(p.value_num AS VARCHAR)), ',' ORDER BY p.name) AS cfg FROM runs r "
            "JOIN run_params p ON p.run_id = r.run_id WHERE r.source = 'metaopt:optimize' "
            "GROUP BY r.run_id"
        )
        states = wh.sql("SELECT state, count(*) AS n FROM trial_claims GROUP BY state")
    return len(runs), runs.cfg.nunique(), dict(zip(states.state, states.n, strict=True))


def test_two_processes_share_one_budget(tmp_path):
    db, log = tmp_path / "w.duckdb", tmp_path / "log"
    procs = [_worker(db, 12, log) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    n_new = [int(o[0].split()[-1]) for o in outs]
    n, distinct, states = _trials(db)
    assert (n, distinct, sum(n_new)) == (12, 12, 12)
    assert states == {"complete": 12}
    assert len(log.read_text().splitlines()) == 12  # no config was even started twice
    assert all(k > 0 for k in n_new), n_new  # both did work: they ran side by side
    TALLY["shared-budget optimizers (processes)"] += 2


def test_killed_worker_frees_its_slot(tmp_path):
    db, log = tmp_path / "w.duckdb", tmp_path / "log"
    doomed = _worker(db, 8, log, "--slow-after", "2")  # its third trial hangs
    _wait_lines(log, 3)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=30)
    survivor = _worker(db, 8, log)
    _out, err = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, err
    n, distinct, states = _trials(db)
    assert (n, distinct) == (8, 8)
    assert states == {"complete": 8, "fail": 1}
    with Warehouse(db, read_only=True) as wh:
        error = wh.sql("SELECT error FROM trial_claims WHERE state = 'fail'").error[0]
    assert f":{doomed.pid}:" in error and "gone" in error
    TALLY["workers killed mid-trial, slot retried"] += 1


def test_trial_without_heartbeat_is_failed_after_the_timeout(tmp_path):
    """An owner on another host is never judged by its pid: only the heartbeat timeout frees
    its trial (Optuna's fail_stale_trials)."""
    db = tmp_path / "w.duckdb"
    with Warehouse(db) as wh:
        got = wh.claim_trial(
            "d1", "toy", "elsewhere", {"x": 0.5, "c": "a"}, source="metaopt:optimize",
            budget=4, owner="another-host:4242:1",
        )  # fmt: skip
        assert got["status"] == "claimed"
    started = time.monotonic()
    with Warehouse(db) as wh:
        from metaopt_bayes.search import optimize

        res = optimize(
            wh, "d1", "toy", 4, candidates=pool(), objective=FakeObjective(),
            learner=FakeLearner(), refit_every=0, release=True, stale_after=2.0, heartbeat_s=0.2,
        )  # fmt: skip
        waited = time.monotonic() - started
        states = wh.sql("SELECT state, error FROM trial_claims WHERE owner LIKE 'another%'")
    assert res.n_new == 4 and len(res.trials) == 4
    assert waited >= 2.0  # it waited for the foreign trial until it went stale
    assert states.state[0] == "fail" and "no heartbeat" in states.error[0]


class FakeObjective:
    def __call__(self, cfg: dict) -> dict:
        return {"score": float(FakeLearner.truth(cfg["x"], cfg["c"]))}


SWEEPER = """
import sys
from warehouse import Warehouse
from metaopt_bayes.sweeps import sweep
with Warehouse(sys.argv[1], busy_timeout=60) as wh:
    ids = sweep(wh, "iris", "knn", 10, progress=False, cv=2, release=True)
print(len(ids), flush=True)
"""


def test_two_sweeps_split_one_design(tmp_path):
    import numpy as np
    import pandas as pd

    db = tmp_path / "w.duckdb"
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    frame["y"] = (frame.a > 0).astype(int)
    with Warehouse(db) as wh:
        wh.register_dataset("iris", frame, target="y")
    procs = [
        subprocess.Popen([sys.executable, "-c", SWEEPER, str(db)], cwd=ROOT, env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]  # fmt: skip
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    with Warehouse(db, read_only=True) as wh:
        runs = wh.sql("SELECT count(*) AS n, count(DISTINCT seed) AS s FROM runs")
    total = sum(int(o[0].split()[-1]) for o in outs)
    # each design point once. How many: a sweep's design skips the points already *finished*
    # (a second sweep after the first is a continued sweep, 10 more), so a process that
    # starts after the other finished some points takes further ones: 10 when both start
    # together, up to 20 when one starts after the other is done (timing on a loaded machine)
    assert int(runs.n[0]) == int(runs.s[0]) == total
    assert 10 <= total <= 20
    TALLY["sweeps sharing a design (processes)"] += 2


def test_sigkill_of_a_jobs_2_parent_leaves_no_worker(tmp_path):
    db, log = tmp_path / "w.duckdb", tmp_path / "log"
    parent = _worker(db, 8, log, "--jobs", "2", "--slow-after", "0")  # every trial hangs
    lines = _wait_lines(log, 2)
    family = psutil.Process(parent.pid).children(recursive=True)
    workers = {int(line.split(",")[0]) for line in lines}
    assert workers <= {p.pid for p in family} and len(workers) == 2
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=30)
    deadline = time.monotonic() + 15
    alive = family
    while alive and time.monotonic() < deadline:
        alive = [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.2)
    assert not alive, [(p.pid, p.name(), p.cmdline()[:3]) for p in alive]
    TALLY["--jobs 2 parents killed, no orphan"] += 1


def test_cli_wait_gives_up_with_one_line(tmp_path):
    from tests.reliability.test_concurrency import _holder

    db = tmp_path / "w.duckdb"
    holder = _holder(db, 20)
    try:
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "metaopt_bayes", "--db", str(db), "sweep", "-d", "d",
             "-m", "knn", "-t", "2", "--wait", "1"],
            cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "busy" in lines[0] and "waited 1 s" in lines[0], proc.stderr
    assert waited < 20
