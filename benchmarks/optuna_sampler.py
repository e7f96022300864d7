"""MetaoptSampler against Optuna's TPESampler and RandomSampler on a tabular suite.

The setting of ``benchmarks/search.py`` (leave-tasks-out, 5 folds of the tasks; every method
may only pick configurations evaluated on the held-out task, its "pool"): each method is a
real Optuna study driven the way ``search.py`` drives TPE — ``study.ask`` with the suite's
distributions, the proposal snapped to the nearest untried pool config (unit-cube Euclidean),
the asked trial told FAIL and the snapped config added with its recorded value
(``study.add_trial``). For ``metaopt-sampler`` that exercises both logging paths: the FAIL
through ``after_trial`` (a failed run), the added COMPLETE trial through the sync before the
next proposal. Its learner is a MetaLearner fitted once per fold on the meta-train tasks'
runs (``--fit-method``, MAP by default) in an in-memory warehouse, passed as ``learner=``;
the searched task's own trials reach it through the warehouse (the few-shot update).

Printed: mean normalized regret after 1 / 5 / 10 / 25 trials ± its standard error over tasks,
the mean wall time per trial (ask + snap + tell, the sampler's warehouse writes included), and
the paired difference metaopt − baseline per task (mean ± SE; tasks better / worse).

Usage::

    PYTHONPATH=. python benchmarks/optuna_sampler.py --suite openml100_rf --max-tasks 20
    PYTHONPATH=. python benchmarks/optuna_sampler.py --suite pmlb_knn --pmlb-split dev
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import search as S  # noqa: E402  (benchmarks/search.py: suites, snapping, scoring)

BUDGETS = (1, 5, 10, 25)


def run_optuna_random(task: S.Task, budget: int, seed: int) -> list[int]:
    import optuna

    return S._optuna_run(task, budget, seed, optuna.samplers.RandomSampler(seed=seed))


def run_metaopt_sampler(task: S.Task, budget: int, seed: int) -> list[int]:
    from metaopt_bayes.optuna_sampler import MetaoptSampler

    st = task.fold_state["metaopt"]
    suite, wh = task.suite, st["wh"]
    learner = st["learners"][suite.groups.get(task.name)]
    alias = f"{task.name}__sampler__{seed}"  # a fresh dataset per search
    if task.name in suite.meta.index:
        row = suite.meta.loc[[task.name]].reset_index(drop=True)
        row.insert(0, "dataset", alias)
        wh.log_dataset_meta_features(row)
    sampler = MetaoptSampler(
        wh,
        alias,
        suite.model,
        suite.metric,
        learner=learner,
        search_space=_distributions(suite),
        seed=seed,
    )
    return S._optuna_run(task, budget, seed, sampler)


def _distributions(suite: S.Suite) -> dict:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out = {}
    for p in suite.params:
        if p.kind == "cat":
            out[p.name] = CategoricalDistribution(list(p.choices))
        elif p.kind == "int":
            out[p.name] = IntDistribution(int(p.low), int(p.high), log=p.log)
        else:
            out[p.name] = FloatDistribution(float(p.low), float(p.high), log=p.log)
    return out


S.METHODS.update({"optuna-random": run_optuna_random, "metaopt-sampler": run_metaopt_sampler})


def report(df: pd.DataFrame, budget: int) -> str:
    budgets = [b for b in BUDGETS if b <= budget]
    s = S.summarize(df, budgets)
    lines = [
        "| sampler | " + " | ".join(f"{b} trials" for b in budgets) + " | s / trial |",
        "|---|" + "---|" * (len(budgets) + 1),
    ]
    per_trial = df.groupby("method")["wall_s"].mean() / budget
    for m in ("metaopt-sampler", "tpe", "optuna-random"):
        sub = s[s["method"] == m].set_index("budget")
        if sub.empty:
            continue
        cells = [f"{sub.at[b, 'regret']:.3f} ± {sub.at[b, 'regret_se']:.3f}" for b in budgets]
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {per_trial[m]:.3f} |")
    ours = df[df["method"] == "metaopt-sampler"].set_index(["fold", "task"])
    for other in ("tpe", "optuna-random"):
        theirs = df[df["method"] == other].set_index(["fold", "task"])
        if ours.empty or theirs.empty:
            continue
        cells = []
        for b in budgets:
            d = (ours[f"r{b}"] - theirs[f"r{b}"]).dropna()
            se = d.std(ddof=1) / np.sqrt(len(d))
            cells.append(f"{d.mean():+.3f} ± {se:.3f} ({(d < 0).sum()}/{(d > 0).sum()})")
        lines.append(f"| metaopt − {other}, paired | " + " | ".join(cells) + " | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="openml100_rf", help="openml100_rf or pmlb_<family>")
    ap.add_argument("--pmlb-split", choices=["dev", "holdout", "all"], default="dev")
    ap.add_argument("--methods", default="metaopt-sampler,tpe,optuna-random")
    ap.add_argument("--budget", type=int, default=25)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--max-tasks", type=int, default=20, help="subsample tasks (0 = all)")
    ap.add_argument("--fit-method", default="map")
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="1 fold of 15 tasks, 10 trials")
    ap.add_argument("--csv", default="", help="also write the per-task regret curves here")
    args = ap.parse_args(argv)
    args.stress = "none"
    if args.quick:
        args.folds, args.max_tasks, args.budget = 1, 15, 10
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if args.suite == "openml100_rf":
        suite = S.load_openml_rf()
    elif args.suite.startswith("pmlb_"):
        suite = S.load_pmlb(args.suite[len("pmlb_") :], args.pmlb_split)
    else:
        print(f"unknown suite {args.suite!r}", file=sys.stderr)
        return 2
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    t0 = time.perf_counter()
    df = S.run_suite(suite, methods, args)
    df["task"] = df["task"].astype(str)
    if args.csv:
        df.to_csv(args.csv, index=False)
    print(
        f"\n## {suite.name}: mean normalized regret ± SE over {df.task.nunique()} tasks "
        f"({df.fold.nunique()} folds), budget {args.budget}, {time.perf_counter() - t0:.0f} s"
    )
    print(report(df, args.budget))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
