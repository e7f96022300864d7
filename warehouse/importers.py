"""Bring existing history into the warehouse: MLflow tracking stores and Optuna studies.

Both importers read the foreign store through its own Python API (``mlflow``/``optuna`` are
optional dependencies, imported lazily) and write through :func:`warehouse.ingest.log_runs`,
so the usual validation applies and a failed import writes nothing.

Idempotent: every imported run gets a stable id derived from the source (``mlflow:<run_id>``,
``optuna:<study>:<trial number>``). Ids already in the warehouse are skipped, so importing
the same store twice adds nothing and a later import adds only the new runs.

Mapping choices (see docs/import_export.md):

* MLflow: ``dataset``/``model`` come from ``--dataset``/``--model`` when given, else from the
  run's tag (``dataset_tag``/``model_tag``, default ``dataset``/``model``), else from a
  parameter of that name (which is then not stored as a parameter). A run without a dataset
  falls back to its experiment's name; a run without a model is an error naming the run.
  Parameters are text in MLflow: ``log_runs`` types them back per value (numbers, ``true``/
  ``false`` → 1/0, ``None`` → unset). Metrics keep MLflow's latest value per key (non-finite
  values are dropped). Status FINISHED → finished, FAILED/KILLED → failed; RUNNING and
  SCHEDULED runs are skipped (they are not done yet; a later import picks them up).
  ``duration_s`` = end − start. Tags listed in ``include_tags`` are stored as parameters
  ``tag.<name>``; other tags are not stored (the warehouse has no tags table). Every metric's
  full history (each step MLflow logged; a SQLite store's ``metrics`` table is read in one
  query) becomes the run's learning curve in ``run_curves``: one point per (metric, step) —
  the last one logged at that step, as MLflow's own latest value does — with ``elapsed_s`` =
  its timestamp − the run's start time (the run's first timestamp when the start is
  unknown; never below 0). NaN and infinite values are dropped.
* Optuna: COMPLETE → finished with the objective value(s) as metric(s); FAIL → failed;
  PRUNED → ``pruned`` (the trial never reached its final value, so, like a failed run, the
  meta-learner does not train on it); RUNNING/WAITING → skipped. A single objective is
  stored as metric ``value`` (or ``metric``), several as ``value_0, value_1, …``; each metric
  is registered with the study's direction, and an existing metric of that name with the
  opposite direction is refused. The values a trial reported (``trial.report``, Optuna's
  ``trial_intermediate_values``) become its learning curve under the objective's metric
  name, without ``elapsed_s`` (Optuna records no time per step); non-finite ones are
  dropped.

Imports never change their source: a SQLite store (MLflow or Optuna) is copied into a
temporary folder through SQLite's backup API from a read-only connection, and the copy is
what the library opens (MLflow and Optuna upgrade an older schema in place when they open
it, and Optuna creates missing tables); another Optuna RDB storage is opened without table
creation.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warehouse.errors import MetaoptError, NotFoundError, ValidationError, one_line
from warehouse.ingest import existing_ids, log_runs

if TYPE_CHECKING:
    import pandas as pd

    from warehouse.store import Store

__all__ = ["ImportResult", "import_mlflow", "import_optuna"]

_MLFLOW_STATUS = {"FINISHED": "finished", "FAILED": "failed", "KILLED": "failed"}
#: Optuna trial states of done trials → run status (RUNNING / WAITING are skipped).
_OPTUNA_STATUS = {"COMPLETE": "finished", "FAIL": "failed", "PRUNED": "pruned"}
_PAGE = 5000


@dataclass(frozen=True)
class ImportResult:
    """What an import did: runs written, runs skipped because already present, runs skipped
    because not finished yet (MLflow RUNNING/SCHEDULED, Optuna RUNNING/WAITING)."""

    source: str
    imported: int
    already_present: int
    skipped_unfinished: int

    def as_dict(self) -> dict[str, Any]:
        """The result as a plain dict (one row for the CLI)."""
        return asdict(self)


def _require(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MetaoptError(
            f"{module} is not installed; install it with `pip install 'metaopt[{extra}]'`"
        ) from None


def _existing_runs(wh: Store, prefix: str) -> dict[str, tuple[Any, Any, Any]]:
    """run_id → (dataset, model, start in whole milliseconds) of the runs under ``prefix``."""
    df = wh._read_df(
        "SELECT run_id, dataset, model, started_at FROM runs WHERE starts_with(run_id, ?)",
        [prefix],
    )
    return {
        str(r.run_id): (str(r.dataset), str(r.model), _ms(r.started_at))
        for r in df.itertuples(index=False)
    }


def _ms(when: Any) -> int | None:
    """A timestamp in whole milliseconds (None when unset), comparable across round trips."""
    import pandas as pd

    if when is None or pd.isna(when):
        return None
    return int(pd.Timestamp(when).value // 1_000_000)


def _ms_to_dt(ms: int | None) -> _dt.datetime | None:
    if ms is None:
        return None
    return _dt.datetime.fromtimestamp(ms / 1000.0, tz=_dt.UTC).replace(tzinfo=None)


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows → MLflow-layout DataFrame; parameter columns as text so typing is per value."""
    import pandas as pd

    df = pd.DataFrame(rows)
    for col in df.columns:
        if col.startswith("params."):
            df[col] = df[col].map(lambda v: None if v is None or v != v else str(v)).astype(object)
    for col in ("started_at", "finished_at"):
        if col in df.columns:
            df[col] = pd.to_datetime(df[col])
    return df


