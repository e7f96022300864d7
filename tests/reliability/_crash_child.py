"""Child process for the SIGKILL tests: writes to a file warehouse and reports, flushed, each
piece of work that finished (committed) — the parent kills it at a random moment.

    python -m tests.reliability._crash_child ingest DB PREFIX
        log_runs batches of 25 runs (ids PREFIX-bN-rM) and single log_run calls, forever;
        prints ``BATCH <id> <n>`` after each commit.
    python -m tests.reliability._crash_child optimize DB BUDGET
        a real optimize() (stand-in learner, instant objective) that resumes what is there;
        prints ``RUN <run_id>`` after each trial is logged.

Both print ``READY`` once the warehouse is open.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from warehouse import Warehouse

BATCH = 25


def batch_frame(prefix: str, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(abs(hash((prefix, n))) % 2**32)
    return pd.DataFrame(
        {
            "run_id": [f"{prefix}-b{n}-r{j}" for j in range(BATCH)],
            "dataset": [f"ds{j % 3}" for j in range(BATCH)],
            "model": "rf",
            "params.max_depth": rng.integers(1, 10, BATCH),
            "params.criterion": rng.choice(["gini", "entropy"], BATCH),
            "metrics.accuracy": rng.uniform(0, 1, BATCH),
            "metrics.log_loss": rng.uniform(0, 2, BATCH),
            "duration_s": rng.uniform(0, 5, BATCH),
        }
    )


def ingest(db: str, prefix: str) -> None:
    with Warehouse(db) as wh:
        print("READY", flush=True)
        n = 0
        while True:
            wh.log_runs(batch_frame(prefix, n))
            print(f"BATCH {prefix}-b{n} {BATCH}", flush=True)
            n += 1
            run_id = f"{prefix}-s{n}"
            wh.log_run(
                "ds0", "svm", {"C": float(n)}, {"accuracy": 0.5, "log_loss": 0.7}, run_id=run_id
            )
            print(f"BATCH {run_id} 1", flush=True)


def pool(budget: int) -> pd.DataFrame:
    """Twice as many distinct configurations as the budget (never exhausted)."""
    n = max(201, budget + 1)
    xs = np.round(np.linspace(0, 1, n), 6)
    return pd.DataFrame({"x": np.concatenate([xs, xs]), "c": ["a"] * n + ["b"] * n})


def optimize(db: str, budget: int) -> None:
    from metaopt_bayes.search import optimize as run
    from tests.search.conftest import FakeLearner

    def objective(cfg):
        return {"score": float(FakeLearner.truth(cfg["x"], cfg["c"]))}

    def report(trial):
        print(f"RUN {trial['run_id']}", flush=True)

    with Warehouse(db) as wh:
        print("READY", flush=True)
        run(
            wh,
            "d1",
            "toy",
            budget,
            candidates=pool(budget),
            objective=objective,
            learner=FakeLearner(),
            refit_every=0,
            callback=report,
        )
    print("FINISHED", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "ingest":
        ingest(sys.argv[2], sys.argv[3])
    else:
        optimize(sys.argv[2], int(sys.argv[3]))
