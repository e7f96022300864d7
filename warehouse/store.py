"""The warehouse: one DuckDB database, its migrations, transactions and read-only reads.

Connection design (measured on DuckDB 2.0, see tests/warehouse/test_safe_sql.py):

* The database is opened ONCE per :class:`Warehouse` with ``enable_external_access=false``
  and ``lock_configuration=true``. No SQL run through metaopt can then read or write files,
  ATTACH, COPY, INSTALL or LOAD, nor switch that back on. metaopt itself never needs file
  access from SQL: CSV/Parquet are read by pyarrow and handed to DuckDB as registered Arrow
  relations (``con.register`` still works with external access disabled).
* Writes go through :meth:`Warehouse._transaction` on the main connection.
* Reads for users (:meth:`Warehouse.sql`, views) run on a cursor of the same database inside
  ``BEGIN TRANSACTION READ ONLY`` (or on a connection opened ``read_only=True``), so they
  cannot write even if the sqlglot allowlist in :mod:`warehouse.query` were bypassed. A
  cursor shares the database instance, which sidesteps DuckDB's rule that one process cannot
  hold a read-only and a read-write connection to the same file.
* DuckDB lets one process hold a file for writing; a second process (read-only or not)
  fails to open it. Opening retries for ``busy_timeout`` seconds (default 3, or
  ``$METAOPT_BUSY_TIMEOUT``; 0 = fail at once) and then raises :class:`WarehouseBusyError`:
  a short job queued behind another gets its turn, a long sweep is reported as busy.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from warehouse import sqlfiles
from warehouse.errors import (
    NotFoundError,
    ReadOnlyWarehouseError,
    SchemaVersionError,
    ValidationError,
    WarehouseBusyError,
    one_line,
)

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_PATH = "metaopt.duckdb"
MEMORY = ":memory:"
_CONFIG = {"enable_external_access": False, "lock_configuration": True}
_INTERNAL_TABLES = ("metaopt_schema", "metaopt_meta")
#: Seconds a second process waits for the file lock before WarehouseBusyError.
DEFAULT_BUSY_TIMEOUT = 3.0


def _busy_timeout(value: float | None) -> float:
    if value is None:
        text = os.environ.get("METAOPT_BUSY_TIMEOUT")
        try:
            value = float(text) if text else DEFAULT_BUSY_TIMEOUT
        except ValueError:
            raise ValidationError(
                f"METAOPT_BUSY_TIMEOUT must be a number of seconds, not {text!r}"
            ) from None
    if not value >= 0:
        raise ValidationError(f"busy_timeout must be >= 0 seconds, not {value!r}")
    return float(value)


def resolve_path(path: str | os.PathLike[str] | None) -> str:
    """``None`` → ``$METAOPT_DB`` → ``./metaopt.duckdb``; ``":memory:"`` stays in memory."""
    if path is None:
        path = os.environ.get("METAOPT_DB") or DEFAULT_PATH
    if not isinstance(path, str | os.PathLike):
        raise ValidationError(f"warehouse path must be a file path, not {type(path).__name__}")
    text = os.fspath(path)
    if text == MEMORY:
        return MEMORY
    return str(Path(text).expanduser().resolve())


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("metaopt")
    except PackageNotFoundError:
        return "0+source"


def _arrow_to_pandas(table: Any) -> pd.DataFrame:
    """Arrow → pandas with dicts for MAP columns and nullable integers for integer columns."""
    import pandas as pd
    import pyarrow as pa

    ints = {
        pa.int8(): pd.Int8Dtype(),
        pa.int16(): pd.Int16Dtype(),
        pa.int32(): pd.Int32Dtype(),
        pa.int64(): pd.Int64Dtype(),
        pa.uint8(): pd.UInt8Dtype(),
        pa.uint16(): pd.UInt16Dtype(),
        pa.uint32(): pd.UInt32Dtype(),
        pa.uint64(): pd.UInt64Dtype(),
    }
    nullable = {f.name for f in table.schema if f.type in ints and table[f.name].null_count}
    df = table.to_pandas(maps_as_pydicts="strict")
    for name in nullable:
        df[name] = pd.array(table[name].to_pylist(), dtype=ints[table.schema.field(name).type])
    return df


def _check_duckdb_file(path: str) -> None:
    """A clear error for a path that is a folder or a file of another kind (say a CSV given
    to --db by mistake), which DuckDB reports with unrelated-sounding messages."""
    p = Path(path)
    if p.is_dir():
        raise ValidationError(f"warehouse path {path!r} is a folder, not a DuckDB file")
    if not p.is_file() or p.stat().st_size == 0:
        return  # created on open
    with open(p, "rb") as f:
        head = f.read(16)
    if head[8:12] != b"DUCK":
        raise SchemaVersionError(f"{path!r} is not a DuckDB warehouse file")


class Warehouse:
    """An embedded DuckDB warehouse of training runs (see the module docstring).

    ``Warehouse(path=None, read_only=False)``: ``path`` ``None`` means ``$METAOPT_DB``, else
    ``./metaopt.duckdb``; ``":memory:"`` is an in-memory warehouse. Opening applies pending
    schema migrations (refusing a file written by a newer metaopt) and (re)creates the views.
    Use it as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        read_only: bool = False,
        busy_timeout: float | None = None,
    ):
        self.path = resolve_path(path)
        self.read_only = bool(read_only)
        self.busy_timeout = _busy_timeout(busy_timeout)
        self._depth = 0
        # Dataset/metric names known to be committed (nothing deletes them): log_run skips
        # re-inserting them. Filled only after a successful commit.
        self._known_datasets: set[str] = set()
        self._known_metrics: set[str] = set()
        self._reader: duckdb.DuckDBPyConnection | None = None
        # Column names of each named view (fixed once the views are created at open).
        self._view_columns: dict[str, list[str]] = {}
        self._catalog: frozenset[str] | None = None
        # A runs.seq known to be committed (seqs only grow): log_run reads max(seq) above it.
        self._seq_floor = 0
        self._con = self._connect()
        try:
            self._migrate()
        except BaseException:
            self._con.close()
            raise

    # ------------------------------------------------------------------ lifecycle
    def _connect(self) -> duckdb.DuckDBPyConnection:
        if self.path == MEMORY:
            if self.read_only:
                raise ValidationError("an in-memory warehouse cannot be opened read-only")
        else:
            parent = Path(self.path).parent
            if not parent.is_dir():
                raise NotFoundError(
                    f"folder {str(parent)!r} of warehouse {self.path!r} does not exist"
                )
            if self.read_only and not Path(self.path).exists():
                raise NotFoundError(f"warehouse {self.path!r} does not exist (run `metaopt init`)")
            _check_duckdb_file(self.path)
        deadline = time.monotonic() + self.busy_timeout
        pause = 0.02
        while True:
            try:
                return duckdb.connect(self.path, read_only=self.read_only, config=dict(_CONFIG))
            except duckdb.IOException as exc:
                msg = one_line(exc)
                if "lock" not in msg.lower():
                    raise SchemaVersionError(f"cannot open {self.path!r}: {msg}") from None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WarehouseBusyError(
                        f"warehouse {self.path!r} is busy: in use by another process (DuckDB "
                        f"allows one writer at a time; waited {self.busy_timeout:g} s); retry "
                        "when it is done or raise METAOPT_BUSY_TIMEOUT"
                    ) from None
                time.sleep(min(pause, remaining))
                pause = min(pause * 2, 0.25)
            except duckdb.ConnectionException as exc:
                raise WarehouseBusyError(
                    f"warehouse {self.path!r} is already open in this process with other "
                    "settings (read-only vs read-write); close that Warehouse first "
                    f"({one_line(exc)})"
                ) from None
            except duckdb.Error as exc:
                raise SchemaVersionError(f"cannot open {self.path!r}: {one_line(exc)}") from None

    def close(self) -> None:
        """Close the warehouse (idempotent)."""
        if self._reader is not None:
            with contextlib.suppress(duckdb.Error):
                self._reader.close()
            self._reader = None
        if self._con is not None:
            if not self.read_only and self.path != MEMORY and not self._depth:
                # Fold the WAL into the file while we still hold the lock, so the next
                # process never depends on DuckDB's shutdown checkpoint (see
                # docs/reliability.md); fails harmlessly if another handle is mid-transaction.
                with contextlib.suppress(duckdb.Error):
                    self._con.execute("CHECKPOINT")
            with contextlib.suppress(duckdb.Error):
                self._con.close()
            self._con = None  # type: ignore[assignment]

    @contextlib.contextmanager
    def released(self, patience: float | None = None) -> Iterator[None]:
        """Let go of the file for the block, so that other processes can open it (`metaopt
        sql` on the runs a sweep has logged so far); it is opened again at the end. If
        another process holds it then, a warning says so once ``busy_timeout`` has passed
        and the wait goes on — up to ``patience`` seconds, by default until it is free — so
        that what the caller is about to log is not lost to a reader left open. The
        warehouse cannot be used inside the block. A no-op in memory, read-only or inside a
        transaction (nothing to let go of, or nothing that may be)."""
        if self.path == MEMORY or self.read_only or self._depth or self._con is None:
            yield
            return
        self.close()
        try:
            yield
        finally:
            try:
                self._con = self._connect()
            except WarehouseBusyError:
                warnings.warn(
                    f"warehouse {self.path!r} is held by another process; waiting for it to "
                    "be closed to log the finished work",
                    stacklevel=3,
                )
                saved = self.busy_timeout
                self.busy_timeout = math.inf if patience is None else max(saved, patience)
                try:
                    self._con = self._connect()
                finally:
                    self.busy_timeout = saved

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "read-write"
        state = "closed" if self._con is None else mode
        return f"Warehouse({self.path!r}, {state})"

    def _require_open(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise ValidationError(f"warehouse {self.path!r} is closed")
        return self._con

    # ------------------------------------------------------------------ schema
    def _table_names(self, con: duckdb.DuckDBPyConnection) -> set[str]:
        rows = con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE NOT internal AND schema_name = 'main'"
        ).fetchall()
        return {r[0] for r in rows}

    @property
    def schema_version(self) -> int:
        """The highest migration applied to this warehouse."""
        con = self._require_open()
        return int(
            con.execute("SELECT coalesce(max(version), 0) FROM metaopt_schema").fetchall()[0][0]
        )

    def _migrate(self) -> None:
        con = self._con
        known = sqlfiles.migrations()
        tables = self._table_names(con)
        if "metaopt_schema" not in tables:
            if tables:
                raise SchemaVersionError(
                    f"{self.path!r} is a DuckDB file but not a metaopt warehouse "
                    f"(it has tables {sorted(tables)[:5]} and no metaopt_schema)"
                )
            if self.read_only:
                raise SchemaVersionError(
                    f"{self.path!r} is not initialised; open it read-write once (metaopt init)"
                )
            con.execute("BEGIN TRANSACTION")
            con.execute(
                "CREATE TABLE metaopt_schema (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
                " applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp,"
                " metaopt_version VARCHAR)"
            )
            con.execute("CREATE TABLE metaopt_meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
            con.execute("COMMIT")
        current = int(
            con.execute("SELECT coalesce(max(version), 0) FROM metaopt_schema").fetchall()[0][0]
        )
        latest = known[-1].version if known else 0
        if current > latest:
            raise SchemaVersionError(
                f"{self.path!r} was written by a newer metaopt (schema version {current}; this "
                f"metaopt knows up to {latest}); upgrade metaopt to open it"
            )
        pending = [m for m in known if m.version > current]
        if pending and self.read_only:
            raise SchemaVersionError(
                f"{self.path!r} has schema version {current} but this metaopt needs {latest}; "
                "open it read-write once to migrate"
            )
        version = _package_version()
        for migration in pending:
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(migration.sql)
                con.execute(
                    "INSERT INTO metaopt_schema (version, name, metaopt_version) VALUES (?, ?, ?)",
                    [migration.version, migration.name, version],
                )
            except duckdb.Error as exc:
                con.execute("ROLLBACK")
                raise SchemaVersionError(
                    f"migration {migration.version:04d}_{migration.name} failed: {one_line(exc)}"
                ) from None
            con.execute("COMMIT")
        if not self.read_only:
            self._ensure_views()

    def _ensure_views(self) -> None:
        """(Re)create the views from ``sql/views`` when their text changed."""
        con = self._con
        fingerprint = sqlfiles.views_fingerprint()
        rows = con.execute("SELECT value FROM metaopt_meta WHERE key = 'views'").fetchall()
        if rows and rows[0][0] == fingerprint:
            return
        todo = {name: sqlfiles.view_sql(name) for name in sqlfiles.view_names()}
        con.execute("BEGIN TRANSACTION")
        try:
            # Views may read other views: create in passes until all bind.
            while todo:
                failed: dict[str, str] = {}
                last_error: Exception | None = None
                for name, text in todo.items():
                    try:
                        con.execute(text)
                    except duckdb.CatalogException as exc:
                        failed[name] = text
                        last_error = exc
                if len(failed) == len(todo):
                    raise SchemaVersionError(
                        f"views {sorted(failed)} could not be created: {one_line(last_error)}"
                    )
                todo = failed
            con.execute(
                "INSERT INTO metaopt_meta VALUES ('views', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [fingerprint],
            )
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    # ------------------------------------------------------------------ transactions
    @contextlib.contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Yield the read-write connection inside one transaction: everything or nothing.

        Nested use joins the outer transaction. DuckDB constraint and conversion errors are
        re-raised as one-line :class:`ValidationError`; nothing of the batch is kept.
        """
        con = self._require_open()
        if self.read_only:
            raise ReadOnlyWarehouseError(f"warehouse {self.path!r} was opened read-only")
        if self._depth:
            self._depth += 1
            try:
                yield con
            finally:
                self._depth -= 1
            return
        con.execute("BEGIN TRANSACTION")
        self._depth = 1
        try:
            yield con
        except duckdb.Error as exc:
            self._rollback(con)
            if isinstance(exc, duckdb.ConstraintException | duckdb.ConversionException):
                raise ValidationError(f"rejected by the warehouse: {one_line(exc)}") from None
            raise
        except BaseException:
            self._rollback(con)
            raise
        else:
            self._depth = 0
            try:
                con.execute("COMMIT")
            except duckdb.Error as exc:
                self._rollback(con)
                raise ValidationError(f"commit failed: {one_line(exc)}") from None

    def _rollback(self, con: duckdb.DuckDBPyConnection) -> None:
        self._depth = 0
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")

    # ------------------------------------------------------------------ reading
    def _read_cursor(self) -> duckdb.DuckDBPyConnection:
        con = self._require_open()
        if self._reader is None:
            self._reader = con.cursor()
        return self._reader

    def _read_df(
        self,
        query: str,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        via_arrow: bool = False,
    ) -> pd.DataFrame:
        """Run one statement read-only and return a DataFrame (internal, trusted SQL).

        ``via_arrow=True`` converts through Arrow (MAP columns become dicts, integers with
        NULLs become pandas ``Int64``): ~3x faster than DuckDB's own ``.df()`` on results
        with MAP columns (measured on run_features, 20k rows).
        """
        if via_arrow:
            return _arrow_to_pandas(self._read_arrow(query, params))
        cur = self._read_cursor()
        if not self.read_only:
            cur.execute("BEGIN TRANSACTION READ ONLY")
        try:
            return cur.execute(query, params).df()
        finally:
            if not self.read_only:
                with contextlib.suppress(duckdb.Error):
                    cur.execute("ROLLBACK")

    def _read_arrow(
        self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> Any:
        """Run one statement read-only and return a ``pyarrow.Table`` (internal, trusted SQL)."""
        cur = self._read_cursor()
        if not self.read_only:
            cur.execute("BEGIN TRANSACTION READ ONLY")
        try:
            return cur.sql(query, params=params).to_arrow_table()
        finally:
            if not self.read_only:
                with contextlib.suppress(duckdb.Error):
                    cur.execute("ROLLBACK")

    def catalog(self, cached: bool = False) -> frozenset[str]:
        """Names of the tables and views a user query may read (main schema).

        ``cached=True`` may answer from the last lookup (two catalog scans cost ~1.5 ms, a
        sizeable share of a small query): a name that has since been dropped only makes the
        engine report a missing table, and a caller that misses a name looks again fresh.
        """
        if cached and self._catalog is not None:
            return self._catalog
        cur = self._read_cursor()
        rows = cur.execute(
            "SELECT table_name FROM duckdb_tables() WHERE NOT internal AND schema_name = 'main' "
            "UNION SELECT view_name FROM duckdb_views() WHERE NOT internal "
            "AND schema_name = 'main'"
        ).fetchall()
        self._catalog = frozenset(r[0] for r in rows)
        return self._catalog

    # ------------------------------------------------------------------ public API
    def log_run(
        self,
        dataset: str,
        model: str,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        **meta: Any,
    ) -> str:
        """Log one run; returns its ``run_id``. See :func:`warehouse.ingest.log_run`."""
        from warehouse import ingest

        return ingest.log_run(self, dataset, model, params or {}, metrics or {}, **meta)

    def log_runs(self, data: Any) -> int:
        """Bulk-log runs in the MLflow layout, all or nothing; returns the number of runs.
        See :func:`warehouse.ingest.log_runs`."""
        from warehouse import ingest

        return ingest.log_runs(self, data)

    def delete_runs(
        self,
        run_ids: Sequence[str] | None = None,
        dataset: str | None = None,
        model: str | None = None,
        source: str | None = None,
        dry_run: bool = False,
    ) -> list[str]:
        """Delete runs by id and/or filters, all or nothing; returns the deleted ids. See
        :func:`warehouse.ingest.delete_runs`."""
        from warehouse import ingest

        return ingest.delete_runs(
            self, run_ids, dataset=dataset, model=model, source=source, dry_run=dry_run
        )

    def log_dataset_meta_features(self, data: Any, method: str = "user") -> int:
        """Log a wide table ``dataset`` + one numeric column per meta-feature; returns the
        number of values written. See :func:`warehouse.ingest.log_dataset_meta_features`."""
        from warehouse import ingest

        return ingest.log_dataset_meta_features(self, data, method=method)

    def register_dataset(
        self,
        name: str,
        data: Any,
        target: str,
        task: str | None = None,
        source: str | None = None,
    ) -> dict[str, Any]:
        """Register a dataset and compute its meta-features (see warehouse.datasets)."""
        from warehouse.datasets import register_dataset

        return register_dataset(self, name, data, target, task=task, source=source)

    def record_meta_model(self, **row: Any) -> str:
        """Store one fitted meta-model's row; returns its ``model_id``."""
        from warehouse import ingest

        return ingest.record_meta_model(self, **row)

    def record_recommendations(self, df: pd.DataFrame) -> list[str]:
        """Store recommendations (one row each); returns their ``rec_id`` values."""
        from warehouse import ingest

        return ingest.record_recommendations(self, df)

    def has_dataset(self, name: str) -> bool:
        """Whether ``name`` is a registered dataset, has runs (imported histories) or has
        meta-features."""
        rows = self._read_df(
            "SELECT 1 FROM datasets WHERE name = $n UNION ALL "
            "SELECT 1 FROM (SELECT 1 FROM runs WHERE dataset = $n LIMIT 1) UNION ALL "
            "SELECT 1 FROM (SELECT 1 FROM dataset_meta_features WHERE dataset = $n LIMIT 1)",
            {"n": name},
        )
        return len(rows) > 0

    def metric_direction(self, metric: str) -> str:
        """``'maximize'`` or ``'minimize'``: the direction registered for ``metric`` (by ingest
        or an import), else the one its name suggests (loss, error, time, … are minimized)."""
        from warehouse.ingest import guess_direction

        rows = self._read_df("SELECT direction FROM metrics WHERE name = ?", [metric])
        return str(rows["direction"].iloc[0]) if len(rows) else guess_direction(metric)

    def sql(
        self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> pd.DataFrame:
        """Run one safe, read-only query (see :mod:`warehouse.query`)."""
        from warehouse import query as q

        return q.safe_sql(self, query, params)

    def view(self, name: str, **filters: Any) -> pd.DataFrame:
        """Read a named view; filters are equality tests on its columns (a list means IN)."""
        from warehouse import query as q

        return q.view(self, name, **filters)

    def views(self) -> pd.DataFrame:
        """The named views with their header comments."""
        from warehouse import query as q

        return q.list_views()

    def runs(
        self, dataset: str | None = None, model: str | None = None, limit: int | None = 20
    ) -> pd.DataFrame:
        """The most recently logged runs (newest first), optionally filtered."""
        from warehouse import query as q

        return q.recent_runs(self, dataset=dataset, model=model, limit=limit)

    def training_matrix(
        self,
        metric: str,
        model: str | None = None,
        datasets: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        split: str = "valid",
    ) -> pd.DataFrame:
        """One row per finished run having ``metric`` (see
        :func:`warehouse.query.training_matrix`)."""
        from warehouse import query as q

        return q.training_matrix(
            self, metric, model=model, datasets=datasets, exclude=exclude, split=split
        )

    def meta_features(self, datasets: Sequence[str] | None = None) -> pd.DataFrame:
        """Wide meta-features: index ``dataset``, one float column per meta-feature name."""
        from warehouse import query as q

        return q.meta_features(self, datasets=datasets)

    def check(self) -> pd.DataFrame:
        """Run every audit in ``sql/audits``; one row per audit with its failing-row count."""
        from warehouse import query as q

        return q.run_audits(self)
