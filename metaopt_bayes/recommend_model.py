"""Recommend what to train next on one dataset, for any learner with ``predict``.

:func:`recommend` ranks candidate configurations by an acquisition function
(:mod:`metaopt_bayes.acquisition`) under a fitted learner — a
:class:`~metaopt_bayes.model.MetaLearner` or anything with its ``predict`` /
``predict_draws`` — using the runs logged for the dataset *at call time* through the
learner's closed-form few-shot update (no refit). A batch of ``n > 1`` is chosen by Kriging
believer (:mod:`metaopt_bayes.batch`), or, for Thompson sampling, one fresh joint draw per
pick (Kandasamy et al. 2018).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metaopt_bayes import acquisition as acq
from metaopt_bayes.batch import (
    OUTPUT_COLUMNS,
    RANDOM_EVERY,
    WARM_START,
    acquisition_key,
    believer_batch,
    fantasies,
    plan_warm_start,
    random_steps,
    ranked,
    trials_since_best,
)
from metaopt_bayes.candidates import (
    PARAM_PREFIX,
    best_configs,
    exclude_run,
    is_space,
    load_candidates,
    param_names,
    space_candidates,
)
from metaopt_bayes.space import plain
from warehouse.errors import CandidatesExhaustedError, NotFoundError, ValidationError
from warehouse.protocol import WarehouseLike


def observed_runs(learner: Any, warehouse: WarehouseLike, dataset: str) -> pd.DataFrame:
    """The dataset's runs of the learner's model with its metric (a training matrix)."""
    try:
        runs = warehouse.training_matrix(learner.metric, model=learner.model, datasets=[dataset])
    except NotFoundError:
        return pd.DataFrame()
    return runs


def recommend(
    learner: Any,
    warehouse: WarehouseLike,
    dataset: str,
    candidates: Any,
    n: int = 1,
    acquisition: str = "ei",
    *,
    include_run: bool = False,
    pending: pd.DataFrame | None = None,
    cost_learner: Any = None,
    n_candidates: int = 512,
    seed: int = 0,
    beta: float = 2.0,
    xi: float = 0.0,
    alpha: float = 1.0,
    record: bool = False,
    random_every: int = RANDOM_EVERY,
    warm_start: int = WARM_START,
) -> pd.DataFrame:
    """The ``n`` best candidates for ``dataset`` by ``acquisition``, best first.

    ``candidates``: a DataFrame of parameter columns (names without ``params.``), a CSV path,
    or a search space (then ``n_candidates`` Sobol points + local refinement around the best
    runs). Configs already run on the dataset are excluded unless ``include_run``. ``pending``:
    configs in flight (parameter columns), fantasized at their predicted mean (Kriging
    believer). ``cost_learner``: a MetaLearner of training seconds, needed by ``cost-ei``.
    Across model families use :func:`metaopt_bayes.search.recommend` with a
    :class:`~metaopt_bayes.families.FamilyLearner`.

    Returns the candidates' columns, values unchanged, plus ``mean`` and ``sd`` (the
    predictive distribution of the metric a run would show), ``acquisition`` (the score it
    was picked with: log EI, log PI, UCB, for ``ts`` the posterior probability of being
    the best candidate, or log EI per second) and ``rank``
    (1 = best) and ``random``: once the dataset's best run has not improved for
    ``random_every`` trials (its runs since the best and ``pending``), the pick is a candidate
    drawn at random — from a space, one of its Sobol points — and again every ``random_every``
    trials while the best stays put (see :mod:`metaopt_bayes.batch`; 0 turns this off).
    ``warm_start``: with EI (the default), a dataset's first ``warm_start`` trials (its runs
    and ``pending`` count) come from the history's portfolio — greedily, the candidate that
    most lowers the training datasets' mean normalized regret under the learner's surfaces of
    them (see :func:`metaopt_bayes.batch.history_pick`); 0 turns this off.
    ``record=True`` also stores them in the ``recommendations`` table.
    """
    if n < 1:
        raise ValidationError(f"n must be a positive integer, not {n!r}")
    key = acquisition_key(acquisition)
    if key == "cost-ei" and cost_learner is None:
        raise ValidationError("acquisition 'cost-ei' needs a duration model (cost_learner=...)")
    dataset = str(dataset)
    runs = observed_runs(learner, warehouse, dataset)
    maximize = learner.direction == "maximize"
    if is_space(candidates):
        best = best_configs(runs, maximize, k=3)
        cands = space_candidates(
            candidates,
            n_candidates,
            seed=seed,
            incumbents=best,
            portfolio=getattr(learner, "portfolio", None),
        )
        sobol = np.arange(len(cands)) < n_candidates  # uniform over the space
        twice = cands.duplicated().to_numpy()
        cands, sobol = cands[~twice].reset_index(drop=True), sobol[~twice]
    else:
        cands = load_candidates(candidates)
        sobol = np.ones(len(cands), dtype=bool)
        if isinstance(candidates, str | Path | list) and hasattr(learner, "encoder"):
            learner.encoder.check(cands, values=False)  # typed by a user: no stray columns
    names = param_names(learner, cands)
    keep = pd.Series(True, index=cands.index) if include_run else exclude_run(cands, runs, names)
    if pending is not None and len(pending):
        keep &= exclude_run(cands, pending.add_prefix(PARAM_PREFIX), names)
    pool, uniform = cands[keep].reset_index(drop=True), sobol[keep.to_numpy()]
    if pool.empty:
        raise CandidatesExhaustedError(
            f"every candidate was already run on dataset {dataset!r} (pass include_run=True)"
        )
    n = min(int(n), len(pool))
    observed = (
        pd.to_numeric(runs["value"], errors="coerce").to_numpy() if len(runs) else np.array([])
    )
    n_pending = 0 if pending is None else len(pending)
    in_order = runs.sort_values("seq")["value"] if "seq" in runs.columns else observed
    since = trials_since_best(pd.to_numeric(in_order, errors="coerce"), maximize)
    random_at = random_steps(
        random_every,
        None if since is None else since + n_pending,
        n,
        seed,
        int(np.isfinite(observed).sum()) + n_pending,
    )
    fantasy = fantasies(learner, dataset, pending, runs, warehouse)
    # read once: every prediction below conditions on the same runs and meta-features
    meta = warehouse.meta_features(datasets=[dataset])
    shown = learner.predict(
        dataset, pool, warehouse=warehouse, meta=meta, runs=runs, extra_runs=fantasy
    )
    cost = None
    if key == "cost-ei":
        cost_runs = None
        if len(runs) and "duration_s" in runs.columns:  # the dataset's measured seconds
            cost_runs = runs.assign(value=pd.to_numeric(runs["duration_s"], errors="coerce"))
            cost_runs = cost_runs[cost_runs["value"] > 0]
        cost = np.asarray(
            cost_learner.predict(dataset, pool, warehouse=warehouse, meta=meta, runs=cost_runs)[
                "mean"
            ],
            dtype=float,
        )
    chosen: list[int] = []
    scores: list[float] = []
    if key in ("ts", "thompson"):
        draws = learner.predict_draws(
            dataset, pool, warehouse=warehouse, meta=meta, runs=runs, extra_runs=fantasy, seed=seed
        )
        chosen = acq.thompson_batch(draws, n, rng=seed, maximize=maximize).tolist()
        for step, rng in random_at.items():
            free = uniform.copy()
            free[chosen] = False
            if free.any():
                chosen[step] = int(rng.choice(np.flatnonzero(free)))
        # reported score: the posterior probability that the candidate is the best one
        winners = np.argmax(draws if maximize else -draws, axis=1)
        p_best = np.bincount(winners, minlength=draws.shape[1]) / draws.shape[0]
        scores = [float(p_best[i]) for i in chosen]
    else:
        ran = runs[[c for c in runs.columns if str(c).startswith(PARAM_PREFIX)]]
        seen = ran.rename(columns=lambda c: c[len(PARAM_PREFIX) :])
        if n_pending:
            seen = pd.concat([seen, pending], ignore_index=True)
        warm = plan_warm_start(
            learner,
            pool[names],
            seen,
            int(np.isfinite(observed).sum()) + n_pending,
            n,
            key,
            warm_start,
            seed,
        )
        chosen, scores = believer_batch(
            lambda extra: learner.predict(
                dataset,
                pool,
                warehouse=warehouse,
                meta=meta,
                runs=runs,
                extra_runs=extra,
                predictive=False,
            ),
            pool,
            n,
            key,
            observed,
            maximize,
            fantasy,
            random_at=random_at,
            uniform=uniform,
            warm=warm,
            cost=cost,
            beta=beta,
            xi=xi,
            alpha=alpha,
        )
    out = ranked(pool, chosen, shown, scores, [step in random_at for step in range(n)])
    if cost is not None:
        out["predicted_s"] = cost[chosen]
    if record:
        record_recommendations(warehouse, learner, dataset, out, key)
    return out


def record_recommendations(
    warehouse: WarehouseLike,
    learner: Any,
    dataset: str,
    recs: pd.DataFrame,
    acquisition: str,
    run_ids: list[str | None] | None = None,
) -> list[str]:
    """Store recommendations (config as JSON, mean, sd, score, rank) in the warehouse."""
    cfg_cols = [c for c in recs.columns if c not in (*OUTPUT_COLUMNS, "predicted_s")]
    cfg_cols = [c for c in cfg_cols if not str(c).startswith("_")]
    rows = pd.DataFrame(
        {
            "model_id": getattr(learner, "model_id", None),
            "dataset": dataset,
            "model": getattr(learner, "model", None),
            "config": [
                {c: plain(v) for c, v in r.items()} for r in recs[cfg_cols].to_dict("records")
            ],
            "mean": recs["mean"].astype(float).to_numpy(),
            "sd": recs["sd"].astype(float).to_numpy(),
            "acquisition": acquisition,
            "acquisition_value": recs["acquisition"].astype(float).to_numpy(),
            "rank": recs["rank"].astype(int).to_numpy(),
        }
    )
    if run_ids is not None:
        rows["run_id"] = run_ids
    return warehouse.record_recommendations(rows)


__all__ = ["observed_runs", "recommend", "record_recommendations"]
