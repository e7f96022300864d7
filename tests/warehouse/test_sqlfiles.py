"""Every shipped .sql file parses with sqlglot; migrations are numbered; views are named
after their file and carry a header comment; the schema version table refuses newer files."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from warehouse import Warehouse, sqlfiles
from warehouse.errors import SchemaVersionError

SQL_FILES = sorted(sqlfiles.sql_dir().rglob("*.sql"))


def test_sql_dir_found():
    assert (sqlfiles.sql_dir() / "schema" / "0001_core.sql").is_file()
    assert len(SQL_FILES) >= 15


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_sql_file_parses(path: Path):
    statements = [s for s in sqlglot.parse(path.read_text(), read="duckdb") if s is not None]
    assert statements, f"{path} is empty"
    assert not any(isinstance(s, exp.Command) for s in statements), f"{path}: unparsed statement"
    assert path.read_text().startswith("--"), f"{path} lacks a header comment"


@pytest.mark.parametrize("name", sqlfiles.view_names())
def test_view_file_defines_its_own_name(name: str):
    tree = sqlglot.parse_one(sqlfiles.view_sql(name), read="duckdb")
    assert isinstance(tree, exp.Create) and tree.kind == "VIEW"
    assert tree.this.name == name
    assert "grain" in sqlfiles.header_comment(sqlfiles.view_sql(name)).lower()


def test_required_views_exist():
    assert {
        "run_features",
        "dataset_features",
        "incumbents",
        "leaderboard",
        "training_matrix",
    } <= set(sqlfiles.view_names())


def test_migrations_numbered():
    ms = sqlfiles.migrations()
    assert [m.version for m in ms] == list(range(1, len(ms) + 1))


def test_version_recorded_and_newer_refused(tmp_path):
    path = tmp_path / "v.duckdb"
    with Warehouse(path) as wh:
        assert wh.schema_version == len(sqlfiles.migrations())
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO metaopt_schema (version, name) VALUES (999, 'future')")
    con.close()
    with pytest.raises(SchemaVersionError, match="newer metaopt"):
        Warehouse(path)
    with pytest.raises(SchemaVersionError, match="newer metaopt"):
        Warehouse(path, read_only=True)


def test_foreign_duckdb_file_refused(tmp_path):
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t (x INT)")
    con.close()
    with pytest.raises(SchemaVersionError, match="not a metaopt warehouse"):
        Warehouse(path)


def test_reopen_is_idempotent(tmp_path):
    path = tmp_path / "w.duckdb"
    with Warehouse(path) as wh:
        wh.log_run("d", "m", {}, {"accuracy": 0.5}, run_id="a")
    with Warehouse(path) as wh:
        assert list(wh.sql("SELECT run_id FROM runs").run_id) == ["a"]


def test_default_path_env(tmp_path, monkeypatch):
    monkeypatch.setenv("METAOPT_DB", str(tmp_path / "env.duckdb"))
    with Warehouse() as wh:
        assert wh.path == str(tmp_path / "env.duckdb")
    monkeypatch.delenv("METAOPT_DB")
    monkeypatch.chdir(tmp_path)
    with Warehouse() as wh:
        assert wh.path == str(tmp_path / "metaopt.duckdb")


@pytest.mark.parametrize("dialect", ["spark", "postgres", "trino", "bigquery"])
def test_views_transpile(dialect):
    for name in sqlfiles.view_names():
        out = sqlfiles.transpile(sqlfiles.view_sql(name), dialect)
        assert "SELECT" in out.upper()
