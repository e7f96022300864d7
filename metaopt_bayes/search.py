"""The public door: recommend what to train next, and optimize — for one model family or several.

- :func:`recommend` ranks candidate configurations for one dataset by an acquisition
  function under a fitted learner: a :class:`~metaopt_bayes.model.MetaLearner` (one family,
  :func:`metaopt_bayes.recommend_model.recommend`) or a
  :class:`~metaopt_bayes.families.FamilyLearner` (several, the joint space).
- :func:`optimize` is the closed loop: recommend → train and evaluate (the built-in trainer,
  or any ``config -> metrics`` callable) → log the run → update, through the one trial loop
  (:mod:`metaopt_bayes.trials`) with the single-family (:mod:`metaopt_bayes.optimize_model`) or
  the joint (:mod:`metaopt_bayes.optimize_families`) proposer plugged in. It resumes from the
  warehouse: trials are runs with source ``metaopt:optimize`` on (dataset, model), so a run stopped
  by Ctrl-C or ``kill -9`` and started again continues where the finished runs left off.
  At the end the winner is retrained on the full training split, evaluated once on the
  held-out test split, saved next to the warehouse (joblib) and logged with
  ``split='test'``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from metaopt_bayes.batch import RANDOM_EVERY, WARM_START
from metaopt_bayes.candidates import exclude_run, is_space, load_candidates, space_candidates
from metaopt_bayes.optimize_model import fit_cost_learner, optimize_model
from metaopt_bayes.pruning import DEFAULT_THRESHOLD
from metaopt_bayes.recommend_model import recommend as recommend_one
from metaopt_bayes.recommend_model import record_recommendations
from metaopt_bayes.trials import (
    FINAL_SOURCE,
    TRIAL_SOURCE,
    OptimizeResult,
    SearchSettings,
    call_objective,
    fit_and_test,
    make_executor,
)
from warehouse.errors import ValidationError
from warehouse.protocol import WarehouseLike


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
    Across model families: pass a :class:`~metaopt_bayes.families.FamilyLearner` (its
    ``families`` None = every family with history) and a joint space or a candidate frame
    with a ``model`` column (a single-family space is ignored in favour of the joint space);
    see :meth:`~metaopt_bayes.families.FamilyLearner.recommend`.

    Returns the candidates' columns, values unchanged, plus ``mean`` and ``sd`` (the
    predictive distribution of the metric a run would show), ``acquisition`` (the score it
    was picked with: log EI, log PI, UCB, for ``ts`` the posterior probability of being
    the best candidate, or log EI per second), ``rank`` (1 = best) and ``random``: once the
    dataset's best run has not improved for ``random_every`` trials (its finished runs and
    ``pending`` counted), the pick is a candidate drawn at random, and again every
    ``random_every`` trials while the best stays put, so a confidently wrong model cannot
    keep the search from a region for long (0 turns this off; see
    :mod:`metaopt_bayes.batch`). ``warm_start``: with EI, one model family, the dataset's
    first ``warm_start`` trials (runs and ``pending``) come from the history's portfolio, the
    candidates that best cover the training datasets under the learner's surfaces of them
    (:func:`metaopt_bayes.batch.history_pick`; 0 turns this off). ``record=True`` also
    stores them in the ``recommendations`` table.
    """
    from metaopt_bayes.families import FamilyLearner

    if isinstance(learner, FamilyLearner):  # across model families: the joint space
        return learner.recommend(
            warehouse,
            dataset,
            None if is_space(candidates) else candidates,
            n,
            acquisition,
            include_run=include_run,
            pending=pending,
            n_candidates=n_candidates,
            seed=seed,
            beta=beta,
            xi=xi,
            alpha=alpha,
            record=record,
            random_every=random_every,
        )
    return recommend_one(
        learner,
        warehouse,
        dataset,
        candidates,
        n,
        acquisition,
        include_run=include_run,
        pending=pending,
        cost_learner=cost_learner,
        n_candidates=n_candidates,
        seed=seed,
        beta=beta,
        xi=xi,
        alpha=alpha,
        record=record,
        random_every=random_every,
        warm_start=warm_start,
    )


