"""An Optuna pruner that stops trials by metaopt's curve model: :class:`MetaoptPruner`.

A study that reports intermediate values (``trial.report(value, step)``) gets a pruner that
knows how the model's learning curves went on the warehouse's *other* datasets: a trial is
pruned when the probability that its final value beats the study's best one falls below
``threshold`` (:class:`~metaopt_bayes.pruning.CurvePruner`):

- **Curve model.** A :class:`metaopt_bayes.curves.CurveModel` fitted (MAP) on the finished
  curves the warehouse holds of ``model``'s ``metric`` — the names :class:`MetaoptSampler`
  logs a study under — leaving ``dataset`` out when other datasets have curves. It is fitted
  once per process, on the first trial that reaches ``min_fraction`` of the budget; the
  warehouse (a path) is opened only for that read. With no curve of the model there, the
  pruner never prunes (with one warning).
- **Each decision** (Optuna calls :meth:`prune` from ``trial.should_prune()``, in the process
  that runs the trial): the trial's intermediate values in step order; the incumbent is
  ``study.best_value`` (no completed trial: never prune); the context is the completed
  trials' intermediate values, the target's curves so far; the budget is ``budget_steps``,
  else the largest step of the warehouse's finished curves of the model. Never before
  ``min_fraction`` of the budget, never at it.

Optuna's own pruners read the same fields (``trial.intermediate_values``, ``trial.last_step``,
the study's completed trials); this one asks a model of curves instead of comparing with
other trials' values at the same step.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from metaopt_bayes.curve_pruning import finished_curves, fit_curve_model, intermediate_curve
from metaopt_bayes.pruning import (
    DEFAULT_MIN_FRACTION,
    DEFAULT_THRESHOLD,
    CurvePruner,
    check_budget,
    check_threshold,
)
from warehouse.errors import ValidationError
from warehouse.protocol import WarehouseLike

try:
    import optuna
    from optuna.pruners import BasePruner
    from optuna.trial import FrozenTrial, TrialState
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError("MetaoptPruner needs Optuna: pip install 'metaopt[optuna]'") from exc


class MetaoptPruner(BasePruner):
    """Prune an Optuna trial when metaopt's curve model gives it less than ``threshold``
    probability of beating the study's best value (see the module docstring).

    ``warehouse``: a path (opened only to read the curves) or an open
    :class:`~warehouse.Warehouse`. ``model``, ``metric``: whose curves are learnt (the names
    the study's trials are logged under by :class:`~metaopt_bayes.MetaoptSampler`).
    ``dataset``: the study's dataset, left out of the fit when others have curves.
    ``budget_steps``: the steps of a full trial (default: the largest step of the model's
    finished curves). ``curve_model``: a fitted curve model to use instead of fitting one.
    """

    def __init__(
        self,
        warehouse: str | os.PathLike[str] | WarehouseLike,
        model: str,
        metric: str,
        *,
        dataset: str | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        min_fraction: float = DEFAULT_MIN_FRACTION,
        budget_steps: int | None = None,
        curve_model: Any = None,
        busy_timeout: float = 120.0,
    ) -> None:
        for value, what in ((model, "model"), (metric, "metric")):
            if not isinstance(value, str) or not value.strip():
                raise ValidationError(f"MetaoptPruner: {what} must be a non-empty name")
        self.model, self.metric = str(model), str(metric)
        self.dataset = None if dataset is None else str(dataset)
        self.threshold = check_threshold(threshold)
        self.budget_steps = check_budget(budget_steps)
        # checked now, one line: CurvePruner's own check of min_fraction
        CurvePruner(_Unfitted(), self.threshold, min_fraction, self.budget_steps)
        self.min_fraction = float(min_fraction)
        self.busy_timeout = float(busy_timeout)
        if isinstance(warehouse, str | os.PathLike):
            self._path: str | None = str(Path(warehouse).expanduser())
            self._wh: WarehouseLike | None = None
        else:
            self._path, self._wh = None, warehouse
        self.curve_model = curve_model
        self.budget: int | None = self.budget_steps
        self._maximize: bool | None = None
        self._ready = curve_model is not None and self.budget is not None
        self._off = False  # no curves to learn from: never prune
        self._lock = threading.RLock()
        self.last_probability: float | None = None

    # ------------------------------------------------------------------ warehouse
    @contextlib.contextmanager
    def _open(self) -> Iterator[WarehouseLike]:
        if self._wh is not None:
            yield self._wh
            return
        from warehouse import Warehouse

        with Warehouse(self._path, busy_timeout=self.busy_timeout) as wh:
            yield wh

    def _prepare(self, maximize: bool) -> bool:
        """Fit the curve model (once) and find the budget; False when pruning is off."""
        with self._lock:
            if self._off:
                return False
            if self._ready and self._maximize in (None, maximize):
                self._maximize = maximize
                return True
            with self._open() as wh:
                known = wh.metric_direction(self.metric)
                way = "maximize" if maximize else "minimize"
                if known != way:
                    raise ValidationError(
                        f"metric {self.metric!r} is {known}d in the warehouse but the study "
                        f"will {way} it"
                    )
                curves = finished_curves(wh, None, self.model, self.metric)
                if len(curves) and self.curve_model is None:
                    others = curves
                    if self.dataset is not None:
                        rest = curves[curves["dataset"].astype(str) != self.dataset]
                        others = rest if len(rest) else curves
                    self.curve_model = fit_curve_model(
                        wh, others, self.model, self.metric, maximize
                    )
            if not len(curves):
                self._off = True
                warnings.warn(
                    f"MetaoptPruner prunes nothing: the warehouse has no learning curves of "
                    f"{self.model!r} for {self.metric!r}",
                    stacklevel=4,
                )
                return False
            if self.budget is None:
                self.budget = int(pd.to_numeric(curves["step"]).max())
            self._maximize, self._ready = maximize, True
            return True

    # ------------------------------------------------------------------ the pruner
    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if len(study.directions) != 1:
            return False  # Optuna prunes single-objective studies only
        steps, values = intermediate_curve(trial)
        if not steps:
            return False
        try:
            incumbent = float(study.best_value)
        except ValueError:  # no completed trial yet: nothing to beat
            return False
        maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
        if self.budget is not None and (
            steps[-1] < self.min_fraction * self.budget or steps[-1] >= self.budget
        ):
            return False  # not worth a look (and no fit needed yet)
        if not self._prepare(maximize):
            return False
        pruner = CurvePruner(self.curve_model, self.threshold, self.min_fraction, self.budget).bind(
            incumbent=incumbent, context=self._context(study, trial), config=trial.params
        )
        decision = pruner.should_prune(steps, values)
        self.last_probability = pruner.last_probability
        return decision

    @staticmethod
    def _context(study: optuna.Study, trial: FrozenTrial) -> pd.DataFrame:
        """The completed trials' intermediate values: ``run_id`` (the trial number), ``step``,
        ``value``."""
        rows = []
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.number == trial.number:
                continue
            steps, values = intermediate_curve(t)
            rows += [(str(t.number), s, v) for s, v in zip(steps, values, strict=True)]
        return pd.DataFrame(rows, columns=["run_id", "step", "value"])


class _Unfitted:
    """A stand-in with ``prob_beats`` for checking a CurvePruner's options up front."""

    def prob_beats(self, *args: Any, **kwargs: Any) -> float:  # pragma: no cover - never asked
        return 1.0


__all__ = ["MetaoptPruner"]
