"""The single-family optimizer: what ``optimize`` tries next on one model family.

:class:`ModelProposer` plugs into the trial loop (:func:`metaopt_bayes.trials.run_trials`):
the family's scikit-learn default opens a search on a dataset without runs of it (as SMAC's
initial design does, so the best trial is never worse in CV than the default); then each
step recommends under the meta-learner (:func:`metaopt_bayes.recommend_model.recommend`, pending
trials fantasized), or draws an initial-design point while there is nothing to learn from.
:func:`optimize_model` sets it up — the built-in trainer or a user objective, the space or
pool — runs the loop, and retrains the winner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from metaopt_bayes.batch import OUTPUT_COLUMNS, RANDOM_EVERY, WARM_START, acquisition_key
from metaopt_bayes.candidates import (
    PARAM_PREFIX,
    config_keys,
    exclude_run,
    is_space,
    load_candidates,
)
from metaopt_bayes.curve_pruning import PrunedEvidence, SearchPruning, search_pruning
from metaopt_bayes.recommend_model import recommend, record_recommendations
from metaopt_bayes.space import is_missing, plain
from metaopt_bayes.trials import (
    TRIAL_SOURCE,
    Holdout,
    LearningProposer,
    LoopOutcome,
    ObjectiveRunner,
    OptimizeResult,
    Proposal,
    SearchSettings,
    TrainerRunner,
    best_trial,
    existing_trials,
    fit_without_target,
    other_runs,
    run_trials,
    settle_winner,
    trial_table,
    warn_if_all_failed,
)
from warehouse.errors import CandidatesExhaustedError, NotFoundError, ValidationError
from warehouse.protocol import WarehouseLike


def default_metric(task: str | None) -> str:
    """The metric the built-in trainer's search optimizes when none is named: RMSE for
    regression, else accuracy (the trainer logs both kinds of metric, these among them)."""
    return "rmse" if task == "regression" else "accuracy"


def objective_metric(warehouse: WarehouseLike, model: str, metric: str | None) -> str | None:
    """The metric a search with a user objective optimizes: ``metric`` when named, else the
    one metric the warehouse has for ``model``'s runs; None when it has none yet (the first
    result of the objective names it). Several: a one-line error, before any trial."""
    if metric is not None:
        return str(metric)
    logged = [m for m in warehouse.metric_counts(model) if m != "duration_s"]
    if len(logged) > 1:
        shown = ", ".join(logged[:8]) + (", …" if len(logged) > 8 else "")
        raise ValidationError(
            f"the runs of {model!r} log {len(logged)} metrics ({shown}); name the one to "
            "optimize with metric= (--metric)"
        )
    return logged[0] if logged else None


def _resolve_space(space: Any) -> Any:
    if space is None or is_space(space):
        return space
    from metaopt_bayes.space import SearchSpace

    if isinstance(space, Mapping):
        return SearchSpace.from_dict(space)
    return SearchSpace.from_file(space)


def fit_cost_learner(
    warehouse: WarehouseLike,
    metric: str,
    model: str | None,
    method: str = "nuts",
    exclude: list[str] | None = None,
    **config: Any,
) -> Any:
    """A MetaLearner of training seconds (``duration_s`` of the runs that logged ``metric``),
    on a log scale, for cost-aware EI (Snoek et al. 2012 model the cost with a second GP);
    ``exclude`` leaves datasets out of the fit (as :func:`optimize` does with its target)."""
    from metaopt_bayes.model import MetaLearner

    runs = warehouse.training_matrix(metric, model=model, exclude=exclude)
    if len(runs):
        runs = runs.assign(value=pd.to_numeric(runs["duration_s"], errors="coerce"))
        runs = runs[runs["value"] > 0]
    if not len(runs):
        raise ValidationError(f"no runs of {model!r} with a measured duration_s to model cost")
    lrn = MetaLearner(
        "duration_s", model=model, direction="minimize", method=method, transform="log", **config
    )
    return lrn.fit_frame(runs.reset_index(drop=True), warehouse.meta_features())


def _family_default(
    warehouse: WarehouseLike, dataset: str, model: str, space: Any, task: str | None
) -> dict[str, Any] | None:
    """The zoo family's default configuration as a point of ``space``, or None (not a zoo
    family, runs of it on the dataset already, unknown task, or a default outside the
    space)."""
    from metaopt_bayes.zoo import FAMILIES

    family = FAMILIES.get(model)
    if family is None:
        return None
    if warehouse.count_runs(dataset=dataset, model=model):
        return None  # the dataset has runs of this model already: they are the start
    try:
        info = warehouse.dataset_info(dataset)
    except NotFoundError:
        info = {}
    task = task or info.get("task")
    if task not in family.tasks:
        return None
    p = info.get("n_features")
    cfg = family.default_config(task, int(p) if pd.notna(p) and p > 0 else None)
    if cfg is None:
        return None
    try:
        return space.validate({k: v for k, v in cfg.items() if k in space.names})
    except ValidationError:
        return None


def _typed_config(cfg: dict[str, Any], space: Any, pool: pd.DataFrame | None) -> dict[str, Any]:
    """A config read back from the warehouse (numbers as floats) with its original types: the
    matching pool row, or the space's validation (which restores ints and drops unknowns)."""
    if pool is not None:
        names = [c for c in pool.columns if not str(c).startswith("_")]
        key = config_keys(pd.DataFrame([cfg]), names)[0]
        for i, k in enumerate(config_keys(pool, names)):
            if k == key:
                return {c: plain(pool.iloc[i][c]) for c in names}
        return cfg
    if space is not None:
        try:
            own = {k: v for k, v in cfg.items() if k in space.names}
            return dict(space.validate(space.restore(own)))
        except ValidationError:
            return cfg
    return cfg


