"""Warehouse benchmark: bulk ingest, view latency and single-run logging on a file warehouse.

Targets (issue #2, 2-core machine): log_runs of 1,000,000 runs x 10 params x 4 metrics x 3
meta columns <= 15 s; run_features for one dataset and incumbents over them <= 1 s each;
log_run of a single run on a file warehouse: median <= 20 ms; training_matrix of one model
family over every dataset (about a third of the runs: what the meta-learner reads) in a few s.

Usage (from the repository root):
    PYTHONPATH=. python benchmarks/warehouse_bench.py            # 1,000,000 runs
    PYTHONPATH=. python benchmarks/warehouse_bench.py --quick    # 20,000 runs smoke run
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def make_history(n_runs: int, n_datasets: int = 50, seed: int = 0) -> pd.DataFrame:
    """Synthetic MLflow-layout runs: 8 numeric + 2 text params, 4 metrics, 3 meta columns."""
    rng = np.random.default_rng(seed)
    df = {
        "dataset": np.array([f"ds{i:03d}" for i in range(n_datasets)])[
            rng.integers(0, n_datasets, n_runs)
        ],
        "model": np.array(["rf", "gbm", "mlp"])[rng.integers(0, 3, n_runs)],
        "duration_s": rng.exponential(5.0, n_runs),
        "cpu_s": rng.exponential(8.0, n_runs),
        "peak_mem_mb": rng.uniform(50, 2000, n_runs),
    }
    for j in range(8):
        df[f"params.p{j}"] = rng.uniform(0, 1, n_runs)
    df["params.criterion"] = np.array(["gini", "entropy", "log_loss"])[rng.integers(0, 3, n_runs)]
    df["params.activation"] = np.array(["relu", "tanh"])[rng.integers(0, 2, n_runs)]
    df["metrics.accuracy"] = rng.uniform(0.5, 1.0, n_runs)
    df["metrics.balanced_accuracy"] = rng.uniform(0.5, 1.0, n_runs)
    df["metrics.log_loss"] = rng.exponential(0.5, n_runs)
    df["metrics.time_train_s"] = rng.exponential(3.0, n_runs)
    return pd.DataFrame(df)


def _best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 runs instead of 1,000,000")
    parser.add_argument("--runs", type=int, default=None, help="number of runs to ingest")
    parser.add_argument("--single", type=int, default=200, help="single log_run calls to time")
    args = parser.parse_args()
    n = args.runs or (20_000 if args.quick else 1_000_000)

    from warehouse import Warehouse

    rows: list[tuple[str, str, str, str]] = []
    history = make_history(n)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.duckdb"
        with Warehouse(path) as wh:
            t0 = time.perf_counter()
            written = wh.log_runs(history)
            ingest_s = time.perf_counter() - t0
            assert written == n
            rows.append(
                (
                    f"log_runs {n:,} runs (DataFrame)",
                    f"{ingest_s:.2f} s",
                    f"{n / ingest_s:,.0f} runs/s",
                    "<= 15 s" if n == 1_000_000 else "-",
                )
            )

            t_rf = _best_of(lambda: wh.view("run_features", dataset="ds007"), 3)
            n_rf = len(wh.view("run_features", dataset="ds007"))
            rows.append(
                (f"run_features, one dataset ({n_rf:,} rows)", f"{t_rf:.3f} s", "", "<= 1 s")
            )
            t_inc = _best_of(lambda: wh.view("incumbents"), 3)
            rows.append((f"incumbents over {n:,} runs", f"{t_inc:.3f} s", "", "<= 1 s"))
            t_lb = _best_of(lambda: wh.view("leaderboard"), 3)
            rows.append(("leaderboard", f"{t_lb:.3f} s", "", "-"))
            t_tm = _best_of(
                lambda: wh.training_matrix("accuracy", model="rf", datasets=["ds001", "ds002"]), 3
            )
            rows.append(("training_matrix(accuracy, rf, 2 datasets)", f"{t_tm:.3f} s", "", "-"))
            t_tm_all = _best_of(lambda: wh.training_matrix("accuracy", model="rf"), 3)
            n_tm = len(wh.training_matrix("accuracy", model="rf"))
            rows.append(
                (
                    f"training_matrix(accuracy, rf), all ({n_tm:,} runs)",
                    f"{t_tm_all:.3f} s",
                    "",
                    "few s",
                )
            )
            t_sql = _best_of(lambda: wh.sql("SELECT model, count(*) FROM runs GROUP BY model"), 3)
            rows.append(("sql: count runs by model", f"{t_sql:.3f} s", "", "-"))

            single = []
            for i in range(args.single):
                t0 = time.perf_counter()
                wh.log_run(
                    "ds001",
                    "rf",
                    {f"p{j}": 0.5 for j in range(8)} | {"criterion": "gini"},
                    {"accuracy": 0.9, "log_loss": 0.3},
                    duration_s=1.0,
                    run_id=f"single{i}",
                )
                single.append(time.perf_counter() - t0)
            med = statistics.median(single) * 1000
            p90 = sorted(single)[int(0.9 * len(single))] * 1000
            rows.append(
                (
                    f"log_run single, file ({args.single} calls)",
                    f"median {med:.1f} ms",
                    f"p90 {p90:.1f} ms",
                    "median <= 20 ms",
                )
            )
        size_mb = path.stat().st_size / 1e6 if path.exists() else float("nan")
    rows.append(("warehouse file size", f"{size_mb:.0f} MB", "", "-"))

    import os

    from rich.console import Console
    from rich.table import Table

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    table = Table(
        title=f"metaopt warehouse benchmark ({n:,} runs)",
        caption=f"{os.cpu_count()} CPUs, load average {load} (timings scale with load)",
    )
    for col in ("measure", "time", "rate", "target"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()
