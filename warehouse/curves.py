"""Learning curves: the intermediate values of runs, one row per run × metric × step.

Input, for :func:`log_curves`, ``log_runs(..., curves=)`` and ``metaopt ingest --curves``: a
DataFrame, an Arrow table, a CSV/Parquet path or a list of dicts, in one of two long layouts:

* ``run_id, metric, step, value[, elapsed_s]`` — metaopt's own;
* ``run_id, key, value, step, timestamp`` — MLflow's metric history (the rows of
  ``MlflowClient.get_metric_history`` with their run id, or a tracking store's ``metrics``
  table): ``key`` is the metric, ``timestamp`` milliseconds since the epoch, and ``elapsed_s``
  = (timestamp − the first timestamp of the run in the batch) / 1000.

``log_run(..., curve=)`` takes the same rows without ``run_id`` (they are the run's).

Rules, checked for the whole batch before anything is written (one transaction with the runs
of the same call; a bad row anywhere writes nothing, and the one-line error names the row —
1-based, as ingest counts — and the column):

* the run exists: logged before, or in the same ``log_runs`` batch;
* ``step`` is a whole number >= 0; ``value`` a finite number (an empty cell, NaN or ±inf is
  refused: a point is a measurement); ``elapsed_s`` empty or a finite number >= 0;
* each (run, metric, step) appears once, in the batch and together with the points the
  warehouse holds already;
* a value lies inside its metric's range (the warehouse's ``metrics`` table, as for the runs'
  final metrics); a metric name seen for the first time is registered as ingest registers it
  (direction and range from :mod:`warehouse.metric_ranges`).

Speed: the checks run on Arrow/numpy arrays. Rows usually arrive grouped by run and, within a
run, by metric with steps increasing (how a training loop logs them); then one pass over
adjacent rows proves the points unique, run ids are resolved once per run (not per point)
against ``runs``, and the rows go to DuckDB as one registered Arrow table whose ``seq`` column
is run-end encoded (one value per run). Rows in any other order are proved unique by sorting
one packed int64 key per row. Measured at 10M points against a plain DuckDB insert of the same
Arrow table in ``benchmarks/results/curves_warehouse.md``.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from warehouse.errors import ValidationError
from warehouse.frames import arrow_to_pandas, to_arrow
from warehouse.metric_ranges import default_range, describe_range, register_metrics

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from warehouse.store import Store

#: The columns of metaopt's layout; ``elapsed_s`` is optional.
COLUMNS = ("run_id", "metric", "step", "value", "elapsed_s")
#: MLflow's metric-history layout (``key`` for ``metric``, ``timestamp`` in ms).
MLFLOW_COLUMNS = ("run_id", "key", "value", "step", "timestamp")
#: The run statuses (``runs.status``); ``Warehouse.curves(status=)`` takes these.
STATUSES = ("finished", "failed", "running", "pruned")


# ---------------------------------------------------------------------------- input
@dataclass(frozen=True)
class Points:
    """Checked curve points (from :func:`prepare`): ``table`` holds ``run_id`` (string),
    ``metric`` (string), ``step`` (int64), ``value`` (float64) and ``elapsed_s`` (float64,
    nulls allowed) in input order, each (run, metric, step) once; the rest describes its
    blocks of adjacent rows.

    ``run_starts``: the first row of each block of adjacent rows of one run; ``starts``: the
    first row of each block of one run and metric (a block never spans two runs).
    """

    table: pa.Table
    run_starts: np.ndarray
    starts: np.ndarray
    what: str

    @property
    def n(self) -> int:
        return self.table.num_rows

    @property
    def scattered(self) -> bool:
        """Runs' rows interleaved (blocks average fewer than 8 rows): checks work per row."""
        return len(self.run_starts) * 8 > self.n


