"""Storage head-to-head: metaopt's warehouse vs MLflow's tracking store vs Optuna's RDB storage.

Same synthetic history for all three (20 datasets, 4 parameters, 2 metrics per run), each
written and queried through the tool's own public API, on SQLite files for MLflow and Optuna
(their default local backends) and a DuckDB file for metaopt:

* ingest — metaopt: one ``Warehouse.log_runs(DataFrame)``; MLflow: ``create_run`` (tags) +
  ``MlflowClient.log_batch`` (params, metrics) + ``set_terminated`` per run; Optuna: one study
  per dataset, ``Study.add_trials`` of ``optuna.trial.create_trial`` FrozenTrials.
* best run per dataset — metaopt: ``SELECT … FROM incumbents``; MLflow: one ``search_runs``
  per dataset with ``order_by metrics.accuracy DESC, max_results=1``; Optuna:
  ``study.best_trial`` per study.
* runs where a parameter exceeds a value (``lr > 0.01``) — metaopt: SQL over run_params;
  MLflow: its filter grammar compares parameters as *strings* only, so all runs are fetched
  with ``search_runs`` (paged) and filtered client-side; Optuna: ``study.trials`` of every
  study, filtered client-side (Optuna has no query API).

MLflow and Optuna write one SQLite transaction per call (~10–150 ms per run on a 2-core
machine), so 100,000 runs would take hours: they ingest a timed subset (``--foreign-runs``,
default 2,000) and their ingest time at 10k/100k is *extrapolated linearly* from it (marked
``extrapolated`` in the table). Query times are compared at equal size: all three tools
hold the same ``--foreign-runs`` runs; metaopt's query times at 10k/100k are also shown.
Every query's answer is checked to agree across the tools. A query is timed up to the objects
the tool's API returns (a DataFrame, a list of MLflow ``Run``, Optuna ``FrozenTrial``); turning
them into the compared answer happens outside the timing.

Usage (from the repository root):
    PYTHONPATH=. python benchmarks/storage.py            # metaopt 10k + 100k, others 2,000
    PYTHONPATH=. python benchmarks/storage.py --quick    # metaopt 1k + 10k, others 200
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

N_DATASETS = 20
THRESHOLD = 0.01  # "runs where lr exceeds 0.01"


def make_history(n_runs: int, seed: int = 0) -> pd.DataFrame:
    """Synthetic MLflow-layout runs: lr (log-uniform), depth (int), subsample, criterion
    (text); accuracy and log_loss. Accuracy values are distinct so 'best' is unambiguous."""
    rng = np.random.default_rng(seed)
    acc = rng.permutation(n_runs) / (2.0 * n_runs) + 0.5
    return pd.DataFrame(
        {
            "run_id": [f"run{i:07d}" for i in range(n_runs)],
            "dataset": [f"ds{i:02d}" for i in rng.integers(0, N_DATASETS, n_runs)],
            "model": "gbm",
            "params.lr": 10 ** rng.uniform(-4, 0, n_runs),
            "params.depth": rng.integers(1, 12, n_runs),
            "params.subsample": rng.uniform(0.5, 1.0, n_runs),
            "params.criterion": np.array(["gini", "entropy"])[rng.integers(0, 2, n_runs)],
            "metrics.accuracy": acc,
            "metrics.log_loss": rng.exponential(0.5, n_runs),
        }
    )


def _timed(fn, repeat: int = 15) -> tuple[float, object]:
    """Best of ``repeat`` wall times (seconds) and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


# ---------------------------------------------------------------------------------- metaopt
def metaopt_ingest(df: pd.DataFrame, folder: Path) -> tuple[float, object]:
    from warehouse import Warehouse

    path = folder / f"metaopt_{len(df)}.duckdb"
    wh = Warehouse(path)
    t0 = time.perf_counter()
    wh.log_runs(df)
    return time.perf_counter() - t0, wh


# Each query function returns the tool's own result objects (what a user's call gets back)
# and is the part that is timed; its ``*_answer`` twin turns that result into the
# {dataset: best accuracy} dict the cross-check compares, outside the timing.
def metaopt_best(wh) -> pd.DataFrame:
    return wh.sql(
        "SELECT dataset, value FROM incumbents WHERE metric = 'accuracy' AND model = 'gbm'"
    )


