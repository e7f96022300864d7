"""CLI: warehouse commands, their help, formats and one-line errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from metaopt_bayes.cli import main


@pytest.fixture
def db(tmp_path, tiny_history):
    path = tmp_path / "cli.duckdb"
    csv = tmp_path / "runs.csv"
    tiny_history.to_csv(csv, index=False)
    runner = CliRunner()
    assert runner.invoke(main, ["--db", str(path), "init"]).exit_code == 0
    result = runner.invoke(main, ["--db", str(path), "ingest", str(csv)])
    assert result.exit_code == 0, result.output
    assert "ingested 7 runs" in result.output
    return path


def _walk(group, prefix=()):
    import click

    for name, cmd in group.commands.items():
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _walk(cmd, (*prefix, name))


@pytest.mark.parametrize("path", [p for p, _ in _walk(main)], ids=" ".join)
def test_every_command_has_help_and_example(path):
    cmd = dict(_walk(main))[path]
    assert cmd.help and cmd.help.strip().splitlines()[0], f"{path} lacks help"
    assert "Example:" in cmd.help, f"{path} lacks an Example: block"
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0


def test_sql_json(db):
    result = CliRunner().invoke(
        main,
        [
            "--db",
            str(db),
            "sql",
            "--format",
            "json",
            "SELECT model, count(*) AS n FROM runs GROUP BY model ORDER BY model",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [{"model": "rf", "n": 4}, {"model": "svm", "n": 3}]


def test_tables_print_brackets_and_lists_as_text(db):
    # a coefficient such as "B0[intercept]" once printed as "B0": rich read it as markup
    q = "SELECT 'B0[intercept]' AS name, '[red]x' AS t, ['C', 'gamma'] AS params"
    out = CliRunner().invoke(main, ["--db", str(db), "sql", q]).output
    assert "B0[intercept]" in out and "[red]x" in out and '["C", "gamma"]' in out
    out = CliRunner().invoke(main, ["--db", str(db), "sql", q, "--format", "csv"]).output
    assert out.splitlines()[1] == 'B0[intercept],[red]x,"[""C"", ""gamma""]"'


def test_sql_refused_is_one_line(db):
    result = CliRunner().invoke(main, ["--db", str(db), "sql", "DROP TABLE runs"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: refused")


def test_sql_dialect(db):
    result = CliRunner().invoke(
        main, ["sql", "--dialect", "spark", "SELECT list(x) FROM range(3) t(x)"]
    )
    assert result.exit_code == 0 and "COLLECT_LIST" in result.output.upper()


def test_views_list_show_and_sql(db):
    runner = CliRunner()
    out = runner.invoke(main, ["--db", str(db), "views", "--format", "csv"]).output
    assert "incumbents" in out and "run_features" in out
    out = runner.invoke(main, ["--db", str(db), "views", "incumbents", "--format", "json"]).output
    assert len(json.loads(out)) == 8
    out = runner.invoke(main, ["views", "--sql", "--dialect", "postgres", "leaderboard"]).output
    assert "RANK() OVER" in out.upper()


def test_runs_and_check(db):
    runner = CliRunner()
    out = runner.invoke(main, ["--db", str(db), "runs", "--limit", "2", "--format", "json"]).output
    assert [r["run_id"] for r in json.loads(out)] == ["r7", "r6"]
    result = runner.invoke(main, ["--db", str(db), "check", "--format", "csv"])
    assert result.exit_code == 0 and "orphan_run_params" in result.output


def test_ingest_bad_file_one_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("dataset,model,metrics.acc\na,m,x\n")
    result = CliRunner().invoke(main, ["--db", str(tmp_path / "x.duckdb"), "ingest", str(bad)])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: row 1, column 'metrics.acc': 'x' is not a number"


def test_example_small_grid(tmp_path, monkeypatch):
    """`metaopt example` trains for real; a one-config grid on iris keeps the test fast."""
    from metaopt_bayes.cli import warehouse_cmds

    grid = {k: (path, configs[:1]) for k, (path, configs) in warehouse_cmds.EXAMPLE_GRID.items()}
    monkeypatch.setattr(warehouse_cmds, "EXAMPLE_GRID", grid)
    monkeypatch.setattr(warehouse_cmds, "EXAMPLE_DATASETS", ("iris",))
    db = tmp_path / "ex.duckdb"
    runner = CliRunner()
    result = runner.invoke(main, ["--db", str(db), "example", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert "logged 3 example runs" in result.output
    board = json.loads(result.stdout)
    assert sorted(r["rank"] for r in board) == [1, 2, 3]
    assert all(0.5 < r["value"] <= 1.0 for r in board)
    again = runner.invoke(main, ["--db", str(db), "example", "--format", "csv"])
    assert "already in" in again.output
    out = runner.invoke(
        main, ["--db", str(db), "sql", "--format", "json", "SELECT count(*) AS n FROM runs"]
    ).output
    assert json.loads(out) == [{"n": 3}]


@pytest.mark.parametrize(
    "cmd",
    [
        ["runs"],
        ["sql", "SELECT 1"],
        ["check"],
        ["datasets"],
        ["views", "incumbents"],
        ["export", "out"],
    ],
)
def test_readers_refuse_a_missing_warehouse_instead_of_creating_one(tmp_path, cmd):
    db = tmp_path / "typo.duckdb"
    out = CliRunner().invoke(main, ["--db", str(db), *cmd])
    assert out.exit_code == 1 and "does not exist (run `metaopt init`)" in out.output, out.output
    assert not db.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "knnn"], "unknown model 'knnn'"),
        (["--model", "ridge"], "does not support classification"),
        (["--budget", "0"], "--budget must be a positive integer"),
        (["--sweep", "0"], "--sweep must be a positive integer"),
    ],
)
def test_demo_refuses_bad_options_before_writing_anything(tmp_path, args, message):
    db = tmp_path / "demo.duckdb"
    out = CliRunner().invoke(main, ["--db", str(db), "demo", "-q", *args])
    assert out.exit_code == 1 and message in out.output, out.output
    assert not db.exists()


def test_ingest_names_the_datasets_and_models_it_creates(tmp_path):
    db = str(tmp_path / "w.duckdb")
    first = tmp_path / "a.csv"
    first.write_text("dataset,model,params.k,metrics.accuracy\niris,knn,3,0.9\n")
    typo = tmp_path / "b.csv"
    typo.write_text("dataset,model,params.k,metrics.accuracy\nirsi,knn,5,0.8\niris,knn,7,0.85\n")
    r = CliRunner()
    out = r.invoke(main, ["--db", db, "ingest", str(first)])
    assert (
        out.exit_code == 0 and "new dataset: iris" in out.stderr and "new model: knn" in out.stderr
    )
    out = r.invoke(main, ["--db", db, "ingest", str(typo)])
    assert out.exit_code == 0 and out.stderr.strip() == "new dataset: irsi", out.stderr


@pytest.mark.parametrize(
    "cmd",
    [
        ["fit", "--metric", "accuracy"],
        ["sweep", "-d", "iris", "-m", "knn"],
        ["recommend", "-d", "iris", "-m", "knn"],
        ["optimize", "-d", "iris", "-m", "knn"],
    ],
)
def test_commands_that_need_history_refuse_a_missing_warehouse(tmp_path, cmd):
    db = tmp_path / "typo.duckdb"
    out = CliRunner().invoke(main, ["--db", str(db), *cmd])
    assert out.exit_code == 1 and "typo.duckdb' does not exist (start one" in out.output
    assert not db.exists()


def test_output_cut_short_by_the_reader_is_not_an_error(tmp_path):
    # `metaopt views --sql | head -1`: the pipe closes early, as it does for cat
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "metaopt_bayes", "--db", str(tmp_path / "w.duckdb"), "views"]
    proc = subprocess.Popen([*cmd, "--sql"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline()
    proc.stdout.close()  # the reader goes away after one line
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.wait(timeout=60) == 0 and "Error" not in err, err


def test_ingesting_a_file_again_adds_only_its_new_rows(tmp_path):
    db, csv = str(tmp_path / "w.duckdb"), tmp_path / "runs.csv"
    rows = ["dataset,model,params.k,metrics.accuracy", "d1,knn,3,0.9", "d1,knn,5,0.8"]
    csv.write_text("\n".join([*rows, "d1,knn,5,0.8"]) + "\n")  # a repeated measurement
    run = CliRunner()
    first = run.invoke(main, ["--db", db, "ingest", str(csv)])
    assert first.exit_code == 0 and "ingested 3 runs" in first.stdout, first.output
    again = run.invoke(main, ["--db", db, "ingest", str(csv)])
    assert "ingested 0 runs" in again.stdout and "3 already in the warehouse" in again.stdout
    with csv.open("a") as f:
        f.write("d1,knn,7,0.7\n")
    more = run.invoke(main, ["--db", db, "ingest", str(csv)])
    assert "ingested 1 runs" in more.stdout, more.output
    count = ["--db", db, "sql", "SELECT count(*) AS n FROM runs", "--format", "json"]
    out = run.invoke(main, count)
    assert json.loads(out.stdout) == [{"n": 4}]
    with_ids = tmp_path / "ids.csv"  # a file's own run ids: a second load is refused, as before
    with_ids.write_text("run_id,dataset,model,metrics.accuracy\nr1,d1,knn,0.5\n")
    assert run.invoke(main, ["--db", db, "ingest", str(with_ids)]).exit_code == 0
    refused = run.invoke(main, ["--db", db, "ingest", str(with_ids)])
    assert refused.exit_code == 1 and "r1" in refused.output


@pytest.mark.parametrize(
    "appended",
    ["d1,knn,7,0.7,", "d1,knn,7.5,0.7,", "d1,knn,auto,0.7,", "d1,knn,7,0.7,0.2"],
    ids=["same types", "int column becomes float", "int column becomes text", "empty filled"],
)
def test_rows_keep_their_ids_when_an_appended_row_changes_a_column_type(tmp_path, appended):
    from warehouse import Warehouse
    from warehouse.ingest import ingest_file

    csv = tmp_path / "runs.csv"
    csv.write_text("dataset,model,params.k,metrics.accuracy,metrics.loss\n"
                   "d1,knn,3,0.9,\nd1,knn,5,0.8,\n")  # fmt: skip
    with Warehouse(":memory:") as wh:
        assert ingest_file(wh, csv) == (2, 0)
        with csv.open("a") as f:
            f.write(appended + "\n")
        assert ingest_file(wh, csv) == (1, 2)
        reordered = tmp_path / "reordered.csv"  # the same runs, columns in another order
        reordered.write_text("model,dataset,metrics.accuracy,params.k\nknn,d1,0.9,3.0\n")
        assert ingest_file(wh, reordered) == (0, 1)


def test_a_list_valued_parameter_is_ingested_once(tmp_path):
    import pandas as pd

    from warehouse import Warehouse
    from warehouse.ingest import ingest_file

    path = tmp_path / "runs.parquet"
    pd.DataFrame({"dataset": ["d"], "model": ["mlp"], "params.layers": [[64, 32]],
                  "metrics.accuracy": [0.9]}).to_parquet(path)  # fmt: skip
    with Warehouse(":memory:") as wh:
        assert ingest_file(wh, path) == (1, 0) and ingest_file(wh, path) == (0, 1)


def test_runs_delete_takes_out_what_a_file_brought_and_keeps_the_audits_clean(tmp_path):
    db, csv = str(tmp_path / "w.duckdb"), tmp_path / "oops.csv"
    csv.write_text("dataset,model,params.k,metrics.accuracy\nd1,knn,3,0.9\nd1,knn,5,0.95\n")
    good = tmp_path / "good.csv"
    good.write_text("dataset,model,params.k,metrics.accuracy\nd1,knn,7,0.8\n")
    run = CliRunner()
    for path in (good, csv):
        assert run.invoke(main, ["--db", db, "ingest", str(path)]).exit_code == 0

    def rows(q: str) -> list:
        return json.loads(run.invoke(main, ["--db", db, "sql", q, "--format", "json"]).stdout)

    assert rows("SELECT value FROM incumbents WHERE metric = 'accuracy'") == [{"value": 0.95}]
    wrong = run.invoke(main, ["--db", db, "runs", "delete", "nosuch", "--yes"])
    assert wrong.exit_code == 1 and "nothing deleted" in wrong.output
    other = tmp_path / "other"  # another file of the same name is not taken with it
    other.mkdir()
    (other / "oops.csv").write_text("dataset,model,params.k,metrics.accuracy\nd1,knn,9,0.5\n")
    assert run.invoke(main, ["--db", db, "ingest", str(other / "oops.csv")]).exit_code == 0
    tag = f"ingest:{csv.resolve()}"
    asked = run.invoke(main, ["--db", db, "runs", "delete", "--source", tag], input="n\n")
    assert asked.exit_code == 1 and "delete 2 run(s)?" in asked.output
    assert len(rows("SELECT run_id FROM runs")) == 4  # declined: nothing deleted
    out = run.invoke(main, ["--db", db, "runs", "delete", "--source", tag, "-y"])
    assert out.exit_code == 0 and "deleted 2 run(s)" in out.output, out.output
    assert rows("SELECT count(*) AS n FROM run_params") == [{"n": 2}]
    assert rows("SELECT value FROM incumbents WHERE metric = 'accuracy'") == [{"value": 0.8}]
    assert run.invoke(main, ["--db", db, "check"]).exit_code == 0  # incumbents rebuilt
    again = run.invoke(main, ["--db", db, "ingest", str(csv)])  # and can come back
    assert "ingested 2 runs" in again.output


def test_ingest_curves_with_their_runs_then_more_points_and_runs_curves(tmp_path, tiny_history):
    db, runs, curves, more = (str(tmp_path / n) for n in ("c.duckdb", "r.csv", "c.csv", "m.csv"))
    tiny_history.to_csv(runs, index=False)  # with run ids r1..r7
    points = {"run_id": ["r1", "r1", "r2"], "metric": ["accuracy"] * 3, "step": [1, 2, 1]}
    pd.DataFrame(points | {"value": [0.5, 0.9, 0.4], "elapsed_s": [1.0, 2.0, 1.5]}).to_csv(
        curves, index=False
    )
    run = CliRunner()
    out = run.invoke(main, ["--db", db, "ingest", runs, "--curves", curves])
    assert out.exit_code == 0, out.output
    assert "ingested 7 runs" in out.output and "ingested 3 curve points" in out.output
    pd.DataFrame({"run_id": ["r2"], "metric": ["accuracy"], "step": [2], "value": [0.8]}).to_csv(
        more, index=False
    )
    out = run.invoke(main, ["--db", db, "ingest", "--curves", more])
    assert out.exit_code == 0 and "ingested 1 curve points" in out.output, out.output
    again = run.invoke(main, ["--db", db, "ingest", "--curves", more])
    assert again.exit_code == 1 and again.output.strip() == (
        "Error: log_curves: row 1: run 'r2' already has a point for metric 'accuracy' at step 2 "
        "in the warehouse"
    )
    shown = run.invoke(main, ["--db", db, "runs", "--curves", "--format", "json"])
    rows = json.loads(shown.output)
    assert [(r["run_id"], r["step"], r["value"]) for r in rows] == [
        ("r1", 1, 0.5),
        ("r1", 2, 0.9),
        ("r2", 1, 0.4),
        ("r2", 2, 0.8),
    ]
    one = run.invoke(main, ["--db", db, "runs", "--dataset", "d1", "--limit", "5", "--curves"])
    assert one.exit_code == 0 and "accuracy" in one.output
    nothing = run.invoke(main, ["--db", db, "ingest"])
    assert (
        nothing.exit_code == 2 and "give a FILE of runs, --curves FILE, or both" in nothing.output
    )


def test_ingest_with_bad_curves_writes_no_run(tmp_path, tiny_history):
    db, runs, curves = (str(tmp_path / n) for n in ("c.duckdb", "r.csv", "c.csv"))
    tiny_history.to_csv(runs, index=False)
    pd.DataFrame({"run_id": ["r1"], "metric": ["accuracy"], "step": [-1], "value": [0.5]}).to_csv(
        curves, index=False
    )
    out = CliRunner().invoke(main, ["--db", db, "ingest", runs, "--curves", curves])
    assert out.exit_code == 1 and out.output.strip() == (
        "Error: log_runs curves: row 1, column 'step': step -1 is negative (steps count from 0)"
    )
    query = "SELECT count(*) AS n FROM runs"
    count = CliRunner().invoke(main, ["--db", db, "sql", query, "--format", "json"])
    assert json.loads(count.output) == [{"n": 0}]