def prepare(
    data: Any, what: str, run_id: str | None = None, empty_ok: bool = False
) -> Points | None:
    """The points of ``data``, typed and checked row by row (see the module docstring);
    what needs the warehouse (runs exist, no point stored twice, metric ranges) is checked
    by :func:`insert`.

    ``run_id`` given (``log_run``): ``data`` must not have a run_id column; every point is
    that run's. No points (an empty list or frame) give None when ``run_id`` is given or
    ``empty_ok``, else they are refused. ``what`` starts messages.
    """
    import numpy as np
    import pyarrow as pa

    table = _table(data, what, allow_empty=empty_ok or run_id is not None)
    if table is None:
        return None
    names = table.column_names
    if run_id is not None and "run_id" in names:
        raise ValidationError(
            f"{what}: column 'run_id': the points belong to the run being logged; leave it out"
        )
    if "key" in names and "metric" in names:
        raise ValidationError(f"{what}: columns 'key' and 'metric' both name the metric; keep one")
    if "timestamp" in names and "elapsed_s" in names:
        raise ValidationError(
            f"{what}: columns 'timestamp' and 'elapsed_s' both give the time; keep one"
        )
    allowed = set(COLUMNS) | set(MLFLOW_COLUMNS)
    for name in names:
        if name not in allowed:
            raise ValidationError(
                f"{what}: unknown column {name!r}; expected run_id, metric, step, value and "
                "optionally elapsed_s (or MLflow's run_id, key, value, step, timestamp)"
            )
    metric_col = "key" if "key" in names else "metric"
    for name in ("run_id", metric_col, "step", "value"):
        if name not in names and not (name == "run_id" and run_id is not None):
            raise ValidationError(f"{what}: missing required column {name!r}")
    n = table.num_rows
    runs = (
        pa.chunked_array([pa.array([run_id] * n, pa.string())])
        if run_id is not None
        else _text(table, "run_id", what)
    )
    metrics = _text(table, metric_col, what)
    steps = _steps(table, what)
    values = _floats(table, "value", what)
    _refuse(values.is_null(), what, "value", "empty value (a curve point needs a finite value)")
    _refuse(
        _not_finite(values),
        what,
        "value",
        lambda i: f"value {values[i].as_py()} is not finite (a curve point needs a finite value)",
    )
    if "timestamp" in names:
        elapsed = _elapsed_from_timestamps(table, runs, what)
    elif "elapsed_s" in names:
        elapsed = _floats(table, "elapsed_s", what)
        _refuse(
            _not_finite(elapsed),
            what,
            "elapsed_s",
            lambda i: f"elapsed_s {elapsed[i].as_py()} is not finite",
        )
        _refuse(_less(elapsed, 0.0), what, "elapsed_s", lambda i: f"{elapsed[i]} is negative")
    else:
        elapsed = pa.chunked_array([pa.nulls(n, pa.float64())])
    # blocks of adjacent rows: run ids and metric names are checked once per block
    same_run = _adjacent_equal(runs)
    run_starts = np.flatnonzero(np.concatenate([[True], ~same_run]))
    same = same_run & _adjacent_equal(metrics)
    starts = np.flatnonzero(np.concatenate([[True], ~same]))
    if run_id is None:
        _refuse_empty(runs, run_starts, what, "run_id", "run_id")
    _refuse_empty(metrics, starts, what, metric_col, "metric")
    # each (run, metric, step) once in the batch. Rows as a training loop logs them — one
    # block per (run, metric), steps growing — prove it from adjacent rows and the blocks'
    # first rows; any other order is checked over every row (_refuse_duplicates)
    step = steps.to_numpy()
    ordered = not (same & (step[1:] <= step[:-1])).any()
    if ordered:  # each (run, metric) in one block: its key appears at one start only
        run_code = _codes(runs.take(pa.array(run_starts)))
        block_run = run_code[np.searchsorted(run_starts, starts, side="right") - 1]
        metric_code = _codes(metrics.take(pa.array(starts)))
        keys = block_run * (int(metric_code.max()) + 1) + metric_code
        ordered = len(np.unique(keys)) == len(starts)
    if not ordered:
        _refuse_duplicates(runs, metrics, step, what)
    points = pa.table(
        {"run_id": runs, "metric": metrics, "step": steps, "value": values, "elapsed_s": elapsed}
    )
    return Points(points, run_starts, starts, what)


