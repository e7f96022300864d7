"""Learning curves: a run's final metric predicted from its partial curve (issue #28).

A training run logs its metric at steps ``t`` (epochs, boosting iterations) up to the budget
``T`` of its dataset. On the modelling scale ``z`` (logit of an accuracy, log of a loss, then
standardized; :class:`~metaopt_bayes.features.TargetTransform`) the model predicts the change
still to come after the last observed step ``t_j``, at the fraction ``f = t_j / T``::

    Δ = z(T) − z(t_j) = x(f, curve, config)ᵀ β + (L, s·L) u_d + ε,
    ε ~ N(0, σ_d² (e^{2a} L^{2κ} + e^{2b})),     L = −log f = log(T / t_j)

* ``x`` — the curve shape shared by every dataset: ``L``, ``L²`` (how much a typical curve
  still gains), ``s·L``, ``s·L²`` (how far the local slope ``s`` carries on: ``s`` is the least
  squares slope of ``z`` against ``log t`` over the last doubling of steps, so ``s·L`` is the
  straight-line extrapolation to ``T`` on log steps), ``r``, ``r·L`` (``r``: the last point's
  residual from that line, a noisy last value that partly reverts), and optionally the
  configuration's linear terms times ``L`` (:class:`~metaopt_bayes.features.FeatureEncoder`).
  Every term but ``r`` vanishes at ``f = 1``.
* ``u_d = (level, rate)`` — per dataset, ``u_d ~ N(0, diag τ²)``: how much more (or less)
  than the population its runs still gain, and how much more of their slope persists.
* ``σ_d = e^{v_d}``, ``v_d ~ N(0, s_v²)`` — the dataset's noise level (curves on a validation
  set of 30 rows jump; on 600 rows they do not); the rest of the noise shrinks as ``f → 1``
  (``κ > 0``) to a floor ``e^{b}`` (the final value's own evaluation noise).

Training rows: every finished curve of the training datasets cut at the fractions
:data:`CHECKPOINTS` of its budget; the rows of one run share its final value, so each row is
weighted ``1 / (rows of its run)`` (a composite likelihood in which a run counts once). Fitted
with PyMC: MAP (the mode with the Jacobian, :func:`~metaopt_bayes.inference.map_point`) or
NUTS (nutpie), the draws kept (at most :data:`MAX_DRAWS`).

A dataset the model was not fitted on gets the population: per draw, its ``u_d`` and ``v_d``
are integrated out — ``v_d`` on :data:`NODES` Gauss–Hermite nodes of ``N(0, s_v²)``, ``u_d``
in closed form given ``v_d`` (Bayesian linear regression on the residuals of its finished
curves, the ``context``, cut at the same checkpoints with the same weights). The predictive
law of ``z(T)`` is then a mixture of Gaussians over draws × nodes, which :meth:`prob_beats`
evaluates with numpy alone (no PyMC at predict time).

Measured by ``benchmarks/curve_calibration.py`` (record: ``benchmarks/results/
curve_calibration.md``), against "final = last value", a pooled regression without the dataset
effects and a per-run power law with hierarchical priors.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr, roots_hermitenorm

from metaopt_bayes.features import PARAM_PREFIX, FeatureEncoder, TargetTransform
from warehouse.errors import ValidationError

#: fractions of the budget at which each finished training curve is cut into training rows
CHECKPOINTS = tuple(float(f) for f in np.round(np.geomspace(0.05, 0.9, 10), 4))
#: the shared shape's terms (fixed effects) and the per-dataset ones (random effects)
SHAPE_TERMS = ("L", "L2", "sL", "sL2", "r", "rL")
EFFECT_TERMS = ("L", "sL")
#: the terms of the probability that a curve stays where it is (the final value equals the
#: last observed one): an intercept, whether the last doubling of steps was flat, ``L``, both
STAY_TERMS = ("1", "flat", "L", "flatL")
#: Gauss–Hermite nodes of a new dataset's noise level ``v_d`` and of its stay intercept ``h_d``
NODES = 7
STAY_NODES = 5
#: posterior draws kept after NUTS (thinned evenly)
MAX_DRAWS = 100
METHODS = ("map", "nuts")
#: file format of :meth:`CurveModel.save`
FORMAT_VERSION = 1
_LOG2 = math.log(2.0)
_CONTEXT_CACHE = 16


# --------------------------------------------------------------------------------------------
# features of a partial curve


def curve_summary(log_steps: np.ndarray, z: np.ndarray) -> tuple[float, float, float]:
    """``(s, r, act)`` of a partial curve on log steps, over the points within the last
    doubling of steps (at least the last three): ``s`` the least-squares slope, ``r`` the last
    point's residual from that line, ``act`` the root mean square of the steps' changes (how
    much the curve still moves, slope and noise alike); zeros for a single point."""
    n = len(log_steps)
    if n < 2:
        return 0.0, 0.0, 0.0
    k = int(np.count_nonzero(log_steps >= log_steps[-1] - _LOG2 - 1e-12))
    k = min(max(k, 3), n)
    x = log_steps[n - k :]
    y = z[n - k :]
    dy = np.diff(y)
    act = math.sqrt(float(dy @ dy) / len(dy))
    xm = x.mean()
    ym = y.mean()
    dx = x - xm
    sxx = float(dx @ dx)
    if sxx <= 0:
        return 0.0, 0.0, act
    s = float(dx @ (y - ym)) / sxx
    return s, float(y[-1] - ym - s * dx[-1]), act


#: the columns of a row's features ``F``: remaining log-budget, slope, last residual, activity
FEATURES = ("L", "s", "r", "act")


def shape_terms(F: np.ndarray, terms: Sequence[str]) -> np.ndarray:
    """The columns ``terms`` (names of :data:`SHAPE_TERMS` / :data:`EFFECT_TERMS`) for rows of
    features ``F`` (n, 4): remaining log-budget ``L``, slope ``s``, last residual ``r``,
    activity ``act``."""
    F = np.asarray(F, dtype=float)
    L, s, r = F[:, 0], F[:, 1], F[:, 2]
    table = {
        "L": lambda: L,
        "L2": lambda: L * L,
        "sL": lambda: s * L,
        "sL2": lambda: s * L * L,
        "r": lambda: r,
        "rL": lambda: r * L,
        "sqrtL": lambda: np.sqrt(L),
    }
    return np.stack([table[t]() for t in terms], axis=-1)


def stay_terms(F: np.ndarray) -> np.ndarray:
    """The columns :data:`STAY_TERMS` for rows of features ``F`` (flat: activity exactly 0,
    every value of the last doubling of steps the same)."""
    F = np.asarray(F, dtype=float)
    flat = (F[:, 3] == 0).astype(float)
    return np.column_stack([np.ones(len(F)), flat, F[:, 0], flat * F[:, 0]])


def _cut_points(steps: np.ndarray, budget: float, fractions: Sequence[float]) -> np.ndarray:
    """Indices of the last step at or before each fraction of the budget (distinct, before
    the final step)."""
    idx = np.searchsorted(steps, np.asarray(fractions) * budget + 1e-9, side="right") - 1
    idx = idx[(idx >= 0) & (idx < len(steps) - 1)]
    return np.unique(idx)


def _curve_rows(
    steps: np.ndarray, z: np.ndarray, budget: float, fractions: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One finished curve cut at ``fractions``: features ``F`` (cuts, 4) (see
    :data:`FEATURES`), the cut's value and the target, the change from it to the final one."""
    idx = _cut_points(steps, budget, fractions)
    lt = np.log(steps)
    F = np.empty((len(idx), 4))
    for k, j in enumerate(idx):
        F[k] = (math.log(budget / steps[j]), *curve_summary(lt[: j + 1], z[: j + 1]))
    return F, z[idx], z[-1] - z[idx]


