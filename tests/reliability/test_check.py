"""``metaopt check``: integrity problems injected behind metaopt's back (a raw DuckDB
connection) are reported by name with an example row, and the exit code is 1."""

from __future__ import annotations

import duckdb
import pytest
from click.testing import CliRunner

from metaopt_bayes.cli import main
from tests.conftest import tiny_history_frame
from tests.reliability._tally import TALLY
from warehouse import Warehouse

INJECTIONS = {
    "orphan_run_metrics": (
        "INSERT INTO run_metrics (run_id, name, split, value, seq) "
        "VALUES ('ghost_run', 'accuracy', 'valid', 0.5, 999)"
    ),
    "runs_without_dataset": "UPDATE runs SET dataset = 'vanished' WHERE run_id = 'r1'",
    "metric_out_of_range": "UPDATE run_metrics SET value = 1.7 WHERE run_id = 'r2' "
    "AND name = 'accuracy'",
    "run_finished_before_started": "UPDATE runs SET started_at = TIMESTAMP '2024-01-02', "
    "finished_at = TIMESTAMP '2024-01-01' WHERE run_id = 'r3'",
    "duplicate_run_params": "INSERT INTO run_params SELECT * FROM run_params "
    "WHERE run_id = 'r4' LIMIT 1",
    "orphan_run_params": "INSERT INTO run_params (run_id, name, value_num, seq) "
    "VALUES ('nobody', 'depth', 3, 998)",
}


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "check.duckdb"
    with Warehouse(path) as wh:
        wh.log_runs(tiny_history_frame())
    return path


def test_clean_warehouse_passes(db):
    result = CliRunner().invoke(main, ["--db", str(db), "check", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert "integrity_tables" in result.output and "false" not in result.output


@pytest.mark.parametrize("audit", sorted(INJECTIONS))
def test_injected_problem_is_reported(db, audit):
    con = duckdb.connect(str(db))
    con.execute(INJECTIONS[audit])
    con.close()
    result = CliRunner().invoke(main, ["--db", str(db), "check", "--format", "csv"])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    row = next(line for line in lines if line.startswith(audit + ","))
    assert ",False," in row and not row.endswith(",")  # failing, with an example row
    assert f"failing row(s) in {audit}:" in result.output
    error = [line for line in lines if line.startswith("Error:")]
    assert len(error) == 1 and error[0].startswith("Error: audits failed:") and audit in error[0]
    TALLY["check: injected problems reported"] += 1


def test_broken_view_is_reported(db):
    con = duckdb.connect(str(db))
    con.execute("ALTER TABLE runs RENAME COLUMN duration_s TO dur")
    con.close()
    with Warehouse(db, read_only=True) as wh:
        report = wh.check().set_index("audit")
    assert not report.loc["integrity_views", "ok"]
    assert "run_features" in report.loc["integrity_views", "example"]