def metaopt_best_answer(df: pd.DataFrame) -> dict[str, float]:
    return dict(zip(df["dataset"], df["value"].round(12), strict=True))


def metaopt_param_filter(wh) -> int:
    df = wh.sql(
        "SELECT count(*) AS n FROM run_params WHERE name = 'lr' AND value_num > ?", [THRESHOLD]
    )
    return int(df["n"][0])


# ---------------------------------------------------------------------------------- MLflow
def mlflow_ingest(df: pd.DataFrame, folder: Path) -> tuple[float, object]:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    eid = client.create_experiment("bench")
    params = [c for c in df.columns if c.startswith("params.")]
    metrics = [c for c in df.columns if c.startswith("metrics.")]
    rows = df.to_dict("records")
    t0 = time.perf_counter()
    for row in rows:
        run = client.create_run(eid, tags={"dataset": row["dataset"], "model": row["model"]})
        ts = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id,
            params=[Param(c[7:], str(row[c])) for c in params],
            metrics=[Metric(c[8:], float(row[c]), ts, 0) for c in metrics],
        )
        client.set_terminated(run.info.run_id)
    return time.perf_counter() - t0, (client, eid)


def mlflow_best(handle) -> dict[str, list]:
    client, eid = handle
    return {
        name: client.search_runs(
            [eid],
            filter_string=f"tags.dataset = '{name}'",
            order_by=["metrics.accuracy DESC"],
            max_results=1,
        )
        for name in (f"ds{d:02d}" for d in range(N_DATASETS))
    }


def mlflow_best_answer(found: dict[str, list]) -> dict[str, float]:
    return {k: round(runs[0].data.metrics["accuracy"], 12) for k, runs in found.items() if runs}


def mlflow_param_filter(handle) -> int:
    client, eid = handle
    n, token = 0, None
    while True:
        page = client.search_runs([eid], max_results=50_000, page_token=token)
        n += sum(float(r.data.params["lr"]) > THRESHOLD for r in page)
        token = page.token
        if not token:
            return n


# ---------------------------------------------------------------------------------- Optuna
def optuna_ingest(df: pd.DataFrame, folder: Path) -> tuple[float, object]:
    import optuna
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{folder / 'optuna.db'}")
    dists = {
        "lr": FloatDistribution(1e-4, 1.0, log=True),
        "depth": IntDistribution(1, 11),
        "subsample": FloatDistribution(0.5, 1.0),
        "criterion": CategoricalDistribution(["gini", "entropy"]),
    }
    groups = {d: g for d, g in df.groupby("dataset", sort=True)}
    t0 = time.perf_counter()
    studies = []
    for name, g in groups.items():
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
        trials = [
            optuna.trial.create_trial(
                params={
                    "lr": float(r["params.lr"]),
                    "depth": int(r["params.depth"]),
                    "subsample": float(r["params.subsample"]),
                    "criterion": str(r["params.criterion"]),
                },
                distributions=dists,
                value=float(r["metrics.accuracy"]),
                user_attrs={"log_loss": float(r["metrics.log_loss"]), "model": r["model"]},
            )
            for r in g.to_dict("records")
        ]
        study.add_trials(trials)
        studies.append(study)
    return time.perf_counter() - t0, studies


def optuna_best(studies) -> dict[str, object]:
    return {s.study_name: s.best_trial for s in studies}


def optuna_best_answer(found: dict[str, object]) -> dict[str, float]:
    return {k: round(t.value, 12) for k, t in found.items()}


def optuna_param_filter(studies) -> int:
    return sum(t.params["lr"] > THRESHOLD for s in studies for t in s.trials)


