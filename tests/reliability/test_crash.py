"""Crash safety: SIGKILL a real ingest and a real optimize at random moments, many times.

After every kill the warehouse must open, every audit of ``Warehouse.check()`` must return
zero rows, every piece of work the child reported as finished must be there exactly once, and
a batch is all-or-nothing (a ``log_runs`` batch the kill interrupted is either complete or
absent). Kills land after the child reported ``READY`` (warehouse open), at a uniformly random
delay, so they hit inserts, commits and WAL writes rather than Python start-up.

Fast mode: ``METAOPT_CRASH_KILLS`` kills of each kind (default 10). ``pytest -m slow`` runs
100 of each.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.reliability._tally import TALLY
from warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[2]
KILLS = int(os.environ.get("METAOPT_CRASH_KILLS", "10"))

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")


class Child:
    """A child process whose stdout lines are collected by a thread as they arrive."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability._crash_child", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.progress = threading.Event()  # set at the first finished unit of work
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if line == "READY":
                self.ready.set()
            elif line.startswith(("RUN ", "BATCH ")):
                self.progress.set()
            self.lines.append(line)

    def kill_after_ready(
        self, delay: float, timeout: float = 120.0, after_progress: bool = False
    ) -> bool:
        """SIGKILL ``delay`` s after READY (after the first finished unit of work with
        ``after_progress``, so a loaded machine still verifies some work); False if the child
        exited on its own first."""
        if not self.ready.wait(timeout):
            self.proc.kill()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            pytest.fail(f"child never became ready: {err[-2000:]}")
        if after_progress:
            self.progress.wait(timeout)
        time.sleep(delay)
        alive = self.proc.poll() is None
        if alive:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._reader.join(10)
        if not alive and self.proc.returncode != 0:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            pytest.fail(f"child failed before the kill: {err[-2000:]}")
        return alive


def _audit(db: Path) -> Warehouse:
    wh = Warehouse(db)  # must open (and recover from the WAL) after a kill
    report = wh.check()
    bad = report.loc[~report.ok, ["audit", "failing_rows"]]
    assert bad.empty, f"audits failed after kill: {bad.to_dict('records')}"
    return wh


def _ingest_kills(tmp_path: Path, kills: int, seed: int) -> None:
    rnd = random.Random(seed)
    db = tmp_path / "ingest.duckdb"
    with Warehouse(db):
        pass
    reported: dict[str, int] = {}
    for k in range(kills):
        child = Child("ingest", str(db), f"k{k}")
        killed = child.kill_after_ready(rnd.uniform(0.0, 1.5), after_progress=k == 0)
        assert killed, "the ingest child runs forever; it must have been killed"
        TALLY["ingest processes killed with SIGKILL"] += 1
        done = {}
        for line in child.lines:
            if line.startswith("BATCH "):
                _, batch, n = line.split()
                done[batch] = int(n)
        reported.update(done)
        with _audit(db) as wh:
            got = wh._read_df(
                "SELECT regexp_extract(run_id, '^(k[0-9]+-(b[0-9]+|s[0-9]+))', 1) AS batch, "
                "count(*) AS n, count(DISTINCT run_id) AS d FROM runs GROUP BY ALL"
            )
            per_batch = dict(zip(got.batch, got.n.astype(int), strict=True))
            assert (got.n == got.d).all()
            # every reported batch is there, complete, exactly once
            for batch, n in reported.items():
                assert per_batch.get(batch) == n, (batch, per_batch.get(batch), n)
            # all-or-nothing: an unreported batch (the one the kill hit) is complete or absent
            for batch, n in per_batch.items():
                expected = 1 if "-s" in batch else 25
                assert n == expected, f"batch {batch} is partial: {n} of {expected} runs"
            metrics = wh._read_df(
                "SELECT count(*) AS n FROM run_metrics WHERE run_id IN (SELECT run_id FROM runs)"
            ).n[0]
            assert int(metrics) == 2 * int(got.n.sum())  # accuracy + log_loss for every run
        TALLY["ingest kills survived (warehouse opened, audits clean)"] += 1
    TALLY["ingest runs verified present exactly once"] += sum(reported.values())


def _optimize_kills(tmp_path: Path, kills: int, seed: int, budget: int = 400) -> None:
    rnd = random.Random(seed)
    db = tmp_path / "opt.duckdb"
    with Warehouse(db):
        pass
    reported: list[str] = []
    for _k in range(kills):
        child = Child("optimize", str(db), str(budget))
        killed = child.kill_after_ready(rnd.uniform(0.2, 2.5), after_progress=_k == 0)
        TALLY["optimize processes killed with SIGKILL" if killed else "optimize runs finished"] += 1
        reported += [line.split()[1] for line in child.lines if line.startswith("RUN ")]
        with _audit(db) as wh:
            runs = wh._read_df(
                "SELECT r.run_id, p.value_num AS x, q.value_text AS c FROM runs AS r "
                "JOIN run_params AS p ON p.run_id = r.run_id AND p.name = 'x' "
                "JOIN run_params AS q ON q.run_id = r.run_id AND q.name = 'c' "
                "WHERE r.dataset = 'd1' AND r.model = 'toy'"
            )
            ids = list(runs.run_id)
            assert len(ids) == len(set(ids))
            missing = set(reported) - set(ids)
            assert not missing, f"{len(missing)} reported trials lost, e.g. {sorted(missing)[:3]}"
            # resume never evaluates a configuration twice, kills or not
            assert not runs.duplicated(["x", "c"]).any()
            metrics = wh._read_df(
                "SELECT count(*) AS n FROM run_metrics WHERE name = 'score' AND run_id IN "
                "(SELECT run_id FROM runs WHERE dataset = 'd1' AND model = 'toy')"
            ).n[0]
            assert int(metrics) == len(ids)
        TALLY["optimize kills survived (warehouse opened, audits clean)"] += 1
        if len(ids) >= budget:
            break
    assert len(reported) > 0, "no trial finished before any kill: delays too short"
    TALLY["optimize runs verified present exactly once"] += len(reported)


def test_sigkill_ingest_many_times(tmp_path):
    _ingest_kills(tmp_path, KILLS, seed=int(time.time()))


def test_sigkill_optimize_many_times(tmp_path):
    _optimize_kills(tmp_path, KILLS, seed=int(time.time()))


@pytest.mark.slow
def test_sigkill_ingest_100_times(tmp_path):
    _ingest_kills(tmp_path, 100, seed=1)


@pytest.mark.slow
def test_sigkill_optimize_100_times(tmp_path):
    _optimize_kills(tmp_path, 100, seed=2, budget=5000)
