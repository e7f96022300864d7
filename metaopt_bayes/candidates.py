"""Candidate configurations: pools, space candidates, and the exclusion of configs already run.

A candidate is a row of parameter columns (names without the ``params.`` prefix the training
matrix uses). :func:`space_candidates` draws them from a search space — scrambled Sobol points
(Owen 1998), Gaussian neighbours of the incumbents (SMAC's local search, Hutter et al. 2011)
and the learner's portfolio — and :func:`exclude_run` drops those a dataset has already run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metaopt_bayes.space import is_missing, plain, value_key
from warehouse.errors import NotFoundError, ValidationError

PARAM_PREFIX = "params."


def is_space(obj: Any) -> bool:
    """Whether ``obj`` behaves as a search space (sample, unit-cube encoding, neighbours)."""
    return hasattr(obj, "sample") and hasattr(obj, "to_unit") and hasattr(obj, "neighbors")


def is_set(value: Any) -> bool:
    """A parameter value that is set (not None, NaN or ``pd.NA``)."""
    return not (is_missing(value) or value is pd.NA)


def load_candidates(candidates: Any) -> pd.DataFrame:
    """A candidate pool as a DataFrame of parameter columns (a ``params.`` prefix is dropped).

    Accepts a DataFrame, a list of dicts, or a path to a CSV, Parquet or JSON file.
    """
    if isinstance(candidates, pd.DataFrame):
        df = candidates.copy()
    elif isinstance(candidates, list):
        df = pd.DataFrame(candidates)
    elif isinstance(candidates, str | Path):
        from warehouse.frames import read_frame

        if not Path(candidates).expanduser().exists():
            raise NotFoundError(f"no candidates file at {candidates}")
        df = read_frame(candidates, "candidates file")
    else:
        raise ValidationError(
            f"candidates must be a DataFrame, a CSV path or a search space, not "
            f"{type(candidates).__name__}"
        )
    df = df.rename(
        columns=lambda c: c[len(PARAM_PREFIX) :] if str(c).startswith(PARAM_PREFIX) else c
    )
    if df.empty:
        raise ValidationError("the candidate pool is empty")
    return df.reset_index(drop=True)


def space_candidates(
    space: Any,
    n: int = 512,
    seed: int = 0,
    incumbents: list[Mapping[str, Any]] | None = None,
    n_local: int = 64,
    scale: float = 0.08,
    portfolio: list[Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """Candidates from a search space: ``n`` scrambled-Sobol points (Owen 1998) plus ``n_local``
    Gaussian neighbours in the unit cube around each incumbent (local refinement, as in SMAC's
    local search, Hutter et al. 2011), plus the ``portfolio`` configs that lie in the space
    (the best config of each history dataset: known-good points the Sobol set would only
    approximate). Conditional parameters are decoded by the space."""
    frames = [space.sample(n, seed=seed)]
    kept = []
    for cfg in portfolio or []:
        try:
            own = {k: v for k, v in cfg.items() if k in space.names}
            kept.append(space.validate(space.restore(own)))
        except ValidationError:
            continue  # outside this space (other bounds, another layout): not a candidate
    if kept:
        frames.append(pd.DataFrame(kept, columns=frames[0].columns))
    for i, cfg in enumerate(incumbents or []):
        try:
            frames.append(
                space.neighbors(space.restore(cfg), n_local, scale=scale, seed=seed * 7919 + i)
            )
        except ValidationError:
            continue  # an incumbent outside this space (e.g. an imported run) refines nothing
    return pd.concat(frames, ignore_index=True)


def config_keys(df: pd.DataFrame, names: list[str], prefix: str = "") -> list[tuple]:
    """Each row's values of ``names`` (columns ``prefix + name``) as a comparable tuple."""
    cols = []
    for n in names:
        col = prefix + n
        cols.append(df[col].tolist() if col in df.columns else [None] * len(df))
    return [tuple(value_key(v) for v in row) for row in zip(*cols, strict=True)] if cols else []