def _refuse_duplicates(
    runs: pa.ChunkedArray, metrics: pa.ChunkedArray, step: np.ndarray, what: str
) -> None:
    """Refuse a (run, metric, step) given twice, naming its first two rows: every row's key
    packed into one int64 (run code, metric code, step) and sorted — numpy sorts 10M
    integers in ~0.1 s, a hash GROUP BY over the three columns took seconds — or, when the
    key would not fit 63 bits, pandas' hash of the three columns."""
    import numpy as np
    import pandas as pd

    run_code, metric_code = _codes(runs), _codes(metrics)
    n_metrics, span = int(metric_code.max()) + 1, int(step.max()) + 1
    if (int(run_code.max()) + 1) * n_metrics * span < 2**63:
        key = (run_code * n_metrics + metric_code) * span + step
        keys = np.sort(key)
        repeated = keys[1:][keys[1:] == keys[:-1]]
        if not len(repeated):
            return
        twice = np.flatnonzero(np.isin(key, repeated))
        first = int(twice[0])
        rows = np.flatnonzero(key == key[first])[:2]
    else:
        frame = pd.DataFrame({"r": run_code, "m": metric_code, "s": step})
        twice = np.flatnonzero(frame.duplicated(keep=False).to_numpy())
        if not len(twice):
            return
        first = int(twice[0])
        same = (run_code == run_code[first]) & (metric_code == metric_code[first])
        rows = np.flatnonzero(same & (step == step[first]))[:2]
    a, b = (int(r) for r in rows)
    raise ValidationError(
        f"{what}: rows {a + 1} and {b + 1}: run {runs[a].as_py()!r} has two points for metric "
        f"{metrics[a].as_py()!r} at step {int(step[a])}"
    )


def _not_finite(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """True where a value is NaN or ±inf (nulls: False)."""
    import pyarrow.compute as pc

    return pc.fill_null(pc.invert(pc.is_finite(column)), False)


def _less(column: pa.ChunkedArray, bound: float) -> pa.ChunkedArray:
    import pyarrow.compute as pc

    return pc.fill_null(pc.less(column, bound), False)


def _codes(column: pa.ChunkedArray) -> np.ndarray:
    import numpy as np
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(column).combine_chunks()
    return np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)


def _table(data: Any, what: str, allow_empty: bool) -> pa.Table | None:
    """``data`` as an Arrow table; a list of dicts is read column by column (every key of
    every row; pyarrow's ``from_pylist`` would keep only the first row's keys)."""
    import pandas as pd
    import pyarrow as pa

    if isinstance(data, list | tuple):
        if not data:
            if allow_empty:
                return None
            raise ValidationError(f"{what}: the input has no rows")
        for i, row in enumerate(data, 1):
            if not isinstance(row, Mapping):
                raise ValidationError(
                    f"{what}: row {i} is a {type(row).__name__}, not a dict of "
                    "metric, step, value[, elapsed_s]"
                )
        keys = list(dict.fromkeys(k for row in data for k in row))
        columns = {}
        for key in keys:
            if not isinstance(key, str):
                raise ValidationError(f"{what}: column {key!r}: column names must be strings")
            cells = [_plain(row.get(key)) for row in data]
            try:
                columns[key] = pa.array(cells)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                # mixed kinds (0.5 and 'x'): as text, so the row at fault is named below
                columns[key] = pa.array([None if v is None else str(v) for v in cells])
        return pa.table(columns)
    if allow_empty and isinstance(data, pd.DataFrame | pa.Table) and len(data) == 0:
        return None
    return to_arrow(data, what=what)


