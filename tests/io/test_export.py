"""Export: Parquet partitioned by dataset that other engines read back, plus the views' SQL."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.dataset as pads
import pytest
import sqlglot

from warehouse.errors import ValidationError
from warehouse.export import export_warehouse


def test_export_writes_partitioned_parquet_with_all_rows(wh_seeded, tmp_path: Path):
    out = tmp_path / "exp"
    counts = export_warehouse(wh_seeded, out, dialect="spark")
    expected = {
        t: int(wh_seeded.sql(f"SELECT count(*) AS n FROM {t}")["n"][0])
        for t in ("runs", "run_params", "run_metrics", "dataset_meta_features", "datasets")
    }
    for table, n in expected.items():
        assert counts[table] == n
        path = out / table if table != "datasets" else out / "datasets.parquet"
        assert len(pd.read_parquet(path)) == n, table
    # Hive partitions: one folder per dataset, read back as a `dataset` column by pyarrow.
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["dataset=d1", "dataset=d2"]
    runs = pads.dataset(out / "runs", partitioning="hive").to_table().to_pandas()
    assert runs.groupby("dataset").size().to_dict() == {"d1": 4, "d2": 3}
    params = pd.read_parquet(out / "run_params")
    r1 = params[params.run_id == "r1"].set_index("name")
    assert r1.loc["max_depth", "value_num"] == 3 and r1.loc["criterion", "value_text"] == "gini"
    assert str(r1["dataset"].iloc[0]) == "d1"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dialect"] == "spark" and manifest["tables"]["runs"] == 7
    # Each view is exported, in Spark SQL that Spark's parser (sqlglot's) accepts.
    for name in ("incumbents", "leaderboard", "run_features", "training_matrix"):
        text = (out / "views" / f"{name}.sql").read_text()
        assert sqlglot.parse(text, read="spark")


def test_exported_tables_and_views_reproduce_the_warehouse(wh_seeded, tmp_path: Path):
    """Register the Parquet folders as tables in a fresh engine, run the exported view SQL:
    the incumbents match the warehouse's own."""
    out = tmp_path / "exp"
    export_warehouse(wh_seeded, out, dialect="duckdb")
    con = duckdb.connect()
    for table in ("runs", "run_params", "run_metrics", "run_architecture"):
        con.execute(
            f"CREATE TABLE {table} AS SELECT * FROM read_parquet(?, hive_partitioning = true)",
            [str(out / table / "**" / "*.parquet")],
        )
    for table in ("metrics", "run_incumbents"):
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM '{out / f'{table}.parquet'}'")
    con.execute((out / "views" / "incumbents.sql").read_text())
    cols = "dataset, model, metric, run_id, value"
    got = con.sql(f"SELECT {cols} FROM incumbents ORDER BY ALL").df()
    want = wh_seeded.sql(f"SELECT {cols} FROM incumbents ORDER BY ALL")
    pd.testing.assert_frame_equal(got.astype(str), want.astype(str))


def test_every_exported_view_runs_on_the_exported_tables(wh_seeded, tmp_path: Path):
    out = tmp_path / "exp"
    counts = export_warehouse(wh_seeded, out, dialect="duckdb")
    con = duckdb.connect()
    for table in counts:
        folder = out / table
        src = str(folder / "**" / "*.parquet") if folder.is_dir() else str(out / f"{table}.parquet")
        con.execute(
            f"CREATE TABLE {table} AS SELECT * FROM read_parquet(?, hive_partitioning = true)",
            [src],
        )
    views = sorted((out / "views").glob("*.sql"))
    assert {"family_predictions.sql", "incumbents.sql"} <= {v.name for v in views}
    for view in views:  # in file order: a view may read one defined before it
        con.execute(view.read_text())
    for view in views:
        name = view.stem
        got = con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
        assert got == int(wh_seeded.sql(f"SELECT count(*) AS n FROM {name}")["n"][0]), name


def test_export_refuses_non_empty_folder_and_unknown_dialect(wh_seeded, tmp_path: Path):
    out = tmp_path / "exp"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(ValidationError, match="is not empty; pass --overwrite"):
        export_warehouse(wh_seeded, out)
    assert (out / "keep.txt").exists()
    with pytest.raises(ValidationError, match="unknown dialect 'cobol'"):
        export_warehouse(wh_seeded, tmp_path / "other", dialect="cobol")
    with pytest.raises(ValidationError, match="is not a metaopt export"):
        export_warehouse(wh_seeded, out, overwrite=True)
    assert (out / "keep.txt").read_text() == "x"


def test_export_overwrite_replaces_only_an_earlier_export(wh_seeded, tmp_path: Path):
    out = tmp_path / "exp"
    export_warehouse(wh_seeded, out)
    (out / "stale.txt").write_text("from the earlier export")
    counts = export_warehouse(wh_seeded, out, overwrite=True)
    assert counts["runs"] == 7 and not (out / "stale.txt").exists()
    assert json.loads((out / "manifest.json").read_text())["tables"]["runs"] == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]  # no temporary folder left


def test_export_never_replaces_the_folder_holding_the_warehouse(tmp_path: Path):
    from warehouse import Warehouse

    with Warehouse(tmp_path / "wh.duckdb") as wh:
        (tmp_path / "manifest.json").write_text(json.dumps({"format": "metaopt-export/1"}))
        with pytest.raises(ValidationError, match="holds the warehouse"):
            export_warehouse(wh, tmp_path, overwrite=True)
        assert (tmp_path / "wh.duckdb").exists()


def test_failed_export_leaves_the_earlier_one_in_place(wh_seeded, tmp_path: Path, monkeypatch):
    import warehouse.export as export

    out = tmp_path / "exp"
    export_warehouse(wh_seeded, out)
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export, "_write_empty", broken)
    monkeypatch.setattr(export, "PARTITIONED", {"runs": "SELECT * FROM runs WHERE false"})
    with pytest.raises(OSError, match="disk full"):
        export_warehouse(wh_seeded, out, overwrite=True)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]


def test_export_of_empty_warehouse_is_readable(wh_memory, tmp_path: Path):
    counts = export_warehouse(wh_memory, tmp_path / "exp")
    assert counts["runs"] == 0
    assert len(pd.read_parquet(tmp_path / "exp" / "runs")) == 0


def test_export_keeps_the_umask_permissions_and_writes_an_empty_folder_in_place(
    wh_seeded, tmp_path: Path
):
    import os
    import stat

    new = tmp_path / "new"
    export_warehouse(wh_seeded, new)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o777 & ~umask
    empty = tmp_path / "empty"
    empty.mkdir()
    inode = empty.stat().st_ino
    export_warehouse(wh_seeded, empty)
    assert empty.stat().st_ino == inode and (empty / "manifest.json").exists()


def test_a_failed_swap_puts_the_earlier_export_back(wh_seeded, tmp_path: Path, monkeypatch):
    out = tmp_path / "exp"
    export_warehouse(wh_seeded, out)
    real_rename = Path.rename

    def rename(self, target):
        if str(self).endswith(".partial"):
            raise OSError("cross-device link")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError, match="cross-device"):
        export_warehouse(wh_seeded, out, overwrite=True)
    assert (out / "manifest.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]