def _next_config(
    lrn: Any,
    warehouse: WarehouseLike,
    dataset: str,
    space: Any,
    pool: pd.DataFrame | None,
    pending: pd.DataFrame,
    key: str,
    cost: Any,
    n_candidates: int,
    seed: int,
    n_init: int,
    maximize: bool,
    metric: str | None,
    model: str,
    random_every: int = RANDOM_EVERY,
    warm_start: int = WARM_START,
) -> dict[str, Any]:
    """The next config to try: a recommendation, or an initial-design point while there is no
    learner or fewer than ``n_init`` finished trials and no history on other datasets."""
    source = space if pool is None else pool
    if lrn is not None:
        try:
            rec = recommend(
                lrn,
                warehouse,
                dataset,
                source,
                n=1,
                acquisition=key,
                pending=pending if len(pending) else None,
                cost_learner=cost,
                n_candidates=n_candidates,
                seed=seed,
                random_every=random_every,
                warm_start=warm_start,
            )
            cfg_cols = [
                c
                for c in rec.columns
                if c not in (*OUTPUT_COLUMNS, "predicted_s") and not str(c).startswith("_")
            ]
            if space is not None:
                cfg_cols = [c for c in cfg_cols if c in space.names]
            cfg = {c: plain(rec.at[0, c]) for c in cfg_cols}
            if space is not None:
                cfg = space.validate(space.restore(cfg))
            return {
                "config": cfg,
                "mean": float(rec.at[0, "mean"]),
                "sd": float(rec.at[0, "sd"]),
                "rec": rec,
            }
        except CandidatesExhaustedError:  # the space's sample is used up: fresh Sobol points
            if pool is not None:
                raise
    # initial design: Sobol points of the space, or random rows of the pool, never repeated
    rng = np.random.default_rng(seed)
    cands = pool if pool is not None else space.sample(max(64, n_init * 4), seed=seed)
    try:
        runs = (
            warehouse.training_matrix(metric, model=model, datasets=[dataset])
            if metric is not None
            else pd.DataFrame()  # a user objective's model with no metric yet: no runs
        )
    except NotFoundError:
        runs = pd.DataFrame()
    names = [c for c in cands.columns if not str(c).startswith("_")]
    keep = exclude_run(cands, runs, names)
    if len(pending):
        keep &= exclude_run(cands, pending.add_prefix(PARAM_PREFIX), names)
    free = cands[keep]
    if free.empty:
        raise ValidationError(f"no untried candidate left for dataset {dataset!r}")
    row = free.iloc[int(rng.integers(len(free)))] if pool is not None else free.iloc[0]
    cfg = {c: plain(row[c]) for c in names}
    if pool is None:  # a row of mixed columns is all floats: the space's own types again
        cfg = space.validate(
            space.restore({k: None if is_missing(v) else v for k, v in cfg.items()})
        )
    return {"config": cfg, "mean": None, "sd": None, "rec": None}