def _gh_nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Hermite nodes and weights of the standard normal."""
    x, w = roots_hermitenorm(n)
    return x, w / w.sum()


def _fingerprint(*arrays: Any) -> str:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode())
        h.update(a.tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# the dataset's posterior given its finished curves, and the predictive mixture


class _DatasetState:
    """One dataset's effects as a mixture over draws × nodes: ``u ~ N(m, C)``, noise level
    ``v``, component weights ``w`` (summing to 1); arrays of shape (S, G, …)."""

    __slots__ = ("C", "h", "loglik", "m", "v", "w")

    def __init__(
        self,
        m: np.ndarray,
        C: np.ndarray,
        v: np.ndarray,
        w: np.ndarray,
        loglik: np.ndarray | None = None,
        h: np.ndarray | None = None,
    ) -> None:
        self.m, self.C, self.v, self.w = m, C, v, w
        #: the dataset's stay intercept per component
        self.h = np.zeros(w.shape) if h is None else h
        #: the context's log marginal likelihood per component (``u`` integrated out)
        self.loglik = np.zeros(w.shape) if loglik is None else loglik


class CurveModel:
    """Hierarchical model of learning curves across datasets (see the module docstring).

    ``metric``: the metric's name (rows of a ``metric`` column in the curves are filtered by
    it); ``maximize``: whether larger is better; ``transform``: ``logit`` (metrics in [0, 1]),
    ``log`` (losses, times), ``identity``, or None to infer from the training values.
    ``eps``: values at a bound of [0, 1] are moved this far inside before the logit.
    ``configs``: whether the configuration's linear terms enter the shape (when ``fit`` gets
    configs); ``dataset_effects``: False for the pooled regression (no ``u_d``, ``v_d``).
    """

    def __init__(
        self,
        metric: str,
        maximize: bool,
        transform: str | None = None,
        *,
        eps: float = 1e-3,
        dataset_effects: bool = True,
        dataset_noise: bool | None = None,
        activity_noise: bool = True,
        stay: bool = True,
        residual_mixture: int = 4,
        use_configs: bool = True,
        shape: Sequence[str] = SHAPE_TERMS,
        effects: Sequence[str] = EFFECT_TERMS,
        checkpoints: Sequence[float] = CHECKPOINTS,
        draws: int = 500,
        tune: int = 500,
        chains: int = 2,
    ) -> None:
        if transform not in (None, "logit", "log", "identity"):
            raise ValidationError(
                f"unknown transform {transform!r}; use logit, log, identity or None"
            )
        self.metric = str(metric)
        self.maximize = bool(maximize)
        self.transform_kind = transform
        self.eps = float(eps)
        self.dataset_effects = bool(dataset_effects)
        self.dataset_noise = bool(dataset_effects if dataset_noise is None else dataset_noise)
        self.activity_noise = bool(activity_noise)
        self.stay = bool(stay)
        #: whether the fitted model has the stay part: ``stay``, unless the training curves
        #: (almost) never end exactly where they were cut (a continuous metric such as a loss)
        self.stay_used = self.stay
        self.residual_mixture = int(residual_mixture)
        if len(tuple(effects)) not in (1, 2):
            raise ValidationError("effects: one or two terms (level, rate)")
        self.use_configs = bool(use_configs)
        self.shape = tuple(shape)
        self.effects = tuple(effects)
        self.checkpoints = tuple(float(f) for f in checkpoints)
        self.draws, self.tune, self.chains = int(draws), int(tune), int(chains)
        self.transform: TargetTransform | None = None
        self.encoder: FeatureEncoder | None = None
        self.datasets: list[str] = []
        self.budgets: dict[str, float] = {}
        self.method = ""
        self.diagnostics: dict[str, Any] = {}
        self._draws: dict[str, np.ndarray] = {}
        self._cache: OrderedDict[str, _DatasetState] = OrderedDict()
        self._quick: dict[tuple, str] = {}
        self._config_cache: dict[tuple, np.ndarray] = {}

    # ---- data ---------------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return bool(self._draws)

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise ValidationError("the curve model is not fitted: call fit(curves) first")

    @property
    def config_terms(self) -> list[str]:
        """The configuration's terms in the shape (``<linear term>·L``)."""
        if self.encoder is None:
            return []
        return [f"{n}*L" for n in self.encoder.names[1:]]

    @property
    def terms(self) -> list[str]:
        return [*self.shape, *self.config_terms]

    def _select(self, curves: pd.DataFrame, what: str, need: Sequence[str]) -> pd.DataFrame:
        missing = [c for c in need if c not in curves.columns]
        if missing:
            raise ValidationError(f"{what} lacks column(s) {', '.join(missing)}")
        if "metric" in curves.columns:
            curves = curves[curves["metric"] == self.metric]
        curves = curves.dropna(subset=["value"])
        return curves.sort_values(["run_id", "step"], kind="stable")

    def _z(self, values: np.ndarray) -> np.ndarray:
        assert self.transform is not None
        return self.transform.forward(np.asarray(values, dtype=float))

    def _config_matrix(self, configs: pd.DataFrame | None, run_ids: Sequence[Any]) -> np.ndarray:
        """Linear config terms per run (rows in ``run_ids`` order); zeros — the middle of
        each range — for runs without a config."""
        n_c = len(self.config_terms)
        out = np.zeros((len(run_ids), n_c))
        if n_c == 0 or configs is None or len(configs) == 0:
            return out
        assert self.encoder is not None
        conf = configs.drop_duplicates("run_id").set_index("run_id")
        have = pd.Index(run_ids).isin(conf.index)
        if have.any():
            rows = conf.loc[np.asarray(run_ids, dtype=object)[have]].reset_index()
            out[have] = self.encoder.transform(rows)[:, 1:]
        return out

    def _rows(
        self, curves: pd.DataFrame, budgets: Mapping[str, float] | float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list]:
        """Training rows of finished curves (one dataset or several): ``(F, target, weight,
        run position, run_ids)``; ``budgets`` per dataset, or one number for all."""
        feats, ys, ws, pos = [], [], [], []
        run_ids: list = []
        for rid, g in curves.groupby("run_id", sort=False):
            steps = g["step"].to_numpy(dtype=float)
            if isinstance(budgets, Mapping):
                budget = float(budgets[g["dataset"].iat[0]])
            else:
                budget = float(budgets)
            if steps[-1] < budget - 1e-9:
                continue  # not finished: no final value
            keep = steps <= budget + 1e-9
            F, _, y = _curve_rows(
                steps[keep], self._z(g["value"].to_numpy()[keep]), budget, self.checkpoints
            )
            if len(F) == 0:
                continue
            feats.append(F)
            ys.append(y)
            ws.append(np.full(len(F), 1.0 / len(F)))
            pos.append(np.full(len(F), len(run_ids)))
            run_ids.append(rid)
        if not feats:
            return np.zeros((0, 4)), np.zeros(0), np.zeros(0), np.zeros(0, dtype=int), []
        cat = np.concatenate
        return np.vstack(feats), cat(ys), cat(ws), cat(pos).astype(int), run_ids

    def _design(self, F: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(X, R)``: the shape (with config terms ``C · L``) and the dataset effects'
        columns, for rows of features ``F``."""
        X = shape_terms(F, self.shape)
        if C.shape[1]:
            X = np.hstack([X, C * F[:, :1]])
        return X, shape_terms(F, self.effects)

    # ---- fit ----------------------------------------------------------------------------
    def fit(
        self,
        curves: pd.DataFrame,
        configs: pd.DataFrame | None = None,
        method: str = "map",
        seed: int = 0,
    ) -> CurveModel:
        """Fit on finished curves: long ``run_id, dataset, step, value`` (and ``metric``, kept
        where it is this model's metric). A dataset's budget is its largest step; runs that
        stop before it have no final value and are left out. ``configs``: ``run_id`` +
        ``params.*`` (optional; used when ``use_configs``). ``method``: ``map`` or ``nuts``."""
        if method not in METHODS:
            raise ValidationError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
        X, R, F, y, w, ds_idx = self._prepare(curves, configs)
        self._fit_pymc(X, R, F, y, w, ds_idx, method, seed)
        self.method = method
        self.diagnostics.update(
            n_runs=self._n_runs, n_rows=len(F), n_datasets=len(self.datasets), method=method
        )
        self._cache.clear()
        self._quick.clear()
        self._config_cache.clear()
        return self

    def _prepare(
        self, curves: pd.DataFrame, configs: pd.DataFrame | None
    ) -> tuple[np.ndarray, ...]:
        """Set the transform, budgets, config encoder and datasets from the training curves;
        return their rows ``(X, R, F, y, w, dataset index)``."""
        if configs is not None and "dataset" not in curves.columns and "dataset" in configs.columns:
            curves = curves.merge(configs[["run_id", "dataset"]], on="run_id", how="left")
        curves = self._select(curves, "curves", ("run_id", "dataset", "step", "value"))
        if curves.empty:
            raise ValidationError(f"no curve points of metric {self.metric!r} to fit on")
        curves = curves.assign(dataset=curves["dataset"].astype(str))
        values = curves["value"].to_numpy(dtype=float)
        kind = self.transform_kind
        if kind is None:
            kind = TargetTransform.fit(values, self.metric).kind
        t = TargetTransform(kind, eps=self.eps, resolution=False)
        t.check(values, "curves")
        g = t._g(values)
        t.center, t.scale = float(np.mean(g)), float(np.std(g)) or 1.0
        self.transform = t
        self.budgets = {
            str(d): float(b) for d, b in curves.groupby("dataset")["step"].max().items()
        }
        self.encoder = None
        if self.use_configs and configs is not None and len(configs):
            params = [c for c in configs.columns if str(c).startswith(PARAM_PREFIX)]
            conf = configs[configs["run_id"].isin(curves["run_id"].unique())]
            if params and len(conf):
                enc = FeatureEncoder.fit(
                    conf[["run_id", *params]], quadratic=False, interactions=False
                )
                if enc.n_features > 1:
                    self.encoder = enc
        F, y, w, pos, run_ids = self._rows(curves, self.budgets)
        if len(F) == 0:
            raise ValidationError("no finished curve has a point before its budget")
        run_ds = curves.drop_duplicates("run_id").set_index("run_id")["dataset"]
        datasets = sorted(run_ds.loc[run_ids].unique())
        self.datasets = list(datasets)
        ds_idx = pd.Index(datasets).get_indexer(run_ds.loc[run_ids].to_numpy()[pos])
        C = self._config_matrix(configs, run_ids)[pos]
        X, R = self._design(F, C)
        self._n_runs = len(run_ids)
        self.stay_used = self.stay and float(np.average(np.abs(y) < 1e-12, weights=w)) >= 0.005
        return X, R, F, y, w, ds_idx

    def _build_pymc(
        self,
        X: np.ndarray,
        R: np.ndarray,
        F: np.ndarray,
        y: np.ndarray,
        w: np.ndarray,
        ds_idx: np.ndarray,
        centred: bool = False,
    ) -> Any:
        """The PyMC model: population parameters, each dataset's ``u_d`` integrated out
        analytically (its 1×1 or 2×2 Gaussian posterior in closed form — the algebra of
        :meth:`_posterior_state` — so neither the sampler nor the optimizer meets the funnel
        of a centred random effect whose scale may be small).

        The datasets' noise levels ``v_d`` and stay intercepts ``h_d`` are ``centred`` for NUTS
        (each is pinned by its dataset's ~30 curves: non-centred, the chains crawled along
        the ridge between ``a`` and the mean of ``v_raw``, r̂ 1.11 after 500 draws) and
        non-centred for MAP (the joint mode of a centred effect and its scale is the spike
        at scale → 0, which MAP found on simulated curves)."""
        import pymc as pm
        import pytensor.tensor as pt

        D = len(self.datasets)
        E = R.shape[1]
        Mt = np.zeros((D, len(y)))
        Mt[ds_idx, np.arange(len(y))] = 1.0
        coords = {
            "term": self.terms,
            "effect": list(self.effects),
            "dataset": self.datasets,
            "stay_term": list(STAY_TERMS),
        }
        with pm.Model(coords=coords) as model:
            beta = pm.Normal("beta", 0.0, 1.0, dims="term")
            a = pm.Normal("a", -1.0, 1.5)
            b = pm.Normal("b", -2.5, 1.5)
            kappa = pm.LogNormal("kappa", 0.0, 0.75)
            e = y - pt.dot(X, beta)
            L = np.maximum(F[:, 0], 1e-12)
            var = pt.exp(2 * a) * L ** (2 * kappa) + pt.exp(2 * b)
            if self.activity_noise:
                c = pm.Normal("c", 0.0, 1.5)
                var = var + pt.exp(2 * c) * F[:, 3] ** 2
            latent = []  # the datasets' noise levels and stay intercepts, (D,) each
            if self.dataset_noise:
                s_v = pm.HalfNormal("s_v", 0.5)
                if centred:
                    v = pm.Normal("v", 0.0, s_v, dims="dataset")
                else:
                    v_raw = pm.Normal("v_raw", 0.0, 1.0, dims="dataset")
                    v = pm.Deterministic("v", s_v * v_raw, dims="dataset")
                var = var * pt.exp(2 * v[ds_idx])
                latent.append(v)
            # rows whose final equals the cut's value belong to the stay part only
            zero = (np.abs(y) < 1e-12).astype(float) if self.stay_used else np.zeros(len(y))
            loglik = 0.0
            if self.stay_used:
                gamma = pm.Normal("gamma", 0.0, 1.5, dims="stay_term")
                eta = pt.dot(stay_terms(F), gamma)
                if self.dataset_effects:
                    s_h = pm.HalfNormal("s_h", 1.0)
                    if centred:
                        h = pm.Normal("h", 0.0, s_h, dims="dataset")
                    else:
                        h_raw = pm.Normal("h_raw", 0.0, 1.0, dims="dataset")
                        h = pm.Deterministic("h", s_h * h_raw, dims="dataset")
                    eta = eta + h[ds_idx]
                    latent.append(h)
                # log σ(η) for a stay, log σ(−η) for a move
                loglik = -(w * pt.softplus(np.where(zero > 0, -1.0, 1.0) * eta)).sum()
            if self.dataset_effects and latent:
                # u_d's prior mean moves with the dataset's noise level and stay intercept
                # (on the dev curves the level effect correlates .73–.75 with v_d)
                lam = pm.Normal("lam", 0.0, 0.5, shape=(E, len(latent)))
                mean_u = pt.dot(pt.stack(latent, axis=1), lam.T)  # (D, E)
                e = e - (R * mean_u[ds_idx]).sum(axis=1)
            wg = w * (1.0 - zero)
            prec = wg / var
            loglik = loglik - 0.5 * (wg * pt.log(2 * np.pi * var) + prec * e * e).sum()
            if self.dataset_effects:
                tau = pm.HalfNormal("tau", 0.5, dims="effect")
                seg = lambda col: pt.dot(Mt, col)  # noqa: E731 - per-dataset sums
                b1 = seg(prec * e * R[:, 0])
                A11 = seg(prec * R[:, 0] ** 2) + 1 / tau[0] ** 2
                if E == 1:
                    det, quad = A11, b1**2 / A11
                else:
                    b2 = seg(prec * e * R[:, 1])
                    A22 = seg(prec * R[:, 1] ** 2) + 1 / tau[1] ** 2
                    A12 = seg(prec * R[:, 0] * R[:, 1])
                    det = A11 * A22 - A12**2
                    quad = (A22 * b1**2 - 2 * A12 * b1 * b2 + A11 * b2**2) / det
                loglik = loglik + 0.5 * (quad - pt.log(det)).sum() - D * pt.log(tau).sum()
            pm.Potential("loglik", loglik)
        return model

    def _fit_pymc(
        self,
        X: np.ndarray,
        R: np.ndarray,
        F: np.ndarray,
        y: np.ndarray,
        w: np.ndarray,
        ds_idx: np.ndarray,
        method: str,
        seed: int,
    ) -> None:
        """The population by MAP or NUTS (:meth:`_build_pymc`), then each training dataset's
        ``u_d`` per draw in closed form."""
        import time

        from metaopt_bayes.inference import configure_compile_cache

        configure_compile_cache()
        D = len(self.datasets)
        E = R.shape[1]
        model = self._build_pymc(X, R, F, y, w, ds_idx, centred=method == "nuts")
        t0 = time.perf_counter()
        names = ["beta", "a", "b", "kappa"]
        names += ["c"] if self.activity_noise else []
        names += ["gamma"] if self.stay_used else []
        names += ["s_h", "h"] if self.stay_used and self.dataset_effects else []
        names += ["tau"] if self.dataset_effects else []
        names += ["s_v", "v"] if self.dataset_noise else []
        latent = [0] * self.dataset_noise + [1] * (self.stay_used and self.dataset_effects)
        names += ["lam"] if self.dataset_effects and latent else []
        if method == "map":
            from metaopt_bayes.inference import map_point

            point = map_point(model, seed)
            draws = {k: np.asarray(point[k])[None] for k in names}
        else:
            from metaopt_bayes.inference import diagnose, sample_nuts

            idata, t_compile, _ = sample_nuts(
                model,
                draws=self.draws,
                tune=self.tune,
                chains=self.chains,
                seed=seed,
                target_accept=0.9,
            )
            post = idata.posterior
            total = post.sizes["chain"] * post.sizes["draw"]
            keep = np.unique(np.linspace(0, total - 1, min(MAX_DRAWS, total)).astype(int))
            draws = {}
            for n in names:
                arr = np.asarray(post[n].values)
                draws[n] = arr.reshape(total, *arr.shape[2:])[keep]
            self.diagnostics.update(diagnose(idata, "nuts", names))
            self.diagnostics["compile_s"] = t_compile
        S = len(draws["beta"])
        if not self.activity_noise:
            draws["c"] = np.full(S, -np.inf)
        if not self.stay_used:
            draws["gamma"] = np.zeros((S, len(STAY_TERMS)))
        if not (self.stay_used and self.dataset_effects):
            draws["s_h"] = np.zeros(S)
            draws["h"] = np.zeros((S, D))
        if not self.dataset_effects:
            draws["tau"] = np.zeros((S, E))
        if not self.dataset_noise:
            draws["s_v"] = np.zeros(S)
            draws["v"] = np.zeros((S, D))
        lam = np.zeros((S, E, 2))
        if "lam" in draws:
            lam[:, :, latent] = np.asarray(draws["lam"]).reshape(S, E, len(latent))
        draws["lam"] = lam
        # The population of the datasets' (v, h): their second moments per draw. The joint
        # mode of a non-centred effect overstates its scale (the mode in (raw, scale) lacks
        # the −D·log(scale) of the effects' density, so only the prior stops it: MAP s_v
        # 1.34, s_h 2.52 on the mlp dev curves, where NUTS gives 0.54 and 0.79), while each
        # dataset's own effects are well determined (~30 curves); and v and h go together
        # (correlation .42 mlp, .59 boosting: small validation sets are noisy and flat).
        Z = np.stack([draws["v"], draws["h"]], axis=-1)  # (S, D, 2)
        draws["vh_cov"] = np.einsum("sdi,sdj->sij", Z, Z) / D
        draws["s_v"] = np.sqrt(draws["vh_cov"][:, 0, 0])
        draws["s_h"] = np.sqrt(draws["vh_cov"][:, 1, 1])
        self._draws = {
            k: np.asarray(draws[k], dtype=float)
            for k in (
                "beta", "a", "b", "kappa", "c", "tau", "s_v", "v", "gamma", "s_h", "h",
                "lam", "vh_cov",
            )
        }  # fmt: skip
        self.diagnostics["fit_s"] = time.perf_counter() - t0
        # each training dataset's u_d per draw, given its rows (the conjugate posterior)
        m = np.zeros((S, D, E))
        C = np.zeros((S, D, E, E))
        for k in range(D):
            sel = ds_idx == k
            v = self._draws["v"][:, k, None]
            h = self._draws["h"][:, k, None]
            st = self._posterior_state(X[sel], R[sel], F[sel], y[sel], w[sel], v=v, h=h)
            m[:, k], C[:, k] = st.m[:, 0], st.C[:, 0]
        self._draws["u_mean"], self._draws["u_cov"] = m, C
        # second stage: the shape of the standardized residuals of the rows that moved
        K = self.residual_mixture
        if K > 1:
            d = self._draws
            mu = X @ d["beta"].mean(0) + np.einsum("ne,ne->n", R, m.mean(0)[ds_idx])
            var = np.exp(2 * d["v"].mean(0)[ds_idx]) * self._noise_base(F).mean(0)
            moved = np.abs(y) >= 1e-12 if self.stay_used else np.ones(len(y), bool)
            z = ((y - mu) / np.sqrt(var))[moved]
            pi, loc, sc = residual_mixture(z, w[moved], K)
        else:
            pi, loc, sc = np.ones(1), np.zeros(1), np.ones(1)
        self._draws.update(eps_w=pi, eps_m=loc, eps_s=sc)

    # ---- the dataset's effects ----------------------------------------------------------
    def _noise_base(self, F: np.ndarray) -> np.ndarray:
        """``e^{2a} L^{2κ} + e^{2b} + e^{2c} act²`` per draw and row (S, n)."""
        d = self._draws
        L = np.maximum(F[:, 0], 1e-12)
        out = np.exp(2 * d["a"])[:, None] * L[None, :] ** (2 * d["kappa"][:, None])
        out += np.exp(2 * d["b"])[:, None]
        if self.activity_noise:
            out += np.exp(2 * d["c"])[:, None] * (F[:, 3] ** 2)[None, :]
        return out

    def _known_state(self, dataset: str) -> _DatasetState:
        d = self._draws
        k = self.datasets.index(dataset)
        S = d["beta"].shape[0]
        return _DatasetState(
            d["u_mean"][:, k, None],
            d["u_cov"][:, k, None],
            d["v"][:, k, None],
            np.full((S, 1), 1.0 / S),
            h=d["h"][:, k, None],
        )

    def _state(
        self,
        dataset: str | None,
        context: pd.DataFrame | None,
        budget: float,
        configs: pd.DataFrame | None = None,
    ) -> _DatasetState:
        """The dataset's effects: the fitted ones for a training dataset, else the population
        updated by ``context`` (its finished curves, cut as the training curves were)."""
        self._check_fitted()
        if dataset is not None and str(dataset) in self.datasets:
            return self._known_state(str(dataset))
        key = None
        if context is not None and len(context):
            if configs is None and any(str(c).startswith(PARAM_PREFIX) for c in context.columns):
                configs = context  # the context's own configs, as params.* columns
            # a cheap key first (the frame's identity, length and sums), so the pruner's
            # repeated calls with one context skip the pandas work below
            quick = None
            if "value" in context.columns and "step" in context.columns:
                quick = (
                    id(context),
                    len(context),
                    float(np.nansum(context["value"].to_numpy(dtype=float))),
                    float(np.nansum(context["step"].to_numpy(dtype=float))),
                    float(budget),
                    None if configs is None else id(configs),
                )
                hit = self._quick.get(quick)
                if hit is not None and hit in self._cache:
                    self._cache.move_to_end(hit)
                    return self._cache[hit]
            ctx = self._select(context, "context", ("run_id", "step", "value"))
            ids = pd.factorize(ctx["run_id"])[0]
            key = _fingerprint(
                ids,
                ctx["step"].to_numpy(dtype=float),
                ctx["value"].to_numpy(dtype=float),
                np.array([budget]),
            )
            if configs is not None:
                key += _fingerprint(pd.util.hash_pandas_object(configs, index=False).to_numpy())
            if quick is not None:
                self._quick[quick] = key
                while len(self._quick) > _CONTEXT_CACHE:
                    self._quick.pop(next(iter(self._quick)))
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            F, y, w, pos, run_ids = self._rows(ctx, float(budget))
            C = self._config_matrix(configs, run_ids)[pos] if len(F) else None
        else:
            F = np.zeros((0, 4))
        if len(F) == 0:
            state = self._prior_state()
        else:
            X, R = self._design(F, C)
            state = self._posterior_state(X, R, F, y, w)
        if key is not None:
            self._cache[key] = state
            while len(self._cache) > _CONTEXT_CACHE:
                self._cache.popitem(last=False)
        return state

    def _nodes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A new dataset's nodes: noise levels ``v`` and stay intercepts ``h`` (S, G), the
        product grid of their Gauss–Hermite nodes, and the nodes' prior weights (G,)."""
        d = self._draws
        xv, pv = _gh_nodes(NODES if self.dataset_noise else 1)
        xh, ph = _gh_nodes(STAY_NODES if self.stay_used and self.dataset_effects else 1)
        gv, gh = np.meshgrid(xv, xh, indexing="ij")
        grid = np.column_stack([gv.ravel(), gh.ravel()])  # (G, 2) standard normal
        chol = np.linalg.cholesky(d["vh_cov"] + 1e-12 * np.eye(2))  # (S, 2, 2)
        vh = np.einsum("sij,gj->sgi", chol, grid)
        return vh[..., 0], vh[..., 1], np.outer(pv, ph).ravel()

    def _mean_u(self, v: np.ndarray, h: np.ndarray) -> np.ndarray:
        """The prior mean of ``u`` at noise levels ``v`` and stay intercepts ``h`` (S, G):
        ``Λ (v, h)`` per draw, (S, G, E)."""
        return np.einsum("sei,sgi->sge", self._draws["lam"], np.stack([v, h], axis=-1))

    def _prior_state(self) -> _DatasetState:
        d = self._draws
        v, h, pw = self._nodes()
        S, G = v.shape
        E = d["tau"].shape[1]
        C = np.zeros((S, G, E, E))
        idx = np.arange(E)
        C[:, :, idx, idx] = (d["tau"] ** 2)[:, None, :]
        w = np.broadcast_to(pw / S, (S, G)).copy()
        return _DatasetState(self._mean_u(v, h), C, v, w, h=h)

    def _posterior_state(
        self,
        X: np.ndarray,
        R: np.ndarray,
        F: np.ndarray,
        y: np.ndarray,
        w: np.ndarray,
        v: np.ndarray | None = None,
        h: np.ndarray | None = None,
    ) -> _DatasetState:
        """Per draw and node: ``u | context`` in closed form and the context's marginal
        likelihood (weighted rows, as in the fit: rows that stayed count in the stay part
        only), which weighs the nodes. ``v``, ``h``: the noise level and stay intercept
        (S, G) when known (a training dataset's draws), else the population's nodes."""
        d = self._draws
        if v is None or h is None:
            v, h, pw = self._nodes()  # (S, G)
        else:
            pw = np.ones(v.shape[1]) / v.shape[1]
        zero = (np.abs(y) < 1e-12).astype(float) if self.stay_used else np.zeros(len(y))
        wg = w * (1.0 - zero)
        mean_u = self._mean_u(v, h)  # (S, G, E)
        e = y[None, None, :] - (d["beta"] @ X.T)[:, None, :] - mean_u @ R.T  # (S, G, n)
        var = np.exp(2 * v)[:, :, None] * self._noise_base(F)[:, None, :]  # (S, G, n)
        prec = wg[None, None, :] / var
        E = R.shape[1]
        tau2 = np.maximum(d["tau"] ** 2, 1e-12)  # (S, E)
        P = np.einsum("sgn,ni,nj->sgij", prec, R, R)
        b = np.einsum("sgn,sgn,ni->sgi", prec, e, R)
        idx = np.arange(E)
        A = P.copy()
        A[:, :, idx, idx] += (1.0 / tau2)[:, None, :]
        Ainv = np.linalg.inv(A)
        delta = np.einsum("sgij,sgj->sgi", Ainv, b)  # u − its prior mean
        _, logdet = np.linalg.slogdet(A)
        ll = -0.5 * (
            (wg[None, None, :] * np.log(2 * np.pi * var)).sum(-1)
            + (prec * e**2).sum(-1)
            - np.einsum("sgi,sgi->sg", b, delta)
            + logdet
            + np.log(tau2).sum(-1)[:, None]
        )
        if self.stay_used:
            eta = (stay_terms(F) @ d["gamma"].T).T[:, None, :] + h[:, :, None]  # (S, G, n)
            sign = np.where(zero > 0, -1.0, 1.0)
            ll = ll - (w * np.logaddexp(0.0, sign * eta)).sum(-1)
        lw = ll + np.log(pw)[None, :]
        ll_out = ll.copy()
        lw -= lw.max(axis=1, keepdims=True)
        wts = np.exp(lw)
        wts /= wts.sum(axis=1, keepdims=True) * len(wts)
        return _DatasetState(mean_u + delta, Ainv, v, wts, ll_out, h=h)

    # ---- prediction ---------------------------------------------------------------------
    def _mixture(
        self,
        state: _DatasetState,
        x: np.ndarray,
        rr: np.ndarray,
        F: np.ndarray,
        anchor: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predictive mixture of ``z(T)`` per query row: means, variances and weights (Q, K),
        the last component the point mass of staying at the last value (variance 0)."""
        d = self._draws
        mu = anchor[:, None, None] + (x @ d["beta"].T)[:, :, None]  # (Q, S, 1)
        mu = mu + np.einsum("qe,sge->qsg", rr, state.m)
        var = np.einsum("qe,sgef,qf->qsg", rr, state.C, rr)
        noise = self._noise_base(F).T[:, :, None] * np.exp(2 * state.v)[None, :, :]  # (Q,S,G)
        # the noise's shape: Σ_j π_j N(m_j, s_j²) in units of its scale (one N(0, 1) when off)
        pi, loc, sc = d["eps_w"], d["eps_m"], d["eps_s"]
        sd = np.sqrt(noise)[..., None]
        mu = mu[..., None] + sd * loc
        var = var[..., None] + noise[..., None] * sc**2
        Q = len(F)
        w = np.broadcast_to((state.w[:, :, None] * pi).reshape(1, -1), (Q, state.w.size * len(pi)))
        if not self.stay_used:
            return mu.reshape(Q, -1), var.reshape(Q, -1), w
        eta = (stay_terms(F) @ d["gamma"].T)[:, :, None] + state.h[None, :, :]  # (Q, S, G)
        p_stay = 0.5 * (1.0 + np.tanh(0.5 * eta))  # σ(η), overflow-safe
        p_stay = np.repeat(p_stay.reshape(Q, -1), len(pi), axis=1)
        mu = np.column_stack([mu.reshape(Q, -1), anchor])
        var = np.column_stack([var.reshape(Q, -1), np.zeros(Q)])
        w = np.column_stack([w * (1.0 - p_stay), (w * p_stay).sum(1)])
        return mu, var, w

    def _partial_features(
        self, steps: np.ndarray, z: np.ndarray, budget: float
    ) -> tuple[np.ndarray, float]:
        """``(F, anchor)`` of a partial curve (sorted steps, transformed values): its features
        (4,) (see :data:`FEATURES`) and its last value."""
        summary = curve_summary(np.log(steps), z)
        return np.array([math.log(budget / steps[-1]), *summary]), float(z[-1])

    def _encode_config(self, config: Mapping | None) -> np.ndarray:
        n_c = len(self.config_terms)
        if n_c == 0 or not config:
            return np.zeros(n_c)
        key = tuple(sorted((str(k), repr(v)) for k, v in config.items()))
        hit = self._config_cache.get(key)
        if hit is None:
            assert self.encoder is not None
            row = pd.DataFrame(
                [
                    {
                        (k if str(k).startswith(PARAM_PREFIX) else PARAM_PREFIX + str(k)): v
                        for k, v in config.items()
                    }
                ]
            )
            hit = self.encoder.transform(row)[0, 1:]
            self._config_cache[key] = hit
        return hit

    def _predictive(
        self,
        partial: pd.DataFrame,
        budget: float,
        dataset: str | None,
        context: pd.DataFrame | None,
        configs: pd.DataFrame | None,
    ) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
        """``(run_ids, means, variances, weights)`` of the mixture of ``z(T)`` per run."""
        self._check_fitted()
        part = self._select(partial, "partial", ("run_id", "step", "value"))
        part = part[part["step"] <= budget + 1e-9]
        state = self._state(dataset, context, float(budget), configs)
        run_ids, feats, anchors = [], [], []
        for rid, g in part.groupby("run_id", sort=False):
            steps = g["step"].to_numpy(dtype=float)
            f, a = self._partial_features(steps, self._z(g["value"].to_numpy()), budget)
            feats.append(f)
            anchors.append(a)
            run_ids.append(rid)
        if not run_ids:
            return [], np.zeros((0, 1)), np.zeros((0, 1)), np.ones((0, 1))
        F, anchor = np.asarray(feats), np.asarray(anchors)
        C = self._config_matrix(configs, run_ids)
        X, R = self._design(F, C)
        mu, var, w = self._mixture(state, X, R, F, anchor)
        done = F[:, 0] <= 1e-12  # observed at the budget: the final value is known
        mu[done] = anchor[done, None]
        var[done] = 0.0
        return run_ids, mu, var, w

    def predict_final(
        self,
        partial: pd.DataFrame,
        budget: int,
        dataset: str | None = None,
        context: pd.DataFrame | None = None,
        configs: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        """The final value (at ``budget``) of each run in ``partial`` (long: ``run_id, step,
        value``, the points observed so far), on the metric's own scale: one row per run_id
        with ``mean, sd, q05, q25, q50, q75, q95`` (and ``z_mean, z_sd`` on the modelling
        scale). ``dataset``: a training dataset's name uses its fitted effects; otherwise
        ``context`` (the same dataset's finished curves, long ``run_id, step, value``)
        updates the population's. ``configs``: ``run_id`` + ``params.*`` of the partial runs
        (and of the context's), when the model uses configurations. A run observed at the
        budget already has its final value (sd 0)."""
        run_ids, mu, var, w = self._predictive(partial, float(budget), dataset, context, configs)
        cols = ["mean", "sd", "q05", "q25", "q50", "q75", "q95", "z_mean", "z_sd"]
        out = _summaries(mu, var, w, self.transform) if run_ids else np.zeros((0, len(cols)))
        return pd.DataFrame(out, columns=cols, index=pd.Index(run_ids, name="run_id"))

    def cdf(
        self,
        partial: pd.DataFrame,
        budget: int,
        values: Mapping[Any, float] | pd.Series,
        dataset: str | None = None,
        context: pd.DataFrame | None = None,
        configs: pd.DataFrame | None = None,
        strict: bool = False,
    ) -> pd.Series:
        """``P(final ≤ values[run_id])`` per run of ``partial`` (``P(final < …)`` when
        ``strict``: they differ by the point mass of staying at the last value). The
        predictive CDF on the metric's scale; at the true final it is the PIT of a
        calibration check (randomized between the two where a point mass sits)."""
        run_ids, mu, var, w = self._predictive(partial, float(budget), dataset, context, configs)
        vals = pd.Series(values).reindex(run_ids).to_numpy(dtype=float)
        z = self._z(vals)
        sd = np.sqrt(var)
        safe = np.where(sd > 0, sd, 1.0)
        at = (z[:, None] > mu) if strict else (z[:, None] >= mu)
        c = np.where(sd > 0, ndtr((z[:, None] - mu) / safe), at.astype(float))
        return pd.Series((c * w).sum(1), index=pd.Index(run_ids, name="run_id"))

    def prob_beats(
        self,
        steps: Sequence[int],
        values: Sequence[float],
        budget: int,
        incumbent: float,
        context: pd.DataFrame | None = None,
        config: Mapping | None = None,
        dataset: str | None = None,
    ) -> float:
        """``P(final value better than incumbent)`` for one partial curve (its ``steps`` and
        ``values``), better meaning larger when ``maximize``. numpy only; the dataset's state
        for a ``context`` is cached by content, so repeated calls cost ~0.1 ms."""
        self._check_fitted()
        st = np.asarray(steps, dtype=float)
        if len(st) == 0:
            raise ValidationError("prob_beats needs at least one observed point")
        order = np.argsort(st, kind="stable")
        st = st[order]
        z = self._z(np.asarray(values, dtype=float)[order])
        keep = st <= budget + 1e-9
        st, z = st[keep], z[keep]
        assert self.transform is not None
        z_inc = float(self.transform.forward(np.array([float(incumbent)]))[0])
        F, anchor = self._partial_features(st, z, float(budget))
        if F[0] <= 1e-12:
            better = anchor > z_inc if self.maximize else anchor < z_inc
            return float(better)
        state = self._state(dataset, context, float(budget))
        c = self._encode_config(config)
        F = F[None, :]
        X, R = self._design(F, c[None, :])
        mu, var, w = self._mixture(state, X, R, F, np.array([anchor]))
        sd = np.sqrt(var[0])
        diff = mu[0] - z_inc if self.maximize else z_inc - mu[0]
        safe = np.where(sd > 0, sd, 1.0)
        p = float(np.where(sd > 0, ndtr(diff / safe), (diff > 0).astype(float)) @ w[0])
        return min(max(p, 0.0), 1.0)

    # ---- persistence --------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "maximize": self.maximize,
            "transform": self.transform_kind,
            "eps": self.eps,
            "dataset_effects": self.dataset_effects,
            "dataset_noise": self.dataset_noise,
            "activity_noise": self.activity_noise,
            "stay": self.stay,
            "residual_mixture": self.residual_mixture,
            "use_configs": self.use_configs,
            "shape": list(self.shape),
            "effects": list(self.effects),
            "checkpoints": list(self.checkpoints),
            "draws": self.draws,
            "tune": self.tune,
            "chains": self.chains,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted model to ``path`` (``.npz``: the draws, and the settings,
        transform, encoder and datasets as JSON), aside and then moved into place."""
        self._check_fitted()
        assert self.transform is not None
        meta = {
            "format": FORMAT_VERSION,
            "config": self.config_dict(),
            "transform": self.transform.to_dict(),
            "encoder": None if self.encoder is None else self.encoder.to_dict(),
            "datasets": self.datasets,
            "budgets": self.budgets,
            "method": self.method,
            "diagnostics": self.diagnostics,
            "stay_used": self.stay_used,
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
        os.close(fd)
        try:
            with open(name, "wb") as fh:
                np.savez_compressed(
                    fh, meta=np.array(json.dumps(meta, default=_json_default)), **self._draws
                )
            os.replace(name, path)
        finally:
            Path(name).unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> CurveModel:
        """A model :meth:`save` wrote; refuses a file of another format."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                draws = {k: np.asarray(data[k]) for k in data.files if k != "meta"}
        except (OSError, ValueError, KeyError) as exc:
            raise ValidationError(f"cannot read curve model {str(path)!r}: {exc}") from None
        if meta.get("format") != FORMAT_VERSION:
            raise ValidationError(
                f"curve model {str(path)!r} has format {meta.get('format')!r}; this version "
                f"reads format {FORMAT_VERSION}: refit it"
            )
        c = meta["config"]
        model = cls(
            c["metric"],
            c["maximize"],
            c["transform"],
            eps=c["eps"],
            dataset_effects=c["dataset_effects"],
            dataset_noise=c["dataset_noise"],
            activity_noise=c["activity_noise"],
            stay=c["stay"],
            residual_mixture=c["residual_mixture"],
            use_configs=c["use_configs"],
            shape=c["shape"],
            effects=c["effects"],
            checkpoints=c["checkpoints"],
            draws=c["draws"],
            tune=c["tune"],
            chains=c["chains"],
        )
        model.transform = TargetTransform.from_dict(meta["transform"])
        if meta["encoder"] is not None:
            model.encoder = FeatureEncoder.from_dict(meta["encoder"])
        model.datasets = list(meta["datasets"])
        model.budgets = {str(k): float(v) for k, v in meta["budgets"].items()}
        model.method = meta["method"]
        model.stay_used = bool(meta["stay_used"])
        model.diagnostics = meta["diagnostics"]
        model._draws = draws
        return model


# --------------------------------------------------------------------------------------------
# mixture summaries


def _summaries(
    mu: np.ndarray, var: np.ndarray, w: np.ndarray, transform: TargetTransform | None
) -> np.ndarray:
    """Per row of a Gaussian mixture on the modelling scale (means ``mu``, variances ``var``,
    weights ``w``): mean, sd, 5/25/50/75/95% quantiles on the metric's scale (the mean and sd
    by 16-point Gauss–Hermite per component), then the mean and sd on the modelling scale."""
    assert transform is not None
    w = np.broadcast_to(np.asarray(w, dtype=float), mu.shape)
    sd = np.sqrt(np.maximum(var, 0.0))
    z_mean = (mu * w).sum(1)
    z_sd = np.sqrt(np.maximum(((var + mu**2) * w).sum(1) - z_mean**2, 0.0))
    x, gw = _gh_nodes(16)
    vals = _to_metric(transform, mu[:, :, None] + sd[:, :, None] * x[None, None, :])
    m1 = np.einsum("qkh,h,qk->q", vals, gw, w)
    m2 = np.einsum("qkh,h,qk->q", vals**2, gw, w)
    msd = np.sqrt(np.maximum(m2 - m1**2, 0.0))
    probs = (0.05, 0.25, 0.5, 0.75, 0.95)
    qs = _to_metric(transform, mixture_quantiles(mu, sd, w, probs))
    return np.column_stack([m1, msd, qs, z_mean, z_sd])


def _to_metric(transform: TargetTransform, z: np.ndarray) -> np.ndarray:
    """The modelling scale back to the metric's; for a logit, the clip maps [1 − eps, 1] to
    one point, which stands for the bound (an accuracy of 1.0 predicted as 1.0)."""
    with np.errstate(over="ignore"):  # exp of a far tail: the logit's inverse is 0 there
        out = transform.inverse(z)
    if transform.kind == "logit":
        out = np.where(out >= 1 - transform.eps * (1 + 1e-9), 1.0, out)
        out = np.where(out <= transform.eps * (1 + 1e-9), 0.0, out)
    return out


def mixture_quantiles(
    mu: np.ndarray, sd: np.ndarray, w: np.ndarray, probs: Sequence[float]
) -> np.ndarray:
    """Quantiles ``probs`` of ``Σ_k w_qk N(mu_qk, sd_qk²)`` per row ``q`` (bisection; a
    component with sd 0 is a point mass, and a quantile that falls on one is its location
    exactly); ``w`` (K,) or (Q, K): (Q, len(probs))."""
    mu = np.asarray(mu, dtype=float)
    sd = np.asarray(sd, dtype=float)
    w = np.broadcast_to(np.asarray(w, dtype=float), mu.shape)
    out = np.empty((len(mu), len(probs)))
    lo0 = (mu - 10 * sd).min(axis=1)
    hi0 = (mu + 10 * sd).max(axis=1)
    safe = np.where(sd > 0, sd, 1.0)
    for j, p in enumerate(probs):
        lo, hi = lo0.copy(), hi0.copy()
        for _ in range(50):
            mid = 0.5 * (lo + hi)
            t = (mid[:, None] - mu) / safe
            cdf = (np.where(sd > 0, ndtr(t), (mid[:, None] >= mu).astype(float)) * w).sum(1)
            below = cdf < p
            lo = np.where(below, mid, lo)
            hi = np.where(below, hi, mid)
        out[:, j] = 0.5 * (lo + hi)
    point = (sd == 0) & (w > 0)
    if point.any():
        for q, k in zip(*np.nonzero(point), strict=True):
            near = np.abs(out[q] - mu[q, k]) <= 1e-9 * max(1.0, abs(mu[q, k]))
            out[q, near] = mu[q, k]
    return out


def residual_mixture(
    z: np.ndarray, w: np.ndarray, k: int = 4, iters: int = 300
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A ``k``-component Gaussian mixture ``Σ_j π_j N(m_j, s_j²)`` fitted by weighted EM to
    standardized residuals ``z`` (weights ``w``), started at the residuals' quantiles:
    ``(π, m, s)``. Curves' residuals are peaked and skewed (on the mlp dev curves the central
    50% spans −0.58…0.53 standard deviations, a Gaussian's ±0.67, and the 99th percentile is
    2.8, a Gaussian's 2.33), which one Gaussian describes badly."""
    z = np.asarray(z, dtype=float)
    w = np.asarray(w, dtype=float) / np.sum(w)
    order = np.argsort(z)
    cw = np.cumsum(w[order])
    loc = np.array([z[order][min(np.searchsorted(cw, q), len(z) - 1)]
                    for q in (np.arange(k) + 0.5) / k])  # fmt: skip
    sd0 = math.sqrt(float(w @ (z - w @ z) ** 2)) or 1.0
    sc = np.full(k, sd0 / k)
    pi = np.full(k, 1.0 / k)
    for _ in range(iters):
        lp = np.log(pi) - np.log(sc) - 0.5 * ((z[:, None] - loc) / sc) ** 2
        lp -= lp.max(axis=1, keepdims=True)
        r = np.exp(lp)
        r /= r.sum(axis=1, keepdims=True)
        rw = r * w[:, None]
        nk = rw.sum(0) + 1e-12
        pi = nk / nk.sum()
        loc = (rw * z[:, None]).sum(0) / nk
        sc = np.sqrt((rw * (z[:, None] - loc) ** 2).sum(0) / nk + 1e-4)
    return pi, loc, sc


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


__all__ = ["CHECKPOINTS", "CurveModel", "curve_summary", "mixture_quantiles", "shape_terms"]
