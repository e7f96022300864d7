"""Batch search on tabrepo: ``recommend(n=q)`` (Kriging believer) for a few rounds per task.

What ``optimize --jobs q`` and ``recommend --n q`` do, on the tabular benchmark's leave-tasks-out
split (``benchmarks/search.py``: the same 5-fold task split, a MAP-fitted learner per problem
type): each round recommends ``q`` distinct configs of the held-out task's pool, "runs" them
(looks their results up) and logs them; the regret curve is read after every config.

    PYTHONPATH=. python benchmarks/search_batch.py --folds 0,1,2 --q 5 --rounds 5

Prints the mean normalized regret after 1, 5, 10, 25 (and 50) configs per fold and overall.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import search as bench


def run_fold(
    suite: bench.Suite, fold: int, q: int, rounds: int, fit: str, max_tasks: int = 0
) -> pd.DataFrame:
    from metaopt_bayes.search import recommend

    perm = np.random.default_rng(0).permutation(list(suite.tasks)).tolist()
    held = perm[fold::5]
    state = bench._fit_fold(suite, [t for t in suite.tasks if t not in set(held)], fit)
    names = [p.name for p in suite.params]
    rows = []
    for task in held[:max_tasks] if max_tasks else held:
        pool = suite.pool(task)
        values = pool["value"].to_numpy()
        wh, learner = state["wh"], state["learners"][suite.groups.get(task)]
        alias = f"{task}__batch{q}"
        if task in suite.meta.index:
            meta = suite.meta.loc[[task]].reset_index(drop=True)
            meta.insert(0, "dataset", alias)
            wh.log_dataset_meta_features(meta)
        cands = pool[names].copy()
        cands["_idx"] = np.arange(len(cands))
        order: list[int] = []
        for _ in range(rounds):
            rec = recommend(learner, wh, alias, cands, n=q, acquisition="ei", seed=fold)
            for idx in rec["_idx"].astype(int):
                order.append(int(idx))
                params = {n: bench._py(pool.at[idx, n]) for n in names}
                wh.log_run(alias, suite.model, params, {suite.metric: float(values[idx])})
        curve = bench.regret_curve(values, order, suite.maximize, q * rounds)
        budgets = [b for b in (1, 5, 10, 25, 50) if b <= q * rounds]
        rows.append({"fold": fold, "task": task, **{f"r{b}": curve[b - 1] for b in budgets}})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", default="0", help="comma-separated folds of the 5-fold split")
    ap.add_argument("--q", type=int, default=5, help="configs per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--fit-method", default="map")
    ap.add_argument("--max-tasks", type=int, default=0, help="held-out tasks per fold (0 = all)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 tasks, q=2, 2 rounds")
    ap.add_argument("--out", default=None, help="CSV of per-task regrets")
    args = ap.parse_args(argv)
    if args.quick:
        args.max_tasks, args.q, args.rounds = 2, 2, 2
    suite = bench.load_tabrepo()
    df = pd.concat(
        [
            run_fold(suite, int(f), args.q, args.rounds, args.fit_method, args.max_tasks)
            for f in args.folds.split(",")
        ],
        ignore_index=True,
    )
    if args.out:
        df.to_csv(args.out, index=False)
    cols = [c for c in df.columns if c.startswith("r")]
    table = df.groupby("fold")[cols].mean()
    table.loc["all"] = df[cols].mean()
    print(
        f"## tabrepo, q={args.q} x {args.rounds} rounds: mean normalized regret ({len(df)} tasks)"
    )
    print(table.round(4).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