class ModelProposer(LearningProposer):
    """Proposals for one model family: the family default first (when given), then
    recommendations under the learner, or initial-design points without one. ``metric``
    None: a user objective's model with no runs yet; the initial design runs until
    :meth:`set_metric` names it. ``make_learner(metric, direction, exclude)``: a learner fitted
    without the ``exclude`` datasets (a recorded one when it would be the same fit)."""

    def __init__(
        self,
        warehouse: WarehouseLike,
        dataset: str,
        model: str,
        metric: str | None,
        maximize: bool,
        space: Any,
        pool: pd.DataFrame | None,
        key: str,
        make_learner: Callable[[str, str, list[str] | None], Any],
        learner: Any,
        cost_learner: Any,
        settings: SearchSettings,
        n_resumed: int,
        n_init: int,
        remaining: int,
        first: dict[str, Any] | None,
    ) -> None:
        self.warehouse, self.model, self.metric, self.maximize = warehouse, model, metric, maximize
        self.space, self.pool, self.key = space, pool, key
        self.fit_method, self.n_candidates = settings.fit_method, settings.n_candidates
        self.random_every = settings.random_every
        self.warm_start = settings.warm_start
        self.seed, self.first = settings.seed, first
        self.reuse = settings.reuse
        super().__init__(
            lambda exclude: make_learner(self._named(), self.direction, exclude),
            lambda: other_runs(warehouse, dataset, model),
            dataset, learner, n_resumed, n_init, settings.refit_every, remaining,
        )  # fmt: skip
        self._own_cost = cost_learner is None
        self.cost = cost_learner
        if remaining and key == "cost-ei" and self.cost is None:
            self.cost = self.fit_cost()
        # pruned trials: never proposed again, observed at their predicted final (± its spread)
        self.pruned = PrunedEvidence(dataset, model, metric)

    def use_pruning(self, pruning: SearchPruning | None) -> None:
        """Let the search's curve model predict its pruned trials' finals."""
        if pruning is not None:
            self.pruned = pruning.evidence()

    @property
    def direction(self) -> str:
        return "maximize" if self.maximize else "minimize"

    def _named(self) -> str:
        if self.metric is None:  # caught by fit_without_target: nothing to learn yet
            raise ValidationError("no metric named yet")
        return self.metric

    def set_metric(self, metric: str, maximize: bool) -> None:
        """Name the metric once a user objective's first result has named it."""
        self.metric, self.maximize = metric, maximize
        self.pruned.metric = metric

    def pending_frame(self, pending: Sequence[Proposal]) -> pd.DataFrame:
        """The configs in flight (fantasized at their predicted mean) and the pruned trials
        of the dataset (at their predicted final, with its quantiles:
        :class:`PrunedEvidence`)."""
        frames = [pd.DataFrame([p.config for p in pending])] if pending else []
        pruned = self.pruned.rows(self.warehouse)
        if len(pruned):
            frames.append(pruned)
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    def fit_cost(self) -> Any:
        from metaopt_bayes.reuse import learner_for

        return fit_without_target(
            lambda exclude: learner_for(
                self.warehouse,
                self._named(),
                self.model,
                dataset=self.dataset,
                exclude=exclude,
                method=self.fit_method,
                cost=True,
                refit=not self.reuse,
            ),
            self.dataset,
            self._others(),
        )[0]

    def on_refit(self) -> None:
        if self.key == "cost-ei" and self._own_cost:
            self.cost = self.fit_cost() or self.cost

    def propose(self, pending: Sequence[Proposal]) -> Proposal:
        if self.first is not None:  # the family default opens the search
            info: dict[str, Any] = {"config": self.first, "mean": None, "sd": None, "rec": None}
            self.first = None
        else:
            info = _next_config(
                self.learner,
                self.warehouse,
                self.dataset,
                self.space,
                self.pool,
                self.pending_frame(pending),
                self.key,
                self.cost,
                self.n_candidates,
                self.seed * 100003 + self.step,
                self.n_init,
                self.maximize,
                self.metric,
                self.model,
                self.random_every,
                self.warm_start,
            )
        self.step += 1
        cfg = info["config"]
        return Proposal(cfg, self.model, cfg, self.seed, info["mean"], info["sd"], info["rec"])

    def record(self, rec: pd.DataFrame, run_id: str) -> None:
        record_recommendations(self.warehouse, self.learner, self.dataset, rec, self.key, [run_id])


