"""Small typed reads of the warehouse's tables, for the search loop and the CLI.

Each function runs trusted SQL with bound parameters (user input is never formatted into
the text) and returns plain Python values or a small DataFrame, so nothing above the
warehouse writes SQL of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from warehouse.errors import ValidationError
from warehouse.ingest import guess_direction
from warehouse.query import where_equal

if TYPE_CHECKING:
    import pandas as pd

    from warehouse.store import Store

#: The ``runs`` columns the run filters below may test.
_RUN_FILTERS = ("dataset", "model", "status", "source", "seed")


def has_dataset(wh: Store, name: str) -> bool:
    """Whether ``name`` is a registered dataset, has runs (imported histories) or has
    meta-features."""
    rows = wh._read_df(
        "SELECT 1 FROM datasets WHERE name = $n UNION ALL "
        "SELECT 1 FROM (SELECT 1 FROM runs WHERE dataset = $n LIMIT 1) UNION ALL "
        "SELECT 1 FROM (SELECT 1 FROM dataset_meta_features WHERE dataset = $n LIMIT 1)",
        {"n": name},
    )
    return len(rows) > 0


def metric_direction(wh: Store, metric: str) -> str:
    """``'maximize'`` or ``'minimize'``: the direction registered for ``metric``, else the
    one its name suggests (:func:`warehouse.ingest.guess_direction`)."""
    rows = wh._read_df("SELECT direction FROM metrics WHERE name = ?", [metric])
    return str(rows["direction"].iloc[0]) if len(rows) else guess_direction(metric)


def dataset_names(wh: Store) -> list[str]:
    """Every dataset name the warehouse knows (registered, created by ingest, or with runs),
    sorted."""
    rows = wh._read_arrow(
        "SELECT name FROM datasets UNION SELECT DISTINCT dataset FROM runs ORDER BY 1"
    )
    return [str(n) for n in rows["name"].to_pylist()]


def model_names(wh: Store) -> list[str]:
    """The model families that have runs, sorted."""
    rows = wh._read_arrow("SELECT DISTINCT model FROM runs ORDER BY model")
    return [str(n) for n in rows["model"].to_pylist()]


def _runs_where(
    exclude: Sequence[str] | None = None, **filters: str | Sequence[str] | int | None
) -> tuple[str, list[Any]]:
    """`` WHERE …`` over ``runs`` for the filters given (None: not filtered; a list: any of
    them) and ``exclude`` (datasets left out)."""
    given = {k: v for k, v in filters.items() if v is not None}
    for key, value in given.items():
        if not isinstance(value, str | int):
            given[key] = [str(v) for v in value]
    where, args = where_equal(given, _RUN_FILTERS)
    if exclude is not None:
        if isinstance(exclude, str):
            raise ValidationError("exclude must be a list of dataset names, not a string")
        names = [str(d) for d in exclude]
        if names:
            marks = ", ".join("?" for _ in names)
            where += f"{' AND' if where else ' WHERE'} dataset NOT IN ({marks})"
            args += names
    return where, args


def count_runs(
    wh: Store,
    dataset: str | None = None,
    model: str | Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    status: str | None = None,
    source: str | None = None,
) -> int:
    """The number of runs matching every filter given: ``dataset``, ``model`` (a name or a
    list of names), ``status``, ``source``; ``exclude`` leaves those datasets out."""
    where, args = _runs_where(exclude, dataset=dataset, model=model, status=status, source=source)
    rows = wh._read_arrow(f"SELECT count(*) AS n FROM runs{where}", args)
    return int(rows["n"][0].as_py())


def trials(
    wh: Store,
    dataset: str,
    model: str | Sequence[str] | None = None,
    source: str | None = None,
) -> pd.DataFrame:
    """The runs on ``dataset`` (of ``model``, a name or a list; from ``source``), oldest
    first: columns ``run_id, model, status, seq``."""
    where, args = _runs_where(dataset=dataset, model=model, source=source)
    return wh._read_df(f"SELECT run_id, model, status, seq FROM runs{where} ORDER BY seq", args)


def _configs(wh: Store, runs_where: str, args: list[Any]) -> dict[int, dict[str, Any]]:
    """``{seq: {parameter: value}}`` for the runs selected by ``runs_where``, oldest first;
    values as stored: a float, a str, or None for a parameter logged as unset. A run
    without parameters gets ``{}``."""
    rows = wh._read_arrow(
        f"SELECT r.seq, p.name, p.value_num, p.value_text FROM (SELECT seq FROM runs"
        f"{runs_where}) AS r LEFT JOIN run_params AS p ON p.seq = r.seq ORDER BY r.seq, p.name",
        args,
    ).to_pylist()
    out: dict[int, dict[str, Any]] = {}
    for row in rows:
        config = out.setdefault(int(row["seq"]), {})
        if row["name"] is not None:
            text = row["value_text"]
            config[row["name"]] = row["value_num"] if text is None else text
    return out


def finished_configs(wh: Store, dataset: str, model: str) -> list[dict[str, Any]]:
    """The configuration of each finished run of ``model`` on ``dataset``, oldest first:
    ``{parameter: value}`` with values as stored (a float — booleans as 1.0/0.0 —, a str,
    or None for a parameter logged as unset); ``{}`` for a run without parameters."""
    where, args = _runs_where(dataset=dataset, model=model, status="finished")
    return list(_configs(wh, where, args).values())


def latest_run(
    wh: Store,
    dataset: str,
    model: str,
    source: str | None = None,
    seed: int | None = None,
    split: str = "test",
) -> dict[str, Any] | None:
    """The newest finished run of ``model`` on ``dataset`` (from ``source``, with ``seed``),
    or None: ``{"run_id", "seq", "params": {name: value as stored}, "metrics": {name: value
    on split}}``."""
    where, args = _runs_where(
        dataset=dataset,
        model=model,
        status="finished",
        source=source,
        seed=None if seed is None else int(seed),
    )
    found = wh._read_arrow(
        f"SELECT run_id, seq FROM runs{where} ORDER BY seq DESC LIMIT 1", args
    ).to_pylist()
    if not found:
        return None
    run_id, seq = str(found[0]["run_id"]), int(found[0]["seq"])
    metrics = wh._read_arrow(
        "SELECT name, value FROM run_metrics WHERE seq = ? AND split = ? ORDER BY name",
        [seq, split],
    ).to_pylist()
    return {
        "run_id": run_id,
        "seq": seq,
        "params": _configs(wh, " WHERE seq = ?", [seq])[seq],
        "metrics": {m["name"]: float(m["value"]) for m in metrics},
    }


def metric_counts(wh: Store, model: str | None = None) -> dict[str, int]:
    """``{metric: number of values logged}`` over every split, by the runs of ``model`` when
    given; the most logged first (ties by name)."""
    if model is None:
        query, args = "SELECT name, count(*) AS n FROM run_metrics GROUP BY name", []
    else:
        query = (
            "SELECT x.name, count(*) AS n FROM run_metrics AS x JOIN runs AS r "
            "ON r.seq = x.seq WHERE r.model = ? GROUP BY x.name"
        )
        args = [model]
    rows = wh._read_arrow(f"{query} ORDER BY n DESC, name", args).to_pylist()
    return {str(r["name"]): int(r["n"]) for r in rows}
