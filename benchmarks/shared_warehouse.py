"""Several processes, one store: two metaopt ``optimize`` processes sharing one warehouse file
against two Optuna processes sharing one SQLite study, same budget, same cheap objective.

Each side starts ``--procs`` processes at once, each asked for the whole ``--budget`` (metaopt:
``budget`` is the search's total, shared through the warehouse's trial claims; Optuna:
``MaxTrialsCallback(budget)`` on the shared study, its documented way to cap a shared study).
The objective sleeps ``--sleep`` seconds and scores a config of a pool of 82 (x in 41 steps, c
in two choices); metaopt uses the tests' stand-in learner (no MCMC, so the loop and the
coordination are what is timed), Optuna its default TPE sampler. Printed: wall time, trials
run, duplicate configs (a config trained more than once).

Usage::

    PYTHONPATH=. python benchmarks/shared_warehouse.py [--budget 24] [--procs 2] [--sleep 0.2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OPTUNA_WORKER = """
import sys, time
import numpy as np
import optuna
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState
from tests.search.conftest import FakeLearner
optuna.logging.set_verbosity(optuna.logging.WARNING)
url, budget, sleep = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
xs = [float(v) for v in np.round(np.linspace(0, 1, 41), 4)]
def objective(trial):
    x = trial.suggest_categorical("x", xs)
    c = trial.suggest_categorical("c", ["a", "b"])
    time.sleep(sleep)
    return float(FakeLearner.truth(x, c))
study = optuna.create_study(study_name="s", storage=url, load_if_exists=True,
                            direction="maximize")
study.optimize(objective, n_trials=budget,
               callbacks=[MaxTrialsCallback(budget, states=(TrialState.COMPLETE,
                                                            TrialState.RUNNING))])
"""


def _run(cmds: list[list[str]], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for c in cmds
    ]
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(err.decode()[-2000:])
    return time.perf_counter() - t0


def metaopt_side(folder: Path, budget: int, procs: int, sleep: float) -> tuple[float, int, int]:
    from warehouse import Warehouse

    db, log = folder / "shared.duckdb", folder / "log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SHARED_SLEEP": str(sleep)}
    cmd = [sys.executable, "-m", "tests.reliability._shared_worker", str(db), str(budget),
           str(log)]  # fmt: skip
    wall = _run([cmd] * procs, env)
    with Warehouse(db, read_only=True) as wh:
        n = int(wh.sql("SELECT count(*) AS n FROM runs WHERE source = 'metaopt:optimize'").n[0])
    started = log.read_text().splitlines()
    configs = [line.split(",", 1)[1] for line in started]
    return wall, n, len(configs) - len(set(configs))


def optuna_side(folder: Path, budget: int, procs: int, sleep: float) -> tuple[float, int, int]:
    import optuna

    url = f"sqlite:///{folder / 'optuna.db'}"
    optuna.create_study(study_name="s", storage=url, direction="maximize")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", OPTUNA_WORKER, url, str(budget), str(sleep)]
    wall = _run([cmd] * procs, env)
    trials = optuna.load_study(study_name="s", storage=url).get_trials(deepcopy=False)
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    configs = [(t.params["x"], t.params["c"]) for t in done]
    return wall, len(done), len(configs) - len(set(configs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=int, default=24)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--sleep", type=float, default=0.2)
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, side in (("metaopt (shared warehouse)", metaopt_side),
                           ("optuna (shared SQLite study)", optuna_side)):  # fmt: skip
            folder = Path(tmp) / name.split()[0]
            folder.mkdir()
            rows.append((name, *side(folder, a.budget, a.procs, a.sleep)))
    print(f"{a.procs} processes, budget {a.budget}, objective {a.sleep:g} s\n")
    print("| store | wall s | trials run | duplicate configs |")
    print("|---|---:|---:|---:|")
    for name, wall, n, dup in rows:
        print(f"| {name} | {wall:.1f} | {n} | {dup} |")


if __name__ == "__main__":
    main()
