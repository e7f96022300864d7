"""Acquisition keys and batches: how one or ``n`` picks are made from scored candidates.

A batch of ``n > 1`` is chosen by Kriging believer (Ginsbourger, Le Riche & Carraro 2010):
pick the best, pretend it returned its predicted mean, update, pick again. Pending trials
(configs in flight) are fantasized the same way.

Once the best run on a dataset has not improved for :data:`RANDOM_EVERY` trials, the next pick
is a random candidate, and so again every ``RANDOM_EVERY`` trials while it stays unimproved
(interleaved random configurations, as SMAC's random designs, Hutter et al. 2011, spent only
where the search stalls): a model confidently wrong about a region — a parameter level the
history says does not matter, a plateau of tied scores — cannot keep the search from it for
long, and a search that keeps improving is left alone.

A dataset's first :data:`WARM_START` trials come from the history's portfolio
(:func:`history_pick`): greedily, the config that most lowers the training datasets' mean
normalized regret under the meta-learner's surfaces of those datasets, given what the dataset
has already run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from metaopt_bayes import acquisition as acq
from warehouse.errors import ValidationError
from warehouse.protocol import WarehouseLike

#: The columns a recommendation adds to its candidates' own (``random``: a random pick).
OUTPUT_COLUMNS = ("mean", "sd", "acquisition", "rank", "random")

#: Trials without improving on the best before a random pick (0: never). Measured in
#: ``benchmarks/results/adaptation.md`` (§ Random picks where the search stalls).
RANDOM_EVERY = 8


def trials_since_best(values: Any, maximize: bool) -> int | None:
    """How many of a dataset's runs (``values`` in the order they ran) came after its best
    one; None with no finite value."""
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    if not ok.any():
        return None
    v = np.where(ok, v if maximize else -v, -np.inf)
    return len(v) - 1 - int(np.argmax(v))  # the first run reaching the best


def random_steps(
    every: int, since_best: int | None, n: int, seed: int, done: int = 0
) -> dict[int, np.random.Generator]:
    """The steps of a batch of ``n`` that are random picks: those at which ``every``,
    ``2·every``, … trials will have passed without improving on the best (``since_best``
    counts the runs after it and the trials pending; None: nothing observed, no random pick).
    Each gets its own generator, seeded by ``seed`` and its trial number ``done + step + 1``,
    so a resumed search repeats its choices."""
    if isinstance(every, bool) or not isinstance(every, int | np.integer) or every < 0:
        raise ValidationError(f"random_every must be a whole number ≥ 0, not {every!r}")
    if every == 0 or since_best is None:
        return {}
    return {
        step: np.random.default_rng([int(seed), done + step + 1])
        for step in range(n)
        if since_best + step > 0 and (since_best + step) % every == 0
    }


def acquisition_key(acquisition: str) -> str:
    """The acquisition's canonical name (case and ``_``/``-`` insensitive), or a clear error."""
    key = str(acquisition).lower().replace("_", "-")
    if key not in acq.ACQUISITIONS and key not in ("thompson", "log-ei"):
        raise ValidationError(
            f"unknown acquisition {acquisition!r}; choose one of {', '.join(acq.ACQUISITIONS)}"
        )
    return key


def ranked(
    pool: pd.DataFrame,
    chosen: list[int],
    shown: pd.DataFrame,
    scores: list[float],
    random: list[bool] | None = None,
) -> pd.DataFrame:
    """The chosen pool rows, best first, with their predicted ``mean``/``sd``, ``acquisition``
    score, ``rank`` and ``random`` (picked at random, see :func:`random_steps`) — the frame
    ``recommend`` returns."""
    out = pool.iloc[chosen].reset_index(drop=True).copy()
    out["mean"] = shown["mean"].to_numpy(float)[chosen]
    out["sd"] = shown["sd"].to_numpy(float)[chosen]
    out["acquisition"] = scores
    out["rank"] = np.arange(1, len(out) + 1)
    out["random"] = [False] * len(out) if random is None else random
    return out


#: at most this many pool candidates (a seeded random subset of a larger pool) are scored for
#: a warm pick: scoring costs candidates × training datasets × their runs (a 100,000-row pool
#: took 49 s over 30 datasets), and a greedy cover barely changes on a denser subset
WARM_POOL = 1024

