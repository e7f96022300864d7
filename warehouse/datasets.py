"""Register datasets: load, hash, compute meta-features, store everything in one transaction.

Sources accepted by :func:`register_dataset`:

* a pandas DataFrame;
* a path to a CSV (``.csv``, ``.csv.gz``), TSV (``.tsv``, ``.tsv.gz``, ``.tab``) or Parquet
  (``.parquet``, ``.pq``) file;
* ``sklearn:<name>`` for the datasets bundled with scikit-learn (:data:`SKLEARN_DATASETS`:
  iris, wine, breast_cancer, digits, diabetes — no download needed).

A content hash (SHA-256 over the column names, dtypes, target and every cell) makes
registering the same data again a no-op, and registering different data under a taken name
an error. A dataset first seen by run ingest (name only) is completed in place.

Storage: the registered table itself is kept *inside* the warehouse, as table
``dataset_data."<name>"`` (a schema of its own, so user SQL over the ``main`` schema never
sees it). It is written in the same transaction as the ``datasets`` row and the meta-features,
travels with the warehouse file, works for in-memory warehouses, and DuckDB compresses it
columnar. :func:`load_dataset_frame` reads it back for the trainer.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from warehouse.errors import NotFoundError, ValidationError, one_line

if TYPE_CHECKING:
    from warehouse.store import Store

DATA_SCHEMA = "dataset_data"

#: Bundled scikit-learn datasets: spec name → (loader function, task).
SKLEARN_DATASETS: dict[str, tuple[str, str]] = {
    "iris": ("load_iris", "classification"),
    "wine": ("load_wine", "classification"),
    "breast_cancer": ("load_breast_cancer", "classification"),
    "digits": ("load_digits", "classification"),
    "diabetes": ("load_diabetes", "regression"),
}

#: An integer target with at most this many distinct values is taken as class labels.
MAX_CLASSES_INFERRED = 20


def load_data(spec: Any, target: str | None = None) -> tuple[pd.DataFrame, str, str, str | None]:
    """Load ``spec`` into a DataFrame. Returns ``(frame, default_name, source, task_hint)``."""
    if isinstance(spec, pd.DataFrame):
        return spec.copy(), "", "dataframe", None
    if isinstance(spec, str) and spec.startswith("sklearn:"):
        key = spec.split(":", 1)[1].strip().lower()
        if key not in SKLEARN_DATASETS:
            raise NotFoundError(
                f"unknown bundled dataset {spec!r}; available: "
                + ", ".join(f"sklearn:{k}" for k in SKLEARN_DATASETS)
            )
        import sklearn.datasets

        loader, task = SKLEARN_DATASETS[key]
        bunch = getattr(sklearn.datasets, loader)(as_frame=True)
        frame = bunch.frame.copy()
        frame.columns = [str(c) for c in frame.columns]
        return frame, key, spec, task
    if not isinstance(spec, str | Path):
        raise ValidationError(
            f"data must be a DataFrame, a file path or 'sklearn:<name>', not {type(spec).__name__}"
        )
    path = Path(spec)
    if path.is_dir():
        raise ValidationError(f"{str(path)!r} is a folder, not a data file (CSV, TSV or Parquet)")
    if not path.is_file():
        raise NotFoundError(f"data file {str(path)!r} does not exist")
    name = path.name.lower()
    stem = path.name
    for ext in (".csv.gz", ".tsv.gz", ".csv", ".tsv", ".tab", ".parquet", ".pq", ".gz"):
        if name.endswith(ext):
            stem = path.name[: -len(ext)]
            break
    try:
        if name.endswith((".parquet", ".pq")):
            frame = pd.read_parquet(path)
        elif name.endswith((".tsv", ".tsv.gz", ".tab")):
            frame = pd.read_csv(path, sep="\t")
        elif name.endswith((".csv", ".csv.gz")):
            frame = pd.read_csv(path)
        else:
            raise ValidationError(
                f"cannot tell the format of {path.name!r}: use .csv, .tsv(.gz) or .parquet"
            )
    except ValidationError:
        raise
    except Exception as exc:  # parser errors → one line naming the file
        first = one_line(exc)
        raise ValidationError(f"cannot read {path.name!r}: {first}") from None
    return frame, stem, str(path.resolve()), None


def infer_task(y: pd.Series) -> str:
    """``classification`` for text/boolean targets or integers with ≤ 20 distinct values,
    else ``regression``."""
    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return "classification"
    values = y.dropna().to_numpy(dtype=float)
    integral = np.all(np.mod(values, 1) == 0)
    if integral and len(np.unique(values)) <= MAX_CLASSES_INFERRED:
        return "classification"
    return "regression"


def content_hash(frame: pd.DataFrame, target: str) -> str:
    """SHA-256 of column names, dtypes, target name and every cell (row order matters)."""
    h = hashlib.sha256()
    h.update(repr((list(map(str, frame.columns)), [str(t) for t in frame.dtypes], target)).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


def _validate_frame(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    frame.columns = [str(c) for c in frame.columns]
    dup = frame.columns[frame.columns.duplicated()].tolist()
    if dup:
        raise ValidationError(f"column {dup[0]!r} appears more than once")
    if target not in frame.columns:
        raise ValidationError(
            f"target column {target!r} is not in the data (columns: "
            + ", ".join(map(str, frame.columns[:10]))
            + (", …" if frame.shape[1] > 10 else "")
            + ")"
        )
    if frame.shape[1] < 2:
        raise ValidationError("the data has no feature columns besides the target")
    if len(frame) < 2:
        raise ValidationError(f"the data has {len(frame)} row(s); at least 2 are needed")
    return frame.reset_index(drop=True)


def _data_table(name: str) -> str:
    from sqlglot import exp

    return exp.table_(name, db=DATA_SCHEMA, quoted=True).sql("duckdb")


def register_dataset(
    wh: Store,
    name: str | None,
    data: Any,
    target: str,
    task: str | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """Register ``data`` as dataset ``name`` in warehouse ``wh`` and compute its meta-features.

    Returns a summary dict: name, task, target, n_rows, n_features, n_classes,
    content_hash, created (False when the identical data was already registered),
    n_meta_features, compute_s. All-or-nothing: a failure stores nothing.
    """
    from warehouse.metafeatures import compute_meta_features

    frame, default_name, default_source, task_hint = load_data(data, target)
    name = default_name if name is None else name
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("a dataset needs a name (pass name=... / --name)")
    name = name.strip()
    if not isinstance(target, str) or not target:
        raise ValidationError("a dataset needs a target column (pass target=... / --target)")
    frame = _validate_frame(frame, target)
    if task is None:
        task = task_hint or infer_task(frame[target])
    if task not in ("classification", "regression"):
        raise ValidationError(f"task must be 'classification' or 'regression', not {task!r}")
    if frame[target].isna().any():
        row = int(np.flatnonzero(frame[target].isna().to_numpy())[0])
        raise ValidationError(f"target column {target!r} is missing in row {row}")
    if task == "regression" and not pd.api.types.is_numeric_dtype(frame[target]):
        raise ValidationError(f"regression target {target!r} is not numeric")
    if task == "classification" and frame[target].nunique() < 2:
        raise ValidationError(
            f"classification target {target!r} has a single class "
            f"({frame[target].iloc[0]!r}); at least 2 are needed"
        )
    digest = content_hash(frame, target)

    existing = wh._read_df(
        "SELECT name, task, target, content_hash FROM datasets WHERE name = ?", [name]
    )
    if len(existing) and existing["content_hash"].notna().iloc[0]:
        row = existing.iloc[0]
        if row["content_hash"] != digest:
            raise ValidationError(
                f"dataset {name!r} is already registered with different data; choose another name"
            )
        if row["task"] != task:
            raise ValidationError(
                f"dataset {name!r} is already registered as {row['task']}, not {task}"
            )
        return {**_summary(wh, name), "created": False}

    t0 = time.perf_counter()
    mf = compute_meta_features(frame, target, task)
    compute_s = time.perf_counter() - t0
    n_classes = int(frame[target].nunique()) if task == "classification" else None
    record = {
        "task": task,
        "target": target,
        "source": source or default_source,
        "n_rows": len(frame),
        "n_features": frame.shape[1] - 1,
        "n_classes": n_classes,
        "content_hash": digest,
    }
    mf_rows = mf.assign(dataset=name)[["dataset", "name", "value", "method", "compute_s"]]
    table = _data_table(name)
    used: list[Any] = []
    try:
        with wh._transaction() as con:
            used.append(con)
            if len(existing):  # created by ingest with the name only: complete it in place
                con.execute(
                    "UPDATE datasets SET task = ?, target = ?, source = ?, n_rows = ?, "
                    "n_features = ?, n_classes = ?, content_hash = ? WHERE name = ?",
                    [*record.values(), name],
                )
            else:
                con.execute(
                    "INSERT INTO datasets (name, task, target, source, n_rows, n_features, "
                    "n_classes, content_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [name, *record.values()],
                )
            con.register("_metaopt_mf", mf_rows)
            con.register("_metaopt_data", frame)
            con.execute(
                "DELETE FROM dataset_meta_features WHERE dataset = ? AND name IN "
                "(SELECT name FROM _metaopt_mf)",
                [name],
            )
            con.execute(
                "INSERT INTO dataset_meta_features (dataset, name, value, method, compute_s) "
                "SELECT dataset, name, value, method, compute_s FROM _metaopt_mf"
            )
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {DATA_SCHEMA}")
            con.execute(f"DROP TABLE IF EXISTS {table}")
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM _metaopt_data")
    finally:
        for con in used:  # after commit/rollback: drop the temporary registrations
            for view in ("_metaopt_mf", "_metaopt_data"):
                with contextlib.suppress(Exception):
                    con.unregister(view)
    return {
        "name": name,
        **record,
        "created": True,
        "n_meta_features": len(mf),
        "compute_s": compute_s,
    }


def _summary(wh: Store, name: str) -> dict[str, Any]:
    df = wh._read_df(
        "SELECT d.name, d.task, d.target, d.source, d.n_rows, d.n_features, d.n_classes, "
        "d.content_hash, (SELECT count(*) FROM dataset_meta_features m "
        "WHERE m.dataset = d.name) AS n_meta_features FROM datasets d WHERE d.name = ?",
        [name],
    )
    if not len(df):
        raise NotFoundError(f"dataset {name!r} is not registered")
    rec = df.iloc[0].to_dict()
    return {k: (None if _isna(v) else _py(v)) for k, v in rec.items()}


def _isna(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def dataset_info(wh: Store, name: str) -> dict[str, Any]:
    """The ``datasets`` row of ``name`` plus its number of meta-features (None for what is
    not known); :class:`NotFoundError` when the warehouse has no dataset ``name``."""
    return _summary(wh, name)


def dataset_task(wh: Store, name: str) -> str | None:
    """``'classification'`` or ``'regression'``: the task ``name`` was registered with;
    None for an unknown dataset or one created by run ingest (name only)."""
    rows = wh._read_arrow("SELECT task FROM datasets WHERE name = ?", [name])["task"]
    task = rows[0].as_py() if len(rows) else None
    return None if task is None else str(task)


def list_datasets(wh: Store, meta_features: tuple[str, ...] | None = None) -> pd.DataFrame:
    """One row per dataset with its key meta-features as columns."""
    from warehouse.metafeatures import KEY_META_FEATURES

    keys = list(meta_features or KEY_META_FEATURES)
    base = wh._read_df(
        "SELECT name, task, n_rows, n_features, n_classes, "
        "(SELECT count(*) FROM runs r WHERE r.dataset = d.name) AS n_runs "
        "FROM datasets d ORDER BY name"
    )
    mf = wh._read_df(
        "SELECT dataset, name, value FROM dataset_meta_features WHERE list_contains(?, name)",
        [keys],
    )
    if len(mf):
        wide = mf.pivot_table(index="dataset", columns="name", values="value", aggfunc="first")
        cols = [k for k in keys if k in wide.columns and k not in base.columns]
        base = base.merge(wide[cols], left_on="name", right_index=True, how="left")
    return base.astype(object).where(base.notna(), None)


def meta_feature_table(wh: Store, name: str) -> pd.DataFrame:
    """Every meta-feature of dataset ``name`` (long form: name, value, method, compute_s)."""
    _summary(wh, name)  # NotFoundError for an unknown dataset
    return wh._read_df(
        "SELECT name, value, method, compute_s FROM dataset_meta_features WHERE dataset = ? "
        "ORDER BY method, name",
        [name],
    )


def load_dataset_frame(wh: Store, name: str) -> tuple[pd.DataFrame, str, str]:
    """The stored table of a registered dataset: ``(frame, target, task)``."""
    info = wh._read_df("SELECT task, target, content_hash FROM datasets WHERE name = ?", [name])
    if not len(info):
        raise NotFoundError(f"dataset {name!r} is not registered (see `metaopt datasets`)")
    row = info.iloc[0]
    if _isna(row["content_hash"]) or _isna(row["target"]):
        raise NotFoundError(
            f"dataset {name!r} has no stored data (it was created by run ingest); "
            "register it with `metaopt datasets add`"
        )
    frame = wh._read_df(f"SELECT * FROM {_data_table(name)}")
    return frame, str(row["target"]), str(row["task"])


__all__: list[str] = [
    "SKLEARN_DATASETS",
    "content_hash",
    "dataset_info",
    "dataset_task",
    "infer_task",
    "list_datasets",
    "load_data",
    "load_dataset_frame",
    "meta_feature_table",
    "register_dataset",
]