# ------------------------------------------------------------------ the source stays untouched
def _sqlite_path(url: str) -> Path | None:
    """The file a ``sqlite:///path`` URL names, else None (another database, or in memory)."""
    if url.startswith("sqlite:///") and url not in ("sqlite:///", "sqlite:///:memory:"):
        return Path(url[len("sqlite:///") :].split("?", 1)[0]).expanduser()
    return None


@contextlib.contextmanager
def _aside(url: str, what: str, verb: str = "read") -> Iterator[str]:
    """``url``, or for a SQLite file the URL of a copy of it in a temporary folder (removed
    afterwards): the copy is made with SQLite's backup API from a read-only connection (a
    consistent snapshot, write-ahead log included), so the library that opens it may
    migrate it and the user's file stays byte-identical."""
    import sqlite3
    import tempfile

    path = _sqlite_path(url)
    if path is None:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="metaopt-import-") as tmp:
        copy = Path(tmp) / (path.name or "store.db")
        try:
            src = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                dst = sqlite3.connect(copy)
                try:
                    src.backup(dst)
                finally:
                    dst.close()
            finally:
                src.close()
        except sqlite3.Error as exc:
            raise MetaoptError(f"cannot {verb} {what} {url}: {one_line(exc)}") from None
        yield f"sqlite:///{copy}"


# ---------------------------------------------------------------------------------- MLflow
def _require_sqlite_file(url: str, what: str) -> None:
    """A ``sqlite:///path`` URL must name an existing file: SQLAlchemy would silently create
    an empty database (and the importer would report "nothing found")."""
    if url.startswith("sqlite:///") and url not in ("sqlite:///", "sqlite:///:memory:"):
        path = Path(url[len("sqlite:///") :]).expanduser()
        if not path.exists():
            raise NotFoundError(f"{what} {url!r} does not exist")


def _tracking_uri(uri: str | os.PathLike[str] | None) -> str:
    """A local folder or ``*.db`` file → an MLflow URI; URIs pass through; ``None`` →
    ``$MLFLOW_TRACKING_URI`` → MLflow's default."""
    if uri is None:
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            mlflow = _require("mlflow", "mlflow")
            return str(mlflow.get_tracking_uri())
    text = os.fspath(uri)
    if "://" in text or text.startswith(("sqlite:", "databricks")):
        _require_sqlite_file(text, "MLflow tracking store")
        return text
    path = Path(text).expanduser().resolve()
    if not path.exists():
        raise NotFoundError(f"MLflow tracking store {text!r} does not exist")
    if path.is_file():
        return f"sqlite:///{path}"
    return path.as_uri()


@contextlib.contextmanager
def _allow_file_store() -> Iterator[None]:
    """MLflow 3 refuses to open a folder store unless ``MLFLOW_ALLOW_FILE_STORE=true``; reading
    an existing one is exactly what an importer is for."""
    old = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
        else:
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = old