def optimize(
    warehouse: WarehouseLike,
    dataset: str,
    model: str | list[str] | tuple[str, ...] | None,
    budget: int,
    space: Any = None,
    candidates: Any = None,
    objective: Callable[[dict[str, Any]], Any] | None = None,
    acquisition: str = "ei",
    executor: Any = None,
    *,
    learner: Any = None,
    metric: str | None = None,
    direction: str | None = None,
    jobs: int = 1,
    refit_every: int = 10,
    n_init: int | None = None,
    fit_method: str = "nuts",
    cost_learner: Any = None,
    cv: int | float | None = 5,
    seed: int = 0,
    test_size: float = 0.25,
    retrain: bool = True,
    n_candidates: int = 512,
    timeout_s: float | None = None,
    artifacts_dir: str | Path | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
    default_first: bool = True,
    release: bool = False,
    reuse: bool = True,
    heartbeat_s: float | None = None,
    stale_after: float | None = None,
    random_every: int = RANDOM_EVERY,
    warm_start: int = WARM_START,
    prune: Any = False,
    prune_threshold: float = DEFAULT_THRESHOLD,
    budget_steps: int | None = None,
) -> OptimizeResult:
    """Optimize ``model`` on ``dataset`` for ``budget`` trials (in total, resumed ones count).

    Each step recommends (``acquisition`` under the meta-learner, pending trials fantasized),
    trains and evaluates — the built-in trainer (cross-validation on the training split of a
    registered dataset) or ``objective(config) -> {metric: value}`` — logs the run and lets the
    few-shot update see it. An objective may also return ``duration_s``, ``cpu_s``,
    ``peak_mem_mb`` and ``arch.NAME`` keys, logged as the run's cost and architecture (the
    contract: :func:`metaopt_bayes.trials.objective_result`, ``docs/objectives.md``); its
    ``metric`` defaults to the one the warehouse has for ``model`` (with no runs yet, the one
    its first result names). The built-in trainer's defaults to accuracy, or rmse for
    regression. The learner's population is fitted on the *other* datasets (the
    target's trials act only through the closed-form update) and refitted every
    ``refit_every`` new trials if they gained runs meanwhile. Without a fitted
    ``learner`` one is fitted on the warehouse (``fit_method``); with no history at all,
    ``n_init`` Sobol/random trials come first. ``executor``: None (in-process for ``jobs=1``,
    else a local process pool), ``"dask://HOST:PORT"`` or any ``concurrent.futures.Executor``.
    Ctrl-C stops cleanly (``result.interrupted``); calling again resumes.
    ``default_first``: on a dataset with no runs of ``model`` yet, the first trial is the
    family's scikit-learn default configuration when it lies in the space (as SMAC's initial
    design does): the best trial is then never worse in CV than the default.
    At the end (built-in trainer, ``retrain=True``) the best config is refitted on the whole
    training split, evaluated on the held-out test split, saved as joblib next to the
    warehouse (or in ``artifacts_dir``) and logged with ``split='test'``. ``release``: let
    go of the warehouse file while trials run (:meth:`warehouse.Warehouse.released`), so
    other processes can read the trials logged so far; the CLI does (one model family).
    Fits are reused (:func:`metaopt_bayes.reuse.learner_for`): the newest recorded fit with the
    same settings whose datasets other than ``dataset`` are unchanged serves instead of a new
    fit (``result.learner.reuse_note`` says which); ``reuse=False`` fits afresh. ``learner``
    may also be a recorded fit's id (or a learner file), one model family only.

    Several processes may optimize the same dataset and model(s) on one warehouse file at
    once (with ``release=True`` they run side by side, else one after the other): every
    trial is claimed in the warehouse first (:mod:`warehouse.claims`), so together they run
    ``budget`` trials and never the same config twice; other processes' running trials are
    fantasized as pending. A process's running trials are heartbeaten every ``heartbeat_s``
    seconds (default 10, ``$METAOPT_HEARTBEAT_S``); another process's trial without a
    heartbeat for ``stale_after`` seconds (default 300, ``$METAOPT_STALE_AFTER_S``), or whose
    process on this host is gone, is marked failed and its slot is run again. A process that
    finds the budget taken by running trials waits for them before it returns.

    Once the best trial has not improved for ``random_every`` trials (default 8; 0 never), the
    next is a random candidate instead of the acquisition's choice, and so on every
    ``random_every`` trials while it stays unimproved: a confidently wrong meta-learner cannot
    keep the search from a region for long (see :func:`recommend`).

    ``prune``: stop trials whose learning curve says they will not beat the best one
    (``docs/pruning.md``). ``True`` fits a curve model on the warehouse's finished curves of
    ``model`` and stops a trial once the probability that its final value beats the
    dataset's best finished value falls below ``prune_threshold`` (never before a tenth of
    its budget in steps); a :class:`~metaopt_bayes.pruning.Pruner` object is used instead.
    The budget in steps is ``budget_steps``, else a zoo config's own ``max_iter``, else the
    largest step of the model's finished curves. The built-in trainer then fits ``mlp``
    epoch by epoch and ``hist_gradient_boosting`` 10 iterations at a time and reports the
    CV mean of ``metric`` per step; an objective reports through its second argument
    (``objective(config, trial)``: ``trial.report(step, value)``, ``trial.should_prune()``,
    raise :class:`~metaopt_bayes.pruning.TrialPruned`). A pruned trial is logged with status
    ``'pruned'``, its partial curve and its last reported value; it is never proposed again
    and enters the few-shot update at the curve model's predicted final (see
    :mod:`metaopt_bayes.curve_pruning`). With no finished curve of ``model`` in the
    warehouse nothing is pruned, with a warning, and the trials' curves are logged for the
    next search. Across families each family that trains in steps is pruned under its own
    curve model against the dataset's best finished run of any family; the others train
    in one go.

    ``model=None`` (every zoo family for the dataset's task) or a list of families searches
    the families and their spaces together (:func:`metaopt_bayes.families.optimize_families`;
    built-in trainer only, ``learner`` a FamilyLearner); ``result.model`` is then the
    winner's family and ``result.trials`` has a ``model`` column.
    """
    settings = SearchSettings(
        acquisition=acquisition, executor=executor, jobs=jobs, refit_every=refit_every,
        n_init=n_init, fit_method=fit_method, cv=cv, seed=seed, test_size=test_size,
        retrain=retrain, n_candidates=n_candidates, timeout_s=timeout_s,
        artifacts_dir=artifacts_dir, callback=callback, release=release, reuse=reuse,
        heartbeat_s=heartbeat_s, stale_after=stale_after, random_every=random_every,
        warm_start=warm_start, prune=prune, prune_threshold=prune_threshold,
        budget_steps=budget_steps,
    )  # fmt: skip
    if model is None or isinstance(model, list | tuple):
        if objective is not None or candidates is not None:
            raise ValidationError(
                "a search across model families takes no objective= or candidates=; "
                "pass one model to use them"
            )
        from metaopt_bayes.families import JointSpace
        from metaopt_bayes.optimize_families import optimize_families

        if isinstance(learner, str):
            raise ValidationError("learner= by id picks one model family's fit; pass one model")
        if space is not None and not isinstance(space, JointSpace):
            raise ValidationError("space= for several model families must be a JointSpace")
        joint = dataclasses.replace(settings, n_candidates=min(n_candidates, 256))
        return optimize_families(
            warehouse, dataset, model, budget, joint, space=space, metric=metric, learner=learner
        )
    return optimize_model(
        warehouse, dataset, model, budget, settings, space=space, candidates=candidates,
        objective=objective, learner=learner, metric=metric, direction=direction,
        cost_learner=cost_learner, default_first=default_first,
    )  # fmt: skip


__all__ = [
    "FINAL_SOURCE",
    "TRIAL_SOURCE",
    "OptimizeResult",
    "call_objective",
    "exclude_run",
    "fit_and_test",
    "fit_cost_learner",
    "load_candidates",
    "make_executor",
    "optimize",
    "recommend",
    "record_recommendations",
    "space_candidates",
]
