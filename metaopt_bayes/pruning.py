"""Pruning: stop a trial whose learning curve says it will not beat the incumbent.

Three pieces, all plain Python objects (they travel pickled to the process that trains, so
each trial decides where it runs, and its curve comes back with its result):

- :class:`TrialPruned` — raised by an objective (or by the built-in trainer) to end its trial
  as *pruned*: logged with status ``'pruned'``, its partial curve and its last reported value.
- :class:`Pruner` — anything with ``should_prune(steps, values) -> bool``. A pruner may also
  have ``bind(incumbent=, context=, config=, budget=)``, returning a copy that knows the
  dataset's best finished value, its finished curves and the config being trained: the
  search calls it before each trial.
- :class:`CurvePruner` — the product pruner: prune when the probability that the trial's
  final value beats the incumbent, under a curve model
  (``model.prob_beats(steps, values, budget, incumbent, context=, config=)``, such as
  :class:`metaopt_bayes.curves.CurveModel`), falls below ``threshold``; never before
  ``min_fraction`` of the budget (in steps), never with no incumbent, never at the budget.
- :class:`TrialHandle` — what an objective that takes a second argument receives:
  ``report(step, value, elapsed_s=None)`` and ``should_prune()``.

And what a pruned trial tells the proposer afterwards: :func:`evidence_moments` and
:func:`pruned_targets` turn its predicted final (quantiles on the metric's scale,
:class:`metaopt_bayes.curve_pruning.PrunedEvidence`) into a mean and a variance of its own on
a meta-learner's modelling scale, which the few-shot update adds to the observation noise
(they live here, below the learner that uses them).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from warehouse.errors import ValidationError

#: The threshold of :class:`CurvePruner` when none is given.
DEFAULT_THRESHOLD = 0.05
#: The share of the budget (in steps) before which :class:`CurvePruner` never prunes.
DEFAULT_MIN_FRACTION = 0.1


class TrialPruned(Exception):
    """Raise it from an objective to end the trial as pruned (after ``trial.should_prune()``
    said so, or for a reason of your own): the trial is logged with status ``'pruned'``, the
    curve it reported and its last reported value as its metric — not as a failure."""


@runtime_checkable
class Pruner(Protocol):
    """Decides, from the steps and values a trial has reported so far (in the order
    reported), whether to stop it. Must be picklable: a trial in a worker process gets a copy.
    Optionally ``bind(incumbent=, context=, config=, budget=) -> Pruner``: a copy for one trial
    (the search calls it before each trial; see :class:`CurvePruner`)."""

    def should_prune(self, steps: np.ndarray, values: np.ndarray) -> bool: ...


class RecordOnly:
    """A pruner that never prunes: the trial still reports its steps (the zoo fits
    stepwise), so its curve is logged for later searches to learn from."""

    def should_prune(self, steps: Any, values: Any) -> bool:
        return False

    def __repr__(self) -> str:
        return "RecordOnly()"


def check_threshold(threshold: Any) -> float:
    """``threshold`` as a probability strictly between 0 and 1, or a one-line error."""
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise ValidationError(f"prune threshold must be a number in (0, 1), not {threshold!r}")
    value = float(threshold)
    if not 0.0 < value < 1.0:
        raise ValidationError(f"prune threshold must be in (0, 1), not {threshold!r}")
    return value


def check_budget(budget: Any, what: str = "budget_steps") -> int | None:
    """``budget`` as a positive whole number of steps (None stays None), or a one-line error."""
    if budget is None:
        return None
    if isinstance(budget, bool) or not isinstance(budget, numbers.Integral) or budget < 1:
        raise ValidationError(f"{what} must be a positive whole number of steps, not {budget!r}")
    return int(budget)


@dataclasses.dataclass
class CurvePruner:
    """Prune a trial when its curve gives it less than ``threshold`` probability of beating
    the incumbent at the end of its ``budget`` (in steps).

    ``model``: a fitted curve model with ``prob_beats(steps, values, budget, incumbent,
    context=None, config=None) -> float`` (:class:`metaopt_bayes.curves.CurveModel`).
    The decision is ``prob_beats(...) < threshold``, and it is never to prune

    - with no ``incumbent`` (nothing finished to beat) or no ``budget``;
    - before the trial's last reported step reaches ``min_fraction · budget``;
    - once it reaches the budget (the trial is done anyway).

    :meth:`bind` gives the copy for one trial: the dataset's best finished value
    (``incumbent``), its finished curves so far (``context``: a long frame ``run_id, step,
    value``), the config and, when known per config, its own budget. ``last_probability`` is
    the last probability computed (None before). A model that raises is a warning and no
    pruning, not a failed trial.
    """

    model: Any
    threshold: float = DEFAULT_THRESHOLD
    min_fraction: float = DEFAULT_MIN_FRACTION
    budget: int | None = None
    incumbent: float | None = None
    context: Any = None
    config: Mapping[str, Any] | None = None
    last_probability: float | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        self.threshold = check_threshold(self.threshold)
        frac = self.min_fraction
        if isinstance(frac, bool) or not isinstance(frac, numbers.Real) or not 0 <= frac < 1:
            raise ValidationError(f"min_fraction must be in [0, 1), not {frac!r}")
        self.min_fraction = float(frac)
        self.budget = check_budget(self.budget, "budget")
        if not callable(getattr(self.model, "prob_beats", None)):
            kind = type(self.model).__name__
            raise ValidationError(f"CurvePruner needs a curve model with prob_beats(), not {kind}")

    def bind(
        self,
        incumbent: float | None = None,
        context: Any = None,
        config: Mapping[str, Any] | None = None,
        budget: int | None = None,
    ) -> CurvePruner:
        """A copy for one trial (``budget`` None keeps this pruner's)."""
        inc = None if incumbent is None or not math.isfinite(float(incumbent)) else incumbent
        return dataclasses.replace(
            self,
            incumbent=None if inc is None else float(inc),
            context=context,
            config=None if config is None else dict(config),
            budget=self.budget if budget is None else check_budget(budget, "budget"),
            last_probability=None,
        )

    def probability(self, steps: Sequence[int], values: Sequence[float]) -> float | None:
        """P(the trial's final value beats the incumbent) under the curve model, or None when
        the rules above say not to ask (no incumbent, too early, at the budget)."""
        if self.incumbent is None or self.budget is None or not len(steps):
            return None
        last = int(steps[-1])
        if last < self.min_fraction * self.budget or last >= self.budget:
            return None
        try:
            p = float(
                self.model.prob_beats(
                    np.asarray(steps, dtype=float),
                    np.asarray(values, dtype=float),
                    self.budget,
                    self.incumbent,
                    context=self.context,
                    config=self.config,
                )
            )
        except Exception as exc:  # the trial goes on: a pruner is an optimization
            warnings.warn(
                f"the curve model could not judge the trial ({type(exc).__name__}: {exc}); "
                "not pruning it",
                stacklevel=3,
            )
            return None
        self.last_probability = p
        return p

    def should_prune(self, steps: Sequence[int], values: Sequence[float]) -> bool:
        p = self.probability(steps, values)
        return p is not None and p < self.threshold


def bind_pruner(pruner: Any, **kw: Any) -> Any:
    """``pruner.bind(**kw)`` when the pruner has ``bind``, else the pruner itself."""
    bind = getattr(pruner, "bind", None)
    return bind(**kw) if callable(bind) else pruner


def check_pruner(pruner: Any) -> Any:
    """``pruner`` when it is a :class:`Pruner`, else a one-line error."""
    if not callable(getattr(pruner, "should_prune", None)):
        raise ValidationError(
            f"prune= takes True, False or a pruner with should_prune(steps, values), not "
            f"{type(pruner).__name__}"
        )
    return pruner


def _step(step: Any) -> int:
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        if isinstance(step, float) and step.is_integer() and step >= 0:
            return int(step)
        raise ValidationError(f"trial.report: step must be a whole number ≥ 0, not {step!r}")
    return int(step)


def _value(value: Any) -> float:
    if isinstance(value, str | bytes | bool | np.bool_) or value is None:
        raise ValidationError(f"trial.report: value must be a finite number, not {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValidationError(
            f"trial.report: value must be a finite number, not {type(value).__name__}"
        ) from None
    if not math.isfinite(out):
        raise ValidationError(f"trial.report: value must be a finite number, not {out!r}")
    return out


class TrialHandle:
    """The trial an objective gets as its second argument (``objective(config, trial)``).

    - ``report(step, value, elapsed_s=None)``: the metric being optimized after ``step``
      (an epoch, a boosting iteration, … — whole numbers ≥ 0, increasing), and the seconds
      since the trial started (measured when not given). A step not after the last one, or
      a value that is not a finite number, is a one-line
      :class:`~warehouse.errors.ValidationError`.
    - ``should_prune()``: whether the search's pruner would stop the trial now (False before
      any report, and always without a pruner). Stop by raising :class:`TrialPruned`.

    The reported curve is logged with the trial's run, finished or pruned.
    """

    def __init__(self, pruner: Any = None, metric: str | None = None) -> None:
        self.pruner = pruner
        self.metric = metric
        self.steps: list[int] = []
        self.values: list[float] = []
        self.elapsed: list[float] = []
        self._t0 = time.perf_counter()
        self._decided: tuple[int, bool] | None = None  # (points judged, decision)

    def report(self, step: Any, value: Any, elapsed_s: Any = None) -> None:
        s, v = _step(step), _value(value)
        if self.steps and s <= self.steps[-1]:
            raise ValidationError(
                f"trial.report: step {s} is not after the last reported step {self.steps[-1]}"
            )
        if elapsed_s is None:
            t = time.perf_counter() - self._t0
        else:
            t = _value(elapsed_s)
            if t < 0:
                raise ValidationError(f"trial.report: elapsed_s must be ≥ 0, not {elapsed_s!r}")
        self.steps.append(s)
        self.values.append(v)
        self.elapsed.append(float(t))

    def should_prune(self) -> bool:
        if self.pruner is None or not self.steps:
            return False
        n = len(self.steps)
        if self._decided is None or self._decided[0] != n:
            decision = bool(self.pruner.should_prune(list(self.steps), list(self.values)))
            self._decided = (n, decision)
        return self._decided[1]

    @property
    def last_step(self) -> int | None:
        return self.steps[-1] if self.steps else None

    @property
    def last_value(self) -> float | None:
        return self.values[-1] if self.values else None

    def curve(self, metric: str | None = None) -> list[dict[str, Any]]:
        """The reported points as the warehouse logs them (``metric, step, value,
        elapsed_s``), under ``metric`` (default: the handle's)."""
        name = metric or self.metric
        return [
            {"metric": name, "step": s, "value": v, "elapsed_s": t}
            for s, v, t in zip(self.steps, self.values, self.elapsed, strict=True)
        ]

    def __repr__(self) -> str:
        return f"TrialHandle(steps={len(self.steps)}, last_step={self.last_step})"


def last_point(curve: Sequence[Mapping[str, Any]] | None) -> tuple[int | None, float | None]:
    """The last (step, value) of a logged curve, or (None, None)."""
    if not curve:
        return None, None
    point = curve[-1]
    return int(point["step"]), float(point["value"])


#: The columns of a pruned trial's row besides ``value`` (the predicted median final, metric
#: scale): the curve model's 5% and 95% predictive quantiles of the final value, and the best
#: value its partial curve reached (only with ``curve_pruning.CENSOR_AT_PARTIAL_BEST``).
VALUE_Q05, VALUE_Q95, VALUE_BOUND = "value_q05", "value_q95", "value_bound"
#: ``Φ⁻¹(0.95)``: a Gaussian's 5%–95% span is ``2 · 1.645`` standard deviations
_Z95 = 1.6448536269514722


def evidence_moments(
    q05: np.ndarray,
    q50: np.ndarray,
    q95: np.ndarray,
    forward: Callable[[np.ndarray], np.ndarray],
    bound: np.ndarray | None = None,
    maximize: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance on a learner's modelling scale of predicted final values given by
    their 5/50/95% quantiles on the metric's scale (:meth:`CurveModel.predict_final`).

    ``forward`` is the learner's monotone transform (:meth:`TargetTransform.forward`): the
    quantiles are mapped through it, which keeps them quantiles, and read as a Gaussian with
    mean ``t(q50)`` and standard deviation ``(t(q95) − t(q05)) / (2 · 1.645)``. The curve
    model's predictive is a Gaussian mixture on its own scale (logit of an accuracy,
    standardized), close to the learner's; the Gaussian keeps its centre and its 90% width.
    With ``bound`` (finite values; NaN: none) the final is known to be at least it (at most,
    minimizing): the Gaussian is truncated there and its mean and variance are the truncated
    normal's. Rows whose quantiles do not map to finite values get variance 0 at ``t(q50)``."""
    from scipy.stats import truncnorm

    t05, t50, t95 = (forward(np.asarray(q, dtype=float)) for q in (q05, q50, q95))
    sd = np.abs(t95 - t05) / (2.0 * _Z95)
    ok = np.isfinite(sd) & np.isfinite(t50)
    mean = np.where(np.isfinite(t50), t50, np.nan)
    var = np.where(ok, sd * sd, 0.0)
    if bound is None:
        return mean, var
    tb = forward(np.asarray(bound, dtype=float))
    cut = ok & np.isfinite(tb) & (sd > 0)
    if cut.any():
        m, s_, b = mean[cut], sd[cut], (tb[cut] - mean[cut]) / sd[cut]
        lo, hi = (b, np.inf) if maximize else (-np.inf, b)
        tm, tv = truncnorm.stats(lo, hi, loc=m, scale=s_, moments="mv")
        # far beyond the bound the truncated law is a point mass at it
        far = ~np.isfinite(tm) | ~np.isfinite(tv)
        mean[cut] = np.where(far, tb[cut], tm)
        var[cut] = np.where(far, 0.0, np.maximum(tv, 0.0))
    flat = ok & np.isfinite(tb) & (sd <= 0)
    if flat.any():
        mean[flat] = (
            np.maximum(mean[flat], tb[flat]) if maximize else np.minimum(mean[flat], tb[flat])
        )
    return mean, var


def pruned_targets(
    obs: pd.DataFrame,
    y: np.ndarray,
    forward: Callable[[np.ndarray], np.ndarray],
    maximize: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """A dataset's observations ``y`` (modelling scale) with each row's own variance: rows
    of ``obs`` with predictive quantiles (:data:`VALUE_Q05`, :data:`VALUE_Q95`; a pruned
    trial's predicted final) take :func:`evidence_moments`' mean and variance, every other
    row its ``y`` and variance 0. The variances are None when no row has quantiles (every
    observation is a measurement)."""
    if VALUE_Q05 not in obs.columns or VALUE_Q95 not in obs.columns:
        return y, None
    q05 = pd.to_numeric(obs[VALUE_Q05], errors="coerce").to_numpy(dtype=float)
    q95 = pd.to_numeric(obs[VALUE_Q95], errors="coerce").to_numpy(dtype=float)
    has = np.isfinite(q05) & np.isfinite(q95)
    if not has.any():
        return y, None
    bound = None
    if VALUE_BOUND in obs.columns:
        bound = pd.to_numeric(obs[VALUE_BOUND], errors="coerce").to_numpy(dtype=float)[has]
    q50 = pd.to_numeric(obs["value"], errors="coerce").to_numpy(dtype=float)[has]
    mean, var = evidence_moments(q05[has], q50, q95[has], forward, bound, maximize)
    y = np.array(y, dtype=float)
    v = np.zeros(len(y))
    keep = np.isfinite(mean)
    y[np.flatnonzero(has)[keep]] = mean[keep]
    v[np.flatnonzero(has)[keep]] = var[keep]
    return y, (v if np.any(v > 0) else None)


__all__ = [
    "DEFAULT_MIN_FRACTION",
    "DEFAULT_THRESHOLD",
    "VALUE_BOUND",
    "VALUE_Q05",
    "VALUE_Q95",
    "CurvePruner",
    "Pruner",
    "RecordOnly",
    "TrialHandle",
    "TrialPruned",
    "bind_pruner",
    "check_budget",
    "check_pruner",
    "check_threshold",
    "evidence_moments",
    "last_point",
    "pruned_targets",
]
