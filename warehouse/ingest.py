"""Getting runs into the warehouse: one run (:func:`log_run`) or many (:func:`log_runs`).

Input layout for :func:`log_runs` is the one ``mlflow.search_runs()`` returns: one row per run,
columns ``dataset``, ``model``, ``params.<name>``, ``metrics.<name>``, optional ``arch.<name>``
and the run fields ``run_id, status, started_at, finished_at, duration_s, cpu_s, peak_mem_mb,
seed, source, error, split``. MLflow's own ``start_time``/``end_time`` are read as
``started_at``/``finished_at``, ``experiment_id``/``artifact_uri``/``lifecycle_stage``/``run_name``
and ``tags.*`` are ignored, MLflow statuses (FINISHED, FAILED, KILLED, RUNNING, SCHEDULED) are
mapped to finished/failed/running; ``pruned`` marks a trial a pruner stopped early (not
finished: it never enters the training matrix or the incumbents).

Choices about values (documented in the README's data section):

* A *missing* cell (null; in pandas, NaN is the missing marker) means the run did not record
  that parameter/metric: nothing is stored. An *explicit* NaN or ±inf (a NaN in an Arrow
  table or Parquet file, ``nan``/``inf`` text in a CSV, a NaN in ``log_run``'s dict) is refused.
* Text parameter cells are typed per value: ``None``/``null`` → unset (stored with both values
  NULL), ``true``/``false`` → 1/0, a finite number → numeric, anything else → text. MLflow
  logs every parameter as text, so this recovers numbers from real MLflow exports.
* Metric cells must be finite numbers; text that is not a number is refused.
* ``run_id`` values must be unique in the batch and new to the warehouse; without a
  ``run_id`` column, ids are generated (12 random base-32 characters), except that
  :func:`ingest_file` (``metaopt ingest``) names a file's rows by their content so that
  loading the file again adds nothing.
* Datasets and metric names seen for the first time are created (datasets with
  ``source='ingest'``; metrics with a direction guessed from the name: loss, error, rmse,
  mae, mse, time, duration → minimize, otherwise maximize).

Everything happens in one transaction: a bad cell anywhere means nothing is written, and the
error names the row (1-based, header excluded) and column.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import numbers
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warehouse import curves as _curves
from warehouse.errors import NotFoundError, ValidationError, one_line
from warehouse.frames import read_frame, to_arrow  # noqa: F401  (read_frame: re-exported)
from warehouse.metric_ranges import (  # guess_direction: re-exported
    check_bounds,
    describe_range,
    guess_direction,
    outside,
    register_metrics,
    stored_ranges,
)
from warehouse.sqlfiles import quote_ident as _qi
from warehouse.sqlfiles import quote_literal as _ql

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from warehouse.store import Store

RUN_FIELDS = (
    "run_id",
    "status",
    "started_at",
    "finished_at",
    "duration_s",
    "cpu_s",
    "peak_mem_mb",
    "seed",
    "source",
    "error",
    "split",
)
_ALIASES = {"start_time": "started_at", "end_time": "finished_at"}
_IGNORED = {"experiment_id", "artifact_uri", "lifecycle_stage", "run_name"}
_PREFIXES = ("params.", "metrics.", "arch.")
_STATUS = {
    "finished": "finished",
    "failed": "failed",
    "running": "running",
    "pruned": "pruned",
    "killed": "failed",
    "scheduled": "running",
}
#: the splits a metric may be reported on: the learner reads 'valid' (cross-validation), the
#: retrained winner logs 'test'
SPLITS = ("valid", "test", "train")
_NONE_TEXT = ("none", "null", "nan_param_unset")


# ---------------------------------------------------------------------------- bulk runs
def _classify(columns: list[str]) -> dict[str, Any]:
    kinds: dict[str, Any] = {"params": [], "metrics": [], "arch": [], "fields": {}}
    for col in columns:
        if "\x00" in col:  # DuckDB cuts an identifier at a NUL: the column would not be found
            raise ValidationError(f"column {col!r}: a column name may not contain NUL characters")
        field = _ALIASES.get(col, col)
        if col in ("dataset", "model") or field in RUN_FIELDS:
            if field in kinds["fields"]:
                raise ValidationError(
                    f"column {col!r} duplicates column {kinds['fields'][field]!r}"
                )
            kinds["fields"][field] = col
        elif col.startswith(_PREFIXES):
            prefix, _, name = col.partition(".")
            if not name.strip():
                raise ValidationError(f"column {col!r}: empty {prefix} name")
            if name.startswith("__"):
                raise ValidationError(f"column {col!r}: names starting with '__' are reserved")
            kinds[prefix].append((col, name))
        elif col in _IGNORED or col.startswith("tags."):
            continue
        else:
            raise ValidationError(
                f"column {col!r}: unknown column; expected dataset, model, params.<name>, "
                f"metrics.<name>, arch.<name> or one of {', '.join(RUN_FIELDS)}"
            )
    for required in ("dataset", "model"):
        if required not in kinds["fields"]:
            raise ValidationError(f"missing required column {required!r}")
    return kinds


def _is_numeric_type(t: pa.DataType) -> bool:
    import pyarrow.types as pt

    return pt.is_integer(t) or pt.is_floating(t) or pt.is_decimal(t)


def _is_text_type(arrow_type: pa.DataType) -> bool:
    return not (_is_numeric_type(arrow_type) or _is_bool_type(arrow_type))


def _is_bool_type(arrow_type: pa.DataType) -> bool:
    import pyarrow.types as pt

    return pt.is_boolean(arrow_type)


def _first(con: Any, sql: str) -> tuple | None:
    rows = con.execute(sql).fetchall()
    return rows[0] if rows else None


_ID_ALPHABET = b"0123456789abcdefghijklmnopqrstuv"


def new_run_ids(n: int) -> list[str] | Any:
    """``n`` random 12-character run ids (base-32, 60 random bits each).

    Twelve characters keep ids inside DuckDB's 12-byte inline string, which made the run
    and long-table inserts and joins several times faster than 32-character UUID hex; 60
    bits make a collision among a million new ids about one in a million, and a collision
    with an existing run is caught by the ingest validation rather than overwriting it.
    Returns a pyarrow string array.
    """
    import secrets

    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(secrets.randbits(128))
    while True:
        values = rng.integers(0, 2**60, size=n, dtype=np.int64)
        if len(np.unique(values)) == n:
            break
    shifts = np.arange(55, -1, -5, dtype=np.int64)
    digits = (values[:, None] >> shifts[None, :]) & 31
    chars = np.frombuffer(_ID_ALPHABET, dtype=np.uint8)[digits]
    return pa.array(np.ascontiguousarray(chars).view("S12").ravel()).cast(pa.string())


def log_runs(wh: Store, data: Any, curves: Any = None) -> int:
    """Bulk-insert runs in the MLflow layout (see the module docstring); all or nothing.

    ``curves``: their learning curves (and, or, points of runs already in the warehouse), a
    DataFrame, Arrow table or CSV/Parquet path in the long layout ``run_id, metric, step,
    value[, elapsed_s]`` or MLflow's metric history ``run_id, key, value, step, timestamp``
    (see :mod:`warehouse.curves`), written in the same transaction; an empty one adds nothing.

    Returns the number of runs written. Implementation: the input becomes one Arrow table
    with helper columns (run id, row number, dataset/model/split as text) and is registered
    with DuckDB (zero-copy); validation is a handful of vectorized queries over it; each long
    table is filled by one ``INSERT … SELECT … UNPIVOT`` per value kind.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    table = to_arrow(data)
    points = None if curves is None else _curves.prepare(curves, "log_runs curves", empty_ok=True)
    kinds = _classify(table.column_names)
    fields: dict[str, str] = kinds["fields"]
    n = table.num_rows
    if "run_id" in fields:
        given = pc.cast(table[fields["run_id"]], pa.string())
        run_ids = pc.if_else(pc.is_null(given), new_run_ids(n), given)
    else:
        run_ids = new_run_ids(n)

    def text(field: str, default: str | None = None) -> Any:
        if field not in fields:
            return pa.nulls(n, pa.string()) if default is None else pa.array([default] * n)
        try:
            column = pc.cast(table[fields[field]], pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ValidationError(f"column {fields[field]!r}: {one_line(exc)}") from None
        return column if default is None else pc.fill_null(column, default)

    helpers = {
        "__row": pa.array(np.arange(1, n + 1, dtype=np.int64)),
        "__run_id": run_ids,
        "__dataset": text("dataset"),
        "__model": text("model"),
        "__split": text("split", "valid"),
    }
    for name, values in helpers.items():
        table = table.append_column(name, values)
    types = {name: table.schema.field(name).type for name in table.column_names}
    with wh._transaction() as con, _Sources(con, table, tuple(helpers)) as narrow:
        src = narrow(list(fields.values()))  # the run fields; values get their own tables
        _validate_runs(con, src, narrow, table, fields, kinds, types)
        base = _insert_runs(con, src, narrow, fields, kinds, types)
        if points is not None:  # the batch's runs are in: their points may refer to them
            _curves.insert(con, points, fresh_from=base + 1)
        top = base + n
    if not wh._depth:  # committed
        wh._seq_floor = max(wh._seq_floor, top)
    return n


class _Sources:
    """Registers column subsets of one Arrow table with DuckDB (zero-copy), each under a
    fresh name, and unregisters them at the end. Each statement reads a table holding only
    the columns it needs: a statement over a registered table costs time in proportion to
    the table's width, so reading a 10,000-column table in each of a dozen statements made
    a wide file slow."""

    def __init__(self, con: Any, table: pa.Table, always: tuple[str, ...]):
        self.con, self.table, self.always = con, table, always
        self.names: list[str] = []

    def __call__(self, columns: Sequence[str]) -> str:
        name = f"__metaopt_src_{uuid.uuid4().hex[:12]}"
        keep = [c for c in self.always if c not in columns]
        self.con.register(name, self.table.select([*keep, *columns]))
        self.names.append(name)
        return name

    def long(self, columns: list[tuple[str, str]], keep: tuple[str, ...]) -> str:
        """Register the long rows (``keep`` columns, ``name``, ``value``) of columns typed as
        numbers (or booleans), in row order, empty cells left out — what ``UNPIVOT`` gives —
        built in numpy: a DuckDB statement over thousands of columns costs ~0.2 ms per
        column to bind. Returns ``(SELECT … FROM <registered>) AS u``."""
        import numpy as np
        import pyarrow as pa

        n = self.table.num_rows
        matrix = np.empty((n, len(columns)), dtype=np.float64)
        for j, (column, _name) in enumerate(columns):
            values = self.table[column]
            if pa.types.is_dictionary(values.type):
                values = values.cast(values.type.value_type)
            # an empty cell becomes NaN; an explicit NaN was refused by the validation
            matrix[:, j] = values.cast(pa.float64()).to_numpy(zero_copy_only=False)
        rows, cols = np.nonzero(~np.isnan(matrix))  # row-major, as UNPIVOT orders them
        names = pa.array([name for _, name in columns], pa.string())
        long = pa.table(
            {k: self.table[k].take(pa.array(rows)) for k in keep}
            | {
                "name": pa.DictionaryArray.from_arrays(pa.array(cols.astype(np.int32)), names),
                "value": pa.array(matrix[rows, cols]),
            }
        )
        name = f"__metaopt_long_{uuid.uuid4().hex[:12]}"
        self.con.register(name, long)
        self.names.append(name)
        return f"(SELECT {', '.join(keep)}, CAST(name AS VARCHAR) AS name, value FROM {name}) AS u"

    def __enter__(self) -> _Sources:
        return self

    def __exit__(self, *exc: object) -> None:
        for name in self.names:
            self.con.unregister(name)


def _named(name: str) -> str:
    """A user's column name quoted for a :func:`_fail` template: its braces doubled, so the
    name is printed as written and never read as a format field."""
    return repr(name).replace("{", "{{").replace("}", "}}")


def _fail(row: tuple | None, message: str) -> None:
    """Raise ``message`` (a template whose ``{0}``, ``{1}``, … are the row's values; every
    user text in it goes through :func:`_named`) when the query found an offending ``row``."""
    if row is not None:
        raise ValidationError(message.format(*row))


def _validate_runs(
    con: Any, src: str, narrow: _Sources, table: pa.Table, fields: dict, kinds: dict, types: dict
) -> None:
    for field in ("dataset", "model"):
        _fail(
            _first(
                con,
                f"SELECT __row FROM {src} WHERE __{field} IS NULL OR trim(__{field}) = '' "
                "ORDER BY __row LIMIT 1",
            ),
            "row {0}, column " + _named(fields[field]) + ": empty " + field,
        )
    if "run_id" in fields:
        c = _qi(fields["run_id"])
        _fail(
            _first(
                con,
                f"SELECT __row FROM {src} WHERE trim(CAST({c} AS VARCHAR)) = '' "
                "ORDER BY __row LIMIT 1",
            ),
            "row {0}, column " + _named(fields["run_id"]) + ": empty run_id",
        )
        _fail(
            _first(
                con,
                f"SELECT min(__row), max(__row), __run_id FROM {src} GROUP BY __run_id "
                "HAVING count(*) > 1 ORDER BY min(__row) LIMIT 1",
            ),
            "rows {0} and {1}, column 'run_id': duplicate run_id {2!r}",
        )
        _fail(
            _first(
                con,
                f"SELECT s.__row, s.__run_id FROM {src} AS s "
                "JOIN runs AS r ON r.run_id = s.__run_id ORDER BY s.__row LIMIT 1",
            ),
            "row {0}, column 'run_id': run_id {1!r} is already in the warehouse",
        )
    for field, choices, norm, expected in (  # columns with a fixed set of values
        ("status", _STATUS, "lower(trim({}))", "finished, failed, running or pruned"),
        ("split", SPLITS, "{}", ", ".join(SPLITS)),
    ):
        if field in fields:
            c = f"CAST({_qi(fields[field])} AS VARCHAR)"
            allowed = ", ".join(_ql(v) for v in choices)
            _fail(
                _first(
                    con,
                    f"SELECT __row, {c} FROM {src} WHERE {c} IS NOT NULL "
                    f"AND {norm.format(c)} NOT IN ({allowed}) ORDER BY __row LIMIT 1",
                ),
                "row {0}, column " + _named(fields[field]) + f": unknown {field} " + "{1!r} "
                f"(expected {expected})",
            )
    for field in ("started_at", "finished_at"):
        if field in fields:
            c = _qi(fields[field])
            _fail(
                _first(
                    con,
                    f"SELECT __row, CAST({c} AS VARCHAR) FROM {src} WHERE {c} IS NOT NULL "
                    f"AND TRY_CAST({c} AS TIMESTAMP) IS NULL ORDER BY __row LIMIT 1",
                ),
                "row {0}, column " + _named(fields[field]) + ": {1!r} is not a timestamp",
            )
    if "started_at" in fields and "finished_at" in fields:
        s_, f_ = (f"TRY_CAST({_qi(fields[k])} AS TIMESTAMP)" for k in ("started_at", "finished_at"))
        _fail(
            _first(
                con,
                f"SELECT __row, CAST({s_} AS VARCHAR), CAST({f_} AS VARCHAR) FROM {src} "
                f"WHERE {f_} < {s_} ORDER BY __row LIMIT 1",
            ),
            "row {0}: finished_at {2!r} is before started_at {1!r}",
        )
    if "seed" in fields:
        c = _qi(fields["seed"])
        _fail(
            _first(
                con,
                f"SELECT __row, CAST({c} AS VARCHAR) FROM {src} WHERE {c} IS NOT NULL "
                f"AND (TRY_CAST({c} AS BIGINT) IS NULL "
                f"OR TRY_CAST({c} AS DOUBLE) <> TRY_CAST({c} AS BIGINT)) ORDER BY __row LIMIT 1",
            ),
            "row {0}, column " + _named(fields["seed"]) + ": {1!r} is not a whole number "
            "(seeds are integers of at most 64 bits, as in log_run)",
        )
    checks = [
        _NumberCheck(fields[f], f, 0.0, None)
        for f in ("duration_s", "cpu_s", "peak_mem_mb")
        if f in fields
    ]
    bounds = stored_ranges(con, [name for _, name in kinds["metrics"]])
    checks += [
        _NumberCheck(c, "metric", *bounds[name], metric=name) for c, name in kinds["metrics"]
    ]
    checks += [  # text parameters are allowed; a column of numbers must hold finite ones
        _NumberCheck(c, None, None, None, text=False)
        for c, _name in kinds["params"] + kinds["arch"]
        if _is_numeric_type(types[c])
    ]
    _check_numbers(con, narrow, table, checks)


class _NumberCheck:
    """One column that must hold numbers: finite, within ``[lower, upper]`` (None: open).
    ``what`` names the value in the message (None: plain "value … is not finite");
    ``text=False``: a text value is not this check's business (parameters may be text)."""

    __slots__ = ("column", "lower", "metric", "text", "upper", "what")

    def __init__(
        self,
        column: str,
        what: str | None,
        lower: float | None,
        upper: float | None,
        metric: str | None = None,
        text: bool = True,
    ):
        self.column, self.what, self.lower, self.upper = column, what, lower, upper
        self.metric, self.text = metric, text

    def message(self, row: int, kind: int, text: str, value: float | None) -> str:
        where = f"row {row}, column {self.column!r}: "
        if kind == _NOT_NUMBER:
            shown = text if len(text) <= 80 else text[:80] + "…"  # a cell may hold megabytes
            return where + f"{shown!r} is not a number"
        if kind == _NOT_FINITE:
            if self.what is None:
                return where + f"value {text} is not finite"
            return where + (
                f"{self.what} value {text} is not finite (NaN/inf are refused; leave the cell "
                "empty if the run did not record it)"
            )
        if self.metric is None:
            return where + f"{value} is negative"
        return where + (
            f"{value} is outside the range of metric {self.metric!r}, "
            f"{describe_range(self.lower, self.upper)} (Warehouse.set_metric_range changes it)"
        )


_NOT_NUMBER, _NOT_FINITE, _OUTSIDE = 0, 1, 2


def _check_numbers(
    con: Any, narrow: Callable[[list[str]], str], table: pa.Table, checks: list[_NumberCheck]
) -> None:
    """Refuse the first column (in ``checks`` order) holding a value that is not a number,
    then one that is NaN/inf, then one outside its range, naming the first such row.

    Columns typed as numbers are checked in Arrow, column by column (microseconds each);
    columns of text (a CSV cell that is not a number makes its column text) are checked by
    ONE DuckDB query that unpivots them all, so that its ``TRY_CAST`` decides what a number
    is, as the insert will. One query per column used to make ingest quadratic in the column
    count: each query over the registered wide table cost time in proportion to its width
    (a 3-row file: 13.9 s with 1,000 columns, over 300 s with 10,000).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    found: dict[int, tuple[int, int, str, float | None]] = {}  # check → (kind, row, text, v)
    textual: list[int] = []
    for i, check in enumerate(checks):
        column = table[check.column]
        kind = column.type
        if pa.types.is_dictionary(kind):
            column, kind = column.cast(kind.value_type), kind.value_type
        if pa.types.is_null(kind):
            continue
        if not (_is_numeric_type(kind) or _is_bool_type(kind)):
            if check.text:
                textual.append(i)
            continue
        values = pc.cast(column, pa.float64())
        bad = pc.fill_null(pc.invert(pc.is_finite(values)), False)
        at = pc.index(bad, True).as_py()
        if at >= 0:
            value = values[at].as_py()
            found[i] = (_NOT_FINITE, at + 1, str(value), value)
            continue
        masks = []
        if check.lower is not None:
            masks.append(pc.less(values, check.lower))
        if check.upper is not None:
            masks.append(pc.greater(values, check.upper))
        if masks:
            mask = masks[0] if len(masks) == 1 else pc.or_(*masks)
            at = pc.index(pc.fill_null(mask, False), True).as_py()
            if at >= 0:
                value = values[at].as_py()
                found[i] = (_OUTSIDE, at + 1, str(value), value)
    if textual:
        keys = [str(k) for k in range(len(textual))]
        inner = ", ".join(
            f"CAST({_qi(checks[i].column)} AS VARCHAR) AS {_qi(k)}"
            for i, k in zip(textual, keys, strict=True)
        )
        src = narrow([checks[i].column for i in textual])
        rows = con.execute(
            "WITH cells AS (SELECT name AS k, __row, value, TRY_CAST(value AS DOUBLE) AS v "
            f"FROM (UNPIVOT (SELECT __row, {inner} FROM {src}) ON "
            + ", ".join(_qi(k) for k in keys)
            + " INTO NAME name VALUE value)), "
            "bounds AS (SELECT unnest($keys::VARCHAR[]) AS k, unnest($lo::DOUBLE[]) AS lo, "
            "unnest($hi::DOUBLE[]) AS hi), "
            "bad AS (SELECT c.k, c.__row, c.value, c.v, CASE WHEN c.v IS NULL THEN 0 "
            "WHEN NOT isfinite(c.v) THEN 1 ELSE 2 END AS kind FROM cells AS c "
            "JOIN bounds AS b ON b.k = c.k "
            "WHERE c.v IS NULL OR NOT isfinite(c.v) OR c.v < b.lo OR c.v > b.hi) "
            "SELECT k, min(kind), arg_min(__row, (kind, __row)), arg_min(value, (kind, __row)), "
            "arg_min(v, (kind, __row)) FROM bad GROUP BY k",
            {
                "keys": keys,
                "lo": [checks[i].lower for i in textual],
                "hi": [checks[i].upper for i in textual],
            },
        ).fetchall()
        for k, kind, row, text, value in rows:
            found[textual[int(k)]] = (int(kind), int(row), text, value)
    if found:
        first = min(found)
        kind, row, text, value = found[first]
        raise ValidationError(checks[first].message(row, kind, text, value))


def _ensure_datasets_and_metrics(con: Any, datasets_sql: str, metric_names: list[str]) -> None:
    con.execute(
        "INSERT INTO datasets (name, source) SELECT DISTINCT d, 'ingest' "
        f"FROM ({datasets_sql}) AS t(d) "
        "WHERE d NOT IN (SELECT name FROM datasets)"
    )
    if metric_names:
        register_metrics(con, sorted(set(metric_names)))


def _insert_runs(
    con: Any, src: str, narrow: _Sources, fields: dict, kinds: dict, types: dict
) -> int:
    """Insert the runs (seq base+1 … base+n) and their long rows; returns base."""
    _ensure_datasets_and_metrics(
        con, f"SELECT __dataset FROM {src}", [name for _, name in kinds["metrics"]]
    )

    def f(field: str, cast: str) -> str:
        if field not in fields:
            return f"CAST(NULL AS {cast})"
        return f"CAST({_qi(fields[field])} AS {cast})"

    status = (
        (
            "CASE lower(trim(CAST({c} AS VARCHAR))) "
            + " ".join(f"WHEN {_ql(k)} THEN {_ql(v)}" for k, v in _STATUS.items())
            + " ELSE 'finished' END"
        ).format(c=_qi(fields["status"]))
        if "status" in fields
        else "'finished'"
    )
    # The runs of this batch get seq base+1 … base+n; every long row carries its run's seq.
    base = int(con.execute("SELECT coalesce(max(seq), 0) FROM runs").fetchall()[0][0])
    con.execute(
        "INSERT INTO runs (run_id, dataset, model, status, started_at, finished_at, duration_s, "
        "cpu_s, peak_mem_mb, seed, source, error, seq) "
        f"SELECT __run_id, __dataset, __model, {status}, "
        f"{f('started_at', 'TIMESTAMP')}, {f('finished_at', 'TIMESTAMP')}, "
        f"{f('duration_s', 'DOUBLE')}, {f('cpu_s', 'DOUBLE')}, {f('peak_mem_mb', 'DOUBLE')}, "
        f"{f('seed', 'BIGINT')}, {f('source', 'VARCHAR')}, {f('error', 'VARCHAR')}, "
        f"{base} + __row FROM {src}",
    )
    for table, key in (("run_params", "params"), ("run_architecture", "arch")):
        numeric = [(c, nm) for c, nm in kinds[key] if not _is_text_type(types[c])]
        textual = [(c, nm) for c, nm in kinds[key] if _is_text_type(types[c])]
        if numeric:
            con.execute(
                f"INSERT INTO {table} (run_id, seq, name, value_num, value_text) "
                f"SELECT __run_id, {base} + __row, name, value, CAST(NULL AS VARCHAR) FROM "
                + _long_numbers(narrow, numeric, keep=("__row",))
            )
        if textual:
            con.execute(
                f"INSERT INTO {table} (run_id, seq, name, value_num, value_text) "
                f"SELECT __run_id, {base} + __row, name, "
                "CASE WHEN t IN ('none', 'null') THEN NULL WHEN t = 'true' THEN 1.0 "
                "WHEN t = 'false' THEN 0.0 WHEN isfinite(n) THEN n END, "
                "CASE WHEN t IN ('none', 'null', 'true', 'false') OR isfinite(n) THEN NULL "
                "ELSE value END "
                "FROM (SELECT __run_id, __row, name, value, lower(trim(value)) AS t, "
                "TRY_CAST(trim(value) AS DOUBLE) AS n FROM "
                + _unpivot(narrow([c for c, _ in textual]), textual, "VARCHAR", keep=("__row",))
                + ")"
            )
    if kinds["metrics"]:
        # typed as numbers: long rows built in numpy; text (validated as numbers): UNPIVOT
        numeric = [(c, nm) for c, nm in kinds["metrics"] if not _is_text_type(types[c])]
        textual = [(c, nm) for c, nm in kinds["metrics"] if _is_text_type(types[c])]
        for columns, source in (
            (numeric, lambda: _long_numbers(narrow, numeric, keep=("__row", "__split"))),
            (
                textual,
                lambda: _unpivot(
                    narrow([c for c, _ in textual]), textual, "DOUBLE", keep=("__row", "__split")
                ),
            ),
        ):
            if columns:
                con.execute(
                    "INSERT INTO run_metrics (run_id, seq, name, split, value) "
                    f"SELECT __run_id, {base} + __row, name, __split, value FROM " + source()
                )
        merge_incumbents(con, base + 1)
    return base


# Merge the finished runs with seq >= $lo (one new batch) into run_incumbents: a group's best
# new run replaces the stored one only when strictly better (ties keep the earlier run, whose
# seq is lower), and n_runs adds up. See sql/schema/0002_incumbents.sql.
_MERGE_INCUMBENTS = """
MERGE INTO run_incumbents AS t
USING (
    WITH scored AS (
        SELECT r.dataset, r.model, x.name AS metric, x.split, r.run_id, x.seq, x.value,
               coalesce(m.direction, 'maximize') AS direction,
               CASE WHEN m.direction = 'minimize' THEN -x.value ELSE x.value END AS score
        FROM run_metrics AS x
        JOIN runs AS r ON r.seq = x.seq
        LEFT JOIN metrics AS m ON m.name = x.name
        WHERE x.seq >= $lo AND r.seq >= $lo AND r.status = 'finished'
    )
    SELECT dataset, model, metric, split,
           any_value(direction) AS direction,
           arg_max(run_id, struct_pack(s := score, o := -seq)) AS run_id,
           arg_max(seq, struct_pack(s := score, o := -seq)) AS seq,
           arg_max(value, struct_pack(s := score, o := -seq)) AS value,
           max(score) AS score,
           count(*) AS n_runs
    FROM scored
    GROUP BY dataset, model, metric, split
) AS s
ON t.dataset = s.dataset AND t.model = s.model AND t.metric = s.metric AND t.split = s.split
WHEN MATCHED AND s.score > t.score THEN UPDATE SET
    run_id = s.run_id, seq = s.seq, value = s.value, score = s.score, n_runs = t.n_runs + s.n_runs
WHEN MATCHED THEN UPDATE SET n_runs = t.n_runs + s.n_runs
WHEN NOT MATCHED THEN INSERT (dataset, model, metric, split, direction, run_id, seq, value,
                              score, n_runs)
    VALUES (s.dataset, s.model, s.metric, s.split, s.direction, s.run_id, s.seq, s.value,
            s.score, s.n_runs)
"""


def merge_incumbents(con: Any, lo: int) -> None:
    """Fold the runs with ``seq >= lo`` into ``run_incumbents`` (inside the caller's
    transaction, right after they were inserted)."""
    con.execute(_MERGE_INCUMBENTS, {"lo": int(lo)})


def _merge_one_incumbent(
    con: Any,
    dataset: str,
    model: str,
    run_id: str,
    seq: int,
    split: str,
    metric_rows: list[tuple[str, float]],
) -> None:
    """:func:`merge_incumbents` for one run, in plain statements: a MERGE costs ~10 ms of
    planning, which doubled the time of a single log_run."""
    values = dict(metric_rows)
    found = con.execute(
        "SELECT m.name, m.direction, i.score FROM metrics AS m LEFT JOIN run_incumbents AS i "
        "ON i.metric = m.name AND i.dataset = ? AND i.model = ? AND i.split = ? "
        "WHERE list_contains(?::VARCHAR[], m.name)",
        [dataset, model, split, list(values)],
    ).fetchall()
    new, better, worse = [], [], []
    for name, direction, stored in found:
        score = -values[name] if direction == "minimize" else values[name]
        if stored is None:
            new.append((name, direction, values[name], score))
        elif score > stored:
            better.append((name, values[name], score))
        else:
            worse.append(name)
    key = [dataset, model, split]
    if new:
        con.execute(
            "INSERT INTO run_incumbents (dataset, model, metric, split, direction, run_id, seq, "
            "value, score, n_runs) SELECT ?, ?, unnest(?::VARCHAR[]), ?, unnest(?::VARCHAR[]), "
            "?, ?, unnest(?::DOUBLE[]), unnest(?::DOUBLE[]), 1",
            [
                dataset,
                model,
                [r[0] for r in new],
                split,
                [r[1] for r in new],
                run_id,
                seq,
                [r[2] for r in new],
                [r[3] for r in new],
            ],
        )
    if better:
        con.execute(
            "UPDATE run_incumbents AS t SET run_id = ?, seq = ?, value = s.v, score = s.sc, "
            "n_runs = t.n_runs + 1 FROM (SELECT unnest(?::VARCHAR[]) AS n, "
            "unnest(?::DOUBLE[]) AS v, unnest(?::DOUBLE[]) AS sc) AS s "
            "WHERE t.metric = s.n AND t.dataset = ? AND t.model = ? AND t.split = ?",
            [
                run_id,
                seq,
                [r[0] for r in better],
                [r[1] for r in better],
                [r[2] for r in better],
                *key,
            ],
        )
    if worse:
        con.execute(
            "UPDATE run_incumbents SET n_runs = n_runs + 1 WHERE list_contains(?::VARCHAR[], "
            "metric) AND dataset = ? AND model = ? AND split = ?",
            [worse, *key],
        )


#: Columns of numbers above which their long rows are built in numpy rather than by UNPIVOT
#: (binding a wide UNPIVOT costs ~0.2 ms per column; for a few columns and many rows UNPIVOT
#: is faster: 1M runs x 12 columns took 10.9 s through UNPIVOT, 15.4 s through numpy).
WIDE = 100


def _long_numbers(narrow: _Sources, columns: list[tuple[str, str]], keep: tuple[str, ...]) -> str:
    """The long rows (``__run_id``, ``keep``, ``name``, ``value``) of columns typed as
    numbers: UNPIVOT for a few columns, :meth:`_Sources.long` for many."""
    if len(columns) > WIDE:
        return narrow.long(columns, keep=("__run_id", *keep))
    return _unpivot(narrow([c for c, _ in columns]), columns, "DOUBLE", keep=keep)


def _unpivot(
    src: str, columns: list[tuple[str, str]], cast: str, keep: tuple[str, ...] = ()
) -> str:
    """``(UNPIVOT (SELECT __run_id, CAST(col AS cast) AS name, …) ON … INTO NAME name VALUE
    value)``: one scan turns wide columns into (run, name, value) rows, skipping NULL cells."""
    inner = ", ".join(f"CAST({_qi(column)} AS {cast}) AS {_qi(name)}" for column, name in columns)
    kept = "".join(f", {k}" for k in keep)
    on = ", ".join(_qi(name) for _, name in columns)
    return (
        f"(UNPIVOT (SELECT __run_id{kept}, {inner} FROM {src}) ON {on} "
        "INTO NAME name VALUE value) AS u"
    )


# ---------------------------------------------------------------------------- one run
def _typed(value: Any, where: str) -> tuple[float | None, str | None]:
    """(value_num, value_text) for one parameter/architecture value from Python."""
    if value is None:
        return None, None
    if isinstance(value, bool):
        return float(value), None
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            raise ValidationError(f"{where}: value {value!r} is not finite")
        return number, None
    if hasattr(value, "item") and not isinstance(value, str | bytes):  # numpy scalars
        return _typed(value.item(), where)
    if isinstance(value, str):
        return None, value
    raise ValidationError(
        f"{where}: unsupported type {type(value).__name__} (use a number, bool, string or None)"
    )


def _metric(value: Any, where: str) -> float:
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValidationError(f"{where}: {value!r} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValidationError(f"{where}: value {value!r} is not finite")
    return number


def _names(values: Mapping[str, Any], what: str) -> None:
    if not isinstance(values, Mapping):
        raise ValidationError(f"{what} must be a dict, not {type(values).__name__}")
    for name in values:
        if not isinstance(name, str) or not name.strip():
            raise ValidationError(f"{what}: name {name!r} must be a non-empty string")


_NUMBER = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"


def _canonical_rows(table: pa.Table) -> pd.Series:
    """Each row as ``name=value`` pairs (names sorted, unset cells left out) in one text form
    per value, whatever type the file reader gave its column: numbers as the shortest text of
    their float (``5``, ``5.0`` and ``"5.0"`` agree), booleans and ``true``/``false`` text as
    1/0, lists as JSON. So appending a row that changes a column's inferred type, or
    reordering the columns, leaves the earlier rows' text — and ids — as they were."""
    import pyarrow as pa
    import pyarrow.compute as pc

    pairs = []
    for name in sorted(table.column_names):
        col = table[name].combine_chunks()
        t = col.type
        if pa.types.is_dictionary(t):
            col, t = col.cast(t.value_type), t.value_type
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            text = pc.cast(pc.cast(col, pa.float64()), pa.string())
        elif pa.types.is_boolean(t):
            text = pc.cast(pc.cast(col, pa.int8()), pa.string())
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            col = pc.cast(col, pa.string())
            numeric = pc.match_substring_regex(col, _NUMBER)
            as_num = pc.cast(pc.cast(pc.if_else(numeric, col, None), pa.float64()), pa.string())
            flag = pc.utf8_lower(pc.utf8_trim_whitespace(col))
            as_bool = pc.if_else(
                pc.equal(flag, "true"), "1", pc.if_else(pc.equal(flag, "false"), "0", None)
            )
            text = pc.coalesce(pc.if_else(numeric, as_num, None), as_bool, col)
        elif pa.types.is_null(t):
            continue
        else:
            try:
                text = pc.cast(col, pa.string())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                text = pa.array(
                    [None if v is None else json.dumps(v, default=str) for v in col.to_pylist()],
                    pa.string(),
                )
        label = pa.scalar(f"{name}=")
        pairs.append(pc.binary_join_element_wise(label, text, "", null_handling="emit_null"))
    if not pairs:
        return pa.array([""] * table.num_rows).to_pandas()
    rows = pc.binary_join_element_wise(*pairs, "\x1f", null_handling="skip")
    return rows.to_pandas()


def file_source(path: str | Path) -> str:
    """The ``source`` of the runs :func:`ingest_file` loads from ``path``."""
    return f"ingest:{Path(path).expanduser().resolve()}"


def ingest_file(wh: Store, path: str | Path, curves: str | Path | None = None) -> tuple[int, int]:
    """Load a CSV/Parquet file of runs (:func:`log_runs`, all or nothing) so that loading it
    again adds nothing; returns (runs written, runs already present).

    Without a ``run_id`` column each row is named by its content, ``ingest:<hash>`` (a
    second identical row in the same file gets ``-1``, ``-2``, …): the rows of a file loaded
    before — also when more rows were appended to it since — are found and skipped. A row
    identical in every column to an earlier ingested one is taken as that run; give the
    file a ``run_id`` column to keep both. With a ``run_id`` column the ids are the file's,
    and ids already in the warehouse are refused as :func:`log_runs` refuses them. Without a
    ``source`` column the runs' source is :func:`file_source` (``ingest:`` + the file's
    absolute path), so what one file brought can be found (and deleted:
    :func:`delete_runs`) later.

    ``curves``: a CSV/Parquet file of learning-curve points (:mod:`warehouse.curves`),
    written in the same transaction as the runs. Its rows name their runs by ``run_id``: the
    file's own (when it has a ``run_id`` column) or runs already in the warehouse. A point
    is stored once, so loading the same curves again is refused, naming the first point.
    """
    import pandas as pd
    import pyarrow as pa

    table = to_arrow(Path(path), what="ingest")
    fields = _classify(table.column_names)["fields"]

    def with_source(t: pa.Table) -> pa.Table:
        if "source" in fields:
            return t
        return t.append_column("source", pa.array([file_source(path)] * t.num_rows))

    if "run_id" in fields:
        return log_runs(wh, with_source(table), curves=curves), 0
    # siphash (pandas' fixed key) of each row's canonical text: the same rows give the same
    # ids however the reader typed the columns this time and in whatever column order
    digest = pd.util.hash_pandas_object(_canonical_rows(table), index=False).to_numpy()
    hashes = pd.Series([f"ingest:{h:016x}" for h in digest.tolist()])
    nth = hashes.groupby(hashes).cumcount().to_numpy()
    ids = [h if k == 0 else f"{h}-{k}" for h, k in zip(hashes.tolist(), nth.tolist(), strict=True)]
    present = existing_ids(wh, "ingest:")
    keep = [i for i, run_id in enumerate(ids) if run_id not in present]
    if not keep:
        if curves is not None:
            _curves.log_curves(wh, curves)
        return 0, len(ids)
    fresh = table.take(pa.array(keep)).append_column("run_id", pa.array([ids[i] for i in keep]))
    return log_runs(wh, with_source(fresh), curves=curves), len(ids) - len(keep)


def existing_ids(wh: Store, prefix: str) -> set[str]:
    """The run ids in the warehouse that start with ``prefix``."""
    df = wh._read_df("SELECT run_id FROM runs WHERE starts_with(run_id, ?)", [prefix])
    return set(df["run_id"].astype(str))


def delete_runs(
    wh: Store,
    run_ids: Sequence[str] | None = None,
    dataset: str | None = None,
    model: str | None = None,
    source: str | None = None,
    dry_run: bool = False,
) -> list[str]:
    """Delete the runs named by ``run_ids`` and/or matching every filter given, with their
    parameters, metrics, architecture rows and curve points, in one transaction; returns their ids
    (``dry_run``: only returns them).

    At least one of the four is required. An id that is not in the warehouse is refused and
    nothing is deleted. Recommendations that point at a deleted run keep their row without
    it, and ``run_incumbents`` is rebuilt from the runs that remain (the audits stay clean).
    Datasets, their meta-features and metric directions are kept.
    """
    from warehouse import sqlfiles

    clauses: list[str] = []
    args: list[Any] = []
    for column, value in (("dataset", dataset), ("model", model), ("source", source)):
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(str(value))
    ids = [str(r) for r in run_ids] if run_ids is not None else None
    if ids is not None:
        if isinstance(run_ids, str):
            raise ValidationError("run_ids must be a list of run ids, not a string")
        clauses.append("list_contains(?::VARCHAR[], run_id)")
        args.append(ids)
    if not clauses:
        raise ValidationError("say which runs to delete: run ids, a dataset, model or source")
    with wh._transaction() as con:
        found = con.execute(
            f"SELECT run_id, seq FROM runs WHERE {' AND '.join(clauses)}", args
        ).fetchall()
        if ids is not None:
            missing = sorted(set(ids) - {r for r, _ in found})
            if missing:
                raise NotFoundError(f"no run {missing[0]!r} in the warehouse; nothing deleted")
        gone, seqs = [r for r, _ in found], [int(q) for _, q in found]
        if not found or dry_run:
            return gone
        for table in ("run_params", "run_metrics", "run_architecture", "run_curves", "runs"):
            con.execute(f"DELETE FROM {table} WHERE list_contains(?::BIGINT[], seq)", [seqs])
        con.execute(
            "UPDATE recommendations SET run_id = NULL WHERE list_contains(?::VARCHAR[], run_id)",
            [gone],
        )
        # the maintained best runs, recomputed by the same statement migration 2 filled it with
        backfill = sqlfiles.migrations()[1].sql
        con.execute("DELETE FROM run_incumbents")
        con.execute(backfill[backfill.index("INSERT INTO run_incumbents") :])
    wh._seq_floor = 0  # the newest runs may be gone: read the next seq from scratch
    return gone


def log_run(
    wh: Store,
    dataset: str,
    model: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    curve: Any = None,
    **meta: Any,
) -> str:
    """Log one run; returns its ``run_id``.

    ``meta`` may hold ``run_id, status, started_at, finished_at, duration_s, cpu_s,
    peak_mem_mb, seed, source, error, split`` (the split of every metric, default 'valid') and
    ``arch`` (a dict of architecture descriptors). Parameter values: numbers and booleans
    (as 1/0) are numeric, strings are text, None is stored as explicitly unset. ``status``
    is finished (the default), failed, running or pruned (stopped early by a pruner).

    ``curve``: the run's learning curve, a list of dicts or a DataFrame with ``metric, step,
    value`` and optionally ``elapsed_s`` (see :mod:`warehouse.curves`), written in the same
    transaction as the run.
    """
    unknown = sorted(set(meta) - set(RUN_FIELDS) - {"arch"})
    if unknown:
        raise ValidationError(
            f"log_run: unknown field {unknown[0]!r} (expected {', '.join(RUN_FIELDS)} or arch)"
        )
    for value, field in ((dataset, "dataset"), (model, "model")):
        if not isinstance(value, str) or not value.strip():
            raise ValidationError(f"log_run: {field} must be a non-empty string, not {value!r}")
    arch = meta.pop("arch", None) or {}
    _names(params, "params")
    _names(metrics, "metrics")
    _names(arch, "arch")
    param_rows = [(n, *_typed(v, f"param {n!r}")) for n, v in params.items()]
    arch_rows = [(n, *_typed(v, f"arch {n!r}")) for n, v in arch.items()]
    metric_rows = [(n, _metric(v, f"metric {n!r}")) for n, v in metrics.items()]
    run_id = meta.get("run_id")
    run_id = new_run_ids(1)[0].as_py() if run_id is None else str(run_id)
    if not run_id.strip():
        raise ValidationError("log_run: run_id must not be empty")
    points = None if curve is None else _curves.prepare(curve, "log_run curve", run_id=run_id)
    raw_status = meta.get("status") or "finished"
    status = _STATUS.get(str(raw_status).lower())
    if status is None:
        raise ValidationError(
            f"log_run: unknown status {raw_status!r} (expected finished, failed, running or pruned)"
        )
    numbers_ = {}
    for field in ("duration_s", "cpu_s", "peak_mem_mb"):
        if meta.get(field) is not None:
            numbers_[field] = _metric(meta[field], f"log_run: {field}")
            if numbers_[field] < 0:
                raise ValidationError(f"log_run: {field} {numbers_[field]} is negative")
    stamps = {}
    for field in ("started_at", "finished_at"):
        value = meta.get(field)
        if value is not None and not isinstance(value, _dt.datetime | str):
            raise ValidationError(f"log_run: {field} must be a datetime or ISO string")
        stamps[field] = value
    seed = meta.get("seed")
    if seed is not None and (
        isinstance(seed, bool)
        or not isinstance(seed, numbers.Integral)
        or not -(2**63) <= int(seed) < 2**63
    ):
        raise ValidationError(
            f"log_run: seed {seed!r} is not an integer of at most 64 bits (one rule with ingest)"
        )
    split = str(meta.get("split") or "valid")
    if split not in SPLITS:
        raise ValidationError(f"log_run: unknown split {split!r} (expected {', '.join(SPLITS)})")

    with wh._transaction() as con:
        # Names known to exist (committed earlier by this Warehouse) skip their insert; INSERT …
        # WHERE NOT IN is ~3x cheaper than ON CONFLICT DO NOTHING in DuckDB 2.0.
        if dataset not in wh._known_datasets:
            con.execute(
                "INSERT INTO datasets (name, source) SELECT ?, 'ingest' "
                "WHERE ? NOT IN (SELECT name FROM datasets)",
                [dataset, dataset],
            )
        if metric_rows:  # the stored range of each metric (a new name: the known table's)
            bounds = stored_ranges(con, [name for name, _ in metric_rows])
            for name, value in metric_rows:
                if outside(value, *bounds[name]):
                    raise ValidationError(
                        f"log_run: metric {name!r}: {value} is outside its range "
                        f"{describe_range(*bounds[name])} (Warehouse.set_metric_range changes it)"
                    )
        new_metrics = [name for name, _ in metric_rows if name not in wh._known_metrics]
        if new_metrics:
            register_metrics(con, new_metrics)
        seq = _next_seq(wh, con)
        # The primary key refuses a duplicate run_id (no separate lookup).
        import duckdb

        try:
            con.execute(
                "INSERT INTO runs (run_id, dataset, model, status, started_at, finished_at, "
                "duration_s, cpu_s, peak_mem_mb, seed, source, error, seq) "
                "VALUES (?, ?, ?, ?, CAST(? AS TIMESTAMP), CAST(? AS TIMESTAMP), "
                "?, ?, ?, ?, ?, ?, ?)",
                [
                    run_id,
                    dataset,
                    model,
                    status,
                    stamps["started_at"],
                    stamps["finished_at"],
                    numbers_.get("duration_s"),
                    numbers_.get("cpu_s"),
                    numbers_.get("peak_mem_mb"),
                    None if seed is None else int(seed),
                    meta.get("source"),
                    meta.get("error"),
                    seq,
                ],
            )
        except duckdb.ConstraintException as exc:
            if "duplicate key" in str(exc).lower():
                raise ValidationError(
                    f"log_run: run_id {run_id!r} is already in the warehouse"
                ) from None
            raise
        except (duckdb.ConversionException, duckdb.InvalidInputException) as exc:
            # conversion of a timestamp string: name the field that failed
            raise ValidationError(f"log_run: {_bad_stamp(stamps)}{one_line(exc)}") from None
        backwards = con.execute(
            "SELECT finished_at < started_at FROM runs WHERE seq = ?", [seq]
        ).fetchone()
        if backwards and backwards[0]:  # the transaction rolls the run back
            raise ValidationError(
                f"log_run: finished_at {stamps['finished_at']!r} is before started_at "
                f"{stamps['started_at']!r}"
            )
        _insert_values(con, "run_params", run_id, seq, param_rows)
        _insert_values(con, "run_architecture", run_id, seq, arch_rows)
        if metric_rows:
            con.execute(
                "INSERT INTO run_metrics (run_id, seq, name, split, value) "
                "SELECT ?, ?, unnest(?::VARCHAR[]), ?, unnest(?::DOUBLE[])",
                [run_id, seq, [n for n, _ in metric_rows], split, [v for _, v in metric_rows]],
            )
            if status == "finished":
                _merge_one_incumbent(con, dataset, model, run_id, seq, split, metric_rows)
        if points is not None:
            _curves.insert(con, points, fresh_from=seq, known={run_id: seq})
    if not wh._depth:  # committed: remember the names and the seq for the next call
        wh._seq_floor = max(wh._seq_floor, seq)
        wh._known_datasets.add(dataset)
        wh._known_metrics.update(name for name, _ in metric_rows)
    return run_id


def _bad_stamp(stamps: Mapping[str, Any]) -> str:
    """``"started_at 'x': "`` for the first string stamp Python cannot read as ISO."""
    for field, value in stamps.items():
        if isinstance(value, str):
            try:
                _dt.datetime.fromisoformat(value)
            except ValueError:
                return f"{field} {value!r}: "
    return "started_at/finished_at: "


def _next_seq(wh: Store, con: Any) -> int:
    """The next ``runs.seq``: max + 1, read cheaply.

    ``wh._seq_floor`` is a seq this Warehouse saw committed; seqs only grow (nothing deletes
    runs), so ``max(seq) WHERE seq >= floor`` equals the true maximum and DuckDB's zone maps
    skip every row group below the floor (a full max over 1M runs cost ~2-5 ms per log_run).
    Another writer in this process only raises the maximum, which the query still sees; if
    rows at or above the floor were ever gone, the full maximum is read instead.
    """
    floor = wh._seq_floor
    top = con.execute("SELECT max(seq) FROM runs WHERE seq >= ?", [floor]).fetchall()[0][0]
    if top is None and floor > 0:
        top = con.execute("SELECT max(seq) FROM runs").fetchall()[0][0]
    return int(top or 0) + 1


def _insert_values(con: Any, table: str, run_id: str, seq: int, rows: list[tuple]) -> None:
    """One statement for all of a run's (name, value_num, value_text) rows."""
    if not rows:
        return
    con.execute(
        f"INSERT INTO {table} (run_id, seq, name, value_num, value_text) "
        "SELECT ?, ?, unnest(?::VARCHAR[]), unnest(?::DOUBLE[]), unnest(?::VARCHAR[])",
        [run_id, seq, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]],
    )