def import_mlflow(
    wh: Store,
    tracking_uri: str | os.PathLike[str] | None = None,
    experiments: Sequence[str] | None = None,
    dataset: str | None = None,
    model: str | None = None,
    dataset_tag: str = "dataset",
    model_tag: str = "model",
    include_tags: Sequence[str] = (),
) -> ImportResult:
    """Import the runs of an MLflow tracking store (a local folder, a SQLite database file or
    any tracking URI) into ``wh``; see the module docstring for the mapping.

    ``experiments`` are experiment names (default: every active experiment). Returns an
    :class:`ImportResult`. Re-importing the same store adds nothing.
    """
    _require("mlflow", "mlflow")
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    uri = _tracking_uri(tracking_uri)
    existing = existing_ids(wh, "mlflow:")
    with _allow_file_store(), _aside(uri, "MLflow store") as readable:
        try:
            client = MlflowClient(tracking_uri=readable)
            if experiments:
                found = []
                for name in experiments:
                    exp = client.get_experiment_by_name(name)
                    if exp is None:
                        known = [e.name for e in client.search_experiments()]
                        raise NotFoundError(
                            f"no MLflow experiment named {name!r} in {uri}; known: "
                            + ", ".join(sorted(known))
                        )
                    found.append(exp)
            else:
                found = list(client.search_experiments(view_type=ViewType.ACTIVE_ONLY))
            names = {e.experiment_id: e.name for e in found}
            runs = []
            if names:
                token = None
                while True:
                    page = client.search_runs(
                        list(names),
                        run_view_type=ViewType.ACTIVE_ONLY,
                        max_results=_PAGE,
                        page_token=token,
                    )
                    runs.extend(page)
                    token = page.token
                    if not token:
                        break
            wanted = [
                r
                for r in runs
                if f"mlflow:{r.info.run_id}" not in existing
                and str(r.info.status).upper() in _MLFLOW_STATUS
            ]
            history = _mlflow_history(client, readable, wanted)
        except MetaoptError:
            raise
        except Exception as exc:  # MlflowException, or the store's own (e.g. SQLAlchemy) error
            first = one_line(exc)
            raise MetaoptError(f"cannot read MLflow store {uri}: {first}") from None

    rows: list[dict[str, Any]] = []
    already = unfinished = 0
    for run in runs:
        info, data = run.info, run.data
        run_id = f"mlflow:{info.run_id}"
        if run_id in existing:
            already += 1
            continue
        status = _MLFLOW_STATUS.get(str(info.status).upper())
        if status is None:
            unfinished += 1
            continue
        params = dict(data.params)
        tags = dict(data.tags)
        # A parameter named like the dataset/model tag is the run's label, not a setting.
        ds_param = params.pop(dataset_tag, None)
        md_param = params.pop(model_tag, None)
        ds = dataset or tags.get(dataset_tag) or ds_param or names.get(info.experiment_id)
        md = model or tags.get(model_tag) or md_param
        if not md:
            raise ValidationError(
                f"MLflow run {info.run_id!r}: no {model_tag!r} tag or parameter; pass "
                "--model or --model-tag"
            )
        start, end = _ms_to_dt(info.start_time), _ms_to_dt(info.end_time)
        row: dict[str, Any] = {
            "run_id": run_id,
            "dataset": str(ds),
            "model": str(md),
            "status": status,
            "started_at": start,
            "finished_at": end,
            "duration_s": (
                max(0.0, (info.end_time - info.start_time) / 1000.0)
                if info.start_time is not None and info.end_time is not None
                else None
            ),
            "source": f"mlflow:{names.get(info.experiment_id, info.experiment_id)}",
        }
        for name, value in params.items():
            row[f"params.{name}"] = value
        for name in include_tags:
            if name in tags:
                row[f"params.tag.{name}"] = tags[name]
        for name, value in data.metrics.items():
            if value is not None and math.isfinite(float(value)):
                row[f"metrics.{name}"] = float(value)
        rows.append(row)
    if rows:
        log_runs(wh, _frame(rows), curves=history)
    return ImportResult(uri, len(rows), already, unfinished)


