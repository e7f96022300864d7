"""The Store core: one DuckDB database, its migrations, transactions and read-only reads.

This module imports nothing from the rest of the warehouse but errors, sqlfiles and frames;
the public methods live on :class:`warehouse.api.Warehouse`, a subclass.

Connection design (measured on DuckDB 2.0, see tests/warehouse/test_safe_sql.py):

* The database is opened ONCE per :class:`Store` with ``enable_external_access=false``
  and ``lock_configuration=true``. No SQL run through metaopt can then read or write files,
  ATTACH, COPY, INSTALL or LOAD, nor switch that back on. metaopt itself never needs file
  access from SQL: CSV/Parquet are read by pyarrow and handed to DuckDB as registered Arrow
  relations (``con.register`` still works with external access disabled).
* Writes go through :meth:`Store._transaction` on the main connection.
* Reads for users (``Warehouse.sql``, views) run on a cursor of the same database inside
  ``BEGIN TRANSACTION READ ONLY`` (or on a connection opened ``read_only=True``), so they
  cannot write even if the sqlglot allowlist in :mod:`warehouse.query` were bypassed. A
  cursor shares the database instance, which sidesteps DuckDB's rule that one process cannot
  hold a read-only and a read-write connection to the same file.
* DuckDB lets one process hold a file for writing; a second process (read-only or not)
  fails to open it. Opening retries for ``busy_timeout`` seconds (default 3, or
  ``$METAOPT_BUSY_TIMEOUT``; 0 = fail at once) and then raises :class:`WarehouseBusyError`:
  a short job queued behind another gets its turn, a long sweep is reported as busy.
* Every read runs on a helper thread while the calling thread waits for it, so that Ctrl-C
  (a ``KeyboardInterrupt`` in the waiting thread) and the time limit of user queries
  (``query_timeout``, default 300 s, or ``$METAOPT_QUERY_TIMEOUT``; 0 = none) stop the query
  through DuckDB's ``interrupt()``. A query blocked in DuckDB's C++ code never returns to
  Python, so a signal handler in the thread running it would only fire once it finished.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar

import duckdb

from warehouse import sqlfiles
from warehouse.errors import (
    NotFoundError,
    QueryTimeoutError,
    ReadOnlyWarehouseError,
    SchemaVersionError,
    ValidationError,
    WarehouseBusyError,
    one_line,
)
from warehouse.frames import arrow_to_pandas

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_PATH = "metaopt.duckdb"
MEMORY = ":memory:"
_CONFIG = {"enable_external_access": False, "lock_configuration": True}
_INTERNAL_TABLES = ("metaopt_schema", "metaopt_meta")
#: Seconds a second process waits for the file lock before WarehouseBusyError.
DEFAULT_BUSY_TIMEOUT = 3.0
#: Seconds a user query (``Warehouse.sql``, ``view``) may run before QueryTimeoutError.
DEFAULT_QUERY_TIMEOUT = 300.0
_T = TypeVar("_T")


def _seconds(value: float | None, name: str, env: str, default: float) -> float:
    """A number of seconds >= 0: ``value``, else ``$env``, else ``default``."""
    if value is None:
        text = os.environ.get(env)
        try:
            value = float(text) if text else default
        except ValueError:
            raise ValidationError(f"{env} must be a number of seconds, not {text!r}") from None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{name} must be a number of seconds, not {value!r}") from None
    if not seconds >= 0:
        raise ValidationError(f"{name} must be >= 0 seconds, not {value!r}")
    return seconds


def _busy_timeout(value: float | None) -> float:
    return _seconds(value, "busy_timeout", "METAOPT_BUSY_TIMEOUT", DEFAULT_BUSY_TIMEOUT)


def resolve_query_timeout(value: float | None) -> float:
    """The time limit of a user query in seconds (0 = none): ``value``, else
    ``$METAOPT_QUERY_TIMEOUT``, else :data:`DEFAULT_QUERY_TIMEOUT`."""
    return _seconds(value, "query_timeout", "METAOPT_QUERY_TIMEOUT", DEFAULT_QUERY_TIMEOUT)


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


class Store:
    """The core of a warehouse: one DuckDB database opened, migrated, written in transactions
    and read read-only (see the module docstring). :class:`warehouse.api.Warehouse` adds the
    public methods; the modules below it (ingest, query, records, …) take a ``Store``.

    ``Store(path=None, read_only=False)``: ``path`` ``None`` means ``$METAOPT_DB``, else
    ``./metaopt.duckdb``; ``":memory:"`` is an in-memory warehouse. Opening applies pending
    schema migrations (refusing a file written by a newer metaopt) and (re)creates the views.
    Use it as a context manager or call :meth:`close`. ``busy_timeout``: seconds to wait for
    a file another process holds; ``query_timeout``: seconds a user query may run (see the
    module docstring).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        read_only: bool = False,
        busy_timeout: float | None = None,
        query_timeout: float | None = None,
    ):
        self.path = resolve_path(path)
        self.read_only = bool(read_only)
        self.busy_timeout = _busy_timeout(busy_timeout)
        self.query_timeout = resolve_query_timeout(query_timeout)
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
        # Held while the connection is closed or reopened (released()), so that a heartbeat
        # thread (warehouse.claims) sees either an open warehouse or a released one.
        self._life = threading.RLock()
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
                        "when it is done or wait longer (--wait, METAOPT_BUSY_TIMEOUT)"
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
        if not self.release():
            yield
            return
        try:
            yield
        finally:
            self.reopen(patience)

    def release(self) -> bool:
        """Let go of the file until :meth:`reopen` (what :meth:`released` does around a
        block, for callers whose block spans calls: an ask/tell search between ``ask`` and
        ``tell``). Returns whether it did: not in memory, read-only, inside a transaction or
        when closed."""
        if self.path == MEMORY or self.read_only or self._depth or self._con is None:
            return False
        with self._life:
            self.close()
        return True

    def reopen(self, patience: float | None = None) -> None:
        """Open the file again after :meth:`release` (waiting as :meth:`released` does); a
        no-op when it is open."""
        with self._life:
            if self._con is None:
                self._reopen(patience)

    def _reopen(self, patience: float | None) -> None:
        try:
            self._con = self._connect()
        except WarehouseBusyError:
            warnings.warn(
                f"warehouse {self.path!r} is held by another process; waiting for it to "
                "be closed to log the finished work",
                stacklevel=5,
            )
            saved = self.busy_timeout
            self.busy_timeout = math.inf if patience is None else max(saved, patience)
            try:
                self._con = self._connect()
            finally:
                self.busy_timeout = saved

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "read-write"
        state = "closed" if self._con is None else mode
        return f"{type(self).__name__}({self.path!r}, {state})"

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
        limit: float = 0.0,
    ) -> pd.DataFrame:
        """Run one statement read-only and return a DataFrame (internal, trusted SQL).

        ``via_arrow=True`` converts through Arrow (MAP columns become dicts, integers with
        NULLs become pandas ``Int64``): ~3x faster than DuckDB's own ``.df()`` on results
        with MAP columns (measured on run_features, 20k rows). ``limit``: seconds before the
        query is stopped with :class:`QueryTimeoutError` (0 = none); Ctrl-C always stops it.
        """
        if via_arrow:
            return arrow_to_pandas(self._read_arrow(query, params, limit=limit))
        return self._read(lambda cur: cur.execute(query, params).df(), limit)

    def _read_arrow(
        self,
        query: str,
        params: Sequence[Any] | Mapping[str, Any] | None = None,
        limit: float = 0.0,
    ) -> Any:
        """Run one statement read-only and return a ``pyarrow.Table`` (internal, trusted SQL)."""
        return self._read(lambda cur: cur.sql(query, params=params).to_arrow_table(), limit)

    def _read(self, fetch: Callable[[duckdb.DuckDBPyConnection], _T], limit: float) -> _T:
        """``fetch(cursor)`` inside a read-only transaction, stoppable (see the module
        docstring): it runs on a helper thread while this one waits, so a ``KeyboardInterrupt``
        here, or ``limit`` seconds passing (0 = no limit), interrupts the query. Ctrl-C is
        re-raised as ``KeyboardInterrupt``; the limit raises :class:`QueryTimeoutError`."""
        cur = self._read_cursor()
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def work() -> None:
            try:
                if not self.read_only:
                    cur.execute("BEGIN TRANSACTION READ ONLY")
                try:
                    outcome["value"] = fetch(cur)
                finally:
                    if not self.read_only:
                        with contextlib.suppress(duckdb.Error):
                            cur.execute("ROLLBACK")
            except BaseException as exc:  # handed to the waiting thread
                outcome["error"] = exc
            finally:
                done.set()

        helper = threading.Thread(target=work, name="metaopt-read", daemon=True)
        helper.start()
        deadline = time.monotonic() + limit if limit > 0 else None
        try:
            # short waits: a signal the kernel hands to another thread (DuckDB's, this
            # helper) does not wake a long wait, but Python runs its handler — Ctrl-C's
            # KeyboardInterrupt — as soon as this thread is back in the interpreter
            while not done.wait(0.1):
                if deadline is not None and time.monotonic() >= deadline:
                    break
            finished = done.is_set()
        except BaseException:  # Ctrl-C (or another exception raised by a signal handler)
            cur.interrupt()
            done.wait()
            raise
        if not finished:
            cur.interrupt()
            done.wait()
            if isinstance(outcome.get("error"), duckdb.InterruptException):
                raise QueryTimeoutError(
                    f"query stopped after {limit:g} s, its time limit (query_timeout / "
                    "$METAOPT_QUERY_TIMEOUT / metaopt sql --timeout; 0 = no limit)"
                )
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]
