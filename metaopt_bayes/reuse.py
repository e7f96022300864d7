"""Fits are reused: the one door through which recommend, optimize, report and predict get a
fitted meta-learner (:func:`learner_for`).

A fit is recorded in the warehouse's ``meta_models`` with a fingerprint (migration
``0004_meta_model_fingerprints``): the hash of its settings
(:func:`~metaopt_bayes.persistence.settings_hash`: metric, model family, direction, method,
every option, what it was fitted to, the model-file format) and one content hash per training
dataset (:func:`~metaopt_bayes.persistence.training_digest`: the dataset's runs and its
meta-features). Asked for a learner for a target dataset, :func:`learner_for` takes the newest
recorded fit with the same settings whose datasets *other than the target* hash as they do now,
and fits (and records) a new one only when there is none. The target's own runs never call for
a refit: predictions condition on them at predict time through the closed-form few-shot update
(:mod:`metaopt_bayes.update`) and the task adaptation, whether the population saw the target or
not. A dataset left out of a fit (``exclude``, as optimize and report leave out their target)
must be absent from a reused one too.

Fits are saved as netCDF files in ``metaopt_models/`` beside a file warehouse (as ``metaopt
fit`` saves them); an in-memory warehouse keeps its fits in this process only.
"""

from __future__ import annotations

import json
import math
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from metaopt_bayes.model import MetaLearner, _training_matrix, _why_no_runs
from metaopt_bayes.persistence import FIT_METRIC, settings_hash, training_digest
from warehouse.errors import NotFoundError, ValidationError
from warehouse.protocol import WarehouseLike

#: fits of in-memory warehouses, by model id (no file to load them from); the newest kept
_IN_MEMORY: OrderedDict[str, MetaLearner] = OrderedDict()
_IN_MEMORY_MAX = 32
MEMORY = ":memory:"


def models_dir(warehouse: WarehouseLike) -> Path | None:
    """Where fits of ``warehouse`` are saved: ``metaopt_models/`` beside its file (None for an
    in-memory warehouse)."""
    path = str(getattr(warehouse, "path", MEMORY) or MEMORY)
    if path == MEMORY:
        return None
    return Path(path).expanduser().resolve().parent / "metaopt_models"


def training_frame(
    warehouse: WarehouseLike, metric: str, model: str | None, cost: bool = False
) -> pd.DataFrame:
    """The runs a learner of ``metric`` (``cost``: of the training seconds of the runs that
    logged ``metric``, on a log scale) for ``model`` learns from, every dataset."""
    if not cost:
        return _training_matrix(warehouse, metric, model, None, None)
    runs = warehouse.training_matrix(metric, model=model)
    if len(runs):
        runs = runs.assign(value=pd.to_numeric(runs["duration_s"], errors="coerce"))
        runs = runs[runs["value"] > 0].reset_index(drop=True)
    return runs


def matches(
    stored: dict[str, str],
    current: dict[str, str],
    dataset: str | None = None,
    exclude: Sequence[str] = (),
) -> str | None:
    """Why a fit whose training datasets hashed to ``stored`` cannot serve now (None: it can):
    a dataset in ``exclude`` that it learnt from, or a dataset other than the target
    ``dataset`` whose runs or meta-features differ (new, changed or gone)."""
    left_out = set(map(str, exclude))
    seen = sorted(left_out & set(stored))
    if seen:
        return f"fitted on {seen[0]!r}, which this fit leaves out"
    ignore = left_out | ({str(dataset)} if dataset is not None else set())
    changed = sorted(
        d for d in set(stored) | set(current) if d not in ignore and stored.get(d) != current.get(d)
    )
    if not changed:
        return None
    d = changed[0]
    what = "new" if d not in stored else ("gone" if d not in current else "changed")
    more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
    return f"runs on other datasets changed ({d!r} {what}{more})"


def describe(row: Any, reused: bool) -> str:
    """One line naming the recorded fit a command uses."""
    when = str(getattr(row, "created_at", ""))[:16]
    n = int(row.n_runs) if _present(row.n_runs) else 0
    k = int(row.n_datasets) if _present(row.n_datasets) else 0
    how = "unchanged" if reused else "chosen"
    return (
        f"using learner {str(row.model_id)[:12]} ({row.metric} of {row.model_family}, "
        f"{row.method}, fitted {when}, {n:,} runs on {k} datasets, {how})"
    )