def _plain(value: Any) -> Any:
    """A numpy scalar as its Python value (pyarrow would not mix them with Python numbers)."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        return value.item()
    return value


def _column(table: pa.Table, name: str) -> pa.ChunkedArray:
    import pyarrow as pa

    column = table[name]
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column


def _refuse(mask: Any, what: str, column: str, message: Any) -> None:
    """Raise for the first True in ``mask`` (Arrow booleans or a numpy array): ``what: row N,
    column C: message`` (``message``: text, or a function of the row's index)."""
    import numpy as np
    import pyarrow.compute as pc

    if isinstance(mask, np.ndarray):
        hits = np.flatnonzero(mask)
        at = int(hits[0]) if len(hits) else -1
    else:
        at = pc.index(mask, True).as_py() if pc.any(mask).as_py() else -1
    if at >= 0:
        text = message(at) if callable(message) else message
        raise ValidationError(f"{what}: row {at + 1}, column {column!r}: {text}")


def _refuse_empty(
    column: pa.ChunkedArray, starts: np.ndarray, what: str, name: str, label: str
) -> None:
    """Refuse an empty or blank cell: checked on each block's first row (the other rows of a
    block hold the same text)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    first = column.take(pa.array(starts))
    blank = pc.fill_null(
        pc.or_(pc.equal(pc.binary_length(first), 0), pc.utf8_is_space(first)), True
    )
    bad = np.asarray(blank.to_numpy(zero_copy_only=False), dtype=bool)
    hits = np.flatnonzero(bad)
    if len(hits):
        raise ValidationError(
            f"{what}: row {int(starts[hits[0]]) + 1}, column {name!r}: empty {label}"
        )


def _text(table: pa.Table, name: str, what: str) -> pa.ChunkedArray:
    """A column of names (run ids, metrics) as strings (numbers become their text)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = _column(table, name)
    try:  # one chunk: pyarrow's take on several chunks first concatenates them all
        text = pc.cast(column, pa.string())
        return text if text.num_chunks == 1 else pa.chunked_array([text.combine_chunks()])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise ValidationError(
            f"{what}: column {name!r}: expected text, not {column.type}"
        ) from None


def _kind(arrow_type: pa.DataType) -> str:
    import pyarrow.types as pt

    if pt.is_integer(arrow_type):
        return "int"
    if pt.is_floating(arrow_type) or pt.is_decimal(arrow_type):
        return "float"
    if pt.is_string(arrow_type) or pt.is_large_string(arrow_type):
        return "text"
    if pt.is_null(arrow_type):
        return "null"
    return "other"


def _floats(table: pa.Table, name: str, what: str) -> pa.ChunkedArray:
    """A column of numbers as float64, empty cells null. Text cells are read as numbers (a
    CSV column with one bad cell is text); one that is not a number is refused, naming its
    row."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    column = _column(table, name)
    kind = _kind(column.type)
    if kind in ("int", "float"):
        return pc.cast(column, pa.float64())
    if kind == "null":
        return pa.chunked_array([pa.nulls(len(column), pa.float64())])
    if kind != "text":
        raise ValidationError(f"{what}: column {name!r}: expected numbers, not {column.type}")
    text = pd.Series(column.to_numpy(zero_copy_only=False), dtype=object).str.strip()
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    said_nan = text.str.lower().isin(["nan", "+nan", "-nan"]).to_numpy()
    missing = text.isna().to_numpy()
    bad = ~missing & np.isnan(values) & ~said_nan
    _refuse(bad, what, name, lambda i: f"{_shown(text[i])} is not a number")
    return pa.chunked_array([pa.array(np.where(missing, np.nan, values), mask=missing)])


def _shown(text: Any) -> str:
    text = str(text)
    return repr(text if len(text) <= 80 else text[:80] + "…")  # a cell may hold megabytes


def _steps(table: pa.Table, what: str) -> pa.ChunkedArray:
    """The ``step`` column as int64: whole numbers >= 0, no empty cells."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = _column(table, "step")
    if _kind(column.type) != "int":
        values = _floats(table, "step", what)
        _refuse(values.is_null(), what, "step", "empty step")
        whole = pc.and_(
            pc.is_finite(values),
            pc.and_(pc.equal(pc.floor(values), values), pc.less(pc.abs(values), 2.0**62)),
        )
        _refuse(
            pc.invert(whole), what, "step", lambda i: f"{values[i].as_py()} is not a whole number"
        )
        column = values
    _refuse(column.is_null(), what, "step", "empty step")
    try:
        steps = pc.cast(column, pa.int64())
    except pa.ArrowInvalid:  # an unsigned value beyond int64
        raise ValidationError(f"{what}: column 'step': a step is too large") from None
    _refuse(
        _less(steps, 0),
        what,
        "step",
        lambda i: f"step {steps[i].as_py()} is negative (steps count from 0)",
    )
    return steps if steps.num_chunks == 1 else pa.chunked_array([steps.combine_chunks()])


def _elapsed_from_timestamps(table: pa.Table, runs: pa.ChunkedArray, what: str) -> pa.ChunkedArray:
    """MLflow's ``timestamp`` (ms since the epoch, or an Arrow timestamp) → seconds since the
    first timestamp of the same run in the batch; null where a timestamp is missing."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    column = _column(table, "timestamp")
    if pa.types.is_timestamp(column.type):  # a datetime column: its own unit → ms
        scale = {"s": 1000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6}[column.type.unit]
        ms = pc.multiply(pc.cast(pc.cast(column, pa.int64()), pa.float64()), scale)
    else:
        ms = _floats(table, "timestamp", what)
        _refuse(_not_finite(ms), what, "timestamp", lambda i: f"{ms[i].as_py()} is not finite")
    raw = ms.to_numpy()  # nulls → NaN
    first = pd.Series(raw).groupby(_codes(runs)).transform("min").to_numpy()
    seconds = (raw - first) / 1000.0
    return pa.chunked_array([pa.array(seconds, pa.float64(), from_pandas=True)])


def _adjacent_equal(column: pa.ChunkedArray) -> np.ndarray:
    """``out[i]``: row i + 1 holds the same value as row i (length n − 1)."""
    import numpy as np
    import pyarrow.compute as pc

    n = len(column)
    if n < 2:
        return np.zeros(0, dtype=bool)
    equal = pc.fill_null(pc.equal(column.slice(1), column.slice(0, n - 1)), False)
    return np.asarray(equal.to_numpy(zero_copy_only=False), dtype=bool)


# ---------------------------------------------------------------------------- writing
def _first_row(con: Any, sql: str, params: Any = None) -> tuple | None:
    rows = con.execute(sql, params).fetchall()
    return rows[0] if rows else None


def insert(
    con: Any,
    points: Points,
    fresh_from: int | None = None,
    known: Mapping[str, int] | None = None,
) -> int:
    """Check ``points`` against the warehouse and insert them, inside the caller's
    transaction; returns the number written.

    ``fresh_from``: runs with ``seq >= fresh_from`` were inserted in this transaction (the
    batch's own), so they hold no stored points to collide with. ``known``: run id → seq of
    runs the caller has just inserted (``log_run``), which need no lookup.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    what, table, n = points.what, points.table, points.n
    runs, metrics = table["run_id"], table["metric"]
    run_starts = points.run_starts
    seg_seq = _resolve(con, runs.take(pa.array(run_starts)), run_starts, what, known)
    if points.scattered:  # rows of runs interleaved: one seq per row
        seq = pa.array(np.repeat(seg_seq, np.diff(np.append(run_starts, n))), pa.int64())
    else:  # one value per block of a run, run-end encoded: no per-row array
        ends_type = pa.int32() if n < 2**31 else pa.int64()
        seq = pa.RunEndEncodedArray.from_arrays(
            pa.array(np.append(run_starts[1:], n), ends_type), pa.array(seg_seq, pa.int64())
        )
    keyed = table.select(["run_id", "metric", "step"]).append_column("seq", seq)
    with _Registered(con) as register:
        # against the points the warehouse holds (runs logged before this transaction)
        before = seg_seq if fresh_from is None else seg_seq[seg_seq < fresh_from]
        old = pc.unique(pa.array(before, pa.int64())).to_numpy()
        if len(old):
            ids = register(pa.table({"seq": old}))
            holding = con.execute(
                f"SELECT DISTINCT c.seq FROM run_curves AS c SEMI JOIN {ids} AS o ON o.seq = c.seq"
            ).fetchall()
            if holding:
                src = register(keyed.append_column("__row", pa.array(np.arange(1, n + 1))))
                clash = _first_row(
                    con,
                    f"SELECT b.__row, b.run_id, b.metric, b.step FROM {src} AS b "
                    "JOIN run_curves AS c ON c.seq = b.seq AND c.metric = b.metric "
                    "AND c.step = b.step WHERE list_contains(?::BIGINT[], b.seq) "
                    "ORDER BY b.__row LIMIT 1",
                    [[int(r[0]) for r in holding]],
                )
                if clash is not None:
                    raise ValidationError(
                        f"{what}: row {clash[0]}: run {clash[1]!r} already has a point for "
                        f"metric {clash[2]!r} at step {clash[3]} in the warehouse"
                    )
        new = _check_ranges(con, points)
        if new:
            register_metrics(con, new)
        src = register(
            pa.table(
                {
                    "run_id": runs,
                    "seq": seq,
                    "metric": metrics,
                    "step": table["step"],
                    "value": table["value"],
                    "elapsed_s": table["elapsed_s"],
                }
            )
        )
        con.execute(
            "INSERT INTO run_curves (run_id, seq, metric, step, value, elapsed_s) "
            f"SELECT run_id, seq, metric, step, value, elapsed_s FROM {src}"
        )
    return n


def _check_ranges(con: Any, points: Points) -> list[str]:
    """Refuse a value outside its metric's stored range (the first such row); returns the
    batch's metric names the warehouse does not know yet. Each metric's smallest and largest
    value are compared first (per block of one run and metric, or per metric for scattered
    rows); rows only on a miss."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    metrics, values = points.table["metric"], points.table["value"]
    if points.scattered:
        spans = (
            pa.table({"m": metrics, "v": values})
            .group_by("m")
            .aggregate([("v", "min"), ("v", "max")])
        )
        block_metric, lows, highs = spans["m"], spans["v_min"], spans["v_max"]
    else:
        starts = points.starts
        block_metric = metrics.take(pa.array(starts))
        data = values.to_numpy()
        lows, highs = np.minimum.reduceat(data, starts), np.maximum.reduceat(data, starts)
    names = sorted(pc.unique(block_metric).to_pylist())
    bounds = {  # the stored ranges; a new name gets the known table's (registered by insert)
        name: (lower, upper)
        for name, lower, upper in con.execute(
            "SELECT name, lower, upper FROM metrics WHERE list_contains(?::VARCHAR[], name)",
            [names],
        ).fetchall()
    }
    new = [name for name in names if name not in bounds]
    bounds.update((name, default_range(name)) for name in new)
    if all(lo is None and hi is None for lo, hi in bounds.values()):
        return new
    at = pc.index_in(block_metric, value_set=pa.array(names, pa.string())).to_numpy()
    low = np.array([-math.inf if bounds[m][0] is None else bounds[m][0] for m in names])
    high = np.array([math.inf if bounds[m][1] is None else bounds[m][1] for m in names])
    outside = (np.asarray(lows) < low[at]) | (np.asarray(highs) > high[at])
    if not outside.any():
        return new
    # the first row at fault: each row against its metric's bounds
    codes = pc.index_in(metrics, value_set=pa.array(names, pa.string())).to_numpy()
    data = values.to_numpy()
    i = int(np.flatnonzero((data < low[codes]) | (data > high[codes]))[0])
    name = names[int(codes[i])]
    raise ValidationError(
        f"{points.what}: row {i + 1}, column 'value': {data[i]} is outside the range of "
        f"metric {name!r}, {describe_range(*bounds[name])} "
        "(Warehouse.set_metric_range changes it)"
    )


def _resolve(
    con: Any,
    seg_ids: pa.ChunkedArray,
    run_starts: np.ndarray,
    what: str,
    known: Mapping[str, int] | None,
) -> np.ndarray:
    """The seq of each block's run: one lookup per distinct run id; an id the warehouse
    does not hold is refused, naming the first row that uses it."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    distinct = pc.unique(seg_ids)
    if known is not None and all(v in known for v in distinct.to_pylist()):
        found_ids = pa.array(list(known), pa.string())
        found_seq = np.array(list(known.values()), dtype=np.int64)
    else:
        with _Registered(con) as register:
            src = register(pa.table({"run_id": distinct}))
            found = con.sql(
                f"SELECT r.run_id, r.seq FROM runs AS r SEMI JOIN {src} AS u ON u.run_id = r.run_id"
            ).to_arrow_table()
        found_ids = found["run_id"].combine_chunks()
        found_seq = np.asarray(found["seq"].to_numpy(), dtype=np.int64)
    at = pc.index_in(seg_ids, value_set=found_ids)
    missing = np.asarray(pc.is_null(at).to_numpy(zero_copy_only=False), dtype=bool)
    hits = np.flatnonzero(missing)
    if len(hits):
        i = int(hits[0])
        raise ValidationError(
            f"{what}: row {int(run_starts[i]) + 1}, column 'run_id': no run "
            f"{seg_ids[i].as_py()!r} in the warehouse (log the run first, or in the same "
            "log_runs batch)"
        )
    return found_seq[np.asarray(pc.fill_null(at, 0).to_numpy(), dtype=np.int64)]


class _Registered:
    """Registers Arrow tables with DuckDB under fresh names; unregisters them at the end."""

    def __init__(self, con: Any):
        self.con, self.names = con, []

    def __call__(self, table: pa.Table) -> str:
        name = f"__metaopt_curves_{uuid.uuid4().hex[:12]}"
        self.con.register(name, table)
        self.names.append(name)
        return name

    def __enter__(self) -> _Registered:
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.names:
            self.con.unregister(name)


def log_curves(wh: Store, data: Any) -> int:
    """Log learning-curve points of runs already in the warehouse, all or nothing; returns
    the number of points written (see the module docstring for the layouts and rules)."""
    points = prepare(data, "log_curves")
    assert points is not None
    with wh._transaction() as con:
        return insert(con, points)


# ---------------------------------------------------------------------------- reading
def _values(value: str | Sequence[str], name: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping) or not isinstance(value, Sequence | set | frozenset):
        raise ValidationError(f"{name} must be a name or a list of names, not {value!r}")
    return [str(v) for v in value]


def read(
    wh: Store,
    dataset: str | Sequence[str] | None = None,
    model: str | Sequence[str] | None = None,
    metric: str | Sequence[str] | None = None,
    run_ids: Sequence[str] | None = None,
    status: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Learning-curve points with their run's dataset, model and status: columns
    ``run_id, dataset, model, status, metric, step, elapsed_s, value`` (``elapsed_s`` NaN when
    unknown), ordered by run (logging order), metric and step. Every filter given must match
    (a name or a list of names); ``status`` is among finished, failed, running, pruned."""
    clauses: list[str] = []
    args: list[Any] = []
    for column, value, name in (
        ("r.dataset", dataset, "dataset"),
        ("r.model", model, "model"),
        ("c.metric", metric, "metric"),
        ("r.status", status, "status"),
    ):
        if value is None:
            continue
        values = _values(value, name)
        if name == "status":
            unknown = [v for v in values if v not in STATUSES]
            if unknown:
                raise ValidationError(
                    f"unknown status {unknown[0]!r} (expected {', '.join(STATUSES)})"
                )
        clauses.append(_in(column, values, args))
    if run_ids is not None:
        if isinstance(run_ids, str):
            raise ValidationError("run_ids must be a list of run ids, not a string")
        clauses.append(_in("r.run_id", [str(r) for r in run_ids], args))
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    table = wh._read_arrow(
        "SELECT r.run_id, r.dataset, r.model, r.status, c.metric, c.step, c.elapsed_s, c.value "
        f"FROM run_curves AS c JOIN runs AS r ON r.seq = c.seq{where} "
        "ORDER BY r.seq, c.metric, c.step",
        args,
    )
    return arrow_to_pandas(table)


#: Lists longer than this are bound as one list parameter instead of one placeholder each.
_PLACEHOLDERS = 100


def _in(column: str, values: list[str], args: list[Any]) -> str:
    """``column IN (…)`` with bound parameters (placeholders keep DuckDB's filter pushdown;
    a long list is bound as one array)."""
    if not values:
        return "FALSE"
    if len(values) > _PLACEHOLDERS:
        args.append(values)
        return f"{column} IN (SELECT unnest(?::VARCHAR[]))"
    args.extend(values)
    return f"{column} IN ({', '.join('?' for _ in values)})"


__all__ = ["COLUMNS", "MLFLOW_COLUMNS", "STATUSES", "insert", "log_curves", "prepare", "read"]
