"""MetaoptSampler with real Optuna, a real MetaLearner (MAP), file warehouses and an RDB
(SQLite) storage shared by two worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

optuna = pytest.importorskip("optuna")

from optuna.distributions import (  # noqa: E402
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState  # noqa: E402

from metaopt_bayes.optuna_sampler import (  # noqa: E402
    PROPOSAL_ATTR,
    MetaoptSampler,
    to_optuna,
    to_space,
)
from warehouse import Warehouse  # noqa: E402
from warehouse.errors import ValidationError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SPACE = {
    "lr": FloatDistribution(1e-4, 1.0, log=True),
    "depth": IntDistribution(1, 8),
    "kind": CategoricalDistribution(["a", "b", "c"]),
}
SHIFT = {"d1": 0.0, "d2": 0.2, "d3": -0.2, "target": 0.1}


def truth(dataset: str, lr: float, depth: int, kind: str) -> float:
    """A score in (0, 1) whose optimum (lr ≈ 1e-2, depth 5, kind b) moves a little per dataset."""
    z = (np.log10(lr) + 2 - SHIFT[dataset]) ** 2 / 4 + (depth - 5) ** 2 / 30
    return float(0.95 - 0.5 * min(z, 1.0) - (0.0 if kind == "b" else 0.08))


def objective(trial) -> float:
    lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
    depth = trial.suggest_int("depth", 1, 8)
    kind = trial.suggest_categorical("kind", ["a", "b", "c"])
    return truth("target", lr, depth, kind)


def seed_history(path: Path, n: int = 24) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for ds in ("d1", "d2", "d3"):
        for _ in range(n):
            lr, depth = 10 ** rng.uniform(-4, 0), int(rng.integers(1, 9))
            kind = str(rng.choice(["a", "b", "c"]))
            rows.append(
                {
                    "dataset": ds,
                    "model": "toy",
                    "params.lr": lr,
                    "params.depth": depth,
                    "params.kind": kind,
                    "metrics.score": truth(ds, lr, depth, kind),
                }
            )
    with Warehouse(path) as wh:
        wh.log_runs(pd.DataFrame(rows))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "wh.duckdb"
    seed_history(path)
    return path


def _sampler(db: Path, **kw) -> MetaoptSampler:
    kw = {"search_space": SPACE, "fit_method": "map", "seed": 0, **kw}
    return MetaoptSampler(db, "target", "toy", "score", **kw)


def _target_runs(db: Path) -> pd.DataFrame:
    with Warehouse(db, read_only=True) as wh:
        return wh.sql(
            "SELECT run_id, status, source FROM runs WHERE dataset = 'target' ORDER BY run_id"
        )


def test_distributions_translate_to_a_space_and_back() -> None:
    dists = {
        "lr": FloatDistribution(1e-4, 1.0, log=True),
        "frac": FloatDistribution(0.0, 1.0, step=0.25),
        "n": IntDistribution(2, 64, log=True),
        "k": IntDistribution(0, 10, step=5),
        "flag": CategoricalDistribution([True, False]),
        "w": CategoricalDistribution([None, "distance"]),
    }
    space = to_space(dists)
    assert space["lr"].log and space["n"].kind == "int" and space["n"].log
    assert space["flag"].choices == (True, False)
    for cfg in space.sample(32, seed=1).to_dict("records"):
        back = {n: to_optuna(cfg[n], d) for n, d in dists.items()}
        for n, d in dists.items():
            assert d._contains(d.to_internal_repr(back[n])), (n, back[n])
    # the warehouse's spellings come back as the distribution's own values
    assert to_optuna(1.0, dists["flag"]) is True
    assert to_optuna(0.6, dists["frac"]) == 0.5
    assert to_optuna(7, dists["k"]) == 5


def test_bad_input_is_refused_in_one_line(db: Path) -> None:
    class Odd(optuna.distributions.BaseDistribution):
        def to_external_repr(self, v):
            return v

        def to_internal_repr(self, v):
            return v

        def single(self):
            return False

        def _contains(self, v):
            return True

    with pytest.raises(ValidationError, match="Odd is not supported") as err:
        _sampler(db, search_space={"x": Odd()})
    assert "\n" not in str(err.value)
    with pytest.raises(ValidationError, match="unknown metric 'acc' for model 'toy'"):
        MetaoptSampler(db, "target", "toy", "acc")
    sampler = _sampler(db)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    with pytest.raises(ValidationError, match="'score' is maximized in the warehouse"):
        study.optimize(objective, n_trials=1)


def test_trials_are_logged_once_with_their_state(db: Path, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(direction="maximize", storage=storage, study_name="s")
    study.optimize(objective, n_trials=3)  # trials from before the sampler was attached
    study = optuna.load_study(study_name="s", storage=storage, sampler=_sampler(db))
    study.optimize(objective, n_trials=2)

    def broken(trial):
        objective(trial)
        raise RuntimeError("diverged")

    study.optimize(broken, n_trials=1, catch=(RuntimeError,))
    runs = _target_runs(db)
    assert list(runs.run_id) == [f"optuna:s:{i}" for i in range(6)]
    assert list(runs.status) == ["finished"] * 5 + ["failed"]
    assert set(runs.source) == {"optuna:s"}
    with Warehouse(db, read_only=True) as wh:
        m = wh.training_matrix("score", model="toy", datasets=["target"])
    by_id = dict(zip(m.run_id, m.value, strict=True))
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        assert by_id[f"optuna:s:{t.number}"] == pytest.approx(t.value)
    # a second sampler (another worker, or a restart) logs nothing again; nor does the importer
    study = optuna.load_study(study_name="s", storage=storage, sampler=_sampler(db, seed=1))
    study.optimize(objective, n_trials=1)
    assert len(_target_runs(db)) == 7
    from warehouse.importers import import_optuna

    with Warehouse(db) as wh:
        res = import_optuna(wh, storage, "s", "target", "toy", metric="score")
    assert res.imported == 0 and res.already_present == 7 and len(_target_runs(db)) == 7


def test_first_proposal_transfers_and_running_trials_are_pending(db: Path) -> None:
    study = optuna.create_study(direction="maximize", sampler=_sampler(db))
    first = study.ask()
    objective(first)  # transfer: the first config is already good
    assert first.params["kind"] == "b" and truth("target", **first.params) > 0.8
    assert study._storage.get_trial_system_attrs(first._trial_id)[PROPOSAL_ATTR] == first.params
    second = study.ask()  # `first` still running: a pending config, not proposed again
    objective(second)
    assert second.params != first.params
    study.tell(first, truth("target", **first.params))
    study.tell(second, truth("target", **second.params))
    assert len(_target_runs(db)) == 2


def test_without_history_the_fallback_samples_until_the_startup_trials(tmp_path: Path) -> None:
    path = tmp_path / "empty.duckdb"
    Warehouse(path).close()
    fallback = optuna.samplers.RandomSampler(seed=3)
    sampler = MetaoptSampler(
        path, "target", "toy", "score", fit_method="map", fallback=fallback, n_startup_trials=4
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=6)  # 4 from the fallback, then metaopt on those 4
    proposed = [PROPOSAL_ATTR in t.system_attrs for t in study.trials]
    assert proposed == [False] * 4 + [True] * 2
    assert len(_target_runs(path)) == 6


def test_two_worker_processes_share_a_study_and_a_warehouse(db: Path, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.create_study(direction="maximize", storage=storage, study_name="shared")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "tests.search._optuna_worker", str(db), storage, "4"]
    t0 = time.time()
    procs = [
        subprocess.Popen([*cmd, str(s)], cwd=ROOT, env=env, stderr=subprocess.PIPE) for s in (1, 2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
    study = optuna.load_study(study_name="shared", storage=storage)
    trials = study.get_trials()
    assert len(trials) == 8 and all(t.state == TrialState.COMPLETE for t in trials)
    configs = {tuple(sorted(t.params.items())) for t in trials}
    assert len(configs) == 8  # no config proposed twice
    assert all(PROPOSAL_ATTR in t.system_attrs for t in trials)  # all from metaopt
    runs = _target_runs(db)
    assert sorted(runs.run_id) == sorted(f"optuna:shared:{t.number}" for t in trials)
    assert set(runs.status) == {"finished"}
    assert time.time() - t0 < 300


def test_a_warehouse_held_too_long_falls_back_and_logs_later(db: Path) -> None:
    sampler = _sampler(db, busy_timeout=0.3)
    hold = (
        "import sys, time\nfrom warehouse import Warehouse\nwh = Warehouse(sys.argv[1])\n"
        "print('held', flush=True)\nsys.stdin.readline()\nwh.close()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(db)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        study = optuna.create_study(direction="maximize", sampler=sampler)
        with pytest.warns(UserWarning, match="is busy") as caught:
            study.optimize(objective, n_trials=1)
        assert {"sampled by the fallback", "is logged later"} <= {
            w
            for m in caught
            for w in ("sampled by the fallback", "is logged later")
            if w in str(m.message)
        }
        assert PROPOSAL_ATTR not in study.trials[0].system_attrs
    finally:
        holder.communicate("\n", timeout=60)
    study.optimize(objective, n_trials=1)  # free again: proposes, and logs trial 0 as well
    assert PROPOSAL_ATTR in study.trials[1].system_attrs
    assert len(_target_runs(db)) == 2
