"""Upgrades: a warehouse written by each released schema version (``tests/fixtures``) opens with
the current code, migrates, and keeps its data; a newer file is refused clearly; a failed
migration leaves the file as it was."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import duckdb
import pytest

from tests.fixtures.make_fixtures import manifest
from tests.reliability._tally import TALLY
from warehouse import Warehouse, sqlfiles
from warehouse.errors import SchemaVersionError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RELEASED = sorted(FIXTURES.glob("warehouse_v*.duckdb"))


def _copy(src: Path, tmp_path: Path) -> Path:
    dest = tmp_path / src.name
    shutil.copy(src, dest)
    return dest


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_fixture_exists_for_the_current_schema():
    latest = sqlfiles.migrations()[-1].version
    assert FIXTURES / f"warehouse_v{latest}.duckdb" in RELEASED, (
        "run tests/fixtures/make_fixtures.py and commit the new fixture"
    )


@pytest.mark.parametrize("fixture", RELEASED, ids=[p.stem for p in RELEASED])
def test_released_warehouse_opens_migrates_and_keeps_its_data(fixture, tmp_path):
    before = _digest(fixture)
    expected = json.loads(fixture.with_suffix(".json").read_text())
    path = _copy(fixture, tmp_path)
    latest = sqlfiles.migrations()[-1].version
    with Warehouse(path) as wh:
        assert wh.schema_version == latest
        versions = wh.sql("SELECT version FROM metaopt_schema ORDER BY version").version.tolist()
        assert versions == list(range(1, latest + 1))
        got = json.loads(json.dumps(manifest(wh), default=str))
        for key in ("runs", "run_metrics", "run_params", "dataset_meta_features"):
            assert got[key] == expected[key], key
        assert got["run_curves"] == expected.get("run_curves", []), "run_curves"
        assert wh.check().ok.all()
        assert len(wh.view("run_features")) == len(expected["runs"])
        wh.log_run("d1", "rf", {"max_depth": 2}, {"accuracy": 0.5})  # still writable
        assert wh.check().ok.all()  # tables added by migrations are maintained from here on
    with Warehouse(path, read_only=True) as wh:
        assert int(wh.sql("SELECT count(*) AS n FROM runs").n[0]) == len(expected["runs"]) + 1
    assert _digest(fixture) == before  # the committed fixture itself is never touched
    TALLY["released schema fixtures upgraded"] += 1


def _with_extra_migration(monkeypatch, sql: str) -> None:
    real = sqlfiles.migrations()
    extra = sqlfiles.Migration(real[-1].version + 1, "test_upgrade", sql)
    monkeypatch.setattr(sqlfiles, "migrations", lambda: [*real, extra])


def test_pending_migration_is_applied_with_data_intact(monkeypatch, tmp_path):
    """Simulates the next release: a new migration runs once on an old file."""
    path = _copy(RELEASED[-1], tmp_path)
    old = sqlfiles.migrations()[-1].version
    with Warehouse(path) as wh:
        before = manifest(wh)
    _with_extra_migration(monkeypatch, "ALTER TABLE runs ADD COLUMN note VARCHAR;")
    with pytest.raises(SchemaVersionError, match="open it read-write once"):
        Warehouse(path, read_only=True)
    with Warehouse(path) as wh:
        assert wh.schema_version == old + 1
        after = manifest(wh)
        assert {k: v for k, v in after.items() if k != "schema_version"} == {
            k: v for k, v in before.items() if k != "schema_version"
        }
        assert "note" in wh.sql("SELECT * FROM runs LIMIT 0").columns
    monkeypatch.undo()
    # the migrated file is now newer than this code: refused, one line, no change
    with pytest.raises(SchemaVersionError, match="newer metaopt") as info:
        Warehouse(path)
    assert "\n" not in str(info.value)


def test_failed_migration_leaves_the_file_as_it_was(monkeypatch, tmp_path):
    path = _copy(RELEASED[-1], tmp_path)
    with Warehouse(path) as wh:
        before = manifest(wh)
    _with_extra_migration(
        monkeypatch, "ALTER TABLE runs ADD COLUMN note VARCHAR; SELECT * FROM no_such_table;"
    )
    with pytest.raises(SchemaVersionError, match=r"migration \d{4}_test_upgrade failed"):
        Warehouse(path)
    monkeypatch.undo()
    with Warehouse(path) as wh:
        assert wh.schema_version == before["schema_version"]
        assert manifest(wh) == before
        assert "note" not in wh.sql("SELECT * FROM runs LIMIT 0").columns


def test_newer_schema_version_is_refused(tmp_path):
    path = _copy(RELEASED[-1], tmp_path)
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO metaopt_schema (version, name) VALUES (99, 'future')")
    con.close()
    for read_only in (False, True):
        with pytest.raises(SchemaVersionError, match=r"schema version 99.*upgrade metaopt"):
            Warehouse(path, read_only=read_only)


@pytest.mark.parametrize(
    "fixture",
    [p for p in RELEASED if int(p.stem.rsplit("_v", 1)[1]) < 3],
    ids=lambda p: p.stem,
)
def test_old_run_sources_are_rewritten_on_upgrade(fixture, tmp_path):
    """0003_run_sources: a file written before it has its runs' sources in one spelling."""
    from warehouse import sources

    path = _copy(fixture, tmp_path)
    kept = ["ingest:/data/runs.csv", "mlflow:iris-exp", "optuna:s1", "my-notebook", None]
    written = [*sources.OLD_SPELLINGS, *kept]
    con = duckdb.connect(str(path))
    seq = con.execute("SELECT max(seq) FROM runs").fetchall()[0][0]
    for i, source in enumerate(written, 1):
        con.execute(
            "INSERT INTO runs (run_id, dataset, model, source, seq) VALUES (?, 'd1', 'rf', ?, ?)",
            [f"old{i}", source, seq + i],
        )
    con.close()
    with Warehouse(path) as wh:
        rows = wh.sql("SELECT run_id, source FROM runs WHERE starts_with(run_id, 'old')")
    pairs = zip(rows.run_id, rows.source, strict=True)
    got = {run_id: s if isinstance(s, str) else None for run_id, s in pairs}
    expected = [*sources.OLD_SPELLINGS.values(), *kept]
    assert got == {f"old{i}": s for i, s in enumerate(expected, 1)}
    assert set(sources.OLD_SPELLINGS.values()) == {
        sources.SWEEP,
        sources.OPTIMIZE,
        sources.FINAL,
        sources.EXAMPLE,
        sources.TRAIN,
    }