def _pruning(
    warehouse: WarehouseLike,
    dataset: str,
    model: str,
    metric: str | None,
    maximize: bool,
    settings: SearchSettings,
    builtin: bool,
) -> SearchPruning | None:
    """The search's pruning (:func:`metaopt_bayes.curve_pruning.search_pruning`): the
    built-in trainer prunes the families that train in steps, each config's budget its own
    ``max_iter``; another family is a warning and no pruning."""
    if settings.prune is None or settings.prune is False:
        return None
    steps_of = None
    if builtin:
        from metaopt_bayes.zoo import get_family

        family = get_family(model)
        if family.step_unit is None:
            import warnings

            warnings.warn(
                f"pruning is off: {model!r} trains in one go (the zoo reports steps for mlp "
                "epochs and hist_gradient_boosting iterations)",
                stacklevel=4,
            )
            return None
        steps_of = family.max_steps
    return search_pruning(
        warehouse, dataset, model, metric, maximize, settings.prune, settings.prune_threshold,
        settings.budget_steps, steps_of=steps_of,
    )  # fmt: skip


def optimize_model(
    warehouse: WarehouseLike,
    dataset: str,
    model: str,
    budget: int,
    settings: SearchSettings,
    *,
    space: Any = None,
    candidates: Any = None,
    objective: Callable[[dict[str, Any]], Any] | None = None,
    learner: Any = None,
    metric: str | None = None,
    direction: str | None = None,
    cost_learner: Any = None,
    default_first: bool = True,
) -> OptimizeResult:
    """:func:`metaopt_bayes.search.optimize` for one model family (its docstring holds the
    parameters)."""
    settings.check(budget)
    dataset, model = str(dataset), str(model)
    user_space = space is not None
    space = _resolve_space(space)
    pool = load_candidates(candidates) if candidates is not None else None
    data: Holdout | None = None
    task = None
    if objective is None:
        from metaopt_bayes import trainer
        from metaopt_bayes.zoo import get_family

        family = get_family(model)
        X, y, task = trainer.load_dataset(warehouse, dataset)
        if not family.supports(task):
            raise ValidationError(f"model {model!r} does not support {task} ({dataset!r})")
        data = Holdout.split(X, y, task, settings.test_size, settings.seed)
        if space is None and pool is None:
            space = family.default_space(task)
        probe = (
            pool.head(64).to_dict("records")
            if pool is not None
            else space.sample(16, seed=settings.seed).to_dict("records")
        )
        probe = [{k: v for k, v in c.items() if not is_missing(v)} for c in probe]
        trainer.check_setup(family, probe, data.y[data.train], task, settings.cv)
    elif space is None and pool is None:
        raise ValidationError("a custom objective needs space= or candidates= to search")
    if isinstance(learner, str):  # a recorded fit's id (or a learner file)
        from metaopt_bayes.reuse import load_recorded

        learner = load_recorded(warehouse, learner, metric, model)

    if learner is not None:
        metric = learner.metric
        direction = learner.direction
    if objective is None:
        metric = metric or default_metric(task)
    else:  # the model's one metric in the warehouse, or the objective's first result's
        metric = objective_metric(warehouse, model, metric)
    if direction is None and metric is not None:
        direction = warehouse.metric_direction(metric)
    maximize = direction == "maximize"
    key = acquisition_key(settings.acquisition)
    n_init = max(2, min(5, budget // 4)) if settings.n_init is None else settings.n_init

    def make_learner(metric: str, direction: str, exclude: list[str] | None) -> Any:
        # The population (meta-feature effects, scales, noise distribution) is learned from
        # the *other* datasets; the target's own trials enter at predict time through the
        # closed-form update (the path the surrogate benchmark validates). Fitting the target
        # in too let a point estimate interpolate its few trials with near-zero noise: after
        # a MAP refit at 10 trials, sonar's predictions jumped to 0.9995 ± 0.00005 and EI
        # chose configs that cannot split (min_samples_leaf > half the rows). Only with no
        # other dataset to learn from is the target itself the history.
        # A recorded fit with the same settings whose other datasets are unchanged is the fit
        # this one would be (metaopt_bayes.reuse): it is used instead of fitting again.
        if learner is not None:
            return learner.fit(warehouse, exclude=exclude)
        # a space the user gave sets the parameters' kinds and scales (the zoo's own spaces
        # are what the history was swept from, so the data already agree with them)
        own = {"space": space.to_dict()} if user_space and space is not None else {}
        from metaopt_bayes.reuse import learner_for

        return learner_for(
            warehouse, metric, model, dataset=dataset, exclude=exclude, direction=direction,
            method=settings.fit_method, refit=not settings.reuse, **own,
        )  # fmt: skip

    n_resumed = len(existing_trials(warehouse, dataset, [model]))
    first = None
    if default_first and n_resumed == 0 and pool is None and space is not None:
        first = _family_default(warehouse, dataset, model, space, task)
    remaining = max(0, int(budget) - n_resumed)
    proposer = ModelProposer(
        warehouse, dataset, model, metric, maximize, space, pool, key, make_learner, learner,
        cost_learner, settings, n_resumed, n_init, remaining, first,
    )  # fmt: skip
    pruning = _pruning(warehouse, dataset, model, metric, maximize, settings, objective is None)
    proposer.use_pruning(pruning)
    if data is not None:
        Xtr, ytr = data.training()
        cv, timeout_s = settings.cv, settings.timeout_s
        runner: Any = TrainerRunner(
            dataset, Xtr, ytr, data.task, cv, timeout_s, TRIAL_SOURCE, metric, pruning
        )
    else:
        runner = ObjectiveRunner(dataset, objective, metric, pruning=pruning)
    loop = {
        "jobs": settings.jobs,
        "executor": settings.executor,
        "release": settings.release,
        "claims": settings.claims(warehouse, dataset, [model], budget),
    }
    done = LoopOutcome()
    named: list[str] = []
    report = settings.reporter(n_resumed, proposer, None, False)

    def note(p: Proposal, run_id: str, result: Mapping[str, Any]) -> None:
        if result.get("metric"):
            named.append(str(result["metric"]))
        report(p, run_id, result)

    while metric is None and done.n_done < remaining and not done.interrupted:
        # a user objective on a model with no runs: one trial at a time until a result names
        # the metric (a failed trial names none), then the search goes on as usual
        step = run_trials(warehouse, proposer, runner, 1, on_logged=note, warn=False, **loop)
        done.n_done += step.n_done
        done.n_pruned += step.n_pruned
        done.errors += step.errors
        done.interrupted = step.interrupted
        if named:
            metric = runner.metric = named[0]
            direction = direction or warehouse.metric_direction(metric)
            maximize = direction == "maximize"
            proposer.set_metric(metric, maximize)
            if pruning is not None:
                pruning.metric, pruning.maximize = metric, maximize
    if done.n_done < remaining and not done.interrupted:
        more = run_trials(
            warehouse, proposer, runner, remaining - done.n_done, warn=False,
            on_logged=settings.reporter(n_resumed, proposer, metric, False), **loop,
        )  # fmt: skip
        done.n_done += more.n_done
        done.n_pruned += more.n_pruned
        done.errors += more.errors
        done.interrupted = more.interrupted
    warn_if_all_failed(done, stacklevel=4)
    if metric is None:  # every trial failed before any named the metric
        trials = existing_trials(warehouse, dataset, [model]).drop(columns=["model", "seq"])
        trials = trials.assign(value=np.nan, best=np.nan)
        trials.insert(0, "number", np.arange(1, len(trials) + 1))
    else:
        trials = trial_table(warehouse, dataset, [model], metric, maximize, joint=False)
    result = OptimizeResult(
        dataset, model, str(metric or ""), str(direction or ""), trials.reset_index(drop=True),
        None, None, None,
        n_resumed, done.n_done, done.interrupted, learner=proposer.learner,
        n_pruned=done.n_pruned,
    )  # fmt: skip
    best = best_trial(trials, maximize)
    if best is not None:
        cfg_cols = [
            c
            for c in trials.columns
            if c not in ("number", "run_id", "status", "value", "steps", "best")
        ]
        result.best_config = _typed_config({c: plain(best[c]) for c in cfg_cols}, space, pool)
        result.best_value = float(best["value"])
        result.best_run_id = str(best["run_id"])
    if settings.retrain and data is not None:
        settle_winner(warehouse, result, data, settings.seed, settings.artifacts_dir)
    return result


__all__ = [
    "ModelProposer",
    "default_metric",
    "fit_cost_learner",
    "objective_metric",
    "optimize_model",
]
