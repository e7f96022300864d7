"""SQL fuzzing: hostile queries never run, never change the warehouse, never read a file.

Hypothesis composes the SELECT shapes users may write (subqueries, CTEs, joins, UNION,
scalar subqueries, EXISTS, LATERAL, DESCRIBE/SUMMARIZE, FROM-first) with the constructs they
may not: file-reading table functions and quoted paths, ``query()``/``query_table()``,
environment and settings functions, sequence/log/sleep functions, lambdas and list
comprehensions calling them, PRAGMA/SET/ATTACH/COPY/INSTALL/LOAD/CALL/EXPORT/macros/DDL/DML,
stacked statements — under random keyword case, comments and whitespace.

Each hostile case asserts:
* ``Warehouse.sql`` raises a one-line :class:`UnsafeQueryError` from the allowlist (not the
  engine's second lock: the allowlist alone must refuse it);
* with the allowlist bypassed, the engine (read-only transaction, external access off) still
  neither reads the sentinel files nor changes anything (single statements only; stacking is
  the allowlist's job and is documented as such);
* the set of tables and views, every table's row count and the locked settings are unchanged,
  and no file appeared in the sandbox folder;
* the sentinel files were never read: ``secret.csv`` holds a token that must never appear in
  any result or message, and ``pipe.csv`` is a FIFO watched by a thread that records any
  open-for-reading (a reader blocks on a FIFO until a writer comes, so none can slip by).

Legitimate generated queries (same tricks: case, comments, CTEs named like files, forbidden
words inside string literals and aliases) must run and return exactly what the trusted
reader returns. ``METAOPT_FUZZ_SCALE`` multiplies the example counts (default 1: ≥5,000
cases in about a minute on a busy 2-core machine).
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import re
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import tiny_history_frame, tiny_meta_features_frame
from tests.reliability._tally import TALLY
from warehouse import Warehouse
from warehouse.errors import MetaoptError, UnsafeQueryError
from warehouse.query import check_query

SCALE = float(os.environ.get("METAOPT_FUZZ_SCALE", "1"))
TOKEN = "SENTINEL_8f3a1c_DO_NOT_READ"


def _n(base: int) -> int:
    return max(1, int(base * SCALE))


def _settings(n: int) -> settings:
    return settings(
        max_examples=_n(n),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# ---------------------------------------------------------------------------- the sandbox
class PipeWatch:
    """Records whether anyone opened a FIFO for reading (POSIX): opening the write end with
    O_NONBLOCK fails with ENXIO until a reader has it open, and a blocking reader waits for
    us, so every read attempt is seen."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.opened = 0
        self._stop = threading.Event()
        os.mkfifo(path)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
                time.sleep(0.002)
                continue
            self.opened += 1
            with contextlib.suppress(OSError):
                os.write(fd, f"a\n{TOKEN}\n".encode())
            os.close(fd)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class Sandbox:
    """A seeded file warehouse, its sentinel files and its baseline state."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.secret = root / "secret.csv"
        self.secret.write_text(f"a\n{TOKEN}\n")
        self.pipe = root / "pipe.csv"
        self.watch = PipeWatch(self.pipe) if hasattr(os, "mkfifo") else None
        self.out = root / "out"
        self.out.mkdir()
        self.wh = Warehouse(root / "wh.duckdb")
        self.wh.log_runs(tiny_history_frame())
        self.wh.log_dataset_meta_features(tiny_meta_features_frame())
        self.catalog = self.wh.catalog()
        self.checks = 0
        self.baseline = self.state()

    def state(self, exact: bool = True) -> tuple:
        """Names of all tables and views (with DuckDB's row estimate), the locked settings,
        the files in the sandbox folder and, when ``exact``, every table's row count — one
        trusted query on a raw cursor."""
        if not hasattr(self, "_cursor"):
            tables = self.wh._read_df(
                "SELECT table_name FROM duckdb_tables() WHERE NOT internal "
                "AND schema_name = 'main' ORDER BY 1"
            )["table_name"]
            self._counts_sql = " UNION ALL ".join(
                f"SELECT '{t}', count(*) FROM \"{t}\"" for t in tables
            )
            self._cursor = self.wh._con.cursor()
        row = self._cursor.execute(self._STATE_SQL).fetchone()
        counts = sorted(self._cursor.execute(self._counts_sql).fetchall()) if exact else None
        own = re.compile(r"wh\.duckdb(\.wal|\.tmp)?$")  # DuckDB's own files come and go
        files = (
            tuple(sorted(os.listdir(self.out))),
            tuple(sorted(f for f in os.listdir(self.root) if not own.match(f))),
        )
        return (*row, *files, counts)

    _STATE_SQL = (
        "SELECT (SELECT string_agg(s, ',' ORDER BY s) FROM (SELECT database_name || '.' || "
        "schema_name || '.' || table_name || '#' || estimated_size AS s FROM duckdb_tables())), "
        "(SELECT string_agg(s, ',' ORDER BY s) FROM (SELECT database_name || '.' || "
        "schema_name || '.' || view_name AS s FROM duckdb_views() WHERE NOT internal)), "
        "(SELECT string_agg(database_name, ',' ORDER BY database_name) FROM duckdb_databases()),"
        " current_setting('enable_external_access'), current_setting('lock_configuration')"
    )

    def assert_untouched(self, what: str) -> None:
        """Cheap state after every case; exact row counts of every table every 10th case."""
        self.checks += 1
        exact = self.checks % 10 == 0
        now = self.state(exact=exact)
        base = self.baseline if exact else (*self.baseline[:-1], None)
        assert now == base, f"state changed by {what!r}"
        if self.watch is not None:
            assert self.watch.opened == 0, f"sentinel FIFO opened by {what!r}"


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    sandbox = Sandbox(tmp_path_factory.mktemp("fuzz"))
    yield sandbox
    assert sandbox.state() == sandbox.baseline  # exact counts once more at the end
    if sandbox.watch is not None:
        sandbox.watch.stop()
    sandbox.wh.close()


def _hostile(box: Sandbox, query: str) -> None:
    """The allowlist refuses ``query`` with one line; nothing read, nothing changed."""
    TALLY["hostile queries tried"] += 1
    with pytest.raises(UnsafeQueryError) as info:
        box.wh.sql(query)
    message = str(info.value)
    assert "\n" not in message
    assert not message.startswith("refused by the engine"), (query, message)
    assert TOKEN not in message
    TALLY["hostile queries refused"] += 1


def _engine_only(box: Sandbox, query: str) -> None:
    """Second lock alone (allowlist bypassed): a single hostile statement may fail or return
    harmless rows, but reads no file and changes nothing."""
    import duckdb

    TALLY["hostile queries run on the engine with the allowlist bypassed"] += 1
    try:
        out = box.wh._read_df(query)
    except duckdb.Error as exc:
        assert TOKEN not in str(exc)
    else:
        assert TOKEN not in out.to_string()


# ---------------------------------------------------------------------------- strategies
_QUOTED = re.compile(r"('(?:[^']|'')*'|\"(?:[^\"]|\"\")*\")")
_MULTI_WORD = [r"ORDER BY", r"GROUP BY", r"UNION ALL", r"POSITIONAL JOIN"]
SEPARATORS = [" ", "  ", "\n", "\t", " /* c */ ", "/**/", " /* ; */ ", "\n-- ; DROP TABLE runs\n"]


@st.composite
def disguise(draw, query: str) -> str:
    """Random keyword case and comments/whitespace between tokens, never inside literals."""
    rnd = random.Random(draw(st.integers(0, 2**32 - 1)))  # one draw: fast, replayable
    for words in _MULTI_WORD:  # sqlglot cannot parse a comment inside ORDER BY & co.
        query = re.sub(words, lambda m: m.group(0).replace(" ", "\x00"), query, flags=re.I)
    parts = _QUOTED.split(query)
    out = []
    for i, part in enumerate(parts):
        if i % 2:  # a quoted literal or identifier: keep as is
            out.append(part)
            continue
        chars = [c.upper() if c.isalpha() and rnd.random() < 0.5 else c.lower() for c in part]
        text = "".join(chars)
        text = re.sub(r" ", lambda _m: rnd.choice(SEPARATORS), text)
        out.append(text.replace("\x00", " "))
    return "".join(out)


def _path_literals(box: Sandbox) -> list[str]:
    s, p = str(box.secret), str(box.pipe)
    return [
        f"'{s}'",
        f"'{p}'",
        f"'{s}'::VARCHAR",
        f"['{s}', '{p}']",
        f"'{box.root}/*.csv'",
        f"'file://{s}'",
        f"'{box.root}/./secret.csv'",
    ]


FILE_TABLE_FUNCTIONS = [
    "read_csv",
    "read_csv_auto",
    "read_text",
    "read_blob",
    "read_json",
    "read_json_auto",
    "read_json_objects",
    "read_ndjson",
    "read_parquet",
    "parquet_scan",
    "parquet_metadata",
    "parquet_schema",
    "sniff_csv",
    "glob",
    "read_duckdb",
    "sqlite_scan",
]
OTHER_TABLE_FUNCTIONS = [
    "query('SELECT * FROM runs')",
    "query('DROP TABLE runs')",
    "query_table('runs')",
    "query_table(['runs', 'datasets'])",
    "duckdb_settings()",
    "duckdb_secrets()",
    "duckdb_extensions()",
    "duckdb_databases()",
    "duckdb_temporary_files()",
    "duckdb_logs()",
    "pragma_version()",
    "pragma_database_size()",
    "pragma_storage_info('runs')",
    "checkpoint()",
    "force_checkpoint()",
    "enable_logging()",
    "which_secret('s3://b/x', 's3')",
    "json_execute_serialized_sql('{}')",
]
FUNCTION_PREFIXES = ["", "main.", "system.main.", '"main".', "memory.main."]


@st.composite
def forbidden_source(draw, box: Sandbox) -> str:
    """Something in FROM position that reads a file, runs SQL or reaches outside."""
    kind = draw(st.integers(0, 5))
    if kind <= 1:
        fn = draw(st.sampled_from(FILE_TABLE_FUNCTIONS))
        if draw(st.booleans()):
            fn = f'"{fn}"'
        arg = draw(st.sampled_from(_path_literals(box)))
        extra = ", 't'" if "sqlite" in fn else ""
        return f"{draw(st.sampled_from(FUNCTION_PREFIXES))}{fn}({arg}{extra})"
    if kind == 2:
        return draw(st.sampled_from(OTHER_TABLE_FUNCTIONS))
    if kind == 3:  # replacement scans: a path where a table name goes
        p = draw(st.sampled_from([str(box.secret), str(box.pipe), "secret.csv"]))
        return draw(
            st.sampled_from(
                [f"'{p}'", f'"{p}"', f'information_schema."{p}"', f'main."{p}"', f'"{p}" AS runs']
            )
        )
    if kind == 4:  # other databases and catalogs
        return draw(
            st.sampled_from(
                [
                    "system.main.runs",
                    "other.main.runs",
                    "temp.main.runs",
                    "pg_catalog.pg_tables",
                    "information_schema.secret",
                    "evil.runs",
                ]
            )
        )
    inner = draw(st.sampled_from(["SUMMARIZE", "DESCRIBE"]))
    return f"({inner} '{draw(st.sampled_from([str(box.secret), str(box.pipe)]))}')"


SOURCE_SHAPES = [
    "SELECT * FROM {src}",
    "FROM {src}",
    "SELECT count(*) AS n FROM runs, {src}",
    "SELECT * FROM runs JOIN {src} ON true",
    "SELECT * FROM runs POSITIONAL JOIN {src}",
    "SELECT * FROM (SELECT * FROM {src}) AS t",
    "SELECT * FROM (FROM {src})",
    "WITH t AS (SELECT * FROM {src}) SELECT * FROM t",
    "WITH a AS (SELECT 1 AS x), t AS (FROM {src}) SELECT * FROM a",
    "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t, {src} WHERE n < 3) FROM t",
    "SELECT * FROM runs WHERE run_id IN (SELECT * FROM {src})",
    "SELECT (SELECT count(*) FROM {src}) AS n",
    "SELECT * FROM runs WHERE EXISTS (FROM {src})",
    "SELECT run_id FROM runs UNION ALL SELECT * FROM {src}",
    "SELECT 1 EXCEPT SELECT * FROM {src}",
    "SELECT * FROM runs, LATERAL (SELECT * FROM {src}) AS l",
    "SUMMARIZE SELECT * FROM {src}",
    "DESCRIBE SELECT * FROM {src}",
    "SUMMARIZE (FROM {src})",
    "VALUES ((SELECT count(*) FROM {src}))",
    "SELECT [x FOR x IN (SELECT list(a) FROM {src})]",
    "SELECT * FROM range((SELECT count(*) FROM {src}))",
    'SELECT * FROM (WITH "{name}" AS (SELECT 1) SELECT 1) AS t, {src}',
    "SELECT * FROM incumbents AS i WHERE i.value > (SELECT max(a) FROM {src})",
]


@st.composite
def hostile_source_query(draw, box: Sandbox) -> str:
    shape = draw(st.sampled_from(SOURCE_SHAPES))
    src = draw(forbidden_source(box))
    return draw(disguise(shape.format(src=src, name=str(box.secret))))


def sql_text_functions() -> list[str]:
    """Every DuckDB function that takes SQL text (runs, parses, plans or serializes it), as
    DuckDB lists them: a function a new DuckDB adds is fuzzed without a code change."""
    import duckdb

    rows = (
        duckdb.connect()
        .sql(
            "SELECT DISTINCT function_name FROM duckdb_functions() "
            "WHERE function_name ILIKE 'json_%sql%' OR function_name ILIKE 'json_%plan%' "
            "OR function_name IN ('query', 'query_table')"
        )
        .fetchall()
    )
    return sorted(name for (name,) in rows)


SQL_TEXT = sql_text_functions()
SQL_TEXT_ARGS = ["'DROP TABLE runs'", "'SELECT * FROM runs'", "'COPY runs TO ''/tmp/x.csv'''"]
SQL_TEXT_CALLS = [
    form.format(fn=fn, arg=arg)
    for fn in SQL_TEXT
    for form in ("{fn}({arg})", '"{fn}"({arg})', "main.{fn}({arg})", "{arg}.{fn}()")
    for arg in SQL_TEXT_ARGS
]

FORBIDDEN_CALLS = [
    *(c.replace("{", "{{").replace("}", "}}") for c in SQL_TEXT_CALLS),
    "getenv('HOME')",
    "\"getenv\"('HOME')",
    "system.main.getenv('HOME')",
    "'HOME'.getenv()",
    "current_setting('enable_external_access')",
    "current_setting('home_directory')",
    "nextval('s')",
    "setval('s', 5)",
    "write_log('x')",
    "sleep_ms(1)",
    "pg_sleep(0)",
    "load_extension('httpfs')",
    "json_execute_serialized_sql('{{}}')",
    "read_text('{secret}')",
    "\"read_blob\"('{secret}')",
]
SCALAR_WRAPPERS = [
    "{call}",
    "coalesce({call}, 'x')",
    "list_transform([1, 2], lambda x: {call})",
    "list_transform([1, 2], x -> {call})",
    "list_filter(['a'], lambda x: {call} IS NULL)",
    "[{call} FOR x IN [1, 2]]",
    "[x FOR x IN [1] IF {call} IS NULL]",
    "list_reduce([1, 2], lambda a, b: {call})",
    "CASE WHEN true THEN {call} END",
    "(SELECT {call})",
    "map_from_entries([(1, {call})])",
]
SCALAR_SHAPES = [
    "SELECT {e} AS x",
    "SELECT run_id, {e} AS x FROM runs",
    "SELECT * FROM runs WHERE {e} IS NOT NULL",
    "SELECT * FROM runs ORDER BY {e}",
    "SELECT model, count(*) FROM runs GROUP BY model HAVING max({e}) IS NULL",
    "WITH t AS (SELECT {e} AS x) SELECT * FROM t",
    "SELECT * FROM runs AS r JOIN datasets AS d ON d.name = r.dataset AND {e} IS NULL",
    "VALUES ({e})",
    "SELECT 1 UNION SELECT {e}",
    "SELECT * FROM range(2) AS t(i) WHERE i < length({e})",
    "SUMMARIZE SELECT {e} AS x",
    "FROM runs SELECT {e}",
]


@st.composite
def hostile_scalar_query(draw, box: Sandbox) -> str:
    call = draw(st.sampled_from(FORBIDDEN_CALLS)).format(secret=box.secret)
    expr = draw(st.sampled_from(SCALAR_WRAPPERS)).format(call=call)
    shape = draw(st.sampled_from(SCALAR_SHAPES))
    return draw(disguise(shape.format(e=expr)))


def forbidden_statements(box: Sandbox) -> list[str]:
    s, out = str(box.secret), box.out
    return [
        "PRAGMA database_list",
        "PRAGMA enable_profiling",
        f"PRAGMA profiling_output = '{out}/p.txt'",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
        "SET GLOBAL threads = 1",
        "SET VARIABLE x = 1",
        "RESET enable_external_access",
        f"ATTACH '{out}/evil.duckdb' AS evil",
        f"ATTACH '{s}' AS evil (TYPE sqlite)",
        "DETACH wh",
        f"COPY runs TO '{out}/runs.csv'",
        f"COPY (SELECT * FROM runs) TO '{out}/runs.parquet' (FORMAT parquet)",
        f"COPY runs FROM '{s}'",
        f"EXPORT DATABASE '{out}/dump'",
        f"IMPORT DATABASE '{out}'",
        "INSTALL httpfs",
        "FORCE INSTALL httpfs",
        "LOAD httpfs",
        "LOAD 'httpfs'",
        "CALL pragma_version()",
        "CALL checkpoint()",
        "CALL enable_logging()",
        "CREATE MACRO env(x) AS getenv(x)",
        "CREATE TEMP MACRO f(x) AS x + 1",
        f"CREATE MACRO t() AS TABLE SELECT * FROM read_csv('{s}')",
        "CREATE TABLE t AS SELECT 1",
        "CREATE TEMP TABLE t AS SELECT * FROM runs",
        "CREATE VIEW v AS SELECT 1",
        "CREATE SEQUENCE s",
        "CREATE SECRET (TYPE s3, KEY_ID 'x', SECRET 'y')",
        "CREATE SCHEMA evil",
        "DROP TABLE runs",
        "DROP VIEW incumbents",
        "DELETE FROM runs",
        "UPDATE runs SET model = 'x'",
        "INSERT INTO datasets (name) VALUES ('evil')",
        "INSERT INTO datasets (name) SELECT 'evil'",
        "ALTER TABLE runs ADD COLUMN x INT",
        "ALTER TABLE runs RENAME TO r2",
        "TRUNCATE runs",
        "SELECT 1 AS x INTO evil_table",
        "WITH x AS (SELECT 1) INSERT INTO datasets (name) SELECT 'e' FROM x",
        "CHECKPOINT",
        "FORCE CHECKPOINT",
        "VACUUM",
        "BEGIN TRANSACTION",
        "COMMIT",
        "ROLLBACK",
        "USE memory",
        "EXPLAIN ANALYZE SELECT 1",
        f"DESCRIBE '{s}'",
        f"SUMMARIZE '{s}'",
        "SHOW TABLES",
        "PIVOT runs ON model USING count(*)",
        "UPDATE metaopt_schema SET version = 99",
        "COMMENT ON TABLE runs IS 'x'",
    ]


@st.composite
def hostile_statement(draw, box: Sandbox) -> str:
    return draw(disguise(draw(st.sampled_from(forbidden_statements(box)))))


LEGIT_SIMPLE = [
    "SELECT count(*) AS n FROM runs",
    "SELECT model, avg(duration_s) AS d FROM runs GROUP BY model ORDER BY model",
    "SELECT 1 AS x",
    "SELECT * FROM incumbents",
]


@st.composite
def stacked_query(draw, box: Sandbox) -> str:
    legit = draw(st.sampled_from(LEGIT_SIMPLE))
    bad = draw(st.sampled_from(forbidden_statements(box)))
    glue = draw(st.sampled_from([";", "; ", ";\n", " ; -- x\n", "; /* */ ", ";;"]))
    first, second = (legit, bad) if draw(st.booleans()) else (bad, legit)
    tail = draw(st.sampled_from(["", ";", " -- end", ";" + legit]))
    return draw(disguise(first + glue + second + tail))


# ---------------------------------------------------------------------------- legit queries
TABLE_COLUMNS = {
    "runs": ["run_id", "dataset", "model", "status", "duration_s", "seq"],
    "run_metrics": ["run_id", "name", "split", "value"],
    "run_params": ["run_id", "name", "value_num", "value_text"],
    "datasets": ["name", "source", "n_rows"],
    "incumbents": ["dataset", "model", "metric", "split", "value", "run_id"],
    "dataset_meta_features": ["dataset", "name", "value"],
}
PREDICATES = [
    "true",
    "{c} IS NOT NULL",
    "{c} IS NULL",
    "CAST({c} AS VARCHAR) LIKE '%1%'",
    "CAST({c} AS VARCHAR) <> 'read_csv(''/etc/passwd'')'",
    "length(CAST({c} AS VARCHAR)) > 1",
]


@st.composite
def legit_query(draw, box: Sandbox) -> str:
    table = draw(st.sampled_from(sorted(TABLE_COLUMNS)))
    cols = draw(
        st.lists(st.sampled_from(TABLE_COLUMNS[table]), min_size=1, max_size=3, unique=True)
    )
    pred = draw(st.sampled_from(PREDICATES)).format(c=cols[0])
    sel = ", ".join(cols)
    shape = draw(st.integers(0, 11))
    if shape == 0:
        q = f"SELECT {sel} FROM {table} WHERE {pred} ORDER BY ALL"
    elif shape == 1:
        q = f"WITH t AS (SELECT {sel} FROM {table} WHERE {pred}) SELECT * FROM t ORDER BY ALL"
    elif shape == 2:  # a CTE named like a file is a CTE, not a file
        q = f'WITH "{box.secret}" AS (SELECT {sel} FROM {table}) SELECT * FROM "{box.secret}"'
        q += " ORDER BY ALL"
    elif shape == 3:
        q = f"SELECT count(*) AS n FROM (SELECT {sel} FROM {table} WHERE {pred}) AS s"
    elif shape == 4:
        q = f"SELECT {cols[0]}, count(*) AS n FROM {table} GROUP BY ALL ORDER BY ALL"
    elif shape == 5:
        q = (
            f"SELECT {cols[0]} AS v FROM {table} UNION ALL "
            f"SELECT {cols[0]} FROM {table} WHERE {pred} ORDER BY ALL"
        )
    elif shape == 6:
        q = f"FROM {table} SELECT {sel} WHERE {pred} ORDER BY ALL"
    elif shape == 7:  # forbidden words as data and as aliases only
        q = (
            f"SELECT 'read_csv(''{box.secret}'')' AS getenv, 'DROP TABLE runs; ' AS \"query\", "
            f"count(*) AS copy FROM {table}"
        )
    elif shape == 8:
        q = (
            f"SELECT {sel} FROM {table} WHERE {cols[0]} IN (SELECT {cols[0]} FROM {table}) "
            "ORDER BY ALL"
        )
    elif shape == 9:
        q = "SELECT i, i * i AS sq FROM range(5) AS t(i) ORDER BY i"
    elif shape == 10:
        q = (
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'main' ORDER BY ALL"
        )
    else:
        q = f"SELECT list_transform([1, 2, 3], lambda x: x + 1) AS l, count(*) AS n FROM {table}"
    return draw(disguise(q))


# ---------------------------------------------------------------------------- the tests
@_settings(1500)
@given(data=st.data())
def test_forbidden_sources_never_run(box, data):
    query = data.draw(hostile_source_query(box))
    _hostile(box, query)
    _engine_only(box, query)
    box.assert_untouched(query)


@_settings(1300)
@given(data=st.data())
def test_forbidden_functions_never_run(box, data):
    query = data.draw(hostile_scalar_query(box))
    _hostile(box, query)
    _engine_only(box, query)
    box.assert_untouched(query)


@_settings(1100)
@given(data=st.data())
def test_forbidden_statements_never_run(box, data):
    query = data.draw(hostile_statement(box))
    _hostile(box, query)
    box.assert_untouched(query)


@_settings(700)
@given(data=st.data())
def test_stacked_statements_never_run(box, data):
    query = data.draw(stacked_query(box))
    _hostile(box, query)
    box.assert_untouched(query)


@_settings(500)
@given(data=st.data())
def test_legitimate_queries_keep_working(box, data):
    query = data.draw(legit_query(box))
    TALLY["legitimate queries run"] += 1
    got = box.wh.sql(query)
    expected = box.wh._read_df(query)
    assert list(got.columns) == list(expected.columns)
    assert got.astype(str).values.tolist() == expected.astype(str).values.tolist()
    assert TOKEN not in got.to_string()
    box.assert_untouched(query)


# ---------------------------------------------------------------------------- the detectors work
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFO sentinel is POSIX")
def test_sentinels_would_see_a_read(tmp_path):
    """Self-test: an unlocked DuckDB connection reading the sentinels is detected."""
    import duckdb

    watch = PipeWatch(tmp_path / "p.csv")
    secret = tmp_path / "s.csv"
    secret.write_text(f"a\n{TOKEN}\n")
    try:
        con = duckdb.connect()
        text = con.sql(f"SELECT content FROM read_text('{secret}')").fetchall()[0][0]
        assert TOKEN in text
        rows = con.sql(f"SELECT * FROM read_csv('{watch.path}', header=true)").fetchall()
        assert (TOKEN,) in rows
        assert watch.opened >= 1
        con.close()
    finally:
        watch.stop()


def test_state_check_would_see_a_write(box, tmp_path):
    """Self-test: the state snapshot notices a row added through a raw connection."""
    import duckdb

    with Warehouse(tmp_path / "w.duckdb") as wh:
        wh.log_run("d", "m", {}, {"accuracy": 0.5})
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("INSERT INTO datasets (name) VALUES ('evil')")
    con.close()
    with Warehouse(tmp_path / "w.duckdb") as wh:
        assert int(wh.sql("SELECT count(*) AS n FROM datasets").n[0]) == 2
    assert box.state() == box.baseline


# ---------------------------------------------------------------------------- regressions
# Holes the fuzzer found in the allowlist (each was stopped only by the engine's second lock,
# or not at all for the harmless-but-refused ones); fixed in warehouse/query.py.
REGRESSIONS = [
    # information_schema.<anything> skipped the name check; DuckDB then tried a file
    'SELECT * FROM information_schema."{secret}"',
    # SUMMARIZE of a string literal is a file scan, also nested in FROM (…)
    "SUMMARIZE '{secret}'",
    "SELECT * FROM (SUMMARIZE '{secret}')",
    # a quoted function name kept its quotes and dodged the refused list
    "SELECT \"getenv\"('HOME')",
    "SELECT \"current_setting\"('threads')",
    # a CTE named like a file in one scope vouched for the file everywhere
    'SELECT * FROM (WITH "{secret}" AS (SELECT 1) SELECT 1) AS t, "{secret}"',
    'WITH a AS (SELECT * FROM "{secret}"), "{secret}" AS (SELECT 1) SELECT * FROM a',
    # state-changing or stalling scalar functions
    "SELECT nextval('s')",
    "SELECT setval('s', 1)",
    "SELECT write_log('x')",
    "SELECT sleep_ms(100000)",
    "SELECT pg_sleep(100)",
]


@pytest.mark.parametrize("template", REGRESSIONS)
def test_regressions_refused_by_allowlist(box, template):
    query = template.format(secret=box.secret)
    with pytest.raises(UnsafeQueryError):
        check_query(query, box.catalog)
    _hostile(box, query)
    box.assert_untouched(query)


def test_duckdb_parser_must_agree_on_one_select():
    """The DuckDB-parse lock refuses what DuckDB would split or read otherwise."""
    for query in ["SELECT 1; SELECT 2", "PIVOT runs ON model USING count(*)"]:
        with pytest.raises(MetaoptError):
            check_query(query, {"runs"})
    tree = check_query("SELECT 'a;b' AS x /* ; */", {"runs"})
    assert tree is not None


def test_information_schema_views_allowed(box):
    df = box.wh.sql("SELECT column_name FROM information_schema.columns WHERE table_name = 'runs'")
    assert "run_id" in set(df.column_name)


# ---------------------------------------------------------------------------- nesting depth
NESTERS = [
    ("(", ")"),
    ("(SELECT ", ")"),
    ("abs(", ")"),
    ("coalesce(", ", 1)"),
    ("[", "]"),
    ("CASE WHEN true THEN ", " END"),
    ("list_transform([1], lambda x: ", ")"),
    ("(SELECT * FROM (SELECT ", ") AS t)"),
    ("-(", ")"),
    ("NOT (", ")"),
]
NESTED_CORES = ["1", "getenv('HOME')", "json_serialize_plan('DROP TABLE runs')"]


@st.composite
def nested_query(draw) -> tuple[str, int]:
    """A SELECT whose expression nests random constructs to a random depth (1 to 3,000),
    around a harmless core or a forbidden call."""
    depth = draw(st.one_of(st.integers(1, 30), st.integers(31, 3000)))
    kinds = draw(st.lists(st.sampled_from(NESTERS), min_size=1, max_size=4))
    core = draw(st.sampled_from(NESTED_CORES))
    opened = [kinds[i % len(kinds)] for i in range(depth)]
    text = "".join(o for o, _ in opened) + core + "".join(c for _, c in reversed(opened))
    return f"SELECT {text} AS x", depth


@_settings(300)
@given(data=st.data())
def test_any_nesting_depth_is_answered_or_refused_never_a_crash(box, data):
    """Deep nesting is refused with one line (``nests too deeply``), shallow nesting runs,
    a forbidden call at any depth is refused; never a RecursionError or a crash. (This test
    found nested lambdas taking DuckDB's binder 20 GB at depth 25: now refused beyond 8.)"""
    query, depth = data.draw(nested_query())
    TALLY["nested queries tried (depth 1-3000)"] += 1
    hostile = "getenv" in query or "json_" in query
    try:
        box.wh.sql(query, timeout=30)
    except UnsafeQueryError as exc:
        assert "\n" not in str(exc)
        assert hostile or "nest" in str(exc), (depth, str(exc)[:200])
    except MetaoptError as exc:  # the engine may refuse a legal shape (a type error): fine
        assert not hostile, (depth, str(exc)[:200])
        assert "\n" not in str(exc)
    else:
        assert not hostile, depth
    box.assert_untouched(query[:200])


# ---------------------------------------------------------------------------- braces in names
BRACES = ["{0}", "{}", "{x}", "{0.__class__}", "{{", "}}", "{!r}", "{:>10}", "%s", "{0[0]}"]


@_settings(200)
@given(data=st.data())
def test_format_braces_in_names_and_aliases_are_plain_text(box, data):
    """Names holding ``str.format`` fields — in aliases, quoted identifiers, string literals
    and unknown tables — come back as written or are named as written in one line."""
    brace = data.draw(st.sampled_from(BRACES))
    quoted = '"' + brace.replace('"', '""') + '"'
    literal = "'" + brace.replace("'", "''") + "'"
    shape = data.draw(st.integers(0, 3))
    TALLY["queries with format braces in names"] += 1
    if shape == 0:
        got = box.wh.sql(f"SELECT 1 AS {quoted}")
        assert list(got.columns) == [brace]
    elif shape == 1:
        got = box.wh.sql(f"SELECT {literal} AS v")
        assert got["v"].tolist() == [brace]
    elif shape == 2:
        got = box.wh.sql(f"WITH {quoted} AS (SELECT 2 AS n) SELECT n FROM {quoted}")
        assert got["n"].tolist() == [2]
    else:
        with pytest.raises(UnsafeQueryError) as info:
            box.wh.sql(f"SELECT * FROM {quoted}")
        assert brace in str(info.value) and "\n" not in str(info.value)


@pytest.mark.skipif(sys.platform == "win32", reason="FIFO sentinel is POSIX")
def test_fifo_never_opened_after_all(box):
    """Runs last in this module: the FIFO watcher saw no reader across every case above."""
    assert box.watch is not None and box.watch.opened == 0
