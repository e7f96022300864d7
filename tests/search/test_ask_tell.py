"""Search.ask / tell: a training loop the user drives, logged as optimize trials, resumable
from the warehouse in a new process."""

from __future__ import annotations

import os
import subprocess
import sys
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