#: trials of a dataset picked from the history's portfolio before EI takes over (see
#: :func:`history_pick`); measured in ``benchmarks/results/history_portfolio.md``
WARM_START = 3


@dataclass
class WarmStart:
    """The history's warm start for one batch: ``regret`` (D, n), each training dataset's
    normalized regret of each pool candidate (:meth:`MetaLearner.history_regret`);
    ``covered`` (D,), the best regret on each training dataset among the configs the target
    has already run or has pending (1 where it has none); ``steps``, how many picks of the
    batch still come from the portfolio; ``columns``, the pool rows ``regret``'s columns
    score (all of them unless the pool exceeds :data:`WARM_POOL`)."""

    regret: np.ndarray
    covered: np.ndarray
    steps: int
    columns: np.ndarray

    def pick(self, taken: Sequence[int]) -> int:
        """The next portfolio pick (a pool row not in ``taken``); it then counts as covered."""
        where = {int(c): i for i, c in enumerate(self.columns)}
        j = history_pick(self.regret, self.covered, [where[t] for t in taken if t in where])
        self.covered = np.minimum(self.covered, self.regret[:, j])
        return int(self.columns[j])


def history_pick(regret: np.ndarray, covered: np.ndarray, taken: Sequence[int]) -> int:
    """The candidate that most lowers the training datasets' mean regret given ``covered``:
    one step of a greedy zero-shot portfolio (auto-sklearn 2.0; TabRepo), built on the
    meta-learner's surfaces of the training datasets, so any candidate can enter it. Its
    first pick is the config best on average across the history *per dataset* (not the best
    predicted level of a pooled model, which datasets with wide metric spreads dominate), and
    each later pick covers the datasets the earlier ones served worst."""
    score = np.minimum(covered[:, None], regret).mean(axis=0)
    score[list(taken)] = np.inf
    return int(np.argmin(score))


def check_warm_start(value: Any) -> None:
    """A one-line error unless ``value`` is a whole number ≥ 0 (a ``warm_start``)."""
    whole = isinstance(value, int | np.integer) and not isinstance(value, bool)
    if not whole or value < 0:
        raise ValidationError(f"warm_start must be a whole number ≥ 0, not {value!r}")


def plan_warm_start(
    learner: Any,
    pool: pd.DataFrame,
    seen: pd.DataFrame | None,
    n_runs: int,
    n: int,
    key: str,
    warm_trials: int,
    seed: int = 0,
) -> WarmStart | None:
    """The :class:`WarmStart` of a batch of ``n`` picks for a dataset with ``n_runs`` runs
    and pending trials, or None (not the EI family, no picks left to the warm start, or a
    learner without history surfaces). ``seen``: the configs it has run or has pending;
    ``seed`` draws the scored subset of a pool larger than :data:`WARM_POOL`."""
    check_warm_start(warm_trials)
    steps = min(n, int(warm_trials) - int(n_runs))
    if key not in acq.EI_KEYS or steps <= 0 or not hasattr(learner, "history_regret"):
        return None
    columns = np.arange(len(pool))
    if len(pool) > WARM_POOL:
        columns = np.sort(np.random.default_rng(seed).choice(len(pool), WARM_POOL, replace=False))
    scored = pool.iloc[columns]
    both = scored if seen is None or seen.empty else pd.concat([scored, seen], ignore_index=True)
    regret = learner.history_regret(both)
    if regret is None:
        return None
    m = len(columns)
    covered = regret[:, m:].min(axis=1) if len(both) > m else np.ones(regret.shape[0])
    return WarmStart(regret[:, :m].copy(), covered, steps, columns)


