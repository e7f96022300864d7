"""Warehouse benchmark: bulk ingest, view latency and single-run logging on a file warehouse.

Targets (issue #2, 2-core machine): log_runs of 1,000,000 runs x 10 params x 4 metrics x 3
meta columns <= 15 s; run_features for one dataset and incumbents over them <= 1 s each;
log_run of a single run on a file warehouse: median <= 20 ms; training_matrix of one model
family over every dataset (about a third of the runs: what the meta-learner reads) in a few s.

Ratios, measured in the same run so that the machine's load cancels out (issue #29):
``log_runs`` within 3x a plain DuckDB insert of the same long tables from Arrow (what the
validation, typing, seq numbering and incumbents cost), and ``Warehouse.sql`` over
``run_features`` for one dataset within 1.2x ``view()`` (the sandbox's cost). Then ingest
of a 3-row CSV file by its column count (250, 1,000, 10,000; target <= 5 s at 10,000).

Usage (from the repository root):
    PYTHONPATH=. python benchmarks/warehouse_bench.py            # 1,000,000 runs
    PYTHONPATH=. python benchmarks/warehouse_bench.py --quick    # 20,000 runs smoke run
    PYTHONPATH=. python benchmarks/warehouse_bench.py --wide     # only the wide-file table
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


def wide_file(path: Path, n_columns: int, seed: int = 0) -> Path:
    """A 3-row CSV file of runs: half numeric parameters, half metrics in [0, 1]."""
    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {"dataset": ["d1", "d2", "d3"], "model": ["m"] * 3}
    for j in range(n_columns):
        kind = "metrics" if j % 2 else "params"
        cols[f"{kind}.c{j}"] = rng.uniform(0, 1, 3)
    pd.DataFrame(cols).to_csv(path, index=False)
    return path


def wide_rows(widths: tuple[int, ...] = (250, 1_000, 10_000)) -> list[tuple[str, str, str, str]]:
    """Seconds to ingest (``metaopt ingest``) a 3-row file of each width into a new file
    warehouse; the file is written beforehand."""
    from warehouse import Warehouse
    from warehouse.ingest import ingest_file

    rows = []
    for width in widths:
        with tempfile.TemporaryDirectory() as tmp:
            csv = wide_file(Path(tmp) / "wide.csv", width)
            with Warehouse(Path(tmp) / "w.duckdb") as wh:
                t0 = time.perf_counter()
                ingest_file(wh, csv)
                seconds = time.perf_counter() - t0
        target = "<= 5 s" if width == 10_000 else "-"
        rows.append((f"ingest 3-row file, {width:,} columns", f"{seconds:.2f} s", "", target))
    return rows


def plain_insert_seconds(wh, path: Path) -> float:  # wh: warehouse.Warehouse
    """Seconds for a plain DuckDB insert, from Arrow, of the long tables ``log_runs`` wrote
    into ``wh`` (runs, run_params, run_metrics), into a new warehouse file in one
    transaction: the floor ``log_runs`` is compared with."""
    from warehouse import Warehouse

    names = ("runs", "run_params", "run_metrics")
    tables = {t: wh._read_arrow(f"SELECT * FROM {t}") for t in names}
    with Warehouse(path) as plain:
        datasets = wh._read_arrow("SELECT * FROM datasets")
        t0 = time.perf_counter()
        with plain._transaction() as con:
            con.register("src_datasets", datasets)
            con.execute("INSERT INTO datasets SELECT * FROM src_datasets")
            for name, table in tables.items():
                con.register(f"src_{name}", table)
                columns = ", ".join(table.column_names)
                con.execute(f"INSERT INTO {name} ({columns}) SELECT {columns} FROM src_{name}")
        return time.perf_counter() - t0


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
    parser.add_argument("--wide", action="store_true", help="only the wide-file table")
    args = parser.parse_args()
    n = args.runs or (20_000 if args.quick else 1_000_000)
    if args.wide:
        _print(wide_rows(), "metaopt warehouse: ingest by column count")
        return

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

            plain_s = plain_insert_seconds(wh, Path(tmp) / "plain.duckdb")
            rows.append(
                (
                    "plain DuckDB insert of the same long tables (Arrow)",
                    f"{plain_s:.2f} s",
                    f"log_runs / plain = {ingest_s / plain_s:.2f}x",
                    "ratio <= 3x",
                )
            )

            t_rf = _best_of(lambda: wh.view("run_features", dataset="ds007"), 3)
            n_rf = len(wh.view("run_features", dataset="ds007"))
            rows.append(
                (f"run_features, one dataset ({n_rf:,} rows)", f"{t_rf:.3f} s", "", "<= 1 s")
            )
            query = "SELECT * FROM run_features WHERE dataset = 'ds007' ORDER BY seq"
            t_sql_rf = _best_of(lambda: wh.sql(query), 3)
            rows.append(
                (
                    "sql(): the same rows of run_features",
                    f"{t_sql_rf:.3f} s",
                    f"sql / view = {t_sql_rf / t_rf:.2f}x",
                    "ratio <= 1.2x",
                )
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
    rows += wide_rows()
    _print(rows, f"metaopt warehouse benchmark ({n:,} runs)")


def _print(rows: list[tuple[str, str, str, str]], title: str) -> None:
    import os

    from rich.console import Console
    from rich.table import Table

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    table = Table(
        title=title,
        caption=f"{os.cpu_count()} CPUs, load average {load} (timings scale with load)",
    )
    for col in ("measure", "time", "rate / ratio", "target"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
