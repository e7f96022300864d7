"""Tabular search benchmark: metaopt's acquisition search against standard HPO baselines.

Setting (HPO-B / tabular-benchmark style): every method may only pick configurations that were
actually evaluated on the held-out task (its "pool"), so a pick costs a table look-up. Tasks are
split leave-tasks-out with 5 folds (each fold: meta-train on 80% of the tasks, search the other
20%; fold ``k`` uses seed ``k`` for every method), so every task is searched exactly once per
repeat; ``--split-seed s`` draws another split (seeds ``5s + k``). Methods:

- ``random``      — uniform random order of the pool.
- ``tpe``         — Optuna's TPE sampler; each proposal is snapped to the nearest untried pool
                    config (Euclidean in the unit-encoded space) and *that* config is told.
- ``gp``          — Optuna's GPSampler, snapped the same way (needs torch; skipped without).
- ``nn-warm``     — nearest datasets by meta-features (standardized L1, as auto-sklearn 1.0):
                    the best config of each of the 25 nearest meta-train tasks, snapped to the
                    pool, then random. Tasks without meta-features fall back to random order of
                    meta-train tasks.
- ``portfolio``   — a zero-shot portfolio (auto-sklearn 2.0, TabRepo): the configs that one by
                    one most lower the meta-train tasks' mean regret, in that order, then random.
                    Only where every task has the same configs (tabrepo).
- ``metaopt-ei``  — metaopt's :class:`MetaLearner` fitted on the meta-train tasks, then
                    :func:`metaopt_bayes.search.recommend` (log-EI) one trial at a time, every
                    trial logged to the warehouse so the few-shot update sees it.
- ``metaopt-cei`` — cost-aware EI (EI per predicted training second) on tabrepo.
- ``metaopt-ts`` / ``metaopt-ucb`` — the same learner with Thompson sampling / UCB, run only
                    when named in ``--methods``; so are ``metaopt-noadapt`` (no task
                    adaptation), ``metaopt-rank`` (RGPE's ranking weight),
                    ``metaopt-norandom`` (no random picks where the search stalls) and
                    ``metaopt-random4`` (a random pick after 4 trials without improvement
                    instead of 8), ``metaopt-warm0`` / ``-warm1`` / ``-warm5`` (the first 0 /
                    1 / 5 trials from the history's portfolio instead of 3; ``warm0`` is the
                    0.5.0 search).

Each table is followed by what the targets ask for on those tasks: random search's exact
expected regret, and on tabrepo the lowest regret any fixed set of configs reaches when chosen
knowing every result of the searched tasks (an integer program) — a bound for every method
that does not adapt to the task — and the best ``b`` configs by a GP that knows every other
config of the task (leave-one-out), what a perfectly informed model ranking would reach.

Metric: normalized regret ``(best − found) / (best − worst)`` over the task's pool (sign-flipped
for minimized metrics), and the average rank of the methods per task, after 1, 5, 10, 25 and
50 trials; on tabrepo also against cumulative training time, measured in multiples of the
task's median training time.

Usage::

    PYTHONPATH=. python benchmarks/search.py                 # both suites, all methods
    PYTHONPATH=. python benchmarks/search.py --quick         # small smoke run
    PYTHONPATH=. python benchmarks/search.py --suite tabrepo --methods random,tpe

Writes ``benchmarks/results/search_<suite>.{csv,md,png}`` and prints the tables.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _find_data() -> Path:
    """``$METAOPT_SHARED_DATA``, else ``shared/data`` beside the checkout (or its worktree dir)."""
    if os.environ.get("METAOPT_SHARED_DATA"):
        return Path(os.environ["METAOPT_SHARED_DATA"])
    for up in (ROOT.parent, ROOT.parent.parent):
        if (up / "shared" / "data").is_dir():
            return up / "shared" / "data"
    return ROOT.parent / "shared" / "data"


DATA = _find_data()
OUT = ROOT / "benchmarks" / "results"
BUDGETS = (1, 5, 10, 25, 50)
TIME_BUDGETS = (1, 5, 10, 25, 50)  # multiples of the task's median training time


# --------------------------------------------------------------------------------------------
# Suites
# --------------------------------------------------------------------------------------------
@dataclass
class Param:
    """One hyperparameter: kind 'float' | 'int' | 'cat', bounds or choices, log scale."""

    name: str
    kind: str
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    choices: tuple = ()


@dataclass
class Suite:
    name: str
    model: str
    metric: str
    maximize: bool
    params: list[Param]
    runs: pd.DataFrame  # task, param columns, value, cost (may be NaN)
    meta: pd.DataFrame  # index task, numeric meta-feature columns
    has_cost: bool = False
    tasks: list = field(default_factory=list)
    # task → group with its own meta-learner (tabrepo: the problem type, whose metric_error
    # is 1-AUC, log loss or RMSE — three different metrics under one name)
    groups: dict = field(default_factory=dict)

    def pool(self, task) -> pd.DataFrame:
        return self.runs[self.runs["task"] == task].reset_index(drop=True)


def load_openml_rf() -> Suite:
    """openml100_rf: 94 tasks × 500 random-forest configs, predictive accuracy (maximize)."""
    rf = pd.read_csv(DATA / "openml100_rf" / "random_forest.csv")
    cols = [
        "bootstrap",
        "criterion",
        "max_features",
        "min_samples_leaf",
        "min_samples_split",
        "strategy",
    ]  # max_depth, max_leaf_nodes are always None; n_estimators always 100
    runs = pd.DataFrame({"task": rf["task_id"].astype(str)})
    runs["bootstrap"] = rf["bootstrap"].astype(bool).astype(int)
    runs["criterion"] = rf["criterion"].astype(str)
    runs["max_features"] = rf["max_features"].astype(float)
    runs["min_samples_leaf"] = rf["min_samples_leaf"].astype(float)
    runs["min_samples_split"] = rf["min_samples_split"].astype(float)
    runs["strategy"] = rf["strategy"].astype(str)
    runs["value"] = rf["predictive_accuracy"].astype(float)
    runs["cost"] = np.nan
    q = pd.read_csv(DATA / "openml100_rf" / "task_qualities.csv")
    q["task_id"] = q["task_id"].astype(str)
    meta = q.set_index("task_id").drop(columns=["source"]).astype(float)
    meta = meta.loc[meta.index.isin(runs["task"])]
    params = [
        Param("bootstrap", "cat", choices=(0, 1)),
        Param("criterion", "cat", choices=("entropy", "gini")),
        Param("max_features", "float", runs.max_features.min(), runs.max_features.max()),
        Param("min_samples_leaf", "int", 1, 20),
        Param("min_samples_split", "int", 2, 20),
        Param("strategy", "cat", choices=("mean", "median", "most_frequent")),
    ]
    assert [p.name for p in params] == cols
    return Suite(
        "openml100_rf",
        "random_forest",
        "predictive_accuracy",
        True,
        params,
        runs,
        meta,
        False,
        sorted(runs["task"].unique()),
    )


def load_tabrepo() -> Suite:
    """tabrepo_lightgbm_2022: 93 tasks × 104 LightGBM configs, metric_error (minimize), cost."""
    d = DATA / "tabrepo_lightgbm_2022"
    res = pd.read_csv(d / "results.csv")
    cfg = pd.read_csv(d / "configs_lightgbm.csv")
    # Empty = the library default; AutoGluon's LightGBM defaults (learning_rate 0.05, the rest
    # LightGBM's own) so every config is a point in the same space.
    defaults = {
        "hp_learning_rate": 0.05,
        "hp_num_leaves": 31.0,
        "hp_feature_fraction": 1.0,
        "hp_min_data_in_leaf": 20.0,
        "hp_extra_trees": False,
    }
    for k, v in defaults.items():
        cfg[k] = cfg[k].astype(object).where(cfg[k].notna(), v)
    cfg["extra_trees"] = cfg["hp_extra_trees"].map(lambda x: int(str(x) == "True"))
    cfg["learning_rate"] = cfg["hp_learning_rate"].astype(float)
    cfg["num_leaves"] = cfg["hp_num_leaves"].astype(float)
    cfg["feature_fraction"] = cfg["hp_feature_fraction"].astype(float)
    cfg["min_data_in_leaf"] = cfg["hp_min_data_in_leaf"].astype(float)
    names = ["extra_trees", "learning_rate", "num_leaves", "feature_fraction", "min_data_in_leaf"]
    m = res.merge(cfg[["config_name", *names]], on="config_name", how="left")
    runs = pd.DataFrame({"task": m["task_id"].astype(str)})
    for n in names:
        runs[n] = m[n]
    runs["value"] = m["metric_error"].astype(float)
    runs["cost"] = m["time_train_s"].astype(float)
    runs["config_name"] = m["config_name"]
    tm = pd.read_csv(d / "task_metadata.csv")
    tm["tid"] = tm["tid"].astype(str)
    num = [
        "MajorityClassSize",
        "MinorityClassSize",
        "NumberOfClasses",
        "NumberOfFeatures",
        "NumberOfInstances",
        "NumberOfInstancesWithMissingValues",
        "NumberOfMissingValues",
        "NumberOfNumericFeatures",
        "NumberOfSymbolicFeatures",
    ]
    meta = tm.set_index("tid")[num].astype(float)
    # problem type is known up front for a new task: add it as meta-features
    pt = res.drop_duplicates("task_id").set_index(res.drop_duplicates("task_id")["task_id"])
    ptype = pt["problem_type"]
    ptype.index = ptype.index.astype(str)
    meta = meta.loc[meta.index.isin(runs["task"])]
    meta["is_regression"] = (ptype.reindex(meta.index) == "regression").astype(float)
    meta["is_multiclass"] = (ptype.reindex(meta.index) == "multiclass").astype(float)
    meta = meta.fillna(0.0)
    params = [
        Param("extra_trees", "cat", choices=(0, 1)),
        Param("learning_rate", "float", runs.learning_rate.min(), runs.learning_rate.max(), True),
        Param("num_leaves", "int", runs.num_leaves.min(), runs.num_leaves.max(), True),
        Param("feature_fraction", "float", runs.feature_fraction.min(), 1.0),
        Param("min_data_in_leaf", "int", runs.min_data_in_leaf.min(), 60, True),
    ]
    return Suite(
        "tabrepo_lightgbm_2022",
        "lightgbm",
        "metric_error",
        False,
        params,
        runs,
        meta,
        True,
        sorted(runs["task"].unique()),
        ptype.to_dict(),
    )


BENCH_DATA = ROOT / "benchmarks" / "data"


def load_pmlb(family: str, split: str = "all", path: Path | None = None) -> Suite:
    """``benchmarks/data/pmlb_<family>.parquet``: one shared pool of configs of ``family``
    cross-validated on PMLB classification datasets (``make_pmlb_suites.py``), accuracy
    (maximize), training seconds as cost. ``split``: the datasets of ``pmlb_splits.csv``'s
    ``dev`` or ``holdout`` group, or ``all``. ``path``: another runs file of that layout
    (the learning-curve suites' ``pmlb_curves_<family>_runs.parquet``)."""
    df = pd.read_parquet(path or BENCH_DATA / f"pmlb_{family}.parquet")
    if split != "all":
        groups = pd.read_csv(BENCH_DATA / "pmlb_splits.csv")
        keep = set(groups.loc[groups["split"] == split, "dataset"].astype(str))
        df = df[df["dataset"].astype(str).isin(keep)]
    names = [c[len("params.") :] for c in df.columns if c.startswith("params.")]
    runs = pd.DataFrame({"task": df["dataset"].astype(str).to_numpy()})
    params = []
    for n in names:
        col = df[f"params.{n}"]
        if col.nunique(dropna=False) < 2:
            continue  # fixed in the pool (e.g. max_iter): not a search dimension
        num = pd.to_numeric(col, errors="coerce")
        if num.notna().all() and num.nunique() > 3:
            lo, hi = float(num.min()), float(num.max())
            whole = bool(np.allclose(num, np.round(num)))
            log = lo > 0 and hi / lo >= 50
            params.append(Param(n, "int" if whole else "float", lo, hi, log))
            runs[n] = num.to_numpy()
        else:
            vals = col.astype(str).to_numpy()
            params.append(Param(n, "cat", choices=tuple(sorted(set(vals)))))
            runs[n] = vals
    runs["value"] = df["metrics.accuracy"].astype(float).to_numpy()
    runs["cost"] = df["duration_s"].astype(float).to_numpy()
    runs["config_name"] = df["tags.config_id"].astype(str).to_numpy()
    runs["run_id"] = df["run_id"].astype(str).to_numpy()
    meta = pd.read_parquet(BENCH_DATA / "pmlb_meta.parquet")
    meta["dataset"] = meta["dataset"].astype(str)
    meta = meta.set_index("dataset").select_dtypes("number").astype(float)
    meta = meta.loc[meta.index.isin(runs["task"])]
    return Suite(
        f"pmlb_{family}" + ("" if split == "all" else f"_{split}"),
        family,
        "accuracy",
        True,
        params,
        runs,
        meta,
        True,
        sorted(runs["task"].unique()),
    )


def _mirrored(suite: Suite, X: np.ndarray) -> np.ndarray:
    """The unit-cube encoding of each config reflected: numeric ``x → 1 − x``, a categorical's
    choices in reverse order."""
    out, j = X.copy(), 0
    for p in suite.params:
        w = len(p.choices) if p.kind == "cat" else 1
        out[:, j : j + w] = X[:, j : j + w][:, ::-1] if p.kind == "cat" else 1.0 - X[:, j : j + w]
        j += w
    return out


def stressed(suite: Suite, train_tasks: list, mode: str, seed: int) -> Suite:
    """A misleading history for a stress test (the searched tasks keep their true values).

    ``mirror``: on every history task, each config is given the value of the config nearest
    to its mirror image (numeric parameters reflected within their range, categorical choices
    reversed): the history is as smooth and as consistent as the real one, and its best region
    is the reflection of the true one. ``shuffle-meta``: the tasks' meta-features permuted, so
    every task, the searched ones included, looks like another.
    """
    import copy

    out = copy.copy(suite)
    if mode == "mirror":
        runs = suite.runs.copy()
        train = set(train_tasks)
        for t, idx in runs.groupby("task").groups.items():
            if t not in train:
                continue
            pool = runs.loc[idx]
            X = encode(suite, pool)
            d = ((X[:, None, :] - _mirrored(suite, X)[None, :, :]) ** 2).sum(-1)
            near = np.argmin(d, axis=0)  # for each config, the config at its mirror image
            for col in ("value", "cost"):
                runs.loc[idx, col] = pool[col].to_numpy()[near]
        out.runs = runs
    elif mode == "shuffle-meta":
        perm = np.random.default_rng(seed).permutation(len(suite.meta))
        out.meta = suite.meta.set_axis(suite.meta.index[perm])
    elif mode != "none":
        raise ValueError(f"unknown stress {mode!r}")
    return out


def encode(suite: Suite, df: pd.DataFrame) -> np.ndarray:
    """Configs → unit cube (log where marked), categoricals one-hot; for snapping proposals."""
    cols = []
    for p in suite.params:
        x = df[p.name]
        if p.kind == "cat":
            for c in p.choices:
                cols.append((x.astype(str) == str(c)).astype(float).to_numpy())
        else:
            v = x.astype(float).to_numpy()
            lo, hi = p.low, p.high
            if p.log:
                v, lo, hi = np.log(v), math.log(lo), math.log(hi)
            cols.append((v - lo) / (hi - lo) if hi > lo else np.zeros_like(v))
    return np.column_stack(cols)


# --------------------------------------------------------------------------------------------
# One search on one task
# --------------------------------------------------------------------------------------------
@dataclass
class Task:
    suite: Suite
    name: str
    pool: pd.DataFrame
    X: np.ndarray
    train_tasks: list
    fold_state: dict


def _snap(task: Task, proposal: pd.DataFrame, taken: np.ndarray) -> int:
    """Index of the untried pool config nearest to ``proposal`` (unit-cube Euclidean)."""
    x = encode(task.suite, proposal)[0]
    d = ((task.X - x) ** 2).sum(axis=1)
    d[taken] = np.inf
    return int(np.argmin(d))


def run_random(task: Task, budget: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    return rng.permutation(len(task.pool))[:budget].tolist()


def optuna_distributions(suite: Suite) -> dict:
    """The suite's parameters as Optuna distributions."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    dists = {}
    for p in suite.params:
        if p.kind == "cat":
            dists[p.name] = CategoricalDistribution(list(p.choices))
        elif p.kind == "int":
            dists[p.name] = IntDistribution(int(p.low), int(p.high), log=p.log)
        else:
            dists[p.name] = FloatDistribution(float(p.low), float(p.high), log=p.log)
    return dists


def snapped_params(task: Task, idx: int) -> dict:
    """Pool config ``idx`` as values of the suite's Optuna distributions."""
    snapped = {}
    for p in task.suite.params:
        v = task.pool.at[idx, p.name]
        if p.kind == "cat":
            v = next(c for c in p.choices if str(c) == str(v))
        elif p.kind == "int":
            v = int(min(max(round(float(v)), p.low), p.high))
        else:
            v = float(min(max(float(v), p.low), p.high))
        snapped[p.name] = v
    return snapped


def _optuna_run(task: Task, budget: int, seed: int, sampler) -> list[int]:
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    dists = optuna_distributions(task.suite)
    direction = "maximize" if task.suite.maximize else "minimize"
    study = optuna.create_study(direction=direction, sampler=sampler)
    taken = np.zeros(len(task.pool), dtype=bool)
    order: list[int] = []
    values = task.pool["value"].to_numpy()
    for _ in range(min(budget, len(task.pool))):
        trial = study.ask(dists)
        idx = _snap(task, pd.DataFrame([trial.params]), taken)
        # the asked trial is failed (TPE/GP ignore failed trials); the snapped config is told
        study.tell(trial, state=TrialState.FAIL)
        study.add_trial(
            create_trial(params=snapped_params(task, idx), distributions=dists, value=values[idx])
        )
        taken[idx] = True
        order.append(idx)
    return order


def run_tpe(task: Task, budget: int, seed: int) -> list[int]:
    import optuna

    return _optuna_run(task, budget, seed, optuna.samplers.TPESampler(seed=seed))


def run_gp(task: Task, budget: int, seed: int) -> list[int]:
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _optuna_run(task, budget, seed, optuna.samplers.GPSampler(seed=seed))


def run_nn_warm(task: Task, budget: int, seed: int, k: int = 25) -> list[int]:
    """auto-sklearn 1.0 meta-learning warm start (Feurer et al. 2015): best configs of the
    k nearest meta-train datasets by L1 distance of standardized meta-features, then random."""
    suite = task.suite
    rng = np.random.default_rng(seed)
    train = [t for t in task.train_tasks]
    meta = suite.meta
    if task.name in meta.index:
        known = [t for t in train if t in meta.index]
        mf = meta.loc[[*known, task.name]]
        mf = np.log1p(mf.clip(lower=0)) if (mf >= 0).all().all() else mf
        z = (mf - mf.loc[known].mean()) / mf.loc[known].std(ddof=0).replace(0, 1)
        dist = (z.loc[known] - z.loc[task.name]).abs().sum(axis=1)
        nearest = dist.sort_values().index.tolist()
        nearest += [t for t in rng.permutation(train).tolist() if t not in nearest]
    else:
        nearest = rng.permutation(train).tolist()
    best_cfg = task.fold_state["best_config"]
    taken = np.zeros(len(task.pool), dtype=bool)
    order: list[int] = []
    for t in nearest[:k]:
        if len(order) >= budget:
            break
        idx = _snap(task, best_cfg.loc[[t]], taken)
        taken[idx] = True
        order.append(idx)
    rest = [i for i in rng.permutation(len(task.pool)).tolist() if not taken[i]]
    return (order + rest)[:budget]


def _regret_matrix(runs: pd.DataFrame, maximize: bool) -> pd.DataFrame:
    """Task × config_name normalized regret (suites whose configs recur on every task)."""
    v = runs.pivot_table(index="task", columns="config_name", values="value")
    v = v if maximize else -v
    best, worst = v.max(axis=1), v.min(axis=1)
    span = (best - worst).replace(0, 1)
    return v.rsub(best, axis=0).div(span, axis=0).fillna(1.0)


def greedy_portfolio(regret: pd.DataFrame, size: int) -> list:
    """Configs chosen one at a time, each the one that most lowers the tasks' mean regret
    given those before it (the zero-shot portfolios of auto-sklearn 2.0 and TabRepo)."""
    R = regret.to_numpy()
    cur = np.ones(len(R))
    chosen: list[int] = []
    for _ in range(min(size, R.shape[1])):
        score = np.minimum(cur[:, None], R).mean(axis=0)
        score[chosen] = np.inf
        j = int(np.argmin(score))
        chosen.append(j)
        cur = np.minimum(cur, R[:, j])
    return [regret.columns[j] for j in chosen]


def run_portfolio(task: Task, budget: int, seed: int) -> list[int]:
    """The meta-train tasks' greedy portfolio, in its order, then random."""
    names = task.pool["config_name"].tolist()
    order = [names.index(c) for c in task.fold_state["portfolio"] if c in names]
    taken = set(order)
    rest = [i for i in np.random.default_rng(seed).permutation(len(names)) if i not in taken]
    return (order + [int(i) for i in rest])[:budget]


def best_fixed_regret(regret: pd.DataFrame, k: int, time_limit: float = 120.0) -> float:
    """The lowest mean regret any fixed set of ``k`` configs reaches on these tasks, chosen
    knowing every result (a facility-location integer program, solved by HiGHS): no method
    that does not adapt to the task's results can do better."""
    from scipy import sparse
    from scipy.optimize import Bounds, LinearConstraint, milp

    R = regret.to_numpy()
    T, C = R.shape
    if k >= C:
        return 0.0
    # x[t, c] = task t is served by config c; y[c] = config c is in the set
    cost = np.concatenate([R.ravel() / T, np.zeros(C)])
    one_each = sparse.hstack(
        [sparse.kron(sparse.eye(T), np.ones((1, C))), sparse.csr_matrix((T, C))]
    )
    only_chosen = sparse.hstack([sparse.eye(T * C), -sparse.kron(np.ones((T, 1)), sparse.eye(C))])
    k_of_them = sparse.hstack([sparse.csr_matrix((1, T * C)), np.ones((1, C))])
    A = sparse.vstack([one_each, only_chosen, k_of_them]).tocsr()
    lo = np.concatenate([np.ones(T), np.full(T * C, -np.inf), [k]])
    hi = np.concatenate([np.ones(T), np.zeros(T * C), [k]])
    res = milp(
        cost,
        constraints=LinearConstraint(A, lo, hi),
        integrality=np.concatenate([np.zeros(T * C), np.ones(C)]),
        bounds=Bounds(0, 1),
        options={"time_limit": time_limit},
    )
    if res.status != 0:  # time limit: report the solver's proven lower bound
        return float(res.mip_dual_bound)
    return float(res.fun)


def _own_regret(values: np.ndarray, maximize: bool) -> np.ndarray:
    """Each config's normalized regret on its task."""
    v = values if maximize else -values
    span = v.max() - v.min()
    return (v.max() - v) / span if span > 0 else np.zeros(len(v))


def _expected_random_regret(regret: np.ndarray, b: int) -> float:
    """Expected best regret of ``b`` configs drawn without replacement from the pool."""
    r = np.sort(regret)
    n = len(r)
    if b >= n:
        return float(r[0])
    # P(the i-th best is the best drawn) = C(n-1-i, b-1) / C(n, b)
    p = np.array([math.comb(n - 1 - i, b - 1) for i in range(n)], dtype=float) / math.comb(n, b)
    return float(p @ r)


def loo_gp_regret(suite: Suite, runs: pd.DataFrame, budgets) -> list[float]:
    """Mean regret of the ``b`` configs a GP ranks best when it knows every *other* config of
    the task: a Matérn-5/2 ARD + white-noise GP (type-II ML, scikit-learn) on the task's whole
    pool, each config predicted leave-one-out (closed form, ``y − [K⁻¹y] / diag K⁻¹``). No
    transfer method knows a new task this well: a reference for what a model-ranked choice of
    ``b`` configs can reach on these tasks, noise and all — not a strict bound, since a
    sequential search sees each pick's result."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    per_task = []
    for _, g in runs.groupby("task"):
        X = encode(suite, g)
        r = _own_regret(g["value"].to_numpy(), suite.maximize)
        y = (r - r.mean()) / (r.std() or 1.0)
        kernel = ConstantKernel() * Matern(np.ones(X.shape[1]), nu=2.5) + WhiteKernel(0.1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gp = GaussianProcessRegressor(kernel, n_restarts_optimizer=2, random_state=0)
            gp.fit(X, y)
        Ki = np.linalg.inv(gp.kernel_(X))
        order = np.argsort(y - (Ki @ y) / np.diag(Ki))
        per_task.append([r[order[:b]].min() for b in budgets])
    return list(np.mean(per_task, axis=0))


def reach(suite: Suite, budgets, tasks) -> str:
    """What can be reached on ``tasks``, for reading the targets: random search's exact
    expected regret, and (configs shared by every task) the best fixed set of configs and the
    best ``b`` by a GP that knows the rest of the task (:func:`loo_gp_regret`)."""
    runs = suite.runs[suite.runs["task"].isin(set(tasks))]
    rows = {"random search, exact expectation": []}
    for b in budgets:
        per_task = [
            _expected_random_regret(_own_regret(g.to_numpy(), suite.maximize), b)
            for _, g in runs.groupby("task")["value"]
        ]
        rows["random search, exact expectation"].append(float(np.mean(per_task)))
    if "config_name" in runs.columns:
        R = _regret_matrix(runs, suite.maximize)
        rows["best fixed set, chosen knowing every result"] = [
            best_fixed_regret(R, b) for b in budgets
        ]
        rows["top b of a GP knowing the task's other configs"] = loo_gp_regret(suite, runs, budgets)
    head = "| reference | " + " | ".join(f"trials={b}" for b in budgets) + " |"
    lines = [head, "|" + "---|" * (len(budgets) + 1)]
    lines += [f"| {k} | " + " | ".join(f"{x:.4f}" for x in v) + " |" for k, v in rows.items()]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# metaopt
# --------------------------------------------------------------------------------------------
def _fit_fold(suite: Suite, train_tasks: list, method: str) -> dict:
    """Meta-train: a fresh in-memory warehouse with the meta-train runs and one MetaLearner per
    task group (one in all when the suite has no groups), plus a duration learner with costs."""
    from metaopt_bayes.model import MetaLearner
    from warehouse import Warehouse

    wh = Warehouse(":memory:")
    tr = suite.runs[suite.runs["task"].isin(train_tasks)]
    df = pd.DataFrame({"dataset": tr["task"].to_numpy(), "model": suite.model})
    for p in suite.params:
        df[f"params.{p.name}"] = tr[p.name].to_numpy()
    df[f"metrics.{suite.metric}"] = tr["value"].to_numpy()
    if suite.has_cost:
        df["duration_s"] = tr["cost"].to_numpy()
    wh.log_runs(df)
    meta = suite.meta.reset_index().rename(columns={suite.meta.index.name or "index": "dataset"})
    meta = meta.rename(columns={meta.columns[0]: "dataset"})
    wh.log_dataset_meta_features(meta)
    t0 = time.perf_counter()
    direction = "maximize" if suite.maximize else "minimize"
    learners = {}
    for group in sorted(set(suite.groups.get(t) for t in train_tasks), key=str):
        members = [t for t in train_tasks if suite.groups.get(t) == group]
        learners[group] = MetaLearner(
            suite.metric, model=suite.model, direction=direction, method=method
        ).fit(wh, datasets=members)
    cost_learner = None
    if suite.has_cost:
        from metaopt_bayes.search import fit_cost_learner

        cost_learner = fit_cost_learner(wh, suite.metric, suite.model, method)
    return {
        "wh": wh,
        "learners": learners,
        "cost_learner": cost_learner,
        "fit_s": time.perf_counter() - t0,
    }


def _run_metaopt(
    task: Task,
    budget: int,
    seed: int,
    acquisition: str,
    adapt: str | None = None,
    random_every: int | None = None,
    warm_start: int | None = None,
) -> list[int]:
    import copy

    from metaopt_bayes.recommend_model import recommend

    st = task.fold_state["metaopt"]
    suite = task.suite
    wh, learner = st["wh"], st["learners"][suite.groups.get(task.name)]
    if adapt is not None:  # the same fit, another way to adapt to the task
        learner = copy.copy(learner)
        learner.config = {**learner.config, "adapt": adapt}
    alias = f"{task.name}__{acquisition}__{adapt}__{random_every}__{warm_start}__{seed}"  # fresh
    if task.name in suite.meta.index:
        row = suite.meta.loc[[task.name]].reset_index(drop=True)
        row.insert(0, "dataset", alias)
        wh.log_dataset_meta_features(row)
    names = [p.name for p in suite.params]
    cands = task.pool[names].copy()
    cands["_idx"] = np.arange(len(cands))
    order: list[int] = []
    for _ in range(min(budget, len(cands))):
        rec = recommend(
            learner,
            wh,
            alias,
            cands,
            n=1,
            acquisition=acquisition,
            cost_learner=st["cost_learner"],
            seed=seed,
            **({} if random_every is None else {"random_every": random_every}),
            **({} if warm_start is None else {"warm_start": warm_start}),
        )
        idx = int(rec["_idx"].iloc[0])
        order.append(idx)
        params = {n: _py(task.pool.at[idx, n]) for n in names}
        metrics = {suite.metric: float(task.pool.at[idx, "value"])}
        meta = {}
        if suite.has_cost:
            meta["duration_s"] = float(task.pool.at[idx, "cost"])
        wh.log_run(alias, suite.model, params, metrics, **meta)
    return order


def _py(v):
    return v.item() if hasattr(v, "item") else v


def run_metaopt_ei(task: Task, budget: int, seed: int) -> list[int]:
    return _run_metaopt(task, budget, seed, "ei")


def run_metaopt_cei(task: Task, budget: int, seed: int) -> list[int]:
    return _run_metaopt(task, budget, seed, "cost-ei")


def run_metaopt_ts(task: Task, budget: int, seed: int) -> list[int]:
    return _run_metaopt(task, budget, seed, "ts")


def run_metaopt_ucb(task: Task, budget: int, seed: int) -> list[int]:
    return _run_metaopt(task, budget, seed, "ucb")


def run_metaopt_noadapt(task: Task, budget: int, seed: int) -> list[int]:
    """metaopt-ei without task adaptation (the transferred model alone, as in 0.2.0)."""
    return _run_metaopt(task, budget, seed, "ei", adapt="off")


def run_metaopt_rank(task: Task, budget: int, seed: int) -> list[int]:
    """metaopt-ei with the task GP weighted by leave-one-out ranking loss (RGPE's rule)."""
    return _run_metaopt(task, budget, seed, "ei", adapt="rank")


def run_metaopt_norandom(task: Task, budget: int, seed: int) -> list[int]:
    """metaopt-ei without its random picks where the search stalls (``random_every=0``, as in
    0.3.0)."""
    return _run_metaopt(task, budget, seed, "ei", random_every=0)


def run_metaopt_random4(task: Task, budget: int, seed: int) -> list[int]:
    """metaopt-ei with a random pick after 4 trials without improvement (the default: 8)."""
    return _run_metaopt(task, budget, seed, "ei", random_every=4)


def run_metaopt_warm0(task: Task, budget: int, seed: int) -> list[int]:
    """metaopt-ei without the history's warm start (``warm_start=0``, as in 0.5.0: the first
    pick is the best predicted mean, then EI)."""
    return _run_metaopt(task, budget, seed, "ei", warm_start=0)


def run_metaopt_warm1(task: Task, budget: int, seed: int) -> list[int]:
    """metaopt-ei with only the first trial from the history's portfolio."""
    return _run_metaopt(task, budget, seed, "ei", warm_start=1)


def run_metaopt_warm5(task: Task, budget: int, seed: int) -> list[int]:
    """metaopt-ei with the first five trials from the history's portfolio."""
    return _run_metaopt(task, budget, seed, "ei", warm_start=5)


def run_bo(task: Task, budget: int, seed: int, n_init: int = 3) -> list[int]:
    """Plain Bayesian optimization on the task alone (no transfer): ``n_init`` random configs,
    then EI under metaopt's task GP (:func:`metaopt_bayes.adapt.fit_task_gp`, Matérn-5/2,
    hyperparameters by marginal likelihood) on the unit-cube encoding of the pool."""
    from metaopt_bayes import acquisition as acq
    from metaopt_bayes.adapt import fit_task_gp

    rng = np.random.default_rng(seed)
    values = task.pool["value"].to_numpy(float)
    sign = 1.0 if task.suite.maximize else -1.0
    U = 2.0 * task.X - 1.0  # the task GP's inputs live in [-1, 1]
    order = rng.permutation(len(values))[: min(n_init, budget)].tolist()
    while len(order) < min(budget, len(values)):
        y = sign * values[order]
        gp = fit_task_gp(U[order], y)
        free = np.setdiff1d(np.arange(len(values)), order)
        if gp is None:
            order.append(int(rng.choice(free)))
            continue
        m, v = gp.moments(U[free])
        s = acq.score("ei", m, np.sqrt(v), float(y.max()), maximize=True)
        order.append(int(free[int(np.argmax(s))]))
    return order


METHODS: dict[str, Callable[[Task, int, int], list[int]]] = {
    "random": run_random,
    "tpe": run_tpe,
    "gp": run_gp,
    "nn-warm": run_nn_warm,
    "portfolio": run_portfolio,
    "metaopt-ei": run_metaopt_ei,
    "metaopt-cei": run_metaopt_cei,
    # other acquisitions of the same learner, on request (--methods metaopt-ts,metaopt-ucb)
    "metaopt-ts": run_metaopt_ts,
    "metaopt-ucb": run_metaopt_ucb,
    "metaopt-noadapt": run_metaopt_noadapt,
    "metaopt-rank": run_metaopt_rank,
    "metaopt-norandom": run_metaopt_norandom,
    "metaopt-random4": run_metaopt_random4,
    "metaopt-warm0": run_metaopt_warm0,
    "metaopt-warm1": run_metaopt_warm1,
    "metaopt-warm5": run_metaopt_warm5,
    "bo": run_bo,
}
ON_REQUEST = (
    "metaopt-ts",
    "metaopt-ucb",
    "metaopt-noadapt",
    "metaopt-rank",
    "metaopt-norandom",
    "metaopt-random4",
    "metaopt-warm0",
    "metaopt-warm1",
    "metaopt-warm5",
    "bo",
)
DEFAULT_METHODS = [m for m in METHODS if m not in ON_REQUEST]


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------
def regret_curve(values: np.ndarray, order: list[int], maximize: bool, budget: int) -> np.ndarray:
    """Normalized simple regret after each trial, padded with its last value to ``budget``."""
    r = np.minimum.accumulate(_own_regret(values, maximize)[order])
    if len(r) < budget:
        r = np.concatenate([r, np.full(budget - len(r), r[-1])])
    return r[:budget]


def regret_at_times(
    values: np.ndarray, costs: np.ndarray, order: list[int], maximize: bool, budgets: np.ndarray
) -> np.ndarray:
    """Normalized regret once the cumulative training time reaches each budget (1 before the
    first trial finishes)."""
    r = np.minimum.accumulate(_own_regret(values, maximize)[order])
    t = np.cumsum(costs[order])
    out = np.ones(len(budgets))
    for i, b in enumerate(budgets):
        k = np.searchsorted(t, b, side="right")
        out[i] = r[k - 1] if k > 0 else 1.0
    return out


def run_suite(suite: Suite, methods: list[str], args) -> pd.DataFrame:
    tasks = list(suite.tasks)
    if args.max_tasks:
        rng = np.random.default_rng(1234)
        tasks = sorted(rng.choice(tasks, size=min(args.max_tasks, len(tasks)), replace=False))
    rng = np.random.default_rng(args.split_seed)
    perm = rng.permutation(tasks).tolist()
    folds = [perm[k::5] for k in range(5)][: args.folds]
    rows = []
    real = suite
    for k, test_tasks in enumerate(folds):
        train_tasks = [t for t in real.tasks if t not in set(perm[k::5])]
        # the history the methods learn from (misleading under --stress); pools stay true
        suite = stressed(real, train_tasks, args.stress, k + 5 * args.split_seed)
        best_config = (
            suite.runs.sort_values("value", ascending=not suite.maximize)
            .groupby("task", sort=False)
            .head(1)
            .set_index("task")
        )
        state: dict = {"best_config": best_config.loc[train_tasks]}
        if "portfolio" in methods and "config_name" in suite.runs.columns:
            tr = suite.runs[suite.runs["task"].isin(train_tasks)]
            state["portfolio"] = greedy_portfolio(_regret_matrix(tr, suite.maximize), args.budget)
        if any(m.startswith("metaopt") for m in methods):
            t0 = time.perf_counter()
            state["metaopt"] = _fit_fold(suite, train_tasks, args.fit_method)
            print(
                f"[{suite.name}] fold {k}: meta-learner fit {time.perf_counter() - t0:.1f}s",
                flush=True,
            )
        for name in test_tasks:
            pool = real.pool(name)
            task = Task(suite, name, pool, encode(suite, pool), train_tasks, state)
            values = pool["value"].to_numpy()
            for m in methods:
                if (m == "metaopt-cei" and not suite.has_cost) or (
                    m == "portfolio" and "portfolio" not in state
                ):
                    continue  # needs training costs / configs shared by every task
                t0 = time.perf_counter()
                order = METHODS[m](task, args.budget, k + 5 * args.split_seed)
                el = time.perf_counter() - t0
                curve = regret_curve(values, order, suite.maximize, args.budget)
                row = {"suite": suite.name, "fold": k, "task": name, "method": m, "wall_s": el}
                for b in range(1, args.budget + 1):
                    row[f"r{b}"] = curve[b - 1]
                if suite.has_cost:
                    costs = pool["cost"].to_numpy()
                    tb = np.asarray(TIME_BUDGETS, float) * np.median(costs)
                    # past the trial budget the curve stays at its last value
                    for b, r in zip(
                        TIME_BUDGETS,
                        regret_at_times(values, costs, order, suite.maximize, tb),
                        strict=True,
                    ):
                        row[f"time{b}"] = r
                rows.append(row)
            print(
                f"[{suite.name}] fold {k} task {name}: "
                + " ".join(
                    f"{r['method']}={r[f'r{min(10, args.budget)}']:.3f}"
                    for r in rows
                    if r["task"] == name and r["fold"] == k
                ),
                flush=True,
            )
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame, budgets, prefix: str = "r") -> pd.DataFrame:
    """Mean regret and average rank (methods ranked per task, ties averaged) at each budget."""
    out = []
    for b in budgets:
        col = f"{prefix}{b}"
        if col not in df:
            continue
        ranks = df.groupby(["fold", "task"])[col].rank(method="average")
        g = df.assign(rank=ranks).groupby("method")
        for m, sub in g:
            out.append(
                {
                    "method": m,
                    "budget": b,
                    "regret": sub[col].mean(),
                    "regret_se": sub[col].std(ddof=1) / math.sqrt(len(sub)),
                    "rank": sub["rank"].mean(),
                    "n": len(sub),
                }
            )
    return pd.DataFrame(out)


def table(summary: pd.DataFrame, label: str) -> str:
    reg = summary.pivot(index="method", columns="budget", values="regret")
    rk = summary.pivot(index="method", columns="budget", values="rank")
    lines = [
        "| method | " + " | ".join(f"{label}={b}" for b in reg.columns) + " |",
        "|---|" + "---|" * len(reg.columns),
    ]
    for m in reg.index:
        cells = [f"{reg.at[m, b]:.3f} ({rk.at[m, b]:.2f})" for b in reg.columns]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets(summary: pd.DataFrame, ours: str) -> list[str]:
    reg = summary.pivot(index="method", columns="budget", values="regret")
    if ours not in reg.index:
        return []
    others = [m for m in reg.index if not m.startswith("metaopt")]
    notes = []
    beats = all(reg.at[ours, b] < reg.at[o, b] for b in reg.columns if b >= 5 for o in others)
    notes.append(
        f"{ours} beats every baseline at every budget >= 5: {'MET' if beats else 'NOT MET'}"
    )
    if "random" in reg.index and 50 in reg.columns and 10 in reg.columns:
        ok = reg.at[ours, 10] <= reg.at["random", 50]
        notes.append(
            f"{ours} regret@10 = {reg.at[ours, 10]:.3f} vs random regret@50 = "
            f"{reg.at['random', 50]:.3f}: {'MET' if ok else 'NOT MET'}"
        )
    return notes


def paired(df: pd.DataFrame, ours: str, budgets) -> str:
    """Each method's regret minus ``ours`` on the same tasks: mean ± standard error over tasks
    (negative: the method is better), with how many tasks it is better / worse on."""
    wide = {
        b: df.pivot_table(index=["fold", "task"], columns="method", values=f"r{b}") for b in budgets
    }
    head = "| method − " + ours + " | " + " | ".join(f"trials={b}" for b in budgets) + " |"
    lines = [head, "|---" * (len(budgets) + 1) + "|"]
    for m in sorted(wide[budgets[0]].columns):
        if m == ours:
            continue
        cells = []
        for b in budgets:
            d = (wide[b][m] - wide[b][ours]).dropna()
            se = d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else float("nan")
            cells.append(f"{d.mean():+.4f} ± {se:.4f} ({(d < 0).sum()}/{(d > 0).sum()})")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def stuck(df: pd.DataFrame, suite: Suite, ours: str, budgets) -> str:
    """Per task, ``ours`` against random search's exact expected regret on that task: how many
    tasks it trails at each budget, and the worst task's regret beside random's there."""
    runs = suite.runs
    mine = df[df["method"] == ours].set_index(["fold", "task"])
    cells, worst = [], []
    for b in budgets:
        behind = 0
        for (_fold, task), row in mine.iterrows():
            values = runs.loc[runs["task"] == task, "value"].to_numpy()
            expect = _expected_random_regret(_own_regret(values, suite.maximize), b)
            behind += int(row[f"r{b}"] > expect + 1e-12)
        cells.append(f"{behind}/{len(mine)}")
        top = mine[f"r{b}"].idxmax()
        values = runs.loc[runs["task"] == top[1], "value"].to_numpy()
        rand = _expected_random_regret(_own_regret(values, suite.maximize), b)
        worst.append(f"{mine.at[top, f'r{b}']:.3f} (random {rand:.3f})")
    return "\n".join(
        [
            "| " + ours + " | " + " | ".join(f"trials={b}" for b in budgets) + " |",
            "|---" * (len(budgets) + 1) + "|",
            "| tasks behind random's expectation | " + " | ".join(cells) + " |",
            "| worst task (random's expectation on it) | " + " | ".join(worst) + " |",
        ]
    )


def plot(df: pd.DataFrame, suite: Suite, budget: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = 2 if suite.has_cost else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 4.2), squeeze=False)
    ax = axes[0, 0]
    xs = np.arange(1, budget + 1)
    for m, sub in df.groupby("method"):
        y = sub[[f"r{b}" for b in xs]].mean().to_numpy()
        ax.plot(xs, y, label=m, lw=2 if m.startswith("metaopt") else 1.2)
    ax.set_xlabel("trials")
    ax.set_ylabel("mean normalized regret")
    ax.set_yscale("log")
    ax.set_title(f"{suite.name}: regret vs trials")
    ax.legend(fontsize=8)
    if suite.has_cost:
        ax = axes[0, 1]
        tb = [f"time{b}" for b in TIME_BUDGETS]
        xs_t = list(TIME_BUDGETS)
        for m, sub in df.groupby("method"):
            ax.plot(
                xs_t,
                sub[tb].mean().to_numpy(),
                marker="o",
                label=m,
                lw=2 if m.startswith("metaopt") else 1.2,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("cumulative training time (× task's median config time)")
        ax.set_title(f"{suite.name}: regret vs training time")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--suite",
        default="all",
        help="openml100_rf, tabrepo, pmlb_<family> (benchmarks/data), or all (the first two)",
    )
    ap.add_argument(
        "--pmlb-split",
        choices=["dev", "holdout", "all"],
        default="dev",
        help="which PMLB datasets (benchmarks/data/pmlb_splits.csv) a pmlb suite searches",
    )
    ap.add_argument(
        "--stress",
        choices=["none", "mirror", "shuffle-meta"],
        default="none",
        help="a misleading history: configs given their mirror image's value, or the tasks' "
        "meta-features shuffled (the searched tasks keep their true values)",
    )
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    ap.add_argument("--budget", type=int, default=50)
    ap.add_argument("--folds", type=int, default=5, help="folds of the 5-fold task split to run")
    ap.add_argument("--max-tasks", type=int, default=0, help="subsample tasks (0 = all)")
    ap.add_argument("--fit-method", default="nuts", help="MetaLearner method for metaopt")
    ap.add_argument("--quick", action="store_true", help="small smoke run")
    ap.add_argument(
        "--split-seed",
        type=int,
        default=0,
        help="another 5-fold task split (methods then use seeds 5·s … 5·s+4); write it to "
        "another --out",
    )
    ap.add_argument("--out", default=str(OUT), help="folder for the csv/md/png results")
    ap.add_argument(
        "--report-only",
        action="store_true",
        help="rebuild the tables and plot from search_<suite>.csv in --out without searching",
    )
    ap.add_argument(
        "--merge",
        action="store_true",
        help="keep the other methods' rows of an earlier search_<suite>.csv in --out "
        "(same split), so one method can be re-run without re-running every baseline",
    )
    args = ap.parse_args(argv)
    out_dir = Path(args.out)
    if args.quick:
        args.folds, args.max_tasks, args.budget = 1, 15, 25
    if not DATA.exists():
        print(f"shared data not found at {DATA}; set METAOPT_SHARED_DATA", file=sys.stderr)
        return 2
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if "gp" in methods:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("note: torch is not installed, Optuna's GPSampler is skipped", file=sys.stderr)
            methods.remove("gp")
    out_dir.mkdir(parents=True, exist_ok=True)
    suites = []
    if args.suite in ("openml100_rf", "all"):
        suites.append(load_openml_rf())
    if args.suite in ("tabrepo", "all"):
        suites.append(load_tabrepo())
    if args.suite.startswith("pmlb_"):
        suites.append(load_pmlb(args.suite[len("pmlb_") :], args.pmlb_split))
    if not suites:
        print(f"unknown suite {args.suite!r}", file=sys.stderr)
        return 2
    if args.stress != "none":
        for suite in suites:
            suite.name += f"_stress-{args.stress}"
    budgets = [b for b in BUDGETS if b <= args.budget]
    for suite in suites:
        earlier = out_dir / f"search_{suite.name}.csv"
        if args.report_only:
            df = pd.read_csv(earlier, dtype={"task": str})
        else:
            df = run_suite(suite, methods, args)
            if args.merge and earlier.exists():
                prev = pd.read_csv(earlier, dtype={"task": str})
                df = pd.concat([prev[~prev["method"].isin(methods)], df], ignore_index=True)
        df["task"] = df["task"].astype(str)  # one key type, or ranks group tasks apart
        df.to_csv(out_dir / f"search_{suite.name}.csv", index=False)
        # compare methods only where all of them searched (a merged run may cover fewer folds)
        per_pair = df.groupby(["fold", "task"])["method"].nunique()
        full = per_pair[per_pair == df["method"].nunique()].index
        df = df.set_index(["fold", "task"]).loc[full].reset_index()
        s = summarize(df, budgets)
        text = [
            f"## {suite.name} — mean normalized regret (average rank), "
            f"{df.task.nunique()} tasks, {df.fold.nunique()} folds",
            table(s, "trials"),
        ]
        for ours in ("metaopt-ei", "metaopt-cei"):
            text += targets(s, ours)
        if "metaopt-ei" in set(df["method"]):
            text += [
                "",
                f"## {suite.name} — paired against metaopt-ei (better / worse tasks)",
                paired(df, "metaopt-ei", budgets),
                "",
                f"## {suite.name} — stuck tasks: metaopt-ei against random search on each task",
                stuck(df, suite, "metaopt-ei", budgets),
            ]
        text += [
            "",
            f"## {suite.name} — what the targets ask for, on these tasks",
            reach(suite, budgets, df.task.unique()),
        ]
        if suite.has_cost:
            st = summarize(df, TIME_BUDGETS, prefix="time")
            text += [
                "",
                f"## {suite.name} — regret at cumulative training time (× median config time)",
                table(st, "time"),
            ]
        wall = df.groupby("method")["wall_s"].mean()
        text += [
            "",
            "mean wall seconds per search: " + ", ".join(f"{m} {w:.2f}" for m, w in wall.items()),
        ]
        out = "\n".join(text)
        print(out)
        (out_dir / f"search_{suite.name}.md").write_text(out + "\n")
        plot(df, suite, args.budget, out_dir / f"search_{suite.name}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