def exclude_run(candidates: pd.DataFrame, runs: pd.DataFrame | None, names: list[str]) -> pd.Series:
    """Boolean mask of candidates whose config (on ``names``) was not yet run.

    Only the candidates whose every value could key like a run's (:func:`_could_be`, column
    by column, vectorized) are keyed one by one: a pool of 100,000 against a few runs costs
    milliseconds, not a Python loop over every cell."""
    if runs is None or runs.empty or not names:
        return pd.Series(True, index=candidates.index)
    run_keys = config_keys(runs, names, PARAM_PREFIX)
    maybe = np.ones(len(candidates), dtype=bool)
    for j, n in enumerate(names):
        if n in candidates.columns:
            maybe &= _could_be(candidates[n], {k[j] for k in run_keys})
        elif all(k[j] is not None for k in run_keys):
            maybe[:] = False  # an absent column keys as None, which no run has
    out = np.ones(len(candidates), dtype=bool)
    rows = np.flatnonzero(maybe)
    if len(rows):
        seen = set(run_keys)
        out[rows] = [k not in seen for k in config_keys(candidates.iloc[rows], names)]
    return pd.Series(out, index=candidates.index)


def _could_be(col: pd.Series, keys: set) -> np.ndarray:
    """Per value of ``col``, whether its :func:`value_key` may be one of ``keys`` (never False
    when it is). Numbers key as their 10 significant digits, so two with the same key differ
    by at most 1e-9 relatively (found by binary search among the keys); other columns are
    keyed once per distinct value. Missing values (None, NaN, pandas' NA) always pass: their
    keys differ by kind."""
    missing = col.isna().to_numpy()
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        x = col.to_numpy(dtype=float, na_value=np.nan)
        out = missing.copy()
        nums = np.unique([k for k in keys if isinstance(k, float) and not np.isnan(k)])
        if len(nums):
            i = np.searchsorted(nums, x)
            for j in (np.clip(i - 1, 0, len(nums) - 1), np.clip(i, 0, len(nums) - 1)):
                out |= np.isclose(x, nums[j], rtol=2e-9, atol=0.0)
        return out
    try:
        codes, uniques = pd.factorize(col, use_na_sentinel=False)
    except TypeError:  # unhashable values (lists): key every row
        return np.ones(len(col), dtype=bool)
    hit = np.array([value_key(u) in keys for u in uniques], dtype=bool)
    return (hit[codes] if len(codes) else np.zeros(0, dtype=bool)) | missing


def param_names(learner: Any, candidates: pd.DataFrame) -> list[str]:
    """The candidate columns that are parameters the learner knows (else all but ``_*``)."""
    try:
        known = list(learner.param_names)
    except Exception:
        known = []
    cols = [c for c in candidates.columns if not str(c).startswith("_")]
    return [c for c in cols if c in known] if known else cols


def best_configs(
    runs: pd.DataFrame | None, maximize: bool, k: int = 3, drop_unset: bool = False
) -> list[dict[str, Any]]:
    """The configs of the ``k`` best runs of a training matrix (``params.*`` columns), best
    first; ``drop_unset`` leaves out the parameters a run did not set."""
    if runs is None or runs.empty or "value" not in runs.columns:
        return []
    top = runs.sort_values("value", ascending=not maximize).head(k)
    cols = [c for c in top.columns if str(c).startswith(PARAM_PREFIX)]
    return [
        {c[len(PARAM_PREFIX) :]: plain(v) for c, v in rec.items() if not drop_unset or is_set(v)}
        for rec in top[cols].to_dict(orient="records")
    ]


__all__ = [
    "PARAM_PREFIX",
    "best_configs",
    "config_keys",
    "exclude_run",
    "is_set",
    "is_space",
    "load_candidates",
    "param_names",
    "space_candidates",
]
