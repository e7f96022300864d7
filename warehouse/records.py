"""Rows the meta-learner writes about itself: fitted meta-models and recommendations.

Each write is one transaction; dict values (``config``, ``diagnostics``) are stored as JSON.
:func:`meta_models` reads the fits back.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from warehouse.errors import ValidationError
from warehouse.sqlfiles import quote_ident as _qi

if TYPE_CHECKING:
    import pandas as pd

    from warehouse.store import Store


def _table_columns(con: Any, table: str) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "SELECT column_name FROM duckdb_columns() "
            "WHERE table_name = ? AND schema_name = 'main' "
            "ORDER BY column_index",
            [table],
        ).fetchall()
    ]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=_json_default, sort_keys=True)
    return value


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def record_meta_model(wh: Store, **row: Any) -> str:
    """Insert one ``meta_models`` row; ``config``/``diagnostics`` dicts become JSON. Returns
    ``model_id`` (generated when absent)."""
    with wh._transaction() as con:
        columns = _table_columns(con, "meta_models")
        unknown = sorted(set(row) - set(columns))
        if unknown:
            raise ValidationError(f"record_meta_model: unknown column {unknown[0]!r}")
        row = dict(row)
        row.setdefault("model_id", uuid.uuid4().hex)
        names = list(row)
        con.execute(
            f"INSERT INTO meta_models ({', '.join(_qi(n) for n in names)}) "
            f"VALUES ({', '.join('?' for _ in names)})",
            [_jsonable(row[n]) for n in names],
        )
    return str(row["model_id"])


def record_recommendations(wh: Store, df: pd.DataFrame) -> list[str]:
    """Insert recommendations (columns of the ``recommendations`` table; ``config`` may hold
    dicts). Returns their ``rec_id`` values (generated when absent). All or nothing."""
    import pandas as pd

    if not isinstance(df, pd.DataFrame) or df.empty:
        raise ValidationError("record_recommendations expects a non-empty DataFrame")
    df = df.reset_index(drop=True).copy()
    if "rec_id" not in df.columns:
        df["rec_id"] = [uuid.uuid4().hex for _ in range(len(df))]
    if "config" in df.columns:
        df["config"] = df["config"].map(_jsonable)
    with wh._transaction() as con:
        columns = _table_columns(con, "recommendations")
        unknown = sorted(set(df.columns) - set(columns))
        if unknown:
            raise ValidationError(f"record_recommendations: unknown column {unknown[0]!r}")
        con.execute(
            "INSERT INTO datasets (name, source) SELECT DISTINCT d, 'ingest' FROM "
            "(SELECT unnest(?::VARCHAR[])) AS t(d) WHERE d NOT IN (SELECT name FROM datasets)",
            [sorted({str(d) for d in df["dataset"].dropna()})] if "dataset" in df.columns else [[]],
        )
        src = f"__metaopt_rec_{uuid.uuid4().hex[:12]}"
        con.register(src, df)
        try:
            names = list(df.columns)
            con.execute(
                f"INSERT INTO recommendations ({', '.join(_qi(n) for n in names)}) "
                f"SELECT {', '.join(_qi(n) for n in names)} FROM {src}"
            )
        finally:
            con.unregister(src)
    return [str(x) for x in df["rec_id"]]


def meta_models(
    wh: Store,
    metric: str | None = None,
    model_family: str | None = None,
    id_prefix: str | None = None,
    saved_only: bool = False,
    settings_hash: str | None = None,
) -> pd.DataFrame:
    """The recorded meta-model fits, newest first, with every ``meta_models`` column: those
    for ``metric`` and ``model_family`` when given, whose ``model_id`` starts with
    ``id_prefix``, (``saved_only``) that were saved to a file (``path`` set), and whose
    ``settings_hash`` (the fingerprint of their settings, metaopt_bayes/reuse.py) is the one
    given."""
    clauses: list[str] = []
    args: list[Any] = []
    for clause, value in (
        ("metric = ?", metric),
        ("model_family = ?", model_family),
        ("starts_with(model_id, ?)", id_prefix),
        ("settings_hash = ?", settings_hash),
    ):
        if value is not None:
            clauses.append(clause)
            args.append(str(value))
    if saved_only:
        clauses.append("path IS NOT NULL")
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    return wh._read_df(f"SELECT * FROM meta_models{where} ORDER BY created_at DESC", args)
