"""Export the warehouse as an open, engine-neutral folder: Parquet tables plus the views' SQL.

Layout written by :func:`export_warehouse` (``DIR``)::

    runs/dataset=<name>/*.parquet                 one row per run
    run_params/dataset=<name>/*.parquet           one row per run × parameter
    run_metrics/dataset=<name>/*.parquet          one row per run × metric × split
    run_architecture/dataset=<name>/*.parquet     one row per run × architecture descriptor
    run_curves/dataset=<name>/*.parquet           one row per run × metric × step (learning curves)
    dataset_meta_features/dataset=<name>/*.parquet one row per dataset × meta-feature
    datasets.parquet                              one row per dataset
    metrics.parquet                               one row per known metric (its direction)
    run_incumbents.parquet                        best run per dataset × model × metric × split
    meta_models.parquet                           fitted meta-models and their diagnostics
    recommendations.parquet                       recommendations made (with their meta-model)
    views/<view>.sql                              each view, transpiled to the chosen dialect
    manifest.json                                 row counts, schema version, dialect

The partitioned folders are Hive-style (``dataset=<name>``), which Spark, Trino/Presto,
DuckDB, pandas and pyarrow all read as a ``dataset`` column. The long tables keep ``seq`` (the
run's internal key) because the views join on it; register each folder as a table of the same
name and the exported view SQL runs unchanged.

The warehouse's own connection cannot write files (external access is disabled on purpose),
so the tables are read as Arrow and written by a scratch in-memory DuckDB with ``COPY …
(FORMAT parquet, PARTITION_BY (dataset))``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warehouse import sqlfiles
from warehouse.errors import ValidationError
from warehouse.store import MEMORY

if TYPE_CHECKING:
    from warehouse.store import Store

__all__ = ["PARTITIONED", "export_warehouse"]

# table → query (trusted SQL) giving its rows with a `dataset` column to partition on.
PARTITIONED: dict[str, str] = {
    "runs": "SELECT * FROM runs",
    "run_params": (
        "SELECT p.run_id, p.seq, p.name, p.value_num, p.value_text, r.dataset "
        "FROM run_params AS p JOIN runs AS r ON r.seq = p.seq"
    ),
    "run_metrics": (
        "SELECT m.run_id, m.seq, m.name, m.split, m.value, r.dataset "
        "FROM run_metrics AS m JOIN runs AS r ON r.seq = m.seq"
    ),
    "run_architecture": (
        "SELECT a.run_id, a.seq, a.name, a.value_num, a.value_text, r.dataset "
        "FROM run_architecture AS a JOIN runs AS r ON r.seq = a.seq"
    ),
    "run_curves": (
        "SELECT c.run_id, c.seq, c.metric, c.step, c.value, c.elapsed_s, r.dataset "
        "FROM run_curves AS c JOIN runs AS r ON r.seq = c.seq"
    ),
    "dataset_meta_features": "SELECT * FROM dataset_meta_features",
}
_SINGLE: dict[str, str] = {
    "datasets": "SELECT * FROM datasets ORDER BY name",
    "metrics": "SELECT * FROM metrics ORDER BY name",
    # the maintained table the incumbents view reads (a snapshot, consistent with the runs)
    "run_incumbents": "SELECT * FROM run_incumbents ORDER BY dataset, model, metric, split",
    # fitted meta-models and what they recommended (the family_predictions view reads both)
    "meta_models": "SELECT * FROM meta_models ORDER BY created_at, model_id",
    "recommendations": "SELECT * FROM recommendations ORDER BY created_at, rec_id",
}


def export_warehouse(
    wh: Store,
    directory: str | Path,
    dialect: str = "duckdb",
    overwrite: bool = False,
) -> dict[str, int]:
    """Write every table of ``wh`` as Parquet (partitioned by dataset) and each view's SQL
    transpiled to ``dialect`` into ``directory``; returns rows written per table.

    Refuses a non-empty ``directory`` unless ``overwrite``, and even then replaces only an
    earlier metaopt export (a folder with its ``manifest.json``) that does not hold the
    warehouse file itself. A new or replaced export is written to a temporary sibling folder
    (with the umask's permissions) and moved into place when complete; an existing empty
    folder is written in place. Either way a failure leaves ``directory`` as it was.
    """
    if dialect not in sqlfiles.DIALECTS:
        raise ValidationError(
            f"unknown dialect {dialect!r}; choose one of {', '.join(sqlfiles.DIALECTS)}"
        )
    out = Path(directory).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise ValidationError(f"export target {str(out)!r} is a file, not a folder")
    replace = out.is_dir() and any(out.iterdir())
    if replace:
        if not overwrite:
            raise ValidationError(
                f"export folder {str(out)!r} is not empty; pass --overwrite to replace it"
            )
        if not _is_export(out):
            raise ValidationError(
                f"export folder {str(out)!r} is not a metaopt export (no manifest.json); "
                "--overwrite replaces only an earlier export"
            )
        if wh.path != MEMORY and Path(wh.path).resolve().is_relative_to(out):
            raise ValidationError(
                f"export folder {str(out)!r} holds the warehouse {wh.path!r}; export elsewhere"
            )
    if out.is_dir() and not replace:  # an empty folder (a mount, shared permissions): in place
        try:
            return _write_export(wh, out, dialect)
        except BaseException:
            for child in out.iterdir():  # back to empty, as it was
                shutil.rmtree(child) if child.is_dir() else child.unlink()
            raise
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp's 0700 would hide the export from other users
    try:
        counts = _write_export(wh, tmp, dialect)
        if replace:
            old = tmp.with_suffix(".old")
            out.rename(old)
            try:
                tmp.rename(out)
            except BaseException:
                old.rename(out)  # the earlier export back in place
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return counts


def _is_export(folder: Path) -> bool:
    """Whether ``folder`` holds a metaopt export (its manifest names the format)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and str(manifest.get("format", "")).startswith(
        "metaopt-export/"
    )


def _write_export(wh: Store, out: Path, dialect: str) -> dict[str, int]:
    """The export's files, written into the existing empty folder ``out``."""
    import duckdb

    views = {
        name: sqlfiles.transpile(sqlfiles.view_sql(name), dialect) for name in sqlfiles.view_names()
    }
    counts: dict[str, int] = {}
    scratch = duckdb.connect(":memory:")
    try:
        for table, query in {**PARTITIONED, **_SINGLE}.items():
            arrow = wh._read_arrow(query)
            counts[table] = arrow.num_rows
            scratch.register("__export_src", arrow)
            target = out / table if table in PARTITIONED else out / f"{table}.parquet"
            if table in PARTITIONED:
                if arrow.num_rows == 0:
                    _write_empty(arrow, target)
                else:
                    scratch.execute(
                        "COPY (SELECT * FROM __export_src) TO ? "
                        "(FORMAT parquet, PARTITION_BY (dataset), OVERWRITE_OR_IGNORE)",
                        [str(target)],
                    )
            else:
                scratch.execute(
                    "COPY (SELECT * FROM __export_src) TO ? (FORMAT parquet)", [str(target)]
                )
            scratch.unregister("__export_src")
    finally:
        scratch.close()

    (out / "views").mkdir()
    for name, text in views.items():
        header = f"-- {name}: exported from metaopt, dialect {dialect}\n"
        (out / "views" / f"{name}.sql").write_text(header + text + "\n", "utf-8")
    manifest: dict[str, Any] = {
        "format": "metaopt-export/1",
        "schema_version": wh.schema_version,
        "dialect": dialect,
        "partitioned_by": "dataset",
        "tables": counts,
        "views": sorted(views),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    return counts


def _write_empty(arrow: Any, target: Path) -> None:
    """An empty table still gets a folder with one schema-only file, so readers find it."""
    import pyarrow.parquet as pq

    target.mkdir(parents=True, exist_ok=True)
    pq.write_table(arrow.drop_columns(["dataset"]), target / "empty.parquet")