def _present(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def recorded_row(warehouse: WarehouseLike, ref: str) -> Any | None:
    """The ``meta_models`` row ``ref`` names — a recorded id, or a unique prefix of it as
    `metaopt learners` shows it — or None when ``ref`` is a learner file (a path, or a name
    ending in .nc); one-line errors for no match and an ambiguous prefix."""
    if Path(ref).exists() or ref.endswith(".nc") or os.sep in ref:
        return None
    rows = warehouse.meta_models(id_prefix=ref)
    if rows.empty:
        raise NotFoundError(f"no meta-model (learner) with id {ref!r} (see `metaopt learners`)")
    if ref in set(rows.model_id):
        rows = rows[rows.model_id == ref]
    elif len(rows) > 1:
        raise ValidationError(
            f"{len(rows)} meta-models have ids starting with {ref!r}; give more of it"
        )
    return next(rows.itertuples(index=False))


def load_recorded(
    warehouse: WarehouseLike,
    ref: str,
    metric: str | None = None,
    model: str | None = None,
) -> MetaLearner:
    """The fit ``ref`` names — a learner file, or a recorded id (or a unique prefix of it, as
    `metaopt learners` shows it) — refused in one line when it models another metric or
    model family than ``metric`` / ``model`` (when given)."""
    ref = str(ref)
    row = recorded_row(warehouse, ref)
    if row is None:
        lrn = MetaLearner.load(ref, warehouse=warehouse, metric=metric, model=model)
        lrn.reuse_note = f"using learner file {ref} (chosen)"
        return lrn
    short = str(row.model_id)[:12]
    if metric is not None and row.metric != metric:
        raise ValidationError(f"learner {short} models metric {row.metric!r}, not {metric!r}")
    if model is not None and _present(row.model_family) and row.model_family != model:
        raise ValidationError(f"learner {short} models family {row.model_family!r}, not {model!r}")
    lrn = _load_row(warehouse, row)
    if lrn is None:
        raise NotFoundError(f"meta-model {row.model_id} has no saved file to load")
    lrn.reuse_note = describe(row, reused=False)
    return lrn


def _load_row(warehouse: WarehouseLike, row: Any) -> MetaLearner | None:
    """The fit a ``meta_models`` row records (its file, or this process's in-memory copy),
    or None when neither is there (or the file no longer loads)."""
    cached = _IN_MEMORY.get(str(row.model_id))
    if cached is not None:
        cached.warehouse = warehouse
        return cached
    path = row.path if _present(row.path) else None
    if not path or not Path(path).exists():
        return None
    try:
        lrn = MetaLearner.load(path, warehouse=warehouse, metric=row.metric)
    except (ValidationError, NotFoundError, OSError):
        return None
    lrn.model_id = str(row.model_id)
    return lrn


def learner_for(
    warehouse: WarehouseLike,
    metric: str,
    model: str | None,
    *,
    dataset: str | None = None,
    exclude: Sequence[str] | None = None,
    method: str | None = "nuts",
    direction: str | None = None,
    cost: bool = False,
    refit: bool = False,
    learner: str | None = None,
    **config: Any,
) -> MetaLearner:
    """A fitted MetaLearner of ``metric`` for ``model``, reused when it can be.

    ``learner``: a recorded id (or unique prefix) or a learner file — that fit, refused in
    one line if it models another metric or family. Otherwise the newest recorded fit with
    these settings (``method``, ``direction``, ``config``; ``method=None``: any recorded
    settings of this metric and family, and NUTS with the defaults for a new fit; ``cost``: a
    model of the training
    seconds of the runs that logged ``metric``, for cost-aware EI) whose training datasets,
    apart from the target ``dataset``, hold what they hold now, and which learnt nothing from
    ``exclude``; else (or with ``refit``) a new fit on every dataset but ``exclude``, saved
    beside the warehouse and recorded with its fingerprint. ``learner.reused`` says which
    happened and ``learner.reuse_note`` says it in one line.
    """
    if learner is not None:
        lrn = load_recorded(warehouse, learner, ("duration_s" if cost else metric) or None, model)
        lrn.reused = True
        return lrn
    exclude = [str(d) for d in (exclude or ())]
    if cost:
        name, direction, fitted_to = "duration_s", "minimize", f"duration_s of {metric} runs"
        config = {"transform": "log", **config}
    else:
        name, fitted_to = metric, FIT_METRIC
        if direction is None:
            direction = warehouse.metric_direction(metric)
    frame = training_frame(warehouse, metric, model, cost)
    if model is None and len(frame) and frame["model"].nunique() == 1:
        model = str(frame["model"].iloc[0])  # as a fit would name it: the settings hash it
    any_settings = method is None
    method = method or "nuts"
    fresh = MetaLearner(name, model=model, direction=direction, method=method, **config)
    wanted = settings_hash(fresh.config_dict(), fitted_to)
    meta = warehouse.meta_features()
    current = training_digest(frame, meta)
    why = "--refit" if refit else "no recorded fit with these settings"
    if not refit:
        rows = warehouse.meta_models(
            name, model_family=model, settings_hash=None if any_settings else wanted
        )
        rows = rows[(rows["status"] != "failed") & rows["settings_hash"].notna()]
        for row in rows.itertuples(index=False):
            stored = json.loads(row.data_digest) if _present(row.data_digest) else None
            if stored is None:
                continue
            reason = matches(stored, current, dataset, exclude)
            if reason is not None:
                if why.startswith("no recorded"):  # the newest one's reason is the one told
                    why = f"learner {str(row.model_id)[:12]}: {reason}"
                continue
            lrn = _load_row(warehouse, row)
            if lrn is None:
                continue
            lrn.settings_hash, lrn.data_digest = row.settings_hash, stored
            lrn.reused = True
            lrn.reuse_note = describe(row, reused=True)
            return lrn
    train = frame[~frame["dataset"].astype(str).isin(exclude)] if exclude and len(frame) else frame
    if len(train) == 0:
        if cost:
            raise ValidationError(f"no runs of {model!r} with a measured duration_s to model cost")
        raise ValidationError(_why_no_runs(warehouse, metric, model, bool(exclude)))
    fresh.fit_frame(train.reset_index(drop=True), meta)
    fresh.fingerprint(train, meta, fitted_to)
    fresh.warehouse = warehouse
    _record(warehouse, fresh)
    d = fresh.diagnostics
    fresh.reused = False
    if fresh.model_id is None:
        why += "; not recorded (the warehouse is open read-only)"
    fresh.reuse_note = (
        f"fitted learner {str(fresh.model_id or '(unrecorded)')[:12]} ({fresh.metric} of "
        f"{fresh.model}, {method}, {int(d.get('n_runs', 0)):,} runs on "
        f"{int(d.get('n_datasets', 0))} datasets, {float(d.get('fit_s', 0.0)):.1f} s): {why}"
    )
    return fresh


def _record(warehouse: WarehouseLike, lrn: MetaLearner) -> None:
    """Save a new fit beside the warehouse (in this process for an in-memory one) and record
    it with its fingerprint; a read-only warehouse records nothing (the fit serves this call)."""
    if getattr(warehouse, "read_only", False) or not hasattr(warehouse, "record_meta_model"):
        return
    folder = models_dir(warehouse)
    path = None
    if folder is not None:
        import uuid

        lrn.model_id = uuid.uuid4().hex
        path = folder / f"{lrn.metric}-{lrn.model or 'all'}-{lrn.method}-{lrn.model_id[:12]}.nc"
        lrn.save(path)
    row = lrn.meta_model_row(path)
    if lrn.model_id is not None:
        row["model_id"] = lrn.model_id
    lrn.model_id = warehouse.record_meta_model(**row)
    if folder is None:
        _IN_MEMORY[lrn.model_id] = lrn
        while len(_IN_MEMORY) > _IN_MEMORY_MAX:
            _IN_MEMORY.popitem(last=False)


__all__ = [
    "learner_for",
    "load_recorded",
    "matches",
    "models_dir",
    "recorded_row",
    "training_frame",
]
