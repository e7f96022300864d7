"""Fits are reused: wall time of `metaopt recommend` called twice, and of a resumed `optimize`,
when every call fits its learner (as metaopt 0.3.0 did: `--refit` / ``reuse=False`` now) and
when a recorded fit of unchanged data is reused (the default now).

A synthetic history (``--datasets`` x ``--runs`` runs of one family, a seeded hierarchical
surface as in the tests) in a file warehouse in a temporary folder; recommend runs as a user
types it (a new process each time, so each call pays its imports); optimize is the Python API
with a cheap objective, so the fit is what the time measures.

Usage::

    PYTHONPATH=. python benchmarks/fit_reuse.py [--method nuts] [--datasets 8] [--runs 40]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.learner.conftest import make_hierarchical  # noqa: E402


def _recommend(db: Path, pool: Path, method: str, refit: bool) -> tuple[float, str]:
    args = [sys.executable, "-m", "metaopt_bayes", "--db", str(db), "recommend", "-d", "ds0"]
    args += ["-m", "gbm", "--candidates", str(pool), "--method", method, "--format", "json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    out = subprocess.run(
        [*args, *(["--refit"] if refit else [])], capture_output=True, text=True, env=env
    )
    took = time.perf_counter() - t0
    if out.returncode:
        raise SystemExit(out.stderr)
    return took, out.stderr.strip().splitlines()[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="nuts")
    ap.add_argument("--datasets", type=int, default=8)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--quick", action="store_true", help="MAP fits, 4 datasets x 20 runs")
    a = ap.parse_args()
    if a.quick:
        a.method, a.datasets, a.runs = "map", 4, 20

    from metaopt_bayes.search import optimize
    from metaopt_bayes.space import SearchSpace
    from warehouse import Warehouse

    runs, meta, _ = make_hierarchical(n_datasets=a.datasets, n_runs=a.runs, seed=0)
    mlflow = runs.drop(columns=["value", "seq"]).assign(**{"metrics.accuracy": runs["value"]})
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "wh.duckdb"
        with Warehouse(db) as wh:
            wh.log_runs(mlflow)
            wh.log_dataset_meta_features(meta.rename_axis("dataset").reset_index())
        pool = Path(tmp) / "pool.csv"
        pd.DataFrame(
            {"lr": [1e-4, 1e-3, 1e-2, 0.1], "depth": [2, 4, 6, 8], "booster": ["dart"] * 4}
        ).to_csv(pool, index=False)
        for label, refit in (("every call fits (0.3.0; --refit)", True), ("reuse", False)):
            for call in (1, 2):
                took, note = _recommend(db, pool, a.method, refit)
                rows.append({"command": "recommend", "mode": label, "call": call, "s": took,
                             "learner": note[:60]})  # fmt: skip

        space = SearchSpace.from_dict(
            {"lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
             "depth": {"type": "int", "low": 1, "high": 11},
             "booster": {"type": "categorical", "choices": ["gbtree", "dart"]}}
        )  # fmt: skip

        def score(cfg: dict) -> dict:
            return {"accuracy": 0.8 - 0.01 * abs(cfg["depth"] - 5)}

        target = f"ds{a.datasets - 1}"
        kw = {"space": space, "objective": score, "metric": "accuracy", "fit_method": a.method}
        with Warehouse(db) as wh:
            budget = 0
            for label, reuse in (
                ("first call (fits)", True),
                ("every call fits (0.3.0; reuse=False)", False),
                ("reuse", True),
            ):
                budget += 3
                t0 = time.perf_counter()
                res = optimize(wh, target, "gbm", budget, reuse=reuse, **kw)
                rows.append({"command": "optimize (+3 trials)", "mode": label, "call": budget // 3,
                             "s": time.perf_counter() - t0,
                             "learner": res.learner.reuse_note[:60]})  # fmt: skip
    df = pd.DataFrame(rows)
    print(
        f"method={a.method}, {a.datasets} datasets x {a.runs} runs, load {os.getloadavg()[0]:.1f}"
    )
    print(df.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    rec = df[df.command == "recommend"].set_index(["mode", "call"])["s"]
    before = rec[("every call fits (0.3.0; --refit)", 2)]
    after = rec[("reuse", 2)]
    opt = df[df.command != "recommend"].set_index("mode")["s"]
    print(
        f"second recommend: {before:.1f} s -> {after:.1f} s ({before / after:.1f}x); "
        f"optimize +3 trials: {opt.iloc[1]:.1f} s -> {opt.iloc[2]:.1f} s "
        f"({opt.iloc[1] / opt.iloc[2]:.1f}x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
