"""How long one search step takes: ``recommend`` from a pool, and scoring 100,000 candidates.

A MetaLearner is fitted on ``openml100_rf`` without one task (NUTS by default, as a user's
``metaopt fit``); then, for that task with 0, 5 and 20 of its runs logged, the median time of
``recommend(n=1)`` from a pool of ``--pool`` of its configs (the runs read from the warehouse
as in ``optimize``; with 0 runs the pick is the history's warm start, later ones log-EI), of
``predict`` on 100,000 candidates and of ``recommend(n=1)`` from those 100,000, for each
adaptation mode.

Usage::

    PYTHONPATH=. python benchmarks/recommend_speed.py [--fit-method map] [--repeat 15]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._data import load_openml_rf, shared_data_dir


def _median_s(fn, repeat: int, learner=None) -> float:
    """Median seconds of ``fn(learner)``; each call gets a fresh shallow copy of ``learner``,
    which remembers no dataset states (a search step follows a new run, so nothing it could
    reuse from the step before: the timing is that of a step, not of a repeated call)."""
    times = []
    for _ in range(repeat):
        fresh = copy.copy(learner)
        t0 = time.perf_counter()
        fn(fresh)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> int:
    from metaopt_bayes.model import MetaLearner
    from metaopt_bayes.search import recommend
    from warehouse import Warehouse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit-method", default="nuts")
    ap.add_argument("--pool", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--modes", default="stack,off")
    args = ap.parse_args()
    root = shared_data_dir()
    if root is None:
        print("shared data not found: set METAOPT_SHARED_DATA", file=sys.stderr)
        return 2
    runs, meta = load_openml_rf(root)
    target = sorted(set(runs["dataset"]) & set(meta.index))[0]
    wh = Warehouse(":memory:")
    hist = runs[runs["dataset"] != target]
    names = [c for c in runs.columns if c.startswith("params.")]
    table = hist[["dataset", "model", *names]].copy()
    table["metrics.predictive_accuracy"] = hist["value"].to_numpy()
    wh.log_runs(table)
    wh.log_dataset_meta_features(meta.reset_index())
    t0 = time.perf_counter()
    base = MetaLearner("predictive_accuracy", model="random_forest", method=args.fit_method)
    base.fit(wh)
    fit_s = time.perf_counter() - t0
    task = runs[runs["dataset"] == target].reset_index(drop=True)
    pool = task[names].rename(columns=lambda c: c[len("params.") :]).head(args.pool)
    rng = np.random.default_rng(0)
    big = pool.sample(100_000, replace=True, random_state=0).reset_index(drop=True)
    big["max_features"] = rng.uniform(0.05, 1.0, len(big))
    rows = []
    for k in (0, 5, 20):
        logged = wh.count_runs(dataset=target)
        for i in range(logged, k):
            r = task.iloc[i]
            params = {n[len("params.") :]: r[n] for n in names if pd.notna(r[n])}
            wh.log_run(target, "random_forest", params, {"predictive_accuracy": r["value"]})
        obs = wh.training_matrix("predictive_accuracy", model="random_forest", datasets=[target])
        for mode in args.modes.split(","):
            ml = copy.copy(base)
            ml.config = {**base.config, "adapt": mode}
            step = _median_s(lambda m: recommend(m, wh, target, pool, n=1), args.repeat, ml)
            scan = _median_s(lambda m, obs=obs: m.predict(target, big, runs=obs), 3, ml)
            wide = _median_s(lambda m: recommend(m, wh, target, big, n=1), 3, ml)
            rows.append(
                {
                    "runs of the task": k,
                    "adapt": mode,
                    f"recommend, pool of {len(pool)} (ms)": round(1000 * step, 1),
                    "predict 100k (s)": round(scan, 3),
                    "recommend, 100k (s)": round(wide, 3),
                }
            )
    print(f"fit ({args.fit_method}, {len(hist)} runs): {fit_s:.1f} s")
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
