"""Child process for the shared-warehouse tests: an optimize (stand-in learner, a pool of
configs, a cheap objective) on a file warehouse shared with other processes.

    python -m tests.reliability._shared_worker DB BUDGET LOG [--slow-after K] [--jobs N]

Each objective call appends ``pid,x,c`` to LOG when it starts; ``--slow-after K`` makes the
call after this process's K-th sleep for a minute (a worker to kill mid-trial)."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from metaopt_bayes.search import optimize
from tests.search.conftest import FakeLearner
from warehouse import Warehouse

_CALLS = {"n": 0}


def pool() -> pd.DataFrame:
    xs = np.round(np.linspace(0, 1, 41), 4)
    return pd.DataFrame({"x": np.concatenate([xs, xs]), "c": ["a"] * 41 + ["b"] * 41})


def objective(cfg: dict) -> dict:
    log, slow_after = os.environ["SHARED_LOG"], int(os.environ.get("SHARED_SLOW_AFTER", "-1"))
    with Path(log).open("a") as fh:
        fh.write(f"{os.getpid()},{cfg['x']},{cfg['c']}\n")
    _CALLS["n"] += 1
    sleep = float(os.environ.get("SHARED_SLEEP", "0.2"))
    time.sleep(60 if slow_after >= 0 and _CALLS["n"] > slow_after else sleep)
    return {"score": float(FakeLearner.truth(cfg["x"], cfg["c"]))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("budget", type=int)
    ap.add_argument("log")
    ap.add_argument("--slow-after", type=int, default=-1)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--stale-after", type=float, default=None)
    a = ap.parse_args()
    os.environ["SHARED_LOG"], os.environ["SHARED_SLOW_AFTER"] = a.log, str(a.slow_after)
    with Warehouse(a.db, busy_timeout=60) as wh:
        res = optimize(
            wh, "d1", "toy", a.budget, candidates=pool(), objective=objective,
            learner=FakeLearner(), refit_every=0, release=True, jobs=a.jobs,
            stale_after=a.stale_after, heartbeat_s=0.5,
        )  # fmt: skip
    print(f"DONE {res.n_new}", flush=True)


if __name__ == "__main__":
    main()