def set_metric_range(
    wh: Store, metric: str, lower: float | None = None, upper: float | None = None
) -> None:
    """Set the range ``[lower, upper]`` (None: open) of ``metric`` in the warehouse's
    ``metrics`` table, registering the name if it is new. Ingest then refuses values outside
    it and ``metaopt check`` reports stored ones (see :mod:`warehouse.metric_ranges`)."""
    if not isinstance(metric, str) or not metric.strip():
        raise ValidationError(f"metric name {metric!r} must be a non-empty string")
    check_bounds(metric, lower, upper)
    with wh._transaction() as con:
        con.execute(
            "INSERT INTO metrics (name, direction, lower, upper) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET lower = excluded.lower, upper = excluded.upper",
            [metric, guess_direction(metric), lower, upper],
        )


# ---------------------------------------------------------------------------- meta-features
def log_dataset_meta_features(wh: Store, data: Any, method: str = "user") -> int:
    """Store meta-features from a wide table: ``dataset`` + one numeric column per name.

    Empty cells are skipped; NaN/inf and text are refused; a dataset may appear once. Values
    replace earlier ones of the same (dataset, name). Unknown datasets are created. Returns
    the number of values written.
    """
    table = to_arrow(data, what="log_dataset_meta_features")
    columns = table.column_names
    if "dataset" not in columns:
        raise ValidationError("missing required column 'dataset'")
    features = [c for c in columns if c != "dataset"]
    if not features:
        raise ValidationError("no meta-feature columns besides 'dataset'")
    for c in features:
        if not c.strip():
            raise ValidationError("a meta-feature column has an empty name")
    import numpy as np
    import pyarrow as pa

    table = table.append_column("__row", pa.array(np.arange(1, table.num_rows + 1, dtype=np.int64)))
    with wh._transaction() as con, _Sources(con, table, ("__row", "dataset")) as narrow:
        src = narrow([])
        _fail(
            _first(
                con,
                f"SELECT __row FROM {src} WHERE dataset IS NULL "
                "OR trim(CAST(dataset AS VARCHAR)) = '' ORDER BY __row LIMIT 1",
            ),
            "row {0}, column 'dataset': empty dataset",
        )
        _fail(
            _first(
                con,
                f"SELECT min(__row), max(__row), CAST(dataset AS VARCHAR) FROM {src} "
                "GROUP BY dataset HAVING count(*) > 1 ORDER BY 1 LIMIT 1",
            ),
            "rows {0} and {1}, column 'dataset': dataset {2!r} appears twice",
        )
        checks = [_NumberCheck(c, None, None, None) for c in features]
        _check_numbers(con, narrow, table, checks)
        _ensure_datasets_and_metrics(con, f"SELECT CAST(dataset AS VARCHAR) FROM {src}", [])
        # one statement for every column (one per column made a wide table quadratic)
        keys = [str(k) for k in range(len(features))]
        inner = ", ".join(
            f"CAST({_qi(c)} AS DOUBLE) AS {_qi(k)}" for c, k in zip(features, keys, strict=True)
        )
        total = int(
            con.execute(
                "INSERT INTO dataset_meta_features (dataset, name, value, method) "
                "SELECT d, (?::VARCHAR[])[CAST(k AS INTEGER) + 1], value, ? FROM "
                f"(UNPIVOT (SELECT CAST(dataset AS VARCHAR) AS d, {inner} "
                f"FROM {narrow(features)}) ON "
                + ", ".join(_qi(k) for k in keys)
                + " INTO NAME k VALUE value) "
                "ON CONFLICT (dataset, name) DO UPDATE SET value = excluded.value, "
                "method = excluded.method",
                [features, method],
            ).fetchall()[0][0]
        )
    return total
