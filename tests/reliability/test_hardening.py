"""Hostile input that used to crash or slip through: deep nesting, SQL-text functions, and
column names that look like format templates."""

from __future__ import annotations

import sys

import duckdb
import pandas as pd
import pytest

from warehouse import Warehouse
from warehouse.errors import UnsafeQueryError, ValidationError


@pytest.fixture
def wh():
    with Warehouse(":memory:") as w:
        yield w


@pytest.mark.parametrize(
    "query",
    [
        "SELECT " + "(" * 60 + "1" + ")" * 60,
        "SELECT * FROM " + "(SELECT " * 100 + "1" + ")" * 100,
        "SELECT " + "abs(" * 80 + "1" + ")" * 80,
        "SELECT " + "(" * 2000 + "1" + ")" * 2000,
    ],
    ids=["parentheses", "subqueries", "calls", "very deep"],
)
def test_any_nesting_depth_is_a_refusal_not_a_crash(wh, query):
    # Python's default recursion limit (libraries such as PyTensor raise it when imported)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        with pytest.raises(UnsafeQueryError, match="nests too deeply"):
            wh.sql(query)
    finally:
        sys.setrecursionlimit(limit)


def test_moderate_nesting_still_runs(wh):
    assert wh.sql("SELECT " + "(" * 10 + "1" + ")" * 10 + " AS x")["x"].tolist() == [1]


def _sql_text_functions() -> list[str]:
    """Every DuckDB function whose argument is SQL text (it runs, parses or plans it)."""
    con = duckdb.connect()
    names = con.sql(
        "SELECT DISTINCT function_name FROM duckdb_functions() "
        "WHERE function_name ILIKE 'json_%sql%' OR function_name ILIKE 'json_%plan%' "
        "OR function_name IN ('query', 'query_table')"
    ).fetchall()
    return sorted(n for (n,) in names)


@pytest.mark.parametrize("name", _sql_text_functions())
def test_every_function_that_takes_sql_text_is_refused(wh, name):
    with pytest.raises(UnsafeQueryError, match=f"{name}"):
        wh.sql(f"SELECT * FROM (SELECT {name}('DROP TABLE runs'))")
    assert "runs" in wh.catalog()


@pytest.mark.parametrize("column", ["metrics.acc{5}", "metrics.x{0.__class__.__mro__}", "{}"])
def test_column_names_are_never_read_as_templates(wh, column):
    name = column if column.startswith("metrics.") else f"metrics.{column}"
    frame = pd.DataFrame({"dataset": ["d"], "model": ["m"], name: ["abc"]})
    with pytest.raises(ValidationError) as err:
        wh.log_runs(frame)
    assert str(err.value) == f"row 1, column {name!r}: 'abc' is not a number"


def test_a_header_that_is_not_utf8_is_refused_naming_the_file(wh, tmp_path):
    from warehouse.ingest import ingest_file

    path = tmp_path / "latin1.csv"
    path.write_bytes("dataset,model,metrics.précision\nd,m,0.5\n".encode("latin-1"))
    with pytest.raises(ValidationError, match=r"latin1\.csv'.*header is not UTF-8"):
        ingest_file(wh, path)


@pytest.mark.parametrize("seed", [1.5, "1.5", 2**70])
def test_one_seed_rule_for_ingest_and_log_run(wh, seed):
    """A seed is a whole number of at most 64 bits: ingest no longer rounds 1.5 to 2, and
    log_run names the seed (not the timestamps) when it is too large."""
    frame = pd.DataFrame({"dataset": ["d"], "model": ["m"], "seed": [seed], "metrics.a": [0.5]})
    with pytest.raises(ValidationError, match="seed"):
        wh.log_runs(frame)
    if not isinstance(seed, str):
        with pytest.raises(ValidationError, match="seed"):
            wh.log_run("d", "m", {}, {"a": 0.5}, seed=seed)
    assert wh.count_runs() == 0


def test_a_run_that_finishes_before_it_starts_is_refused(wh):
    frame = pd.DataFrame(
        {
            "dataset": ["d", "d"],
            "model": ["m", "m"],
            "started_at": ["2026-01-01 10:00:00", "2026-01-01 10:00:00"],
            "finished_at": ["2026-01-01 11:00:00", "2026-01-01 09:00:00"],
            "metrics.a": [0.5, 0.6],
        }
    )
    with pytest.raises(ValidationError, match=r"row 2: finished_at .* is before started_at"):
        wh.log_runs(frame)
    with pytest.raises(ValidationError, match=r"finished_at .* is before started_at"):
        wh.log_run(
            "d", "m", {}, {"a": 0.5}, started_at="2026-01-01T10:00", finished_at="2026-01-01T09:00"
        )
    assert wh.count_runs() == 0 and wh.check()["ok"].all()


def test_table_output_is_capped_and_says_so(tmp_path):
    from click.testing import CliRunner

    from metaopt_bayes.cli import main
    from metaopt_bayes.cli._common import TABLE_ROWS

    db = str(tmp_path / "w.duckdb")
    Warehouse(db).close()
    query = f"SELECT range AS i FROM range({TABLE_ROWS + 500})"
    table = CliRunner().invoke(main, ["--db", db, "sql", query])
    assert table.exit_code == 0
    assert f"500 more rows not shown ({TABLE_ROWS + 500:,} in all)" in table.output
    assert f" {TABLE_ROWS - 1} " in table.output and f" {TABLE_ROWS} " not in table.output
    csv = CliRunner().invoke(main, ["--db", db, "sql", query, "--format", "csv"])
    assert csv.exit_code == 0 and len(csv.output.strip().splitlines()) == TABLE_ROWS + 501