def _mlflow_history(client: Any, readable: str, runs: list[Any]) -> pd.DataFrame:
    """The metric history of ``runs`` as curve points (``run_id`` with its ``mlflow:``
    prefix, ``metric, step, value, elapsed_s``), ordered by run, metric and step: a SQLite
    store's ``metrics`` table in one query, any other store through
    ``MlflowClient.get_metric_history`` per run and metric."""
    import numpy as np
    import pandas as pd

    columns = ["run_uuid", "key", "value", "timestamp", "step"]
    if not runs:
        return pd.DataFrame(columns=["run_id", "metric", "step", "value", "elapsed_s"])
    path = _sqlite_path(readable)
    if path is not None:
        raw = _sqlite_history(path, [r.info.run_id for r in runs])
    else:
        raw = pd.DataFrame(
            [
                (r.info.run_id, m.key, m.value, m.timestamp, m.step)
                for r in runs
                for key in r.data.metrics
                for m in client.get_metric_history(r.info.run_id, key)
            ],
            columns=columns,
        )
    value = pd.to_numeric(raw["value"], errors="coerce").astype(float)
    # MLflow writes ±inf as ±the largest float (NaN as 0 with is_nan, filtered already)
    raw = raw[np.isfinite(value) & (value.abs() < np.finfo(float).max)]
    raw = raw.assign(step=raw["step"].fillna(0).astype("int64"))
    raw = raw.sort_values(["run_uuid", "key", "step", "timestamp", "value"], kind="stable")
    raw = raw.drop_duplicates(["run_uuid", "key", "step"], keep="last")  # the last logged
    starts = pd.Series({r.info.run_id: r.info.start_time for r in runs}, dtype="float64")
    origin = raw["run_uuid"].map(starts)
    first = raw.groupby("run_uuid")["timestamp"].transform("min")
    origin = origin.fillna(first).astype(float)
    elapsed = ((raw["timestamp"].astype(float) - origin) / 1000.0).clip(lower=0.0)
    return pd.DataFrame(
        {
            "run_id": "mlflow:" + raw["run_uuid"].astype(str),
            "metric": raw["key"].astype(str),
            "step": raw["step"],
            "value": raw["value"].astype(float),
            "elapsed_s": elapsed,
        }
    ).reset_index(drop=True)


def _sqlite_history(path: Path, run_ids: list[str]) -> pd.DataFrame:
    """Rows of a SQLite MLflow store's ``metrics`` table (every logged step) for ``run_ids``,
    NaN values left out; ``step`` is 0 in stores older than MLflow's step column."""
    import sqlite3

    import pandas as pd

    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        have = {row[1] for row in con.execute("PRAGMA table_info(metrics)")}
        step = "step" if "step" in have else "0"
        finite = "is_nan = 0" if "is_nan" in have else "1 = 1"
        con.execute("CREATE TEMP TABLE wanted (run_uuid TEXT PRIMARY KEY)")
        con.executemany("INSERT OR IGNORE INTO wanted VALUES (?)", [(r,) for r in run_ids])
        return pd.read_sql_query(
            f"SELECT m.run_uuid, m.key, m.value, m.timestamp, {step} AS step "
            "FROM metrics AS m JOIN wanted AS w ON w.run_uuid = m.run_uuid "
            f"WHERE {finite}",
            con,
        )
    finally:
        con.close()


# ---------------------------------------------------------------------------------- Optuna
def _register_metric(wh: Store, name: str, direction: str, study: str) -> None:
    with wh._transaction() as con:
        rows = con.execute("SELECT direction FROM metrics WHERE name = ?", [name]).fetchall()
        if not rows:
            con.execute("INSERT INTO metrics (name, direction) VALUES (?, ?)", [name, direction])
        elif rows[0][0] != direction:
            raise ValidationError(
                f"metric {name!r} is recorded as {rows[0][0]} but Optuna study {study!r} "
                f"will {direction} it; choose another name with --metric"
            )


def _load_study(optuna: Any, url: str, shown: str, study: str) -> tuple[Any, list[Any]]:
    """The study ``study`` of the storage at ``url`` and its trials, read at once (``url`` may
    be a copy that is gone afterwards; ``shown`` is the user's URL, for messages). An RDB
    storage is opened without creating tables (a SQLite one is a copy already)."""
    try:
        storage: Any = url
        if "://" in url and _sqlite_path(url) is None and not url.startswith("sqlite:"):
            storage = optuna.storages.RDBStorage(url, skip_table_creation=True)
        loaded = optuna.load_study(study_name=study, storage=storage)
        return loaded, list(loaded.get_trials(deepcopy=False))
    except KeyError:
        try:
            known = optuna.get_all_study_names(storage=url)
        except Exception:
            known = []
        raise NotFoundError(
            f"no Optuna study named {study!r} in {shown}; known: " + ", ".join(sorted(known))
        ) from None
    except Exception as exc:
        first = one_line(exc)
        raise MetaoptError(f"cannot open Optuna storage {shown}: {first}") from None


