"""Stepwise fits of the zoo's iterative families, so a trial can report a learning curve.

When a pruner is active, :func:`metaopt_bayes.trainer.evaluate` trains the cross-validation
folds of an ``mlp`` or ``hist_gradient_boosting`` config *in lockstep* — every fold one
step, then the next — and reports the mean over folds of the metric being optimized after
each step (``trial.report``), so the pruner can stop the trial between steps
(:class:`~metaopt_bayes.pruning.TrialPruned`). The steps are those of the development curves:

- ``mlp``: a step is one epoch (``partial_fit`` on the fold's training rows). scikit-learn's
  ``partial_fit`` refuses ``early_stopping``, so its rule is applied here, per fold, as
  ``fit`` applies it: with ``early_stopping`` a stratified ``validation_fraction`` of the
  fold's training rows is held out, a fold stops after ``n_iter_no_change`` epochs without
  its held-out score improving by ``tol`` and keeps its best weights (the value reported
  for a step is then that of the best weights so far: what the fold would return if it
  stopped there); without it, a fold stops when its training loss stops improving by the
  same rule; in any case after ``max_iter`` epochs. The rule is the same as ``fit``'s; the
  numbers are not bit-identical (``partial_fit`` draws its shuffles and the split from
  fresh generators), so a config's metrics differ slightly between the two modes.
- ``hist_gradient_boosting``: a step is a block of :data:`HGB_BLOCK` boosting iterations
  (``warm_start``: the trees are those of one fit with the same ``max_iter``), the step
  number being the iterations so far (10, 20, …, ``max_iter``). A fold whose own early
  stopping ends it stays at its last value.

Preprocessing is fitted once per fold on its training rows, as the pipeline does. The
metrics of the finished trial are computed at the end as :func:`~metaopt_bayes.trainer.evaluate`
computes them, and the last point of the curve is their mean of the metric. A point's
``elapsed_s`` is the wall time spent training up to it (every fold's, preprocessing
included), evaluation left out — as in the development curves
(``benchmarks/make_curve_suites.py``).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from metaopt_bayes.pruning import TrialHandle, TrialPruned

#: Boosting iterations per step of a stepwise ``hist_gradient_boosting`` fit.
HGB_BLOCK = 10
#: The families fitted stepwise, and how.
STEPWISE = ("mlp", "hist_gradient_boosting")


def quick_metric(name: str, task: str, y_true: np.ndarray, pred: np.ndarray) -> float | None:
    """``name`` from labels / predictions in numpy (equal to scikit-learn's), for the metrics
    that need no probabilities; None for the others (the caller computes those in full)."""
    if task == "classification":
        if name == "accuracy":
            return float(np.mean(pred == y_true))
        if name == "balanced_accuracy":
            return float(np.mean([np.mean(pred[y_true == c] == c) for c in np.unique(y_true)]))
        return None
    err = np.asarray(y_true, float) - np.asarray(pred, float)
    if name == "rmse":
        return float(math.sqrt(np.mean(err**2)))
    if name == "mae":
        return float(np.mean(np.abs(err)))
    if name == "r2":
        ss_res = float(np.sum(err**2))
        ss_tot = float(np.sum((y_true - np.mean(y_true)) ** 2))
        if ss_tot == 0.0:
            return 1.0 if ss_res == 0.0 else 0.0
        return 1.0 - ss_res / ss_tot
    return None


class _Fold:
    """One cross-validation fold of a stepwise fit: the preprocessed rows and the model."""

    def __init__(self, est: Any, Xt: Any, yt: np.ndarray, Xv: Any, yv: np.ndarray) -> None:
        self.est, self.Xt, self.yt, self.Xv, self.yv = est, Xt, yt, Xv, yv
        self.done = False
        self.max_steps = 1  # the steps of a full fit of this fold
        self.value: float | None = None  # the metric at the last step (stale when unchanged)
        self.changed = True  # the model changed since value was computed

    def advance(self, step: int) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class _MLPFold(_Fold):
    def __init__(
        self, est: Any, Xt: Any, yt: np.ndarray, Xv: Any, yv: np.ndarray, task: str,
        n_classes: int, seed: int,
    ) -> None:  # fmt: skip
        from sklearn.model_selection import train_test_split

        super().__init__(est, Xt, yt, Xv, yv)
        self.early = bool(est.early_stopping)
        self.max_steps = int(est.max_iter)
        self.tol, self.patience = float(est.tol), int(est.n_iter_no_change)
        est.set_params(early_stopping=False)  # the rule is applied here (partial_fit refuses it)
        self.classes = np.arange(n_classes) if task == "classification" else None
        self.Xa, self.ya = Xt, yt
        if self.early:
            strat = yt if task == "classification" else None
            self.Xa, self.Xi, self.ya, self.yi = train_test_split(
                Xt, yt, test_size=est.validation_fraction, random_state=seed, stratify=strat
            )
            if len(self.yi) < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' or the "
                    "size of your dataset."
                )
        self.epochs = self.no_improvement = 0
        self.best_score, self.best_loss = -np.inf, np.inf
        self.best: tuple[list, list] | None = None

    def advance(self, step: int) -> None:
        est = self.est
        if self.classes is not None and self.epochs == 0:
            est.partial_fit(self.Xa, self.ya, classes=self.classes)
        else:
            est.partial_fit(self.Xa, self.ya)
        self.epochs += 1
        if self.early:  # scikit-learn's rule on the held-out score, best weights kept
            score = float(est.score(self.Xi, self.yi))
            self.no_improvement = (
                self.no_improvement + 1 if score < self.best_score + self.tol else 0
            )
            self.changed = score > self.best_score
            if self.changed:
                self.best_score = score
                self.best = (
                    [c.copy() for c in est.coefs_],
                    [i.copy() for i in est.intercepts_],
                )
        else:  # scikit-learn's rule on the training loss
            loss = float(est.loss_)
            self.no_improvement = self.no_improvement + 1 if loss > self.best_loss - self.tol else 0
            self.best_loss = min(self.best_loss, loss)
            self.changed = True
        if self.no_improvement > self.patience or self.epochs >= self.max_steps:
            self.done = True
            if self.early and self.best is not None:
                est.coefs_, est.intercepts_ = self.best

    def scored(self) -> Any:
        """The model whose metric the step reports: with early stopping, the best weights so
        far (the current ones whenever they improved: ``changed``)."""
        return self.est


class _HGBFold(_Fold):
    def __init__(self, est: Any, Xt: Any, yt: np.ndarray, Xv: Any, yv: np.ndarray) -> None:
        super().__init__(est, Xt, yt, Xv, yv)
        self.max_steps = int(est.max_iter)
        est.set_params(warm_start=True)

    def advance(self, step: int) -> None:
        est = self.est
        est.set_params(max_iter=min(step, self.max_steps))
        est.fit(self.Xt, self.yt)
        self.changed = True
        if step >= self.max_steps or est.n_iter_ < est.max_iter:  # its own early stopping ended it
            self.done = True

    def scored(self) -> Any:
        return self.est


def step_plan(model: str, config_steps: int) -> list[int]:
    """The steps a stepwise fit reports: every epoch of an MLP, every :data:`HGB_BLOCK`
    boosting iterations (and the last, when ``max_iter`` is not a multiple)."""
    n = max(int(config_steps), 1)
    if model == "mlp":
        return list(range(1, n + 1))
    plan = list(range(HGB_BLOCK, n + 1, HGB_BLOCK))
    if not plan or plan[-1] != n:
        plan.append(n)
    return plan


def evaluate_stepwise(
    pipe: Any,
    X: pd.DataFrame,
    y_fit: np.ndarray,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    task: str,
    n_classes: int,
    model: str,
    metric: str,
    trial: TrialHandle,
    score: Callable[[Any, Any, np.ndarray], dict[str, float]],
    seed: int = 0,
) -> list[dict[str, float]]:
    """Fit ``pipe`` (the zoo's preprocessing + an ``mlp`` / ``hist_gradient_boosting``
    estimator) on every fold in lockstep, report the mean over folds of ``metric`` on the
    validation rows after each step to ``trial``, and raise :class:`TrialPruned` when
    ``trial.should_prune()``. Returns each fold's metrics at the end (``score(estimator,
    X_valid, y_valid)``, as the one-go fit computes them)."""
    from sklearn.base import clone

    folds: list[_Fold] = []
    t0 = time.perf_counter()
    spent = 0.0  # seconds of training so far, evaluation left out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings are the config's business
        for tr, te in splits:
            pre = clone(pipe.named_steps["pre"])
            Xt = pre.fit_transform(X.iloc[tr], y_fit[tr])
            Xv = pre.transform(X.iloc[te])
            est = clone(pipe.named_steps["model"])
            if model == "mlp":
                folds.append(_MLPFold(est, Xt, y_fit[tr], Xv, y_fit[te], task, n_classes, seed))
            else:
                folds.append(_HGBFold(est, Xt, y_fit[tr], Xv, y_fit[te]))
        plan = step_plan(model, max(f.max_steps for f in folds))
        spent += time.perf_counter() - t0
        for step in plan:
            t1 = time.perf_counter()
            for f in folds:
                if not f.done:
                    f.advance(step)
            spent += time.perf_counter() - t1
            if all(f.done for f in folds):
                final = [score(f.scored(), f.Xv, f.yv) for f in folds]
                vals = [m[metric] for m in final if math.isfinite(m.get(metric, np.nan))]
                if vals:
                    trial.report(step, float(np.mean(vals)), elapsed_s=spent)
                return final
            vals = []
            for f in folds:
                if f.changed or f.value is None:
                    f.value = _fold_value(f, metric, task, score)
                    f.changed = False
                if f.value is not None and math.isfinite(f.value):
                    vals.append(f.value)
            if vals:
                trial.report(step, float(np.mean(vals)), elapsed_s=spent)
                if trial.should_prune():
                    raise TrialPruned(f"pruned after {step} of {plan[-1]} steps")
    return [score(f.scored(), f.Xv, f.yv) for f in folds]  # pragma: no cover - plan ends above


def _fold_value(
    f: _Fold, metric: str, task: str, score: Callable[[Any, Any, np.ndarray], dict[str, float]]
) -> float | None:
    est = f.scored()
    pred = est.predict(f.Xv)
    quick = quick_metric(metric, task, f.yv, pred)
    if quick is not None:
        return quick
    return score(est, f.Xv, f.yv).get(metric)


__all__ = ["HGB_BLOCK", "STEPWISE", "evaluate_stepwise", "quick_metric", "step_plan"]
