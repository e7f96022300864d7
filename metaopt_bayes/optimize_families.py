"""The joint optimizer: what ``optimize`` tries next across several model families.

:class:`JointProposer` plugs into the trial loop (:func:`metaopt_bayes.trials.run_trials`):
each step recommends a (family, config) pair from the joint space under a
:class:`~metaopt_bayes.families.FamilyLearner`; families it cannot fit yet — and, without
history, the first ``n_init`` trials — are explored with a Sobol point of the next family in
turn. :func:`optimize_families` runs it with the built-in trainer and retrains the winner.
Each family's learner comes through :func:`metaopt_bayes.reuse.learner_for`
(:func:`family_learner`), so a recorded fit serves again while the history is unchanged.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from metaopt_bayes.batch import RANDOM_EVERY, acquisition_key
from metaopt_bayes.candidates import exclude_run, is_set
from metaopt_bayes.curve_pruning import PrunedEvidence, SearchPruning, search_pruning
from metaopt_bayes.families import (
    MODEL_COLUMN,
    FamilyLearner,
    JointSpace,
    record_family_recommendations,
    resolve_families,
)
from metaopt_bayes.optimize_model import default_metric
from metaopt_bayes.space import plain
from metaopt_bayes.trials import (
    TRIAL_SOURCE,
    Holdout,
    LearningProposer,
    OptimizeResult,
    Proposal,
    SearchSettings,
    TrainerRunner,
    best_trial,
    existing_trials,
    other_runs,
    run_trials,
    settle_winner,
    trial_table,
)
from warehouse.errors import CandidatesExhaustedError, NotFoundError, ValidationError, one_line
from warehouse.protocol import WarehouseLike


def family_learner(
    warehouse: WarehouseLike,
    metric: str,
    families: Sequence[str],
    *,
    dataset: str,
    exclude: Sequence[str] | None = None,
    method: str = "nuts",
    cost: bool = False,
    refit: bool = False,
) -> FamilyLearner:
    """A :class:`FamilyLearner` whose learner of each family (and, with ``cost``, of its
    training seconds) comes through :func:`metaopt_bayes.reuse.learner_for`: a recorded fit
    with the same settings whose datasets other than ``dataset`` are unchanged serves instead
    of a new fit, as for single-family ``optimize`` (``refit``: fit afresh). The settings are
    those a FamilyLearner fits with (``meta_terms="all"``). A family that cannot be fitted is
    skipped (``.skipped``); none at all is a one-line error."""
    from metaopt_bayes.reuse import learner_for

    config = {k: v for k, v in FamilyLearner(metric, families).config.items() if k != "space"}
    learners: dict[str, Any] = {}
    costs: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for fam in families:
        common = {"dataset": dataset, "exclude": exclude, "method": method, "refit": refit}
        common.update(config)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                learners[fam] = learner_for(warehouse, metric, fam, **common)
        except (ValidationError, np.linalg.LinAlgError, ValueError) as exc:
            skipped[fam] = one_line(exc)
            continue
        if cost:
            with (
                contextlib.suppress(ValidationError, np.linalg.LinAlgError, ValueError),
                warnings.catch_warnings(),
            ):
                warnings.simplefilter("ignore", RuntimeWarning)
                costs[fam] = learner_for(warehouse, metric, fam, cost=True, **common)
    if not learners:
        why = "; ".join(f"{k}: {v}" for k, v in skipped.items())
        raise ValidationError(f"no model family could be fitted ({why})")
    out = FamilyLearner.from_learners(learners, costs)
    out.config = {**out.config, **config}
    out.skipped, out.warehouse = skipped, warehouse
    for lrn in [*learners.values(), *costs.values()]:
        lrn.warehouse = warehouse
    out.reuse_notes = [lrn.reuse_note for lrn in [*learners.values(), *costs.values()]]
    return out


class FamilyPruning:
    """Pruning in a search across families: each family that trains in steps (mlp epochs,
    boosting iterations) has its own :class:`~metaopt_bayes.curve_pruning.SearchPruning` —
    its curve model, its configs' budgets — and every trial must beat the dataset's best
    finished run of *any* family; the trials of the other families are not pruned."""

    def __init__(self, parts: dict[str, SearchPruning]) -> None:
        self.parts = parts
        self.evidence: dict[str, PrunedEvidence] = {f: p.evidence() for f, p in parts.items()}

    def for_trial(
        self, warehouse: WarehouseLike, config: dict[str, Any], model: str | None = None
    ) -> Any:
        """The pruner bound for one trial of ``model`` (None: that family is not pruned)."""
        part = self.parts.get(str(model))
        return None if part is None else part.for_trial(warehouse, config)

    def pruned_rows(self, warehouse: WarehouseLike) -> pd.DataFrame:
        """The pruned trials of every family (``model`` column, parameters, the predicted
        final and its quantiles: :meth:`PrunedEvidence.rows`)."""
        frames = []
        for fam, ev in self.evidence.items():
            rows = ev.rows(warehouse)
            if len(rows):
                frames.append(rows.assign(**{MODEL_COLUMN: fam}))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def joint_pruning(
    warehouse: WarehouseLike,
    dataset: str,
    families: list[str],
    metric: str,
    maximize: bool,
    settings: SearchSettings,
) -> FamilyPruning | None:
    """The pruning of a search across ``families`` (None when ``prune`` is off, or when no
    family trains in steps: a warning says so). ``prune=True`` fits one curve model per
    family; a pruner object and ``budget_steps`` given by the user serve every family that
    trains in steps alike (its curve model then predicts the pruned finals of each)."""
    if settings.prune is None or settings.prune is False:
        return None
    from metaopt_bayes.zoo import get_family

    parts: dict[str, SearchPruning] = {}
    for fam in families:
        family = get_family(fam)
        if family.step_unit is None:
            continue
        part = search_pruning(
            warehouse, dataset, fam, metric, maximize, settings.prune, settings.prune_threshold,
            settings.budget_steps, steps_of=family.max_steps,
        )  # fmt: skip
        if part is not None:
            part.incumbent_of = tuple(families)
            parts[fam] = part
    if not parts:
        warnings.warn(
            f"pruning is off: none of {', '.join(families)} trains in steps (the zoo reports "
            "steps for mlp epochs and hist_gradient_boosting iterations)",
            stacklevel=4,
        )
        return None
    return FamilyPruning(parts)


class JointProposer(LearningProposer):
    """Proposals across families: joint recommendations, or design points of the families
    that have no fitted learner yet."""

    def __init__(
        self,
        warehouse: WarehouseLike,
        dataset: str,
        families: list[str],
        metric: str,
        space: JointSpace,
        key: str,
        learner: FamilyLearner | None,
        settings: SearchSettings,
        n_resumed: int,
        n_init: int,
        remaining: int,
    ) -> None:
        self.warehouse, self.metric, self.space, self.key = warehouse, metric, space, key
        self.n_candidates, self.seed = settings.n_candidates, settings.seed
        self.random_every = settings.random_every
        self.pruning: FamilyPruning | None = None
        super().__init__(
            lambda exclude: family_learner(
                warehouse, metric, families, dataset=dataset, exclude=exclude,
                method=settings.fit_method, cost=key == "cost-ei", refit=not settings.reuse,
            ),
            lambda: other_runs(warehouse, dataset, families),
            dataset, learner, n_resumed, n_init, settings.refit_every, remaining,
        )  # fmt: skip

    def propose(self, pending: Sequence[Proposal]) -> Proposal:
        # pruned trials: never proposed again, observed at their predicted final (± its
        # spread) like the pending ones in flight
        frames = [pd.DataFrame([p.config for p in pending])]
        if self.pruning is not None:
            frames.append(self.pruning.pruned_rows(self.warehouse))
        frames = [f for f in frames if len(f)]
        ahead = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        info = _next_joint(
            self.learner, self.warehouse, self.dataset, self.space,
            ahead, self.key, self.n_candidates,
            self.seed * 100003 + self.step, self.n_init, self.metric, self.step,
            self.random_every,
        )  # fmt: skip
        self.step += 1
        cfg = info["config"]
        fam = cfg[MODEL_COLUMN]
        params = {k: v for k, v in cfg.items() if k != MODEL_COLUMN}
        return Proposal(cfg, fam, params, self.seed, info["mean"], info["sd"], info["rec"])

    def record(self, rec: pd.DataFrame, run_id: str) -> None:
        record_family_recommendations(
            self.warehouse, self.learner, self.dataset, rec, self.key, [run_id]
        )


def optimize_families(
    warehouse: WarehouseLike,
    dataset: str,
    families: str | Iterable[str] | None,
    budget: int,
    settings: SearchSettings,
    *,
    space: JointSpace | None = None,
    metric: str | None = None,
    learner: FamilyLearner | None = None,
) -> OptimizeResult:
    """Search families and their spaces together on a registered ``dataset`` (built-in
    trainer). ``families``: None (every zoo family for the task) or names. Same loop, resume
    and final retrain as :func:`metaopt_bayes.search.optimize`; each trial's family is in the
    ``model`` column of ``result.trials``, ``result.model`` is the winner's family.

    Without history to fit on, the first ``n_init`` trials cycle through the families
    (a Sobol point each); families that cannot be fitted yet are explored the same way.
    """
    from metaopt_bayes import trainer

    settings.check(budget)
    dataset = str(dataset)
    X, y, task = trainer.load_dataset(warehouse, dataset)
    fams = space.families if space is not None else resolve_families(families, task)
    space = space or JointSpace.from_families(fams, task)
    data = Holdout.split(X, y, task, settings.test_size, settings.seed)
    metric = metric or (learner.metric if learner is not None else default_metric(task))
    direction = learner.direction if learner is not None else warehouse.metric_direction(metric)
    maximize = direction == "maximize"
    key = acquisition_key(settings.acquisition)
    n_init = max(2, min(len(fams), budget // 4)) if settings.n_init is None else settings.n_init

    n_resumed = len(existing_trials(warehouse, dataset, fams))
    remaining = max(0, int(budget) - n_resumed)
    proposer = JointProposer(
        warehouse, dataset, fams, metric, space, key, learner, settings, n_resumed, n_init,
        remaining,
    )  # fmt: skip
    proposer.pruning = joint_pruning(warehouse, dataset, fams, metric, maximize, settings)
    Xtr, ytr = data.training()
    runner = TrainerRunner(
        dataset, Xtr, ytr, task, settings.cv, settings.timeout_s, TRIAL_SOURCE, metric,
        proposer.pruning,
    )  # fmt: skip
    done = run_trials(
        warehouse, proposer, runner, remaining, jobs=settings.jobs, executor=settings.executor,
        release=settings.release, on_logged=settings.reporter(n_resumed, proposer, metric, True),
        claims=settings.claims(warehouse, dataset, fams, budget),
    )  # fmt: skip
    trials = trial_table(warehouse, dataset, fams, metric, maximize, joint=True)
    res = OptimizeResult(
        dataset, "", metric, direction, trials.reset_index(drop=True), None, None, None,
        n_resumed, done.n_done, done.interrupted, learner=proposer.learner,
    )  # fmt: skip
    best = best_trial(trials, maximize)
    if best is not None:
        fam = str(best["model"])
        sp = space.spaces[fam]
        cfg = {c: plain(best[c]) for c in sp.names if c in best.index}
        with contextlib.suppress(ValidationError):
            cfg = dict(sp.validate(sp.restore({k: v for k, v in cfg.items() if is_set(v)})))
        res.model = fam
        res.best_config = cfg
        res.best_value = float(best["value"])
        res.best_run_id = str(best["run_id"])
    if settings.retrain:
        settle_winner(warehouse, res, data, settings.seed, settings.artifacts_dir)
    return res


def _next_joint(
    lrn: FamilyLearner | None,
    warehouse: WarehouseLike,
    dataset: str,
    space: JointSpace,
    pending: pd.DataFrame,
    key: str,
    n_candidates: int,
    seed: int,
    n_init: int,
    metric: str,
    step: int,
    random_every: int = RANDOM_EVERY,
) -> dict[str, Any]:
    """A joint recommendation; else an initial-design point of the next family in turn
    (families without a fitted learner are always explored this way first)."""
    runs = pd.DataFrame()
    with contextlib.suppress(NotFoundError):
        runs = warehouse.training_matrix(metric, datasets=[dataset])
    tried = set(runs["model"].astype(str)) if len(runs) else set()
    if len(pending):
        tried |= set(pending[MODEL_COLUMN].astype(str))
    unfitted = [f for f in space.families if lrn is None or f not in lrn.learners]
    explore = [f for f in unfitted if f not in tried]
    if lrn is not None and not explore:
        fitted = {f: s for f, s in space.spaces.items() if f in lrn.learners}
        try:
            rec = lrn.recommend(
                warehouse,
                dataset,
                JointSpace(fitted),
                n=1,
                acquisition=key,
                pending=pending if len(pending) else None,
                n_candidates=n_candidates,
                seed=seed,
                random_every=random_every,
            )
            row = rec.iloc[0]
            fam = str(row[MODEL_COLUMN])
            params = {
                k: plain(row[k])
                for k in rec.columns
                if k in space.spaces[fam].names and is_set(row[k])
            }
            cfg = space.validate({MODEL_COLUMN: fam, **space.spaces[fam].restore(params)})
            return {"config": cfg, "mean": float(row["mean"]), "sd": float(row["sd"]), "rec": rec}
        except CandidatesExhaustedError:  # the joint sample is used up: fresh design points
            pass
    order = explore or space.families
    fam = order[step % len(order)] if not explore else explore[0]
    sp = space.spaces[fam]
    cands = sp.sample(max(64, n_init * 4), seed=seed)
    fobs = runs[runs["model"].astype(str) == fam] if len(runs) else None
    free = cands[exclude_run(cands, fobs, sp.names).to_numpy()]
    if free.empty:
        raise ValidationError(f"no untried candidate of {fam!r} left for dataset {dataset!r}")
    row = free.iloc[0]
    cfg = space.validate({MODEL_COLUMN: fam, **sp.restore({c: plain(row[c]) for c in sp.names})})
    return {"config": cfg, "mean": None, "sd": None, "rec": None}


__all__ = [
    "FamilyPruning",
    "JointProposer",
    "family_learner",
    "joint_pruning",
    "optimize_families",
]