def import_optuna(
    wh: Store,
    storage: str,
    study: str,
    dataset: str,
    model: str,
    metric: str | Sequence[str] | None = None,
    name: str | None = None,
) -> ImportResult:
    """Import the trials of one Optuna study (any Optuna storage URL, e.g.
    ``sqlite:///optuna.db``) as runs of ``model`` on ``dataset``.

    ``metric`` names the objective(s): default ``value`` for one objective and ``value_0``,
    ``value_1``, … for several. Runs are named ``optuna:<name>:<trial number>`` (``name``
    defaults to the study's name) and re-importing adds nothing. A trial whose run id is
    taken by a different trial (another storage's study of the same name: another start
    time, dataset or model) is refused, naming ``name=`` as the way out, instead of being
    counted as already present. Returns an :class:`ImportResult`.
    """
    optuna = _require("optuna", "optuna")
    from optuna.trial import TrialState

    if not dataset or not model:
        raise ValidationError("import_optuna needs a dataset and a model name")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _require_sqlite_file(storage, "Optuna storage")
    with _aside(storage, "Optuna storage", "open") as readable:
        loaded, trials = _load_study(optuna, readable, storage, study)

    directions = ["maximize" if d.name == "MAXIMIZE" else "minimize" for d in loaded.directions]
    if metric is None:
        n_obj = len(directions)
        names = ["value"] if n_obj == 1 else [f"value_{i}" for i in range(n_obj)]
    else:
        names = [metric] if isinstance(metric, str) else list(metric)
    if len(names) != len(directions):
        raise ValidationError(
            f"Optuna study {study!r} has {len(directions)} objective(s) but "
            f"{len(names)} metric name(s) were given"
        )

    label = study if name is None else str(name)
    if not label or ":" in label:
        raise ValidationError(f"import name {label!r} must be non-empty text without ':'")
    prefix = f"optuna:{label}:"
    existing = _existing_runs(wh, prefix)
    rows: list[dict[str, Any]] = []
    points: list[tuple[str, str, int, float]] = []
    already = unfinished = 0
    for trial in trials:
        run_id = f"{prefix}{trial.number}"
        if run_id in existing:
            if existing[run_id] != (dataset, model, _ms(trial.datetime_start)):
                raise ValidationError(
                    f"run {run_id} is already in the warehouse from another trial (another "
                    f"storage's study {label!r}, or another dataset or model); import this one "
                    "under another name (--as NAME, name= in Python)"
                )
            already += 1
            continue
        if trial.state in (TrialState.RUNNING, TrialState.WAITING):
            unfinished += 1
            continue
        start, end = trial.datetime_start, trial.datetime_complete
        row: dict[str, Any] = {
            "run_id": run_id,
            "dataset": dataset,
            "model": model,
            "status": _OPTUNA_STATUS[trial.state.name],
            "started_at": start,
            "finished_at": end,
            "duration_s": (end - start).total_seconds() if start and end else None,
            "source": f"optuna:{label}",
        }
        for param, value in trial.params.items():
            row[f"params.{param}"] = value
        if trial.state == TrialState.COMPLETE and trial.values is not None:
            for name, value in zip(names, trial.values, strict=True):
                if value is not None and math.isfinite(float(value)):
                    row[f"metrics.{name}"] = float(value)
        rows.append(row)
        # the values the trial reported (single-objective studies only), by step
        points += [
            (run_id, names[0], int(step), float(value))
            for step, value in sorted(trial.intermediate_values.items())
            if value is not None and math.isfinite(float(value))
        ]
    if rows:
        import pandas as pd

        curves = pd.DataFrame(points, columns=["run_id", "metric", "step", "value"])
        with wh._transaction():
            for name, direction in zip(names, directions, strict=True):
                _register_metric(wh, name, direction, study)
            log_runs(wh, _frame(rows), curves=curves)
    return ImportResult(f"{storage}#{study}", len(rows), already, unfinished)
