"""Saving and loading a fitted MetaLearner: netCDF files, their format versions and the
migrations that let older files load as they behaved when written.

A file holds the population draws and ``Z`` as arrays; its attrs carry the config JSON and
its hash, the encoders, diagnostics, the portfolio and the second stages' grid weights.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from metaopt_bayes.discrepancy import StackedMeans
from metaopt_bayes.features import FeatureEncoder, MetaFeatureScaler, TargetTransform
from warehouse.errors import NotFoundError, ValidationError, one_line
from warehouse.protocol import WarehouseLike

# 2: discrepancy option and its grid weights; 3: dataset sensitivity; 4: its grid is stored;
# 5: a bounded metric's values at the bound are moved inside by the dataset's resolution;
# 6: parameters encoded per training row, and the training datasets' sizes;
# 7: 0/1 basis columns identical on every training run are tied into one
# 8: task adaptation (the ``adapt`` option; files before it predict without it)
# 9: the training datasets' surfaces for the warm start (files before it start as 0.5.0 did)
FORMAT_VERSION = 9
#: the grid format-3 files were fitted on (they do not store theirs)
_SENSITIVITIES_V3 = 2.0 ** np.arange(-4, 3)

Learner = TypeVar("Learner")


def hash_config(config_json: str) -> str:
    """The hash of a config's JSON text (16 hex digits): stored with a model, checked on load."""
    return hashlib.sha256(config_json.encode()).hexdigest()[:16]


#: what a learner is fitted to: its metric's values (``FIT_METRIC``) or the training seconds of
#: the runs that logged it (``FIT_COST``, the cost model of cost-aware EI)
FIT_METRIC, FIT_COST = "metric", "duration_s"


def settings_hash(config: dict[str, Any], fitted_to: str = FIT_METRIC) -> str:
    """The fingerprint of a learner's settings (16 hex digits): its config (metric, model
    family, direction, method and every option, as :meth:`MetaLearner.config_dict` gives it),
    what it is fitted to (``fitted_to``) and the model-file format version. Two fits with
    equal settings on equal data are the same fit (their seeds are in the config)."""
    blob = json.dumps(
        {"config": config, "fitted_to": fitted_to, "format": FORMAT_VERSION},
        sort_keys=True,
        default=str,
    )
    return hash_config(blob)


def training_digest(runs: Any, meta: Any = None) -> dict[str, str]:
    """One content hash per dataset of a training frame (16 hex digits): the dataset's runs
    (``run_id``, ``value``, ``duration_s`` and the ``params.*`` columns it sets, in any row
    order) and its row of meta-features ``meta`` (wide, indexed by dataset). Columns another
    dataset's runs add (all missing on this one) do not change it, so only a dataset's own
    runs and meta-features do."""
    import pandas as pd

    out: dict[str, str] = {}
    if runs is None or len(runs) == 0:
        return out
    keep = [c for c in ("run_id", "value", "duration_s") if c in runs.columns]
    keep += sorted(c for c in runs.columns if str(c).startswith("params."))
    frame = runs[["dataset", *keep]].copy()
    frame["dataset"] = frame["dataset"].astype(str)
    if meta is not None and len(meta):
        meta = meta.copy()
        meta.index = meta.index.astype(str)
    for name, rows in frame.groupby("dataset", sort=True):
        rows = rows.drop(columns="dataset").dropna(axis=1, how="all")
        rows = rows[sorted(rows.columns)]
        row_hashes = np.sort(pd.util.hash_pandas_object(rows, index=False).to_numpy())
        h = hashlib.sha256(",".join(rows.columns).encode())
        h.update(row_hashes.tobytes())
        if meta is not None and len(meta) and name in meta.index:
            m = meta.loc[name].dropna().sort_index()
            values = {str(k): v.item() if hasattr(v, "item") else v for k, v in m.items()}
            h.update(json.dumps(values, sort_keys=True, default=str).encode())
        out[str(name)] = h.hexdigest()[:16]
    return out