def believer_batch(
    predict: Callable[[pd.DataFrame | None], pd.DataFrame],
    pool: pd.DataFrame,
    n: int,
    key: str,
    observed: Any,
    maximize: bool,
    extra: pd.DataFrame | None = None,
    random_at: Mapping[int, np.random.Generator] | None = None,
    uniform: np.ndarray | None = None,
    warm: WarmStart | None = None,
    **score_kw: Any,
) -> tuple[list[int], list[float]]:
    """``n`` distinct picks from ``pool`` by greedy acquisition with a Kriging believer.

    ``predict(extra_runs)`` returns the latent ``mean``/``sd`` of every pool row given the
    fantasized runs ``extra_runs``; after each pick the chosen config "returns" its predicted
    mean and the rest are re-scored (Ginsbourger et al., 2010). Returns (indices, scores).

    For EI, with nothing observed on the dataset (and nothing pending) the first pick is the
    best predicted mean, not the best EI: against a *predicted* incumbent, EI prefers the widest
    intervals — the corners of the space. Measured on tabrepo_lightgbm_2022 (93 held-out tasks,
    5 folds): first-pick regret .459 with EI (worse than a random config, .331), .253 with the
    best mean, and lower regret at 5 and 25 trials too. Cost-aware EI keeps its own first pick
    (a cheap one: it led at every training-time budget). The reported score is still the EI.

    ``warm``: the history's warm start (:class:`WarmStart`); its steps pick from the
    history's portfolio instead (EI family only; see :func:`history_pick`), and the rule
    above then does not apply.

    ``random_at``: steps that pick uniformly at random (with that step's generator) among the
    candidates not yet chosen, restricted to ``uniform`` ones when given (a search space's
    Sobol points, not the refinements around the incumbents).
    """
    chosen: list[int] = []
    scores: list[float] = []
    for step in range(n):
        lat = predict(extra)
        mu, sd = lat["mean"].to_numpy(float), lat["sd"].to_numpy(float)
        best = acq.incumbent(observed, mu, maximize=maximize)
        s = acq.score(key, mu, sd, best, maximize=maximize, **score_kw)
        s = np.where(np.isfinite(s), s, -np.inf)
        s[chosen] = -np.inf
        zero_shot = extra is None and not np.isfinite(np.asarray(observed, float)).any()
        if random_at and step in random_at:
            free = np.isfinite(s) if uniform is None else np.isfinite(s) & uniform
            if not free.any():
                free = np.isfinite(s)
            idx = int(random_at[step].choice(np.flatnonzero(free)))
        elif warm is not None and step < warm.steps and key in acq.EI_KEYS:
            idx = warm.pick(chosen)
        elif step == 0 and zero_shot and key in acq.EI_KEYS:
            idx = int(np.nanargmax(mu if maximize else -mu))
        else:
            idx = int(np.argmax(s))
        chosen.append(idx)
        scores.append(float(s[idx]))
        if step + 1 < n:
            believed = pool.iloc[[idx]].copy()
            believed["value"] = mu[idx]
            extra = believed if extra is None else pd.concat([extra, believed])
    return chosen, scores


def fantasies(
    learner: Any,
    dataset: str,
    pending: pd.DataFrame | None,
    runs: pd.DataFrame,
    warehouse: WarehouseLike,
    meta: pd.DataFrame | None = None,
) -> pd.DataFrame | None:
    """Pending configs with ``value`` = their predicted mean (Kriging believer). Rows that
    come with a ``value`` of their own (a pruned trial's predicted final,
    :class:`metaopt_bayes.curve_pruning.PrunedEvidence`) keep it and its quantiles, which the
    update reads as the row's own variance; the others are predicted (variance 0) by
    ``learner`` — a MetaLearner or a FamilyLearner — given ``runs`` (and ``meta``, else the
    warehouse's meta-features)."""
    if pending is None or len(pending) == 0:
        return None
    pend = pending.reset_index(drop=True).copy()
    if "value" not in pend.columns:
        pend["value"] = np.nan
    value = np.array(pd.to_numeric(pend["value"], errors="coerce"), dtype=float)
    todo = ~np.isfinite(value)
    if todo.any():
        rows = pend.loc[todo].drop(columns=["value"])
        pred = learner.predict(
            dataset, rows, warehouse=warehouse, meta=meta, runs=runs, predictive=False
        )
        value[todo] = pred["mean"].to_numpy(float)
    pend["value"] = value
    return pend


__all__ = [
    "OUTPUT_COLUMNS",
    "RANDOM_EVERY",
    "WARM_POOL",
    "WARM_START",
    "WarmStart",
    "acquisition_key",
    "believer_batch",
    "check_warm_start",
    "fantasies",
    "history_pick",
    "plan_warm_start",
    "random_steps",
    "ranked",
    "trials_since_best",
]
