"""Learning-curve benchmark: 10M points in, one dataset's curves out, against plain DuckDB.

Issue #28: "Millions of points stay fast: measure ingest and a per-dataset curve query at 10M
points against a plain DuckDB insert and scan of the same data in the same run".

Data: 50,000 runs (50 datasets x 3 model families; 20% pruned, the rest finished) x 2 metrics
(accuracy, log_loss) x 100 steps = 10,000,000 points, as one Arrow table ``run_id, metric,
step, value, elapsed_s`` whose rows are grouped by run and metric with growing steps (how a
training loop logs them). ``--shuffled`` also times the same rows in random order.

Ingest (file warehouses, fresh each time; the runs are logged before the timed call unless it
logs them too):

* plain DuckDB: ``INSERT`` of the Arrow table into a table with run_curves' columns and CHECKs
  (without ``seq``), and ``CREATE TABLE AS`` — the floor: no validation, no run lookup;
* ``Warehouse.log_curves(table)``, and ``Warehouse.log_runs(runs, curves=table)`` against a
  plain insert of the runs' rows plus the curves.

Query, one dataset (~200,000 points), each a pandas DataFrame through Arrow:

* plain DuckDB: ``SELECT * FROM points WHERE dataset = ? ORDER BY run_id, metric, step`` on a
  denormalized table (dataset, model and status in every row: the best case for a scan);
* ``Warehouse.curves(dataset=...)``, ``view("curve_points", dataset=...)`` (adds the budget,
  best-so-far window and budget fraction) and ``curve_summary`` for the dataset.

Every measure is the median of ``--repeat`` runs, the plain and metaopt sides interleaved in one
process so that the machine's load cancels out of the ratios.

Usage (from the repository root):
    PYTHONPATH=. python benchmarks/curves_bench.py              # 10,000,000 points
    PYTHONPATH=. python benchmarks/curves_bench.py --quick      # 1,000,000 points
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

METRICS = ("accuracy", "log_loss")
STEPS = 100
DATASETS = 50
TARGET = 2.0  # the ratio above which the issue asks for a cause and a fix


def make_runs(n_runs: int, seed: int = 0) -> pd.DataFrame:
    """The runs in the MLflow layout: dataset, model, status (20% pruned), a final accuracy."""
    rng = np.random.default_rng(seed)
    finished = rng.uniform(size=n_runs) >= 0.2
    return pd.DataFrame(
        {
            "run_id": [f"c{i:09d}" for i in range(n_runs)],  # 10 characters: inline strings
            "dataset": np.array([f"ds{i:03d}" for i in range(DATASETS)])[
                rng.integers(0, DATASETS, n_runs)
            ],
            "model": np.array(["rf", "gbm", "mlp"])[rng.integers(0, 3, n_runs)],
            "status": np.where(finished, "finished", "pruned"),
            "metrics.accuracy": np.where(finished, rng.uniform(0.5, 1.0, n_runs), np.nan),
        }
    )


def make_curves(runs: pd.DataFrame, seed: int = 1) -> pa.Table:
    """``len(runs) x 2 metrics x 100 steps`` points, grouped by run and metric, steps growing."""
    rng = np.random.default_rng(seed)
    n_runs = len(runs)
    per_run = len(METRICS) * STEPS
    step = np.tile(np.arange(STEPS, dtype=np.int64), n_runs * len(METRICS))
    progress = (step + 1) / STEPS
    accuracy = np.clip(0.5 + 0.45 * progress + rng.normal(0, 0.02, step.size), 0.0, 1.0)
    loss = np.exp(-2 * progress) + rng.exponential(0.05, step.size)
    is_accuracy = np.tile(np.repeat([True, False], STEPS), n_runs)
    return pa.table(
        {
            "run_id": np.repeat(runs["run_id"].to_numpy(dtype=str), per_run),
            "metric": np.tile(np.repeat(np.array(METRICS), STEPS), n_runs),
            "step": step,
            "value": np.where(is_accuracy, accuracy, loss),
            "elapsed_s": step * 0.5,
        }
    )


PLAIN_COLUMNS = (
    "run_id VARCHAR NOT NULL, metric VARCHAR NOT NULL, step BIGINT NOT NULL CHECK (step >= 0), "
    "value DOUBLE NOT NULL CHECK (isfinite(value)), "
    "elapsed_s DOUBLE CHECK (isfinite(elapsed_s) AND elapsed_s >= 0)"
)


#: What the curve_points view computes (best so far, budget, budget fraction), written for the
#: denormalized plain table (log_loss minimized, accuracy maximized).
PLAIN_CURVE_POINTS = """
SELECT *,
    sign * max(sign * value) OVER (
        PARTITION BY run_id, metric ORDER BY step ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS best_so_far,
    max(step) FILTER (WHERE status = 'finished') OVER (PARTITION BY model, metric) AS budget,
    step / nullif(budget, 0) AS budget_fraction
FROM (
    SELECT *, CASE WHEN metric = 'log_loss' THEN -1.0 ELSE 1.0 END AS sign
    FROM points WHERE dataset = ?
)
ORDER BY run_id, metric, step
"""


def _seconds(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def plain_insert(folder: Path, curves: pa.Table, runs: pa.Table | None = None) -> float:
    """Seconds for a plain DuckDB INSERT of the points (and the runs' rows) from Arrow into a
    new file, one transaction, committed."""
    import duckdb

    path = folder / f"plain-{time.monotonic_ns()}.duckdb"
    con = duckdb.connect(str(path))
    try:
        con.execute(f"CREATE TABLE points ({PLAIN_COLUMNS})")
        if runs is not None:
            con.execute(
                "CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, dataset VARCHAR, model VARCHAR, "
                "status VARCHAR, accuracy DOUBLE)"
            )
            con.register("src_runs", runs)
        con.register("src", curves)
        t0 = time.perf_counter()
        con.execute("BEGIN TRANSACTION")
        if runs is not None:
            con.execute("INSERT INTO runs SELECT * FROM src_runs")
        con.execute("INSERT INTO points SELECT * FROM src")
        con.execute("COMMIT")
        return time.perf_counter() - t0
    finally:
        con.close()
        path.unlink(missing_ok=True)


def plain_ctas(folder: Path, curves: pa.Table) -> float:
    import duckdb

    path = folder / f"ctas-{time.monotonic_ns()}.duckdb"
    con = duckdb.connect(str(path))
    try:
        con.register("src", curves)
        return _seconds(lambda: con.execute("CREATE TABLE points AS SELECT * FROM src"))
    finally:
        con.close()
        path.unlink(missing_ok=True)


def warehouse_ingest(folder: Path, runs: pd.DataFrame, curves: pa.Table, together: bool) -> float:
    """Seconds for ``log_curves`` (runs logged before, untimed) or, ``together``, for
    ``log_runs(runs, curves=)``, into a new file warehouse."""
    from warehouse import Warehouse

    path = folder / f"wh-{time.monotonic_ns()}.duckdb"
    try:
        with Warehouse(path) as wh:
            if together:
                return _seconds(lambda: wh.log_runs(runs, curves=curves))
            wh.log_runs(runs)
            return _seconds(lambda: wh.log_curves(curves))
    finally:
        for p in (path, path.with_suffix(".duckdb.wal")):
            p.unlink(missing_ok=True)


def _runs_arrow(runs: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(runs, preserve_index=False)


def _median(values: list[float]) -> float:
    return statistics.median(values)


def ingest_rows(folder: Path, runs, curves, repeat: int, shuffled: bool) -> list[tuple]:
    n = curves.num_rows
    times: dict[str, list[float]] = {k: [] for k in ("plain", "ctas", "log", "plain+", "both")}
    runs_arrow = _runs_arrow(runs)
    for _ in range(repeat):
        times["plain"].append(plain_insert(folder, curves))
        times["log"].append(warehouse_ingest(folder, runs, curves, together=False))
        times["ctas"].append(plain_ctas(folder, curves))
        times["plain+"].append(plain_insert(folder, curves, runs_arrow))
        times["both"].append(warehouse_ingest(folder, runs, curves, together=True))
    m = {k: _median(v) for k, v in times.items()}
    rows = [
        (f"plain DuckDB INSERT of {n:,} points (Arrow)", m["plain"], "1.00x (floor)"),
        ("plain DuckDB CREATE TABLE AS", m["ctas"], f"{m['ctas'] / m['plain']:.2f}x"),
        ("`Warehouse.log_curves` (runs already logged)", m["log"], _ratio(m["log"], m["plain"])),
        ("plain DuckDB INSERT of the runs' rows + the points", m["plain+"], "1.00x (floor)"),
        ("`Warehouse.log_runs(runs, curves=)`", m["both"], _ratio(m["both"], m["plain+"])),
    ]
    if shuffled:
        order = np.random.default_rng(2).permutation(n)
        mixed = curves.take(pa.array(order))
        t_plain = _median([plain_insert(folder, mixed) for _ in range(repeat)])
        t_log = _median(
            [warehouse_ingest(folder, runs, mixed, together=False) for _ in range(repeat)]
        )
        rows += [
            ("plain DuckDB INSERT, rows shuffled", t_plain, "1.00x (floor)"),
            (
                "`log_curves`, rows shuffled (checked by sorting packed keys)",
                t_log,
                _ratio(t_log, t_plain),
            ),
        ]
    return rows


def _ratio(ours: float, floor: float) -> str:
    ratio = ours / floor
    flag = "" if ratio <= TARGET else f" (over {TARGET:g}x)"
    return f"**{ratio:.2f}x**{flag}"


def query_rows(folder: Path, runs, curves, repeat: int, dataset: str = "ds007") -> list[tuple]:
    import duckdb

    from warehouse import Warehouse
    from warehouse.frames import arrow_to_pandas

    wh_path = folder / "query.duckdb"
    plain_path = folder / "query-plain.duckdb"
    with Warehouse(wh_path) as wh:
        wh.log_runs(runs, curves=curves)
    meta = pa.Table.from_pandas(runs[["run_id", "dataset", "model", "status"]])
    con = duckdb.connect(str(plain_path))
    con.register("src", curves)
    con.register("meta", meta)
    con.execute(  # denormalized, in the same row order as run_curves
        "CREATE TABLE points AS SELECT s.run_id, m.dataset, m.model, m.status, s.metric, s.step, "
        "s.elapsed_s, s.value FROM src AS s JOIN meta AS m USING (run_id) "
        "ORDER BY s.run_id, s.metric, s.step"
    )
    con.close()

    plain = duckdb.connect(str(plain_path), read_only=True)  # open once, as the warehouse

    def plain_scan() -> pd.DataFrame:
        query = "SELECT * FROM points WHERE dataset = ? ORDER BY run_id, metric, step"
        return arrow_to_pandas(plain.sql(query, params=[dataset]).to_arrow_table())

    def plain_unordered() -> pd.DataFrame:
        query = "SELECT * FROM points WHERE dataset = ?"
        return arrow_to_pandas(plain.sql(query, params=[dataset]).to_arrow_table())

    def plain_windows() -> pd.DataFrame:  # curve_points' columns, computed on the plain table
        return arrow_to_pandas(plain.sql(PLAIN_CURVE_POINTS, params=[dataset]).to_arrow_table())

    times: dict[str, list[float]] = {
        k: [] for k in ("plain", "unordered", "windows", "curves", "points", "summary")
    }
    with Warehouse(wh_path, read_only=True) as wh:
        sizes = {
            "plain": len(plain_scan()),
            "curves": len(wh.curves(dataset=dataset)),
            "points": len(wh.view("curve_points", dataset=dataset)),
            "summary": len(wh.sql("SELECT * FROM curve_summary WHERE dataset = ?", [dataset])),
        }
        assert sizes["plain"] == sizes["curves"] == sizes["points"], sizes
        for _ in range(repeat):
            times["plain"].append(_seconds(plain_scan))
            times["unordered"].append(_seconds(plain_unordered))
            times["windows"].append(_seconds(plain_windows))
            times["curves"].append(_seconds(lambda: wh.curves(dataset=dataset)))
            times["points"].append(_seconds(lambda: wh.view("curve_points", dataset=dataset)))
            times["summary"].append(
                _seconds(lambda: wh.sql("SELECT * FROM curve_summary WHERE dataset = ?", [dataset]))
            )
    plain.close()
    m = {k: _median(v) for k, v in times.items()}
    n = sizes["plain"]
    return [
        (f"plain DuckDB scan of one dataset, ordered ({n:,} points)", m["plain"], "1.00x (floor)"),
        ("plain DuckDB scan, unordered", m["unordered"], f"{m['unordered'] / m['plain']:.2f}x"),
        ("`Warehouse.curves(dataset=)`", m["curves"], _ratio(m["curves"], m["plain"])),
        (
            "plain DuckDB: curve_points' columns from the plain table",
            m["windows"],
            _ratio(m["windows"], m["plain"]),
        ),
        ('`view("curve_points", dataset=)`', m["points"], _ratio(m["points"], m["plain"])),
        (
            "`curve_points` / the same columns from the plain table",
            None,
            _ratio(m["points"], m["windows"]),
        ),
        (
            f"`curve_summary` for the dataset ({sizes['summary']:,} rows)",
            m["summary"],
            f"{m['summary'] / m['plain']:.2f}x",
        ),
    ]


def _print(rows: list[tuple], title: str) -> None:
    print(f"\n### {title}\n")
    print("| measure | seconds (median) | ratio to the plain floor |")
    print("|---|---|---|")
    for name, seconds, ratio in rows:
        shown = "—" if seconds is None else f"{seconds:.3f}"
        print(f"| {name} | {shown} | {ratio} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 runs (1,000,000 points)")
    parser.add_argument("--runs", type=int, default=None, help="runs (200 points each)")
    parser.add_argument("--repeat", type=int, default=3, help="repeats per measure (median)")
    parser.add_argument("--shuffled", action="store_true", help="also time shuffled rows")
    args = parser.parse_args()
    n_runs = args.runs or (5_000 if args.quick else 50_000)
    runs = make_runs(n_runs)
    curves = make_curves(runs)
    command = "PYTHONPATH=. python benchmarks/curves_bench.py " + " ".join(sys.argv[1:])
    print(f"command: {command.strip()}")
    print(f"points: {curves.num_rows:,} ({n_runs:,} runs x {len(METRICS)} metrics x {STEPS} steps)")
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _print(ingest_rows(folder, runs, curves, args.repeat, args.shuffled), "ingest")
        _print(query_rows(folder, runs, curves, max(args.repeat, 5)), "query one dataset")
    print(f"\nload average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