def save_learner(learner: Any, path: str | os.PathLike) -> Path:
    """Write a fitted learner to ``path`` (netCDF), aside and then moved into place, so a
    failed save leaves an older file intact."""
    import xarray as xr

    dr = learner._draws
    ds = xr.Dataset(
        {
            "B": (("draw", "basis", "meta"), dr["B"]),
            "tau": (("draw", "basis"), dr["tau"]),
            "log_sigma": (("draw", "dataset"), dr["log_sigma"]),
            "log_sigma_mu": (("draw",), dr["log_sigma_mu"]),
            "log_sigma_sd": (("draw",), dr["log_sigma_sd"]),
            "Z": (("dataset", "meta"), learner._Z),
            **_history_vars(learner),
        },
        coords={
            "basis": list(learner.encoder.names),
            "meta": list(learner.scaler.names),
            "dataset": list(learner.datasets),
        },
    )
    ds.attrs.update(
        {
            "metaopt_format": FORMAT_VERSION,
            "metaopt_version": _version(),
            "config": json.dumps(learner.config_dict(), sort_keys=True, default=str),
            "config_hash": learner.config_hash(),
            "encoder": json.dumps(learner.encoder.to_dict()),
            "scaler": json.dumps(learner.scaler.to_dict()),
            "transform": json.dumps(learner.transform.to_dict()),
            "diagnostics": json.dumps(learner.diagnostics, default=json_default),
            "model_id": learner.model_id or "",
            "portfolio": json.dumps(learner.portfolio, default=json_default),
            "sensitivity_prior": json.dumps(
                None if learner.sensitivity_prior is None else list(learner.sensitivity_prior)
            ),
            "sensitivity_grid": json.dumps(list(learner.sensitivity_grid)),
            "rows": json.dumps(learner.rows, default=json_default),
            "discrepancy_prior": json.dumps(
                None if learner.discrepancy_prior is None else list(learner.discrepancy_prior)
            ),
        }
    )

    path = writable_model_path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)  # as a plain open() would create it, not mkstemp's 0600
    try:  # written aside and moved into place: a failed save leaves the old file intact
        ds.to_netcdf(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        why = one_line(exc, 160)
        raise ValidationError(f"cannot write model file {str(path)!r}: {why}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _history_vars(learner: Any) -> dict[str, Any]:
    """The history's surfaces (MetaLearner.history_regret) as netCDF variables: the training
    datasets' coefficient means, and their discrepancies' inputs and dual weights stacked
    over datasets with a count per dataset."""
    if learner.history_coefs is None:
        return {}
    out: dict[str, Any] = {"history_coefs": (("dataset", "basis"), learner.history_coefs)}
    disc = learner.history_disc
    if disc is not None:
        out["history_U"] = (("history_run", "linear"), disc.U)
        out["history_V"] = (("history_run", "length_scale"), disc.V)
        out["history_n"] = (("dataset",), disc.counts)
    return out


def _load_history(learner: Any, ds: Any) -> None:
    """The history's surfaces from a file; absent (None) in files before format 9 (0.6.0)."""
    learner.history_coefs = learner.history_disc = None
    if "history_coefs" not in ds:
        return
    learner.history_coefs = np.asarray(ds["history_coefs"].values, dtype=float)
    if "history_n" in ds:
        learner.history_disc = StackedMeans(
            np.asarray(ds["history_U"].values, dtype=float),
            np.asarray(ds["history_V"].values, dtype=float),
            np.asarray(ds["history_n"].values, dtype=int),
        )


def load_learner(
    cls: type[Learner],
    path: str | os.PathLike,
    warehouse: WarehouseLike | None = None,
    metric: str | None = None,
    model: str | None = None,
) -> Learner:
    """A ``cls`` (the MetaLearner class) read from a file :func:`save_learner` wrote; refuses
    files that are not metaopt models, come from a newer format, whose config does not match
    its hash, or whose metric or model family differs from ``metric`` / ``model`` when given."""
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise NotFoundError(f"no model file at {path}")
    try:
        with xr.open_dataset(path) as f:
            ds = f.load()
    except Exception as exc:
        why = one_line(exc, 160)
        raise ValidationError(f"{path} is not a readable metaopt model file ({why})") from None
    a = ds.attrs
    if "metaopt_format" not in a or "config" not in a:
        raise ValidationError(f"{path} is not a metaopt model file (no metaopt attributes)")
    if int(a["metaopt_format"]) > FORMAT_VERSION:
        raise ValidationError(
            f"{path} was written in model format {a['metaopt_format']} by metaopt "
            f"{a.get('metaopt_version')}; this metaopt reads format ≤ {FORMAT_VERSION}"
        )
    stored_hash = hash_config(a["config"])
    if stored_hash != a["config_hash"]:
        raise ValidationError(
            f"{path}: config hash mismatch (file says {a['config_hash']}, config hashes to "
            f"{stored_hash}); the file was altered or written by incompatible code"
        )
    cfg = json.loads(a["config"])
    # files written before these options existed behave as they did then
    cfg.setdefault("meta_terms", "all")
    cfg.setdefault("sigma_floor", 0.0)
    cfg.setdefault("discrepancy", False)
    cfg.setdefault("sensitivity", False)
    cfg.setdefault("per_row", ())
    cfg.setdefault("adapt", "off")
    base = {k: cfg.pop(k) for k in ("metric", "model", "direction", "method")}
    learner = cls(base["metric"], base["model"], base["direction"], base["method"], **cfg)
    if metric is not None and metric != learner.metric:
        raise ValidationError(f"{path} models metric {learner.metric!r}, not {metric!r}")
    if model is not None and learner.model is not None and model != learner.model:
        raise ValidationError(f"{path} models family {learner.model!r}, not {model!r}")
    learner.encoder = FeatureEncoder.from_dict(json.loads(a["encoder"]))
    learner.scaler = MetaFeatureScaler.from_dict(json.loads(a["scaler"]))
    learner.transform = TargetTransform.from_dict(json.loads(a["transform"]))
    learner.diagnostics = json.loads(a.get("diagnostics", "{}"))
    learner.model_id = a.get("model_id") or None
    learner.portfolio = json.loads(a.get("portfolio", "[]"))  # absent in older files
    prior = json.loads(a.get("discrepancy_prior", "null"))
    learner.discrepancy_prior = None if prior is None else np.asarray(prior, dtype=float)
    prior = json.loads(a.get("sensitivity_prior", "null"))
    learner.sensitivity_prior = None if prior is None else np.asarray(prior, dtype=float)
    grid = json.loads(a.get("sensitivity_grid", "null"))
    learner.sensitivity_grid = _SENSITIVITIES_V3 if grid is None else np.asarray(grid, float)
    w, grid = learner.sensitivity_prior, learner.sensitivity_grid
    if w is not None and len(w) != len(grid):
        raise ValidationError(
            f"{path}: {len(w)} sensitivity weights for a grid of {len(grid)} points; the "
            "file was altered or written by incompatible code"
        )
    learner.rows = {str(k): float(v) for k, v in json.loads(a.get("rows", "{}")).items()}
    learner.datasets = [str(d) for d in ds["dataset"].values]
    learner._Z = np.asarray(ds["Z"].values, dtype=float)
    learner._draws = {
        k: np.asarray(ds[k].values, dtype=float)
        for k in ("B", "tau", "log_sigma", "log_sigma_mu", "log_sigma_sd")
    }
    _load_history(learner, ds)
    if list(ds["basis"].values) != learner.encoder.names:
        raise ValidationError(f"{path}: basis names do not match the stored encoder")
    learner.warehouse = warehouse
    return learner


def writable_model_path(path: str | os.PathLike, create: bool = True) -> Path:
    """``path`` as a place to save a model: an existing file there must be a metaopt model
    (never silently replace a user's other file) and its folder must take a file. With
    ``create`` the folder is created; without it (the check before a fit) the nearest
    existing ancestor is probed instead, so a fit that fails leaves no folder behind."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ValidationError(f"model path {str(path)!r} is a folder; give a file name (.nc)")
    if path.exists():
        try:
            with open(path, "rb") as f:
                head = f.read(8)
        except OSError as exc:
            raise ValidationError(f"cannot write model file {str(path)!r}: {exc}") from None
        if not (head.startswith(b"\x89HDF") or head.startswith(b"CDF")):
            raise ValidationError(
                f"{str(path)!r} exists and is not a model file; choose another path"
            )
    folder = path.parent
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValidationError(
                f"cannot create folder for model file {str(path)!r}: {exc}"
            ) from None
    else:
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent

    try:  # a real probe: permission bits do not tell (root, read-only or virtual filesystems)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".metaopt-probe-"):
            pass
    except OSError as exc:
        raise ValidationError(
            f"cannot write model file {str(path)!r}: {exc.strerror or exc}"
        ) from None
    return path


def json_default(v: Any) -> Any:
    """``json.dumps``'s fallback: numpy scalars as Python ones, NaN as null, else the text."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return str(v)


def _version() -> str:
    from metaopt_bayes import __version__

    return __version__
