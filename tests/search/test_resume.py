"""Resume after kill -9: a real optimize process is killed mid-run and started again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_kill_9_then_resume_loses_and_duplicates_nothing(tmp_path):
    from warehouse import Warehouse

    db, marker = tmp_path / "wh.duckdb", tmp_path / "done.txt"
    with Warehouse(str(db)):
        pass  # create the file (and schema) up front
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.search._optimize_child", str(db), str(marker), "40"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        if marker.exists() and len(marker.read_text().splitlines()) >= 5:
            break
        if proc.poll() is not None:
            pytest.fail(f"child exited early: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("child made no progress")
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    evaluated_before = len(marker.read_text().splitlines())
    assert evaluated_before < 40  # it really was stopped part-way

    with Warehouse(str(db)) as wh:
        logged = wh.sql("SELECT run_id FROM runs WHERE source = 'metaopt:optimize'")
        # every evaluated trial but (at most) the one being logged at the kill is in the file
        assert len(logged) >= evaluated_before - 1
        import numpy as np
        import pandas as pd

        from metaopt_bayes.search import optimize
        from tests.search.conftest import FakeLearner
        from tests.search.test_optimize import objective

        xs = np.round(np.linspace(0, 1, 41), 4)
        pool = pd.DataFrame({"x": np.concatenate([xs, xs]), "c": ["a"] * 41 + ["b"] * 41})
        res = optimize(
            wh,
            "d1",
            "toy",
            12,
            candidates=pool,
            objective=objective,
            learner=FakeLearner(),
            refit_every=0,
        )
        assert res.n_resumed == len(logged)
        assert res.n_new == 12 - len(logged)
        trials = res.trials
        assert len(trials) == 12
        assert not trials.duplicated(["x", "c"]).any()
        assert set(logged.run_id) <= set(trials.run_id)