# ---------------------------------------------------------------------------------- driver
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="metaopt 1k/10k, others 200 runs")
    parser.add_argument(
        "--foreign-runs", type=int, default=None, help="runs ingested into MLflow and Optuna"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="metaopt sizes")
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument("--skip-optuna", action="store_true")
    args = parser.parse_args()
    sizes = args.sizes or ([1_000, 10_000] if args.quick else [10_000, 100_000])
    n_foreign = args.foreign_runs or (200 if args.quick else 2_000)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")

    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="metaopt-storage-") as tmp:
        folder = Path(tmp)
        # metaopt at each size, plus at the foreign size for equal-size queries.
        mo: dict[int, object] = {}
        _, warm = metaopt_ingest(make_history(50, seed=1), folder)  # imports, first-call costs
        metaopt_best(warm), metaopt_param_filter(warm)
        warm.close()
        ingest_s: dict[tuple[str, int], float] = {}
        for n in sorted({*sizes, n_foreign}):
            secs, wh = metaopt_ingest(make_history(n), folder)
            mo[n] = wh
            ingest_s[("metaopt", n)] = secs
        small = make_history(n_foreign)
        answers: dict[str, tuple] = {}
        query_s: dict[tuple[str, str, int], float] = {}
        for n, wh in mo.items():
            t, best = _timed(lambda wh=wh: metaopt_best(wh))
            best = metaopt_best_answer(best)
            query_s[("metaopt", "best", n)] = t
            t, cnt = _timed(lambda wh=wh: metaopt_param_filter(wh))
            query_s[("metaopt", "filter", n)] = t
            if n == n_foreign:
                answers["metaopt"] = (best, cnt)
        tools = []
        if not args.skip_mlflow:
            tools.append(
                ("mlflow", mlflow_ingest, mlflow_best, mlflow_best_answer, mlflow_param_filter)
            )
        if not args.skip_optuna:
            tools.append(
                ("optuna", optuna_ingest, optuna_best, optuna_best_answer, optuna_param_filter)
            )
        for name, ingest, best_fn, answer_fn, filter_fn in tools:
            secs, handle = ingest(small, folder)
            ingest_s[(name, n_foreign)] = secs
            t, best = _timed(lambda h=handle, f=best_fn: f(h))
            best = answer_fn(best)
            query_s[(name, "best", n_foreign)] = t
            t, cnt = _timed(lambda h=handle, f=filter_fn: f(h))
            query_s[(name, "filter", n_foreign)] = t
            answers[name] = (best, cnt)
        for wh in mo.values():
            wh.close()

    ref = answers["metaopt"]
    for name, ans in answers.items():
        agree = ans[0] == ref[0] and ans[1] == ref[1]
        print(
            f"{name}: best-per-dataset and filter answers agree with metaopt: {agree}"
            f" (filter count {ans[1]})"
        )
        if not agree:
            raise SystemExit(f"{name} disagrees with metaopt: the comparison is void")

    # Ingest table: metaopt measured; others measured at n_foreign, extrapolated to sizes.
    for n in sizes:
        m = ingest_s[("metaopt", n)]
        row: dict[str, object] = {"operation": f"ingest {n:,} runs", "metaopt_s": m}
        for name, *_ in tools:
            per_run = ingest_s[(name, n_foreign)] / n_foreign
            est = per_run * n
            row[f"{name}_s"] = est
            row[f"{name}/metaopt"] = est / m
        row["note"] = (
            f"others extrapolated from {n_foreign:,} runs" if tools and n != n_foreign else ""
        )
        rows.append(row)
    for q, label in (("best", "best run per dataset"), ("filter", f"runs with lr > {THRESHOLD}")):
        row = {
            "operation": f"{label} ({n_foreign:,} runs)",
            "metaopt_s": query_s[("metaopt", q, n_foreign)],
        }
        for name, *_ in tools:
            t = query_s[(name, q, n_foreign)]
            row[f"{name}_s"] = t
            row[f"{name}/metaopt"] = t / row["metaopt_s"]
        row["note"] = "equal size, all measured"
        rows.append(row)
        for n in sizes:
            if n != n_foreign:
                rows.append(
                    {
                        "operation": f"{label} ({n:,} runs)",
                        "metaopt_s": query_s[("metaopt", q, n)],
                        "note": "metaopt only",
                    }
                )
    ingest_row = {
        "operation": f"ingest {n_foreign:,} runs (measured)",
        "metaopt_s": ingest_s[("metaopt", n_foreign)],
        "note": "equal size",
    }
    for name, *_ in tools:
        ingest_row[f"{name}_s"] = ingest_s[(name, n_foreign)]
        ingest_row[f"{name}/metaopt"] = ingest_s[(name, n_foreign)] / ingest_row["metaopt_s"]
    rows.insert(0, ingest_row)

    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="—"))
    print(
        "per-run ingest: "
        + ", ".join(
            f"{k[0]} {1000 * v / k[1]:.3g} ms" for k, v in ingest_s.items() if k[1] == n_foreign
        )
    )


if __name__ == "__main__":
    main()
