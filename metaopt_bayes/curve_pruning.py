"""Pruning in a search: the pruner fitted from the warehouse's curves, bound to each trial,
and what a pruned trial tells the proposer afterwards.

- :func:`search_pruning` sets up ``optimize(prune=...)`` / ``Search(prune=...)``: ``True``
  fits a :class:`metaopt_bayes.curves.CurveModel` (MAP) on the finished curves the warehouse
  holds of the model's ``metric`` (on the other datasets when there are any; the target's
  own are the model's ``context``) and wraps it in a
  :class:`~metaopt_bayes.pruning.CurvePruner`; a pruner object is used as it is. The budget
  in steps is ``budget_steps`` when given, else the config's own (a zoo family's
  ``max_iter``), else the largest step of the model's finished curves. With no curve of the
  model in the warehouse nothing is pruned, with a warning, but the trials still report
  their steps (:class:`~metaopt_bayes.pruning.RecordOnly`): their curves are logged, so the
  next search can prune.
- :class:`SearchPruning` binds the pruner to one trial just before it is submitted: the best
  finished value of the metric on the dataset (the incumbent), the dataset's finished curves
  so far (the context), the config and its budget. The bound copy travels to wherever the
  trial runs and decides there.
- :class:`PrunedEvidence` is what a pruned trial tells the proposer. Its config is never
  proposed again, and it enters the few-shot update as an *uncertain observation* of its
  final value: the curve model's predictive for its partial curve (``CurveModel.
  predict_final`` at its budget, with the dataset's finished curves as context) as its 5%,
  50% and 95% quantiles, which the meta-learner maps to its own modelling scale and reads as
  a Gaussian — mean at the median, standard deviation the 5–95% span / (2 · 1.645)
  (:func:`metaopt_bayes.pruning.evidence_moments`). The update takes that variance on top
  of the dataset's noise for this row alone (``update_dataset(obs_var=)``, exact: the
  heteroscedastic Gaussian posterior), so a confident prediction counts nearly as a finished
  run and an unsure one little; up to 0.6.1 the row was a fantasy at the median with a
  finished run's noise. The model discrepancy leaves such rows out, the task GP adds the
  variance to its noise, and the transfer's weight is learnt from finished runs only
  (``MetaLearner._discrepancy``, ``_adaptation``). It is a Gaussian approximation of the
  curve model's predictive, not a censored likelihood: the bound "final ≥ the partial
  curve's best" would be censoring, but the learner models a run's *last* value, which
  falls below the partial best for many curves (:data:`CENSOR_AT_PARTIAL_BEST`, off).
  Without a curve model (pruning off in this search, or a pruner without one) a pruned
  config is fantasized at the learner's own predicted mean, as a pending trial is: excluded,
  and no evidence either way. Pruned runs are not in the training matrix (finished runs
  only), so they never enter a fit of the population.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from metaopt_bayes.candidates import PARAM_PREFIX
from metaopt_bayes.pruning import (
    VALUE_BOUND,
    VALUE_Q05,
    VALUE_Q95,
    CurvePruner,
    RecordOnly,
    bind_pruner,
    check_budget,
    check_pruner,
)
from warehouse.errors import NotFoundError
from warehouse.protocol import WarehouseLike

#: How the curve model of ``prune=True`` is fitted (fast: it is fitted at each search's start).
CURVE_FIT_METHOD = "map"

#: Truncate a pruned trial's predicted final at the best value its partial curve reached
#: (final ≥ partial best, maximizing). Off: that holds for a best-so-far metric, but the value
#: the meta-learner models is a run's *last* one, and curves fall back — in the benchmark
#: suites (``benchmarks/data/pmlb_curves_*``) the final accuracy is below the best of the first
#: quarter of the steps for 29% of mlp runs and 33% of hist_gradient_boosting runs (by .056 and
#: .044 on average when it is), and below the best of the first tenth for 18% and 25%.
#: Switched on for the mlp dev searches it was no better (regret at 7× .033 against .024 off,
#: +.009 ± .007; ``benchmarks/results/pruning_search.md``).
CENSOR_AT_PARTIAL_BEST = False


def best_value(
    warehouse: WarehouseLike,
    dataset: str,
    model: str | Sequence[str],
    metric: str,
    maximize: bool,
) -> float | None:
    """The best finished value of ``metric`` for ``model`` (or any of several) on
    ``dataset`` (the incumbent a trial must beat), or None."""
    found: list[np.ndarray] = []
    for m in [model] if isinstance(model, str) else list(model):
        try:
            runs = warehouse.training_matrix(metric, model=m, datasets=[dataset])
        except NotFoundError:
            continue
        if len(runs):
            found.append(pd.to_numeric(runs["value"], errors="coerce").to_numpy(float))
    vals = np.concatenate(found) if found else np.array([])
    vals = vals[np.isfinite(vals)]
    if not len(vals):
        return None
    return float(vals.max() if maximize else vals.min())


def finished_curves(
    warehouse: WarehouseLike, dataset: str | None, model: str, metric: str
) -> pd.DataFrame:
    """The finished runs' curves of ``model``'s ``metric`` (on ``dataset``, or every dataset):
    ``run_id, dataset, step, value, elapsed_s``."""
    cur = warehouse.curves(dataset=dataset, model=model, metric=metric, status="finished")
    if cur is None or not len(cur):
        return pd.DataFrame(columns=["run_id", "dataset", "step", "value", "elapsed_s"])
    return cur.reset_index(drop=True)


def run_configs(
    warehouse: WarehouseLike, model: str, metric: str, datasets: list[str] | None = None
) -> pd.DataFrame | None:
    """``run_id`` + ``params.*`` of the finished runs of ``model`` (on ``datasets``): the
    configs a curve model relates to its curves; None when there are none."""
    try:
        tm = warehouse.training_matrix(metric, model=model, datasets=datasets)
    except NotFoundError:
        return None
    cols = ["run_id", *(c for c in tm.columns if str(c).startswith(PARAM_PREFIX))]
    return tm[cols].reset_index(drop=True) if len(tm) and len(cols) > 1 else None


def fit_curve_model(
    warehouse: WarehouseLike, curves: pd.DataFrame, model: str, metric: str, maximize: bool
) -> Any:
    """A :class:`metaopt_bayes.curves.CurveModel` of ``curves`` (finished, long, with
    ``dataset``) and their runs' configs, fitted by :data:`CURVE_FIT_METHOD`.

    The curve model takes a dataset's largest step as the budget of its runs and leaves the
    shorter curves out as unfinished. Finished runs of one dataset that end at different
    steps — zoo configs with different ``max_iter``, MLPs stopped early — are therefore
    grouped by dataset *and* last step (``<dataset>@<step>``), so that every finished curve
    counts, with its own end as its budget."""
    from metaopt_bayes.curves import CurveModel

    curves = curves.reset_index(drop=True)
    last = curves.groupby("run_id")["step"].transform("max")
    if (last.groupby(curves["dataset"].astype(str)).nunique() > 1).any():
        ends = pd.to_numeric(last).round().astype(int).astype(str)
        curves = curves.assign(dataset=curves["dataset"].astype(str) + "@" + ends)
    return CurveModel(metric, maximize).fit(
        curves, configs=run_configs(warehouse, model, metric), method=CURVE_FIT_METHOD
    )


def intermediate_curve(trial: Any) -> tuple[list[int], list[float]]:
    """An Optuna trial's intermediate values as (steps, values) in step order, non-finite
    values left out."""
    items = sorted((int(s), float(v)) for s, v in trial.intermediate_values.items())
    items = [(s, v) for s, v in items if math.isfinite(v)]
    return [s for s, _ in items], [v for _, v in items]


def _context(curves: pd.DataFrame) -> pd.DataFrame:
    return curves[["run_id", "step", "value"]].reset_index(drop=True)


@dataclasses.dataclass
class SearchPruning:
    """A search's pruner and where each trial's binding comes from (see the module
    docstring). ``steps_of(config)``: a config's own budget in steps (a zoo family's
    ``max_iter``), else ``budget``. ``curve_model``: what predicts a pruned trial's final
    value (:class:`PrunedEvidence`), None when the pruner has none."""

    pruner: Any
    dataset: str
    model: str
    metric: str
    maximize: bool
    budget: int | None = None
    steps_of: Callable[[Mapping[str, Any]], int | None] | None = None
    curve_model: Any = None
    #: the models whose best finished run is the incumbent (default: ``model``'s own; a
    #: search across families: all of them)
    incumbent_of: tuple[str, ...] | None = None

    def budget_for(self, config: Mapping[str, Any]) -> int | None:
        if self.budget is not None:
            return self.budget
        if self.steps_of is not None:
            with contextlib.suppress(Exception):
                return self.steps_of(config)
        return None

    def for_trial(
        self, warehouse: WarehouseLike, config: Mapping[str, Any], model: str | None = None
    ) -> Any:
        """The pruner for one trial of ``config``: bound to the incumbent, the dataset's
        finished curves and the config's budget as of now (a pruner without ``bind`` as it
        is). ``model``: the trial's family, which is this search's."""
        if not callable(getattr(self.pruner, "bind", None)):
            return self.pruner
        models = self.incumbent_of or self.model
        incumbent = best_value(warehouse, self.dataset, models, self.metric, self.maximize)
        context = _context(finished_curves(warehouse, self.dataset, self.model, self.metric))
        return bind_pruner(
            self.pruner,
            incumbent=incumbent,
            context=context,
            config=dict(config),
            budget=self.budget_for(config),
        )

    def evidence(self, space: Any = None) -> PrunedEvidence:
        return PrunedEvidence(
            self.dataset, self.model, self.metric, self.curve_model, self.budget_for
        )


def search_pruning(
    warehouse: WarehouseLike,
    dataset: str,
    model: str,
    metric: str | None,
    maximize: bool,
    prune: Any,
    threshold: float,
    budget_steps: int | None = None,
    steps_of: Callable[[Mapping[str, Any]], int | None] | None = None,
) -> SearchPruning | None:
    """The pruning of a search of ``model`` on ``dataset`` (see the module docstring); None
    when ``prune`` is off. ``True`` with no curve to learn from records curves and prunes
    nothing (a warning says so)."""
    budget = check_budget(budget_steps)
    if prune is None or prune is False:
        return None
    if prune is not True:
        pruner = check_pruner(prune)
        own = getattr(pruner, "model", None)
        curve_model = own if callable(getattr(own, "predict_final", None)) else None
        if metric is None:
            metric = ""
        return SearchPruning(
            pruner, dataset, model, str(metric), maximize, budget, steps_of, curve_model
        )
    if metric is None:
        warnings.warn(
            f"pruning is off: no metric is named yet and the warehouse has no runs of "
            f"{model!r} (pass metric=)",
            stacklevel=3,
        )
        return None
    curves = finished_curves(warehouse, None, model, metric)
    if not len(curves):
        warnings.warn(
            f"nothing is pruned: the warehouse has no finished learning curves of {model!r} "
            f"for {metric!r} to learn when to stop; this search's curves are logged, so the "
            "next one can prune",
            stacklevel=3,
        )
        return SearchPruning(RecordOnly(), dataset, model, metric, maximize, budget, steps_of)
    others = curves[curves["dataset"].astype(str) != str(dataset)]
    curve_model = fit_curve_model(
        warehouse, others if len(others) else curves, model, metric, maximize
    )
    if budget is None and steps_of is None:
        budget = int(pd.to_numeric(curves["step"]).max())
    pruner = CurvePruner(curve_model, threshold=threshold, budget=budget)
    return SearchPruning(pruner, dataset, model, metric, maximize, budget, steps_of, curve_model)


class PrunedEvidence:
    """The pruned trials of ``model`` on ``dataset`` as rows the proposer conditions on:
    their parameters, ``value`` = the curve model's predicted median final and its 5% and 95%
    quantiles (:data:`VALUE_Q05`, :data:`VALUE_Q95`; with :data:`CENSOR_AT_PARTIAL_BEST`, the
    partial curve's best as :data:`VALUE_BOUND`) — all NaN without a curve model: the
    learner's own prediction then. Read again only when the number of pruned runs changes;
    each run's prediction is made once, when it is first seen."""

    def __init__(
        self,
        dataset: str,
        model: str,
        metric: str | None,
        curve_model: Any = None,
        budget_of: Callable[[Mapping[str, Any]], int | None] | None = None,
    ) -> None:
        self.dataset, self.model, self.metric = str(dataset), str(model), metric
        self.curve_model, self.budget_of = curve_model, budget_of
        self._count = -1
        self._rows = pd.DataFrame()
        # run_id → (q05, q50, q95, best of the partial curve) on the metric's scale
        self._predicted: dict[str, tuple[float, float, float, float]] = {}

    def rows(self, warehouse: WarehouseLike) -> pd.DataFrame:
        """Parameter columns (as stored) + ``value`` and its quantiles, one row per pruned
        run; empty when there is none."""
        n = warehouse.count_runs(dataset=self.dataset, model=self.model, status="pruned")
        if n == self._count:
            return self._rows
        self._count = n
        if n == 0:
            self._rows = pd.DataFrame()
            return self._rows
        runs = warehouse.view(
            "run_features", dataset=self.dataset, model=self.model, status="pruned"
        )
        configs: list[dict[str, Any]] = []
        for num, text in zip(runs["params_num"], runs["params_text"], strict=True):
            configs.append({**dict(num or {}), **dict(text or {})})
        ids = [str(r) for r in runs["run_id"]]
        self._predict(warehouse, ids, configs)
        rows = pd.DataFrame(configs)
        pred = np.array([self._predicted.get(r, (np.nan,) * 4) for r in ids], dtype=float)
        rows["value"], rows[VALUE_Q05], rows[VALUE_Q95] = pred[:, 1], pred[:, 0], pred[:, 2]
        if CENSOR_AT_PARTIAL_BEST:
            rows[VALUE_BOUND] = pred[:, 3]
        self._rows = rows
        return rows

    def _predict(
        self, warehouse: WarehouseLike, ids: list[str], configs: list[dict[str, Any]]
    ) -> None:
        """The curve model's predicted final (quantiles) for each pruned run not predicted
        yet, and the best value of its partial curve."""
        new = [i for i, r in enumerate(ids) if r not in self._predicted]
        if not new or self.curve_model is None or not self.metric:
            return
        partial = warehouse.curves(metric=self.metric, run_ids=[ids[i] for i in new])
        if partial is None or not len(partial):
            return
        context = _context(finished_curves(warehouse, self.dataset, self.model, self.metric))
        mine = pd.DataFrame([configs[i] for i in new]).add_prefix(PARAM_PREFIX)
        mine.insert(0, "run_id", [ids[i] for i in new])
        known = run_configs(warehouse, self.model, self.metric, [self.dataset])
        configs_df = pd.concat([f for f in (known, mine) if f is not None], ignore_index=True)
        by_budget: dict[int, list[str]] = {}
        for i in new:
            budget = self.budget_of(configs[i]) if self.budget_of is not None else None
            if budget is None:
                budget = int(pd.to_numeric(partial["step"]).max())
            by_budget.setdefault(int(budget), []).append(ids[i])
        for budget, run_ids in by_budget.items():
            part = partial[partial["run_id"].astype(str).isin(run_ids)]
            try:
                pred = self.curve_model.predict_final(
                    part[["run_id", "step", "value"]].reset_index(drop=True),
                    budget,
                    dataset=self.dataset,
                    context=context,
                    configs=configs_df,
                )
            except Exception as exc:  # no prediction: the learner's own (a pending trial's)
                warnings.warn(
                    f"no predicted final for {len(run_ids)} pruned trial(s): "
                    f"{type(exc).__name__}: {exc}",
                    stacklevel=4,
                )
                continue
            if "run_id" not in pred.columns:  # predict_final indexes its rows by run_id
                pred = pred.reset_index()
            values = pd.to_numeric(part["value"], errors="coerce")
            by_run = values.groupby(part["run_id"].astype(str))
            best = by_run.max() if getattr(self.curve_model, "maximize", True) else by_run.min()
            for rid, q05, q50, q95 in zip(
                pred["run_id"], pred["q05"], pred["q50"], pred["q95"], strict=True
            ):
                if np.isfinite(q50):
                    b = float(best.get(str(rid), np.nan))
                    self._predicted[str(rid)] = (float(q05), float(q50), float(q95), b)


__all__ = [
    "CENSOR_AT_PARTIAL_BEST",
    "CURVE_FIT_METHOD",
    "PrunedEvidence",
    "SearchPruning",
    "best_value",
    "finished_curves",
    "fit_curve_model",
    "intermediate_curve",
    "run_configs",
    "search_pruning",
]
