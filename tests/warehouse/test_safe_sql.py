"""Safe SQL: an allowlist on sqlglot's AST and an engine that cannot write or touch files."""

from __future__ import annotations

import duckdb
import pytest

from warehouse import Warehouse
from warehouse.errors import UnsafeQueryError, ValidationError

HOSTILE = [
    # DDL / DML
    "DROP TABLE runs",
    "DELETE FROM runs",
    "UPDATE runs SET model = 'x'",
    "INSERT INTO runs (run_id) VALUES ('x')",
    "CREATE TABLE t AS SELECT 1",
    "CREATE VIEW v AS SELECT 1",
    "ALTER TABLE runs ADD COLUMN x INT",
    "TRUNCATE runs",
    "SELECT 1 INTO new_table",
    "WITH x AS (SELECT 1) INSERT INTO runs (run_id) SELECT * FROM x",
    # databases, files, extensions, settings
    "ATTACH '/tmp/evil.duckdb' AS evil",
    "DETACH memory",
    "COPY runs TO '/tmp/runs.csv'",
    "EXPORT DATABASE '/tmp/out'",
    "IMPORT DATABASE '/tmp/out'",
    "PRAGMA database_list",
    "SET enable_external_access = true",
    "RESET enable_external_access",
    "INSTALL httpfs",
    "LOAD httpfs",
    "CALL pragma_version()",
    "USE memory",
    "BEGIN TRANSACTION",
    "CHECKPOINT",
    # several statements
    "SELECT 1; SELECT 2",
    "SELECT 1; DROP TABLE runs",
    # table functions and paths that read files
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('/etc/passwd')",
    "SELECT * FROM read_parquet('x.parquet')",
    "SELECT * FROM read_json('x.json')",
    "SELECT * FROM read_json_auto('x.json')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/passwd')",
    "SELECT * FROM glob('/*')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM 'runs.csv'",
    'SELECT * FROM "/tmp/x.parquet"',
    "SELECT * FROM parquet_scan('x.parquet')",
    "SELECT * FROM sniff_csv('/etc/passwd')",
    "SELECT * FROM runs, read_csv('/etc/passwd')",
    "SELECT (SELECT count(*) FROM read_text('/etc/hosts'))",
    # SQL-running and environment functions
    "SELECT * FROM query('DROP TABLE runs')",
    "SELECT query('SELECT 1')",
    "SELECT * FROM query_table('runs')",
    "SELECT getenv('HOME')",
    "SELECT current_setting('threads')",
    "SELECT * FROM duckdb_settings()",
    # other catalogs / unknown names
    "SELECT * FROM evil.main.runs",
    "SELECT * FROM pg_catalog.pg_tables",
    "SELECT * FROM not_a_table",
    # unparsable
    "SELEC * FROM runs",
    "",
]


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_query_refused(wh_seeded, query):
    with pytest.raises(UnsafeQueryError) as info:
        wh_seeded.sql(query)
    assert "\n" not in str(info.value)
    assert int(wh_seeded.sql("SELECT count(*) AS n FROM runs").n[0]) == 7


def test_at_least_25_hostile():
    assert len(HOSTILE) >= 25


ALLOWED = [
    ("SELECT count(*) AS n FROM runs", 7),
    ("WITH a AS (SELECT * FROM runs WHERE dataset = 'd1') SELECT count(*) AS n FROM a", 4),
    ("SELECT 1 AS n UNION ALL SELECT 2", 2),
    ("VALUES (1), (2), (3)", 3),
    ("SELECT * FROM incumbents", 8),
    ("SELECT x FROM range(5) AS t(x)", 5),
    ("DESCRIBE runs", None),
    ("SUMMARIZE runs", None),
    ("SELECT table_name FROM information_schema.tables", None),
    ("FROM main.runs SELECT run_id", 7),
    ("SELECT run_id FROM runs WHERE dataset = ? AND model = ?", 2),
]


@pytest.mark.parametrize("query,n", ALLOWED)
def test_allowed_queries(wh_seeded, query, n):
    params = ["d2", "svm"] if "?" in query else None
    df = wh_seeded.sql(query, params)
    if n is not None:
        assert len(df) == n or int(df.iloc[0, 0]) == n


def test_engine_blocks_files_even_without_allowlist(wh_seeded, tmp_path):
    """The second lock: bypass the allowlist and the engine still refuses."""
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    with pytest.raises(duckdb.PermissionException):
        wh_seeded._read_df(f"SELECT * FROM read_csv('{secret}')")
    with pytest.raises(duckdb.Error):
        wh_seeded._read_df(f"COPY runs TO '{tmp_path / 'out.csv'}'")
    with pytest.raises(duckdb.Error):
        wh_seeded._read_df("DELETE FROM runs")
    with pytest.raises(duckdb.Error):
        wh_seeded._read_df("SET enable_external_access = true")
    assert not (tmp_path / "out.csv").exists()
    assert int(wh_seeded.sql("SELECT count(*) AS n FROM runs").n[0]) == 7


def test_cte_name_shadowing_path_is_allowed_only_as_cte(wh_seeded):
    df = wh_seeded.sql('WITH "x.csv" AS (SELECT 1 AS a) SELECT * FROM "x.csv"')
    assert df.a.tolist() == [1]


def test_cached_catalog_sees_new_and_dropped_names(wh_seeded):
    """The allowlist answers from a cached catalog; a name created after the cached lookup is
    still found (one fresh look on a miss), a dropped one fails in the engine, not silently."""
    wh_seeded.sql("SELECT count(*) AS n FROM runs")  # fills the cache
    con = wh_seeded._con
    con.execute("CREATE VIEW late_view AS SELECT 42 AS answer")
    wh_seeded._reader = None  # a fresh read cursor sees the new view
    assert wh_seeded.sql("SELECT answer FROM late_view").answer.tolist() == [42]
    con.execute("DROP VIEW late_view")
    wh_seeded._reader = None
    with pytest.raises(ValidationError, match="query failed"):
        wh_seeded.sql("SELECT answer FROM late_view")
    with pytest.raises(UnsafeQueryError, match="not a table or view"):
        wh_seeded.sql("SELECT * FROM never_existed")


def test_verdicts_are_remembered_only_for_accepted_queries(tmp_path):
    from warehouse.query import _check_once

    with Warehouse(tmp_path / "w.duckdb") as wh:
        wh.log_run("d", "m", {"a": 1}, {"accuracy": 0.5})
        ok = "SELECT count(*) AS n FROM runs"
        before = _check_once.cache_info().hits
        assert int(wh.sql(ok).n[0]) == 1 and int(wh.sql(ok).n[0]) == 1
        assert _check_once.cache_info().hits > before  # the second call skipped the parse
        bad = "SELECT * FROM read_csv('/etc/passwd')"
        for _ in range(2):  # refused every time: a refusal is never cached as a pass
            with pytest.raises(UnsafeQueryError):
                wh.sql(bad)
