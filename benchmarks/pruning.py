"""Replay pruned searches on the PMLB learning curves: how many steps CurvePruner saves, and
how often it stops the config that would have won.

For each held-out dataset (leave one dataset out): a CurveModel (MAP) is fitted on the other
datasets' finished curves of the family, exactly as ``optimize(prune=True)`` fits it; the
dataset's 32 configs are then replayed in a random order, as a search would train them.
Each trial walks its curve step by step; the incumbent is the best final value of the trials
that finished before it, the context their curves; the trial stops when
``CurvePruner(threshold)`` says so (never before 10% of the budget, never without an
incumbent). Reported per threshold:

* ``steps``: the share of the steps a search without pruning trains (compute spent);
* ``pruned``: the share of trials stopped;
* ``lost``: the share of replays in which the dataset's best config (by final accuracy) was
  pruned, and ``regret`` the mean loss of final accuracy of the best finished trial against
  the best config.

Data: ``benchmarks/data/pmlb_curves_<family>*.parquet`` (``benchmarks/make_curve_suites.py``).

    python benchmarks/pruning.py --family mlp --datasets 12 --orders 3
    python benchmarks/pruning.py --quick
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from metaopt_bayes.curves import CurveModel  # noqa: E402
from metaopt_bayes.pruning import CurvePruner  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
METRIC = "accuracy"


def load(family: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    runs = pd.read_parquet(DATA / f"pmlb_curves_{family}_runs.parquet")
    curves = pd.read_parquet(DATA / f"pmlb_curves_{family}.parquet")
    curves = curves[curves["metric"] == METRIC].merge(runs[["run_id", "dataset"]], on="run_id")
    configs = runs[["run_id", *(c for c in runs.columns if c.startswith("params."))]]
    configs = configs.drop(columns=["params.solver", "params.max_iter", "params.early_stopping"],
                           errors="ignore")  # fmt: skip
    return curves.sort_values(["run_id", "step"]), configs


def replay(
    curves: pd.DataFrame, model: CurveModel, thresholds: list[float], order: np.ndarray
) -> dict[float, dict[str, float]]:
    """One search over the dataset's configs in ``order``, once per threshold."""
    by_run = {rid: g for rid, g in curves.groupby("run_id")}
    runs = list(by_run)
    finals = {rid: float(g["value"].iloc[-1]) for rid, g in by_run.items()}
    budget = int(curves["step"].max())
    total = sum(len(g) for g in by_run.values())
    best_run = max(finals, key=finals.get)
    out = {}
    for th in thresholds:
        base = CurvePruner(model, threshold=th, budget=budget)
        incumbent, done, used, n_pruned, lost = None, [], 0, 0, False
        for i in order:
            rid = runs[i]
            g = by_run[rid]
            context = curves[curves["run_id"].isin(done)][["run_id", "step", "value"]]
            p = base.bind(incumbent=incumbent, context=context)
            steps, values = g["step"].tolist(), g["value"].tolist()
            stopped = False
            for k in range(1, len(steps) + 1):
                if p.should_prune(steps[:k], values[:k]):
                    stopped = True
                    break
            used += k
            if stopped:
                n_pruned += 1
                lost |= rid == best_run
                continue
            done.append(rid)
            incumbent = finals[rid] if incumbent is None else max(incumbent, finals[rid])
        out[th] = {
            "steps": used / total,
            "pruned": n_pruned / len(runs),
            "lost": float(lost),
            "regret": finals[best_run] - max(finals[r] for r in done),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="mlp", choices=["mlp", "hist_gradient_boosting"])
    ap.add_argument("--datasets", type=int, default=12, help="held-out datasets (seeded pick)")
    ap.add_argument("--orders", type=int, default=3, help="random orders per dataset")
    ap.add_argument("--thresholds", default="0.01,0.05,0.1,0.2")
    ap.add_argument("--quick", action="store_true", help="4 datasets, 2 orders")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.quick:
        args.datasets, args.orders = 4, 2
    thresholds = [float(t) for t in args.thresholds.split(",")]
    curves, configs = load(args.family)
    rng = np.random.default_rng(args.seed)
    # design data only: the holdout datasets of pmlb_splits.csv are left to pruning_search.py
    splits = pd.read_csv(Path(__file__).parent / "data" / "pmlb_splits.csv")
    dev = set(splits.loc[splits["split"] == "dev", "dataset"].astype(str))
    names = sorted(d for d in curves["dataset"].unique() if str(d) in dev)
    held = rng.choice(names, size=min(args.datasets, len(names)), replace=False)
    rows = []
    t0 = time.perf_counter()
    for d in held:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = CurveModel(METRIC, True).fit(
                curves[curves["dataset"] != d], configs=configs, method="map"
            )
        mine = curves[curves["dataset"] == d]
        n = mine["run_id"].nunique()
        for o in range(args.orders):
            for th, r in replay(mine, model, thresholds, rng.permutation(n)).items():
                rows.append({"dataset": d, "order": o, "threshold": th, **r})
        print(f"  {d}: done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    df = pd.DataFrame(rows)
    table = df.groupby("threshold")[["steps", "pruned", "lost", "regret"]].mean()
    table["regret_se"] = df.groupby("threshold")["regret"].std() / np.sqrt(
        df.groupby("threshold").size()
    )
    print(
        f"{args.family}: {len(held)} held-out PMLB datasets x {args.orders} orders, "
        f"{curves['run_id'].nunique() // len(names)} configs each, budget "
        f"{int(curves['step'].max())} steps (CurvePruner, min_fraction 0.1)"
    )
    print(table.round(4).to_string())


if __name__ == "__main__":
    main()
