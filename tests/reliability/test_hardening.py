"""Hostile input that used to crash, slip through or run without end: deep nesting, SQL-text
functions, column names that look like format templates, runaway queries (time limit and
Ctrl-C), wide files, metric ranges, symlinks and huge fields."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warehouse import Warehouse
from warehouse.errors import QueryTimeoutError, UnsafeQueryError, ValidationError


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


# ------------------------------------------------------------------ runaway queries
ROOT = Path(__file__).resolve().parents[2]
#: ~9e10 row pairs: minutes of work for two cores, so only a stop can end it in seconds
RUNAWAY = "SELECT count(*) FROM range(300000) a, range(300000) b WHERE a.range + b.range = -1"


def test_a_runaway_query_stops_at_its_time_limit():
    with Warehouse(":memory:", query_timeout=1) as wh:
        started = time.monotonic()
        with pytest.raises(QueryTimeoutError) as err:
            wh.sql(RUNAWAY)
        elapsed = time.monotonic() - started
        assert 1 <= elapsed < 3.5, elapsed
        assert "\n" not in str(err.value) and "after 1 s" in str(err.value)
        started = time.monotonic()
        with pytest.raises(QueryTimeoutError, match=r"after 0\.5 s"):
            wh.sql(RUNAWAY, timeout=0.5)  # per call
        assert time.monotonic() - started < 3
        assert wh.sql("SELECT 42 AS x")["x"].tolist() == [42]  # the warehouse is still usable


def test_query_timeout_from_the_environment_and_bad_values(monkeypatch):
    monkeypatch.setenv("METAOPT_QUERY_TIMEOUT", "0.5")
    with Warehouse(":memory:") as wh:
        assert wh.query_timeout == 0.5
        with pytest.raises(QueryTimeoutError):
            wh.sql(RUNAWAY)
    monkeypatch.setenv("METAOPT_QUERY_TIMEOUT", "soon")
    with pytest.raises(ValidationError, match="METAOPT_QUERY_TIMEOUT"):
        Warehouse(":memory:")
    monkeypatch.delenv("METAOPT_QUERY_TIMEOUT")
    with pytest.raises(ValidationError, match="query_timeout"):
        Warehouse(":memory:", query_timeout=-1)
    with Warehouse(":memory:") as wh, pytest.raises(ValidationError, match="query_timeout"):
        wh.sql("SELECT 1", timeout=-2)


@pytest.fixture
def default_sigint():
    """Python's own SIGINT handling, unblocked, for the test (and inherited by its children):
    in a full test run something earlier leaves SIGINT ignored in this process (a fresh
    `metaopt` process starts with the default, which is what these tests are about)."""
    old = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGINT, old)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_stops_a_query_from_python(default_sigint):
    with Warehouse(":memory:", query_timeout=60) as wh:
        timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
        started = time.monotonic()
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                wh.sql(RUNAWAY)
        finally:
            timer.cancel()
        assert time.monotonic() - started < 4
        assert wh.sql("SELECT 1 AS x")["x"].tolist() == [1]


def _metaopt(db: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "metaopt_bayes", "--db", str(db), "sql", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_stops_metaopt_sql_with_one_line(tmp_path, default_sigint):
    db = tmp_path / "w.duckdb"
    Warehouse(db).close()
    started = time.monotonic()
    quick = _metaopt(db, "SELECT 1")
    quick.communicate(timeout=120)
    startup = time.monotonic() - started  # signal once the runaway query is surely running
    proc = _metaopt(db, "--timeout", "120", RUNAWAY)
    try:
        time.sleep(max(3.0, 2 * startup))
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        _out, err = proc.communicate(timeout=30)
        stopped = time.monotonic() - sent
    finally:
        proc.kill()
        proc.wait(30)
    assert stopped < 3, stopped
    assert proc.returncode == 130
    assert err.strip().splitlines() == ["Error: query interrupted (Ctrl-C)"], err


def test_metaopt_sql_timeout_option(tmp_path):
    db = tmp_path / "w.duckdb"
    Warehouse(db).close()
    proc = _metaopt(db, "--timeout", "1", RUNAWAY)
    try:
        _out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait(30)
    lines = err.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, err
    assert lines[0].startswith("Error: query stopped after 1 s"), err


# ------------------------------------------------------------------ wide files
def test_a_wide_file_ingests_and_round_trips(wh, tmp_path):
    """2,000 columns × 3 rows (params as numbers and text, metrics, architecture) through the
    file path; validation and inserts no longer run one statement per column (the 10,000-
    column timing is in benchmarks/warehouse_bench.py --wide)."""
    from warehouse.ingest import ingest_file

    rng = np.random.default_rng(0)
    cols: dict[str, object] = {"dataset": ["a", "b", "c"], "model": ["m"] * 3}
    for j in range(700):
        cols[f"params.p{j}"] = rng.uniform(0, 1, 3)
    for j in range(300):
        cols[f"params.t{j}"] = ["x", "y", "0.5"]
    for j in range(900):  # every third metric not recorded by the first run
        cols[f"metrics.m{j}"] = [np.nan if j % 3 == 0 else 0.1, *rng.uniform(0, 1, 2)]
    for j in range(100):
        cols[f"arch.a{j}"] = [1, 2, 3]
    frame = pd.DataFrame(cols)
    path = tmp_path / "wide.csv"
    frame.to_csv(path, index=False)
    assert ingest_file(wh, path) == (3, 0)
    got = wh.sql(
        "SELECT (SELECT count(*) FROM run_params) AS p, (SELECT count(*) FROM run_metrics) AS m,"
        " (SELECT count(*) FROM run_architecture) AS a, (SELECT count(*) FROM metrics) AS k"
    ).iloc[0]
    assert (got.p, got.m, got.a) == (3 * 1000, 3 * 900 - 300, 3 * 100)
    row = wh.view("run_features", dataset="b").iloc[0]
    assert row.metrics["m899"] == pytest.approx(frame["metrics.m899"][1])
    assert row.params_num["p699"] == pytest.approx(frame["params.p699"][1])
    assert row.params_text["t0"] == "y" and row.arch_num["a99"] == 2
    first = wh.view("run_features", dataset="a").iloc[0]
    assert "m0" not in first.metrics and first.metrics["m1"] == 0.1
    assert wh.check()["ok"].all()


def test_wide_meta_features_in_one_statement(wh):
    frame = pd.DataFrame({"dataset": ["a", "b"]} | {f"f{j}": [j, j + 0.5] for j in range(2000)})
    assert wh.log_dataset_meta_features(frame) == 4000
    wide = wh.meta_features()
    assert wide.shape == (2, 2000) and wide.loc["b", "f1999"] == 1999.5
    bad = frame.assign(f1500=["1", "x"])
    with pytest.raises(ValidationError, match=r"row 2, column 'f1500': 'x' is not a number"):
        wh.log_dataset_meta_features(bad)


@pytest.mark.parametrize("name", ['a"b', 'x""y', "naïve", "a b", "sel;ect", '"', "{0}", "é\t"])
def test_quote_ident_matches_sqlglot(name):
    from sqlglot import exp

    from warehouse.sqlfiles import quote_ident

    assert quote_ident(name) == exp.to_identifier(name, quoted=True).sql(dialect="duckdb")


# ------------------------------------------------------------------ metric ranges
def test_metric_ranges_refused_in_every_path_and_overridable(wh):
    with pytest.raises(ValidationError) as err:
        wh.log_runs(pd.DataFrame({"dataset": ["d"], "model": ["m"], "metrics.accuracy": [1.7]}))
    assert str(err.value) == (
        "row 1, column 'metrics.accuracy': 1.7 is outside the range of metric 'accuracy', "
        "[0, 1] (Warehouse.set_metric_range changes it)"
    )
    with pytest.raises(ValidationError, match=r"metric 'recall': -0\.1 is outside its range"):
        wh.log_run("d", "m", {}, {"recall": -0.1})
    with pytest.raises(ValidationError, match=r"'metrics\.duration_s'|'metrics\.error_rate'"):
        wh.log_runs(
            pd.DataFrame(
                {"dataset": ["d"], "model": ["m"], "metrics.error_rate": [0.1], "metrics.x": [1]}
            ).assign(**{"metrics.error_rate": [-0.5]})
        )
    assert wh.count_runs() == 0
    wh.set_metric_range("accuracy", 0, 100)
    wh.log_run("d", "m", {}, {"accuracy": 97.5})
    wh.set_metric_range("my_score", lower=0)  # a new name: registered with its range
    with pytest.raises(ValidationError, match=r"'my_score': -1\.0 is outside its range >= 0"):
        wh.log_run("d", "m", {}, {"my_score": -1.0})
    assert wh.count_runs() == 1 and wh.check()["ok"].all()


def test_the_known_table_agrees_with_the_metrics_seeded_by_the_first_migration(wh):
    from warehouse.metric_ranges import KNOWN_METRICS

    seeded = wh.sql("SELECT name, direction, lower, upper FROM metrics").itertuples(index=False)
    for name, direction, lower, upper in seeded:
        assert name in KNOWN_METRICS, name
        lo, hi = (None if pd.isna(v) else v for v in (lower, upper))
        assert KNOWN_METRICS[name] == (direction, lo, hi), name


def test_new_metric_names_get_their_known_range_and_direction(wh):
    wh.log_runs(
        pd.DataFrame(
            {"dataset": ["d"], "model": ["m"], "metrics.val_f1_macro": [0.5], "metrics.mcc": [0.1]}
            | {"metrics.brier_score": [0.2], "metrics.novel": [5.0]}
        )
    )
    got = wh.sql(
        "SELECT name, direction, lower, upper FROM metrics WHERE name IN "
        "('val_f1_macro', 'mcc', 'brier_score', 'novel') ORDER BY name"
    )
    assert got.values.tolist()[0][:2] == ["brier_score", "minimize"]
    rows = {r[0]: (r[1], r[2], r[3]) for r in got.itertuples(index=False)}
    assert rows["val_f1_macro"] == ("maximize", 0.0, 1.0) and rows["mcc"] == ("maximize", -1, 1)
    assert rows["novel"][0] == "maximize" and pd.isna(rows["novel"][1])


# ------------------------------------------------------------------ links and big fields
SECRET = "root:x:0:0:secret-token-1234:/root:/bin/bash"


def test_a_link_is_resolved_and_the_file_is_never_echoed(wh, tmp_path):
    target = tmp_path / "protected.csv"
    target.write_text(f"dataset,model,metrics.accuracy\n{SECRET},only-two\n")
    link = tmp_path / "innocent.csv"
    link.symlink_to(target)
    with pytest.raises(ValidationError) as err:
        wh.log_runs(link)
    message = str(err.value)
    assert "secret" not in message and "root:x" not in message, message
    assert "innocent.csv" in message and "protected.csv" in message, message
    assert "Expected 3 columns, got 2" in message
    assert wh.count_runs() == 0


def test_a_row_of_several_mib_round_trips(wh, tmp_path):
    """pyarrow reads a CSV in 1 MiB blocks and refused a longer row ("straddles two block
    boundaries"); the reader retries with a block as large as the file."""
    big = "é" * (3 << 20)  # 6 MiB of UTF-8 in one field
    path = tmp_path / "big.csv"
    path.write_text(f"dataset,model,params.note,metrics.accuracy\nd,m,{big},0.5\nd,m,x,0.6\n")
    assert wh.log_runs(path) == 2
    got = wh.sql("SELECT value_text FROM run_params WHERE length(value_text) > 10")
    assert got["value_text"].tolist() == [big]


def test_a_huge_bad_cell_is_not_echoed_in_full(wh):
    frame = pd.DataFrame({"dataset": ["d"], "model": ["m"], "metrics.a": ["z" * 1_000_000]})
    with pytest.raises(ValidationError) as err:
        wh.log_runs(frame)
    assert len(str(err.value)) < 200 and "is not a number" in str(err.value)


def test_sql_reads_through_arrow_with_the_dtypes_of_duckdbs_own_df(wh):
    """``Warehouse.sql`` reads through Arrow (2.3x faster than ``.df()`` on run_features)
    and gives every column the dtype and value ``.df()`` gave."""
    query = (
        "SELECT 1 AS i, NULL::INT AS ni, [1, 2] AS l, MAP {'a': 1.0} AS m, sum(3) AS s, "
        "1.5::DECIMAL(4, 2) AS d, TIMESTAMP '2026-01-01' AS t, 'x' AS v, {'a': 1} AS st, "
        "1::HUGEINT AS h, DATE '2026-01-01' AS dt, INTERVAL 1 DAY AS iv, NULL AS n, true AS b "
        "UNION ALL SELECT 2, 3, [], MAP {}, 4, 2.5, NULL, NULL, NULL, 2, NULL, NULL, NULL, NULL"
    )
    expected = duckdb.connect().sql(query).df()
    got = wh.sql(query)
    assert list(got.dtypes) == list(expected.dtypes)
    # lists compare as arrays; a NULL struct is None here where .df() gave pd.NA
    same = ["l", "st"]
    pd.testing.assert_frame_equal(got.drop(columns=same), expected.drop(columns=same))
    assert got.st[0] == {"a": 1} and got.st[1] is None


# ------------------------------------------------------------------ braces in ingest names
_BRACED = st.sampled_from(["{0}", "{}", "{x}", "{0.__class__.__mro__}", "{{", "}", "{!r}", "%s"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix=st.text(alphabet="ab", max_size=3),  # "__" starts a reserved name
    brace=_BRACED,
    where=st.sampled_from(["metrics", "params", "dataset"]),
    bad=st.booleans(),
)
def test_format_braces_in_ingest_names_round_trip_or_are_named_as_written(
    prefix, brace, where, bad
):
    name = prefix + brace
    frame = pd.DataFrame({"dataset": ["d"], "model": ["m"], "metrics.a": [0.5]})
    if where == "dataset":
        frame["dataset"] = [name]
    else:
        frame[f"{where}.{name}"] = ["oops" if bad and where == "metrics" else 0.25]
    with Warehouse(":memory:") as w:
        if bad and where == "metrics":
            with pytest.raises(ValidationError) as err:
                w.log_runs(frame)
            assert str(err.value) == f"row 1, column {f'metrics.{name}'!r}: 'oops' is not a number"
            return
        assert w.log_runs(frame) == 1
        row = w.view("run_features").iloc[0]
        if where == "dataset":
            assert row.dataset == name
        else:
            got = row.metrics if where == "metrics" else row.params_num
            assert got[name] == 0.25


def test_nested_lambdas_are_refused_before_duckdb_binds_them(wh):
    """DuckDB 2.0 binds nested lambdas in exponential time and memory (depth 25 took 20 GB
    before execution began, where neither the time limit nor Ctrl-C reaches)."""
    nest = "list_transform([1], lambda x: "
    assert len(wh.sql("SELECT " + nest * 8 + "1" + ")" * 8 + " AS x")) == 1
    for query in (
        "SELECT " + nest * 25 + "1" + ")" * 25,
        "SELECT " + "[" * 30 + "1" + " FOR x IN [1]]" * 30,
    ):
        started = time.monotonic()
        with pytest.raises(UnsafeQueryError, match="lambdas or list comprehensions nest"):
            wh.sql(query)
        assert time.monotonic() - started < 2


def test_nesting_is_refused_whatever_the_recursion_limit(wh):
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)  # as a library may set it: sqlglot would recurse on
    try:
        with pytest.raises(UnsafeQueryError, match="more than 250 levels"):
            wh.sql("SELECT " + "(" * 5000 + "1" + ")" * 5000)
        assert wh.sql("SELECT '" + "(" * 5000 + "' AS s")["s"][0] == "(" * 5000  # a literal
    finally:
        sys.setrecursionlimit(limit)


def test_a_result_type_nested_past_arrow_is_one_line(tmp_path):
    """A type 70 lists deep passes the checker (one level of syntax) but not Arrow's schema
    (64 levels): found by the nesting fuzzer as a raw ``ArrowInvalid``."""
    from warehouse import Warehouse
    from warehouse.errors import ValidationError

    with Warehouse(":memory:") as wh:
        with pytest.raises(ValidationError, match="query result cannot be returned") as err:
            wh.sql("SELECT CAST(NULL AS INTEGER" + "[]" * 70 + ") AS x")
        assert "\n" not in str(err.value)
        assert wh.sql("SELECT CAST(NULL AS INTEGER[][]) AS x").shape == (1, 1)
