"""Search.ask / tell: a training loop the user drives, logged as optimize trials, resumable
from the warehouse in a new process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metaopt_bayes import Search
from warehouse import Warehouse
from warehouse.errors import ValidationError

ROOT = Path(__file__).resolve().parents[2]
SPACE = {
    "x": {"type": "float", "low": 0.0, "high": 1.0},
    "depth": {"type": "int", "low": 1, "high": 8},
}


def loss(cfg):
    return float((cfg["x"] - 0.3) ** 2 + 0.01 * cfg["depth"])


def test_ask_tell_logs_trials_and_learns(wh):
    s = Search(wh, "d1", "my_net", space=SPACE, metric="val_loss", fit_method="map", n_init=2)
    asked = [s.ask() for _ in range(2)]  # two in flight at once: distinct
    assert asked[0].config != asked[1].config and isinstance(asked[0].config["depth"], int)
    for t in asked:
        s.tell(t, {"val_loss": loss(t.config), "arch.layers": t.config["depth"]})
    for _ in range(3):
        t = s.ask()
        s.tell(t, loss(t.config))  # a bare number is the named metric
    failed = s.ask()
    s.tell(failed, error="CUDA out of memory\nTraceback ...")
    trials = s.trials()
    assert len(trials) == 6 and trials.status.tolist().count("failed") == 1
    assert s.direction == "minimize" and s.best()["value"] == trials.value.min()
    runs = wh.sql("SELECT run_id, error, duration_s FROM runs ORDER BY seq")
    assert runs.run_id.tolist() == trials.run_id.tolist()
    assert runs.error.iloc[-1] == "CUDA out of memory" and (runs.duration_s >= 0).all()
    assert s._proposer.learner is not None  # fitted once n_init trials were told


def test_tell_refuses_what_it_cannot_log(wh):
    s = Search(wh, "d1", "my_net", space=SPACE, fit_method="map")
    t = s.ask()
    with pytest.raises(ValidationError, match="bare number but no metric is named"):
        s.tell(t, 0.5)
    with pytest.raises(ValidationError, match="'acc': 'high'; a metric must be a number"):
        s.tell(t, {"acc": "high"})
    assert s.tell(t, {"acc": 0.5}) and s.metric == "acc"  # still asked: told now
    with pytest.raises(ValidationError, match="not a trial asked by this search"):
        s.tell(t, {"acc": 0.5})
    with pytest.raises(ValidationError, match="needs space= or candidates="):
        Search(wh, "d1", "my_net")


_CHILD = """
import sys
from metaopt_bayes import Search
from tests.search.test_ask_tell import SPACE
from warehouse import Warehouse
with Warehouse(sys.argv[1]) as wh:
    s = Search(wh, "d1", "my_net", space=SPACE, fit_method="map", n_init=2)
    for _ in range(int(sys.argv[2])):
        t = s.ask()
        s.tell(t, {"val_loss": (t.config["x"] - 0.3) ** 2})
    print(s.n_resumed, len(s.trials()))
"""


def test_a_new_process_continues_from_the_told_trials(tmp_path):
    db = str(tmp_path / "w.duckdb")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    outs = [
        subprocess.run(
            [sys.executable, "-c", _CHILD, db, n],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        for n in ("3", "2")
    ]
    for out in outs:
        assert out.returncode == 0, out.stderr
    assert [o.stdout.split() for o in outs] == [["0", "3"], ["3", "5"]]
    with Warehouse(db) as wh:
        trials = Search(wh, "d1", "my_net", space=SPACE, fit_method="map").trials()
    assert len(trials) == 5 and not trials.duplicated(["x", "depth"]).any()


_WORKER = """
import os, sys, time
from metaopt_bayes import Search
from tests.reliability._shared_worker import pool
from tests.search.conftest import FakeLearner
from warehouse import Warehouse
db, budget, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
numbers = []
with Warehouse(db, busy_timeout=60) as wh:
    s = Search(wh, "d1", "toy", candidates=pool(), learner=FakeLearner(), budget=budget,
               release=True, heartbeat_s=0.5)
    while (t := s.ask()) is not None:
        numbers.append(t.number)
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()},{t.config['x']},{t.config['c']}\\n")
        time.sleep(0.2)  # training, the warehouse let go of meantime
        s.tell(t, {"score": FakeLearner.truth(t.config["x"], t.config["c"]).item()})
print(" ".join(map(str, numbers)), flush=True)
"""


def test_two_concurrent_workers_share_one_budget(tmp_path):
    """Two ask/tell workers at once with budget=10: exactly 10 trials between them, no config
    handed out twice, each trial numbered by its place among both workers' trials."""
    db, log = tmp_path / "w.duckdb", tmp_path / "log"
    Warehouse(db).close()  # created before both open it
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(db), "10", str(log)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(2)
    ]  # fmt: skip
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    numbers = [[int(n) for n in o[0].split()] for o in outs]
    assert all(numbers), numbers  # both asked: they ran side by side
    assert sorted(numbers[0] + numbers[1]) == list(range(1, 11))
    started = log.read_text().splitlines()
    assert len(started) == 10 and len({line.split(",", 1)[1] for line in started}) == 10
    with Warehouse(db, read_only=True) as wh:
        runs = wh.sql("SELECT run_id FROM runs WHERE source = 'metaopt:optimize'")
        claims = wh.sql("SELECT state, run_id FROM trial_claims")
    assert len(runs) == 10 and set(claims.state) == {"complete"}
    assert set(claims.run_id) == set(runs.run_id)  # logged under their claims' run ids


def test_budget_claims_and_giving_up(tmp_path):
    from tests.reliability._shared_worker import pool
    from tests.search.conftest import FakeLearner

    with Warehouse(tmp_path / "w.duckdb") as wh:
        # another host's untold trial, silent for longer than stale_after: failed by the ask
        wh.claim_trial("d1", "toy", "k", {"x": 0.3, "c": "b"}, source="metaopt:optimize",
                       owner="another-host:1:1")  # fmt: skip
        time.sleep(0.3)
        s = Search(wh, "d1", "toy", candidates=pool(), learner=FakeLearner(), budget=3,
                   stale_after=0.2)  # fmt: skip
        a, b = s.ask(), s.ask()
        assert (a.number, b.number) == (1, 2) and a.config != b.config
        s.tell(a, error="diverged")  # a failed run: counts against the budget
        s.close()  # b given up: its slot is free again
        c, d = s.ask(), s.ask()
        assert (c.number, d.number) == (2, 3) and s.ask() is None  # 3 = budget
        s.tell(c, {"score": 0.5})
        s.tell(d, {"score": 0.4})
        assert s.ask() is None and len(s.trials()) == 3
        states = wh.sql("SELECT owner, state, error FROM trial_claims ORDER BY claimed_at")
    assert states.state.tolist() == ["fail", "complete", "fail", "complete", "complete"]
    assert "no heartbeat" in states.error[0] and states.error[2] == "asked and never told"
    with pytest.raises(ValidationError, match="budget must be a positive integer"):
        Search(wh, "d1", "toy", candidates=pool(), learner=FakeLearner(), budget=0)
