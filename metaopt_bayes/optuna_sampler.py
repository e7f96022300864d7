"""An Optuna sampler that proposes with metaopt: :class:`MetaoptSampler`.

An existing Optuna study — any Optuna storage, any number of workers — gets metaopt's
proposals, with their transfer from the runs the warehouse holds on *other* datasets:

- **Search space.** The Optuna distributions (``FloatDistribution`` with ``log`` or ``step``,
  ``IntDistribution`` with ``log`` or ``step``, ``CategoricalDistribution``) are translated
  into a :class:`~metaopt_bayes.space.SearchSpace` and proposals back into Optuna values (a
  stepped value is rounded to its grid). The space is ``search_space=`` when given (metaopt
  then proposes from the first trial), else the intersection of the study's finished trials'
  distributions (as Optuna's GPSampler does; the first trial comes from ``fallback``).
  Parameters outside it, or with one value only, are sampled by ``fallback``.
- **Learner.** :func:`metaopt_bayes.reuse.learner_for` — a recorded fit whose other datasets
  are unchanged is reused — fitted on the other datasets (the target's own trials act through
  the closed-form few-shot update, as in :func:`metaopt_bayes.search.optimize`); with no runs
  of ``model`` elsewhere, on the study's own trials once there are ``n_startup_trials`` of them
  (refitted every ``refit_every`` trials), the fallback sampling until then.
- **Proposal.** :func:`metaopt_bayes.recommend_model.recommend` over the space; the configs
  of the study's other RUNNING trials are pending (Kriging believer), read from the proposal
  each worker stores in its trial's system attributes (``metaopt:proposal``) as soon as it
  is made, so two workers do not propose the same config.
- **Logging.** Finished trials are runs of ``model`` on ``dataset``: ``after_trial`` logs a
  COMPLETE trial with the objective value as ``metric``, a PRUNED one as a pruned run (its
  last intermediate value as ``metric``), both with their intermediate values as the run's
  curve, and a FAIL one as a failed run (no metric). The dataset's pruned runs are never
  proposed again (observed at their predicted final with its spread, see
  :class:`~metaopt_bayes.curve_pruning.PrunedEvidence`).
  Trials the study had before the sampler was attached, or that reached it by
  ``study.add_trial`` / another sampler, are logged the next time the sampler proposes. Runs
  are named ``optuna:<study name>:<trial number>`` with source ``optuna:<study name>`` — the
  names ``metaopt import optuna`` gives — and a run already there is never logged again, so
  no trial is logged twice, whichever worker sees it first.
- **Warehouse.** A path is opened only for each read or write and closed at once, so any
  number of processes share one file (DuckDB allows one process at a time): an open that
  finds it held waits, retrying with backoff, up to ``busy_timeout`` seconds (a fit holds it
  while it runs); past that the trial is sampled by ``fallback`` and its logging left to the
  next proposal's sync, each with a warning. A
  :class:`~warehouse.Warehouse` object is used as it is (one process).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from metaopt_bayes.curve_pruning import intermediate_curve
from metaopt_bayes.space import Param, SearchSpace, _same, is_missing, plain
from warehouse.errors import (
    CandidatesExhaustedError,
    ValidationError,
    WarehouseBusyError,
    one_line,
)
from warehouse.protocol import WarehouseLike

try:
    import optuna
    from optuna.distributions import (
        BaseDistribution,
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )
    from optuna.samplers import BaseSampler
    from optuna.trial import FrozenTrial, TrialState
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError("MetaoptSampler needs Optuna: pip install 'metaopt[optuna]'") from exc

#: the trial system attribute holding a worker's proposal while the trial runs
PROPOSAL_ATTR = "metaopt:proposal"


def to_param(name: str, dist: BaseDistribution) -> Param:
    """One Optuna distribution as a metaopt :class:`~metaopt_bayes.space.Param` (a stepped
    float or int keeps its bounds; proposals are rounded to the step by :func:`to_optuna`)."""
    if isinstance(dist, FloatDistribution):
        return Param(name, "float", low=float(dist.low), high=float(dist.high), log=dist.log)
    if isinstance(dist, IntDistribution):
        return Param(name, "int", low=int(dist.low), high=int(dist.high), log=dist.log)
    if isinstance(dist, CategoricalDistribution):
        return Param(name, "categorical", choices=tuple(dist.choices))
    raise ValidationError(
        f"parameter {name!r}: {type(dist).__name__} is not supported by MetaoptSampler "
        "(FloatDistribution, IntDistribution or CategoricalDistribution)"
    )


def to_space(distributions: Mapping[str, BaseDistribution]) -> SearchSpace:
    """Optuna distributions as a metaopt search space (one line on an unsupported one)."""
    return SearchSpace([to_param(str(n), d) for n, d in distributions.items()])


def to_optuna(value: Any, dist: BaseDistribution) -> Any:
    """A value of metaopt's proposal as ``dist`` takes it: a choice of a categorical (a
    boolean read back as 1.0 becomes ``True`` again), an int, or a float rounded to the step
    and clipped to the bounds."""
    value = plain(value)
    if isinstance(dist, CategoricalDistribution):
        for c in dist.choices:
            if _same(c, value):
                return c
        hits = [c for c in dist.choices if str(c) == str(value)]
        if isinstance(value, int | float) and not hits:
            hits = [c for c in dist.choices if isinstance(c, bool) and float(c) == value]
        if len(hits) != 1:
            raise ValidationError(f"{value!r} is not one of {list(dist.choices)}")
        return hits[0]
    x = float(value)
    if isinstance(dist, IntDistribution):
        v = dist.low + round((x - dist.low) / dist.step) * dist.step
        return int(min(max(v, dist.low), dist.high))
    if isinstance(dist, FloatDistribution):
        if dist.step is not None:
            k = math.floor((dist.high - dist.low) / dist.step + 1e-9)
            x = dist.low + min(max(round((x - dist.low) / dist.step), 0), k) * dist.step
        return float(min(max(x, dist.low), dist.high))
    raise ValidationError(f"{type(dist).__name__} is not supported by MetaoptSampler")


def _modelled(dist: BaseDistribution) -> bool:
    """What metaopt proposes: the supported distributions with more than one value."""
    supported = isinstance(dist, FloatDistribution | IntDistribution | CategoricalDistribution)
    return supported and not dist.single()


class MetaoptSampler(BaseSampler):
    """An Optuna sampler whose proposals come from metaopt's meta-learner, with transfer
    from the warehouse's runs of ``model`` on other datasets (see the module docstring).

    ``warehouse``: a warehouse path (opened only for each read or write, so several worker
    processes can share it) or an open :class:`~warehouse.Warehouse`. ``dataset``: the name
    the study's trials are logged under (register it with ``metaopt datasets add`` to give
    the transfer its meta-features). ``model``: the model family the history holds (runs of
    it on other datasets are what is transferred). ``metric``: the name the objective value is
    logged under; its direction in the warehouse must be the study's. ``direction``: checked
    against the study and the warehouse when given. ``search_space``: Optuna distributions
    to propose from the first trial (else the intersection of the finished trials'). ``learner``:
    a fitted :class:`~metaopt_bayes.model.MetaLearner`, a recorded fit's id or a learner file
    (else :func:`~metaopt_bayes.reuse.learner_for` with ``fit_method``). ``acquisition``,
    ``n_candidates``: as :func:`metaopt_bayes.search.recommend`. ``fallback``: the sampler of
    parameters metaopt does not model and of trials before it can (default
    ``RandomSampler(seed)``). ``name``: the label in run ids (default: the study's name).
    """

    def __init__(
        self,
        warehouse: str | os.PathLike[str] | WarehouseLike,
        dataset: str,
        model: str,
        metric: str,
        *,
        direction: str | None = None,
        search_space: Mapping[str, BaseDistribution] | None = None,
        learner: Any = None,
        fit_method: str = "nuts",
        acquisition: str = "ei",
        n_candidates: int = 256,
        n_startup_trials: int = 5,
        refit_every: int = 10,
        seed: int | None = None,
        fallback: BaseSampler | None = None,
        name: str | None = None,
        busy_timeout: float = 120.0,
    ) -> None:
        from metaopt_bayes.batch import acquisition_key

        for value, what in ((dataset, "dataset"), (model, "model"), (metric, "metric")):
            if not isinstance(value, str) or not value.strip():
                raise ValidationError(f"MetaoptSampler: {what} must be a non-empty name")
        if direction not in (None, "maximize", "minimize"):
            raise ValidationError(f"direction must be 'maximize' or 'minimize', not {direction!r}")
        if name is not None and (not str(name) or ":" in str(name)):
            raise ValidationError(f"name {name!r} must be non-empty text without ':'")
        for value, what in ((n_candidates, "n_candidates"), (refit_every, "refit_every")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValidationError(f"{what} must be a positive integer, not {value!r}")
        self.dataset, self.model, self.metric = str(dataset), str(model), str(metric)
        self.acquisition = acquisition_key(acquisition)
        self.direction, self.name = direction, name
        self.fit_method, self.n_candidates = fit_method, n_candidates
        self.n_startup_trials, self.refit_every = max(0, int(n_startup_trials)), refit_every
        self.busy_timeout = float(busy_timeout)
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._fallback = fallback or optuna.samplers.RandomSampler(seed=seed)
        self._fixed_space = dict(search_space) if search_space is not None else None
        self._intersection = optuna.search_space.IntersectionSearchSpace(include_pruned=True)
        if self._fixed_space is not None:
            # a space given is checked whole: an unsupported distribution there is a mistake
            to_space({n: d for n, d in self._fixed_space.items() if not d.single()})
        if isinstance(warehouse, str | os.PathLike):
            self._path: str | None = str(Path(warehouse).expanduser())
            self._wh: WarehouseLike | None = None
        else:
            self._path, self._wh = None, warehouse
        self._given = learner
        self._learner: Any = None
        self._learner_key: tuple[int, int] | None = None
        self._logged: set[tuple[str, int]] = set()  # (study name, trial number)
        self._evidence: Any = None  # the dataset's pruned runs (PrunedEvidence)
        self._checked: set[str] = set()  # studies whose direction was checked
        self._lock = threading.RLock()
        with self._open() as wh:  # an unknown metric is refused before the first trial
            self._check_metric(wh)

    # ------------------------------------------------------------------ warehouse
    @contextlib.contextmanager
    def _open(self) -> Iterator[WarehouseLike]:
        """The warehouse for one read or write: the object given, or the file opened now
        (waiting, with backoff, while another process holds it) and closed after."""
        with self._lock:
            if self._wh is not None:
                yield self._wh
                return
            from warehouse import Warehouse

            with Warehouse(self._path, busy_timeout=self.busy_timeout) as wh:
                yield wh

    def _check_metric(self, wh: WarehouseLike) -> None:
        counts = wh.metric_counts(model=self.model)
        if counts and self.metric not in counts:
            known = ", ".join(sorted(counts))
            raise ValidationError(
                f"unknown metric {self.metric!r} for model {self.model!r}: its runs log {known}"
            )

    def _check_study(self, wh: WarehouseLike, study: optuna.Study) -> None:
        if study.study_name in self._checked:
            return
        if len(study.directions) != 1:
            raise ValidationError("MetaoptSampler optimizes one objective, not several")
        way = "maximize" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "minimize"
        if self.direction is not None and self.direction != way:
            raise ValidationError(f"direction {self.direction!r} but the study will {way}")
        known = wh.metric_direction(self.metric)
        if known != way:
            raise ValidationError(
                f"metric {self.metric!r} is {known}d in the warehouse but the study will {way} "
                "it; log the objective under another metric name"
            )
        self.direction = way
        self._checked.add(study.study_name)

    # ------------------------------------------------------------------ logging
    def _label(self, study: optuna.Study) -> str:
        return self.name or study.study_name

    def _log(
        self,
        wh: WarehouseLike,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        label = self._label(study)
        start = trial.datetime_start
        end = trial.datetime_complete or dt.datetime.now()
        ok = state == TrialState.COMPLETE and values is not None and len(values) == 1
        metrics = {self.metric: float(values[0])} if ok and values is not None else {}
        if metrics and not math.isfinite(metrics[self.metric]):
            metrics, ok = {}, False
        steps, reported = intermediate_curve(trial)
        curve = [
            {"metric": self.metric, "step": st, "value": v, "elapsed_s": None}
            for st, v in zip(steps, reported, strict=True)
        ]
        status, error = ("finished", None) if ok else ("failed", "failed")
        if state == TrialState.PRUNED:  # its last reported value is its metric
            status, error = ("pruned", None) if curve else ("failed", "pruned before any report")
            metrics = {self.metric: reported[-1]} if curve else {}
        wh.log_run(
            self.dataset,
            self.model,
            {k: plain(v) for k, v in trial.params.items()},
            metrics,
            run_id=f"optuna:{label}:{trial.number}",
            status=status,
            error=error,
            started_at=start,
            finished_at=end,
            duration_s=(end - start).total_seconds() if start is not None else None,
            source=f"optuna:{label}",
            **({"curve": curve} if curve and status != "failed" else {}),
        )

    def _sync(self, wh: WarehouseLike, study: optuna.Study) -> None:
        """Log the study's finished trials the warehouse does not have yet (run ids are
        checked inside the one open, so two workers never log one trial twice)."""
        done = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)
        sid = study.study_name
        todo = [
            t
            for t in study.get_trials(deepcopy=False, states=done)
            if (sid, t.number) not in self._logged
        ]
        if not todo:
            return
        label = self._label(study)
        have = set(wh.trials(self.dataset, self.model, source=f"optuna:{label}")["run_id"])
        for t in todo:
            if f"optuna:{label}:{t.number}" not in have:
                self._log(wh, study, t, t.state, t.values)
            self._logged.add((sid, t.number))

    # ------------------------------------------------------------------ the sampler
    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        self._fallback.reseed_rng()

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        if self._fixed_space is not None:
            space = self._fixed_space
        else:
            space = self._intersection.calculate(study)  # incremental over the trials
        return {n: d for n, d in space.items() if _modelled(d)}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        try:
            return self._propose(study, trial, search_space)
        except WarehouseBusyError as exc:  # held longer than busy_timeout: this trial only
            warnings.warn(
                f"{one_line(exc)}; trial {trial.number} sampled by the fallback", stacklevel=2
            )
            return {}

    def _propose(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        space = to_space(search_space)
        with self._open() as wh:
            self._check_study(wh, study)
            self._sync(wh, study)
            learner = self._current_learner(wh)
            if learner is None:
                return {}
            pending = self._with_pruned(wh, study, self._pending(study, trial, space), space)
            from metaopt_bayes.recommend_model import recommend

            seed = int(self._rng.integers(2**31 - 1))
            try:
                rec = recommend(
                    learner,
                    wh,
                    self.dataset,
                    space,
                    n=1,
                    acquisition=self.acquisition,
                    pending=pending,
                    n_candidates=self.n_candidates,
                    seed=seed,
                )
            except CandidatesExhaustedError:  # a small discrete space is used up
                return {}
            row = rec.iloc[0]
            config = space.validate(space.restore({n: plain(row[n]) for n in space.names}))
            out = {n: to_optuna(config[n], d) for n, d in search_space.items()}
            # stored while the warehouse is still held: the next worker to propose reads it
            # as pending, so two workers never propose one config
            study._storage.set_trial_system_attr(
                trial._trial_id, PROPOSAL_ATTR, {n: plain(v) for n, v in out.items()}
            )
        return out

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._fallback.before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._fallback.after_trial(study, trial, state, values)
        try:
            with self._open() as wh:
                self._check_study(wh, study)
                label = self._label(study)
                have = wh.trials(self.dataset, self.model, source=f"optuna:{label}")["run_id"]
                if f"optuna:{label}:{trial.number}" not in set(have):
                    self._log(wh, study, trial, state, values)
                self._logged.add((study.study_name, trial.number))
        except WarehouseBusyError as exc:  # logged by the next proposal's sync instead
            warnings.warn(f"{one_line(exc)}; trial {trial.number} is logged later", stacklevel=2)

    # ------------------------------------------------------------------ internals
    def _current_learner(self, wh: WarehouseLike) -> Any:
        """The learner for this proposal, or None while the fallback samples (no history on
        other datasets and fewer than ``n_startup_trials`` trials of the study)."""
        if self._given is not None and not isinstance(self._given, str | os.PathLike):
            return self._given
        from metaopt_bayes.reuse import learner_for
        from metaopt_bayes.trials import fit_without_target, other_runs

        others = other_runs(wh, self.dataset, self.model)
        own = 0
        if others == 0:
            own = wh.count_runs(dataset=self.dataset, model=self.model, status="finished")
            if own < max(self.n_startup_trials, 2):
                return None
            own //= self.refit_every  # the study's own runs: refitted every refit_every
        key = (others, own)
        if self._learner is not None and key == self._learner_key:
            return self._learner
        given = None if self._given is None else str(self._given)

        def fit(exclude: list[str] | None) -> Any:
            return learner_for(
                wh, self.metric, self.model, dataset=self.dataset, exclude=exclude,
                direction=self.direction, method=self.fit_method, learner=given,
            )  # fmt: skip

        if given is not None:
            self._learner = fit(None)
        else:
            self._learner = fit_without_target(fit, self.dataset, others)[0]
        self._learner_key = key
        return self._learner

    def _with_pruned(
        self, wh: WarehouseLike, study: optuna.Study, pending: pd.DataFrame | None, space: Any
    ) -> pd.DataFrame | None:
        """``pending`` and the pruned runs of the dataset (:class:`PrunedEvidence`): never
        proposed again, observed at the study pruner's predicted final, with its uncertainty,
        when it is a :class:`~metaopt_bayes.optuna_pruner.MetaoptPruner` with a fitted curve
        model (else fantasized at the learner's own prediction)."""
        from metaopt_bayes.curve_pruning import PrunedEvidence
        from metaopt_bayes.pruning import VALUE_BOUND, VALUE_Q05, VALUE_Q95

        pruner = getattr(study, "pruner", None)
        model = getattr(pruner, "curve_model", None)
        budget = getattr(pruner, "budget", None)
        if self._evidence is None or self._evidence.curve_model is not model:
            self._evidence = PrunedEvidence(
                self.dataset, self.model, self.metric, model,
                (lambda cfg: budget) if budget is not None else None,
            )  # fmt: skip
        rows = self._evidence.rows(wh)
        if not len(rows):
            return pending
        values = ("value", VALUE_Q05, VALUE_Q95, VALUE_BOUND)
        rows = rows[[c for c in rows.columns if c in space.names or c in values]]
        return pd.concat([f for f in (pending, rows) if f is not None], ignore_index=True)

    def _pending(
        self, study: optuna.Study, trial: FrozenTrial, space: SearchSpace
    ) -> pd.DataFrame | None:
        """The configs of the study's other running trials (their stored proposal, else the
        parameters set so far), complete over ``space``; None when there are none."""
        rows = []
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.number == trial.number:
                continue
            cfg = {**dict(t.system_attrs.get(PROPOSAL_ATTR) or {}), **t.params}
            cfg = {n: cfg.get(n) for n in space.names}
            if any(is_missing(v) for v in cfg.values()):
                continue  # a trial that has not asked for every parameter yet
            try:
                rows.append(space.validate(space.restore(cfg)))
            except ValidationError:
                continue  # asked from another distribution than this space's
        return pd.DataFrame(rows, columns=space.names) if rows else None


__all__ = ["PROPOSAL_ATTR", "MetaoptSampler", "to_optuna", "to_param", "to_space"]
